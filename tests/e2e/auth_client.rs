//! The authenticated client core over real HTTP against the in-process simulator: first token,
//! transparent refresh after expiry, single-flight refresh, rotation, retries and error mapping.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::{Value, json};
use sfetl::protocol::FailureType;
use sfetl::salesforce::{ApiRequest, ApiUsage, ClientHooks, SalesforceClient, SalesforceError};

use crate::common::*;

async fn connect(
    sim_config: &Value,
    hooks: ClientHooks,
) -> Result<SalesforceClient, SalesforceError> {
    SalesforceClient::connect(&config(sim_config), hooks).await
}

fn hooks() -> ClientHooks {
    ClientHooks {
        retry: fast_retry(),
        ..ClientHooks::default()
    }
}

#[tokio::test]
async fn refresh_token_flow_reaches_the_instance_and_tracks_usage() {
    let sim = start_sim().await;
    let client = connect(&refresh_config(&sim), hooks()).await.unwrap();
    assert_eq!(client.instance_url(), sim.base_url);
    assert_eq!(
        client.data_url("sobjects"),
        format!("{}/services/data/v62.0/sobjects", sim.base_url)
    );
    assert_eq!(
        client.data_url("/services/data/v62.0/query/01gX-2000"),
        format!("{}/services/data/v62.0/query/01gX-2000", sim.base_url)
    );
    let global: Value = client.get_json(&client.data_url("sobjects")).await.unwrap();
    assert!(
        global["sobjects"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["name"] == "Account")
    );
    let used = sim.sim.api_used.load(Ordering::SeqCst);
    assert_eq!(client.api_usage(), Some(ApiUsage { used, max: 15_000 }));
    assert_eq!(client.request_count(), 1);
    assert_eq!(client.tokens().token_requests(), 1);
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once_for_many_concurrent_requests() {
    let sim = start_sim().await;
    let client = connect(&refresh_config(&sim), hooks()).await.unwrap();
    let first = client.tokens().current().unwrap();
    let answer = post(&format!("{}/__sim/expire_tokens", sim.base_url), json!({})).await;
    assert_eq!(answer["expired"], true);
    let url = client.data_url("sobjects/Account/describe");
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let c = client.clone();
            let u = url.clone();
            tokio::spawn(async move { c.get_json::<Value>(&u).await })
        })
        .collect();
    for t in tasks {
        let describe = t.await.unwrap().unwrap();
        assert_eq!(describe["name"], "Account");
    }
    // One refresh for all 16 rejected requests: no stampede on the token endpoint.
    assert_eq!(client.tokens().token_requests(), 2);
    let second = client.tokens().current().unwrap();
    assert_eq!(second.generation, first.generation + 1);
    assert_ne!(second.access_token, first.access_token);
}

#[tokio::test]
async fn a_rotated_refresh_token_goes_to_the_hook_and_replaces_the_old_one() {
    let sim = start_sim().await;
    sim.sim.oauth.set_rotation(true);
    let seen: Rotations = Arc::default();
    let sink = seen.clone();
    let hooks = ClientHooks {
        on_refresh_token_rotated: Some(Arc::new(move |t| {
            sink.lock().unwrap().push(t.expose().to_string())
        })),
        retry: fast_retry(),
    };
    let client = connect(&refresh_config(&sim), hooks).await.unwrap();
    let rotated = seen.lock().unwrap().clone();
    assert_eq!(rotated.len(), 1);
    assert_ne!(rotated[0], sim.credentials.refresh_token);
    assert_eq!(
        client.tokens().refresh_token().unwrap().expose(),
        rotated[0]
    );
    // The next refresh uses the new token (the old one is dead) and rotates again.
    sim.sim.oauth.expire_access_tokens();
    let _: Value = client.get_json(&client.data_url("limits")).await.unwrap();
    let rotated = seen.lock().unwrap().clone();
    assert_eq!(rotated.len(), 2);
    assert_ne!(rotated[1], rotated[0]);
}

