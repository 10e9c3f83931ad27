//! Errors of API calls, parsed from Salesforce's error bodies and worded as what to do.

use serde_json::Value;

use super::limits::ApiUsage;
use crate::auth::AuthError;
use crate::protocol::FailureType;
use crate::transport::UrlError;

/// A failed Salesforce call. Messages never contain a credential.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SalesforceError {
    /// No token could be obtained.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A URL that may not carry credentials (http:// to a remote host).
    #[error(transparent)]
    Url(#[from] UrlError),
    /// The host could not be reached (after retries for idempotent requests).
    #[error(
        "Cannot reach {host}: {detail}. Check the network, proxy and firewall; if it persists, see status.salesforce.com."
    )]
    Unreachable {
        /// Origin of the URL.
        host: String,
        /// What failed.
        detail: String,
    },
    /// 403 `REQUEST_LIMIT_EXCEEDED`: the org's rolling 24-hour API quota is used up.
    #[error(
        "The org's daily API request limit is used up (REQUEST_LIMIT_EXCEEDED: {message}{}). The limit counts the last 24 hours, so calls succeed again as older ones age out: run again later, spread runs out, or raise the org's limit (Setup > Company Information shows \"API Requests, Last 24 Hours\").", .usage.map(|u| format!("; {u}")).unwrap_or_default()
    )]
    RequestLimitExceeded {
        /// Usage from the last `Sforce-Limit-Info` seen.
        usage: Option<ApiUsage>,
        /// Salesforce's message.
        message: String,
    },
    /// 403 `REQUEST_LIMIT_EXCEEDED` about concurrency, still refused after every retry.
    #[error(
        "Salesforce refused a request {attempts} times, with growing waits between, because too many run at once in the org ({message}). This passes when other long requests and Bulk jobs finish: run again later, or run fewer syncs against this org at the same time."
    )]
    ConcurrencyLimit {
        /// Attempts made, the first included.
        attempts: u32,
        /// Salesforce's message.
        message: String,
    },
    /// 403 `API_DISABLED_FOR_ORG`: no API access for this user or edition.
    #[error(
        "Salesforce refuses API access (API_DISABLED_FOR_ORG: {message}). Give the connecting user the \"API Enabled\" permission: Setup > Users > Permission Sets (or the user's Profile) > System Permissions > API Enabled; for client credentials that is the app's Run As user. Professional Edition orgs need the API add-on; Essentials and Group editions have no API access."
    )]
    ApiDisabled {
        /// Salesforce's message.
        message: String,
    },
    /// A freshly issued token was refused as well.
    #[error(
        "Salesforce refused a freshly issued access token ({code}: {message}). If it says the session is not valid for the REST API, add the \"Manage user data via APIs (api)\" scope to the app and connect again with `sfetl login`; if the org locks sessions to an IP address (Setup > Session Settings) or the app's IP Relaxation is enforced, allow this machine's IP."
    )]
    SessionRejected {
        /// Salesforce's errorCode.
        code: String,
        /// Salesforce's message.
        message: String,
    },
    /// Any other error answer.
    #[error("Salesforce answered HTTP {status} {code}: {message}{}", advice_for(.code))]
    Api {
        /// HTTP status.
        status: u16,
        /// Salesforce's errorCode (or the plain-text body of identity errors).
        code: String,
        /// Salesforce's message.
        message: String,
    },
    /// A Bulk API 2.0 job ended `Failed` or `Aborted`.
    #[error("Bulk {kind} job {job} ended {state}: {message}")]
    BulkJobFailed {
        /// `query` or `ingest`.
        kind: &'static str,
        /// Job id.
        job: String,
        /// Final state.
        state: String,
        /// Salesforce's `errorMessage`.
        message: String,
    },
    /// A Bulk API 2.0 job did not finish before the deadline (it was aborted).
    #[error(
        "Bulk {kind} job {job} did not finish within {waited:?} and was aborted; try a smaller bulk_max_records (rows per window) or stream_slice_step, or run when the org is less busy"
    )]
    BulkJobTimeout {
        /// `query` or `ingest`.
        kind: &'static str,
        /// Job id.
        job: String,
        /// How long sfetl waited.
        waited: std::time::Duration,
    },
    /// A response body was cut off midway (the connection dropped).
    #[error("the response of {what} was cut off: {reason}")]
    CutOff {
        /// Which job, page or query.
        what: String,
        /// The transport's message.
        reason: String,
    },
    /// A server error answered with a web page, not the API's JSON: the instance is down for
    /// maintenance, or a CDN answered for it. (A web page with another status, such as the
    /// front end's 414, is an [`SalesforceError::Api`] holding the page's text.)
    #[error(
        "Salesforce answered HTTP {status} with a web page instead of an API answer{}. The instance is down for maintenance or in trouble, or a CDN answered for it: check https://status.salesforce.com for the instance, then run again (a read resumes from its last STATE)",
        quoted(.text)
    )]
    WebPage {
        /// HTTP status (5xx).
        status: u16,
        /// The page's visible text, shortened.
        text: String,
    },
    /// A name that cannot be a Salesforce object's API name (it would change the URL's path).
    #[error(
        "{name:?} is not a Salesforce object name: API names hold only letters, digits and underscores (Account, Score__c, ns__Thing__c); check the catalog's stream names"
    )]
    InvalidObjectName {
        /// The name given.
        name: String,
    },
    /// The caller asked to stop (a signal, or the quota stop) while waiting on Salesforce.
    #[error("stopped before finishing; the next run resumes from the last STATE")]
    Cancelled,
    /// A 2xx answer that is not what the API documents.
    #[error(
        "Salesforce's answer from {host} could not be read ({detail}). Check api_version; if it persists this is a bug in sfetl."
    )]
    InvalidResponse {
        /// Origin of the URL.
        host: String,
        /// What was wrong (never the body).
        detail: String,
    },
}

