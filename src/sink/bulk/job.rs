//! One Bulk API 2.0 ingest job, through the API layer's job lifecycle: create, upload the CSV,
//! close, poll until it ends (with the lifecycle's deadline), then download only the failed
//! and unprocessed rows (a clean job costs five calls).

use bytes::Bytes;

use super::encode::{RowIndex, split_error};
use crate::protocol::FailureType;
use crate::salesforce::bulk::{Bulk, IngestResults, IngestSpec, JobInfo, JobKind, PollPolicy};
use crate::salesforce::{SalesforceClient, SalesforceError};
use crate::sink::error::SinkError;
use crate::sink::payload::{Outcome, Payload};
use crate::stop::StopSignal;

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
    let bulk = Bulk::new(client);
    let spec = IngestSpec {
        object: payload.object,
        operation: payload.operation.as_str(),
        external_id: payload.external_id,
    };
    let id = bulk
        .create_ingest(&spec)
        .await
        .map_err(wrap("creating the job"))?
        .id;
    if let Err(e) = bulk.upload(&id, csv).await {
        if e.failure_type() != FailureType::TransientError {
            return Err(wrap("uploading the CSV")(e));
        }
        // The upload may or may not have landed: abort the job so it never runs, and let the
        // caller send these rows again in a new one.
        let _ = bulk.abort(JobKind::Ingest, &id).await;
        let message = format!("Bulk job {id}: uploading the CSV failed: {e}");
        return Ok(vec![Outcome::Unprocessed { message }; rows.len()]);
    }
    bulk.close(&id).await.map_err(wrap("closing the upload"))?;
    let info = bulk
        .wait(
            JobKind::Ingest,
            &id,
            &PollPolicy::ingest(),
            &StopSignal::default(),
        )
        .await
        .map_err(wrap("polling the job"))?;
    let ended = Ended {
        bulk: &bulk,
        id: &id,
        info: &info,
    };
    ended
        .outcomes(payload, columns, rows, |what, e| wrap(what)(e))
        .await
}

/// A finished ingest job, whose failed and unprocessed rows are matched back to the input.
struct Ended<'a> {
    bulk: &'a Bulk<'a>,
    id: &'a str,
    info: &'a JobInfo,
}

impl Ended<'_> {
    /// One outcome per row: applied, unless the job's failed or unprocessed results name it.
    async fn outcomes(
        &self,
        payload: &Payload<'_>,
        columns: &[usize],
        rows: &[usize],
        wrap: impl Fn(&'static str, SalesforceError) -> SinkError,
    ) -> Result<Vec<Outcome>, SinkError> {
        let (bulk, id, info) = (self.bulk, self.id, self.info);
        let mut outcomes = vec![Outcome::Applied; rows.len()];
        let mut index = RowIndex::new(payload, columns, rows);
        if info.number_records_failed.unwrap_or(0) > 0 {
            let text = bulk
                .ingest_results(id, IngestResults::Failed)
                .await
                .map_err(|e| wrap("downloading failed results", e))?;
            for (pos, error) in index.match_results(&text, true)? {
                let (code, message) = split_error(&error);
                outcomes[pos] = Outcome::Failed { code, message };
            }
        }
        let processed = info.number_records_processed.unwrap_or(0);
        if info.state != "JobComplete" || processed < rows.len() as u64 {
            let text = bulk
                .ingest_results(id, IngestResults::Unprocessed)
                .await
                .map_err(|e| wrap("downloading unprocessed records", e))?;
            let why = info
                .error_message
                .as_deref()
                .unwrap_or("the job ended before processing this row");
            let state = &info.state;
            for (pos, _) in index.match_results(&text, false)? {
                outcomes[pos] = Outcome::Unprocessed {
                    message: format!("Bulk job {id} ended {state}: {why}"),
                };
            }
        }
        Ok(outcomes)
    }
}
