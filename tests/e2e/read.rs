//! `sfetl discover` and `sfetl read`, the real binary against the simulator over HTTP: exact
//! catalogs, exact rows in every output format, the REST path for base64 fields, and faults.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use serde_json::{Value, json};

use crate::common::*;

const OBJECTS: [&str; 8] = [
    "Account",
    "Attachment",
    "Contact",
    "Lead",
    "Opportunity",
    "Score__c",
    "Task",
    "User",
];

/// What discover offers on the simulated org: every queryable object, the ones Salesforce will
/// not read the ordinary way included (the read handles them by rule, see `harsh.rs`).
const DISCOVERED: [&str; 18] = [
    "Account",
    "AccountFeed",
    "AccountHistory",
    "AccountShare",
    "Attachment",
    "CaseStatus",
    "Contact",
    "ContentDocumentLink",
    "EntityDefinition",
    "Lead",
    "Opportunity",
    "RecentlyViewed",
    "Score_Reading__b",
    "Score__c",
    "Task",
    "TaskStatus",
    "User",
    "UserRecordAccess",
];

#[tokio::test]
async fn discover_offers_every_queryable_object_with_exact_schemas() {
    let e = env(2, json!({})).await;
    let (out, streams) = discover_ok(&e).await;
    let streams = &streams;
    let names: Vec<&str> = streams
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, DISCOVERED);
    let by_name = |n: &str| streams.iter().find(|s| s["name"] == n).unwrap();
    assert_eq!(
        by_name("AccountHistory")["default_cursor_field"],
        json!(["CreatedDate"]),
        "History objects have no SystemModstamp"
    );
    let account = &streams[0];
    assert_eq!(account["default_cursor_field"], json!(["SystemModstamp"]));
    assert_eq!(account["source_defined_primary_key"], json!([["Id"]]));
    assert_eq!(
        account["supported_sync_modes"],
        json!(["full_refresh", "incremental"])
    );
    let p = &account["json_schema"]["properties"];
    assert_eq!(p["Id"], json!({"type": "string"}));
    assert_eq!(p["Name"], json!({"type": ["null", "string"]}));
    assert_eq!(p["NumberOfEmployees"], json!({"type": ["null", "integer"]}));
    assert_eq!(p["AnnualRevenue"], json!({"type": ["null", "number"]}));
    assert_eq!(p["IsDeleted"], json!({"type": ["null", "boolean"]}));
    assert_eq!(
        p["CreatedDate"],
        json!({"type": ["null", "string"], "format": "date-time", "airbyte_type": "timestamp_with_timezone"})
    );
    assert_eq!(p["BillingAddress"]["type"], json!(["null", "object"]));
    assert_eq!(
        p["BillingAddress"]["properties"]["latitude"],
        json!({"type": ["null", "number"]})
    );
    let attachment = by_name("Attachment");
    assert_eq!(
        attachment["json_schema"]["properties"]["Body"],
        json!({"type": ["null", "string"], "contentEncoding": "base64"})
    );
    // Every field type of the simulated org maps to a JSON schema type.
    for s in streams {
        for (field, schema) in s["json_schema"]["properties"].as_object().unwrap() {
            assert!(
                schema["type"].is_string() || schema["type"].is_array(),
                "{} {field}",
                s["name"]
            );
        }
    }
    assert_no_secret(&out, &sim_secrets(&e.org.sim), &[]);
}

