//! Values a SystemModstamp cursor cannot see (issue 13), end to end with exact values: a
//! renamed Account reaches every Contact's `company` in the mapped export; formula fields are
//! read again on the `formula_refresh` schedule and `sfetl query` shows the new values; on an
//! org where nothing changed, following a parent costs exactly one Bulk job (or REST query) per
//! window.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::common::*;

fn people_mapping() -> String {
    format!("{}/fixtures/mappings/people.yaml", manifest_dir())
}

fn base(extra: Value) -> Value {
    one_window_config(extra)
}

/// Runs `sfetl read`, asserts success, and writes the last states to `state_out`.
async fn read_to(config: &Path, cat: &Path, state: Option<&Path>, state_out: &Path) -> Vec<Value> {
    let msgs = messages(&read_files(config, cat, state).await);
    std::fs::write(state_out, serde_json::to_vec(&last_states(&msgs)).unwrap()).unwrap();
    msgs
}

/// The Contacts of the first Account that has some.
async fn an_account_with_contacts(org: &Org) -> (String, BTreeSet<String>) {
    let rows = org_rows(
        org,
        "SELECT Id, AccountId FROM Contact WHERE AccountId != null",
    )
    .await;
    let account = rows[0]["AccountId"].as_str().unwrap().to_string();
    let contacts = rows
        .iter()
        .filter(|r| r["AccountId"] == account.as_str())
        .map(|r| r["Id"].as_str().unwrap().to_string())
        .collect();
    (account, contacts)
}

#[tokio::test]
async fn a_renamed_account_reaches_every_contacts_company_in_one_extra_bulk_job() {
    let e = env(20, base(json!({"mapping": people_mapping()}))).await;
    let export = e.dir.path().join("export");
    let config = parquet_config(&e, "parquet.json", &export);
    let cat = catalog(e.dir.path(), "cat.json", &[("person", &[], "incremental")]);
    let s1 = e.dir.path().join("s1.json");
    read_to(&config, &cat, None, &s1).await;
    let state: Value = serde_json::from_slice(&std::fs::read(&s1).unwrap()).unwrap();
    let parents = &state[0]["stream"]["stream_state"]["parents"];
    assert_eq!(
        parents["Contact"]["Account"]["cursor"],
        state[0]["stream"]["stream_state"]["sources"]["Contact"]["cursor"],
        "a first read starts the parent's cursor where its own ends: {state}"
    );

    let (account, contacts) = an_account_with_contacts(&e.org).await;
    e.org
        .control(
            "update",
            &json!({"object": "Account", "id": account, "fields": {"Name": "Renamed Industries"}}),
        )
        .await;
    e.org.next_second().await;
    e.org.control("stats/reset", &json!({})).await;
    let jobs_before = jobs(&e.org).await;
    let msgs = read_to(&config, &cat, Some(&s1), &e.dir.path().join("s2.json")).await;
    // Lead's window, Contact's window, and Contact's rows under Accounts changed in that window.
    assert_eq!(jobs(&e.org).await - jobs_before, 3);
    // 25 API calls: a token; describeGlobal once and the mapping's Lead, Contact and Account
    // (the catalog check and the read's plans reuse them); a REST count query per
    // object (Lead, Contact) that sizes the windows; 5 per Bulk job (create, 2 polls, 1 results
    // page, delete), of which the Account's is the 5 the rename costs; the `deleted` endpoint
    // once per object; one REST query for the Leads of the window that left the mapping's
    // soql_where.
    let stats = e.org.stats().await;
    assert_eq!(
        stats["by_kind"],
        json!({"token": 1, "describe": 4, "query": 3, "bulk_query": 15, "bulk_ingest": 0,
               "collections": 0, "sync": 2}),
        "{stats}"
    );
    assert_eq!(stats["total"], json!(25));
    assert!(logs(&msgs).contains(&format!(
        "person: Contact: {} rows read again because their Account changed since {} (1 query, for Account.Name)",
        contacts.len(),
        state[0]["stream"]["stream_state"]["parents"]["Contact"]["Account"]["cursor"]
            .as_str()
            .map(lookback)
            .unwrap()
    )));

    let got = query_csv(
        &export,
        "SELECT source_id, company FROM person WHERE source_object = 'Contact' AND company = 'Renamed Industries' ORDER BY source_id",
    )
    .await;
    let want: String = contacts
        .iter()
        .map(|c| format!("{c},Renamed Industries\n"))
        .collect();
    assert_eq!(got, format!("source_id,company\n{want}"));
    // Every other row is as the org has it: one row per person, none stale.
    let total = query_csv(&export, "SELECT count(*) AS n FROM person").await;
    let org_people = org_rows(&e.org, "SELECT Id FROM Contact WHERE IsDeleted = false")
        .await
        .len()
        + org_rows(
            &e.org,
            "SELECT Id FROM Lead WHERE IsConverted = false AND IsDeleted = false",
        )
        .await
        .len();
    assert_eq!(total, format!("n\n{org_people}\n"));
}

/// An org of 20 with `config` (a mapping, and whatever else) whose stream `stream` is read
/// incrementally to Parquet: the env, the export folder, the config file and the catalog.
async fn parquet_stream(config: Value, stream: &str) -> (Env, PathBuf, PathBuf, PathBuf) {
    let e = env(20, base(config)).await;
    let export = e.dir.path().join("export");
    let config = parquet_config(&e, "parquet.json", &export);
    let cat = catalog(e.dir.path(), "cat.json", &[(stream, &[], "incremental")]);
    (e, export, config, cat)
}

