//! Test control under `/__sim/` (no auth): request counts, record mutations as the platform
//! makes them (touch, delete to the recycle bin, undelete from it, purge), reading a record as
//! stored, fault
//! injection, and live schema changes (`/__sim/schema/...`, in [`crate::schema`]). Documented in `crates/sfetl-sim/README.md`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::faults::{FailSpec, RowFault};
use super::render::json_record;
use super::server::{Sim, json_response};
use super::soql::Path;
use super::store::{
    DELETED, LIVE, Store, Table, Val, pack, parse_datetime, parse_stored_datetime, unpack,
};

/// The control routes.
pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/__sim/stats", get(stats))
        .route("/__sim/stats/reset", post(reset_stats))
        .route("/__sim/queries", get(queries))
        .route("/__sim/touch", post(touch))
        .route("/__sim/delete", post(delete))
        .route("/__sim/undelete", post(undelete))
        .route("/__sim/purge", post(purge))
        .route("/__sim/delete_log/purge", post(purge_delete_log))
        .route("/__sim/record/{object}/{id}", get(record))
        .route("/__sim/set", post(set_value))
        .route("/__sim/expire_tokens", post(expire_tokens))
        .route("/__sim/cursors/expire", post(expire_cursors))
        .route("/__sim/fail", post(fail))
        .route("/__sim/cut", post(cut))
        .route("/__sim/latency", post(latency))
        .route("/__sim/fail_bulk_job", post(fail_bulk_job))
        .route("/__sim/fail_rows", post(fail_rows))
        .route("/__sim/uri_limit", post(uri_limit))
        .route("/__sim/quota", post(quota))
        .route("/__sim/faults/clear", post(clear_faults))
        .route("/__sim/limits", get(get_limits).post(set_limits))
        .route("/__sim/schema/add_field", post(super::schema::add_field))
        .route(
            "/__sim/schema/remove_field",
            post(super::schema::remove_field),
        )
        .route(
            "/__sim/schema/retype_field",
            post(super::schema::retype_field),
        )
        .route(
            "/__sim/schema/set_formula",
            post(super::schema::set_formula),
        )
        .route("/__sim/schema/hide_field", post(super::schema::hide_field))
}

/// A 200 JSON answer of a control call.
pub(crate) fn ok(v: Value) -> Response {
    json_response(StatusCode::OK, v.to_string().into_bytes())
}

/// A control call's refusal: `{"error": msg}`.
pub(crate) fn err(status: StatusCode, msg: &str) -> Response {
    json_response(status, json!({"error": msg}).to_string().into_bytes())
}

/// A control call's JSON body (`{}` when empty, null when not JSON).
pub(crate) fn body_json(b: &Bytes) -> Value {
    if b.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(b).unwrap_or(Value::Null)
    }
}

async fn stats(State(sim): State<Arc<Sim>>) -> Response {
    let s = sim.stats.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let total: u64 = s.values().sum();
    let mut by_kind = serde_json::Map::new();
    for k in [
        "token",
        "describe",
        "query",
        "bulk_query",
        "bulk_ingest",
        "collections",
    ] {
        by_kind.insert(k.into(), json!(0));
    }
    for (k, v) in s {
        by_kind.insert(k, json!(v));
    }
    ok(
        json!({"total": total, "by_kind": by_kind, "api_usage": sim.api_used.load(Ordering::SeqCst)}),
    )
}

async fn reset_stats(State(sim): State<Arc<Sim>>) -> Response {
    sim.stats.lock().unwrap_or_else(|e| e.into_inner()).clear();
    sim.soql_log
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clear();
    ok(json!({}))
}

/// The SOQL of the REST queries since the last stats reset, oldest first.
async fn queries(State(sim): State<Arc<Sim>>) -> Response {
    let log = sim
        .soql_log
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    ok(json!({"queries": log}))
}

/// Picks `count` rows in the given states, spread over the table (deterministic).
fn pick_rows(sim: &Sim, obj: usize, count: usize, states: &[u8]) -> Vec<usize> {
    let store = sim.store.read().unwrap_or_else(|e| e.into_inner());
    let t = &store.tables[obj];
    let candidates: Vec<usize> = (0..t.len())
        .filter(|&r| states.contains(&t.state[r]))
        .collect();
    if candidates.is_empty() || count == 0 {
        return Vec::new();
    }
    let step = (candidates.len() / count.min(candidates.len())).max(1);
    candidates.into_iter().step_by(step).take(count).collect()
}

