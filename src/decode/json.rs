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
