//! Bulk API 2.0 result pages (CSV) decoded chunk by chunk as the HTTP body streams in, so a page
//! is never held whole in memory.
//!
//! [`super::fields`] splits records; each field goes straight into its column
//! ([`super::columns`]), typed by the wire schema. This replaces arrow-csv's decoder, which
//! copied every field twice more and parsed datetimes and decimals with general parsers.

use arrow::record_batch::RecordBatch;

use super::columns::ColumnBuilder;
use super::fields::{FieldSplitter, Records, SplitError};
use super::{DecodeError, WirePlan};

/// Decodes one CSV result page (header line first) into wire batches.
pub struct CsvPageDecoder {
    object: String,
    expected: Vec<String>,
    header: Option<Vec<u8>>,
    /// For each column of the page (header order), the wire column it fills: Salesforce
    /// answers columns in SELECT order, but alphabetically up to API version 49.0.
    order: Vec<usize>,
    splitter: FieldSplitter,
    wire: arrow::datatypes::SchemaRef,
    columns: Result<Vec<ColumnBuilder>, String>,
    rows: usize,
    /// Bytes of field text in the batch being built.
    bytes: usize,
    batch_size: usize,
    /// Bytes of field text at which a batch is closed before `batch_size` rows.
    batch_bytes: usize,
    /// Number of the next record in this page (for error messages).
    line: u64,
}

impl CsvPageDecoder {
    /// A decoder for one page of `plan`'s Bulk query, emitting batches of `batch_size` rows.
    pub fn new(plan: &WirePlan, batch_size: usize) -> CsvPageDecoder {
        let batch_size = batch_size.max(1);
        let columns = builders(&plan.wire, batch_size);
        CsvPageDecoder {
            object: plan.object.clone(),
            expected: plan.select.clone(),
            header: Some(Vec::new()),
            order: (0..plan.select.len()).collect(),
            splitter: FieldSplitter::new(),
            wire: plan.wire.clone(),
            columns,
            rows: 0,
            bytes: 0,
            batch_size,
            batch_bytes: usize::MAX,
            line: 1,
        }
    }

    /// Also closes a batch once its values hold `bytes` bytes of text, so that wide rows make
    /// smaller batches (see [`crate::output::Destination::batch_bytes`]).
    ///
    /// The columns start with room for the rows such a batch likely holds (values of 16 bytes
    /// on average), not for `batch_size` rows: a page decoder of an all-fields Account stream
    /// reserved 5 MB for 8,192 rows it would never hold at once.
    pub fn with_batch_bytes(mut self, bytes: Option<usize>) -> CsvPageDecoder {
        self.batch_bytes = bytes.unwrap_or(usize::MAX).max(1);
        let width = self.wire.fields().len().max(1);
        let rows = (self.batch_bytes / (16 * width)).clamp(1, self.batch_size);
        if rows < self.batch_size {
            self.columns = builders(&self.wire, rows);
        }
        self
    }

