//! SOQL aggregate queries as the REST API answers them: `COUNT(field)`, the date functions
//! (`CALENDAR_YEAR()`, `CALENDAR_MONTH()`, `DAY_IN_MONTH()`, ...) and `GROUP BY`.
//!
//! Each group is one `AggregateResult` record: `{"attributes": {"type": "AggregateResult"},
//! "<alias>": value, ...}`. An item without an alias is named by the field (grouped fields) or
//! `expr0`, `expr1`, ... in SELECT order of the unaliased function items. Date functions work
//! on UTC values (Salesforce converts to the user's time zone only inside `convertTimezone()`,
//! which is outside this subset). A GROUP BY query has no query locator: every group comes in
//! the one answer. Bulk API 2.0 refuses all of it (see `bulk::query`).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::soql::{Path, read};
use super::store::{Store, Val};
use super::wire::civil_from_days;

/// A date function of SOQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateFn {
    /// `CALENDAR_YEAR()`: 2009.
    CalendarYear,
    /// `CALENDAR_QUARTER()`: 1 to 4.
    CalendarQuarter,
    /// `CALENDAR_MONTH()`: 1 to 12.
    CalendarMonth,
    /// `DAY_IN_MONTH()`: 1 to 31.
    DayInMonth,
    /// `DAY_IN_YEAR()`: 1 to 366.
    DayInYear,
    /// `DAY_IN_WEEK()`: 1 (Sunday) to 7 (Saturday).
    DayInWeek,
    /// `HOUR_IN_DAY()`: 0 to 23.
    HourInDay,
    /// `DAY_ONLY()`: the date of a dateTime, `2009-09-22`.
    DayOnly,
}

impl DateFn {
    /// The function named `name` (case-insensitive).
    pub fn named(name: &str) -> Option<DateFn> {
        Some(match name.to_ascii_uppercase().as_str() {
            "CALENDAR_YEAR" => DateFn::CalendarYear,
            "CALENDAR_QUARTER" => DateFn::CalendarQuarter,
            "CALENDAR_MONTH" => DateFn::CalendarMonth,
            "DAY_IN_MONTH" => DateFn::DayInMonth,
            "DAY_IN_YEAR" => DateFn::DayInYear,
            "DAY_IN_WEEK" => DateFn::DayInWeek,
            "HOUR_IN_DAY" => DateFn::HourInDay,
            "DAY_ONLY" => DateFn::DayOnly,
            _ => return None,
        })
    }

    /// The function's value for a date (days since the epoch) at `ms` into the day.
    fn apply(self, days: i64, ms_of_day: i64) -> Key {
        let (y, m, d) = civil_from_days(days);
        let jan1 = super::wire::days_from_civil(y, 1, 1);
        Key::Int(match self {
            DateFn::CalendarYear => y,
            DateFn::CalendarQuarter => i64::from((m - 1) / 3 + 1),
            DateFn::CalendarMonth => i64::from(m),
            DateFn::DayInMonth => i64::from(d),
            DateFn::DayInYear => days - jan1 + 1,
            // 1970-01-01 was a Thursday (5 counting Sunday as 1).
            DateFn::DayInWeek => (days + 4).rem_euclid(7) + 1,
            DateFn::HourInDay => ms_of_day / 3_600_000,
            DateFn::DayOnly => return Key::Text(format!("{y:04}-{m:02}-{d:02}")),
        })
    }
}

/// A GROUP BY item: a field, or a date function of one.
#[derive(Debug, Clone)]
pub enum Group {
    /// A field's value.
    Field(Path),
    /// A date function of a date or dateTime field.
    Date(DateFn, Path),
}

impl Group {
    /// Whether two items group by the same thing.
    pub fn same(&self, other: &Group) -> bool {
        match (self, other) {
            (Group::Field(a), Group::Field(b)) => a.same(b),
            (Group::Date(f, a), Group::Date(g, b)) => f == g && a.same(b),
            _ => false,
        }
    }

    fn key(&self, store: &Store, obj: usize, row: usize) -> Key {
        match self {
            Group::Field(p) => Key::of(store, &read(store, obj, row, p)),
            Group::Date(f, p) => match read(store, obj, row, p) {
                Val::DateTime(ms) => f.apply(ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000)),
                Val::Date(d) => f.apply(i64::from(d), 0),
                _ => Key::Null,
            },
        }
    }
}

