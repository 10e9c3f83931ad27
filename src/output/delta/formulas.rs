//! A formula refresh merged into the stream's table: formula fields change while their rows do
//! not (time-based and cross-object formulas), so the scheduled refresh reads `Id`, the cursor
//! and those fields of every row, and one MERGE sets the new values on the rows whose values
//! differ, in place. Parquet keeps them in a side table joined at query time; a Delta table is
//! current as it stands, for every engine that reads it.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::rows::{self, Keys};
use super::table::TableTarget;
use super::{DeltaDestination, DeltaError, merge, state};
use crate::config::Compression;
use crate::output::{EXTRACTED_AT, OutputError, SYNC_ID, StreamWriter};

/// Collects a formula refresh's rows and merges them into the stream's table at the end.
pub struct FormulaWriter {
    target: TableTarget,
    keys: Keys,
    /// The refresh's columns in the table's types, plus the extraction time and sync id.
    schema: SchemaRef,
    sync_id: String,
    compression: Compression,
    rows: Vec<RecordBatch>,
}

impl DeltaDestination {
    /// The writer of a formula refresh of `stream`: rows of `schema` (the key, the cursor and
    /// the formula fields).
    pub fn open_formulas(
        &self,
        stream: &str,
        schema: &SchemaRef,
        cursor: Option<&str>,
    ) -> Result<FormulaWriter, OutputError> {
        Ok(FormulaWriter {
            target: TableTarget::new(&self.location, stream)?,
            keys: Keys::of(schema, cursor),
            schema: rows::table_schema(schema),
            sync_id: self.sync_id.clone(),
            compression: self.options.compression,
            rows: Vec::new(),
        })
    }
}

impl FormulaWriter {
    /// One MERGE of the refreshed values into the table (which the stream's own read has
    /// created by now; without it there is nothing to refresh).
    async fn merge(&mut self) -> Result<(), DeltaError> {
        let rows = std::mem::take(&mut self.rows);
        if rows.is_empty() {
            return Ok(());
        }
        let Some(table) = self.target.open().await? else {
            return Ok(());
        };
        // The STATE stays in the newest commits, as compaction keeps it.
        let props = state::carried_forward(&self.target, &table).await?;
        let cursor = self.keys.cursor.as_deref();
        let columns: Vec<String> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|c| !self.keys.key.contains(c) && Some(c.as_str()) != cursor)
            .filter(|c| c != EXTRACTED_AT && c != SYNC_ID)
            .collect();
        merge::update_columns(
            &self.target,
            table,
            rows,
            &self.keys,
            &columns,
            props,
            self.compression,
        )
        .await?;
        Ok(())
    }
}

#[async_trait]
impl StreamWriter for FormulaWriter {
    async fn write(
        &mut self,
        batch: &RecordBatch,
        extracted_at: DateTime<Utc>,
    ) -> Result<(), OutputError> {
        if batch.num_rows() > 0 {
            self.rows.push(rows::conform(
                batch,
                &self.schema,
                extracted_at.timestamp_micros(),
                &self.sync_id,
            )?);
        }
        Ok(())
    }

    // commit: nothing until the end (the refresh is one commit); position: none.
    async fn finish(&mut self) -> Result<(), OutputError> {
        Ok(self.merge().await?)
    }
}
