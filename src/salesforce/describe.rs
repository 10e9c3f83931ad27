//! Metadata calls: describeGlobal (`sobjects`) and an object's describe, typed as the catalog
//! reads them. One place for them, so `check`, `discover`, the mapping and the read path ask
//! the same way and fetch describes with the same bounded concurrency.

use futures::StreamExt;

use super::{SalesforceClient, SalesforceError};
use crate::catalog::{DescribeGlobal, SObjectDescribe};

/// Describes fetched at once: enough to discover a 1,000-object org quickly without bursting
/// past the org's concurrent-request limit.
pub const DESCRIBE_CONCURRENCY: usize = 8;

/// describeGlobal: every object the user can see, with its capabilities.
pub async fn describe_global(client: &SalesforceClient) -> Result<DescribeGlobal, SalesforceError> {
    client.get_json(&client.data_url("sobjects")).await
}

/// One object's describe (fields, types, capabilities).
pub async fn describe(
    client: &SalesforceClient,
    object: &str,
) -> Result<SObjectDescribe, SalesforceError> {
    let object = super::object_name(object)?;
    client
        .get_json(&client.data_url(&format!("sobjects/{object}/describe")))
        .await
}

/// The describes of `objects`, [`DESCRIBE_CONCURRENCY`] at a time, each with its own outcome
/// and in the order asked.
pub async fn describe_many(
    client: &SalesforceClient,
    objects: Vec<String>,
) -> Vec<(String, Result<SObjectDescribe, SalesforceError>)> {
    futures::stream::iter(objects)
        .map(|name| async move {
            let d = describe(client, &name).await;
            (name, d)
        })
        .buffered(DESCRIBE_CONCURRENCY)
        .collect()
        .await
}
