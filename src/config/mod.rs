//! The connector config: parsed from JSON, validated against `spec/spec.json`, then checked
//! semantically, with every problem reported at once.
//!
//! Why both passes: the JSON Schema is what orchestrators show in their forms, so it must hold
//! the rules; the semantic pass catches what a schema cannot say (a 30th of February, an end
//! before the start, an http:// login URL to a remote host) and turns each into advice.

mod duration;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde_json::Value;

pub use duration::IsoDuration;
pub use validate::{Problem, spec_schema};

use crate::secret::Secret;

/// The whole config, typed.
#[derive(Debug, Clone)]
pub struct Config {
    /// How to obtain tokens.
    pub auth: AuthMethod,
    /// The connected app's Consumer Key.
    pub client_id: String,
    /// Log in at test.salesforce.com.
    pub is_sandbox: bool,
    /// My Domain host (`acme.my.salesforce.com`), without scheme.
    pub domain: Option<String>,
    /// Explicit login endpoint (simulator, private endpoints).
    pub login_url: Option<String>,
    /// REST API version such as `62.0`.
    pub api_version: String,
    /// Lower bound of the first incremental read; `None` reads all history.
    pub start_date: Option<DateTime<Utc>>,
    /// Upper bound of reads; `None` is "now minus the lag".
    pub end_date: Option<DateTime<Utc>>,
    /// Object-name filters for discover.
    pub streams_criteria: Vec<StreamCriterion>,
    /// Use Bulk API 2.0 even where REST would be needed (drops base64 fields).
    pub force_use_bulk_api: bool,
    /// When to compare the export's Ids with the org's to find hard deletes.
    pub reconcile_deletes: Reconcile,
    /// What a read does when selected fields are gone from the org's describe.
    pub schema_drift: SchemaDrift,
    /// What an incremental read does when it reads fields its last run did not.
    pub new_fields: NewFields,
    /// Longest incremental window, when set; unset, windows are sized by rows alone
    /// (`bulk_max_records` rows each, from one count query per object).
    pub stream_slice_step: Option<IsoDuration>,
    /// How far before the saved cursor the next run starts.
    pub lookback_window: IsoDuration,
    /// How far behind now the upper bound of an incremental read stays.
    pub cursor_lag: IsoDuration,
    /// How often incremental reads read formula fields again on their own (time-based and
    /// cross-object formulas change without their row's cursor moving); `None` is `off`.
    pub formula_refresh: Option<IsoDuration>,
    /// Where read rows go.
    pub output: OutputConfig,
    /// Field mapping file or inline object.
    pub mapping: Option<MappingSource>,
    /// Write-back routes for `sfetl write`.
    pub writeback: Option<Value>,
    /// Stop cleanly once the org's daily API usage passes this percentage.
    pub max_api_usage_percent: Option<f64>,
    /// Rows per Bulk results page (`maxRecords`), when set; also the rows a window is sized
    /// to hold.
    pub bulk_max_records: Option<u64>,
    /// Windows of one stream read at once, each its own Bulk job, so Salesforce's processing
    /// and the downloads of several jobs overlap (default 4).
    pub max_concurrent_jobs: usize,
    /// Longest REST query URL before the field list is split, when set.
    pub rest_max_url_bytes: Option<u64>,
    /// Rows per REST query page (`batchSize`), when set.
    pub rest_batch_size: Option<u64>,
    /// Write a rotated refresh token back into the config file (default true); off when the
    /// orchestrator persists the CONTROL message itself.
    pub rewrite_config_file: bool,
    /// The config exactly as given, for CONTROL messages that persist a rotated token.
    pub raw: RawConfig,
}

/// The config JSON as the user wrote it. It holds credentials, so `Debug` does not print it;
/// only the code that hands an updated config back to the orchestrator reads it.
#[derive(Clone, PartialEq)]
pub struct RawConfig(pub Value);

impl std::fmt::Debug for RawConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RawConfig(***)")
    }
}

/// The OAuth flow, with the credentials that flow needs.
#[derive(Debug, Clone)]
pub enum AuthMethod {
    /// Refresh-token grant (Airbyte's `Client`); the secret is optional for PKCE apps.
    RefreshToken {
        /// Consumer Secret, when the app requires one.
        client_secret: Option<Secret>,
        /// The refresh token.
        refresh_token: Secret,
    },
    /// Client-credentials grant on the My Domain host.
    ClientCredentials {
        /// Consumer Secret.
        client_secret: Secret,
    },
    /// JWT bearer grant signed with the app certificate's private key.
    JwtBearer {
        /// The user to sign in as.
        username: String,
        /// The RSA private key, PEM.
        private_key: Secret,
    },
}

/// One `streams_criteria` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamCriterion {
    /// The comparison.
    pub criteria: Criteria,
    /// The text compared with the object name (case-insensitive, as Airbyte does).
    pub value: String,
}

/// Name comparisons offered by Airbyte's Salesforce source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Criteria {
    /// Name starts with the value.
    StartsWith,
    /// Name ends with the value.
    EndsWith,
    /// Name contains the value.
    Contains,
    /// Name equals the value.
    Exacts,
    /// Name does not start with the value.
    StartsNotWith,
    /// Name does not end with the value.
    EndsNotWith,
    /// Name does not contain the value.
    NotContains,
    /// Name differs from the value.
    NotExacts,
}

impl StreamCriterion {
    /// True when `name` passes this criterion (case-insensitive).
    pub fn matches(&self, name: &str) -> bool {
        let n = name.to_lowercase();
        let v = self.value.to_lowercase();
        match self.criteria {
            Criteria::StartsWith => n.starts_with(&v),
            Criteria::EndsWith => n.ends_with(&v),
            Criteria::Contains => n.contains(&v),
            Criteria::Exacts => n == v,
            Criteria::StartsNotWith => !n.starts_with(&v),
            Criteria::EndsNotWith => !n.ends_with(&v),
            Criteria::NotContains => !n.contains(&v),
            Criteria::NotExacts => n != v,
        }
    }
}

