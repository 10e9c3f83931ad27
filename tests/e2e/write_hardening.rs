//! Write-back failure handling (issue 14, point 6), end to end against the simulator: the text
//! `#N/A`, rows too large for one call, malformed CSV input, Bulk jobs that end `Failed`, and
//! transient failures of job creation. Each asserts the exit code, the STATEs echoed, the
//! rejects file and what the org stored.

use crate::common::write_helpers::{
    WriteEnv, record, score, state, states, text, trace_error, write_env,
};
use crate::common::{assert_ok, messages};
use serde_json::{Value, json};

fn reason_row(id: &str, score: f64, reason: Value) -> Value {
    record(
        "person_scores",
        json!({"source_object": "Lead", "source_id": id, "score": score, "reason": reason}),
    )
}

/// Writes `#N/A`, null, empty and plain text as Score_Reason__c of four Leads whose reason
/// was "before"; returns the env and the Lead ids.
async fn na_outcome(settings: Value) -> (WriteEnv, Vec<String>) {
    let e = write_env(settings).await;
    let leads = e.ids("Lead", 4).await;
    let before: Vec<Value> = leads
        .iter()
        .map(|id| score("Lead", id, 1.0, "before"))
        .collect();
    assert_ok(&e.write(&before).await);
    let input = vec![
        reason_row(&leads[0], 2.0, json!("#N/A")),
        reason_row(&leads[1], 2.0, Value::Null),
        reason_row(&leads[2], 2.0, json!("")),
        reason_row(&leads[3], 2.0, json!("kept")),
        state("person_scores", 1),
    ];
    let out = e.write(&input).await;
    assert_ok(&out);
    assert_eq!(states(&messages(&out)), vec![json!(1)]);
    (e, leads)
}

#[tokio::test]
async fn na_text_is_refused_and_null_clears_the_same_through_both_apis() {
    for (settings, api) in [
        (json!({}), "collections"),
        (json!({"bulk_threshold": 2}), "bulk"),
    ] {
        let (e, leads) = na_outcome(settings).await;
        let (collections, bulk) = e.calls().await;
        match api {
            "collections" => assert_eq!((collections, bulk), (2, 0), "{api}"),
            _ => assert_eq!((collections, bulk), (0, 10), "{api}: two clean jobs"),
        }
        let refused = e.stored("Lead", &leads[0]).await;
        assert_eq!(refused["Score_Reason__c"], "before", "{api}");
        assert_eq!(refused["Score__c"].as_f64(), Some(1.0), "{api}");
        for id in &leads[1..3] {
            let cleared = e.stored("Lead", id).await;
            assert_eq!(cleared["Score_Reason__c"], Value::Null, "{api}: {cleared}");
            assert_eq!(cleared["Score__c"].as_f64(), Some(2.0), "{api}");
        }
        assert_eq!(e.stored("Lead", &leads[3]).await["Score_Reason__c"], "kept");
        let rejects = e.rejects("person_scores");
        assert_eq!(rejects.len(), 1, "{api}");
        let b = &rejects[0];
        assert_eq!(text(b, "source_id"), [leads[0].clone()], "{api}");
        assert_eq!(text(b, "_sfetl_error_code"), ["SFETL_LITERAL_NA"], "{api}");
        assert_eq!(
            text(b, "_sfetl_error_message"),
            [format!(
                "Id {}: Score_Reason__c is the text \"#N/A\", which Salesforce's Bulk API reads as \"set to null\" and sObject Collections as text, so sfetl refuses it rather than let the batch size decide; send null (or an empty value) to clear the field, or other text to store",
                leads[0]
            )],
            "{api}"
        );
    }
}

