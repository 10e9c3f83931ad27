//! The [`TokenProvider`] every API call goes through: it obtains a token by the configured flow,
//! refreshes it before a known expiry and after a rejection, lets exactly one task refresh at a
//! time (the others wait for its result instead of stampeding the token endpoint), and hands a
//! rotated refresh token to the caller's hook so it can be persisted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Instant, SystemTime};

use super::errors::{AuthError, Grant, RequestContext};
use super::jwt;
use super::oauth::{self, AppCredentials, Endpoints};
use super::token::Token;
use crate::config::{AuthMethod, Config};
use crate::secret::Secret;
use crate::transport::RetryPolicy;

/// Called with the new refresh token when Salesforce rotates it (the old one is then dead), so
/// the command can announce it (CONTROL message) and rewrite the credentials file.
pub type RotationHook = Arc<dyn Fn(&Secret) + Send + Sync>;

/// Hands out valid access tokens; cheap to clone (one shared state).
#[derive(Clone)]
pub struct TokenProvider {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenProvider")
            .field("host", &self.inner.endpoints.host)
            .field("grant", &self.inner.grant)
            .finish_non_exhaustive()
    }
}

enum Flow {
    RefreshToken {
        refresh_token: Mutex<Secret>,
    },
    ClientCredentials,
    JwtBearer {
        username: String,
        private_key: Secret,
        audience: String,
    },
}

struct Inner {
    http: reqwest::Client,
    endpoints: Endpoints,
    app: AppCredentials,
    flow: Flow,
    grant: Grant,
    is_sandbox: bool,
    current: RwLock<Option<Arc<Token>>>,
    /// Held while a token request is in flight: the single-flight gate.
    gate: tokio::sync::Mutex<()>,
    generation: AtomicU64,
    token_requests: AtomicU64,
    on_rotated: Option<RotationHook>,
    retry: RetryPolicy,
}

impl TokenProvider {
    /// A provider for the config's flow and login host; no request is made yet.
    pub fn from_config(
        config: &Config,
        http: reqwest::Client,
        on_rotated: Option<RotationHook>,
        retry: RetryPolicy,
    ) -> Result<TokenProvider, AuthError> {
        let endpoints = Endpoints::new(&config.login_base_url())?;
        let (flow, grant, client_secret) = match &config.auth {
            AuthMethod::RefreshToken {
                client_secret,
                refresh_token,
            } => (
                Flow::RefreshToken {
                    refresh_token: Mutex::new(refresh_token.clone()),
                },
                Grant::RefreshToken,
                client_secret.clone(),
            ),
            AuthMethod::ClientCredentials { client_secret } => (
                Flow::ClientCredentials,
                Grant::ClientCredentials,
                Some(client_secret.clone()),
            ),
            AuthMethod::JwtBearer {
                username,
                private_key,
            } => (
                Flow::JwtBearer {
                    username: username.clone(),
                    private_key: private_key.clone(),
                    audience: jwt::audience(
                        config.is_sandbox,
                        config.domain.as_deref(),
                        config.login_url.as_deref(),
                    ),
                },
                Grant::JwtBearer,
                None,
            ),
        };
        Ok(TokenProvider {
            inner: Arc::new(Inner {
                http,
                endpoints,
                app: AppCredentials {
                    client_id: config.client_id.clone(),
                    client_secret,
                },
                flow,
                grant,
                is_sandbox: config.is_sandbox,
                current: RwLock::new(None),
                gate: tokio::sync::Mutex::new(()),
                generation: AtomicU64::new(0),
                token_requests: AtomicU64::new(0),
                on_rotated,
                retry,
            }),
        })
    }

    /// A valid token: the current one unless it is missing or known to expire within a
    /// minute, in which case one task fetches a new one while the others wait for it.
    pub async fn token(&self) -> Result<Arc<Token>, AuthError> {
        if let Some(t) = self.fresh_current() {
            return Ok(t);
        }
        let _gate = self.inner.gate.lock().await;
        if let Some(t) = self.fresh_current() {
            return Ok(t);
        }
        self.obtain().await
    }

