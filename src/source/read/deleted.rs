//! Rows deleted in a window that `queryAll` cannot return any more (hard deletes, an emptied
//! recycle bin), from the REST `deleted` endpoint, delivered as rows with `Id`,
//! `IsDeleted = true`, and the deletion time as cursor and `_sfetl_deleted_at`; records the org
//! holds live again (undeleted: the log keeps the deletion) are left out.
//!
//! The endpoint has date rules (Salesforce's getDeleted): a range must span at least a minute
//! and at most 30 days, and start no earlier than the delete log's `earliestDateAvailable`
//! (about 15 days back, less after a purge); more than 600,000 ids is `EXCEEDED_ID_LIMIT`. sfetl
//! asks only for ranges it accepts, splits a range that holds too many ids, and when the log
//! does not reach back to a window's start (a gap) hard deletes are found another way:
//! [`ObjectReader::reconcile_deletes`] compares the Ids the export holds with the Ids the org
//! returns.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;

use super::FetchError;
use super::fetch::ObjectReader;
use super::plan::DELETED_AT;
use crate::output::{OutputError, StreamWriter};
use crate::protocol::LogLevel;
use crate::salesforce::SalesforceError;
use crate::salesforce::ids::{IdCollector, IdSet};
use crate::salesforce::replication::{self, DeletedRecords};
use crate::source::soql;
use crate::source::soql::Window;
use crate::state::{datetime_literal, parse_datetime};

/// Longest range the endpoint accepts.
const MAX_RANGE_DAYS: i64 = 30;

/// Shortest range the endpoint accepts.
const MIN_RANGE: Duration = Duration::minutes(1);

/// Ids per query asking which deleted records are live again (about 8 KB of URL).
const LIVE_CHECK_IDS: usize = 300;

/// Rows changed since a deletion that one query of a live check lists (one page of a REST
/// query of Ids) before the check asks its Ids [`LIVE_CHECK_IDS`] at a time instead.
const CHANGED_PAGE: usize = 2000;

/// Where the org's delete log starts, learned from the first answer (or probe) of a run.
#[derive(Debug, Clone, Copy, Default)]
pub(super) enum DeleteLog {
    /// Not asked yet.
    #[default]
    Unknown,
    /// The log covers deletions from this instant on.
    From(DateTime<Utc>),
}

