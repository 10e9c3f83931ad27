//! The simulator's HTTP server: shared state, the request gate (stats, faults, bearer check,
//! API quota, `Sforce-Limit-Info`), the two listeners (instance and login host) and the
//! in-process handle tests use.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::SimOptions;
use super::bulk::Jobs;
use super::describe::Catalog;
use super::faults::{Faults, default_error};
use super::limits::{CONCURRENT_LONG_TXN, CONCURRENT_REQUESTS, InFlight, Limits, TOTAL_REQUESTS};
use super::oauth::{HostKind, OAuth, OAuthConfig};
use super::rest::Cursor;
use super::store::Store;

/// Default daily API quota (DailyApiRequests Max).
pub const DEFAULT_QUOTA: u64 = 15_000;

/// Everything the handlers share.
pub struct Sim {
    /// The org's data.
    pub store: RwLock<Store>,
    /// The OAuth server (tokens, bearer checks).
    pub oauth: Arc<OAuth>,
    /// Request counts by kind.
    pub stats: Mutex<BTreeMap<String, u64>>,
    /// The SOQL of the REST queries since the last stats reset, the newest
    /// [`SOQL_LOG_LEN`] (`GET /__sim/queries`: tests check which queries a step sends).
    pub soql_log: Mutex<VecDeque<String>>,
    /// API calls used today.
    pub api_used: AtomicU64,
    /// Daily API quota.
    pub api_max: AtomicU64,
    /// Longest request URI plus headers accepted, in bytes (Salesforce: 16,384); longer
    /// requests answer 414 (the URI alone) or 431 (with the headers).
    pub uri_limit: AtomicU64,
    /// Injected faults.
    pub faults: Mutex<Faults>,
    /// The org's limits and harshness knobs (`/__sim/limits`).
    pub limits: Mutex<Limits>,
    /// Data requests being served (the concurrent-requests limit).
    pub in_flight: InFlight,
    /// REST query cursors by locator.
    pub cursors: Mutex<BTreeMap<String, Cursor>>,
    /// Bulk API 2.0 jobs.
    pub jobs: Jobs,
    /// Last timestamp handed out (keeps `now_ms()` from going back).
    pub last_stamp: AtomicI64,
    /// Counter for locators and job ids.
    pub seq: AtomicU64,
    /// The instance base URL (`http://127.0.0.1:PORT`).
    pub base_url: String,
}

impl Sim {
    /// "Now" for a record's timestamps, in epoch milliseconds: the org's clock cut to the whole
    /// second, as Salesforce stores datetimes (changes made within one second share their
    /// `SystemModstamp`), and never earlier than a stamp already handed out.
    pub fn now_ms(&self) -> i64 {
        let wall = super::wire::whole_second(self.org_time_ms());
        self.last_stamp.fetch_max(wall, Ordering::SeqCst).max(wall)
    }

    /// The org's clock in epoch milliseconds ([`crate::clock`]): record timestamps
    /// ([`Sim::now_ms`]) and every answer's `Date` header follow it.
    pub fn org_time_ms(&self) -> i64 {
        self.oauth.clock.now_ms()
    }

    /// Counts one request of a kind.
    pub fn count(&self, kind: &str) {
        let mut s = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        *s.entry(kind.to_string()).or_insert(0) += 1;
    }

    /// Logs the SOQL of one REST query, dropping the oldest past [`SOQL_LOG_LEN`].
    pub fn log_soql(&self, soql: &str) {
        let mut log = self.soql_log.lock().unwrap_or_else(|e| e.into_inner());
        if log.len() == SOQL_LOG_LEN {
            log.pop_front();
        }
        log.push_back(soql.to_string());
    }

