//! The simulator's OAuth 2.0 server over real HTTP: every flow, every documented error, the
//! identity URL, revocation, rotation, expiry and the control endpoints.
//!
//! Both hosts are served on ephemeral ports exactly as the simulator mounts them; requests go
//! through reqwest without following redirects, so every status and `Location` is asserted.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sfetl_sim::oauth::{
    HostKind, NO_API_USER_ID, NO_API_USERNAME, NO_RUN_AS_CLIENT_ID, NO_RUN_AS_CLIENT_SECRET, OAuth,
    OAuthConfig, SIM_PASSWORD, SessionInfo, TEST_CERTIFICATE_PEM, TEST_OTHER_PRIVATE_KEY_PEM,
    TEST_PRIVATE_KEY_PEM, pkce_s256_challenge, test_private_key_path,
};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use url::Url;

/// Query parameters of a request.
type Params<'a> = &'a [(&'a str, &'a str)];

/// The callback the tests register (never contacted: redirects are not followed).
const CALLBACK: &str = "http://localhost:1717/oauth/callback";
/// RFC 7636 Appendix B.
const RFC_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
/// (The RFC's value; `E9Melhoa2OwvFrEjTJjCkW2IdqO1-IQOzSHrqhQUrTM`, seen quoted elsewhere, is not
/// the SHA-256 of this verifier.)
const RFC_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const JWT_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const DATA_PATH: &str = "/services/data/v62.0/limits";
const INVALID_SESSION: &str =
    r#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#;
const API_DISABLED: &str = r#"[{"message":"The REST API is not enabled for this Organization.","errorCode":"API_DISABLED_FOR_ORG"}]"#;

/// A running server: the login host, the instance host (with a data route and the control
/// endpoints), and a client that does not follow redirects.
struct Sim {
    oauth: Arc<OAuth>,
    login: String,
    instance: String,
    http: reqwest::Client,
}

/// A data call as the simulator's REST handlers make it: `check_bearer` first.
async fn data_call(State(oauth): State<Arc<OAuth>>, headers: HeaderMap) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match oauth.check_bearer(authorization) {
        Ok(SessionInfo { user_id, org_id }) => {
            Json(json!({ "user_id": user_id, "org_id": org_id })).into_response()
        }
        Err(response) => response,
    }
}

impl Sim {
    async fn start() -> Sim {
        let login_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let instance_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let login = format!("http://{}", login_listener.local_addr().unwrap());
        let instance = format!("http://{}", instance_listener.local_addr().unwrap());
        let mut config = OAuthConfig::simulated(&login, &instance);
        config.redirect_uris = vec![CALLBACK.to_string()];
        let oauth = OAuth::new(config);
        let login_router = oauth.routes(HostKind::Login);
        let instance_router = oauth
            .routes(HostKind::Instance)
            .merge(
                Router::new()
                    .route(DATA_PATH, get(data_call))
                    .with_state(Arc::clone(&oauth)),
            )
            .nest("/__sim/oauth", oauth.control_routes());
        tokio::spawn(async move { axum::serve(login_listener, login_router).await.unwrap() });
        tokio::spawn(async move {
            axum::serve(instance_listener, instance_router)
                .await
                .unwrap()
        });
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Sim {
            oauth,
            login,
            instance,
            http,
        }
    }

    fn client_id(&self) -> &str {
        &self.oauth.config.client_id
    }

    fn secret(&self) -> &str {
        &self.oauth.config.client_secret
    }

    /// POSTs a form to `{base}/services/oauth2/token`.
    async fn token(&self, base: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{base}/services/oauth2/token"))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let content_type = response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(content_type, "application/json;charset=UTF-8");
        (status, response.json().await.unwrap())
    }

    /// A data call with a token; returns the status and raw body.
    async fn data(&self, access_token: Option<&str>) -> (StatusCode, String) {
        let mut request = self.http.get(format!("{}{DATA_PATH}", self.instance));
        if let Some(token) = access_token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        (response.status(), response.text().await.unwrap())
    }

    /// POSTs to a control endpoint.
    async fn control(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}/__sim/oauth/{path}", self.instance))
            .json(&body)
            .send()
            .await
            .unwrap();
        (response.status(), response.json().await.unwrap())
    }

    /// GET authorize; returns the response.
    async fn authorize(&self, params: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .get(format!("{}/services/oauth2/authorize", self.login))
            .query(params)
            .send()
            .await
            .unwrap()
    }

    /// Opens the consent page, submits it as a browser would (hidden and pre-filled fields plus
    /// `fields`), returns the redirect `Location`.
    async fn consent(&self, params: &[(&str, &str)], fields: &[(&str, &str)]) -> Url {
        let page = self.authorize(params).await;
        assert_eq!(page.status(), StatusCode::OK);
        let html = page.text().await.unwrap();
        let request_id = request_id(&html);
        let username = input_value(&html, r#"name="username" type="text" value=""#);
        let mut form = vec![
            ("request_id", request_id.as_str()),
            ("username", username.as_str()),
        ];
        form.extend_from_slice(fields);
        let response = self
            .http
            .post(format!("{}/services/oauth2/authorize", self.login))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::FOUND,
            "consent must redirect"
        );
        location(&response)
    }

    /// Runs the browser part of the code flow for the primary user; returns the code.
    async fn code(&self, challenge: Option<&str>) -> String {
        let mut params = vec![
            ("response_type", "code"),
            ("client_id", self.client_id()),
            ("redirect_uri", CALLBACK),
            ("state", "st4te"),
            ("scope", "api refresh_token offline_access"),
        ];
        if let Some(challenge) = challenge {
            params.push(("code_challenge", challenge));
            params.push(("code_challenge_method", "S256"));
        }
        let url = self.consent(&params, &[("decision", "allow")]).await;
        assert_eq!(query(&url, "state").as_deref(), Some("st4te"));
        query(&url, "code").expect("a code on the callback")
    }

    /// The token request exchanging `code` with the primary app's secret.
    fn code_form<'a>(&'a self, code: &'a str) -> [(&'a str, &'a str); 5] {
        [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", self.client_id()),
            ("client_secret", self.secret()),
            ("redirect_uri", CALLBACK),
        ]
    }

    /// Exchanges `code` with the secret and checks the primary user's success answer.
    async fn exchange(&self, code: &str) -> Value {
        assert_success(
            self,
            self.token(&self.login, &self.code_form(code)).await,
            true,
            &self.oauth.config.user_id,
        )
    }

    /// A refresh token for the primary user, through the code flow with the secret.
    async fn refresh_token(&self) -> String {
        let code = self.code(None).await;
        let (status, body) = self.token(&self.login, &self.code_form(&code)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["refresh_token"].as_str().unwrap().to_string()
    }

    /// Refreshes with the primary app's secret.
    async fn refresh(&self, refresh_token: &str) -> (StatusCode, Value) {
        self.token(
            &self.login,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("client_id", self.client_id()),
                ("client_secret", self.secret()),
            ],
        )
        .await
    }

    /// A valid JWT assertion's claims for a user.
    fn claims(&self, sub: &str) -> Value {
        json!({ "iss": self.client_id(), "sub": sub, "aud": self.login, "exp": now() + 170 })
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn request_id(html: &str) -> String {
    input_value(html, r#"name="request_id" value=""#)
}

/// The attribute value following `marker` in the page.
fn input_value(html: &str, marker: &str) -> String {
    let start = html
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} in\n{html}"))
        + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_string()
}

fn location(response: &reqwest::Response) -> Url {
    Url::parse(response.headers()[header::LOCATION].to_str().unwrap()).unwrap()
}

fn query(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn sign(claims: &Value, private_key_pem: &str) -> String {
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_key_pem.as_bytes()).unwrap();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        claims,
        &key,
    )
    .unwrap()
}

