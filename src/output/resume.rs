//! Before a stream writes Parquet: the cleanup that keeps an export exact when a run resumes
//! from the STATE of one that was killed. Files the killed run published after its last STATE
//! would be a second copy of the windows this run reads again; the STATE says which files are
//! committed, so the others go.

use super::{OutputError, OutputLocation};
use crate::state::OutputCommit;

/// Prepares `stream`'s folder under `location` for this run and returns what was done, as
/// sentences for the log. Staging files of killed runs are always removed; for an incremental
/// read, files not covered by `saved` (the resumed STATE's commit, `None` without state: a
/// fresh start) are removed too.
pub async fn prepare_resume(
    location: &OutputLocation,
    stream: &str,
    incremental: bool,
    saved: Option<&OutputCommit>,
    has_state: bool,
) -> Result<Vec<String>, OutputError> {
    let mut notes = Vec::new();
    let removed = location
        .remove_staging(stream)
        .map_err(|e| OutputError::Write {
            path: format!("{}/{stream}", location.display),
            reason: format!("cannot remove unfinished files of an earlier run: {e}"),
        })?;
    if removed > 0 {
        notes.push(format!(
            "{stream}: removed {removed} unfinished file(s) left by an interrupted run"
        ));
    }
    if !incremental {
        return Ok(notes);
    }
    // A state without an output commit (records output before, or an older sfetl) says
    // nothing about files: leave them.
    let committed = match (has_state, saved) {
        (false, _) => Some(None),
        (true, Some(c)) => Some(Some((c.sync_id.as_str(), c.parts))),
        (true, None) => None,
    };
    if let Some(committed) = committed {
        let removed = location.remove_uncommitted(stream, committed).await?;
        if !removed.is_empty() {
            notes.push(format!(
                "{stream}: removed {} file(s) published after the last STATE of an interrupted run: {}",
                removed.len(),
                removed.join(", ")
            ));
        }
    }
    Ok(notes)
}
