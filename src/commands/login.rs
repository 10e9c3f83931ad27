//! `sfetl login`: connects an org in the browser with the web-server flow and PKCE (no client
//! secret needed), then saves a complete config (mode 0600) that `--config` accepts.
//!
//! Human output goes to stderr; the one-line summary at the end goes to stdout. Nothing secret
//! is printed: the authorize URL carries only the public PKCE challenge and the `state`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::rotation::{WRITTEN_BY_KEY, WRITTEN_BY_LOGIN, write_private_json};
use crate::auth::callback::{CallbackOutcome, CallbackServer};
use crate::auth::errors::classify;
pub use crate::auth::login::LoginError;
use crate::auth::oauth::{self, AppCredentials, Endpoints};
use crate::auth::{AuthError, Grant, PkceSession, RequestContext, Token};
use crate::cli::LoginArgs;
use crate::secret::Secret;
use crate::transport::{TOKEN_CALL_TIMEOUT, checked_url, http_client};

/// How long `sfetl login` waits for the browser.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Environment variable shortening [`LOGIN_TIMEOUT`] (seconds), for tests.
pub const LOGIN_TIMEOUT_ENV: &str = "SFETL_LOGIN_TIMEOUT_SECS";

/// The login host of the flags, as `Config::login_base_url` computes it for a config.
pub fn login_base_url(args: &LoginArgs) -> String {
    if let Some(u) = &args.login_url {
        u.trim_end_matches('/').to_string()
    } else if let Some(d) = &args.domain {
        format!(
            "https://{}",
            d.trim_start_matches("https://").trim_end_matches('/')
        )
    } else if args.sandbox {
        "https://test.salesforce.com".to_string()
    } else {
        "https://login.salesforce.com".to_string()
    }
}

/// The default config path: `$XDG_CONFIG_HOME/sfetl/ORG_ID.json` or `~/.config/sfetl/ORG_ID.json`.
pub fn default_config_path(org_id: &str) -> Result<PathBuf, LoginError> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        })
        .ok_or(LoginError::NoConfigDir)?;
    Ok(base.join("sfetl").join(format!("{org_id}.json")))
}

