//! Delta Lake output against the simulator, on local disk (tests/python/test_delta.py reads the
//! same tables with delta-rs's Python bindings, on local disk and S3): the table equals the org
//! after a full refresh, changes, deletions and an incremental read that resumes from the
//! table's own STATE; a replayed STATE is superseded by the table's; new fields evolve the
//! schema; a type change and another stream's table are refused by name; history rows; `sfetl
//! query` gives the same answers over Delta as over Parquet; an unwritable path is named.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::common::*;

const FIELDS: &[&str] = &[
    "Id",
    "Name",
    "IsDeleted",
    "AnnualRevenue",
    "NumberOfEmployees",
    "SystemModstamp",
];

fn cfg() -> Value {
    json!({"start_date": "2000-01-01", "cursor_lag": "PT0S", "stream_slice_step": "P3650D"})
}

/// A copy of the env's config writing Delta tables under `export`.
fn delta_config(e: &Env, name: &str, export: &Path, history: bool) -> PathBuf {
    let mut c: Value = serde_json::from_slice(&std::fs::read(&e.config).unwrap()).unwrap();
    c["output"] = json!({"format": "delta", "path": export.to_str().unwrap(), "history": history});
    write_json(e.dir.path(), name, &c)
}

/// A catalog of Account's [`FIELDS`] in `mode`.
fn account_catalog(e: &Env, mode: &str) -> PathBuf {
    catalog(e.dir.path(), "cat.json", &[("Account", FIELDS, mode)])
}

/// `sfetl read` with `config` and a one-stream catalog of `fields` in `mode`, once the org has
/// left the second of its last change (stamps are whole seconds); its messages.
async fn read_delta(e: &Env, config: &Path, fields: &[&str], mode: &str) -> Vec<Value> {
    let cat = catalog(e.dir.path(), "cat.json", &[("Account", fields, mode)]);
    messages(&read_settled(&e.org, config, &cat, None).await)
}

/// CSV lines of `sql` over the export at `path`.
async fn query(path: &Path, sql: &str) -> Vec<String> {
    let out = run(&[
        "query",
        "--path",
        path.to_str().unwrap(),
        "--format",
        "csv",
        sql,
    ])
    .await;
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The live Accounts of the org by REST: Id → (Name, SystemModstamp in µs).
async fn org_accounts(org: &Org) -> BTreeMap<String, (String, i64)> {
    let rows = org_rows(
        org,
        "SELECT Id, Name, IsDeleted, SystemModstamp FROM Account",
    )
    .await;
    rows.iter()
        .filter(|r| r["IsDeleted"] == false)
        .map(|r| {
            let at = sfetl::state::parse_datetime(r["SystemModstamp"].as_str().unwrap()).unwrap();
            (
                r["Id"].as_str().unwrap().to_string(),
                (
                    r["Name"].as_str().unwrap_or_default().to_string(),
                    at.timestamp_micros(),
                ),
            )
        })
        .collect()
}

/// The Accounts of the Delta table by `sfetl query`: Id → (Name, SystemModstamp in µs).
async fn table_accounts(export: &Path) -> BTreeMap<String, (String, i64)> {
    let lines = query(
        export,
        "SELECT \"Id\", \"Name\", CAST(\"SystemModstamp\" AS BIGINT) AS at FROM \"Account\" ORDER BY \"Id\"",
    )
    .await;
    lines[1..]
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let at = f[f.len() - 1].parse().unwrap();
            let name = f[1..f.len() - 1].join(",").trim_matches('"').to_string();
            (f[0].to_string(), (name, at))
        })
        .collect()
}

/// Renames Account `id` to `Renamed Co` through the REST API: its Contacts'
/// `Account_Name__c` formula follows, their cursors do not move.
async fn rename_account(org: &Org, id: &str) {
    let r = org
        .send_json(
            reqwest::Method::PATCH,
            &format!("sobjects/Account/{id}"),
            &json!({"Name": "Renamed Co"}),
        )
        .await;
    assert_eq!(r.status(), 204);
}

fn ids(v: &Value) -> BTreeSet<String> {
    v["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap().to_string())
        .collect()
}

fn states(msgs: &[Value]) -> Vec<Value> {
    msgs.iter()
        .filter(|m| m["type"] == "STATE")
        .map(|m| m["state"]["stream"]["stream_state"].clone())
        .collect()
}

fn rows_read(msgs: &[Value]) -> f64 {
    msgs.iter()
        .filter(|m| m["type"] == "STATE")
        .map(|m| m["state"]["sourceStats"]["recordCount"].as_f64().unwrap())
        .sum()
}

#[tokio::test]
async fn full_refresh_changes_and_an_incremental_read_leave_the_table_equal_to_the_org() {
    let e = env(120, cfg()).await;
    let export = e.dir.path().join("export");
    let config = delta_config(&e, "delta.json", &export, false);
    let first = read_delta(&e, &config, FIELDS, "full_refresh").await;
    assert!(!first.iter().any(|m| m["type"] == "RECORD"));
    assert_eq!(table_accounts(&export).await, org_accounts(&e.org).await);
    let touched = ids(&e
        .org
        .control("touch", &json!({"object": "Account", "count": 37}))
        .await);
    let deleted = ids(&e
        .org
        .control("delete", &json!({"object": "Account", "count": 5}))
        .await);
    assert_eq!((touched.len(), deleted.len()), (37, 5));

    let second = read_delta(&e, &config, FIELDS, "incremental").await;
    assert!(
        logs(&second).iter().any(|l| l.starts_with(
            "Account: no state given; resuming from the STATE committed in its Delta table"
        )),
        "{:?}",
        logs(&second)
    );
    let table = table_accounts(&export).await;
    let org = org_accounts(&e.org).await;
    assert_eq!(table.len(), 120 - 5);
    assert!(deleted.iter().all(|id| !table.contains_key(id)));
    assert_eq!(table, org);
    // Only the changed rows were read again: 37 touched, 5 deleted (Bulk and the delete log;
    // a row may be both).
    let n = rows_read(&second);
    assert!((37.0..=47.0).contains(&n), "{n}");
    let last = states(&second).pop().unwrap();
    assert_eq!(last["table"]["app_id"], "Account");
}

#[tokio::test]
async fn a_replayed_state_is_superseded_by_the_table_and_changes_nothing() {
    let e = env(40, cfg()).await;
    let export = e.dir.path().join("export");
    let config = delta_config(&e, "delta.json", &export, false);
    let first = read_delta(&e, &config, FIELDS, "incremental").await;
    assert_eq!(rows_read(&first), 40.0);
    // The first run's STATE as an orchestrator that lost every later one would hold it: commit
    // 1 of the table, and (to tell the two apart) a cursor from before any row.
    let mut old = states(&first).pop().unwrap();
    assert_eq!(old["table"], json!({"app_id": "Account", "txn": 1}));
    old["cursor"] = json!("2000-01-01T00:00:00.000Z");
    let old = json!([{"type": "STREAM", "stream": {"stream_descriptor": {"name": "Account"},
        "stream_state": old}}]);
    let old_state = write_json(e.dir.path(), "old.json", &old);
    e.org
        .control("touch", &json!({"object": "Account", "count": 4}))
        .await;
    let second = read_delta(&e, &config, FIELDS, "incremental").await;
    assert_eq!(rows_read(&second), 4.0);
    let before = table_accounts(&export).await;

    // The orchestrator passes the first run's STATE again: the table already holds what came
    // after it, so the read starts from the table's STATE, not from 2000: at most the rows
    // changed since the table's cursor (which the delete log keeps to whole minutes) again.
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("Account", FIELDS, "incremental")],
    );
    let replay = messages(&read_files(&config, &cat, Some(&old_state)).await);
    assert!(
        logs(&replay)
            .iter()
            .any(|l| l.contains("but the Delta table already holds commit")),
        "{:?}",
        logs(&replay)
    );
    assert!(rows_read(&replay) <= 4.0, "{}", rows_read(&replay));
    assert_eq!(table_accounts(&export).await, before);
    assert_eq!(before, org_accounts(&e.org).await);
}

