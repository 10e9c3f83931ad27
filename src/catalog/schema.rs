//! A describe becomes a stream: its Arrow schema, its JSON schema, its cursor, and how compound
//! fields are rebuilt from their components.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde_json::{Map, Value, json};

use super::describe::{FieldDescribe, SObjectDescribe};
use super::types::{SfKind, arrow_type, json_schema, sf_kind};
use crate::protocol::{AirbyteStream, SyncMode};

/// Cursor candidates, safest first: SystemModstamp changes on every write, automated ones too.
pub const CURSOR_CANDIDATES: [&str; 3] = ["SystemModstamp", "LastModifiedDate", "CreatedDate"];

/// The cursor field of an object: the first candidate it has as a `datetime` that queries may
/// filter and sort on (History objects have only `CreatedDate`; a big object's audit dates can
/// be neither, so it has no cursor).
pub fn cursor_field(describe: &SObjectDescribe) -> Option<&'static str> {
    CURSOR_CANDIDATES.into_iter().find(|c| {
        describe
            .fields
            .iter()
            .any(|f| f.name == *c && f.kind == "datetime" && f.filterable && f.sortable)
    })
}

/// Whether an object is offered as a stream: every object a query can read. Whether it is
/// `replicateable` (served by the `deleted` and `updated` endpoints) only decides whether its
/// incremental reads also ask the `deleted` endpoint; objects Salesforce will not read as a
/// whole are handled at read time by `source::restrictions` (read another way, or skipped with
/// a WARN).
pub fn is_syncable(queryable: bool) -> bool {
    queryable
}

/// The struct child (`street`, `latitude`, ...) a compound component feeds, from its name
/// (`BillingStreet`, `MailingLatitude`, `Street`, `Loc__Latitude__s`).
pub fn compound_part(component: &str) -> Option<&'static str> {
    const PARTS: [(&str, &str); 10] = [
        ("GeocodeAccuracy", "geocodeAccuracy"),
        ("StateCode", "stateCode"),
        ("CountryCode", "countryCode"),
        ("PostalCode", "postalCode"),
        ("Street", "street"),
        ("City", "city"),
        ("State", "state"),
        ("Country", "country"),
        ("Latitude", "latitude"),
        ("Longitude", "longitude"),
    ];
    let base = component.strip_suffix("__s").unwrap_or(component);
    PARTS
        .iter()
        .find(|(suffix, _)| base.ends_with(suffix))
        .map(|(_, part)| *part)
}

/// One column of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldSpec {
    /// API name.
    pub name: String,
    /// Salesforce type as described.
    pub sf_type: String,
    /// Its class in the type table.
    pub kind: SfKind,
    /// Arrow type.
    pub data_type: DataType,
    /// For compounds: (component field, struct child) pairs, so Bulk can select components.
    pub components: Vec<(String, &'static str)>,
}

/// The typed shape of one stream.
#[derive(Debug, Clone)]
pub struct StreamSchema {
    /// Object name.
    pub object: String,
    /// Columns in describe order.
    pub fields: Vec<FieldSpec>,
    /// Cursor field, if the object has one.
    pub cursor: Option<&'static str>,
    /// The Arrow schema of the columns.
    pub arrow: SchemaRef,
}

impl StreamSchema {
    /// Builds the schema of `describe`, keeping only `selected` fields when given (plus `Id`
    /// and the cursor, which every read needs). Unknown selected names are ignored here; the
    /// planner reports them.
    pub fn from_describe(describe: &SObjectDescribe, selected: Option<&[String]>) -> StreamSchema {
        let cursor = cursor_field(describe);
        let keep = |f: &FieldDescribe| match selected {
            None => true,
            Some(sel) => f.name == "Id" || Some(f.name.as_str()) == cursor || sel.contains(&f.name),
        };
        let fields: Vec<FieldSpec> = describe
            .fields
            .iter()
            .filter(|f| keep(f))
            .map(|f| {
                let kind = sf_kind(&f.kind);
                let components = if matches!(kind, SfKind::Address | SfKind::Location) {
                    describe
                        .fields
                        .iter()
                        .filter(|c| c.compound_field_name.as_deref() == Some(f.name.as_str()))
                        .filter_map(|c| compound_part(&c.name).map(|p| (c.name.clone(), p)))
                        .collect()
                } else {
                    Vec::new()
                };
                if kind == SfKind::Unknown {
                    tracing::warn!(
                        object = %describe.name, field = %f.name, sf_type = %f.kind,
                        "unknown Salesforce field type; reading it as text"
                    );
                }
                FieldSpec {
                    name: f.name.clone(),
                    sf_type: f.kind.clone(),
                    kind,
                    data_type: arrow_type(f),
                    components,
                }
            })
            .collect();
        let arrow = Arc::new(Schema::new(
            fields
                .iter()
                .map(|f| Field::new(&f.name, f.data_type.clone(), f.name != "Id"))
                .collect::<Vec<_>>(),
        ));
        StreamSchema {
            object: describe.name.clone(),
            fields,
            cursor,
            arrow,
        }
    }
}

/// The JSON schema of a whole record of `describe`.
pub fn record_json_schema(describe: &SObjectDescribe) -> Value {
    let props: Map<String, Value> = describe
        .fields
        .iter()
        .map(|f| {
            let mut s = json_schema(f);
            if f.name == "Id" {
                s["type"] = json!("string");
            }
            (f.name.clone(), s)
        })
        .collect();
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "additionalProperties": true,
        "properties": props,
    })
}

/// The catalog entry `discover` offers for an object.
pub fn airbyte_stream(describe: &SObjectDescribe) -> AirbyteStream {
    let cursor = cursor_field(describe);
    let has_id = describe.fields.iter().any(|f| f.name == "Id");
    let mut json_schema = record_json_schema(describe);
    if cursor.is_some() {
        // Rows found deleted by the `deleted` endpoint carry the deletion time here.
        json_schema["properties"]["_sfetl_deleted_at"] = json!({"type": ["null", "string"],
            "format": "date-time", "airbyte_type": "timestamp_with_timezone"});
    }
    AirbyteStream {
        name: describe.name.clone(),
        json_schema,
        supported_sync_modes: if cursor.is_some() {
            vec![SyncMode::FullRefresh, SyncMode::Incremental]
        } else {
            vec![SyncMode::FullRefresh]
        },
        source_defined_cursor: Some(cursor.is_some()),
        default_cursor_field: cursor.map(|c| vec![c.to_string()]),
        source_defined_primary_key: has_id.then(|| vec![vec!["Id".to_string()]]),
        namespace: None,
        is_resumable: Some(cursor.is_some()),
    }
}
