//! Incremental reads on SystemModstamp against the simulator, asserting exact Ids: changes and
//! deletions arrive and nothing else, ties across window and page boundaries are neither lost
//! nor duplicated, resuming from any STATE loses nothing, and Airbyte's state forms resume.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::common::*;

fn cfg(extra: Value) -> Value {
    one_window_config(extra)
}

fn ids(rows: &[Value]) -> BTreeSet<String> {
    rows.iter()
        .map(|r| r["Id"].as_str().unwrap().to_string())
        .collect()
}

fn json_ids(v: &Value) -> BTreeSet<String> {
    v["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn only_changed_and_deleted_rows_arrive_and_an_untouched_org_yields_none() {
    let e = env(20, cfg(json!({}))).await;
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[(
            "Account",
            &["Id", "Name", "IsDeleted", "SystemModstamp"],
            "incremental",
        )],
    );
    let first = read_ok(&e, &cat, None).await;
    assert_eq!(records(&first, "Account").len(), 20);
    let s1 = write_json(e.dir.path(), "s1.json", &last_states(&first));

    let second = read_ok(&e, &cat, Some(&s1)).await;
    assert_eq!(
        records(&second, "Account").len(),
        0,
        "an untouched org yields 0 rows"
    );
    let s2 = write_json(e.dir.path(), "s2.json", &last_states(&second));

    let touched = json_ids(
        &e.org
            .control("touch", &json!({"object": "Account", "count": 7}))
            .await,
    );
    let deleted = json_ids(
        &e.org
            .control("delete", &json!({"object": "Account", "count": 3}))
            .await,
    );
    assert_eq!(touched.len(), 7);
    assert_eq!(deleted.len(), 3);
    // The simulator may pick the same rows for both: a row touched then deleted is read once,
    // in its deleted version.

    let third = read_ok(&e, &cat, Some(&s2)).await;
    let rows = records(&third, "Account");
    let expected: BTreeSet<String> = touched.union(&deleted).cloned().collect();
    assert_eq!(ids(&rows), expected);
    let mut versions: BTreeSet<(String, String)> = BTreeSet::new();
    for r in &rows {
        let id = r["Id"].as_str().unwrap().to_string();
        assert_eq!(r["IsDeleted"], json!(deleted.contains(&id)), "{r}");
        versions.insert((id, r["SystemModstamp"].as_str().unwrap().to_string()));
    }
    // After deduplication on (Id, SystemModstamp): exactly one row per changed record.
    assert_eq!(versions.len(), expected.len(), "{rows:?}");
    // The deleted endpoint's rows carry the deletion time.
    for r in rows.iter().filter(|r| !r["_sfetl_deleted_at"].is_null()) {
        assert!(deleted.contains(r["Id"].as_str().unwrap()));
    }
}

#[tokio::test]
async fn ten_thousand_rows_sharing_one_systemmodstamp_across_window_and_page_boundaries() {
    // A fifth of the simulated rows share SystemModstamp 2025-01-15T12:00:00.000Z; 17,000
    // Accounts give 51,000 Contacts, over 10,000 of them on that instant. The window boundary is
    // placed exactly on it and pages are 3,000 rows, so ties straddle both.
    let e = env(
        17_000,
        cfg(
            json!({"start_date": "2025-01-14T12:00:00Z", "end_date": "2025-01-16T12:00:00Z",
        "stream_slice_step": "P1D", "bulk_max_records": 3000}),
        ),
    )
    .await;
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("Contact", &["Id", "SystemModstamp"], "incremental")],
    );
    let want: BTreeSet<String> = ids(&org_rows(
        &e.org,
        "SELECT Id FROM Contact WHERE SystemModstamp >= 2025-01-14T12:00:00.000Z AND SystemModstamp < 2025-01-16T12:00:00.000Z",
    )
    .await);
    let tie = org_rows(
        &e.org,
        "SELECT Id FROM Contact WHERE SystemModstamp = 2025-01-15T12:00:00.000Z",
    )
    .await;
    assert!(tie.len() >= 10_000, "{} rows share the instant", tie.len());

    let msgs = read_ok(&e, &cat, None).await;
    let rows = records(&msgs, "Contact");
    assert_eq!(rows.len(), want.len(), "no row read twice in one run");
    assert_eq!(ids(&rows), want);

    // Resume from every STATE of the run (as after a crash right after it): what was written
    // before that STATE plus the resumed run holds every row, exactly once after dedupe.
    let state_positions: Vec<usize> = msgs
        .iter()
        .enumerate()
        .filter(|(_, m)| m["type"] == "STATE")
        .map(|(i, _)| i)
        .collect();
    assert!(
        state_positions.len() >= 5,
        "page checkpoints: {}",
        state_positions.len()
    );
    for &at in state_positions.iter().step_by(state_positions.len() / 4) {
        let before: Vec<Value> = records(&msgs[..at], "Contact");
        let state = write_json(
            e.dir.path(),
            "mid.json",
            &json!([msgs[at]["state"].clone()]),
        );
        let resumed = records(&read_ok(&e, &cat, Some(&state)).await, "Contact");
        let mut versions: BTreeSet<(String, String)> = BTreeSet::new();
        for r in before.iter().chain(&resumed) {
            versions.insert((
                r["Id"].as_str().unwrap().to_string(),
                r["SystemModstamp"].as_str().unwrap().to_string(),
            ));
        }
        let union: BTreeSet<String> = versions.iter().map(|(id, _)| id.clone()).collect();
        let missing: Vec<&String> = want.difference(&union).take(5).collect();
        let extra: Vec<&String> = union.difference(&want).take(5).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "resuming from STATE #{at} ({}): {} missing, e.g. {missing:?}; {} extra, e.g. {extra:?}",
            msgs[at]["state"]["stream"]["stream_state"],
            want.difference(&union).count(),
            union.difference(&want).count()
        );
        assert_eq!(
            versions.len(),
            want.len(),
            "one version per row after dedupe"
        );
    }
}

#[tokio::test]
async fn an_edit_made_while_the_results_wait_for_download_arrives_in_the_next_read() {
    // Bulk results are the rows as the job's query found them: a user's edit between the
    // job's completion and the download is not in them, so the next read must bring it.
    // One window, so one Bulk job holds every row (with two, the edit would land after the
    // first job and move its row past the read's end, for the next read alone to bring).
    let e = env(20, cfg(json!({"stream_slice_step": "P36500D"}))).await;
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("Account", &["Id", "Name", "SystemModstamp"], "incremental")],
    );
    let org_row = &org_rows(&e.org, "SELECT Id, Name FROM Account ORDER BY Id LIMIT 1").await[0];
    let (id, name) = (org_row["Id"].as_str().unwrap(), org_row["Name"].clone());
    let edit = json!({"object": "Account", "id": id, "fields": {"Name": "Edited mid-read"},
        "when": "next_bulk_query_completes"});
    e.org.control("update", &edit).await;

    let first = read_ok(&e, &cat, None).await;
    assert_eq!(jobs(&e.org).await, 1);
    let rows = records(&first, "Account");
    assert_eq!(rows.len(), 20);
    let seen: Vec<&Value> = rows.iter().filter(|r| r["Id"] == id).collect();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["Name"], name, "the results as the job found them");
    let s1 = write_json(e.dir.path(), "s1.json", &last_states(&first));

    let second = records(&read_ok(&e, &cat, Some(&s1)).await, "Account");
    assert_eq!(ids(&second), BTreeSet::from([id.to_string()]));
    assert_eq!(second[0]["Name"], "Edited mid-read");
    let stamp = &org_rows(
        &e.org,
        &format!("SELECT SystemModstamp FROM Account WHERE Id = '{id}'"),
    )
    .await[0];
    let instant = |v: &Value| {
        chrono::DateTime::parse_from_str(v.as_str().unwrap(), "%Y-%m-%dT%H:%M:%S%.f%#z").unwrap()
    };
    assert_eq!(
        instant(&second[0]["SystemModstamp"]),
        instant(&stamp["SystemModstamp"])
    );
}

#[tokio::test]
async fn airbyte_salesforce_state_forms_resume_correctly() {
    let e = env(30, cfg(json!({"lookback_window": "PT0S"}))).await;
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("Account", &["Id", "SystemModstamp"], "incremental")],
    );
    let before_touch = chrono::Utc::now() - chrono::Duration::seconds(1);
    let touched = json_ids(
        &e.org
            .control("touch", &json!({"object": "Account", "count": 5}))
            .await,
    );
    let at = before_touch
        .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
        .to_string();
    let forms = [
        json!({"Account": {"SystemModstamp": at}}),
        json!([{"type": "STREAM", "stream": {"stream_descriptor": {"name": "Account"}, "stream_state": {"SystemModstamp": at}}}]),
        json!([{"type": "STREAM", "stream": {"stream_descriptor": {"name": "Account"}, "stream_state": {
            "state_type": "date-range", "slices": [{"start": "2000-01-01T00:00:00.000Z", "end": before_touch.to_rfc3339()}]}}}]),
    ];
    for (i, form) in forms.iter().enumerate() {
        let state = write_json(e.dir.path(), &format!("airbyte{i}.json"), form);
        let rows = records(&read_ok(&e, &cat, Some(&state)).await, "Account");
        assert_eq!(ids(&rows), touched, "state form {i}: {form}");
    }
}

/// Every Parquet row under `export` as (Id, SystemModstamp), and the file names seen.
fn parquet_versions(export: &Path) -> (Vec<(String, i64)>, Vec<String>) {
    use arrow::array::AsArray;
    let mut rows = Vec::new();
    let mut names = Vec::new();
    for sync in std::fs::read_dir(export.join("Contact")).unwrap() {
        for f in std::fs::read_dir(sync.unwrap().path()).unwrap() {
            let path = f.unwrap().path();
            names.push(path.file_name().unwrap().to_str().unwrap().to_string());
            if path.extension().and_then(|e| e.to_str()) != Some("parquet") {
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
                let ts = b
                    .column_by_name("SystemModstamp")
                    .unwrap()
                    .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                    .clone();
                for i in 0..b.num_rows() {
                    rows.push((ids.value(i).to_string(), ts.value(i)));
                }
            }
        }
    }
    (rows, names)
}

