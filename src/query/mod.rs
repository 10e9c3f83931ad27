//! `sfetl query --path OUTPUT "SQL"`: DataFusion SQL over a Parquet or Delta export, for
//! analysts.
//!
//! Every stream folder of a Parquet export (`<path>/<stream>/<sync-id>/part-NNNNN.parquet`) is
//! a table `<stream>` holding the latest version of each row (see `tables` for the rules),
//! and `<stream>_history` holding every row of every sync. Every Delta table of a Delta export
//! (`<path>/<stream>/_delta_log/`) is a table by its folder name: `<stream>` holds the current
//! rows, and `<stream>_history` (with `history: true`) every row version (see `delta`). Names are case-sensitive as written
//! (`SELECT Name FROM Account`); lower-case aliases of the tables exist too. Only queries run:
//! DDL, DML and `SET` statements are refused, so an export is never changed.

mod delta;
mod export;
mod formulas;
mod latest;
mod render;
mod tables;
mod union;

use std::io::Write;

use futures::StreamExt;

use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use std::sync::Arc;

use crate::cli::{QueryArgs, QueryFormat};
use export::Export;

/// Why a query could not run; each message says what to change.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Nothing to query at the path.
    #[error("no export at {path}: {reason}")]
    NoExport {
        /// The --path given.
        path: String,
        /// What was found instead and what to do.
        reason: String,
    },
    /// A table the export does not have.
    #[error("unknown table {name:?}; the export has: {}", tables.join(", "))]
    UnknownTable {
        /// The name in the SQL.
        name: String,
        /// Tables available.
        tables: Vec<String>,
    },
    /// DataFusion refused or failed the SQL.
    #[error("SQL error: {0}")]
    Sql(String),
    /// A Parquet file of the export could not be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// File or folder.
        path: String,
        /// The reader's message.
        reason: String,
    },
    /// A column holds types in two syncs that cannot be read as one, not even as text.
    #[error(
        "the column {column} is {} in sync {} and {} in sync {}, which cannot be read as one column (not even as text): start the stream afresh (a full refresh to a new output path), or move one sync's folder away",
        types[0].1, types[0].0, types[1].1, types[1].0
    )]
    TypeChanged {
        /// `stream.column`.
        column: String,
        /// (sync id, Arrow type) of the two syncs that disagree.
        types: [(String, String); 2],
    },
    /// The query needed more memory than it may hold, in a part that cannot spill to disk.
    #[error(
        "the query needs more memory than --memory-limit allows ({limit}), in a part that cannot spill to disk ({reason}): raise --memory-limit, or select fewer columns or rows"
    )]
    Memory {
        /// The limit, for people.
        limit: String,
        /// DataFusion's message.
        reason: String,
    },
    /// `--format parquet` needs a file.
    #[error("--format parquet writes a file: add --out FILE.parquet")]
    ParquetNeedsOut,
    /// The result could not be written.
    #[error("cannot write the result to {target}: {reason}")]
    Write {
        /// File or stdout.
        target: String,
        /// The OS or encoder message.
        reason: String,
    },
}

impl QueryError {
    /// 2 for what the user must change (path, SQL, flags), 1 for failures reading or writing.
    pub fn exit_code(&self) -> u8 {
        match self {
            QueryError::Read { .. } | QueryError::Write { .. } => 1,
            _ => 2,
        }
    }
}

/// Runs `sfetl query`; errors go to stderr as one sentence (stdout holds only the result, so
/// it can be piped), and the exit code is returned.
pub async fn run_cli(args: &QueryArgs) -> u8 {
    match run(args).await {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "sfetl: error: {e}");
            e.exit_code()
        }
    }
}

/// Runs the query of `args` and writes its result.
pub async fn run(args: &QueryArgs) -> Result<(), QueryError> {
    if matches!(args.format, Some(QueryFormat::Parquet)) && args.out.is_none() {
        return Err(QueryError::ParquetNeedsOut);
    }
    let limit = args.memory_limit.unwrap_or_else(default_memory_limit);
    let (frame, tables, notes) = plan(&args.path, &args.sql, Some(limit), None).await?;
    for note in notes {
        let _ = writeln!(std::io::stderr(), "sfetl: note: {note}");
    }
    let failed = |e: DataFusionError| match e.find_root() {
        // DataFusion's message lists the pool's consumers; its last line says what failed.
        DataFusionError::ResourcesExhausted(reason) => QueryError::Memory {
            limit: format!("{:.1} MB", limit as f64 / 1e6),
            reason: reason
                .lines()
                .last()
                .unwrap_or_default()
                .trim_start_matches("Error: ")
                .to_string(),
        },
        _ => sql_error(e, &tables),
    };
    let stream = frame.execute_stream().await.map_err(failed)?;
    let schema = stream.schema();
    let batches = stream.map(|b| b.map_err(failed));
    render::write(
        args.format.unwrap_or(QueryFormat::Table),
        args.out.as_deref(),
        schema,
        batches,
    )
    .await
}

