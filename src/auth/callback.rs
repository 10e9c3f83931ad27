//! The loopback listener of `sfetl login`: receives Salesforce's redirect to
//! `http://localhost:PORT/oauth/callback`, checks its `state`, and hands the code (or the error)
//! to the waiting command.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tokio::sync::mpsc;

use crate::secret::Secret;

/// The callback path registered in the app (with `http://localhost:PORT` before it).
pub const CALLBACK_PATH: &str = "/oauth/callback";

/// What the browser brought back.
#[derive(Debug)]
pub enum CallbackOutcome {
    /// `?code=...&state=...` with the expected state.
    Code(Secret),
    /// `?error=...&error_description=...` with the expected state.
    Error {
        /// Salesforce's `error`.
        error: String,
        /// Salesforce's `error_description`.
        description: String,
    },
}

#[derive(Clone)]
struct Ctx {
    state: Arc<Secret>,
    tx: mpsc::Sender<CallbackOutcome>,
}

#[derive(serde::Deserialize)]
struct Params {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The running listener; dropping it stops serving.
pub struct CallbackServer {
    rx: mpsc::Receiver<CallbackOutcome>,
    port: u16,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl CallbackServer {
    /// Listens on 127.0.0.1:`port` (and `[::1]:port` when available, since browsers may resolve
    /// `localhost` to either).
    pub async fn bind(port: u16, expected_state: Secret) -> std::io::Result<CallbackServer> {
        let v4 =
            tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
        let port = v4.local_addr()?.port();
        let v6 = tokio::net::TcpListener::bind(SocketAddr::from((Ipv6Addr::LOCALHOST, port)))
            .await
            .ok();
        let (tx, rx) = mpsc::channel(4);
        let app = Router::new()
            .route(CALLBACK_PATH, get(callback))
            .with_state(Ctx {
                state: Arc::new(expected_state),
                tx,
            });
        let mut tasks = Vec::new();
        for listener in std::iter::once(v4).chain(v6) {
            let app = app.clone();
            tasks.push(tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            }));
        }
        Ok(CallbackServer { rx, port, tasks })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The callback URL to register: `http://localhost:PORT/oauth/callback`.
    pub fn redirect_uri(&self) -> String {
        redirect_uri(self.port)
    }

    /// Waits for the next genuine callback.
    pub async fn next(&mut self) -> Option<CallbackOutcome> {
        self.rx.recv().await
    }
}

impl Drop for CallbackServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// `http://localhost:PORT/oauth/callback`.
pub fn redirect_uri(port: u16) -> String {
    format!("http://localhost:{port}{CALLBACK_PATH}")
}

fn page(status: StatusCode, title: &str, text: &str) -> Response {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>sfetl login</title></head><body><h1>{}</h1><p id=\"result\">{}</p></body></html>",
        escape(title),
        escape(text)
    );
    (status, Html(body)).into_response()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn callback(State(ctx): State<Ctx>, Query(p): Query<Params>) -> Response {
    if p.state.as_deref() != Some(ctx.state.expose()) {
        eprintln!(
            "sfetl login: ignored a callback whose state does not match this login (a stale tab or a forged request); still waiting"
        );
        return page(
            StatusCode::BAD_REQUEST,
            "Callback rejected",
            "This callback does not belong to the sfetl login waiting here (its state differs), so it was ignored. Start again from the URL sfetl printed.",
        );
    }
    if let Some(error) = p.error {
        let description = p.error_description.unwrap_or_default();
        let _ = ctx
            .tx
            .send(CallbackOutcome::Error {
                error: error.clone(),
                description: description.clone(),
            })
            .await;
        return page(
            StatusCode::OK,
            "Salesforce did not authorize sfetl",
            &format!("{error}: {description}. The terminal explains what to do."),
        );
    }
    match p.code {
        Some(code) if !code.is_empty() => {
            let _ = ctx.tx.send(CallbackOutcome::Code(Secret::new(code))).await;
            page(
                StatusCode::OK,
                "sfetl received the authorization",
                "You can close this tab and return to the terminal.",
            )
        }
        _ => page(
            StatusCode::BAD_REQUEST,
            "Callback rejected",
            "The callback carries neither a code nor an error.",
        ),
    }
}
