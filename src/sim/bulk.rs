//! Bulk API 2.0: query jobs (results streamed as CSV straight from the columns, paged by
//! `maxRecords` / `Sforce-Locator`, gzip on request) and ingest jobs (CSV upload, per-row
//! validation, successful / failed / unprocessed results).
//!
//! Jobs advance one state per status poll (UploadComplete -> InProgress -> JobComplete), so
//! clients exercise their polling loops without any wall-clock waiting.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Query as UrlQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use base64::Engine as _;
use serde_json::{Value, json};

use super::describe::FType;
use super::render::{csv_cell, csv_text};
use super::rest::{check_version, not_found};
use super::server::{Sim, json_response, sf_error};
use super::soql::{self, Path, read};
use super::store::{DELETED, LIVE, PURGED, Store, make_id, pack, unpack, write_datetime};
use super::write::{ExtIndex, Input, RecError, apply, validate};

/// A Bulk query job.
#[derive(Debug, Clone)]
pub struct QueryJob {
    info: JobInfo,
    query: String,
    all: bool,
    object: usize,
    fields: Vec<Path>,
    parsed: soql::Query,
    rows: Option<Arc<Vec<u32>>>,
}

/// An ingest job.
#[derive(Debug, Clone)]
pub struct IngestJob {
    info: JobInfo,
    object: usize,
    ext_field: Option<usize>,
    data: Vec<u8>,
    results: Option<IngestResults>,
}

#[derive(Debug, Clone, Default)]
struct IngestResults {
    success: Vec<u8>,
    failed: Vec<u8>,
    unprocessed: Vec<u8>,
    processed: u64,
    failed_n: u64,
}

#[derive(Debug, Clone)]
struct JobInfo {
    id: String,
    operation: String,
    object: String,
    created: i64,
    modstamp: i64,
    state: String,
    api_version: f64,
    line_ending: String,
    delimiter: String,
    error: Option<String>,
    fail: bool,
    processed: u64,
}

/// All Bulk jobs.
#[derive(Debug, Default)]
pub struct Jobs {
    query: Mutex<HashMap<String, QueryJob>>,
    ingest: Mutex<HashMap<String, IngestJob>>,
    ingest_batches: std::sync::atomic::AtomicUsize,
}

impl Jobs {
    /// Query jobs created so far (for `limits`).
    pub fn count_query_jobs(&self) -> usize {
        self.query.lock().map(|m| m.len()).unwrap_or(0)
    }
    /// Ingest uploads so far (for `limits`).
    pub fn count_ingest_batches(&self) -> usize {
        self.ingest_batches.load(Ordering::SeqCst)
    }
    /// Marks a job as failed by the platform (fault injection); true when found.
    pub fn fail_job(&self, id: &str, message: &str) -> bool {
        if let Some(j) = self
            .query
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(id)
        {
            j.info.state = "Failed".into();
            j.info.error = Some(message.into());
            return true;
        }
        if let Some(j) = self
            .ingest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(id)
        {
            j.info.state = "Failed".into();
            j.info.error = Some(message.into());
            return true;
        }
        false
    }
}

/// The Bulk API 2.0 routes.
pub fn routes() -> Router<Arc<Sim>> {
    let mut r = Router::new();
    for (p, m) in [
        (
            "/services/data/{ver}/jobs/query",
            get(list_query).post(create_query),
        ),
        (
            "/services/data/{ver}/jobs/query/{id}",
            get(get_query).patch(patch_query).delete(delete_query),
        ),
        (
            "/services/data/{ver}/jobs/query/{id}/results",
            get(query_results),
        ),
        (
            "/services/data/{ver}/jobs/ingest",
            get(list_ingest).post(create_ingest),
        ),
        (
            "/services/data/{ver}/jobs/ingest/{id}",
            get(get_ingest).patch(patch_ingest).delete(delete_ingest),
        ),
        ("/services/data/{ver}/jobs/ingest/{id}/batches", put(upload)),
        (
            "/services/data/{ver}/jobs/ingest/{id}/successfulResults",
            get(ingest_success),
        ),
        (
            "/services/data/{ver}/jobs/ingest/{id}/failedResults",
            get(ingest_failed),
        ),
        (
            "/services/data/{ver}/jobs/ingest/{id}/unprocessedrecords",
            get(ingest_unprocessed),
        ),
    ] {
        r = r.route(p, m.clone()).route(&format!("{p}/"), m);
    }
    r
}

macro_rules! check {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(resp) => return resp,
        }
    };
}

