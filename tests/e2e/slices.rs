//! Windows sized by rows, `sfetl plan` and `read --slice` against the simulator: a sparse
//! history is one Bulk job and one file with the defaults; a plan's slices run as concurrent
//! processes into one Parquet export give every Id exactly once, also after a worker is killed
//! with SIGKILL and its slice run again; slices that do not fit the catalog are refused with
//! both sides named; windows read at once (`max_concurrent_jobs`) keep STATE exact.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray};
use serde_json::{Value, json};

use crate::common::*;

/// Every `(Id, file)` of a stream's Parquet files under `export`.
fn parquet_ids(export: &Path, stream: &str) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for sync in std::fs::read_dir(export.join(stream)).unwrap() {
        for f in std::fs::read_dir(sync.unwrap().path()).unwrap() {
            let path = f.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            if !(name.starts_with("part-") && name.ends_with(".parquet")) {
                continue;
            }
            let file = std::fs::File::open(&path).unwrap();
            let reader =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                    .unwrap()
                    .build()
                    .unwrap();
            for b in reader {
                let b = b.unwrap();
                let ids = b.column_by_name("Id").unwrap().as_string::<i32>().clone();
                for i in 0..ids.len() {
                    out.push((ids.value(i).to_string(), path.clone()));
                }
            }
        }
    }
    out
}

async fn org_ids(e: &Env, object: &str) -> BTreeSet<String> {
    org_rows(&e.org, &format!("SELECT Id FROM {object}"))
        .await
        .iter()
        .map(|r| r["Id"].as_str().unwrap().to_string())
        .collect()
}

/// Asserts every row of the org is in the export exactly once.
async fn exactly_once(e: &Env, export: &Path, object: &str, why: &str) {
    let got = parquet_ids(export, object);
    let distinct: BTreeSet<String> = got.iter().map(|(id, _)| id.clone()).collect();
    let want = org_ids(e, object).await;
    assert_eq!(got.len(), want.len(), "{why}: no row twice");
    assert_eq!(distinct, want, "{why}: every row");
}

fn time(s: &str) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(s)
        .or_else(|_| chrono::DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .unwrap()
}

fn time_or_zero(s: &str) -> chrono::DateTime<chrono::FixedOffset> {
    if s.is_empty() {
        time("1970-01-01T00:00:00Z")
    } else {
        time(s)
    }
}

/// Writes each slice to its own file.
fn slice_files(dir: &Path, slices: &[Value]) -> Vec<PathBuf> {
    slices
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let f = dir.join(format!("slice-{i}.json"));
            std::fs::write(&f, s.to_string()).unwrap();
            f
        })
        .collect()
}

#[tokio::test]
async fn ten_years_of_a_thousand_rows_are_one_bulk_job_and_one_file_with_the_defaults() {
    let e = env(1000, json!({})).await;
    let years: BTreeSet<String> = org_rows(&e.org, "SELECT SystemModstamp FROM Account")
        .await
        .iter()
        .map(|r| r["SystemModstamp"].as_str().unwrap()[..4].to_string())
        .collect();
    assert_eq!(years.first().unwrap(), "2015");
    assert_eq!(years.last().unwrap(), "2025", "spread over ten years");
    let export = e.dir.path().join("export");
    let config = parquet_config_default(&e, "pq.json", &export);
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("Account", &["Id", "Name", "SystemModstamp"], "incremental")],
    );
    let out = read_files(&config, &cat, None).await;
    let msgs = messages(&out);
    let limits = e.org.get_json_url("/__sim/limits").await;
    assert_eq!(limits["bulk_query_jobs_used"], 1, "one Bulk job");
    let states: Vec<&Value> = msgs.iter().filter(|m| m["type"] == "STATE").collect();
    assert_eq!(states.len(), 1, "one window, one STATE: {states:?}");
    let ids = parquet_ids(&export, "Account");
    let files: BTreeSet<&PathBuf> = ids.iter().map(|(_, f)| f).collect();
    assert_eq!(files.len(), 1, "one file: {files:?}");
    exactly_once(&e, &export, "Account", "one job").await;
    assert!(
        logs(&msgs).contains(
            &"Account: 1000 rows counted; reading them in 1 window(s) of about 200000 rows"
                .to_string()
        ),
        "{:?}",
        logs(&msgs)
    );
}

