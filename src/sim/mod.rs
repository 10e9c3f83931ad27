//! The Salesforce simulator: an in-memory org served over real HTTP.
//!
//! Independent of the connector's client code on purpose (it shares no types with
//! `salesforce/`, `auth/` or `protocol/`), so a wire-format mistake on either side fails a test.

pub mod oauth;

use std::net::SocketAddr;
use std::path::PathBuf;

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
}

/// Errors of the simulator itself (binding, fixtures).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The simulator is not built yet.
    #[error("the simulator is not available yet")]
    NotAvailable,
}

/// Runs `sfetl simulate`: prints the credentials line on stdout, serves until SIGINT/SIGTERM.
pub async fn run_cli(_opts: SimOptions) -> Result<(), SimError> {
    Err(SimError::NotAvailable)
}