fn dt(ms: i64) -> String {
    let mut v = Vec::new();
    write_datetime(ms, &mut v);
    String::from_utf8(v).unwrap_or_default()
}

fn user_id(store: &Store) -> String {
    store.id_of(pack(4, 0))
}

fn bad(code: &str, msg: &str) -> Response {
    sf_error(StatusCode::BAD_REQUEST, code, msg)
}

fn parse_json(body: &Bytes) -> Result<Value, Response> {
    serde_json::from_slice(body)
        .map_err(|e| bad("JSON_PARSER_ERROR", &format!("Unexpected character: {e}")))
}

fn delimiter_byte(name: &str) -> Option<u8> {
    match name {
        "COMMA" => Some(b','),
        "TAB" => Some(b'\t'),
        "SEMICOLON" => Some(b';'),
        "PIPE" => Some(b'|'),
        "CARET" => Some(b'^'),
        "BACKQUOTE" => Some(b'`'),
        _ => None,
    }
}

fn info_json(
    i: &JobInfo,
    store: &Store,
    kind: &str,
    detail: bool,
    extra: &[(&str, Value)],
) -> Value {
    let mut v = json!({
        "id": i.id, "operation": i.operation, "object": i.object, "createdById": user_id(store),
        "createdDate": dt(i.created), "systemModstamp": dt(i.modstamp), "state": i.state,
    });
    for (k, x) in extra {
        v[*k] = x.clone();
    }
    v["concurrencyMode"] = json!("Parallel");
    v["contentType"] = json!("CSV");
    v["apiVersion"] = json!(i.api_version);
    if kind == "V2Ingest" && !detail {
        v["contentUrl"] = json!(format!(
            "services/data/v{:.1}/jobs/ingest/{}/batches",
            i.api_version, i.id
        ));
    }
    v["lineEnding"] = json!(i.line_ending);
    v["columnDelimiter"] = json!(i.delimiter);
    if detail {
        v["jobType"] = json!(kind);
        v["numberRecordsProcessed"] = json!(i.processed);
        v["retries"] = json!(0);
        v["totalProcessingTime"] = json!(if i.state == "JobComplete" { 42 } else { 0 });
        if kind == "V2Query" {
            v["isPkChunkingSupported"] = json!(true);
        }
        if let Some(e) = &i.error {
            v["errorMessage"] = json!(e);
        }
    }
    v
}

fn new_info(
    sim: &Sim,
    ver: &str,
    body: &Value,
    object: &str,
    operation: &str,
) -> Result<JobInfo, Response> {
    let line_ending = body["lineEnding"].as_str().unwrap_or("LF").to_string();
    let delimiter = body["columnDelimiter"]
        .as_str()
        .unwrap_or("COMMA")
        .to_string();
    if line_ending != "LF" && line_ending != "CRLF" {
        return Err(bad(
            "INVALIDJOB",
            &format!("Invalid line ending: {line_ending}"),
        ));
    }
    if delimiter_byte(&delimiter).is_none() {
        return Err(bad(
            "INVALIDJOB",
            &format!("Invalid column delimiter: {delimiter}"),
        ));
    }
    if let Some(ct) = body["contentType"].as_str()
        && ct != "CSV"
    {
        return Err(bad(
            "INVALIDJOB",
            &format!("Unsupported content type: {ct}"),
        ));
    }
    let now = sim.now_ms();
    let fail = {
        let mut f = sim.faults.lock().unwrap_or_else(|e| e.into_inner());
        let fail = f.fail_bulk_jobs > 0;
        f.fail_bulk_jobs = f.fail_bulk_jobs.saturating_sub(1);
        fail
    };
    Ok(JobInfo {
        id: make_id("750", sim.next_seq() as usize),
        operation: operation.into(),
        object: object.into(),
        created: now,
        modstamp: now,
        state: String::new(),
        api_version: ver.trim_start_matches('v').parse().unwrap_or(62.0),
        line_ending,
        delimiter,
        error: None,
        fail,
        processed: 0,
    })
}

// ---------------------------------------------------------------- query jobs

