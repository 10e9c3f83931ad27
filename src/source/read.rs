//! `read`: every configured stream planned, fetched, decoded, written, and checkpointed.
//!
//! Streams run concurrently (bounded). Everything bound for stdout goes through one bounded
//! channel to one writer task, so a stream's RECORD lines always precede the STATE that covers
//! them, and a slow consumer slows the readers instead of filling memory.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{SchemaRef, TimestampMicrosecondType};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::FetchError;
use super::bulk::{self, PollPolicy};
use super::cursor::{saved_cursor, state_blob};
use super::discover::describe;
use super::rest;
use super::soql::{self, Window};
use crate::catalog::{SfKind, StreamSchema};
use crate::config::Config;
use crate::decode::{Api, CsvPageDecoder, WirePlan, decode_rest_records};
use crate::output::{OutputLocation, ParquetFileWriter, ParquetOptions, RecordsRenderer};
use crate::protocol::{
    AirbyteEstimateTraceMessage, AirbyteMessage, AirbyteStateMessage, AirbyteStreamStatus,
    AirbyteStreamStatusTraceMessage, AirbyteTraceMessage, ConfiguredAirbyteStream, EstimateType,
    LogLevel, StreamDescriptor, SyncMode, TraceType, now_millis,
};
use crate::salesforce::{ApiRequest, SalesforceClient, SalesforceError};
use crate::state::InputState;

/// What the read task sends to the stdout writer.
#[derive(Debug)]
pub enum Out {
    /// One protocol message.
    Message(Box<AirbyteMessage>),
    /// Pre-rendered RECORD lines.
    Lines(Vec<u8>),
    /// Bytes of an Arrow IPC stream.
    Ipc(Vec<u8>),
}

/// Asks a read to stop starting new work (a signal, or the org's API quota running out).
/// Streams finish the page in hand, keep the state they already emitted, and end INCOMPLETE.
#[derive(Debug, Clone, Default)]
pub struct StopSignal(Arc<std::sync::atomic::AtomicBool>);

impl StopSignal {
    /// Requests the stop.
    pub fn stop(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether a stop was requested.
    pub fn is_stopped(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Tuning of a read.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Rows per Bulk results page (`maxRecords`).
    pub max_records: u64,
    /// REST page size asked for (`Sforce-Query-Options: batchSize`).
    pub rest_batch_size: u32,
    /// Longest REST query URL; wider field lists are split (see `source::rest`).
    pub rest_max_url: usize,
    /// Streams read at once.
    pub concurrency: usize,
    /// Bulk job polling.
    pub poll: PollPolicy,
    /// Rows per decoded batch.
    pub batch_rows: usize,
    /// Attempts at one results page cut off midway.
    pub page_attempts: u32,
    /// Parquet writer options.
    pub parquet: ParquetOptions,
    /// Draw progress bars on stderr when it is a terminal.
    pub show_progress: bool,
    /// Stop request shared with signal handlers.
    pub stop: StopSignal,
    /// The compiled field mapping, when the config has one.
    pub mapping: Option<Arc<crate::mapping::MappingPlan>>,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            max_records: 200_000,
            rest_batch_size: 2000,
            rest_max_url: rest::MAX_URL_BYTES,
            concurrency: 2,
            poll: PollPolicy::default(),
            batch_rows: 8192,
            page_attempts: 5,
            parquet: ParquetOptions::default(),
            show_progress: false,
            stop: StopSignal::default(),
            mapping: None,
        }
    }
}

/// Where batches go.
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
    },
}

/// Outcome of a read.
#[derive(Debug, Default)]
pub struct ReadSummary {
    /// Rows read per stream.
    pub rows: BTreeMap<String, u64>,
    /// Streams that failed, with why.
    pub failures: Vec<(String, FetchError)>,
}

struct Ctx {
    client: SalesforceClient,
    config: Arc<Config>,
    out: mpsc::Sender<Out>,
    opts: ReadOptions,
    destination: Destination,
    progress: super::progress::Progress,
}

impl Ctx {
    async fn emit(&self, m: AirbyteMessage) -> Result<(), FetchError> {
        self.out
            .send(Out::Message(Box::new(m)))
            .await
            .map_err(|_| FetchError::Protocol("stdout closed".into()))
    }

    async fn status(&self, stream: &str, status: AirbyteStreamStatus) -> Result<(), FetchError> {
        self.emit(AirbyteMessage::trace(AirbyteTraceMessage {
            kind: TraceType::StreamStatus,
            emitted_at: now_millis() as f64,
            error: None,
            estimate: None,
            stream_status: Some(AirbyteStreamStatusTraceMessage {
                stream_descriptor: StreamDescriptor::named(stream),
                status,
            }),
        }))
        .await
    }

    async fn log(&self, level: LogLevel, text: String) {
        tracing::info!("{text}");
        let _ = self.emit(AirbyteMessage::log(level, text)).await;
    }
}