    /// A fresh sequence number.
    pub fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// A copy of the current limits.
    pub fn limits(&self) -> Limits {
        self.limits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Runs `f` on the limits (to update counters).
    pub fn with_limits<T>(&self, f: impl FnOnce(&mut Limits) -> T) -> T {
        f(&mut self.limits.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// REST queries the SOQL log keeps: enough for a test's steps, bounded for a long-running
/// `sfetl simulate`.
pub const SOQL_LOG_LEN: usize = 1000;

/// A Salesforce error response: `[{"message","errorCode"}]`.
pub fn sf_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!([{ "message": message, "errorCode": code }]);
    (
        status,
        [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
        body.to_string(),
    )
        .into_response()
}

/// A JSON response with Salesforce's content type.
pub fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
        body,
    )
        .into_response()
}

/// The HTML page an instance answers, for any URL, while it is down for maintenance (or
/// a CDN answers for it): `text/html`, no JSON, no `Retry-After`. The markup follows the
/// pages quoted in client issues (restforce#860, forcedotcom/cli#2487); the wording is the
/// simulator's own.
fn maintenance_page(status: u16) -> Response {
    let body = "<html>\n<head><title>Salesforce maintenance</title>\n<style>td { font-family: Verdana; }</style></head>\n<body>\n<center>\n\t<table bgcolor=\"white\" cellpadding=\"0\" cellspacing=\"0\" width=\"758\">\n\t\t<tbody>\n\t\t<tr>\n\t\t\t<td><span style=\"font-weight: bold;\">This instance is down for scheduled maintenance.</span><br><br>It will be back shortly&nbsp;&ndash; try again in a few minutes.</td><br>\n\t\t</tr>\n\t\t</tbody>\n\t</table>\n</center>\n</body>\n</html>\n";
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html;charset=UTF-8"),
    );
    resp
}

/// The request kind used by stats and faults, from the path.
pub fn kind_of(method: &axum::http::Method, path: &str) -> &'static str {
    if path.starts_with("/services/oauth2/token") {
        return "token";
    }
    if path.starts_with("/services/oauth2/") {
        return "oauth";
    }
    if path.starts_with("/id/") {
        return "identity";
    }
    let rest = path
        .strip_prefix("/services/data")
        .unwrap_or(path)
        .trim_matches('/');
    let mut parts = rest.split('/');
    let _version = parts.next();
    match (parts.next().unwrap_or(""), parts.next()) {
        ("", _) => "versions",
        ("sobjects", None) => "describe",
        ("sobjects", Some(_)) if path.trim_end_matches('/').ends_with("/describe") => "describe",
        ("sobjects", Some(_)) => {
            if path.contains("/deleted") || path.contains("/updated") {
                "sync"
            } else if *method == axum::http::Method::GET {
                "retrieve"
            } else {
                "sobject_write"
            }
        }
        ("query" | "queryAll", _) => "query",
        ("limits", _) => "limits",
        ("composite", _) => "collections",
        ("jobs", Some("query")) => "bulk_query",
        ("jobs", Some("ingest")) => "bulk_ingest",
        _ => "other",
    }
}

/// Salesforce's limit on a request's URI plus headers, in bytes.
pub const URI_LIMIT: u64 = 16_384;

/// 414 when the URI alone is over the limit, 431 when URI and headers together are.
fn too_long(req: &Request, limit: u64) -> Option<Response> {
    let uri = req.uri().path_and_query().map_or(0, |p| p.as_str().len()) as u64;
    let headers: u64 = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().len() + v.len() + 4) as u64)
        .sum();
    let (status, text) = if uri > limit {
        (StatusCode::URI_TOO_LONG, "URI Too Long")
    } else if uri + headers > limit {
        (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "Request Header Fields Too Large",
        )
    } else {
        return None;
    };
    Some(
        (
            status,
            [(header::CONTENT_TYPE, "text/html")],
            format!(
                "<html><body><h1>{} {text}</h1></body></html>",
                status.as_u16()
            ),
        )
            .into_response(),
    )
}

/// Every answer's `Date` header, by the org's clock (hyper would write the machine's): an HTTP
/// date, to the second, as RFC 9110 §6.6.1 has origin servers send and Salesforce's
/// documented answers show.
async fn org_date(State(sim): State<Arc<Sim>>, req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let at = chrono::DateTime::from_timestamp_millis(sim.org_time_ms()).unwrap_or_default();
    let text = at.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    if let Ok(value) = header::HeaderValue::from_str(&text) {
        resp.headers_mut().insert(header::DATE, value);
    }
    resp
}