async fn create_query(
    State(sim): State<Arc<Sim>>,
    UrlPath(ver): UrlPath<String>,
    body: Bytes,
) -> Response {
    check!(check_version(&ver));
    let body = check!(parse_json(&body));
    let operation = body["operation"].as_str().unwrap_or("");
    if operation != "query" && operation != "queryAll" {
        return bad("INVALIDJOB", &format!("Invalid operation: {operation}"));
    }
    let Some(q) = body["query"].as_str() else {
        return bad("INVALIDJOB", "The query field is required");
    };
    let store = sim.store.read().unwrap_or_else(|e| e.into_inner());
    // Objects listed by describeGlobal but without data are the ones Bulk does not support.
    let from = q
        .split_whitespace()
        .skip_while(|w| !w.eq_ignore_ascii_case("from"))
        .nth(1)
        .unwrap_or("");
    if store.catalog.object(from).is_none() && store.catalog.global_entry(from).is_some() {
        return bad(
            "INVALIDENTITY",
            &format!("Entity '{from}' is not supported by the Bulk API."),
        );
    }
    let parsed = match soql::parse(q, &store) {
        Ok(p) => p,
        Err(e) => return bad(e.code, &e.message),
    };
    if parsed.count_only {
        return bad(
            "FUNCTIONALITY_NOT_ENABLED",
            "Aggregate queries are not supported by Bulk API 2.0 query: COUNT()",
        );
    }
    for p in &parsed.fields {
        match p.ftype {
            FType::Address | FType::Location => {
                return bad(
                    "FUNCTIONALITY_NOT_ENABLED",
                    "Selecting compound data not supported in Bulk Query",
                );
            }
            FType::Base64 => {
                return bad(
                    "FUNCTIONALITY_NOT_ENABLED",
                    &format!("Base64 field {} is not supported in Bulk Query", p.name),
                );
            }
            _ => {}
        }
    }
    let object = store.catalog.objects[parsed.object].name.clone();
    let mut info = check!(new_info(&sim, &ver, &body, &object, operation));
    info.state = "UploadComplete".into();
    let resp = info_json(&info, &store, "V2Query", false, &[]);
    let job = QueryJob {
        info: info.clone(),
        query: q.to_string(),
        all: operation == "queryAll",
        object: parsed.object,
        fields: parsed.fields.clone(),
        parsed,
        rows: None,
    };
    sim.jobs
        .query
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(info.id.clone(), job);
    json_response(StatusCode::OK, resp.to_string().into_bytes())
}

async fn list_query(State(sim): State<Arc<Sim>>, UrlPath(ver): UrlPath<String>) -> Response {
    check!(check_version(&ver));
    let store = sim.store.read().unwrap_or_else(|e| e.into_inner());
    let jobs = sim.jobs.query.lock().unwrap_or_else(|e| e.into_inner());
    let records: Vec<Value> = jobs
        .values()
        .map(|j| info_json(&j.info, &store, "V2Query", true, &[]))
        .collect();
    json_response(
        StatusCode::OK,
        json!({"done": true, "records": records, "nextRecordsUrl": null})
            .to_string()
            .into_bytes(),
    )
}

async fn get_query(
    State(sim): State<Arc<Sim>>,
    UrlPath((ver, id)): UrlPath<(String, String)>,
) -> Response {
    check!(check_version(&ver));
    let now = sim.now_ms();
    let store = sim.store.read().unwrap_or_else(|e| e.into_inner());
    let mut jobs = sim.jobs.query.lock().unwrap_or_else(|e| e.into_inner());
    let Some(job) = jobs.get_mut(&id) else {
        return not_found();
    };
    match job.info.state.as_str() {
        "UploadComplete" => {
            job.info.state = "InProgress".into();
            job.info.modstamp = now;
        }
        "InProgress" => {
            if job.info.fail {
                job.info.state = "Failed".into();
                job.info.error =
                    Some("InternalServerError : the query job failed (simulated)".into());
            } else {
                let rows = soql::execute(&store, &job.parsed, job.all);
                job.info.processed = rows.len() as u64;
                job.rows = Some(Arc::new(rows));
                job.info.state = "JobComplete".into();
            }
            job.info.modstamp = now;
        }
        _ => {}
    }
    let _ = &job.query;
    json_response(
        StatusCode::OK,
        info_json(&job.info, &store, "V2Query", true, &[])
            .to_string()
            .into_bytes(),
    )
}

async fn patch_query(
    State(sim): State<Arc<Sim>>,
    UrlPath((ver, id)): UrlPath<(String, String)>,
    body: Bytes,
) -> Response {
    check!(check_version(&ver));
    let body = check!(parse_json(&body));
    let now = sim.now_ms();
    let store = sim.store.read().unwrap_or_else(|e| e.into_inner());
    let mut jobs = sim.jobs.query.lock().unwrap_or_else(|e| e.into_inner());
    let Some(job) = jobs.get_mut(&id) else {
        return not_found();
    };
    if body["state"] != "Aborted" {
        return bad(
            "INVALIDJOBSTATE",
            "Only the Aborted state can be set on a query job",
        );
    }
    if matches!(
        job.info.state.as_str(),
        "JobComplete" | "Failed" | "Aborted"
    ) {
        return bad(
            "INVALIDJOBSTATE",
            &format!("Job is already in a terminal state: {}", job.info.state),
        );
    }
    job.info.state = "Aborted".into();
    job.info.modstamp = now;
    json_response(
        StatusCode::OK,
        info_json(&job.info, &store, "V2Query", false, &[])
            .to_string()
            .into_bytes(),
    )
}

