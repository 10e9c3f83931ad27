//! `sfetl spec`: the connector specification as one SPEC message.

use crate::config::spec_schema;
use crate::error::Error;
use crate::protocol::{AirbyteMessage, ConnectorSpecification, DestinationSyncMode, Emitter};

/// Where users read how to set the connector up.
pub(super) const DOCUMENTATION_URL: &str = "https://github.com/sfetl/sfetl#readme";

/// The SPEC message `sfetl spec` prints.
pub(super) fn spec_message() -> AirbyteMessage {
    AirbyteMessage::spec(ConnectorSpecification {
        documentation_url: Some(DOCUMENTATION_URL.to_string()),
        connection_specification: spec_schema().clone(),
        supports_incremental: Some(true),
        supported_destination_sync_modes: Some(vec![
            DestinationSyncMode::Append,
            DestinationSyncMode::AppendDedup,
        ]),
        protocol_version: Some("0.5.2".to_string()),
    })
}

pub(super) fn run() -> Result<(), Error> {
    Emitter::stdout().emit(&spec_message())?;
    Ok(())
}