/// The rows a touch / delete targets: the live rows named in `ids`, or `count` rows spread
/// over the table.
fn target_rows(sim: &Sim, b: &Bytes) -> Result<(usize, Vec<usize>, Value), Response> {
    let v = body_json(b);
    let name = v["object"].as_str().unwrap_or("");
    let obj = {
        let store = sim.store.read().unwrap_or_else(|e| e.into_inner());
        store
            .catalog
            .object(name)
            .ok_or_else(|| err(StatusCode::BAD_REQUEST, &format!("unknown object '{name}'")))?
    };
    let rows = match v["ids"].as_array() {
        Some(ids) => {
            let store = sim.store.read().unwrap_or_else(|e| e.into_inner());
            let mut rows = Vec::new();
            for id in ids {
                let id = id.as_str().unwrap_or("");
                match store.live_row(obj, id) {
                    Some(r) => rows.push(r),
                    None => {
                        return Err(err(
                            StatusCode::BAD_REQUEST,
                            &format!("no live {name} with id '{id}'"),
                        ));
                    }
                }
            }
            rows
        }
        None => pick_rows(sim, obj, v["count"].as_u64().unwrap_or(1) as usize, &[LIVE]),
    };
    Ok((obj, rows, v))
}

/// The optional `stamp` of a touch, delete or undelete request (epoch ms), or the 400 answer for a bad
/// one.
fn stamp_of(v: &Value) -> Result<Option<i64>, Response> {
    match v["stamp"].as_str() {
        None => Ok(None),
        Some(s) => parse_stored_datetime(s)
            .map(Some)
            .ok_or_else(|| err(StatusCode::BAD_REQUEST, &format!("bad stamp '{s}'"))),
    }
}

/// When a change to row `r` happens: `stamp` but never before the row's last modification,
/// else now.
fn change_time(t: &Table, r: usize, stamp: Option<i64>, now: i64) -> i64 {
    match (stamp, t.get(r, t.lastmod)) {
        (Some(ms), Val::DateTime(last)) => ms.max(last),
        (Some(ms), _) => ms,
        (None, _) => now,
    }
}

async fn touch(State(sim): State<Arc<Sim>>, b: Bytes) -> Response {
    let (obj, rows, v) = match target_rows(&sim, &b) {
        Ok(x) => x,
        Err(r) => return r,
    };
    // An explicit `stamp` simulates a long transaction committing late: the rows appear with a
    // SystemModstamp in the past (never before their LastModifiedDate).
    let stamp = match stamp_of(&v) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut store = sim.store.write().unwrap_or_else(|e| e.into_inner());
    let now = sim.now_ms();
    for &r in &rows {
        let t = &mut store.tables[obj];
        let ms = change_time(t, r, stamp, now);
        t.touch(r, ms);
    }
    ok(json!({"ids": rows.iter().map(|&r| store.id_of(pack(obj, r))).collect::<Vec<_>>()}))
}

async fn delete(State(sim): State<Arc<Sim>>, b: Bytes) -> Response {
    let (obj, rows, v) = match target_rows(&sim, &b) {
        Ok(x) => x,
        Err(r) => return r,
    };
    // An explicit `stamp` deletes the rows at that time (never before their last change), as
    // if the deletion had happened a while ago.
    let stamp = match stamp_of(&v) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut store = sim.store.write().unwrap_or_else(|e| e.into_inner());
    let now = sim.now_ms();
    // Children whose relationship cascades (an Account's Contacts) go with their parent.
    let deleted = store.delete_cascading(obj, &rows, false, &|t, r| change_time(t, r, stamp, now));
    // The rows asked for come first, their children after.
    let (ids, with) = deleted.split_at(rows.len());
    ok(json!({
        "ids": ids.iter().map(|&p| store.id_of(p)).collect::<Vec<_>>(),
        "cascaded": with.iter().map(|&p| store.id_of(p)).collect::<Vec<_>>(),
    }))
}

/// Why record `row` of `obj` cannot be undeleted (status code and message), if it cannot: its
/// object is not `undeletable`, or it is not in the recycle bin (live, purged, or there only
/// because a cascade took it with a parent, which must be undeleted instead).
fn not_undeletable(store: &Store, obj: usize, row: usize) -> Option<(&'static str, &'static str)> {
    if store.catalog.objects[obj].describe["undeletable"] != true {
        return Some((
            "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY",
            "Entity type is not undeletable",
        ));
    }
    let t = &store.tables[obj];
    (t.state[row] != DELETED || t.deleted_with.contains_key(&(row as u32)))
        .then_some(("UNDELETE_FAILED", "Entity is not in the recycle bin"))
}

