//! Unit tests of the writeback config and value formatting.

use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Array, Float64Array, TimestampMillisecondArray};
use serde_json::json;

use super::config::{Operation, Writeback};
use super::format::{csv_cell, format_column, json_value};

#[test]
fn the_issues_example_parses_as_written() {
    let raw = json!({
      "streams": {
        "person_scores": {
          "routes": [
            {"object": "Lead", "when": "source_object = 'Lead'", "operation": "update",
             "fields": {"Id": "source_id", "Score__c": "score", "Score_Reason__c": "reason"}},
            {"object": "Contact", "when": "source_object = 'Contact'", "operation": "update",
             "fields": {"Id": "source_id", "Score__c": "score", "Score_Reason__c": "reason"}}
          ]
        },
        "account_enrichment": {
          "routes": [{"object": "Account", "operation": "upsert", "external_id": "External_Id__c",
                      "fields": {"External_Id__c": "ext_id", "Description": "summary"}}]
        }
      },
      "rejects_path": "./rejects"
    });
    let wb = Writeback::parse(Some(&raw)).unwrap();
    assert_eq!(wb.rejects_path, "./rejects");
    assert_eq!(wb.bulk_threshold, 1000);
    let people = wb.stream("person_scores").unwrap();
    assert_eq!(people.routes.len(), 2);
    assert_eq!(people.routes[1].object, "Contact");
    assert_eq!(
        people.routes[1].when.as_deref(),
        Some("source_object = 'Contact'")
    );
    assert_eq!(
        people.routes[0].fields,
        vec![
            ("Id".to_string(), "source_id".to_string()),
            ("Score__c".to_string(), "score".to_string()),
            ("Score_Reason__c".to_string(), "reason".to_string()),
        ]
    );
    let acc = &wb.stream("account_enrichment").unwrap().routes[0];
    assert_eq!(acc.operation, Operation::Upsert);
    assert_eq!(acc.external_id.as_deref(), Some("External_Id__c"));
}

#[test]
fn every_config_problem_is_listed_with_its_path() {
    let raw = json!({
      "streams": {"s": {"routes": [
        {"object": "Lead", "operation": "merge", "fields": {"Score__c": "score +"}},
        {"object": "Lead", "operation": "upsert", "fields": {"Id": "id"}},
        {"object": "Lead", "operation": "insert", "fields": {"Id": "id"}, "extra": 1}
      ]}},
      "bulk_threshold": -1
    });
    let problems = Writeback::parse(Some(&raw)).unwrap_err();
    assert_eq!(
        problems,
        vec![
            "writeback.bulk_threshold: must be a whole number of at least 0 (default 1000)",
            "writeback.streams.s.routes[0].operation: must be one of insert, update, upsert, delete",
            "writeback.streams.s.routes[0].fields.Score__c: \"score +\" is not a SQL expression: sql parser error: Expected: an expression, found: EOF",
            "writeback.streams.s.routes[0].fields: update matches records by Id: map \"Id\" to the column holding the 15- or 18-character record id",
            "writeback.streams.s.routes[1].external_id: upsert needs the external id field that matches records, e.g. \"External_Id__c\"",
            "writeback.streams.s.routes[2].extra: unknown setting; allowed: object, when, operation, external_id, fields",
            "writeback.streams.s.routes[2].fields.Id: insert creates records, so it cannot set Id; use \"update\" or \"upsert\"",
        ]
    );
}

#[test]
fn values_are_formatted_as_salesforce_expects() {
    let ts: ArrayRef = Arc::new(
        TimestampMillisecondArray::from(vec![Some(1_706_702_400_123), None]).with_timezone("UTC"),
    );
    let dt = format_column(&ts, "datetime").unwrap();
    assert_eq!(dt.value(0), "2024-01-31T12:00:00.123Z");
    assert_eq!(csv_cell(None), "#N/A");
    assert_eq!(format_column(&ts, "date").unwrap().value(0), "2024-01-31");
    let d: ArrayRef = Arc::new(Date32Array::from(vec![19753]));
    assert_eq!(format_column(&d, "date").unwrap().value(0), "2024-01-31");
    assert_eq!(
        format_column(&d, "datetime").unwrap().value(0),
        "2024-01-31T00:00:00.000Z"
    );
    let f: ArrayRef = Arc::new(Float64Array::from(vec![Some(3.0), Some(1e21), Some(0.25)]));
    let ints = format_column(&f, "int").unwrap();
    assert_eq!(ints.value(0), "3");
    let dbl = format_column(&f, "double").unwrap();
    assert_eq!(
        (dbl.value(0), dbl.value(1), dbl.value(2)),
        ("3", "1000000000000000000000", "0.25")
    );
    assert_eq!(json_value(Some("12.5"), "double"), json!(12.5));
    assert_eq!(json_value(Some("abc"), "double"), json!("abc"));
    assert_eq!(json_value(Some("true"), "boolean"), json!(true));
    assert_eq!(json_value(Some(""), "string"), json!(null));
    assert_eq!(csv_cell(Some("")), "#N/A");
}
