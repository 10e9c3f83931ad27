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
use super::render::{json_record, json_str};
use super::server::{Sim, json_response, sf_error};
use super::soql::{self, Path, Query};
use super::store::{DELETED, LIVE, Store, parse_datetime, write_datetime};
use super::write::{ExtIndex, Input, RecError, apply, validate};

/// Open REST query cursors kept; older locators then answer `INVALID_QUERY_LOCATOR`.
pub const MAX_CURSORS: usize = 64;

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
    r = both(r, "/services/data/{ver}/query", get(query));
    r = both(r, "/services/data/{ver}/queryAll", get(query_all));
    r = both(r, "/services/data/{ver}/query/{loc}", get(query_more));
    r = both(r, "/services/data/{ver}/queryAll/{loc}", get(query_more));
    r = both(r, "/services/data/{ver}/limits", get(limits));
    r = both(
        r,
        "/services/data/{ver}/composite/sobjects",
        post(collections_create).patch(collections_update),
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

/// Checks a `vXX.X` path segment; the error is Salesforce's 404.
#[allow(clippy::result_large_err)]
pub fn check_version(ver: &str) -> Result<(), Response> {
    let ok = ver
        .strip_prefix('v')
        .and_then(|v| v.strip_suffix(".0"))
        .and_then(|v| v.parse::<u32>().ok())
        .is_some_and(|v| VERSIONS.contains(&v));
    if ok { Ok(()) } else { Err(not_found()) }
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
            versioned(&store.catalog.objects[i].describe, &ver),
        ),
        None => not_found(),
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

fn all_fields(store: &Store, obj: usize) -> Vec<Path> {
    store.catalog.objects[obj]
        .fields
        .iter()
        .enumerate()
        .map(|(i, f)| Path {
            via: None,
            name: f.name.clone(),
            field: i,
            ftype: f.ftype,
            sf_type: f.sf_type.clone(),
        })
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
    let store = read_store(&sim);
    let parsed: Query = match soql::parse(q, &store) {
        Ok(q) => q,
        Err(e) => return soql_response(e),
    };
    let rows = soql::execute(&store, &parsed, all);
    if parsed.count_only {
        let body = json!({"totalSize": rows.len(), "done": true, "records": []});
        return json_response(StatusCode::OK, body.to_string().into_bytes());
    }
    let cursor = Cursor {
        object: parsed.object,
        fields: parsed.fields,
        rows: Arc::new(rows),
        batch: batch_size(&headers),
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
        let loc = loc.unwrap_or_else(|| format!("01gSIM{:012}", sim.next_seq()));
        out.extend_from_slice(b",\"nextRecordsUrl\":");
        json_str(&mut out, &format!("/services/data/{ver}/query/{loc}-{end}"));
        let mut cursors = sim.cursors.lock().unwrap_or_else(|e| e.into_inner());
        cursors.insert(loc, cursor.clone());
        // Like an org's cap on open query cursors: the oldest ones expire first.
        while cursors.len() > MAX_CURSORS {
            cursors.pop_first();
        }
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
        );
    }
    out.extend_from_slice(b"]}");
    json_response(StatusCode::OK, out)
}

async fn query_more(
    State(sim): State<Arc<Sim>>,
    UrlPath((ver, loc)): UrlPath<(String, String)>,
) -> Response {
    check!(check_version(&ver));
    let invalid = || {
        sf_error(
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY_LOCATOR",
            "invalid query locator",
        )
    };
    let Some((id, offset)) = loc.rsplit_once('-') else {
        return invalid();
    };
    let Ok(offset) = offset.parse::<usize>() else {
        return invalid();
    };
    let cursor = sim
        .cursors
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(id)
        .cloned();
    let Some(cursor) = cursor else {
        return invalid();
    };
    if offset > cursor.rows.len() {
        return invalid();
    }
    let store = read_store(&sim);
    page(&sim, &store, &ver, cursor, offset, Some(id.to_string()))
}

