//! Validation of a config value: the JSON Schema first, then the rules a schema cannot express.
//! Problems are collected, one per field, each naming the field and what would be valid.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::OnceLock;

use chrono::{DateTime, NaiveDate, Utc};
use jsonschema::error::ValidationErrorKind;
use serde_json::Value;

use super::{
    AuthMethod, Compression, Config, ConfigError, Criteria, IsoDuration, MappingSource, NewFields,
    OutputConfig, OutputFormat, ParquetEncodings, RawConfig, Reconcile, SchemaDrift,
    StreamCriterion,
};
use crate::secret::Secret;

/// The connector specification, embedded at build time.
const SPEC_JSON: &str = include_str!("../../spec/spec.json");

/// The parsed `spec/spec.json` (the config's JSON Schema).
pub fn spec_schema() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| serde_json::from_str(SPEC_JSON).expect("spec/spec.json is valid JSON"))
}

fn validator() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        jsonschema::draft7::new(spec_schema()).expect("spec/spec.json is a valid draft-07 schema")
    })
}

/// One thing wrong with the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The field, as a dotted path (`output.format`, `streams_criteria[0].value`).
    pub field: String,
    /// What is wrong and what would be valid.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Collects problems, keeping the first one per field.
#[derive(Default)]
struct Problems {
    list: Vec<Problem>,
    fields: HashSet<String>,
}

impl Problems {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        let field = field.into();
        if self.fields.insert(field.clone()) {
            self.list.push(Problem {
                field,
                message: message.into(),
            });
        }
    }
    fn has(&self, field: &str) -> bool {
        self.fields.contains(field)
    }
}

/// Fields whose values must never be quoted in a message.
fn is_secret_field(field: &str) -> bool {
    let top = field.split(['.', '[']).next().unwrap_or("");
    spec_schema()["properties"][top]["airbyte_secret"].as_bool() == Some(true)
        || field.starts_with("output.storage_options")
}

const DATE_HINT: &str = "use a UTC date YYYY-MM-DD or date-time YYYY-MM-DDTHH:mm:ssZ, e.g. \"2021-07-25\" or \"2021-07-25T00:00:00Z\"";
const DURATION_HINT: &str =
    "use an ISO 8601 duration, e.g. \"P30D\" (30 days), \"PT12H\" (12 hours), \"P1M\" (1 month)";

const FORMULA_REFRESH_HINT: &str = "use an ISO 8601 duration, e.g. \"P1D\" (once a day, the default), \"PT6H\" (every 6 hours), \"PT0S\" (on every incremental read), or \"off\" to never read formula fields again on their own";

/// Advice for a field whose value has the wrong form.
fn hint_for(field: &str) -> Option<&'static str> {
    Some(match field {
        "start_date" | "end_date" => DATE_HINT,
        "stream_slice_step" | "lookback_window" => DURATION_HINT,
        "formula_refresh" => FORMULA_REFRESH_HINT,
        "api_version" => "use a version such as \"62.0\"",
        "domain" => {
            "give the My Domain host, e.g. \"acme.my.salesforce.com\" (Setup > My Domain shows it)"
        }
        "login_url" => "give a URL such as \"https://acme.my.salesforce.com\"",
        _ => return None,
    })
}

/// What the values of an enum setting mean, after the list of them.
fn enum_hint(field: &str) -> &'static str {
    match field {
        "schema_drift" => {
            ": \"fail\" ends a stream whose selected fields are gone from the org's describe, \"ignore\" reads it without them"
        }
        "output.encodings" => {
            ": \"auto\" lets sfetl write delta encodings where they store a column as small for less CPU, \"plain\" writes PLAIN and dictionary pages only, for readers without the delta encodings (Spark before 3.3)"
        }
        "new_fields" => {
            ": \"backfill\" reads an object again from start_date when it reads fields its last run did not, \"ignore\" reads on from the saved cursor"
        }
        _ => "",
    }
}

