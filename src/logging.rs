//! Logging goes to stderr, never stdout (which belongs to the protocol).

use std::io::IsTerminal;

/// Installs a stderr `tracing` subscriber; `RUST_LOG` (or `SFETL_LOG`) sets the filter, `warn`
/// by default, with deltalake's own diagnostics off (it logs an ERROR when asked whether a table
/// that does not exist yet exists; its real failures reach sfetl as errors and are reported). Colours only when stderr is a terminal and `NO_COLOR` is unset: in a file or a
/// pipe (an orchestrator's log) escape codes would be noise.
pub fn init() {
    let filter = std::env::var("SFETL_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| {
            "warn,deltalake_core=off,buoyant_kernel=off,buoyant_kernel_engine=off".to_string()
        });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(use_colour())
        .with_target(false)
        .try_init();
}

/// Whether log lines may carry ANSI colour codes.
fn use_colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
