//! Test-control endpoints, mounted by the simulator under `/__sim/oauth/`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::OAuth;

/// The control router (state applied).
pub(super) fn routes(oauth: Arc<OAuth>) -> Router {
    Router::new()
        .route("/state", get(state))
        .route("/expire_access_tokens", post(expire_access_tokens))
        .route("/revoke_refresh_tokens", post(revoke_refresh_tokens))
        .route("/rotation", post(rotation))
        .route("/approval_limit", post(approval_limit))
        .route("/ttl", post(ttl))
        .route("/api_enabled", post(api_enabled))
        .route("/user_active", post(user_active))
        .route("/redirect_uris", post(redirect_uris))
        .route("/issue_refresh_token", post(issue_refresh_token))
        .with_state(oauth)
}

/// `404 {"error": ...}`.
fn not_found(what: &str) -> Response {
    (StatusCode::NOT_FOUND, Json(json!({ "error": what }))).into_response()
}

/// `GET state`.
async fn state(State(oauth): State<Arc<OAuth>>) -> Response {
    let inner = oauth.lock();
    let now = Instant::now();
    let apps: Vec<_> = inner
        .apps
        .iter()
        .map(|a| {
            json!({
                "client_id": a.client_id,
                "name": a.name,
                "redirect_uris": a.redirect_uris,
                "run_as_user": a.run_as,
                "preauthorized_users": a.preauthorized,
                "has_certificate": a.certificate.is_some()
            })
        })
        .collect();
    let users: Vec<_> = inner
        .users
        .iter()
        .map(|u| {
            json!({
                "username": u.username,
                "user_id": u.user_id,
                "api_enabled": u.api_enabled,
                "active": u.active
            })
        })
        .collect();
    Json(json!({
        "rotate_refresh_tokens": inner.rotate,
        "access_token_ttl_seconds": inner.ttl.as_secs(),
        "approval_limit": inner.approval_limit,
        "apps": apps,
        "users": users,
        "live_access_tokens": inner.access.values().filter(|g| g.expires_at > now).count(),
        "live_refresh_tokens": inner.refresh.len()
    }))
    .into_response()
}

/// `POST expire_access_tokens`.
async fn expire_access_tokens(State(oauth): State<Arc<OAuth>>) -> Response {
    Json(json!({ "expired": oauth.expire_access_tokens() })).into_response()
}

/// `POST revoke_refresh_tokens`.
async fn revoke_refresh_tokens(State(oauth): State<Arc<OAuth>>) -> Response {
    Json(json!({ "revoked": oauth.revoke_all_refresh_tokens() })).into_response()
}

/// Body of `POST rotation`.
#[derive(Deserialize)]
struct Rotation {
    enabled: bool,
}

/// `POST rotation {"enabled": bool}`.
async fn rotation(State(oauth): State<Arc<OAuth>>, Json(body): Json<Rotation>) -> Response {
    oauth.set_rotation(body.enabled);
    Json(json!({ "rotate_refresh_tokens": oauth.rotation() })).into_response()
}

/// Body of `POST approval_limit`.
#[derive(Deserialize)]
struct ApprovalLimit {
    max: usize,
}

/// `POST approval_limit {"max": N}`.
async fn approval_limit(
    State(oauth): State<Arc<OAuth>>,
    Json(body): Json<ApprovalLimit>,
) -> Response {
    oauth.set_approval_limit(body.max);
    Json(json!({ "approval_limit": oauth.approval_limit() })).into_response()
}

/// Body of `POST ttl`.
#[derive(Deserialize)]
struct Ttl {
    seconds: u64,
}

/// `POST ttl {"seconds": N}`.
async fn ttl(State(oauth): State<Arc<OAuth>>, Json(body): Json<Ttl>) -> Response {
    oauth.set_access_token_ttl(Duration::from_secs(body.seconds));
    Json(json!({ "access_token_ttl_seconds": oauth.access_token_ttl().as_secs() })).into_response()
}

/// Body of `POST api_enabled`.
#[derive(Deserialize)]
struct ApiEnabled {
    username: Option<String>,
    enabled: bool,
}

/// `POST api_enabled {"username"?, "enabled": bool}`.
async fn api_enabled(State(oauth): State<Arc<OAuth>>, Json(body): Json<ApiEnabled>) -> Response {
    let username = body
        .username
        .unwrap_or_else(|| oauth.config.username.clone());
    if !oauth.set_api_enabled(&username, body.enabled) {
        return not_found("unknown user");
    }
    Json(json!({ "username": username, "api_enabled": body.enabled })).into_response()
}

/// Body of `POST user_active`.
#[derive(Deserialize)]
struct UserActive {
    username: Option<String>,
    active: bool,
}

/// `POST user_active {"username"?, "active": bool}`.
async fn user_active(State(oauth): State<Arc<OAuth>>, Json(body): Json<UserActive>) -> Response {
    let username = body
        .username
        .unwrap_or_else(|| oauth.config.username.clone());
    if !oauth.set_user_active(&username, body.active) {
        return not_found("unknown user");
    }
    Json(json!({ "username": username, "active": body.active })).into_response()
}

/// Body of `POST redirect_uris`.
#[derive(Deserialize)]
struct RedirectUri {
    client_id: Option<String>,
    uri: String,
}

/// `POST redirect_uris {"client_id"?, "uri"}`.
async fn redirect_uris(State(oauth): State<Arc<OAuth>>, Json(body): Json<RedirectUri>) -> Response {
    let client_id = body
        .client_id
        .unwrap_or_else(|| oauth.config.client_id.clone());
    if !oauth.add_redirect_uri(&client_id, &body.uri) {
        return not_found("unknown client_id");
    }
    let uris = oauth
        .lock()
        .app(&client_id)
        .map(|a| a.redirect_uris.clone())
        .unwrap_or_default();
    Json(json!({ "client_id": client_id, "redirect_uris": uris })).into_response()
}

/// Body of `POST issue_refresh_token`.
#[derive(Deserialize)]
struct IssueRefreshToken {
    client_id: Option<String>,
    username: Option<String>,
}

/// `POST issue_refresh_token {"client_id"?, "username"?}`.
async fn issue_refresh_token(
    State(oauth): State<Arc<OAuth>>,
    Json(body): Json<IssueRefreshToken>,
) -> Response {
    let client_id = body
        .client_id
        .unwrap_or_else(|| oauth.config.client_id.clone());
    let username = body
        .username
        .unwrap_or_else(|| oauth.config.username.clone());
    match oauth.issue_refresh_token(&client_id, &username) {
        Some(token) => Json(json!({ "refresh_token": token })).into_response(),
        None => not_found("unknown client_id or username"),
    }
}
