//! Slices: independent pieces of a read that an orchestrator fans out over workers.
//!
//! `sfetl plan` prints one [`Slice`] per JSON line: a stream, the Salesforce object read for it
//! (the stream itself, or one source of a mapped stream), a cursor window `[lower, upper)`, the
//! rows the count query estimated, the API, the slice's place among its stream's slices and a
//! stable id. `sfetl read --slice FILE` reads exactly that window and commits it on its own
//! (Parquet: its own sync folder, found again by id so a re-run does nothing), then prints one
//! STATE in Airbyte's date-range form, `{"cursor_field", "slices": [{"start", "end"}]}`: the
//! STATEs of every slice of a plan, passed together as `--state` to the next plan, merge into
//! the cursor up to which every slice completed.
//!
//! A Delta writer can commit a slice as one transaction: the id, stream, window and sequence
//! are everything it needs to make a replay a no-op.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::decode::Api;
use crate::source::soql::Window;
use crate::state::{datetime_literal, parse_datetime};

/// The start of a slice read from the beginning, in its STATE's `slices` (Airbyte's date-range
/// form needs a start).
pub const EPOCH: &str = "1970-01-01T00:00:00.000Z";

/// One independent piece of a read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slice {
    /// Stable id: a digest of everything below, so the same slice always has the same id.
    pub slice_id: String,
    /// The configured stream.
    pub stream: String,
    /// The Salesforce object read (the stream, or a source of a mapped stream).
    pub object: String,
    /// The cursor the window is of (`None`: an object without one, read whole).
    pub cursor_field: Option<String>,
    /// Inclusive lower bound (`None`: from the beginning).
    pub lower: Option<String>,
    /// Exclusive upper bound (`None` only without a cursor).
    pub upper: Option<String>,
    /// Rows the count query found in the window (`None` when it could not count).
    pub estimated_rows: Option<u64>,
    /// `bulk` or `rest`.
    pub api: String,
    /// Place among the stream's slices, from 0, in cursor order.
    pub sequence: u32,
    /// How many slices the stream has in this plan.
    pub of: u32,
    /// Where the slice asks for the deletions the cursor cannot see (the `deleted` endpoint's,
    /// rows that left a mapping's filter), when before `lower`: the first slice of an object
    /// whose saved STATE was checkpointed inside a window, before that window's deletions
    /// (its `deletions_to`). Absent otherwise: from `lower`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletions_from: Option<String>,
}

impl Slice {
    /// A slice of `object` for `stream` over `window`.
    pub fn new(
        stream: &str,
        object: &str,
        cursor_field: Option<&str>,
        window: Option<Window>,
        estimated_rows: Option<u64>,
        api: Api,
        (sequence, of): (u32, u32),
    ) -> Slice {
        let lower = window.and_then(|w| w.lower).map(datetime_literal);
        let upper = window.map(|w| datetime_literal(w.upper));
        let mut s = Slice {
            slice_id: String::new(),
            stream: stream.to_string(),
            object: object.to_string(),
            cursor_field: cursor_field.map(str::to_string),
            lower,
            upper,
            estimated_rows,
            api: match api {
                Api::Bulk => "bulk",
                Api::Rest => "rest",
            }
            .to_string(),
            sequence,
            of,
            deletions_from: None,
        };
        s.slice_id = s.digest();
        s
    }

    /// The slice asking for deletions from `at`, before its window ([`Slice::deletions_from`]).
    pub fn with_deletions_from(mut self, at: DateTime<Utc>) -> Slice {
        self.deletions_from = Some(datetime_literal(at));
        self.slice_id = self.digest();
        self
    }

