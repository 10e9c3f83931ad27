//! The people mapping over the simulator: exactly the expected rows (Leads not
//! converted plus Contacts, with their computed columns), incremental changes in either object,
//! and a bad mapping reported by `check`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::common::*;

fn mapping_path() -> String {
    format!(
        "{}/fixtures/mappings/people.yaml",
        crate::common::manifest_dir()
    )
}

fn person(source: &str, r: &Value, company: &Value) -> Value {
    let s = |v: &Value| v.as_str().map(str::to_string);
    let name: Vec<String> = [s(&r["FirstName"]), s(&r["LastName"])]
        .into_iter()
        .flatten()
        .collect();
    json!({
        "source_object": source,
        "source_id": r["Id"],
        "email": s(&r["Email"]).map(|e| e.to_lowercase()),
        "full_name": name.join(" "),
        "company": s(company),
        "score": r["Score__c"],
    })
}

async fn read_people(e: &Env, state: Option<&std::path::Path>) -> Vec<Value> {
    let cat = catalog(e.dir.path(), "cat.json", &[("person", &[], "incremental")]);
    read_ok(e, &cat, state).await
}

fn strip(rows: &[Value]) -> BTreeMap<String, Value> {
    rows.iter()
        .map(|r| {
            let mut r = r.clone();
            let o = r.as_object_mut().unwrap();
            for k in ["modified_at", "_sfetl_cursor", "_sfetl_is_deleted"] {
                o.remove(k);
            }
            if let Some(score) = o.get("score").and_then(Value::as_f64) {
                o.insert("score".into(), json!(score));
            }
            (o["source_id"].as_str().unwrap().to_string(), r)
        })
        .collect()
}

