//! SOQL text for a stream read: the select list, the cursor window, the pushed-down filter.

use chrono::{DateTime, Utc};

/// A datetime as a SOQL literal (`2024-01-15T10:00:00.000Z`, unquoted): the STATE's own form,
/// so the bound queried and the bound saved are written by one function.
pub use crate::state::datetime_literal;

/// One window of the cursor: `cursor >= lower AND cursor < upper`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Inclusive lower bound, `None` for "from the beginning".
    pub lower: Option<DateTime<Utc>>,
    /// Exclusive upper bound; [`Window::OPEN`] for none.
    pub upper: DateTime<Utc>,
}

impl Window {
    /// The upper bound of a window that reads whatever the org holds when its query runs: the
    /// last window of a full refresh. A row that changes while the read runs, before its
    /// window's query does, moves past any bound taken at the start; read up to nothing, it
    /// is read as changed instead of being in no window.
    pub const OPEN: DateTime<Utc> = DateTime::<Utc>::MAX_UTC;

    /// Whether the window has no upper bound ([`Window::OPEN`]).
    pub fn is_open(&self) -> bool {
        self.upper == Self::OPEN
    }

    /// The window without its upper bound.
    pub fn open_ended(self) -> Window {
        Window {
            upper: Self::OPEN,
            ..self
        }
    }
}

/// Builds `SELECT f1, f2 FROM Object [WHERE ...]`, ordered by the cursor then `Id` when asked
/// and there is a cursor: rows then arrive in one total order, so a read can continue after the
/// last row it delivered (see [`after_key`]).
pub fn select(
    object: &str,
    fields: &[String],
    cursor: Option<&str>,
    window: Option<Window>,
    extra_where: Option<&str>,
    order_by_cursor: bool,
) -> String {
    let mut q = format!("SELECT {} FROM {}", fields.join(", "), object);
    let mut conditions: Vec<String> = Vec::new();
    if let (Some(c), Some(w)) = (cursor, window) {
        if let Some(lower) = w.lower {
            conditions.push(format!("{c} >= {}", datetime_literal(lower)));
        }
        if !w.is_open() {
            conditions.push(format!("{c} < {}", datetime_literal(w.upper)));
        }
    }
    if let Some(extra) = extra_where.filter(|e| !e.trim().is_empty()) {
        conditions.push(format!("({extra})"));
    }
    if !conditions.is_empty() {
        q.push_str(" WHERE ");
        q.push_str(&conditions.join(" AND "));
    }
    if order_by_cursor && let Some(c) = cursor {
        q.push_str(&format!(" ORDER BY {c} ASC, Id ASC"));
    }
    q
}

/// The REST aggregate query counting an object's rows per calendar month (UTC) of the
/// cursor in a window: `SELECT CALENDAR_YEAR(c) y, CALENDAR_MONTH(c) m, COUNT(Id) n FROM X
/// WHERE ... GROUP BY CALENDAR_YEAR(c), CALENDAR_MONTH(c)` (answered as `AggregateResult`
/// records named by the aliases; Bulk API 2.0 refuses aggregates, so it goes through REST).
pub fn count_by_month(
    object: &str,
    cursor: &str,
    window: Window,
    extra_where: Option<&str>,
) -> String {
    let items = [
        format!("CALENDAR_YEAR({cursor}) y"),
        format!("CALENDAR_MONTH({cursor}) m"),
        "COUNT(Id) n".to_string(),
    ];
    let mut q = select(
        object,
        &items,
        Some(cursor),
        Some(window),
        extra_where,
        false,
    );
    q.push_str(&format!(
        " GROUP BY CALENDAR_YEAR({cursor}), CALENDAR_MONTH({cursor})"
    ));
    q
}

/// `extra_where` (a pushed-down filter) and one more condition, as one filter for [`select`].
pub fn and_where(extra_where: Option<&str>, condition: &str) -> String {
    match extra_where.filter(|e| !e.trim().is_empty()) {
        Some(extra) => format!("({extra}) AND {condition}"),
        None => condition.to_string(),
    }
}

/// The condition for rows after `(cursor = at, Id = id)` in `ORDER BY cursor, Id` order, to go
/// with the inclusive lower bound `cursor >= at` of the window: `(cursor > at OR Id > 'id')`.
pub fn after_key(cursor: &str, at: DateTime<Utc>, id: &str) -> String {
    format!(
        "({cursor} > {} OR Id > {})",
        datetime_literal(at),
        quoted_id(id)
    )
}

/// An Id as a SOQL string literal (Ids hold only letters and digits; anything else is dropped so
/// the literal cannot end early).
pub fn quoted_id(id: &str) -> String {
    let clean: String = id.chars().filter(char::is_ascii_alphanumeric).collect();
    format!("'{clean}'")
}

