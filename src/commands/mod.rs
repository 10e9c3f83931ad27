//! One function per command; `main.rs` calls [`run`] and exits with the code it returns.
//!
//! The edge rule lives here: in the protocol verbs a failure becomes a TRACE ERROR on stdout
//! (and a plain sentence on stderr for people), except in `check`, whose failures are a
//! CONNECTION_STATUS FAILED and exit 0, as the protocol asks.

pub mod catalog;
mod check;
mod compact;
mod demo;
mod discover;
pub mod login;
mod plan;
mod read;
pub mod rotation;
mod spec;
mod write;

use std::io::Write;

use crate::cli::{Cli, Command};
use crate::config::Config;
use crate::error::Error;
use crate::protocol::{AirbyteMessage, Emitter};
use crate::salesforce::{ClientHooks, SalesforceClient};

/// Runs one command and returns the process exit code.
pub async fn run(cli: Cli) -> u8 {
    // `query` is for people and pipes: its errors go to stderr only, never as protocol messages.
    if let Command::Query(args) = &cli.command {
        return crate::query::run_cli(args).await;
    }
    // `plan`'s stdout is its slices, one JSON line each: errors go to stderr only.
    if let Command::Plan(args) = &cli.command {
        return match plan::run(args).await {
            Ok(()) => 0,
            Err(Error::Stdout(e)) if crate::output::stdout::is_closed_pipe(&e) => 0,
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "sfetl: error: {e}");
                e.exit_code()
            }
        };
    }
    let result = match cli.command {
        Command::Spec => spec::run(),
        Command::Check(args) => check::run(&args.config, args.catalog.as_deref()).await,
        Command::Discover(args) => discover::run(&args.config).await,
        Command::Read(args) => read::run(&args).await,
        Command::Write(args) => write::run(&args).await,
        Command::Login(args) => {
            // A human command: its errors are sentences on stderr, not protocol messages.
            return match login::run(&args).await {
                Ok(()) => 0,
                Err(e) => {
                    let e = Error::from(e);
                    let _ = writeln!(std::io::stderr(), "sfetl: error: {e}");
                    e.exit_code()
                }
            };
        }
        Command::Simulate(args) => {
            let opts = sfetl_sim::SimOptions {
                listen: args.listen,
                scale: args.scale,
                seed: args.seed,
                data_dir: args.data,
                extra_objects: args.extra_objects,
                bulk_queue_ms: args.bulk_queue_ms,
                bulk_rows_per_second: args.bulk_rows_per_second,
            };
            sfetl_sim::run_cli(opts).await.map_err(Error::from)
        }
        Command::Demo(args) => demo::run(&args).await,
        Command::Compact(args) => {
            // A human command: a line per table on stdout, errors as sentences on stderr.
            return match compact::run(&args).await {
                Ok(()) => 0,
                Err(e) => {
                    let _ = writeln!(std::io::stderr(), "sfetl: error: {e}");
                    e.exit_code()
                }
            };
        }
        Command::Query(_) | Command::Plan(_) => Ok(()),
    };
    match result {
        Ok(()) => 0,
        // stdout's reader went away (`sfetl spec | head -c 10`): nothing to tell, not a failure.
        Err(Error::Stdout(e)) if crate::output::stdout::is_closed_pipe(&e) => 0,
        Err(e) => report(&e),
    }
}

/// Connects to the org; a rotated refresh token is announced as a CONTROL message carrying the
/// updated config, so the orchestrator persists it.
async fn connect(
    config: &Config,
    config_path: &std::path::Path,
    stdout: &crate::output::stdout::StdoutTask,
) -> Result<SalesforceClient, Error> {
    let control = stdout.control.clone();
    let hook = rotation::rotation_hook(config, Some(config_path), move |m| {
        let _ = control.send(m);
    });
    let hooks = ClientHooks {
        on_refresh_token_rotated: Some(hook),
        ..ClientHooks::default()
    };
    Ok(SalesforceClient::connect(config, hooks).await?)
}

/// Prints a failure as a TRACE ERROR on stdout and a sentence on stderr; returns the exit code.
fn report(e: &Error) -> u8 {
    if let Error::Reported(code) = e {
        return *code;
    }
    let message = e.to_string();
    let mut out = Emitter::stdout();
    // If stdout is gone there is no one to tell but stderr.
    let _ = out.emit(&AirbyteMessage::error(e.failure_type(), message.clone()));
    let _ = writeln!(std::io::stderr(), "sfetl: error: {message}");
    e.exit_code()
}
