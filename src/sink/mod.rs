//! `sfetl write`: rows (Airbyte RECORDs or a Parquet/CSV file) applied to Salesforce.
//!
//! The modules are layered; each imports only those below it:
//!
//! | layer | module | job |
//! |---|---|---|
//! | engine | `engine` | [`Sink`]: buffers rows per stream, routes and applies batches, records rejects, echoes STATE |
//! | config | `config`, `describe` | the `writeback` section, typed and checked (alone, then against the org's describes) |
//! | routes | `route` | `when` and field expressions compiled over the incoming schema (`crate::expr`), values formatted (`format`) |
//! | apply | `apply` | per route: refusals up front, API by batch size, re-sends of rows refused as transient |
//! | transports | `collections`, `bulk` | sObject Collections calls; Bulk API 2.0 ingest jobs (every ingest HTTP call in `bulk/job.rs`) |
//! | shared | `payload`, `format`, `error`, `input`, `rejects` | rows and outcomes, value encoding, errors, input decoding, the rejects file |
//!
//! A STATE is echoed only once every row before it is applied or recorded as rejected; rows
//! Salesforce leaves unprocessed stop the run before the next STATE.

pub mod apply;
pub mod bulk;
pub mod collections;
pub mod config;
pub mod describe;
pub mod engine;
pub mod error;
pub mod format;
pub mod input;
pub mod payload;
pub mod rejects;
pub mod route;

pub use describe::check_writeback;
pub use engine::{RouteStats, Sink, SinkOptions};
pub use error::SinkError;

#[cfg(test)]
mod tests;