async fn gate(State(sim): State<Arc<Sim>>, req: Request, next: Next) -> Response {
    if let Some(resp) = too_long(&req, sim.uri_limit.load(Ordering::SeqCst)) {
        return resp;
    }
    let path = req.uri().path().to_string();
    let kind = kind_of(req.method(), &path);
    let is_data = path.starts_with("/services/data");
    let is_versions = kind == "versions";
    let wants_gzip = req
        .headers()
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    sim.count(kind);
    let (latency, failure, cut) = {
        let mut f = sim.faults.lock().unwrap_or_else(|e| e.into_inner());
        let failure = f.take_failure(kind);
        let cut = failure.is_none() && f.take_cut(kind);
        (f.latency(kind), failure, cut)
    };
    let mut slot = None;
    if let Some(spec) = failure.as_ref().filter(|s| s.maintenance_page) {
        return maintenance_page(spec.status);
    }
    if let Some(spec) = failure {
        let (code, msg) = default_error(spec.status);
        let code = if spec.error_code.is_empty() {
            code.to_string()
        } else {
            spec.error_code.clone()
        };
        let msg = match (code.as_str(), spec.status) {
            ("UNABLE_TO_LOCK_ROW", _) => "unable to obtain exclusive access to this record",
            ("REQUEST_LIMIT_EXCEEDED", 403) => TOTAL_REQUESTS,
            _ => msg,
        };
        let msg = spec.message.as_deref().unwrap_or(msg);
        let status = StatusCode::from_u16(spec.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = sf_error(status, &code, msg);
        if spec.status == 429 || spec.status == 503 {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        return resp;
    }
    if is_data && !is_versions {
        let auth = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if let Err(resp) = sim.oauth.check_bearer(auth) {
            return resp;
        }
        let max = sim.api_max.load(Ordering::SeqCst);
        let used = sim.api_used.load(Ordering::SeqCst);
        let limit_exceeded = |message: &str| {
            let mut resp = sf_error(StatusCode::FORBIDDEN, "REQUEST_LIMIT_EXCEEDED", message);
            add_limit_info(&mut resp, used, max);
            resp
        };
        if used >= max {
            return limit_exceeded(TOTAL_REQUESTS);
        }
        match admit(&sim, req.method(), &path) {
            Ok(s) => slot = Some(s),
            Err(message) => return limit_exceeded(message),
        }
        sim.api_used.fetch_add(1, Ordering::SeqCst);
    }
    // A slow request holds its place among the concurrent ones while it is slow.
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let mut resp = next.run(req).await;
    if is_data && !is_versions {
        add_limit_info(
            &mut resp,
            sim.api_used.load(Ordering::SeqCst),
            sim.api_max.load(Ordering::SeqCst),
        );
    }
    if cut {
        resp = cut_body(resp).await;
    } else if wants_gzip && is_data {
        resp = gzip_json(resp).await;
    }
    if let Some(slot) = slot
        && axum::body::HttpBody::size_hint(resp.body())
            .exact()
            .is_none()
    {
        // A streamed body (Bulk results) is a request still running until its last byte.
        let (parts, body) = resp.into_parts();
        let stream = futures::StreamExt::map(body.into_data_stream(), move |chunk| {
            let _held = &slot;
            chunk
        });
        resp = Response::from_parts(parts, Body::from_stream(stream));
    }
    resp
}

/// Admits a data request under the org's concurrency limits: a slot among the concurrent
/// requests, and for a request that starts a long transaction (a Bulk job, a REST query) room
/// among the running ones. The error is Salesforce's message.
fn admit(
    sim: &Sim,
    method: &axum::http::Method,
    path: &str,
) -> Result<super::limits::Slot, &'static str> {
    let long = starts_long_txn(method, path);
    let running = if long { sim.jobs.running() as u32 } else { 0 };
    let mut l = sim.limits.lock().unwrap_or_else(|e| e.into_inner());
    if l.requests_spike > 0 {
        l.requests_spike -= 1;
        return Err(CONCURRENT_REQUESTS);
    }
    let slot = sim
        .in_flight
        .try_enter(l.concurrent_requests, l.busy_requests)
        .ok_or(CONCURRENT_REQUESTS)?;
    if long {
        if l.long_txn_spike > 0 {
            l.long_txn_spike -= 1;
            return Err(CONCURRENT_LONG_TXN);
        }
        if running.saturating_add(l.busy_long_txn) >= l.long_txn {
            return Err(CONCURRENT_LONG_TXN);
        }
    }
    Ok(slot)
}

/// Whether a request starts a long transaction: creating a Bulk job, or running a REST query
/// (not fetching the next page of one).
fn starts_long_txn(method: &axum::http::Method, path: &str) -> bool {
    let p = path.trim_end_matches('/');
    let Some(rest) = p.strip_prefix("/services/data/") else {
        return false;
    };
    let mut parts = rest.split('/').skip(1);
    match (parts.next(), parts.next(), parts.next()) {
        (Some("jobs"), Some("query" | "ingest"), None) => method == axum::http::Method::POST,
        (Some("query" | "queryAll"), None, None) => method == axum::http::Method::GET,
        _ => false,
    }
}

/// Compresses a JSON answer when the client accepts gzip, as Salesforce does (CSV results
/// stream their own gzip).
async fn gzip_json(resp: Response) -> Response {
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json || resp.headers().contains_key(header::CONTENT_ENCODING) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    use std::io::Write as _;
    let compressed = match gz.write_all(&bytes).and_then(|_| gz.finish()) {
        Ok(c) => c,
        Err(_) => return Response::from_parts(parts, Body::from(bytes)),
    };
    parts
        .headers
        .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(compressed))
}

