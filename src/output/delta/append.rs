//! An incremental read into a table that held no rows when it began (a stream's first read):
//! its rows are written to data files as they come, as a full refresh writes them, and each
//! checkpoint commits the files written since the last with its STATE. Held for one MERGE per
//! checkpoint instead, a first read of 1M Accounts of all fields peaked at 3.7 GB and spent
//! 30 s of CPU (a full refresh of them: 100 MB, 4.6 s).
//!
//! Appending gives the MERGE's table only while every row is new: the table started empty,
//! and no key of this read came before. A key that comes again (a row read twice, a deletion
//! of a row written) ends it: the files so far are committed, and the read merges from there.
//! Deletions of keys never written need nothing: a current-state table does not hold them.

use std::collections::HashSet;

use arrow::array::ArrayRef;
use arrow::record_batch::RecordBatch;
use datafusion::common::hash_utils::{QualityRandomState, create_hashes};

use super::DeltaError;
use super::rows::Keys;

/// The keys a read has written while it appends.
pub(super) struct Appender {
    /// 64-bit hashes of the keys written: a collision only ends appending early (the read then
    /// merges, which is always right).
    seen: HashSet<u64>,
    hasher: QualityRandomState,
}

impl Appender {
    /// No key written yet.
    pub(super) fn new() -> Appender {
        Appender {
            seen: HashSet::new(),
            hasher: QualityRandomState::with_seed(0x4528_21e6_38d0_1377),
        }
    }

    /// Whether `rows` (deletions included) may be appended: none of their keys came before in
    /// this read, nor twice among them. Their keys are then remembered; when they may not,
    /// nothing is.
    pub(super) fn admit(&mut self, rows: &RecordBatch, keys: &Keys) -> Result<bool, DeltaError> {
        let columns: Vec<ArrayRef> = keys
            .key
            .iter()
            .map(|k| {
                rows.column_by_name(k)
                    .cloned()
                    .ok_or_else(|| DeltaError::Rows(format!("the key column `{k}` is missing")))
            })
            .collect::<Result<_, _>>()?;
        let mut hashes = vec![0u64; rows.num_rows()];
        create_hashes(&columns, &self.hasher, &mut hashes)
            .map_err(|e| DeltaError::Rows(e.to_string()))?;
        let mut batch = HashSet::with_capacity(hashes.len());
        for h in hashes {
            if self.seen.contains(&h) || !batch.insert(h) {
                return Ok(false);
            }
        }
        self.seen.extend(batch);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{BooleanArray, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn batch(ids: &[&str]) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("Id", DataType::Utf8, false),
            Field::new("IsDeleted", DataType::Boolean, true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from(ids.to_vec())),
                Arc::new(BooleanArray::from(vec![false; ids.len()])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn rows_are_appended_while_every_key_is_new() {
        let keys = Keys::of(&batch(&[]).schema(), Some("SystemModstamp"));
        let mut a = Appender::new();
        assert!(a.admit(&batch(&["001A", "001B"]), &keys).unwrap());
        assert!(a.admit(&batch(&["001C"]), &keys).unwrap());
        // A key of an earlier batch, or twice in one: no longer.
        assert!(!a.admit(&batch(&["001D", "001A"]), &keys).unwrap());
        assert!(!a.admit(&batch(&["001E", "001E"]), &keys).unwrap());
        // What was refused was not remembered.
        assert!(a.admit(&batch(&["001D", "001E"]), &keys).unwrap());
    }
}
