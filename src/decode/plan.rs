//! What to select from Salesforce for a stream, in which wire types, and how the wire columns
//! become the stream's columns.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StructArray, Time64MicrosecondArray, new_null_array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::DecodeError;
use crate::catalog::{FieldSpec, SfKind, StreamSchema};

/// Which API a page comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// Bulk API 2.0 query results (CSV).
    Bulk,
    /// REST query / queryAll pages (JSON).
    Rest,
}

#[derive(Debug, Clone)]
enum Column {
    /// The wire column as is.
    Direct(usize),
    /// A `time` sent as text (`10:30:00.000Z`).
    TimeText(usize),
    /// A base64 field: REST sends the blob's URL; the content is fetched separately.
    Blob(usize),
    /// A compound rebuilt from component wire columns (Bulk).
    Compound {
        fields: Fields,
        parts: Vec<Option<usize>>,
    },
}

/// The select list, wire schema and assembly of one stream for one API.
#[derive(Debug, Clone)]
pub struct WirePlan {
    /// Object name.
    pub object: String,
    /// Which API.
    pub api: Api,
    /// Field names for the SOQL SELECT, in wire column order.
    pub select: Vec<String>,
    /// Schema of decoded pages.
    pub wire: SchemaRef,
    /// Schema of assembled batches (the stream's columns).
    pub output: SchemaRef,
    columns: Vec<Column>,
}

fn wire_type(f: &FieldSpec) -> DataType {
    match f.kind {
        SfKind::Time | SfKind::Base64 => DataType::Utf8,
        _ => f.data_type.clone(),
    }
}

impl WirePlan {
    /// Plans a stream read. For Bulk, compound fields are selected as their components
    /// (Bulk refuses compounds) and base64 fields must have been removed by the caller (Bulk
    /// cannot read them: the caller picks REST or drops them).
    pub fn new(schema: &StreamSchema, api: Api) -> WirePlan {
        let mut select: Vec<String> = Vec::new();
        let mut wire_fields: Vec<Field> = Vec::new();
        let mut add = |name: &str, dt: DataType| -> usize {
            if let Some(i) = select.iter().position(|s| s == name) {
                return i;
            }
            select.push(name.to_string());
            wire_fields.push(Field::new(name, dt, true));
            select.len() - 1
        };
        // Plain fields first so a component also selected on its own keeps its own type.
        let mut plain_index = vec![None; schema.fields.len()];
        for (i, f) in schema.fields.iter().enumerate() {
            let compound = matches!(f.kind, SfKind::Address | SfKind::Location);
            if !(compound && api == Api::Bulk) {
                plain_index[i] = Some(add(&f.name, wire_type(f)));
            }
        }
        let mut columns = Vec::with_capacity(schema.fields.len());
        for (i, f) in schema.fields.iter().enumerate() {
            let col = match (plain_index[i], &f.data_type) {
                (Some(w), _) if f.kind == SfKind::Time => Column::TimeText(w),
                (Some(w), _) if f.kind == SfKind::Base64 => Column::Blob(w),
                (Some(w), _) => Column::Direct(w),
                (None, DataType::Struct(children)) => {
                    let parts = children
                        .iter()
                        .map(|child| {
                            f.components
                                .iter()
                                .find(|(_, part)| *part == child.name())
                                .map(|(component, _)| add(component, child.data_type().clone()))
                        })
                        .collect();
                    Column::Compound {
                        fields: children.clone(),
                        parts,
                    }
                }
                (None, _) => unreachable!("only compounds are planned as components"),
            };
            columns.push(col);
        }
        WirePlan {
            object: schema.object.clone(),
            api,
            select,
            wire: Arc::new(Schema::new(wire_fields)),
            output: schema.arrow.clone(),
            columns,
        }
    }

    /// Plans a mapped source whose columns are named by their SOQL paths (`Account.Name`,
    /// `BillingCountry`) in `input`. Bulk selects the paths as flat columns (its CSV headers are
    /// dotted); REST nests parent fields (`Account: {Name}`), so they decode as structs, which
    /// the mapping evaluator accepts as well.
    pub fn for_source(object: &str, api: Api, input: &SchemaRef) -> WirePlan {
        let select: Vec<String> = input.fields().iter().map(|f| f.name().clone()).collect();
        let text_time = |f: &Field| match f.data_type() {
            DataType::Time64(_) => Field::new(f.name(), DataType::Utf8, true),
            _ => f.as_ref().clone(),
        };
        let mut wire_fields: Vec<Field> = Vec::new();
        let mut out_fields: Vec<Field> = Vec::new();
        let mut columns = Vec::new();
        match api {
            Api::Bulk => {
                for (i, f) in input.fields().iter().enumerate() {
                    wire_fields.push(text_time(f));
                    out_fields.push(f.as_ref().clone());
                    columns.push(match f.data_type() {
                        DataType::Time64(_) => Column::TimeText(i),
                        _ => Column::Direct(i),
                    });
                }
            }
            Api::Rest => {
                // Top-level fields in order; dotted paths grouped under their first segment.
                let mut tree: Vec<(String, Vec<Leaf>)> = Vec::new();
                for f in input.fields() {
                    let parts: Vec<String> = f.name().split('.').map(str::to_string).collect();
                    let leaf = Field::new(
                        parts.last().cloned().unwrap_or_default(),
                        f.data_type().clone(),
                        true,
                    );
                    match tree.iter_mut().find(|(root, _)| *root == parts[0]) {
                        Some((_, leaves)) => leaves.push((parts[1..].to_vec(), leaf)),
                        None => tree.push((parts[0].clone(), vec![(parts[1..].to_vec(), leaf)])),
                    }
                }
                for (root, leaves) in tree {
                    let field = if leaves.len() == 1 && leaves[0].0.is_empty() {
                        Field::new(&root, leaves[0].1.data_type().clone(), true)
                    } else {
                        Field::new(&root, nest(&leaves), true)
                    };
                    let i = wire_fields.len();
                    wire_fields.push(text_time(&field));
                    columns.push(match field.data_type() {
                        DataType::Time64(_) => Column::TimeText(i),
                        _ => Column::Direct(i),
                    });
                    out_fields.push(field);
                }
            }
        }
        WirePlan {
            object: object.to_string(),
            api,
            select,
            wire: Arc::new(Schema::new(wire_fields)),
            output: Arc::new(Schema::new(out_fields)),
            columns,
        }
    }

