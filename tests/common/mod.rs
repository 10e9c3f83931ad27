//! Shared helpers of the tests: an in-process simulator, configs pointing at it, the sfetl
//! binary, HTTP calls to the simulator, and the no-secret-in-output check.

#![allow(dead_code)]

use reqwest::{Client, Response};
use serde_json::{Value, json};
use sfetl::config::Config;
use sfetl::salesforce::RetryPolicy;
use sfetl::sim::{SimHandle, SimOptions, Simulator};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;
/// Starts the simulator on loopback with a small org.
pub async fn start_sim() -> SimHandle {
    Simulator::start(SimOptions {
        scale: 2,
        ..SimOptions::default()
    })
    .await
    .expect("simulator starts")
}

/// Millisecond backoff for tests.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
    }
}

/// A refresh-token config (secret included) for the simulator's primary app.
pub fn refresh_config(sim: &SimHandle) -> Value {
    json!({
        "auth_type": "refresh_token",
        "client_id": sim.credentials.client_id,
        "client_secret": sim.credentials.client_secret,
        "refresh_token": sim.credentials.refresh_token,
        "login_url": sim.login_url,
        "api_version": "62.0",
    })
}

/// A client-credentials config: the token call goes to the instance (My Domain) host.
pub fn client_credentials_config(sim: &SimHandle) -> Value {
    json!({
        "auth_type": "client_credentials",
        "client_id": sim.credentials.client_id,
        "client_secret": sim.credentials.client_secret,
        "login_url": sim.base_url,
        "api_version": "62.0",
    })
}

/// A JWT bearer config with the simulator's test key.
pub fn jwt_config(sim: &SimHandle, username: &str) -> Value {
    json!({
        "auth_type": "jwt_bearer",
        "client_id": sim.credentials.client_id,
        "username": username,
        "private_key_path": sim.credentials.private_key_path,
        "login_url": sim.login_url,
        "api_version": "62.0",
    })
}

/// Parses a config value.
pub fn config(v: &Value) -> Config {
    Config::from_value(v.clone()).expect("valid config")
}

/// Writes a JSON file.
pub fn write_json(dir: &Path, name: &str, v: &Value) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    p
}

/// The sfetl binary under test.
pub fn sfetl() -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_sfetl"));
    c.env_remove("RUST_LOG").env_remove("SFETL_LOG");
    c.kill_on_drop(true);
    c
}

/// Runs the binary to completion (the simulator keeps serving on this test's runtime).
pub async fn run(args: &[&str]) -> Output {
    sfetl().args(args).output().await.expect("sfetl runs")
}

/// The stdout lines as JSON messages.
pub fn messages(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("stdout line is not JSON: {l}")))
        .collect()
}

/// The one CONNECTION_STATUS of a `check` run: (status, message).
pub fn connection_status(out: &Output) -> (String, String) {
    let msgs = messages(out);
    let statuses: Vec<&Value> = msgs
        .iter()
        .filter(|m| m["type"] == "CONNECTION_STATUS")
        .collect();
    assert_eq!(statuses.len(), 1, "one CONNECTION_STATUS in {msgs:?}");
    let s = &statuses[0]["connectionStatus"];
    (
        s["status"].as_str().unwrap().to_string(),
        s["message"].as_str().unwrap_or("").to_string(),
    )
}

/// Every credential the simulator handed out or the test knows about.
pub fn sim_secrets(sim: &SimHandle) -> Vec<String> {
    let mut v = vec![
        sim.credentials.client_secret.clone(),
        sim.credentials.refresh_token.clone(),
        sfetl::sim::oauth::SIM_PASSWORD.to_string(),
    ];
    if let Ok(key) = std::fs::read_to_string(&sim.credentials.private_key_path) {
        // A distinctive line of the key body.
        if let Some(line) = key.lines().nth(2) {
            v.push(line.to_string());
        }
    }
    v
}

/// Asserts that no secret appears in stdout or stderr. `allowed_in_stdout` lists secrets that
/// the protocol itself must carry on stdout (a CONTROL message with a rotated refresh token).
pub fn assert_no_secret(out: &Output, secrets: &[String], allowed_in_stdout: &[String]) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for s in secrets.iter().filter(|s| s.len() >= 6) {
        assert!(
            !stderr.contains(s.as_str()),
            "a secret leaked on stderr: {stderr}"
        );
        if !allowed_in_stdout.contains(s) {
            assert!(
                !stdout.contains(s.as_str()),
                "a secret leaked on stdout: {stdout}"
            );
        }
    }
}

/// Access tokens the simulator considers live (taken from its state endpoint count only).
pub async fn post(url: &str, body: Value) -> Value {
    reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .expect("control call")
        .json()
        .await
        .expect("control answer")
}

/// A shareable counter-and-values hook for rotations.
pub type Rotations = Arc<std::sync::Mutex<Vec<String>>>;

/// A running simulator plus an HTTP client holding a bearer token.
pub struct Org {
    /// A real access token of the simulator's primary app and user.
    pub token: String,
    pub sim: SimHandle,
    pub http: Client,
    pub raw: Client,
}

pub const V: &str = "v59.0";

impl Org {
    pub async fn start(scale: u64) -> Org {
        let opts = SimOptions {
            scale,
            seed: 7,
            ..SimOptions::default()
        };
        let sim = Simulator::start(opts).await.expect("simulator starts");
        let http = Client::builder().build().expect("client");
        let raw = Client::builder().no_gzip().build().expect("client");
        let token = sim
            .sim
            .oauth
            .issue_access_token(&sim.credentials.client_id, &sim.credentials.username)
            .expect("the primary app and user exist");
        Org {
            token,
            sim,
            http,
            raw,
        }
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
        let r = self
            .http
            .get(self.data("query"))
            .query(&[("q", soql)])
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("query");
        let s = r.status().as_u16();
        (s, r.json().await.expect("json"))
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
    pub async fn control(&self, path: &str, body: &Value) -> Value {
        let r = self
            .http
            .post(self.url(&format!("/__sim/{path}")))
            .json(body)
            .send()
            .await
            .expect("control");
        assert_eq!(r.status(), 200, "control {path}");
        r.json().await.expect("control json")
    }
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
