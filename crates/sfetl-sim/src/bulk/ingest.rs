//! Bulk API 2.0 ingest jobs: create, CSV upload, processing with per-row validation, results.

use super::*;
use crate::faults::Faults;

const OPERATIONS: [&str; 5] = ["insert", "update", "upsert", "delete", "hardDelete"];

pub(super) async fn create_ingest(
    State(sim): State<Arc<Sim>>,
    UrlPath(ver): UrlPath<String>,
    body: Bytes,
) -> Response {
    check!(check_version_since(&ver, INGEST_SINCE));
    let body = check!(parse_json(&body));
    let operation = body["operation"].as_str().unwrap_or("");
    if !OPERATIONS.contains(&operation) {
        return bad(
            "INVALIDJOB",
            &format!("InvalidJob : Invalid operation: {operation}"),
        );
    }
    let store = sim.store.read().unwrap_or_else(|e| e.into_inner());
    let name = body["object"].as_str().unwrap_or("");
    let Some(object) = store.catalog.object(name) else {
        return bad(
            "INVALIDJOB",
            &format!("InvalidJob : Unable to find object: {name}"),
        );
    };
    let meta = &store.catalog.objects[object];
    let mut extra = Vec::new();
    let ext_field = if operation == "upsert" {
        let ext = body["externalIdFieldName"].as_str().unwrap_or("");
        match meta.field(ext) {
            Some(i) if meta.fields[i].external_id || meta.fields[i].ftype == FType::Id => {
                extra.push(("externalIdFieldName", json!(meta.fields[i].name)));
                Some(i)
            }
            _ => {
                return bad(
                    "INVALIDJOB",
                    &format!(
                        "InvalidJob : Field name provided, {ext} is not an External ID or indexed field for {}",
                        meta.name
                    ),
                );
            }
        }
    } else {
        None
    };
    let mut info = check!(new_info(&sim, &ver, &body, &meta.name, operation));
    info.state = "Open".into();
    let resp = info_json(&info, &store, "V2Ingest", false, &extra);
    let job = IngestJob {
        info: info.clone(),
        object,
        ext_field,
        data: Vec::new(),
        results: None,
    };
    sim.jobs
        .ingest
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(info.id.clone(), job);
    json_response(StatusCode::OK, resp.to_string().into_bytes())
}

pub(super) async fn list_ingest(
    State(sim): State<Arc<Sim>>,
    UrlPath(ver): UrlPath<String>,
) -> Response {
    check!(check_version_since(&ver, INGEST_SINCE));
    let store = sim.store.read().unwrap_or_else(|e| e.into_inner());
    let jobs = sim.jobs.ingest.lock().unwrap_or_else(|e| e.into_inner());
    job_list(jobs.values().map(|j| ingest_info(j, &store)).collect())
}

pub(super) fn ingest_info(j: &IngestJob, store: &Store) -> Value {
    let mut extra = Vec::new();
    if let Some(f) = j.ext_field {
        extra.push((
            "externalIdFieldName",
            json!(store.catalog.objects[j.object].fields[f].name),
        ));
    }
    let mut v = info_json(&j.info, store, "V2Ingest", true, &extra);
    let failed = j.results.as_ref().map_or(0, |r| r.failed_n);
    v["numberRecordsFailed"] = json!(failed);
    v["apiActiveProcessingTime"] = json!(if j.info.state == "JobComplete" { 30 } else { 0 });
    v["apexProcessingTime"] = json!(0);
    v
}

pub(super) async fn upload(
    State(sim): State<Arc<Sim>>,
    UrlPath((ver, id)): UrlPath<(String, String)>,
    body: Bytes,
) -> Response {
    check!(check_version_since(&ver, INGEST_SINCE));
    let mut jobs = sim.jobs.ingest.lock().unwrap_or_else(|e| e.into_inner());
    let Some(job) = jobs.get_mut(&id) else {
        return not_found();
    };
    if job.info.state != "Open" {
        return sf_error(
            StatusCode::CONFLICT,
            "INVALIDJOBSTATE",
            "Job is not in the Open state; data can only be uploaded to an Open job",
        );
    }
    if job.data.len() + body.len() > 150 * 1024 * 1024 {
        return bad(
            "INVALIDBATCH",
            "The uploaded data exceeds the 150 MB limit of a job",
        );
    }
    if !job.data.is_empty() {
        return bad("INVALIDBATCH", "Only one upload is allowed per job");
    }
    job.data.extend_from_slice(&body);
    sim.jobs.ingest_batches.fetch_add(1, Ordering::SeqCst);
    StatusCode::CREATED.into_response()
}