/// Ids as a comma-separated list of [`quoted_id`] literals, for `Id IN (...)` (the same
/// literals serve in `sfetl query`'s SQL).
pub fn id_list<S: AsRef<str>>(ids: &[S]) -> String {
    let quoted: Vec<String> = ids.iter().map(|id| quoted_id(id.as_ref())).collect();
    quoted.join(",")
}

/// Splits `[start, end)` into windows of `step`; `start = None` gives one window up to `end`
/// (a first read without a start date reads all history in one query).
pub fn windows(
    start: Option<DateTime<Utc>>,
    end: DateTime<Utc>,
    step: &crate::config::IsoDuration,
) -> Vec<Window> {
    let Some(mut lower) = start else {
        return vec![Window {
            lower: None,
            upper: end,
        }];
    };
    let mut out = Vec::new();
    while lower < end {
        let upper = step.add_to(lower).min(end);
        out.push(Window {
            lower: Some(lower),
            upper,
        });
        lower = upper;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::IsoDuration;
    use chrono::TimeZone;

    fn t(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, d, h, 0, 0).unwrap()
    }

    #[test]
    fn select_with_window_filter_and_order() {
        let q = select(
            "Lead",
            &["Id".into(), "Email".into(), "SystemModstamp".into()],
            Some("SystemModstamp"),
            Some(Window {
                lower: Some(t(1, 0)),
                upper: t(31, 0),
            }),
            Some("IsConverted = false"),
            true,
        );
        assert_eq!(
            q,
            "SELECT Id, Email, SystemModstamp FROM Lead WHERE SystemModstamp >= 2024-01-01T00:00:00.000Z AND SystemModstamp < 2024-01-31T00:00:00.000Z AND (IsConverted = false) ORDER BY SystemModstamp ASC, Id ASC"
        );
        assert_eq!(
            select("User", &["Id".into()], None, None, None, true),
            "SELECT Id FROM User"
        );
        assert_eq!(
            select(
                "A",
                &["Id".into()],
                Some("C"),
                Some(Window {
                    lower: None,
                    upper: t(2, 0)
                }),
                None,
                false
            ),
            "SELECT Id FROM A WHERE C < 2024-01-02T00:00:00.000Z"
        );
        // An open window (a full refresh's last) has no upper bound in its query.
        let open = Window {
            lower: Some(t(1, 0)),
            upper: t(2, 0),
        }
        .open_ended();
        assert!(open.is_open());
        assert_eq!(
            select("A", &["Id".into()], Some("C"), Some(open), None, false),
            "SELECT Id FROM A WHERE C >= 2024-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn rows_are_counted_per_month_of_the_cursor() {
        let w = Window {
            lower: Some(t(1, 0)),
            upper: t(31, 0),
        };
        assert_eq!(
            count_by_month("Lead", "SystemModstamp", w, Some("IsConverted = false")),
            "SELECT CALENDAR_YEAR(SystemModstamp) y, CALENDAR_MONTH(SystemModstamp) m, COUNT(Id) n FROM Lead WHERE SystemModstamp >= 2024-01-01T00:00:00.000Z AND SystemModstamp < 2024-01-31T00:00:00.000Z AND (IsConverted = false) GROUP BY CALENDAR_YEAR(SystemModstamp), CALENDAR_MONTH(SystemModstamp)"
        );
    }

    #[test]
    fn a_read_continues_after_its_last_key() {
        let cond = after_key("SystemModstamp", t(2, 0), "003000000000001AAA");
        assert_eq!(
            cond,
            "(SystemModstamp > 2024-01-02T00:00:00.000Z OR Id > '003000000000001AAA')"
        );
        assert_eq!(
            and_where(Some("IsConverted = false"), &cond),
            format!("(IsConverted = false) AND {cond}")
        );
        assert_eq!(and_where(None, "Id > 'a'"), "Id > 'a'");
        assert_eq!(quoted_id("00' OR Name != '"), "'00ORName'");
        assert_eq!(super::id_list(&["a'b", "c"]), "'ab','c'");
    }

    #[test]
    fn windows_cover_the_range_without_gaps() {
        let w = windows(Some(t(1, 0)), t(3, 12), &IsoDuration::parse("P1D").unwrap());
        assert_eq!(
            w,
            vec![
                Window {
                    lower: Some(t(1, 0)),
                    upper: t(2, 0)
                },
                Window {
                    lower: Some(t(2, 0)),
                    upper: t(3, 0)
                },
                Window {
                    lower: Some(t(3, 0)),
                    upper: t(3, 12)
                },
            ]
        );
        assert_eq!(
            windows(None, t(3, 0), &IsoDuration::parse("P1D").unwrap()).len(),
            1
        );
        assert!(windows(Some(t(3, 0)), t(3, 0), &IsoDuration::parse("P1D").unwrap()).is_empty());
    }
}
