//! Config validation: exact problems for exact inputs.

use serde_json::json;

use super::*;

fn problems(v: serde_json::Value) -> Vec<(String, String)> {
    match Config::from_value(v) {
        Err(ConfigError::Invalid(ps)) => ps.into_iter().map(|p| (p.field, p.message)).collect(),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("config was accepted"),
    }
}

fn airbyte_config() -> serde_json::Value {
    serde_json::from_str(include_str!("../../fixtures/configs/airbyte_style.json")).unwrap()
}

#[test]
fn airbyte_salesforce_config_is_accepted_unchanged() {
    let c = Config::from_value(airbyte_config()).unwrap();
    match &c.auth {
        AuthMethod::RefreshToken {
            client_secret,
            refresh_token,
        } => {
            assert_eq!(
                client_secret.as_ref().unwrap().expose(),
                "EXAMPLE-CLIENT-SECRET-9c1e"
            );
            assert_eq!(refresh_token.expose(), "5Aep861EXAMPLE-REFRESH-TOKEN-f00d");
        }
        other => panic!("wrong auth {other:?}"),
    }
    assert_eq!(
        c.start_date.unwrap().to_rfc3339(),
        "2021-07-25T00:00:00+00:00"
    );
    assert_eq!(c.stream_slice_step.as_ref().unwrap().as_str(), "P30D");
    assert_eq!(c.lookback_window.as_str(), "PT10M");
    assert_eq!(
        c.streams_criteria,
        vec![StreamCriterion {
            criteria: Criteria::StartsWith,
            value: "Acc".into()
        }]
    );
    assert!(c.streams_criteria[0].matches("Account"));
    assert!(!c.streams_criteria[0].matches("Contact"));
    assert_eq!(c.api_version, "62.0");
    assert_eq!(c.output.format, OutputFormat::Records);
    assert_eq!(c.login_base_url(), "https://login.salesforce.com");
    assert_eq!(c.raw.0, airbyte_config());
}

