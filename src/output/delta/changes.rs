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
//!
//! Where the history's files can be read as they are ([`super::files`]), each current version
//! is held with the file it is in, and what the new rows make of it (kept, closed, or dropped
//! to be replaced) is noted in place. The new versions are then written as the rows arrive
//! (by [`super::first`]), and the commit rewrites only the files holding a closed or dropped
//! version, batch by batch ([`Fates`]): no row is held in memory, where the MERGE held every
//! changed row and joined them (3.4 GB for 1M wide rows all changed).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, TimestampMicrosecondArray};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::{
    DataType, Int64Type, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType,
};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, Rows, SortField};
use datafusion::common::hash_utils::{QualityRandomState, create_hashes};
use datafusion::error::Result;
use datafusion::prelude::{DataFrame, SessionContext, ident};
use deltalake::DeltaTable;
use futures::{StreamExt, TryStreamExt};
use hashbrown::hash_table::{Entry, HashTable};
use std::hash::BuildHasher;

use super::DeltaError;
use super::commit::FileWriter;
use super::files::HistoryFiles;
use super::history::{self, IS_CURRENT, VALID_FROM, VALID_TO, provider, valid_from_column};
use super::rows::Keys;
use super::table::TableTarget;
use crate::config::Compression;
use deltalake::kernel::{Add, Remove};

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
    /// Where the history's files were read directly: what became of each current version, in
    /// place of `rows` (written as they came) and `gone`.
    pub(super) fates: Option<Arc<Fates>>,
}

impl Changes {
    /// Nothing to record: the history already holds the new table as it is.
    pub(super) fn is_empty(&self) -> bool {
        self.rows.is_empty()
            && self.gone.first().is_none_or(|k| k.is_empty())
            && self.fates.as_ref().is_none_or(|f| f.touched.is_empty())
    }
}

/// What the new rows made of a current version.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fate {
    /// No new row of its key has passed yet.
    Unseen,
    /// Still current: the same values, or a row that adds no version (an older cursor).
    Kept,
    /// Closed at [`Version::from`]: a later version replaces it, or its key is gone.
    Closed,
    /// Dropped from its file: a row with the same cursor and other values replaces it.
    Dropped,
}

/// A current version as held while the new table streams past: where its key is in
/// [`CurrentVersions::keys`], the file holding it ([`NO_FILE`] when not known), its cursor
/// (µs, `i64::MIN` for none; once closed, the instant it is closed at), its values' hash and
/// what became of it.
#[derive(Clone, Copy)]
struct Version {
    start: u32,
    len: u32,
    file: u32,
    fate: Fate,
    from: i64,
    values: u64,
}

/// The file of a version read through DataFusion, which does not say.
const NO_FILE: u32 = u32::MAX;

impl Version {
    fn key<'a>(&self, keys: &'a [u8]) -> &'a [u8] {
        &keys[self.start as usize..(self.start + self.len) as usize]
    }
}