async fn delete_query(
    State(sim): State<Arc<Sim>>,
    UrlPath((ver, id)): UrlPath<(String, String)>,
) -> Response {
    check!(check_version(&ver));
    let mut jobs = sim.jobs.query.lock().unwrap_or_else(|e| e.into_inner());
    let Some(job) = jobs.get(&id) else {
        return not_found();
    };
    if !matches!(
        job.info.state.as_str(),
        "JobComplete" | "Failed" | "Aborted"
    ) {
        return bad(
            "INVALIDJOBSTATE",
            "Only jobs in a terminal state (JobComplete, Failed, Aborted) can be deleted",
        );
    }
    jobs.remove(&id);
    StatusCode::NO_CONTENT.into_response()
}

const CHUNK_ROWS: usize = 2048;

struct ResultStream {
    sim: Arc<Sim>,
    object: usize,
    fields: Vec<Path>,
    rows: Arc<Vec<u32>>,
    pos: usize,
    end: usize,
    header: Option<Vec<u8>>,
    sep: u8,
    eol: &'static [u8],
    gzip: Option<flate2::write::GzEncoder<Vec<u8>>>,
    done: bool,
}

impl ResultStream {
    fn next_chunk(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        let mut out = self.header.take().unwrap_or_default();
        if self.pos < self.end {
            let store = self.sim.store.read().unwrap_or_else(|e| e.into_inner());
            let stop = (self.pos + CHUNK_ROWS).min(self.end);
            out.reserve((stop - self.pos) * 64 * self.fields.len().max(1));
            for &row in &self.rows[self.pos..stop] {
                for (k, p) in self.fields.iter().enumerate() {
                    if k > 0 {
                        out.push(self.sep);
                    }
                    csv_cell(
                        &mut out,
                        &store,
                        &read(&store, self.object, row as usize, p),
                    );
                }
                out.extend_from_slice(self.eol);
            }
            self.pos = stop;
        }
        let last = self.pos >= self.end;
        let out = match &mut self.gzip {
            Some(gz) => {
                let _ = gz.write_all(&out);
                if last {
                    let gz = self.gzip.take()?;
                    gz.finish().unwrap_or_default()
                } else {
                    std::mem::take(gz.get_mut())
                }
            }
            None => out,
        };
        if last {
            self.done = true;
        }
        Some(Bytes::from(out))
    }
}

async fn query_results(
    State(sim): State<Arc<Sim>>,
    UrlPath((ver, id)): UrlPath<(String, String)>,
    UrlQuery(p): UrlQuery<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    check!(check_version(&ver));
    let job = sim
        .jobs
        .query
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&id)
        .cloned();
    let Some(job) = job else { return not_found() };
    let Some(rows) = job.rows.clone().filter(|_| job.info.state == "JobComplete") else {
        return sf_error(
            StatusCode::PRECONDITION_FAILED,
            "JOB_NOT_COMPLETE",
            &format!(
                "Job {} is not complete: its state is {}",
                job.info.id, job.info.state
            ),
        );
    };
    let start = match p.get("locator").filter(|l| !l.is_empty() && *l != "null") {
        None => 0,
        Some(l) => {
            let n = base64::engine::general_purpose::STANDARD
                .decode(l)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.parse::<usize>().ok());
            match n {
                Some(n) if n <= rows.len() => n,
                _ => return bad("INVALID_LOCATOR", &format!("Invalid locator: {l}")),
            }
        }
    };
    let max = match p.get("maxRecords").map(|m| m.parse::<usize>()) {
        None => usize::MAX,
        Some(Ok(m)) if m > 0 => m,
        Some(_) => return bad("INVALIDREQUEST", "maxRecords must be a positive integer"),
    };
    let end = start.saturating_add(max).min(rows.len());
    let locator = if end < rows.len() {
        base64::engine::general_purpose::STANDARD.encode(end.to_string())
    } else {
        "null".to_string()
    };
    let sep = delimiter_byte(&job.info.delimiter).unwrap_or(b',');
    let eol: &'static [u8] = if job.info.line_ending == "CRLF" {
        b"\r\n"
    } else {
        b"\n"
    };
    let mut header_line = Vec::new();
    for (k, f) in job.fields.iter().enumerate() {
        if k > 0 {
            header_line.push(sep);
        }
        csv_text(&mut header_line, &f.label());
    }
    header_line.extend_from_slice(eol);
    let gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let mut stream = ResultStream {
        sim: sim.clone(),
        object: job.object,
        fields: job.fields.clone(),
        rows,
        pos: start,
        end,
        header: Some(header_line),
        sep,
        eol,
        gzip: gzip.then(|| flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast())),
        done: false,
    };
    let body = Body::from_stream(futures::stream::poll_fn(move |_| {
        std::task::Poll::Ready(stream.next_chunk().map(Ok::<Bytes, std::io::Error>))
    }));
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv"));
    h.insert("Sforce-NumberOfRecords", HeaderValue::from(end - start));
    if let Ok(v) = HeaderValue::from_str(&locator) {
        h.insert("Sforce-Locator", v);
    }
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    resp
}