#[tokio::test]
async fn kill_9_at_seeded_points_then_resume_loses_nothing_and_leaves_no_partial_file() {
    let (e, cat, want) = contacts_in_pages(2000, 400).await;
    assert_eq!(want.len(), 6000);
    for seed in [3u64, 11, 29] {
        let export = e.dir.path().join(format!("export-{seed}"));
        let config = parquet_config(&e, &format!("cfg-{seed}.json"), &export);
        // Kill after a seeded number of checkpoints (pages and windows both emit STATE).
        let kill_after = 1 + (seed * 7919) as usize % 12;
        let cmd = read_cmd(&config, &cat);
        let (seen, last) = kill_at(cmd, kill_after, |m| m["type"] == "STATE").await;
        let last_state = last.map(|m| m["state"].clone());
        assert_eq!(seen, kill_after, "seed {seed}: the run was killed mid-way");
        org_finishes_running_jobs(&e.org).await;
        let state_arg = match &last_state {
            Some(s) => json!([s]),
            None => json!([]),
        };
        let state = write_json(e.dir.path(), &format!("state-{seed}.json"), &state_arg);
        read_files(&config, &cat, Some(&state)).await;

        // The killed run's folder keeps exactly the files its last STATE committed: anything it
        // published afterwards was removed, so no window has two complete-looking copies.
        let output = &last_state.as_ref().unwrap()["stream"]["stream_state"]["output"];
        let killed_sync = export
            .join("Contact")
            .join(output["sync_id"].as_str().unwrap());
        let kept = std::fs::read_dir(&killed_sync)
            .map(|d| {
                d.filter(|f| {
                    let f = f.as_ref().unwrap().file_name();
                    f.to_str().unwrap().starts_with("part-")
                })
                .count()
            })
            .unwrap_or(0);
        assert_eq!(
            kept as u64,
            output["parts"].as_u64().unwrap(),
            "seed {seed}: {killed_sync:?}"
        );
        let (rows, names) = parquet_versions(&export);
        assert!(
            names.iter().all(|n| (n.starts_with("part-")
                && n.ends_with(".parquet")
                && !n.contains('#'))
                || n == "_sfetl_sync.json"),
            "seed {seed}: {names:?}"
        );
        let versions: BTreeSet<(String, i64)> = rows.iter().cloned().collect();
        let got: BTreeSet<String> = versions.iter().map(|(id, _)| id.clone()).collect();
        assert_eq!(
            got, want,
            "seed {seed} (killed after {kill_after} STATEs): every row present"
        );
        assert_eq!(
            versions.len(),
            want.len(),
            "seed {seed}: exactly once after dedupe"
        );
    }
}

#[tokio::test]
async fn a_row_committed_late_is_picked_up_thanks_to_the_lookback_and_missed_without_it() {
    for (lookback, expect_found) in [("PT10M", true), ("PT0S", false)] {
        let e = env(20, cfg(json!({"lookback_window": lookback}))).await;
        let cat = catalog(
            e.dir.path(),
            "cat.json",
            &[("Account", &["Id", "SystemModstamp"], "incremental")],
        );
        let first = read_ok(&e, &cat, None).await;
        let states = last_states(&first);
        let cursor = states[0]["stream"]["stream_state"]["cursor"]
            .as_str()
            .unwrap()
            .to_string();
        let read_up_to = chrono::DateTime::parse_from_rfc3339(&cursor).unwrap();
        // A long transaction commits now, with a SystemModstamp one minute inside the window the
        // first run already read.
        let stamp = (read_up_to - chrono::Duration::minutes(1))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let late = json_ids(
            &e.org
                .control(
                    "touch",
                    &json!({"object": "Account", "count": 1, "stamp": stamp}),
                )
                .await,
        );
        assert_eq!(late.len(), 1);
        let state = write_json(e.dir.path(), "s1.json", &states);
        let rows = records(&read_ok(&e, &cat, Some(&state)).await, "Account");
        if expect_found {
            assert_eq!(
                ids(&rows),
                late,
                "lookback {lookback}: the late row is read"
            );
        } else {
            assert!(
                ids(&rows).is_empty(),
                "lookback {lookback}: without a lookback the late row is lost: {rows:?}"
            );
        }
    }
}

#[tokio::test]
async fn faults_during_an_incremental_parquet_read_lose_and_duplicate_nothing() {
    let (e, cat, want) = contacts_in_pages(1000, 500).await;
    let export = e.dir.path().join("export");
    let config = parquet_config(&e, "cfg.json", &export);
    e.org.control("expire_tokens", &json!({})).await;
    e.org
        .control(
            "fail",
            &json!({"kind": "bulk_query", "status": 503, "count": 3}),
        )
        .await;
    e.org
        .control("cut", &json!({"kind": "bulk_query", "count": 1}))
        .await;
    e.org.control("fail_bulk_job", &json!({"count": 1})).await;
    read_files(&config, &cat, None).await;
    let (rows, names) = parquet_versions(&export);
    assert!(
        names.iter().all(|n| (n.starts_with("part-")
            && n.ends_with(".parquet"))
            || n == "_sfetl_sync.json"),
        "{names:?}"
    );
    let versions: BTreeSet<(String, i64)> = rows.iter().cloned().collect();
    assert_eq!(rows.len(), want.len(), "no row written twice");
    assert_eq!(
        versions
            .iter()
            .map(|(id, _)| id.clone())
            .collect::<BTreeSet<_>>(),
        want
    );
    // (The failed-job fault may land on the job whose creation answer was cut and retried; the
    // Bulk -> REST fallback itself is covered in read_e2e.)
}

#[tokio::test]
async fn sigterm_stops_after_the_page_in_hand_and_the_last_state_resumes() {
    let e = env(
        1000,
        cfg(json!({"stream_slice_step": "P365D", "bulk_max_records": 300})),
    )
    .await;
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("Contact", &["Id", "SystemModstamp"], "incremental")],
    );
    let want = ids(&org_rows(&e.org, "SELECT Id FROM Contact").await);
    let mut child = sfetl()
        .args([
            "read",
            "--config",
            e.config.to_str().unwrap(),
            "--catalog",
            cat.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().unwrap().to_string();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let mut msgs: Vec<Value> = Vec::new();
    let mut signalled = false;
    while let Some(line) = lines.next_line().await.unwrap() {
        let m: Value = serde_json::from_str(&line).unwrap();
        if m["type"] == "STATE" && !signalled {
            std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap();
            signalled = true;
        }
        msgs.push(m);
    }
    let status = child.wait().await.unwrap();
    assert_eq!(status.code(), Some(1), "a stopped read is not a success");
    let statuses: Vec<&Value> = msgs
        .iter()
        .filter(|m| m["trace"]["type"] == "STREAM_STATUS")
        .map(|m| &m["trace"]["stream_status"]["status"])
        .collect();
    assert_eq!(statuses.last().unwrap().as_str(), Some("INCOMPLETE"));
    let before = records(&msgs, "Contact");
    assert!(
        before.len() < want.len(),
        "stopped early: {} rows",
        before.len()
    );
    let last = msgs.iter().rposition(|m| m["type"] == "STATE").unwrap();
    assert!(
        msgs[last + 1..].iter().all(|m| m["type"] != "RECORD"),
        "no row after the last STATE"
    );
    let state = write_json(e.dir.path(), "s.json", &last_states(&msgs));
    let after = records(&read_ok(&e, &cat, Some(&state)).await, "Contact");
    let union: BTreeSet<String> = ids(&before).union(&ids(&after)).cloned().collect();
    assert_eq!(union, want);
}

#[tokio::test]
async fn max_api_usage_percent_stops_cleanly_and_says_why() {
    let e = env(20, cfg(json!({"max_api_usage_percent": 90}))).await;
    e.org
        .control("quota", &json!({"max": 1000, "used": 950}))
        .await;
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("Account", &["Id", "SystemModstamp"], "incremental")],
    );
    let out = read_unchecked(&e, &cat).await;
    assert_eq!(out.status.code(), Some(1));
    let msgs = messages(&out);
    let logs = logs(&msgs);
    assert!(
        logs.iter().any(
            |l| l.starts_with("Account: stopping because the org's API usage is ")
                && l.contains("past max_api_usage_percent 90")
        ),
        "{logs:?}"
    );
    assert!(records(&msgs, "Account").is_empty());
    let error = msgs.iter().find(|m| m["trace"]["type"] == "ERROR").unwrap();
    assert_eq!(error["trace"]["error"]["failure_type"], "transient_error");
}

#[tokio::test]
async fn hard_deletes_beyond_a_purged_delete_log_are_found_by_reconciliation() {
    let e = env(20, cfg(json!({}))).await;
    let export = e.dir.path().join("export");
    let config = parquet_config(&e, "parquet.json", &export);
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[(
            "Account",
            &["Id", "Name", "IsDeleted", "SystemModstamp"],
            "incremental",
        )],
    );
    let first = messages(&read_files(&config, &cat, None).await);
    let s1 = write_json(e.dir.path(), "s1.json", &last_states(&first));

    // Three Accounts hard-deleted (recycle bin emptied), and the org's delete log purged: the
    // `deleted` endpoint can no longer tell, and queryAll does not return them either.
    let gone = json_ids(
        &e.org
            .control("delete", &json!({"object": "Account", "count": 3}))
            .await,
    );
    e.org.control("purge", &json!({})).await;
    e.org.control("delete_log/purge", &json!({})).await;

    let second = messages(&read_files(&config, &cat, Some(&s1)).await);
    let rows = records(&second, "Account");
    assert!(rows.is_empty(), "Parquet output: no RECORD lines");
    let logs = logs(&second);
    assert!(
        logs.iter().any(
            |l| l.starts_with("Account: the org's delete log does not cover ")
                && l.ends_with(
                    "; compared the 20 Ids of the export with the 17 the org holds: 3 hard-deleted"
                )
        ),
        "{logs:?}"
    );
    // The export's current view no longer holds them.
    let (_, batches) = sfetl::query::sql(
        export.to_str().unwrap(),
        "SELECT \"Id\" FROM \"Account\" ORDER BY \"Id\"",
    )
    .await
    .unwrap();
    let mut left = BTreeSet::new();
    for b in &batches {
        let col = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8).unwrap();
        left.extend(
            col.as_any()
                .downcast_ref::<arrow::array::StringArray>()
                .unwrap()
                .iter()
                .flatten()
                .map(str::to_string),
        );
    }
    assert_eq!(left.len(), 17);
    assert!(left.is_disjoint(&gone), "{gone:?} still in the export");

    // Records output has no export to compare with: a WARN says what may be missing.
    let records_run = read_ok(&e, &cat, Some(&s1)).await;
    let warned: Vec<String> = logs_of(&records_run, "WARN");
    assert!(
        warned.iter().any(|l| l.starts_with("Account: the org's delete log does not cover ")
            && l.ends_with(", so records hard-deleted in that span are not reported; with Parquet or Delta output sfetl finds them by comparing Ids, or run a full refresh")),
        "{warned:?}"
    );
}

