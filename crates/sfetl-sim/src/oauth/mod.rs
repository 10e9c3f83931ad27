//! The simulator's OAuth 2.0 server: Salesforce's `/services/oauth2/*` endpoints, the identity
//! URL, and the bearer check every simulated data call goes through.
//!
//! It speaks Salesforce's documented wire formats (see `SALESFORCE_API.md`) so the connector's
//! `auth/` code, `sfetl login`, `sfetl check` and unmodified third-party clients can be tested
//! against it over real HTTP. It shares no code with `auth/`.
//!
//! # The simulated org
//!
//! | what | value |
//! |---|---|
//! | primary connected app | `OAuthConfig::client_id` / `client_secret`; callback URLs `OAuthConfig::redirect_uris`; certificate `OAuthConfig::jwt_certificate_pem`; client-credentials run-as user: the primary user; JWT pre-authorised users: both users below; secret optional for the web-server flow **when PKCE is used** and for refresh |
//! | second connected app | [`NO_RUN_AS_CLIENT_ID`] / [`NO_RUN_AS_CLIENT_SECRET`]: same callback URLs and certificate, **no run-as user** and **no pre-authorised user** |
//! | primary user | `OAuthConfig::username` / `user_id`, "API Enabled" |
//! | second user | [`NO_API_USERNAME`] / [`NO_API_USER_ID`]: **without "API Enabled"** |
//! | password of every user | [`SIM_PASSWORD`] (login page, `grant_type=password`) |
//! | scopes of both apps | `api id web full refresh_token offline_access` (none requested: `api id web refresh_token offline_access`) |
//!
//! [`OAuthConfig::simulated`] builds a ready configuration with the test-only key pair of
//! `crates/sfetl-sim/fixtures/oauth/` ([`TEST_PRIVATE_KEY_PEM`], [`test_private_key_path`]).
//!
//! # Endpoints (on both the login host and the instance host unless said otherwise)
//!
//! - `GET /services/oauth2/authorize?response_type=code&client_id&redirect_uri&state&scope&code_challenge&code_challenge_method=S256`
//!   (also `login_hint`): an HTML login-and-consent page (`form#consent`, inputs `#username`
//!   (pre-filled), `#password` (blank or [`SIM_PASSWORD`]), buttons `#allow` / `#deny`, no
//!   JavaScript). Allow answers `302` to `redirect_uri?code=..&state=..`; Deny to
//!   `redirect_uri?error=access_denied&error_description=end-user+denied+authorization&state=..`.
//!   Codes end in `==` like Salesforce's, so clients must URL-decode them; they live 15 minutes,
//!   are single-use (consumed by the first exchange attempt, even a failed one) and bound to the
//!   client, the user and the redirect URI. Errors:
//!   - unknown `client_id`: `302` to `/setup/secur/RemoteAccessErrorPage.apexp?display=page&error=invalid_client_id&error_description=client+identifier+invalid`
//!     (a `200` HTML page), as Salesforce never redirects to an unverified callback;
//!   - `redirect_uri` missing or not registered: same page with `error=redirect_uri_mismatch`;
//!   - on the callback (with `state`): `unsupported_response_type` (anything but `code`),
//!     `invalid_request` (`code_challenge_method` other than `S256`, or a malformed challenge;
//!     a missing method means S256), `invalid_scope` (a scope the app does not have),
//!     `access_denied` (Deny).
//!   - wrong username or password: the page again with "Please check your username and password".
//!   - `POST /services/oauth2/authorize` without `request_id` is treated like the `GET`.
//! - `POST /services/oauth2/token` (form-encoded; parameters in the query string are also read,
//!   as Salesforce does; client credentials in the form or as HTTP Basic). A body that is not
//!   `application/x-www-form-urlencoded` is ignored, which gives `unsupported_grant_type` like
//!   Salesforce. Success is `200`
//!   `{"access_token","refresh_token"?,"signature","scope","instance_url","id","token_type":"Bearer","issued_at"}`
//!   where `id` is `{login_base_url}/id/{org_id}/{user_id}`, `issued_at` epoch milliseconds as a
//!   string and `signature` base64 HMAC-SHA256(key = client secret, `id` + `issued_at`). Every
//!   error is `400` `{"error","error_description"}`:
//!
//! | grant | failure | `error` / `error_description` |
//! |---|---|---|
//! | any | unknown or missing `grant_type`, or not form-encoded | `unsupported_grant_type` / `grant type not supported` |
//! | any with a client | unknown `client_id` (JWT: unknown `iss`) | `invalid_client_id` / `client identifier invalid` |
//! | any with a client | wrong `client_secret` (or missing where required) | `invalid_client` / `invalid client credentials` |
//! | `authorization_code` | unknown, used or other client's code | `invalid_grant` / `invalid authorization code` |
//! | `authorization_code` | code older than 15 minutes | `invalid_grant` / `expired authorization code` |
//! | `authorization_code` | `redirect_uri` differs from the authorize request | `redirect_uri_mismatch` / `redirect_uri must match configuration` |
//! | `authorization_code` | PKCE verifier missing or `base64url(SHA256(verifier)) != challenge` | `invalid_request` / `invalid code verifier` |
//! | `authorization_code` | no PKCE and no secret | `invalid_client` / `invalid client credentials` |
//! | `refresh_token` | unknown, revoked, rotated-away or other app's token | `invalid_grant` / `expired access/refresh token` |
//! | `client_credentials` | on the login host | `invalid_grant` / `request not supported on this domain` |
//! | `client_credentials` | app without run-as user ([`NO_RUN_AS_CLIENT_ID`]) | `invalid_grant` / `no client credentials user enabled` |
//! | `password` | unknown user or wrong password | `invalid_grant` / `authentication failure` |
//! | `urn:ietf:params:oauth:grant-type:jwt-bearer` | malformed, not RS256, bad signature, or `exp` more than 3 minutes (+30 s skew) ahead of the org's clock (`/__sim/clock` `offset_seconds`) | `invalid_grant` / `invalid assertion` |
//! | JWT | `aud` is not `login_base_url` | `invalid_grant` / `audience is invalid` |
//! | JWT | `exp` missing or past by the org's clock | `invalid_grant` / `expired authorization code` |
//! | JWT | unknown `sub`, or user not pre-authorised (second app) | `invalid_grant` / `user hasn't approved this consumer` |
//! | all user grants | user deactivated (control endpoint) | `invalid_grant` / `inactive user` |
//!
//!   A `refresh_token` is returned by the code flow when the granted scope has `refresh_token` or
//!   `offline_access`, and by a refresh only while rotation is on (then the old one is dead).
//!   Client credentials, JWT and password grants never return one.
//! - `POST /services/oauth2/revoke` (`token=`; also `GET ?token=`): `200` empty. Revoking a
//!   refresh token also kills the access tokens minted from it. Unknown token: `400`
//!   `error=unsupported_token_type&error_description=this+token+type+is+not+supported`
//!   (form-encoded as Salesforce answers; JSON when the request accepts `application/json`).
//! - `GET|POST /id/{orgId}/{userId}` (token as `Authorization: Bearer` / `OAuth`, or
//!   `oauth_token` / `access_token` query parameter): Salesforce's identity JSON (`id,
//!   asserted_user, user_id, organization_id, username, nick_name, display_name, email, ...,
//!   urls{enterprise, metadata, partner, rest, sobjects, search, query, recent, tooling_soap,
//!   tooling_rest, profile, ...}, active, user_type, language, locale, utcOffset,
//!   last_modified_date, is_app_installed`); URLs hold the literal `{version}` unless a numeric
//!   `version` parameter is given. Errors are plain text: `403 Missing_OAuth_Token`,
//!   `403 Bad_OAuth_Token` (invalid, expired or revoked), `403 Wrong_Org`, `404 Bad_Id`,
//!   `404 No_Access` (another user's URL without API access), `404 Inactive`. Works for a user
//!   without "API Enabled" (as on Salesforce), so `check` can name that problem.
//! - `GET|POST /services/oauth2/userinfo`: the OpenID Connect user info JSON; same errors.
//! - `GET /setup/secur/RemoteAccessErrorPage.apexp`: the authorize error page.
//!
//! # Data calls: [`OAuth::check_bearer`]
//!
//! The simulator calls it on every data request. Missing, unknown, expired, revoked token or a
//! deactivated user: `401` `[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]`;
//! a token without the `api` or `full` scope: `401` with `This session is not valid for use
//! with the REST API`; a user without "API Enabled": `403`
//! `[{"message":"The REST API is not enabled for this Organization.","errorCode":"API_DISABLED_FOR_ORG"}]`.
//! Access tokens live `OAuthConfig::access_token_ttl` from issue (fixed, not sliding), so
//! clients must refresh; a TTL of zero makes every new token already expired.
//!
//! # Failure scenarios for `sfetl check` and how to trigger them
//!
//! | scenario | how |
//! |---|---|
//! | wrong Consumer Key | any `client_id` not configured |
//! | wrong Consumer Secret | the right `client_id` with another secret |
//! | revoked / expired refresh token | `POST /__sim/oauth/revoke_refresh_tokens`, `/services/oauth2/revoke`, or a rotated-away token |
//! | expired access token mid-sync | `POST /__sim/oauth/expire_access_tokens` ([`OAuth::expire_all_tokens`]) or `POST /__sim/oauth/ttl {"seconds":0}` |
//! | Callback URL mismatch | authorize with an unregistered `redirect_uri` (or a different one at the token call) |
//! | user without "API Enabled" | a token for [`NO_API_USERNAME`] (JWT `sub`, the login page, or `issue_refresh_token`), or `POST /__sim/oauth/api_enabled {"enabled":false}` for the primary user |
//! | client credentials without run-as user | `client_credentials` with [`NO_RUN_AS_CLIENT_ID`] on the instance host |
//! | client credentials on login/test host | `client_credentials` on the login host |
//! | JWT user not pre-authorised | JWT with `iss` = [`NO_RUN_AS_CLIENT_ID`] |
//! | JWT against the other environment | `aud` other than `login_base_url` (e.g. `https://test.salesforce.com`) |
//! | deactivated user | `POST /__sim/oauth/user_active {"active":false}` |
//! | user denies consent | click Deny (`#deny`) |
//!
//! # Control endpoints: [`OAuth::control_routes`], mounted by the simulator under `/__sim/oauth/`
//!
//! All answer JSON. `username` defaults to the primary user, `client_id` to the primary app;
//! an unknown one answers `404 {"error":"..."}`.
//!
//! | request | effect | answer |
//! |---|---|---|
//! | `GET state` | settings and live token counts | `{"rotate_refresh_tokens","access_token_ttl_seconds","apps":[..],"users":[..],"live_access_tokens","live_refresh_tokens"}` |
//! | `POST expire_access_tokens` | every access token expires now | `{"expired": N}` |
//! | `POST revoke_refresh_tokens` | every refresh token (and its access tokens) revoked | `{"revoked": N}` |
//! | `POST rotation {"enabled": bool}` | refresh token rotation on/off | `{"rotate_refresh_tokens": bool}` |
//! | `POST ttl {"seconds": N}` | TTL of access tokens issued from now on | `{"access_token_ttl_seconds": N}` |
//! | `POST api_enabled {"username"?, "enabled": bool}` | the user's "API Enabled" | `{"username","api_enabled"}` |
//! | `POST user_active {"username"?, "active": bool}` | (de)activate a user; deactivating kills its sessions | `{"username","active"}` |
//! | `POST redirect_uris {"client_id"?, "uri"}` | register another callback URL | `{"client_id","redirect_uris":[..]}` |
//! | `POST issue_refresh_token {"client_id"?, "username"?}` | a refresh token as if the user had approved the app | `{"refresh_token"}` |
//! | `POST approval_limit {"max": N}` | approvals of one app a user may hold (default 5); the next approval revokes the oldest one's refresh token | `{"approval_limit": N}` |

