//! Delta output keeps each stream's STATE in its table, committed with the rows it covers. A
//! read given no state for a stream resumes from the table; a given STATE that the table has
//! moved past (a replay of checkpoints already committed) is superseded by the table's, so
//! they are not read and merged again.

use serde_json::Value;

use super::{Ctx, FetchError};
use crate::output::Destination;
use crate::protocol::{ConfiguredAirbyteStream, LogLevel, SyncMode};

/// The saved state to plan `cs` from: the one given, or the table's when it is newer.
pub(super) async fn saved_state(
    ctx: &Ctx,
    cs: &ConfiguredAirbyteStream,
    given: Option<&Value>,
) -> Result<Option<Value>, FetchError> {
    let Destination::Delta(delta) = &ctx.destination else {
        return Ok(given.cloned());
    };
    // A slice reads its own window, whatever the table holds.
    if cs.sync_mode != SyncMode::Incremental || ctx.opts.slice.is_some() {
        return Ok(given.cloned());
    }
    let name = cs.stream.name.as_str();
    let Some(committed) = delta.committed_state(name).await? else {
        return Ok(given.cloned());
    };
    let given_txn = given
        .and_then(|v| v.get("table"))
        .filter(|t| t.get("app_id").and_then(Value::as_str) == Some(&committed.app_id))
        .and_then(|t| t.get("txn"))
        .and_then(Value::as_i64);
    let text = match (given, given_txn) {
        (None, _) => format!(
            "{name}: no state given; resuming from the STATE committed in its Delta table ({}, commit {} of {})",
            delta.table_display(name),
            committed.txn,
            committed.app_id
        ),
        (Some(g), Some(t)) if t < committed.txn && !same_state(g, &committed.state) => format!(
            "{name}: the given STATE names commit {t} of {}, but the Delta table already holds commit {}: resuming from the table's STATE (the commits in between are not made again)",
            committed.app_id, committed.txn
        ),
        _ => return Ok(given.cloned()),
    };
    ctx.log(LogLevel::Info, text).await;
    Ok(Some(committed.state))
}

/// Whether two STATE blobs say the same thing, leaving out which commit recorded them (the
/// last checkpoint of a run without rows is committed after its STATE was printed).
fn same_state(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("table");
        }
        v
    };
    strip(a) == strip(b)
}
