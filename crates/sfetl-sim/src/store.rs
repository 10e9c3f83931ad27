//! The record store: one compact columnar table per object.
//!
//! Rows are never materialised as maps: each field is a typed vector (text as one byte arena plus
//! end offsets, datetimes as epoch milliseconds, references as packed (object, row) pairs, ids
//! derived from the row number), so `--scale 1000000` (about 7M rows) fits in a few GB and Bulk
//! results can be rendered straight from the columns at hundreds of MB/s.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::describe::{Catalog, FType, FieldMeta, ObjectMeta};
pub use super::wire::*;

/// Row state: live.
pub const LIVE: u8 = 0;
/// Row state: in the recycle bin (IsDeleted = true, visible to queryAll).
pub const DELETED: u8 = 1;
/// Row state: purged from the recycle bin (gone for good).
pub const PURGED: u8 = 2;

/// Sentinel of a null reference.
pub const NULL_REF: u64 = u64::MAX;
const NULL_I64: i64 = i64::MIN;
const NULL_I32: i32 = i32::MIN;

/// One value read from or written to the store.
#[derive(Debug, Clone, PartialEq)]
pub enum Val<'a> {
    /// SQL null.
    Null,
    /// Text of any text-like type.
    Str(Cow<'a, str>),
    /// boolean.
    Bool(bool),
    /// double / currency / percent.
    Num(f64),
    /// int / long.
    Int(i64),
    /// date: days since 1970-01-01.
    Date(i32),
    /// datetime: milliseconds since the epoch (UTC).
    DateTime(i64),
    /// time: milliseconds since midnight.
    Time(i32),
    /// A record id, packed as `(object << 32) | row`.
    Ref(u64),
}

impl Val<'_> {
    /// Whether this is null.
    pub fn is_null(&self) -> bool {
        matches!(self, Val::Null)
    }
    /// Detaches a value from the store's borrow.
    pub fn into_owned(self) -> Val<'static> {
        match self {
            Val::Str(s) => Val::Str(Cow::Owned(s.into_owned())),
            Val::Null => Val::Null,
            Val::Bool(b) => Val::Bool(b),
            Val::Num(n) => Val::Num(n),
            Val::Int(n) => Val::Int(n),
            Val::Date(n) => Val::Date(n),
            Val::DateTime(n) => Val::DateTime(n),
            Val::Time(n) => Val::Time(n),
            Val::Ref(n) => Val::Ref(n),
        }
    }
}

/// Text column: one arena of bytes plus end offsets, or (for low-cardinality fields such as
/// picklists and names) 16-bit codes into a dictionary; updates go to a small overlay. An
/// empty string is stored as null, as Salesforce stores it: a blank text field reads back as
/// `null` in REST JSON (every blank in the recorded responses) and `""` in Bulk CSV.
#[derive(Debug, Default)]
pub struct TextCol {
    data: Vec<u8>,
    ends: Vec<u32>,
    nulls: Vec<u64>,
    dict: Option<Dict>,
    over: HashMap<u32, Option<Box<str>>>,
}

/// Dictionary of a low-cardinality text column.
#[derive(Debug, Default)]
struct Dict {
    codes: Vec<u16>,
    values: Vec<Box<str>>,
    index: HashMap<Box<str>, u16>,
}

const CODE_NULL: u16 = u16::MAX;
const CODE_OVERLAY: u16 = u16::MAX - 1;

impl TextCol {
    fn dictionary() -> TextCol {
        TextCol {
            dict: Some(Dict::default()),
            ..TextCol::default()
        }
    }
    fn reserve(&mut self, n: usize) {
        match &mut self.dict {
            Some(d) => d.codes.reserve_exact(n),
            None => {
                self.ends.reserve_exact(n);
                self.nulls.reserve_exact(n / 64 + 1);
            }
        }
    }
    fn push(&mut self, v: Option<&str>) {
        let v = v.filter(|s| !s.is_empty());
        if let Some(d) = &mut self.dict {
            let code = match v {
                None => CODE_NULL,
                Some(s) => match d.index.get(s) {
                    Some(&c) => c,
                    None if d.values.len() < CODE_OVERLAY as usize => {
                        let c = d.values.len() as u16;
                        d.values.push(s.into());
                        d.index.insert(s.into(), c);
                        c
                    }
                    None => {
                        self.over.insert(d.codes.len() as u32, Some(s.into()));
                        CODE_OVERLAY
                    }
                },
            };
            d.codes.push(code);
            return;
        }
        let row = self.ends.len();
        if let Some(s) = v {
            self.data.extend_from_slice(s.as_bytes());
        }
        self.ends.push(self.data.len() as u32);
        if row / 64 >= self.nulls.len() {
            self.nulls.push(0);
        }
        if v.is_none() {
            self.nulls[row / 64] |= 1 << (row % 64);
        }
    }
    /// The text of a row (None = null).
    pub fn get(&self, row: usize) -> Option<&str> {
        if !self.over.is_empty()
            && let Some(v) = self.over.get(&(row as u32))
        {
            return v.as_deref();
        }
        if let Some(d) = &self.dict {
            return match d.codes[row] {
                CODE_NULL | CODE_OVERLAY => None,
                c => Some(&d.values[c as usize]),
            };
        }
        if self.nulls[row / 64] & (1 << (row % 64)) != 0 {
            return None;
        }
        let start = if row == 0 {
            0
        } else {
            self.ends[row - 1] as usize
        };
        let bytes = &self.data[start..self.ends[row] as usize];
        // SAFETY-free: the arena only ever receives whole `&str`s, so every slice is UTF-8.
        Some(std::str::from_utf8(bytes).unwrap_or(""))
    }
    fn set(&mut self, row: usize, v: Option<&str>) {
        let v = v.filter(|s| !s.is_empty());
        self.over.insert(row as u32, v.map(Into::into));
    }
    fn heap_bytes(&self) -> usize {
        let dict = self.dict.as_ref().map_or(0, |d| {
            d.codes.capacity() * 2 + d.values.iter().map(|v| v.len() * 2 + 40).sum::<usize>()
        });
        self.data.capacity() + self.ends.capacity() * 4 + self.nulls.capacity() * 8 + dict
    }
}

