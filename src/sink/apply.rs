//! Applying one route's rows: the API is chosen by size (sObject Collections up to the
//! threshold, Bulk API 2.0 ingest above it), and rows refused with a transient error
//! (`UNABLE_TO_LOCK_ROW`, `SERVER_UNAVAILABLE`) are sent again before being rejected.

use std::time::Duration;

use arrow::array::{Array, StringArray};

use super::SinkError;
use super::config::Operation;
use crate::salesforce::SalesforceClient;

/// Row error codes worth sending again (as `salesforce::retry` treats them for whole calls).
pub fn is_transient_code(code: &str) -> bool {
    matches!(code, "UNABLE_TO_LOCK_ROW" | "SERVER_UNAVAILABLE")
}

/// What happened to one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Salesforce applied it.
    Applied,
    /// Salesforce refused it.
    Failed {
        /// Salesforce's error code (`STRING_TOO_LONG`, ...).
        code: String,
        /// Salesforce's message.
        message: String,
    },
}

/// The rows of one route, formatted for Salesforce.
pub struct Payload<'a> {
    /// Object API name.
    pub object: &'a str,
    /// Operation.
    pub operation: Operation,
    /// External id field (upsert).
    pub external_id: Option<&'a str>,
    /// (field name, Salesforce type) per column.
    pub fields: Vec<(&'a str, &'a str)>,
    /// One text column per field (null = clear the field).
    pub values: &'a [StringArray],
}

impl Payload<'_> {
    /// Rows in the payload.
    pub fn len(&self) -> usize {
        self.values.first().map(|v| v.len()).unwrap_or(0)
    }

    /// Whether it has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The columns sent: delete sends only Id.
    pub fn columns(&self) -> Vec<usize> {
        (0..self.fields.len())
            .filter(|&c| {
                self.operation != Operation::Delete || self.fields[c].0.eq_ignore_ascii_case("Id")
            })
            .collect()
    }

    /// Row `row`'s value of column `col`.
    pub fn value(&self, col: usize, row: usize) -> Option<&str> {
        let a = &self.values[col];
        a.is_valid(row).then(|| a.value(row))
    }
}

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

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            bulk_threshold: super::config::DEFAULT_BULK_THRESHOLD,
            max_upload_bytes: super::config::DEFAULT_MAX_UPLOAD_BYTES,
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
    let all: Vec<usize> = (0..payload.len()).collect();
    let mut outcomes = vec![Outcome::Applied; payload.len()];
    let mut pending = all;
    let mut round = 0u32;
    loop {
        let results = send(client, payload, &pending, opts).await?;
        let mut again = Vec::new();
        for (row, outcome) in pending.iter().zip(results) {
            if let Outcome::Failed { code, .. } = &outcome
                && is_transient_code(code)
                && round < opts.transient_retries
            {
                again.push(*row);
            }
            outcomes[*row] = outcome;
        }
        if again.is_empty() {
            return Ok(outcomes);
        }
        tracing::warn!(
            "{} {} rows of {} refused with a transient error; sending them again",
            again.len(),
            payload.operation.as_str(),
            payload.object
        );
        tokio::time::sleep(opts.retry_delay * 2u32.pow(round)).await;
        round += 1;
        pending = again;
    }
}

async fn send(
    client: &SalesforceClient,
    payload: &Payload<'_>,
    rows: &[usize],
    opts: &ApplyOptions,
) -> Result<Vec<Outcome>, SinkError> {
    if uses_bulk(rows.len(), opts) {
        super::bulk::send(client, payload, rows, opts.max_upload_bytes).await
    } else {
        let mut out = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(super::collections::MAX_RECORDS) {
            out.extend(super::collections::send(client, payload, chunk).await?);
        }
        Ok(out)
    }
}