#[tokio::test]
async fn new_fields_evolve_the_schema_and_a_type_change_is_refused_by_name() {
    let e = env(30, cfg()).await;
    let export = e.dir.path().join("export");
    let config = delta_config(&e, "delta.json", &export, false);
    read_delta(
        &e,
        &config,
        &["Id", "Name", "SystemModstamp"],
        "incremental",
    )
    .await;
    let touched = ids(&e
        .org
        .control("touch", &json!({"object": "Account", "count": 3}))
        .await);
    read_delta(
        &e,
        &config,
        &["Id", "Name", "SystemModstamp", "NumberOfEmployees"],
        "incremental",
    )
    .await;
    let lines = query(
        &export,
        "SELECT \"Id\", \"NumberOfEmployees\" FROM \"Account\" ORDER BY \"Id\"",
    )
    .await;
    let org: BTreeMap<String, String> =
        org_rows(&e.org, "SELECT Id, NumberOfEmployees FROM Account")
            .await
            .iter()
            .map(|r| {
                let n = r["NumberOfEmployees"].as_i64().map(|n| n.to_string());
                (r["Id"].as_str().unwrap().to_string(), n.unwrap_or_default())
            })
            .collect();
    assert_eq!(lines.len(), 31);
    for l in &lines[1..] {
        let (id, n) = l.split_once(',').unwrap();
        // Every row has it: the read of a field the cursor's rows were read without starts
        // again from the beginning (`new_fields: backfill`), touched rows or not.
        assert_eq!(
            n,
            org[id].as_str(),
            "{id} (touched: {})",
            touched.contains(id)
        );
    }

    // A table whose Name is a number: an incremental read of text names is refused.
    let other = e.dir.path().join("other");
    std::fs::create_dir_all(other.join("Account")).unwrap();
    write_typed_table(&other.join("Account")).await;
    let config = delta_config(&e, "other.json", &other, false);
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("Account", &["Id", "Name", "SystemModstamp"], "incremental")],
    );
    let out = read_out(&config, &cat).await;
    assert_eq!(out.status.code(), Some(2));
    assert_config_error(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("holds column Name as Int64, but the stream now reads it as Utf8: an incremental read cannot change a column's type; run a full refresh"),
        "{err}"
    );
}

/// A Delta table with `Id` text and `Name` a number, written with deltalake directly.
async fn write_typed_table(dir: &Path) {
    use deltalake::kernel::{DataType, PrimitiveType, StructField};
    let url = url::Url::from_directory_path(dir).unwrap();
    deltalake::DeltaTableBuilder::from_url(url)
        .unwrap()
        .build()
        .unwrap()
        .create()
        .with_columns([
            StructField::new("Id", DataType::Primitive(PrimitiveType::String), true),
            StructField::new("Name", DataType::Primitive(PrimitiveType::Long), true),
        ])
        .await
        .unwrap();
}

#[tokio::test]
async fn a_table_written_by_another_stream_is_refused_naming_both() {
    let e = env(10, cfg()).await;
    let export = e.dir.path().join("export");
    let config = delta_config(&e, "delta.json", &export, false);
    read_delta(
        &e,
        &config,
        &["Id", "Name", "SystemModstamp"],
        "incremental",
    )
    .await;
    // Contact's table is a copy of Account's.
    copy_dir(&export.join("Account"), &export.join("Contact"));
    let cat = catalog(
        e.dir.path(),
        "c.json",
        &[(
            "Contact",
            &["Id", "LastName", "SystemModstamp"],
            "incremental",
        )],
    );
    let out = read_out(&config, &cat).await;
    assert_eq!(out.status.code(), Some(2));
    assert_config_error(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    let table = export.join("Contact");
    assert!(
        err.contains(&format!(
            "the Delta table at {} was written by stream Account with primary key [\"Id\"], not by stream Contact with primary key [\"Id\"]",
            table.canonicalize().unwrap().display()
        )),
        "{err}"
    );
}

/// The stream's TRACE ERROR is a `config_error`: the user must change something.
fn assert_config_error(out: &std::process::Output) {
    let traces: Vec<Value> = messages(out)
        .into_iter()
        .filter(|m| m["type"] == "TRACE" && m["trace"]["type"] == "ERROR")
        .collect();
    assert_eq!(traces.len(), 1, "{traces:?}");
    assert_eq!(traces[0]["trace"]["error"]["failure_type"], "config_error");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

#[tokio::test]
async fn history_keeps_every_version_with_validity_columns() {
    let e = env(20, cfg()).await;
    let export = e.dir.path().join("export");
    let config = delta_config(&e, "delta.json", &export, true);
    read_delta(&e, &config, FIELDS, "incremental").await;
    let touched = ids(&e
        .org
        .control("touch", &json!({"object": "Account", "count": 3}))
        .await);
    let live: Vec<String> = org_accounts(&e.org)
        .await
        .into_keys()
        .filter(|i| !touched.contains(i))
        .collect();
    let deleted = ids(&e
        .org
        .control(
            "delete",
            &json!({"object": "Account", "ids": [live[0], live[1]]}),
        )
        .await);
    read_delta(&e, &config, FIELDS, "incremental").await;
    // Running again with nothing new adds no version.
    read_delta(&e, &config, FIELDS, "incremental").await;
    let lines = query(
        &export,
        "SELECT \"Id\", count(*) AS versions, sum(CASE WHEN \"_sfetl_is_current\" THEN 1 ELSE 0 END) AS current FROM \"Account_history\" GROUP BY \"Id\" ORDER BY \"Id\"",
    )
    .await;
    let mut by_id: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    for l in &lines[1..] {
        let f: Vec<&str> = l.split(',').collect();
        by_id.insert(f[0].into(), (f[1].parse().unwrap(), f[2].parse().unwrap()));
    }
    assert_eq!(by_id.len(), 20);
    for (id, (versions, current)) in &by_id {
        let want = if touched.contains(id) {
            (2, 1)
        } else if deleted.contains(id) {
            (1, 0)
        } else {
            (1, 1)
        };
        assert_eq!((*versions, *current), want, "{id}");
    }
    // A superseded version ends 1 ms before its successor starts; current ones never end.
    let gaps = query(
        &export,
        "SELECT count(*) FROM \"Account_history\" o JOIN \"Account_history\" n ON o.\"Id\" = n.\"Id\" AND n.\"_sfetl_is_current\" AND NOT o.\"_sfetl_is_current\" WHERE CAST(n.\"_sfetl_valid_from\" AS BIGINT) - CAST(o.\"_sfetl_valid_to\" AS BIGINT) = 1000",
    )
    .await;
    assert_eq!(gaps[1], "3");
    let open = query(
        &export,
        "SELECT count(*) FROM \"Account_history\" WHERE \"_sfetl_is_current\" AND CAST(\"_sfetl_valid_to\" AS BIGINT) = 253402300799999000",
    )
    .await;
    assert_eq!(open[1], "18");
}

#[tokio::test]
async fn sfetl_query_answers_the_same_over_delta_and_parquet() {
    let e = env(150, cfg()).await;
    let delta = e.dir.path().join("delta");
    let parquet = e.dir.path().join("parquet");
    let fields = &[
        "Id",
        "Name",
        "IsDeleted",
        "AnnualRevenue",
        "NumberOfEmployees",
        "BillingCountry",
        "SystemModstamp",
    ];
    let dconf = delta_config(&e, "delta.json", &delta, false);
    let pconf = parquet_config(&e, "parquet.json", &parquet);
    read_delta(&e, &dconf, fields, "incremental").await;
    let pfirst = read_delta(&e, &pconf, fields, "incremental").await;
    e.org
        .control("touch", &json!({"object": "Account", "count": 11}))
        .await;
    e.org
        .control("delete", &json!({"object": "Account", "count": 6}))
        .await;
    // Delta resumes from its table; Parquet from the STATE the orchestrator kept.
    read_delta(&e, &dconf, fields, "incremental").await;
    let state = json!([{"type": "STREAM", "stream": {"stream_descriptor": {"name": "Account"},
        "stream_state": states(&pfirst).pop().unwrap()}}]);
    let state = write_json(e.dir.path(), "pstate.json", &state);
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("Account", fields, "incremental")],
    );
    read_files(&pconf, &cat, Some(&state)).await;
    for sql in [
        "SELECT count(*) AS n, count(DISTINCT \"Id\") AS ids FROM \"Account\"",
        "SELECT \"BillingCountry\", count(*) AS n, sum(\"AnnualRevenue\") AS revenue, max(\"NumberOfEmployees\") AS staff FROM \"Account\" GROUP BY \"BillingCountry\" ORDER BY \"BillingCountry\"",
        "SELECT \"Id\", \"Name\", \"SystemModstamp\" FROM \"account\" ORDER BY \"SystemModstamp\" DESC, \"Id\" LIMIT 15",
    ] {
        assert_eq!(
            query(&delta, sql).await,
            query(&parquet, sql).await,
            "{sql}"
        );
    }
}

