//! Bulk API 2.0 ingest: one job per object and operation (more when the CSV would pass the
//! upload limit), CSV rendered from the formatted Arrow columns with `#N/A` for nulls. Only
//! failed and unprocessed rows are downloaded (results come back in any order, so they are
//! matched to input rows by their values); a clean job costs five calls.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};

use super::SinkError;
use super::apply::{Outcome, Payload};
use super::format::csv_cell;
use crate::salesforce::{ApiRequest, SalesforceClient, SalesforceError};

/// Longest wait between two polls of a job.
const MAX_POLL_DELAY: Duration = Duration::from_secs(5);

/// Sends `rows` of `payload` through as many jobs as the upload limit needs.
pub async fn send(
    client: &SalesforceClient,
    payload: &Payload<'_>,
    rows: &[usize],
    max_upload_bytes: usize,
) -> Result<Vec<Outcome>, SinkError> {
    let columns = payload.columns();
    let mut outcomes = Vec::with_capacity(rows.len());
    let mut start = 0;
    while start < rows.len() {
        let (csv, end) = render(payload, &columns, rows, start, max_upload_bytes)?;
        outcomes.extend(run_job(client, payload, &columns, &rows[start..end], csv).await?);
        start = end;
    }
    Ok(outcomes)
}

/// CSV of rows `start..` up to the byte limit; returns it and the end row.
fn render(
    payload: &Payload<'_>,
    columns: &[usize],
    rows: &[usize],
    start: usize,
    limit: usize,
) -> Result<(Bytes, usize), SinkError> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::with_capacity(1 << 20));
    let err = |e: csv::Error| SinkError::Protocol(format!("rendering Bulk CSV: {e}"));
    w.write_record(columns.iter().map(|&c| payload.fields[c].0))
        .map_err(err)?;
    let mut end = start;
    let mut written = 0usize;
    for &row in &rows[start..] {
        w.write_record(columns.iter().map(|&c| csv_cell(payload.value(c, row))))
            .map_err(err)?;
        let size = w.get_ref().len();
        if size > limit && end > start {
            // This row went over: cut it off and stop here.
            w.flush().map_err(|e| SinkError::Protocol(e.to_string()))?;
            let mut bytes = w
                .into_inner()
                .map_err(|e| SinkError::Protocol(e.to_string()))?;
            bytes.truncate(written);
            return Ok((Bytes::from(bytes), end));
        }
        w.flush().map_err(|e| SinkError::Protocol(e.to_string()))?;
        written = w.get_ref().len();
        end += 1;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| SinkError::Protocol(e.to_string()))?;
    Ok((Bytes::from(bytes), end))
}

async fn run_job(
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
    let job: Value = client
        .post_json(&client.data_url("jobs/ingest"), &spec)
        .await
        .map_err(wrap("creating the job"))?;
    let id = job["id"]
        .as_str()
        .ok_or_else(|| SinkError::Protocol("Bulk ingest job without an id".into()))?
        .to_string();
    let job_url = client.data_url(&format!("jobs/ingest/{id}"));
    client
        .send(ApiRequest::put_bytes(
            format!("{job_url}/batches"),
            "text/csv",
            csv,
        ))
        .await
        .map_err(wrap("uploading the CSV"))?;
    let _: Value = client
        .request_json(
            ApiRequest::patch_json(job_url.clone(), json!({"state": "UploadComplete"}))
                .idempotent(true),
        )
        .await
        .map_err(wrap("closing the upload"))?;
    let mut delay = Duration::ZERO;
    let info: Value = loop {
        let info: Value = client
            .get_json(&job_url)
            .await
            .map_err(wrap("polling the job"))?;
        match info["state"].as_str() {
            Some("JobComplete" | "Failed" | "Aborted") => break info,
            _ => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2)
                    .max(Duration::from_millis(100))
                    .min(MAX_POLL_DELAY);
            }
        }
    };
    let failed = info["numberRecordsFailed"].as_u64().unwrap_or(0);
    let processed = info["numberRecordsProcessed"].as_u64().unwrap_or(0);
    let complete = info["state"] == "JobComplete";
    let mut outcomes = vec![Outcome::Applied; rows.len()];
    let mut index = RowIndex::new(payload, columns, rows);
    if failed > 0 {
        let text = get_text(client, &format!("{job_url}/failedResults/"))
            .await
            .map_err(wrap("downloading failed results"))?;
        for (pos, error) in index.match_results(&text, true)? {
            let (code, message) = split_error(&error);
            outcomes[pos] = Outcome::Failed { code, message };
        }
    }
    if !complete || processed < rows.len() as u64 {
        let text = get_text(client, &format!("{job_url}/unprocessedrecords/"))
            .await
            .map_err(wrap("downloading unprocessed records"))?;
        let why = info["errorMessage"]
            .as_str()
            .unwrap_or("the job ended before processing this row")
            .to_string();
        let state = info["state"].as_str().unwrap_or("?").to_string();
        for (pos, _) in index.match_results(&text, false)? {
            outcomes[pos] = Outcome::Failed {
                code: "UNPROCESSED".into(),
                message: format!("Bulk job {id} ended {state}: {why}"),
            };
        }
    }
    Ok(outcomes)
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