/// Runs `sfetl discover`, asserts it succeeded with exactly one CATALOG, returns its streams.
async fn discover_ok(e: &Env) -> (std::process::Output, Vec<Value>) {
    let out = run(&["discover", "--config", e.config.to_str().unwrap()]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let msgs = messages(&out);
    let catalogs: Vec<&Value> = msgs.iter().filter(|m| m["type"] == "CATALOG").collect();
    assert_eq!(catalogs.len(), 1);
    let streams = catalogs[0]["catalog"]["streams"]
        .as_array()
        .unwrap()
        .clone();
    (out, streams)
}

#[tokio::test]
async fn discover_on_an_org_with_1200_more_objects() {
    let org = Org::start_with(sfetl_sim::SimOptions {
        scale: 2,
        seed: 7,
        extra_objects: 1200,
        ..Default::default()
    })
    .await;
    let e = env_on(org, json!({}));
    // Every describe answers 20 ms late: read one by one, 1,218 describes would take 24 s.
    e.org
        .control("latency", &json!({"kind": "describe", "ms": 20}))
        .await;
    e.org.control("stats/reset", &json!({})).await;
    let (_, streams) = discover_ok(&e).await;
    assert_eq!(streams.len(), DISCOVERED.len() + 1200);
    let names: BTreeSet<&str> = streams
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(names.contains("Extra_0001__c") && names.contains("Extra_1200__c"));
    let score = streams.iter().find(|s| s["name"] == "Score__c").unwrap();
    let extra = streams
        .iter()
        .find(|s| s["name"] == "Extra_0777__c")
        .unwrap();
    assert_eq!(
        extra["json_schema"]["properties"]
            .as_object()
            .unwrap()
            .len(),
        score["json_schema"]["properties"]
            .as_object()
            .unwrap()
            .len()
    );
    assert_eq!(extra["default_cursor_field"], json!(["SystemModstamp"]));
    // One describeGlobal and one describe per queryable object: nothing per field, no retries.
    let stats = e.org.stats().await;
    assert_eq!(
        stats["by_kind"]["describe"],
        json!(1 + DISCOVERED.len() + 1200),
        "{stats}"
    );
}

#[tokio::test]
async fn full_refresh_records_are_exactly_the_org_rows() {
    let e = env(30, json!({})).await;
    let fields = [
        "Id",
        "Name",
        "IsDeleted",
        "AnnualRevenue",
        "NumberOfEmployees",
        "CreatedDate",
        "SystemModstamp",
    ];
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("Account", &fields, "full_refresh")],
    );
    let out = read_out(&e.config, &cat).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Account's describe, once: the catalog names a plain object, so no describeGlobal, and
    // the stream's plan reuses the describe the catalog check fetched.
    assert_eq!(e.org.stats().await["by_kind"]["describe"], json!(1));
    // stderr is not a terminal here: no progress bar is drawn.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains('\r') && !stderr.contains(" rows "),
        "{stderr}"
    );
    let msgs = messages(&out);
    let got = records(&msgs, "Account");
    let want = org_rows(
        &e.org,
        "SELECT Id, Name, AnnualRevenue, NumberOfEmployees FROM Account",
    )
    .await;
    assert_eq!(got.len(), 30);
    assert_eq!(want.len(), 30);
    let by_id: BTreeMap<&str, &Value> = want
        .iter()
        .map(|r| (r["Id"].as_str().unwrap(), r))
        .collect();
    for r in &got {
        let keys: BTreeSet<&str> = r.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        let mut expected: BTreeSet<&str> = fields.iter().copied().collect();
        expected.insert("_sfetl_deleted_at");
        assert_eq!(keys, expected);
        assert_eq!(r["_sfetl_deleted_at"], Value::Null);
        let w = by_id[r["Id"].as_str().unwrap()];
        assert_eq!(r["Name"], w["Name"]);
        assert_eq!(r["NumberOfEmployees"], w["NumberOfEmployees"]);
        assert_eq!(r["AnnualRevenue"].as_f64(), w["AnnualRevenue"].as_f64());
        assert!(r["SystemModstamp"].as_str().unwrap().ends_with('Z'));
    }
    let kinds: Vec<String> = msgs
        .iter()
        .filter(|m| m["type"] != "RECORD")
        .map(|m| match m["type"].as_str().unwrap() {
            "TRACE" => format!("TRACE {}", m["trace"]["type"].as_str().unwrap()),
            t => t.to_string(),
        })
        .collect();
    assert_eq!(kinds.first().unwrap(), "TRACE STREAM_STATUS");
    assert_eq!(kinds.last().unwrap(), "TRACE STREAM_STATUS");
    let states: Vec<&Value> = msgs.iter().filter(|m| m["type"] == "STATE").collect();
    assert_eq!(states.len(), 1);
    assert_eq!(states[0]["state"]["sourceStats"]["recordCount"], 30.0);
    let last_record = msgs.iter().rposition(|m| m["type"] == "RECORD").unwrap();
    let state_at = msgs.iter().position(|m| m["type"] == "STATE").unwrap();
    assert!(
        state_at > last_record,
        "STATE comes after the rows it covers"
    );
    assert_no_secret(&out, &sim_secrets(&e.org.sim), &[]);
}

