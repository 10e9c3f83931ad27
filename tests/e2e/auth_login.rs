//! `sfetl login` end to end against the in-process simulator: the consent page driven by a
//! plain HTTP client and by headless Chromium, PKCE without a secret and the code flow with
//! one, Deny, a forged callback, the timeout, and the Callback URL mismatch advice.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use serde_json::{Value, json};
use sfetl::auth::oauth::{self, AppCredentials, Endpoints};
use sfetl::auth::{Grant, RequestContext};
use sfetl::secret::Secret;
use sfetl_sim::SimHandle;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

use crate::common::*;

/// A running `sfetl login` and the authorize URL it printed.
struct Login {
    child: Child,
    url: String,
    stderr_head: String,
    rest: tokio::task::JoinHandle<String>,
    port: u16,
    out: PathBuf,
}

/// Registers the callback URL for a free port and starts `sfetl login`, reading stderr until
/// the authorize URL is printed.
async fn start_login(sim: &SimHandle, dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Login {
    let port = free_port();
    let redirect = format!("http://localhost:{port}/oauth/callback");
    assert!(
        sim.sim
            .oauth
            .add_redirect_uri(&sim.credentials.client_id, &redirect)
    );
    let out = dir.join("sfetl-config.json");
    let port_text = port.to_string();
    let mut args = vec![
        "login",
        "--client-id",
        &sim.credentials.client_id,
        "--login-url",
        &sim.login_url,
        "--port",
        &port_text,
        "--no-browser",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let mut cmd = sfetl();
    cmd.args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut head = String::new();
    let url = loop {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("login prints the URL");
        head.push_str(&line);
        head.push('\n');
        if let Some(u) = line.trim().strip_prefix("http") {
            break format!("http{u}");
        }
    };
    // Keep draining stderr into the head so the child never blocks; collect the rest at exit.
    let rest = tokio::spawn(async move {
        let mut rest = String::new();
        while let Ok(Some(l)) = lines.next_line().await {
            rest.push_str(&l);
            rest.push('\n');
        }
        rest
    });
    Login {
        child,
        url,
        stderr_head: head,
        rest,
        port,
        out,
    }
}

/// Waits for the login to exit; returns its output with the whole stderr.
async fn finish(login: Login) -> Output {
    let mut out = login.child.wait_with_output().await.unwrap();
    let rest = login.rest.await.unwrap();
    out.stderr = format!("{}{}", login.stderr_head, rest).into_bytes();
    out
}

fn assert_login_succeeded(sim: &SimHandle, out: &Output, path: &Path) -> Value {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "login failed: {stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "Connected org 00D5g000004SimAEAS as admin@sim.example.com (instance {}); config written to {}\n",
            sim.base_url,
            path.display()
        )
    );
    assert!(sfetl::commands::login::is_private(path), "mode 0600");
    let saved: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let mut secrets = sim_secrets(sim);
    secrets.push(saved["refresh_token"].as_str().unwrap().to_string());
    assert_no_secret(out, &secrets, &[]);
    saved
}

async fn check_succeeds(sim: &SimHandle, path: &Path) {
    let out = run(&["check", "--config", path.to_str().unwrap()]).await;
    let (status, message) = connection_status(&out);
    assert_eq!(status, "SUCCEEDED", "{message}");
    assert!(message.starts_with("Connected to org 00D5g000004SimAEAS as admin@sim.example.com"));
    let saved: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let mut secrets = sim_secrets(sim);
    secrets.push(saved["refresh_token"].as_str().unwrap().to_string());
    assert_no_secret(&out, &secrets, &[]);
}

#[tokio::test]
async fn pkce_login_without_secret_then_check() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let login = start_login(&sim, dir.path(), &[], &[]).await;
    let url = url::Url::parse(&login.url).unwrap();
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    assert_eq!(
        q["redirect_uri"],
        format!("http://localhost:{}/oauth/callback", login.port)
    );
    assert_eq!(q["scope"], "api refresh_token offline_access");
    assert!(!q.contains_key("client_secret") && !q.contains_key("code_verifier"));
    let callback = consent_over_http(&sim, &login.url, "allow").await;
    let (status, page) = deliver(&callback).await;
    assert_eq!(status, 200);
    assert!(page.contains("sfetl received the authorization"));
    let path = login.out.clone();
    let out = finish(login).await;
    let saved = assert_login_succeeded(&sim, &out, &path);
    assert_eq!(
        saved,
        json!({
            "auth_type": "refresh_token",
            "client_id": sim.credentials.client_id,
            "refresh_token": saved["refresh_token"],
            "is_sandbox": false,
            "login_url": sim.login_url,
            "written_by": "sfetl login",
        })
    );
    check_succeeds(&sim, &path).await;
}

#[tokio::test]
async fn authorization_code_with_secret_then_rotation_rewrites_the_file() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let secret = sim.credentials.client_secret.clone();
    let login = start_login(&sim, dir.path(), &[], &[("SFETL_CLIENT_SECRET", &secret)]).await;
    let callback = consent_over_http(&sim, &login.url, "allow").await;
    assert_eq!(deliver(&callback).await.0, 200);
    let path = login.out.clone();
    let out = finish(login).await;
    let saved = assert_login_succeeded(&sim, &out, &path);
    assert_eq!(saved["client_secret"], json!(secret));
    // With rotation on, check announces the new token and rewrites the login file (0600).
    sim.sim.oauth.set_rotation(true);
    let out = run(&["check", "--config", path.to_str().unwrap()]).await;
    let msgs = messages(&out);
    assert_eq!(msgs[0]["type"], "CONTROL");
    let rewritten: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(rewritten, msgs[0]["control"]["connectorConfig"]["config"]);
    assert_ne!(rewritten["refresh_token"], saved["refresh_token"]);
    assert!(sfetl::commands::login::is_private(&path));
    // Credentials appear only inside the CONTROL message's config, never on stderr.
    let carried = vec![
        secret.clone(),
        rewritten["refresh_token"].as_str().unwrap().to_string(),
    ];
    let mut secrets = sim_secrets(&sim);
    secrets.extend(carried.iter().cloned());
    secrets.push(saved["refresh_token"].as_str().unwrap().to_string());
    assert_no_secret(&out, &secrets, &carried);
    sim.sim.oauth.set_rotation(false);
    check_succeeds(&sim, &path).await;
}

