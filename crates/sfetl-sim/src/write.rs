//! Writing records: converting JSON / CSV input to stored values with Salesforce's validation
//! errors (required fields, lengths, types, ranges, references, restricted picklists), shared by
//! the REST sObject endpoints, sObject Collections and Bulk ingest.

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::Value;

use super::describe::{FType, FieldMeta};
use super::store::{PURGED, Store, Val, parse_date, parse_stored_datetime, parse_time};

/// One per-record error, as Salesforce reports it (`statusCode`, `message`, `fields`).
#[derive(Debug, Clone)]
pub struct RecError {
    /// statusCode / errorCode.
    pub code: String,
    /// Human message.
    pub message: String,
    /// Fields involved.
    pub fields: Vec<String>,
}

impl RecError {
    fn new(code: &str, message: String, fields: &[&str]) -> RecError {
        RecError {
            code: code.into(),
            message,
            fields: fields.iter().map(|s| s.to_string()).collect(),
        }
    }
    /// The `errors[]` entry of sObject Collections results.
    pub fn to_json(&self) -> Value {
        serde_json::json!({ "statusCode": self.code, "message": self.message, "fields": self.fields })
    }
}

/// An input value: JSON (REST) or CSV text (Bulk ingest, where `#N/A` means null).
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// A JSON value.
    Json(&'a Value),
    /// A CSV cell (non-empty; empty cells are skipped by the caller).
    Text(&'a str),
}

/// Converts one input value for a field, with Salesforce's error for a bad value.
pub fn convert(store: &Store, f: &FieldMeta, input: Input<'_>) -> Result<Val<'static>, RecError> {
    let text: Option<String> = match input {
        Input::Json(Value::Null) => None,
        Input::Text("#N/A") => None,
        // Salesforce keeps no empty text: `""` clears a text field, and a required one refuses it.
        Input::Json(Value::String(s)) if s.is_empty() && f.ftype == FType::Text => None,
        Input::Json(Value::String(s)) => Some(s.clone()),
        Input::Json(Value::Number(n)) => Some(n.to_string()),
        Input::Json(Value::Bool(b)) => Some(b.to_string()),
        Input::Json(other) => {
            return Err(RecError::new(
                "JSON_PARSER_ERROR",
                format!(
                    "Cannot deserialize instance of {} from {} value",
                    f.sf_type,
                    if other.is_array() {
                        "START_ARRAY"
                    } else {
                        "START_OBJECT"
                    }
                ),
                &[],
            ));
        }
        Input::Text(s) => Some(s.to_string()),
    };
    let Some(s) = text else {
        if !f.nillable && f.ftype != FType::Boolean {
            return Err(RecError::new(
                "REQUIRED_FIELD_MISSING",
                format!("Required fields are missing: [{}]", f.name),
                &[&f.name],
            ));
        }
        return Ok(if f.ftype == FType::Boolean {
            Val::Bool(false)
        } else {
            Val::Null
        });
    };
    let bad_type = || {
        RecError::new(
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
            format!("{}: value not of required type: {s}", f.label),
            &[&f.name],
        )
    };
    Ok(match f.ftype {
        FType::Text | FType::Base64 => {
            if f.ftype == FType::Text && f.length > 0 && s.chars().count() > f.length {
                return Err(RecError::new(
                    "STRING_TOO_LONG",
                    format!(
                        "{}: data value too large: {} (max length={})",
                        f.label,
                        s.chars().take(40).collect::<String>(),
                        f.length
                    ),
                    &[&f.name],
                ));
            }
            if !f.restricted_values.is_empty() && !s.is_empty() && !f.restricted_values.contains(&s)
            {
                return Err(RecError::new(
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    format!("{}: bad value for restricted picklist field: {s}", f.label),
                    &[&f.name],
                ));
            }
            if f.sf_type == "email" && !s.is_empty() && !s.contains('@') {
                return Err(RecError::new(
                    "INVALID_EMAIL_ADDRESS",
                    format!("{}: invalid email address: {s}", f.label),
                    &[&f.name],
                ));
            }
            Val::Str(Cow::Owned(s))
        }
        FType::Boolean => match s.to_ascii_lowercase().as_str() {
            "true" | "1" => Val::Bool(true),
            "false" | "0" => Val::Bool(false),
            _ => return Err(bad_type()),
        },
        FType::Int | FType::Long | FType::Double => {
            let n: f64 = s.trim().parse().map_err(|_| bad_type())?;
            if !n.is_finite() {
                return Err(bad_type());
            }
            let int_digits = if f.ftype == FType::Double {
                f.precision.saturating_sub(f.scale)
            } else {
                18
            };
            if n.abs() >= 10f64.powi(int_digits.min(18) as i32) {
                return Err(RecError::new(
                    "NUMBER_OUTSIDE_VALID_RANGE",
                    format!(
                        "{}: value outside of valid range on numeric field: {s}",
                        f.label
                    ),
                    &[&f.name],
                ));
            }
            match f.ftype {
                FType::Double => {
                    let k = 10f64.powi(f.scale.min(15) as i32);
                    Val::Num((n * k).round() / k)
                }
                _ if n.fract() != 0.0 => return Err(bad_type()),
                FType::Int if n.abs() > i32::MAX as f64 => return Err(bad_type()),
                _ => Val::Int(n as i64),
            }
        }
        FType::Date => Val::Date(parse_date(s.get(..10).unwrap_or(&s)).ok_or_else(bad_type)?),
        FType::DateTime => Val::DateTime(parse_stored_datetime(&s).ok_or_else(bad_type)?),
        FType::Time => Val::Time(parse_time(&s).ok_or_else(bad_type)?),
        FType::Reference | FType::Id => {
            let Some(p) = store.resolve(&s) else {
                return Err(if super::store::parse_id(&s).is_none() {
                    RecError::new(
                        "MALFORMED_ID",
                        format!("{}: id value of incorrect type: {s}", f.label),
                        &[&f.name],
                    )
                } else {
                    RecError::new(
                        "INVALID_CROSS_REFERENCE_KEY",
                        "invalid cross reference id".to_string(),
                        &[&f.name],
                    )
                });
            };
            let target = &store.catalog.objects[super::store::unpack(p).0].name;
            if f.ftype == FType::Reference && !f.reference_to.iter().any(|t| t == target) {
                return Err(RecError::new(
                    "FIELD_INTEGRITY_EXCEPTION",
                    format!("{}: id value of incorrect type: {s}", f.label),
                    &[&f.name],
                ));
            }
            Val::Ref(p)
        }
        FType::Address | FType::Location => return Err(not_writable(f)),
    })
}

fn not_writable(f: &FieldMeta) -> RecError {
    RecError::new(
        "INVALID_FIELD_FOR_INSERT_UPDATE",
        format!(
            "Unable to create/update fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
            f.name
        ),
        &[&f.name],
    )
}

/// Validates a set of (field name, input) pairs for an insert (`row == None`) or an update.
/// Returns the field indexes and converted values to apply.
pub fn validate<'a>(
    store: &Store,
    obj: usize,
    row: Option<usize>,
    inputs: impl Iterator<Item = (&'a str, Input<'a>)>,
    skip_id: bool,
) -> Result<Vec<(usize, Val<'static>)>, RecError> {
    let meta = &store.catalog.objects[obj];
    let mut out = Vec::new();
    for (name, input) in inputs {
        if name == "attributes" || skip_id && name.eq_ignore_ascii_case("id") {
            continue;
        }
        let Some(i) = meta.field(name) else {
            return Err(RecError::new(
                "INVALID_FIELD",
                format!("No such column '{name}' on sobject of type {}", meta.name),
                &[],
            ));
        };
        let f = &meta.fields[i];
        let writable = if row.is_none() {
            f.createable
        } else {
            f.updateable
        };
        if !writable {
            return Err(not_writable(f));
        }
        out.push((i, convert(store, f, input)?));
    }
    if row.is_none() {
        let missing: Vec<&str> = meta
            .fields
            .iter()
            .enumerate()
            .filter(|(i, f)| {
                !f.nillable
                    && f.access == crate::describe::Access::Visible
                    && f.createable
                    && !f.defaulted
                    && f.ftype != FType::Boolean
                    && !out.iter().any(|(j, _)| j == i)
            })
            .map(|(_, f)| f.name.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(RecError::new(
                "REQUIRED_FIELD_MISSING",
                format!("Required fields are missing: [{}]", missing.join(", ")),
                &missing,
            ));
        }
    }
    Ok(out)
}

/// Applies validated values: inserts a row (returning it) or updates one, stamping the audit
/// fields at `now` as a user change.
pub fn apply(
    store: &mut Store,
    obj: usize,
    row: Option<usize>,
    vals: &[(usize, Val<'static>)],
    now: i64,
    user: u64,
) -> usize {
    let t = &mut store.tables[obj];
    let meta = &store.catalog.objects[obj];
    let row = match row {
        Some(r) => r,
        None => {
            let mut init: Vec<Val<'static>> = meta
                .fields
                .iter()
                .map(|f| match (f.ftype, f.name.as_str()) {
                    (_, "CreatedDate") => Val::DateTime(now),
                    (FType::Reference, "CreatedById" | "OwnerId") => Val::Ref(user),
                    (FType::Boolean, _) => Val::Bool(false),
                    _ => Val::Null,
                })
                .collect();
            for (i, v) in vals {
                init[*i] = v.clone();
            }
            t.push_row(&init)
        }
    };
    for (i, v) in vals {
        t.set(row, *i, v);
    }
    if let Some(i) = meta.field("LastModifiedById") {
        t.set(row, i, &Val::Ref(user));
    }
    t.modify(row, now);
    row
}

/// Rows of live records by external id value (case-insensitive, as Salesforce matches text
/// external ids), built in one pass over the table for just the keys a request carries.
#[derive(Debug, Default)]
pub struct ExtIndex {
    map: HashMap<String, Vec<usize>>,
}

impl ExtIndex {
    /// Indexes the live rows of `obj` whose `field` value is one of `keys`.
    pub fn build<'k>(
        store: &Store,
        obj: usize,
        field: usize,
        keys: impl Iterator<Item = &'k str>,
    ) -> ExtIndex {
        let mut map: HashMap<String, Vec<usize>> =
            keys.map(|k| (k.to_lowercase(), Vec::new())).collect();
        let t = &store.tables[obj];
        if !map.is_empty() {
            for r in (0..t.len()).filter(|&r| t.state[r] == super::store::LIVE) {
                let hit = match t.get(r, field) {
                    Val::Str(s) => map.get_mut(&s.to_lowercase()),
                    Val::Ref(p) => map.get_mut(&store.id_of(p).to_lowercase()),
                    _ => None,
                };
                if let Some(rows) = hit {
                    rows.push(r);
                }
            }
        }
        ExtIndex { map }
    }
    /// Rows holding this key.
    pub fn get(&self, key: &str) -> &[usize] {
        self.map.get(&key.to_lowercase()).map_or(&[], Vec::as_slice)
    }
    /// Records a row just inserted with this key.
    pub fn add(&mut self, key: &str, row: usize) {
        self.map.entry(key.to_lowercase()).or_default().push(row);
    }
}

/// Whether a row exists and is not purged.
pub fn exists(store: &Store, obj: usize, row: usize) -> bool {
    row < store.tables[obj].len() && store.tables[obj].state[row] != PURGED
}

/// Records Salesforce saves together: DML works in chunks of 200 records (an sObject
/// Collections call is one; a Bulk ingest job is cut into them).
pub const DML_CHUNK: usize = 200;

/// For each record of an upsert, whether its external id value (non-empty) is given to another
/// record of the same [`DML_CHUNK`] too: Salesforce refuses all of them with `DUPLICATE_VALUE`
/// ("Duplicate external id specified") instead of creating the record twice or updating it
/// twice in one save.
pub fn keys_twice_per_chunk(keys: &[String]) -> Vec<bool> {
    let mut twice = vec![false; keys.len()];
    for (c, chunk) in keys.chunks(DML_CHUNK).enumerate() {
        let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for k in chunk.iter().filter(|k| !k.is_empty()) {
            *seen.entry(k.as_str()).or_default() += 1;
        }
        for (i, k) in chunk.iter().enumerate() {
            twice[c * DML_CHUNK + i] = seen.get(k.as_str()).is_some_and(|&n| n > 1);
        }
    }
    twice
}
