//! sObject Collections: up to 200 records per call, one result per record in order. Update,
//! upsert and delete calls are idempotent, so the client retries them after a transient failure;
//! insert is not (a retried POST could create duplicates).

use serde_json::{Map, Value, json};

use super::error::SinkError;
use super::format::json_value;
use super::payload::{Operation, Outcome, Payload};
use crate::salesforce::{ApiRequest, SalesforceClient};

/// Records per call, Salesforce's limit.
pub const MAX_RECORDS: usize = 200;

/// Sends `rows` of `payload`, up to [`MAX_RECORDS`] per call; one outcome per row, in order.
pub async fn send(
    client: &SalesforceClient,
    payload: &Payload<'_>,
    rows: &[usize],
) -> Result<Vec<Outcome>, SinkError> {
    let mut out = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(MAX_RECORDS) {
        out.extend(match payload.operation {
            Operation::Delete => delete(client, payload, chunk).await?,
            _ => write(client, payload, chunk).await?,
        });
    }
    Ok(out)
}

/// Inserts, updates or upserts `rows` (at most 200) in one call.
async fn write(
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
    call(client, req, payload, rows.len()).await
}

/// Deletes by Id: `DELETE composite/sobjects?ids=...` (ids in the URL: 200 ids stay far below
/// the URL length limit). A row without an Id is refused here, as Salesforce would.
async fn delete(
    client: &SalesforceClient,
    payload: &Payload<'_>,
    rows: &[usize],
) -> Result<Vec<Outcome>, SinkError> {
    let id_col = payload
        .columns()
        .into_iter()
        .find(|&c| payload.fields[c].0.eq_ignore_ascii_case("Id"));
    let ids: Vec<Option<&str>> = rows
        .iter()
        .map(|&r| {
            id_col
                .and_then(|c| payload.value(c, r))
                .filter(|s| !s.is_empty())
        })
        .collect();
    let sent: Vec<&str> = ids.iter().flatten().copied().collect();
    let mut answered = if sent.is_empty() {
        Vec::new()
    } else {
        let ids: String = url::form_urlencoded::byte_serialize(sent.join(",").as_bytes()).collect();
        let url = format!(
            "{}?ids={ids}&allOrNone=false",
            client.data_url("composite/sobjects")
        );
        call(client, ApiRequest::delete(url), payload, sent.len()).await?
    }
    .into_iter();
    Ok(ids
        .iter()
        .map(|id| match id {
            Some(_) => answered.next().unwrap_or(Outcome::Applied),
            None => Outcome::Failed {
                code: "MISSING_ARGUMENT".into(),
                message: "Id not specified in a delete call".into(),
            },
        })
        .collect())
}

/// Sends one call and checks it answered one result per record.
async fn call(
    client: &SalesforceClient,
    req: ApiRequest,
    payload: &Payload<'_>,
    n: usize,
) -> Result<Vec<Outcome>, SinkError> {
    let results: Vec<Value> =
        client
            .request_json(req)
            .await
            .map_err(|e| SinkError::Salesforce {
                during: format!(
                    "sObject Collections {} of {n} {} records",
                    payload.operation.as_str(),
                    payload.object
                ),
                source: e,
            })?;
    if results.len() != n {
        return Err(SinkError::Protocol(format!(
            "sObject Collections answered {} results for {n} records",
            results.len(),
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
