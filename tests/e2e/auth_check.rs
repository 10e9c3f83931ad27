//! `sfetl check` against the in-process simulator over real HTTP: a success per flow, rotation
//! as a CONTROL message, and each set-up mistake with its exact advice. Every run also asserts
//! that no secret reaches stdout or stderr.

use std::sync::atomic::Ordering;

use serde_json::{Value, json};
use sfetl_sim::SimHandle;
use sfetl_sim::oauth::{NO_API_USERNAME, NO_RUN_AS_CLIENT_ID, NO_RUN_AS_CLIENT_SECRET};

use crate::common::*;

/// Runs `sfetl check` on a config; returns (status, message, all stdout messages).
async fn check(sim: &SimHandle, cfg: &Value) -> (String, String, Vec<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_json(dir.path(), "config.json", cfg);
    let out = run(&["check", "--config", path.to_str().unwrap()]).await;
    assert!(out.status.success(), "check exits 0: {out:?}");
    let msgs = messages(&out);
    let mut allowed = Vec::new();
    for m in &msgs {
        if m["type"] == "CONTROL" {
            // The protocol's CONTROL message carries the whole config, credentials included,
            // for the orchestrator to persist: only there may they appear.
            let c = &m["control"]["connectorConfig"]["config"];
            for key in ["refresh_token", "client_secret"] {
                if let Some(v) = c[key].as_str() {
                    allowed.push(v.to_string());
                }
            }
        }
    }
    let mut secrets = sim_secrets(sim);
    secrets.extend(allowed.iter().cloned());
    assert_no_secret(&out, &secrets, &allowed);
    let (status, message) = connection_status(&out);
    (status, message, msgs)
}

fn success_message(sim: &SimHandle) -> String {
    let used = sim.sim.api_used.load(Ordering::SeqCst);
    let objects = 18;
    format!(
        "Connected to org 00D5g000004SimAEAS as admin@sim.example.com (Integration User); instance {}; REST API v62.0; {objects} objects visible; API usage {used}/15000 in the last 24 hours.",
        sim.base_url
    )
}

#[tokio::test]
async fn refresh_token_without_rotation_succeeds_without_control_message() {
    let sim = start_sim().await;
    let (status, message, msgs) = check(&sim, &refresh_config(&sim)).await;
    assert_eq!(status, "SUCCEEDED", "{message}");
    assert_eq!(message, success_message(&sim));
    assert_eq!(msgs.len(), 1);
}

#[tokio::test]
async fn rotation_is_announced_with_a_control_message_holding_the_new_config() {
    let sim = start_sim().await;
    sim.sim.oauth.set_rotation(true);
    let cfg = refresh_config(&sim);
    let (status, message, msgs) = check(&sim, &cfg).await;
    assert_eq!(status, "SUCCEEDED", "{message}");
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0]["type"], "CONTROL");
    assert_eq!(msgs[0]["control"]["type"], "CONNECTOR_CONFIG");
    let new_config = &msgs[0]["control"]["connectorConfig"]["config"];
    let new_token = new_config["refresh_token"].as_str().unwrap();
    assert_ne!(new_token, sim.credentials.refresh_token);
    let mut expected = cfg.clone();
    expected["refresh_token"] = json!(new_token);
    assert_eq!(new_config, &expected);
    // The announced config works; the old token is dead.
    let (status, _, _) = check(&sim, new_config).await;
    assert_eq!(status, "SUCCEEDED");
    let (status, message, _) = check(&sim, &cfg).await;
    assert_eq!(status, "FAILED");
    assert!(
        message.starts_with("The refresh token was revoked or has expired"),
        "{message}"
    );
}

#[tokio::test]
async fn client_credentials_on_the_my_domain_host_succeeds() {
    let sim = start_sim().await;
    let (status, message, _) = check(&sim, &client_credentials_config(&sim)).await;
    assert_eq!(status, "SUCCEEDED", "{message}");
    assert_eq!(message, success_message(&sim));
}

#[tokio::test]
async fn jwt_bearer_succeeds() {
    let sim = start_sim().await;
    let cfg = jwt_config(&sim, &sim.credentials.username);
    let (status, message, _) = check(&sim, &cfg).await;
    assert_eq!(status, "SUCCEEDED", "{message}");
    assert_eq!(message, success_message(&sim));
}

