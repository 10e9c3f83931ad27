//! Lookups cleared by a parent's deletion. Deleting a record clears every lookup pointing at
//! it whose relationship neither cascades nor restricts the delete (Account.ParentId,
//! Contact.ReportsToId, custom lookups: the field's default "Clear the value of this field"),
//! and undeleting it puts them back; nothing documented says the child's `SystemModstamp`
//! moves either way, so a cursor never sees the change and the export keeps pointing at a
//! deleted parent (or, after the undelete, keeps the null).
//!
//! Before an incremental read's own windows, for each selected reference field whose
//! relationship clears on delete (the parent's describe `childRelationships`), sfetl asks the
//! parent's `deleted` endpoint once, from 14 days back (the delete log's usual reach, so one
//! call serves) to the read's upper bound. Parents deleted since the object's saved cursor
//! were just cleared; parents deleted before it that are live again with a `SystemModstamp`
//! since the cursor were just undeleted (one query of the rows changed since, when more than
//! 300 older deletions would take several queries of 300 Ids and fewer than 2,000 rows
//! changed; else one query per 300 of those older deletions). The
//! export is asked which rows of the stream ever pointed at them (its `<stream>_history`, or
//! the stream's table without history), the org which rows point at them now (one REST query
//! of Ids per 300 parents: a Delta history corrects a version read again in place, so only
//! the org still knows whom an undelete restored), and those rows are read again by Id, 300
//! per query: same cursor, later extraction, so the latest view and a Delta MERGE take them.
//! They are committed with the windows' first checkpoint, the first STATE whose cursor can
//! pass the deletion: a run stopped before it leaves the saved cursor, and so the span, as
//! they were. Only for unmapped streams written to Parquet or Delta.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use arrow::array::AsArray;
use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;

use super::FetchError;
use super::fetch::ObjectReader;
use crate::catalog::SObjectDescribe;
use crate::output::StreamWriter;
use crate::protocol::LogLevel;
use crate::salesforce::{SalesforceError, describe, replication};
use crate::source::soql;
use crate::state::parse_datetime;

/// Ids per query (`Id IN (...)`, about 8 KB of SOQL or SQL).
const IDS_PER_QUERY: usize = 300;

/// How far back the `deleted` call reaches: within the delete log's usual 15 days, so that the
/// call is not refused for starting before `earliestDateAvailable`.
const LOG_REACH: Duration = Duration::days(14);

/// Longest range the `deleted` endpoint accepts, less its shortest (one minute).
const MAX_RANGE: Duration = Duration::minutes(30 * 24 * 60 - 1);

/// Taken off the span's lower bound: the `deleted` endpoint covers whole minutes.
const SPAN_MARGIN: Duration = Duration::minutes(2);

/// A parent object whose deletions clear lookups of the stream's object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Target {
    /// The parent object.
    pub(super) object: String,
    /// The selected reference fields pointing at it whose relationship clears on delete.
    pub(super) fields: Vec<String>,
}

/// The parents the selected reference fields of `describe` point at (a polymorphic field at
/// several), each with its fields.
pub(super) fn parent_objects(
    describe: &SObjectDescribe,
    selected: &[String],
) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for name in selected {
        let Some(f) = describe.field(name) else {
            continue;
        };
        if f.kind != "reference" || f.calculated {
            continue;
        }
        for p in &f.reference_to {
            out.entry(p.clone()).or_default().push(f.name.clone());
        }
    }
    out
}

/// The parents of `parents` (object -> fields) whose deletion clears the lookup: a parent that
/// can be deleted and replicated (its `deleted` endpoint), whose describe lists the child's
/// field with neither `cascadeDelete` nor `restrictedDelete`.
pub(super) fn clearing_targets(
    child: &str,
    parents: &BTreeMap<String, Vec<String>>,
    describes: &HashMap<String, SObjectDescribe>,
) -> Vec<Target> {
    let mut out = Vec::new();
    for (object, fields) in parents {
        let Some(d) = describes.get(object) else {
            continue;
        };
        if !d.deletable || !d.replicateable {
            continue;
        }
        let clears = |field: &String| {
            d.child_relationships.iter().any(|r| {
                r.child_s_object.eq_ignore_ascii_case(child)
                    && r.field.eq_ignore_ascii_case(field)
                    && !r.cascade_delete
                    && !r.restricted_delete
            })
        };
        let fields: Vec<String> = fields.iter().filter(|f| clears(f)).cloned().collect();
        if !fields.is_empty() {
            out.push(Target {
                object: object.clone(),
                fields,
            });
        }
    }
    out
}

