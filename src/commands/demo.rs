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
use crate::output::delta::{DeltaDestination, DeltaOptions};
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

/// The SQL questions the demo answers over the export; [`Story::note`] explains each answer
/// with the counts of what the demo did.
const QUESTIONS: [(&str, &str); 3] = [
    (
        "Leads vs Contacts among people",
        "SELECT source_object, count(*) AS people FROM person GROUP BY source_object ORDER BY source_object",
    ),
    (
        "People per company (top 5)",
        "SELECT company, count(*) AS people FROM person WHERE company IS NOT NULL GROUP BY company ORDER BY people DESC, company LIMIT 5",
    ),
    (
        "Rows kept in person_history across both reads",
        "SELECT count(*) AS rows, count(DISTINCT source_id) AS people FROM person_history",
    ),
];

/// The SQL that counts people per source object after the first read.
const PEOPLE_BY_OBJECT: &str = "SELECT source_object, count(*) AS people FROM person GROUP BY source_object ORDER BY source_object";

/// The demo's lead score: SQL over the export's `person` table, as an analyst would write it.
const SCORE_SQL: &str = "SELECT source_object, source_id, \
     CAST((CASE WHEN email IS NOT NULL THEN 40 ELSE 0 END) \
        + (CASE WHEN company IS NOT NULL THEN 30 ELSE 0 END) \
        + (CASE WHEN source_object = 'Contact' THEN 30 ELSE 10 END) AS DOUBLE) AS score, \
     concat_ws(', ', CASE WHEN email IS NOT NULL THEN 'has email' END, \
        CASE WHEN company IS NOT NULL THEN 'known company' END, \
        CASE WHEN source_object = 'Contact' THEN 'contact' ELSE 'open lead' END) AS reason \
     FROM person";

/// Prints one line of the demo's story on stdout; when stdout's reader is gone
/// (`sfetl demo | head`) the demo ends quietly instead of panicking as `println!` would.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            crate::output::stdout::exit_if_closed(&e);
        }
    }};
}

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
        say!("   {line}");
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
                    name: fit(&text("Name"), NAME_WIDTH),
                    score: text("Score__c"),
                    reason: text("Score_Reason__c"),
                });
            }
        }
        Ok(out)
    }
}

/// Width of the Name column of the read-back table.
const NAME_WIDTH: usize = 22;

