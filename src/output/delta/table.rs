//! Finding, opening and creating a stream's Delta table, and what its metadata says about who
//! writes it.
//!
//! Tables live at `<output.path>/<stream>`. On local disk deltalake opens them itself; on
//! object stores sfetl hands deltalake the store it already built from `storage_options` (the
//! same one Parquet output uses), so no second HTTP or cloud SDK stack is linked. Commits go
//! through deltalake's default log store, which writes each commit file with a put that fails
//! when the file exists (`If-None-Match: *` on S3, object_store's conditional put): two writers
//! racing for one version cannot both win, and the loser retries on the new version.

use std::collections::HashMap;
use std::sync::{Arc, Once};

use deltalake::logstore::{
    LogStore, LogStoreFactory, ObjectStoreRef, StorageConfig, default_logstore, logstore_factories,
};
use deltalake::{DeltaResult, DeltaTable, DeltaTableBuilder};
use object_store::ObjectStore;
use url::Url;

use super::DeltaError;
use crate::output::OutputLocation;

/// Table property naming the stream that writes the table.
pub const PROP_STREAM: &str = "sfetl.stream";
/// Table property holding the stream's primary key (a JSON list of columns).
pub const PROP_KEY: &str = "sfetl.primary_key";
/// Table property naming the cursor column that orders versions of a row.
pub const PROP_CURSOR: &str = "sfetl.cursor";

/// Where one table lives: its URL and, on object stores, the store to reach it with.
#[derive(Clone)]
pub struct TableTarget {
    /// `file:///abs/path/<stream>` or `s3://bucket/prefix/<stream>`.
    pub url: Url,
    /// The store rooted at the bucket or container (object stores only).
    pub root: Option<Arc<dyn ObjectStore>>,
    /// The path as the user knows it, for messages.
    pub display: String,
}

impl std::fmt::Debug for TableTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TableTarget({})", self.display)
    }
}

impl TableTarget {
    /// The table named `name` (a stream, or `<stream>_history`) under the output location.
    pub fn new(location: &OutputLocation, name: &str) -> Result<TableTarget, DeltaError> {
        let err = |reason: String| DeltaError::Location {
            path: location.display.clone(),
            reason,
        };
        if let Some(root) = &location.local_root {
            let dir = root.join(name);
            let url = Url::from_directory_path(&dir)
                .map_err(|_| err(format!("{} is not an absolute folder", dir.display())))?;
            return Ok(TableTarget {
                url,
                root: None,
                display: dir.display().to_string(),
            });
        }
        let base = location.display.trim_end_matches('/');
        let url = Url::parse(&format!("{base}/{name}/")).map_err(|e| err(e.to_string()))?;
        register_log_stores();
        Ok(TableTarget {
            url,
            root: Some(location.store.clone()),
            display: format!("{base}/{name}"),
        })
    }

    /// A builder for the table, reaching it through the configured store.
    fn builder(&self) -> Result<DeltaTableBuilder, DeltaError> {
        let b = DeltaTableBuilder::from_url(self.url.clone()).map_err(|e| self.error(e))?;
        Ok(match &self.root {
            Some(store) => b.with_storage_backend(store.clone(), self.url.clone()),
            None => b,
        })
    }

    /// The table handle without loading its log (to create it, or write files before it
    /// exists).
    pub fn unloaded(&self) -> Result<DeltaTable, DeltaError> {
        if self.root.is_none() {
            std::fs::create_dir_all(self.url.to_file_path().unwrap_or_default())
                .map_err(|e| self.error(e))?;
        }
        self.builder()?.build().map_err(|e| self.error(e))
    }

    /// The table at its newest version, or `None` when there is none yet.
    pub async fn open(&self) -> Result<Option<DeltaTable>, DeltaError> {
        if self.root.is_none() && !self.url.to_file_path().is_ok_and(|p| p.is_dir()) {
            return Ok(None);
        }
        let mut table = self.builder()?.build().map_err(|e| self.error(e))?;
        match table.load().await {
            Ok(()) => Ok(Some(table)),
            Err(deltalake::DeltaTableError::NotATable(_)) => Ok(None),
            Err(e) => Err(self.error(e)),
        }
    }

    /// A write or read failure of this table, naming it.
    pub fn error(&self, e: impl std::fmt::Display) -> DeltaError {
        DeltaError::Table {
            path: self.display.clone(),
            reason: e.to_string(),
        }
    }
}

/// The stream and key a table was created for, from its properties.
pub fn owner(table: &DeltaTable) -> Option<(String, String)> {
    let config = table.snapshot().ok()?.metadata().configuration().clone();
    Some((
        config.get(PROP_STREAM)?.clone(),
        config.get(PROP_KEY).cloned().unwrap_or_default(),
    ))
}

/// Refuses a table that another stream (or the same stream with another key) wrote: merging on
/// a different key would silently mix rows of two tables.
pub fn check_owner(
    target: &TableTarget,
    table: &DeltaTable,
    stream: &str,
    key: &[String],
) -> Result<(), DeltaError> {
    let ours = serde_json::to_string(key).unwrap_or_default();
    match owner(table) {
        Some((s, k)) if s != stream || k != ours => Err(DeltaError::OtherStream {
            path: target.display.clone(),
            theirs: format!("stream {s} with primary key {k}"),
            ours: format!("stream {stream} with primary key {ours}"),
        }),
        _ => Ok(()),
    }
}

/// Table properties of a new table written by `stream`.
pub fn properties(stream: &str, key: &[String], cursor: Option<&str>) -> HashMap<String, String> {
    let mut p = HashMap::from([
        (PROP_STREAM.to_string(), stream.to_string()),
        (
            PROP_KEY.to_string(),
            serde_json::to_string(key).unwrap_or_default(),
        ),
    ]);
    if let Some(c) = cursor {
        p.insert(PROP_CURSOR.to_string(), c.to_string());
    }
    p
}

/// deltalake's default log store (commits by put-if-absent), for the schemes whose stores sfetl
/// builds itself.
struct PutIfAbsentLogStores;

impl LogStoreFactory for PutIfAbsentLogStores {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}

/// Registers [`PutIfAbsentLogStores`] for `s3://`, `gs://` and `az://` (and their aliases)
/// once per process.
fn register_log_stores() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let registry = logstore_factories();
        for scheme in ["s3", "s3a", "gs", "az", "abfs", "abfss", "azure"] {
            if let Ok(url) = Url::parse(&format!("{scheme}://")) {
                registry.insert(url, Arc::new(PutIfAbsentLogStores));
            }
        }
    });
}
