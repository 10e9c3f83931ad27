//! Adversarial regression tests (issue 14): hostile catalogs, filters, configs, rotated tokens
//! and closed pipes, each against the simulator over real HTTP with its exact outcome.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::*;
use serde_json::{Value, json};

/// The one TRACE ERROR of a failed run: (failure_type, message).
fn trace_error(out: &Output) -> (String, String) {
    let msgs = messages(out);
    let errors: Vec<&Value> = msgs
        .iter()
        .filter(|m| m["type"] == "TRACE" && m["trace"]["type"] == "ERROR")
        .collect();
    assert_eq!(errors.len(), 1, "one TRACE ERROR in {msgs:?}");
    let e = &errors[0]["trace"]["error"];
    (
        e["failure_type"].as_str().unwrap().to_string(),
        e["message"].as_str().unwrap().to_string(),
    )
}

/// An org whose describeGlobal also lists `Ghost__c` and `Phantom__c`, objects whose describe
/// answers 404 (as when the user lacks permission to describe them).
async fn env_with_ghosts() -> Env {
    let data = tempfile::tempdir().unwrap();
    let path = format!(
        "{}/crates/sfetl-sim/fixtures/describeGlobal.json",
        manifest_dir()
    );
    let mut global: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let template = global["sobjects"][0].clone();
    for name in ["Ghost__c", "Phantom__c"] {
        let mut o = template.clone();
        o["name"] = json!(name);
        o["label"] = json!(name);
        o["custom"] = json!(true);
        o["keyPrefix"] = json!(null);
        global["sobjects"].as_array_mut().unwrap().push(o);
    }
    write_json(data.path(), "describeGlobal.json", &global);
    let org = Org::start_with(sfetl_sim::SimOptions {
        scale: 2,
        seed: 7,
        data_dir: Some(data.keep()),
        ..Default::default()
    })
    .await;
    env_on(org, json!({}))
}

/// Runs `sfetl read` without asserting success.
async fn read(config: &Path, catalog: &Path) -> Output {
    read_out(config, catalog).await
}

/// Every file under `dir`, relative, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

const SEE_DISCOVER: &str = " Run `sfetl discover` to see the streams and fields this org offers.";

/// The run stopped before reading anything (exit 2) with one `config_error` TRACE: `problems`,
/// then the advice to run discover.
fn assert_catalog_refused(out: &Output, problems: &str) {
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        trace_error(out),
        (
            "config_error".to_string(),
            format!("{problems}{SEE_DISCOVER}")
        )
    );
}

#[tokio::test]
async fn stream_names_that_leave_the_output_folder_are_refused_before_any_describe_or_file() {
    let e = env(2, json!({})).await;
    // A user's file next to the export, where `export/../victim` would point.
    let victim = e.dir.path().join("out/victim/s1/part-00000.parquet");
    std::fs::create_dir_all(victim.parent().unwrap()).unwrap();
    std::fs::write(&victim, b"not sfetl's").unwrap();
    let export = e.dir.path().join("out/export");
    let config = parquet_config(&e, "parquet.json", &export);
    let traversal = "../../../../services/data/v62.0/sobjects/Account";
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[
            (traversal, &[], "incremental"),
            ("../victim", &[], "full_refresh"),
        ],
    );
    e.org.control("stats/reset", &json!({})).await;
    let out = read(&config, &cat).await;
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        trace_error(&out),
        (
            "config_error".to_string(),
            format!(
                "The catalog has 2 problems: (1) streams[0] \"{traversal}\" is not a stream name: it must start with a letter or an underscore (Salesforce API names such as Account or Score__c); use a name from `sfetl discover` (2) streams[1] \"../victim\" is not a stream name: it must start with a letter or an underscore (Salesforce API names such as Account or Score__c); use a name from `sfetl discover`.{SEE_DISCOVER}"
            )
        )
    );
    assert_eq!(std::fs::read(&victim).unwrap(), b"not sfetl's");
    assert_eq!(files_under(&export), Vec::<String>::new());
    // describeGlobal only: no object describe, no query reached Salesforce.
    let stats = e.org.stats().await;
    assert_eq!(
        (
            &stats["by_kind"]["describe"],
            &stats["by_kind"]["query"],
            &stats["by_kind"]["bulk_query"]
        ),
        (&json!(1), &json!(0), &json!(0)),
        "{stats}"
    );
}

