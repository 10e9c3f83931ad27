//! The write engine ([`Sink`]): per incoming stream its compiled routes and buffered rows;
//! batches are routed, applied, and their refused rows recorded before a STATE is echoed.

use std::collections::{BTreeMap, HashMap};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::apply::{ApplyOptions, apply, uses_bulk};
use super::config::Writeback;
use super::describe::fetch_describes;
use super::error::SinkError;
use super::payload::{Outcome, Payload, UNPROCESSED};
use super::rejects::{Reject, Rejects};
use super::route::{CompiledRoute, Routed};
use super::{collections, input};
use crate::catalog::SObjectDescribe;
use crate::expr::Planner;
use crate::output::stdout::Out;
use crate::protocol::{AirbyteMessage, LogLevel};
use crate::salesforce::SalesforceClient;
use crate::secret::Secret;

/// Applied and rejected rows of one route.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteStats {
    /// Rows Salesforce applied (or, in a dry run, would be sent).
    pub applied: u64,
    /// Rows refused (recorded in the rejects file).
    pub rejected: u64,
    /// Calls through sObject Collections / Bulk jobs.
    pub collections_batches: u64,
    /// Bulk batches (one or more jobs each).
    pub bulk_batches: u64,
}

impl RouteStats {
    fn add(&mut self, other: &RouteStats) {
        self.applied += other.applied;
        self.rejected += other.rejected;
        self.collections_batches += other.collections_batches;
        self.bulk_batches += other.bulk_batches;
    }
}

/// Settings of a [`Sink`].
#[derive(Debug, Clone)]
pub struct SinkOptions {
    /// Validate and print, never write.
    pub dry_run: bool,
    /// Storage options for the rejects location and object-store inputs.
    pub storage_options: BTreeMap<String, Secret>,
}

struct StreamSink {
    schema: SchemaRef,
    routes: Vec<CompiledRoute>,
    pending: Vec<Value>,
    lines: Vec<u64>,
    since_state: u64,
}

/// What applying one batch gave: refused rows, per-route counts, and rows Salesforce left
/// unprocessed (route label, count, reason), which stop the run once recorded.
#[derive(Default)]
struct BatchResult {
    rejects: Vec<Reject>,
    per_route: Vec<(String, RouteStats)>,
    unprocessed: Option<(String, u64, String)>,
}

/// The write engine: streams, their compiled routes and pending rows, and the run's counts.
pub struct Sink {
    client: SalesforceClient,
    writeback: Writeback,
    describes: HashMap<String, SObjectDescribe>,
    streams: HashMap<String, StreamSink>,
    rejects: Rejects,
    opts: ApplyOptions,
    dry_run: bool,
    out: mpsc::Sender<Out>,
    planner: Planner,
    /// Per route label, in first-use order.
    pub stats: Vec<(String, RouteStats)>,
    since_state_total: u64,
}

impl Sink {
    /// Validates the writeback against the org's describes and prepares the engine.
    pub async fn new(
        client: SalesforceClient,
        writeback: Writeback,
        options: SinkOptions,
        out: mpsc::Sender<Out>,
    ) -> Result<Sink, SinkError> {
        let describes = fetch_describes(&client, &writeback).await?;
        writeback
            .check_describes(|o| describes.get(o).cloned())
            .map_err(SinkError::Config)?;
        let opts = ApplyOptions::new(writeback.bulk_threshold, writeback.max_upload_bytes);
        Ok(Sink {
            client,
            rejects: Rejects::new(&writeback.rejects_path, &options.storage_options),
            writeback,
            describes,
            streams: HashMap::new(),
            opts,
            dry_run: options.dry_run,
            out,
            planner: Planner::new(),
            stats: Vec::new(),
            since_state_total: 0,
        })
    }

    /// Refuses a stream the config has no routes for (also when its input holds no row, so a
    /// misspelt `--stream` does not pass unnoticed on an empty file).
    pub fn check_stream(&self, name: &str) -> Result<(), SinkError> {
        match self.writeback.stream(name) {
            Some(_) => Ok(()),
            None => Err(self.no_routes(name)),
        }
    }

    fn no_routes(&self, name: &str) -> SinkError {
        SinkError::Config(vec![format!(
            "writeback.streams: no routes for the incoming stream {name:?} (configured: {}); add \"{name}\": {{\"routes\": [...]}} or leave the stream out of the catalog",
            self.writeback
                .streams
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )])
    }

    /// Declares an incoming stream with its row schema and compiles its routes.
    pub fn add_stream(&mut self, name: &str, schema: SchemaRef) -> Result<(), SinkError> {
        let routes = self
            .writeback
            .stream(name)
            .ok_or_else(|| self.no_routes(name))?;
        let mut compiled = Vec::with_capacity(routes.routes.len());
        for (i, r) in routes.routes.iter().enumerate() {
            let d = self.describes.get(&r.object).ok_or_else(|| {
                SinkError::Config(vec![format!("object {} was not described", r.object)])
            })?;
            compiled.push(CompiledRoute::compile(
                name,
                i,
                r,
                d,
                &schema,
                &self.planner,
            )?);
        }
        for r in &compiled {
            if !self.stats.iter().any(|(l, _)| l == &r.label) {
                self.stats.push((r.label.clone(), RouteStats::default()));
            }
        }
        self.streams.insert(
            name.to_string(),
            StreamSink {
                schema,
                routes: compiled,
                pending: Vec::new(),
                lines: Vec::new(),
                since_state: 0,
            },
        );
        Ok(())
    }

