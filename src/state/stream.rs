//! [`StreamState`]: the typed STATE of one stream, the contract between a run and the next.
//!
//! sfetl writes `{"cursor_field": "SystemModstamp", "cursor": "2024-01-15T10:00:00.000Z"}`:
//! every row whose cursor is below `cursor` was delivered (as of the read; late commits are
//! caught by the lookback window). A mapped stream keeps one cursor per source object under
//! `"sources"`, and Parquet output adds `"output": {"sync_id", "parts"}`, the files committed
//! so far. A cursor saved after a page of a window, before the window's deletions were asked
//! for, adds `"deletions_to"`: where they were delivered up to (see [`Cursor`]). Reads that
//! follow parents (mapped `Account.Name`, cross-object formulas) add
//! `"parents": {"Contact": {"Account": {"cursor_field", "cursor"}}}`, and formula refreshes
//! `"formulas_refreshed_at": {"Opportunity": "..."}`; incremental streams record what each
//! object's cursor was read with, `"fields_read": {"Account": [...]}` and `"start_date":
//! {"Account": "..."}` (see [`Freshness`]). It reads that, and
//! Airbyte's Salesforce source's legacy `{"SystemModstamp": "..."}` and concurrent
//! `{"slices": [{"start", "end"}]}` forms.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

/// A datetime as Salesforce and SOQL write it (`2024-01-15T10:00:00.000Z`): whole
/// milliseconds, so the bound queried and the bound saved are the same instant.
pub fn datetime_literal(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses Salesforce and ISO datetimes (`...000+0000`, `...Z`, `+00:00`) and plain dates.
pub fn parse_datetime(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    }
    None
}

/// Where one object's rows are covered up to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The cursor field (`SystemModstamp`, `LastModifiedDate`, `CreatedDate`).
    pub cursor_field: String,
    /// Every row with a smaller cursor was delivered.
    #[serde(with = "literal")]
    pub cursor: DateTime<Utc>,
    /// Where the deletions the cursor cannot see (the `deleted` endpoint's, rows that left a
    /// mapping's filter) were delivered up to, when that is before `cursor`: a checkpoint
    /// inside a window, after one of its pages, comes before the window's deletions are asked
    /// for. The next run asks for them from here. `None`: up to `cursor`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "optional_literal"
    )]
    pub deletions_to: Option<DateTime<Utc>>,
}

impl Cursor {
    /// The cursor `at` of `cursor_field`, its deletions delivered up to `deletions_to` (kept
    /// only when it is before `at`).
    pub fn new(
        cursor_field: &str,
        at: DateTime<Utc>,
        deletions_to: Option<DateTime<Utc>>,
    ) -> Cursor {
        Cursor {
            cursor_field: cursor_field.to_string(),
            cursor: at,
            deletions_to: deletions_to.filter(|d| *d < at),
        }
    }
}

/// The Parquet files a stream has committed in its current sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputCommit {
    /// The sync folder (`<path>/<stream>/<sync_id>/`).
    pub sync_id: String,
    /// Files `part-00000` .. `part-{parts-1}` are complete.
    pub parts: u32,
}

/// Delta output: the table commit that recorded a STATE (its transaction identifier).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableCommit {
    /// The `txn` action's app id: the stream (or the stream and its slice).
    pub app_id: String,
    /// The `txn` version: one more at each commit of that app id.
    pub txn: i64,
}

/// Mapped streams' per-source cursors, in the order the sources were first read (a JSON object
/// keyed by object name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources(pub Vec<(String, Cursor)>);

impl Sources {
    /// Whether no source has a cursor yet.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The cursor of `object`.
    pub fn get(&self, object: &str) -> Option<&Cursor> {
        self.0.iter().find(|(o, _)| o == object).map(|(_, c)| c)
    }

    /// Sets the cursor of `object`, keeping its place (new objects go last).
    pub fn insert(&mut self, object: &str, cursor: Cursor) {
        match self.0.iter_mut().find(|(o, _)| o == object) {
            Some((_, c)) => *c = cursor,
            None => self.0.push((object.to_string(), cursor)),
        }
    }
}

impl Serialize for Sources {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (object, cursor) in &self.0 {
            map.serialize_entry(object, cursor)?;
        }
        map.end()
    }
}

/// The parents' cursors of each object read, by object then relationship: every change of
/// that parent (its SystemModstamp) below the cursor was followed by reading the object's rows
/// under it again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parents(pub BTreeMap<String, BTreeMap<String, Cursor>>);

impl Parents {
    /// Whether no parent cursor is saved.
    pub fn is_empty(&self) -> bool {
        self.0.values().all(BTreeMap::is_empty)
    }

    /// The cursor of `relationship` of `object`.
    pub fn get(&self, object: &str, relationship: &str) -> Option<&Cursor> {
        self.0.get(object)?.get(relationship)
    }

    /// Sets the cursor of `relationship` of `object`.
    pub fn insert(&mut self, object: &str, relationship: &str, cursor: Cursor) {
        self.0
            .entry(object.to_string())
            .or_default()
            .insert(relationship.to_string(), cursor);
    }
}

/// A datetime per object: when its formula fields were last read again (or read whole), so a
/// run knows whether `formula_refresh` is due; the `start_date` its cursor began at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectTimes(pub BTreeMap<String, DateTime<Utc>>);

