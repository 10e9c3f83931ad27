//! An access token and what Salesforce said about it.

use std::time::{Duration, Instant};

use crate::secret::Secret;

/// How long before a known expiry a token is refreshed, so no request carries a token that
/// expires in flight.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// An access token from a token response. Tokens are shared as `Arc<Token>`; a refresh makes a
/// new one with a higher [`Token::generation`], which is how "refresh once on 401" knows whether
/// someone else already refreshed.
#[derive(Debug, Clone)]
pub struct Token {
    /// The bearer token.
    pub access_token: Secret,
    /// Where data calls go (`instance_url` of the token response), without trailing slash.
    pub instance_url: String,
    /// The identity URL (`id` of the token response).
    pub identity_url: String,
    /// Granted scopes (space-separated in the response).
    pub scopes: Vec<String>,
    /// `issued_at` (epoch milliseconds), when sent.
    pub issued_at_ms: Option<i64>,
    /// When the token stops working, if the response said (`expires_in`; Salesforce usually
    /// does not, and its session timeout is then discovered by a 401).
    pub expires_at: Option<Instant>,
    /// Refresh token returned with this token (code flow, or a refresh with rotation on).
    pub refresh_token: Option<Secret>,
    /// 1 for the first token of a provider, +1 per refresh.
    pub generation: u64,
}

impl Token {
    /// True when the token is known to expire within [`REFRESH_MARGIN`].
    pub fn expires_soon(&self, now: Instant) -> bool {
        match self.expires_at {
            Some(at) => at.saturating_duration_since(now) <= REFRESH_MARGIN,
            None => false,
        }
    }

    /// The org id and user id from the identity URL (`.../id/{org}/{user}`).
    pub fn org_and_user_ids(&self) -> Option<(String, String)> {
        let mut parts = self.identity_url.trim_end_matches('/').rsplit('/');
        let user = parts.next()?;
        let org = parts.next()?;
        (parts.next()? == "id").then(|| (org.to_string(), user.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(expires_at: Option<Instant>) -> Token {
        Token {
            access_token: Secret::new("x"),
            instance_url: "https://na1.salesforce.com".into(),
            identity_url: "https://login.salesforce.com/id/00Dx0000000BV7z/005x00000012Q9P".into(),
            scopes: vec![],
            issued_at_ms: None,
            expires_at,
            refresh_token: None,
            generation: 1,
        }
    }

    #[test]
    fn expiry_is_known_only_when_sent() {
        let now = Instant::now();
        assert!(!token(None).expires_soon(now));
        assert!(token(Some(now + Duration::from_secs(30))).expires_soon(now));
        assert!(!token(Some(now + Duration::from_secs(600))).expires_soon(now));
    }

    #[test]
    fn ids_come_from_the_identity_url() {
        assert_eq!(
            token(None).org_and_user_ids(),
            Some(("00Dx0000000BV7z".into(), "005x00000012Q9P".into()))
        );
    }
}
