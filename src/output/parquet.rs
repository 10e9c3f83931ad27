//! Parquet files on an object store, laid out as `<prefix>/<stream>/<sync-id>/part-NNNNN.parquet`.
//!
//! A file is visible under its final name only once complete: object_store's multipart upload
//! (remote stores) and staging-file rename (local disk) both publish on completion. Row groups are
//! closed at a row or byte bound so memory stays flat. Two metadata columns are appended:
//! `_sfetl_extracted_at` (when the rows were read) and `_sfetl_sync_id` (which run wrote them).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use bytes::Bytes;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression as PqCompression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use tokio::io::AsyncWriteExt;

use super::choices::{Allowed, with_choices};
use super::sync::SyncMarker;
use super::{OutputError, OutputLocation};
use crate::config::{Compression, ParquetEncodings};
use crate::state::OutputCommit;

/// Column with the extraction time of each row.
pub const EXTRACTED_AT: &str = "_sfetl_extracted_at";
/// Column with the sync id that wrote each row.
pub const SYNC_ID: &str = "_sfetl_sync_id";
/// Column added to streams with a cursor: when the row was found deleted (hard deletes and
/// purges reported by the `deleted` endpoint, and reconciliation); null for rows read
/// normally. Here beside the other columns sfetl adds, for the read path that writes it and
/// the Delta merge and `sfetl query` that read it.
pub const DELETED_AT: &str = "_sfetl_deleted_at";

/// Knobs of the Parquet writer.
#[derive(Debug, Clone)]
pub struct ParquetOptions {
    /// Codec.
    pub compression: Compression,
    /// Encodings the writer may choose per column.
    pub encodings: ParquetEncodings,
    /// Rows per row group at most.
    pub max_row_group_rows: usize,
    /// Buffered bytes at which a row group is closed early.
    pub max_row_group_bytes: usize,
    /// Rows at which a file is worth completing at the next checkpoint (before, a checkpoint
    /// leaves it open and its STATE waits): files of a useful size, not one per window.
    pub file_rows: u64,
    /// Encoded bytes at which a file is worth completing, whatever its rows.
    pub file_bytes: usize,
}

