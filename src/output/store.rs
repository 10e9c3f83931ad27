//! Output locations: a local folder, `file://`, `s3://`, `gs://`, `az://` (or `memory://` for
//! tests), opened through object_store with `output.storage_options` and the environment.

use std::collections::BTreeMap;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::path::Path;

use super::OutputError;

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
    /// Removes what an interrupted run published that its last STATE does not cover: files of
    /// `stream` in sync folders after `sync_id`, and parts numbered `parts` or more in `sync_id`
    /// itself (`None`: every sync folder of the stream). Returns the removed paths.
    pub async fn remove_uncommitted(
        &self,
        stream: &str,
        committed: Option<(&str, u32)>,
    ) -> Result<Vec<String>, OutputError> {
        use futures::TryStreamExt;
        use object_store::ObjectStoreExt;
        let prefix = self.child(&[stream]);
        let err = |e: object_store::Error| OutputError::Write {
            path: format!("{}/{stream}", self.display),
            reason: e.to_string(),
        };
        let listed: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(err)?;
        let mut removed = Vec::new();
        for meta in listed {
            let parts: Vec<&str> = meta.location.as_ref().rsplitn(3, '/').collect();
            let [file, sync, ..] = parts.as_slice() else {
                continue;
            };
            let Some(index) = file
                .strip_prefix("part-")
                .and_then(|f| f.strip_suffix(".parquet"))
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let uncommitted = match committed {
                None => true,
                Some((s, n)) => *sync > s || (*sync == s && index >= n),
            };
            if uncommitted {
                self.store.delete(&meta.location).await.map_err(err)?;
                removed.push(meta.location.to_string());
            }
        }
        Ok(removed)
    }

    /// Removes the staging files a killed run left under `stream` on local disk (object_store
    /// writes `part-N.parquet#K` and renames it when complete). Remote stores need nothing: an
    /// unfinished multipart upload is never visible. Returns how many were removed.
    pub fn remove_staging(&self, stream: &str) -> std::io::Result<usize> {
        let Some(root) = &self.local_root else {
            return Ok(0);
        };
        let mut removed = 0;
        let dir = root.join(stream);
        if !dir.is_dir() {
            return Ok(0);
        }
        for sync in std::fs::read_dir(&dir)? {
            let sync = sync?.path();
            if !sync.is_dir() {
                continue;
            }
            for f in std::fs::read_dir(&sync)? {
                let f = f?.path();
                if f.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.contains('#'))
                {
                    std::fs::remove_file(&f)?;
                    removed += 1;
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
    let is_url = path.contains("://");
    if !is_url || path.starts_with("file://") {
        let local = path.strip_prefix("file://").unwrap_or(path);
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
