//! REST `queryAll` paging of one window: the path for what Bulk cannot serve (base64 fields,
//! objects Bulk refuses). Follows `nextRecordsUrl` until `done`.
//!
//! A REST query travels in the URL, and Salesforce refuses a URI (plus headers) over 16,384
//! bytes with 414 or 431. A field list too long for one URL is split: the first query keeps the
//! key fields (Id, the cursor) and as many others as fit, and each further group of fields is
//! looked up by `Id IN (...)` for the rows of every page, then merged into those rows by Id.

use std::collections::HashMap;

use arrow::array::{Array, AsArray, RecordBatch};
use chrono::Utc;
use futures::{StreamExt, TryStreamExt};
use serde_json::Value;

use super::FetchError;
use super::bulk::Tolerated;
use super::fetch::ObjectReader;
use super::resume::{Resume, cursor_lost};
use crate::decode::{decode_rest_records, remove_nul};
use crate::output::StreamWriter;
use crate::protocol::LogLevel;
use crate::salesforce::{ApiRequest, SalesforceClient, SalesforceError, query};
use crate::source::restrictions::Handling;
use crate::source::soql::{self, Window};

/// Smallest URL budget sfetl shrinks to after 414/431 answers.
const MIN_URL_BUDGET: usize = 1000;

impl ObjectReader<'_> {
    /// Reads a window through REST. When Salesforce refuses the query URL as too long (414 or
    /// 431, limits vary by org and proxy) before any row was delivered, the field list is split
    /// under a smaller budget and the window read again.
    pub(super) async fn rest_window(
        &mut self,
        window: Option<Window>,
        writer: &mut dyn StreamWriter,
    ) -> Result<u64, FetchError> {
        let mut tolerated = Tolerated::default();
        let read = loop {
            let mut total = 0u64;
            let budget = self.rest_url_budget;
            match self
                .rest_window_within(window, writer, budget, &mut total, &mut tolerated)
                .await
            {
                Err(FetchError::Salesforce(SalesforceError::Api { status, .. }))
                    if matches!(status, 414 | 431) && total == 0 && budget > MIN_URL_BUDGET =>
                {
                    let smaller = (budget * 2 / 3).max(MIN_URL_BUDGET);
                    let text = format!(
                        "{}: Salesforce refused a REST query URL as too long (HTTP {status}); splitting its fields to keep URLs under {smaller} bytes",
                        self.plan.name
                    );
                    self.ctx.log(LogLevel::Warn, text).await;
                    self.rest_url_budget = smaller;
                }
                Err(e)
                    if total == 0
                        && !self.id_ranges
                        && e.restriction()
                            .is_some_and(|r| r.handling == Handling::IdRanges) =>
                {
                    let text = format!(
                        "{}: reading with the REST API, one page per query in Id order: Salesforce answered: {e}",
                        self.plan.name
                    );
                    self.ctx.log(LogLevel::Info, text).await;
                    self.id_ranges = true;
                }
                other => break other.map(|()| total),
            }
        };
        self.warn_tolerated(&tolerated).await;
        read
    }

    /// The field split of this object's REST query under `budget`, logged once per object.
    async fn rest_split(
        &mut self,
        window: Option<Window>,
        budget: usize,
    ) -> Result<FieldSplit, FetchError> {
        let object = self.object;
        let plan = &object.rest;
        let keep: Vec<&str> = std::iter::once("Id").chain(object.cursor).collect();
        let mut split = split_fields(
            &self.ctx.client,
            &object.object,
            &plan.select,
            &keep,
            budget,
            |fields| self.main_soql(fields, window, &Resume::default()),
        )
        .map_err(|e| FetchError::FieldSplit(e.to_string()))?;
        if split.lookups.is_empty() {
            return Ok(split);
        }
        if !split.main.iter().any(|f| f.eq_ignore_ascii_case("Id")) {
            split.main.insert(0, "Id".to_string());
        }
        if !self.rest_split_logged {
            self.rest_split_logged = true;
            let text = format!(
                "{}: {} fields are too many for one REST query URL (over {budget} bytes); reading {} with the key fields and looking up {} more group(s) by Id, {} ids a call",
                self.plan.name,
                plan.select.len(),
                split.main.len(),
                split.lookups.len(),
                split.ids_per_lookup
            );
            self.ctx.log(LogLevel::Info, text).await;
        }
        Ok(split)
    }

    /// The window's query, continuing after what `resume` says was delivered.
    fn main_soql(&self, fields: &[String], window: Option<Window>, resume: &Resume) -> String {
        let (window, extra) = resume.query_bounds(window, self.object.soql_where.as_deref());
        soql::select(
            &self.object.object,
            fields,
            self.object.cursor,
            window,
            extra.as_deref(),
            true,
        )
    }

    /// Reads a window's pages. When Salesforce drops the query cursor midway, the query is run
    /// again from the last row delivered (see [`super::resume`]).
    async fn rest_window_within(
        &mut self,
        window: Option<Window>,
        writer: &mut dyn StreamWriter,
        budget: usize,
        total: &mut u64,
        tolerated: &mut Tolerated,
    ) -> Result<(), FetchError> {
        let split = self.rest_split(window, budget).await?;
        if self.id_ranges {
            return self
                .rest_id_ranges(window, writer, &split, total, tolerated)
                .await;
        }
        let ctx = self.ctx;
        let client = &ctx.client;
        let mut resume = Resume::new(self.object.cursor);
        let mut url = self.first_url(&split, window, &resume);
        let mut first = true;
        loop {
            ctx.check_stop()?;
            self.check_quota().await?;
            let mut page = match query::fetch_page(client, &url, ctx.opts.rest_batch_size).await {
                Ok(page) => page,
                Err(e) if !first && cursor_lost(&e) => {
                    let text = resume.restart(e)?;
                    ctx.log(LogLevel::Info, format!("{}: {text}", self.plan.name))
                        .await;
                    url = self.first_url(&split, window, &resume);
                    first = true;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            first = false;
            resume.take_page(&mut page.records);
            *total += self
                .rest_rows(&split, &mut page.records, writer, tolerated)
                .await?;
            match page.next() {
                Some(next) => url = next.to_string(),
                None => return Ok(()),
            }
        }
    }

    /// Reads a window of an object without `queryMore`: one query per page, each for the
    /// next `rest_batch_size` rows in Id order (`... AND Id > 'last' ORDER BY Id LIMIT n`),
    /// until a page comes back short.
    async fn rest_id_ranges(
        &mut self,
        window: Option<Window>,
        writer: &mut dyn StreamWriter,
        split: &FieldSplit,
        total: &mut u64,
        tolerated: &mut Tolerated,
    ) -> Result<(), FetchError> {
        let ctx = self.ctx;
        let n = ctx.opts.rest_batch_size;
        let mut fields = split.main.clone();
        if !fields.iter().any(|f| f.eq_ignore_ascii_case("Id")) {
            fields.insert(0, "Id".to_string());
        }
        let user = self.object.soql_where.as_deref();
        let mut after: Option<String> = None;
        loop {
            ctx.check_stop()?;
            self.check_quota().await?;
            let extra = match &after {
                Some(id) => Some(soql::and_where(
                    user,
                    &format!("Id > {}", soql::quoted_id(id)),
                )),
                None => user.map(str::to_string),
            };
            let o = self.object;
            let mut q = soql::select(
                &o.object,
                &fields,
                o.cursor,
                window,
                extra.as_deref(),
                false,
            );
            q.push_str(&format!(" ORDER BY Id ASC LIMIT {n}"));
            let url = query::first_page_url(&ctx.client, &q, true);
            let mut page = query::fetch_page(&ctx.client, &url, n).await?;
            let full = page.records.len() >= n as usize;
            let last = page
                .records
                .last()
                .and_then(|r| r.get("Id"))
                .and_then(Value::as_str);
            after = last.map(str::to_string);
            *total += self
                .rest_rows(split, &mut page.records, writer, tolerated)
                .await?;
            if !full || after.is_none() {
                return Ok(());
            }
        }
    }

    fn first_url(&self, split: &FieldSplit, window: Option<Window>, resume: &Resume) -> String {
        let soql = self.main_soql(&split.main, window, resume);
        query::first_page_url(&self.ctx.client, &soql, true)
    }

    /// Completes the rows of one page (lookups of split fields, base64 contents), removes NUL
    /// bytes from its text (counted in `tolerated`), decodes and delivers it; returns how many
    /// rows.
    async fn rest_rows(
        &mut self,
        split: &FieldSplit,
        records: &mut [Value],
        writer: &mut dyn StreamWriter,
        tolerated: &mut Tolerated,
    ) -> Result<u64, FetchError> {
        if records.is_empty() {
            return Ok(0);
        }
        let ctx = self.ctx;
        let client = &ctx.client;
        let plan = &self.object.rest;
        let extracted_at = Utc::now();
        for fields in &split.lookups {
            lookup_into(
                client,
                &self.object.object,
                fields,
                split.ids_per_lookup,
                ctx.opts.rest_batch_size,
                records,
            )
            .await?;
        }
        tolerated.removed_nul += remove_nul(records);
        let wire = decode_rest_records(plan, records)?;
        let blobs = fetch_blobs(client, &wire, &plan.blob_columns()).await?;
        let batch = plan.assemble_with_blobs(&wire, &blobs)?;
        self.deliver(writer, batch, extracted_at).await?;
        Ok(wire.num_rows() as u64)
    }
}

/// Fetches base64 field contents (REST returns their URLs), 4 at a time. A row in the recycle
/// bin (`queryAll` returns those too) has no content to fetch: Salesforce answers 404
/// `ENTITY_IS_DELETED`, and the field reads null.
async fn fetch_blobs(
    client: &SalesforceClient,
    wire: &RecordBatch,
    cols: &[usize],
) -> Result<HashMap<String, Vec<u8>>, FetchError> {
    let mut urls: Vec<String> = Vec::new();
    for c in cols {
        let a = wire.column(*c).as_string::<i32>();
        urls.extend(
            (0..a.len())
                .filter(|i| a.is_valid(*i) && a.value(*i).starts_with("/services/"))
                .map(|i| a.value(i).to_string()),
        );
    }
    let fetched: Vec<_> = futures::stream::iter(urls)
        .map(|u| fetch_blob(client, u))
        .buffered(4)
        .try_collect()
        .await?;
    Ok(fetched.into_iter().flatten().collect())
}

/// The content at one blob URL, or `None` for a row in the recycle bin.
async fn fetch_blob(
    client: &SalesforceClient,
    url: String,
) -> Result<Option<(String, Vec<u8>)>, FetchError> {
    let resp = match client.send(ApiRequest::get(client.data_url(&url))).await {
        Ok(resp) => resp,
        Err(SalesforceError::Api { code, .. }) if code == "ENTITY_IS_DELETED" => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let bytes = resp.bytes().await.map_err(|e| SalesforceError::CutOff {
        what: url.clone(),
        reason: crate::transport::body_error_cause(&e),
    })?;
    Ok(Some((url, bytes.to_vec())))
}

/// Longest query URL sfetl sends by default: Salesforce's 16,384-byte limit on URI plus
/// headers, less room for the headers (bearer token, query options, user agent).
pub(super) const MAX_URL_BYTES: usize = 15_000;

/// Encoded length of one quoted id in an `Id IN (...)` list: `%27` + 18 characters + `%27` +
/// `%2C`.
const ENCODED_ID_BYTES: usize = 27;

/// How one REST read is split to keep every URL under a byte budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FieldSplit {
    /// Fields of the main query (the key fields first).
    pub(super) main: Vec<String>,
    /// Further groups of fields, each looked up by Id (each starts with `Id`).
    pub(super) lookups: Vec<Vec<String>>,
    /// Ids per lookup query.
    pub(super) ids_per_lookup: usize,
}

/// Why a field list cannot be split under a budget.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the REST query of {object} cannot fit in a {budget}-byte URL even with one field per query ({field} needs more); select fewer or shorter fields"
)]
pub(super) struct SplitError {
    /// Object queried.
    pub(super) object: String,
    /// The budget.
    pub(super) budget: usize,
    /// A field that does not fit.
    pub(super) field: String,
}

