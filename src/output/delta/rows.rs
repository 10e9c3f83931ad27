//! The rows of a stream as a Delta table holds them: the stream's columns in types Delta has,
//! plus `_sfetl_extracted_at` and `_sfetl_sync_id` (as in Parquet output, so `SELECT *` over
//! either export gives the same columns), and which columns key, order and delete rows.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, FieldRef, Fields, Schema, SchemaRef, TimeUnit};

use super::DeltaError;
use crate::mapping::{META_CURSOR, META_PRIMARY_KEY};
use crate::output::{DELETED_AT, EXTRACTED_AT, SYNC_ID};

/// Columns flagging a deleted row: a mapping's flag, Salesforce's `IsDeleted`, and the time
/// the `deleted` endpoint (or reconciliation) reported a row gone.
const DELETE_FLAGS: [&str; 2] = ["_sfetl_is_deleted", "IsDeleted"];

/// How rows of a stream are matched and ordered.
#[derive(Debug, Clone, PartialEq)]
pub struct Keys {
    /// Primary key columns (`Id`, or a mapping's `primary_key`).
    pub key: Vec<String>,
    /// The cursor column: of two versions of a row, the greater cursor wins.
    pub cursor: Option<String>,
    /// Boolean columns that mark a row deleted when true.
    pub flags: Vec<String>,
    /// A timestamp column that marks a row deleted when set.
    pub deleted_at: Option<String>,
}

impl Keys {
    /// Key, cursor and deletion columns of a stream with `schema` (whose metadata names a
    /// mapping's key and cursor) read with `cursor`.
    pub fn of(schema: &Schema, cursor: Option<&str>) -> Keys {
        let has = |c: &str| schema.field_with_name(c).is_ok();
        let meta = schema.metadata();
        let key = meta
            .get(META_PRIMARY_KEY)
            .and_then(|k| serde_json::from_str::<Vec<String>>(k).ok())
            .filter(|k| !k.is_empty() && k.iter().all(|c| has(c)))
            .unwrap_or_else(|| vec!["Id".to_string()]);
        let cursor = meta
            .get(META_CURSOR)
            .map(String::as_str)
            .or(cursor)
            .filter(|c| has(c))
            .map(str::to_string);
        Keys {
            key,
            cursor,
            flags: DELETE_FLAGS
                .into_iter()
                .filter(|c| has(c))
                .map(str::to_string)
                .collect(),
            deleted_at: has(DELETED_AT).then(|| DELETED_AT.to_string()),
        }
    }
}

/// The table's Arrow schema for a stream's `schema`: every column nullable, types Delta lacks
/// converted (times of day as text, unsigned integers widened), then the two sfetl columns.
pub fn table_schema(schema: &Schema) -> SchemaRef {
    let mut fields: Vec<FieldRef> = schema.fields().iter().map(|f| delta_field(f)).collect();
    fields.push(Arc::new(Field::new(
        EXTRACTED_AT,
        DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC"))),
        true,
    )));
    fields.push(Arc::new(Field::new(SYNC_ID, DataType::Utf8, true)));
    Arc::new(Schema::new(fields))
}

fn delta_field(f: &Field) -> FieldRef {
    Arc::new(Field::new(f.name(), delta_type(f.data_type()), true))
}

/// The nearest type Delta Lake stores.
fn delta_type(t: &DataType) -> DataType {
    match t {
        DataType::Time32(_) | DataType::Time64(_) | DataType::Null => DataType::Utf8,
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::BinaryView | DataType::LargeBinary => DataType::Binary,
        DataType::UInt8 => DataType::Int16,
        DataType::UInt16 => DataType::Int32,
        DataType::UInt32 | DataType::UInt64 => DataType::Int64,
        DataType::Timestamp(unit, None) => DataType::Timestamp(*unit, None),
        DataType::Timestamp(_, Some(_)) => {
            DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")))
        }
        DataType::Struct(children) => {
            let fields: Fields = children.iter().map(|c| delta_field(c)).collect();
            DataType::Struct(fields)
        }
        DataType::List(item) | DataType::LargeList(item) => DataType::List(delta_field(item)),
        other => other.clone(),
    }
}

