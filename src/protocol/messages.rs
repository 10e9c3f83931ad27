//! The Airbyte message envelope and every message body sfetl sends or receives.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::catalog::AirbyteCatalog;

/// Which body an [`AirbyteMessage`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MessageType {
    /// A data row.
    Record,
    /// A checkpoint.
    State,
    /// A human log line.
    Log,
    /// The connector specification.
    Spec,
    /// Result of `check`.
    ConnectionStatus,
    /// Result of `discover`.
    Catalog,
    /// Errors, estimates, stream statuses.
    Trace,
    /// Connector-to-platform requests (config updates).
    Control,
}

/// One line of the protocol: a type tag and the matching body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteMessage {
    /// Which body is set.
    #[serde(rename = "type")]
    pub kind: MessageType,
    /// LOG body.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub log: Option<AirbyteLogMessage>,
    /// SPEC body.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub spec: Option<ConnectorSpecification>,
    /// CONNECTION_STATUS body.
    #[serde(
        rename = "connectionStatus",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub connection_status: Option<AirbyteConnectionStatus>,
    /// CATALOG body.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub catalog: Option<AirbyteCatalog>,
    /// RECORD body.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub record: Option<AirbyteRecordMessage>,
    /// STATE body.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub state: Option<AirbyteStateMessage>,
    /// TRACE body.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub trace: Option<AirbyteTraceMessage>,
    /// CONTROL body.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub control: Option<AirbyteControlMessage>,
}

impl AirbyteMessage {
    fn empty(kind: MessageType) -> Self {
        AirbyteMessage {
            kind,
            log: None,
            spec: None,
            connection_status: None,
            catalog: None,
            record: None,
            state: None,
            trace: None,
            control: None,
        }
    }

    /// A SPEC message.
    pub fn spec(spec: ConnectorSpecification) -> Self {
        AirbyteMessage {
            spec: Some(spec),
            ..Self::empty(MessageType::Spec)
        }
    }

    /// A CONNECTION_STATUS message.
    pub fn connection_status(status: ConnectionStatus, message: Option<String>) -> Self {
        AirbyteMessage {
            connection_status: Some(AirbyteConnectionStatus { status, message }),
            ..Self::empty(MessageType::ConnectionStatus)
        }
    }

    /// A CATALOG message.
    pub fn catalog(catalog: AirbyteCatalog) -> Self {
        AirbyteMessage {
            catalog: Some(catalog),
            ..Self::empty(MessageType::Catalog)
        }
    }

    /// A RECORD message.
    pub fn record(record: AirbyteRecordMessage) -> Self {
        AirbyteMessage {
            record: Some(record),
            ..Self::empty(MessageType::Record)
        }
    }

    /// A STATE message.
    pub fn state(state: AirbyteStateMessage) -> Self {
        AirbyteMessage {
            state: Some(state),
            ..Self::empty(MessageType::State)
        }
    }

    /// A LOG message.
    pub fn log(level: LogLevel, message: impl Into<String>) -> Self {
        AirbyteMessage {
            log: Some(AirbyteLogMessage {
                level,
                message: message.into(),
                stack_trace: None,
            }),
            ..Self::empty(MessageType::Log)
        }
    }

    /// A TRACE message.
    pub fn trace(trace: AirbyteTraceMessage) -> Self {
        AirbyteMessage {
            trace: Some(trace),
            ..Self::empty(MessageType::Trace)
        }
    }

    /// A TRACE ERROR message, the protocol's way to fail a sync with a reason.
    pub fn error(failure_type: FailureType, message: impl Into<String>) -> Self {
        Self::trace(AirbyteTraceMessage {
            kind: TraceType::Error,
            emitted_at: super::now_millis() as f64,
            error: Some(AirbyteErrorTraceMessage {
                message: message.into(),
                internal_message: None,
                stack_trace: None,
                failure_type: Some(failure_type),
                stream_descriptor: None,
            }),
            estimate: None,
            stream_status: None,
            analytics: None,
        })
    }

    /// A TRACE ANALYTICS message: an event worth recording that does not fail the sync.
    pub fn analytics(kind: impl Into<String>, value: impl Into<String>) -> Self {
        Self::trace(AirbyteTraceMessage {
            kind: TraceType::Analytics,
            emitted_at: super::now_millis() as f64,
            error: None,
            estimate: None,
            stream_status: None,
            analytics: Some(AirbyteAnalyticsTraceMessage {
                kind: kind.into(),
                value: Some(value.into()),
            }),
        })
    }

