//! Why a token could not be obtained, each case worded as the fix an admin applies.
//!
//! Salesforce answers token requests with `{"error","error_description"}`; the same `error`
//! (`invalid_grant`) covers a revoked token, a missing run-as user and a JWT for the wrong
//! environment, so [`classify`] looks at both fields and at the flow that was used.

use crate::protocol::FailureType;
use crate::transport::UrlError;

/// How long Salesforce takes to propagate a new or edited connected app.
const PROPAGATION: &str = "Salesforce needs 2 to 10 minutes after a connected app (or External Client App) is created or edited before it accepts it";

/// The OAuth grant a token request used; the same error text means different fixes per grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// The web-server flow (`sfetl login`), with or without PKCE.
    AuthorizationCode,
    /// `grant_type=refresh_token`.
    RefreshToken,
    /// `grant_type=client_credentials` (External Client App / connected app with a run-as user).
    ClientCredentials,
    /// `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`.
    JwtBearer,
}

/// Where the token request went, for advice that names the host and the environment.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The grant used.
    pub grant: Grant,
    /// Origin of the token endpoint (`https://login.salesforce.com`).
    pub host: String,
    /// Whether the config says the org is a sandbox.
    pub is_sandbox: bool,
    /// The JWT `sub` / username, when known.
    pub username: Option<String>,
    /// The redirect URI of a code exchange.
    pub redirect_uri: Option<String>,
}

