//! Bulk API 2.0 ingest: one job per object and operation (more when the CSV would pass the
//! upload limit).
//!
//! `encode` turns rows into CSV and results back into rows; `job` holds every HTTP call.

mod encode;
mod job;

use crate::sink::error::SinkError;
use crate::sink::payload::{Outcome, Payload};

/// Sends `rows` of `payload` through as many jobs as the upload limit needs; one outcome per
/// row, in order.
pub async fn send(
    client: &crate::salesforce::SalesforceClient,
    payload: &Payload<'_>,
    rows: &[usize],
    max_upload_bytes: usize,
) -> Result<Vec<Outcome>, SinkError> {
    let columns = payload.columns();
    let mut outcomes = Vec::with_capacity(rows.len());
    let mut start = 0;
    while start < rows.len() {
        let (csv, end) = encode::render(payload, &columns, rows, start, max_upload_bytes)?;
        outcomes.extend(job::run(client, payload, &columns, &rows[start..end], csv).await?);
        start = end;
    }
    Ok(outcomes)
}
