//! A mapping checked against describes becomes a plan: per stream its schema and key, per
//! source the fields to select and a compiled evaluator.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde_json::{Map, Value, json};

use super::eval::{Evaluator, InputField};
use super::model::{Mapping, SourceMapping, StreamMapping};
use super::resolve::{Describes, Resolved, Unresolved, closest, missing_describes, resolve};
use super::{META_CURSOR, META_PRIMARY_KEY, MappingError, Site};
use crate::catalog::{SObjectDescribe, cursor_field};
use crate::expr::{Expression, Planner, SqlExpression, is_column, parse, rewrite_names};
use crate::protocol::{AirbyteStream, SyncMode};

/// The column sfetl appends with the source object's cursor value (the stream's cursor).
pub const CURSOR_COLUMN: &str = "_sfetl_cursor";
/// The column sfetl appends with the source row's `IsDeleted` (false when unknown).
pub const DELETED_COLUMN: &str = "_sfetl_is_deleted";

/// A compiled mapping: what the read path executes.
#[derive(Debug)]
pub struct MappingPlan {
    /// Mapped streams, in file order.
    pub streams: Vec<MappedStream>,
    /// Streams left out because they read fields the org no longer describes
    /// (`schema_drift: fail`), with the message their read ends with.
    pub drifted: Vec<(String, String)>,
    /// Warnings of streams that read such fields as null (`schema_drift: ignore`).
    pub warnings: Vec<(String, String)>,
}

impl MappingPlan {
    /// The stream named `name`, as the configured catalog names it.
    pub fn stream(&self, name: &str) -> Option<&MappedStream> {
        self.streams.iter().find(|s| s.name == name)
    }

    /// Why the stream `name` cannot be read, when schema drift left it out.
    pub fn drifted(&self, name: &str) -> Option<&str> {
        self.drifted
            .iter()
            .find(|(s, _)| s == name)
            .map(|(_, m)| m.as_str())
    }

    /// The schema-drift warnings of the stream `name`.
    pub fn warnings(&self, name: &str) -> Vec<&str> {
        self.warnings
            .iter()
            .filter(|(s, _)| s == name)
            .map(|(_, m)| m.as_str())
            .collect()
    }
}

/// One output stream of the mapping.
#[derive(Debug)]
pub struct MappedStream {
    /// Stream name.
    pub name: String,
    /// Primary key columns.
    pub primary_key: Vec<String>,
    /// Arrow schema of evaluated batches: the user's columns, then `_sfetl_cursor` and
    /// `_sfetl_is_deleted`; metadata carries `sfetl.primary_key` and `sfetl.cursor`.
    pub schema: SchemaRef,
    /// JSON schema of a record, for discover.
    pub json_schema: Value,
    /// One plan per `from` entry.
    pub sources: Vec<SourcePlan>,
}

impl MappedStream {
    /// Incremental needs a cursor on every source object.
    pub fn supports_incremental(&self) -> bool {
        self.sources.iter().all(|s| s.cursor.is_some())
    }

    /// The catalog entry `discover` offers for the stream.
    pub fn airbyte_stream(&self) -> AirbyteStream {
        let incremental = self.supports_incremental();
        AirbyteStream {
            name: self.name.clone(),
            json_schema: self.json_schema.clone(),
            supported_sync_modes: if incremental {
                vec![SyncMode::FullRefresh, SyncMode::Incremental]
            } else {
                vec![SyncMode::FullRefresh]
            },
            source_defined_cursor: Some(incremental),
            default_cursor_field: incremental.then(|| vec![CURSOR_COLUMN.to_string()]),
            source_defined_primary_key: Some(
                self.primary_key.iter().map(|c| vec![c.clone()]).collect(),
            ),
            namespace: None,
            is_resumable: Some(incremental),
        }
    }
}

/// How one source object feeds a mapped stream.
#[derive(Debug)]
pub struct SourcePlan {
    /// Object API name, as the describe spells it.
    pub object: String,
    /// SOQL field paths to select: `Id`, the fields the expressions use (parents as
    /// `Account.Name`, compound components as `BillingCountry`), the cursor and `IsDeleted`.
    pub fields: Vec<String>,
    /// The object's cursor field (`SystemModstamp`, ...), if it has one.
    pub cursor: Option<&'static str>,
    /// SOQL condition to AND into the query, verbatim.
    pub soql_where: Option<String>,
    /// The batch [`SourcePlan::evaluate`] expects: one column per field, named by its path.
    pub input_schema: SchemaRef,
    /// What else decides this source's rows, as written (`column email = lower(Email)`,
    /// `soql_where IsConverted = false`): recorded with the fields read, so a changed column
    /// or filter is known to the rows below the saved cursor (see `FieldsRead`).
    pub written: Vec<String>,
    evaluator: Evaluator,
}