#[test]
fn missing_client_id_bad_date_and_bad_step_are_reported_together() {
    let ps = problems(
        serde_json::from_str(include_str!("../../fixtures/configs/bad_config.json")).unwrap(),
    );
    assert_eq!(
        ps,
        vec![
            ("client_id".to_string(), "is missing: set it to the Consumer Key of your connected app (Setup > App Manager > your app > View > Manage Consumer Details)".to_string()),
            ("start_date".to_string(), "\"yesterday\" is not valid: use a UTC date YYYY-MM-DD or date-time YYYY-MM-DDTHH:mm:ssZ, e.g. \"2021-07-25\" or \"2021-07-25T00:00:00Z\"".to_string()),
            ("stream_slice_step".to_string(), "\"30 days\" is not valid: use an ISO 8601 duration, e.g. \"P30D\" (30 days), \"PT12H\" (12 hours), \"P1M\" (1 month)".to_string()),
        ]
    );
    let text = Config::from_value(
        serde_json::from_str(include_str!("../../fixtures/configs/bad_config.json")).unwrap(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        text.starts_with("The config has 3 problems: (1) client_id: is missing"),
        "{text}"
    );
    assert!(!text.contains("EXAMPLE-CLIENT-SECRET") && !text.contains("EXAMPLE-REFRESH-TOKEN"));
}

#[test]
fn dates_that_match_the_pattern_but_do_not_exist_and_end_before_start() {
    let mut c = airbyte_config();
    c["start_date"] = json!("2023-02-30");
    assert_eq!(
        problems(c.clone()),
        vec![("start_date".into(), "\"2023-02-30\" is not a real date: use a UTC date YYYY-MM-DD or date-time YYYY-MM-DDTHH:mm:ssZ, e.g. \"2021-07-25\" or \"2021-07-25T00:00:00Z\"".into())]
    );
    c["start_date"] = json!("2024-01-02");
    c["end_date"] = json!("2024-01-01T00:00:00Z");
    assert_eq!(
        problems(c),
        vec![("end_date".into(), "2024-01-01T00:00:00+00:00 is not after start_date 2024-01-02T00:00:00+00:00: give an end_date later than the start_date, or leave it empty to read up to now".into())]
    );
}

#[test]
fn zero_duration_is_rejected_semantically() {
    let mut c = airbyte_config();
    c["stream_slice_step"] = json!("PT0S");
    assert_eq!(
        problems(c.clone()),
        vec![("stream_slice_step".into(), "\"PT0S\" is a zero duration; give a positive one such as PT10M: use an ISO 8601 duration, e.g. \"P30D\" (30 days), \"PT12H\" (12 hours), \"P1M\" (1 month)".into())]
    );
    c["stream_slice_step"] = json!("P1D");
    c["lookback_window"] = json!("PT0S");
    c["cursor_lag"] = json!("PT0S");
    let cfg = Config::from_value(c).unwrap();
    assert_eq!(
        (cfg.lookback_window.as_str(), cfg.cursor_lag.as_str()),
        ("PT0S", "PT0S")
    );
}

#[test]
fn login_url_must_be_https_unless_loopback() {
    let mut c = airbyte_config();
    c["login_url"] = json!("http://example.com");
    let ps = problems(c.clone());
    assert_eq!(ps.len(), 1);
    assert_eq!(ps[0].0, "login_url");
    assert!(
        ps[0]
            .1
            .contains("uses http:// for a host that is not loopback"),
        "{}",
        ps[0].1
    );
    for ok in [
        "http://127.0.0.1:1718",
        "http://localhost:9",
        "http://[::1]:80",
        "https://acme.my.salesforce.com",
    ] {
        c["login_url"] = json!(ok);
        let cfg = Config::from_value(c.clone()).unwrap();
        assert_eq!(cfg.login_base_url(), ok);
    }
}

#[test]
fn login_host_from_domain_and_sandbox() {
    let mut c = airbyte_config();
    c["is_sandbox"] = json!(true);
    assert_eq!(
        Config::from_value(c.clone()).unwrap().login_base_url(),
        "https://test.salesforce.com"
    );
    c["domain"] = json!("https://acme--uat.sandbox.my.salesforce.com/");
    assert_eq!(
        Config::from_value(c).unwrap().login_base_url(),
        "https://acme--uat.sandbox.my.salesforce.com"
    );
}

#[test]
fn each_flow_names_what_it_lacks() {
    assert_eq!(
        problems(json!({"client_id": "x", "auth_type": "client_credentials"})),
        vec![
            ("client_secret".into(), "is missing: set it to the Consumer Secret shown next to the Consumer Key (Setup > App Manager > your app > View > Manage Consumer Details)".into()),
            ("domain".into(), "is missing: the client_credentials flow only works on the org's My Domain host; set domain to e.g. \"acme.my.salesforce.com\" (Setup > My Domain)".into()),
        ]
    );
    assert_eq!(
        problems(json!({"client_id": "x", "auth_type": "jwt_bearer"})),
        vec![
            ("username".into(), "is missing: the JWT bearer flow signs in as this Salesforce user (e.g. integration@example.com)".into()),
            ("private_key".into(), "is missing: give private_key (PEM text) or private_key_path (a PEM file), the RSA key whose certificate is uploaded to the app".into()),
        ]
    );
    assert_eq!(
        problems(json!({"client_id": "x", "refresh_token": ""})),
        vec![("refresh_token".into(), "is missing: run `sfetl login` to obtain one, or choose another auth_type (client_credentials, jwt_bearer)".into())]
    );
    let ps = problems(
        json!({"client_id": "x", "auth_type": "jwt_bearer", "username": "u", "private_key": "not a key"}),
    );
    assert_eq!(ps, vec![("private_key".into(), "does not hold a PEM private key (a block starting with -----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)".into())]);
}

#[test]
fn wrong_types_and_enums_never_quote_secrets() {
    let ps = problems(
        json!({"client_id": "x", "refresh_token": "r", "client_secret": 12345,
        "auth_type": "password", "output": {"format": "csv", "storage_options": {"aws_secret_access_key": ["SECRETKEY"]}}}),
    );
    assert_eq!(
        ps,
        vec![
            ("client_secret".into(), "must be string, not a number".into()),
            ("auth_type".into(), "\"password\" is not one of \"refresh_token\", \"Client\", \"client_credentials\", \"jwt_bearer\"".into()),
            ("output.format".into(), "\"csv\" is not one of \"records\", \"parquet\", \"arrow\", \"delta\"".into()),
            ("output.storage_options.aws_secret_access_key".into(), "must be boolean or number or string, not an array".into()),
        ]
    );
}

#[test]
fn parquet_output_needs_a_path_and_keeps_storage_options_secret() {
    let mut c = airbyte_config();
    c["output"] = json!({"format": "parquet"});
    assert_eq!(problems(c.clone()), vec![("output.path".into(), "is missing: parquet and delta output need a folder or URL, e.g. \"./export\" or \"s3://bucket/prefix\"".into())]);
    c["output"] = json!({"format": "parquet", "path": "s3://b/p", "storage_options": {"aws_secret_access_key": "SEKRIT", "aws_allow_http": true}});
    let cfg = Config::from_value(c).unwrap();
    assert_eq!(
        cfg.output.storage_options["aws_secret_access_key"].expose(),
        "SEKRIT"
    );
    assert_eq!(
        cfg.output.storage_options["aws_allow_http"].expose(),
        "true"
    );
    assert!(!format!("{cfg:?}").contains("SEKRIT"));
    assert!(!format!("{cfg:?}").contains("EXAMPLE-CLIENT-SECRET"));
}

#[test]
fn parquet_encodings_are_auto_unless_plain_is_asked() {
    let mut c = airbyte_config();
    c["output"] = json!({"format": "parquet", "path": "./export"});
    let cfg = Config::from_value(c.clone()).unwrap();
    assert_eq!(cfg.output.encodings, ParquetEncodings::Auto);
    c["output"]["encodings"] = json!("plain");
    let cfg = Config::from_value(c.clone()).unwrap();
    assert_eq!(cfg.output.encodings, ParquetEncodings::Plain);
    c["output"]["encodings"] = json!("delta");
    assert_eq!(problems(c), vec![("output.encodings".into(), "\"delta\" is not one of \"auto\", \"plain\": \"auto\" lets sfetl write delta encodings where they store a column as small for less CPU, \"plain\" writes PLAIN and dictionary pages only, for readers without the delta encodings (Spark before 3.3)".into())]);
}

#[test]
fn missing_mapping_file_is_named() {
    let mut c = airbyte_config();
    c["mapping"] = json!("no/such/mapping.yaml");
    assert_eq!(problems(c), vec![("mapping".into(), "the mapping file \"no/such/mapping.yaml\" does not exist: give the path of a YAML or JSON mapping file (relative paths start from the current folder)".into())]);
}

#[test]
fn unreadable_and_non_json_files() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.json");
    let e = Config::from_file(&missing).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "cannot read the config file {}",
            missing.display()
        )),
        "{e}"
    );
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"client_secret\": \"SEKRIT\",,}").unwrap();
    let e = Config::from_file(&bad).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "the config file {} is not valid JSON (line 1 column 28: syntax error); it must hold one JSON object such as {{\"client_id\": \"...\", \"refresh_token\": \"...\"}}",
            bad.display()
        )
    );
    let empty = dir.path().join("empty.json");
    std::fs::write(&empty, "\n").unwrap();
    let e = Config::from_file(&empty).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "the config file {} is not valid JSON (the file is empty); it must hold one JSON object such as {{\"client_id\": \"...\", \"refresh_token\": \"...\"}}",
            empty.display()
        )
    );
    assert_eq!(
        Config::from_value(json!([1])).unwrap_err().to_string(),
        "The config has 1 problem: (1) config: must be a JSON object, not an array"
    );
}