async fn limits(State(sim): State<Arc<Sim>>, UrlPath(ver): UrlPath<String>) -> Response {
    check!(check_version(&ver));
    let max = sim.api_max.load(Ordering::SeqCst);
    let used = sim.api_used.load(Ordering::SeqCst);
    let jobs = sim.jobs.count_query_jobs() as u64;
    let body = json!({
        "DailyApiRequests": {"Max": max, "Remaining": max.saturating_sub(used)},
        "DailyAsyncApexExecutions": {"Max": 250000, "Remaining": 250000},
        "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000u64.saturating_sub(sim.jobs.count_ingest_batches() as u64)},
        "DailyBulkV2QueryFileStorageMB": {"Max": 976562, "Remaining": 976562},
        "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000u64.saturating_sub(jobs)},
        "DataStorageMB": {"Max": 5, "Remaining": 5},
        "FileStorageMB": {"Max": 20, "Remaining": 20},
        "SingleEmail": {"Max": 15, "Remaining": 15},
    });
    json_response(StatusCode::OK, body.to_string().into_bytes())
}

#[allow(clippy::result_large_err)]
fn locate(store: &Store, obj: &str, id: &str) -> Result<(usize, usize), Response> {
    let o = store.catalog.object(obj).ok_or_else(not_found)?;
    let p = store.resolve(id).ok_or_else(not_found)?;
    let (po, row) = super::store::unpack(p);
    if po != o {
        return Err(not_found());
    }
    if store.tables[o].state[row] == DELETED {
        return Err(sf_error(
            StatusCode::NOT_FOUND,
            "ENTITY_IS_DELETED",
            "entity is deleted",
        ));
    }
    Ok((o, row))
}

async fn get_record(
    State(sim): State<Arc<Sim>>,
    UrlPath((ver, obj, id)): UrlPath<(String, String, String)>,
    UrlQuery(p): UrlQuery<HashMap<String, String>>,
) -> Response {
    check!(check_version(&ver));
    let store = read_store(&sim);
    let (o, row) = check!(locate(&store, &obj, &id));
    let mut fields = all_fields(&store, o);
    if let Some(list) = p.get("fields") {
        let meta = &store.catalog.objects[o];
        let mut picked = Vec::new();
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match meta.field(name) {
                Some(i) => picked.push(fields[i].clone()),
                None => {
                    return sf_error(
                        StatusCode::BAD_REQUEST,
                        "INVALID_FIELD",
                        &format!(
                            "No such column '{name}' on entity '{}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.",
                            meta.name
                        ),
                    );
                }
            }
        }
        fields = picked;
    }
    let mut out = Vec::with_capacity(4096);
    json_record(&mut out, &store, o, row, &fields, &ver);
    json_response(StatusCode::OK, out)
}

fn rec_error_response(e: &RecError) -> Response {
    let body = json!([{"message": e.message, "errorCode": e.code, "fields": e.fields}]);
    json_response(StatusCode::BAD_REQUEST, body.to_string().into_bytes())
}

fn parse_body(body: &Bytes) -> Result<Value, Response> {
    serde_json::from_slice(body).map_err(|e| {
        sf_error(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            &format!("Unexpected character: {e}"),
        )
    })
}

fn user_ref(store: &Store) -> u64 {
    let _ = store;
    super::store::pack(4, 0)
}

async fn patch_record(
    State(sim): State<Arc<Sim>>,
    UrlPath((ver, obj, id)): UrlPath<(String, String, String)>,
    body: Bytes,
) -> Response {
    check!(check_version(&ver));
    let v = check!(parse_body(&body));
    let Some(map) = v.as_object() else {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            "The request body must be a JSON object",
        );
    };
    let now = sim.now_ms();
    let mut store = write_store(&sim);
    let (o, row) = check!(locate(&store, &obj, &id));
    let vals = match validate(
        &store,
        o,
        Some(row),
        map.iter().map(|(k, v)| (k.as_str(), Input::Json(v))),
        false,
    ) {
        Ok(v) => v,
        Err(e) => return rec_error_response(&e),
    };
    let user = user_ref(&store);
    apply(&mut store, o, Some(row), &vals, now, user);
    StatusCode::NO_CONTENT.into_response()
}