#[tokio::test]
async fn an_unwritable_table_path_fails_the_stream_naming_it() {
    let e = env(5, cfg()).await;
    let export = e.dir.path().join("export");
    std::fs::create_dir_all(&export).unwrap();
    // A file where the table's folder would go.
    std::fs::write(export.join("Account"), b"not a folder").unwrap();
    let config = delta_config(&e, "delta.json", &export, false);
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("Account", &["Id", "Name", "SystemModstamp"], "full_refresh")],
    );
    let out = read_out(&config, &cat).await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let path = export.canonicalize().unwrap().join("Account");
    assert!(
        err.contains(&format!("stream Account: Delta table {}", path.display())),
        "{err}"
    );
    assert_eq!(
        std::fs::read(export.join("Account")).unwrap(),
        b"not a folder"
    );
}

#[tokio::test]
async fn a_full_disk_fails_the_stream_naming_the_table_and_the_old_table_stays() {
    // 300 Accounts; 37 change, and the second full refresh runs out of room.
    let e = env(300, cfg()).await;
    let export = e.dir.path().join("export");
    let config = delta_config(&e, "delta.json", &export, false);
    read_delta(&e, &config, FIELDS, "full_refresh").await;
    let before = table_accounts(&export).await;
    assert_eq!(before, org_accounts(&e.org).await);
    e.org
        .control("touch", &json!({"object": "Account", "count": 37}))
        .await;
    assert_ne!(before, org_accounts(&e.org).await);
    let cat = account_catalog(&e, "full_refresh");
    // The shell ignores SIGXFSZ (the process inherits that) and caps files at 8 blocks: a
    // write past that fails with EFBIG, as a write to a full disk fails with ENOSPC.
    let out = tokio::process::Command::new("sh")
        .args(["-c", "trap '' XFSZ; ulimit -f 8; exec \"$0\" \"$@\""])
        .arg(bin())
        .args(["read", "--config", config.to_str().unwrap()])
        .args(["--catalog", cat.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .env_remove("SFETL_LOG")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let path = export.canonicalize().unwrap().join("Account");
    assert!(
        err.contains(&format!("stream Account: Delta table {}", path.display()))
            && err.contains("File too large"),
        "{err}"
    );
    // Nothing of the failed refresh is visible: the table is the one the first read wrote.
    assert_eq!(table_accounts(&export).await, before);
}

#[tokio::test]
async fn kill_9_during_commits_leaves_a_consistent_table_and_a_rerun_completes_it() {
    // 1,500 Contacts in yearly windows and pages of 200: a commit every page or so.
    let mut c = cfg();
    c["stream_slice_step"] = json!("P365D");
    c["bulk_max_records"] = json!(200);
    let e = env(500, c).await;
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("Contact", &["Id", "Email", "SystemModstamp"], "incremental")],
    );
    let want: BTreeSet<String> = org_rows(&e.org, "SELECT Id FROM Contact")
        .await
        .iter()
        .map(|r| r["Id"].as_str().unwrap().to_string())
        .collect();
    for seed in [3u64, 11, 29] {
        let export = e.dir.path().join(format!("export-{seed}"));
        let config = delta_config(&e, &format!("cfg-{seed}.json"), &export, false);
        // Killed as soon as a seeded STATE is printed: the next page's MERGE is under way.
        let kill_after = 1 + (seed * 7919) as usize % 6;
        let cmd = read_cmd(&config, &cat);
        let (seen, _) = kill_at(cmd, kill_after, |m| m["type"] == "STATE").await;
        assert_eq!(seen, kill_after, "seed {seed}: killed mid-way");
        org_finishes_running_jobs(&e.org).await;
        // The table is at its last commit: readable, every Id once.
        let partial = query(
            &export,
            "SELECT count(*) AS n, count(DISTINCT \"Id\") AS ids FROM \"Contact\"",
        )
        .await;
        let f: Vec<&str> = partial[1].split(',').collect();
        assert_eq!(f[0], f[1], "seed {seed}: {partial:?}");
        assert!(
            f[0].parse::<usize>().unwrap() < want.len(),
            "seed {seed}: {partial:?}"
        );
        // Run again without state: it resumes from the table and completes it.
        read_files(&config, &cat, None).await;
        let lines = query(&export, "SELECT \"Id\" FROM \"Contact\" ORDER BY \"Id\"").await;
        let got: BTreeSet<String> = lines[1..].iter().cloned().collect();
        assert_eq!(
            lines.len() - 1,
            want.len(),
            "seed {seed}: every Id exactly once"
        );
        assert_eq!(got, want, "seed {seed}");
    }
}

#[tokio::test]
async fn compact_rewrites_small_files_keeping_rows_and_state() {
    // A first read in 4 pages of 15 rows: 4 commits, 4 small files.
    let mut c = cfg();
    c["bulk_max_records"] = json!(15);
    let e = env(60, c).await;
    let export = e.dir.path().join("export");
    let config = delta_config(&e, "delta.json", &export, false);
    read_delta(&e, &config, FIELDS, "incremental").await;
    let files = |dir: &Path| {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|f| {
                f.as_ref()
                    .unwrap()
                    .file_name()
                    .to_str()
                    .unwrap()
                    .ends_with(".parquet")
            })
            .count()
    };
    let before = table_accounts(&export).await;
    let out = run(&["compact", "--config", config.to_str().unwrap()]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("Account: 4 files rewritten as 1 (version "),
        "{text}"
    );
    assert_eq!(table_accounts(&export).await, before);
    assert!(
        files(&export.join("Account")) >= 5,
        "old files stay until a vacuum"
    );
    // The STATE is still found in the newest commits: the next read resumes from it.
    let next = read_delta(&e, &config, FIELDS, "incremental").await;
    assert!(
        logs(&next)
            .iter()
            .any(|l| l.starts_with("Account: no state given; resuming")),
        "{:?}",
        logs(&next)
    );
    let again = run(&[
        "compact",
        "--config",
        config.to_str().unwrap(),
        "--stream",
        "Account",
    ])
    .await;
    assert!(
        String::from_utf8(again.stdout)
            .unwrap()
            .starts_with("Account: nothing to compact")
    );
    // An output.path that is not there holds nothing: refused, and not created.
    let gone = e.dir.path().join("no-such-export");
    let missing = delta_config(&e, "missing.json", &gone, false);
    let out = run(&["compact", "--config", missing.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is not a folder: there are no Delta tables to compact"),
        "{err}"
    );
    assert!(!gone.exists());
}

