//! One read scenario run for every API × output combination, held to the same exact rows:
//! a full refresh, an incremental read, rows touched and deleted in the org, the next incremental
//! read, and a resume from a STATE taken in the middle of the first incremental read. As in
//! object_store's conformance suite, [`scenario`] is one function and each combination is a
//! test that calls it; the rows every read must deliver are derived from the org itself (REST
//! `queryAll`, an independent path), so all six combinations deliver the same rows.
//!
//! The stream is Attachment, the simulated org's object with a base64 field (`Body`): with
//! `Body` selected, sfetl reads through REST; with `force_use_bulk_api` it reads through Bulk
//! API 2.0 and leaves `Body` out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use base64::Engine as _;
use serde_json::{Value, json};

use crate::common::*;

/// Which Salesforce API the read goes through.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Api {
    Bulk,
    Rest,
}

/// Where the read's rows go.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Format {
    Records,
    Parquet,
    Arrow,
}

#[tokio::test]
async fn bulk_records() {
    scenario(Api::Bulk, Format::Records).await;
}

#[tokio::test]
async fn bulk_parquet() {
    scenario(Api::Bulk, Format::Parquet).await;
}

#[tokio::test]
async fn bulk_arrow_ipc() {
    scenario(Api::Bulk, Format::Arrow).await;
}

#[tokio::test]
async fn rest_records() {
    scenario(Api::Rest, Format::Records).await;
}

#[tokio::test]
async fn rest_parquet() {
    scenario(Api::Rest, Format::Parquet).await;
}

#[tokio::test]
async fn rest_arrow_ipc() {
    scenario(Api::Rest, Format::Arrow).await;
}

const STREAM: &str = "Attachment";

/// The selected fields; `Body` is base64, so selecting it means REST.
const FIELDS: [&str; 11] = [
    "Id",
    "Name",
    "ParentId",
    "IsPrivate",
    "ContentType",
    "BodyLength",
    "Body",
    "Description",
    "CreatedDate",
    "SystemModstamp",
    "IsDeleted",
];

/// Fields compared as instants whatever their text form (`.000Z`, `+0000`, Arrow's RFC 3339).
const DATETIMES: [&str; 3] = ["CreatedDate", "SystemModstamp", "_sfetl_deleted_at"];

/// A row as compared (see [`canon`]).
type Row = BTreeMap<String, Value>;

/// The scenario every combination runs.
async fn scenario(api: Api, format: Format) {
    let run = Run::start(api, format).await;
    let before = run.org().await;
    assert_eq!(before.len(), 50, "scale 1000: 50 Attachments");
    let all: Vec<&String> = before.keys().collect();

    // 1. Full refresh: every row.
    let full = run.read("full_refresh", None).await;
    run.assert_rows("full refresh", &full, queried(&before, |_| true));

    // 2. First incremental read: every row, a STATE per window.
    let first = run.read("incremental", None).await;
    run.assert_rows("first incremental", &first, queried(&before, |_| true));
    let states = first.states();
    assert!(states.len() >= 3, "{run}: STATEs: {states:?}");
    let last = run.state_file("last.json", states.last().unwrap());
    let mid_state = &states[states.len() / 2];
    let mid = run.state_file("mid.json", mid_state);
    let mid_cursor = millis(
        mid_state["stream"]["stream_state"]["cursor"]
            .as_str()
            .unwrap_or_else(|| panic!("{run}: a cursor in {mid_state}")),
    );
    let below_mid = queried(&before, |r| stamp(r) < mid_cursor);
    assert!(
        !below_mid.is_empty() && below_mid.len() < before.len(),
        "{run}: the middle STATE is mid-run"
    );
    if let Some(delivered) = first.before_state(mid_state) {
        assert_same(
            &run,
            "rows before the middle STATE",
            delivered,
            below_mid.clone(),
        );
    }

    // 3. The org changes: 6 rows touched, 5 deleted, 2 of them both, at the instant the first
    // incremental read covered up to (Salesforce's `deleted` counts whole minutes, so changes
    // of the current minute would only show in a later read).
    let at = states.last().unwrap()["stream"]["stream_state"]["cursor"]
        .as_str()
        .unwrap()
        .to_string();
    let touched = run.control("touch", &all[0..6], &at).await;
    let deleted = run.control("delete", &all[4..9], &at).await;
    let after = run.org().await;
    for id in &deleted {
        assert_eq!(after[id]["IsDeleted"], json!(true));
    }

    // 4. Next incremental read: exactly the changed rows, deletions also from `deleted`.
    let changed: BTreeSet<String> = touched.union(&deleted).cloned().collect();
    let next = run.read("incremental", Some(&last)).await;
    let mut want = queried(&after, |r| changed.contains(&id_of(r)));
    want.extend(deletions(&after, &deleted));
    run.assert_rows("next incremental", &next, want);

    // 5. Resume from the middle STATE of read 2: every row from its cursor on, as it is now.
    let resumed = run.read("incremental", Some(&mid)).await;
    let mut want = queried(&after, |r| stamp(r) >= mid_cursor);
    want.extend(deletions(&after, &deleted));
    run.assert_rows("resume from the middle STATE", &resumed, want);

    // Parquet: the resumed run removed what read 2 published after that STATE, so read 2's
    // folder keeps exactly the rows below its cursor (and the resume holds the rest).
    if format == Format::Parquet {
        let kept = run.parquet_rows(&first.syncs);
        assert_same(&run, "read 2's files after the resume", &kept, below_mid);
    }

    // The API really differed: Bulk jobs and no blob fetch, or no Bulk job and blob fetches.
    let stats = run.e.org.stats().await;
    let count = |kind: &str| stats["by_kind"][kind].as_u64().unwrap_or(0);
    let (bulk, retrieve) = (count("bulk_query"), count("retrieve"));
    match api {
        Api::Bulk => assert!(bulk > 0 && retrieve == 0, "{run}: {stats}"),
        Api::Rest => assert!(bulk == 0 && retrieve > 0, "{run}: {stats}"),
    }
}