/// A failure to obtain a token. Messages never hold a credential.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// `invalid_client_id`.
    #[error(
        "Salesforce at {host} does not recognise the Consumer Key (invalid_client_id: client identifier invalid). Check that client_id is the app's Consumer Key (Setup > App Manager > your app > View > Manage Consumer Details, or for an External Client App: Setup > External Client App Manager > your app > Settings > OAuth Settings > Consumer Key and Secret). If the app is new or was just edited, wait: {PROPAGATION}. Also check the environment: an app created in production exists in a sandbox only after the sandbox is refreshed."
    )]
    InvalidClientId {
        /// Origin of the token endpoint.
        host: String,
    },
    /// `invalid_client`.
    #[error(
        "Salesforce rejected the Consumer Secret (invalid_client: invalid client credentials). Copy client_secret again from the app's Manage Consumer Details page (it is not the Consumer Key); if the app does not require a secret for this flow, the secret must still be right when given."
    )]
    InvalidClient,
    /// `invalid_grant` on a refresh.
    #[error(
        "The refresh token was revoked or has expired (invalid_grant: {description}). A user or admin revoked it (Setup > Connected Apps OAuth Usage), the app's Refresh Token Policy expired it, it was rotated and an older copy was used, the same user approved the app five more times since (each `sfetl login` is an approval; Salesforce keeps five per user and app and revokes the oldest), or it belongs to the other environment (production vs sandbox). Disconnect and reconnect: run `sfetl login` again and use the new config, or paste a new refresh_token."
    )]
    RefreshTokenRevoked {
        /// Salesforce's `error_description`.
        description: String,
    },
    /// `redirect_uri_mismatch`.
    #[error(
        "The Callback URL of the connected app does not match (redirect_uri_mismatch). The app's Callback URL must be exactly {}: edit the app (Setup > App Manager > your app > Edit > Callback URL), put that URL on its own line, save, and wait 2 to 10 minutes.", .redirect_uri.as_deref().unwrap_or("the one `sfetl login` prints")
    )]
    RedirectUriMismatch {
        /// The callback URL sfetl used.
        redirect_uri: Option<String>,
    },
    /// Credentials of one environment used against the other.
    #[error(
        "Salesforce at {host} refused the credentials ({description}). Production credentials do not work in a sandbox and vice versa: this config logs in to {} at {host}. For a sandbox set is_sandbox to true (or domain to its NAME--SANDBOX.sandbox.my.salesforce.com host); for a production org set is_sandbox to false; and check that the username is the user of that org (sandbox usernames end in .SANDBOXNAME).", if *.is_sandbox { "a sandbox" } else { "production" }
    )]
    WrongEnvironment {
        /// Origin of the token endpoint.
        host: String,
        /// Whether the config says sandbox.
        is_sandbox: bool,
        /// Salesforce's `error_description`.
        description: String,
    },
    /// Client credentials sent to login/test.salesforce.com.
    #[error(
        "The client credentials flow works only on the org's My Domain host, not on {host} (invalid_grant: request not supported on this domain). Set domain to the org's My Domain host, e.g. acme.my.salesforce.com (Setup > My Domain > Current My Domain URL), and remove login_url if it points at login.salesforce.com or test.salesforce.com."
    )]
    ClientCredentialsNeedsMyDomain {
        /// Origin of the token endpoint used.
        host: String,
    },
    /// Client credentials on an app without a run-as user.
    #[error(
        "The app has no run-as user for the client credentials flow (invalid_grant: no client credentials user enabled). Connected App: Setup > App Manager > your app > Manage > Edit Policies > Client Credentials Flow > Run As: pick an integration user with the \"API Enabled\" permission. External Client App: Setup > External Client App Manager > your app > Policies > OAuth Flows and External Client App Enhancements > Enable Client Credentials Flow > Run As (Username). Then wait 2 to 10 minutes."
    )]
    NoRunAsUser,
    /// JWT for a user who has not been pre-authorised.
    #[error(
        "The user {username} is not pre-authorised for this app (invalid_grant: user hasn't approved this consumer). In Setup > App Manager > your app > Manage > Edit Policies, set Permitted Users to \"Admin approved users are pre-authorized\", then under Profiles or Permission Sets add one the user has (for an External Client App: Policies > App Policies > Select Profiles / Permission Sets). Also check that username belongs to this org."
    )]
    JwtNotPreAuthorized {
        /// The JWT subject.
        username: String,
    },
    /// JWT signature or format refused.
    #[error(
        "Salesforce refused the signed JWT (invalid_grant: invalid assertion). The private key (private_key / private_key_path) must match the certificate uploaded to the app (Connected App: Use digital signatures; External Client App: Enable JWT Bearer Flow > certificate), and it must be an RSA key; upload the certificate of this key, or use the key of the uploaded certificate."
    )]
    JwtInvalidAssertion,
    /// JWT `exp` refused: the machine clock is off.
    #[error(
        "Salesforce says the JWT has expired (invalid_grant: {description}). sfetl signs assertions valid for 3 minutes from this machine's clock: synchronise the clock (NTP) and try again."
    )]
    JwtClock {
        /// Salesforce's `error_description`.
        description: String,
    },
    /// JWT refused while the answer's `Date` shows this machine's clock off by more than the
    /// assertion's lifetime allows: the clock, not the key, is what to fix.
    #[error(
        "Salesforce refused the signed JWT (invalid_grant: {description}) because this machine's clock is {off} Salesforce's (by the Date header of its answer). sfetl signs assertions valid for 3 minutes by this machine's clock, and Salesforce takes only those that expire within 3 minutes of its own time: set this machine's clock right (NTP) and try again."
    )]
    JwtClockOff {
        /// How far off, and which way (`600.3 s ahead of`: [`crate::transport::lead_words`]).
        off: String,
        /// Salesforce's `error_description`.
        description: String,
    },
    /// The user is deactivated or frozen.
    #[error(
        "The Salesforce user is inactive (invalid_grant: inactive user). Reactivate or unfreeze the user (Setup > Users), or connect with an active user (for client credentials, change the app's Run As user)."
    )]
    InactiveUser,
    /// The authorization code was used, expired or is unknown.
    #[error(
        "Salesforce rejected the authorization code (invalid_grant: {description}). Codes are single-use and expire after 15 minutes: run `sfetl login` again."
    )]
    InvalidAuthorizationCode {
        /// Salesforce's `error_description`.
        description: String,
    },
    /// PKCE verifier refused.
    #[error(
        "Salesforce rejected the PKCE code verifier ({error}: {description}). Run `sfetl login` again; if it keeps failing, check that nothing rewrites the callback URL and that the app's \"Require Proof Key for Code Exchange (PKCE)\" setting matches how the app is used."
    )]
    PkceVerifierRejected {
        /// Salesforce's `error`.
        error: String,
        /// Salesforce's `error_description`.
        description: String,
    },
    /// The user clicked Deny or may not use the app.
    #[error(
        "Authorization was denied (access_denied: {description}). Run `sfetl login` again and click Allow; if Salesforce does not offer Allow, the user may not use the app: in the app's Manage > Edit Policies set Permitted Users to \"All users may self-authorize\", or pre-authorise the user's profile or permission set."
    )]
    AccessDenied {
        /// Salesforce's `error_description`.
        description: String,
    },
    /// A requested scope is not in the app.
    #[error(
        "The app does not grant the requested scopes (invalid_scope: {description}). Add \"Manage user data via APIs (api)\" and \"Perform requests at any time (refresh_token, offline_access)\" to the app's Selected OAuth Scopes (Setup > App Manager > your app > Edit > OAuth Settings), wait 2 to 10 minutes, or pass --scopes with scopes the app has."
    )]
    InvalidScope {
        /// Salesforce's `error_description`.
        description: String,
    },
    /// The flow is not enabled in the app.
    #[error(
        "Salesforce does not accept the {grant} flow for this app (unsupported_grant_type: {description}). Enable it in the app: Client Credentials Flow or Use digital signatures (JWT) under OAuth Settings (External Client App: Enable Client Credentials Flow / Enable JWT Bearer Flow), save, and wait 2 to 10 minutes."
    )]
    UnsupportedGrantType {
        /// The grant, as configured (`client_credentials`...).
        grant: &'static str,
        /// Salesforce's `error_description`.
        description: String,
    },
    /// Any other OAuth error.
    #[error(
        "Salesforce at {host} refused the token request ({error}: {description}). Check client_id, client_secret and the app's OAuth settings; see docs/connect-salesforce.md, Troubleshooting."
    )]
    Refused {
        /// Origin of the token endpoint.
        host: String,
        /// Salesforce's `error`.
        error: String,
        /// Salesforce's `error_description`.
        description: String,
    },
    /// Network failure before any answer.
    #[error(
        "Cannot reach {host}: {detail}. Check the network, proxy and firewall, and that the host is right (is_sandbox, domain or login_url in the config)."
    )]
    Unreachable {
        /// Origin that could not be reached.
        host: String,
        /// What failed (DNS, refused, TLS, timeout).
        detail: String,
    },
    /// A 5xx / 429 from the token endpoint.
    #[error(
        "Salesforce's token endpoint at {host} answered HTTP {status}; it is having trouble (maintenance or an incident, see status.salesforce.com). Try again later."
    )]
    ServerError {
        /// Origin of the token endpoint.
        host: String,
        /// HTTP status.
        status: u16,
    },
    /// The answer was not a token response.
    #[error(
        "{host} did not answer with a Salesforce token response ({detail}). Check that the login host is a Salesforce login URL (login_url, domain)."
    )]
    BadTokenResponse {
        /// Origin of the token endpoint.
        host: String,
        /// What was wrong (never the body, which may hold a token).
        detail: String,
    },
    /// The private key cannot sign.
    #[error(
        "The private key cannot sign a JWT ({detail}): private_key / private_key_path must be the RSA private key in PEM (-----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----) whose certificate is uploaded to the app."
    )]
    InvalidPrivateKey {
        /// The parser's complaint (no key material).
        detail: String,
    },
    /// A login or instance URL that may not carry credentials.
    #[error(transparent)]
    Url(#[from] UrlError),
}