/// HTTP statuses worth retrying: 5xx, 429 (too many requests) and 420 (Salesforce's
/// "enhance your calm" on some gateways).
pub fn is_transient_status(status: u16) -> bool {
    status >= 500 || status == 429 || status == 420
}

/// Salesforce error codes worth retrying whatever the status, for whole calls and for single
/// rows of a write (a record lock held by a trigger, a server busy for a moment).
pub fn is_transient_code(code: &str) -> bool {
    matches!(code, "UNABLE_TO_LOCK_ROW" | "SERVER_UNAVAILABLE")
}

/// Advice appended to [`SalesforceError::Api`] for the codes admins meet most.
fn advice_for(code: &str) -> &'static str {
    match code {
        "INVALID_FIELD" | "INVALID_TYPE" | "MALFORMED_QUERY" => {
            ". The object or field does not exist for this user: check the catalog and mapping, and the user's field-level security and object permissions."
        }
        "INSUFFICIENT_ACCESS" | "INSUFFICIENT_ACCESS_OR_READONLY" => {
            ". The user lacks permission: grant the object and field permissions in a permission set."
        }
        "NOT_FOUND" => ". Check api_version: the org may not offer this API version.",
        "INVALID_QUERY_LOCATOR" => {
            ". Salesforce dropped the query's cursor, and running the query again from the last row read got no further: run again later."
        }
        "OPERATION_TOO_LARGE" => {
            ". Salesforce checks sharing on every row a user without the View All Data permission reads (Task and Event especially), and gave up on this query even in windows of one second: give the integration user View All Data (or View All on the object), or leave the object out."
        }
        "QUERY_TIMEOUT" | "QUERY_TOO_COMPLICATED" => {
            ". sfetl reads a window Salesforce gives up on in smaller windows, down to one second, and this one still failed: select fewer fields, or ask Salesforce support for a custom index on the cursor field."
        }
        _ => "",
    }
}

impl SalesforceError {
    /// The protocol's failure type: config errors need a person, transient ones a later retry.
    pub fn failure_type(&self) -> FailureType {
        match self {
            SalesforceError::Auth(e) => e.failure_type(),
            SalesforceError::Url(_)
            | SalesforceError::InvalidObjectName { .. }
            | SalesforceError::ApiDisabled { .. }
            | SalesforceError::SessionRejected { .. } => FailureType::ConfigError,
            SalesforceError::Unreachable { .. }
            | SalesforceError::RequestLimitExceeded { .. }
            | SalesforceError::ConcurrencyLimit { .. }
            | SalesforceError::BulkJobTimeout { .. }
            | SalesforceError::CutOff { .. }
            | SalesforceError::Cancelled => FailureType::TransientError,
            SalesforceError::Api { status, code, .. } => {
                if is_transient_status(*status) || is_transient_code(code) {
                    FailureType::TransientError
                } else if matches!(
                    code.as_str(),
                    "INVALID_FIELD"
                        | "INVALID_TYPE"
                        | "MALFORMED_QUERY"
                        | "INSUFFICIENT_ACCESS"
                        | "INSUFFICIENT_ACCESS_OR_READONLY"
                        | "NOT_FOUND"
                        | "OPERATION_TOO_LARGE"
                ) {
                    FailureType::ConfigError
                } else {
                    FailureType::SystemError
                }
            }
            SalesforceError::InvalidResponse { .. } | SalesforceError::BulkJobFailed { .. } => {
                FailureType::SystemError
            }
            SalesforceError::WebPage { .. } => FailureType::TransientError,
        }
    }

