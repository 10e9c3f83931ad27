//! Declarative field mapping: streams of the user's own model built from Salesforce objects,
//! evaluated on Arrow batches with DataFusion expressions while reading.
//!
//! A mapping file (YAML or JSON, `spec/mapping.schema.json`) declares streams; each `from` entry
//! maps one object's fields to the stream's columns with SQL expressions. [`compile`] checks it
//! against the org's describes and yields a [`MappingPlan`]: per stream its schema and primary
//! key, per source what to SELECT, its cursor, its pushed-down `soql_where`, and an evaluator.
//!
//! ## How the read path uses it
//! 1. `Mapping::load(&config.mapping)`; [`describes_needed`] until it is empty (it names the
//!    `from` objects, then the parents reached by relationships such as `Account.Name`);
//!    [`compile`].
//! 2. For each [`SourcePlan`]: `SELECT` exactly [`SourcePlan::fields`] (SOQL paths:
//!    `Id`, `Email`, `Account.Name`, compound components such as `BillingCountry`, plus the
//!    cursor and `IsDeleted`) from [`SourcePlan::object`], adding [`SourcePlan::soql_where`]
//!    with AND to the cursor window; windows and state per source on [`SourcePlan::cursor`].
//! 3. Decode each page into a batch whose columns are named exactly as those SOQL paths (Bulk's
//!    dotted CSV headers give `Account.Name` as is) with the types of
//!    [`SourcePlan::input_schema`]; [`SourcePlan::evaluate`] turns it into a batch of
//!    [`MappedStream::schema`]. Columns are found by name, so order and extra columns do not
//!    matter; REST's nested `Account` struct (child `Name`) and an assembled `BillingAddress`
//!    struct are accepted too, and other types are cast.
//!
//! Every mapped stream ends with two columns sfetl adds: `_sfetl_cursor` (the source object's
//! cursor value, Timestamp µs UTC; the stream's cursor for incremental sync and dedupe) and
//! `_sfetl_is_deleted` (the source's `IsDeleted`, false when unknown), so deletes and
//! deduplication work for mapped streams exactly as for raw ones. The schema's metadata carries
//! [`META_PRIMARY_KEY`] and [`META_CURSOR`], which `sfetl query` reads from the Parquet files.

mod compile;
pub mod drift;
mod eval;
pub mod filter;
mod model;
mod resolve;

pub use compile::{
    CURSOR_COLUMN, DELETED_COLUMN, MappedStream, MappingPlan, SourcePlan, check_objects, compile,
    describes_needed,
};
pub use model::{Mapping, SourceMapping, StreamMapping, mapping_schema};

/// Schema / Parquet key-value metadata key: the primary key columns as a JSON array.
pub const META_PRIMARY_KEY: &str = "sfetl.primary_key";
/// Schema / Parquet key-value metadata key: the column ordering versions of a row.
pub const META_CURSOR: &str = "sfetl.cursor";

