//! `sfetl write`: rows (Airbyte RECORDs or a Parquet/CSV file) applied to Salesforce.
//!
//! Rows are buffered per stream and decoded into Arrow batches; each route takes the rows its
//! SQL `when` selects and computes field values with SQL expressions (`route`); values are
//! formatted as Salesforce expects (`format`) and applied through sObject Collections or Bulk
//! API 2.0 ingest by batch size (`apply`, `collections`, `bulk`); refused rows go to a Parquet
//! rejects file (`rejects`). A STATE is echoed only once every row before it is applied or
//! recorded as rejected.

pub mod apply;
pub mod bulk;
pub mod collections;
pub mod config;
pub mod format;
pub mod input;
pub mod rejects;
pub mod route;

use std::collections::{BTreeMap, HashMap};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::prelude::SessionContext;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::catalog::SObjectDescribe;
use crate::output::stdout::Out;
use crate::protocol::{AirbyteMessage, FailureType, LogLevel};
use crate::salesforce::{SalesforceClient, SalesforceError};
use crate::secret::Secret;
use apply::{ApplyOptions, Outcome, Payload, apply, uses_bulk};
use config::Writeback;
use rejects::{Reject, Rejects};
use route::CompiledRoute;

/// Why `sfetl write` stopped.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The `writeback` config is wrong (every problem listed).
    #[error("the writeback config has {} problem(s):\n  - {}", .0.len(), .0.join("\n  - "))]
    Config(Vec<String>),
    /// A route cannot be planned for the incoming columns.
    #[error("{at}: {reason}")]
    Route {
        /// Where in the config.
        at: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// The input is not what the protocol or the file format says.
    #[error("{}{message}", .line.map(|l| format!("input line {l}: ")).unwrap_or_default())]
    Input {
        /// 1-based input line, when known.
        line: Option<u64>,
        /// What is wrong.
        message: String,
    },
    /// A Salesforce call failed as a whole (after retries).
    #[error("{during}: {source}")]
    Salesforce {
        /// What sfetl was doing.
        during: String,
        /// The error.
        source: SalesforceError,
    },
    /// Writing the rejects file failed.
    #[error("rejects file: {0}")]
    Output(crate::output::OutputError),
    /// An answer or internal step was not as expected.
    #[error("{0}")]
    Protocol(String),
}