// ---------------------------------------------------------------- ingest jobs

const OPERATIONS: [&str; 5] = ["insert", "update", "upsert", "delete", "hardDelete"];

async fn create_ingest(
    State(sim): State<Arc<Sim>>,
    UrlPath(ver): UrlPath<String>,
    body: Bytes,
) -> Response {
    check!(check_version(&ver));
    let body = check!(parse_json(&body));
    let operation = body["operation"].as_str().unwrap_or("");
    if !OPERATIONS.contains(&operation) {
        return bad(
            "INVALIDJOB",
            &format!("InvalidJob : Invalid operation: {operation}"),
        );
    }
    let store = sim.store.read().unwrap_or_else(|e| e.into_inner());
    let name = body["object"].as_str().unwrap_or("");
    let Some(object) = store.catalog.object(name) else {
        return bad(
            "INVALIDJOB",
            &format!("InvalidJob : Unable to find object: {name}"),
        );
    };
    let meta = &store.catalog.objects[object];
    let mut extra = Vec::new();
    let ext_field = if operation == "upsert" {
        let ext = body["externalIdFieldName"].as_str().unwrap_or("");
        match meta.field(ext) {
            Some(i) if meta.fields[i].external_id || meta.fields[i].ftype == FType::Id => {
                extra.push(("externalIdFieldName", json!(meta.fields[i].name)));
                Some(i)
            }
            _ => {
                return bad(
                    "INVALIDJOB",
                    &format!(
                        "InvalidJob : Field name provided, {ext} is not an External ID or indexed field for {}",
                        meta.name
                    ),
                );
            }
        }
    } else {
        None
    };
    let mut info = check!(new_info(&sim, &ver, &body, &meta.name, operation));
    info.state = "Open".into();
    let resp = info_json(&info, &store, "V2Ingest", false, &extra);
    let job = IngestJob {
        info: info.clone(),
        object,
        ext_field,
        data: Vec::new(),
        results: None,
    };
    sim.jobs
        .ingest
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(info.id.clone(), job);
    json_response(StatusCode::OK, resp.to_string().into_bytes())
}

async fn list_ingest(State(sim): State<Arc<Sim>>, UrlPath(ver): UrlPath<String>) -> Response {
    check!(check_version(&ver));
    let store = sim.store.read().unwrap_or_else(|e| e.into_inner());
    let jobs = sim.jobs.ingest.lock().unwrap_or_else(|e| e.into_inner());
    let records: Vec<Value> = jobs.values().map(|j| ingest_info(j, &store)).collect();
    json_response(
        StatusCode::OK,
        json!({"done": true, "records": records, "nextRecordsUrl": null})
            .to_string()
            .into_bytes(),
    )
}

fn ingest_info(j: &IngestJob, store: &Store) -> Value {
    let mut extra = Vec::new();
    if let Some(f) = j.ext_field {
        extra.push((
            "externalIdFieldName",
            json!(store.catalog.objects[j.object].fields[f].name),
        ));
    }
    let mut v = info_json(&j.info, store, "V2Ingest", true, &extra);
    let failed = j.results.as_ref().map_or(0, |r| r.failed_n);
    v["numberRecordsFailed"] = json!(failed);
    v["apiActiveProcessingTime"] = json!(if j.info.state == "JobComplete" { 30 } else { 0 });
    v["apexProcessingTime"] = json!(0);
    v
}

