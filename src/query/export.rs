//! Finding an export: its store, its stream folders and files, and what each stream's newest
//! file says about its key (`sfetl.primary_key` metadata).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use arrow::datatypes::Schema;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore};
use url::Url;

use super::QueryError;
use crate::output::sync::{MARKER, MARKER_READS, SyncMarker, current_from, fetch_markers};

/// The folder of a Delta table's transaction log.
const DELTA_LOG: &str = "_delta_log";

/// A file's footer as sfetl reads it: its Arrow schema and its key-value metadata.
type Footer = (Schema, HashMap<String, String>);

/// An opened export: where it lives and how DataFusion reaches it.
pub(super) struct Export {
    /// The store holding it.
    pub store: Arc<dyn ObjectStore>,
    /// URL of the store's root for DataFusion (`file:///`, `s3://bucket/`).
    pub store_url: Url,
    /// Whether the store must be registered with DataFusion (local disk is built in).
    pub remote: bool,
    /// Folder of the export inside the store.
    pub prefix: Path,
    /// The path as given, for messages.
    pub display: String,
    /// Footers read so far (a stream's newest file is often the one its schema came from:
    /// on an object store each footer is two ranged GETs).
    footers: std::sync::Mutex<HashMap<Path, Footer>>,
}

/// One stream folder: its name and its Parquet files, oldest sync first.
pub(super) struct StreamFiles {
    /// Stream (folder) name.
    pub name: String,
    /// URL of the folder for DataFusion.
    pub url: String,
    /// (sync id, file) pairs in sync-id then file order.
    pub files: Vec<(String, ObjectMeta)>,
    /// The newest complete base sync (see `output::sync`): the latest view starts there. Read
    /// by [`Export::find_current_from`] for the streams a query opens.
    pub current_from: Option<String>,
    /// The stream's sync markers (`<sync-id>/_sfetl_sync.json`), oldest first, unread.
    markers: Vec<ObjectMeta>,
}

impl Export {
    /// Opens a local folder or an object-store URL; credentials come from the environment
    /// (`AWS_*`, `AZURE_*`, `GOOGLE_*`), as for `read`.
    pub(super) fn open(path: &str) -> Result<Export, QueryError> {
        let no_export = |reason: String| QueryError::NoExport {
            path: path.to_string(),
            reason,
        };
        if let Some(local) = crate::output::local_path(path) {
            let meta = std::fs::metadata(local)
                .map_err(|e| no_export(format!("cannot open the folder ({e})")))?;
            if !meta.is_dir() {
                return Err(no_export("it is a file, not an export folder".into()));
            }
            let abs = std::fs::canonicalize(local).map_err(|e| no_export(e.to_string()))?;
            let prefix = Path::from_absolute_path(&abs).map_err(|e| no_export(e.to_string()))?;
            return Ok(Export {
                store: Arc::new(object_store::local::LocalFileSystem::new()),
                store_url: Url::parse("file:///").expect("valid URL"),
                remote: false,
                prefix,
                display: abs.display().to_string(),
                footers: Default::default(),
            });
        }
        let location = crate::output::open_location(path, &BTreeMap::new())
            .map_err(|e| no_export(e.to_string()))?;
        let url = Url::parse(path).map_err(|e| no_export(e.to_string()))?;
        let store_url = Url::parse(&format!(
            "{}://{}/",
            url.scheme(),
            url.host_str().unwrap_or_default()
        ))
        .map_err(|e| no_export(e.to_string()))?;
        Ok(Export {
            store: location.store,
            store_url,
            remote: true,
            prefix: location.prefix,
            display: path.to_string(),
            footers: Default::default(),
        })
    }

    /// The names of the folders directly under the export (streams and Delta tables): one
    /// listing of names, not of the files of every sync of every stream.
    pub(super) async fn folders(&self) -> Result<Vec<String>, QueryError> {
        crate::output::folder_names(self.store.as_ref(), &self.prefix)
            .await
            .map_err(|e| self.unlisted(e))
    }

    fn unlisted(&self, e: object_store::Error) -> QueryError {
        QueryError::NoExport {
            path: self.display.clone(),
            reason: format!("cannot list it ({e})"),
        }
    }

