//! `/services/oauth2/authorize`: the login-and-consent page, its Allow / Deny, and the
//! `RemoteAccessErrorPage` Salesforce shows when it cannot trust the callback.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::model::{AuthCode, PendingAuthorization, random_token};
use super::token::{Params, parse_scope};
use super::{AUTHORIZATION_CODE_TTL, Ctx, PENDING_AUTHORIZATION_TTL, SIM_PASSWORD};

/// Path of Salesforce's OAuth error page.
const ERROR_PAGE_PATH: &str = "/setup/secur/RemoteAccessErrorPage.apexp";

/// The message of Salesforce's login page on bad credentials.
const LOGIN_ERROR: &str = "Please check your username and password. If you still can't log in, contact your Salesforce administrator.";

/// `GET /services/oauth2/authorize`.
pub(super) async fn authorize_get(State(ctx): State<Ctx>, RawQuery(query): RawQuery) -> Response {
    let params = Params::read(&HeaderMap::new(), query.as_deref(), &[]);
    start(&ctx, &params)
}

/// `POST /services/oauth2/authorize`: the consent form (with `request_id`), or an authorize
/// request sent as a form.
pub(super) async fn authorize_post(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let params = Params::read(&headers, query.as_deref(), &body);
    match params.get("request_id") {
        Some(request_id) => decide(&ctx, request_id, &params),
        None => start(&ctx, &params),
    }
}

/// `GET /setup/secur/RemoteAccessErrorPage.apexp?error=..&error_description=..`.
pub(super) async fn error_page(RawQuery(query): RawQuery) -> Response {
    let params = Params::read(&HeaderMap::new(), query.as_deref(), &[]);
    let error = params.get("error").unwrap_or("unknown_error");
    let description = params.get("error_description").unwrap_or("");
    page(
        StatusCode::OK,
        "Error | Salesforce Simulator",
        &format!(
            "<h1>OAuth Error</h1>\n<p>We can't authorize you because of an OAuth error. For more information, contact your Salesforce administrator.</p>\n<p id=\"error\">{}</p>\n<p id=\"error_description\">{}</p>",
            escape(error),
            escape(description)
        ),
    )
}

/// Validates an authorize request and shows the login-and-consent page.
fn start(ctx: &Ctx, p: &Params) -> Response {
    let oauth = &ctx.oauth;
    let mut inner = oauth.lock();
    let Some(app) = p.get("client_id").and_then(|id| inner.app(id)) else {
        return error_page_redirect(ctx, "invalid_client_id", "client identifier invalid");
    };
    let Some(redirect_uri) = p
        .get("redirect_uri")
        .filter(|uri| app.redirect_uris.iter().any(|r| r == uri))
    else {
        return error_page_redirect(
            ctx,
            "redirect_uri_mismatch",
            "redirect_uri must match configuration",
        );
    };
    let state = p.get("state");
    if p.get("response_type") != Some("code") {
        return callback_redirect(
            redirect_uri,
            &[
                ("error", "unsupported_response_type"),
                ("error_description", "response type not supported"),
            ],
            state,
        );
    }
    let challenge = p.get("code_challenge");
    let method_ok = p.get("code_challenge_method").is_none_or(|m| m == "S256");
    let challenge_ok = challenge.is_none_or(|c| {
        c.len() == 43
            && c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    if !method_ok || !challenge_ok {
        let description = if method_ok {
            "invalid code challenge"
        } else {
            "invalid code challenge method"
        };
        return callback_redirect(
            redirect_uri,
            &[
                ("error", "invalid_request"),
                ("error_description", description),
            ],
            state,
        );
    }
    let Some(scope) = parse_scope(p.get("scope")) else {
        return callback_redirect(
            redirect_uri,
            &[
                ("error", "invalid_scope"),
                ("error_description", "the requested scope is not allowed"),
            ],
            state,
        );
    };
    let pending = PendingAuthorization {
        client_id: app.client_id.clone(),
        redirect_uri: redirect_uri.to_string(),
        state: state.map(str::to_string),
        scope,
        code_challenge: challenge.map(str::to_string),
        login_hint: p.get("login_hint").map(str::to_string),
        expires_at: Instant::now() + PENDING_AUTHORIZATION_TTL,
    };
    let app_name = app.name.clone();
    let request_id = random_token("", 32, "");
    inner.pending.insert(request_id.clone(), pending.clone());
    let default_user = pending
        .login_hint
        .clone()
        .unwrap_or_else(|| oauth.config.username.clone());
    consent_page(&request_id, &app_name, &pending, &default_user, None)
}

/// Handles the consent form: Deny, a failed login, or Allow with a code.
fn decide(ctx: &Ctx, request_id: &str, p: &Params) -> Response {
    let mut inner = ctx.oauth.lock();
    let Some(pending) = inner
        .pending
        .remove(request_id)
        .filter(|r| r.expires_at > Instant::now())
    else {
        return page(
            StatusCode::BAD_REQUEST,
            "Error | Salesforce Simulator",
            "<h1>Authorization request expired</h1>\n<p id=\"error\">This authorization request has expired or was already used. Start the login again.</p>",
        );
    };
    let state = pending.state.as_deref();
    if p.get("decision") == Some("deny") {
        return callback_redirect(
            &pending.redirect_uri,
            &[
                ("error", "access_denied"),
                ("error_description", "end-user denied authorization"),
            ],
            state,
        );
    }
    let username = p.get("username").unwrap_or_default();
    let password_ok = p.get("password").is_none_or(|pw| pw == SIM_PASSWORD);
    let user = inner
        .user(username)
        .filter(|u| u.active && password_ok)
        .map(|u| u.username.clone());
    let Some(username) = user else {
        let app_name = inner
            .app(&pending.client_id)
            .map(|a| a.name.clone())
            .unwrap_or_default();
        inner
            .pending
            .insert(request_id.to_string(), pending.clone());
        return consent_page(request_id, &app_name, &pending, username, Some(LOGIN_ERROR));
    };
    let code = random_token("aPrx", 70, "_") + "==";
    inner.codes.insert(
        code.clone(),
        AuthCode {
            client_id: pending.client_id.clone(),
            username,
            redirect_uri: pending.redirect_uri.clone(),
            scope: pending.scope.clone(),
            code_challenge: pending.code_challenge.clone(),
            expires_at: Instant::now() + AUTHORIZATION_CODE_TTL,
        },
    );
    callback_redirect(&pending.redirect_uri, &[("code", &code)], state)
}

/// `302` to the app's callback with the given parameters and `state`.
fn callback_redirect(redirect_uri: &str, pairs: &[(&str, &str)], state: Option<&str>) -> Response {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Error",
            "<h1>Invalid callback URL</h1>",
        );
    };
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in pairs {
            query.append_pair(k, v);
        }
        if let Some(state) = state {
            query.append_pair("state", state);
        }
    }
    found(url.as_str())
}