async fn upload(
    State(sim): State<Arc<Sim>>,
    UrlPath((ver, id)): UrlPath<(String, String)>,
    body: Bytes,
) -> Response {
    check!(check_version(&ver));
    let mut jobs = sim.jobs.ingest.lock().unwrap_or_else(|e| e.into_inner());
    let Some(job) = jobs.get_mut(&id) else {
        return not_found();
    };
    if job.info.state != "Open" {
        return sf_error(
            StatusCode::CONFLICT,
            "INVALIDJOBSTATE",
            "Job is not in the Open state; data can only be uploaded to an Open job",
        );
    }
    if job.data.len() + body.len() > 150 * 1024 * 1024 {
        return bad(
            "INVALIDBATCH",
            "The uploaded data exceeds the 150 MB limit of a job",
        );
    }
    if !job.data.is_empty() {
        return bad("INVALIDBATCH", "Only one upload is allowed per job");
    }
    job.data.extend_from_slice(&body);
    sim.jobs.ingest_batches.fetch_add(1, Ordering::SeqCst);
    StatusCode::CREATED.into_response()
}

async fn patch_ingest(
    State(sim): State<Arc<Sim>>,
    UrlPath((ver, id)): UrlPath<(String, String)>,
    body: Bytes,
) -> Response {
    check!(check_version(&ver));
    let body = check!(parse_json(&body));
    let target = body["state"].as_str().unwrap_or("").to_string();
    let now = sim.now_ms();
    let mut job = {
        let jobs = sim.jobs.ingest.lock().unwrap_or_else(|e| e.into_inner());
        match jobs.get(&id) {
            Some(j) => j.clone(),
            None => return not_found(),
        }
    };
    match (job.info.state.as_str(), target.as_str()) {
        ("Open", "UploadComplete") => {
            job.info.state = "UploadComplete".into();
            let mut store = sim.store.write().unwrap_or_else(|e| e.into_inner());
            let res = if job.info.fail {
                job.info.error =
                    Some("InternalServerError : the ingest job failed (simulated)".into());
                unprocessed_only(&job)
            } else {
                match process(&mut store, &job, now) {
                    Ok(r) => r,
                    Err(msg) => {
                        job.info.fail = true;
                        job.info.error = Some(msg);
                        unprocessed_only(&job)
                    }
                }
            };
            job.info.processed = res.processed;
            job.results = Some(res);
        }
        ("Open" | "UploadComplete" | "InProgress", "Aborted") => {
            job.info.state = "Aborted".into();
            if job.results.is_none() {
                job.results = Some(unprocessed_only(&job));
            }
        }
        (s, t) => {
            return bad(
                "INVALIDJOBSTATE",
                &format!("Cannot change the state of a job from {s} to {t}"),
            );
        }
    }
    job.info.modstamp = now;
    let store = sim.store.read().unwrap_or_else(|e| e.into_inner());
    let resp = info_json(&job.info, &store, "V2Ingest", false, &[]);
    sim.jobs
        .ingest
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id, job);
    json_response(StatusCode::OK, resp.to_string().into_bytes())
}

async fn get_ingest(
    State(sim): State<Arc<Sim>>,
    UrlPath((ver, id)): UrlPath<(String, String)>,
) -> Response {
    check!(check_version(&ver));
    let store = sim.store.read().unwrap_or_else(|e| e.into_inner());
    let mut jobs = sim.jobs.ingest.lock().unwrap_or_else(|e| e.into_inner());
    let Some(job) = jobs.get_mut(&id) else {
        return not_found();
    };
    match job.info.state.as_str() {
        "UploadComplete" => job.info.state = "InProgress".into(),
        "InProgress" => {
            job.info.state = if job.info.fail {
                "Failed".into()
            } else {
                "JobComplete".into()
            }
        }
        _ => {}
    }
    json_response(
        StatusCode::OK,
        ingest_info(job, &store).to_string().into_bytes(),
    )
}

async fn delete_ingest(
    State(sim): State<Arc<Sim>>,
    UrlPath((ver, id)): UrlPath<(String, String)>,
) -> Response {
    check!(check_version(&ver));
    let mut jobs = sim.jobs.ingest.lock().unwrap_or_else(|e| e.into_inner());
    let Some(job) = jobs.get(&id) else {
        return not_found();
    };
    if !matches!(
        job.info.state.as_str(),
        "JobComplete" | "Failed" | "Aborted"
    ) {
        return bad(
            "INVALIDJOBSTATE",
            "Only jobs in a terminal state (JobComplete, Failed, Aborted) can be deleted",
        );
    }
    jobs.remove(&id);
    StatusCode::NO_CONTENT.into_response()
}

