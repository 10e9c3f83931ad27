//! The mapping library against the simulator's describes
//! (`crates/sfetl-sim/fixtures/describe_*.json`).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, AsArray, BooleanArray, Decimal128Array, RecordBatch, StringArray, StructArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Fields, Schema, TimeUnit};
use serde_json::json;

use super::*;
use crate::catalog::SObjectDescribe;

fn describe(object: &str) -> SObjectDescribe {
    let path = format!(
        "{}/crates/sfetl-sim/fixtures/describe_{object}.json",
        crate::manifest_dir()
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn describes(objects: &[&str]) -> HashMap<String, SObjectDescribe> {
    objects
        .iter()
        .map(|o| (o.to_string(), describe(o)))
        .collect()
}

fn people() -> Mapping {
    let path = format!("{}/fixtures/mappings/people.yaml", crate::manifest_dir());
    Mapping::from_file(std::path::Path::new(&path)).unwrap()
}

fn people_plan() -> MappingPlan {
    compile(&people(), &describes(&["Lead", "Contact", "Account"])).unwrap()
}

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")))
}

fn strings(values: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

fn timestamps(values: &[i64]) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(values.to_vec()).with_timezone("UTC"))
}

fn column_strings(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let a = batch.column_by_name(name).unwrap();
    let a = arrow::compute::cast(a, &DataType::Utf8).unwrap();
    a.as_string::<i32>()
        .iter()
        .map(|v| v.map(str::to_string))
        .collect()
}

/// A mapping from inline YAML, compiled against Lead, Contact and Account.
fn compile_yaml(yaml: &str) -> Result<MappingPlan, MappingError> {
    let m = Mapping::from_yaml_str(yaml, "test.yaml")?;
    compile(&m, &describes(&["Lead", "Contact", "Account"]))
}

fn error_of(yaml: &str) -> String {
    compile_yaml(yaml).unwrap_err().to_string()
}

#[test]
fn people_example_parses_verbatim() {
    let m = people();
    assert_eq!(m.streams.len(), 2);
    assert_eq!(m.objects(), vec!["Lead", "Contact", "Account"]);
    let person = &m.streams[0];
    assert_eq!(
        person.primary_key,
        Some(vec!["source_object".to_string(), "source_id".to_string()])
    );
    assert_eq!(
        person.from[0].soql_where.as_deref(),
        Some("IsConverted = false")
    );
    assert_eq!(person.from[1].soql_where, None);
    assert_eq!(
        person.from[0].columns[0],
        ("source_object".to_string(), "'Lead'".to_string())
    );
    assert_eq!(
        person.from[1].columns[4],
        ("company".to_string(), "Account.Name".to_string())
    );
    // The same mapping as JSON (inline in a config) reads the same.
    let json = json!({"streams": [{"name": "account", "from": [{"object": "Account",
        "columns": {"id": "Id", "name": "Name", "annual_revenue": "AnnualRevenue",
        "billing_country": "BillingAddress.country", "modified_at": "SystemModstamp"}}]}]});
    let inline = Mapping::load(&crate::config::MappingSource::Inline(json)).unwrap();
    assert_eq!(inline.streams[0], m.streams[1]);
}

