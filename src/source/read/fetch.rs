//! Fetching one object of a stream: its windows in order, each through Bulk API 2.0 (falling
//! back to REST when Bulk refuses) plus the `deleted` endpoint, with a checkpoint after each.

use std::sync::atomic::Ordering;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{SchemaRef, TimestampMicrosecondType};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::plan::{self, ObjectPlan, StreamPlan, Windows};
use super::{Ctx, FetchError};
use crate::decode::{Api, WirePlan};
use crate::output::{OutputError, StreamWriter};
use crate::protocol::{AirbyteMessage, LogLevel};
use crate::salesforce::query;
use crate::source::progress::StreamProgress;
use crate::source::restrictions::Handling;
use crate::source::soql::{self, Window};
use crate::state::{Sources, parse_datetime};

/// The API usage (percent of the daily quota) past which REST does not take over from Bulk
/// after the daily Bulk cap, when `max_api_usage_percent` is not set: the rest of the quota is
/// left to the org's other integrations.
const REST_USAGE_CEILING: f64 = 90.0;

/// Reads one object of a stream and delivers its batches to the stream's writer.
pub(super) struct ObjectReader<'a> {
    pub(super) ctx: &'a Ctx,
    pub(super) plan: &'a StreamPlan<'a>,
    pub(super) object: &'a ObjectPlan<'a>,
    /// The API in use (Bulk until Bulk refuses the object).
    pub(super) api: Api,
    /// Rows Bulk said its jobs produced.
    pub(super) estimated: u64,
    pub(super) progress: StreamProgress,
    /// Mapped streams: every source's cursor, this one's updated at each checkpoint.
    pub(super) sources: Sources,
    /// Greatest cursor delivered since the last checkpoint (µs).
    pub(super) max_cursor_us: Option<i64>,
    /// Rows delivered since the last STATE.
    pub(super) pending: u64,
    /// Longest REST query URL, lowered for the rest of the stream after a 414/431.
    pub(super) rest_url_budget: usize,
    /// Whether the split of a wide REST field list was already logged.
    pub(super) rest_split_logged: bool,
    /// Where the org's delete log starts, once known.
    pub(super) delete_log: super::deleted::DeleteLog,
    /// A span of windows the delete log did not cover (hard deletes there need
    /// reconciliation).
    pub(super) delete_gap: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// Where the deletions the cursor cannot see (the `deleted` endpoint's, rows that left a
    /// mapping's filter) are delivered up to: by the runs before (the saved cursor, or its
    /// `deletions_to`), then by each window's end. A checkpoint inside a window saves it
    /// when it is behind the cursor; a window's end asks for deletions from it when it is
    /// behind the window (see [`ObjectReader::window_end`]). `None`: nothing to report before
    /// the first window (a first read).
    pub(super) deletions_done: Option<DateTime<Utc>>,
    /// Read through REST one page per query, in Id ranges (the object has no `queryMore`).
    pub(super) id_ranges: bool,
    /// Rows delivered for this object in this run.
    pub(super) delivered: u64,
    /// Skipped by rule (Salesforce answers its queries only with a filter).
    pub(super) skipped: bool,
    /// Mapped streams: the first key column found without a value in a live row, and how
    /// many such rows were delivered (see [`ObjectReader::count_keyless`]).
    pub(super) keyless: Option<(String, u64)>,
    /// What keeps this object's values fresh beyond its own cursor (see [`super::parents`]).
    pub(super) freshness: Option<&'a super::freshness::Freshness>,
    /// The parents' cursors and formula refreshes carried into every STATE.
    pub(super) carry: super::parents::Carry,
    /// A STATE waiting for the output to commit (see [`ObjectReader::checkpoint`]).
    pub(super) deferred: Option<crate::state::StreamState>,
    /// Reading one slice (`read --slice`): exactly this window (`None`: the whole object), with
    /// no STATE of its own until the slice is committed.
    pub(super) slice_window: Option<Option<Window>>,
    /// Reading one window for another reader of the object (`max_concurrent_jobs`): page
    /// checkpoints and estimates go to it (see [`super::concurrent`]).
    pub(super) worker: Option<super::concurrent::Worker>,
    /// Reading a window without ORDER BY (Salesforce gave up sorting it): its checkpoint comes
    /// at its end only.
    pub(super) unsorted: bool,
}