#[test]
fn a_config_file_with_a_utf8_byte_order_mark_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    let mut bytes = vec![0xEF, 0xBB, 0xBF];
    bytes.extend(include_bytes!("../../fixtures/configs/airbyte_style.json"));
    std::fs::write(&path, bytes).unwrap();
    let c = Config::from_file(&path).unwrap();
    assert_eq!(c.client_id, airbyte_config()["client_id"].as_str().unwrap());
    assert!(c.rewrite_config_file);
    // Elsewhere a BOM is still not JSON.
    std::fs::write(&path, "{\"client_id\": \u{feff}\"x\"}").unwrap();
    assert!(matches!(
        Config::from_file(&path),
        Err(ConfigError::NotJson { .. })
    ));
}

#[test]
fn schema_drift_defaults_to_fail_and_a_bad_value_says_what_each_does() {
    assert_eq!(
        Config::from_value(airbyte_config()).unwrap().schema_drift,
        crate::config::SchemaDrift::Fail
    );
    let mut c = airbyte_config();
    c["schema_drift"] = json!("ignore");
    assert_eq!(
        Config::from_value(c.clone()).unwrap().schema_drift,
        crate::config::SchemaDrift::Ignore
    );
    c["schema_drift"] = json!("skip");
    assert_eq!(
        problems(c),
        vec![(
            "schema_drift".into(),
            "\"skip\" is not one of \"fail\", \"ignore\": \"fail\" ends a stream whose selected fields are gone from the org's describe, \"ignore\" reads it without them".into()
        )]
    );
}

