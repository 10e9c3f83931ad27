//! The read planner: describe + catalog entry + saved state + config → what to read for one
//! stream (fields, API, cursor, bounds, saved cursors). Pure: no I/O, so every decision the
//! read makes before its first query is unit-tested here; the fetch stage only carries it out.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::catalog::{FieldSpec, SObjectDescribe, SfKind, StreamSchema};
use crate::config::{Config, IsoDuration, NewFields};
use crate::decode::{Api, WirePlan};
use crate::mapping::{MappedStream, SourcePlan};
use crate::protocol::{ConfiguredAirbyteStream, LogLevel, SyncMode};
use crate::source::restrictions::{self, Handling, Restriction};
use crate::source::soql::{self, Window};
use crate::state::StreamState;

pub use crate::output::DELETED_AT;

/// One Salesforce object read for a stream (the stream itself, or one `from` of a mapping).
#[derive(Debug)]
pub struct ObjectPlan<'m> {
    /// Object to query.
    pub object: String,
    /// Wire plan for Bulk API 2.0.
    pub bulk: WirePlan,
    /// Wire plan for REST.
    pub rest: WirePlan,
    /// The API to start with (Bulk unless it cannot serve the fields).
    pub api: Api,
    /// Cursor field.
    pub cursor: Option<&'static str>,
    /// Pushed-down filter.
    pub soql_where: Option<String>,
    /// Mapping evaluated on every batch, for mapped streams.
    pub mapping: Option<&'m SourcePlan>,
    /// Whether the `deleted` endpoint serves the object.
    pub replicateable: bool,
    /// Schema of the rows built for deletions (before mapping).
    pub deleted_schema: SchemaRef,
    /// Where the previous run left this object's cursor.
    pub saved_at: Option<DateTime<Utc>>,
    /// Where the previous run delivered the deletions up to, when that is before its cursor
    /// (it stopped after a page checkpoint, before the window's deletions): the first
    /// window's `deleted` call and filter check start there ([`crate::state::Cursor`]).
    pub deletions_to: Option<DateTime<Utc>>,
    /// A read started over from `start_date` although a cursor was saved ([`plan_backfills`]).
    pub backfill: Option<Backfill>,
    /// What the rows read are read with, as each STATE records it (`fields_read`): fixed by
    /// the plan, so checkpoints and slices record it as it is.
    pub fields_read: Vec<String>,
    /// The `formula ...` entries of [`ObjectPlan::fields_read`] that the mapping's
    /// `soql_where` depends on (formulas it reads, the row's own or a parent's, and those they
    /// read): an admin's edit of one changes which rows the filter selects, as a changed
    /// filter does.
    pub filter_reads: Vec<String>,
    /// The object's Id prefix (`006`), from its describe: which of a mapped stream's rows
    /// come from this object.
    pub key_prefix: Option<String>,
    /// The rule of [`restrictions`] for this object by name, when it has one.
    pub restriction: Option<&'static Restriction>,
}

/// An object read again from `start_date` instead of on from its saved cursor: new fields the
/// rows below the cursor were read without, or an earlier `start_date` ([`plan_backfills`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backfill {
    /// The saved cursor set aside: the runs that read up to it reported the deletions before it.
    pub cursor: DateTime<Utc>,
    /// The new fields it is for, when they are its only reason (no mapping change, no earlier
    /// `start_date`): a count of the rows holding a value in them may call it off.
    pub fields: Vec<String>,
    /// What is new, as its note ([`StreamPlan::notes`]`[note]`) names it.
    pub what: String,
    /// The index of its note in [`StreamPlan::notes`].
    pub note: usize,
    /// Whether the mapping's `soql_where` changed: rows the stream holds that the new filter
    /// does not select must leave it, as rows that stop matching do (`filtered`).
    pub filter_changed: bool,
}