impl ObjectTimes {
    /// Whether no refresh is recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for ObjectTimes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (object, at) in &self.0 {
            map.serialize_entry(object, &datetime_literal(*at))?;
        }
        map.end()
    }
}

/// How [`FieldsRead`] records the definition of a formula field read
/// (`formula Display_Label__c = LastName & ", " & FirstName`): an admin's edit of a formula
/// changes the value of every row while no row's cursor moves.
pub const FORMULA_ENTRY: &str = "formula ";

/// How [`FieldsRead`] records a mapping source's filter (`soql_where IsConverted = false`).
pub const FILTER_ENTRY: &str = "soql_where ";

/// How [`FieldsRead`] records a mapping source's column (`column email = lower(Email)`).
pub const COLUMN_ENTRY: &str = "column ";

/// An entry of [`FieldsRead`] as compared: field names case-insensitively (as Salesforce
/// reads them), expressions, filters and formula definitions exactly (a string literal's case
/// changes what they give).
fn compared(entry: &str) -> String {
    if let Some((name, definition)) = formula_entry(entry) {
        return format!(
            "{FORMULA_ENTRY}{} = {definition}",
            name.to_ascii_lowercase()
        );
    }
    if mapping_entry(entry) {
        return entry.to_string();
    }
    entry.to_ascii_lowercase()
}

/// Whether an entry of [`FieldsRead`] records a mapping source's column or filter
/// ([`COLUMN_ENTRY`], [`FILTER_ENTRY`]) rather than a field of the object.
pub fn mapping_entry(entry: &str) -> bool {
    entry.starts_with(COLUMN_ENTRY) || entry.starts_with(FILTER_ENTRY)
}

/// The field and definition an entry of [`FieldsRead`] records a formula as, if it records one.
pub fn formula_entry(entry: &str) -> Option<(&str, &str)> {
    entry.strip_prefix(FORMULA_ENTRY)?.split_once(" = ")
}

/// The field an entry of [`FieldsRead`] records the formula of, if it records one.
pub fn formula_of(entry: &str) -> Option<&str> {
    formula_entry(entry).map(|(field, _)| field)
}

/// The fields each object of an incremental stream was read with (its query's field list,
/// sorted), saved with the object's cursor: a run that reads a field not in it knows the rows
/// below the cursor were delivered without that field's values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldsRead(pub BTreeMap<String, Vec<String>>);

impl FieldsRead {
    /// Whether no object's fields are recorded (a state of an older sfetl, or a full refresh).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The fields of `fields` that `object` was not read with, in the order given; `None` when
    /// nothing is recorded for it (nothing to compare with). Salesforce's names are
    /// case-insensitive, and so is their comparison (`compared`). A formula's definition
    /// ([`FORMULA_ENTRY`]) is compared only with one recorded for the same field: a state
    /// written before definitions were recorded has none, and a field newly read is new by
    /// its name already.
    pub fn new_for(&self, object: &str, fields: &[String]) -> Option<Vec<String>> {
        let recorded = self.0.get(object)?;
        let known: std::collections::HashSet<String> =
            recorded.iter().map(|f| compared(f)).collect();
        let defined: std::collections::HashSet<String> = recorded
            .iter()
            .filter_map(|f| formula_of(f))
            .map(str::to_ascii_lowercase)
            .collect();
        Some(
            fields
                .iter()
                .filter(|f| {
                    !known.contains(&compared(f))
                        && formula_of(f).is_none_or(|n| defined.contains(&n.to_ascii_lowercase()))
                })
                .cloned()
                .collect(),
        )
    }

    /// `soql_where (none; was <filter>)` when `object` was read with a mapping filter that
    /// `fields` no longer has: the rows it left out were never read.
    pub fn dropped_filter(&self, object: &str, fields: &[String]) -> Option<String> {
        let filter = |f: &String| f.strip_prefix(FILTER_ENTRY).map(str::to_string);
        let was = self.0.get(object)?.iter().find_map(filter)?;
        if fields.iter().any(|f| filter(f).is_some()) {
            return None;
        }
        Some(format!("{FILTER_ENTRY}(none; was {was})"))
    }

    /// Records the fields `object` is read with.
    pub fn insert(&mut self, object: &str, fields: &[String]) {
        let mut sorted = fields.to_vec();
        sorted.sort();
        self.0.insert(object.to_string(), sorted);
    }
}

/// What keeps values that do not move a row's own cursor fresh: the parents' cursors, the
/// last formula refresh and the fields read, per object. Kept next to the object's own cursor
/// in every STATE.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Freshness {
    /// Parents' cursors per object.
    #[serde(skip_serializing_if = "Parents::is_empty")]
    pub parents: Parents,
    /// Last formula refresh per object.
    #[serde(skip_serializing_if = "ObjectTimes::is_empty")]
    pub formulas_refreshed_at: ObjectTimes,
    /// The fields each object was read with up to its cursor.
    #[serde(skip_serializing_if = "FieldsRead::is_empty")]
    pub fields_read: FieldsRead,
    /// The `start_date` each object's cursor began at (when one was set): a run given an
    /// earlier one reads the rows between the two, which no cursor reaches.
    #[serde(skip_serializing_if = "ObjectTimes::is_empty")]
    pub start_date: ObjectTimes,
}

impl Freshness {
    /// Records what `object`'s rows up to its cursor were read with: `fields`
    /// ([`FieldsRead`]) and `start_date` (none: from the beginning).
    pub fn record_read(
        &mut self,
        object: &str,
        fields: &[String],
        start_date: Option<DateTime<Utc>>,
    ) {
        self.fields_read.insert(object, fields);
        match start_date {
            Some(at) => self.start_date.0.insert(object.to_string(), at),
            None => self.start_date.0.remove(object),
        };
    }