impl SinkError {
    /// The protocol's failure type.
    pub fn failure_type(&self) -> FailureType {
        match self {
            SinkError::Config(_) | SinkError::Route { .. } | SinkError::Input { .. } => {
                FailureType::ConfigError
            }
            SinkError::Salesforce { source, .. } => source.failure_type(),
            SinkError::Output(crate::output::OutputError::Location { .. }) => {
                FailureType::ConfigError
            }
            SinkError::Output(_) | SinkError::Protocol(_) => FailureType::SystemError,
        }
    }
}

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
    state: datafusion::execution::session_state::SessionState,
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
        let opts = ApplyOptions {
            bulk_threshold: writeback.bulk_threshold,
            max_upload_bytes: writeback.max_upload_bytes,
            ..ApplyOptions::default()
        };
        Ok(Sink {
            client,
            rejects: Rejects::new(&writeback.rejects_path, &options.storage_options),
            writeback,
            describes,
            streams: HashMap::new(),
            opts,
            dry_run: options.dry_run,
            out,
            state: SessionContext::new().state(),
            stats: Vec::new(),
            since_state_total: 0,
        })
    }

    /// Declares an incoming stream with its row schema and compiles its routes.
    pub fn add_stream(&mut self, name: &str, schema: SchemaRef) -> Result<(), SinkError> {
        let routes = self.writeback.stream(name).ok_or_else(|| {
            SinkError::Config(vec![format!(
                "writeback.streams: no routes for the incoming stream {name:?} (configured: {}); add \"{name}\": {{\"routes\": [...]}} or leave the stream out of the catalog",
                self.writeback.streams.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
            )])
        })?;
        let mut compiled = Vec::with_capacity(routes.routes.len());
        for (i, r) in routes.routes.iter().enumerate() {
            let d = self.describes.get(&r.object).ok_or_else(|| {
                SinkError::Config(vec![format!("object {} was not described", r.object)])
            })?;
            compiled.push(CompiledRoute::compile(name, i, r, d, &schema, &self.state)?);
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
        let batch = input::decode_rows(&s.schema, &rows, stream, &lines)?;
        drop(rows);
        self.apply_batch(stream, &batch).await
    }

    /// Routes and applies one batch of `stream`; refused rows are recorded before returning.
    pub async fn apply_batch(
        &mut self,
        stream: &str,
        batch: &RecordBatch,
    ) -> Result<(), SinkError> {
        let Some(s) = self.streams.get(stream) else {
            return Err(SinkError::Input {
                line: None,
                message: format!("rows of stream {stream:?}, which has no writeback routes"),
            });
        };
        let mut taken = vec![false; batch.num_rows()];
        let mut rejected: Vec<Reject> = Vec::new();
        let mut per_route: Vec<(String, RouteStats)> = Vec::new();
        for route in &s.routes {
            let routed = route.take(batch, &mut taken)?;
            if routed.rows.is_empty() {
                continue;
            }
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
                per_route.push((route.label.clone(), st));
                continue;
            }
            let outcomes = apply(&self.client, &payload, &self.opts).await?;
            for (pos, o) in outcomes.into_iter().enumerate() {
                match o {
                    Outcome::Applied => st.applied += 1,
                    Outcome::Failed { code, message } => {
                        st.rejected += 1;
                        rejected.push(Reject {
                            row: routed.rows[pos],
                            route: route.label.clone(),
                            object: route.route.object.clone(),
                            operation: route.route.operation.as_str().to_string(),
                            code,
                            message,
                        });
                    }
                }
            }
            per_route.push((route.label.clone(), st));
        }
        for (row, t) in taken.iter().enumerate() {
            if !t {
                rejected.push(Reject {
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
        }
        let unrouted = taken.iter().filter(|t| !**t).count() as u64;
        if !self.dry_run {
            rejected.sort_by_key(|r| r.row);
            self.rejects.record(stream, batch, &rejected).await?;
        }
        for (label, st) in per_route {
            if let Some((_, total)) = self.stats.iter_mut().find(|(l, _)| *l == label) {
                total.applied += st.applied;
                total.rejected += st.rejected;
                total.collections_batches += st.collections_batches;
                total.bulk_batches += st.bulk_batches;
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
        Ok(())
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
            let mut m = serde_json::Map::new();
            for c in payload.columns() {
                let (name, kind) = payload.fields[c];
                m.insert(
                    name.to_string(),
                    format::json_value(payload.value(c, row), kind),
                );
            }
            text.push_str(&format!("\n  {}", Value::Object(m)));
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

/// Describes every object the routes name; an object the org does not have is left out (the
/// check then names it), any other failure stops the run.
async fn fetch_describes(
    client: &SalesforceClient,
    writeback: &Writeback,
) -> Result<HashMap<String, SObjectDescribe>, SinkError> {
    let mut out = HashMap::new();
    for s in &writeback.streams {
        for r in &s.routes {
            if out.contains_key(&r.object) || r.object.is_empty() {
                continue;
            }
            let url = client.data_url(&format!("sobjects/{}/describe", r.object));
            match client.get_json::<SObjectDescribe>(&url).await {
                Ok(d) => {
                    out.insert(r.object.clone(), d);
                }
                Err(SalesforceError::Api { status: 404, .. })
                | Err(SalesforceError::Api { status: 400, .. }) => {}
                Err(e) => {
                    return Err(SinkError::Salesforce {
                        during: format!("describing {}", r.object),
                        source: e,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// Checks the config's `writeback` section against the org (for `sfetl check`): `Ok(None)`
/// when there is none, otherwise how many routes were checked.
pub async fn check_writeback(
    client: &SalesforceClient,
    raw: Option<&Value>,
) -> Result<Option<usize>, SinkError> {
    if raw.is_none() {
        return Ok(None);
    }
    let wb = Writeback::parse(raw).map_err(SinkError::Config)?;
    let describes = fetch_describes(client, &wb).await?;
    wb.check_describes(|o| describes.get(o).cloned())
        .map_err(SinkError::Config)?;
    Ok(Some(wb.streams.iter().map(|s| s.routes.len()).sum()))
}

#[cfg(test)]
mod tests;
