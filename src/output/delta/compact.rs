//! `sfetl compact`: rewrites a table's small files into files of about
//! [`super::commit::FILE_ROWS`] rows (deltalake's optimize, bin-packing by bytes: the target is
//! the table's bytes per row times those rows, at most [`super::commit::TARGET_FILE_BYTES`]),
//! in one commit that changes no row. Files as large as a full refresh writes stay as they
//! are, so compaction keeps the layout a MERGE prunes on.
//!
//! Each incremental checkpoint adds at least one file, so a stream read often gathers many
//! small files; scans and MERGEs get slower with their number. The compaction commit copies
//! the stream's STATE forward into its commit info, so the table's STATE stays at hand in the
//! newest commits.

use std::num::NonZeroU64;

use futures::TryStreamExt;

use super::DeltaError;
use super::commit::file_bytes_for;
use super::layout::{sample_rows, writer_properties};
use super::state::carried_forward;
use super::table::TableTarget;
use crate::config::Compression;
use crate::output::OutputLocation;

/// What compaction did to one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compacted {
    /// The table's name (its folder).
    pub table: String,
    /// Small files rewritten.
    pub files_removed: u64,
    /// Files written in their place.
    pub files_added: u64,
    /// The table version after the commit (unchanged when there was nothing to do).
    pub version: u64,
}

/// The Delta tables directly under `location` (folders holding `_delta_log/`), by name.
pub async fn tables(location: &OutputLocation) -> Result<Vec<String>, DeltaError> {
    let err = |e: object_store::Error| DeltaError::Location {
        path: location.display.clone(),
        reason: format!("cannot list it ({e})"),
    };
    let listed = location
        .store
        .list_with_delimiter(Some(&location.prefix))
        .await
        .map_err(err)?;
    let mut names = Vec::new();
    for folder in listed.common_prefixes {
        let Some(name) = folder.filename().map(str::to_string) else {
            continue;
        };
        let log = folder.clone().join("_delta_log");
        let mut entries = location.store.list(Some(&log));
        if entries.try_next().await.map_err(err)?.is_some() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Compacts the table `name` under `location`.
pub async fn compact(
    location: &OutputLocation,
    name: &str,
    compression: Compression,
) -> Result<Compacted, DeltaError> {
    let target = TableTarget::new(location, name)?;
    let table = target
        .open()
        .await?
        .ok_or_else(|| target.error("there is no Delta table there"))?;
    let before = table.version().unwrap_or_default();
    let props = carried_forward(&target, &table).await?;
    let target_size = target_size(&target, &table).await?;
    let sample = sample_rows(&target, &table).await?;
    let (table, metrics) = table
        .optimize()
        .with_target_size(target_size)
        .with_writer_properties(writer_properties(compression, sample.as_ref()))
        .with_commit_properties(props)
        .await
        .map_err(|e| target.error(e))?;
    Ok(Compacted {
        table: name.to_string(),
        files_removed: metrics.num_files_removed,
        files_added: metrics.num_files_added,
        version: table.version().unwrap_or(before),
    })
}

/// The bytes [`super::commit::FILE_ROWS`] rows take in `table` (from its files' sizes and row
/// counts).
async fn target_size(
    target: &TableTarget,
    table: &deltalake::DeltaTable,
) -> Result<NonZeroU64, DeltaError> {
    let snapshot = table.snapshot().map_err(|e| target.error(e))?;
    let (bytes, rows) = snapshot
        .snapshot()
        .file_views(table.log_store().as_ref(), None)
        .try_fold((0u64, 0u64), |(b, r), f| async move {
            Ok((
                b + f.size().max(0) as u64,
                r + f.num_records().unwrap_or(0) as u64,
            ))
        })
        .await
        .map_err(|e| target.error(e))?;
    Ok(file_bytes_for(bytes, rows))
}
