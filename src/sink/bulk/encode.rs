//! Bulk ingest CSV both ways: rows of a payload rendered as CSV up to the upload limit (nulls
//! as `#N/A`), and result files (`failedResults/`, `unprocessedrecords/`) matched back to the
//! rows sent. Results come back in any order, so rows are matched by their values.

use std::collections::HashMap;

use bytes::Bytes;

use crate::sink::error::SinkError;
use crate::sink::format::csv_cell;
use crate::sink::payload::{Outcome, Payload};

/// The CSV of one job, cut at the upload limit.
pub(super) struct Chunk {
    /// Header and rows, LF line endings.
    pub csv: Bytes,
    /// Positions (in the `rows` given to [`render`]) of the rows in `csv`, in order.
    pub rows: Vec<usize>,
    /// Where the next chunk starts.
    pub next: usize,
    /// Rows too large for any upload, refused by name, unsent.
    pub refused: Vec<(usize, Outcome)>,
}

fn writer(buffer: Vec<u8>) -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(buffer)
}

fn broken(e: impl std::fmt::Display) -> SinkError {
    SinkError::Protocol(format!("rendering Bulk CSV: {e}"))
}

/// The CSV of `rows[start..]` up to `limit` bytes. A row that does not fit beside the header
/// alone is refused ([`Payload::too_large`]) instead of being uploaded to fail the whole job.
pub(super) fn render(
    payload: &Payload<'_>,
    columns: &[usize],
    rows: &[usize],
    start: usize,
    limit: usize,
) -> Result<Chunk, SinkError> {
    let mut w = writer(Vec::with_capacity(1 << 20));
    w.write_record(columns.iter().map(|&c| payload.fields[c].0))
        .map_err(broken)?;
    w.flush().map_err(broken)?;
    let header = w.get_ref().len();
    let mut chunk = Chunk {
        csv: Bytes::new(),
        rows: Vec::new(),
        next: rows.len(),
        refused: Vec::new(),
    };
    for (pos, &row) in rows.iter().enumerate().skip(start) {
        let before = w.get_ref().len();
        // An empty cell leaves the field as it is (a left-out key); `#N/A` clears it.
        w.write_record(columns.iter().map(|&c| match payload.is_absent(c, row) {
            true => "",
            false => csv_cell(payload.value(c, row)),
        }))
        .map_err(broken)?;
        w.flush().map_err(broken)?;
        let size = w.get_ref().len() - before;
        let alone_too_large = header + size > limit;
        if alone_too_large || before + size > limit {
            let mut bytes = w.into_inner().map_err(broken)?;
            bytes.truncate(before);
            if !alone_too_large {
                chunk.next = pos;
                chunk.csv = Bytes::from(bytes);
                return Ok(chunk);
            }
            let most = format!("the {limit} bytes of one Bulk upload (writeback.max_upload_bytes)");
            let refusal = payload.too_large(row, header + size, "Bulk ingest CSV", &most);
            chunk.refused.push((pos, refusal));
            w = writer(bytes);
            continue;
        }
        chunk.rows.push(pos);
    }
    chunk.csv = Bytes::from(w.into_inner().map_err(broken)?);
    Ok(chunk)
}

/// `CODE:message:fields --` → (code, message).
pub(super) fn split_error(e: &str) -> (String, String) {
    let e = e.trim().trim_end_matches("--").trim_end();
    match e.split_once(':') {
        Some((code, rest)) => {
            let message = match rest.rsplit_once(':') {
                Some((m, fields)) if fields.trim().is_empty() => m.to_string(),
                Some((m, fields)) => format!("{m} (fields: {})", fields.trim()),
                None => rest.to_string(),
            };
            (code.trim().to_string(), message)
        }
        None => ("UNKNOWN_ERROR".into(), e.to_string()),
    }
}

/// Input rows by their CSV cells, to find which row a result line belongs to.
pub(super) struct RowIndex {
    names: Vec<String>,
    by_key: HashMap<Vec<String>, Vec<usize>>,
}

