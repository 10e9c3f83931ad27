//! `POST /services/oauth2/token` (every grant) and `/services/oauth2/revoke`.

use std::collections::HashMap;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Validation};
use serde_json::{Value, json};

use super::model::{APP_SCOPES, Inner, default_scope, grants_refresh, random_token};
use super::{Ctx, HostKind, OAuth, SIM_PASSWORD, json_body, pkce_s256_challenge};

/// The JWT bearer grant type.
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// How far in the future a JWT `exp` may be: 3 minutes plus 30 seconds of clock skew.
const JWT_MAX_LIFETIME_SECS: i64 = 180 + 30;

/// Request parameters: form body (when form-encoded) first, then the query string, first
/// occurrence wins; plus HTTP Basic client credentials.
pub(super) struct Params {
    values: HashMap<String, String>,
    basic: Option<(String, String)>,
}

impl Params {
    /// Reads a request's parameters the way Salesforce does.
    pub fn read(headers: &HeaderMap, query: Option<&str>, body: &[u8]) -> Self {
        let mut values = HashMap::new();
        let form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            });
        if form {
            for (k, v) in url::form_urlencoded::parse(body) {
                values
                    .entry(k.into_owned())
                    .or_insert_with(|| v.into_owned());
            }
        }
        if let Some(query) = query {
            for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
                values
                    .entry(k.into_owned())
                    .or_insert_with(|| v.into_owned());
            }
        }
        let basic = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("basic").then_some(rest.trim())
            })
            .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
            .and_then(|raw| String::from_utf8(raw).ok())
            .and_then(|pair| {
                let (id, secret) = pair.split_once(':')?;
                let decode = |s: &str| {
                    url::form_urlencoded::parse(format!("x={s}").as_bytes())
                        .next()
                        .map(|(_, v)| v.into_owned())
                        .unwrap_or_default()
                };
                Some((decode(id), decode(secret)))
            });
        Self { values, basic }
    }

    /// A non-empty parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// `client_id` from the form, else from HTTP Basic.
    fn client_id(&self) -> Option<&str> {
        self.get("client_id")
            .or(self.basic.as_ref().map(|(id, _)| id.as_str()))
            .filter(|v| !v.is_empty())
    }

    /// `client_secret` from the form, else from HTTP Basic.
    fn client_secret(&self) -> Option<&str> {
        self.get("client_secret")
            .or(self.basic.as_ref().map(|(_, secret)| secret.as_str()))
            .filter(|v| !v.is_empty())
    }
}

/// A token endpoint error: `400 {"error","error_description"}`.
pub(super) struct TokenError {
    error: &'static str,
    description: &'static str,
}

/// Shorthand constructor of [`TokenError`].
const fn fail(error: &'static str, description: &'static str) -> TokenError {
    TokenError { error, description }
}

const CLIENT_ID_INVALID: TokenError = fail("invalid_client_id", "client identifier invalid");
const CLIENT_CREDENTIALS_INVALID: TokenError = fail("invalid_client", "invalid client credentials");
const REFRESH_INVALID: TokenError = fail("invalid_grant", "expired access/refresh token");
const CODE_INVALID: TokenError = fail("invalid_grant", "invalid authorization code");
const VERIFIER_INVALID: TokenError = fail("invalid_request", "invalid code verifier");
const ASSERTION_INVALID: TokenError = fail("invalid_grant", "invalid assertion");
const NOT_APPROVED: TokenError = fail("invalid_grant", "user hasn't approved this consumer");
const INACTIVE_USER: TokenError = fail("invalid_grant", "inactive user");

impl IntoResponse for TokenError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.error, "error_description": self.description });
        let mut response = (StatusCode::BAD_REQUEST, json_body(&body)).into_response();
        no_store(response.headers_mut());
        response
    }
}

/// Token responses must not be cached.
fn no_store(headers: &mut HeaderMap) {
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache,must-revalidate,max-age=0,no-store,private"),
    );
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// `POST /services/oauth2/token`.
pub(super) async fn token(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let params = Params::read(&headers, query.as_deref(), &body);
    match ctx.oauth.grant(ctx.host, &params) {
        Ok(value) => {
            let mut response = (StatusCode::OK, json_body(&value)).into_response();
            no_store(response.headers_mut());
            response
        }
        Err(error) => error.into_response(),
    }
}