/// One combination: a simulator with the same seeded org, and a config for the API and output.
struct Run {
    api: Api,
    format: Format,
    e: Env,
    export: PathBuf,
    /// `Body` of each Attachment as the simulator stores it (base64).
    stored_bodies: BTreeMap<String, Value>,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} × {:?}", self.api, self.format)
    }
}

/// What one read delivered.
struct Delivery {
    /// The rows, in the order they came (Parquet: file by file).
    rows: Vec<Value>,
    /// The protocol messages (stdout, or stderr with Arrow IPC on stdout).
    msgs: Vec<Value>,
    /// Parquet: the sync folders this read created.
    syncs: BTreeSet<PathBuf>,
}

impl Delivery {
    /// The `state` of every STATE message.
    fn states(&self) -> Vec<Value> {
        self.msgs
            .iter()
            .filter(|m| m["type"] == "STATE")
            .map(|m| m["state"].clone())
            .collect()
    }

    /// The rows delivered before `state` when the order is observable: RECORDs and STATEs share
    /// stdout. (Parquet files and an Arrow IPC stream travel apart from the STATEs; Parquet is
    /// checked through the files a resume keeps.)
    fn before_state(&self, state: &Value) -> Option<&[Value]> {
        let at = self
            .msgs
            .iter()
            .position(|m| m["type"] == "STATE" && &m["state"] == state)?;
        if !self.msgs.iter().any(|m| m["type"] == "RECORD") {
            return None;
        }
        let rows = self.msgs[..at]
            .iter()
            .filter(|m| m["type"] == "RECORD")
            .count();
        Some(&self.rows[..rows])
    }
}

impl Run {
    /// A fresh simulator (scale 1000, the common seed) and a config for the combination.
    async fn start(api: Api, format: Format) -> Run {
        let e = env(
            1000,
            json!({
                "cursor_lag": "PT0S",
                "lookback_window": "PT0S",
                "stream_slice_step": "P365D",
                "force_use_bulk_api": api == Api::Bulk,
            }),
        )
        .await;
        let export = e.dir.path().join("export");
        let mut cfg: Value = serde_json::from_slice(&std::fs::read(&e.config).unwrap()).unwrap();
        cfg["output"] = match format {
            Format::Records => json!({"format": "records"}),
            Format::Parquet => {
                json!({"format": "parquet", "path": export.to_str().unwrap(), "file_rows": 1})
            }
            Format::Arrow => json!({"format": "arrow"}),
        };
        write_json(e.dir.path(), "config.json", &cfg);
        let mut stored_bodies = BTreeMap::new();
        for r in org_rows(&e.org, &format!("SELECT Id FROM {STREAM}")).await {
            let id = r["Id"].as_str().unwrap().to_string();
            let stored: Value = e
                .org
                .http
                .get(e.org.url(&format!("/__sim/record/{STREAM}/{id}")))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            stored_bodies.insert(id, stored["Body"].clone());
        }
        Run {
            api,
            format,
            e,
            export,
            stored_bodies,
        }
    }

    /// The org's rows now, by Id, as compared.
    async fn org(&self) -> BTreeMap<String, Row> {
        let fields: Vec<&str> = FIELDS.into_iter().filter(|f| *f != "Body").collect();
        let soql = format!("SELECT {} FROM {STREAM}", fields.join(", "));
        org_rows(&self.e.org, &soql)
            .await
            .iter()
            .map(|r| (r["Id"].as_str().unwrap().to_string(), canon(r)))
            .collect()
    }

