//! Evaluation of a compiled source on record batches: find the input columns by name, run the
//! physical expressions once per batch, cast to the stream's types, append sfetl's columns.

use std::sync::{Arc, Mutex};

use super::{MappingError, Site};
use crate::expr::Expression;
use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, new_null_array};
use arrow::compute::{cast, prep_null_mask_filter};
use arrow::datatypes::{DataType, Schema, SchemaRef, TimeUnit};

/// One column of a source's input batch.
#[derive(Debug, Clone)]
pub(super) struct InputField {
    /// SOQL path, also the expected column name.
    pub path: String,
    /// Arrow type.
    pub data_type: DataType,
    /// For a compound component: (compound field, struct child), another place to find it.
    pub compound: Option<(String, String)>,
}

/// Where each input field is found in batches of one schema.
#[derive(Debug, Clone)]
enum Source {
    /// A top-level column.
    Column(usize),
    /// A child of a struct column, by child indices (`Account` → `Name`).
    Nested(usize, Vec<usize>),
}

/// A compiled source's evaluator.
pub(super) struct Evaluator {
    stream: String,
    object: String,
    input: SchemaRef,
    fields: Vec<InputField>,
    columns: Vec<(String, Expression, DataType)>,
    cursor: Option<usize>,
    deleted: Option<usize>,
    output: SchemaRef,
    /// The last batch schema seen and where the fields are in it (schemas rarely change).
    layout: Mutex<Option<(SchemaRef, Vec<Source>)>>,
}

impl std::fmt::Debug for Evaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evaluator")
            .field("object", &self.object)
            .field(
                "columns",
                &self.columns.iter().map(|c| &c.0).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Evaluator {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        stream: &str,
        object: &str,
        input: SchemaRef,
        fields: Vec<InputField>,
        columns: Vec<(String, Expression, DataType)>,
        cursor: Option<usize>,
        deleted: Option<usize>,
        output: SchemaRef,
    ) -> Evaluator {
        Evaluator {
            stream: stream.to_string(),
            object: object.to_string(),
            input,
            fields,
            columns,
            cursor,
            deleted,
            output,
            layout: Mutex::new(None),
        }
    }

    pub(super) fn evaluate(&self, batch: &RecordBatch) -> Result<RecordBatch, MappingError> {
        let input = self.conform(batch)?;
        let rows = input.num_rows();
        let mut out: Vec<ArrayRef> = Vec::with_capacity(self.columns.len() + 2);
        for (name, expr, target) in &self.columns {
            let err = |reason: String| MappingError::Evaluate {
                site: Site::boxed(&self.stream, &self.object, name),
                reason,
            };
            let value = expr.evaluate(&input).map_err(err)?;
            out.push(cast_to(value, target).map_err(err)?);
        }
        let ts = DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")));
        out.push(match self.cursor {
            Some(i) => {
                cast_to(input.column(i).clone(), &ts).map_err(|reason| MappingError::Evaluate {
                    site: Site::boxed(&self.stream, &self.object, super::CURSOR_COLUMN),
                    reason,
                })?
            }
            None => new_null_array(&ts, rows),
        });
        out.push(match self.deleted {
            Some(i) => match input.column(i).as_boolean_opt() {
                Some(b) if b.null_count() == 0 => input.column(i).clone(),
                Some(b) => Arc::new(prep_null_mask_filter(b)),
                None => Arc::new(BooleanArray::from(vec![false; rows])),
            },
            None => Arc::new(BooleanArray::from(vec![false; rows])),
        });
        RecordBatch::try_new(self.output.clone(), out).map_err(|e| MappingError::Evaluate {
            site: Site::boxed(&self.stream, &self.object, ""),
            reason: e.to_string(),
        })
    }

    /// The batch in the input schema's exact layout: columns found by name (exact, then
    /// case-insensitive, then as struct children), cast where the type differs.
    fn conform(&self, batch: &RecordBatch) -> Result<RecordBatch, MappingError> {
        if batch.schema_ref() == &self.input || batch.schema_ref().fields() == self.input.fields() {
            return Ok(batch.clone());
        }
        let schema = batch.schema();
        let sources = {
            let mut cached = self.layout.lock().expect("layout lock");
            match cached.as_ref() {
                Some((s, sources)) if s == &schema => sources.clone(),
                _ => {
                    let sources = self.locate(&schema)?;
                    *cached = Some((schema.clone(), sources.clone()));
                    sources
                }
            }
        };
        let mut columns = Vec::with_capacity(sources.len());
        for (source, field) in sources.iter().zip(&self.fields) {
            let array = match source {
                Source::Column(i) => batch.column(*i).clone(),
                Source::Nested(i, path) => nested(batch.column(*i), path),
            };
            columns.push(cast_to(array, &field.data_type).map_err(|reason| {
                MappingError::Evaluate {
                    site: Site::boxed(&self.stream, &self.object, &field.path),
                    reason,
                }
            })?);
        }
        let options =
            arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        RecordBatch::try_new_with_options(self.input.clone(), columns, &options).map_err(|e| {
            MappingError::Evaluate {
                site: Site::boxed(&self.stream, &self.object, ""),
                reason: e.to_string(),
            }
        })
    }

    fn locate(&self, schema: &Schema) -> Result<Vec<Source>, MappingError> {
        self.fields
            .iter()
            .map(|f| {
                find(schema, &f.path)
                    .or_else(|| {
                        let (compound, part) = f.compound.as_ref()?;
                        find(schema, &format!("{compound}.{part}"))
                    })
                    .ok_or_else(|| MappingError::BatchColumn {
                        object: self.object.clone(),
                        field: f.path.clone(),
                        available: schema.fields().iter().map(|f| f.name().clone()).collect(),
                    })
            })
            .collect()
    }
}

/// Finds `path` in `schema`: a column with that exact name, or case-insensitively, or a
/// struct column's child along the dotted path.
fn find(schema: &Schema, path: &str) -> Option<Source> {
    let by_name = |fields: &arrow::datatypes::Fields, name: &str| {
        fields.iter().position(|f| f.name() == name).or_else(|| {
            fields
                .iter()
                .position(|f| f.name().eq_ignore_ascii_case(name))
        })
    };
    if let Some(i) = by_name(schema.fields(), path) {
        return Some(Source::Column(i));
    }
    let mut parts = path.split('.');
    let top = by_name(schema.fields(), parts.next()?)?;
    let mut data_type = schema.field(top).data_type();
    let mut children = Vec::new();
    for part in parts {
        let DataType::Struct(fields) = data_type else {
            return None;
        };
        let i = by_name(fields, part)?;
        children.push(i);
        data_type = fields[i].data_type();
    }
    (!children.is_empty()).then_some(Source::Nested(top, children))
}

/// A struct column's descendant; a null parent makes the child null.
fn nested(array: &ArrayRef, path: &[usize]) -> ArrayRef {
    let mut current = array.clone();
    for &i in path {
        let parent = current.as_struct();
        let child = parent.column(i).clone();
        current = match parent.nulls() {
            Some(nulls) if parent.null_count() > 0 => {
                let merged = arrow::buffer::NullBuffer::union(Some(nulls), child.nulls());
                let data = child
                    .to_data()
                    .into_builder()
                    .nulls(merged)
                    .build()
                    .expect("same length, fewer valid slots");
                arrow::array::make_array(data)
            }
            _ => child,
        };
    }
    current
}

fn cast_to(array: ArrayRef, target: &DataType) -> Result<ArrayRef, String> {
    if array.data_type() == target {
        Ok(array)
    } else {
        cast(&array, target).map_err(|e| e.to_string())
    }
}
