//! REST API (`/services/data/vXX.X/...`): versions, describeGlobal, describe, query / queryAll
//! with `nextRecordsUrl` paging, limits, sObject rows, replication (deleted / updated) and
//! sObject Collections.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query as UrlQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, patch, post};
use serde_json::{Value, json};

use super::describe::{FIXTURE_VERSION, FType};
use super::render::{Blobs, json_record, json_str};
use super::server::{Sim, json_response, sf_error};
use super::soql::{self, Path, Query};
use super::store::{DELETED, LIVE, Store, parse_datetime, write_datetime};
use super::write::{ExtIndex, Input, RecError, apply, validate};

/// Oldest and newest API versions served.
pub const VERSIONS: std::ops::RangeInclusive<u32> = 31..=62;

/// A REST query in progress (what a `nextRecordsUrl` locator points at).
#[derive(Debug, Clone)]
pub struct Cursor {
    /// Base object.
    pub object: usize,
    /// Selected fields.
    pub fields: Vec<Path>,
    /// Matching rows, in result order.
    pub rows: Arc<Vec<u32>>,
    /// Page size.
    pub batch: usize,
    /// The session lineage that opened it: a locator belongs to its session, so after a
    /// refresh with rotation (a new lineage) continuing it answers `INVALID_SESSION_ID`.
    pub session: Option<String>,
    /// The user who opened it: a user has at most `cursors_per_user` open cursors.
    pub user: Option<String>,
    /// When it was opened (sequence): opening one too many releases the oldest.
    pub opened: u64,
    /// Last use: a cursor idle longer than `cursor_idle_seconds` expires.
    pub last_used: std::time::Instant,
}

fn session_of(sim: &Sim, headers: &HeaderMap) -> Option<String> {
    let auth = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    sim.oauth.session_key(auth)
}

fn user_of(sim: &Sim, headers: &HeaderMap) -> Option<String> {
    let auth = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    sim.oauth.check_bearer(auth).ok().map(|s| s.user_id)
}

/// Salesforce's answer to a locator that expired, was released or never existed.
fn invalid_locator() -> Response {
    sf_error(
        StatusCode::BAD_REQUEST,
        "INVALID_QUERY_LOCATOR",
        "invalid query locator",
    )
}

/// Keeps a new cursor, releasing the user's oldest ones beyond `cursors_per_user`.
fn open_cursor(sim: &Sim, loc: String, cursor: Cursor) {
    let max = sim.limits().cursors_per_user;
    let mut cursors = sim.cursors.lock().unwrap_or_else(|e| e.into_inner());
    let user = cursor.user.clone();
    cursors.insert(loc, cursor);
    let mut mine: Vec<(u64, String)> = cursors
        .iter()
        .filter(|(_, c)| c.user == user)
        .map(|(l, c)| (c.opened, l.clone()))
        .collect();
    mine.sort();
    let excess = mine.len().saturating_sub(max);
    for (_, l) in mine.into_iter().take(excess) {
        cursors.remove(&l);
    }
}

fn both(router: Router<Arc<Sim>>, path: &str, m: MethodRouter<Arc<Sim>>) -> Router<Arc<Sim>> {
    router.route(path, m.clone()).route(&format!("{path}/"), m)
}

/// The REST routes (state: the shared [`Sim`]).
pub fn routes() -> Router<Arc<Sim>> {
    let mut r = Router::new();
    r = both(r, "/services/data", get(versions));
    r = both(r, "/services/data/{ver}", get(resources));
    r = both(r, "/services/data/{ver}/sobjects", get(describe_global));
    r = both(
        r,
        "/services/data/{ver}/sobjects/{obj}",
        get(sobject_info).post(create_one),
    );
    r = both(
        r,
        "/services/data/{ver}/sobjects/{obj}/describe",
        get(describe),
    );
    r = both(
        r,
        "/services/data/{ver}/sobjects/{obj}/deleted",
        get(deleted),
    );
    r = both(
        r,
        "/services/data/{ver}/sobjects/{obj}/updated",
        get(updated),
    );
    r = both(
        r,
        "/services/data/{ver}/sobjects/{obj}/{id}",
        get(get_record).patch(patch_record).delete(delete_record),
    );
    r = both(
        r,
        "/services/data/{ver}/sobjects/{obj}/{id}/{field}",
        get(get_blob),
    );
    r = both(r, "/services/data/{ver}/query", get(query));
    r = both(r, "/services/data/{ver}/queryAll", get(query_all));
    r = both(r, "/services/data/{ver}/query/{loc}", get(query_more));
    r = both(r, "/services/data/{ver}/queryAll/{loc}", get(query_more));
    r = both(r, "/services/data/{ver}/limits", get(limits));
    r = both(
        r,
        "/services/data/{ver}/composite/sobjects",
        post(collections_create)
            .patch(collections_update)
            .delete(collections_delete),
    );
    r = both(
        r,
        "/services/data/{ver}/composite/sobjects/{obj}/{ext}",
        patch(collections_upsert),
    );
    r
}

