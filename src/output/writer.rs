//! [`StreamWriter`]: the one interface every output of a read implements (RECORD lines, an
//! Arrow IPC stream, Parquet files, Delta tables), so the read path is written once and
//! says only *when* rows are written and made durable, never *how*.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::delta::DeltaDestination;
use super::stdout::{Budgeted, Out, piece_buffer};
use super::{OutputError, OutputLocation, ParquetFileWriter, ParquetOptions, RecordsRenderer};
use crate::state::{OutputCommit, StreamState, TableCommit};

/// Where one stream's batches go, and how they become durable.
#[async_trait]
pub trait StreamWriter: Send {
    /// Appends a batch of the stream's schema, extracted from Salesforce at `extracted_at`.
    async fn write(
        &mut self,
        batch: &RecordBatch,
        extracted_at: DateTime<Utc>,
    ) -> Result<(), OutputError>;

    /// Makes everything written so far durable; a STATE covering those rows may follow.
    /// Nothing to do for outputs whose writes are final as made (stdout lines in order).
    async fn commit(&mut self) -> Result<(), OutputError> {
        Ok(())
    }

    /// Whether a checkpoint should commit now. Parquet says no while its file is small (a
    /// commit completes the file), so files have a useful size; the checkpoint's STATE then
    /// waits for the next commit.
    fn wants_commit(&self) -> bool {
        true
    }

    /// What a STATE must remember of the output to resume it (Parquet: the committed files);
    /// `None` for outputs a resume needs nothing of.
    fn position(&self) -> Option<OutputCommit> {
        None
    }

    /// The STATE the next [`StreamWriter::commit`] makes true, given just before it: an output
    /// that keeps the state with its rows (Delta, in the same commit) records it there, so the
    /// output alone says where to resume. Others need nothing of it.
    fn stage_state(&mut self, _state: &StreamState) {}

    /// The table commit a STATE names (Delta's transaction identifier), so a stale or replayed
    /// STATE is recognised against the table; `None` for outputs without one.
    fn table_position(&self) -> Option<TableCommit> {
        None
    }

    /// Ends the stream's output (e.g. the IPC end-of-stream marker); nothing by default.
    async fn finish(&mut self) -> Result<(), OutputError> {
        Ok(())
    }
}

/// Where a read's streams go.
#[derive(Clone, Debug)]
pub enum Destination {
    /// RECORD lines on stdout.
    Records,
    /// An Arrow IPC stream on stdout (one stream per read).
    Arrow,
    /// Parquet files under a location, in a folder per stream and sync.
    Parquet {
        /// The store and prefix.
        location: OutputLocation,
        /// This run's sync id.
        sync_id: String,
        /// Compression and row-group sizing.
        options: ParquetOptions,
    },
    /// A Delta Lake table per stream under a location, holding the current rows.
    Delta(DeltaDestination),
}

impl Destination {
    /// Where the export sfetl can read back lies (Parquet files or Delta tables, which a
    /// reconciliation compares with the org); None for outputs on stdout.
    pub fn export_location(&self) -> Option<&OutputLocation> {
        match self {
            Destination::Parquet { location, .. } => Some(location),
            Destination::Delta(d) => Some(&d.location),
            Destination::Records | Destination::Arrow => None,
        }
    }

    /// Splits Parquet's row-group bound between the `writers` streams written at once, so
    /// that peak memory is bounded per run rather than per stream: two all-fields streams
    /// (Contact and Lead) at 16 MB each peaked at 170 MB over 5M rows, above the 160 MB a
    /// run is allowed; at 8 MB each, one stream's worth. Other outputs are unchanged.
    pub fn share_row_groups(&mut self, writers: usize) {
        if let Destination::Parquet { options, .. } = self {
            options.max_row_group_bytes /= writers.max(1);
        }
    }

    /// Bytes of CSV text at which the decoder closes a batch early, for outputs that hold a
    /// batch only while rendering it: a batch of 8,192 all-fields Accounts held 5 MB of text,
    /// a sixth of a RECORD read's peak RSS, where 1 MiB (a thousand-odd wide rows) renders as
    /// fast. File outputs keep whole batches: their row groups bound their memory, and Parquet
    /// judges each column's cardinality on the first batch.
    pub fn batch_bytes(&self) -> Option<usize> {
        match self {
            Destination::Records | Destination::Arrow => Some(1 << 20),
            _ => None,
        }
    }

    /// Opens the output of one stream whose batches have `schema`; `out` is the stdout
    /// writer's lane; `start` says how this run relates to earlier ones (Parquet's marker).
    pub fn open(
        &self,
        stream: &str,
        schema: &SchemaRef,
        out: &mpsc::Sender<Out>,
        start: SyncStart,
    ) -> Result<Box<dyn StreamWriter>, OutputError> {
        Ok(match self {
            Destination::Records => Box::new(RecordsWriter {
                renderer: RecordsRenderer::new(stream),
                out: out.clone(),
                line_bytes: 4096,
            }),
            Destination::Arrow => Box::new(IpcWriter {
                writer: arrow::ipc::writer::StreamWriter::try_new(Vec::new(), schema)
                    .map_err(|e| OutputError::Render(e.to_string()))?,
                out: out.clone(),
            }),
            Destination::Parquet {
                location,
                sync_id,
                options,
            } => Box::new(
                ParquetFileWriter::new(
                    location.clone(),
                    stream,
                    sync_id,
                    schema.clone(),
                    options.clone(),
                )
                .with_sync(start.base, start.resumed_from)
                .with_slice(start.slice),
            ),
            Destination::Delta(d) => Box::new(d.open(stream, schema, &start)?),
        })
    }
}