#[test]
fn people_example_compiles_to_the_exact_fields() {
    let plan = people_plan();
    let person = plan.stream("person").unwrap();
    assert_eq!(person.primary_key, vec!["source_object", "source_id"]);
    let lead = &person.sources[0];
    assert_eq!(lead.object, "Lead");
    assert_eq!(
        lead.fields,
        vec![
            "Id",
            "Email",
            "FirstName",
            "LastName",
            "Company",
            "Score__c",
            "SystemModstamp",
            "IsDeleted"
        ]
    );
    assert_eq!(lead.cursor, Some("SystemModstamp"));
    assert_eq!(lead.soql_where.as_deref(), Some("IsConverted = false"));
    let contact = &person.sources[1];
    assert_eq!(contact.object, "Contact");
    assert_eq!(
        contact.fields,
        vec![
            "Id",
            "Email",
            "FirstName",
            "LastName",
            "Account.Name",
            "Score__c",
            "SystemModstamp",
            "IsDeleted"
        ]
    );
    assert_eq!(contact.cursor, Some("SystemModstamp"));
    assert_eq!(contact.soql_where, None);
    assert_eq!(
        contact
            .input_schema
            .field_with_name("Account.Name")
            .unwrap()
            .data_type(),
        &DataType::Utf8
    );
    assert_eq!(
        contact
            .input_schema
            .field_with_name("Score__c")
            .unwrap()
            .data_type(),
        &DataType::Decimal128(5, 2)
    );
    let types: Vec<(String, DataType)> = person
        .schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect();
    assert_eq!(
        types,
        vec![
            ("source_object".to_string(), DataType::Utf8),
            ("source_id".to_string(), DataType::Utf8),
            ("email".to_string(), DataType::Utf8),
            ("full_name".to_string(), DataType::Utf8),
            ("company".to_string(), DataType::Utf8),
            ("score".to_string(), DataType::Decimal128(5, 2)),
            ("modified_at".to_string(), ts_type()),
            ("_sfetl_cursor".to_string(), ts_type()),
            ("_sfetl_is_deleted".to_string(), DataType::Boolean),
        ]
    );
    assert_eq!(
        person.schema.metadata()[META_PRIMARY_KEY],
        r#"["source_object","source_id"]"#
    );
    assert_eq!(person.schema.metadata()[META_CURSOR], "_sfetl_cursor");

    let account = plan.stream("account").unwrap();
    assert_eq!(account.primary_key, vec!["id"], "inferred from the bare Id");
    assert_eq!(
        account.sources[0].fields,
        vec![
            "Id",
            "Name",
            "AnnualRevenue",
            "BillingCountry",
            "SystemModstamp",
            "IsDeleted"
        ]
    );
    assert_eq!(
        account
            .schema
            .field_with_name("annual_revenue")
            .unwrap()
            .data_type(),
        &DataType::Decimal128(18, 0)
    );
}

#[test]
fn discover_entry_of_a_mapped_stream() {
    let plan = people_plan();
    let s = plan.stream("account").unwrap().airbyte_stream();
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(
        v,
        json!({
            "name": "account",
            "json_schema": {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "additionalProperties": true,
                "properties": {
                    "id": {"type": ["null", "string"]},
                    "name": {"type": ["null", "string"]},
                    "annual_revenue": {"type": ["null", "number"]},
                    "billing_country": {"type": ["null", "string"]},
                    "modified_at": {"type": ["null", "string"], "format": "date-time", "airbyte_type": "timestamp_with_timezone"},
                    "_sfetl_cursor": {"type": ["null", "string"], "format": "date-time", "airbyte_type": "timestamp_with_timezone"},
                    "_sfetl_is_deleted": {"type": "boolean"}
                }
            },
            "supported_sync_modes": ["full_refresh", "incremental"],
            "source_defined_cursor": true,
            "default_cursor_field": ["_sfetl_cursor"],
            "source_defined_primary_key": [["id"]],
            "is_resumable": true
        })
    );
}

fn lead_batch() -> RecordBatch {
    let schema = people_plan().stream("person").unwrap().sources[0]
        .input_schema
        .clone();
    RecordBatch::try_new(
        schema,
        vec![
            strings(&[Some("00Q1"), Some("00Q2"), Some("00Q3")]),
            strings(&[Some("Ada@Example.COM"), None, Some("x@Y.org")]),
            strings(&[Some("Ada"), Some("Grace"), None]),
            strings(&[Some("Lovelace"), Some("Hopper"), Some("Solo")]),
            strings(&[Some("Analytical"), None, Some("Acme")]),
            Arc::new(
                Decimal128Array::from(vec![Some(9950), None, Some(1)])
                    .with_precision_and_scale(5, 2)
                    .unwrap(),
            ),
            timestamps(&[
                1_700_000_000_000_000,
                1_700_000_001_000_000,
                1_700_000_002_000_000,
            ]),
            Arc::new(BooleanArray::from(vec![Some(false), None, Some(true)])),
        ],
    )
    .unwrap()
}