/// A plan of exactly 8 slices of Contact (the row target found from the counted total).
async fn eight_slices(config: &Path, cat: &Path) -> Vec<Value> {
    let all = plan_slices(config, cat, &[]).await;
    let total: u64 = all
        .iter()
        .map(|s| s["estimated_rows"].as_u64().unwrap())
        .sum();
    let mut target = total / 8;
    loop {
        let n = target.to_string();
        let slices = plan_slices(config, cat, &["--max-rows-per-slice", &n]).await;
        if slices.len() == 8 {
            return slices;
        }
        assert!(
            slices.len() > 8,
            "target {target} gave {} slices",
            slices.len()
        );
        target += total / 200;
    }
}

#[tokio::test]
async fn eight_slices_as_eight_concurrent_processes_give_every_id_once_and_their_states_resume() {
    let e = env(1000, json!({})).await;
    let export = e.dir.path().join("export");
    let config = parquet_config_default(&e, "pq.json", &export);
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[(
            "Contact",
            &["Id", "LastName", "SystemModstamp"],
            "incremental",
        )],
    );
    let slices = eight_slices(&config, &cat).await;
    let first = &slices[0];
    assert_eq!(first["stream"], "Contact");
    assert_eq!(first["cursor_field"], "SystemModstamp");
    assert_eq!(first["api"], "bulk");
    assert_eq!(first["of"], 8);
    for pair in slices.windows(2) {
        assert_eq!(pair[0]["upper"], pair[1]["lower"], "slices leave no gap");
    }
    let files = slice_files(e.dir.path(), &slices);
    let mut commands: Vec<_> = files.iter().map(|f| read_slice(&config, &cat, f)).collect();
    let outputs = futures::future::join_all(commands.iter_mut().map(|c| c.output())).await;
    let mut states = Vec::new();
    for out in outputs {
        let out = out.unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let msgs = messages(&out);
        let state: Vec<&Value> = msgs.iter().filter(|m| m["type"] == "STATE").collect();
        assert_eq!(state.len(), 1, "one STATE per slice");
        states.push(state[0]["state"].clone());
    }
    exactly_once(&e, &export, "Contact", "8 concurrent slices").await;
    // sfetl query sees each row once too.
    let q = run(&[
        "query",
        "--path",
        export.to_str().unwrap(),
        "--format",
        "json",
        "SELECT count(*) AS n, count(DISTINCT \"Id\") AS d FROM Contact_history",
    ])
    .await;
    assert!(q.status.success(), "{}", String::from_utf8_lossy(&q.stderr));
    let row: Value =
        serde_json::from_slice(q.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(
        (row["n"].as_u64(), row["d"].as_u64()),
        (Some(3000), Some(3000))
    );
    // A slice run again finds itself committed and adds nothing.
    let again = read_slice(&config, &cat, &files[3]).output().await.unwrap();
    assert!(again.status.success());
    let again = messages(&again);
    assert!(
        logs(&again)
            .iter()
            .any(|l| l.contains("is already committed")),
        "{:?}",
        logs(&again)
    );
    exactly_once(&e, &export, "Contact", "a committed slice run again").await;
    // The slices' STATEs, in any order, resume after the last slice.
    states.reverse();
    let state = write_json(e.dir.path(), "state.json", &Value::Array(states));
    let next = plan_slices(&config, &cat, &["--state", state.to_str().unwrap()]).await;
    let last_upper = time(slices[7]["upper"].as_str().unwrap());
    let resumed = time(next[0]["lower"].as_str().unwrap());
    assert_eq!(
        last_upper - resumed,
        chrono::Duration::minutes(10),
        "the next plan starts at the last slice's end minus the lookback"
    );
}