/// `{"object": "Account", "ids": [...], "allOrNone": false, "stamp": "..."}`: restores records
/// from the recycle bin as `undelete()` does, each with the records a cascade deleted with it;
/// one result per id in `undelete()`'s `UndeleteResult` form, partial success unless
/// `allOrNone`.
/// Answers `{"results": [...], "ids": [restored], "cascaded": [restored with them]}`.
async fn undelete(State(sim): State<Arc<Sim>>, b: Bytes) -> Response {
    let v = body_json(&b);
    let name = v["object"].as_str().unwrap_or("");
    let all_or_none = v["allOrNone"].as_bool().unwrap_or(false);
    let stamp = match stamp_of(&v) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut store = sim.store.write().unwrap_or_else(|e| e.into_inner());
    let Some(obj) = store.catalog.object(name) else {
        return err(StatusCode::BAD_REQUEST, &format!("unknown object '{name}'"));
    };
    let Some(ids) = v["ids"].as_array().filter(|ids| !ids.is_empty()) else {
        return err(
            StatusCode::BAD_REQUEST,
            "give \"ids\": [...], the records to undelete",
        );
    };
    let mut plans = Vec::new();
    for id in ids {
        let id = id.as_str().unwrap_or("");
        let Some(row) = store.row_of(obj, id) else {
            return err(
                StatusCode::BAD_REQUEST,
                &format!("no {name} with id '{id}'"),
            );
        };
        if plans.iter().any(|&(r, _)| r == row) {
            return err(StatusCode::BAD_REQUEST, &format!("'{id}' is named twice"));
        }
        plans.push((row, not_undeletable(&store, obj, row)));
    }
    let failed = plans.iter().any(|(_, why)| why.is_some());
    let result = |row: usize, error: Option<(&str, &str)>| match error {
        None => json!({"id": store.id_of(pack(obj, row)), "success": true, "errors": []}),
        Some((code, message)) => json!({"id": store.id_of(pack(obj, row)), "success": false,
            "errors": [{"statusCode": code, "message": message, "fields": []}]}),
    };
    let results: Vec<Value> = plans
        .iter()
        .map(|&(row, why)| match why {
            None if all_or_none && failed => result(
                row,
                Some((
                    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                    "Record rolled back because not all records were valid and the request was using AllOrNone header",
                )),
            ),
            why => result(row, why),
        })
        .collect();
    let rows: Vec<usize> = plans
        .iter()
        .filter(|(_, why)| why.is_none() && !(all_or_none && failed))
        .map(|&(r, _)| r)
        .collect();
    // An explicit `stamp` undeletes at that time, never before the deletion: the same instant
    // as the deletion is an undelete in the deleting transaction (or second: Salesforce's
    // stamps are whole seconds).
    let now = sim.now_ms();
    let at = |t: &Table, r: usize| match (stamp, t.get(r, t.sysmod)) {
        (Some(ms), Val::DateTime(deleted)) => ms.max(deleted),
        (Some(ms), _) => ms,
        (None, _) => now,
    };
    let restored = store.undelete_cascading(obj, &rows, &at);
    let (asked, with) = restored.split_at(rows.len());
    ok(json!({
        "results": results,
        "ids": asked.iter().map(|&p| store.id_of(p)).collect::<Vec<_>>(),
        "cascaded": with.iter().map(|&p| store.id_of(p)).collect::<Vec<_>>(),
    }))
}

async fn purge(State(sim): State<Arc<Sim>>) -> Response {
    let mut store = sim.store.write().unwrap_or_else(|e| e.into_inner());
    let mut ids = Vec::new();
    for obj in 0..store.tables.len() {
        for r in 0..store.tables[obj].len() {
            if store.tables[obj].state[r] == DELETED {
                store.tables[obj].purge_row(r);
                ids.push(pack(obj, r));
            }
        }
    }
    ok(json!({"ids": ids.iter().map(|&p| store.id_of(p)).collect::<Vec<_>>()}))
}

