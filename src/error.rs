//! The top-level error: every layer's error, mapped at the edge to the protocol's failure type
//! and to an exit code.

use crate::config::ConfigError;
use crate::protocol::FailureType;
use crate::state::StateError;

/// Anything a command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The state file is wrong.
    #[error(transparent)]
    State(#[from] StateError),
    /// The catalog file is wrong.
    #[error(transparent)]
    Catalog(#[from] crate::protocol::CatalogFileError),
    /// The catalog names streams or fields the org does not offer, or a stream twice.
    #[error(transparent)]
    CatalogInvalid(#[from] crate::catalog::CatalogProblems),
    /// A Salesforce call failed (token, network, API error); the message says what to fix.
    #[error(transparent)]
    Salesforce(#[from] crate::salesforce::SalesforceError),
    /// Reading a stream failed.
    #[error(transparent)]
    Fetch(#[from] crate::source::FetchError),
    /// The output could not be opened or written.
    #[error(transparent)]
    Output(#[from] crate::output::OutputError),
    /// Failures already reported on stdout as TRACE messages; only the exit code remains.
    #[error("failures were reported above")]
    Reported(u8),
    /// A verb that a later version of sfetl provides.
    #[error(
        "`sfetl {0}` is not available yet in this version of sfetl; see README.md for what each command does today"
    )]
    NotAvailable(&'static str),
    /// `sfetl login` failed.
    #[error(transparent)]
    Login(#[from] crate::auth::login::LoginError),
    /// The simulator failed.
    #[error("simulator: {0}")]
    Simulator(#[from] sfetl_sim::SimError),
    /// Writing back to Salesforce failed (`sfetl demo`'s write-back step; `sfetl write` reports
    /// its own failures).
    #[error(transparent)]
    Sink(#[from] crate::sink::SinkError),
    /// A step of `sfetl demo` failed; the message names the step.
    #[error("demo: {0}")]
    Demo(String),
    /// Writing to stdout failed (the orchestrator went away).
    #[error("cannot write to stdout: {0}")]
    Stdout(#[from] std::io::Error),
}

impl Error {
    /// The protocol's failure type: retrying helps only for transient errors, and config errors
    /// need the user.
    pub fn failure_type(&self) -> FailureType {
        match self {
            Error::Config(_) | Error::State(_) | Error::Catalog(_) | Error::CatalogInvalid(_) => {
                FailureType::ConfigError
            }
            Error::Salesforce(e) => e.failure_type(),
            Error::Fetch(e) => e.failure_type(),
            Error::Output(crate::output::OutputError::Location { .. }) => FailureType::ConfigError,
            Error::Output(crate::output::OutputError::Delta(e)) if e.is_config() => {
                FailureType::ConfigError
            }
            Error::Output(_) | Error::Reported(_) => FailureType::SystemError,
            Error::Login(e) => e.failure_type(),
            Error::Sink(e) => e.failure_type(),
            Error::NotAvailable(_) | Error::Simulator(_) | Error::Demo(_) | Error::Stdout(_) => {
                FailureType::SystemError
            }
        }
    }

    /// Process exit code: 2 for config errors, 1 for the rest.
    pub fn exit_code(&self) -> u8 {
        if let Error::Reported(code) = self {
            return *code;
        }
        match self.failure_type() {
            FailureType::ConfigError => 2,
            _ => 1,
        }
    }
}
