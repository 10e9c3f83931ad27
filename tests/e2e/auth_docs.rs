//! Runs every command of `docs/connect-salesforce.md` against the simulator, as an admin would
//! after creating the app: placeholders become the simulator's app and user, hosts (`--sandbox`,
//! `--domain`, `domain`) become the simulator's login URL, `sfetl login` gets `--no-browser` and
//! its consent page is clicked over HTTP, and "upload server.crt to the app" becomes "use the
//! key whose certificate the simulated app holds".

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;
use sfetl_sim::SimHandle;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::common::*;

const GUIDE: &str = include_str!("../../docs/connect-salesforce.md");

/// A fenced block: its info string (`sh`, `json NAME`) and body.
fn blocks(md: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in md.lines() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some(info)) => current = Some((info.trim().to_string(), String::new())),
            (Some(_), Some(_)) => out.push(current.take().unwrap()),
            (Some((_, body)), None) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    out
}

fn substitute(text: &str, sim: &SimHandle) -> String {
    text.replace("<CONSUMER_KEY>", &sim.credentials.client_id)
        .replace("<CONSUMER_SECRET>", &sim.credentials.client_secret)
        .replace("<REFRESH_TOKEN>", &sim.credentials.refresh_token)
        .replace("<USERNAME>", &sim.credentials.username)
}

/// The guide's JSON config with the simulator's hosts.
fn config_file(name: &str, body: &str, sim: &SimHandle) -> Value {
    let mut v: Value = serde_json::from_str(&substitute(body, sim)).expect("guide JSON parses");
    let obj = v.as_object_mut().unwrap();
    if obj.remove("domain").is_some() {
        // The My Domain host is the simulator's instance listener.
        obj.insert("login_url".into(), Value::String(sim.base_url.clone()));
    } else {
        obj.insert("login_url".into(), Value::String(sim.login_url.clone()));
    }
    assert!(!name.is_empty());
    v
}

/// Runs one `sfetl login` line of the guide to completion; returns the config it wrote.
async fn login(line: &str, sim: &SimHandle, dir: &Path, n: usize) -> PathBuf {
    let port = free_port();
    let redirect = format!("http://localhost:{port}/oauth/callback");
    assert!(
        sim.sim
            .oauth
            .add_redirect_uri(&sim.credentials.client_id, &redirect)
    );
    let out = dir.join(format!("login-{n}.json"));
    let mut args: Vec<String> = Vec::new();
    let mut words = substitute(line, sim)
        .split_whitespace()
        .skip(1)
        .map(str::to_string)
        .collect::<Vec<_>>()
        .into_iter();
    while let Some(w) = words.next() {
        match w.as_str() {
            "--sandbox" => {}
            "--domain" => {
                assert_eq!(words.next().as_deref(), Some("<MY_DOMAIN>"));
            }
            _ => args.push(w),
        }
    }
    for extra in [
        "--login-url",
        &sim.login_url,
        "--no-browser",
        "--port",
        &port.to_string(),
        "--out",
        out.to_str().unwrap(),
    ] {
        args.push(extra.to_string());
    }
    let mut child = sfetl()
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = loop {
        let l = lines
            .next_line()
            .await
            .unwrap()
            .expect("login prints the URL");
        if let Some(u) = l.trim().strip_prefix("http") {
            break format!("http{u}");
        }
    };
    let drain = tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let callback = consent_over_http(sim, &url, "allow").await;
    assert_eq!(deliver(&callback).await.0, 200);
    let result = child.wait_with_output().await.unwrap();
    drain.await.unwrap();
    assert!(result.status.success(), "{line}: {result:?}");
    assert!(
        String::from_utf8_lossy(&result.stdout)
            .starts_with("Connected org 00D5g000004SimAEAS as admin@sim.example.com")
    );
    out
}

#[tokio::test]
async fn every_command_of_the_admin_guide_runs_against_the_simulator() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let mut last_login: Option<PathBuf> = None;
    let mut ran = Vec::new();
    for (info, body) in blocks(GUIDE) {
        let mut words = info.split_whitespace();
        match (words.next(), words.next()) {
            (Some("json"), Some(name)) => {
                write_json(dir.path(), name, &config_file(name, &body, &sim));
            }
            (Some("sh"), None) => {
                for line in body.lines().filter(|l| !l.trim().is_empty()) {
                    if line.starts_with("sfetl login ") {
                        last_login = Some(login(line, &sim, dir.path(), ran.len()).await);
                    } else if let Some(file) = line.strip_prefix("sfetl check --config ") {
                        let path = match file {
                            "<CONFIG_FILE>" => last_login.clone().expect("a login ran before"),
                            f => dir.path().join(f),
                        };
                        let out = sfetl()
                            .args(["check", "--config", path.to_str().unwrap()])
                            .current_dir(dir.path())
                            .output()
                            .await
                            .unwrap();
                        let (status, message) = connection_status(&out);
                        assert_eq!(status, "SUCCEEDED", "{line}: {message}");
                        assert_no_secret(&out, &sim_secrets(&sim), &[]);
                    } else if line.starts_with("openssl ") {
                        let out = tokio::process::Command::new("sh")
                            .args(["-c", line])
                            .current_dir(dir.path())
                            .output()
                            .await
                            .unwrap();
                        assert!(out.status.success(), "{line}: {out:?}");
                        let key = std::fs::read_to_string(dir.path().join("server.key")).unwrap();
                        sfetl::auth::jwt::assertion(
                            "id",
                            "user",
                            "https://login.salesforce.com",
                            &sfetl::secret::Secret::new(key),
                            std::time::SystemTime::now(),
                        )
                        .expect("the guide's key signs JWTs");
                        assert!(dir.path().join("server.crt").exists());
                        // "Upload server.crt to the app": the simulated app holds the
                        // certificate of its test key, so use that key from here on.
                        std::fs::copy(
                            &sim.credentials.private_key_path,
                            dir.path().join("server.key"),
                        )
                        .unwrap();
                    } else {
                        panic!("the guide has a command this test does not know: {line}");
                    }
                    ran.push(line.to_string());
                }
            }
            other => panic!("unexpected code block {other:?}"),
        }
    }
    assert_eq!(ran.len(), 8, "{ran:?}");
}