/// The Ids of the live rows of `object` that `filter` selects, as the org answers now.
async fn live_ids(org: &Org, object: &str, filter: &str) -> BTreeSet<String> {
    let soql = format!("SELECT Id FROM {object} WHERE IsDeleted = false AND {filter}");
    org_rows(org, &soql)
        .await
        .iter()
        .map(|r| r["Id"].as_str().unwrap().to_string())
        .collect()
}

/// The saved cursor minus the default lookback window (10 minutes), as the log writes it.
fn lookback(cursor: &str) -> String {
    let t = chrono::DateTime::parse_from_rfc3339(cursor).unwrap() - chrono::Duration::minutes(10);
    t.with_timezone(&chrono::Utc)
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Days from 1970-01-01 to the date part of a Salesforce datetime.
fn epoch_day(datetime: &str) -> i64 {
    chrono::NaiveDate::parse_from_str(&datetime[..10], "%Y-%m-%d")
        .unwrap()
        .signed_duration_since(chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
        .num_days()
}

const OPPORTUNITY_FIELDS: &[&str] = &[
    "Id",
    "AccountId",
    "Account_Industry__c",
    "Days_Since_Created__c",
    "SystemModstamp",
];

/// The first Opportunity's Account moves to Industry "Energy" and the org's day advances by
/// one: both change formula values, neither moves a SystemModstamp.
async fn industry_changes_and_a_day_passes(org: &Org) {
    let opp = org_rows(
        org,
        "SELECT AccountId FROM Opportunity WHERE AccountId != null",
    )
    .await;
    let account = opp[0]["AccountId"].as_str().unwrap();
    org.control(
        "set",
        &json!({"object": "Account", "id": account, "field": "Industry", "value": "Energy"}),
    )
    .await;
    org.control("clock", &json!({"advance_days": 1})).await;
}

/// `Id,Account_Industry__c,days` of every Opportunity, as `sfetl query` shows them.
async fn opportunity_view(export: &Path) -> String {
    query_csv(
        export,
        "SELECT Id, Account_Industry__c, CAST(Days_Since_Created__c AS BIGINT) AS days FROM Opportunity ORDER BY Id",
    )
    .await
}

/// The same, from the org (REST), with `today` as days since 1970-01-01.
async fn opportunity_org(org: &Org, today: i64) -> String {
    let mut out = "Id,Account_Industry__c,days\n".to_string();
    let mut rows = org_rows(
        org,
        "SELECT Id, CreatedDate, Account_Industry__c FROM Opportunity",
    )
    .await;
    rows.sort_by(|a, b| a["Id"].as_str().cmp(&b["Id"].as_str()));
    for r in rows {
        let industry = r["Account_Industry__c"].as_str().unwrap_or("");
        let days = today - epoch_day(r["CreatedDate"].as_str().unwrap());
        out.push_str(&format!(
            "{},{industry},{days}\n",
            r["Id"].as_str().unwrap()
        ));
    }
    out
}

#[tokio::test]
async fn formula_fields_are_read_again_when_a_refresh_is_due_and_only_then() {
    let e = env(20, base(json!({}))).await;
    let export = e.dir.path().join("export");
    let config = parquet_config(&e, "parquet.json", &export);
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    cfg["formula_refresh"] = json!("PT0S");
    let due = write_json(e.dir.path(), "due.json", &cfg);
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("Opportunity", OPPORTUNITY_FIELDS, "incremental")],
    );
    const DAY_2030: i64 = 21915; // 2030-01-01
    e.org
        .control("clock", &json!({"today": "2030-01-01"}))
        .await;
    let s1 = e.dir.path().join("s1.json");
    read_to(&config, &cat, None, &s1).await;
    assert_eq!(
        opportunity_view(&export).await,
        opportunity_org(&e.org, DAY_2030).await
    );

    // A day passes, and an Industry changes in a way no SystemModstamp shows (only a refresh
    // can see either).
    industry_changes_and_a_day_passes(&e.org).await;
    let stale = opportunity_view(&export).await;

    // formula_refresh P1D: the first read refreshed them less than a day ago, so no extra job:
    // the window and the parent window only.
    let before = jobs(&e.org).await;
    let s2 = e.dir.path().join("s2.json");
    let msgs = read_to(&config, &cat, Some(&s1), &s2).await;
    assert_eq!(jobs(&e.org).await - before, 2);
    assert!(!logs(&msgs).iter().any(|l| l.contains("read again for")));
    assert_eq!(opportunity_view(&export).await, stale);

    // formula_refresh PT0S: due, one narrow Bulk job more.
    let before = jobs(&e.org).await;
    let msgs = read_to(&due, &cat, Some(&s2), &e.dir.path().join("s3.json")).await;
    assert_eq!(jobs(&e.org).await - before, 3);
    let n = org_rows(&e.org, "SELECT Id FROM Opportunity").await.len();
    assert!(logs(&msgs).iter().any(|l| l.starts_with(&format!(
        "Opportunity: formula fields Account_Industry__c, Days_Since_Created__c read again for {n} rows (formula_refresh PT0S, last refresh "
    ))));
    let fresh = opportunity_view(&export).await;
    assert_ne!(fresh, stale);
    assert_eq!(fresh, opportunity_org(&e.org, DAY_2030 + 1).await);
    assert!(fresh.contains(",Energy,"));
    assert_eq!(
        query_csv(&export, "SELECT count(*) AS n FROM Opportunity__formulas").await,
        format!("n\n{n}\n")
    );
    let state: Value =
        serde_json::from_slice(&std::fs::read(e.dir.path().join("s3.json")).unwrap()).unwrap();
    assert!(state[0]["stream"]["stream_state"]["formulas_refreshed_at"]["Opportunity"].is_string());
}