#[tokio::test]
async fn wrong_consumer_key() {
    let sim = start_sim().await;
    let mut cfg = refresh_config(&sim);
    cfg["client_id"] = json!("3MVG9not.a.real.key");
    let (status, message, _) = check(&sim, &cfg).await;
    assert_eq!(status, "FAILED");
    assert_eq!(
        message,
        format!(
            "Salesforce at {} does not recognise the Consumer Key (invalid_client_id: client identifier invalid). Check that client_id is the app's Consumer Key (Setup > App Manager > your app > View > Manage Consumer Details, or for an External Client App: Setup > External Client App Manager > your app > Settings > OAuth Settings > Consumer Key and Secret). If the app is new or was just edited, wait: Salesforce needs 2 to 10 minutes after a connected app (or External Client App) is created or edited before it accepts it. Also check the environment: an app created in production exists in a sandbox only after the sandbox is refreshed.",
            sim.login_url
        )
    );
}

#[tokio::test]
async fn wrong_consumer_secret() {
    let sim = start_sim().await;
    let mut cfg = refresh_config(&sim);
    cfg["client_secret"] = json!("WRONGSECRET123");
    let (status, message, _) = check(&sim, &cfg).await;
    assert_eq!(status, "FAILED");
    assert_eq!(
        message,
        "Salesforce rejected the Consumer Secret (invalid_client: invalid client credentials). Copy client_secret again from the app's Manage Consumer Details page (it is not the Consumer Key); if the app does not require a secret for this flow, the secret must still be right when given."
    );
}

#[tokio::test]
async fn revoked_refresh_token() {
    let sim = start_sim().await;
    assert!(sim.sim.oauth.revoke_all_refresh_tokens() >= 1);
    let (status, message, _) = check(&sim, &refresh_config(&sim)).await;
    assert_eq!(status, "FAILED");
    assert_eq!(
        message,
        "The refresh token was revoked or has expired (invalid_grant: expired access/refresh token). A user or admin revoked it (Setup > Connected Apps OAuth Usage), the app's Refresh Token Policy expired it, it was rotated and an older copy was used, the same user approved the app five more times since (each `sfetl login` is an approval; Salesforce keeps five per user and app and revokes the oldest), or it belongs to the other environment (production vs sandbox). Disconnect and reconnect: run `sfetl login` again and use the new config, or paste a new refresh_token."
    );
}

#[tokio::test]
async fn credentials_of_the_other_environment() {
    let sim = start_sim().await;
    let mut cfg = jwt_config(&sim, &sim.credentials.username);
    cfg["is_sandbox"] = json!(true);
    let (status, message, _) = check(&sim, &cfg).await;
    assert_eq!(status, "FAILED");
    assert_eq!(
        message,
        format!(
            "Salesforce at {0} refused the credentials (invalid_grant: audience is invalid). Production credentials do not work in a sandbox and vice versa: this config logs in to a sandbox at {0}. For a sandbox set is_sandbox to true (or domain to its NAME--SANDBOX.sandbox.my.salesforce.com host); for a production org set is_sandbox to false; and check that the username is the user of that org (sandbox usernames end in .SANDBOXNAME).",
            sim.login_url
        )
    );
}

#[tokio::test]
async fn user_without_api_enabled() {
    let sim = start_sim().await;
    let cfg = jwt_config(&sim, NO_API_USERNAME);
    let (status, message, _) = check(&sim, &cfg).await;
    assert_eq!(status, "FAILED");
    assert_eq!(
        message,
        "Salesforce refuses API access (API_DISABLED_FOR_ORG: The REST API is not enabled for this Organization.). Give the connecting user the \"API Enabled\" permission: Setup > Users > Permission Sets (or the user's Profile) > System Permissions > API Enabled; for client credentials that is the app's Run As user. Professional Edition orgs need the API add-on; Essentials and Group editions have no API access."
    );
}

