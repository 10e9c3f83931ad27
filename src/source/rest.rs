//! REST `queryAll` pages: the path for what Bulk cannot serve (base64 fields, objects Bulk
//! refuses). Follows `nextRecordsUrl` until `done`.
//!
//! A REST query travels in the URL, and Salesforce refuses a URI (plus headers) over 16,384
//! bytes with 414 or 431. A field list too long for one URL is split: the first query keeps the
//! key fields (Id, the cursor) and as many others as fit, and each further group of fields is
//! looked up by `Id IN (...)` for the rows of every page, then merged into those rows by Id.

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

/// Longest query URL sfetl sends by default: Salesforce's 16,384-byte limit on URI plus
/// headers, less room for the headers (bearer token, query options, user agent).
pub const MAX_URL_BYTES: usize = 15_000;

/// Encoded length of one quoted id in an `Id IN (...)` list: `%27` + 18 characters + `%27` +
/// `%2C`.
const ENCODED_ID_BYTES: usize = 27;

/// How one REST read is split to keep every URL under a byte budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSplit {
    /// Fields of the main query (the key fields first).
    pub main: Vec<String>,
    /// Further groups of fields, each looked up by Id (each starts with `Id`).
    pub lookups: Vec<Vec<String>>,
    /// Ids per lookup query.
    pub ids_per_lookup: usize,
}

/// Why a field list cannot be split under a budget.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the REST query of {object} cannot fit in a {budget}-byte URL even with one field per query ({field} needs more); select fewer or shorter fields"
)]
pub struct SplitError {
    /// Object queried.
    pub object: String,
    /// The budget.
    pub budget: usize,
    /// A field that does not fit.
    pub field: String,
}

/// Splits `select` so that the main query (built by `main_soql` from a field list) and every
/// lookup of `object` stay within `budget` URL bytes. `keep` fields stay in the main query.
/// Returns a single group when everything fits in one URL.
pub fn split_fields(
    client: &SalesforceClient,
    object: &str,
    select: &[String],
    keep: &[&str],
    budget: usize,
    main_soql: impl Fn(&[String]) -> String,
) -> Result<FieldSplit, SplitError> {
    let url_len = |soql: &str| first_page_url(client, soql, true).len();
    let field_cost = |f: &str| encoded_len(f) + encoded_len(", ");
    if url_len(&main_soql(select)) <= budget {
        return Ok(FieldSplit {
            main: select.to_vec(),
            lookups: Vec::new(),
            ids_per_lookup: 0,
        });
    }
    let is_kept = |f: &str| keep.iter().any(|k| k.eq_ignore_ascii_case(f));
    let mut main: Vec<String> = select.iter().filter(|f| is_kept(f)).cloned().collect();
    let too_long = |field: &str| SplitError {
        object: object.to_string(),
        budget,
        field: field.to_string(),
    };
    let mut main_len = url_len(&main_soql(&main));
    if main_len > budget {
        return Err(too_long(&main.join(", ")));
    }
    // Half of a lookup URL holds ids, the other half the base query and fields.
    let ids_per_lookup = (budget / 2 / ENCODED_ID_BYTES).max(1);
    let lookup_base = url_len(&lookup_soql(object, &["Id".to_string()], &[]));
    let lookup_budget = budget.saturating_sub(ids_per_lookup * ENCODED_ID_BYTES);
    let mut lookups: Vec<Vec<String>> = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut current_len = lookup_base;
    for f in select.iter().filter(|f| !is_kept(f)) {
        let cost = field_cost(f);
        if lookups.is_empty() && current.is_empty() && main_len + cost <= budget {
            main.push(f.clone());
            main_len += cost;
            continue;
        }
        if lookup_base + cost > lookup_budget {
            return Err(too_long(f));
        }
        if current_len + cost > lookup_budget {
            lookups.push(std::mem::take(&mut current));
            current_len = lookup_base;
        }
        current.push(f.clone());
        current_len += cost;
    }
    if !current.is_empty() {
        lookups.push(current);
    }
    for l in &mut lookups {
        l.insert(0, "Id".to_string());
    }
    Ok(FieldSplit {
        main,
        lookups,
        ids_per_lookup,
    })
}

fn encoded_len(s: &str) -> usize {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .map(str::len)
        .sum()
}

/// `SELECT <fields> FROM <object> WHERE Id IN (<ids>)`.
pub fn lookup_soql(object: &str, fields: &[String], ids: &[&str]) -> String {
    let quoted: Vec<String> = ids.iter().map(|id| format!("'{id}'")).collect();
    format!(
        "SELECT {} FROM {object} WHERE Id IN ({})",
        fields.join(", "),
        quoted.join(",")
    )
}

/// Fetches the `fields` of the rows `ids` (all pages; `queryAll`, so rows deleted meanwhile
/// still answer) and merges them into `records` by Id.
pub async fn lookup_into(
    client: &SalesforceClient,
    object: &str,
    fields: &[String],
    ids_per_lookup: usize,
    batch_size: u32,
    attempts: u32,
    records: &mut [Value],
) -> Result<usize, FetchError> {
    let by_id: std::collections::HashMap<String, usize> = records
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            r.get("Id")
                .and_then(Value::as_str)
                .map(|id| (id.to_string(), i))
        })
        .collect();
    let ids: Vec<String> = by_id.keys().cloned().collect();
    let mut calls = 0;
    for chunk in ids.chunks(ids_per_lookup.max(1)) {
        let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let mut url = first_page_url(client, &lookup_soql(object, fields, &chunk), true);
        loop {
            let page = fetch_page_with_attempts(client, &url, batch_size, attempts).await?;
            calls += 1;
            for row in page.records {
                let Some(i) = row
                    .get("Id")
                    .and_then(Value::as_str)
                    .and_then(|id| by_id.get(id))
                else {
                    continue;
                };
                merge(&mut records[*i], row);
            }
            match page.next_records_url {
                Some(next) if !page.done => url = next,
                _ => break,
            }
        }
    }
    Ok(calls)
}

/// Merges the fields of `from` into `into`, recursing into relationship objects (two groups
/// may each hold some fields of `Account`).
fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                if k == "attributes" {
                    continue;
                }
                match a.get_mut(&k) {
                    Some(existing) if existing.is_object() && v.is_object() => merge(existing, v),
                    _ => {
                        a.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Fetches one page, again when its body was cut off (up to `attempts` times in all).
pub async fn fetch_page_with_attempts(
    client: &SalesforceClient,
    url: &str,
    batch_size: u32,
    attempts: u32,
) -> Result<QueryPage, FetchError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match fetch_page(client, url, batch_size).await {
            Err(FetchError::Truncated { reason, .. } | FetchError::Protocol(reason))
                if attempt < attempts =>
            {
                tracing::warn!("REST page cut off ({reason}); fetching it again");
            }
            other => return other,
        }
    }
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
