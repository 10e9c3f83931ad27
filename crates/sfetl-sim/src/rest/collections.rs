//! sObject Collections: create, update by id, upsert by external id and delete by id, up to 200
//! records, with per-record results and `allOrNone` rollback.

use super::*;

/// A validated change: object, row to update (None = insert), values.
type Planned = Result<
    (
        usize,
        Option<usize>,
        Vec<(usize, crate::store::Val<'static>)>,
    ),
    RecError,
>;

/// The version that brought sObject Collections create, update and delete.
const COLLECTIONS_SINCE: u32 = 42;
/// The version that brought their upsert by external id.
const UPSERT_SINCE: u32 = 46;

enum Mode {
    Create,
    Update,
    Upsert(usize),
}

pub(super) async fn collections_create(
    State(sim): State<Arc<Sim>>,
    UrlPath(ver): UrlPath<String>,
    body: Bytes,
) -> Response {
    collections(sim, ver, None, None, body, false)
}

pub(super) async fn collections_update(
    State(sim): State<Arc<Sim>>,
    UrlPath(ver): UrlPath<String>,
    body: Bytes,
) -> Response {
    collections(sim, ver, None, None, body, true)
}

pub(super) async fn collections_upsert(
    State(sim): State<Arc<Sim>>,
    UrlPath((ver, obj, ext)): UrlPath<(String, String, String)>,
    body: Bytes,
) -> Response {
    collections(sim, ver, Some(obj), Some(ext), body, true)
}

/// `DELETE composite/sobjects?ids=a,b&allOrNone=false`: moves up to 200 records to the recycle
/// bin, one `DeleteResult` per id in the order given.
pub(super) async fn collections_delete(
    State(sim): State<Arc<Sim>>,
    UrlPath(ver): UrlPath<String>,
    UrlQuery(p): UrlQuery<HashMap<String, String>>,
) -> Response {
    check!(check_version_since(&ver, COLLECTIONS_SINCE));
    let ids: Vec<&str> = p
        .get("ids")
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if ids.is_empty() {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "MISSING_ARGUMENT",
            "ids parameter must be specified",
        );
    }
    if ids.len() > 200 {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 200 records into this call",
        );
    }
    let all_or_none = p.get("allOrNone").is_some_and(|v| v == "true");
    let now = sim.now_ms();
    let mut store = write_store(&sim);
    let mut faults = sim.faults.lock().unwrap_or_else(|e| e.into_inner());
    let planned: Vec<Result<(usize, usize), RecError>> = ids
        .iter()
        .map(|id| {
            let gone = |code: &str, message: String| RecError {
                code: code.into(),
                message,
                fields: vec![],
            };
            // Not an id at all, or the id of a record no longer there (purged).
            let p = store
                .resolve(id)
                .ok_or_else(|| match crate::store::parse_id(id) {
                    None => gone("MALFORMED_ID", format!("malformed id {id}")),
                    Some(_) => gone("ENTITY_IS_DELETED", "entity is deleted".into()),
                })?;
            let (o, row) = crate::store::unpack(p);
            if store.tables[o].state[row] != LIVE {
                return Err(gone("ENTITY_IS_DELETED", "entity is deleted".into()));
            }
            Ok((o, row))
        })
        .collect();
    let any_failed = planned.iter().any(|p| p.is_err());
    // The rows deleted, by object.
    let mut deleted: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    let results: Vec<Value> = ids
        .iter()
        .zip(planned)
        .map(|(id, plan)| {
            let refused = |code: &str, message: &str| {
                json!({"id": null, "success": false, "errors": [
                    {"statusCode": code, "message": message, "fields": []}]})
            };
            match plan {
                Err(e) => refused(&e.code, &e.message),
                Ok(_) if all_or_none && any_failed => refused(
                    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                    "Record rolled back because not all records were valid and the request was using AllOrNone header",
                ),
                Ok((o, row)) => match faults.take_row_failure(id) {
                    Some((code, message)) => refused(&code, &message),
                    None => {
                        store.tables[o].delete_row(row, now, false);
                        deleted.entry(o).or_default().push(row);
                        json!({"id": store.id_of(crate::store::pack(o, row)), "success": true, "errors": []})
                    }
                },
            }
        })
        .collect();
    // The children of every record deleted go with them, once per object and request.
    for (o, rows) in deleted {
        store.cascade_from(o, &rows, now, false);
    }
    json_response(
        StatusCode::OK,
        serde_json::to_vec(&results).unwrap_or_default(),
    )
}

fn collections(
    sim: Arc<Sim>,
    ver: String,
    obj: Option<String>,
    ext: Option<String>,
    body: Bytes,
    is_patch: bool,
) -> Response {
    let since = if ext.is_some() {
        UPSERT_SINCE
    } else {
        COLLECTIONS_SINCE
    };
    check!(check_version_since(&ver, since));
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
    // An upsert's external id field and values, read once for the index and the duplicate
    // check.
    let (ext_name, keys, index) = match (&mode, mode_obj) {
        (Mode::Upsert(f), Some(o)) => {
            let name = store.catalog.objects[o].fields[*f].name.clone();
            let keys: Vec<String> = records.iter().map(|r| ext_key(r, &name)).collect();
            let index = ExtIndex::build(&store, o, *f, keys.iter().map(String::as_str));
            (name, keys, index)
        }
        _ => (String::new(), Vec::new(), ExtIndex::default()),
    };
    let twice = crate::write::keys_twice_per_chunk(&keys);
    for (i, rec) in records.iter().enumerate() {
        let plan = match twice.get(i) {
            Some(true) => Err(RecError {
                code: "DUPLICATE_VALUE".into(),
                message: format!("Duplicate external id specified: {}", keys[i]),
                fields: vec![ext_name.clone()],
            }),
            _ => plan_record(&store, rec, mode_obj, &mode, &index),
        };
        plans.push(plan);
    }
    let any_failed = plans.iter().any(|p| p.is_err());
    let mut faults = sim.faults.lock().unwrap_or_else(|e| e.into_inner());
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
                let id = row.map(|r| store.id_of(crate::store::pack(o, r)));
                if let Some((code, message)) =
                    faults.take_row_failure(id.as_deref().unwrap_or_default())
                {
                    results.push(json!({"success": false, "errors": [
                        {"statusCode": code, "message": message, "fields": []}]}));
                    continue;
                }
                let created = row.is_none();
                let r = apply(&mut store, o, row, &vals, now, user);
                let id = store.id_of(crate::store::pack(o, r));
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

/// A record's value of the external id field `name` as text (empty when it has none).
fn ext_key(rec: &Value, name: &str) -> String {
    let value = rec
        .as_object()
        .and_then(|m| m.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)));
    match value {
        None | Some((_, Value::Null)) => String::new(),
        Some((_, Value::String(s))) => s.clone(),
        Some((_, other)) => other.to_string(),
    }
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
                .ok_or_else(|| match crate::store::parse_id(id) {
                    None => err(
                        "MALFORMED_ID",
                        &format!("Record ID: id value of incorrect type: {id}"),
                        vec!["Id".into()],
                    ),
                    Some(_) => err("ENTITY_IS_DELETED", "entity is deleted", vec![]),
                })?;
            let (po, row) = crate::store::unpack(p);
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