/// A formula evaluated at read time.
#[derive(Debug, Clone)]
pub enum Formula {
    /// `A & "lit" & B`: text concatenation (nulls count as empty).
    Concat(Vec<Result<usize, String>>),
    /// `A * B / 100`: numeric, null when either is null.
    MulDiv100(usize, usize),
    /// `FirstName LastName` style name built by the platform (`Name` of people).
    PersonName {
        /// Index of FirstName.
        first: usize,
        /// Index of LastName.
        last: usize,
    },
    /// A cross-object formula (`Account.Name`, `TEXT(Account.Industry)`): the parent's field,
    /// read through the reference when the row is read, so renaming the parent changes it while
    /// the row's own timestamps stay put. Needs the other tables: [`Store::get`] computes it.
    Parent {
        /// Index of the reference field (`AccountId`).
        reference: usize,
        /// The parent's field, by name.
        field: String,
    },
    /// `TODAY() - DATEVALUE(field)`: whole days since a datetime or date, following the org's
    /// day ([`DayClock::today`]), so it changes every day without any write. [`Store::get`]
    /// computes it.
    DaysSince(usize),
}

impl Formula {
    /// Whether the formula reads field `field` (Salesforce refuses to delete or retype a
    /// field a formula references).
    pub fn reads(&self, field: usize) -> bool {
        match self {
            Formula::Concat(parts) => parts.iter().any(|p| p.as_ref() == Ok(&field)),
            Formula::MulDiv100(a, b) => *a == field || *b == field,
            Formula::PersonName { first, last } => *first == field || *last == field,
            Formula::Parent { reference, .. } => *reference == field,
            Formula::DaysSince(f) => *f == field,
        }
    }
}

