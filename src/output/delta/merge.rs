//! One checkpoint's rows merged into the table: one MERGE on the primary key, in one commit.
//!
//! The rows are first reduced to one per key (the greatest cursor wins, a later row on a tie)
//! and sorted by key, so the files the MERGE writes hold narrow key ranges. The MERGE then
//! updates rows whose cursor is not older than the table's and whose values differ (a row read
//! again unchanged rewrites nothing), deletes rows the checkpoint marks
//! deleted, and inserts the rest. Its join condition also lists the checkpoint's keys (when
//! they are few), which lets deltalake skip every file whose key statistics hold none of them:
//! only files holding changed rows are read in full and rewritten.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array};
use arrow::compute::{SortColumn, concat_batches, lexsort_to_indices, take_record_batch};
use arrow::datatypes::{DataType, Int64Type};
use datafusion::common::Column;
use datafusion::logical_expr::{Operator, binary_expr};
use datafusion::prelude::{Expr, SessionContext, lit};
use deltalake::DeltaTable;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::merge::MergeBuilder;

use super::DeltaError;
use super::layout::merge_properties;
use super::rows::Keys;
use super::state::CommitTag;
use super::table::TableTarget;
use crate::config::Compression;
use crate::output::{EXTRACTED_AT, SYNC_ID};

/// Most keys listed in the MERGE condition for file skipping; more and the key range
/// (which deltalake derives itself) prunes as well as a list would.
const MAX_LISTED_KEYS: usize = 10_000;

/// A column of the source (`s`) or target (`t`) side.
fn c(side: &str, name: &str) -> Expr {
    Expr::Column(Column::new(Some(side), name))
}

/// A MERGE of `rows` reduced to one per key into `table` on the key, with sfetl's aliases
/// (`s`, `t`), writer and commit properties; the caller adds its clauses. Also returns the
/// source's columns.
async fn merge_on_key(
    target: &TableTarget,
    table: DeltaTable,
    rows: &[RecordBatch],
    keys: &Keys,
    compression: Compression,
    props: CommitProperties,
) -> Result<(MergeBuilder, Vec<String>), DeltaError> {
    let source = latest_per_key(rows, keys)?;
    let columns: Vec<String> = source
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let on = join_condition(&source, keys)?;
    let properties = merge_properties(target, &table, compression, &source).await?;
    let frame = SessionContext::new()
        .read_batch(source)
        .map_err(|e| target.error(e))?;
    let builder = table
        .merge(frame, on)
        .with_source_alias("s")
        .with_target_alias("t")
        .with_writer_properties(properties)
        .with_commit_properties(props);
    Ok((builder, columns))
}

/// True when the source row is not older than the target row (or either has no cursor).
fn not_older(keys: &Keys) -> Expr {
    match &keys.cursor {
        Some(cur) => c("s", cur)
            .gt_eq(c("t", cur))
            .or(c("t", cur).is_null())
            .or(c("s", cur).is_null()),
        None => lit(true),
    }
}

/// Merges `rows` (the table's schema) into `table` with `tag`.
pub async fn merge(
    target: &TableTarget,
    table: DeltaTable,
    rows: Vec<RecordBatch>,
    keys: &Keys,
    tag: &CommitTag,
    compression: Compression,
) -> Result<DeltaTable, DeltaError> {
    let (builder, columns) =
        merge_on_key(target, table, &rows, keys, compression, tag.properties()).await?;
    let deleted = deleted_expr(keys);
    let newer = not_older(keys);
    let changed = changed_expr(&columns);
    let (table, _metrics) = builder
        .when_matched_delete(|d| d.predicate(deleted.clone().and(newer.clone())))
        .map_err(|e| target.error(e))?
        .when_matched_update(|u| {
            let when = newer.clone().and(changed.clone());
            columns.iter().fold(u.predicate(when), |u, col| {
                u.update(Column::new_unqualified(col), c("s", col))
            })
        })
        .map_err(|e| target.error(e))?
        .when_not_matched_insert(|i| {
            columns
                .iter()
                .fold(i.predicate(!deleted.clone()), |i, col| {
                    i.set(Column::new_unqualified(col), c("s", col))
                })
        })
        .map_err(|e| target.error(e))?
        .await
        .map_err(|e| super::commit::conflict_or_error(target, e))?;
    Ok(table)
}