    /// Whether `name` was declared.
    pub fn has_stream(&self, name: &str) -> bool {
        self.streams.contains_key(name)
    }

    /// Buffers one RECORD's data (from input line `line`); applies the stream's rows when
    /// `batch_rows` are waiting.
    pub async fn push(&mut self, stream: &str, data: Value, line: u64) -> Result<(), SinkError> {
        let s = self.streams.get_mut(stream).ok_or_else(|| SinkError::Input {
            line: Some(line),
            message: format!("RECORD of stream {stream:?}, which the configured catalog does not list; add it to the catalog"),
        })?;
        s.pending.push(data);
        s.lines.push(line);
        s.since_state += 1;
        self.since_state_total += 1;
        if s.pending.len() >= self.writeback.batch_rows {
            self.flush_stream(stream).await?;
        }
        Ok(())
    }

    /// Applies every buffered row, then echoes `state` (a STATE message as received) with
    /// `destinationStats.recordCount` set to the records it covers. In a dry run nothing is
    /// applied, so the STATE is not echoed.
    pub async fn state(&mut self, mut message: Value) -> Result<(), SinkError> {
        self.flush_all().await?;
        let stream = message["state"]["stream"]["stream_descriptor"]["name"]
            .as_str()
            .map(str::to_string);
        let count = match stream.as_deref().and_then(|n| self.streams.get_mut(n)) {
            Some(s) => {
                let n = s.since_state;
                s.since_state = 0;
                self.since_state_total = self.since_state_total.saturating_sub(n);
                n
            }
            None => {
                for s in self.streams.values_mut() {
                    s.since_state = 0;
                }
                std::mem::take(&mut self.since_state_total)
            }
        };
        if self.dry_run {
            return Ok(());
        }
        message["state"]["destinationStats"] = json!({"recordCount": count as f64});
        let mut line = serde_json::to_vec(&message).unwrap_or_default();
        line.push(b'\n');
        self.out
            .send(Out::Lines(line))
            .await
            .map_err(|_| SinkError::Protocol("stdout closed".into()))
    }

    /// Applies every stream's buffered rows.
    pub async fn flush_all(&mut self) -> Result<(), SinkError> {
        let mut names: Vec<String> = self
            .streams
            .iter()
            .filter(|(_, s)| !s.pending.is_empty())
            .map(|(n, _)| n.clone())
            .collect();
        names.sort();
        for n in names {
            self.flush_stream(&n).await?;
        }
        Ok(())
    }

    async fn flush_stream(&mut self, stream: &str) -> Result<(), SinkError> {
        let Some(s) = self.streams.get_mut(stream) else {
            return Ok(());
        };
        let rows = std::mem::take(&mut s.pending);
        let lines = std::mem::take(&mut s.lines);
        let (batch, absent) = input::decode_rows(&s.schema, &rows, stream, &lines)?;
        drop(rows);
        self.apply_batch(stream, &batch, &absent).await
    }

    /// Routes and applies one batch of `stream`; refused rows are recorded before returning.
    /// Rows Salesforce left unprocessed are recorded too, then stop the run
    /// ([`SinkError::Unprocessed`]) so that no STATE covers them.
    pub async fn apply_batch(
        &mut self,
        stream: &str,
        batch: &RecordBatch,
        absent: &input::Absent,
    ) -> Result<(), SinkError> {
        let Some(s) = self.streams.get(stream) else {
            return Err(SinkError::Input {
                line: None,
                message: format!("rows of stream {stream:?}, which has no writeback routes"),
            });
        };
        let mut taken = vec![false; batch.num_rows()];
        let mut result = BatchResult::default();
        for route in &s.routes {
            let routed = route.take(batch, absent, &mut taken)?;
            if !routed.rows.is_empty() {
                self.apply_route(route, &routed, &mut result).await?;
            }
        }
        let unrouted = no_route(stream, &taken, &mut result.rejects);
        if !self.dry_run {
            result.rejects.sort_by_key(|r| r.row);
            self.rejects.record(stream, batch, &result.rejects).await?;
        }
        self.count(stream, &result.per_route, unrouted);
        match result.unprocessed {
            Some((route, rows, reason)) => Err(SinkError::Unprocessed {
                route,
                rows,
                reason,
            }),
            None => Ok(()),
        }
    }

