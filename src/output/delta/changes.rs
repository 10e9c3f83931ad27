//! What a full refresh changes in a history table that already holds versions.
//!
//! The new stream table holds every current row. Merged whole into the history, each of its
//! rows was joined against the current versions and every history file was rewritten, however
//! few rows had changed: a second full refresh of 1M Accounts (all fields) took 26 s of CPU
//! and peaked at 5.5 GB. Instead, the current versions' keys, cursors and a 64-bit hash of
//! their values are held (24 bytes a version plus its key's bytes), the new table is streamed
//! past them, and only what differs goes into the MERGE: rows whose key has no current
//! version, or whose cursor or values differ from it, and the keys the new table no longer
//! has, whose versions are closed.
//! A row left out is one the whole-table MERGE would have left as it was.

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::{DataType, Int64Type, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, Rows, SortField};
use datafusion::common::hash_utils::{QualityRandomState, create_hashes};
use datafusion::error::Result;
use datafusion::prelude::{DataFrame, SessionContext, ident};
use deltalake::DeltaTable;
use futures::TryStreamExt;
use hashbrown::hash_table::{Entry, HashTable};
use std::hash::BuildHasher;

use super::history::{IS_CURRENT, VALID_FROM, provider, valid_from_column};
use super::rows::Keys;

/// The rows and keys a full refresh gives the history's MERGE.
#[derive(Clone)]
pub(super) struct Changes {
    /// The new table's schema, as its rows were read.
    pub(super) schema: SchemaRef,
    /// The new table's rows that add a version or correct the current one.
    pub(super) rows: Vec<RecordBatch>,
    /// The keys (one text array per key column, as views) whose current version the new
    /// table lacks.
    pub(super) gone: Vec<ArrayRef>,
}

impl Changes {
    /// Nothing to record: the history already holds the new table as it is.
    pub(super) fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.gone.first().is_none_or(|k| k.is_empty())
    }
}

/// A current version as held while the new table streams past: where its key is in
/// [`CurrentVersions::keys`], its cursor (µs, `i64::MIN` for none) and its values' hash.
#[derive(Clone, Copy)]
struct Version {
    start: u32,
    len: u32,
    from: i64,
    values: u64,
}

impl Version {
    fn key<'a>(&self, keys: &'a [u8]) -> &'a [u8] {
        &keys[self.start as usize..(self.start + self.len) as usize]
    }
}

/// The history's current versions by key: 24 bytes a version in the table plus its key's
/// bytes in one buffer (a map of boxed keys took some 190 bytes a version, 1M Accounts).
struct CurrentVersions {
    keys: Vec<u8>,
    table: HashTable<Version>,
    hasher: QualityRandomState,
}

impl CurrentVersions {
    fn new() -> CurrentVersions {
        CurrentVersions {
            keys: Vec::new(),
            table: HashTable::new(),
            hasher: QualityRandomState::with_seed(0x1319_8a2e_0370_7344),
        }
    }

    /// Holds `key`'s current version (the later one, should a key have two).
    fn insert(&mut self, key: &[u8], from: i64, values: u64) -> Result<()> {
        let too_many = || {
            datafusion::error::DataFusionError::ResourcesExhausted(
                "the history's current keys passed 4 GiB".into(),
            )
        };
        let start = u32::try_from(self.keys.len()).map_err(|_| too_many())?;
        let len = u32::try_from(key.len()).map_err(|_| too_many())?;
        start.checked_add(len).ok_or_else(too_many)?;
        let version = Version {
            start,
            len,
            from,
            values,
        };
        let (keys, hasher) = (&self.keys, &self.hasher);
        match self.table.entry(
            hasher.hash_one(key),
            |v| v.key(keys) == key,
            |v| hasher.hash_one(v.key(keys)),
        ) {
            Entry::Occupied(mut e) => {
                *e.get_mut() = Version {
                    start: e.get().start,
                    ..version
                }
            }
            Entry::Vacant(e) => {
                e.insert(version);
                self.keys.extend_from_slice(key);
            }
        }
        Ok(())
    }