/// A stream batch as table rows: columns cast to the table's types, plus the extraction time
/// and sync id.
pub fn conform(
    batch: &RecordBatch,
    table: &SchemaRef,
    extracted_at_us: i64,
    sync_id: &str,
) -> Result<RecordBatch, DeltaError> {
    let n = batch.num_rows();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(table.fields().len());
    for (column, field) in batch.columns().iter().zip(table.fields()) {
        if column.data_type() == field.data_type() {
            columns.push(column.clone());
        } else {
            let cast = arrow::compute::cast(column, field.data_type())
                .map_err(|e| DeltaError::Rows(format!("column {}: {e}", field.name())))?;
            columns.push(cast);
        }
    }
    columns.push(Arc::new(
        TimestampMicrosecondArray::from(vec![extracted_at_us; n]).with_timezone("UTC"),
    ));
    columns.push(Arc::new(StringArray::from(vec![sync_id; n])));
    RecordBatch::try_new(table.clone(), columns).map_err(|e| DeltaError::Rows(e.to_string()))
}

/// The rows of `batch` that are not deletions: a full refresh replaces the table with the
/// org's current rows, so the recycle bin's rows (which `queryAll` returns) stay out.
pub fn live_rows(batch: &RecordBatch, keys: &Keys) -> Result<RecordBatch, DeltaError> {
    use arrow::array::{Array, AsArray, BooleanArray};
    let mut keep = vec![true; batch.num_rows()];
    for flag in &keys.flags {
        if let Some(col) = batch.column_by_name(flag) {
            let col = col.as_boolean();
            for (i, k) in keep.iter_mut().enumerate() {
                *k &= !(col.is_valid(i) && col.value(i));
            }
        }
    }
    if let Some(col) = keys
        .deleted_at
        .as_ref()
        .and_then(|d| batch.column_by_name(d))
    {
        for (i, k) in keep.iter_mut().enumerate() {
            *k &= col.is_null(i);
        }
    }
    if keep.iter().all(|k| *k) {
        return Ok(batch.clone());
    }
    arrow::compute::filter_record_batch(batch, &BooleanArray::from(keep))
        .map_err(|e| DeltaError::Rows(e.to_string()))
}

/// The first key column null in a live row of `batch`, with how many live rows have it
/// null. Deletions are left out: the delete log gives a row's Id alone, so a mapping's other
/// columns are null in them, and a deletion that matches no row changes nothing.
pub fn null_key(batch: &RecordBatch, keys: &Keys) -> Result<Option<(String, usize)>, DeltaError> {
    let nulls = |b: &RecordBatch, k: &str| b.column_by_name(k).map_or(0, |c| c.null_count());
    if keys.key.iter().all(|k| nulls(batch, k) == 0) {
        return Ok(None);
    }
    let live = live_rows(batch, keys)?;
    Ok(keys
        .key
        .iter()
        .map(|k| (k.clone(), nulls(&live, k)))
        .find(|(_, n)| *n > 0))
}

/// A column whose type the table holds differently: `(name, table type, new type)`.
pub type TypeChange = (String, DataType, DataType);

/// Compares the table's schema with the stream's: the columns the stream adds, and the
/// columns whose type changed.
pub fn compare(existing: &Schema, ours: &Schema) -> (Vec<FieldRef>, Vec<TypeChange>) {
    let mut added = Vec::new();
    let mut changed = Vec::new();
    for f in ours.fields() {
        match existing.field_with_name(f.name()) {
            Err(_) => added.push(f.clone()),
            Ok(old) if !same_type(old.data_type(), f.data_type()) => changed.push((
                f.name().clone(),
                old.data_type().clone(),
                f.data_type().clone(),
            )),
            Ok(_) => {}
        }
    }
    (added, changed)
}