    /// Reads `parents`, `formulas_refreshed_at`, `fields_read` and `start_date` of a saved blob
    /// (absent in older states).
    fn parse(blob: &Value) -> Result<Freshness, String> {
        let parents = typed(
            blob,
            "parents",
            "must map objects to {relationship: {\"cursor_field\", \"cursor\"}}",
        )?;
        let formulas_refreshed_at = times_of(blob, "formulas_refreshed_at")?;
        let fields_read = typed(
            blob,
            "fields_read",
            "must map each object to the list of its field names",
        )?;
        let start_date = times_of(blob, "start_date")?;
        Ok(Freshness {
            parents,
            formulas_refreshed_at,
            fields_read,
            start_date,
        })
    }
}

/// The STATE of one stream, as sfetl writes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StreamState {
    /// The stream's own cursor (absent for mapped streams and streams without a cursor).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<Cursor>,
    /// Mapped streams: one cursor per source object, in mapping order.
    #[serde(skip_serializing_if = "Sources::is_empty")]
    pub sources: Sources,
    /// Parquet output: the files committed so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<OutputCommit>,
    /// Delta output: the table commit holding this state, so a replayed or stale STATE is
    /// recognised against the table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<TableCommit>,
    /// Parents' cursors and formula refreshes.
    #[serde(flatten)]
    pub fresh: Freshness,
}

impl StreamState {
    /// Reads a saved state blob in any accepted form. `cursor_field` is the stream's cursor,
    /// used for the legacy form keyed by it. An error says what is wrong with the blob.
    pub fn parse(blob: &Value, cursor_field: &str) -> Result<StreamState, String> {
        if !blob.is_object() {
            return Err(format!("{blob} is not a JSON object"));
        }
        let deletions_to = match blob.get("deletions_to") {
            Some(v) => datetime_of(v).map_err(|e| format!("`deletions_to`: {e}"))?,
            None => None,
        };
        let cursor = saved_cursor(blob, cursor_field)?.map(|at| {
            let field = blob.get("cursor_field").and_then(Value::as_str);
            Cursor::new(field.unwrap_or(cursor_field), at, deletions_to)
        });
        let mut sources = Sources::default();
        if let Some(map) = blob.get("sources") {
            let map = map
                .as_object()
                .ok_or("`sources` must map each source object to its cursor")?;
            for (object, v) in map {
                let parsed = StreamState::parse(v, cursor_field)
                    .map_err(|e| format!("sources.{object}: {e}"))?;
                if let Some(c) = parsed.cursor {
                    sources.insert(object, c);
                }
            }
        }
        let output = match blob.get("output") {
            None | Some(Value::Null) => None,
            Some(o) => Some(serde_json::from_value(o.clone()).map_err(|e| {
                format!("`output` must be {{\"sync_id\": \"...\", \"parts\": N}}: {e}")
            })?),
        };
        let table = match blob.get("table") {
            None | Some(Value::Null) => None,
            Some(t) => Some(serde_json::from_value(t.clone()).map_err(|e| {
                format!("`table` must be {{\"app_id\": \"...\", \"txn\": N}}: {e}")
            })?),
        };
        Ok(StreamState {
            cursor,
            sources,
            output,
            table,
            fresh: Freshness::parse(blob)?,
        })
    }

    /// The state as the JSON object a STATE message carries.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("a stream state serialises")
    }
}

/// The saved cursor of a blob, from any accepted form.
fn saved_cursor(blob: &Value, cursor_field: &str) -> Result<Option<DateTime<Utc>>, String> {
    // sfetl's own form.
    if let Some(c) = blob.get("cursor") {
        return datetime_of(c);
    }
    // Airbyte's concurrent form: the end of the contiguous run of slices from the first.
    if let Some(slices) = blob.get("slices").and_then(Value::as_array)
        && let Some(end) = contiguous_end(slices)?
    {
        return Ok(Some(end));
    }
    // Legacy form keyed by the cursor field (or any of the usual cursor fields); with no
    // slices, Airbyte keeps the legacy cursor beside them.
    for key in [
        cursor_field,
        "SystemModstamp",
        "LastModifiedDate",
        "CreatedDate",
    ] {
        if let Some(v) = blob.get(key) {
            return datetime_of(v);
        }
    }
    Ok(None)
}

/// The value under `key` of a blob as `T` (its default when absent or null); `rule` says what
/// it must be when it is not.
fn typed<T: serde::de::DeserializeOwned + Default>(
    blob: &Value,
    key: &str,
    rule: &str,
) -> Result<T, String> {
    match blob.get(key) {
        None | Some(Value::Null) => Ok(T::default()),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| format!("`{key}` {rule}: {e}")),
    }
}

/// A blob's map of object to datetime under `key` (empty when absent or null).
fn times_of(blob: &Value, key: &str) -> Result<ObjectTimes, String> {
    let mut times = ObjectTimes::default();
    if let Some(map) = blob.get(key).filter(|v| !v.is_null()) {
        let map = map
            .as_object()
            .ok_or_else(|| format!("`{key}` must map each object to a datetime"))?;
        for (object, v) in map {
            let at = datetime_of(v)
                .map_err(|e| format!("{key}.{object}: {e}"))?
                .ok_or_else(|| format!("{key}.{object}: null is not a datetime"))?;
            times.0.insert(object.clone(), at);
        }
    }
    Ok(times)
}

