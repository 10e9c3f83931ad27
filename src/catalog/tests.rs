//! The type mapping checked on describes recorded from real orgs (`fixtures/recorded/`).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, TimeUnit};
use serde_json::json;

use super::*;

fn recorded(name: &str) -> SObjectDescribe {
    let path = format!("{}/fixtures/recorded/{name}", crate::manifest_dir());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

const ALL: [&str; 10] = [
    "describe_Account_PersonAccount_v59.json",
    "describe_Account_v53.json",
    "describe_Case_v48.json",
    "describe_Contact_v40.json",
    "describe_Document_v46.json",
    "describe_Event_vxx.json",
    "describe_Lead_v59.json",
    "describe_Opportunity_vxx.json",
    "describe_Task_v37.json",
    "describe_Whizbang_custom_restforce.json",
];

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")))
}

#[test]
fn every_recorded_field_maps_to_its_documented_types() {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut total = 0;
    for file in ALL {
        let d = recorded(file);
        let schema = StreamSchema::from_describe(&d, None);
        assert_eq!(schema.fields.len(), d.fields.len(), "{file}");
        for (f, spec) in d.fields.iter().zip(&schema.fields) {
            total += 1;
            let expected_json_type = match f.kind.as_str() {
                "boolean" => "boolean",
                "int" => "integer",
                "currency" | "double" | "percent" => "number",
                "address" => "object",
                _ => "string",
            };
            let js = json_schema(f);
            assert_eq!(
                js["type"],
                json!(["null", expected_json_type]),
                "{file} {}",
                f.name
            );
            let ok = match f.kind.as_str() {
                "id" | "reference" | "string" | "textarea" | "picklist" | "multipicklist"
                | "combobox" | "email" | "phone" | "url" => spec.data_type == DataType::Utf8,
                "boolean" => spec.data_type == DataType::Boolean,
                "int" => spec.data_type == DataType::Int32,
                "currency" | "double" | "percent" => {
                    spec.data_type == DataType::Decimal128(f.precision as u8, f.scale as i8)
                }
                "date" => spec.data_type == DataType::Date32,
                "datetime" => spec.data_type == ts(),
                "address" => matches!(&spec.data_type, DataType::Struct(c) if c.len() == 10),
                "base64" => spec.data_type == DataType::Binary,
                other => panic!("{file}: unexpected type {other} in the recording"),
            };
            assert!(ok, "{file} {} {} -> {:?}", f.name, f.kind, spec.data_type);
            assert_ne!(spec.kind, SfKind::Unknown);
            *counts
                .entry(match f.kind.as_str() {
                    "address" => "address",
                    "base64" => "base64",
                    _ => "other",
                })
                .or_default() += 1;
        }
        assert_eq!(schema.cursor, Some("SystemModstamp"), "{file}");
    }
    assert_eq!(total, 653);
    assert_eq!(counts["address"], 9);
    assert_eq!(counts["base64"], 1);
}

#[test]
fn person_account_describe_has_250_fields_and_namespaced_custom_fields() {
    let d = recorded("describe_Account_PersonAccount_v59.json");
    assert_eq!(d.fields.len(), 250);
    let s = StreamSchema::from_describe(&d, None);
    assert_eq!(s.arrow.fields().len(), 250);
    let plain = recorded("describe_Account_v53.json");
    let ns = plain
        .fields
        .iter()
        .find(|f| f.name == "mikesnamespace1__NumberofLocations__c")
        .unwrap();
    assert_eq!(arrow_type(ns), DataType::Decimal128(3, 0));
}

#[test]
fn specific_fields_of_real_objects() {
    let acc = StreamSchema::from_describe(&recorded("describe_Account_v53.json"), None);
    let get = |s: &StreamSchema, n: &str| s.fields.iter().find(|f| f.name == n).unwrap().clone();
    assert_eq!(
        get(&acc, "AnnualRevenue").data_type,
        DataType::Decimal128(18, 0)
    );
    assert_eq!(get(&acc, "NumberOfEmployees").data_type, DataType::Int32);
    assert_eq!(
        get(&acc, "BillingLatitude").data_type,
        DataType::Decimal128(18, 15)
    );
    assert_eq!(get(&acc, "CreatedDate").data_type, ts());
    assert!(!acc.arrow.field_with_name("Id").unwrap().is_nullable());
    assert!(acc.arrow.field_with_name("Name").unwrap().is_nullable());
    let billing = get(&acc, "BillingAddress");
    let comps: BTreeMap<&str, &str> = billing
        .components
        .iter()
        .map(|(c, p)| (c.as_str(), *p))
        .collect();
    assert_eq!(comps["BillingStreet"], "street");
    assert_eq!(comps["BillingLatitude"], "latitude");
    assert_eq!(comps["BillingPostalCode"], "postalCode");

    let lead = StreamSchema::from_describe(&recorded("describe_Lead_v59.json"), None);
    let addr = get(&lead, "Address");
    let comps: BTreeMap<&str, &str> = addr
        .components
        .iter()
        .map(|(c, p)| (c.as_str(), *p))
        .collect();
    assert_eq!(comps["Street"], "street");
    assert_eq!(comps["PostalCode"], "postalCode");
    assert_eq!(comps["GeocodeAccuracy"], "geocodeAccuracy");

    let opp = StreamSchema::from_describe(&recorded("describe_Opportunity_vxx.json"), None);
    assert_eq!(
        get(&opp, "Probability").data_type,
        DataType::Decimal128(3, 0)
    );
    assert_eq!(get(&opp, "Amount").data_type, DataType::Decimal128(18, 2));
    assert_eq!(get(&opp, "CloseDate").data_type, DataType::Date32);

    let doc = StreamSchema::from_describe(&recorded("describe_Document_v46.json"), None);
    assert_eq!(get(&doc, "Body").data_type, DataType::Binary);

    let w = StreamSchema::from_describe(&recorded("describe_Whizbang_custom_restforce.json"), None);
    assert_eq!(
        get(&w, "Picklist_Multiselect_Field").data_type,
        DataType::Utf8
    );
    let task = StreamSchema::from_describe(&recorded("describe_Task_v37.json"), None);
    assert_eq!(get(&task, "Subject").data_type, DataType::Utf8);
}

