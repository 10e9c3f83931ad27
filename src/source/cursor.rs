//! Per-stream cursor state: what sfetl writes in STATE messages, and every older form it reads.
//!
//! sfetl writes `{"cursor_field": "SystemModstamp", "cursor": "2024-01-15T10:00:00.000Z"}`:
//! every row whose cursor is below `cursor` has been delivered (as of the read; late commits are
//! caught by the lookback window). It reads that, Airbyte's Salesforce source's legacy
//! `{"SystemModstamp": "..."}` and its concurrent `{"slices": [{"start", "end"}]}` forms.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::soql::datetime_literal;

/// Parses Salesforce and ISO datetimes (`...000+0000`, `...Z`, `+00:00`) and plain dates.
pub fn parse_datetime(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    }
    None
}

/// The saved cursor of a stream, from any accepted state form.
pub fn saved_cursor(blob: &Value, cursor_field: &str) -> Result<Option<DateTime<Utc>>, String> {
    let text_of = |v: &Value| -> Result<Option<DateTime<Utc>>, String> {
        match v {
            Value::Null => Ok(None),
            Value::String(s) => parse_datetime(s)
                .map(Some)
                .ok_or_else(|| format!("{s:?} is not a datetime")),
            other => Err(format!("{other} is not a datetime string")),
        }
    };
    // sfetl's own form.
    if let Some(c) = blob.get("cursor") {
        return text_of(c);
    }
    // Airbyte's concurrent form: the end of the contiguous run of slices from the first.
    if let Some(slices) = blob.get("slices").and_then(Value::as_array) {
        let mut ranges: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
        for s in slices {
            let start = s.get("start").map(text_of).transpose()?.flatten();
            let end = s.get("end").map(text_of).transpose()?.flatten();
            if let (Some(a), Some(b)) = (start, end) {
                ranges.push((a, b));
            }
        }
        ranges.sort();
        let mut covered: Option<DateTime<Utc>> = None;
        for (a, b) in ranges {
            match covered {
                None => covered = Some(b),
                Some(c) if a <= c => covered = Some(c.max(b)),
                Some(_) => break,
            }
        }
        if covered.is_some() {
            return Ok(covered);
        }
        // No slices: Airbyte keeps the legacy cursor beside them.
    }
    // Legacy form keyed by the cursor field (or any of the usual cursor fields).
    for key in [
        cursor_field,
        "SystemModstamp",
        "LastModifiedDate",
        "CreatedDate",
    ] {
        if let Some(v) = blob.get(key) {
            return text_of(v);
        }
    }
    Ok(None)
}

/// The state blob sfetl writes for a stream.
pub fn state_blob(cursor_field: &str, cursor: DateTime<Utc>) -> Value {
    json!({"cursor_field": cursor_field, "cursor": datetime_literal(cursor)})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(s: &str) -> DateTime<Utc> {
        parse_datetime(s).unwrap()
    }

    #[test]
    fn reads_every_form() {
        let own = state_blob("SystemModstamp", dt("2024-01-15T10:00:00Z"));
        assert_eq!(
            own,
            json!({"cursor_field": "SystemModstamp", "cursor": "2024-01-15T10:00:00.000Z"})
        );
        assert_eq!(
            saved_cursor(&own, "SystemModstamp").unwrap(),
            Some(dt("2024-01-15T10:00:00Z"))
        );
        let legacy = json!({"SystemModstamp": "2022-11-01T00:00:00.000+0000"});
        assert_eq!(
            saved_cursor(&legacy, "SystemModstamp").unwrap(),
            Some(dt("2022-11-01T00:00:00Z"))
        );
        let lmd = json!({"LastModifiedDate": "2022-11-01T00:00:00.000+0000"});
        assert_eq!(
            saved_cursor(&lmd, "LastModifiedDate").unwrap(),
            Some(dt("2022-11-01T00:00:00Z"))
        );
        let slices = json!({"state_type": "date-range", "slices": [
            {"start": "2024-02-01T00:00:00.000Z", "end": "2024-03-01T00:00:00.000Z"},
            {"start": "2024-01-01T00:00:00.000Z", "end": "2024-02-01T00:00:00.000Z"},
            {"start": "2024-04-01T00:00:00.000Z", "end": "2024-05-01T00:00:00.000Z"}]});
        assert_eq!(
            saved_cursor(&slices, "SystemModstamp").unwrap(),
            Some(dt("2024-03-01T00:00:00Z")),
            "stops at the gap"
        );
        assert_eq!(saved_cursor(&json!({}), "SystemModstamp").unwrap(), None);
        assert_eq!(
            saved_cursor(&json!({"cursor": "soon"}), "SystemModstamp").unwrap_err(),
            "\"soon\" is not a datetime"
        );
    }
}