impl SourcePlan {
    /// Evaluates the mapping on a batch of this source's fields (found by name) into a batch
    /// of the stream's schema. Vectorised: a handful of kernels per batch, nothing per row.
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<RecordBatch, MappingError> {
        self.evaluator.evaluate(batch)
    }
}

/// Checks the mapping's objects against the org's object list (describeGlobal), suggesting the
/// closest names for unknown ones. Call it before fetching describes.
pub fn check_objects(mapping: &Mapping, org_objects: &[String]) -> Result<(), MappingError> {
    for stream in &mapping.streams {
        for source in &stream.from {
            if !org_objects
                .iter()
                .any(|o| o.eq_ignore_ascii_case(&source.object))
            {
                return Err(MappingError::UnknownObject {
                    stream: stream.name.clone(),
                    object: source.object.clone(),
                    suggestions: closest(&source.object, org_objects),
                });
            }
        }
    }
    Ok(())
}

/// Describes still needed to compile: the `from` objects missing from `describes`, then the
/// parent objects of relationships the expressions follow. Fetch them and call again until it
/// is empty (objects unknown to the org should be caught first by [`check_objects`]).
pub fn describes_needed(
    mapping: &Mapping,
    describes: &HashMap<String, SObjectDescribe>,
) -> Vec<String> {
    let index = Describes::new(describes);
    let mut out: Vec<String> = Vec::new();
    for source in mapping.streams.iter().flat_map(|s| &s.from) {
        let Some(describe) = index.get(&source.object) else {
            if !out.iter().any(|o| o.eq_ignore_ascii_case(&source.object)) {
                out.push(source.object.clone());
            }
            continue;
        };
        for (_, text) in &source.columns {
            let Ok(mut expr) = parse(text) else { continue };
            let _ = rewrite_names(&mut expr, |parts| {
                if parts.len() > 1 {
                    missing_describes(&index, describe, parts, &mut out);
                }
                Ok::<_, ()>(String::new())
            });
        }
    }
    out
}

/// Compiles `mapping` against `describes` (keyed by object name; see [`describes_needed`]).
pub fn compile(
    mapping: &Mapping,
    describes: &HashMap<String, SObjectDescribe>,
) -> Result<MappingPlan, MappingError> {
    let index = Describes::new(describes);
    let planner = Planner::new();
    let mut streams: Vec<MappedStream> = Vec::new();
    for stream in &mapping.streams {
        if streams.iter().any(|s| s.name == stream.name) {
            return Err(MappingError::DuplicateStream(stream.name.clone()));
        }
        streams.push(compile_stream(stream, &index, &planner)?);
    }
    Ok(MappingPlan {
        streams,
        drifted: Vec::new(),
        warnings: Vec::new(),
    })
}

/// One `from` entry after planning its expressions.
struct PlannedSource {
    object: String,
    cursor: Option<&'static str>,
    fields: Vec<InputField>,
    /// Columns in mapping order.
    columns: Vec<PlannedColumn>,
}

struct PlannedColumn {
    name: String,
    expr: Expression,
    data_type: DataType,
    /// Whether the expression is just `Id` (a candidate primary key).
    bare_id: bool,
}

fn compile_stream(
    stream: &StreamMapping,
    index: &Describes<'_>,
    planner: &Planner,
) -> Result<MappedStream, MappingError> {
    let planned: Vec<PlannedSource> = stream
        .from
        .iter()
        .map(|s| plan_source(&stream.name, s, index, planner))
        .collect::<Result<_, _>>()?;
    same_columns(&stream.name, &planned)?;
    let types = unified_types(&stream.name, &planned)?;
    let first = &planned[0];
    let names: Vec<String> = first.columns.iter().map(|c| c.name.clone()).collect();
    let primary_key = primary_key(stream, &planned, &names)?;
    let schema = output_schema(&names, &types, &primary_key);
    let json_schema = record_json_schema(&schema);
    let sources = planned
        .into_iter()
        .zip(&stream.from)
        .map(|(p, written)| source_plan(&stream.name, p, written, &names, &types, &schema))
        .collect();
    Ok(MappedStream {
        name: stream.name.clone(),
        primary_key,
        schema,
        json_schema,
        sources,
    })
}