/// Types equal as Delta stores them (a table read back may name text or time zones
/// differently from what was written).
fn same_type(a: &DataType, b: &DataType) -> bool {
    let norm = |t: &DataType| match delta_type(t) {
        DataType::Timestamp(u, Some(_)) => DataType::Timestamp(u, Some(Arc::from("UTC"))),
        other => other,
    };
    match (norm(a), norm(b)) {
        (DataType::Struct(x), DataType::Struct(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|(p, q)| p.name() == q.name() && same_type(p.data_type(), q.data_type()))
        }
        (x, y) => x == y,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_mapping_metadata_or_id() {
        let plain = Schema::new(vec![
            Field::new("Id", DataType::Utf8, false),
            Field::new("IsDeleted", DataType::Boolean, true),
            Field::new(
                "SystemModstamp",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new(
                DELETED_AT,
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
        ]);
        let k = Keys::of(&plain, Some("SystemModstamp"));
        assert_eq!(k.key, vec!["Id"]);
        assert_eq!(k.cursor.as_deref(), Some("SystemModstamp"));
        assert_eq!(k.flags, vec!["IsDeleted"]);
        assert_eq!(k.deleted_at.as_deref(), Some(DELETED_AT));
        let mapped = Schema::new_with_metadata(
            vec![
                Field::new("email", DataType::Utf8, true),
                Field::new(
                    "_sfetl_cursor",
                    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                    true,
                ),
                Field::new("_sfetl_is_deleted", DataType::Boolean, true),
            ],
            [
                (META_PRIMARY_KEY.to_string(), "[\"email\"]".to_string()),
                (META_CURSOR.to_string(), "_sfetl_cursor".to_string()),
            ]
            .into(),
        );
        let k = Keys::of(&mapped, None);
        assert_eq!(k.key, vec!["email"]);
        assert_eq!(k.cursor.as_deref(), Some("_sfetl_cursor"));
        assert_eq!(k.flags, vec!["_sfetl_is_deleted"]);
        assert_eq!(k.deleted_at, None);
    }

    #[test]
    fn table_schema_converts_times_and_adds_sfetl_columns() {
        let s = Schema::new(vec![
            Field::new("Id", DataType::Utf8, false),
            Field::new("Opens", DataType::Time64(TimeUnit::Microsecond), true),
        ]);
        let t = table_schema(&s);
        let names: Vec<&str> = t.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["Id", "Opens", EXTRACTED_AT, SYNC_ID]);
        assert_eq!(t.field(1).data_type(), &DataType::Utf8);
        assert!(t.fields().iter().all(|f| f.is_nullable()));
    }

    #[test]
    fn compare_finds_added_and_changed_columns() {
        let old = Schema::new(vec![
            Field::new("Id", DataType::Utf8, true),
            Field::new("N", DataType::Int32, true),
        ]);
        let new = Schema::new(vec![
            Field::new("Id", DataType::Utf8View, true),
            Field::new("N", DataType::Float64, true),
            Field::new("New", DataType::Boolean, true),
        ]);
        let (added, changed) = compare(&old, &new);
        assert_eq!(added.len(), 1);
        assert_eq!(added[0].name(), "New");
        assert_eq!(
            changed,
            vec![("N".to_string(), DataType::Int32, DataType::Float64)]
        );
    }

    #[test]
    fn a_null_key_is_found_in_live_rows_and_not_in_deletions() {
        use arrow::array::{BooleanArray, StringArray};
        let schema = Arc::new(Schema::new(vec![
            Field::new("email", DataType::Utf8, true),
            Field::new("IsDeleted", DataType::Boolean, true),
        ]));
        let keys = Keys {
            key: vec!["email".into()],
            cursor: None,
            flags: vec!["IsDeleted".into()],
            deleted_at: None,
        };
        let batch = |emails: Vec<Option<&str>>, deleted: Vec<bool>| {
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from(emails)),
                    Arc::new(BooleanArray::from(deleted)),
                ],
            )
            .unwrap()
        };
        let two = batch(
            vec![None, Some("a@x"), None, None],
            vec![false, false, true, false],
        );
        assert_eq!(null_key(&two, &keys).unwrap(), Some(("email".into(), 2)));
        let deletions_only = batch(vec![Some("a@x"), None], vec![false, true]);
        assert_eq!(null_key(&deletions_only, &keys).unwrap(), None);
    }
}