/// The LOG messages of `level`.
fn logs_of(msgs: &[Value], level: &str) -> Vec<String> {
    msgs.iter()
        .filter(|m| m["type"] == "LOG" && m["log"]["level"] == level)
        .map(|m| m["log"]["message"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn the_quota_stops_a_read_within_one_page_of_the_threshold() {
    // 3,000 Accounts in windows and pages of about 500, one window at a time; the quota
    // crosses 90% a few calls in.
    let e = env(
        3000,
        cfg(
            json!({"max_api_usage_percent": 90, "bulk_max_records": 500, "max_concurrent_jobs": 1}),
        ),
    )
    .await;
    e.org
        // 892: the 900th call is then the first window's results page (after Account's
        // describe, a count query, the `deleted` and `updated` calls, the job's create and two
        // polls; the token is not an API call).
        .control("quota", &json!({"max": 1000, "used": 892}))
        .await;
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("Account", &["Id", "SystemModstamp"], "incremental")],
    );
    let out = read_unchecked(&e, &cat).await;
    assert_eq!(out.status.code(), Some(1));
    let msgs = messages(&out);
    let rows = records(&msgs, "Account").len();
    assert!(rows > 0 && rows < 3000, "stopped mid-read: {rows} rows");
    // The last answer before the stop reported 900 calls (90%); after it, only the cleanup
    // of the Bulk job was sent.
    let stats = e.org.stats().await;
    let usage = stats["api_usage"].as_u64().unwrap();
    assert!(
        (900..=901).contains(&usage),
        "usage {usage}: {stats} {:?}",
        logs_of(&msgs, "WARN")
    );
    // Every row delivered is covered by a STATE (each page is a checkpoint).
    let covered: f64 = msgs
        .iter()
        .filter(|m| m["type"] == "STATE")
        .map(|m| m["state"]["sourceStats"]["recordCount"].as_f64().unwrap())
        .sum();
    assert_eq!(covered as usize, rows, "every page delivered has its STATE");
}

#[tokio::test]
async fn a_saved_cursor_in_the_future_is_named_and_not_saved_again() {
    let e = env(5, cfg(json!({}))).await;
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("Account", &["Id", "SystemModstamp"], "incremental")],
    );
    let state = write_json(
        e.dir.path(),
        "future.json",
        &json!([{"type": "STREAM", "stream": {"stream_descriptor": {"name": "Account"},
            "stream_state": {"cursor_field": "SystemModstamp", "cursor": "2099-01-01T00:00:00.000Z"}}}]),
    );
    let before = chrono::Utc::now();
    let msgs = read_ok(&e, &cat, Some(&state)).await;
    assert!(records(&msgs, "Account").is_empty());
    let warned = logs_of(&msgs, "WARN");
    assert!(
        warned.iter().any(|l| l.starts_with(
            "Account: the saved cursor 2099-01-01T00:00:00.000Z is in the future (the read stops at "
        )),
        "{warned:?}"
    );
    let analytics: Vec<&Value> = msgs
        .iter()
        .filter(|m| m["type"] == "TRACE" && m["trace"]["type"] == "ANALYTICS")
        .collect();
    assert_eq!(analytics.len(), 1, "{msgs:?}");
    assert_eq!(
        analytics[0]["trace"]["analytics"]["type"],
        "sfetl.future_cursor"
    );
    let saved = last_states(&msgs)[0]["stream"]["stream_state"]["cursor"]
        .as_str()
        .unwrap()
        .to_string();
    let saved = chrono::DateTime::parse_from_rfc3339(&saved).unwrap();
    assert!(
        saved <= chrono::Utc::now() && saved >= before - chrono::Duration::seconds(1),
        "saved {saved}"
    );
}

/// Runs `sfetl read` with the env's config and `cat`, whatever its exit code.
async fn read_unchecked(e: &Env, cat: &Path) -> std::process::Output {
    read_out(&e.config, cat).await
}

/// An org of `3 * scale` Contacts read incrementally in yearly windows and Bulk pages of
/// `page` rows: the env, its catalog, and every Contact Id.
async fn contacts_in_pages(scale: u64, page: u64) -> (Env, std::path::PathBuf, BTreeSet<String>) {
    let e = env(
        scale,
        cfg(json!({"stream_slice_step": "P365D", "bulk_max_records": page})),
    )
    .await;
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("Contact", &["Id", "Email", "SystemModstamp"], "incremental")],
    );
    let want = ids(&org_rows(&e.org, "SELECT Id FROM Contact").await);
    (e, cat, want)
}

#[tokio::test]
async fn a_full_refresh_returns_rows_changed_within_the_cursor_lag() {
    let e = env(20, cfg(json!({"cursor_lag": "PT10M"}))).await;
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("Account", &["Id", "Name", "SystemModstamp"], "full_refresh")],
    );
    // Changed just now: inside the lag an incremental cursor stays behind.
    let touched = json_ids(
        &e.org
            .control("touch", &json!({"object": "Account", "count": 2}))
            .await,
    );
    assert_eq!(touched.len(), 2);
    let msgs = read_ok(&e, &cat, None).await;
    let got = ids(&records(&msgs, "Account"));
    let want = ids(&org_rows(&e.org, "SELECT Id FROM Account").await);
    assert_eq!(want.len(), 20);
    assert_eq!(got, want, "every current row, the two changed just now too");
    // Its STATE still stays the lag behind, for an incremental read started from it.
    let states = last_states(&msgs);
    let cursor = states[0]["stream"]["stream_state"]["cursor"]
        .as_str()
        .unwrap();
    let cursor = chrono::DateTime::parse_from_rfc3339(cursor).unwrap();
    assert!(
        cursor < chrono::Utc::now() - chrono::Duration::minutes(9),
        "{cursor}"
    );
}

#[tokio::test]
async fn deleted_rows_leave_the_latest_view_when_the_catalog_leaves_is_deleted_out() {
    let e = env(20, cfg(json!({"lookback_window": "PT10M"}))).await;
    let export = e.dir.path().join("export");
    let config = parquet_config(&e, "pq.json", &export);
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("Account", &["Id", "Name", "SystemModstamp"], "incremental")],
    );
    let first = messages(&read_files(&config, &cat, None).await);
    let s1 = write_json(e.dir.path(), "s1.json", &last_states(&first));
    // Deleted two minutes ago: the org's delete log covers whole minutes, so a deletion of
    // the current minute would only be reported by a later run.
    let stamp = stamp_minutes_ago(2);
    let deleted = json_ids(
        &e.org
            .control(
                "delete",
                &json!({"object": "Account", "count": 3, "stamp": stamp}),
            )
            .await,
    );
    assert_eq!(deleted.len(), 3);
    read_files(&config, &cat, Some(&s1)).await;
    // The delete log's rows are in the history, marked only by their deletion time...
    let sql = "SELECT Id FROM Account_history WHERE _sfetl_deleted_at IS NOT NULL ORDER BY Id";
    let marked = query_csv(&export, sql).await;
    let marked: BTreeSet<String> = marked.lines().skip(1).map(str::to_string).collect();
    assert_eq!(marked, deleted);
    // ...and the latest view holds the org's 17 live Accounts, none of the deleted three.
    let live = query_csv(&export, "SELECT count(*) AS n FROM Account").await;
    assert_eq!(live, "n\n17\n");
}

#[tokio::test]
async fn an_end_date_in_the_future_stops_the_cursor_at_now_so_later_changes_are_read() {
    let e = env(20, cfg(json!({"end_date": "2100-01-01"}))).await;
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("Account", &["Id", "SystemModstamp"], "incremental")],
    );
    let started = chrono::Utc::now();
    let first = read_ok(&e, &cat, None).await;
    assert_eq!(records(&first, "Account").len(), 20);
    let state = last_states(&first);
    let cursor = state[0]["stream"]["stream_state"]["cursor"]
        .as_str()
        .unwrap_or_else(|| panic!("{state}"));
    let cursor = sfetl::state::parse_datetime(cursor).unwrap();
    assert!(
        cursor <= chrono::Utc::now() && cursor >= started - chrono::Duration::seconds(61),
        "the cursor saved is the read's now (capped to the minute the delete log covers), not the end_date: {cursor}"
    );
    let s1 = write_json(e.dir.path(), "s1.json", &last_states(&first));
    let touched = json_ids(
        &e.org
            .control("touch", &json!({"object": "Account", "count": 4}))
            .await,
    );
    let second = read_ok(&e, &cat, Some(&s1)).await;
    let rows = records(&second, "Account");
    assert!(ids(&rows).is_superset(&touched), "{rows:?}");
    // Besides the touched rows, only rows of the minute before the cursor come again.
    for r in rows
        .iter()
        .filter(|r| !touched.contains(r["Id"].as_str().unwrap()))
    {
        let at = sfetl::state::parse_datetime(r["SystemModstamp"].as_str().unwrap()).unwrap();
        assert!(at >= cursor, "{r}");
    }
    assert!(
        logs(&second).iter().all(|l| !l.contains("in the future")),
        "{:?}",
        logs(&second)
    );
}

