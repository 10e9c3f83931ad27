//! `sfetl plan`: every configured stream cut into [`Slice`]s, with the same planner and the
//! same count query as `read` (so a slice is exactly a window `read` would read), sized to
//! about `target` rows each.

use std::collections::HashMap;

use serde_json::Value;

use super::fetch::deletions_span;
use super::freshness::Ancestors;
use super::plan::{self, ObjectPlan, StreamPlan, Windows};
use super::slice::Slice;
use super::{FetchError, counts, sizing};
use crate::catalog::SObjectDescribe;
use crate::config::Config;
use crate::mapping::MappedStream;
use crate::protocol::{ConfiguredAirbyteStream, LogLevel};
use crate::salesforce::{SalesforceClient, describe};
use crate::source::soql::Window;
use crate::state::InputState;

/// The describes a stream's plan needs, by object name: the object's own, or each of a
/// mapping's sources.
pub(super) async fn describes(
    client: &SalesforceClient,
    cs: &ConfiguredAirbyteStream,
    mapped: Option<&MappedStream>,
) -> Result<HashMap<String, SObjectDescribe>, FetchError> {
    let mut out = HashMap::new();
    let objects: Vec<&str> = match mapped {
        Some(mapped) => mapped.sources.iter().map(|s| s.object.as_str()).collect(),
        None => vec![cs.stream.name.as_str()],
    };
    for object in objects {
        out.insert(
            object.to_string(),
            describe::describe(client, object).await?,
        );
    }
    Ok(out)
}

/// The planner over the [`describes`] of a stream: the pure plan, then the one count that may
/// call off a backfill of new fields ([`super::backfill`]).
pub(super) async fn plan_described<'m>(
    client: &SalesforceClient,
    config: &Config,
    cs: &ConfiguredAirbyteStream,
    saved: Option<&Value>,
    mapped: Option<&'m MappedStream>,
    describes: &HashMap<String, SObjectDescribe>,
) -> Result<(StreamPlan<'m>, Vec<Ancestors>), FetchError> {
    let mut plan = match mapped {
        Some(mapped) => plan::plan_mapped_stream(cs, mapped, describes, saved)?,
        None => {
            let d = &describes[cs.stream.name.as_str()];
            plan::plan_object_stream(cs, d, config, saved)?
        }
    };
    let ancestors = record_parent_formulas(client, &mut plan, describes).await?;
    plan::plan_backfills(&mut plan, config);
    super::backfill::confirm_backfills(client, config, &mut plan, describes).await?;
    Ok((plan, ancestors))
}

/// Fetches the describes each object's relationship paths pass through (its fields and its
/// mapping's filter), and adds to its `fields_read` the definitions of the parents' formulas
/// its read depends on ([`super::ancestors::parent_formula_definitions`]), so that an edit of
/// one is noticed as an edit of the object's own formulas is; those the mapping's filter reads
/// (its own formulas' and its parents') also go to `filter_reads`, since an edit of one is a
/// changed filter. Returns the describes, one set per object, for the freshness analysis.
async fn record_parent_formulas(
    client: &SalesforceClient,
    plan: &mut StreamPlan<'_>,
    describes: &HashMap<String, SObjectDescribe>,
) -> Result<Vec<Ancestors>, FetchError> {
    let mut out = Vec::with_capacity(plan.objects.len());
    for object in &mut plan.objects {
        let Some(d) = describes.get(&object.object) else {
            out.push(Ancestors::default());
            continue;
        };
        let select = &object.rest.select;
        let filter = object.soql_where.as_deref();
        let ancestors = super::ancestors::ancestors_of(client, d, select, filter).await?;
        let found = super::ancestors::parent_formula_definitions(d, select, &ancestors);
        plan::add_entries(&mut object.fields_read, &found.entries);
        // The formulas the filter reads decide its rows: an edit is a changed filter.
        let fields = filter.map(crate::mapping::filter::field_paths);
        let parents = super::ancestors::parent_formula_definitions(
            d,
            &fields.unwrap_or_default(),
            &ancestors,
        );
        let mut reads = plan::filter_formulas(Some(d), filter);
        plan::add_entries(&mut reads, &parents.entries);
        plan::add_entries(&mut object.fields_read, &reads);
        object.filter_reads = reads;
        out.push(ancestors);
    }
    Ok(out)
}

/// Plans one configured stream: describes (the object, or a mapping's sources), then the pure
/// planner.
pub(super) async fn plan_stream<'m>(
    client: &SalesforceClient,
    config: &Config,
    cs: &ConfiguredAirbyteStream,
    saved: Option<&Value>,
    mapped: Option<&'m MappedStream>,
) -> Result<StreamPlan<'m>, FetchError> {
    let describes = describes(client, cs, mapped).await?;
    let (plan, _) = plan_described(client, config, cs, saved, mapped, &describes).await?;
    Ok(plan)
}