#[tokio::test]
async fn the_same_stream_twice_is_refused_naming_both_entries() {
    let e = env(2, json!({})).await;
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[
            ("Account", &["Id", "Name"], "full_refresh"),
            ("Contact", &[], "full_refresh"),
            ("Account", &["Id", "Industry"], "full_refresh"),
        ],
    );
    let out = read(&e.config, &cat).await;
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        trace_error(&out).1,
        format!(
            "The catalog has 1 problem: (1) streams[0] \"Account\" and streams[2] \"Account\" are the same stream; list each stream once, with every field it needs in one json_schema.{SEE_DISCOVER}"
        )
    );
    assert_eq!(records(&messages(&out), "Account"), Vec::<Value>::new());
}

#[tokio::test]
async fn a_stream_named_in_the_wrong_case_is_refused_though_salesforce_describes_it() {
    let e = env(2, json!({})).await;
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("account", &[], "full_refresh")],
    );
    let out = read(&e.config, &cat).await;
    assert_catalog_refused(
        &out,
        "The catalog has 1 problem: (1) streams[0] \"account\": the org has no object and the mapping no stream of that name; did you mean Account?.",
    );
    // `account`'s describe (Salesforce answers it as Account's), then describeGlobal for the
    // names to suggest; nothing read.
    let stats = e.org.stats().await;
    assert_eq!(
        (
            &stats["by_kind"]["describe"],
            &stats["by_kind"]["bulk_query"]
        ),
        (&json!(2), &json!(0)),
        "{stats}"
    );
}

#[tokio::test]
async fn unknown_streams_and_fields_get_the_closest_names_in_read_and_check() {
    let e = env(2, json!({})).await;
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[
            ("Acount", &[], "full_refresh"),
            (
                "Contact",
                &["Id", "Emial", "_sfetl_deleted_at"],
                "incremental",
            ),
        ],
    );
    let problems = "The catalog has 2 problems: (1) streams[0] \"Acount\": the org has no object and the mapping no stream of that name; did you mean Account? (2) streams[1] \"Contact\" selects fields that Contact does not have: \"Emial\" (did you mean Email?); remove them from json_schema.properties.";
    // `read` leaves a raw stream's fields to its schema-drift check (see `drift.rs`): only the
    // stream name stops the run before any stream starts.
    let out = read(&e.config, &cat).await;
    assert_eq!(out.status.code(), Some(2));
    let (kind, message) = trace_error(&out);
    assert_eq!(kind, "config_error");
    assert_eq!(
        message,
        format!(
            "The catalog has 1 problem: (1) streams[0] \"Acount\": the org has no object and the mapping no stream of that name; did you mean Account?.{SEE_DISCOVER}"
        )
    );
    assert!(!message.contains("api_version"));

    let out = run(&[
        "check",
        "--config",
        e.config.to_str().unwrap(),
        "--catalog",
        cat.to_str().unwrap(),
    ])
    .await;
    assert!(out.status.success());
    assert_eq!(
        connection_status(&out),
        (
            "FAILED".to_string(),
            format!("The connection works, but the catalog is not valid: {problems}{SEE_DISCOVER}")
        )
    );
    let good = catalog(
        e.dir.path(),
        "good.json",
        &[("Contact", &["Id", "Email"], "incremental")],
    );
    let out = run(&[
        "check",
        "--config",
        e.config.to_str().unwrap(),
        "--catalog",
        good.to_str().unwrap(),
    ])
    .await;
    let (status, message) = connection_status(&out);
    assert_eq!(status, "SUCCEEDED", "{message}");
    assert!(
        message.ends_with(". Catalog: 1 stream(s) valid against the org."),
        "{message}"
    );
}

#[tokio::test]
async fn a_stream_whose_describe_is_refused_names_the_call_not_the_api_version() {
    let e = env_with_ghosts().await;
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[
            ("Account", &[], "full_refresh"),
            ("Ghost__c", &[], "full_refresh"),
        ],
    );
    let out = read(&e.config, &cat).await;
    assert_catalog_refused(
        &out,
        "The catalog has 1 problem: (1) streams[1] \"Ghost__c\": describeGlobal lists Ghost__c, but GET sobjects/Ghost__c/describe answered HTTP 404 NOT_FOUND (The requested resource does not exist): this user cannot describe it (object permissions), or the object is not available through the REST API.",
    );
    assert_eq!(records(&messages(&out), "Account"), Vec::<Value>::new());
}

#[tokio::test]
async fn a_mapped_stream_named_like_an_object_is_refused_by_discover() {
    let e = env(2, json!({})).await;
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(&e.config).unwrap()).unwrap();
    cfg["mapping"] = json!({"streams": [{"name": "Account", "from": [
        {"object": "Account", "columns": {"id": "Id"}}]}]});
    let config = write_json(e.dir.path(), "clash.json", &cfg);
    let out = run(&["discover", "--config", config.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        trace_error(&out),
        (
            "config_error".to_string(),
            "The config has 1 problem: (1) mapping: stream \"Account\" has the name of an org object, so the catalog would list it twice and `read` could not reach the object; rename the mapped stream".to_string()
        )
    );
}

