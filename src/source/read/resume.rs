//! Continuing a REST read whose query cursor Salesforce dropped.
//!
//! A `nextRecordsUrl` names a server-side cursor, and Salesforce drops cursors: after 15 idle
//! minutes, when the user opens more than 10 (API 55.0 and earlier), or when the session that
//! opened them ends. Following it then answers 400 `INVALID_QUERY_LOCATOR`. The window's query is
//! run again from where the read got to: objects with a cursor are read `ORDER BY cursor, Id`,
//! so the new query starts right after the last (cursor, Id) delivered and no row comes twice;
//! objects without one are read again from the start, skipping the Ids already delivered.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::salesforce::SalesforceError;
use crate::source::soql::{self, Window};
use crate::state::parse_datetime;

/// Whether a failed `nextRecordsUrl` call means the cursor is gone and the query can be run
/// again: an expired or released locator, or a locator of a session that was replaced.
pub(super) fn cursor_lost(e: &SalesforceError) -> bool {
    e.error_code() == Some("INVALID_QUERY_LOCATOR") || e.is_session_invalid()
}

/// Where a REST read of one window has got to.
#[derive(Debug, Default)]
pub(super) struct Resume {
    /// The cursor field, when the object has one.
    cursor: Option<&'static str>,
    /// The greatest (cursor, Id) delivered.
    key: Option<(DateTime<Utc>, Option<String>)>,
    /// Objects without a cursor: the Ids delivered.
    seen: HashSet<String>,
    /// Rows delivered in the window.
    pub(super) rows: u64,
    /// Rows delivered since the query was last run again (`None` before any restart).
    since_restart: Option<u64>,
}

impl Resume {
    /// A fresh read of a window of an object with `cursor`.
    pub(super) fn new(cursor: Option<&'static str>) -> Resume {
        Resume {
            cursor,
            ..Resume::default()
        }
    }

    /// The window and extra filter of the query that continues the read (the window itself and
    /// `extra_where` before any restart).
    pub(super) fn query_bounds(
        &self,
        window: Option<Window>,
        extra_where: Option<&str>,
    ) -> (Option<Window>, Option<String>) {
        let extra = extra_where.map(str::to_string);
        let (Some(c), Some(w), Some((at, id))) = (self.cursor, window, &self.key) else {
            return (window, extra);
        };
        let from = Window {
            lower: Some(*at),
            upper: w.upper,
        };
        match id {
            Some(id) => (
                Some(from),
                Some(soql::and_where(extra_where, &soql::after_key(c, *at, id))),
            ),
            None => (Some(from), extra),
        }
    }

    /// Drops the rows of a page already delivered before a restart (objects without a cursor),
    /// then remembers where the page ends.
    pub(super) fn take_page(&mut self, records: &mut Vec<Value>) {
        let id_of = |r: &Value| r.get("Id").and_then(Value::as_str).map(str::to_string);
        match self.cursor {
            None => records.retain(|r| id_of(r).is_none_or(|id| self.seen.insert(id))),
            Some(c) => {
                if let Some(last) = records.last()
                    && let Some(at) = last.get(c).and_then(Value::as_str).and_then(parse_datetime)
                {
                    self.key = Some((at, id_of(last)));
                }
            }
        }
        let n = records.len() as u64;
        self.rows += n;
        if let Some(s) = &mut self.since_restart {
            *s += n;
        }
    }

    /// Prepares to run the query again after `e`; `Err(e)` when the last restart delivered no
    /// row (running it again would not get further).
    pub(super) fn restart(&mut self, e: SalesforceError) -> Result<String, SalesforceError> {
        if self.since_restart == Some(0) {
            return Err(e);
        }
        self.since_restart = Some(0);
        let from = match (self.cursor, &self.key) {
            (Some(c), Some((at, Some(id)))) => {
                format!(
                    "after the last row read ({c} {}, Id {id})",
                    soql::datetime_literal(*at)
                )
            }
            (Some(c), Some((at, None))) => {
                format!("from {c} {}", soql::datetime_literal(*at))
            }
            (Some(_), None) => "from the start of the window".to_string(),
            (None, _) => format!(
                "from the start, skipping the {} rows already read",
                self.seen.len()
            ),
        };
        Ok(format!(
            "Salesforce dropped the REST query cursor after {} rows ({}); querying again {from}",
            self.rows,
            e.brief()
        ))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    fn locator_error() -> SalesforceError {
        SalesforceError::Api {
            status: 400,
            code: "INVALID_QUERY_LOCATOR".into(),
            message: "invalid query locator".into(),
        }
    }

    #[test]
    fn a_cursor_object_continues_after_its_last_row() {
        let mut r = Resume::new(Some("SystemModstamp"));
        let w = Window {
            lower: None,
            upper: Utc.with_ymd_and_hms(2025, 2, 1, 0, 0, 0).unwrap(),
        };
        assert_eq!(
            r.query_bounds(Some(w), Some("A = 1")).1.as_deref(),
            Some("A = 1")
        );
        let mut page = vec![
            json!({"Id": "001A", "SystemModstamp": "2025-01-15T12:00:00.000+0000"}),
            json!({"Id": "001B", "SystemModstamp": "2025-01-15T12:00:00.000+0000"}),
        ];
        r.take_page(&mut page);
        assert_eq!(page.len(), 2);
        assert!(cursor_lost(&locator_error()));
        let text = r.restart(locator_error()).unwrap();
        assert_eq!(
            text,
            "Salesforce dropped the REST query cursor after 2 rows (INVALID_QUERY_LOCATOR: invalid query locator); querying again after the last row read (SystemModstamp 2025-01-15T12:00:00.000Z, Id 001B)"
        );
        let (w2, extra) = r.query_bounds(Some(w), Some("A = 1"));
        assert_eq!(
            w2.unwrap().lower,
            Some(Utc.with_ymd_and_hms(2025, 1, 15, 12, 0, 0).unwrap())
        );
        assert_eq!(
            extra.as_deref(),
            Some("(A = 1) AND (SystemModstamp > 2025-01-15T12:00:00.000Z OR Id > '001B')")
        );
        // A restart that delivered nothing does not run the query again.
        assert!(r.restart(locator_error()).is_err());
    }

    #[test]
    fn an_object_without_cursor_skips_what_it_read() {
        let mut r = Resume::new(None);
        let mut page = vec![json!({"Id": "a"}), json!({"Id": "b"})];
        r.take_page(&mut page);
        assert!(
            r.restart(locator_error())
                .unwrap()
                .ends_with("querying again from the start, skipping the 2 rows already read")
        );
        let mut again = vec![json!({"Id": "a"}), json!({"Id": "b"}), json!({"Id": "c"})];
        r.take_page(&mut again);
        assert_eq!(again, vec![json!({"Id": "c"})]);
        assert_eq!(r.rows, 3);
        assert!(
            r.restart(locator_error()).is_ok(),
            "the last restart got further"
        );
    }
}