/// Advice for a missing field.
fn missing_advice(field: &str) -> String {
    match field {
        "client_id" => "is missing: set it to the Consumer Key of your connected app (Setup > App Manager > your app > View > Manage Consumer Details)".into(),
        "client_secret" => "is missing: set it to the Consumer Secret shown next to the Consumer Key (Setup > App Manager > your app > View > Manage Consumer Details)".into(),
        "refresh_token" => "is missing: run `sfetl login` to obtain one, or choose another auth_type (client_credentials, jwt_bearer)".into(),
        "username" => "is missing: the JWT bearer flow signs in as this Salesforce user (e.g. integration@example.com)".into(),
        "private_key" => "is missing: give private_key (PEM text) or private_key_path (a PEM file), the RSA key whose certificate is uploaded to the app".into(),
        "domain" => "is missing: the client_credentials flow only works on the org's My Domain host; set domain to e.g. \"acme.my.salesforce.com\" (Setup > My Domain)".into(),
        "output.path" => "is missing: parquet and delta output need a folder or URL, e.g. \"./export\" or \"s3://bucket/prefix\"".into(),
        _ => "is missing".into(),
    }
}

fn pointer_to_field(pointer: &str) -> String {
    let mut out = String::new();
    for seg in pointer.split('/').filter(|s| !s.is_empty()) {
        if seg.chars().all(|c| c.is_ascii_digit()) {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&seg.replace("~1", "/").replace("~0", "~"));
        }
    }
    out
}

fn show(value: &Value, secret: bool) -> String {
    if secret {
        return "the value".to_string();
    }
    let s = value.to_string();
    if s.chars().count() > 80 {
        format!("{}...", s.chars().take(80).collect::<String>())
    } else {
        s
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn schema_problems(value: &Value, problems: &mut Problems) {
    for err in validator().iter_errors(value) {
        let mut field = pointer_to_field(err.instance_path().as_str());
        let secret = is_secret_field(&field);
        let message = match err.kind() {
            ValidationErrorKind::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                field = if field.is_empty() {
                    name.to_string()
                } else {
                    format!("{field}.{name}")
                };
                missing_advice(&field)
            }
            ValidationErrorKind::Pattern { .. } => {
                let hint = hint_for(&field).unwrap_or("see `sfetl spec` for the accepted form");
                format!("{} is not valid: {hint}", show(err.instance(), secret))
            }
            ValidationErrorKind::Enum { options } => {
                let opts: Vec<String> = options
                    .as_array()
                    .map(|a| a.iter().map(|o| o.to_string()).collect())
                    .unwrap_or_default();
                format!(
                    "{} is not one of {}{}",
                    show(err.instance(), secret),
                    opts.join(", "),
                    enum_hint(&field)
                )
            }
            ValidationErrorKind::Type { kind } => {
                let expected = match kind {
                    jsonschema::error::TypeKind::Single(t) => t.to_string(),
                    jsonschema::error::TypeKind::Multiple(ts) => ts
                        .iter()
                        .map(|t| t.to_string())
                        .collect::<Vec<_>>()
                        .join(" or "),
                };
                format!("must be {expected}, not {}", type_name(err.instance()))
            }
            ValidationErrorKind::MinLength { .. } => "must not be empty".to_string(),
            ValidationErrorKind::Minimum { limit } => {
                format!(
                    "{} is below the least allowed, {limit}",
                    show(err.instance(), secret)
                )
            }
            ValidationErrorKind::Maximum { limit } => {
                format!(
                    "{} is over the most allowed, {limit}",
                    show(err.instance(), secret)
                )
            }
            _ => format!("{} is not valid", show(err.instance(), secret)),
        };
        let field = if field.is_empty() {
            "config".to_string()
        } else {
            field
        };
        problems.add(field, message);
    }
}

fn parse_date(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Ok(t.with_timezone(&Utc));
    }
    Err(format!("{text:?} is not a real date: {DATE_HINT}"))
}

fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// Validates `value` and builds the typed config, or lists every problem.
pub(super) fn validate(value: Value) -> Result<Config, ConfigError> {
    let mut p = Problems::default();
    if !value.is_object() {
        return Err(ConfigError::Invalid(vec![Problem {
            field: "config".into(),
            message: format!("must be a JSON object, not {}", type_name(&value)),
        }]));
    }
    schema_problems(&value, &mut p);
    let (start_date, end_date) = dates(&value, &mut p);
    // No default: windows are sized by rows; a step set here bounds their length.
    let stream_slice_step = str_field(&value, "stream_slice_step")
        .is_some()
        .then(|| duration(&value, "stream_slice_step", "P30D", true, &mut p));
    // A zero lookback or lag is allowed (and sometimes wanted), never advised.
    let lookback_window = duration(&value, "lookback_window", "PT10M", false, &mut p);
    let cursor_lag = duration(&value, "cursor_lag", "PT2M", false, &mut p);
    let formula_refresh = formula_refresh(&value, &mut p);
    let login_url = login_url(&value, &mut p);
    let domain = str_field(&value, "domain").map(|d| {
        d.trim_start_matches("https://")
            .trim_end_matches('/')
            .to_string()
    });
    let client_id = str_field(&value, "client_id")
        .unwrap_or_default()
        .to_string();
    let auth = auth_method(&value, domain.is_some() || login_url.is_some(), &mut p);
    let output = output_config(&value, &mut p);
    let mapping = mapping_source(&value, &mut p);
    let streams_criteria = streams_criteria(&value);
    api_version_floor(&value, &mut p);
    if !p.list.is_empty() {
        return Err(ConfigError::Invalid(p.list));
    }
    Ok(Config {
        auth,
        client_id,
        is_sandbox: value
            .get("is_sandbox")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        domain,
        login_url,
        api_version: str_field(&value, "api_version")
            .unwrap_or(DEFAULT_API_VERSION)
            .to_string(),
        start_date,
        end_date,
        streams_criteria,
        force_use_bulk_api: value
            .get("force_use_bulk_api")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        reconcile_deletes: reconcile(&value),
        schema_drift: schema_drift(&value),
        new_fields: new_fields(&value),
        stream_slice_step,
        lookback_window,
        cursor_lag,
        formula_refresh,
        output,
        mapping,
        writeback: value.get("writeback").cloned(),
        max_api_usage_percent: value.get("max_api_usage_percent").and_then(Value::as_f64),
        bulk_max_records: value.get("bulk_max_records").and_then(Value::as_u64),
        max_concurrent_jobs: value
            .get("max_concurrent_jobs")
            .and_then(Value::as_u64)
            .map_or(4, |n| n.max(1) as usize),
        rest_max_url_bytes: value.get("rest_max_url_bytes").and_then(Value::as_u64),
        rest_batch_size: value.get("rest_batch_size").and_then(Value::as_u64),
        rewrite_config_file: value
            .get("rewrite_config_file")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        raw: RawConfig(value),
    })
}

/// `new_fields` (its values were checked by the JSON schema).
fn new_fields(value: &Value) -> NewFields {
    match value.get("new_fields").and_then(Value::as_str) {
        Some("ignore") => NewFields::Ignore,
        _ => NewFields::Backfill,
    }
}

/// `reconcile_deletes` (its values were checked by the JSON schema).
fn reconcile(value: &Value) -> Reconcile {
    match value.get("reconcile_deletes").and_then(Value::as_str) {
        Some("always") => Reconcile::Always,
        Some("off") => Reconcile::Off,
        _ => Reconcile::Auto,
    }
}

/// `schema_drift` (its values were checked by the JSON schema).
fn schema_drift(value: &Value) -> SchemaDrift {
    match value.get("schema_drift").and_then(Value::as_str) {
        Some("ignore") => SchemaDrift::Ignore,
        _ => SchemaDrift::Fail,
    }
}

/// `start_date` and `end_date`, and that the end comes after the start.
fn dates(value: &Value, p: &mut Problems) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let date = |key: &str, p: &mut Problems| -> Option<DateTime<Utc>> {
        let text = str_field(value, key)?;
        if p.has(key) {
            return None;
        }
        parse_date(text).map_err(|e| p.add(key, e)).ok()
    };
    let start_date = date("start_date", p);
    let end_date = date("end_date", p);
    if let (Some(s), Some(e)) = (start_date, end_date)
        && e <= s
    {
        p.add(
            "end_date",
            format!("{} is not after start_date {}: give an end_date later than the start_date, or leave it empty to read up to now", e.to_rfc3339(), s.to_rfc3339()),
        );
    }
    (start_date, end_date)
}