#[tokio::test]
async fn with_delta_output_a_due_refresh_updates_the_table_in_place() {
    let e = env(20, base(json!({}))).await;
    let export = e.dir.path().join("delta");
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(&e.config).unwrap()).unwrap();
    cfg["output"] = json!({"format": "delta", "path": export.to_str().unwrap()});
    cfg["formula_refresh"] = json!("PT0S");
    let config = write_json(e.dir.path(), "delta.json", &cfg);
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("Opportunity", OPPORTUNITY_FIELDS, "incremental")],
    );
    const DAY_2030: i64 = 21915; // 2030-01-01
    e.org
        .control("clock", &json!({"today": "2030-01-01"}))
        .await;
    let s1 = e.dir.path().join("s1.json");
    read_to(&config, &cat, None, &s1).await;
    assert_eq!(
        opportunity_view(&export).await,
        opportunity_org(&e.org, DAY_2030).await
    );
    industry_changes_and_a_day_passes(&e.org).await;
    let stale = opportunity_view(&export).await;
    let before = jobs(&e.org).await;
    let msgs = read_to(&config, &cat, Some(&s1), &e.dir.path().join("s2.json")).await;
    assert_eq!(
        jobs(&e.org).await - before,
        3,
        "the windows and one narrow job"
    );
    let n = org_rows(&e.org, "SELECT Id FROM Opportunity").await.len();
    assert!(logs(&msgs).iter().any(|l| l.starts_with(&format!(
        "Opportunity: formula fields Account_Industry__c, Days_Since_Created__c read again for {n} rows (formula_refresh PT0S, last refresh "
    ))));
    // The table itself holds the new values (no side table), as any Delta reader sees it.
    let fresh = opportunity_view(&export).await;
    assert_ne!(fresh, stale);
    assert_eq!(fresh, opportunity_org(&e.org, DAY_2030 + 1).await);
    assert!(fresh.contains(",Energy,"));
    assert!(!export.join("Opportunity__formulas").exists());
    // The refresh's commit keeps the STATE at hand: a read with no --state resumes from it.
    let again = messages(&read_files(&config, &cat, None).await);
    assert!(
        logs(&again)
            .iter()
            .any(|l| l.contains("resuming from the STATE committed in its Delta table")),
        "{again:?}"
    );
}

#[tokio::test]
async fn with_records_output_a_log_says_which_formulas_are_not_refreshed() {
    let e = env(5, base(json!({"formula_refresh": "PT0S"}))).await;
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("Opportunity", OPPORTUNITY_FIELDS, "incremental")],
    );
    let s1 = e.dir.path().join("s1.json");
    read_to(&e.config, &cat, None, &s1).await;
    let before = jobs(&e.org).await;
    let msgs = read_to(&e.config, &cat, Some(&s1), &e.dir.path().join("s2.json")).await;
    assert_eq!(
        jobs(&e.org).await - before,
        2,
        "no refresh job with records output"
    );
    assert!(logs(&msgs).contains(&"Opportunity: formula fields Account_Industry__c, Days_Since_Created__c change without their rows changing; with records output they are not read again on the formula_refresh schedule (a RECORD holds a whole row, so a refresh would mean reading every row again), only when their row is read again. Cross-object ones also come again when their parent changes (Account). Write Parquet or Delta to have them refreshed, or run a full refresh.".to_string()));
}

#[tokio::test]
async fn on_an_unchanged_org_a_parent_costs_one_query_per_window_bulk_or_rest() {
    // Windows of one day over the last three and a half days (a lookback of P3DT12H): four
    // windows for each object, nothing changed in any.
    let e = env(10, base(json!({"mapping": people_mapping()}))).await;
    let cat = catalog(e.dir.path(), "cat.json", &[("person", &[], "incremental")]);
    let s1 = e.dir.path().join("s1.json");
    read_to(&e.config, &cat, None, &s1).await;
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(&e.config).unwrap()).unwrap();
    cfg["stream_slice_step"] = json!("P1D");
    cfg["lookback_window"] = json!("P3DT12H");
    // Windows one at a time: once the daily Bulk cap is reached, exactly one job is refused
    // (concurrent windows would each ask before the first refusal moved the run to REST).
    cfg["max_concurrent_jobs"] = json!(1);
    let later = write_json(e.dir.path(), "later.json", &cfg);

    let before = jobs(&e.org).await;
    let msgs = read_to(&later, &cat, Some(&s1), &e.dir.path().join("s2.json")).await;
    assert_eq!(records(&msgs, "person").len(), 0);
    assert_eq!(
        jobs(&e.org).await - before,
        4 + 4 + 4,
        "Lead, Contact, Contact's Account"
    );
    assert!(
        logs(&msgs).iter().any(|l| l.starts_with(
            "person: Contact: 0 rows read again because their Account changed since "
        ) && l.ends_with(" (4 queries, for Account.Name)"))
    );

    // Through REST (the daily Bulk cap reached): one REST query per window.
    let used = jobs(&e.org).await;
    e.org
        .control("limits", &json!({"bulk_query_jobs_per_day": used}))
        .await;
    e.org.control("stats/reset", &json!({})).await;
    let msgs = read_to(&later, &cat, Some(&s1), &e.dir.path().join("s3.json")).await;
    assert_eq!(records(&msgs, "person").len(), 0);
    let stats = e.org.stats().await;
    // A count query per object (Lead, Contact), then one query per window, and one per Lead
    // window for the rows that left the mapping's soql_where.
    assert_eq!(
        stats["by_kind"]["query"],
        json!(2 + 4 + 4 + 4 + 4),
        "{stats}"
    );
    assert_eq!(
        stats["by_kind"]["bulk_query"],
        json!(1),
        "the refused job: {stats}"
    );
}

