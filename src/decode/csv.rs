//! Bulk API 2.0 result pages (CSV) decoded with arrow-csv's push decoder, chunk by chunk as the
//! HTTP body streams in, so a page is never held whole in memory.

use arrow::csv::reader::Decoder;
use arrow::record_batch::RecordBatch;

use super::{DecodeError, Utf8Repair, WirePlan};

/// Decodes one CSV result page (header line first) into wire batches.
pub struct CsvPageDecoder {
    object: String,
    expected: Vec<String>,
    header: Option<Vec<u8>>,
    decoder: Decoder,
    utf8: Utf8Repair,
}

impl CsvPageDecoder {
    /// A decoder for one page of `plan`'s Bulk query, emitting batches of `batch_size` rows.
    pub fn new(plan: &WirePlan, batch_size: usize) -> CsvPageDecoder {
        let decoder = arrow::csv::ReaderBuilder::new(plan.wire.clone())
            .with_header(false)
            .with_batch_size(batch_size)
            .build_decoder();
        CsvPageDecoder {
            object: plan.object.clone(),
            expected: plan.select.clone(),
            header: Some(Vec::new()),
            decoder,
            utf8: Utf8Repair::new(),
        }
    }

    /// Feeds a chunk of the body; returns the batches completed by it.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<RecordBatch>, DecodeError> {
        let repaired = self.utf8.push(chunk);
        let mut data: &[u8] = &repaired;
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
                    self.check_header(&header)?;
                }
            }
        }
        self.feed(data)
    }

    /// Ends the page; returns the last batch.
    pub fn finish(&mut self) -> Result<Vec<RecordBatch>, DecodeError> {
        let tail = self.utf8.finish();
        let mut out = if let Some(header) = self.header.take() {
            // A page that is only a header line without newline.
            let mut h = header;
            h.extend_from_slice(&tail);
            self.check_header(&h)?;
            Vec::new()
        } else {
            self.feed(&tail)?
        };
        if let Some(b) = self.flush()? {
            out.push(b);
        }
        Ok(out)
    }

    /// Invalid UTF-8 sequences replaced by U+FFFD so far.
    pub fn replaced_utf8(&self) -> u64 {
        self.utf8.replaced()
    }

    fn check_header(&self, line: &[u8]) -> Result<(), DecodeError> {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches('\r');
        let found: Vec<String> = text
            .split(',')
            .map(|h| h.trim_matches('"').to_string())
            .filter(|h| !h.is_empty())
            .collect();
        let same = found.len() == self.expected.len()
            && found
                .iter()
                .zip(&self.expected)
                .all(|(f, e)| f.eq_ignore_ascii_case(e));
        if same {
            Ok(())
        } else {
            Err(DecodeError::Header {
                object: self.object.clone(),
                expected: self.expected.clone(),
                found,
            })
        }
    }

    fn feed(&mut self, mut data: &[u8]) -> Result<Vec<RecordBatch>, DecodeError> {
        let mut out = Vec::new();
        while !data.is_empty() {
            let n = self.decoder.decode(data).map_err(|e| self.arrow_err(e))?;
            data = &data[n..];
            if (n == 0 || self.decoder.capacity() == 0)
                && let Some(b) = self.flush()?
            {
                out.push(b);
            }
        }
        Ok(out)
    }

    fn flush(&mut self) -> Result<Option<RecordBatch>, DecodeError> {
        self.decoder.flush().map_err(|e| self.arrow_err(e))
    }

    fn arrow_err(&self, e: arrow::error::ArrowError) -> DecodeError {
        DecodeError::Arrow {
            object: self.object.clone(),
            reason: e.to_string(),
        }
    }
}