/// Storage of one field.
#[derive(Debug)]
pub enum Column {
    /// The `Id` field: derived from the row number.
    Id,
    /// The `IsDeleted` field: derived from the row state.
    IsDeleted,
    /// A compound address or location: built from its components.
    Compound(Vec<(&'static str, usize)>),
    /// A formula field.
    Formula(Formula),
    /// Text-like values.
    Text(TextCol),
    /// booleans: 0, 1, 2 = null.
    Bool(Vec<u8>),
    /// doubles, NaN = null.
    F64(Vec<f64>),
    /// ints and longs.
    I64(Vec<i64>),
    /// dates (days since epoch).
    Date(Vec<i32>),
    /// datetimes (ms since epoch).
    DateTime(Vec<i64>),
    /// times (ms since midnight).
    Time(Vec<i32>),
    /// references that can point at several stored objects (packed object/row).
    Ref(Vec<u64>),
    /// references to one stored object: just the row (u32::MAX = null).
    Ref32(usize, Vec<u32>),
}

/// One object's rows.
#[derive(Debug)]
pub struct Table {
    /// Index of the object in the catalogue.
    pub obj: usize,
    /// Columns, in describe field order.
    pub cols: Vec<Column>,
    /// Per-row state ([`LIVE`], [`DELETED`], [`PURGED`]).
    pub state: Vec<u8>,
    /// Index of SystemModstamp (or LastModifiedDate, or CreatedDate for objects without it).
    pub sysmod: usize,
    /// Index of LastModifiedDate.
    pub lastmod: usize,
    /// The delete log: (deletedDate in epoch ms, row) of every deletion, soft or hard, oldest
    /// first, as the `deleted` replication endpoint reads it.
    pub delete_log: Vec<(i64, u32)>,
    /// Entries deleted before this (epoch ms) were purged from the delete log.
    pub log_purged_before: i64,
    /// Rows in the recycle bin only because a cascade took them with a parent: row -> that
    /// parent (packed). Undeleting the parent restores them; they cannot be undeleted alone.
    pub deleted_with: HashMap<u32, u64>,
    /// Changes made to rows so far (each [`Table::set`] and each change of a row's state):
    /// the table's clock for the versions Bulk query results are read at.
    changes: u64,
    /// `changes` when the latest Bulk query job completed, plus one (0: no job yet). Atomic
    /// because jobs complete under the store's read lock.
    pinned: AtomicU64,
    /// Rows as they were before their first change since a Bulk query job completed, oldest
    /// first: a job's results show the rows as the job's query found them (see
    /// [`Store::pin`]), whatever changed while they wait to be downloaded.
    history: HashMap<u32, Vec<Version>>,
    /// One bit per row: whether `history` holds versions of it (a Bulk result page checks
    /// every row, most of which never changed).
    has_history: Vec<u64>,
}

/// A row as it stood until change number `until` of its table.
#[derive(Debug)]
struct Version {
    until: u64,
    state: u8,
    vals: Box<[Val<'static>]>,
}

impl Table {
    /// Builds an empty table for an object.
    pub fn new(obj: usize, meta: &ObjectMeta) -> Table {
        let idx = |n: &str| meta.field(n).unwrap_or(0);
        let mut cols = Vec::with_capacity(meta.fields.len());
        for f in &meta.fields {
            cols.push(column_for(meta, f));
        }
        Table {
            obj,
            cols,
            state: Vec::new(),
            // Objects without SystemModstamp (Share, History) stamp what they have.
            sysmod: meta
                .field("SystemModstamp")
                .or_else(|| meta.field("LastModifiedDate"))
                .unwrap_or_else(|| idx("CreatedDate")),
            lastmod: idx("LastModifiedDate"),
            delete_log: Vec::new(),
            log_purged_before: i64::MIN,
            deleted_with: HashMap::new(),
            changes: 0,
            pinned: AtomicU64::new(0),
            history: HashMap::new(),
            has_history: Vec::new(),
        }
    }

    /// Number of rows ever created (including purged ones).
    pub fn len(&self) -> usize {
        self.state.len()
    }

    /// Whether the table has no rows at all.
    pub fn is_empty(&self) -> bool {
        self.state.is_empty()
    }

    /// Reserves room for `n` more rows in every column.
    pub fn reserve(&mut self, n: usize) {
        self.state.reserve_exact(n);
        for c in &mut self.cols {
            match c {
                Column::Text(t) => t.reserve(n),
                Column::Bool(v) => v.reserve_exact(n),
                Column::F64(v) => v.reserve_exact(n),
                Column::I64(v) | Column::DateTime(v) => v.reserve_exact(n),
                Column::Date(v) | Column::Time(v) => v.reserve_exact(n),
                Column::Ref(v) => v.reserve_exact(n),
                Column::Ref32(_, v) => v.reserve_exact(n),
                _ => {}
            }
        }
    }

    /// Appends a row of stored values (one per field; derived fields ignore theirs).
    pub fn push_row(&mut self, vals: &[Val<'_>]) -> usize {
        let row = self.state.len();
        self.state.push(LIVE);
        for (c, v) in self.cols.iter_mut().zip(vals) {
            push_val(c, v);
        }
        row
    }

    /// Reads a field of a row.
    pub fn get(&self, row: usize, field: usize) -> Val<'_> {
        match &self.cols[field] {
            Column::Id => Val::Ref(pack(self.obj, row)),
            Column::IsDeleted => Val::Bool(self.state[row] != LIVE),
            Column::Compound(_) => Val::Null,
            Column::Formula(f) => match f {
                Formula::Concat(parts) => {
                    let mut s = String::new();
                    for p in parts {
                        match p {
                            Ok(i) => {
                                if let Val::Str(t) = self.get(row, *i) {
                                    s.push_str(&t)
                                }
                            }
                            Err(lit) => s.push_str(lit),
                        }
                    }
                    // A blank formula result is null, as a blank stored value is.
                    if s.is_empty() {
                        Val::Null
                    } else {
                        Val::Str(Cow::Owned(s))
                    }
                }
                Formula::MulDiv100(a, b) => match (self.get(row, *a), self.get(row, *b)) {
                    (Val::Num(x), Val::Num(y)) => Val::Num((x * y / 100.0 * 100.0).round() / 100.0),
                    _ => Val::Null,
                },
                // Computed by `Store::get`, which sees the other tables and the org's day.
                Formula::Parent { .. } | Formula::DaysSince(_) => Val::Null,
                Formula::PersonName { first, last } => {
                    match (self.get(row, *first), self.get(row, *last)) {
                        (Val::Str(f), Val::Str(l)) if !f.is_empty() => {
                            Val::Str(Cow::Owned(format!("{f} {l}")))
                        }
                        (_, Val::Str(l)) => Val::Str(l),
                        (Val::Str(f), _) => Val::Str(f),
                        _ => Val::Null,
                    }
                }
            },
            Column::Text(t) => t.get(row).map_or(Val::Null, |s| Val::Str(Cow::Borrowed(s))),
            Column::Bool(v) => match v[row] {
                2 => Val::Null,
                b => Val::Bool(b == 1),
            },
            Column::F64(v) => {
                if v[row].is_nan() {
                    Val::Null
                } else {
                    Val::Num(v[row])
                }
            }
            Column::I64(v) => {
                if v[row] == NULL_I64 {
                    Val::Null
                } else {
                    Val::Int(v[row])
                }
            }
            Column::Date(v) => {
                if v[row] == NULL_I32 {
                    Val::Null
                } else {
                    Val::Date(v[row])
                }
            }
            Column::DateTime(v) => {
                if v[row] == NULL_I64 {
                    Val::Null
                } else {
                    Val::DateTime(v[row])
                }
            }
            Column::Time(v) => {
                if v[row] == NULL_I32 {
                    Val::Null
                } else {
                    Val::Time(v[row])
                }
            }
            Column::Ref32(t, v) => {
                if v[row] == u32::MAX {
                    Val::Null
                } else {
                    Val::Ref(pack(*t, v[row] as usize))
                }
            }
            Column::Ref(v) => {
                if v[row] == NULL_REF {
                    Val::Null
                } else {
                    Val::Ref(v[row])
                }
            }
        }
    }

    /// Writes a stored field of a row (derived fields are silently left alone).
    pub fn set(&mut self, row: usize, field: usize, v: &Val<'_>) {
        self.keep_version(row);
        match &mut self.cols[field] {
            Column::Text(t) => t.set(
                row,
                match v {
                    Val::Null => None,
                    Val::Str(s) => Some(s),
                    _ => None,
                },
            ),
            Column::Bool(c) => {
                c[row] = match v {
                    Val::Bool(b) => *b as u8,
                    _ => 2,
                }
            }
            Column::F64(c) => {
                c[row] = match v {
                    Val::Num(n) => *n,
                    Val::Int(n) => *n as f64,
                    _ => f64::NAN,
                }
            }
            Column::I64(c) => {
                c[row] = match v {
                    Val::Int(n) => *n,
                    Val::Num(n) => *n as i64,
                    _ => NULL_I64,
                }
            }
            Column::Date(c) => {
                c[row] = match v {
                    Val::Date(n) => *n,
                    _ => NULL_I32,
                }
            }
            Column::DateTime(c) => {
                c[row] = match v {
                    Val::DateTime(n) => *n,
                    _ => NULL_I64,
                }
            }
            Column::Time(c) => {
                c[row] = match v {
                    Val::Time(n) => *n,
                    _ => NULL_I32,
                }
            }
            Column::Ref32(t, c) => {
                c[row] = match v {
                    Val::Ref(n) if unpack(*n).0 == *t => unpack(*n).1 as u32,
                    _ => u32::MAX,
                }
            }
            Column::Ref(c) => {
                c[row] = match v {
                    Val::Ref(n) => *n,
                    _ => NULL_REF,
                }
            }
            _ => {}
        }
    }

    /// Appends the column of a field added to the object: `fill` in every existing row (null,
    /// or `false` for a checkbox, as Salesforce fills a new field).
    pub fn add_column(&mut self, mut col: Column, fill: &Val<'_>) {
        for _ in 0..self.len() {
            push_val(&mut col, fill);
        }
        self.cols.push(col);
    }

    /// Replaces a field's column by `col` holding `vals`, one per row (a field whose type
    /// changed).
    pub fn replace_column(&mut self, field: usize, mut col: Column, vals: &[Val<'_>]) {
        for v in vals {
            push_val(&mut col, v);
        }
        self.cols[field] = col;
    }

    /// The formula field reading `field`, if one does.
    pub fn formula_reading(&self, field: usize) -> Option<usize> {
        self.cols
            .iter()
            .position(|c| matches!(c, Column::Formula(f) if f.reads(field)))
    }

    /// Stamps a row as modified by the platform at `ms` (SystemModstamp only).
    pub fn touch(&mut self, row: usize, ms: i64) {
        let f = self.sysmod;
        self.set(row, f, &Val::DateTime(ms));
    }

    /// Deletes a row at `ms`: to the recycle bin ([`DELETED`]) or, `hard`, for good
    /// ([`PURGED`]); SystemModstamp takes the time and the delete log an entry.
    pub fn delete_row(&mut self, row: usize, ms: i64, hard: bool) {
        self.keep_version(row);
        self.state[row] = if hard { PURGED } else { DELETED };
        self.touch(row, ms);
        self.delete_log.push((ms, row as u32));
        self.deleted_with.remove(&(row as u32));
    }

    /// Restores a row from the recycle bin at `ms`: live again, SystemModstamp moved
    /// (LastModifiedDate left as it was), the delete log's entry kept.
    pub fn undelete_row(&mut self, row: usize, ms: i64) {
        self.keep_version(row);
        self.state[row] = LIVE;
        self.touch(row, ms);
        self.deleted_with.remove(&(row as u32));
    }

    /// Purges a row from the recycle bin for good ([`PURGED`]): its data stays, as the
    /// results of a Bulk query job that found it still show it.
    pub fn purge_row(&mut self, row: usize) {
        self.keep_version(row);
        self.state[row] = PURGED;
    }

    /// Counts a change of `row` and, when it is the row's first since the latest Bulk query
    /// job completed, keeps the row as it stood for that job's results.
    fn keep_version(&mut self, row: usize) {
        self.changes += 1;
        let pinned = *self.pinned.get_mut();
        if pinned == 0 || row >= self.state.len() {
            return;
        }
        let kept_since_pin = self
            .history
            .get(&(row as u32))
            .and_then(|v| v.last())
            .is_some_and(|v| v.until > pinned - 1);
        if kept_since_pin {
            return;
        }
        let vals = (0..self.cols.len())
            .map(|f| self.get(row, f).into_owned())
            .collect();
        let version = Version {
            until: self.changes,
            state: self.state[row],
            vals,
        };
        self.history.entry(row as u32).or_default().push(version);
        if self.has_history.len() <= row / 64 {
            self.has_history.resize(row / 64 + 1, 0);
        }
        self.has_history[row / 64] |= 1 << (row % 64);
    }

    /// The version of `row` that stood at change count `at`, if the row changed since.
    fn version_at(&self, row: usize, at: u64) -> Option<&Version> {
        let bit = self
            .has_history
            .get(row / 64)
            .map_or(0, |w| w >> (row % 64) & 1);
        if bit == 0 {
            return None;
        }
        self.history
            .get(&(row as u32))?
            .iter()
            .find(|v| v.until > at)
    }

    /// The version of `row` a job pinned at `at` ([`Store::pin`]; None: now) reads, if the
    /// row changed since.
    fn pinned_version(&self, row: usize, at: Option<&[u64]>) -> Option<&Version> {
        self.version_at(row, *at?.get(self.obj)?)
    }

    /// A row's state ([`LIVE`], [`DELETED`], [`PURGED`]) as a job pinned at `at` sees it
    /// (None: now).
    pub fn state_at(&self, row: usize, at: Option<&[u64]>) -> u8 {
        self.pinned_version(row, at)
            .map_or(self.state[row], |v| v.state)
    }

    /// Reads a field of a row as a job pinned at `at` sees it (None: now).
    pub fn get_at(&self, row: usize, field: usize, at: Option<&[u64]>) -> Val<'_> {
        match self.pinned_version(row, at) {
            None => self.get(row, field),
            Some(v) => match v.vals.get(field) {
                Some(Val::Str(s)) => Val::Str(Cow::Borrowed(s)),
                Some(val) => val.clone(),
                // A field added since: it did not exist then.
                None => Val::Null,
            },
        }
    }

    /// Purges the delete log of entries deleted before `before` (epoch ms), as Salesforce's
    /// background process does; returns how many went.
    pub fn purge_delete_log(&mut self, before: i64) -> usize {
        let n = self.delete_log.len();
        self.delete_log.retain(|&(ms, _)| ms >= before);
        self.log_purged_before = self.log_purged_before.max(before);
        n - self.delete_log.len()
    }

    /// Stamps a row as modified by a user at `ms` (LastModifiedDate and SystemModstamp).
    pub fn modify(&mut self, row: usize, ms: i64) {
        let (f, g) = (self.sysmod, self.lastmod);
        self.set(row, f, &Val::DateTime(ms));
        self.set(row, g, &Val::DateTime(ms));
    }

    /// Approximate heap bytes held (for the memory report).
    pub fn heap_bytes(&self) -> usize {
        self.state.capacity()
            + self
                .cols
                .iter()
                .map(|c| match c {
                    Column::Text(t) => t.heap_bytes(),
                    Column::Bool(v) => v.capacity(),
                    Column::F64(v) => v.capacity() * 8,
                    Column::I64(v) | Column::DateTime(v) => v.capacity() * 8,
                    Column::Date(v) | Column::Time(v) => v.capacity() * 4,
                    Column::Ref(v) => v.capacity() * 8,
                    Column::Ref32(_, v) => v.capacity() * 4,
                    _ => 0,
                })
                .sum::<usize>()
            + self.has_history.capacity() * 8
            + self.history.values().map(Vec::len).sum::<usize>()
                * self.cols.len()
                * size_of::<Val<'static>>()
    }
}

/// The storage of a field of `meta`, empty.
pub fn column_for(meta: &ObjectMeta, f: &FieldMeta) -> Column {
    if f.name == "IsDeleted" {
        return Column::IsDeleted;
    }
    if f.calculated
        && let Some(formula) = parse_formula(meta, &f.sf_type, f.describe_formula(meta))
    {
        return Column::Formula(formula);
    }
    // RecentlyViewed's Name is the viewed record's name (an Account's here), not a person's.
    if f.name == "Name"
        && meta.name != "RecentlyViewed"
        && let (Some(first), Some(last)) = (meta.field("FirstName"), meta.field("LastName"))
    {
        return Column::Formula(Formula::PersonName { first, last });
    }
    match f.ftype {
        FType::Id => Column::Id,
        FType::Address | FType::Location => {
            let mut parts = Vec::new();
            for (i, c) in meta.fields.iter().enumerate() {
                if c.compound.as_deref() == Some(f.name.as_str()) {
                    parts.push((component_key(&c.name), i));
                }
            }
            Column::Compound(parts)
        }
        FType::Reference => {
            let stored: Vec<usize> = f
                .reference_to
                .iter()
                .filter_map(|t| super::describe::OBJECTS.iter().position(|o| o == t))
                .collect();
            match stored[..] {
                [one] => Column::Ref32(one, Vec::new()),
                _ => Column::Ref(Vec::new()),
            }
        }
        FType::Text if low_cardinality(f) => Column::Text(TextCol::dictionary()),
        FType::Text | FType::Base64 => Column::Text(TextCol::default()),
        FType::Boolean => Column::Bool(Vec::new()),
        FType::Int | FType::Long => Column::I64(Vec::new()),
        FType::Double => Column::F64(Vec::new()),
        FType::Date => Column::Date(Vec::new()),
        FType::DateTime => Column::DateTime(Vec::new()),
        FType::Time => Column::Time(Vec::new()),
    }
}

trait FormulaText {
    fn describe_formula<'m>(&self, meta: &'m ObjectMeta) -> &'m str;
}

impl FormulaText for FieldMeta {
    fn describe_formula<'m>(&self, meta: &'m ObjectMeta) -> &'m str {
        meta.describe["fields"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["name"] == self.name.as_str()))
            .and_then(|x| x["calculatedFormula"].as_str())
            .unwrap_or("")
    }
}