fn label(v: u32) -> String {
    let i = v - 31;
    format!(
        "{} '{}",
        ["Summer", "Winter", "Spring"][(i % 3) as usize],
        14 + i.div_ceil(3)
    )
}

async fn versions() -> Response {
    let list: Vec<Value> = VERSIONS
        .map(|v| json!({"label": label(v), "url": format!("/services/data/v{v}.0"), "version": format!("{v}.0")}))
        .collect();
    json_response(
        StatusCode::OK,
        serde_json::to_vec(&list).unwrap_or_default(),
    )
}

/// Versions Salesforce retired (7.0 to 20.0 in Summer '22, 21.0 to 30.0 in Summer '25): REST
/// answers them 410 Gone rather than 404.
pub const RETIRED: std::ops::RangeInclusive<u32> = 7..=30;

/// Checks a `vXX.X` path segment: a version the org offers passes; a retired one gets 410 Gone,
/// any other (a later version, `v38` without `.0`) Salesforce's 404.
#[allow(clippy::result_large_err)]
pub fn check_version(ver: &str) -> Result<(), Response> {
    check_version_since(ver, *VERSIONS.start())
}

/// As [`check_version`], for a resource that came with version `since`: an offered version
/// before it gets the 404 of a resource that does not exist in that version (Bulk API 2.0
/// query jobs came with 47.0, its ingest jobs with 41.0, sObject Collections with 42.0 and
/// their upsert with 46.0).
#[allow(clippy::result_large_err)]
pub fn check_version_since(ver: &str, since: u32) -> Result<(), Response> {
    let number = ver
        .strip_prefix('v')
        .and_then(|v| v.strip_suffix(".0"))
        .and_then(|v| v.parse::<u32>().ok());
    match number {
        Some(v) if VERSIONS.contains(&v) && v >= since => Ok(()),
        // The body is modelled: Salesforce documents the status only.
        Some(v) if RETIRED.contains(&v) => Err(sf_error(
            StatusCode::GONE,
            "NOT_FOUND",
            "The requested resource does not exist",
        )),
        _ => Err(not_found()),
    }
}

/// Salesforce's 404 body.
pub fn not_found() -> Response {
    sf_error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "The requested resource does not exist",
    )
}

macro_rules! check {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(resp) => return resp,
        }
    };
}

mod collections;
mod records;

use collections::*;
use records::*;

fn read_store(sim: &Sim) -> std::sync::RwLockReadGuard<'_, Store> {
    sim.store.read().unwrap_or_else(|e| e.into_inner())
}

fn write_store(sim: &Sim) -> std::sync::RwLockWriteGuard<'_, Store> {
    sim.store.write().unwrap_or_else(|e| e.into_inner())
}

async fn resources(UrlPath(ver): UrlPath<String>) -> Response {
    check!(check_version(&ver));
    let base = format!("/services/data/{ver}");
    let body = json!({
        "sobjects": format!("{base}/sobjects"), "query": format!("{base}/query"),
        "queryAll": format!("{base}/queryAll"), "limits": format!("{base}/limits"),
        "composite": format!("{base}/composite"), "jobs": format!("{base}/jobs"),
    });
    json_response(StatusCode::OK, body.to_string().into_bytes())
}

fn versioned(v: &Value, ver: &str) -> Vec<u8> {
    serde_json::to_string(v)
        .unwrap_or_default()
        .replace(
            &format!("/services/data/{FIXTURE_VERSION}/"),
            &format!("/services/data/{ver}/"),
        )
        .into_bytes()
}

async fn describe_global(State(sim): State<Arc<Sim>>, UrlPath(ver): UrlPath<String>) -> Response {
    check!(check_version(&ver));
    let store = read_store(&sim);
    json_response(StatusCode::OK, versioned(&store.catalog.global, &ver))
}