/// Splits `select` so that the main query (built by `main_soql` from a field list) and every
/// lookup of `object` stay within `budget` URL bytes. `keep` fields stay in the main query.
/// Returns a single group when everything fits in one URL.
pub(super) fn split_fields(
    client: &SalesforceClient,
    object: &str,
    select: &[String],
    keep: &[&str],
    budget: usize,
    main_soql: impl Fn(&[String]) -> String,
) -> Result<FieldSplit, SplitError> {
    let url_len = |soql: &str| query::first_page_url(client, soql, true).len();
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
fn lookup_soql(object: &str, fields: &[String], ids: &[&str]) -> String {
    let quoted: Vec<String> = ids.iter().map(|id| format!("'{id}'")).collect();
    format!(
        "SELECT {} FROM {object} WHERE Id IN ({})",
        fields.join(", "),
        quoted.join(",")
    )
}

/// Fetches the `fields` of the rows `ids` (all pages; `queryAll`, so rows deleted meanwhile
/// still answer) and merges them into `records` by Id.
async fn lookup_into(
    client: &SalesforceClient,
    object: &str,
    fields: &[String],
    ids_per_lookup: usize,
    batch_size: u32,
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
        let mut url = query::first_page_url(client, &lookup_soql(object, fields, &chunk), true);
        loop {
            let page = query::fetch_page(client, &url, batch_size).await?;
            calls += 1;
            let next = page.next().map(str::to_string);
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
            match next {
                Some(next) => url = next,
                None => break,
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