    /// Touches or deletes these rows through the simulator's control API; returns their Ids.
    async fn control(&self, verb: &str, ids: &[&String], stamp: &str) -> BTreeSet<String> {
        let answer = self
            .e
            .org
            .control(verb, &json!({"object": STREAM, "ids": ids, "stamp": stamp}))
            .await;
        let got: BTreeSet<String> = answer["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_str().unwrap().to_string())
            .collect();
        assert_eq!(got, ids.iter().map(|s| s.to_string()).collect());
        got
    }

    /// Writes `[state]` as a state file.
    fn state_file(&self, name: &str, state: &Value) -> PathBuf {
        write_json(self.e.dir.path(), name, &json!([state]))
    }

    /// Runs `sfetl read` in `mode` and collects what it delivered, once the org's clock has
    /// left the second of its last change (stamps are whole seconds; the changes of step 3 are
    /// stamped at the cursor, which can be the current second).
    async fn read(&self, mode: &str, state: Option<&Path>) -> Delivery {
        let cat = catalog(
            self.e.dir.path(),
            &format!("{mode}.json"),
            &[(STREAM, &FIELDS, mode)],
        );
        let before = self.sync_folders();
        let out = read_settled(&self.e.org, &self.e.config, &cat, state).await;
        let syncs: BTreeSet<PathBuf> = self.sync_folders().difference(&before).cloned().collect();
        match self.format {
            Format::Records => {
                let msgs = messages(&out);
                let rows = records(&msgs, STREAM);
                Delivery { rows, msgs, syncs }
            }
            Format::Parquet => {
                let msgs = messages(&out);
                assert!(msgs.iter().all(|m| m["type"] != "RECORD"), "{self}");
                assert_eq!(syncs.len(), 1, "{self}: one sync folder per read");
                let rows = self.parquet_rows(&syncs);
                Delivery { rows, msgs, syncs }
            }
            Format::Arrow => {
                let msgs: Vec<Value> = String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .filter_map(|l| serde_json::from_str(l).ok())
                    .collect();
                let reader = arrow::ipc::reader::StreamReader::try_new(
                    std::io::Cursor::new(out.stdout),
                    None,
                )
                .unwrap_or_else(|e| panic!("{self}: stdout is an Arrow IPC stream: {e}"));
                let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
                Delivery {
                    rows: batch_rows(&batches),
                    msgs,
                    syncs,
                }
            }
        }
    }

    /// The sync folders of the stream's Parquet export.
    fn sync_folders(&self) -> BTreeSet<PathBuf> {
        match std::fs::read_dir(self.export.join(STREAM)) {
            Ok(dir) => dir.map(|d| d.unwrap().path()).collect(),
            Err(_) => BTreeSet::new(),
        }
    }

    /// Every row of the Parquet files in these sync folders, read back with the parquet crate.
    fn parquet_rows(&self, syncs: &BTreeSet<PathBuf>) -> Vec<Value> {
        let mut batches = Vec::new();
        for sync in syncs {
            let mut files: Vec<PathBuf> = std::fs::read_dir(sync)
                .unwrap()
                .map(|f| f.unwrap().path())
                .collect();
            files.sort();
            // The data files; the sync's marker (`_sfetl_sync.json`) is not data.
            for path in files
                .into_iter()
                .filter(|p| p.extension().unwrap() == "parquet")
            {
                let file = std::fs::File::open(&path).unwrap();
                let reader =
                    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                        .unwrap()
                        .build()
                        .unwrap();
                batches.extend(reader.map(|b| b.unwrap()));
            }
        }
        batch_rows(&batches)
    }

    /// Asserts a read delivered exactly `want` (as a multiset), with `Body` as stored when
    /// reading through REST (null for rows in the recycle bin, whose content Salesforce no
    /// longer serves) and absent through Bulk.
    fn assert_rows(&self, step: &str, got: &Delivery, want: Vec<Row>) {
        assert_same(self, step, &got.rows, want);
        for r in &got.rows {
            let id = r["Id"].as_str().unwrap();
            let body = r.get("Body").cloned().unwrap_or(Value::Null);
            match self.api {
                Api::Bulk => assert!(r.get("Body").is_none(), "{self} {step}: {r}"),
                Api::Rest if r["IsDeleted"] == json!(true) => {
                    assert_eq!(body, Value::Null, "{self} {step}: Body of deleted {id}")
                }
                Api::Rest => assert_eq!(
                    empty_as_null(&body),
                    empty_as_null(&self.stored_bodies[id]),
                    "{self} {step}: Body of {id}"
                ),
            }
        }
    }
}

/// The org's rows that `keep` selects, one each.
fn queried(org: &BTreeMap<String, Row>, keep: impl Fn(&Row) -> bool) -> Vec<Row> {
    org.values().filter(|r| keep(r)).cloned().collect()
}

/// The rows the REST `deleted` endpoint adds for deleted Ids: the Id, `IsDeleted`, and the
/// deletion time as cursor and in `_sfetl_deleted_at`.
fn deletions(org: &BTreeMap<String, Row>, deleted: &BTreeSet<String>) -> Vec<Row> {
    deleted
        .iter()
        .map(|id| {
            let at = org[id]["SystemModstamp"].clone();
            Row::from([
                ("Id".to_string(), json!(id)),
                ("IsDeleted".to_string(), json!(true)),
                ("SystemModstamp".to_string(), at.clone()),
                ("_sfetl_deleted_at".to_string(), at),
            ])
        })
        .collect()
}

/// Asserts `got` holds exactly the rows of `want`, each as many times; names what differs.
fn assert_same(run: &Run, step: &str, got: &[Value], want: Vec<Row>) {
    let mut count: BTreeMap<String, i64> = BTreeMap::new();
    for r in got {
        *count
            .entry(serde_json::to_string(&canon(r)).unwrap())
            .or_default() += 1;
    }
    for r in &want {
        *count.entry(serde_json::to_string(r).unwrap()).or_default() -= 1;
    }
    let extra: Vec<&String> = count
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(r, _)| r)
        .collect();
    let missing: Vec<&String> = count
        .iter()
        .filter(|(_, n)| **n < 0)
        .map(|(r, _)| r)
        .collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "{run} {step}: {} rows delivered, {} expected\nunexpected: {extra:#?}\nmissing: {missing:#?}",
        got.len(),
        want.len()
    );
}