/// (rows, the Name column's encodings without RLE, its codec) of each data file in `dir`
/// (files a commit removed included, until a vacuum), sorted.
fn name_columns(dir: &Path) -> Vec<(i64, String, String)> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|x| x != "parquet") {
            continue;
        }
        let reader = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
        let meta = reader.metadata();
        let name = meta
            .row_group(0)
            .columns()
            .iter()
            .find(|c| c.column_path().string() == "Name")
            .unwrap();
        let encodings: Vec<String> = name
            .encodings()
            .map(|e| format!("{e:?}"))
            .filter(|e| e != "RLE")
            .collect();
        files.push((
            meta.file_metadata().num_rows(),
            encodings.join(","),
            format!("{:?}", name.compression()),
        ));
    }
    files.sort();
    files
}

#[tokio::test]
async fn history_files_are_written_with_the_configs_codec_and_judged_columns() {
    let e = env(3000, cfg()).await;
    let export = e.dir.path().join("export");
    let config = delta_config(&e, "delta.json", &export, true);
    read_delta(&e, &config, FIELDS, "full_refresh").await;
    let history = export.join("Account_history");
    // (encodings, codec) -> rows, over every file of the history table.
    let layout = || {
        let mut by: BTreeMap<(String, String), i64> = BTreeMap::new();
        for (rows, encodings, codec) in name_columns(&history) {
            *by.entry((encodings, codec)).or_default() += rows;
        }
        by
    };
    let zstd = "ZSTD(ZstdLevel(1))".to_string();
    // The full refresh's versions, judged from the new table's rows: distinct names without a
    // dictionary, zstd as the config says (DataFusion's defaults wrote snappy and dictionaries).
    assert_eq!(
        layout(),
        BTreeMap::from([(("PLAIN".to_string(), zstd.clone()), 3000)])
    );
    e.org
        .control("touch", &json!({"object": "Account", "count": 3}))
        .await;
    read_delta(&e, &config, FIELDS, "incremental").await;
    // A checkpoint of 3 rows is too few to judge: its MERGE writes as the table's largest file
    // was written. It rewrote the file holding the 3 versions it closed (3,000 versions) and
    // added the 3 new ones; the file it replaced stays until a vacuum.
    assert_eq!(
        layout(),
        BTreeMap::from([(("PLAIN".to_string(), zstd), 6003)])
    );
}

#[tokio::test]
async fn merged_and_compacted_files_write_distinct_names_without_a_dictionary() {
    // A first read in pages of 1,500 rows: appended commits of a file each; then compaction
    // rewrites them as one. Each Name is distinct, so a dictionary of them would only cost.
    let mut c = cfg();
    c["bulk_max_records"] = json!(1500);
    let e = env(3000, c).await;
    let export = e.dir.path().join("export");
    let config = delta_config(&e, "delta.json", &export, false);
    read_delta(&e, &config, FIELDS, "incremental").await;
    let file = |rows: i64, encodings: &str| {
        (
            rows,
            encodings.to_string(),
            "ZSTD(ZstdLevel(1))".to_string(),
        )
    };
    // Three appended commits: the first file, of 1,498 rows, is judged and written PLAIN; the
    // two after it are written with its settings, not judged again from their fewer rows.
    let merged = [file(596, "PLAIN"), file(906, "PLAIN"), file(1498, "PLAIN")];
    assert_eq!(name_columns(&export.join("Account")), merged);
    let out = run(&["compact", "--config", config.to_str().unwrap()]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Judged from the largest file's rows; the old files stay until a vacuum.
    let mut all = merged.to_vec();
    all.push(file(3000, "PLAIN"));
    all.sort();
    assert_eq!(name_columns(&export.join("Account")), all);
}

/// The data files the commits after `version` removed and added, from the table's log.
fn files_changed(table: &Path, after: u64) -> (Vec<String>, Vec<String>) {
    let (mut removed, mut added) = (Vec::new(), Vec::new());
    for entry in std::fs::read_dir(table.join("_delta_log")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let Some(v) = name
            .strip_suffix(".json")
            .and_then(|v| v.parse::<u64>().ok())
        else {
            continue;
        };
        if v <= after {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let action: Value = serde_json::from_str(line).unwrap();
            if let Some(p) = action["remove"]["path"].as_str() {
                removed.push(p.to_string());
            }
            if let Some(p) = action["add"]["path"].as_str() {
                added.push(p.to_string());
            }
        }
    }
    (removed, added)
}

fn newest_version(table: &Path) -> u64 {
    std::fs::read_dir(table.join("_delta_log"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_str().unwrap().to_string();
            name.strip_suffix(".json")?.parse().ok()
        })
        .max()
        .unwrap()
}

#[tokio::test]
async fn a_merge_rewrites_only_the_files_holding_changed_rows() {
    // A first read in 4 pages of 20 rows: 4 commits, each adding one file. Into a table
    // without rows it appends them as they come (no MERGE: held for one, 1M Accounts of all
    // fields peaked at 3.6 GB); the reads after it merge.
    let mut c = cfg();
    c["bulk_max_records"] = json!(20);
    let e = env(80, c).await;
    let export = e.dir.path().join("export");
    let table = export.join("Account");
    let config = delta_config(&e, "delta.json", &export, false);
    read_delta(&e, &config, FIELDS, "incremental").await;
    let (removed, added) = files_changed(&table, 0);
    assert_eq!(
        (removed.len(), added.len()),
        (0, 4),
        "{removed:?} {added:?}"
    );
    let ops = operations(&table);
    assert_eq!(ops[0], "CREATE TABLE");
    assert!(ops[1..].iter().all(|o| o == "WRITE"), "{ops:?}");
    // MERGEs write files of about 4 MB until data says what 65,536 rows take (deltalake's
    // default, 100 MB, would gather rewritten files into one).
    let created =
        std::fs::read_to_string(table.join("_delta_log/00000000000000000000.json")).unwrap();
    let meta = created
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|a| a["metaData"].is_object())
        .unwrap();
    assert_eq!(
        meta["metaData"]["configuration"]["delta.targetFileSize"],
        "4194304"
    );
    // One row changes: the file holding it is rewritten, the 3 others are not, although their
    // key statistics (rows came in cursor order, not Id order) may cover it.
    let org = org_accounts(&e.org).await;
    let id = org.keys().nth(41).unwrap();
    e.org
        .control("touch", &json!({"object": "Account", "ids": [id]}))
        .await;
    let v = newest_version(&table);
    read_delta(&e, &config, FIELDS, "incremental").await;
    assert_eq!(operations(&table).last().map(String::as_str), Some("MERGE"));
    let (removed, added) = files_changed(&table, v);
    assert_eq!(
        (removed.len(), added.len()),
        (1, 1),
        "{removed:?} {added:?}"
    );
    assert_eq!(table_accounts(&export).await, org_accounts(&e.org).await);
    // Nothing changes, but the next read starts at the last cursor (inclusive) and reads the
    // touched row again: the MERGE finds it unchanged and rewrites no file.
    let v = newest_version(&table);
    let again = read_delta(&e, &config, FIELDS, "incremental").await;
    let read: f64 = again
        .iter()
        .filter(|m| m["type"] == "STATE")
        .map(|m| m["state"]["sourceStats"]["recordCount"].as_f64().unwrap())
        .sum();
    assert_eq!(read, 1.0, "{again:?}");
    let (removed, added) = files_changed(&table, v);
    assert_eq!(
        (removed.len(), added.len()),
        (0, 0),
        "{removed:?} {added:?}"
    );
    assert_eq!(table_accounts(&export).await, org_accounts(&e.org).await);
}