/// Sets `columns` (and the extraction time) from `rows` on the matching rows of `table` whose
/// values differ, in one commit with `props`: a formula refresh. Rows the table lacks are
/// left to the stream's own reads; rows newer in the table than in `rows` keep their values.
pub async fn update_columns(
    target: &TableTarget,
    table: DeltaTable,
    rows: Vec<RecordBatch>,
    keys: &Keys,
    columns: &[String],
    props: CommitProperties,
    compression: Compression,
) -> Result<DeltaTable, DeltaError> {
    let (builder, _) = merge_on_key(target, table, &rows, keys, compression, props).await?;
    let when = not_older(keys).and(changed_expr(columns));
    let (table, _metrics) = builder
        .when_matched_update(|u| {
            columns
                .iter()
                .map(String::as_str)
                .chain([EXTRACTED_AT])
                .fold(u.predicate(when), |u, col| {
                    u.update(Column::new_unqualified(col), c("s", col))
                })
        })
        .map_err(|e| target.error(e))?
        .await
        .map_err(|e| super::commit::conflict_or_error(target, e))?;
    Ok(table)
}

/// `t.key = s.key` for every key column, and `t.key IN (...)` for a single key with few
/// values (file skipping on the key's statistics).
fn join_condition(source: &RecordBatch, keys: &Keys) -> Result<Expr, DeltaError> {
    let mut on = keys
        .key
        .iter()
        .map(|k| c("t", k).eq(c("s", k)))
        .reduce(Expr::and)
        .unwrap_or_else(|| lit(false));
    if let [key] = keys.key.as_slice()
        && source.num_rows() <= MAX_LISTED_KEYS
    {
        let values = key_strings(source, std::slice::from_ref(key))?;
        let list: Vec<Expr> = values.into_iter().map(lit).collect();
        if !list.is_empty()
            && source
                .schema()
                .field_with_name(key)
                .map(|f| f.data_type().clone())
                .ok()
                == Some(DataType::Utf8)
        {
            on = on.and(c("t", key).in_list(list, false));
        }
    }
    Ok(on)
}

/// True when a source row differs from its target row in a column of the org's (not in when or
/// by which sync sfetl read it). A row read again unchanged (the window's inclusive lower
/// bound re-reads the last instant; a parent's change re-reads its children) then updates
/// nothing, and deltalake rewrites no file for it: only files holding rows that really
/// changed are rewritten. A formula that changed without its row's cursor still counts.
fn changed_expr(columns: &[String]) -> Expr {
    columns
        .iter()
        .filter(|col| *col != EXTRACTED_AT && *col != SYNC_ID)
        .map(|col| binary_expr(c("s", col), Operator::IsDistinctFrom, c("t", col)))
        .reduce(Expr::or)
        .unwrap_or_else(|| lit(true))
}

/// True for a source row that marks its key deleted.
fn deleted_expr(keys: &Keys) -> Expr {
    let flags = keys.flags.iter().map(|f| c("s", f).is_true());
    let at = keys.deleted_at.iter().map(|d| c("s", d).is_not_null());
    flags
        .chain(at)
        .reduce(Expr::or)
        .unwrap_or_else(|| lit(false))
}

/// The key of every row as text (columns joined by U+001F).
fn key_strings(batch: &RecordBatch, key: &[String]) -> Result<Vec<String>, DeltaError> {
    let mut parts: Vec<ArrayRef> = Vec::new();
    for k in key {
        let col = batch
            .column_by_name(k)
            .ok_or_else(|| DeltaError::Rows(format!("the rows have no key column {k}")))?;
        let text = arrow::compute::cast(col, &DataType::Utf8)
            .map_err(|e| DeltaError::Rows(format!("key column {k}: {e}")))?;
        parts.push(text);
    }
    Ok((0..batch.num_rows())
        .map(|i| {
            parts
                .iter()
                .map(|a| {
                    let s = a.as_string::<i32>();
                    if s.is_null(i) { "" } else { s.value(i) }
                })
                .collect::<Vec<_>>()
                .join("\u{1f}")
        })
        .collect())
}