/// Every `from` entry must give the same column names.
fn same_columns(stream: &str, planned: &[PlannedSource]) -> Result<(), MappingError> {
    let first = &planned[0];
    let has = |p: &PlannedSource, c: &str| p.columns.iter().any(|x| x.name == c);
    for other in &planned[1..] {
        let names_missing_in = |a: &PlannedSource, b: &PlannedSource| -> Vec<String> {
            a.columns
                .iter()
                .filter(|c| !has(b, &c.name))
                .map(|c| c.name.clone())
                .collect()
        };
        let missing = names_missing_in(first, other);
        let extra = names_missing_in(other, first);
        if !missing.is_empty() || !extra.is_empty() {
            return Err(MappingError::ColumnsDiffer {
                stream: stream.to_string(),
                first: first.object.clone(),
                object: other.object.clone(),
                missing,
                extra,
            });
        }
    }
    Ok(())
}

/// One type per column, unified over the `from` entries.
fn unified_types(stream: &str, planned: &[PlannedSource]) -> Result<Vec<DataType>, MappingError> {
    let first = &planned[0];
    let mut types: Vec<DataType> = Vec::with_capacity(first.columns.len());
    for column in &first.columns {
        let mut unified = column.data_type.clone();
        for other in &planned[1..] {
            let theirs = &other
                .columns
                .iter()
                .find(|c| c.name == column.name)
                .expect("checked by same_columns")
                .data_type;
            unified = unify(&unified, theirs).ok_or_else(|| MappingError::TypeConflict {
                stream: stream.to_string(),
                column: column.name.clone(),
                types: Box::new([
                    (first.object.clone(), column.data_type.to_string()),
                    (other.object.clone(), theirs.to_string()),
                ]),
            })?;
        }
        types.push(unified);
    }
    Ok(types)
}

/// The declared primary key (checked against the columns), else the column every entry maps
/// to a bare `Id`.
fn primary_key(
    stream: &StreamMapping,
    planned: &[PlannedSource],
    names: &[String],
) -> Result<Vec<String>, MappingError> {
    if let Some(key) = &stream.primary_key {
        if let Some(bad) = key.iter().find(|k| !names.contains(k)) {
            return Err(MappingError::PrimaryKey {
                stream: stream.name.clone(),
                column: bad.clone(),
                columns: names.to_vec(),
            });
        }
        return Ok(key.clone());
    }
    planned[0]
        .columns
        .iter()
        .find(|c| {
            c.bare_id
                && planned[1..]
                    .iter()
                    .all(|p| p.columns.iter().any(|x| x.name == c.name && x.bare_id))
        })
        .map(|c| vec![c.name.clone()])
        .ok_or_else(|| MappingError::NoPrimaryKey {
            stream: stream.name.clone(),
        })
}

/// The read plan of one `from` entry: its input schema and its evaluator into the stream's
/// columns (`names` typed `types`, in `schema`).
fn source_plan(
    stream: &str,
    p: PlannedSource,
    written: &SourceMapping,
    names: &[String],
    types: &[DataType],
    schema: &SchemaRef,
) -> SourcePlan {
    let input_schema = Arc::new(Schema::new(
        p.fields
            .iter()
            .map(|f| Field::new(&f.path, f.data_type.clone(), true))
            .collect::<Vec<_>>(),
    ));
    let columns = names
        .iter()
        .zip(types)
        .map(|(name, target)| {
            let c = p.columns.iter().find(|c| &c.name == name).expect("checked");
            (name.clone(), c.expr.clone(), target.clone())
        })
        .collect();
    let position = |name: &str| p.fields.iter().position(|f| f.path == name);
    let evaluator = Evaluator::new(
        stream,
        &p.object,
        input_schema.clone(),
        p.fields.clone(),
        columns,
        p.cursor.and_then(position),
        position("IsDeleted"),
        schema.clone(),
    );
    SourcePlan {
        object: p.object,
        fields: p.fields.iter().map(|f| f.path.clone()).collect(),
        cursor: p.cursor,
        soql_where: written.soql_where.clone(),
        input_schema,
        written: written_shape(written),
        evaluator,
    }
}

/// [`SourcePlan::written`]: each column as `column <name> = <expression>` and the filter as
/// `soql_where <condition>`, whitespace trimmed.
fn written_shape(written: &SourceMapping) -> Vec<String> {
    let columns = written
        .columns
        .iter()
        .map(|(name, expr)| format!("{}{name} = {}", crate::state::COLUMN_ENTRY, expr.trim()));
    let filter = written
        .soql_where
        .iter()
        .map(|w| format!("{}{}", crate::state::FILTER_ENTRY, w.trim()));
    columns.chain(filter).collect()
}