#[tokio::test]
async fn a_worker_killed_at_seeded_points_then_run_again_still_gives_every_id_once() {
    let e = env(1000, json!({})).await;
    for seed in [3u64, 11, 29] {
        let export = e.dir.path().join(format!("export-{seed}"));
        let mut cfg: Value = serde_json::from_slice(&std::fs::read(&e.config).unwrap()).unwrap();
        // Small pages and files: a slice writes several files before its marker completes.
        cfg["output"] = json!({"format": "parquet", "path": export, "file_rows": 40});
        cfg["bulk_max_records"] = json!(40);
        let config = write_json(e.dir.path(), &format!("cfg-{seed}.json"), &cfg);
        let cat = catalog(
            e.dir.path(),
            "cat.json",
            &[(
                "Contact",
                &["Id", "LastName", "SystemModstamp"],
                "incremental",
            )],
        );
        let slices = plan_slices(&config, &cat, &["--max-rows-per-slice", "400"]).await;
        let slice_dir = e.dir.path().join(format!("slices-{seed}"));
        std::fs::create_dir_all(&slice_dir).unwrap();
        let files = slice_files(&slice_dir, &slices);
        let victim = (seed as usize) % files.len();
        // Each results page waits, so the kill lands while the slice is being written.
        e.org
            .control("latency", &json!({"kind": "bulk_query", "ms": 100}))
            .await;
        let kill_after = 1 + (seed * 7919) as usize % 3;
        let slice_written = |m: &Value| {
            let text = m["log"]["message"].as_str().unwrap_or_default();
            m["type"] == "LOG" && text.contains("file(s) of this slice written")
        };
        let cmd = read_slice(&config, &cat, &files[victim]);
        let (written, _) = kill_at(cmd, kill_after, slice_written).await;
        assert_eq!(written, kill_after, "seed {seed}: killed mid-slice");
        org_finishes_running_jobs(&e.org).await;
        let marker = marker_of(&export, "Contact");
        assert_eq!(marker.len(), 1);
        assert_eq!(
            marker[0]["complete"], false,
            "seed {seed}: killed before the commit"
        );
        e.org
            .control("latency", &json!({"kind": "bulk_query", "ms": 0}))
            .await;
        // Every slice now, the killed one again among them.
        for f in &files {
            let out = read_slice(&config, &cat, f).output().await.unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        exactly_once(&e, &export, "Contact", &format!("seed {seed}")).await;
        let markers = marker_of(&export, "Contact");
        assert_eq!(
            markers.len(),
            slices.len(),
            "one folder per slice, the killed attempt removed"
        );
        assert!(
            markers
                .iter()
                .all(|m| m["complete"] == true && m["base"] == false)
        );
    }
}

/// The sync markers of a stream's folders.
fn marker_of(export: &Path, stream: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for sync in std::fs::read_dir(export.join(stream)).unwrap() {
        let m = sync.unwrap().path().join("_sfetl_sync.json");
        if let Ok(bytes) = std::fs::read(&m) {
            out.push(serde_json::from_slice(&bytes).unwrap());
        }
    }
    out
}

#[tokio::test]
async fn a_slice_that_does_not_fit_the_catalog_is_refused_naming_both() {
    let e = env(20, json!({})).await;
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("Account", &["Id", "SystemModstamp"], "incremental")],
    );
    let slices = plan_slices(&e.config, &cat, &[]).await;
    assert_eq!(slices.len(), 1);
    let file = slice_files(e.dir.path(), &slices).remove(0);
    let other = catalog(
        e.dir.path(),
        "other.json",
        &[("Lead", &["Id", "SystemModstamp"], "incremental")],
    );
    let out = read_slice(&e.config, &other, &file).output().await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    let id = slices[0]["slice_id"].as_str().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        format!(
            "sfetl: error: the slice {id} in {} is for stream Account, which the catalog {} does not list (it lists Lead): pass the catalog `sfetl plan` was given, or plan again with this one",
            file.display(),
            other.display()
        )
    );
    // The same stream read by another cursor: an object the mapping of cursors differs on.
    let mut edited = slices[0].clone();
    edited["cursor_field"] = json!("CreatedDate");
    edited["slice_id"] = json!(slice_id_of(&edited));
    let bad = e.dir.path().join("bad-cursor.json");
    std::fs::write(&bad, edited.to_string()).unwrap();
    let out = read_slice(&e.config, &cat, &bad).output().await.unwrap();
    let msgs = messages(&out);
    let errors: Vec<&str> = msgs
        .iter()
        .filter(|m| m["type"] == "TRACE" && m["trace"]["type"] == "ERROR")
        .map(|m| m["trace"]["error"]["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        errors,
        vec![format!(
            "stream Account: the slice {} in {} reads Account by cursor CreatedDate, but the catalog's stream Account reads it by cursor SystemModstamp: plan again with this catalog",
            edited["slice_id"].as_str().unwrap(),
            bad.display()
        )]
    );
}

