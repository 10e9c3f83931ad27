//! Where read batches go: RECORD lines on stdout (`records`), Parquet files on an object store
//! (`parquet`), or an Arrow IPC stream (`arrow`).

mod parquet;
mod records;
mod store;

pub use parquet::{
    CompletedFile, EXTRACTED_AT, ParquetFileWriter, ParquetOptions, SYNC_ID, new_sync_id,
};
pub use records::RecordsRenderer;
pub(crate) use store::store_options;
pub use store::{OutputLocation, open_location};

/// Why output failed.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The output path or URL is not usable.
    #[error("output.path {path:?}: {reason}")]
    Location {
        /// The configured path.
        path: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// Writing to the store failed.
    #[error("writing {path}: {reason}")]
    Write {
        /// The file being written.
        path: String,
        /// The store's or Parquet's message.
        reason: String,
    },
    /// Rendering records failed.
    #[error("rendering records: {0}")]
    Render(String),
}

#[cfg(test)]
mod tests;
