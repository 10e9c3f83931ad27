//! One Bulk API 2.0 ingest job over HTTP: create, upload the CSV, close, poll until it ends,
//! then download only the failed and unprocessed rows (a clean job costs five calls). Every
//! ingest call of the sink is here, so moving them onto `salesforce/`'s Bulk job lifecycle
//! replaces this file alone.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};

use super::encode::{RowIndex, split_error};
use crate::protocol::FailureType;
use crate::salesforce::{ApiRequest, SalesforceClient, SalesforceError};
use crate::sink::error::SinkError;
use crate::sink::payload::{Outcome, Payload};

/// Longest wait between two polls of a job.
const MAX_POLL_DELAY: Duration = Duration::from_secs(5);

/// Runs one job of `rows` (payload rows, rendered in `csv` in that order); one outcome per row.
/// A job that ends without processing rows gives them [`Outcome::Unprocessed`], as does an
/// upload that fails transiently (the job is then aborted, so nothing of it is applied).
pub(super) async fn run(
    client: &SalesforceClient,
    payload: &Payload<'_>,
    columns: &[usize],
    rows: &[usize],
    csv: Bytes,
) -> Result<Vec<Outcome>, SinkError> {
    let during = |what: &str| {
        format!(
            "Bulk ingest {} of {} {} records ({what})",
            payload.operation.as_str(),
            rows.len(),
            payload.object
        )
    };
    let wrap = |what: &'static str| {
        let d = during(what);
        move |e: SalesforceError| SinkError::Salesforce {
            during: d.clone(),
            source: e,
        }
    };
    let id = create(client, payload)
        .await
        .map_err(wrap("creating the job"))?;
    let job_url = client.data_url(&format!("jobs/ingest/{id}"));
    let upload = ApiRequest::put_bytes(format!("{job_url}/batches"), "text/csv", csv);
    if let Err(e) = client.send(upload).await {
        if e.failure_type() != FailureType::TransientError {
            return Err(wrap("uploading the CSV")(e));
        }
        // The upload may or may not have landed: abort the job so it never runs, and let the
        // caller send these rows again in a new one.
        let abort = ApiRequest::patch_json(job_url.clone(), json!({"state": "Aborted"}));
        let _ = client.send(abort.idempotent(true)).await;
        let message = format!("Bulk job {id}: uploading the CSV failed: {e}");
        return Ok(vec![Outcome::Unprocessed { message }; rows.len()]);
    }
    let close = ApiRequest::patch_json(job_url.clone(), json!({"state": "UploadComplete"}));
    let _: Value = client
        .request_json(close.idempotent(true))
        .await
        .map_err(wrap("closing the upload"))?;
    let info = poll(client, &job_url)
        .await
        .map_err(wrap("polling the job"))?;
    let mut outcomes = vec![Outcome::Applied; rows.len()];
    let mut index = RowIndex::new(payload, columns, rows);
    if info["numberRecordsFailed"].as_u64().unwrap_or(0) > 0 {
        let text = get_text(client, &format!("{job_url}/failedResults/"))
            .await
            .map_err(wrap("downloading failed results"))?;
        for (pos, error) in index.match_results(&text, true)? {
            let (code, message) = split_error(&error);
            outcomes[pos] = Outcome::Failed { code, message };
        }
    }
    let processed = info["numberRecordsProcessed"].as_u64().unwrap_or(0);
    if info["state"] != "JobComplete" || processed < rows.len() as u64 {
        let text = get_text(client, &format!("{job_url}/unprocessedrecords/"))
            .await
            .map_err(wrap("downloading unprocessed records"))?;
        let why = info["errorMessage"]
            .as_str()
            .unwrap_or("the job ended before processing this row");
        let state = info["state"].as_str().unwrap_or("?");
        for (pos, _) in index.match_results(&text, false)? {
            outcomes[pos] = Outcome::Unprocessed {
                message: format!("Bulk job {id} ended {state}: {why}"),
            };
        }
    }
    Ok(outcomes)
}

/// Creates the job; its id. Retried after a transient failure or a dropped connection with the
/// client's backoff although it is a POST: a job created by a lost attempt stays empty and
/// `Open`, so it never touches a record (Salesforce removes it after 7 days).
async fn create(
    client: &SalesforceClient,
    payload: &Payload<'_>,
) -> Result<String, SalesforceError> {
    let mut spec = json!({
        "object": payload.object,
        "operation": payload.operation.as_str(),
        "contentType": "CSV",
        "lineEnding": "LF",
        "columnDelimiter": "COMMA",
    });
    if let Some(ext) = payload.external_id {
        spec["externalIdFieldName"] = json!(ext);
    }
    let url = client.data_url("jobs/ingest");
    let job: Value = client
        .request_json(ApiRequest::post_json(url.clone(), spec).idempotent(true))
        .await?;
    job["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| SalesforceError::InvalidResponse {
            host: crate::transport::origin_of(&url),
            detail: "the created Bulk ingest job has no id".into(),
        })
}

/// Polls the job until it ends (`JobComplete`, `Failed`, `Aborted`); its last info.
async fn poll(client: &SalesforceClient, job_url: &str) -> Result<Value, SalesforceError> {
    let mut delay = Duration::ZERO;
    loop {
        let info: Value = client.get_json(job_url).await?;
        if let Some("JobComplete" | "Failed" | "Aborted") = info["state"].as_str() {
            return Ok(info);
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2)
            .max(Duration::from_millis(100))
            .min(MAX_POLL_DELAY);
    }
}

async fn get_text(client: &SalesforceClient, url: &str) -> Result<String, SalesforceError> {
    let response = client.send(ApiRequest::get(url)).await?;
    let bytes = response
        .bytes()
        .await
        .map_err(|e| SalesforceError::Unreachable {
            host: crate::transport::origin_of(url),
            detail: e.to_string(),
        })?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