/// The id sfetl gives a slice (SHA-256 of its stream, object, cursor, window and place).
fn slice_id_of(s: &Value) -> String {
    use sha2::Digest;
    let text = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        s["stream"].as_str().unwrap(),
        s["object"].as_str().unwrap(),
        s["cursor_field"].as_str().unwrap_or(""),
        s["lower"].as_str().unwrap_or(""),
        s["upper"].as_str().unwrap_or(""),
        s["sequence"]
    );
    let hash = sha2::Sha256::digest(text.as_bytes());
    let hex: String = hash[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{:04}-{hex}",
        s["stream"].as_str().unwrap(),
        s["sequence"].as_u64().unwrap()
    )
}

#[tokio::test]
async fn windows_read_at_once_keep_every_row_once_and_state_in_order() {
    // 3,000 Contacts in windows of 300 rows, 4 Bulk jobs at a time.
    let e = env(
        1000,
        json!({"bulk_max_records": 300, "max_concurrent_jobs": 4}),
    )
    .await;
    e.org
        .control(
            "limits",
            &json!({"bulk_queue_ms": 50, "bulk_rows_per_second": 20000}),
        )
        .await;
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("Contact", &["Id", "SystemModstamp"], "incremental")],
    );
    let msgs = read_ok(&e, &cat, None).await;
    let rows = records(&msgs, "Contact");
    let ids: BTreeSet<&str> = rows.iter().map(|r| r["Id"].as_str().unwrap()).collect();
    assert_eq!(rows.len(), 3000);
    assert_eq!(ids.len(), 3000);
    let limits = e.org.get_json_url("/__sim/limits").await;
    let jobs = limits["bulk_query_jobs_used"].as_u64().unwrap();
    assert!(jobs >= 10, "{jobs} Bulk jobs");
    // Every STATE covers exactly the rows before it: no row after a STATE is below its cursor.
    let mut seen: BTreeMap<usize, String> = BTreeMap::new();
    let mut last = String::new();
    for (i, m) in msgs.iter().enumerate() {
        if m["type"] == "RECORD" {
            let c = m["record"]["data"]["SystemModstamp"]
                .as_str()
                .unwrap()
                .to_string();
            assert!(
                time(&c) >= time_or_zero(&last),
                "row {c} after a STATE at {last}"
            );
        }
        if m["type"] == "STATE" {
            let c = m["state"]["stream"]["stream_state"]["cursor"]
                .as_str()
                .unwrap()
                .to_string();
            if !last.is_empty() {
                assert!(time(&c) >= time(&last));
            }
            seen.insert(i, c.clone());
            last = c;
        }
    }
    assert!(seen.len() >= 10, "a STATE per window: {}", seen.len());
}

#[tokio::test]
async fn a_slice_of_a_stream_that_follows_a_parent_says_it_does_not() {
    // Contact's Account_Name__c is the formula `Account.Name`: a plain read follows Account.
    let e = env(20, one_window_config(json!({}))).await;
    let export = e.dir.path().join("export");
    let config = parquet_config(&e, "pq.json", &export);
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[(
            "Contact",
            &["Id", "Account_Name__c", "SystemModstamp"],
            "incremental",
        )],
    );
    let slices = plan_slices(&config, &cat, &[]).await;
    let slice = write_json(e.dir.path(), "slice.json", &slices[0]);
    let out = read_slice(&config, &cat, &slice).output().await.unwrap();
    assert_ok(&out);
    let warnings = warnings(&messages(&out));
    assert!(
        warnings.iter().any(|w| w.starts_with(
            "Contact: a slice reads its own window only: it does not read again the rows whose parent changed"
        )),
        "{warnings:?}"
    );
}