/// The history's current versions by key: 32 bytes a version in the table plus its key's
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

    /// Holds `key`'s current version, in `file` (the later one, should a key have two).
    fn insert(&mut self, key: &[u8], from: i64, values: u64, file: u32) -> Result<()> {
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
            file,
            fate: Fate::Unseen,
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

    /// `key`'s current version, if it has one.
    fn find(&mut self, key: &[u8]) -> Option<&mut Version> {
        let keys = &self.keys;
        self.table
            .find_mut(self.hasher.hash_one(key), |v| v.key(keys) == key)
    }

    /// `key`'s current version, to read.
    fn get(&self, key: &[u8]) -> Option<&Version> {
        let keys = &self.keys;
        self.table
            .find(self.hasher.hash_one(key), |v| v.key(keys) == key)
    }

    /// The keys no new row has passed.
    fn left(&self) -> impl Iterator<Item = &[u8]> {
        (self.table.iter())
            .filter(|v| v.fate == Fate::Unseen)
            .map(|v| v.key(&self.keys))
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

/// The type a column of the stream's type `t` is compared as: with `views`, text and binary
/// as views, which is how DataFusion reads them from a Delta table (a cast to `Utf8` copied
/// every string); else as the stream types it, as the history's files are read directly
/// (casting both sides to views was 7% of a 1M-row all-fields refresh's CPU).
fn compared_as(t: &DataType, views: bool) -> DataType {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 if views => DataType::Utf8View,
        DataType::Binary | DataType::LargeBinary if views => DataType::BinaryView,
        other => other.clone(),
    }
}

impl Fingerprint {
    /// Compares the stream's scalar columns but sfetl's own (`_sfetl_extracted_at` differs on
    /// every read): the columns the MERGE's in-place correction compares; text as views when
    /// `views` ([`compared_as`]).
    fn new(
        keys: &Keys,
        table: &Schema,
        views: bool,
    ) -> std::result::Result<Fingerprint, ArrowError> {
        let value_fields: Vec<(String, DataType)> = table
            .fields()
            .iter()
            .filter(|f| !f.name().starts_with("_sfetl_") && !f.data_type().is_nested())
            .map(|f| (f.name().clone(), compared_as(f.data_type(), views)))
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
        let keys = key_rows(&self.keys, &self.key_names, batch)?;
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

/// The keys of `batch`'s rows (its `names` columns as text), as `converter` turns them into
/// byte strings.
fn key_rows(converter: &RowConverter, names: &[String], batch: &RecordBatch) -> Result<Rows> {
    let keys = names
        .iter()
        .map(|k| {
            let c = batch.column_by_name(k).ok_or_else(|| {
                ArrowError::SchemaError(format!("the key column `{k}` is missing"))
            })?;
            Ok(cast(c, &DataType::Utf8View)?)
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    Ok(converter.convert_columns(&keys)?)
}

/// A Delta table as a DataFrame of `ctx` (not registered under a name).
async fn read(ctx: &SessionContext, table: &DeltaTable) -> Result<DataFrame> {
    ctx.read_table(provider(ctx, table).await?)
}

/// What [`Fingerprint::read`] gives: rows' keys, cursors and values' hashes.
type Printed = (Rows, Vec<i64>, Vec<u64>);

/// How many files are read or rewritten at once: one a core.
fn parallelism() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// The current versions in history file `i` (its columns `names`), fingerprinted.
async fn current_of_file(
    target: &TableTarget,
    files: &HistoryFiles,
    print: &Fingerprint,
    i: usize,
    names: &[String],
) -> std::result::Result<Vec<Printed>, DeltaError> {
    let mut printed = Vec::new();
    for batch in files.read(target, i, Some(names)).await? {
        let batch = batch?;
        let live = (batch.column_by_name(IS_CURRENT))
            .map(|c| c.as_boolean().clone())
            .ok_or_else(|| target.error("the history has no _sfetl_is_current column"))?;
        let batch = filter_record_batch(&batch, &live).map_err(|e| target.error(e))?;
        printed.push(
            print
                .read(&batch, VALID_FROM)
                .map_err(|e| target.error(e))?,
        );
    }
    Ok(printed)
}

/// A full refresh's changes worked out as the new table's rows come: the history's current
/// versions held, each row checked against its key's as it passes. Fed by the stream's own rows
/// as they are written ([`super::first`]), or by the committed table read back
/// ([`of_replacement`]).
pub(super) struct Diff {
    print: Arc<Fingerprint>,
    current: CurrentVersions,
    /// The new rows' cursor column.
    from: String,
    /// The new rows that add a version or correct the current one, when held for a MERGE.
    rows: Vec<RecordBatch>,
    /// The history's files, when its current versions were read from them directly.
    files: Option<Arc<HistoryFiles>>,
}

impl Diff {
    /// Holds the current versions of `history` (which holds versions) for new rows of
    /// `table_schema`: read file by file (each version's file known) when `direct` and the
    /// files allow it, else through DataFusion.
    pub(super) async fn of_history(
        target: &TableTarget,
        history: &DeltaTable,
        keys: &Keys,
        table_schema: &Schema,
        direct: bool,
    ) -> std::result::Result<Diff, DeltaError> {
        let history_schema = history::schema(table_schema);
        let files = match direct {
            true => HistoryFiles::of(target, history, &history_schema)
                .await?
                .map(Arc::new),
            false => None,
        };
        // Files read directly give text as the stream's rows have it; DataFusion as views.
        let print = Fingerprint::new(keys, table_schema, files.is_none());
        let print = Arc::new(print.map_err(|e| target.error(e))?);
        let mut current = CurrentVersions::new();
        let mut names = print.columns(VALID_FROM);
        names.push(IS_CURRENT.to_string());
        let mut hold = |printed: Printed, file: u32| -> std::result::Result<(), DeltaError> {
            let (keys, from, values) = printed;
            for (i, key) in keys.iter().enumerate() {
                let held = current.insert(key.as_ref(), from[i], values[i], file);
                held.map_err(|e| target.error(e))?;
            }
            Ok(())
        };
        if let Some(files) = &files {
            // Files decoded and fingerprinted on every core, held in the table's order.
            let names = Arc::new(names);
            let load = |i: usize| {
                let (files, print, names) = (files.clone(), print.clone(), names.clone());
                let target = target.clone();
                tokio::spawn(
                    async move { current_of_file(&target, &files, &print, i, &names).await },
                )
            };
            let mut loads = futures::stream::iter(0..files.len())
                .map(load)
                .buffered(parallelism())
                .enumerate();
            while let Some((i, loaded)) = loads.next().await {
                for printed in loaded.map_err(|e| target.error(e))?? {
                    hold(printed, i as u32)?;
                }
            }
        } else {
            let ctx = SessionContext::new();
            let err = |e: datafusion::error::DataFusionError| target.error(e);
            let select = names.iter().map(ident).collect::<Vec<_>>();
            let current_only = async {
                let history = read(&ctx, history).await?;
                let current = history.filter(ident(IS_CURRENT).is_true())?;
                current.select(select)?.execute_stream().await
            };
            let mut versions = current_only.await.map_err(err)?;
            while let Some(batch) = versions.try_next().await.map_err(err)? {
                hold(print.read(&batch, VALID_FROM).map_err(err)?, NO_FILE)?;
            }
        }
        Ok(Diff {
            print,
            current,
            from: valid_from_column(keys).to_string(),
            rows: Vec::new(),
            files,
        })
    }

    /// Whether the history's files were read directly: the rows [`Diff::push`] gives are then
    /// written as versions by the caller, and the commit rewrites the files ([`Fates`]).
    pub(super) fn direct(&self) -> bool {
        self.files.is_some()
    }

    /// The rows of `batch` (new rows) that add a version (their key has none, or a newer
    /// cursor) or correct the current one (the same cursor, other values), noting what
    /// becomes of each current version; `None` when there are none.
    pub(super) fn push(&mut self, batch: &RecordBatch) -> Result<Option<RecordBatch>> {
        let (keys, from, values) = self.print.read(batch, &self.from)?;
        let current = &mut self.current;
        let adds: BooleanArray = keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                let Some(v) = current.find(key.as_ref()) else {
                    return Some(true);
                };
                if v.fate != Fate::Unseen {
                    // A key twice in one refresh: added again, as a MERGE of both rows would.
                    return Some(true);
                }
                let (fate, adds) = match (v.from, from[i]) {
                    _ if (v.from, v.values) == (from[i], values[i]) => (Fate::Kept, false),
                    // A null cursor compares as SQL's null does: no change is recorded.
                    (i64::MIN, _) | (_, i64::MIN) => (Fate::Kept, false),
                    (was, now) if now > was => {
                        v.from = now.saturating_sub(1_000);
                        (Fate::Closed, true)
                    }
                    (was, now) if now == was => (Fate::Dropped, true),
                    _ => (Fate::Kept, false),
                };
                v.fate = fate;
                Some(adds)
            })
            .collect();
        Ok(match adds.true_count() {
            0 => None,
            n if n == batch.num_rows() => Some(batch.clone()),
            _ => Some(filter_record_batch(batch, &adds)?),
        })
    }

    /// Holds `rows` (from [`Diff::push`]) for the MERGE.
    pub(super) fn hold(&mut self, rows: RecordBatch) {
        self.rows.push(rows);
    }

    /// The changes, the new rows being of `schema`: the rows held, and the keys no row
    /// passed (closed now, as the refresh ends, when the files are rewritten directly).
    pub(super) fn finish(mut self, schema: SchemaRef) -> Result<Changes> {
        let Some(files) = self.files else {
            let parser = self.print.keys.parser();
            let left = self.current.left().map(|k| parser.parse(k));
            let gone = self.print.keys.convert_rows(left)?;
            return Ok(Changes {
                schema,
                rows: self.rows,
                gone,
                fates: None,
            });
        };
        let now = chrono::Utc::now().timestamp_micros();
        let mut touched = vec![false; files.len()];
        for v in self.current.table.iter_mut() {
            if v.fate == Fate::Unseen {
                (v.fate, v.from) = (Fate::Closed, now);
            }
            if matches!(v.fate, Fate::Closed | Fate::Dropped) {
                touched[v.file as usize] = true;
            }
        }
        let touched = (touched.iter().enumerate())
            .filter_map(|(i, t)| t.then_some(i))
            .collect();
        Ok(Changes {
            schema,
            rows: self.rows,
            gone: Vec::new(),
            fates: Some(Arc::new(Fates {
                files,
                current: self.current,
                print: self.print,
                touched,
            })),
        })
    }
}

/// What a full refresh made of each current version of a history read file by file, and the
/// files holding one it closed or dropped: those the commit rewrites.
pub(super) struct Fates {
    files: Arc<HistoryFiles>,
    current: CurrentVersions,
    print: Arc<Fingerprint>,
    /// The files holding a version closed or dropped, in the table's order.
    touched: Vec<usize>,
}

impl Fates {
    /// File `file`'s `rows` as the refresh leaves them: its current versions closed or dropped
    /// as their fates say, every other row as it was.
    fn apply(
        &self,
        rows: &RecordBatch,
        file: usize,
    ) -> std::result::Result<RecordBatch, ArrowError> {
        let schema = rows.schema();
        let keys = key_rows(&self.print.keys, &self.print.key_names, rows)
            .map_err(|e| ArrowError::ExternalError(Box::new(e)))?;
        let (cur_at, to_at) = (schema.index_of(IS_CURRENT)?, schema.index_of(VALID_TO)?);
        let current = rows.column(cur_at).as_boolean();
        let to = rows
            .column(to_at)
            .as_primitive::<TimestampMicrosecondType>();
        let n = rows.num_rows();
        let (mut keep, mut is_current) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let mut valid_to: Vec<Option<i64>> = to.iter().collect();
        for (i, key) in keys.iter().enumerate() {
            let mine = (current.is_valid(i) && current.value(i))
                .then(|| self.current.get(key.as_ref()))
                .flatten()
                .filter(|v| v.file as usize == file);
            let fate = mine.map(|v| (v.fate, v.from));
            keep.push(!matches!(fate, Some((Fate::Dropped, _))));
            match fate {
                Some((Fate::Closed, at)) => {
                    valid_to[i] = Some(at);
                    is_current.push(Some(false));
                }
                _ => is_current.push(current.is_valid(i).then(|| current.value(i))),
            }
        }
        let mut columns = rows.columns().to_vec();
        let valid_to =
            TimestampMicrosecondArray::from(valid_to).with_data_type(to.data_type().clone());
        columns[to_at] = Arc::new(valid_to);
        columns[cur_at] = Arc::new(BooleanArray::from(is_current));
        let changed = RecordBatch::try_new(schema, columns)?;
        match keep.iter().all(|k| *k) {
            true => Ok(changed),
            false => filter_record_batch(&changed, &BooleanArray::from(keep)),
        }
    }

    /// Writes the files holding a closed or dropped version anew, each to a file of its own
    /// and as many at once as there are cores: returns the actions that remove the old ones
    /// and add the new.
    pub(super) async fn rewrite(
        self: &Arc<Self>,
        target: &TableTarget,
        compression: Compression,
    ) -> std::result::Result<(Vec<Remove>, Vec<Add>), DeltaError> {
        let one = |file: usize| {
            let (fates, target) = (self.clone(), target.clone());
            tokio::spawn(async move { fates.rewrite_file(&target, file, compression).await })
        };
        let mut rewrites = futures::stream::iter(self.touched.clone())
            .map(one)
            .buffered(parallelism());
        let (mut removed, mut added) = (Vec::with_capacity(self.touched.len()), Vec::new());
        while let Some(done) = rewrites.next().await {
            let (remove, adds) = done.map_err(|e| target.error(e))??;
            removed.push(remove);
            added.extend(adds);
        }
        Ok((removed, added))
    }

    /// Writes file `file` anew as the refresh leaves it.
    async fn rewrite_file(
        &self,
        target: &TableTarget,
        file: usize,
        compression: Compression,
    ) -> std::result::Result<(Remove, Vec<Add>), DeltaError> {
        let mut out = FileWriter::new(&self.files.projected(None)?, compression);
        for batch in self.files.read(target, file, None).await? {
            let batch = self.apply(&batch?, file).map_err(|e| target.error(e))?;
            if batch.num_rows() > 0 {
                out.write(target, &batch).await?;
            }
        }
        Ok((self.files.remove(file), out.close(target).await?))
    }

    /// How many files the commit rewrites.
    pub(super) fn rewritten(&self) -> usize {
        self.touched.len()
    }
}

/// What the new stream `table` changes in `history` (which holds versions): see the module.
pub(super) async fn of_replacement(
    target: &TableTarget,
    ctx: &SessionContext,
    table: &DeltaTable,
    history: &DeltaTable,
    keys: &Keys,
    table_schema: &Schema,
) -> std::result::Result<Changes, DeltaError> {
    let err = |e: datafusion::error::DataFusionError| target.error(e);
    let mut diff = Diff::of_history(target, history, keys, table_schema, false).await?;
    let new = read(ctx, table).await.map_err(err)?;
    let schema = SchemaRef::new(new.schema().as_arrow().clone());
    let mut stream = new.execute_stream().await.map_err(err)?;
    while let Some(batch) = stream.try_next().await.map_err(err)? {
        if let Some(rows) = diff.push(&batch).map_err(err)? {
            diff.hold(rows);
        }
    }
    diff.finish(schema).map_err(err)
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
        let rows = batch(&[
            (Some("555"), None, Some(1), 1),
            (None, Some("555"), Some(1), 1),
            (Some("555"), Some(""), Some(1), 1),
            (Some("555"), None, None, 1),
            (Some("555"), None, Some(2), 1),
            (Some("555"), None, Some(1), 99),
        ]);
        // Text compared as views (read through DataFusion) and as it is (read directly).
        for views in [true, false] {
            let print = Fingerprint::new(&keys(), &schema(), views).unwrap();
            let (keys, from, hashes) = print.read(&rows, "SystemModstamp").unwrap();
            assert_eq!(from, vec![7; 6]);
            assert!(keys.iter().all(|k| k == keys.row(0)));
            let distinct: std::collections::HashSet<u64> = hashes[..5].iter().copied().collect();
            assert_eq!(distinct.len(), 5, "views {views}: {hashes:?}");
            // Only the extraction differs: the same version.
            assert_eq!(hashes[5], hashes[0]);
        }
    }

    #[test]
    fn text_read_as_views_hashes_as_text_does() {
        let print = Fingerprint::new(&keys(), &schema(), true).unwrap();
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
    fn current_versions_are_found_by_key_bytes_and_the_ones_not_passed_are_left() {
        let mut current = CurrentVersions::new();
        for i in 0..10_000u32 {
            current
                .insert(format!("001{i:015}").as_bytes(), i64::from(i), 7, i / 100)
                .unwrap();
        }
        // A key held twice keeps its later version, and the file that holds it.
        current.insert(b"001000000000000005", 99, 8, 3).unwrap();
        let v = current.find(b"001000000000000005").unwrap();
        assert_eq!((v.from, v.values, v.file, v.fate), (99, 8, 3, Fate::Unseen));
        v.fate = Fate::Kept;
        assert!(current.find(b"00100000000000005").is_none());
        for i in (0..10_000u32).filter(|i| *i != 5 && *i != 42) {
            let v = current.find(format!("001{i:015}").as_bytes()).unwrap();
            assert_eq!((v.from, v.values, v.file), (i64::from(i), 7, i / 100));
            v.fate = Fate::Closed;
        }
        let left: Vec<&[u8]> = current.left().collect();
        assert_eq!(left, [b"001000000000000042".as_slice()]);
    }
}