/// A config with an inline mapping of one stream from Lead and Contact with these filters.
fn filtered(e: &Env, lead: &str, contact: Option<&str>) -> PathBuf {
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(&e.config).unwrap()).unwrap();
    let mut contact_source = json!({"object": "Contact", "columns": {"id": "Id"}});
    if let Some(c) = contact {
        contact_source["soql_where"] = json!(c);
    }
    cfg["mapping"] = json!({"streams": [{"name": "person", "from": [
        {"object": "Lead", "soql_where": lead, "columns": {"id": "Id"}},
        contact_source,
    ]}]});
    write_json(e.dir.path(), "filtered.json", &cfg)
}

#[tokio::test]
async fn a_filter_that_escapes_its_parentheses_is_refused_by_check_and_discover() {
    let e = env(2, json!({})).await;
    let config = filtered(
        &e,
        "Name = 'zzz') OR (Name != null",
        Some("IsDeleted = false ORDER BY Name LIMIT 5"),
    );
    let refused = "the inline mapping: streams[0].from[0].soql_where (stream \"person\", object Lead): the ) at character 13 closes a parenthesis the filter did not open, so the filter would escape its own parentheses; balance the parentheses; streams[0].from[1].soql_where (stream \"person\", object Contact): ORDER BY (at character 19) is not part of a condition: soql_where takes only what follows WHERE; sfetl reads every matching row, in its own order";
    let out = run(&["check", "--config", config.to_str().unwrap()]).await;
    assert!(out.status.success());
    assert_eq!(
        connection_status(&out),
        (
            "FAILED".to_string(),
            format!("The connection works, but the field mapping is not valid: {refused}")
        )
    );
    let out = run(&["discover", "--config", config.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        trace_error(&out),
        ("config_error".to_string(), refused.to_string())
    );
    let cat = catalog(e.dir.path(), "cat.json", &[("person", &[], "incremental")]);
    let out = read(&config, &cat).await;
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(records(&messages(&out), "person"), Vec::<Value>::new());
}

#[tokio::test]
async fn check_runs_each_filter_against_the_org_with_limit_1() {
    let e = env(2, json!({})).await;
    let config = filtered(&e, "IsConverted = false", Some("Nonexistent__c = 1"));
    let out = run(&["check", "--config", config.to_str().unwrap()]).await;
    let (status, message) = connection_status(&out);
    assert_eq!(status, "FAILED");
    let prefix = "The connection works, but Salesforce refuses the mapping's soql_where: stream \"person\" from Contact: \"Nonexistent__c = 1\" answered HTTP 400 INVALID_FIELD (";
    assert!(message.starts_with(prefix), "{message}");
    assert!(
        message.ends_with("); fix the condition in the mapping file"),
        "{message}"
    );
    assert!(
        message.contains("No such column 'Nonexistent__c'"),
        "{message}"
    );

    let config = filtered(&e, "IsConverted = false", None);
    e.org.control("stats/reset", &json!({})).await;
    let out = run(&["check", "--config", config.to_str().unwrap()]).await;
    let (status, message) = connection_status(&out);
    assert_eq!(status, "SUCCEEDED", "{message}");
    // The edition query and the filter's LIMIT 1 query.
    assert_eq!(e.org.stats().await["by_kind"]["query"], json!(2));
}

#[tokio::test]
async fn a_rotated_token_is_saved_in_the_config_file_and_works_on_the_next_run() {
    let e = env(2, json!({})).await;
    let c = &e.org.sim.credentials;
    // Hand-written: its own key order, spacing and an unknown key, readable by others.
    let original = format!(
        "{{\n    \"login_url\": \"{}\",  \"client_id\": \"{}\",\n    \"client_secret\": \"{}\",\n    \"refresh_token\": \"{}\",\n    \"my_note\": \"kept as is\", \"api_version\": \"62.0\"\n}}\n",
        e.org.sim.login_url, c.client_id, c.client_secret, c.refresh_token
    );
    let config = e.dir.path().join("hand.json");
    std::fs::write(&config, &original).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    e.org.sim.sim.oauth.set_rotation(true);
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("Account", &["Id"], "full_refresh")],
    );
    let out = read(&config, &cat).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let msgs = messages(&out);
    let controls: Vec<&Value> = msgs.iter().filter(|m| m["type"] == "CONTROL").collect();
    assert_eq!(controls.len(), 1);
    let new_token = controls[0]["control"]["connectorConfig"]["config"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new_token, c.refresh_token);
    let text = std::fs::read_to_string(&config).unwrap();
    assert_eq!(text, original.replace(&c.refresh_token, &new_token));
    assert!(sfetl::commands::login::is_private(&config));
    let mut secrets = sim_secrets(&e.org.sim);
    secrets.push(new_token.clone());
    assert_no_secret(
        &out,
        &secrets,
        &[new_token.clone(), c.client_secret.clone()],
    );
    assert_eq!(records(&msgs, "Account").len(), 2);

    // The next run reads the new token from the file (the old one is dead) and rotates again.
    let out = run(&["check", "--config", config.to_str().unwrap()]).await;
    let (status, message) = connection_status(&out);
    assert_eq!(status, "SUCCEEDED", "{message}");
    let newer = std::fs::read_to_string(&config).unwrap();
    assert_ne!(newer, text);
    assert!(!newer.contains(&new_token));

    // Turned off for orchestrators that persist the CONTROL message: the file is left alone.
    let off = newer.replace(
        "\"my_note\": \"kept as is\"",
        "\"rewrite_config_file\": false",
    );
    std::fs::write(&config, &off).unwrap();
    let out = run(&["check", "--config", config.to_str().unwrap()]).await;
    assert_eq!(connection_status(&out).0, "SUCCEEDED");
    assert_eq!(messages(&out)[0]["type"], "CONTROL");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), off);
    e.org.sim.sim.oauth.set_rotation(false);
}