fn assert_oauth_error(result: (StatusCode, Value), error: &str, description: &str) {
    assert_eq!(result.0, StatusCode::BAD_REQUEST, "{}", result.1);
    assert_eq!(
        result.1,
        json!({ "error": error, "error_description": description })
    );
}

/// HMAC-SHA256 written out from RFC 2104, independent of the server's implementation.
fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut block = [0u8; 64];
    block[..key.len()].copy_from_slice(key);
    let inner: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    let outer: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    let inner_hash = Sha256::new()
        .chain_update(&inner)
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(&outer)
        .chain_update(inner_hash)
        .finalize()
        .to_vec()
}

/// Asserts Salesforce's success shape and returns the body.
fn assert_success(
    sim: &Sim,
    result: (StatusCode, Value),
    with_refresh: bool,
    user_id: &str,
) -> Value {
    let (status, body) = result;
    assert_eq!(status, StatusCode::OK, "{body}");
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = vec!["access_token"];
    if with_refresh {
        expected.push("refresh_token");
    }
    expected.extend([
        "signature",
        "scope",
        "instance_url",
        "id",
        "token_type",
        "issued_at",
    ]);
    assert_eq!(keys, expected);
    let org = &sim.oauth.config.org_id;
    let access = body["access_token"].as_str().unwrap();
    assert!(access.starts_with(&format!("{}!", &org[..15])), "{access}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["instance_url"], sim.instance.as_str());
    let id = format!("{}/id/{org}/{user_id}", sim.login);
    assert_eq!(body["id"], id.as_str());
    let issued_at = body["issued_at"].as_str().expect("issued_at is a string");
    let millis: u128 = issued_at.parse().unwrap();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    assert!(
        millis <= now_ms && now_ms - millis < 60_000,
        "issued_at is epoch milliseconds"
    );
    body
}

#[test]
fn pkce_challenge_matches_rfc7636_appendix_b() {
    assert_eq!(pkce_s256_challenge(RFC_VERIFIER), RFC_CHALLENGE);
}

#[test]
fn test_key_pair_is_shipped_and_labelled() {
    let path = test_private_key_path().unwrap();
    assert!(
        path.ends_with("sfetl-sim/fixtures/oauth/test_private_key.pem"),
        "{}",
        path.display()
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        TEST_PRIVATE_KEY_PEM
    );
    assert!(TEST_CERTIFICATE_PEM.starts_with("-----BEGIN CERTIFICATE-----"));
    let readme = std::fs::read_to_string(path.with_file_name("README.md")).unwrap();
    assert!(readme.contains("TEST-ONLY"));
    let config = OAuthConfig::simulated("http://l", "http://i");
    assert_eq!(config.jwt_certificate_pem, TEST_CERTIFICATE_PEM);
    assert!(config.initial_refresh_token.starts_with("5Aep861"));
    assert_ne!(
        config.initial_refresh_token,
        OAuthConfig::simulated("a", "b").initial_refresh_token
    );
}

#[tokio::test]
async fn pkce_code_flow_without_secret_rfc7636_example() {
    let sim = Sim::start().await;
    let code = sim.code(Some(RFC_CHALLENGE)).await;
    assert!(
        code.ends_with("=="),
        "codes end in == like Salesforce's: {code}"
    );
    let result = sim
        .token(
            &sim.login,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("client_id", sim.client_id()),
                ("redirect_uri", CALLBACK),
                ("code_verifier", RFC_VERIFIER),
            ],
        )
        .await;
    let body = assert_success(&sim, result, true, &sim.oauth.config.user_id);
    assert_eq!(body["scope"], "api refresh_token offline_access");
    let (status, _) = sim.data(body["access_token"].as_str()).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn pkce_verifier_mismatch_and_missing_verifier() {
    let sim = Sim::start().await;
    for verifier in [Some("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXX"), None] {
        let code = sim.code(Some(RFC_CHALLENGE)).await;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("client_id", sim.client_id()),
            ("redirect_uri", CALLBACK),
        ];
        if let Some(verifier) = verifier {
            form.push(("code_verifier", verifier));
        }
        assert_oauth_error(
            sim.token(&sim.login, &form).await,
            "invalid_request",
            "invalid code verifier",
        );
    }
}

