//! A slice's folder in a Parquet export (`read --slice`): each run of a slice writes its own
//! sync folder whose marker names the slice, and completes it last. Before reading, a run looks
//! for its slice among the stream's markers: a complete one means the slice is committed (the
//! run does nothing, so a re-run never duplicates rows); unfinished ones are attempts of killed
//! runs, removed whole (their files, staging files and marker) before the slice is read again.
//! Only folders whose marker names this very slice are touched, so any number of other slices
//! may be writing at the same time.

use futures::TryStreamExt;
use object_store::ObjectStoreExt;

use super::sync::markers;
use super::{OutputError, OutputLocation};

/// Where a slice stands in an export before it is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SliceStart {
    /// Already committed, in this sync folder: nothing to read.
    Committed(String),
    /// To be read; the unfinished attempts listed (sync ids) were removed.
    Fresh(Vec<String>),
}

/// Finds slice `id` of `stream` in the export and clears its unfinished attempts.
pub async fn prepare_slice(
    location: &OutputLocation,
    stream: &str,
    id: &str,
) -> Result<SliceStart, OutputError> {
    let ours: Vec<_> = markers(location, stream, None)
        .await?
        .into_iter()
        .filter(|m| m.slice.as_ref().is_some_and(|s| s.id == id))
        .collect();
    if let Some(done) = ours.iter().find(|m| m.complete) {
        return Ok(SliceStart::Committed(done.sync_id.clone()));
    }
    let mut removed = Vec::new();
    for m in ours {
        remove_folder(location, stream, &m.sync_id).await?;
        removed.push(m.sync_id);
    }
    Ok(SliceStart::Fresh(removed))
}

/// Removes every file of one sync folder, the marker last (so an interrupted removal is
/// found and finished by the next run), and on local disk the staging files too.
async fn remove_folder(
    location: &OutputLocation,
    stream: &str,
    sync_id: &str,
) -> Result<(), OutputError> {
    let folder = location.child(&[stream, sync_id]);
    let err = |path: String, e: &dyn std::fmt::Display| OutputError::Write {
        path: format!("{}/{path}", location.display),
        reason: e.to_string(),
    };
    let listed: Vec<object_store::ObjectMeta> = location
        .store
        .list(Some(&folder))
        .try_collect()
        .await
        .map_err(|e| err(folder.to_string(), &e))?;
    let (markers, files): (Vec<_>, Vec<_>) = listed
        .into_iter()
        .partition(|m| m.location.filename() == Some(super::sync::MARKER));
    if let Some(root) = &location.local_root {
        let dir = root.join(stream).join(sync_id);
        for f in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = f.file_name();
            if super::resume::is_staging(name.to_str().unwrap_or_default()) {
                std::fs::remove_file(f.path())
                    .map_err(|e| err(f.path().display().to_string(), &e))?;
            }
        }
    }
    for meta in files.into_iter().chain(markers) {
        location
            .store
            .delete(&meta.location)
            .await
            .map_err(|e| err(meta.location.to_string(), &e))?;
    }
    Ok(())
}