#[test]
fn selection_keeps_id_and_cursor() {
    let d = recorded("describe_Account_v53.json");
    let s = StreamSchema::from_describe(&d, Some(&["Name".to_string(), "Nope".to_string()]));
    let names: Vec<&str> = s.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, vec!["Id", "Name", "SystemModstamp"]);
}

#[test]
fn types_without_precision_long_time_location_and_unknown() {
    let f = |kind: &str, precision: u32, scale: i32| FieldDescribe {
        name: "X".into(),
        kind: kind.into(),
        soap_type: None,
        length: 0,
        precision,
        scale,
        digits: 0,
        nillable: true,
        createable: false,
        defaulted_on_create: false,
        updateable: false,
        calculated: false,
        calculated_formula: None,
        compound_field_name: None,
        external_id: false,
        unique: false,
        relationship_name: None,
        reference_to: vec![],
        filterable: true,
        sortable: true,
    };
    assert_eq!(arrow_type(&f("double", 0, 0)), DataType::Float64);
    assert_eq!(arrow_type(&f("percent", 5, 2)), DataType::Decimal128(5, 2));
    assert_eq!(arrow_type(&f("long", 0, 0)), DataType::Int64);
    assert_eq!(
        arrow_type(&f("time", 0, 0)),
        DataType::Time64(TimeUnit::Microsecond)
    );
    assert!(matches!(arrow_type(&f("location", 0, 0)), DataType::Struct(c) if c.len() == 2));
    assert_eq!(arrow_type(&f("somethingNew", 0, 0)), DataType::Utf8);
    assert_eq!(json_schema(&f("time", 0, 0))["format"], "time");
    assert_eq!(
        json_schema(&f("datetime", 0, 0))["airbyte_type"],
        "timestamp_with_timezone"
    );
    assert_eq!(json_schema(&f("base64", 0, 0))["contentEncoding"], "base64");
    assert_eq!(compound_part("Loc__Latitude__s"), Some("latitude"));
    assert_eq!(compound_part("MailingCountryCode"), Some("countryCode"));
}

#[test]
fn airbyte_stream_for_a_recorded_object() {
    let s = airbyte_stream(&recorded("describe_Case_v48.json"));
    assert_eq!(s.name, "Case");
    assert_eq!(
        s.default_cursor_field,
        Some(vec!["SystemModstamp".to_string()])
    );
    assert_eq!(
        s.source_defined_primary_key,
        Some(vec![vec!["Id".to_string()]])
    );
    assert_eq!(s.json_schema["properties"]["Id"], json!({"type": "string"}));
    assert_eq!(s.json_schema["properties"].as_object().unwrap().len(), 36);
    assert_eq!(
        s.json_schema["properties"]["_sfetl_deleted_at"]["format"],
        "date-time"
    );
    assert_eq!(
        serde_json::to_value(&s.supported_sync_modes).unwrap(),
        json!(["full_refresh", "incremental"])
    );
}

#[test]
fn the_cursor_is_a_datetime_queries_can_filter_and_sort_on() {
    let describe = |fields: serde_json::Value| -> SObjectDescribe {
        serde_json::from_value(serde_json::json!({"name": "X", "fields": fields})).unwrap()
    };
    let dt = |name: &str, ok: bool| serde_json::json!({"name": name, "type": "datetime", "filterable": ok, "sortable": ok});
    // A History object: CreatedDate only.
    let history =
        describe(serde_json::json!([{"name": "Id", "type": "id"}, dt("CreatedDate", true)]));
    assert_eq!(cursor_field(&history), Some("CreatedDate"));
    // A big object: its audit dates are neither filterable nor sortable.
    let big = describe(serde_json::json!([
        {"name": "Id", "type": "id"}, dt("CreatedDate", false), dt("SystemModstamp", false)
    ]));
    assert_eq!(cursor_field(&big), None);
    // Describes that leave the flags out (older recordings) keep their cursor.
    let plain = describe(serde_json::json!([{"name": "SystemModstamp", "type": "datetime"}]));
    assert_eq!(cursor_field(&plain), Some("SystemModstamp"));
}
