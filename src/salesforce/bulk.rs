//! Bulk API 2.0: one job lifecycle for query and ingest jobs.
//!
//! Both kinds are created, polled until a terminal state, and deleted the same way; they differ
//! in what happens in between (a query job's results are paged by locator, an ingest job is
//! uploaded and closed, then its failed and unprocessed rows are downloaded). Polling backs off
//! to a ceiling, stops at a deadline (the job is then aborted so it does not keep running in the
//! org), and gives way to a [`StopSignal`].

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use super::gunzip::Gunzip;
use super::{ApiRequest, SalesforceClient, SalesforceError};
use crate::stop::StopSignal;

/// Which Bulk API 2.0 resource a job lives under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// `jobs/query`.
    Query,
    /// `jobs/ingest`.
    Ingest,
}

impl JobKind {
    /// The resource path, also the word used in messages.
    fn path(self) -> &'static str {
        match self {
            JobKind::Query => "query",
            JobKind::Ingest => "ingest",
        }
    }
}

/// Job info as Salesforce returns it (the fields sfetl uses, for both kinds).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobInfo {
    /// Job id.
    pub id: String,
    /// `Open`, `UploadComplete`, `InProgress`, `JobComplete`, `Failed`, `Aborted`.
    pub state: String,
    /// Rows the job produced (query) or processed (ingest), once known.
    #[serde(default)]
    pub number_records_processed: Option<u64>,
    /// Ingest: rows Salesforce refused.
    #[serde(default)]
    pub number_records_failed: Option<u64>,
    /// Why a job failed.
    #[serde(default)]
    pub error_message: Option<String>,
}

impl JobInfo {
    /// Whether the job will not change state any more.
    pub fn is_terminal(&self) -> bool {
        matches!(self.state.as_str(), "JobComplete" | "Failed" | "Aborted")
    }
}

/// How often to poll a job, and for how long at most.
#[derive(Debug, Clone)]
pub struct PollPolicy {
    /// First wait.
    pub initial: Duration,
    /// Ceiling of one wait.
    pub max: Duration,
    /// Deadline: past it the job is aborted and the wait fails.
    pub timeout: Duration,
}

impl PollPolicy {
    /// Ingest jobs: polled at most every 5 s (a write-back waits on them row by row).
    pub fn ingest() -> PollPolicy {
        PollPolicy {
            max: Duration::from_secs(5),
            ..PollPolicy::default()
        }
    }
}

impl Default for PollPolicy {
    /// 100 ms doubling to 10 s, for at most 6 hours (Salesforce's own processing limit for a
    /// query job's chunks is 10 minutes each, so 6 hours means something is stuck).
    fn default() -> Self {
        PollPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
            timeout: Duration::from_secs(6 * 3600),
        }
    }
}

/// What an ingest job does to the rows it is given.
#[derive(Debug, Clone)]
pub struct IngestSpec<'a> {
    /// The object written.
    pub object: &'a str,
    /// `insert`, `update`, `upsert`, `delete`.
    pub operation: &'a str,
    /// The External ID field of an upsert.
    pub external_id: Option<&'a str>,
}

/// The result sets of a finished ingest job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestResults {
    /// `failedResults/`: `sf__Id, sf__Error, <input columns>`.
    Failed,
    /// `unprocessedrecords/`: the input columns of rows never processed.
    Unprocessed,
}

/// The Bulk API 2.0 of one client.
#[derive(Debug, Clone, Copy)]
pub struct Bulk<'c> {
    client: &'c SalesforceClient,
}

