//! The `--state` file: what the previous run's STATE messages said, in any of the forms
//! orchestrators pass back.
//!
//! Accepted: `[]`; a list of STATE messages' `state` objects (STREAM, GLOBAL or LEGACY), or of
//! whole STATE messages; one such object; or a legacy object keyed by stream name (the form
//! Airbyte's Salesforce source wrote before per-stream state). This module finds the blob for
//! each stream; [`StreamState`] reads and writes what a blob holds.

mod stream;

pub use stream::{
    COLUMN_ENTRY, Cursor, FILTER_ENTRY, FORMULA_ENTRY, FieldsRead, Freshness, ObjectTimes,
    OutputCommit, Parents, Sources, StreamState, TableCommit, datetime_literal, formula_entry,
    formula_of, mapping_entry, parse_datetime,
};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Per-stream state blobs from the previous run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InputState {
    /// Stream name → its state blob.
    pub streams: BTreeMap<String, Value>,
    /// GLOBAL shared state, if the file had one.
    pub shared: Option<Value>,
}

impl InputState {
    /// The saved blob for a stream, if any.
    pub fn stream(&self, name: &str) -> Option<&Value> {
        self.streams.get(name)
    }
}

/// Why a state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Unreadable file.
    #[error("cannot read the state file {path}: {reason}; check the path given to --state")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// OS error.
        reason: String,
    },
    /// Not a state in any accepted form.
    #[error(
        "the state file {path} is not a valid state: {reason}. Pass the `state` objects of the last STATE messages as a JSON list, `[]` for none, or leave out --state to start from start_date"
    )]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Reads a state file.