impl AuthError {
    /// The protocol's failure type: unreachable hosts and server trouble are transient; the
    /// rest needs a person to change a setting.
    pub fn failure_type(&self) -> FailureType {
        match self {
            AuthError::Unreachable { .. } | AuthError::ServerError { .. } => {
                FailureType::TransientError
            }
            AuthError::BadTokenResponse { .. } => FailureType::SystemError,
            _ => FailureType::ConfigError,
        }
    }

    /// True when retrying the same request later may succeed.
    pub fn is_transient(&self) -> bool {
        self.failure_type() == FailureType::TransientError
    }
}

/// The config name of a grant, for messages.
pub fn grant_name(grant: Grant) -> &'static str {
    match grant {
        Grant::AuthorizationCode => "authorization_code",
        Grant::RefreshToken => "refresh_token",
        Grant::ClientCredentials => "client_credentials",
        Grant::JwtBearer => "jwt_bearer",
    }
}

/// Maps Salesforce's `{"error","error_description"}` to the advice for this flow.
pub fn classify(ctx: &RequestContext, error: &str, description: &str) -> AuthError {
    let desc = description.to_ascii_lowercase();
    let d = || description.to_string();
    match error {
        "invalid_client_id" => AuthError::InvalidClientId {
            host: ctx.host.clone(),
        },
        "invalid_client" => AuthError::InvalidClient,
        "redirect_uri_mismatch" => AuthError::RedirectUriMismatch {
            redirect_uri: ctx.redirect_uri.clone(),
        },
        "access_denied" => AuthError::AccessDenied { description: d() },
        "invalid_scope" => AuthError::InvalidScope { description: d() },
        "unsupported_grant_type" => AuthError::UnsupportedGrantType {
            grant: grant_name(ctx.grant),
            description: d(),
        },
        "invalid_request" if ctx.grant == Grant::AuthorizationCode && desc.contains("verifier") => {
            AuthError::PkceVerifierRejected {
                error: error.to_string(),
                description: d(),
            }
        }
        "invalid_grant" => classify_invalid_grant(ctx, &desc, d()),
        _ => AuthError::Refused {
            host: ctx.host.clone(),
            error: error.to_string(),
            description: d(),
        },
    }
}

