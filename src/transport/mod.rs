//! The HTTP transport rules shared by the token calls (`auth/`) and the data calls
//! (`salesforce/`): https only (plain http only to loopback addresses, for the simulator), a
//! timeout on every request, no redirects followed, and error texts that name the host but never
//! a full URL (query strings may carry SOQL, never credentials, but hosts are what admins fix).

use std::time::Duration;

use url::{Host, Url};

pub mod backoff;

pub use backoff::{Attempts, RetryPolicy, retry};

/// How long to wait for a TCP + TLS connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a response may stay silent (per read, so large Bulk downloads are not cut off).
pub const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// Whole-request limit for token and identity calls, which are small.
pub const TOKEN_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A URL sfetl refuses to send credentials to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not parseable as an absolute URL.
    #[error(
        "{what} {url:?} is not an absolute URL; give one such as https://acme.my.salesforce.com"
    )]
    Malformed {
        /// Which URL (login host, instance URL...).
        what: &'static str,
        /// The text (never a credential: URLs sfetl builds carry none).
        url: String,
    },
    /// http:// to a non-loopback host, or another scheme.
    #[error(
        "{what} {host} does not use https://: sfetl sends Salesforce credentials only over https (plain http is allowed only for 127.0.0.1, ::1 and localhost, e.g. the simulator)"
    )]
    Insecure {
        /// Which URL.
        what: &'static str,
        /// Its scheme and host.
        host: String,
    },
}

/// True for 127.0.0.0/8, ::1 and `localhost`.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Parses `text` and checks it may carry credentials (https, or http to loopback).
pub fn checked_url(what: &'static str, text: &str) -> Result<Url, UrlError> {
    let url = Url::parse(text).map_err(|_| UrlError::Malformed {
        what,
        url: text.to_string(),
    })?;
    if url.host().is_none() {
        return Err(UrlError::Malformed {
            what,
            url: text.to_string(),
        });
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        _ => Err(UrlError::Insecure {
            what,
            host: origin(&url),
        }),
    }
}

/// `scheme://host[:port]` of a URL: what error messages show instead of the whole URL.
pub fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// The origin of a URL given as text, or a placeholder when it does not parse.
pub fn origin_of(text: &str) -> String {
    Url::parse(text)
        .map(|u| origin(&u))
        .unwrap_or_else(|_| "(unparseable URL)".to_string())
}

/// Whether sfetl asks Salesforce for gzip-compressed answers. gzip pays off over WANs (CSV
/// shrinks several times) but inflating costs CPU; `SFETL_GZIP=0` turns it off where bandwidth
/// is free (the loopback simulator).
pub fn gzip_wanted() -> bool {
    std::env::var("SFETL_GZIP")
        .map(|v| v != "0")
        .unwrap_or(true)
}

/// The system's root certificates (what `SSL_CERT_FILE` / `SSL_CERT_DIR` or the OS store
/// hold), read once per process and handed to every client sfetl builds, beside the bundled
/// webpki roots.
///
/// reqwest reads the whole store again for each client it builds: a read builds two (see
/// [`http_client_raw`]), and each build opened some 300 files and parsed 600 certificates, a
/// tenth of a small read's CPU. Certificates rustls cannot use are left out here, as reqwest
/// leaves them out (old stores hold a few).
fn native_roots() -> &'static [reqwest::Certificate] {
    static ROOTS: std::sync::OnceLock<Vec<reqwest::Certificate>> = std::sync::OnceLock::new();
    ROOTS.get_or_init(|| {
        let loaded = rustls_native_certs::load_native_certs();
        for e in &loaded.errors {
            tracing::debug!("system root certificates: {e}");
        }
        let mut check = rustls::RootCertStore::empty();
        loaded
            .certs
            .into_iter()
            .filter(|der| check.add(der.as_ref().into()).is_ok())
            .filter_map(|der| reqwest::Certificate::from_der(der.as_ref()).ok())
            .collect()
    })
}

