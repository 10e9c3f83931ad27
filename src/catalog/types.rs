//! The type-mapping table: Salesforce field type → Arrow type and JSON schema.
//!
//! This is the one place types are decided (connector-x style), following DESIGN.md:
//! Salesforce is the source of truth, so the describe's type, precision and scale decide.
//!
//! | Salesforce `type` | Arrow | JSON schema |
//! |---|---|---|
//! | `id`, `reference`, `string`, `textarea`, `picklist`, `multipicklist` (as sent, `;`-separated), `combobox`, `email`, `phone`, `url`, `encryptedstring`, `anyType`, `complexvalue`, `json`, `datacategorygroupreference`, `masterrecord` | Utf8 | string |
//! | `boolean` | Boolean | boolean |
//! | `int` | Int32 | integer |
//! | `long` | Int64 | integer |
//! | `currency`, `percent`, `double` with precision p > 0 (scale s ≤ p ≤ 38) | Decimal128(p, s) | number |
//! | `currency`, `percent`, `double` without a precision | Float64 | number |
//! | `date` | Date32 | string, format date |
//! | `datetime` | Timestamp(µs, "UTC") | string, format date-time |
//! | `time` | Time64(µs) | string, format time |
//! | `address` | Struct{street, city, state, stateCode, postalCode, country, countryCode, latitude, longitude, geocodeAccuracy} | object |
//! | `location` | Struct{latitude, longitude} | object |
//! | `base64` | Binary | string, contentEncoding base64 |
//! | anything else | Utf8, with a warning | string |

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, TimeUnit};
use serde_json::{Value, json};

use super::describe::FieldDescribe;

/// How a Salesforce field type maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SfKind {
    /// Text of any flavour.
    Text,
    /// `boolean`.
    Boolean,
    /// `int`.
    Int,
    /// `long`.
    Long,
    /// `currency`, `percent`, `double`.
    Number,
    /// `date`.
    Date,
    /// `datetime`.
    DateTime,
    /// `time`.
    Time,
    /// `address` compound.
    Address,
    /// `location` compound.
    Location,
    /// `base64` blob.
    Base64,
    /// A type this table does not know: read as text, with a warning.
    Unknown,
}

/// Classifies a describe `type`.
pub fn sf_kind(sf_type: &str) -> SfKind {
    match sf_type {
        "id"
        | "reference"
        | "string"
        | "textarea"
        | "picklist"
        | "multipicklist"
        | "combobox"
        | "email"
        | "phone"
        | "url"
        | "encryptedstring"
        | "anyType"
        | "complexvalue"
        | "json"
        | "datacategorygroupreference"
        | "masterrecord" => SfKind::Text,
        "boolean" => SfKind::Boolean,
        "int" => SfKind::Int,
        "long" => SfKind::Long,
        "currency" | "percent" | "double" => SfKind::Number,
        "date" => SfKind::Date,
        "datetime" => SfKind::DateTime,
        "time" => SfKind::Time,
        "address" => SfKind::Address,
        "location" => SfKind::Location,
        "base64" => SfKind::Base64,
        _ => SfKind::Unknown,
    }
}

/// The time zone of every timestamp sfetl writes (Salesforce stores UTC; DuckDB keeps the name).
pub const UTC: &str = "UTC";

/// Children of an `address` struct, in Salesforce's JSON order.
pub const ADDRESS_PARTS: [&str; 10] = [
    "street",
    "city",
    "state",
    "stateCode",
    "postalCode",
    "country",
    "countryCode",
    "latitude",
    "longitude",
    "geocodeAccuracy",
];

fn compound_fields(kind: SfKind) -> Fields {
    let part = |name: &str| {
        let dt = if name == "latitude" || name == "longitude" {
            DataType::Float64
        } else {
            DataType::Utf8
        };
        Field::new(name, dt, true)
    };
    match kind {
        SfKind::Address => ADDRESS_PARTS.iter().map(|n| part(n)).collect(),
        _ => ["latitude", "longitude"].iter().map(|n| part(n)).collect(),
    }
}

/// The Arrow type of a field.
pub fn arrow_type(field: &FieldDescribe) -> DataType {
    match sf_kind(&field.kind) {
        SfKind::Text | SfKind::Unknown => DataType::Utf8,
        SfKind::Boolean => DataType::Boolean,
        SfKind::Int => DataType::Int32,
        SfKind::Long => DataType::Int64,
        SfKind::Number => decimal_type(field.precision, field.scale).unwrap_or(DataType::Float64),
        SfKind::Date => DataType::Date32,
        SfKind::DateTime => DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from(UTC))),
        SfKind::Time => DataType::Time64(TimeUnit::Microsecond),
        k @ (SfKind::Address | SfKind::Location) => DataType::Struct(compound_fields(k)),
        SfKind::Base64 => DataType::Binary,
    }
}

/// Decimal128(p, s) when Salesforce declares a usable precision and scale.
fn decimal_type(precision: u32, scale: i32) -> Option<DataType> {
    let p = u8::try_from(precision)
        .ok()
        .filter(|p| (1..=38).contains(p))?;
    let s = i8::try_from(scale)
        .ok()
        .filter(|s| *s >= 0 && (*s as u8) <= p)?;
    Some(DataType::Decimal128(p, s))
}

/// The JSON schema of a field, as Airbyte destinations expect it (nullable unions).
pub fn json_schema(field: &FieldDescribe) -> Value {
    match sf_kind(&field.kind) {
        SfKind::Text | SfKind::Unknown => json!({"type": ["null", "string"]}),
        SfKind::Boolean => json!({"type": ["null", "boolean"]}),
        SfKind::Int | SfKind::Long => json!({"type": ["null", "integer"]}),
        SfKind::Number => json!({"type": ["null", "number"]}),
        SfKind::Date => json!({"type": ["null", "string"], "format": "date"}),
        SfKind::DateTime => json!({"type": ["null", "string"], "format": "date-time",
            "airbyte_type": "timestamp_with_timezone"}),
        SfKind::Time => json!({"type": ["null", "string"], "format": "time",
            "airbyte_type": "time_without_timezone"}),
        k @ (SfKind::Address | SfKind::Location) => {
            let props: serde_json::Map<String, Value> = compound_fields(k)
                .iter()
                .map(|f| {
                    let t = if f.data_type() == &DataType::Float64 {
                        "number"
                    } else {
                        "string"
                    };
                    (f.name().clone(), json!({"type": ["null", t]}))
                })
                .collect();
            json!({"type": ["null", "object"], "properties": props})
        }
        SfKind::Base64 => json!({"type": ["null", "string"], "contentEncoding": "base64"}),
    }
}