#[test]
fn evaluates_lead_rows_exactly() {
    let plan = people_plan();
    let person = plan.stream("person").unwrap();
    let out = person.sources[0].evaluate(&lead_batch()).unwrap();
    assert_eq!(out.schema(), person.schema);
    assert_eq!(
        column_strings(&out, "source_object"),
        vec![
            Some("Lead".into()),
            Some("Lead".into()),
            Some("Lead".into())
        ]
    );
    assert_eq!(
        column_strings(&out, "source_id"),
        vec![
            Some("00Q1".into()),
            Some("00Q2".into()),
            Some("00Q3".into())
        ]
    );
    assert_eq!(
        column_strings(&out, "email"),
        vec![Some("ada@example.com".into()), None, Some("x@y.org".into())]
    );
    // concat_ws skips nulls, as in Postgres.
    assert_eq!(
        column_strings(&out, "full_name"),
        vec![
            Some("Ada Lovelace".into()),
            Some("Grace Hopper".into()),
            Some("Solo".into())
        ]
    );
    assert_eq!(
        column_strings(&out, "company"),
        vec![Some("Analytical".into()), None, Some("Acme".into())]
    );
    assert_eq!(
        column_strings(&out, "score"),
        vec![Some("99.50".into()), None, Some("0.01".into())]
    );
    assert_eq!(
        column_strings(&out, "modified_at"),
        column_strings(&out, "_sfetl_cursor")
    );
    assert_eq!(
        column_strings(&out, "_sfetl_cursor")[0].as_deref(),
        Some("2023-11-14T22:13:20Z")
    );
    let deleted = out
        .column_by_name("_sfetl_is_deleted")
        .unwrap()
        .as_boolean();
    assert_eq!(
        deleted.iter().collect::<Vec<_>>(),
        vec![Some(false), Some(false), Some(true)]
    );
}

#[test]
fn finds_columns_by_name_in_any_order_and_casts() {
    let plan = people_plan();
    let lead = &plan.stream("person").unwrap().sources[0];
    let reference = lead.evaluate(&lead_batch()).unwrap();
    // Reversed columns, lower-case names, an extra column, Score__c as text: same result.
    let b = lead_batch();
    let mut fields: Vec<Field> = Vec::new();
    let mut cols: Vec<ArrayRef> = Vec::new();
    for i in (0..b.num_columns()).rev() {
        let f = b.schema().field(i).clone();
        if f.name() == "Score__c" {
            fields.push(Field::new("score__c", DataType::Utf8, true));
            cols.push(arrow::compute::cast(b.column(i), &DataType::Utf8).unwrap());
        } else {
            fields.push(f.with_name(b.schema().field(i).name().to_lowercase()));
            cols.push(b.column(i).clone());
        }
    }
    fields.push(Field::new("Extra", DataType::Utf8, true));
    cols.push(strings(&[None, None, None]));
    let shuffled = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap();
    assert_eq!(lead.evaluate(&shuffled).unwrap(), reference);
    // A second batch of the same schema takes the cached layout.
    assert_eq!(lead.evaluate(&shuffled).unwrap(), reference);
}

#[test]
fn parent_fields_arrive_flat_as_bulk_sends_them_or_nested_as_rest_does() {
    let plan = people_plan();
    let contact = &plan.stream("person").unwrap().sources[1];
    let ids = strings(&[Some("0031"), Some("0032")]);
    let common = |company: (Field, ArrayRef)| {
        let mut fields = vec![
            Field::new("Id", DataType::Utf8, true),
            Field::new("Email", DataType::Utf8, true),
            Field::new("FirstName", DataType::Utf8, true),
            Field::new("LastName", DataType::Utf8, true),
            company.0,
            Field::new("Score__c", DataType::Decimal128(5, 2), true),
            Field::new("SystemModstamp", ts_type(), true),
        ];
        fields.push(Field::new("IsDeleted", DataType::Boolean, true));
        RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            vec![
                ids.clone(),
                strings(&[Some("A@B.C"), Some("d@e.f")]),
                strings(&[Some("Alan"), None]),
                strings(&[Some("Turing"), None]),
                company.1,
                Arc::new(
                    Decimal128Array::from(vec![Some(100), Some(-250)])
                        .with_precision_and_scale(5, 2)
                        .unwrap(),
                ),
                timestamps(&[5, 6]),
                Arc::new(BooleanArray::from(vec![false, false])),
            ],
        )
        .unwrap()
    };
    let flat = common((
        Field::new("Account.Name", DataType::Utf8, true),
        strings(&[Some("Bletchley"), None]),
    ));
    let out = contact.evaluate(&flat).unwrap();
    assert_eq!(
        column_strings(&out, "company"),
        vec![Some("Bletchley".into()), None]
    );
    assert_eq!(
        column_strings(&out, "source_object"),
        vec![Some("Contact".into()), Some("Contact".into())]
    );
    assert_eq!(
        column_strings(&out, "full_name"),
        vec![Some("Alan Turing".into()), Some("".into())]
    );
    assert_eq!(
        column_strings(&out, "score"),
        vec![Some("1.00".into()), Some("-2.50".into())]
    );
    // REST: `Account` is an object with `Name`, or null when the contact has no account.
    let account_fields = Fields::from(vec![Field::new("Name", DataType::Utf8, true)]);
    let nested = StructArray::try_new(
        account_fields.clone(),
        vec![strings(&[
            Some("Bletchley"),
            Some("ignored: parent is null"),
        ])],
        Some(vec![true, false].into()),
    )
    .unwrap();
    let rest = common((
        Field::new("Account", DataType::Struct(account_fields), true),
        Arc::new(nested),
    ));
    assert_eq!(contact.evaluate(&rest).unwrap(), out);
}