/// What to read for one stream.
#[derive(Debug)]
pub struct StreamPlan<'m> {
    /// Stream name.
    pub name: String,
    /// Incremental (windows, checkpoints per page, the `deleted` endpoint) or full refresh.
    pub incremental: bool,
    /// Whether the stream is a mapping's (its state keeps one cursor per source).
    pub mapped: bool,
    /// Schema of the batches the output receives.
    pub out_schema: SchemaRef,
    /// The objects read, in order.
    pub objects: Vec<ObjectPlan<'m>>,
    /// The saved state, typed.
    pub saved: StreamState,
    /// Whether the run was given a state for this stream at all.
    pub has_state: bool,
    /// Things the user should know (fields left out, API chosen), logged at read time.
    pub notes: Vec<(LogLevel, String)>,
}

/// A saved state the planner cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the saved state of stream {stream} is not usable: {reason}. Pass the `state` of the last STATE message sfetl printed for it, or leave the stream out of --state to start it afresh"
)]
pub struct BadState {
    /// The stream.
    pub stream: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The fields a configured stream selects: its `json_schema.properties`, or all when absent.
pub fn selected_fields(cs: &ConfiguredAirbyteStream) -> Option<Vec<String>> {
    let props = cs.stream.json_schema.get("properties")?.as_object()?;
    if props.is_empty() {
        return None;
    }
    Some(props.keys().cloned().collect())
}

fn parse_saved(name: &str, saved: Option<&Value>, field: &str) -> Result<StreamState, BadState> {
    match saved {
        None => Ok(StreamState::default()),
        Some(blob) => StreamState::parse(blob, field).map_err(|reason| BadState {
            stream: name.to_string(),
            reason,
        }),
    }
}

/// Plans a stream read straight from its object's describe.
pub fn plan_object_stream<'m>(
    cs: &ConfiguredAirbyteStream,
    describe: &SObjectDescribe,
    config: &Config,
    saved: Option<&Value>,
) -> Result<StreamPlan<'m>, BadState> {
    let name = cs.stream.name.as_str();
    let mut notes = Vec::new();
    // Selected fields the describe lacks are left out; `drift` decided before whether the
    // stream may be read without them (and warned).
    let selected = selected_fields(cs);
    let mut schema = StreamSchema::from_describe(describe, selected.as_deref());
    let mut api = Api::Bulk;
    if let Some(what) = bulk_unreadable(&schema) {
        if config.force_use_bulk_api {
            let keep: Vec<String> = schema
                .fields
                .iter()
                .filter(|f| !bulk_cannot_read(f))
                .map(|f| f.name.clone())
                .collect();
            notes.push((LogLevel::Warn, format!("{name}: force_use_bulk_api is set, so {what} fields are left out (Bulk API cannot read them)")));
            schema = StreamSchema::from_describe(describe, Some(&keep));
        } else {
            notes.push((LogLevel::Info, format!("{name}: reading with the REST API because {what} fields are selected (Bulk API cannot read them)")));
            api = Api::Rest;
        }
    }
    let restriction = restrictions::for_object(name);
    if let Some(note) = restriction_note(name, restriction, api) {
        notes.push(note);
        api = Api::Rest;
    }
    let cursor = schema.cursor;
    let incremental = cs.sync_mode == SyncMode::Incremental && cursor.is_some();
    notes.extend(catalog_notes(cs, cursor));
    let out_schema = match cursor {
        Some(_) => with_deleted_at(&schema.arrow),
        None => schema.arrow.clone(),
    };
    let state = parse_saved(name, saved, cursor.unwrap_or("SystemModstamp"))?;
    let resumed = state.cursor.as_ref().filter(|_| incremental);
    let saved_at = resumed.map(|c| c.cursor);
    let deletions_to = resumed.and_then(|c| c.deletions_to);
    let rest = WirePlan::new(&schema, Api::Rest);
    let object = ObjectPlan {
        object: name.to_string(),
        bulk: WirePlan::new(&schema, Api::Bulk),
        fields_read: fields_read(&rest.select, Some(describe), None),
        filter_reads: Vec::new(),
        key_prefix: describe.key_prefix.clone(),
        rest,
        api,
        cursor,
        soql_where: None,
        mapping: None,
        replicateable: describe.replicateable,
        deleted_schema: out_schema.clone(),
        saved_at,
        deletions_to,
        backfill: None,
        restriction,
    };
    Ok(StreamPlan {
        name: name.to_string(),
        incremental,
        mapped: false,
        out_schema,
        objects: vec![object],
        saved: state,
        has_state: saved.is_some(),
        notes,
    })
}