/// Reads every configured stream; per-stream failures are collected, not fatal to the others.
pub async fn read(
    client: SalesforceClient,
    config: Arc<Config>,
    streams: Vec<ConfiguredAirbyteStream>,
    state: InputState,
    destination: Destination,
    out: mpsc::Sender<Out>,
    opts: ReadOptions,
) -> ReadSummary {
    let concurrency = opts.concurrency.max(1);
    let progress = if opts.show_progress {
        super::progress::Progress::for_stderr()
    } else {
        super::progress::Progress::hidden()
    };
    let ctx = Arc::new(Ctx {
        client,
        config,
        out,
        opts,
        destination,
        progress,
    });
    let state = Arc::new(state);
    let results: Vec<(String, Result<u64, FetchError>)> = futures::stream::iter(streams)
        .map(|cs| {
            let ctx = ctx.clone();
            let state = state.clone();
            async move {
                let name = cs.stream.name.clone();
                let r = read_stream(&ctx, &cs, state.stream(&name)).await;
                if let Err(FetchError::Salesforce(
                    crate::salesforce::SalesforceError::RequestLimitExceeded { .. },
                )) = &r
                {
                    // The quota is spent for every stream: start nothing new anywhere.
                    ctx.opts.stop.stop();
                }
                if r.is_err() {
                    let _ = ctx.status(&name, AirbyteStreamStatus::Incomplete).await;
                }
                (name, r)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut summary = ReadSummary::default();
    for (name, r) in results {
        match r {
            Ok(n) => {
                summary.rows.insert(name, n);
            }
            Err(e) => summary.failures.push((name, e)),
        }
    }
    summary
}

enum Sink {
    Records {
        renderer: RecordsRenderer,
        out: mpsc::Sender<Out>,
    },
    Parquet(Box<ParquetFileWriter>),
    Arrow {
        writer: Box<arrow::ipc::writer::StreamWriter<Vec<u8>>>,
        out: mpsc::Sender<Out>,
    },
}

impl Sink {
    /// Sends what the IPC writer has buffered.
    async fn drain_ipc(
        writer: &mut arrow::ipc::writer::StreamWriter<Vec<u8>>,
        out: &mpsc::Sender<Out>,
    ) -> Result<(), FetchError> {
        let bytes = std::mem::take(writer.get_mut());
        if bytes.is_empty() {
            return Ok(());
        }
        out.send(Out::Ipc(bytes))
            .await
            .map_err(|_| FetchError::Protocol("stdout closed".into()))
    }

    /// Ends the stream's output (the IPC end-of-stream marker).
    async fn finish(&mut self) -> Result<(), FetchError> {
        if let Sink::Arrow { writer, out } = self {
            writer
                .finish()
                .map_err(|e| crate::output::OutputError::Render(e.to_string()))?;
            Self::drain_ipc(writer, out).await?;
        }
        Ok(())
    }

    async fn write(
        &mut self,
        batch: &RecordBatch,
        extracted_at: DateTime<Utc>,
    ) -> Result<(), FetchError> {
        match self {
            Sink::Records { renderer, out } => {
                let mut buf = Vec::new();
                renderer
                    .render(batch, extracted_at.timestamp_millis(), &mut buf)
                    .map_err(|e| crate::output::OutputError::Render(e.to_string()))?;
                out.send(Out::Lines(buf))
                    .await
                    .map_err(|_| FetchError::Protocol("stdout closed".into()))
            }
            Sink::Parquet(w) => Ok(w.write(batch, extracted_at.timestamp_micros()).await?),
            Sink::Arrow { writer, out } => {
                writer
                    .write(batch)
                    .map_err(|e| crate::output::OutputError::Render(e.to_string()))?;
                Self::drain_ipc(writer, out).await
            }
        }
    }

    /// For Parquet: this sync's id and how many files are complete.
    fn position(&self) -> Option<(String, u32)> {
        match self {
            Sink::Parquet(w) => Some(w.position()),
            _ => None,
        }
    }

    /// Makes everything written so far durable (for Parquet: completes the file).
    async fn commit(&mut self) -> Result<(), FetchError> {
        if let Sink::Parquet(w) = self {
            w.complete_file().await?;
        }
        Ok(())
    }
}

/// The fields a configured stream selects: its `json_schema.properties`, or all when absent.
fn selected_fields(cs: &ConfiguredAirbyteStream) -> Option<Vec<String>> {
    let props = cs.stream.json_schema.get("properties")?.as_object()?;
    if props.is_empty() {
        return None;
    }
    Some(props.keys().cloned().collect())
}

async fn read_stream(
    ctx: &Ctx,
    cs: &ConfiguredAirbyteStream,
    saved: Option<&Value>,
) -> Result<u64, FetchError> {
    let name = cs.stream.name.as_str();
    ctx.status(name, AirbyteStreamStatus::Started).await?;
    if let Some(mapped) = ctx.opts.mapping.as_ref().and_then(|m| m.stream(name)) {
        return read_mapped_stream(ctx, cs, mapped, saved).await;
    }
    let describe = describe(&ctx.client, name).await?;
    let selected = selected_fields(cs);
    if let Some(sel) = &selected {
        let unknown: Vec<&String> = sel
            .iter()
            .filter(|s| !s.starts_with("_sfetl_") && !describe.fields.iter().any(|f| &f.name == *s))
            .collect();
        if !unknown.is_empty() {
            ctx.log(LogLevel::Warn, format!("{name}: the catalog selects fields the org does not have (left out): {unknown:?}")).await;
        }
    }
    let mut schema = StreamSchema::from_describe(&describe, selected.as_deref());
    let has_blob = schema.fields.iter().any(|f| f.kind == SfKind::Base64);
    let mut api = Api::Bulk;
    if has_blob {
        if ctx.config.force_use_bulk_api {
            let keep: Vec<String> = schema
                .fields
                .iter()
                .filter(|f| f.kind != SfKind::Base64)
                .map(|f| f.name.clone())
                .collect();
            ctx.log(LogLevel::Warn, format!("{name}: force_use_bulk_api is set, so base64 fields are left out (Bulk API cannot read them)")).await;
            schema = StreamSchema::from_describe(&describe, Some(&keep));
        } else {
            ctx.log(LogLevel::Info, format!("{name}: reading with the REST API because base64 fields are selected (Bulk API cannot read them)")).await;
            api = Api::Rest;
        }
    }
    let cursor = schema.cursor;
    let incremental = cs.sync_mode == SyncMode::Incremental && cursor.is_some();
    let out_schema = match cursor {
        Some(_) => with_deleted_at(&schema.arrow),
        None => schema.arrow.clone(),
    };
    let mut sink = open_sink(ctx, name, &out_schema, incremental, saved).await?;
    ctx.status(name, AirbyteStreamStatus::Running).await?;
    let started = Utc::now();
    let source = Source {
        object: name.to_string(),
        bulk: WirePlan::new(&schema, Api::Bulk),
        rest: WirePlan::new(&schema, Api::Rest),
        cursor,
        soql_where: None,
        mapping: None,
        replicateable: describe.replicateable,
        deleted_schema: out_schema.clone(),
    };
    let mut reader = StreamReader::new(ctx, name, &source, api, out_schema, incremental, None);
    let saved_at = match (saved, cursor) {
        (Some(blob), Some(c)) if incremental => saved_cursor(blob, c).map_err(|e| {
            FetchError::Protocol(format!("the saved state of {name} is not usable: {e}"))
        })?,
        _ => None,
    };
    let total = reader.read_all(&mut sink, saved_at).await?;
    sink.finish().await?;
    reader.progress.finish();
    ctx.log(
        LogLevel::Info,
        format!("{name}: {}", reader.summary(total, started)),
    )
    .await;
    ctx.status(name, AirbyteStreamStatus::Complete).await?;
    Ok(total)
}

/// Reads a mapped stream: each source object in turn, with its own cursor, evaluated into the
/// stream's columns. Its state keeps one cursor per source: `{"sources": {"Lead": {...}}}`.
async fn read_mapped_stream(
    ctx: &Ctx,
    cs: &ConfiguredAirbyteStream,
    mapped: &crate::mapping::MappedStream,
    saved: Option<&Value>,
) -> Result<u64, FetchError> {
    let name = cs.stream.name.as_str();
    let incremental = cs.sync_mode == SyncMode::Incremental && mapped.supports_incremental();
    let mut sink = open_sink(ctx, name, &mapped.schema, incremental, saved).await?;
    ctx.status(name, AirbyteStreamStatus::Running).await?;
    let started = Utc::now();
    let mut states: serde_json::Map<String, Value> = saved
        .and_then(|b| b.get("sources"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut total = 0;
    let mut summaries = Vec::new();
    for src in &mapped.sources {
        let describe = describe(&ctx.client, &src.object).await?;
        let source = Source {
            object: src.object.clone(),
            bulk: WirePlan::for_source(&src.object, Api::Bulk, &src.input_schema),
            rest: WirePlan::for_source(&src.object, Api::Rest, &src.input_schema),
            cursor: src.cursor,
            soql_where: src.soql_where.clone(),
            mapping: Some(src),
            replicateable: describe.replicateable,
            deleted_schema: WirePlan::for_source(&src.object, Api::Bulk, &src.input_schema).output,
        };
        let saved_at = match (states.get(&src.object), src.cursor) {
            (Some(blob), Some(c)) if incremental => saved_cursor(blob, c).map_err(|e| {
                FetchError::Protocol(format!(
                    "the saved state of {name} ({}) is not usable: {e}",
                    src.object
                ))
            })?,
            _ => None,
        };
        let mut reader = StreamReader::new(
            ctx,
            name,
            &source,
            Api::Bulk,
            mapped.schema.clone(),
            incremental,
            Some(std::mem::take(&mut states)),
        );
        let rows = reader.read_all(&mut sink, saved_at).await?;
        total += rows;
        summaries.push(format!("{} {}", src.object, reader.summary(rows, started)));
        states = reader.sources_state.take().unwrap_or_default();
        reader.progress.finish();
    }
    sink.finish().await?;
    ctx.log(
        LogLevel::Info,
        format!("{name} (mapped): {}", summaries.join("; ")),
    )
    .await;
    ctx.status(name, AirbyteStreamStatus::Complete).await?;
    Ok(total)
}

/// Opens the output of one stream.
async fn open_sink(
    ctx: &Ctx,
    name: &str,
    out_schema: &SchemaRef,
    incremental: bool,
    saved: Option<&Value>,
) -> Result<Sink, FetchError> {
    Ok(match &ctx.destination {
        Destination::Records => Sink::Records {
            renderer: RecordsRenderer::new(name),
            out: ctx.out.clone(),
        },
        Destination::Arrow => {
            let writer = arrow::ipc::writer::StreamWriter::try_new(Vec::new(), out_schema)
                .map_err(|e| crate::output::OutputError::Render(e.to_string()))?;
            Sink::Arrow {
                writer: Box::new(writer),
                out: ctx.out.clone(),
            }
        }
        Destination::Parquet { location, sync_id } => {
            let removed =
                location
                    .remove_staging(name)
                    .map_err(|e| crate::output::OutputError::Write {
                        path: format!("{}/{name}", location.display),
                        reason: format!("cannot remove unfinished files of an earlier run: {e}"),
                    })?;
            if removed > 0 {
                ctx.log(
                    LogLevel::Info,
                    format!(
                        "{name}: removed {removed} unfinished file(s) left by an interrupted run"
                    ),
                )
                .await;
            }
            // Files an interrupted run published after its last STATE would be a second copy
            // of windows this run reads again: the state says which files are committed.
            if incremental {
                let committed = match saved {
                    None => Some(None),
                    Some(s) => s.get("output").and_then(|o| {
                        Some(Some((
                            o.get("sync_id")?.as_str()?,
                            u32::try_from(o.get("parts")?.as_u64()?).ok()?,
                        )))
                    }),
                };
                if let Some(committed) = committed {
                    let removed = location.remove_uncommitted(name, committed).await?;
                    if !removed.is_empty() {
                        ctx.log(LogLevel::Info, format!("{name}: removed {} file(s) published after the last STATE of an interrupted run: {}", removed.len(), removed.join(", "))).await;
                    }
                }
            }
            Sink::Parquet(Box::new(ParquetFileWriter::new(
                location.clone(),
                name,
                sync_id,
                out_schema.clone(),
                ParquetOptions {
                    compression: ctx.config.output.compression,
                    ..ctx.opts.parquet.clone()
                },
            )))
        }
    })
}

/// One Salesforce object feeding a stream (the stream itself, or one `from` of a mapping).
struct Source<'a> {
    /// Object to query.
    object: String,
    /// Wire plan for Bulk API 2.0.
    bulk: WirePlan,
    /// Wire plan for REST.
    rest: WirePlan,
    /// Cursor field.
    cursor: Option<&'static str>,
    /// Pushed-down filter.
    soql_where: Option<String>,
    /// Mapping evaluated on every batch, for mapped streams.
    mapping: Option<&'a crate::mapping::SourcePlan>,
    /// Whether the `deleted` endpoint serves the object.
    replicateable: bool,
    /// Schema of the rows built for deletions (before mapping).
    deleted_schema: SchemaRef,
}

struct StreamReader<'a> {
    ctx: &'a Ctx,
    source: &'a Source<'a>,
    api: Api,
    /// Stream name (messages, state).
    name: &'a str,
    estimated: u64,
    progress: super::progress::StreamProgress,
    /// The stream's output schema (with `_sfetl_deleted_at` when it has a cursor).
    out_schema: SchemaRef,
    /// Mapped streams: the state of every source, this one's updated at each checkpoint.
    sources_state: Option<serde_json::Map<String, Value>>,
    /// Greatest cursor delivered in the current window (µs).
    max_cursor_us: Option<i64>,
    /// Rows delivered since the last STATE.
    pending: u64,
    /// Incremental: results ordered by cursor and checkpointed after every page.
    checkpoints: bool,
    /// Longest REST query URL, lowered for the rest of the stream after a 414/431.
    rest_url_budget: usize,
    /// Whether the split of a wide REST field list was already logged.
    rest_split_logged: bool,
}

impl<'a> StreamReader<'a> {
    fn new(
        ctx: &'a Ctx,
        name: &'a str,
        source: &'a Source<'a>,
        api: Api,
        out_schema: SchemaRef,
        incremental: bool,
        sources_state: Option<serde_json::Map<String, Value>>,
    ) -> StreamReader<'a> {
        StreamReader {
            ctx,
            source,
            api,
            name,
            estimated: 0,
            progress: ctx.progress.stream(name),
            out_schema,
            sources_state,
            max_cursor_us: None,
            pending: 0,
            checkpoints: incremental,
            rest_url_budget: ctx.opts.rest_max_url,
            rest_split_logged: false,
        }
    }

    /// The closing line of a stream.
    fn summary(&self, total: u64, started: DateTime<Utc>) -> String {
        format!(
            "{total} rows in {:.2} s, {}",
            started
                .signed_duration_since(Utc::now())
                .num_milliseconds()
                .unsigned_abs() as f64
                / 1e3,
            if self.api == Api::Bulk {
                format!(
                    "{:.1} MB of CSV through Bulk API 2.0",
                    self.progress.bytes() as f64 / 1e6
                )
            } else {
                "through the REST API".to_string()
            },
        )
    }

    /// Plans the windows of this source and reads them, with a STATE after each (and after
    /// each Bulk page of an incremental read).
    async fn read_all(
        &mut self,
        sink: &mut Sink,
        saved_at: Option<DateTime<Utc>>,
    ) -> Result<u64, FetchError> {
        let ctx = self.ctx;
        let cursor = self.source.cursor;
        let incremental = self.checkpoints;
        // Whole milliseconds: SOQL literals and saved cursors carry milliseconds, so the bound
        // queried and the bound saved are the same instant.
        let upper = ctx.config.end_date.unwrap_or_else(|| {
            let t = ctx.config.cursor_lag.sub_from(Utc::now());
            DateTime::<Utc>::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
        });
        let lower = match saved_at {
            Some(c) => Some(ctx.config.lookback_window.sub_from(c)),
            None => ctx.config.start_date,
        };
        let windows: Vec<Window> = match cursor {
            Some(_) if incremental && saved_at.is_some() => {
                soql::windows(lower, upper, &ctx.config.stream_slice_step)
            }
            Some(c) if incremental => {
                // First sync: one REST call finds the first row at or after the start, so years
                // of empty history do not cost a Bulk job per window.
                let filter = self.source.soql_where.as_deref();
                match earliest_cursor(ctx, &self.source.object, c, lower, upper, filter).await? {
                    Some(t) => {
                        let start = lower
                            .map(|l| l.max(window_floor(t)))
                            .or(Some(window_floor(t)));
                        soql::windows(start, upper, &ctx.config.stream_slice_step)
                    }
                    None => Vec::new(),
                }
            }
            Some(_) => vec![Window { lower, upper }],
            None => Vec::new(),
        };
        let mut total = 0u64;
        let stopped = || -> Result<(), FetchError> {
            if ctx.opts.stop.is_stopped() {
                Err(FetchError::Stopped)
            } else {
                Ok(())
            }
        };
        if cursor.is_none() {
            // No cursor: one full read, without a filter.
            stopped()?;
            total += self.read_window(None, sink).await?;
            sink.commit().await?;
            let msg = AirbyteStateMessage::stream(
                StreamDescriptor::named(self.name),
                json!({}),
                total as f64,
            );
            ctx.emit(AirbyteMessage::state(msg)).await?;
            return Ok(total);
        }
        for w in &windows {
            stopped()?;
            if let Some(limit) = ctx.config.max_api_usage_percent
                && let Some(usage) = ctx.client.api_usage()
                && usage.percent() >= limit
            {
                ctx.log(LogLevel::Warn, format!("{}: stopping because the org's API usage is {usage} ({:.1}%), past max_api_usage_percent {limit}; the next run resumes from the last STATE", self.name, usage.percent())).await;
                ctx.opts.stop.stop();
                return Err(FetchError::Stopped);
            }
            total += self.read_window(Some(*w), sink).await?;
            if incremental && self.source.replicateable {
                total += self.deleted_rows(*w, sink).await?;
            }
            self.checkpoint(sink, w.upper).await?;
        }
        if windows.is_empty() {
            // Nothing to read in [lower, upper): covered up to the upper bound (or where the
            // saved cursor already is, if later).
            let at = saved_at.map_or(upper, |s| s.max(upper));
            self.checkpoint(sink, at).await?;
        }
        Ok(total)
    }

    /// Reads one window with the current API, falling back from Bulk to REST when Bulk refuses.
    async fn read_window(
        &mut self,
        window: Option<Window>,
        sink: &mut Sink,
    ) -> Result<u64, FetchError> {
        if self.api == Api::Bulk {
            match self.bulk_window(window, sink).await {
                Err(e) if e.bulk_can_fall_back() => {
                    self.ctx
                        .log(LogLevel::Warn, format!("{}: Bulk API 2.0 refused the query ({e}); reading with the REST API instead", self.name))
                        .await;
                    self.api = Api::Rest;
                }
                other => return other,
            }
        }
        self.rest_window(window, sink).await
    }

    fn soql(&self, plan: &WirePlan, window: Option<Window>, order: bool) -> String {
        soql::select(
            &self.source.object,
            &plan.select,
            self.source.cursor,
            window,
            self.source.soql_where.as_deref(),
            order,
        )
    }

    async fn bulk_window(
        &mut self,
        window: Option<Window>,
        sink: &mut Sink,
    ) -> Result<u64, FetchError> {
        let source = self.source;
        let plan = &source.bulk;
        let client = &self.ctx.client;
        // Incremental windows are read in cursor order so every results page can be a checkpoint.
        let soql = self.soql(plan, window, self.checkpoints);
        let job = bulk::create_job(client, &soql, true).await?;
        let result = self.bulk_results(plan, &job.id, sink).await;
        if let Err(e) = bulk::delete_job(client, &job.id).await {
            tracing::warn!("could not delete Bulk job {}: {e}", job.id);
        }
        result
    }

    async fn bulk_results(
        &mut self,
        plan: &WirePlan,
        job: &str,
        sink: &mut Sink,
    ) -> Result<u64, FetchError> {
        let ctx = self.ctx;
        let info = bulk::wait_job(&ctx.client, job, &ctx.opts.poll).await?;
        if let Some(n) = info.number_records_processed {
            self.estimated += n;
            self.progress.set_estimate(self.estimated);
            ctx.emit(AirbyteMessage::trace(AirbyteTraceMessage {
                kind: TraceType::Estimate,
                emitted_at: now_millis() as f64,
                error: None,
                estimate: Some(AirbyteEstimateTraceMessage {
                    name: self.name.to_string(),
                    namespace: None,
                    kind: EstimateType::Stream,
                    row_estimate: Some(self.estimated as i64),
                    byte_estimate: None,
                }),
                stream_status: None,
            }))
            .await?;
        }
        let mut locator: Option<String> = None;
        let mut total = 0u64;
        let mut replaced = 0u64;
        loop {
            if ctx.opts.stop.is_stopped() {
                return Err(FetchError::Stopped);
            }
            let mut delivered = 0u64;
            let mut attempt = 0;
            let next = loop {
                attempt += 1;
                match self
                    .bulk_page(
                        plan,
                        job,
                        locator.as_deref(),
                        &mut delivered,
                        &mut replaced,
                        sink,
                    )
                    .await
                {
                    Ok(next) => break next,
                    Err(FetchError::Truncated { reason, .. })
                        if attempt < ctx.opts.page_attempts =>
                    {
                        tracing::warn!(
                            "results page of job {job} cut off ({reason}); fetching it again, {delivered} rows already delivered"
                        );
                        tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                    }
                    Err(e) => return Err(e),
                }
            };
            total += delivered;
            match next {
                Some(l) => {
                    if self.checkpoints
                        && let Some(max) = self.max_cursor_us
                        && let Some(at) = DateTime::<Utc>::from_timestamp_micros(max)
                    {
                        // Rows arrive in cursor order: everything below `max` is delivered;
                        // rows equal to it may continue on the next page, and the inclusive
                        // lower bound of the next run reads them again (deduplicated).
                        self.checkpoint(sink, at).await?;
                    }
                    locator = Some(l)
                }
                None => break,
            }
        }
        if replaced > 0 {
            ctx.log(
                LogLevel::Warn,
                format!(
                    "{}: {replaced} invalid UTF-8 sequences were replaced by U+FFFD",
                    self.name
                ),
            )
            .await;
        }
        Ok(total)
    }

    /// Fetches one page; rows of it already delivered by an earlier attempt are skipped.
    async fn bulk_page(
        &mut self,
        plan: &WirePlan,
        job: &str,
        locator: Option<&str>,
        delivered: &mut u64,
        replaced: &mut u64,
        sink: &mut Sink,
    ) -> Result<Option<String>, FetchError> {
        let ctx = self.ctx;
        let mut page = bulk::open_page(&ctx.client, job, locator, ctx.opts.max_records).await?;
        let mut decoder = CsvPageDecoder::new(plan, ctx.opts.batch_rows);
        let mut offset = 0u64;
        let extracted_at = Utc::now();
        while let Some(chunk) = page.chunk().await? {
            self.progress.add_bytes(chunk.len() as u64);
            for b in fresh_rows(decoder.push(&chunk)?, &mut offset, *delivered) {
                self.deliver(sink, plan.assemble(&b)?, extracted_at).await?;
                *delivered += b.num_rows() as u64;
            }
        }
        for b in fresh_rows(decoder.finish()?, &mut offset, *delivered) {
            self.deliver(sink, plan.assemble(&b)?, extracted_at).await?;
            *delivered += b.num_rows() as u64;
        }
        *replaced += decoder.replaced_utf8();
        if let Some(expected) = page.records
            && expected != offset
        {
            return Err(FetchError::Truncated {
                job: job.to_string(),
                reason: format!("the page announced {expected} records but held {offset}"),
            });
        }
        Ok(page.next_locator)
    }

    /// Hands a batch of the stream's columns to the sink: adds the `_sfetl_deleted_at` column
    /// when the stream has one, and tracks progress, rows since the last STATE and the
    /// greatest cursor delivered.
    async fn deliver(
        &mut self,
        sink: &mut Sink,
        batch: RecordBatch,
        extracted_at: DateTime<Utc>,
    ) -> Result<(), FetchError> {
        // Only incremental reads checkpoint mid-window, on the greatest cursor delivered.
        if self.checkpoints
            && let Some(c) = self.source.cursor
            && let Ok(i) = batch.schema().index_of(c)
            && let Some(m) =
                arrow::compute::max(batch.column(i).as_primitive::<TimestampMicrosecondType>())
        {
            self.max_cursor_us = Some(self.max_cursor_us.map_or(m, |x| x.max(m)));
        }
        let batch = if let Some(mapping) = self.source.mapping {
            mapping.evaluate(&batch)?
        } else if batch.num_columns() + 1 == self.out_schema.fields().len() {
            let mut columns = batch.columns().to_vec();
            let last = self.out_schema.field(columns.len());
            columns.push(arrow::array::new_null_array(
                last.data_type(),
                batch.num_rows(),
            ));
            RecordBatch::try_new(self.out_schema.clone(), columns)
                .map_err(|e| crate::output::OutputError::Render(e.to_string()))?
        } else {
            batch
        };
        let n = batch.num_rows() as u64;
        sink.write(&batch, extracted_at).await?;
        self.pending += n;
        self.progress.add_rows(n);
        Ok(())
    }

    /// Makes what was delivered durable, then emits the STATE saying the stream is covered
    /// up to `cursor`.
    async fn checkpoint(
        &mut self,
        sink: &mut Sink,
        cursor: DateTime<Utc>,
    ) -> Result<(), FetchError> {
        sink.commit().await?;
        let field = self.source.cursor.unwrap_or("SystemModstamp");
        let mut blob = match self.sources_state.as_mut() {
            Some(states) => {
                states.insert(self.source.object.clone(), state_blob(field, cursor));
                json!({"sources": states})
            }
            None => state_blob(field, cursor),
        };
        if let Some((sync_id, parts)) = sink.position() {
            blob["output"] = json!({"sync_id": sync_id, "parts": parts});
        }
        let msg = AirbyteStateMessage::stream(
            StreamDescriptor::named(self.name),
            blob,
            self.pending as f64,
        );
        self.pending = 0;
        self.max_cursor_us = None;
        self.ctx.emit(AirbyteMessage::state(msg)).await
    }

    /// Rows deleted in the window that queryAll cannot return any more (hard deletes, emptied
    /// recycle bin), from the REST `deleted` endpoint. Salesforce answers it for the last 30
    /// days only, so older windows are left to queryAll's `IsDeleted` rows.
    async fn deleted_rows(&mut self, window: Window, sink: &mut Sink) -> Result<u64, FetchError> {
        let horizon = Utc::now() - chrono::Duration::days(29);
        if window.upper <= horizon {
            return Ok(0);
        }
        let start = window.lower.map_or(horizon, |l| l.max(horizon));
        let url = self.ctx.client.data_url(&format!(
            "sobjects/{}/deleted/?start={}&end={}",
            self.source.object,
            url_encode(&soql::datetime_literal(start)),
            url_encode(&soql::datetime_literal(window.upper)),
        ));
        let answer: Value = self.ctx.client.get_json(&url).await?;
        let mut ids: Vec<String> = Vec::new();
        let mut at: Vec<i64> = Vec::new();
        for r in answer
            .get("deletedRecords")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (Some(id), Some(when)) = (
                r.get("id").and_then(Value::as_str),
                r.get("deletedDate")
                    .and_then(Value::as_str)
                    .and_then(super::cursor::parse_datetime),
            ) else {
                continue;
            };
            ids.push(id.to_string());
            at.push(when.timestamp_micros());
        }
        if ids.is_empty() {
            return Ok(0);
        }
        let n = ids.len();
        let when: ArrayRef =
            Arc::new(arrow::array::TimestampMicrosecondArray::from(at).with_timezone("UTC"));
        let cursor = self.source.cursor;
        let schema = self.source.deleted_schema.clone();
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|f| -> ArrayRef {
                match f.name().as_str() {
                    "Id" => Arc::new(arrow::array::StringArray::from(ids.clone())),
                    "IsDeleted" => Arc::new(arrow::array::BooleanArray::from(vec![true; n])),
                    DELETED_AT => when.clone(),
                    name if Some(name) == cursor => when.clone(),
                    _ => arrow::array::new_null_array(f.data_type(), n),
                }
            })
            .collect();
        let batch = RecordBatch::try_new(schema, columns)
            .map_err(|e| crate::output::OutputError::Render(e.to_string()))?;
        self.deliver(sink, batch, Utc::now()).await?;
        Ok(n as u64)
    }

    /// Reads a window through REST. When Salesforce refuses the query URL as too long (414 or
    /// 431, limits vary by org and proxy) before any row was delivered, the field list is split
    /// under a smaller budget and the window read again.
    async fn rest_window(
        &mut self,
        window: Option<Window>,
        sink: &mut Sink,
    ) -> Result<u64, FetchError> {
        loop {
            let mut total = 0u64;
            let budget = self.rest_url_budget;
            match self
                .rest_window_within(window, sink, budget, &mut total)
                .await
            {
                Err(FetchError::Salesforce(SalesforceError::Api { status, .. }))
                    if matches!(status, 414 | 431) && total == 0 && budget > MIN_URL_BUDGET =>
                {
                    let smaller = (budget * 2 / 3).max(MIN_URL_BUDGET);
                    self.ctx
                        .log(
                            LogLevel::Warn,
                            format!(
                                "{}: Salesforce refused a REST query URL as too long (HTTP {status}); splitting its fields to keep URLs under {smaller} bytes",
                                self.name
                            ),
                        )
                        .await;
                    self.rest_url_budget = smaller;
                }
                other => return other.map(|()| total),
            }
        }
    }

    async fn rest_window_within(
        &mut self,
        window: Option<Window>,
        sink: &mut Sink,
        budget: usize,
        total: &mut u64,
    ) -> Result<(), FetchError> {
        let ctx = self.ctx;
        let source = self.source;
        let plan = &source.rest;
        let blob_cols = plan.blob_columns();
        let keep: Vec<&str> = std::iter::once("Id").chain(source.cursor).collect();
        let main_soql = |fields: &[String]| {
            soql::select(
                &source.object,
                fields,
                source.cursor,
                window,
                source.soql_where.as_deref(),
                true,
            )
        };
        let mut split = rest::split_fields(
            &ctx.client,
            &source.object,
            &plan.select,
            &keep,
            budget,
            main_soql,
        )
        .map_err(|e| FetchError::Protocol(e.to_string()))?;
        if !split.lookups.is_empty() {
            if !split.main.iter().any(|f| f.eq_ignore_ascii_case("Id")) {
                split.main.insert(0, "Id".to_string());
            }
            if !self.rest_split_logged {
                self.rest_split_logged = true;
                ctx.log(
                    LogLevel::Info,
                    format!(
                        "{}: {} fields are too many for one REST query URL (over {budget} bytes); reading {} with the key fields and looking up {} more group(s) by Id, {} ids a call",
                        self.name,
                        plan.select.len(),
                        split.main.len(),
                        split.lookups.len(),
                        split.ids_per_lookup
                    ),
                )
                .await;
            }
        }
        let mut url = rest::first_page_url(&ctx.client, &main_soql(&split.main), true);
        loop {
            let mut page = rest::fetch_page_with_attempts(
                &ctx.client,
                &url,
                ctx.opts.rest_batch_size,
                ctx.opts.page_attempts,
            )
            .await?;
            let extracted_at = Utc::now();
            if !page.records.is_empty() {
                for fields in &split.lookups {
                    rest::lookup_into(
                        &ctx.client,
                        &source.object,
                        fields,
                        split.ids_per_lookup,
                        ctx.opts.rest_batch_size,
                        ctx.opts.page_attempts,
                        &mut page.records,
                    )
                    .await?;
                }
                let wire = decode_rest_records(plan, &page.records)?;
                let blobs = self.fetch_blobs(&wire, &blob_cols).await?;
                let batch = plan.assemble_with_blobs(&wire, &blobs)?;
                self.deliver(sink, batch, extracted_at).await?;
                *total += wire.num_rows() as u64;
            }
            match page.next_records_url {
                Some(next) if !page.done => url = next,
                _ => break,
            }
        }
        Ok(())
    }

    /// Fetches base64 field contents (REST returns their URLs).
    async fn fetch_blobs(
        &self,
        wire: &RecordBatch,
        cols: &[usize],
    ) -> Result<HashMap<String, Vec<u8>>, FetchError> {
        let mut urls: Vec<String> = Vec::new();
        for c in cols {
            let a = wire.column(*c).as_string::<i32>();
            urls.extend(
                (0..a.len())
                    .filter(|i| a.is_valid(*i) && a.value(*i).starts_with("/services/"))
                    .map(|i| a.value(i).to_string()),
            );
        }
        let client = &self.ctx.client;
        let fetched: Vec<Result<(String, Vec<u8>), FetchError>> = futures::stream::iter(urls)
            .map(|u| async move {
                let resp = client.send(ApiRequest::get(client.data_url(&u))).await?;
                let bytes = resp.bytes().await.map_err(|e| FetchError::Truncated {
                    job: u.clone(),
                    reason: e.to_string(),
                })?;
                Ok((u, bytes.to_vec()))
            })
            .buffered(4)
            .collect()
            .await;
        fetched.into_iter().collect()
    }
}

