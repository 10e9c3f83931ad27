//! Delta Lake output: each stream is a table at `<output.path>/<stream>` holding its current
//! rows, on local disk or an object store.
//!
//! - A full refresh writes its data files as rows arrive (invisible until committed) and
//!   replaces the table in one commit when the stream ends: readers see the old table or the
//!   new one, never a mix.
//! - An incremental read commits each checkpoint as one MERGE on the primary key: the greater
//!   cursor wins, deleted rows are removed.
//! - Every commit carries the stream's STATE: Delta's transaction identifier (`txn`: app id =
//!   the stream, version = one more per commit) and the STATE JSON in the commit's info, so the
//!   table alone says where the next read starts ([`DeltaDestination::committed_state`]).
//! - With `history`, every row version also goes to `<stream>_history` with validity columns.
//!
//! Modules: [`table`] (where tables are, opening, ownership), [`rows`] (the table's schema and
//! keys), [`commit`] (full-refresh files and the replacing commit), [`merge`] (checkpoint
//! MERGEs), [`state`] (the STATE in commits), [`history`] (with `first`: what a full
//! refresh records in it, worked out as its rows arrive), [`compact`], [`formulas`] (the
//! scheduled formula refresh, merged in place).

mod append;
mod changes;
pub mod commit;
pub mod compact;
mod files;
mod first;
pub mod formulas;
pub mod history;
mod layout;
pub mod merge;
pub mod rows;
pub mod state;
pub mod table;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deltalake::DeltaTable;

use super::{OutputError, OutputLocation, StreamWriter, SyncStart};
use crate::config::Compression;
use crate::state::{OutputCommit, StreamState, TableCommit};
use rows::Keys;
use state::{CommitTag, Committed};
use table::TableTarget;

/// Why a Delta table could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    /// The output location cannot hold tables.
    #[error("output.path {path:?}: {reason}")]
    Location {
        /// The configured path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Reading or writing the table failed.
    #[error("Delta table {path}: {reason}")]
    Table {
        /// The table's path.
        path: String,
        /// deltalake's or the store's message.
        reason: String,
    },
    /// Another writer committed a change this commit conflicts with (retried a few times).
    #[error(
        "Delta table {path}: other writers kept committing conflicting changes ({reason}); run the read again"
    )]
    Conflict {
        /// The table's path.
        path: String,
        /// deltalake's message.
        reason: String,
    },
    /// The table was created for another stream or key.
    #[error(
        "the Delta table at {path} was written by {theirs}, not by {ours}: merging on another key would mix two tables' rows; point output.path elsewhere or remove that table"
    )]
    OtherStream {
        /// The table's path.
        path: String,
        /// The stream and key the table was written with.
        theirs: String,
        /// This stream and key.
        ours: String,
    },
    /// A column's type differs from the table's.
    #[error(
        "the Delta table at {path} holds column {field} as {table_type}, but the stream now reads it as {new_type}: an incremental read cannot change a column's type; run a full refresh of the stream to rewrite the table with the new type"
    )]
    TypeChange {
        /// The table's path.
        path: String,
        /// The column.
        field: String,
        /// Its type in the table.
        table_type: String,
        /// Its type now.
        new_type: String,
    },
    /// A column's type differs from the history table's: a full refresh rewrites the stream's
    /// table, but the history keeps every version in the types it was created with.
    #[error(
        "the history table at {path} holds column {field} as {table_type}, but the stream now reads it as {new_type}: a history table keeps every version, so no read changes a column's type in it; move {path} aside (or remove it) to start a new history, then read again"
    )]
    HistoryTypeChange {
        /// The history table's path.
        path: String,
        /// The column.
        field: String,
        /// Its type in the history table.
        table_type: String,
        /// Its type now.
        new_type: String,
    },
    /// An incremental read needs a key to merge on.
    #[error(
        "stream {stream} has no primary key column {key:?}: a Delta table is merged on it; give the mapping's stream a primary_key (or select Id)"
    )]
    NoKey {
        /// The stream.
        stream: String,
        /// The key columns looked for.
        key: Vec<String>,
    },
    /// Live rows whose key has a null column: MERGE matches rows by key, and a null matches
    /// no row, so each read would add them again.
    #[error(
        "{rows} row(s) read have no value in {column}, a column of the primary key {key:?}: a Delta table merges rows by their key, and a row without one matches no row, so every read would add it again. Give the mapping's stream a primary_key whose columns always have a value (a column mapped from Id has one), or write the stream to Parquet"
    )]
    NullKey {
        /// The key column found null.
        column: String,
        /// How many live rows of the batch have it null.
        rows: usize,
        /// The whole key.
        key: Vec<String>,
    },
    /// Rows could not be put in the table's form.
    #[error("preparing rows for the Delta table: {0}")]
    Rows(String),
}