/// Plans a mapped stream: each source object in turn, with its own saved cursor.
/// `describes` holds the describe of every source object.
pub fn plan_mapped_stream<'m>(
    cs: &ConfiguredAirbyteStream,
    mapped: &'m MappedStream,
    describes: &HashMap<String, SObjectDescribe>,
    saved: Option<&Value>,
) -> Result<StreamPlan<'m>, BadState> {
    let name = cs.stream.name.as_str();
    let incremental = cs.sync_mode == SyncMode::Incremental && mapped.supports_incremental();
    let state = parse_saved(name, saved, "SystemModstamp")?;
    let cursor = mapped
        .supports_incremental()
        .then_some(crate::mapping::CURSOR_COLUMN);
    let mut notes = catalog_notes(cs, cursor);
    if incremental {
        notes.extend(mapped.sources.iter().filter_map(relative_filter_note));
    }
    let objects = mapped
        .sources
        .iter()
        .map(|src| {
            let bulk = WirePlan::for_source(&src.object, Api::Bulk, &src.input_schema);
            let restriction = restrictions::for_object(&src.object);
            let note = restriction_note(&src.object, restriction, Api::Bulk);
            let api = if note.is_some() { Api::Rest } else { Api::Bulk };
            notes.extend(note);
            let rest = WirePlan::for_source(&src.object, Api::Rest, &src.input_schema);
            let describe = describes.get(&src.object);
            let resumed = state
                .sources
                .get(&src.object)
                .filter(|_| incremental && src.cursor.is_some());
            ObjectPlan {
                object: src.object.clone(),
                fields_read: fields_read(&rest.select, describe, Some(src)),
                filter_reads: Vec::new(),
                key_prefix: describe.and_then(|d| d.key_prefix.clone()),
                rest,
                deleted_schema: bulk.output.clone(),
                bulk,
                api,
                restriction,
                cursor: src.cursor,
                soql_where: src.soql_where.clone(),
                mapping: Some(src),
                replicateable: describes.get(&src.object).is_some_and(|d| d.replicateable),
                saved_at: resumed.map(|c| c.cursor),
                deletions_to: resumed.and_then(|c| c.deletions_to),
                backfill: None,
            }
        })
        .collect();
    Ok(StreamPlan {
        name: name.to_string(),
        incremental,
        mapped: true,
        out_schema: mapped.schema.clone(),
        objects,
        saved: state,
        has_state: saved.is_some(),
        notes,
    })
}

/// The fields an object's read is recorded with in its STATE ([`crate::state::FieldsRead`]):
/// the REST query's field list, whichever API reads it, so the record does not change with the
/// API; the definitions of the formulas read ([`formula_definitions`]); for a mapping's source
/// also its columns and filter as written, which decide its rows as much.
fn fields_read(
    select: &[String],
    describe: Option<&SObjectDescribe>,
    mapping: Option<&SourcePlan>,
) -> Vec<String> {
    let mut read = select.to_vec();
    read.extend(formula_definitions(describe, select));
    if let Some(source) = mapping {
        read.extend(source.written.iter().cloned());
    }
    read
}

/// The definitions of the formulas among `select` (a query's field list) and of those they
/// read ([`super::freshness::formula_definitions`]).
fn formula_definitions(describe: Option<&SObjectDescribe>, select: &[String]) -> Vec<String> {
    describe.map_or_else(Vec::new, |d| {
        let mut seen = std::collections::HashSet::new();
        super::freshness::formula_definitions(d, "", select.to_vec(), &mut seen)
    })
}

/// The definitions of the row's own formulas that `filter` (a mapping's `soql_where`) reads,
/// and of those they read in turn; a parent's come from
/// [`super::ancestors::parent_formula_definitions`], which needs the parents' describes.
pub(super) fn filter_formulas(
    describe: Option<&SObjectDescribe>,
    filter: Option<&str>,
) -> Vec<String> {
    let names: Vec<String> = filter
        .map(crate::mapping::filter::field_paths)
        .unwrap_or_default()
        .into_iter()
        .filter(|f| !f.contains('.'))
        .collect();
    formula_definitions(describe, &names)
}

