//! RECORD lines rendered straight from Arrow: arrow-json's encoders write each row's `data`
//! between a fixed prefix and suffix, so no `serde_json::Value` is built per row.

use std::sync::Arc;

use arrow::array::{Array, AsArray, StructArray};
use arrow::datatypes::{DataType, Field, FieldRef};
use arrow::error::ArrowError;
use arrow::json::writer::{Encoder, EncoderFactory, EncoderOptions, NullableEncoder, make_encoder};
use arrow::record_batch::RecordBatch;
use base64::Engine;

/// Renders batches of one stream as Airbyte RECORD lines.
pub struct RecordsRenderer {
    prefix: Vec<u8>,
    options: EncoderOptions,
}

impl RecordsRenderer {
    /// A renderer for `stream`.
    pub fn new(stream: &str) -> RecordsRenderer {
        let mut prefix = br#"{"type":"RECORD","record":{"stream":"#.to_vec();
        serde_json::to_writer(&mut prefix, stream).expect("a string serialises");
        prefix.extend_from_slice(br#","data":"#);
        let options = EncoderOptions::default()
            .with_explicit_nulls(true)
            .with_encoder_factory(Arc::new(Base64Binary));
        RecordsRenderer { prefix, options }
    }

    /// Appends one line per row of `batch` to `out`.
    pub fn render(
        &self,
        batch: &RecordBatch,
        emitted_at: i64,
        out: &mut Vec<u8>,
    ) -> Result<(), ArrowError> {
        let array = StructArray::from(batch.clone());
        let field: FieldRef = Arc::new(Field::new("", array.data_type().clone(), false));
        let mut encoder = make_encoder(&field, &array, &self.options)?;
        let suffix = format!(",\"emitted_at\":{emitted_at}}}}}\n");
        out.reserve(batch.num_rows() * (self.prefix.len() + suffix.len() + 64));
        for row in 0..batch.num_rows() {
            out.extend_from_slice(&self.prefix);
            encoder.encode(row, out);
            out.extend_from_slice(suffix.as_bytes());
        }
        Ok(())
    }
}

/// base64 fields travel as base64 text, as Salesforce and Airbyte's source send them (arrow-json
/// would write hex).
#[derive(Debug)]
struct Base64Binary;

struct Base64Encoder<'a>(&'a arrow::array::BinaryArray);

impl Encoder for Base64Encoder<'_> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        out.push(b'"');
        let text = base64::engine::general_purpose::STANDARD.encode(self.0.value(idx));
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    }
}

impl EncoderFactory for Base64Binary {
    fn make_default_encoder<'a>(
        &self,
        _field: &'a FieldRef,
        array: &'a dyn Array,
        _options: &'a EncoderOptions,
    ) -> Result<Option<NullableEncoder<'a>>, ArrowError> {
        if array.data_type() != &DataType::Binary {
            return Ok(None);
        }
        let binary = array.as_binary::<i32>();
        Ok(Some(NullableEncoder::new(
            Box::new(Base64Encoder(binary)),
            binary.nulls().cloned(),
        )))
    }
}