pub(super) async fn patch_ingest(
    State(sim): State<Arc<Sim>>,
    UrlPath((ver, id)): UrlPath<(String, String)>,
    body: Bytes,
) -> Response {
    check!(check_version_since(&ver, INGEST_SINCE));
    let body = check!(parse_json(&body));
    let target = body["state"].as_str().unwrap_or("").to_string();
    let now = sim.now_ms();
    let mut job = {
        let jobs = sim.jobs.ingest.lock().unwrap_or_else(|e| e.into_inner());
        match jobs.get(&id) {
            Some(j) => j.clone(),
            None => return not_found(),
        }
    };
    match (job.info.state.as_str(), target.as_str()) {
        ("Open", "UploadComplete") => {
            job.info.state = "UploadComplete".into();
            let mut store = sim.store.write().unwrap_or_else(|e| e.into_inner());
            let res = if job.info.fail {
                job.info.error =
                    Some("InternalServerError : the ingest job failed (simulated)".into());
                unprocessed_only(&job)
            } else {
                let mut faults = sim.faults.lock().unwrap_or_else(|e| e.into_inner());
                match process(&mut store, &job, now, &mut faults) {
                    Ok(r) => r,
                    Err(msg) => {
                        job.info.fail = true;
                        job.info.error = Some(msg);
                        unprocessed_only(&job)
                    }
                }
            };
            job.info.processed = res.processed;
            job.results = Some(res);
        }
        ("Open" | "UploadComplete" | "InProgress", "Aborted") => {
            job.info.state = "Aborted".into();
            if job.results.is_none() {
                job.results = Some(unprocessed_only(&job));
            }
        }
        (s, t) => {
            return bad(
                "INVALIDJOBSTATE",
                &format!("Cannot change the state of a job from {s} to {t}"),
            );
        }
    }
    job.info.modstamp = now;
    let store = sim.store.read().unwrap_or_else(|e| e.into_inner());
    let resp = info_json(&job.info, &store, "V2Ingest", false, &[]);
    sim.jobs
        .ingest
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id, job);
    json_response(StatusCode::OK, resp.to_string().into_bytes())
}

pub(super) async fn get_ingest(
    State(sim): State<Arc<Sim>>,
    UrlPath((ver, id)): UrlPath<(String, String)>,
) -> Response {
    check!(check_version_since(&ver, INGEST_SINCE));
    let store = sim.store.read().unwrap_or_else(|e| e.into_inner());
    let mut jobs = sim.jobs.ingest.lock().unwrap_or_else(|e| e.into_inner());
    let Some(job) = jobs.get_mut(&id) else {
        return not_found();
    };
    match job.info.state.as_str() {
        "UploadComplete" => job.info.state = "InProgress".into(),
        "InProgress" => {
            job.info.state = if job.info.fail {
                "Failed".into()
            } else {
                "JobComplete".into()
            }
        }
        _ => {}
    }
    json_response(
        StatusCode::OK,
        ingest_info(job, &store).to_string().into_bytes(),
    )
}

pub(super) async fn delete_ingest(
    State(sim): State<Arc<Sim>>,
    UrlPath((ver, id)): UrlPath<(String, String)>,
) -> Response {
    check!(check_version_since(&ver, INGEST_SINCE));
    let mut jobs = sim.jobs.ingest.lock().unwrap_or_else(|e| e.into_inner());
    let Some(job) = jobs.get(&id) else {
        return not_found();
    };
    if let Some(refusal) = super::refuse_delete_unless_terminal(&job.info.state) {
        return refusal;
    }
    jobs.remove(&id);
    StatusCode::NO_CONTENT.into_response()
}

pub(super) fn ingest_result(
    sim: &Sim,
    ver: &str,
    id: &str,
    pick: fn(&IngestResults) -> &Vec<u8>,
) -> Response {
    check!(check_version_since(ver, INGEST_SINCE));
    let jobs = sim.jobs.ingest.lock().unwrap_or_else(|e| e.into_inner());
    let Some(job) = jobs.get(id) else {
        return not_found();
    };
    let ready = matches!(
        job.info.state.as_str(),
        "JobComplete" | "Failed" | "Aborted"
    );
    match (&job.results, ready) {
        (Some(r), true) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/csv")],
            pick(r).clone(),
        )
            .into_response(),
        _ => sf_error(
            StatusCode::PRECONDITION_FAILED,
            "JOB_NOT_COMPLETE",
            &format!("Job {id} is not complete: its state is {}", job.info.state),
        ),
    }
}

pub(super) async fn ingest_success(
    State(sim): State<Arc<Sim>>,
    UrlPath((ver, id)): UrlPath<(String, String)>,
) -> Response {
    ingest_result(&sim, &ver, &id, |r| &r.success)
}

pub(super) async fn ingest_failed(
    State(sim): State<Arc<Sim>>,
    UrlPath((ver, id)): UrlPath<(String, String)>,
) -> Response {
    ingest_result(&sim, &ver, &id, |r| &r.failed)
}

