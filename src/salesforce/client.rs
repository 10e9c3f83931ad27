//! [`SalesforceClient`]: the authenticated HTTP client every API module (REST, Bulk, identity)
//! sends through. It adds the bearer token, refreshes it once on `401 INVALID_SESSION_ID`,
//! retries transient failures of idempotent requests with jittered backoff, tracks the org's API
//! usage from `Sforce-Limit-Info`, and turns error answers into [`SalesforceError`]s.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::errors::{SalesforceError, page_text, parse_error_body};
use super::errors::{is_transient_code, is_transient_status};
use super::limits::{ApiUsage, parse_limit_info};
use super::request::{ApiBody, ApiRequest};
use crate::auth::{RotationHook, Token, TokenProvider};
use crate::config::Config;
use crate::transport::RetryPolicy;
use crate::transport::{checked_url, describe_reqwest_error, http_client, origin};

/// What the caller plugs into the client.
#[derive(Clone, Default)]
pub struct ClientHooks {
    /// Called with the new refresh token when Salesforce rotates it; commands emit a CONTROL
    /// CONNECTOR_CONFIG message and rewrite a `sfetl login` credentials file with it.
    pub on_refresh_token_rotated: Option<RotationHook>,
    /// Backoff for transient failures (tests use millisecond delays).
    pub retry: RetryPolicy,
}

impl std::fmt::Debug for ClientHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientHooks")
            .field(
                "on_refresh_token_rotated",
                &self.on_refresh_token_rotated.is_some(),
            )
            .field("retry", &self.retry)
            .finish()
    }
}

/// The authenticated Salesforce client; cheap to clone (shared state behind an `Arc`).
#[derive(Clone, Debug)]
pub struct SalesforceClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    /// Without transparent decompression, for [`ApiRequest::inflated_by_caller`].
    raw_http: reqwest::Client,
    tokens: TokenProvider,
    api_version: String,
    retry: RetryPolicy,
    usage: Mutex<Option<ApiUsage>>,
    requests: AtomicU64,
    /// The describes this client already fetched (see [`super::describe::DescribeMemo`]).
    describes: super::describe::DescribeMemo,
    /// The org's clock, from the `Date` header of its answers.
    clock: super::clock::OrgClock,
}

impl SalesforceClient {
    /// Builds the client for a config and obtains the first token, so a wrong credential fails
    /// here with its advice rather than in the middle of a sync.
    pub async fn connect(
        config: &Config,
        hooks: ClientHooks,
    ) -> Result<SalesforceClient, SalesforceError> {
        let http = http_client();
        let tokens = TokenProvider::from_config(
            config,
            http.clone(),
            hooks.on_refresh_token_rotated.clone(),
            hooks.retry.clone(),
        )?;
        tokens.token().await?;
        Ok(SalesforceClient {
            inner: Arc::new(Inner {
                http,
                raw_http: crate::transport::http_client_raw(),
                tokens,
                api_version: config.api_version.trim_start_matches('v').to_string(),
                retry: hooks.retry,
                usage: Mutex::new(None),
                requests: AtomicU64::new(0),
                describes: Default::default(),
                clock: Default::default(),
            }),
        })
    }

    /// The token provider (identity URL, token counts, the refresh token after rotation).
    pub fn tokens(&self) -> &TokenProvider {
        &self.inner.tokens
    }

    /// The describes this client already fetched.
    pub(super) fn describe_memo(&self) -> &super::describe::DescribeMemo {
        &self.inner.describes
    }

    /// The REST API version in use, e.g. `62.0`.
    pub fn api_version(&self) -> &str {
        &self.inner.api_version
    }

    /// Where data calls go: the `instance_url` of the latest token response.
    pub fn instance_url(&self) -> String {
        self.inner
            .tokens
            .current()
            .map(|t| t.instance_url.clone())
            .unwrap_or_default()
    }

    /// The absolute URL of an API path: `{instance_url}/services/data/v{api_version}/{path}`;
    /// a path starting with `/services/` (a `nextRecordsUrl`) is joined to the instance URL,
    /// and an absolute URL is kept.
    pub fn data_url(&self, path: &str) -> String {
        if path.starts_with("https://") || path.starts_with("http://") {
            return path.to_string();
        }
        let instance = self.instance_url();
        if path.starts_with("/services/") {
            format!("{instance}{path}")
        } else {
            format!(
                "{instance}/services/data/v{}/{}",
                self.inner.api_version,
                path.trim_start_matches('/')
            )
        }
    }