mod authorize;
mod control;
mod identity;
mod model;
mod token;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use model::{Inner, random_token};

/// The test-only RSA private key (PKCS#8 PEM) matching [`TEST_CERTIFICATE_PEM`]: clients of the
/// simulator sign JWT bearer assertions with it. Public on purpose; never trust it.
pub const TEST_PRIVATE_KEY_PEM: &str = include_str!("../../fixtures/oauth/test_private_key.pem");

/// The test-only self-signed X.509 certificate uploaded to the simulated connected apps, against
/// which JWT bearer assertions are verified.
pub const TEST_CERTIFICATE_PEM: &str = include_str!("../../fixtures/oauth/test_certificate.pem");

/// A second test-only RSA private key that matches no certificate, so tests can prove a wrongly
/// signed assertion is refused.
pub const TEST_OTHER_PRIVATE_KEY_PEM: &str =
    include_str!("../../fixtures/oauth/test_other_private_key.pem");

/// Client id of the second connected app: no client-credentials run-as user and no
/// pre-authorised JWT user, so those two set-up mistakes can be reproduced.
pub const NO_RUN_AS_CLIENT_ID: &str = "3MVG9sfetlSIM.SecondApp.NoRunAsUser";

/// Consumer secret of the second connected app ([`NO_RUN_AS_CLIENT_ID`]).
pub const NO_RUN_AS_CLIENT_SECRET: &str =
    "SIM2NDAPPSECRET000000000000000000000000000000000000000000000002";