    /// Takes out `key`'s current version, if it has one.
    fn take(&mut self, key: &[u8]) -> Option<Version> {
        let keys = &self.keys;
        let found = self
            .table
            .find_entry(self.hasher.hash_one(key), |v| v.key(keys) == key);
        found.ok().map(|e| e.remove().0)
    }

    /// The keys not taken out.
    fn left(&self) -> impl Iterator<Item = &[u8]> {
        self.table.iter().map(|v| v.key(&self.keys))
    }
}

/// What a column's null hashes as (any value hashing to it is as likely as any collision).
const NULL_HASH: u64 = 0x6a09_e667_f3bc_c908;

/// Turns a batch's rows into what is compared: the key (as text, in arrow's row format, so
/// a composite key is one byte string), the cursor in µs, and a 64-bit hash of the values.
/// A changed row goes unseen only if its hash collides with the old one's (about one chance
/// in 1.8e19).
struct Fingerprint {
    keys: RowConverter,
    key_names: Vec<String>,
    /// The compared columns and the type both sides are cast to.
    value_fields: Vec<(String, DataType)>,
    hasher: QualityRandomState,
}

/// The type both sides' cursors are compared as (the history's `_sfetl_valid_from`).
fn cursor_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The type a column of the stream's type `t` is compared as: text and binary as views, which
/// is how DataFusion reads them from a Delta table (a cast to `Utf8` copied every string).
fn compared_as(t: &DataType) -> DataType {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 => DataType::Utf8View,
        DataType::Binary | DataType::LargeBinary => DataType::BinaryView,
        other => other.clone(),
    }
}

impl Fingerprint {
    /// Compares the stream's scalar columns but sfetl's own (`_sfetl_extracted_at` differs on
    /// every read): the columns the MERGE's in-place correction compares.
    fn new(keys: &Keys, table: &Schema) -> std::result::Result<Fingerprint, ArrowError> {
        let value_fields: Vec<(String, DataType)> = table
            .fields()
            .iter()
            .filter(|f| !f.name().starts_with("_sfetl_") && !f.data_type().is_nested())
            .map(|f| (f.name().clone(), compared_as(f.data_type())))
            .collect();
        let text = vec![SortField::new(DataType::Utf8View); keys.key.len()];
        Ok(Fingerprint {
            keys: RowConverter::new(text)?,
            key_names: keys.key.clone(),
            value_fields,
            // A fixed seed: both sides are hashed in this process, nothing is stored.
            hasher: QualityRandomState::with_seed(0x243f_6a88_85a3_08d3),
        })
    }

    /// The columns a side is read with: keys, its cursor column `from`, the compared values.
    fn columns(&self, from: &str) -> Vec<String> {
        let mut names: Vec<String> = self.key_names.clone();
        names.push(from.to_string());
        for (n, _) in &self.value_fields {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
        names
    }

    /// Each row's key, cursor (µs, `i64::MIN` for none) and values' hash.
    fn read(&self, batch: &RecordBatch, from: &str) -> Result<(Rows, Vec<i64>, Vec<u64>)> {
        let column = |name: &str, to: &DataType| -> Result<ArrayRef> {
            let c = batch.column_by_name(name).ok_or_else(|| {
                ArrowError::SchemaError(format!("the column `{name}` is missing"))
            })?;
            Ok(cast(c, to)?)
        };
        let keys = self
            .key_names
            .iter()
            .map(|k| column(k, &DataType::Utf8View))
            .collect::<Result<Vec<_>>>()?;
        let keys = self.keys.convert_columns(&keys)?;
        let cursor = cast(&column(from, &cursor_type())?, &DataType::Int64)?;
        let cursor = cursor.as_primitive::<Int64Type>();
        let from = (0..batch.num_rows())
            .map(|i| match cursor.is_valid(i) {
                true => cursor.value(i),
                false => i64::MIN,
            })
            .collect();
        // Each column hashed alone (a null as NULL_HASH), then folded in order, so a value
        // moved to another column, or replaced by a null, changes the row's hash.
        let mut row = vec![0u64; batch.num_rows()];
        let mut each = vec![0u64; batch.num_rows()];
        for (name, to) in &self.value_fields {
            let values = column(name, to)?;
            each.fill(NULL_HASH);
            create_hashes([values.as_ref()], &self.hasher, &mut each)?;
            for (r, h) in row.iter_mut().zip(&each) {
                *r = (*r ^ h).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29);
            }
        }
        Ok((keys, from, row))
    }
}

