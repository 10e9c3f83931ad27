//! SQL expressions over an Arrow schema, the one implementation behind the read path's field
//! mapping (`mapping/`) and write-back routes (`sink/route.rs`).
//!
//! An expression goes through four steps:
//! 1. [`parse`]: DataFusion's SQL parser (generic dialect) reads exactly one expression;
//! 2. [`rewrite_names`]: every column it names is replaced by the batch column the caller
//!    resolves it to (a mapping resolves `Account.Name` against describes, a route looks the
//!    name up among the incoming columns with [`find_column`]);
//! 3. [`Planner::plan`]: the expression is type-checked and planned against a schema into an
//!    [`Expression`] that knows its result type;
//! 4. [`Expression::evaluate`]: a handful of Arrow kernels per batch, nothing per row.
//!
//! Callers own the meaning of names and the wording of errors: this module returns the
//! parser's and DataFusion's own messages (without backtraces) for them to place.

use std::ops::ControlFlow;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Schema};
use datafusion::common::DFSchema;
use datafusion::execution::session_state::SessionState;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, ExprWithAlias, Ident, visit_expressions_mut,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;

/// A parsed SQL expression (DataFusion's sqlparser AST), before planning.
pub type SqlExpression = SqlExpr;

/// Parses one SQL expression (DataFusion's generic dialect), refusing trailing text, so a
/// config is checked without an org or a schema.
pub fn parse(text: &str) -> Result<SqlExpression, String> {
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

/// Replaces every column name in `expr` (`Email`, `Account.Name`, `"BillingAddress.country"`)
/// by a quoted identifier naming the batch column `resolve` returns. `resolve` gets the name's
/// parts split on dots (`["Account", "Name"]`); its first error stops the walk and is returned
/// as `ControlFlow::Break`.
pub fn rewrite_names<E>(
    expr: &mut SqlExpression,
    mut resolve: impl FnMut(&[String]) -> Result<String, E>,
) -> ControlFlow<E> {
    visit_expressions_mut(expr, |e| {
        let idents: Vec<&Ident> = match e {
            SqlExpr::Identifier(i) => vec![i],
            SqlExpr::CompoundIdentifier(ids) => ids.iter().collect(),
            _ => return ControlFlow::Continue(()),
        };
        let parts: Vec<String> = idents
            .iter()
            .flat_map(|i| i.value.split('.'))
            .map(str::to_string)
            .collect();
        match resolve(&parts) {
            Ok(column) => {
                *e = SqlExpr::Identifier(Ident::with_quote('"', column));
                ControlFlow::Continue(())
            }
            Err(err) => ControlFlow::Break(err),
        }
    })
}

/// Whether `expr` is a bare column reference to `name` (after [`rewrite_names`] or as
/// written), e.g. a mapping column that is just `Id`.
pub fn is_column(expr: &SqlExpression, name: &str) -> bool {
    matches!(expr, SqlExpr::Identifier(i) if i.value == name)
}

/// The column of `schema` that `name` means: the one spelled exactly so, else the first equal
/// to it ignoring ASCII case (users write `score` for a `Score` column).
pub fn find_column<'a>(schema: &'a Schema, name: &str) -> Option<&'a str> {
    let names = schema.fields().iter().map(|f| f.name().as_str());
    names
        .clone()
        .find(|n| *n == name)
        .or_else(|| names.clone().find(|n| n.eq_ignore_ascii_case(name)))
}

/// Plans expressions: a DataFusion session's function registry and planner, built once per
/// mapping or write run (building one registers every function, so it is not per expression).
pub struct Planner {
    state: SessionState,
}

impl Default for Planner {
    fn default() -> Self {
        Planner::new()
    }
}

impl std::fmt::Debug for Planner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Planner")
    }
}

impl Planner {
    /// A planner with DataFusion's default functions.
    pub fn new() -> Planner {
        Planner {
            state: SessionContext::new().state(),
        }
    }

    /// Type-checks and plans `expr` (its names already rewritten to columns of `schema`) for
    /// batches of `schema`; the error is DataFusion's message (an unknown column, a function
    /// that does not take these types, ...).
    pub fn plan(&self, expr: SqlExpression, schema: &Schema) -> Result<Expression, String> {
        let dfschema = DFSchema::try_from(schema.clone()).map_err(|e| e.strip_backtrace())?;
        let logical = self
            .state
            .create_logical_expr_from_sql_expr(ExprWithAlias { expr, alias: None }, &dfschema)
            .map_err(|e| e.strip_backtrace())?;
        let physical = self
            .state
            .create_physical_expr(logical, &dfschema)
            .map_err(|e| e.strip_backtrace())?;
        let data_type = physical
            .data_type(schema)
            .map_err(|e| e.strip_backtrace())?;
        Ok(Expression {
            physical,
            data_type,
        })
    }
}

/// A planned expression: evaluates on batches of the schema it was planned for.
#[derive(Clone)]
pub struct Expression {
    physical: Arc<dyn PhysicalExpr>,
    data_type: DataType,
}

impl std::fmt::Debug for Expression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Expression({} -> {})", self.physical, self.data_type)
    }
}

impl Expression {
    /// The Arrow type of its values, known after planning.
    pub fn data_type(&self) -> &DataType {
        &self.data_type
    }

    /// Its values on `batch`, one per row (a constant is expanded to the batch's length); the
    /// error is DataFusion's message (a failing cast, a division by zero, ...).
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<ArrayRef, String> {
        self.physical
            .evaluate(batch)
            .and_then(|v| v.into_array(batch.num_rows()))
            .map_err(|e| e.strip_backtrace())
    }
}

#[cfg(test)]
mod tests;
