//! Test control of changes a real org sees without any API call from the client under test:
//! a user editing a record (`/__sim/update`: the values change, and only that record's
//! LastModifiedDate and SystemModstamp move, never its children's, whose cross-object formulas
//! follow it anyway) and the passing of days (`/__sim/clock`: `TODAY()` in formulas and SOQL's
//! relative date literals, so time-based formulas change while no timestamp does), Lead
//! conversion and merges (`/__sim/merge`: the losing records deleted, their children moved to
//! the winner).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::describe::{FType, FieldMeta};
use super::server::{Sim, json_response};
use super::store::{
    DayClock, LIVE, Store, Val, parse_date, parse_stored_datetime, write_date, write_datetime,
};

/// The routes of this module.
pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/__sim/update", post(update))
        .route("/__sim/convert_lead", post(convert_lead))
        .route("/__sim/merge", post(merge))
        .route("/__sim/clock", get(get_clock).post(set_clock))
        .route("/__sim/next_second", post(next_second))
}

fn answer(status: StatusCode, v: Value) -> Response {
    json_response(status, v.to_string().into_bytes())
}

fn refuse(msg: String) -> Response {
    answer(StatusCode::BAD_REQUEST, json!({ "error": msg }))
}

/// A user's edit of one record's stored fields, ready to make.
#[derive(Debug, Clone)]
pub struct Edit {
    obj: usize,
    row: usize,
    values: Vec<(usize, Val<'static>)>,
}

impl Edit {
    /// Makes the edit at `now`: the values stored, and the record's LastModifiedDate and
    /// SystemModstamp moved to `now`.
    fn make(&self, store: &mut Store, now: i64) {
        let t = &mut store.tables[self.obj];
        for (f, val) in &self.values {
            t.set(self.row, *f, val);
        }
        t.modify(self.row, now);
    }
}

/// Makes the edits held for the next Bulk query job to complete (one just did); called by
/// the job's status poll once its results are fixed.
pub fn after_bulk_query_completes(sim: &Sim) {
    let edits = std::mem::take(
        &mut sim
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .edits_after_bulk_query,
    );
    if edits.is_empty() {
        return;
    }
    let mut store = sim.store.write().unwrap_or_else(|e| e.into_inner());
    for edit in &edits {
        edit.make(&mut store, sim.now_ms());
    }
}

/// `{"object": "Account", "id": "001...", "fields": {"Name": "Acme", "Industry": "Energy"}}`:
/// a user's edit of stored fields (text, numbers, booleans, dates, datetimes, references). The
/// record's LastModifiedDate and SystemModstamp take the time; nothing else moves. With
/// `"when": "next_bulk_query_completes"` the edit waits for the next Bulk query job to
/// complete and is made then, after the job's results are fixed and before any is
/// downloaded: the moment a real org's user can edit a record the results hold.
async fn update(State(sim): State<Arc<Sim>>, b: Bytes) -> Response {
    let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
    let (name, id) = (
        v["object"].as_str().unwrap_or(""),
        v["id"].as_str().unwrap_or(""),
    );
    let Some(fields) = v["fields"].as_object().filter(|f| !f.is_empty()) else {
        return refuse("give \"fields\": {\"Name\": \"...\"} with at least one field".into());
    };
    let deferred = match &v["when"] {
        Value::Null => false,
        w if w == "next_bulk_query_completes" => true,
        w => {
            return refuse(format!(
                "\"when\" is {w}: leave it out to edit now, or give \"next_bulk_query_completes\""
            ));
        }
    };
    let mut store = sim.store.write().unwrap_or_else(|e| e.into_inner());
    let Some(obj) = store.catalog.object(name) else {
        return refuse(format!("unknown object '{name}'"));
    };
    let Some(row) = store.live_row(obj, id) else {
        return refuse(format!("no live {name} with id '{id}'"));
    };
    let mut values = Vec::new();
    for (field, value) in fields {
        match stored_value(&store, obj, field, value) {
            Ok(fv) => values.push(fv),
            Err(msg) => return refuse(msg),
        }
    }
    let edit = Edit { obj, row, values };
    if deferred {
        drop(store);
        let mut faults = sim.faults.lock().unwrap_or_else(|e| e.into_inner());
        faults.edits_after_bulk_query.push(edit);
        return answer(StatusCode::OK, json!({"id": id, "deferred": true}));
    }
    let now = sim.now_ms();
    edit.make(&mut store, now);
    let mut stamp = Vec::new();
    write_datetime(now, &mut stamp);
    answer(
        StatusCode::OK,
        json!({"id": id, "SystemModstamp": String::from_utf8_lossy(&stamp)}),
    )
}

/// `{"id": "00Q..."}`: converts a Lead as `convertLead()` does, in one transaction: an Account
/// (named after the Lead's Company, else its LastName) and a Contact under it (the Lead's
/// FirstName, LastName and Email) are created, and the Lead is updated: `IsConverted` true,
/// `ConvertedDate` today, `ConvertedAccountId`, `ConvertedContactId`, `Status` "Closed -
/// Converted", its LastModifiedDate and SystemModstamp at the time. Answers the three ids.
async fn convert_lead(State(sim): State<Arc<Sim>>, b: Bytes) -> Response {
    let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
    let id = v["id"].as_str().unwrap_or("");
    let mut store = sim.store.write().unwrap_or_else(|e| e.into_inner());
    let objects = ["Lead", "Account", "Contact", "User"].map(|o| store.catalog.object(o));
    let [Some(lead), Some(account), Some(contact), Some(user)] = objects else {
        return refuse("the org has no Lead, Account, Contact or User object".into());
    };
    let Some(row) = store.live_row(lead, id) else {
        return refuse(format!("no live Lead with id '{id}'"));
    };
    let field = |store: &Store, obj: usize, name: &str| store.catalog.objects[obj].field(name);
    let value = |store: &Store, name: &str| -> Val<'static> {
        field(store, lead, name).map_or(Val::Null, |f| store.get(lead, row, f).into_owned())
    };
    if matches!(value(&store, "IsConverted"), Val::Bool(true)) {
        return refuse(format!("Lead '{id}' is converted already"));
    }
    let name = match value(&store, "Company") {
        Val::Null => value(&store, "LastName"),
        company => company,
    };
    let now = sim.now_ms();
    let by = crate::store::pack(user, 0);
    let values = |store: &Store, obj: usize, pairs: Vec<(&str, Val<'static>)>| {
        pairs
            .into_iter()
            .filter_map(|(n, v)| field(store, obj, n).map(|f| (f, v)))
            .collect::<Vec<_>>()
    };
    let a = values(&store, account, vec![("Name", name)]);
    let a = crate::write::apply(&mut store, account, None, &a, now, by);
    let a = crate::store::pack(account, a);
    let c = vec![
        ("FirstName", value(&store, "FirstName")),
        ("LastName", value(&store, "LastName")),
        ("Email", value(&store, "Email")),
        ("AccountId", Val::Ref(a)),
    ];
    let c = values(&store, contact, c);
    let c = crate::write::apply(&mut store, contact, None, &c, now, by);
    let c = crate::store::pack(contact, c);
    let today = store.today();
    let l = vec![
        ("IsConverted", Val::Bool(true)),
        ("ConvertedDate", Val::Date(today)),
        ("ConvertedAccountId", Val::Ref(a)),
        ("ConvertedContactId", Val::Ref(c)),
        ("Status", Val::Str("Closed - Converted".into())),
    ];
    let l = values(&store, lead, l);
    crate::write::apply(&mut store, lead, Some(row), &l, now, by);
    answer(
        StatusCode::OK,
        json!({
            "lead": id,
            "account": store.id_of(a),
            "contact": store.id_of(c),
        }),
    )
}

