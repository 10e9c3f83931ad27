//! OAuth 2.0 against Salesforce: every flow admins use (authorization code with PKCE or a
//! secret, refresh token, client credentials, JWT bearer), the [`TokenProvider`] all API calls
//! go through, and advice for each way a token request fails.
//!
//! Why its own layer: token handling (single-flight refresh, rotation, errors that name the
//! setting to fix) is the same for every API sfetl calls, and keeping it apart from the data
//! client lets `sfetl login` reuse the flows without a data connection.

pub mod callback;
pub mod errors;
pub mod jwt;
pub mod login;
pub mod oauth;
pub mod pkce;
pub mod provider;
pub mod token;

pub use errors::{AuthError, Grant, RequestContext};
pub use oauth::{AppCredentials, Endpoints};
pub use pkce::PkceSession;
pub use provider::{RotationHook, TokenProvider};
pub use token::Token;