/// Salesforce's answer to a path it does not serve.
async fn unknown_resource() -> Response {
    sf_error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "The requested resource does not exist",
    )
}

/// Salesforce's answer to a method a resource does not support.
async fn method_not_allowed(req: Request) -> Response {
    let msg = format!("HTTP Method '{}' not allowed.", req.method());
    sf_error(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", &msg)
}

fn add_limit_info(resp: &mut Response, used: u64, max: u64) {
    if let Ok(v) = HeaderValue::from_str(&format!("api-usage={used}/{max}")) {
        resp.headers_mut().insert("Sforce-Limit-Info", v);
    }
}

/// Sends the first half of a body under the full Content-Length, then breaks the connection.
async fn cut_body(resp: Response) -> Response {
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let half = bytes.slice(..bytes.len() / 2);
    parts.headers.remove(header::CONTENT_ENCODING);
    parts.headers.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(bytes.len().max(2)),
    );
    let stream = futures::stream::iter(vec![
        Ok::<Bytes, std::io::Error>(half),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "simulated cut",
        )),
    ]);
    Response::from_parts(parts, Body::from_stream(stream))
}

/// Credentials of the pre-approved connected app, as printed on the first stdout line.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Credentials {
    /// Instance URL (where data calls go).
    pub base_url: String,
    /// Login host URL (token endpoint host).
    pub login_url: String,
    /// Consumer key.
    pub client_id: String,
    /// Consumer secret.
    pub client_secret: String,
    /// A refresh token already granted to the app.
    pub refresh_token: String,
    /// The org user's username.
    pub username: String,
    /// PEM private key matching the app's certificate (JWT bearer flow).
    pub private_key_path: String,
}

/// A running simulator (in-process). Dropping it shuts both listeners down.
pub struct SimHandle {
    /// Instance base URL, e.g. `http://127.0.0.1:40123`.
    pub base_url: String,
    /// Login host base URL.
    pub login_url: String,
    /// The connected app's credentials.
    pub credentials: Credentials,
    /// Shared state, for tests that want to look inside.
    pub sim: Arc<Sim>,
    shutdown: Option<tokio::sync::watch::Sender<bool>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    key_dir: Option<std::path::PathBuf>,
}

impl SimHandle {
    /// Stops the listeners and waits for them to finish.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(true);
        }
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(true);
        }
        for t in &self.tasks {
            t.abort();
        }
        // The private key file handed out in the credentials lives as long as the server.
        if let Some(dir) = self.key_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Entry point for in-process use.
pub struct Simulator;