/// Username of the second user, who lacks the "API Enabled" permission: its data calls answer
/// `403 API_DISABLED_FOR_ORG`, which `sfetl check` must explain.
pub const NO_API_USERNAME: &str = "noapi.user@sfetl-sim.example.com";

/// User id of [`NO_API_USERNAME`] (18 characters, like Salesforce ids).
pub const NO_API_USER_ID: &str = "0050000000NoApiAAA";

/// The password every simulated user has (login page and `grant_type=password`).
pub const SIM_PASSWORD: &str = "sim-password";

/// How long an authorization code can be exchanged, as on Salesforce.
const AUTHORIZATION_CODE_TTL: Duration = Duration::from_secs(15 * 60);

/// How long a login page (its `request_id`) stays usable.
const PENDING_AUTHORIZATION_TTL: Duration = Duration::from_secs(30 * 60);

/// Path of [`TEST_PRIVATE_KEY_PEM`] for `sfetl simulate`'s `private_key_path`: the committed
/// fixture when the source tree is present, else a copy written (mode 0600) to the temporary
/// directory, so an installed binary can still print a usable path.
///
/// The source tree is the one the binary was built in, or the one cargo runs it from: a
/// target directory shared between checkouts can hold a test binary built in another
/// checkout (cargo finds it fresh when this one's files are older), perhaps one since removed.
pub fn test_private_key_path() -> std::io::Result<PathBuf> {
    let built_in = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let run_from = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    for dir in std::iter::once(built_in).chain(run_from) {
        let in_tree = dir.join("fixtures/oauth/test_private_key.pem");
        if in_tree.is_file() {
            return Ok(in_tree);
        }
    }
    let path = std::env::temp_dir().join("sfetl-sim-test-only-private-key.pem");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(&path)?;
    std::io::Write::write_all(&mut file, TEST_PRIVATE_KEY_PEM.as_bytes())?;
    Ok(path)
}