/// One SELECT item of an aggregate query.
#[derive(Debug, Clone)]
pub enum Item {
    /// A grouped value (a field or a date function in GROUP BY).
    Group(Group),
    /// `COUNT(field)`: rows whose field is not null (`COUNT(Id)`: every row).
    Count(Path),
}

/// An aggregate query's SELECT list (with the name each item answers under) and GROUP BY.
#[derive(Debug, Clone)]
pub struct Aggregate {
    /// Items in SELECT order, with their names.
    pub items: Vec<(String, Item)>,
    /// GROUP BY items (empty: one group of every matching row).
    pub group_by: Vec<Group>,
}

/// A grouping value, ordered so groups come in a stable order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Null,
    Bool(bool),
    Int(i64),
    Text(String),
}

impl Key {
    fn of(store: &Store, v: &Val<'_>) -> Key {
        match v {
            Val::Null => Key::Null,
            Val::Bool(b) => Key::Bool(*b),
            Val::Int(n) => Key::Int(*n),
            Val::Num(x) => Key::Text(x.to_string()),
            Val::Str(s) => Key::Text(s.to_string()),
            Val::Ref(r) => Key::Text(store.id_of(*r).to_string()),
            Val::Date(d) => DateFn::DayOnly.apply(i64::from(*d), 0),
            Val::DateTime(ms) => {
                let mut out = Vec::new();
                super::wire::write_datetime(*ms, &mut out);
                Key::Text(String::from_utf8_lossy(&out).into_owned())
            }
            Val::Time(ms) => Key::Int(i64::from(*ms)),
        }
    }

    fn json(&self) -> Value {
        match self {
            Key::Null => Value::Null,
            Key::Bool(b) => json!(b),
            Key::Int(n) => json!(n),
            Key::Text(s) => json!(s),
        }
    }
}

/// The REST answer of an aggregate query over `rows` of object `obj`: one record per group,
/// groups in ascending key order, all in one page.
pub fn answer(store: &Store, obj: usize, rows: &[u32], agg: &Aggregate) -> Value {
    let mut groups: BTreeMap<Vec<Key>, Vec<u32>> = BTreeMap::new();
    for &row in rows {
        let key = agg
            .group_by
            .iter()
            .map(|g| g.key(store, obj, row as usize))
            .collect();
        groups.entry(key).or_default().push(row);
    }
    if groups.is_empty() && agg.group_by.is_empty() {
        // Without GROUP BY, an aggregate query answers one record even over no rows.
        groups.insert(Vec::new(), Vec::new());
    }
    let records: Vec<Value> = groups
        .iter()
        .map(|(key, members)| record(store, obj, agg, key, members))
        .collect();
    json!({"totalSize": records.len(), "done": true, "records": records})
}

fn record(store: &Store, obj: usize, agg: &Aggregate, key: &[Key], members: &[u32]) -> Value {
    let mut m = Map::new();
    m.insert("attributes".into(), json!({"type": "AggregateResult"}));
    for (name, item) in &agg.items {
        let v = match item {
            Item::Group(g) => agg
                .group_by
                .iter()
                .position(|x| x.same(g))
                .map_or(Value::Null, |i| key[i].json()),
            Item::Count(p) => json!(
                members
                    .iter()
                    .filter(|&&r| !read(store, obj, r as usize, p).is_null())
                    .count()
            ),
        };
        m.insert(name.clone(), v);
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_functions_on_utc_days() {
        // 2024-02-29 is day 19782; it was a Thursday.
        let leap = 19_782;
        assert_eq!(DateFn::CalendarYear.apply(leap, 0), Key::Int(2024));
        assert_eq!(DateFn::CalendarMonth.apply(leap, 0), Key::Int(2));
        assert_eq!(DateFn::CalendarQuarter.apply(leap, 0), Key::Int(1));
        assert_eq!(DateFn::DayInMonth.apply(leap, 0), Key::Int(29));
        assert_eq!(DateFn::DayInYear.apply(leap, 0), Key::Int(60));
        assert_eq!(DateFn::DayInWeek.apply(leap, 0), Key::Int(5));
        assert_eq!(DateFn::HourInDay.apply(leap, 13 * 3_600_000), Key::Int(13));
        assert_eq!(
            DateFn::DayOnly.apply(leap, 0),
            Key::Text("2024-02-29".into())
        );
        assert_eq!(DateFn::DayInWeek.apply(0, 0), Key::Int(5), "a Thursday");
    }
}