async fn delete_record(
    State(sim): State<Arc<Sim>>,
    UrlPath((ver, obj, id)): UrlPath<(String, String, String)>,
) -> Response {
    check!(check_version(&ver));
    let now = sim.now_ms();
    let mut store = write_store(&sim);
    let (o, row) = check!(locate(&store, &obj, &id));
    store.tables[o].state[row] = DELETED;
    store.tables[o].touch(row, now);
    StatusCode::NO_CONTENT.into_response()
}

async fn create_one(
    State(sim): State<Arc<Sim>>,
    UrlPath((ver, obj)): UrlPath<(String, String)>,
    body: Bytes,
) -> Response {
    check!(check_version(&ver));
    let v = check!(parse_body(&body));
    let Some(map) = v.as_object() else {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            "The request body must be a JSON object",
        );
    };
    let now = sim.now_ms();
    let mut store = write_store(&sim);
    let Some(o) = store.catalog.object(&obj) else {
        return not_found();
    };
    let vals = match validate(
        &store,
        o,
        None,
        map.iter().map(|(k, v)| (k.as_str(), Input::Json(v))),
        false,
    ) {
        Ok(v) => v,
        Err(e) => return rec_error_response(&e),
    };
    let user = user_ref(&store);
    let row = apply(&mut store, o, None, &vals, now, user);
    let id = store.id_of(super::store::pack(o, row));
    json_response(
        StatusCode::CREATED,
        json!({"id": id, "success": true, "errors": []})
            .to_string()
            .into_bytes(),
    )
}

fn window(p: &HashMap<String, String>) -> Result<(i64, i64), Response> {
    let bad = |what: &str| {
        sf_error(
            StatusCode::BAD_REQUEST,
            "INVALID_REPLICATION_DATE",
            &format!("{what} date is missing or not a valid dateTime"),
        )
    };
    let start = p
        .get("start")
        .and_then(|s| parse_datetime(s.trim()))
        .ok_or_else(|| bad("start"))?;
    let end = p
        .get("end")
        .and_then(|s| parse_datetime(s.trim()))
        .ok_or_else(|| bad("end"))?;
    if end < start {
        return Err(sf_error(
            StatusCode::BAD_REQUEST,
            "INVALID_REPLICATION_DATE",
            "end date cannot be before start date",
        ));
    }
    Ok((start, end))
}

fn dt(ms: i64) -> String {
    let mut v = Vec::new();
    write_datetime(ms, &mut v);
    String::from_utf8(v).unwrap_or_default()
}

async fn deleted(
    State(sim): State<Arc<Sim>>,
    UrlPath((ver, obj)): UrlPath<(String, String)>,
    UrlQuery(p): UrlQuery<HashMap<String, String>>,
) -> Response {
    check!(check_version(&ver));
    let (start, end) = check!(window(&p));
    let store = read_store(&sim);
    let Some(o) = store.catalog.object(&obj) else {
        return not_found();
    };
    let t = &store.tables[o];
    let mut recs = Vec::new();
    let mut earliest = i64::MAX;
    for r in 0..t.len() {
        if t.state[r] != DELETED {
            continue;
        }
        if let super::store::Val::DateTime(ms) = t.get(r, t.sysmod) {
            earliest = earliest.min(ms);
            if ms >= start && ms < end {
                recs.push(
                    json!({"deletedDate": dt(ms), "id": store.id_of(super::store::pack(o, r))}),
                );
            }
        }
    }
    let body = json!({
        "deletedRecords": recs,
        "earliestDateAvailable": dt(if earliest == i64::MAX { start } else { earliest }),
        "latestDateCovered": dt(end - end.rem_euclid(60_000)),
    });
    json_response(StatusCode::OK, body.to_string().into_bytes())
}