/// `sfetl query`'s memory limit when `--memory-limit` is not given: half the machine's memory
/// (Linux's `MemTotal`), else 4 GiB. Past it, sorts, joins and groupings spill to disk rather
/// than grow until the system kills the process (a `SELECT *` of 10M wide rows sorts about
/// 12 GB).
fn default_memory_limit() -> usize {
    let total_kb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<usize>().ok()
        });
    total_kb.map_or(4 << 30, |kb| kb * 1024 / 2)
}

/// A query's result: its schema and batches.
type QueryResult = (
    std::sync::Arc<arrow::datatypes::Schema>,
    Vec<arrow::record_batch::RecordBatch>,
);

/// Runs read-only SQL over the export at `path` (every stream as its latest rows, and
/// `<stream>_history`) and returns the result; `sfetl query` and `sfetl demo` use it.
pub async fn sql(path: &str, sql: &str) -> Result<QueryResult, QueryError> {
    Ok(sql_noted(path, sql).await?.0)
}

/// [`sql`], plus a note per column read as text because its type changed between syncs.
pub async fn sql_noted(path: &str, sql: &str) -> Result<(QueryResult, Vec<String>), QueryError> {
    let (frame, tables, notes) = plan(path, sql, None, None).await?;
    let schema = std::sync::Arc::new(frame.schema().as_arrow().clone());
    let batches = frame.collect().await.map_err(|e| sql_error(e, &tables))?;
    Ok(((schema, batches), notes))
}

/// [`sql`] over the tables of one `stream` of the export (`<stream>`, `<stream>_history`),
/// its batches as they are computed, for a result too large to hold twice (every Id of an
/// export, which a reconciliation packs as it reads); with `memory` (see [`STREAM_MEMORY`]),
/// the query's sorts spill to the system's temporary folder past that many bytes, and a part
/// that cannot spill fails with DataFusion's `ResourcesExhausted`.
///
/// Only that stream's files are opened: a read reconciling one stream of an export of fifty
/// on object storage would otherwise read the footer of every file of the other 49, and fail
/// on one of theirs it cannot read.
pub async fn sql_stream(
    path: &str,
    stream: &str,
    sql: &str,
    memory: Option<usize>,
) -> Result<datafusion::execution::SendableRecordBatchStream, QueryError> {
    let (frame, tables, _) = plan(path, sql, memory, Some(stream)).await?;
    frame
        .execute_stream()
        .await
        .map_err(|e| sql_error(e, &tables))
}

/// The memory [`sql_stream`]'s query may hold before its sorts spill to disk: a latest view
/// sorts every version of every row it reads, about 240 MB for the Ids of 1M Accounts, so a
/// reconciliation of 10M would have asked for gigabytes.
pub const STREAM_MEMORY: usize = 64 << 20;

/// The query `sql` over the export at `path`, planned: its frame, the tables it opened (for
/// errors met while it runs) and the notes of [`sql_noted`]; with `memory`, its sorts spill
/// past that many bytes.
/// With `stream`, only that stream's tables (its Parquet folder and formula side table, or
/// its Delta table and Delta history), whatever `sql` names.
async fn plan(
    path: &str,
    sql: &str,
    memory: Option<usize>,
    stream: Option<&str>,
) -> Result<(datafusion::dataframe::DataFrame, Vec<String>, Vec<String>), QueryError> {
    let export = Export::open(path)?;
    let folders = export.folders().await?;
    let ctx = session(memory)?;
    if export.remote {
        ctx.register_object_store(&export.store_url, export.store.clone());
    }
    // Only the folders of the tables the query names are listed, and only their files opened.
    let named = match stream {
        Some(only) => vec![only.to_string(), format!("{only}_history")],
        // SQL that does not parse fails here, before any file is opened.
        None => named_tables(&ctx, sql).map_err(|e| sql_error(e, &[]))?,
    };
    let kept: Vec<String> = folders
        .into_iter()
        .filter(|f| tables::reaches(&named, f))
        .collect();
    let (mut streams, delta_tables) = export.streams(Some(&kept)).await?;
    // Every table of the export, listed whole only for a message that names them all.
    let mut whole = None;
    if streams.is_empty() && delta_tables.is_empty() {
        // No table named: an export (the planner names the missing table), or none at all.
        let all = whole_tables(&export).await?;
        if all.is_empty() {
            return Err(QueryError::NoExport {
                path: export.display.clone(),
                reason: "no Parquet files laid out as <stream>/<sync-id>/part-NNNNN.parquet and no Delta tables; give the output.path of a read with output.format parquet or delta".into(),
            });
        }
        whole = Some(all);
    }
    for stream in &mut streams {
        export.find_current_from(stream).await;
    }
    let notes = tables::register(&ctx, &export, &streams).await?;
    delta::register(&ctx, &export, &delta_tables).await?;
    let tables = table_names(&streams, &delta_tables);
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let frame = match ctx.sql_with_options(sql, options).await {
        Ok(frame) => frame,
        Err(e) => {
            let all = match whole {
                Some(all) => all,
                None => whole_tables(&export).await?,
            };
            return Err(sql_error(e, &all));
        }
    };
    Ok((frame, tables, notes))
}

