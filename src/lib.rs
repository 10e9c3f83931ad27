//! sfetl: a Salesforce connector (source and sink) following the Airbyte protocol.
//!
//! The binary in `main.rs` only parses arguments and maps errors to exit codes; everything it
//! does lives in this library so tests and benchmarks drive the same code.

#![warn(missing_docs, unreachable_pub)]

pub mod auth;
pub mod bytes;
pub mod catalog;
pub mod cli;
pub mod commands;
pub mod config;
pub mod decode;
pub mod error;
pub mod expr;
pub mod logging;
pub mod mapping;
pub mod output;
pub mod paths;
pub mod protocol;
pub mod query;
pub mod salesforce;
pub mod secret;
pub mod sink;
pub mod source;
pub mod state;
pub mod stop;
pub mod transport;

/// The package root, read when the test runs (cargo sets it) rather than baked in when it was
/// compiled, so a build cache reused from another checkout still finds this checkout's fixtures.
#[cfg(test)]
pub(crate) fn manifest_dir() -> String {
    std::env::var("CARGO_MANIFEST_DIR").expect("run under cargo test")
}