fn timeout() -> Duration {
    std::env::var(LOGIN_TIMEOUT_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(LOGIN_TIMEOUT)
}

/// Runs `sfetl login`.
pub async fn run(args: &LoginArgs) -> Result<(), LoginError> {
    let endpoints = Endpoints::new(&login_base_url(args))?;
    let pkce = PkceSession::new();
    let mut server = CallbackServer::bind(args.port, pkce.state.clone())
        .await
        .map_err(|e| LoginError::Port {
            port: args.port,
            detail: e.to_string(),
        })?;
    let redirect_uri = server.redirect_uri();
    let url = oauth::authorize_url(
        &endpoints,
        &args.client_id,
        &redirect_uri,
        &args.scopes,
        &pkce.verifier,
        pkce.state.expose(),
    )?;
    let wait = timeout();
    eprintln!("sfetl login: the app's Callback URL must be exactly {redirect_uri}");
    eprintln!("Open this URL in a browser and log in to Salesforce:\n\n  {url}\n");
    if !args.no_browser {
        open_browser(url.as_str());
    }
    eprintln!(
        "Waiting for the browser (up to {} minutes)...",
        wait.as_secs().div_ceil(60)
    );
    let ctx = RequestContext {
        grant: Grant::AuthorizationCode,
        host: endpoints.host.clone(),
        is_sandbox: args.sandbox,
        username: None,
        redirect_uri: Some(redirect_uri.clone()),
    };
    let outcome = tokio::time::timeout(wait, server.next())
        .await
        .ok()
        .flatten()
        .ok_or_else(|| LoginError::Timeout {
            minutes: wait.as_secs().div_ceil(60),
            redirect_uri: redirect_uri.clone(),
        })?;
    drop(server);
    let code = match outcome {
        CallbackOutcome::Code(code) => code,
        CallbackOutcome::Error { error, description } => {
            return Err(classify(&ctx, &error, &description).into());
        }
    };
    exchange_and_save(args, &endpoints, &ctx, &code, &pkce).await
}

/// Exchanges the callback's code for tokens, reads who connected, and writes the config.
async fn exchange_and_save(
    args: &LoginArgs,
    endpoints: &Endpoints,
    ctx: &RequestContext,
    code: &Secret,
    pkce: &PkceSession,
) -> Result<(), LoginError> {
    let http = http_client();
    let app = AppCredentials {
        client_id: args.client_id.clone(),
        client_secret: args.client_secret.clone().map(Secret::new),
    };
    let token =
        oauth::exchange_code(&http, endpoints, &app, code, Some(&pkce.verifier), ctx).await?;
    let refresh_token = token
        .refresh_token
        .clone()
        .ok_or(LoginError::NoRefreshToken)?;
    let identity = identity(&http, &token).await?;
    let text = |k: &str| {
        identity
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let org_id = text("organization_id");
    let username = text("username");
    let path = match &args.out {
        Some(p) => p.clone(),
        None => default_config_path(&org_id)?,
    };
    let config = saved_config(args, &refresh_token);
    write_private_json(&path, &config).map_err(|e| LoginError::Write {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    eprintln!(
        "Saved the config with mode 0600; test it with: sfetl check --config {}",
        path.display()
    );
    println!(
        "Connected org {org_id} as {username} (instance {}); config written to {}",
        token.instance_url,
        path.display()
    );
    Ok(())
}

/// The config `sfetl login` writes: everything `--config` needs, marked so a rotated refresh
/// token is written back to it.
fn saved_config(args: &LoginArgs, refresh_token: &Secret) -> Value {
    let mut m = Map::new();
    m.insert("auth_type".into(), json!("refresh_token"));
    m.insert("client_id".into(), json!(args.client_id));
    if let Some(s) = &args.client_secret {
        m.insert("client_secret".into(), json!(s));
    }
    m.insert("refresh_token".into(), json!(refresh_token.expose()));
    m.insert("is_sandbox".into(), json!(args.sandbox));
    if let Some(d) = &args.domain {
        m.insert(
            "domain".into(),
            json!(d.trim_start_matches("https://").trim_end_matches('/')),
        );
    }
    if let Some(u) = &args.login_url {
        m.insert("login_url".into(), json!(u));
    }
    m.insert(WRITTEN_BY_KEY.into(), json!(WRITTEN_BY_LOGIN));
    Value::Object(m)
}

async fn identity(http: &reqwest::Client, token: &Token) -> Result<Value, LoginError> {
    let url = checked_url("identity URL", &token.identity_url).map_err(AuthError::from)?;
    let response = http
        .get(url)
        .bearer_auth(token.access_token.expose())
        .timeout(TOKEN_CALL_TIMEOUT)
        .send()
        .await
        .map_err(|e| LoginError::Identity(crate::transport::describe_reqwest_error(&e)))?;
    if !response.status().is_success() {
        return Err(LoginError::Identity(format!(
            "HTTP {}",
            response.status().as_u16()
        )));
    }
    response
        .json()
        .await
        .map_err(|e| LoginError::Identity(crate::transport::describe_reqwest_error(&e)))
}

/// Best effort: the URL is printed anyway.
fn open_browser(url: &str) {
    let (program, args): (&str, Vec<&str>) = if cfg!(target_os = "macos") {
        ("open", vec![url])
    } else if cfg!(windows) {
        ("cmd", vec!["/C", "start", "", url])
    } else {
        ("xdg-open", vec![url])
    };
    let spawned = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if spawned.is_err() {
        eprintln!("(could not open a browser; open the URL above yourself)");
    }
}

/// Where `write_private_json` puts files, re-exported for tests of the file mode.
pub fn is_private(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o777 == 0o600)
    }
    #[cfg(not(unix))]
    {
        path.exists()
    }
}