#[tokio::test]
async fn an_earlier_start_date_reads_the_rows_before_the_old_one() {
    let e = env(20, cfg(json!({}))).await;
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("Account", &["Id", "SystemModstamp"], "incremental")],
    );
    let org = org_rows(&e.org, "SELECT Id, SystemModstamp FROM Account").await;
    let mut stamps: Vec<String> = org
        .iter()
        .map(|r| r["SystemModstamp"].as_str().unwrap().to_string())
        .collect();
    stamps.sort();
    // The day of the middle row: rows on both sides of it.
    let start = stamps[stamps.len() / 2][..10].to_string();
    let after: BTreeSet<String> = org
        .iter()
        .filter(|r| r["SystemModstamp"].as_str().unwrap()[..10] >= start[..])
        .map(|r| r["Id"].as_str().unwrap().to_string())
        .collect();
    assert!(!after.is_empty() && after.len() < org.len(), "{start}");
    let mut late: Value = serde_json::from_slice(&std::fs::read(&e.config).unwrap()).unwrap();
    late["start_date"] = json!(start);
    let late = write_json(e.dir.path(), "late.json", &late);
    let first = messages(&read_files(&late, &cat, None).await);
    assert_eq!(ids(&records(&first, "Account")), after);
    let state = write_json(e.dir.path(), "state.json", &last_states(&first));
    // The env's config starts in 2000: the rows before `start` are read, not only changes.
    let again = read_ok(&e, &cat, Some(&state)).await;
    assert_eq!(ids(&records(&again, "Account")).len(), org.len());
    let warns = warnings(&again);
    let was = format!("{start}T00:00:00.000Z");
    assert_eq!(
        warns,
        [format!(
            "Account: start_date is earlier than the {was} the saved cursor's reads began at: reading every row again from start_date (2000-01-01T00:00:00.000Z), so the rows before {was} are read too"
        )]
    );
    // Read from 2000 on since: the next run reads on from its cursor.
    let state = write_json(e.dir.path(), "state2.json", &last_states(&again));
    let third = read_ok(&e, &cat, Some(&state)).await;
    assert_eq!(records(&third, "Account").len(), 0);
    assert!(
        logs(&third)
            .iter()
            .all(|l| !l.contains("start_date is earlier"))
    );
}

#[tokio::test]
async fn a_merge_of_accounts_reaches_the_export_as_a_deletion_and_moved_contacts() {
    // merge(): the loser is deleted (MasterRecordId = the master) and its Contacts move to the
    // master; an incremental read sees both through the cursors alone.
    let e = env(20, cfg(json!({}))).await;
    let export = e.dir.path().join("export");
    let config = parquet_config(&e, "parquet.json", &export);
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[
            (
                "Account",
                &[
                    "Id",
                    "Name",
                    "MasterRecordId",
                    "IsDeleted",
                    "SystemModstamp",
                ],
                "incremental",
            ),
            (
                "Contact",
                &["Id", "AccountId", "IsDeleted", "SystemModstamp"],
                "incremental",
            ),
        ],
    );
    let first = messages(&read_files(&config, &cat, None).await);
    let s1 = write_json(e.dir.path(), "s1.json", &last_states(&first));
    let owners = parent_accounts(&e.org, "Contact").await;
    let (master, loser) = (owners[0].clone(), owners[1].clone());
    let of = |a: &str| format!("SELECT Id FROM Contact WHERE AccountId = '{a}' ORDER BY Id");
    let moved = ids(&org_rows(&e.org, &of(&loser)).await);
    let all = &moved | &ids(&org_rows(&e.org, &of(&master)).await);
    assert!(!moved.is_empty());
    let merge = json!({"object": "Account", "master": master, "losers": [loser]});
    e.org.control("merge", &merge).await;
    e.org.next_second().await;

    read_files(&config, &cat, Some(&s1)).await;
    // The loser's deletion came, naming the master. (When the read starts in a later minute
    // than the merge, the `deleted` endpoint's row for it comes too, without the field.)
    let deletion = query_csv(
        &export,
        &format!("SELECT \"IsDeleted\", \"MasterRecordId\" FROM \"Account_history\" WHERE \"Id\" = '{loser}' AND \"IsDeleted\" AND \"_sfetl_deleted_at\" IS NULL"),
    )
    .await;
    assert_eq!(
        deletion,
        format!("IsDeleted,MasterRecordId\ntrue,{master}\n")
    );
    // The export's latest view: no loser, and every Contact of both under the master.
    let held = query_csv(
        &export,
        &format!("SELECT count(*) AS n FROM \"Account\" WHERE \"Id\" = '{loser}'"),
    )
    .await;
    assert_eq!(held, "n\n0\n");
    let under = query_csv(
        &export,
        &format!("SELECT \"Id\" FROM \"Contact\" WHERE \"AccountId\" = '{master}' ORDER BY \"Id\""),
    )
    .await;
    let under: BTreeSet<String> = under.lines().skip(1).map(str::to_string).collect();
    assert_eq!(under, all);
}

/// A `SystemModstamp` as the org answers it, in µs (as `CAST(... AS BIGINT)` gives it).
fn micros(stamp: &str) -> i64 {
    chrono::DateTime::parse_from_str(stamp, "%Y-%m-%dT%H:%M:%S%.3f%z")
        .unwrap()
        .timestamp_micros()
}

/// `(IsDeleted, SystemModstamp in µs)` of record `id` of `object` in the org (queryAll).
async fn version_in_org(org: &Org, object: &str, id: &str) -> (bool, i64) {
    let soql = format!("SELECT IsDeleted, SystemModstamp FROM {object} WHERE Id = '{id}'");
    let rows = org_rows(org, &soql).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    (
        r["IsDeleted"].as_bool().unwrap(),
        micros(r["SystemModstamp"].as_str().unwrap()),
    )
}

/// `sfetl query` of `Id, IsDeleted, SystemModstamp` (µs) of `table`'s rows `filter` selects.
async fn exported(export: &Path, table: &str, filter: &str) -> String {
    let sql = format!(
        "SELECT DISTINCT \"Id\", \"IsDeleted\", CAST(\"SystemModstamp\" AS BIGINT) AS at FROM \"{table}\" WHERE {filter} ORDER BY \"Id\", at"
    );
    query_csv(export, &sql).await
}

/// The CSV `exported` answers for these rows.
fn csv_of(rows: &[(&str, (bool, i64))]) -> String {
    let mut out = "Id,IsDeleted,at\n".to_string();
    for (id, (deleted, at)) in rows {
        out.push_str(&format!("{id},{deleted},{at}\n"));
    }
    out
}

/// A Parquet export and a catalog of `streams` (each with `Id`, `IsDeleted`,
/// `SystemModstamp` and `fields`), incremental.
fn undelete_setup(e: &Env, streams: &[(&str, &[&str])]) -> (PathBuf, PathBuf, PathBuf) {
    let export = e.dir.path().join("export");
    let config = parquet_config(e, "parquet.json", &export);
    let fields: Vec<Vec<&str>> = streams
        .iter()
        .map(|(_, f)| [&["Id", "IsDeleted", "SystemModstamp"], *f].concat())
        .collect();
    let listed: Vec<(&str, &[&str], &str)> = streams
        .iter()
        .zip(&fields)
        .map(|((s, _), f)| (*s, f.as_slice(), "incremental"))
        .collect();
    let cat = catalog(e.dir.path(), "cat.json", &listed);
    (export, config, cat)
}

/// One incremental read from `state` (the first when None), once the org has left the second of
/// its last change; the state file of its last STATEs.
async fn read_step(e: &Env, config: &Path, cat: &Path, state: Option<&Path>, n: u32) -> PathBuf {
    let msgs = messages(&read_settled(&e.org, config, cat, state).await);
    write_json(e.dir.path(), &format!("s{n}.json"), &last_states(&msgs))
}

#[tokio::test]
async fn an_undeleted_account_is_live_again_in_the_export_with_its_three_versions() {
    let e = env(20, cfg(json!({}))).await;
    let (export, config, cat) = undelete_setup(&e, &[("Account", &["Name"])]);
    let s1 = read_step(&e, &config, &cat, None, 1).await;
    let id = ids(&org_rows(&e.org, "SELECT Id FROM Account ORDER BY Id LIMIT 1").await)
        .pop_first()
        .unwrap();
    let live = version_in_org(&e.org, "Account", &id).await;
    let del = json!({"object": "Account", "ids": [id]});
    e.org.control("delete", &del).await;
    let deleted = version_in_org(&e.org, "Account", &id).await;
    assert!(deleted.0 && deleted.1 > live.1, "{deleted:?}");

    let s2 = read_step(&e, &config, &cat, Some(&s1), 2).await;
    let this = format!("\"Id\" = '{id}'");
    assert_eq!(exported(&export, "Account", &this).await, csv_of(&[]));
    let out = e.org.control("undelete", &del).await;
    assert_eq!(out["ids"], json!([id]));
    let undeleted = version_in_org(&e.org, "Account", &id).await;
    assert!(!undeleted.0 && undeleted.1 > deleted.1, "{undeleted:?}");

    read_step(&e, &config, &cat, Some(&s2), 3).await;
    // Live again in the latest view, in the version the undelete made...
    assert_eq!(
        exported(&export, "Account", &this).await,
        csv_of(&[(&id, undeleted)])
    );
    // ...and the history holds the three versions the org had.
    assert_eq!(
        exported(&export, "Account_history", &this).await,
        csv_of(&[(&id, live), (&id, deleted), (&id, undeleted)])
    );
    let n = query_csv(&export, "SELECT count(*) AS n FROM \"Account\"").await;
    assert_eq!(n, "n\n20\n");
}

/// A raw `Account` read into an export that already holds a mapping's `account` folder: on
/// this case-sensitive disk the folders stay apart, and the read says (LOG WARN) that a copy on
/// a case-insensitive one would mix them.
#[tokio::test]
async fn a_stream_whose_folder_differs_only_in_case_from_one_in_the_export_is_warned_about() {
    let e = env(5, cfg(json!({}))).await;
    let (export, config, cat) = undelete_setup(&e, &[("Account", &["Name"])]);
    std::fs::create_dir_all(export.join("account").join("20250101T000000Z-aaaaaa")).unwrap();
    let msgs = messages(&read_files(&config, &cat, None).await);
    let warned: Vec<String> = msgs
        .iter()
        .filter(|m| m["type"] == "LOG" && m["log"]["level"] == "WARN")
        .map(|m| m["log"]["message"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        warned,
        [format!(
            "output.path {}: the folders Account and account differ only in case; they stay apart here, but an export copied to a case-insensitive file system (macOS, Windows) would mix their files in one folder",
            std::fs::canonicalize(&export).unwrap().display()
        )]
    );
    let n = query_csv(&export, "SELECT count(*) AS n FROM \"Account\"").await;
    assert_eq!(n, "n\n5\n");
}

/// Reconciling Account reads Account's files only: a file of another stream in the export that
/// cannot be read (here not Parquet at all) neither fails the read nor is opened.
#[tokio::test]
async fn reconciling_one_stream_opens_none_of_the_other_streams_files() {
    let extra = json!({"reconcile_deletes": "always"});
    let e = env(20, cfg(extra)).await;
    let (export, config, cat) = undelete_setup(&e, &[("Account", &["Name"])]);
    let s1 = read_step(&e, &config, &cat, None, 1).await;
    let other = export.join("Contact").join("20250101T000000Z-aaaaaa");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("part-00000.parquet"), b"not a Parquet file").unwrap();
    let gone = ids(&org_rows(&e.org, "SELECT Id FROM Account ORDER BY Id LIMIT 1").await);
    e.org
        .control("delete", &json!({"object": "Account", "ids": gone}))
        .await;
    e.org.control("purge", &json!({})).await;
    let msgs = messages(&read_files(&config, &cat, Some(&s1)).await);
    let compared: Vec<String> = logs(&msgs)
        .into_iter()
        .filter(|l| l.contains("compared the"))
        .collect();
    assert_eq!(
        compared,
        [
            "Account: reconcile_deletes is \"always\"; compared the 20 Ids of the export with the 19 the org holds: 1 hard-deleted"
        ]
    );
    // `sfetl query` too opens the files of the tables its SQL names, and no others.
    let n = query_csv(&export, "SELECT count(*) AS n FROM \"Account_history\"").await;
    assert_eq!(n, "n\n21\n");
}

