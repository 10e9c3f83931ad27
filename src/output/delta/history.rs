//! `history: true`: every version of every row in `<stream>_history`, as Fivetran's History
//! Mode keeps it.
//!
//! Each version is a row with `_sfetl_valid_from` (its cursor: when Salesforce changed it),
//! `_sfetl_valid_to` (1 ms before the next version's change or the deletion; 9999-12-31
//! 23:59:59.999 while current) and `_sfetl_is_current`. A change closes the current version and
//! adds the new one; a deletion closes it. A version already recorded is not added again (the
//! lookback window reads some rows twice), but one read again with other values (a value that
//! follows a parent changed without moving the row's cursor) is corrected in place; each commit carries the same `txn` as the
//! stream's table, so a replayed checkpoint changes nothing.
//!
//! Both steps are one commit. An incremental checkpoint's is a MERGE: the source holds every
//! row of the checkpoint keyed for closing, plus the new versions with a null key, which never
//! match and are inserted. A full refresh into a history that holds versions works out its
//! changes as its rows are written (`super::first`, `super::changes`) and, where the
//! history's files can be read directly, commits the new versions' files with the files
//! holding a closed or replaced version rewritten, instead of a MERGE of the changed rows.

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use datafusion::common::Column;
use datafusion::datasource::MemTable;
use datafusion::prelude::{DataFrame, Expr, SessionContext, lit};
use deltalake::DeltaTable;
use futures::TryStreamExt;
use parquet::file::properties::WriterProperties;

use super::DeltaError;
use super::first::Recorded;
use super::layout::{SAMPLE_ROWS, merge_properties};
use super::merge::latest_per_key;
use super::rows::Keys;
use super::state::{CommitTag, txn_version};
use super::table::{self, TableTarget};
use crate::config::Compression;

/// When a row version became current.
pub const VALID_FROM: &str = "_sfetl_valid_from";
/// When it stopped being current (9999-12-31 23:59:59.999 while it is).
pub const VALID_TO: &str = "_sfetl_valid_to";
/// Whether it is the current version.
pub const IS_CURRENT: &str = "_sfetl_is_current";
/// The end of time of current versions: 9999-12-31T23:59:59.999Z in µs (beyond what
/// nanosecond timestamps reach, so given as a number).
pub(super) const OPEN_END: i64 = 253_402_300_799_999_000;

/// The history table of `stream`.
pub fn name(stream: &str) -> String {
    format!("{stream}_history")
}

/// The history table's schema: the stream table's, then the three validity columns.
pub fn schema(table: &Schema) -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")));
    let mut fields: Vec<FieldRef> = table.fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(VALID_FROM, ts.clone(), true)));
    fields.push(Arc::new(Field::new(VALID_TO, ts, true)));
    fields.push(Arc::new(Field::new(IS_CURRENT, DataType::Boolean, true)));
    Arc::new(Schema::new(fields))
}

fn q(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Records the versions in one checkpoint's `rows` (the stream table's schema).
pub async fn record(
    target: &TableTarget,
    keys: &Keys,
    table_schema: &SchemaRef,
    stream: &str,
    rows: &[RecordBatch],
    tag: &CommitTag,
    compression: Compression,
) -> Result<(), DeltaError> {
    let history = open(target, keys, table_schema, stream).await?;
    if txn_version(target, &history, &tag.app_id).await? >= tag.version || rows.is_empty() {
        return record_nothing(target, history, tag).await;
    }
    let latest = latest_per_key(rows, keys)?;
    let recording = Recording {
        tag,
        gone: Vec::new(),
        compression,
    };
    let ctx = SessionContext::new();
    register_rows(target, &ctx, latest.schema(), vec![latest])?;
    let empty = is_empty(target, &history).await?;
    apply(target, history, &ctx, keys, table_schema, recording, empty).await
}