/// Appends to `read` the `entries` it does not hold yet, in order.
pub(super) fn add_entries(read: &mut Vec<String>, entries: &[String]) {
    for entry in entries {
        if !read.contains(entry) {
            read.push(entry.clone());
        }
    }
}

/// Objects of an incremental stream whose read now includes fields their saved cursor's rows
/// were read without (a field added to the catalog or the mapping, or shown again by
/// field-level security): those rows do not change, so reading on from the cursor would leave
/// them without the fields' values for good. Under `new_fields: backfill` such an object is read
/// again from `start_date`, as a first read; either way a note names the fields. A state that
/// records no fields (an older sfetl's) is not compared.
///
/// A `start_date` earlier than the one the saved cursors' reads began at (or none, where one
/// was set) asks for rows no cursor reaches either: every object is read again from it.
pub fn plan_backfills(plan: &mut StreamPlan<'_>, config: &Config) {
    if !plan.incremental {
        return;
    }
    let from = config.start_date.map_or("the beginning".to_string(), |d| {
        format!("start_date ({})", crate::state::datetime_literal(d))
    });
    for object in &mut plan.objects {
        let Some(cursor) = object.saved_at else {
            continue;
        };
        let earlier = match (
            plan.saved.fresh.start_date.0.get(&object.object),
            config.start_date,
        ) {
            (Some(&was), now) if now.is_none_or(|now| now < was) => Some(was),
            _ => None,
        };
        if let Some(was) = earlier {
            let was = crate::state::datetime_literal(was);
            let what = format!(
                "{}: start_date is earlier than the {was} the saved cursor's reads began at",
                object.object
            );
            let text = format!(
                "{what}: reading every row again from {from}, so the rows before {was} are read too"
            );
            object.saved_at = None;
            object.backfill = Some(Backfill {
                cursor,
                fields: Vec::new(),
                what,
                note: plan.notes.len(),
                filter_changed: false,
            });
            plan.notes.push((LogLevel::Warn, text));
            continue;
        }
        let read = &object.fields_read;
        let recorded = &plan.saved.fresh.fields_read;
        let Some(mut new) = recorded.new_for(&object.object, read) else {
            continue;
        };
        // A filter removed selects rows the old one left out: a change like any other.
        new.extend(recorded.dropped_filter(&object.object, read));
        if new.is_empty() {
            continue;
        }
        let (what, fields_alone) = new_fields_named(&object.object, &new);
        let note = match config.new_fields {
            NewFields::Backfill => {
                let text = format!(
                    "{what}: reading every row again from {from}, so rows that did not change get their values too (new_fields is \"backfill\"; \"ignore\" reads on from the cursor)"
                );
                let filter_changed = new.iter().any(|n| {
                    n.starts_with(crate::state::FILTER_ENTRY) || object.filter_reads.contains(n)
                });
                let fields = if fields_alone { new } else { Vec::new() };
                object.saved_at = None;
                object.backfill = Some(Backfill {
                    cursor,
                    fields,
                    what,
                    note: plan.notes.len(),
                    filter_changed,
                });
                (LogLevel::Warn, text)
            }
            NewFields::Ignore => (
                LogLevel::Info,
                format!(
                    "{what}: reading on from the saved cursor, so only rows changed since carry their values (new_fields is \"ignore\"; \"backfill\" reads every row again)"
                ),
            ),
        };
        plan.notes.push(note);
    }
}