/// `302` to the error page of this host.
fn error_page_redirect(ctx: &Ctx, error: &str, description: &str) -> Response {
    let mut url = format!("{}{ERROR_PAGE_PATH}?", ctx.base_url());
    url.push_str(
        &url::form_urlencoded::Serializer::new(String::new())
            .append_pair("display", "page")
            .append_pair("error", error)
            .append_pair("error_description", description)
            .finish(),
    );
    found(&url)
}

/// A `302 Found` to `location`.
fn found(location: &str) -> Response {
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The login-and-consent page: a plain form (no JavaScript) headless browsers can drive.
fn consent_page(
    request_id: &str,
    app_name: &str,
    pending: &PendingAuthorization,
    username: &str,
    error: Option<&str>,
) -> Response {
    let scopes: String = pending
        .scope
        .iter()
        .map(|s| format!("<li>{}</li>", escape(scope_label(s))))
        .collect::<Vec<_>>()
        .join("\n");
    let error = error
        .map(|e| format!("<p id=\"login_error\" role=\"alert\">{}</p>\n", escape(e)))
        .unwrap_or_default();
    let body = format!(
        r#"<h1>Allow Access?</h1>
{error}<p><strong id="app_name">{app}</strong> is asking to:</p>
<ul id="scopes">
{scopes}
</ul>
<form id="consent" method="post" action="/services/oauth2/authorize">
<input type="hidden" name="request_id" value="{request_id}">
<p><label for="username">Username</label><br><input id="username" name="username" type="text" value="{username}" autocomplete="username"></p>
<p><label for="password">Password</label><br><input id="password" name="password" type="password" autocomplete="current-password"></p>
<p><button id="allow" type="submit" name="decision" value="allow">Allow</button>
<button id="deny" type="submit" name="decision" value="deny">Deny</button></p>
</form>
<p><small>Salesforce simulator (sfetl). Any password field left blank is accepted.</small></p>"#,
        app = escape(app_name),
        request_id = escape(request_id),
        username = escape(username),
    );
    page(
        StatusCode::OK,
        "Allow Access? | Salesforce Simulator",
        &body,
    )
}

/// Human wording of a scope, as the consent page lists it.
fn scope_label(scope: &str) -> &str {
    match scope {
        "api" => "Manage user data via APIs (api)",
        "id" => "Access the identity URL service (id, profile, email, address, phone)",
        "web" => "Manage user data via Web browsers (web)",
        "full" => "Full access (full)",
        "refresh_token" | "offline_access" => {
            "Perform requests at any time (refresh_token, offline_access)"
        }
        other => other,
    }
}

/// A complete HTML document.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n",
        escape(title)
    );
    let mut response = (status, Html(html)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Escapes text for HTML content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
