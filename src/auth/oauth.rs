//! Token endpoint calls: the `oauth2` crate for the authorization-code, refresh-token and
//! client-credentials grants, a plain form POST for JWT bearer (which `oauth2` does not model),
//! one transport for all of them, and one conversion of Salesforce's answers into a [`Token`] or
//! an [`AuthError`] with advice.

use std::time::{Duration, Instant};

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken,
    RequestTokenError, Scope, StandardRevocableToken, StandardTokenResponse, TokenResponse as _,
    TokenUrl,
};
use serde::{Deserialize, Serialize};
use url::Url;

use super::errors::{AuthError, RequestContext, classify};
use super::token::Token;
use crate::secret::Secret;
use crate::transport::{TOKEN_CALL_TIMEOUT, checked_url, describe_reqwest_error, origin};

/// The fields Salesforce adds to a token response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SalesforceTokenFields {
    /// Where data calls go.
    pub instance_url: String,
    /// The identity URL.
    pub id: String,
    /// Epoch milliseconds, as a string.
    #[serde(default)]
    pub issued_at: Option<String>,
}

impl ExtraTokenFields for SalesforceTokenFields {}

/// A Salesforce token response as the `oauth2` crate parses it.
pub type SalesforceTokenResponse = StandardTokenResponse<SalesforceTokenFields, BasicTokenType>;

/// The `oauth2` client type for Salesforce, with the authorize and token endpoints set.
type SalesforceClient = oauth2::Client<
    BasicErrorResponse,
    SalesforceTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// The login host's OAuth endpoints.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// Origin of the login host, for messages.
    pub host: String,
    /// `/services/oauth2/authorize`.
    pub authorize: Url,
    /// `/services/oauth2/token`.
    pub token: Url,
}

impl Endpoints {
    /// Endpoints under a login base URL such as `https://login.salesforce.com`; refuses a base
    /// that may not carry credentials.
    pub fn new(login_base_url: &str) -> Result<Endpoints, AuthError> {
        let base = checked_url("login URL", login_base_url)?;
        let join = |path: &str| {
            let mut u = base.clone();
            u.set_path(path);
            u.set_query(None);
            u
        };
        Ok(Endpoints {
            host: origin(&base),
            authorize: join("/services/oauth2/authorize"),
            token: join("/services/oauth2/token"),
        })
    }
}

/// The connected app's credentials.
#[derive(Debug, Clone)]
pub struct AppCredentials {
    /// Consumer Key.
    pub client_id: String,
    /// Consumer Secret, when the flow or app uses one.
    pub client_secret: Option<Secret>,
}

fn oauth_client(endpoints: &Endpoints, app: &AppCredentials) -> SalesforceClient {
    let mut client = oauth2::Client::new(ClientId::new(app.client_id.clone()))
        .set_auth_uri(AuthUrl::from_url(endpoints.authorize.clone()))
        .set_token_uri(TokenUrl::from_url(endpoints.token.clone()))
        // Salesforce documents credentials in the form body; Basic also works, but PKCE apps
        // without a secret need the client_id in the body anyway.
        .set_auth_type(AuthType::RequestBody);
    if let Some(secret) = &app.client_secret {
        client = client.set_client_secret(ClientSecret::new(secret.expose().to_string()));
    }
    client
}

/// Why a token call got no usable HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// Network failure (DNS, refused, TLS, timeout, cut off).
    #[error("{0}")]
    Network(String),
    /// 5xx or 429: the server did not process the request.
    #[error("HTTP {0}")]
    Server(u16),
    /// The request could not be built.
    #[error("invalid request")]
    Build,
}

/// Sends one token request (with a whole-request timeout, no redirects) and hands 2xx/4xx
/// answers to the caller; 5xx/429 and network failures become [`TransportError`].
pub async fn send(
    http: &reqwest::Client,
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, TransportError> {
    let mut request = reqwest::Request::try_from(request).map_err(|_| TransportError::Build)?;
    *request.timeout_mut() = Some(TOKEN_CALL_TIMEOUT);
    let response = http
        .execute(request)
        .await
        .map_err(|e| TransportError::Network(describe_reqwest_error(&e)))?;
    let status = response.status();
    if status.is_server_error() || status.as_u16() == 429 {
        return Err(TransportError::Server(status.as_u16()));
    }
    let mut builder = oauth2::http::Response::builder().status(status);
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| TransportError::Network(describe_reqwest_error(&e)))?;
    builder
        .body(body.to_vec())
        .map_err(|_| TransportError::Build)
}

/// The `oauth2` crate's HTTP client: [`send`] behind a boxed `Send` future, so token requests
/// can run inside spawned tasks.
struct TokenHttp(reqwest::Client);

impl<'c> oauth2::AsyncHttpClient<'c> for TokenHttp {
    type Error = TransportError;
    type Future = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<oauth2::HttpResponse, TransportError>>
                + Send
                + 'c,
        >,
    >;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(send(&self.0, request))
    }
}

