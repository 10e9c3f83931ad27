//! Metadata calls: describeGlobal (`sobjects`) and an object's describe, typed as the catalog
//! reads them. One place for them, so `check`, `discover`, the mapping and the read path ask
//! the same way and fetch describes with the same bounded concurrency, and none is asked of
//! Salesforce twice within a minute (see [`DescribeMemo`]).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
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
    global: Kept<(), DescribeGlobal>,
    objects: Kept<String, SObjectDescribe>,
}

/// How long a fetched describe is reused: the seconds a command's steps take before its
/// streams start, not the hours a long read may run.
pub const DESCRIBE_REUSE: Duration = Duration::from_secs(60);

/// Answers fetched by key, each with the instant it came.
#[derive(Debug)]
struct Kept<K, T>(Mutex<HashMap<K, (Instant, T)>>);

impl<K, T> Default for Kept<K, T> {
    fn default() -> Self {
        Kept(Mutex::new(HashMap::new()))
    }
}

impl<K: Eq + Hash, T: Clone> Kept<K, T> {
    /// The answer kept for `key` if still fresh, else `fetch`'s, kept when `keep` and Ok.
    /// `fetch` is a future not yet started (its URL built inside it) and `key` is borrowed:
    /// a memo hit builds and allocates nothing.
    async fn get_or_fetch<Q, E>(
        &self,
        key: &Q,
        keep: bool,
        fetch: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ToOwned<Owned = K> + ?Sized,
    {
        let kept = fresh(self.lock().get(key), Instant::now());
        if let Some(value) = kept {
            return Ok(value);
        }
        let value = fetch.await?;
        if keep {
            self.lock()
                .insert(key.to_owned(), (Instant::now(), value.clone()));
        }
        Ok(value)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (Instant, T)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A memo entry still young enough at `now` to reuse.
fn fresh<T: Clone>(entry: Option<&(Instant, T)>, now: Instant) -> Option<T> {
    entry
        .filter(|(at, _)| now.saturating_duration_since(*at) < DESCRIBE_REUSE)
        .map(|(_, v)| v.clone())
}

/// describeGlobal: every object the user can see, with its capabilities.
pub async fn describe_global(client: &SalesforceClient) -> Result<DescribeGlobal, SalesforceError> {
    let fetch = async { client.get_json(&client.data_url("sobjects")).await };
    let memo = &client.describe_memo().global;
    memo.get_or_fetch(&(), true, fetch).await
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
    let fetch = async {
        let url = client.data_url(&format!("sobjects/{object}/describe"));
        client.get_json(&url).await
    };
    let memo = &client.describe_memo().objects;
    memo.get_or_fetch(object, keep, fetch).await
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