#[test]
fn compound_components_come_as_their_own_fields_or_inside_the_struct() {
    let plan = people_plan();
    let account = &plan.stream("account").unwrap().sources[0];
    let flat = RecordBatch::try_new(
        account.input_schema.clone(),
        vec![
            strings(&[Some("0011")]),
            strings(&[Some("Acme")]),
            Arc::new(
                Decimal128Array::from(vec![Some(1_000_000)])
                    .with_precision_and_scale(18, 0)
                    .unwrap(),
            ),
            strings(&[Some("France")]),
            timestamps(&[7]),
            Arc::new(BooleanArray::from(vec![false])),
        ],
    )
    .unwrap();
    let out = account.evaluate(&flat).unwrap();
    assert_eq!(
        column_strings(&out, "billing_country"),
        vec![Some("France".into())]
    );
    assert_eq!(
        column_strings(&out, "annual_revenue"),
        vec![Some("1000000".into())]
    );
    assert_eq!(column_strings(&out, "id"), vec![Some("0011".into())]);
    // An assembled BillingAddress struct instead of BillingCountry.
    let addr_fields = Fields::from(vec![
        Field::new("city", DataType::Utf8, true),
        Field::new("country", DataType::Utf8, true),
    ]);
    let addr = StructArray::try_new(
        addr_fields.clone(),
        vec![strings(&[Some("Paris")]), strings(&[Some("France")])],
        None,
    )
    .unwrap();
    let mut fields: Vec<Field> = flat
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut cols = flat.columns().to_vec();
    fields[3] = Field::new("BillingAddress", DataType::Struct(addr_fields), true);
    cols[3] = Arc::new(addr);
    let assembled = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap();
    assert_eq!(account.evaluate(&assembled).unwrap(), out);
}

#[test]
fn a_batch_without_a_selected_field_is_refused_by_name() {
    let plan = people_plan();
    let account = &plan.stream("account").unwrap().sources[0];
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("Id", DataType::Utf8, true)])),
        vec![strings(&[Some("0011")])],
    )
    .unwrap();
    assert_eq!(
        account.evaluate(&batch).unwrap_err().to_string(),
        "mapping Account: the batch has no column \"Name\" (columns: Id)"
    );
}

#[test]
fn describes_needed_lists_objects_then_parents() {
    let m = people();
    assert_eq!(
        describes_needed(&m, &HashMap::new()),
        vec!["Lead", "Contact", "Account"]
    );
    assert_eq!(
        describes_needed(&m, &describes(&["Lead", "Contact"])),
        vec!["Account"]
    );
    let contact_only = Mapping::from_yaml_str(
        "streams: [{name: c, from: [{object: Contact, columns: {id: Id, boss: ReportsTo.Account.Name, owner: Owner.Email}}]}]",
        "t",
    )
    .unwrap();
    assert_eq!(
        describes_needed(&contact_only, &describes(&["Contact"])),
        vec!["Account", "User"]
    );
    assert_eq!(
        describes_needed(&contact_only, &describes(&["Contact", "User"])),
        vec!["Account"]
    );
    assert!(
        describes_needed(&contact_only, &describes(&["Contact", "User", "Account"])).is_empty()
    );
    let plan = compile(&contact_only, &describes(&["Contact", "User", "Account"])).unwrap();
    assert_eq!(
        plan.streams[0].sources[0].fields,
        vec![
            "Id",
            "ReportsTo.Account.Name",
            "Owner.Email",
            "SystemModstamp",
            "IsDeleted"
        ]
    );
}

