//! `sfetl discover`: the org's objects as a CATALOG message.

use crate::config::Config;
use crate::error::Error;
use crate::output::stdout::Out;
use crate::protocol::{AirbyteMessage, LogLevel};
use crate::source::discover::discover;

use crate::output::stdout::StdoutTask;

pub(super) async fn run(config_path: &std::path::Path) -> Result<(), Error> {
    let config = Config::from_file(config_path)?;
    let stdout = StdoutTask::spawn();
    let client = super::connect(&config, config_path, &stdout).await?;
    let (mut catalog, skipped) = discover(&client, &config).await?;
    if let Some(plan) = crate::source::mapped::load_plan(&client, &config).await? {
        catalog
            .streams
            .extend(plan.streams.iter().map(|s| s.airbyte_stream()));
    }
    for (name, e) in skipped {
        let text = format!("{name} left out of the catalog: its describe failed ({e})");
        tracing::warn!("{text}");
        let log = AirbyteMessage::log(LogLevel::Warn, text);
        let _ = stdout.tx.send(Out::Message(Box::new(log))).await;
    }
    let _ = stdout
        .tx
        .send(Out::Message(Box::new(AirbyteMessage::catalog(catalog))))
        .await;
    stdout.finish().await?;
    Ok(())
}
