//! Airbyte protocol messages (serde types) and the one stdout emitter.
//!
//! The types follow the Airbyte protocol's YAML definition field for field, so orchestrators
//! (Airbyte, PyAirbyte, Dagster, ...) read what sfetl prints without adapters. Input messages
//! accept unknown fields: the protocol only ever grows.

mod catalog;
mod emitter;
mod messages;

pub use catalog::{
    AirbyteCatalog, AirbyteStream, CatalogFileError, ConfiguredAirbyteCatalog,
    ConfiguredAirbyteStream, DestinationSyncMode, SyncMode,
};
pub use emitter::Emitter;
pub use messages::{
    AirbyteAnalyticsTraceMessage, AirbyteConnectionStatus, AirbyteControlMessage,
    AirbyteErrorTraceMessage, AirbyteEstimateTraceMessage, AirbyteGlobalState, AirbyteLogMessage,
    AirbyteMessage, AirbyteRecordMessage, AirbyteStateMessage, AirbyteStateStats, AirbyteStateType,
    AirbyteStreamState, AirbyteStreamStatus, AirbyteStreamStatusTraceMessage, AirbyteTraceMessage,
    ConnectionStatus, ConnectorConfig, ConnectorSpecification, ControlType, EstimateType,
    FailureType, LogLevel, MessageType, RecordChange, RecordChangeKind, RecordChangeReason,
    RecordMeta, StreamDescriptor, TraceType,
};

/// Milliseconds since the Unix epoch, the protocol's unit for `emitted_at`.
pub fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests;
