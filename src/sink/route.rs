//! Routes compiled against the incoming rows' Arrow schema: the `when` condition and each
//! field's expression are parsed and planned once (`crate::expr`, shared with `mapping/`),
//! then evaluated per Arrow batch.

use std::ops::ControlFlow;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, SchemaRef};

use super::config::{Operation, Route};
use super::error::SinkError;
use super::format::{compatible, format_column};
use super::input::Absent;
use crate::catalog::SObjectDescribe;
use crate::expr::{Expression, Planner, find_column, parse, rewrite_names};

/// One target field of a compiled route.
pub struct TargetField {
    /// Field API name as the describe spells it.
    pub name: String,
    /// Salesforce field type (`double`, `date`, ...), for formatting values.
    pub kind: String,
    expr: Expression,
    /// The input columns the expression reads (indices in the stream's schema).
    columns: Vec<usize>,
}

/// A route ready to evaluate on batches of one input schema.
pub struct CompiledRoute {
    /// The route as configured.
    pub route: Route,
    /// `stream/routes[i]`, for messages and the summary.
    pub label: String,
    /// External id field as the describe spells it.
    pub external_id: Option<String>,
    when: Option<Expression>,
    /// Fields in config order.
    pub fields: Vec<TargetField>,
}

/// The rows of a batch one route takes, with their values formatted for Salesforce.
pub struct Routed {
    /// Row numbers in the input batch.
    pub rows: Vec<usize>,
    /// One column per target field: Salesforce's text form, null for null.
    pub values: Vec<StringArray>,
    /// Per target field, which of `rows` left out a column it reads (see
    /// [`super::input::Absent`]); `None` when none did.
    pub absent: Vec<Option<Vec<bool>>>,
}

impl CompiledRoute {
    /// Plans `route` for batches of `input`; an unknown column or an incompatible type is a
    /// config error naming the route and the column.
    pub fn compile(
        stream: &str,
        index: usize,
        route: &Route,
        describe: &SObjectDescribe,
        input: &SchemaRef,
        planner: &Planner,
    ) -> Result<CompiledRoute, SinkError> {
        let op = route.operation.as_str();
        let label = format!("{stream}/routes[{index}] ({op} {})", describe.name);
        let at = format!("writeback.streams.{stream}.routes[{index}]");
        let plan = |what: &str, text: &str| {
            plan_expr(text, input, planner).map_err(|reason| SinkError::Route {
                at: format!("{at}.{what}"),
                reason,
            })
        };
        let when = route.when.as_deref().map(|text| {
            let (expr, _) = plan("when", text)?;
            let t = expr.data_type();
            if t != &DataType::Boolean && t != &DataType::Null {
                return Err(SinkError::Route {
                    at: format!("{at}.when"),
                    reason: format!(
                        "{text:?} gives {t}, not true/false; write a condition such as \"source_object = 'Lead'\""
                    ),
                });
            }
            Ok(expr)
        })
        .transpose()?;
        let mut fields = Vec::with_capacity(route.fields.len());
        for (name, text) in &route.fields {
            let f = describe.field(name).ok_or_else(|| SinkError::Route {
                at: format!("{at}.fields.{name}"),
                reason: format!("{} has no field {name:?}", describe.name),
            })?;
            let (expr, columns) = plan(&format!("fields.{name}"), text)?;
            let t = expr.data_type();
            if !compatible(t, &f.kind) {
                return Err(SinkError::Route {
                    at: format!("{at}.fields.{name}"),
                    reason: format!(
                        "{text:?} gives {t}, which cannot be written to the {} field {}.{}; convert it in the expression (e.g. CAST({text} AS VARCHAR))",
                        f.kind, describe.name, f.name
                    ),
                });
            }
            fields.push(TargetField {
                name: f.name.clone(),
                kind: f.kind.clone(),
                expr,
                columns,
            });
        }
        let external_id = match (route.operation, &route.external_id) {
            (Operation::Upsert, Some(ext)) => Some(
                describe
                    .field(ext)
                    .map(|f| f.name.clone())
                    .unwrap_or_else(|| ext.clone()),
            ),
            _ => None,
        };
        Ok(CompiledRoute {
            route: route.clone(),
            label,
            external_id,
            when,
            fields,
        })
    }

