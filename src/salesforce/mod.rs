//! The Salesforce HTTP client core: authenticated requests with refresh-on-401, retries with
//! backoff, API usage tracking and actionable errors. REST and Bulk modules build on
//! [`SalesforceClient`].

pub mod client;
pub mod errors;
pub mod limits;
pub mod request;
pub mod retry;

pub use client::{ClientHooks, SalesforceClient};
pub use errors::SalesforceError;
pub use limits::ApiUsage;
pub use request::{ApiBody, ApiRequest};
pub use retry::RetryPolicy;
