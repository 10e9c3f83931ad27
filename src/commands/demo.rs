//! `sfetl demo`: the whole pipeline on the embedded simulator, explained step by step for
//! someone who has never seen sfetl. Everything runs in-process, so it works on a fresh machine
//! with nothing else running.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use sfetl_sim::{SimOptions, Simulator};
use tokio::sync::mpsc;

use crate::cli::{DemoArgs, QueryArgs, QueryFormat};
use crate::config::Config;
use crate::error::Error;
use crate::output::stdout::Out;
use crate::output::{Destination, ParquetOptions};
use crate::output::{new_sync_id, open_location};
use crate::protocol::{ConfiguredAirbyteStream, MessageType};
use crate::salesforce::{ClientHooks, SalesforceClient};
use crate::sink::config::Writeback;
use crate::sink::{Sink, SinkOptions};
use crate::source::discover::discover;
use crate::source::read::{ReadOptions, read};
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

/// The demo's lead score: SQL over the export's `person` table, as an analyst would write it.
const SCORE_SQL: &str = "SELECT source_object, source_id, \
     CAST((CASE WHEN email IS NOT NULL THEN 40 ELSE 0 END) \
        + (CASE WHEN company IS NOT NULL THEN 30 ELSE 0 END) \
        + (CASE WHEN source_object = 'Contact' THEN 30 ELSE 10 END) AS DOUBLE) AS score, \
     concat_ws(', ', CASE WHEN email IS NOT NULL THEN 'has email' END, \
        CASE WHEN company IS NOT NULL THEN 'known company' END, \
        CASE WHEN source_object = 'Contact' THEN 'contact' ELSE 'open lead' END) AS reason \
     FROM person";

/// Maps a step's failure to a demo error naming the step.
fn failed<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> Error {
    move |e| Error::Demo(format!("{what}: {e}"))
}

/// Runs SQL over the export (what `sfetl query` does).
async fn query(path: &str, sql: &str) -> Result<Vec<arrow::record_batch::RecordBatch>, Error> {
    let (_, batches) = crate::query::sql(path, sql)
        .await
        .map_err(failed("querying the export"))?;
    Ok(batches)
}

/// Prints batches as an indented table.
fn print_table(batches: &[arrow::record_batch::RecordBatch]) -> Result<(), Error> {
    let table = arrow::util::pretty::pretty_format_batches(batches)
        .map_err(failed("formatting the result"))?;
    for line in table.to_string().lines() {
        println!("   {line}");
    }
    Ok(())
}

/// The simulator's test-control API (`/__sim/...`), which plays the org's users in the demo.
struct SimControl {
    http: reqwest::Client,
    base: String,
}

impl SimControl {
    fn new(base: &str) -> Result<SimControl, Error> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(failed("building an HTTP client"))?;
        Ok(SimControl {
            http,
            base: base.to_string(),
        })
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Value, Error> {
        let req = self
            .http
            .post(format!("{}/__sim/{path}", self.base))
            .json(body);
        Self::answer(req).await
    }

    async fn get(&self, path: &str) -> Result<Value, Error> {
        Self::answer(self.http.get(format!("{}/__sim/{path}", self.base))).await
    }

    async fn answer(req: reqwest::RequestBuilder) -> Result<Value, Error> {
        let what = "calling the simulator's control API";
        req.send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(failed(what))?
            .json()
            .await
            .map_err(failed(what))
    }
}

/// One person record as Salesforce holds it.
struct Shown {
    object: String,
    id: String,
    name: String,
    score: String,
    reason: String,
}

/// A few people (3 Leads, 2 Contacts) shown before and after the write-back.
struct Sample {
    ids: Vec<(String, String)>,
    before: Vec<Shown>,
}

