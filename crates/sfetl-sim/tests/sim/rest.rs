//! The simulator's REST API over real HTTP: shapes, paging, SOQL, errors, limits, writes,
//! replication endpoints, sObject Collections and the /__sim/ control API.

use std::collections::{BTreeSet, HashSet};

use reqwest::Method;
use serde_json::{Value, json};

use crate::org::{Org, V, error_code, recent_range, values_of};

fn recorded(name: &str) -> Value {
    let p = std::path::Path::new(&crate::manifest_dir())
        .join("../../fixtures/recorded")
        .join(name);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).expect("recorded json")
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().expect("object").keys().cloned().collect()
}

#[tokio::test]
async fn credentials_point_at_a_private_key_that_lives_with_the_server() {
    let org = Org::start(1).await;
    let c = org.sim.credentials.clone();
    assert_eq!(c.base_url, org.sim.base_url);
    assert!(c.login_url.starts_with("http://127.0.0.1:") && c.login_url != c.base_url);
    let key = std::fs::read_to_string(&c.private_key_path).expect("key file");
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));
    let line = serde_json::to_value(&c).unwrap();
    assert_eq!(
        keys(&line),
        [
            "base_url",
            "login_url",
            "client_id",
            "client_secret",
            "refresh_token",
            "username",
            "private_key_path"
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    );
    drop(org);
    assert!(
        !std::path::Path::new(&c.private_key_path).exists(),
        "removed at shutdown"
    );
}

