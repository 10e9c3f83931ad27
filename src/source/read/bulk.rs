//! Bulk API 2.0 paging of one window: one query job, its results pages by locator streamed
//! into the CSV decoder chunk by chunk, and the job deleted. A page cut off midway is fetched
//! again from its locator, skipping the rows already delivered, so nothing is lost or
//! duplicated; an incremental read checkpoints after every page.

use arrow::array::RecordBatch;
use chrono::{DateTime, Utc};

use super::FetchError;
use super::fetch::ObjectReader;
use crate::decode::{CsvPageDecoder, DecodedPage, PageError, PageEvent, WirePlan};
use crate::output::StreamWriter;
use crate::protocol::{
    AirbyteEstimateTraceMessage, AirbyteMessage, AirbyteTraceMessage, EstimateType, LogLevel,
    TraceType, now_millis,
};
use crate::salesforce::SalesforceError;
use crate::salesforce::bulk::{Bulk, JobKind};
use crate::salesforce::ids::{IdCollector, IdSet};
use crate::source::soql::Window;

impl ObjectReader<'_> {
    /// Reads one window through a Bulk query job.
    pub(super) async fn bulk_window(
        &mut self,
        window: Option<Window>,
        writer: &mut dyn StreamWriter,
    ) -> Result<u64, FetchError> {
        let bulk = Bulk::new(&self.ctx.client);
        let plan = &self.object.bulk;
        // Incremental windows are read in cursor order so every results page can be a checkpoint.
        let soql = self.soql(plan, window, self.checkpoints());
        let job = bulk.create_query(&soql, true).await?;
        let result = self.bulk_results(plan, &job.id, writer).await;
        if let Err(e) = bulk.delete(JobKind::Query, &job.id).await {
            tracing::warn!("could not delete Bulk job {}: {e}", job.id);
        }
        result
    }

    async fn bulk_results(
        &mut self,
        plan: &WirePlan,
        job: &str,
        writer: &mut dyn StreamWriter,
    ) -> Result<u64, FetchError> {
        let ctx = self.ctx;
        let info = Bulk::new(&ctx.client)
            .wait_complete(JobKind::Query, job, &ctx.opts.poll, &ctx.opts.stop)
            .await?;
        if let Some(n) = info.number_records_processed {
            self.estimate(n).await?;
        }
        let mut locator: Option<String> = None;
        let mut total = 0u64;
        let mut tolerated = Tolerated::default();
        loop {
            ctx.check_stop()?;
            self.check_quota().await?;
            let (delivered, next) = self
                .bulk_page_whole(plan, job, locator.as_deref(), &mut tolerated, writer)
                .await?;
            total += delivered;
            let Some(next) = next else { break };
            if self.checkpoints()
                && let Some(max) = self.max_cursor_us
                && let Some(at) = DateTime::<Utc>::from_timestamp_micros(max)
            {
                // Rows arrive in cursor order: everything below `max` is delivered; rows equal
                // to it may continue on the next page, and the inclusive lower bound of the next
                // run reads them again (deduplicated).
                self.checkpoint(writer, at).await?;
            }
            locator = Some(next);
        }
        self.warn_tolerated(&tolerated).await;
        Ok(total)
    }

    /// Adds a job's row count to the stream's estimate (progress bar and ESTIMATE trace).
    pub(super) async fn estimate(&mut self, rows: u64) -> Result<(), FetchError> {
        if let Some(w) = &self.worker {
            return w.send(super::concurrent::Event::Estimate(rows)).await;
        }
        self.estimated += rows;
        self.progress.set_estimate(self.estimated);
        self.ctx
            .emit(AirbyteMessage::trace(AirbyteTraceMessage {
                kind: TraceType::Estimate,
                emitted_at: now_millis() as f64,
                error: None,
                estimate: Some(AirbyteEstimateTraceMessage {
                    name: self.plan.name.clone(),
                    namespace: None,
                    kind: EstimateType::Stream,
                    row_estimate: Some(self.estimated as i64),
                    byte_estimate: None,
                }),
                stream_status: None,
                analytics: None,
            }))
            .await
    }

    /// One page, fetched again from its locator while its body is cut off (up to
    /// `page_attempts` in all, with the client's backoff); returns the rows delivered from it
    /// and the next locator.
    async fn bulk_page_whole(
        &mut self,
        plan: &WirePlan,
        job: &str,
        locator: Option<&str>,
        tolerated: &mut Tolerated,
        writer: &mut dyn StreamWriter,
    ) -> Result<(u64, Option<String>), FetchError> {
        let policy = self
            .ctx
            .client
            .retry_policy()
            .with_attempts(self.ctx.opts.page_attempts);
        let mut attempts = policy.attempts();
        let mut delivered = 0u64;
        loop {
            match self
                .bulk_page(plan, job, locator, &mut delivered, tolerated, writer)
                .await
            {
                Ok(next) => return Ok((delivered, next)),
                Err(FetchError::Salesforce(SalesforceError::CutOff { reason, .. }))
                    if attempts.backoff(None).await =>
                {
                    tracing::warn!(
                        "results page of job {job} cut off ({reason}); fetched it again, {delivered} rows already delivered"
                    );
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Fetches one page; rows of it already delivered by an earlier attempt are skipped.
    async fn bulk_page(
        &mut self,
        plan: &WirePlan,
        job: &str,
        locator: Option<&str>,
        delivered: &mut u64,
        tolerated: &mut Tolerated,
        writer: &mut dyn StreamWriter,
    ) -> Result<Option<String>, FetchError> {
        let ctx = self.ctx;
        let page = Bulk::new(&ctx.client)
            .results_page(job, locator, ctx.opts.max_records)
            .await?;
        let (records, next_locator) = (page.records, page.next_locator.clone());
        // Received, inflated and decoded on a task of its own while these batches are written.
        let decoder = CsvPageDecoder::new(plan, ctx.opts.batch_rows)
            .with_batch_bytes(ctx.destination.batch_bytes());
        let mut decoded = DecodedPage::spawn(page.into_chunks(), decoder);
        let mut offset = 0u64;
        let extracted_at = Utc::now();
        loop {
            let event = decoded.next().await.ok_or_else(|| {
                FetchError::from(SalesforceError::CutOff {
                    what: format!("a results page of Bulk job {job}"),
                    reason: "its decoding stopped early".into(),
                })
            })?;
            let batches = match event {
                Ok(PageEvent::Chunk { bytes, batches }) => {
                    self.progress.add_bytes(bytes as u64);
                    batches
                }
                Ok(PageEvent::End {
                    replaced_utf8,
                    removed_nul,
                }) => {
                    tolerated.replaced_utf8 += replaced_utf8;
                    tolerated.removed_nul += removed_nul;
                    break;
                }
                Err(PageError::Source(e)) => return Err(e.into()),
                Err(PageError::Decode(e)) => return Err(e.into()),
            };
            for b in fresh_rows(batches, &mut offset, *delivered) {
                self.deliver(writer, plan.assemble(&b)?, extracted_at)
                    .await?;
                *delivered += b.num_rows() as u64;
            }
        }
        if let Some(expected) = records
            && expected != offset
        {
            return Err(SalesforceError::CutOff {
                what: format!("a results page of Bulk job {job}"),
                reason: format!("the page announced {expected} records but held {offset}"),
            }
            .into());
        }
        Ok(next_locator)
    }
}

impl ObjectReader<'_> {
    /// The values of the single column `soql` selects, through one Bulk `queryAll` job (the
    /// recycle bin included): the Ids of a reconciliation.
    pub(super) async fn bulk_ids(&self, soql: &str) -> Result<IdSet, FetchError> {
        let ctx = self.ctx;
        let bulk = Bulk::new(&ctx.client);
        let job = bulk.create_query(soql, true).await?;
        let result = async {
            bulk.wait_complete(JobKind::Query, &job.id, &ctx.opts.poll, &ctx.opts.stop)
                .await?;
            let mut ids = IdCollector::default();
            let mut locator: Option<String> = None;
            loop {
                let mut page = bulk
                    .results_page(&job.id, locator.as_deref(), ctx.opts.max_records)
                    .await?;
                let mut body = Vec::new();
                while let Some(chunk) = page.chunk().await? {
                    body.extend_from_slice(&chunk);
                }
                let mut reader = csv::Reader::from_reader(body.as_slice());
                for record in reader.records() {
                    let record = record.map_err(|e| FetchError::Reconcile(e.to_string()))?;
                    if let Some(id) = record.get(0).filter(|v| !v.is_empty()) {
                        ids.push(id);
                    }
                }
                match page.next_locator {
                    Some(l) => locator = Some(l),
                    None => return Ok::<_, FetchError>(ids.finish()),
                }
            }
        }
        .await;
        if let Err(e) = bulk.delete(JobKind::Query, &job.id).await {
            tracing::warn!("could not delete Bulk job {}: {e}", job.id);
        }
        result
    }
}

/// What the decoders repaired in the values of one read, for one WARN each.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Tolerated {
    /// Invalid UTF-8 sequences replaced by U+FFFD.
    pub(super) replaced_utf8: u64,
    /// NUL bytes removed from text values.
    pub(super) removed_nul: u64,
}

impl ObjectReader<'_> {
    /// One WARN for each kind of repair `tolerated` counts.
    pub(super) async fn warn_tolerated(&self, tolerated: &Tolerated) {
        let name = &self.plan.name;
        if tolerated.replaced_utf8 > 0 {
            let text = format!(
                "{name}: {} invalid UTF-8 sequences were replaced by U+FFFD",
                tolerated.replaced_utf8
            );
            self.ctx.log(LogLevel::Warn, text).await;
        }
        if tolerated.removed_nul > 0 {
            let n = tolerated.removed_nul;
            let what = if n == 1 { "byte was" } else { "bytes were" };
            let text = format!(
                "{name}: {n} NUL {what} removed from text values (Salesforce can store them; Parquet, JSON and database consumers should not get them)"
            );
            self.ctx.log(LogLevel::Warn, text).await;
        }
    }
}