#[tokio::test]
async fn a_config_file_with_a_byte_order_mark_is_accepted() {
    let e = env(2, json!({})).await;
    let mut bytes = "\u{feff}".as_bytes().to_vec();
    bytes.extend(std::fs::read(&e.config).unwrap());
    let config = e.dir.path().join("bom.json");
    std::fs::write(&config, bytes).unwrap();
    let out = run(&["check", "--config", config.to_str().unwrap()]).await;
    let (status, message) = connection_status(&out);
    assert_eq!(status, "SUCCEEDED", "{message}");
}

#[tokio::test]
async fn discover_names_the_refused_describe_in_plain_logs_before_the_catalog() {
    let e = env_with_ghosts().await;
    let out = run(&["discover", "--config", e.config.to_str().unwrap()]).await;
    assert!(out.status.success());
    let msgs = messages(&out);
    let kinds: Vec<&str> = msgs.iter().map(|m| m["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["LOG", "LOG", "CATALOG"]);
    let why = |o: &str| {
        format!(
            "{o} left out of the catalog: describeGlobal lists {o}, but GET sobjects/{o}/describe answered HTTP 404 NOT_FOUND (The requested resource does not exist): this user cannot describe it (object permissions), or the object is not available through the REST API"
        )
    };
    assert_eq!(logs(&msgs), [why("Ghost__c"), why("Phantom__c")]);
    // stderr is a pipe here: the same warnings, without colour codes.
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains(&why("Ghost__c")), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
    assert!(!stderr.contains("api_version"), "{stderr}");
}

/// Runs sfetl with a stdout whose reader is already gone.
fn with_closed_stdout(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    std::process::Command::new(env!("CARGO_BIN_EXE_sfetl"))
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("SFETL_LOG")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap()
}

#[tokio::test]
async fn a_closed_stdout_ends_every_command_quietly_with_exit_0() {
    let e = env(5, json!({})).await;
    let export = e.dir.path().join("export");
    let parquet = parquet_config(&e, "parquet.json", &export);
    let cat = catalog(
        e.dir.path(),
        "cat.json",
        &[("Account", &[], "full_refresh")],
    );
    read_files(&parquet, &cat, None).await;
    let export = export.to_str().unwrap().to_string();
    let config = e.config.to_str().unwrap().to_string();
    let cat = cat.to_str().unwrap().to_string();
    let runs: Vec<Vec<&str>> = vec![
        vec!["query", "--path", &export, "SELECT * FROM Account"],
        vec![
            "query",
            "--path",
            &export,
            "--format",
            "csv",
            "SELECT * FROM Account",
        ],
        vec!["spec"],
        vec!["check", "--config", &config],
        vec!["discover", "--config", &config],
        vec!["read", "--config", &config, "--catalog", &cat],
    ];
    for args in runs {
        let out = tokio::task::spawn_blocking({
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            move || with_closed_stdout(&args.iter().map(String::as_str).collect::<Vec<_>>())
        })
        .await
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        // discover warns about the two objects it leaves out; nothing else is said.
        let said: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.contains("left out of the catalog"))
            .collect();
        assert_eq!(said, Vec::<&str>::new(), "{args:?}");
    }
}

#[test]
fn the_demo_folder_is_ignored_by_git() {
    let ignore = std::fs::read_to_string(format!("{}/.gitignore", manifest_dir())).unwrap();
    assert!(ignore.lines().any(|l| l == "/sfetl-demo/"), "{ignore}");
}
