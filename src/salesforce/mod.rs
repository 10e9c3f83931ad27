//! The Salesforce API layer: the authenticated client (refresh on 401, retries with the one
//! backoff policy, API usage, actionable errors) and typed calls for every endpoint sfetl uses:
//! describeGlobal and describe, REST query pages, deleted/updated, sObject Collections, and one
//! Bulk API 2.0 job lifecycle shared by query and ingest. Nothing above this layer builds a
//! Salesforce URL.

pub mod bulk;
pub mod client;
pub mod clock;
pub mod collections;
pub mod describe;
pub mod errors;
pub mod gunzip;
pub mod ids;
pub mod limits;
pub mod org;
pub mod query;
pub mod replication;
pub mod request;

/// The client's retry settings ([`ClientHooks::retry`]) are the transport's one policy.
pub use crate::transport::RetryPolicy;
pub use client::{ClientHooks, SalesforceClient};
pub use errors::SalesforceError;
pub use limits::ApiUsage;
pub use request::{ApiBody, ApiRequest};

/// `name` when it can be an object's API name (letters, digits, underscores, not starting with
/// a digit or underscore), so it can go into a URL path unescaped and reach only that object.
pub fn object_name(name: &str) -> Result<&str, SalesforceError> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(name)
    } else {
        Err(SalesforceError::InvalidObjectName {
            name: name.to_string(),
        })
    }
}
pub use errors::{is_transient_code, is_transient_status};