#[tokio::test]
async fn people_mapping_gives_exactly_unconverted_leads_and_contacts() {
    let e = env(30, json!({"mapping": mapping_path(), "start_date": "2000-01-01", "cursor_lag": "PT0S", "stream_slice_step": "P3650D"})).await;
    let msgs = read_people(&e, None).await;
    let got = strip(&records(&msgs, "person"));

    let mut want = BTreeMap::new();
    for r in org_rows(&e.org, "SELECT Id, Email, FirstName, LastName, Company, Score__c FROM Lead WHERE IsConverted = false").await {
        want.insert(r["Id"].as_str().unwrap().to_string(), person("Lead", &r, &r["Company"]));
    }
    for r in org_rows(
        &e.org,
        "SELECT Id, Email, FirstName, LastName, Account.Name, Score__c FROM Contact",
    )
    .await
    {
        let company = r["Account"].get("Name").cloned().unwrap_or(Value::Null);
        want.insert(
            r["Id"].as_str().unwrap().to_string(),
            person("Contact", &r, &company),
        );
    }
    let converted = org_rows(&e.org, "SELECT Id FROM Lead WHERE IsConverted = true")
        .await
        .len();
    assert!(
        converted > 0,
        "the simulated org has converted Leads to filter out"
    );
    assert_eq!(got.len(), want.len());
    for (id, w) in &want {
        let mut g = got[id].clone();
        if let (Some(a), Some(b)) = (g["score"].as_f64(), w["score"].as_f64()) {
            assert!((a - b).abs() < 1e-9, "{id}");
            g["score"] = w["score"].clone();
        }
        assert_eq!(&g, w, "{id}");
    }

    // Incremental: changes in either object, and only them.
    let states: Vec<Value> = msgs
        .iter()
        .filter(|m| m["type"] == "STATE")
        .map(|m| m["state"].clone())
        .collect();
    let state = write_json(e.dir.path(), "state.json", &json!([states.last().unwrap()]));
    let leads: BTreeSet<String> = e
        .org
        .control("touch", &json!({"object": "Lead", "count": 6}))
        .await["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let contacts: BTreeSet<String> = e
        .org
        .control("touch", &json!({"object": "Contact", "count": 4}))
        .await["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let next = read_people(&e, Some(&state)).await;
    let (gone, changed): (Vec<Value>, Vec<Value>) = records(&next, "person")
        .into_iter()
        .partition(|r| r["_sfetl_is_deleted"] == true);
    let ids = |rows: &[Value]| -> BTreeSet<String> {
        rows.iter()
            .map(|r| r["source_id"].as_str().unwrap().to_string())
            .collect()
    };
    let (kept, converted): (BTreeSet<String>, BTreeSet<String>) =
        leads.iter().cloned().partition(|id| want.contains_key(id));
    let expected: BTreeSet<String> = kept.iter().chain(contacts.iter()).cloned().collect();
    assert_eq!(ids(&changed), expected);
    // A touched Lead already converted no longer matches the filter: it comes as a deletion
    // (which matches nothing, as it was never read).
    assert_eq!(ids(&gone), converted);
    assert_eq!(contacts.len(), 4);
}

#[tokio::test]
async fn check_reports_an_unknown_field_with_the_closest_names() {
    let e = env(2, json!({})).await;
    let bad = write_json(
        e.dir.path(),
        "bad.json",
        &json!({"streams": [{"name": "person", "primary_key": ["id"],
        "from": [{"object": "Lead", "columns": {"id": "Id", "email": "lower(Emial)"}}]}]}),
    );
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(&e.config).unwrap()).unwrap();
    cfg["mapping"] = json!(bad.to_str().unwrap());
    let config = write_json(e.dir.path(), "cfg.json", &cfg);
    let out = run(&["check", "--config", config.to_str().unwrap()]).await;
    assert!(out.status.success());
    let (status, message) = connection_status(&out);
    assert_eq!(status, "FAILED");
    assert!(
        message.starts_with("The connection works, but the field mapping is not valid: "),
        "{message}"
    );
    assert!(
        message.contains("Emial") && message.contains("Email"),
        "{message}"
    );
}

#[tokio::test]
async fn a_full_refresh_slice_of_a_mapped_stream_of_two_objects_warns_it_cannot_replace() {
    let e = people_env(20).await;
    let cat = catalog(e.dir.path(), "cat.json", &[("person", &[], "full_refresh")]);
    let slices = plan_slices(&e.config, &cat, &[]).await;
    let objects: Vec<&str> = slices
        .iter()
        .map(|s| s["object"].as_str().unwrap())
        .collect();
    assert_eq!(objects, ["Lead", "Contact"]);
    let slice = write_json(e.dir.path(), "slice.json", &slices[0]);
    let out = read_slice(&e.config, &cat, &slice).output().await.unwrap();
    assert_ok(&out);
    let msgs = messages(&out);
    let warnings = warnings(&msgs);
    assert_eq!(
        warnings,
        [
            "person: a full refresh of 2 objects is one slice per object, and each slice adds its object's rows to the output without replacing it, so rows deleted in the org since an earlier full refresh stay in it; a plain `sfetl read` of the stream replaces the output whole"
        ]
    );
    let leads = org_rows(&e.org, "SELECT Id FROM Lead WHERE IsConverted = false").await;
    assert_eq!(records(&msgs, "person").len(), leads.len());
}

#[tokio::test]
async fn rows_without_a_key_each_stay_in_the_latest_view_of_a_parquet_export() {
    let mapping = format!(
        "{}/fixtures/mappings/contacts_by_email.yaml",
        manifest_dir()
    );
    let e = mapped_env(30, json!(mapping)).await;
    let contacts = org_rows(&e.org, "SELECT Id, Email, IsDeleted FROM Contact").await;
    // Bulk's CSV gives an empty email as null, as Salesforce stores it.
    let emails: Vec<Option<String>> = contacts
        .iter()
        .filter(|r| r["IsDeleted"] == false)
        .map(|r| {
            r["Email"]
                .as_str()
                .filter(|m| !m.is_empty())
                .map(str::to_lowercase)
        })
        .collect();
    let keyless = emails.iter().filter(|m| m.is_none()).count();
    let keys: BTreeSet<&String> = emails.iter().flatten().collect();
    assert!(
        keyless >= 2,
        "the simulator gives some Contacts no email: {keyless}"
    );
    let export = e.dir.path().join("export");
    let config = parquet_config_default(&e, "pq.json", &export);
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("contact_by_email", &[], "full_refresh")],
    );
    let msgs = messages(&read_files(&config, &cat, None).await);
    let warnings = warnings(&msgs);
    assert_eq!(
        warnings,
        [format!(
            "contact_by_email: {keyless} row(s) of Contact have no value in email, a column of the primary key: nothing tells them apart, so a destination that deduplicates on the key cannot match them to their later versions (and a Delta table refuses them). Give the mapping's stream a primary_key whose columns always have a value (a column mapped from Id has one)"
        )]
    );
    // One row per email (the declared key), and every row without one.
    let csv = query_csv(
        &export,
        "SELECT count(*) AS n, count(email) AS with_email FROM contact_by_email",
    )
    .await;
    assert_eq!(
        csv.lines().nth(1).unwrap(),
        format!("{},{}", keys.len() + keyless, keys.len())
    );
}

