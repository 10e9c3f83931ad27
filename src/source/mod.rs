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
pub mod restrictions;
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
    /// Reconciling hard deletes against the export failed (reading the export's Ids).
    #[error("comparing the export's Ids with the org's for hard deletes: {0}")]
    Reconcile(String),
    /// Decoding failed.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Writing the output failed.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// The field mapping failed (compile at start, or evaluation of a batch).
    #[error(transparent)]
    Mapping(#[from] crate::mapping::MappingError),
    /// Salesforce's daily cap of Bulk API query jobs is reached, and the REST API cannot take
    /// the rest of the run over without passing the API usage sfetl allows itself.
    #[error(
        "Salesforce's daily cap of Bulk API 2.0 query jobs is reached ({message}), and the REST API cannot take over: the org's API usage is {usage} ({:.1}%), at or past {limit}% ({}). Both limits count the last 24 hours: run again later, or make fewer Bulk jobs per run (a larger bulk_max_records, no or a longer stream_slice_step, fewer streams per run).",
        .usage.percent(),
        if *.configured { "max_api_usage_percent" } else { "sfetl's ceiling when max_api_usage_percent is not set" }
    )]
    BulkCapReached {
        /// Salesforce's `errorCode: message`.
        message: String,
        /// The org's API usage when the cap was met.
        usage: crate::salesforce::ApiUsage,
        /// The usage (percent) REST may not pass.
        limit: f64,
        /// Whether `limit` is the config's `max_api_usage_percent`.
        configured: bool,
    },
    /// The catalog selects fields the org no longer has (deleted, or hidden by field-level
    /// security) under `schema_drift: fail`, or fields whose type changed: run discover again.
    #[error("{0}")]
    SchemaDrift(String),
    /// A slice file (`read --slice`) that does not fit the catalog.
    #[error(transparent)]
    BadSlice(#[from] read::slice::BadSlice),
    /// The read was asked to stop (a signal, or the API quota ran out in another stream).
    #[error("stopped before finishing; the next run resumes from the last STATE")]
    Stopped,
}

impl FetchError {
    /// The protocol failure type of this error.
    pub fn failure_type(&self) -> FailureType {
        match self {
            FetchError::Salesforce(e) => e.failure_type(),
            FetchError::Stopped | FetchError::BulkCapReached { .. } => FailureType::TransientError,
            FetchError::Mapping(_)
            | FetchError::BadState(_)
            | FetchError::BadSlice(_)
            | FetchError::FieldSplit(_)
            | FetchError::SchemaDrift(_) => FailureType::ConfigError,
            FetchError::Output(OutputError::Location { .. }) => FailureType::ConfigError,
            FetchError::Output(OutputError::Delta(e)) if e.is_config() => FailureType::ConfigError,
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

    /// `CODE: message` when Salesforce gave up on a query as too slow, too complex or too big
    /// for the sharing check of a user without "View All Data" (`QUERY_TIMEOUT`,
    /// `QUERY_TOO_COMPLICATED`, `OPERATION_TOO_LARGE`), as a REST answer or as the
    /// `errorMessage` of a failed Bulk job ("InvalidBatch : Failed to process query:
    /// QUERY_TIMEOUT: ..."): a smaller window may pass, as Salesforce advises ("use filters
    /// such as date ranges to break the query up").
    pub fn query_too_big(&self) -> Option<String> {
        const CODES: [&str; 3] = [
            "QUERY_TIMEOUT",
            "QUERY_TOO_COMPLICATED",
            "OPERATION_TOO_LARGE",
        ];
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

    /// `CODE: message` when creating a Bulk query job was refused because the org's daily cap
    /// of Bulk query jobs is reached (400 `LIMIT_EXCEEDED` "Max bulk v2 query jobs (10000) per
    /// 24 hrs has been reached").
    pub fn bulk_cap(&self) -> Option<String> {
        match self {
            FetchError::Salesforce(SalesforceError::Api { code, message, .. })
                if code == "LIMIT_EXCEEDED" && message.to_ascii_lowercase().contains("bulk") =>
            {
                Some(format!("{code}: {message}"))
            }
            _ => None,
        }
    }

    /// The rule of [`restrictions`] for Salesforce's refusal, when it is one: an object that
    /// needs a filter, that Bulk refuses, or that has no `queryMore`.
    pub fn restriction(&self) -> Option<&'static restrictions::Restriction> {
        match self {
            FetchError::Salesforce(e) => restrictions::for_error(&e.to_string()),
            _ => None,
        }
    }
}