    /// Stream folders holding `<stream>/<sync-id>/*.parquet`, by name, and the names of the
    /// Delta tables (folders holding `_delta_log/`), whose files are not the export's syncs:
    /// among `folders` only (each listed on its own), or the whole export.
    pub(super) async fn streams(
        &self,
        folders: Option<&[String]>,
    ) -> Result<(Vec<StreamFiles>, Vec<String>), QueryError> {
        let listed: Vec<ObjectMeta> = match folders {
            None => self
                .store
                .list(Some(&self.prefix))
                .try_collect()
                .await
                .map_err(|e| self.unlisted(e))?,
            Some(folders) => {
                let mut listed = Vec::new();
                for folder in folders {
                    let prefix = self.prefix.clone().join(folder.as_str());
                    let files: Vec<ObjectMeta> = self
                        .store
                        .list(Some(&prefix))
                        .try_collect()
                        .await
                        .map_err(|e| self.unlisted(e))?;
                    listed.extend(files);
                }
                listed
            }
        };
        let mut by_stream: BTreeMap<String, Vec<(String, ObjectMeta)>> = BTreeMap::new();
        let mut marker_files: BTreeMap<String, Vec<ObjectMeta>> = BTreeMap::new();
        let mut delta: BTreeSet<String> = BTreeSet::new();
        for meta in listed {
            let Some(parts) = meta.location.prefix_match(&self.prefix) else {
                continue;
            };
            let parts: Vec<String> = parts.map(|p| p.as_ref().to_string()).collect();
            if let [table, log, ..] = parts.as_slice()
                && log == DELTA_LOG
            {
                delta.insert(table.clone());
            } else if let [stream, _, file] = parts.as_slice()
                && file == MARKER
            {
                marker_files.entry(stream.clone()).or_default().push(meta);
            } else if let [stream, sync_id, file] = parts.as_slice()
                && file.ends_with(".parquet")
            {
                by_stream
                    .entry(stream.clone())
                    .or_default()
                    .push((sync_id.clone(), meta));
            }
        }
        by_stream.retain(|name, _| !delta.contains(name));
        let mut out = Vec::new();
        for (name, mut files) in by_stream {
            files.sort_by(|a, b| (&a.0, &a.1.location).cmp(&(&b.0, &b.1.location)));
            let folder = self.prefix.clone().join(name.as_str());
            let mut markers = marker_files.remove(&name).unwrap_or_default();
            markers.sort_by(|a, b| a.location.cmp(&b.location));
            out.push(StreamFiles {
                url: format!("{}{folder}/", self.store_url),
                current_from: None,
                markers,
                name,
                files,
            });
        }
        Ok((out, delta.into_iter().collect()))
    }

    /// Sets `stream.current_from` from its markers, read newest first a few dozen at a time
    /// until one names a complete base sync (unreadable ones are skipped: a marker only
    /// narrows the latest view, and without it every sync counts).
    pub(super) async fn find_current_from(&self, stream: &mut StreamFiles) {
        for chunk in stream.markers.rchunks(MARKER_READS) {
            let paths: Vec<Path> = chunk.iter().map(|m| m.location.clone()).collect();
            let fetched = fetch_markers(self.store.as_ref(), &paths, &stream.name).await;
            let mut found: Vec<SyncMarker> = fetched.into_iter().flatten().flatten().collect();
            found.sort_by(|a, b| a.sync_id.cmp(&b.sync_id));
            if let Some(from) = current_from(&found) {
                stream.current_from = Some(from.to_string());
                return;
            }
        }
    }

    /// A file's footer: its Arrow schema (with the stream schema's metadata the writer
    /// embedded) and its key-value metadata.
    async fn footer(&self, meta: &ObjectMeta) -> Result<Footer, QueryError> {
        let footers = || self.footers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(footer) = footers().get(&meta.location) {
            return Ok(footer.clone());
        }
        let err = |reason: String| QueryError::Read {
            path: meta.location.to_string(),
            reason,
        };
        let metadata =
            crate::output::parquet_footer(self.store.as_ref(), &meta.location, meta.size)
                .await
                .map_err(err)?;
        let file = metadata.file_metadata();
        let kv = file.key_value_metadata();
        let schema = parquet::arrow::parquet_to_arrow_schema(file.schema_descr(), kv)
            .map_err(|e| err(e.to_string()))?;
        let mut pairs = HashMap::new();
        for entry in kv.into_iter().flatten() {
            if let Some(v) = &entry.value {
                pairs.insert(entry.key.clone(), v.clone());
            }
        }
        footers().insert(meta.location.clone(), (schema.clone(), pairs.clone()));
        Ok((schema, pairs))
    }

    /// The key-value metadata of a file's footer (and of its embedded Arrow schema).
    pub(super) async fn file_metadata(
        &self,
        meta: &ObjectMeta,
    ) -> Result<HashMap<String, String>, QueryError> {
        let (schema, pairs) = self.footer(meta).await?;
        // The Arrow schema embedded by the writer carries the stream schema's metadata.
        let mut out: HashMap<String, String> = schema.metadata().clone();
        for (k, v) in pairs {
            out.entry(k).or_insert(v);
        }
        Ok(out)
    }

    /// The Arrow schema of a file, as its writer embedded it.
    pub(super) async fn file_schema(&self, meta: &ObjectMeta) -> Result<Schema, QueryError> {
        Ok(self.footer(meta).await?.0)
    }
}