    /// The Salesforce errorCode, when the failure is an API error answer.
    pub fn error_code(&self) -> Option<&str> {
        match self {
            SalesforceError::Api { code, .. } | SalesforceError::SessionRejected { code, .. } => {
                Some(code)
            }
            SalesforceError::RequestLimitExceeded { .. }
            | SalesforceError::ConcurrencyLimit { .. } => Some("REQUEST_LIMIT_EXCEEDED"),
            SalesforceError::ApiDisabled { .. } => Some("API_DISABLED_FOR_ORG"),
            _ => None,
        }
    }

    /// `CODE: message` of an API error, without the advice its full text adds, for a log
    /// line about a refusal sfetl works around; any other error whole.
    pub fn brief(&self) -> String {
        match self {
            SalesforceError::Api { code, message, .. }
            | SalesforceError::SessionRejected { code, message } => format!("{code}: {message}"),
            other => other.to_string(),
        }
    }

    /// True when the session was refused even after a refresh: a query locator of the old
    /// session must be restarted from the beginning.
    pub fn is_session_invalid(&self) -> bool {
        matches!(self, SalesforceError::SessionRejected { .. })
    }
}

/// `errorCode` and `message` of an error body: Salesforce's array
/// `[{"message","errorCode"}]`, a bare object, an OAuth-style `{"error","error_description"}`,
/// or the plain text of identity-URL errors (`Bad_OAuth_Token`).
pub fn parse_error_body(body: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(body);
    let first = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => items.into_iter().next(),
        Ok(v @ Value::Object(_)) => Some(v),
        _ => None,
    };
    if let Some(v) = first {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let code = s("errorCode").or_else(|| s("error"));
        let message = s("message").or_else(|| s("error_description"));
        if code.is_some() || message.is_some() {
            return (code.unwrap_or_default(), message.unwrap_or_default());
        }
    }
    let trimmed: String = text.trim().chars().take(300).collect();
    if !trimmed.is_empty() && trimmed.len() <= 64 && !trimmed.contains(char::is_whitespace) {
        (trimmed.clone(), trimmed)
    } else {
        (String::new(), trimmed)
    }
}

/// ` ("text")`, or nothing for an empty text.
fn quoted(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!(" (\"{text}\")")
    }
}

