//! The helpers of every end-to-end test: the simulator and an HTTP client on it (the same
//! `Org` the simulator's own tests use), the sfetl binary, configs, and reading its output.
#![allow(dead_code)]

use std::process::Output;

#[path = "../../../crates/sfetl-sim/tests/sim/org.rs"]
mod org;
pub use org::*;

mod auth_helpers;
pub use auth_helpers::*;

mod read_helpers;
pub use read_helpers::*;

pub mod write_helpers;

/// The package root, read when the test runs (cargo sets it) rather than baked in when it was
/// compiled, so a build cache reused from another checkout still finds this checkout's fixtures.
pub fn manifest_dir() -> String {
    std::env::var("CARGO_MANIFEST_DIR").expect("run under cargo test")
}

/// Path of the binary under test; `SFETL_BIN` overrides it (the target dir may be shared with
/// other checkouts that rebuild `debug/sfetl`).
pub fn bin() -> String {
    std::env::var("SFETL_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_sfetl").into())
}

/// The sfetl binary as an async command: log filters from the environment cleared (stderr is
/// asserted on), killed if the test drops it.
pub fn sfetl() -> tokio::process::Command {
    let mut c = tokio::process::Command::new(bin());
    c.env_remove("RUST_LOG").env_remove("SFETL_LOG");
    c.kill_on_drop(true);
    c
}

/// Runs the binary to completion (the simulator keeps serving on this test's runtime).
pub async fn run(args: &[&str]) -> Output {
    sfetl().args(args).output().await.expect("sfetl runs")
}

/// Runs the binary to completion from a test without a runtime, in the package root so that
/// relative paths such as `fixtures/configs/...` resolve (and are named so in messages).
pub fn run_blocking(args: &[&str]) -> Output {
    std::process::Command::new(bin())
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("SFETL_LOG")
        .current_dir(manifest_dir())
        .output()
        .expect("sfetl runs")
}
