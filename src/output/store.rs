//! Output locations: a local folder, `file://`, `s3://`, `gs://`, `az://` (or `memory://` for
//! tests), opened through object_store with `output.storage_options` and the environment.

use std::collections::BTreeMap;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::path::Path;

use super::OutputError;
use super::sync::SyncMarker;

use crate::secret::Secret;

/// An opened output location: the store and the prefix inside it.
#[derive(Clone)]
pub struct OutputLocation {
    /// The object store.
    pub store: Arc<dyn ObjectStore>,
    /// Prefix under which streams are written.
    pub prefix: Path,
    /// The path as configured, for messages.
    pub display: String,
    /// The folder on disk, for local locations.
    pub local_root: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for OutputLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OutputLocation({})", self.display)
    }
}

impl OutputLocation {
    /// Removes the staging files killed runs left on local disk (object_store writes
    /// `part-N.parquet#K` and renames it when complete) in every sfetl sync folder of the
    /// output (`<stream>/<sync>/` holding the marker). Remote stores need nothing: an
    /// unfinished multipart upload is never visible. Returns the removed paths.
    pub fn remove_staging(&self) -> std::io::Result<Vec<std::path::PathBuf>> {
        let Some(root) = &self.local_root else {
            return Ok(Vec::new());
        };
        let mut removed = Vec::new();
        for stream in read_dirs(root)? {
            for sync in read_dirs(&stream)? {
                // Slice folders are left alone: other processes may be writing them now, and a
                // slice cleans up its own unfinished attempts (see `slices`).
                let Ok(marker) = std::fs::read(sync.join(super::sync::MARKER)) else {
                    continue;
                };
                if serde_json::from_slice::<SyncMarker>(&marker).is_ok_and(|m| m.slice.is_some()) {
                    continue;
                }
                for f in std::fs::read_dir(&sync)? {
                    let f = f?.path();
                    let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                    if f.is_file() && super::resume::is_staging(name) {
                        std::fs::remove_file(&f)?;
                        removed.push(f);
                    }
                }
            }
        }
        Ok(removed)
    }

    /// The object path of `parts` under the prefix.
    pub fn child(&self, parts: &[&str]) -> Path {
        let mut p = self.prefix.clone();
        for part in parts {
            p = p.join(*part);
        }
        p
    }
}

/// The sub-folders of `dir` (none when it does not exist); links are not followed.
fn read_dirs(dir: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            out.push(e.path());
        }
    }
    Ok(out)
}

/// The names of the folders directly under `prefix` in `store`: one listing of names, not of
/// every file beneath (an export holds a file per part and a marker per sync of every
/// stream). A prefix that does not exist holds none.
pub async fn folder_names(
    store: &dyn ObjectStore,
    prefix: &Path,
) -> Result<Vec<String>, object_store::Error> {
    match store.list_with_delimiter(Some(prefix)).await {
        Ok(listed) => Ok(listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect()),
        Err(object_store::Error::NotFound { .. }) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// The local folder or file `path` names: a plain path, or a `file://` URL without its
/// scheme; `None` for an object-store URL (`s3://`, `gs://`, `az://`...).
pub fn local_path(path: &str) -> Option<&str> {
    match path.strip_prefix("file://") {
        Some(local) => Some(local),
        None => (!path.contains("://")).then_some(path),
    }
}

/// Opens `path` (a folder or a URL). Storage options are passed to object_store's builders
/// (`aws_endpoint`, `aws_access_key_id`, `azure_storage_account_name`, ...); environment
/// variables (`AWS_*`, `AZURE_*`, `GOOGLE_*`) fill what they do not give.
pub fn open_location(
    path: &str,
    storage_options: &BTreeMap<String, Secret>,
) -> Result<OutputLocation, OutputError> {
    let err = |reason: String| OutputError::Location {
        path: path.to_string(),
        reason,
    };
    if let Some(local) = local_path(path) {
        std::fs::create_dir_all(local).map_err(|e| {
            err(format!(
                "cannot create the folder ({e}); check the path and permissions"
            ))
        })?;
        let abs = std::fs::canonicalize(local).map_err(|e| err(e.to_string()))?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(&abs)
            .map_err(|e| err(e.to_string()))?;
        return Ok(OutputLocation {
            store: Arc::new(store),
            prefix: Path::default(),
            display: abs.display().to_string(),
            local_root: Some(abs),
        });
    }
    let url = url::Url::parse(path).map_err(|e| err(format!("not a URL ({e})")))?;
    let options = store_options(storage_options);
    let (store, prefix) = object_store::parse_url_opts(&url, options).map_err(|e| {
        err(format!(
            "cannot open it ({}); supported: a local folder, file://, s3://, gs://, az://; credentials go in output.storage_options or the environment",
            redact(&e.to_string(), storage_options)
        ))
    })?;
    Ok(OutputLocation {
        store: Arc::from(store),
        prefix,
        display: path.to_string(),
        local_root: None,
    })
}

/// Removes secret values from a message coming from a library.
pub(crate) fn redact(message: &str, secrets: &BTreeMap<String, Secret>) -> String {
    let mut m = message.to_string();
    for s in secrets.values() {
        if s.expose().len() >= 4 {
            m = m.replace(s.expose(), "***");
        }
    }
    m
}

/// object_store options: `AWS_*`, `AZURE_*` and `GOOGLE_*` from the environment, overridden by
/// the config's `storage_options`. Shared by outputs and `sfetl write --input`.
pub(crate) fn store_options(storage_options: &BTreeMap<String, Secret>) -> Vec<(String, String)> {
    let mut options: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| {
            let k = k.to_ascii_uppercase();
            k.starts_with("AWS_") || k.starts_with("AZURE_") || k.starts_with("GOOGLE_")
        })
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    options.extend(
        storage_options
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().to_string())),
    );
    options
}

/// The footer of the Parquet file at `location` (`size` bytes long), read with two ranged
/// requests (its length, then the footer) rather than the whole file; the error says what is
/// wrong with it.
pub(crate) async fn parquet_footer(
    store: &dyn ObjectStore,
    location: &Path,
    size: u64,
) -> Result<parquet::file::metadata::ParquetMetaData, String> {
    use object_store::ObjectStoreExt;
    // Its length sits in the 4 bytes before the closing `PAR1`.
    if size < 12 {
        return Err("too small to be a Parquet file".into());
    }
    let tail = store
        .get_range(location, size - 8..size)
        .await
        .map_err(|e| e.to_string())?;
    let len = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if &tail[4..] != b"PAR1" || len + 8 > size {
        return Err("not a Parquet file (bad footer)".into());
    }
    let footer = store
        .get_range(location, size - 8 - len..size - 8)
        .await
        .map_err(|e| e.to_string())?;
    parquet::file::metadata::ParquetMetaDataReader::decode_metadata(&footer)
        .map_err(|e| e.to_string())
}
