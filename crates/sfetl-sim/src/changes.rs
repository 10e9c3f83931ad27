//! Test control of changes a real org sees without any API call from the client under test:
//! a user editing a record (`/__sim/update`: the values change, and only that record's
//! LastModifiedDate and SystemModstamp move, never its children's, whose cross-object formulas
//! follow it anyway) and the passing of days (`/__sim/clock`: `TODAY()` in formulas and SOQL's
//! relative date literals, so time-based formulas change while no timestamp does).

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
    DayClock, LIVE, Store, Val, parse_date, parse_datetime, unpack, write_date, write_datetime,
};

/// The routes of this module.
pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/__sim/update", post(update))
        .route("/__sim/convert_lead", post(convert_lead))
        .route("/__sim/clock", get(get_clock).post(set_clock))
}

fn answer(status: StatusCode, v: Value) -> Response {
    json_response(status, v.to_string().into_bytes())
}

fn refuse(msg: String) -> Response {
    answer(StatusCode::BAD_REQUEST, json!({ "error": msg }))
}

/// `{"object": "Account", "id": "001...", "fields": {"Name": "Acme", "Industry": "Energy"}}`:
/// a user's edit of stored fields (text, numbers, booleans, dates, datetimes, references). The
/// record's LastModifiedDate and SystemModstamp take the time; nothing else moves.
async fn update(State(sim): State<Arc<Sim>>, b: Bytes) -> Response {
    let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
    let (name, id) = (
        v["object"].as_str().unwrap_or(""),
        v["id"].as_str().unwrap_or(""),
    );
    let Some(fields) = v["fields"].as_object().filter(|f| !f.is_empty()) else {
        return refuse("give \"fields\": {\"Name\": \"...\"} with at least one field".into());
    };
    let mut store = sim.store.write().unwrap_or_else(|e| e.into_inner());
    let Some(obj) = store.catalog.object(name) else {
        return refuse(format!("unknown object '{name}'"));
    };
    let row = match store.resolve(id).map(unpack) {
        Some((o, r)) if o == obj && store.tables[o].state[r] == LIVE => r,
        _ => return refuse(format!("no live {name} with id '{id}'")),
    };
    let mut values = Vec::new();
    for (field, value) in fields {
        match stored_value(&store, obj, field, value) {
            Ok(fv) => values.push(fv),
            Err(msg) => return refuse(msg),
        }
    }
    let now = sim.now_ms();
    let t = &mut store.tables[obj];
    for (f, val) in &values {
        t.set(row, *f, val);
    }
    t.modify(row, now);
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
    let row = match store.resolve(id).map(unpack) {
        Some((o, r)) if o == lead && store.tables[o].state[r] == LIVE => r,
        _ => return refuse(format!("no live Lead with id '{id}'")),
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
    let today = store.clock.today();
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
        FType::DateTime => Val::DateTime(parse_datetime(value.as_str()?)?),
        FType::Reference => Val::Ref(store.resolve(value.as_str()?)?),
        _ => return None,
    })
}

fn clock_json(clock: DayClock) -> Value {
    let mut day = Vec::new();
    write_date(clock.today(), &mut day);
    json!({"today": String::from_utf8_lossy(&day), "pinned": clock.pinned.is_some()})
}

async fn get_clock(State(sim): State<Arc<Sim>>) -> Response {
    let store = sim.store.read().unwrap_or_else(|e| e.into_inner());
    answer(StatusCode::OK, clock_json(store.clock))
}

/// `{"today": "2030-01-01"}` pins the org's day, `{"advance_days": N}` moves it (pinned or
/// not), `{"today": null}` returns to the wall clock. Record timestamps keep following the wall
/// clock: only `TODAY()` and SOQL's relative date literals move.
async fn set_clock(State(sim): State<Arc<Sim>>, b: Bytes) -> Response {
    let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
    let mut store = sim.store.write().unwrap_or_else(|e| e.into_inner());
    let mut clock = store.clock;
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
    answer(StatusCode::OK, clock_json(clock))
}