#[tokio::test]
async fn versions_list_needs_no_auth_and_has_no_limit_header() {
    let org = Org::start(1).await;
    let r = org
        .http
        .get(org.url("/services/data/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("sforce-limit-info").is_none());
    let v: Value = r.json().await.unwrap();
    let rec = recorded("services_data_versions.json");
    assert_eq!(keys(&v[0]), keys(&rec[0]));
    assert_eq!(v[0], rec[0], "v31.0 entry identical to the recorded one");
    let last = v.as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        last,
        json!({"label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0"})
    );
    // A retired version is gone (410), one never offered not found (404), and a resource
    // asked for in a version before the one that brought it does not exist there.
    for (path, status) in [
        ("/services/data/v20.0/sobjects", 410),
        ("/services/data/v30.0/query?q=SELECT+Id+FROM+Account", 410),
        ("/services/data/v99.0/sobjects", 404),
        ("/services/data/v38/sobjects", 404),
        ("/services/data/v46.0/jobs/query", 404),
        ("/services/data/v47.0/jobs/query", 200),
        ("/services/data/v40.0/jobs/ingest", 404),
        ("/services/data/v41.0/jobs/ingest", 200),
        ("/services/data/v31.0/query?q=SELECT+Id+FROM+Account", 200),
    ] {
        let r = org.send_at(Method::GET, path, None).await;
        assert_eq!(r.status(), status, "{path}");
        if status != 200 {
            error_code(&r.json().await.unwrap(), "NOT_FOUND");
        }
    }
    // sObject Collections: delete since 42.0, upsert since 46.0.
    let delete = "composite/sobjects?ids=001000000000000AAA";
    let upsert = "composite/sobjects/Lead/External_Id__c";
    let record = json!({"allOrNone": false, "records": [
        {"attributes": {"type": "Lead"}, "External_Id__c": "V-1", "LastName": "V", "Company": "C"}
    ]});
    for (method, version, path, body, status) in [
        (Method::DELETE, "v41.0", delete, None, 404),
        (Method::DELETE, "v42.0", delete, None, 200),
        (Method::PATCH, "v45.0", upsert, Some(&record), 404),
        (Method::PATCH, "v46.0", upsert, Some(&record), 200),
    ] {
        let path = format!("/services/data/{version}/{path}");
        let r = org.send_at(method, &path, body).await;
        assert_eq!(r.status(), status, "{path}");
    }
}

#[tokio::test]
async fn describe_shapes_match_recorded_org_responses() {
    let org = Org::start(1).await;
    let lead_rec = recorded("describe_Lead_v59.json");
    let field_keys = keys(&lead_rec["fields"][0]);
    let mut types = HashSet::new();
    for (obj, rec_file) in [
        ("Account", Some("describe_Account_v53.json")),
        ("Contact", Some("describe_Contact_v40.json")),
        ("Lead", Some("describe_Lead_v59.json")),
        ("Opportunity", Some("describe_Opportunity_vxx.json")),
        ("Task", Some("describe_Task_v37.json")),
        ("User", None),
        ("Attachment", None),
        ("Score__c", None),
    ] {
        let r = org.get(&format!("sobjects/{obj}/describe")).await;
        assert_eq!(r.status(), 200);
        let limit = r.headers()["sforce-limit-info"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            limit.starts_with("api-usage=") && limit.ends_with("/15000"),
            "{limit}"
        );
        let d: Value = r.json().await.unwrap();
        assert_eq!(keys(&d), keys(&lead_rec), "{obj}: top-level describe keys");
        assert_eq!(
            d["urls"]["describe"],
            format!("/services/data/{V}/sobjects/{obj}/describe")
        );
        let rec_fields: Vec<Value> = rec_file
            .map(|f| recorded(f)["fields"].as_array().unwrap().clone())
            .unwrap_or_default();
        for f in d["fields"].as_array().unwrap() {
            assert_eq!(keys(f), field_keys, "{obj}.{}: field keys", f["name"]);
            types.insert(f["type"].as_str().unwrap().to_string());
            if let Some(rf) = rec_fields.iter().find(|r| r["name"] == f["name"]) {
                for k in [
                    "type",
                    "soapType",
                    "length",
                    "precision",
                    "scale",
                    "compoundFieldName",
                    "relationshipName",
                ] {
                    assert_eq!(f[k], rf[k], "{obj}.{}: {k} as recorded", f["name"]);
                }
            }
            if let Some(c) = f["compoundFieldName"].as_str() {
                assert!(
                    d["fields"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|x| x["name"] == c),
                    "{obj}: compound {c}"
                );
            }
        }
        if obj == "Lead" || obj == "Contact" {
            let find = |n: &str| {
                d["fields"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|f| f["name"] == n)
                    .cloned()
                    .unwrap()
            };
            let score = find("Score__c");
            assert_eq!(
                (
                    score["type"].clone(),
                    score["precision"].clone(),
                    score["scale"].clone()
                ),
                (json!("double"), json!(5), json!(2))
            );
            assert_eq!(find("Score_Reason__c")["type"], "textarea");
            let ext = find("External_Id__c");
            assert_eq!(
                (
                    ext["type"].clone(),
                    ext["externalId"].clone(),
                    ext["unique"].clone()
                ),
                (json!("string"), json!(true), json!(true))
            );
        }
    }
    for t in [
        "id",
        "reference",
        "string",
        "textarea",
        "picklist",
        "multipicklist",
        "combobox",
        "boolean",
        "int",
        "long",
        "double",
        "currency",
        "percent",
        "date",
        "datetime",
        "time",
        "email",
        "phone",
        "url",
        "base64",
        "address",
        "location",
        "encryptedstring",
        "anyType",
    ] {
        assert!(types.contains(t), "field type {t} appears in some describe");
    }
    // describeGlobal: same entry keys as the recorded one, our objects listed.
    let (s, g) = org.get_json("sobjects").await;
    assert_eq!(s, 200);
    let rec = recorded("describeGlobal_v46.json");
    assert_eq!(keys(&g), keys(&rec));
    assert_eq!(g["maxBatchSize"], 200);
    let names: Vec<&str> = g["sobjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    for s in g["sobjects"].as_array().unwrap() {
        assert_eq!(keys(s), keys(&rec["sobjects"][0]));
    }
    for o in [
        "Account",
        "Contact",
        "Lead",
        "Opportunity",
        "User",
        "Task",
        "Attachment",
        "Score__c",
    ] {
        assert!(names.contains(&o), "{o} in describeGlobal");
    }
    let r = org.get("no/such/resource").await;
    assert_eq!(r.status(), 404);
    assert!(r.headers().get("sforce-limit-info").is_some());
    error_code(&r.json().await.unwrap(), "NOT_FOUND");
    let r = org.send_json(Method::PUT, "limits", &json!({})).await;
    assert_eq!(r.status(), 405);
    error_code(&r.json().await.unwrap(), "METHOD_NOT_ALLOWED");
    let (s, body) = org.get_json("sobjects/Nope__c/describe").await;
    assert_eq!(s, 404);
    error_code(&body, "NOT_FOUND");
}

#[tokio::test]
async fn query_pages_follow_next_records_url_with_batch_size() {
    let org = Org::start(100).await; // 300 Contacts
    let r = org
        .http
        .get(org.data("query"))
        .query(&[("q", "SELECT Id, Name, Account.Name FROM Contact")])
        .header("Sforce-Query-Options", "batchSize=200")
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let p1: Value = r.json().await.unwrap();
    let rec = recorded("query_Account_page1_of3_v59.json");
    assert_eq!(keys(&p1), keys(&rec));
    assert_eq!(p1["totalSize"], 300);
    assert_eq!(p1["done"], false);
    assert_eq!(p1["records"].as_array().unwrap().len(), 200);
    let next = p1["nextRecordsUrl"].as_str().unwrap().to_string();
    assert!(
        next.starts_with(&format!("/services/data/{V}/query/01g")) && next.ends_with("-200"),
        "{next}"
    );
    let first = &p1["records"][0];
    assert_eq!(
        keys(&first["attributes"]),
        keys(&rec["records"][0]["attributes"])
    );
    assert_eq!(
        first["attributes"]["url"],
        format!(
            "/services/data/{V}/sobjects/Contact/{}",
            first["Id"].as_str().unwrap()
        )
    );
    let r2: Value = org
        .http
        .get(org.url(&next))
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r2["done"], true);
    assert!(r2.get("nextRecordsUrl").is_none());
    assert_eq!(r2["records"].as_array().unwrap().len(), 100);
    let ids: HashSet<String> = p1["records"]
        .as_array()
        .unwrap()
        .iter()
        .chain(r2["records"].as_array().unwrap())
        .map(|r| r["Id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 300);
    for id in &ids {
        assert_eq!(id.len(), 18);
        assert!(id.starts_with("003"));
    }
    // Parent relationship: nested object with attributes, or null.
    for r in p1["records"].as_array().unwrap() {
        match &r["Account"] {
            Value::Null => {}
            a => {
                assert_eq!(a["attributes"]["type"], "Account");
                assert!(a["Name"].is_string());
            }
        }
    }
    let r = org
        .http
        .get(org.url(&format!("/services/data/{V}/query/01gNOPE-200")))
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    error_code(&r.json().await.unwrap(), "INVALID_QUERY_LOCATOR");
}

#[tokio::test]
async fn soql_filters_order_limit_and_values() {
    let org = Org::start(50).await;
    let (s, v) = org
        .query("SELECT Id, Name, AnnualRevenue, IsConverted, CreatedDate, Score__c FROM Lead WHERE (Score__c >= 10.5 AND Score__c < 500) OR IsConverted = true ORDER BY Score__c DESC NULLS LAST, Id LIMIT 30")
        .await;
    assert_eq!(s, 200, "{v}");
    let recs = v["records"].as_array().unwrap();
    assert!(!recs.is_empty() && recs.len() <= 30);
    let mut prev = f64::MAX;
    for r in recs {
        let score = r["Score__c"].as_f64();
        assert!(
            r["IsConverted"] == true || score.is_some_and(|x| (10.5..500.0).contains(&x)),
            "{r}"
        );
        if let Some(x) = score {
            assert!(x <= prev, "descending");
            prev = x;
        }
        let cd = r["CreatedDate"].as_str().unwrap();
        assert!(cd.len() == 28 && cd.ends_with(".000+0000"), "{cd}");
    }
    let (_, all) = org.query("SELECT Id FROM Lead").await;
    let (_, some) = org.query("SELECT Id FROM Lead WHERE LastName IN ('Turing', 'Hopper') AND Email LIKE '%example.com'").await;
    assert!(some["totalSize"].as_u64().unwrap() < all["totalSize"].as_u64().unwrap());
    let (_, like) = org
        .query("SELECT Id, LastName FROM Lead WHERE LastName LIKE 'tur%'")
        .await;
    for r in like["records"].as_array().unwrap() {
        assert!(
            r["LastName"]
                .as_str()
                .unwrap()
                .to_lowercase()
                .starts_with("tur")
        );
    }
    let since = "2020-01-01T00:00:00.000+0000";
    let (s, dt) = org.query(&format!("SELECT Id, SystemModstamp, LastModifiedDate FROM Account WHERE SystemModstamp > {since} ORDER BY SystemModstamp")).await;
    assert_eq!(s, 200);
    for r in dt["records"].as_array().unwrap() {
        let sm = r["SystemModstamp"].as_str().unwrap();
        assert!(sm > since);
        assert!(
            sm >= r["LastModifiedDate"].as_str().unwrap(),
            "SystemModstamp >= LastModifiedDate"
        );
    }
    // JSON answers are gzip-compressed when the client asks.
    let r = org
        .raw
        .get(org.data("query"))
        .query(&[("q", "SELECT Id FROM Contact LIMIT 3")])
        .header("Accept-Encoding", "gzip")
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let gz = r.bytes().await.unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut text).unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["totalSize"],
        3
    );
    let r = org
        .raw
        .get(org.data("limits"))
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("content-encoding").is_none());
    let (_, c) = org.query("SELECT COUNT() FROM Contact").await;
    assert_eq!(c, json!({"totalSize": 150, "done": true, "records": []}));
    let (_, n) = org
        .query("SELECT Id FROM Contact WHERE AccountId = null")
        .await;
    let (_, nn) = org
        .query("SELECT Id FROM Contact WHERE AccountId != null")
        .await;
    assert_eq!(
        n["totalSize"].as_u64().unwrap() + nn["totalSize"].as_u64().unwrap(),
        150
    );
    // Addresses come back as objects with Salesforce's keys.
    let (_, a) = org
        .query("SELECT Id, BillingAddress FROM Account LIMIT 5")
        .await;
    let rec = recorded("sobject_Account_get_record_v62.json");
    for r in a["records"].as_array().unwrap() {
        if !r["BillingAddress"].is_null() {
            assert_eq!(keys(&r["BillingAddress"]), keys(&rec["BillingAddress"]));
        }
    }
}