#[tokio::test]
async fn a_mapped_stream_refreshes_its_formulas_by_reading_its_mapped_fields_again() {
    let mapping = json!({"streams": [{"name": "deal", "from": [{"object": "Opportunity", "columns": {
        "id": "Id",
        "age_days": "Days_Since_Created__c",
        "industry": "Account_Industry__c",
        "modified_at": "SystemModstamp"}}]}]});
    let (e, export, config, cat) = parquet_stream(
        json!({"mapping": mapping, "formula_refresh": "PT0S"}),
        "deal",
    )
    .await;
    const DAY_2030: i64 = 21915;
    e.org
        .control("clock", &json!({"today": "2030-01-01"}))
        .await;
    let s1 = e.dir.path().join("s1.json");
    read_to(&config, &cat, None, &s1).await;
    e.org.control("clock", &json!({"advance_days": 1})).await;
    let before = jobs(&e.org).await;
    let msgs = read_to(&config, &cat, Some(&s1), &e.dir.path().join("s2.json")).await;
    // The window, the Account's window, and the mapped fields of every row once more.
    assert_eq!(jobs(&e.org).await - before, 3);
    let n = org_rows(&e.org, "SELECT Id FROM Opportunity").await.len();
    assert!(logs(&msgs).iter().any(|l| l.starts_with(&format!(
        "deal: Opportunity: formula fields Days_Since_Created__c, Account_Industry__c read again for {n} rows (formula_refresh PT0S, last refresh "
    ))));
    let got = query_csv(
        &export,
        "SELECT id AS \"Id\", industry AS \"Account_Industry__c\", CAST(age_days AS BIGINT) AS days FROM deal ORDER BY id",
    )
    .await;
    assert_eq!(got, opportunity_org(&e.org, DAY_2030 + 1).await);
    assert_eq!(
        query_csv(&export, "SELECT count(*) AS n FROM deal_history").await,
        format!("n\n{}\n", 2 * n)
    );
}

#[tokio::test]
async fn a_first_read_killed_midway_resumes_without_reading_unchanged_rows_again() {
    // Contact's Account_Name__c is the formula `Account.Name`, so Contact follows Account.
    // Pages of 20 rows, each a checkpoint.
    let e = env(
        200,
        base(json!({"bulk_max_records": 20, "max_concurrent_jobs": 1, "lookback_window": "PT0S"})),
    )
    .await;
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[(
            "Contact",
            &["Id", "Account_Name__c", "SystemModstamp"],
            "incremental",
        )],
    );
    let (seen, last) = kill_at(read_cmd(&e.config, &cat), 4, |m| m["type"] == "STATE").await;
    assert_eq!(seen, 4, "killed after its fourth STATE");
    let last = last.unwrap()["state"].clone();
    // Even a STATE of an unfinished first read says from where parents are followed.
    let parents = &last["stream"]["stream_state"]["parents"];
    assert!(
        parents["Contact"]["Account"]["cursor"].is_string(),
        "{last}"
    );
    let state = write_json(e.dir.path(), "state.json", &json!([last]));

    let msgs = read_ok(&e, &cat, Some(&state)).await;
    let got: Vec<String> = records(&msgs, "Contact")
        .iter()
        .map(|r| r["Id"].as_str().unwrap().to_string())
        .collect();
    let unique: BTreeSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "no row twice in the resumed run");
    assert!(
        got.len() < 600,
        "the resumed run starts after the killed one's cursor"
    );
    assert!(
        logs(&msgs)
            .iter()
            .any(|l| l
                .starts_with("Contact: 0 rows read again because their Account changed since ")),
        "{:?}",
        logs(&msgs)
    );
}

