//! Parent freshness: after an object's own windows, the rows whose *parent* changed are read
//! again. A mapped `company: Account.Name`, or a cross-object formula such as
//! `TEXT(Account.Industry)`, changes when the Account does, while the Contact's own
//! `SystemModstamp` stays put; so each followed relationship keeps a cursor of its own (the
//! parent's `SystemModstamp`, saved under `"parents"` in the STATE), and every window of it
//! costs one extra query, Bulk or REST as the object reads:
//! `SELECT <fields> FROM Contact WHERE Account.SystemModstamp >= lower AND
//! Account.SystemModstamp < upper` (and the mapping's `soql_where`). Never a full re-read.
//!
//! Rows read again keep their own cursor value; readers of the export tell the newer copy by
//! its later `_sfetl_extracted_at` (`sfetl query`'s latest view orders by cursor, then
//! extraction time, then sync id).

use chrono::{DateTime, Utc};

use super::FetchError;
use super::fetch::ObjectReader;
use super::freshness::ParentDep;
use super::plan::ObjectPlan;
use crate::output::StreamWriter;
use crate::protocol::LogLevel;
use crate::source::soql::{self, Window};
use crate::state::{Cursor, Sources};

/// What a reader carries into every STATE besides its own cursor: the parents' cursors and
/// formula refreshes of every object of the stream, and its own cursor as last saved (parent
/// windows are checkpointed with it).
#[derive(Debug, Clone, Default)]
pub(super) struct Carry {
    /// Parents' cursors and formula refreshes.
    pub(super) fresh: crate::state::Freshness,
    /// The object's own cursor as last saved in this run.
    pub(super) own_at: Option<DateTime<Utc>>,
    /// `fresh` as the last STATE of this run saved it.
    pub(super) saved: crate::state::Freshness,
}

impl<'a> ObjectReader<'a> {
    /// Keeps the values that do not move this object's cursor fresh, once its own windows are
    /// read: the rows under changed parents, then the formula refresh when due. `read_started`
    /// is when the read began, `upper` the upper bound of its windows.
    pub(super) async fn keep_fresh(
        &mut self,
        writer: &mut dyn StreamWriter,
        read_started: DateTime<Utc>,
        upper: DateTime<Utc>,
    ) -> Result<u64, FetchError> {
        let Some(fresh) = self.freshness else {
            return Ok(0);
        };
        if !self.plan.incremental || fresh.is_empty() || self.skipped {
            return Ok(0);
        }
        let mut total = 0;
        for dep in &fresh.parents {
            total += self.follow_parent(dep, writer, upper).await?;
        }
        total += self.refresh_formulas(fresh, writer, read_started).await?;
        if self.carry.fresh != self.carry.saved {
            // Cursors started by a first read (nothing was read for them): saved now.
            let at = self.carry.own_at.unwrap_or(upper);
            self.checkpoint(writer, at).await?;
        }
        Ok(total)
    }

    /// A first read: each followed parent's cursor starts at the read's upper bound from its
    /// first STATE on. A run resumed from a STATE of an interrupted first read then follows
    /// parents from there; without the cursor, the STATE read like one written before the
    /// parent was followed, and the resumed run read again, unchanged, the rows under every
    /// parent changed since the object's own cursor (most of the rows already delivered).
    pub(super) fn start_parents(&mut self, upper: DateTime<Utc>) {
        let Some(fresh) = self.freshness else {
            return;
        };
        if !self.plan.incremental || self.object.saved_at.is_some() {
            return;
        }
        for dep in &fresh.parents {
            let known = self
                .carry
                .fresh
                .parents
                .get(&self.object.object, &dep.relationship);
            if known.is_none() {
                self.set_parent(dep, upper);
            }
        }
    }