fn plan_source(
    stream: &str,
    source: &SourceMapping,
    index: &Describes<'_>,
    planner: &Planner,
) -> Result<PlannedSource, MappingError> {
    let describe = index
        .get(&source.object)
        .ok_or_else(|| MappingError::UnknownObject {
            stream: stream.to_string(),
            object: source.object.clone(),
            suggestions: closest(&source.object, &index.names()),
        })?;
    if !describe.queryable {
        return Err(MappingError::NotQueryable {
            stream: stream.to_string(),
            object: describe.name.clone(),
        });
    }
    let object = describe.name.clone();
    let cursor = cursor_field(describe);
    let site = |column: &str| Site::boxed(stream, &object, column);
    let (asts, used) = parse_columns(stream, source, index, describe, &site)?;
    let fields = input_fields(index, describe, used, cursor);
    let input = Schema::new(
        fields
            .iter()
            .map(|f| Field::new(&f.path, f.data_type.clone(), true))
            .collect::<Vec<_>>(),
    );
    let mut columns = Vec::with_capacity(asts.len());
    for ((name, expr, bare_id), (_, text)) in asts.into_iter().zip(&source.columns) {
        let expr = planner
            .plan(expr, &input)
            .map_err(|reason| MappingError::Type {
                site: site(&name),
                expression: text.clone(),
                reason,
            })?;
        columns.push(PlannedColumn {
            name,
            data_type: expr.data_type().clone(),
            expr,
            bare_id,
        });
    }
    Ok(PlannedSource {
        object,
        cursor,
        fields,
        columns,
    })
}

/// A mapping entry's column expressions, parsed with their field names resolved against the
/// describes (`used`: the fields they read, in first-use order).
type ParsedColumns = (Vec<(String, SqlExpression, bool)>, Vec<Resolved>);

fn parse_columns(
    stream: &str,
    source: &SourceMapping,
    index: &Describes<'_>,
    describe: &SObjectDescribe,
    site: &dyn Fn(&str) -> Box<Site>,
) -> Result<ParsedColumns, MappingError> {
    let mut used: Vec<Resolved> = Vec::new();
    let mut asts: Vec<(String, SqlExpression, bool)> = Vec::new();
    for (column, text) in &source.columns {
        if column.starts_with("_sfetl_") {
            return Err(MappingError::Reserved {
                stream: stream.to_string(),
                column: column.clone(),
            });
        }
        let mut expr = parse(text).map_err(|reason| MappingError::Parse {
            site: site(column),
            expression: text.clone(),
            reason,
        })?;
        let rewritten = rewrite_names(&mut expr, |parts| {
            let r = resolve(index, describe, parts).map_err(|e| match e {
                Unresolved::Unknown { on, suggestions } => MappingError::UnknownField {
                    site: site(column),
                    field: parts.join("."),
                    on,
                    suggestions,
                },
                Unresolved::WholeCompound { example } => MappingError::WholeCompound {
                    site: site(column),
                    field: parts.join("."),
                    example,
                },
                Unresolved::MissingDescribe(o) => MappingError::MissingDescribe(o),
            })?;
            let path = r.path.clone();
            if !used.iter().any(|u| u.path == r.path) {
                used.push(r);
            }
            Ok(path)
        });
        if let ControlFlow::Break(e) = rewritten {
            return Err(e);
        }
        let bare_id = is_column(&expr, "Id");
        asts.push((column.clone(), expr, bare_id));
    }
    Ok((asts, used))
}

/// The fields a source reads: Id first, then what the expressions use, then the cursor and
/// IsDeleted.
fn input_fields(
    index: &Describes<'_>,
    describe: &SObjectDescribe,
    used: Vec<Resolved>,
    cursor: Option<&'static str>,
) -> Vec<InputField> {
    let mut fields: Vec<InputField> = Vec::new();
    let mut add = |r: Resolved| {
        if !fields.iter().any(|f| f.path == r.path) {
            fields.push(InputField {
                path: r.path,
                data_type: r.data_type,
                compound: r.compound,
            });
        }
    };
    let own = |name: &str| resolve(index, describe, &[name.to_string()]).ok();
    if let Some(id) = own("Id") {
        add(id);
    }
    used.into_iter().for_each(&mut add);
    if let Some(c) = cursor.and_then(own) {
        add(c);
    }
    if let Some(d) = own("IsDeleted") {
        add(d);
    }
    fields
}

