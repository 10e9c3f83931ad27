//! Formula refresh: formula fields whose value changes while their row does not (time-based,
//! such as `TODAY() - DATEVALUE(CreatedDate)`, and cross-object, such as
//! `TEXT(Account.Industry)`) are read again on the `formula_refresh` schedule (`P1D` by
//! default; the STATE records when each object's last refresh ran).
//!
//! How the new values are kept depends on the output:
//! - Parquet, a stream of the object itself: one narrow Bulk job, `Id` plus those fields (and
//!   the cursor) of every row, written as a complete sync of the side table
//!   `<stream>__formulas`. `sfetl query`'s latest view of `<stream>` takes each formula value
//!   from the side table's newest row for that `Id` when it was extracted after the row itself
//!   (see `query::formulas`).
//! - Delta, a stream of the object itself: the same narrow read, merged into the stream's
//!   table in one commit that sets the new values on the rows whose values differ (see
//!   `output::delta::formulas`): the table itself is current, for any engine.
//! - A mapped stream (any output): its columns are expressions over the source's fields, so the
//!   source's mapped fields (already a narrow list) are read again for every row and written as
//!   ordinary rows; the latest view keeps them (same cursor, later extraction). A `soql_where`
//!   on relative dates or on formulas that change unseen makes the same read: every row it
//!   selects today, so rows entering it come, and (Parquet or Delta) those that left it go.
//! - RECORD lines or Arrow IPC, a stream of the object itself: a RECORD must hold the whole row,
//!   so nothing is read on the schedule; a LOG message says which fields are refreshed only
//!   when their rows are read again.

use chrono::{DateTime, Utc};

use super::FetchError;
use super::fetch::ObjectReader;
use super::freshness::Freshness;
use super::plan::{ObjectPlan, StreamPlan};
use crate::catalog::StreamSchema;
use crate::decode::{Api, WirePlan};
use crate::output::{Destination, FORMULAS_SUFFIX, StreamWriter, SyncStart};
use crate::protocol::LogLevel;
use crate::state::{Sources, StreamState};

