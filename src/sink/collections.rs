//! sObject Collections: up to 200 records per call, one result per record in order. Update and
//! upsert calls are idempotent, so the client retries them after a transient failure; insert is
//! not (a retried POST could create duplicates).

use serde_json::{Map, Value, json};

use super::SinkError;
use super::apply::{Outcome, Payload};
use super::config::Operation;
use super::format::json_value;
use crate::salesforce::{ApiRequest, SalesforceClient};

/// Records per call, Salesforce's limit.
pub const MAX_RECORDS: usize = 200;

/// Sends `rows` (at most 200) of `payload` in one call.
pub async fn send(
    client: &SalesforceClient,
    payload: &Payload<'_>,
    rows: &[usize],
) -> Result<Vec<Outcome>, SinkError> {
    let records: Vec<Value> = rows.iter().map(|&r| record(payload, r)).collect();
    let body = json!({"allOrNone": false, "records": records});
    let req = match (payload.operation, payload.external_id) {
        (Operation::Insert, _) => {
            ApiRequest::post_json(client.data_url("composite/sobjects"), body)
        }
        (Operation::Upsert, Some(ext)) => ApiRequest::patch_json(
            client.data_url(&format!("composite/sobjects/{}/{ext}", payload.object)),
            body,
        )
        .idempotent(true),
        _ => ApiRequest::patch_json(client.data_url("composite/sobjects"), body).idempotent(true),
    };
    let results: Vec<Value> =
        client
            .request_json(req)
            .await
            .map_err(|e| SinkError::Salesforce {
                during: format!(
                    "sObject Collections {} of {} {} records",
                    payload.operation.as_str(),
                    rows.len(),
                    payload.object
                ),
                source: e,
            })?;
    if results.len() != rows.len() {
        return Err(SinkError::Protocol(format!(
            "sObject Collections answered {} results for {} records",
            results.len(),
            rows.len()
        )));
    }
    Ok(results.iter().map(outcome).collect())
}

fn record(payload: &Payload<'_>, row: usize) -> Value {
    let mut m = Map::new();
    m.insert("attributes".into(), json!({"type": payload.object}));
    for c in payload.columns() {
        let (name, kind) = payload.fields[c];
        m.insert(name.to_string(), json_value(payload.value(c, row), kind));
    }
    Value::Object(m)
}

fn outcome(v: &Value) -> Outcome {
    if v["success"].as_bool() == Some(true) {
        return Outcome::Applied;
    }
    let first = &v["errors"][0];
    let mut message = first["message"].as_str().unwrap_or("").to_string();
    if let Some(fields) = first["fields"].as_array().filter(|f| !f.is_empty()) {
        let names: Vec<&str> = fields.iter().filter_map(Value::as_str).collect();
        message = format!("{message} (fields: {})", names.join(", "));
    }
    Outcome::Failed {
        code: first["statusCode"]
            .as_str()
            .unwrap_or("UNKNOWN_ERROR")
            .to_string(),
        message,
    }
}
