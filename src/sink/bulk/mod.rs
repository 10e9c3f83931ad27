//! Bulk API 2.0 ingest: one job per object and operation (more when the CSV would pass the
//! upload limit). A job that ends without processing some rows (`Failed`, `Aborted`, or an
//! upload that failed) is run once more for those rows as a new job; rows left unprocessed
//! after that come back as [`Outcome::Unprocessed`], and the sink stops the run on them.
//!
//! `encode` turns rows into CSV and results back into rows; `job` holds every HTTP call.

mod encode;
mod job;

use crate::sink::error::SinkError;
use crate::sink::payload::{Outcome, Payload};

/// Sends `rows` of `payload` through as many jobs as the upload limit needs; one outcome per
/// row, in order. A row too large for an upload of its own is refused by name, unsent.
pub async fn send(
    client: &crate::salesforce::SalesforceClient,
    payload: &Payload<'_>,
    rows: &[usize],
    max_upload_bytes: usize,
) -> Result<Vec<Outcome>, SinkError> {
    let columns = payload.columns();
    let mut outcomes = vec![Outcome::Applied; rows.len()];
    let mut start = 0;
    while start < rows.len() {
        let chunk = encode::render(payload, &columns, rows, start, max_upload_bytes)?;
        for (pos, refusal) in chunk.refused {
            outcomes[pos] = refusal;
        }
        if !chunk.rows.is_empty() {
            let sent: Vec<usize> = chunk.rows.iter().map(|&pos| rows[pos]).collect();
            let first = job::run(client, payload, &columns, &sent, chunk.csv).await?;
            let results = again_if_unprocessed(client, payload, &columns, &sent, first).await?;
            for (pos, outcome) in chunk.rows.into_iter().zip(results) {
                outcomes[pos] = outcome;
            }
        }
        start = chunk.next;
    }
    Ok(outcomes)
}

/// Runs the rows a job left unprocessed once more in a new job (a job ends `Failed` on a
/// server-side fault, and the rows it did process keep their outcomes); their outcomes from the
/// second job replace the first.
async fn again_if_unprocessed(
    client: &crate::salesforce::SalesforceClient,
    payload: &Payload<'_>,
    columns: &[usize],
    sent: &[usize],
    mut outcomes: Vec<Outcome>,
) -> Result<Vec<Outcome>, SinkError> {
    let left: Vec<usize> = (0..sent.len())
        .filter(|&i| matches!(outcomes[i], Outcome::Unprocessed { .. }))
        .collect();
    let Some(first) = left.first() else {
        return Ok(outcomes);
    };
    if let Outcome::Unprocessed { message } = &outcomes[*first] {
        tracing::warn!(
            "{message}; sending its {} unprocessed {} row(s) of {} again in a new job",
            left.len(),
            payload.operation.as_str(),
            payload.object
        );
    }
    let rows: Vec<usize> = left.iter().map(|&i| sent[i]).collect();
    // A subset of rows that fitted one upload fits one too.
    let chunk = encode::render(payload, columns, &rows, 0, usize::MAX)?;
    let second = job::run(client, payload, columns, &rows, chunk.csv).await?;
    for (i, outcome) in left.into_iter().zip(second) {
        outcomes[i] = outcome;
    }
    Ok(outcomes)
}