async fn record(
    State(sim): State<Arc<Sim>>,
    UrlPath((object, id)): UrlPath<(String, String)>,
) -> Response {
    let store = sim.store.read().unwrap_or_else(|e| e.into_inner());
    let Some(obj) = store.catalog.object(&object) else {
        return err(StatusCode::NOT_FOUND, "unknown object");
    };
    let Some((o, row)) = store.resolve(&id).map(unpack).filter(|(o, _)| *o == obj) else {
        return err(StatusCode::NOT_FOUND, "no such record");
    };
    let fields: Vec<Path> = store.catalog.objects[o]
        .fields
        .iter()
        .enumerate()
        .map(|(i, f)| Path::own(i, f))
        .collect();
    let mut out = Vec::new();
    json_record(
        &mut out,
        &store,
        o,
        row,
        &fields,
        "v62.0",
        crate::render::Blobs::Inline,
    );
    json_response(StatusCode::OK, out)
}

async fn expire_tokens(State(sim): State<Arc<Sim>>) -> Response {
    sim.oauth.expire_all_tokens();
    ok(json!({"expired": true}))
}

async fn fail(State(sim): State<Arc<Sim>>, b: Bytes) -> Response {
    let v = body_json(&b);
    let kind = v["kind"].as_str().unwrap_or("any").to_string();
    let status = v["status"].as_u64().unwrap_or(503) as u16;
    let error_code = v["error_code"].as_str().unwrap_or("").to_string();
    let message = v["message"].as_str().map(str::to_string);
    if !(400..=599).contains(&status) {
        return err(StatusCode::BAD_REQUEST, "status must be 4xx or 5xx");
    }
    let maintenance_page = match &v["body"] {
        Value::Null => false,
        b if b == "maintenance_page" => true,
        b => {
            return err(
                StatusCode::BAD_REQUEST,
                &format!(
                    "\"body\" is {b}: leave it out for Salesforce's JSON error, or give \"maintenance_page\""
                ),
            );
        }
    };
    let remaining = v["count"].as_u64().unwrap_or(1) as u32;
    sim.faults
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .fail
        .insert(
            kind.clone(),
            FailSpec {
                remaining,
                status,
                error_code,
                message,
                maintenance_page,
            },
        );
    ok(json!({"kind": kind, "count": remaining, "status": status}))
}

async fn cut(State(sim): State<Arc<Sim>>, b: Bytes) -> Response {
    let v = body_json(&b);
    let kind = v["kind"].as_str().unwrap_or("any").to_string();
    let count = v["count"].as_u64().unwrap_or(1) as u32;
    sim.faults
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .cut
        .insert(kind.clone(), count);
    ok(json!({"kind": kind, "count": count}))
}

async fn latency(State(sim): State<Arc<Sim>>, b: Bytes) -> Response {
    let v = body_json(&b);
    let ms = v["ms"].as_u64().unwrap_or(0);
    let kind = v["kind"].as_str().unwrap_or("any").to_string();
    let mut f = sim.faults.lock().unwrap_or_else(|e| e.into_inner());
    if ms == 0 {
        f.latency_ms.remove(&kind);
    } else {
        f.latency_ms.insert(kind.clone(), ms);
    }
    ok(json!({"kind": kind, "ms": ms}))
}

async fn fail_bulk_job(State(sim): State<Arc<Sim>>, b: Bytes) -> Response {
    let v = body_json(&b);
    if let Some(id) = v["job_id"].as_str() {
        let found = sim
            .jobs
            .fail_job(id, "InternalServerError : the job failed (simulated)");
        return if found {
            ok(json!({"job_id": id}))
        } else {
            err(StatusCode::NOT_FOUND, "no such job")
        };
    }
    let count = v["count"].as_u64().unwrap_or(1) as u32;
    sim.faults
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .fail_bulk_jobs = count;
    ok(json!({"count": count}))
}

async fn quota(State(sim): State<Arc<Sim>>, b: Bytes) -> Response {
    let v = body_json(&b);
    if let Some(max) = v["max"].as_u64() {
        sim.api_max.store(max, Ordering::SeqCst);
    }
    if let Some(used) = v["used"].as_u64() {
        sim.api_used.store(used, Ordering::SeqCst);
    }
    ok(
        json!({"max": sim.api_max.load(Ordering::SeqCst), "used": sim.api_used.load(Ordering::SeqCst)}),
    )
}

async fn fail_rows(State(sim): State<Arc<Sim>>, b: Bytes) -> Response {
    let v = body_json(&b);
    let count = v["count"].as_u64().unwrap_or(1) as u32;
    let code = v["error_code"]
        .as_str()
        .unwrap_or("UNABLE_TO_LOCK_ROW")
        .to_string();
    sim.faults
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .fail_rows = (count > 0).then(|| RowFault {
        remaining: count,
        code: code.clone(),
    });
    ok(json!({"count": count, "error_code": code}))
}