    /// Reads again the rows under parents of `dep` that changed since its saved cursor (the
    /// object's own saved cursor for states written before the parent was followed); a first
    /// read only starts the parent's cursor where its own ends, since it read every row as it
    /// is.
    async fn follow_parent(
        &mut self,
        dep: &ParentDep,
        writer: &mut dyn StreamWriter,
        upper: DateTime<Utc>,
    ) -> Result<u64, FetchError> {
        let object = self.object.object.clone();
        let Some(own) = self.object.saved_at else {
            // A first read: every row was just read as it is, parents included. The parent's
            // cursor starts where the object's own ends (at most `upper`).
            self.set_parent(dep, self.carry.own_at.unwrap_or(upper).min(upper));
            return Ok(0);
        };
        let saved = self.carry.fresh.parents.get(&object, &dep.relationship);
        let from = saved.map_or(own, |c| c.cursor);
        let ctx = self.ctx;
        let config = &ctx.config;
        let lower = config.lookback_window.sub_from(from);
        // The parents' changes since their cursor: few rows, so one window unless the user
        // bounds windows with stream_slice_step.
        let windows = super::plan::step_windows(lower, upper, config.stream_slice_step.as_ref());
        let (mut total, mut left) = (0, 0);
        for w in &windows {
            self.ctx.check_stop()?;
            self.check_quota().await?;
            let (read, gone) = self.parent_window(dep, *w, writer).await?;
            total += read;
            left += gone;
            self.set_parent(dep, w.upper);
            let at = self.carry.own_at.unwrap_or(upper);
            self.checkpoint(writer, at).await?;
        }
        if windows.is_empty() {
            // A saved parent cursor past the upper bound: moved back to it, never beyond.
            self.set_parent(dep, upper);
            let at = self.carry.own_at.unwrap_or(upper);
            self.checkpoint(writer, at).await?;
        }
        let text = format!(
            "{}: {total} rows read again because their {} changed since {} ({} {}, for {})",
            self.who(),
            dep.relationship,
            soql::datetime_literal(lower),
            windows.len(),
            if windows.len() == 1 {
                "query"
            } else {
                "queries"
            },
            dep.because.join(", ")
        );
        self.ctx.log(LogLevel::Info, text).await;
        Ok(total + left)
    }

    /// How log lines name this object: `person: Contact` in a mapped stream, else the stream.
    pub(super) fn who(&self) -> String {
        if self.plan.mapped {
            format!("{}: {}", self.plan.name, self.object.object)
        } else {
            self.plan.name.clone()
        }
    }

    fn set_parent(&mut self, dep: &ParentDep, at: DateTime<Utc>) {
        let cursor = Cursor::new("SystemModstamp", at, None);
        let object = self.object.object.clone();
        self.carry
            .fresh
            .parents
            .insert(&object, &dep.relationship, cursor);
    }

    /// One window of a parent's cursor: the object's rows whose parent changed in it, read
    /// with the object's fields into the stream's writer; returns how many, and how many rows
    /// under those parents left the mapping's filter (delivered as deletions, logged apart).
    async fn parent_window(
        &mut self,
        dep: &ParentDep,
        w: Window,
        writer: &mut dyn StreamWriter,
    ) -> Result<(u64, u64), FetchError> {
        let path = dep.cursor_path();
        let mut filter = format!("{path} < {}", soql::datetime_literal(w.upper));
        if let Some(lower) = w.lower {
            filter = format!("{path} >= {} AND {filter}", soql::datetime_literal(lower));
        }
        let soql_where = soql::and_where(self.object.soql_where.as_deref(), &filter);
        let derived = self.derived(Some(soql_where));
        let read = self.read_derived(&derived, writer).await?;
        Ok((read, self.rows_leaving_with_parent(dep, w, writer).await?))
    }

    /// This object's plan for a read outside its own windows: no cursor (so no window, no
    /// ORDER BY, no checkpoint inside), the filter given, the API in use.
    pub(super) fn derived(&self, soql_where: Option<String>) -> ObjectPlan<'a> {
        let o = self.object;
        ObjectPlan {
            object: o.object.clone(),
            bulk: o.bulk.clone(),
            rest: o.rest.clone(),
            api: self.api,
            cursor: None,
            soql_where,
            mapping: o.mapping,
            replicateable: false,
            deleted_schema: o.deleted_schema.clone(),
            saved_at: None,
            deletions_to: None,
            backfill: None,
            fields_read: Vec::new(),
            filter_reads: Vec::new(),
            key_prefix: None,
            restriction: o.restriction,
        }
    }

    /// Reads all of `derived` into the stream's writer; its rows count as this object's (for
    /// the next STATE's record count and the summary).
    pub(super) async fn read_derived(
        &mut self,
        derived: &ObjectPlan<'_>,
        writer: &mut dyn StreamWriter,
    ) -> Result<u64, FetchError> {
        let mut reader = ObjectReader::new(self.ctx, self.plan, derived, Sources::default());
        reader.id_ranges = self.id_ranges;
        let read = reader.read_window(None, writer).await;
        self.pending += reader.pending;
        self.delivered += reader.delivered;
        reader.into_sources();
        read
    }
}