#[tokio::test]
async fn transient_failures_are_retried_and_quota_exhaustion_is_not() {
    let sim = start_sim().await;
    let client = connect(&refresh_config(&sim), hooks()).await.unwrap();
    let url = client.data_url("sobjects");
    post(
        &format!("{}/__sim/fail", sim.base_url),
        json!({"kind": "describe", "status": 503, "count": 2}),
    )
    .await;
    let _: Value = client.get_json(&url).await.unwrap();
    assert_eq!(client.request_count(), 3);
    post(
        &format!("{}/__sim/fail", sim.base_url),
        json!({"kind": "describe", "status": 400, "error_code": "UNABLE_TO_LOCK_ROW", "count": 1}),
    )
    .await;
    let _: Value = client.get_json(&url).await.unwrap();
    assert_eq!(client.request_count(), 5);
    // A POST is not retried.
    post(
        &format!("{}/__sim/fail", sim.base_url),
        json!({"kind": "query", "status": 503, "count": 1}),
    )
    .await;
    let e = client
        .send(ApiRequest::post_json(client.data_url("query"), json!({})))
        .await
        .unwrap_err();
    assert!(
        matches!(e, SalesforceError::Api { status: 503, ref code, .. } if code == "SERVER_UNAVAILABLE"),
        "{e:?}"
    );
    assert_eq!(e.failure_type(), FailureType::TransientError);
    // The daily quota: 403 REQUEST_LIMIT_EXCEEDED, no retry.
    let before = client.request_count();
    sim.sim
        .api_max
        .store(sim.sim.api_used.load(Ordering::SeqCst), Ordering::SeqCst);
    let e = client.get_json::<Value>(&url).await.unwrap_err();
    assert_eq!(client.request_count(), before + 1);
    let max = sim.sim.api_max.load(Ordering::SeqCst);
    match &e {
        SalesforceError::RequestLimitExceeded { usage, message } => {
            assert_eq!(message, "TotalRequests Limit exceeded.");
            assert_eq!(*usage, Some(ApiUsage { used: max, max }));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        e.to_string(),
        format!(
            "The org's daily API request limit is used up (REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded.; {max} of {max} daily API calls used). The limit counts the last 24 hours, so calls succeed again as older ones age out: run again later, spread runs out, or raise the org's limit (Setup > Company Information shows \"API Requests, Last 24 Hours\")."
        )
    );
}

#[tokio::test]
async fn a_busy_org_is_waited_for_longer_than_other_failures() {
    let sim = start_sim().await;
    let client = connect(&refresh_config(&sim), hooks()).await.unwrap();
    let url = client.data_url("query?q=SELECT+Id+FROM+Account+LIMIT+1");
    let limits = format!("{}/__sim/limits", sim.base_url);
    // Nine refusals over the long-transaction limit, more than the 4 attempts other failures
    // get here: the tenth attempt is answered.
    post(&limits, json!({"long_txn_spike": 9})).await;
    let before = client.request_count();
    let rows: Value = client.get_json(&url).await.unwrap();
    assert_eq!(rows["totalSize"], 1);
    assert_eq!(client.request_count(), before + 10);
    // Ten refusals: the error after the tenth attempt says what to do.
    post(&limits, json!({"long_txn_spike": 10})).await;
    let before = client.request_count();
    let e = client.get_json::<Value>(&url).await.unwrap_err();
    assert_eq!(client.request_count(), before + 10);
    assert!(
        matches!(e, SalesforceError::ConcurrencyLimit { .. }),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "Salesforce refused a request 10 times, with growing waits between, because too many run at once in the org (ConcurrentPerOrgLongTxn Limit exceeded.). This passes when other long requests and Bulk jobs finish: run again later, or run fewer syncs against this org at the same time."
    );
}

#[tokio::test]
async fn errors_are_parsed_from_salesforce_answers() {
    let sim = start_sim().await;
    let client = connect(&refresh_config(&sim), hooks()).await.unwrap();
    let e = client
        .get_json::<Value>(&client.data_url("sobjects/NoSuchThing__c/describe"))
        .await
        .unwrap_err();
    match e {
        SalesforceError::Api { status, code, .. } => {
            assert_eq!(status, 404);
            assert_eq!(code, "NOT_FOUND");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn plain_http_to_a_remote_host_is_refused() {
    let sim = start_sim().await;
    let client = connect(&refresh_config(&sim), hooks()).await.unwrap();
    let e = client
        .get_json::<Value>("http://example.com/services/data/v62.0/sobjects")
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "API URL http://example.com does not use https://: sfetl sends Salesforce credentials only over https (plain http is allowed only for 127.0.0.1, ::1 and localhost, e.g. the simulator)"
    );
    assert_eq!(client.request_count(), 0);
}