/// How a note names what an object's read now includes (`new`: fields, a mapping's
/// `column ...` / `soql_where ...` entries, or formulas' `formula ...` definitions), and
/// whether it is fields alone (which a count may show hold no value below the cursor).
fn new_fields_named(object: &str, new: &[String]) -> (String, bool) {
    let (formulas, read): (Vec<&String>, Vec<&String>) = new
        .iter()
        .partition(|n| crate::state::formula_entry(n).is_some());
    let mapping = read.iter().any(|n| crate::state::mapping_entry(n));
    let mut parts = Vec::new();
    if !read.is_empty() {
        let names = read
            .iter()
            .map(|n| n.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        parts.push(format!(
            "the read now includes {} ({names}) that the rows below the saved cursor were read without (a field added to the catalog or the mapping, or shown again by field-level security{})",
            match (mapping, read.len()) {
                (true, _) => "mapping changes",
                (false, 1) => "a field",
                (false, _) => "fields",
            },
            if mapping {
                "; a mapping's column or soql_where changed"
            } else {
                ""
            },
        ));
    }
    if !formulas.is_empty() {
        let edited = formulas
            .iter()
            .filter_map(|n| crate::state::formula_entry(n))
            .map(|(name, definition)| format!("{name} is now {definition}"))
            .collect::<Vec<_>>()
            .join("; ");
        parts.push(format!(
            "the definition of {} changed since the rows below the saved cursor were read ({edited}): Salesforce computes the new values in every row without moving its SystemModstamp",
            if formulas.len() == 1 {
                "a formula field"
            } else {
                "formula fields"
            }
        ));
    }
    let what = format!("{object}: {}", parts.join("; and "));
    (what, !mapping && formulas.is_empty())
}

/// A WARN for a source whose `soql_where` uses relative date literals: rows enter and leave
/// such a filter as days pass, which no cursor sees.
fn relative_filter_note(src: &SourcePlan) -> Option<(LogLevel, String)> {
    let literals = crate::mapping::filter::relative_dates(src.soql_where.as_deref()?);
    if literals.is_empty() {
        return None;
    }
    Some((
        LogLevel::Warn,
        format!(
            "{}: the mapping's soql_where uses relative dates ({}): rows enter and leave it as days pass while their SystemModstamp stays put. {}, or filter on fixed dates",
            src.object,
            literals.join(", "),
            super::freshness::MOVES_WITH_TIME
        ),
    ))
}

/// Whether Bulk API 2.0 refuses to select a field (base64 and json fields).
fn bulk_cannot_read(f: &FieldSpec) -> bool {
    f.kind == SfKind::Base64 || f.sf_type == "json"
}

/// The kinds of selected fields Bulk API 2.0 cannot read (`base64`, `json`), if any.
fn bulk_unreadable(schema: &StreamSchema) -> Option<&'static str> {
    let base64 = schema.fields.iter().any(|f| f.kind == SfKind::Base64);
    let json = schema.fields.iter().any(|f| f.sf_type == "json");
    match (base64, json) {
        (true, false) => Some("base64"),
        (false, true) => Some("json"),
        (true, true) => Some("base64 and json"),
        (false, false) => None,
    }
}

/// What the read does otherwise than the configured catalog asks, said once at the start
/// rather than done silently: an incremental read of a stream without a cursor is a full
/// refresh, and a `cursor_field` other than the stream's own is ignored (the cursor is source
/// defined, as `discover` declares).
fn catalog_notes(cs: &ConfiguredAirbyteStream, cursor: Option<&str>) -> Vec<(LogLevel, String)> {
    let name = cs.stream.name.as_str();
    let mut notes = Vec::new();
    if cs.sync_mode == SyncMode::Incremental && cursor.is_none() {
        notes.push((LogLevel::Warn, format!("{name}: the catalog asks for an incremental read, but the stream has no cursor field (its supported_sync_modes are full_refresh only), so it is read in full; configure it as full_refresh")));
    }
    let asked = cs.cursor_field.as_deref().unwrap_or_default();
    if cs.sync_mode == SyncMode::Incremental
        && let Some(cursor) = cursor
        && !asked.is_empty()
        && asked != [cursor]
    {
        notes.push((LogLevel::Warn, format!("{name}: cursor_field {asked:?} is ignored: the stream's cursor is {cursor} (source-defined, as discover declares)")));
    }
    notes
}

/// The note of an object read through REST by rule (`None` when it is not, or already is for
/// its fields).
fn restriction_note(
    object: &str,
    restriction: Option<&Restriction>,
    api: Api,
) -> Option<(LogLevel, String)> {
    let r = restriction?;
    let how = match r.handling {
        Handling::Rest if api == Api::Bulk => "with the REST API",
        Handling::IdRanges => "with the REST API, one page per query in Id order",
        Handling::Rest | Handling::Skip => return None,
    };
    Some((
        LogLevel::Info,
        format!("{object}: reading {how}: {}", r.reason),
    ))
}

