//! Commits that are not MERGEs: creating a table, replacing it after a full refresh, a STATE
//! with no rows, and schema evolution; and the data files a full refresh writes before its
//! commit.

use std::collections::HashMap;
use std::num::NonZeroU64;

use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use deltalake::DeltaTable;
use deltalake::datafile::writer::{DeltaWriter, WriterConfig};
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Add, MetadataExt, Remove, StructField, StructType};
use deltalake::protocol::{DeltaOperation, SaveMode};
use futures::TryStreamExt;

use super::DeltaError;
use super::layout::writer_properties;
use super::rows::compare;
use super::state::CommitTag;
use super::table::TableTarget;
use crate::config::Compression;

/// Size at which a data file is closed and the next begun: large enough for efficient scans,
/// small enough that a MERGE touching a few rows rewrites little.
pub const TARGET_FILE_BYTES: u64 = 32 << 20;

/// Rows at which a full refresh closes a data file: a 1M-row table is 16 files, so a MERGE
/// of changes within one key range (recent records, say) rewrites a sixteenth of it, while a
/// scan still reads files of megabytes (a 7-field Account file is about 2 MB, an all-fields
/// one about 15 MB).
pub const FILE_ROWS: usize = 65_536;

/// Delta's table property bounding the files a MERGE writes (deltalake's default is 100 MB,
/// which would merge a table's rewritten files into one and undo the layout).
pub const PROP_TARGET_FILE_SIZE: &str = "delta.targetFileSize";

/// The target file size of a table created empty (by an incremental read), before any data
/// says how many bytes [`FILE_ROWS`] rows take: about 65,536 rows of a dozen columns.
const NEW_TABLE_FILE_BYTES: u64 = 4 << 20;

/// Bytes that [`FILE_ROWS`] rows take, from `bytes` of files holding `rows` rows, within 1 MB
/// and [`TARGET_FILE_BYTES`]: the target of MERGE outputs and compaction, so their files hold
/// about as many rows as a full refresh's.
pub fn file_bytes_for(bytes: u64, rows: u64) -> NonZeroU64 {
    let per_file = (bytes * FILE_ROWS as u64)
        .checked_div(rows)
        .unwrap_or(NEW_TABLE_FILE_BYTES);
    NonZeroU64::new(per_file.clamp(1 << 20, TARGET_FILE_BYTES)).expect("at least 1 MB")
}

/// Delta's schema for an Arrow schema.
pub fn delta_schema(schema: &Schema) -> Result<StructType, DeltaError> {
    use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
    schema
        .try_into_kernel()
        .map_err(|e| DeltaError::Rows(format!("the stream's schema has no Delta form: {e}")))
}

/// Creates the table with `schema` and `props`, empty.
pub async fn create(
    target: &TableTarget,
    schema: &SchemaRef,
    props: HashMap<String, String>,
) -> Result<DeltaTable, DeltaError> {
    let fields: Vec<StructField> = delta_schema(schema)?.fields().cloned().collect();
    let size = (
        PROP_TARGET_FILE_SIZE.to_string(),
        NEW_TABLE_FILE_BYTES.to_string(),
    );
    target
        .unloaded()?
        .create()
        .with_columns(fields)
        .with_configuration(props.into_iter().chain([size]).map(|(k, v)| (k, Some(v))))
        // sfetl's own properties are not Delta's.
        .with_raise_if_key_not_exists(false)
        .await
        .map_err(|e| conflict_or_error(target, e))
}

/// Creates the table, or, when another writer (a concurrent slice) created it first, opens
/// theirs after checking it is `owner`'s with the same key. Their create may have won the
/// commit itself (a conflict) or been seen before ours (deltalake's "a table already exists
/// at that location"); either way the table is there to use.
pub async fn create_or_theirs(
    target: &TableTarget,
    schema: &SchemaRef,
    props: HashMap<String, String>,
    owner: &str,
    key: &[String],
) -> Result<DeltaTable, DeltaError> {
    match create(target, schema, props).await {
        Ok(t) => Ok(t),
        Err(e) => match target.open().await? {
            Some(theirs) => {
                super::table::check_owner(target, &theirs, owner, key)?;
                Ok(theirs)
            }
            None => Err(e),
        },
    }
}