#[tokio::test]
async fn with_reconcile_deletes_always_undeleted_accounts_are_live_again_even_undeleted_in_the_deleting_second()
 {
    let extra = json!({"reconcile_deletes": "always", "lookback_window": "PT10M"});
    let e = env(20, cfg(extra)).await;
    let (export, config, cat) = undelete_setup(&e, &[("Account", &["Name"])]);
    let s1 = read_step(&e, &config, &cat, None, 1).await;
    let accounts: Vec<String> =
        ids(&org_rows(&e.org, "SELECT Id FROM Account ORDER BY Id LIMIT 2").await)
            .into_iter()
            .collect();
    let (a, b) = (&accounts[0], &accounts[1]);
    let del = json!({"object": "Account", "ids": [a]});
    e.org.control("delete", &del).await;
    let msgs = messages(&read_settled(&e.org, &config, &cat, Some(&s1)).await);
    let s2 = write_json(e.dir.path(), "s2.json", &last_states(&msgs));
    // The export (this run's rows included) no longer holds the deleted Account; the org
    // still does, in its recycle bin: nothing is called hard-deleted.
    let compared = |msgs: &[Value]| -> Vec<String> {
        logs(msgs)
            .into_iter()
            .filter(|l| l.contains("compared the"))
            .collect()
    };
    assert_eq!(
        compared(&msgs),
        [
            "Account: reconcile_deletes is \"always\"; compared the 19 Ids of the export with the 20 the org holds: 0 hard-deleted"
        ]
    );
    let this = |id: &str| format!("\"Id\" = '{id}'");
    assert_eq!(exported(&export, "Account", &this(a)).await, csv_of(&[]));

    e.org.control("undelete", &del).await;
    let undeleted = version_in_org(&e.org, "Account", a).await;
    let msgs = messages(&read_settled(&e.org, &config, &cat, Some(&s2)).await);
    let s3 = write_json(e.dir.path(), "s3.json", &last_states(&msgs));
    assert_eq!(
        compared(&msgs),
        [
            "Account: reconcile_deletes is \"always\"; compared the 20 Ids of the export with the 20 the org holds: 0 hard-deleted"
        ]
    );
    assert_eq!(
        exported(&export, "Account", &this(a)).await,
        csv_of(&[(a, undeleted)])
    );

    // Deleted and undeleted in one transaction two minutes ago (a minute the delete log
    // covers): one instant for both, so the delete log's row and the live row tie on the
    // cursor. The live row is the record's state; the log only says it was deleted then.
    let stamp = stamp_minutes_ago(2);
    let both = json!({"object": "Account", "ids": [b], "stamp": stamp});
    e.org.control("delete", &both).await;
    e.org.control("undelete", &both).await;
    let back = version_in_org(&e.org, "Account", b).await;
    assert_eq!(back, (false, micros(&stamp.replace('Z', "+0000"))));
    // The org's delete log lists the deletion...
    let (status, log) = e
        .org
        .get_json(&format!("sobjects/Account/deleted/?{}", recent_range()))
        .await;
    assert_eq!(status, 200, "{log}");
    let listed: Vec<String> = values_of(&log["deletedRecords"], "id");
    assert!(listed.contains(b), "{log}");
    read_settled(&e.org, &config, &cat, Some(&s3)).await;
    // ...but the record is live: the live row stands, and sfetl left the log's row out.
    assert_eq!(
        exported(&export, "Account", &this(b)).await,
        csv_of(&[(b, back)])
    );
    let logged = query_csv(
        &export,
        &format!("SELECT count(*) AS n FROM \"Account_history\" WHERE {} AND \"_sfetl_deleted_at\" IS NOT NULL", this(b)),
    )
    .await;
    assert_eq!(logged, "n\n0\n");
    let n = query_csv(&export, "SELECT count(*) AS n FROM \"Account\"").await;
    assert_eq!(n, "n\n20\n");
}

#[tokio::test]
async fn an_undeleted_account_brings_its_cascade_deleted_contacts_back_to_the_contact_stream() {
    let e = env(20, cfg(json!({}))).await;
    let (export, config, cat) =
        undelete_setup(&e, &[("Account", &["Name"]), ("Contact", &["AccountId"])]);
    let s1 = read_step(&e, &config, &cat, None, 1).await;
    let account = parent_accounts(&e.org, "Contact").await[0].clone();
    let under = format!("\"AccountId\" = '{account}'");
    let soql = format!("SELECT Id FROM Contact WHERE AccountId = '{account}' ORDER BY Id");
    let contacts: Vec<String> = ids(&org_rows(&e.org, &soql).await).into_iter().collect();
    assert!(!contacts.is_empty());
    let mut before = Vec::new();
    for c in &contacts {
        before.push((c.as_str(), version_in_org(&e.org, "Contact", c).await));
    }
    assert_eq!(exported(&export, "Contact", &under).await, csv_of(&before));

    let del = json!({"object": "Account", "ids": [account]});
    let out = e.org.control("delete", &del).await;
    let cascaded: BTreeSet<String> = json_ids(&json!({"ids": out["cascaded"]}));
    assert!(contacts.iter().all(|c| cascaded.contains(c)), "{out}");
    let s2 = read_step(&e, &config, &cat, Some(&s1), 2).await;
    // The Contacts left the Contact stream's latest view with their Account.
    assert_eq!(exported(&export, "Contact", &under).await, csv_of(&[]));
    let this = format!("\"Id\" = '{account}'");
    assert_eq!(exported(&export, "Account", &this).await, csv_of(&[]));

    let out = e.org.control("undelete", &del).await;
    assert_eq!(json_ids(&json!({"ids": out["cascaded"]})), cascaded);
    let mut after = Vec::new();
    for c in &contacts {
        let v = version_in_org(&e.org, "Contact", c).await;
        assert!(!v.0 && v.1 > before[after.len()].1.1, "{c}: {v:?}");
        after.push((c.as_str(), v));
    }
    read_step(&e, &config, &cat, Some(&s2), 3).await;
    // Back in the latest view, each in the version the undelete made.
    assert_eq!(exported(&export, "Contact", &under).await, csv_of(&after));
    let undeleted = version_in_org(&e.org, "Account", &account).await;
    assert_eq!(
        exported(&export, "Account", &this).await,
        csv_of(&[(&account, undeleted)])
    );
}

/// A copy of the config `base` named `name` with `extra`'s keys set on top.
fn config_with(e: &Env, base: &Path, name: &str, extra: Value) -> PathBuf {
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(base).unwrap()).unwrap();
    for (k, v) in extra.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    write_json(e.dir.path(), name, &cfg)
}

/// The end of the first read of the June 2025 timeline, and of the later ones.
const JUNE_FIRST_END: &str = "2025-06-10T00:00:00Z";
const JUNE_END: &str = "2025-06-30T00:00:00Z";
/// The cursor of the first Bulk page of the later read's second window.
const JUNE_PAGE: &str = "2025-06-27T00:00:00.000Z";

/// A simulator of 20 Accounts read in Bulk pages (and windows) of 5 rows, its delete log
/// reaching back 1000 days (15 by default), for a fixed timeline in June 2025 (no generated
/// row is later than January 2025), with the default lookback of 10 minutes.
async fn june_env(extra: Value) -> Env {
    let mut config = json!({"bulk_max_records": 5});
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    let e = env(20, cfg(config)).await;
    e.org
        .control("limits", &json!({"delete_log_days": 1000}))
        .await;
    e
}

/// A Parquet export of [`june_env`]'s org and the configs of its reads: the first, up to
/// June 10th, and the later ones, up to June 30th.
fn june_parquet(e: &Env) -> (PathBuf, PathBuf, PathBuf) {
    let export = e.dir.path().join("export");
    let parquet = parquet_config(e, "parquet.json", &export);
    let first = config_with(
        e,
        &parquet,
        "first.json",
        json!({"end_date": JUNE_FIRST_END}),
    );
    let later = config_with(e, &parquet, "later.json", json!({"end_date": JUNE_END}));
    (export, first, later)
}

/// The changes of the timeline after a read up to June 10th: the first Account by Id
/// hard-deleted on June 25th (the recycle bin emptied: only the delete log tells), then ten
/// other Accounts changed on the 27th and 28th (two Bulk pages of 5 rows). The next read
/// counts 10 rows in [June 9th 23:50, June 30th): two windows of about 5 rows, split in the
/// middle, June 19th 23:55; the second holds the deletion and both pages. Returns the Id of
/// the hard-deleted Account.
async fn june_changes(org: &Org) -> String {
    let accounts = ids(&org_rows(org, "SELECT Id FROM Account ORDER BY Id").await);
    let first = accounts.first().unwrap().clone();
    june_changes_of(org, &first, &[]).await;
    first
}