    /// `<stream>-<sequence>-<12 hex digits of SHA-256 over stream, object, cursor, window>`
    /// (and where it asks for deletions, when before its window: slices without it keep the
    /// ids they always had).
    fn digest(&self) -> String {
        let mut text = format!(
            "{}\n{}\n{}\n{}\n{}\n{}",
            self.stream,
            self.object,
            self.cursor_field.as_deref().unwrap_or(""),
            self.lower.as_deref().unwrap_or(""),
            self.upper.as_deref().unwrap_or(""),
            self.sequence
        );
        if let Some(from) = &self.deletions_from {
            text.push_str(&format!("\ndeletions_from {from}"));
        }
        let hash = Sha256::digest(text.as_bytes());
        let hex: String = hash[..6].iter().map(|b| format!("{b:02x}")).collect();
        format!("{}-{:04}-{hex}", self.stream, self.sequence)
    }

    /// Reads a slice file: one JSON object (a line of `sfetl plan`), checked.
    pub fn from_text(text: &str) -> Result<Slice, String> {
        let text = text.trim_start_matches('\u{feff}').trim();
        let s: Slice = serde_json::from_str(text).map_err(|e| {
            format!("it is not one line of `sfetl plan` ({e}); pass a file holding one of the JSON lines `sfetl plan` printed")
        })?;
        s.window()?;
        s.deletions_from()?;
        if s.digest() != s.slice_id {
            return Err(format!(
                "its slice_id {:?} does not match its stream, object and window (was it edited?); pass the line `sfetl plan` printed as it is",
                s.slice_id
            ));
        }
        Ok(s)
    }

    /// The cursor window (`None`: read whole).
    pub fn window(&self) -> Result<Option<Window>, String> {
        let parse = |what: &str, v: &Option<String>| -> Result<Option<DateTime<Utc>>, String> {
            v.as_deref()
                .map(|t| parse_datetime(t).ok_or_else(|| format!("{what} {t:?} is not a datetime")))
                .transpose()
        };
        let lower = parse("lower", &self.lower)?;
        match (parse("upper", &self.upper)?, &self.cursor_field) {
            (Some(upper), Some(_)) => Ok(Some(Window { lower, upper })),
            (None, None) => Ok(None),
            (Some(_), None) => Err("it has a window but no cursor_field".into()),
            (None, Some(_)) => Err("it has a cursor_field but no upper bound".into()),
        }
    }

    /// Where the slice asks for deletions, when before its window ([`Slice::deletions_from`]).
    pub fn deletions_from(&self) -> Result<Option<DateTime<Utc>>, String> {
        self.deletions_from
            .as_deref()
            .map(|t| {
                parse_datetime(t).ok_or_else(|| format!("deletions_from {t:?} is not a datetime"))
            })
            .transpose()
    }

    /// The STATE blob a committed slice reports: its window in Airbyte's date-range form
    /// (mapped streams: under its object in `sources`); `{}` for a slice without a cursor.
    pub fn state(&self, mapped: bool) -> Value {
        let Some(cursor) = &self.cursor_field else {
            return json!({});
        };
        let blob = json!({
            "cursor_field": cursor,
            "state_type": "date-range",
            "slices": [{
                "start": self.lower.as_deref().unwrap_or(EPOCH),
                "end": self.upper,
            }],
        });
        if mapped {
            json!({"sources": {self.object.clone(): blob}})
        } else {
            blob
        }
    }
}

/// A slice to read, with the file it came from (for messages).
#[derive(Debug, Clone)]
pub struct SliceRun {
    /// The slice.
    pub slice: Slice,
    /// The slice file as given to `--slice`.
    pub file: String,
}

impl SliceRun {
    /// An error about this slice.
    pub fn error(&self, reason: String) -> BadSlice {
        BadSlice {
            slice_id: self.slice.slice_id.clone(),
            file: self.file.clone(),
            reason,
        }
    }
}