/// The rows of `batches` (which start at page row `offset`) not yet delivered.
fn fresh_rows(batches: Vec<RecordBatch>, offset: &mut u64, delivered: u64) -> Vec<RecordBatch> {
    let mut fresh = Vec::new();
    for b in batches {
        let n = b.num_rows() as u64;
        let start = *offset;
        *offset += n;
        if start + n <= delivered {
            continue;
        }
        let skip = delivered.saturating_sub(start) as usize;
        fresh.push(b.slice(skip, b.num_rows() - skip));
    }
    fresh
}

/// Midnight UTC of the day of `t`: windows start on day boundaries, which keeps slices stable
/// from run to run.
fn window_floor(t: DateTime<Utc>) -> DateTime<Utc> {
    t.date_naive()
        .and_hms_opt(0, 0, 0)
        .map_or(t, |d| d.and_utc())
}

/// The smallest cursor value in `[lower, upper)`, or `None` when the range holds no row.
async fn earliest_cursor(
    ctx: &Ctx,
    object: &str,
    cursor: &str,
    lower: Option<DateTime<Utc>>,
    upper: DateTime<Utc>,
    filter: Option<&str>,
) -> Result<Option<DateTime<Utc>>, FetchError> {
    let mut q = soql::select(
        object,
        &[cursor.to_string()],
        Some(cursor),
        Some(Window { lower, upper }),
        filter,
        true,
    );
    q.push_str(" LIMIT 1");
    let page = rest::fetch_page(
        &ctx.client,
        &rest::first_page_url(&ctx.client, &q, true),
        200,
    )
    .await?;
    Ok(page
        .records
        .first()
        .and_then(|r| r.get(cursor))
        .and_then(Value::as_str)
        .and_then(super::cursor::parse_datetime))
}

/// Smallest URL budget sfetl shrinks to after 414/431 answers.
const MIN_URL_BUDGET: usize = 1000;

/// Column added to streams with a cursor: when the row was found deleted (hard deletes and
/// purges reported by the `deleted` endpoint); null for rows read normally.
pub const DELETED_AT: &str = "_sfetl_deleted_at";

fn with_deleted_at(schema: &SchemaRef) -> SchemaRef {
    let mut fields: Vec<arrow::datatypes::FieldRef> = schema.fields().iter().cloned().collect();
    fields.push(Arc::new(arrow::datatypes::Field::new(
        DELETED_AT,
        arrow::datatypes::DataType::Timestamp(
            arrow::datatypes::TimeUnit::Microsecond,
            Some(Arc::from("UTC")),
        ),
        true,
    )));
    Arc::new(arrow::datatypes::Schema::new(fields))
}

fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