/// The rows of `batches` (which start at page row `offset`) not yet delivered.
fn fresh_rows(batches: Vec<RecordBatch>, offset: &mut u64, delivered: u64) -> Vec<RecordBatch> {
    let mut fresh = Vec::new();
    for b in batches {
        let n = b.num_rows() as u64;
        let start = *offset;
        *offset += n;
        if start + n <= delivered {
            continue;
        }
        let skip = delivered.saturating_sub(start) as usize;
        fresh.push(b.slice(skip, b.num_rows() - skip));
    }
    fresh
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int32Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::fresh_rows;

    fn batch(from: i32, n: i32) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int32, false)]));
        let a = Int32Array::from((from..from + n).collect::<Vec<_>>());
        RecordBatch::try_new(schema, vec![Arc::new(a)]).unwrap()
    }

    #[test]
    fn a_page_fetched_again_skips_what_was_delivered() {
        let mut offset = 0;
        let fresh = fresh_rows(vec![batch(0, 4), batch(4, 4), batch(8, 4)], &mut offset, 6);
        assert_eq!(offset, 12);
        let rows: Vec<i32> = fresh
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<Int32Array>()
                    .unwrap()
                    .values()
                    .to_vec()
            })
            .collect();
        assert_eq!(rows, vec![6, 7, 8, 9, 10, 11]);
    }
}