#[tokio::test]
async fn code_flow_with_secret_signature_and_single_use() {
    let sim = Sim::start().await;
    let code = sim.code(None).await;
    let body = sim.exchange(&code).await;
    let message = format!(
        "{}{}",
        body["id"].as_str().unwrap(),
        body["issued_at"].as_str().unwrap()
    );
    let expected = base64::engine::general_purpose::STANDARD
        .encode(hmac_sha256(sim.secret().as_bytes(), message.as_bytes()));
    assert_eq!(body["signature"], expected.as_str());
    assert!(
        body["refresh_token"]
            .as_str()
            .unwrap()
            .starts_with("5Aep861")
    );
    // Single use.
    assert_oauth_error(
        sim.token(&sim.login, &sim.code_form(&code)).await,
        "invalid_grant",
        "invalid authorization code",
    );
}

#[tokio::test]
async fn code_flow_with_http_basic_client_credentials() {
    let sim = Sim::start().await;
    let code = sim.code(None).await;
    let response = sim
        .http
        .post(format!("{}/services/oauth2/token", sim.login))
        .basic_auth(sim.client_id(), Some(sim.secret()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", CALLBACK),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CACHE_CONTROL],
        "no-cache,must-revalidate,max-age=0,no-store,private"
    );
    let body: Value = response.json().await.unwrap();
    assert!(body["access_token"].is_string());
}

#[tokio::test]
async fn code_exchange_errors() {
    let sim = Sim::start().await;
    let exchange =
        |code: String, client_id: String, secret: Option<String>, redirect: &'static str| {
            let sim = &sim;
            async move {
                let mut form = vec![
                    ("grant_type", "authorization_code".to_string()),
                    ("code", code),
                    ("client_id", client_id),
                    ("redirect_uri", redirect.to_string()),
                ];
                if let Some(secret) = secret {
                    form.push(("client_secret", secret));
                }
                let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
                sim.token(&sim.login, &form).await
            }
        };
    let id = sim.client_id().to_string();
    let secret = Some(sim.secret().to_string());
    // Unknown consumer key.
    let code = sim.code(None).await;
    let result = exchange(code, "3MVG9WRONG".into(), secret.clone(), CALLBACK).await;
    assert_oauth_error(result, "invalid_client_id", "client identifier invalid");
    // Wrong consumer secret.
    let code = sim.code(None).await;
    let result = exchange(code, id.clone(), Some("wrong".into()), CALLBACK).await;
    assert_oauth_error(result, "invalid_client", "invalid client credentials");
    // Neither secret nor PKCE.
    let code = sim.code(None).await;
    let result = exchange(code, id.clone(), None, CALLBACK).await;
    assert_oauth_error(result, "invalid_client", "invalid client credentials");
    // Redirect URI differs from the authorize request.
    let code = sim.code(None).await;
    let result = exchange(
        code,
        id.clone(),
        secret.clone(),
        "http://localhost:9999/other",
    )
    .await;
    assert_oauth_error(
        result,
        "redirect_uri_mismatch",
        "redirect_uri must match configuration",
    );
    // Unknown code.
    let result = exchange("aPrxnope==".into(), id.clone(), secret.clone(), CALLBACK).await;
    assert_oauth_error(result, "invalid_grant", "invalid authorization code");
    // A code of the primary app exchanged by the second app.
    let code = sim.code(None).await;
    let result = exchange(
        code,
        NO_RUN_AS_CLIENT_ID.into(),
        Some(NO_RUN_AS_CLIENT_SECRET.into()),
        CALLBACK,
    )
    .await;
    assert_oauth_error(result, "invalid_grant", "invalid authorization code");
}

#[tokio::test]
async fn consent_page_is_a_plain_html_form() {
    let sim = Sim::start().await;
    let response = sim
        .authorize(&[
            ("response_type", "code"),
            ("client_id", sim.client_id()),
            ("redirect_uri", CALLBACK),
            ("state", "s"),
            ("login_hint", NO_API_USERNAME),
        ])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/html; charset=utf-8"
    );
    let html = response.text().await.unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    for needle in [
        r#"<form id="consent" method="post" action="/services/oauth2/authorize">"#,
        r#"<button id="allow" type="submit" name="decision" value="allow">Allow</button>"#,
        r#"<button id="deny" type="submit" name="decision" value="deny">Deny</button>"#,
        r#"<input id="password" name="password" type="password""#,
        &format!(r#"name="username" type="text" value="{NO_API_USERNAME}""#),
        "Manage user data via APIs (api)",
    ] {
        assert!(html.contains(needle), "missing {needle} in\n{html}");
    }
    assert!(
        !html.contains("<script"),
        "no JavaScript needed to drive the page"
    );
}