#[tokio::test]
async fn a_changed_owner_of_the_account_reaches_its_contacts_two_levels_down() {
    let mapping = one_source_mapping(
        "contact",
        "Contact",
        &[
            ("company", "Account.Name"),
            ("account_owner_email", "Account.Owner.Email"),
        ],
        None,
    );
    let (e, export, config, cat) = parquet_stream(json!({"mapping": mapping}), "contact").await;
    let s1 = e.dir.path().join("s1.json");
    read_to(&config, &cat, None, &s1).await;
    let state: Value = serde_json::from_slice(&std::fs::read(&s1).unwrap()).unwrap();
    let stream_state = &state[0]["stream"]["stream_state"];
    let own = &stream_state["sources"]["Contact"]["cursor"];
    // Both levels keep a cursor, started where the Contact's own ends.
    assert_eq!(
        stream_state["parents"]["Contact"]["Account"]["cursor"],
        *own
    );
    assert_eq!(
        stream_state["parents"]["Contact"]["Account.Owner"]["cursor"], *own,
        "{state}"
    );

    // The owner of the first Account that has Contacts gets a new email: only the User's own
    // SystemModstamp moves, neither the Accounts' nor the Contacts'.
    let (account, _) = an_account_with_contacts(&e.org).await;
    let owner = org_rows(
        &e.org,
        &format!("SELECT OwnerId FROM Account WHERE Id = '{account}'"),
    )
    .await[0]["OwnerId"]
        .as_str()
        .unwrap()
        .to_string();
    let under: BTreeSet<String> = org_rows(
        &e.org,
        &format!("SELECT Id FROM Contact WHERE Account.OwnerId = '{owner}'"),
    )
    .await
    .iter()
    .map(|r| r["Id"].as_str().unwrap().to_string())
    .collect();
    e.org
        .control(
            "update",
            &json!({"object": "User", "id": owner, "fields": {"Email": "new.owner@example.com"}}),
        )
        .await;
    e.org.next_second().await;
    let before = jobs(&e.org).await;
    let msgs = read_to(&config, &cat, Some(&s1), &e.dir.path().join("s2.json")).await;
    // The Contact's window, its Accounts' window (no Account changed), its owners' window.
    assert_eq!(jobs(&e.org).await - before, 3);
    let since = own.as_str().map(lookback).unwrap();
    let log = logs(&msgs);
    assert!(
        log.contains(&format!(
            "contact: Contact: {} rows read again because their Account.Owner changed since {since} (1 query, for Account.Owner.Email)",
            under.len()
        )),
        "{log:?}"
    );
    assert!(log.contains(&format!(
        "contact: Contact: 0 rows read again because their Account changed since {since} (1 query, for Account.Name, Account.Owner.Email)"
    )));

    let got = query_csv(
        &export,
        "SELECT id FROM contact WHERE account_owner_email = 'new.owner@example.com' ORDER BY id",
    )
    .await;
    let want: String = under.iter().map(|c| format!("{c}\n")).collect();
    assert_eq!(got, format!("id\n{want}"));
    assert!(!under.is_empty());
}

/// A mapped `boss_company: ReportsTo.Account_Name__c` (the manager's formula `Account.Name`),
/// read once, then read again after the managers' Account is renamed (neither Contact's
/// SystemModstamp moves), with `extra` config; asserts the new name reached exactly the
/// reports, and returns the second read's log and the first read's STATE.
async fn boss_company_after_rename(extra: Value) -> (Vec<String>, Value, Vec<String>) {
    let mapping = one_source_mapping(
        "contact",
        "Contact",
        &[("boss_company", "ReportsTo.Account_Name__c")],
        None,
    );
    let mut config = json!({"mapping": mapping});
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    let (e, export, config, cat) = parquet_stream(config, "contact").await;
    // Two Contacts report to the first Contact of the first Account that has Contacts.
    let (account, contacts) = an_account_with_contacts(&e.org).await;
    let boss = contacts.iter().next().unwrap();
    let reports = report_to(&e.org, boss, 2).await;
    let s1 = e.dir.path().join("s1.json");
    let first = read_to(&config, &cat, None, &s1).await;
    e.org
        .control(
            "update",
            &json!({"object": "Account", "id": account, "fields": {"Name": "Renamed Boss Co"}}),
        )
        .await;
    e.org.next_second().await;
    let msgs = read_to(&config, &cat, Some(&s1), &e.dir.path().join("s2.json")).await;
    let want: String = reports.iter().map(|id| format!("{id}\n")).collect();
    let got = query_csv(
        &export,
        "SELECT id FROM contact WHERE boss_company = 'Renamed Boss Co' ORDER BY id",
    )
    .await;
    assert_eq!(got, format!("id\n{want}"));
    if extra.get("formula_refresh").is_some() {
        let n = org_rows(&e.org, "SELECT Id FROM Contact").await.len();
        assert!(logs(&msgs).iter().any(|l| l.starts_with(&format!(
            "contact: Contact: formula fields ReportsTo.Account_Name__c read again for {n} rows (formula_refresh PT0S, last refresh "
        ))));
    }
    (logs(&msgs), last_states(&first), reports)
}

#[tokio::test]
async fn a_parents_cross_object_formula_is_refreshed_on_schedule_in_a_mapped_stream() {
    // Refreshed on every read (PT0S): the refresh's log line asserted by the helper.
    boss_company_after_rename(json!({"formula_refresh": "PT0S"})).await;
}