/// How a stream's run relates to earlier runs of the same output.
#[derive(Debug, Clone, Default)]
pub struct SyncStart {
    /// A full picture on its own: a full refresh, or an incremental read without state.
    pub base: bool,
    /// The output commit of the STATE this run resumes from.
    pub resumed_from: Option<OutputCommit>,
    /// Incremental: each checkpoint is merged into what the output holds (Delta); otherwise
    /// the run replaces it.
    pub incremental: bool,
    /// The cursor column of an object stream (mapped streams name theirs in their schema).
    pub cursor: Option<String>,
    /// The slice this run reads (`read --slice`), marked in its folder; Delta commits all its
    /// rows in one transaction under the app id `<stream>/<slice id>`, so re-running a slice
    /// that committed changes nothing. A slice that is also `base` (a full refresh of a
    /// one-object stream, every row in one slice) replaces the output like a full refresh;
    /// any other slice adds to it.
    pub slice: Option<super::sync::SliceMark>,
}

/// Sends bytes to stdout's writer; a closed lane means the consumer of stdout went away.
async fn send(out: &mpsc::Sender<Out>, o: Out) -> Result<(), OutputError> {
    out.send(o).await.map_err(|_| OutputError::StdoutClosed)
}

/// How many bytes of RECORD lines go to stdout's writer in one piece: large enough that the
/// writer passes them to stdout without copying (its buffer is 64 KiB) and that handing pieces
/// between threads costs little, small enough that the lines in flight stay a few MB whatever
/// the batch size and row width.
const RECORDS_CHUNK: usize = 256 * 1024;

/// RECORD lines on stdout, rendered straight from Arrow.
struct RecordsWriter {
    renderer: RecordsRenderer,
    out: mpsc::Sender<Out>,
    /// A generous guess at one line's length (twice the last piece's average), so a piece's
    /// buffer is allocated once.
    line_bytes: usize,
}

#[async_trait]
impl StreamWriter for RecordsWriter {
    async fn write(
        &mut self,
        batch: &RecordBatch,
        extracted_at: DateTime<Utc>,
    ) -> Result<(), OutputError> {
        let emitted_at = extracted_at.timestamp_millis();
        let mut row = 0;
        while row < batch.num_rows() {
            let mut buf = piece_buffer(RECORDS_CHUNK + self.line_bytes);
            let from = row;
            row = self
                .renderer
                .render_from(batch, row, emitted_at, &mut buf, RECORDS_CHUNK)
                .map_err(|e| OutputError::Render(e.to_string()))?;
            self.line_bytes = 2 * buf.len() / (row - from).max(1);
            send(&self.out, Out::Records(Budgeted::new(buf).await)).await?;
        }
        Ok(())
    }

    // Lines reach stdout in order, before any later STATE: commit, position and finish keep
    // the trait's defaults (nothing to do).
}

/// One Arrow IPC stream on stdout.
struct IpcWriter {
    writer: arrow::ipc::writer::StreamWriter<Vec<u8>>,
    out: mpsc::Sender<Out>,
}

impl IpcWriter {
    /// Sends what the IPC writer has buffered.
    async fn drain(&mut self) -> Result<(), OutputError> {
        let bytes = std::mem::take(self.writer.get_mut());
        if bytes.is_empty() {
            return Ok(());
        }
        send(&self.out, Out::Ipc(Budgeted::new(bytes).await)).await
    }
}

#[async_trait]
impl StreamWriter for IpcWriter {
    async fn write(&mut self, batch: &RecordBatch, _: DateTime<Utc>) -> Result<(), OutputError> {
        self.writer
            .write(batch)
            .map_err(|e| OutputError::Render(e.to_string()))?;
        self.drain().await
    }

    async fn commit(&mut self) -> Result<(), OutputError> {
        Ok(())
    }

    fn position(&self) -> Option<OutputCommit> {
        None
    }

    async fn finish(&mut self) -> Result<(), OutputError> {
        self.writer
            .finish()
            .map_err(|e| OutputError::Render(e.to_string()))?;
        self.drain().await
    }
}

#[async_trait]
impl StreamWriter for ParquetFileWriter {
    async fn write(
        &mut self,
        batch: &RecordBatch,
        extracted_at: DateTime<Utc>,
    ) -> Result<(), OutputError> {
        ParquetFileWriter::write(self, batch, extracted_at.timestamp_micros()).await
    }

    /// Completes the file in progress: it is published under its final name.
    async fn commit(&mut self) -> Result<(), OutputError> {
        self.complete_file().await.map(|_| ())
    }

    fn wants_commit(&self) -> bool {
        self.file_is_full()
    }

    fn position(&self) -> Option<OutputCommit> {
        let (sync_id, parts) = ParquetFileWriter::position(self);
        Some(OutputCommit { sync_id, parts })
    }

    /// Marks the sync folder complete.
    async fn finish(&mut self) -> Result<(), OutputError> {
        self.complete_sync().await
    }
}
