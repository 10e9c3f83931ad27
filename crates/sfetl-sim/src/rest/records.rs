//! Single records (`sobjects/X/{id}` GET / PATCH / DELETE, `POST sobjects/X`) and the
//! replication endpoints (`sobjects/X/deleted/`, `sobjects/X/updated/`).

use super::*;

#[allow(clippy::result_large_err)]
pub(super) fn locate(store: &Store, obj: &str, id: &str) -> Result<(usize, usize), Response> {
    let o = store.catalog.object(obj).ok_or_else(not_found)?;
    let p = store.resolve(id).ok_or_else(not_found)?;
    let (po, row) = crate::store::unpack(p);
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

/// `GET sobjects/{Object}/{id}/{Base64Field}`: the content of a base64 field as raw bytes (REST
/// queries and record reads give this URL in place of the content, as Salesforce does).
pub(super) async fn get_blob(
    State(sim): State<Arc<Sim>>,
    UrlPath((ver, obj, id, field)): UrlPath<(String, String, String, String)>,
) -> Response {
    use base64::Engine as _;
    check!(check_version(&ver));
    let store = read_store(&sim);
    let (o, row) = check!(locate(&store, &obj, &id));
    let meta = &store.catalog.objects[o];
    let Some(f) = meta
        .field(&field)
        .filter(|&f| meta.fields[f].ftype == FType::Base64)
    else {
        return not_found();
    };
    let bytes = match store.tables[o].get(row, f) {
        crate::store::Val::Str(s) => base64::engine::general_purpose::STANDARD
            .decode(s.as_bytes())
            .unwrap_or_default(),
        _ => return not_found(),
    };
    (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
        bytes,
    )
        .into_response()
}

pub(super) async fn get_record(
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
                Some(i) => picked.extend(fields.iter().find(|f| f.field == i).cloned()),
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
    json_record(&mut out, &store, o, row, &fields, &ver, Blobs::Urls);
    json_response(StatusCode::OK, out)
}

pub(super) fn rec_error_response(e: &RecError) -> Response {
    let body = json!([{"message": e.message, "errorCode": e.code, "fields": e.fields}]);
    json_response(StatusCode::BAD_REQUEST, body.to_string().into_bytes())
}

pub(super) fn parse_body(body: &Bytes) -> Result<Value, Response> {
    serde_json::from_slice(body).map_err(|e| {
        sf_error(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            &format!("Unexpected character: {e}"),
        )
    })
}

pub(super) fn user_ref(store: &Store) -> u64 {
    let _ = store;
    crate::store::pack(4, 0)
}

/// The body of a single-record write, which must be a JSON object.
fn body_object(v: &Value) -> Result<&serde_json::Map<String, Value>, Response> {
    v.as_object().ok_or_else(|| {
        sf_error(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            "The request body must be a JSON object",
        )
    })
}

/// Validates a single-record write (insert when `row` is None); errors answer as Salesforce does.
fn validate_json(
    store: &Store,
    o: usize,
    row: Option<usize>,
    map: &serde_json::Map<String, Value>,
) -> Result<Vec<(usize, crate::store::Val<'static>)>, Response> {
    validate(
        store,
        o,
        row,
        map.iter().map(|(k, v)| (k.as_str(), Input::Json(v))),
        false,
    )
    .map_err(|e| rec_error_response(&e))
}

pub(super) async fn patch_record(
    State(sim): State<Arc<Sim>>,
    UrlPath((ver, obj, id)): UrlPath<(String, String, String)>,
    body: Bytes,
) -> Response {
    check!(check_version(&ver));
    let v = check!(parse_body(&body));
    let map = check!(body_object(&v));
    let now = sim.now_ms();
    let mut store = write_store(&sim);
    let (o, row) = check!(locate(&store, &obj, &id));
    let vals = check!(validate_json(&store, o, Some(row), map));
    let user = user_ref(&store);
    apply(&mut store, o, Some(row), &vals, now, user);
    StatusCode::NO_CONTENT.into_response()
}

pub(super) async fn delete_record(
    State(sim): State<Arc<Sim>>,
    UrlPath((ver, obj, id)): UrlPath<(String, String, String)>,
) -> Response {
    check!(check_version(&ver));
    let now = sim.now_ms();
    let mut store = write_store(&sim);
    let (o, row) = check!(locate(&store, &obj, &id));
    store.delete_cascading(o, &[row], false, &|_, _| now);
    StatusCode::NO_CONTENT.into_response()
}

pub(super) async fn create_one(
    State(sim): State<Arc<Sim>>,
    UrlPath((ver, obj)): UrlPath<(String, String)>,
    body: Bytes,
) -> Response {
    check!(check_version(&ver));
    let v = check!(parse_body(&body));
    let map = check!(body_object(&v));
    let now = sim.now_ms();
    let mut store = write_store(&sim);
    let Some(o) = store.catalog.object(&obj) else {
        return not_found();
    };
    let vals = check!(validate_json(&store, o, None, map));
    let user = user_ref(&store);
    let row = apply(&mut store, o, None, &vals, now, user);
    let id = store.id_of(crate::store::pack(o, row));
    json_response(
        StatusCode::CREATED,
        json!({"id": id, "success": true, "errors": []})
            .to_string()
            .into_bytes(),
    )
}

/// One minute, in ms: the replication endpoints work in whole minutes.
const MINUTE: i64 = 60_000;
/// One day, in ms.
const DAY: i64 = 86_400_000;

fn replication_error(message: &str) -> Response {
    sf_error(StatusCode::BAD_REQUEST, "INVALID_REPLICATION_DATE", message)
}

/// The `start` / `end` of a replication call after Salesforce's rules: seconds are truncated,
/// the range must span at least a minute and at most `replication_max_days`, and may not start
/// before the org enabled replication.
pub(super) fn window(
    p: &HashMap<String, String>,
    limits: &crate::limits::Limits,
) -> Result<(i64, i64), Response> {
    let parse = |k: &str| {
        p.get(k)
            .and_then(|s| parse_datetime(s.trim()))
            .ok_or_else(|| {
                replication_error(&format!("{k} date is missing or not a valid dateTime"))
            })
    };
    let (start, end) = (parse("start")?, parse("end")?);
    let (start, end) = (
        start - start.rem_euclid(MINUTE),
        end - end.rem_euclid(MINUTE),
    );
    if end < start {
        return Err(replication_error("end date cannot be before start date"));
    }
    if end - start < MINUTE {
        return Err(replication_error(
            "startDate must chronologically precede endDate by more than one minute",
        ));
    }
    if end - start > limits.replication_max_days * DAY {
        return Err(replication_error(&format!(
            "startDate and endDate are more than {} days apart",
            limits.replication_max_days
        )));
    }
    if start < limits.replication_enabled_ms {
        return Err(replication_error(
            "startDate before org replication enabled date",
        ));
    }
    Ok((start, end))
}

/// More ids than a replication call may return.
fn too_many_ids(limit: usize) -> Response {
    sf_error(
        StatusCode::BAD_REQUEST,
        "EXCEEDED_ID_LIMIT",
        &format!(
            "The number of ids exceeds the limit of {limit}; choose start and end dates that are closer together"
        ),
    )
}

pub(super) fn dt(ms: i64) -> String {
    let mut v = Vec::new();
    write_datetime(ms, &mut v);
    String::from_utf8(v).unwrap_or_default()
}

pub(super) async fn deleted(
    State(sim): State<Arc<Sim>>,
    UrlPath((ver, obj)): UrlPath<(String, String)>,
    UrlQuery(p): UrlQuery<HashMap<String, String>>,
) -> Response {
    check!(check_version(&ver));
    let limits = sim.limits();
    let (start, end) = check!(window(&p, &limits));
    let now = sim.now_ms();
    let store = read_store(&sim);
    let Some(o) = store.catalog.object(&obj) else {
        return not_found();
    };
    let t = &store.tables[o];
    // The log keeps `delete_log_days` whole days, and nothing purged before a purge.
    let kept_from = now - now.rem_euclid(DAY) - limits.delete_log_days * DAY;
    let earliest = kept_from.max(t.log_purged_before);
    let earliest = earliest + (MINUTE - earliest.rem_euclid(MINUTE)) % MINUTE;
    if start < earliest {
        return replication_error(&format!(
            "startDate is before earliestDateAvailable {}: the delete log no longer covers it",
            dt(earliest)
        ));
    }
    let latest = end.min(now - now.rem_euclid(MINUTE));
    let hits: Vec<&(i64, u32)> = t
        .delete_log
        .iter()
        .filter(|&&(ms, _)| ms >= start && ms <= end)
        .collect();
    if hits.len() > limits.deleted_id_limit {
        return too_many_ids(limits.deleted_id_limit);
    }
    let recs: Vec<Value> = hits
        .iter()
        .map(|&&(ms, r)| {
            json!({"deletedDate": dt(ms), "id": store.id_of(crate::store::pack(o, r as usize))})
        })
        .collect();
    let body = json!({
        "deletedRecords": recs,
        "earliestDateAvailable": dt(earliest),
        "latestDateCovered": dt(latest),
    });
    json_response(StatusCode::OK, body.to_string().into_bytes())
}

pub(super) async fn updated(
    State(sim): State<Arc<Sim>>,
    UrlPath((ver, obj)): UrlPath<(String, String)>,
    UrlQuery(p): UrlQuery<HashMap<String, String>>,
) -> Response {
    check!(check_version(&ver));
    let limits = sim.limits();
    let (start, end) = check!(window(&p, &limits));
    let now = sim.now_ms();
    if start < now - now.rem_euclid(DAY) - limits.replication_max_days * DAY {
        return replication_error(&format!(
            "startDate cannot be more than {} days ago",
            limits.replication_max_days
        ));
    }
    let store = read_store(&sim);
    let Some(o) = store.catalog.object(&obj) else {
        return not_found();
    };
    let t = &store.tables[o];
    let ids: Vec<String> = (0..t.len())
        .filter(|&r| t.state[r] == LIVE)
        .filter(|&r| matches!(t.get(r, t.sysmod), crate::store::Val::DateTime(ms) if ms >= start && ms <= end))
        .map(|r| store.id_of(crate::store::pack(o, r)))
        .collect();
    if ids.len() > limits.deleted_id_limit {
        return too_many_ids(limits.deleted_id_limit);
    }
    let latest = end.min(now - now.rem_euclid(MINUTE));
    let body = json!({"ids": ids, "latestDateCovered": dt(latest)});
    json_response(StatusCode::OK, body.to_string().into_bytes())
}
