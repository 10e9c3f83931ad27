//! One API request, described as data so the client can resend it after a token refresh or a
//! transient failure.

use bytes::Bytes;
use reqwest::Method;
use serde_json::Value;

/// A request body.
#[derive(Debug, Clone)]
pub enum ApiBody {
    /// A JSON document (`Content-Type: application/json`).
    Json(Value),
    /// Raw bytes with their content type (Bulk CSV uploads).
    Text {
        /// e.g. `text/csv`.
        content_type: String,
        /// The body.
        bytes: Bytes,
    },
}

/// A request to the Salesforce API. The bearer token is added by the client.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    /// HTTP method.
    pub method: Method,
    /// Absolute URL (see `SalesforceClient::data_url`).
    pub url: String,
    /// Optional body.
    pub body: Option<ApiBody>,
    /// Extra headers (`Sforce-Query-Options`, `Accept-Encoding`...).
    pub headers: Vec<(String, String)>,
    /// Whether sending it twice is harmless: only idempotent requests are retried after a
    /// transient failure (a 401 refresh-and-retry is always safe: Salesforce did nothing).
    pub idempotent: bool,
    /// The caller reads the body itself and inflates it when `Content-Encoding: gzip` (see
    /// [`ApiRequest::inflated_by_caller`]).
    pub inflated_by_caller: bool,
}

impl ApiRequest {
    fn new(method: Method, url: impl Into<String>, idempotent: bool) -> ApiRequest {
        ApiRequest {
            method,
            url: url.into(),
            body: None,
            headers: Vec::new(),
            idempotent,
            inflated_by_caller: false,
        }
    }

    /// A GET (idempotent).
    pub fn get(url: impl Into<String>) -> ApiRequest {
        ApiRequest::new(Method::GET, url, true)
    }

    /// A DELETE (idempotent).
    pub fn delete(url: impl Into<String>) -> ApiRequest {
        ApiRequest::new(Method::DELETE, url, true)
    }

    /// A POST with a JSON body (not idempotent: it may create something).
    pub fn post_json(url: impl Into<String>, body: Value) -> ApiRequest {
        ApiRequest::new(Method::POST, url, false).with_body(ApiBody::Json(body))
    }

    /// A PATCH with a JSON body (not idempotent unless said so with [`ApiRequest::idempotent`]).
    pub fn patch_json(url: impl Into<String>, body: Value) -> ApiRequest {
        ApiRequest::new(Method::PATCH, url, false).with_body(ApiBody::Json(body))
    }

    /// A PUT with raw bytes (Bulk ingest upload; not retried by default).
    pub fn put_bytes(url: impl Into<String>, content_type: &str, bytes: Bytes) -> ApiRequest {
        ApiRequest::new(Method::PUT, url, false).with_body(ApiBody::Text {
            content_type: content_type.to_string(),
            bytes,
        })
    }

    /// Sets the body.
    pub fn with_body(mut self, body: ApiBody) -> ApiRequest {
        self.body = Some(body);
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> ApiRequest {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sends the request without reqwest's transparent decompression, asking for gzip itself
    /// (unless `SFETL_GZIP=0`): the caller inflates the body in large steps. For Bulk result
    /// pages, where inflating is a fifth of the read's CPU; error answers are still inflated
    /// by the client before they are parsed.
    pub fn inflated_by_caller(mut self) -> ApiRequest {
        self.inflated_by_caller = true;
        self
    }

    /// Declares whether the request may be retried after a transient failure.
    pub fn idempotent(mut self, idempotent: bool) -> ApiRequest {
        self.idempotent = idempotent;
        self
    }
}
