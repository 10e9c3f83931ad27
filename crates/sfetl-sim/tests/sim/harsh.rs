//! The simulator as harsh as Salesforce by default (issue 16): concurrency limits, the
//! `deleted` endpoint's date rules, Bulk query realities, REST cursor expiry, objects that fail
//! for structural reasons, Bulk CSV wire details, metadata consistency and the OAuth approval
//! limit. Every status and body is asserted exactly.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Duration, SecondsFormat, TimeZone, Timelike, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use sfetl_sim::SimOptions;

use crate::org::{Org, V, error_code, recent_range, values_of};

/// `POST /__sim/limits` with `body`; the limits after the change.
async fn limits(org: &Org, body: Value) -> Value {
    org.control("limits", &body).await
}

async fn create_bulk(org: &Org, soql: &str) -> (u16, Value) {
    let r = org
        .send_json(
            Method::POST,
            "jobs/query",
            &json!({"operation": "query", "query": soql}),
        )
        .await;
    (r.status().as_u16(), r.json().await.expect("json"))
}

/// Polls a query job until it is terminal (each poll advances it one state).
async fn finish(org: &Org, id: &str) -> Value {
    for _ in 0..5 {
        let (s, info) = org.get_json(&format!("jobs/query/{id}")).await;
        assert_eq!(s, 200);
        if matches!(
            info["state"].as_str(),
            Some("JobComplete" | "Failed" | "Aborted")
        ) {
            return info;
        }
    }
    panic!("job {id} never finished");
}

/// Creates a Bulk query job and runs it to a terminal state.
async fn run_bulk(org: &Org, soql: &str) -> Value {
    let (s, job) = create_bulk(org, soql).await;
    assert_eq!(s, 200, "{soql}: {job}");
    finish(org, job["id"].as_str().expect("id")).await
}

/// Asserts a Salesforce error array: status, code and exact message.
async fn assert_error(r: reqwest::Response, status: u16, code: &str, message: &str) {
    assert_eq!(r.status().as_u16(), status);
    let v: Value = r.json().await.expect("json");
    assert_eq!(error_code(&v, code), message, "{v}");
}

async fn query_with(org: &Org, soql: &str, batch: Option<usize>) -> reqwest::Response {
    let mut req = org
        .http
        .get(org.data("query"))
        .query(&[("q", soql)])
        .bearer_auth(&org.token);
    if let Some(b) = batch {
        req = req.header("Sforce-Query-Options", format!("batchSize={b}"));
    }
    req.send().await.expect("query")
}

fn sf_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
        .replace('Z', "+0000")
}

// ---- 1. concurrency limits ----

