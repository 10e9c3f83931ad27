//! The latest view of a stream as a table of its own, so that a filter on the key reaches the
//! Parquet scan below the view's window.
//!
//! The view ([`super::tables::latest_sql`]) sorts every version of every row and keeps the
//! first of each key. As a plain SQL view, DataFusion cannot move `WHERE "Id" = '001…'` below
//! the window (a window's rows depend on their neighbours), so a point lookup read and sorted
//! the whole stream: 1.4 s for one Id of 1M. Yet a filter on the key alone keeps or drops
//! every version of a key together, so applied to the history first it leaves the surviving
//! keys' versions, and the first of each, as they were. [`LatestView`] takes such filters
//! (pure expressions of the key columns) and writes them into the view's source; any other
//! filter stays above the view, as before.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DataFusionError, Result};
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::sql::unparser::expr_to_sql;

/// How a stream's latest view is written as SQL, given the filters on its key.
pub(super) type ViewSql = Box<dyn Fn(&[String]) -> String + Send + Sync>;

/// A stream's latest view, planned afresh for each query with the query's key filters
/// written into its source.
pub(super) struct LatestView {
    /// The view's columns (those of the view without filters).
    schema: SchemaRef,
    /// Key columns; empty: the view keeps whole syncs, and no filter is taken.
    key: Vec<String>,
    /// The view's SQL for the given key filters (SQL predicates over the history's columns).
    sql: ViewSql,
}

impl std::fmt::Debug for LatestView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatestView")
            .field("key", &self.key)
            .finish()
    }
}

impl LatestView {
    /// The view whose SQL `sql` writes, over `key`, with the columns of `schema`.
    pub(super) fn new(schema: SchemaRef, key: Vec<String>, sql: ViewSql) -> LatestView {
        LatestView { schema, key, sql }
    }

    /// `filter` as SQL over the history's columns, when it reads nothing but key columns and
    /// gives the same answer each time (no `random()`); else None, and it stays above the view.
    fn key_filter(&self, filter: &Expr) -> Option<String> {
        if self.key.is_empty() || filter.is_volatile() {
            return None;
        }
        let columns = filter.column_refs();
        if columns.is_empty() || !columns.iter().all(|c| self.key.contains(&c.name)) {
            return None;
        }
        // The query names the view (`"Account"."Id"`); below it the column is the history's.
        let bare = filter
            .clone()
            .transform(|e| match e {
                Expr::Column(c) if c.relation.is_some() => Ok(Transformed::yes(Expr::Column(
                    Column::new_unqualified(c.name),
                ))),
                e => Ok(Transformed::no(e)),
            })
            .ok()?
            .data;
        expr_to_sql(&bare).ok().map(|sql| sql.to_string())
    }
}

#[async_trait]
impl TableProvider for LatestView {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| match self.key_filter(f) {
                Some(_) => TableProviderFilterPushDown::Exact,
                None => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // Only the filters `supports_filters_pushdown` took as exact arrive here.
        let filters = filters
            .iter()
            .map(|f| {
                self.key_filter(f).ok_or_else(|| {
                    DataFusionError::Internal(format!("a filter the latest view cannot take: {f}"))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let session = state
            .as_any()
            .downcast_ref::<SessionState>()
            .ok_or_else(|| DataFusionError::Internal("not a DataFusion session".into()))?;
        let plan = session.create_logical_plan(&(self.sql)(&filters)).await?;
        let mut plan = LogicalPlanBuilder::from(plan);
        if let Some(projection) = projection
            && !projection.iter().copied().eq(0..self.schema.fields().len())
        {
            let schema = plan.schema().clone();
            let columns = projection
                .iter()
                .map(|&i| Expr::Column(Column::from(schema.qualified_field(i))))
                .collect::<Vec<_>>();
            plan = plan.project(columns)?;
        }
        if let Some(limit) = limit {
            plan = plan.limit(0, Some(limit))?;
        }
        state.create_physical_plan(&plan.build()?).await
    }
}