/// A commit that lost a race to another writer's as [`DeltaError::Conflict`] (the caller may
/// load the table again and go on), any other failure as the table's error.
pub fn conflict_or_error(target: &TableTarget, e: deltalake::DeltaTableError) -> DeltaError {
    match e {
        deltalake::DeltaTableError::Transaction {
            source: deltalake::kernel::transaction::TransactionError::CommitConflict(c),
        } => DeltaError::Conflict {
            path: target.display.clone(),
            reason: c.to_string(),
        },
        other => target.error(other),
    }
}

/// Data files of a full refresh, written as rows arrive and committed only at the end.
///
/// A file is closed at [`FILE_ROWS`] rows (or [`TARGET_FILE_BYTES`]): rows arrive roughly in
/// key order, so each file holds a narrow key range, and a later MERGE that changes rows of
/// one range rewrites one file of many rather than the whole table.
pub struct FileWriter {
    schema: SchemaRef,
    compression: Compression,
    /// The store and the files' settings, judged from the first rows written: none before.
    open: Option<Open>,
    /// Rows in the file being written.
    rows: usize,
    /// Files already closed.
    done: Vec<Add>,
}

/// Where a [`FileWriter`] writes, how, and the file it is writing.
struct Open {
    store: deltalake::logstore::ObjectStoreRef,
    config: WriterConfig,
    writer: DeltaWriter,
}

impl Open {
    /// Files into `target`'s folder, each column judged from `first`.
    fn new(
        target: &TableTarget,
        schema: &SchemaRef,
        compression: Compression,
        first: &RecordBatch,
    ) -> Result<Open, DeltaError> {
        let store = target.unloaded()?.object_store();
        let config = WriterConfig::new(
            schema.clone(),
            Vec::new(),
            Some(writer_properties(compression, Some(first))),
            NonZeroU64::new(TARGET_FILE_BYTES),
            None,
            // Statistics on the first 32 columns (Delta's default): the key comes first.
            Default::default(),
            None,
        );
        Ok(Open {
            writer: DeltaWriter::new(store.clone(), config.clone()),
            store,
            config,
        })
    }
}

impl FileWriter {
    /// A writer of files of `schema`'s rows; nothing is opened before the first rows, which
    /// settle each column's settings.
    pub fn new(schema: &SchemaRef, compression: Compression) -> FileWriter {
        FileWriter {
            schema: schema.clone(),
            compression,
            open: None,
            rows: 0,
            done: Vec::new(),
        }
    }

    /// Appends rows of the table's schema into `target`'s folder, closing a file each
    /// [`FILE_ROWS`] rows.
    pub async fn write(
        &mut self,
        target: &TableTarget,
        rows: &RecordBatch,
    ) -> Result<(), DeltaError> {
        let open = match &mut self.open {
            Some(open) => open,
            None => self
                .open
                .insert(Open::new(target, &self.schema, self.compression, rows)?),
        };
        let mut offset = 0;
        while offset < rows.num_rows() {
            let take = (FILE_ROWS - self.rows).min(rows.num_rows() - offset);
            let part = rows.slice(offset, take);
            open.writer
                .write(&part)
                .await
                .map_err(|e| target.error(e))?;
            offset += take;
            self.rows += take;
            if self.rows == FILE_ROWS {
                let next = DeltaWriter::new(open.store.clone(), open.config.clone());
                let full = std::mem::replace(&mut open.writer, next);
                self.done
                    .extend(full.close().await.map_err(|e| target.error(e))?);
                self.rows = 0;
            }
        }
        Ok(())
    }

    /// Completes the last file; returns every file written (none if no rows were).
    pub async fn close(mut self, target: &TableTarget) -> Result<Vec<Add>, DeltaError> {
        if let Some(open) = self.open {
            let last = open.writer.close().await.map_err(|e| target.error(e))?;
            self.done.extend(last);
        }
        Ok(self.done)
    }

