//! Helpers of the read tests: a simulator with a config file, configured catalogs, RECORDs of
//! a stream, and the org's rows by an independent path (REST queryAll).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::{Org, assert_ok, messages, refresh_config, run, write_json};

/// A simulator, a temp folder and a config file pointing at the simulator.
pub struct Env {
    pub org: Org,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

/// Starts a simulator with `scale` and writes a refresh-token config with `extra` fields.
pub async fn env(scale: u64, extra: Value) -> Env {
    env_on(Org::start(scale).await, extra)
}

/// Writes a refresh-token config with `extra` fields for a started simulator.
pub fn env_on(org: Org, extra: Value) -> Env {
    let mut cfg = refresh_config(&org.sim);
    for (k, v) in extra.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    let dir = tempfile::tempdir().unwrap();
    let config = write_json(dir.path(), "config.json", &cfg);
    Env { org, dir, config }
}

/// A configured catalog; an empty field list selects every field.
pub fn catalog(dir: &Path, name: &str, streams: &[(&str, &[&str], &str)]) -> PathBuf {
    let streams: Vec<Value> = streams
        .iter()
        .map(|(object, fields, mode)| {
            let props: serde_json::Map<String, Value> =
                fields.iter().map(|f| (f.to_string(), json!({}))).collect();
            json!({
                "stream": {"name": object, "json_schema": {"type": "object", "properties": props},
                           "supported_sync_modes": ["full_refresh", "incremental"]},
                "sync_mode": mode,
                "destination_sync_mode": "append",
            })
        })
        .collect();
    write_json(dir, name, &json!({"streams": streams}))
}

/// The `data` of every RECORD of `stream`.
pub fn records(msgs: &[Value], stream: &str) -> Vec<Value> {
    msgs.iter()
        .filter(|m| m["type"] == "RECORD" && m["record"]["stream"] == stream)
        .map(|m| m["record"]["data"].clone())
        .collect()
}

/// The messages of every LOG.
pub fn logs(msgs: &[Value]) -> Vec<String> {
    msgs.iter()
        .filter(|m| m["type"] == "LOG")
        .map(|m| m["log"]["message"].as_str().unwrap().to_string())
        .collect()
}

/// The messages of every LOG at level WARN.
pub fn warnings(msgs: &[Value]) -> Vec<String> {
    msgs.iter()
        .filter(|m| m["type"] == "LOG" && m["log"]["level"] == "WARN")
        .map(|m| m["log"]["message"].as_str().unwrap().to_string())
        .collect()
}

/// Every row of an object as the simulator answers REST queryAll (an independent path).
/// Every row `soql` matches, by REST queryAll with a fresh token.
pub async fn org_rows(org: &Org, soql: &str) -> Vec<Value> {
    let c = &org.sim.credentials;
    let token = org
        .sim
        .sim
        .oauth
        .issue_access_token(&c.client_id, &c.username)
        .unwrap();
    let mut out = Vec::new();
    let mut url = format!("{}?q={}", org.data("queryAll"), urlencode(soql));
    loop {
        let page: Value = org
            .http
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        out.extend(page["records"].as_array().unwrap().iter().cloned());
        match page["nextRecordsUrl"].as_str() {
            Some(next) if page["done"] == false => url = org.url(next),
            _ => break,
        }
    }
    out
}

/// Query-string encoding.
pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Runs `sfetl read` with the env's config, `catalog` and an optional state file, once the
/// org's clock has left the second of its last change ([`read_settled`]); asserts it succeeded
/// and returns its messages.
pub async fn read_ok(e: &Env, catalog: &Path, state: Option<&Path>) -> Vec<Value> {
    messages(&read_settled(&e.org, &e.config, catalog, state).await)
}

/// [`read_files`] once `org`'s clock has left the second of its last change: stamps are whole
/// seconds, so a read bounded in that second (`cursor_lag` 0) would not see it.
pub async fn read_settled(
    org: &Org,
    config: &Path,
    catalog: &Path,
    state: Option<&Path>,
) -> std::process::Output {
    org.next_second().await;
    read_files(config, catalog, state).await
}

/// `sfetl read --config C --catalog K` as a command, for tests that add flags or watch it run.
pub fn read_cmd(config: &Path, catalog: &Path) -> tokio::process::Command {
    let mut c = super::sfetl();
    c.args([
        "read",
        "--config",
        config.to_str().unwrap(),
        "--catalog",
        catalog.to_str().unwrap(),
    ]);
    c
}

/// `sfetl read --config C --catalog K --slice S` (one slice of `sfetl plan`), not started.
pub fn read_slice(config: &Path, catalog: &Path, slice: &Path) -> tokio::process::Command {
    let mut c = read_cmd(config, catalog);
    c.args(["--slice", slice.to_str().unwrap()]);
    c
}

/// Bulk query jobs created so far (every creation attempt counts, as Salesforce's daily cap).
pub async fn jobs(org: &Org) -> u64 {
    org.get_json_url("/__sim/limits").await["bulk_query_jobs_used"]
        .as_u64()
        .unwrap()
}

/// Runs `sfetl read --config C --catalog K` to completion, whether it succeeds or not.
pub async fn read_out(config: &Path, catalog: &Path) -> std::process::Output {
    read_cmd(config, catalog)
        .output()
        .await
        .expect("sfetl runs")
}

/// Runs `sfetl read` with a config, a catalog and an optional state file; asserts it succeeded.
pub async fn read_files(
    config: &Path,
    catalog: &Path,
    state: Option<&Path>,
) -> std::process::Output {
    let mut cmd = read_cmd(config, catalog);
    if let Some(s) = state {
        cmd.args(["--state", s.to_str().unwrap()]);
    }
    let out = cmd.output().await.expect("sfetl runs");
    assert_ok(&out);
    out
}

/// A copy of the env's config, named `name`, that writes Parquet under `export`, a file per
/// checkpoint (`file_rows: 1`), so tests see every checkpoint's STATE and file.
pub fn parquet_config(e: &Env, name: &str, export: &Path) -> PathBuf {
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(&e.config).unwrap()).unwrap();
    cfg["output"] = json!({"format": "parquet", "path": export.to_str().unwrap(), "file_rows": 1});
    write_json(e.dir.path(), name, &cfg)
}