#[tokio::test]
async fn a_parents_cross_object_formula_follows_its_own_parent_at_every_read() {
    // No refresh due (formula_refresh P1D): the manager's Account is followed as
    // `ReportsTo.Account`, so the rename arrives with the next read.
    let (log, state, reports) = boss_company_after_rename(json!({})).await;
    let state = state.to_string();
    assert!(
        state.contains("\"ReportsTo.Account\":{\"cursor_field\":\"SystemModstamp\""),
        "{state}"
    );
    assert!(
        !log.iter().any(|l| l.contains("read again for")),
        "no refresh is due: {log:?}"
    );
    assert!(
        log.iter().any(|l| l.starts_with(&format!(
            "contact: Contact: {} rows read again because their ReportsTo.Account changed since ",
            reports.len()
        )) && l.ends_with(" (1 query, for ReportsTo.Account_Name__c)")),
        "{log:?}"
    );
}

/// One mapped stream of `object` under a `filter` that moves with time, read on `e`'s org at
/// a pinned day: the second read's view of it after `days` more days.
struct DaysPass<'a> {
    e: &'a Env,
    config: &'a Path,
    cat: &'a Path,
    export: &'a Path,
    stream: &'a str,
    object: &'a str,
    filter: &'a str,
    /// What the refresh's log line names (`LAST_N_DAYS:365`, `Days_Since_Created__c`).
    why: &'a str,
}

impl DaysPass<'_> {
    /// Reads once (the export then holds exactly the rows the filter selects), advances the
    /// clock `days`, reads again, and asserts: rows entered and left, the refresh read every
    /// row the filter selects now, those that left came as deletions, and the export holds
    /// exactly the rows it selects now. Returns the first read's log.
    async fn assert_after(&self, days: i64) -> Vec<String> {
        let org = &self.e.org;
        let before = live_ids(org, self.object, self.filter).await;
        let s1 = self.e.dir.path().join("s1.json");
        let first = logs(&read_to(self.config, self.cat, None, &s1).await);
        assert_eq!(held_ids(self.export, self.stream).await, before);
        org.control("clock", &json!({"advance_days": days})).await;
        let now = live_ids(org, self.object, self.filter).await;
        let left = before.difference(&now).count();
        assert!(
            now.difference(&before).count() > 0 && left > 0,
            "{before:?} {now:?}"
        );
        let s2 = self.e.dir.path().join("s2.json");
        let log = logs(&read_to(self.config, self.cat, Some(&s1), &s2).await);
        let (stream, object, filter) = (self.stream, self.object, self.filter);
        assert!(
            log.iter().any(|l| l.starts_with(&format!(
                "{stream}: {object}: the rows the soql_where selects today ({}) read again for {} rows (formula_refresh PT0S, last refresh ",
                self.why,
                now.len()
            ))),
            "{log:?}"
        );
        assert!(
            log.contains(&format!(
                "{stream}: {left} row(s) of {object} no longer selected, as days passed, by the mapping's soql_where ({filter}): delivered as deletions, so the stream drops the version it held"
            )),
            "{log:?}"
        );
        assert_eq!(held_ids(self.export, stream).await, now);
        first
    }
}

#[tokio::test]
async fn rows_entering_and_leaving_a_filter_on_relative_dates_are_seen_on_schedule() {
    // As days pass, Accounts whose Customer_Since__c reaches the last 365 days enter the
    // filter and those that fall out of them leave, while no row's SystemModstamp moves.
    let filter = "Customer_Since__c = LAST_N_DAYS:365";
    let mapping = one_source_mapping(
        "customers",
        "Account",
        &[("since", "Customer_Since__c")],
        Some(filter),
    );
    let (e, export, config, cat) = parquet_stream(
        json!({"mapping": mapping, "formula_refresh": "PT0S"}),
        "customers",
    )
    .await;
    e.org
        .control("clock", &json!({"today": "2023-06-01"}))
        .await;
    let pass = DaysPass {
        e: &e,
        config: &config,
        cat: &cat,
        export: &export,
        stream: "customers",
        object: "Account",
        filter,
        why: "LAST_N_DAYS:365",
    };
    pass.assert_after(365).await;
}

/// The Ids of the live rows that each (object, filter) of `sources` selects, together.
async fn live_ids_of(org: &Org, sources: &[(&str, &str)]) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for (object, filter) in sources {
        ids.extend(live_ids(org, object, filter).await);
    }
    ids
}

/// The Ids of the live Opportunities under `account`.
async fn opportunities_of(org: &Org, account: &str) -> BTreeSet<String> {
    live_ids(org, "Opportunity", &format!("AccountId = '{account}'")).await
}

/// The Ids of a Parquet export's current rows of `stream` (its latest view).
async fn held_ids(export: &Path, stream: &str) -> BTreeSet<String> {
    query_csv(export, &format!("SELECT id FROM {stream}"))
        .await
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect()
}

/// A filter on Opportunity's Account_Industry__c, the cross-object formula
/// `TEXT(Account.Industry)`.
const BANKING: &str = "Account_Industry__c = 'Banking'";

/// A Parquet stream `banking` of the Opportunities [`BANKING`] selects, and the Accounts of the
/// org's Opportunities ([`parent_accounts`]).
async fn banking_stream() -> (Env, PathBuf, PathBuf, PathBuf, Vec<String>) {
    let mapping = one_source_mapping("banking", "Opportunity", &[("name", "Name")], Some(BANKING));
    let (e, export, config, cat) = parquet_stream(json!({"mapping": mapping}), "banking").await;
    let accounts = parent_accounts(&e.org, "Opportunity").await;
    (e, export, config, cat, accounts)
}

