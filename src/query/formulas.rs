//! Formula side tables in the latest view.
//!
//! A formula refresh writes `<stream>__formulas` (`Id`, the cursor and the refreshed formula
//! fields of every row; each refresh a complete base sync, so its own latest view holds the
//! newest refreshed value per `Id`). The latest view of `<stream>` then takes each formula
//! column from the side table when the side table's row was extracted after the stream's row,
//! and keeps the stream's value otherwise (a row read again after the refresh is newer).
//! Exact whatever the order of syncs, and a Delta MERGE can apply the same rule
//! (`WHEN MATCHED AND s._sfetl_extracted_at > t._sfetl_extracted_at THEN UPDATE SET ...`).

use datafusion::common::TableReference;
use datafusion::prelude::SessionContext;

use super::export::StreamFiles;
use super::tables::{CURSORS, quote};
use crate::output::{EXTRACTED_AT, FORMULAS_SUFFIX};

/// The streams in registration order: side tables first, then the others, each group in the
/// export's (name) order.
pub(super) fn side_tables_first(streams: &[StreamFiles]) -> Vec<&StreamFiles> {
    let (side, rest): (Vec<&StreamFiles>, Vec<&StreamFiles>) = streams
        .iter()
        .partition(|s| s.name.ends_with(FORMULAS_SUFFIX));
    side.into_iter().chain(rest).collect()
}

/// The registered side table of `stream` and its columns, when the export has one.
pub(super) async fn side_table(
    ctx: &SessionContext,
    stream: &str,
    streams: &[StreamFiles],
) -> Option<(String, Vec<String>)> {
    let side = format!("{stream}{FORMULAS_SUFFIX}");
    if stream.ends_with(FORMULAS_SUFFIX) || !streams.iter().any(|s| s.name == side) {
        return None;
    }
    let table = ctx.table(TableReference::bare(side.as_str())).await.ok()?;
    let columns = table
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    Some((side, columns))
}

/// `latest` (the stream's latest-view SQL over `columns`) with every formula column of the side
/// table `side` (its `side_columns` other than `Id`, cursors and sfetl's own) taken from it
/// where its row was extracted later. Unchanged when the two share no formula column.
pub(super) fn overlay_sql(
    latest: &str,
    columns: &[String],
    side: &str,
    side_columns: &[String],
) -> String {
    let has = |cols: &[String], c: &str| cols.iter().any(|x| x == c);
    let formula = |c: &str| {
        c != "Id" && !c.starts_with("_sfetl_") && !CURSORS.contains(&c) && has(side_columns, c)
    };
    if !has(columns, "Id") || !has(columns, EXTRACTED_AT) || !has(side_columns, EXTRACTED_AT) {
        return latest.to_string();
    }
    if !columns.iter().any(|c| formula(c)) {
        return latest.to_string();
    }
    let newer = format!("f.{e} > m.{e}", e = quote(EXTRACTED_AT));
    let list: Vec<String> = columns
        .iter()
        .map(|c| {
            let q = quote(c);
            if formula(c) {
                format!("CASE WHEN {newer} THEN f.{q} ELSE m.{q} END AS {q}")
            } else {
                format!("m.{q}")
            }
        })
        .collect();
    format!(
        "SELECT {} FROM ({latest}) AS m LEFT JOIN {} AS f ON m.\"Id\" = f.\"Id\"",
        list.join(", "),
        quote(side)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn formula_columns_come_from_the_side_table_when_it_is_newer() {
        let columns = cols(&[
            "Id",
            "Name",
            "Days__c",
            "SystemModstamp",
            "_sfetl_extracted_at",
            "_sfetl_sync_id",
        ]);
        let side = cols(&[
            "Id",
            "SystemModstamp",
            "Days__c",
            "_sfetl_extracted_at",
            "_sfetl_sync_id",
        ]);
        assert_eq!(
            overlay_sql("SELECT 1", &columns, "Opportunity__formulas", &side),
            "SELECT m.\"Id\", m.\"Name\", CASE WHEN f.\"_sfetl_extracted_at\" > m.\"_sfetl_extracted_at\" THEN f.\"Days__c\" ELSE m.\"Days__c\" END AS \"Days__c\", m.\"SystemModstamp\", m.\"_sfetl_extracted_at\", m.\"_sfetl_sync_id\" FROM (SELECT 1) AS m LEFT JOIN \"Opportunity__formulas\" AS f ON m.\"Id\" = f.\"Id\""
        );
        // No formula column in common: the view is left alone.
        let other = cols(&["Id", "Gone__c", "_sfetl_extracted_at"]);
        assert_eq!(
            overlay_sql("SELECT 1", &columns, "X__formulas", &other),
            "SELECT 1"
        );
    }
}