/// Records a full refresh: the new `table` is every current row, so keys it lacks are closed.
/// Into a history that holds versions, only what the refresh changed is merged
/// ([`super::changes`]); an empty one takes every row as a first version. What the refresh
/// `recorded` as its rows arrived ([`super::first`]) is used where it still holds: first
/// versions while the history is empty and of their columns, changes while the history is at
/// the version they were found against; else both are worked out from `table`.
pub(super) async fn record_replacement(
    target: &TableTarget,
    table: &DeltaTable,
    keys: &Keys,
    stream: &str,
    tag: &CommitTag,
    compression: Compression,
    recorded: Option<&Recorded>,
) -> Result<(), DeltaError> {
    let table_schema: SchemaRef = Arc::new(
        table
            .snapshot()
            .map_err(|e| target.error(e))?
            .snapshot()
            .arrow_schema()
            .as_ref()
            .clone(),
    );
    let history = open(target, keys, &table_schema, stream).await?;
    if txn_version(target, &history, &tag.app_id).await? >= tag.version {
        return Ok(());
    }
    let empty = is_empty(target, &history).await?;
    if let (true, Some(Recorded::First(first))) = (empty, recorded) {
        if first.fit(target, &history)? {
            tracing::debug!(
                "{}: first versions written beside the table's files",
                name(stream)
            );
            super::commit::append(target, history, first.files.clone(), tag).await?;
            return Ok(());
        }
        tracing::debug!("{}: first versions read back from the table", name(stream));
    }
    let ctx = SessionContext::new();
    let gone = if empty {
        register(&ctx, "src", table)
            .await
            .map_err(|e| target.error(e))?;
        Vec::new()
    } else {
        let changes = match recorded {
            Some(Recorded::Changes {
                changes,
                version,
                versions,
            }) if history.version() == *version => {
                tracing::debug!("{}: changes worked out as the rows came", name(stream));
                if let (Some(fates), Some(versions)) = (&changes.fates, versions) {
                    let recorded = (fates, versions);
                    return rewrite(target, history, stream, recorded, tag, compression).await;
                }
                changes.clone()
            }
            _ => {
                tracing::debug!("{}: changes worked out from the table", name(stream));
                super::changes::of_replacement(target, &ctx, table, &history, keys, &table_schema)
                    .await?
            }
        };
        if changes.is_empty() {
            return record_nothing(target, history, tag).await;
        }
        register_rows(target, &ctx, changes.schema, changes.rows)?;
        changes.gone
    };
    let recording = Recording {
        tag,
        gone,
        compression,
    };
    apply(target, history, &ctx, keys, &table_schema, recording, empty).await
}

/// Commits what a full refresh changed in a history read file by file: the new versions
/// written as the rows came, and the files holding a version it closed or dropped written
/// anew ([`super::changes::Fates`]), in one commit in place of a MERGE.
async fn rewrite(
    target: &TableTarget,
    history: DeltaTable,
    stream: &str,
    (fates, versions): (&Arc<super::changes::Fates>, &super::first::WrittenVersions),
    tag: &CommitTag,
    compression: Compression,
) -> Result<(), DeltaError> {
    if versions.files.is_empty() && fates.rewritten() == 0 {
        return record_nothing(target, history, tag).await;
    }
    let (removed, mut added) = fates.rewrite(target, compression).await?;
    let files = |n: usize| format!("{n} file{}", if n == 1 { "" } else { "s" });
    tracing::debug!(
        "{}: {} of new versions, {} rewritten",
        name(stream),
        files(versions.files.len()),
        files(removed.len())
    );
    added.extend(versions.files.iter().cloned());
    super::commit::rewrite(target, history, removed, added, tag).await?;
    Ok(())
}

/// Registers `rows` (of `schema`) as the source `src`.
fn register_rows(
    target: &TableTarget,
    ctx: &SessionContext,
    schema: SchemaRef,
    rows: Vec<RecordBatch>,
) -> Result<(), DeltaError> {
    let mem = MemTable::try_new(schema, vec![rows]).map_err(|e| target.error(e))?;
    ctx.register_table("src", Arc::new(mem))
        .map_err(|e| target.error(e))?;
    Ok(())
}

