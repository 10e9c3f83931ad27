//! The source: discover the org's objects and read the selected streams.
//!
//! `discover` turns describes into a catalog; `read` plans each configured stream (fields, API,
//! cursor windows), fetches pages (Bulk 2.0 CSV or REST JSON), decodes them into Arrow batches
//! typed by the describe, hands them to the output, and emits STATE once they are durable.
//! Every Salesforce call goes through the API layer in `crate::salesforce`.

pub mod discover;
pub mod mapped;
pub mod progress;
pub mod read;
pub mod soql;

use crate::decode::DecodeError;
use crate::output::OutputError;
use crate::protocol::FailureType;
use crate::salesforce::SalesforceError;

/// Why fetching a stream failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// A Salesforce API error.
    #[error(transparent)]
    Salesforce(#[from] SalesforceError),
    /// The saved state of a stream cannot be used (a config error: the state file is wrong).
    #[error(transparent)]
    BadState(#[from] read::plan::BadState),
    /// A REST field list cannot be split to fit Salesforce's URL limit.
    #[error("{0}")]
    FieldSplit(String),
    /// Decoding failed.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Writing the output failed.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// The field mapping failed (compile at start, or evaluation of a batch).
    #[error(transparent)]
    Mapping(#[from] crate::mapping::MappingError),
    /// The read was asked to stop (a signal, or the API quota ran out in another stream).
    #[error("stopped before finishing; the next run resumes from the last STATE")]
    Stopped,
}

impl FetchError {
    /// The protocol failure type of this error.
    pub fn failure_type(&self) -> FailureType {
        match self {
            FetchError::Salesforce(e) => e.failure_type(),
            FetchError::Stopped => FailureType::TransientError,
            FetchError::Mapping(_) | FetchError::BadState(_) | FetchError::FieldSplit(_) => {
                FailureType::ConfigError
            }
            FetchError::Output(OutputError::Location { .. }) => FailureType::ConfigError,
            _ => FailureType::SystemError,
        }
    }

    /// A Bulk job that ended `Failed` or `Aborted` on Salesforce's side: worth running again,
    /// then reading the window through REST.
    pub fn is_failed_job(&self) -> bool {
        matches!(
            self,
            FetchError::Salesforce(SalesforceError::BulkJobFailed { .. })
        )
    }

    /// `CODE: message` when Salesforce gave up on a query as too slow or too complex
    /// (`QUERY_TIMEOUT`, `QUERY_TOO_COMPLICATED`), as a REST answer or as the `errorMessage` of
    /// a failed Bulk job ("InvalidBatch : Failed to process query: QUERY_TIMEOUT: ..."): a
    /// smaller window may pass.
    pub fn query_too_big(&self) -> Option<String> {
        const CODES: [&str; 2] = ["QUERY_TIMEOUT", "QUERY_TOO_COMPLICATED"];
        match self {
            FetchError::Salesforce(SalesforceError::Api { code, message, .. })
                if CODES.contains(&code.as_str()) =>
            {
                Some(format!("{code}: {message}"))
            }
            FetchError::Salesforce(SalesforceError::BulkJobFailed { message, .. }) => CODES
                .iter()
                .find_map(|c| message.find(c))
                .map(|at| message[at..].to_string()),
            _ => None,
        }
    }

    /// True for a Bulk refusal of the object that REST can serve instead (unsupported object,
    /// compound or base64 field).
    pub fn bulk_can_fall_back(&self) -> bool {
        match self {
            FetchError::Salesforce(e) => {
                let text = e.to_string();
                [
                    "INVALIDENTITY",
                    "not supported by the Bulk API",
                    "does not support query",
                    "compound data not supported",
                    "FeatureNotEnabled",
                    "API_ERROR",
                ]
                .iter()
                .any(|needle| text.contains(needle))
            }
            _ => false,
        }
    }
}