impl<'c> Bulk<'c> {
    /// Bulk calls through `client` (token, retries, usage tracking included).
    pub fn new(client: &'c SalesforceClient) -> Bulk<'c> {
        Bulk { client }
    }

    fn job_url(&self, kind: JobKind, id: &str) -> String {
        self.client.data_url(&format!("jobs/{}/{id}", kind.path()))
    }

    /// Creates a query job (`queryAll` includes soft-deleted and archived rows).
    pub async fn create_query(
        &self,
        soql: &str,
        all_rows: bool,
    ) -> Result<JobInfo, SalesforceError> {
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
        let req = ApiRequest::post_json(self.client.data_url("jobs/query"), body).idempotent(true);
        self.client.request_json(req).await
    }

    /// Creates an ingest job in state `Open`. Retried after a transient failure like a query
    /// job: an `Open` job with no data writes nothing, and Salesforce closes it after a day.
    pub async fn create_ingest(&self, spec: &IngestSpec<'_>) -> Result<JobInfo, SalesforceError> {
        let mut body = json!({
            "object": spec.object,
            "operation": spec.operation,
            "contentType": "CSV",
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
        });
        if let Some(ext) = spec.external_id {
            body["externalIdFieldName"] = json!(ext);
        }
        let req = ApiRequest::post_json(self.client.data_url("jobs/ingest"), body).idempotent(true);
        self.client.request_json(req).await
    }

    /// Uploads the job's CSV (one upload per job). Not retried: whether a failed upload landed
    /// is unknown, so the caller aborts the job and sends its rows again in a new one.
    pub async fn upload(&self, id: &str, csv: Bytes) -> Result<(), SalesforceError> {
        let url = format!("{}/batches", self.job_url(JobKind::Ingest, id));
        let req = ApiRequest::put_bytes(url, "text/csv", csv);
        self.client.send(req).await?;
        Ok(())
    }

    /// Closes an ingest job's upload (`UploadComplete`): Salesforce starts processing it.
    pub async fn close(&self, id: &str) -> Result<JobInfo, SalesforceError> {
        let req = ApiRequest::patch_json(
            self.job_url(JobKind::Ingest, id),
            json!({"state": "UploadComplete"}),
        )
        .idempotent(true);
        self.client.request_json(req).await
    }

    /// Polls until the job is `JobComplete`, `Failed` or `Aborted` and returns its info
    /// whatever the end (the caller decides what a failed ingest job means). Past the
    /// deadline the job is aborted; a stop request aborts it and ends the wait at the next
    /// poll.
    ///
    /// The first poll comes after the policy's first wait, not at once: the caller has just
    /// been told the job's state by the call that created or closed it (`UploadComplete`, as
    /// Salesforce documents), so asking again straight away only spends an API call.
    pub async fn wait(
        &self,
        kind: JobKind,
        id: &str,
        policy: &PollPolicy,
        stop: &StopSignal,
    ) -> Result<JobInfo, SalesforceError> {
        let url = self.job_url(kind, id);
        let started = Instant::now();
        let mut wait = policy.initial;
        loop {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(policy.max);
            let info: JobInfo = self.client.get_json(&url).await?;
            if info.is_terminal() {
                return Ok(info);
            }
            let end = if started.elapsed() > policy.timeout {
                SalesforceError::BulkJobTimeout {
                    kind: kind.path(),
                    job: id.to_string(),
                    waited: started.elapsed(),
                }
            } else if stop.is_stopped() {
                SalesforceError::Cancelled
            } else {
                continue;
            };
            // A job left running keeps one of the org's running-job slots and goes on
            // processing; Salesforce deletes only finished jobs, so it is aborted first.
            if let Err(e) = self.abort(kind, id).await {
                tracing::warn!("could not abort Bulk {} job {id}: {e}", kind.path());
            }
            return Err(end);
        }
    }

    /// [`Bulk::wait`], with a job that ended `Failed` or `Aborted` turned into
    /// [`SalesforceError::BulkJobFailed`] carrying Salesforce's message.
    pub async fn wait_complete(
        &self,
        kind: JobKind,
        id: &str,
        policy: &PollPolicy,
        stop: &StopSignal,
    ) -> Result<JobInfo, SalesforceError> {
        let info = self.wait(kind, id, policy, stop).await?;
        if info.state == "JobComplete" {
            return Ok(info);
        }
        Err(SalesforceError::BulkJobFailed {
            kind: kind.path(),
            job: id.to_string(),
            state: info.state.clone(),
            message: info.error_message.clone().unwrap_or_default(),
        })
    }

    /// Aborts a job that is still running.
    pub async fn abort(&self, kind: JobKind, id: &str) -> Result<(), SalesforceError> {
        let req = ApiRequest::patch_json(self.job_url(kind, id), json!({"state": "Aborted"}))
            .idempotent(true);
        self.client.send(req).await?;
        Ok(())
    }

    /// Deletes a finished job (its results are no longer needed).
    pub async fn delete(&self, kind: JobKind, id: &str) -> Result<(), SalesforceError> {
        self.client
            .send(ApiRequest::delete(self.job_url(kind, id)))
            .await?;
        Ok(())
    }

    /// Downloads one result set of a finished ingest job as CSV text.
    pub async fn ingest_results(
        &self,
        id: &str,
        which: IngestResults,
    ) -> Result<String, SalesforceError> {
        let leaf = match which {
            IngestResults::Failed => "failedResults/",
            IngestResults::Unprocessed => "unprocessedrecords/",
        };
        let url = format!("{}/{leaf}", self.job_url(JobKind::Ingest, id));
        let response = self.client.send(ApiRequest::get(&url)).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|e| SalesforceError::CutOff {
                what: format!("the {leaf} of Bulk job {id}"),
                reason: crate::transport::body_error_cause(&e),
            })?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Requests one results page of a finished query job; the body is read by the caller,
    /// chunk by chunk, through [`ResultsPage::chunk`].
    pub async fn results_page(
        &self,
        id: &str,
        locator: Option<&str>,
        max_records: u64,
    ) -> Result<ResultsPage, SalesforceError> {
        let mut url = format!(
            "{}/results?maxRecords={max_records}",
            self.job_url(JobKind::Query, id)
        );
        if let Some(l) = locator {
            url.push_str("&locator=");
            url.push_str(l);
        }
        let response = self
            .client
            .send(ApiRequest::get(&url).inflated_by_caller())
            .await?;
        let gunzip = super::client::is_gzipped(response.headers()).then(Gunzip::new);
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let next_locator = header("Sforce-Locator").filter(|l| !l.is_empty() && l != "null");
        let records = header("Sforce-NumberOfRecords").and_then(|n| n.parse().ok());
        Ok(ResultsPage {
            next_locator,
            records,
            response,
            job: id.to_string(),
            gunzip,
            pending: Bytes::new(),
            received: false,
        })
    }
}

/// One results page of a query job being received.
pub struct ResultsPage {
    /// `Sforce-Locator` of the next page, `None` on the last.
    pub next_locator: Option<String>,
    /// `Sforce-NumberOfRecords`.
    pub records: Option<u64>,
    response: reqwest::Response,
    job: String,
    /// Set when the body is gzip-compressed: sfetl inflates it itself, in large steps.
    gunzip: Option<Gunzip>,
    /// Compressed bytes received but not inflated yet.
    pending: Bytes,
    /// The body has no more bytes to receive.
    received: bool,
}

/// Bytes of CSV handed to the decoder at a time, inflated or joined from smaller pieces (a
/// few network chunks' worth).
const INFLATED_CHUNK: usize = 256 << 10;

/// Compressed bytes gathered before inflating, when the body comes in smaller pieces (HTTP/2
/// frames of 16 KB, or reads of whatever a slow link has delivered). zlib-rs copies the output
/// of each call into its 32 KB window, so a call per 16 KB piece (some 45 KB of CSV) copied
/// most of its output twice: one 31.5 MB page inflated at 422 MB/s from 16 KB pieces, 528-554
/// MB/s from 64 KB or more.
const INFLATE_INPUT: usize = 64 << 10;

impl ResultsPage {
    /// The next chunk of the body; a body cut off midway is [`SalesforceError::CutOff`], and
    /// the caller fetches the same locator again.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, SalesforceError> {
        if self.gunzip.is_none() {
            // CSV as it came: small pieces joined, as each chunk costs the decoder a pass of
            // its own (pieces of 16 KB took a fifth more CPU than of 470 KB).
            self.gather(INFLATED_CHUNK).await?;
            return Ok((!self.pending.is_empty()).then(|| std::mem::take(&mut self.pending)));
        }
        let mut out = Vec::with_capacity(INFLATED_CHUNK);
        while out.len() < out.capacity() {
            if self.pending.len() < INFLATE_INPUT {
                self.gather(INFLATE_INPUT).await?;
            }
            if self.pending.is_empty() {
                self.inflate_err(|g| g.finish())?;
                break;
            }
            let pending = std::mem::take(&mut self.pending);
            let used = self.inflate_err(|g| g.inflate(&pending, &mut out))?;
            self.pending = pending.slice(used..);
        }
        Ok((!out.is_empty()).then(|| out.into()))
    }