impl ObjectReader<'_> {
    /// Delivers the rows of the object deleted in `window`; returns how many, and the instant
    /// the answer covers deletions up to (`latestDateCovered`: Salesforce counts whole
    /// minutes, so deletions of the current minute only show in a later call; the checkpoint
    /// must not claim them). Ranges the log does not cover are remembered as a gap for
    /// [`ObjectReader::reconcile_deletes`].
    pub(super) async fn deleted_rows(
        &mut self,
        window: Window,
        writer: &mut dyn StreamWriter,
    ) -> Result<(u64, Option<DateTime<Utc>>), FetchError> {
        let upper = window.upper;
        let horizon = upper - Duration::days(MAX_RANGE_DAYS) + MIN_RANGE;
        let mut start = window.lower.map_or(horizon, |l| l.max(horizon));
        if let DeleteLog::From(from) = self.delete_log {
            start = start.max(from);
        }
        if window.lower.is_some_and(|l| l < start) {
            self.note_gap(window.lower.unwrap_or(start), start);
        }
        if upper - start < MIN_RANGE {
            // Too short for the endpoint: ask for the minute before `upper` (rows read twice
            // are deduplicated by consumers); nothing to ask if the log does not reach it.
            start = upper - MIN_RANGE;
            if matches!(self.delete_log, DeleteLog::From(from) if from > start) {
                return Ok((0, None));
            }
        }
        let answer = match self.deleted_in(start, upper).await {
            Err(FetchError::Salesforce(e)) if is_replication_date(&e) => {
                // The log starts later than asked: learn where, and ask from there.
                let from = self.probe_delete_log(upper).await?;
                self.delete_log = DeleteLog::From(from);
                if window.lower.is_none_or(|l| l < from) {
                    self.note_gap(window.lower.unwrap_or(start), from);
                }
                if upper - from < MIN_RANGE {
                    return Ok((0, None));
                }
                self.deleted_in(from, upper).await?
            }
            other => other?,
        };
        let covered = answer
            .latest_date_covered
            .as_deref()
            .and_then(parse_datetime);
        let (ids, at): (Vec<String>, Vec<i64>) = answer
            .deleted_records
            .into_iter()
            .filter_map(|r| Some((r.id, parse_datetime(&r.deleted_date)?.timestamp_micros())))
            .unzip();
        let (ids, at) = self.without_live(ids, at).await?;
        Ok((self.deliver_deletions(writer, ids, at).await?, covered))
    }

    /// The delete log's `ids` (deleted at `at`) less those the org holds live now: an undelete
    /// keeps the log's entry. A record deleted and undeleted in one transaction (or second:
    /// Salesforce's stamps are whole seconds) has the deletion's instant as its
    /// `SystemModstamp`, so the log's row would tie with the live row on the cursor and, written
    /// after it, win: the live record would leave the export. An undelete moves the record's
    /// `SystemModstamp` (not its `LastModifiedDate`), so for an object with that cursor
    /// [`ObjectReader::live_since`] asks from a second before the earliest deletion; for
    /// others it asks the Ids alone. An object Salesforce refuses that query for keeps the
    /// log's rows.
    async fn without_live(
        &self,
        ids: Vec<String>,
        at: Vec<i64>,
    ) -> Result<(Vec<String>, Vec<i64>), FetchError> {
        let earliest = at
            .iter()
            .min()
            .and_then(|&us| DateTime::from_timestamp_micros(us));
        let since = earliest
            .filter(|_| self.object.cursor == Some("SystemModstamp"))
            .map(|t| t - Duration::seconds(1));
        let Some(live) = self.live_since(&self.object.object, &ids, since).await? else {
            return Ok((ids, at));
        };
        Ok(ids
            .into_iter()
            .zip(at)
            .filter(|(id, _)| !live.contains(id))
            .unzip())
    }

    /// Those of `ids` that are live rows of `object`, with a `SystemModstamp` at or after
    /// `since` when given (deleted before it, so undeleted since); None when Salesforce
    /// refuses the query for the object.
    ///
    /// With `since` and more Ids than one query takes, the rows changed since are listed
    /// first, one page of them at most, and matched here: between two runs they are usually
    /// far fewer than the deletions (34 queries for 10,000 deleted Ids become one). When a
    /// page does not hold them all, or with few Ids, one query per [`LIVE_CHECK_IDS`] Ids.
    pub(super) async fn live_since(
        &self,
        object: &str,
        ids: &[String],
        since: Option<DateTime<Utc>>,
    ) -> Result<Option<HashSet<String>>, FetchError> {
        let Some(since) = since else {
            return self.live_among(object, ids, "").await;
        };
        let since = soql::datetime_literal(since);
        if ids.len() > LIVE_CHECK_IDS {
            let soql = format!(
                "SELECT Id FROM {object} WHERE SystemModstamp >= {since} LIMIT {CHANGED_PAGE}"
            );
            if let Some(changed) = self.live_ids(&soql).await?
                && changed.len() < CHANGED_PAGE
            {
                let asked: HashSet<&str> = ids.iter().map(String::as_str).collect();
                return Ok(Some(
                    changed
                        .into_iter()
                        .filter(|id| asked.contains(id.as_str()))
                        .collect(),
                ));
            }
        }
        let filter = format!("SystemModstamp >= {since} AND ");
        self.live_among(object, ids, &filter).await
    }

    /// Those of `ids` that are live rows of `object` matching `filter` (a condition and
    /// ` AND `, or nothing): one query per [`LIVE_CHECK_IDS`] Ids; None when refused.
    async fn live_among(
        &self,
        object: &str,
        ids: &[String],
        filter: &str,
    ) -> Result<Option<HashSet<String>>, FetchError> {
        let mut live = HashSet::new();
        for chunk in ids.chunks(LIVE_CHECK_IDS) {
            let soql = format!(
                "SELECT Id FROM {object} WHERE {filter}Id IN ({})",
                soql::id_list(chunk)
            );
            let Some(found) = self.live_ids(&soql).await? else {
                return Ok(None);
            };
            live.extend(found);
        }
        Ok(Some(live))
    }

    /// The Ids a REST query of live rows (`query`, not `queryAll`) answers; None when
    /// Salesforce refuses the query for this object (logged at DEBUG), for the caller to keep
    /// what it had.
    pub(super) async fn live_ids(&self, soql: &str) -> Result<Option<Vec<String>>, FetchError> {
        let client = &self.ctx.client;
        let rows = match crate::salesforce::query::query_all_rows(client, soql, false).await {
            Ok(rows) => rows,
            Err(e @ SalesforceError::Api { .. }) => {
                tracing::debug!("{}: {soql}: {e}", self.plan.name);
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        let ids = rows
            .iter()
            .filter_map(|r| r.get("Id").and_then(serde_json::Value::as_str));
        Ok(Some(ids.map(str::to_string).collect()))
    }

    /// The deleted records of `[start, end]`, split in halves while Salesforce answers
    /// `EXCEEDED_ID_LIMIT` (more than 600,000 ids); remembers where the log starts.
    async fn deleted_in(
        &mut self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<DeletedRecords, FetchError> {
        let mut pending = vec![(start, end)];
        let mut all = DeletedRecords {
            deleted_records: Vec::new(),
            earliest_date_available: None,
            latest_date_covered: None,
        };
        while let Some((a, b)) = pending.pop() {
            match replication::deleted(&self.ctx.client, &self.object.object, a, b).await {
                Ok(part) => {
                    if let Some(from) = part
                        .earliest_date_available
                        .as_deref()
                        .and_then(parse_datetime)
                    {
                        self.delete_log = DeleteLog::From(from);
                    }
                    all.latest_date_covered =
                        match (all.latest_date_covered.take(), part.latest_date_covered) {
                            (Some(a), Some(b)) => {
                                Some(if parse_datetime(&a) <= parse_datetime(&b) {
                                    a
                                } else {
                                    b
                                })
                            }
                            (a, b) => a.or(b),
                        };
                    all.deleted_records.extend(part.deleted_records);
                }
                Err(SalesforceError::Api { code, .. })
                    if code == "EXCEEDED_ID_LIMIT" && b - a >= MIN_RANGE * 2 =>
                {
                    let mid = a + (b - a) / 2;
                    pending.push((mid, b));
                    pending.push((a, mid));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(all)
    }

    /// Asks for the last minute before `upper` to learn `earliestDateAvailable`.
    async fn probe_delete_log(&self, upper: DateTime<Utc>) -> Result<DateTime<Utc>, FetchError> {
        let answer = replication::deleted(
            &self.ctx.client,
            &self.object.object,
            upper - MIN_RANGE,
            upper,
        )
        .await;
        let from = match answer {
            Ok(a) => a
                .earliest_date_available
                .as_deref()
                .and_then(parse_datetime),
            // Not even the last minute is covered (replication enabled just now).
            Err(e) if is_replication_date(&e) => Some(upper),
            Err(e) => return Err(e.into()),
        };
        Ok(from.unwrap_or(upper))
    }

    /// Remembers that hard deletes in `[from, to)` cannot be seen in the delete log.
    fn note_gap(&mut self, from: DateTime<Utc>, to: DateTime<Utc>) {
        // A backfill of new fields reads from the start again, but the runs before it
        // reported the deletions up to their cursor (or its `deletions_to`).
        let from = self.object.backfill.as_ref().map_or(from, |b| {
            let reported = self
                .object
                .deletions_to
                .map_or(b.cursor, |d| d.min(b.cursor));
            from.max(reported)
        });
        if from >= to || !self.plan.has_state {
            // A first sync exported nothing before its start: no deletion there matters.
            return;
        }
        self.delete_gap = Some(match self.delete_gap {
            Some((a, b)) => (a.min(from), b.max(to)),
            None => (from, to),
        });
    }

    /// Delivers deletion rows for `ids`, deleted at `at` (µs); returns how many.
    pub(super) async fn deliver_deletions(
        &mut self,
        writer: &mut dyn StreamWriter,
        ids: Vec<String>,
        at: Vec<i64>,
    ) -> Result<u64, FetchError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let n = ids.len();
        let batch = self.deletion_batch(ids, at)?;
        self.deliver(writer, batch, Utc::now()).await?;
        Ok(n as u64)
    }

    /// Rows of the object's (unmapped) schema for deleted `ids`, deleted at `at` (µs).
    fn deletion_batch(&self, ids: Vec<String>, at: Vec<i64>) -> Result<RecordBatch, FetchError> {
        let n = ids.len();
        let when: ArrayRef = Arc::new(TimestampMicrosecondArray::from(at).with_timezone("UTC"));
        let ids: ArrayRef = Arc::new(StringArray::from(ids));
        let cursor = self.object.cursor;
        let schema = self.object.deleted_schema.clone();
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|f| -> ArrayRef {
                match f.name().as_str() {
                    "Id" => ids.clone(),
                    "IsDeleted" => Arc::new(BooleanArray::from(vec![true; n])),
                    DELETED_AT => when.clone(),
                    name if Some(name) == cursor => when.clone(),
                    _ => arrow::array::new_null_array(f.data_type(), n),
                }
            })
            .collect();
        Ok(
            RecordBatch::try_new(schema, columns)
                .map_err(|e| OutputError::Render(e.to_string()))?,
        )
    }

    /// After the windows: when the delete log had a gap (or `reconcile_deletes` is
    /// `always`), finds the rows the export holds that the org no longer has and delivers them
    /// as deletions at `at`. Needs the export: Parquet or Delta output of an unmapped stream; otherwise
    /// a WARN says which deletions may be missing and what to do. Returns the rows delivered.
    pub(super) async fn reconcile_deletes(
        &mut self,
        writer: &mut dyn StreamWriter,
        at: DateTime<Utc>,
    ) -> Result<u64, FetchError> {
        let forced = self.ctx.config.reconcile_deletes == crate::config::Reconcile::Always;
        let gap = self.delete_gap;
        if self.ctx.config.reconcile_deletes == crate::config::Reconcile::Off
            || !(forced || gap.is_some())
            || !self.plan.incremental
        {
            return Ok(0);
        }
        let name = self.plan.name.clone();
        let why = match gap {
            Some((a, b)) => format!(
                "the org's delete log does not cover {} to {}",
                datetime_literal(a),
                datetime_literal(b)
            ),
            None => "reconcile_deletes is \"always\"".to_string(),
        };
        let Some(location) = self.ctx.destination.export_location() else {
            let text = format!(
                "{name}: {why}, so records hard-deleted in that span are not reported; with Parquet or Delta output sfetl finds them by comparing Ids, or run a full refresh"
            );
            self.ctx.log(LogLevel::Warn, text).await;
            return Ok(0);
        };
        if self.plan.mapped {
            let text = format!(
                "{name}: {why}; mapped streams are not reconciled, so records hard-deleted in that span may still show: run a full refresh of the stream"
            );
            self.ctx.log(LogLevel::Warn, text).await;
            return Ok(0);
        }
        let held = export_ids(&location.display, &name, "Id", None).await?;
        let live = self.org_ids(None).await?;
        let gone = held.minus(&live);
        let text = format!(
            "{name}: {why}; compared the {} Ids of the export with the {} the org holds: {} hard-deleted",
            held.len(),
            live.len(),
            gone.len()
        );
        self.ctx.log(LogLevel::Info, text).await;
        let n = gone.len();
        self.deliver_deletions(writer, gone, vec![at.timestamp_micros(); n])
            .await
    }

    /// Every Id the org still has for the object (that `filter` selects, when given), the
    /// recycle bin included (queryAll: rows there are reported by the windows' own queries),
    /// through the API the object is read with: a Bulk job, or REST pages for objects Bulk
    /// does not serve.
    pub(super) async fn org_ids(&self, filter: Option<&str>) -> Result<IdSet, FetchError> {
        let mut soql = format!("SELECT Id FROM {}", self.object.object);
        if let Some(filter) = filter {
            soql = format!(
                "{soql} WHERE {}",
                crate::mapping::filter::parenthesized(filter)
            );
        }
        if self.api == crate::decode::Api::Bulk {
            return self.bulk_ids(&soql).await;
        }
        let rows = crate::salesforce::query::query_all_rows(&self.ctx.client, &soql, true).await?;
        Ok(rows
            .iter()
            .filter_map(|r| r.get("Id").and_then(serde_json::Value::as_str))
            .map(str::to_string)
            .collect())
    }
}

/// The values of `column` (the Ids) of `stream`'s current rows in the Parquet or Delta export
/// at `path` (its latest view: deleted rows and superseded syncs left out), those starting
/// with `prefix` when given (an object's key prefix, in a stream of several objects), packed
/// as they stream out of the query. The query's sorts spill to the system's temporary folder
/// past [`crate::query::STREAM_MEMORY`]; when that fails (a part of the plan that cannot
/// spill needs more, such as the join of a formula side table, or the folder cannot be
/// written, as in a container with a read-only file system), the query runs again in memory,
/// as it did before it had a bound, and only that run's error is reported.
pub(super) async fn export_ids(
    path: &str,
    stream: &str,
    column: &str,
    prefix: Option<&str>,
) -> Result<IdSet, FetchError> {
    let quote = |name: &str| name.replace('"', "\"\"");
    let sql = format!("SELECT \"{}\" FROM \"{}\"", quote(column), quote(stream));
    let bounded = Some(crate::query::STREAM_MEMORY);
    match ids_of(path, stream, &sql, prefix, bounded).await {
        Ok(ids) => Ok(ids),
        Err(e) => {
            tracing::debug!("the Ids of {stream} within a memory bound failed ({e}); in memory");
            ids_of(path, stream, &sql, prefix, None).await
        }
    }
    .map_err(FetchError::Reconcile)
}

/// The Ids of the one-column query `sql` over `stream`'s tables, those starting with `prefix`
/// when given.
async fn ids_of(
    path: &str,
    stream: &str,
    sql: &str,
    prefix: Option<&str>,
    memory: Option<usize>,
) -> Result<IdSet, String> {
    let failed = |e: &dyn std::fmt::Display| e.to_string();
    let mut batches = crate::query::sql_stream(path, stream, sql, memory)
        .await
        .map_err(|e| failed(&e))?;
    let mut ids = IdCollector::default();
    while let Some(b) = batches.next().await {
        let b = b.map_err(|e| failed(&e))?;
        // DataFusion reads Parquet text as string views: cast to plain strings.
        let col = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8)
            .map_err(|e| failed(&e))?;
        col.as_string::<i32>()
            .iter()
            .flatten()
            .filter(|id| prefix.is_none_or(|p| id.starts_with(p)))
            .for_each(|id| ids.push(id));
    }
    Ok(ids.finish())
}

/// `INVALID_REPLICATION_DATE`: the range is not one the endpoint serves.
fn is_replication_date(e: &SalesforceError) -> bool {
    matches!(e, SalesforceError::Api { code, .. } if code == "INVALID_REPLICATION_DATE")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{BooleanArray, RecordBatch, StringArray, TimestampMicrosecondArray};

    use super::{export_ids, ids_of};

    /// An export of one stream, one sync: 3,000 Accounts in two versions each, the later one
    /// of every third deleted.
    fn export() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir
            .path()
            .join("Account")
            .join("20261203T000000.000Z-000001");
        std::fs::create_dir_all(&folder).unwrap();
        let id = |i: usize| format!("001{i:012}AAA");
        let rows = 6000;
        let batch = RecordBatch::try_from_iter(vec![
            (
                "Id",
                Arc::new(StringArray::from_iter_values(
                    (0..rows).map(|r| id(r % 3000)),
                )) as _,
            ),
            (
                "SystemModstamp",
                Arc::new(TimestampMicrosecondArray::from_iter_values(
                    (0..rows).map(|r| r as i64),
                )) as _,
            ),
            (
                "IsDeleted",
                Arc::new(BooleanArray::from_iter(
                    (0..rows).map(|r| Some(r >= 3000 && r % 3 == 0)),
                )) as _,
            ),
        ])
        .unwrap();
        let file = std::fs::File::create(folder.join("part-00000.parquet")).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        dir
    }

    #[tokio::test]
    async fn a_reconciliation_whose_memory_bound_fails_runs_again_without_it() {
        let dir = export();
        let path = dir.path().to_str().unwrap();
        let sql = "SELECT \"Id\" FROM \"Account\"";
        // A bound no plan fits in fails...
        let tight = ids_of(path, "Account", sql, None, Some(1)).await;
        assert!(
            tight
                .as_ref()
                .is_err_and(|e| e.contains("Resources exhausted")),
            "{:?}",
            tight.map(|s| s.len())
        );
        // ...and the reconciliation then reads the Ids in memory.
        let ids = export_ids(path, "Account", "Id", None).await.ok().unwrap();
        assert_eq!(
            ids.len(),
            2000,
            "the 1,000 deleted in their latest version left out"
        );
        assert!(ids.contains("001000000000001AAA") && !ids.contains("001000000000000AAA"));
        let prefixed = export_ids(path, "Account", "Id", Some("0010000000001"))
            .await
            .ok()
            .unwrap();
        assert_eq!(
            prefixed.len(),
            67,
            "Ids 100 to 199 that are not a multiple of 3"
        );
    }
}