/// The PKCE S256 code challenge of a verifier, `base64url(SHA256(verifier))` without padding
/// (RFC 7636 §4.2); public so tests and the simulator agree on one definition.
pub fn pkce_s256_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Which listener a request arrived on: the login host (login.salesforce.com) or the
/// instance / My Domain host. Client credentials only work on the instance host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKind {
    /// Like login.salesforce.com / test.salesforce.com.
    Login,
    /// Like NAME.my.salesforce.com (the instance_url).
    Instance,
}

/// The simulated org's primary connected app and user, and the two base URLs the server puts
/// into its answers (`instance_url`, identity URL, JWT audience).
#[derive(Debug, Clone)]
pub struct OAuthConfig {
    /// Consumer key of the primary connected app.
    pub client_id: String,
    /// Consumer secret of the primary connected app.
    pub client_secret: String,
    /// Callback URLs registered on both connected apps (exact match, as on Salesforce).
    pub redirect_uris: Vec<String>,
    /// Initial refresh token rotation setting (changed later with [`OAuth::set_rotation`]).
    pub rotate_refresh_tokens: bool,
    /// Initial access token lifetime (changed later with [`OAuth::set_access_token_ttl`]).
    pub access_token_ttl: Duration,
    /// Username of the primary user (API enabled, run-as user of client credentials).
    pub username: String,
    /// Organization id (`00D...`) in tokens, identity URLs and identity JSON.
    pub org_id: String,
    /// User id (`005...`) of the primary user.
    pub user_id: String,
    /// A refresh token already valid at start (primary app, primary user), printed by
    /// `sfetl simulate` like a pasted token from an admin.
    pub initial_refresh_token: String,
    /// PEM X.509 certificate (or public key) of both connected apps, for JWT bearer.
    pub jwt_certificate_pem: String,
    /// Base URL of the login host, e.g. `http://127.0.0.1:PORT` (no trailing slash needed):
    /// the JWT audience and the base of identity URLs.
    pub login_base_url: String,
    /// Base URL of the instance host: the token responses' `instance_url`.
    pub instance_base_url: String,
}