    /// The body's chunks as a stream that owns the page, for a task of its own (see
    /// [`crate::decode::DecodedPage`]); it ends after the first error.
    pub fn into_chunks(
        self,
    ) -> impl futures::Stream<Item = Result<Bytes, SalesforceError>> + Send + 'static {
        futures::stream::unfold(Some(self), |page| async move {
            let mut page = page?;
            match page.chunk().await {
                Ok(Some(chunk)) => Some((Ok(chunk), Some(page))),
                Ok(None) => None,
                Err(e) => Some((Err(e), None)),
            }
        })
    }

    /// Runs `f` on the inflater; its errors mean the body is cut off or corrupt, and the page
    /// is fetched again.
    fn inflate_err<T>(
        &mut self,
        f: impl FnOnce(&mut Gunzip) -> Result<T, String>,
    ) -> Result<T, SalesforceError> {
        let gunzip = self.gunzip.as_mut().expect("only called when inflating");
        f(gunzip).map_err(|reason| cut_off(&self.job, reason))
    }

    /// Receives pieces of the body until `least` bytes wait or the body ends; a piece that
    /// large on its own is kept as it came, smaller ones are joined.
    async fn gather(&mut self, least: usize) -> Result<(), SalesforceError> {
        let mut joined: Option<Vec<u8>> = None;
        while !self.received && joined.as_ref().map_or(self.pending.len(), Vec::len) < least {
            match self.raw_chunk().await? {
                None => self.received = true,
                // Nothing waits (a join always starts from what does).
                Some(piece) if self.pending.is_empty() => self.pending = piece,
                Some(piece) => joined
                    .get_or_insert_with(|| {
                        let mut all = Vec::with_capacity(2 * least);
                        all.extend_from_slice(&self.pending);
                        all
                    })
                    .extend_from_slice(&piece),
            }
        }
        if let Some(all) = joined {
            self.pending = all.into();
        }
        Ok(())
    }

    async fn raw_chunk(&mut self) -> Result<Option<Bytes>, SalesforceError> {
        self.response
            .chunk()
            .await
            .map_err(|e| cut_off(&self.job, crate::transport::body_error_cause(&e)))
    }
}