/// A DataFusion session for an export's SQL; with `memory`, its sorts spill past that many
/// bytes.
fn session(memory: Option<usize>) -> Result<SessionContext, QueryError> {
    // Names as written (Salesforce's `Name`, `SystemModstamp`); files sit in sync-id folders.
    let config = SessionConfig::new()
        .set_bool("datafusion.sql_parser.enable_ident_normalization", false)
        .set_bool(
            "datafusion.execution.listing_table_ignore_subdirectory",
            false,
        )
        .set_bool(
            "datafusion.execution.parquet.schema_force_view_types",
            false,
        );
    Ok(match memory {
        None => SessionContext::new_with_config(config),
        Some(bytes) => {
            // Each sort sets aside this much for merging what it spilled (10 MB by default, per
            // partition): a 32nd of the limit, so that a small limit still leaves the sorts
            // room to work.
            let merge = (bytes / 32).min(10 << 20);
            let config =
                config.set_usize("datafusion.execution.sort_spill_reservation_bytes", merge);
            let runtime = RuntimeEnvBuilder::new()
                .with_memory_pool(Arc::new(FairSpillPool::new(bytes)))
                .build_arc()
                .map_err(|e| QueryError::Sql(e.strip_backtrace()))?;
            SessionContext::new_with_config_rt(config, runtime)
        }
    })
}

/// Every SQL table of the export (see [`table_names`]), from a listing of all its files.
async fn whole_tables(export: &Export) -> Result<Vec<String>, QueryError> {
    let (all, all_delta) = export.streams(None).await?;
    Ok(table_names(&all, &all_delta))
}

/// The SQL tables of `streams` (each and its history) and of the Delta tables, sorted.
fn table_names(streams: &[export::StreamFiles], delta_tables: &[String]) -> Vec<String> {
    let mut names: Vec<String> = streams
        .iter()
        .flat_map(|s| [s.name.clone(), format!("{}_history", s.name)])
        .chain(delta_tables.iter().cloned())
        .collect();
    names.sort();
    names
}

/// The tables `sql` names (bare names: an export has one schema), as DataFusion's planner
/// resolves them (in joins, subqueries and CTEs alike).
fn named_tables(ctx: &SessionContext, sql: &str) -> Result<Vec<String>, DataFusionError> {
    let state = ctx.state();
    let dialect = state.config().options().sql_parser.dialect;
    let statement = state.sql_to_statement(sql, &dialect)?;
    let references = state.resolve_table_references(&statement)?;
    Ok(references.iter().map(|r| r.table().to_string()).collect())
}

/// DataFusion's error, with an unknown table turned into the list of tables.
fn sql_error(e: DataFusionError, tables: &[String]) -> QueryError {
    use datafusion::sql::sqlparser::parser::ParserError;
    // The parser's own words, not its enum's debug form (`ParserError("Expected: ...")`).
    if let DataFusionError::SQL(err, _) = e.find_root() {
        return QueryError::Sql(match err.as_ref() {
            ParserError::ParserError(m) | ParserError::TokenizerError(m) => m.clone(),
            other => other.to_string(),
        });
    }
    let message = e.strip_backtrace();
    if let Some(rest) = message.split("table '").nth(1)
        && let Some(name) = rest.split("' not found").next()
        && rest.contains("' not found")
    {
        let name = name.rsplit('.').next().unwrap_or(name).to_string();
        return QueryError::UnknownTable {
            name,
            tables: tables.to_vec(),
        };
    }
    QueryError::Sql(
        message
            .strip_prefix("SQL error: ")
            .unwrap_or(&message)
            .to_string(),
    )
}

#[cfg(test)]
mod tests;
