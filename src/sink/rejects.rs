//! The rejects file: every row Salesforce refused (or no route took), as Parquet under
//! `rejects_path/{stream}/{sync_id}/part-N.parquet`: the input row's columns plus the route,
//! object, operation and Salesforce's error code and message. A file is completed before the
//! STATE that covers its rows is echoed, so a rejected row is never lost.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::error::SinkError;
use crate::output::{
    CompletedFile, OutputError, OutputLocation, ParquetFileWriter, ParquetOptions, open_location,
};
use crate::secret::Secret;

/// Column of the route that refused the row (`stream/routes[i] (...)`).
pub const ROUTE: &str = "_sfetl_route";
/// Column of the target object.
pub const OBJECT: &str = "_sfetl_object";
/// Column of the operation.
pub const OPERATION: &str = "_sfetl_operation";
/// Column of Salesforce's error code.
pub const ERROR_CODE: &str = "_sfetl_error_code";
/// Column of Salesforce's error message.
pub const ERROR_MESSAGE: &str = "_sfetl_error_message";

/// One refused row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// Row number in the input batch.
    pub row: usize,
    /// Route label.
    pub route: String,
    /// Target object.
    pub object: String,
    /// Operation.
    pub operation: String,
    /// Error code.
    pub code: String,
    /// Error message.
    pub message: String,
}

/// The rejects files of one run.
pub struct Rejects {
    path: String,
    storage_options: BTreeMap<String, Secret>,
    sync_id: String,
    location: Option<OutputLocation>,
    writers: BTreeMap<String, ParquetFileWriter>,
    /// Files written so far (display paths).
    pub files: Vec<String>,
}

impl Rejects {
    /// Rejects under `path` (opened on the first reject).
    pub fn new(path: &str, storage_options: &BTreeMap<String, Secret>) -> Rejects {
        Rejects {
            path: path.to_string(),
            storage_options: storage_options.clone(),
            sync_id: crate::output::new_sync_id(),
            location: None,
            writers: BTreeMap::new(),
            files: Vec::new(),
        }
    }

    /// Writes the refused rows of `batch` (of `stream`) and completes the file.
    pub async fn record(
        &mut self,
        stream: &str,
        batch: &RecordBatch,
        rejects: &[Reject],
    ) -> Result<Option<CompletedFile>, SinkError> {
        if rejects.is_empty() {
            return Ok(None);
        }
        if self.location.is_none() {
            self.location =
                Some(open_location(&self.path, &self.storage_options).map_err(rejects_path)?);
        }
        let location = self.location.clone().expect("opened above");
        let schema = reject_schema(batch.schema_ref());
        let writer = self.writers.entry(stream.to_string()).or_insert_with(|| {
            ParquetFileWriter::new(
                location.clone(),
                stream,
                &self.sync_id,
                schema.clone(),
                ParquetOptions::default(),
            )
        });
        let indices = UInt32Array::from_iter_values(rejects.iter().map(|r| r.row as u32));
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns() + 5);
        for c in batch.columns() {
            columns.push(take(c, &indices, None).map_err(|e| SinkError::Protocol(e.to_string()))?);
        }
        let text = |f: fn(&Reject) -> &str| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(rejects.iter().map(f)))
        };
        columns.push(text(|r| &r.route));
        columns.push(text(|r| &r.object));
        columns.push(text(|r| &r.operation));
        columns.push(text(|r| &r.code));
        columns.push(text(|r| &r.message));
        let out = RecordBatch::try_new(schema, columns)
            .map_err(|e| SinkError::Protocol(e.to_string()))?;
        let now = chrono::Utc::now().timestamp_micros();
        writer.write(&out, now).await.map_err(SinkError::Output)?;
        let done = writer.complete_file().await.map_err(SinkError::Output)?;
        if let Some(f) = &done {
            self.files.push(format!("{}/{}", location.display, f.path));
        }
        Ok(done)
    }
}

fn reject_schema(input: &SchemaRef) -> SchemaRef {
    let mut fields: Vec<Arc<Field>> = input.fields().iter().cloned().collect();
    for name in [ROUTE, OBJECT, OPERATION, ERROR_CODE, ERROR_MESSAGE] {
        fields.push(Arc::new(Field::new(name, DataType::Utf8, false)));
    }
    Arc::new(Schema::new(fields))
}

/// An unusable rejects folder, named by the setting that gives it (the output module's own
/// message names `output.path`, the read's setting).
fn rejects_path(e: OutputError) -> SinkError {
    match e {
        OutputError::Location { path, reason } => {
            SinkError::Config(vec![format!("writeback.rejects_path {path:?}: {reason}")])
        }
        other => SinkError::Output(other),
    }
}