async fn updated(
    State(sim): State<Arc<Sim>>,
    UrlPath((ver, obj)): UrlPath<(String, String)>,
    UrlQuery(p): UrlQuery<HashMap<String, String>>,
) -> Response {
    check!(check_version(&ver));
    let (start, end) = check!(window(&p));
    let store = read_store(&sim);
    let Some(o) = store.catalog.object(&obj) else {
        return not_found();
    };
    let t = &store.tables[o];
    let ids: Vec<String> = (0..t.len())
        .filter(|&r| t.state[r] == LIVE)
        .filter(|&r| matches!(t.get(r, t.sysmod), super::store::Val::DateTime(ms) if ms >= start && ms < end))
        .map(|r| store.id_of(super::store::pack(o, r)))
        .collect();
    let body = json!({"ids": ids, "latestDateCovered": dt(end - end.rem_euclid(60_000))});
    json_response(StatusCode::OK, body.to_string().into_bytes())
}

/// A validated change: object, row to update (None = insert), values.
type Planned = Result<
    (
        usize,
        Option<usize>,
        Vec<(usize, super::store::Val<'static>)>,
    ),
    RecError,
>;

enum Mode {
    Create,
    Update,
    Upsert(usize),
}

async fn collections_create(
    State(sim): State<Arc<Sim>>,
    UrlPath(ver): UrlPath<String>,
    body: Bytes,
) -> Response {
    collections(sim, ver, None, None, body, false)
}

async fn collections_update(
    State(sim): State<Arc<Sim>>,
    UrlPath(ver): UrlPath<String>,
    body: Bytes,
) -> Response {
    collections(sim, ver, None, None, body, true)
}

async fn collections_upsert(
    State(sim): State<Arc<Sim>>,
    UrlPath((ver, obj, ext)): UrlPath<(String, String, String)>,
    body: Bytes,
) -> Response {
    collections(sim, ver, Some(obj), Some(ext), body, true)
}

fn collections(
    sim: Arc<Sim>,
    ver: String,
    obj: Option<String>,
    ext: Option<String>,
    body: Bytes,
    is_patch: bool,
) -> Response {
    check!(check_version(&ver));
    let v = check!(parse_body(&body));
    let all_or_none = v["allOrNone"].as_bool().unwrap_or(false);
    let Some(records) = v["records"].as_array() else {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            "Missing records array",
        );
    };
    if records.len() > 200 {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 200 records into this call",
        );
    }
    let now = sim.now_ms();
    let mut store = write_store(&sim);
    let mode_obj = match &obj {
        Some(name) => match store.catalog.object(name) {
            Some(o) => Some(o),
            None => {
                return sf_error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_TYPE",
                    &format!("sObject type '{name}' is not supported."),
                );
            }
        },
        None => None,
    };
    let mode = match (&ext, mode_obj) {
        (Some(ext), Some(o)) => {
            let meta = &store.catalog.objects[o];
            match meta.field(ext) {
                Some(i) if meta.fields[i].external_id || meta.fields[i].ftype == FType::Id => {
                    Mode::Upsert(i)
                }
                _ => {
                    return sf_error(
                        StatusCode::BAD_REQUEST,
                        "INVALID_FIELD",
                        &format!(
                            "Field name provided, {ext} is not an External ID or indexed field for {}",
                            meta.name
                        ),
                    );
                }
            }
        }
        _ if is_patch => Mode::Update,
        _ => Mode::Create,
    };
    // Phase 1: validate every record into a planned change.
    let mut plans: Vec<Planned> = Vec::with_capacity(records.len());
    let index = match (&mode, mode_obj) {
        (Mode::Upsert(f), Some(o)) => {
            let name = store.catalog.objects[o].fields[*f].name.clone();
            let keys: Vec<String> = records
                .iter()
                .filter_map(|r| r.as_object())
                .filter_map(|m| m.iter().find(|(k, _)| k.eq_ignore_ascii_case(&name)))
                .map(|(_, v)| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            ExtIndex::build(&store, o, *f, keys.iter().map(String::as_str))
        }
        _ => ExtIndex::default(),
    };
    for rec in records {
        plans.push(plan_record(&store, rec, mode_obj, &mode, &index));
    }
    let any_failed = plans.iter().any(|p| p.is_err());
    let user = user_ref(&store);
    let mut results = Vec::with_capacity(plans.len());
    for plan in plans {
        let res = match plan {
            Err(e) => json!({"success": false, "errors": [e.to_json()]}),
            Ok(_) if all_or_none && any_failed => json!({"success": false, "errors": [{
                "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "message": "Record rolled back because not all records were valid and the request was using AllOrNone header",
                "fields": []}]}),
            Ok((o, row, vals)) => {
                let created = row.is_none();
                let r = apply(&mut store, o, row, &vals, now, user);
                let id = store.id_of(super::store::pack(o, r));
                match mode {
                    Mode::Upsert(_) => {
                        json!({"id": id, "success": true, "errors": [], "created": created})
                    }
                    _ => json!({"id": id, "success": true, "errors": []}),
                }
            }
        };
        results.push(res);
    }
    if let Mode::Upsert(_) = mode {
        for r in &mut results {
            if r.get("created").is_none() {
                r["created"] = json!(false);
            }
        }
    }
    json_response(
        StatusCode::OK,
        serde_json::to_vec(&results).unwrap_or_default(),
    )
}

