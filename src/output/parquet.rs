//! Parquet files on an object store, laid out as `<prefix>/<stream>/<sync-id>/part-NNNNN.parquet`.
//!
//! A file is visible under its final name only once complete: object_store's multipart upload
//! (remote stores) and staging-file rename (local disk) both publish on completion. Row groups are
//! closed at a row or byte bound so memory stays flat. Two metadata columns are appended:
//! `_sfetl_extracted_at` (when the rows were read) and `_sfetl_sync_id` (which run wrote them).

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use object_store::buffered::BufWriter;
use object_store::path::Path;
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::{Compression as PqCompression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::{OutputError, OutputLocation};
use crate::config::Compression;

/// Column with the extraction time of each row.
pub const EXTRACTED_AT: &str = "_sfetl_extracted_at";
/// Column with the sync id that wrote each row.
pub const SYNC_ID: &str = "_sfetl_sync_id";

/// Knobs of the Parquet writer.
#[derive(Debug, Clone)]
pub struct ParquetOptions {
    /// Codec.
    pub compression: Compression,
    /// Rows per row group at most.
    pub max_row_group_rows: usize,
    /// Buffered bytes at which a row group is closed early.
    pub max_row_group_bytes: usize,
}

impl Default for ParquetOptions {
    fn default() -> Self {
        ParquetOptions {
            compression: Compression::Zstd,
            max_row_group_rows: 1_000_000,
            max_row_group_bytes: 64 << 20,
        }
    }
}

/// A file that is complete and visible.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletedFile {
    /// Its path in the store.
    pub path: Path,
    /// Rows it holds.
    pub rows: u64,
}

/// A new sync id: sortable by time, unique per run (`20261123T110000Z-3f9a1c`).
pub fn new_sync_id() -> String {
    let now = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    format!("{now}-{:06x}", rand::random::<u32>() & 0xff_ffff)
}

/// Writes one stream's batches as consecutive Parquet files of one sync.
pub struct ParquetFileWriter {
    location: OutputLocation,
    stream: String,
    sync_id: String,
    schema: SchemaRef,
    options: ParquetOptions,
    next_index: u32,
    current: Option<(AsyncArrowWriter<BufWriter>, Path, u64)>,
    sync_id_array: Option<ArrayRef>,
}

impl ParquetFileWriter {
    /// A writer for `stream` under `location`, with the stream's Arrow schema (the metadata
    /// columns are added).
    pub fn new(
        location: OutputLocation,
        stream: &str,
        sync_id: &str,
        schema: SchemaRef,
        options: ParquetOptions,
    ) -> ParquetFileWriter {
        let mut fields: Vec<Arc<Field>> = schema.fields().iter().cloned().collect();
        fields.push(Arc::new(Field::new(
            EXTRACTED_AT,
            DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC"))),
            false,
        )));
        fields.push(Arc::new(Field::new(SYNC_ID, DataType::Utf8, false)));
        ParquetFileWriter {
            location,
            stream: stream.to_string(),
            sync_id: sync_id.to_string(),
            // The stream's schema metadata (a mapped stream's `sfetl.primary_key`) goes into
            // the file, where `sfetl query` reads it.
            schema: Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone())),
            options,
            next_index: 0,
            current: None,
            sync_id_array: None,
        }
    }

    /// Where the committed output stands: this sync's id and how many of its files are
    /// complete. STATE carries it, so a run resumed after a crash can remove what the crashed
    /// run published after its last STATE.
    pub fn position(&self) -> (String, u32) {
        let open = u32::from(self.current.is_some());
        (self.sync_id.clone(), self.next_index - open)
    }

    /// The folder this writer's files go to.
    pub fn folder(&self) -> Path {
        self.location.child(&[&self.stream, &self.sync_id])
    }

    /// The schema of the written files.
    pub fn file_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Rows written to the file in progress.
    pub fn rows_in_file(&self) -> u64 {
        self.current.as_ref().map(|c| c.2).unwrap_or(0)
    }

    fn properties(&self) -> WriterProperties {
        let codec = match self.options.compression {
            Compression::Zstd => {
                PqCompression::ZSTD(ZstdLevel::try_new(1).expect("level 1 is valid"))
            }
            Compression::Snappy => PqCompression::SNAPPY,
            Compression::None => PqCompression::UNCOMPRESSED,
        };
        WriterProperties::builder()
            .set_compression(codec)
            .set_max_row_group_row_count(Some(self.options.max_row_group_rows))
            .set_created_by(format!("sfetl {}", env!("CARGO_PKG_VERSION")))
            .build()
    }

    fn werr(&self, path: &Path, e: impl std::fmt::Display) -> OutputError {
        OutputError::Write {
            path: format!("{}/{}", self.location.display, path),
            reason: e.to_string(),
        }
    }

    /// Appends a batch of the stream's schema, extracted at `extracted_at_us` (epoch µs).
    pub async fn write(
        &mut self,
        batch: &RecordBatch,
        extracted_at_us: i64,
    ) -> Result<(), OutputError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if self.current.is_none() {
            let path = self
                .folder()
                .join(format!("part-{:05}.parquet", self.next_index));
            self.next_index += 1;
            let upload = BufWriter::new(self.location.store.clone(), path.clone());
            let writer =
                AsyncArrowWriter::try_new(upload, self.schema.clone(), Some(self.properties()))
                    .map_err(|e| self.werr(&path, e))?;
            self.current = Some((writer, path, 0));
        }
        let n = batch.num_rows();
        let sync_ids = match &self.sync_id_array {
            Some(a) if a.len() >= n => a.slice(0, n),
            _ => {
                let a: ArrayRef =
                    Arc::new(StringArray::from(vec![self.sync_id.as_str(); n.max(8192)]));
                self.sync_id_array = Some(a.clone());
                a.slice(0, n)
            }
        };
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        columns.push(Arc::new(
            TimestampMicrosecondArray::from(vec![extracted_at_us; n]).with_timezone("UTC"),
        ));
        columns.push(sync_ids);
        let full =
            RecordBatch::try_new(self.schema.clone(), columns).map_err(|e| OutputError::Write {
                path: self.folder().to_string(),
                reason: e.to_string(),
            })?;
        let max_bytes = self.options.max_row_group_bytes;
        let (writer, path, rows) = self.current.as_mut().expect("opened above");
        writer.write(&full).await.map_err(|e| OutputError::Write {
            path: path.to_string(),
            reason: e.to_string(),
        })?;
        *rows += n as u64;
        if writer.in_progress_size() >= max_bytes {
            writer.flush().await.map_err(|e| OutputError::Write {
                path: path.to_string(),
                reason: e.to_string(),
            })?;
        }
        Ok(())
    }

    /// Completes the file in progress (if any rows were written) and returns it; the next
    /// write starts a new file.
    pub async fn complete_file(&mut self) -> Result<Option<CompletedFile>, OutputError> {
        let Some((writer, path, rows)) = self.current.take() else {
            return Ok(None);
        };
        writer.close().await.map_err(|e| self.werr(&path, e))?;
        Ok(Some(CompletedFile { path, rows }))
    }
}