#[tokio::test]
async fn slices_run_as_concurrent_processes_commit_once_each_and_a_rerun_changes_nothing() {
    let e = env(500, json!({})).await;
    let export = e.dir.path().join("export");
    // With the history table too: its MERGEs race as the stream table's do.
    let config = delta_config(&e, "delta.json", &export, true);
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[(
            "Contact",
            &["Id", "LastName", "SystemModstamp"],
            "incremental",
        )],
    );
    let slices = plan_slices(&config, &cat, &["--max-rows-per-slice", "300"]).await;
    assert!(slices.len() >= 4, "{slices:?}");
    let files: Vec<PathBuf> = slices
        .iter()
        .enumerate()
        .map(|(i, s)| write_json(e.dir.path(), &format!("slice-{i}.json"), s))
        .collect();
    let read = |f: &PathBuf| read_slice(&config, &cat, f);
    let mut commands: Vec<_> = files.iter().map(read).collect();
    let outputs = futures::future::join_all(commands.iter_mut().map(|c| c.output())).await;
    for out in outputs {
        let out = out.unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let want: BTreeSet<String> = org_rows(&e.org, "SELECT Id FROM Contact")
        .await
        .iter()
        .map(|r| r["Id"].as_str().unwrap().to_string())
        .collect();
    let lines = query(&export, "SELECT \"Id\" FROM \"Contact\" ORDER BY \"Id\"").await;
    assert_eq!(lines.len() - 1, want.len(), "every Id exactly once");
    assert_eq!(lines[1..].iter().cloned().collect::<BTreeSet<_>>(), want);
    let sql = "SELECT \"Id\" FROM \"Contact_history\" WHERE _sfetl_is_current";
    let current = query(&export, sql).await;
    assert_eq!(
        current.len() - 1,
        want.len(),
        "one current version of each Id"
    );
    // Each slice is one commit under its own app id; running one again commits nothing.
    let table = export.join("Contact");
    let v = newest_version(&table);
    let again = messages(&read(&files[1]).output().await.unwrap());
    assert!(
        logs(&again)
            .iter()
            .any(|l| l.contains("is already committed to the Delta table")),
        "{:?}",
        logs(&again)
    );
    assert_eq!(newest_version(&table), v);
}

#[tokio::test]
async fn a_field_retyped_in_the_org_is_refused_by_the_history_table_with_its_own_fix() {
    let e = env(20, cfg()).await;
    let export = e.dir.path().join("export");
    let config = delta_config(&e, "delta.json", &export, true);
    let fields = ["Id", "External_Id__c", "SystemModstamp"];
    read_delta(&e, &config, &fields, "incremental").await;
    e.org
        .control(
            "schema/retype_field",
            &json!({"object": "Account", "field": "External_Id__c", "type": "double"}),
        )
        .await;
    // A full refresh rewrites the stream's table; the history keeps its first types.
    let cat = catalog(
        e.dir.path(),
        "full.json",
        &[("Account", &fields, "full_refresh")],
    );
    let out = read_out(&config, &cat).await;
    assert_eq!(out.status.code(), Some(2));
    assert_config_error(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    let history = export.join("Account_history");
    assert!(
        err.contains(&format!(
            "the history table at {} holds column External_Id__c as Utf8, but the stream now reads it as ",
            history.display()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "no read changes a column's type in it; move {} aside (or remove it) to start a new history, then read again",
            history.display()
        )),
        "{err}"
    );
}

#[tokio::test]
async fn a_parquet_query_result_over_delta_has_plain_text_columns_in_structs_too() {
    let e = env(5, cfg()).await;
    let export = e.dir.path().join("export");
    let config = delta_config(&e, "delta.json", &export, false);
    let fields = ["Id", "BillingAddress", "SystemModstamp"];
    read_delta(&e, &config, &fields, "incremental").await;
    let out_file = e.dir.path().join("r.parquet");
    let out = run(&[
        "query",
        "--path",
        export.to_str().unwrap(),
        "SELECT \"Id\", \"BillingAddress\" FROM \"Account\"",
        "--format",
        "parquet",
        "--out",
        out_file.to_str().unwrap(),
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = std::fs::File::open(&out_file).unwrap();
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let schema = format!("{:?}", reader.schema());
    assert!(schema.contains("city"), "{schema}");
    assert!(!schema.contains("View"), "{schema}");
    // As CSV, an address is its JSON text in one cell: the same value as JSON lines hold.
    let sql = "SELECT \"Id\", \"BillingAddress\" FROM \"Account\" ORDER BY \"Id\"";
    let path = export.to_str().unwrap();
    let csv = run(&["query", "--path", path, sql, "--format", "csv"]).await;
    let json = run(&["query", "--path", path, sql, "--format", "json"]).await;
    assert!(
        csv.status.success(),
        "{}",
        String::from_utf8_lossy(&csv.stderr)
    );
    let mut reader = csv::Reader::from_reader(csv.stdout.as_slice());
    assert_eq!(reader.headers().unwrap(), vec!["Id", "BillingAddress"]);
    let cells: Vec<(String, serde_json::Value)> = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            let address = match &r[1] {
                "" => serde_json::Value::Null,
                text => serde_json::from_str(text).unwrap(),
            };
            (r[0].to_string(), address)
        })
        .collect();
    let lines: Vec<(String, serde_json::Value)> = String::from_utf8(json.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["Id"].as_str().unwrap().to_string(),
                v["BillingAddress"].clone(),
            )
        })
        .collect();
    assert_eq!(cells.len(), 5);
    assert_eq!(cells, lines);
    assert!(
        cells.iter().any(|(_, a)| a["city"].is_string()),
        "{cells:?}"
    );
}

#[tokio::test]
async fn a_full_refresh_slice_replaces_the_table_so_rows_purged_from_the_org_leave_it() {
    let e = env(120, cfg()).await;
    let export = e.dir.path().join("export");
    let config = delta_config(&e, "delta.json", &export, true);
    let cat = account_catalog(&e, "full_refresh");
    let (first_config, first) = full_refresh_slice(&e, &config, &cat, "1990-01-01").await;
    assert_ok(
        &read_slice(&first_config, &cat, &first)
            .output()
            .await
            .unwrap(),
    );
    assert_eq!(table_accounts(&export).await.len(), 120);

    let deleted = ids(&e
        .org
        .control("delete", &json!({"object": "Account", "count": 5}))
        .await);
    // Out of the recycle bin too: queryAll no longer returns them.
    e.org.control("purge", &json!({})).await;
    let (second_config, second) = full_refresh_slice(&e, &config, &cat, "1990-01-02").await;
    let msgs = messages(
        &read_slice(&second_config, &cat, &second)
            .output()
            .await
            .unwrap(),
    );
    assert_eq!(rows_read(&msgs), 115.0);
    let table = table_accounts(&export).await;
    assert_eq!(table.len(), 115);
    assert!(deleted.iter().all(|id| !table.contains_key(id)));
    assert_eq!(table, org_accounts(&e.org).await);
    // The history table closes the deleted rows' versions as a plain full refresh does.
    let sql = "SELECT \"Id\" FROM \"Account_history\" WHERE _sfetl_is_current";
    assert_eq!(query(&export, sql).await.len() - 1, 115);

    // The same slice again commits nothing.
    let v = newest_version(&export.join("Account"));
    let again = messages(
        &read_slice(&second_config, &cat, &second)
            .output()
            .await
            .unwrap(),
    );
    assert!(
        logs(&again)
            .iter()
            .any(|l| l.contains("is already committed to the Delta table")),
        "{:?}",
        logs(&again)
    );
    assert_eq!(newest_version(&export.join("Account")), v);
    assert_eq!(table_accounts(&export).await.len(), 115);
}

