//! Every end-to-end test of sfetl as one test binary: the real `sfetl` binary and library
//! against the in-process simulator over real HTTP. One binary because each one links DataFusion;
//! a module per area, and the helpers they share in `common`.

mod common;

mod adversarial;
mod auth_check;
mod auth_client;
mod auth_docs;
mod auth_login;
mod cli;
mod conformance;
mod delta;
mod demo;
mod drift;
mod freshness;
mod harsh;
mod incremental;
mod mapping;
mod query;
mod read;
mod slices;
mod write;
mod write_hardening;