#[tokio::test]
async fn authorize_errors_as_salesforce_reports_them() {
    let sim = Sim::start().await;
    // Unknown client: Salesforce's error page, never the unverified callback.
    let response = sim
        .authorize(&[
            ("response_type", "code"),
            ("client_id", "nope"),
            ("redirect_uri", CALLBACK),
            ("state", "s"),
        ])
        .await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let url = location(&response);
    assert_eq!(url.path(), "/setup/secur/RemoteAccessErrorPage.apexp");
    assert_eq!(url.origin().ascii_serialization(), sim.login);
    assert_eq!(query(&url, "error").as_deref(), Some("invalid_client_id"));
    assert_eq!(
        query(&url, "error_description").as_deref(),
        Some("client identifier invalid")
    );
    let page = sim.http.get(url.as_str()).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains(r#"<p id="error">invalid_client_id</p>"#)
    );

    // Unregistered callback.
    let response = sim
        .authorize(&[
            ("response_type", "code"),
            ("client_id", sim.client_id()),
            ("redirect_uri", "http://localhost:1718/oauth/callback"),
            ("state", "s"),
        ])
        .await;
    let url = location(&response);
    assert_eq!(url.path(), "/setup/secur/RemoteAccessErrorPage.apexp");
    assert_eq!(
        query(&url, "error").as_deref(),
        Some("redirect_uri_mismatch")
    );
    assert_eq!(
        query(&url, "error_description").as_deref(),
        Some("redirect_uri must match configuration")
    );

    // Errors delivered to the registered callback, with state.
    let cases: [(Params, &str, &str); 4] = [
        (
            &[("response_type", "token")],
            "unsupported_response_type",
            "response type not supported",
        ),
        (
            &[("response_type", "code"), ("scope", "api chatter_api")],
            "invalid_scope",
            "the requested scope is not allowed",
        ),
        (
            &[
                ("response_type", "code"),
                ("code_challenge", RFC_CHALLENGE),
                ("code_challenge_method", "plain"),
            ],
            "invalid_request",
            "invalid code challenge method",
        ),
        (
            &[("response_type", "code"), ("code_challenge", "short")],
            "invalid_request",
            "invalid code challenge",
        ),
    ];
    for (extra, error, description) in cases {
        let mut params = vec![
            ("client_id", sim.client_id()),
            ("redirect_uri", CALLBACK),
            ("state", "xyz"),
        ];
        params.extend_from_slice(extra);
        let response = sim.authorize(&params).await;
        assert_eq!(response.status(), StatusCode::FOUND, "{error}");
        let url = location(&response);
        assert_eq!(url.as_str().split('?').next().unwrap(), CALLBACK);
        assert_eq!(query(&url, "error").as_deref(), Some(error));
        assert_eq!(
            query(&url, "error_description").as_deref(),
            Some(description)
        );
        assert_eq!(query(&url, "state").as_deref(), Some("xyz"));
    }

    // Deny.
    let params = [
        ("response_type", "code"),
        ("client_id", sim.client_id()),
        ("redirect_uri", CALLBACK),
        ("state", "d"),
    ];
    let url = sim.consent(&params, &[("decision", "deny")]).await;
    assert_eq!(query(&url, "error").as_deref(), Some("access_denied"));
    assert_eq!(
        query(&url, "error_description").as_deref(),
        Some("end-user denied authorization")
    );
    assert_eq!(query(&url, "state").as_deref(), Some("d"));
    assert_eq!(query(&url, "code"), None);
}

#[tokio::test]
async fn login_page_refuses_bad_credentials_and_used_requests() {
    let sim = Sim::start().await;
    let params = [
        ("response_type", "code"),
        ("client_id", sim.client_id()),
        ("redirect_uri", CALLBACK),
    ];
    let html = sim.authorize(&params).await.text().await.unwrap();
    let request_id = request_id(&html);
    let post = |form: Vec<(&'static str, String)>| {
        let sim = &sim;
        async move {
            sim.http
                .post(format!("{}/services/oauth2/authorize", sim.login))
                .form(&form)
                .send()
                .await
                .unwrap()
        }
    };
    for (username, password) in [
        ("nobody@example.com", ""),
        (sim.oauth.config.username.as_str(), "wrong"),
    ] {
        let response = post(vec![
            ("request_id", request_id.clone()),
            ("username", username.to_string()),
            ("password", password.to_string()),
            ("decision", "allow".to_string()),
        ])
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        let html = response.text().await.unwrap();
        assert!(html.contains(
            r#"<p id="login_error" role="alert">Please check your username and password."#
        ));
        assert!(
            html.contains(&format!(r#"value="{request_id}""#)),
            "the same request stays usable"
        );
    }
    // The right password works, with the request id kept across failures.
    let response = post(vec![
        ("request_id", request_id.clone()),
        ("username", NO_API_USERNAME.to_string()),
        ("password", SIM_PASSWORD.to_string()),
        ("decision", "allow".to_string()),
    ])
    .await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert!(query(&location(&response), "code").is_some());
    // A used request id.
    let response = post(vec![
        ("request_id", request_id),
        ("decision", "allow".to_string()),
    ])
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn refresh_without_rotation_keeps_the_token() {
    let sim = Sim::start().await;
    let refresh_token = sim.oauth.config.initial_refresh_token.clone();
    let first = assert_success(
        &sim,
        sim.refresh(&refresh_token).await,
        false,
        &sim.oauth.config.user_id,
    );
    let second = assert_success(
        &sim,
        sim.refresh(&refresh_token).await,
        false,
        &sim.oauth.config.user_id,
    );
    assert_ne!(first["access_token"], second["access_token"]);
    for body in [&first, &second] {
        assert_eq!(
            sim.data(body["access_token"].as_str()).await.0,
            StatusCode::OK
        );
    }
    // Secret optional (PKCE apps refresh without one), but a wrong one is refused.
    let result = sim
        .token(
            &sim.login,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh_token),
                ("client_id", sim.client_id()),
            ],
        )
        .await;
    assert_eq!(result.0, StatusCode::OK);
    let result = sim
        .token(
            &sim.login,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh_token),
                ("client_id", sim.client_id()),
                ("client_secret", "wrong"),
            ],
        )
        .await;
    assert_oauth_error(result, "invalid_client", "invalid client credentials");
    let result = sim
        .token(
            &sim.login,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh_token),
                ("client_id", "x"),
            ],
        )
        .await;
    assert_oauth_error(result, "invalid_client_id", "client identifier invalid");
    assert_oauth_error(
        sim.refresh("5Aep861unknown").await,
        "invalid_grant",
        "expired access/refresh token",
    );
    // Another app's refresh token.
    let result = sim
        .token(
            &sim.login,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh_token),
                ("client_id", NO_RUN_AS_CLIENT_ID),
                ("client_secret", NO_RUN_AS_CLIENT_SECRET),
            ],
        )
        .await;
    assert_oauth_error(result, "invalid_grant", "expired access/refresh token");
}

#[tokio::test]
async fn refresh_with_rotation_kills_the_old_token() {
    let sim = Sim::start().await;
    let (status, body) = sim.control("rotation", json!({ "enabled": true })).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({ "rotate_refresh_tokens": true }))
    );
    let old = sim.refresh_token().await;
    let body = assert_success(
        &sim,
        sim.refresh(&old).await,
        true,
        &sim.oauth.config.user_id,
    );
    let new = body["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_oauth_error(
        sim.refresh(&old).await,
        "invalid_grant",
        "expired access/refresh token",
    );
    let body = assert_success(
        &sim,
        sim.refresh(&new).await,
        true,
        &sim.oauth.config.user_id,
    );
    assert_ne!(body["refresh_token"].as_str().unwrap(), new);
    // Off again: no refresh_token in the answer, the token survives.
    sim.oauth.set_rotation(false);
    let newest = body["refresh_token"].as_str().unwrap().to_string();
    assert_success(
        &sim,
        sim.refresh(&newest).await,
        false,
        &sim.oauth.config.user_id,
    );
    assert_success(
        &sim,
        sim.refresh(&newest).await,
        false,
        &sim.oauth.config.user_id,
    );
}