#[tokio::test]
async fn soql_errors_use_salesforce_codes_and_messages() {
    let org = Org::start(1).await;
    let (s, v) = org.query("SELECT Id, Nope__c FROM Account").await;
    assert_eq!(s, 400);
    let m = error_code(&v, "INVALID_FIELD");
    assert_eq!(
        m,
        "\nSELECT Id, Nope__c FROM Account\n           ^\nERROR at Row:1:Column:12\nNo such column 'Nope__c' on entity 'Account'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names."
    );
    // Same caret/Row/Column style as the recorded INVALID_TYPE error.
    let (s, v) = org.query("select count() from XYZZY").await;
    assert_eq!(s, 400);
    let rec = recorded("composite_query_errors_INVALID_TYPE.json");
    assert_eq!(v, rec["compositeResponse"][1]["body"]);
    let (s, v) = org.query("SELECT Id FROM Account GROUP BY Name").await;
    assert_eq!(s, 400);
    assert!(error_code(&v, "MALFORMED_QUERY").ends_with("Field must be grouped or aggregated: Id"));
    let (s, v) = org.query("SELECT FIELDS(ALL) FROM Account").await;
    assert_eq!(s, 400);
    error_code(&v, "MALFORMED_QUERY");
    let (s, v) = org
        .query("SELECT Id FROM Account WHERE CreatedDate > '2020-01-01'")
        .await;
    assert_eq!(s, 400);
    assert!(
        error_code(&v, "INVALID_FIELD")
            .contains("must be of type dateTime and should not be enclosed in quotes")
    );
    let (s, v) = org.query("SELECT Id, Foo.Name FROM Contact").await;
    assert_eq!(s, 400);
    assert!(
        error_code(&v, "INVALID_FIELD")
            .contains("Didn't understand relationship 'Foo' in field path")
    );
}

#[tokio::test]
async fn parent_paths_go_five_levels_deep_but_not_past_a_polymorphic_hop() {
    let org = Org::start(20).await;
    // Five hops (Account, then Parent four times): accepted, in SELECT, WHERE and ORDER BY.
    let five = "Account.Parent.Parent.Parent.Parent.Name";
    let (s, v) = org
        .query(&format!(
            "SELECT Id, {five} FROM Contact WHERE {five} = null ORDER BY {five} LIMIT 2"
        ))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["records"].as_array().unwrap().len(), 2);
    // Six hops: refused at the path, as MALFORMED_QUERY.
    let soql = "SELECT Id, Account.Parent.Parent.Parent.Parent.Parent.Name FROM Contact";
    let (s, v) = org.query(soql).await;
    assert_eq!(s, 400);
    let m = error_code(&v, "MALFORMED_QUERY");
    assert!(
        m.starts_with(&format!(
            "\n{soql}\n           ^\nERROR at Row:1:Column:12\n"
        )),
        "{m}"
    );
    // A polymorphic hop (Lead.Owner: Group or User) cannot be followed further.
    let soql = "SELECT Id, Owner.Manager.Name FROM Lead";
    let (s, v) = org.query(soql).await;
    assert_eq!(s, 400);
    assert_eq!(
        error_code(&v, "INVALID_FIELD"),
        format!(
            "\n{soql}\n           ^\nERROR at Row:1:Column:12\nNo such column 'Manager' on entity 'Name'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names."
        )
    );
    // A bad field or relationship at the second hop names the second hop's object.
    let (s, v) = org.query("SELECT Account.Owner.Nope FROM Contact").await;
    assert_eq!(s, 400);
    assert!(error_code(&v, "INVALID_FIELD").contains("No such column 'Nope' on entity 'User'"));
    let (s, v) = org.query("SELECT Account.Foo.Name FROM Contact").await;
    assert_eq!(s, 400);
    assert!(
        error_code(&v, "INVALID_FIELD")
            .contains("Didn't understand relationship 'Foo' in field path")
    );
}

