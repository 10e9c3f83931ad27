//! The STATE in the table: every sfetl commit carries a transaction identifier (`txn` action:
//! app id = the stream, version = one more per commit) and, in its commit info, the STATE it
//! makes true. Delta keeps the newest `txn` version of each app id in the table's state, and
//! its conflict check refuses two concurrent commits of one app id, so the table alone says
//! where the next read of a stream starts.

use deltalake::DeltaTable;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use futures::TryStreamExt;
use serde_json::Value;

use super::DeltaError;
use super::table::TableTarget;

/// Commit-info key of the app id.
pub const INFO_APP: &str = "sfetl.app_id";
/// Commit-info key of the `txn` version.
pub const INFO_TXN: &str = "sfetl.txn";
/// Commit-info key of the STATE.
pub const INFO_STATE: &str = "sfetl.state";

/// What one commit records besides its rows.
#[derive(Debug, Clone)]
pub struct CommitTag {
    /// The `txn` app id.
    pub app_id: String,
    /// The `txn` version.
    pub version: i64,
    /// The stream's STATE after this commit.
    pub state: Value,
}

impl CommitTag {
    /// deltalake's commit properties carrying this tag.
    pub fn properties(&self) -> CommitProperties {
        CommitProperties::default()
            .with_application_transaction(Transaction::new(&self.app_id, self.version))
            .with_metadata([
                (INFO_APP.to_string(), Value::from(self.app_id.clone())),
                (INFO_TXN.to_string(), Value::from(self.version)),
                (INFO_STATE.to_string(), self.state.clone()),
            ])
    }
}

/// A STATE found in a table.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed {
    /// The app id it was committed under.
    pub app_id: String,
    /// Its `txn` version.
    pub txn: i64,
    /// The STATE, with `table` naming this commit.
    pub state: Value,
}

/// The newest `txn` version of `app_id` in `table` (0 when it has none).
pub async fn txn_version(
    target: &TableTarget,
    table: &DeltaTable,
    app_id: &str,
) -> Result<i64, DeltaError> {
    let snapshot = table.snapshot().map_err(|e| target.error(e))?;
    let v = snapshot
        .transaction_version(table.log_store().as_ref(), app_id)
        .await
        .map_err(|e| target.error(e))?;
    Ok(v.unwrap_or(0))
}

/// The STATE of `app_id`'s newest commit, found in the commit infos, newest first (compaction
/// copies it forward, so it is never far back).
pub async fn committed(
    target: &TableTarget,
    table: &DeltaTable,
    app_id: &str,
) -> Result<Option<Committed>, DeltaError> {
    let txn = txn_version(target, table, app_id).await?;
    if txn == 0 {
        return Ok(None);
    }
    for limit in [Some(20), None] {
        let infos: Vec<_> = table
            .history(limit)
            .try_collect()
            .await
            .map_err(|e| target.error(e))?;
        for info in infos {
            let i = &info.info;
            if i.get(INFO_APP).and_then(Value::as_str) == Some(app_id)
                && i.get(INFO_TXN).and_then(Value::as_i64) == Some(txn)
                && let Some(state) = i.get(INFO_STATE)
            {
                let mut state = state.clone();
                if let Some(o) = state.as_object_mut() {
                    o.insert(
                        "table".into(),
                        serde_json::json!({"app_id": app_id, "txn": txn}),
                    );
                }
                return Ok(Some(Committed {
                    app_id: app_id.to_string(),
                    txn,
                    state,
                }));
            }
        }
    }
    Err(target.error(format!(
        "its transaction log says {app_id} committed version {txn}, but no commit info holds that commit's STATE (was the log cleaned up?); pass --state with the last STATE sfetl printed, or run a full refresh"
    )))
}

/// Commit properties that copy the table's last STATE (of the stream that owns it) into a
/// commit that is not the stream's own (compaction, a formula refresh), so the STATE stays
/// among the newest commits, where a resume finds it without reading the whole history.
pub async fn carried_forward(
    target: &TableTarget,
    table: &DeltaTable,
) -> Result<CommitProperties, DeltaError> {
    let props = CommitProperties::default();
    let Some((stream, _)) = super::table::owner(table) else {
        return Ok(props);
    };
    let Some(state) = committed(target, table, &stream).await? else {
        return Ok(props);
    };
    Ok(props.with_metadata([
        (INFO_APP.to_string(), Value::from(state.app_id)),
        (INFO_TXN.to_string(), Value::from(state.txn)),
        (INFO_STATE.to_string(), state.state),
    ]))
}