impl DeltaError {
    /// Errors the user fixes in the config or the table (not retried by orchestrators).
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            DeltaError::Location { .. }
                | DeltaError::OtherStream { .. }
                | DeltaError::TypeChange { .. }
                | DeltaError::HistoryTypeChange { .. }
                | DeltaError::NoKey { .. }
                | DeltaError::NullKey { .. }
        )
    }
}

/// Knobs of Delta output.
#[derive(Debug, Clone)]
pub struct DeltaOptions {
    /// Also keep every row version in `<stream>_history`.
    pub history: bool,
    /// Parquet codec of the data files.
    pub compression: Compression,
}

/// Delta tables under one location.
#[derive(Debug, Clone)]
pub struct DeltaDestination {
    /// The store and prefix (the same location Parquet output uses).
    pub location: OutputLocation,
    /// This run's sync id (the `_sfetl_sync_id` of rows it writes).
    pub sync_id: String,
    /// History and codec.
    pub options: DeltaOptions,
}

impl DeltaDestination {
    /// The writer of `stream`'s table, for batches of `schema`.
    pub fn open(
        &self,
        stream: &str,
        schema: &SchemaRef,
        start: &SyncStart,
    ) -> Result<DeltaStreamWriter, OutputError> {
        let keys = Keys::of(schema, start.cursor.as_deref());
        if start.incremental && keys.key.iter().any(|k| schema.field_with_name(k).is_err()) {
            return Err(DeltaError::NoKey {
                stream: stream.to_string(),
                key: keys.key,
            }
            .into());
        }
        let target = TableTarget::new(&self.location, stream)?;
        let history = match self.options.history {
            true => Some(TableTarget::new(&self.location, &history::name(stream))?),
            false => None,
        };
        let one_commit = start.slice.is_some() && !start.base;
        let table_schema = rows::table_schema(schema);
        let starting = match (&history, start.incremental || one_commit) {
            (Some(h), false) => {
                Starting::spawn(h, &keys, &table_schema, stream, self.options.compression)
            }
            _ => None,
        };
        Ok(DeltaStreamWriter {
            target,
            history,
            stream: stream.to_string(),
            app_id: slice_app_id(stream, start.slice.as_ref().map(|s| s.id.as_str())),
            // A base slice (a full refresh read whole) replaces the table as a full refresh
            // does, under the slice's app id.
            one_commit,
            sync_id: self.sync_id.clone(),
            keys,
            schema: table_schema,
            incremental: start.incremental,
            compression: self.options.compression,
            table: None,
            loaded: false,
            txn: 0,
            pending: Vec::new(),
            appender: None,
            files: None,
            next_files: None,
            recorder: None,
            starting,
            staged: None,
            committed: None,
            uncommitted: false,
        })
    }

    /// The STATE last committed to `stream`'s table, if it has one.
    pub async fn committed_state(&self, stream: &str) -> Result<Option<Committed>, OutputError> {
        let target = TableTarget::new(&self.location, stream)?;
        let Some(table) = target.open().await? else {
            return Ok(None);
        };
        Ok(state::committed(&target, &table, stream).await?)
    }

