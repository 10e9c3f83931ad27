//! `sfetl demo`: the whole pipeline on the embedded simulator, explained step by step for
//! someone who has never seen sfetl. Everything runs in-process, so it works on a fresh machine
//! with nothing else running.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::cli::DemoArgs;
use crate::config::Config;
use crate::error::Error;
use crate::output::{new_sync_id, open_location};
use crate::protocol::{ConfiguredAirbyteStream, MessageType};
use crate::salesforce::{ClientHooks, SalesforceClient};
use crate::sim::{SimOptions, Simulator};
use crate::source::discover::discover;
use crate::source::read::{Destination, Out, ReadOptions, read};
use crate::state::{InputState, parse_state};

/// Objects the demo reads.
const OBJECTS: [&str; 3] = ["Account", "Contact", "Lead"];

struct Step {
    started: Instant,
}

impl Step {
    fn start(n: u32, title: &str) -> Step {
        println!("\n{n}. {title}");
        Step {
            started: Instant::now(),
        }
    }
    fn done(self, what: String) {
        println!("   {what} ({:.2} s)", self.started.elapsed().as_secs_f64());
    }
}

/// What a read printed, summarised.
#[derive(Default)]
struct ReadReport {
    states: Vec<Value>,
    rows: BTreeMap<String, f64>,
}

async fn read_to_parquet(
    client: &SalesforceClient,
    config: &Arc<Config>,
    streams: &[ConfiguredAirbyteStream],
    state: InputState,
    export: &Path,
) -> Result<ReadReport, Error> {
    let location = open_location(export.to_str().unwrap_or("."), &Default::default())?;
    let destination = Destination::Parquet {
        location,
        sync_id: new_sync_id(),
    };
    let (tx, mut rx) = mpsc::channel::<Out>(64);
    let collector = tokio::spawn(async move {
        let mut report = ReadReport::default();
        while let Some(out) = rx.recv().await {
            if let Out::Message(m) = out
                && m.kind == MessageType::State
                && let Some(s) = m.state
            {
                let name = s
                    .stream
                    .as_ref()
                    .map(|d| d.stream_descriptor.name.clone())
                    .unwrap_or_default();
                let n = s
                    .source_stats
                    .as_ref()
                    .and_then(|st| st.record_count)
                    .unwrap_or(0.0);
                *report.rows.entry(name).or_default() += n;
                report
                    .states
                    .push(serde_json::to_value(&s).unwrap_or(Value::Null));
            }
        }
        report
    });
    let summary = read(
        client.clone(),
        config.clone(),
        streams.to_vec(),
        state,
        destination,
        tx,
        ReadOptions::default(),
    )
    .await;
    let report = collector.await.map_err(std::io::Error::other)?;
    if let Some((stream, e)) = summary.failures.into_iter().next() {
        eprintln!("sfetl demo: stream {stream} failed");
        return Err(Error::Fetch(e));
    }
    Ok(report)
}

pub(super) async fn run(args: &DemoArgs) -> Result<(), Error> {
    let total = Instant::now();
    std::fs::create_dir_all(&args.dir)?;
    let dir = std::fs::canonicalize(&args.dir)?;
    println!("sfetl demo: a simulated Salesforce org, read into Parquet, changed, read again.");
    println!("Everything is written under {}", dir.display());

    let step = Step::start(
        1,
        "Start a simulated Salesforce org (sfetl simulate does the same as a server)",
    );
    let sim = Simulator::start(SimOptions {
        scale: 1000,
        seed: 42,
        ..SimOptions::default()
    })
    .await?;
    step.done(format!(
        "org at {} with 1,000 Accounts, 3,000 Contacts and 2,000 Leads; login host {}",
        sim.base_url, sim.login_url
    ));

    let step = Step::start(
        2,
        "Connect with OAuth 2.0 (refresh-token flow), as `sfetl check` does",
    );
    let raw = json!({
        "client_id": sim.credentials.client_id,
        "client_secret": sim.credentials.client_secret,
        "refresh_token": sim.credentials.refresh_token,
        "login_url": sim.login_url,
        "start_date": "2000-01-01",
        "stream_slice_step": "P3650D",
        "cursor_lag": "PT0S",
        "output": {"format": "parquet", "path": dir.join("export").display().to_string()},
    });
    let config_path = dir.join("config.json");
    super::rotation::write_private_json(&config_path, &raw)?;
    let config = Arc::new(Config::from_value(raw)?);
    let client = SalesforceClient::connect(&config, ClientHooks::default()).await?;
    step.done(format!(
        "got an access token for instance {}; config saved to {} (mode 0600: it holds the refresh token)",
        client.instance_url(),
        config_path.display()
    ));

    let step = Step::start(3, "Discover the org's objects (sfetl discover)");
    let (catalog, _) = discover(&client, &config).await?;
    let names: Vec<&str> = catalog.streams.iter().map(|s| s.name.as_str()).collect();
    step.done(format!("{} streams: {}", names.len(), names.join(", ")));

    let streams: Vec<ConfiguredAirbyteStream> = catalog
        .streams
        .iter()
        .filter(|s| OBJECTS.contains(&s.name.as_str()))
        .map(|s| ConfiguredAirbyteStream {
            stream: s.clone(),
            sync_mode: crate::protocol::SyncMode::Incremental,
            cursor_field: None,
            destination_sync_mode: crate::protocol::DestinationSyncMode::AppendDedup,
            primary_key: None,
            generation_id: None,
            minimum_generation_id: None,
            sync_id: None,
        })
        .collect();
    let export = dir.join("export");

    let step = Step::start(
        4,
        "First read: Account, Contact and Lead into Parquet through Bulk API 2.0 (sfetl read)",
    );
    let first = read_to_parquet(&client, &config, &streams, InputState::default(), &export).await?;
    let rows: Vec<String> = first.rows.iter().map(|(s, n)| format!("{s} {n}")).collect();
    step.done(format!(
        "rows: {}; files under {}",
        rows.join(", "),
        export.display()
    ));

    let step = Step::start(5, "Change the org: 25 Contacts edited, 5 Leads deleted");
    let http = reqwest::Client::new();
    for (path, body) in [
        ("touch", json!({"object": "Contact", "count": 25})),
        ("delete", json!({"object": "Lead", "count": 5})),
    ] {
        http.post(format!("{}/__sim/{path}", sim.base_url))
            .json(&body)
            .send()
            .await
            .map_err(std::io::Error::other)?;
    }
    step.done("done through the simulator's test-control API".to_string());

    let step = Step::start(
        6,
        "Incremental read from the saved STATE: only what changed",
    );
    let state = parse_state(Value::Array(first.states)).map_err(std::io::Error::other)?;
    let second = read_to_parquet(&client, &config, &streams, state, &export).await?;
    let rows: Vec<String> = second
        .rows
        .iter()
        .map(|(s, n)| format!("{s} {n}"))
        .collect();
    step.done(format!(
        "rows: {} (Contacts edited, and each deleted Lead both as its recycle-bin version and from the deleted endpoint)",
        rows.join(", ")
    ));

    println!(
        "\nDone in {:.1} s. Query the export with DuckDB, pandas or Spark: {}/<stream>/<sync>/part-*.parquet",
        total.elapsed().as_secs_f64(),
        export.display()
    );
    sim.shutdown().await;
    Ok(())
}
