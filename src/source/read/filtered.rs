//! Rows that leave a mapping's filter: a source's `soql_where` (`IsConverted = false` on Lead)
//! selects the rows a stream holds, and a row that stops matching it (a Lead converted) is
//! changed, so its cursor moves into the next window, where the filtered query no longer
//! selects it. Without a look at those rows the stream kept their last matching version for
//! good (a converted Lead stayed a person beside the Contact it became). A `soql_where` the
//! mapping narrowed since the saved cursor leaves rows behind the same way: its backfill reads
//! every row again from `start_date`, and the rows the new filter does not select leave too:
//! in each window, and before the first (a first read's windows start at the first month
//! holding rows the filter selects, or are none at all). A filter on relative dates or on a
//! formula of the date lets rows go with no change at all: on the refresh schedule, the
//! export's Ids are compared with the rows the filter selects now.

use super::FetchError;
use super::fetch::ObjectReader;
use super::freshness::ParentDep;
use super::plan::Bounds;
use crate::output::StreamWriter;
use crate::protocol::LogLevel;
use crate::salesforce::query::query_all_rows;
use crate::source::soql::{self, Window};
use crate::state::parse_datetime;

impl ObjectReader<'_> {
    /// Delivers, as deletions at their cursor value, the rows of `window` that the source's
    /// `soql_where` no longer selects (one REST query of `Id` and the cursor, `NOT (filter)`);
    /// returns how many. Only once the object has a saved cursor: a first read delivered
    /// nothing such a row could replace; a backfill for a changed filter, which reads every
    /// window again, counts as one that has. Rows that never matched come too (their deletion
    /// matches nothing downstream), as the `deleted` endpoint's do.
    pub(super) async fn rows_leaving_filter(
        &mut self,
        window: Window,
        writer: &mut dyn StreamWriter,
    ) -> Result<u64, FetchError> {
        let changed = self.filter_changed();
        if self.object.saved_at.is_none() && !changed {
            return Ok(0);
        }
        let how = if changed {
            "do not match the mapping's changed"
        } else {
            "changed and no longer match the mapping's"
        };
        self.rows_not_selected(Some(window), None, how, writer)
            .await
    }

    /// Delivers, as deletions, the rows under the parents of `dep` that changed in `w` which
    /// the source's `soql_where` no longer selects, when the filter reads the parent's fields
    /// (`Account.Industry = 'Banking'`): such a row left the filter while its own cursor stayed
    /// put. Rows the filter selects there are read again by the parent's window itself.
    pub(super) async fn rows_leaving_with_parent(
        &mut self,
        dep: &ParentDep,
        w: Window,
        writer: &mut dyn StreamWriter,
    ) -> Result<u64, FetchError> {
        if !dep.filters() {
            return Ok(0);
        }
        let path = dep.cursor_path();
        let mut under = format!("{path} < {}", soql::datetime_literal(w.upper));
        if let Some(lower) = w.lower {
            under = format!("{path} >= {} AND {under}", soql::datetime_literal(lower));
        }
        let how = format!(
            "whose {} changed no longer match the mapping's",
            dep.relationship
        );
        self.rows_not_selected(None, Some(&under), &how, writer)
            .await
    }

    /// The rows of `window` (and of the condition `and`) that the source's `soql_where` does
    /// not select, delivered as deletions at their cursor value (one REST query of `Id` and
    /// the cursor), with a LOG INFO saying how they left (`how`).
    async fn rows_not_selected(
        &mut self,
        window: Option<Window>,
        and: Option<&str>,
        how: &str,
        writer: &mut dyn StreamWriter,
    ) -> Result<u64, FetchError> {
        let filter = self.object.mapping.and_then(|m| m.soql_where.as_deref());
        let (Some(filter), Some(cursor)) = (filter, self.object.cursor) else {
            return Ok(0);
        };
        let fields = ["Id".to_string(), cursor.to_string()];
        let negated = match and {
            Some(and) => format!("{and} AND (NOT ({filter}))"),
            None => format!("NOT ({filter})"),
        };
        let soql = soql::select(
            &self.object.object,
            &fields,
            Some(cursor),
            window,
            Some(&negated),
            false,
        );
        let rows = query_all_rows(&self.ctx.client, &soql, false).await?;
        let (ids, at): (Vec<String>, Vec<i64>) = rows
            .iter()
            .filter_map(|r| {
                let id = r.get("Id")?.as_str()?.to_string();
                let at = parse_datetime(r.get(cursor)?.as_str()?)?;
                Some((id, at.timestamp_micros()))
            })
            .unzip();
        if ids.is_empty() {
            return Ok(0);
        }
        let text = format!(
            "{}: {} row(s) of {} {how} soql_where ({filter}): delivered as deletions, so the stream drops the version it held",
            self.plan.name,
            ids.len(),
            self.object.object
        );
        self.ctx.log(LogLevel::Info, text).await;
        self.deliver_deletions(writer, ids, at).await
    }

    /// Whether this read is a backfill for a `soql_where` the mapping changed.
    fn filter_changed(&self) -> bool {
        self.object
            .backfill
            .as_ref()
            .is_some_and(|b| b.filter_changed)
    }

    /// A backfill for a changed `soql_where`: the rows in `bounds` before the first of
    /// `windows` (all of `bounds` when there is none) that the new filter does not select,
    /// delivered as deletions ([`Self::rows_leaving_filter`] takes each window's own).
    pub(super) async fn rows_left_before_windows(
        &mut self,
        bounds: Bounds,
        windows: &[Window],
        writer: &mut dyn StreamWriter,
    ) -> Result<u64, FetchError> {
        if !self.filter_changed() {
            return Ok(0);
        }
        let upper = match windows.first() {
            None => bounds.upper,
            Some(w) => match w.lower {
                Some(lower) => lower,
                None => return Ok(0),
            },
        };
        if bounds.lower.is_some_and(|lower| lower >= upper) {
            return Ok(0);
        }
        let before = Window {
            lower: bounds.lower,
            upper,
        };
        self.rows_leaving_filter(before, writer).await
    }

    /// Delivers, as deletions at their cursor value, the rows the stream holds from this
    /// object that the source's `soql_where` no longer selects although none of them changed:
    /// a filter on relative dates (`LAST_N_DAYS:365`) or on a formula of the date selects
    /// other rows as days pass. Needs the export (Parquet or Delta) and a mapped column that
    /// is the row's `Id`: the export's Ids of this object are compared with the Ids the filter
    /// selects now (one Bulk job), and those missing are asked again, [`IDS_PER_QUERY`] at a
    /// time, with `Id IN (...) AND NOT (filter)`, so that each comes with its own cursor
    /// value. Returns how many; none when the read cannot tell (RECORDs or Arrow out, no Id
    /// column, a stream of several objects without the Id prefix), as the plan's WARN says.
    pub(super) async fn rows_left_as_days_pass(
        &mut self,
        writer: &mut dyn StreamWriter,
    ) -> Result<u64, FetchError> {
        let (Some(source), Some(filter)) = (self.object.mapping, self.object.soql_where.clone())
        else {
            return Ok(0);
        };
        let Some(location) = self.ctx.destination.export_location() else {
            return Ok(0);
        };
        let Some(column) = id_column(&source.written) else {
            return Ok(0);
        };
        let prefix = match (self.plan.objects.len() > 1, &self.object.key_prefix) {
            (false, _) => None,
            (true, Some(prefix)) => Some(prefix.as_str()),
            (true, None) => return Ok(0),
        };
        let held =
            super::deleted::export_ids(&location.display, &self.plan.name, column, prefix).await?;
        let selected = self.org_ids(Some(&filter)).await?;
        // Salesforce Ids are letters and digits; anything else is not one of its rows.
        let mut gone = held.minus(&selected);
        gone.retain(|id| id.bytes().all(|b| b.is_ascii_alphanumeric()));
        let mut total = 0;
        for chunk in gone.chunks(IDS_PER_QUERY) {
            let within = format!("Id IN ({})", crate::source::soql::id_list(chunk));
            let how = "no longer selected, as days passed, by the mapping's";
            total += self
                .rows_not_selected(None, Some(&within), how, writer)
                .await?;
        }
        Ok(total)
    }
}

/// Ids asked at once by [`ObjectReader::rows_left_as_days_pass`]: 200 Ids of 18 characters
/// keep a query's URL near 5 KB, well inside the 16 KB Salesforce takes.
const IDS_PER_QUERY: usize = 200;

/// The mapped column whose expression is the row's `Id` (`column id = Id` among a source's
/// written entries), if any.
fn id_column(written: &[String]) -> Option<&str> {
    written.iter().find_map(|entry| {
        let (name, expr) = entry
            .strip_prefix(crate::state::COLUMN_ENTRY)?
            .split_once(" = ")?;
        expr.trim().eq_ignore_ascii_case("Id").then_some(name)
    })
}

#[cfg(test)]
mod tests {
    use super::id_column;

    #[test]
    fn the_column_mapped_from_id_is_found() {
        let written = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            id_column(&written(&[
                "soql_where Id = 'x'",
                "column email = lower(Email)",
                "column person_id = Id",
            ])),
            Some("person_id")
        );
        assert_eq!(id_column(&written(&["column id = AccountId"])), None);
    }
}