/// The cursor range of one read: `[lower, upper)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Saved cursor minus the lookback window, else `start_date`, else the beginning.
    pub lower: Option<DateTime<Utc>>,
    /// Now minus `cursor_lag`, or `end_date` when that is earlier, in whole milliseconds
    /// (SOQL literals and saved cursors carry milliseconds, so the bound queried and the bound
    /// saved are the same instant).
    pub upper: DateTime<Utc>,
}

/// The bounds of a read started at `now` from `saved_at`. An `end_date` in the future bounds
/// nothing yet: saved as the cursor, it would skip every change made between now and then.
pub fn bounds(config: &Config, saved_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Bounds {
    let lagged = config.cursor_lag.sub_from(now);
    let lagged =
        DateTime::<Utc>::from_timestamp_millis(lagged.timestamp_millis()).unwrap_or(lagged);
    let upper = config.end_date.map_or(lagged, |end| end.min(lagged));
    let lower = match saved_at {
        Some(c) => Some(config.lookback_window.sub_from(c)),
        None => config.start_date,
    };
    Bounds { lower, upper }
}

/// The bounds a read's queries use: `b`, except that a full refresh reads every row as it is
/// now, up to the next whole second (or to `end_date`, when that comes first). `cursor_lag`
/// keeps an incremental cursor behind rows whose transactions commit late, which the next run
/// then reads; a full refresh has no next run for its rows, and leaving the lag out of it
/// dropped every row changed in the last `cursor_lag` from an overwritten table. Its STATE
/// still saves `b.upper`, so an incremental read started from that STATE reads the lag again.
/// (The read then drops the last window's upper bound altogether, [`Window::open_ended`], so a
/// row changed after this bound was taken is read as changed.)
pub fn query_bounds(config: &Config, incremental: bool, b: Bounds, now: DateTime<Utc>) -> Bounds {
    if incremental {
        return b;
    }
    let second = now.timestamp().saturating_add(1);
    let second = DateTime::<Utc>::from_timestamp(second, 0).unwrap_or(now);
    let upper = config.end_date.map_or(second, |end| end.min(second));
    Bounds {
        upper: upper.max(b.upper),
        ..b
    }
}

/// A full refresh reads every row as it is when its query runs: its last window reaches to
/// whatever the org then holds ([`Window::open_ended`]) unless `end_date`, passed by `now`,
/// ends it, so a row changed after the bound was taken, before its window's query ran (a
/// window read in halves, a planned slice read later), is read as changed instead of being in
/// no window.
pub fn open_full_refresh_end(
    config: &Config,
    incremental: bool,
    windows: &mut [Window],
    now: DateTime<Utc>,
) {
    if !incremental
        && let Some(last) = windows.last_mut()
        && config.end_date.is_none_or(|end| end > now)
    {
        *last = last.open_ended();
    }
}

/// A warning when the read starts past its upper bound: a saved cursor in the future, or a
/// `start_date` after now minus `cursor_lag`. Such a read finds no row, and its STATE is saved
/// at the upper bound instead, so the stream does not stay stuck.
pub fn future_cursor(
    object: &str,
    saved_at: Option<DateTime<Utc>>,
    config: &Config,
    b: Bounds,
    now: DateTime<Utc>,
) -> Option<String> {
    let (what, at) = match (saved_at, config.start_date) {
        (Some(s), _) if s > now => ("saved cursor", s),
        (None, Some(start)) if start >= b.upper => ("start_date", start),
        _ => return None,
    };
    Some(format!(
        "{object}: the {what} {} is in the future (the read stops at {}, now minus cursor_lag): nothing can be read past it, so this run reads no row and saves {} as the cursor. Check the state passed with --state, or start_date",
        crate::state::datetime_literal(at),
        crate::state::datetime_literal(b.upper),
        crate::state::datetime_literal(b.upper),
    ))
}

/// How an object's range is cut into windows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Windows {
    /// No cursor: one read of everything, without a filter.
    Whole,
    /// These windows, in order.
    Listed(Vec<Window>),
    /// A first incremental sync: find the first row in the bounds with one query, then cut
    /// windows from there ([`windows_from_first_row`]), so years of empty history do not cost
    /// a Bulk job per window.
    FromFirstRow(Bounds),
    /// An incremental read: windows of about `bulk_max_records` rows each, sized from one
    /// count query ([`super::sizing`]); [`calendar_windows`] when Salesforce refuses it.
    Sized(Bounds),
}

