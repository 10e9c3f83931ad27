//! The deterministic seed-data generator: `--scale N --seed S` always yields the same rows.
//!
//! It uses its own small PRNG (splitmix64) so the data never changes with a dependency upgrade,
//! and mixes in the awkward values connectors trip on (empty strings, nulls, quotes, commas,
//! newlines, non-ASCII, digit-only strings, "NA"/"N/A", shared SystemModstamps).

use std::borrow::Cow;

use super::describe::{FType, FieldMeta, ObjectMeta};
use super::store::{Store, Val, days_from_civil, pack};

/// SystemModstamp shared by a fifth of all generated rows (a "mass update"), later than every
/// generated LastModifiedDate: 2025-01-15T12:00:00.000+0000.
pub const SHARED_STAMP_MS: i64 = 1_736_942_400_000;

/// A splitmix64 generator: tiny, fast and stable forever.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5EED_5A1E_F0C0_FFEE)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// True with probability `pct`/100.
    pub fn pct(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// Text values that break naive CSV/JSON handling.
pub const AWKWARD: [&str; 14] = [
    "",
    "Smith, \"Jr.\"",
    "line one\nline two",
    "Zoë Ångström-Müller",
    "北京市朝阳区",
    "01234",
    "NA",
    "N/A",
    "O'Brien & Co",
    "null",
    "  padded  ",
    "comma,separated,value",
    "tab\tinside",
    "emoji 🚀 rocket",
];

const FIRST: [&str; 12] = [
    "Ada", "Grace", "Alan", "Édith", "José", "Mei", "Olu", "Søren", "Ana", "Li", "Sam", "Noor",
];
const LAST: [&str; 12] = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Piaf",
    "Núñez",
    "Wang",
    "Adeyemi",
    "Kierkegaard",
    "Silva",
    "Li",
    "O'Neil",
    "Khan",
];
const WORDS: [&str; 12] = [
    "Acme",
    "Global",
    "Northwind",
    "Contoso",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Soylent",
    "Tyrell",
    "Globex",
    "Hooli",
];
const CITIES: [&str; 8] = [
    "Austin",
    "Paris",
    "München",
    "São Paulo",
    "Tokyo",
    "Lagos",
    "Montréal",
    "NA",
];
const COUNTRIES: [&str; 6] = [
    "United States",
    "France",
    "Germany",
    "Brazil",
    "Japan",
    "N/A",
];

/// Rows per object for a scale, in catalogue order (Account, Contact, Lead, Opportunity, User,
/// Task, Attachment, Score__c, then the objects with structural quirks, which stay small:
/// AccountHistory, AccountFeed, AccountShare, UserRecordAccess, ContentDocumentLink,
/// TaskStatus, CaseStatus, RecentlyViewed, EntityDefinition, Score_Reading__b).
/// `objects_listed` is the number of describeGlobal entries (one EntityDefinition row each).
pub fn row_counts(scale: u64, objects_listed: usize) -> Vec<usize> {
    let n = scale as usize;
    vec![
        n,
        3 * n,
        2 * n,
        n,
        5 + (n / 1000).min(195),
        n / 2,
        n.div_ceil(20),
        n / 2,
        (2 * n).min(100_000),
        (n / 2).min(50_000),
        n.min(100_000),
        0,
        (n / 5).min(20_000),
        TASK_STATUSES.len(),
        CASE_STATUSES.len(),
        n.min(20),
        objects_listed,
        (n / 2).min(50_000),
    ]
}

/// TaskStatus rows (label, closed), as a new org has them.
const TASK_STATUSES: [(&str, bool); 5] = [
    ("Not Started", false),
    ("In Progress", false),
    ("Completed", true),
    ("Waiting on someone else", false),
    ("Deferred", false),
];

/// CaseStatus rows (label, closed).
const CASE_STATUSES: [(&str, bool); 4] = [
    ("New", false),
    ("Working", false),
    ("Escalated", false),
    ("Closed", true),
];

/// Values that are not random: picklist value objects, EntityDefinition (one row per listed
/// object), RecentlyViewed (the first Accounts, by name).
struct Fixed {
    /// describeGlobal entries, for EntityDefinition.
    global: Vec<serde_json::Value>,
    /// Names of the first Accounts, for RecentlyViewed.
    account_names: Vec<String>,
}

