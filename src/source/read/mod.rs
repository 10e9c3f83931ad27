//! `read`: every configured stream planned, fetched, decoded, written, and checkpointed.
//!
//! The stages, one module each: [`plan`] decides what to read (pure); `fetch` walks the
//! windows of each object and hands batches to the output; `bulk`, `rest` and `deleted`
//! page through their APIs; `checkpoint` makes rows durable and emits the STATE covering
//! them. Streams run concurrently (bounded). Everything bound for stdout goes through one
//! bounded channel to one writer task, so a stream's RECORD lines always precede the STATE that
//! covers them, and a slow consumer slows the readers instead of filling memory.

pub mod ancestors;
mod backfill;
mod bulk;
mod checkpoint;
mod concurrent;
pub mod counts;
mod deleted;
pub mod drift;
mod fetch;
mod filtered;
mod formulas;
pub mod freshness;
mod lookups;
mod parents;
pub mod plan;
mod rest;
mod resume;
pub mod sizing;
pub mod slice;
mod slice_read;
pub mod slicing;
mod table_state;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use futures::StreamExt;
use serde_json::Value;
use tokio::sync::mpsc;

use super::FetchError;
use super::progress::Progress;
use crate::config::Config;
use crate::output::stdout::Out;
use crate::output::{Destination, OutputError, StreamWriter, SyncStart, prepare_resume};
use crate::protocol::{
    AirbyteMessage, AirbyteStreamStatus, AirbyteStreamStatusTraceMessage, AirbyteTraceMessage,
    ConfiguredAirbyteStream, LogLevel, StreamDescriptor, TraceType, now_millis,
};
use crate::salesforce::bulk::PollPolicy;
use crate::salesforce::{SalesforceClient, SalesforceError};
use crate::state::InputState;
pub use crate::stop::StopSignal;
use plan::StreamPlan;

/// Tuning of a read.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Rows per Bulk results page (`maxRecords`).
    pub max_records: u64,
    /// REST page size asked for (`Sforce-Query-Options: batchSize`).
    pub rest_batch_size: u32,
    /// Longest REST query URL; wider field lists are split (see `rest`).
    pub rest_max_url: usize,
    /// Streams read at once.
    pub concurrency: usize,
    /// Bulk job polling.
    pub poll: PollPolicy,
    /// Rows per decoded batch.
    pub batch_rows: usize,
    /// Attempts at one results page cut off midway.
    pub page_attempts: u32,
    /// Draw progress bars on stderr when it is a terminal.
    pub show_progress: bool,
    /// Stop request shared with signal handlers.
    pub stop: StopSignal,
    /// The compiled field mapping, when the config has one.
    pub mapping: Option<Arc<crate::mapping::MappingPlan>>,
    /// One slice of `sfetl plan` to read (`read --slice`): its stream's object, its window.
    pub slice: Option<Arc<slice::SliceRun>>,
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
            show_progress: false,
            stop: StopSignal::default(),
            mapping: None,
            slice: None,
        }
    }
}

/// Outcome of a read.
#[derive(Debug, Default)]
pub struct ReadSummary {
    /// Rows read per stream.
    pub rows: BTreeMap<String, u64>,
    /// Streams that failed, with why.
    pub failures: Vec<(String, FetchError)>,
}

/// What every stage of one read shares.
struct Ctx {
    client: SalesforceClient,
    config: Arc<Config>,
    out: mpsc::Sender<Out>,
    opts: ReadOptions,
    destination: Destination,
    progress: Progress,
    /// Set once Salesforce refused a Bulk job for the daily cap: every stream reads through
    /// REST for the rest of the run (or stops, when REST would pass the usage allowed).
    bulk_cap: std::sync::Mutex<Option<String>>,
    /// Whether the switch to REST for the Bulk cap was logged (once per run).
    bulk_cap_logged: std::sync::atomic::AtomicBool,
}

impl Ctx {
    async fn emit(&self, m: AirbyteMessage) -> Result<(), FetchError> {
        self.out
            .send(Out::Message(Box::new(m)))
            .await
            .map_err(|_| FetchError::Output(OutputError::StdoutClosed))
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
            analytics: None,
        }))
        .await
    }

    async fn log(&self, level: LogLevel, text: String) {
        tracing::info!("{text}");
        let _ = self.emit(AirbyteMessage::log(level, text)).await;
    }

    /// Salesforce's refusal, once a Bulk job was refused for the daily cap in this run.
    fn bulk_cap(&self) -> Option<String> {
        self.bulk_cap
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Remembers that the daily Bulk cap is reached, for every stream of the run.
    fn set_bulk_cap(&self, message: String) {
        *self.bulk_cap.lock().unwrap_or_else(|e| e.into_inner()) = Some(message);
    }

    /// `Err(Stopped)` once a stop was requested.
    fn check_stop(&self) -> Result<(), FetchError> {
        if self.opts.stop.is_stopped() {
            Err(FetchError::Stopped)
        } else {
            Ok(())
        }
    }
}

