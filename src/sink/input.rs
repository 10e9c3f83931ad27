//! Incoming rows as Arrow batches: RECORD `data` objects decoded with arrow-json against the
//! schema the catalog declares, or a Parquet / CSV file read from disk or object storage.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use bytes::Bytes;
use object_store::ObjectStoreExt as _;
use serde_json::Value;

use super::error::SinkError;
use crate::secret::Secret;

/// The Arrow schema of a stream's rows from its JSON schema (`properties`): `integer` → Int64,
/// `number` → Float64, `boolean` → Boolean, `string` with `format: date` / `date-time` → Date32 /
/// Timestamp, anything else → Utf8. Properties are kept in declared order.
pub fn schema_from_json_schema(json_schema: &Value) -> SchemaRef {
    let mut fields = Vec::new();
    if let Some(props) = json_schema["properties"].as_object() {
        for (name, p) in props {
            fields.push(Field::new(name, json_type(p), true));
        }
    }
    Arc::new(Schema::new(fields))
}

fn json_type(p: &Value) -> DataType {
    let types: Vec<&str> = match &p["type"] {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let t = types.into_iter().find(|t| *t != "null").unwrap_or("string");
    match (t, p["format"].as_str(), p["airbyte_type"].as_str()) {
        ("integer", _, _) => DataType::Int64,
        ("number", _, _) => DataType::Float64,
        ("boolean", _, _) => DataType::Boolean,
        ("string", Some("date"), _) => DataType::Date32,
        ("string", Some("date-time"), Some("timestamp_without_timezone")) => {
            DataType::Timestamp(TimeUnit::Microsecond, None)
        }
        ("string", Some("date-time"), _) => {
            DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")))
        }
        _ => DataType::Utf8,
    }
}

/// Which rows left a column's key out of their RECORD's `data`, by column index (columns every
/// row has are not listed). A key left out is not sent to Salesforce, so the field keeps its
/// value; only an explicit `null` clears it. Decoded alike, both would be null, and a RECORD
/// carrying some of a route's columns cleared the others.
#[derive(Debug, Default, Clone)]
pub struct Absent(pub HashMap<usize, Vec<bool>>);

impl Absent {
    /// The keys of `schema`'s columns each row of `rows` leaves out.
    fn of(schema: &SchemaRef, rows: &[Value]) -> Absent {
        let mut absent = HashMap::new();
        for (i, field) in schema.fields().iter().enumerate() {
            let left_out: Vec<bool> = rows
                .iter()
                .map(|r| r.get(field.name().as_str()).is_none())
                .collect();
            if left_out.contains(&true) {
                absent.insert(i, left_out);
            }
        }
        Absent(absent)
    }
}

/// Decodes RECORD `data` objects into one batch of `schema` (unknown keys are ignored, missing
/// ones are null and listed in the [`Absent`] returned beside). `first_line` numbers the rows
/// in errors.
pub fn decode_rows(
    schema: &SchemaRef,
    rows: &[Value],
    stream: &str,
    first_line: &[u64],
) -> Result<(RecordBatch, Absent), SinkError> {
    check_whole_numbers(schema, rows, stream, first_line)?;
    let decoder = || {
        arrow::json::ReaderBuilder::new(schema.clone())
            .with_coerce_primitive(true)
            .with_batch_size(rows.len().max(1))
            .build_decoder()
            .map_err(|e| SinkError::Protocol(e.to_string()))
    };
    let mut all = decoder()?;
    // A value of the wrong type fails in `serialize` or in `flush` (arrow-json decodes some
    // types only there): either way the row is named by its input line.
    let decoded = all.serialize(rows).and_then(|_| all.flush());
    let batch = match decoded {
        Ok(batch) => batch.unwrap_or_else(|| RecordBatch::new_empty(schema.clone())),
        Err(e) => {
            // Find the first row that does not decode on its own, to name its line.
            for (i, row) in rows.iter().enumerate() {
                let mut one = decoder()?;
                if let Err(e) = one
                    .serialize(std::slice::from_ref(row))
                    .and_then(|_| one.flush())
                {
                    return Err(SinkError::Input {
                        line: first_line.get(i).copied(),
                        message: format!(
                            "RECORD of stream {stream}: {e}; the value does not match the type the catalog declares"
                        ),
                    });
                }
            }
            return Err(SinkError::Input {
                line: None,
                message: format!("RECORDs of stream {stream}: {e}"),
            });
        }
    };
    Ok((batch, Absent::of(schema, rows)))
}

/// Refuses a RECORD whose value for an `integer` column has a fraction: arrow-json reads `1.9`
/// as 1, and the row reached Salesforce truncated without an error (a Parquet file's float
/// column is refused by the route's type check instead).
fn check_whole_numbers(
    schema: &SchemaRef,
    rows: &[Value],
    stream: &str,
    first_line: &[u64],
) -> Result<(), SinkError> {
    let integers: Vec<&str> = schema
        .fields()
        .iter()
        .filter(|f| f.data_type().is_integer())
        .map(|f| f.name().as_str())
        .collect();
    if integers.is_empty() {
        return Ok(());
    }
    for (i, row) in rows.iter().enumerate() {
        for name in &integers {
            let Some(Value::Number(n)) = row.get(*name) else {
                continue;
            };
            let fraction = n.is_f64() && n.as_f64().is_some_and(|x| x.fract() != 0.0);
            if fraction {
                return Err(SinkError::Input {
                    line: first_line.get(i).copied(),
                    message: format!(
                        "RECORD of stream {stream}: {name} is {n}, not a whole number, but the catalog declares it an integer; round it before sending, or declare the column a number"
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Reads a Parquet or CSV file (by extension; `.csv` is CSV, anything else Parquet) from a
/// local path or an object-store URL into batches. A CSV file is checked first: one that
/// ends inside a quoted value, or a file naming a column twice, is refused before any row is
/// applied.
pub async fn read_file(
    location: &str,
    storage_options: &BTreeMap<String, Secret>,
) -> Result<Vec<RecordBatch>, SinkError> {
    let bytes = fetch(location, storage_options).await?;
    let err = |e: String| SinkError::Input {
        line: None,
        message: format!("{location}: {e}"),
    };
    if location.to_ascii_lowercase().ends_with(".csv") {
        let codes = check_csv(location, &bytes)?;
        let format = arrow::csv::reader::Format::default().with_header(true);
        let (schema, _) = format
            .infer_schema(std::io::Cursor::new(&bytes[..]), Some(10_000))
            .map_err(|e| err(e.to_string()))?;
        let schema = keep_codes_as_text(schema, &codes);
        let reader = arrow::csv::ReaderBuilder::new(Arc::new(schema))
            .with_format(format)
            .with_batch_size(65_536)
            .build(std::io::Cursor::new(bytes))
            .map_err(|e| err(e.to_string()))?;
        reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| err(e.to_string()))
    } else {
        let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
            .map_err(|e| err(format!("not a Parquet file ({e}); name CSV files *.csv")))?;
        let names: Vec<&str> = builder
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        if let Some(problem) = duplicate_column(&names) {
            return Err(err(problem));
        }
        let reader = builder
            .with_batch_size(65_536)
            .build()
            .map_err(|e| err(e.to_string()))?;
        reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| err(e.to_string()))
    }
}

/// `schema` (inferred from a CSV file's first rows) with every number column that holds a code
/// read as text instead: a value with a leading zero (`0012`, a postal code or account number),
/// a `+` sign, an exponent (`1e5`, a product code) or more digits than a float keeps
/// (`12345678901234567890`). Read as numbers, those values reached Salesforce rewritten (`12`,
/// `100000`), and a text field stored the rewritten value without an error. Columns of plain
/// numbers stay numbers, so route expressions (`round(score, 2)`, `score > 50`) work on them.
/// `codes` flags the columns holding such a value ([`check_csv`] finds them).
fn keep_codes_as_text(schema: Schema, codes: &[bool]) -> Schema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .enumerate()
        .map(
            |(i, f)| match f.data_type().is_numeric() && codes.get(i) == Some(&true) {
                true => f.as_ref().clone().with_data_type(DataType::Utf8),
                false => f.as_ref().clone(),
            },
        )
        .collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

/// Whether a value that parses as a number would not survive being one (see
/// [`keep_codes_as_text`]).
fn is_code(value: &[u8]) -> bool {
    let unsigned = value.strip_prefix(b"-").unwrap_or(value);
    let whole = unsigned.split(|&b| b == b'.').next().unwrap_or_default();
    let digits = unsigned.iter().filter(|b| b.is_ascii_digit()).count();
    value.first() == Some(&b'+')
        || value.iter().any(|&b| b == b'e' || b == b'E')
        || (whole.len() > 1 && whole[0] == b'0')
        || digits > 15
}

/// Where a CSV parser is as it reads a file (RFC 4180: `"` quotes, `""` inside quotes).
#[derive(Clone, Copy, PartialEq)]
enum Cell {
    Start,
    Plain,
    Quoted,
    QuoteInQuoted,
}

/// Refuses what arrow's CSV reader would accept but misread: a quoted value still open at the
/// end of the file (everything after its quote would become one value), a header naming a
/// column twice (routes would only ever see the first), and a row with more or fewer values
/// than the header has columns. In the same pass over the rows, finds the columns that hold a
/// code ([`keep_codes_as_text`]); returns one flag per header column.
fn check_csv(location: &str, bytes: &[u8]) -> Result<Vec<bool>, SinkError> {
    let refuse = |message: String| SinkError::Input {
        line: None,
        message: format!("{location}: {message}"),
    };
    let (mut cell, mut line, mut column) = (Cell::Start, 1u64, 1usize);
    let mut opened = (0u64, 0usize);
    for &b in bytes {
        cell = match (cell, b) {
            (Cell::Quoted, b'"') => Cell::QuoteInQuoted,
            (Cell::Quoted, _) => {
                line += u64::from(b == b'\n');
                Cell::Quoted
            }
            (Cell::Start, b'"') => {
                opened = (line, column);
                Cell::Quoted
            }
            (Cell::QuoteInQuoted, b'"') => Cell::Quoted,
            (_, b',') => {
                column += 1;
                Cell::Start
            }
            (_, b'\n' | b'\r') => {
                line += u64::from(b == b'\n');
                column = 1;
                Cell::Start
            }
            _ => Cell::Plain,
        };
    }
    let header: Vec<String> = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(bytes)
        .records()
        .next()
        .and_then(Result::ok)
        .map(|r| r.iter().map(str::to_string).collect())
        .unwrap_or_default();
    if cell == Cell::Quoted {
        let (line, column) = opened;
        let name = match header.get(column - 1) {
            Some(name) if line > 1 => format!(" ({name:?})"),
            _ => String::new(),
        };
        return Err(refuse(format!(
            "line {line}, column {column}{name}: a quoted value starts here and the file ends before its closing quote; close the quote (a quote inside a quoted value is written twice: \"\")"
        )));
    }
    let names: Vec<&str> = header.iter().map(String::as_str).collect();
    if let Some(problem) = duplicate_column(&names) {
        return Err(refuse(format!("line 1: {problem}")));
    }
    // A row with more or fewer values than the header has columns (arrow's reader would call
    // them "records").
    let mut codes = vec![false; header.len()];
    let rows = csv::ReaderBuilder::new().flexible(true).from_reader(bytes);
    for record in rows.into_byte_records().map_while(Result::ok) {
        for (code, value) in codes.iter_mut().zip(record.iter()) {
            *code = *code || is_code(value);
        }
        if record.len() != header.len() {
            // From the byte offset, past the blank lines before the row (the reader's own line
            // count and offset both start at them).
            let from = record.position().map_or(0, |p| p.byte() as usize);
            let at = from
                + bytes[from.min(bytes.len())..]
                    .iter()
                    .take_while(|b| matches!(b, b'\n' | b'\r'))
                    .count();
            let line = 1 + memchr::memchr_iter(b'\n', &bytes[..at.min(bytes.len())]).count();
            return Err(refuse(format!(
                "line {line}: {} value(s) where the header names {} column(s); give every row one value per column (an empty value is written as nothing between two commas)",
                record.len(),
                header.len()
            )));
        }
    }
    Ok(codes)
}

/// The problem with a header that names a column twice, if it does.
fn duplicate_column(names: &[&str]) -> Option<String> {
    names.iter().enumerate().find_map(|(i, name)| {
        let first = names[..i].iter().position(|n| n == name)?;
        Some(format!(
            "the column {name:?} appears twice (columns {} and {}); give every column its own name",
            first + 1,
            i + 1
        ))
    })
}

async fn fetch(
    location: &str,
    storage_options: &BTreeMap<String, Secret>,
) -> Result<Bytes, SinkError> {
    let err = |e: String| SinkError::Input {
        line: None,
        message: format!("cannot read {location}: {e}"),
    };
    if let Some(path) = crate::output::local_path(location) {
        return std::fs::read(path)
            .map(Bytes::from)
            .map_err(|e| err(format!("{e}; check the path")));
    }
    let url = url::Url::parse(location).map_err(|e| err(e.to_string()))?;
    let options = crate::output::store_options(storage_options);
    let (store, path) = object_store::parse_url_opts(&url, options).map_err(|e| {
        err(format!(
            "{}; credentials go in output.storage_options or the environment",
            redact(&e.to_string(), storage_options)
        ))
    })?;
    let got = store
        .get(&path)
        .await
        .map_err(|e| err(redact(&e.to_string(), storage_options)))?;
    got.bytes()
        .await
        .map_err(|e| err(redact(&e.to_string(), storage_options)))
}

fn redact(message: &str, secrets: &BTreeMap<String, Secret>) -> String {
    let mut m = message.to_string();
    for s in secrets.values() {
        if s.expose().len() >= 4 {
            m = m.replace(s.expose(), "***");
        }
    }
    m
}
