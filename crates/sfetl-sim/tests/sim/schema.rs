//! Live schema changes (`/__sim/schema/...`) over real HTTP: a field added, deleted, retyped
//! and hidden, then the describe, REST queries, record reads and Bulk 2.0 query jobs answered
//! as an org with that change answers.

use reqwest::Method;
use serde_json::{Value, json};

use crate::org::{Org, error_code};

/// A schema control call: (status, body).
async fn schema(org: &Org, op: &str, body: Value) -> (u16, Value) {
    let r = org
        .http
        .post(org.url(&format!("/__sim/schema/{op}")))
        .json(&body)
        .send()
        .await
        .expect("schema call");
    (r.status().as_u16(), r.json().await.expect("json"))
}

/// Salesforce's INVALID_FIELD message for `field` at its position in `soql`.
fn no_such_column(soql: &str, field: &str, entity: &str) -> String {
    let col = soql.find(field).expect("field in query") + 1;
    format!(
        "\n{soql}\n{}^\nERROR at Row:1:Column:{col}\nNo such column '{field}' on entity '{entity}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.",
        " ".repeat(col - 1)
    )
}

async fn describe_fields(org: &Org, object: &str) -> Vec<Value> {
    let (s, d) = org.get_json(&format!("sobjects/{object}/describe")).await;
    assert_eq!(s, 200);
    d["fields"].as_array().unwrap().clone()
}

fn names(fields: &[Value]) -> Vec<String> {
    fields
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect()
}

/// The records of a REST query that must succeed.
async fn rows(org: &Org, soql: &str) -> Vec<Value> {
    let (s, v) = org.query(soql).await;
    assert_eq!(s, 200, "{soql}: {v}");
    v["records"].as_array().unwrap().clone()
}