/// Reads every configured stream; per-stream failures are collected, not fatal to the others.
pub async fn read(
    client: SalesforceClient,
    config: Arc<Config>,
    streams: Vec<ConfiguredAirbyteStream>,
    state: InputState,
    mut destination: Destination,
    out: mpsc::Sender<Out>,
    opts: ReadOptions,
) -> ReadSummary {
    let concurrency = opts.concurrency.max(1);
    destination.share_row_groups(concurrency.min(streams.len()));
    let progress = if opts.show_progress {
        Progress::for_stderr()
    } else {
        Progress::hidden()
    };
    let ctx = Arc::new(Ctx {
        client,
        config,
        out,
        opts,
        destination,
        progress,
        bulk_cap: std::sync::Mutex::new(None),
        bulk_cap_logged: std::sync::atomic::AtomicBool::new(false),
    });
    if ctx.opts.slice.is_none() {
        // A slice cleans up only its own attempts: other processes may be writing now.
        sweep_staging(&ctx).await;
    }
    let state = Arc::new(state);
    let results: Vec<(String, Result<u64, FetchError>)> = futures::stream::iter(streams)
        .map(|cs| {
            let ctx = ctx.clone();
            let state = state.clone();
            async move {
                let name = cs.stream.name.clone();
                let r = read_stream(&ctx, &cs, state.stream(&name)).await;
                if let Err(FetchError::Salesforce(SalesforceError::RequestLimitExceeded {
                    ..
                })) = &r
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

/// Describes the stream's objects and plans its read, with what keeps each object's values
/// fresh beyond its own cursor (parents followed, formulas refreshed).
async fn plan_stream<'c>(
    ctx: &'c Ctx,
    cs: &ConfiguredAirbyteStream,
    saved: Option<&Value>,
) -> Result<(StreamPlan<'c>, Vec<freshness::Freshness>), FetchError> {
    let name = cs.stream.name.as_str();
    let mapping = ctx.opts.mapping.as_deref();
    if let Some(message) = mapping.and_then(|m| m.drifted(name)) {
        return Err(FetchError::SchemaDrift(message.to_string()));
    }
    for warning in mapping.map(|m| m.warnings(name)).unwrap_or_default() {
        ctx.log(LogLevel::Warn, warning.to_string()).await;
    }
    let mapped = mapping.and_then(|m| m.stream(name));
    let describes = slicing::describes(&ctx.client, cs, mapped).await?;
    let object_schema;
    let current = match mapped {
        Some(mapped) => &mapped.json_schema,
        None => {
            object_schema = crate::catalog::record_json_schema(&describes[name]);
            &object_schema
        }
    };
    check_drift(ctx, name, &cs.stream.json_schema, current).await?;
    let (plan, ancestors) =
        slicing::plan_described(&ctx.client, &ctx.config, cs, saved, mapped, &describes).await?;
    // A mapping's source reads its mapped fields and filter; an object stream its fields.
    let fresh = plan
        .objects
        .iter()
        .zip(&ancestors)
        .map(|(o, a)| match describes.get(&o.object) {
            Some(d) => {
                let filter = o.soql_where.as_deref();
                freshness::analyse_read(d, &o.rest.select, filter, !plan.mapped, a)
            }
            None => freshness::Freshness::default(),
        })
        .collect();
    Ok((plan, fresh))
}

/// One stream: describe, plan, open the output, read each object, close.
async fn read_stream(
    ctx: &Ctx,
    cs: &ConfiguredAirbyteStream,
    saved: Option<&Value>,
) -> Result<u64, FetchError> {
    let name = cs.stream.name.as_str();
    ctx.status(name, AirbyteStreamStatus::Started).await?;
    let saved = table_state::saved_state(ctx, cs, saved).await?;
    let (plan, fresh) = plan_stream(ctx, cs, saved.as_ref()).await?;
    for (level, text) in &plan.notes {
        ctx.log(*level, text.clone()).await;
    }
    if plan.incremental {
        for note in fresh.iter().flat_map(|f| &f.notes) {
            ctx.log(LogLevel::Info, note.clone()).await;
        }
        for warning in fresh.iter().flat_map(|f| &f.warnings) {
            ctx.log(LogLevel::Warn, warning.clone()).await;
        }
    }
    if let Some(run) = &ctx.opts.slice {
        if plan.incremental && fresh.iter().any(|f| !f.is_empty()) {
            let text = format!(
                "{name}: a slice reads its own window only: it does not read again the rows whose parent changed, nor refresh formula fields, so values that follow a parent can stay stale in the slices' output; a plain `sfetl read` of the stream (after the slices, from their merged STATE) keeps them fresh"
            );
            ctx.log(LogLevel::Warn, text).await;
        }
        if !plan.incremental && plan.objects.len() > 1 {
            let text = format!(
                "{name}: a full refresh of {} objects is one slice per object, and each slice adds its object's rows to the output without replacing it, so rows deleted in the org since an earlier full refresh stay in it; a plain `sfetl read` of the stream replaces the output whole",
                plan.objects.len()
            );
            ctx.log(LogLevel::Warn, text).await;
        }
        return slice_read::read_slice(ctx, &plan, run).await;
    }
    let mut writer = open_writer(ctx, &plan, None).await?;
    ctx.status(name, AirbyteStreamStatus::Running).await?;
    let started = Utc::now();
    let mut sources = plan.saved.sources.clone();
    let mut carry = parents::Carry {
        fresh: plan.saved.fresh.clone(),
        ..Default::default()
    };
    let mut total = 0;
    let mut summaries = Vec::new();
    for (object, fresh) in plan.objects.iter().zip(&fresh) {
        let mut reader = fetch::ObjectReader::new(ctx, &plan, object, sources);
        reader.freshness = Some(fresh);
        reader.carry = carry;
        let rows = reader.read_all(writer.as_mut()).await?;
        total += rows;
        warn_keyless(ctx, &plan, &reader).await;
        summaries.push(reader.summary(rows, started));
        carry = parents::Carry {
            own_at: None,
            ..std::mem::take(&mut reader.carry)
        };
        sources = reader.into_sources();
    }
    writer.finish().await?;
    let summary = if plan.mapped {
        format!("{name} (mapped): {}", summaries.join("; "))
    } else {
        format!("{name}: {}", summaries.join("; "))
    };
    ctx.log(LogLevel::Info, summary).await;
    ctx.status(name, AirbyteStreamStatus::Complete).await?;
    Ok(total)
}

/// Compares the fields the catalog selects (`selected`, a stream's JSON schema) with the ones
/// `current` offers now: a warning to read on without vanished fields, or the error ending
/// the stream, as `schema_drift` and [`drift::verdict`] decide.
async fn check_drift(
    ctx: &Ctx,
    object: &str,
    selected: &Value,
    current: &Value,
) -> Result<(), FetchError> {
    let found = drift::compare(&drift::properties(selected), &drift::properties(current));
    match drift::verdict(object, &found, ctx.config.schema_drift) {
        Ok(None) => Ok(()),
        Ok(Some(warning)) => {
            ctx.log(LogLevel::Warn, warning).await;
            Ok(())
        }
        Err(message) => Err(FetchError::SchemaDrift(message)),
    }
}

/// A WARN when rows of a mapped object had no value in a key column: `sfetl query` keeps each
/// of them, but nothing downstream can tell them apart or match them to a later version.
async fn warn_keyless(ctx: &Ctx, plan: &StreamPlan<'_>, reader: &fetch::ObjectReader<'_>) {
    let Some((column, rows)) = &reader.keyless else {
        return;
    };
    let text = format!(
        "{}: {rows} row(s) of {} have no value in {column}, a column of the primary key: nothing tells them apart, so a destination that deduplicates on the key cannot match them to their later versions (and a Delta table refuses them). Give the mapping's stream a primary_key whose columns always have a value (a column mapped from Id has one)",
        plan.name, reader.object.object
    );
    ctx.log(LogLevel::Warn, text).await;
}

/// Opens the stream's output; a resumed Parquet export first loses the files its STATE proves
/// superseded.
async fn open_writer(
    ctx: &Ctx,
    plan: &StreamPlan<'_>,
    slice: Option<crate::output::sync::SliceMark>,
) -> Result<Box<dyn StreamWriter>, FetchError> {
    let resumed_from = plan
        .saved
        .output
        .clone()
        .filter(|_| plan.incremental && slice.is_none());
    if let Destination::Parquet { location, .. } = &ctx.destination
        && slice.is_none()
    {
        for note in prepare_resume(location, &plan.name, resumed_from.as_ref()).await? {
            ctx.log(LogLevel::Info, note).await;
        }
    }
    // A full refresh of a one-object stream is one slice holding every row: it replaces the
    // output as a plain full refresh does. Any other slice holds part of the stream.
    let whole = slice.is_none() || (!plan.incremental && plan.objects.len() == 1);
    let start = SyncStart {
        base: (!plan.incremental || !plan.has_state) && whole,
        resumed_from,
        incremental: plan.incremental,
        cursor: plan
            .objects
            .first()
            .and_then(|o| o.cursor)
            .map(str::to_string),
        slice,
    };
    Ok(ctx
        .destination
        .open(&plan.name, &plan.out_schema, &ctx.out, start)?)
}

/// Removes the staging files killed runs left anywhere in a Parquet output.
async fn sweep_staging(ctx: &Ctx) {
    let Destination::Parquet { location, .. } = &ctx.destination else {
        return;
    };
    match location.remove_staging() {
        Ok(removed) if !removed.is_empty() => {
            let names: Vec<String> = removed.iter().map(|p| p.display().to_string()).collect();
            let text = format!(
                "removed {} unfinished file(s) left by interrupted runs: {}",
                names.len(),
                names.join(", ")
            );
            ctx.log(LogLevel::Info, text).await;
        }
        Ok(_) => {}
        Err(e) => {
            let text = format!(
                "could not remove unfinished files of interrupted runs in {}: {e}",
                location.display
            );
            ctx.log(LogLevel::Warn, text).await;
        }
    }
}