    /// Wire columns holding blob URLs whose content must be fetched before assembly.
    pub fn blob_columns(&self) -> Vec<usize> {
        self.columns
            .iter()
            .filter_map(|c| match c {
                Column::Blob(i) => Some(*i),
                _ => None,
            })
            .collect()
    }

    /// Turns a decoded wire batch into a batch of the stream's schema.
    pub fn assemble(&self, wire: &RecordBatch) -> Result<RecordBatch, DecodeError> {
        self.assemble_with_blobs(wire, &std::collections::HashMap::new())
    }

    /// Like [`WirePlan::assemble`], with the content of blob URLs (a URL without content
    /// becomes null).
    pub fn assemble_with_blobs(
        &self,
        wire: &RecordBatch,
        blobs: &std::collections::HashMap<String, Vec<u8>>,
    ) -> Result<RecordBatch, DecodeError> {
        let err = |reason: String| DecodeError::Arrow {
            object: self.object.clone(),
            reason,
        };
        let mut out: Vec<ArrayRef> = Vec::with_capacity(self.columns.len());
        for col in &self.columns {
            let array = match col {
                Column::Direct(i) => wire.column(*i).clone(),
                Column::TimeText(i) => time_from_text(wire.column(*i)).map_err(err)?,
                Column::Blob(i) => {
                    // REST query results carry the blob's URL (fetched into `blobs`); a value
                    // that is not a URL is the content itself, base64-encoded.
                    use base64::Engine;
                    let urls = wire.column(*i).as_string::<i32>();
                    let values: Vec<Option<Vec<u8>>> = urls
                        .iter()
                        .map(|u| {
                            let u = u?;
                            blobs.get(u).cloned().or_else(|| {
                                (!u.starts_with('/'))
                                    .then(|| {
                                        base64::engine::general_purpose::STANDARD.decode(u).ok()
                                    })
                                    .flatten()
                            })
                        })
                        .collect();
                    Arc::new(arrow::array::BinaryArray::from_iter(values))
                }
                Column::Compound { fields, parts } => {
                    let children: Vec<ArrayRef> = fields
                        .iter()
                        .zip(parts)
                        .map(|(field, part)| match part {
                            Some(i) => cast(wire.column(*i), field.data_type())
                                .map_err(|e| err(e.to_string())),
                            None => Ok(new_null_array(field.data_type(), wire.num_rows())),
                        })
                        .collect::<Result<_, _>>()?;
                    // A compound is null when every component is.
                    let any_set: Vec<bool> = (0..wire.num_rows())
                        .map(|r| children.iter().any(|c| c.is_valid(r)))
                        .collect();
                    let nulls = arrow::buffer::NullBuffer::from(any_set);
                    Arc::new(
                        StructArray::try_new(fields.clone(), children, Some(nulls))
                            .map_err(|e| err(e.to_string()))?,
                    )
                }
            };
            out.push(array);
        }
        RecordBatch::try_new(self.output.clone(), out).map_err(|e| err(e.to_string()))
    }
}

/// Salesforce sends times as `HH:MM:SS.sssZ`.
fn time_from_text(array: &ArrayRef) -> Result<ArrayRef, String> {
    let strings = array.as_string::<i32>();
    let values: Result<Time64MicrosecondArray, String> = strings
        .iter()
        .map(|v| {
            v.map(|s| {
                let t = s.trim_end_matches('Z');
                arrow::compute::kernels::cast_utils::string_to_time_nanoseconds(t)
                    .map(|ns| ns / 1000)
                    .map_err(|_| format!("{s:?} is not a time (HH:MM:SS.sssZ)"))
            })
            .transpose()
        })
        .collect();
    Ok(Arc::new(values?))
}

/// A field under a parent path: the remaining path segments and the leaf field.
type Leaf = (Vec<String>, Field);

/// A struct type for REST's nested parent objects: `[(["Name"], Name), (["Owner", "Email"], Email)]`
/// under one root gives `Struct{Name, Owner: Struct{Email}}`.
fn nest(leaves: &[Leaf]) -> DataType {
    let mut fields: Vec<Field> = Vec::new();
    let mut groups: Vec<(String, Vec<Leaf>)> = Vec::new();
    for (path, leaf) in leaves {
        match path.as_slice() {
            [] => {}
            [single] => fields.push(Field::new(single, leaf.data_type().clone(), true)),
            [head, rest @ ..] => match groups.iter_mut().find(|(g, _)| g == head) {
                Some((_, v)) => v.push((rest.to_vec(), leaf.clone())),
                None => groups.push((head.clone(), vec![(rest.to_vec(), leaf.clone())])),
            },
        }
    }
    for (head, sub) in groups {
        fields.push(Field::new(&head, nest(&sub), true));
    }
    DataType::Struct(Fields::from(fields))
}