impl Fixed {
    fn value(&self, object: &str, field: &str, row: usize) -> Option<Val<'static>> {
        let text = |s: &str| Some(Val::Str(Cow::Owned(s.to_string())));
        match object {
            "TaskStatus" | "CaseStatus" => {
                let list: &[(&str, bool)] = if object == "TaskStatus" {
                    &TASK_STATUSES
                } else {
                    &CASE_STATUSES
                };
                let (label, closed) = list[row];
                match field {
                    "MasterLabel" | "ApiName" => text(label),
                    "SortOrder" => Some(Val::Int(row as i64 + 1)),
                    "IsDefault" => Some(Val::Bool(row == 0)),
                    "IsClosed" => Some(Val::Bool(closed)),
                    _ => None,
                }
            }
            "EntityDefinition" => {
                let e = self.global.get(row)?;
                let name = e["name"].as_str().unwrap_or("");
                match field {
                    "DurableId" | "QualifiedApiName" => text(name),
                    "DeveloperName" => text(name.trim_end_matches("__c").trim_end_matches("__b")),
                    "MasterLabel" | "Label" => text(e["label"].as_str().unwrap_or(name)),
                    "PluralLabel" => text(e["labelPlural"].as_str().unwrap_or(name)),
                    "KeyPrefix" => Some(
                        e["keyPrefix"]
                            .as_str()
                            .map_or(Val::Null, |p| Val::Str(Cow::Owned(p.to_string()))),
                    ),
                    "NamespacePrefix" => Some(Val::Null),
                    "IsCustomizable" => Some(Val::Bool(e["layoutable"] == true)),
                    "IsQueryable" => Some(Val::Bool(e["queryable"] == true)),
                    "IsCustomSetting" => Some(Val::Bool(e["customSetting"] == true)),
                    _ => None,
                }
            }
            "RecentlyViewed" => match field {
                "Name" => text(self.account_names.get(row)?),
                "Type" => text("Account"),
                _ => None,
            },
            _ => None,
        }
    }
}

