//! Helpers of the `auth_*` tests: an in-process simulator, configs pointing at it, reading
//! the binary's messages, and the no-secret-in-output check.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sfetl::config::Config;
use sfetl::salesforce::RetryPolicy;
use sfetl_sim::oauth::SIM_PASSWORD;
use sfetl_sim::{SimHandle, SimOptions, Simulator};

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
        busy_attempts: 10,
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
        sfetl_sim::oauth::SIM_PASSWORD.to_string(),
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

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A client that does not follow redirects, to see each hop.
pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Opens the consent page like a browser and submits it; returns the callback URL Salesforce
/// redirects to.
pub async fn consent_over_http(sim: &SimHandle, authorize_url: &str, decision: &str) -> String {
    let http = no_redirects();
    let page = http.get(authorize_url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("<form id=\"consent\""), "{html}");
    let marker = "name=\"request_id\" value=\"";
    let start = html.find(marker).unwrap() + marker.len();
    let request_id = &html[start..start + html[start..].find('"').unwrap()];
    let answer = http
        .post(format!("{}/services/oauth2/authorize", sim.login_url))
        .form(&[
            ("request_id", request_id),
            ("username", sim.credentials.username.as_str()),
            ("password", SIM_PASSWORD),
            ("decision", decision),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 302);
    answer.headers()["location"].to_str().unwrap().to_string()
}

/// Follows the redirect to sfetl's loopback callback; returns the status and page.
pub async fn deliver(callback: &str) -> (u16, String) {
    let r = no_redirects().get(callback).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}
