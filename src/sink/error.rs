//! [`SinkError`]: why `sfetl write` stopped, and which protocol failure type that is. Every
//! sink module reports through it, so it depends on no other sink module.

use crate::protocol::FailureType;
use crate::salesforce::SalesforceError;

/// Why `sfetl write` stopped.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The `writeback` config is wrong (every problem listed).
    #[error("the writeback config has {} problem(s):\n  - {}", .0.len(), .0.join("\n  - "))]
    Config(Vec<String>),
    /// A route cannot be planned for the incoming columns.
    #[error("{at}: {reason}")]
    Route {
        /// Where in the config.
        at: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// The input is not what the protocol or the file format says.
    #[error("{}{message}", .line.map(|l| format!("input line {l}: ")).unwrap_or_default())]
    Input {
        /// 1-based input line, when known.
        line: Option<u64>,
        /// What is wrong.
        message: String,
    },
    /// A Salesforce call failed as a whole (after retries).
    #[error("{during}: {source}")]
    Salesforce {
        /// What sfetl was doing.
        during: String,
        /// The error.
        source: SalesforceError,
    },
    /// Salesforce left rows unprocessed (a Bulk ingest job that ended `Failed` twice): they
    /// are in the rejects file, and the run stops so that no STATE covers them.
    #[error(
        "{rows} row(s) of {route} were not processed by Salesforce: {reason}. The job was run again once and they were still left unprocessed; they are in the rejects file with code UNPROCESSED, and no STATE after them was echoed: run the write again from the last STATE"
    )]
    Unprocessed {
        /// The route label.
        route: String,
        /// How many rows.
        rows: u64,
        /// Salesforce's reason (the job's `errorMessage`).
        reason: String,
    },
    /// Writing the rejects file failed.
    #[error("rejects file: {0}")]
    Output(crate::output::OutputError),
    /// An answer or internal step was not as expected.
    #[error("{0}")]
    Protocol(String),
}

impl SinkError {
    /// The protocol's failure type.
    pub fn failure_type(&self) -> FailureType {
        match self {
            SinkError::Config(_) | SinkError::Route { .. } | SinkError::Input { .. } => {
                FailureType::ConfigError
            }
            SinkError::Salesforce { source, .. } => source.failure_type(),
            SinkError::Unprocessed { .. } => FailureType::TransientError,
            SinkError::Output(crate::output::OutputError::Location { .. }) => {
                FailureType::ConfigError
            }
            SinkError::Output(_) | SinkError::Protocol(_) => FailureType::SystemError,
        }
    }
}