/// A two-source mapping whose Contact `email` column is `contact_email`.
fn two_sources(contact_email: &str) -> Value {
    let source = |object: &str, email: &str| json!({"object": object, "columns": {"source_id": "Id", "email": email, "modified_at": "SystemModstamp"}});
    json!({"streams": [{"name": "people", "primary_key": ["source_id"], "from": [
        source("Contact", contact_email),
        source("Lead", "lower(Email)"),
    ]}]})
}

#[tokio::test]
async fn a_changed_mapping_column_reads_its_source_again_and_only_that_source() {
    let e = env(
        30,
        json!({"mapping": two_sources("lower(Email)"), "cursor_lag": "PT0S"}),
    )
    .await;
    let cat = catalog(e.dir.path(), "cat.json", &[("people", &[], "incremental")]);
    let first = read_ok(&e, &cat, None).await;
    let by_object = |msgs: &[Value], prefix: &str| -> BTreeMap<String, Value> {
        records(msgs, "people")
            .iter()
            .filter(|r| r["source_id"].as_str().unwrap().starts_with(prefix))
            .map(|r| {
                (
                    r["source_id"].as_str().unwrap().to_string(),
                    r["email"].clone(),
                )
            })
            .collect()
    };
    let contacts = by_object(&first, "003");
    assert!(contacts.len() >= 20 && !by_object(&first, "00Q").is_empty());
    let state = write_json(e.dir.path(), "state.json", &last_states(&first));

    // The Contact column now reads the email upper-cased: no Contact changed, but every one
    // below the cursor holds the old expression's value.
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(&e.config).unwrap()).unwrap();
    cfg["mapping"] = two_sources("upper(Email)");
    let changed = write_json(e.dir.path(), "changed.json", &cfg);
    let again = messages(&read_files(&changed, &cat, Some(&state)).await);
    let warns = warnings(&again);
    assert_eq!(
        warns,
        [
            "Contact: the read now includes mapping changes (column email = upper(Email)) that the rows below the saved cursor were read without (a field added to the catalog or the mapping, or shown again by field-level security; a mapping's column or soql_where changed): reading every row again from the beginning, so rows that did not change get their values too (new_fields is \"backfill\"; \"ignore\" reads on from the cursor)"
        ]
    );
    let upper: BTreeMap<String, Value> = contacts
        .iter()
        .map(|(id, v)| {
            (
                id.clone(),
                v.as_str().map_or(Value::Null, |m| json!(m.to_uppercase())),
            )
        })
        .collect();
    assert_eq!(by_object(&again, "003"), upper);
    assert_eq!(
        by_object(&again, "00Q"),
        BTreeMap::new(),
        "Leads read on from their cursor"
    );
}

#[tokio::test]
async fn a_lead_converted_after_it_was_read_leaves_the_people_stream() {
    let e = people_env(30).await;
    let (export, config, cat, first) = first_incremental_read(&e, "person").await;
    let leads = org_rows(
        &e.org,
        "SELECT Id FROM Lead WHERE IsConverted = false AND IsDeleted = false",
    )
    .await;
    let id = leads[0]["Id"].as_str().unwrap().to_string();
    let held = |sql: String| {
        let export = export.clone();
        async move { query_csv(&export, &sql).await }
    };
    let count = format!("SELECT count(*) AS n FROM person WHERE source_id = '{id}'");
    assert_eq!(held(count.clone()).await, "n\n1\n");
    let all = held("SELECT count(*) AS n FROM person".into()).await;

    // Converting the Lead updates it (its SystemModstamp moves) and takes it out of the
    // mapping's filter: the filtered query of the next window no longer selects it. The Contact
    // the conversion creates is a new person.
    let converted = e.org.control("convert_lead", &json!({"id": id})).await;
    let contact = converted["contact"].as_str().unwrap().to_string();
    let state = write_json(e.dir.path(), "state.json", &last_states(&first));
    let second = messages(&read_settled(&e.org, &config, &cat, Some(&state)).await);
    assert!(
        logs(&second).contains(&"person: 1 row(s) of Lead changed and no longer match the mapping's soql_where (IsConverted = false): delivered as deletions, so the stream drops the version it held".to_string()),
        "{:?}",
        logs(&second)
    );
    assert_eq!(held(count).await, "n\n0\n");
    assert_eq!(
        held(format!(
            "SELECT source_object FROM person WHERE source_id = '{contact}'"
        ))
        .await,
        "source_object\nContact\n"
    );
    // One person less as a Lead, one more as a Contact.
    assert_eq!(held("SELECT count(*) AS n FROM person".into()).await, all);
}