/// The CSV lines of a Bulk query job run to completion.
async fn bulk_lines(org: &Org, soql: &str) -> Vec<String> {
    let r = org
        .send_json(
            Method::POST,
            "jobs/query",
            &json!({"operation": "query", "query": soql}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    for _ in 0..5 {
        let (_, info) = org.get_json(&format!("jobs/query/{id}")).await;
        if info["state"] == "JobComplete" {
            break;
        }
    }
    let text = org
        .get(&format!("jobs/query/{id}/results"))
        .await
        .text()
        .await
        .unwrap();
    text.lines().map(str::to_string).collect()
}

/// The 400 a Bulk query job creation answers, as (errorCode, message).
async fn bulk_refusal(org: &Org, soql: &str) -> String {
    let r = org
        .send_json(
            Method::POST,
            "jobs/query",
            &json!({"operation": "query", "query": soql}),
        )
        .await;
    assert_eq!(r.status(), 400, "{soql}");
    error_code(&r.json().await.unwrap(), "INVALID_FIELD")
}

#[tokio::test]
async fn an_added_field_is_described_reads_null_and_takes_values() {
    let org = Org::start(3).await;
    let (s, v) = schema(
        &org,
        "add_field",
        json!({"object": "Account", "field": "Tier__c", "type": "string"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v,
        json!({"object": "Account", "field": "Tier__c", "type": "string", "access": "visible"})
    );
    let fields = describe_fields(&org, "Account").await;
    let tier = fields.iter().find(|f| f["name"] == "Tier__c").unwrap();
    let mut keys: Vec<&String> = tier.as_object().unwrap().keys().collect();
    let mut id_keys: Vec<&String> = fields[0].as_object().unwrap().keys().collect();
    keys.sort();
    id_keys.sort();
    assert_eq!(keys, id_keys, "a new field has the full key set");
    for (k, want) in [
        ("type", json!("string")),
        ("soapType", json!("xsd:string")),
        ("length", json!(255)),
        ("custom", json!(true)),
        ("nillable", json!(true)),
        ("label", json!("Tier")),
    ] {
        assert_eq!(tier[k], want, "{k}");
    }
    let soql = "SELECT Id, Tier__c FROM Account ORDER BY Id";
    let before = rows(&org, soql).await;
    assert_eq!(before.len(), 3);
    assert!(before.iter().all(|r| r["Tier__c"].is_null()));
    let id = before[1]["Id"].as_str().unwrap().to_string();
    let r = org
        .send_json(
            Method::PATCH,
            &format!("sobjects/Account/{id}"),
            &json!({"Tier__c": "Gold"}),
        )
        .await;
    assert_eq!(r.status(), 204);
    let after: Vec<Value> = rows(&org, soql)
        .await
        .iter()
        .map(|r| r["Tier__c"].clone())
        .collect();
    assert_eq!(after, vec![Value::Null, json!("Gold"), Value::Null]);
    let lines = bulk_lines(&org, "SELECT Id, Tier__c FROM Account").await;
    assert_eq!(lines[0], "\"Id\",\"Tier__c\"");
    assert_eq!(lines.len(), 4);
    assert!(lines.contains(&format!("\"{id}\",\"Gold\"")), "{lines:?}");
    // A new checkbox is false, never null, on existing rows.
    let (s, _) = schema(
        &org,
        "add_field",
        json!({"object": "Account", "field": "Is_Vip__c", "type": "boolean"}),
    )
    .await;
    assert_eq!(s, 200);
    let vip: Vec<Value> = rows(&org, "SELECT Is_Vip__c FROM Account")
        .await
        .iter()
        .map(|r| r["Is_Vip__c"].clone())
        .collect();
    assert_eq!(vip, vec![json!(false); 3]);
}

#[tokio::test]
async fn adding_a_field_refuses_bad_names_types_and_duplicates() {
    let org = Org::start(1).await;
    for (body, message) in [
        (
            json!({"object": "Account", "field": "Tier", "type": "string"}),
            "'Tier' is not a custom field name: give an API name ending in __c, e.g. Tier__c",
        ),
        (
            json!({"object": "Account", "field": "External_Id__c", "type": "string"}),
            "Account already has a field named External_Id__c",
        ),
        (
            json!({"object": "Account", "field": "Geo__c", "type": "location"}),
            "type 'location' is not one the simulator creates: use one of string, textarea, email, phone, url, picklist, double, currency, percent, boolean, date, datetime",
        ),
        (
            json!({"object": "Acount", "field": "X__c", "type": "string"}),
            "unknown object 'Acount'",
        ),
    ] {
        let (s, v) = schema(&org, "add_field", body).await;
        assert_eq!((s, v), (400, json!({"error": message})));
    }
}

#[tokio::test]
async fn a_deleted_field_answers_invalid_field_in_rest_and_bulk() {
    let org = Org::start(2).await;
    let (s, v) = schema(
        &org,
        "remove_field",
        json!({"object": "Contact", "field": "Score_Reason__c"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v,
        json!({"object": "Contact", "field": "Score_Reason_del__c", "type": "textarea", "access": "deleted"})
    );
    let described = names(&describe_fields(&org, "Contact").await);
    assert!(!described.iter().any(|n| n.starts_with("Score_Reason")));
    let soql = "SELECT Id, Score_Reason__c FROM Contact";
    let (s, body) = org.query(soql).await;
    assert_eq!(s, 400);
    assert_eq!(
        error_code(&body, "INVALID_FIELD"),
        no_such_column(soql, "Score_Reason__c", "Contact")
    );
    assert_eq!(
        bulk_refusal(&org, soql).await,
        no_such_column(soql, "Score_Reason__c", "Contact")
    );
    let id = rows(&org, "SELECT Id FROM Contact LIMIT 1").await[0]["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, body) = org
        .get_json(&format!("sobjects/Contact/{id}?fields=Score_Reason__c"))
        .await;
    assert_eq!(s, 400);
    error_code(&body, "INVALID_FIELD");
    let (_, record) = org.get_json(&format!("sobjects/Contact/{id}")).await;
    assert!(record.get("Score_Reason__c").is_none(), "{record}");
    // Kept under its `_del` name, as Salesforce keeps a deleted field for 15 days.
    let stored = org
        .get_json_url(&format!("/__sim/record/Contact/{id}"))
        .await;
    assert!(stored.get("Score_Reason_del__c").is_some(), "{stored}");
    // The name is free again: a new field of that name starts empty.
    let (s, _) = schema(
        &org,
        "add_field",
        json!({"object": "Contact", "field": "Score_Reason__c", "type": "string"}),
    )
    .await;
    assert_eq!(s, 200);
    let again = rows(&org, soql).await;
    assert_eq!(again.len(), 6);
    assert!(again.iter().all(|r| r["Score_Reason__c"].is_null()));
}

#[tokio::test]
async fn standard_and_formula_referenced_fields_cannot_be_deleted() {
    let org = Org::start(1).await;
    for (body, message) in [
        (
            json!({"object": "Contact", "field": "Email"}),
            "Contact.Email is a standard field: only custom fields (__c) can be deleted or change type",
        ),
        (
            json!({"object": "Score__c", "field": "Value__c"}),
            "Score__c.Value__c is referenced by the formula field Weighted__c: Salesforce refuses to delete or retype it",
        ),
        (
            json!({"object": "Contact", "field": "Nope__c"}),
            "Contact has no field 'Nope__c'",
        ),
    ] {
        let (s, v) = schema(&org, "remove_field", body).await;
        assert_eq!((s, v), (400, json!({"error": message})));
    }
}

#[tokio::test]
async fn a_retyped_field_renders_in_its_new_type() {
    let org = Org::start(10).await;
    let soql = "SELECT Id, Score__c FROM Contact ORDER BY Id";
    let before = rows(&org, soql).await;
    let numbers: Vec<Value> = before.iter().map(|r| r["Score__c"].clone()).collect();
    assert!(numbers.iter().any(|n| !n.is_null()), "{numbers:?}");
    let bulk_before = bulk_lines(&org, "SELECT Id, Score__c FROM Contact").await;
    let (s, v) = schema(
        &org,
        "retype_field",
        json!({"object": "Contact", "field": "Score__c", "type": "string"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["type"], "string");
    let fields = describe_fields(&org, "Contact").await;
    let f = fields.iter().find(|f| f["name"] == "Score__c").unwrap();
    assert_eq!(
        (&f["type"], &f["soapType"], &f["precision"]),
        (&json!("string"), &json!("xsd:string"), &json!(0))
    );
    let as_text: Vec<Value> = rows(&org, soql)
        .await
        .iter()
        .map(|r| r["Score__c"].clone())
        .collect();
    let want: Vec<Value> = numbers
        .iter()
        .map(|n| match n {
            Value::Null => Value::Null,
            n => json!(n.to_string()),
        })
        .collect();
    assert_eq!(as_text, want);
    // Bulk CSV quotes every cell, so the text is the same characters.
    assert_eq!(
        bulk_lines(&org, "SELECT Id, Score__c FROM Contact").await,
        bulk_before
    );
    let (s, _) = schema(
        &org,
        "retype_field",
        json!({"object": "Contact", "field": "Score__c", "type": "double"}),
    )
    .await;
    assert_eq!(s, 200);
    let back: Vec<Value> = rows(&org, soql)
        .await
        .iter()
        .map(|r| r["Score__c"].clone())
        .collect();
    assert_eq!(back, numbers);
    // Text that is not a number is lost when the field becomes a number.
    let (s, _) = schema(
        &org,
        "retype_field",
        json!({"object": "Account", "field": "External_Id__c", "type": "double"}),
    )
    .await;
    assert_eq!(s, 200);
    let ext = rows(&org, "SELECT External_Id__c FROM Account").await;
    assert!(ext.iter().all(|r| r["External_Id__c"].is_null()), "{ext:?}");
    let (s, v) = schema(
        &org,
        "retype_field",
        json!({"object": "Contact", "field": "Display_Label__c", "type": "textarea"}),
    )
    .await;
    assert_eq!(
        (s, v),
        (
            400,
            json!({"error": "Display_Label__c is a string field (a formula): the simulator changes the type of plain custom fields only"})
        )
    );
}

#[tokio::test]
async fn a_hidden_field_vanishes_until_shown_again() {
    let org = Org::start(4).await;
    let soql = "SELECT Id, Industry FROM Account ORDER BY Id";
    let before = rows(&org, soql).await;
    let (s, v) = schema(
        &org,
        "hide_field",
        json!({"object": "Account", "field": "Industry"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v,
        json!({"object": "Account", "field": "Industry", "type": "picklist", "access": "hidden"})
    );
    assert!(!names(&describe_fields(&org, "Account").await).contains(&"Industry".to_string()));
    let (s, body) = org.query(soql).await;
    assert_eq!(s, 400);
    assert_eq!(
        error_code(&body, "INVALID_FIELD"),
        no_such_column(soql, "Industry", "Account")
    );
    let bulk = "SELECT Id, Industry FROM Account";
    assert_eq!(
        bulk_refusal(&org, bulk).await,
        no_such_column(bulk, "Industry", "Account")
    );
    // Through a relationship too: the parent's field is as hidden.
    let parent = "SELECT Id, Account.Industry FROM Contact";
    let (s, body) = org.query(parent).await;
    assert_eq!(s, 400);
    let col = parent.find("Account.Industry").unwrap() + 1;
    assert_eq!(
        error_code(&body, "INVALID_FIELD"),
        format!(
            "\n{parent}\n{}^\nERROR at Row:1:Column:{col}\nNo such column 'Industry' on entity 'Account'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.",
            " ".repeat(col - 1)
        )
    );
    let id = before[0]["Id"].as_str().unwrap();
    let (_, record) = org.get_json(&format!("sobjects/Account/{id}")).await;
    assert!(record.get("Industry").is_none());
    assert!(record.get("Name").is_some());
    let (s, v) = schema(
        &org,
        "hide_field",
        json!({"object": "Account", "field": "Industry", "hidden": false}),
    )
    .await;
    assert_eq!((s, &v["access"]), (200, &json!("visible")));
    assert_eq!(rows(&org, soql).await, before, "the data was kept");
    for (field, message) in [
        (
            "Name",
            "Account.Name is required (nillable: false): field-level security cannot hide required or system fields",
        ),
        (
            "BillingCity",
            "Account.BillingCity is part of a compound field: the simulator hides plain fields only",
        ),
    ] {
        let (s, v) = schema(
            &org,
            "hide_field",
            json!({"object": "Account", "field": field}),
        )
        .await;
        assert_eq!((s, v), (400, json!({"error": message})));
    }
}

#[tokio::test]
async fn an_edited_formula_changes_every_value_and_no_timestamp() {
    let org = Org::start(4).await;
    let soql = "SELECT Id, FirstName, LastName, Display_Label__c, SystemModstamp, LastModifiedDate FROM Contact ORDER BY Id";
    let before = rows(&org, soql).await;
    let labelled = before
        .iter()
        .find(|r| r["FirstName"].is_string() && r["LastName"].is_string())
        .expect("a Contact with both names")
        .clone();
    assert_eq!(
        labelled["Display_Label__c"],
        json!(format!(
            "{}, {}",
            labelled["LastName"].as_str().unwrap(),
            labelled["FirstName"].as_str().unwrap()
        ))
    );
    let formula = "FirstName & \" \" & LastName";
    let (s, v) = schema(
        &org,
        "set_formula",
        json!({"object": "Contact", "field": "Display_Label__c", "formula": formula}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v,
        json!({"object": "Contact", "field": "Display_Label__c", "type": "string", "access": "visible", "formula": formula})
    );
    let described = describe_fields(&org, "Contact").await;
    let entry = described
        .iter()
        .find(|f| f["name"] == "Display_Label__c")
        .unwrap();
    assert_eq!(entry["calculatedFormula"], json!(formula));
    let after = rows(&org, soql).await;
    assert_eq!(after.len(), before.len());
    let mut changed = 0;
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(a["SystemModstamp"], b["SystemModstamp"], "{a}");
        assert_eq!(a["LastModifiedDate"], b["LastModifiedDate"], "{a}");
        let part = |k: &str| a[k].as_str().unwrap_or("").to_string();
        assert_eq!(
            a["Display_Label__c"],
            json!(format!("{} {}", part("FirstName"), part("LastName"))),
            "{a}"
        );
        changed += usize::from(a["Display_Label__c"] != b["Display_Label__c"]);
    }
    assert!(changed * 2 > before.len(), "{changed} of {}", before.len());
    let id = labelled["Id"].as_str().unwrap();
    let bulk = bulk_lines(
        &org,
        &format!("SELECT Id, Display_Label__c FROM Contact WHERE Id = '{id}'"),
    )
    .await;
    let label = format!(
        "{} {}",
        labelled["FirstName"].as_str().unwrap(),
        labelled["LastName"].as_str().unwrap()
    );
    assert_eq!(
        bulk,
        vec![
            "\"Id\",\"Display_Label__c\"".to_string(),
            format!("\"{id}\",\"{label}\"")
        ]
    );

    let refused = [
        (
            json!({"object": "Contact", "field": "LastName", "formula": formula}),
            "Contact.LastName is not a formula field: only a formula's definition can be edited",
        ),
        (
            json!({"object": "Contact", "field": "Display_Label__c", "formula": "LEFT(LastName, 3)"}),
            "the simulator cannot compute \"LEFT(LastName, 3)\": it computes A & \"text\" & B, A * B / 100, Parent.Field, TEXT(Parent.Field) and TODAY() - DATEVALUE(Field) over the object's fields",
        ),
        (
            json!({"object": "Contact", "field": "Display_Label__c"}),
            "give the new definition as \"formula\" (text)",
        ),
    ];
    for (body, message) in refused {
        assert_eq!(
            schema(&org, "set_formula", body).await,
            (400, json!({"error": message}))
        );
    }
}
