//! What happens when Salesforce rotates the refresh token mid-run: the orchestrator is told with
//! a CONTROL `CONNECTOR_CONFIG` message (the config as given, with the new token), and a
//! credentials file written by `sfetl login` is rewritten in place (mode 0600), because the old
//! token is dead from now on.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::auth::RotationHook;
use crate::config::Config;
use crate::protocol::AirbyteMessage;
use crate::secret::Secret;

/// Top-level key `sfetl login` writes into its config files; only such files are rewritten.
pub const WRITTEN_BY_KEY: &str = "written_by";

/// Value of [`WRITTEN_BY_KEY`].
pub const WRITTEN_BY_LOGIN: &str = "sfetl login";

/// A hook that hands each CONTROL message to `emit` (the command's one stdout emitter, so the
/// line never interleaves with buffered records) and rewrites `config_path` when it came from
/// `sfetl login`.
pub fn rotation_hook(
    config: &Config,
    config_path: Option<&Path>,
    emit: impl Fn(AirbyteMessage) + Send + Sync + 'static,
) -> RotationHook {
    let raw = Arc::new(Mutex::new(config.raw.0.clone()));
    let file: Option<PathBuf> = config_path
        .filter(|_| {
            config.raw.0.get(WRITTEN_BY_KEY).and_then(Value::as_str) == Some(WRITTEN_BY_LOGIN)
        })
        .map(Path::to_path_buf);
    Arc::new(move |token: &Secret| {
        let updated = {
            let mut raw = raw.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(obj) = raw.as_object_mut() {
                obj.insert(
                    "refresh_token".to_string(),
                    Value::String(token.expose().to_string()),
                );
            }
            raw.clone()
        };
        if let Some(path) = &file
            && let Err(e) = write_private_json(path, &updated)
        {
            tracing::error!(
                "Salesforce rotated the refresh token but {} could not be rewritten ({e}); the CONTROL message on stdout carries the new config",
                path.display()
            );
        }
        emit(AirbyteMessage::connector_config(updated));
    })
}

/// Writes JSON to `path` with mode 0600, atomically (a temporary file in the same folder, then a
/// rename), so a crash never leaves a half-written credentials file.
pub fn write_private_json(path: &Path, value: &Value) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("config"),
        std::process::id()
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    {
        let mut f = options.open(&tmp)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        let mut text = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
        text.push(b'\n');
        std::io::Write::write_all(&mut f, &text)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}