#[tokio::test]
async fn client_credentials_without_run_as_user() {
    let sim = start_sim().await;
    let mut cfg = client_credentials_config(&sim);
    cfg["client_id"] = json!(NO_RUN_AS_CLIENT_ID);
    cfg["client_secret"] = json!(NO_RUN_AS_CLIENT_SECRET);
    let (status, message, _) = check(&sim, &cfg).await;
    assert_eq!(status, "FAILED");
    assert_eq!(
        message,
        "The app has no run-as user for the client credentials flow (invalid_grant: no client credentials user enabled). Connected App: Setup > App Manager > your app > Manage > Edit Policies > Client Credentials Flow > Run As: pick an integration user with the \"API Enabled\" permission. External Client App: Setup > External Client App Manager > your app > Policies > OAuth Flows and External Client App Enhancements > Enable Client Credentials Flow > Run As (Username). Then wait 2 to 10 minutes."
    );
}

#[tokio::test]
async fn client_credentials_on_the_login_host() {
    let sim = start_sim().await;
    let mut cfg = client_credentials_config(&sim);
    cfg["login_url"] = json!(sim.login_url);
    let (status, message, _) = check(&sim, &cfg).await;
    assert_eq!(status, "FAILED");
    assert_eq!(
        message,
        format!(
            "The client credentials flow works only on the org's My Domain host, not on {} (invalid_grant: request not supported on this domain). Set domain to the org's My Domain host, e.g. acme.my.salesforce.com (Setup > My Domain > Current My Domain URL), and remove login_url if it points at login.salesforce.com or test.salesforce.com.",
            sim.login_url
        )
    );
}

#[tokio::test]
async fn client_credentials_without_my_domain_is_a_config_error() {
    let sim = start_sim().await;
    let mut cfg = client_credentials_config(&sim);
    cfg.as_object_mut().unwrap().remove("login_url");
    let (status, message, _) = check(&sim, &cfg).await;
    assert_eq!(status, "FAILED");
    assert_eq!(
        message,
        "The config has 1 problem: (1) domain: is missing: the client_credentials flow only works on the org's My Domain host; set domain to e.g. \"acme.my.salesforce.com\" (Setup > My Domain)"
    );
}

#[tokio::test]
async fn jwt_user_not_pre_authorised() {
    let sim = start_sim().await;
    let mut cfg = jwt_config(&sim, &sim.credentials.username);
    cfg["client_id"] = json!(NO_RUN_AS_CLIENT_ID);
    let (status, message, _) = check(&sim, &cfg).await;
    assert_eq!(status, "FAILED");
    assert_eq!(
        message,
        "The user admin@sim.example.com is not pre-authorised for this app (invalid_grant: user hasn't approved this consumer). In Setup > App Manager > your app > Manage > Edit Policies, set Permitted Users to \"Admin approved users are pre-authorized\", then under Profiles or Permission Sets add one the user has (for an External Client App: Policies > App Policies > Select Profiles / Permission Sets). Also check that username belongs to this org."
    );
}

#[tokio::test]
async fn inactive_user() {
    let sim = start_sim().await;
    assert!(
        sim.sim
            .oauth
            .set_user_active(&sim.credentials.username, false)
    );
    let (status, message, _) = check(&sim, &refresh_config(&sim)).await;
    assert_eq!(status, "FAILED");
    assert_eq!(
        message,
        "The Salesforce user is inactive (invalid_grant: inactive user). Reactivate or unfreeze the user (Setup > Users), or connect with an active user (for client credentials, change the app's Run As user)."
    );
}

#[tokio::test]
async fn unreachable_host() {
    let sim = start_sim().await;
    // A loopback port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut cfg = refresh_config(&sim);
    cfg["login_url"] = json!(format!("http://127.0.0.1:{port}"));
    let (status, message, _) = check(&sim, &cfg).await;
    assert_eq!(status, "FAILED");
    let prefix = format!("Cannot reach http://127.0.0.1:{port}: connection failed (");
    assert!(message.starts_with(&prefix), "{message}");
    assert!(message.ends_with("). Check the network, proxy and firewall, and that the host is right (is_sandbox, domain or login_url in the config)."), "{message}");
}

