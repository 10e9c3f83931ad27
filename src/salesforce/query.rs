//! REST SOQL queries: `query`/`queryAll` pages, followed by `nextRecordsUrl` until `done`.

use serde::Deserialize;
use serde_json::Value;

use super::{ApiRequest, SalesforceClient, SalesforceError};

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

impl QueryPage {
    /// The URL of the next page, `None` on the last.
    pub fn next(&self) -> Option<&str> {
        self.next_records_url.as_deref().filter(|_| !self.done)
    }
}

/// The URL of the first page of `soql` (`queryAll` includes soft-deleted rows).
pub fn first_page_url(client: &SalesforceClient, soql: &str, all_rows: bool) -> String {
    let verb = if all_rows { "queryAll" } else { "query" };
    let q: String = url::form_urlencoded::byte_serialize(soql.as_bytes()).collect();
    client.data_url(&format!("{verb}?q={q}"))
}

/// Fetches one page (`url` is the first page's URL or a `nextRecordsUrl`), asking for
/// `batch_size` rows (`Sforce-Query-Options`; Salesforce treats it as a hint). A body cut off
/// midway is sent again under the client's retry policy.
pub async fn fetch_page(
    client: &SalesforceClient,
    url: &str,
    batch_size: u32,
) -> Result<QueryPage, SalesforceError> {
    let req = ApiRequest::get(client.data_url(url))
        .header("Sforce-Query-Options", format!("batchSize={batch_size}"));
    client.request_json(req).await
}

/// Every row of a small query (all pages), e.g. a probe or a validation `LIMIT 1`.
pub async fn query_all_rows(
    client: &SalesforceClient,
    soql: &str,
    all_rows: bool,
) -> Result<Vec<Value>, SalesforceError> {
    let mut url = first_page_url(client, soql, all_rows);
    let mut rows = Vec::new();
    loop {
        let page = fetch_page(client, &url, 2000).await?;
        let next = page.next().map(str::to_string);
        rows.extend(page.records);
        match next {
            Some(n) => url = n,
            None => return Ok(rows),
        }
    }
}