#[tokio::test]
async fn a_filter_on_a_cross_object_formula_follows_the_parent_the_formula_reads() {
    // Opportunity's Account_Industry__c is the formula TEXT(Account.Industry): changing an
    // Account's Industry moves rows in and out of the filter while no Opportunity's
    // SystemModstamp moves.
    let filter = BANKING;
    let (e, export, config, cat, accounts) = banking_stream().await;
    let (joining, leaving) = (accounts[0].clone(), accounts[1].clone());
    let update = |id: &str, industry: &str| json!({"object": "Account", "id": id, "fields": {"Industry": industry}});
    e.org.control("update", &update(&joining, "Energy")).await;
    e.org.control("update", &update(&leaving, "Banking")).await;
    e.org.next_second().await;
    let s1 = e.dir.path().join("s1.json");
    read_to(&config, &cat, None, &s1).await;
    let before = live_ids(&e.org, "Opportunity", filter).await;
    assert_eq!(held_ids(&export, "banking").await, before);
    let (joins, leaves) = (
        opportunities_of(&e.org, &joining).await,
        opportunities_of(&e.org, &leaving).await,
    );
    assert!(leaves.is_subset(&before) && joins.is_disjoint(&before));

    e.org.control("update", &update(&joining, "Banking")).await;
    e.org.control("update", &update(&leaving, "Energy")).await;
    e.org.next_second().await;
    let msgs = read_to(&config, &cat, Some(&s1), &e.dir.path().join("s2.json")).await;
    let log = logs(&msgs);
    let now = live_ids(&e.org, "Opportunity", filter).await;
    assert_eq!(
        now,
        before.difference(&leaves).chain(&joins).cloned().collect()
    );
    // The rows that entered came with the Account's window, those that left went as
    // deletions: the stream holds exactly what the filter selects now.
    assert_eq!(held_ids(&export, "banking").await, now);
    // The filter's formula is not a column, yet its parent is followed, for the filter: the
    // rows under every Account changed since the saved cursor (less the lookback), exactly.
    let prefix = "banking: Opportunity: ";
    let line = log
        .iter()
        .find(|l| {
            l.starts_with(prefix)
                && l.contains(" rows read again because their Account changed since ")
        })
        .unwrap_or_else(|| panic!("{log:?}"));
    let since = line
        .split(" since ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    let under = format!("Account.SystemModstamp >= {since}");
    let entered = live_ids(&e.org, "Opportunity", &format!("{filter} AND {under}")).await;
    let not = format!("(NOT ({filter})) AND {under}");
    let left = live_ids(&e.org, "Opportunity", &not).await;
    assert!(joins.is_subset(&entered) && leaves.is_subset(&left));
    assert_eq!(
        line,
        &format!(
            "{prefix}{} rows read again because their Account changed since {since} (1 query, for soql_where)",
            entered.len()
        )
    );
    assert!(
        log.contains(&format!("banking: {} row(s) of Opportunity whose Account changed no longer match the mapping's soql_where (Account_Industry__c = 'Banking'): delivered as deletions, so the stream drops the version it held", left.len())),
        "{log:?}"
    );
}

#[tokio::test]
async fn rows_entering_and_leaving_a_filter_on_a_time_based_formula_are_seen_on_schedule() {
    // Days_Since_Created__c is TODAY() - DATEVALUE(CreatedDate): as days pass, Opportunities
    // enter and leave an age band while no row's SystemModstamp moves.
    let (e, _, _, _) = parquet_stream(json!({}), "Opportunity").await;
    e.org
        .control("clock", &json!({"today": "2030-01-01"}))
        .await;
    let mut ages: Vec<i64> = org_rows(&e.org, "SELECT Days_Since_Created__c FROM Opportunity")
        .await
        .iter()
        .map(|r| r["Days_Since_Created__c"].as_f64().unwrap() as i64)
        .collect();
    ages.sort();
    // The middle half of the rows by age today; later, younger rows enter the band at its
    // lower end as older ones leave at its upper end.
    let (low, high) = (ages[ages.len() / 4], ages[ages.len() * 3 / 4]);
    let filter = format!("Days_Since_Created__c > {low} AND Days_Since_Created__c <= {high}");
    let mapping = one_source_mapping("aged", "Opportunity", &[("name", "Name")], Some(&filter));
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(&e.config).unwrap()).unwrap();
    cfg["mapping"] = mapping;
    cfg["formula_refresh"] = json!("PT0S");
    let export = e.dir.path().join("aged-export");
    cfg["output"] = json!({"format": "parquet", "path": export.display().to_string()});
    let config = write_json(e.dir.path(), "aged-config.json", &cfg);
    let cat = catalog(
        e.dir.path(),
        "aged-cat.json",
        &[("aged", &[], "incremental")],
    );
    let pass = DaysPass {
        e: &e,
        config: &config,
        cat: &cat,
        export: &export,
        stream: "aged",
        object: "Opportunity",
        filter: &filter,
        why: "Days_Since_Created__c",
    };
    let first = pass.assert_after((high - low) / 2 + 1).await;
    assert!(first.contains(&"Opportunity: the mapping's soql_where reads Days_Since_Created__c, a formula computed from today's date, so rows enter and leave it as days pass while their SystemModstamp stays put. An incremental read reads every row it selects again on the formula_refresh schedule (unless that is off), so rows entering it come; on the same schedule, rows leaving it are found by comparing the export's Ids with the rows it selects and leave as deletions (Parquet or Delta output with a column mapped from Id), else they stay in the stream until a full refresh".to_string()), "{first:?}");
}

