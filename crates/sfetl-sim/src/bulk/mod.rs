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
use super::render::{csv_cell, csv_double, csv_text};
use super::rest::{check_version_since, not_found};
use super::server::{Sim, json_response, sf_error};
use super::soql::{self, Path};
use super::store::{LIVE, Store, Val, make_id, pack, unpack, write_datetime};
use super::write::{ExtIndex, Input, RecError, apply, validate};

/// The version that brought Bulk API 2.0 query jobs.
const QUERY_SINCE: u32 = 47;
/// The version that brought Bulk API 2.0 ingest jobs.
const INGEST_SINCE: u32 = 41;

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
    /// Where the automatic chunks end in `rows` (result pages never cross one).
    chunk_ends: Vec<usize>,
    /// Rows the query matches, counted once for the Bulk processing time.
    matched: Option<usize>,
    /// The org when the job completed ([`Store::pin`]): its results show the rows as they
    /// stood then.
    pin: Option<Arc<[u64]>>,
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
    /// Jobs still running (not JobComplete, Failed or Aborted): each is a long transaction.
    pub fn running(&self) -> usize {
        let terminal = |s: &str| matches!(s, "JobComplete" | "Failed" | "Aborted");
        let q = self
            .query
            .lock()
            .map(|m| m.values().filter(|j| !terminal(&j.info.state)).count())
            .unwrap_or(0);
        let i = self
            .ingest
            .lock()
            .map(|m| m.values().filter(|j| !terminal(&j.info.state)).count())
            .unwrap_or(0);
        q + i
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
        // Salesforce takes up to 150 MB per job upload (about 100 MB of CSV), far above
        // axum's 2 MiB default body limit.
        (
            "/services/data/{ver}/jobs/ingest/{id}/batches",
            put(upload).layer(axum::extract::DefaultBodyLimit::max(150 << 20)),
        ),
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

mod ingest;
mod query;

use ingest::*;
use query::*;

fn dt(ms: i64) -> String {
    let mut v = Vec::new();
    write_datetime(ms, &mut v);
    String::from_utf8(v).unwrap_or_default()
}

fn user_id(store: &Store) -> String {
    store.id_of(pack(4, 0))
}

/// The answer of `GET jobs/query` / `GET jobs/ingest`: every job on one page.
fn job_list(records: Vec<Value>) -> Response {
    json_response(
        StatusCode::OK,
        json!({"done": true, "records": records, "nextRecordsUrl": null})
            .to_string()
            .into_bytes(),
    )
}

/// Salesforce deletes only jobs in a terminal state, query and ingest alike.
fn refuse_delete_unless_terminal(state: &str) -> Option<Response> {
    (!matches!(state, "JobComplete" | "Failed" | "Aborted")).then(|| {
        bad(
            "INVALIDJOBSTATE",
            "Only jobs in a terminal state (JobComplete, Failed, Aborted) can be deleted",
        )
    })
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
    let now = sim.org_time_ms();
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