fn plan_record(
    store: &Store,
    rec: &Value,
    mode_obj: Option<usize>,
    mode: &Mode,
    index: &ExtIndex,
) -> Planned {
    let err = |code: &str, msg: &str, fields: Vec<String>| RecError {
        code: code.into(),
        message: msg.into(),
        fields,
    };
    let Some(map) = rec.as_object() else {
        return Err(err(
            "JSON_PARSER_ERROR",
            "Each record must be a JSON object",
            vec![],
        ));
    };
    let type_name = rec["attributes"]["type"].as_str();
    let o = match (type_name, mode_obj) {
        (Some(t), _) => store.catalog.object(t).ok_or_else(|| {
            err(
                "INVALID_TYPE",
                &format!("sObject type '{t}' is not supported."),
                vec![],
            )
        })?,
        (None, Some(o)) => o,
        (None, None) => {
            return Err(err(
                "JSON_PARSER_ERROR",
                "Nested object for polymorphic foreign key must have an attributes field before any other fields.",
                vec![],
            ));
        }
    };
    let id_of_rec = map
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("id"))
        .and_then(|(_, v)| v.as_str());
    let row = match mode {
        Mode::Create => {
            if id_of_rec.is_some() {
                return Err(err(
                    "INVALID_FIELD",
                    "cannot specify Id in an insert call",
                    vec!["Id".into()],
                ));
            }
            None
        }
        Mode::Update => {
            let id = id_of_rec.ok_or_else(|| {
                err(
                    "MISSING_ARGUMENT",
                    "Id not specified in an update call",
                    vec![],
                )
            })?;
            let p = store
                .resolve(id)
                .ok_or_else(|| err("ENTITY_IS_DELETED", "entity is deleted", vec![]))?;
            let (po, row) = super::store::unpack(p);
            if po != o {
                return Err(err(
                    "MALFORMED_ID",
                    &format!("Id value of incorrect type: {id}"),
                    vec!["Id".into()],
                ));
            }
            if store.tables[o].state[row] != LIVE {
                return Err(err("ENTITY_IS_DELETED", "entity is deleted", vec![]));
            }
            Some(row)
        }
        Mode::Upsert(f) => {
            let fname = store.catalog.objects[o].fields[*f].name.clone();
            let key = map
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&fname))
                .map(|(_, v)| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .ok_or_else(|| {
                    err(
                        "MISSING_ARGUMENT",
                        &format!("{fname} not specified"),
                        vec![],
                    )
                })?;
            let hits = index.get(&key);
            match hits.len() {
                0 => None,
                1 => Some(hits[0]),
                n => {
                    return Err(err(
                        "DUPLICATE_EXTERNAL_ID",
                        &format!(
                            "{fname}: more than one record found for external id field: {n} records"
                        ),
                        vec![fname],
                    ));
                }
            }
        }
    };
    let skip_id = !matches!(mode, Mode::Create);
    let vals = validate(
        store,
        o,
        row,
        map.iter().map(|(k, v)| (k.as_str(), Input::Json(v))),
        skip_id,
    )?;
    Ok((o, row, vals))
}
