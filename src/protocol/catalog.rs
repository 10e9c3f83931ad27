//! Catalogs: what `discover` offers and what the user selects for `read` and `write`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How a stream is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// Every row, every time.
    FullRefresh,
    /// Only rows changed since the saved cursor.
    Incremental,
}

/// How a destination applies rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DestinationSyncMode {
    /// Add rows.
    Append,
    /// Replace everything.
    Overwrite,
    /// Add rows, then deduplicate on the primary key.
    AppendDedup,
    /// Update existing rows.
    Update,
    /// Mark rows deleted.
    SoftDelete,
}

/// The streams a source offers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteCatalog {
    /// One entry per object (or mapped stream).
    pub streams: Vec<AirbyteStream>,
}

/// One stream offered by `discover`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteStream {
    /// Stream name.
    pub name: String,
    /// JSON Schema of a record.
    pub json_schema: Value,
    /// Modes it can be read with.
    pub supported_sync_modes: Vec<SyncMode>,
    /// The source picks the cursor (SystemModstamp) itself.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub source_defined_cursor: Option<bool>,
    /// The cursor field path.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub default_cursor_field: Option<Vec<String>>,
    /// The primary key, as field paths.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub source_defined_primary_key: Option<Vec<Vec<String>>>,
    /// Namespace.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub namespace: Option<String>,
    /// A stopped read of this stream can resume from its state.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub is_resumable: Option<bool>,
}

/// The user's selection of streams.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfiguredAirbyteCatalog {
    /// Selected streams.
    pub streams: Vec<ConfiguredAirbyteStream>,
}

/// One selected stream with its modes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfiguredAirbyteStream {
    /// The stream (its json_schema.properties select the fields to read).
    pub stream: AirbyteStream,
    /// How to read it.
    pub sync_mode: SyncMode,
    /// User-chosen cursor (ignored when the source defines it).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cursor_field: Option<Vec<String>>,
    /// How the destination applies rows.
    pub destination_sync_mode: DestinationSyncMode,
    /// User-chosen primary key.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub primary_key: Option<Vec<Vec<String>>>,
    /// Generation of this stream's data (refreshes).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub generation_id: Option<i64>,
    /// Oldest generation to keep.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub minimum_generation_id: Option<i64>,
    /// Id of the sync.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sync_id: Option<i64>,
}

/// Why a `--catalog` file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CatalogFileError {
    /// Unreadable file.
    #[error("cannot read the catalog file {path}: {reason}; check the path given to --catalog")]
    Unreadable {
        /// The file.
        path: std::path::PathBuf,
        /// OS error.
        reason: String,
    },
    /// Not a configured catalog.
    #[error(
        "the catalog file {path} is not a configured catalog: {reason}. It must be a JSON object {{\"streams\": [{{\"stream\": {{\"name\", \"json_schema\", \"supported_sync_modes\"}}, \"sync_mode\", \"destination_sync_mode\"}}]}}; `sfetl discover` prints the streams to choose from"
    )]
    Malformed {
        /// The file.
        path: std::path::PathBuf,
        /// What serde found wrong (its message names the missing field or bad value).
        reason: String,
    },
}

impl ConfiguredAirbyteCatalog {
    /// Reads a configured catalog file.
    pub fn from_file(path: &std::path::Path) -> Result<Self, CatalogFileError> {
        let text = std::fs::read_to_string(path).map_err(|e| CatalogFileError::Unreadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        serde_json::from_str(text).map_err(|e| CatalogFileError::Malformed {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }
}
