//! REST `queryAll` pages: the path for what Bulk cannot serve (base64 fields, objects Bulk
//! refuses). Follows `nextRecordsUrl` until `done`.

use serde::Deserialize;
use serde_json::Value;

use super::FetchError;
use crate::salesforce::{ApiRequest, SalesforceClient};

/// One page of a REST query.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryPage {
    /// Rows the whole query matches.
    #[serde(default)]
    pub total_size: u64,
    /// No more pages.
    pub done: bool,
    /// Where the next page is.
    #[serde(default)]
    pub next_records_url: Option<String>,
    /// The rows.
    pub records: Vec<Value>,
}

/// The URL of the first page of `soql` (`queryAll` includes soft-deleted rows).
pub fn first_page_url(client: &SalesforceClient, soql: &str, all_rows: bool) -> String {
    let verb = if all_rows { "queryAll" } else { "query" };
    let q: String = url::form_urlencoded::byte_serialize(soql.as_bytes()).collect();
    client.data_url(&format!("{verb}?q={q}"))
}

/// Fetches one page (`url` is the first page's URL or a `nextRecordsUrl`).
pub async fn fetch_page(
    client: &SalesforceClient,
    url: &str,
    batch_size: u32,
) -> Result<QueryPage, FetchError> {
    let url = if url.starts_with("http://") || url.starts_with("https://") {
        url.to_string()
    } else {
        client.data_url(url)
    };
    let req =
        ApiRequest::get(url).header("Sforce-Query-Options", format!("batchSize={batch_size}"));
    Ok(client.request_json(req).await?)
}