impl<'a> ObjectReader<'a> {
    /// A reader of `object`, continuing the per-source cursors `sources`.
    pub(super) fn new(
        ctx: &'a Ctx,
        plan: &'a StreamPlan<'a>,
        object: &'a ObjectPlan<'a>,
        sources: Sources,
    ) -> ObjectReader<'a> {
        Self::with_progress(ctx, plan, object, sources, ctx.progress.stream(&plan.name))
    }

    /// A reader of `object` adding to the progress bar `progress`.
    pub(super) fn with_progress(
        ctx: &'a Ctx,
        plan: &'a StreamPlan<'a>,
        object: &'a ObjectPlan<'a>,
        sources: Sources,
        progress: StreamProgress,
    ) -> ObjectReader<'a> {
        ObjectReader {
            ctx,
            plan,
            object,
            api: object.api,
            estimated: 0,
            progress,
            sources,
            max_cursor_us: None,
            pending: 0,
            rest_url_budget: ctx.opts.rest_max_url,
            rest_split_logged: false,
            delete_log: super::deleted::DeleteLog::default(),
            delete_gap: None,
            deletions_done: object
                .deletions_to
                .or(object.saved_at)
                .or(object.backfill.as_ref().map(|b| b.cursor)),
            id_ranges: object
                .restriction
                .is_some_and(|r| r.handling == Handling::IdRanges),
            delivered: 0,
            skipped: false,
            keyless: None,
            freshness: None,
            carry: super::parents::Carry::default(),
            deferred: None,
            slice_window: None,
            worker: None,
            unsorted: false,
        }
    }

    /// The per-source cursors after this object, for the next one.
    pub(super) fn into_sources(self) -> Sources {
        self.progress.finish();
        self.sources
    }

    /// Incremental reads order rows by cursor and checkpoint after every page, except in a
    /// window read unsorted (see [`ObjectReader::read_window`]).
    pub(super) fn checkpoints(&self) -> bool {
        self.plan.incremental && !self.unsorted
    }

    /// The closing line of an object.
    pub(super) fn summary(&self, total: u64, started: DateTime<Utc>) -> String {
        let secs = (Utc::now() - started).num_milliseconds().unsigned_abs() as f64 / 1e3;
        let how = if self.skipped {
            "skipped".to_string()
        } else if self.api == Api::Bulk {
            format!(
                "{:.1} MB of CSV through Bulk API 2.0",
                self.progress.bytes() as f64 / 1e6
            )
        } else {
            "through the REST API".to_string()
        };
        let prefix = if self.plan.mapped {
            format!("{} ", self.object.object)
        } else {
            String::new()
        };
        format!("{prefix}{total} rows in {secs:.2} s, {how}")
    }

    /// Reads the object, or skips it with one WARN when Salesforce answers its queries only
    /// with a filter (known by name, or from its refusal before any row was read).
    pub(super) async fn read_all(
        &mut self,
        writer: &mut dyn StreamWriter,
    ) -> Result<u64, FetchError> {
        let object = &self.object.object;
        if let Some(rule) = self.object.restriction
            && rule.handling == Handling::Skip
        {
            let text = format!("{object}: skipped: {}", rule.reason);
            self.ctx.log(LogLevel::Warn, text).await;
            self.skipped = true;
            return Ok(0);
        }
        let read = match self.read_windows(writer).await {
            Ok(n) => self.flush_checkpoint(writer).await.map(|()| n),
            Err(e) => {
                // What was delivered before the failure keeps its STATE (best effort: the
                // output itself may be what failed).
                let _ = self.flush_checkpoint(writer).await;
                Err(e)
            }
        };
        match read {
            Err(e) if self.delivered == 0 => match e.restriction() {
                Some(rule) if rule.handling == Handling::Skip => {
                    let text = format!(
                        "{object}: skipped: {} (Salesforce answered: {e})",
                        rule.reason
                    );
                    self.ctx.log(LogLevel::Warn, text).await;
                    self.skipped = true;
                    Ok(0)
                }
                _ => Err(e),
            },
            other => other,
        }
    }

    /// Reads the object's windows, with a STATE after each (and after each Bulk page of an
    /// incremental read).
    async fn read_windows(&mut self, writer: &mut dyn StreamWriter) -> Result<u64, FetchError> {
        let ctx = self.ctx;
        let config = &ctx.config;
        let saved_at = self.object.saved_at;
        // The org's time, not this machine's: the bound becomes the saved cursor, which the
        // org's timestamps are compared with (see `salesforce::clock`).
        let now = ctx.client.org_now();
        if let Some(text) = ctx.client.org_clock().warning_once() {
            ctx.log(LogLevel::Warn, text).await;
        }
        let mut bounds = plan::bounds(config, saved_at, now);
        if let Some(Some(w)) = self.slice_window {
            bounds.upper = w.upper;
        }
        self.start_parents(bounds.upper);
        let windows = match self.slice_window {
            Some(w) => w.map(|w| vec![w]),
            None => {
                if let Some(text) =
                    plan::future_cursor(&self.object.object, saved_at, config, bounds, now)
                {
                    ctx.log(LogLevel::Warn, text.clone()).await;
                    ctx.emit(AirbyteMessage::analytics("sfetl.future_cursor", text))
                        .await?;
                }
                let query = plan::query_bounds(config, self.plan.incremental, bounds, now);
                self.plan_windows(query).await?
            }
        };
        let Some(mut windows) = windows else {
            ctx.check_stop()?;
            let total = self.read_window(None, writer).await?;
            self.checkpoint_whole(writer, total).await?;
            return Ok(total);
        };
        plan::open_full_refresh_end(config, self.plan.incremental, &mut windows, now);
        let mut total = 0u64;
        if self.slice_window.is_none() {
            total += self
                .rows_left_before_windows(bounds, &windows, writer)
                .await?;
            // Lookups a parent's deletion cleared need the export's history: not per slice.
            // Before the windows, so the rows read again are committed with the first
            // checkpoint that moves the cursor past the deletion.
            total += self.lookups_cleared(writer, bounds.upper).await?;
        }
        let limit = config.max_concurrent_jobs.min(windows.len());
        if limit > 1 && self.api == Api::Bulk && self.slice_window.is_none() && !self.id_ranges {
            total += self.read_concurrently(&windows, limit, writer).await?;
        } else {
            for w in &windows {
                ctx.check_stop()?;
                self.check_quota().await?;
                total += self.read_window(Some(*w), writer).await?;
                let (n, at) = self.window_end(*w, writer).await?;
                total += n;
                // A full refresh queries up to now; its cursor stays at the lagged bound.
                self.checkpoint(writer, at.min(bounds.upper)).await?;
            }
        }
        if windows.is_empty() {
            // Nothing to read in [lower, upper): covered up to the upper bound, never beyond
            // it (a saved cursor past it is moved back; rows read twice are deduplicated).
            self.checkpoint(writer, bounds.upper).await?;
        }
        total += self.keep_fresh(writer, now, bounds.upper).await?;
        // Comparing the export's Ids with the org's needs the whole export: not per slice.
        if self.object.replicateable && self.slice_window.is_none() {
            let found = self.reconcile_deletes(writer, bounds.upper).await?;
            if found > 0 {
                total += found;
                // The org's Ids were compared: every hard delete up to now is delivered.
                self.deletions_delivered(bounds.upper);
                self.checkpoint(writer, bounds.upper).await?;
            }
        }
        Ok(total)
    }

    /// The end of a window: the rows the `deleted` endpoint reports in its span (incremental
    /// reads), and the cursor its checkpoint may save. The span starts earlier when the
    /// deletions before the window are not all delivered yet ([`Self::deletions_done`]): a
    /// run that stopped after a page checkpoint saved a cursor past them.
    pub(super) async fn window_end(
        &mut self,
        w: Window,
        writer: &mut dyn StreamWriter,
    ) -> Result<(u64, DateTime<Utc>), FetchError> {
        let mut at = w.upper;
        let mut rows = 0;
        let span = deletions_span(w, self.deletions_done);
        if self.plan.incremental && self.object.replicateable {
            let (n, covered) = self.deleted_rows(span, writer).await?;
            rows = n;
            // Deletions after what the `deleted` answer covers come with the next run.
            if let Some(c) = covered {
                at = at.min(c).max(w.lower.unwrap_or(c));
            }
        }
        if self.plan.incremental {
            rows += self.rows_leaving_filter(span, writer).await?;
        }
        self.deletions_delivered(at);
        Ok((rows, at))
    }

    /// The deletions before `at` are delivered.
    pub(super) fn deletions_delivered(&mut self, at: DateTime<Utc>) {
        self.deletions_done = Some(self.deletions_done.map_or(at, |d| d.max(at)));
    }

    /// The windows of the read (`None`: one read of everything, without a cursor): sized by
    /// rows from a count query for an incremental read, by the calendar when Salesforce
    /// refuses the count.
    async fn plan_windows(&mut self, b: plan::Bounds) -> Result<Option<Vec<Window>>, FetchError> {
        let step = self.ctx.config.stream_slice_step.as_ref();
        let windows = match plan::windows(self.object.cursor, self.plan.incremental, b) {
            Windows::Whole => return Ok(None),
            Windows::Sized(b) => match self.sized_windows(b).await? {
                Some(w) => return Ok(Some(w)),
                None => plan::calendar_windows(self.object.saved_at, b, step),
            },
            other => other,
        };
        Ok(match windows {
            Windows::Whole => None,
            Windows::Listed(w) => Some(w),
            Windows::FromFirstRow(b) | Windows::Sized(b) => {
                let first = self.first_row(b).await?;
                Some(plan::windows_from_first_row(b, first, step))
            }
        })
    }

    /// Windows of about `bulk_max_records` rows from one count query, or `None` when
    /// Salesforce refuses the count (logged; the caller cuts windows by the calendar).
    async fn sized_windows(&mut self, b: plan::Bounds) -> Result<Option<Vec<Window>>, FetchError> {
        let ctx = self.ctx;
        let object = &self.object.object;
        let cursor = self.object.cursor.expect("sized only with a cursor");
        let counted = super::counts::month_buckets(
            &ctx.client,
            object,
            cursor,
            self.object.soql_where.as_deref(),
            b,
        )
        .await;
        let buckets = match counted {
            Ok(buckets) => buckets,
            Err(e) if super::counts::refused(&e) => {
                let text = format!(
                    "{object}: Salesforce refused to count its rows ({}); reading in windows of stream_slice_step, or in one window when it is not set",
                    e.brief()
                );
                ctx.log(LogLevel::Info, text).await;
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        let step = ctx.config.stream_slice_step.as_ref();
        let b = super::sizing::first_sync_bounds(b, self.object.saved_at);
        let sized = super::sizing::size_windows(b, &buckets, ctx.opts.max_records, step);
        let rows: u64 = sized.iter().map(|w| w.rows).sum();
        let text = format!(
            "{object}: {rows} rows counted; reading them in {} window(s) of about {} rows",
            sized.len(),
            ctx.opts.max_records
        );
        ctx.log(LogLevel::Info, text).await;
        Ok(Some(sized.into_iter().map(|w| w.window).collect()))
    }

    /// Stops the read when the org's API usage (from the `Sforce-Limit-Info` of the last
    /// answer) passed `max_api_usage_percent`; checked before every window and every page, so
    /// a read stops within one page of the threshold.
    pub(super) async fn check_quota(&self) -> Result<(), FetchError> {
        let ctx = self.ctx;
        if let Some(limit) = ctx.config.max_api_usage_percent
            && let Some(usage) = ctx.client.api_usage()
            && usage.percent() >= limit
        {
            ctx.log(LogLevel::Warn, format!("{}: stopping because the org's API usage is {usage} ({:.1}%), past max_api_usage_percent {limit}; the next run resumes from the last STATE", self.plan.name, usage.percent())).await;
            ctx.opts.stop.stop();
            return Err(FetchError::Stopped);
        }
        Ok(())
    }

    /// Reads one window. A sorted Bulk query Salesforce gives up on is read again unsorted:
    /// Salesforce splits an unsorted Bulk query into chunks itself, while sorting one is a
    /// single pass that times out on a big window, and no split of the window helps when its
    /// rows share one timestamp (a mass update stamps millions of rows with one
    /// SystemModstamp). Any other query Salesforce gives up on as too slow or too complex
    /// (`QUERY_TIMEOUT`, `QUERY_TOO_COMPLICATED`), or as matching too many rows for the
    /// sharing check of a user without "View All Data" (`OPERATION_TOO_LARGE`, which sorting
    /// does not cause), is read again as two halves, each split again while it fails, down to
    /// windows of one second; a Bulk job that still fails on one second is read through REST.
    /// A window without a lower bound starts at its first row.
    pub(super) async fn read_window(
        &mut self,
        window: Option<Window>,
        writer: &mut dyn StreamWriter,
    ) -> Result<u64, FetchError> {
        let mut e = match self.read_window_with_api(window, writer).await {
            Err(e) if e.query_too_big().is_some() => e,
            other => return other,
        };
        let sharing = e
            .query_too_big()
            .is_some_and(|why| why.starts_with("OPERATION_TOO_LARGE"));
        if self.api == Api::Bulk && self.checkpoints() && self.object.cursor.is_some() && !sharing {
            let why = e.query_too_big().unwrap_or_default();
            let range = window.map_or_else(|| "the object".to_string(), window_text);
            let text = format!(
                "{}: Salesforce gave up on the sorted query of {range} ({why}); reading it unsorted (Salesforce chunks that itself), with a checkpoint at its end instead of after every page",
                self.plan.name
            );
            self.ctx.log(LogLevel::Info, text).await;
            self.unsorted = true;
            let unsorted = Box::pin(self.read_window_with_api(window, writer)).await;
            self.unsorted = false;
            e = match unsorted {
                Err(e) if e.query_too_big().is_some() => e,
                other => return other,
            };
        }
        let Some(w) = window else { return Err(e) };
        let w = match w.lower {
            Some(_) => w,
            None => match self
                .first_row(plan::Bounds {
                    lower: None,
                    upper: w.upper,
                })
                .await?
            {
                Some(first) => Window {
                    lower: Some(first),
                    upper: w.upper,
                },
                None => return Ok(0),
            },
        };
        let why = e.query_too_big().unwrap_or_default();
        let (name, range) = (&self.plan.name, window_text(w));
        let Some((a, b)) = plan::halves(w, self.ctx.client.org_now()) else {
            if self.api == Api::Rest {
                return Err(e);
            }
            let text = format!(
                "{name}: Salesforce gave up on the Bulk query of {range} ({why}), which is too short to split further; reading it with the REST API"
            );
            self.ctx.log(LogLevel::Warn, text).await;
            return self.rest_window(Some(w), writer).await;
        };
        let at = soql::datetime_literal(a.upper);
        let text = format!(
            "{name}: Salesforce gave up on the query of {range} ({why}); reading it in two halves, split at {at}"
        );
        self.ctx.log(LogLevel::Info, text).await;
        let first = Box::pin(self.read_window(Some(a), writer)).await?;
        Ok(first + Box::pin(self.read_window(Some(b), writer)).await?)
    }

    /// Reads one window with the current API. A Bulk job that ends `Failed` (a server-side
    /// failure) is run once more, and if it fails again this window alone is read through
    /// REST; a Bulk refusal of the object itself switches the rest of the object to REST (see
    /// [`crate::source::restrictions`]).
    async fn read_window_with_api(
        &mut self,
        window: Option<Window>,
        writer: &mut dyn StreamWriter,
    ) -> Result<u64, FetchError> {
        if self.api == Api::Bulk
            && let Some(cap) = self.ctx.bulk_cap()
        {
            self.leave_bulk_for_cap(cap).await?;
        }
        if self.api == Api::Rest {
            return self.rest_window(window, writer).await;
        }
        let name = &self.plan.name;
        let mut retried = false;
        loop {
            let e = match self.bulk_window(window, writer).await {
                Err(e) => e,
                ok => return ok,
            };
            if e.query_too_big().is_some() {
                return Err(e);
            } else if let Some(cap) = e.bulk_cap() {
                self.ctx.set_bulk_cap(cap.clone());
                self.leave_bulk_for_cap(cap).await?;
                return self.rest_window(window, writer).await;
            } else if let Some(rule) = e.restriction() {
                if rule.handling == Handling::Skip {
                    return Err(e);
                }
                self.id_ranges = rule.handling == Handling::IdRanges;
                let text = format!(
                    "{name}: reading with the REST API: {} (Bulk API 2.0 answered: {e})",
                    rule.reason
                );
                self.ctx.log(LogLevel::Info, text).await;
                self.api = Api::Rest;
                return self.rest_window(window, writer).await;
            } else if e.is_failed_job() && !retried {
                retried = true;
                let text = format!("{name}: {e}; running the Bulk job once more");
                self.ctx.log(LogLevel::Warn, text).await;
            } else if e.is_failed_job() {
                let text = format!("{name}: {e}; reading this window with the REST API");
                self.ctx.log(LogLevel::Warn, text).await;
                return self.rest_window(window, writer).await;
            } else {
                return Err(e);
            }
        }
    }

    /// Switches to REST for the rest of the run once the daily Bulk cap is reached, unless the
    /// org's API usage is at `max_api_usage_percent` (or [`REST_USAGE_CEILING`] when unset):
    /// REST then stops the stream with advice instead of using up the org's daily API quota.
    async fn leave_bulk_for_cap(&mut self, message: String) -> Result<(), FetchError> {
        let ctx = self.ctx;
        let configured = ctx.config.max_api_usage_percent;
        let limit = configured.unwrap_or(REST_USAGE_CEILING);
        if let Some(usage) = ctx.client.api_usage()
            && usage.percent() >= limit
        {
            return Err(FetchError::BulkCapReached {
                message,
                usage,
                limit,
                configured: configured.is_some(),
            });
        }
        let first = !ctx.bulk_cap_logged.swap(true, Ordering::SeqCst);
        if first {
            let text = format!(
                "Salesforce's daily cap of Bulk API 2.0 query jobs is reached ({message}); every stream reads through the REST API for the rest of this run"
            );
            ctx.log(LogLevel::Warn, text).await;
        }
        self.api = Api::Rest;
        Ok(())
    }

    /// The SOQL of a window with `plan`'s fields.
    pub(super) fn soql(&self, plan: &WirePlan, window: Option<Window>, order: bool) -> String {
        soql::select(
            &self.object.object,
            &plan.select,
            self.object.cursor,
            window,
            self.object.soql_where.as_deref(),
            order,
        )
    }

    /// The smallest cursor value in the bounds, or `None` when they hold no row.
    async fn first_row(&self, b: plan::Bounds) -> Result<Option<DateTime<Utc>>, FetchError> {
        let cursor = self
            .object
            .cursor
            .expect("only planned for objects with a cursor");
        let mut q = soql::select(
            &self.object.object,
            &[cursor.to_string()],
            Some(cursor),
            Some(Window {
                lower: b.lower,
                upper: b.upper,
            }),
            self.object.soql_where.as_deref(),
            true,
        );
        q.push_str(" LIMIT 1");
        let client = &self.ctx.client;
        let page = query::fetch_page(client, &query::first_page_url(client, &q, true), 200).await?;
        Ok(page
            .records
            .first()
            .and_then(|r| r.get(cursor))
            .and_then(Value::as_str)
            .and_then(parse_datetime))
    }

    /// Hands a batch of the object's fields to the writer: evaluates the mapping, or adds the
    /// `_sfetl_deleted_at` column when the stream has one; tracks progress, rows since the last
    /// STATE and the greatest cursor delivered.
    /// Counts the live rows of a mapped `batch` without a value in a key column (a mapping's
    /// `primary_key: [email]` over Contacts without an email): nothing tells such rows apart,
    /// so the stream's end warns about them.
    pub(super) fn count_keyless(&mut self, batch: &RecordBatch) {
        use crate::output::delta::rows::{Keys, null_key};
        if !self.plan.mapped {
            return;
        }
        let keys = Keys::of(batch.schema_ref(), None);
        if let Ok(Some((column, n))) = null_key(batch, &keys) {
            self.keyless.get_or_insert((column, 0)).1 += n as u64;
        }
    }

    pub(super) async fn deliver(
        &mut self,
        writer: &mut dyn StreamWriter,
        batch: RecordBatch,
        extracted_at: DateTime<Utc>,
    ) -> Result<(), FetchError> {
        // Only incremental reads checkpoint mid-window, on the greatest cursor delivered.
        if self.checkpoints()
            && let Some(c) = self.object.cursor
            && let Ok(i) = batch.schema().index_of(c)
            && let Some(m) =
                arrow::compute::max(batch.column(i).as_primitive::<TimestampMicrosecondType>())
        {
            self.max_cursor_us = Some(self.max_cursor_us.map_or(m, |x| x.max(m)));
        }
        let batch = match self.object.mapping {
            Some(mapping) => mapping.evaluate(&batch)?,
            None => pad_to(&self.plan.out_schema, batch)?,
        };
        self.count_keyless(&batch);
        let n = batch.num_rows() as u64;
        writer.write(&batch, extracted_at).await?;
        self.pending += n;
        self.delivered += n;
        self.progress.add_rows(n);
        Ok(())
    }
}

/// The span whose deletions window `w`'s end asks for: `w`, from `done` on when the
/// deletions are delivered only up to before `w` (a window without a lower bound starts at
/// the beginning already).
pub(super) fn deletions_span(w: Window, done: Option<DateTime<Utc>>) -> Window {
    match (w.lower, done) {
        (Some(lower), Some(done)) if done < lower => Window {
            lower: Some(done),
            upper: w.upper,
        },
        _ => w,
    }
}

/// `[lower, upper)` as SOQL literals.
fn window_text(w: Window) -> String {
    let lower = w
        .lower
        .map_or_else(|| "the start".to_string(), soql::datetime_literal);
    match w.is_open() {
        true => format!("[{lower}, now)"),
        false => format!("[{lower}, {})", soql::datetime_literal(w.upper)),
    }
}

/// A batch with one column fewer than `schema` (the object's fields without
/// `_sfetl_deleted_at`) gets that last column as nulls.
fn pad_to(schema: &SchemaRef, batch: RecordBatch) -> Result<RecordBatch, FetchError> {
    if batch.num_columns() + 1 != schema.fields().len() {
        return Ok(batch);
    }
    let mut columns = batch.columns().to_vec();
    let last = schema.field(columns.len());
    columns.push(arrow::array::new_null_array(
        last.data_type(),
        batch.num_rows(),
    ));
    Ok(RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| OutputError::Render(e.to_string()))?)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn day(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 6, d, 0, 0, 0).unwrap()
    }

    #[test]
    fn a_window_asks_for_the_deletions_not_delivered_before_it() {
        let w = Window {
            lower: Some(day(10)),
            upper: day(20),
        };
        // Delivered up to the window, or past its start (the lookback): the window itself.
        assert_eq!(deletions_span(w, Some(day(10))), w);
        assert_eq!(deletions_span(w, Some(day(12))), w);
        // A first read: nothing before the window.
        assert_eq!(deletions_span(w, None), w);
        // A STATE saved after a page, before its window's deletions: from where they stopped.
        assert_eq!(
            deletions_span(w, Some(day(5))),
            Window {
                lower: Some(day(5)),
                upper: day(20)
            }
        );
        // A window from the beginning covers everything already.
        let whole = Window {
            lower: None,
            upper: day(20),
        };
        assert_eq!(deletions_span(whole, Some(day(5))), whole);
    }
}