/// A two-source mapping whose Lead source reads the rows `lead_filter` selects.
fn filtered_leads(lead_filter: &str) -> Value {
    let columns =
        json!({"source_id": "Id", "email": "lower(Email)", "modified_at": "SystemModstamp"});
    json!({"streams": [{"name": "people", "primary_key": ["source_id"], "from": [
        {"object": "Contact", "columns": columns},
        {"object": "Lead", "columns": columns, "soql_where": lead_filter},
    ]}]})
}

#[tokio::test]
async fn a_narrowed_soql_where_takes_the_rows_it_no_longer_selects_out_of_the_stream() {
    let e = mapped_env(30, filtered_leads("IsConverted = false")).await;
    let (export, config, cat, first) = first_incremental_read(&e, "people").await;
    let ids = |rows: Vec<Value>| -> Vec<String> {
        let mut v: Vec<String> = rows
            .iter()
            .map(|r| r["Id"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    let unconverted = ids(org_rows(&e.org, "SELECT Id FROM Lead WHERE IsConverted = false").await);
    assert_eq!(people_ids(&export, "00Q").await, unconverted);

    // The mapping now keeps web leads only: no Lead changed, yet the stream must drop the rest.
    let narrowed = "IsConverted = false AND LeadSource = 'Web'";
    let web = ids(org_rows(&e.org, &format!("SELECT Id FROM Lead WHERE {narrowed}")).await);
    assert!(!web.is_empty() && web.len() < unconverted.len());
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    cfg["mapping"] = filtered_leads(narrowed);
    let changed = write_json(e.dir.path(), "changed.json", &cfg);
    let state = write_json(e.dir.path(), "state.json", &last_states(&first));
    let second = messages(&read_files(&changed, &cat, Some(&state)).await);
    // Deleted rows leave through the `deleted` endpoint, not this query.
    let left = org_rows(
        &e.org,
        &format!("SELECT Id FROM Lead WHERE NOT ({narrowed}) AND IsDeleted = false"),
    )
    .await;
    // Said per window (and once for the rows before the first): as many as the org holds.
    let tail = format!(
        " row(s) of Lead do not match the mapping's changed soql_where ({narrowed}): delivered as deletions, so the stream drops the version it held"
    );
    let said: Vec<usize> = logs(&second)
        .iter()
        .filter_map(|l| {
            l.strip_prefix("people: ")?
                .strip_suffix(&tail)?
                .parse()
                .ok()
        })
        .collect();
    assert!(!said.is_empty(), "{:?}", logs(&second));
    assert_eq!(said.iter().sum::<usize>(), left.len(), "{said:?}");
    assert_eq!(people_ids(&export, "00Q").await, web);
    // Contacts were not read again.
    assert!(records(&second, "people").is_empty());
}

/// A Parquet export of `stream` read incrementally, and its first read: (export, config,
/// catalog, messages).
async fn first_incremental_read(e: &Env, stream: &str) -> (PathBuf, PathBuf, PathBuf, Vec<Value>) {
    let export = e.dir.path().join("export");
    let config = parquet_config_default(e, "pq.json", &export);
    let cat = catalog(e.dir.path(), "cat.json", &[(stream, &[], "incremental")]);
    let first = messages(&read_files(&config, &cat, None).await);
    (export, config, cat, first)
}

/// An org at `scale` read through `mapping` (a file's path or the mapping itself) from 2000 on,
/// with no cursor lag.
async fn mapped_env(scale: u64, mapping: Value) -> Env {
    env(
        scale,
        json!({"mapping": mapping, "start_date": "2000-01-01", "cursor_lag": "PT0S"}),
    )
    .await
}

/// [`mapped_env`] with the people mapping (`fixtures/mappings/people.yaml`).
async fn people_env(scale: u64) -> Env {
    mapped_env(scale, json!(mapping_path())).await
}

/// The `source_id`s the latest view of `people` holds that start with `prefix`, sorted.
async fn people_ids(export: &Path, prefix: &str) -> Vec<String> {
    query_csv(
        export,
        &format!(
            "SELECT source_id FROM people WHERE source_id LIKE '{prefix}%' ORDER BY source_id"
        ),
    )
    .await
    .lines()
    .skip(1)
    .map(str::to_string)
    .collect()
}

/// The values of `key` in the rows `soql` matches (REST queryAll), sorted, once each.
async fn sorted_values(org: &Org, soql: &str, key: &str) -> Vec<String> {
    let mut v: Vec<String> = org_rows(org, soql)
        .await
        .iter()
        .map(|r| {
            let v = key.split('.').fold(r, |v, k| &v[k]);
            v.as_str().unwrap().to_string()
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// A mapping of the Contacts `filter` selects.
fn filtered_contacts(filter: &str) -> Value {
    json!({"streams": [{"name": "people", "primary_key": ["source_id"], "from": [
        {"object": "Contact", "soql_where": filter,
         "columns": {"source_id": "Id", "email": "lower(Email)", "modified_at": "SystemModstamp"}},
    ]}]})
}

#[tokio::test]
async fn a_filter_on_a_parent_field_follows_the_parent_in_and_out() {
    let e = env(
        30,
        json!({"start_date": "2000-01-01", "cursor_lag": "PT0S"}),
    )
    .await;
    // The industry of some Contact's Account.
    let industries = sorted_values(
        &e.org,
        "SELECT Account.Industry FROM Contact WHERE Account.Industry != null",
        "Account.Industry",
    )
    .await;
    let industry = &industries[0];
    let elsewhere = if industry == "Energy" {
        "Banking"
    } else {
        "Energy"
    };
    let filter = format!("Account.Industry = '{industry}'");
    let export = e.dir.path().join("export");
    let mut cfg: Value = serde_json::from_slice(
        &std::fs::read(parquet_config_default(&e, "pq.json", &export)).unwrap(),
    )
    .unwrap();
    cfg["mapping"] = filtered_contacts(&filter);
    let config = write_json(e.dir.path(), "mapped.json", &cfg);
    let cat = catalog(e.dir.path(), "cat.json", &[("people", &[], "incremental")]);
    let first = messages(&read_files(&config, &cat, None).await);
    let query = format!("SELECT Id FROM Contact WHERE {filter} AND IsDeleted = false");
    let before = sorted_values(&e.org, &query, "Id").await;
    assert!(!before.is_empty());
    assert_eq!(people_ids(&export, "003").await, before);

    // One Account leaves the industry and another joins it: their Contacts' own SystemModstamp
    // stays put, yet they leave and enter the filter.
    let accounts = |cond: &str| {
        format!(
            "SELECT AccountId FROM Contact WHERE {cond} AND IsDeleted = false AND AccountId != null"
        )
    };
    let within = sorted_values(&e.org, &accounts(&filter), "AccountId").await;
    let other = sorted_values(
        &e.org,
        &accounts(&format!(
            "Account.Industry != '{industry}' AND Account.Industry != null"
        )),
        "AccountId",
    )
    .await;
    let (leaving, joining) = (within.first().unwrap(), other.first().unwrap());
    for (id, industry) in [(leaving, elsewhere), (joining, industry.as_str())] {
        e.org
            .control(
                "update",
                &json!({"object": "Account", "id": id, "fields": {"Industry": industry}}),
            )
            .await;
    }
    let after = sorted_values(&e.org, &query, "Id").await;
    assert_ne!(after, before);
    let state = write_json(e.dir.path(), "state.json", &last_states(&first));
    let second = messages(&read_settled(&e.org, &config, &cat, Some(&state)).await);
    assert_eq!(people_ids(&export, "003").await, after);
    let gone = before.iter().filter(|id| !after.contains(id)).count();
    assert!(
        logs(&second).contains(&format!("people: {gone} row(s) of Contact whose Account changed no longer match the mapping's soql_where ({filter}): delivered as deletions, so the stream drops the version it held")),
        "{:?}",
        logs(&second)
    );
}

#[tokio::test]
async fn a_filter_on_relative_dates_warns_that_days_passing_move_rows_no_cursor_sees() {
    let filter = "IsConverted = false AND CreatedDate = LAST_N_DAYS:36500";
    let e = env(
        10,
        json!({"mapping": filtered_leads(filter), "cursor_lag": "PT0S"}),
    )
    .await;
    let cat = catalog(e.dir.path(), "cat.json", &[("people", &[], "incremental")]);
    let msgs = read_ok(&e, &cat, None).await;
    let warns = warnings(&msgs);
    assert_eq!(
        warns,
        [
            "Lead: the mapping's soql_where uses relative dates (LAST_N_DAYS:36500): rows enter and leave it as days pass while their SystemModstamp stays put. An incremental read reads every row it selects again on the formula_refresh schedule (unless that is off), so rows entering it come; on the same schedule, rows leaving it are found by comparing the export's Ids with the rows it selects and leave as deletions (Parquet or Delta output with a column mapped from Id), else they stay in the stream until a full refresh, or filter on fixed dates"
        ]
    );
    // A full refresh applies the filter to every row: nothing to warn of.
    let full = catalog(
        e.dir.path(),
        "full.json",
        &[("people", &[], "full_refresh")],
    );
    let msgs = read_ok(&e, &full, None).await;
    assert_eq!(warnings(&msgs), Vec::<String>::new());
}

#[tokio::test]
async fn contacts_deleted_with_their_account_leave_the_people_stream() {
    let e = people_env(30).await;
    let (export, config, cat, first) = first_incremental_read(&e, "person").await;
    let accounts = sorted_values(
        &e.org,
        "SELECT AccountId FROM Contact WHERE AccountId != null AND IsDeleted = false",
        "AccountId",
    )
    .await;
    let account = &accounts[0];
    let contacts = sorted_values(
        &e.org,
        &format!("SELECT Id FROM Contact WHERE AccountId = '{account}' AND IsDeleted = false"),
        "Id",
    )
    .await;
    let held = |id: &str| {
        let export = export.clone();
        let sql = format!("SELECT count(*) AS n FROM person WHERE source_id = '{id}'");
        async move { query_csv(&export, &sql).await }
    };
    for c in &contacts {
        assert_eq!(held(c).await, "n\n1\n");
    }

    // Deleting the Account moves its Contacts to the recycle bin too; each is in Contact's
    // delete log, so the next read drops them.
    let del = e
        .org
        .control("delete", &json!({"object": "Account", "ids": [account]}))
        .await;
    assert!(del["cascaded"].as_array().unwrap().len() >= contacts.len());
    let state = write_json(e.dir.path(), "state.json", &last_states(&first));
    read_settled(&e.org, &config, &cat, Some(&state)).await;
    for c in &contacts {
        assert_eq!(held(c).await, "n\n0\n", "{c}");
    }
}

#[tokio::test]
async fn a_removed_soql_where_reads_the_rows_it_left_out() {
    let e = mapped_env(30, filtered_leads("IsConverted = false")).await;
    let (export, config, cat, first) = first_incremental_read(&e, "people").await;
    let leads = |filter: &str| format!("SELECT Id FROM Lead WHERE {filter} AND IsDeleted = false");
    let unconverted = sorted_values(&e.org, &leads("IsConverted = false"), "Id").await;
    assert_eq!(people_ids(&export, "00Q").await, unconverted);

    // The filter removed: the converted Leads, below the cursor and unchanged, must arrive.
    let mut mapping = filtered_leads("IsConverted = false");
    mapping["streams"][0]["from"][1]
        .as_object_mut()
        .unwrap()
        .remove("soql_where");
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    cfg["mapping"] = mapping;
    let changed = write_json(e.dir.path(), "changed.json", &cfg);
    let state = write_json(e.dir.path(), "state.json", &last_states(&first));
    let second = messages(&read_files(&changed, &cat, Some(&state)).await);
    assert_eq!(
        warnings(&second),
        [
            "Lead: the read now includes mapping changes (soql_where (none; was IsConverted = false)) that the rows below the saved cursor were read without (a field added to the catalog or the mapping, or shown again by field-level security; a mapping's column or soql_where changed): reading every row again from start_date (2000-01-01T00:00:00.000Z), so rows that did not change get their values too (new_fields is \"backfill\"; \"ignore\" reads on from the cursor)"
        ]
    );
    let all = sorted_values(&e.org, &leads("Id != null"), "Id").await;
    assert!(all.len() > unconverted.len());
    assert_eq!(people_ids(&export, "00Q").await, all);
}
