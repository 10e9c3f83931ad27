//! REST query pages (JSON) decoded with arrow-json into wire batches.

use arrow::record_batch::RecordBatch;
use serde_json::Value;

use super::{DecodeError, WirePlan};

/// Decodes the `records` array of a REST query page. `attributes` and fields not in the plan
/// are ignored; nested address objects and relationships decode into structs.
pub fn decode_rest_records(plan: &WirePlan, records: &[Value]) -> Result<RecordBatch, DecodeError> {
    let err = |e: arrow::error::ArrowError| DecodeError::Arrow {
        object: plan.object.clone(),
        reason: e.to_string(),
    };
    let mut decoder = arrow::json::ReaderBuilder::new(plan.wire.clone())
        .with_batch_size(records.len().max(1))
        .build_decoder()
        .map_err(err)?;
    decoder.serialize(records).map_err(err)?;
    Ok(decoder
        .flush()
        .map_err(err)?
        .unwrap_or_else(|| RecordBatch::new_empty(plan.wire.clone())))
}

/// Removes NUL bytes from every text value of `records` (nested addresses and relationships
/// included), as the Bulk CSV decoder does: Salesforce can store them, and Parquet, JSON and
/// database consumers should not get them. Returns how many were removed, for the caller to warn.
pub fn remove_nul(records: &mut [Value]) -> u64 {
    records.iter_mut().map(remove_nul_in).sum()
}

fn remove_nul_in(v: &mut Value) -> u64 {
    match v {
        Value::String(s) if s.contains('\0') => {
            let before = s.len();
            s.retain(|c| c != '\0');
            (before - s.len()) as u64
        }
        Value::Array(items) => items.iter_mut().map(remove_nul_in).sum(),
        Value::Object(fields) => fields.values_mut().map(remove_nul_in).sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::remove_nul;

    #[test]
    fn nul_bytes_are_removed_from_every_text_value_and_counted() {
        let mut records = vec![
            json!({"Id": "a", "Description": "x\0y\0", "N": 1,
                   "BillingAddress": {"street": "\0Main"}, "Owner": {"Name": "b"}}),
            json!({"Id": "b", "Description": null}),
        ];
        assert_eq!(remove_nul(&mut records), 3);
        assert_eq!(records[0]["Description"], "xy");
        assert_eq!(records[0]["BillingAddress"]["street"], "Main");
        assert_eq!(remove_nul(&mut records), 0);
    }
}