/// A row as compared: `Body` (checked on its own) and the metadata columns
/// (`_sfetl_sync_id`, `_sfetl_extracted_at`, REST's `attributes`) left out; null and "" alike,
/// since Bulk CSV cannot tell them apart; datetimes as epoch milliseconds.
fn canon(v: &Value) -> Row {
    v.as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.as_str() != "attributes" && k.as_str() != "Body")
        .filter(|(k, _)| !k.starts_with("_sfetl_") || k.as_str() == "_sfetl_deleted_at")
        .filter(|(_, v)| !empty_as_null(v).is_null())
        .map(|(k, v)| {
            let v = match (DATETIMES.contains(&k.as_str()), v.as_str()) {
                (true, Some(s)) => json!(millis(s)),
                _ => v.clone(),
            };
            (k.clone(), v)
        })
        .collect()
}

fn empty_as_null(v: &Value) -> Value {
    match v.as_str() {
        Some("") => Value::Null,
        _ => v.clone(),
    }
}

fn id_of(r: &Row) -> String {
    r["Id"].as_str().unwrap().to_string()
}

/// A row's SystemModstamp in epoch milliseconds.
fn stamp(r: &Row) -> i64 {
    r["SystemModstamp"].as_i64().unwrap()
}

/// Epoch milliseconds of a datetime in any of the forms sfetl and Salesforce write.
fn millis(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .or_else(|_| chrono::DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .unwrap_or_else(|e| panic!("datetime {s}: {e}"))
        .timestamp_millis()
}

/// Arrow batches as JSON rows (arrow's JSON writer; `Body` as base64, like RECORDs).
fn batch_rows(batches: &[RecordBatch]) -> Vec<Value> {
    let mut rows = Vec::new();
    for b in batches.iter().filter(|b| b.num_rows() > 0) {
        let mut w = arrow::json::ArrayWriter::new(Vec::new());
        w.write(b).unwrap();
        w.finish().unwrap();
        let mut part: Vec<Value> = serde_json::from_slice(&w.into_inner()).unwrap();
        if let Some(body) = b.column_by_name("Body") {
            for (i, r) in part.iter_mut().enumerate() {
                r["Body"] = base64_cell(body, i);
            }
        }
        rows.extend(part);
    }
    rows
}

/// A base64 field's cell (Arrow Binary) as its base64 text.
fn base64_cell(col: &ArrayRef, i: usize) -> Value {
    if col.is_null(i) {
        return Value::Null;
    }
    match col.data_type() {
        DataType::Binary => {
            json!(base64::engine::general_purpose::STANDARD.encode(col.as_binary::<i32>().value(i)))
        }
        t => panic!("Body as {t}"),
    }
}