async fn describe(
    State(sim): State<Arc<Sim>>,
    UrlPath((ver, obj)): UrlPath<(String, String)>,
) -> Response {
    check!(check_version(&ver));
    let store = read_store(&sim);
    match store.catalog.object(&obj) {
        Some(i) => json_response(
            StatusCode::OK,
            versioned(&store.catalog.objects[i].served_describe(), &ver),
        ),
        None => match store.catalog.extra_describe(&obj) {
            Some(d) => json_response(StatusCode::OK, versioned(&d, &ver)),
            None => not_found(),
        },
    }
}

async fn sobject_info(
    State(sim): State<Arc<Sim>>,
    UrlPath((ver, obj)): UrlPath<(String, String)>,
) -> Response {
    check!(check_version(&ver));
    let store = read_store(&sim);
    let Some(i) = store.catalog.object(&obj) else {
        return not_found();
    };
    let meta = &store.catalog.objects[i];
    let entry = store
        .catalog
        .global_entry(&meta.name)
        .cloned()
        .unwrap_or(Value::Null);
    let body = json!({"objectDescribe": entry, "recentItems": []});
    json_response(StatusCode::OK, versioned(&body, &ver))
}

/// Every field the API user sees, in describe order (a record read without `fields=`).
fn all_fields(store: &Store, obj: usize) -> Vec<Path> {
    store.catalog.objects[obj]
        .fields
        .iter()
        .enumerate()
        .filter(|(_, f)| f.access == crate::describe::Access::Visible)
        .map(|(i, f)| Path::own(i, f))
        .collect()
}

fn batch_size(headers: &HeaderMap) -> usize {
    headers
        .get("Sforce-Query-Options")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',')
                .find_map(|p| p.trim().strip_prefix("batchSize="))
        })
        .and_then(|n| n.trim().parse::<usize>().ok())
        .map_or(2000, |n| n.clamp(200, 2000))
}

async fn query(
    State(sim): State<Arc<Sim>>,
    UrlPath(ver): UrlPath<String>,
    UrlQuery(p): UrlQuery<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    run_query(sim, ver, p, headers, false)
}

async fn query_all(
    State(sim): State<Arc<Sim>>,
    UrlPath(ver): UrlPath<String>,
    UrlQuery(p): UrlQuery<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    run_query(sim, ver, p, headers, true)
}

fn soql_response(e: soql::SoqlError) -> Response {
    sf_error(StatusCode::BAD_REQUEST, e.code, &e.message)
}

fn run_query(
    sim: Arc<Sim>,
    ver: String,
    p: HashMap<String, String>,
    headers: HeaderMap,
    all: bool,
) -> Response {
    check!(check_version(&ver));
    let Some(q) = p.get("q") else {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            "A query string has to be specified",
        );
    };
    sim.log_soql(q);
    let store = read_store(&sim);
    let parsed: Query = match soql::parse(q, &store) {
        Ok(q) => q,
        Err(e) => return soql_response(e),
    };
    if let Some(pos) = parsed.child_subquery {
        // Salesforce serves these; the simulator's SOQL subset does not (yet).
        return sf_error(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            &soql::caret_message(
                q,
                pos,
                "parent-to-child relationship queries are outside the simulator's SOQL subset",
            ),
        );
    }
    let limits = sim.limits();
    if parsed.fields.len() > limits.query_max_fields {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "QUERY_TOO_COMPLICATED",
            crate::limits::QUERY_TOO_COMPLICATED,
        );
    }
    if let Some(refusal) = crate::quirks::rest_refusal(&store, &parsed) {
        return refusal;
    }
    let (rows, matched) = soql::execute_counted(&store, &parsed, all);
    if limits.rest_times_out(matched, !parsed.order.is_empty()) {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "QUERY_TIMEOUT",
            crate::limits::QUERY_TIMEOUT,
        );
    }
    if let Some(agg) = &parsed.aggregate {
        let body = crate::aggregate::answer(&store, parsed.object, &rows, agg);
        return json_response(StatusCode::OK, body.to_string().into_bytes());
    }
    if parsed.count_only {
        let body = json!({"totalSize": rows.len(), "done": true, "records": []});
        return json_response(StatusCode::OK, body.to_string().into_bytes());
    }
    let batch = crate::quirks::rest_batch(&store, &parsed, batch_size(&headers));
    if let Some(refusal) = crate::quirks::rest_page_refusal(
        &store,
        &parsed,
        rows.len(),
        batch,
        limits.sharing_check_rows,
    ) {
        return refusal;
    }
    let cursor = Cursor {
        object: parsed.object,
        fields: parsed.fields,
        rows: Arc::new(rows),
        batch,
        session: session_of(&sim, &headers),
        user: user_of(&sim, &headers),
        opened: sim.next_seq(),
        last_used: std::time::Instant::now(),
    };
    page(&sim, &store, &ver, cursor, 0, None)
}