    /// [`FileWriter::close`], and a writer of the next files with the settings these were
    /// judged to have (a later commit's rows may be too few to judge).
    pub async fn close_keeping(
        self,
        target: &TableTarget,
    ) -> Result<(Vec<Add>, FileWriter), DeltaError> {
        let open = self.open.as_ref().map(|o| Open {
            writer: DeltaWriter::new(o.store.clone(), o.config.clone()),
            store: o.store.clone(),
            config: o.config.clone(),
        });
        let next = FileWriter {
            schema: self.schema.clone(),
            compression: self.compression,
            open,
            rows: 0,
            done: Vec::new(),
        };
        Ok((self.close(target).await?, next))
    }
}

/// Commits `actions` to `table` with `tag`'s transaction and STATE.
async fn commit(
    target: &TableTarget,
    mut table: DeltaTable,
    actions: Vec<Action>,
    operation: DeltaOperation,
    tag: &CommitTag,
) -> Result<DeltaTable, DeltaError> {
    let props: CommitProperties = tag.properties();
    let snapshot = table.snapshot().map_err(|e| target.error(e))?;
    CommitBuilder::from(props)
        .with_actions(actions)
        .build(Some(snapshot), table.log_store(), operation)
        .await
        .map_err(|e| conflict_or_error(target, e))?;
    table.update_state().await.map_err(|e| target.error(e))?;
    Ok(table)
}

/// Replaces every row of `table` with `files` in one commit (with the stream's schema and
/// properties, which a full refresh may change).
pub async fn replace(
    target: &TableTarget,
    table: DeltaTable,
    schema: &SchemaRef,
    props: HashMap<String, String>,
    files: Vec<Add>,
    tag: &CommitTag,
) -> Result<DeltaTable, DeltaError> {
    let snapshot = table.snapshot().map_err(|e| target.error(e))?;
    let mut actions: Vec<Action> = snapshot
        .snapshot()
        .file_views(table.log_store().as_ref(), None)
        .map_ok(|f| Action::Remove(f.remove_action(true)))
        .try_collect()
        .await
        .map_err(|e| target.error(e))?;
    let mut metadata = snapshot
        .metadata()
        .clone()
        .with_schema(&delta_schema(schema)?)
        .map_err(|e| target.error(e))?;
    let bytes: u64 = files.iter().map(|f| f.size.max(0) as u64).sum();
    let rows: u64 = files.iter().filter_map(file_rows).sum();
    let size = file_bytes_for(bytes, rows).to_string();
    for (k, v) in props
        .into_iter()
        .chain([(PROP_TARGET_FILE_SIZE.to_string(), size)])
    {
        metadata = metadata.add_config_key(k, v).map_err(|e| target.error(e))?;
    }
    actions.push(Action::Metadata(metadata));
    actions.extend(files.into_iter().map(Action::Add));
    let operation = DeltaOperation::Write {
        mode: SaveMode::Overwrite,
        partition_by: None,
        predicate: None,
    };
    commit(target, table, actions, operation, tag).await
}

/// Rows of a data file, from its statistics.
fn file_rows(add: &Add) -> Option<u64> {
    let stats: serde_json::Value = serde_json::from_str(add.stats.as_deref()?).ok()?;
    stats["numRecords"].as_u64()
}

/// Whether the table holds any data file (a table with none holds no rows).
pub async fn holds_files(target: &TableTarget, table: &DeltaTable) -> Result<bool, DeltaError> {
    let snapshot = table.snapshot().map_err(|e| target.error(e))?;
    let first = snapshot
        .snapshot()
        .file_views(table.log_store().as_ref(), None)
        .try_next()
        .await
        .map_err(|e| target.error(e))?;
    Ok(first.is_some())
}

/// Records a STATE in the table without rows (the windows since the last commit were empty).
pub async fn state_only(
    target: &TableTarget,
    table: DeltaTable,
    tag: &CommitTag,
) -> Result<DeltaTable, DeltaError> {
    append(target, table, Vec::new(), tag).await
}

