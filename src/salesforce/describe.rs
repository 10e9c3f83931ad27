//! Metadata calls: describeGlobal (`sobjects`) and an object's describe, typed as the catalog
//! reads them. One place for them, so `check`, `discover`, the mapping and the read path ask
//! the same way and fetch describes with the same bounded concurrency, and none is asked of
//! Salesforce twice within a minute (see [`DescribeMemo`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::StreamExt;

use super::{SalesforceClient, SalesforceError};
use crate::catalog::{DescribeGlobal, SObjectDescribe};

/// Describes fetched at once: enough to discover a 1,000-object org quickly without bursting
/// past the org's concurrent-request limit.
pub const DESCRIBE_CONCURRENCY: usize = 8;

/// The describes a client fetched in the last [`DESCRIBE_REUSE`]: a read asks for the same
/// ones three times within its first second (compiling the mapping, checking the catalog,
/// planning each stream), and each describe is an API call against the org's daily quota.
/// Older ones are asked again, so a stream that starts later in a long run still compares its
/// catalog with the org as it is then (schema drift). Failures are not kept.
#[derive(Debug, Default)]
pub struct DescribeMemo {
    global: Mutex<Option<(Instant, DescribeGlobal)>>,
    objects: Mutex<HashMap<String, (Instant, SObjectDescribe)>>,
}

/// How long a fetched describe is reused: the seconds a command's steps take before its
/// streams start, not the hours a long read may run.
pub const DESCRIBE_REUSE: Duration = Duration::from_secs(60);

/// A memo entry still young enough at `now` to reuse.
fn fresh<T: Clone>(entry: Option<&(Instant, T)>, now: Instant) -> Option<T> {
    entry
        .filter(|(at, _)| now.saturating_duration_since(*at) < DESCRIBE_REUSE)
        .map(|(_, v)| v.clone())
}

/// describeGlobal: every object the user can see, with its capabilities.
pub async fn describe_global(client: &SalesforceClient) -> Result<DescribeGlobal, SalesforceError> {
    let memo = &client.describe_memo().global;
    let kept = fresh(
        memo.lock().unwrap_or_else(|e| e.into_inner()).as_ref(),
        Instant::now(),
    );
    if let Some(global) = kept {
        return Ok(global);
    }
    let global: DescribeGlobal = client.get_json(&client.data_url("sobjects")).await?;
    *memo.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), global.clone()));
    Ok(global)
}

/// One object's describe (fields, types, capabilities).
pub async fn describe(
    client: &SalesforceClient,
    object: &str,
) -> Result<SObjectDescribe, SalesforceError> {
    describe_kept(client, object, true).await
}

/// [`describe`]; a describe fetched is kept in the memo when `keep`.
async fn describe_kept(
    client: &SalesforceClient,
    object: &str,
    keep: bool,
) -> Result<SObjectDescribe, SalesforceError> {
    let object = super::object_name(object)?;
    let memo = &client.describe_memo().objects;
    let kept = fresh(
        memo.lock().unwrap_or_else(|e| e.into_inner()).get(object),
        Instant::now(),
    );
    if let Some(d) = kept {
        return Ok(d);
    }
    let d: SObjectDescribe = client
        .get_json(&client.data_url(&format!("sobjects/{object}/describe")))
        .await?;
    if keep {
        memo.lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(object.to_string(), (Instant::now(), d.clone()));
    }
    Ok(d)
}

/// The describes of `objects`, [`DESCRIBE_CONCURRENCY`] at a time, each with its own outcome
/// and in the order asked.
pub async fn describe_many(
    client: &SalesforceClient,
    objects: Vec<String>,
) -> Vec<(String, Result<SObjectDescribe, SalesforceError>)> {
    many(client, objects, true).await
}

/// [`describe_many`] for every object of an org (`discover`): what the memo holds is used,
/// but the rest is not kept, so a 1,000-object org's describes are held once, not twice.
pub async fn describe_every(
    client: &SalesforceClient,
    objects: Vec<String>,
) -> Vec<(String, Result<SObjectDescribe, SalesforceError>)> {
    many(client, objects, false).await
}

/// The describes of `objects`, a bounded number at a time, kept when `keep`.
async fn many(
    client: &SalesforceClient,
    objects: Vec<String>,
    keep: bool,
) -> Vec<(String, Result<SObjectDescribe, SalesforceError>)> {
    futures::stream::iter(objects)
        .map(|name| async move {
            let d = describe_kept(client, &name, keep).await;
            (name, d)
        })
        .buffered(DESCRIBE_CONCURRENCY)
        .collect()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_describe_is_reused_for_a_minute_and_asked_again_after() {
        let at = Instant::now();
        let entry = Some(&(at, 7));
        assert_eq!(fresh(entry, at), Some(7));
        let second = Duration::from_secs(1);
        assert_eq!(fresh(entry, at + DESCRIBE_REUSE - second), Some(7));
        assert_eq!(fresh(entry, at + DESCRIBE_REUSE), None);
        assert_eq!(fresh(entry, at + DESCRIBE_REUSE + second), None);
        assert_eq!(fresh::<u8>(None, at), None);
    }
}