#[tokio::test]
async fn concurrent_refreshes_of_a_rotating_token_have_one_winner() {
    let sim = Arc::new(Sim::start().await);
    sim.oauth.set_rotation(true);
    let token = sim.oauth.config.initial_refresh_token.clone();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (sim, token) = (Arc::clone(&sim), token.clone());
        tasks.push(tokio::spawn(async move { sim.refresh(&token).await.0 }));
    }
    let mut ok = 0;
    for task in tasks {
        let status = task.await.unwrap();
        assert!(status == StatusCode::OK || status == StatusCode::BAD_REQUEST);
        ok += usize::from(status == StatusCode::OK);
    }
    assert_eq!(ok, 1);
}

#[tokio::test]
async fn client_credentials_only_on_the_instance_host() {
    let sim = Sim::start().await;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", sim.client_id()),
        ("client_secret", sim.secret()),
    ];
    let body = assert_success(
        &sim,
        sim.token(&sim.instance, &form).await,
        false,
        &sim.oauth.config.user_id,
    );
    assert_eq!(body["scope"], "api id web");
    assert_eq!(
        sim.data(body["access_token"].as_str()).await.0,
        StatusCode::OK
    );
    // HTTP Basic.
    let response = sim
        .http
        .post(format!("{}/services/oauth2/token", sim.instance))
        .basic_auth(sim.client_id(), Some(sim.secret()))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // The login host refuses it.
    assert_oauth_error(
        sim.token(&sim.login, &form).await,
        "invalid_grant",
        "request not supported on this domain",
    );
    // No run-as user.
    let result = sim
        .token(
            &sim.instance,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", NO_RUN_AS_CLIENT_ID),
                ("client_secret", NO_RUN_AS_CLIENT_SECRET),
            ],
        )
        .await;
    assert_oauth_error(
        result,
        "invalid_grant",
        "no client credentials user enabled",
    );
    // Secret wrong or missing.
    for secret in ["wrong", ""] {
        let result = sim
            .token(
                &sim.instance,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", sim.client_id()),
                    ("client_secret", secret),
                ],
            )
            .await;
        assert_oauth_error(result, "invalid_client", "invalid client credentials");
    }
    let result = sim
        .token(
            &sim.instance,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "nope"),
                ("client_secret", "x"),
            ],
        )
        .await;
    assert_oauth_error(result, "invalid_client_id", "client identifier invalid");
}

#[tokio::test]
async fn jwt_bearer_success_and_every_failure() {
    let sim = Sim::start().await;
    let username = sim.oauth.config.username.clone();
    let jwt = |assertion: String| {
        let sim = &sim;
        async move {
            sim.token(
                &sim.login,
                &[("grant_type", JWT_GRANT), ("assertion", &assertion)],
            )
            .await
        }
    };
    let body = assert_success(
        &sim,
        jwt(sign(&sim.claims(&username), TEST_PRIVATE_KEY_PEM)).await,
        false,
        &sim.oauth.config.user_id,
    );
    assert_eq!(body["scope"], "api id web");
    assert_eq!(
        sim.data(body["access_token"].as_str()).await.0,
        StatusCode::OK
    );
    // Also on the instance host.
    let assertion = sign(&sim.claims(&username), TEST_PRIVATE_KEY_PEM);
    let result = sim
        .token(
            &sim.instance,
            &[("grant_type", JWT_GRANT), ("assertion", &assertion)],
        )
        .await;
    assert_eq!(result.0, StatusCode::OK);

    let mut claims = sim.claims(&username);
    claims["aud"] = json!("https://test.salesforce.com");
    assert_oauth_error(
        jwt(sign(&claims, TEST_PRIVATE_KEY_PEM)).await,
        "invalid_grant",
        "audience is invalid",
    );
    let mut claims = sim.claims(&username);
    claims["exp"] = json!(now() - 5);
    assert_oauth_error(
        jwt(sign(&claims, TEST_PRIVATE_KEY_PEM)).await,
        "invalid_grant",
        "expired authorization code",
    );
    let mut claims = sim.claims(&username);
    claims["exp"] = json!(now() as f64 + 60.5);
    assert_eq!(
        jwt(sign(&claims, TEST_PRIVATE_KEY_PEM)).await.0,
        StatusCode::OK,
        "a float exp is a NumericDate"
    );
    let mut claims = sim.claims(&username);
    claims["exp"] = json!(now() + 3600);
    assert_oauth_error(
        jwt(sign(&claims, TEST_PRIVATE_KEY_PEM)).await,
        "invalid_grant",
        "invalid assertion",
    );
    let result = jwt(sign(&sim.claims(&username), TEST_OTHER_PRIVATE_KEY_PEM)).await;
    assert_oauth_error(result, "invalid_grant", "invalid assertion");
    assert_oauth_error(
        jwt("not.a.jwt".to_string()).await,
        "invalid_grant",
        "invalid assertion",
    );
    let mut claims = sim.claims(&username);
    claims["iss"] = json!("3MVG9unknown");
    assert_oauth_error(
        jwt(sign(&claims, TEST_PRIVATE_KEY_PEM)).await,
        "invalid_client_id",
        "client identifier invalid",
    );
    let result = jwt(sign(
        &sim.claims("nobody@example.com"),
        TEST_PRIVATE_KEY_PEM,
    ))
    .await;
    assert_oauth_error(
        result,
        "invalid_grant",
        "user hasn't approved this consumer",
    );
    let mut claims = sim.claims(&username);
    claims["iss"] = json!(NO_RUN_AS_CLIENT_ID);
    let result = jwt(sign(&claims, TEST_PRIVATE_KEY_PEM)).await;
    assert_oauth_error(
        result,
        "invalid_grant",
        "user hasn't approved this consumer",
    );
    // An HS256 assertion "signed" with the certificate text is refused.
    let key = jsonwebtoken::EncodingKey::from_secret(TEST_CERTIFICATE_PEM.as_bytes());
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &sim.claims(&username),
        &key,
    )
    .unwrap();
    assert_oauth_error(jwt(hs).await, "invalid_grant", "invalid assertion");
}