impl Simulator {
    /// Loads fixtures, generates data, binds both listeners and starts serving.
    pub async fn start(opts: SimOptions) -> Result<SimHandle, super::SimError> {
        let mut catalog = Catalog::load(opts.data_dir.as_deref())?;
        catalog.add_extra_objects(opts.extra_objects);
        let mut store = Store::new(catalog);
        super::generate::generate(&mut store, opts.scale, opts.seed);
        let instance = tokio::net::TcpListener::bind(opts.listen)
            .await
            .map_err(super::SimError::Bind)?;
        let iaddr = instance.local_addr().map_err(super::SimError::Bind)?;
        let login = tokio::net::TcpListener::bind(SocketAddr::new(iaddr.ip(), 0))
            .await
            .map_err(super::SimError::Bind)?;
        let laddr = login.local_addr().map_err(super::SimError::Bind)?;
        let base_url = format!("http://{iaddr}");
        let login_url = format!("http://{laddr}");
        let key_dir =
            std::env::temp_dir().join(format!("sfetl-sim-{}-{}", std::process::id(), iaddr.port()));
        std::fs::create_dir_all(&key_dir).map_err(super::SimError::Bind)?;
        let key_path = key_dir.join("server.key");
        std::fs::write(&key_path, super::keys::PRIVATE_KEY_PEM).map_err(super::SimError::Bind)?;
        let oauth = OAuth::new(OAuthConfig {
            client_id: "3MVG9sim.connected.app.consumer.key".into(),
            client_secret: "SIMSECRET0123456789".into(),
            // `sfetl login`'s default callback, and the one Salesforce's own tools use.
            redirect_uris: vec![
                "http://localhost:1717/oauth/callback".into(),
                "http://127.0.0.1:1717/oauth/callback".into(),
                "http://localhost:1717/OauthRedirect".into(),
                "http://127.0.0.1:1717/OauthRedirect".into(),
            ],
            rotate_refresh_tokens: false,
            access_token_ttl: Duration::from_secs(7200),
            username: "admin@sim.example.com".into(),
            org_id: "00D5g000004SimAEAS".into(),
            user_id: store.id_of(super::store::pack(4, 0)),
            initial_refresh_token: "5Aep861sim.refresh.token.0001".into(),
            jwt_certificate_pem: super::keys::CERTIFICATE_PEM.into(),
            login_base_url: login_url.clone(),
            instance_base_url: base_url.clone(),
        });
        // One org clock for the records, the answers' `Date` and the token endpoint.
        store.org_clock = oauth.clock.clone();
        let credentials = Credentials {
            base_url: base_url.clone(),
            login_url: login_url.clone(),
            client_id: oauth.config.client_id.clone(),
            client_secret: oauth.config.client_secret.clone(),
            refresh_token: oauth.config.initial_refresh_token.clone(),
            username: oauth.config.username.clone(),
            private_key_path: key_path.display().to_string(),
        };
        let sim = Arc::new(Sim {
            store: RwLock::new(store),
            oauth: oauth.clone(),
            stats: Mutex::default(),
            soql_log: Mutex::default(),
            api_used: AtomicU64::new(0),
            api_max: AtomicU64::new(DEFAULT_QUOTA),
            uri_limit: AtomicU64::new(URI_LIMIT),
            faults: Mutex::default(),
            limits: Mutex::new(Limits {
                bulk_queue_ms: opts.bulk_queue_ms,
                bulk_rows_per_second: opts.bulk_rows_per_second,
                ..Limits::default()
            }),
            in_flight: InFlight::default(),
            cursors: Mutex::default(),
            jobs: Jobs::default(),
            last_stamp: AtomicI64::new(0),
            seq: AtomicU64::new(0),
            base_url: base_url.clone(),
        });
        let instance_app = Router::new()
            .merge(super::rest::routes().with_state(sim.clone()))
            .merge(super::bulk::routes().with_state(sim.clone()))
            .merge(oauth.routes(HostKind::Instance))
            .fallback(unknown_resource)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(middleware::from_fn_with_state(sim.clone(), gate))
            .merge(super::control::routes().with_state(sim.clone()))
            .merge(super::changes::routes().with_state(sim.clone()))
            .nest("/__sim/oauth", oauth.control_routes())
            .layer(middleware::from_fn_with_state(sim.clone(), org_date));
        let login_app = Router::new()
            .merge(oauth.routes(HostKind::Login))
            .layer(middleware::from_fn_with_state(sim.clone(), gate))
            .layer(middleware::from_fn_with_state(sim.clone(), org_date));
        let (tx, rx) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        for (listener, app) in [(instance, instance_app), (login, login_app)] {
            let mut rx = rx.clone();
            tasks.push(tokio::spawn(async move {
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = rx.wait_for(|v| *v).await;
                    })
                    .await;
            }));
        }
        Ok(SimHandle {
            base_url,
            login_url,
            credentials,
            sim,
            shutdown: Some(tx),
            tasks,
            key_dir: Some(key_dir),
        })
    }
}