impl RowIndex {
    /// The index of `rows` (payload rows) as sent in `columns`; results give positions in
    /// `rows`.
    pub(super) fn new(payload: &Payload<'_>, columns: &[usize], rows: &[usize]) -> RowIndex {
        let mut by_key: HashMap<Vec<String>, Vec<usize>> = HashMap::new();
        for (pos, &row) in rows.iter().enumerate().rev() {
            let key = columns
                .iter()
                .map(|&c| csv_cell(payload.value(c, row)).to_string())
                .collect();
            by_key.entry(key).or_default().push(pos);
        }
        RowIndex {
            names: columns
                .iter()
                .map(|&c| payload.fields[c].0.to_string())
                .collect(),
            by_key,
        }
    }

    /// (row position, sf__Error) per result line; each input row is matched once.
    pub(super) fn match_results(
        &mut self,
        text: &str,
        with_error: bool,
    ) -> Result<Vec<(usize, String)>, SinkError> {
        let mut rdr = csv::ReaderBuilder::new().from_reader(text.as_bytes());
        let bad = |e: csv::Error| SinkError::Protocol(format!("reading Bulk results: {e}"));
        let headers = rdr.headers().map_err(bad)?.clone();
        let pos_of = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
        let cols: Vec<Option<usize>> = self.names.iter().map(|n| pos_of(n)).collect();
        let error_col = pos_of("sf__Error");
        let mut out = Vec::new();
        for rec in rdr.records() {
            let rec = rec.map_err(bad)?;
            let key: Vec<String> = cols
                .iter()
                .map(|c| c.and_then(|c| rec.get(c)).unwrap_or("").to_string())
                .collect();
            let error = if with_error {
                error_col.and_then(|c| rec.get(c)).unwrap_or("").to_string()
            } else {
                String::new()
            };
            match self.by_key.get_mut(&key).and_then(Vec::pop) {
                Some(pos) => out.push((pos, error)),
                None => {
                    return Err(SinkError::Protocol(format!(
                        "a Bulk result row matches no row sent ({})",
                        key.join(",")
                    )));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::StringArray;

    use super::{render, split_error};
    use crate::sink::payload::{Operation, Outcome, Payload};

    #[test]
    fn bulk_errors_split_into_code_and_message() {
        assert_eq!(
            split_error("STRING_TOO_LONG:Score Reason: data value too large:Score_Reason__c --"),
            (
                "STRING_TOO_LONG".to_string(),
                "Score Reason: data value too large (fields: Score_Reason__c)".to_string()
            )
        );
        assert_eq!(
            split_error("INVALID_CROSS_REFERENCE_KEY:invalid cross reference id: x: --"),
            (
                "INVALID_CROSS_REFERENCE_KEY".to_string(),
                "invalid cross reference id: x".to_string()
            )
        );
    }

    #[test]
    fn csv_is_cut_at_the_limit_and_rows_too_large_alone_are_refused() {
        let big = "x".repeat(100);
        let values = [
            StringArray::from(vec!["a1", "a2", "a3", "a4"]),
            StringArray::from(vec![Some("one"), Some(big.as_str()), None, Some("four")]),
        ];
        let payload = Payload {
            object: "Lead",
            operation: Operation::Update,
            external_id: None,
            fields: vec![("Id", "id"), ("Reason", "string")],
            values: &values,
            absent: &[],
        };
        let rows = [0, 1, 2, 3];
        // Header "Id,Reason\n" is 10 bytes; "a1,one\n" 7, "a3,#N/A\n" 8, "a4,four\n" 8.
        let first = render(&payload, &[0, 1], &rows, 0, 25).unwrap();
        assert_eq!(&first.csv[..], b"Id,Reason\na1,one\na3,#N/A\n");
        assert_eq!((first.rows.clone(), first.next), (vec![0, 2], 3));
        assert_eq!(first.refused.len(), 1);
        let (pos, Outcome::Failed { code, message }) = &first.refused[0] else {
            panic!("refused")
        };
        assert_eq!((*pos, code.as_str()), (1, "SFETL_ROW_TOO_LARGE"));
        assert_eq!(
            message,
            "Id a2: the row is 114 bytes as Bulk ingest CSV, over the 25 bytes of one Bulk upload (writeback.max_upload_bytes) (Reason alone is 100 bytes); it was not sent. Shorten the value: a Salesforce text field holds at most 131,072 characters"
        );
        let second = render(&payload, &[0, 1], &rows, first.next, 25).unwrap();
        assert_eq!(&second.csv[..], b"Id,Reason\na4,four\n");
        assert_eq!((second.rows, second.next), (vec![3], 4));
    }
}
