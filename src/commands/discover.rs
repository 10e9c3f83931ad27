//! `sfetl discover`: the org's objects as a CATALOG message, preceded by a LOG WARN for each
//! object left out because its describe was refused.

use crate::config::{Config, ConfigError, Problem};
use crate::error::Error;
use crate::output::stdout::Out;
use crate::protocol::{AirbyteMessage, AirbyteStream};
use crate::source::discover::discover;

use super::catalog::describe_refusal;
use crate::output::stdout::StdoutTask;

pub(super) async fn run(config_path: &std::path::Path) -> Result<(), Error> {
    let config = Config::from_file(config_path)?;
    let stdout = StdoutTask::spawn();
    let client = super::connect(&config, config_path, &stdout).await?;
    let (mut catalog, skipped) = discover(&client, &config).await?;
    let mut warnings = Vec::new();
    if let Some(plan) = crate::source::mapped::load_plan_for_discover(&client, &config).await? {
        let mapped: Vec<AirbyteStream> = plan.streams.iter().map(|s| s.airbyte_stream()).collect();
        clashes(&catalog.streams, &mapped)?;
        catalog.streams.extend(mapped);
        warnings.extend(plan.warnings.iter().map(|(_, w)| w.clone()));
    }
    for text in warnings {
        stdout.warn(text).await;
    }
    for (name, e) in skipped {
        let why =
            describe_refusal(&name, &e).unwrap_or_else(|| format!("its describe failed: {e}"));
        stdout
            .warn(format!("{name} left out of the catalog: {why}"))
            .await;
    }
    let _ = stdout
        .tx
        .send(Out::Message(Box::new(AirbyteMessage::catalog(catalog))))
        .await;
    stdout.finish().await?;
    Ok(())
}

/// A mapped stream named exactly like an offered object would appear twice in the catalog and
/// hide the object from `read`: a config error naming each clash.
fn clashes(objects: &[AirbyteStream], mapped: &[AirbyteStream]) -> Result<(), ConfigError> {
    let problems: Vec<Problem> = mapped
        .iter()
        .filter(|m| objects.iter().any(|o| o.name == m.name))
        .map(|m| Problem {
            field: "mapping".into(),
            message: format!(
                "stream {:?} has the name of an org object, so the catalog would list it twice and `read` could not reach the object; rename the mapped stream",
                m.name
            ),
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::Invalid(problems))
    }
}
