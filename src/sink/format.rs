//! Values as Salesforce expects them: dates `2024-01-31`, datetimes `2024-01-31T12:00:00.000Z`,
//! plain decimals, `true`/`false`; text in Bulk CSV (nulls as `#N/A`) and typed JSON values in
//! sObject Collections (nulls as `null`), so "clear the field" works in both.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit};
use serde_json::Value;

/// Whether values of Arrow type `t` can be written to a field of Salesforce type `kind`
/// (text is always accepted: Salesforce parses it and reports bad values per row).
pub fn compatible(t: &DataType, kind: &str) -> bool {
    use DataType::*;
    let text = matches!(t, Utf8 | LargeUtf8 | Utf8View | Null | Dictionary(_, _));
    let number = t.is_numeric();
    let temporal = matches!(t, Date32 | Date64 | Timestamp(_, _));
    match kind {
        "boolean" => text || matches!(t, Boolean),
        "int" | "long" | "double" | "currency" | "percent" => text || number,
        "date" | "datetime" => text || temporal,
        "time" => text || matches!(t, Time32(_) | Time64(_)),
        "address" | "location" | "base64" => text,
        _ => text || number || temporal || matches!(t, Boolean | Time32(_) | Time64(_)),
    }
}

/// The column's values as Salesforce text for a field of type `kind`; nulls stay null.
pub fn format_column(array: &ArrayRef, kind: &str) -> Result<StringArray, String> {
    let utf8 = |a: &ArrayRef| -> Result<StringArray, String> {
        let c = cast(a, &DataType::Utf8).map_err(|e| e.to_string())?;
        Ok(c.as_string::<i32>().clone())
    };
    match array.data_type() {
        DataType::Timestamp(_, _) => {
            let ms = cast(
                array,
                &DataType::Timestamp(TimeUnit::Millisecond, Some(Arc::from("UTC"))),
            )
            .map_err(|e| e.to_string())?;
            let ms = ms.as_primitive::<arrow::datatypes::TimestampMillisecondType>();
            let pattern = if kind == "date" {
                "%Y-%m-%d"
            } else {
                "%Y-%m-%dT%H:%M:%S%.3fZ"
            };
            Ok(ms
                .iter()
                .map(|v| {
                    v.and_then(chrono::DateTime::from_timestamp_millis)
                        .map(|d| d.format(pattern).to_string())
                })
                .collect())
        }
        DataType::Date32 | DataType::Date64 if kind == "datetime" => Ok(utf8(array)?
            .iter()
            .map(|v| v.map(|d| format!("{d}T00:00:00.000Z")))
            .collect()),
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            let f = cast(array, &DataType::Float64).map_err(|e| e.to_string())?;
            let f = f.as_primitive::<arrow::datatypes::Float64Type>();
            let integer = matches!(kind, "int" | "long");
            Ok(f.iter()
                .map(|v| {
                    v.map(|x| {
                        if integer && x.fract() == 0.0 && x.abs() < 9.0e15 {
                            format!("{}", x as i64)
                        } else {
                            plain_decimal(x)
                        }
                    })
                })
                .collect())
        }
        _ => utf8(array),
    }
}

/// A float as a plain decimal (no exponent), which every Salesforce number field accepts.
fn plain_decimal(x: f64) -> String {
    let s = format!("{x}");
    if s.contains('e') || s.contains('E') {
        format!("{x:.10}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    } else {
        s
    }
}

/// A Salesforce text value as the JSON value sObject Collections expects: numbers and booleans
/// typed when they parse (otherwise sent as text, so Salesforce reports the bad value for that
/// row alone), empty text as `null`.
pub fn json_value(text: Option<&str>, kind: &str) -> Value {
    let Some(s) = text else {
        return Value::Null;
    };
    if s.is_empty() {
        return Value::Null;
    }
    match kind {
        "boolean" => match s.to_ascii_lowercase().as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(s.to_string()),
        },
        "int" | "long" => s
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(s.to_string())),
        "double" | "currency" | "percent" => s
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(s.to_string())),
        _ => Value::String(s.to_string()),
    }
}

/// A Salesforce text value as a Bulk CSV cell: null and empty become `#N/A` (an empty cell
/// would leave the field unchanged).
pub fn csv_cell(text: Option<&str>) -> &str {
    match text {
        None | Some("") => "#N/A",
        Some(s) => s,
    }
}