    /// The backoff policy of this client's retries, for loops above it that retry whole
    /// operations (a cut-off page, a failed job) under the same rules.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.inner.retry
    }

    /// The last `api-usage=N/MAX` Salesforce reported.
    pub fn api_usage(&self) -> Option<ApiUsage> {
        *self.inner.usage.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The org's clock as its answers so far tell it: a read's "now" (see
    /// [`super::clock::OrgClock::now`]).
    pub fn org_clock(&self) -> &super::clock::OrgClock {
        &self.inner.clock
    }

    /// The org's "now" ([`super::clock::OrgClock::now`] of this machine's time): what a read's
    /// bounds and a plan's slices take.
    pub fn org_now(&self) -> chrono::DateTime<chrono::Utc> {
        self.inner.clock.now(chrono::Utc::now())
    }

    /// HTTP requests sent so far (retries and refresh-retries included; token calls excluded).
    pub fn request_count(&self) -> u64 {
        self.inner.requests.load(Ordering::SeqCst)
    }

    /// Sends a request and returns the 2xx response (body unread, so callers can stream it).
    /// See the module docs for refresh, retry and error handling.
    pub async fn send(&self, req: ApiRequest) -> Result<reqwest::Response, SalesforceError> {
        let url = checked_url("API URL", &req.url)?;
        let host = origin(&url);
        let mut attempts = self.inner.retry.attempts();
        let mut busy = self.inner.retry.busy_attempts();
        let mut refreshed = false;
        loop {
            let token = self.inner.tokens.token().await?;
            self.inner.requests.fetch_add(1, Ordering::SeqCst);
            tracing::debug!("{} {}{}", req.method, host, url.path());
            let response = match self.build(&req, &url, &token).send().await {
                Ok(r) => r,
                Err(e) => {
                    let detail = describe_reqwest_error(&e);
                    if req.idempotent && attempts.backoff(None).await {
                        tracing::warn!("{host}: {detail}; retried");
                        continue;
                    }
                    return Err(SalesforceError::Unreachable { host, detail });
                }
            };
            self.note_usage(response.headers());
            self.inner
                .clock
                .note(response.headers(), chrono::Utc::now());
            if response.status().is_success() {
                return Ok(response);
            }
            let answer = ErrorAnswer::read(response).await;
            if is_session_error(answer.status, &answer.code) {
                if !refreshed {
                    refreshed = true;
                    self.inner
                        .tokens
                        .refresh_after_rejection(token.generation)
                        .await?;
                    continue;
                }
                return Err(SalesforceError::SessionRejected {
                    code: answer.code,
                    message: answer.message,
                });
            }
            // Concurrency limits share the daily quota's code: they pass as the org's other
            // long requests and Bulk jobs end, and Salesforce did nothing with the refused
            // request, so any request may be sent again after a backoff, on a budget of its
            // own (`RetryPolicy::busy_attempts`).
            if answer.is_concurrency_limit() {
                if busy.backoff(answer.retry_after).await {
                    tracing::warn!(
                        "{host}: {}; waited for the org's other requests and Bulk jobs, retry {} of {}",
                        answer.message,
                        busy.made() - 1,
                        busy.budget() - 1
                    );
                    continue;
                }
                let attempts = busy.made();
                let message = answer.message;
                return Err(SalesforceError::ConcurrencyLimit { attempts, message });
            }
            if let Some(refused) = self.refusal(answer.status, &answer.code, &answer.message) {
                return Err(refused);
            }
            if answer.is_transient() && req.idempotent && attempts.backoff(answer.retry_after).await
            {
                tracing::warn!("{host}: {}; retried", answer.summary());
                continue;
            }
            return Err(answer.into_error());
        }
    }

    /// The error of an answer no retry can change: the daily quota used up, or no API access.
    fn refusal(&self, status: u16, code: &str, message: &str) -> Option<SalesforceError> {
        let message = message.to_string();
        match (status, code) {
            (403, "REQUEST_LIMIT_EXCEEDED") => Some(SalesforceError::RequestLimitExceeded {
                usage: self.api_usage(),
                message,
            }),
            (_, "API_DISABLED_FOR_ORG") => Some(SalesforceError::ApiDisabled { message }),
            _ => None,
        }
    }

    /// GETs a JSON document, retrying a body cut off midway like a connection error.
    pub async fn get_json<T: DeserializeOwned>(&self, url: &str) -> Result<T, SalesforceError> {
        self.request_json(ApiRequest::get(url)).await
    }

    /// POSTs a JSON body and decodes the JSON answer (not retried after transient failures:
    /// a POST may have created something).
    pub async fn post_json<B: Serialize, T: DeserializeOwned>(
        &self,
        url: &str,
        body: &B,
    ) -> Result<T, SalesforceError> {
        let value = serde_json::to_value(body).map_err(|e| SalesforceError::InvalidResponse {
            host: crate::transport::origin_of(url),
            detail: format!("the request body could not be encoded: {e}"),
        })?;
        self.request_json(ApiRequest::post_json(url, value)).await
    }

    /// Sends a request and decodes its JSON answer; an idempotent request whose body is cut
    /// off is sent again.
    pub async fn request_json<T: DeserializeOwned>(
        &self,
        req: ApiRequest,
    ) -> Result<T, SalesforceError> {
        let host = crate::transport::origin_of(&req.url);
        let mut attempts = self.inner.retry.attempts();
        loop {
            let response = self.send(req.clone()).await?;
            match response.bytes().await {
                Ok(bytes) => {
                    return serde_json::from_slice(&bytes).map_err(|e| {
                        SalesforceError::InvalidResponse {
                            host,
                            detail: format!("unexpected JSON: {e}"),
                        }
                    });
                }
                Err(e) if req.idempotent && attempts.backoff(None).await => {
                    tracing::warn!("{host}: {}; retried", describe_reqwest_error(&e));
                }
                Err(e) => {
                    return Err(SalesforceError::Unreachable {
                        host,
                        detail: describe_reqwest_error(&e),
                    });
                }
            }
        }
    }

    fn build(&self, req: &ApiRequest, url: &url::Url, token: &Token) -> reqwest::RequestBuilder {
        let http = if req.inflated_by_caller {
            &self.inner.raw_http
        } else {
            &self.inner.http
        };
        let mut rb = http
            .request(req.method.clone(), url.clone())
            .bearer_auth(token.access_token.expose())
            .header(reqwest::header::ACCEPT, "application/json");
        if req.inflated_by_caller && crate::transport::gzip_wanted() {
            rb = rb.header(reqwest::header::ACCEPT_ENCODING, "gzip");
        }
        for (name, value) in &req.headers {
            rb = rb.header(name.as_str(), value.as_str());
        }
        match &req.body {
            Some(ApiBody::Json(v)) => rb.json(v),
            Some(ApiBody::Text {
                content_type,
                bytes,
            }) => rb
                .header(reqwest::header::CONTENT_TYPE, content_type.as_str())
                .body(bytes.clone()),
            None => rb,
        }
    }

    fn note_usage(&self, headers: &reqwest::header::HeaderMap) {
        if let Some(usage) = headers
            .get("Sforce-Limit-Info")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_limit_info)
        {
            *self.inner.usage.lock().unwrap_or_else(|e| e.into_inner()) = Some(usage);
        }
    }
}

