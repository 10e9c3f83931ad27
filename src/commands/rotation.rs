//! What happens when Salesforce rotates the refresh token mid-run: the old token is dead from
//! now on, so the orchestrator is told with a CONTROL `CONNECTOR_CONFIG` message (the config as
//! given, with the new token), and the config file sfetl was given is rewritten with the new
//! token (atomically, mode 0600, every other byte unchanged), because outside Airbyte nothing
//! reads the CONTROL message and the next run would fail. `rewrite_config_file: false` turns
//! the rewrite off for orchestrators that persist CONTROL themselves.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::auth::RotationHook;
use crate::config::Config;
use crate::protocol::AirbyteMessage;
use crate::secret::Secret;

/// Top-level key `sfetl login` writes into its config files, so they say where they came from.
pub const WRITTEN_BY_KEY: &str = "written_by";

/// Value of [`WRITTEN_BY_KEY`].
pub const WRITTEN_BY_LOGIN: &str = "sfetl login";

/// The config key holding the refresh token.
const REFRESH_TOKEN_KEY: &str = "refresh_token";

/// A hook that hands each CONTROL message to `emit` (the command's one stdout emitter, so the
/// line never interleaves with buffered records) and rewrites `config_path` with the new token
/// unless the config says `rewrite_config_file: false`.
pub fn rotation_hook(
    config: &Config,
    config_path: Option<&Path>,
    emit: impl Fn(AirbyteMessage) + Send + Sync + 'static,
) -> RotationHook {
    let raw = Arc::new(Mutex::new(config.raw.0.clone()));
    let file: Option<PathBuf> = config_path
        .filter(|_| config.rewrite_config_file)
        .map(Path::to_path_buf);
    Arc::new(move |token: &Secret| {
        let updated = {
            let mut raw = raw.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(obj) = raw.as_object_mut() {
                obj.insert(
                    REFRESH_TOKEN_KEY.to_string(),
                    Value::String(token.expose().to_string()),
                );
            }
            raw.clone()
        };
        if let Some(path) = &file {
            match rewrite_refresh_token(path, token) {
                Ok(()) => tracing::info!(
                    "Salesforce rotated the refresh token; {} now holds the new one (set rewrite_config_file to false if the orchestrator saves the CONTROL message instead)",
                    path.display()
                ),
                Err(e) => tracing::error!(
                    "Salesforce rotated the refresh token but {} could not be rewritten ({e}); the old token no longer works: copy the config from the CONTROL message on stdout, or run `sfetl login` again",
                    path.display()
                ),
            }
        }
        emit(AirbyteMessage::connector_config(updated));
    })
}

/// Puts `token` into the config file at `path` as its `refresh_token`, changing nothing else:
/// the old token's JSON string is replaced in the text when it occurs exactly once (so key
/// order, spacing, a byte-order mark and unknown keys stay as they were); otherwise the file
/// is re-serialised with its keys in their order. Written atomically with mode 0600.
pub fn rewrite_refresh_token(path: &Path, token: &Secret) -> std::io::Result<()> {
    // Write through a symbolic link to the file it names, rather than replacing the link.
    let path = std::fs::canonicalize(path)?;
    let bytes = std::fs::read(&path)?;
    let text = String::from_utf8(bytes).map_err(std::io::Error::other)?;
    let (bom, body) = match text.strip_prefix('\u{feff}') {
        Some(rest) => ("\u{feff}", rest),
        None => ("", text.as_str()),
    };
    let mut expected: Value = serde_json::from_str(body).map_err(std::io::Error::other)?;
    let Some(obj) = expected.as_object_mut() else {
        return Err(std::io::Error::other(
            "the config file is not a JSON object",
        ));
    };
    let old = obj.insert(
        REFRESH_TOKEN_KEY.to_string(),
        Value::String(token.expose().to_string()),
    );
    let new_literal = serde_json::to_string(token.expose()).map_err(std::io::Error::other)?;
    let in_place = old
        .as_ref()
        .and_then(|v| serde_json::to_string(v).ok())
        .filter(|old_literal| body.matches(old_literal.as_str()).count() == 1)
        .map(|old_literal| body.replacen(&old_literal, &new_literal, 1))
        .filter(|candidate| {
            serde_json::from_str::<Value>(candidate).ok().as_ref() == Some(&expected)
        });
    let body = match in_place {
        Some(b) => b,
        None => {
            let mut b = serde_json::to_string_pretty(&expected).map_err(std::io::Error::other)?;
            b.push('\n');
            b
        }
    };
    write_private_bytes(&path, format!("{bom}{body}").as_bytes())
}

/// Writes JSON to `path` with mode 0600, atomically (a temporary file in the same folder, then a
/// rename), so a crash never leaves a half-written credentials file.
pub fn write_private_json(path: &Path, value: &Value) -> std::io::Result<()> {
    let mut text = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    text.push(b'\n');
    write_private_bytes(path, &text)
}

/// Writes `bytes` to `path` with mode 0600 through a temporary file in the same folder and a
/// rename: readers see the old file or the new one, never a mix, and never a readable copy.
fn write_private_bytes(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
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
    let written = (|| {
        let mut f = options.open(&tmp)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        std::io::Write::write_all(&mut f, bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_token_changes_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let original = "\u{feff}{\n  \"login_url\": \"http://127.0.0.1:1\",\n    \"refresh_token\":\"old-token\" ,\n  \"client_id\": \"abc\", \"x\": [1,2]\n}";
        std::fs::write(&path, original).unwrap();
        rewrite_refresh_token(&path, &Secret::new("new/\"token".to_string())).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, original.replace("\"old-token\"", "\"new/\\\"token\""));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // The old token's text also elsewhere: the file is re-serialised, keys in order.
        std::fs::write(
            &path,
            "{\"b\": \"t1\", \"refresh_token\": \"t1\", \"a\": 1}",
        )
        .unwrap();
        rewrite_refresh_token(&path, &Secret::new("t2".to_string())).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\n  \"b\": \"t1\",\n  \"refresh_token\": \"t2\",\n  \"a\": 1\n}\n"
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left");
    }
}
