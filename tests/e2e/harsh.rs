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
