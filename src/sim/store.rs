//! The record store: one compact columnar table per object.
//!
//! Rows are never materialised as maps: each field is a typed vector (text as one byte arena plus
//! end offsets, datetimes as epoch milliseconds, references as packed (object, row) pairs, ids
//! derived from the row number), so `--scale 1000000` (about 7M rows) fits in a few GB and Bulk
//! results can be rendered straight from the columns at hundreds of MB/s.

use std::borrow::Cow;
use std::collections::HashMap;

use super::describe::{Catalog, FType, FieldMeta, ObjectMeta};

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
/// picklists and names) 16-bit codes into a dictionary; updates go to a small overlay.
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
    /// Index of SystemModstamp (every stored object has it).
    pub sysmod: usize,
    /// Index of LastModifiedDate.
    pub lastmod: usize,
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
            sysmod: idx("SystemModstamp"),
            lastmod: idx("LastModifiedDate"),
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
                    Val::Str(Cow::Owned(s))
                }
                Formula::MulDiv100(a, b) => match (self.get(row, *a), self.get(row, *b)) {
                    (Val::Num(x), Val::Num(y)) => Val::Num((x * y / 100.0 * 100.0).round() / 100.0),
                    _ => Val::Null,
                },
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

    /// Stamps a row as modified by the platform at `ms` (SystemModstamp only).
    pub fn touch(&mut self, row: usize, ms: i64) {
        let f = self.sysmod;
        self.set(row, f, &Val::DateTime(ms));
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
    }
}

fn column_for(meta: &ObjectMeta, f: &FieldMeta) -> Column {
    if f.name == "IsDeleted" {
        return Column::IsDeleted;
    }
    if f.calculated
        && let Some(formula) = parse_formula(meta, &f.sf_type, f.describe_formula(meta))
    {
        return Column::Formula(formula);
    }
    if f.name == "Name"
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

fn parse_formula(meta: &ObjectMeta, sf_type: &str, text: &str) -> Option<Formula> {
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
        Store { catalog, tables }
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

const B62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const ID_POD: &[u8; 5] = b"5g000";

/// Writes the 18-character id of row `row` of an object with key prefix `prefix`.
pub fn write_id(prefix: &str, row: usize, out: &mut Vec<u8>) {
    let mut id = [0u8; 18];
    id[..3].copy_from_slice(&prefix.as_bytes()[..3]);
    id[3..8].copy_from_slice(ID_POD);
    let mut n = row as u64;
    for i in (8..15).rev() {
        id[i] = B62[(n % 62) as usize];
        n /= 62;
    }
    const SUFFIX: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    for chunk in 0..3 {
        let mut flags = 0;
        for j in 0..5 {
            if id[chunk * 5 + j].is_ascii_uppercase() {
                flags |= 1 << j;
            }
        }
        id[15 + chunk] = SUFFIX[flags];
    }
    out.extend_from_slice(&id);
}

/// The 18-character id of a row.
pub fn make_id(prefix: &str, row: usize) -> String {
    let mut v = Vec::with_capacity(18);
    write_id(prefix, row, &mut v);
    String::from_utf8(v).unwrap_or_default()
}

/// Splits an id into its key prefix and row number (None when it is not one of ours).
pub fn parse_id(id: &str) -> Option<(&str, usize)> {
    let b = id.as_bytes();
    if !(b.len() == 15 || b.len() == 18) || !id.is_ascii() || &b[3..8] != ID_POD {
        return None;
    }
    let mut n: u64 = 0;
    for &c in &b[8..15] {
        n = n * 62 + B62.iter().position(|&x| x == c)? as u64;
    }
    if b.len() == 18 && make_id(&id[..3], n as usize) != id {
        return None;
    }
    Some((&id[..3], n as usize))
}

/// Formats epoch milliseconds as Salesforce does: `2013-05-20T20:49:32.000+0000`.
pub fn write_datetime(ms: i64, out: &mut Vec<u8>) {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    write_date(days as i32, out);
    let (h, m, s, milli) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    );
    out.push(b'T');
    push2(out, h as u32);
    out.push(b':');
    push2(out, m as u32);
    out.push(b':');
    push2(out, s as u32);
    out.push(b'.');
    out.push(b'0' + (milli / 100) as u8);
    out.push(b'0' + (milli / 10 % 10) as u8);
    out.push(b'0' + (milli % 10) as u8);
    out.extend_from_slice(b"+0000");
}

/// Formats a day number as `YYYY-MM-DD`.
pub fn write_date(days: i32, out: &mut Vec<u8>) {
    let (y, m, d) = civil_from_days(days as i64);
    let y = y.clamp(0, 9999) as u32;
    push2(out, y / 100);
    push2(out, y % 100);
    out.push(b'-');
    push2(out, m);
    out.push(b'-');
    push2(out, d);
}

/// Formats milliseconds since midnight as Salesforce's time: `13:30:00.000Z`.
pub fn write_time(ms: i32, out: &mut Vec<u8>) {
    let ms = ms.rem_euclid(86_400_000) as u32;
    push2(out, ms / 3_600_000);
    out.push(b':');
    push2(out, ms / 60_000 % 60);
    out.push(b':');
    push2(out, ms / 1000 % 60);
    out.extend_from_slice(format!(".{:03}Z", ms % 1000).as_bytes());
}

fn push2(out: &mut Vec<u8>, n: u32) {
    out.push(b'0' + (n / 10 % 10) as u8);
    out.push(b'0' + (n % 10) as u8);
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) to days since 1970-01-01.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Writes a number as Salesforce's JSON does: integral values without a fraction.
pub fn write_number(n: f64, out: &mut Vec<u8>) {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        write_int(n as i64, out);
    } else {
        use std::io::Write as _;
        let _ = write!(out, "{n}");
    }
}