/// A slice that does not fit the catalog or the stream's plan; the message names both sides.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the slice {slice_id} in {file} {reason}")]
pub struct BadSlice {
    /// The slice's id.
    pub slice_id: String,
    /// The slice file.
    pub file: String,
    /// What does not match, and what to do.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn window() -> Window {
        Window {
            lower: Some(Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()),
            upper: Utc.with_ymd_and_hms(2024, 2, 1, 0, 0, 0).unwrap(),
        }
    }

    /// A slice of the Account stream over [`window`].
    fn account(rows: Option<u64>, api: Api, place: (u32, u32)) -> Slice {
        let cursor = Some("SystemModstamp");
        Slice::new(
            "Account",
            "Account",
            cursor,
            Some(window()),
            rows,
            api,
            place,
        )
    }

    #[test]
    fn a_slice_round_trips_and_its_id_is_stable() {
        let s = account(Some(12), Api::Bulk, (2, 5));
        assert!(s.slice_id.starts_with("Account-0002-"), "{}", s.slice_id);
        assert_eq!(s.slice_id.len(), "Account-0002-".len() + 12);
        let line = serde_json::to_string(&s).unwrap();
        assert_eq!(Slice::from_text(&line).unwrap(), s);
        assert_eq!(s.window().unwrap(), Some(window()));
        let again = account(Some(99), Api::Rest, (2, 5));
        assert_eq!(
            again.slice_id, s.slice_id,
            "estimates and API do not change the id"
        );
        assert_eq!(
            s.state(false),
            json!({"cursor_field": "SystemModstamp", "state_type": "date-range",
                   "slices": [{"start": "2024-01-01T00:00:00.000Z", "end": "2024-02-01T00:00:00.000Z"}]})
        );
    }

    #[test]
    fn a_first_slice_asking_for_earlier_deletions_says_so_and_others_keep_their_ids() {
        let s = account(Some(12), Api::Bulk, (0, 5));
        // Slices without it: the id and the line of plans before the field.
        assert_eq!(s.deletions_from().unwrap(), None);
        let line = serde_json::to_value(&s).unwrap();
        assert!(line.get("deletions_from").is_none(), "{line}");
        let from = Utc.with_ymd_and_hms(2023, 12, 20, 0, 0, 0).unwrap();
        let early = s.clone().with_deletions_from(from);
        assert_ne!(early.slice_id, s.slice_id);
        assert_eq!(early.deletions_from().unwrap(), Some(from));
        let line = serde_json::to_string(&early).unwrap();
        assert!(
            line.contains(r#""deletions_from":"2023-12-20T00:00:00.000Z""#),
            "{line}"
        );
        assert_eq!(Slice::from_text(&line).unwrap(), early);
        // Its STATE is its window's, as any slice's.
        assert_eq!(early.state(false), s.state(false));
        let mut v = serde_json::to_value(&early).unwrap();
        v["deletions_from"] = json!("2023-12-01T00:00:00.000Z");
        let e = Slice::from_text(&v.to_string()).unwrap_err();
        assert!(e.contains("does not match"), "{e}");
        v["deletions_from"] = json!("soon");
        let e = Slice::from_text(&v.to_string()).unwrap_err();
        assert_eq!(e, "deletions_from \"soon\" is not a datetime");
    }

    #[test]
    fn edited_or_broken_slice_files_are_refused() {
        let s = Slice::new(
            "Lead",
            "Lead",
            Some("SystemModstamp"),
            Some(window()),
            None,
            Api::Bulk,
            (0, 1),
        );
        let mut v = serde_json::to_value(&s).unwrap();
        v["lower"] = json!("2023-01-01T00:00:00.000Z");
        let e = Slice::from_text(&v.to_string()).unwrap_err();
        assert!(
            e.contains("does not match its stream, object and window"),
            "{e}"
        );
        let e = Slice::from_text("{\"stream\": 1}").unwrap_err();
        assert!(e.starts_with("it is not one line of `sfetl plan`"), "{e}");
        let whole = Slice::new("User", "User", None, None, None, Api::Bulk, (0, 1));
        assert_eq!(whole.window().unwrap(), None);
        assert_eq!(whole.state(false), json!({}));
    }
}
