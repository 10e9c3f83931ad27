//! Logging goes to stderr, never stdout (which belongs to the protocol).

/// Installs a stderr `tracing` subscriber; `RUST_LOG` (or `SFETL_LOG`) sets the filter, `warn`
/// by default.
pub fn init() {
    let filter = std::env::var("SFETL_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "warn".to_string());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