#[test]
fn check_objects_suggests_real_objects() {
    let m = Mapping::from_yaml_str(
        "streams: [{name: p, from: [{object: Leed, columns: {id: Id}}]}]",
        "t",
    )
    .unwrap();
    let org = vec![
        "Account".to_string(),
        "Lead".to_string(),
        "Contact".to_string(),
    ];
    assert_eq!(
        check_objects(&m, &org).unwrap_err().to_string(),
        "mapping stream \"p\": unknown object \"Leed\"; did you mean Lead?"
    );
    assert!(check_objects(&people(), &org).is_ok());
}

#[test]
fn expressions_are_case_insensitive_and_may_compute() {
    let plan = compile_yaml(
        "streams: [{name: a, primary_key: [k], from: [{object: Account, columns: {k: \"upper(name) || '-' || id\", big: \"annualrevenue * 2 > 10\", y: \"billingaddress.COUNTRY\", n: 3, t: true}}]}]",
    )
    .unwrap();
    let s = &plan.streams[0];
    assert_eq!(
        s.sources[0].fields,
        vec![
            "Id",
            "Name",
            "AnnualRevenue",
            "BillingCountry",
            "SystemModstamp",
            "IsDeleted"
        ]
    );
    let types: Vec<String> = s
        .schema
        .fields()
        .iter()
        .map(|f| f.data_type().to_string())
        .collect();
    assert_eq!(
        types,
        vec![
            "Utf8",
            "Boolean",
            "Utf8",
            "Int64",
            "Boolean",
            "Timestamp(µs, \"UTC\")",
            "Boolean"
        ]
    );
}

#[test]
fn regular_expressions_clean_values() {
    let plan = compile_yaml(
        r#"streams: [{name: a, primary_key: [id], from: [{object: Account, columns: {id: Id, domain: "regexp_replace(lower(Website), '^https?://(www[.])?([^/]+).*$', '\\2')", dialable: "regexp_like(Phone, '^[+]?[0-9 ()-]+$')"}}]}]"#,
    )
    .unwrap();
    let source = &plan.streams[0].sources[0];
    let columns: Vec<ArrayRef> = source
        .input_schema
        .fields()
        .iter()
        .map(|f| match f.name().as_str() {
            "Id" => strings(&[Some("0011"), Some("0012"), Some("0013")]),
            "Website" => strings(&[Some("https://www.Example.com/about"), Some("acme.io"), None]),
            "Phone" => strings(&[Some("+1 (415) 555-0100"), Some("call us"), None]),
            "SystemModstamp" => timestamps(&[1, 2, 3]),
            "IsDeleted" => Arc::new(BooleanArray::from(vec![false, false, false])) as ArrayRef,
            other => panic!("unexpected input field {other}"),
        })
        .collect();
    let batch = RecordBatch::try_new(source.input_schema.clone(), columns).unwrap();
    let out = source.evaluate(&batch).unwrap();
    assert_eq!(
        column_strings(&out, "domain"),
        vec![Some("example.com".into()), Some("acme.io".into()), None]
    );
    assert_eq!(
        column_strings(&out, "dialable"),
        vec![Some("true".into()), Some("false".into()), None]
    );
}

#[test]
fn unify_widens_compatible_types_only() {
    use super::compile::unify_for_tests as unify;
    assert_eq!(
        unify(&DataType::Int32, &DataType::Int64),
        Some(DataType::Int64)
    );
    assert_eq!(
        unify(&DataType::Decimal128(5, 2), &DataType::Decimal128(18, 0)),
        Some(DataType::Decimal128(20, 2))
    );
    assert_eq!(
        unify(&DataType::Decimal128(5, 2), &DataType::Int32),
        Some(DataType::Decimal128(12, 2))
    );
    assert_eq!(
        unify(&DataType::Float64, &DataType::Decimal128(5, 2)),
        Some(DataType::Float64)
    );
    assert_eq!(
        unify(&DataType::Null, &DataType::Date32),
        Some(DataType::Date32)
    );
    assert_eq!(
        unify(&DataType::Utf8View, &DataType::Utf8),
        Some(DataType::Utf8)
    );
    assert_eq!(unify(&DataType::Utf8, &DataType::Int32), None);
    assert_eq!(unify(&DataType::Date32, &ts_type()), None);
}