#[tokio::test]
async fn a_row_too_large_for_a_collections_call_is_rejected_by_id_and_calls_stay_small() {
    let e = write_env(json!({})).await;
    let leads = e.ids("Lead", 5).await;
    let huge = "x".repeat(3_000_000);
    let large = "y".repeat(1_500_000);
    let input = vec![
        score("Lead", &leads[0], 10.0, "small"),
        score("Lead", &leads[1], 11.0, &huge),
        score("Lead", &leads[2], 12.0, &large),
        score("Lead", &leads[3], 13.0, &large),
        score("Lead", &leads[4], 14.0, "small"),
        state("person_scores", 1),
    ];
    let out = e.write(&input).await;
    assert_ok(&out);
    assert_eq!(states(&messages(&out)), vec![json!(1)]);
    // Rows 2 and 3 do not fit one call together: two calls, the huge row in none.
    assert_eq!(e.calls().await, (2, 0));
    assert_eq!(
        e.stored("Lead", &leads[0]).await["Score__c"].as_f64(),
        Some(10.0)
    );
    assert_eq!(
        e.stored("Lead", &leads[4]).await["Score__c"].as_f64(),
        Some(14.0)
    );
    assert_ne!(
        e.stored("Lead", &leads[1]).await["Score__c"].as_f64(),
        Some(11.0)
    );
    let b = &e.rejects("person_scores")[0];
    assert_eq!(text(b, "source_id"), leads[1..4].to_vec());
    assert_eq!(
        text(b, "_sfetl_error_code"),
        ["SFETL_ROW_TOO_LARGE", "STRING_TOO_LONG", "STRING_TOO_LONG"]
    );
    let message = &text(b, "_sfetl_error_message")[0];
    let prefix = format!("Id {}: the row is ", leads[1]);
    assert!(message.starts_with(&prefix), "{message}");
    assert!(
        message.ends_with(" bytes as sObject Collections JSON, over the 2097152 bytes sfetl sends in one call (Score_Reason__c alone is 3000000 bytes); it was not sent. Shorten the value: a Salesforce text field holds at most 131,072 characters"),
        "{message}"
    );
}

#[tokio::test]
async fn a_row_too_large_for_a_bulk_upload_is_rejected_by_id_before_the_upload() {
    let e = write_env(json!({"bulk_threshold": 2, "max_upload_bytes": 2048})).await;
    let leads = e.ids("Lead", 4).await;
    let long = "z".repeat(3000);
    let input = vec![
        score("Lead", &leads[0], 20.0, "a"),
        score("Lead", &leads[1], 21.0, "b"),
        score("Lead", &leads[2], 12.0, &long),
        score("Lead", &leads[3], 23.0, "d"),
        state("person_scores", 1),
    ];
    let out = e.write(&input).await;
    assert_ok(&out);
    assert_eq!(states(&messages(&out)), vec![json!(1)]);
    assert_eq!(
        e.calls().await,
        (0, 5),
        "one clean job of the three rows that fit"
    );
    for (i, s) in [(0, 20.0), (1, 21.0), (3, 23.0)] {
        assert_eq!(
            e.stored("Lead", &leads[i]).await["Score__c"].as_f64(),
            Some(s)
        );
    }
    let b = &e.rejects("person_scores")[0];
    assert_eq!(text(b, "source_id"), [leads[2].clone()]);
    assert_eq!(text(b, "_sfetl_error_code"), ["SFETL_ROW_TOO_LARGE"]);
    let header = "Id,Score__c,Score_Reason__c\n".len();
    let row = format!("{},12,{long}\n", leads[2]).len();
    assert_eq!(
        text(b, "_sfetl_error_message"),
        [format!(
            "Id {}: the row is {} bytes as Bulk ingest CSV, over the 2048 bytes of one Bulk upload (writeback.max_upload_bytes) (Score_Reason__c alone is 3000 bytes); it was not sent. Shorten the value: a Salesforce text field holds at most 131,072 characters",
            leads[2],
            header + row
        )]
    );
}

/// Runs `sfetl write --input` on a CSV file with `content`; asserts it stopped with a config
/// error before any call that writes, and returns the TRACE message.
async fn refused_csv(e: &WriteEnv, name: &str, content: &str) -> String {
    let path = e.dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    let out = e.write_file(&path, "person_scores").await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(e.calls().await, (0, 0), "nothing written");
    let (failure, message) = trace_error(&messages(&out)).expect("a TRACE error");
    assert_eq!(failure, "config_error");
    message.replace(&path.display().to_string(), "FILE")
}

