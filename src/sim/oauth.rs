//! INTERFACE PLACEHOLDER, replaced by the OAuth helper's implementation (same signatures).

use std::sync::Arc;
use std::time::Duration;

/// Which listener a request arrived on: the login host (login.salesforce.com) or the
/// instance / My Domain host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKind {
    /// Like login.salesforce.com / test.salesforce.com.
    Login,
    /// Like NAME.my.salesforce.com (the instance_url).
    Instance,
}

/// The simulated org's connected app and user.
#[derive(Debug, Clone)]
pub struct OAuthConfig {
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uris: Vec<String>,
    pub rotate_refresh_tokens: bool,
    pub access_token_ttl: Duration,
    pub username: String,
    pub org_id: String,
    pub user_id: String,
    pub initial_refresh_token: String,
    pub jwt_certificate_pem: String,
    pub login_base_url: String,
    pub instance_base_url: String,
}

/// Identity of a valid session.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub user_id: String,
    pub org_id: String,
}

/// OAuth server state: apps, codes, tokens.
pub struct OAuth {
    pub config: OAuthConfig,
}

impl OAuth {
    pub fn new(config: OAuthConfig) -> Arc<Self> {
        Arc::new(Self { config })
    }
    pub fn routes(self: &Arc<Self>, _host: HostKind) -> axum::Router {
        axum::Router::new()
    }
    #[allow(clippy::result_large_err)]
    pub fn check_bearer(
        &self,
        _authorization: Option<&str>,
    ) -> Result<SessionInfo, axum::response::Response> {
        Ok(SessionInfo {
            user_id: self.config.user_id.clone(),
            org_id: self.config.org_id.clone(),
        })
    }
    pub fn expire_all_tokens(&self) {}
}
