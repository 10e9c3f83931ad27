//! The real binary's protocol surface: spec, check and read on good and bad inputs.

use std::process::Output;

use serde_json::Value;

use crate::common::run_blocking;

const SECRET: &str = "EXAMPLE-CLIENT-SECRET-9c1e";
const REFRESH: &str = "5Aep861EXAMPLE-REFRESH-TOKEN-f00d";

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l}"))
        })
        .collect()
}

fn assert_no_secret(out: &Output) {
    for stream in [&out.stdout, &out.stderr] {
        let text = String::from_utf8_lossy(stream);
        assert!(
            !text.contains(SECRET) && !text.contains(REFRESH),
            "a secret leaked: {text}"
        );
    }
}

#[test]
fn spec_prints_one_spec_message_with_the_schema() {
    let out = run_blocking(&["spec"]);
    assert!(out.status.success());
    let msgs = lines(&out);
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["type"], "SPEC");
    let schema: Value = serde_json::from_str(include_str!("../../spec/spec.json")).unwrap();
    assert_eq!(msgs[0]["spec"]["connectionSpecification"], schema);
    assert_eq!(msgs[0]["spec"]["supportsIncremental"], true);
    assert_eq!(
        msgs[0]["spec"]["connectionSpecification"]["properties"]["client_secret"]["airbyte_secret"],
        true
    );
    assert_eq!(
        msgs[0]["spec"]["connectionSpecification"]["properties"]["refresh_token"]["airbyte_secret"],
        true
    );
    assert!(out.stderr.is_empty());
}

#[test]
fn check_with_bad_config_names_all_three_fields_and_exits_zero() {
    let out = run_blocking(&["check", "--config", "fixtures/configs/bad_config.json"]);
    assert_eq!(out.status.code(), Some(0));
    let msgs = lines(&out);
    assert_eq!(msgs.len(), 1, "exactly one message");
    assert_eq!(msgs[0]["type"], "CONNECTION_STATUS");
    assert_eq!(msgs[0]["connectionStatus"]["status"], "FAILED");
    let m = msgs[0]["connectionStatus"]["message"].as_str().unwrap();
    assert!(
        m.starts_with("The config has 3 problems: (1) client_id: is missing"),
        "{m}"
    );
    assert!(
        m.contains("(2) start_date: \"yesterday\" is not valid"),
        "{m}"
    );
    assert!(
        m.contains("(3) stream_slice_step: \"30 days\" is not valid"),
        "{m}"
    );
    assert_no_secret(&out);
}

#[test]
fn read_with_bad_config_is_a_config_error_trace_and_fails() {
    let out = run_blocking(&[
        "read",
        "--config",
        "fixtures/configs/bad_config.json",
        "--catalog",
        "fixtures/catalogs/account.json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let msgs = lines(&out);
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["type"], "TRACE");
    assert_eq!(msgs[0]["trace"]["type"], "ERROR");
    assert_eq!(msgs[0]["trace"]["error"]["failure_type"], "config_error");
    let m = msgs[0]["trace"]["error"]["message"].as_str().unwrap();
    for field in ["client_id", "start_date", "stream_slice_step"] {
        assert!(m.contains(field), "{m}");
    }
    assert!(msgs[0]["trace"]["emitted_at"].as_f64().unwrap() > 1.6e12);
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("sfetl: error: The config has 3 problems")
    );
    assert_no_secret(&out);
}

#[test]
fn read_with_malformed_state_or_catalog_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    std::fs::write(&state, "{\"type\": \"STREAM\"}").unwrap();
    let out = run_blocking(&[
        "read",
        "--config",
        "fixtures/configs/airbyte_style.json",
        "--catalog",
        "fixtures/catalogs/account.json",
        "--state",
        state.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let msgs = lines(&out);
    assert_eq!(msgs[0]["trace"]["error"]["failure_type"], "config_error");
    assert_eq!(
        msgs[0]["trace"]["error"]["message"],
        format!(
            "the state file {} is not a valid state: a STREAM state without `stream`. Pass the `state` objects of the last STATE messages as a JSON list, `[]` for none, or leave out --state to start from start_date",
            state.display()
        )
    );

    let catalog = dir.path().join("catalog.json");
    std::fs::write(
        &catalog,
        "{\"streams\": [{\"stream\": {\"name\": \"Account\"}}]}",
    )
    .unwrap();
    let out = run_blocking(&[
        "read",
        "--config",
        "fixtures/configs/airbyte_style.json",
        "--catalog",
        catalog.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let m = lines(&out)[0]["trace"]["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        m.starts_with(&format!(
            "the catalog file {} is not a configured catalog: missing field `json_schema`",
            catalog.display()
        )),
        "{m}"
    );
    assert_no_secret(&out);
}

#[test]
fn every_command_has_help_with_an_example() {
    for verb in [
        "spec", "check", "discover", "read", "write", "login", "simulate", "demo", "query",
    ] {
        let out = run_blocking(&[verb, "--help"]);
        assert!(out.status.success(), "{verb}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("Example:\n  sfetl "), "{verb}: {text}");
    }
}

#[test]
fn a_slice_size_of_zero_rows_is_refused() {
    let out = run_blocking(&[
        "plan",
        "--config",
        "c.json",
        "--catalog",
        "k.json",
        "--max-rows-per-slice",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid value '0' for '--max-rows-per-slice <N>'"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}
