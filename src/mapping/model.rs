//! The mapping file as written: parsed from YAML or JSON (or the config's inline object),
//! checked against `spec/mapping.schema.json`, and kept in the user's column order.

use std::path::Path;
use std::sync::OnceLock;

use serde_json::Value;

use super::MappingError;
use crate::config::MappingSource;

const SCHEMA_JSON: &str = include_str!("../../spec/mapping.schema.json");

/// The parsed `spec/mapping.schema.json`, so `spec`-like tooling and tests can show it.
pub fn mapping_schema() -> &'static Value {
    static S: OnceLock<Value> = OnceLock::new();
    S.get_or_init(|| serde_json::from_str(SCHEMA_JSON).expect("mapping.schema.json is JSON"))
}

fn validator() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        jsonschema::draft7::new(mapping_schema()).expect("mapping.schema.json is a draft-07 schema")
    })
}

/// A whole mapping: the streams it declares, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    /// Declared streams.
    pub streams: Vec<StreamMapping>,
}

/// One declared output stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamMapping {
    /// Output stream name.
    pub name: String,
    /// Declared primary key columns, if any (see `compile` for the default).
    pub primary_key: Option<Vec<String>>,
    /// Source objects feeding the stream.
    pub from: Vec<SourceMapping>,
}

/// One `from` entry: an object and how its fields become the stream's columns.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceMapping {
    /// Object API name as written.
    pub object: String,
    /// SOQL condition pushed down verbatim.
    pub soql_where: Option<String>,
    /// (output column, SQL expression), in the order written.
    pub columns: Vec<(String, String)>,
}

impl Mapping {
    /// Loads the config's `mapping`: a file (YAML, or JSON when it ends in `.json`) or an
    /// inline object.
    pub fn load(source: &MappingSource) -> Result<Mapping, MappingError> {
        match source {
            MappingSource::File(path) => Mapping::from_file(path),
            MappingSource::Inline(value) => Mapping::from_value(value, "the inline mapping"),
        }
    }

    /// Reads and parses a mapping file.
    pub fn from_file(path: &Path) -> Result<Mapping, MappingError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| MappingError::Read {
            origin: origin.clone(),
            reason: e.to_string(),
        })?;
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        {
            Mapping::from_json_str(&text, &origin)
        } else {
            Mapping::from_yaml_str(&text, &origin)
        }
    }

    /// Parses YAML text (JSON is YAML too); `origin` names it in messages.
    pub fn from_yaml_str(text: &str, origin: &str) -> Result<Mapping, MappingError> {
        let syntax = |reason: String| MappingError::Syntax {
            origin: origin.to_string(),
            reason,
        };
        // Through YAML's own value first: it refuses a key given twice (two columns of one
        // name), which a JSON object would keep only the last of, silently.
        let yaml: serde_norway::Value =
            serde_norway::from_str(text).map_err(|e| syntax(e.to_string()))?;
        let value: Value = serde_json::to_value(yaml).map_err(|e| syntax(e.to_string()))?;
        Mapping::from_value(&value, origin)
    }

    /// Parses JSON text; `origin` names it in messages.
    pub fn from_json_str(text: &str, origin: &str) -> Result<Mapping, MappingError> {
        let value: Value = serde_json::from_str(text).map_err(|e| MappingError::Syntax {
            origin: origin.to_string(),
            reason: e.to_string(),
        })?;
        Mapping::from_value(&value, origin)
    }

    /// Checks a JSON value against the mapping schema and reads it.
    pub fn from_value(value: &Value, origin: &str) -> Result<Mapping, MappingError> {
        let problems: Vec<String> = validator()
            .iter_errors(value)
            .map(|e| {
                let at = pointer_to_path(e.instance_path().as_str());
                format!("{at}: {e}")
            })
            .collect();
        if !problems.is_empty() {
            return Err(MappingError::Invalid {
                origin: origin.to_string(),
                problems,
            });
        }
        let problems = filter_problems(value);
        if !problems.is_empty() {
            return Err(MappingError::Filter {
                origin: origin.to_string(),
                problems,
            });
        }
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let streams = value["streams"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| StreamMapping {
                name: text(&s["name"]),
                primary_key: s
                    .get("primary_key")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().map(text).collect()),
                from: s["from"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|f| SourceMapping {
                        object: text(&f["object"]),
                        soql_where: f.get("soql_where").map(text),
                        columns: f["columns"]
                            .as_object()
                            .into_iter()
                            .flatten()
                            .map(|(k, v)| (k.clone(), expression_text(v)))
                            .collect(),
                    })
                    .collect(),
            })
            .collect();
        Ok(Mapping { streams })
    }

    /// Object names the mapping reads from, without duplicates, in file order. Parent objects
    /// reached through relationships are known only from these objects' describes: see
    /// [`super::describes_needed`].
    pub fn objects(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for f in self.streams.iter().flat_map(|s| &s.from) {
            if !out.iter().any(|o| o.eq_ignore_ascii_case(&f.object)) {
                out.push(f.object.clone());
            }
        }
        out
    }
}

/// Every `soql_where` that is not one balanced condition (see [`super::filter`]), named by
/// where it is, its stream and object.
fn filter_problems(value: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, s) in value["streams"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        for (j, f) in s["from"].as_array().into_iter().flatten().enumerate() {
            let Some(filter) = f.get("soql_where").and_then(Value::as_str) else {
                continue;
            };
            if let Err(e) = super::filter::check_filter(filter) {
                problems.push(format!(
                    "streams[{i}].from[{j}].soql_where (stream {:?}, object {}): {e}",
                    s["name"].as_str().unwrap_or_default(),
                    f["object"].as_str().unwrap_or_default()
                ));
            }
        }
    }
    problems
}

/// A column value: a string is SQL; a number or boolean is that literal.
fn expression_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `/streams/0/from/1/columns` → `streams[0].from[1].columns`.
fn pointer_to_path(pointer: &str) -> String {
    let mut out = String::new();
    for part in pointer.split('/').filter(|p| !p.is_empty()) {
        if part.chars().all(|c| c.is_ascii_digit()) {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(part);
        }
    }
    if out.is_empty() {
        "mapping".to_string()
    } else {
        out
    }
}