/// An ISO 8601 duration setting, its default when absent or wrong (wrong is reported).
fn duration(
    value: &Value,
    key: &str,
    default: &str,
    positive: bool,
    p: &mut Problems,
) -> IsoDuration {
    let fallback = || IsoDuration::parse(default).expect("defaults parse");
    let parse = if positive {
        IsoDuration::parse_positive
    } else {
        IsoDuration::parse
    };
    match str_field(value, key) {
        Some(text) if !p.has(key) => parse(text).unwrap_or_else(|e| {
            p.add(key, format!("{e}: {DURATION_HINT}"));
            fallback()
        }),
        _ => fallback(),
    }
}

/// `formula_refresh`: `off` (None), else an ISO 8601 duration, `P1D` when absent; zero means
/// on every incremental read.
fn formula_refresh(value: &Value, p: &mut Problems) -> Option<IsoDuration> {
    match str_field(value, "formula_refresh") {
        Some(text) if text.eq_ignore_ascii_case("off") => None,
        Some(text) if !p.has("formula_refresh") => match IsoDuration::parse(text) {
            Ok(d) => Some(d),
            Err(e) => {
                p.add("formula_refresh", format!("{e}: {FORMULA_REFRESH_HINT}"));
                None
            }
        },
        _ => IsoDuration::parse("P1D").ok(),
    }
}

/// The API version used when the config names none.
const DEFAULT_API_VERSION: &str = "62.0";

/// The first API version with every resource sfetl calls: Bulk API 2.0 query jobs came with
/// 47.0 (its ingest jobs with 41.0, sObject Collections with 42.0, their upsert with 46.0).
pub(crate) const OLDEST_API_VERSION: u32 = 47;

/// `api_version` no older than [`OLDEST_API_VERSION`]: an org answers a Bulk query job in an
/// older version with a 404 that reads as if the org lacked the version, mid-read, where the
/// config could have said so before any call.
fn api_version_floor(value: &Value, p: &mut Problems) {
    let Some(text) = str_field(value, "api_version") else {
        return;
    };
    let major = text.strip_suffix(".0").and_then(|v| v.parse::<u32>().ok());
    if !p.has("api_version")
        && let Some(major) = major
        && major < OLDEST_API_VERSION
    {
        p.add(
            "api_version",
            format!(
                "{text} is older than {OLDEST_API_VERSION}.0, the first version with the Bulk API 2.0 query jobs sfetl reads with: set it to {OLDEST_API_VERSION}.0 or later, or leave it out for {DEFAULT_API_VERSION}"
            ),
        );
    }
}

/// `login_url`: a URL, https unless the host is loopback.
fn login_url(value: &Value, p: &mut Problems) -> Option<String> {
    let login_url = str_field(value, "login_url").map(str::to_string);
    if let Some(u) = &login_url
        && !p.has("login_url")
    {
        match url::Url::parse(u) {
            Err(_) => p.add(
                "login_url",
                format!(
                    "{u:?} is not a URL: {}",
                    hint_for("login_url").unwrap_or_default()
                ),
            ),
            Ok(parsed) => {
                let host = parsed.host_str().unwrap_or_default();
                if parsed.scheme() == "http" && !is_loopback_host(host) {
                    p.add("login_url", format!("{u:?} uses http:// for a host that is not loopback: Salesforce credentials travel only over https://; use https:// (http:// is allowed only for 127.0.0.1, ::1 or localhost, e.g. the simulator)"));
                } else if parsed.scheme() != "http" && parsed.scheme() != "https" {
                    p.add("login_url", format!("{u:?} must start with https://"));
                }
            }
        }
    }
    login_url
}