/// Writes an integer in decimal without allocating.
pub fn write_int(n: i64, out: &mut Vec<u8>) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[i..]);
}

/// Parses Salesforce datetime text (`2024-01-02T03:04:05.000+0000`, `...Z`, `+01:00`, with or
/// without milliseconds) into epoch milliseconds.
pub fn parse_datetime(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 || b[10] != b'T' && b[10] != b't' && b[10] != b' ' {
        return None;
    }
    let days = parse_date(&s[..10])? as i64;
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[13] != b':' || b[16] != b':' || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut ms = 0;
    if let Some(r) = rest.strip_prefix('.') {
        let digits = r.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let frac = &r[..digits];
        ms = format!("{:0<3}", &frac[..digits.min(3)])
            .parse::<i64>()
            .ok()?;
        rest = &r[digits..];
    }
    let offset_min = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let digits: String = rest[1..].chars().filter(|c| *c != ':').collect();
            if digits.len() != 4 {
                return None;
            }
            sign * (digits[..2].parse::<i64>().ok()? * 60 + digits[2..].parse::<i64>().ok()?)
        }
    };
    Some(((days * 24 + h) * 60 + mi - offset_min) * 60_000 + sec * 1000 + ms)
}

/// Parses `YYYY-MM-DD` into days since the epoch.
pub fn parse_date(s: &str) -> Option<i32> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y: i64 = s[..4].parse().ok()?;
    let m: u32 = s[5..7].parse().ok()?;
    let d: u32 = s[8..10].parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let days = days_from_civil(y, m, d);
    (civil_from_days(days) == (y, m, d)).then_some(days as i32)
}

/// Parses `HH:MM:SS[.mmm][Z]` into milliseconds since midnight.
pub fn parse_time(s: &str) -> Option<i32> {
    let s = s.trim_end_matches('Z');
    let (hms, frac) = s.split_once('.').unwrap_or((s, "0"));
    let p: Vec<&str> = hms.split(':').collect();
    if p.len() != 3 || frac.is_empty() || !frac.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (h, m, sec): (i32, i32, i32) = (p[0].parse().ok()?, p[1].parse().ok()?, p[2].parse().ok()?);
    if h > 23 || m > 59 || sec > 59 {
        return None;
    }
    let ms: i32 = format!("{:0<3}", &frac[..frac.len().min(3)]).parse().ok()?;
    Some(((h * 60 + m) * 60 + sec) * 1000 + ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_checksum() {
        let id = make_id("001", 12345);
        assert_eq!(id.len(), 18);
        assert_eq!(parse_id(&id), Some(("001", 12345)));
        assert_eq!(parse_id(&id[..15]), Some(("001", 12345)));
        // Salesforce's documented example: 001A0000006Vm9r -> 001A0000006Vm9rIAC
        let mut flags = String::new();
        for chunk in "001A0000006Vm9r".as_bytes().chunks(5) {
            let f = chunk
                .iter()
                .enumerate()
                .filter(|(_, c)| c.is_ascii_uppercase())
                .map(|(j, _)| 1 << j)
                .sum::<usize>();
            flags.push(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"[f] as char);
        }
        assert_eq!(flags, "IAC");
    }

    #[test]
    fn numbers_render_like_salesforce_json() {
        let render = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut v = Vec::new();
            f(&mut v);
            String::from_utf8(v).unwrap()
        };
        assert_eq!(render(&|o| write_int(0, o)), "0");
        assert_eq!(render(&|o| write_int(-1234, o)), "-1234");
        assert_eq!(render(&|o| write_int(i64::MIN, o)), i64::MIN.to_string());
        assert_eq!(render(&|o| write_number(139_000_000.0, o)), "139000000");
        assert_eq!(render(&|o| write_number(61.217062, o)), "61.217062");
        assert_eq!(render(&|o| write_number(-0.5, o)), "-0.5");
    }

    #[test]
    fn datetimes_format_and_parse() {
        let ms = parse_datetime("2013-05-20T20:49:32.000+0000").unwrap();
        let mut out = Vec::new();
        write_datetime(ms, &mut out);
        assert_eq!(out, b"2013-05-20T20:49:32.000+0000");
        assert_eq!(parse_datetime("2013-05-20T20:49:32Z"), Some(ms));
        assert_eq!(parse_datetime("2013-05-20T22:49:32.000+02:00"), Some(ms));
        assert_eq!(parse_date("2024-02-30"), None);
        assert_eq!(parse_time("13:30:00.000Z"), Some(48_600_000));
    }
}
