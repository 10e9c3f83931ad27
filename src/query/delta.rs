//! Delta tables of an export as SQL tables: each table under its folder name (and a
//! lower-case alias), read through deltalake's DataFusion provider at its newest version.
//!
//! A stream's table already holds its current rows (MERGE removed old versions and deleted
//! rows), so no deduplication is needed; `<stream>_history`, when written, is its own table.

use std::collections::BTreeMap;

use datafusion::prelude::SessionContext;

use super::QueryError;
use super::export::Export;
use crate::output::delta::table::TableTarget;

/// Registers every Delta table in `names` (a folder without a table is skipped).
pub(super) async fn register(
    ctx: &SessionContext,
    export: &Export,
    names: &[String],
) -> Result<(), QueryError> {
    if names.is_empty() {
        return Ok(());
    }
    let read = |path: &str, e: &dyn std::fmt::Display| QueryError::Read {
        path: path.to_string(),
        reason: e.to_string(),
    };
    let location = crate::output::open_location(&export.display, &BTreeMap::new())
        .map_err(|e| read(&export.display, &e))?;
    for name in names {
        let target = TableTarget::new(&location, name).map_err(|e| read(name, &e))?;
        let Some(table) = target.open().await.map_err(|e| read(&target.display, &e))? else {
            continue;
        };
        table
            .update_datafusion_session(&ctx.state())
            .map_err(|e| read(&target.display, &e))?;
        let provider = table
            .table_provider()
            .await
            .map_err(|e| read(&target.display, &e))?;
        super::tables::register_named(ctx, name, provider)
            .map_err(|e| read(&target.display, &e))?;
    }
    Ok(())
}