    /// A CONTROL CONNECTOR_CONFIG message: asks the platform to persist an updated config
    /// (a rotated refresh token).
    pub fn connector_config(config: Value) -> Self {
        AirbyteMessage {
            control: Some(AirbyteControlMessage {
                kind: ControlType::ConnectorConfig,
                emitted_at: super::now_millis() as f64,
                connector_config: Some(ConnectorConfig { config }),
            }),
            ..Self::empty(MessageType::Control)
        }
    }
}

/// The connector specification printed by `spec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectorSpecification {
    /// Where users read how to configure the connector.
    #[serde(
        rename = "documentationUrl",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub documentation_url: Option<String>,
    /// The config's JSON Schema (draft-07).
    #[serde(rename = "connectionSpecification")]
    pub connection_specification: Value,
    /// The source supports incremental syncs.
    #[serde(
        rename = "supportsIncremental",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub supports_incremental: Option<bool>,
    /// Sync modes a destination supports.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub supported_destination_sync_modes: Option<Vec<super::DestinationSyncMode>>,
    /// Version of the protocol the connector speaks.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub protocol_version: Option<String>,
}

/// SUCCEEDED or FAILED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConnectionStatus {
    /// The connector can reach and use the org.
    Succeeded,
    /// It cannot; the message says why and what to do.
    Failed,
}

/// Result of `check`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteConnectionStatus {
    /// Outcome.
    pub status: ConnectionStatus,
    /// Explanation an admin can act on.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub message: Option<String>,
}

/// Names a stream, optionally within a namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StreamDescriptor {
    /// Stream name (a Salesforce object or a mapped stream).
    pub name: String,
    /// Namespace, unused by Salesforce but kept when given.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub namespace: Option<String>,
}

impl StreamDescriptor {
    /// A descriptor without namespace.
    pub fn named(name: impl Into<String>) -> Self {
        StreamDescriptor {
            name: name.into(),
            namespace: None,
        }
    }
}

/// One data row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteRecordMessage {
    /// Namespace of the stream.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub namespace: Option<String>,
    /// Stream name.
    pub stream: String,
    /// The row as a JSON object.
    pub data: Value,
    /// Epoch milliseconds when the row was extracted.
    pub emitted_at: i64,
    /// Changes the source made to the row (values it had to null or truncate).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub meta: Option<RecordMeta>,
}

/// Record metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordMeta {
    /// Per-field changes.
    #[serde(default)]
    pub changes: Vec<RecordChange>,
}

/// A change to one field of a record, reported instead of done silently.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordChange {
    /// Field name.
    pub field: String,
    /// What was done.
    pub change: RecordChangeKind,
    /// Why.
    pub reason: RecordChangeReason,
}

/// What was done to a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RecordChangeKind {
    /// The value was replaced by null.
    Nulled,
    /// The value was shortened.
    Truncated,
}

/// Why a field was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RecordChangeReason {
    /// The record was too large for the source.
    SourceRecordSizeLimitation,
    /// The field was too large for the source.
    SourceFieldSizeLimitation,
    /// The value could not be read as its declared type (e.g. invalid UTF-8 replaced).
    SourceSerializationError,
    /// Destination-side record size limit.
    DestinationRecordSizeLimitation,
    /// Destination-side field size limit.
    DestinationFieldSizeLimitation,
    /// Destination-side serialization error.
    DestinationSerializationError,
    /// Platform-side record size limit.
    PlatformRecordSizeLimitation,
    /// Platform-side field size limit.
    PlatformFieldSizeLimitation,
    /// Platform-side serialization error.
    PlatformSerializationError,
}

/// The kind of a STATE message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AirbyteStateType {
    /// The old single-blob state.
    Legacy,
    /// One stream's state.
    Stream,
    /// Shared state plus every stream's.
    Global,
}

/// A checkpoint: emitted only once every row it covers is durable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteStateMessage {
    /// STREAM, GLOBAL or LEGACY.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none", default)]
    pub kind: Option<AirbyteStateType>,
    /// Per-stream state.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub stream: Option<AirbyteStreamState>,
    /// Global state.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub global: Option<AirbyteGlobalState>,
    /// Legacy state blob.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub data: Option<Value>,
    /// Records the source emitted since the previous state.
    #[serde(
        rename = "sourceStats",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub source_stats: Option<AirbyteStateStats>,
    /// Records the destination committed since the previous state.
    #[serde(
        rename = "destinationStats",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub destination_stats: Option<AirbyteStateStats>,
}

impl AirbyteStateMessage {
    /// A STREAM state for one stream, with the count of records it covers.
    pub fn stream(descriptor: StreamDescriptor, state: Value, record_count: f64) -> Self {
        AirbyteStateMessage {
            kind: Some(AirbyteStateType::Stream),
            stream: Some(AirbyteStreamState {
                stream_descriptor: descriptor,
                stream_state: Some(state),
            }),
            global: None,
            data: None,
            source_stats: Some(AirbyteStateStats {
                record_count: Some(record_count),
            }),
            destination_stats: None,
        }
    }
}