/// The storage of formula field `f` of `meta` under the definition `text`, when the simulator
/// can compute it (`None` otherwise): an admin's edit of a formula (`/__sim/schema/set_formula`).
pub fn formula_column(meta: &ObjectMeta, f: &FieldMeta, text: &str) -> Option<Column> {
    parse_formula(meta, &f.sf_type, text).map(Column::Formula)
}

fn parse_formula(meta: &ObjectMeta, sf_type: &str, text: &str) -> Option<Formula> {
    if let Some(f) = parse_dynamic_formula(meta, text) {
        return Some(f);
    }
    if text.contains('&') {
        let parts = text
            .split('&')
            .map(|p| {
                let p = p.trim();
                match p.strip_prefix('"').and_then(|p| p.strip_suffix('"')) {
                    Some(lit) => Some(Err(lit.to_string())),
                    None => meta.field(p).map(Ok),
                }
            })
            .collect::<Option<Vec<_>>>()?;
        return Some(Formula::Concat(parts));
    }
    let t: Vec<&str> = text.split_whitespace().collect();
    if sf_type != "string" && t.len() == 5 && t[1] == "*" && t[3] == "/" && t[4] == "100" {
        return Some(Formula::MulDiv100(meta.field(t[0])?, meta.field(t[2])?));
    }
    None
}