async fn uri_limit(State(sim): State<Arc<Sim>>, b: Bytes) -> Response {
    let v = body_json(&b);
    let bytes = v["bytes"].as_u64().unwrap_or(crate::server::URI_LIMIT);
    sim.uri_limit.store(bytes, Ordering::SeqCst);
    ok(json!({"bytes": bytes}))
}

async fn clear_faults(State(sim): State<Arc<Sim>>) -> Response {
    *sim.faults.lock().unwrap_or_else(|e| e.into_inner()) = Default::default();
    ok(json!({}))
}

fn limits_json(sim: &Sim) -> Value {
    let mut m = sim.limits().to_json();
    m.insert("in_flight_requests".into(), json!(sim.in_flight.count()));
    m.insert("running_long_txn".into(), json!(sim.jobs.running()));
    Value::Object(m)
}

async fn get_limits(State(sim): State<Arc<Sim>>) -> Response {
    ok(limits_json(&sim))
}

async fn set_limits(State(sim): State<Arc<Sim>>, b: Bytes) -> Response {
    let v = body_json(&b);
    if let Err(e) = sim.with_limits(|l| l.update(&v)) {
        return err(StatusCode::BAD_REQUEST, &e);
    }
    ok(limits_json(&sim))
}

/// Purges the delete log (all objects, or `object`) of entries deleted before `before`
/// (default: now), as Salesforce's background job does: hard deletes in that span leave no
/// trace, and `deleted` calls starting before it answer `INVALID_REPLICATION_DATE`.
async fn purge_delete_log(State(sim): State<Arc<Sim>>, b: Bytes) -> Response {
    let v = body_json(&b);
    let before = match v["before"].as_str() {
        None => sim.now_ms() + 1,
        Some(s) => match parse_datetime(s) {
            Some(ms) => ms,
            None => return err(StatusCode::BAD_REQUEST, &format!("bad before '{s}'")),
        },
    };
    let mut store = sim.store.write().unwrap_or_else(|e| e.into_inner());
    let objects: Vec<usize> = match v["object"].as_str() {
        None => (0..store.tables.len()).collect(),
        Some(name) => match store.catalog.object(name) {
            Some(o) => vec![o],
            None => return err(StatusCode::BAD_REQUEST, &format!("unknown object '{name}'")),
        },
    };
    let purged: usize = objects
        .iter()
        .map(|&o| store.tables[o].purge_delete_log(before))
        .sum();
    ok(json!({"purged": purged}))
}

/// Expires every open REST query cursor now, as 15 idle minutes would: continuing one answers
/// `INVALID_QUERY_LOCATOR`.
async fn expire_cursors(State(sim): State<Arc<Sim>>) -> Response {
    let mut cursors = sim.cursors.lock().unwrap_or_else(|e| e.into_inner());
    let n = cursors.len();
    cursors.clear();
    ok(json!({"expired": n}))
}

/// Stores a raw text value in one record, bypassing validation and leaving the timestamps
/// alone: data imported from anywhere (NUL bytes, control characters) as clients meet it.
async fn set_value(State(sim): State<Arc<Sim>>, b: Bytes) -> Response {
    let v = body_json(&b);
    let (name, id, field) = (
        v["object"].as_str().unwrap_or(""),
        v["id"].as_str().unwrap_or(""),
        v["field"].as_str().unwrap_or(""),
    );
    let mut store = sim.store.write().unwrap_or_else(|e| e.into_inner());
    let Some(obj) = store.catalog.object(name) else {
        return err(StatusCode::BAD_REQUEST, &format!("unknown object '{name}'"));
    };
    let Some((o, row)) = store.resolve(id).map(unpack).filter(|(o, _)| *o == obj) else {
        return err(
            StatusCode::BAD_REQUEST,
            &format!("no {name} with id '{id}'"),
        );
    };
    let meta = &store.catalog.objects[o];
    let Some(f) = meta.field(field).filter(|&f| {
        meta.fields[f].ftype == crate::describe::FType::Text && !meta.fields[f].calculated
    }) else {
        return err(
            StatusCode::BAD_REQUEST,
            &format!("'{field}' is not a stored text field of {name}"),
        );
    };
    let fname = meta.fields[f].name.clone();
    let val = match &v["value"] {
        Value::Null => Val::Null,
        Value::String(s) => Val::Str(s.clone().into()),
        _ => return err(StatusCode::BAD_REQUEST, "value must be a string or null"),
    };
    store.tables[o].set(row, f, &val);
    ok(json!({"id": id, "field": fname}))
}