/// Adds `files` (written by a [`FileWriter`]) to the table's rows in one commit with `tag`.
pub async fn append(
    target: &TableTarget,
    table: DeltaTable,
    files: Vec<Add>,
    tag: &CommitTag,
) -> Result<DeltaTable, DeltaError> {
    let operation = DeltaOperation::Write {
        mode: SaveMode::Append,
        partition_by: None,
        predicate: None,
    };
    let actions = files.into_iter().map(Action::Add).collect();
    commit(target, table, actions, operation, tag).await
}

/// Replaces the files `removed` with `added` in one commit with `tag`: a history's versions
/// closed and added by a full refresh. Recorded as a MERGE over the whole table, so that
/// another writer's commit of data files meanwhile is a conflict (the caller works the
/// changes out again on top of it).
pub async fn rewrite(
    target: &TableTarget,
    table: DeltaTable,
    removed: Vec<Remove>,
    added: Vec<Add>,
    tag: &CommitTag,
) -> Result<DeltaTable, DeltaError> {
    let operation = DeltaOperation::Merge {
        predicate: None,
        merge_predicate: None,
        matched_predicates: Vec::new(),
        not_matched_predicates: Vec::new(),
        not_matched_by_source_predicates: Vec::new(),
    };
    let actions = (removed.into_iter().map(Action::Remove))
        .chain(added.into_iter().map(Action::Add))
        .collect();
    commit(target, table, actions, operation, tag).await
}