impl ObjectReader<'_> {
    /// Before the windows of an incremental read: reads again the rows whose lookup a parent's
    /// deletion cleared (or its undelete restored) since the saved cursor; `upper` is the
    /// read's upper bound. Returns the rows read, which the windows' checkpoints commit.
    pub(super) async fn lookups_cleared(
        &mut self,
        writer: &mut dyn StreamWriter,
        upper: DateTime<Utc>,
    ) -> Result<u64, FetchError> {
        let Some((path, lower)) = self.lookups_apply() else {
            return Ok(0);
        };
        let mut total = 0;
        for target in self.clearing_targets().await {
            self.ctx.check_stop()?;
            total += self
                .lookups_of(&target, &path, lower, upper, writer)
                .await?;
        }
        Ok(total)
    }

    /// Where the export lies and where the span of this read starts, when cleared lookups can
    /// be followed: an incremental read of an unmapped stream with a saved cursor, written to
    /// an export sfetl can query. Says why not at DEBUG otherwise.
    fn lookups_apply(&self) -> Option<(String, DateTime<Utc>)> {
        let name = &self.plan.name;
        if !self.plan.incremental || self.skipped {
            return None;
        }
        let Some(saved) = self.object.saved_at else {
            tracing::debug!("{name}: a first read; no cleared lookups to follow");
            return None;
        };
        if self.plan.mapped {
            tracing::debug!("{name}: a mapped stream; cleared lookups are not followed");
            return None;
        }
        let Some(location) = self.ctx.destination.export_location() else {
            tracing::debug!(
                "{name}: RECORDs output, no export to ask; cleared lookups are not followed"
            );
            return None;
        };
        let lower = self.ctx.config.lookback_window.sub_from(saved) - SPAN_MARGIN;
        Some((location.display.clone(), lower))
    }

    /// The parents of the selected reference fields whose deletion clears them (their
    /// describes come from the run's memo, fetched once otherwise); none when a describe fails.
    async fn clearing_targets(&self) -> Vec<Target> {
        let client = &self.ctx.client;
        let object = &self.object.object;
        let own = match describe::describe(client, object).await {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!("{object}: no describe, cleared lookups not followed: {e}");
                return Vec::new();
            }
        };
        let parents = parent_objects(&own, &self.object.rest.select);
        let mut describes = HashMap::new();
        for (name, d) in describe::describe_many(client, parents.keys().cloned().collect()).await {
            match d {
                Ok(d) => {
                    describes.insert(name, d);
                }
                Err(e) => tracing::debug!("{object}: {name} not described ({e}): not followed"),
            }
        }
        let targets = clearing_targets(object, &parents, &describes);
        if targets.is_empty() {
            tracing::debug!("{object}: no selected lookup is cleared by a deletion");
        }
        targets
    }

    /// The rows of the stream whose lookup to `target` a deletion in `[lower, upper]` cleared,
    /// or an undelete since `lower` restored, read again; returns how many.
    async fn lookups_of(
        &mut self,
        target: &Target,
        path: &str,
        lower: DateTime<Utc>,
        upper: DateTime<Utc>,
        writer: &mut dyn StreamWriter,
    ) -> Result<u64, FetchError> {
        let Some((gone, older)) = self.parent_deletions(&target.object, lower, upper).await? else {
            return Ok(0);
        };
        // Deleted before the span and live again since: undeleted (none if refused).
        let back = self.live_since(&target.object, &older, Some(lower)).await?;
        let back: Vec<String> = back.unwrap_or_default().into_iter().collect();
        if gone.is_empty() && back.is_empty() {
            return Ok(0);
        }
        let parents: BTreeSet<String> = gone.iter().chain(&back).cloned().collect();
        let stream = &self.plan.name;
        // The rows that pointed at them (cleared since), from the export, and the rows that
        // point at them now (restored), from the org: a Delta history corrects a version read
        // again in place, so it forgets the value a deletion cleared.
        let mut children = match export_children(path, stream, &target.fields, &parents).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(
                    "{stream}: the export cannot say which rows pointed at the deleted {}: {e}",
                    target.object
                );
                BTreeSet::new()
            }
        };
        children.extend(self.org_children(&target.fields, &parents).await?);
        let ids: Vec<String> = children.into_iter().collect();
        let mut read = 0;
        for chunk in ids.chunks(IDS_PER_QUERY) {
            self.ctx.check_stop()?;
            self.check_quota().await?;
            read += self.read_by_id(chunk, writer).await?;
        }
        let text = format!(
            "{}: {read} rows read again by Id ({} {}) because their {} pointed at one of {} {} deleted and {} undeleted since {}",
            self.who(),
            ids.len().div_ceil(IDS_PER_QUERY),
            if ids.len() <= IDS_PER_QUERY {
                "query"
            } else {
                "queries"
            },
            target.fields.join(", "),
            gone.len(),
            target.object,
            back.len(),
            soql::datetime_literal(lower),
        );
        self.ctx.log(LogLevel::Info, text).await;
        Ok(read)
    }

    /// The Ids of `object` its delete log holds up to `upper`: those deleted since `lower`,
    /// and those deleted before. One call, from [`LOG_REACH`] back (or `lower`, if earlier);
    /// when the log starts later, a probe of the last minute learns where and the call is
    /// asked again from there. None when the endpoint refuses the object.
    async fn parent_deletions(
        &self,
        object: &str,
        lower: DateTime<Utc>,
        upper: DateTime<Utc>,
    ) -> Result<Option<(Vec<String>, Vec<String>)>, FetchError> {
        let client = &self.ctx.client;
        let start = lower.min(upper - LOG_REACH).max(upper - MAX_RANGE);
        let answer = match replication::deleted(client, object, start, upper).await {
            Err(SalesforceError::Api { code, .. }) if code == "INVALID_REPLICATION_DATE" => {
                let minute = Duration::minutes(1);
                let probe = replication::deleted(client, object, upper - minute, upper).await;
                let from = probe
                    .ok()
                    .and_then(|a| a.earliest_date_available)
                    .and_then(|d| parse_datetime(&d));
                match from {
                    Some(from) if upper - from >= minute => {
                        replication::deleted(client, object, from, upper).await
                    }
                    _ => return Ok(None),
                }
            }
            other => other,
        };
        let answer = match answer {
            Ok(a) => a,
            Err(e @ SalesforceError::Api { .. }) => {
                tracing::debug!("{object}: no deletions to follow cleared lookups: {e}");
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        let (gone, older) = answer
            .deleted_records
            .into_iter()
            .partition(|r| parse_datetime(&r.deleted_date).is_none_or(|at| at >= lower));
        let ids = |v: Vec<replication::DeletedRecord>| v.into_iter().map(|r| r.id).collect();
        Ok(Some((ids(gone), ids(older))))
    }

    /// The Ids of the live rows of the object whose `fields` hold one of `parents` now: one
    /// REST query per [`IDS_PER_QUERY`] parents (none when Salesforce refuses it).
    async fn org_children(
        &self,
        fields: &[String],
        parents: &BTreeSet<String>,
    ) -> Result<Vec<String>, FetchError> {
        let list: Vec<String> = parents.iter().cloned().collect();
        let mut ids = Vec::new();
        for chunk in list.chunks(IDS_PER_QUERY) {
            let filter = any_in(fields, chunk, |f| f.to_string());
            let soql = format!("SELECT Id FROM {} WHERE {}", self.object.object, filter);
            ids.extend(self.ids_of(&soql).await?);
        }
        Ok(ids)
    }

    /// The Ids a REST query of live rows answers; none when Salesforce refuses it.
    async fn ids_of(&self, soql: &str) -> Result<Vec<String>, FetchError> {
        Ok(self.live_ids(soql).await?.unwrap_or_default())
    }

    /// Reads the rows `ids` of the object again, with its fields, into the stream's writer.
    async fn read_by_id(
        &mut self,
        ids: &[String],
        writer: &mut dyn StreamWriter,
    ) -> Result<u64, FetchError> {
        let filter = format!("Id IN ({})", soql::id_list(ids));
        let soql_where = soql::and_where(self.object.soql_where.as_deref(), &filter);
        let derived = self.derived(Some(soql_where));
        self.read_derived(&derived, writer).await
    }
}

/// `f IN ('a','b') OR g IN ('a','b')`: one of `fields` (each written by `name`: as it is in
/// SOQL, quoted in the export's SQL) holds one of `ids`.
fn any_in(fields: &[String], ids: &[String], name: impl Fn(&str) -> String) -> String {
    let values = soql::id_list(ids);
    let each: Vec<String> = fields
        .iter()
        .map(|f| format!("{} IN ({values})", name(f)))
        .collect();
    each.join(" OR ")
}

/// The Ids of the rows of `stream` in the export at `path` that ever held one of `parents` in
/// one of `fields`: from `<stream>_history` (every version), or the stream's own table when
/// there is no history (a Delta table written without it: its current rows only).
async fn export_children(
    path: &str,
    stream: &str,
    fields: &[String],
    parents: &BTreeSet<String>,
) -> Result<BTreeSet<String>, String> {
    let ident = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
    let list: Vec<String> = parents.iter().cloned().collect();
    let mut out = BTreeSet::new();
    for chunk in list.chunks(IDS_PER_QUERY) {
        let filter = any_in(fields, chunk, ident);
        let history = format!("{stream}_history");
        let sql = |table: &str| {
            format!(
                "SELECT DISTINCT \"Id\" FROM {} WHERE {filter}",
                ident(table)
            )
        };
        match ids_where(path, stream, &sql(&history)).await {
            Ok(ids) => out.extend(ids),
            Err(e) => {
                tracing::debug!("{history}: {e}; asking {stream}");
                out.extend(ids_where(path, stream, &sql(stream)).await?);
            }
        }
    }
    Ok(out)
}

/// The values of the one-column query `sql` over `stream`'s tables in the export at `path`.
async fn ids_where(path: &str, stream: &str, sql: &str) -> Result<Vec<String>, String> {
    let mut batches = crate::query::sql_stream(path, stream, sql, None)
        .await
        .map_err(|e| e.to_string())?;
    let mut ids = Vec::new();
    while let Some(b) = batches.next().await {
        let b = b.map_err(|e| e.to_string())?;
        // A Delta table's text may come as string views: cast to plain strings.
        let col = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8)
            .map_err(|e| e.to_string())?;
        ids.extend(col.as_string::<i32>().iter().flatten().map(str::to_string));
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::{Target, clearing_targets, parent_objects};
    use crate::catalog::SObjectDescribe;

    fn describe(v: serde_json::Value) -> SObjectDescribe {
        serde_json::from_value(v).unwrap()
    }

    fn field(name: &str, to: &[&str]) -> serde_json::Value {
        serde_json::json!({"name": name, "type": if to.is_empty() { "string" } else { "reference" },
            "referenceTo": to})
    }

    #[test]
    fn only_lookups_whose_relationship_neither_cascades_nor_restricts_are_followed() {
        let contact = describe(serde_json::json!({"name": "Contact", "fields": [
            field("Id", &[]), field("AccountId", &["Account"]), field("ReportsToId", &["Contact"]),
            field("OwnerId", &["User"]), field("Lab__c", &["Lab__c"]), field("Name", &[]),
        ]}));
        let selected: Vec<String> = [
            "Id",
            "AccountId",
            "ReportsToId",
            "OwnerId",
            "Lab__c",
            "Name",
        ]
        .map(String::from)
        .to_vec();
        let parents = parent_objects(&contact, &selected);
        assert_eq!(
            parents.keys().collect::<Vec<_>>(),
            ["Account", "Contact", "Lab__c", "User"]
        );
        let rel = |field: &str, cascade: bool, restricted: bool| {
            serde_json::json!({"childSObject": "Contact", "field": field,
                "cascadeDelete": cascade, "restrictedDelete": restricted})
        };
        let parent = |name: &str, deletable: bool, rels: Vec<serde_json::Value>| {
            (
                name.to_string(),
                describe(serde_json::json!({"name": name, "fields": [],
                    "deletable": deletable, "replicateable": true, "childRelationships": rels})),
            )
        };
        let describes: HashMap<String, SObjectDescribe> = [
            parent("Account", true, vec![rel("AccountId", true, false)]),
            parent("Contact", true, vec![rel("ReportsToId", false, false)]),
            parent("Lab__c", true, vec![rel("Lab__c", false, true)]),
            parent("User", false, vec![rel("OwnerId", false, false)]),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            clearing_targets("Contact", &parents, &describes),
            vec![Target {
                object: "Contact".into(),
                fields: vec!["ReportsToId".into()]
            }]
        );
    }
}