/// The formulas whose value changes without the row changing: a parent's field
/// (`Account.Name`, `TEXT(Account.Industry)`) and days since a date
/// (`TODAY() - DATEVALUE(CreatedDate)`).
fn parse_dynamic_formula(meta: &ObjectMeta, text: &str) -> Option<Formula> {
    let t: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if let Some(field) = t
        .strip_prefix("TODAY()-DATEVALUE(")
        .and_then(|r| r.strip_suffix(')'))
    {
        return Some(Formula::DaysSince(meta.field(field)?));
    }
    let path = t
        .strip_prefix("TEXT(")
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or(&t);
    let (rel, field) = path.split_once('.')?;
    let reference = meta.relationship(rel)?;
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '_';
    field.chars().all(ok).then(|| Formula::Parent {
        reference,
        field: field.to_string(),
    })
}

/// Text fields whose values repeat a lot (picklists, names, cities...): dictionary-encoded.
fn low_cardinality(f: &FieldMeta) -> bool {
    const UNIQUE_ISH: [&str; 8] = [
        "Name",
        "Company",
        "AccountNumber",
        "External_Id__c",
        "Username",
        "Alias",
        "TickerSymbol",
        "Subject",
    ];
    let by_type = !matches!(
        f.sf_type.as_str(),
        "email" | "phone" | "url" | "encryptedstring" | "anyType"
    );
    by_type
        && !UNIQUE_ISH.contains(&f.name.as_str())
        && !f.name.ends_with("Street")
        && !f.name.ends_with("PostalCode")
}

