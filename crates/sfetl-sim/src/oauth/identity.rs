//! The identity URL (`/id/{orgId}/{userId}`) and OpenID Connect `userinfo`.

use std::time::Instant;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::model::{Inner, User, same_id};
use super::token::Params;
use super::{Ctx, OAuth, bearer_token, json_body};

/// `last_modified_date` of every simulated user.
const LAST_MODIFIED: &str = "2024-01-15T09:30:00.000+0000";

/// An identity service error: plain text, as Salesforce answers.
fn plain(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain;charset=UTF-8")],
        text,
    )
        .into_response()
}

/// The access token of an identity request: header, else `oauth_token` / `access_token`.
fn request_token<'a>(headers: &'a HeaderMap, params: &'a Params) -> Option<&'a str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .or_else(|| params.get("oauth_token"))
        .or_else(|| params.get("access_token"))
}

/// The username of a live token's active user, and whether the token has API scope; a
/// refused token answers `403 Bad_OAuth_Token`.
fn token_user(inner: &Inner, token: &str) -> Option<(String, bool)> {
    let grant = inner
        .access
        .get(token)
        .filter(|g| g.expires_at > Instant::now())?;
    let api_scope = grant.scope.iter().any(|s| s == "api" || s == "full");
    let user = inner.user(&grant.username).filter(|u| u.active)?;
    Some((user.username.clone(), api_scope))
}

/// `GET|POST /id/{orgId}/{userId}`.
pub(super) async fn identity(
    State(ctx): State<Ctx>,
    Path((org_id, user_id)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::read(&HeaderMap::new(), query.as_deref(), &[]);
    let Some(token) = request_token(&headers, &params) else {
        return plain(StatusCode::FORBIDDEN, "Missing_OAuth_Token");
    };
    let oauth = &ctx.oauth;
    let inner = oauth.lock();
    let Some((caller, api_scope)) = token_user(&inner, token) else {
        return plain(StatusCode::FORBIDDEN, "Bad_OAuth_Token");
    };
    if !same_id(&org_id, &oauth.config.org_id) {
        return plain(StatusCode::FORBIDDEN, "Wrong_Org");
    }
    let Some(target) = inner.user_by_id(&user_id) else {
        return plain(StatusCode::NOT_FOUND, "Bad_Id");
    };
    let caller = inner
        .user(&caller)
        .expect("token_user returned a known user");
    // Another user's identity needs an API-scoped token of an API-enabled user.
    let own = target.username.eq_ignore_ascii_case(&caller.username);
    if !(own || api_scope && caller.api_enabled) {
        return plain(StatusCode::NOT_FOUND, "No_Access");
    }
    if !target.active {
        return plain(StatusCode::NOT_FOUND, "Inactive");
    }
    let version = params.get("version").filter(|v| v.parse::<f64>().is_ok());
    (
        StatusCode::OK,
        json_body(&oauth.identity_json(target, version)),
    )
        .into_response()
}

/// `GET|POST /services/oauth2/userinfo`.
pub(super) async fn userinfo(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::read(&HeaderMap::new(), query.as_deref(), &[]);
    let Some(token) = request_token(&headers, &params) else {
        return plain(StatusCode::FORBIDDEN, "Missing_OAuth_Token");
    };
    let oauth = &ctx.oauth;
    let inner = oauth.lock();
    let Some((username, _)) = token_user(&inner, token) else {
        return plain(StatusCode::FORBIDDEN, "Bad_OAuth_Token");
    };
    let user = inner
        .user(&username)
        .expect("token_user returned a known user");
    let identity = oauth.identity_json(user, None);
    let info = json!({
        "sub": identity["id"],
        "user_id": identity["user_id"],
        "organization_id": identity["organization_id"],
        "preferred_username": identity["username"],
        "nickname": identity["nick_name"],
        "name": identity["display_name"],
        "email": identity["email"],
        "email_verified": true,
        "given_name": identity["first_name"],
        "family_name": identity["last_name"],
        "zoneinfo": identity["timezone"],
        "photos": identity["photos"],
        "profile": identity["urls"]["profile"],
        "picture": identity["photos"]["picture"],
        "address": {},
        "is_salesforce_integration_user": false,
        "urls": identity["urls"],
        "active": identity["active"],
        "user_type": identity["user_type"],
        "language": identity["language"],
        "locale": identity["locale"],
        "utcOffset": identity["utcOffset"],
        "updated_at": "2024-01-15T09:30:00Z",
        "is_app_installed": true
    });
    (StatusCode::OK, json_body(&info)).into_response()
}

impl OAuth {
    /// Salesforce's identity JSON for a user; API URLs carry `{version}` unless one is given.
    fn identity_json(&self, user: &User, version: Option<&str>) -> Value {
        let org = &self.config.org_id;
        let instance = self.config.instance_base_url.trim_end_matches('/');
        let v = version.unwrap_or("{version}");
        let nick = user.username.split('@').next().unwrap_or(&user.username);
        json!({
            "id": self.identity_url(&user.user_id),
            "asserted_user": true,
            "user_id": user.user_id,
            "organization_id": org,
            "username": user.username,
            "nick_name": nick,
            "display_name": format!("{} {}", user.first_name, user.last_name),
            "email": user.username,
            "email_verified": true,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "timezone": "America/Los_Angeles",
            "photos": {
                "picture": format!("{instance}/profilephoto/005/F"),
                "thumbnail": format!("{instance}/profilephoto/005/T")
            },
            "addr_street": null,
            "addr_city": null,
            "addr_state": null,
            "addr_country": "US",
            "addr_zip": null,
            "mobile_phone": null,
            "mobile_phone_verified": false,
            "is_lightning_login_user": false,
            "status": { "created_date": null, "body": null },
            "urls": {
                "enterprise": format!("{instance}/services/Soap/c/{v}/{org}"),
                "metadata": format!("{instance}/services/Soap/m/{v}/{org}"),
                "partner": format!("{instance}/services/Soap/u/{v}/{org}"),
                "rest": format!("{instance}/services/data/v{v}/"),
                "sobjects": format!("{instance}/services/data/v{v}/sobjects/"),
                "search": format!("{instance}/services/data/v{v}/search/"),
                "query": format!("{instance}/services/data/v{v}/query/"),
                "recent": format!("{instance}/services/data/v{v}/recent/"),
                "tooling_soap": format!("{instance}/services/Soap/T/{v}/{org}"),
                "tooling_rest": format!("{instance}/services/data/v{v}/tooling/"),
                "profile": format!("{instance}/{}", user.user_id),
                "feeds": format!("{instance}/services/data/v{v}/chatter/feeds"),
                "groups": format!("{instance}/services/data/v{v}/chatter/groups"),
                "users": format!("{instance}/services/data/v{v}/chatter/users"),
                "feed_items": format!("{instance}/services/data/v{v}/chatter/feed-items"),
                "feed_elements": format!("{instance}/services/data/v{v}/chatter/feed-elements"),
                "custom_domain": instance
            },
            "active": user.active,
            "user_type": "STANDARD",
            "language": "en_US",
            "locale": "en_US",
            "utcOffset": -28800000,
            "last_modified_date": LAST_MODIFIED,
            "is_app_installed": true
        })
    }
}