fn classify_invalid_grant(ctx: &RequestContext, desc: &str, description: String) -> AuthError {
    let wrong_env = || AuthError::WrongEnvironment {
        host: ctx.host.clone(),
        is_sandbox: ctx.is_sandbox,
        description: format!("invalid_grant: {description}"),
    };
    if desc.contains("not supported on this domain") {
        return AuthError::ClientCredentialsNeedsMyDomain {
            host: ctx.host.clone(),
        };
    }
    if desc.contains("no client credentials user") {
        return AuthError::NoRunAsUser;
    }
    if desc.contains("audience") {
        return wrong_env();
    }
    if desc.contains("inactive user") {
        return AuthError::InactiveUser;
    }
    if desc.contains("hasn't approved") || desc.contains("has not approved") {
        return AuthError::JwtNotPreAuthorized {
            username: ctx.username.clone().unwrap_or_else(|| "(unknown)".into()),
        };
    }
    if desc.contains("verifier") {
        return AuthError::PkceVerifierRejected {
            error: "invalid_grant".into(),
            description,
        };
    }
    match ctx.grant {
        Grant::JwtBearer if desc.contains("invalid assertion") => AuthError::JwtInvalidAssertion,
        Grant::JwtBearer if desc.contains("expired") => AuthError::JwtClock { description },
        Grant::JwtBearer if desc.contains("authentication failure") => wrong_env(),
        Grant::AuthorizationCode => AuthError::InvalidAuthorizationCode { description },
        Grant::RefreshToken if desc.contains("authentication failure") => wrong_env(),
        Grant::RefreshToken => AuthError::RefreshTokenRevoked { description },
        _ => AuthError::Refused {
            host: ctx.host.clone(),
            error: "invalid_grant".into(),
            description,
        },
    }
}