/// Objects `merge()` combines (SOAP API Developer Guide, merge()).
const MERGEABLE: [&str; 3] = ["Lead", "Contact", "Account"];

/// `{"object": "Account", "master": "001...", "losers": ["001..."], "fields": {...}}`: merges
/// up to three records of one object into the master, as `merge()` does in one transaction:
/// - each loser's `MasterRecordId` becomes the master's Id and the loser is deleted (to the
///   recycle bin, logged for the `deleted` endpoint; queryAll shows it with `IsDeleted`);
/// - every live record of another data object whose lookup pointed at a loser points at the
///   master: an update of that record, so its LastModifiedDate and SystemModstamp move
///   (modelled: the documentation says the children are reparented and fire no triggers, not
///   whether their timestamps move); nothing cascades, since no loser keeps a child;
/// - the master takes `fields` (the values chosen from the losers), and its LastModifiedDate
///   and SystemModstamp move (the merge fires its update).
///
/// Answers the master, the deleted Ids and how many records of each object were reparented.
async fn merge(State(sim): State<Arc<Sim>>, b: Bytes) -> Response {
    let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
    let name = v["object"].as_str().unwrap_or("");
    if !MERGEABLE.contains(&name) {
        return refuse(format!(
            "merge combines Lead, Contact or Account records, not '{name}'"
        ));
    }
    let losers: Vec<&str> = match v["losers"].as_array() {
        Some(l) => l.iter().filter_map(Value::as_str).collect(),
        None => Vec::new(),
    };
    if losers.is_empty() || losers.len() > 2 {
        return refuse(format!(
            "a merge takes one or two losers beside the master (up to three records), not {}",
            losers.len()
        ));
    }
    let mut store = sim.store.write().unwrap_or_else(|e| e.into_inner());
    let Some(obj) = store.catalog.object(name) else {
        return refuse(format!("the org has no {name} object"));
    };
    let master_id = v["master"].as_str().unwrap_or("");
    let Some(master) = store.live_row(obj, master_id) else {
        return refuse(format!(
            "no live {name} with id '{master_id}' to merge into"
        ));
    };
    let mut rows = Vec::new();
    for id in &losers {
        match store.live_row(obj, id) {
            Some(r) if r != master && !rows.contains(&r) => rows.push(r),
            Some(_) => return refuse(format!("'{id}' is the master or named twice")),
            None => return refuse(format!("no live {name} with id '{id}' to merge")),
        }
    }
    let mut values = Vec::new();
    if let Some(fields) = v["fields"].as_object() {
        for (field, value) in fields {
            match stored_value(&store, obj, field, value) {
                Ok(fv) => values.push(fv),
                Err(msg) => return refuse(msg),
            }
        }
    }
    let now = sim.now_ms();
    let master_ref = crate::store::pack(obj, master);
    let gone: std::collections::HashSet<u64> =
        rows.iter().map(|&r| crate::store::pack(obj, r)).collect();
    let reparented = reparent(&mut store, &gone, master_ref, now);
    let master_field = store.catalog.objects[obj].field("MasterRecordId");
    let t = &mut store.tables[obj];
    for &r in &rows {
        if let Some(f) = master_field {
            t.set(r, f, &Val::Ref(master_ref));
        }
        t.delete_row(r, now, false);
    }
    for (f, val) in &values {
        t.set(master, *f, val);
    }
    t.modify(master, now);
    answer(
        StatusCode::OK,
        json!({"master": master_id, "deleted": losers, "reparented": reparented}),
    )
}

