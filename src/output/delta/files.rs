//! A history table's data files read one by one, and rewritten, without a query engine.
//!
//! A full refresh that changes many rows of a large history closed their versions through
//! deltalake's MERGE, which joined every changed row (held in memory) against the history:
//! 1M Accounts with every row changed peaked at 3.4 GB. What a refresh changes in a file is
//! known row by row once each current version is known with the file it is in: a version
//! closed, or dropped to be replaced. So the current versions are loaded file by file, and at
//! the commit only the files holding a changed version are read again, changed batch by
//! batch, and written anew ([`super::changes::Fates`]).
//!
//! Only tables whose files hold their rows as they are can be read so: no partition columns,
//! no column mapping (files whose columns have other names) and no deletion vectors (rows
//! hidden by a side file). sfetl's writers make none of them; a history another engine gave
//! them is recorded through the MERGE, as before.

use std::sync::Arc;

use arrow::array::{ArrayRef, new_null_array};
use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use deltalake::DeltaTable;
use deltalake::kernel::Remove;
use deltalake::logstore::ObjectStoreRef;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::DeltaError;
use super::table::TableTarget;

/// Rows a batch read from a file holds (parquet's default of 1,024 made many small batches).
const BATCH_ROWS: usize = 8_192;

/// One data file of the table.
struct File {
    path: Path,
    /// The action that takes it out of the table when it is rewritten.
    remove: Remove,
}

/// The data files of a history table, read with its columns as `schema` types them.
pub(super) struct HistoryFiles {
    store: ObjectStoreRef,
    files: Vec<File>,
    /// The table's columns as the rows read are given (a column a file lacks is null).
    schema: SchemaRef,
}

impl HistoryFiles {
    /// The files of `history`, to be read as `schema`'s columns; `None` when its files cannot
    /// be read as they are (see the module).
    pub(super) async fn of(
        target: &TableTarget,
        history: &DeltaTable,
        schema: &SchemaRef,
    ) -> Result<Option<HistoryFiles>, DeltaError> {
        let snapshot = history.snapshot().map_err(|e| target.error(e))?;
        let metadata = snapshot.metadata();
        let mapped = metadata
            .configuration()
            .get("delta.columnMapping.mode")
            .is_some_and(|mode| mode != "none");
        if mapped || !metadata.partition_columns().is_empty() {
            return Ok(None);
        }
        let mut views = snapshot
            .snapshot()
            .file_views(history.log_store().as_ref(), None);
        let mut files = Vec::new();
        while let Some(view) = views.try_next().await.map_err(|e| target.error(e))? {
            if view.deletion_vector_descriptor().is_some() {
                return Ok(None);
            }
            files.push(File {
                path: view.object_store_path(),
                remove: view.remove_action(true),
            });
        }
        Ok(Some(HistoryFiles {
            store: history.log_store().object_store(None),
            files,
            schema: schema.clone(),
        }))
    }

    /// How many files the table has.
    pub(super) fn len(&self) -> usize {
        self.files.len()
    }

    /// The schema of rows read with `names` (every column for `None`).
    pub(super) fn projected(&self, names: Option<&[String]>) -> Result<SchemaRef, DeltaError> {
        let Some(names) = names else {
            return Ok(self.schema.clone());
        };
        let fields = names
            .iter()
            .map(|n| {
                let field = self.schema.field_with_name(n).map_err(|e| {
                    DeltaError::Rows(format!("the history has no column to compare: {e}"))
                })?;
                Ok(field.clone())
            })
            .collect::<Result<Vec<_>, DeltaError>>()?;
        Ok(Arc::new(Schema::new(fields)))
    }

    /// The rows of file `i`, with the columns `names` (every column for `None`), each as the
    /// table types it, null where the file predates the column. The file is fetched whole
    /// (a data file is at most [`super::commit::TARGET_FILE_BYTES`]) and decoded batch by
    /// batch.
    pub(super) async fn read(
        &self,
        target: &TableTarget,
        i: usize,
        names: Option<&[String]>,
    ) -> Result<impl Iterator<Item = Result<RecordBatch, DeltaError>> + use<>, DeltaError> {
        let file = &self.files[i];
        let (table, shown) = (target.display.clone(), file.path.to_string());
        let error = move |e: &dyn std::fmt::Display| DeltaError::Table {
            path: table.clone(),
            reason: format!("reading its data file {shown}: {e}"),
        };
        let fetched = self.store.get(&file.path).await.map_err(|e| error(&e))?;
        let bytes = fetched.bytes().await.map_err(|e| error(&e))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| error(&e))?;
        let want = self.projected(names)?;
        let theirs = builder.schema().clone();
        let roots: Vec<usize> = (want.fields().iter())
            .filter_map(|f| theirs.index_of(f.name()).ok())
            .collect();
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
        let batches = builder
            .with_projection(mask)
            .with_batch_size(BATCH_ROWS)
            .build()
            .map_err(|e| error(&e))?;
        Ok(batches.map(move |batch| {
            let batch = batch.map_err(|e| error(&e))?;
            conform(&batch, &want).map_err(|e| error(&e))
        }))
    }

    /// The action that removes file `i` from the table.
    pub(super) fn remove(&self, i: usize) -> Remove {
        self.files[i].remove.clone()
    }
}

/// `batch` (as a file holds it) with `want`'s columns and types: a column the file lacks (it
/// was added to the table after the file was written) is null.
fn conform(batch: &RecordBatch, want: &SchemaRef) -> Result<RecordBatch, String> {
    let n = batch.num_rows();
    let columns = want
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => Ok(c.clone()),
            Some(c) => arrow::compute::cast(c, f.data_type()),
            None => Ok(new_null_array(f.data_type(), n)),
        })
        .collect::<Result<Vec<ArrayRef>, _>>()
        .map_err(|e| format!("a history file's column as the table types it: {e}"))?;
    RecordBatch::try_new(want.clone(), columns)
        .map_err(|e| format!("a history file's rows as the table types them: {e}"))
}