/// [`june_changes`] with `gone` as the hard-deleted Account, and the ten changed ones chosen
/// (in Id order) among those neither `gone` nor in `spared`.
async fn june_changes_of(org: &Org, gone: &str, spared: &[&str]) {
    let accounts: Vec<String> = ids(&org_rows(org, "SELECT Id FROM Account ORDER BY Id").await)
        .into_iter()
        .filter(|id| id != gone && !spared.contains(&id.as_str()))
        .collect();
    assert!(accounts.len() >= 10, "{accounts:?}");
    let delete = json!({"object": "Account", "ids": [gone], "stamp": "2025-06-25T00:00:00.000Z"});
    org.control("delete", &delete).await;
    org.control("purge", &json!({})).await;
    let soql = format!("SELECT Id FROM Account WHERE Id = '{gone}'");
    assert!(org_rows(org, &soql).await.is_empty());
    for (ids, stamp) in [
        (&accounts[0..5], JUNE_PAGE),
        (&accounts[5..10], "2025-06-28T00:00:00.000Z"),
    ] {
        let touch = json!({"object": "Account", "ids": ids, "stamp": stamp});
        org.control("touch", &touch).await;
    }
}

/// Runs `sfetl read --config C --catalog K --state S` and kills it (kill -9) right after the
/// STATE whose `cursor` (found by `cursor_of` in the stream state) is the first page's of the
/// second window, while that window's `deleted` call (slowed down to 2 s) is under way;
/// returns that STATE.
async fn killed_after_the_page(
    org: &Org,
    config: &Path,
    cat: &Path,
    state: &Path,
    cursor_of: impl Fn(&Value) -> &Value,
) -> Value {
    org.control("latency", &json!({"kind": "sync", "ms": 2000}))
        .await;
    let mut cmd = read_cmd(config, cat);
    cmd.args(["--state", state.to_str().unwrap()]);
    let (seen, last) = kill_at(cmd, 1, |m| {
        m["type"] == "STATE" && cursor_of(&m["state"]["stream"]["stream_state"]) == JUNE_PAGE
    })
    .await;
    org.control("latency", &json!({"kind": "sync", "ms": 0}))
        .await;
    assert_eq!(seen, 1, "the read was killed after its first page's STATE");
    last.unwrap()["state"].clone()
}

/// The RECORDs of `stream` that come from the delete log.
fn from_the_delete_log(msgs: &[Value], stream: &str) -> Vec<Value> {
    records(msgs, stream)
        .into_iter()
        .filter(|r| !r["_sfetl_deleted_at"].is_null())
        .collect()
}

#[tokio::test]
async fn a_hard_delete_before_a_page_checkpoint_of_a_killed_read_still_arrives_on_resume() {
    let e = june_env(json!({})).await;
    let (export, first_config, later_config) = june_parquet(&e);
    let records_config = config_with(&e, &e.config, "records.json", json!({"end_date": JUNE_END}));
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[(
            "Account",
            &["Id", "Name", "IsDeleted", "SystemModstamp"],
            "incremental",
        )],
    );
    let first = messages(&read_files(&first_config, &cat, None).await);
    let s1 = last_states(&first);
    assert_eq!(
        s1[0]["stream"]["stream_state"]["cursor"], "2025-06-10T00:00:00.000Z",
        "{s1}"
    );
    let s1 = write_json(e.dir.path(), "s1.json", &s1);
    let gone = june_changes(&e.org).await;
    // Read without a stop, the next run reports the deletion (records output: the export
    // stays as it is).
    let whole = messages(&read_files(&records_config, &cat, Some(&s1)).await);
    let reported = from_the_delete_log(&whole, "Account");
    assert_eq!(reported.len(), 1, "{reported:?}");
    assert_eq!(reported[0]["Id"], json!(gone));

    // Killed after the STATE of the second window's first page, before its `deleted` call.
    let killed = killed_after_the_page(&e.org, &later_config, &cat, &s1, |s| &s["cursor"]).await;
    // Its STATE says where the deletions were delivered up to: the end of the first window.
    assert_eq!(
        killed["stream"]["stream_state"]["deletions_to"], "2025-06-19T23:55:00.000Z",
        "{killed}"
    );
    // The export does not know of the deletion yet.
    let held = format!("SELECT count(*) AS n FROM \"Account\" WHERE \"Id\" = '{gone}'");
    assert_eq!(query_csv(&export, &held).await, "n\n1\n");

    // Resumed from that STATE: the hard delete of June 25th, before the page's cursor, comes.
    let state = write_json(e.dir.path(), "killed.json", &json!([killed]));
    let resumed = messages(&read_files(&records_config, &cat, Some(&state)).await);
    assert_eq!(
        from_the_delete_log(&resumed, "Account"),
        [json!({"Id": gone, "Name": null, "IsDeleted": true,
                "SystemModstamp": "2025-06-25T00:00:00Z",
                "_sfetl_deleted_at": "2025-06-25T00:00:00Z"})],
        "the killed STATE: {killed}"
    );
    // `sfetl plan` from that STATE: its first slice asks for the deletions from there too.
    let slices = plan_slices(&records_config, &cat, &["--state", state.to_str().unwrap()]).await;
    assert_eq!(
        slices[0]["deletions_from"], "2025-06-19T23:55:00.000Z",
        "{slices:?}"
    );
    assert!(
        slices[1..]
            .iter()
            .all(|s| s.get("deletions_from").is_none())
    );
    let slice = write_json(e.dir.path(), "slice.json", &slices[0]);
    let out = read_slice(&records_config, &cat, &slice)
        .output()
        .await
        .unwrap();
    assert_ok(&out);
    let deleted = from_the_delete_log(&messages(&out), "Account");
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    assert_eq!(deleted[0]["Id"], json!(gone));

    read_files(&later_config, &cat, Some(&state)).await;
    let sql = "SELECT \"Id\", \"IsDeleted\" FROM \"Account_history\" WHERE \"_sfetl_deleted_at\" IS NOT NULL";
    assert_eq!(
        query_csv(&export, sql).await,
        format!("Id,IsDeleted\n{gone},true\n")
    );
    // The latest view: the 19 Accounts the org holds, not the hard-deleted one.
    assert_eq!(query_csv(&export, &held).await, "n\n0\n");
    let n = query_csv(&export, "SELECT count(*) AS n FROM \"Account\"").await;
    assert_eq!(n, "n\n19\n");
}

#[tokio::test]
async fn a_mapped_source_killed_after_a_page_checkpoint_gets_its_hard_delete_on_resume() {
    let mapping = one_source_mapping("company", "Account", &[("name", "Name")], None);
    let e = june_env(json!({"mapping": mapping})).await;
    let first_config = config_with(
        &e,
        &e.config,
        "first.json",
        json!({"end_date": JUNE_FIRST_END}),
    );
    let later_config = config_with(&e, &e.config, "later.json", json!({"end_date": JUNE_END}));
    let cat = catalog(e.dir.path(), "cat.json", &[("company", &[], "incremental")]);
    let first = messages(&read_files(&first_config, &cat, None).await);
    let s1 = write_json(e.dir.path(), "s1.json", &last_states(&first));
    let gone = june_changes(&e.org).await;
    let killed = killed_after_the_page(&e.org, &later_config, &cat, &s1, |s| {
        &s["sources"]["Account"]["cursor"]
    })
    .await;
    let source = &killed["stream"]["stream_state"]["sources"]["Account"];
    assert_eq!(
        source["deletions_to"], "2025-06-19T23:55:00.000Z",
        "{killed}"
    );
    let state = write_json(e.dir.path(), "killed.json", &json!([killed]));
    let resumed = messages(&read_files(&later_config, &cat, Some(&state)).await);
    let deleted: Vec<Value> = records(&resumed, "company")
        .into_iter()
        .filter(|r| r["_sfetl_is_deleted"] == json!(true))
        .collect();
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    assert_eq!(deleted[0]["id"], json!(gone), "{deleted:?}");
    // The resumed run's STATE has caught up: no deletions lag its cursor.
    let last = last_states(&resumed);
    let source = &last[0]["stream"]["stream_state"]["sources"]["Account"];
    assert_eq!(source["cursor"], "2025-06-30T00:00:00.000Z", "{last}");
    assert!(source.get("deletions_to").is_none(), "{last}");
}

#[tokio::test]
async fn a_lookup_cleared_before_the_page_checkpoint_of_a_killed_read_is_in_the_export() {
    let e = june_env(json!({})).await;
    let (export, first_config, later_config) = june_parquet(&e);
    let fields = ["Id", "Name", "ParentId", "IsDeleted", "SystemModstamp"];
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("Account", &fields, "incremental")],
    );
    let soql = "SELECT Id, ParentId FROM Account WHERE ParentId != null ORDER BY Id";
    let row = org_rows(&e.org, soql).await[0].clone();
    let text = |v: &Value| v.as_str().unwrap().to_string();
    let (child, parent) = (text(&row["Id"]), text(&row["ParentId"]));
    let first = messages(&read_files(&first_config, &cat, None).await);
    let s1 = write_json(e.dir.path(), "s1.json", &last_states(&first));
    let child_at = version_in_org(&e.org, "Account", &child).await.1;
    // The parent hard-deleted on June 25th clears the child's lookup; the child's stamp, long
    // before, does not move.
    june_changes_of(&e.org, &parent, &[&child]).await;
    assert_eq!(
        version_in_org(&e.org, "Account", &child).await,
        (false, child_at)
    );

    // Killed after the STATE of the second window's first page (June 27th, past the
    // deletion): the child read again for its cleared lookup is committed with that page.
    let killed = killed_after_the_page(&e.org, &later_config, &cat, &s1, |s| &s["cursor"]).await;
    let versions = [(parent.as_str(), child_at), ("null", child_at)];
    assert_eq!(
        lookup_rows(&export, "Account_history", "ParentId", &child).await,
        lookup_csv(&child, &versions),
        "the killed STATE: {killed}"
    );
    // Resumed from it, the read's span starts after the deletion: the child is not read again,
    // and the export keeps the cleared lookup.
    let state = write_json(e.dir.path(), "killed.json", &json!([killed]));
    read_files(&later_config, &cat, Some(&state)).await;
    assert_eq!(
        lookup_rows(&export, "Account_history", "ParentId", &child).await,
        lookup_csv(&child, &versions)
    );
    assert_eq!(
        lookup_rows(&export, "Account", "ParentId", &child).await,
        lookup_csv(&child, &[("null", child_at)])
    );
}

/// How many rows of `table` in the export's latest view hold one of `ids` in `field`.
async fn pointing(export: &Path, table: &str, field: &str, ids: &BTreeSet<String>) -> String {
    let list: Vec<String> = ids.iter().map(|id| format!("'{id}'")).collect();
    let sql = format!(
        "SELECT count(DISTINCT \"Id\") AS n FROM \"{table}\" WHERE \"{field}\" IN ({})",
        list.join(",")
    );
    let n = query_csv(export, &sql).await;
    n.trim_start_matches("n\n").trim().to_string()
}