/// The slices of every stream of `streams`, in catalog order; each stream's slices in cursor
/// order, numbered from 0. `warnings` receives the planner's warnings (an object read again
/// from the start, fields left out), which shape the slices as they shape a read.
pub async fn plan_slices(
    client: &SalesforceClient,
    config: &Config,
    streams: &[ConfiguredAirbyteStream],
    state: &InputState,
    mapping: Option<&crate::mapping::MappingPlan>,
    target: u64,
    warnings: &mut Vec<String>,
) -> Result<Vec<Slice>, FetchError> {
    let mut out = Vec::new();
    for cs in streams {
        let name = cs.stream.name.as_str();
        let mapped = mapping.and_then(|m| m.stream(name));
        let plan = plan_stream(client, config, cs, state.stream(name), mapped).await?;
        warnings.extend(
            plan.notes
                .iter()
                .filter(|(level, _)| *level == LogLevel::Warn)
                .map(|(_, text)| text.clone()),
        );
        let mut pieces: Vec<(&ObjectPlan<'_>, Option<Window>, Option<u64>)> = Vec::new();
        for object in &plan.objects {
            for (w, rows) in object_windows(client, config, &plan, object, target).await? {
                pieces.push((object, w, rows));
            }
        }
        let of = pieces.len() as u32;
        let mut previous: Option<&str> = None;
        for (i, (object, w, rows)) in pieces.into_iter().enumerate() {
            let place = (i as u32, of);
            let slice = Slice::new(
                name,
                &object.object,
                object.cursor,
                w,
                rows,
                object.api,
                place,
            );
            // The object's first slice asks for the deletions its saved STATE lacks.
            let first = previous != Some(object.object.as_str());
            previous = Some(object.object.as_str());
            let lacking = object.deletions_to.filter(|_| first && plan.incremental);
            // When the window's end would ask from there (the read's own rule), the slice says so.
            out.push(match (lacking, w) {
                (Some(d), Some(w)) if deletions_span(w, Some(d)) != w => {
                    slice.with_deletions_from(d)
                }
                _ => slice,
            });
        }
    }
    Ok(out)
}

/// One object's windows and their counted rows: sized by rows for an incremental read, one
/// window for a full refresh, none for an object without a cursor (read whole).
async fn object_windows(
    client: &SalesforceClient,
    config: &Config,
    plan: &StreamPlan<'_>,
    object: &ObjectPlan<'_>,
    target: u64,
) -> Result<Vec<(Option<Window>, Option<u64>)>, FetchError> {
    // The org's time, as a read's bounds take it (`salesforce::clock`).
    let now = client.org_now();
    if let Some(text) = client.org_clock().warning_once() {
        tracing::warn!("{text}");
    }
    let lagged = plan::bounds(config, object.saved_at, now);
    let b = plan::query_bounds(config, plan.incremental, lagged, now);
    let (Some(cursor), windows) = (
        object.cursor,
        plan::windows(object.cursor, plan.incremental, b),
    ) else {
        return Ok(vec![(None, None)]);
    };
    // A full refresh's slice is read up to whatever the org holds when it runs (the read opens
    // its window, `plan::open_full_refresh_end`): its end is the cursor its STATE saves, now
    // minus cursor_lag, as a plain full refresh's.
    let whole = Window {
        lower: b.lower,
        upper: match plan.incremental {
            true => b.upper,
            false => lagged.upper,
        },
    };
    let filter = object.soql_where.as_deref();
    let buckets = match counts::month_buckets(client, &object.object, cursor, filter, b).await {
        Ok(buckets) => Some(buckets),
        Err(e) if counts::refused(&e) => None,
        Err(e) => return Err(e.into()),
    };
    let step = config.stream_slice_step.as_ref();
    Ok(match (windows, buckets) {
        (Windows::Sized(b), Some(buckets)) => {
            let b = sizing::first_sync_bounds(b, object.saved_at);
            let sized = sizing::size_windows(b, &buckets, target, step);
            if sized.is_empty() {
                // Nothing counted: one slice still moves the stream's cursor to the bound.
                vec![(Some(whole), Some(0))]
            } else {
                sized
                    .into_iter()
                    .map(|s| (Some(s.window), Some(s.rows)))
                    .collect()
            }
        }
        (Windows::Sized(b), None) => match plan::calendar_windows(object.saved_at, b, step) {
            Windows::Listed(ws) => ws.into_iter().map(|w| (Some(w), None)).collect(),
            _ => vec![(Some(whole), None)],
        },
        (_, buckets) => {
            let rows = buckets.map(|k| k.iter().map(|x| x.rows).sum());
            vec![(Some(whole), rows)]
        }
    })
}