    /// The rows of `batch` this route takes among those not `taken` yet (marking them), with
    /// the field values; a value that cannot be formatted is a per-row reject.
    pub fn take(
        &self,
        batch: &RecordBatch,
        absent: &Absent,
        taken: &mut [bool],
    ) -> Result<Routed, SinkError> {
        let rows = batch.num_rows();
        let mask: Vec<bool> = match &self.when {
            Some(expr) => {
                let v = expr
                    .evaluate(batch)
                    .map_err(|e| self.eval_error("when", e))?;
                v.as_any()
                    .downcast_ref::<BooleanArray>()
                    .map(|b| (0..rows).map(|i| b.is_valid(i) && b.value(i)).collect())
                    .unwrap_or_else(|| vec![false; rows])
            }
            None => vec![true; rows],
        };
        let mut selected = Vec::new();
        for i in 0..rows {
            if mask[i] && !taken[i] {
                taken[i] = true;
                selected.push(i);
            }
        }
        if selected.is_empty() {
            return Ok(Routed {
                rows: selected,
                values: Vec::new(),
                absent: Vec::new(),
            });
        }
        let sub = if selected.len() == rows {
            batch.clone()
        } else {
            let mut keep = vec![false; rows];
            for &i in &selected {
                keep[i] = true;
            }
            let keep = BooleanArray::from(keep);
            filter_record_batch(batch, &keep).map_err(|e| self.eval_error("when", e.to_string()))?
        };
        let mut values = Vec::with_capacity(self.fields.len());
        for f in &self.fields {
            let array: ArrayRef = f
                .expr
                .evaluate(&sub)
                .map_err(|e| self.eval_error(&format!("fields.{}", f.name), e))?;
            values.push(
                format_column(&array, &f.kind)
                    .map_err(|e| self.eval_error(&format!("fields.{}", f.name), e))?,
            );
        }
        let absent = self
            .fields
            .iter()
            .map(|f| {
                let masks: Vec<&Vec<bool>> =
                    f.columns.iter().filter_map(|c| absent.0.get(c)).collect();
                (!masks.is_empty()).then(|| {
                    selected
                        .iter()
                        .map(|&r| masks.iter().any(|m| m[r]))
                        .collect()
                })
            })
            .collect();
        Ok(Routed {
            rows: selected,
            values,
            absent,
        })
    }

    fn eval_error(&self, what: &str, reason: String) -> SinkError {
        SinkError::Route {
            at: format!("{}: {what}", self.label),
            reason,
        }
    }
}

/// Plans one expression over `input`: column names are matched exactly, then ignoring case;
/// an unknown name is an error listing the columns there are. Also returns the columns it
/// reads.
fn plan_expr(
    text: &str,
    input: &SchemaRef,
    planner: &Planner,
) -> Result<(Expression, Vec<usize>), String> {
    let mut expr = parse(text)?;
    let mut columns = Vec::new();
    let rewritten = rewrite_names(&mut expr, |parts| {
        let name = parts.join(".");
        let found = find_column(input, &name).map(str::to_string);
        if let Some(i) = found.as_ref().and_then(|f| input.index_of(f).ok())
            && !columns.contains(&i)
        {
            columns.push(i);
        }
        found.ok_or_else(|| {
            let names: Vec<&str> = input.fields().iter().map(|f| f.name().as_str()).collect();
            format!(
                "column {name:?} is not in the incoming rows (columns: {}); add it to the stream's json_schema in the catalog, or fix the expression",
                names.join(", ")
            )
        })
    });
    if let ControlFlow::Break(e) = rewritten {
        return Err(e);
    }
    Ok((planner.plan(expr, input)?, columns))
}