    /// Whether the slice `slice_id` of `stream` is already committed to its table (its `txn`
    /// app id has a version): reading it again would change nothing.
    pub async fn slice_committed(&self, stream: &str, slice_id: &str) -> Result<bool, OutputError> {
        let target = TableTarget::new(&self.location, stream)?;
        let Some(table) = target.open().await? else {
            return Ok(false);
        };
        let app_id = slice_app_id(stream, Some(slice_id));
        Ok(state::txn_version(&target, &table, &app_id).await? > 0)
    }

    /// Where `stream`'s table is, for messages.
    pub fn table_display(&self, stream: &str) -> String {
        TableTarget::new(&self.location, stream)
            .map(|t| t.display)
            .unwrap_or_else(|_| format!("{}/{stream}", self.location.display))
    }
}

/// One MERGE of `rows` (without rows, a commit of the STATE alone); when another writer's
/// commit conflicts with it (concurrent slices merging into one table), the table is loaded
/// again and the commit made again on top.
async fn commit_retrying(
    target: &TableTarget,
    table: DeltaTable,
    rows: Vec<RecordBatch>,
    keys: &Keys,
    tag: &CommitTag,
    compression: Compression,
) -> Result<DeltaTable, DeltaError> {
    let mut given = Some(table);
    retrying(|| {
        let given = given.take();
        let rows = rows.clone();
        async move {
            let table = match given {
                Some(table) => table,
                None => reloaded(target, tag).await?,
            };
            if rows.is_empty() {
                commit::state_only(target, table, tag).await
            } else {
                merge::merge(target, table, rows, keys, tag, compression).await
            }
        }
    })
    .await
}

/// The table as a conflicting writer left it, for a commit made again; an error when that
/// writer committed this very `txn` (two runs of one stream or slice at once).
async fn reloaded(target: &TableTarget, tag: &CommitTag) -> Result<DeltaTable, DeltaError> {
    let table = target
        .open()
        .await?
        .ok_or_else(|| target.error("the table disappeared"))?;
    if state::txn_version(target, &table, &tag.app_id).await? >= tag.version {
        return Err(target.error(format!(
            "another run committed {} version {} at the same time; run one read of a stream (or slice) at a time",
            tag.app_id, tag.version
        )));
    }
    Ok(table)
}

/// MERGEs made at most, when concurrent writers' commits conflict.
const MERGE_ATTEMPTS: u32 = 10;

/// Runs `commit` again while it loses the race to a concurrent writer's commit, up to
/// [`MERGE_ATTEMPTS`] times; each attempt loads the table afresh itself (the stream table's
/// [`commit_retrying`], the history table's commits).
async fn retrying<T, F>(mut commit: impl FnMut() -> F) -> Result<T, DeltaError>
where
    F: std::future::Future<Output = Result<T, DeltaError>>,
{
    let mut attempt = 1;
    loop {
        match commit().await {
            Err(DeltaError::Conflict { .. }) if attempt < MERGE_ATTEMPTS => attempt += 1,
            other => return other,
        }
    }
}

/// The `txn` app id of a stream's commits: the stream, or `<stream>/<slice id>` for a slice.
fn slice_app_id(stream: &str, slice: Option<&str>) -> String {
    match slice {
        Some(id) => format!("{stream}/{id}"),
        None => stream.to_string(),
    }
}