/// Turns the `oauth2` crate's result into a token or advice.
fn finish(
    result: Result<SalesforceTokenResponse, RequestTokenError<TransportError, BasicErrorResponse>>,
    ctx: &RequestContext,
) -> Result<Token, AuthError> {
    match result {
        Ok(response) => token_from_response(response, ctx),
        Err(RequestTokenError::ServerResponse(e)) => Err(classify(
            ctx,
            e.error().as_ref(),
            e.error_description().map(String::as_str).unwrap_or(""),
        )),
        Err(RequestTokenError::Request(e)) => Err(transport_error(e, ctx)),
        // Never the body or serde's message (they may quote a token): only where parsing stopped.
        Err(RequestTokenError::Parse(e, _)) => Err(AuthError::BadTokenResponse {
            host: ctx.host.clone(),
            detail: format!("unexpected JSON at `{}`", e.path()),
        }),
        Err(RequestTokenError::Other(s)) => Err(AuthError::BadTokenResponse {
            host: ctx.host.clone(),
            detail: s,
        }),
    }
}

/// The auth error for a token request that failed in transport (shared with the JWT flow).
pub(super) fn transport_error(e: TransportError, ctx: &RequestContext) -> AuthError {
    match e {
        TransportError::Network(detail) => AuthError::Unreachable {
            host: ctx.host.clone(),
            detail,
        },
        TransportError::Server(status) => AuthError::ServerError {
            host: ctx.host.clone(),
            status,
        },
        TransportError::Build => AuthError::BadTokenResponse {
            host: ctx.host.clone(),
            detail: "the token request could not be built".into(),
        },
    }
}

pub(super) fn token_from_response(
    response: SalesforceTokenResponse,
    ctx: &RequestContext,
) -> Result<Token, AuthError> {
    let extra = response.extra_fields();
    let instance = checked_url("instance URL", &extra.instance_url)?;
    checked_url("identity URL", &extra.id)?;
    if response.token_type() != &BasicTokenType::Bearer {
        return Err(AuthError::BadTokenResponse {
            host: ctx.host.clone(),
            detail: format!(
                "token_type {:?} is not Bearer",
                response.token_type().as_ref()
            ),
        });
    }
    Ok(Token {
        access_token: Secret::new(response.access_token().secret().clone()),
        instance_url: origin(&instance),
        identity_url: extra.id.clone(),
        scopes: response
            .scopes()
            .map(|s| s.iter().map(|s| s.to_string()).collect())
            .unwrap_or_default(),
        issued_at_ms: extra.issued_at.as_deref().and_then(|s| s.parse().ok()),
        expires_at: response.expires_in().map(|d: Duration| Instant::now() + d),
        refresh_token: response
            .refresh_token()
            .map(|t| Secret::new(t.secret().clone())),
        generation: 0,
    })
}

/// `grant_type=refresh_token`.
pub async fn refresh(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    app: &AppCredentials,
    refresh_token: &Secret,
    ctx: &RequestContext,
) -> Result<Token, AuthError> {
    let client = oauth_client(endpoints, app);
    let token = RefreshToken::new(refresh_token.expose().to_string());
    let call = TokenHttp(http.clone());
    let result = client
        .exchange_refresh_token(&token)
        .request_async(&call)
        .await;
    finish(result, ctx)
}

/// `grant_type=client_credentials` (My Domain host only).
pub async fn client_credentials(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    app: &AppCredentials,
    ctx: &RequestContext,
) -> Result<Token, AuthError> {
    let client = oauth_client(endpoints, app);
    let call = TokenHttp(http.clone());
    let result = client
        .exchange_client_credentials()
        .request_async(&call)
        .await;
    finish(result, ctx)
}

/// `grant_type=authorization_code`, with the PKCE verifier when one was sent.
pub async fn exchange_code(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    app: &AppCredentials,
    code: &Secret,
    verifier: Option<&Secret>,
    ctx: &RequestContext,
) -> Result<Token, AuthError> {
    let redirect = redirect_url(ctx)?;
    let client = oauth_client(endpoints, app).set_redirect_uri(redirect);
    let mut request = client.exchange_code(AuthorizationCode::new(code.expose().to_string()));
    if let Some(v) = verifier {
        request = request.set_pkce_verifier(PkceCodeVerifier::new(v.expose().to_string()));
    }
    let call = TokenHttp(http.clone());
    let result = request.request_async(&call).await;
    finish(result, ctx)
}

fn redirect_url(ctx: &RequestContext) -> Result<RedirectUrl, AuthError> {
    let uri = ctx.redirect_uri.clone().unwrap_or_default();
    RedirectUrl::new(uri).map_err(|_| AuthError::BadTokenResponse {
        host: ctx.host.clone(),
        detail: "the callback URL is not a URL".into(),
    })
}

/// The authorize URL of the web-server flow, with the S256 PKCE challenge of `verifier` and
/// the anti-forgery `state`.
pub fn authorize_url(
    endpoints: &Endpoints,
    client_id: &str,
    redirect_uri: &str,
    scopes: &str,
    verifier: &Secret,
    state: &str,
) -> Result<Url, AuthError> {
    let app = AppCredentials {
        client_id: client_id.to_string(),
        client_secret: None,
    };
    let ctx = RequestContext {
        grant: super::errors::Grant::AuthorizationCode,
        host: endpoints.host.clone(),
        is_sandbox: false,
        username: None,
        redirect_uri: Some(redirect_uri.to_string()),
    };
    let client = oauth_client(endpoints, &app).set_redirect_uri(redirect_url(&ctx)?);
    let challenge = PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(
        verifier.expose().to_string(),
    ));
    let state = state.to_string();
    let (url, _) = client
        .authorize_url(move || CsrfToken::new(state))
        .add_scopes(scopes.split_whitespace().map(|s| Scope::new(s.to_string())))
        .set_pkce_challenge(challenge)
        .url();
    Ok(url)
}
