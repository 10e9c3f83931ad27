//! Every stream folder becomes two tables: `<stream>_history` (every row of every sync) and
//! `<stream>` (the latest version of each row, deleted rows removed).
//!
//! Latest version: rows are grouped by the primary key (the files' `sfetl.primary_key`
//! metadata, written for mapped streams, else `Id`) and the row with the greatest cursor wins
//! (`sfetl.cursor`, else `SystemModstamp`, `LastModifiedDate`, `modified_at`, `CreatedDate`),
//! ties going to the later `_sfetl_extracted_at` then `_sfetl_sync_id` (sync ids sort by time):
//! a row read again because its parent changed keeps its cursor value but carries the parent's
//! new values, and wins by being extracted later. A stream with a formula side table
//! (`<stream>__formulas`) takes newer formula values from it (see [`super::formulas`]).
//! The winner is dropped when it is a deletion (`_sfetl_is_deleted` or `IsDeleted` true, or
//! `_sfetl_deleted_at` set: a stream whose catalog leaves `IsDeleted` out has only that). A
//! stream with no key holds the rows of its most recent sync. Syncs that wrote different
//! columns are read under one schema, by column name (see [`super::union`]).

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion::prelude::{ParquetReadOptions, SessionContext};

use super::QueryError;
use super::export::{Export, StreamFiles};
use super::formulas;
use super::latest::{LatestView, ViewSql};
use super::union::{Unified, unify};
use crate::mapping::{META_CURSOR, META_PRIMARY_KEY};
use crate::output::{DELETED_AT, EXTRACTED_AT, FORMULAS_SUFFIX, SYNC_ID};

/// Cursor columns, most precise first, used when the files do not name one.
pub(super) const CURSORS: [&str; 4] = [
    "SystemModstamp",
    "LastModifiedDate",
    "modified_at",
    "CreatedDate",
];
/// Columns flagging a deletion.
const DELETED: [&str; 2] = ["_sfetl_is_deleted", "IsDeleted"];

/// How one stream's latest-version table is built.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Dedupe {
    /// Key columns (empty: no key).
    pub key: Vec<String>,
    /// Ordering columns, greatest first wins.
    pub order: Vec<String>,
    /// Columns marking a deletion: flags (true when deleted) and `_sfetl_deleted_at` (set
    /// when deleted).
    pub deleted: Vec<String>,
}

/// The union of a stream's sync schemas (one file per sync: a sync's parts share theirs).
async fn stream_schema(export: &Export, stream: &StreamFiles) -> Result<Unified, QueryError> {
    let mut files: Vec<(String, SchemaRef)> = Vec::new();
    for (sync, meta) in &stream.files {
        if files.last().is_some_and(|(s, _)| s == sync) {
            continue;
        }
        files.push((sync.clone(), Arc::new(export.file_schema(meta).await?)));
    }
    unify(&stream.name, &files)
}

/// Registers `<stream>_history` (and its lower-case alias) over every file of the stream;
/// returns its columns and the notes of columns read as text because their type changed
/// between syncs.
async fn register_history(
    ctx: &SessionContext,
    export: &Export,
    stream: &StreamFiles,
    history: &str,
) -> Result<(Vec<String>, Vec<String>), QueryError> {
    let read_err = |e: datafusion::error::DataFusionError| QueryError::Read {
        path: stream.url.clone(),
        reason: e.strip_backtrace(),
    };
    let unified = stream_schema(export, stream).await?;
    // Syncs with different columns: every sync read under the union, by column name.
    let options = if unified.differs {
        ParquetReadOptions::default().schema(&unified.schema)
    } else {
        ParquetReadOptions::default()
    };
    let exact = TableReference::bare(history);
    free_name(ctx, history).map_err(read_err)?;
    ctx.register_parquet(exact.clone(), &stream.url, options)
        .await
        .map_err(read_err)?;
    let provider = ctx.table_provider(exact).await.map_err(read_err)?;
    let columns: Vec<String> = provider
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    register_alias(ctx, history, provider).map_err(read_err)?;
    Ok((columns, unified.notes))
}

/// Whether a query naming the tables `named` reads the export's table or stream folder
/// `table`: named as it is or in lower case (see [`register_alias`]), as its history, or as the
/// stream whose formula side table it is (a latest view overlays it).
pub(super) fn reaches(named: &[String], table: &str) -> bool {
    let owner = table.strip_suffix(FORMULAS_SUFFIX);
    let history = format!("{table}_history");
    [Some(table), owner, Some(history.as_str())]
        .into_iter()
        .flatten()
        .any(|t| {
            let lower = t.to_lowercase();
            named.iter().any(|n| *n == t || *n == lower)
        })
}