fn datetime_of(v: &Value) -> Result<Option<DateTime<Utc>>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => parse_datetime(s)
            .map(Some)
            .ok_or_else(|| format!("{s:?} is not a datetime")),
        other => Err(format!("{other} is not a datetime string")),
    }
}

/// The end of the run of `[start, end)` slices that starts at the earliest one, stopping at
/// the first gap.
fn contiguous_end(slices: &[Value]) -> Result<Option<DateTime<Utc>>, String> {
    let mut ranges: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    for s in slices {
        let start = s.get("start").map(datetime_of).transpose()?.flatten();
        let end = s.get("end").map(datetime_of).transpose()?.flatten();
        if let (Some(a), Some(b)) = (start, end) {
            ranges.push((a, b));
        }
    }
    ranges.sort();
    let mut covered: Option<DateTime<Utc>> = None;
    for (a, b) in ranges {
        match covered {
            None => covered = Some(b),
            Some(c) if a <= c => covered = Some(c.max(b)),
            Some(_) => break,
        }
    }
    Ok(covered)
}

/// Whether a blob holds Airbyte's date-range `slices` (itself or one of its `sources`), as the
/// STATE of a `read --slice` run does.
pub(super) fn has_slices(blob: &Value) -> bool {
    blob.get("slices").is_some()
        || blob
            .get("sources")
            .and_then(Value::as_object)
            .is_some_and(|m| m.values().any(has_slices))
}

/// Two saved blobs of one stream as one: their ranges together in date-range form (a cursor
/// counts as the range from the epoch to it), per source for mapped streams. What the
/// merged blob resumes from is the end of the run of ranges from the earliest, so the STATEs
/// of a plan's slices, in any order, give the cursor up to which every slice completed. What
/// each object was read with (`fields_read`, `start_date`) is carried by [`merge_fresh`].
pub(super) fn merge_slices(a: &Value, b: &Value) -> Value {
    let mut merged = merge_ranges(a, b);
    merge_fresh(a, b, &mut merged);
    merged
}

/// The ranges of two blobs together ([`merge_slices`]).
fn merge_ranges(a: &Value, b: &Value) -> Value {
    if a.get("sources").is_some() || b.get("sources").is_some() {
        let mut sources = serde_json::Map::new();
        for blob in [a, b] {
            for (object, v) in blob
                .get("sources")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                let merged = match sources.get(object) {
                    Some(prev) => merge_slices(prev, v),
                    None => v.clone(),
                };
                sources.insert(object.clone(), merged);
            }
        }
        return serde_json::json!({"sources": sources});
    }
    let mut ranges: Vec<Value> = Vec::new();
    for blob in [a, b] {
        match blob.get("slices").and_then(Value::as_array) {
            Some(slices) => ranges.extend(slices.iter().cloned()),
            None => {
                if let Ok(Some(at)) = saved_cursor(blob, "SystemModstamp") {
                    let end = datetime_literal(at);
                    ranges
                        .push(serde_json::json!({"start": "1970-01-01T00:00:00.000Z", "end": end}));
                }
            }
        }
    }
    let field = a.get("cursor_field").or_else(|| b.get("cursor_field"));
    let mut merged =
        serde_json::json!({"cursor_field": field, "state_type": "date-range", "slices": ranges});
    if let Some(d) = lagging_deletions(a, b, &merged) {
        merged["deletions_to"] = Value::String(datetime_literal(d));
    }
    merged
}

/// The `deletions_to` the merge of `a` and `b` into `merged` keeps: that of a blob whose
/// cursor the merged one does not pass (the earliest, if both). Past it, a range was read
/// after that STATE, by a plan that started from it and asked for the deletions it lacked.
fn lagging_deletions(a: &Value, b: &Value, merged: &Value) -> Option<DateTime<Utc>> {
    let end = saved_cursor(merged, "SystemModstamp").ok().flatten()?;
    [a, b]
        .into_iter()
        .filter_map(|blob| {
            let parsed = StreamState::parse(blob, "SystemModstamp").ok()?.cursor?;
            (parsed.cursor >= end).then_some(parsed.deletions_to?)
        })
        .min()
}

/// Sets `merged`'s `fields_read` and `start_date` per object from the blob (of `a` and `b`)
/// whose ranges of that object end later: the newer read, whose record a plain read's STATE
/// would have replaced the older one with (a backfill's slices, read from the start with a
/// new field, supersede the cursor they set aside). Blobs ending alike (slices of one plan)
/// give the fields both read.
fn merge_fresh(a: &Value, b: &Value, merged: &mut Value) {
    for key in ["fields_read", "start_date"] {
        let (ma, mb) = (a.get(key), b.get(key));
        let objects: std::collections::BTreeSet<&String> = [ma, mb]
            .into_iter()
            .flatten()
            .filter_map(Value::as_object)
            .flat_map(|m| m.keys())
            .collect();
        let mut out = serde_json::Map::new();
        for object in objects {
            let (va, vb) = (
                ma.and_then(|m| m.get(object)),
                mb.and_then(|m| m.get(object)),
            );
            let pick = match (va, vb) {
                (Some(x), None) | (None, Some(x)) => x.clone(),
                (Some(x), Some(y)) => match object_end(a, object).cmp(&object_end(b, object)) {
                    std::cmp::Ordering::Greater => x.clone(),
                    std::cmp::Ordering::Less => y.clone(),
                    std::cmp::Ordering::Equal => both(x, y),
                },
                (None, None) => continue,
            };
            out.insert(object.clone(), pick);
        }
        if !out.is_empty() {
            merged[key] = Value::Object(out);
        }
    }
}