#[tokio::test]
async fn password_grant_and_unsupported_grants() {
    let sim = Sim::start().await;
    let username = sim.oauth.config.username.clone();
    let form = |password: &'static str| {
        vec![
            ("grant_type", "password".to_string()),
            ("client_id", sim.client_id().to_string()),
            ("client_secret", sim.secret().to_string()),
            ("username", username.clone()),
            ("password", password.to_string()),
        ]
    };
    let as_refs = |form: &Vec<(&'static str, String)>| {
        form.iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect::<Vec<_>>()
    };
    let ok = as_refs(&form(SIM_PASSWORD));
    let ok: Vec<(&str, &str)> = ok.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_success(
        &sim,
        sim.token(&sim.login, &ok).await,
        false,
        &sim.oauth.config.user_id,
    );
    let bad = as_refs(&form("nope"));
    let bad: Vec<(&str, &str)> = bad.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_oauth_error(
        sim.token(&sim.login, &bad).await,
        "invalid_grant",
        "authentication failure",
    );

    assert_oauth_error(
        sim.token(
            &sim.login,
            &[("grant_type", "implicit"), ("client_id", sim.client_id())],
        )
        .await,
        "unsupported_grant_type",
        "grant type not supported",
    );
    assert_oauth_error(
        sim.token(&sim.login, &[]).await,
        "unsupported_grant_type",
        "grant type not supported",
    );
    // A JSON body is not read, as on Salesforce.
    let response = sim
        .http
        .post(format!("{}/services/oauth2/token", sim.login))
        .json(&json!({ "grant_type": "client_credentials" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({ "error": "unsupported_grant_type", "error_description": "grant type not supported" })
    );
}

#[tokio::test]
async fn bearer_check_and_expiry() {
    let sim = Sim::start().await;
    let refresh_token = sim.oauth.config.initial_refresh_token.clone();
    assert_eq!(
        sim.data(None).await,
        (StatusCode::UNAUTHORIZED, INVALID_SESSION.to_string())
    );
    assert_eq!(
        sim.data(Some("00Dnope!x")).await,
        (StatusCode::UNAUTHORIZED, INVALID_SESSION.to_string())
    );
    let body = sim.refresh(&refresh_token).await.1;
    let access = body["access_token"].as_str().unwrap().to_string();
    let (status, text) = sim.data(Some(&access)).await;
    assert_eq!(status, StatusCode::OK);
    let session: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        session,
        json!({ "user_id": sim.oauth.config.user_id, "org_id": sim.oauth.config.org_id })
    );
    // "OAuth" scheme too.
    let response = sim
        .http
        .get(format!("{}{DATA_PATH}", sim.instance))
        .header(header::AUTHORIZATION, format!("OAuth {access}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // expire_all_tokens: the token dies, the refresh token does not.
    sim.oauth.expire_all_tokens();
    let response = sim
        .http
        .get(format!("{}{DATA_PATH}", sim.instance))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Token");
    assert_eq!(response.text().await.unwrap(), INVALID_SESSION);
    let access = sim.refresh(&refresh_token).await.1["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(sim.data(Some(&access)).await.0, StatusCode::OK);
    let (status, body) = sim.control("expire_access_tokens", json!({})).await;
    assert_eq!((status, body), (StatusCode::OK, json!({ "expired": 1 })));
    assert_eq!(sim.data(Some(&access)).await.0, StatusCode::UNAUTHORIZED);

    // TTL zero: born expired; back to an hour: fine.
    let (status, body) = sim.control("ttl", json!({ "seconds": 0 })).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({ "access_token_ttl_seconds": 0 }))
    );
    let access = sim.refresh(&refresh_token).await.1["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        sim.data(Some(&access)).await,
        (StatusCode::UNAUTHORIZED, INVALID_SESSION.to_string())
    );
    sim.control("ttl", json!({ "seconds": 3600 })).await;
    let access = sim.refresh(&refresh_token).await.1["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(sim.data(Some(&access)).await.0, StatusCode::OK);
}

#[tokio::test]
async fn scope_without_api_is_not_valid_for_rest() {
    let sim = Sim::start().await;
    let params = [
        ("response_type", "code"),
        ("client_id", sim.client_id()),
        ("redirect_uri", CALLBACK),
        ("scope", "id refresh_token"),
    ];
    let url = sim.consent(&params, &[("decision", "allow")]).await;
    let code = query(&url, "code").unwrap();
    let body = sim.exchange(&code).await;
    assert_eq!(body["scope"], "id refresh_token");
    let expected = r#"[{"message":"This session is not valid for use with the REST API","errorCode":"INVALID_SESSION_ID"}]"#;
    assert_eq!(
        sim.data(body["access_token"].as_str()).await,
        (StatusCode::UNAUTHORIZED, expected.to_string())
    );
}

#[tokio::test]
async fn user_without_api_enabled_gets_api_disabled_for_org() {
    let sim = Sim::start().await;
    // The second user, via JWT (the primary app pre-authorises it).
    let assertion = sign(&sim.claims(NO_API_USERNAME), TEST_PRIVATE_KEY_PEM);
    let result = sim
        .token(
            &sim.login,
            &[("grant_type", JWT_GRANT), ("assertion", &assertion)],
        )
        .await;
    let body = assert_success(&sim, result, false, NO_API_USER_ID);
    let access = body["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        sim.data(Some(&access)).await,
        (StatusCode::FORBIDDEN, API_DISABLED.to_string())
    );
    let session = SessionInfo {
        user_id: NO_API_USER_ID.to_string(),
        org_id: sim.oauth.config.org_id.clone(),
    };
    assert!(!sim.oauth.api_enabled(&session));
    // Its identity URL still answers, so check can name the user.
    let response = sim
        .http
        .get(body["id"].as_str().unwrap())
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let identity: Value = response.json().await.unwrap();
    assert_eq!(identity["username"], NO_API_USERNAME);
    // ...but not another user's.
    let primary_id = format!(
        "{}/id/{}/{}",
        sim.login, sim.oauth.config.org_id, sim.oauth.config.user_id
    );
    let response = sim
        .http
        .get(&primary_id)
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(response.text().await.unwrap(), "No_Access");

    // The primary user, toggled through the control endpoint.
    let token = sim.refresh(&sim.oauth.config.initial_refresh_token).await.1["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(sim.data(Some(&token)).await.0, StatusCode::OK);
    let (status, body) = sim
        .control("api_enabled", json!({ "enabled": false }))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({ "username": sim.oauth.config.username, "api_enabled": false })
    );
    assert_eq!(
        sim.data(Some(&token)).await,
        (StatusCode::FORBIDDEN, API_DISABLED.to_string())
    );
    sim.control("api_enabled", json!({ "enabled": true })).await;
    assert_eq!(sim.data(Some(&token)).await.0, StatusCode::OK);
    let (status, _) = sim
        .control(
            "api_enabled",
            json!({ "username": "nobody@x", "enabled": true }),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A refresh token for the second user without a browser.
    let (status, body) = sim
        .control(
            "issue_refresh_token",
            json!({ "username": NO_API_USERNAME }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let result = sim.refresh(body["refresh_token"].as_str().unwrap()).await;
    let access = assert_success(&sim, result, false, NO_API_USER_ID)["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(sim.data(Some(&access)).await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn inactive_user_is_refused_everywhere() {
    let sim = Sim::start().await;
    let refresh_token = sim.oauth.config.initial_refresh_token.clone();
    let access = sim.refresh(&refresh_token).await.1["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = sim.control("user_active", json!({ "active": false })).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({ "username": sim.oauth.config.username, "active": false })
        )
    );
    assert_eq!(sim.data(Some(&access)).await.0, StatusCode::UNAUTHORIZED);
    assert_oauth_error(
        sim.refresh(&refresh_token).await,
        "invalid_grant",
        "inactive user",
    );
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", sim.client_id()),
        ("client_secret", sim.secret()),
    ];
    assert_oauth_error(
        sim.token(&sim.instance, &form).await,
        "invalid_grant",
        "inactive user",
    );
    sim.control("user_active", json!({ "active": true })).await;
    assert_eq!(sim.refresh(&refresh_token).await.0, StatusCode::OK);
}

#[tokio::test]
async fn revoke_access_and_refresh_tokens() {
    let sim = Sim::start().await;
    let refresh_token = sim.refresh_token().await;
    let a1 = sim.refresh(&refresh_token).await.1["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let a2 = sim.refresh(&refresh_token).await.1["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let revoke = |token: String| {
        let sim = &sim;
        async move {
            let response = sim
                .http
                .post(format!("{}/services/oauth2/revoke", sim.login))
                .form(&[("token", token)])
                .send()
                .await
                .unwrap();
            (response.status(), response.text().await.unwrap())
        }
    };
    // An access token alone.
    assert_eq!(revoke(a1.clone()).await, (StatusCode::OK, String::new()));
    assert_eq!(sim.data(Some(&a1)).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(sim.data(Some(&a2)).await.0, StatusCode::OK);
    // The refresh token, with the access tokens minted from it.
    assert_eq!(revoke(refresh_token.clone()).await.0, StatusCode::OK);
    assert_eq!(sim.data(Some(&a2)).await.0, StatusCode::UNAUTHORIZED);
    assert_oauth_error(
        sim.refresh(&refresh_token).await,
        "invalid_grant",
        "expired access/refresh token",
    );
    // Unknown token, form-encoded as Salesforce answers, or JSON when asked.
    assert_eq!(
        revoke("nope".to_string()).await,
        (
            StatusCode::BAD_REQUEST,
            "error=unsupported_token_type&error_description=this%20token%20type%20is%20not%20supported".to_string()
        )
    );
    let response = sim
        .http
        .get(format!("{}/services/oauth2/revoke", sim.instance))
        .query(&[("token", "nope")])
        .header(header::ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({ "error": "unsupported_token_type", "error_description": "this token type is not supported" })
    );
    // Revoke everything through the control endpoint.
    let fresh = sim.refresh_token().await;
    let (status, body) = sim.control("revoke_refresh_tokens", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["revoked"], 2, "the initial token and the fresh one");
    assert_oauth_error(
        sim.refresh(&fresh).await,
        "invalid_grant",
        "expired access/refresh token",
    );
    assert_oauth_error(
        sim.refresh(&sim.oauth.config.initial_refresh_token).await,
        "invalid_grant",
        "expired access/refresh token",
    );
}

#[tokio::test]
async fn identity_url_and_userinfo() {
    let sim = Sim::start().await;
    let body = sim.refresh(&sim.oauth.config.initial_refresh_token).await.1;
    let access = body["access_token"].as_str().unwrap().to_string();
    let id_url = body["id"].as_str().unwrap().to_string();
    let org = sim.oauth.config.org_id.clone();
    let user = sim.oauth.config.user_id.clone();
    let response = sim
        .http
        .get(&id_url)
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let identity: Value = response.json().await.unwrap();
    let keys: Vec<&str> = identity
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for key in [
        "id",
        "asserted_user",
        "user_id",
        "organization_id",
        "username",
        "nick_name",
        "display_name",
        "email",
        "active",
        "user_type",
        "language",
        "locale",
        "utcOffset",
        "last_modified_date",
        "urls",
    ] {
        assert!(keys.contains(&key), "identity lacks {key}");
    }
    assert_eq!(identity["id"], id_url.as_str());
    assert_eq!(identity["user_id"], user.as_str());
    assert_eq!(identity["organization_id"], org.as_str());
    assert_eq!(identity["username"], sim.oauth.config.username.as_str());
    assert_eq!(identity["active"], true);
    assert_eq!(identity["user_type"], "STANDARD");
    assert_eq!(identity["utcOffset"], -28800000);
    assert_eq!(
        identity["last_modified_date"],
        "2024-01-15T09:30:00.000+0000"
    );
    let i = &sim.instance;
    assert_eq!(
        identity["urls"]["rest"],
        format!("{i}/services/data/v{{version}}/")
    );
    assert_eq!(
        identity["urls"]["query"],
        format!("{i}/services/data/v{{version}}/query/")
    );
    assert_eq!(
        identity["urls"]["sobjects"],
        format!("{i}/services/data/v{{version}}/sobjects/")
    );
    assert_eq!(
        identity["urls"]["partner"],
        format!("{i}/services/Soap/u/{{version}}/{org}")
    );
    assert_eq!(
        identity["urls"]["enterprise"],
        format!("{i}/services/Soap/c/{{version}}/{org}")
    );
    // version substituted; token as a query parameter; 15-character ids; the instance host.
    let url = format!("{i}/id/{}/{}", &org[..15], &user[..15]);
    let response = sim
        .http
        .get(&url)
        .query(&[("version", "62.0"), ("oauth_token", access.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let identity: Value = response.json().await.unwrap();
    assert_eq!(
        identity["urls"]["rest"],
        format!("{i}/services/data/v62.0/")
    );
    // Errors, plain text.
    let cases = [
        (
            id_url.clone(),
            None,
            StatusCode::FORBIDDEN,
            "Missing_OAuth_Token",
        ),
        (
            id_url.clone(),
            Some("00Dx!bad"),
            StatusCode::FORBIDDEN,
            "Bad_OAuth_Token",
        ),
        (
            format!("{}/id/00D000000000000AAA/{user}", sim.login),
            Some(access.as_str()),
            StatusCode::FORBIDDEN,
            "Wrong_Org",
        ),
        (
            format!("{}/id/{org}/005000000000000AAA", sim.login),
            Some(access.as_str()),
            StatusCode::NOT_FOUND,
            "Bad_Id",
        ),
    ];
    for (url, token, status, text) in cases {
        let mut request = sim.http.get(&url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status, "{text}");
        assert_eq!(response.text().await.unwrap(), text);
    }
    // Another user of the org is visible to an API-enabled user.
    let url = format!("{}/id/{org}/{NO_API_USER_ID}", sim.login);
    let response = sim
        .http
        .get(&url)
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // Expired token.
    sim.oauth.expire_all_tokens();
    let response = sim
        .http
        .get(&id_url)
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (response.status(), response.text().await.unwrap()),
        (StatusCode::FORBIDDEN, "Bad_OAuth_Token".into())
    );

    // userinfo.
    let access = sim.refresh(&sim.oauth.config.initial_refresh_token).await.1["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let response = sim
        .http
        .get(format!("{}/services/oauth2/userinfo", sim.login))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let info: Value = response.json().await.unwrap();
    assert_eq!(info["sub"], id_url.as_str());
    assert_eq!(
        info["preferred_username"],
        sim.oauth.config.username.as_str()
    );
    assert_eq!(info["organization_id"], org.as_str());
    let response = sim
        .http
        .get(format!("{}/services/oauth2/userinfo", sim.login))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (response.status(), response.text().await.unwrap()),
        (StatusCode::FORBIDDEN, "Missing_OAuth_Token".into())
    );
}

#[tokio::test]
async fn control_state_and_redirect_uris() {
    let sim = Sim::start().await;
    let response = sim
        .http
        .get(format!("{}/__sim/oauth/state", sim.instance))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let state: Value = response.json().await.unwrap();
    assert_eq!(state["rotate_refresh_tokens"], false);
    assert_eq!(state["access_token_ttl_seconds"], 7200);
    assert_eq!(state["live_refresh_tokens"], 1);
    assert_eq!(state["apps"][0]["client_id"], sim.client_id());
    assert_eq!(state["apps"][0]["has_certificate"], true);
    assert_eq!(state["apps"][1]["client_id"], NO_RUN_AS_CLIENT_ID);
    assert_eq!(state["apps"][1]["run_as_user"], Value::Null);
    assert_eq!(
        state["users"][1],
        json!({ "username": NO_API_USERNAME, "user_id": NO_API_USER_ID, "api_enabled": false, "active": true })
    );

    // A new callback URL becomes usable at once.
    let callback = "http://127.0.0.1:40001/oauth/callback";
    let (status, body) = sim
        .control("redirect_uris", json!({ "uri": callback }))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["redirect_uris"], json!([CALLBACK, callback]));
    let params = [
        ("response_type", "code"),
        ("client_id", sim.client_id()),
        ("redirect_uri", callback),
        ("state", "n"),
    ];
    let url = sim.consent(&params, &[("decision", "allow")]).await;
    assert!(
        url.as_str().starts_with(&format!("{callback}?code=")),
        "{url}"
    );
    let (status, _) = sim
        .control(
            "redirect_uris",
            json!({ "client_id": "nope", "uri": callback }),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The session key follows the refresh lineage and changes on rotation.
    let rt = sim.oauth.config.initial_refresh_token.clone();
    let a1 = sim.refresh(&rt).await.1["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let a2 = sim.refresh(&rt).await.1["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let key = |t: &str| sim.oauth.session_key(Some(&format!("Bearer {t}")));
    assert!(key(&a1).is_some());
    assert_eq!(key(&a1), key(&a2));
    sim.oauth.set_rotation(true);
    let a3 = sim.refresh(&rt).await.1["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(key(&a3), key(&a1));
    assert_eq!(key("nope"), None);
    // Tokens for simulator tests that do not exercise OAuth.
    let token = sim
        .oauth
        .issue_access_token(sim.client_id(), NO_API_USERNAME)
        .unwrap();
    assert_eq!(
        sim.data(Some(&token)).await,
        (StatusCode::FORBIDDEN, API_DISABLED.to_string())
    );
    let token = sim
        .oauth
        .issue_access_token(sim.client_id(), &sim.oauth.config.username)
        .unwrap();
    assert_eq!(sim.data(Some(&token)).await.0, StatusCode::OK);
    assert_eq!(sim.oauth.issue_access_token("nope", NO_API_USERNAME), None);
    assert_eq!(
        sim.oauth
            .issue_refresh_token(sim.client_id(), "nobody@example.com"),
        None
    );
}