/// The auth flow and its credentials; `has_host` says whether a My Domain host is configured
/// (client credentials need one).
fn auth_method(value: &Value, has_host: bool, p: &mut Problems) -> AuthMethod {
    let secret = |key: &str| str_field(value, key).map(|s| Secret::new(s.to_string()));
    let auth_type = value
        .get("auth_type")
        .and_then(Value::as_str)
        .unwrap_or("refresh_token");
    match auth_type {
        "client_credentials" => {
            if secret("client_secret").is_none() {
                p.add("client_secret", missing_advice("client_secret"));
            }
            if !has_host {
                p.add("domain", missing_advice("domain"));
            }
            AuthMethod::ClientCredentials {
                client_secret: secret("client_secret").unwrap_or_default(),
            }
        }
        "jwt_bearer" => {
            let username = str_field(value, "username").map(str::to_string);
            if username.is_none() {
                p.add("username", missing_advice("username"));
            }
            let key = match (secret("private_key"), str_field(value, "private_key_path")) {
                (Some(k), _) => Some(k),
                (None, Some(path)) => match std::fs::read_to_string(path) {
                    Ok(text) => Some(Secret::new(text)),
                    Err(e) => {
                        p.add("private_key_path", format!("cannot read {path:?} ({e}): give the path of the PEM private key file"));
                        None
                    }
                },
                (None, None) => {
                    p.add("private_key", missing_advice("private_key"));
                    None
                }
            };
            if let Some(k) = &key
                && !k.expose().contains("PRIVATE KEY-----")
            {
                let field = if secret("private_key").is_some() {
                    "private_key"
                } else {
                    "private_key_path"
                };
                p.add(field, "does not hold a PEM private key (a block starting with -----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)");
            }
            AuthMethod::JwtBearer {
                username: username.unwrap_or_default(),
                private_key: key.unwrap_or_default(),
            }
        }
        // "refresh_token", Airbyte's "Client", or an invalid value already reported by the schema.
        _ => {
            if secret("refresh_token").is_none() {
                p.add("refresh_token", missing_advice("refresh_token"));
            }
            AuthMethod::RefreshToken {
                client_secret: secret("client_secret"),
                refresh_token: secret("refresh_token").unwrap_or_default(),
            }
        }
    }
}

/// The `output` object.
fn output_config(value: &Value, p: &mut Problems) -> OutputConfig {
    let out = value.get("output").cloned().unwrap_or(Value::Null);
    let format = match out.get("format").and_then(Value::as_str) {
        Some("parquet") => OutputFormat::Parquet,
        Some("arrow") => OutputFormat::Arrow,
        Some("delta") => OutputFormat::Delta,
        _ => OutputFormat::Records,
    };
    let path = str_field(&out, "path").map(str::to_string);
    if matches!(format, OutputFormat::Parquet | OutputFormat::Delta) && path.is_none() {
        p.add("output.path", missing_advice("output.path"));
    }
    let compression = match out.get("compression").and_then(Value::as_str) {
        Some("snappy") => Compression::Snappy,
        Some("none") => Compression::None,
        _ => Compression::Zstd,
    };
    let encodings = match out.get("encodings").and_then(Value::as_str) {
        Some("plain") => ParquetEncodings::Plain,
        _ => ParquetEncodings::Auto,
    };
    let storage_options: BTreeMap<String, Secret> = out
        .get("storage_options")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let s = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), Secret::new(s))
                })
                .collect()
        })
        .unwrap_or_default();

    let history = out.get("history").and_then(Value::as_bool).unwrap_or(false);
    OutputConfig {
        format,
        path,
        compression,
        encodings,
        storage_options,
        history,
        file_rows: out
            .get("file_rows")
            .and_then(Value::as_u64)
            .map_or(1_000_000, |n| n.max(1)),
    }
}

/// `mapping`: a file path (which must exist) or an inline mapping.
fn mapping_source(value: &Value, p: &mut Problems) -> Option<MappingSource> {
    match value.get("mapping") {
        Some(Value::String(path)) if !path.is_empty() => {
            let pb = std::path::PathBuf::from(path);
            if !pb.is_file() {
                p.add("mapping", format!("the mapping file {path:?} does not exist: give the path of a YAML or JSON mapping file (relative paths start from the current folder)"));
            }
            Some(MappingSource::File(pb))
        }
        Some(v @ Value::Object(_)) => Some(MappingSource::Inline(v.clone())),
        _ => None,
    }
}

/// `streams_criteria`, as the schema already checked them.
fn streams_criteria(value: &Value) -> Vec<StreamCriterion> {
    value
        .get("streams_criteria")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|c| {
                    let criteria = match c.get("criteria")?.as_str()? {
                        "starts with" => Criteria::StartsWith,
                        "ends with" => Criteria::EndsWith,
                        "contains" => Criteria::Contains,
                        "exacts" => Criteria::Exacts,
                        "starts not with" => Criteria::StartsNotWith,
                        "ends not with" => Criteria::EndsNotWith,
                        "not contains" => Criteria::NotContains,
                        "not exacts" => Criteria::NotExacts,
                        _ => return None,
                    };
                    Some(StreamCriterion {
                        criteria,
                        value: c.get("value")?.as_str()?.to_string(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}