/// The `operation` of each commit in `table`'s log, in order.
fn operations(table: &Path) -> Vec<String> {
    (0..=newest_version(table))
        .map(|v| {
            let log = std::fs::read_to_string(table.join(format!("_delta_log/{v:020}.json")));
            let info = log.unwrap().lines().find_map(|l| {
                let a: Value = serde_json::from_str(l).ok()?;
                a["commitInfo"]["operation"].as_str().map(str::to_string)
            });
            info.unwrap_or_default()
        })
        .collect()
}

/// The env's config writing `contacts_by_email.yaml` (Contacts keyed by their email) into a
/// Delta table under its folder, as JSON to be given more keys; and the export's path.
fn by_email_config(e: &Env) -> (Value, PathBuf) {
    let mapping = format!(
        "{}/fixtures/mappings/contacts_by_email.yaml",
        manifest_dir()
    );
    let export = e.dir.path().join("export");
    let mut c: Value = serde_json::from_slice(&std::fs::read(&e.config).unwrap()).unwrap();
    c["mapping"] = json!(mapping);
    c["output"] = json!({"format": "delta", "path": export.to_str().unwrap()});
    (c, export)
}

/// A first read appends only while every key is new: two Contacts sharing an email (the
/// mapping's key) end it, and the table is what a MERGE leaves, one row per email, the later
/// version winning.
#[tokio::test]
async fn a_key_read_twice_ends_appending_and_the_read_merges() {
    let e = env(20, cfg()).await;
    let (c, export) = by_email_config(&e);
    let config = write_json(e.dir.path(), "mapped.json", &c);
    let contacts = org_rows(&e.org, "SELECT Id, Email FROM Contact ORDER BY Id").await;
    // Every Contact gets an email (a Delta table needs the key), the second the first's.
    for (i, c) in contacts
        .iter()
        .enumerate()
        .filter(|(_, c)| c["Email"].is_null())
    {
        let id = c["Id"].as_str().unwrap();
        let edit = json!({"object": "Contact", "id": id, "fields": {"Email": format!("c{i}@example.com")}});
        e.org.control("update", &edit).await;
    }
    let contacts = org_rows(&e.org, "SELECT Id, Email FROM Contact ORDER BY Id").await;
    let email = contacts[0]["Email"].as_str().unwrap().to_string();
    let id = contacts[1]["Id"].as_str().unwrap().to_string();
    let edit = json!({"object": "Contact", "id": id, "fields": {"Email": email}});
    e.org.control("update", &edit).await;
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("contact_by_email", &[], "incremental")],
    );
    read_settled(&e.org, &config, &cat, None).await;
    let ops = operations(&export.join("contact_by_email"));
    assert!(ops.iter().any(|o| o == "MERGE"), "{ops:?}");
    let rows = query(
        &export,
        &format!(
            "SELECT contact_id FROM contact_by_email WHERE email = '{}'",
            email.to_lowercase()
        ),
    )
    .await;
    assert_eq!(rows[1..], [id], "the later version wins");
    let emails: BTreeSet<String> = org_rows(&e.org, "SELECT Email FROM Contact")
        .await
        .iter()
        .filter_map(|c| c["Email"].as_str().map(str::to_lowercase))
        .collect();
    let n = query(&export, "SELECT count(*) AS n FROM contact_by_email").await;
    assert_eq!(n[1..], [emails.len().to_string()]);
}

