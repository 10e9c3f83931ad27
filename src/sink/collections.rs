//! sObject Collections: up to 200 records per call, one result per record in order. Update,
//! upsert and delete calls are idempotent, so the client retries them after a transient failure;
//! insert is not (a retried POST could create duplicates). Calls are also kept under
//! [`MAX_REQUEST_BYTES`]; a row too large for a call of its own is refused by name, unsent.

use serde_json::{Map, Value, json};

use super::error::SinkError;
use super::format::json_value;
use super::payload::{Operation, Outcome, Payload};
use crate::salesforce::collections::{self, SaveKind, SaveResult};
use crate::salesforce::{SalesforceClient, SalesforceError};

/// Records per call, Salesforce's limit.
pub const MAX_RECORDS: usize = collections::MAX_RECORDS;

/// Largest request body sfetl sends in one call. Salesforce documents no byte limit for this
/// resource, but its gateways refuse very large bodies with HTTP 413 (the simulator at 2 MiB),
/// which would stop the run without saying which row was at fault. 200 ordinary rows are far
/// below it; calls are split before it, and a single row over it is rejected by name.
pub const MAX_REQUEST_BYTES: usize = 2 * 1024 * 1024;

/// The request body's bytes around the records: `{"allOrNone":false,"records":[` and `]}`.
const ENVELOPE: (&str, &str) = ("{\"allOrNone\":false,\"records\":[", "]}");

/// Sends `rows` of `payload` in as few calls as the record and byte limits allow; one outcome
/// per row, in order.
pub async fn send(
    client: &SalesforceClient,
    payload: &Payload<'_>,
    rows: &[usize],
) -> Result<Vec<Outcome>, SinkError> {
    if payload.operation == Operation::Delete {
        let mut out = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(MAX_RECORDS) {
            out.extend(delete(client, payload, chunk).await?);
        }
        return Ok(out);
    }
    let limit = MAX_REQUEST_BYTES - ENVELOPE.0.len() - ENVELOPE.1.len();
    let mut outcomes: Vec<Option<Outcome>> = vec![None; rows.len()];
    // (position in `rows`, record) of the call being filled, and its encoded size.
    let mut call: Vec<(usize, Value)> = Vec::new();
    let mut bytes = 0usize;
    for (pos, &row) in rows.iter().enumerate() {
        let record = record(payload, row);
        let size = encoded_len(&record);
        if size > limit {
            let size = size + ENVELOPE.0.len() + ENVELOPE.1.len();
            let limit = format!("the {MAX_REQUEST_BYTES} bytes sfetl sends in one call");
            let refusal = payload.too_large(row, size, "sObject Collections JSON", &limit);
            outcomes[pos] = Some(refusal);
            continue;
        }
        if call.len() == MAX_RECORDS || bytes + 1 + size > limit {
            upsert_call(client, payload, std::mem::take(&mut call), &mut outcomes).await?;
            bytes = 0;
        }
        bytes += size + 1;
        call.push((pos, record));
    }
    upsert_call(client, payload, call, &mut outcomes).await?;
    Ok(outcomes
        .into_iter()
        .map(|o| o.expect("every row has an outcome"))
        .collect())
}

/// The size of `v` as JSON, without keeping the text.
fn encoded_len(v: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, v).expect("a JSON value always serialises");
    count.0
}

/// One insert / update / upsert call of `records`; their outcomes are stored at their
/// positions.
async fn upsert_call(
    client: &SalesforceClient,
    payload: &Payload<'_>,
    records: Vec<(usize, Value)>,
    outcomes: &mut [Option<Outcome>],
) -> Result<(), SinkError> {
    if records.is_empty() {
        return Ok(());
    }
    let positions: Vec<usize> = records.iter().map(|(pos, _)| *pos).collect();
    let records: Vec<Value> = records.into_iter().map(|(_, r)| r).collect();
    let kind = match (payload.operation, payload.external_id) {
        (Operation::Insert, _) => SaveKind::Insert,
        (Operation::Upsert, Some(external_id)) => SaveKind::Upsert {
            object: payload.object,
            external_id,
        },
        _ => SaveKind::Update,
    };
    let n = positions.len();
    let answered = checked(collections::save(client, kind, records).await, payload, n)?;
    for (pos, outcome) in positions.into_iter().zip(answered) {
        outcomes[pos] = Some(outcome);
    }
    Ok(())
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
        checked(
            collections::delete(client, &sent).await,
            payload,
            sent.len(),
        )?
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

/// The outcomes of one call, checked to hold one result per record.
fn checked(
    answer: Result<Vec<SaveResult>, SalesforceError>,
    payload: &Payload<'_>,
    n: usize,
) -> Result<Vec<Outcome>, SinkError> {
    let results = answer.map_err(|e| SinkError::Salesforce {
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

/// Row `row` as an sObject Collections record.
fn record(payload: &Payload<'_>, row: usize) -> Value {
    let mut m = Map::new();
    m.insert("attributes".into(), json!({"type": payload.object}));
    m.extend(fields(payload, row));
    Value::Object(m)
}

/// Row `row`'s fields as typed JSON values. A field whose input key the RECORD left out is not
/// among them, so Salesforce keeps its value.
pub(super) fn fields(payload: &Payload<'_>, row: usize) -> Map<String, Value> {
    let mut m = Map::new();
    for c in payload.columns() {
        if payload.is_absent(c, row) {
            continue;
        }
        let (name, kind) = payload.fields[c];
        m.insert(name.to_string(), json_value(payload.value(c, row), kind));
    }
    m
}

fn outcome(r: &SaveResult) -> Outcome {
    if r.success {
        return Outcome::Applied;
    }
    let Some(first) = r.errors.first() else {
        return Outcome::Failed {
            code: "UNKNOWN_ERROR".into(),
            message: String::new(),
        };
    };
    let mut message = first.message.clone();
    if !first.fields.is_empty() {
        message = format!("{message} (fields: {})", first.fields.join(", "));
    }
    Outcome::Failed {
        code: if first.status_code.is_empty() {
            "UNKNOWN_ERROR".to_string()
        } else {
            first.status_code.clone()
        },
        message,
    }
}
