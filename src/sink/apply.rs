//! Applying one route's rows: rows sfetl refuses up front (the text `#N/A`) are left out, the
//! API is chosen by size (sObject Collections up to the threshold, Bulk API 2.0 ingest above
//! it), and rows refused with a transient error (`UNABLE_TO_LOCK_ROW`, `SERVER_UNAVAILABLE`)
//! are sent again before being rejected.

use std::time::Duration;

use super::error::SinkError;
use super::payload::{Outcome, Payload};
use super::{bulk, collections};
use crate::salesforce::SalesforceClient;
use crate::salesforce::is_transient_code;
use crate::transport::RetryPolicy;

/// Knobs of [`apply`].
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// More rows than this go through Bulk API 2.0.
    pub bulk_threshold: usize,
    /// Largest Bulk upload in bytes.
    pub max_upload_bytes: usize,
    /// Rounds of re-sending rows refused with a transient error.
    pub transient_retries: u32,
    /// Wait before the first re-send (doubled each round).
    pub retry_delay: Duration,
}

impl ApplyOptions {
    /// The writeback's thresholds, with 3 rounds of re-sends starting 500 ms apart (a row
    /// lock held by a trigger is usually released within a second or two).
    pub fn new(bulk_threshold: usize, max_upload_bytes: usize) -> ApplyOptions {
        ApplyOptions {
            bulk_threshold,
            max_upload_bytes,
            transient_retries: 3,
            retry_delay: Duration::from_millis(500),
        }
    }
}

/// Which API a batch of `rows` goes through: Bulk above the threshold, else Collections.
pub fn uses_bulk(rows: usize, opts: &ApplyOptions) -> bool {
    rows > opts.bulk_threshold
}

/// Applies every row of `payload`; the outcome per row, in order.
pub async fn apply(
    client: &SalesforceClient,
    payload: &Payload<'_>,
    opts: &ApplyOptions,
) -> Result<Vec<Outcome>, SinkError> {
    let mut outcomes = vec![Outcome::Applied; payload.len()];
    let mut pending = Vec::with_capacity(payload.len());
    for (row, outcome) in outcomes.iter_mut().enumerate() {
        match payload.literal_na(row) {
            Some(refusal) => *outcome = refusal,
            None => pending.push(row),
        }
    }
    // The one backoff policy: rounds of re-sends, `retry_delay` doubling.
    let policy = RetryPolicy {
        max_attempts: opts.transient_retries + 1,
        base_delay: opts.retry_delay * 2,
        max_delay: opts.retry_delay * 2u32.pow(opts.transient_retries.min(16)),
        // Rounds of rows, not requests: a busy org is the client's to wait for.
        ..RetryPolicy::default()
    };
    let mut rounds = policy.attempts();
    while !pending.is_empty() {
        let results = send(client, payload, &pending, opts).await?;
        let mut again = Vec::new();
        for (row, outcome) in pending.iter().zip(results) {
            if let Outcome::Failed { code, .. } = &outcome
                && is_transient_code(code)
            {
                again.push(*row);
            }
            outcomes[*row] = outcome;
        }
        if again.is_empty() || !rounds.backoff(None).await {
            break;
        }
        tracing::warn!(
            "{} {} rows of {} refused with a transient error; sent them again",
            again.len(),
            payload.operation.as_str(),
            payload.object
        );
        pending = again;
    }
    Ok(outcomes)
}

async fn send(
    client: &SalesforceClient,
    payload: &Payload<'_>,
    rows: &[usize],
    opts: &ApplyOptions,
) -> Result<Vec<Outcome>, SinkError> {
    if uses_bulk(rows.len(), opts) {
        bulk::send(client, payload, rows, opts.max_upload_bytes).await
    } else {
        collections::send(client, payload, rows).await
    }
}