/// Picks the sample from the export and reads its records from Salesforce.
async fn sample_people(client: &SalesforceClient, export: &str) -> Result<Sample, Error> {
    let mut ids = Vec::new();
    for (object, n) in [("Lead", 3), ("Contact", 2)] {
        let batches = query(
            export,
            &format!(
                "SELECT source_id FROM person WHERE source_object = '{object}' ORDER BY source_id LIMIT {n}"
            ),
        )
        .await?;
        for b in &batches {
            let col = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8)
                .map_err(failed("reading the sample's ids"))?;
            let col = arrow::array::cast::AsArray::as_string::<i32>(&col);
            ids.extend(
                col.iter()
                    .flatten()
                    .map(|id| (object.to_string(), id.to_string())),
            );
        }
    }
    let mut sample = Sample {
        ids,
        before: Vec::new(),
    };
    sample.before = sample.fetch(client).await?;
    Ok(sample)
}

impl Sample {
    /// The sample's records as Salesforce holds them now, in sample order.
    async fn fetch(&self, client: &SalesforceClient) -> Result<Vec<Shown>, Error> {
        let mut out = Vec::new();
        for object in ["Lead", "Contact"] {
            let ids: Vec<String> = self
                .ids
                .iter()
                .filter(|(o, _)| o == object)
                .map(|(_, id)| format!("'{id}'"))
                .collect();
            if ids.is_empty() {
                continue;
            }
            let soql = format!(
                "SELECT Id, Name, Score__c, Score_Reason__c FROM {object} WHERE Id IN ({}) ORDER BY Id",
                ids.join(",")
            );
            let records = crate::salesforce::query::query_all_rows(client, &soql, false).await?;
            for r in &records {
                let text = |k: &str| match &r[k] {
                    Value::Null => "-".to_string(),
                    Value::String(s) => s.clone(),
                    v => v.to_string(),
                };
                out.push(Shown {
                    object: object.to_string(),
                    id: text("Id"),
                    name: text("Name").chars().take(22).collect(),
                    score: text("Score__c"),
                    reason: text("Score_Reason__c"),
                });
            }
        }
        Ok(out)
    }
}

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
        options: ParquetOptions {
            compression: config.output.compression,
            ..ParquetOptions::default()
        },
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
    let report = collector
        .await
        .map_err(failed("collecting the read's messages"))?;
    if let Some((stream, e)) = summary.failures.into_iter().next() {
        eprintln!("sfetl demo: stream {stream} failed");
        return Err(Error::Fetch(e));
    }
    Ok(report)
}