fn ingest_result(sim: &Sim, ver: &str, id: &str, pick: fn(&IngestResults) -> &Vec<u8>) -> Response {
    check!(check_version(ver));
    let jobs = sim.jobs.ingest.lock().unwrap_or_else(|e| e.into_inner());
    let Some(job) = jobs.get(id) else {
        return not_found();
    };
    let ready = matches!(
        job.info.state.as_str(),
        "JobComplete" | "Failed" | "Aborted"
    );
    match (&job.results, ready) {
        (Some(r), true) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/csv")],
            pick(r).clone(),
        )
            .into_response(),
        _ => sf_error(
            StatusCode::PRECONDITION_FAILED,
            "JOB_NOT_COMPLETE",
            &format!("Job {id} is not complete: its state is {}", job.info.state),
        ),
    }
}

async fn ingest_success(
    State(sim): State<Arc<Sim>>,
    UrlPath((ver, id)): UrlPath<(String, String)>,
) -> Response {
    ingest_result(&sim, &ver, &id, |r| &r.success)
}

async fn ingest_failed(
    State(sim): State<Arc<Sim>>,
    UrlPath((ver, id)): UrlPath<(String, String)>,
) -> Response {
    ingest_result(&sim, &ver, &id, |r| &r.failed)
}

async fn ingest_unprocessed(
    State(sim): State<Arc<Sim>>,
    UrlPath((ver, id)): UrlPath<(String, String)>,
) -> Response {
    ingest_result(&sim, &ver, &id, |r| &r.unprocessed)
}

fn csv_reader(job: &IngestJob) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .delimiter(delimiter_byte(&job.info.delimiter).unwrap_or(b','))
        .has_headers(true)
        .from_reader(&job.data[..])
}

fn write_row(out: &mut Vec<u8>, sep: u8, eol: &[u8], lead: &[&str], rec: &csv::StringRecord) {
    for (k, s) in lead
        .iter()
        .chain(rec.iter().collect::<Vec<_>>().iter())
        .enumerate()
    {
        if k > 0 {
            out.push(sep);
        }
        csv_text(out, s);
    }
    out.extend_from_slice(eol);
}

fn unprocessed_only(job: &IngestJob) -> IngestResults {
    let sep = delimiter_byte(&job.info.delimiter).unwrap_or(b',');
    let eol: &[u8] = if job.info.line_ending == "CRLF" {
        b"\r\n"
    } else {
        b"\n"
    };
    let mut r = IngestResults::default();
    let mut rdr = csv_reader(job);
    let headers = rdr.headers().cloned().unwrap_or_default();
    write_row(
        &mut r.success,
        sep,
        eol,
        &["sf__Id", "sf__Created"],
        &headers,
    );
    write_row(&mut r.failed, sep, eol, &["sf__Id", "sf__Error"], &headers);
    write_row(&mut r.unprocessed, sep, eol, &[], &headers);
    for rec in rdr.records().flatten() {
        write_row(&mut r.unprocessed, sep, eol, &[], &rec);
    }
    r
}

/// Processes an uploaded CSV; Err is a job-level failure (bad header, unparsable CSV).
fn process(store: &mut Store, job: &IngestJob, now: i64) -> Result<IngestResults, String> {
    let sep = delimiter_byte(&job.info.delimiter).unwrap_or(b',');
    let eol: &[u8] = if job.info.line_ending == "CRLF" {
        b"\r\n"
    } else {
        b"\n"
    };
    let obj = job.object;
    let op = job.info.operation.as_str();
    let mut rdr = csv_reader(job);
    let headers = rdr
        .headers()
        .map_err(|e| format!("InvalidBatch : Failed to parse CSV header: {e}"))?
        .clone();
    let meta = &store.catalog.objects[obj];
    let mut cols = Vec::new();
    for h in headers.iter() {
        let i = meta
            .field(h)
            .ok_or_else(|| format!("InvalidBatch : Field name not found : {h}"))?;
        cols.push(i);
    }
    let id_col = headers.iter().position(|h| h.eq_ignore_ascii_case("Id"));
    if matches!(op, "update" | "delete" | "hardDelete") && id_col.is_none() {
        return Err("InvalidBatch : Field name not found : Id".into());
    }
    let ext_col = job
        .ext_field
        .and_then(|f| cols.iter().position(|&c| c == f));
    if op == "upsert" && ext_col.is_none() {
        return Err(format!(
            "InvalidBatch : Field name not found : {}",
            job.ext_field
                .map(|f| meta.fields[f].name.clone())
                .unwrap_or_default()
        ));
    }
    let mut r = IngestResults::default();
    write_row(
        &mut r.success,
        sep,
        eol,
        &["sf__Id", "sf__Created"],
        &headers,
    );
    write_row(&mut r.failed, sep, eol, &["sf__Id", "sf__Error"], &headers);
    write_row(&mut r.unprocessed, sep, eol, &[], &headers);
    let user = pack(4, 0);
    let mut index = match (op, job.ext_field, ext_col) {
        ("upsert", Some(f), Some(c)) if meta.fields[f].ftype != FType::Id => {
            let keys: Vec<String> = csv_reader(job)
                .records()
                .flatten()
                .filter_map(|rec| rec.get(c).map(str::to_string))
                .collect();
            ExtIndex::build(store, obj, f, keys.iter().map(String::as_str))
        }
        _ => ExtIndex::default(),
    };
    for rec in rdr.records() {
        let rec = rec.map_err(|e| format!("InvalidBatch : Failed to parse CSV: {e}"))?;
        r.processed += 1;
        let outcome = ingest_row(
            store,
            obj,
            op,
            &headers,
            &rec,
            id_col,
            ext_col,
            job.ext_field,
            &mut index,
            now,
            user,
        );
        match outcome {
            Ok((id, created)) => write_row(
                &mut r.success,
                sep,
                eol,
                &[&id, if created { "true" } else { "false" }],
                &rec,
            ),
            Err((id, e)) => {
                r.failed_n += 1;
                let msg = format!("{}:{}:{} --", e.code, e.message, e.fields.join(","));
                write_row(&mut r.failed, sep, eol, &[&id, &msg], &rec);
            }
        }
    }
    Ok(r)
}