    /// Feeds a chunk of the body; returns the batches completed by it.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<RecordBatch>, DecodeError> {
        let mut data = chunk;
        if let Some(header) = self.header.as_mut() {
            match data.iter().position(|b| *b == b'\n') {
                None => {
                    header.extend_from_slice(data);
                    return Ok(Vec::new());
                }
                Some(n) => {
                    header.extend_from_slice(&data[..n]);
                    data = &data[n + 1..];
                    let header = self.header.take().unwrap_or_default();
                    self.order = self.check_header(&header)?;
                }
            }
        }
        self.feed(data, false)
    }

    /// Ends the page; returns the last batch.
    pub fn finish(&mut self) -> Result<Vec<RecordBatch>, DecodeError> {
        let mut out = if let Some(header) = self.header.take() {
            // An empty body is an empty result (Salesforce sends no header line then); else a
            // page that is only a header line without newline.
            if !header.is_empty() {
                self.order = self.check_header(&header)?;
            }
            Vec::new()
        } else {
            self.feed(&[], true)?
        };
        if let Some(b) = self.flush()? {
            out.push(b);
        }
        Ok(out)
    }

    /// Invalid UTF-8 sequences replaced by U+FFFD so far (in text values: in a number or a
    /// date they are an error like any other bad character).
    pub fn replaced_utf8(&self) -> u64 {
        match &self.columns {
            Ok(columns) => columns.iter().map(ColumnBuilder::replaced_utf8).sum(),
            Err(_) => 0,
        }
    }

    /// NUL bytes removed from values so far (Salesforce can hold them; Arrow text and the
    /// outputs downstream should not), for the caller to warn about.
    pub fn removed_nul(&self) -> u64 {
        match &self.columns {
            Ok(columns) => columns.iter().map(ColumnBuilder::removed_nul).sum(),
            Err(_) => 0,
        }
    }

    /// Matches the page's header to the selected columns by name (case-insensitively, in any
    /// order): for each page column, the wire column it fills.
    fn check_header(&self, line: &[u8]) -> Result<Vec<usize>, DecodeError> {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches('\r');
        let found: Vec<String> = text
            .split(',')
            .map(|h| h.trim_matches('"').to_string())
            .filter(|h| !h.is_empty())
            .collect();
        let mut order = Vec::with_capacity(found.len());
        for name in &found {
            match self
                .expected
                .iter()
                .position(|e| e.eq_ignore_ascii_case(name))
            {
                Some(i) if !order.contains(&i) => order.push(i),
                _ => break,
            }
        }
        if order.len() == found.len() && found.len() == self.expected.len() {
            Ok(order)
        } else {
            Err(DecodeError::Header {
                object: self.object.clone(),
                expected: self.expected.clone(),
                found,
            })
        }
    }

    /// Splits `data` into records and columns (`end`: the body ended, so a last record
    /// without a newline is complete).
    fn feed(&mut self, data: &[u8], end: bool) -> Result<Vec<RecordBatch>, DecodeError> {
        // NUL bytes are rare: one SIMD scan per chunk decides whether fields are checked one by
        // one (sticky for the page, as a field may span two chunks).
        if memchr::memchr(0, data).is_some()
            && let Ok(columns) = &mut self.columns
        {
            columns.iter_mut().for_each(ColumnBuilder::check_nul);
        }
        let mut out = Vec::new();
        let mut splitter = std::mem::take(&mut self.splitter);
        let split = splitter.push(data, end, &mut |records| -> Result<(), Failure> {
            let mut first = 0;
            while first < records.len() {
                let last = self.batch_end(records, first);
                self.append_records(records, first..last)?;
                if self.rows == self.batch_size || self.bytes >= self.batch_bytes {
                    out.push(self.take_batch()?);
                }
                first = last;
            }
            Ok(())
        });
        self.splitter = splitter;
        match split {
            Ok(()) => Ok(out),
            Err(Failure::Decode(e)) => Err(e),
            Err(Failure::Split(SplitError(e))) => {
                Err(self.err(format!("record {}: {e}", self.line)))
            }
        }
    }

    /// The record after the one that closes the batch being built (by rows or text bytes), of
    /// `records` from `first` on; `records.len()` when they all fit.
    fn batch_end(&self, records: Records<'_>, first: usize) -> usize {
        let room = self.batch_size - self.rows;
        let count = records.len() - first;
        if first == 0 && count <= room && self.bytes + records.page_bytes() < self.batch_bytes {
            // The usual case: the page's bytes bound the records' text, so they need not be
            // counted one by one.
            return records.len();
        }
        let mut last = first;
        let mut bytes = self.bytes;
        while last < records.len() && last - first < room && bytes < self.batch_bytes {
            bytes += records.text_bytes(last);
            last += 1;
        }
        last
    }

    /// Moves records `range` of `records` into the columns, column by column. A record with
    /// the wrong number of fields fails the page after the records before it are in.
    fn append_records(
        &mut self,
        records: Records<'_>,
        range: std::ops::Range<usize>,
    ) -> Result<(), DecodeError> {
        let width = self.expected.len();
        if let Some(bad) = range.clone().find(|&r| records.fields(r).len() != width) {
            self.append_records(records, range.start..bad)?;
            let n = records.fields(bad).len();
            let reason = format!(
                "record {}: {n} fields where {width} were selected",
                self.line
            );
            // The decoder cannot go on after a record it could not place.
            self.columns = Err(reason.clone());
            return Err(self.err(reason));
        }
        let columns = self.columns.as_mut().map_err(|e| DecodeError::Arrow {
            object: self.object.clone(),
            reason: e.clone(),
        })?;
        for (n, &col) in self.order.iter().enumerate() {
            let Some(column) = columns.get_mut(col) else {
                continue;
            };
            match column.push_tile(records, range.clone(), n) {
                Ok(bytes) => self.bytes += bytes,
                Err((r, e)) => {
                    let name = self.wire.field(col).name();
                    let line = self.line + (r - range.start) as u64;
                    return Err(self.err(format!("record {line}, {name}: {e}")));
                }
            }
        }
        let count = range.len();
        self.rows += count;
        self.line += count as u64;
        Ok(())
    }

    /// The rows collected so far as a wire batch.
    fn take_batch(&mut self) -> Result<RecordBatch, DecodeError> {
        // The next batch is likely as long as this one: its builders get room for that.
        let rows = (self.rows + self.rows / 8).clamp(1, self.batch_size);
        self.rows = 0;
        self.bytes = 0;
        let columns = self.columns.as_mut().map_err(|e| DecodeError::Arrow {
            object: self.object.clone(),
            reason: e.clone(),
        })?;
        let arrays = columns
            .iter_mut()
            .map(|c| c.finish(rows))
            .collect::<Result<Vec<_>, String>>();
        let batch = arrays
            .and_then(|a| RecordBatch::try_new(self.wire.clone(), a).map_err(|e| e.to_string()));
        batch.map_err(|e| self.err(e))
    }

    fn flush(&mut self) -> Result<Option<RecordBatch>, DecodeError> {
        if self.rows == 0 {
            return Ok(None);
        }
        self.take_batch().map(Some)
    }

    fn err(&self, reason: String) -> DecodeError {
        DecodeError::Arrow {
            object: self.object.clone(),
            reason,
        }
    }
}

/// Empty builders for the columns of `wire`, each with room for `rows` values: a batch's
/// text and numbers go straight into them, so room reserved here is what the batch then
/// needs no copy to grow into (and what it holds in memory whether it fills it or not,
/// hence [`CsvPageDecoder::with_batch_bytes`] asks for fewer rows when batches are small).
fn builders(wire: &arrow::datatypes::SchemaRef, rows: usize) -> Result<Vec<ColumnBuilder>, String> {
    wire.fields()
        .iter()
        .map(|f| ColumnBuilder::new(f.data_type(), rows))
        .collect()
}

/// Why splitting stopped: a malformed record, or a value its column rejects.
enum Failure {
    Split(SplitError),
    Decode(DecodeError),
}

impl From<SplitError> for Failure {
    fn from(e: SplitError) -> Failure {
        Failure::Split(e)
    }
}

impl From<DecodeError> for Failure {
    fn from(e: DecodeError) -> Failure {
        Failure::Decode(e)
    }
}
