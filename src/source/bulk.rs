//! Bulk API 2.0 query jobs: create, poll with backoff, page through CSV results by locator,
//! delete. Pages stream into the CSV decoder chunk by chunk; a page cut off midway is fetched
//! again from its locator and the rows already delivered from it are skipped, so nothing is
//! lost or duplicated.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::FetchError;
use crate::salesforce::{ApiRequest, SalesforceClient};

/// Job info as Salesforce returns it (fields sfetl uses).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobInfo {
    /// Job id.
    pub id: String,
    /// `UploadComplete`, `InProgress`, `JobComplete`, `Failed`, `Aborted`.
    pub state: String,
    /// Rows the job produced (known once complete).
    #[serde(default)]
    pub number_records_processed: Option<u64>,
    /// Why a job failed.
    #[serde(default)]
    pub error_message: Option<String>,
}

/// How often to poll a job: starts fast, backs off to a ceiling.
#[derive(Debug, Clone)]
pub struct PollPolicy {
    /// First wait.
    pub initial: Duration,
    /// Ceiling.
    pub max: Duration,
    /// Give up after this long.
    pub timeout: Duration,
}

impl Default for PollPolicy {
    fn default() -> Self {
        PollPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
            timeout: Duration::from_secs(6 * 3600),
        }
    }
}

/// Creates a query job (`queryAll` includes soft-deleted rows).
pub async fn create_job(
    client: &SalesforceClient,
    soql: &str,
    all_rows: bool,
) -> Result<JobInfo, FetchError> {
    tracing::debug!(soql, all_rows, "creating a Bulk query job");
    let body = json!({
        "operation": if all_rows { "queryAll" } else { "query" },
        "query": soql,
        "contentType": "CSV",
        "columnDelimiter": "COMMA",
        "lineEnding": "LF",
    });
    // Creating a query job reads nothing and changes nothing, so a cut-off answer may be
    // retried (at worst an idle job is left, which Salesforce removes after 7 days).
    let req = ApiRequest::post_json(client.data_url("jobs/query"), body).idempotent(true);
    Ok(client.request_json(req).await?)
}

/// Polls until the job is complete; a failed or aborted job is an error carrying
/// Salesforce's message.
pub async fn wait_job(
    client: &SalesforceClient,
    id: &str,
    policy: &PollPolicy,
) -> Result<JobInfo, FetchError> {
    let url = client.data_url(&format!("jobs/query/{id}"));
    let started = std::time::Instant::now();
    let mut wait = policy.initial;
    loop {
        let info: JobInfo = client.get_json(&url).await?;
        match info.state.as_str() {
            "JobComplete" => return Ok(info),
            "Failed" | "Aborted" => {
                return Err(FetchError::JobFailed {
                    job: id.to_string(),
                    state: info.state.clone(),
                    message: info.error_message.clone().unwrap_or_default(),
                });
            }
            _ => {}
        }
        if started.elapsed() > policy.timeout {
            return Err(FetchError::JobTimeout {
                job: id.to_string(),
                waited: started.elapsed(),
            });
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(policy.max);
    }
}

/// Deletes a finished job (its results are no longer needed).
pub async fn delete_job(client: &SalesforceClient, id: &str) -> Result<(), FetchError> {
    let url = client.data_url(&format!("jobs/query/{id}"));
    client.send(ApiRequest::delete(&url)).await?;
    Ok(())
}

/// One results page being received.
pub struct Page {
    /// `Sforce-Locator` of the next page, `None` on the last.
    pub next_locator: Option<String>,
    /// `Sforce-NumberOfRecords`.
    pub records: Option<u64>,
    response: reqwest::Response,
    job: String,
    /// Set when the body is gzip-compressed: sfetl inflates it itself, in large steps.
    gunzip: Option<super::gunzip::Gunzip>,
    /// Compressed bytes received but not inflated yet.
    pending: bytes::Bytes,
}

/// Bytes of CSV handed to the decoder at a time when inflating (a few network chunks' worth).
const INFLATED_CHUNK: usize = 256 << 10;

impl Page {
    /// The next chunk of the body; a body cut off midway is [`FetchError::Truncated`], and the
    /// caller fetches the same locator again.
    pub async fn chunk(&mut self) -> Result<Option<bytes::Bytes>, FetchError> {
        if self.gunzip.is_none() {
            return self.raw_chunk().await;
        }
        let mut out = Vec::with_capacity(INFLATED_CHUNK);
        while out.len() < out.capacity() {
            if self.pending.is_empty() {
                match self.raw_chunk().await? {
                    Some(c) => self.pending = c,
                    None => {
                        self.inflate_err(|g| g.finish())?;
                        break;
                    }
                }
            }
            let pending = std::mem::take(&mut self.pending);
            let used = self.inflate_err(|g| g.inflate(&pending, &mut out))?;
            self.pending = pending.slice(used..);
        }
        Ok((!out.is_empty()).then(|| out.into()))
    }

    /// Runs `f` on the inflater; its errors mean the body is cut off or corrupt, and the page
    /// is fetched again.
    fn inflate_err<T>(
        &mut self,
        f: impl FnOnce(&mut super::gunzip::Gunzip) -> Result<T, String>,
    ) -> Result<T, FetchError> {
        let gunzip = self.gunzip.as_mut().expect("only called when inflating");
        f(gunzip).map_err(|reason| FetchError::Truncated {
            job: self.job.clone(),
            reason,
        })
    }

    async fn raw_chunk(&mut self) -> Result<Option<bytes::Bytes>, FetchError> {
        self.response
            .chunk()
            .await
            .map_err(|e| FetchError::Truncated {
                job: self.job.clone(),
                reason: e.to_string(),
            })
    }
}

/// Requests one results page.
pub async fn open_page(
    client: &SalesforceClient,
    id: &str,
    locator: Option<&str>,
    max_records: u64,
) -> Result<Page, FetchError> {
    let mut url = client.data_url(&format!("jobs/query/{id}/results?maxRecords={max_records}"));
    if let Some(l) = locator {
        url.push_str("&locator=");
        url.push_str(l);
    }
    let response = client
        .send(ApiRequest::get(&url).inflated_by_caller())
        .await?;
    let gunzip =
        crate::salesforce::client::is_gzipped(response.headers()).then(super::gunzip::Gunzip::new);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let next_locator = header("Sforce-Locator").filter(|l| !l.is_empty() && l != "null");
    let records = header("Sforce-NumberOfRecords").and_then(|n| n.parse().ok());
    Ok(Page {
        next_locator,
        records,
        response,
        job: id.to_string(),
        gunzip,
        pending: bytes::Bytes::new(),
    })
}
