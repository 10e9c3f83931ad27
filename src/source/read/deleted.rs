//! Rows deleted in a window that `queryAll` cannot return any more (hard deletes, an emptied
//! recycle bin), from the REST `deleted` endpoint, delivered as rows with `Id`,
//! `IsDeleted = true`, and the deletion time as cursor and `_sfetl_deleted_at`.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, RecordBatch, StringArray, TimestampMicrosecondArray};
use chrono::Utc;

use super::FetchError;
use super::fetch::ObjectReader;
use super::plan::DELETED_AT;
use crate::output::{OutputError, StreamWriter};
use crate::salesforce::replication;
use crate::source::soql::Window;
use crate::state::parse_datetime;

/// Salesforce answers the `deleted` call for the last 30 days only; one day of margin.
const DELETED_HORIZON_DAYS: i64 = 29;

impl ObjectReader<'_> {
    /// Delivers the rows of the object deleted in `window` (older windows are left to
    /// queryAll's `IsDeleted` rows); returns how many.
    pub(super) async fn deleted_rows(
        &mut self,
        window: Window,
        writer: &mut dyn StreamWriter,
    ) -> Result<u64, FetchError> {
        let horizon = Utc::now() - chrono::Duration::days(DELETED_HORIZON_DAYS);
        if window.upper <= horizon {
            return Ok(0);
        }
        let start = window.lower.map_or(horizon, |l| l.max(horizon));
        let answer =
            replication::deleted(&self.ctx.client, &self.object.object, start, window.upper)
                .await?;
        let (ids, at): (Vec<String>, Vec<i64>) = answer
            .deleted_records
            .into_iter()
            .filter_map(|r| Some((r.id, parse_datetime(&r.deleted_date)?.timestamp_micros())))
            .unzip();
        if ids.is_empty() {
            return Ok(0);
        }
        let n = ids.len();
        let batch = self.deletion_batch(ids, at)?;
        self.deliver(writer, batch, Utc::now()).await?;
        Ok(n as u64)
    }

    /// Rows of the object's (unmapped) schema for deleted `ids`, deleted at `at` (µs).
    fn deletion_batch(&self, ids: Vec<String>, at: Vec<i64>) -> Result<RecordBatch, FetchError> {
        let n = ids.len();
        let when: ArrayRef = Arc::new(TimestampMicrosecondArray::from(at).with_timezone("UTC"));
        let ids: ArrayRef = Arc::new(StringArray::from(ids));
        let cursor = self.object.cursor;
        let schema = self.object.deleted_schema.clone();
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|f| -> ArrayRef {
                match f.name().as_str() {
                    "Id" => ids.clone(),
                    "IsDeleted" => Arc::new(BooleanArray::from(vec![true; n])),
                    DELETED_AT => when.clone(),
                    name if Some(name) == cursor => when.clone(),
                    _ => arrow::array::new_null_array(f.data_type(), n),
                }
            })
            .collect();
        Ok(
            RecordBatch::try_new(schema, columns)
                .map_err(|e| OutputError::Render(e.to_string()))?,
        )
    }
}
