//! `sfetl read`: reads the configured catalog's streams to the configured output.

use std::sync::Arc;

use crate::cli::ReadArgs;
use crate::config::{Config, OutputFormat};
use crate::error::Error;
use crate::output::delta::{DeltaDestination, DeltaOptions};
use crate::output::{Destination, ParquetOptions, new_sync_id, open_location};
use crate::protocol::{AirbyteMessage, ConfiguredAirbyteCatalog, FailureType, StreamDescriptor};
use crate::source::read::slice::{BadSlice, Slice, SliceRun};
use crate::source::read::{ReadOptions, read};
use crate::state::{InputState, load_state_file};

use crate::output::stdout::StdoutTask;

pub(super) async fn run(args: &ReadArgs) -> Result<(), Error> {
    let config = Arc::new(Config::from_file(&args.config)?);
    let mut catalog = ConfiguredAirbyteCatalog::from_file(&args.catalog)?;
    let slice = match &args.slice {
        Some(path) => Some(Arc::new(load_slice(path, &args.catalog, &mut catalog)?)),
        None => None,
    };
    let state = match &args.state {
        Some(path) => load_state_file(path)?,
        None => InputState::default(),
    };
    let arrow = args.arrow_ipc || config.output.format == OutputFormat::Arrow;
    if arrow && catalog.streams.len() != 1 {
        return Err(arrow_takes_one_stream(catalog.streams.len()));
    }
    let destination = destination(&config, arrow)?;
    let stdout = StdoutTask::spawn_with(arrow);
    let defaults = ReadOptions::default();
    let opts = ReadOptions {
        show_progress: true,
        max_records: config.bulk_max_records.unwrap_or(defaults.max_records),
        rest_batch_size: config
            .rest_batch_size
            .map_or(defaults.rest_batch_size, |n| n as u32),
        rest_max_url: config
            .rest_max_url_bytes
            .map_or(defaults.rest_max_url, |n| n as usize),
        ..defaults
    };
    stop_on_signal(opts.stop.clone());
    let client = super::connect(&config, &args.config, &stdout).await?;
    let opts = ReadOptions {
        mapping: crate::source::mapped::load_plan_for_read(&client, &config).await?,
        slice,
        ..opts
    };
    super::catalog::validate_catalog(
        &client,
        &catalog.streams,
        opts.mapping.as_deref(),
        super::catalog::FieldCheck::MappedOnly,
    )
    .await?;
    check_folder_names(&destination, &catalog, &stdout).await?;
    let summary = read(
        client,
        config,
        catalog.streams,
        state,
        destination,
        stdout.tx.clone(),
        opts,
    )
    .await;
    // Exit 2 (as for any config error) when every stream that failed did for its config,
    // catalog or state; 1 when any failed otherwise.
    let code = match summary
        .failures
        .iter()
        .map(|(_, e)| e.failure_type())
        .collect::<Vec<_>>()
    {
        types if types.is_empty() => 0,
        types if types.iter().all(|t| *t == FailureType::ConfigError) => 2,
        _ => 1,
    };
    report_failures(&stdout, summary.failures).await;
    stdout.finish().await?;
    if code > 0 {
        return Err(Error::Reported(code));
    }
    Ok(())
}

/// The config error of an Arrow IPC read whose catalog selects `streams` streams, not one.
fn arrow_takes_one_stream(streams: usize) -> Error {
    Error::Config(crate::config::ConfigError::Invalid(vec![
        crate::config::Problem {
            field: "output.format".into(),
            message: format!(
                "Arrow IPC output carries one stream per read, and the catalog selects {streams}: run one read per stream, or use \"parquet\""
            ),
        },
    ]))
}

/// Refuses, or warns about, stream folders whose names differ only in case (see
/// [`crate::output::check_case_clashes`]); the warnings go out as LOG WARN messages.
async fn check_folder_names(
    destination: &Destination,
    catalog: &ConfiguredAirbyteCatalog,
    stdout: &StdoutTask,
) -> Result<(), Error> {
    let Some(location) = destination.export_location() else {
        return Ok(());
    };
    let names: Vec<String> = catalog
        .streams
        .iter()
        .map(|s| s.stream.name.clone())
        .collect();
    if let Some(warning) = crate::output::check_case_clashes(location, &names).await? {
        stdout.warn(warning).await;
    }
    Ok(())
}