/// A copy of the env's config, named `name`, that writes Parquet under `export` with the
/// default file size.
pub fn parquet_config_default(e: &Env, name: &str, export: &Path) -> PathBuf {
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(&e.config).unwrap()).unwrap();
    cfg["output"] = json!({"format": "parquet", "path": export.to_str().unwrap()});
    write_json(e.dir.path(), name, &cfg)
}

/// A read config over the simulator's whole history in one window, no cursor lag, with
/// `extra`'s keys set on top.
pub fn one_window_config(extra: Value) -> Value {
    let mut cfg =
        json!({"start_date": "2000-01-01", "cursor_lag": "PT0S", "stream_slice_step": "P3650D"});
    for (k, v) in extra.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    cfg
}

/// The `state` of the last STATE of each stream, as an orchestrator passes them back.
pub fn last_states(msgs: &[Value]) -> Value {
    let mut by_stream: std::collections::BTreeMap<String, Value> = Default::default();
    for m in msgs.iter().filter(|m| m["type"] == "STATE") {
        let name = m["state"]["stream"]["stream_descriptor"]["name"]
            .as_str()
            .unwrap()
            .to_string();
        by_stream.insert(name, m["state"].clone());
    }
    Value::Array(by_stream.into_values().collect())
}

/// `sfetl query --format csv` over an export, asserted to succeed.
pub async fn query_csv(export: &Path, sql: &str) -> String {
    let out = run(&[
        "query",
        "--path",
        export.to_str().unwrap(),
        sql,
        "--format",
        "csv",
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `sfetl plan` of a one-stream full refresh with `start_date` set to `start` (every row of
/// the simulator is later than 1990, and two plans with two starts are two different slices
/// whatever the clock says): its one slice, written to a file.
pub async fn full_refresh_slice(
    e: &Env,
    config: &Path,
    cat: &Path,
    start: &str,
) -> (PathBuf, PathBuf) {
    let mut c: Value = serde_json::from_slice(&std::fs::read(config).unwrap()).unwrap();
    c["start_date"] = json!(start);
    let config = write_json(e.dir.path(), &format!("config-{start}.json"), &c);
    let lines = plan_slices(&config, cat, &[]).await;
    assert_eq!(lines.len(), 1, "a full refresh of one object is one slice");
    let slice = write_json(e.dir.path(), &format!("slice-{start}.json"), &lines[0]);
    (config, slice)
}

/// Runs `sfetl plan`, which must succeed, and returns its slices.
pub async fn plan_slices(config: &Path, catalog: &Path, extra: &[&str]) -> Vec<Value> {
    plan_with_stderr(config, catalog, extra).await.0
}

/// Runs `sfetl plan`, which must succeed: its slices and its stderr (the planner's warnings).
pub async fn plan_with_stderr(
    config: &Path,
    catalog: &Path,
    extra: &[&str],
) -> (Vec<Value>, String) {
    let mut args = vec![
        "plan",
        "--config",
        config.to_str().unwrap(),
        "--catalog",
        catalog.to_str().unwrap(),
    ];
    args.extend(extra);
    let out = run(&args).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let slices = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (slices, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A mapping of one stream `stream` (primary key `id`) drawn from `object`: `id` (`Id`),
/// `modified_at` (`SystemModstamp`) and `columns` (name, expression), filtered by `filter`
/// when given.
pub fn one_source_mapping(
    stream: &str,
    object: &str,
    columns: &[(&str, &str)],
    filter: Option<&str>,
) -> Value {
    let mut cols = json!({"id": "Id", "modified_at": "SystemModstamp"});
    for (name, expr) in columns {
        cols[*name] = json!(expr);
    }
    let mut source = json!({"object": object, "columns": cols});
    if let Some(filter) = filter {
        source["soql_where"] = json!(filter);
    }
    json!({"streams": [{"name": stream, "primary_key": ["id"], "from": [source]}]})
}

/// Makes the first `count` live Contacts by Id other than `boss` report to `boss` (a user's
/// edit of their `ReportsToId`, which moves their own SystemModstamp); returns their Ids.
pub async fn report_to(org: &Org, boss: &str, count: usize) -> Vec<String> {
    let reports: Vec<String> = org_rows(
        org,
        "SELECT Id FROM Contact WHERE IsDeleted = false ORDER BY Id",
    )
    .await
    .iter()
    .map(|r| r["Id"].as_str().unwrap().to_string())
    .filter(|id| id != boss)
    .take(count)
    .collect();
    for id in &reports {
        org.control(
            "update",
            &json!({"object": "Contact", "id": id, "fields": {"ReportsToId": boss}}),
        )
        .await;
    }
    reports
}

/// The distinct Accounts that live `object` rows (Contact, Opportunity) point at, in Id order:
/// parents whose children a test moves.
pub async fn parent_accounts(org: &Org, object: &str) -> Vec<String> {
    let soql = format!("SELECT AccountId FROM {object} WHERE AccountId != null ORDER BY AccountId");
    let mut accounts: Vec<String> = org_rows(org, &soql)
        .await
        .iter()
        .map(|r| r["AccountId"].as_str().unwrap().to_string())
        .collect();
    accounts.dedup();
    accounts
}

/// A record stamp `minutes` before now, to the whole second as Salesforce stamps records, in
/// the form the simulator's `stamp` takes (`2026-01-02T03:04:05.000Z`).
pub fn stamp_minutes_ago(minutes: i64) -> String {
    let at = chrono::Utc::now() - chrono::Duration::minutes(minutes);
    chrono::DateTime::from_timestamp(at.timestamp(), 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
