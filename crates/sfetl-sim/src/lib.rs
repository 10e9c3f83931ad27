//! The Salesforce simulator: an in-memory org served over real HTTP.
//!
//! Independent of the connector's client code on purpose (it shares no types with
//! `salesforce/`, `auth/` or `protocol/`), so a wire-format mistake on either side fails a test.
//! Tests start it in-process with [`Simulator::start`]; `sfetl simulate` runs it with
//! [`run_cli`]. A crate of its own, depending on nothing of the client, so that independence is
//! checked by the compiler and a client edit does not recompile it. See `crates/sfetl-sim/README.md`
//! for endpoints and the `/__sim/` control API.

// Handlers return ready-made HTTP error responses as their `Err`; boxing them buys nothing.
#![allow(clippy::result_large_err)]

pub mod aggregate;
pub mod bulk;
pub mod cascade;
pub mod changes;
pub mod clock;
pub mod control;
pub mod describe;
pub mod faults;
pub mod generate;
pub mod keys;
pub mod limits;
pub mod lookups;
pub mod oauth;
pub mod quirks;
pub mod render;
pub mod rest;
pub mod schema;
pub mod server;
pub mod soql;
pub mod store;
pub mod wire;
pub mod write;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use server::{Credentials, SimHandle, Simulator};

/// Options of `sfetl simulate`.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Address of the instance listener (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Data volume: N Accounts, 3N Contacts, 2N Leads, N Opportunities.
    pub scale: u64,
    /// Seed of the deterministic generator.
    pub seed: u64,
    /// Optional folder overriding the embedded fixtures.
    pub data_dir: Option<PathBuf>,
    /// Custom objects `Extra_NNNN__c` listed and described but holding no rows: a large
    /// org's metadata, for discover.
    pub extra_objects: u32,
    /// Bulk processing time (off at 0): a query job waits this long in the queue.
    pub bulk_queue_ms: u64,
    /// Bulk processing time (off at 0): matching rows a running query job handles per second.
    pub bulk_rows_per_second: u64,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            scale: 10,
            seed: 42,
            data_dir: None,
            extra_objects: 0,
            bulk_queue_ms: 0,
            bulk_rows_per_second: 0,
        }
    }
}

/// Errors of the simulator itself (binding, fixtures).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A fixture (describe) could not be loaded: check the `--data` folder.
    #[error(transparent)]
    Fixture(#[from] describe::FixtureError),
    /// A listener could not be bound (address in use?) or a temp file written.
    #[error("cannot start the simulator: {0}")]
    Bind(std::io::Error),
}

/// Runs `sfetl simulate`: prints the credentials line on stdout, serves until SIGINT/SIGTERM.
pub async fn run_cli(opts: SimOptions) -> Result<(), SimError> {
    let started = std::time::Instant::now();
    let handle = Simulator::start(opts).await?;
    {
        let store = handle.sim.store.read().unwrap_or_else(|e| e.into_inner());
        let rows: usize = store.tables.iter().map(|t| t.len()).sum();
        eprintln!(
            "sfetl simulate: {rows} rows generated in {:.1} s ({} MB of columns); serving {}",
            started.elapsed().as_secs_f64(),
            store.heap_bytes() / 1_000_000,
            handle.base_url
        );
    }
    println!(
        "{}",
        serde_json::to_string(&handle.credentials).unwrap_or_default()
    );
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    wait_for_signal().await;
    handle.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