/// Registers `provider` as `name`, replacing the lower-case alias of another stream that
/// holds that name, then as `name`'s own lower-case alias (see [`register_alias`]).
pub(super) fn register_named(
    ctx: &SessionContext,
    name: &str,
    provider: Arc<dyn TableProvider>,
) -> datafusion::error::Result<()> {
    free_name(ctx, name)?;
    ctx.register_table(TableReference::bare(name), provider.clone())?;
    register_alias(ctx, name, provider)
}

/// Removes what holds `name` before a stream of that name is registered: only ever another
/// stream's lower-case alias (a stream's own name is registered once).
fn free_name(ctx: &SessionContext, name: &str) -> datafusion::error::Result<()> {
    if ctx.table_exist(TableReference::bare(name))? {
        ctx.deregister_table(TableReference::bare(name))?;
    }
    Ok(())
}

/// Registers `provider` under `name` in lower case, unless that is `name` itself or already
/// taken. Names are matched as written (quoted or not), so `FROM account` finds the stream
/// `Account` only through this alias; a stream really called `account` keeps its own name,
/// whichever of the two is registered first (an exact name replaces an alias, an alias never
/// replaces one).
fn register_alias(
    ctx: &SessionContext,
    name: &str,
    provider: Arc<dyn TableProvider>,
) -> datafusion::error::Result<()> {
    let lower = name.to_lowercase();
    if lower == name || ctx.table_exist(TableReference::bare(lower.as_str()))? {
        return Ok(());
    }
    ctx.register_table(TableReference::bare(lower.as_str()), provider)
        .map(|_| ())
}

/// Registers the tables of every stream; returns a note per column read as text because its
/// type changed between syncs. Side tables of formula
/// refreshes (`<stream>__formulas`) come first, so a stream's latest view can take its formula
/// values from them.
pub(super) async fn register(
    ctx: &SessionContext,
    export: &Export,
    streams: &[StreamFiles],
) -> Result<Vec<String>, QueryError> {
    let mut notes = Vec::new();
    for stream in formulas::side_tables_first(streams) {
        let history = format!("{}_history", stream.name);
        let (columns, stream_notes) = register_history(ctx, export, stream, &history).await?;
        notes.extend(stream_notes);
        let newest = &stream.files.last().expect("a stream has files").1;
        let metadata = export.file_metadata(newest).await?;
        let plan = dedupe_plan(
            &columns,
            metadata.get(META_PRIMARY_KEY).map(String::as_str),
            metadata.get(META_CURSOR).map(String::as_str),
        );
        let side = formulas::side_table(ctx, &stream.name, streams).await;
        let since = stream.current_from.clone();
        let key = plan.key.clone();
        let history_name = history.clone();
        let sql: ViewSql = Box::new(move |filters: &[String]| {
            let sql = latest_sql(&history_name, &columns, &plan, since.as_deref(), filters);
            match &side {
                Some((side, side_columns)) => {
                    formulas::overlay_sql(&sql, &columns, side, side_columns)
                }
                None => sql,
            }
        });
        let read_err = |e: datafusion::error::DataFusionError| QueryError::Read {
            path: stream.url.clone(),
            reason: e.strip_backtrace(),
        };
        let schema = ctx
            .sql(&sql(&[]))
            .await
            .map_err(read_err)?
            .schema()
            .inner()
            .clone();
        let view: Arc<dyn TableProvider> = Arc::new(LatestView::new(schema, key, sql));
        register_named(ctx, &stream.name, view).map_err(read_err)?;
    }
    Ok(notes)
}

/// Decides key, ordering and deletion flag from the columns and the files' metadata.
pub(super) fn dedupe_plan(
    columns: &[String],
    key_meta: Option<&str>,
    cursor_meta: Option<&str>,
) -> Dedupe {
    let has = |c: &str| columns.iter().any(|x| x == c);
    let key = key_meta
        .and_then(|k| serde_json::from_str::<Vec<String>>(k).ok())
        .filter(|k| !k.is_empty() && k.iter().all(|c| has(c)))
        .unwrap_or_else(|| {
            if has("Id") {
                vec!["Id".to_string()]
            } else {
                Vec::new()
            }
        });
    let mut order: Vec<String> = Vec::new();
    if let Some(c) = cursor_meta.filter(|c| has(c)) {
        order.push(c.to_string());
    } else if let Some(c) = CURSORS.into_iter().find(|c| has(c)) {
        order.push(c.to_string());
    }
    for c in [EXTRACTED_AT, SYNC_ID] {
        if has(c) {
            order.push(c.to_string());
        }
    }
    Dedupe {
        key,
        order,
        deleted: DELETED
            .into_iter()
            .chain([DELETED_AT])
            .filter(|c| has(c))
            .map(str::to_string)
            .collect(),
    }
}