/// A results page of Bulk job `job` cut off or corrupt: the caller fetches it again.
fn cut_off(job: &str, reason: String) -> SalesforceError {
    SalesforceError::CutOff {
        what: format!("a results page of Bulk job {job}"),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A gzip results page whose body arrives in pieces of `piece` bytes, then `last`.
    fn page(body: &[u8], piece: usize, last: Option<std::io::Error>) -> ResultsPage {
        ResultsPage {
            gunzip: Some(Gunzip::new()),
            ..plain_page(body, piece, last)
        }
    }

    /// The same, not compressed.
    fn plain_page(body: &[u8], piece: usize, last: Option<std::io::Error>) -> ResultsPage {
        let mut pieces: Vec<Result<Bytes, std::io::Error>> = body
            .chunks(piece)
            .map(|p| Ok(Bytes::copy_from_slice(p)))
            .collect();
        pieces.extend(last.map(Err));
        let response = http::Response::builder()
            .body(reqwest::Body::wrap_stream(futures::stream::iter(pieces)))
            .unwrap();
        ResultsPage {
            next_locator: None,
            records: None,
            response: response.into(),
            job: "750000000000001AAA".into(),
            gunzip: None,
            pending: Bytes::new(),
            received: false,
        }
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// The page's chunks until it ends, or its error.
    async fn chunks(mut page: ResultsPage) -> Result<Vec<Bytes>, SalesforceError> {
        let mut out = Vec::new();
        while let Some(c) = page.chunk().await? {
            out.push(c);
        }
        Ok(out)
    }

    fn csv() -> Vec<u8> {
        (0..60_000u32)
            .flat_map(|i| {
                format!("\"001{i:015}\",\"Name {}\",\"{}\"\n", i % 977, i * 7).into_bytes()
            })
            .collect()
    }

    #[tokio::test]
    async fn joins_small_pieces_of_a_plain_body() {
        let csv = csv();
        for piece in [1, 16 << 10, 300_000, csv.len()] {
            let got = chunks(plain_page(&csv, piece, None)).await.unwrap();
            let sizes: Vec<usize> = got.iter().map(Bytes::len).collect();
            assert_eq!(got.concat(), csv, "pieces of {piece}");
            let (_, full) = sizes.split_last().unwrap();
            assert!(full.iter().all(|&n| n >= INFLATED_CHUNK), "{sizes:?}");
        }
        // Pieces too small to pass on alone are joined to exactly the chunk's size.
        let got = chunks(plain_page(&csv, 16 << 10, None)).await.unwrap();
        assert_eq!(got[0].len(), INFLATED_CHUNK);
        // A large piece is passed on as it came.
        let got = chunks(plain_page(&csv, csv.len(), None)).await.unwrap();
        assert_eq!(got.len(), 1);
    }

    #[tokio::test]
    async fn inflates_a_body_in_pieces_of_any_size() {
        let csv = csv();
        let body = gzip(&csv);
        assert!(body.len() > 4 * INFLATE_INPUT, "{} bytes", body.len());
        for piece in [1, 7, 4096, 16 << 10, INFLATE_INPUT + 1, body.len()] {
            let got = chunks(page(&body, piece, None)).await.unwrap();
            let sizes: Vec<usize> = got.iter().map(Bytes::len).collect();
            assert_eq!(got.concat(), csv, "pieces of {piece}");
            // Every chunk but the last is full, however the body came.
            let (last, full) = sizes.split_last().unwrap();
            assert!(full.iter().all(|&n| n == INFLATED_CHUNK), "{sizes:?}");
            assert_eq!(full.len() * INFLATED_CHUNK + last, csv.len());
        }
    }

    #[tokio::test]
    async fn a_cut_off_body_is_an_error() {
        let body = gzip(b"\"Id\"\n\"001000000000001AAA\"\n");
        let cut = &body[..body.len() - 3];
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let early = "the gzip stream ended early";
        for (piece, last, says) in [
            (1, None, early),
            (16 << 10, None, early),
            (5, Some(reset), "reset by peer"),
        ] {
            match chunks(page(cut, piece, last)).await {
                Err(SalesforceError::CutOff { what, reason }) => {
                    assert_eq!(what, "a results page of Bulk job 750000000000001AAA");
                    assert!(reason.contains(says), "{reason}");
                }
                other => panic!("pieces of {piece}: {other:?}"),
            }
        }
    }
}