/// Writes one stream's table: full refresh (files, then one replacing commit) or incremental
/// (a MERGE per checkpoint).
pub struct DeltaStreamWriter {
    target: TableTarget,
    history: Option<TableTarget>,
    stream: String,
    app_id: String,
    sync_id: String,
    keys: Keys,
    /// The table's schema for this stream (see [`rows::table_schema`]).
    schema: SchemaRef,
    incremental: bool,
    /// A slice: every row in one commit at the end (see [`SyncStart::slice`]).
    one_commit: bool,
    compression: Compression,
    /// The table once loaded (or created); `None` while it does not exist.
    table: Option<DeltaTable>,
    loaded: bool,
    /// The last `txn` version committed for `app_id` (0: none).
    txn: i64,
    /// Incremental: rows since the last commit, in the table's schema.
    pending: Vec<RecordBatch>,
    /// Incremental into a table that held no rows when the read began: its rows go to data
    /// files as they come (see [`append`]) until a key comes again.
    appender: Option<append::Appender>,
    /// Full refresh, or an incremental read appending: the data files written since the last
    /// commit.
    files: Option<commit::FileWriter>,
    /// An appending read: the writer of its next files, with its first files' settings.
    next_files: Option<commit::FileWriter>,
    /// Full refresh with history: what the history's commit will record, worked out as the
    /// rows arrive (`Some(None)`: worked out at the commit; `None`: not looked at yet, before
    /// the first rows).
    recorder: Option<Option<first::Recorder>>,
    /// Full refresh with history: the recorder being started since the stream opened, so the
    /// history's current versions load while Salesforce runs the Bulk job.
    starting: Option<Starting>,
    /// The STATE the next commit records.
    staged: Option<StreamState>,
    /// While appending: the STATE the table last had committed under `app_id`, by this run's
    /// appends or before it (what the files written so far are committed under when a key
    /// comes again).
    committed: Option<serde_json::Value>,
    /// A checkpoint without rows whose STATE is not in the table yet (committed at the end,
    /// rather than one empty commit per empty window).
    uncommitted: bool,
}

impl DeltaStreamWriter {
    /// Loads the table once: refuses another stream's table, learns the last `txn`, and (for
    /// incremental reads) evolves the schema or refuses a type change.
    async fn load(&mut self) -> Result<(), DeltaError> {
        if self.loaded {
            return Ok(());
        }
        self.loaded = true;
        // An incremental read (not a slice, without history) into a table without rows
        // appends its rows as they come.
        let may_append = self.incremental && !self.one_commit && self.history.is_none();
        let Some(table) = self.target.open().await? else {
            self.appender = may_append.then(append::Appender::new);
            return Ok(());
        };
        table::check_owner(&self.target, &table, &self.stream, &self.keys.key)?;
        self.txn = state::txn_version(&self.target, &table, &self.app_id).await?;
        if may_append && !commit::holds_files(&self.target, &table).await? {
            self.appender = Some(append::Appender::new());
            if self.txn > 0 {
                let committed = state::committed(&self.target, &table, &self.app_id).await?;
                self.committed = committed.map(|c| c.state);
            }
        }
        self.table = Some(if self.incremental {
            commit::evolve(&self.target, table, &self.schema).await?
        } else {
            table
        });
        Ok(())
    }

    /// The tag of the next commit: `txn` one more, and the staged STATE.
    fn next_tag(&self) -> CommitTag {
        let state = self.staged.clone().unwrap_or_default();
        CommitTag {
            app_id: self.app_id.clone(),
            version: self.txn + 1,
            state: state.to_value(),
        }
    }

    /// The table, created (empty, with the stream's schema and properties) when missing.
    async fn table_or_create(&mut self) -> Result<DeltaTable, DeltaError> {
        match self.table.take() {
            Some(t) => Ok(t),
            None => {
                let props =
                    table::properties(&self.stream, &self.keys.key, self.keys.cursor.as_deref());
                commit::create_or_theirs(
                    &self.target,
                    &self.schema,
                    props,
                    &self.stream,
                    &self.keys.key,
                )
                .await
            }
        }
    }