#[tokio::test]
async fn malformed_csv_input_stops_the_run_naming_the_line_before_anything_is_written() {
    let e = write_env(json!({})).await;
    let leads = e.ids("Lead", 2).await;
    let before = e.stored("Lead", &leads[0]).await;
    let open_quote = format!(
        "source_object,source_id,score,reason\nLead,{},1.5,fine\nLead,{},2.5,\"never closed\nLead,x,3,y\n",
        leads[0], leads[1]
    );
    assert_eq!(
        refused_csv(&e, "open.csv", &open_quote).await,
        "FILE: line 3, column 4 (\"reason\"): a quoted value starts here and the file ends before its closing quote; close the quote (a quote inside a quoted value is written twice: \"\")"
    );
    let twice = format!(
        "source_object,source_id,score,score\nLead,{},1.5,2.5\n",
        leads[0]
    );
    assert_eq!(
        refused_csv(&e, "twice.csv", &twice).await,
        "FILE: line 1: the column \"score\" appears twice (columns 3 and 4); give every column its own name"
    );
    let short = format!(
        "source_object,source_id,score,reason\nLead,{},1.5,ok\n\nLead,{},2.5\n",
        leads[0], leads[1]
    );
    assert_eq!(
        refused_csv(&e, "short.csv", &short).await,
        "FILE: line 4: 3 value(s) where the header names 4 column(s); give every row one value per column (an empty value is written as nothing between two commas)"
    );
    assert_eq!(e.stored("Lead", &leads[0]).await, before);
    // The same rows, well formed, are written.
    let good = format!(
        "source_object,source_id,score,reason\nLead,{},1.5,\"quoted, with \"\"quotes\"\"\"\n",
        leads[0]
    );
    let path = e.dir.path().join("good.csv");
    std::fs::write(&path, good).unwrap();
    assert_ok(&e.write_file(&path, "person_scores").await);
    let stored = e.stored("Lead", &leads[0]).await;
    assert_eq!(stored["Score_Reason__c"], "quoted, with \"quotes\"");
}

#[tokio::test]
async fn a_bulk_job_that_ends_failed_is_run_once_more() {
    let e = write_env(json!({"bulk_threshold": 2})).await;
    let leads = e.ids("Lead", 3).await;
    e.org.control("fail_bulk_job", &json!({"count": 1})).await;
    let input: Vec<Value> = (0..3)
        .map(|i| score("Lead", &leads[i], 50.0 + i as f64, "again"))
        .chain([state("person_scores", 1)])
        .collect();
    let out = e.write(&input).await;
    assert_ok(&out);
    assert_eq!(states(&messages(&out)), vec![json!(1)]);
    // The failed job: create, upload, close, two polls, unprocessed rows; then a clean job.
    assert_eq!(e.calls().await, (0, 6 + 5));
    for (i, id) in leads.iter().enumerate() {
        assert_eq!(
            e.stored("Lead", id).await["Score__c"].as_f64(),
            Some(50.0 + i as f64)
        );
    }
    assert!(e.rejects("person_scores").is_empty());
}

#[tokio::test]
async fn a_bulk_job_that_fails_twice_stops_the_run_with_no_state_past_its_rows() {
    let e = write_env(json!({"bulk_threshold": 2})).await;
    let leads = e.ids("Lead", 5).await;
    let old: Vec<Option<f64>> = {
        let mut v = Vec::new();
        for id in &leads[2..] {
            v.push(e.stored("Lead", id).await["Score__c"].as_f64());
        }
        v
    };
    e.org.control("fail_bulk_job", &json!({"count": 2})).await;
    let input = vec![
        score("Lead", &leads[0], 60.0, "collections"),
        score("Lead", &leads[1], 61.0, "collections"),
        state("person_scores", 1),
        score("Lead", &leads[2], 62.0, "bulk"),
        score("Lead", &leads[3], 63.0, "bulk"),
        score("Lead", &leads[4], 64.0, "bulk"),
        state("person_scores", 2),
    ];
    let out = e.write(&input).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let msgs = messages(&out);
    assert_eq!(
        states(&msgs),
        vec![json!(1)],
        "no STATE past the unprocessed rows"
    );
    let (failure, message) = trace_error(&msgs).expect("a TRACE error");
    assert_eq!(failure, "transient_error");
    assert!(
        message.starts_with("3 row(s) of person_scores/routes[0] (update Lead) were not processed by Salesforce: Bulk job 750"),
        "{message}"
    );
    assert!(
        message.contains(" ended Failed: InternalServerError : the ingest job failed (simulated). The job was run again once and they were still left unprocessed; they are in the rejects file with code UNPROCESSED, and no STATE after them was echoed: run the write again from the last STATE. Before this error 2 row(s) were applied"),
        "{message}"
    );
    // Two failed jobs (six calls each).
    assert_eq!(e.calls().await, (1, 12));
    assert_eq!(
        e.stored("Lead", &leads[1]).await["Score__c"].as_f64(),
        Some(61.0)
    );
    for (id, was) in leads[2..].iter().zip(old) {
        assert_eq!(e.stored("Lead", id).await["Score__c"].as_f64(), was);
    }
    let b = &e.rejects("person_scores")[0];
    assert_eq!(text(b, "source_id"), leads[2..].to_vec());
    assert_eq!(text(b, "_sfetl_error_code"), ["UNPROCESSED"; 3]);
}