/// Two records of one object read alike: the fields of both (sorted), or the later time.
fn both(x: &Value, y: &Value) -> Value {
    match (x.as_array(), y.as_array()) {
        (Some(xs), Some(ys)) => {
            let mut all: Vec<&Value> = xs.iter().chain(ys).collect();
            all.sort_by(|p, q| p.as_str().cmp(&q.as_str()));
            all.dedup();
            Value::Array(all.into_iter().cloned().collect())
        }
        _ => {
            let t = |v: &Value| datetime_of(v).ok().flatten();
            if t(x) >= t(y) { x.clone() } else { y.clone() }
        }
    }
}

/// Where a blob's ranges of `object` end: the latest slice end or its cursor (a mapped
/// stream's under `sources`).
fn object_end(blob: &Value, object: &str) -> Option<DateTime<Utc>> {
    let blob = match blob.get("sources") {
        Some(sources) => sources.get(object)?,
        None => blob,
    };
    let ends = blob
        .get("slices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| datetime_of(s.get("end")?).ok().flatten());
    ends.max()
        .or_else(|| saved_cursor(blob, "SystemModstamp").ok().flatten())
}

/// Serde for an optional datetime as [`datetime_literal`] text.
mod optional_literal {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        t: &Option<DateTime<Utc>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::literal::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(text) => super::parse_datetime(&text)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not a datetime"))),
        }
    }
}

