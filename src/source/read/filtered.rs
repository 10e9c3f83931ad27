//! Rows that leave a mapping's filter: a source's `soql_where` (`IsConverted = false` on Lead)
//! selects the rows a stream holds, and a row that stops matching it (a Lead converted) is
//! changed, so its cursor moves into the next window, where the filtered query no longer
//! selects it. Without a look at those rows the stream kept their last matching version for
//! good (a converted Lead stayed a person beside the Contact it became).

use super::FetchError;
use super::fetch::ObjectReader;
use crate::output::StreamWriter;
use crate::protocol::LogLevel;
use crate::salesforce::query::query_all_rows;
use crate::source::soql::{self, Window};
use crate::state::parse_datetime;

impl ObjectReader<'_> {
    /// Delivers, as deletions at their cursor value, the rows of `window` that the source's
    /// `soql_where` no longer selects (one REST query of `Id` and the cursor, `NOT (filter)`);
    /// returns how many. Only once the object has a saved cursor: a first read delivered
    /// nothing such a row could replace. Rows that never matched come too (their deletion
    /// matches nothing downstream), as the `deleted` endpoint's do.
    pub(super) async fn rows_leaving_filter(
        &mut self,
        window: Window,
        writer: &mut dyn StreamWriter,
    ) -> Result<u64, FetchError> {
        let filter = self.object.mapping.and_then(|m| m.soql_where.as_deref());
        let (Some(filter), Some(cursor)) = (filter, self.object.cursor) else {
            return Ok(0);
        };
        if self.object.saved_at.is_none() {
            return Ok(0);
        }
        let fields = ["Id".to_string(), cursor.to_string()];
        let negated = format!("NOT ({filter})");
        let soql = soql::select(
            &self.object.object,
            &fields,
            Some(cursor),
            Some(window),
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
            "{}: {} row(s) of {} changed and no longer match the mapping's soql_where ({filter}): delivered as deletions, so the stream drops the version it held",
            self.plan.name,
            ids.len(),
            self.object.object
        );
        self.ctx.log(LogLevel::Info, text).await;
        self.deliver_deletions(writer, ids, at).await
    }
}