/// `CODE:message:fields --` → (code, message).
fn split_error(e: &str) -> (String, String) {
    let e = e.trim().trim_end_matches("--").trim_end();
    match e.split_once(':') {
        Some((code, rest)) => {
            let message = match rest.rsplit_once(':') {
                Some((m, fields)) if fields.trim().is_empty() => m.to_string(),
                Some((m, fields)) => format!("{m} (fields: {})", fields.trim()),
                None => rest.to_string(),
            };
            (code.trim().to_string(), message)
        }
        None => ("UNKNOWN_ERROR".into(), e.to_string()),
    }
}

/// Input rows by their CSV cells, to find which row a result line belongs to.
struct RowIndex {
    names: Vec<String>,
    by_key: HashMap<Vec<String>, Vec<usize>>,
}

impl RowIndex {
    fn new(payload: &Payload<'_>, columns: &[usize], rows: &[usize]) -> RowIndex {
        let mut by_key: HashMap<Vec<String>, Vec<usize>> = HashMap::new();
        for (pos, &row) in rows.iter().enumerate().rev() {
            let key = columns
                .iter()
                .map(|&c| csv_cell(payload.value(c, row)).to_string())
                .collect();
            by_key.entry(key).or_default().push(pos);
        }
        RowIndex {
            names: columns
                .iter()
                .map(|&c| payload.fields[c].0.to_string())
                .collect(),
            by_key,
        }
    }

    /// (row position, sf__Error) per result line; each input row is matched once.
    fn match_results(
        &mut self,
        text: &str,
        with_error: bool,
    ) -> Result<Vec<(usize, String)>, SinkError> {
        let mut rdr = csv::ReaderBuilder::new().from_reader(text.as_bytes());
        let bad = |e: csv::Error| SinkError::Protocol(format!("reading Bulk results: {e}"));
        let headers = rdr.headers().map_err(bad)?.clone();
        let pos_of = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
        let cols: Vec<Option<usize>> = self.names.iter().map(|n| pos_of(n)).collect();
        let error_col = pos_of("sf__Error");
        let mut out = Vec::new();
        for rec in rdr.records() {
            let rec = rec.map_err(bad)?;
            let key: Vec<String> = cols
                .iter()
                .map(|c| c.and_then(|c| rec.get(c)).unwrap_or("").to_string())
                .collect();
            let error = if with_error {
                error_col.and_then(|c| rec.get(c)).unwrap_or("").to_string()
            } else {
                String::new()
            };
            match self.by_key.get_mut(&key).and_then(Vec::pop) {
                Some(pos) => out.push((pos, error)),
                None => {
                    return Err(SinkError::Protocol(format!(
                        "a Bulk result row matches no row sent ({})",
                        key.join(",")
                    )));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::split_error;

    #[test]
    fn bulk_errors_split_into_code_and_message() {
        assert_eq!(
            split_error("STRING_TOO_LONG:Score Reason: data value too large:Score_Reason__c --"),
            (
                "STRING_TOO_LONG".to_string(),
                "Score Reason: data value too large (fields: Score_Reason__c)".to_string()
            )
        );
        assert_eq!(
            split_error("INVALID_CROSS_REFERENCE_KEY:invalid cross reference id: x: --"),
            (
                "INVALID_CROSS_REFERENCE_KEY".to_string(),
                "invalid cross reference id: x".to_string()
            )
        );
    }
}