/// Fills an empty store with the seeded rows.
pub fn generate(store: &mut Store, scale: u64, seed: u64) {
    let listed = store.catalog.global["sobjects"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let counts = row_counts(scale, listed.len());
    let mut fixed = Fixed {
        global: listed,
        account_names: Vec::new(),
    };
    for (obj, &count) in counts.iter().enumerate() {
        let meta = store.catalog.objects[obj].clone();
        if meta.name == "RecentlyViewed" {
            let t = &store.tables[0];
            let name = store.catalog.objects[0].field("Name").unwrap_or(0);
            fixed.account_names = (0..count.min(t.len()))
                .map(|r| match t.get(r, name) {
                    Val::Str(s) => s.into_owned(),
                    _ => String::new(),
                })
                .collect();
        }
        let has_fixed = matches!(
            meta.name.as_str(),
            "TaskStatus" | "CaseStatus" | "EntityDefinition" | "RecentlyViewed"
        );
        let mut rng = Rng::new(seed.wrapping_mul(31).wrapping_add(obj as u64));
        let table = &mut store.tables[obj];
        table.reserve(count);
        let mut row_vals: Vec<Val<'static>> = Vec::with_capacity(meta.fields.len());
        // Active picklist values per field, looked up once rather than per cell.
        let picklists: Vec<Vec<String>> = meta.describe["fields"]
            .as_array()
            .map(|fs| {
                fs.iter()
                    .map(|x| {
                        x["picklistValues"]
                            .as_array()
                            .map(|a| {
                                a.iter()
                                    .filter(|p| p["active"] == true)
                                    .filter_map(|p| p["value"].as_str().map(str::to_string))
                                    .collect()
                            })
                            .unwrap_or_default()
                    })
                    .collect()
            })
            .unwrap_or_default();
        for row in 0..count {
            row_vals.clear();
            let created = 1_420_070_400_000 + (rng.below(3_200 * 86_400) as i64) * 1000; // 2015..2023
            let lastmod = created + rng.below(300 * 86_400) as i64 * 1000;
            let sysmod = if rng.pct(20) {
                SHARED_STAMP_MS
            } else {
                lastmod + rng.below(3) as i64 * 60_000
            };
            for (fi, f) in meta.fields.iter().enumerate() {
                let v = match f.name.as_str() {
                    "CreatedDate" => Val::DateTime(created),
                    "LastModifiedDate" => Val::DateTime(lastmod),
                    "SystemModstamp" => Val::DateTime(sysmod),
                    name => match has_fixed.then(|| fixed.value(&meta.name, name, row)) {
                        Some(Some(v)) => v,
                        _ => value(&mut rng, &meta, f, &picklists[fi], row, &counts, obj),
                    },
                };
                row_vals.push(v);
            }
            table.push_row(&row_vals);
        }
    }
}

fn value(
    rng: &mut Rng,
    meta: &ObjectMeta,
    f: &FieldMeta,
    picklist: &[String],
    row: usize,
    counts: &[usize],
    obj: usize,
) -> Val<'static> {
    let nullable = f.nillable && f.createable;
    if f.calculated || matches!(f.ftype, FType::Id | FType::Address | FType::Location) {
        return Val::Null;
    }
    match f.ftype {
        FType::Reference => reference(rng, meta, f, row, counts, obj),
        FType::Boolean => Val::Bool(rng.pct(30)),
        FType::Int | FType::Long => {
            if nullable && rng.pct(10) {
                Val::Null
            } else if f.ftype == FType::Long {
                Val::Int(rng.below(1 << 40) as i64)
            } else {
                Val::Int(rng.below(50_000) as i64)
            }
        }
        FType::Double => {
            if nullable && rng.pct(10) {
                return Val::Null;
            }
            let lname = f.name.to_ascii_lowercase();
            let x = if lname.contains("latitude") {
                rng.below(180_000_000) as f64 / 1e6 - 90.0
            } else if lname.contains("longitude") {
                rng.below(360_000_000) as f64 / 1e6 - 180.0
            } else if f.sf_type == "percent" || f.precision <= 5 {
                let max = 10f64.powi((f.precision as i32 - f.scale as i32).clamp(1, 3)) - 1.0;
                (rng.below((max * 100.0) as u64 + 1) as f64) / 100.0
            } else {
                let x = rng.below(100_000_000) as f64 / 100.0;
                // A tenth of the wide number fields (precision 16+) hold tens of millions to
                // hundreds of billions, which Bulk CSV writes in E-notation.
                if f.precision >= 16 && (x * 100.0) as u64 % 10 == 7 {
                    x * 1e5
                } else {
                    x
                }
            };
            let k = 10f64.powi(f.scale.min(6) as i32);
            Val::Num((x * k).round() / k)
        }
        FType::Date => {
            if nullable && rng.pct(15) {
                Val::Null
            } else {
                Val::Date((days_from_civil(2015, 1, 1) + rng.below(4000) as i64) as i32)
            }
        }
        FType::DateTime => {
            if nullable && rng.pct(15) {
                Val::Null
            } else {
                Val::DateTime(1_420_070_400_000 + rng.below(3_500 * 86_400) as i64 * 1000)
            }
        }
        FType::Time => {
            if nullable && rng.pct(10) {
                Val::Null
            } else {
                Val::Time(rng.below(86_400) as i32 * 1000)
            }
        }
        FType::Base64 => {
            let text = format!("attachment body {row}\nwith \"quotes\", commas and ünïcödé\n");
            Val::Str(Cow::Owned(base64_encode(text.as_bytes())))
        }
        _ => text(rng, meta, f, picklist, row),
    }
}

fn reference(
    rng: &mut Rng,
    meta: &ObjectMeta,
    f: &FieldMeta,
    row: usize,
    counts: &[usize],
    obj: usize,
) -> Val<'static> {
    let target = |name: &str| super::describe::OBJECTS.iter().position(|o| *o == name);
    let name = f.name.as_str();
    if name == "MasterRecordId"
        || name.starts_with("Converted")
        || name == "ReportsToId" && rng.pct(80)
    {
        return Val::Null;
    }
    let targets: Vec<usize> = f
        .reference_to
        .iter()
        .filter_map(|t| target(t))
        .filter(|&t| counts[t] > 0)
        .collect();
    if targets.is_empty() {
        return Val::Null;
    }
    let t = targets[rng.below(targets.len() as u64) as usize];
    if t == obj {
        // Self references (ParentId): sometimes, and only to an earlier row.
        return if row > 0 && rng.pct(10) {
            Val::Ref(pack(t, rng.below(row as u64) as usize))
        } else {
            Val::Null
        };
    }
    if f.nillable && rng.pct(5) && !(meta.name == "Score__c" && name == "OwnerId") {
        return Val::Null;
    }
    Val::Ref(pack(t, rng.below(counts[t] as u64) as usize))
}

