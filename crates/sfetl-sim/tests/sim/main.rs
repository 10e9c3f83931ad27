//! The simulator over real HTTP, as one test binary that links only the simulator (not the
//! connector): REST, Bulk API 2.0 and the OAuth server.

mod aggregate;
mod bulk;
mod freshness;
mod harsh;
mod oauth;
mod org;
mod rest;
mod schema;

/// The simulator crate's root, read when the test runs (cargo sets it) rather than baked in when
/// it was compiled, so a build cache reused from another checkout still finds this checkout's
/// fixtures.
fn manifest_dir() -> String {
    std::env::var("CARGO_MANIFEST_DIR").expect("run under cargo test")
}