/// `Id, <field> ('null' for none), SystemModstamp (µs)` of the rows of `table` whose `Id` is
/// `id`, in extraction order.
async fn lookup_rows(export: &Path, table: &str, field: &str, id: &str) -> String {
    let sql = format!(
        "SELECT \"Id\", COALESCE(\"{field}\", 'null') AS v, CAST(\"SystemModstamp\" AS BIGINT) AS at FROM \"{table}\" WHERE \"Id\" = '{id}' ORDER BY \"_sfetl_extracted_at\""
    );
    query_csv(export, &sql).await
}

/// The CSV [`lookup_rows`] answers for these `(lookup value, SystemModstamp)` versions of `id`.
fn lookup_csv(id: &str, versions: &[(&str, i64)]) -> String {
    let mut out = "Id,v,at\n".to_string();
    for (v, at) in versions {
        out.push_str(&format!("{id},{v},{at}\n"));
    }
    out
}

/// The INFO lines of `msgs` about rows read again for a cleared lookup (up to " since"), in
/// order (streams are read at once).
fn cleared_logs(msgs: &[Value]) -> Vec<String> {
    logs(msgs)
        .into_iter()
        .filter(|l| l.contains("rows read again by Id"))
        .map(|l| l.split(" since ").next().unwrap().to_string())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[tokio::test]
async fn a_deleted_parent_clears_lookups_no_cursor_sees_and_an_undelete_restores_them_in_the_export()
 {
    // A lookback of ten minutes: the deletions below are dated three minutes back, since the
    // `deleted` endpoint covers whole minutes only (a deletion of the current minute shows in
    // a later run).
    let e = env(100, cfg(json!({"lookback_window": "PT10M"}))).await;
    let (export, config, cat) = undelete_setup(
        &e,
        &[
            ("Account", &["Name", "ParentId"]),
            ("Contact", &["ReportsToId", "AccountId"]),
        ],
    );
    // A generated child Account under a parent, and a generated report of a manager, neither
    // Contact under the parent (whose deletion takes its Contacts with it): all changed long
    // before the lookback, so only the lookups' deletions bring them back.
    let soql = "SELECT Id, ParentId FROM Account WHERE ParentId != null ORDER BY Id";
    let row = org_rows(&e.org, soql).await[0].clone();
    let text = |v: &Value| v.as_str().unwrap().to_string();
    let (child, parent) = (text(&row["Id"]), text(&row["ParentId"]));
    let soql = "SELECT Id, AccountId, ReportsToId FROM Contact ORDER BY Id";
    let contacts = org_rows(&e.org, soql).await;
    let account_of = |id: &Value| {
        contacts
            .iter()
            .find(|c| c["Id"] == *id)
            .map(|c| c["AccountId"].clone())
    };
    let pair = contacts
        .iter()
        .find(|c| {
            let outside = |a: Option<Value>| a.is_some_and(|a| a != json!(parent));
            !c["ReportsToId"].is_null()
                && outside(account_of(&c["Id"]))
                && outside(account_of(&c["ReportsToId"]))
        })
        .expect("a report and a manager outside the parent Account");
    let (report, manager) = (text(&pair["Id"]), text(&pair["ReportsToId"]));
    let s1 = read_step(&e, &config, &cat, None, 1).await;
    let child_at = version_in_org(&e.org, "Account", &child).await.1;
    let report_at = version_in_org(&e.org, "Contact", &report).await.1;
    assert_eq!(
        lookup_rows(&export, "Account", "ParentId", &child).await,
        lookup_csv(&child, &[(&parent, child_at)])
    );

    // The deletions clear the lookups in the org, without moving the children's stamps.
    let stamp = stamp_minutes_ago(3);
    let parent_del = json!({"object": "Account", "ids": [parent]});
    let manager_del = json!({"object": "Contact", "ids": [manager]});
    let dated = |del: &Value| {
        let mut del = del.clone();
        del["stamp"] = json!(stamp);
        del
    };
    let cascaded = e.org.control("delete", &dated(&parent_del)).await["cascaded"].clone();
    e.org.control("delete", &dated(&manager_del)).await;
    // The Contacts deleted (the manager, and the parent's Contacts by cascade), and the rows
    // of the export that point at one of them.
    let mut gone: BTreeSet<String> = json_ids(&json!({"ids": cascaded}));
    gone.retain(|id| id.starts_with("003"));
    gone.insert(manager.clone());
    let reports = pointing(&export, "Contact", "ReportsToId", &gone).await;
    let kids = pointing(
        &export,
        "Account",
        "ParentId",
        &BTreeSet::from([parent.clone()]),
    )
    .await;
    assert_eq!(
        version_in_org(&e.org, "Account", &child).await,
        (false, child_at)
    );
    e.org.control("stats/reset", &json!({})).await;
    let msgs = messages(&read_files(&config, &cat, Some(&s1)).await);
    let s2 = write_json(e.dir.path(), "s2.json", &last_states(&msgs));
    // Each stream asked its parents' delete log once beside its own (Account: the Account's
    // own window and its ParentId's; Contact: its own and its ReportsToId's; Account's for
    // Contact's AccountId is not asked: that relationship cascades).
    let stats = e.org.stats().await;
    assert_eq!(stats["by_kind"]["sync"], json!(4), "{stats}");
    assert_eq!(
        cleared_logs(&msgs),
        vec![
            format!("Account: {kids} rows read again by Id (1 query) because their ParentId pointed at one of 1 Account deleted and 0 undeleted").as_str(),
            format!("Contact: {reports} rows read again by Id (1 query) because their ReportsToId pointed at one of {} Contact deleted and 0 undeleted", gone.len()).as_str(),
        ],
        "{:?}",
        logs(&msgs)
    );
    // The latest view holds the null, same cursor; the history both versions.
    assert_eq!(
        lookup_rows(&export, "Account", "ParentId", &child).await,
        lookup_csv(&child, &[("null", child_at)])
    );
    assert_eq!(
        lookup_rows(&export, "Account_history", "ParentId", &child).await,
        lookup_csv(&child, &[(&parent, child_at), ("null", child_at)])
    );
    assert_eq!(
        lookup_rows(&export, "Contact", "ReportsToId", &report).await,
        lookup_csv(&report, &[("null", report_at)])
    );
    // No live row of the export points at a deleted record any more.
    let parents = BTreeSet::from([parent.clone()]);
    assert_eq!(
        pointing(&export, "Account", "ParentId", &parents).await,
        "0"
    );
    assert_eq!(
        pointing(&export, "Contact", "ReportsToId", &gone).await,
        "0"
    );

    // Undeleted: the lookups point at them again, in the org and in the export.
    e.org.control("undelete", &parent_del).await;
    e.org.control("undelete", &manager_del).await;
    assert_eq!(
        version_in_org(&e.org, "Account", &child).await,
        (false, child_at)
    );
    // Without the lookback, the deletions are before this read's span: the parents deleted
    // before it and live again since are the undeleted ones.
    let config = config_with(
        &e,
        &config,
        "no_lookback.json",
        json!({"lookback_window": "PT0S"}),
    );
    let msgs = messages(&read_files(&config, &cat, Some(&s2)).await);
    assert_eq!(
        cleared_logs(&msgs),
        vec![
            format!(
                "Account: {kids} rows read again by Id (1 query) because their ParentId pointed at one of 0 Account deleted and 1 undeleted"
            ),
            format!(
                "Contact: {reports} rows read again by Id (1 query) because their ReportsToId pointed at one of 0 Contact deleted and {} undeleted",
                gone.len()
            ),
        ],
        "{:?}",
        logs(&msgs)
    );
    assert_eq!(
        lookup_rows(&export, "Account", "ParentId", &child).await,
        lookup_csv(&child, &[(&parent, child_at)])
    );
    assert_eq!(
        lookup_rows(&export, "Account_history", "ParentId", &child).await,
        lookup_csv(
            &child,
            &[(&parent, child_at), ("null", child_at), (&parent, child_at)]
        )
    );
    assert_eq!(
        lookup_rows(&export, "Contact", "ReportsToId", &report).await,
        lookup_csv(&report, &[(&manager, report_at)])
    );
}

/// A Parquet read of Accounts (`Name`, `ParentId`) over an org of 2,500, where a parent and
/// 399 other Accounts were deleted three minutes back and read so by a second read; then the
/// parent is undeleted, `touched` other Accounts are edited, and a third read runs without
/// lookback, so that all 400 deletions are older than its span. Asserts that it finds the
/// undelete and restores the lookups; returns its REST queries of the rows changed since its
/// span starts.
async fn undelete_among_older_deletions(touched: u64) -> Vec<String> {
    let e = env(2500, cfg(json!({"lookback_window": "PT10M"}))).await;
    let (export, config, cat) = undelete_setup(&e, &[("Account", &["Name", "ParentId"])]);
    let soql = "SELECT Id, ParentId FROM Account WHERE ParentId != null ORDER BY Id";
    let parent = org_rows(&e.org, soql).await[0]["ParentId"]
        .as_str()
        .unwrap()
        .to_string();
    let s1 = read_step(&e, &config, &cat, None, 1).await;
    let parents = BTreeSet::from([parent.clone()]);
    let before = pointing(&export, "Account", "ParentId", &parents).await;
    // 399 Accounts that are neither the parent nor one of its children, and the parent.
    let soql = format!(
        "SELECT Id FROM Account WHERE Id != '{parent}' AND (ParentId = null OR ParentId != '{parent}') ORDER BY Id LIMIT 399"
    );
    let mut deleted: Vec<Value> = org_rows(&e.org, &soql)
        .await
        .iter()
        .map(|r| r["Id"].clone())
        .collect();
    deleted.push(json!(parent));
    let stamp = stamp_minutes_ago(3);
    let del = json!({"object": "Account", "ids": deleted, "stamp": stamp});
    e.org.control("delete", &del).await;
    let s2 = read_step(&e, &config, &cat, Some(&s1), 2).await;
    let cleared = pointing(&export, "Account", "ParentId", &parents).await;

    let undelete = json!({"object": "Account", "ids": [parent]});
    e.org.control("undelete", &undelete).await;
    if touched > 0 {
        let touch = json!({"object": "Account", "count": touched});
        e.org.control("touch", &touch).await;
    }
    let config = config_with(
        &e,
        &config,
        "no_lookback.json",
        json!({"lookback_window": "PT0S"}),
    );
    e.org.control("stats/reset", &json!({})).await;
    let msgs = messages(&read_files(&config, &cat, Some(&s2)).await);
    let changed: Vec<String> = e
        .org
        .soql_log("SELECT Id FROM Account WHERE SystemModstamp >= ")
        .await
        .into_iter()
        .map(|q| {
            // The span's start is the run's own, and an Id list is told by its length.
            let (head, tail) = q.split_once(">= ").unwrap();
            let rest = tail.split_once(' ').map_or("", |(_, r)| r);
            let rest = match rest.split_once("Id IN (") {
                Some((and, ids)) => format!("{and}Id IN (<{} Ids>)", ids.matches('\'').count() / 2),
                None => rest.to_string(),
            };
            format!("{head}>= <start> {rest}").trim_end().to_string()
        })
        .collect();
    // Either way the undelete is found: the export points at the parent again, as before.
    let restored = pointing(&export, "Account", "ParentId", &parents).await;
    assert_ne!(before, "0");
    assert_eq!((cleared.as_str(), &restored), ("0", &before));
    assert_eq!(
        cleared_logs(&msgs),
        vec![format!(
            "Account: {before} rows read again by Id (1 query) because their ParentId pointed at one of 0 Account deleted and 1 undeleted"
        )]
    );
    changed
}

#[tokio::test]
async fn an_undelete_among_hundreds_of_older_deletions_is_found_by_one_query_of_the_changed_rows() {
    let changed = undelete_among_older_deletions(0).await;
    assert_eq!(
        changed,
        vec!["SELECT Id FROM Account WHERE SystemModstamp >= <start> LIMIT 2000"]
    );
}

#[tokio::test]
async fn an_undelete_among_older_deletions_in_a_busy_org_is_found_by_their_ids() {
    // 2,000 Accounts edited since: one page of changed rows does not hold them all, so the
    // 400 deleted Ids are asked, 300 a query.
    let changed = undelete_among_older_deletions(2000).await;
    assert_eq!(
        changed,
        vec![
            "SELECT Id FROM Account WHERE SystemModstamp >= <start> LIMIT 2000",
            "SELECT Id FROM Account WHERE SystemModstamp >= <start> AND Id IN (<300 Ids>)",
            "SELECT Id FROM Account WHERE SystemModstamp >= <start> AND Id IN (<100 Ids>)",
        ]
    );
}

#[tokio::test]
async fn a_window_with_hundreds_of_deletions_finds_the_undeleted_ones_in_one_query_of_the_changed_rows()
 {
    let e = env(1000, cfg(json!({"lookback_window": "PT10M"}))).await;
    let (export, config, cat) = undelete_setup(&e, &[("Account", &["Name"])]);
    let s1 = read_step(&e, &config, &cat, None, 1).await;
    // 400 Accounts deleted three minutes back (the `deleted` endpoint covers whole minutes);
    // one undeleted now, one in the deleting second (its stamp ties with the deletion's).
    let deleted: Vec<String> =
        ids(&org_rows(&e.org, "SELECT Id FROM Account ORDER BY Id LIMIT 400").await)
            .into_iter()
            .collect();
    let stamp = stamp_minutes_ago(3);
    let del = json!({"object": "Account", "ids": deleted, "stamp": stamp});
    e.org.control("delete", &del).await;
    let (now, same_second) = (&deleted[7], &deleted[300]);
    let undelete = |id: &str, stamp: Option<&str>| {
        let mut u = json!({"object": "Account", "ids": [id]});
        if let Some(s) = stamp {
            u["stamp"] = json!(s);
        }
        u
    };
    e.org.control("undelete", &undelete(now, None)).await;
    e.org
        .control("undelete", &undelete(same_second, Some(&stamp)))
        .await;
    e.org.control("stats/reset", &json!({})).await;
    read_step(&e, &config, &cat, Some(&s1), 2).await;

    // 398 deletions reach the export; the two undeleted Accounts stay live in it.
    let n = "SELECT count(*) AS n FROM \"Account\"";
    assert_eq!(query_csv(&export, n).await, "n\n602\n");
    let n = "SELECT count(DISTINCT \"Id\") AS n FROM \"Account_history\" WHERE \"IsDeleted\"";
    assert_eq!(query_csv(&export, n).await, "n\n398\n");
    for id in [now, same_second] {
        let live = version_in_org(&e.org, "Account", id).await;
        assert_eq!(
            exported(&export, "Account", &format!("\"Id\" = '{id}'")).await,
            csv_of(&[(id, live)])
        );
    }
    // One query of the rows changed since the earliest deletion, instead of 300 Ids and 100.
    let live_checks = e.org.soql_log("SELECT Id FROM Account WHERE ").await;
    assert_eq!(live_checks.len(), 1, "{live_checks:?}");
    let start =
        chrono::DateTime::parse_from_rfc3339(&stamp).unwrap() - chrono::Duration::seconds(1);
    assert_eq!(
        live_checks[0],
        format!(
            "SELECT Id FROM Account WHERE SystemModstamp >= {} LIMIT 2000",
            start
                .to_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        )
    );
}

/// This machine's clock ten minutes ahead of the org's (the simulator's clock set back stands
/// for it), with no lag and no lookback to cover for it: a read takes its bound, and the cursor
/// its STATE saves, from the org's clock (the `Date` header of its answers), so a change the org
/// makes after the read arrives in the next one. Bounded by this machine's clock, a full
/// refresh saved a cursor ten minutes in the org's future, and an incremental read from it
/// skipped every change of those ten minutes. (An incremental read of an object the `deleted`
/// endpoint serves was already held back by that endpoint's `latestDateCovered`, which is the
/// org's time; read 3 checks it stays so.)
#[tokio::test]
async fn a_machine_clock_ahead_of_the_orgs_loses_no_change() {
    reads_with_the_orgs_clock(-600).await;
}

/// This machine's clock ten minutes behind the org's: every read would stop ten minutes short of
/// the org's changes; it reads up to the org's time instead.
#[tokio::test]
async fn a_machine_clock_behind_the_orgs_reads_up_to_the_orgs_time() {
    reads_with_the_orgs_clock(600).await;
}

/// A full refresh and two incremental reads of Account with the org's clock `offset` seconds
/// from this machine's (no lag, no lookback): one warning naming the difference, a saved cursor
/// at the org's time, and each change made between reads in the next read.
async fn reads_with_the_orgs_clock(offset: i64) {
    let e = env(20, cfg(json!({"lookback_window": "PT0S"}))).await;
    let set_clock = |seconds: i64| {
        let org = &e.org;
        async move {
            org.control("clock", &json!({"offset_seconds": seconds}))
                .await;
        }
    };
    set_clock(offset).await;
    let fields: &[&str] = &["Id", "Name", "SystemModstamp"];
    let full = catalog(
        e.dir.path(),
        "full.json",
        &[("Account", fields, "full_refresh")],
    );
    let incremental = catalog(
        e.dir.path(),
        "inc.json",
        &[("Account", fields, "incremental")],
    );
    let before = chrono::Utc::now();
    let first = read_ok(&e, &full, None).await;
    let after = chrono::Utc::now();
    assert_eq!(records(&first, "Account").len(), 20);
    let warned: Vec<String> = warnings(&first)
        .into_iter()
        .filter(|w| w.contains("clock"))
        .collect();
    assert_eq!(warned.len(), 1, "one warning a run: {warned:?}");
    let (way, so, range) = if offset < 0 {
        (
            "ahead of",
            "so no row changed in between is skipped",
            599.9..=601.5,
        )
    } else {
        (
            "behind",
            "so they reach the org's latest changes",
            598.5..=600.1,
        )
    };
    let lead: f64 = warned[0]
        .strip_prefix("this machine's clock is ")
        .and_then(|w| w.split(&format!(" s {way} the org's")).next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(range.contains(&lead), "{}", warned[0]);
    assert!(warned[0].ends_with(&format!(
        "reads take now from the org's clock instead, {so}; set this machine's clock right (NTP)"
    )));
    // The saved cursor is the org's time at the read (to within the header's second), not this
    // machine's.
    let states = last_states(&first);
    let cursor = states[0]["stream"]["stream_state"]["cursor"]
        .as_str()
        .unwrap();
    let cursor: chrono::DateTime<chrono::Utc> = cursor.parse().unwrap();
    let org_before = before + chrono::Duration::seconds(offset);
    let org_after = after + chrono::Duration::seconds(offset);
    assert!(
        cursor <= org_after && cursor >= org_before - chrono::Duration::seconds(2),
        "cursor {cursor}, the org's clock went from {org_before} to {org_after} during the read"
    );
    let mut state = write_json(e.dir.path(), "s1.json", &states);
    let rows = records(&first, "Account");
    let mut earlier = BTreeSet::new();
    for (read, row) in [(2, &rows[0]), (3, &rows[1])] {
        let id = row["Id"].as_str().unwrap().to_string();
        let name = format!("Changed before read {read}");
        e.org
            .control(
                "update",
                &json!({"object": "Account", "id": id, "fields": {"Name": name}}),
            )
            .await;
        // Two seconds pass on the org's clock (read to the second, it would otherwise keep a
        // change of the current second for the next read).
        set_clock(offset + 2 * (read as i64 - 1)).await;
        let msgs = read_ok(&e, &incremental, Some(&state)).await;
        let got = records(&msgs, "Account");
        let changed: Vec<&Value> = got.iter().filter(|r| r["Id"] == id.as_str()).collect();
        assert_eq!(changed.len(), 1, "read {read}: {got:?}");
        assert_eq!(changed[0]["Name"], name);
        // Read 2 starts from the full refresh's cursor, so it holds that change alone; read 3
        // may also hold read 2's again (an incremental STATE keeps its cursor at the start of
        // the minute the `deleted` endpoint has covered).
        let mut allowed = earlier.clone();
        allowed.insert(id.clone());
        assert!(ids(&got).is_subset(&allowed), "read {read}: {got:?}");
        if read == 2 {
            assert_eq!(got.len(), 1);
        }
        earlier.insert(id);
        state = write_json(e.dir.path(), &format!("s{read}.json"), &last_states(&msgs));
    }
}
