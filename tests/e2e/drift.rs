//! Schema drift (issue 13) against the simulator's live schema controls: for a field added,
//! deleted, retyped and hidden, discover and read before and after the change, under
//! `schema_drift: fail` (the default) and `ignore`, raw and mapped streams; and `sfetl query`
//! over syncs that wrote different columns.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;

const GONE: &str = "(deleted, hidden from this user by field-level security, or misspelt)";
/// A mapping's field the org stopped describing (the mapping was checked when it compiled).
const GONE_MAPPED: &str = "(deleted, or hidden from this user by field-level security)";

/// The CATALOG entry of `name` from a `sfetl discover` that must succeed.
async fn discovered(config: &Path, name: &str) -> Value {
    let out = run(&["discover", "--config", config.to_str().unwrap()]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let msgs = messages(&out);
    let catalog = msgs.iter().find(|m| m["type"] == "CATALOG").unwrap();
    catalog["catalog"]["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("discover offers no {name}"))
        .clone()
}

/// A configured catalog selecting `fields` of discovered streams, with the discovered schemas
/// of those fields (as an orchestrator keeps them), full refresh.
fn configured(dir: &Path, file: &str, streams: &[(&Value, &[&str])]) -> PathBuf {
    let streams: Vec<Value> = streams
        .iter()
        .map(|(stream, fields)| {
            let mut stream = (*stream).clone();
            let all = stream["json_schema"]["properties"].as_object().unwrap().clone();
            let kept: serde_json::Map<String, Value> = fields
                .iter()
                .map(|f| (f.to_string(), all[*f].clone()))
                .collect();
            stream["json_schema"]["properties"] = Value::Object(kept);
            json!({"stream": stream, "sync_mode": "full_refresh", "destination_sync_mode": "overwrite"})
        })
        .collect();
    write_json(dir, file, &json!({"streams": streams}))
}

/// A copy of the env's config with `extra` set, named `name`.
fn config_with(e: &Env, name: &str, extra: Value) -> PathBuf {
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(&e.config).unwrap()).unwrap();
    for (k, v) in extra.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    write_json(e.dir.path(), name, &cfg)
}

/// `sfetl read`, whatever its outcome: (exit code, messages).
async fn read_any(config: &Path, catalog: &Path) -> (i32, Vec<Value>) {
    let out = read_out(config, catalog).await;
    (out.status.code().unwrap(), messages(&out))
}

/// Every TRACE ERROR: (stream, failure type, message).
fn errors(msgs: &[Value]) -> Vec<(String, String, String)> {
    msgs.iter()
        .filter(|m| m["type"] == "TRACE" && m["trace"]["type"] == "ERROR")
        .map(|m| {
            let e = &m["trace"]["error"];
            (
                e["stream_descriptor"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                e["failure_type"].as_str().unwrap().to_string(),
                e["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// `field` of every record of `stream`, by Id (`id_key`); a missing key reads as absent.
fn by_id(msgs: &[Value], stream: &str, id_key: &str, field: &str) -> BTreeMap<String, Value> {
    records(msgs, stream)
        .iter()
        .map(|r| {
            let v = r.get(field).cloned().unwrap_or(json!("<absent>"));
            (r[id_key].as_str().unwrap().to_string(), v)
        })
        .collect()
}

/// `field` of every row of `object` as the org answers REST (blank text as null, as Bulk CSV
/// gives it too), by Id.
async fn org_values(org: &Org, object: &str, field: &str) -> BTreeMap<String, Value> {
    org_rows(org, &format!("SELECT Id, {field} FROM {object}"))
        .await
        .iter()
        .map(|r| (r["Id"].as_str().unwrap().to_string(), r[field].clone()))
        .collect()
}

async fn schema_change(org: &Org, op: &str, body: Value) {
    org.control(&format!("schema/{op}"), &body).await;
}

#[tokio::test]
async fn an_added_field_shows_up_in_the_next_discover_and_reads_when_selected() {
    // No lag: the Account edited below is read at once (its SystemModstamp is now).
    let e = env(2, json!({"cursor_lag": "PT0S"})).await;
    let before = discovered(&e.config, "Account").await;
    assert!(before["json_schema"]["properties"].get("Tier__c").is_none());
    let old = configured(e.dir.path(), "old.json", &[(&before, &["Id", "Name"])]);
    schema_change(
        &e.org,
        "add_field",
        json!({"object": "Account", "field": "Tier__c", "type": "string"}),
    )
    .await;
    let ids: Vec<String> = org_values(&e.org, "Account", "Name")
        .await
        .into_keys()
        .collect();
    let r = e
        .org
        .send_json(
            Method::PATCH,
            &format!("sobjects/Account/{}", ids[0]),
            &json!({"Tier__c": "Gold"}),
        )
        .await;
    assert_eq!(r.status(), 204);
    // The catalog of before the change reads as it did: nothing it selects changed.
    let msgs = read_ok(&e, &old, None).await;
    assert_eq!(warnings(&msgs), Vec::<String>::new());
    assert_eq!(
        by_id(&msgs, "Account", "Id", "Tier__c"),
        ids.iter().map(|i| (i.clone(), json!("<absent>"))).collect()
    );
    let after = discovered(&e.config, "Account").await;
    assert_eq!(
        after["json_schema"]["properties"]["Tier__c"],
        json!({"type": ["null", "string"]})
    );
    let new = configured(
        e.dir.path(),
        "new.json",
        &[(&after, &["Id", "Name", "Tier__c"])],
    );
    let msgs = read_ok(&e, &new, None).await;
    assert_eq!(
        by_id(&msgs, "Account", "Id", "Tier__c"),
        BTreeMap::from([
            (ids[0].clone(), json!("Gold")),
            (ids[1].clone(), Value::Null)
        ])
    );
    // A catalog selecting every field reads it too.
    let all = catalog(
        e.dir.path(),
        "all.json",
        &[("Account", &[], "full_refresh")],
    );
    let msgs = read_ok(&e, &all, None).await;
    assert_eq!(
        by_id(&msgs, "Account", "Id", "Tier__c")[&ids[0]],
        json!("Gold")
    );
}

#[tokio::test]
async fn a_deleted_field_ends_the_stream_or_is_left_out_with_a_warning() {
    let e = env(2, json!({})).await;
    let contact = discovered(&e.config, "Contact").await;
    let account = discovered(&e.config, "Account").await;
    let cat = configured(
        e.dir.path(),
        "cat.json",
        &[
            (&contact, &["Id", "LastName", "Score_Reason__c"]),
            (&account, &["Id", "Name"]),
        ],
    );
    let msgs = read_ok(&e, &cat, None).await;
    assert_eq!(
        by_id(&msgs, "Contact", "Id", "Score_Reason__c"),
        org_values(&e.org, "Contact", "Score_Reason__c").await
    );
    let last_names = org_values(&e.org, "Contact", "LastName").await;
    schema_change(
        &e.org,
        "remove_field",
        json!({"object": "Contact", "field": "Score_Reason__c"}),
    )
    .await;
    let after = discovered(&e.config, "Contact").await;
    assert!(
        after["json_schema"]["properties"]
            .get("Score_Reason__c")
            .is_none()
    );
    let (code, msgs) = read_any(&e.config, &cat).await;
    assert_eq!(code, 2, "config errors exit 2");
    assert_eq!(
        errors(&msgs),
        vec![(
            "Contact".to_string(),
            "config_error".to_string(),
            format!(
                "stream Contact: the selected field Score_Reason__c is not in Contact's describe {GONE}. Run `sfetl discover` again and refresh the configured catalog, or set schema_drift to \"ignore\" to read the stream without it"
            )
        )]
    );
    assert_eq!(records(&msgs, "Contact"), Vec::<Value>::new());
    assert_eq!(
        records(&msgs, "Account").len(),
        2,
        "the other stream is read"
    );
    let ignore = config_with(&e, "ignore.json", json!({"schema_drift": "ignore"}));
    let (code, msgs) = read_any(&ignore, &cat).await;
    assert_eq!(code, 0);
    assert_eq!(
        warnings(&msgs),
        vec![format!(
            "Contact: the selected field Score_Reason__c is not in Contact's describe {GONE}: reading the stream without it (schema_drift is \"ignore\"). Run `sfetl discover` again to refresh the catalog"
        )]
    );
    assert_eq!(by_id(&msgs, "Contact", "Id", "LastName"), last_names);
    assert!(
        records(&msgs, "Contact")
            .iter()
            .all(|r| r.get("Score_Reason__c").is_none())
    );
    // `check --catalog` validates strictly: the vanished field is a catalog problem.
    let out = run(&[
        "check",
        "--config",
        e.config.to_str().unwrap(),
        "--catalog",
        cat.to_str().unwrap(),
    ])
    .await;
    assert_eq!(
        connection_status(&out),
        (
            "FAILED".to_string(),
            "The connection works, but the catalog is not valid: The catalog has 1 problem: (1) streams[0] \"Contact\" selects fields that Contact does not have: \"Score_Reason__c\"; remove them from json_schema.properties. Run `sfetl discover` to see the streams and fields this org offers.".to_string()
        )
    );
}

#[tokio::test]
async fn a_hidden_field_ends_the_stream_or_is_left_out_until_shown_again() {
    let e = env(3, json!({})).await;
    let account = discovered(&e.config, "Account").await;
    let cat = configured(
        e.dir.path(),
        "cat.json",
        &[(&account, &["Id", "Name", "Industry"])],
    );
    let industries = org_values(&e.org, "Account", "Industry").await;
    assert_eq!(
        by_id(&read_ok(&e, &cat, None).await, "Account", "Id", "Industry"),
        industries
    );
    let hide = |hidden: bool| json!({"object": "Account", "field": "Industry", "hidden": hidden});
    schema_change(&e.org, "hide_field", hide(true)).await;
    let after = discovered(&e.config, "Account").await;
    assert!(after["json_schema"]["properties"].get("Industry").is_none());
    let (code, msgs) = read_any(&e.config, &cat).await;
    assert_eq!(code, 2);
    assert_eq!(
        errors(&msgs)[0].2,
        format!(
            "stream Account: the selected field Industry is not in Account's describe {GONE}. Run `sfetl discover` again and refresh the configured catalog, or set schema_drift to \"ignore\" to read the stream without it"
        )
    );
    let ignore = config_with(&e, "ignore.json", json!({"schema_drift": "ignore"}));
    let (code, msgs) = read_any(&ignore, &cat).await;
    assert_eq!(code, 0);
    assert_eq!(
        warnings(&msgs),
        vec![format!(
            "Account: the selected field Industry is not in Account's describe {GONE}: reading the stream without it (schema_drift is \"ignore\"). Run `sfetl discover` again to refresh the catalog"
        )]
    );
    assert_eq!(
        by_id(&msgs, "Account", "Id", "Industry"),
        industries
            .keys()
            .map(|k| (k.clone(), json!("<absent>")))
            .collect()
    );
    schema_change(&e.org, "hide_field", hide(false)).await;
    let msgs = read_ok(&e, &cat, None).await;
    assert_eq!(warnings(&msgs), Vec::<String>::new());
    assert_eq!(by_id(&msgs, "Account", "Id", "Industry"), industries);
}

#[tokio::test]
async fn a_retyped_field_fails_under_either_setting_until_discovered_again() {
    let e = env(4, json!({})).await;
    let contact = discovered(&e.config, "Contact").await;
    assert_eq!(
        contact["json_schema"]["properties"]["Score__c"],
        json!({"type": ["null", "number"]})
    );
    let cat = configured(e.dir.path(), "cat.json", &[(&contact, &["Id", "Score__c"])]);
    let numbers = org_values(&e.org, "Contact", "Score__c").await;
    let read = by_id(&read_ok(&e, &cat, None).await, "Contact", "Id", "Score__c");
    let as_f64 = |m: &BTreeMap<String, Value>| -> Vec<Option<f64>> {
        m.values().map(Value::as_f64).collect()
    };
    assert_eq!(as_f64(&read), as_f64(&numbers));
    schema_change(
        &e.org,
        "retype_field",
        json!({"object": "Contact", "field": "Score__c", "type": "string"}),
    )
    .await;
    let message = "stream Contact: Score__c changed type: the catalog has number, the org now has string. Run `sfetl discover` again and refresh the configured catalog";
    for config in [
        e.config.clone(),
        config_with(&e, "ignore.json", json!({"schema_drift": "ignore"})),
    ] {
        let (code, msgs) = read_any(&config, &cat).await;
        assert_eq!(code, 2);
        assert_eq!(
            errors(&msgs),
            vec![(
                "Contact".to_string(),
                "config_error".to_string(),
                message.to_string()
            )]
        );
        assert_eq!(records(&msgs, "Contact"), Vec::<Value>::new());
    }
    let after = discovered(&e.config, "Contact").await;
    assert_eq!(
        after["json_schema"]["properties"]["Score__c"],
        json!({"type": ["null", "string"]})
    );
    let new = configured(e.dir.path(), "new.json", &[(&after, &["Id", "Score__c"])]);
    let text: BTreeMap<String, Value> = numbers
        .iter()
        .map(|(id, n)| {
            (
                id.clone(),
                if n.is_null() {
                    Value::Null
                } else {
                    json!(n.to_string())
                },
            )
        })
        .collect();
    assert_eq!(
        by_id(&read_ok(&e, &new, None).await, "Contact", "Id", "Score__c"),
        text
    );
}

/// A config whose inline mapping reads Contacts as `person` (id, email, score).
fn person_config(e: &Env, name: &str, drift: &str) -> PathBuf {
    config_with(
        e,
        name,
        json!({"schema_drift": drift, "mapping": {"streams": [{"name": "person", "from": [{
            "object": "Contact",
            "columns": {"id": "Id", "email": "lower(Email)", "score": "Score__c"}
        }]}]}}),
    )
}

#[tokio::test]
async fn a_mapped_stream_whose_field_is_hidden_fails_or_reads_it_as_null() {
    let e = env(2, json!({})).await;
    let (fail, ignore) = (
        person_config(&e, "fail.json", "fail"),
        person_config(&e, "ignore.json", "ignore"),
    );
    let person = discovered(&fail, "person").await;
    let cat = configured(
        e.dir.path(),
        "cat.json",
        &[(&person, &["id", "email", "score"])],
    );
    let emails: BTreeMap<String, Value> = org_values(&e.org, "Contact", "Email")
        .await
        .into_iter()
        .map(|(id, v)| {
            (
                id,
                v.as_str().map_or(Value::Null, |s| json!(s.to_lowercase())),
            )
        })
        .collect();
    let (code, msgs) = read_any(&fail, &cat).await;
    assert_eq!(code, 0);
    assert_eq!(by_id(&msgs, "person", "id", "email"), emails);
    schema_change(
        &e.org,
        "hide_field",
        json!({"object": "Contact", "field": "Email"}),
    )
    .await;
    let (code, msgs) = read_any(&fail, &cat).await;
    assert_eq!(code, 2);
    assert_eq!(
        errors(&msgs),
        vec![(
            "person".to_string(),
            "config_error".to_string(),
            format!(
                "stream person: the mapping reads Contact.Email, which the org no longer describes {GONE_MAPPED}. Run `sfetl discover` again and fix the mapping, or set schema_drift to \"ignore\" to read it as null"
            )
        )]
    );
    let warning = format!(
        "person: the mapping reads Contact.Email, which the org no longer describes {GONE_MAPPED}: reading it as null (schema_drift is \"ignore\"). Run `sfetl discover` again and fix the mapping"
    );
    let (code, msgs) = read_any(&ignore, &cat).await;
    assert_eq!(code, 0);
    assert_eq!(warnings(&msgs), vec![warning.clone()]);
    assert_eq!(
        by_id(&msgs, "person", "id", "email"),
        emails.keys().map(|k| (k.clone(), Value::Null)).collect()
    );
    // Discover under `ignore` offers the stream (the column now has no type), with the warning.
    let out = run(&["discover", "--config", ignore.to_str().unwrap()]).await;
    assert!(out.status.success());
    assert_eq!(warnings(&messages(&out)), vec![warning]);
    // Under `fail`, discover refuses the mapping until it is fixed.
    let out = run(&["discover", "--config", fail.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        errors(&messages(&out)),
        vec![(
            String::new(),
            "config_error".to_string(),
            "mapping stream \"person\", column \"email\" from Contact: unknown field \"Email\" on Contact".to_string()
        )]
    );
}

#[tokio::test]
async fn a_mapped_column_whose_field_changed_type_fails() {
    let e = env(2, json!({})).await;
    let config = person_config(&e, "ignore.json", "ignore");
    let person = discovered(&config, "person").await;
    assert_eq!(
        person["json_schema"]["properties"]["score"]["type"],
        json!(["null", "number"])
    );
    let cat = configured(e.dir.path(), "cat.json", &[(&person, &["id", "score"])]);
    schema_change(
        &e.org,
        "retype_field",
        json!({"object": "Contact", "field": "Score__c", "type": "string"}),
    )
    .await;
    let (code, msgs) = read_any(&config, &cat).await;
    assert_eq!(code, 2);
    assert_eq!(
        errors(&msgs),
        vec![(
            "person".to_string(),
            "config_error".to_string(),
            "stream person: score changed type: the catalog has number, the org now has string. Run `sfetl discover` again and refresh the configured catalog".to_string()
        )]
    );
}

/// `sfetl query --format json` lines, and its stderr.
fn query_json(export: &Path, sql: &str) -> (Vec<Value>, String) {
    let out = run_blocking(&[
        "query",
        "--path",
        export.to_str().unwrap(),
        "--format",
        "json",
        sql,
    ]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    let rows = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (rows, stderr)
}

#[tokio::test]
async fn query_unions_syncs_that_gained_and_lost_columns() {
    let e = env(2, json!({"cursor_lag": "PT0S"})).await;
    let export = e.dir.path().join("export");
    let config = parquet_config(&e, "parquet.json", &export);
    let before = discovered(&config, "Account").await;
    let first = configured(
        e.dir.path(),
        "first.json",
        &[(&before, &["Id", "Name", "Industry"])],
    );
    read_files(&config, &first, None).await;
    let industries = org_values(&e.org, "Account", "Industry").await;
    let names = org_values(&e.org, "Account", "Name").await;
    schema_change(
        &e.org,
        "add_field",
        json!({"object": "Account", "field": "Tier__c", "type": "string"}),
    )
    .await;
    schema_change(
        &e.org,
        "hide_field",
        json!({"object": "Account", "field": "Industry"}),
    )
    .await;
    let id = names.keys().next().unwrap().clone();
    e.org
        .send_json(
            Method::PATCH,
            &format!("sobjects/Account/{id}"),
            &json!({"Tier__c": "Gold"}),
        )
        .await;
    let after = discovered(&config, "Account").await;
    let second = configured(
        e.dir.path(),
        "second.json",
        &[(&after, &["Id", "Name", "Tier__c"])],
    );
    read_files(&config, &second, None).await;
    let (rows, stderr) = query_json(
        &export,
        "SELECT Id, Name, Industry, Tier__c FROM Account_history ORDER BY _sfetl_sync_id, Id",
    );
    assert_eq!(stderr, "");
    let mut want = Vec::new();
    for sync in [1, 2] {
        for (i, name) in &names {
            let industry = if sync == 1 {
                industries[i].clone()
            } else {
                Value::Null
            };
            let tier = if sync == 2 && *i == id {
                json!("Gold")
            } else {
                Value::Null
            };
            want.push(json!({"Id": i, "Name": name, "Industry": industry, "Tier__c": tier}));
        }
    }
    assert_eq!(rows, want);
    // The current table is the newest full sync: no Industry any more.
    let (rows, _) = query_json(
        &export,
        "SELECT count(*) AS n, count(Industry) AS industries FROM Account",
    );
    assert_eq!(rows, vec![json!({"n": 2, "industries": 0})]);
}

#[tokio::test]
async fn query_reads_a_column_whose_type_changed_between_syncs_as_text() {
    let e = env(2, json!({})).await;
    let export = e.dir.path().join("export");
    let config = parquet_config(&e, "parquet.json", &export);
    let before = discovered(&config, "Contact").await;
    read_files(
        &config,
        &configured(e.dir.path(), "a.json", &[(&before, &["Id", "Score__c"])]),
        None,
    )
    .await;
    let numbers = org_values(&e.org, "Contact", "Score__c").await;
    schema_change(
        &e.org,
        "retype_field",
        json!({"object": "Contact", "field": "Score__c", "type": "string"}),
    )
    .await;
    let after = discovered(&config, "Contact").await;
    read_files(
        &config,
        &configured(e.dir.path(), "b.json", &[(&after, &["Id", "Score__c"])]),
        None,
    )
    .await;
    let (rows, stderr) = query_json(
        &export,
        "SELECT Id, Score__c FROM Contact_history ORDER BY _sfetl_sync_id, Id",
    );
    let syncs: Vec<String> = std::fs::read_dir(export.join("Contact"))
        .unwrap()
        .map(|d| d.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(|c: char| c.is_ascii_digit()))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        stderr,
        format!(
            "sfetl: note: Contact.Score__c is Decimal128(5, 2) in sync {} and Utf8 in sync {}: it is read as text in every sync\n",
            syncs[0], syncs[1]
        )
    );
    let mut want = Vec::new();
    for sync in [1, 2] {
        for (id, n) in &numbers {
            let text = match n.as_f64() {
                None => Value::Null,
                Some(f) if sync == 1 => json!(format!("{f:.2}")),
                Some(_) => json!(n.to_string()),
            };
            want.push(json!({"Id": id, "Score__c": text}));
        }
    }
    assert_eq!(rows, want);
}

#[tokio::test]
async fn a_field_misspelt_in_a_hand_edited_catalog_is_named_with_the_field_spelt_close_to_it() {
    let e = env(10, one_window_config(json!({}))).await;
    let cat = catalog(
        e.dir.path(),
        "typo.json",
        &[("Account", &["Id", "Nmae", "SystemModstamp"], "full_refresh")],
    );
    let (code, msgs) = read_any(&e.config, &cat).await;
    assert_eq!(code, 2);
    assert_eq!(
        errors(&msgs),
        vec![(
            "Account".to_string(),
            "config_error".to_string(),
            "stream Account: the selected field Nmae is not in Account's describe (deleted, hidden from this user by field-level security, or misspelt: the describe has Name). Run `sfetl discover` again and refresh the configured catalog, or set schema_drift to \"ignore\" to read the stream without it".to_string()
        )]
    );
    assert!(records(&msgs, "Account").is_empty());
}

/// `catalog` (as [`configured`] wrote it) with every stream read incrementally.
fn incremental(catalog: &Path) -> PathBuf {
    let mut cat: Value = serde_json::from_slice(&std::fs::read(catalog).unwrap()).unwrap();
    for s in cat["streams"].as_array_mut().unwrap() {
        s["sync_mode"] = json!("incremental");
        s["destination_sync_mode"] = json!("append_dedup");
    }
    let dir = catalog.parent().unwrap();
    let name = format!("inc-{}", catalog.file_name().unwrap().to_str().unwrap());
    write_json(dir, &name, &cat)
}

/// `Industry` of every Account in the export's latest view, by Id (null as JSON null).
async fn latest_industries(export: &Path) -> BTreeMap<String, Value> {
    let csv = query_csv(
        export,
        "SELECT \"Id\", \"Industry\" FROM \"Account\" ORDER BY \"Id\"",
    )
    .await;
    csv.lines()
        .skip(1)
        .map(|l| {
            let (id, industry) = l.split_once(',').unwrap();
            let v = if industry.is_empty() {
                Value::Null
            } else {
                json!(industry)
            };
            (id.to_string(), v)
        })
        .collect()
}

#[tokio::test]
async fn a_field_shown_again_is_backfilled_into_the_rows_below_the_cursor() {
    let e = env(3, json!({"cursor_lag": "PT0S", "schema_drift": "ignore"})).await;
    let export = e.dir.path().join("export");
    let pq = parquet_config_default(&e, "pq.json", &export);
    let account = discovered(&e.config, "Account").await;
    let cat = incremental(&configured(
        e.dir.path(),
        "cat.json",
        &[(&account, &["Id", "Name", "Industry", "SystemModstamp"])],
    ));
    let industries = org_values(&e.org, "Account", "Industry").await;
    assert!(industries.values().any(|v| !v.is_null()));

    // Field-level security hides Industry from the first sync: every row is read without it.
    let hide = |hidden: bool| json!({"object": "Account", "field": "Industry", "hidden": hidden});
    schema_change(&e.org, "hide_field", hide(true)).await;
    let first = messages(&read_files(&pq, &cat, None).await);
    assert_eq!(warnings(&first).len(), 1, "the drift warning");
    let state1 = write_json(e.dir.path(), "state1.json", &last_states(&first));

    // Shown again: no row changed since the cursor, so reading on from it would leave every
    // row without its Industry for good.
    schema_change(&e.org, "hide_field", hide(false)).await;
    let new = "Account: the read now includes a field (Industry) that the rows below the saved cursor were read without (a field added to the catalog or the mapping, or shown again by field-level security)";
    // As RECORDs: what `ignore` reads, row by row.
    let ignore = config_with(&e, "ignore.json", json!({"new_fields": "ignore"}));
    let on = messages(&read_files(&ignore, &cat, Some(&state1)).await);
    assert_eq!(records(&on, "Account").len(), 0);
    assert!(
        logs(&on).contains(&format!("{new}: reading on from the saved cursor, so only rows changed since carry their values (new_fields is \"ignore\"; \"backfill\" reads every row again)")),
        "{:?}",
        logs(&on)
    );

    // `sfetl plan` cuts the same read: from the beginning, saying why.
    let (slices, stderr) =
        plan_with_stderr(&pq, &cat, &["--state", state1.to_str().unwrap()]).await;
    assert!(
        stderr.contains(&format!(
            "sfetl plan: {new}: reading every row again from the beginning"
        )),
        "{stderr}"
    );
    let rows: u64 = slices
        .iter()
        .map(|s| s["estimated_rows"].as_u64().unwrap())
        .sum();
    assert_eq!(rows as usize, industries.len());

    let back = messages(&read_files(&pq, &cat, Some(&state1)).await);
    assert_eq!(
        warnings(&back),
        vec![format!(
            "{new}: reading every row again from the beginning, so rows that did not change get their values too (new_fields is \"backfill\"; \"ignore\" reads on from the cursor)"
        )]
    );
    assert_eq!(latest_industries(&export).await, industries);
    // The STATE records the fields read, so the run after reads on from its cursor.
    let state2 = write_json(e.dir.path(), "state2.json", &last_states(&back));
    let again = read_ok(&e, &cat, Some(&state2)).await;
    assert_eq!(warnings(&again), Vec::<String>::new());
    assert_eq!(records(&again, "Account").len(), 0);
}

#[tokio::test]
async fn a_field_just_created_is_counted_not_backfilled_unless_rows_hold_values() {
    let e = env(3, json!({"cursor_lag": "PT0S"})).await;
    // Every field, as a catalog with no properties selects: a field the org adds is read at once.
    let cat = catalog(e.dir.path(), "cat.json", &[("Account", &[], "incremental")]);
    let first = read_ok(&e, &cat, None).await;
    let all = records(&first, "Account").len();
    let state = write_json(e.dir.path(), "state.json", &last_states(&first));

    // A text field just created is null in every row: one count says so, nothing is read again.
    schema_change(
        &e.org,
        "add_field",
        json!({"object": "Account", "field": "Tier__c", "type": "string"}),
    )
    .await;
    let on = read_ok(&e, &cat, Some(&state)).await;
    assert_eq!(records(&on, "Account").len(), 0);
    assert!(
        logs(&on).contains(&"Account: the read now includes a field (Tier__c) that the rows below the saved cursor were read without (a field added to the catalog or the mapping, or shown again by field-level security): no row below the saved cursor holds a value in it (one count query), so the read goes on from the cursor".to_string()),
        "{:?}",
        logs(&on)
    );
    assert_eq!(warnings(&on), Vec::<String>::new());

    // A checkbox is false in every existing row, not null: those values are read.
    let state = write_json(e.dir.path(), "state2.json", &last_states(&on));
    schema_change(
        &e.org,
        "add_field",
        json!({"object": "Account", "field": "Vip__c", "type": "boolean"}),
    )
    .await;
    let back = read_ok(&e, &cat, Some(&state)).await;
    let rows = records(&back, "Account");
    assert_eq!(rows.len(), all);
    assert!(rows.iter().all(|r| r["Vip__c"] == false), "{:?}", rows[0]);
    assert_eq!(warnings(&back).len(), 1, "{:?}", warnings(&back));
}

/// After a `first` read whose STATE records Contact's `Display_Label__c` definition under
/// `recorded` (`Display_Label__c`, or a path to a parent Contact's): an admin edits it, and the
/// next read from that STATE warns that it changed and reads every row again. Returns that
/// read's messages.
async fn relabelled(e: &Env, cat: &Path, first: &[Value], recorded: &str) -> Vec<Value> {
    let states = last_states(first);
    let read = &states[0]["stream"]["stream_state"]["fields_read"]["Contact"];
    assert!(
        read.as_array().unwrap().contains(&json!(format!(
            "formula {recorded} = LastName & \", \" & FirstName"
        ))),
        "{read}"
    );
    let state = write_json(e.dir.path(), "state.json", &states);
    // An admin edits the formula: every row's value changes, no row's SystemModstamp moves.
    let formula = "FirstName & \" \" & LastName";
    schema_change(
        &e.org,
        "set_formula",
        json!({"object": "Contact", "field": "Display_Label__c", "formula": formula}),
    )
    .await;
    let back = read_ok(e, cat, Some(&state)).await;
    assert_eq!(
        warnings(&back),
        vec![format!(
            "Contact: the definition of a formula field changed since the rows below the saved cursor were read ({recorded} is now {formula}): Salesforce computes the new values in every row without moving its SystemModstamp: reading every row again from the beginning, so rows that did not change get their values too (new_fields is \"backfill\"; \"ignore\" reads on from the cursor)"
        )]
    );
    back
}

#[tokio::test]
async fn an_edited_formula_is_read_again_in_every_row() {
    let e = env(3, json!({"cursor_lag": "PT0S"})).await;
    let contact = discovered(&e.config, "Contact").await;
    let cat = incremental(&configured(
        e.dir.path(),
        "cat.json",
        &[(
            &contact,
            &[
                "Id",
                "FirstName",
                "LastName",
                "Display_Label__c",
                "SystemModstamp",
            ],
        )],
    ));
    let first = read_ok(&e, &cat, None).await;
    let all = records(&first, "Contact").len();
    assert!(all > 0);
    let back = relabelled(&e, &cat, &first, "Display_Label__c").await;
    let rows = records(&back, "Contact");
    assert_eq!(rows.len(), all);
    for r in &rows {
        let part = |k: &str| r[k].as_str().unwrap_or("").to_string();
        assert_eq!(
            r["Display_Label__c"],
            json!(format!("{} {}", part("FirstName"), part("LastName"))),
            "{r}"
        );
    }
    // The STATE records the new definition: the run after reads on from its cursor.
    let state = write_json(e.dir.path(), "state2.json", &last_states(&back));
    let again = read_ok(&e, &cat, Some(&state)).await;
    assert_eq!(warnings(&again), Vec::<String>::new());
    assert_eq!(records(&again, "Contact").len(), 0);
}

#[tokio::test]
async fn an_edited_formula_of_a_parent_is_read_again_in_every_row_of_the_child() {
    // `boss_label` is the manager's formula: an admin's edit of it changes every Contact's
    // value with no row's SystemModstamp moving, the manager's included.
    let mapping = one_source_mapping(
        "contact",
        "Contact",
        &[("boss_label", "ReportsTo.Display_Label__c")],
        None,
    );
    let e = env(3, json!({"cursor_lag": "PT0S", "mapping": mapping})).await;
    let ids: Vec<String> = org_rows(
        &e.org,
        "SELECT Id FROM Contact WHERE IsDeleted = false ORDER BY Id",
    )
    .await
    .iter()
    .map(|r| r["Id"].as_str().unwrap().to_string())
    .collect();
    let boss = &ids[0];
    let reports = report_to(&e.org, boss, 2).await;
    let cat = catalog(e.dir.path(), "cat.json", &[("contact", &[], "incremental")]);
    let first = read_ok(&e, &cat, None).await;
    let back = relabelled(&e, &cat, &first, "ReportsTo.Display_Label__c").await;
    let rows = records(&back, "contact");
    assert_eq!(rows.len(), ids.len());
    let boss_row = &org_rows(
        &e.org,
        &format!("SELECT FirstName, LastName FROM Contact WHERE Id = '{boss}'"),
    )
    .await[0];
    let label = format!(
        "{} {}",
        boss_row["FirstName"].as_str().unwrap_or(""),
        boss_row["LastName"].as_str().unwrap_or("")
    );
    let mut relabelled: Vec<&str> = rows
        .iter()
        .filter(|r| r["boss_label"] == json!(label))
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    relabelled.sort();
    assert_eq!(relabelled, reports);
}