/// `GET|POST /services/oauth2/revoke`: an access token dies alone, a refresh token with the
/// access tokens minted from it.
pub(super) async fn revoke(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let params = Params::read(&headers, query.as_deref(), &body);
    let revoked = params
        .get("token")
        .is_some_and(|token| ctx.oauth.revoke_token(token));
    if revoked {
        return StatusCode::OK.into_response();
    }
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    if wants_json {
        let body = json!({
            "error": "unsupported_token_type",
            "error_description": "this token type is not supported"
        });
        (StatusCode::BAD_REQUEST, json_body(&body)).into_response()
    } else {
        (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/x-www-form-urlencoded;charset=UTF-8")],
            "error=unsupported_token_type&error_description=this%20token%20type%20is%20not%20supported",
        )
            .into_response()
    }
}

/// Salesforce's `signature`: base64 HMAC-SHA256 of `id + issued_at` keyed by the client secret.
fn signature(client_secret: &str, id: &str, issued_at: &str) -> String {
    let key = EncodingKey::from_secret(client_secret.as_bytes());
    let message = format!("{id}{issued_at}");
    jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256)
        .ok()
        .and_then(|b64url| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(b64url)
                .ok()
        })
        .map(|raw| base64::engine::general_purpose::STANDARD.encode(raw))
        .unwrap_or_default()
}

/// Which kind of new session a grant makes.
enum Refresh {
    /// No refresh token (client credentials, JWT, password, or no such scope).
    None,
    /// Mint a new refresh token (code flow with `refresh_token`/`offline_access`).
    New,
    /// Refresh: reuse the lineage, and hand back a rotated token when given.
    Existing {
        lineage: String,
        rotated: Option<String>,
    },
}

impl OAuth {
    /// Runs one token request.
    fn grant(&self, host: HostKind, p: &Params) -> Result<Value, TokenError> {
        let mut inner = self.lock();
        match p.get("grant_type").unwrap_or_default() {
            "authorization_code" => self.authorization_code(&mut inner, p),
            "refresh_token" => self.refresh_token(&mut inner, p),
            "client_credentials" => self.client_credentials(&mut inner, host, p),
            "password" => self.password(&mut inner, p),
            JWT_BEARER => self.jwt_bearer(&mut inner, p),
            _ => Err(fail("unsupported_grant_type", "grant type not supported")),
        }
    }

