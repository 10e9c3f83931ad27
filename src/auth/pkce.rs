//! PKCE (RFC 7636) and the `state` parameter of `sfetl login`.

use oauth2::{CsrfToken, PkceCodeChallenge, PkceCodeVerifier};

use crate::secret::Secret;

/// One login attempt's secrets: the code verifier (kept), its S256 challenge (sent) and the
/// random `state` the callback must echo, which defeats forged callbacks.
#[derive(Debug, Clone)]
pub struct PkceSession {
    /// The code verifier: 43 to 128 unreserved characters, sent only to the token endpoint.
    pub verifier: Secret,
    /// `base64url(SHA-256(verifier))`, sent on the authorize URL.
    pub challenge: String,
    /// The random `state`.
    pub state: Secret,
}

impl PkceSession {
    /// A fresh verifier (32 random bytes, 43 characters) and state.
    pub fn new() -> PkceSession {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        PkceSession {
            verifier: Secret::new(verifier.secret().clone()),
            challenge: challenge.as_str().to_string(),
            state: Secret::new(CsrfToken::new_random().secret().clone()),
        }
    }
}

impl Default for PkceSession {
    fn default() -> Self {
        PkceSession::new()
    }
}

/// The S256 challenge of a verifier (RFC 7636 §4.2), computed by the `oauth2` crate.
pub fn s256_challenge(verifier: &str) -> String {
    PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(verifier.to_string()))
        .as_str()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_matches_rfc_7636_appendix_b() {
        assert_eq!(
            s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn sessions_are_random_and_consistent() {
        let a = PkceSession::new();
        let b = PkceSession::new();
        assert_ne!(a.verifier, b.verifier);
        assert_ne!(a.state, b.state);
        assert_eq!(a.verifier.expose().len(), 43);
        assert_eq!(s256_challenge(a.verifier.expose()), a.challenge);
    }
}