/// `name` as a quoted SQL identifier.
pub(super) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The rows a latest view reads: `history`, from sync `since` on, of the keys `key_filters`
/// select (see [`latest_sql`]).
fn latest_source(
    history: &str,
    columns: &[String],
    plan: &Dedupe,
    since: Option<&str>,
    key_filters: &[String],
) -> String {
    let mut filters: Vec<String> = Vec::new();
    if let Some(id) = since
        && columns.iter().any(|c| c == SYNC_ID)
    {
        filters.push(format!(
            "{} >= '{}'",
            quote(SYNC_ID),
            id.replace('\'', "''")
        ));
    }
    if !plan.key.is_empty() {
        filters.extend(key_filters.iter().map(|f| format!("({f})")));
    }
    if filters.is_empty() {
        quote(history)
    } else {
        format!(
            "(SELECT * FROM {} WHERE {})",
            quote(history),
            filters.join(" AND ")
        )
    }
}

/// The SQL of the latest-version view over `history`; with `since`, only syncs from that sync
/// id on count (the newest complete base sync supersedes older ones); `key_filters` (SQL
/// predicates over the key columns alone, see [`super::latest`]) select the keys read.
pub(super) fn latest_sql(
    history: &str,
    columns: &[String],
    plan: &Dedupe,
    since: Option<&str>,
    key_filters: &[String],
) -> String {
    let source = latest_source(history, columns, plan, since, key_filters);
    let list: Vec<String> = columns.iter().map(|c| quote(c)).collect();
    let list = list.join(", ");
    let not_deleted: String = plan
        .deleted
        .iter()
        .map(|d| match d.as_str() {
            DELETED_AT => format!(" AND {} IS NULL", quote(d)),
            _ => format!(" AND {} IS NOT TRUE", quote(d)),
        })
        .collect();
    if plan.key.is_empty() {
        let latest_sync = if columns.iter().any(|c| c == SYNC_ID) {
            format!(
                "{s} = (SELECT max({s}) FROM {h})",
                s = quote(SYNC_ID),
                h = source
            )
        } else {
            "TRUE".to_string()
        };
        return format!("SELECT {list} FROM {source} WHERE {latest_sync}{not_deleted}");
    }
    // The latest version of a key is the first row of its key in one ordering (key, then the
    // ordering columns greatest first): the row whose key differs from the row's before it.
    // `lag` over that ordering is one sort and one pass; `row_number() OVER (PARTITION BY key
    // ...)` took 5× the CPU (DataFusion's bounded window keeps state per partition, that is per
    // Id: 6.3 against 1.2 CPU-seconds for the 1M Ids of an export). DataFusion cannot move a
    // filter on the key (`WHERE "Id" = '...'`) below this window; [`super::latest`] writes it
    // into the source instead.
    let keys: Vec<String> = plan.key.iter().map(|k| quote(k)).collect();
    let ordering: Vec<String> = keys
        .iter()
        .map(|k| format!("{k} ASC NULLS LAST"))
        .chain(
            plan.order
                .iter()
                .map(|o| format!("{} DESC NULLS LAST", quote(o))),
        )
        .collect();
    let over = format!("OVER (ORDER BY {})", ordering.join(", "));
    let previous: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| format!("lag({k}) {over} AS \"__sfetl_prev{i}\""))
        .collect();
    let first = keys
        .iter()
        .enumerate()
        .map(|(i, k)| format!("(\"__sfetl_prev{i}\" IS DISTINCT FROM {k})"));
    // A row without a value in a key column is no version of another: each is kept. (Each
    // comparison is parenthesized: DataFusion's parser reads `a IS DISTINCT FROM b OR c` as
    // `a IS DISTINCT FROM (b OR c)`.)
    let keyless = keys.iter().map(|k| format!("{k} IS NULL"));
    let kept: Vec<String> = first.chain(keyless).collect();
    format!(
        "SELECT {list} FROM (SELECT *, {} FROM {source}) WHERE ({}){not_deleted}",
        previous.join(", "),
        kept.join(" OR "),
    )
}