impl OAuthConfig {
    /// A complete configuration with the simulator's well-known primary app and user, the
    /// test-only certificate, a random initial refresh token and Salesforce's default two-hour
    /// session, so callers only supply the two base URLs they bound.
    pub fn simulated(
        login_base_url: impl Into<String>,
        instance_base_url: impl Into<String>,
    ) -> Self {
        Self {
            client_id: "3MVG9sfetlSIM.PrimaryConnectedApp.ConsumerKey".to_string(),
            client_secret: "SIMPRIMARYSECRET00000000000000000000000000000000000000000000001"
                .to_string(),
            redirect_uris: vec![
                "http://localhost:1717/oauth/callback".to_string(),
                "http://127.0.0.1:1717/oauth/callback".to_string(),
            ],
            rotate_refresh_tokens: false,
            access_token_ttl: Duration::from_secs(2 * 60 * 60),
            username: "integration.user@sfetl-sim.example.com".to_string(),
            org_id: "00DSIM000000001AAA".to_string(),
            user_id: "005SIM000000001AAA".to_string(),
            initial_refresh_token: random_token("5Aep861", 80, "."),
            jwt_certificate_pem: TEST_CERTIFICATE_PEM.to_string(),
            login_base_url: login_base_url.into(),
            instance_base_url: instance_base_url.into(),
        }
    }
}

/// Identity of a valid session, handed to the simulator's data handlers.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// The session's user (`005...`).
    pub user_id: String,
    /// The org (`00D...`).
    pub org_id: String,
}

/// The OAuth server: connected apps, users, codes and tokens behind one mutex (requests are
/// short and never hold it across an await, so concurrent clients are safe and consistent:
/// e.g. of two concurrent refreshes of one rotating token exactly one wins).
pub struct OAuth {
    /// The configuration it was started with. Runtime changes (rotation, TTL, redirect URIs)
    /// live in the server state, not here.
    pub config: OAuthConfig,
    inner: Mutex<Inner>,
    /// The org's clock, by which the token endpoint judges a JWT's `exp` and stamps
    /// `issued_at`, as the rest of the simulator does (the simulator shares this one).
    pub clock: crate::clock::OrgClock,
}

/// Router state: the server and the host the router serves.
#[derive(Clone)]
struct Ctx {
    oauth: Arc<OAuth>,
    host: HostKind,
}

impl Ctx {
    /// Base URL of the host this router serves, for absolute redirects.
    fn base_url(&self) -> &str {
        let url = match self.host {
            HostKind::Login => &self.oauth.config.login_base_url,
            HostKind::Instance => &self.oauth.config.instance_base_url,
        };
        url.trim_end_matches('/')
    }
}

/// Why a bearer token was refused.
enum BearerFailure {
    /// Missing, unknown, expired, revoked, or the user is inactive.
    Invalid,
    /// The token's scope has neither `api` nor `full`.
    NotApiScope,
    /// The user lacks "API Enabled".
    ApiDisabled,
}

impl OAuth {
    /// Builds the server with its two apps and two users; the initial refresh token is valid.
    pub fn new(config: OAuthConfig) -> Arc<Self> {
        let inner = Inner::new(&config);
        Arc::new(Self {
            config,
            inner: Mutex::new(inner),
            clock: Default::default(),
        })
    }

    /// The OAuth and identity endpoints for one host (state applied), for the simulator to merge
    /// into that host's router. Both hosts serve the same endpoints; only client credentials
    /// differ (instance host only).
    pub fn routes(self: &Arc<Self>, host: HostKind) -> axum::Router {
        let ctx = Ctx {
            oauth: Arc::clone(self),
            host,
        };
        axum::Router::new()
            .route(
                "/services/oauth2/authorize",
                get(authorize::authorize_get).post(authorize::authorize_post),
            )
            .route("/services/oauth2/token", axum::routing::post(token::token))
            .route(
                "/services/oauth2/revoke",
                get(token::revoke).post(token::revoke),
            )
            .route(
                "/services/oauth2/userinfo",
                get(identity::userinfo).post(identity::userinfo),
            )
            .route(
                "/id/{org_id}/{user_id}",
                get(identity::identity).post(identity::identity),
            )
            .route(
                "/setup/secur/RemoteAccessErrorPage.apexp",
                get(authorize::error_page),
            )
            .with_state(ctx)
    }