#[tokio::test]
async fn a_mapped_key_without_a_value_fails_the_stream_before_anything_is_committed() {
    let e = env(20, cfg()).await;
    let (mut c, export) = by_email_config(&e);
    // One window, so one batch holds every row without a key and the error counts them all.
    c["stream_slice_step"] = json!("P36500D");
    let config = write_json(e.dir.path(), "mapped.json", &c);
    let contacts = org_rows(&e.org, "SELECT Id, Email FROM Contact").await;
    let id = contacts[0]["Id"].as_str().unwrap();
    let r = e
        .org
        .send_json(
            reqwest::Method::PATCH,
            &format!("sobjects/Contact/{id}"),
            &json!({"Email": null}),
        )
        .await;
    assert_eq!(r.status(), 204);
    let nulls = org_rows(&e.org, "SELECT Id, Email FROM Contact")
        .await
        .iter()
        .filter(|r| r["Email"].is_null())
        .count();
    assert!(nulls >= 1);
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("contact_by_email", &[], "incremental")],
    );
    e.org.next_second().await;
    let out = read_out(&config, &cat).await;
    assert_eq!(out.status.code(), Some(2));
    let msgs = messages(&out);
    let errors: Vec<(String, String)> = msgs
        .iter()
        .filter(|m| m["type"] == "TRACE" && m["trace"]["type"] == "ERROR")
        .map(|m| {
            (
                m["trace"]["error"]["failure_type"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                m["trace"]["error"]["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        errors,
        [(
            "config_error".to_string(),
            format!(
                "stream contact_by_email: {nulls} row(s) read have no value in email, a column of the primary key [\"email\"]: a Delta table merges rows by their key, and a row without one matches no row, so every read would add it again. Give the mapping's stream a primary_key whose columns always have a value (a column mapped from Id has one), or write the stream to Parquet"
            )
        )]
    );
    assert!(!msgs.iter().any(|m| m["type"] == "STATE"));
    assert!(!export.join("contact_by_email").join("_delta_log").exists());
}

#[tokio::test]
async fn a_value_that_follows_a_parent_is_corrected_in_the_current_history_version() {
    // Contact's Account_Name__c is the formula `Account.Name`: renaming an Account changes it
    // without moving the Contact's SystemModstamp, and the read follows the Account.
    let e = env(30, cfg()).await;
    let export = e.dir.path().join("export");
    let config = delta_config(&e, "delta.json", &export, true);
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[(
            "Contact",
            &["Id", "Account_Name__c", "SystemModstamp"],
            "incremental",
        )],
    );
    read_files(&config, &cat, None).await;
    let contacts = org_rows(
        &e.org,
        "SELECT Id, AccountId FROM Contact WHERE AccountId != null",
    )
    .await;
    let account = contacts[0]["AccountId"].as_str().unwrap();
    let under: BTreeSet<String> = contacts
        .iter()
        .filter(|c| c["AccountId"] == account)
        .map(|c| c["Id"].as_str().unwrap().to_string())
        .collect();
    rename_account(&e.org, account).await;
    let msgs = messages(&read_settled(&e.org, &config, &cat, None).await);
    assert!(
        records(&msgs, "Contact").is_empty() && rows_read(&msgs) >= under.len() as f64,
        "{:?}",
        logs(&msgs)
    );
    let renamed = |table: &str, current: &str| {
        format!(
            "SELECT \"Id\" FROM \"{table}\" WHERE \"Account_Name__c\" = 'Renamed Co'{current} ORDER BY \"Id\""
        )
    };
    let ids = |lines: Vec<String>| lines[1..].iter().cloned().collect::<BTreeSet<String>>();
    assert_eq!(ids(query(&export, &renamed("Contact", "")).await), under);
    assert_eq!(
        ids(query(
            &export,
            &renamed("Contact_history", " AND \"_sfetl_is_current\"")
        )
        .await),
        under,
        "the history's current version holds the value the stream table holds"
    );
    // Corrected in place: still one version per Contact.
    let versions = query(&export, "SELECT count(*) FROM \"Contact_history\"").await;
    let contacts_now = query(&export, "SELECT count(*) FROM \"Contact\"").await;
    assert_eq!(versions[1], contacts_now[1]);
}

/// `sfetl read` with `config` and `catalog`, logging the Delta output's debug lines: its stderr.
async fn read_logged(config: &Path, catalog: &Path) -> String {
    let mut cmd = read_cmd(config, catalog);
    let out = cmd.env("SFETL_LOG", "sfetl::output::delta=debug");
    let out = out.output().await.expect("sfetl runs");
    assert_ok(&out);
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A first full refresh with history writes the history's first versions beside the table's
/// files, from the same rows, rather than reading the committed table back: they are the
/// table's rows, each current from its SystemModstamp until the end of time.
#[tokio::test]
async fn a_first_full_refresh_writes_the_history_versions_beside_the_tables_files() {
    let e = env(30, cfg()).await;
    e.org
        .control("delete", &json!({"object": "Account", "count": 2}))
        .await;
    let export = e.dir.path().join("export");
    let config = delta_config(&e, "delta.json", &export, true);
    let cat = account_catalog(&e, "full_refresh");
    let log = read_logged(&config, &cat).await;
    let beside = "Account_history: first versions written beside the table's files";
    assert!(log.contains(beside), "{log}");
    assert!(!log.contains("read back"), "{log}");
    let cols = FIELDS
        .iter()
        .map(|f| format!("\"{f}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let differ = |a: &str, b: &str| {
        format!(
            "SELECT count(*) FROM (SELECT {cols} FROM \"{a}\" EXCEPT SELECT {cols} FROM \"{b}\")"
        )
    };
    assert_eq!(
        query(&export, &differ("Account", "Account_history")).await[1],
        "0"
    );
    assert_eq!(
        query(&export, &differ("Account_history", "Account")).await[1],
        "0"
    );
    let versions = query(
        &export,
        "SELECT count(*), sum(CASE WHEN \"_sfetl_is_current\" AND \"_sfetl_valid_from\" = \"SystemModstamp\" AND CAST(\"_sfetl_valid_to\" AS BIGINT) = 253402300799999000 THEN 1 ELSE 0 END) FROM \"Account_history\"",
    )
    .await;
    // The two deleted Accounts are in neither table.
    assert_eq!(
        query(&export, "SELECT count(*) FROM \"Account\"").await[1],
        "28"
    );
    assert_eq!(versions[1], "28,28");
}

#[tokio::test]
async fn a_full_refresh_into_a_history_with_versions_merges_only_what_changed() {
    let e = env(40, cfg()).await;
    let export = e.dir.path().join("export");
    let history = export.join("Contact_history");
    let config = delta_config(&e, "delta.json", &export, true);
    // Contact's Account_Name__c is the formula `Account.Name`: it follows a rename of the
    // Account without moving the Contact's SystemModstamp.
    let fields = ["Id", "LastName", "Account_Name__c", "SystemModstamp"];
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("Contact", &fields, "full_refresh")],
    );
    read_files(&config, &cat, None).await;
    // Nothing changed: the history's commit carries the run's txn and touches no file (the
    // whole-table MERGE rewrote every file).
    let v = newest_version(&history);
    // The new rows were streamed past the history's current versions as they were written,
    // not read back from the committed table.
    let came = "Contact_history: changes worked out as the rows came";
    let log = read_logged(&config, &cat).await;
    assert!(
        log.contains(came) && !log.contains("from the table"),
        "{log}"
    );
    assert_eq!(newest_version(&history), v + 1);
    assert_eq!(files_changed(&history, v), (vec![], vec![]));

    let contacts = org_rows(&e.org, "SELECT Id, AccountId FROM Contact").await;
    let text = |v: &Value| v.as_str().map(String::from);
    let touched = ids(&e
        .org
        .control("touch", &json!({"object": "Contact", "count": 2}))
        .await);
    let (gone, account) = contacts
        .iter()
        .find_map(|c| {
            let id = text(&c["Id"])?;
            Some((id.clone(), text(&c["AccountId"])?)).filter(|_| !touched.contains(&id))
        })
        .unwrap();
    e.org
        .control("delete", &json!({"object": "Contact", "ids": [gone]}))
        .await;
    e.org.control("purge", &json!({})).await;
    rename_account(&e.org, &account).await;
    let renamed: BTreeSet<String> = contacts
        .iter()
        .filter(|c| text(&c["AccountId"]).as_deref() == Some(&account))
        .filter_map(|c| text(&c["Id"]))
        .filter(|id| *id != gone)
        .collect();
    assert!(!renamed.is_empty());

    let before = chrono::Utc::now().timestamp_micros();
    assert!(read_logged(&config, &cat).await.contains(came));
    let after = chrono::Utc::now().timestamp_micros();
    let lines = query(
        &export,
        "SELECT \"Id\", count(*) AS versions, sum(CASE WHEN \"_sfetl_is_current\" THEN 1 ELSE 0 END) AS current, max(CAST(\"_sfetl_valid_to\" AS BIGINT)) AS until FROM \"Contact_history\" GROUP BY \"Id\" ORDER BY \"Id\"",
    )
    .await;
    assert_eq!(lines.len() - 1, contacts.len());
    for l in &lines[1..] {
        let f: Vec<&str> = l.split(',').collect();
        let (id, counts) = (f[0], (f[1], f[2]));
        if id == gone {
            // Closed when the full refresh ran, not left current.
            assert_eq!(counts, ("1", "0"), "{id}");
            let until: i64 = f[3].parse().unwrap();
            assert!(
                (before..=after).contains(&until),
                "{until} {before} {after}"
            );
        } else if touched.contains(id) {
            assert_eq!(counts, ("2", "1"), "{id}");
        } else {
            assert_eq!(counts, ("1", "1"), "{id}");
        }
    }
    // The renamed Account's Contacts: corrected in place (one version each, above).
    let sql = "SELECT \"Id\" FROM \"Contact_history\" WHERE \"_sfetl_is_current\" AND \"Account_Name__c\" = 'Renamed Co' ORDER BY \"Id\"";
    let current = query(&export, sql).await;
    assert_eq!(
        current[1..].iter().cloned().collect::<BTreeSet<_>>(),
        renamed
    );
}

/// Contacts read with `first`'s fields into a Delta export kept with history, one Contact
/// touched, then read with `second`'s fields: the touched Id, the history's newest version
/// before the second read, and the second read's Delta debug log.
async fn contacts_read_twice(
    e: &Env,
    export: &Path,
    first: &[&str],
    second: &[&str],
) -> (BTreeSet<String>, u64, String) {
    let config = delta_config(e, "delta.json", export, true);
    let cat = |name: &str, fields: &[&str]| {
        catalog(e.dir.path(), name, &[("Contact", fields, "full_refresh")])
    };
    read_files(&config, &cat("first.json", first), None).await;
    let v = newest_version(&export.join("Contact_history"));
    let touch = json!({"object": "Contact", "count": 1});
    let touched = ids(&e.org.control("touch", &touch).await);
    let log = read_logged(&config, &cat("second.json", second)).await;
    (touched, v, log)
}

/// Each Contact's Id with its Email ("" for none).
async fn contact_emails(e: &Env) -> BTreeMap<String, String> {
    let org = org_rows(&e.org, "SELECT Id, Email FROM Contact").await;
    org.iter()
        .map(|c| {
            let email = c["Email"].as_str().unwrap_or("").to_string();
            (c["Id"].as_str().unwrap().to_string(), email)
        })
        .collect()
}

/// A full refresh that changes every version of a history (a field added to the catalog)
/// holds none of its rows: the new versions are written as the rows come, and each history
/// file holding a changed version is rewritten once, in one commit, instead of a MERGE of
/// every changed row held in memory.
#[tokio::test]
async fn a_full_refresh_that_adds_a_field_rewrites_each_history_file_once() {
    let e = env(40, cfg()).await;
    let export = e.dir.path().join("export");
    let narrow = ["Id", "LastName", "SystemModstamp"];
    let wide = ["Id", "LastName", "Email", "SystemModstamp"];
    let (touched, v, log) = contacts_read_twice(&e, &export, &narrow, &wide).await;
    assert!(
        log.contains("Contact_history: changes worked out as the rows came")
            && log.contains("Contact_history: 1 file of new versions, 1 file rewritten")
            && !log.contains("from the table"),
        "{log}"
    );
    // One commit after the evolution that added Email: the first file out, its rewrite and
    // the new versions in.
    let history = export.join("Contact_history");
    assert_eq!(newest_version(&history), v + 2);
    let (removed, added) = files_changed(&history, v);
    assert_eq!((removed.len(), added.len()), (1, 2));
    assert!(!added.contains(&removed[0]));
    // Each Contact's version now holds its Email (corrected in place: its SystemModstamp did
    // not move), but the touched one, which has a second version.
    let lines = query(
        &export,
        "SELECT \"Id\", count(*) AS versions, sum(CASE WHEN \"_sfetl_is_current\" THEN 1 ELSE 0 END) AS current, max(CASE WHEN \"_sfetl_is_current\" THEN \"Email\" END) AS email FROM \"Contact_history\" GROUP BY \"Id\" ORDER BY \"Id\"",
    )
    .await;
    let org = contact_emails(&e).await;
    assert!(
        org.values().any(|e| !e.is_empty()),
        "some Contacts have an Email"
    );
    let want: Vec<String> = org
        .iter()
        .map(|(id, email)| {
            let versions = if touched.contains(id) { 2 } else { 1 };
            format!("{id},{versions},1,{email}")
        })
        .collect();
    assert_eq!(lines[1..], want[..]);
}

/// A field that leaves the catalog stays in the history (older versions hold it), so the
/// new versions' files would lack a column of the history: such a refresh is recorded by a
/// MERGE of its changes worked out from the new table, as before.
#[tokio::test]
async fn a_full_refresh_without_a_field_the_history_holds_merges_its_changes() {
    let e = env(40, cfg()).await;
    let export = e.dir.path().join("export");
    let wide = ["Id", "LastName", "Email", "SystemModstamp"];
    let narrow = ["Id", "LastName", "SystemModstamp"];
    let (touched, _, log) = contacts_read_twice(&e, &export, &wide, &narrow).await;
    assert!(
        log.contains("Contact_history: changes worked out from the table")
            && !log.contains("files rewritten"),
        "{log}"
    );
    let lines = query(
        &export,
        "SELECT \"Id\", count(*) AS versions, count(\"Email\") AS emails, sum(CASE WHEN \"_sfetl_is_current\" THEN 1 ELSE 0 END) AS current FROM \"Contact_history\" GROUP BY \"Id\" ORDER BY \"Id\"",
    )
    .await;
    // The touched Contact's new version has no Email (no longer read); its first keeps it.
    let want: Vec<String> = (contact_emails(&e).await.iter())
        .map(|(id, email)| {
            let versions = if touched.contains(id) { 2 } else { 1 };
            format!("{id},{versions},{},1", u8::from(!email.is_empty()))
        })
        .collect();
    assert_eq!(lines[1..], want[..]);
}

#[tokio::test]
async fn an_account_deleted_and_undeleted_in_one_second_stays_in_the_table() {
    let mut c = cfg();
    c["lookback_window"] = json!("PT10M");
    let e = env(20, c).await;
    let export = e.dir.path().join("export");
    let config = delta_config(&e, "delta.json", &export, false);
    read_delta(&e, &config, FIELDS, "incremental").await;
    // Deleted and undeleted in one transaction two minutes ago (a minute the delete log
    // covers): the log's deletion and the live row share one instant.
    let (_, v) = e
        .org
        .query("SELECT Id FROM Account ORDER BY Id LIMIT 1")
        .await;
    let a = v["records"][0]["Id"].as_str().unwrap().to_string();
    let stamp = stamp_minutes_ago(2);
    let both = json!({"object": "Account", "ids": [a], "stamp": stamp});
    e.org.control("delete", &both).await;
    e.org.control("undelete", &both).await;
    read_delta(&e, &config, FIELDS, "incremental").await;
    let table = table_accounts(&export).await;
    assert!(table.contains_key(&a), "{a} left the table");
    assert_eq!(table, org_accounts(&e.org).await);
}

/// `Id,ParentId` (`null` for none) of Account `id` in the table `table` of the export, one line
/// per version in the order they were extracted.
async fn parent_of(export: &Path, table: &str, id: &str) -> Vec<String> {
    let sql = format!(
        "SELECT \"Id\", COALESCE(\"ParentId\", 'null') AS p FROM \"{table}\" WHERE \"Id\" = '{id}' ORDER BY \"_sfetl_extracted_at\""
    );
    query(export, &sql).await
}

/// Asserts that the read whose messages are `msgs` read `kids` Accounts again for their
/// ParentId, because of `deleted` / `undeleted` parent Accounts, and that the table and its
/// history then hold `value` (`null` for none) as `child`'s ParentId.
async fn assert_followed(
    msgs: &[Value],
    export: &Path,
    kids: usize,
    (deleted, undeleted): (u32, u32),
    child: &str,
    value: &str,
) {
    let line = format!(
        "Account: {kids} rows read again by Id (1 query) because their ParentId pointed at one of {deleted} Account deleted and {undeleted} undeleted since "
    );
    assert!(
        logs(msgs).iter().any(|l| l.starts_with(&line)),
        "{:?}",
        logs(msgs)
    );
    let one = ["Id,p".to_string(), format!("{child},{value}")];
    assert_eq!(parent_of(export, "Account", child).await, one);
    assert_eq!(parent_of(export, "Account_history", child).await, one);
}

#[tokio::test]
async fn a_deleted_parent_clears_the_delta_tables_lookup_and_its_undelete_restores_it() {
    // Deletions dated three minutes back (the `deleted` endpoint covers whole minutes), within
    // the lookback of the second read.
    let mut c = cfg();
    c["lookback_window"] = json!("PT10M");
    let e = env(100, c).await;
    let export = e.dir.path().join("export");
    let config = delta_config(&e, "delta.json", &export, true);
    let fields = &["Id", "Name", "ParentId", "IsDeleted", "SystemModstamp"];
    // A generated child Account under a parent, changed long before the lookback.
    let rows = org_rows(
        &e.org,
        "SELECT Id, ParentId FROM Account WHERE ParentId != null ORDER BY Id",
    )
    .await;
    let text = |v: &Value| v.as_str().unwrap().to_string();
    let (child, parent) = (text(&rows[0]["Id"]), text(&rows[0]["ParentId"]));
    let kids = rows
        .iter()
        .filter(|r| r["ParentId"] == json!(parent))
        .count();
    read_delta(&e, &config, fields, "incremental").await;
    assert_eq!(
        parent_of(&export, "Account", &child).await,
        ["Id,p".to_string(), format!("{child},{parent}")]
    );

    let stamp = stamp_minutes_ago(3);
    let del = json!({"object": "Account", "ids": [parent], "stamp": stamp});
    e.org.control("delete", &del).await;
    let msgs = read_delta(&e, &config, fields, "incremental").await;
    // The MERGE took the row read again (same cursor, later extraction). The history corrects
    // the version in place (same cursor, other values): it no longer holds the parent, so an
    // undelete is followed through the org, not the export.
    assert_followed(&msgs, &export, kids, (1, 0), &child, "null").await;

    // Undeleted (its deletion now before the span): the rows pointing at it again are read.
    e.org
        .control("undelete", &json!({"object": "Account", "ids": [parent]}))
        .await;
    let mut c: Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    c["lookback_window"] = json!("PT0S");
    let config = write_json(e.dir.path(), "no_lookback.json", &c);
    let msgs = read_delta(&e, &config, fields, "incremental").await;
    assert_followed(&msgs, &export, kids, (0, 1), &child, &parent).await;
}
