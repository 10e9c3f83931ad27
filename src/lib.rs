//! sfetl: a Salesforce connector (source and sink) following the Airbyte protocol.
//!
//! The binary in `main.rs` only parses arguments and maps errors to exit codes; everything it
//! does lives in this library so tests and benchmarks drive the same code.

pub mod auth;
pub mod catalog;
pub mod cli;
pub mod commands;
pub mod config;
pub mod decode;
pub mod error;
pub mod logging;
pub mod mapping;
pub mod output;
pub mod protocol;
pub mod query;
pub mod salesforce;
pub mod secret;
pub mod sim;
pub mod sink;
pub mod source;
pub mod state;
pub mod transport;