/// The history table, created when missing (refusing another stream's), with the stream's new
/// columns added.
pub(super) async fn open(
    target: &TableTarget,
    keys: &Keys,
    table_schema: &SchemaRef,
    stream: &str,
) -> Result<DeltaTable, DeltaError> {
    let owner = name(stream);
    match target.open().await? {
        Some(t) => {
            table::check_owner(target, &t, &owner, &keys.key)?;
            let evolved = super::commit::evolve(target, t, &schema(table_schema)).await;
            evolved.map_err(|e| match e {
                DeltaError::TypeChange {
                    path,
                    field,
                    table_type,
                    new_type,
                } => DeltaError::HistoryTypeChange {
                    path,
                    field,
                    table_type,
                    new_type,
                },
                other => other,
            })
        }
        None => {
            let props = table::properties(&owner, &keys.key, Some(VALID_FROM));
            super::commit::create_or_theirs(target, &schema(table_schema), props, &owner, &keys.key)
                .await
        }
    }
}

/// Carries the `txn` forward without rows, so the history table's `txn` keeps step with the
/// stream table's.
async fn record_nothing(
    target: &TableTarget,
    history: DeltaTable,
    tag: &CommitTag,
) -> Result<(), DeltaError> {
    if txn_version(target, &history, &tag.app_id).await? >= tag.version {
        return Ok(());
    }
    super::commit::state_only(target, history, tag)
        .await
        .map(|_| ())
}

/// Registers a Delta table in a DataFusion session under `name`.
pub async fn register(
    ctx: &SessionContext,
    name: &str,
    table: &DeltaTable,
) -> datafusion::error::Result<()> {
    ctx.register_table(name, provider(ctx, table).await?)
        .map(|_| ())
}

/// A Delta table as DataFusion reads it in `ctx`'s session.
pub(super) async fn provider(
    ctx: &SessionContext,
    table: &DeltaTable,
) -> datafusion::error::Result<Arc<dyn datafusion::catalog::TableProvider>> {
    table
        .update_datafusion_session(&ctx.state())
        .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
    table.table_provider().await
}

/// The source column a new version is current from: the stream's cursor, or its extraction
/// for a stream without one.
pub(super) fn valid_from_column(keys: &Keys) -> &str {
    keys.cursor
        .as_deref()
        .unwrap_or(crate::output::EXTRACTED_AT)
}

/// [`valid_from_column`], quoted for SQL.
fn valid_from(keys: &Keys) -> String {
    q(valid_from_column(keys))
}

/// The select list of a source row's new version: the stream's `columns`, current from
/// [`valid_from`] until the end of time.
fn new_version(keys: &Keys, columns: &[String]) -> String {
    let from = valid_from(keys);
    let cols: Vec<String> = columns.iter().map(|c| format!("s.{}", q(c))).collect();
    format!(
        "SELECT {cols}, s.{from} AS {vf}, to_timestamp_micros({OPEN_END}) AS {vt}, TRUE AS {cur}",
        cols = cols.join(", "),
        vf = q(VALID_FROM),
        vt = q(VALID_TO),
        cur = q(IS_CURRENT),
    )
}

/// The condition (SQL over `s`) of a source row that is a deletion, which adds no version.
fn deleted(keys: &Keys) -> String {
    let deleted = keys
        .flags
        .iter()
        .map(|f| format!("s.{} IS TRUE", q(f)))
        .chain(
            keys.deleted_at
                .iter()
                .map(|d| format!("s.{} IS NOT NULL", q(d))),
        )
        .collect::<Vec<_>>();
    if deleted.is_empty() {
        "FALSE".to_string()
    } else {
        deleted.join(" OR ")
    }
}

