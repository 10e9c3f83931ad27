//! A simulator started in-process plus an HTTP client holding a bearer token: the helper of the
//! simulator's own tests, also compiled into the connector's end-to-end tests (by `#[path]`) so
//! both call the simulator the same way without a shared crate.
#![allow(dead_code)]

use reqwest::{Client, Response};
use serde_json::Value;
use sfetl_sim::{SimHandle, SimOptions, Simulator};

/// A running simulator plus an HTTP client holding a bearer token.
pub struct Org {
    pub sim: SimHandle,
    pub http: Client,
    pub raw: Client,
    /// An access token obtained with the printed refresh token (refresh_token grant).
    pub token: String,
}

pub const V: &str = "v59.0";

impl Org {
    pub async fn start(scale: u64) -> Org {
        Org::start_with(SimOptions {
            scale,
            seed: 7,
            ..SimOptions::default()
        })
        .await
    }

    /// A simulator started with `opts` (e.g. describes overridden from a `data_dir`).
    pub async fn start_with(opts: SimOptions) -> Org {
        let sim = Simulator::start(opts).await.expect("simulator starts");
        let http = Client::builder().build().expect("client");
        let raw = Client::builder().no_gzip().build().expect("client");
        let token = refresh_grant(&http, &sim).await;
        Org {
            sim,
            http,
            raw,
            token,
        }
    }
    /// A fresh access token from the printed refresh token (rotates it when rotation is on).
    pub async fn refresh(&self) -> String {
        refresh_grant(&self.http, &self.sim).await
    }
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.sim.base_url, path)
    }
    pub fn data(&self, path: &str) -> String {
        format!(
            "{}/services/data/{V}/{}",
            self.sim.base_url,
            path.trim_start_matches('/')
        )
    }
    pub async fn get(&self, path: &str) -> Response {
        self.http
            .get(self.data(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("GET")
    }
    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let r = self.get(path).await;
        let s = r.status().as_u16();
        (s, r.json().await.expect("json body"))
    }
    pub async fn query(&self, soql: &str) -> (u16, Value) {
        let (s, body) = self.query_text(soql).await;
        (s, serde_json::from_str(&body).expect("json"))
    }
    /// A REST queryAll's status and body (deleted and archived rows included).
    pub async fn query_all(&self, soql: &str) -> (u16, Value) {
        let (s, body) = self.query_at("queryAll", soql).await;
        (s, serde_json::from_str(&body).expect("json"))
    }
    /// A REST query's status and body as sent (to check the order of keys).
    pub async fn query_text(&self, soql: &str) -> (u16, String) {
        self.query_at("query", soql).await
    }
    async fn query_at(&self, endpoint: &str, soql: &str) -> (u16, String) {
        let r = self
            .http
            .get(self.data(endpoint))
            .query(&[("q", soql)])
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("query");
        let s = r.status().as_u16();
        (s, r.text().await.expect("body"))
    }
    pub async fn send_json(&self, method: reqwest::Method, path: &str, body: &Value) -> Response {
        self.http
            .request(method, self.data(path))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .expect("send")
    }
    /// A request to `path` on the instance (any API version), with the token and `body` as JSON.
    pub async fn send_at(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Response {
        let mut req = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(body);
        }
        req.send().await.expect("send")
    }
    /// The simulator's request counts (`/__sim/stats`).
    pub async fn stats(&self) -> Value {
        self.http
            .get(self.url("/__sim/stats"))
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("stats json")
    }

    /// A GET on the instance host outside `/services/data` (e.g. `/__sim/limits`), as JSON.
    pub async fn get_json_url(&self, path: &str) -> Value {
        let r = self.http.get(self.url(path)).send().await.expect("GET");
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.expect("json")
    }

    /// The SOQL of the REST queries since the last stats reset (`GET /__sim/queries`) that
    /// start with `prefix`, oldest first.
    pub async fn soql_log(&self, prefix: &str) -> Vec<String> {
        let log = self.get_json_url("/__sim/queries").await;
        log["queries"]
            .as_array()
            .expect("a list of queries")
            .iter()
            .filter_map(Value::as_str)
            .filter(|q| q.starts_with(prefix))
            .map(str::to_string)
            .collect()
    }

    pub async fn control(&self, path: &str, body: &Value) -> Value {
        let (status, v) = self.control_status(path, body).await;
        assert_eq!(status, 200, "control {path}: {v}");
        v
    }
    /// Waits until the org's clock has left the second of its last change
    /// (`/__sim/next_second`): stamps are whole seconds, so a read bounded by "now" sees a
    /// change only from the next second on. Returns how long the simulator waited (ms).
    pub async fn next_second(&self) -> i64 {
        self.control("next_second", &Value::Null).await["waited_ms"]
            .as_i64()
            .expect("waited_ms")
    }
    /// A test control call's status and JSON answer, refusals included.
    pub async fn control_status(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(&format!("/__sim/{path}")))
            .json(body)
            .send()
            .await
            .expect("control");
        let status = r.status().as_u16();
        (status, r.json().await.expect("control json"))
    }
}

/// `grant_type=refresh_token` on the login host with the credentials the simulator printed.
pub async fn refresh_grant(http: &Client, sim: &SimHandle) -> String {
    let c = &sim.credentials;
    let r = http
        .post(format!("{}/services/oauth2/token", sim.login_url))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", c.refresh_token.as_str()),
            ("client_id", c.client_id.as_str()),
            ("client_secret", c.client_secret.as_str()),
        ])
        .send()
        .await
        .expect("token request");
    assert_eq!(r.status(), 200, "refresh_token grant");
    let v: Value = r.json().await.expect("token json");
    v["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// The text of `key` in each object of the array `list` (`v["records"]`, `v["deletedRecords"]`).
pub fn values_of<C: FromIterator<String>>(list: &Value, key: &str) -> C {
    list.as_array()
        .unwrap_or_else(|| panic!("an array expected, got {list}"))
        .iter()
        .map(|r| {
            r[key]
                .as_str()
                .unwrap_or_else(|| panic!("no {key} in {r}"))
                .to_string()
        })
        .collect()
}

/// Asserts the body is Salesforce's error array with this code, returns the message.
pub fn error_code(v: &Value, code: &str) -> String {
    let arr = v
        .as_array()
        .unwrap_or_else(|| panic!("error array expected, got {v}"));
    assert_eq!(arr.len(), 1, "{v}");
    assert_eq!(arr[0]["errorCode"], code, "{v}");
    arr[0]["message"].as_str().expect("message").to_string()
}

/// `start=...&end=...` of the `deleted` / `updated` endpoints from an hour ago to two minutes
/// ahead (URL-encoded offsets): the span of what a test just did.
pub fn recent_range() -> String {
    let now = chrono::Utc::now();
    let fmt = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%S%%2B00:00").to_string();
    format!(
        "start={}&end={}",
        fmt(now - chrono::Duration::hours(1)),
        fmt(now + chrono::Duration::minutes(2))
    )
}