#[allow(clippy::too_many_arguments)]
fn ingest_row(
    store: &mut Store,
    obj: usize,
    op: &str,
    headers: &csv::StringRecord,
    rec: &csv::StringRecord,
    id_col: Option<usize>,
    ext_col: Option<usize>,
    ext_field: Option<usize>,
    index: &mut ExtIndex,
    now: i64,
    user: u64,
) -> Result<(String, bool), (String, RecError)> {
    let err = |code: &str, msg: String| RecError {
        code: code.into(),
        message: msg,
        fields: vec![],
    };
    let by_id = |store: &Store| -> Result<usize, (String, RecError)> {
        let id = rec.get(id_col.unwrap_or(0)).unwrap_or("");
        let p = store
            .resolve(id)
            .filter(|p| unpack(*p).0 == obj)
            .ok_or_else(|| {
                (
                    String::new(),
                    err(
                        "INVALID_CROSS_REFERENCE_KEY",
                        format!("invalid cross reference id: {id}"),
                    ),
                )
            })?;
        Ok(unpack(p).1)
    };
    let row = match op {
        "insert" => None,
        "update" | "delete" | "hardDelete" => {
            let row = by_id(store)?;
            if store.tables[obj].state[row] != LIVE && op != "hardDelete" {
                return Err((
                    store.id_of(pack(obj, row)),
                    err("ENTITY_IS_DELETED", "entity is deleted".into()),
                ));
            }
            Some(row)
        }
        _ => {
            let key = rec.get(ext_col.unwrap_or(0)).unwrap_or("");
            let f = ext_field.unwrap_or(0);
            if store.catalog.objects[obj].fields[f].ftype == FType::Id {
                if key.is_empty() {
                    None
                } else {
                    Some(by_id(store)?)
                }
            } else {
                let hits = index.get(key);
                if hits.len() > 1 {
                    return Err((
                        String::new(),
                        err(
                            "DUPLICATE_EXTERNAL_ID",
                            format!("more than one record found for external id field: {key}"),
                        ),
                    ));
                }
                hits.first().copied()
            }
        }
    };
    if op == "delete" || op == "hardDelete" {
        let row = row.unwrap_or(0);
        store.tables[obj].state[row] = if op == "delete" { DELETED } else { PURGED };
        store.tables[obj].touch(row, now);
        return Ok((store.id_of(pack(obj, row)), false));
    }
    let inputs = headers
        .iter()
        .zip(rec.iter())
        .filter(|(h, v)| !v.is_empty() && !h.eq_ignore_ascii_case("Id"))
        .map(|(h, v)| (h, Input::Text(v)));
    let id_for_err = row.map(|r| store.id_of(pack(obj, r))).unwrap_or_default();
    let vals = validate(store, obj, row, inputs, true).map_err(|e| (id_for_err, e))?;
    let created = row.is_none();
    let r = apply(store, obj, row, &vals, now, user);
    if created && let Some(c) = ext_col {
        index.add(rec.get(c).unwrap_or(""), r);
    }
    Ok((store.id_of(pack(obj, r)), created))
}
