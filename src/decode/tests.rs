//! Decoding on Salesforce's quirks and on recorded real responses.

use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Date32Type, Decimal128Type, Float64Type, Int32Type, TimeUnit};
use arrow::record_batch::RecordBatch;
use serde_json::{Value, json};

use super::*;
use crate::catalog::{SObjectDescribe, StreamSchema};

fn recorded(name: &str) -> Value {
    let path = format!("{}/fixtures/recorded/{name}", crate::manifest_dir());
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// A small describe exercising every decodable kind.
fn test_describe() -> SObjectDescribe {
    let f = |name: &str, kind: &str, precision: u32, scale: i32, compound: Option<&str>| {
        json!({"name": name, "type": kind, "precision": precision, "scale": scale,
               "compoundFieldName": compound, "nillable": true})
    };
    serde_json::from_value(json!({
        "name": "Thing__c",
        "fields": [
            f("Id", "id", 0, 0, None),
            f("Name", "string", 0, 0, None),
            f("Code__c", "string", 0, 0, None),
            f("Active__c", "boolean", 0, 0, None),
            f("Count__c", "int", 0, 0, None),
            f("Amount__c", "currency", 18, 2, None),
            f("Ratio__c", "double", 0, 0, None),
            f("Due__c", "date", 0, 0, None),
            f("At__c", "time", 0, 0, None),
            f("SystemModstamp", "datetime", 0, 0, None),
            f("BillingStreet", "textarea", 0, 0, Some("BillingAddress")),
            f("BillingCity", "string", 0, 0, Some("BillingAddress")),
            f("BillingLatitude", "double", 18, 15, Some("BillingAddress")),
            f("BillingAddress", "address", 0, 0, None),
        ],
        "queryable": true, "replicateable": true
    }))
    .unwrap()
}

const HEADER: &str = "\"Id\",\"Name\",\"Code__c\",\"Active__c\",\"Count__c\",\"Amount__c\",\"Ratio__c\",\"Due__c\",\"At__c\",\"SystemModstamp\",\"BillingStreet\",\"BillingCity\",\"BillingLatitude\"\n";

fn csv_body() -> Vec<u8> {
    let mut body = HEADER.as_bytes().to_vec();
    body.extend_from_slice(
        b"\"a01000000000001AAA\",\"Acme, \"\"Inc\"\"\",\"01234\",\"true\",\"12\",\"1234.50\",\"0.25\",\"2024-02-29\",\"10:30:00.000Z\",\"2024-01-15T10:00:00.000+0000\",\"1 Main St\nSuite 2\",\"Paris\",\"48.856613\"\n",
    );
    body.extend_from_slice(
        b"\"a01000000000002AAA\",\"NA\",\"N/A\",\"false\",\"\",\"\",\"\",\"\",\"\",\"2024-01-15T10:00:00.000Z\",\"\",\"\",\"\"\n",
    );
    body.extend_from_slice(
        b"\"a01000000000003AAA\",\"NULL\",\"\xc3\xa9t\xc3\xa9 \xff\x00end\",\"false\",\"-3\",\"-0.01\",\"1e3\",\"1999-12-31\",\"23:59:59.999Z\",\"2024-01-15T11:00:00.000+00:00\",\"\",\"Z\xc3\xbcrich\",\"\"\n",
    );
    body
}

fn decode_csv(plan: &WirePlan, body: &[u8], chunk: usize) -> (RecordBatch, u64) {
    let (b, replaced, _) = decode_csv_counted(plan, body, chunk);
    (b, replaced)
}

/// Decodes a page in chunks of `chunk` bytes: the assembled rows, invalid UTF-8 sequences
/// replaced and NUL bytes removed.
fn decode_csv_counted(plan: &WirePlan, body: &[u8], chunk: usize) -> (RecordBatch, u64, u64) {
    let mut d = CsvPageDecoder::new(plan, 2);
    let mut batches = Vec::new();
    for c in body.chunks(chunk.max(1)) {
        batches.extend(d.push(c).unwrap());
    }
    batches.extend(d.finish().unwrap());
    let wire = arrow::compute::concat_batches(&plan.wire, &batches).unwrap();
    (
        plan.assemble(&wire).unwrap(),
        d.replaced_utf8(),
        d.removed_nul(),
    )
}

/// A plan selecting `fields` of the test describe (Id and SystemModstamp come along).
fn bulk_plan(fields: &[&str]) -> WirePlan {
    let fields: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
    let schema = StreamSchema::from_describe(&test_describe(), Some(&fields));
    WirePlan::new(&schema, Api::Bulk)
}

#[test]
fn bulk_plan_selects_components_instead_of_compounds() {
    let schema = StreamSchema::from_describe(&test_describe(), None);
    let plan = WirePlan::new(&schema, Api::Bulk);
    assert_eq!(
        plan.select,
        vec![
            "Id",
            "Name",
            "Code__c",
            "Active__c",
            "Count__c",
            "Amount__c",
            "Ratio__c",
            "Due__c",
            "At__c",
            "SystemModstamp",
            "BillingStreet",
            "BillingCity",
            "BillingLatitude"
        ]
    );
    let rest = WirePlan::new(&schema, Api::Rest);
    assert_eq!(rest.select.last().unwrap(), "BillingAddress");
    assert_eq!(rest.select.len(), 14);
}

#[test]
fn bulk_csv_quirks_decode_exactly_whatever_the_chunking() {
    let schema = StreamSchema::from_describe(&test_describe(), None);
    let plan = WirePlan::new(&schema, Api::Bulk);
    let body = csv_body();
    let (whole, replaced) = decode_csv(&plan, &body, body.len());
    for chunk in [1, 3, 7, 64] {
        let (b, r) = decode_csv(&plan, &body, chunk);
        assert_eq!(b, whole, "chunk size {chunk}");
        assert_eq!(r, replaced);
    }
    let b = whole;
    assert_eq!(b.num_rows(), 3);
    assert_eq!(replaced, 1, "one invalid byte replaced and counted");
    let (_, _, removed) = decode_csv_counted(&plan, &body, 5);
    assert_eq!(removed, 1, "one NUL byte removed and counted");
    let s = |c: &str| b.column_by_name(c).unwrap().as_string::<i32>().clone();
    assert_eq!(s("Name").value(0), "Acme, \"Inc\"");
    assert_eq!(s("Name").value(1), "NA");
    assert_eq!(s("Name").value(2), "NULL");
    assert_eq!(s("Code__c").value(0), "01234");
    assert_eq!(s("Code__c").value(1), "N/A");
    assert_eq!(s("Code__c").value(2), "été \u{FFFD}end");
    let active = b.column_by_name("Active__c").unwrap().as_boolean();
    assert!(active.value(0) && !active.value(1));
    let count = b
        .column_by_name("Count__c")
        .unwrap()
        .as_primitive::<Int32Type>();
    assert_eq!(
        (count.value(0), count.is_null(1), count.value(2)),
        (12, true, -3)
    );
    let amount = b
        .column_by_name("Amount__c")
        .unwrap()
        .as_primitive::<Decimal128Type>();
    assert_eq!(amount.data_type(), &DataType::Decimal128(18, 2));
    assert_eq!(
        (amount.value(0), amount.is_null(1), amount.value(2)),
        (123450, true, -1)
    );
    let ratio = b
        .column_by_name("Ratio__c")
        .unwrap()
        .as_primitive::<Float64Type>();
    assert_eq!((ratio.value(0), ratio.value(2)), (0.25, 1000.0));
    let due = b
        .column_by_name("Due__c")
        .unwrap()
        .as_primitive::<Date32Type>();
    assert_eq!(due.value(0), 19782); // 2024-02-29
    let at = b.column_by_name("At__c").unwrap();
    assert_eq!(at.data_type(), &DataType::Time64(TimeUnit::Microsecond));
    let at = at.as_primitive::<arrow::datatypes::Time64MicrosecondType>();
    assert_eq!(at.value(0), 37_800_000_000);
    assert_eq!(at.value(2), 86_399_999_000);
    assert!(at.is_null(1));
    let ts = b.column_by_name("SystemModstamp").unwrap();
    assert_eq!(
        ts.data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")))
    );
    let ts = ts.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
    assert_eq!(ts.value(0), 1_705_312_800_000_000); // +0000
    assert_eq!(ts.value(1), 1_705_312_800_000_000); // Z
    assert_eq!(ts.value(2), 1_705_316_400_000_000); // +00:00

    let addr = b.column_by_name("BillingAddress").unwrap().as_struct();
    assert!(addr.is_valid(0) && addr.is_null(1) && addr.is_valid(2));
    let street = addr.column_by_name("street").unwrap().as_string::<i32>();
    assert_eq!(street.value(0), "1 Main St\nSuite 2");
    let city = addr.column_by_name("city").unwrap().as_string::<i32>();
    assert_eq!(city.value(2), "Zürich");
    let lat = addr
        .column_by_name("latitude")
        .unwrap()
        .as_primitive::<Float64Type>();
    assert_eq!(lat.value(0), 48.856613);
    assert!(
        addr.column_by_name("country").unwrap().is_null(0),
        "unselected part is null"
    );
}

#[test]
fn unexpected_header_is_reported_with_both_lists() {
    let schema = StreamSchema::from_describe(&test_describe(), Some(&["Name".to_string()]));
    let plan = WirePlan::new(&schema, Api::Bulk);
    let mut d = CsvPageDecoder::new(&plan, 10);
    let e = d.push(b"\"Id\",\"Nom\",\"SystemModstamp\"\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "Thing__c: Salesforce answered with columns [\"Id\", \"Nom\", \"SystemModstamp\"] but sfetl selected [\"Id\", \"Name\", \"SystemModstamp\"]"
    );
}

#[test]
fn a_bad_number_names_the_object() {
    let schema = StreamSchema::from_describe(&test_describe(), Some(&["Count__c".to_string()]));
    let plan = WirePlan::new(&schema, Api::Bulk);
    let mut d = CsvPageDecoder::new(&plan, 10);
    d.push(b"Id,Count__c,SystemModstamp\n").unwrap();
    let mut r = d.push(b"a01,twelve,2024-01-15T10:00:00.000Z\n");
    if r.is_ok() {
        r = d.finish();
    }
    let e = r.unwrap_err().to_string();
    assert!(e.starts_with("cannot decode Thing__c data: "), "{e}");
    assert!(e.contains("twelve"), "{e}");
}

#[test]
fn errors_name_the_record_and_field_past_the_first_tile_of_records() {
    let schema = StreamSchema::from_describe(&test_describe(), Some(&["Count__c".to_string()]));
    let plan = WirePlan::new(&schema, Api::Bulk);
    let page = |bad: &str, at: usize| {
        let mut body = b"Id,Count__c,SystemModstamp\n".to_vec();
        for i in 1..=70 {
            let line = if i == at {
                bad.to_string()
            } else {
                format!("\"a{i}\",\"{i}\",\"2024-01-15T10:00:00.000Z\"\n")
            };
            body.extend_from_slice(line.as_bytes());
        }
        // Batches of 10 rows: the records before the bad one are complete batches.
        let mut d = CsvPageDecoder::new(&plan, 10);
        let mut rows = 0;
        let mut result = Ok(());
        for chunk in body.chunks(100) {
            match d.push(chunk) {
                Ok(batches) => rows += batches.iter().map(|b| b.num_rows()).sum::<usize>(),
                Err(e) => {
                    result = Err(e.to_string());
                    break;
                }
            }
        }
        if result.is_ok() {
            result = d.finish().map(|_| ()).map_err(|e| e.to_string());
        }
        (rows, result.unwrap_err())
    };
    let (rows, e) = page("\"a50\",\"fifty\",\"2024-01-15T10:00:00.000Z\"\n", 50);
    assert!(
        e.contains("record 50, Count__c: ") && e.contains("fifty"),
        "{e}"
    );
    assert_eq!(rows, 40);
    let (rows, e) = page("\"a37\",\"37\"\n", 37);
    assert!(
        e.ends_with("record 37: 2 fields where 3 were selected"),
        "{e}"
    );
    assert_eq!(rows, 30);
}

#[test]
fn recorded_rest_query_pages_decode() {
    let describe: SObjectDescribe =
        serde_json::from_value(recorded("describe_Account_PersonAccount_v59.json")).unwrap();
    let fields: Vec<String> = ["Name", "Description", "LastModifiedDate", "CreatedDate"]
        .map(String::from)
        .to_vec();
    let schema = StreamSchema::from_describe(&describe, Some(&fields));
    let plan = WirePlan::new(&schema, Api::Rest);
    let mut total = 0;
    for page in [
        "query_Account_page1_of3_v59.json",
        "query_Account_page2_of3_v59.json",
        "query_Account_page3_of3_v59.json",
    ] {
        let v = recorded(page);
        let records = v["records"].as_array().unwrap();
        let wire = decode_rest_records(&plan, records).unwrap();
        let b = plan.assemble(&wire).unwrap();
        assert_eq!(b.num_rows(), records.len());
        let ids = b.column_by_name("Id").unwrap().as_string::<i32>();
        let names = b.column_by_name("Name").unwrap().as_string::<i32>();
        let desc = b.column_by_name("Description").unwrap();
        let created = b
            .column_by_name("CreatedDate")
            .unwrap()
            .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        for (i, r) in records.iter().enumerate() {
            assert_eq!(ids.value(i), r["Id"].as_str().unwrap());
            assert_eq!(names.value(i), r["Name"].as_str().unwrap());
            assert_eq!(desc.is_null(i), r["Description"].is_null());
            let expected = chrono::DateTime::parse_from_str(
                r["CreatedDate"].as_str().unwrap(),
                "%Y-%m-%dT%H:%M:%S%.f%z",
            )
            .unwrap();
            assert_eq!(created.value(i), expected.timestamp_micros());
        }
        total += records.len();
    }
    assert_eq!(total, 2086);
}

#[test]
fn recorded_records_with_addresses_decode_into_structs() {
    let describe: SObjectDescribe =
        serde_json::from_value(recorded("describe_Account_PersonAccount_v59.json")).unwrap();
    let rec = recorded("sobject_Account_get_record_v62.json");
    let fields: Vec<String> = [
        "Name",
        "BillingAddress",
        "ShippingAddress",
        "AnnualRevenue",
        "NumberOfEmployees",
    ]
    .map(String::from)
    .to_vec();
    let schema = StreamSchema::from_describe(&describe, Some(&fields));
    let plan = WirePlan::new(&schema, Api::Rest);
    let b = plan
        .assemble(&decode_rest_records(&plan, std::slice::from_ref(&rec)).unwrap())
        .unwrap();
    let billing = b.column_by_name("BillingAddress").unwrap().as_struct();
    let part = |n: &str| {
        billing
            .column_by_name(n)
            .unwrap()
            .as_string::<i32>()
            .value(0)
            .to_string()
    };
    assert_eq!(
        part("street"),
        "312 Constitution Place\nAustin, TX 78767\nUSA"
    );
    assert_eq!(part("stateCode"), "TX");
    assert_eq!(part("countryCode"), "US");
    assert!(billing.column_by_name("latitude").unwrap().is_null(0));
    let revenue = b
        .column_by_name("AnnualRevenue")
        .unwrap()
        .as_primitive::<Decimal128Type>();
    assert_eq!(revenue.value(0), 139_000_000);
    let employees = b
        .column_by_name("NumberOfEmployees")
        .unwrap()
        .as_primitive::<Int32Type>();
    assert_eq!(employees.value(0), 1000);

    let with_geo = recorded("sobject_Account_get_record.json");
    let b = plan
        .assemble(&decode_rest_records(&plan, std::slice::from_ref(&with_geo)).unwrap())
        .unwrap();
    let billing = b.column_by_name("BillingAddress").unwrap().as_struct();
    let lat = billing
        .column_by_name("latitude")
        .unwrap()
        .as_primitive::<Float64Type>();
    assert_eq!(
        Some(lat.value(0)),
        with_geo["BillingAddress"]["latitude"].as_f64()
    );
}

#[test]
fn columns_are_matched_by_header_name_in_any_order() {
    // Up to API version 49.0 Bulk answers columns alphabetically, not in SELECT order.
    let plan = bulk_plan(&["Name", "Count__c"]);
    assert_eq!(
        plan.select,
        vec!["Id", "Name", "Count__c", "SystemModstamp"]
    );
    let body = b"\"Count__c\",\"Id\",\"Name\",\"SystemModstamp\"\n\"7\",\"a01\",\"Acme\",\"2024-01-15T10:00:00.000Z\"\n\"8\",\"a02\",\"Beta\",\"2024-01-16T10:00:00.000Z\"\n";
    for chunk in [1, 4, body.len()] {
        let (b, _) = decode_csv(&plan, body, chunk);
        let ids = b.column_by_name("Id").unwrap().as_string::<i32>();
        let names = b.column_by_name("Name").unwrap().as_string::<i32>();
        let count = b
            .column_by_name("Count__c")
            .unwrap()
            .as_primitive::<Int32Type>();
        assert_eq!(
            (ids.value(0), names.value(0), count.value(0)),
            ("a01", "Acme", 7)
        );
        assert_eq!(
            (ids.value(1), names.value(1), count.value(1)),
            ("a02", "Beta", 8)
        );
        let ts = b
            .column_by_name("SystemModstamp")
            .unwrap()
            .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        assert_eq!(ts.value(1), 1_705_399_200_000_000);
    }
    // Header names are matched case-insensitively; a missing or repeated one is an error.
    let mut d = CsvPageDecoder::new(&plan, 10);
    d.push(b"ID,name,COUNT__C,SystemModstamp\n")
        .expect("same names");
    let mut d = CsvPageDecoder::new(&plan, 10);
    let e = d.push(b"Id,Name,Name,SystemModstamp\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "Thing__c: Salesforce answered with columns [\"Id\", \"Name\", \"Name\", \"SystemModstamp\"] but sfetl selected [\"Id\", \"Name\", \"Count__c\", \"SystemModstamp\"]"
    );
}

#[test]
fn quoted_empty_cells_are_nulls_in_every_type() {
    // Salesforce quotes every cell, nulls included: `""`.
    let plan = bulk_plan(&[
        "Name",
        "Active__c",
        "Count__c",
        "Amount__c",
        "Ratio__c",
        "Due__c",
        "At__c",
    ]);
    let body = b"Id,Name,Active__c,Count__c,Amount__c,Ratio__c,Due__c,At__c,SystemModstamp\n\"a01\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\"\n";
    let (b, _) = decode_csv(&plan, body, body.len());
    assert_eq!(b.num_rows(), 1);
    for c in [
        "Name",
        "Active__c",
        "Count__c",
        "Amount__c",
        "Ratio__c",
        "Due__c",
        "At__c",
        "SystemModstamp",
    ] {
        assert!(b.column_by_name(c).unwrap().is_null(0), "{c}");
    }
    assert_eq!(
        b.column_by_name("Id").unwrap().as_string::<i32>().value(0),
        "a01"
    );
}

#[test]
fn e_notation_decodes_into_integer_decimal_and_double_columns() {
    // Bulk writes large numbers as Java does: 1.6147805824397E13.
    let plan = bulk_plan(&["Count__c", "Amount__c", "Ratio__c"]);
    let body = b"Id,Count__c,Amount__c,Ratio__c,SystemModstamp\n\"a01\",\"1.2345E4\",\"1.6147805824397E13\",\"2.5E-4\",\"2024-01-15T10:00:00.000Z\"\n\"a02\",\"-3E2\",\"1.0E7\",\"1.0E7\",\"2024-01-15T10:00:00.000Z\"\n";
    let (b, _) = decode_csv(&plan, body, 3);
    let count = b
        .column_by_name("Count__c")
        .unwrap()
        .as_primitive::<Int32Type>();
    assert_eq!((count.value(0), count.value(1)), (12_345, -300));
    let amount = b
        .column_by_name("Amount__c")
        .unwrap()
        .as_primitive::<Decimal128Type>();
    assert_eq!(
        (amount.value(0), amount.value(1)),
        (1_614_780_582_439_700, 1_000_000_000)
    );
    let ratio = b
        .column_by_name("Ratio__c")
        .unwrap()
        .as_primitive::<Float64Type>();
    assert_eq!((ratio.value(0), ratio.value(1)), (0.00025, 1e7));
    // A fraction in an integer column is still an error, naming the value.
    let mut d = CsvPageDecoder::new(&plan, 10);
    let mut r = d.push(b"Id,Count__c,Amount__c,Ratio__c,SystemModstamp\na01,1.25E1,,,\n");
    if r.is_ok() {
        r = d.finish();
    }
    let e = r.unwrap_err().to_string();
    assert!(e.contains("\"1.25E1\" is not an Int32"), "{e}");
}

#[test]
fn an_empty_body_is_an_empty_result() {
    // Salesforce answers a job without rows with an empty body: not even a header line.
    let plan = bulk_plan(&["Name"]);
    let mut d = CsvPageDecoder::new(&plan, 10);
    assert!(d.push(b"").unwrap().is_empty());
    assert!(d.finish().unwrap().is_empty());
    let mut d = CsvPageDecoder::new(&plan, 10);
    assert!(d.finish().unwrap().is_empty());
    assert_eq!((d.replaced_utf8(), d.removed_nul()), (0, 0));
    // A header and no rows is empty too.
    let mut d = CsvPageDecoder::new(&plan, 10);
    d.push(b"\"Id\",\"Name\",\"SystemModstamp\"\n").unwrap();
    assert!(d.finish().unwrap().is_empty());
}

#[test]
fn nul_bytes_are_removed_and_counted_in_every_column() {
    let plan = bulk_plan(&["Name", "Count__c"]);
    let body = b"Id,Name,Count__c,SystemModstamp\n\"a01\",\"A\x00c\x00me\",\"1\x002\",\"2024-01-15T10:00:00.000Z\"\n\"a02\",\"\x00\",\"3\",\"2024-01-15T10:00:00.000Z\"\n";
    let (b, replaced, removed) = decode_csv_counted(&plan, body, 4);
    assert_eq!((replaced, removed), (0, 4));
    let names = b.column_by_name("Name").unwrap().as_string::<i32>();
    assert_eq!(names.value(0), "Acme");
    assert!(names.is_null(1), "a value of only NULs is empty, so null");
    let count = b
        .column_by_name("Count__c")
        .unwrap()
        .as_primitive::<Int32Type>();
    assert_eq!(count.value(0), 12);
}

#[test]
fn wide_rows_close_a_batch_at_a_mebibyte_of_text() {
    let schema = StreamSchema::from_describe(&test_describe(), Some(&["Name".to_string()]));
    let plan = WirePlan::new(&schema, Api::Bulk);
    let mut d = CsvPageDecoder::new(&plan, 8192).with_batch_bytes(Some(1 << 20));
    let name = "n".repeat(100_000);
    let mut body = b"Id,Name,SystemModstamp\n".to_vec();
    for i in 0..25 {
        body.extend(format!("a{i:02},\"{name}\",2024-01-15T10:00:00.000Z\n").bytes());
    }
    let mut batches = d.push(&body).unwrap();
    batches.extend(d.finish().unwrap());
    // 100,027 bytes of text a row: a batch closes at the row that reaches 1 MiB.
    let rows: Vec<usize> = batches.iter().map(|b| b.num_rows()).collect();
    assert_eq!(rows, vec![11, 11, 3]);
    // Without a byte bound, the row bound alone.
    let mut d = CsvPageDecoder::new(&plan, 8192).with_batch_bytes(None);
    let mut batches = d.push(&body).unwrap();
    batches.extend(d.finish().unwrap());
    assert_eq!(
        batches.iter().map(|b| b.num_rows()).collect::<Vec<_>>(),
        vec![25]
    );
}

#[test]
fn text_values_around_the_short_copy_size_keep_their_exact_bytes() {
    // Text values up to 32 bytes are copied from the page as one 32-byte block and cut back;
    // values at, below and above that size, next to each other, with escaped quotes (copied
    // from the splitter's scratch buffer) and near a chunk's end, must keep exactly their bytes.
    let plan = bulk_plan(&["Name", "Code__c"]);
    let values = [
        ("x".repeat(31), "y".repeat(32)),
        ("z".repeat(33), String::new()),
        ("q\"\"".to_string() + &"r".repeat(30), "s".repeat(200)),
        ("\"\"".repeat(20), "t".to_string()),
    ];
    let mut body = b"\"Id\",\"Name\",\"Code__c\",\"SystemModstamp\"\n".to_vec();
    for (i, (name, code)) in values.iter().enumerate() {
        let line = format!("\"a0{i}\",\"{name}\",\"{code}\",\"2024-01-15T10:00:00.000Z\"\n");
        body.extend_from_slice(line.as_bytes());
    }
    for chunk in [1, 7, 31, 32, 33, 64, body.len()] {
        let (b, _) = decode_csv(&plan, &body, chunk);
        let (names, codes) = (
            b.column_by_name("Name").unwrap().as_string::<i32>(),
            b.column_by_name("Code__c").unwrap().as_string::<i32>(),
        );
        for (i, (name, code)) in values.iter().enumerate() {
            assert_eq!(
                names.value(i),
                name.replace("\"\"", "\""),
                "chunk {chunk}, row {i}"
            );
            assert_eq!(codes.is_null(i), code.is_empty(), "chunk {chunk}, row {i}");
            assert_eq!(codes.value(i), code.as_str(), "chunk {chunk}, row {i}");
        }
    }
}