#[test]
fn new_fields_defaults_to_backfill_and_a_bad_value_says_what_each_does() {
    assert_eq!(
        Config::from_value(airbyte_config()).unwrap().new_fields,
        crate::config::NewFields::Backfill
    );
    let mut c = airbyte_config();
    c["new_fields"] = json!("ignore");
    assert_eq!(
        Config::from_value(c.clone()).unwrap().new_fields,
        crate::config::NewFields::Ignore
    );
    c["new_fields"] = json!("skip");
    assert_eq!(
        problems(c),
        vec![(
            "new_fields".into(),
            "\"skip\" is not one of \"backfill\", \"ignore\": \"backfill\" reads an object again from start_date when it reads fields its last run did not, \"ignore\" reads on from the saved cursor".into()
        )]
    );
}

#[test]
fn formula_refresh_is_a_duration_or_off_and_daily_by_default() {
    let c = airbyte_config();
    let cfg = Config::from_value(c.clone()).unwrap();
    assert_eq!(
        cfg.formula_refresh.as_ref().map(|d| d.as_str()),
        Some("P1D")
    );
    for (given, want) in [
        ("PT6H", Some("PT6H")),
        ("PT0S", Some("PT0S")),
        ("off", None),
    ] {
        let mut c = c.clone();
        c["formula_refresh"] = json!(given);
        let cfg = Config::from_value(c).unwrap();
        assert_eq!(cfg.formula_refresh.as_ref().map(|d| d.as_str()), want);
    }
    let mut bad = c.clone();
    bad["formula_refresh"] = json!("daily");
    assert_eq!(
        problems(bad),
        vec![("formula_refresh".into(), "\"daily\" is not valid: use an ISO 8601 duration, e.g. \"P1D\" (once a day, the default), \"PT6H\" (every 6 hours), \"PT0S\" (on every incremental read), or \"off\" to never read formula fields again on their own".into())]
    );
}

#[test]
fn a_number_out_of_its_range_says_the_range() {
    let mut v = airbyte_config();
    v["max_concurrent_jobs"] = json!(0);
    v["max_api_usage_percent"] = json!(150);
    let mut ps = problems(v);
    ps.sort();
    assert_eq!(
        ps,
        vec![
            (
                "max_api_usage_percent".to_string(),
                "150 is over the most allowed, 100".to_string()
            ),
            (
                "max_concurrent_jobs".to_string(),
                "0 is below the least allowed, 1".to_string()
            ),
        ]
    );
}

#[test]
fn an_api_version_before_bulk_query_jobs_is_refused_naming_the_first_that_has_them() {
    assert_eq!(
        problems(json!({"client_id": "x", "refresh_token": "r", "api_version": "46.0"})),
        vec![(
            "api_version".into(),
            "46.0 is older than 47.0, the first version with the Bulk API 2.0 query jobs sfetl reads with: set it to 47.0 or later, or leave it out for 62.0".into()
        )]
    );
    for ok in ["47.0", "62.0", "99.0"] {
        let c =
            Config::from_value(json!({"client_id": "x", "refresh_token": "r", "api_version": ok}))
                .unwrap();
        assert_eq!(c.api_version, ok);
    }
}