/// A Delta table as a DataFrame of `ctx` (not registered under a name).
async fn read(ctx: &SessionContext, table: &DeltaTable) -> Result<DataFrame> {
    ctx.read_table(provider(ctx, table).await?)
}

/// A full refresh's changes worked out as the new table's rows come: the history's current
/// versions held, each row taken out of them as it passes. Fed by the stream's own rows as
/// they are written ([`super::first`]), or by the committed table read back
/// ([`of_replacement`]).
pub(super) struct Diff {
    print: Fingerprint,
    current: CurrentVersions,
    /// The new rows' cursor column.
    from: String,
    /// The new rows that add a version or correct the current one.
    rows: Vec<RecordBatch>,
}

impl Diff {
    /// Holds the current versions of `history` (which holds versions) for new rows of
    /// `table_schema`.
    pub(super) async fn of_history(
        ctx: &SessionContext,
        history: &DeltaTable,
        keys: &Keys,
        table_schema: &Schema,
    ) -> Result<Diff> {
        let print = Fingerprint::new(keys, table_schema)?;
        let select = |names: Vec<String>| names.iter().map(ident).collect::<Vec<_>>();
        let mut current = CurrentVersions::new();
        let mut versions = read(ctx, history)
            .await?
            .filter(ident(IS_CURRENT).is_true())?
            .select(select(print.columns(VALID_FROM)))?
            .execute_stream()
            .await?;
        while let Some(batch) = versions.try_next().await? {
            let (keys, from, values) = print.read(&batch, VALID_FROM)?;
            for (i, key) in keys.iter().enumerate() {
                current.insert(key.as_ref(), from[i], values[i])?;
            }
        }
        Ok(Diff {
            print,
            current,
            from: valid_from_column(keys).to_string(),
            rows: Vec::new(),
        })
    }

    /// Keeps the rows of `batch` (new rows) whose key has no current version, or whose cursor
    /// or values differ from it.
    pub(super) fn push(&mut self, batch: &RecordBatch) -> Result<()> {
        let (keys, from, values) = self.print.read(batch, &self.from)?;
        let current = &mut self.current;
        let changed: BooleanArray = keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                let was = current.take(key.as_ref());
                Some(was.is_none_or(|v| (v.from, v.values) != (from[i], values[i])))
            })
            .collect();
        if changed.true_count() > 0 {
            self.rows.push(filter_record_batch(batch, &changed)?);
        }
        Ok(())
    }

    /// The changes, the new rows being of `schema`: the rows kept, and the keys no row took
    /// out.
    pub(super) fn finish(self, schema: SchemaRef) -> Result<Changes> {
        let parser = self.print.keys.parser();
        let left = self.current.left().map(|k| parser.parse(k));
        let gone = self.print.keys.convert_rows(left)?;
        Ok(Changes {
            schema,
            rows: self.rows,
            gone,
        })
    }
}