/// The windows of one object's read. A full refresh is one window: windows read one after
/// the other would miss rows modified meanwhile into a window already read, which only an
/// incremental read picks up (the next run starts from its cursor).
pub fn windows(cursor: Option<&str>, incremental: bool, b: Bounds) -> Windows {
    match cursor {
        None => Windows::Whole,
        Some(_) if !incremental => Windows::Listed(vec![Window {
            lower: b.lower,
            upper: b.upper,
        }]),
        Some(_) => Windows::Sized(b),
    }
}

/// The windows of an incremental read whose rows could not be counted (Salesforce refused
/// the aggregate query): windows of `step` when one is set, else one window; a first sync
/// starts at its first row.
pub fn calendar_windows(
    saved_at: Option<DateTime<Utc>>,
    b: Bounds,
    step: Option<&IsoDuration>,
) -> Windows {
    match (saved_at, step) {
        (None, _) => Windows::FromFirstRow(b),
        (Some(_), Some(step)) => Windows::Listed(soql::windows(b.lower, b.upper, step)),
        (Some(_), None) => Windows::Listed(vec![Window {
            lower: b.lower,
            upper: b.upper,
        }]),
    }
}

/// Windows of `step` (one window without a step) from the day of the first row (`first`,
/// `None` when the bounds hold no row: nothing to read).
pub fn windows_from_first_row(
    b: Bounds,
    first: Option<DateTime<Utc>>,
    step: Option<&IsoDuration>,
) -> Vec<Window> {
    let Some(t) = first else {
        return Vec::new();
    };
    let start = b.lower.map_or(window_floor(t), |l| l.max(window_floor(t)));
    step_windows(start, b.upper, step)
}

/// `[start, upper)` as windows of `step`, or as one window without a step (none when empty).
pub fn step_windows(
    start: DateTime<Utc>,
    upper: DateTime<Utc>,
    step: Option<&IsoDuration>,
) -> Vec<Window> {
    match step {
        Some(step) => soql::windows(Some(start), upper, step),
        None if start < upper => vec![Window {
            lower: Some(start),
            upper,
        }],
        None => Vec::new(),
    }
}

/// The shortest window [`halves`] still splits: Salesforce's timestamps carry whole seconds.
pub const SPLIT_FLOOR_MS: i64 = 1000;

/// The two halves of a window Salesforce gave up on, split at a whole second when one falls
/// strictly inside; `None` for a window without a lower bound or of [`SPLIT_FLOOR_MS`] or less.
/// An open window ([`Window::OPEN`]) is split as if it ended at `now`, and its later half stays
/// open.
pub fn halves(w: Window, now: DateTime<Utc>) -> Option<(Window, Window)> {
    let lower = w.lower?.timestamp_millis();
    let upper = match w.is_open() {
        true => now.timestamp_millis(),
        false => w.upper.timestamp_millis(),
    };
    if upper - lower <= SPLIT_FLOOR_MS {
        return None;
    }
    let mid = lower + (upper - lower) / 2;
    let second = mid - mid.rem_euclid(1000);
    let mid = DateTime::<Utc>::from_timestamp_millis(if second > lower { second } else { mid })?;
    Some((
        Window {
            lower: w.lower,
            upper: mid,
        },
        Window {
            lower: Some(mid),
            upper: w.upper,
        },
    ))
}

/// Midnight UTC of the day of `t`: windows start on day boundaries, which keeps slices stable
/// from run to run.
fn window_floor(t: DateTime<Utc>) -> DateTime<Utc> {
    t.date_naive()
        .and_hms_opt(0, 0, 0)
        .map_or(t, |d| d.and_utc())
}

/// `schema` plus the [`DELETED_AT`] column.
pub fn with_deleted_at(schema: &SchemaRef) -> SchemaRef {
    let mut fields: Vec<FieldRef> = schema.fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(
        DELETED_AT,
        DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC"))),
        true,
    )));
    Arc::new(Schema::new(fields))
}

#[cfg(test)]
mod tests;