/// Serde for a cursor as [`datetime_literal`] text.
mod literal {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::datetime_literal(*t))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_datetime(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not a datetime")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dt(s: &str) -> DateTime<Utc> {
        parse_datetime(s).unwrap()
    }

    fn cursor_of(blob: Value) -> Option<DateTime<Utc>> {
        StreamState::parse(&blob, "SystemModstamp")
            .unwrap()
            .cursor
            .map(|c| c.cursor)
    }

    #[test]
    fn own_form_round_trips() {
        let s = StreamState {
            cursor: Some(Cursor::new(
                "SystemModstamp",
                dt("2024-01-15T10:00:00Z"),
                None,
            )),
            sources: Sources::default(),
            output: Some(OutputCommit {
                sync_id: "20240115T100000Z-abcdef".into(),
                parts: 3,
            }),
            table: None,
            fresh: Freshness::default(),
        };
        let v = s.to_value();
        assert_eq!(
            v.to_string(),
            r#"{"cursor_field":"SystemModstamp","cursor":"2024-01-15T10:00:00.000Z","output":{"sync_id":"20240115T100000Z-abcdef","parts":3}}"#
        );
        assert_eq!(StreamState::parse(&v, "SystemModstamp").unwrap(), s);
        assert_eq!(StreamState::default().to_value(), json!({}));
        assert_eq!(
            StreamState::parse(&json!({}), "SystemModstamp").unwrap(),
            StreamState::default()
        );
    }

    #[test]
    fn parents_cursors_and_formula_refreshes_round_trip_and_old_states_still_load() {
        let mut fresh = Freshness::default();
        fresh.parents.insert(
            "Contact",
            "Account",
            Cursor::new("SystemModstamp", dt("2024-03-01T00:00:00Z"), None),
        );
        fresh
            .formulas_refreshed_at
            .0
            .insert("Opportunity".into(), dt("2024-03-02T08:00:00Z"));
        let mut sources = Sources::default();
        sources.insert(
            "Contact",
            Cursor::new("SystemModstamp", dt("2024-03-01T00:00:00Z"), None),
        );
        let s = StreamState {
            sources,
            fresh,
            ..StreamState::default()
        };
        let v = s.to_value();
        assert_eq!(
            v,
            json!({
                "sources": {"Contact": {"cursor_field": "SystemModstamp", "cursor": "2024-03-01T00:00:00.000Z"}},
                "parents": {"Contact": {"Account": {"cursor_field": "SystemModstamp", "cursor": "2024-03-01T00:00:00.000Z"}}},
                "formulas_refreshed_at": {"Opportunity": "2024-03-02T08:00:00.000Z"}
            })
        );
        assert_eq!(StreamState::parse(&v, "SystemModstamp").unwrap(), s);
        // A state written before parents were followed has none, and loads.
        let old = json!({"cursor_field": "SystemModstamp", "cursor": "2024-01-15T10:00:00.000Z"});
        let parsed = StreamState::parse(&old, "SystemModstamp").unwrap();
        assert_eq!(parsed.fresh, Freshness::default());
        assert_eq!(parsed.to_value(), old);
        let err = |v: Value| StreamState::parse(&v, "SystemModstamp").unwrap_err();
        assert_eq!(
            err(json!({"formulas_refreshed_at": {"Opportunity": "soon"}})),
            "formulas_refreshed_at.Opportunity: \"soon\" is not a datetime"
        );
        assert!(
            err(json!({"parents": {"Contact": {"Account": {"cursor": "x"}}}}))
                .starts_with("`parents` must map objects to")
        );
    }

    #[test]
    fn merged_slices_keep_what_the_newer_read_of_each_object_was_read_with() {
        let cursor = json!({"cursor_field": "SystemModstamp", "cursor": "2024-03-01T00:00:00.000Z",
            "fields_read": {"Account": ["Id", "Name"]}, "start_date": {"Account": "2020-01-01T00:00:00.000Z"}});
        let slice = |start: &str, end: &str, fields: Value| {
            json!({"cursor_field": "SystemModstamp", "state_type": "date-range",
                "slices": [{"start": start, "end": end}], "fields_read": {"Account": fields}})
        };
        // A backfill's slices, read from the start with Industry, end later: theirs count.
        let later = slice(
            "2020-01-01T00:00:00.000Z",
            "2024-04-01T00:00:00.000Z",
            json!(["Id", "Industry", "Name"]),
        );
        let merged = merge_slices(&cursor, &later);
        assert_eq!(
            merged["fields_read"],
            json!({"Account": ["Id", "Industry", "Name"]})
        );
        assert_eq!(
            merged["start_date"],
            json!({"Account": "2020-01-01T00:00:00.000Z"})
        );
        assert_eq!(
            merge_slices(&later, &cursor)["fields_read"],
            merged["fields_read"]
        );
        // An older blob's record does not replace a newer one's.
        let older = slice(
            "2019-01-01T00:00:00.000Z",
            "2024-02-01T00:00:00.000Z",
            json!(["Id", "Phone"]),
        );
        assert_eq!(
            merge_slices(&cursor, &older)["fields_read"],
            json!({"Account": ["Id", "Name"]})
        );
        // Slices of one plan end alike only when they cover the same span: both's fields.
        let twin = slice(
            "2024-03-01T00:00:00.000Z",
            "2024-04-01T00:00:00.000Z",
            json!(["Id", "Phone"]),
        );
        assert_eq!(
            merge_slices(&later, &twin)["fields_read"],
            json!({"Account": ["Id", "Industry", "Name", "Phone"]})
        );
        // A mapped stream's sources each keep their own.
        let source = |object: &str, end: &str| {
            json!({"sources": {object: {"cursor_field": "SystemModstamp", "state_type": "date-range",
                "slices": [{"start": "1970-01-01T00:00:00.000Z", "end": end}]}},
                "fields_read": {object: ["Id", object]}})
        };
        let merged = merge_slices(
            &source("Contact", "2024-01-01T00:00:00.000Z"),
            &source("Lead", "2024-02-01T00:00:00.000Z"),
        );
        assert_eq!(
            merged["fields_read"],
            json!({"Contact": ["Id", "Contact"], "Lead": ["Id", "Lead"]})
        );
        assert_eq!(merged.get("start_date"), None);
    }

    #[test]
    fn a_filter_no_longer_read_with_is_named() {
        let mut read = FieldsRead::default();
        let list = |f: &[&str]| f.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        read.insert("Lead", &list(&["Id", "soql_where IsConverted = false"]));
        read.insert("Contact", &list(&["Id"]));
        assert_eq!(
            read.dropped_filter("Lead", &list(&["Id"])),
            Some("soql_where (none; was IsConverted = false)".to_string())
        );
        // Changed, not dropped: `new_for` names the new one.
        assert_eq!(
            read.dropped_filter("Lead", &list(&["Id", "soql_where Status = 'Open'"])),
            None
        );
        assert_eq!(read.dropped_filter("Contact", &list(&["Id"])), None);
        assert_eq!(read.dropped_filter("Account", &list(&["Id"])), None);
    }

    #[test]
    fn formula_definitions_are_compared_only_with_recorded_ones() {
        let mut read = FieldsRead::default();
        let list = |f: &[&str]| f.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        read.insert("Contact", &list(&["Id", "Label__c"]));
        read.insert(
            "Opportunity",
            &list(&["Id", "W__c", "formula W__c = Amount * Probability / 100"]),
        );
        // Recorded before definitions were: not compared.
        assert_eq!(
            read.new_for(
                "Contact",
                &list(&["Id", "Label__c", "formula Label__c = A & B"])
            ),
            Some(vec![])
        );
        // The same definition (names are case-insensitive), then an edited one.
        assert_eq!(
            read.new_for(
                "Opportunity",
                &list(&["ID", "w__c", "formula w__c = Amount * Probability / 100"])
            ),
            Some(vec![])
        );
        assert_eq!(
            read.new_for(
                "Opportunity",
                &list(&["Id", "W__c", "formula W__c = Amount * 2 / 100"])
            ),
            Some(list(&["formula W__c = Amount * 2 / 100"]))
        );
        // A string literal's case is part of the definition.
        read.insert(
            "Lead",
            &list(&[
                "formula R__c = IF(Hot__c, \"Hot\", \"\")",
                "soql_where Rating = 'Hot'",
            ]),
        );
        assert_eq!(
            read.new_for(
                "Lead",
                &list(&[
                    "formula r__c = IF(Hot__c, \"HOT\", \"\")",
                    "soql_where Rating = 'HOT'"
                ])
            ),
            Some(list(&[
                "formula r__c = IF(Hot__c, \"HOT\", \"\")",
                "soql_where Rating = 'HOT'"
            ]))
        );
        // A formula field newly read is new by its name; its definition is not compared.
        assert_eq!(
            read.new_for("Opportunity", &list(&["Id", "X__c", "formula X__c = Y__c"])),
            Some(list(&["X__c"]))
        );
        assert_eq!(formula_of("formula A__c = B & \" = \""), Some("A__c"));
        assert_eq!(formula_of("formulaic"), None);
    }

    #[test]
    fn fields_read_and_start_dates_round_trip() {
        let mut fresh = Freshness::default();
        fresh.fields_read.insert(
            "Account",
            &["SystemModstamp".into(), "Id".into(), "Industry".into()],
        );
        fresh
            .start_date
            .0
            .insert("Account".into(), dt("2024-01-01T00:00:00Z"));
        let s = StreamState {
            cursor: Some(Cursor::new(
                "SystemModstamp",
                dt("2024-03-01T00:00:00Z"),
                None,
            )),
            fresh,
            ..StreamState::default()
        };
        let v = s.to_value();
        assert_eq!(
            v,
            json!({
                "cursor_field": "SystemModstamp", "cursor": "2024-03-01T00:00:00.000Z",
                "fields_read": {"Account": ["Id", "Industry", "SystemModstamp"]},
                "start_date": {"Account": "2024-01-01T00:00:00.000Z"}
            })
        );
        assert_eq!(StreamState::parse(&v, "SystemModstamp").unwrap(), s);
        let read = &s.fresh.fields_read;
        let now = |f: &[&str]| f.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            read.new_for("Account", &now(&["ID", "Name", "Industry"])),
            Some(vec!["Name".to_string()])
        );
        assert_eq!(read.new_for("Account", &now(&["Id"])), Some(vec![]));
        assert_eq!(read.new_for("Contact", &now(&["Id"])), None);
        assert_eq!(
            StreamState::parse(&json!({"start_date": {"Account": 3}}), "SystemModstamp")
                .unwrap_err(),
            "start_date.Account: 3 is not a datetime string"
        );
    }

    #[test]
    fn mapped_form_keeps_source_order() {
        let v = json!({"sources": {
            "Lead": {"cursor_field": "SystemModstamp", "cursor": "2024-02-01T00:00:00.000Z"},
            "Contact": {"cursor_field": "LastModifiedDate", "cursor": "2024-01-01T00:00:00.000Z"}}});
        let s = StreamState::parse(&v, "SystemModstamp").unwrap();
        assert_eq!(s.cursor, None);
        assert_eq!(
            s.sources
                .0
                .iter()
                .map(|(o, _)| o.as_str())
                .collect::<Vec<_>>(),
            vec!["Lead", "Contact"]
        );
        assert_eq!(
            s.sources.get("Contact").unwrap().cursor_field,
            "LastModifiedDate"
        );
        assert_eq!(s.to_value(), v);
    }

    #[test]
    fn reads_airbyte_forms() {
        assert_eq!(
            cursor_of(json!({"SystemModstamp": "2022-11-01T00:00:00.000+0000"})),
            Some(dt("2022-11-01T00:00:00Z"))
        );
        let lmd = json!({"LastModifiedDate": "2022-11-01T00:00:00.000+0000"});
        let s = StreamState::parse(&lmd, "LastModifiedDate").unwrap();
        assert_eq!(
            s.cursor.as_ref().unwrap().cursor,
            dt("2022-11-01T00:00:00Z")
        );
        assert_eq!(s.cursor.unwrap().cursor_field, "LastModifiedDate");
        let slices = json!({"state_type": "date-range", "slices": [
            {"start": "2024-02-01T00:00:00.000Z", "end": "2024-03-01T00:00:00.000Z"},
            {"start": "2024-01-01T00:00:00.000Z", "end": "2024-02-01T00:00:00.000Z"},
            {"start": "2024-04-01T00:00:00.000Z", "end": "2024-05-01T00:00:00.000Z"}]});
        assert_eq!(
            cursor_of(slices),
            Some(dt("2024-03-01T00:00:00Z")),
            "stops at the gap"
        );
        let empty_slices = json!({"slices": [], "SystemModstamp": "2023-01-01T00:00:00Z"});
        assert_eq!(cursor_of(empty_slices), Some(dt("2023-01-01T00:00:00Z")));
        // Whatever the form read, sfetl writes its own.
        let s = StreamState::parse(
            &json!({"SystemModstamp": "2022-11-01T00:00:00.000+0000"}),
            "SystemModstamp",
        )
        .unwrap();
        assert_eq!(
            s.to_value(),
            json!({"cursor_field": "SystemModstamp", "cursor": "2022-11-01T00:00:00.000Z"})
        );
    }

    #[test]
    fn deletions_lagging_the_cursor_round_trip_and_older_states_still_load() {
        // A checkpoint after a page: the window's deletions are delivered up to its start.
        let c = Cursor::new(
            "SystemModstamp",
            dt("2025-06-27T00:00:00Z"),
            Some(dt("2025-06-19T23:55:00Z")),
        );
        let s = StreamState {
            cursor: Some(c.clone()),
            ..StreamState::default()
        };
        let v = s.to_value();
        assert_eq!(
            v.to_string(),
            r#"{"cursor_field":"SystemModstamp","cursor":"2025-06-27T00:00:00.000Z","deletions_to":"2025-06-19T23:55:00.000Z"}"#
        );
        assert_eq!(StreamState::parse(&v, "SystemModstamp").unwrap(), s);
        // Not behind the cursor: nothing to remember, nothing written.
        for at in ["2025-06-27T00:00:00Z", "2025-06-28T00:00:00Z"] {
            let c = Cursor::new("SystemModstamp", dt("2025-06-27T00:00:00Z"), Some(dt(at)));
            assert_eq!(c.deletions_to, None, "{at}");
        }
        let read = |v: Value| StreamState::parse(&v, "SystemModstamp").unwrap().cursor;
        let ahead = json!({"cursor": "2025-06-27T00:00:00.000Z", "deletions_to": "2025-06-28T00:00:00.000Z"});
        assert_eq!(read(ahead).unwrap().deletions_to, None);
        // States written before the field (or by Airbyte) load with the deletions at the cursor.
        let old = json!({"cursor_field": "SystemModstamp", "cursor": "2025-06-27T00:00:00.000Z"});
        assert_eq!(read(old.clone()).unwrap().deletions_to, None);
        assert_eq!(
            StreamState::parse(&old, "SystemModstamp")
                .unwrap()
                .to_value(),
            old
        );
        let legacy = json!({"SystemModstamp": "2022-11-01T00:00:00.000+0000"});
        assert_eq!(read(legacy).unwrap().deletions_to, None);
        let nulled = json!({"cursor": "2025-06-27T00:00:00.000Z", "deletions_to": null});
        assert_eq!(read(nulled).unwrap().deletions_to, None);
        let err = StreamState::parse(
            &json!({"cursor": "2025-06-27T00:00:00.000Z", "deletions_to": "later"}),
            "SystemModstamp",
        )
        .unwrap_err();
        assert_eq!(err, "`deletions_to`: \"later\" is not a datetime");
    }

    #[test]
    fn a_mapped_stream_keeps_the_lagging_deletions_of_each_source() {
        let v = json!({"sources": {
            "Lead": {"cursor_field": "SystemModstamp", "cursor": "2024-02-01T00:00:00.000Z",
                     "deletions_to": "2024-01-20T00:00:00.000Z"},
            "Contact": {"cursor_field": "SystemModstamp", "cursor": "2024-01-01T00:00:00.000Z"}}});
        let s = StreamState::parse(&v, "SystemModstamp").unwrap();
        assert_eq!(
            s.sources.get("Lead").unwrap().deletions_to,
            Some(dt("2024-01-20T00:00:00Z"))
        );
        assert_eq!(s.sources.get("Contact").unwrap().deletions_to, None);
        assert_eq!(s.to_value(), v);
    }

    #[test]
    fn merged_slices_keep_lagging_deletions_only_while_no_slice_reads_past_them() {
        let killed = json!({"cursor_field": "SystemModstamp", "cursor": "2025-06-27T00:00:00.000Z",
                            "deletions_to": "2025-06-19T23:55:00.000Z"});
        let slice = |start: &str, end: &str| {
            json!({"cursor_field": "SystemModstamp", "state_type": "date-range",
                   "slices": [{"start": start, "end": end}]})
        };
        let parsed = |v: &Value| {
            StreamState::parse(v, "SystemModstamp")
                .unwrap()
                .cursor
                .unwrap()
        };
        // The plan's first slice, read from the killed STATE, asked for the deletions it lacked:
        // past its end, nothing lags.
        let first = slice("2025-06-26T23:50:00.000Z", "2025-06-30T00:00:00.000Z");
        for merged in [merge_slices(&killed, &first), merge_slices(&first, &killed)] {
            let c = parsed(&merged);
            assert_eq!(c.cursor, dt("2025-06-30T00:00:00Z"), "{merged}");
            assert_eq!(c.deletions_to, None, "{merged}");
        }
        // Only a later slice completed: the stream resumes from the killed STATE, still lagging.
        let later = slice("2025-07-01T00:00:00.000Z", "2025-07-02T00:00:00.000Z");
        let merged = merge_slices(&killed, &later);
        assert_eq!(parsed(&merged), parsed(&killed), "{merged}");
        // ...and merged again with another slice, still.
        let again = merge_slices(
            &merged,
            &slice("2025-07-02T00:00:00.000Z", "2025-07-03T00:00:00.000Z"),
        );
        assert_eq!(parsed(&again), parsed(&killed), "{again}");
        // Per source in a mapped stream.
        let mapped = |blob: &Value| json!({"sources": {"Lead": blob}});
        let merged = merge_slices(&mapped(&killed), &mapped(&later));
        let s = StreamState::parse(&merged, "SystemModstamp").unwrap();
        assert_eq!(s.sources.get("Lead"), Some(&parsed(&killed)), "{merged}");
        let merged = merge_slices(&mapped(&killed), &mapped(&first));
        let s = StreamState::parse(&merged, "SystemModstamp").unwrap();
        assert_eq!(
            s.sources.get("Lead").unwrap().deletions_to,
            None,
            "{merged}"
        );
    }

    #[test]
    fn malformed_blobs_say_what_is_wrong() {
        let err = |v: Value| StreamState::parse(&v, "SystemModstamp").unwrap_err();
        assert_eq!(err(json!({"cursor": "soon"})), "\"soon\" is not a datetime");
        assert_eq!(err(json!({"cursor": 5})), "5 is not a datetime string");
        assert_eq!(err(json!("x")), "\"x\" is not a JSON object");
        assert_eq!(
            err(json!({"sources": {"Lead": {"cursor": "never"}}})),
            "sources.Lead: \"never\" is not a datetime"
        );
        assert!(
            err(json!({"cursor": "2024-01-01T00:00:00Z", "output": {"parts": "x"}}))
                .starts_with("`output` must be {\"sync_id\": \"...\", \"parts\": N}")
        );
    }
}
