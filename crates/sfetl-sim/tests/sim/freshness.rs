//! What a SystemModstamp cursor cannot see (issue 13), as the simulator models it: cross-object
//! and time-based formulas computed when read (REST and Bulk) while no timestamp of the row
//! moves; SOQL filters on parent fields (one hop or several: `Account.Owner.SystemModstamp`)
//! and semi-joins in REST queries and Bulk jobs; Bulk API 2.0's refusal of parent-to-child
//! subqueries; Salesforce's semi-join rules.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::org::*;

/// Runs a Bulk query job to completion and returns its CSV rows (header row first).
async fn bulk_rows(org: &Org, soql: &str) -> Vec<Vec<String>> {
    let body = bulk_body(org, soql).await;
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(body.as_bytes());
    rdr.records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

/// Runs a Bulk query job to completion and returns its CSV results as sent.
async fn bulk_body(org: &Org, soql: &str) -> String {
    let (s, job) = bulk_create(org, soql).await;
    assert_eq!(s, 200, "{soql}: {job}");
    let id = job["id"].as_str().unwrap();
    for _ in 0..5 {
        let (_, info) = org.get_json(&format!("jobs/query/{id}")).await;
        if info["state"] == "JobComplete" {
            break;
        }
    }
    org.get(&format!("jobs/query/{id}/results"))
        .await
        .text()
        .await
        .unwrap()
}

async fn bulk_create(org: &Org, soql: &str) -> (u16, Value) {
    let r = org
        .send_json(
            Method::POST,
            "jobs/query",
            &json!({"operation": "query", "query": soql}),
        )
        .await;
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn records(org: &Org, soql: &str) -> Vec<Value> {
    let (s, v) = org.query(soql).await;
    assert_eq!(s, 200, "{soql}: {v}");
    v["records"].as_array().unwrap().clone()
}

/// Renames the first Account (by Id) to `name` through `/__sim/update`: its Id and the
/// answer (with the new `SystemModstamp`).
async fn rename_first_account(org: &Org, name: &str) -> (String, Value) {
    let account = records(org, "SELECT Id FROM Account ORDER BY Id LIMIT 1").await[0]["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let edit = org
        .control(
            "update",
            &json!({"object": "Account", "id": account, "fields": {"Name": name}}),
        )
        .await;
    (account, edit)
}

fn ids(rows: &[Value]) -> BTreeSet<String> {
    rows.iter()
        .map(|r| r["Id"].as_str().unwrap().to_string())
        .collect()
}

fn bulk_ids(rows: &[Vec<String>]) -> BTreeSet<String> {
    rows.iter().skip(1).map(|r| r[0].clone()).collect()
}

/// The first Account with at least one Contact and one Opportunity.
async fn busy_account(org: &Org) -> String {
    let contacts = records(org, "SELECT AccountId FROM Contact WHERE AccountId != null").await;
    let with_opps: BTreeSet<String> = records(
        org,
        "SELECT AccountId FROM Opportunity WHERE AccountId != null",
    )
    .await
    .iter()
    .map(|r| r["AccountId"].as_str().unwrap().to_string())
    .collect();
    contacts
        .iter()
        .map(|r| r["AccountId"].as_str().unwrap().to_string())
        .find(|a| with_opps.contains(a))
        .expect("an Account with Contacts and Opportunities")
}

#[tokio::test]
async fn cross_object_formulas_follow_the_parent_while_the_childrens_timestamps_stay() {
    let org = Org::start(20).await;
    let account = busy_account(&org).await;
    let contacts_q = format!(
        "SELECT Id, Account.Name, Account_Name__c, LastModifiedDate, SystemModstamp FROM Contact WHERE AccountId = '{account}' ORDER BY Id"
    );
    let before = records(&org, &contacts_q).await;
    assert!(!before.is_empty());
    for c in &before {
        assert_eq!(c["Account_Name__c"], c["Account"]["Name"], "{c}");
    }
    let edit = org
        .control(
            "update",
            &json!({"object": "Account", "id": account, "fields": {"Name": "Renamed Ltd", "Industry": "Energy"}}),
        )
        .await;
    let after = records(&org, &contacts_q).await;
    assert_eq!(after.len(), before.len());
    for (a, b) in after.iter().zip(&before) {
        assert_eq!(a["Account_Name__c"], "Renamed Ltd");
        assert_eq!(
            a["SystemModstamp"], b["SystemModstamp"],
            "the child did not change"
        );
        assert_eq!(a["LastModifiedDate"], b["LastModifiedDate"]);
    }
    let acc = records(
        &org,
        &format!(
            "SELECT Name, SystemModstamp, LastModifiedDate FROM Account WHERE Id = '{account}'"
        ),
    )
    .await;
    assert_eq!(acc[0]["SystemModstamp"], edit["SystemModstamp"]);
    assert_eq!(acc[0]["LastModifiedDate"], edit["SystemModstamp"]);
    // Bulk computes them when the job runs, too.
    let rows = bulk_rows(
        &org,
        &format!("SELECT Id, Account_Industry__c FROM Opportunity WHERE AccountId = '{account}'"),
    )
    .await;
    assert_eq!(rows[0], ["Id", "Account_Industry__c"]);
    assert!(rows.len() > 1);
    assert!(rows[1..].iter().all(|r| r[1] == "Energy"), "{rows:?}");
    // The describe says what they are.
    let (_, d) = org.get_json("sobjects/Opportunity/describe").await;
    let field = |n: &str| {
        d["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(field("Account_Industry__c")["calculated"], true);
    assert_eq!(
        field("Account_Industry__c")["calculatedFormula"],
        "TEXT(Account.Industry)"
    );
    assert_eq!(
        field("Days_Since_Created__c")["calculatedFormula"],
        "TODAY() - DATEVALUE(CreatedDate)"
    );
}

#[tokio::test]
async fn a_time_based_formula_follows_the_orgs_day() {
    let org = Org::start(5).await;
    let clock = org.control("clock", &json!({"today": "2030-01-01"})).await;
    assert_eq!(
        clock,
        json!({"today": "2030-01-01", "pinned": true, "offset_seconds": 0.0})
    );
    let q = "SELECT Id, CreatedDate, SystemModstamp, Days_Since_Created__c FROM Opportunity ORDER BY Id";
    let day0 = records(&org, q).await;
    let epoch_day_2030 = 21915.0; // 2030-01-01
    for r in &day0 {
        let created = r["CreatedDate"].as_str().unwrap();
        let created_day = chrono::NaiveDate::parse_from_str(&created[..10], "%Y-%m-%d")
            .unwrap()
            .signed_duration_since(chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
            .num_days() as f64;
        assert_eq!(
            r["Days_Since_Created__c"].as_f64(),
            Some(epoch_day_2030 - created_day),
            "{r}"
        );
    }
    org.control("clock", &json!({"advance_days": 3})).await;
    let day3 = records(&org, q).await;
    for (a, b) in day3.iter().zip(&day0) {
        assert_eq!(
            a["Days_Since_Created__c"].as_f64().unwrap(),
            b["Days_Since_Created__c"].as_f64().unwrap() + 3.0
        );
        assert_eq!(a["SystemModstamp"], b["SystemModstamp"]);
    }
    let bulk = bulk_rows(&org, "SELECT Id, Days_Since_Created__c FROM Opportunity").await;
    let first = day3
        .iter()
        .find(|r| r["Id"] == bulk[1][0].as_str())
        .unwrap();
    assert_eq!(
        bulk[1][1].parse::<f64>().unwrap(),
        first["Days_Since_Created__c"].as_f64().unwrap()
    );
    let reset = org.control("clock", &json!({"today": null})).await;
    assert_eq!(reset["pinned"], false);
}

/// A client machine whose clock is wrong, seen from its side: the org's clock set ten minutes
/// behind this machine's moves record timestamps and every answer's `Date` header with it.
#[tokio::test]
async fn the_orgs_clock_stamps_changes_and_dates_every_answer() {
    let org = Org::start(5).await;
    let set = org.control("clock", &json!({"offset_seconds": -600})).await;
    assert_eq!(set["offset_seconds"], -600.0);
    assert_eq!(set["pinned"], false);
    let before = chrono::Utc::now();
    let answer = org.get("sobjects/Account/describe").await;
    let date = answer.headers()["date"].to_str().unwrap().to_string();
    let date = chrono::DateTime::parse_from_rfc2822(&date).unwrap();
    let lead = (before - date.with_timezone(&chrono::Utc)).num_milliseconds();
    assert!(
        (599_000..=601_500).contains(&lead),
        "Date {date}, {lead} ms behind"
    );
    let (_, edit) = rename_first_account(&org, "Clockwork").await;
    let stamp = chrono::DateTime::parse_from_str(
        edit["SystemModstamp"].as_str().unwrap(),
        "%Y-%m-%dT%H:%M:%S%.3f%z",
    )
    .unwrap();
    let behind = (chrono::Utc::now() - stamp.with_timezone(&chrono::Utc)).num_milliseconds();
    assert!(
        (599_000..=601_500).contains(&behind),
        "stamp {stamp}, {behind} ms behind"
    );
    let reset = org.control("clock", &json!({"offset_seconds": 0})).await;
    assert_eq!(reset["offset_seconds"], 0.0);
    let (status, refused) = org
        .control_status("clock", &json!({"offset_seconds": "ten"}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        refused["error"],
        "offset_seconds must be a number of seconds, not \"ten\""
    );
}

/// Salesforce keeps datetimes to the second and compares them so: a stamp reads `.000`, a
/// literal's milliseconds are dropped (salesforce.stackexchange 234824: `SystemModstamp >= :dt`
/// with `dt` 900 ms past the stamp still matches), and a datetime written with milliseconds
/// reads back without them.
#[tokio::test]
async fn stamps_are_whole_seconds_and_datetime_literals_lose_their_milliseconds() {
    let org = Org::start(5).await;
    let (account, edit) = rename_first_account(&org, "On the second").await;
    let stamp = edit["SystemModstamp"].as_str().unwrap().to_string();
    assert!(stamp.ends_with(".000+0000"), "{stamp}");
    let later = stamp.replace(".000+0000", ".900Z");
    let count = |op: &str| {
        format!("SELECT Id FROM Account WHERE Id = '{account}' AND SystemModstamp {op} {later}")
    };
    assert_eq!(records(&org, &count(">=")).await.len(), 1, "{later}");
    assert_eq!(records(&org, &count("<")).await.len(), 0, "{later}");
    assert_eq!(records(&org, &count("=")).await.len(), 1, "{later}");
    // A query bounded by "now" sees the change only once its second has passed.
    let now = || {
        chrono::Utc::now()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            .to_string()
    };
    let before_now = |at: String| {
        format!("SELECT Id FROM Account WHERE Id = '{account}' AND SystemModstamp < {at}")
    };
    let waited = org.next_second().await;
    assert!((0..=1000).contains(&waited), "{waited}");
    assert_eq!(records(&org, &before_now(now())).await.len(), 1);
    assert_eq!(org.next_second().await, 0, "nothing changed since");

    let added = org
        .control(
            "schema/add_field",
            &json!({"object": "Account", "field": "Seen_At__c", "type": "datetime"}),
        )
        .await;
    assert_eq!(added["field"], "Seen_At__c", "{added}");
    let r = org
        .send_json(
            Method::PATCH,
            &format!("sobjects/Account/{account}"),
            &json!({"Seen_At__c": "2024-03-04T05:06:07.890Z"}),
        )
        .await;
    assert_eq!(r.status().as_u16(), 204);
    let row = records(
        &org,
        &format!("SELECT Seen_At__c FROM Account WHERE Id = '{account}'"),
    )
    .await;
    assert_eq!(row[0]["Seen_At__c"], "2024-03-04T05:06:07.000+0000");
}

#[tokio::test]
async fn parent_filters_and_semi_joins_select_the_children_of_changed_parents() {
    let org = Org::start(20).await;
    let account = busy_account(&org).await;
    let edit = org
        .control(
            "update",
            &json!({"object": "Account", "id": account, "fields": {"Name": "Moved On"}}),
        )
        .await;
    let stamp = edit["SystemModstamp"].as_str().unwrap();
    let want = ids(&records(
        &org,
        &format!("SELECT Id FROM Contact WHERE AccountId = '{account}'"),
    )
    .await);
    let by_path = format!(
        "SELECT Id FROM Contact WHERE Account.SystemModstamp >= {stamp} AND Account.SystemModstamp < 2100-01-01T00:00:00Z"
    );
    let semi = format!(
        "SELECT Id FROM Contact WHERE AccountId IN (SELECT Id FROM Account WHERE SystemModstamp >= {stamp})"
    );
    let anti = format!(
        "SELECT Id FROM Contact WHERE AccountId NOT IN (SELECT Id FROM Account WHERE SystemModstamp >= {stamp})"
    );
    assert_eq!(ids(&records(&org, &by_path).await), want);
    assert_eq!(ids(&records(&org, &semi).await), want);
    let all = ids(&records(&org, "SELECT Id FROM Contact").await);
    let rest: BTreeSet<String> = all.difference(&want).cloned().collect();
    assert_eq!(ids(&records(&org, &anti).await), rest);
    // Bulk API 2.0 accepts child-to-parent paths in WHERE and semi-joins.
    assert_eq!(bulk_ids(&bulk_rows(&org, &by_path).await), want);
    assert_eq!(bulk_ids(&bulk_rows(&org, &semi).await), want);
}

/// The stored record `/__sim/record/{object}/{id}` holds.
async fn stored(org: &Org, object: &str, id: &str) -> Value {
    let r = org
        .http
        .get(org.url(&format!("/__sim/record/{object}/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{object} {id}");
    r.json().await.unwrap()
}

/// The nested `Account` of a Contact as Salesforce writes it: one object per hop, fields in
/// SELECT order, a null reference as `null`.
async fn nested_account(org: &Org, account: &str, owner: Option<&str>) -> String {
    let url = |o: &str, id: &str| format!("/services/data/{V}/sobjects/{o}/{id}");
    let name = stored(org, "Account", account).await["Name"].to_string();
    let owner = match owner {
        None => "null".to_string(),
        Some(u) => format!(
            r#"{{"attributes":{{"type":"User","url":"{}"}},"Name":{}}}"#,
            url("User", u),
            stored(org, "User", u).await["Name"]
        ),
    };
    format!(
        r#""Account":{{"attributes":{{"type":"Account","url":"{}"}},"Name":{name},"Owner":{owner}}}"#,
        url("Account", account)
    )
}

#[tokio::test]
async fn two_level_parent_paths_nest_each_hop_in_rest_and_flatten_in_bulk() {
    let org = Org::start(20).await;
    let soql = "SELECT Id, Account.Name, Account.Owner.Name FROM Contact WHERE AccountId != null ORDER BY Id LIMIT 5";
    let ids_q = "SELECT Id, AccountId, Account.OwnerId FROM Contact WHERE AccountId != null ORDER BY Id LIMIT 5";
    let refs = records(&org, ids_q).await;
    let (status, body) = org.query_text(soql).await;
    assert_eq!(status, 200, "{soql}");
    let rest: Value = serde_json::from_str(&body).unwrap();
    let rest = rest["records"].as_array().unwrap();
    assert_eq!(rest.len(), 5);
    let mut want_csv = vec![vec![
        "Id".to_string(),
        "Account.Name".to_string(),
        "Account.Owner.Name".to_string(),
    ]];
    for (r, ids) in rest.iter().zip(&refs) {
        assert_eq!(r["Id"], ids["Id"]);
        let account = ids["AccountId"].as_str().unwrap();
        let owner = ids["Account"]["OwnerId"].as_str();
        let nested = nested_account(&org, account, owner).await;
        assert!(body.contains(&nested), "{nested} not in {body}");
        if let Some(u) = owner {
            assert_eq!(
                r["Account"]["Owner"]["Name"],
                stored(&org, "User", u).await["Name"]
            );
        }
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        want_csv.push(vec![
            text(&r["Id"]),
            text(&r["Account"]["Name"]),
            text(&r["Account"]["Owner"]["Name"]),
        ]);
    }
    let csv = bulk_body(&org, soql).await;
    assert!(
        csv.starts_with("\"Id\",\"Account.Name\",\"Account.Owner.Name\"\n"),
        "{csv}"
    );
    assert_eq!(bulk_rows(&org, soql).await, want_csv);
    // A null reference at the first hop renders the whole relationship as null, and every
    // Bulk cell under it as "".
    let orphan_q =
        "SELECT Id, Account.Name, Account.Owner.Name FROM Contact WHERE AccountId = null LIMIT 1";
    let orphan = records(&org, orphan_q).await;
    assert_eq!(
        orphan.len(),
        1,
        "the default org has Contacts without an Account"
    );
    assert_eq!(orphan[0]["Account"], Value::Null);
    let id = orphan[0]["Id"].as_str().unwrap();
    assert_eq!(bulk_rows(&org, orphan_q).await[1], [id, "", ""]);
    // A null reference at the second hop: the first level is there, the second `null`.
    let top_q = "SELECT Id, Account.Parent.Name, Account.Name FROM Contact WHERE AccountId != null AND Account.ParentId = null LIMIT 1";
    let top = records(&org, top_q).await;
    let account = &top[0]["Account"];
    assert_eq!(account["Parent"], Value::Null, "{account}");
    assert!(account["Name"].is_string(), "{account}");
    let row = &bulk_rows(&org, top_q).await[1];
    assert_eq!(row[1], "");
    assert_eq!(row[2], account["Name"].as_str().unwrap());
}

/// Each Contact's SystemModstamp by Id, and each Account's.
async fn stamps(org: &Org) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for o in ["Contact", "Account"] {
        for r in records(org, &format!("SELECT Id, SystemModstamp FROM {o}")).await {
            out.push((
                r["Id"].as_str().unwrap().to_string(),
                r["SystemModstamp"].clone(),
            ));
        }
    }
    out
}

#[tokio::test]
async fn a_grandparent_filter_selects_the_grandchildren_of_a_changed_user() {
    let org = Org::start(20).await;
    let first = records(
        &org,
        "SELECT Account.OwnerId FROM Contact WHERE Account.OwnerId != null ORDER BY Id LIMIT 1",
    )
    .await;
    let user = first[0]["Account"]["OwnerId"].as_str().unwrap().to_string();
    let before = stamps(&org).await;
    let edit = org
        .control(
            "update",
            &json!({"object": "User", "id": user, "fields": {"LastName": "Grandparent"}}),
        )
        .await;
    let stamp = edit["SystemModstamp"].as_str().unwrap();
    assert_eq!(stamps(&org).await, before, "no Contact or Account moved");
    let user_now = stored(&org, "User", &user).await;
    assert_eq!(user_now["SystemModstamp"], edit["SystemModstamp"]);
    let want = ids(&records(
        &org,
        &format!("SELECT Id FROM Contact WHERE Account.OwnerId = '{user}'"),
    )
    .await);
    assert!(!want.is_empty());
    let by_path = format!("SELECT Id FROM Contact WHERE Account.Owner.SystemModstamp >= {stamp}");
    assert_eq!(ids(&records(&org, &by_path).await), want);
    assert_eq!(bulk_ids(&bulk_rows(&org, &by_path).await), want);
    // `= null` is true when any hop is null.
    let no_owner = ids(&records(&org, "SELECT Id FROM Contact WHERE Account.OwnerId = null").await);
    let null_q = "SELECT Id FROM Contact WHERE Account.Owner.SystemModstamp = null";
    assert_eq!(ids(&records(&org, null_q).await), no_owner);
    // ORDER BY the grandparent's stamp puts the changed user's grandchildren first, and
    // the renamed user shows through both hops.
    let sorted = records(
        &org,
        &format!(
            "SELECT Id, Account.Owner.Name FROM Contact ORDER BY Account.Owner.SystemModstamp DESC NULLS LAST, Id LIMIT {}",
            want.len()
        ),
    )
    .await;
    assert_eq!(ids(&sorted), want);
    for r in &sorted {
        assert_eq!(r["Account"]["Owner"]["Name"], user_now["Name"]);
    }
    assert!(user_now["Name"].as_str().unwrap().ends_with("Grandparent"));
}

#[tokio::test]
async fn bulk_refuses_parent_to_child_subqueries_and_semi_joins_follow_soqls_rules() {
    let org = Org::start(5).await;
    let child = "SELECT Id, (SELECT Id FROM Contacts) FROM Account";
    let (s, v) = bulk_create(&org, child).await;
    assert_eq!(s, 400);
    assert_eq!(
        error_code(&v, "FUNCTIONALITY_NOT_ENABLED"),
        "Aggregate Relationships not supported in Bulk V2 Query with CSV content type"
    );
    let (s, v) = org.query(child).await;
    assert_eq!(s, 400);
    assert!(error_code(&v, "MALFORMED_QUERY").ends_with("outside the simulator's SOQL subset"));
    for (soql, column, text) in [
        (
            "SELECT Id FROM Contact WHERE LastName = 'x' OR AccountId IN (SELECT Id FROM Account)",
            62,
            "Semi join sub-selects are only allowed at the top level WHERE expressions and not in nested WHERE expressions.",
        ),
        (
            "SELECT Id FROM Contact WHERE AccountId IN (SELECT Name FROM Account)",
            44,
            "semi join sub selects can only query id fields, cannot use: 'Name'",
        ),
        (
            "SELECT Id FROM Contact WHERE AccountId IN (SELECT Id FROM Account WHERE Id IN (SELECT AccountId FROM Opportunity))",
            80,
            "Nesting of semi join sub-selects is not supported",
        ),
    ] {
        let want = format!(
            "\n{soql}\n{}^\nERROR at Row:1:Column:{column}\n{text}",
            " ".repeat(column - 1)
        );
        let (s, v) = org.query(soql).await;
        assert_eq!(s, 400, "{soql}");
        assert_eq!(error_code(&v, "MALFORMED_QUERY"), want);
        let (s, v) = bulk_create(&org, soql).await;
        assert_eq!(s, 400, "{soql}");
        assert_eq!(error_code(&v, "MALFORMED_QUERY"), want);
    }
    // A semi-join inside a parenthesised AND is still on the top level.
    let (s, _) = org
        .query("SELECT Id FROM Contact WHERE (LastName != null AND AccountId IN (SELECT Id FROM Account))")
        .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn converting_a_lead_updates_it_and_creates_its_account_and_contact() {
    let org = Org::start(20).await;
    let lead_q = "SELECT Id, LastName, Email, SystemModstamp FROM Lead WHERE IsConverted = false ORDER BY Id LIMIT 1";
    let lead = records(&org, lead_q).await[0].clone();
    let id = lead["Id"].as_str().unwrap();
    let out = org.control("convert_lead", &json!({"id": id})).await;
    assert_eq!(out["lead"], lead["Id"]);
    let after = records(
        &org,
        &format!("SELECT IsConverted, ConvertedContactId, ConvertedAccountId, Status, SystemModstamp, LastModifiedDate FROM Lead WHERE Id = '{id}'"),
    )
    .await;
    let l = &after[0];
    assert_eq!(l["IsConverted"], true);
    assert_eq!(l["ConvertedContactId"], out["contact"]);
    assert_eq!(l["ConvertedAccountId"], out["account"]);
    assert_eq!(l["Status"], "Closed - Converted");
    assert!(
        l["SystemModstamp"].as_str() > lead["SystemModstamp"].as_str(),
        "{l}"
    );
    assert_eq!(l["SystemModstamp"], l["LastModifiedDate"]);
    let contact = records(
        &org,
        &format!(
            "SELECT LastName, Email, AccountId FROM Contact WHERE Id = '{}'",
            out["contact"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(contact[0]["LastName"], lead["LastName"]);
    assert_eq!(contact[0]["Email"], lead["Email"]);
    assert_eq!(contact[0]["AccountId"], out["account"]);
    // A converted Lead cannot be converted again.
    let again = org
        .http
        .post(org.url("/__sim/convert_lead"))
        .json(&json!({"id": id}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 400);
}

#[tokio::test]
async fn merging_accounts_deletes_the_losers_and_moves_their_children_to_the_master() {
    let org = Org::start(20).await;
    let owners = records(
        &org,
        "SELECT AccountId FROM Contact WHERE AccountId != null ORDER BY AccountId",
    )
    .await;
    let mut accounts: Vec<String> = owners
        .iter()
        .map(|r| r["AccountId"].as_str().unwrap().to_string())
        .collect();
    accounts.dedup();
    let (master, loser) = (accounts[0].clone(), accounts[1].clone());
    let contacts_q = |a: &str| {
        format!(
            "SELECT Id, AccountId, SystemModstamp, LastModifiedDate FROM Contact WHERE AccountId = '{a}'"
        )
    };
    let moved = records(&org, &contacts_q(&loser)).await;
    let kept = records(&org, &contacts_q(&master)).await;
    let before = records(
        &org,
        &format!("SELECT SystemModstamp FROM Account WHERE Id = '{master}'"),
    )
    .await[0]["SystemModstamp"]
        .clone();
    let out = org
        .control(
            "merge",
            &json!({"object": "Account", "master": master, "losers": [loser], "fields": {"Industry": "Banking"}}),
        )
        .await;
    assert_eq!(out["master"], master.as_str());
    assert_eq!(out["deleted"], json!([loser]));
    assert_eq!(out["reparented"]["Contact"], json!(moved.len()));
    // The loser is in the recycle bin, pointing at the master.
    let (status, gone) = org
        .query_all(&format!(
            "SELECT Id, IsDeleted, MasterRecordId FROM Account WHERE Id = '{loser}'"
        ))
        .await;
    assert_eq!(status, 200, "{gone}");
    let gone = gone["records"].as_array().unwrap();
    assert_eq!(gone[0]["IsDeleted"], true);
    assert_eq!(gone[0]["MasterRecordId"], master.as_str());
    assert!(
        records(
            &org,
            &format!("SELECT Id FROM Account WHERE Id = '{loser}'")
        )
        .await
        .is_empty()
    );
    // Its Contacts now belong to the master, each changed by the merge; the master's own are
    // untouched; the master took the chosen value and was updated.
    let now = records(&org, &contacts_q(&master)).await;
    assert_eq!(ids(&now), &ids(&moved) | &ids(&kept));
    for c in &now {
        let was = moved
            .iter()
            .chain(&kept)
            .find(|m| m["Id"] == c["Id"])
            .unwrap();
        let is_moved = moved.iter().any(|m| m["Id"] == c["Id"]);
        assert_eq!(
            c["SystemModstamp"].as_str() > was["SystemModstamp"].as_str(),
            is_moved,
            "{c} {was}"
        );
        if is_moved {
            assert_eq!(c["SystemModstamp"], c["LastModifiedDate"]);
        }
    }
    let m = records(
        &org,
        &format!("SELECT Industry, SystemModstamp FROM Account WHERE Id = '{master}'"),
    )
    .await;
    assert_eq!(m[0]["Industry"], "Banking");
    assert!(m[0]["SystemModstamp"].as_str() > before.as_str());
    // The deletion is logged for the `deleted` endpoint.
    let (status, deleted) = org
        .get_json(&format!("sobjects/Account/deleted/?{}", recent_range()))
        .await;
    assert_eq!(status, 200, "{deleted}");

    assert!(
        deleted["deletedRecords"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["id"] == loser.as_str()),
        "{deleted}"
    );

    // What merge() refuses.
    let cases = [
        (
            json!({"object": "Opportunity", "master": master, "losers": [loser]}),
            "merge combines Lead, Contact or Account records, not 'Opportunity'".to_string(),
        ),
        (
            json!({"object": "Account", "master": master, "losers": [accounts[2], accounts[3], accounts[4]]}),
            "a merge takes one or two losers beside the master (up to three records), not 3"
                .to_string(),
        ),
        (
            json!({"object": "Account", "master": master, "losers": [loser]}),
            format!("no live Account with id '{loser}' to merge"),
        ),
        (
            json!({"object": "Account", "master": master, "losers": [master]}),
            format!("'{master}' is the master or named twice"),
        ),
    ];
    for (body, want) in cases {
        let (status, v) = org.control_status("merge", &body).await;
        assert_eq!((status, &v["error"]), (400, &json!(want)));
    }
}