#[tokio::test]
async fn bulk_job_creation_is_retried_after_a_503_and_a_dropped_connection() {
    let e = write_env(json!({"bulk_threshold": 2})).await;
    let leads = e.ids("Lead", 3).await;
    for (fault, body, base) in [
        (
            "fail",
            json!({"kind": "bulk_ingest", "count": 1, "status": 503}),
            70.0,
        ),
        ("cut", json!({"kind": "bulk_ingest", "count": 1}), 80.0),
    ] {
        e.org.control("stats/reset", &json!({})).await;
        e.org.control(fault, &body).await;
        let input: Vec<Value> = (0..3)
            .map(|i| score("Lead", &leads[i], base + i as f64, fault))
            .chain([state("person_scores", 1)])
            .collect();
        let out = e.write(&input).await;
        assert_ok(&out);
        assert_eq!(states(&messages(&out)), vec![json!(1)], "{fault}");
        assert_eq!(e.calls().await, (0, 1 + 5), "{fault}: one more create");
        for (i, id) in leads.iter().enumerate() {
            let stored = e.stored("Lead", id).await;
            assert_eq!(
                stored["Score__c"].as_f64(),
                Some(base + i as f64),
                "{fault}"
            );
        }
    }
    assert!(e.rejects("person_scores").is_empty());
}

#[tokio::test]
async fn csv_codes_reach_text_fields_exactly_as_written() {
    let e = write_env(json!({})).await;
    let leads = e.ids("Lead", 3).await;
    // Values with leading zeros or an exponent parse as numbers (a column of floats, then one
    // of integers); in a text field they are codes, and must not arrive as 12, 100000 or 7.
    let files = [
        format!(
            "source_object,source_id,score,reason\nLead,{},1,0012\nLead,{},2.5,1e5\n",
            leads[0], leads[1]
        ),
        format!(
            "source_object,source_id,score,reason\nLead,{},3,007\n",
            leads[2]
        ),
    ];
    for (i, csv) in files.iter().enumerate() {
        let path = e.dir.path().join(format!("codes-{i}.csv"));
        std::fs::write(&path, csv).unwrap();
        assert_ok(&e.write_file(&path, "person_scores").await);
    }
    for (id, reason, score) in [
        (&leads[0], "0012", 1.0),
        (&leads[1], "1e5", 2.5),
        (&leads[2], "007", 3.0),
    ] {
        let stored = e.stored("Lead", id).await;
        assert_eq!(stored["Score_Reason__c"], reason, "{stored}");
        assert_eq!(stored["Score__c"].as_f64(), Some(score), "{stored}");
    }
}