fn text(
    rng: &mut Rng,
    meta: &ObjectMeta,
    f: &FieldMeta,
    picklist: &[String],
    row: usize,
) -> Val<'static> {
    let name = f.name.as_str();
    let required = !f.nillable;
    let picklist: Vec<&str> = picklist.iter().map(String::as_str).collect();
    if !required && rng.pct(8) {
        return Val::Null;
    }
    let unique = name == "External_Id__c" || name == "Username";
    if !required
        && !unique
        && f.sf_type != "picklist"
        && f.sf_type != "multipicklist"
        && rng.pct(12)
    {
        let s = rng.pick(&AWKWARD);
        return Val::Str(Cow::Owned(s.chars().take(f.length.max(1)).collect()));
    }
    let s: String = match (f.sf_type.as_str(), name) {
        (_, "External_Id__c") => format!("EXT-{}-{row:07}", &meta.prefix),
        (_, "Username") => format!("user{row}@sim.example.com"),
        ("picklist", _) if !picklist.is_empty() => rng.pick(&picklist).to_string(),
        ("combobox", _) if !picklist.is_empty() && rng.pct(80) => rng.pick(&picklist).to_string(),
        ("multipicklist", _) if !picklist.is_empty() => {
            let a = rng.pick(&picklist);
            let b = rng.pick(&picklist);
            if a == b {
                a.to_string()
            } else {
                format!("{a};{b}")
            }
        }
        ("email", _) => {
            format!("{}.{}{row}@example.com", rng.pick(&FIRST), rng.pick(&LAST)).to_lowercase()
        }
        ("phone", _) => format!("(555) {:03}-{:04}", rng.below(1000), rng.below(10_000)),
        ("url", _) => format!(
            "https://www.{}{row}.example.com/",
            rng.pick(&WORDS).to_lowercase()
        ),
        ("encryptedstring", _) => format!("sk-{:016x}", rng.next_u64()),
        ("anyType", _) => format!("{{\"n\":{row}}}"),
        ("textarea", _) => {
            if name.ends_with("Street") {
                format!(
                    "{} {} Street\nSuite {}",
                    rng.below(999) + 1,
                    rng.pick(&WORDS),
                    rng.below(99)
                )
            } else {
                format!(
                    "{} said \"{}\", then left;\nsecond line é",
                    rng.pick(&FIRST),
                    rng.pick(&WORDS)
                )
            }
        }
        (_, "FirstName") => rng.pick(&FIRST).to_string(),
        (_, "LastName") => rng.pick(&LAST).to_string(),
        (_, "Alias") => format!("u{row}"),
        (_, n) if n.ends_with("City") => rng.pick(&CITIES).to_string(),
        (_, n) if n.ends_with("Country") => rng.pick(&COUNTRIES).to_string(),
        (_, n) if n.ends_with("State") => {
            rng.pick(&["TX", "CA", "Île-de-France", "NA"]).to_string()
        }
        (_, n) if n.ends_with("PostalCode") => format!("{:05}", rng.below(100_000)),
        (_, "Name" | "Company") => format!(
            "{} {} {row}",
            rng.pick(&WORDS),
            rng.pick(&["Inc.", "GmbH", "S.A.", "Ltd"])
        ),
        (_, "AccountNumber") => format!("{:08}", rng.below(100_000_000)),
        (_, "TickerSymbol") => rng.pick(&WORDS).to_uppercase().chars().take(4).collect(),
        _ => format!("{} {}", rng.pick(&WORDS), rng.below(97)),
    };
    Val::Str(Cow::Owned(s.chars().take(f.length.max(1)).collect()))
}

/// Standard base64 (used for Attachment bodies).
pub fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