fn component_key(name: &str) -> &'static str {
    let n = name.trim_end_matches("__s");
    for (suffix, key) in [
        ("GeocodeAccuracy", "geocodeAccuracy"),
        ("PostalCode", "postalCode"),
        ("StateCode", "stateCode"),
        ("CountryCode", "countryCode"),
        ("Street", "street"),
        ("City", "city"),
        ("State", "state"),
        ("Country", "country"),
        ("Latitude", "latitude"),
        ("Longitude", "longitude"),
    ] {
        if n.ends_with(suffix) {
            return key;
        }
    }
    "unknown"
}

fn push_val(c: &mut Column, v: &Val<'_>) {
    match c {
        Column::Text(t) => t.push(match v {
            Val::Str(s) => Some(s),
            _ => None,
        }),
        Column::Bool(c) => c.push(match v {
            Val::Bool(b) => *b as u8,
            _ => 2,
        }),
        Column::F64(c) => c.push(match v {
            Val::Num(n) => *n,
            Val::Int(n) => *n as f64,
            _ => f64::NAN,
        }),
        Column::I64(c) => c.push(match v {
            Val::Int(n) => *n,
            Val::Num(n) => *n as i64,
            _ => NULL_I64,
        }),
        Column::Date(c) => c.push(match v {
            Val::Date(n) => *n,
            _ => NULL_I32,
        }),
        Column::DateTime(c) => c.push(match v {
            Val::DateTime(n) => *n,
            _ => NULL_I64,
        }),
        Column::Time(c) => c.push(match v {
            Val::Time(n) => *n,
            _ => NULL_I32,
        }),
        Column::Ref32(t, c) => c.push(match v {
            Val::Ref(n) if unpack(*n).0 == *t => unpack(*n).1 as u32,
            _ => u32::MAX,
        }),
        Column::Ref(c) => c.push(match v {
            Val::Ref(n) => *n,
            _ => NULL_REF,
        }),
        _ => {}
    }
}