fn client_builder() -> reqwest::ClientBuilder {
    let builder = native_roots().iter().cloned().fold(
        reqwest::Client::builder().tls_built_in_native_certs(false),
        reqwest::ClientBuilder::add_root_certificate,
    );
    builder
        .user_agent(concat!("sfetl/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
}

fn build(builder: reqwest::ClientBuilder) -> reqwest::Client {
    builder
        .build()
        // Building fails only if the TLS backend cannot initialise, which rustls with bundled
        // roots does not; fall back to reqwest's defaults rather than abort.
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// The one reqwest client sfetl uses for Salesforce: rustls, gzip (see [`gzip_wanted`]),
/// timeouts, no redirects (Salesforce does not redirect API calls, and a redirect must never
/// carry a token elsewhere).
pub fn http_client() -> reqwest::Client {
    build(client_builder().gzip(gzip_wanted()))
}

/// The same client without reqwest's transparent decompression, for bodies sfetl inflates
/// itself: Bulk result pages (hundreds of MB), which reqwest would inflate 4 KB at a time
/// (tower-http's fixed buffer), a quarter slower than the large steps `source::gunzip` takes.
/// Requests sent with it ask for gzip explicitly (`ApiRequest::inflated_by_caller`).
pub fn http_client_raw() -> reqwest::Client {
    build(client_builder().gzip(false))
}

/// How far this machine's clock is ahead of the server's (negative: behind) by an answer's
/// `Date` header, the answer having arrived at `arrived`: at least the real lead, as the server
/// wrote the header before the answer arrived (HTTP dates are whole seconds, RFC 9110 §5.6.7).
/// `None` without a header that is an HTTP date. The data calls' clock (`salesforce::clock`)
/// and the JWT grant's refusals (`auth::jwt`) both read it.
pub fn date_lead(
    headers: &reqwest::header::HeaderMap,
    arrived: chrono::DateTime<chrono::Utc>,
) -> Option<chrono::TimeDelta> {
    let text = headers.get(reqwest::header::DATE)?.to_str().ok()?;
    // IMF-fixdate (`Tue, 06 Aug 2013 16:46:10 GMT`) is a form RFC 2822 reads.
    let date = chrono::DateTime::parse_from_rfc2822(text).ok()?;
    Some(arrived - date.with_timezone(&chrono::Utc))
}

/// A [`date_lead`] in words for a message, before the other clock's name: `600.3 s ahead of`,
/// or `299.5 s behind`.
pub fn lead_words(lead: chrono::TimeDelta) -> String {
    let seconds = lead.num_milliseconds().abs() as f64 / 1e3;
    let way = if lead > chrono::TimeDelta::zero() {
        "ahead of"
    } else {
        "behind"
    };
    format!("{seconds:.1} s {way}")
}

/// Describes a reqwest failure without its URL: what happened, for a message naming the host.
pub fn describe_reqwest_error(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "the response was cut off"
    } else if e.is_request() {
        "the request could not be sent"
    } else {
        "HTTP error"
    };
    match innermost_cause(e) {
        Some(cause) => format!("{kind} ({cause})"),
        None => kind.to_string(),
    }
}

/// Why a response body could not be read to its end: the innermost cause ("connection reset
/// by peer", "end of file before message length reached"), which reqwest's own text ("error
/// decoding response body") hides; that text when there is no cause.
pub fn body_error_cause(e: &reqwest::Error) -> String {
    innermost_cause(e).unwrap_or_else(|| e.to_string())
}

/// The innermost cause (DNS, refused, TLS, reset) is what helps; reqwest's own text holds the
/// URL.
fn innermost_cause(e: &reqwest::Error) -> Option<String> {
    let mut cause = std::error::Error::source(e)?;
    while let Some(deeper) = cause.source() {
        cause = deeper;
    }
    Some(cause.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_http_only_on_loopback() {
        assert!(checked_url("login URL", "https://login.salesforce.com").is_ok());
        assert!(checked_url("login URL", "http://127.0.0.1:8080").is_ok());
        assert!(checked_url("login URL", "http://localhost:1717/x").is_ok());
        assert!(checked_url("login URL", "http://[::1]:9/").is_ok());
        assert_eq!(
            checked_url("instance URL", "http://na1.salesforce.com/x?y=1")
                .unwrap_err()
                .to_string(),
            "instance URL http://na1.salesforce.com does not use https://: sfetl sends Salesforce credentials only over https (plain http is allowed only for 127.0.0.1, ::1 and localhost, e.g. the simulator)"
        );
        assert!(matches!(
            checked_url("login URL", "login.salesforce.com"),
            Err(UrlError::Malformed { .. })
        ));
    }

    #[test]
    fn origin_drops_path_and_query() {
        assert_eq!(
            origin_of("https://acme.my.salesforce.com/services/data/v62.0/query?q=SELECT"),
            "https://acme.my.salesforce.com"
        );
    }
}