    /// Checks the client: known id, and the secret when given (or when `require_secret`).
    fn client<'a>(
        inner: &'a Inner,
        p: &Params,
        require_secret: bool,
    ) -> Result<&'a super::model::App, TokenError> {
        let app = p
            .client_id()
            .and_then(|id| inner.app(id))
            .ok_or(CLIENT_ID_INVALID)?;
        match p.client_secret() {
            Some(secret) if secret != app.client_secret => Err(CLIENT_CREDENTIALS_INVALID),
            None if require_secret => Err(CLIENT_CREDENTIALS_INVALID),
            _ => Ok(app),
        }
    }

    /// `grant_type=authorization_code` (secret, or PKCE S256 without one).
    fn authorization_code(&self, inner: &mut Inner, p: &Params) -> Result<Value, TokenError> {
        let client_id = Self::client(inner, p, false)?.client_id.clone();
        let has_secret = p.client_secret().is_some();
        let code = p.get("code").ok_or(CODE_INVALID)?;
        // Single use: consumed by the first attempt, successful or not.
        let record = inner.codes.remove(code).ok_or(CODE_INVALID)?;
        if record.client_id != client_id {
            return Err(CODE_INVALID);
        }
        if record.expires_at <= Instant::now() {
            return Err(fail("invalid_grant", "expired authorization code"));
        }
        if p.get("redirect_uri") != Some(record.redirect_uri.as_str()) {
            return Err(fail(
                "redirect_uri_mismatch",
                "redirect_uri must match configuration",
            ));
        }
        match &record.code_challenge {
            Some(challenge) => {
                let verifier = p.get("code_verifier").ok_or(VERIFIER_INVALID)?;
                let well_formed = (43..=128).contains(&verifier.len())
                    && verifier
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
                if !well_formed || pkce_s256_challenge(verifier) != *challenge {
                    return Err(VERIFIER_INVALID);
                }
            }
            None if !has_secret => return Err(CLIENT_CREDENTIALS_INVALID),
            None => {}
        }
        let refresh = if grants_refresh(&record.scope) {
            Refresh::New
        } else {
            Refresh::None
        };
        self.issue(inner, &client_id, &record.username, &record.scope, refresh)
    }

    /// `grant_type=refresh_token`, rotating when rotation is on.
    fn refresh_token(&self, inner: &mut Inner, p: &Params) -> Result<Value, TokenError> {
        let client_id = Self::client(inner, p, false)?.client_id.clone();
        let token = p.get("refresh_token").ok_or(REFRESH_INVALID)?;
        let grant = inner
            .refresh
            .get(token)
            .filter(|g| g.client_id == client_id)
            .ok_or(REFRESH_INVALID)?;
        let (username, scope, lineage) = (
            grant.username.clone(),
            grant.scope.clone(),
            grant.lineage.clone(),
        );
        if !inner.user(&username).is_some_and(|u| u.active) {
            return Err(INACTIVE_USER);
        }
        let refresh = if inner.rotate {
            let rotated = inner.rotate_refresh_token(token).ok_or(REFRESH_INVALID)?;
            let lineage = inner.refresh[&rotated].lineage.clone();
            Refresh::Existing {
                lineage,
                rotated: Some(rotated),
            }
        } else {
            Refresh::Existing {
                lineage,
                rotated: None,
            }
        };
        self.issue(inner, &client_id, &username, &scope, refresh)
    }

    /// `grant_type=client_credentials`: My Domain (instance host) only, needs a run-as user.
    fn client_credentials(
        &self,
        inner: &mut Inner,
        host: HostKind,
        p: &Params,
    ) -> Result<Value, TokenError> {
        if host == HostKind::Login {
            return Err(fail(
                "invalid_grant",
                "request not supported on this domain",
            ));
        }
        let app = Self::client(inner, p, true)?;
        let client_id = app.client_id.clone();
        let username = app
            .run_as
            .clone()
            .ok_or(fail("invalid_grant", "no client credentials user enabled"))?;
        if !inner.user(&username).is_some_and(|u| u.active) {
            return Err(INACTIVE_USER);
        }
        self.issue(
            inner,
            &client_id,
            &username,
            &session_scope(),
            Refresh::None,
        )
    }

    /// `grant_type=password` (username-password flow).
    fn password(&self, inner: &mut Inner, p: &Params) -> Result<Value, TokenError> {
        let client_id = Self::client(inner, p, true)?.client_id.clone();
        let user = p
            .get("username")
            .and_then(|name| inner.user(name))
            .filter(|_| p.get("password") == Some(SIM_PASSWORD))
            .ok_or(fail("invalid_grant", "authentication failure"))?;
        if !user.active {
            return Err(INACTIVE_USER);
        }
        let username = user.username.clone();
        self.issue(
            inner,
            &client_id,
            &username,
            &session_scope(),
            Refresh::None,
        )
    }

    /// `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`: RS256 assertion signed by the
    /// key of the app's certificate; `iss` = consumer key, `sub` = username, `aud` = login URL,
    /// `exp` within 3 minutes.
    fn jwt_bearer(&self, inner: &mut Inner, p: &Params) -> Result<Value, TokenError> {
        let assertion = p.get("assertion").ok_or(ASSERTION_INVALID)?;
        let unverified: Value = jsonwebtoken::dangerous::insecure_decode_claims(assertion)
            .map_err(|_| ASSERTION_INVALID)?;
        let iss = unverified
            .get("iss")
            .and_then(Value::as_str)
            .ok_or(CLIENT_ID_INVALID)?;
        let app = inner.app(iss).ok_or(CLIENT_ID_INVALID)?;
        let key = app.certificate.as_ref().ok_or(ASSERTION_INVALID)?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let claims = jsonwebtoken::decode::<Value>(assertion, key, &validation)
            .map_err(|_| ASSERTION_INVALID)?
            .claims;
        let login_url = self.config.login_base_url.trim_end_matches('/');
        let audience_ok = match claims.get("aud") {
            Some(Value::String(aud)) => aud.trim_end_matches('/') == login_url,
            Some(Value::Array(auds)) => auds.iter().any(|a| {
                a.as_str()
                    .is_some_and(|a| a.trim_end_matches('/') == login_url)
            }),
            _ => false,
        };
        if !audience_ok {
            return Err(fail("invalid_grant", "audience is invalid"));
        }
        let now = self.clock.now_ms().div_euclid(1000);
        // NumericDate: integer seconds, though some signers send a float.
        let exp = claims
            .get("exp")
            .and_then(|e| e.as_i64().or_else(|| e.as_f64().map(|f| f as i64)));
        match exp {
            Some(exp) if exp <= now => {
                return Err(fail("invalid_grant", "expired authorization code"));
            }
            Some(exp) if exp > now + JWT_MAX_LIFETIME_SECS => return Err(ASSERTION_INVALID),
            Some(_) => {}
            None => return Err(fail("invalid_grant", "expired authorization code")),
        }
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .ok_or(NOT_APPROVED)?;
        let user = inner.user(sub).ok_or(NOT_APPROVED)?;
        if !app
            .preauthorized
            .iter()
            .any(|u| u.eq_ignore_ascii_case(&user.username))
        {
            return Err(NOT_APPROVED);
        }
        if !user.active {
            return Err(INACTIVE_USER);
        }
        let (client_id, username) = (app.client_id.clone(), user.username.clone());
        self.issue(
            inner,
            &client_id,
            &username,
            &session_scope(),
            Refresh::None,
        )
    }

    /// Mints the access (and maybe refresh) token and renders Salesforce's success JSON.
    fn issue(
        &self,
        inner: &mut Inner,
        client_id: &str,
        username: &str,
        scope: &[String],
        refresh: Refresh,
    ) -> Result<Value, TokenError> {
        let (user_id, secret) = match (inner.user(username), inner.app(client_id)) {
            (Some(user), Some(app)) => (user.user_id.clone(), app.client_secret.clone()),
            _ => return Err(CLIENT_ID_INVALID),
        };
        let (refresh_token, lineage) = match refresh {
            Refresh::None => (None, random_token("", 16, "")),
            Refresh::New => {
                let token = inner.new_refresh_token(client_id, username, scope);
                let lineage = inner.refresh[&token].lineage.clone();
                (Some(token), lineage)
            }
            Refresh::Existing { lineage, rotated } => (rotated, lineage),
        };
        let access_token = inner.new_access_token(&self.config.org_id, username, scope, lineage);
        let id = self.identity_url(&user_id);
        let issued_at = self.clock.now_ms().to_string();
        let mut body = serde_json::Map::new();
        body.insert("access_token".into(), json!(access_token));
        if let Some(refresh_token) = refresh_token {
            body.insert("refresh_token".into(), json!(refresh_token));
        }
        body.insert(
            "signature".into(),
            json!(signature(&secret, &id, &issued_at)),
        );
        body.insert("scope".into(), json!(scope.join(" ")));
        body.insert(
            "instance_url".into(),
            json!(self.config.instance_base_url.trim_end_matches('/')),
        );
        body.insert("id".into(), json!(id));
        body.insert("token_type".into(), json!("Bearer"));
        body.insert("issued_at".into(), json!(issued_at));
        Ok(Value::Object(body))
    }

    /// Revokes an access or refresh token; false when it is neither.
    fn revoke_token(&self, token: &str) -> bool {
        let mut inner = self.lock();
        if inner.access.remove(token).is_some() {
            return true;
        }
        match inner.refresh.remove(token) {
            Some(grant) => {
                inner.access.retain(|_, g| g.lineage != grant.lineage);
                true
            }
            None => false,
        }
    }
}

/// Scopes of sessions without a refresh token (client credentials, JWT, password).
fn session_scope() -> Vec<String> {
    default_scope()
        .into_iter()
        .filter(|s| s != "refresh_token" && s != "offline_access")
        .collect()
}

/// Validates a requested `scope` parameter against the apps' scopes.
pub(super) fn parse_scope(requested: Option<&str>) -> Option<Vec<String>> {
    match requested.map(str::trim).filter(|s| !s.is_empty()) {
        None => Some(default_scope()),
        Some(requested) => {
            let mut scope: Vec<String> = Vec::new();
            for s in requested.split([' ', '+']).filter(|s| !s.is_empty()) {
                if !APP_SCOPES.contains(&s) {
                    return None;
                }
                if !scope.iter().any(|have| have == s) {
                    scope.push(s.to_string());
                }
            }
            Some(scope)
        }
    }
}