#[tokio::test]
async fn concurrency_limits_answer_403_like_salesforce() {
    let org = Org::start(5).await;
    let l = org.get_json_url("/__sim/limits").await;
    for (k, v) in [
        ("concurrent_requests", json!(25)),
        ("long_txn", json!(10)),
        ("bulk_query_jobs_per_day", json!(10_000)),
        ("cursors_per_user", json!(10)),
        ("cursor_idle_seconds", json!(900)),
        ("deleted_id_limit", json!(600_000)),
        ("delete_log_days", json!(15)),
        ("replication_max_days", json!(30)),
        ("bulk_chunk_rows", json!(100_000)),
        ("query_timeout_rows", Value::Null),
    ] {
        assert_eq!(l[k], v, "{k}");
    }
    // Other integrations hold every concurrent slot: 403, the same code as the daily quota.
    limits(&org, json!({"busy_requests": 25})).await;
    let r = org.get("sobjects").await;
    assert!(
        r.headers()["sforce-limit-info"]
            .to_str()
            .unwrap()
            .starts_with("api-usage=")
    );
    assert_error(
        r,
        403,
        "REQUEST_LIMIT_EXCEEDED",
        "ConcurrentRequests (Concurrent API Requests) Limit exceeded.",
    )
    .await;
    limits(&org, json!({"busy_requests": 0})).await;
    assert_eq!(org.get("sobjects").await.status(), 200);

    // A real concurrent request holds its slot while it is slow.
    limits(&org, json!({"concurrent_requests": 1})).await;
    org.control("latency", &json!({"kind": "describe", "ms": 3000}))
        .await;
    let slow = {
        let (http, url, token) = (org.http.clone(), org.data("sobjects"), org.token.clone());
        tokio::spawn(async move {
            http.get(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("slow")
                .status()
                .as_u16()
        })
    };
    let mut seen = false;
    for _ in 0..100_000 {
        if org.get_json_url("/__sim/limits").await["in_flight_requests"] == 1 {
            seen = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(seen, "the slow request is in flight");
    assert_error(
        org.get("limits").await,
        403,
        "REQUEST_LIMIT_EXCEEDED",
        "ConcurrentRequests (Concurrent API Requests) Limit exceeded.",
    )
    .await;
    assert_eq!(slow.await.unwrap(), 200);
    org.control("latency", &json!({"kind": "describe", "ms": 0}))
        .await;
    limits(&org, json!({"concurrent_requests": 25})).await;

    // Long transactions: running Bulk jobs count; REST queries and job creation are refused.
    limits(&org, json!({"long_txn": 1})).await;
    let (s, a) = create_bulk(&org, "SELECT Id FROM Account").await;
    assert_eq!(s, 200);
    let long = "ConcurrentPerOrgLongTxn Limit exceeded.";
    let r = org
        .send_json(
            Method::POST,
            "jobs/query",
            &json!({"operation": "query", "query": "SELECT Id FROM Contact"}),
        )
        .await;
    assert_error(r, 403, "REQUEST_LIMIT_EXCEEDED", long).await;
    assert_error(
        query_with(&org, "SELECT Id FROM Account", None).await,
        403,
        "REQUEST_LIMIT_EXCEEDED",
        long,
    )
    .await;
    assert_eq!(org.get("sobjects/Account/describe").await.status(), 200);
    assert_eq!(
        org.get_json_url("/__sim/limits").await["running_long_txn"],
        1
    );
    finish(&org, a["id"].as_str().unwrap()).await;
    assert_eq!(
        query_with(&org, "SELECT Id FROM Account", None)
            .await
            .status(),
        200
    );
    limits(&org, json!({"long_txn": 10, "long_txn_spike": 2})).await;
    for _ in 0..2 {
        let (s, v) = create_bulk(&org, "SELECT Id FROM Account").await;
        assert_eq!(
            (s, error_code(&v, "REQUEST_LIMIT_EXCEEDED")),
            (403, long.into())
        );
    }
    assert_eq!(create_bulk(&org, "SELECT Id FROM Account").await.0, 200);
    limits(&org, json!({"requests_spike": 1})).await;
    assert_eq!(org.get("limits").await.status(), 403);
    assert_eq!(org.get("limits").await.status(), 200);

    // The daily quota keeps its own message.
    org.control("quota", &json!({"max": 10, "used": 10})).await;
    assert_error(
        org.get("limits").await,
        403,
        "REQUEST_LIMIT_EXCEEDED",
        "TotalRequests Limit exceeded.",
    )
    .await;

    // Bad limits are refused whole, naming the key.
    let r = org
        .http
        .post(org.url("/__sim/limits"))
        .json(&json!({"long_txn": 3, "long_txns": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .starts_with("unknown limit 'long_txns'; known: concurrent_requests, busy_requests"),
        "{e}"
    );
    assert_eq!(org.get_json_url("/__sim/limits").await["long_txn"], 10);
}

// ---- 2. the deleted endpoint ----

#[tokio::test]
async fn deleted_endpoint_applies_salesforces_date_rules() {
    let org = Org::start(20).await;
    let del = org
        .control("delete", &json!({"object": "Account", "count": 3}))
        .await;
    let ids: BTreeSet<String> = del["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let now = Utc::now();
    let deleted = |start: DateTime<Utc>, end: DateTime<Utc>| {
        let org = &org;
        async move {
            org.http
                .get(org.data("sobjects/Account/deleted/"))
                .query(&[("start", sf_time(start)), ("end", sf_time(end))])
                .bearer_auth(&org.token)
                .send()
                .await
                .unwrap()
        }
    };
    let today = Utc
        .with_ymd_and_hms(now.year(), now.month(), now.day(), 0, 0, 0)
        .unwrap();
    let earliest = today - Duration::days(15);
    let minute = |t: DateTime<Utc>| t.with_second(0).unwrap().with_nanosecond(0).unwrap();

    let r = deleted(now - Duration::hours(1), now + Duration::minutes(2)).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let got: BTreeSet<String> = values_of(&v["deletedRecords"], "id");
    assert_eq!(got, ids);
    assert_eq!(v["earliestDateAvailable"], sf_time(earliest));
    // Covered up to the current minute at most, never past `end`.
    let latest = v["latestDateCovered"].as_str().unwrap();
    assert!(
        latest == sf_time(minute(now)) || latest == sf_time(minute(now) + Duration::minutes(1)),
        "{latest}"
    );

    // Seconds are truncated: 12:00:30 .. 12:01:10 is a whole minute, 12:00:10 .. 12:00:50 none.
    let base = today - Duration::days(1) + Duration::hours(12);
    let ok = deleted(base + Duration::seconds(30), base + Duration::seconds(70)).await;
    assert_eq!(ok.status(), 200);
    let v: Value = ok.json().await.unwrap();
    assert_eq!(v["latestDateCovered"], sf_time(base + Duration::minutes(1)));
    let invalid = "INVALID_REPLICATION_DATE";
    assert_error(
        deleted(base + Duration::seconds(10), base + Duration::seconds(50)).await,
        400,
        invalid,
        "startDate must chronologically precede endDate by more than one minute",
    )
    .await;
    assert_error(
        deleted(base, base - Duration::minutes(5)).await,
        400,
        invalid,
        "end date cannot be before start date",
    )
    .await;
    assert_error(
        deleted(now - Duration::days(31), now).await,
        400,
        invalid,
        "startDate and endDate are more than 30 days apart",
    )
    .await;
    // Past the delete log's retention (15 whole days).
    assert_error(
        deleted(earliest - Duration::minutes(1), now).await,
        400,
        invalid,
        &format!(
            "startDate is before earliestDateAvailable {}: the delete log no longer covers it",
            sf_time(earliest)
        ),
    )
    .await;
    // Before the org enabled replication.
    limits(&org, json!({"replication_enabled_date": sf_time(today)})).await;
    assert_error(
        deleted(today - Duration::hours(1), now).await,
        400,
        invalid,
        "startDate before org replication enabled date",
    )
    .await;
    limits(
        &org,
        json!({"replication_enabled_date": "2015-01-01T00:00:00Z"}),
    )
    .await;

    // Too many ids.
    limits(&org, json!({"deleted_id_limit": 2})).await;
    assert_error(
        deleted(now - Duration::hours(1), now + Duration::minutes(2)).await,
        400,
        "EXCEEDED_ID_LIMIT",
        "The number of ids exceeds the limit of 2; choose start and end dates that are closer together",
    )
    .await;
    limits(&org, json!({"deleted_id_limit": 600_000})).await;

    // Emptying the recycle bin keeps the hard deletes in the delete log...
    org.control("purge", &json!({})).await;
    let v: Value = deleted(now - Duration::hours(1), now + Duration::minutes(2))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["deletedRecords"].as_array().unwrap().len(), 3);
    // ...until the log itself is purged: then they leave no trace, and earlier starts fail.
    let purged = org
        .control("delete_log/purge", &json!({"object": "Account"}))
        .await;
    assert_eq!(purged, json!({"purged": 3}));
    let r = deleted(now - Duration::hours(1), now + Duration::minutes(2)).await;
    assert_eq!(r.status(), 400);
    let msg = error_code(&r.json().await.unwrap(), invalid);
    assert!(
        msg.starts_with("startDate is before earliestDateAvailable "),
        "{msg}"
    );
    let after = Utc::now() + Duration::minutes(1);
    let v: Value = deleted(after, after + Duration::minutes(5))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["deletedRecords"], json!([]));
    // The purge moved earliestDateAvailable to the (next whole) minute it ran in.
    let e = v["earliestDateAvailable"].as_str().unwrap();
    assert!(
        e > sf_time(minute(now)).as_str() && e <= sf_time(minute(after)).as_str(),
        "{e}"
    );

    // `updated` follows the same range rules, and never reaches past 30 days.
    let updated = |start: DateTime<Utc>, end: DateTime<Utc>| {
        let org = &org;
        async move {
            org.http
                .get(org.data("sobjects/Account/updated/"))
                .query(&[("start", sf_time(start)), ("end", sf_time(end))])
                .bearer_auth(&org.token)
                .send()
                .await
                .unwrap()
        }
    };
    assert_error(
        updated(now - Duration::days(40), now - Duration::days(35)).await,
        400,
        invalid,
        "startDate cannot be more than 30 days ago",
    )
    .await;
    assert_error(
        updated(base, base + Duration::seconds(30)).await,
        400,
        invalid,
        "startDate must chronologically precede endDate by more than one minute",
    )
    .await;
    limits(
        &org,
        json!({"replication_enabled_date": sf_time(now - Duration::days(2))}),
    )
    .await;
    assert_error(
        updated(now - Duration::days(3), now).await,
        400,
        invalid,
        "startDate before org replication enabled date",
    )
    .await;
}

// ---- 3. Bulk query realities and REST timeouts ----

#[tokio::test]
async fn bulk_jobs_time_out_unchunked_and_stop_at_the_daily_cap() {
    let org = Org::start(40).await; // 120 Contacts
    limits(&org, json!({"bulk_unchunked_timeout_rows": 100})).await;
    let info = run_bulk(&org, "SELECT Id FROM Contact ORDER BY SystemModstamp").await;
    assert_eq!(info["state"], "Failed");
    assert_eq!(
        info["errorMessage"],
        "InvalidBatch : Failed to process query: QUERY_TIMEOUT: Your query request was running for too long."
    );
    // LIMIT turns chunking off too; a small window (or no ORDER BY) is fine.
    assert_eq!(
        run_bulk(&org, "SELECT Id FROM Contact LIMIT 110").await["state"],
        "Failed"
    );
    assert_eq!(
        run_bulk(&org, "SELECT Id FROM Contact").await["state"],
        "JobComplete"
    );
    assert_eq!(
        run_bulk(&org, "SELECT Id FROM Account ORDER BY Name").await["state"],
        "JobComplete"
    );
    // Any query over `query_timeout_rows` times out, REST and Bulk alike.
    limits(&org, json!({"query_timeout_rows": 50})).await;
    assert_eq!(
        run_bulk(&org, "SELECT Id FROM Contact").await["state"],
        "Failed"
    );
    assert_error(
        query_with(&org, "SELECT Id FROM Contact", None).await,
        400,
        "QUERY_TIMEOUT",
        "Your query request was running for too long.",
    )
    .await;
    assert_eq!(
        query_with(&org, "SELECT Id FROM Account", None)
            .await
            .status(),
        200
    );
    limits(
        &org,
        json!({"query_timeout_rows": null, "rest_sorted_timeout_rows": 100}),
    )
    .await;
    assert_error(
        query_with(&org, "SELECT Id FROM Contact ORDER BY Name", None).await,
        400,
        "QUERY_TIMEOUT",
        "Your query request was running for too long.",
    )
    .await;
    assert_eq!(
        query_with(&org, "SELECT Id FROM Contact", None)
            .await
            .status(),
        200
    );
    // Too many fields.
    limits(&org, json!({"query_max_fields": 2})).await;
    let complicated =
        "Query is either selecting too many fields or the filter conditions are too complicated.";
    assert_error(
        query_with(&org, "SELECT Id, Name, Email FROM Contact", None).await,
        400,
        "QUERY_TOO_COMPLICATED",
        complicated,
    )
    .await;
    let (s, v) = create_bulk(&org, "SELECT Id, Name, Email FROM Contact").await;
    assert_eq!(
        (s, error_code(&v, "QUERY_TOO_COMPLICATED")),
        (400, complicated.into())
    );
    limits(&org, json!({"query_max_fields": 2000})).await;

    // The rolling 24-hour cap on Bulk query jobs, counted at creation.
    limits(
        &org,
        json!({"bulk_query_jobs_per_day": 10, "bulk_query_jobs_used": 9}),
    )
    .await;
    assert_eq!(create_bulk(&org, "SELECT Id FROM Account").await.0, 200);
    let (_, l) = org.get_json("limits").await;
    assert_eq!(
        l["DailyBulkV2QueryJobs"],
        json!({"Max": 10, "Remaining": 0})
    );
    let (s, v) = create_bulk(&org, "SELECT Id FROM Account").await;
    assert_eq!(s, 400);
    assert_eq!(
        v,
        json!([{"message": "Max bulk v2 query jobs (10) per 24 hrs has been reached (11)", "errorCode": "LIMIT_EXCEEDED"}])
    );
}

#[tokio::test]
async fn bulk_results_come_in_chunks_out_of_order_and_pages_stop_at_them() {
    let org = Org::start(40).await; // 120 Contacts
    limits(&org, json!({"bulk_chunk_rows": 50})).await;
    let (_, sorted) = org.query("SELECT Id FROM Contact ORDER BY Id").await;
    let all: Vec<String> = values_of(&sorted["records"], "Id");
    assert_eq!(all.len(), 120);
    let info = run_bulk(&org, "SELECT Id FROM Contact").await;
    let id = info["id"].as_str().unwrap();
    let mut pages = Vec::new();
    let mut locator = String::new();
    loop {
        let q = if locator.is_empty() {
            "maxRecords=80".to_string()
        } else {
            format!("maxRecords=80&locator={locator}")
        };
        let r = org.get(&format!("jobs/query/{id}/results?{q}")).await;
        assert_eq!(r.status(), 200);
        let n: usize = r.headers()["sforce-numberofrecords"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        locator = r.headers()["sforce-locator"].to_str().unwrap().to_string();
        let body = r.text().await.unwrap();
        let ids: Vec<String> = body
            .lines()
            .skip(1)
            .map(|l| l.trim_matches('"').to_string())
            .collect();
        assert_eq!(ids.len(), n);
        pages.push(ids);
        if locator == "null" {
            break;
        }
    }
    // Chunks [0,50) [50,100) [100,120) finish as 2nd, 1st, 3rd; a page never crosses one, so
    // every page is shorter than maxRecords=80.
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![50, 50, 20]
    );
    assert_eq!(pages[0], all[50..100]);
    assert_eq!(pages[1], all[..50]);
    assert_eq!(pages[2], all[100..]);
    // With ORDER BY there is one unchunked query: sorted, one page.
    let info = run_bulk(&org, "SELECT Id FROM Contact ORDER BY Id").await;
    let r = org
        .get(&format!(
            "jobs/query/{}/results?maxRecords=200",
            info["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(r.headers()["sforce-numberofrecords"], "120");
    let body = r.text().await.unwrap();
    let ids: Vec<String> = body
        .lines()
        .skip(1)
        .map(|l| l.trim_matches('"').to_string())
        .collect();
    assert_eq!(ids, all);
}

// ---- 4. REST query cursors ----

#[tokio::test]
async fn rest_cursors_expire_and_a_user_keeps_ten() {
    let started = Org::start(100).await; // 300 Contacts: two pages of 200
    let org = &started;
    let open = || async {
        let r = query_with(org, "SELECT Id FROM Contact", Some(200)).await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["records"].as_array().unwrap().len(), 200);
        v["nextRecordsUrl"].as_str().unwrap().to_string()
    };
    let more = |url: String| async move {
        org.http
            .get(org.url(&url))
            .bearer_auth(&org.token)
            .send()
            .await
            .unwrap()
    };
    let invalid = "invalid query locator";
    let mut urls = Vec::new();
    for _ in 0..11 {
        urls.push(open().await);
    }
    // The eleventh cursor released the oldest.
    assert_error(
        more(urls[0].clone()).await,
        400,
        "INVALID_QUERY_LOCATOR",
        invalid,
    )
    .await;
    let last = more(urls[1].clone()).await;
    assert_eq!(last.status(), 200);
    let v: Value = last.json().await.unwrap();
    assert_eq!(
        (v["done"].clone(), v["records"].as_array().unwrap().len()),
        (json!(true), 100)
    );
    // The last page closed that cursor.
    assert_error(
        more(urls[1].clone()).await,
        400,
        "INVALID_QUERY_LOCATOR",
        invalid,
    )
    .await;
    // Idle cursors expire (15 minutes on Salesforce; now, through the control call).
    assert_eq!(
        org.control("cursors/expire", &json!({})).await,
        json!({"expired": 9})
    );
    assert_error(
        more(urls[5].clone()).await,
        400,
        "INVALID_QUERY_LOCATOR",
        invalid,
    )
    .await;
    limits(org, json!({"cursor_idle_seconds": 0})).await;
    let url = open().await;
    assert_error(more(url).await, 400, "INVALID_QUERY_LOCATOR", invalid).await;
    limits(
        org,
        json!({"cursor_idle_seconds": 900, "cursors_per_user": 1}),
    )
    .await;
    let a = open().await;
    let b = open().await;
    assert_eq!(more(a).await.status(), 400);
    assert_eq!(more(b).await.status(), 200);
}

// ---- 5 and 7. objects that fail for structural reasons; metadata consistency ----

#[tokio::test]
async fn every_listed_object_has_a_real_describe() {
    let org = Org::start(5).await;
    let (_, g) = org.get_json("sobjects").await;
    let names: Vec<String> = g["sobjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    for n in [
        "AccountFeed",
        "AccountHistory",
        "AccountShare",
        "UserRecordAccess",
        "ContentDocumentLink",
        "TaskStatus",
        "CaseStatus",
        "RecentlyViewed",
        "EntityDefinition",
        "Score_Reading__b",
    ] {
        assert!(names.contains(&n.to_string()), "{n} listed");
    }
    for n in &names {
        let (s, d) = org.get_json(&format!("sobjects/{n}/describe")).await;
        assert_eq!(s, 200, "{n}");
        assert_eq!(d["name"], n.as_str());
        let fields: Vec<&str> = d["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert_eq!(fields[0], "Id", "{n}");
    }
    let fields = |d: &Value| -> Vec<String> {
        d["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_string())
            .collect()
    };
    // History objects: CreatedDate only; Share objects: LastModifiedDate only.
    let (_, h) = org.get_json("sobjects/AccountHistory/describe").await;
    assert_eq!(
        fields(&h),
        [
            "Id",
            "IsDeleted",
            "AccountId",
            "CreatedById",
            "CreatedDate",
            "Field",
            "DataType",
            "OldValue",
            "NewValue"
        ]
    );
    let (_, s) = org.get_json("sobjects/AccountShare/describe").await;
    let sf = fields(&s);
    assert!(sf.contains(&"LastModifiedDate".into()) && !sf.contains(&"SystemModstamp".into()));
    assert!(!sf.contains(&"CreatedDate".into()));
    // They hold rows and read as usual (History through Bulk too).
    let (st, v) = org
        .query("SELECT Id, AccountId, Field, NewValue, CreatedDate FROM AccountHistory")
        .await;
    assert_eq!((st, v["totalSize"].clone()), (200, json!(10)));
    assert!(v["records"][0]["Id"].as_str().unwrap().starts_with("017"));
    assert_eq!(
        run_bulk(&org, "SELECT Id, CreatedDate FROM AccountHistory").await["state"],
        "JobComplete"
    );
    let (_, v) = org.query("SELECT Id FROM AccountShare").await;
    assert_eq!(v["totalSize"], 5);
    // anyType values cannot be filtered.
    assert_eq!(
        error_code(
            &org.query("SELECT Id FROM AccountHistory WHERE NewValue = 'x'")
                .await
                .1,
            "INVALID_FIELD"
        ),
        "\nSELECT Id FROM AccountHistory WHERE NewValue = 'x'\n                                    ^\nERROR at Row:1:Column:37\nfield 'NewValue' can not be filtered in a query call"
    );
}

#[tokio::test]
async fn objects_that_need_a_filter_bulk_refuses_or_have_no_query_more() {
    let org = Org::start_with(SimOptions {
        scale: 20,
        seed: 7,
        extra_objects: 250,
        ..SimOptions::default()
    })
    .await;
    // Bulk API 2.0 refuses some objects outright.
    for o in [
        "TaskStatus",
        "CaseStatus",
        "RecentlyViewed",
        "AccountFeed",
        "UserRecordAccess",
    ] {
        let (s, v) = create_bulk(&org, &format!("SELECT Id FROM {o}")).await;
        assert_eq!(
            (s, v),
            (
                400,
                json!([{"message": format!("Entity '{o}' is not supported by the Bulk API."), "errorCode": "INVALIDENTITY"}])
            )
        );
    }
    // ...and REST reads them.
    let (_, v) = org
        .query("SELECT MasterLabel, IsClosed FROM TaskStatus ORDER BY SortOrder")
        .await;
    let labels: Vec<&str> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["MasterLabel"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        [
            "Not Started",
            "In Progress",
            "Completed",
            "Waiting on someone else",
            "Deferred"
        ]
    );
    let (_, v) = org.query("SELECT Id, Name FROM RecentlyViewed").await;
    assert_eq!(v["totalSize"], 20);
    let (_, acc) = org
        .query("SELECT Id, Name FROM Account ORDER BY Id LIMIT 1")
        .await;
    assert_eq!(v["records"][0]["Id"], acc["records"][0]["Id"]);
    assert_eq!(v["records"][0]["Name"], acc["records"][0]["Name"]);

    // ContentDocumentLink needs an id filter, on REST and in Bulk.
    let cdl = "Implementation restriction: ContentDocumentLink requires a filter by a single Id on ContentDocumentId or LinkedEntityId using the equals operator or multiple Id's using the IN operator.";
    assert_error(
        query_with(
            &org,
            "SELECT Id, LinkedEntityId FROM ContentDocumentLink",
            None,
        )
        .await,
        400,
        "MALFORMED_QUERY",
        cdl,
    )
    .await;
    assert_error(
        query_with(
            &org,
            "SELECT Id FROM ContentDocumentLink WHERE ShareType = 'V'",
            None,
        )
        .await,
        400,
        "MALFORMED_QUERY",
        cdl,
    )
    .await;
    let info = run_bulk(&org, "SELECT Id FROM ContentDocumentLink").await;
    assert_eq!(info["state"], "Failed");
    assert_eq!(
        info["errorMessage"],
        format!("InvalidBatch : Failed to process query: MALFORMED_QUERY: {cdl}")
    );
    let (_, all) = org.query("SELECT Id FROM Account").await;
    let ids: Vec<String> = all["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("'{}'", r["Id"].as_str().unwrap()))
        .collect();
    let r = query_with(
        &org,
        &format!(
            "SELECT Id, LinkedEntityId FROM ContentDocumentLink WHERE LinkedEntityId IN ({}) AND ShareType != null",
            ids.join(",")
        ),
        None,
    )
    .await;
    assert_eq!(r.status(), 200);

    // UserRecordAccess: a few fields, and a filter on UserId and RecordId.
    assert_error(
        query_with(&org, "SELECT Id, UserId FROM UserRecordAccess", None).await,
        400,
        "INVALID_FIELD",
        "Can select only RecordId, a Has*Access field, and MaxAccessLevel",
    )
    .await;
    assert_error(
        query_with(
            &org,
            "SELECT RecordId, HasReadAccess FROM UserRecordAccess",
            None,
        )
        .await,
        400,
        "MALFORMED_QUERY",
        "Implementation restriction: UserRecordAccess requires a filter by UserId and RecordId",
    )
    .await;
    let (s, v) = org
        .query(&format!(
            "SELECT RecordId, HasReadAccess FROM UserRecordAccess WHERE UserId = '005000000000000AAA' AND RecordId = {}",
            ids[0]
        ))
        .await;
    assert_eq!((s, v["totalSize"].clone()), (200, json!(0)));

    // EntityDefinition has no queryMore: results must fit one batch.
    let (_, g) = org.get_json("sobjects").await;
    let listed = g["sobjects"].as_array().unwrap().len();
    let (s, v) = org
        .query("SELECT QualifiedApiName FROM EntityDefinition")
        .await;
    assert_eq!((s, v["totalSize"].clone()), (200, json!(listed)));
    assert_error(
        query_with(&org, "SELECT QualifiedApiName FROM EntityDefinition", Some(200)).await,
        400,
        "EXCEEDED_ID_LIMIT",
        "EntityDefinition does not support queryMore(), use LIMIT to restrict the results to a single batch",
    )
    .await;
    let r = query_with(
        &org,
        "SELECT QualifiedApiName FROM EntityDefinition LIMIT 200",
        Some(200),
    )
    .await;
    assert_eq!(r.status(), 200);
    // Bulk runs it in one batch (of 2,000 rows at most).
    let info = run_bulk(&org, "SELECT QualifiedApiName FROM EntityDefinition").await;
    assert_eq!(info["numberRecordsProcessed"], json!(listed));

    // A big object: its audit dates cannot be filtered or sorted, so no incremental read.
    let e = error_code(
        &org.query("SELECT Id FROM Score_Reading__b WHERE SystemModstamp > 2024-01-01T00:00:00Z")
            .await
            .1,
        "INVALID_FIELD",
    );
    assert!(
        e.ends_with("field 'SystemModstamp' can not be filtered in a query call"),
        "{e}"
    );
    let e = error_code(
        &org.query("SELECT Id FROM Score_Reading__b ORDER BY CreatedDate")
            .await
            .1,
        "INVALID_FIELD",
    );
    assert!(
        e.ends_with("field 'CreatedDate' can not be sorted in a query call"),
        "{e}"
    );
    let (s, v) = org
        .query("SELECT Id, Reading_Time__c FROM Score_Reading__b WHERE Reading_Time__c > 2000-01-01T00:00:00Z")
        .await;
    assert_eq!((s, v["totalSize"].clone()), (200, json!(10)));
}

#[tokio::test]
async fn json_fields_are_refused_by_bulk() {
    let dir = tempfile::tempdir().unwrap();
    let path = std::path::Path::new(&crate::manifest_dir()).join("fixtures/describe_Score__c.json");
    let mut d: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut f = d["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "Report_Url__c")
        .unwrap()
        .clone();
    f["name"] = json!("Config__c");
    f["type"] = json!("json");
    f["label"] = json!("Config");
    d["fields"].as_array_mut().unwrap().push(f);
    std::fs::write(dir.path().join("describe_Score__c.json"), d.to_string()).unwrap();
    let org = Org::start_with(SimOptions {
        scale: 4,
        seed: 7,
        data_dir: Some(dir.path().to_path_buf()),
        ..SimOptions::default()
    })
    .await;
    let (s, v) = create_bulk(&org, "SELECT Id, Config__c FROM Score__c").await;
    assert_eq!(
        (s, v),
        (
            400,
            json!([{"message": "Selecting json field Config__c is not supported in Bulk Query", "errorCode": "FUNCTIONALITY_NOT_ENABLED"}])
        )
    );
    let (s, v) = org.query("SELECT Id, Config__c FROM Score__c").await;
    assert_eq!((s, v["totalSize"].clone()), (200, json!(2)));
}

// ---- 6. Bulk CSV wire details ----

#[tokio::test]
async fn bulk_results_wire_details() {
    let org = Org::start(40).await;
    // NUL bytes can be stored (data imported from anywhere).
    let (_, c) = org
        .query("SELECT Id FROM Contact ORDER BY Id LIMIT 1")
        .await;
    let first = c["records"][0]["Id"].as_str().unwrap().to_string();
    org.control(
        "set",
        &json!({"object": "Contact", "id": first, "field": "Description", "value": "a\u{0}b"}),
    )
    .await;
    let info = run_bulk(
        &org,
        "SELECT Id, Description, Account.Name FROM Contact ORDER BY Id",
    )
    .await;
    let id = info["id"].as_str().unwrap();
    let r = org.get(&format!("jobs/query/{id}/results")).await;
    assert_eq!(r.headers()["content-type"], "text/csv; charset=UTF-8");
    assert_eq!(r.headers()["sforce-numberofrecords"], "120");
    assert_eq!(r.headers()["sforce-locator"], "null");
    let body = r.bytes().await.unwrap();
    let text = String::from_utf8(body.to_vec()).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("\"Id\",\"Description\",\"Account.Name\"")
    );
    assert!(text.contains(&format!("\"{first}\",\"a\u{0}b\",")));
    // Every cell quoted, nulls as "".
    let mut rdr = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let nulls = rdr
        .records()
        .filter(|r| r.as_ref().unwrap()[1].is_empty())
        .count();
    assert!(nulls > 0, "some Descriptions are null");
    assert!(
        !text.contains(",,") && !text.contains(",\n"),
        "no unquoted empty cell"
    );
    // REST escapes the NUL.
    let (_, v) = org
        .query(&format!(
            "SELECT Description FROM Contact WHERE Id = '{first}'"
        ))
        .await;
    assert_eq!(v["records"][0]["Description"], "a\u{0}b");

    // Wide numbers in Java's E-notation.
    let info = run_bulk(&org, "SELECT Id, AnnualRevenue FROM Account ORDER BY Id").await;
    let csv = org
        .get(&format!(
            "jobs/query/{}/results",
            info["id"].as_str().unwrap()
        ))
        .await
        .text()
        .await
        .unwrap();
    let (_, rest) = org
        .query("SELECT Id, AnnualRevenue FROM Account ORDER BY Id")
        .await;
    let mut e_notation = 0;
    for (rec, json) in csv::Reader::from_reader(csv.as_bytes())
        .records()
        .zip(rest["records"].as_array().unwrap())
    {
        let rec = rec.unwrap();
        assert_eq!(&rec[0], json["Id"].as_str().unwrap());
        if rec[1].contains('E') {
            e_notation += 1;
            assert!(
                json["AnnualRevenue"].as_f64().unwrap() >= 1e7,
                "{}",
                &rec[1]
            );
        }
        match json["AnnualRevenue"].as_f64() {
            Some(n) => assert_eq!(rec[1].parse::<f64>().unwrap(), n),
            None => assert_eq!(&rec[1], ""),
        }
    }
    assert!(e_notation > 0, "some revenues are written as 1.2345E7");

    // Up to API version 49.0 the columns come in alphabetical order.
    let r = org
        .http
        .post(format!("{}/services/data/v49.0/jobs/query", org.sim.base_url))
        .bearer_auth(&org.token)
        .json(&json!({"operation": "query", "query": "SELECT Name, Id, Account.Name, CreatedDate FROM Contact"}))
        .send()
        .await
        .unwrap();
    let job: Value = r.json().await.unwrap();
    let id = job["id"].as_str().unwrap();
    for _ in 0..2 {
        org.http
            .get(format!(
                "{}/services/data/v49.0/jobs/query/{id}",
                org.sim.base_url
            ))
            .bearer_auth(&org.token)
            .send()
            .await
            .unwrap();
    }
    let text = org
        .http
        .get(format!(
            "{}/services/data/v49.0/jobs/query/{id}/results",
            org.sim.base_url
        ))
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        text.lines().next(),
        Some("\"Account.Name\",\"CreatedDate\",\"Id\",\"Name\"")
    );
    // The results of a job belong to its API version: another one answers 409.
    let r = org
        .http
        .get(format!(
            "{}/services/data/{V}/jobs/query/{id}/results",
            org.sim.base_url
        ))
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap();
    assert_error(
        r,
        409,
        "INVALIDJOB",
        &format!("Job {id} was created with API version 49.0: fetch its results with that version"),
    )
    .await;

    // An empty result is an empty body.
    let info = run_bulk(&org, "SELECT Id FROM Account WHERE Name = 'nobody'").await;
    let r = org
        .get(&format!(
            "jobs/query/{}/results",
            info["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(r.headers()["sforce-numberofrecords"], "0");
    assert_eq!(r.headers()["sforce-locator"], "null");
    assert_eq!(r.bytes().await.unwrap().len(), 0);
}

// ---- 8. OAuth approvals ----

#[tokio::test]
async fn the_sixth_approval_revokes_the_oldest_refresh_token() {
    let org = Org::start(1).await;
    let c = org.sim.credentials.clone();
    let refresh = |token: String| {
        let (http, url, c) = (
            org.http.clone(),
            format!("{}/services/oauth2/token", org.sim.login_url),
            c.clone(),
        );
        async move {
            let r = http
                .post(url)
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", token.as_str()),
                    ("client_id", c.client_id.as_str()),
                    ("client_secret", c.client_secret.as_str()),
                ])
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let approve = || async {
        org.control("oauth/issue_refresh_token", &json!({})).await["refresh_token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let mut tokens = Vec::new();
    for _ in 0..4 {
        tokens.push(approve().await);
    }
    // Five approvals (the printed token and four more): all alive.
    assert_eq!(refresh(c.refresh_token.clone()).await.0, 200);
    tokens.push(approve().await);
    assert_eq!(
        refresh(c.refresh_token.clone()).await,
        (
            400,
            json!({"error": "invalid_grant", "error_description": "expired access/refresh token"})
        )
    );
    for t in &tokens {
        assert_eq!(refresh(t.clone()).await.0, 200);
    }
    // Rotation replaces a token within its approval: no approval is used up.
    org.control("oauth/rotation", &json!({"enabled": true}))
        .await;
    let (_, v) = refresh(tokens[4].clone()).await;
    let rotated = v["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(refresh(tokens[0].clone()).await.0, 200);
    assert_eq!(refresh(rotated).await.0, 200);
    // The limit is configurable.
    assert_eq!(
        org.control("oauth/approval_limit", &json!({"max": 1}))
            .await,
        json!({"approval_limit": 1})
    );
    let only = approve().await;
    assert_eq!(refresh(tokens[1].clone()).await.0, 400);
    assert_eq!(refresh(only).await.0, 200);
}

/// The Ids `object`'s `deleted` endpoint lists for the last hour, in its order.
async fn recently_deleted(org: &Org, object: &str) -> Vec<String> {
    let (s, d) = org
        .get_json(&format!("sobjects/{object}/deleted/?{}", recent_range()))
        .await;
    assert_eq!(s, 200, "{d}");
    values_of(&d["deletedRecords"], "id")
}

/// The live Ids of `object` whose `field` is `parent`.
async fn children(org: &Org, object: &str, field: &str, parent: &str) -> BTreeSet<String> {
    let (s, v) = org
        .query(&format!(
            "SELECT Id FROM {object} WHERE {field} = '{parent}'"
        ))
        .await;
    assert_eq!(s, 200, "{v}");
    values_of(&v["records"], "Id")
}

#[tokio::test]
async fn a_deleted_account_takes_its_contacts_opportunities_and_tasks_to_the_recycle_bin() {
    let org = Org::start(30).await;
    // An Account with Contacts and Opportunities.
    let (s, v) = org
        .query("SELECT AccountId FROM Opportunity WHERE AccountId != null")
        .await;
    assert_eq!(s, 200);
    let mut parent = None;
    for r in v["records"].as_array().unwrap() {
        let a = r["AccountId"].as_str().unwrap();
        if !children(&org, "Contact", "AccountId", a).await.is_empty() {
            parent = Some(a.to_string());
            break;
        }
    }
    let account = parent.expect("an Account with Contacts and Opportunities");
    let contacts = children(&org, "Contact", "AccountId", &account).await;
    let opportunities = children(&org, "Opportunity", "AccountId", &account).await;
    let tasks = children(&org, "Task", "WhatId", &account).await;
    // Tasks whose WhoId is one of the Contacts go with the Contact in turn.
    let mut under_contacts = BTreeSet::new();
    for c in &contacts {
        under_contacts.extend(children(&org, "Task", "WhoId", c).await);
    }
    let del = org
        .control("delete", &json!({"object": "Account", "ids": [account]}))
        .await;
    assert_eq!(del["ids"], json!([account]));
    let cascaded: BTreeSet<String> = del["cascaded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let expected: BTreeSet<String> = contacts
        .iter()
        .chain(&opportunities)
        .chain(&tasks)
        .chain(&under_contacts)
        .cloned()
        .collect();
    assert_eq!(
        del["cascaded"].as_array().unwrap().len(),
        cascaded.len(),
        "each child deleted once"
    );
    assert!(
        cascaded.is_superset(&expected),
        "{cascaded:?} lacks some of {expected:?}"
    );
    assert!(
        children(&org, "Contact", "AccountId", &account)
            .await
            .is_empty()
    );
    assert!(
        children(&org, "Opportunity", "AccountId", &account)
            .await
            .is_empty()
    );
    // Each child is in the recycle bin and in its own object's delete log.
    let logged: BTreeSet<String> = recently_deleted(&org, "Contact")
        .await
        .into_iter()
        .collect();
    assert_eq!(logged, contacts);
    // Nothing else went: Contacts, Opportunities, Tasks and Attachments only.
    assert!(
        cascaded
            .iter()
            .all(|id| ["003", "006", "00T", "00P"].contains(&&id[..3])),
        "{cascaded:?}"
    );

    // sObject Collections deletes cascade too: another Account with Contacts, and one of
    // those Contacts named in the same request (deleted once, not again by the cascade).
    let (_, v) = org
        .query("SELECT AccountId FROM Contact WHERE AccountId != null")
        .await;
    let other = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["AccountId"].as_str().unwrap().to_string())
        .find(|a| *a != account)
        .expect("another Account with Contacts");
    let theirs = children(&org, "Contact", "AccountId", &other).await;
    let named = theirs.iter().next().unwrap().clone();
    let r = org
        .send_json(
            Method::DELETE,
            &format!("composite/sobjects?ids={other},{named}"),
            &json!(null),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v[0]["success"], true, "{v}");
    assert_eq!(v[1]["success"], true, "{v}");
    assert!(
        children(&org, "Contact", "AccountId", &other)
            .await
            .is_empty()
    );
    let logged = recently_deleted(&org, "Contact").await;
    let once: BTreeSet<String> = logged.iter().cloned().collect();
    assert_eq!(logged.len(), once.len(), "each Contact logged once");
    assert!(once.is_superset(&theirs));
}

/// The row of record `id` of `object` as queryAll answers it (`fields` selected).
async fn row_of(org: &Org, object: &str, fields: &str, id: &str) -> Value {
    let (s, v) = org
        .query_all(&format!("SELECT {fields} FROM {object} WHERE Id = '{id}'"))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["totalSize"], 1, "{v}");
    v["records"][0].clone()
}

/// One `UndeleteResult` that failed with `code` and `message`.
fn undelete_failure(id: &str, code: &str, message: &str) -> Value {
    json!({"id": id, "success": false,
           "errors": [{"statusCode": code, "message": message, "fields": []}]})
}

#[tokio::test]
async fn an_undeleted_account_brings_back_the_children_its_deletion_took_and_no_others() {
    let org = Org::start(30).await;
    // An Account with at least two Contacts and an Opportunity.
    let (_, v) = org
        .query("SELECT AccountId FROM Opportunity WHERE AccountId != null ORDER BY AccountId")
        .await;
    let mut parent = None;
    for r in v["records"].as_array().unwrap() {
        let a = r["AccountId"].as_str().unwrap();
        if children(&org, "Contact", "AccountId", a).await.len() >= 2 {
            parent = Some(a.to_string());
            break;
        }
    }
    let account = parent.expect("an Account with two Contacts and an Opportunity");
    let contacts = children(&org, "Contact", "AccountId", &account).await;
    let opportunities = children(&org, "Opportunity", "AccountId", &account).await;
    const STAMPS: &str = "Id, IsDeleted, SystemModstamp, LastModifiedDate";
    let before = row_of(&org, "Account", STAMPS, &account).await;
    // One Contact deleted on its own first: it is in the recycle bin by itself.
    let alone = contacts.iter().next().unwrap().clone();
    let alone_took = org
        .control("delete", &json!({"object": "Contact", "ids": [alone]}))
        .await["cascaded"]
        .clone();
    let del = org
        .control("delete", &json!({"object": "Account", "ids": [account]}))
        .await;
    let cascaded: BTreeSet<String> = values_of_strings(&del["cascaded"]);
    let took: BTreeSet<String> = contacts.iter().filter(|c| **c != alone).cloned().collect();
    assert!(cascaded.is_superset(&took) && !cascaded.contains(&alone));
    assert!(cascaded.is_superset(&opportunities));
    let deleted_at = row_of(&org, "Account", STAMPS, &account).await["SystemModstamp"].clone();

    // A Contact the cascade took cannot be undeleted by itself: it is not in the recycle bin.
    let child = took.iter().next().unwrap().clone();
    let out = org
        .control("undelete", &json!({"object": "Contact", "ids": [child]}))
        .await;
    assert_eq!(
        out,
        json!({"results": [undelete_failure(&child, "UNDELETE_FAILED", "Entity is not in the recycle bin")],
               "ids": [], "cascaded": []})
    );
    assert_eq!(
        row_of(&org, "Contact", "IsDeleted", &child).await["IsDeleted"],
        true
    );

    // Undeleting the Account brings back exactly what its deletion took.
    let out = org
        .control("undelete", &json!({"object": "Account", "ids": [account]}))
        .await;
    assert_eq!(
        out["results"],
        json!([{"id": account, "success": true, "errors": []}])
    );
    assert_eq!(out["ids"], json!([account]));
    assert_eq!(
        out["cascaded"].as_array().unwrap().len(),
        cascaded.len(),
        "each child restored once: {out}"
    );
    assert_eq!(values_of_strings(&out["cascaded"]), cascaded);
    // Live again: IsDeleted false, SystemModstamp moved to the undelete (the deletion's own
    // second at the earliest: stamps are whole seconds), LastModifiedDate as before the
    // deletion (modelled: only the platform's stamp moves).
    let after = row_of(&org, "Account", STAMPS, &account).await;
    assert_eq!(after["IsDeleted"], false);
    assert!(
        after["SystemModstamp"].as_str() >= deleted_at.as_str(),
        "{after}"
    );
    assert_eq!(after["LastModifiedDate"], before["LastModifiedDate"]);
    // Its children came back in the same instant; the Contact deleted on its own did not.
    assert_eq!(children(&org, "Contact", "AccountId", &account).await, took);
    assert_eq!(
        children(&org, "Opportunity", "AccountId", &account).await,
        opportunities
    );
    for id in &took {
        let c = row_of(&org, "Contact", STAMPS, id).await;
        assert_eq!(c["IsDeleted"], false);
        assert_eq!(c["SystemModstamp"], after["SystemModstamp"], "{c}");
    }
    assert_eq!(
        row_of(&org, "Contact", "IsDeleted", &alone).await["IsDeleted"],
        true
    );
    // The delete log keeps the deletions (modelled); the `updated` endpoint lists the
    // undeleted records as changed.
    let logged: BTreeSet<String> = recently_deleted(&org, "Account")
        .await
        .into_iter()
        .collect();
    assert!(logged.contains(&account), "{logged:?}");
    let logged: BTreeSet<String> = recently_deleted(&org, "Contact")
        .await
        .into_iter()
        .collect();
    assert!(logged.is_superset(&contacts), "{logged:?}");
    let (s, updated) = org
        .get_json(&format!("sobjects/Contact/updated/?{}", recent_range()))
        .await;
    assert_eq!(s, 200, "{updated}");
    let updated: BTreeSet<String> = values_of_strings(&updated["ids"]);
    assert!(
        updated.is_superset(&took) && !updated.contains(&alone),
        "{updated:?}"
    );

    // The live Account cannot be undeleted again; the lone Contact can, by itself.
    let out = org
        .control("undelete", &json!({"object": "Account", "ids": [account]}))
        .await;
    assert_eq!(
        out["results"],
        json!([undelete_failure(
            &account,
            "UNDELETE_FAILED",
            "Entity is not in the recycle bin"
        )])
    );
    let out = org
        .control("undelete", &json!({"object": "Contact", "ids": [alone]}))
        .await;
    assert_eq!(
        out,
        json!({"results": [{"id": alone, "success": true, "errors": []}], "ids": [alone],
               "cascaded": alone_took})
    );
    assert_eq!(
        children(&org, "Contact", "AccountId", &account).await,
        contacts
    );
}

/// `Id, <field>, SystemModstamp, LastModifiedDate` of every record of `ids` (queryAll).
async fn stamped(org: &Org, object: &str, field: &str, ids: &BTreeSet<String>) -> Vec<Value> {
    let mut rows = Vec::new();
    for id in ids {
        let fields = format!("Id, {field}, SystemModstamp, LastModifiedDate");
        rows.push(row_of(org, object, &fields, id).await);
    }
    rows
}

/// `rows` with `field` set to `value` (the stamps as they were).
fn with_field(rows: &[Value], field: &str, value: Value) -> Vec<Value> {
    rows.iter()
        .map(|r| {
            let mut r = r.clone();
            r[field] = value.clone();
            r
        })
        .collect()
}

/// The first `n` Ids a query answers.
async fn ids_of(org: &Org, soql: &str, n: usize) -> Vec<String> {
    let (s, v) = org.query(soql).await;
    assert_eq!(s, 200, "{v}");
    let ids: Vec<String> = values_of(&v["records"], "Id");
    assert!(ids.len() >= n, "{soql}: {ids:?}");
    ids[..n].to_vec()
}

#[tokio::test]
async fn a_deletion_clears_the_lookups_that_do_not_cascade_without_moving_stamps_and_an_undelete_restores_them()
 {
    let org = Org::start(30).await;
    let accounts = ids_of(&org, "SELECT Id FROM Account ORDER BY Id", 3).await;
    let (parent, child, other) = (&accounts[0], &accounts[1], &accounts[2]);
    let not_theirs = format!("AccountId != '{parent}' AND AccountId != '{other}'");
    let soql = format!("SELECT Id FROM Contact WHERE {not_theirs} ORDER BY Id");
    let contacts = ids_of(&org, &soql, 3).await;
    let (manager, report, next) = (&contacts[0], &contacts[1], &contacts[2]);
    let score = &ids_of(&org, "SELECT Id FROM Score__c ORDER BY Id", 1).await[0];
    let update = |object: &str, id: &str, field: &str, to: &str| json!({"object": object, "id": id, "fields": {field: to}});
    org.control("update", &update("Account", child, "ParentId", parent))
        .await;
    org.control("update", &update("Contact", report, "ReportsToId", manager))
        .await;
    org.control("update", &update("Score__c", score, "Contact__c", manager))
        .await;
    // Every record pointing at them, the generated ones included, with its stamps.
    let kids = children(&org, "Account", "ParentId", parent).await;
    let reports = children(&org, "Contact", "ReportsToId", manager).await;
    let scores = children(&org, "Score__c", "Contact__c", manager).await;
    assert!(kids.contains(child) && reports.contains(report) && scores.contains(score));
    let kids_before = stamped(&org, "Account", "ParentId", &kids).await;
    let reports_before = stamped(&org, "Contact", "ReportsToId", &reports).await;
    let scores_before = stamped(&org, "Score__c", "Contact__c", &scores).await;

    // Deleting the parent Account and the manager clears every lookup to them (Account.ParentId,
    // Contact.ReportsToId, the custom Score__c.Contact__c): null, nothing else changed, no
    // SystemModstamp or LastModifiedDate moved, no child deleted.
    org.control("delete", &json!({"object": "Account", "ids": [parent]}))
        .await;
    let del = org
        .control("delete", &json!({"object": "Contact", "ids": [manager]}))
        .await;
    assert!(!values_of_strings(&del["cascaded"]).contains(report));
    assert_eq!(
        stamped(&org, "Account", "ParentId", &kids).await,
        with_field(&kids_before, "ParentId", Value::Null)
    );
    assert_eq!(
        stamped(&org, "Contact", "ReportsToId", &reports).await,
        with_field(&reports_before, "ReportsToId", Value::Null)
    );
    assert_eq!(
        stamped(&org, "Score__c", "Contact__c", &scores).await,
        with_field(&scores_before, "Contact__c", Value::Null)
    );
    assert!(
        children(&org, "Account", "ParentId", parent)
            .await
            .is_empty()
    );
    let (_, v) = org
        .query(&format!("SELECT Id FROM Account WHERE Id IN ('{child}')"))
        .await;
    assert_eq!(v["totalSize"], 1, "the child is live: {v}");

    // Undeleting the Account puts every cleared ParentId back, stamps still unmoved.
    org.control("undelete", &json!({"object": "Account", "ids": [parent]}))
        .await;
    assert_eq!(
        stamped(&org, "Account", "ParentId", &kids).await,
        kids_before
    );
    // A report given another manager meanwhile keeps it (modelled); the rest come back.
    org.control("update", &update("Contact", report, "ReportsToId", next))
        .await;
    let moved = row_of(
        &org,
        "Contact",
        "Id, ReportsToId, SystemModstamp, LastModifiedDate",
        report,
    )
    .await;
    org.control("undelete", &json!({"object": "Contact", "ids": [manager]}))
        .await;
    let expected: Vec<Value> = reports_before
        .iter()
        .map(|r| {
            if r["Id"] == json!(report) {
                moved.clone()
            } else {
                r.clone()
            }
        })
        .collect();
    assert_eq!(
        stamped(&org, "Contact", "ReportsToId", &reports).await,
        expected
    );
    assert_eq!(
        stamped(&org, "Score__c", "Contact__c", &scores).await,
        scores_before
    );

    // REST DELETE clears too; a record deleted a second time is cleared again.
    org.control("update", &update("Account", child, "ParentId", other))
        .await;
    let before = row_of(&org, "Account", "Id, ParentId, SystemModstamp", child).await;
    let r = org
        .send_json(
            Method::DELETE,
            &format!("sobjects/Account/{other}"),
            &json!(null),
        )
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        row_of(&org, "Account", "Id, ParentId, SystemModstamp", child).await,
        json!({"attributes": before["attributes"], "Id": child, "ParentId": null,
               "SystemModstamp": before["SystemModstamp"]})
    );
    // sObject Collections clear too (rows deleted one by one, lookups cleared at the end), and
    // the undelete restores.
    org.control("update", &update("Account", child, "ParentId", parent))
        .await;
    let r = org
        .send_json(
            Method::DELETE,
            &format!("composite/sobjects?ids={parent}"),
            &json!(null),
        )
        .await;
    assert_eq!(r.status(), 200);
    let parent_of = |v: Value| v["ParentId"].clone();
    assert_eq!(
        parent_of(row_of(&org, "Account", "ParentId", child).await),
        Value::Null
    );
    org.control("undelete", &json!({"object": "Account", "ids": [parent]}))
        .await;
    assert_eq!(
        parent_of(row_of(&org, "Account", "ParentId", child).await),
        json!(parent)
    );
}

/// The strings of a JSON array.
fn values_of_strings(list: &Value) -> BTreeSet<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("an array expected, got {list}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn undelete_refuses_purged_records_objects_that_are_not_undeletable_and_rolls_back_all_or_none()
 {
    let org = Org::start(20).await;
    let (_, v) = org
        .query("SELECT Id FROM Account ORDER BY Id LIMIT 4")
        .await;
    let a: Vec<String> = values_of(&v["records"], "Id");
    // a[0] purged from the recycle bin; a[1] and a[2] in it; a[3] live.
    org.control("delete", &json!({"object": "Account", "ids": [a[0]]}))
        .await;
    org.control("purge", &json!({})).await;
    let took = org
        .control("delete", &json!({"object": "Account", "ids": [a[1]]}))
        .await["cascaded"]
        .clone();
    org.control("delete", &json!({"object": "Account", "ids": [a[2]]}))
        .await;
    let gone = "Entity is not in the recycle bin";
    let rolled_back = "Record rolled back because not all records were valid and the request was using AllOrNone header";
    // allOrNone: one failure, nothing restored.
    let out = org
        .control(
            "undelete",
            &json!({"object": "Account", "ids": [a[1], a[0]], "allOrNone": true}),
        )
        .await;
    assert_eq!(
        out,
        json!({"results": [
            undelete_failure(&a[1], "ALL_OR_NONE_OPERATION_ROLLED_BACK", rolled_back),
            undelete_failure(&a[0], "UNDELETE_FAILED", gone),
        ], "ids": [], "cascaded": []})
    );
    assert_eq!(
        row_of(&org, "Account", "IsDeleted", &a[1]).await["IsDeleted"],
        true
    );
    // Partial success by default: the record in the bin comes back, the purged one and the
    // live one fail.
    let out = org
        .control(
            "undelete",
            &json!({"object": "Account", "ids": [a[0], a[1], a[3]]}),
        )
        .await;
    assert_eq!(
        out["results"],
        json!([
            undelete_failure(&a[0], "UNDELETE_FAILED", gone),
            {"id": a[1], "success": true, "errors": []},
            undelete_failure(&a[3], "UNDELETE_FAILED", gone),
        ])
    );
    assert_eq!(out["ids"], json!([a[1]]));
    assert_eq!(
        out["cascaded"].as_array().unwrap().len(),
        took.as_array().unwrap().len()
    );
    assert_eq!(
        values_of_strings(&out["cascaded"]),
        values_of_strings(&took)
    );
    assert_eq!(
        row_of(&org, "Account", "IsDeleted", &a[1]).await["IsDeleted"],
        false
    );
    let (_, purged) = org
        .query_all(&format!("SELECT Id FROM Account WHERE Id = '{}'", a[0]))
        .await;
    assert_eq!(purged["totalSize"], 0);
    // An object whose describe says `undeletable: false`.
    let (_, v) = org.query("SELECT Id FROM AccountShare LIMIT 1").await;
    let share = v["records"][0]["Id"].as_str().unwrap().to_string();
    org.control("delete", &json!({"object": "AccountShare", "ids": [share]}))
        .await;
    let out = org
        .control(
            "undelete",
            &json!({"object": "AccountShare", "ids": [share]}),
        )
        .await;
    assert_eq!(
        out["results"],
        json!([undelete_failure(
            &share,
            "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY",
            "Entity type is not undeletable"
        )])
    );
    // What the control route itself refuses.
    let cases = [
        (
            json!({"object": "Nope", "ids": [a[2]]}),
            "unknown object 'Nope'".to_string(),
        ),
        (
            json!({"object": "Account"}),
            "give \"ids\": [...], the records to undelete".to_string(),
        ),
        (
            json!({"object": "Contact", "ids": [a[2]]}),
            format!("no Contact with id '{}'", a[2]),
        ),
        (
            json!({"object": "Account", "ids": [a[2], a[2]]}),
            format!("'{}' is named twice", a[2]),
        ),
    ];
    for (body, want) in cases {
        let (status, v) = org.control_status("undelete", &body).await;
        assert_eq!((status, &v["error"]), (400, &json!(want)));
    }
    assert_eq!(
        row_of(&org, "Account", "IsDeleted", &a[2]).await["IsDeleted"],
        true
    );
}

#[tokio::test]
async fn an_undeleted_merge_loser_keeps_its_master_and_a_stamp_never_precedes_the_deletion() {
    let org = Org::start(20).await;
    let (_, v) = org
        .query("SELECT AccountId FROM Contact WHERE AccountId != null ORDER BY AccountId")
        .await;
    let mut owners: Vec<String> = values_of(&v["records"], "AccountId");
    owners.dedup();
    let (master, loser) = (owners[0].clone(), owners[1].clone());
    let moved = children(&org, "Contact", "AccountId", &loser).await;
    assert!(!moved.is_empty());
    org.control(
        "merge",
        &json!({"object": "Account", "master": master, "losers": [loser]}),
    )
    .await;
    let out = org
        .control("undelete", &json!({"object": "Account", "ids": [loser]}))
        .await;
    assert_eq!(
        out,
        json!({"results": [{"id": loser, "success": true, "errors": []}], "ids": [loser], "cascaded": []})
    );
    // Live again, still naming the master (modelled); the reparenting is not undone.
    let row = row_of(&org, "Account", "IsDeleted, MasterRecordId", &loser).await;
    assert_eq!(
        (&row["IsDeleted"], &row["MasterRecordId"]),
        (&json!(false), &json!(master))
    );
    assert!(
        children(&org, "Contact", "AccountId", &loser)
            .await
            .is_empty()
    );
    assert!(
        children(&org, "Contact", "AccountId", &master)
            .await
            .is_superset(&moved)
    );

    // `stamp`: an undelete in the deleting transaction takes the deletion's instant, never
    // an earlier one.
    let (_, v) = org
        .query("SELECT Id FROM Account ORDER BY Id LIMIT 1")
        .await;
    let a = v["records"][0]["Id"].as_str().unwrap().to_string();
    let at = "2030-01-01T00:00:00.000+0000";
    let del = json!({"object": "Account", "ids": [a], "stamp": at});
    org.control("delete", &del).await;
    let early = json!({"object": "Account", "ids": [a], "stamp": "2029-01-01T00:00:00Z"});
    org.control("undelete", &early).await;
    let row = row_of(&org, "Account", "IsDeleted, SystemModstamp", &a).await;
    assert_eq!(
        (&row["IsDeleted"], &row["SystemModstamp"]),
        (&json!(false), &json!(at))
    );
}

/// Every row of a job's results, as (Id, the row's cells), from unpaged results.
async fn results_by_id(org: &Org, id: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    let r = org.get(&format!("jobs/query/{id}/results")).await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    csv::Reader::from_reader(body.as_bytes())
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[0].to_string(), r.iter().map(str::to_string).collect())
        })
        .collect()
}

#[tokio::test]
async fn results_show_the_rows_as_the_job_found_them() {
    let org = Org::start(2).await; // 6 Contacts under 2 Accounts
    let soql = "SELECT Id, Description, Account.Name, IsDeleted, SystemModstamp FROM Contact";
    let job = run_bulk(&org, soql).await;
    assert_eq!(job["state"], "JobComplete");
    let job = job["id"].as_str().unwrap().to_string();
    let (_, q) = org
        .query("SELECT Id, AccountId FROM Contact ORDER BY Id")
        .await;
    let (edited, gone) = (q["records"][0].clone(), q["records"][1]["Id"].clone());
    let (edited_id, account) = (edited["Id"].as_str().unwrap(), edited["AccountId"].clone());
    let before = {
        // The rows as they stood, read by REST before anything changes.
        let (_, q) = org.query(soql).await;
        q["records"].as_array().unwrap().clone()
    };

    // After the job completed: a user edits a Contact and its Account, another Contact is
    // deleted and purged for good.
    org.control("update", &json!({"object": "Contact", "id": edited_id, "fields": {"Description": "edited after the job"}})).await;
    org.control(
        "update",
        &json!({"object": "Account", "id": account, "fields": {"Name": "Renamed after the job"}}),
    )
    .await;
    org.control("delete", &json!({"object": "Contact", "ids": [gone]}))
        .await;
    org.control("purge", &json!({})).await;

    // The results are the query's when the job ran: every row it found, each as it was.
    let rows = results_by_id(&org, &job).await;
    assert_eq!(rows.len(), 6);
    for r in &before {
        let id = r["Id"].as_str().unwrap();
        let stamp = r["SystemModstamp"].as_str().unwrap().replace("+0000", "Z");
        let want = [
            id.to_string(),
            r["Description"].as_str().unwrap_or("").to_string(),
            r["Account"]["Name"].as_str().unwrap_or("").to_string(),
            "false".to_string(),
            stamp,
        ];
        assert_eq!(rows[id], want, "{id}");
    }
    // A job created now finds the org as it is.
    let later = run_bulk(&org, soql).await;
    let now = results_by_id(&org, later["id"].as_str().unwrap()).await;
    assert_eq!(now.len(), 5);
    assert!(!now.contains_key(gone.as_str().unwrap()));
    assert_eq!(now[edited_id][1], "edited after the job");
    assert_eq!(now[edited_id][2], "Renamed after the job");
    assert_ne!(now[edited_id][4], rows[edited_id][4]);
}

#[tokio::test]
async fn an_edit_held_for_the_next_job_lands_between_its_completion_and_its_download() {
    let org = Org::start(2).await;
    let (_, q) = org
        .query("SELECT Id, Name FROM Account ORDER BY Id LIMIT 1")
        .await;
    let (id, name) = (
        q["records"][0]["Id"].clone(),
        q["records"][0]["Name"].clone(),
    );
    let held = org
        .control("update", &json!({"object": "Account", "id": id, "fields": {"Name": "Edited mid-read"}, "when": "next_bulk_query_completes"}))
        .await;
    assert_eq!(held, json!({"id": id, "deferred": true}));
    let stored = |v: Value| v["Name"].clone();
    let record = format!("/__sim/record/Account/{}", id.as_str().unwrap());
    assert_eq!(
        stored(org.get_json_url(&record).await),
        name,
        "held, not made"
    );

    let job = run_bulk(&org, "SELECT Id, Name FROM Account").await;
    // Made as the job completed, after its results were fixed.
    assert_eq!(stored(org.get_json_url(&record).await), "Edited mid-read");
    let rows = results_by_id(&org, job["id"].as_str().unwrap()).await;
    assert_eq!(rows[id.as_str().unwrap()][1], name.as_str().unwrap());

    // Refused: another moment than the one the simulator knows.
    let (status, v) = org
        .control_status(
            "update",
            &json!({"object": "Account", "id": id, "fields": {"Name": "x"}, "when": "later"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        v["error"],
        "\"when\" is \"later\": leave it out to edit now, or give \"next_bulk_query_completes\""
    );
}

#[tokio::test]
async fn two_custom_long_text_fields_cap_rest_pages_at_200_rows() {
    let org = Org::start(100).await; // 300 Contacts
    for field in ["Notes__c", "History_Notes__c"] {
        let body = json!({"object": "Contact", "field": field, "type": "textarea"});
        org.control("schema/add_field", &body).await;
    }
    let page = |r: Value| (r["records"].as_array().unwrap().len(), r["done"].clone());
    let one = "SELECT Id, Notes__c, Description FROM Contact";
    let two = "SELECT Id, Notes__c, History_Notes__c FROM Contact";
    // One custom long text field (the standard Description does not count): 2,000 rows a page.
    let r = query_with(&org, one, None).await;
    assert_eq!(page(r.json().await.unwrap()), (300, json!(true)));
    // Two: at most 200, whatever batchSize asks; queryMore keeps the cap.
    for asked in [None, Some(250), Some(2000)] {
        let first: Value = query_with(&org, two, asked).await.json().await.unwrap();
        assert_eq!(first["totalSize"], 300);
        assert_eq!(
            page(first.clone()),
            (200, json!(false)),
            "batchSize {asked:?}"
        );
        let next = first["nextRecordsUrl"].as_str().unwrap();
        let r = org
            .http
            .get(org.url(next))
            .bearer_auth(&org.token)
            .send()
            .await;
        let rest: Value = r.expect("queryMore").json().await.unwrap();
        assert_eq!(page(rest), (100, json!(true)));
    }
}

#[tokio::test]
async fn an_instance_down_for_maintenance_answers_an_html_page() {
    let org = Org::start(2).await;
    let page = json!({"kind": "query", "status": 503, "body": "maintenance_page", "count": 1});
    org.control("fail", &page).await;
    let r = query_with(&org, "SELECT Id FROM Account", None).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["content-type"], "text/html;charset=UTF-8");
    assert!(r.headers().get("retry-after").is_none());
    let body = r.text().await.unwrap();
    assert!(body.starts_with("<html>"), "{body}");
    assert!(body.contains("down for scheduled maintenance"), "{body}");
    // One page, then the API answers again.
    let (s, _) = org.query("SELECT Id FROM Account").await;
    assert_eq!(s, 200);
    let (s, v) = org
        .control_status("fail", &json!({"kind": "query", "body": "teapot"}))
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        v["error"],
        "\"body\" is \"teapot\": leave it out for Salesforce's JSON error, or give \"maintenance_page\""
    );
}

#[tokio::test]
async fn task_queries_past_the_sharing_check_fail_with_operation_too_large() {
    let org = Org::start(20).await; // 10 Tasks
    limits(&org, json!({"sharing_check_rows": 4})).await;
    let message = "exceeded 4 distinct who/what's";
    // REST: refused when the answer would hold more rows than the check takes.
    let r = query_with(&org, "SELECT Id FROM Task", None).await;
    assert_error(r, 400, "OPERATION_TOO_LARGE", message).await;
    let (s, v) = org.query("SELECT Id FROM Task LIMIT 4").await;
    assert_eq!((s, v["totalSize"].clone()), (200, json!(4)));
    // Other objects are not checked so.
    let (s, _) = org.query("SELECT Id FROM Contact").await;
    assert_eq!(s, 200);
    // Bulk: the job fails with Bulk's batch wording.
    let info = run_bulk(&org, "SELECT Id FROM Task").await;
    assert_eq!(info["state"], "Failed");
    assert_eq!(
        info["errorMessage"],
        format!("InvalidBatch : Failed to process query: OPERATION_TOO_LARGE: {message}")
    );
    // A user with View All Data: no limit.
    limits(&org, json!({"sharing_check_rows": null})).await;
    let (s, v) = org.query("SELECT Id FROM Task").await;
    assert_eq!((s, v["totalSize"].clone()), (200, json!(10)));
    assert_eq!(
        run_bulk(&org, "SELECT Id FROM Task").await["state"],
        "JobComplete"
    );
}