/// Reads a slice file and keeps only its stream in the catalog; a slice of a stream the
/// catalog does not list is a config error naming both.
fn load_slice(
    path: &std::path::Path,
    catalog_path: &std::path::Path,
    catalog: &mut ConfiguredAirbyteCatalog,
) -> Result<SliceRun, Error> {
    let file = path.display().to_string();
    let bad = |slice_id: &str, reason: String| {
        Error::Fetch(crate::source::FetchError::BadSlice(BadSlice {
            slice_id: slice_id.to_string(),
            file: file.clone(),
            reason,
        }))
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        bad(
            "?",
            format!("cannot be read ({e}); check the path given to --slice"),
        )
    })?;
    let slice = Slice::from_text(&text).map_err(|e| bad("?", e))?;
    if !catalog
        .streams
        .iter()
        .any(|s| s.stream.name == slice.stream)
    {
        let listed: Vec<&str> = catalog
            .streams
            .iter()
            .map(|s| s.stream.name.as_str())
            .collect();
        return Err(bad(
            &slice.slice_id,
            format!(
                "is for stream {}, which the catalog {} does not list (it lists {}): pass the catalog `sfetl plan` was given, or plan again with this one",
                slice.stream,
                catalog_path.display(),
                listed.join(", ")
            ),
        ));
    }
    catalog.streams.retain(|s| s.stream.name == slice.stream);
    Ok(SliceRun { slice, file })
}

/// Where the read's streams go, from the config's `output` (or `--arrow-ipc`).
pub(super) fn destination(config: &Config, arrow: bool) -> Result<Destination, Error> {
    Ok(match config.output.format {
        _ if arrow => Destination::Arrow,
        OutputFormat::Parquet => Destination::Parquet {
            location: open_location(
                config.output.path.as_deref().unwrap_or_default(),
                &config.output.storage_options,
            )?,
            sync_id: new_sync_id(),
            options: ParquetOptions {
                compression: config.output.compression,
                encodings: config.output.encodings,
                file_rows: config.output.file_rows,
                ..ParquetOptions::default()
            },
        },
        OutputFormat::Delta => Destination::Delta(DeltaDestination {
            location: open_location(
                config.output.path.as_deref().unwrap_or_default(),
                &config.output.storage_options,
            )?,
            sync_id: new_sync_id(),
            options: DeltaOptions {
                history: config.output.history,
                compression: config.output.compression,
            },
        }),
        _ => Destination::Records,
    })
}

/// One TRACE ERROR per failed stream (after the others finished), and a sentence on stderr.
async fn report_failures(stdout: &StdoutTask, failures: Vec<(String, crate::source::FetchError)>) {
    for (stream, e) in failures {
        let mut m = AirbyteMessage::error(e.failure_type(), format!("stream {stream}: {e}"));
        if let Some(err) = m.trace.as_mut().and_then(|t| t.error.as_mut()) {
            err.stream_descriptor = Some(StreamDescriptor::named(&stream));
        }
        eprintln!("sfetl: error: stream {stream}: {e}");
        let _ = stdout
            .tx
            .send(crate::output::stdout::Out::Message(Box::new(m)))
            .await;
    }
}

/// SIGINT or SIGTERM asks the read to stop: the page in hand is finished, the state emitted so
/// far stays valid, and the next run resumes from it.
fn stop_on_signal(stop: crate::stop::StopSignal) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                return;
            };
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        }
        #[cfg(not(unix))]
        {
            if tokio::signal::ctrl_c().await.is_err() {
                return;
            }
        }
        eprintln!(
            "sfetl: stopping: finishing the page in hand; the last STATE printed is where the next run resumes"
        );
        stop.stop();
    });
}
