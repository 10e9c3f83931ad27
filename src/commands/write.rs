//! `sfetl write`: Airbyte RECORD and STATE messages on stdin (or a Parquet/CSV file with
//! `--input`) applied to Salesforce by the routes of the config's `writeback` section. STATE
//! messages are echoed, in order, once every row before them is applied or recorded as
//! rejected; a summary ends the run (a LOG message and stderr).

use tokio::io::AsyncBufReadExt;

use crate::cli::WriteArgs;
use crate::config::Config;
use crate::error::Error;
use crate::output::stdout::Out;
use crate::protocol::{AirbyteMessage, ConfiguredAirbyteCatalog, FailureType, LogLevel};
use crate::sink::config::Writeback;
use crate::sink::input::{Absent, read_file, schema_from_json_schema};
use crate::sink::{Sink, SinkError, SinkOptions};

use crate::output::stdout::StdoutTask;

pub(super) async fn run(args: &WriteArgs) -> Result<(), Error> {
    let config = Config::from_file(&args.config)?;
    let stdout = StdoutTask::spawn();
    let mut sink: Option<Sink> = None;
    let result = write(args, &config, &stdout, &mut sink).await;
    let outcome = match result {
        Ok(()) => {
            if let Some(s) = &sink {
                let summary = s.summary();
                eprintln!("sfetl: {summary}");
                let _ = stdout
                    .tx
                    .send(Out::Message(Box::new(AirbyteMessage::log(
                        LogLevel::Info,
                        summary,
                    ))))
                    .await;
            }
            Ok(())
        }
        Err((failure_type, message)) => {
            let mut message = message;
            if let Some(s) = &sink {
                let applied = s.applied();
                if applied > 0 {
                    message.push_str(&format!(
                        ". Before this error {applied} row(s) were applied in Salesforce; every STATE printed covers only rows already applied or rejected, so resume from the last one (re-sending update and upsert rows is harmless)"
                    ));
                } else if failure_type == FailureType::TransientError {
                    message.push_str(
                        ". No row was applied in Salesforce and none was rejected: send the same input again once Salesforce answers",
                    );
                }
                eprintln!("sfetl: {}", s.summary());
            }
            eprintln!("sfetl: error: {message}");
            let _ = stdout
                .tx
                .send(Out::Message(Box::new(AirbyteMessage::error(
                    failure_type,
                    message,
                ))))
                .await;
            Err(Error::Reported(
                if failure_type == FailureType::ConfigError {
                    2
                } else {
                    1
                },
            ))
        }
    };
    // The sink holds a sender of the stdout lane: drop it so the writer can finish.
    drop(sink);
    stdout.finish().await?;
    outcome
}

type Failure = (FailureType, String);

fn sink_failure(e: SinkError) -> Failure {
    (e.failure_type(), e.to_string())
}

async fn write(
    args: &WriteArgs,
    config: &Config,
    stdout: &StdoutTask,
    sink: &mut Option<Sink>,
) -> Result<(), Failure> {
    let writeback = Writeback::parse(config.writeback.as_ref())
        .map_err(|p| sink_failure(SinkError::Config(p)))?;
    let usage = |m: &str| {
        (
            FailureType::ConfigError,
            format!(
                "{m} (e.g. `sfetl write --config config.json --catalog catalog.json < records.jsonl`, or `--input scores.parquet --stream person_scores`)"
            ),
        )
    };
    let catalog = match (&args.input, &args.stream, &args.catalog) {
        (Some(_), None, _) => {
            return Err(usage(
                "--input needs --stream: name the writeback stream the file's rows belong to",
            ));
        }
        (None, Some(_), _) => return Err(usage("--stream goes with --input")),
        (None, None, None) => {
            return Err(usage(
                "give --catalog (rows on stdin) or --input with --stream",
            ));
        }
        (None, None, Some(path)) => Some(
            ConfiguredAirbyteCatalog::from_file(path)
                .map_err(|e| (FailureType::ConfigError, e.to_string()))?,
        ),
        (Some(_), Some(_), _) => None,
    };
    let client = super::connect(config, &args.config, stdout)
        .await
        .map_err(|e| (e.failure_type(), e.to_string()))?;
    let options = SinkOptions {
        dry_run: args.dry_run,
        storage_options: config.output.storage_options.clone(),
    };
    let s = sink.insert(
        Sink::new(client, writeback, options, stdout.tx.clone())
            .await
            .map_err(sink_failure)?,
    );
    match (&args.input, &args.stream, catalog) {
        (Some(input), Some(stream), _) => from_file(s, input, stream, config).await,
        (_, _, Some(catalog)) => {
            for c in &catalog.streams {
                s.add_stream(
                    &c.stream.name,
                    schema_from_json_schema(&c.stream.json_schema),
                )
                .map_err(sink_failure)?;
            }
            from_stdin(s).await
        }
        _ => Ok(()),
    }
    .map_err(sink_failure)
}

/// Applies the rows of a Parquet or CSV file as `stream` (`--input`; also `sfetl demo`).
pub(super) async fn from_file(
    sink: &mut Sink,
    input: &str,
    stream: &str,
    config: &Config,
) -> Result<(), SinkError> {
    sink.check_stream(stream)?;
    let batches = read_file(input, &config.output.storage_options).await?;
    let Some(first) = batches.first() else {
        return Ok(());
    };
    let schema = first.schema();
    sink.add_stream(stream, schema.clone())?;
    let all = arrow::compute::concat_batches(&schema, &batches)
        .map_err(|e| SinkError::Protocol(e.to_string()))?;
    drop(batches);
    let step = crate::sink::config::DEFAULT_BATCH_ROWS.max(1);
    let mut offset = 0;
    while offset < all.num_rows() {
        let len = step.min(all.num_rows() - offset);
        let batch = all.slice(offset, len);
        sink.apply_batch(stream, &batch, &Absent::default()).await?;
        offset += len;
    }
    Ok(())
}

async fn from_stdin(sink: &mut Sink) -> Result<(), SinkError> {
    let mut lines = tokio::io::BufReader::with_capacity(1 << 20, tokio::io::stdin()).lines();
    let mut n = 0u64;
    while let Some(line) = lines.next_line().await.map_err(|e| SinkError::Input {
        line: Some(n + 1),
        message: format!("cannot read stdin: {e}"),
    })? {
        n += 1;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: String| SinkError::Input {
            line: Some(n),
            message: format!(
                "not an Airbyte protocol message ({why}); each stdin line must be one JSON message such as {{\"type\":\"RECORD\",\"record\":{{\"stream\":\"...\",\"data\":{{...}},\"emitted_at\":0}}}}"
            ),
        };
        let mut message: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| bad(e.to_string()))?;
        match message["type"].as_str() {
            Some("RECORD") => {
                let record = &mut message["record"];
                let stream = record["stream"]
                    .as_str()
                    .ok_or_else(|| bad("RECORD without record.stream".into()))?
                    .to_string();
                let data = record["data"].take();
                if !data.is_object() {
                    return Err(bad("record.data is not an object".into()));
                }
                if !sink.has_stream(&stream) {
                    return Err(SinkError::Input {
                        line: Some(n),
                        message: format!(
                            "RECORD of stream {stream:?}, which the configured catalog does not list; add it to the catalog (and a writeback route for it)"
                        ),
                    });
                }
                sink.push(&stream, data, n).await?;
            }
            Some("STATE") => sink.state(message).await?,
            Some(_) => {}
            None => return Err(bad("no \"type\"".into())),
        }
    }
    sink.flush_all().await
}
