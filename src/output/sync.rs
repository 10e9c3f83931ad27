//! The marker sfetl writes in every sync folder it creates, `<stream>/<sync_id>/_sfetl_sync.json`.
//!
//! It is how sfetl knows which folders are its own (it deletes files only there, and only
//! those a STATE proves superseded), and how readers of the export know which syncs make up
//! the current data: a *base* sync (a full refresh, or an incremental read started without
//! state) that completed supersedes every older sync of its stream, so `sfetl query`'s latest
//! view starts there and nothing ever has to be deleted to start afresh.

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
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

/// How many markers are fetched at once (a resuming read's, and each chunk a query reads
/// newest first): an export synced hourly for a year holds 8,760 sync folders per stream, and
/// object stores answer each GET in tens of milliseconds.
pub const MARKER_READS: usize = 32;

/// The markers at `paths` (`<stream>/<sync-id>/_sfetl_sync.json`), fetched [`MARKER_READS`]
/// at a time, one answer per path in order: the marker when it is `stream`'s and parses, None
/// when there is none (or it is another's, or unreadable as a marker), or the store's error.
pub async fn fetch_markers(
    store: &dyn ObjectStore,
    paths: &[Path],
    stream: &str,
) -> Vec<Result<Option<SyncMarker>, object_store::Error>> {
    use futures::StreamExt;
    let reads = paths.iter().map(|path| async move {
        let bytes = match store.get(path).await {
            Ok(got) => got.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(serde_json::from_slice::<SyncMarker>(&bytes)
            .ok()
            .filter(|m| m.stream == stream))
    });
    futures::stream::iter(reads)
        .buffered(MARKER_READS)
        .collect()
        .await
}

/// The markers of `stream`'s sync folders, oldest sync first. A folder without a marker (not
/// written by sfetl, or by an sfetl before markers) is not listed. With `since`, only the
/// folders named from the day before `since`'s day on (sync ids begin with their UTC start
/// time, `20250101T...`) and those whose names do not begin with a date: a run resuming from
/// sync S needs only S and the syncs that resumed from it, all started after it (the day's
/// margin covers clocks that disagree between the machines an orchestrator runs reads on), not
/// the thousands before.
pub async fn markers(
    location: &OutputLocation,
    stream: &str,
    since: Option<&str>,
) -> Result<Vec<SyncMarker>, OutputError> {
    let err = |e: object_store::Error| OutputError::Write {
        path: format!("{}/{stream}", location.display),
        reason: e.to_string(),
    };
    let folders = super::folder_names(location.store.as_ref(), &location.child(&[stream]))
        .await
        .map_err(err)?;
    let bound = since.and_then(day_before);
    let paths: Vec<Path> = folders
        .iter()
        .filter(|f| match (&bound, dated(f)) {
            (Some(bound), Some(day)) => day >= bound.as_str(),
            _ => true,
        })
        .map(|sync_id| location.child(&[stream, sync_id, MARKER]))
        .collect();
    let fetched = fetch_markers(location.store.as_ref(), &paths, stream).await;
    let mut out: Vec<SyncMarker> = fetched
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?
        .into_iter()
        .flatten()
        .collect();
    out.sort_by(|a, b| a.sync_id.cmp(&b.sync_id));
    Ok(out)
}

/// The day (`YYYYMMDD`) a folder name begins with, if it begins with one.
fn dated(folder: &str) -> Option<&str> {
    let day = folder.get(..8)?;
    day.bytes().all(|b| b.is_ascii_digit()).then_some(day)
}

/// The day before the day sync id `since` begins with, as `YYYYMMDD`.
fn day_before(since: &str) -> Option<String> {
    let day = chrono::NaiveDate::parse_from_str(dated(since)?, "%Y%m%d").ok()?;
    Some(day.pred_opt()?.format("%Y%m%d").to_string())
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