#[tokio::test]
async fn unknown_api_version() {
    let sim = start_sim().await;
    let mut cfg = refresh_config(&sim);
    // The simulator offers 31.0 to 62.0, as a Winter '25 org does (a version before 47.0 is
    // refused by the config's validation, before any call).
    cfg["api_version"] = json!("30.0");
    let (status, message, _) = check(&sim, &cfg).await;
    assert_eq!(status, "FAILED");
    assert_eq!(
        message,
        "The config has 1 problem: (1) api_version: 30.0 is older than 47.0, the first version with the Bulk API 2.0 query jobs sfetl reads with: set it to 47.0 or later, or leave it out for 62.0"
    );
    cfg["api_version"] = json!("99.0");
    let (status, message, _) = check(&sim, &cfg).await;
    assert_eq!(status, "FAILED");
    assert_eq!(
        message,
        "The org does not offer REST API version 99.0 (it offers 31.0 to 62.0): set api_version to 62.0 or lower."
    );
}

#[tokio::test]
async fn a_start_date_still_to_come_fails_the_check_naming_it() {
    let sim = start_sim().await;
    let mut cfg = refresh_config(&sim);
    cfg["start_date"] = json!("2206-01-01");
    let (status, message, _) = check(&sim, &cfg).await;
    assert_eq!(status, "FAILED");
    let prefix =
        "The connection works, but start_date 2206-01-01T00:00:00Z is in the future (it is now ";
    assert!(message.starts_with(prefix), "{message}");
    assert!(
        message.ends_with("): a read would find no row. Give a start_date in the past, or leave it out to read every row"),
        "{message}"
    );
    cfg["start_date"] = json!("2016-01-01");
    let (status, message, _) = check(&sim, &cfg).await;
    assert_eq!(status, "SUCCEEDED", "{message}");
}

/// A machine whose clock runs ten minutes ahead of the org's (the simulator's clock set back
/// stands for it) passes the check, which says so: reads take the org's time instead.
#[tokio::test]
async fn a_machine_clock_ahead_of_the_orgs_is_named_by_the_check() {
    let sim = start_sim().await;
    post(
        &format!("{}/__sim/clock", sim.base_url),
        json!({"offset_seconds": -600}),
    )
    .await;
    let (status, message, _) = check(&sim, &refresh_config(&sim)).await;
    assert_eq!(status, "SUCCEEDED", "{message}");
    let rest = after_seconds(
        &message,
        &format!(
            "{} Warning: this machine's clock is ",
            success_message(&sim)
        ),
        599.9..=601.5,
    );
    assert_eq!(
        rest,
        "ahead of the org's (by the Date header of Salesforce's answers): reads take now from the org's clock instead, so no row changed in between is skipped; set this machine's clock right (NTP)."
    );
}

/// The text of `message` after `prefix` and a number of seconds (`600.3 s `), the number
/// asserted within `range`: how far off the simulator's clock was set, give or take the
/// `Date` header's second.
fn after_seconds<'m>(
    message: &'m str,
    prefix: &str,
    range: std::ops::RangeInclusive<f64>,
) -> &'m str {
    let rest = message
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{message}"));
    let (seconds, rest) = rest
        .split_once(" s ")
        .unwrap_or_else(|| panic!("{message}"));
    let seconds: f64 = seconds.parse().unwrap();
    assert!(range.contains(&seconds), "{message}");
    rest
}

/// A JWT signed on a machine whose clock is ten minutes off: Salesforce refuses the assertion
/// (too far ahead: "invalid assertion"; behind: expired), and the check names the clock, by the
/// `Date` of Salesforce's answer, rather than the key or the certificate.
#[tokio::test]
async fn a_jwt_refused_for_a_wrong_clock_names_the_clock() {
    for (offset, way, description) in [
        (-600, "ahead of", "invalid assertion"),
        (600, "behind", "expired authorization code"),
    ] {
        let sim = start_sim().await;
        post(
            &format!("{}/__sim/clock", sim.base_url),
            json!({"offset_seconds": offset}),
        )
        .await;
        let cfg = jwt_config(&sim, &sim.credentials.username);
        let (status, message, _) = check(&sim, &cfg).await;
        assert_eq!(status, "FAILED", "{message}");
        let rest = after_seconds(
            &message,
            &format!(
                "Salesforce refused the signed JWT (invalid_grant: {description}) because this machine's clock is "
            ),
            598.5..=601.5,
        );
        assert_eq!(
            rest,
            format!(
                "{way} Salesforce's (by the Date header of its answer). sfetl signs assertions valid for 3 minutes by this machine's clock, and Salesforce takes only those that expire within 3 minutes of its own time: set this machine's clock right (NTP) and try again."
            )
        );
    }
}