const LEAD_COLUMNS: &str = "source_id: Id";

fn one_lead(columns: &str) -> String {
    format!(
        "streams:\n  - name: p\n    primary_key: [source_id]\n    from:\n      - object: Lead\n        columns:\n          {LEAD_COLUMNS}\n          {columns}\n"
    )
}

#[test]
fn unknown_fields_suggest_the_closest_real_names() {
    assert_eq!(
        error_of(&one_lead("email: lower(Emial)")),
        "mapping stream \"p\", column \"email\" from Lead: unknown field \"Emial\" on Lead; did you mean Email?"
    );
    assert_eq!(
        error_of(&one_lead("x: Nme")),
        "mapping stream \"p\", column \"x\" from Lead: unknown field \"Nme\" on Lead; did you mean Name?"
    );
    assert_eq!(
        error_of(&one_lead("x: Stat")),
        "mapping stream \"p\", column \"x\" from Lead: unknown field \"Stat\" on Lead; did you mean State or Status?"
    );
    assert_eq!(
        error_of(&one_lead("x: Zebra")),
        "mapping stream \"p\", column \"x\" from Lead: unknown field \"Zebra\" on Lead"
    );
    assert_eq!(
        error_of(&one_lead("x: Adress.city")),
        "mapping stream \"p\", column \"x\" from Lead: unknown field \"Adress.city\" on Lead; did you mean Address.city?"
    );
    assert_eq!(
        error_of(&one_lead("x: Address.cty")),
        "mapping stream \"p\", column \"x\" from Lead: unknown field \"Address.cty\" on Lead; did you mean Address.city?"
    );
    assert_eq!(
        error_of(&one_lead("x: ConvertedAccount.Nmae")),
        "mapping stream \"p\", column \"x\" from Lead: unknown field \"ConvertedAccount.Nmae\" on Account; did you mean ConvertedAccount.Name?"
    );
    assert_eq!(
        error_of(&one_lead("x: Address")),
        "mapping stream \"p\", column \"x\" from Lead: Address is a compound field; use its components, e.g. Address.street"
    );
}

#[test]
fn unknown_objects_and_missing_describes() {
    assert_eq!(
        error_of("streams: [{name: p, from: [{object: Contct, columns: {id: Id}}]}]"),
        "mapping stream \"p\": unknown object \"Contct\"; did you mean Contact?"
    );
    let m = Mapping::from_yaml_str(
        "streams: [{name: p, from: [{object: Lead, columns: {id: Id, o: Owner.Name}}]}]",
        "t",
    )
    .unwrap();
    assert_eq!(
        compile(&m, &describes(&["Lead"])).unwrap_err().to_string(),
        "mapping: the describe of Group is needed but was not fetched"
    );
}

#[test]
fn expressions_that_do_not_parse_or_type_check() {
    assert_eq!(
        error_of(&one_lead("email: \"lower(Email\"")),
        "mapping stream \"p\", column \"email\" from Lead: cannot parse \"lower(Email\": sql parser error: Expected: ), found: EOF"
    );
    assert_eq!(
        error_of(&one_lead("email: \"Email Phone\"")),
        "mapping stream \"p\", column \"email\" from Lead: cannot parse \"Email Phone\": unexpected Phone after the expression"
    );
    assert_eq!(
        error_of(&one_lead("email: lowr(Email)")),
        "mapping stream \"p\", column \"email\" from Lead: \"lowr(Email)\" does not type-check: Error during planning: Invalid function 'lowr'.\nDid you mean 'lower'?"
    );
    assert_eq!(
        error_of(&one_lead("x: \"IsConverted - Email\"")),
        "mapping stream \"p\", column \"x\" from Lead: \"IsConverted - Email\" does not type-check: Error during planning: Cannot coerce arithmetic expression Boolean - Utf8 to valid types"
    );
}