    /// Test-control endpoints (see the module docs) for the simulator to mount with
    /// `Router::nest("/__sim/oauth", oauth.control_routes())`.
    pub fn control_routes(self: &Arc<Self>) -> axum::Router {
        control::routes(Arc::clone(self))
    }

    /// Checks the raw `Authorization` header of a data call (`Bearer TOKEN` or `OAuth TOKEN`).
    /// Errors are ready responses: `401 INVALID_SESSION_ID` for a missing, unknown, expired or
    /// revoked token, `403 API_DISABLED_FOR_ORG` for a user without "API Enabled".
    #[allow(clippy::result_large_err)]
    pub fn check_bearer(
        &self,
        authorization: Option<&str>,
    ) -> Result<SessionInfo, axum::response::Response> {
        match self.bearer(authorization) {
            Ok((info, _)) => Ok(info),
            Err(BearerFailure::Invalid) => Err(salesforce_error(
                StatusCode::UNAUTHORIZED,
                "Session expired or invalid",
                "INVALID_SESSION_ID",
            )),
            Err(BearerFailure::NotApiScope) => Err(salesforce_error(
                StatusCode::UNAUTHORIZED,
                "This session is not valid for use with the REST API",
                "INVALID_SESSION_ID",
            )),
            Err(BearerFailure::ApiDisabled) => Err(salesforce_error(
                StatusCode::FORBIDDEN,
                "The REST API is not enabled for this Organization.",
                "API_DISABLED_FOR_ORG",
            )),
        }
    }

    /// Key of the session lineage of a valid token: the same for every access token minted from
    /// one refresh token, new after a rotation. Lets the simulator tie query locators to a
    /// session ("a locator belongs to its session").
    pub fn session_key(&self, authorization: Option<&str>) -> Option<String> {
        let token = bearer_token(authorization?)?;
        let inner = self.lock();
        let grant = inner.access.get(token)?;
        (grant.expires_at > Instant::now()).then(|| grant.lineage.clone())
    }

    /// Whether the session's user has "API Enabled" (false for unknown users).
    pub fn api_enabled(&self, session: &SessionInfo) -> bool {
        let inner = self.lock();
        inner
            .user_by_id(&session.user_id)
            .is_some_and(|u| u.api_enabled)
    }

    /// Expires every access token now (refresh tokens stay valid), so tests can prove clients
    /// refresh on `401 INVALID_SESSION_ID` without sleeping.
    pub fn expire_all_tokens(&self) {
        self.expire_access_tokens();
    }

    /// Like [`OAuth::expire_all_tokens`], returning how many live tokens it expired.
    pub fn expire_access_tokens(&self) -> usize {
        let mut inner = self.lock();
        let now = Instant::now();
        let live = inner.access.values().filter(|g| g.expires_at > now).count();
        inner.access.clear();
        live
    }

    /// Revokes every refresh token and the access tokens minted from them (what an admin's
    /// "Revoke" in Setup does); returns how many refresh tokens died.
    pub fn revoke_all_refresh_tokens(&self) -> usize {
        let mut inner = self.lock();
        let lineages: Vec<String> = inner.refresh.values().map(|g| g.lineage.clone()).collect();
        let revoked = inner.refresh.len();
        inner.refresh.clear();
        inner.access.retain(|_, g| !lineages.contains(&g.lineage));
        revoked
    }

    /// Sets how many approvals of one app a user may hold (Salesforce: 5); the next approval
    /// revokes the oldest one's refresh token.
    pub fn set_approval_limit(&self, max: usize) {
        self.lock().approval_limit = max.max(1);
    }

    /// The approvals of one app a user may hold.
    pub fn approval_limit(&self) -> usize {
        self.lock().approval_limit
    }

    /// Turns refresh token rotation on or off (the app's refresh token policy).
    pub fn set_rotation(&self, enabled: bool) {
        self.lock().rotate = enabled;
    }

    /// Whether refresh token rotation is on.
    pub fn rotation(&self) -> bool {
        self.lock().rotate
    }

    /// Sets the lifetime of access tokens issued from now on (zero: born expired).
    pub fn set_access_token_ttl(&self, ttl: Duration) {
        self.lock().ttl = ttl;
    }

    /// The current access token lifetime.
    pub fn access_token_ttl(&self) -> Duration {
        self.lock().ttl
    }

