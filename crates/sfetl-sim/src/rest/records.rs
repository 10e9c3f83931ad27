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
    store.tables[o].state[row] = DELETED;
    store.tables[o].touch(row, now);
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

pub(super) fn window(p: &HashMap<String, String>) -> Result<(i64, i64), Response> {
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
        if let crate::store::Val::DateTime(ms) = t.get(r, t.sysmod) {
            earliest = earliest.min(ms);
            if ms >= start && ms < end {
                recs.push(
                    json!({"deletedDate": dt(ms), "id": store.id_of(crate::store::pack(o, r))}),
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

pub(super) async fn updated(
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
        .filter(|&r| matches!(t.get(r, t.sysmod), crate::store::Val::DateTime(ms) if ms >= start && ms < end))
        .map(|r| store.id_of(crate::store::pack(o, r)))
        .collect();
    let body = json!({"ids": ids, "latestDateCovered": dt(end - end.rem_euclid(60_000))});
    json_response(StatusCode::OK, body.to_string().into_bytes())
}