/// The MERGE source: every source row keyed for closing its current version, and the new
/// versions with null keys.
async fn merge_source(
    ctx: &SessionContext,
    keys: &Keys,
    columns: &[String],
) -> datafusion::error::Result<DataFrame> {
    let from = valid_from(keys);
    let key_as = |null: bool| {
        keys.key
            .iter()
            .enumerate()
            .map(|(i, k)| match null {
                false => format!("CAST(s.{} AS VARCHAR) AS __sfetl_k{i}", q(k)),
                true => format!("CAST(NULL AS VARCHAR) AS __sfetl_k{i}"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let join = keys
        .key
        .iter()
        .map(|k| format!("h.{k} = s.{k}", k = q(k)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let first = q(&keys.key[0]);
    let version = new_version(keys, columns);
    let sql = format!(
        "{version}, {k} FROM src s \
         UNION ALL \
         {version}, {n} FROM src s \
         LEFT JOIN (SELECT * FROM hist WHERE {cur}) h ON {join} \
         WHERE NOT ({deleted}) AND (h.{first} IS NULL OR h.{vf} < s.{from})",
        vf = q(VALID_FROM),
        cur = q(IS_CURRENT),
        k = key_as(false),
        n = key_as(true),
        deleted = deleted(keys),
    );
    ctx.sql(&sql).await
}

/// Whether the history table holds no version yet (just created, or never given a row).
pub(super) async fn is_empty(
    target: &TableTarget,
    history: &DeltaTable,
) -> Result<bool, DeltaError> {
    let snapshot = history.snapshot().map_err(|e| target.error(e))?;
    let first = snapshot
        .snapshot()
        .file_views(history.log_store().as_ref(), None)
        .try_next()
        .await
        .map_err(|e| target.error(e))?;
    Ok(first.is_none())
}

/// The first versions of an empty history table: every source row not deleted, current from
/// its cursor, written as a full refresh writes its files and appended in one commit. This is
/// what the MERGE would insert (no version to close, none to match), without the MERGE's join
/// and its second scan of the source: in a full refresh of 1M wide rows with history, the
/// MERGE took most of the time. Its selection is [`new_version`] where not [`deleted`], built
/// as expressions: planned from that SQL, the append peaked 3-4 MB higher (1M rows, 7 fields).
async fn append_first(
    target: &TableTarget,
    history: DeltaTable,
    ctx: &SessionContext,
    keys: &Keys,
    columns: &[String],
    tag: &CommitTag,
    compression: Compression,
) -> Result<(), DeltaError> {
    use datafusion::prelude::{cast, ident, not};
    use datafusion::scalar::ScalarValue;
    let err = |e: datafusion::error::DataFusionError| target.error(e);
    let history_schema: SchemaRef = history
        .snapshot()
        .map_err(|e| target.error(e))?
        .snapshot()
        .arrow_schema();
    let from = valid_from_column(keys);
    let deleted = keys
        .flags
        .iter()
        .map(|f| ident(f).is_true())
        .chain(keys.deleted_at.iter().map(|d| ident(d).is_not_null()))
        .reduce(Expr::or)
        .unwrap_or(lit(false));
    // Each column as the history table holds it (a Delta table read back gives text as views).
    let typed = |name: &str, e: Expr| -> Result<Expr, DeltaError> {
        let field = history_schema
            .field_with_name(name)
            .map_err(|e| target.error(e))?;
        Ok(cast(e, field.data_type().clone()).alias(name))
    };
    let mut select = Vec::with_capacity(columns.len() + 3);
    for c in columns {
        select.push(typed(c, ident(c))?);
    }
    let open_end = ScalarValue::TimestampMicrosecond(Some(OPEN_END), Some(Arc::from("UTC")));
    select.push(typed(VALID_FROM, ident(from))?);
    select.push(typed(VALID_TO, lit(open_end))?);
    select.push(typed(IS_CURRENT, lit(true))?);
    let mut versions = ctx
        .table("src")
        .await
        .map_err(err)?
        .filter(not(deleted))
        .map_err(err)?
        .select(select)
        .map_err(err)?
        .execute_stream()
        .await
        .map_err(err)?;
    let mut files = super::commit::FileWriter::new(&history_schema, compression);
    while let Some(batch) = versions.try_next().await.map_err(err)? {
        if batch.num_rows() == 0 {
            continue;
        }
        let batch = RecordBatch::try_new(history_schema.clone(), batch.columns().to_vec())
            .map_err(|e| target.error(e))?;
        files.write(target, &batch).await?;
    }
    let added = files.close(target).await?;
    super::commit::append(target, history, added, tag).await?;
    Ok(())
}

/// The MERGE condition: the target row is the current version of the source row's key (the
/// source's new versions have a null key and match nothing).
fn current_version_of(keys: &Keys, c: &impl Fn(&str, &str) -> Expr) -> Expr {
    keys.key
        .iter()
        .enumerate()
        .map(|(i, k)| {
            datafusion::prelude::cast(c("t", k), DataType::Utf8)
                .eq(c("s", &format!("__sfetl_k{i}")))
        })
        .fold(c("t", IS_CURRENT).is_true(), Expr::and)
}

/// The condition under which a row read again at its current version's cursor replaces that
/// version's values in place: a value that follows a parent (`Account.Name` in a formula or a
/// relationship field) or a formula changed without moving the row's own cursor, so there is
/// no new version to add, and the current one must hold what the stream's table holds. Only
/// Salesforce's scalar columns are compared (sfetl's own always differ); `None` without any.
fn same_version_changed(schema: &SchemaRef, c: &impl Fn(&str, &str) -> Expr) -> Option<Expr> {
    use datafusion::logical_expr::{Operator, binary_expr};
    let differs = schema
        .fields()
        .iter()
        .filter(|f| !f.name().starts_with("_sfetl_") && !f.data_type().is_nested())
        .map(|f| binary_expr(c("t", f.name()), Operator::IsDistinctFrom, c("s", f.name())))
        .reduce(Expr::or)?;
    Some(c("s", VALID_FROM).eq(c("t", VALID_FROM)).and(differs))
}

/// What one commit into the history table records.
struct Recording<'a> {
    /// The commit's `txn` and STATE (the stream table's).
    tag: &'a CommitTag,
    /// The keys (as text, one array per key column) whose current versions are closed: those a
    /// full refresh's new table lacks.
    gone: Vec<ArrayRef>,
    /// The config's codec: the files written are judged as the stream table's are
    /// (DataFusion's defaults wrote snappy whatever the config said, with a dictionary tried
    /// on every column).
    compression: Compression,
}

/// The stream table's column names.
fn column_names(table_schema: &Schema) -> Vec<String> {
    table_schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

/// Records the source's versions in the history table: appended when it holds none yet
/// (`empty`, as [`is_empty`] found it), else merged.
async fn apply(
    target: &TableTarget,
    history: DeltaTable,
    ctx: &SessionContext,
    keys: &Keys,
    table_schema: &SchemaRef,
    recording: Recording<'_>,
    empty: bool,
) -> Result<(), DeltaError> {
    let columns = column_names(table_schema);
    if empty {
        let (tag, compression) = (recording.tag, recording.compression);
        return append_first(target, history, ctx, keys, &columns, tag, compression).await;
    }
    merge_versions(
        target,
        history,
        ctx,
        keys,
        table_schema,
        &columns,
        recording,
    )
    .await
}

/// Settings of the files a MERGE of the source `src` rewrites in the history table: judged
/// from the source's first rows, or, too few to judge, as the history's largest file was
/// written.
async fn source_properties(
    target: &TableTarget,
    history: &DeltaTable,
    ctx: &SessionContext,
    compression: Compression,
) -> Result<WriterProperties, DeltaError> {
    let err = |e: datafusion::error::DataFusionError| target.error(e);
    let head = ctx.table("src").await.map_err(err)?;
    let head = head.limit(0, Some(SAMPLE_ROWS)).map_err(err)?;
    let schema = Arc::new(head.schema().as_arrow().clone());
    let first = arrow::compute::concat_batches(&schema, &head.collect().await.map_err(err)?)
        .map_err(|e| target.error(e))?;
    merge_properties(target, history, compression, &first).await
}

/// The MERGE source's rows that close the current versions of the `gone` keys at `at` (µs):
/// every column null but the keys, `_sfetl_valid_to` and a false `_sfetl_is_current`, which
/// the MERGE's first clause takes for a closing.
fn closings(
    ctx: &SessionContext,
    source: &DataFrame,
    gone: &[ArrayRef],
    at: i64,
) -> datafusion::error::Result<DataFrame> {
    use datafusion::prelude::{cast, ident};
    use datafusion::scalar::ScalarValue;
    let fields: Vec<Field> = (gone.iter().enumerate())
        .map(|(i, k)| Field::new(format!("__sfetl_k{i}"), k.data_type().clone(), true))
        .collect();
    let keys = RecordBatch::try_new(Arc::new(Schema::new(fields)), gone.to_vec())?;
    let select = source
        .schema()
        .fields()
        .iter()
        .map(|f| {
            let (name, typ) = (f.name().as_str(), f.data_type().clone());
            let value = match name {
                n if n.starts_with("__sfetl_k") => ident(n),
                VALID_TO => lit(ScalarValue::TimestampMicrosecond(
                    Some(at),
                    Some("UTC".into()),
                )),
                IS_CURRENT => lit(false),
                _ => lit(ScalarValue::try_from(&typ)?),
            };
            Ok(cast(value, typ).alias(name))
        })
        .collect::<datafusion::error::Result<Vec<Expr>>>()?;
    ctx.read_batch(keys)?.select(select)
}

/// One MERGE into the history table: close superseded (and, for a full refresh, vanished)
/// versions, insert new ones.
async fn merge_versions(
    target: &TableTarget,
    history: DeltaTable,
    ctx: &SessionContext,
    keys: &Keys,
    table_schema: &SchemaRef,
    columns: &[String],
    recording: Recording<'_>,
) -> Result<(), DeltaError> {
    let err = |e: datafusion::error::DataFusionError| target.error(e);
    let Recording {
        tag,
        gone,
        compression,
    } = recording;
    let writer = source_properties(target, &history, ctx, compression).await?;
    register(ctx, "hist", &history).await.map_err(err)?;
    let mut source = merge_source(ctx, keys, columns).await.map_err(err)?;
    if gone.first().is_some_and(|k| !k.is_empty()) {
        let now = chrono::Utc::now().timestamp_micros();
        let closing = closings(ctx, &source, &gone, now).map_err(err)?;
        source = source.union(closing).map_err(err)?;
    }
    let c = |side: &str, n: &str| Expr::Column(Column::new(Some(side), n));
    let on = current_version_of(keys, &c);
    let one_ms = datafusion::scalar::ScalarValue::new_interval_mdn(0, 0, 1_000_000);
    let closes_at = c("s", VALID_FROM) - lit(one_ms);
    let mut all: Vec<String> = columns.to_vec();
    all.extend([VALID_FROM, VALID_TO, IS_CURRENT].map(String::from));
    let mut builder = history
        .merge(source, on)
        .with_source_alias("s")
        .with_target_alias("t")
        .with_commit_properties(tag.properties())
        .with_writer_properties(writer)
        // A key the full refresh lacks: closed when it ran (see `closings`).
        .when_matched_update(|u| {
            u.predicate(c("s", IS_CURRENT).is_false())
                .update(Column::new_unqualified(VALID_TO), c("s", VALID_TO))
                .update(Column::new_unqualified(IS_CURRENT), lit(false))
        })
        .and_then(|b| {
            b.when_matched_update(|u| {
                u.predicate(c("s", VALID_FROM).gt(c("t", VALID_FROM)))
                    .update(Column::new_unqualified(VALID_TO), closes_at.clone())
                    .update(Column::new_unqualified(IS_CURRENT), lit(false))
            })
        })
        .map_err(|e| target.error(e))?;
    if let Some(changed) = same_version_changed(table_schema, &c) {
        builder = builder
            .when_matched_update(|u| {
                columns.iter().fold(u.predicate(changed), |u, col| {
                    u.update(Column::new_unqualified(col), c("s", col))
                })
            })
            .map_err(|e| target.error(e))?;
    }
    builder = builder
        .when_not_matched_insert(|i| {
            all.iter()
                .fold(i.predicate(c("s", "__sfetl_k0").is_null()), |i, col| {
                    i.set(Column::new_unqualified(col), c("s", col))
                })
        })
        .map_err(|e| target.error(e))?;
    // A lost race (concurrent slices) is a conflict the caller retries.
    builder
        .await
        .map_err(|e| super::commit::conflict_or_error(target, e))?;
    Ok(())
}