/// Points every live record's lookup to a record of `gone` at `master` instead, as an update of
/// that record (its LastModifiedDate and SystemModstamp move at `now`); returns how many
/// records of each object moved.
fn reparent(
    store: &mut Store,
    gone: &std::collections::HashSet<u64>,
    master: u64,
    now: i64,
) -> serde_json::Map<String, Value> {
    let mut reparented = serde_json::Map::new();
    for child in 0..super::describe::FIRST_QUIRKY.min(store.tables.len()) {
        let refs: Vec<usize> = store.catalog.objects[child]
            .fields
            .iter()
            .enumerate()
            .filter(|(_, f)| f.ftype == FType::Reference && !f.calculated)
            .map(|(i, _)| i)
            .collect();
        let t = &mut store.tables[child];
        let mut moved = 0;
        for r in 0..t.len() {
            if t.state[r] != LIVE {
                continue;
            }
            let hits: Vec<usize> = refs
                .iter()
                .copied()
                .filter(|&f| matches!(t.get(r, f), Val::Ref(p) if gone.contains(&p)))
                .collect();
            for &f in &hits {
                t.set(r, f, &Val::Ref(master));
            }
            if !hits.is_empty() {
                t.modify(r, now);
                moved += 1;
            }
        }
        if moved > 0 {
            let name = store.catalog.objects[child].name.clone();
            reparented.insert(name, json!(moved));
        }
    }
    reparented
}

/// The field index and stored value of one `field: value` of an update, or why it cannot be
/// stored.
fn stored_value(
    store: &Store,
    obj: usize,
    field: &str,
    value: &Value,
) -> Result<(usize, Val<'static>), String> {
    let meta = &store.catalog.objects[obj];
    let f = meta
        .field(field)
        .ok_or_else(|| format!("{} has no field '{field}'", meta.name))?;
    let fm = &meta.fields[f];
    if fm.calculated || (!fm.updateable && !fm.createable) {
        return Err(format!(
            "'{}' of {} is not a stored field",
            fm.name, meta.name
        ));
    }
    typed(store, fm, value)
        .ok_or_else(|| {
            format!(
                "{value} is not a value of '{}' (type {})",
                fm.name, fm.sf_type
            )
        })
        .map(|v| (f, v))
}

