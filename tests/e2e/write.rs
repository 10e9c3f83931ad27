//! `sfetl write` end to end: the real binary against the in-process simulator over HTTP, with
//! results checked in the simulator's stored records (`/__sim/record`) and request counts
//! (`/__sim/stats`).

use std::process::{Output, Stdio};
use std::sync::Arc;

use arrow::array::{Float64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use serde_json::{Value, json};

use crate::common::write_helpers::{WriteEnv, record, score, state, text, trace_error, write_env};
use crate::common::{messages, sfetl, write_json};

async fn env() -> WriteEnv {
    write_env(json!({})).await
}

#[tokio::test]
async fn states_are_echoed_in_order_after_both_routes_apply() {
    let e = env().await;
    let leads = e.ids("Lead", 3).await;
    let contacts = e.ids("Contact", 2).await;
    let (_, acc) = e
        .org
        .query("SELECT Id, External_Id__c FROM Account WHERE External_Id__c != null ORDER BY Id LIMIT 1")
        .await;
    let account = acc["records"][0]["Id"].as_str().unwrap().to_string();
    let ext = acc["records"][0]["External_Id__c"]
        .as_str()
        .unwrap()
        .to_string();
    let input = vec![
        score("Lead", &leads[0], 91.5, "opened 3 emails"),
        score("Contact", &contacts[0], 12.25, "cold"),
        score("Lead", &leads[1], 40.0, "visited pricing"),
        state("person_scores", 1),
        score("Contact", &contacts[1], 77.0, "asked for a demo"),
        score("Lead", &leads[2], 5.0, "bounced"),
        state("person_scores", 2),
        record(
            "account_enrichment",
            json!({"ext_id": ext, "summary": "Renewal due"}),
        ),
        state("account_enrichment", 3),
    ];
    let out = e.write_ok(&input, &[]).await;
    let msgs = messages(&out);
    let states: Vec<(Value, Value)> = msgs
        .iter()
        .filter(|m| m["type"] == "STATE")
        .map(|m| {
            (
                m["state"]["stream"]["stream_state"]["n"].clone(),
                m["state"]["destinationStats"]["recordCount"].clone(),
            )
        })
        .collect();
    assert_eq!(
        states,
        vec![
            (json!(1), json!(3.0)),
            (json!(2), json!(2.0)),
            (json!(3), json!(1.0))
        ]
    );
    assert_eq!(msgs.last().unwrap()["type"], "LOG", "summary ends the run");
    for (obj, id, s, r) in [
        ("Lead", &leads[0], 91.5, "opened 3 emails"),
        ("Lead", &leads[1], 40.0, "visited pricing"),
        ("Lead", &leads[2], 5.0, "bounced"),
        ("Contact", &contacts[0], 12.25, "cold"),
        ("Contact", &contacts[1], 77.0, "asked for a demo"),
    ] {
        let rec = e.stored(obj, id).await;
        assert_eq!(rec["Score__c"].as_f64(), Some(s), "{obj} {id}: {rec}");
        assert_eq!(rec["Score_Reason__c"], json!(r), "{obj} {id}");
    }
    assert_eq!(
        e.stored("Account", &account).await["Description"],
        "Renewal due"
    );
    // Two STATEs over person_scores: Lead and Contact calls per flush; one upsert call.
    assert_eq!(e.calls().await, (5, 0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("person_scores/routes[0] (update Lead): 3 applied, 0 rejected"),
        "{stderr}"
    );
    assert!(
        stderr.contains("person_scores/routes[1] (update Contact): 2 applied, 0 rejected"),
        "{stderr}"
    );
}

#[tokio::test]
async fn upsert_creates_then_updates_by_external_id() {
    // Creating an Account needs its required Name, so this route maps it too.
    let e = write_env(json!({"streams": {"account_enrichment": {"routes": [
        {"object": "Account", "operation": "upsert", "external_id": "External_Id__c",
         "fields": {"External_Id__c": "ext_id", "Description": "summary", "Name": "'Enriched ' || ext_id"}}]}}}))
    .await;
    let first = e
        .write(&[record(
            "account_enrichment",
            json!({"ext_id": "ENR-42", "summary": "first"}),
        )])
        .await;
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let (_, v) = e
        .org
        .query("SELECT Id, Description FROM Account WHERE External_Id__c = 'ENR-42'")
        .await;
    assert_eq!(v["totalSize"], 1, "{v}");
    let id = v["records"][0]["Id"].as_str().unwrap().to_string();
    assert_eq!(v["records"][0]["Description"], "first");
    let second = e
        .write(&[record(
            "account_enrichment",
            json!({"ext_id": "ENR-42", "summary": "second"}),
        )])
        .await;
    assert!(second.status.success());
    let (_, v) = e
        .org
        .query("SELECT Id, Description FROM Account WHERE External_Id__c = 'ENR-42'")
        .await;
    assert_eq!(v["totalSize"], 1, "updated, not duplicated: {v}");
    assert_eq!(v["records"][0]["Id"], json!(id));
    assert_eq!(e.stored("Account", &id).await["Description"], "second");
}

#[tokio::test]
async fn refused_rows_go_to_the_rejects_file_with_their_codes() {
    let e = env().await;
    let leads = e.ids("Lead", 2).await;
    let long = "x".repeat(300);
    let input = vec![
        score("Lead", &leads[0], 1000.0, "too big"),
        score("Lead", &leads[1], 50.0, &long),
        score("Contact", "003000000000000AAA", 1.0, "no such contact"),
        score("Opportunity", &leads[0], 1.0, "no route"),
        state("person_scores", 1),
    ];
    let out = e.write_ok(&input, &[]).await;
    let states: Vec<Value> = messages(&out)
        .into_iter()
        .filter(|m| m["type"] == "STATE")
        .map(|m| m["state"]["destinationStats"]["recordCount"].clone())
        .collect();
    assert_eq!(states, vec![json!(4.0)]);
    let batches = e.rejects("person_scores");
    assert_eq!(batches.len(), 1);
    let b = &batches[0];
    assert_eq!(
        text(b, "source_object"),
        ["Lead", "Lead", "Contact", "Opportunity"]
    );
    assert_eq!(text(b, "score"), ["1000.0", "50.0", "1.0", "1.0"]);
    assert_eq!(text(b, "_sfetl_object"), ["Lead", "Lead", "Contact", ""]);
    assert_eq!(
        text(b, "_sfetl_operation"),
        ["update", "update", "update", ""]
    );
    let codes = text(b, "_sfetl_error_code");
    assert_eq!(codes[0], "NUMBER_OUTSIDE_VALID_RANGE");
    assert_eq!(codes[1], "STRING_TOO_LONG");
    assert!(
        [
            "ENTITY_IS_DELETED",
            "MALFORMED_ID",
            "INVALID_CROSS_REFERENCE_KEY"
        ]
        .contains(&codes[2].as_str()),
        "{codes:?}"
    );
    assert_eq!(codes[3], "NO_MATCHING_ROUTE");
    // The valid fields of refused rows were not applied.
    assert_ne!(e.score_of("Lead", &leads[0]).await, Some(1000.0));
}

#[tokio::test]
async fn bulk_is_used_above_the_threshold_and_its_failures_are_rejected() {
    let e = write_env(json!({"bulk_threshold": 2})).await;
    let leads = e.ids("Lead", 4).await;
    let input = vec![
        score("Lead", &leads[0], 10.0, "a"),
        score("Lead", &leads[1], 11.5, "b"),
        score("Lead", &leads[2], 1000.0, "out of range"),
        score("Lead", &leads[3], 13.0, "d"),
        state("person_scores", 1),
    ];
    e.write_ok(&input, &[]).await;
    let (collections, bulk) = e.calls().await;
    assert_eq!(collections, 0);
    // create, upload, close, two polls, failed results.
    assert_eq!(bulk, 6);
    assert_eq!(e.score_of("Lead", &leads[0]).await, Some(10.0));
    assert_eq!(e.score_of("Lead", &leads[1]).await, Some(11.5));
    assert_eq!(e.score_of("Lead", &leads[3]).await, Some(13.0));
    let b = &e.rejects("person_scores")[0];
    assert_eq!(text(b, "source_id"), [leads[2].clone()]);
    assert_eq!(text(b, "_sfetl_error_code"), ["NUMBER_OUTSIDE_VALID_RANGE"]);
}

#[tokio::test]
async fn small_batches_use_one_collections_call_per_200_rows() {
    let e = env().await;
    let leads = e.ids("Lead", 40).await;
    // 150 updates of one object: one Collections call.
    let input: Vec<Value> = (0..150)
        .map(|i| score("Lead", &leads[i % 40], (i % 100) as f64, "batch"))
        .collect();
    e.write_ok(&input, &[]).await;
    assert_eq!(e.calls().await, (1, 0));
    // The last write of each id wins.
    assert_eq!(e.score_of("Lead", &leads[0]).await, Some(20.0));
}

#[tokio::test]
async fn transient_failures_are_retried() {
    let e = env().await;
    let leads = e.ids("Lead", 1).await;
    e.org
        .control(
            "fail",
            &json!({"kind": "collections", "count": 1, "status": 503}),
        )
        .await;
    e.write_ok(
        &[
            score("Lead", &leads[0], 33.0, "retried"),
            state("person_scores", 1),
        ],
        &[],
    )
    .await;
    assert_eq!(e.calls().await, (2, 0));
    assert_eq!(e.score_of("Lead", &leads[0]).await, Some(33.0));
    assert!(e.rejects("person_scores").is_empty());
    e.org
        .control(
            "fail",
            &json!({"kind": "collections", "count": 1, "status": 400, "error_code": "UNABLE_TO_LOCK_ROW"}),
        )
        .await;
    e.write_ok(&[score("Lead", &leads[0], 34.0, "locked once")], &[])
        .await;
    assert_eq!(e.score_of("Lead", &leads[0]).await, Some(34.0));
    // Past the retries: the run stops, and says that nothing was applied nor rejected.
    e.org
        .control(
            "fail",
            &json!({"kind": "collections", "count": 100, "status": 503}),
        )
        .await;
    let out = e
        .write(&[score("Lead", &leads[0], 35.0, "unavailable")])
        .await;
    assert_eq!(out.status.code(), Some(1));
    let (kind, message) = trace_error(&messages(&out)).unwrap();
    assert_eq!(kind, "transient_error");
    assert!(
        message.ends_with(". No row was applied in Salesforce and none was rejected: send the same input again once Salesforce answers"),
        "{message}"
    );
    assert_eq!(e.score_of("Lead", &leads[0]).await, Some(34.0));
}

#[tokio::test]
async fn rows_refused_as_locked_are_sent_again() {
    // Collections: 2 of 5 rows refused with UNABLE_TO_LOCK_ROW, sent again in a second call.
    let e = env().await;
    let (e, out) = scores_despite_locks(e, 5, 2).await;
    assert_eq!(e.calls().await, (2, 0));
    let echoed = messages(&out);
    assert_eq!(echoed.iter().filter(|m| m["type"] == "STATE").count(), 1);

    // Bulk: one of 4 rows refused in the job; the single row left goes again through Collections.
    let e = write_env(json!({"bulk_threshold": 2})).await;
    let (e, _) = scores_despite_locks(e, 4, 1).await;
    // create, upload, close, two polls, failed results; then one Collections call.
    assert_eq!(e.calls().await, (1, 6));
}

/// Writes scores `40 + i` to `n` Leads (then a STATE) while the next `locked` rows are refused
/// with UNABLE_TO_LOCK_ROW; checks every score landed and nothing was rejected.
async fn scores_despite_locks(e: WriteEnv, n: usize, locked: u32) -> (WriteEnv, Output) {
    let leads = e.ids("Lead", n).await;
    e.org.control("fail_rows", &json!({"count": locked})).await;
    let input: Vec<Value> = (0..n)
        .map(|i| score("Lead", &leads[i], 40.0 + i as f64, "locked"))
        .chain([state("person_scores", 1)])
        .collect();
    let out = e.write_ok(&input, &[]).await;
    for (i, id) in leads.iter().enumerate() {
        assert_eq!(e.score_of("Lead", id).await, Some(40.0 + i as f64));
    }
    assert!(e.rejects("person_scores").is_empty());
    (e, out)
}

#[tokio::test]
async fn rows_locked_past_the_retries_are_rejected_with_the_code() {
    let e = env().await;
    let leads = e.ids("Lead", 2).await;
    // The next 7 rows written are refused: both rows in the first send and the 2 re-sends, then
    // the first row once more in the last round (so it is rejected) while the second applies.
    e.org.control("fail_rows", &json!({"count": 7})).await;
    e.write_ok(
        &[
            score("Lead", &leads[0], 61.0, "always locked"),
            score("Lead", &leads[1], 62.0, "fine"),
        ],
        &[],
    )
    .await;
    assert_eq!(e.calls().await, (4, 0));
    assert_ne!(e.score_of("Lead", &leads[0]).await, Some(61.0));
    assert_eq!(e.score_of("Lead", &leads[1]).await, Some(62.0));
    let b = &e.rejects("person_scores")[0];
    assert_eq!(b.num_rows(), 1);
    assert_eq!(text(b, "source_id"), [leads[0].clone()]);
    assert_eq!(text(b, "_sfetl_error_code"), ["UNABLE_TO_LOCK_ROW"]);
    assert_eq!(
        text(b, "_sfetl_error_message"),
        [format!(
            "unable to obtain exclusive access to this record or 1 records: {}",
            leads[0]
        )]
    );
}

#[tokio::test]
async fn small_deletes_use_collections() {
    let e = write_env(json!({"streams": {"person_scores": {"routes": [
        {"object": "Lead", "operation": "delete", "fields": {"Id": "source_id"}}]}}}))
    .await;
    let leads = e.ids("Lead", 4).await;
    e.org
        .control("delete", &json!({"object": "Lead", "ids": [leads[3]]}))
        .await;
    e.org.control("stats/reset", &json!({})).await;
    let input: Vec<Value> = leads
        .iter()
        .map(|id| score("Lead", id, 0.0, "gone"))
        .chain([state("person_scores", 1)])
        .collect();
    e.write_ok(&input, &[]).await;
    assert_eq!(e.calls().await, (1, 0));
    for id in &leads[..3] {
        assert_eq!(e.stored("Lead", id).await["IsDeleted"], json!(true));
    }
    let b = &e.rejects("person_scores")[0];
    assert_eq!(text(b, "source_id"), [leads[3].clone()]);
    assert_eq!(text(b, "_sfetl_operation"), ["delete"]);
    assert_eq!(text(b, "_sfetl_error_code"), ["ENTITY_IS_DELETED"]);
}

#[tokio::test]
async fn dry_run_writes_nothing() {
    let e = env().await;
    let leads = e.ids("Lead", 1).await;
    let before = e.stored("Lead", &leads[0]).await;
    let out = e
        .write_ok(
            &[
                score("Lead", &leads[0], 66.0, "dry"),
                state("person_scores", 1),
            ],
            &["--dry-run"],
        )
        .await;
    assert_eq!(e.calls().await, (0, 0));
    assert_eq!(e.stored("Lead", &leads[0]).await, before);
    let msgs = messages(&out);
    assert!(
        msgs.iter().all(|m| m["type"] != "STATE"),
        "no STATE: nothing was applied"
    );
    let logs: Vec<&str> = msgs
        .iter()
        .filter_map(|m| m["log"]["message"].as_str())
        .collect();
    assert!(
        logs[0].starts_with(
            "dry run: person_scores/routes[0] (update Lead): would update 1 Lead record(s) through sObject Collections (1 call(s))"
        ),
        "{logs:?}"
    );
    assert!(logs[0].contains(&format!(
        "{{\"Id\":\"{}\",\"Score__c\":66.0,\"Score_Reason__c\":\"dry\"}}",
        leads[0]
    )));
}

#[tokio::test]
async fn parquet_file_input() {
    let e = env().await;
    let leads = e.ids("Lead", 2).await;
    let contacts = e.ids("Contact", 1).await;
    let schema = Arc::new(Schema::new(vec![
        Field::new("source_object", DataType::Utf8, false),
        Field::new("source_id", DataType::Utf8, false),
        Field::new("score", DataType::Float64, true),
        Field::new("reason", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec!["Lead", "Lead", "Contact"])),
            Arc::new(StringArray::from(vec![
                leads[0].as_str(),
                leads[1].as_str(),
                contacts[0].as_str(),
            ])),
            Arc::new(Float64Array::from(vec![Some(1.5), None, Some(3.0)])),
            Arc::new(StringArray::from(vec![Some("p1"), Some("cleared"), None])),
        ],
    )
    .unwrap();
    let path = e.dir.path().join("scores.parquet");
    let mut w =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema, None)
            .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let out = sfetl()
        .args([
            "write",
            "--config",
            e.config.to_str().unwrap(),
            "--input",
            path.to_str().unwrap(),
            "--stream",
            "person_scores",
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(e.score_of("Lead", &leads[0]).await, Some(1.5));
    let cleared = e.stored("Lead", &leads[1]).await;
    assert_eq!(cleared["Score__c"], Value::Null, "null clears the field");
    assert_eq!(cleared["Score_Reason__c"], "cleared");
    let c = e.stored("Contact", &contacts[0]).await;
    assert_eq!(c["Score__c"].as_f64(), Some(3.0));
    assert_eq!(c["Score_Reason__c"], Value::Null);
    assert_eq!(e.calls().await, (2, 0));
}

#[tokio::test]
async fn malformed_input_names_the_line_and_keeps_earlier_states() {
    let e = env().await;
    let leads = e.ids("Lead", 1).await;
    let input = vec![
        score("Lead", &leads[0], 8.0, "ok"),
        state("person_scores", 1),
        json!("not a message"),
        record("unknown_stream", json!({})),
    ];
    let out = e.write(&input).await;
    assert_eq!(out.status.code(), Some(2));
    let msgs = messages(&out);
    assert_eq!(msgs[0]["type"], "STATE");
    let err = msgs
        .iter()
        .find(|m| m["type"] == "TRACE")
        .expect("a TRACE error");
    let message = err["trace"]["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("input line 3: not an Airbyte protocol message"),
        "{message}"
    );
    assert!(message.contains("1 row(s) were applied"), "{message}");
    assert_eq!(e.score_of("Lead", &leads[0]).await, Some(8.0));

    let out = e.write(&[record("unknown_stream", json!({}))]).await;
    let (_, message) = trace_error(&messages(&out)).unwrap();
    assert!(
        message.starts_with("input line 1: RECORD of stream \"unknown_stream\""),
        "{message}"
    );

    // A value of the wrong type is named by its line too, whichever step of the JSON decoder
    // finds it.
    let bad = record(
        "person_scores",
        json!({"source_object": "Lead", "source_id": leads[0], "score": "high"}),
    );
    let out = e.write(&[score("Lead", &leads[0], 9.0, "ok"), bad]).await;
    assert_eq!(out.status.code(), Some(2));
    let (_, message) = trace_error(&messages(&out)).unwrap();
    assert!(
        message.starts_with("input line 2: RECORD of stream person_scores: "),
        "{message}"
    );
    assert!(
        message.contains("the value does not match the type the catalog declares"),
        "{message}"
    );
    assert_eq!(
        e.score_of("Lead", &leads[0]).await,
        Some(8.0),
        "nothing applied"
    );
}

#[tokio::test]
async fn config_problems_are_listed_with_their_paths() {
    let e = env().await;
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(&e.config).unwrap()).unwrap();
    cfg["writeback"]["streams"]["person_scores"]["routes"][0]["fields"]["Nope__c"] = json!("score");
    cfg["writeback"]["streams"]["account_enrichment"]["routes"][0]["external_id"] =
        json!("Description");
    cfg["writeback"]["streams"]["account_enrichment"]["routes"][0]["fields"]["Description"] =
        json!("ext_id");
    let config = write_json(e.dir.path(), "bad.json", &cfg);
    let out = sfetl()
        .args([
            "write",
            "--config",
            config.to_str().unwrap(),
            "--catalog",
            e.catalog.to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let msgs = messages(&out);
    let message = msgs[0]["trace"]["error"]["message"].as_str().unwrap();
    assert!(message.contains("writeback.streams.person_scores.routes[0].fields.Nope__c: Lead has no field \"Nope__c\""), "{message}");
    assert!(message.contains("writeback.streams.account_enrichment.routes[0].external_id: Account.Description is not an External ID field"), "{message}");
}

#[tokio::test]
async fn check_validates_the_writeback_against_the_org() {
    let e = env().await;
    let out = sfetl()
        .args(["check", "--config", e.config.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    let msgs = messages(&out);
    assert_eq!(
        msgs.last().unwrap()["connectionStatus"]["status"],
        "SUCCEEDED",
        "{msgs:?}"
    );
    assert!(
        msgs.last().unwrap()["connectionStatus"]["message"]
            .as_str()
            .unwrap()
            .ends_with(" Writeback: 3 route(s) valid against the org's describes."),
        "{msgs:?}"
    );
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(&e.config).unwrap()).unwrap();
    cfg["writeback"]["streams"]["person_scores"]["routes"][1]["object"] = json!("Contakt");
    let status = check_status(&e, &cfg, "bad.json").await;
    assert_eq!(status["status"], "FAILED");
    assert!(
        status["message"].as_str().unwrap().contains(
            "writeback.streams.person_scores.routes[1].object: the org has no object \"Contakt\""
        ),
        "{status}"
    );
}

/// `sfetl check` of `cfg` (written as `name`): its CONNECTION_STATUS.
async fn check_status(e: &WriteEnv, cfg: &Value, name: &str) -> Value {
    let path = write_json(e.dir.path(), name, cfg);
    let out = sfetl()
        .args(["check", "--config", path.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    messages(&out).last().unwrap()["connectionStatus"].clone()
}

#[tokio::test]
async fn check_refuses_an_insert_route_that_leaves_a_required_field_out() {
    let e = env().await;
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(&e.config).unwrap()).unwrap();
    // Lead needs LastName and Company to be created; OwnerId and the checkboxes Salesforce
    // fills itself.
    cfg["writeback"]["streams"]["new_leads"] = json!({"routes": [
        {"object": "Lead", "operation": "insert", "fields": {"LastName": "source_id"}}]});
    let status = check_status(&e, &cfg, "insert.json").await;
    assert_eq!(status["status"], "FAILED");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.contains("writeback.streams.new_leads.routes[0].fields: Lead.Company is required to create a record and the route does not set it; add \"Company\": <an expression over the incoming columns>"),
        "{message}"
    );
    assert!(!message.contains("LastName is required"), "{message}");
    assert!(!message.contains("OwnerId"), "{message}");
}