    /// Applies the rows one route took; outcomes go to `result`.
    async fn apply_route(
        &self,
        route: &CompiledRoute,
        routed: &Routed,
        result: &mut BatchResult,
    ) -> Result<(), SinkError> {
        let payload = Payload {
            object: &route.route.object,
            operation: route.route.operation,
            external_id: route.external_id.as_deref(),
            fields: route
                .fields
                .iter()
                .map(|f| (f.name.as_str(), f.kind.as_str()))
                .collect(),
            values: &routed.values,
            absent: &routed.absent,
        };
        let mut st = RouteStats::default();
        if uses_bulk(payload.len(), &self.opts) {
            st.bulk_batches += 1;
        } else {
            st.collections_batches += 1;
        }
        if self.dry_run {
            self.describe_dry_run(&route.label, &payload).await;
            st.applied = payload.len() as u64;
            result.per_route.push((route.label.clone(), st));
            return Ok(());
        }
        let outcomes = apply(&self.client, &payload, &self.opts).await?;
        for (pos, o) in outcomes.into_iter().enumerate() {
            let (code, message) = match o {
                Outcome::Applied => {
                    st.applied += 1;
                    continue;
                }
                Outcome::Failed { code, message } => (code, message),
                Outcome::Unprocessed { message } => {
                    let (routes, rows, _) = result
                        .unprocessed
                        .get_or_insert_with(|| (route.label.clone(), 0, message.clone()));
                    if !routes.split(" and ").any(|l| l == route.label) {
                        routes.push_str(&format!(" and {}", route.label));
                    }
                    *rows += 1;
                    (UNPROCESSED.to_string(), message)
                }
            };
            st.rejected += 1;
            result.rejects.push(Reject {
                row: routed.rows[pos],
                route: route.label.clone(),
                object: route.route.object.clone(),
                operation: route.route.operation.as_str().to_string(),
                code,
                message,
            });
        }
        result.per_route.push((route.label.clone(), st));
        Ok(())
    }

    /// Adds a batch's counts to the run's.
    fn count(&mut self, stream: &str, per_route: &[(String, RouteStats)], unrouted: u64) {
        for (label, st) in per_route {
            if let Some((_, total)) = self.stats.iter_mut().find(|(l, _)| l == label) {
                total.add(st);
            }
        }
        if unrouted > 0 {
            let label = format!("{stream} (no matching route)");
            match self.stats.iter_mut().find(|(l, _)| *l == label) {
                Some((_, st)) => st.rejected += unrouted,
                None => self.stats.push((
                    label,
                    RouteStats {
                        rejected: unrouted,
                        ..RouteStats::default()
                    },
                )),
            }
        }
    }

    async fn describe_dry_run(&self, label: &str, payload: &Payload<'_>) {
        let bulk = uses_bulk(payload.len(), &self.opts);
        let how = if bulk {
            "Bulk API 2.0 ingest (one job)".to_string()
        } else {
            format!(
                "sObject Collections ({} call(s))",
                payload.len().div_ceil(collections::MAX_RECORDS)
            )
        };
        let mut text = format!(
            "dry run: {label}: would {} {} {} record(s) through {how}",
            payload.operation.as_str(),
            payload.len(),
            payload.object
        );
        for row in 0..payload.len().min(5) {
            let fields = Value::Object(collections::fields(payload, row));
            text.push_str(&format!("\n  {fields}"));
        }
        if payload.len() > 5 {
            text.push_str(&format!("\n  ... and {} more", payload.len() - 5));
        }
        eprintln!("sfetl: {text}");
        let _ = self
            .out
            .send(Out::Message(Box::new(AirbyteMessage::log(
                LogLevel::Info,
                text,
            ))))
            .await;
    }

    /// The rejects files written so far.
    pub fn reject_files(&self) -> &[String] {
        &self.rejects.files
    }

    /// Rows applied so far over all routes.
    pub fn applied(&self) -> u64 {
        self.stats.iter().map(|(_, s)| s.applied).sum()
    }

    /// The end-of-run summary: applied / rejected per route and where the rejects are.
    pub fn summary(&self) -> String {
        let verb = if self.dry_run {
            "would send"
        } else {
            "applied"
        };
        let mut lines = vec![if self.dry_run {
            "write summary (dry run, nothing was written):".to_string()
        } else {
            "write summary:".to_string()
        }];
        for (label, s) in &self.stats {
            lines.push(format!(
                "  {label}: {} {verb}, {} rejected",
                s.applied, s.rejected
            ));
        }
        if !self.rejects.files.is_empty() {
            lines.push(format!("  rejects: {}", self.rejects.files.join(", ")));
        }
        lines.join("\n")
    }
}

/// Rejects for the rows no route took; how many.
fn no_route(stream: &str, taken: &[bool], rejects: &mut Vec<Reject>) -> u64 {
    let mut n = 0;
    for (row, _) in taken.iter().enumerate().filter(|(_, t)| !**t) {
        n += 1;
        rejects.push(Reject {
            row,
            route: String::new(),
            object: String::new(),
            operation: String::new(),
            code: "NO_MATCHING_ROUTE".into(),
            message: format!(
                "no route of stream {stream} matched this row; add a route (a route without \"when\" takes every remaining row)"
            ),
        });
    }
    n
}