/// All tables plus the catalogue they follow.
#[derive(Debug)]
pub struct Store {
    /// Metadata.
    pub catalog: Catalog,
    /// One table per stored object, in catalogue order.
    pub tables: Vec<Table>,
    /// The org's day for `TODAY()` in formulas and SOQL date literals (`/__sim/clock`).
    pub clock: DayClock,
    /// The org's clock (the one the OAuth server and every answer's `Date` read).
    pub org_clock: crate::clock::OrgClock,
    /// Lookups a deletion cleared, to put back on undelete: deleted record (packed) -> every
    /// (child record (packed), reference field) that pointed at it.
    pub cleared: HashMap<u64, Vec<(u64, usize)>>,
}

/// The org's "today": the org clock's UTC day unless pinned, shifted by whole days, so tests
/// of time-based formulas are exact without waiting for midnight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayClock {
    /// A fixed day (days since 1970-01-01), when pinned.
    pub pinned: Option<i32>,
    /// Days added to the org clock's day when not pinned.
    pub shift: i32,
}

impl DayClock {
    /// Today, as days since 1970-01-01 (UTC), the org's time being `now_ms`.
    pub fn today(&self, now_ms: i64) -> i32 {
        self.pinned
            .unwrap_or_else(|| now_ms.div_euclid(86_400_000) as i32 + self.shift)
    }
}

impl Store {
    /// An empty store for a catalogue.
    pub fn new(catalog: Catalog) -> Store {
        let tables = catalog
            .objects
            .iter()
            .enumerate()
            .map(|(i, m)| Table::new(i, m))
            .collect();
        Store {
            catalog,
            tables,
            clock: DayClock::default(),
            org_clock: Default::default(),
            cleared: HashMap::new(),
        }
    }

    /// The org's day, by its clock (`/__sim/clock`).
    pub fn today(&self) -> i32 {
        self.clock.today(self.org_clock.now_ms())
    }