    /// Commits the files an appending read wrote since its last commit under `tag` (without
    /// files, the STATE alone).
    async fn commit_appended(&mut self, tag: CommitTag) -> Result<(), DeltaError> {
        let files = match self.files.take() {
            Some(f) => {
                let (files, next) = f.close_keeping(&self.target).await?;
                self.next_files = Some(next);
                files
            }
            None => Vec::new(),
        };
        let table = self.table_or_create().await?;
        let table = commit::append(&self.target, table, files, &tag).await?;
        self.table = Some(table);
        self.txn = tag.version;
        self.committed = Some(tag.state);
        self.uncommitted = false;
        Ok(())
    }

    /// Takes `rows` of an incremental read: written to data files while the read appends and
    /// every key is new ([`append`]), else kept for the checkpoint's MERGE. A key that comes
    /// again ends appending: the files written so far are committed first, under the STATE
    /// already committed (the rows past it are read again by the next run and merged).
    async fn take_incremental(&mut self, rows: RecordBatch) -> Result<(), DeltaError> {
        self.load().await?;
        if let Some(appender) = &mut self.appender {
            if appender.admit(&rows, &self.keys)? {
                let live = rows::live_rows(&rows, &self.keys)?;
                if live.num_rows() > 0 {
                    let (schema, compression) = (&self.schema, self.compression);
                    let next = &mut self.next_files;
                    let files = (self.files).get_or_insert_with(|| {
                        (next.take())
                            .unwrap_or_else(|| commit::FileWriter::new(schema, compression))
                    });
                    files.write(&self.target, &live).await?;
                }
                return Ok(());
            }
            self.appender = None;
            let tag = CommitTag {
                state: (self.committed.clone())
                    .unwrap_or_else(|| StreamState::default().to_value()),
                ..self.next_tag()
            };
            self.commit_appended(tag).await?;
        }
        self.pending.push(rows);
        Ok(())
    }

    /// Commits the pending rows as one MERGE (or, without rows, the STATE alone).
    async fn commit_checkpoint(&mut self) -> Result<(), DeltaError> {
        self.load().await?;
        if self.appender.is_some() {
            return self.commit_appended(self.next_tag()).await;
        }
        let tag = self.next_tag();
        let table = self.table_or_create().await?;
        let rows = std::mem::take(&mut self.pending);
        if let Some(h) = &self.history {
            let (keys, schema, stream) = (&self.keys, &self.schema, &self.stream);
            let compression = self.compression;
            retrying(|| history::record(h, keys, schema, stream, &rows, &tag, compression)).await?;
        }
        let table = commit_retrying(
            &self.target,
            table,
            rows,
            &self.keys,
            &tag,
            self.compression,
        )
        .await?;
        self.table = Some(table);
        self.txn = tag.version;
        self.uncommitted = false;
        Ok(())
    }

    /// Replaces the table with the files written: one commit.
    async fn commit_replacement(&mut self) -> Result<(), DeltaError> {
        self.load().await?;
        let files = match self.files.take() {
            Some(f) => f.close(&self.target).await?,
            None => Vec::new(),
        };
        let recorded = match (&self.history, self.recorder.take().flatten()) {
            (Some(h), Some(recorder)) => Some(recorder.close(h, &self.schema).await?),
            _ => None,
        };
        let tag = self.next_tag();
        let props = table::properties(&self.stream, &self.keys.key, self.keys.cursor.as_deref());
        let table = self.table_or_create().await?;
        let table = commit::replace(&self.target, table, &self.schema, props, files, &tag).await?;
        if let Some(h) = &self.history {
            let (keys, stream, compression) = (&self.keys, &self.stream, self.compression);
            let recorded = recorded.as_ref();
            retrying(|| {
                history::record_replacement(h, &table, keys, stream, &tag, compression, recorded)
            })
            .await?;
        }
        self.table = Some(table);
        self.txn = tag.version;
        Ok(())
    }
}

/// A full refresh's history recorder started in the background when the stream opens
/// ([`first::Recorder::start`]: the history's current versions loaded); stopped if the stream
/// ends without taking it (no rows, or a failure).
struct Starting(tokio::task::JoinHandle<Result<Option<first::Recorder>, DeltaError>>);