fn read_parquet(dir: &Path, stream: &str) -> Vec<RecordBatch> {
    let mut batches = Vec::new();
    let stream_dir = dir.join(stream);
    for sync in std::fs::read_dir(&stream_dir).unwrap() {
        for f in std::fs::read_dir(sync.unwrap().path()).unwrap() {
            let path = f.unwrap().path();
            if path.file_name().unwrap() == "_sfetl_sync.json" {
                continue;
            }
            assert_eq!(path.extension().unwrap(), "parquet", "{path:?}");
            let file = std::fs::File::open(&path).unwrap();
            let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                .unwrap()
                .build()
                .unwrap();
            batches.extend(r.map(|b| b.unwrap()));
        }
    }
    batches
}

#[tokio::test]
async fn every_object_reads_in_records_and_parquet_with_exact_counts() {
    let e = env(40, json!({})).await;
    let mut want: BTreeMap<&str, usize> = BTreeMap::new();
    for o in OBJECTS {
        want.insert(
            o,
            org_rows(&e.org, &format!("SELECT Id FROM {o}")).await.len(),
        );
    }
    assert_eq!(want["Account"], 40);
    assert_eq!(want["Contact"], 120);
    assert_eq!(want["Attachment"], 2);
    let streams: Vec<(&str, &[&str], &str)> = OBJECTS
        .iter()
        .map(|o| (*o, &[][..], "full_refresh"))
        .collect();
    let cat = catalog(e.dir.path(), "cat.json", &streams);

    let msgs = read_ok(&e, &cat, None).await;
    for o in OBJECTS {
        assert_eq!(records(&msgs, o).len(), want[o], "{o} records");
        let ids: BTreeSet<String> = records(&msgs, o)
            .iter()
            .map(|r| r["Id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids.len(), want[o], "{o} ids unique");
    }
    // Attachment's base64 Body forces REST; its content arrives base64-encoded.
    let att = records(&msgs, "Attachment");
    let held = org_rows(&e.org, "SELECT Id, Body FROM Attachment").await;
    for a in &att {
        let id = a["Id"].as_str().unwrap();
        // REST answers the blob's URL, as Salesforce does; sfetl fetches the bytes.
        let url = held.iter().find(|r| r["Id"] == id).unwrap()["Body"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            url.starts_with("/services/data/v")
                && url.ends_with(&format!("/sobjects/Attachment/{id}/Body")),
            "{url}"
        );
        let blob = e
            .org
            .http
            .get(e.org.url(&url))
            .bearer_auth(&e.org.token)
            .send()
            .await
            .unwrap();
        assert_eq!(blob.status(), 200);
        use base64::Engine;
        let expected =
            base64::engine::general_purpose::STANDARD.encode(blob.bytes().await.unwrap());
        // The same content as the simulator stores it.
        let stored: Value = e
            .org
            .http
            .get(e.org.url(&format!("/__sim/record/Attachment/{id}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(stored["Body"].as_str().unwrap(), expected);
        assert_eq!(a["Body"].as_str().unwrap(), expected);
        assert!(!expected.is_empty());
    }
    let logs = logs(&msgs);
    assert!(logs.iter().any(|l| l == "Attachment: reading with the REST API because base64 fields are selected (Bulk API cannot read them)"), "{logs:?}");

    // Parquet.
    let export = e.dir.path().join("export");
    let pq_config = parquet_config(&e, "pq.json", &export);
    let out = read_files(&pq_config, &cat, None).await;
    let msgs = messages(&out);
    assert!(
        msgs.iter().all(|m| m["type"] != "RECORD"),
        "parquet output keeps stdout for STATE/TRACE/LOG"
    );
    for o in OBJECTS {
        let batches = read_parquet(&export, o);
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows, want[o], "{o} parquet rows");
        if let Some(b) = batches.first() {
            let schema = b.schema();
            assert_eq!(
                schema
                    .field_with_name("_sfetl_sync_id")
                    .unwrap()
                    .data_type(),
                &DataType::Utf8
            );
            assert!(
                matches!(schema.field_with_name("SystemModstamp").unwrap().data_type(), DataType::Timestamp(_, Some(tz)) if tz.as_ref() == "UTC")
            );
        }
    }
    let acc = read_parquet(&export, "Account");
    let schema = acc[0].schema();
    assert!(matches!(
        schema
            .field_with_name("BillingAddress")
            .unwrap()
            .data_type(),
        DataType::Struct(_)
    ));
    assert_eq!(
        schema
            .field_with_name("NumberOfEmployees")
            .unwrap()
            .data_type(),
        &DataType::Int32
    );
    let rows = org_rows(&e.org, "SELECT Id, Name, BillingCity FROM Account").await;
    let by_id: BTreeMap<&str, &Value> = rows
        .iter()
        .map(|r| (r["Id"].as_str().unwrap(), r))
        .collect();
    for b in &acc {
        let ids = b.column_by_name("Id").unwrap().as_string::<i32>();
        let names = b.column_by_name("Name").unwrap().as_string::<i32>();
        let city = b
            .column_by_name("BillingAddress")
            .unwrap()
            .as_struct()
            .column_by_name("city")
            .unwrap()
            .as_string::<i32>()
            .clone();
        for i in 0..b.num_rows() {
            let w = by_id[ids.value(i)];
            // A blank text is null in REST and in the Parquet file alike.
            assert_eq!(
                names.is_valid(i).then(|| names.value(i)),
                w["Name"].as_str()
            );
            assert_eq!(
                city.is_valid(i).then(|| city.value(i)),
                w["BillingCity"].as_str()
            );
        }
    }
}

#[tokio::test]
async fn injected_faults_are_retried_and_no_row_is_lost_or_duplicated() {
    let e = env(50, json!({})).await;
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[(
            "Contact",
            &["Id", "Email", "SystemModstamp"],
            "full_refresh",
        )],
    );
    e.org
        .control(
            "fail",
            &json!({"kind": "bulk_query", "status": 503, "count": 2}),
        )
        .await;
    e.org
        .control("cut", &json!({"kind": "bulk_query", "count": 2}))
        .await;
    e.org.control("expire_tokens", &json!({})).await;
    let msgs = read_ok(&e, &cat, None).await;
    let got = records(&msgs, "Contact");
    let ids: BTreeSet<&str> = got.iter().map(|r| r["Id"].as_str().unwrap()).collect();
    assert_eq!(got.len(), 150);
    assert_eq!(ids.len(), 150);
    let want: BTreeSet<String> = org_rows(&e.org, "SELECT Id FROM Contact")
        .await
        .iter()
        .map(|r| r["Id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, want.iter().map(|s| s.as_str()).collect());
}

#[tokio::test]
async fn a_failed_bulk_job_is_run_again_then_its_window_read_through_rest() {
    let e = env(20, json!({})).await;
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("Lead", &["Id", "Email"], "full_refresh")],
    );
    // One failure: the job is run once more, and the stream stays on Bulk.
    e.org.control("fail_bulk_job", &json!({"count": 1})).await;
    let msgs = read_ok(&e, &cat, None).await;
    assert_eq!(records(&msgs, "Lead").len(), 40);
    let seen = logs(&msgs);
    assert!(
        seen.iter().any(|l| l.starts_with("Lead: Bulk query job ")
            && l.ends_with("the query job failed (simulated); running the Bulk job once more")),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|l| l.starts_with("Lead: 40 rows in ") && l.ends_with("through Bulk API 2.0")),
        "{seen:?}"
    );
    // Two failures: this window alone is read through REST.
    e.org.control("fail_bulk_job", &json!({"count": 2})).await;
    let msgs = read_ok(&e, &cat, None).await;
    assert_eq!(records(&msgs, "Lead").len(), 40);
    let seen = logs(&msgs);
    assert!(
        seen.iter().any(|l| l.starts_with("Lead: Bulk query job ")
            && l.ends_with("; reading this window with the REST API")),
        "{seen:?}"
    );
}

/// A simulator whose Account is the recorded Person Account describe (250 fields): a field
/// list too long for one short URL.
async fn wide_env() -> Env {
    let data = tempfile::tempdir().unwrap();
    std::fs::copy(
        format!(
            "{}/fixtures/recorded/describe_Account_PersonAccount_v59.json",
            manifest_dir()
        ),
        data.path().join("describe_Account.json"),
    )
    .unwrap();
    let org = Org::start_with(sfetl_sim::SimOptions {
        scale: 300,
        seed: 7,
        data_dir: Some(data.path().to_path_buf()),
        ..Default::default()
    })
    .await;
    env_on(org, json!({}))
}

/// The RECORD data and LOG lines of a REST read of every Account field (a failed Bulk job
/// forces REST).
async fn rest_account_rows(e: &Env, config: &Path) -> (Vec<Value>, Vec<String>) {
    let cat = catalog(
        e.dir.path(),
        "wide.json",
        &[("Account", &[], "full_refresh")],
    );
    e.org.control("fail_bulk_job", &json!({"count": 2})).await;
    let msgs = messages(&read_files(config, &cat, None).await);
    let logs = logs(&msgs);
    (records(&msgs, "Account"), logs)
}

#[tokio::test]
async fn wide_rest_queries_are_split_under_the_url_limit_and_rejoined_by_id() {
    let e = wide_env().await;
    let (whole, logs) = rest_account_rows(&e, &e.config).await;
    assert_eq!(whole.len(), 300);
    assert!(logs.iter().all(|l| !l.contains("too many")), "{logs:?}");

    // The same read with URLs of at most 2,000 bytes: a main query plus lookups by Id.
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(&e.config).unwrap()).unwrap();
    cfg["rest_max_url_bytes"] = json!(2000);
    let narrow = write_json(e.dir.path(), "narrow.json", &cfg);
    e.org.control("stats/reset", &json!({})).await;
    let (split, logs) = rest_account_rows(&e, &narrow).await;
    assert_eq!(split.len(), 300);
    assert_eq!(split, whole, "same rows and values, whatever the split");
    let split_log = logs
        .iter()
        .find(|l| {
            l.starts_with("Account: ")
                && l.contains("fields are too many for one REST query URL (over 2000 bytes)")
                && l.ends_with("37 ids a call")
        })
        .unwrap_or_else(|| panic!("{logs:?}"));
    let groups: u64 = split_log
        .split(" more group(s)")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(groups >= 2, "{split_log}");
    // 300 rows in one page; each lookup group asks for 37 ids a call: 9 calls per group.
    let stats = e.org.stats().await;
    let queries = stats["by_kind"]["query"].as_u64().unwrap();
    assert_eq!(queries, 1 + 9 * groups, "{stats}");
}

#[tokio::test]
async fn a_url_refused_as_too_long_is_split_further() {
    let e = wide_env().await;
    let (whole, _) = rest_account_rows(&e, &e.config).await;
    // An org (or proxy) that refuses URIs over 3,000 bytes with headers: 414 / 431.
    e.org.control("uri_limit", &json!({"bytes": 3000})).await;
    let (split, logs) = rest_account_rows(&e, &e.config).await;
    assert_eq!(split, whole);
    assert!(
        logs.iter().any(|l| l
            .starts_with("Account: Salesforce refused a REST query URL as too long (HTTP 414)")),
        "{logs:?}"
    );
}

#[tokio::test]
async fn progress_bars_only_on_a_terminal() {
    let e = env(100, json!({})).await;
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("Account", &["Id", "Name"], "full_refresh")],
    );
    // stderr piped (as orchestrators run connectors): no bar, no terminal control codes.
    let out = read_files(&e.config, &cat, None).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("rows/s"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}') && !stderr.contains('\r'),
        "{stderr:?}"
    );
    // The same read on a pseudo-terminal (util-linux `script`): a bar per stream, finished
    // with the row count.
    let cmd = format!(
        "{} read --config {} --catalog {} 2>&1 >/dev/null",
        bin(),
        e.config.display(),
        cat.display()
    );
    let tty = tokio::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env_remove("SFETL_LOG")
        .output()
        .await
        .expect("util-linux script runs");
    assert!(tty.status.success());
    let drawn = String::from_utf8_lossy(&tty.stdout);
    let last = drawn.rsplit('\r').next().unwrap_or_default();
    assert!(last.contains("Account"), "{drawn:?}");
    assert!(last.contains("100 rows"), "{drawn:?}");
    assert!(last.contains("rows/s"), "{drawn:?}");
}

