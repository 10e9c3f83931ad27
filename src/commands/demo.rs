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

/// The streams the demo reads: the people mapping's `person` (Leads not converted plus
/// Contacts) and `account`.
const STREAMS: [&str; 2] = ["person", "account"];

/// The mapping of issue 7's example, shipped in `fixtures/mappings/people.yaml`.
const PEOPLE_MAPPING: &str = include_str!("../../fixtures/mappings/people.yaml");

/// The SQL questions the demo answers over the export.
const QUESTIONS: [(&str, &str, &str); 3] = [
    (
        "Leads vs Contacts among people",
        "SELECT source_object, count(*) AS people FROM person GROUP BY source_object ORDER BY source_object",
        "latest version of each person; deleted Leads left out",
    ),
    (
        "People per company (top 5)",
        "SELECT company, count(*) AS people FROM person WHERE company IS NOT NULL GROUP BY company ORDER BY people DESC, company LIMIT 5",
        "Lead.Company and the Contact's Account.Name, as the mapping says",
    ),
    (
        "Rows kept in person_history across both reads",
        "SELECT count(*) AS rows, count(DISTINCT source_id) AS people FROM person_history",
        "every version of every row, deletions included",
    ),
];

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
    mapping: &Option<Arc<crate::mapping::MappingPlan>>,
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
        ReadOptions {
            mapping: mapping.clone(),
            ..ReadOptions::default()
        },
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
    let mapping_path = dir.join("people.yaml");
    std::fs::write(&mapping_path, PEOPLE_MAPPING)?;
    let raw = json!({
        "client_id": sim.credentials.client_id,
        "client_secret": sim.credentials.client_secret,
        "refresh_token": sim.credentials.refresh_token,
        "login_url": sim.login_url,
        "start_date": "2000-01-01",
        "stream_slice_step": "P3650D",
        "cursor_lag": "PT0S",
        "output": {"format": "parquet", "path": dir.join("export").display().to_string()},
        "mapping": mapping_path.display().to_string(),
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

    let step = Step::start(
        3,
        "Discover the org's objects and the mapped streams of people.yaml (sfetl discover)",
    );
    let (mut catalog, _) = discover(&client, &config).await?;
    let names: Vec<String> = catalog.streams.iter().map(|s| s.name.clone()).collect();
    let plan = crate::source::mapped::load_plan(&client, &config).await?;
    if let Some(p) = &plan {
        catalog
            .streams
            .extend(p.streams.iter().map(|s| s.airbyte_stream()));
    }
    step.done(format!(
        "{} objects: {}; mapped streams: person (Lead not converted + Contact), account",
        names.len(),
        names.join(", ")
    ));

    let streams: Vec<ConfiguredAirbyteStream> = catalog
        .streams
        .iter()
        .filter(|s| STREAMS.contains(&s.name.as_str()))
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
        "First read: person and account into Parquet, mapped with DataFusion on the way (sfetl read)",
    );
    let first = read_to_parquet(
        &client,
        &config,
        &streams,
        InputState::default(),
        &export,
        &plan,
    )
    .await?;
    let rows: Vec<String> = first.rows.iter().map(|(s, n)| format!("{s} {n}")).collect();
    step.done(format!(
        "rows: {}; files under {}",
        rows.join(", "),
        export.display()
    ));

    let step = Step::start(5, "Change the org: 25 Contacts edited, 5 Leads deleted");
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(std::io::Error::other)?;
    let mut changed = Vec::new();
    for (path, body) in [
        ("touch", json!({"object": "Contact", "count": 25})),
        ("delete", json!({"object": "Lead", "count": 5})),
    ] {
        let answer: Value = http
            .post(format!("{}/__sim/{path}", sim.base_url))
            .json(&body)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(std::io::Error::other)?
            .json()
            .await
            .map_err(std::io::Error::other)?;
        let n = answer["ids"].as_array().map_or(0, Vec::len);
        if n != body["count"].as_u64().unwrap_or(0) as usize {
            return Err(std::io::Error::other(format!(
                "the simulator changed {n} rows for {path}: {answer}"
            ))
            .into());
        }
        changed.push(n);
    }
    step.done(format!(
        "{} Contacts edited and {} Leads deleted through the simulator's test-control API",
        changed[0], changed[1]
    ));

    // The upper bound of a read is exclusive at millisecond precision: a change stamped in the
    // very millisecond the read starts belongs to the next run. Let that millisecond pass.
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    let step = Step::start(
        6,
        "Incremental read from the saved STATE: only what changed",
    );
    let state = parse_state(Value::Array(first.states)).map_err(std::io::Error::other)?;
    let second = read_to_parquet(&client, &config, &streams, state, &export, &plan).await?;
    let rows: Vec<String> = second
        .rows
        .iter()
        .map(|(s, n)| format!("{s} {n}"))
        .collect();
    step.done(format!(
        "rows: {} (the edited Contacts, and each deleted Lead as a deletion: its recycle-bin version and the deleted endpoint's row)",
        rows.join(", ")
    ));

    let export_path = export.display().to_string();
    for (i, (question, sql, note)) in QUESTIONS.iter().enumerate() {
        let step = Step::start(7 + i as u32, &format!("{question} (sfetl query)"));
        println!("   $ sfetl query --path {export_path} \"{sql}\"");
        let (_, batches) = crate::query::sql(&export_path, sql)
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let table = arrow::util::pretty::pretty_format_batches(&batches)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        for line in table.to_string().lines() {
            println!("   {line}");
        }
        step.done(note.to_string());
    }

    println!(
        "\nDone in {:.1} s. Query the export with DuckDB, pandas or Spark: {}/<stream>/<sync>/part-*.parquet",
        total.elapsed().as_secs_f64(),
        export.display()
    );
    sim.shutdown().await;
    Ok(())
}