/// One row per key (the greatest cursor, the later row on a tie), sorted by key.
pub fn latest_per_key(rows: &[RecordBatch], keys: &Keys) -> Result<RecordBatch, DeltaError> {
    let schema = rows
        .first()
        .map(|b| b.schema())
        .ok_or_else(|| DeltaError::Rows("no rows to merge".into()))?;
    let all = concat_batches(&schema, rows).map_err(|e| DeltaError::Rows(e.to_string()))?;
    // A single text key (`Id`) is compared in place; other keys as joined text.
    let joined: Vec<String>;
    let key_text: Vec<&str> = match keys.key.as_slice() {
        [k] if all
            .column_by_name(k)
            .is_some_and(|c| c.data_type() == &DataType::Utf8) =>
        {
            let col = all
                .column_by_name(k)
                .expect("checked above")
                .as_string::<i32>();
            (0..col.len())
                .map(|i| if col.is_null(i) { "" } else { col.value(i) })
                .collect()
        }
        _ => {
            joined = key_strings(&all, &keys.key)?;
            joined.iter().map(String::as_str).collect()
        }
    };
    let cursor: Option<Vec<Option<i64>>> = match &keys.cursor {
        Some(cur) => {
            let col = all
                .column_by_name(cur)
                .ok_or_else(|| DeltaError::Rows(format!("the rows have no cursor column {cur}")))?;
            let micros = arrow::compute::cast(col, &DataType::Int64)
                .map_err(|e| DeltaError::Rows(format!("cursor column {cur}: {e}")))?;
            Some(micros.as_primitive::<Int64Type>().iter().collect())
        }
        None => None,
    };
    let mut best: HashMap<&str, usize> = HashMap::with_capacity(key_text.len());
    for (i, &k) in key_text.iter().enumerate() {
        let keep = match best.get(k) {
            None => true,
            Some(&j) => match &cursor {
                Some(cur) => cur[i] >= cur[j],
                None => true,
            },
        };
        if keep {
            best.insert(k, i);
        }
    }
    let mut chosen: Vec<u32> = best.into_values().map(|i| i as u32).collect();
    chosen.sort_unstable();
    let picked = take_record_batch(&all, &UInt32Array::from(chosen))
        .map_err(|e| DeltaError::Rows(e.to_string()))?;
    sort_by_key(&picked, &keys.key)
}

/// `batch` sorted by its key columns.
fn sort_by_key(batch: &RecordBatch, key: &[String]) -> Result<RecordBatch, DeltaError> {
    let columns: Vec<SortColumn> = key
        .iter()
        .filter_map(|k| batch.column_by_name(k))
        .map(|c| SortColumn {
            values: Arc::clone(c),
            options: None,
        })
        .collect();
    if columns.is_empty() || batch.num_rows() < 2 {
        return Ok(batch.clone());
    }
    let order = lexsort_to_indices(&columns, None).map_err(|e| DeltaError::Rows(e.to_string()))?;
    take_record_batch(batch, &order).map_err(|e| DeltaError::Rows(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{BooleanArray, StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::{Field, Schema, TimeUnit};

    #[test]
    fn latest_per_key_keeps_the_greatest_cursor_sorted_by_key() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("Id", DataType::Utf8, true),
            Field::new(
                "SystemModstamp",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new("IsDeleted", DataType::Boolean, true),
        ]));
        let batch = |ids: Vec<&str>, at: Vec<i64>, del: Vec<bool>| {
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from(ids)),
                    Arc::new(TimestampMicrosecondArray::from(at).with_timezone("UTC")),
                    Arc::new(BooleanArray::from(del)),
                ],
            )
            .unwrap()
        };
        let rows = vec![
            batch(
                vec!["b", "a", "c"],
                vec![5, 1, 3],
                vec![false, false, false],
            ),
            batch(vec!["a", "b", "c"], vec![2, 4, 3], vec![true, false, false]),
        ];
        let keys = Keys {
            key: vec!["Id".into()],
            cursor: Some("SystemModstamp".into()),
            flags: vec!["IsDeleted".into()],
            deleted_at: None,
        };
        let out = latest_per_key(&rows, &keys).unwrap();
        let ids: Vec<&str> = out.column(0).as_string::<i32>().iter().flatten().collect();
        assert_eq!(ids, ["a", "b", "c"]);
        let at: Vec<i64> = out
            .column(1)
            .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
            .values()
            .to_vec();
        // a: the deletion (2) beats 1; b: 5 beats the later 4; c: a tie goes to the later row.
        assert_eq!(at, [2, 5, 3]);
        assert!(out.column(2).as_boolean().value(0));
    }
}