#[tokio::test]
async fn a_fraction_in_an_integer_column_stops_the_run_instead_of_being_truncated() {
    let e = write_env(json!({})).await;
    let leads = e.ids("Lead", 2).await;
    let before = e.stored("Lead", &leads[1]).await;
    // The same catalog, with score declared an integer.
    let mut catalog: Value = serde_json::from_slice(&std::fs::read(&e.catalog).unwrap()).unwrap();
    catalog["streams"][0]["stream"]["json_schema"]["properties"]["score"] =
        json!({"type": ["null", "integer"]});
    let catalog = crate::common::write_json(e.dir.path(), "int.json", &catalog);
    let rows = [
        score("Lead", &leads[0], 2.0, "whole"),
        score("Lead", &leads[1], 1.9, "fraction"),
    ];
    let out = crate::common::sfetl()
        .args(["write", "--config", e.config.to_str().unwrap()])
        .args(["--catalog", catalog.to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = {
        let mut child = out;
        let mut stdin = child.stdin.take().unwrap();
        let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
        tokio::io::AsyncWriteExt::write_all(&mut stdin, text.as_bytes())
            .await
            .unwrap();
        drop(stdin);
        child.wait_with_output().await.unwrap()
    };
    assert!(!out.status.success());
    let (kind, message) = trace_error(&messages(&out)).unwrap();
    assert_eq!(kind, "config_error", "{message}");
    assert!(
        message.contains("line 2: RECORD of stream person_scores: score is 1.9, not a whole number, but the catalog declares it an integer; round it before sending, or declare the column a number"),
        "{message}"
    );
    assert_eq!(
        e.stored("Lead", &leads[1]).await,
        before,
        "nothing truncated"
    );
}

#[tokio::test]
async fn a_key_left_out_of_a_record_keeps_the_field_and_null_clears_it_through_both_apis() {
    for threshold in [1000, 1] {
        let e = write_env(json!({"bulk_threshold": threshold})).await;
        let leads = e.ids("Lead", 2).await;
        let set: Vec<Value> = leads
            .iter()
            .map(|id| score("Lead", id, 10.0, "kept"))
            .collect();
        e.write_ok(&set, &[]).await;
        let rows = [
            record(
                "person_scores",
                json!({"source_object": "Lead", "source_id": leads[0], "score": 42}),
            ),
            record(
                "person_scores",
                json!({"source_object": "Lead", "source_id": leads[1], "score": 43, "reason": null}),
            ),
        ];
        e.write_ok(&rows, &[]).await;
        let (left_out, nulled) = (
            e.stored("Lead", &leads[0]).await,
            e.stored("Lead", &leads[1]).await,
        );
        assert_eq!(
            left_out["Score__c"].as_f64(),
            Some(42.0),
            "bulk_threshold {threshold}"
        );
        assert_eq!(
            left_out["Score_Reason__c"], "kept",
            "bulk_threshold {threshold}: {left_out}"
        );
        assert_eq!(
            nulled["Score__c"].as_f64(),
            Some(43.0),
            "bulk_threshold {threshold}"
        );
        assert!(
            nulled["Score_Reason__c"].is_null(),
            "bulk_threshold {threshold}: {nulled}"
        );
    }
}

#[tokio::test]
async fn an_empty_file_for_a_stream_without_routes_is_refused() {
    let e = write_env(json!({})).await;
    let path = e.dir.path().join("empty.csv");
    std::fs::write(&path, "").unwrap();
    let out = e.write_file(&path, "nosuch").await;
    assert!(!out.status.success());
    let (kind, message) = trace_error(&messages(&out)).unwrap();
    assert_eq!(kind, "config_error");
    assert!(
        message.contains("writeback.streams: no routes for the incoming stream \"nosuch\""),
        "{message}"
    );
    assert_ok(&e.write_file(&path, "person_scores").await);
}

#[tokio::test]
async fn an_unusable_rejects_folder_is_named_by_its_setting() {
    let e = write_env(json!({})).await;
    let file = e.dir.path().join("a-file");
    std::fs::write(&file, "not a folder").unwrap();
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(&e.config).unwrap()).unwrap();
    cfg["writeback"]["rejects_path"] = json!(file.join("rejects").to_str().unwrap());
    std::fs::write(&e.config, serde_json::to_vec(&cfg).unwrap()).unwrap();
    // A row Salesforce refuses (no such Lead) has to go to the rejects folder.
    let out = e
        .write(&[score("Lead", "00Q5g000009ZZZZAAA", 1.0, "nowhere")])
        .await;
    assert!(!out.status.success());
    let (kind, message) = trace_error(&messages(&out)).unwrap();
    assert_eq!(kind, "config_error", "{message}");
    assert!(message.contains("writeback.rejects_path \""), "{message}");
    assert!(!message.contains("output.path"), "{message}");
}