/// `text` cut to `width` characters, ending in an ellipsis when it was cut.
fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Thousands separators for counts people read (`4,387`).
fn count(n: impl Into<u64>) -> String {
    let digits = n.into().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

struct Step {
    started: Instant,
}

impl Step {
    fn start(n: u32, title: &str) -> Step {
        say!("\n{n}. {title}");
        Step {
            started: Instant::now(),
        }
    }
    fn done(self, what: String) {
        say!("   {what} ({:.2} s)", self.started.elapsed().as_secs_f64());
    }
}

/// What a read printed, summarised.
#[derive(Default)]
struct ReadReport {
    states: Vec<Value>,
    rows: BTreeMap<String, f64>,
}

/// Parquet sync folders under `export`, as `sfetl read` with `output.format: parquet`.
fn parquet_at(config: &Config, export: &Path) -> Result<Destination, Error> {
    Ok(Destination::Parquet {
        location: open_location(export.to_str().unwrap_or("."), &Default::default())?,
        sync_id: new_sync_id(),
        options: ParquetOptions {
            compression: config.output.compression,
            encodings: config.output.encodings,
            ..ParquetOptions::default()
        },
    })
}

/// A Delta table per stream under `export`, as `sfetl read` with `output.format: delta`.
fn delta_at(config: &Config, export: &Path) -> Result<Destination, Error> {
    Ok(Destination::Delta(DeltaDestination {
        location: open_location(export.to_str().unwrap_or("."), &Default::default())?,
        sync_id: new_sync_id(),
        options: DeltaOptions {
            history: false,
            compression: config.output.compression,
        },
    }))
}

/// Commits in a local Delta table's log (its newest version is one less).
fn delta_commits(table: &Path) -> usize {
    std::fs::read_dir(table.join("_delta_log"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                .count()
        })
        .unwrap_or(0)
}

async fn read_into(
    client: &SalesforceClient,
    config: &Arc<Config>,
    streams: &[ConfiguredAirbyteStream],
    state: InputState,
    destination: Destination,
    mapping: &Option<Arc<crate::mapping::MappingPlan>>,
) -> Result<ReadReport, Error> {
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

/// What the demo did, counted, so each figure it prints is explained by the others.
#[derive(Default)]
struct Story {
    /// Rows of each stream in the first read.
    first: BTreeMap<String, u64>,
    /// People per source object after the first read (`Contact`, `Lead`).
    first_people: BTreeMap<String, u64>,
    /// Contacts edited.
    edited: usize,
    /// Leads deleted.
    deleted: Vec<String>,
    /// The deleted Leads that had been converted (the mapping never read them).
    converted: Vec<String>,
    /// The Lead step 5 converts, and the Contact its conversion creates.
    conversion: Option<(String, String)>,
    /// Rows of each stream in the second read.
    second: BTreeMap<String, u64>,
}

impl Story {
    fn people(&self, object: &str) -> u64 {
        self.first_people.get(object).copied().unwrap_or(0)
    }

    /// Leads converted in step 5 (0 or 1).
    fn converted_now(&self) -> u64 {
        u64::from(self.conversion.is_some())
    }

    /// `text` when step 5 converted a Lead, else nothing.
    fn if_converted(&self, text: &'static str) -> &'static str {
        if self.conversion.is_some() { text } else { "" }
    }

    /// Deleted Leads the first read had read (not converted).
    fn deleted_read(&self) -> u64 {
        (self.deleted.len() - self.converted.len()) as u64
    }

    /// What the answer to question `i` of [`QUESTIONS`] is made of.
    fn note(&self, i: usize) -> String {
        let leads = self.people("Lead");
        let person = |m: &BTreeMap<String, u64>| m.get("person").copied().unwrap_or(0);
        match i {
            0 => format!(
                "latest version of each person: {} Contacts{}, and {} Leads = {} read first - {} deleted{}",
                count(self.people("Contact") + self.converted_now()),
                self.if_converted(" (one the conversion's)"),
                count(leads - self.deleted_read() - self.converted_now()),
                count(leads),
                self.deleted_read(),
                self.if_converted(" - 1 converted"),
            ),
            1 => "Lead.Company and the Contact's Account.Name, as the mapping says".into(),
            _ => format!(
                "every version of every row: {} = {} from the first read + {} from the second; {} people = the {} read first + the {} converted Leads known only from their deletion rows{}",
                count(person(&self.first) + person(&self.second)),
                count(person(&self.first)),
                person(&self.second),
                count(person(&self.first) + self.converted.len() as u64 + self.converted_now()),
                count(person(&self.first)),
                self.converted.len(),
                self.if_converted(" + the Contact a conversion created"),
            ),
        }
    }
}

/// Rows per stream as counted by a read's STATE messages.
fn whole(rows: &BTreeMap<String, f64>) -> BTreeMap<String, u64> {
    rows.iter().map(|(s, n)| (s.clone(), *n as u64)).collect()
}

/// `account 1,000, person 4,387`.
fn per_stream(rows: &BTreeMap<String, u64>) -> String {
    let parts: Vec<String> = rows
        .iter()
        .map(|(s, n)| format!("{s} {}", count(*n)))
        .collect();
    parts.join(", ")
}

/// (text, count) pairs of a two-column result such as `source_object, count(*)`.
fn pairs(batches: &[arrow::record_batch::RecordBatch]) -> Result<BTreeMap<String, u64>, Error> {
    use arrow::array::cast::AsArray;
    use arrow::datatypes::{DataType, UInt64Type};
    let mut out = BTreeMap::new();
    for b in batches {
        let cast = |i: usize, t: &DataType| {
            arrow::compute::cast(b.column(i), t).map_err(failed("reading a count"))
        };
        let (names, counts) = (cast(0, &DataType::Utf8)?, cast(1, &DataType::UInt64)?);
        let counts = counts.as_primitive::<UInt64Type>();
        for (name, n) in names.as_string::<i32>().iter().zip(counts.iter()) {
            out.insert(name.unwrap_or_default().to_string(), n.unwrap_or(0));
        }
    }
    Ok(out)
}

/// The config of the demo: defaults everywhere but `cursor_lag`, which is 0 because the
/// simulator's changes are final the moment they are made (the default 2 minutes would leave
/// the changes of step 5 to a read two minutes later).
fn demo_config(sim: &sfetl_sim::SimHandle, dir: &Path, mapping: &Path) -> Value {
    json!({
        "client_id": sim.credentials.client_id,
        "client_secret": sim.credentials.client_secret,
        "refresh_token": sim.credentials.refresh_token,
        "login_url": sim.login_url,
        "cursor_lag": "PT0S",
        "output": {"format": "parquet", "path": dir.join("export").display().to_string()},
        "mapping": mapping.display().to_string(),
    })
}

/// The person and account streams of `catalog`, incremental.
fn selected(catalog: &crate::protocol::AirbyteCatalog) -> Vec<ConfiguredAirbyteStream> {
    catalog
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
        .collect()
}

/// Step 5: edits 25 Contacts and deletes 5 Leads, and finds which deleted Leads had been
/// converted (queryAll sees the recycle bin).
async fn change_the_org(
    control: &SimControl,
    client: &SalesforceClient,
    story: &mut Story,
) -> Result<(), Error> {
    let mut ids: Vec<Vec<String>> = Vec::new();
    // The deletions are dated two minutes back: Salesforce's `deleted` endpoint covers whole
    // minutes up to the one before now, so deletions of this very minute would only show in
    // the next read.
    let two_minutes_ago =
        crate::state::datetime_literal(chrono::Utc::now() - chrono::Duration::minutes(2));
    for (path, body) in [
        ("touch", json!({"object": "Contact", "count": 25})),
        (
            "delete",
            json!({"object": "Lead", "count": 5, "stamp": two_minutes_ago}),
        ),
    ] {
        let answer = control.post(path, &body).await?;
        let changed: Vec<String> = answer["ids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        if changed.len() != body["count"].as_u64().unwrap_or(0) as usize {
            return Err(Error::Demo(format!(
                "the simulator changed {} rows for {path}: {answer}",
                changed.len()
            )));
        }
        ids.push(changed);
    }
    story.deleted = ids.pop().unwrap_or_default();
    story.edited = ids.pop().map_or(0, |v| v.len());
    let quoted: Vec<String> = story.deleted.iter().map(|id| format!("'{id}'")).collect();
    let soql = format!(
        "SELECT Id FROM Lead WHERE Id IN ({}) AND IsConverted = true ORDER BY Id",
        quoted.join(",")
    );
    story.converted = crate::salesforce::query::query_all_rows(client, &soql, true)
        .await?
        .iter()
        .filter_map(|r| r["Id"].as_str().map(str::to_string))
        .collect();
    // The last Lead still open is converted: it changes, and the mapping's filter no longer
    // selects it.
    let open = "SELECT Id FROM Lead WHERE IsConverted = false ORDER BY Id DESC LIMIT 1";
    let open = crate::salesforce::query::query_all_rows(client, open, false).await?;
    if let Some(lead) = open.first().and_then(|r| r["Id"].as_str()) {
        let answer = control.post("convert_lead", &json!({ "id": lead })).await?;
        let contact = answer["contact"].as_str().unwrap_or_default().to_string();
        story.conversion = Some((lead.to_string(), contact));
    }
    Ok(())
}

/// What step 5 did, in words.
fn changes_told(story: &Story) -> String {
    let converted = match story.converted.len() {
        0 => format!(
            "none of the deleted Leads had been converted, so person loses all {}",
            story.deleted.len()
        ),
        n => format!(
            "{n} of the deleted Leads ({}) had been converted, so people.yaml's soql_where (IsConverted = false) never read them: person loses {} Leads, not {}",
            story.converted.join(", "),
            story.deleted_read(),
            story.deleted.len()
        ),
    };
    let conversion = match &story.conversion {
        Some((lead, contact)) => format!(
            "; Lead {lead} converted into Contact {contact} (the Lead changes, and people.yaml's soql_where no longer selects it)"
        ),
        None => String::new(),
    };
    format!(
        "{} Contacts edited and {} Leads deleted through the simulator's test-control API; {converted}{conversion}",
        story.edited,
        story.deleted.len()
    )
}

/// What the second read's rows are made of.
fn second_read_told(story: &Story) -> String {
    let converted = match story.converted.len() {
        0 => String::new(),
        n => format!(" (it cannot apply soql_where, so the {n} converted Leads come too)"),
    };
    let conversion = match story.conversion {
        Some(_) => {
            " + the conversion's new Contact twice (read as new, and again under its new Account, whose changes the mapping's Account.Name follows) + the converted Lead as a deletion (a query of the window's rows no longer matching soql_where); account: the conversion's new Account"
        }
        None => "",
    };
    format!(
        "rows: {} = {} edited Contacts + {} deleted Leads as their recycle-bin version (queryAll with the mapping's filter) + {} rows from the deleted endpoint, one per deleted Lead{converted}{conversion}",
        per_stream(&story.second),
        story.edited,
        story.deleted_read(),
        story.deleted.len()
    )
}

/// The write-back's calls by kind, summing to the total.
fn calls_told(calls: &Value) -> String {
    let kinds: Vec<String> = calls["by_kind"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(kind, n)| n.as_u64().filter(|n| *n > 0).map(|n| (kind, n)))
        .map(|(kind, n)| match kind.as_str() {
            "bulk_ingest" => format!(
                "{n} Bulk API 2.0 ingest (create, upload, close and polls of one job per object)"
            ),
            "describe" => format!("{n} describe"),
            other => format!("{n} {other}"),
        })
        .collect();
    format!(
        "{} API calls: {}",
        calls["total"].as_u64().unwrap_or(0),
        kinds.join(", ")
    )
}

/// Marks a folder `sfetl demo` made, so that a second run there may clear it.
const MARKER: &str = ".sfetl-demo";
/// What a demo writes in its folder: a second run removes them first, so its figures (rows
/// read, commits, versions) are a first run's again instead of adding to the last one's.
const OUTPUTS: [&str; 6] = [
    "config.json",
    "people.yaml",
    "export",
    "delta",
    "scores.parquet",
    "rejects",
];

/// Makes `dir` a fresh demo folder: an empty folder gets the marker; a folder an earlier demo
/// made loses that demo's outputs; any other folder with files in it is refused, since the
/// demo would mix its files with them.
fn start_afresh(dir: &Path) -> Result<(), String> {
    let io = |e: std::io::Error| format!("cannot prepare {} for the demo: {e}", dir.display());
    let marker = dir.join(MARKER);
    if marker.exists() {
        for name in OUTPUTS {
            let path = dir.join(name);
            if path.is_dir() {
                std::fs::remove_dir_all(&path).map_err(io)?;
            } else if path.exists() {
                std::fs::remove_file(&path).map_err(io)?;
            }
        }
        return Ok(());
    }
    if std::fs::read_dir(dir).map_err(io)?.next().is_some() {
        return Err(format!(
            "{} already holds files that an earlier `sfetl demo` did not write; give --dir a new or empty folder",
            dir.display()
        ));
    }
    std::fs::write(
        &marker,
        "written by sfetl demo: a second run here replaces its outputs\n",
    )
    .map_err(io)
}

/// The demo script, step by step. Linear on purpose: it reads top to bottom as the story it
/// tells (each step prints what it did), so it is one function rather than many small ones.
pub(super) async fn run(args: &DemoArgs) -> Result<(), Error> {
    let total = Instant::now();
    let unusable = |e: std::io::Error| {
        Error::Demo(format!(
            "cannot use {} as the demo's folder ({e}); give --dir a folder sfetl can create or write to",
            args.dir.display()
        ))
    };
    std::fs::create_dir_all(&args.dir).map_err(unusable)?;
    let dir = std::fs::canonicalize(&args.dir).map_err(unusable)?;
    start_afresh(&dir).map_err(Error::Demo)?;
    say!(
        "sfetl demo: a simulated Salesforce org read into Parquet, changed, read again, queried with SQL, kept as Delta Lake tables, scored, and the scores written back."
    );
    say!("Everything is written under {}", dir.display());
    let mut story = Story::default();

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
    let raw = demo_config(&sim, &dir, &mapping_path);
    let config_path = dir.join("config.json");
    super::rotation::write_private_json(&config_path, &raw)?;
    let config = Arc::new(Config::from_value(raw.clone())?);
    let client = SalesforceClient::connect(&config, ClientHooks::default()).await?;
    step.done(format!(
        "got an access token for instance {}; config saved to {} (mode 0600: it holds the refresh token); default settings except cursor_lag PT0S, as the simulator's changes are final at once (keep the default PT2M with a real org)",
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
    let streams = selected(&catalog);
    let export = dir.join("export");
    let export_path = export.display().to_string();

    let step = Step::start(
        4,
        "First read: person and account into Parquet, mapped with DataFusion on the way (sfetl read)",
    );
    let first = read_into(
        &client,
        &config,
        &streams,
        InputState::default(),
        parquet_at(&config, &export)?,
        &plan,
    )
    .await?;
    story.first = whole(&first.rows);
    story.first_people = pairs(&query(&export_path, PEOPLE_BY_OBJECT).await?)?;
    step.done(format!(
        "rows: {} ({} Leads not converted + {} Contacts), in {} STATE checkpoints; files under {}",
        per_stream(&story.first),
        count(story.people("Lead")),
        count(story.people("Contact")),
        first.states.len(),
        export.display()
    ));

    let step = Step::start(
        5,
        "Change the org: 25 Contacts edited, 5 Leads deleted, 1 Lead converted",
    );
    let control = SimControl::new(&sim.base_url)?;
    change_the_org(&control, &client, &mut story).await?;
    step.done(changes_told(&story));

    // Salesforce stamps changes to the whole second and drops a query literal's milliseconds,
    // so a read bounded in the second of the last change would leave it to the next run. The
    // simulator answers once that second has passed (at most a second's wait).
    control.post("next_second", &json!({})).await?;
    let step = Step::start(
        6,
        "Incremental read from the saved STATE: only what changed",
    );
    let state = parse_state(Value::Array(first.states)).map_err(failed("reading the STATE"))?;
    let second = read_into(
        &client,
        &config,
        &streams,
        state,
        parquet_at(&config, &export)?,
        &plan,
    )
    .await?;
    story.second = whole(&second.rows);
    step.done(second_read_told(&story));

    for (i, (question, sql)) in QUESTIONS.iter().enumerate() {
        let step = Step::start(7 + i as u32, &format!("{question} (sfetl query)"));
        say!("   $ sfetl query --path {export_path} \"{sql}\"");
        print_table(&query(&export_path, sql).await?)?;
        step.done(story.note(i));
    }

    let mut n = 7 + QUESTIONS.len() as u32;
    let step = Step::start(
        n,
        "The same streams as current-state Delta Lake tables (output.format delta), read by any engine",
    );
    let lake = dir.join("delta");
    let lake_path = lake.display().to_string();
    read_into(
        &client,
        &config,
        &streams,
        InputState::default(),
        delta_at(&config, &lake)?,
        &plan,
    )
    .await?;
    say!("   $ sfetl query --path {lake_path} \"{PEOPLE_BY_OBJECT}\"");
    let people = query(&lake_path, PEOPLE_BY_OBJECT).await?;
    print_table(&people)?;
    let same = pairs(&people)? == pairs(&query(&export_path, PEOPLE_BY_OBJECT).await?)?;
    step.done(format!(
        "one table per stream under {lake_path} ({} commits to person: its creation and one MERGE on the mapping's primary key per checkpoint, each holding the stream's STATE), no deleted row and one version of each person: {} the Parquet export's latest view; DuckDB reads it with delta_scan('{lake_path}/person'), Python with deltalake.DeltaTable('{lake_path}/person').to_pandas()",
        delta_commits(&lake.join("person")),
        if same { "the same answer as" } else { "NOT the same as" },
    ));

    n += 1;
    let step = Step::start(
        n,
        "Score every person with SQL into a Parquet file (sfetl query --format parquet)",
    );
    let scores = dir.join("scores.parquet");
    say!(
        "   $ sfetl query --path {export_path} --format parquet --out {} \"{SCORE_SQL}\"",
        scores.display()
    );
    crate::query::run(&QueryArgs {
        path: export_path.clone(),
        sql: SCORE_SQL.to_string(),
        format: Some(QueryFormat::Parquet),
        out: Some(scores.clone()),
        memory_limit: None,
    })
    .await
    .map_err(failed("scoring"))?;
    let summary_sql = format!(
        "SELECT source_object, count(*) AS scored, min(score) AS min_score, max(score) AS max_score FROM ({SCORE_SQL}) GROUP BY source_object ORDER BY source_object"
    );
    say!("   (it prints nothing; what it wrote, summarised:)");
    say!("   $ sfetl query --path {export_path} \"{summary_sql}\"");
    print_table(&query(&export_path, &summary_sql).await?)?;
    step.done(format!(
        "one row per person of the person table (source_object, source_id, score, reason) in {}",
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
    say!(
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
        say!("   {line}");
    }
    drop(sink);
    drain.await.map_err(failed("finishing the write"))?;
    step.done(calls_told(&control.get("stats").await?));

    n += 1;
    let step = Step::start(n, "Read a few of them back from Salesforce (REST query)");
    let after = sample.fetch(&client).await?;
    say!(
        "   {:<8} {:<18} {:<NAME_WIDTH$} {:>15} {:>8}  Score_Reason__c",
        "object",
        "Id",
        "Name",
        "Score__c before",
        "after"
    );
    for (before, now) in sample.before.iter().zip(&after) {
        say!(
            "   {:<8} {:<18} {:<NAME_WIDTH$} {:>15} {:>8}  {}",
            now.object,
            now.id,
            now.name,
            before.score,
            now.score,
            now.reason
        );
    }
    step.done(format!(
        "{} records read back with their new Score__c and Score_Reason__c",
        after.len()
    ));

    say!(
        "\nDone in {:.1} s. The latest version of each row: `sfetl query --path {} \"SELECT ...\"`, or the Delta tables under {} in DuckDB, pandas or Spark. The Parquet files ({}/<stream>/<sync>/part-*.parquet) hold every version read, deletions included, for history.",
        total.elapsed().as_secs_f64(),
        export.display(),
        lake.display(),
        export.display()
    );
    sim.shutdown().await;
    Ok(())
}
