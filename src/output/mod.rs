//! Where read batches go: RECORD lines on stdout (`records`), Parquet files on an object store
//! (`parquet`), an Arrow IPC stream (`arrow`), or Delta Lake tables (`delta`), each behind the
//! [`StreamWriter`] trait; the
//! stdout writer task all protocol output goes through; and the cleanup that makes a resumed
//! Parquet export exact.

pub(crate) mod choices;
pub mod delta;
mod folders;
mod json;
mod parquet;
mod records;
mod resume;
mod slices;
pub mod stdout;
mod store;
pub mod sync;
mod writer;

pub use folders::check_case_clashes;
pub(crate) use parquet::codec;
pub use parquet::{
    CompletedFile, DELETED_AT, EXTRACTED_AT, ParquetFileWriter, ParquetOptions, SYNC_ID,
    new_sync_id,
};
pub use records::RecordsRenderer;
pub use resume::prepare_resume;
pub use slices::{SliceStart, prepare_slice};
pub use store::{OutputLocation, folder_names, local_path, open_location};
pub(crate) use store::{parquet_footer, store_options};
pub use writer::{Destination, StreamWriter, SyncStart};

/// Suffix of the side table a formula refresh writes beside a stream (`Opportunity__formulas`):
/// `Id` and the refreshed formula fields of every row, each refresh a complete sync. Salesforce
/// object names end in `__c`, `__b`, ... never in this.
pub const FORMULAS_SUFFIX: &str = "__formulas";

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
    /// The consumer of stdout went away (the orchestrator closed the pipe).
    #[error("stdout was closed by the process reading it; nothing more can be delivered")]
    StdoutClosed,
    /// Rendering records failed.
    #[error("rendering records: {0}")]
    Render(String),
    /// A Delta table could not be read or written.
    #[error(transparent)]
    Delta(#[from] delta::DeltaError),
}

#[cfg(test)]
mod records_tests;
#[cfg(test)]
mod tests;