/// One stream's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteStreamState {
    /// Which stream.
    pub stream_descriptor: StreamDescriptor,
    /// The connector's own cursor blob.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub stream_state: Option<Value>,
}

/// Shared state plus every stream's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteGlobalState {
    /// State shared by all streams.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub shared_state: Option<Value>,
    /// Each stream's state.
    #[serde(default)]
    pub stream_states: Vec<AirbyteStreamState>,
}

/// Record counts attached to a STATE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteStateStats {
    /// Records covered.
    #[serde(
        rename = "recordCount",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub record_count: Option<f64>,
}

/// Log levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LogLevel {
    /// The connector cannot go on.
    Fatal,
    /// Something failed.
    Error,
    /// Something is off but work goes on.
    Warn,
    /// Progress.
    Info,
    /// Detail for debugging.
    Debug,
    /// Very fine detail.
    Trace,
}

/// A human log line carried in the protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteLogMessage {
    /// Severity.
    pub level: LogLevel,
    /// Text.
    pub message: String,
    /// Optional stack trace.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub stack_trace: Option<String>,
}

/// Which body a TRACE carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TraceType {
    /// A failure with its type.
    Error,
    /// How many rows/bytes a stream will have.
    Estimate,
    /// A stream started, is running, completed or stopped early.
    StreamStatus,
    /// Analytics events.
    Analytics,
}

/// Errors, estimates and stream statuses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteTraceMessage {
    /// Which body is set.
    #[serde(rename = "type")]
    pub kind: TraceType,
    /// Epoch milliseconds.
    pub emitted_at: f64,
    /// ERROR body.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<AirbyteErrorTraceMessage>,
    /// ESTIMATE body.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub estimate: Option<AirbyteEstimateTraceMessage>,
    /// STREAM_STATUS body.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub stream_status: Option<AirbyteStreamStatusTraceMessage>,
    /// ANALYTICS body.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub analytics: Option<AirbyteAnalyticsTraceMessage>,
}

/// An ANALYTICS trace: a named event the platform records without failing the sync (sfetl
/// uses it for conditions a person should see, such as a saved cursor in the future).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteAnalyticsTraceMessage {
    /// The event's name.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its value (free text).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub value: Option<String>,
}

/// Who is to blame for a failure, so the platform knows whether to retry or ask the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureType {
    /// A bug or an unexpected answer.
    SystemError,
    /// The user's config is wrong: retrying will not help.
    ConfigError,
    /// A passing problem: retrying later may succeed.
    TransientError,
}

/// An error with a message for people and one for developers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteErrorTraceMessage {
    /// What went wrong and what to do.
    pub message: String,
    /// Technical detail.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub internal_message: Option<String>,
    /// Stack trace, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub stack_trace: Option<String>,
    /// Whose fault.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub failure_type: Option<FailureType>,
    /// The stream that failed, when one did.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub stream_descriptor: Option<StreamDescriptor>,
}

/// STREAM or SYNC estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EstimateType {
    /// Per stream.
    Stream,
    /// Whole sync.
    Sync,
}

/// How much a stream will produce, when known (e.g. Bulk's record count).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteEstimateTraceMessage {
    /// Stream name.
    pub name: String,
    /// Namespace.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub namespace: Option<String>,
    /// STREAM or SYNC.
    #[serde(rename = "type")]
    pub kind: EstimateType,
    /// Rows expected.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub row_estimate: Option<i64>,
    /// Bytes expected.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub byte_estimate: Option<i64>,
}

/// Lifecycle of a stream within a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AirbyteStreamStatus {
    /// Work began.
    Started,
    /// Rows are flowing.
    Running,
    /// Every row was emitted.
    Complete,
    /// The stream stopped early.
    Incomplete,
}

/// A stream status change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteStreamStatusTraceMessage {
    /// Which stream.
    pub stream_descriptor: StreamDescriptor,
    /// Its new status.
    pub status: AirbyteStreamStatus,
}

/// Kinds of CONTROL message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ControlType {
    /// Persist this config.
    ConnectorConfig,
}

/// A request from the connector to the platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteControlMessage {
    /// Which request.
    #[serde(rename = "type")]
    pub kind: ControlType,
    /// Epoch milliseconds.
    pub emitted_at: f64,
    /// The config to persist.
    #[serde(
        rename = "connectorConfig",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub connector_config: Option<ConnectorConfig>,
}

/// A config to persist (with a rotated refresh token).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectorConfig {
    /// The whole config object.
    pub config: Value,
}