/// Why a mapping cannot be used; each message names the stream, object and column at fault
/// and what to change.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MappingError {
    /// The mapping file could not be read.
    #[error("cannot read the mapping file {origin}: {reason}")]
    Read {
        /// The file.
        origin: String,
        /// The OS error.
        reason: String,
    },
    /// Not valid YAML / JSON.
    #[error("{origin} is not valid YAML or JSON: {reason}")]
    Syntax {
        /// The file or "the inline mapping".
        origin: String,
        /// The parser's message, with its line and column.
        reason: String,
    },
    /// Does not follow `spec/mapping.schema.json`.
    #[error("{origin} does not follow spec/mapping.schema.json: {}", problems.join("; "))]
    Invalid {
        /// The file or "the inline mapping".
        origin: String,
        /// One sentence per problem, with where it is.
        problems: Vec<String>,
    },
    /// A `soql_where` is not one balanced condition.
    #[error("{origin}: {}", problems.join("; "))]
    Filter {
        /// The file or "the inline mapping".
        origin: String,
        /// One sentence per filter: where it is, its stream and object, what is wrong.
        problems: Vec<String>,
    },
    /// Two streams share a name.
    #[error("mapping: two streams are named {0:?}; stream names must be unique")]
    DuplicateStream(String),
    /// The object is not in the org.
    #[error(
        "mapping stream {stream:?}: unknown object {object:?}{}",
        suggest(suggestions)
    )]
    UnknownObject {
        /// Stream.
        stream: String,
        /// Object as written.
        object: String,
        /// Closest real object names.
        suggestions: Vec<String>,
    },
    /// The object cannot be read with SOQL.
    #[error(
        "mapping stream {stream:?}: object {object} cannot be queried (its describe says queryable: false)"
    )]
    NotQueryable {
        /// Stream.
        stream: String,
        /// Object.
        object: String,
    },
    /// An expression names a field the object does not have.
    #[error("{site}: unknown field {field:?} on {on}{}", suggest(suggestions))]
    UnknownField {
        /// Where.
        site: Box<Site>,
        /// The field as written.
        field: String,
        /// The object where the lookup failed (a parent for `Account.Nmae`).
        on: String,
        /// Closest real names, written as the user would.
        suggestions: Vec<String>,
    },
    /// A whole compound field is used; Bulk cannot select it.
    #[error("{site}: {field} is a compound field; use its components, e.g. {example}")]
    WholeCompound {
        /// Where.
        site: Box<Site>,
        /// The compound as written.
        field: String,
        /// A component path to use instead.
        example: String,
    },
    /// A describe the mapping needs was not given to `compile` (see `describes_needed`).
    #[error("mapping: the describe of {0} is needed but was not fetched")]
    MissingDescribe(String),
    /// The expression does not parse.
    #[error("{site}: cannot parse {expression:?}: {reason}")]
    Parse {
        /// Where.
        site: Box<Site>,
        /// The expression.
        expression: String,
        /// The parser's message.
        reason: String,
    },
    /// The expression parses but does not plan or type-check.
    #[error("{site}: {expression:?} does not type-check: {reason}")]
    Type {
        /// Where.
        site: Box<Site>,
        /// The expression.
        expression: String,
        /// DataFusion's message.
        reason: String,
    },
    /// A column name reserved for sfetl's own columns.
    #[error(
        "mapping stream {stream:?}: column {column:?} is reserved (names starting with _sfetl_ are sfetl's own columns); rename it"
    )]
    Reserved {
        /// Stream.
        stream: String,
        /// Column.
        column: String,
    },
    /// Two `from` entries yield different column names.
    #[error(
        "mapping stream {stream:?}: from {object} yields different columns than from {first}: {}; every from entry must yield the same column names",
        differences(missing, extra)
    )]
    ColumnsDiffer {
        /// Stream.
        stream: String,
        /// The first `from` object.
        first: String,
        /// The differing `from` object.
        object: String,
        /// Columns of the first entry it lacks.
        missing: Vec<String>,
        /// Columns it has that the first lacks.
        extra: Vec<String>,
    },
    /// Two `from` entries yield incompatible types for a column.
    #[error(
        "mapping stream {stream:?}: column {column:?} is {} from {} but {} from {}; make them compatible, e.g. with CAST(... AS VARCHAR)",
        types[0].1, types[0].0, types[1].1, types[1].0
    )]
    TypeConflict {
        /// Stream.
        stream: String,
        /// Column.
        column: String,
        /// (object, type) of the first entry and of the conflicting one.
        types: Box<[(String, String); 2]>,
    },
    /// A primary key column is not one of the stream's columns.
    #[error("mapping stream {stream:?}: primary_key column {column:?} is not produced; the columns are {}", columns.join(", "))]
    PrimaryKey {
        /// Stream.
        stream: String,
        /// The key column.
        column: String,
        /// The stream's columns.
        columns: Vec<String>,
    },
    /// No primary key declared and none can be inferred.
    #[error(
        "mapping stream {stream:?}: no primary_key given and no column is mapped from Id in every from entry; add primary_key: [...] naming the columns that identify a row"
    )]
    NoPrimaryKey {
        /// Stream.
        stream: String,
    },
    /// A batch given to `evaluate` lacks a field the plan selected.
    #[error("mapping {object}: the batch has no column {field:?} (columns: {})", available.join(", "))]
    BatchColumn {
        /// Source object.
        object: String,
        /// The missing SOQL path.
        field: String,
        /// Columns the batch has.
        available: Vec<String>,
    },
    /// Evaluating on a batch failed (a cast that does not fit, a function error).
    #[error("{site}: {reason}")]
    Evaluate {
        /// Where.
        site: Box<Site>,
        /// Arrow's or DataFusion's message.
        reason: String,
    },
}

/// Where in a mapping something is wrong: stream, source object and output column.
#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    /// Stream.
    pub stream: String,
    /// Source object.
    pub object: String,
    /// Output column.
    pub column: String,
}

impl Site {
    pub(crate) fn boxed(stream: &str, object: &str, column: &str) -> Box<Site> {
        Box::new(Site {
            stream: stream.to_string(),
            object: object.to_string(),
            column: column.to_string(),
        })
    }
}

impl std::fmt::Display for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "mapping stream {:?}, column {:?} from {}",
            self.stream, self.column, self.object
        )
    }
}

fn suggest(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => format!("; did you mean {one}?"),
        [init @ .., last] => format!("; did you mean {} or {last}?", init.join(", ")),
    }
}

fn differences(missing: &[String], extra: &[String]) -> String {
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("it lacks {}", missing.join(", ")));
    }
    if !extra.is_empty() {
        parts.push(format!("it adds {}", extra.join(", ")));
    }
    parts.join(" and ")
}

#[cfg(test)]
mod tests;
