//! `discover`: describeGlobal, then each object's describe (concurrently, bounded), turned into
//! catalog streams. Objects that cannot be queried, or that fail the config's `streams_criteria`,
//! are left out.

use super::FetchError;
use crate::catalog::{airbyte_stream, is_syncable};
use crate::config::Config;
use crate::protocol::AirbyteCatalog;
use crate::salesforce::{SalesforceClient, describe};

/// The names of the objects `discover` offers, in describeGlobal order.
pub async fn stream_names(
    client: &SalesforceClient,
    config: &Config,
) -> Result<Vec<String>, FetchError> {
    Ok(describe::describe_global(client)
        .await?
        .sobjects
        .into_iter()
        .filter(|o| is_syncable(o.queryable))
        .filter(|o| config.streams_criteria.iter().all(|c| c.matches(&o.name)))
        .map(|o| o.name)
        .collect())
}

/// Builds the catalog. A describe that fails is reported and skipped, so one odd object does
/// not hide the rest of the org.
pub async fn discover(
    client: &SalesforceClient,
    config: &Config,
) -> Result<(AirbyteCatalog, Vec<(String, FetchError)>), FetchError> {
    let names = stream_names(client, config).await?;
    let mut streams = Vec::new();
    let mut skipped = Vec::new();
    for (name, r) in describe::describe_every(client, names).await {
        match r {
            Ok(d) => streams.push(airbyte_stream(&d)),
            Err(e) => skipped.push((name, e.into())),
        }
    }
    streams.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((AirbyteCatalog { streams }, skipped))
}