    /// Salesforce rejected the token of generation `rejected` (401 INVALID_SESSION_ID): fetch a
    /// new one, unless another task already did since, in which case that one is returned.
    pub async fn refresh_after_rejection(&self, rejected: u64) -> Result<Arc<Token>, AuthError> {
        let _gate = self.inner.gate.lock().await;
        if let Some(t) = self.current()
            && t.generation != rejected
        {
            return Ok(t);
        }
        self.obtain().await
    }

    /// The last token obtained, if any (possibly expired).
    pub fn current(&self) -> Option<Arc<Token>> {
        self.inner
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How many token requests were sent (refreshes included): tests prove no stampede with it.
    pub fn token_requests(&self) -> u64 {
        self.inner.token_requests.load(Ordering::SeqCst)
    }

    /// The refresh token in use now (after any rotation), for the refresh-token flow.
    pub fn refresh_token(&self) -> Option<Secret> {
        match &self.inner.flow {
            Flow::RefreshToken { refresh_token } => Some(
                refresh_token
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone(),
            ),
            _ => None,
        }
    }

    /// Origin of the login host tokens come from.
    pub fn login_host(&self) -> &str {
        &self.inner.endpoints.host
    }

    fn fresh_current(&self) -> Option<Arc<Token>> {
        self.current().filter(|t| !t.expires_soon(Instant::now()))
    }

    fn context(&self) -> RequestContext {
        RequestContext {
            grant: self.inner.grant,
            host: self.inner.endpoints.host.clone(),
            is_sandbox: self.inner.is_sandbox,
            username: match &self.inner.flow {
                Flow::JwtBearer { username, .. } => Some(username.clone()),
                _ => None,
            },
            redirect_uri: None,
        }
    }

    /// One token request by the flow, retried with backoff while the failure is transient.
    /// Callers hold the gate.
    async fn obtain(&self) -> Result<Arc<Token>, AuthError> {
        let token = crate::transport::retry(
            &self.inner.retry,
            || self.request_once(),
            |e: &AuthError| {
                let transient = e.is_transient();
                if transient {
                    tracing::warn!("token request failed, retrying: {e}");
                }
                transient
            },
        )
        .await?;
        Ok(self.install(token))
    }

    async fn request_once(&self) -> Result<Token, AuthError> {
        let inner = &self.inner;
        let ctx = self.context();
        inner.token_requests.fetch_add(1, Ordering::SeqCst);
        match &inner.flow {
            Flow::RefreshToken { refresh_token } => {
                let current = refresh_token
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                oauth::refresh(&inner.http, &inner.endpoints, &inner.app, &current, &ctx).await
            }
            Flow::ClientCredentials => {
                oauth::client_credentials(&inner.http, &inner.endpoints, &inner.app, &ctx).await
            }
            Flow::JwtBearer {
                username,
                private_key,
                audience,
            } => {
                let assertion = jwt::assertion(
                    &inner.app.client_id,
                    username,
                    audience,
                    private_key,
                    SystemTime::now(),
                )?;
                jwt::exchange(&inner.http, &inner.endpoints, &assertion, &ctx).await
            }
        }
    }

    /// Stores a new token, numbering it, and announces a rotated refresh token.
    fn install(&self, mut token: Token) -> Arc<Token> {
        token.generation = self.inner.generation.fetch_add(1, Ordering::SeqCst) + 1;
        if let (Flow::RefreshToken { refresh_token }, Some(new)) =
            (&self.inner.flow, token.refresh_token.as_ref())
        {
            let rotated = {
                let mut current = refresh_token.lock().unwrap_or_else(|e| e.into_inner());
                if *current != *new {
                    *current = new.clone();
                    true
                } else {
                    false
                }
            };
            if rotated {
                tracing::info!("Salesforce rotated the refresh token");
                if let Some(hook) = &self.inner.on_rotated {
                    hook(new);
                }
            }
        }
        let token = Arc::new(token);
        *self
            .inner
            .current
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(token.clone());
        token
    }
}