    /// Reads a field of a row, computing the formulas a table cannot compute alone (a
    /// parent's field, days since a date); every value a query or record read answers comes
    /// through here.
    pub fn get(&self, obj: usize, row: usize, field: usize) -> Val<'_> {
        self.get_at(obj, row, field, None)
    }

    /// Reads a field of a row as it stood when a Bulk query job completed (`at`, the job's
    /// [`Store::pin`]; None: now), parents included.
    pub fn get_at(&self, obj: usize, row: usize, field: usize, at: Option<&[u64]>) -> Val<'_> {
        let t = &self.tables[obj];
        match &t.cols[field] {
            Column::Formula(Formula::Parent { reference, field }) => {
                match t.get_at(row, *reference, at) {
                    Val::Ref(r) => {
                        let (p, prow) = unpack(r);
                        let parent = &self.tables[p];
                        if prow >= parent.len() || parent.state_at(prow, at) == PURGED {
                            return Val::Null;
                        }
                        self.catalog.objects[p]
                            .field(field)
                            .map_or(Val::Null, |f| self.get_at(p, prow, f, at))
                    }
                    _ => Val::Null,
                }
            }
            Column::Formula(Formula::DaysSince(f)) => {
                let day = match t.get_at(row, *f, at) {
                    Val::DateTime(ms) => ms.div_euclid(86_400_000) as i32,
                    Val::Date(d) => d,
                    _ => return Val::Null,
                };
                Val::Num(f64::from(self.today() - day))
            }
            _ => t.get_at(row, field, at),
        }
    }

    /// Forgets every kept version once no Bulk query job's results need them (the last
    /// completed job was deleted): changes stop being kept until the next job completes.
    pub fn forget_versions(&mut self) {
        for t in &mut self.tables {
            *t.pinned.get_mut() = 0;
            t.history = HashMap::new();
            t.has_history = Vec::new();
        }
    }

    /// Pins the org as it stands, for a Bulk query job that just completed: every table's
    /// change count, under which [`Store::get_at`] reads rows as they are now, however they
    /// change later. Salesforce runs the query when the job is processed and serves the
    /// results it stored then ("the results of the SOQL query when you created the query
    /// job"), for as long as they are kept.
    pub fn pin(&self) -> Arc<[u64]> {
        self.tables
            .iter()
            .map(|t| {
                t.pinned.store(t.changes + 1, Ordering::Relaxed);
                t.changes
            })
            .collect()
    }

    /// The 18-character id of a packed reference.
    pub fn id_of(&self, packed: u64) -> String {
        let (obj, row) = unpack(packed);
        make_id(&self.catalog.objects[obj].prefix, row)
    }

    /// Resolves a 15- or 18-character id to its packed (object, row), if the row exists
    /// (purged rows do not).
    pub fn resolve(&self, id: &str) -> Option<u64> {
        let (prefix, row) = parse_id(id)?;
        let obj = self.catalog.object_by_prefix(prefix)?;
        let t = &self.tables[obj];
        (row < t.len() && t.state[row] != PURGED).then(|| pack(obj, row))
    }

    /// The row of record `id` of object `obj` in any state, purged included; None when `id`
    /// is another object's or no record's.
    pub fn row_of(&self, obj: usize, id: &str) -> Option<usize> {
        let (prefix, row) = parse_id(id)?;
        (self.catalog.object_by_prefix(prefix)? == obj && row < self.tables[obj].len())
            .then_some(row)
    }

    /// The row of the live record `id` of object `obj`; None when `id` is another object's,
    /// deleted, or no record's.
    pub fn live_row(&self, obj: usize, id: &str) -> Option<usize> {
        let (o, r) = unpack(self.resolve(id)?);
        (o == obj && self.tables[o].state[r] == LIVE).then_some(r)
    }

    /// Approximate heap bytes held by all tables.
    pub fn heap_bytes(&self) -> usize {
        self.tables.iter().map(Table::heap_bytes).sum()
    }
}

/// Packs an (object, row) pair.
pub fn pack(obj: usize, row: usize) -> u64 {
    ((obj as u64) << 32) | row as u64
}

/// Unpacks an (object, row) pair.
pub fn unpack(p: u64) -> (usize, usize) {
    ((p >> 32) as usize, (p & 0xffff_ffff) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(store: &Store, obj: usize, at: Option<&[u64]>) -> Val<'static> {
        let f = store.catalog.objects[obj].field("Name").unwrap();
        store.get_at(obj, 0, f, at).into_owned()
    }

    #[test]
    fn each_pin_reads_the_row_as_it_stood_when_taken() {
        let mut store = Store::new(Catalog::load(None).expect("embedded fixtures"));
        let obj = store.catalog.object("Account").unwrap();
        let f = store.catalog.objects[obj].field("Name").unwrap();
        let cols = store.tables[obj].cols.len();
        store.tables[obj].push_row(&vec![Val::Null; cols]);
        let set = |store: &mut Store, v: &str| store.tables[obj].set(0, f, &Val::Str(v.into()));
        set(&mut store, "a");
        // Before any job completes nothing is kept.
        assert!(store.tables[obj].history.is_empty());
        let first = store.pin();
        set(&mut store, "b");
        set(&mut store, "c");
        let second = store.pin();
        let third = store.pin();
        set(&mut store, "d");
        store.tables[obj].delete_row(0, 1_000, true);
        let s = |v: &str| Val::Str(Cow::Owned(v.to_string()));
        assert_eq!(name(&store, obj, Some(&first)), s("a"));
        assert_eq!(name(&store, obj, Some(&second)), s("c"));
        assert_eq!(name(&store, obj, Some(&third)), s("c"));
        assert_eq!(name(&store, obj, None), s("d"));
        assert_eq!(store.tables[obj].state_at(0, Some(&third)), LIVE);
        assert_eq!(store.tables[obj].state_at(0, None), PURGED);
        // One version per row per pin it outlived: "a" (first), "c" (second and third).
        assert_eq!(store.tables[obj].history[&0].len(), 2);
        // No job left to read them: gone, and changes are no longer kept.
        store.forget_versions();
        store.tables[obj].undelete_row(0, 2_000);
        assert!(store.tables[obj].history.is_empty());
        assert_eq!(name(&store, obj, Some(&third)), s("d"));
    }
}
