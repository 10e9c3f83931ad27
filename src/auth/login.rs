//! Why `sfetl login` can fail: the errors of the interactive flow (callback port, browser
//! timeout, missing refresh token, identity, writing the config), each worded as what to do.
//! They live with the flows rather than with the command so the top-level error type does not
//! depend on the command layer.

use std::path::PathBuf;

use super::AuthError;
use crate::protocol::FailureType;

/// Why `sfetl login` failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Salesforce refused (callback error or token exchange).
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The callback port is taken.
    #[error(
        "Cannot listen on http://localhost:{port}/oauth/callback ({detail}). Another program uses port {port}: stop it, or pass --port N and add http://localhost:N/oauth/callback to the app's Callback URL."
    )]
    Port {
        /// The port.
        port: u16,
        /// The OS error.
        detail: String,
    },
    /// Nobody came back in time.
    #[error(
        "No answer from the browser within {minutes} minutes; run `sfetl login` again. If the browser shows a Salesforce error page: \"redirect_uri_mismatch\" means the app's Callback URL must be exactly {redirect_uri}; \"invalid_client_id\" means the Consumer Key is wrong or the app is new (Salesforce needs 2 to 10 minutes after a connected app is created or edited)."
    )]
    Timeout {
        /// The timeout in minutes (rounded up).
        minutes: u64,
        /// The callback URL.
        redirect_uri: String,
    },
    /// No refresh token in the answer.
    #[error(
        "Salesforce issued no refresh token, so sfetl could not run unattended. Add \"Perform requests at any time (refresh_token, offline_access)\" to the app's Selected OAuth Scopes and keep refresh_token offline_access in --scopes, then run `sfetl login` again."
    )]
    NoRefreshToken,
    /// The identity URL could not be read.
    #[error(
        "Connected, but the identity URL could not be read ({0}); run `sfetl check` on the saved config to see more."
    )]
    Identity(String),
    /// The config could not be written.
    #[error("Cannot write the config to {path}: {detail}; pass --out with a writable path.")]
    Write {
        /// The path.
        path: PathBuf,
        /// The OS error.
        detail: String,
    },
    /// No place to write the config by default.
    #[error(
        "Cannot find the user's config directory (neither XDG_CONFIG_HOME nor HOME is set); pass --out FILE."
    )]
    NoConfigDir,
}

impl LoginError {
    /// The protocol's failure type, for the exit code.
    pub fn failure_type(&self) -> FailureType {
        match self {
            LoginError::Auth(e) => e.failure_type(),
            LoginError::Timeout { .. } | LoginError::Identity(_) => FailureType::TransientError,
            _ => FailureType::ConfigError,
        }
    }
}