#[tokio::test]
async fn pkce_login_in_headless_chromium() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let login = start_login(&sim, dir.path(), &[], &[]).await;
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            std::process::Command::new("which")
                .arg(c)
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("chromium is installed (.ci/run installs Debian's chromium package)");
    let script = format!(
        "{}/tests/browser/consent.mjs",
        crate::common::manifest_dir()
    );
    let prefix = format!("http://localhost:{}/oauth/callback", login.port);
    let driven = tokio::process::Command::new("node")
        .args([
            "--experimental-websocket",
            "--no-warnings",
            &script,
            chromium,
            &login.url,
            &prefix,
            "allow",
        ])
        .output()
        .await
        .unwrap();
    let result: Value = serde_json::from_slice(&driven.stdout)
        .unwrap_or_else(|_| panic!("driver output: {driven:?}"));
    assert_eq!(
        result,
        json!({"ok": true, "title": "sfetl received the authorization"})
    );
    let path = login.out.clone();
    let out = finish(login).await;
    assert_login_succeeded(&sim, &out, &path);
    check_succeeds(&sim, &path).await;
}

#[tokio::test]
async fn deny_turns_into_advice() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let login = start_login(&sim, dir.path(), &[], &[]).await;
    let callback = consent_over_http(&sim, &login.url, "deny").await;
    assert_eq!(deliver(&callback).await.0, 200);
    let path = login.out.clone();
    let out = finish(login).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.ends_with("sfetl: error: Authorization was denied (access_denied: end-user denied authorization). Run `sfetl login` again and click Allow; if Salesforce does not offer Allow, the user may not use the app: in the app's Manage > Edit Policies set Permitted Users to \"All users may self-authorize\", or pre-authorise the user's profile or permission set.\n"), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(!path.exists());
}

#[tokio::test]
async fn a_callback_with_another_state_is_rejected() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let login = start_login(&sim, dir.path(), &[], &[]).await;
    let forged = format!(
        "http://localhost:{}/oauth/callback?code=aPrx.forged%3D%3D&state=forged",
        login.port
    );
    let (status, page) = deliver(&forged).await;
    assert_eq!(status, 400);
    assert!(page.contains("its state differs"), "{page}");
    // The genuine callback still completes the login.
    let callback = consent_over_http(&sim, &login.url, "allow").await;
    assert_eq!(deliver(&callback).await.0, 200);
    let path = login.out.clone();
    let out = finish(login).await;
    assert_login_succeeded(&sim, &out, &path);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("ignored a callback whose state does not match this login")
    );
}

#[tokio::test]
async fn login_times_out_with_a_clear_message() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let login = start_login(&sim, dir.path(), &[], &[("SFETL_LOGIN_TIMEOUT_SECS", "1")]).await;
    let port = login.port;
    let out = finish(login).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.ends_with(&format!("sfetl: error: No answer from the browser within 1 minutes; run `sfetl login` again. If the browser shows a Salesforce error page: \"redirect_uri_mismatch\" means the app's Callback URL must be exactly http://localhost:{port}/oauth/callback; \"invalid_client_id\" means the Consumer Key is wrong or the app is new (Salesforce needs 2 to 10 minutes after a connected app is created or edited).\n")), "{stderr}");
}

#[tokio::test]
async fn callback_url_mismatch_names_the_exact_url() {
    let sim = start_sim().await;
    let registered = format!("http://localhost:{}/oauth/callback", free_port());
    assert!(
        sim.sim
            .oauth
            .add_redirect_uri(&sim.credentials.client_id, &registered)
    );
    let endpoints = Endpoints::new(&sim.login_url).unwrap();
    let pkce = sfetl::auth::PkceSession::new();
    let url = oauth::authorize_url(
        &endpoints,
        &sim.credentials.client_id,
        &registered,
        "api refresh_token",
        &pkce.verifier,
        pkce.state.expose(),
    )
    .unwrap();
    let callback = consent_over_http(&sim, url.as_str(), "allow").await;
    let code = url::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .to_string();
    let other = "http://localhost:1717/oauth/callback".to_string();
    let ctx = RequestContext {
        grant: Grant::AuthorizationCode,
        host: endpoints.host.clone(),
        is_sandbox: false,
        username: None,
        redirect_uri: Some(other),
    };
    let app = AppCredentials {
        client_id: sim.credentials.client_id.clone(),
        client_secret: None,
    };
    let e = oauth::exchange_code(
        &sfetl::transport::http_client(),
        &endpoints,
        &app,
        &Secret::new(code),
        Some(&pkce.verifier),
        &ctx,
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "The Callback URL of the connected app does not match (redirect_uri_mismatch). The app's Callback URL must be exactly http://localhost:1717/oauth/callback: edit the app (Setup > App Manager > your app > Edit > Callback URL), put that URL on its own line, save, and wait 2 to 10 minutes."
    );
}

#[test]
fn pkce_challenge_matches_rfc_7636_appendix_b() {
    assert_eq!(
        sfetl::auth::pkce::s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
}
