//! Windows sized from exact counts: sparse histories, dense months, bounds, the step cap.

use chrono::{DateTime, TimeZone, Utc};

use super::*;

fn t(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap()
}

fn w(lower: DateTime<Utc>, upper: DateTime<Utc>, rows: u64) -> SizedWindow {
    SizedWindow {
        window: Window {
            lower: Some(lower),
            upper,
        },
        rows,
    }
}

#[test]
fn a_sparse_history_of_ten_years_is_one_window_from_its_first_month() {
    let upper = t(2026, 11, 30);
    let b = Bounds { lower: None, upper };
    let counts: Vec<(i32, u32, u64)> = (0..120)
        .map(|i| (2015 + i / 12, (i % 12) as u32 + 1, 8))
        .collect();
    let buckets = month_buckets(b, &counts);
    assert_eq!(buckets.len(), 120);
    assert_eq!(
        size_windows(b, &buckets, 200_000, None),
        vec![w(t(2015, 1, 1), upper, 960)]
    );
    // No row at all, from the beginning: nothing to read.
    assert!(size_windows(b, &[], 200_000, None).is_empty());
}

#[test]
fn windows_hold_about_the_target_and_cover_the_bounds_without_gaps() {
    let b = Bounds {
        lower: Some(t(2024, 1, 15)),
        upper: t(2024, 7, 10),
    };
    let counts = [
        (2024, 1, 100),
        (2024, 2, 150),
        (2024, 3, 50),
        (2024, 4, 0),
        (2024, 5, 300),
        (2024, 6, 20),
        (2024, 7, 5),
    ];
    let buckets = month_buckets(b, &counts);
    assert_eq!(
        buckets[0].lower,
        t(2024, 1, 15),
        "clipped to the lower bound"
    );
    assert_eq!(buckets.len(), 6, "empty months are not buckets");
    let got = size_windows(b, &buckets, 200, None);
    assert_eq!(
        got,
        vec![
            w(t(2024, 1, 15), t(2024, 2, 1), 100),
            w(t(2024, 2, 1), t(2024, 5, 1), 200),
            // May (300 rows) is cut in two equal spans of 150.
            w(
                t(2024, 5, 1),
                Utc.with_ymd_and_hms(2024, 5, 16, 12, 0, 0).unwrap(),
                150
            ),
            w(
                Utc.with_ymd_and_hms(2024, 5, 16, 12, 0, 0).unwrap(),
                t(2024, 7, 10),
                175
            ),
        ]
    );
    let total: u64 = got.iter().map(|x| x.rows).sum();
    assert_eq!(total, 625);
}

#[test]
fn a_read_with_a_lower_bound_always_has_a_window() {
    let b = Bounds {
        lower: Some(t(2024, 3, 1)),
        upper: t(2024, 3, 2),
    };
    assert_eq!(
        size_windows(b, &[], 200_000, None),
        vec![w(t(2024, 3, 1), t(2024, 3, 2), 0)]
    );
    let past = Bounds {
        lower: Some(t(2024, 3, 2)),
        upper: t(2024, 3, 1),
    };
    assert!(size_windows(past, &[], 200_000, None).is_empty());
}

#[test]
fn a_dense_month_is_cut_at_whole_seconds_and_the_step_caps_length() {
    let b = Bounds {
        lower: None,
        upper: t(2024, 2, 1),
    };
    let buckets = month_buckets(b, &[(2024, 1, 1000)]);
    let got = size_windows(b, &buckets, 300, None);
    assert_eq!(got.len(), 4);
    assert_eq!(got.iter().map(|x| x.rows).sum::<u64>(), 1000);
    assert!(
        got.iter()
            .all(|x| x.window.upper.timestamp_subsec_millis() == 0)
    );
    assert_eq!(got[0].window.lower, Some(t(2024, 1, 1)));
    assert_eq!(got[3].window.upper, t(2024, 2, 1));
    for pair in got.windows(2) {
        assert_eq!(Some(pair[0].window.upper), pair[1].window.lower, "no gap");
    }
    // A user's stream_slice_step bounds every window's length.
    let step = IsoDuration::parse("P10D").unwrap();
    let sparse = month_buckets(b, &[(2024, 1, 30)]);
    let capped = size_windows(b, &sparse, 300, Some(&step));
    assert_eq!(
        capped,
        vec![
            w(t(2024, 1, 1), t(2024, 1, 11), 9),
            w(t(2024, 1, 11), t(2024, 1, 21), 10),
            w(t(2024, 1, 21), t(2024, 1, 31), 10),
            w(t(2024, 1, 31), t(2024, 2, 1), 1),
        ]
    );
}