pub(super) async fn ingest_unprocessed(
    State(sim): State<Arc<Sim>>,
    UrlPath((ver, id)): UrlPath<(String, String)>,
) -> Response {
    ingest_result(&sim, &ver, &id, |r| &r.unprocessed)
}

pub(super) fn csv_reader(job: &IngestJob) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .delimiter(delimiter_byte(&job.info.delimiter).unwrap_or(b','))
        .has_headers(true)
        .from_reader(&job.data[..])
}

pub(super) fn write_row(
    out: &mut Vec<u8>,
    sep: u8,
    eol: &[u8],
    lead: &[&str],
    rec: &csv::StringRecord,
) {
    for (k, s) in lead
        .iter()
        .chain(rec.iter().collect::<Vec<_>>().iter())
        .enumerate()
    {
        if k > 0 {
            out.push(sep);
        }
        csv_text(out, s);
    }
    out.extend_from_slice(eol);
}

pub(super) fn unprocessed_only(job: &IngestJob) -> IngestResults {
    let sep = delimiter_byte(&job.info.delimiter).unwrap_or(b',');
    let eol: &[u8] = if job.info.line_ending == "CRLF" {
        b"\r\n"
    } else {
        b"\n"
    };
    let mut r = IngestResults::default();
    let mut rdr = csv_reader(job);
    let headers = rdr.headers().cloned().unwrap_or_default();
    write_row(
        &mut r.success,
        sep,
        eol,
        &["sf__Id", "sf__Created"],
        &headers,
    );
    write_row(&mut r.failed, sep, eol, &["sf__Id", "sf__Error"], &headers);
    write_row(&mut r.unprocessed, sep, eol, &[], &headers);
    for rec in rdr.records().flatten() {
        write_row(&mut r.unprocessed, sep, eol, &[], &rec);
    }
    r
}

/// Processes an uploaded CSV; Err is a job-level failure (bad header, unparsable CSV).
pub(super) fn process(
    store: &mut Store,
    job: &IngestJob,
    now: i64,
    faults: &mut Faults,
) -> Result<IngestResults, String> {
    let sep = delimiter_byte(&job.info.delimiter).unwrap_or(b',');
    let eol: &[u8] = if job.info.line_ending == "CRLF" {
        b"\r\n"
    } else {
        b"\n"
    };
    let obj = job.object;
    let op = job.info.operation.as_str();
    let mut rdr = csv_reader(job);
    let headers = rdr
        .headers()
        .map_err(|e| format!("InvalidBatch : Failed to parse CSV header: {e}"))?
        .clone();
    let meta = &store.catalog.objects[obj];
    let mut cols = Vec::new();
    for h in headers.iter() {
        let i = meta
            .field(h)
            .ok_or_else(|| format!("InvalidBatch : Field name not found : {h}"))?;
        cols.push(i);
    }
    let id_col = headers.iter().position(|h| h.eq_ignore_ascii_case("Id"));
    if matches!(op, "update" | "delete" | "hardDelete") && id_col.is_none() {
        return Err("InvalidBatch : Field name not found : Id".into());
    }
    let ext_col = job
        .ext_field
        .and_then(|f| cols.iter().position(|&c| c == f));
    if op == "upsert" && ext_col.is_none() {
        return Err(format!(
            "InvalidBatch : Field name not found : {}",
            job.ext_field
                .map(|f| meta.fields[f].name.clone())
                .unwrap_or_default()
        ));
    }
    let mut r = IngestResults::default();
    write_row(
        &mut r.success,
        sep,
        eol,
        &["sf__Id", "sf__Created"],
        &headers,
    );
    write_row(&mut r.failed, sep, eol, &["sf__Id", "sf__Error"], &headers);
    write_row(&mut r.unprocessed, sep, eol, &[], &headers);
    let user = pack(4, 0);
    // An upsert's external id values, read once for the index and the duplicate check.
    let keys: Vec<String> = match (op, ext_col) {
        ("upsert", Some(c)) => csv_reader(job)
            .records()
            .flatten()
            .map(|rec| rec.get(c).unwrap_or("").to_string())
            .collect(),
        _ => Vec::new(),
    };
    let mut index = match job.ext_field {
        Some(f) if op == "upsert" && meta.fields[f].ftype != FType::Id => {
            ExtIndex::build(store, obj, f, keys.iter().map(String::as_str))
        }
        _ => ExtIndex::default(),
    };
    let twice = crate::write::keys_twice_per_chunk(&keys);
    let ext_name = job
        .ext_field
        .map(|f| meta.fields[f].name.clone())
        .unwrap_or_default();
    // Rows a delete job removed: their cascading children follow at the job's end.
    let mut deleted = Vec::new();
    for (n, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| format!("InvalidBatch : Failed to parse CSV: {e}"))?;
        r.processed += 1;
        let id = id_col.and_then(|c| rec.get(c)).unwrap_or("");
        if twice.get(n).copied().unwrap_or(false) {
            r.failed_n += 1;
            let key = ext_col.and_then(|c| rec.get(c)).unwrap_or("");
            let msg =
                format!("DUPLICATE_VALUE:Duplicate external id specified: {key}:{ext_name} --");
            write_row(&mut r.failed, sep, eol, &["", &msg], &rec);
            continue;
        }
        if let Some((code, message)) = faults.take_row_failure(id) {
            r.failed_n += 1;
            let msg = format!("{code}:{message}: --");
            write_row(&mut r.failed, sep, eol, &[id, &msg], &rec);
            continue;
        }
        let outcome = ingest_row(
            store,
            obj,
            op,
            &headers,
            &rec,
            id_col,
            ext_col,
            job.ext_field,
            &mut index,
            now,
            user,
        );
        match outcome {
            Ok((id, created)) => {
                if matches!(op, "delete" | "hardDelete")
                    && let Some(p) = store.resolve(&id)
                {
                    deleted.push(crate::store::unpack(p).1);
                }
                write_row(
                    &mut r.success,
                    sep,
                    eol,
                    &[&id, if created { "true" } else { "false" }],
                    &rec,
                )
            }
            Err((id, e)) => {
                r.failed_n += 1;
                let msg = format!("{}:{}:{} --", e.code, e.message, e.fields.join(","));
                write_row(&mut r.failed, sep, eol, &[&id, &msg], &rec);
            }
        }
    }
    store.cascade_from(obj, &deleted, now, op == "hardDelete");
    Ok(r)
}