/// The visible text of an HTML error page, whitespace collapsed, at most 300 characters:
/// what a person would read on it ("down for maintenance"), without its markup, scripts and
/// styles. Read leniently (HTML is not XML): markup the reader cannot parse is skipped.
pub fn page_text(body: &[u8]) -> String {
    use quick_xml::events::Event;
    let visible = without_raw_text(body);
    let mut reader = quick_xml::Reader::from_reader(visible.as_slice());
    let config = reader.config_mut();
    config.check_end_names = false;
    config.allow_unmatched_ends = true;
    let mut text = String::new();
    let mut buf = Vec::new();
    loop {
        let at = reader.buffer_position();
        let piece = match reader.read_event_into(&mut buf) {
            Ok(Event::Text(t)) => t.decode().ok().map(|s| s.into_owned()),
            Ok(Event::GeneralRef(r)) => match r.resolve_char_ref() {
                Ok(Some(c)) => Some(c.to_string()),
                _ => entity(&r.decode().unwrap_or_default()).map(str::to_string),
            },
            Ok(Event::Eof) => break,
            // Markup it could not parse: skipped when the reader moved past it, else the end.
            Err(_) if reader.buffer_position() > at => None,
            Err(_) => break,
            // Markup separates words (`<br>`, `</td><td>`).
            _ => Some(" ".to_string()),
        };
        if let Some(piece) = piece {
            text.push_str(&piece);
        }
        buf.clear();
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    let joined = words.join(" ");
    match joined.char_indices().nth(300) {
        Some((cut, _)) => format!("{}...", &joined[..cut]),
        None => joined,
    }
}

/// The page without its `<script>` and `<style>` elements, whose content is code (with `<`
/// and `&` an XML reader would trip on), not text a person reads.
fn without_raw_text(body: &[u8]) -> Vec<u8> {
    use memchr::memmem::find;
    let lower = body.to_ascii_lowercase();
    let mut out = Vec::with_capacity(body.len());
    let mut at = 0;
    while at < body.len() {
        let next = ["script", "style"]
            .iter()
            .filter_map(|tag| {
                let open = find(&lower[at..], format!("<{tag}").as_bytes())? + at;
                Some((open, *tag))
            })
            .min();
        let Some((open, tag)) = next else { break };
        out.extend_from_slice(&body[at..open]);
        let close = format!("</{tag}");
        at = match find(&lower[open..], close.as_bytes()) {
            Some(end) => match memchr::memchr(b'>', &lower[open + end..]) {
                Some(gt) => open + end + gt + 1,
                None => body.len(),
            },
            None => body.len(),
        };
    }
    if at < body.len() {
        out.extend_from_slice(&body[at..]);
    }
    out
}

/// A named entity's text: XML's five (quick-xml's table) and the spaces and dashes error
/// pages use.
fn entity(name: &str) -> Option<&'static str> {
    quick_xml::escape::resolve_predefined_entity(name).or(match name {
        "nbsp" => Some(" "),
        "ndash" => Some("–"),
        "mdash" => Some("—"),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_error_shape() {
        let recorded =
            br#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#;
        assert_eq!(
            parse_error_body(recorded),
            (
                "INVALID_SESSION_ID".into(),
                "Session expired or invalid".into()
            )
        );
        assert_eq!(
            parse_error_body(br#"{"errorCode":"NOT_FOUND","message":"x"}"#),
            ("NOT_FOUND".into(), "x".into())
        );
        assert_eq!(
            parse_error_body(b"Bad_OAuth_Token"),
            ("Bad_OAuth_Token".into(), "Bad_OAuth_Token".into())
        );
        assert_eq!(
            parse_error_body(b"<html>oops</html> x"),
            (String::new(), "<html>oops</html> x".into())
        );
    }

    #[test]
    fn an_error_page_is_read_as_its_text() {
        let page = br#"<!DOCTYPE html>
<html><head><title>Unavailable</title><style>td { font: 12px Verdana; }</style>
<script>if (a < b && c) { go(); }</script></head>
<body><center><table width=758><tr>
  <td><b>This&nbsp;instance is down for maintenance.</b><br><br>It&#39;s back soon &amp; your data is safe.</td><br>
</tr></table></center></body></html>"#;
        assert_eq!(
            page_text(page),
            "Unavailable This instance is down for maintenance. It's back soon & your data is safe."
        );
        assert_eq!(page_text(b""), "");
        let long = format!("<p>{}</p>", "word ".repeat(100));
        assert_eq!(page_text(long.as_bytes()).chars().count(), 303);
    }

    #[test]
    fn a_web_page_from_a_server_in_trouble_is_transient_and_says_where_to_look() {
        let page = SalesforceError::WebPage {
            status: 503,
            text: String::new(),
        };
        assert_eq!(page.failure_type(), FailureType::TransientError);
        assert_eq!(
            page.to_string(),
            "Salesforce answered HTTP 503 with a web page instead of an API answer. The instance is down for maintenance or in trouble, or a CDN answered for it: check https://status.salesforce.com for the instance, then run again (a read resumes from its last STATE)"
        );
    }

    #[test]
    fn failure_types() {
        let api = |status, code: &str| SalesforceError::Api {
            status,
            code: code.into(),
            message: String::new(),
        };
        assert_eq!(
            api(503, "SERVER_UNAVAILABLE").failure_type(),
            FailureType::TransientError
        );
        assert_eq!(
            api(400, "INVALID_FIELD").failure_type(),
            FailureType::ConfigError
        );
        assert_eq!(
            api(400, "JSON_PARSER_ERROR").failure_type(),
            FailureType::SystemError
        );
        assert_eq!(
            SalesforceError::RequestLimitExceeded {
                usage: None,
                message: String::new()
            }
            .failure_type(),
            FailureType::TransientError
        );
    }
}
