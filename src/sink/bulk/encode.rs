//! Bulk ingest CSV both ways: rows of a payload rendered as CSV up to the upload limit (nulls
//! as `#N/A`), and result files (`failedResults/`, `unprocessedrecords/`) matched back to the
//! rows sent. Results come back in any order, so rows are matched by their values.

use std::collections::HashMap;

use bytes::Bytes;

use crate::sink::error::SinkError;
use crate::sink::format::csv_cell;
use crate::sink::payload::Payload;

/// CSV of rows `start..` up to the byte limit; returns it and the end row.
pub(super) fn render(
    payload: &Payload<'_>,
    columns: &[usize],
    rows: &[usize],
    start: usize,
    limit: usize,
) -> Result<(Bytes, usize), SinkError> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::with_capacity(1 << 20));
    let err = |e: csv::Error| SinkError::Protocol(format!("rendering Bulk CSV: {e}"));
    w.write_record(columns.iter().map(|&c| payload.fields[c].0))
        .map_err(err)?;
    let mut end = start;
    let mut written = 0usize;
    for &row in &rows[start..] {
        w.write_record(columns.iter().map(|&c| csv_cell(payload.value(c, row))))
            .map_err(err)?;
        let size = w.get_ref().len();
        if size > limit && end > start {
            // This row went over: cut it off and stop here.
            w.flush().map_err(|e| SinkError::Protocol(e.to_string()))?;
            let mut bytes = w
                .into_inner()
                .map_err(|e| SinkError::Protocol(e.to_string()))?;
            bytes.truncate(written);
            return Ok((Bytes::from(bytes), end));
        }
        w.flush().map_err(|e| SinkError::Protocol(e.to_string()))?;
        written = w.get_ref().len();
        end += 1;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| SinkError::Protocol(e.to_string()))?;
    Ok((Bytes::from(bytes), end))
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
    use super::split_error;

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
}