/// The type two sources' values of one column are stored as, if they are compatible: equal
/// types, null with anything, integers and decimals widened, floats with any number, and the
/// string types as Utf8.
fn unify(a: &DataType, b: &DataType) -> Option<DataType> {
    use DataType::*;
    let as_decimal = |t: &DataType| match t {
        Int8 | Int16 | Int32 | UInt8 | UInt16 => Some((10u8, 0i8)),
        Int64 | UInt32 | UInt64 => Some((20, 0)),
        Decimal128(p, s) => Some((*p, *s)),
        _ => None,
    };
    let is_int = |t: &DataType| t.is_integer();
    let is_string = |t: &DataType| matches!(t, Utf8 | LargeUtf8 | Utf8View);
    Some(match (a, b) {
        _ if a == b => a.clone(),
        (Null, t) | (t, Null) => t.clone(),
        _ if is_int(a) && is_int(b) => Int64,
        _ if is_string(a) && is_string(b) => Utf8,
        (Float16 | Float32 | Float64, t) | (t, Float16 | Float32 | Float64) if t.is_numeric() => {
            Float64
        }
        _ => {
            let (pa, sa) = as_decimal(a)?;
            let (pb, sb) = as_decimal(b)?;
            let scale = sa.max(sb);
            let int_digits = (pa as i16 - sa as i16).max(pb as i16 - sb as i16);
            let precision = (int_digits + scale as i16).clamp(1, 38) as u8;
            Decimal128(precision, scale)
        }
    })
}

fn output_schema(names: &[String], types: &[DataType], key: &[String]) -> SchemaRef {
    let mut fields: Vec<Field> = names
        .iter()
        .zip(types)
        .map(|(n, t)| Field::new(n, t.clone(), true))
        .collect();
    fields.push(Field::new(
        CURSOR_COLUMN,
        DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC"))),
        true,
    ));
    fields.push(Field::new(DELETED_COLUMN, DataType::Boolean, false));
    let metadata = HashMap::from([
        (
            META_PRIMARY_KEY.to_string(),
            serde_json::to_string(key).expect("strings serialise"),
        ),
        (META_CURSOR.to_string(), CURSOR_COLUMN.to_string()),
    ]);
    Arc::new(Schema::new_with_metadata(fields, metadata))
}

/// JSON schema of one Arrow type, as Airbyte expects it (nullable).
fn json_type(t: &DataType) -> Value {
    use DataType::*;
    match t {
        Boolean => json!({"type": ["null", "boolean"]}),
        t if t.is_integer() => json!({"type": ["null", "integer"]}),
        t if t.is_numeric() => json!({"type": ["null", "number"]}),
        Date32 | Date64 => json!({"type": ["null", "string"], "format": "date"}),
        Timestamp(_, _) => json!({
            "type": ["null", "string"],
            "format": "date-time",
            "airbyte_type": "timestamp_with_timezone"
        }),
        Time32(_) | Time64(_) => json!({
            "type": ["null", "string"],
            "format": "time",
            "airbyte_type": "time_without_timezone"
        }),
        // A column whose fields the org no longer has (read as null): no type to compare.
        Null => json!({"type": ["null"]}),
        Binary | LargeBinary | BinaryView => {
            json!({"type": ["null", "string"], "contentEncoding": "base64"})
        }
        Struct(children) => {
            let props: serde_json::Map<String, Value> = children
                .iter()
                .map(|c| (c.name().clone(), json_type(c.data_type())))
                .collect();
            json!({"type": ["null", "object"], "properties": props})
        }
        List(item) | LargeList(item) => {
            json!({"type": ["null", "array"], "items": json_type(item.data_type())})
        }
        _ => json!({"type": ["null", "string"]}),
    }
}

fn record_json_schema(schema: &Schema) -> Value {
    let props: Map<String, Value> = schema
        .fields()
        .iter()
        .map(|f| {
            let mut t = json_type(f.data_type());
            if !f.is_nullable() {
                t["type"] = t["type"][1].clone();
            }
            (f.name().clone(), t)
        })
        .collect();
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "additionalProperties": true,
        "properties": props,
    })
}

#[cfg(test)]
pub(super) fn unify_for_tests(a: &DataType, b: &DataType) -> Option<DataType> {
    unify(a, b)
}
