//! The replication calls: `sobjects/{Object}/deleted` and `.../updated` over a date range.
//! They report what a query cannot see any more (hard deletes, an emptied recycle bin).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;

use super::{SalesforceClient, SalesforceError};

/// One deleted record.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletedRecord {
    /// The record's Id.
    pub id: String,
    /// When it was deleted (Salesforce's datetime text).
    pub deleted_date: String,
}

/// The answer of the `deleted` call.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletedRecords {
    /// Records deleted in the range.
    #[serde(default)]
    pub deleted_records: Vec<DeletedRecord>,
    /// The earliest date the org's delete log still covers.
    #[serde(default)]
    pub earliest_date_available: Option<String>,
    /// The last date the answer covers.
    #[serde(default)]
    pub latest_date_covered: Option<String>,
}

/// The answer of the `updated` call.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdatedRecords {
    /// Ids of records changed in the range.
    #[serde(default)]
    pub ids: Vec<String>,
    /// The last date the answer covers.
    #[serde(default)]
    pub latest_date_covered: Option<String>,
}

fn range_path(
    object: &str,
    what: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<String, SalesforceError> {
    let object = super::object_name(object)?;
    let enc = |t: DateTime<Utc>| -> String {
        let text = t.to_rfc3339_opts(SecondsFormat::Millis, true);
        url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
    };
    Ok(format!(
        "sobjects/{object}/{what}/?start={}&end={}",
        enc(start),
        enc(end)
    ))
}

/// Records of `object` deleted in `[start, end]`.
pub async fn deleted(
    client: &SalesforceClient,
    object: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<DeletedRecords, SalesforceError> {
    client
        .get_json(&client.data_url(&range_path(object, "deleted", start, end)?))
        .await
}

/// Ids of records of `object` changed in `[start, end]`.
pub async fn updated(
    client: &SalesforceClient,
    object: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<UpdatedRecords, SalesforceError> {
    client
        .get_json(&client.data_url(&range_path(object, "updated", start, end)?))
        .await
}