/// Output format of `read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// Airbyte RECORD messages on stdout.
    Records,
    /// Parquet files under `output.path`.
    Parquet,
    /// An Arrow IPC stream on stdout.
    Arrow,
    /// A Delta Lake table per stream under `output.path`, holding the current rows.
    Delta,
}

/// Parquet compression codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// zstd (default): small files, fast reads.
    Zstd,
    /// snappy: fastest, larger.
    Snappy,
    /// No compression.
    None,
}

/// Which Parquet encodings sfetl may choose per column, besides dictionaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParquetEncodings {
    /// PLAIN, DELTA_BYTE_ARRAY for text in order, DELTA_BINARY_PACKED for numbers, dates and
    /// timestamps where it stores them smaller or as small for less CPU (the default).
    Auto,
    /// PLAIN only: for readers that predate the delta encodings (Spark before 3.3 with its
    /// vectorized reader on, and other old parquet-mr based tools).
    Plain,
}

/// `output` section.
#[derive(Debug, Clone)]
pub struct OutputConfig {
    /// Format.
    pub format: OutputFormat,
    /// Folder or URL (parquet).
    pub path: Option<String>,
    /// Parquet codec.
    pub compression: Compression,
    /// Parquet encodings allowed.
    pub encodings: ParquetEncodings,
    /// object_store options; values may be credentials, so they are secrets.
    pub storage_options: BTreeMap<String, Secret>,
    /// Delta output: also keep every row version in `<stream>_history`.
    pub history: bool,
    /// Rows a Parquet file holds before it is completed (and a STATE follows): files of a
    /// useful size rather than one per checkpoint (default 1,000,000; 64 MB also completes one).
    pub file_rows: u64,
}

/// Where the mapping comes from.
#[derive(Debug, Clone)]
pub enum MappingSource {
    /// A YAML or JSON file.
    File(PathBuf),
    /// An inline object.
    Inline(Value),
}

/// Why a config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the config file {path}: {reason}; check the path given to --config")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
    /// The file is not JSON.
    #[error(
        "the config file {path} is not valid JSON ({reason}); it must hold one JSON object such as {{\"client_id\": \"...\", \"refresh_token\": \"...\"}}"
    )]
    NotJson {
        /// The file.
        path: PathBuf,
        /// Where parsing stopped (serde_json's position, never the content).
        reason: String,
    },
    /// One or more fields are wrong.
    #[error("{}", render_problems(.0))]
    Invalid(Vec<Problem>),
}

fn render_problems(problems: &[Problem]) -> String {
    let mut s = if problems.len() == 1 {
        "The config has 1 problem: ".to_string()
    } else {
        format!("The config has {} problems: ", problems.len())
    };
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(&format!("({}) {}", i + 1, p));
    }
    s
}

impl Config {
    /// Reads and validates a config file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Unreadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        // Editors on Windows save UTF-8 with a byte-order mark; it is not part of the JSON.
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        if text.trim().is_empty() {
            return Err(ConfigError::NotJson {
                path: path.to_path_buf(),
                reason: "the file is empty".into(),
            });
        }
        let value: Value = serde_json::from_str(text).map_err(|e| ConfigError::NotJson {
            path: path.to_path_buf(),
            reason: format!("line {} column {}: {}", e.line(), e.column(), classify(&e)),
        })?;
        Config::from_value(value)
    }

    /// Validates a config given as JSON.
    pub fn from_value(value: Value) -> Result<Config, ConfigError> {
        validate::validate(value)
    }

    /// The login host URL (without trailing slash) this config authenticates against.
    pub fn login_base_url(&self) -> String {
        if let Some(u) = &self.login_url {
            return u.trim_end_matches('/').to_string();
        }
        if let Some(d) = &self.domain {
            return format!("https://{}", d.trim_end_matches('/'));
        }
        if self.is_sandbox {
            "https://test.salesforce.com".to_string()
        } else {
            "https://login.salesforce.com".to_string()
        }
    }
}

/// serde_json's error category without its message text, which could quote input.
fn classify(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "read error",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected data",
        serde_json::error::Category::Eof => "the file ends too early",
    }
}

#[cfg(test)]
mod tests;

/// `schema_drift`: what a read does when fields its catalog selects are gone from the org's
/// describe (deleted, or hidden from the user by field-level security). A field whose type
/// changed always fails the stream: its values cannot be written under the old type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SchemaDrift {
    /// End the stream with an error naming the fields (run discover again).
    #[default]
    Fail,
    /// Read the stream without them, with a warning.
    Ignore,
}

/// `new_fields`: what an incremental read does when it reads fields its last run did not (a
/// field added to the catalog or the mapping, or shown again by field-level security). Rows
/// below the saved cursor never come back on their own, so without a backfill they would keep
/// no value for the field until they change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NewFields {
    /// Read the object's rows again from `start_date`, with a warning naming the fields.
    #[default]
    Backfill,
    /// Read on from the saved cursor: only rows changed from then on carry the new fields.
    Ignore,
}

/// When an incremental read compares the Ids its Parquet export holds with the Ids the org
/// returns, to report hard deletes the `deleted` endpoint can no longer tell (its log keeps
/// about 15 days, and may be purged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reconcile {
    /// Only when the delete log does not reach back to the window a run reads.
    #[default]
    Auto,
    /// On every incremental read (one Bulk `SELECT Id` job per stream).
    Always,
    /// Never (hard deletes older than the log are then not reported).
    Off,
}