    /// Grants or removes "API Enabled" for a user; false when the username is unknown.
    pub fn set_api_enabled(&self, username: &str, enabled: bool) -> bool {
        let mut inner = self.lock();
        match inner.user_mut(username) {
            Some(user) => {
                user.api_enabled = enabled;
                true
            }
            None => false,
        }
    }

    /// Activates or deactivates a user; deactivation ends its sessions and refresh tokens
    /// answer `inactive user`. False when the username is unknown.
    pub fn set_user_active(&self, username: &str, active: bool) -> bool {
        let mut inner = self.lock();
        match inner.user_mut(username) {
            Some(user) => {
                user.active = active;
            }
            None => return false,
        }
        if !active {
            inner.access.retain(|_, g| g.username != username);
        }
        true
    }

    /// Registers one more callback URL on an app (tests listen on ephemeral ports); false when
    /// the client id is unknown.
    pub fn add_redirect_uri(&self, client_id: &str, uri: &str) -> bool {
        let mut inner = self.lock();
        match inner.apps.iter_mut().find(|a| a.client_id == client_id) {
            Some(app) => {
                if !app.redirect_uris.iter().any(|u| u == uri) {
                    app.redirect_uris.push(uri.to_string());
                }
                true
            }
            None => false,
        }
    }

    /// A refresh token for a user of an app with the app's default scopes, as if the user had
    /// approved it in a browser; None when the app or user is unknown.
    pub fn issue_refresh_token(&self, client_id: &str, username: &str) -> Option<String> {
        let mut inner = self.lock();
        inner.app(client_id)?;
        inner.user(username)?;
        let scope = model::default_scope();
        Some(inner.new_refresh_token(client_id, username, &scope))
    }

    /// An access token for a user of an app (default scopes, current TTL), for simulator tests
    /// that do not exercise OAuth itself; None when the app or user is unknown.
    pub fn issue_access_token(&self, client_id: &str, username: &str) -> Option<String> {
        let mut inner = self.lock();
        inner.app(client_id)?;
        inner.user(username)?;
        let scope = model::default_scope();
        let lineage = random_token("", 16, "");
        Some(inner.new_access_token(&self.config.org_id, username, &scope, lineage))
    }

    /// Validates a bearer header: the session and the user's username.
    fn bearer(&self, authorization: Option<&str>) -> Result<(SessionInfo, String), BearerFailure> {
        let token = authorization
            .and_then(bearer_token)
            .ok_or(BearerFailure::Invalid)?;
        let inner = self.lock();
        let grant = inner.access.get(token).ok_or(BearerFailure::Invalid)?;
        if grant.expires_at <= Instant::now() {
            return Err(BearerFailure::Invalid);
        }
        let user = inner.user(&grant.username).ok_or(BearerFailure::Invalid)?;
        if !user.active {
            return Err(BearerFailure::Invalid);
        }
        if !grant.scope.iter().any(|s| s == "api" || s == "full") {
            return Err(BearerFailure::NotApiScope);
        }
        if !user.api_enabled {
            return Err(BearerFailure::ApiDisabled);
        }
        Ok((
            SessionInfo {
                user_id: user.user_id.clone(),
                org_id: self.config.org_id.clone(),
            },
            user.username.clone(),
        ))
    }

    /// The state lock; a panic in another request must not wedge the simulator.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `{login_base_url}/id/{org}/{user}`.
    fn identity_url(&self, user_id: &str) -> String {
        format!(
            "{}/id/{}/{}",
            self.config.login_base_url.trim_end_matches('/'),
            self.config.org_id,
            user_id
        )
    }
}

/// The token of an `Authorization: Bearer X` / `OAuth X` header value.
fn bearer_token(header_value: &str) -> Option<&str> {
    let (scheme, token) = header_value.trim().split_once(' ')?;
    let token = token.trim();
    ((scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth"))
        && !token.is_empty())
    .then_some(token)
}

/// Salesforce's REST error body `[{"message","errorCode"}]` with its status.
fn salesforce_error(status: StatusCode, message: &str, error_code: &str) -> Response {
    let body = serde_json::json!([{ "message": message, "errorCode": error_code }]);
    let mut response = (status, json_body(&body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
    }
    response
}

/// A JSON body with Salesforce's content type.
fn json_body(value: &serde_json::Value) -> ([(header::HeaderName, HeaderValue); 1], String) {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json;charset=UTF-8"),
        )],
        value.to_string(),
    )
}
