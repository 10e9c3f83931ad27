//! Windows sized by rows, not by the calendar: the counts of one REST aggregate query per
//! object (rows per calendar month of the cursor) cut the read's range `[lower, upper)` into
//! windows of about `target` rows each (Bulk's `bulk_max_records`, or `sfetl plan
//! --max-rows-per-slice`). Each window is one Bulk job, so a sparse history of ten years is one
//! job instead of 120; a month holding more than `target` rows is cut into equal spans of time.
//! Pure, so every decision is unit-tested; `counts` runs the query.

use chrono::{DateTime, TimeZone, Utc};

use super::plan::Bounds;
use crate::config::IsoDuration;
use crate::source::soql::{self, Window};

/// Rows counted in one span of the cursor, `[lower, upper)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// Start of the span (inclusive).
    pub lower: DateTime<Utc>,
    /// End of the span (exclusive).
    pub upper: DateTime<Utc>,
    /// Rows whose cursor falls in the span.
    pub rows: u64,
}

/// A window and the rows the count found in it (an estimate: rows change while the read runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizedWindow {
    /// The cursor window.
    pub window: Window,
    /// Rows counted in it.
    pub rows: u64,
}

/// Buckets of whole calendar months (UTC, as SOQL's date functions count them), clipped to the
/// bounds, from `(year, month, rows)` counts.
pub fn month_buckets(b: Bounds, counts: &[(i32, u32, u64)]) -> Vec<Bucket> {
    let mut out: Vec<Bucket> = counts
        .iter()
        .filter_map(|&(y, m, rows)| {
            let start = Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single()?;
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            let end = Utc.with_ymd_and_hms(ny, nm, 1, 0, 0, 0).single()?;
            let lower = b.lower.map_or(start, |l| l.max(start));
            let upper = end.min(b.upper);
            (lower < upper && rows > 0).then_some(Bucket { lower, upper, rows })
        })
        .collect();
    out.sort_by_key(|k| k.lower);
    out
}

/// Windows covering the bounds, each holding about `target` rows by the counts, none longer
/// than `max_step` when one is set.
///
/// They start at the bounds' lower end, or, for a read from the beginning, at the first month
/// holding rows (no rows: no window at all); they end at the upper bound, without gaps. A read
/// with a lower bound always gets at least one window, even with no row counted: its window
/// still asks the `deleted` endpoint for the hard deletes no query can count.
pub fn size_windows(
    b: Bounds,
    buckets: &[Bucket],
    target: u64,
    max_step: Option<&IsoDuration>,
) -> Vec<SizedWindow> {
    let target = target.max(1);
    let Some(start) = b.lower.or_else(|| buckets.first().map(|k| k.lower)) else {
        return Vec::new();
    };
    if start >= b.upper {
        return Vec::new();
    }
    let mut out = Vec::new();
    let (mut lower, mut rows) = (start, 0u64);
    for piece in buckets.iter().flat_map(|k| split_bucket(*k, target)) {
        if rows > 0 && rows + piece.rows > target && piece.lower > lower {
            out.push(sized(lower, piece.lower, rows));
            (lower, rows) = (piece.lower, 0);
        }
        rows += piece.rows;
    }
    out.push(sized(lower, b.upper, rows));
    match max_step {
        Some(step) => out.into_iter().flat_map(|w| cap_length(w, step)).collect(),
        None => out,
    }
}

/// The bounds windows are sized over: a first sync (no saved cursor) starts at its first month
/// holding rows whatever `start_date` says (years of empty history cost no window, and there is
/// no earlier export whose deletions matter); a read resumed from a cursor covers its range.
pub fn first_sync_bounds(b: Bounds, saved_at: Option<DateTime<Utc>>) -> Bounds {
    match saved_at {
        Some(_) => b,
        None => Bounds {
            lower: None,
            upper: b.upper,
        },
    }
}

fn sized(lower: DateTime<Utc>, upper: DateTime<Utc>, rows: u64) -> SizedWindow {
    SizedWindow {
        window: Window {
            lower: Some(lower),
            upper,
        },
        rows,
    }
}

/// A bucket of more than `target` rows as `ceil(rows / target)` equal spans of time (cut at
/// whole seconds), its rows shared evenly; others as they are.
fn split_bucket(k: Bucket, target: u64) -> Vec<Bucket> {
    let parts = k.rows.div_ceil(target).max(1);
    if parts == 1 {
        return vec![k];
    }
    let (a, z) = (k.lower.timestamp_millis(), k.upper.timestamp_millis());
    let mut cuts: Vec<i64> = (1..parts)
        .map(|i| {
            let t = a + ((z - a) as i128 * i as i128 / parts as i128) as i64;
            t - t.rem_euclid(1000)
        })
        .filter(|t| *t > a && *t < z)
        .collect();
    cuts.dedup();
    let mut edges = vec![a];
    edges.extend(cuts);
    edges.push(z);
    let n = (edges.len() - 1) as u64;
    edges
        .windows(2)
        .enumerate()
        .map(|(i, e)| {
            let i = i as u64;
            Bucket {
                lower: from_ms(e[0]),
                upper: from_ms(e[1]),
                rows: k.rows * (i + 1) / n - k.rows * i / n,
            }
        })
        .collect()
}

/// A window longer than `step` as consecutive windows of `step`, its rows shared by length.
fn cap_length(w: SizedWindow, step: &IsoDuration) -> Vec<SizedWindow> {
    let parts = soql::windows(w.window.lower, w.window.upper, step);
    let span = |x: &Window| {
        (x.upper - x.lower.unwrap_or(x.upper))
            .num_milliseconds()
            .max(0) as u128
    };
    let total = span(&w.window).max(1);
    let mut given = 0u64;
    let mut out = Vec::with_capacity(parts.len());
    let mut acc = 0u128;
    for x in parts {
        acc += span(&x);
        let upto = (w.rows as u128 * acc / total) as u64;
        out.push(SizedWindow {
            window: x,
            rows: upto - given,
        });
        given = upto;
    }
    out
}

fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default()
}

#[cfg(test)]
mod tests;