impl Starting {
    /// Starts the recorder of `stream`'s history at `history`; `None` outside a Tokio runtime
    /// (it is then started at the first rows).
    fn spawn(
        history: &TableTarget,
        keys: &Keys,
        schema: &SchemaRef,
        stream: &str,
        compression: Compression,
    ) -> Option<Starting> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (history, keys, schema) = (history.clone(), keys.clone(), schema.clone());
        let stream = stream.to_string();
        Some(Starting(runtime.spawn(async move {
            first::Recorder::start(&history, &keys, &schema, &stream, compression).await
        })))
    }

    /// The recorder, once started.
    async fn finish(
        mut self,
        history: &TableTarget,
    ) -> Result<Option<first::Recorder>, DeltaError> {
        (&mut self.0).await.map_err(|e| history.error(e))?
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[async_trait]
impl StreamWriter for DeltaStreamWriter {
    async fn write(
        &mut self,
        batch: &RecordBatch,
        extracted_at: DateTime<Utc>,
    ) -> Result<(), OutputError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if let Some((column, rows)) = rows::null_key(batch, &self.keys)? {
            return Err(DeltaError::NullKey {
                column,
                rows,
                key: self.keys.key.clone(),
            }
            .into());
        }
        let rows = rows::conform(
            batch,
            &self.schema,
            extracted_at.timestamp_micros(),
            &self.sync_id,
        )?;
        if self.one_commit {
            self.pending.push(rows);
            return Ok(());
        }
        if self.incremental {
            return Ok(self.take_incremental(rows).await?);
        }
        let rows = rows::live_rows(&rows, &self.keys)?;
        if rows.num_rows() == 0 {
            return Ok(());
        }
        if let Some(h) = &self.history {
            if self.recorder.is_none() {
                let recorder = match self.starting.take() {
                    Some(starting) => starting.finish(h).await?,
                    None => {
                        let (keys, schema, stream) = (&self.keys, &self.schema, &self.stream);
                        first::Recorder::start(h, keys, schema, stream, self.compression).await?
                    }
                };
                self.recorder = Some(recorder);
            }
            if let Some(Some(recorder)) = &mut self.recorder {
                recorder.write(h, &rows).await?;
            }
        }
        let files = (self.files)
            .get_or_insert_with(|| commit::FileWriter::new(&self.schema, self.compression));
        Ok(files.write(&self.target, &rows).await?)
    }

    /// Incremental: one MERGE commit with the staged STATE (a checkpoint without rows is
    /// committed with the next one, or at the end). Full refresh: nothing is visible before
    /// the stream ends, so nothing to do.
    async fn commit(&mut self) -> Result<(), OutputError> {
        if !self.incremental || self.one_commit {
            return Ok(());
        }
        if self.pending.is_empty() && self.files.is_none() {
            self.uncommitted = true;
            return Ok(());
        }
        Ok(self.commit_checkpoint().await?)
    }

    fn position(&self) -> Option<OutputCommit> {
        None
    }

    fn stage_state(&mut self, state: &StreamState) {
        self.staged = Some(state.clone());
    }

    fn table_position(&self) -> Option<TableCommit> {
        (self.txn > 0).then(|| TableCommit {
            app_id: self.app_id.clone(),
            txn: self.txn,
        })
    }

    async fn finish(&mut self) -> Result<(), OutputError> {
        if self.one_commit {
            self.load().await?;
            if self.txn > 0 {
                // This slice committed before: its rows are in the table already.
                self.pending.clear();
                return Ok(());
            }
            return Ok(self.commit_checkpoint().await?);
        }
        if self.incremental {
            if self.uncommitted || !self.pending.is_empty() || self.files.is_some() {
                self.commit_checkpoint().await?;
            }
            return Ok(());
        }
        Ok(self.commit_replacement().await?)
    }
}
