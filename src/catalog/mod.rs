//! From Salesforce describes to stream schemas: the type-mapping table (`types`), describe
//! parsing (`describe`), and per-stream Arrow / JSON schemas with cursors (`schema`); plus the
//! checks of a configured catalog against the org (`configured`) and the name rules they use
//! (`names`).

pub mod configured;
pub mod describe;
pub mod names;
pub mod schema;
pub mod types;

pub use configured::{CatalogProblems, Offered};
pub use describe::{
    ChildRelationship, DescribeGlobal, FieldDescribe, GlobalObject, SObjectDescribe,
};
pub use schema::{
    CURSOR_CANDIDATES, FieldSpec, StreamSchema, airbyte_stream, compound_part, cursor_field,
    is_syncable, record_json_schema,
};
pub use types::{SfKind, arrow_type, json_schema, sf_kind};

#[cfg(test)]
mod tests;
