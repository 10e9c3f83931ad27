//! `sfetl check`: validates the config and reports one CONNECTION_STATUS.

use std::path::Path;

use crate::config::Config;
use crate::error::Error;
use crate::protocol::{AirbyteMessage, ConnectionStatus, Emitter};

pub(super) async fn run(config_path: &Path) -> Result<(), Error> {
    let status = match Config::from_file(config_path) {
        Err(e) => AirbyteMessage::connection_status(ConnectionStatus::Failed, Some(e.to_string())),
        Ok(_) => AirbyteMessage::connection_status(
            ConnectionStatus::Failed,
            Some("The config is valid, but testing the connection to Salesforce is not available yet in this version of sfetl.".to_string()),
        ),
    };
    Emitter::stdout().emit(&status)?;
    Ok(())
}
