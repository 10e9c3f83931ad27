//! Stream folders whose names differ only in case (`Account` beside a mapping's `account`).
//!
//! Each stream writes its own folders under the export (`<stream>`, and `<stream>_history` or
//! `<stream>__formulas`). On a case-insensitive file system (macOS and Windows by default) two
//! such names are one folder, and the files of two streams with different columns would mix
//! there: the export's latest view of either would be wrong. Object stores and Linux keep them
//! apart, but an export copied onto such a disk would mix them then.

use std::collections::BTreeSet;

use super::{OutputError, OutputLocation};

/// The folders a stream may write under the export.
fn folders_of(stream: &str) -> [String; 3] {
    [
        stream.to_string(),
        format!("{stream}_history"),
        format!("{stream}{}", super::FORMULAS_SUFFIX),
    ]
}

/// Checks the folders `streams` write against each other and against the folders already
/// under `location`. Where two names differ only in case: an error when the location is a
/// local folder on a file system that folds case (the files would mix now), else the warning
/// to log saying where they would mix.
pub async fn check_case_clashes(
    location: &OutputLocation,
    streams: &[String],
) -> Result<Option<String>, OutputError> {
    let existing = existing_folders(location).await;
    let mut clashes: BTreeSet<(String, String)> = BTreeSet::new();
    let wanted: Vec<String> = streams.iter().flat_map(|s| folders_of(s)).collect();
    for (i, w) in wanted.iter().enumerate() {
        let others = existing.iter().chain(&wanted[i + 1..]);
        for other in others.filter(|o| *o != w && o.to_lowercase() == w.to_lowercase()) {
            let pair = if w < other {
                (w.clone(), other.clone())
            } else {
                (other.clone(), w.clone())
            };
            clashes.insert(pair);
        }
    }
    if clashes.is_empty() {
        return Ok(None);
    }
    let named: Vec<String> = clashes
        .iter()
        .map(|(a, b)| format!("{a} and {b}"))
        .collect();
    let named = named.join(", ");
    if location.local_root.as_deref().is_some_and(folds_case) {
        return Err(OutputError::Location {
            path: location.display.clone(),
            reason: format!(
                "the folders {named} differ only in case, and this file system does not tell them apart: the files of two streams would mix in one folder. Write one of the streams to another output.path, or give the mapping's stream another name"
            ),
        });
    }
    Ok(Some(format!(
        "output.path {}: the folders {named} differ only in case; they stay apart here, but an export copied to a case-insensitive file system (macOS, Windows) would mix their files in one folder",
        location.display
    )))
}

/// The names of the folders directly under the export; none when it cannot be listed (a
/// store that refuses listing: the writers report what matters).
async fn existing_folders(location: &OutputLocation) -> Vec<String> {
    super::folder_names(location.store.as_ref(), &location.prefix)
        .await
        .unwrap_or_else(|e| {
            tracing::debug!("listing {} for folder names: {e}", location.display);
            Vec::new()
        })
}

/// Whether the file system holding the folder `root` folds case: a probe file written in
/// lower case is found under its upper-case name.
fn folds_case(root: &std::path::Path) -> bool {
    let name = format!(".sfetl-case-probe-{}", std::process::id());
    let probe = root.join(&name);
    if std::fs::write(&probe, b"").is_err() {
        return false;
    }
    let folds = root.join(name.to_uppercase()).exists();
    let _ = std::fs::remove_file(&probe);
    folds
}

#[cfg(test)]
mod tests {
    use super::check_case_clashes;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn names_that_differ_only_in_case_are_named_once_each_pair() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("Account").join("sync")).unwrap();
        let location =
            crate::output::open_location(dir.path().to_str().unwrap(), &Default::default())
                .unwrap();
        let warned = check_case_clashes(&location, &names(&["account", "Lead", "lead_History"]))
            .await
            .unwrap();
        let warned = warned.expect("a warning");
        assert!(
            warned.contains(
                "the folders Account and account, Lead_history and lead_History differ only in case"
            ),
            "{warned}"
        );
        let none = check_case_clashes(&location, &names(&["Account", "Contact"]))
            .await
            .unwrap();
        assert_eq!(none, None);
    }
}
