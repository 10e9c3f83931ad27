//! Aggregate SOQL over REST as Salesforce answers it (AggregateResult records named by alias or
//! `exprN`, date functions in UTC, GROUP BY in one page), its refusals, Bulk API 2.0 refusing
//! aggregates, and the Bulk processing time knob.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Value, json};

use crate::org::{Org, error_code};

/// (year, month) → rows of Contact by SystemModstamp, counted from the rows themselves.
async fn counted_by_hand(org: &Org) -> BTreeMap<(i64, i64), i64> {
    let (_, all) = org.query("SELECT SystemModstamp FROM Contact").await;
    let mut by_month = BTreeMap::new();
    for r in all["records"].as_array().unwrap() {
        let t = r["SystemModstamp"].as_str().unwrap();
        let (y, m) = (t[..4].parse().unwrap(), t[5..7].parse().unwrap());
        *by_month.entry((y, m)).or_insert(0) += 1;
    }
    by_month
}

#[tokio::test]
async fn rows_counted_per_calendar_month_come_as_aggregate_results_by_alias() {
    let org = Org::start(40).await; // 120 Contacts
    let want = counted_by_hand(&org).await;
    let (s, body) = org
        .query("SELECT CALENDAR_YEAR(SystemModstamp) y, CALENDAR_MONTH(SystemModstamp) m, COUNT(Id) n FROM Contact WHERE SystemModstamp >= 2000-01-01T00:00:00Z GROUP BY CALENDAR_YEAR(SystemModstamp), CALENDAR_MONTH(SystemModstamp)")
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["done"], true);
    assert!(body.get("nextRecordsUrl").is_none());
    let records = body["records"].as_array().unwrap();
    assert_eq!(body["totalSize"], records.len());
    let got: BTreeMap<(i64, i64), i64> = records
        .iter()
        .map(|r| {
            assert_eq!(r["attributes"], json!({"type": "AggregateResult"}));
            assert_eq!(r.as_object().unwrap().len(), 4, "{r}");
            (
                (r["y"].as_i64().unwrap(), r["m"].as_i64().unwrap()),
                r["n"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn unaliased_items_are_expr_n_and_grouped_fields_keep_their_name() {
    let org = Org::start(10).await;
    let (s, body) = org
        .query("SELECT IsDeleted, CALENDAR_YEAR(CreatedDate), COUNT(Id) FROM Account GROUP BY IsDeleted, CALENDAR_YEAR(CreatedDate)")
        .await;
    assert_eq!(s, 200, "{body}");
    let r = &body["records"][0];
    let keys: Vec<&String> = r.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["attributes", "IsDeleted", "expr0", "expr1"]);
    let total: i64 = body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["expr1"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 10);
    // Without GROUP BY: one record, also over no row.
    let (_, none) = org
        .query("SELECT COUNT(Id) c FROM Account WHERE Name = 'no such name'")
        .await;
    assert_eq!(
        none,
        json!({"totalSize": 1, "done": true, "records": [{"attributes": {"type": "AggregateResult"}, "c": 0}]})
    );
    let (_, day) = org
        .query("SELECT DAY_ONLY(CreatedDate) d, COUNT(Id) c FROM Account GROUP BY DAY_ONLY(CreatedDate)")
        .await;
    let d = day["records"][0]["d"].as_str().unwrap();
    assert_eq!(d.len(), 10, "{d}");
}

#[tokio::test]
async fn grouping_by_a_two_level_path_compares_the_whole_chain() {
    let org = Org::start(20).await;
    let (s, body) = org
        .query("SELECT Account.Owner.Name o, COUNT(Id) n FROM Contact GROUP BY Account.Owner.Name")
        .await;
    assert_eq!(s, 200, "{body}");
    let mut got = BTreeMap::new();
    for r in body["records"].as_array().unwrap() {
        got.insert(
            r["o"].as_str().map(str::to_string),
            r["n"].as_i64().unwrap(),
        );
    }
    let (_, all) = org.query("SELECT Account.Owner.Name FROM Contact").await;
    let mut want = BTreeMap::new();
    for r in all["records"].as_array().unwrap() {
        let name = r["Account"]["Owner"]["Name"].as_str().map(str::to_string);
        *want.entry(name).or_insert(0) += 1;
    }
    assert_eq!(got, want);
    // Same last field, same first hop, another chain: not grouped.
    let (s, body) = org
        .query("SELECT Account.CreatedBy.Name, COUNT(Id) FROM Contact GROUP BY Account.Owner.Name")
        .await;
    assert_eq!(s, 400);
    let message = error_code(&body, "MALFORMED_QUERY");
    assert!(
        message.ends_with("Field must be grouped or aggregated: Account.CreatedBy.Name"),
        "{message}"
    );
}

#[tokio::test]
async fn aggregate_mistakes_are_refused_as_salesforce_does() {
    let org = Org::start(5).await;
    let (s, body) = org
        .query("SELECT Name, COUNT(Id) FROM Account GROUP BY Industry")
        .await;
    assert_eq!(s, 400);
    let message = error_code(&body, "MALFORMED_QUERY");
    assert!(
        message.ends_with("Field must be grouped or aggregated: Name"),
        "{message}"
    );
    let (s, body) = org.query("SELECT Name n FROM Account").await;
    assert_eq!(s, 400);
    let message = error_code(&body, "MALFORMED_QUERY");
    assert!(
        message.ends_with("Only aggregate expressions use field aliasing"),
        "{message}"
    );
    let (s, body) = org
        .query("SELECT CALENDAR_YEAR(Name) y FROM Account GROUP BY CALENDAR_YEAR(Name)")
        .await;
    assert_eq!(s, 400);
    let message = error_code(&body, "INVALID_FIELD");
    assert!(
        message.ends_with("CALENDAR_YEAR() can only be applied to a date or dateTime field: Name"),
        "{message}"
    );
    // Bulk API 2.0 supports no aggregate.
    let r = org
        .send_json(
            Method::POST,
            "jobs/query",
            &json!({"operation": "query", "query": "SELECT CALENDAR_YEAR(SystemModstamp) y, COUNT(Id) n FROM Account GROUP BY CALENDAR_YEAR(SystemModstamp)"}),
        )
        .await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!([{"errorCode": "FUNCTIONALITY_NOT_ENABLED", "message": "Aggregate queries are not supported by Bulk API 2.0 query: aggregate functions and GROUP BY"}])
    );
}

async fn state_of(org: &Org, id: &str) -> String {
    let (_, info) = org.get_json(&format!("jobs/query/{id}")).await;
    info["state"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn bulk_processing_time_holds_jobs_in_the_queue_then_in_progress() {
    let org = Org::start(20).await;
    org.control("limits", &json!({"bulk_queue_ms": 3_600_000}))
        .await;
    let r = org
        .send_json(
            Method::POST,
            "jobs/query",
            &json!({"operation": "query", "query": "SELECT Id FROM Contact"}),
        )
        .await;
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    for _ in 0..3 {
        assert_eq!(
            state_of(&org, &id).await,
            "UploadComplete",
            "queued for an hour"
        );
    }
    // Out of the queue, 60 rows at one row per second: in progress for a minute.
    org.control(
        "limits",
        &json!({"bulk_queue_ms": 0, "bulk_rows_per_second": 1}),
    )
    .await;
    for _ in 0..3 {
        assert_eq!(state_of(&org, &id).await, "InProgress");
    }
    org.control("limits", &json!({"bulk_rows_per_second": 1_000_000}))
        .await;
    assert_eq!(state_of(&org, &id).await, "JobComplete");
    let limits = org.get_json_url("/__sim/limits").await;
    assert_eq!(limits["bulk_rows_per_second"], 1_000_000);
    assert_eq!(limits["bulk_queue_ms"], 0);
}