#[tokio::test]
async fn an_edited_formula_in_a_filter_is_a_changed_filter() {
    // An admin edits the formula the filter reads: every row's value changes, no row's
    // SystemModstamp moves, and the filter now selects other rows.
    let filter = BANKING;
    let (e, export, config, cat, accounts) = banking_stream().await;
    let (account, banking) = (accounts[0].clone(), accounts[1].clone());
    for (id, fields) in [
        (&account, json!({"Type": "Banking", "Industry": "Energy"})),
        (&banking, json!({"Type": "Customer", "Industry": "Banking"})),
    ] {
        let update = json!({"object": "Account", "id": id, "fields": fields});
        e.org.control("update", &update).await;
    }
    let s1 = e.dir.path().join("s1.json");
    read_to(&config, &cat, None, &s1).await;
    let before = live_ids(&e.org, "Opportunity", filter).await;
    assert!(!before.is_empty());
    assert_eq!(held_ids(&export, "banking").await, before);
    let state = std::fs::read_to_string(&s1).unwrap();
    let recorded = "formula Account_Industry__c = TEXT(Account.Industry)";
    assert!(state.contains(recorded), "{state}");

    let formula = "TEXT(Account.Type)";
    e.org
        .control(
            "schema/set_formula",
            &json!({"object": "Opportunity", "field": "Account_Industry__c", "formula": formula}),
        )
        .await;
    let now = live_ids(&e.org, "Opportunity", filter).await;
    assert_eq!(now, opportunities_of(&e.org, &account).await);
    assert!(now.is_disjoint(&before));
    let msgs = read_to(&config, &cat, Some(&s1), &e.dir.path().join("s2.json")).await;
    let log = logs(&msgs);
    assert!(
        log.iter().any(|l| l.starts_with(
            "Opportunity: the definition of a formula field changed since the rows below the saved cursor were read (Account_Industry__c is now TEXT(Account.Type)): Salesforce computes the new values in every row without moving its SystemModstamp: reading every row again from "
        )),
        "{log:?}"
    );
    // Every row the old definition selected left as a deletion; the new ones came.
    assert_eq!(held_ids(&export, "banking").await, now);
    assert!(
        log.iter().any(|l| l.starts_with("banking: ")
            && l.contains(" row(s) of Opportunity do not match the mapping's changed soql_where (Account_Industry__c = 'Banking'): delivered as deletions")),
        "{log:?}"
    );
}

#[tokio::test]
async fn rows_leaving_relative_date_filters_of_two_sources_leave_a_delta_table_by_their_own_ids() {
    // One stream from Accounts and Opportunities, each with its own filter on relative dates:
    // each source's comparison takes only its own Ids (by their key prefix) from the table.
    let account_filter = "Customer_Since__c = LAST_N_DAYS:365";
    let deal_filter = "CloseDate = LAST_N_DAYS:365";
    let columns = json!({"id": "Id", "modified_at": "SystemModstamp", "name": "Name"});
    let mapping = json!({"streams": [{"name": "dated", "primary_key": ["id"], "from": [
        {"object": "Account", "columns": columns, "soql_where": account_filter},
        {"object": "Opportunity", "columns": columns, "soql_where": deal_filter},
    ]}]});
    let e = env(
        20,
        base(json!({"mapping": mapping, "formula_refresh": "PT0S"})),
    )
    .await;
    let export = e.dir.path().join("tables");
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(&e.config).unwrap()).unwrap();
    cfg["output"] = json!({"format": "delta", "path": export.display().to_string()});
    let config = write_json(e.dir.path(), "delta.json", &cfg);
    let cat = catalog(e.dir.path(), "cat.json", &[("dated", &[], "incremental")]);
    e.org
        .control("clock", &json!({"today": "2023-06-01"}))
        .await;
    let live = [("Account", account_filter), ("Opportunity", deal_filter)];
    let before = live_ids_of(&e.org, &live).await;
    let s1 = e.dir.path().join("s1.json");
    read_to(&config, &cat, None, &s1).await;
    assert_eq!(held_ids(&export, "dated").await, before);

    e.org.control("clock", &json!({"advance_days": 200})).await;
    let now = live_ids_of(&e.org, &live).await;
    let left = |prefix: &str| {
        before
            .difference(&now)
            .filter(|id| id.starts_with(prefix))
            .count()
    };
    let (accounts_left, deals_left) = (left("001"), left("006"));
    assert!(accounts_left > 0 && deals_left > 0, "{before:?} {now:?}");
    let msgs = read_to(&config, &cat, Some(&s1), &e.dir.path().join("s2.json")).await;
    let log = logs(&msgs);
    for (n, object, filter) in [
        (accounts_left, "Account", account_filter),
        (deals_left, "Opportunity", deal_filter),
    ] {
        assert!(
            log.contains(&format!(
                "dated: {n} row(s) of {object} no longer selected, as days passed, by the mapping's soql_where ({filter}): delivered as deletions, so the stream drops the version it held"
            )),
            "{log:?}"
        );
    }
    assert_eq!(held_ids(&export, "dated").await, now);
}
