//! The helpers of every end-to-end test: the simulator and an HTTP client on it (the same
//! `Org` the simulator's own tests use), the sfetl binary, configs, and reading its output.
#![allow(dead_code)]

use serde_json::Value;
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

/// Asserts a run of sfetl exited 0, showing its stderr when it did not.
pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The sfetl binary as an async command: log filters from the environment cleared (stderr is
/// asserted on), killed if the test drops it.
pub fn sfetl() -> tokio::process::Command {
    let mut c = tokio::process::Command::new(bin());
    c.env_remove("RUST_LOG").env_remove("SFETL_LOG");
    c.kill_on_drop(true);
    c
}

/// Runs `cmd` with stdout piped and kills it with SIGKILL on the `n`-th stdout message `at`
/// matches; returns how many matched (fewer than `n` when it ended first) and the last match.
pub async fn kill_at(
    mut cmd: tokio::process::Command,
    n: usize,
    at: impl Fn(&Value) -> bool,
) -> (usize, Option<Value>) {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let (mut seen, mut last) = (0, None);
    while let Some(line) = lines.next_line().await.unwrap() {
        let m: Value = serde_json::from_str(&line).unwrap();
        if at(&m) {
            seen += 1;
            last = Some(m);
            if seen == n {
                child.start_kill().unwrap();
                break;
            }
        }
    }
    child.wait().await.unwrap();
    (seen, last)
}

/// Lets the org finish the Bulk query jobs a killed read left running, as the time between
/// a crash and its rerun would.
///
/// Salesforce runs a job to its end whether or not its client polls it, so the jobs of a
/// process killed with -9 stop counting against the org's long transactions (10 at once)
/// within seconds. The simulator advances a job only when it is polled, so without this a
/// test that kills a read three times leaves enough jobs running for ever to refuse its
/// rerun with "ConcurrentPerOrgLongTxn Limit exceeded.". Returns how many jobs it finished.
pub async fn org_finishes_running_jobs(org: &Org) -> usize {
    let terminal = |s: &Value| matches!(s.as_str(), Some("JobComplete" | "Failed" | "Aborted"));
    let (status, list) = org.get_json("jobs/query").await;
    assert_eq!(status, 200, "{list}");
    let running: Vec<String> = list["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| !terminal(&j["state"]))
        .map(|j| j["id"].as_str().unwrap().to_string())
        .collect();
    for id in &running {
        // A job takes one state a poll: UploadComplete, InProgress, then an end.
        let mut polls = 0;
        loop {
            let (status, job) = org.get_json(&format!("jobs/query/{id}")).await;
            assert_eq!(status, 200, "{job}");
            if terminal(&job["state"]) {
                break;
            }
            polls += 1;
            assert!(polls < 5, "job {id} does not end: {job}");
        }
    }
    running.len()
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