/// Adds the stream's new columns to the table (old rows read them as null); refuses a column
/// whose type changed, naming it and both types.
pub async fn evolve(
    target: &TableTarget,
    table: DeltaTable,
    schema: &SchemaRef,
) -> Result<DeltaTable, DeltaError> {
    let existing = table
        .snapshot()
        .map_err(|e| target.error(e))?
        .snapshot()
        .arrow_schema();
    let ours: Schema = schema.as_ref().clone();
    let (added, changed) = compare(&existing, &ours);
    if let Some((field, old, new)) = changed.into_iter().next() {
        return Err(DeltaError::TypeChange {
            path: target.display.clone(),
            field,
            table_type: old.to_string(),
            new_type: new.to_string(),
        });
    }
    if added.is_empty() {
        return Ok(table);
    }
    let fields: Vec<StructField> = delta_schema(&Schema::new(added))?
        .fields()
        .cloned()
        .collect();
    table
        .add_columns()
        .with_fields(fields)
        .await
        .map_err(|e| target.error(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field};
    use std::sync::Arc;

    /// The table `name` in the folder `dir`.
    fn table_in(dir: &tempfile::TempDir, name: &str) -> TableTarget {
        let location =
            crate::output::open_location(dir.path().to_str().unwrap(), &Default::default())
                .unwrap();
        TableTarget::new(&location, name).unwrap()
    }

    #[tokio::test]
    async fn a_full_refresh_closes_a_file_every_file_rows_rows() {
        let dir = tempfile::tempdir().unwrap();
        let target = table_in(&dir, "T");
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
        let mut files = FileWriter::new(&schema, Compression::Zstd);
        // 150,000 rows in batches that do not line up with the file boundary.
        let mut next = 0i64;
        for size in [50_000i64, 40_000, 60_000] {
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(Int64Array::from_iter_values(next..next + size))],
            )
            .unwrap();
            files.write(&target, &batch).await.unwrap();
            next += size;
        }
        let adds = files.close(&target).await.unwrap();
        let rows: Vec<i64> = adds
            .iter()
            .map(|a| {
                let stats: serde_json::Value =
                    serde_json::from_str(a.stats.as_deref().unwrap()).unwrap();
                stats["numRecords"].as_i64().unwrap()
            })
            .collect();
        assert_eq!(rows, [65_536, 65_536, 150_000 - 2 * 65_536]);
        // Each file holds one contiguous range of the rows, in order.
        let mins: Vec<i64> = adds
            .iter()
            .map(|a| {
                let stats: serde_json::Value =
                    serde_json::from_str(a.stats.as_deref().unwrap()).unwrap();
                stats["minValues"]["n"].as_i64().unwrap()
            })
            .collect();
        assert_eq!(mins, [0, 65_536, 131_072]);
    }

    #[tokio::test]
    async fn a_full_refresh_writes_columns_as_an_export_does_and_keeps_every_statistic() {
        use crate::output::tests::{data_encodings, random_below};
        use arrow::array::{Float64Array, StringArray};
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let dir = tempfile::tempdir().unwrap();
        let target = table_in(&dir, "Account");
        let n = 20_000;
        let mut random = random_below(7);
        let schema = Arc::new(Schema::new(vec![
            Field::new("Id", DataType::Utf8, true),
            Field::new("Name", DataType::Utf8, true),
            Field::new("Type", DataType::Utf8, true),
            Field::new("Latitude", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| format!("001{i:015}")),
                )),
                // Distinct names in no order: a dictionary of them (200 KB) would never
                // reach parquet's 1 MB fallback, so every value was hashed into it.
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| format!("Acme {}", (i * 7919) % n)),
                )),
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| ["Customer", "Partner", "Prospect"][i % 3]),
                )),
                // Coordinates: zstd barely shrinks them.
                Arc::new(Float64Array::from_iter_values(
                    (0..n).map(|_| random(180_000_000) as f64 / 1e6 - 90.0),
                )),
            ],
        )
        .unwrap();
        let mut files = FileWriter::new(&schema, Compression::Zstd);
        files.write(&target, &batch).await.unwrap();
        let adds = files.close(&target).await.unwrap();
        assert_eq!(adds.len(), 1);
        let file = std::fs::File::open(dir.path().join("Account").join(&adds[0].path)).unwrap();
        let meta = SerializedFileReader::new(file).unwrap().metadata().clone();
        let chunks: Vec<(String, String, String)> = meta
            .row_group(0)
            .columns()
            .iter()
            .map(|c| {
                (
                    c.column_path().string(),
                    data_encodings(c),
                    format!("{:?}", c.compression()),
                )
            })
            .collect();
        let expect = |name: &str, enc: &str, codec: &str| {
            (name.to_string(), enc.to_string(), codec.to_string())
        };
        assert_eq!(
            chunks,
            [
                // Mostly distinct: PLAIN only (no delta encodings in a table), zstd where
                // it pays.
                expect("Id", "PLAIN", "ZSTD(ZstdLevel(1))"),
                expect("Name", "PLAIN", "ZSTD(ZstdLevel(1))"),
                expect("Type", "PLAIN,RLE_DICTIONARY", "ZSTD(ZstdLevel(1))"),
                expect("Latitude", "PLAIN", "UNCOMPRESSED"),
            ]
        );
        // Unlike an export's, text in no order keeps its statistics: the log's come from them.
        let stats: serde_json::Value =
            serde_json::from_str(adds[0].stats.as_deref().unwrap()).unwrap();
        assert_eq!(stats["minValues"]["Name"], "Acme 0");
        assert_eq!(stats["maxValues"]["Name"], "Acme 9999");
        assert_eq!(stats["nullCount"]["Type"], 0);
    }

    #[tokio::test]
    async fn a_table_another_writer_created_first_is_used_and_another_streams_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = table_in(&dir, "Contact_history");
        let schema = Arc::new(Schema::new(vec![Field::new("Id", DataType::Utf8, true)]));
        let key = vec!["Id".to_string()];
        let props = |owner: &str| super::super::table::properties(owner, &key, None);
        // The other writer's create: the table now exists where ours is about to go.
        create(&target, &schema, props("Contact_history"))
            .await
            .unwrap();
        let err = create(&target, &schema, props("Contact_history"))
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("already exists"), "{err}");
        let theirs = create_or_theirs(
            &target,
            &schema,
            props("Contact_history"),
            "Contact_history",
            &key,
        )
        .await
        .unwrap();
        assert_eq!(theirs.version(), Some(0));
        let refused = create_or_theirs(
            &target,
            &schema,
            props("Lead_history"),
            "Lead_history",
            &key,
        )
        .await
        .err()
        .unwrap();
        assert!(refused.to_string().contains("Contact_history"), "{refused}");
    }
}