/// What the new stream `table` changes in `history` (which holds versions): see the module.
pub(super) async fn of_replacement(
    ctx: &SessionContext,
    table: &DeltaTable,
    history: &DeltaTable,
    keys: &Keys,
    table_schema: &Schema,
) -> Result<Changes> {
    let mut diff = Diff::of_history(ctx, history, keys, table_schema).await?;
    let new = read(ctx, table).await?;
    let schema = SchemaRef::new(new.schema().as_arrow().clone());
    let mut stream = new.execute_stream().await?;
    while let Some(batch) = stream.try_next().await? {
        diff.push(&batch)?;
    }
    diff.finish(schema)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray, StringViewArray, TimestampMicrosecondArray};
    use arrow::datatypes::Field;

    use super::*;

    fn keys() -> Keys {
        Keys {
            key: vec!["Id".into()],
            cursor: Some("SystemModstamp".into()),
            flags: Vec::new(),
            deleted_at: None,
        }
    }

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("Id", DataType::Utf8, false),
            Field::new("Phone", DataType::Utf8, true),
            Field::new("Fax", DataType::Utf8, true),
            Field::new("Employees", DataType::Int64, true),
            Field::new("SystemModstamp", cursor_type(), true),
            Field::new("_sfetl_extracted_at", cursor_type(), true),
        ])
    }

    /// Phone, Fax, Employees and extraction time of a row.
    type Row<'a> = (Option<&'a str>, Option<&'a str>, Option<i64>, i64);

    /// Rows, each with Id `001` and one cursor.
    fn batch(rows: &[Row]) -> RecordBatch {
        let n = rows.len();
        let ts = |v: Vec<i64>| Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC"));
        RecordBatch::try_new(
            Arc::new(schema()),
            vec![
                Arc::new(StringArray::from(vec!["001"; n])),
                Arc::new(StringArray::from_iter(rows.iter().map(|r| r.0))),
                Arc::new(StringArray::from_iter(rows.iter().map(|r| r.1))),
                Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.2))),
                ts(vec![7; n]),
                ts(rows.iter().map(|r| r.3).collect()),
            ],
        )
        .unwrap()
    }

    #[test]
    fn a_value_moved_nulled_or_changed_changes_the_hash_and_sfetls_columns_do_not() {
        let print = Fingerprint::new(&keys(), &schema()).unwrap();
        let rows = batch(&[
            (Some("555"), None, Some(1), 1),
            (None, Some("555"), Some(1), 1),
            (Some("555"), Some(""), Some(1), 1),
            (Some("555"), None, None, 1),
            (Some("555"), None, Some(2), 1),
            (Some("555"), None, Some(1), 99),
        ]);
        let (keys, from, hashes) = print.read(&rows, "SystemModstamp").unwrap();
        assert_eq!(from, vec![7; 6]);
        assert!(keys.iter().all(|k| k == keys.row(0)));
        let distinct: std::collections::HashSet<u64> = hashes[..5].iter().copied().collect();
        assert_eq!(distinct.len(), 5, "{hashes:?}");
        // Only the extraction differs: the same version.
        assert_eq!(hashes[5], hashes[0]);
    }

    #[test]
    fn text_read_as_views_hashes_as_text_does() {
        let print = Fingerprint::new(&keys(), &schema()).unwrap();
        let rows = batch(&[(Some("555"), None, Some(1), 1), (None, Some("x"), None, 1)]);
        let mut columns = rows.columns().to_vec();
        for c in &mut columns[..3] {
            let text = c.as_string::<i32>();
            *c = Arc::new(StringViewArray::from_iter(text.iter()));
        }
        let fields: Vec<Field> = schema()
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Utf8 => f.as_ref().clone().with_data_type(DataType::Utf8View),
                _ => f.as_ref().clone(),
            })
            .collect();
        let views = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
        let text = print.read(&rows, "SystemModstamp").unwrap();
        let viewed = print.read(&views, "SystemModstamp").unwrap();
        assert_eq!(text.2, viewed.2);
        assert_eq!(text.0.row(1), viewed.0.row(1));
    }

    #[test]
    fn current_versions_are_found_by_key_bytes_and_the_ones_not_taken_are_left() {
        let mut current = CurrentVersions::new();
        for i in 0..10_000u32 {
            current
                .insert(format!("001{i:015}").as_bytes(), i64::from(i), 7)
                .unwrap();
        }
        // A key held twice keeps its later version.
        current.insert(b"001000000000000005", 99, 8).unwrap();
        let v = current.take(b"001000000000000005").unwrap();
        assert_eq!((v.from, v.values), (99, 8));
        assert!(current.take(b"001000000000000005").is_none());
        assert!(current.take(b"00100000000000005").is_none());
        for i in (0..10_000u32).filter(|i| *i != 5 && *i != 42) {
            let v = current.take(format!("001{i:015}").as_bytes()).unwrap();
            assert_eq!((v.from, v.values), (i64::from(i), 7));
        }
        let left: Vec<&[u8]> = current.left().collect();
        assert_eq!(left, [b"001000000000000042".as_slice()]);
    }
}