impl ObjectReader<'_> {
    /// Reads the object's formula fields again when a refresh is due, and records when. A
    /// first read records its start: every value it read was current then.
    pub(super) async fn refresh_formulas(
        &mut self,
        fresh: &Freshness,
        writer: &mut dyn StreamWriter,
        read_started: DateTime<Utc>,
    ) -> Result<u64, FetchError> {
        let Some(every) = self.ctx.config.formula_refresh.clone() else {
            return Ok(0);
        };
        if !fresh.refreshes() {
            return Ok(0);
        }
        let object = self.object.object.clone();
        let times = &mut self.carry.fresh.formulas_refreshed_at.0;
        let last = times.get(&object).copied();
        if last.is_none() && self.object.saved_at.is_none() {
            times.insert(object, read_started);
            return Ok(0);
        }
        let started = Utc::now();
        if last.is_some_and(|t| every.add_to(t) > started) {
            return Ok(0);
        }
        let rows = match (&fresh.formula_schema, &self.ctx.destination) {
            (None, _) => {
                let derived = self.derived(self.object.soql_where.clone());
                self.read_derived(&derived, writer).await?
            }
            (Some(schema), Destination::Parquet { .. }) => {
                let name = format!("{}{FORMULAS_SUFFIX}", self.plan.name);
                let start = SyncStart {
                    base: true,
                    resumed_from: None,
                    incremental: false,
                    cursor: None,
                    slice: None,
                };
                let ctx = self.ctx;
                let mut side = ctx
                    .destination
                    .open(&name, &schema.arrow, &ctx.out, start)?;
                self.refresh_into(schema, name, side.as_mut()).await?
            }
            (Some(schema), Destination::Delta(delta)) => {
                let mut table =
                    delta.open_formulas(&self.plan.name, &schema.arrow, self.object.cursor)?;
                let name = self.plan.name.clone();
                self.refresh_into(schema, name, &mut table).await?
            }
            (Some(_), _) => {
                self.not_refreshed(fresh).await;
                return Ok(0);
            }
        };
        let since = last.map_or("never".into(), crate::state::datetime_literal);
        let text = format!(
            "{}: {} read again for {rows} rows (formula_refresh {}, last refresh {since})",
            self.who(),
            refreshed(fresh),
            every.as_str(),
        );
        self.ctx.log(LogLevel::Info, text).await;
        // Rows leave such a filter as unseen as they enter it.
        let mut rows = rows;
        if !fresh.filter_moves.is_empty() {
            rows += self.rows_left_as_days_pass(writer).await?;
        }
        self.carry
            .fresh
            .formulas_refreshed_at
            .0
            .insert(object, started);
        Ok(rows)
    }

    /// One narrow read of `schema` (Id, cursor, formula fields) of every row into `out`: a
    /// complete sync of `<stream>__formulas` (Parquet), or the stream's table, merged in place
    /// (Delta).
    async fn refresh_into(
        &mut self,
        schema: &StreamSchema,
        name: String,
        out: &mut dyn StreamWriter,
    ) -> Result<u64, FetchError> {
        let ctx = self.ctx;
        let out_schema = schema.arrow.clone();
        let plan = StreamPlan {
            name,
            incremental: false,
            mapped: false,
            out_schema: out_schema.clone(),
            objects: Vec::new(),
            saved: StreamState::default(),
            has_state: false,
            notes: Vec::new(),
        };
        // Bulk unless the object is read through REST by rule (formula fields are never base64).
        let api = match self.object.restriction {
            Some(_) => Api::Rest,
            None => Api::Bulk,
        };
        let object = ObjectPlan {
            object: self.object.object.clone(),
            bulk: WirePlan::new(schema, Api::Bulk),
            rest: WirePlan::new(schema, Api::Rest),
            api,
            cursor: None,
            soql_where: None,
            mapping: None,
            replicateable: false,
            deleted_schema: out_schema,
            saved_at: None,
            deletions_to: None,
            backfill: None,
            fields_read: Vec::new(),
            filter_reads: Vec::new(),
            key_prefix: None,
            restriction: self.object.restriction,
        };
        let mut reader = ObjectReader::new(ctx, &plan, &object, Sources::default());
        let rows = reader.read_window(None, out).await;
        reader.into_sources();
        let rows = rows?;
        out.commit().await?;
        out.finish().await?;
        Ok(rows)
    }

    /// Says, with records or Arrow output, what is and is not refreshed.
    async fn not_refreshed(&self, fresh: &Freshness) {
        let parents: Vec<&str> = fresh
            .parents
            .iter()
            .map(|p| p.relationship.as_str())
            .collect();
        let parents = if parents.is_empty() {
            String::new()
        } else {
            format!(
                " Cross-object ones also come again when their parent changes ({}).",
                parents.join(", ")
            )
        };
        let text = format!(
            "{}: formula fields {} change without their rows changing; with {} output they are not read again on the formula_refresh schedule (a RECORD holds a whole row, so a refresh would mean reading every row again), only when their row is read again.{parents} Write Parquet or Delta to have them refreshed, or run a full refresh.",
            self.plan.name,
            fresh.formulas.join(", "),
            match self.ctx.destination {
                Destination::Arrow => "Arrow IPC",
                Destination::Delta(_) => "Delta",
                _ => "records",
            }
        );
        self.ctx.log(LogLevel::Info, text).await;
    }
}

/// What a refresh reads again, as its log line names it: formula fields, and the rows a
/// filter on relative dates, or on formulas that change unseen, selects today.
fn refreshed(fresh: &Freshness) -> String {
    let mut what = Vec::new();
    if !fresh.formulas.is_empty() {
        what.push(format!("formula fields {}", fresh.formulas.join(", ")));
    }
    if !fresh.filter_moves.is_empty() {
        what.push(format!(
            "the rows the soql_where selects today ({})",
            fresh.filter_moves.join(", ")
        ));
    }
    what.join(" and ")
}