#[allow(clippy::too_many_arguments)]
pub(super) fn ingest_row(
    store: &mut Store,
    obj: usize,
    op: &str,
    headers: &csv::StringRecord,
    rec: &csv::StringRecord,
    id_col: Option<usize>,
    ext_col: Option<usize>,
    ext_field: Option<usize>,
    index: &mut ExtIndex,
    now: i64,
    user: u64,
) -> Result<(String, bool), (String, RecError)> {
    let err = |code: &str, msg: String| RecError {
        code: code.into(),
        message: msg,
        fields: vec![],
    };
    let by_id = |store: &Store| -> Result<usize, (String, RecError)> {
        let id = rec.get(id_col.unwrap_or(0)).unwrap_or("");
        let p = store
            .resolve(id)
            .filter(|p| unpack(*p).0 == obj)
            .ok_or_else(|| {
                (
                    String::new(),
                    err(
                        "INVALID_CROSS_REFERENCE_KEY",
                        format!("invalid cross reference id: {id}"),
                    ),
                )
            })?;
        Ok(unpack(p).1)
    };
    let row = match op {
        "insert" => None,
        "update" | "delete" | "hardDelete" => {
            let row = by_id(store)?;
            if store.tables[obj].state[row] != LIVE && op != "hardDelete" {
                return Err((
                    store.id_of(pack(obj, row)),
                    err("ENTITY_IS_DELETED", "entity is deleted".into()),
                ));
            }
            Some(row)
        }
        _ => {
            let key = rec.get(ext_col.unwrap_or(0)).unwrap_or("");
            let f = ext_field.unwrap_or(0);
            if store.catalog.objects[obj].fields[f].ftype == FType::Id {
                if key.is_empty() {
                    None
                } else {
                    Some(by_id(store)?)
                }
            } else {
                let hits = index.get(key);
                if hits.len() > 1 {
                    return Err((
                        String::new(),
                        err(
                            "DUPLICATE_EXTERNAL_ID",
                            format!("more than one record found for external id field: {key}"),
                        ),
                    ));
                }
                hits.first().copied()
            }
        }
    };
    if op == "delete" || op == "hardDelete" {
        let row = row.unwrap_or(0);
        store.tables[obj].delete_row(row, now, op == "hardDelete");
        return Ok((store.id_of(pack(obj, row)), false));
    }
    let inputs = headers
        .iter()
        .zip(rec.iter())
        .filter(|(h, v)| !v.is_empty() && !h.eq_ignore_ascii_case("Id"))
        .map(|(h, v)| (h, Input::Text(v)));
    let id_for_err = row.map(|r| store.id_of(pack(obj, r))).unwrap_or_default();
    let vals = validate(store, obj, row, inputs, true).map_err(|e| (id_for_err, e))?;
    let created = row.is_none();
    let r = apply(store, obj, row, &vals, now, user);
    if created && let Some(c) = ext_col {
        index.add(rec.get(c).unwrap_or(""), r);
    }
    Ok((store.id_of(pack(obj, r)), created))
}