pub fn load_state_file(path: &Path) -> Result<InputState, StateError> {
    let text = std::fs::read_to_string(path).map_err(|e| StateError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let malformed = |reason: String| StateError::Malformed {
        path: path.to_path_buf(),
        reason,
    };
    if text.trim().is_empty() {
        return Ok(InputState::default());
    }
    let value: Value = serde_json::from_str(&text).map_err(|e| {
        malformed(format!(
            "not JSON (syntax error at line {} column {})",
            e.line(),
            e.column()
        ))
    })?;
    parse_state(value).map_err(malformed)
}

/// Interprets a state value in any accepted form.
pub fn parse_state(value: Value) -> Result<InputState, String> {
    let mut out = InputState::default();
    match value {
        Value::Array(items) => {
            for (i, item) in items.into_iter().enumerate() {
                add_message(&mut out, item).map_err(|e| format!("item {i}: {e}"))?;
            }
        }
        Value::Object(ref map) if map.contains_key("type") => add_message(&mut out, value)?,
        Value::Object(map) => {
            // Legacy: {"Account": {"SystemModstamp": "..."}, ...}
            for (name, blob) in map {
                if !blob.is_object() {
                    return Err(format!(
                        "legacy state for stream {name:?} must be an object such as {{\"SystemModstamp\": \"2024-01-01T00:00:00.000Z\"}}"
                    ));
                }
                out.streams.insert(name, blob);
            }
        }
        Value::Null => {}
        other => {
            return Err(format!(
                "expected a JSON list or object, found {}",
                match other {
                    Value::Bool(_) => "a boolean",
                    Value::Number(_) => "a number",
                    _ => "a string",
                }
            ));
        }
    }
    Ok(out)
}

fn add_message(out: &mut InputState, item: Value) -> Result<(), String> {
    let Value::Object(mut obj) = item else {
        return Err("each entry must be a STATE object".to_string());
    };
    let kind = obj.get("type").and_then(Value::as_str).map(str::to_string);
    // A whole AirbyteMessage {"type":"STATE","state":{...}}: unwrap it.
    if kind.as_deref() == Some("STATE") {
        let inner = obj
            .remove("state")
            .ok_or("a STATE message without its `state` object")?;
        return add_message(out, inner);
    }
    match kind.as_deref() {
        Some("STREAM") => {
            let stream = obj.get("stream").ok_or("a STREAM state without `stream`")?;
            add_stream_state(out, stream)
        }
        Some("GLOBAL") => {
            let global = obj.get("global").ok_or("a GLOBAL state without `global`")?;
            out.shared = global.get("shared_state").cloned().filter(|v| !v.is_null());
            let states = global
                .get("stream_states")
                .and_then(Value::as_array)
                .ok_or("a GLOBAL state without a `stream_states` list")?;
            for s in states {
                add_stream_state(out, s)?;
            }
            Ok(())
        }
        Some("LEGACY") | None => match obj.get("data") {
            Some(data @ Value::Object(_)) => {
                let legacy = parse_state(data.clone())?;
                out.streams.extend(legacy.streams);
                Ok(())
            }
            _ => Err("a LEGACY state without a `data` object".to_string()),
        },
        Some(other) => Err(format!(
            "unknown state type {other:?} (expected STREAM, GLOBAL or LEGACY)"
        )),
    }
}

fn add_stream_state(out: &mut InputState, stream: &Value) -> Result<(), String> {
    let name = stream
        .get("stream_descriptor")
        .and_then(|d| d.get("name"))
        .and_then(Value::as_str)
        .ok_or("a stream state without `stream_descriptor.name`")?;
    let blob = stream.get("stream_state").cloned().unwrap_or(Value::Null);
    if blob.is_null() {
        return Ok(());
    }
    // The STATEs of `read --slice` runs (date-range slices) add up: each covers its window.
    let merged = match out.streams.get(name) {
        Some(prev) if stream::has_slices(prev) || stream::has_slices(&blob) => {
            stream::merge_slices(prev, &blob)
        }
        _ => blob,
    };
    out.streams.insert(name.to_string(), merged);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_list_and_empty_file_mean_no_state() {
        assert_eq!(parse_state(json!([])).unwrap(), InputState::default());
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.json");
        std::fs::write(&f, "  \n").unwrap();
        assert_eq!(load_state_file(&f).unwrap(), InputState::default());
    }

    #[test]
    fn stream_states_from_state_objects_and_whole_messages() {
        let s = parse_state(json!([
            {"type": "STREAM", "stream": {"stream_descriptor": {"name": "Account"},
             "stream_state": {"SystemModstamp": "2024-01-01T00:00:00.000+0000"}}},
            {"type": "STATE", "state": {"type": "STREAM", "stream": {
             "stream_descriptor": {"name": "Lead", "namespace": null},
             "stream_state": {"cursor": "2024-02-01T00:00:00.000Z"}}}}
        ]))
        .unwrap();
        assert_eq!(s.streams.len(), 2);
        assert_eq!(
            s.stream("Account").unwrap(),
            &json!({"SystemModstamp": "2024-01-01T00:00:00.000+0000"})
        );
        assert_eq!(
            s.stream("Lead").unwrap(),
            &json!({"cursor": "2024-02-01T00:00:00.000Z"})
        );
    }

    #[test]
    fn global_and_legacy_forms() {
        let g = parse_state(json!({"type": "GLOBAL", "global": {"shared_state": {"v": 1},
            "stream_states": [{"stream_descriptor": {"name": "Contact"}, "stream_state": {"c": 2}}]}}))
        .unwrap();
        assert_eq!(g.shared, Some(json!({"v": 1})));
        assert_eq!(g.stream("Contact").unwrap(), &json!({"c": 2}));

        let legacy =
            parse_state(json!({"Account": {"SystemModstamp": "2022-11-01T00:00:00.000+0000"}}))
                .unwrap();
        assert_eq!(
            legacy.stream("Account").unwrap()["SystemModstamp"],
            "2022-11-01T00:00:00.000+0000"
        );

        let legacy_msg = parse_state(
            json!([{"type": "LEGACY", "data": {"Opportunity": {"SystemModstamp": "x"}}}]),
        )
        .unwrap();
        assert_eq!(
            legacy_msg.stream("Opportunity").unwrap(),
            &json!({"SystemModstamp": "x"})
        );
    }

    #[test]
    fn airbyte_salesforce_slices_state_is_kept_as_is() {
        let blob = json!({"state_type": "date-range", "slices": [{"start": "2024-01-01T00:00:00.000Z", "end": "2024-01-31T00:00:00.000Z"}]});
        let s = parse_state(json!([{"type": "STREAM", "stream": {"stream_descriptor": {"name": "Account"}, "stream_state": blob.clone()}}])).unwrap();
        assert_eq!(s.stream("Account").unwrap(), &blob);
    }

    #[test]
    fn states_of_slices_add_up_to_the_cursor_every_slice_reached() {
        let stream = |blob: Value| json!({"type": "STREAM", "stream": {"stream_descriptor": {"name": "Account"}, "stream_state": blob}});
        let slice = |a: &str, b: &str| {
            stream(
                json!({"cursor_field": "SystemModstamp", "state_type": "date-range",
                          "slices": [{"start": a, "end": b}]}),
            )
        };
        let s = parse_state(json!([
            stream(json!({"cursor_field": "SystemModstamp", "cursor": "2024-03-01T00:00:00.000Z"})),
            slice("2024-04-01T00:00:00.000Z", "2024-05-01T00:00:00.000Z"),
            slice("2024-02-28T23:50:00.000Z", "2024-04-01T00:00:00.000Z"),
        ]))
        .unwrap();
        let parsed = StreamState::parse(s.stream("Account").unwrap(), "SystemModstamp").unwrap();
        assert_eq!(
            parsed.cursor.unwrap().cursor,
            parse_datetime("2024-05-01T00:00:00Z").unwrap(),
            "the saved cursor and both slices are contiguous"
        );
        // A slice missing in the middle: the cursor stops at the gap.
        let gap = parse_state(json!([
            slice("1970-01-01T00:00:00.000Z", "2024-02-01T00:00:00.000Z"),
            slice("2024-03-01T00:00:00.000Z", "2024-04-01T00:00:00.000Z"),
        ]))
        .unwrap();
        let parsed = StreamState::parse(gap.stream("Account").unwrap(), "SystemModstamp").unwrap();
        assert_eq!(
            parsed.cursor.unwrap().cursor,
            parse_datetime("2024-02-01T00:00:00Z").unwrap()
        );
        // Mapped streams keep one merged range per source.
        let mapped = |obj: &str, a: &str, b: &str| {
            stream(
                json!({"sources": {obj: {"cursor_field": "SystemModstamp", "slices": [{"start": a, "end": b}]}}}),
            )
        };
        let m = parse_state(json!([
            mapped(
                "Lead",
                "1970-01-01T00:00:00.000Z",
                "2024-01-01T00:00:00.000Z"
            ),
            mapped(
                "Contact",
                "1970-01-01T00:00:00.000Z",
                "2024-02-01T00:00:00.000Z"
            ),
            mapped(
                "Lead",
                "2024-01-01T00:00:00.000Z",
                "2024-03-01T00:00:00.000Z"
            ),
        ]))
        .unwrap();
        let parsed = StreamState::parse(m.stream("Account").unwrap(), "SystemModstamp").unwrap();
        assert_eq!(
            parsed.sources.get("Lead").unwrap().cursor,
            parse_datetime("2024-03-01T00:00:00Z").unwrap()
        );
        assert_eq!(
            parsed.sources.get("Contact").unwrap().cursor,
            parse_datetime("2024-02-01T00:00:00Z").unwrap()
        );
    }

    #[test]
    fn malformed_states_name_the_problem_and_the_file() {
        assert_eq!(
            parse_state(json!(42)).unwrap_err(),
            "expected a JSON list or object, found a number"
        );
        assert_eq!(
            parse_state(json!([{"type": "STREAM", "stream": {"stream_state": {}}}])).unwrap_err(),
            "item 0: a stream state without `stream_descriptor.name`"
        );
        assert_eq!(
            parse_state(json!([{"type": "BOGUS"}])).unwrap_err(),
            "item 0: unknown state type \"BOGUS\" (expected STREAM, GLOBAL or LEGACY)"
        );
        assert!(
            parse_state(json!({"Account": "2024"}))
                .unwrap_err()
                .starts_with("legacy state for stream \"Account\" must be an object")
        );

        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("state.json");
        std::fs::write(&f, "[{\"type\": ").unwrap();
        let msg = load_state_file(&f).unwrap_err().to_string();
        assert!(msg.contains(&f.display().to_string()), "{msg}");
        assert!(
            msg.contains("not JSON (syntax error at line 1 column 10)"),
            "{msg}"
        );
    }
}
