//! What sfetl removes from a Parquet export, and only that (README: "What sfetl will and won't
//! delete"):
//!
//! - staging files of killed runs (`part-NNNNN.parquet#K`, object_store's local staging name)
//!   inside sync folders that hold sfetl's marker, at the start of any read into the output;
//! - when a run resumes from a STATE whose output commit is `(sync S, N parts)`: parts `N` and
//!   up of folder S (published after that STATE), and the files of every other sfetl sync
//!   folder that resumed from that same commit (a later run killed before its STATE reached
//!   the orchestrator). Both are rows this run reads again.
//!
//! Nothing else: not folders without a marker, not other files, not older syncs when a read
//! starts afresh (a new base sync supersedes them for readers instead; see [`super::sync`]).

use object_store::ObjectStoreExt;
use object_store::path::Path;

use super::sync::{MARKER, markers};
use super::{OutputError, OutputLocation};
use crate::state::OutputCommit;

/// Prepares `stream`'s folder for a run resumed from `saved` (the resumed STATE's output
/// commit) and returns what was removed, as sentences for the log.
pub async fn prepare_resume(
    location: &OutputLocation,
    stream: &str,
    saved: Option<&OutputCommit>,
) -> Result<Vec<String>, OutputError> {
    let Some(saved) = saved else {
        return Ok(Vec::new());
    };
    let mut notes = Vec::new();
    for m in markers(location, stream, Some(&saved.sync_id)).await? {
        let superseded = if m.sync_id == saved.sync_id {
            Some(saved.parts)
        } else if m.resumed_from.as_ref() == Some(saved) {
            Some(0)
        } else {
            None
        };
        let Some(from) = superseded else { continue };
        let removed = remove_parts(location, stream, &m.sync_id, from).await?;
        if !removed.is_empty() {
            notes.push(format!(
                "{stream}: removed {} file(s) of sync {} not covered by the STATE this run resumes from (sync {}, {} part(s)); their rows are read again: {}",
                removed.len(),
                m.sync_id,
                saved.sync_id,
                saved.parts,
                removed.join(", ")
            ));
        }
        if from == 0 && m.sync_id != saved.sync_id {
            let marker = location.child(&[stream, &m.sync_id, MARKER]);
            delete(location, &marker).await?;
        }
    }
    Ok(notes)
}

/// Removes `part-NNNNN.parquet` files numbered `from` and up in one sync folder.
async fn remove_parts(
    location: &OutputLocation,
    stream: &str,
    sync_id: &str,
    from: u32,
) -> Result<Vec<String>, OutputError> {
    use futures::TryStreamExt;
    let folder = location.child(&[stream, sync_id]);
    let listed: Vec<object_store::ObjectMeta> = location
        .store
        .list(Some(&folder))
        .try_collect()
        .await
        .map_err(|e| write_err(location, &folder, e))?;
    let mut removed = Vec::new();
    for meta in listed {
        let index = meta.location.filename().and_then(part_index);
        if index.is_some_and(|i| i >= from) {
            delete(location, &meta.location).await?;
            removed.push(meta.location.to_string());
        }
    }
    removed.sort();
    Ok(removed)
}

/// The number of `part-NNNNN.parquet`, `None` for any other name.
pub(super) fn part_index(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("part-")?.strip_suffix(".parquet")?;
    if digits.len() != 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Whether `name` is a staging file object_store left for one of sfetl's files
/// (`part-00003.parquet#2`, `_sfetl_sync.json#1`).
pub(super) fn is_staging(name: &str) -> bool {
    let Some((file, suffix)) = name.split_once('#') else {
        return false;
    };
    !suffix.is_empty()
        && suffix.bytes().all(|b| b.is_ascii_digit())
        && (part_index(file).is_some() || file == MARKER)
}

async fn delete(location: &OutputLocation, path: &Path) -> Result<(), OutputError> {
    location
        .store
        .delete(path)
        .await
        .map_err(|e| write_err(location, path, e))
}

fn write_err(location: &OutputLocation, path: &Path, e: object_store::Error) -> OutputError {
    OutputError::Write {
        path: format!("{}/{}", location.display, path),
        reason: e.to_string(),
    }
}

/// A marker as a run writes it, for tests of the rules above.
#[cfg(test)]
pub(super) fn marker(
    stream: &str,
    sync_id: &str,
    resumed_from: Option<OutputCommit>,
) -> super::sync::SyncMarker {
    use super::sync::SyncMarker;
    SyncMarker {
        stream: stream.into(),
        sync_id: sync_id.into(),
        base: resumed_from.is_none(),
        resumed_from,
        complete: false,
        slice: None,
    }
}