#[test]
fn from_entries_must_agree_on_columns_and_types() {
    assert_eq!(
        error_of(
            "streams: [{name: p, from: [{object: Lead, columns: {id: Id, a: Email, b: Phone}}, {object: Contact, columns: {id: Id, a: Email, c: Phone}}]}]"
        ),
        "mapping stream \"p\": from Contact yields different columns than from Lead: it lacks b and it adds c; every from entry must yield the same column names"
    );
    assert_eq!(
        error_of(
            "streams: [{name: p, from: [{object: Lead, columns: {id: Id, score: Score__c}}, {object: Contact, columns: {id: Id, score: Email}}]}]"
        ),
        "mapping stream \"p\": column \"score\" is Decimal128(5, 2) from Lead but Utf8 from Contact; make them compatible, e.g. with CAST(... AS VARCHAR)"
    );
    // Compatible types are widened and each source cast to them.
    let plan = compile_yaml(
        "streams: [{name: p, from: [{object: Lead, columns: {id: Id, n: NumberOfEmployees}}, {object: Account, columns: {id: Id, n: AnnualRevenue}}]}]",
    )
    .unwrap();
    assert_eq!(
        plan.streams[0]
            .schema
            .field_with_name("n")
            .unwrap()
            .data_type(),
        &DataType::Decimal128(18, 0)
    );
}

#[test]
fn primary_keys_reserved_names_and_duplicates() {
    assert_eq!(
        error_of(
            "streams: [{name: p, primary_key: [sid], from: [{object: Lead, columns: {source_id: Id, email: Email}}]}]"
        ),
        "mapping stream \"p\": primary_key column \"sid\" is not produced; the columns are source_id, email"
    );
    assert_eq!(
        error_of(
            "streams: [{name: p, from: [{object: Lead, columns: {k: lower(Id)}}, {object: Contact, columns: {k: Id}}]}]"
        ),
        "mapping stream \"p\": no primary_key given and no column is mapped from Id in every from entry; add primary_key: [...] naming the columns that identify a row"
    );
    assert_eq!(
        error_of(
            "streams: [{name: p, from: [{object: Lead, columns: {id: Id, _sfetl_x: Email}}]}]"
        ),
        "mapping stream \"p\": column \"_sfetl_x\" is reserved (names starting with _sfetl_ are sfetl's own columns); rename it"
    );
    assert_eq!(
        error_of(
            "streams: [{name: p, from: [{object: Lead, columns: {id: Id}}]}, {name: p, from: [{object: Contact, columns: {id: Id}}]}]"
        ),
        "mapping: two streams are named \"p\"; stream names must be unique"
    );
}

#[test]
fn a_column_named_twice_is_refused_not_kept_once() {
    let twice = "streams:\n  - name: p\n    from:\n      - object: Contact\n        columns:\n          id: Id\n          id: Email\n";
    let e = Mapping::from_yaml_str(twice, "m.yaml")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("m.yaml is not valid YAML or JSON: "), "{e}");
    assert!(e.contains("duplicate") && e.contains("id"), "{e}");
}

#[test]
fn files_that_are_not_mappings() {
    assert_eq!(
        Mapping::from_yaml_str("streams: [{name: p", "m.yaml")
            .unwrap_err()
            .to_string(),
        "m.yaml is not valid YAML or JSON: did not find expected ',' or '}' at line 2 column 1, while parsing a flow mapping at line 1 column 11"
    );
    assert_eq!(
        Mapping::from_yaml_str(
            "streams: [{name: 'p q', from: [{object: Lead, colums: {id: Id}}]}]",
            "m.yaml"
        )
        .unwrap_err()
        .to_string(),
        "m.yaml does not follow spec/mapping.schema.json: streams[0].name: \"p q\" does not match \"^[A-Za-z_][A-Za-z0-9_]*$\"; streams[0].from[0]: \"columns\" is a required property; streams[0].from[0]: Additional properties are not allowed ('colums' was unexpected)"
    );
    assert_eq!(
        Mapping::from_file(std::path::Path::new("/nonexistent/m.yaml"))
            .unwrap_err()
            .to_string(),
        "cannot read the mapping file /nonexistent/m.yaml: No such file or directory (os error 2)"
    );
    assert!(mapping_schema()["definitions"]["source"]["properties"]["soql_where"].is_object());
}