fn typed(store: &Store, f: &FieldMeta, value: &Value) -> Option<Val<'static>> {
    if value.is_null() {
        return Some(Val::Null);
    }
    Some(match f.ftype {
        FType::Text | FType::Base64 => Val::Str(value.as_str()?.to_string().into()),
        FType::Boolean => Val::Bool(value.as_bool()?),
        FType::Double => Val::Num(value.as_f64()?),
        FType::Int | FType::Long => Val::Int(value.as_i64()?),
        FType::Date => Val::Date(parse_date(value.as_str()?)?),
        FType::DateTime => Val::DateTime(parse_stored_datetime(value.as_str()?)?),
        FType::Reference => Val::Ref(store.resolve(value.as_str()?)?),
        _ => return None,
    })
}

fn clock_json(store: &Store) -> Value {
    let mut day = Vec::new();
    write_date(store.today(), &mut day);
    json!({
        "today": String::from_utf8_lossy(&day),
        "pinned": store.clock.pinned.is_some(),
        "offset_seconds": store.org_clock.offset_ms() as f64 / 1e3,
    })
}

async fn get_clock(State(sim): State<Arc<Sim>>) -> Response {
    let store = sim.store.read().unwrap_or_else(|e| e.into_inner());
    answer(StatusCode::OK, clock_json(&store))
}

/// Answers once the org's clock has left the second of the last change it stamped: records
/// are stamped to the whole second and a query's datetime literal loses its milliseconds, so a
/// read bounded by "now" sees none of the current second's changes. A read started after this
/// answer (with `cursor_lag` 0) sees every change made before it. Answers at once when no
/// change was stamped in the current second; `{"waited_ms": N}`.
async fn next_second(State(sim): State<Arc<Sim>>) -> Response {
    let last = sim.last_stamp.load(std::sync::atomic::Ordering::SeqCst);
    let wait = (last + 1000 - sim.org_time_ms()).max(0);
    if wait > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(wait as u64)).await;
    }
    answer(StatusCode::OK, json!({ "waited_ms": wait }))
}

/// `{"today": "2030-01-01"}` pins the org's day, `{"advance_days": N}` moves it (pinned or
/// not), `{"today": null}` returns to the org clock's day. Record timestamps keep following the
/// org's clock: only `TODAY()` and SOQL's relative date literals move.
///
/// `{"offset_seconds": N}` sets the org's clock N seconds (a negative N: behind) from this
/// machine's: record timestamps, every answer's `Date` header and the day follow it. It stands
/// for a client machine whose clock is wrong; set it before making changes (timestamps then
/// start again from the new clock, even if that is earlier than the last one handed out).
async fn set_clock(State(sim): State<Arc<Sim>>, b: Bytes) -> Response {
    let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
    let mut store = sim.store.write().unwrap_or_else(|e| e.into_inner());
    let mut clock = store.clock;
    let mut offset_ms = None;
    if let Some(n) = v.get("offset_seconds") {
        let Some(ms) = n
            .as_f64()
            .filter(|s| s.is_finite() && s.abs() < 1e9)
            .map(|s| (s * 1e3).round() as i64)
        else {
            return refuse(format!(
                "offset_seconds must be a number of seconds, not {n}"
            ));
        };
        offset_ms = Some(ms);
    }
    match v.get("today") {
        None => {}
        Some(Value::Null) => clock = DayClock::default(),
        Some(day) => match day.as_str().and_then(parse_date) {
            Some(d) => clock.pinned = Some(d),
            None => return refuse(format!("today must be a date YYYY-MM-DD, not {day}")),
        },
    }
    if let Some(n) = v.get("advance_days") {
        let Some(n) = n.as_i64().and_then(|n| i32::try_from(n).ok()) else {
            return refuse(format!(
                "advance_days must be a whole number of days, not {n}"
            ));
        };
        match &mut clock.pinned {
            Some(d) => *d += n,
            None => clock.shift += n,
        }
    }
    store.clock = clock;
    if let Some(ms) = offset_ms {
        store.org_clock.set_offset_ms(ms);
        sim.last_stamp.store(0, std::sync::atomic::Ordering::SeqCst);
    }
    answer(StatusCode::OK, clock_json(&store))
}
