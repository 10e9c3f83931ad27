//! `sfetl read`: reads the configured catalog's streams to the configured output.

use std::sync::Arc;

use crate::cli::ReadArgs;
use crate::config::{Config, OutputFormat};
use crate::error::Error;
use crate::output::{new_sync_id, open_location};
use crate::protocol::{AirbyteMessage, ConfiguredAirbyteCatalog, StreamDescriptor};
use crate::source::read::{Destination, ReadOptions, read};
use crate::state::{InputState, load_state_file};

use super::stdout::StdoutTask;

pub(super) async fn run(args: &ReadArgs) -> Result<(), Error> {
    let config = Arc::new(Config::from_file(&args.config)?);
    let catalog = ConfiguredAirbyteCatalog::from_file(&args.catalog)?;
    let state = match &args.state {
        Some(path) => load_state_file(path)?,
        None => InputState::default(),
    };
    if args.arrow_ipc || config.output.format == OutputFormat::Arrow {
        return Err(Error::NotAvailable("read with Arrow IPC output"));
    }
    let destination = match config.output.format {
        OutputFormat::Parquet => Destination::Parquet {
            location: open_location(
                config.output.path.as_deref().unwrap_or_default(),
                &config.output.storage_options,
            )?,
            sync_id: new_sync_id(),
        },
        _ => Destination::Records,
    };
    let stdout = StdoutTask::spawn();
    let client = super::connect(&config, &stdout).await?;
    let summary = read(
        client,
        config,
        catalog.streams,
        state,
        destination,
        stdout.tx.clone(),
        ReadOptions::default(),
    )
    .await;
    let failed = summary.failures.len();
    for (stream, e) in summary.failures {
        let mut m = AirbyteMessage::error(e.failure_type(), format!("stream {stream}: {e}"));
        if let Some(err) = m.trace.as_mut().and_then(|t| t.error.as_mut()) {
            err.stream_descriptor = Some(StreamDescriptor::named(&stream));
        }
        eprintln!("sfetl: error: stream {stream}: {e}");
        let _ = stdout
            .tx
            .send(crate::source::read::Out::Message(Box::new(m)))
            .await;
    }
    stdout.finish().await?;
    if failed > 0 {
        return Err(Error::Reported(1));
    }
    Ok(())
}