#[tokio::test]
async fn query_all_sees_the_recycle_bin_and_purge_empties_it() {
    let org = Org::start(20).await;
    let del = org
        .control("delete", &json!({"object": "Account", "count": 3}))
        .await;
    let ids: Vec<String> = del["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 3);
    // Their Contacts, Opportunities, Tasks and Attachments went to the recycle bin with them.
    let cascaded = del["cascaded"].as_array().unwrap().len();
    let (_, live) = org.query("SELECT Id FROM Account").await;
    assert_eq!(live["totalSize"], 17);
    let r = org
        .http
        .get(org.data("queryAll"))
        .query(&[(
            "q",
            "SELECT Id, IsDeleted FROM Account WHERE IsDeleted = true",
        )])
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap();
    let all: Value = r.json().await.unwrap();
    let got: HashSet<String> = values_of(&all["records"], "Id");
    assert_eq!(got, ids.iter().cloned().collect());
    // The replication API lists them too (within the range rules: at most 30 days, within the
    // delete log's 15 days).
    let range = recent_range();
    let (s, d) = org
        .get_json(&format!("sobjects/Account/deleted/?{range}"))
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        keys(&d),
        [
            "deletedRecords",
            "earliestDateAvailable",
            "latestDateCovered"
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    );
    assert_eq!(d["deletedRecords"].as_array().unwrap().len(), 3);
    assert_eq!(
        keys(&d["deletedRecords"][0]),
        ["deletedDate", "id"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    let (s, u) = org
        .get_json(&format!("sobjects/Account/updated/?{range}"))
        .await;
    assert_eq!(s, 200);
    assert_eq!(u["ids"], json!([]), "generated rows are older");
    org.control("touch", &json!({"object": "Account", "count": 2}))
        .await;
    let (_, u) = org
        .get_json(&format!("sobjects/Account/updated/?{range}"))
        .await;
    assert_eq!(u["ids"].as_array().unwrap().len(), 2);
    let (s, bad) = org
        .get_json("sobjects/Account/updated/?start=yesterday")
        .await;
    assert_eq!(s, 400);
    error_code(&bad, "INVALID_REPLICATION_DATE");
    let purged = org.control("purge", &json!({})).await;
    assert_eq!(purged["ids"].as_array().unwrap().len(), 3 + cascaded);
    // Hard deletes stay in the delete log (until it is purged).
    let (_, d) = org
        .get_json(&format!("sobjects/Account/deleted/?{range}"))
        .await;
    assert_eq!(d["deletedRecords"].as_array().unwrap().len(), 3);
    let (_, all) = org.query("SELECT Id FROM Account").await;
    assert_eq!(all["totalSize"], 17);
    let r = org
        .http
        .get(org.data("queryAll"))
        .query(&[("q", "SELECT Id FROM Account")])
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["totalSize"], 17);
}

#[tokio::test]
async fn touch_bumps_system_modstamp_only() {
    let org = Org::start(5).await;
    let t = org
        .control("touch", &json!({"object": "Contact", "count": 2}))
        .await;
    let id = t["ids"][0].as_str().unwrap().to_string();
    let (s, rec) = org.get_json(&format!("sobjects/Contact/{id}")).await;
    assert_eq!(s, 200);
    assert!(rec["SystemModstamp"].as_str().unwrap() > rec["LastModifiedDate"].as_str().unwrap());
    assert!(rec["SystemModstamp"].as_str().unwrap() > "2026");
    // Explicit ids and a late commit stamp (never before LastModifiedDate).
    let late = org
        .control(
            "touch",
            &json!({"object": "Contact", "ids": [id], "stamp": "2000-01-01T00:00:00.000+0000"}),
        )
        .await;
    assert_eq!(late["ids"], json!([id]));
    let (_, rec) = org.get_json(&format!("sobjects/Contact/{id}")).await;
    assert_eq!(rec["SystemModstamp"], rec["LastModifiedDate"]);
    let r = org
        .http
        .post(org.url("/__sim/delete"))
        .json(&json!({"object": "Contact", "ids": ["003NOPE"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let stored: Value = org
        .http
        .get(org.url(&format!("/__sim/record/Contact/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stored["SystemModstamp"], rec["SystemModstamp"]);
}

#[tokio::test]
async fn record_get_patch_and_errors() {
    let org = Org::start(5).await;
    let (_, q) = org.query("SELECT Id FROM Lead LIMIT 1").await;
    let id = q["records"][0]["Id"].as_str().unwrap().to_string();
    let (s, rec) = org.get_json(&format!("sobjects/Lead/{id}")).await;
    assert_eq!(s, 200);
    let recorded_rec = recorded("sobject_Account_get_record_v62.json");
    assert_eq!(keys(&rec["attributes"]), keys(&recorded_rec["attributes"]));
    assert!(
        rec.get("Address").is_some() && rec.get("Score__c").is_some() && rec["IsDeleted"] == false
    );
    let r = org
        .send_json(
            Method::PATCH,
            &format!("sobjects/Lead/{id}"),
            &json!({"Score__c": 87.456, "Score_Reason__c": "hot, \"very\"\nlead"}),
        )
        .await;
    assert_eq!(r.status(), 204);
    let (_, rec2) = org
        .get_json(&format!(
            "sobjects/Lead/{id}?fields=Score__c,Score_Reason__c,LastModifiedDate,SystemModstamp"
        ))
        .await;
    assert_eq!(rec2["Score__c"], 87.46);
    assert_eq!(rec2["Score_Reason__c"], "hot, \"very\"\nlead");
    assert_eq!(rec2["SystemModstamp"], rec2["LastModifiedDate"]);
    assert!(rec2.get("Name").is_none());
    // An empty string clears a text field: it reads back null, as a blank field does.
    let r = org
        .send_json(
            Method::PATCH,
            &format!("sobjects/Lead/{id}"),
            &json!({"Score_Reason__c": ""}),
        )
        .await;
    assert_eq!(r.status(), 204);
    let (_, rec3) = org
        .get_json(&format!("sobjects/Lead/{id}?fields=Score_Reason__c"))
        .await;
    assert_eq!(rec3["Score_Reason__c"], Value::Null);
    for (body, code) in [
        (json!({"Nope__c": 1}), "INVALID_FIELD"),
        (json!({"Score__c": 1234.5}), "NUMBER_OUTSIDE_VALID_RANGE"),
        (
            json!({"Score__c": "abc"}),
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
        ),
        (json!({"External_Id__c": "x".repeat(41)}), "STRING_TOO_LONG"),
        (json!({"LastName": null}), "REQUIRED_FIELD_MISSING"),
        (json!({"LastName": ""}), "REQUIRED_FIELD_MISSING"),
        (json!({"Address": "x"}), "INVALID_FIELD_FOR_INSERT_UPDATE"),
        (json!({"OwnerId": "001000000000000"}), "MALFORMED_ID"),
    ] {
        let r = org
            .send_json(Method::PATCH, &format!("sobjects/Lead/{id}"), &body)
            .await;
        assert_eq!(r.status(), 400, "{body}");
        let v: Value = r.json().await.unwrap();
        error_code(&v, code);
        assert!(v[0]["fields"].is_array());
    }
    let (s, v) = org.get_json("sobjects/Lead/00Q5g00000zzzzzAAA").await;
    assert_eq!(s, 404);
    error_code(&v, "NOT_FOUND");
    let r = org
        .send_json(
            Method::POST,
            "sobjects/Lead",
            &json!({"LastName": "Nouveau", "Company": "Ÿ Corp"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["success"], true);
    assert_eq!(created["errors"], json!([]));
    assert!(created["id"].as_str().unwrap().starts_with("00Q"));
}

#[tokio::test]
async fn sobject_collections_create_update_upsert_all_or_none() {
    let org = Org::start(5).await;
    let r = org
        .send_json(
            Method::POST,
            "composite/sobjects",
            &json!({"allOrNone": false, "records": [
                {"attributes": {"type": "Contact"}, "LastName": "One", "External_Id__c": "E-1"},
                {"attributes": {"type": "Contact"}, "FirstName": "NoLast"},
            ]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v[0]["success"], true);
    assert_eq!(v[0]["errors"], json!([]));
    let id = v[0]["id"].as_str().unwrap().to_string();
    assert_eq!(v[1]["success"], false);
    assert_eq!(v[1]["errors"][0]["statusCode"], "REQUIRED_FIELD_MISSING");
    assert_eq!(
        keys(&v[1]["errors"][0]),
        ["fields", "message", "statusCode"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    let r = org
        .send_json(
            Method::PATCH,
            "composite/sobjects",
            &json!({"records": [{"attributes": {"type": "Contact"}, "id": id, "Score__c": 3.5}]}),
        )
        .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v, json!([{"id": id, "success": true, "errors": []}]));
    let r = org
        .send_json(
            Method::PATCH,
            "composite/sobjects/Contact/External_Id__c",
            &json!({"allOrNone": false, "records": [
                {"attributes": {"type": "Contact"}, "External_Id__c": "E-1", "Score__c": 9},
                {"attributes": {"type": "Contact"}, "External_Id__c": "E-2", "LastName": "Two"},
            ]}),
        )
        .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v[0],
        json!({"id": id, "success": true, "errors": [], "created": false})
    );
    assert_eq!(v[1]["created"], true);
    let recorded_err = recorded("error_composite_sobjects_upsert_JSON_PARSER_ERROR.json");
    let r = org
        .send_json(
            Method::PATCH,
            "composite/sobjects/Contact/External_Id__c",
            &json!({"allOrNone": true, "records": [
                {"attributes": {"type": "Contact"}, "External_Id__c": "E-3", "LastName": "Three"},
                {"attributes": {"type": "Contact"}, "External_Id__c": "E-4", "Score__c": "NaNx", "LastName": "Four"},
            ]}),
        )
        .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(keys(&v[1]), keys(&recorded_err[0]));
    assert_eq!(
        v[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(
        v[1]["errors"][0]["statusCode"],
        "INVALID_TYPE_ON_FIELD_IN_RECORD"
    );
    let (_, q) = org
        .query("SELECT Id FROM Contact WHERE External_Id__c = 'E-3'")
        .await;
    assert_eq!(q["totalSize"], 0, "rolled back");
    let r = org
        .send_json(
            Method::PATCH,
            "composite/sobjects/Contact/LastName",
            &json!({"records": []}),
        )
        .await;
    assert_eq!(r.status(), 400);
    error_code(&r.json().await.unwrap(), "INVALID_FIELD");
}

#[tokio::test]
async fn sobject_collections_delete_and_row_lock_faults() {
    let org = Org::start(5).await;
    let (_, q) = org.query("SELECT Id FROM Lead ORDER BY Id LIMIT 3").await;
    let ids: Vec<&str> = q["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Id"].as_str().unwrap())
        .collect();
    org.control("fail_rows", &json!({"count": 1})).await;
    let r = org
        .send_json(
            Method::DELETE,
            &format!(
                "composite/sobjects?ids={},{},001NOTANID&allOrNone=false",
                ids[0], ids[1]
            ),
            &json!(null),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v[0]["success"], false);
    assert_eq!(v[0]["errors"][0]["statusCode"], "UNABLE_TO_LOCK_ROW");
    assert_eq!(v[1], json!({"id": ids[1], "success": true, "errors": []}));
    assert_eq!(v[2]["errors"][0]["statusCode"], "MALFORMED_ID");
    let (_, q) = org
        .query(&format!(
            "SELECT Id FROM Lead WHERE Id IN ('{}','{}')",
            ids[0], ids[1]
        ))
        .await;
    assert_eq!(
        q["totalSize"], 1,
        "only the unlocked record went to the recycle bin"
    );
    let r = org
        .send_json(
            Method::DELETE,
            &format!("composite/sobjects?ids={},{}", ids[1], ids[2]),
            &json!(null),
        )
        .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v[0]["errors"][0]["statusCode"], "ENTITY_IS_DELETED");
    assert_eq!(v[1]["success"], true);
}

#[tokio::test]
async fn limits_quota_and_limit_info_header() {
    let org = Org::start(1).await;
    let (s, l) = org.get_json("limits").await;
    assert_eq!(s, 200);
    let rec = recorded("limits_v60.json");
    for k in [
        "DailyApiRequests",
        "DailyBulkV2QueryJobs",
        "DailyBulkV2QueryFileStorageMB",
        "DailyBulkApiBatches",
    ] {
        assert_eq!(keys(&l[k]), keys(&rec[k]), "{k}");
    }
    org.control("quota", &json!({"max": 10, "used": 9})).await;
    let r = org.get("limits").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["sforce-limit-info"], "api-usage=10/10");
    let r = org.get("sobjects").await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["sforce-limit-info"], "api-usage=10/10");
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        error_code(&v, "REQUEST_LIMIT_EXCEEDED"),
        "TotalRequests Limit exceeded."
    );
}

#[tokio::test]
async fn stats_and_fault_injection() {
    let org = Org::start(2).await;
    org.http
        .post(org.url("/__sim/stats/reset"))
        .send()
        .await
        .unwrap();
    org.get("sobjects/Account/describe").await;
    org.query("SELECT Id FROM Account").await;
    let stats: Value = org
        .http
        .get(org.url("/__sim/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["by_kind"]["describe"], 1);
    assert_eq!(stats["by_kind"]["query"], 1);
    assert_eq!(stats["by_kind"]["bulk_query"], 0);
    assert_eq!(stats["total"], 2);
    // The SOQL of each REST query since the reset, a malformed one too; a reset empties it.
    org.query_all("SELECT Id FROM Contact WHERE IsDeleted = true")
        .await;
    org.query("SELECT FROM").await;
    assert_eq!(
        org.get_json_url("/__sim/queries").await,
        json!({"queries": ["SELECT Id FROM Account", "SELECT Id FROM Contact WHERE IsDeleted = true", "SELECT FROM"]})
    );
    org.control("stats/reset", &json!({})).await;
    assert_eq!(
        org.get_json_url("/__sim/queries").await,
        json!({"queries": []})
    );
    org.control("fail", &json!({"kind": "query", "count": 2, "status": 503}))
        .await;
    for _ in 0..2 {
        let (s, v) = org.query("SELECT Id FROM Account").await;
        assert_eq!(s, 503);
        error_code(&v, "SERVER_UNAVAILABLE");
    }
    assert_eq!(org.query("SELECT Id FROM Account").await.0, 200);
    org.control("fail", &json!({"kind": "collections", "count": 1, "status": 400, "error_code": "UNABLE_TO_LOCK_ROW"})).await;
    let r = org
        .send_json(Method::POST, "composite/sobjects", &json!({"records": []}))
        .await;
    assert_eq!(r.status(), 400);
    error_code(&r.json().await.unwrap(), "UNABLE_TO_LOCK_ROW");
    org.control("fail", &json!({"kind": "any", "count": 1, "status": 429}))
        .await;
    let r = org.get("limits").await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_some());
    org.control(
        "fail",
        &json!({"kind": "describe", "count": 1, "status": 500}),
    )
    .await;
    let (s, v) = org.get_json("sobjects").await;
    assert_eq!(s, 500);
    error_code(&v, "UNKNOWN_EXCEPTION");
    // A body cut off midway: the client sees a broken body, then the next call is whole.
    org.control("cut", &json!({"kind": "query", "count": 1}))
        .await;
    let sent = org
        .http
        .get(org.data("query"))
        .query(&[("q", "SELECT Id, Name FROM Account")])
        .bearer_auth(&org.token)
        .send()
        .await;
    match sent {
        // Headers and half the body went out, then the connection broke.
        Ok(r) => assert!(r.bytes().await.is_err(), "truncated body must fail to read"),
        // Or the break came before the client had finished reading the head.
        Err(e) => assert!(e.is_request() || e.is_body(), "{e}"),
    }
    assert_eq!(org.query("SELECT Id, Name FROM Account").await.0, 200);
    org.control("latency", &json!({"ms": 1})).await;
    assert_eq!(org.get("limits").await.status(), 200);
    org.control("expire_tokens", &json!({})).await;
    org.control("faults/clear", &json!({})).await;
}

#[tokio::test]
async fn generator_is_deterministic_and_awkward() {
    let a = Org::start(30).await;
    let b = Org::start(30).await;
    let soql = "SELECT Id, Name, Description, Phone, Email, MailingPostalCode, Score__c, SystemModstamp, LastModifiedDate, Account.Name FROM Contact ORDER BY Id";
    let (_, x) = a.query(soql).await;
    let (_, y) = b.query(soql).await;
    assert_eq!(x["records"], y["records"], "same scale and seed, same rows");
    let recs = x["records"].as_array().unwrap();
    assert_eq!(recs.len(), 90);
    let text: Vec<String> = recs
        .iter()
        .flat_map(|r| {
            ["Description", "Phone", "Email", "MailingPostalCode"].map(|k| r[k].to_string())
        })
        .collect();
    assert!(recs.iter().any(|r| r["Description"].is_null()), "nulls");
    assert!(text.iter().any(|t| t.contains("\\\"")), "quotes");
    assert!(text.iter().any(|t| t.contains("\\n")), "newlines");
    assert!(text.iter().any(|t| !t.is_ascii()), "non-ASCII");
    let (_, acc) = a.query("SELECT Id, Name, Description, Phone, BillingCity, BillingCountry, BillingPostalCode FROM Account").await;
    let (_, lead) = a
        .query("SELECT Id, Title, Company, City, Country, PostalCode, Description FROM Lead")
        .await;
    let all: String = format!("{acc}{lead}{x}");
    for needle in ["\"N/A\"", "\"NA\"", "\"01234\""] {
        assert!(all.contains(needle), "generated data contains {needle}");
    }
    // The awkward values include an empty string, which Salesforce stores as null: REST
    // answers null, never "".
    let values = [&acc, &lead, &x]
        .into_iter()
        .flat_map(|page| page["records"].as_array().unwrap())
        .flat_map(|r| r.as_object().unwrap().values());
    assert!(
        values.clone().all(|v| v != ""),
        "no empty text in REST JSON"
    );
    assert!(values.filter(|v| v.is_null()).count() > 20, "nulls");
    let mut stamps = std::collections::HashMap::new();
    for r in recs {
        assert!(r["SystemModstamp"].as_str().unwrap() >= r["LastModifiedDate"].as_str().unwrap());
        *stamps
            .entry(r["SystemModstamp"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    assert!(
        stamps.values().any(|&n| n >= 5),
        "many rows share one SystemModstamp"
    );
}

#[tokio::test]
async fn value_formats_polymorphic_parents_formulas_and_compounds() {
    let org = Org::start(40).await;
    // Polymorphic parent: attributes.type "Name", as recorded for Case.Owner.
    let (s, t) = org
        .query("SELECT Id, Who.Name, What.Id, Owner.Name FROM Task WHERE WhoId != null LIMIT 5")
        .await;
    assert_eq!(s, 200, "{t}");
    let rec = recorded("query_Case_nested_relationships_subquery_v60.json");
    assert_eq!(rec["records"][0]["Owner"]["attributes"]["type"], "Name");
    for r in t["records"].as_array().unwrap() {
        assert_eq!(r["Who"]["attributes"]["type"], "Name");
        let url = r["Who"]["attributes"]["url"].as_str().unwrap();
        assert!(
            url.contains("/sobjects/Contact/") || url.contains("/sobjects/Lead/"),
            "{url}"
        );
        assert_eq!(r["Owner"]["attributes"]["type"], "User");
    }
    let (s, bad) = org.query("SELECT Who.Email FROM Task").await;
    assert_eq!(s, 400);
    error_code(&bad, "INVALID_FIELD");
    // Formula: Weighted_Amount__c = Amount * Probability / 100.
    let (_, o) = org.query("SELECT Amount, Probability, Weighted_Amount__c FROM Opportunity WHERE Amount != null AND Probability != null LIMIT 10").await;
    for r in o["records"].as_array().unwrap() {
        let want = r["Amount"].as_f64().unwrap() * r["Probability"].as_f64().unwrap() / 100.0;
        assert!(
            (r["Weighted_Amount__c"].as_f64().unwrap() - want).abs() < 0.01,
            "{r}"
        );
    }
    // Location compound, time, long, multipicklist values.
    let (_, sc) = org.query("SELECT Id, Site__c, Site__Latitude__s, Review_Time__c, Token_Count__c, Tags__c FROM Score__c WHERE Site__Latitude__s != null LIMIT 5").await;
    let r = &sc["records"][0];
    assert_eq!(
        keys(&r["Site__c"]),
        ["latitude", "longitude"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    assert_eq!(r["Site__c"]["latitude"], r["Site__Latitude__s"]);
    if let Some(t) = r["Review_Time__c"].as_str() {
        assert!(t.len() == 13 && t.ends_with(".000Z"), "{t}");
    }
    assert!(
        sc["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["Token_Count__c"].is_i64())
    );
    // Deleted rows: 404 ENTITY_IS_DELETED over REST, still readable through /__sim/record.
    let del = org
        .control("delete", &json!({"object": "Lead", "count": 1}))
        .await;
    let id = del["ids"][0].as_str().unwrap();
    let (s, v) = org.get_json(&format!("sobjects/Lead/{id}")).await;
    assert_eq!(s, 404);
    error_code(&v, "ENTITY_IS_DELETED");
    let stored: Value = org
        .http
        .get(org.url(&format!("/__sim/record/Lead/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stored["IsDeleted"], true);
    // 15-character ids are accepted and answered with the 18-character form.
    let (s, v) = org.get_json(&format!("sobjects/Lead/{}", &id[..15])).await;
    assert_eq!(s, 404, "{v}");
    let (_, q) = org.query("SELECT Id FROM Account LIMIT 1").await;
    let acc = q["records"][0]["Id"].as_str().unwrap();
    let (s, v) = org
        .get_json(&format!("sobjects/Account/{}", &acc[..15]))
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["Id"], acc);
}

#[tokio::test]
async fn soql_edge_cases() {
    let org = Org::start(20).await;
    // Escapes, NOT IN, NOT, nested parentheses, NULLS FIRST, relationship in WHERE and ORDER BY.
    let (s, v) = org
        .query(
            "select id, lastname from contact where (lastname = 'O\\'Neil' or (not lastname in ('Li', 'Khan') and account.name != null)) order by account.name nulls first, lastname desc limit 7",
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(v["records"].as_array().unwrap().len() <= 7);
    for r in v["records"].as_array().unwrap() {
        assert!(
            r.get("LastName").is_some(),
            "canonical field names in the answer: {r}"
        );
        let ln = r["LastName"].as_str().unwrap_or("");
        assert!(ln != "Li" && ln != "Khan" || ln == "O'Neil");
    }
    // Multi-line query: Row and Column of the offending token.
    let (s, v) = org.query("SELECT Id,\n  Bogus\nFROM Account").await;
    assert_eq!(s, 400);
    let m = error_code(&v, "INVALID_FIELD");
    assert!(m.contains("ERROR at Row:2:Column:3"), "{m}");
    for q in [
        "SELECT Id FROM Account LIMIT ten",
        "SELECT Id FROM Account WHERE",
        "SELECT Id FROM Account WHERE Name = 'x' garbage",
        "SELECT Id FROM Account OFFSET 5",
        "SELECT Id, (SELECT Id FROM Contacts) FROM Account",
        "SELECT Id FROM Account WHERE Name = 'unterminated",
        "SELECT FROM Account",
        "DELETE FROM Account",
    ] {
        let (s, v) = org.query(q).await;
        assert_eq!(s, 400, "{q}");
        error_code(&v, "MALFORMED_QUERY");
    }
    let (s, v) = org
        .query("SELECT Id FROM Account WHERE NumberOfEmployees > 'many'")
        .await;
    assert_eq!(s, 400);
    assert!(error_code(&v, "INVALID_FIELD").contains("must be of type double"));
    let (s, v) = org
        .query("SELECT Id FROM Contact WHERE Birthdate >= 2000-01-01 AND Birthdate < 2030-01-01")
        .await;
    assert_eq!(s, 200, "{v}");
    // Multipicklists: INCLUDES / EXCLUDES with `;`-sets.
    let (s, inc) = org
        .query("SELECT Id, Tags__c FROM Score__c WHERE Tags__c INCLUDES ('hot', 'cold;review')")
        .await;
    assert_eq!(s, 200, "{inc}");
    let (_, exc) = org
        .query("SELECT Id, Tags__c FROM Score__c WHERE Tags__c EXCLUDES ('hot', 'cold;review')")
        .await;
    let (_, all) = org.query("SELECT Id FROM Score__c").await;
    assert_eq!(
        inc["totalSize"].as_u64().unwrap() + exc["totalSize"].as_u64().unwrap(),
        all["totalSize"].as_u64().unwrap()
    );
    for r in inc["records"].as_array().unwrap() {
        let tags: Vec<&str> = r["Tags__c"].as_str().unwrap().split(';').collect();
        assert!(
            tags.contains(&"hot") || tags.contains(&"cold") && tags.contains(&"review"),
            "{r}"
        );
    }
    let (s, v) = org
        .query("SELECT Id FROM Score__c WHERE Name INCLUDES ('x')")
        .await;
    assert_eq!(s, 400);
    error_code(&v, "INVALID_FIELD");
    // Relative date literals: a row touched now is modified TODAY and within LAST_N_DAYS:1.
    let t = org
        .control("touch", &json!({"object": "Account", "count": 1}))
        .await;
    let touched = t["ids"][0].as_str().unwrap();
    // (TODAY OR YESTERDAY: still true if the test straddles midnight UTC.)
    for lit in [
        "TODAY OR SystemModstamp = YESTERDAY",
        "LAST_N_DAYS:1",
        "last_n_days:30",
    ] {
        let (s, v) = org
            .query(&format!(
                "SELECT Id FROM Account WHERE SystemModstamp = {lit}"
            ))
            .await;
        assert_eq!(s, 200, "{lit}: {v}");
        let ids: Vec<&str> = v["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["Id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [touched], "{lit}");
    }
    let (_, before) = org
        .query("SELECT Id FROM Account WHERE SystemModstamp < YESTERDAY")
        .await;
    assert_eq!(before["totalSize"], 19);
    let (_, none) = org
        .query("SELECT Id FROM Account WHERE SystemModstamp > TODAY OR CreatedDate = TOMORROW")
        .await;
    assert_eq!(none["totalSize"], 0);
    let (s, v) = org
        .query("SELECT Id FROM Account WHERE SystemModstamp = LAST_N_DAYS:x")
        .await;
    assert_eq!(s, 400);
    error_code(&v, "INVALID_FIELD");
    // Id comparisons accept 15- and 18-character ids.
    let (_, one) = org.query("SELECT Id FROM Account LIMIT 1").await;
    let id = one["records"][0]["Id"].as_str().unwrap().to_string();
    for form in [&id[..], &id[..15]] {
        let (_, v) = org
            .query(&format!("SELECT Id FROM Account WHERE Id = '{form}'"))
            .await;
        assert_eq!(v["totalSize"], 1, "{form}");
    }
    let (_, v) = org
        .query(&format!(
            "SELECT Id FROM Contact WHERE AccountId IN ('{id}')"
        ))
        .await;
    let (_, w) = org
        .query(&format!("SELECT Id FROM Contact WHERE Account.Id = '{id}'"))
        .await;
    assert_eq!(v["totalSize"], w["totalSize"]);
}

#[tokio::test]
async fn data_calls_need_a_live_session_and_locators_belong_to_it() {
    let org = Org::start(100).await; // 300 Contacts
    // No token, or a made-up one: 401 with the recorded INVALID_SESSION_ID body.
    let recorded_401 = recorded("error_invalid_session.json");
    let r = org.http.get(org.data("limits")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap(), recorded_401);
    let r = org
        .http
        .get(org.data("sobjects"))
        .bearer_auth("00Dbogus!token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // The versions list needs none.
    assert_eq!(
        org.http
            .get(org.url("/services/data/"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Tokens expired by the control API: 401 until the client refreshes.
    org.control("expire_tokens", &json!({})).await;
    let r = org
        .http
        .get(org.data("limits"))
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    error_code(&r.json().await.unwrap(), "INVALID_SESSION_ID");
    let fresh = org.refresh().await;
    assert_eq!(
        org.http
            .get(org.data("limits"))
            .bearer_auth(&fresh)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let stats: Value = org
        .http
        .get(org.url("/__sim/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        stats["by_kind"]["token"], 2,
        "the helper's grant and this refresh"
    );
    // A locator survives a refresh without rotation...
    let first = |token: String| {
        let org = &org;
        async move {
            let r = org
                .http
                .get(org.data("query"))
                .query(&[("q", "SELECT Id FROM Contact")])
                .header("Sforce-Query-Options", "batchSize=200")
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            r.json::<Value>().await.unwrap()["nextRecordsUrl"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let next = first(fresh.clone()).await;
    let again = org.refresh().await;
    let r = org
        .http
        .get(org.url(&next))
        .bearer_auth(&again)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // ...but not one with rotation (a new session lineage): the query must restart.
    let r = org
        .http
        .post(org.url("/__sim/oauth/rotation"))
        .json(&json!({"enabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let next = first(again.clone()).await;
    let rotated = org.refresh().await;
    let r = org
        .http
        .get(org.url(&next))
        .bearer_auth(&rotated)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    error_code(&r.json().await.unwrap(), "INVALID_SESSION_ID");
}

#[tokio::test]
async fn an_upsert_giving_one_external_id_to_two_records_refuses_both() {
    let org = Org::start(2).await;
    let before = org.query("SELECT Id FROM Contact").await.1["totalSize"].clone();
    let r = org
        .send_json(
            Method::PATCH,
            "composite/sobjects/Contact/External_Id__c",
            &json!({"allOrNone": false, "records": [
                {"attributes": {"type": "Contact"}, "External_Id__c": "D-1", "LastName": "A"},
                {"attributes": {"type": "Contact"}, "External_Id__c": "D-2", "LastName": "B"},
                {"attributes": {"type": "Contact"}, "External_Id__c": "D-1", "LastName": "C"},
            ]}),
        )
        .await;
    let v: Value = r.json().await.unwrap();
    let refused = json!({"success": false, "errors": [{"statusCode": "DUPLICATE_VALUE",
        "message": "Duplicate external id specified: D-1", "fields": ["External_Id__c"]}],
        "created": false});
    assert_eq!(v[0], refused);
    assert_eq!(v[2], refused);
    assert_eq!(
        (&v[1]["success"], &v[1]["created"]),
        (&json!(true), &json!(true))
    );
    let after = org.query("SELECT Id FROM Contact").await.1["totalSize"].clone();
    assert_eq!(
        after.as_u64(),
        before.as_u64().map(|n| n + 1),
        "only D-2 created"
    );
}

#[tokio::test]
async fn a_malformed_id_and_the_id_of_a_purged_record_get_their_own_codes() {
    let org = Org::start(2).await;
    let (_, q) = org.query("SELECT Id FROM Lead").await;
    let gone = q["records"][0]["Id"].as_str().unwrap().to_string();
    org.control("delete", &json!({"object": "Lead", "ids": [gone]}))
        .await;
    org.control("purge", &json!({})).await;
    let update =
        |id: &str| json!({"records": [{"attributes": {"type": "Lead"}, "id": id, "Title": "x"}]});
    for (id, code) in [
        ("garbage", "MALFORMED_ID"),
        (gone.as_str(), "ENTITY_IS_DELETED"),
    ] {
        let r = org
            .send_json(Method::PATCH, "composite/sobjects", &update(id))
            .await;
        let v: Value = r.json().await.unwrap();
        assert_eq!(v[0]["errors"][0]["statusCode"], code, "update {id}: {v}");
        let r = org
            .send_json(
                Method::DELETE,
                &format!("composite/sobjects?ids={id}&allOrNone=false"),
                &json!(null),
            )
            .await;
        let v: Value = r.json().await.unwrap();
        assert_eq!(v[0]["errors"][0]["statusCode"], code, "delete {id}: {v}");
    }
}
