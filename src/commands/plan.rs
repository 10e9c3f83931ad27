//! `sfetl plan`: the configured read cut into independent slices, one JSON line each on stdout,
//! for an orchestrator to fan out over workers (`sfetl read --slice FILE` reads one).

use std::io::Write;

use crate::cli::PlanArgs;
use crate::config::Config;
use crate::error::Error;
use crate::protocol::ConfiguredAirbyteCatalog;
use crate::salesforce::{ClientHooks, SalesforceClient};
use crate::source::read::slicing::plan_slices;
use crate::state::{InputState, load_state_file};

pub(super) async fn run(args: &PlanArgs) -> Result<(), Error> {
    let config = Config::from_file(&args.config)?;
    let catalog = ConfiguredAirbyteCatalog::from_file(&args.catalog)?;
    let state = match &args.state {
        Some(path) => load_state_file(path)?,
        None => InputState::default(),
    };
    // A rotated refresh token is still written back to the config file; stdout carries only
    // slices, so there is no CONTROL message.
    let hooks = ClientHooks {
        on_refresh_token_rotated: Some(super::rotation::rotation_hook(
            &config,
            Some(args.config.as_path()),
            |_| {},
        )),
        ..ClientHooks::default()
    };
    let client = SalesforceClient::connect(&config, hooks).await?;
    let mapping = crate::source::mapped::load_plan(&client, &config).await?;
    super::catalog::validate_catalog(
        &client,
        &catalog.streams,
        mapping.as_deref(),
        super::catalog::FieldCheck::MappedOnly,
    )
    .await?;
    let target = args
        .max_rows_per_slice
        .or(config.bulk_max_records)
        .unwrap_or(crate::source::read::ReadOptions::default().max_records)
        .max(1);
    let mut warnings = Vec::new();
    let slices = plan_slices(
        &client,
        &config,
        &catalog.streams,
        &state,
        mapping.as_deref(),
        target,
        &mut warnings,
    )
    .await?;
    for w in &warnings {
        eprintln!("sfetl plan: {w}");
    }
    let mut out = std::io::stdout().lock();
    for s in &slices {
        let line = serde_json::to_string(s).expect("a slice serialises");
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    let rows: u64 = slices.iter().filter_map(|s| s.estimated_rows).sum();
    eprintln!(
        "sfetl plan: {} slice(s) of about {target} rows at most, {rows} rows counted",
        slices.len()
    );
    Ok(())
}
