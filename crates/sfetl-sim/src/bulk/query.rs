//! Bulk API 2.0 query jobs: create, poll, results streamed as CSV from the columns, abort, delete.

use super::*;

/// Bulk API 2.0's answer to a parent-to-child subquery (`SELECT Id, (SELECT Id FROM Contacts)
/// FROM Account`), as clients report it.
pub const AGGREGATE_RELATIONSHIPS: &str =
    "Aggregate Relationships not supported in Bulk V2 Query with CSV content type";

pub(super) async fn create_query(
    State(sim): State<Arc<Sim>>,
    UrlPath(ver): UrlPath<String>,
    body: Bytes,
) -> Response {
    check!(check_version_since(&ver, QUERY_SINCE));
    let body = check!(parse_json(&body));
    let operation = body["operation"].as_str().unwrap_or("");
    if operation != "query" && operation != "queryAll" {
        return bad("INVALIDJOB", &format!("Invalid operation: {operation}"));
    }
    let Some(q) = body["query"].as_str() else {
        return bad("INVALIDJOB", "The query field is required");
    };
    let store = sim.store.read().unwrap_or_else(|e| e.into_inner());
    let parsed = match soql::parse(q, &store) {
        Ok(p) => p,
        Err(e) => return bad(e.code, &e.message),
    };
    // Bulk API 2.0 serves child-to-parent paths (in SELECT and WHERE) and semi-joins, but not
    // parent-to-child subqueries.
    if parsed.child_subquery.is_some() {
        return bad("FUNCTIONALITY_NOT_ENABLED", AGGREGATE_RELATIONSHIPS);
    }
    if let Some(refusal) = crate::quirks::bulk_refusal(&store, &parsed) {
        return refusal;
    }
    if parsed.fields.len() > sim.limits().query_max_fields {
        return bad(
            "QUERY_TOO_COMPLICATED",
            crate::limits::QUERY_TOO_COMPLICATED,
        );
    }
    // The rolling 24-hour cap counts every attempt; past it, creation is refused.
    let (used, cap) = sim.with_limits(|l| {
        l.bulk_query_jobs_used += 1;
        (l.bulk_query_jobs_used, l.bulk_query_jobs_per_day)
    });
    if used > cap {
        return bad(
            "LIMIT_EXCEEDED",
            &format!("Max bulk v2 query jobs ({cap}) per 24 hrs has been reached ({used})"),
        );
    }
    if parsed.count_only || parsed.aggregate.is_some() {
        // Bulk API 2.0 supports neither aggregate functions nor GROUP BY (nor date functions
        // in GROUP BY).
        let what = if parsed.count_only {
            "COUNT()"
        } else {
            "aggregate functions and GROUP BY"
        };
        return bad(
            "FUNCTIONALITY_NOT_ENABLED",
            &format!("Aggregate queries are not supported by Bulk API 2.0 query: {what}"),
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
            _ if p.sf_type == "json" => {
                return bad(
                    "FUNCTIONALITY_NOT_ENABLED",
                    &format!(
                        "Selecting json field {} is not supported in Bulk Query",
                        p.name
                    ),
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
        chunk_ends: Vec::new(),
        matched: None,
        pin: None,
    };
    sim.jobs
        .query
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(info.id.clone(), job);
    json_response(StatusCode::OK, resp.to_string().into_bytes())
}

pub(super) async fn list_query(
    State(sim): State<Arc<Sim>>,
    UrlPath(ver): UrlPath<String>,
) -> Response {
    check!(check_version_since(&ver, QUERY_SINCE));
    let store = sim.store.read().unwrap_or_else(|e| e.into_inner());
    let jobs = sim.jobs.query.lock().unwrap_or_else(|e| e.into_inner());
    job_list(
        jobs.values()
            .map(|j| info_json(&j.info, &store, "V2Query", true, &[]))
            .collect(),
    )
}

pub(super) async fn get_query(
    State(sim): State<Arc<Sim>>,
    UrlPath((ver, id)): UrlPath<(String, String)>,
) -> Response {
    check!(check_version_since(&ver, QUERY_SINCE));
    let now = sim.org_time_ms();
    let limits = sim.limits();
    let store = sim.store.read().unwrap_or_else(|e| e.into_inner());
    let mut jobs = sim.jobs.query.lock().unwrap_or_else(|e| e.into_inner());
    let Some(job) = jobs.get_mut(&id) else {
        return not_found();
    };
    let queued = limits.bulk_queue_ms > 0 || limits.bulk_rows_per_second > 0;
    let mut completed = false;
    let busy = queued && job.info.state == "InProgress" && now < processed_at(job, &store, &limits);
    match job.info.state.as_str() {
        "UploadComplete" if queued && now < job.info.created + limits.bulk_queue_ms as i64 => {}
        "UploadComplete" => {
            job.info.state = "InProgress".into();
            job.info.modstamp = now;
        }
        "InProgress" if busy => {}
        "InProgress" => {
            if job.info.fail {
                job.info.state = "Failed".into();
                job.info.error =
                    Some("InternalServerError : the query job failed (simulated)".into());
            } else {
                run_job(job, &store, &limits);
                completed = job.info.state == "JobComplete";
            }
            job.info.modstamp = now;
        }
        _ => {}
    }
    let _ = &job.query;
    let body = info_json(&job.info, &store, "V2Query", true, &[])
        .to_string()
        .into_bytes();
    drop((jobs, store));
    if completed {
        crate::changes::after_bulk_query_completes(&sim);
    }
    json_response(StatusCode::OK, body)
}

/// When a job's processing ends with the Bulk processing time on (`bulk_queue_ms` in the
/// queue, then `bulk_rows_per_second` for its matching rows); the rows are counted once.
fn processed_at(job: &mut QueryJob, store: &Store, limits: &crate::limits::Limits) -> i64 {
    let rows = *job
        .matched
        .get_or_insert_with(|| soql::execute_counted(store, &job.parsed, job.all).1);
    let per_second = limits.bulk_rows_per_second.max(1) as i64;
    let work = if limits.bulk_rows_per_second == 0 {
        0
    } else {
        rows as i64 * 1000 / per_second
    };
    job.info.created + limits.bulk_queue_ms as i64 + work
}

/// Executes a job's query as Bulk API 2.0 does. Without ORDER BY or LIMIT the rows are
/// chunked (`bulk_chunk_rows`) and the chunks finish out of order (each pair swapped); with
/// them there is one unchunked query, which times out on a big object.
fn run_job(job: &mut QueryJob, store: &Store, limits: &crate::limits::Limits) {
    let (rows, matched) = soql::execute_counted(store, &job.parsed, job.all);
    if let Some(message) =
        crate::quirks::bulk_failure(store, &job.parsed, rows.len(), limits.sharing_check_rows)
    {
        job.info.state = "Failed".into();
        job.info.error = Some(message);
        return;
    }
    let unchunked = !job.parsed.order.is_empty() || job.parsed.limit.is_some();
    if limits.bulk_times_out(matched, unchunked) {
        job.info.state = "Failed".into();
        job.info.error = Some(format!(
            "InvalidBatch : Failed to process query: QUERY_TIMEOUT: {}",
            crate::limits::QUERY_TIMEOUT
        ));
        return;
    }
    let (rows, chunk_ends) = if unchunked {
        let n = rows.len();
        (rows, vec![n])
    } else {
        chunk_out_of_order(&rows, limits.bulk_chunk_rows)
    };
    job.info.processed = rows.len() as u64;
    job.rows = Some(Arc::new(rows));
    job.pin = Some(store.pin());
    job.chunk_ends = chunk_ends;
    job.info.state = "JobComplete".into();
}

/// The rows cut into chunks of `size`, each pair of chunks swapped (chunks are processed in
/// parallel and finish in any order), plus where each chunk ends.
fn chunk_out_of_order(rows: &[u32], size: usize) -> (Vec<u32>, Vec<usize>) {
    let chunks: Vec<&[u32]> = rows.chunks(size.max(1)).collect();
    let mut out = Vec::with_capacity(rows.len());
    let mut ends = Vec::with_capacity(chunks.len());
    for pair in chunks.chunks(2) {
        for chunk in pair.iter().rev() {
            out.extend_from_slice(chunk);
            ends.push(out.len());
        }
    }
    if ends.is_empty() {
        ends.push(0);
    }
    (out, ends)
}

pub(super) async fn patch_query(
    State(sim): State<Arc<Sim>>,
    UrlPath((ver, id)): UrlPath<(String, String)>,
    body: Bytes,
) -> Response {
    check!(check_version_since(&ver, QUERY_SINCE));
    let body = check!(parse_json(&body));
    let now = sim.org_time_ms();
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

pub(super) async fn delete_query(
    State(sim): State<Arc<Sim>>,
    UrlPath((ver, id)): UrlPath<(String, String)>,
) -> Response {
    check!(check_version_since(&ver, QUERY_SINCE));
    // The store before the jobs, as a status poll takes them.
    let mut store = sim.store.write().unwrap_or_else(|e| e.into_inner());
    let mut jobs = sim.jobs.query.lock().unwrap_or_else(|e| e.into_inner());
    let Some(job) = jobs.get(&id) else {
        return not_found();
    };
    if let Some(refusal) = super::refuse_delete_unless_terminal(&job.info.state) {
        return refusal;
    }
    let gone = jobs.remove(&id).and_then(|j| j.pin);
    // A download still streaming holds its own copy of the pin.
    let pinned = jobs.values().any(|j| j.pin.is_some())
        || gone.is_some_and(|pin| Arc::strong_count(&pin) > 1);
    if !pinned {
        store.forget_versions();
    }
    StatusCode::NO_CONTENT.into_response()
}

const CHUNK_ROWS: usize = 2048;

/// The most bytes of a results body sent as one HTTP chunk. A client reads a real org's body
/// in small pieces: over HTTP/2 each DATA frame holds at most 16,384 bytes unless the client
/// raises `SETTINGS_MAX_FRAME_SIZE` (RFC 9113, section 4.2), and over a link slower than the
/// client each read holds what has arrived. Rendered in chunks of [`CHUNK_ROWS`] rows and sent
/// whole, a gzip body came in frames of some 470 KB, and a client that inflated each frame
/// as it came looked faster than it is against an org.
const BODY_PIECE: usize = 16 << 10;

struct ResultStream {
    sim: Arc<Sim>,
    object: usize,
    /// Selected fields in column order (alphabetical for API versions up to 49.0).
    fields: Vec<Path>,
    rows: Arc<Vec<u32>>,
    /// The org as the job's query found it ([`Store::pin`]): the values rendered.
    at: Option<Arc<[u64]>>,
    pos: usize,
    end: usize,
    header: Option<Vec<u8>>,
    sep: u8,
    eol: &'static [u8],
    gzip: Option<flate2::write::GzEncoder<Vec<u8>>>,
    done: bool,
    /// What is rendered and not sent yet, in pieces of at most [`BODY_PIECE`] bytes.
    pieces: std::collections::VecDeque<Bytes>,
}

impl ResultStream {
    /// The next HTTP chunk of the body: at most [`BODY_PIECE`] bytes, never empty.
    fn next_piece(&mut self) -> Option<Bytes> {
        loop {
            if let Some(piece) = self.pieces.pop_front() {
                return Some(piece);
            }
            // A chunk can be empty: the gzip encoder may hold all of it back.
            let mut rest = self.next_chunk()?;
            while rest.len() > BODY_PIECE {
                self.pieces.push_back(rest.split_to(BODY_PIECE));
            }
            if !rest.is_empty() {
                self.pieces.push_back(rest);
            }
        }
    }

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
                    let v = soql::read_at(&store, self.object, row as usize, p, self.at.as_deref());
                    match v {
                        // Bulk writes big and tiny doubles as Java does: 1.6147805824397E13.
                        Val::Num(n) if p.ftype == FType::Double => csv_double(&mut out, n),
                        v => csv_cell(&mut out, &store, &v),
                    }
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

/// The version a request names, as a number (`v59.0` -> 59.0).
fn version_number(ver: &str) -> f64 {
    ver.trim_start_matches('v').parse().unwrap_or(0.0)
}

/// The columns of a results page: SELECT order, or alphabetical up to API version 49.0.
fn result_columns(fields: &[Path], api_version: f64) -> Vec<Path> {
    let mut cols = fields.to_vec();
    if api_version <= 49.0 {
        cols.sort_by_key(|p| p.label().to_ascii_lowercase());
    }
    cols
}

pub(super) async fn query_results(
    State(sim): State<Arc<Sim>>,
    UrlPath((ver, id)): UrlPath<(String, String)>,
    UrlQuery(p): UrlQuery<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    check!(check_version_since(&ver, QUERY_SINCE));
    let job = sim
        .jobs
        .query
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&id)
        .cloned();
    let Some(job) = job else { return not_found() };
    if version_number(&ver) != job.info.api_version {
        return sf_error(
            StatusCode::CONFLICT,
            "INVALIDJOB",
            &format!(
                "Job {} was created with API version {:.1}: fetch its results with that version",
                job.info.id, job.info.api_version
            ),
        );
    }
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
    // A page ends at maxRecords or at the end of the chunk it started in, whichever is first,
    // so pages are often shorter than maxRecords.
    let chunk_end = job
        .chunk_ends
        .iter()
        .copied()
        .find(|&e| e > start)
        .unwrap_or(rows.len());
    let end = start.saturating_add(max).min(chunk_end).min(rows.len());
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
    let fields = result_columns(&job.fields, job.info.api_version);
    // A job without rows answers an empty body, not even a header line.
    let header_line = (!rows.is_empty()).then(|| {
        let mut line = Vec::new();
        for (k, f) in fields.iter().enumerate() {
            if k > 0 {
                line.push(sep);
            }
            csv_text(&mut line, &f.label());
        }
        line.extend_from_slice(eol);
        line
    });
    let gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let mut stream = ResultStream {
        sim: sim.clone(),
        object: job.object,
        fields,
        rows,
        at: job.pin.clone(),
        pos: start,
        end,
        header: header_line,
        sep,
        eol,
        gzip: gzip.then(|| flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast())),
        done: false,
        pieces: Default::default(),
    };
    let body = Body::from_stream(futures::stream::poll_fn(move |_| {
        std::task::Poll::Ready(stream.next_piece().map(Ok::<Bytes, std::io::Error>))
    }));
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=UTF-8"),
    );
    h.insert("Sforce-NumberOfRecords", HeaderValue::from(end - start));
    if let Ok(v) = HeaderValue::from_str(&locator) {
        h.insert("Sforce-Locator", v);
    }
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_come_out_pairwise_swapped_with_their_ends() {
        let rows: Vec<u32> = (0..7).collect();
        let (out, ends) = chunk_out_of_order(&rows, 2);
        assert_eq!(out, vec![2, 3, 0, 1, 6, 4, 5]);
        assert_eq!(ends, vec![2, 4, 5, 7]);
        assert_eq!(chunk_out_of_order(&[], 2), (vec![], vec![0]));
        assert_eq!(chunk_out_of_order(&rows, 100), (rows.clone(), vec![7]));
    }
}
