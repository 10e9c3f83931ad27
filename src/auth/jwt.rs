//! The JWT bearer flow: an RS256 assertion signed with the key whose certificate is uploaded to
//! the app, posted to the token endpoint as a form (the `oauth2` crate has no JWT grant).

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use oauth2::basic::BasicErrorResponse;
use oauth2::http;
use serde::Serialize;

use super::errors::{AuthError, RequestContext, classify};
use super::oauth::{Endpoints, SalesforceTokenResponse, send};
use super::token::Token;
use crate::secret::Secret;

/// The JWT bearer grant type.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Salesforce accepts assertions expiring at most 3 minutes ahead.
const LIFETIME_SECS: u64 = 170;

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: u64,
}

/// The audience Salesforce expects: `https://test.salesforce.com` for sandboxes (also behind a
/// My Domain), the explicit `login_url` when one is configured (Experience Cloud sites, the
/// simulator), else `https://login.salesforce.com` (also behind a production My Domain).
pub fn audience(is_sandbox: bool, domain: Option<&str>, login_url: Option<&str>) -> String {
    let sandbox_domain = domain.is_some_and(|d| d.contains(".sandbox.my.salesforce.com"));
    if is_sandbox || sandbox_domain {
        "https://test.salesforce.com".to_string()
    } else if let Some(u) = login_url {
        u.trim_end_matches('/').to_string()
    } else {
        "https://login.salesforce.com".to_string()
    }
}

/// Signs the assertion: `iss` the Consumer Key, `sub` the username, `aud` the audience, `exp`
/// just under 3 minutes from `now`.
pub fn assertion(
    client_id: &str,
    username: &str,
    audience: &str,
    private_key_pem: &Secret,
    now: SystemTime,
) -> Result<Secret, AuthError> {
    let key = EncodingKey::from_rsa_pem(private_key_pem.expose().as_bytes()).map_err(|e| {
        AuthError::InvalidPrivateKey {
            detail: format!("{:?}", e.kind()),
        }
    })?;
    let exp = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        + LIFETIME_SECS;
    let claims = Claims {
        iss: client_id,
        sub: username,
        aud: audience,
        exp,
    };
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key)
        .map(Secret::new)
        .map_err(|e| AuthError::InvalidPrivateKey {
            detail: format!("{:?}", e.kind()),
        })
}

/// Posts the assertion and parses the answer like the other grants.
pub async fn exchange(
    http_client: &reqwest::Client,
    endpoints: &Endpoints,
    assertion: &Secret,
    ctx: &RequestContext,
) -> Result<Token, AuthError> {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", GRANT_TYPE)
        .append_pair("assertion", assertion.expose())
        .finish();
    let request = http::Request::builder()
        .method(http::Method::POST)
        .uri(endpoints.token.as_str())
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(http::header::ACCEPT, "application/json")
        .body(body.into_bytes())
        .map_err(|_| AuthError::BadTokenResponse {
            host: ctx.host.clone(),
            detail: "the token request could not be built".into(),
        })?;
    let response = send(http_client, request)
        .await
        .map_err(|e| super::oauth::transport_error(e, ctx))?;
    let bad = |what: &str| AuthError::BadTokenResponse {
        host: ctx.host.clone(),
        detail: what.to_string(),
    };
    if response.status() == http::StatusCode::OK {
        let parsed: SalesforceTokenResponse = serde_json::from_slice(response.body())
            .map_err(|_| bad("the success answer is not a token response"))?;
        return super::oauth::token_from_response(parsed, ctx);
    }
    let error: BasicErrorResponse = serde_json::from_slice(response.body()).map_err(|_| {
        bad(&format!(
            "HTTP {} without an OAuth error body",
            response.status().as_u16()
        ))
    })?;
    let description = error.error_description().map(String::as_str).unwrap_or("");
    let lead = crate::transport::date_lead(response.headers(), chrono::Utc::now());
    match lead {
        Some(lead) if error.error().as_ref() == "invalid_grant" && lead.abs() > CLOCK_SLACK => {
            Err(AuthError::JwtClockOff {
                off: crate::transport::lead_words(lead),
                description: description.to_string(),
            })
        }
        _ => Err(classify(ctx, error.error().as_ref(), description)),
    }
}

/// How far this machine's clock may be from Salesforce's before a refused assertion is put down
/// to the clock: an assertion is made to expire 170 s ahead by this machine's clock and
/// Salesforce takes one expiring at most 3 minutes ahead of its own, so a clock more than 10 s
/// ahead has it refused (one 170 s behind, already expired). Within 10 s (the header's
/// rounding to the second and the answer's time in flight) the refusal is not the clock's.
const CLOCK_SLACK: chrono::TimeDelta = chrono::TimeDelta::seconds(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audience_follows_the_environment() {
        assert_eq!(audience(false, None, None), "https://login.salesforce.com");
        assert_eq!(audience(true, None, None), "https://test.salesforce.com");
        assert_eq!(
            audience(false, Some("acme.my.salesforce.com"), None),
            "https://login.salesforce.com"
        );
        assert_eq!(
            audience(false, Some("acme--dev.sandbox.my.salesforce.com"), None),
            "https://test.salesforce.com"
        );
        assert_eq!(
            audience(false, None, Some("http://127.0.0.1:9/")),
            "http://127.0.0.1:9"
        );
    }

    #[test]
    fn a_key_that_is_not_pem_is_reported_without_its_text() {
        let e = assertion(
            "id",
            "u",
            "https://login.salesforce.com",
            &Secret::new("-----BEGIN PRIVATE KEY-----\nnotakey\n-----END PRIVATE KEY-----"),
            SystemTime::now(),
        )
        .unwrap_err();
        assert!(matches!(e, AuthError::InvalidPrivateKey { .. }));
        assert!(!e.to_string().contains("notakey"));
    }
}
