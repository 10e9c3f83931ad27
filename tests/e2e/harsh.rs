//! sfetl against the simulator's real-org behaviours (issue 16): query cursors that expire,
//! queries that time out, the daily Bulk job cap, objects that cannot be read the ordinary way,
//! NUL bytes in values. Each test asserts the exact rows and messages of the real binary.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::common::*;

/// `(level, message)` of every LOG, in order.
fn log_lines(msgs: &[Value]) -> Vec<(String, String)> {
    msgs.iter()
        .filter(|m| m["type"] == "LOG")
        .map(|m| {
            (
                m["log"]["level"].as_str().unwrap().to_string(),
                m["log"]["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The messages of the LOGs at `level` that start with `prefix`.
fn logs_at(msgs: &[Value], level: &str, prefix: &str) -> Vec<String> {
    log_lines(msgs)
        .into_iter()
        .filter(|(l, m)| l == level && m.starts_with(prefix))
        .map(|(_, m)| m)
        .collect()
}

/// A Salesforce datetime (`2025-01-15T12:00:00.000+0000`) as sfetl writes SOQL literals.
fn literal(sf: &str) -> String {
    DateTime::parse_from_str(sf, "%Y-%m-%dT%H:%M:%S%.3f%z")
        .unwrap()
        .with_timezone(&Utc)
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `Id -> SystemModstamp` of RECORDs, asserting no Id came twice.
fn by_id(records: &[Value], cursor: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for r in records {
        let id = r["Id"].as_str().unwrap().to_string();
        let at = r[cursor].as_str().unwrap_or_default().to_string();
        assert!(out.insert(id.clone(), at).is_none(), "{id} delivered twice");
    }
    out
}

#[tokio::test]
async fn a_rest_read_whose_query_cursor_expires_at_every_page_still_reads_every_row_once() {
    // AccountFeed is read through REST (Bulk refuses it): 1,000 rows in pages of 200, and every
    // cursor expires before its next page is asked for (a cursor idle for 0 s has expired).
    let e = env(2000, json!({"rest_batch_size": 200})).await;
    e.org
        .control("limits", &json!({"cursor_idle_seconds": 0}))
        .await;
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("AccountFeed", &[], "full_refresh")],
    );
    let msgs = read_ok(&e, &cat, None).await;
    let expected = org_rows(
        &e.org,
        "SELECT Id, SystemModstamp FROM AccountFeed ORDER BY SystemModstamp, Id",
    )
    .await;
    assert_eq!(expected.len(), 1000);
    let got = by_id(&records(&msgs, "AccountFeed"), "SystemModstamp");
    let want: Vec<&str> = {
        let mut ids: Vec<&str> = expected.iter().map(|r| r["Id"].as_str().unwrap()).collect();
        ids.sort();
        ids
    };
    assert_eq!(got.keys().map(String::as_str).collect::<Vec<_>>(), want);
    // Each page but the last ends with a dropped cursor; the query runs again after the last
    // (SystemModstamp, Id) read, so no row comes twice.
    let restarts: Vec<String> = (1..5)
        .map(|k| {
            let last = &expected[k * 200 - 1];
            format!(
                "AccountFeed: Salesforce dropped the REST query cursor after {} rows (INVALID_QUERY_LOCATOR: invalid query locator); querying again after the last row read (SystemModstamp {}, Id {})",
                k * 200,
                literal(last["SystemModstamp"].as_str().unwrap()),
                last["Id"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        logs_at(&msgs, "INFO", "AccountFeed: Salesforce dropped"),
        restarts
    );
}

/// Epoch milliseconds of a Salesforce datetime.
fn ms(sf: &str) -> i64 {
    DateTime::parse_from_str(sf, "%Y-%m-%dT%H:%M:%S%.3f%z")
        .unwrap()
        .timestamp_millis()
}

/// Epoch milliseconds as sfetl writes SOQL literals.
fn lit_ms(t: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(t)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The first day of the month of the earliest of `stamps` (where the count query starts the
/// first window).
fn first_month(stamps: &[i64]) -> i64 {
    let first = chrono::DateTime::from_timestamp_millis(*stamps.iter().min().unwrap()).unwrap();
    chrono::TimeZone::with_ymd_and_hms(
        &chrono::Utc,
        chrono::Datelike::year(&first),
        chrono::Datelike::month(&first),
        1,
        0,
        0,
        0,
    )
    .unwrap()
    .timestamp_millis()
}

#[tokio::test]
async fn a_sorted_bulk_query_that_times_out_is_read_unsorted_even_when_its_rows_share_one_second() {
    // Sorted (incremental) Bulk jobs over 100 rows time out. Of the 131 Contacts stamped since
    // 2024, over 100 share one second (2025-01-15T12:00:00, a mass update), which no split of
    // the window brings under 100; an unsorted job (chunked by Salesforce) reads it at once.
    let e = env(
        200,
        json!({"start_date": "2024-01-01T00:00:00Z", "end_date": "2025-01-16T00:00:00Z",
               "stream_slice_step": "P3650D"}),
    )
    .await;
    e.org
        .control("limits", &json!({"bulk_unchunked_timeout_rows": 100}))
        .await;
    let cat = catalog(e.dir.path(), "cat.json", &[("Contact", &[], "incremental")]);
    let before = jobs(&e.org).await;
    let msgs = read_ok(&e, &cat, None).await;
    let expected = org_rows(
        &e.org,
        "SELECT Id, SystemModstamp FROM Contact WHERE SystemModstamp >= 2024-01-01T00:00:00Z",
    )
    .await;
    assert_eq!(expected.len(), 131);
    let got = by_id(&records(&msgs, "Contact"), "SystemModstamp");
    let mut want: Vec<&str> = expected.iter().map(|r| r["Id"].as_str().unwrap()).collect();
    want.sort();
    assert_eq!(got.keys().map(String::as_str).collect::<Vec<_>>(), want);
    let stamps: Vec<i64> = expected
        .iter()
        .map(|r| ms(r["SystemModstamp"].as_str().unwrap()))
        .collect();
    let tied = ms("2025-01-15T12:00:00.000+0000");
    assert!(stamps.iter().filter(|&&t| t == tied).count() > 100);
    let range = format!(
        "[{}, 2025-01-16T00:00:00.000Z)",
        lit_ms(first_month(&stamps))
    );
    let logged: Vec<(String, String)> = log_lines(&msgs)
        .into_iter()
        .filter(|(_, m)| m.starts_with("Contact: Salesforce gave up"))
        .collect();
    assert_eq!(
        logged,
        [(
            "INFO".to_string(),
            format!(
                "Contact: Salesforce gave up on the sorted query of {range} (QUERY_TIMEOUT: Your query request was running for too long.); reading it unsorted (Salesforce chunks that itself), with a checkpoint at its end instead of after every page"
            )
        )]
    );
    // Two jobs for the window (the sorted one that failed, the unsorted one) and no split.
    assert_eq!(jobs(&e.org).await - before, 2);
    // No STATE inside the window (its pages were not in cursor order): only at its end.
    let cursors: Vec<&Value> = msgs
        .iter()
        .filter(|m| m["type"] == "STATE")
        .map(|m| &m["state"]["stream"]["stream_state"]["cursor"])
        .collect();
    assert!(!cursors.is_empty());
    assert!(
        cursors.iter().all(|c| *c == "2025-01-16T00:00:00.000Z"),
        "{cursors:?}"
    );
}

/// A full refresh's one Bulk job finds every row as it is when it runs. When Salesforce gives
/// up on it and the window is read in halves, one job after the other, a row of the later half
/// that changes while the first runs moves past the read's bound: in no half, a table the full
/// refresh replaces lost it. The later half reaches to whatever the org holds when it runs, so
/// the row is read, as changed.
#[tokio::test]
async fn a_row_changed_while_a_full_refresh_is_read_in_halves_is_read_as_changed() {
    let e = env(40, json!({"start_date": "2000-01-01T00:00:00Z"})).await;
    let newest = org_rows(
        &e.org,
        "SELECT Id FROM Account ORDER BY SystemModstamp DESC, Id DESC LIMIT 1",
    )
    .await[0]["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let edit = json!({"object": "Account", "id": newest, "fields": {"Name": "Changed mid-refresh"},
        "when": "next_bulk_query_completes"});
    e.org.control("update", &edit).await;
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("Account", &["Id", "Name", "SystemModstamp"], "full_refresh")],
    );
    // Any query over 30 rows times out; each job waits 1.1 s in the queue, so the change comes
    // seconds after the read took its bound.
    let limits = |rows: usize| json!({"query_timeout_rows": rows, "bulk_queue_ms": 1100});
    e.org.control("limits", &limits(30)).await;
    let msgs = read_ok(&e, &cat, None).await;
    e.org.control("limits", &limits(1_000_000)).await;
    let halves: Vec<String> = log_lines(&msgs)
        .into_iter()
        .map(|(_, m)| m)
        .filter(|m| m.contains("reading it in two halves"))
        .collect();
    assert!(!halves.is_empty(), "{:?}", log_lines(&msgs));
    assert!(halves[0].contains(", now) (QUERY_TIMEOUT"), "{halves:?}");
    let rows = records(&msgs, "Account");
    let org = org_rows(&e.org, "SELECT Id, Name FROM Account").await;
    assert_eq!(org.len(), 40);
    let got = by_id(&rows, "Name");
    let want: BTreeMap<String, String> = org
        .iter()
        .map(|r| {
            let id = r["Id"].as_str().unwrap().to_string();
            (id, r["Name"].as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(got[&newest], "Changed mid-refresh");
}

/// The `/__sim/stats` count of one kind of request.
async fn count(org: &Org, kind: &str) -> u64 {
    org.stats().await["by_kind"][kind].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn a_bulk_job_is_first_polled_after_a_wait_not_at_once() {
    // The job stays UploadComplete for 100 ms after it is created, as a real org's queue
    // holds it; each status poll then moves it one state on.
    let e = env(2, json!({})).await;
    e.org
        .control("limits", &json!({"bulk_queue_ms": 100}))
        .await;
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("Account", &[], "full_refresh")],
    );
    e.org.control("stats/reset", &json!({})).await;
    let msgs = read_ok(&e, &cat, None).await;
    assert_eq!(records(&msgs, "Account").len(), 2);
    // Create, two polls (InProgress at 100 ms, JobComplete 200 ms later), one results page,
    // delete. A poll sent as soon as the job was created would find it still queued: a sixth.
    assert_eq!(count(&e.org, "bulk_query").await, 5);
}

#[tokio::test]
async fn the_daily_bulk_cap_moves_every_stream_to_rest() {
    let e = env(2, json!({})).await;
    e.org
        .control("limits", &json!({"bulk_query_jobs_used": 10_000}))
        .await;
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[
            ("Account", &[], "full_refresh"),
            ("Contact", &[], "full_refresh"),
        ],
    );
    e.org.control("stats/reset", &json!({})).await;
    let msgs = read_ok(&e, &cat, None).await;
    for (stream, n) in [("Account", 2), ("Contact", 6)] {
        let want = org_rows(&e.org, &format!("SELECT Id FROM {stream}")).await;
        assert_eq!(want.len(), n);
        let got = by_id(&records(&msgs, stream), "SystemModstamp");
        let mut want: Vec<&str> = want.iter().map(|r| r["Id"].as_str().unwrap()).collect();
        want.sort();
        assert_eq!(got.keys().map(String::as_str).collect::<Vec<_>>(), want);
    }
    let warns: Vec<String> = log_lines(&msgs)
        .into_iter()
        .filter(|(l, _)| l == "WARN")
        .map(|(_, m)| m)
        .collect();
    // Both streams may have asked for a job before either was refused: one WARN either way.
    let refused = count(&e.org, "bulk_query").await;
    assert!((1..=2).contains(&refused), "{refused}");
    // The WARN quotes the refusal that reached it first: the 10,001st job asked for, or the
    // 10,002nd when both streams were refused and the other's answer came first.
    let warn = |n: u64| {
        format!(
            "Salesforce's daily cap of Bulk API 2.0 query jobs is reached (LIMIT_EXCEEDED: Max bulk v2 query jobs (10000) per 24 hrs has been reached ({n})); every stream reads through the REST API for the rest of this run"
        )
    };
    let allowed: Vec<Vec<String>> = (1..=refused).map(|k| vec![warn(10_000 + k)]).collect();
    assert!(allowed.contains(&warns), "{warns:?}");
    let summaries = logs_at(&msgs, "INFO", "Contact: 6 rows in ");
    assert_eq!(summaries.len(), 1);
    assert!(
        summaries[0].ends_with(" s, through the REST API"),
        "{summaries:?}"
    );
}

#[tokio::test]
async fn the_daily_bulk_cap_stops_the_stream_when_rest_would_pass_the_usage_allowed() {
    let e = env(2, json!({})).await;
    e.org
        .control("limits", &json!({"bulk_query_jobs_used": 10_000}))
        .await;
    e.org
        .control("quota", &json!({"max": 1000, "used": 900}))
        .await;
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("Account", &[], "full_refresh")],
    );
    let out = read_out(&e.config, &cat).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let msgs = messages(&out);
    assert!(records(&msgs, "Account").is_empty());
    let used = e.org.stats().await["api_usage"].as_u64().unwrap();
    let errors: Vec<&Value> = msgs
        .iter()
        .filter(|m| m["type"] == "TRACE" && m["trace"]["type"] == "ERROR")
        .collect();
    assert_eq!(errors.len(), 1);
    let error = &errors[0]["trace"]["error"];
    assert_eq!(error["failure_type"], "transient_error");
    assert_eq!(
        error["message"],
        format!(
            "stream Account: Salesforce's daily cap of Bulk API 2.0 query jobs is reached (LIMIT_EXCEEDED: Max bulk v2 query jobs (10000) per 24 hrs has been reached (10001)), and the REST API cannot take over: the org's API usage is {used} of 1000 daily API calls used ({:.1}%), at or past 90% (sfetl's ceiling when max_api_usage_percent is not set). Both limits count the last 24 hours: run again later, or make fewer Bulk jobs per run (a larger bulk_max_records, no or a longer stream_slice_step, fewer streams per run).",
            used as f64 / 10.0
        )
    );
}

/// The objects of the simulated org Salesforce answers only with a filter: skipped.
const SKIPPED: [(&str, &str); 2] = [
    (
        "ContentDocumentLink",
        "ContentDocumentLink: skipped: Salesforce answers queries of it only with a filter on ContentDocumentId or LinkedEntityId",
    ),
    (
        "UserRecordAccess",
        "UserRecordAccess: skipped: Salesforce answers queries of it only with filters on UserId and RecordId",
    ),
];

#[tokio::test]
async fn a_full_org_read_reads_every_readable_object_and_skips_the_rest_with_one_warn_each() {
    // 300 more objects make EntityDefinition (one row per object) 318 rows: more than one page
    // of 200, which it cannot page through (no queryMore).
    let org = Org::start_with(sfetl_sim::SimOptions {
        scale: 40,
        seed: 7,
        extra_objects: 300,
        ..Default::default()
    })
    .await;
    let e = env_on(
        org,
        json!({"rest_batch_size": 200, "stream_slice_step": "P3650D",
               "streams_criteria": [{"criteria": "starts not with", "value": "Extra_"}]}),
    );
    // The delete log's retention has its own tests (incremental.rs); here it covers the
    // `deleted` ranges of a first sync.
    e.org
        .control("limits", &json!({"delete_log_days": 60}))
        .await;
    let out = run(&["discover", "--config", e.config.to_str().unwrap()]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let catalog = messages(&out)
        .into_iter()
        .find(|m| m["type"] == "CATALOG")
        .unwrap();
    let streams: Vec<Value> = catalog["catalog"]["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let incremental = s["supported_sync_modes"]
                .as_array()
                .unwrap()
                .contains(&json!("incremental"));
            json!({"stream": s, "destination_sync_mode": "append",
                   "sync_mode": if incremental { "incremental" } else { "full_refresh" }})
        })
        .collect();
    assert_eq!(streams.len(), 18);
    let cat = write_json(e.dir.path(), "full.json", &json!({"streams": streams}));
    let msgs = read_ok(&e, &cat, None).await;
    assert!(
        !msgs
            .iter()
            .any(|m| m["type"] == "TRACE" && m["trace"]["type"] == "ERROR"),
        "no stream failed"
    );
    // Every readable object: exactly the org's rows, each once.
    let mut read = Vec::new();
    for s in &streams {
        let name = s["stream"]["name"].as_str().unwrap();
        let got = records(&msgs, name);
        if SKIPPED.iter().any(|(o, _)| *o == name) {
            assert!(got.is_empty(), "{name}");
            continue;
        }
        let want = org_rows(&e.org, &format!("SELECT Id FROM {name}")).await;
        let mut want: Vec<&str> = want.iter().map(|r| r["Id"].as_str().unwrap()).collect();
        want.sort();
        let got = by_id(&got, "Id");
        assert_eq!(
            got.keys().map(String::as_str).collect::<Vec<_>>(),
            want,
            "{name}"
        );
        read.push((name.to_string(), want.len()));
    }
    assert_eq!(read.len(), 16);
    assert!(read.iter().all(|(_, n)| *n > 0), "{read:?}");
    assert!(
        read.contains(&("EntityDefinition".to_string(), 318)),
        "{read:?}"
    );
    // One WARN per skipped object, and no other.
    let mut warns: Vec<String> = log_lines(&msgs)
        .into_iter()
        .filter(|(l, _)| l == "WARN")
        .map(|(_, m)| m)
        .collect();
    warns.sort();
    assert_eq!(warns, SKIPPED.map(|(_, w)| w.to_string()));
    // The objects read another way say so.
    let infos = log_lines(&msgs);
    for note in [
        "AccountFeed: reading with the REST API: Bulk API 2.0 does not support feed objects",
        "TaskStatus: reading with the REST API: Bulk API 2.0 does not support it",
        "CaseStatus: reading with the REST API: Bulk API 2.0 does not support it",
        "RecentlyViewed: reading with the REST API: Bulk API 2.0 does not support it",
        "EntityDefinition: reading with the REST API, one page per query in Id order: Salesforce does not support queryMore on it, so every query must fit one page",
    ] {
        assert!(
            infos.contains(&("INFO".to_string(), note.to_string())),
            "{note}"
        );
    }
    // History objects have only CreatedDate: their cursor; a big object's audit dates cannot
    // be filtered, so it has none and is read whole.
    let cursor_of = |name: &str| {
        msgs.iter()
            .filter(|m| m["type"] == "STATE")
            .map(|m| &m["state"]["stream"])
            .find(|s| s["stream_descriptor"]["name"] == name)
            .map(|s| s["stream_state"]["cursor_field"].clone())
    };
    assert_eq!(cursor_of("AccountHistory"), Some(json!("CreatedDate")));
    assert_eq!(cursor_of("AccountShare"), Some(json!("LastModifiedDate")));
    assert_eq!(cursor_of("Score_Reading__b"), Some(Value::Null));
    // Every stream, skipped ones included, completes.
    let complete = msgs
        .iter()
        .filter(|m| m["trace"]["stream_status"]["status"] == "COMPLETE")
        .count();
    assert_eq!(complete, 18);
}

#[tokio::test]
async fn an_object_with_a_json_field_is_read_through_rest() {
    // Bulk API 2.0 refuses json fields; no default object has one, so Score__c's Payload__c is
    // one here.
    let data = tempfile::tempdir().unwrap();
    let fixture = format!(
        "{}/crates/sfetl-sim/fixtures/describe_Score__c.json",
        manifest_dir()
    );
    let mut describe: Value = serde_json::from_slice(&std::fs::read(fixture).unwrap()).unwrap();
    for f in describe["fields"].as_array_mut().unwrap() {
        if f["name"] == "Payload__c" {
            f["type"] = json!("json");
        }
    }
    write_json(data.path(), "describe_Score__c.json", &describe);
    let org = Org::start_with(sfetl_sim::SimOptions {
        scale: 20,
        seed: 7,
        data_dir: Some(data.path().to_path_buf()),
        ..Default::default()
    })
    .await;
    let e = env_on(org, json!({}));
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("Score__c", &[], "full_refresh")],
    );
    e.org.control("stats/reset", &json!({})).await;
    let msgs = read_ok(&e, &cat, None).await;
    let want = org_rows(&e.org, "SELECT Id, Payload__c FROM Score__c").await;
    assert_eq!(want.len(), 10);
    let got = records(&msgs, "Score__c");
    let mut pairs: Vec<(Value, Value)> = got
        .iter()
        .map(|r| (r["Id"].clone(), r["Payload__c"].clone()))
        .collect();
    let mut expected: Vec<(Value, Value)> = want
        .iter()
        .map(|r| (r["Id"].clone(), r["Payload__c"].clone()))
        .collect();
    pairs.sort_by_key(|p| p.0.to_string());
    expected.sort_by_key(|p| p.0.to_string());
    assert_eq!(pairs, expected);
    assert_eq!(
        logs_at(&msgs, "INFO", "Score__c: reading"),
        [
            "Score__c: reading with the REST API because json fields are selected (Bulk API cannot read them)"
        ]
    );
    assert_eq!(count(&e.org, "bulk_query").await, 0);
}

#[tokio::test]
async fn nul_bytes_in_values_are_removed_with_one_warn_per_read_on_bulk_and_rest() {
    let e = env(40, json!({})).await;
    // Contact is read through Bulk (CSV), Attachment through REST (JSON: its Body is base64).
    let mut ids = BTreeMap::new();
    for (object, value) in [("Contact", "a\u{0}b\u{0}c"), ("Attachment", "\u{0}d")] {
        let row = &org_rows(
            &e.org,
            &format!("SELECT Id FROM {object} ORDER BY Id LIMIT 1"),
        )
        .await[0];
        let id = row["Id"].as_str().unwrap().to_string();
        e.org
            .control(
                "set",
                &json!({"object": object, "id": id, "field": "Description", "value": value}),
            )
            .await;
        ids.insert(object, id);
    }
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[
            ("Contact", &["Description"], "full_refresh"),
            ("Attachment", &["Description"], "full_refresh"),
        ],
    );
    let msgs = read_ok(&e, &cat, None).await;
    for (object, want) in [("Contact", "abc"), ("Attachment", "d")] {
        let rows = records(&msgs, object);
        let row = rows
            .iter()
            .find(|r| r["Id"] == ids[object].as_str())
            .unwrap();
        assert_eq!(row["Description"], want, "{object}");
        assert!(
            rows.iter().all(|r| !r["Description"]
                .as_str()
                .unwrap_or_default()
                .contains('\u{0}')),
            "{object}"
        );
    }
    let mut warns: Vec<(String, String)> = log_lines(&msgs)
        .into_iter()
        .filter(|(l, _)| l == "WARN")
        .collect();
    warns.sort();
    let warn = |object: &str, n: &str| {
        (
            "WARN".to_string(),
            format!(
                "{object}: {n} removed from text values (Salesforce can store them; Parquet, JSON and database consumers should not get them)"
            ),
        )
    };
    assert_eq!(
        warns,
        [
            warn("Attachment", "1 NUL byte was"),
            warn("Contact", "2 NUL bytes were")
        ]
    );
}

#[tokio::test]
async fn the_sixth_approval_of_the_app_revokes_the_first_config_with_advice() {
    // The simulator's printed refresh token is the user's first approval of the app; five more
    // (five `sfetl login`s) revoke it.
    let org = Org::start(2).await;
    let mut newest = String::new();
    for _ in 0..5 {
        let issued = org.control("oauth/issue_refresh_token", &json!({})).await;
        newest = issued["refresh_token"].as_str().unwrap().to_string();
    }
    let dir = tempfile::tempdir().unwrap();
    let check = |cfg: Value, name: &str| {
        let path = write_json(dir.path(), name, &cfg);
        async move {
            let out = run(&["check", "--config", path.to_str().unwrap()]).await;
            connection_status(&out)
        }
    };
    let (status, message) = check(refresh_config(&org.sim), "first.json").await;
    assert_eq!(status, "FAILED");
    assert_eq!(
        message,
        "The refresh token was revoked or has expired (invalid_grant: expired access/refresh token). A user or admin revoked it (Setup > Connected Apps OAuth Usage), the app's Refresh Token Policy expired it, it was rotated and an older copy was used, the same user approved the app five more times since (each `sfetl login` is an approval; Salesforce keeps five per user and app and revokes the oldest), or it belongs to the other environment (production vs sandbox). Disconnect and reconnect: run `sfetl login` again and use the new config, or paste a new refresh_token."
    );
    let mut cfg = refresh_config(&org.sim);
    cfg["refresh_token"] = json!(newest);
    let (status, _) = check(cfg, "newest.json").await;
    assert_eq!(status, "SUCCEEDED");
}

/// Jobs the simulator still runs (neither JobComplete, Failed nor Aborted).
async fn running_jobs(org: &Org) -> u64 {
    org.get_json_url("/__sim/limits").await["running_long_txn"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn a_read_stopped_by_sigterm_aborts_and_deletes_its_queued_bulk_job() {
    // The job waits in the queue for ten minutes: it is still queued when the read stops.
    let e = env(2, json!({})).await;
    e.org
        .control("limits", &json!({"bulk_queue_ms": 600_000}))
        .await;
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("Account", &[], "full_refresh")],
    );
    let child = read_cmd(&e.config, &cat)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the condition (the job created), not for a time.
    let mut polls = 0;
    while running_jobs(&e.org).await == 0 {
        polls += 1;
        assert!(polls < 600, "the read never created its Bulk job");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("could not delete Bulk job"), "{stderr}");
    assert!(!stderr.contains("could not abort"), "{stderr}");
    assert_eq!(
        running_jobs(&e.org).await,
        0,
        "no job left running in the org"
    );
    let msgs = messages(&out);
    let statuses: Vec<&str> = msgs
        .iter()
        .filter(|m| m["type"] == "TRACE" && m["trace"]["type"] == "STREAM_STATUS")
        .map(|m| m["trace"]["stream_status"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses.last(), Some(&"INCOMPLETE"), "{msgs:?}");
    assert_eq!(records(&msgs, "Account").len(), 0);
}

#[tokio::test]
async fn check_gives_up_on_a_busy_org_after_three_attempts_and_says_why() {
    // An admin is waiting: `check` tries a request refused over the concurrent-requests limit
    // three times (a sync would wait through ten), then fails saying what to do.
    let org = Org::start(2).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_json(dir.path(), "c.json", &refresh_config(&org.sim));
    org.control("limits", &json!({"requests_spike": 3})).await;
    let out = run(&["check", "--config", cfg.to_str().unwrap()]).await;
    let (status, message) = connection_status(&out);
    assert_eq!(status, "FAILED");
    assert_eq!(
        message,
        "Salesforce refused a request 3 times, with growing waits between, because too many run at once in the org (ConcurrentRequests (Concurrent API Requests) Limit exceeded.). This passes when other long requests and Bulk jobs finish: run again later, or run fewer syncs against this org at the same time."
    );
    // The spike is spent: the next check succeeds.
    let out = run(&["check", "--config", cfg.to_str().unwrap()]).await;
    assert_eq!(connection_status(&out).0, "SUCCEEDED");
}

#[tokio::test]
async fn rest_pages_cut_to_200_rows_by_two_long_text_fields_lose_nothing() {
    // Salesforce returns at most 200 rows a REST page when a query selects two or more custom
    // long text fields. The read's one window goes through REST once its Bulk job has failed
    // twice.
    let e = env(
        100,
        one_window_config(json!({"stream_slice_step": "P36500D"})),
    )
    .await; // 300 Contacts
    for field in ["Notes__c", "History_Notes__c"] {
        let body = json!({"object": "Contact", "field": field, "type": "textarea"});
        e.org.control("schema/add_field", &body).await;
    }
    let mut calls = Vec::new();
    for fields in [
        &["Id", "Notes__c", "SystemModstamp"][..],
        &["Id", "Notes__c", "History_Notes__c", "SystemModstamp"],
    ] {
        let cat = catalog(
            e.dir.path(),
            "cat.json",
            &[("Contact", fields, "full_refresh")],
        );
        e.org.control("fail_bulk_job", &json!({"count": 2})).await;
        let before = e.org.stats().await["by_kind"]["query"]
            .as_u64()
            .unwrap_or(0);
        let msgs = read_ok(&e, &cat, None).await;
        let rows = records(&msgs, "Contact");
        let ids: std::collections::BTreeSet<&str> =
            rows.iter().map(|r| r["Id"].as_str().unwrap()).collect();
        assert_eq!((rows.len(), ids.len()), (300, 300), "{fields:?}");
        calls.push(e.org.stats().await["by_kind"]["query"].as_u64().unwrap() - before);
    }
    // The same read, one page more: 200 + 100 rows instead of 300 in one.
    assert_eq!(calls[1], calls[0] + 1, "{calls:?}");
}

#[tokio::test]
async fn a_maintenance_page_is_retried_then_named_for_what_it_is() {
    // An instance down for maintenance answers every URL with an HTML page, not JSON.
    let org = Org::start(2).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_json(dir.path(), "c.json", &refresh_config(&org.sim));
    let page = json!({"kind": "versions", "status": 503, "body": "maintenance_page", "count": 3});
    org.control("fail", &page).await;
    let out = run(&["check", "--config", cfg.to_str().unwrap()]).await;
    let (status, message) = connection_status(&out);
    assert_eq!(status, "FAILED");
    assert_eq!(
        message,
        "Salesforce answered HTTP 503 with a web page instead of an API answer (\"Salesforce maintenance This instance is down for scheduled maintenance. It will be back shortly – try again in a few minutes.\"). The instance is down for maintenance or in trouble, or a CDN answered for it: check https://status.salesforce.com for the instance, then run again (a read resumes from its last STATE)"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let retried = ": HTTP 503, a web page instead of an API answer; retried";
    assert_eq!(stderr.matches(retried).count(), 2, "{stderr}");
    assert!(!stderr.contains("<html"), "{stderr}");

    // A page or two while a read runs: retried, nothing lost.
    let e = env_on(org, one_window_config(json!({})));
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("Account", &["Id", "Name"], "full_refresh")],
    );
    let page = json!({"kind": "describe", "status": 503, "body": "maintenance_page", "count": 2});
    e.org.control("fail", &page).await;
    let msgs = read_ok(&e, &cat, None).await;
    assert_eq!(records(&msgs, "Account").len(), 2);
}

#[tokio::test]
async fn a_query_too_big_for_the_sharing_check_is_read_in_smaller_windows() {
    // Without View All Data, Salesforce gives up on a Task query returning more rows than its
    // sharing check takes (100,000; a few here) with OPERATION_TOO_LARGE, and advises date
    // ranges.
    let e = env(
        20,
        one_window_config(json!({"stream_slice_step": "P36500D"})),
    )
    .await; // 10 Tasks
    let org = org_rows(&e.org, "SELECT Id, SystemModstamp FROM Task").await;
    let want: std::collections::BTreeSet<&str> =
        org.iter().map(|r| r["Id"].as_str().unwrap()).collect();
    assert_eq!(want.len(), 10);
    // No window is narrower than a second: the rows sharing one SystemModstamp (the mass
    // update's) must pass the check together.
    let mut per_stamp: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &org {
        *per_stamp
            .entry(r["SystemModstamp"].as_str().unwrap())
            .or_default() += 1;
    }
    let limit = per_stamp.values().copied().max().unwrap().max(3);
    assert!(limit < 10, "{per_stamp:?}");
    let body = json!({ "sharing_check_rows": limit });
    e.org.control("limits", &body).await;
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("Task", &["Id", "SystemModstamp"], "incremental")],
    );
    let msgs = read_ok(&e, &cat, None).await;
    let rows = records(&msgs, "Task");
    let got: std::collections::BTreeSet<&str> =
        rows.iter().map(|r| r["Id"].as_str().unwrap()).collect();
    assert_eq!((rows.len(), got), (10, want));
    let split = logs_at(&msgs, "INFO", "Task: Salesforce gave up on the query of");
    assert!(!split.is_empty(), "{:?}", log_lines(&msgs));
    let why = format!(
        "(OPERATION_TOO_LARGE: exceeded {limit} distinct who/what's); reading it in two halves"
    );
    assert!(split.iter().all(|l| l.contains(&why)), "{split:?}");
    // The count behind the windows (one group a month) is refused when it has more groups
    // than the check takes; the read says so in one line, without the final error's advice.
    let count = logs_at(&msgs, "INFO", "Task: Salesforce refused to count its rows");
    let said = format!(
        "Task: Salesforce refused to count its rows (OPERATION_TOO_LARGE: exceeded {limit} distinct who/what's); reading in windows of stream_slice_step, or in one window when it is not set"
    );
    assert!(
        count.len() <= 1 && count.iter().all(|l| *l == said),
        "{count:?}"
    );
    // Sorting is not what the sharing check minds: no unsorted attempt.
    let lines = log_lines(&msgs);
    assert!(
        !lines.iter().any(|(_, m)| m.contains("unsorted")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn a_task_the_sharing_check_refuses_even_alone_fails_saying_to_grant_view_all_data() {
    let e = env(
        2,
        one_window_config(json!({"stream_slice_step": "P36500D"})),
    )
    .await;
    e.org
        .control("limits", &json!({"sharing_check_rows": 0}))
        .await;
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("Task", &["Id", "SystemModstamp"], "incremental")],
    );
    let out = read_out(&e.config, &cat).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Salesforce answered HTTP 400 OPERATION_TOO_LARGE: exceeded 0 distinct who/what's. Salesforce checks sharing on every row a user without the View All Data permission reads (Task and Event especially), and gave up on this query even in windows of one second: give the integration user View All Data (or View All on the object), or leave the object out."),
        "{stderr}"
    );
}