/// The demo script, step by step. Linear on purpose: it reads top to bottom as the story it
/// tells (each step prints what it did), so it is one function rather than many small ones.
pub(super) async fn run(args: &DemoArgs) -> Result<(), Error> {
    let total = Instant::now();
    std::fs::create_dir_all(&args.dir)?;
    let dir = std::fs::canonicalize(&args.dir)?;
    println!(
        "sfetl demo: a simulated Salesforce org read into Parquet, changed, read again, queried with SQL, scored, and the scores written back."
    );
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
    let config = Arc::new(Config::from_value(raw.clone())?);
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
    let control = SimControl::new(&sim.base_url)?;
    let mut changed = Vec::new();
    for (path, body) in [
        ("touch", json!({"object": "Contact", "count": 25})),
        ("delete", json!({"object": "Lead", "count": 5})),
    ] {
        let answer = control.post(path, &body).await?;
        let n = answer["ids"].as_array().map_or(0, Vec::len);
        if n != body["count"].as_u64().unwrap_or(0) as usize {
            return Err(Error::Demo(format!(
                "the simulator changed {n} rows for {path}: {answer}"
            )));
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
    let state = parse_state(Value::Array(first.states)).map_err(failed("reading the STATE"))?;
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
        print_table(&query(&export_path, sql).await?)?;
        step.done(note.to_string());
    }

    let mut n = 7 + QUESTIONS.len() as u32;
    let step = Step::start(
        n,
        "Score every person with SQL into a Parquet file (sfetl query --format parquet)",
    );
    let scores = dir.join("scores.parquet");
    println!(
        "   $ sfetl query --path {export_path} --format parquet --out {} \"{SCORE_SQL}\"",
        scores.display()
    );
    crate::query::run(&QueryArgs {
        path: export_path.clone(),
        sql: SCORE_SQL.to_string(),
        format: Some(QueryFormat::Parquet),
        out: Some(scores.clone()),
    })
    .await
    .map_err(failed("scoring"))?;
    print_table(
        &query(
            &export_path,
            &format!(
                "SELECT source_object, count(*) AS scored, min(score) AS min_score, max(score) AS max_score FROM ({SCORE_SQL}) GROUP BY source_object ORDER BY source_object"
            ),
        )
        .await?,
    )?;
    step.done(format!(
        "one row per person (source_object, source_id, score, reason) in {}",
        scores.display()
    ));

    n += 1;
    let step = Step::start(
        n,
        "Write the scores back to the Leads and Contacts (sfetl write; routes from the config's writeback)",
    );
    let mut raw = raw;
    raw["writeback"] = json!({
        "streams": {
            "person_scores": {"routes": [
                {"object": "Lead", "when": "source_object = 'Lead'", "operation": "update",
                 "fields": {"Id": "source_id", "Score__c": "score", "Score_Reason__c": "reason"}},
                {"object": "Contact", "when": "source_object = 'Contact'", "operation": "update",
                 "fields": {"Id": "source_id", "Score__c": "score", "Score_Reason__c": "reason"}}]},
            "account_enrichment": {"routes": [
                {"object": "Account", "operation": "upsert", "external_id": "External_Id__c",
                 "fields": {"External_Id__c": "ext_id", "Description": "summary"}}]}
        },
        "rejects_path": dir.join("rejects").display().to_string()
    });
    super::rotation::write_private_json(&config_path, &raw)?;
    let config = Config::from_value(raw)?;
    println!(
        "   $ sfetl write --config {} --input {} --stream person_scores",
        config_path.display(),
        scores.display()
    );
    let sample = sample_people(&client, &export_path).await?;
    control.post("stats/reset", &json!({})).await?;
    let writeback =
        Writeback::parse(config.writeback.as_ref()).map_err(crate::sink::SinkError::Config)?;
    let (tx, mut rx) = mpsc::channel::<Out>(64);
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let mut sink = Sink::new(
        client.clone(),
        writeback,
        SinkOptions {
            dry_run: false,
            storage_options: Default::default(),
        },
        tx,
    )
    .await?;
    super::write::from_file(
        &mut sink,
        &scores.display().to_string(),
        "person_scores",
        &config,
    )
    .await?;
    for line in sink.summary().lines() {
        println!("   {line}");
    }
    drop(sink);
    drain.await.map_err(failed("finishing the write"))?;
    let calls = control.get("stats").await?;
    let by_kind = |k: &str| calls["by_kind"][k].as_u64().unwrap_or(0);
    step.done(format!(
        "{} API calls: {} Bulk API 2.0 ingest calls (a job per object: create, upload, close, polls), {} describes",
        calls["total"].as_u64().unwrap_or(0),
        by_kind("bulk_ingest"),
        by_kind("describe")
    ));

    n += 1;
    let step = Step::start(n, "Read a few of them back from Salesforce (REST query)");
    let after = sample.fetch(&client).await?;
    println!(
        "   {:<8} {:<18} {:<22} {:>15} {:>8}  Score_Reason__c",
        "object", "Id", "Name", "Score__c before", "after"
    );
    for (before, now) in sample.before.iter().zip(&after) {
        println!(
            "   {:<8} {:<18} {:<22} {:>15} {:>8}  {}",
            now.object, now.id, now.name, before.score, now.score, now.reason
        );
    }
    step.done(format!(
        "{} records read back with their new Score__c and Score_Reason__c",
        after.len()
    ));

    println!(
        "\nDone in {:.1} s. Query the export with DuckDB, pandas or Spark: {}/<stream>/<sync>/part-*.parquet",
        total.elapsed().as_secs_f64(),
        export.display()
    );
    sim.shutdown().await;
    Ok(())
}
