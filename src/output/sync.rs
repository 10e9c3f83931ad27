//! The marker sfetl writes in every sync folder it creates, `<stream>/<sync_id>/_sfetl_sync.json`.
//!
//! It is how sfetl knows which folders are its own (it deletes files only there, and only
//! those a STATE proves superseded), and how readers of the export know which syncs make up
//! the current data: a *base* sync (a full refresh, or an incremental read started without
//! state) that completed supersedes every older sync of its stream, so `sfetl query`'s latest
//! view starts there and nothing ever has to be deleted to start afresh.

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use super::{OutputError, OutputLocation};
use crate::state::OutputCommit;

/// File name of the marker inside a sync folder.
pub const MARKER: &str = "_sfetl_sync.json";

/// What a sync folder holds and how it relates to earlier syncs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncMarker {
    /// The stream.
    pub stream: String,
    /// The sync id (also the folder name).
    pub sync_id: String,
    /// A full picture on its own (full refresh, or incremental without state): once complete,
    /// older syncs are superseded.
    pub base: bool,
    /// The committed output of the STATE this run resumed from, if any.
    #[serde(default)]
    pub resumed_from: Option<OutputCommit>,
    /// The stream finished: every row of the sync is in its files.
    pub complete: bool,
    /// The slice of `sfetl plan` this sync holds (`read --slice`), if it is one: slices of a
    /// stream run at once and in any order, each in its own folder, none a base, except the
    /// one slice of a one-object full refresh, which holds every row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slice: Option<SliceMark>,
}

/// Which slice a sync folder holds: re-running a slice finds its committed folder by `id` and
/// does nothing, or removes the folders of its unfinished attempts before reading again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SliceMark {
    /// The slice's stable id (from `sfetl plan`).
    pub id: String,
    /// Its place among the stream's slices.
    pub sequence: u32,
}

impl SyncMarker {
    fn path(location: &OutputLocation, stream: &str, sync_id: &str) -> Path {
        location.child(&[stream, sync_id, MARKER])
    }

    /// Writes (or rewrites) the marker into its folder.
    pub async fn write(&self, location: &OutputLocation) -> Result<(), OutputError> {
        let path = Self::path(location, &self.stream, &self.sync_id);
        let body = serde_json::to_vec_pretty(self).expect("a marker serialises");
        location
            .store
            .put(&path, PutPayload::from(body))
            .await
            .map_err(|e| OutputError::Write {
                path: format!("{}/{}", location.display, path),
                reason: e.to_string(),
            })?;
        Ok(())
    }
}

/// The markers of every sync folder of `stream`, oldest sync first. A folder without a marker
/// (not written by sfetl, or by an sfetl before markers) is not listed.
pub async fn markers(
    location: &OutputLocation,
    stream: &str,
) -> Result<Vec<SyncMarker>, OutputError> {
    let err = |e: object_store::Error| OutputError::Write {
        path: format!("{}/{stream}", location.display),
        reason: e.to_string(),
    };
    let prefix = location.child(&[stream]);
    let listed: Vec<object_store::ObjectMeta> = location
        .store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(err)?;
    let mut out = Vec::new();
    for meta in listed {
        if meta.location.filename() != Some(MARKER) {
            continue;
        }
        let bytes = location
            .store
            .get(&meta.location)
            .await
            .map_err(err)?
            .bytes()
            .await
            .map_err(err)?;
        if let Ok(m) = serde_json::from_slice::<SyncMarker>(&bytes)
            && m.stream == stream
        {
            out.push(m);
        }
    }
    out.sort_by(|a, b| a.sync_id.cmp(&b.sync_id));
    Ok(out)
}

/// The sync id from which `markers` describe the current data: the newest complete base sync
/// (`None` when there is none, and every sync counts).
pub fn current_from(markers: &[SyncMarker]) -> Option<&str> {
    markers
        .iter()
        .rev()
        .find(|m| m.base && m.complete)
        .map(|m| m.sync_id.as_str())
}