#[tokio::test]
async fn a_full_refresh_slice_is_a_base_sync_so_rows_purged_from_the_org_leave_the_latest_view() {
    let e = env(120, one_window_config(json!({}))).await;
    let export = e.dir.path().join("export");
    let config = parquet_config_default(&e, "pq.json", &export);
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("Account", &["Id", "Name", "SystemModstamp"], "full_refresh")],
    );
    let (first_config, first) = full_refresh_slice(&e, &config, &cat, "1990-01-01").await;
    assert_ok(
        &read_slice(&first_config, &cat, &first)
            .output()
            .await
            .unwrap(),
    );
    let deleted = e
        .org
        .control("delete", &json!({"object": "Account", "count": 5}))
        .await;
    // Out of the recycle bin too: queryAll no longer returns them.
    e.org.control("purge", &json!({})).await;
    let deleted: BTreeSet<String> = deleted["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap().to_string())
        .collect();
    let (second_config, second) = full_refresh_slice(&e, &config, &cat, "1990-01-02").await;
    assert_ok(
        &read_slice(&second_config, &cat, &second)
            .output()
            .await
            .unwrap(),
    );
    // Both slices' folders stay; the second is a complete base sync, so the latest view starts
    // there.
    let markers = marker_of(&export, "Account");
    assert_eq!(markers.len(), 2, "{markers:?}");
    assert!(
        markers
            .iter()
            .all(|m| m["base"] == true && m["complete"] == true)
    );
    let csv = query_csv(&export, "SELECT \"Id\" FROM \"Account\" ORDER BY \"Id\"").await;
    let got: BTreeSet<String> = csv.lines().skip(1).map(str::to_string).collect();
    assert_eq!(got.len(), 115);
    assert!(deleted.iter().all(|id| !got.contains(id)));
    let live: BTreeSet<String> = org_rows(&e.org, "SELECT Id, IsDeleted FROM Account")
        .await
        .iter()
        .filter(|r| r["IsDeleted"] == false)
        .map(|r| r["Id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, live);
}

/// `sfetl plan` takes its bound when it runs; an orchestrator reads the slice later. A full
/// refresh's slice reaches to whatever the org holds when it is read, so a row changed in
/// between is read as changed, not left out of the table the slice replaces. Its STATE saves
/// now minus `cursor_lag`, as a plain full refresh's does.
#[tokio::test]
async fn a_full_refresh_slice_read_after_changes_holds_them() {
    let e = env(20, one_window_config(json!({"cursor_lag": "PT10M"}))).await;
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("Account", &["Id", "Name", "SystemModstamp"], "full_refresh")],
    );
    let (config, slice) = full_refresh_slice(&e, &e.config, &cat, "1990-01-01").await;
    // Two seconds pass on the org's clock: the change comes after the plan's bound.
    e.org.control("clock", &json!({"offset_seconds": 2})).await;
    let id = org_rows(&e.org, "SELECT Id FROM Account ORDER BY Id LIMIT 1").await[0]["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let edit = json!({"object": "Account", "id": id, "fields": {"Name": "Changed after the plan"}});
    e.org.control("update", &edit).await;
    let out = read_slice(&config, &cat, &slice).output().await.unwrap();
    assert_ok(&out);
    let rows = records(&messages(&out), "Account");
    assert_eq!(rows.len(), 20);
    let names: Vec<&Value> = rows
        .iter()
        .filter(|r| r["Id"] == id.as_str())
        .map(|r| &r["Name"])
        .collect();
    assert_eq!(names, [&json!("Changed after the plan")]);
    let states = last_states(&messages(&out));
    let cursor = states[0]["stream"]["stream_state"]["slices"][0]["end"]
        .as_str()
        .unwrap_or_else(|| panic!("{states}"));
    let cursor = chrono::DateTime::parse_from_rfc3339(cursor).unwrap();
    assert!(
        cursor < chrono::Utc::now() - chrono::Duration::minutes(9),
        "{cursor}: {states}"
    );
}

/// Reads every slice of `slices` (one process each, in turn); their STATEs.
async fn read_all_slices(
    dir: &Path,
    config: &Path,
    cat: &Path,
    slices: &[Value],
    tag: &str,
) -> Vec<Value> {
    let mut states = Vec::new();
    for (i, s) in slices.iter().enumerate() {
        let f = dir.join(format!("{tag}-{i}.json"));
        std::fs::write(&f, s.to_string()).unwrap();
        let out = read_slice(config, cat, &f).output().await.unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let msgs = messages(&out);
        states.extend(
            msgs.iter()
                .filter(|m| m["type"] == "STATE")
                .map(|m| m["state"].clone()),
        );
    }
    states
}

/// `sfetl plan` with a state file, 400 rows a slice: its slices and its stderr.
async fn plan_with_state(config: &Path, cat: &Path, state: &Path) -> (Vec<Value>, String) {
    let state = state.to_str().unwrap();
    plan_with_stderr(
        config,
        cat,
        &["--state", state, "--max-rows-per-slice", "400"],
    )
    .await
}

#[tokio::test]
async fn slices_record_the_fields_they_read_so_a_field_added_later_is_backfilled() {
    let e = env(300, json!({"cursor_lag": "PT0S"})).await;
    let export = e.dir.path().join("export");
    let config = parquet_config_default(&e, "pq.json", &export);
    let narrow = catalog(
        e.dir.path(),
        "narrow.json",
        &[(
            "Contact",
            &["Id", "LastName", "SystemModstamp"],
            "incremental",
        )],
    );
    let slices = plan_slices(&config, &narrow, &["--max-rows-per-slice", "400"]).await;
    assert!(slices.len() >= 2, "{slices:?}");
    let dir = e.dir.path();
    let states = read_all_slices(dir, &config, &narrow, &slices, "first").await;
    assert_eq!(states.len(), slices.len());
    for s in &states {
        let blob = &s["stream"]["stream_state"];
        assert_eq!(
            blob["fields_read"]["Contact"],
            json!(["Id", "LastName", "SystemModstamp"]),
            "{blob}"
        );
    }
    let state = write_json(dir, "state1.json", &Value::Array(states.clone()));

    // The same catalog: nothing new, the next plan resumes from the slices' end.
    let (_, stderr) = plan_with_state(&config, &narrow, &state).await;
    assert!(!stderr.contains("the read now includes"), "{stderr}");

    // Email added: the rows the slices read lack it, so the next plan starts again.
    let wide = catalog(
        dir,
        "wide.json",
        &[(
            "Contact",
            &["Id", "LastName", "Email", "SystemModstamp"],
            "incremental",
        )],
    );
    let (again, stderr) = plan_with_state(&config, &wide, &state).await;
    assert!(
        stderr.contains("sfetl plan: Contact: the read now includes a field (Email) that the rows below the saved cursor were read without"),
        "{stderr}"
    );
    let rows: u64 = again
        .iter()
        .map(|s| s["estimated_rows"].as_u64().unwrap())
        .sum();
    assert_eq!(rows as usize, org_ids(&e, "Contact").await.len());

    // Once those slices are read, their STATEs supersede the cursor they set aside.
    let more = read_all_slices(dir, &config, &wide, &again, "backfill").await;
    let mut all = states;
    all.extend(more);
    let state = write_json(dir, "state2.json", &Value::Array(all));
    let (_, stderr) = plan_with_state(&config, &wide, &state).await;
    assert!(!stderr.contains("the read now includes"), "{stderr}");
}

/// `sfetl plan` on a machine whose clock runs ten minutes ahead of the org's: its slices end at
/// the org's time, not ten minutes into the org's future, and its stderr says why.
#[tokio::test]
async fn a_plan_on_a_machine_clock_ahead_ends_its_slices_at_the_orgs_time() {
    let e = env(50, one_window_config(json!({}))).await;
    e.org
        .control("clock", &json!({"offset_seconds": -600}))
        .await;
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("Account", &["Id", "SystemModstamp"], "incremental")],
    );
    let before = chrono::Utc::now() - chrono::Duration::seconds(600);
    let (slices, stderr) = plan_with_stderr(&e.config, &cat, &[]).await;
    let after = chrono::Utc::now() - chrono::Duration::seconds(600);
    let upper = time(slices.last().unwrap()["upper"].as_str().unwrap());
    assert!(
        upper <= after && upper >= before - chrono::Duration::seconds(2),
        "the last slice ends at {upper}; the org's clock went from {before} to {after}"
    );
    assert!(
        stderr.contains("this machine's clock is ")
            && stderr
                .contains(" s ahead of the org's (by the Date header of Salesforce's answers)"),
        "{stderr}"
    );
}
