//! sObject Collections (`composite/sobjects`): up to 200 records per call, one result per
//! record in order. Inserts are POSTs (not retried: a retry could create duplicates); updates,
//! upserts and deletes are idempotent and retried after a transient failure.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiRequest, SalesforceClient, SalesforceError};

/// Records per call, Salesforce's limit.
pub const MAX_RECORDS: usize = 200;

/// What a save call does to its records.
#[derive(Debug, Clone, Copy)]
pub enum SaveKind<'a> {
    /// Create (POST).
    Insert,
    /// Update by `Id` (PATCH).
    Update,
    /// Insert or update by an External ID field of `object` (PATCH).
    Upsert {
        /// The object written.
        object: &'a str,
        /// Its External ID field.
        external_id: &'a str,
    },
}

/// One record's outcome.
#[derive(Debug, Clone, Deserialize)]
pub struct SaveResult {
    /// The record's Id, when Salesforce gives one.
    #[serde(default)]
    pub id: Option<String>,
    /// Whether the record was written.
    #[serde(default)]
    pub success: bool,
    /// Why not.
    #[serde(default)]
    pub errors: Vec<SaveError>,
}

/// One error of a record.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SaveError {
    /// Salesforce's status code (`UNABLE_TO_LOCK_ROW`, `STRING_TOO_LONG`...).
    #[serde(default)]
    pub status_code: String,
    /// Its message.
    #[serde(default)]
    pub message: String,
    /// The fields at fault.
    #[serde(default)]
    pub fields: Vec<String>,
}

/// Saves `records` (JSON objects with `attributes.type`), `allOrNone: false`; one result per
/// record, in order.
pub async fn save(
    client: &SalesforceClient,
    kind: SaveKind<'_>,
    records: Vec<Value>,
) -> Result<Vec<SaveResult>, SalesforceError> {
    let body = json!({"allOrNone": false, "records": records});
    let url = client.data_url("composite/sobjects");
    let req = match kind {
        SaveKind::Insert => ApiRequest::post_json(url, body),
        SaveKind::Update => ApiRequest::patch_json(url, body).idempotent(true),
        SaveKind::Upsert {
            object,
            external_id,
        } => {
            let object = super::object_name(object)?;
            let external_id = super::object_name(external_id)?;
            let url = client.data_url(&format!("composite/sobjects/{object}/{external_id}"));
            ApiRequest::patch_json(url, body).idempotent(true)
        }
    };
    client.request_json(req).await
}

/// Deletes records by Id (`DELETE composite/sobjects?ids=...`, `allOrNone=false`); one result
/// per Id, in order.
pub async fn delete(
    client: &SalesforceClient,
    ids: &[&str],
) -> Result<Vec<SaveResult>, SalesforceError> {
    let ids: String = url::form_urlencoded::byte_serialize(ids.join(",").as_bytes()).collect();
    let url = format!(
        "{}?ids={ids}&allOrNone=false",
        client.data_url("composite/sobjects")
    );
    client.request_json(ApiRequest::delete(url)).await
}