#[tokio::test]
async fn a_read_during_a_concurrency_spike_completes_with_every_row() {
    let e = env(50, json!({})).await;
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[
            ("Account", &["Id", "Name"], "full_refresh"),
            ("Contact", &["Id", "Email"], "full_refresh"),
        ],
    );
    // The next 4 data requests are refused as Salesforce refuses them when too many run at
    // once: 403 REQUEST_LIMIT_EXCEEDED "ConcurrentRequests ...", the daily quota's code.
    e.org.control("limits", &json!({"requests_spike": 4})).await;
    let msgs = read_ok(&e, &cat, None).await;
    assert_eq!(records(&msgs, "Account").len(), 50);
    assert_eq!(records(&msgs, "Contact").len(), 150);
    assert!(
        msgs.iter().all(|m| m["trace"]["type"] != "ERROR"),
        "no stream failed"
    );
}

/// stdout's pipe is grown to 1 MiB (Linux's `pipe-max-size` for unprivileged processes) when
/// the read starts, so a wide read blocks on its reader 16 times less often; every row still
/// arrives.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn stdout_pipe_is_widened_to_one_mib() {
    use std::os::fd::AsRawFd;
    use tokio::io::AsyncReadExt;
    let e = env(40, json!({})).await;
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("Account", &["Id", "Name"], "full_refresh")],
    );
    let mut child = read_cmd(&e.config, &cat)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut text = String::new();
    stdout.read_to_string(&mut text).await.unwrap();
    assert!(child.wait().await.unwrap().success());
    // The pipe was made by this test with the default 64 KiB; the child grew it.
    // SAFETY: F_GETPIPE_SZ takes no argument and reads nothing of this process's memory.
    let size = unsafe { libc::fcntl(stdout.as_raw_fd(), libc::F_GETPIPE_SZ) };
    assert_eq!(size, 1_048_576);
    let msgs: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records(&msgs, "Account").len(), 40);
}

#[tokio::test]
async fn what_the_read_does_otherwise_than_the_catalog_asks_is_logged() {
    let e = env(2, json!({"start_date": "2000-01-01", "cursor_lag": "PT0S"})).await;
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[
            ("RecentlyViewed", &["Id", "Name"], "incremental"),
            ("Account", &["Id", "Name", "SystemModstamp"], "incremental"),
        ],
    );
    let mut k: Value = serde_json::from_slice(&std::fs::read(&cat).unwrap()).unwrap();
    k["streams"][1]["cursor_field"] = json!(["Name"]);
    let cat = write_json(e.dir.path(), "cat.json", &k);
    let msgs = read_ok(&e, &cat, None).await;
    let warnings = warnings(&msgs);
    assert!(warnings.contains(&"RecentlyViewed: the catalog asks for an incremental read, but the stream has no cursor field (its supported_sync_modes are full_refresh only), so it is read in full; configure it as full_refresh".to_string()), "{warnings:?}");
    assert!(warnings.contains(&"Account: cursor_field [\"Name\"] is ignored: the stream's cursor is SystemModstamp (source-defined, as discover declares)".to_string()), "{warnings:?}");
    assert_eq!(records(&msgs, "Account").len(), 2);
}
