//! The OAuth server's state: connected apps, users, pending logins, codes and tokens.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use rand::Rng as _;

use super::{
    NO_API_USER_ID, NO_API_USERNAME, NO_RUN_AS_CLIENT_ID, NO_RUN_AS_CLIENT_SECRET, OAuthConfig,
};

/// Scopes both simulated apps have.
pub(super) const APP_SCOPES: &[&str] = &[
    "api",
    "id",
    "web",
    "full",
    "refresh_token",
    "offline_access",
];

/// Scopes granted when a request names none.
pub(super) fn default_scope() -> Vec<String> {
    ["api", "id", "web", "refresh_token", "offline_access"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Whether a scope list earns a refresh token.
pub(super) fn grants_refresh(scope: &[String]) -> bool {
    scope
        .iter()
        .any(|s| s == "refresh_token" || s == "offline_access")
}

/// A connected app.
pub(super) struct App {
    pub name: String,
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uris: Vec<String>,
    /// The uploaded certificate's key; None when the configured PEM does not parse.
    pub certificate: Option<DecodingKey>,
    /// Client credentials "Run As" user.
    pub run_as: Option<String>,
    /// Usernames pre-authorised for the JWT bearer flow.
    pub preauthorized: Vec<String>,
}

/// A user of the org.
pub(super) struct User {
    pub user_id: String,
    pub username: String,
    pub first_name: String,
    pub last_name: String,
    pub api_enabled: bool,
    pub active: bool,
}

/// A live access token.
pub(super) struct AccessGrant {
    pub username: String,
    pub scope: Vec<String>,
    pub expires_at: Instant,
    /// Shared by the access tokens of one refresh token; revoking it kills them.
    pub lineage: String,
}

/// A live refresh token.
pub(super) struct RefreshGrant {
    pub username: String,
    pub client_id: String,
    pub scope: Vec<String>,
    pub lineage: String,
    /// The user's approval of the app it comes from (kept across rotations): a user has at
    /// most `approval_limit` approvals of one app, the oldest revoked by a new one.
    pub approval: u64,
}

/// Salesforce's limit of approvals of one connected app per user.
pub(super) const APPROVAL_LIMIT: usize = 5;

/// An issued authorization code.
pub(super) struct AuthCode {
    pub client_id: String,
    pub username: String,
    pub redirect_uri: String,
    pub scope: Vec<String>,
    pub code_challenge: Option<String>,
    pub expires_at: Instant,
}

/// A validated authorize request waiting for the user's Allow / Deny.
#[derive(Clone)]
pub(super) struct PendingAuthorization {
    pub client_id: String,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub scope: Vec<String>,
    pub code_challenge: Option<String>,
    pub login_hint: Option<String>,
    pub expires_at: Instant,
}

/// Everything mutable, behind `OAuth`'s mutex.
pub(super) struct Inner {
    pub apps: Vec<App>,
    pub users: Vec<User>,
    pub rotate: bool,
    pub ttl: Duration,
    pub access: HashMap<String, AccessGrant>,
    pub refresh: HashMap<String, RefreshGrant>,
    pub codes: HashMap<String, AuthCode>,
    pub pending: HashMap<String, PendingAuthorization>,
    /// Approvals a user may hold per app (Salesforce: 5).
    pub approval_limit: usize,
    /// Counter of approvals (their order).
    pub approvals: u64,
}

impl Inner {
    /// The org of `config`: two apps, two users, the initial refresh token.
    pub fn new(config: &OAuthConfig) -> Self {
        let certificate = if config.jwt_certificate_pem.trim().is_empty() {
            None
        } else {
            match DecodingKey::from_rsa_pem(config.jwt_certificate_pem.as_bytes()) {
                Ok(key) => Some(key),
                Err(error) => {
                    tracing::warn!(%error, "simulator: the JWT certificate does not parse; JWT bearer will fail");
                    None
                }
            }
        };
        let apps = vec![
            App {
                name: "sfetl Simulator".to_string(),
                client_id: config.client_id.clone(),
                client_secret: config.client_secret.clone(),
                redirect_uris: config.redirect_uris.clone(),
                certificate: certificate.clone(),
                run_as: Some(config.username.clone()),
                preauthorized: vec![config.username.clone(), NO_API_USERNAME.to_string()],
            },
            App {
                name: "sfetl Simulator (no run-as user)".to_string(),
                client_id: NO_RUN_AS_CLIENT_ID.to_string(),
                client_secret: NO_RUN_AS_CLIENT_SECRET.to_string(),
                redirect_uris: config.redirect_uris.clone(),
                certificate,
                run_as: None,
                preauthorized: Vec::new(),
            },
        ];
        let users = vec![
            User {
                user_id: config.user_id.clone(),
                username: config.username.clone(),
                first_name: "Integration".to_string(),
                last_name: "User".to_string(),
                api_enabled: true,
                active: true,
            },
            User {
                user_id: NO_API_USER_ID.to_string(),
                username: NO_API_USERNAME.to_string(),
                first_name: "NoApi".to_string(),
                last_name: "User".to_string(),
                api_enabled: false,
                active: true,
            },
        ];
        let mut inner = Self {
            apps,
            users,
            rotate: config.rotate_refresh_tokens,
            ttl: config.access_token_ttl,
            access: HashMap::new(),
            refresh: HashMap::new(),
            codes: HashMap::new(),
            pending: HashMap::new(),
            approval_limit: APPROVAL_LIMIT,
            approvals: 1,
        };
        if !config.initial_refresh_token.is_empty() {
            inner.refresh.insert(
                config.initial_refresh_token.clone(),
                RefreshGrant {
                    username: config.username.clone(),
                    client_id: config.client_id.clone(),
                    scope: default_scope(),
                    lineage: random_token("", 16, ""),
                    approval: 0,
                },
            );
        }
        inner
    }

    /// The app with this consumer key.
    pub fn app(&self, client_id: &str) -> Option<&App> {
        self.apps.iter().find(|a| a.client_id == client_id)
    }

    /// The user with this username (case-insensitive, as Salesforce usernames are).
    pub fn user(&self, username: &str) -> Option<&User> {
        self.users
            .iter()
            .find(|u| u.username.eq_ignore_ascii_case(username))
    }

    /// Mutable [`Inner::user`].
    pub fn user_mut(&mut self, username: &str) -> Option<&mut User> {
        self.users
            .iter_mut()
            .find(|u| u.username.eq_ignore_ascii_case(username))
    }

    /// The user with this id (15- or 18-character form).
    pub fn user_by_id(&self, user_id: &str) -> Option<&User> {
        self.users.iter().find(|u| same_id(&u.user_id, user_id))
    }

    /// Mints a refresh token for a new approval of the app by the user, with a fresh lineage.
    /// Past `approval_limit` approvals of that app by that user, the oldest approval's refresh
    /// token and its access tokens are revoked, as Salesforce does on the sixth approval.
    pub fn new_refresh_token(
        &mut self,
        client_id: &str,
        username: &str,
        scope: &[String],
    ) -> String {
        let approval = self.approvals;
        self.approvals += 1;
        let token = self.mint_refresh(client_id, username, scope, approval);
        let mut mine: Vec<(u64, String, String)> = self
            .refresh
            .iter()
            .filter(|(_, g)| g.client_id == client_id && g.username.eq_ignore_ascii_case(username))
            .map(|(t, g)| (g.approval, t.clone(), g.lineage.clone()))
            .collect();
        mine.sort();
        let excess = mine.len().saturating_sub(self.approval_limit.max(1));
        for (_, old, lineage) in mine.into_iter().take(excess) {
            self.refresh.remove(&old);
            self.access.retain(|_, g| g.lineage != lineage);
        }
        token
    }

    /// Replaces a refresh token by a new one of the same approval (rotation); None when
    /// unknown.
    pub fn rotate_refresh_token(&mut self, old: &str) -> Option<String> {
        let g = self.refresh.remove(old)?;
        Some(self.mint_refresh(&g.client_id, &g.username, &g.scope, g.approval))
    }

    fn mint_refresh(
        &mut self,
        client_id: &str,
        username: &str,
        scope: &[String],
        approval: u64,
    ) -> String {
        let token = random_token("5Aep861", 80, ".");
        self.refresh.insert(
            token.clone(),
            RefreshGrant {
                username: username.to_string(),
                client_id: client_id.to_string(),
                scope: scope.to_vec(),
                lineage: random_token("", 16, ""),
                approval,
            },
        );
        token
    }

    /// Mints an access token `{org15}!{random}` living the current TTL; drops dead ones.
    pub fn new_access_token(
        &mut self,
        org_id: &str,
        username: &str,
        scope: &[String],
        lineage: String,
    ) -> String {
        let now = Instant::now();
        self.access.retain(|_, g| g.expires_at > now);
        self.codes.retain(|_, c| c.expires_at > now);
        self.pending.retain(|_, p| p.expires_at > now);
        let org15: String = org_id.chars().take(15).collect();
        let token = random_token(&format!("{org15}!"), 96, "._");
        self.access.insert(
            token.clone(),
            AccessGrant {
                username: username.to_string(),
                scope: scope.to_vec(),
                expires_at: now + self.ttl,
                lineage,
            },
        );
        token
    }
}

/// Salesforce ids compare on their case-sensitive 15-character form.
pub(super) fn same_id(a: &str, b: &str) -> bool {
    if a.len() < 15 || b.len() < 15 {
        return a == b;
    }
    a.as_bytes()[..15] == b.as_bytes()[..15]
}

/// `prefix` followed by `len` random characters from `[A-Za-z0-9]` plus `extra`.
pub(super) fn random_token(prefix: &str, len: usize, extra: &str) -> String {
    let alphabet: Vec<char> = ('A'..='Z')
        .chain('a'..='z')
        .chain('0'..='9')
        .chain(extra.chars())
        .collect();
    let mut rng = rand::rng();
    let mut out = String::with_capacity(prefix.len() + len);
    out.push_str(prefix);
    for i in 0..len {
        // Keep separators away from the ends, so tokens never end in '.' or '_'.
        let pool = if i == 0 || i + 1 == len {
            62
        } else {
            alphabet.len()
        };
        out.push(alphabet[rng.random_range(0..pool)]);
    }
    out
}