/// An error answer, read: its status, `Retry-After`, and Salesforce's code and message.
struct ErrorAnswer {
    status: u16,
    retry_after: Option<Duration>,
    code: String,
    message: String,
    /// The text of an HTML page answered instead of the API's JSON.
    page: Option<String>,
}

impl ErrorAnswer {
    /// A refusal over the concurrent-requests or long-transactions limit, which shares the
    /// daily quota's code.
    fn is_concurrency_limit(&self) -> bool {
        self.status == 403
            && self.code == "REQUEST_LIMIT_EXCEEDED"
            && is_concurrency_limit(&self.message)
    }

    /// Worth sending again: a server error or a momentary lock.
    fn is_transient(&self) -> bool {
        is_transient_status(self.status) || is_transient_code(&self.code)
    }

    /// The answer in a few words for a retry's warning (never a page's markup).
    fn summary(&self) -> String {
        match &self.page {
            Some(_) => format!("HTTP {}, a web page instead of an API answer", self.status),
            None => format!("HTTP {} {}", self.status, self.code),
        }
    }

    /// The error to return once no retry is left: a server error's web page named as such;
    /// any other answer (a web page's text included, such as the front end's 414) as an API
    /// error of its status, which callers act on.
    fn into_error(self) -> SalesforceError {
        match self.page {
            Some(text) if self.status >= 500 => SalesforceError::WebPage {
                status: self.status,
                text,
            },
            page => SalesforceError::Api {
                status: self.status,
                code: self.code,
                message: page.unwrap_or(self.message),
            },
        }
    }

    async fn read(response: reqwest::Response) -> ErrorAnswer {
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let gzipped = is_gzipped(response.headers());
        let html = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("text/html"));
        let mut body = response.bytes().await.unwrap_or_default();
        if gzipped {
            // Only requests inflated by the caller see a compressed body here.
            body = gunzip_small(&body).into();
        }
        let (code, message, page) = if html {
            (String::new(), String::new(), Some(page_text(&body)))
        } else {
            let (code, message) = parse_error_body(&body);
            (code, message, None)
        };
        ErrorAnswer {
            status,
            retry_after,
            code,
            message,
            page,
        }
    }
}

/// Whether a `REQUEST_LIMIT_EXCEEDED` message is about concurrent requests or long-running
/// transactions ("ConcurrentPerOrgLongTxn Limit exceeded", "ConcurrentRequests (Concurrent API
/// Requests) Limit exceeded") rather than the daily quota ("TotalRequests Limit exceeded").
pub fn is_concurrency_limit(message: &str) -> bool {
    message.contains("Concurrent")
}

/// A refused session: `401` (`INVALID_SESSION_ID`), or the identity URL's `403 Bad_OAuth_Token`.
fn is_session_error(status: u16, code: &str) -> bool {
    status == 401 || (status == 403 && code == "Bad_OAuth_Token")
}

/// Whether a response body is gzip-compressed (`Content-Encoding: gzip`).
pub fn is_gzipped(headers: &reqwest::header::HeaderMap) -> bool {
    headers
        .get(reqwest::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"))
}

/// Inflates a small gzip body (an error answer); what cannot be inflated is kept as it came.
fn gunzip_small(body: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    match flate2::read::MultiGzDecoder::new(body).read_to_end(&mut out) {
        Ok(_) => out,
        Err(_) => body.to_vec(),
    }
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}