impl Default for ParquetOptions {
    fn default() -> Self {
        ParquetOptions {
            compression: Compression::Zstd,
            encodings: ParquetEncodings::Auto,
            max_row_group_rows: 1_000_000,
            // Encoded (compressed) bytes: ~16 MB on disk is ~40 MB of values, about 110k rows of
            // an all-fields Account (DuckDB's own row groups are 122,880 rows) up to 1M rows (the
            // row bound) for narrow selections. Peak memory is about twice this bound (the
            // closed row group is spooled while its pages are freed) plus the column writers'
            // page buffers: 32 MB kept an all-fields Account export just above 200 MB RSS, 24 MB
            // at 167-182 MB, over the 160 MB aimed at. The bound is per run: a read writing
            // several streams at once splits it between them (`Destination::share_row_groups`).
            max_row_group_bytes: 16 << 20,
            file_rows: 1_000_000,
            file_bytes: 64 << 20,
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

/// A new sync id: sortable by time to the millisecond, unique per run
/// (`20261123T110000.123Z-3f9a1c`). Readers take a later id for a later sync (the latest view
/// starts at the newest complete base sync), so two runs in the same second must still sort.
pub fn new_sync_id() -> String {
    let now = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
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
    current: Option<OpenFile>,
    sync_id_array: Option<ArrayRef>,
    /// The sync folder's marker (exports only, see [`ParquetFileWriter::with_sync`]), written
    /// before its first file and again when complete.
    marker: Option<SyncMarker>,
    marker_written: bool,
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
            marker: None,
            marker_written: false,
        }
    }

    /// Makes the folder a sync of an export, with its marker saying how it relates to
    /// earlier syncs: a `base` sync (full refresh, or incremental without state) supersedes
    /// older ones once complete; a resumed one names the STATE commit it continues.
    pub fn with_sync(mut self, base: bool, resumed_from: Option<OutputCommit>) -> Self {
        self.marker = Some(SyncMarker {
            stream: self.stream.clone(),
            sync_id: self.sync_id.clone(),
            base,
            resumed_from,
            complete: false,
            slice: None,
        });
        self
    }

    /// Makes the folder hold one slice of `sfetl plan`. Such a folder is a base only when the
    /// caller says so (a full refresh read whole in one slice): the slices of an incremental
    /// read run at once, in any order, and none supersedes the others.
    pub fn with_slice(mut self, slice: Option<super::sync::SliceMark>) -> Self {
        if let Some(marker) = &mut self.marker {
            marker.slice = slice;
        }
        self
    }

    /// Completes the file in progress and marks the sync complete (every row of the stream is
    /// in its files); readers then treat a complete base sync as superseding older ones.
    pub async fn complete_sync(&mut self) -> Result<(), OutputError> {
        self.complete_file().await?;
        if let Some(marker) = &mut self.marker {
            marker.complete = true;
            marker.write(&self.location).await?;
            self.marker_written = true;
        }
        Ok(())
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

    /// Rows written to the file in progress.
    pub fn rows_in_file(&self) -> u64 {
        self.current.as_ref().map(|c| c.rows).unwrap_or(0)
    }

    /// Whether the file in progress has reached `file_rows` or `file_bytes` (or there is none,
    /// so a commit costs nothing): then a checkpoint completes it.
    pub fn file_is_full(&self) -> bool {
        self.current.as_ref().is_none_or(|f| {
            f.rows >= self.options.file_rows
                || f.writer.bytes_written() + f.writer.in_progress_size() >= self.options.file_bytes
        })
    }

    fn properties(&self, first: &RecordBatch) -> WriterProperties {
        let b = WriterProperties::builder()
            .set_compression(codec(self.options.compression))
            .set_max_row_group_row_count(Some(self.options.max_row_group_rows))
            .set_write_batch_size(WRITE_BATCH)
            .set_created_by(format!("sfetl {}", env!("CARGO_PKG_VERSION")));
        let allowed = Allowed {
            codec_trial: matches!(self.options.compression, Compression::Zstd),
            encodings: self.options.encodings,
            drop_statistics: true,
        };
        with_choices(b, first, allowed).build()
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
        if !self.marker_written
            && let Some(marker) = &self.marker
        {
            marker.write(&self.location).await?;
            self.marker_written = true;
        }
        if self.current.is_none() {
            let path = self
                .folder()
                .join(format!("part-{:05}.parquet", self.next_index));
            self.next_index += 1;
            // Parts of UPLOAD_PART bytes, at most two in flight: what is being uploaded stays
            // bounded whatever the row group size.
            let upload =
                BufWriter::with_capacity(self.location.store.clone(), path.clone(), UPLOAD_PART)
                    .with_max_concurrency(2);
            let writer = ArrowWriter::try_new(
                Spool::default(),
                self.schema.clone(),
                Some(self.properties(batch)),
            )
            .map_err(|e| self.werr(&path, e))?;
            self.current = Some(OpenFile {
                writer,
                upload,
                path,
                rows: 0,
            });
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
        let file = self.current.as_mut().expect("opened above");
        let werr = |e: &dyn std::fmt::Display, path: &Path| OutputError::Write {
            path: path.to_string(),
            reason: e.to_string(),
        };
        file.writer.write(&full).map_err(|e| werr(&e, &file.path))?;
        file.rows += n as u64;
        if file.writer.in_progress_size() >= max_bytes {
            file.writer.flush().map_err(|e| werr(&e, &file.path))?;
        }
        // A row group closed (by the byte bound above or the writer's row bound) sits in the
        // spool: hand it to the upload now.
        file.drain(false).await.map_err(|e| werr(&e, &file.path))?;
        Ok(())
    }

    /// Completes the file in progress (if any rows were written) and returns it; the next
    /// write starts a new file.
    pub async fn complete_file(&mut self) -> Result<Option<CompletedFile>, OutputError> {
        let Some(mut file) = self.current.take() else {
            return Ok(None);
        };
        file.writer.finish().map_err(|e| self.werr(&file.path, e))?;
        file.drain(true)
            .await
            .map_err(|e| self.werr(&file.path, e))?;
        file.upload
            .shutdown()
            .await
            .map_err(|e| self.werr(&file.path, e))?;
        Ok(Some(CompletedFile {
            path: file.path,
            rows: file.rows,
        }))
    }
}

/// Parquet's codec for the config's `compression` (zstd at its fastest standard level), for
/// exports, Delta tables and query results alike.
pub(crate) fn codec(compression: Compression) -> PqCompression {
    match compression {
        Compression::Zstd => PqCompression::ZSTD(ZstdLevel::try_new(1).expect("level 1 is valid")),
        Compression::Snappy => PqCompression::SNAPPY,
        Compression::None => PqCompression::UNCOMPRESSED,
    }
}

/// Values a column writer takes at a time (parquet's default is 1,024): each batch checks the
/// page's size and statistics once, and a read's batches hold up to 8,192 rows (`batch_rows`
/// of the read options). Text pages still end near their size limit (parquet splits a batch of
/// long values by bytes). 2-3% less CPU on narrow and wide exports alike, at the same peak
/// memory.
pub(super) const WRITE_BATCH: usize = 8192;

/// Bytes per upload part (and per local write): object stores need ≥ 5 MB parts.
const UPLOAD_PART: usize = 8 << 20;

/// Spool chunk: a closed row group is cut into pieces of this size as Parquet writes it.
const SPOOL_CHUNK: usize = 1 << 20;

/// One file being written: Parquet's synchronous writer encodes into a [`Spool`], whose chunks
/// go to the object store's upload without being copied again.
///
/// parquet's `AsyncArrowWriter` encodes each closed row group into one growing `Vec` and then
/// copies it into the upload's part buffers (up to 8 parts of 10 MB in flight): two or three
/// copies of a row group alive at once, which made peak memory about three times the row
/// group bound. Here the closed row group exists once, in 1 MB chunks handed over as `Bytes`.
struct OpenFile {
    writer: ArrowWriter<Spool>,
    upload: BufWriter,
    path: Path,
    rows: u64,
}

impl OpenFile {
    /// Hands the spooled chunks to the upload (also the partial last chunk when `all`).
    async fn drain(&mut self, all: bool) -> Result<(), object_store::Error> {
        let spool = self.writer.inner_mut();
        if all && !spool.current.is_empty() {
            let last = std::mem::take(&mut spool.current);
            spool.chunks.push(Bytes::from(last));
        }
        let chunks = std::mem::take(&mut spool.chunks);
        for chunk in chunks {
            self.upload.put(chunk).await?;
        }
        Ok(())
    }
}

/// What Parquet's writer writes into: a list of filled chunks and the one being filled.
#[derive(Default)]
struct Spool {
    chunks: Vec<Bytes>,
    current: Vec<u8>,
}

impl std::io::Write for Spool {
    /// Takes what fits in the current chunk (up to [`SPOOL_CHUNK`] bytes), starting the next
    /// once it is full; `write_all` (how parquet writes) calls again for the rest. A chunk never
    /// grows: one that grew past its room was reallocated, its bytes copied and twice its pages
    /// faulted in (a fifth of an all-fields Parquet read's page faults, when whole pages of a
    /// column chunk were appended to a chunk already part full).
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.current.capacity() == 0 {
            self.current.reserve_exact(SPOOL_CHUNK);
        }
        let n = buf.len().min(SPOOL_CHUNK - self.current.len());
        self.current.extend_from_slice(&buf[..n]);
        if self.current.len() == SPOOL_CHUNK {
            let full = std::mem::take(&mut self.current);
            self.chunks.push(Bytes::from(full));
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod spool_tests {
    use std::io::Write;

    use super::{SPOOL_CHUNK, Spool};

    #[test]
    fn spool_chunks_are_whole_and_hold_every_byte_in_order() {
        let data: Vec<u8> = (0..5 * SPOOL_CHUNK + 123)
            .map(|i| (i % 251) as u8)
            .collect();
        // Writes of many sizes: small ones, one larger than a chunk, one ending a chunk exactly.
        let sizes = [
            1,
            100,
            SPOOL_CHUNK - 101,
            3 * SPOOL_CHUNK / 2,
            7,
            SPOOL_CHUNK,
        ];
        let mut spool = Spool::default();
        let mut at = 0;
        for size in sizes.iter().cycle() {
            let end = (at + size).min(data.len());
            spool.write_all(&data[at..end]).unwrap();
            at = end;
            if at == data.len() {
                break;
            }
        }
        assert_eq!(spool.chunks.len(), 5);
        assert!(spool.chunks.iter().all(|c| c.len() == SPOOL_CHUNK));
        assert_eq!(spool.current.len(), 123);
        assert!(
            spool.current.capacity() <= SPOOL_CHUNK,
            "the last chunk never grew"
        );
        let all: Vec<u8> = spool
            .chunks
            .iter()
            .flatten()
            .copied()
            .chain(spool.current)
            .collect();
        assert_eq!(all, data);
    }
}