fn page(
    sim: &Sim,
    store: &Store,
    ver: &str,
    cursor: Cursor,
    offset: usize,
    loc: Option<String>,
) -> Response {
    let total = cursor.rows.len();
    let end = (offset + cursor.batch).min(total);
    let mut out = Vec::with_capacity(256 * (end - offset) + 128);
    out.extend_from_slice(format!("{{\"totalSize\":{total},\"done\":{}", end >= total).as_bytes());
    if end < total {
        out.extend_from_slice(b",\"nextRecordsUrl\":");
        match loc {
            Some(loc) => json_str(&mut out, &format!("/services/data/{ver}/query/{loc}-{end}")),
            None => {
                let loc = format!("01gSIM{:012}", sim.next_seq());
                json_str(&mut out, &format!("/services/data/{ver}/query/{loc}-{end}"));
                open_cursor(sim, loc, cursor.clone());
            }
        }
    } else if let Some(loc) = loc {
        // The last page closes the cursor.
        sim.cursors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&loc);
    }
    out.extend_from_slice(b",\"records\":[");
    for (k, &row) in cursor.rows[offset..end].iter().enumerate() {
        if k > 0 {
            out.push(b',');
        }
        json_record(
            &mut out,
            store,
            cursor.object,
            row as usize,
            &cursor.fields,
            ver,
            Blobs::Urls,
        );
    }
    out.extend_from_slice(b"]}");
    json_response(StatusCode::OK, out)
}

async fn query_more(
    State(sim): State<Arc<Sim>>,
    UrlPath((ver, loc)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Response {
    check!(check_version(&ver));
    let Some((id, offset)) = loc.rsplit_once('-') else {
        return invalid_locator();
    };
    let Ok(offset) = offset.parse::<usize>() else {
        return invalid_locator();
    };
    let idle = std::time::Duration::from_secs(sim.limits().cursor_idle_seconds);
    let cursor = {
        let mut cursors = sim.cursors.lock().unwrap_or_else(|e| e.into_inner());
        match cursors.get_mut(id) {
            Some(c) if c.last_used.elapsed() >= idle => {
                cursors.remove(id);
                None
            }
            Some(c) => {
                c.last_used = std::time::Instant::now();
                Some(c.clone())
            }
            None => None,
        }
    };
    let Some(cursor) = cursor else {
        return invalid_locator();
    };
    if offset > cursor.rows.len() {
        return invalid_locator();
    }
    if cursor.session.is_some() && session_of(&sim, &headers) != cursor.session {
        return sf_error(
            StatusCode::UNAUTHORIZED,
            "INVALID_SESSION_ID",
            "Session expired or invalid",
        );
    }
    let store = read_store(&sim);
    page(&sim, &store, &ver, cursor, offset, Some(id.to_string()))
}

async fn limits(State(sim): State<Arc<Sim>>, UrlPath(ver): UrlPath<String>) -> Response {
    check!(check_version(&ver));
    let max = sim.api_max.load(Ordering::SeqCst);
    let used = sim.api_used.load(Ordering::SeqCst);
    let l = sim.limits();
    let (jobs_max, jobs_used) = (l.bulk_query_jobs_per_day, l.bulk_query_jobs_used);
    let body = json!({
        "DailyApiRequests": {"Max": max, "Remaining": max.saturating_sub(used)},
        "DailyAsyncApexExecutions": {"Max": 250000, "Remaining": 250000},
        "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000u64.saturating_sub(sim.jobs.count_ingest_batches() as u64)},
        "DailyBulkV2QueryFileStorageMB": {"Max": 976562, "Remaining": 976562},
        "DailyBulkV2QueryJobs": {"Max": jobs_max, "Remaining": jobs_max.saturating_sub(jobs_used)},
        "DataStorageMB": {"Max": 5, "Remaining": 5},
        "FileStorageMB": {"Max": 20, "Remaining": 20},
        "SingleEmail": {"Max": 15, "Remaining": 15},
    });
    json_response(StatusCode::OK, body.to_string().into_bytes())
}
