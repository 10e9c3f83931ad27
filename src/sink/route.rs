//! Routes compiled against the incoming rows' Arrow schema: the `when` condition and each
//! field's expression are parsed once with DataFusion's SQL parser and planned into physical
//! expressions, then evaluated per Arrow batch (as `mapping/` does for reads).

use std::ops::ControlFlow;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::execution::session_state::SessionState;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, ExprWithAlias, Ident, visit_expressions_mut,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;

use super::SinkError;
use super::config::{Operation, Route};
use super::format::{compatible, format_column};
use crate::catalog::SObjectDescribe;

/// Parses one SQL expression (DataFusion's generic dialect), refusing trailing text.
pub fn parse_sql(text: &str) -> Result<SqlExpr, String> {
    let dialect = GenericDialect {};
    let mut parser = Parser::new(&dialect)
        .try_with_sql(text)
        .map_err(|e| e.to_string())?;
    let expr = parser.parse_expr().map_err(|e| e.to_string())?;
    let next = parser.peek_token();
    if next.token != Token::EOF {
        return Err(format!("unexpected {} after the expression", next.token));
    }
    Ok(expr)
}

/// One target field of a compiled route.
pub struct TargetField {
    /// Field API name as the describe spells it.
    pub name: String,
    /// Salesforce field type (`double`, `date`, ...), for formatting values.
    pub kind: String,
    expr: Arc<dyn PhysicalExpr>,
}

/// A route ready to evaluate on batches of one input schema.
pub struct CompiledRoute {
    /// The route as configured.
    pub route: Route,
    /// `stream/routes[i]`, for messages and the summary.
    pub label: String,
    /// External id field as the describe spells it.
    pub external_id: Option<String>,
    when: Option<Arc<dyn PhysicalExpr>>,
    /// Fields in config order.
    pub fields: Vec<TargetField>,
}

/// The rows of a batch one route takes, with their values formatted for Salesforce.
pub struct Routed {
    /// Row numbers in the input batch.
    pub rows: Vec<usize>,
    /// One column per target field: Salesforce's text form, null for null.
    pub values: Vec<StringArray>,
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
        state: &SessionState,
    ) -> Result<CompiledRoute, SinkError> {
        let label = format!(
            "{stream}/routes[{index}] ({} {})",
            route.operation.as_str(),
            describe.name
        );
        let at = format!("writeback.streams.{stream}.routes[{index}]");
        let plan =
            |what: &str, text: &str| -> Result<(Arc<dyn PhysicalExpr>, DataType), SinkError> {
                plan_expr(text, input, state).map_err(|reason| SinkError::Route {
                    at: format!("{at}.{what}"),
                    reason,
                })
            };
        let when = match &route.when {
            Some(text) => {
                let (expr, t) = plan("when", text)?;
                if t != DataType::Boolean && t != DataType::Null {
                    return Err(SinkError::Route {
                        at: format!("{at}.when"),
                        reason: format!(
                            "{text:?} gives {t}, not true/false; write a condition such as \"source_object = 'Lead'\""
                        ),
                    });
                }
                Some(expr)
            }
            None => None,
        };
        let mut fields = Vec::with_capacity(route.fields.len());
        for (name, text) in &route.fields {
            let f = describe
                .fields
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case(name))
                .ok_or_else(|| SinkError::Route {
                    at: format!("{at}.fields.{name}"),
                    reason: format!("{} has no field {name:?}", describe.name),
                })?;
            let (expr, t) = plan(&format!("fields.{name}"), text)?;
            if !compatible(&t, &f.kind) {
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
            });
        }
        let external_id = match (route.operation, &route.external_id) {
            (Operation::Upsert, Some(ext)) => Some(
                describe
                    .fields
                    .iter()
                    .find(|f| f.name.eq_ignore_ascii_case(ext))
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
    pub fn take(&self, batch: &RecordBatch, taken: &mut [bool]) -> Result<Routed, SinkError> {
        let rows = batch.num_rows();
        let mask: Vec<bool> = match &self.when {
            Some(expr) => {
                let v = expr
                    .evaluate(batch)
                    .and_then(|v| v.into_array(rows))
                    .map_err(|e| self.eval_error("when", e.strip_backtrace()))?;
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
                .and_then(|v| v.into_array(sub.num_rows()))
                .map_err(|e| self.eval_error(&format!("fields.{}", f.name), e.strip_backtrace()))?;
            values.push(
                format_column(&array, &f.kind)
                    .map_err(|e| self.eval_error(&format!("fields.{}", f.name), e))?,
            );
        }
        Ok(Routed {
            rows: selected,
            values,
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
/// an unknown name is an error listing the columns there are.
fn plan_expr(
    text: &str,
    input: &SchemaRef,
    state: &SessionState,
) -> Result<(Arc<dyn PhysicalExpr>, DataType), String> {
    let mut expr = parse_sql(text)?;
    let names: Vec<String> = input.fields().iter().map(|f| f.name().clone()).collect();
    let rewritten = visit_expressions_mut(&mut expr, |e| {
        let name = match e {
            SqlExpr::Identifier(i) => i.value.clone(),
            SqlExpr::CompoundIdentifier(ids) => ids
                .iter()
                .map(|i| i.value.as_str())
                .collect::<Vec<_>>()
                .join("."),
            _ => return ControlFlow::Continue(()),
        };
        let found = names
            .iter()
            .find(|n| **n == name)
            .or_else(|| names.iter().find(|n| n.eq_ignore_ascii_case(&name)));
        match found {
            Some(n) => {
                *e = SqlExpr::Identifier(Ident::with_quote('"', n.clone()));
                ControlFlow::Continue(())
            }
            None => ControlFlow::Break(format!(
                "column {name:?} is not in the incoming rows (columns: {}); add it to the stream's json_schema in the catalog, or fix the expression",
                names.join(", ")
            )),
        }
    });
    if let ControlFlow::Break(e) = rewritten {
        return Err(e);
    }
    let schema: &Schema = input;
    let dfschema = DFSchema::try_from(schema.clone()).map_err(|e| e.strip_backtrace())?;
    let logical = state
        .create_logical_expr_from_sql_expr(ExprWithAlias { expr, alias: None }, &dfschema)
        .map_err(|e| e.strip_backtrace())?;
    let physical = state
        .create_physical_expr(logical, &dfschema)
        .map_err(|e| e.strip_backtrace())?;
    let data_type = physical
        .data_type(schema)
        .map_err(|e| e.strip_backtrace())?;
    Ok((physical, data_type))
}
