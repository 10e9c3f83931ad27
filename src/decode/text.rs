//! Salesforce's fixed text formats for datetimes, dates and decimals, parsed without
//! allocating.
//!
//! Bulk CSV always writes datetimes as `2024-01-15T10:30:00.000Z` (or `+0000`), dates as
//! `2024-01-15` and decimals as plain digits (`-1234.5`). arrow-csv's general parsers (any ISO
//! 8601 shape, any time zone, exponents) cost a tenth of an all-fields Account export's CPU;
//! these fast paths take a few nanoseconds a value. Any value not in the fixed shape falls back
//! to the very parsers arrow-csv uses (`arrow_cast::parse`), so results and errors are arrow's
//! (`+00:00` offsets, exponents, out-of-range values).

use arrow::array::timezone::Tz;
use arrow::compute::kernels::cast_utils::{Parser, parse_decimal, string_to_datetime};
use arrow::datatypes::{Date32Type, Decimal128Type};

/// A datetime as µs since the epoch; `zone` applies to a value without an offset.
pub(super) fn timestamp_us(s: &[u8], zone: Option<&Tz>) -> Result<i64, String> {
    match fast_timestamp_us(s) {
        Some(v) => Ok(v),
        None => slow_timestamp_us(text(s)?, zone),
    }
}

/// A date as days since the epoch.
pub(super) fn date_days(s: &[u8]) -> Result<i32, String> {
    match fast_date(s) {
        Some(v) => Ok(v),
        None => {
            let t = text(s)?;
            Date32Type::parse(t).ok_or_else(|| format!("{t:?} is not a date (YYYY-MM-DD)"))
        }
    }
}

/// A decimal as its unscaled integer at `scale`.
pub(super) fn decimal128(s: &[u8], precision: u8, scale: i8) -> Result<i128, String> {
    match fast_decimal(s, precision, scale) {
        Some(v) => Ok(v),
        None => {
            parse_decimal::<Decimal128Type>(text(s)?, precision, scale).map_err(|e| e.to_string())
        }
    }
}

/// The text of a field (the page was made valid UTF-8 before it was split at ASCII bytes).
pub(super) fn text(s: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(s).map_err(|e| format!("invalid UTF-8 in a field ({e})"))
}

fn slow_timestamp_us(s: &str, zone: Option<&Tz>) -> Result<i64, String> {
    let parsed = match zone {
        Some(tz) => string_to_datetime(tz, s).map(|d| d.timestamp_micros()),
        None => string_to_datetime(&chrono::Utc, s).map(|d| d.timestamp_micros()),
    };
    parsed.map_err(|e| e.to_string())
}

fn digit(b: u8) -> Option<i64> {
    let d = b.wrapping_sub(b'0');
    (d < 10).then_some(i64::from(d))
}

fn two(s: &[u8], i: usize) -> Option<i64> {
    Some(digit(s[i])? * 10 + digit(s[i + 1])?)
}

/// Days since 1970-01-01 of a proleptic Gregorian date, `None` when it does not exist.
fn days_from_civil(year: i64, month: i64, day: i64) -> Option<i64> {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day < 1 || day > month_days {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// `YYYY-MM-DD`.
fn fast_date(s: &[u8]) -> Option<i32> {
    if s.len() != 10 || s[4] != b'-' || s[7] != b'-' {
        return None;
    }
    let year = two(s, 0)? * 100 + two(s, 2)?;
    i32::try_from(days_from_civil(year, two(s, 5)?, two(s, 8)?)?).ok()
}

/// `YYYY-MM-DDTHH:MM:SS.sssZ` or `...sss+0000`, as µs since the epoch.
fn fast_timestamp_us(s: &[u8]) -> Option<i64> {
    let utc = match s.len() {
        24 => s[23] == b'Z',
        28 => &s[23..] == b"+0000",
        _ => false,
    };
    if !utc || s[10] != b'T' || s[13] != b':' || s[16] != b':' || s[19] != b'.' {
        return None;
    }
    let days = i64::from(fast_date(&s[..10])?);
    let (h, m, sec) = (two(s, 11)?, two(s, 14)?, two(s, 17)?);
    if h > 23 || m > 59 || sec > 59 {
        return None;
    }
    let ms = digit(s[20])? * 100 + two(s, 21)?;
    Some(((days * 86_400 + h * 3_600 + m * 60 + sec) * 1_000 + ms) * 1_000)
}

/// `-?digits(.digits)?` with at most `scale` decimals and `precision` digits in all.
fn fast_decimal(s: &[u8], precision: u8, scale: i8) -> Option<i128> {
    let scale = usize::try_from(scale).ok()?;
    let (negative, digits) = match s.split_first()? {
        (b'-', rest) => (true, rest),
        _ => (false, s),
    };
    let (int, frac) = match digits.iter().position(|b| *b == b'.') {
        Some(p) => (&digits[..p], &digits[p + 1..]),
        None => (digits, &[][..]),
    };
    if int.is_empty() || frac.len() > scale || int.len() + scale > usize::from(precision) {
        return None;
    }
    if frac.is_empty() && int.len() != digits.len() {
        return None; // "12." is left to arrow
    }
    // 18 digits fit a u64, whose arithmetic is cheaper than i128's.
    let mut v = if int.len() + frac.len() <= 18 {
        let mut u: u64 = 0;
        for b in int.iter().chain(frac) {
            let d = b.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            u = u * 10 + u64::from(d);
        }
        i128::from(u)
    } else {
        let mut w: i128 = 0;
        for b in int.iter().chain(frac) {
            w = w * 10 + i128::from(digit(*b)?);
        }
        w
    };
    v *= 10i128.pow((scale - frac.len()) as u32);
    Some(if negative { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, TimeUnit};

    /// What arrow's own parsers give, value by value (the reference the fast paths match).
    fn reference(values: &[&str], to: &DataType) -> Vec<Option<i128>> {
        values
            .iter()
            .map(|s| match to {
                DataType::Timestamp(_, _) => slow_timestamp_us(s, None).ok().map(i128::from),
                DataType::Date32 => Date32Type::parse(s).map(i128::from),
                DataType::Decimal128(p, sc) => parse_decimal::<Decimal128Type>(s, *p, *sc).ok(),
                _ => unreachable!(),
            })
            .collect()
    }

    fn fast(values: &[&str], to: &DataType) -> Vec<Option<i128>> {
        values
            .iter()
            .map(|s| match to {
                DataType::Timestamp(_, _) => fast_timestamp_us(s.as_bytes()).map(i128::from),
                DataType::Date32 => fast_date(s.as_bytes()).map(i128::from),
                DataType::Decimal128(p, sc) => fast_decimal(s.as_bytes(), *p, *sc),
                _ => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn fast_paths_agree_with_arrow_where_they_apply() {
        let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let stamps = [
            "2024-01-15T10:00:00.000Z",
            "2024-01-15T10:00:00.000+0000",
            "1970-01-01T00:00:00.000Z",
            "1969-12-31T23:59:59.999Z",
            "2000-02-29T12:34:56.789Z",
            "0001-01-01T00:00:00.000Z",
            "9999-12-31T23:59:59.999Z",
        ];
        assert_eq!(fast(&stamps, &ts), reference(&stamps, &ts));
        let dates = [
            "2024-02-29",
            "1970-01-01",
            "1900-03-01",
            "1600-02-29",
            "0001-01-01",
        ];
        assert_eq!(
            fast(&dates, &DataType::Date32),
            reference(&dates, &DataType::Date32)
        );
        let dec = DataType::Decimal128(18, 2);
        let decimals = ["0", "-0", "1234.50", "-0.01", "12.3", "9999999999999999.99"];
        assert_eq!(fast(&decimals, &dec), reference(&decimals, &dec));
    }

    #[test]
    fn other_shapes_are_left_to_arrow() {
        for s in [
            "2024-01-15T11:00:00.000+00:00",
            "2024-01-15T10:00:00Z",
            "2024-01-15T10:00:00.000+0100",
            "2024-02-30T10:00:00.000Z",
            "2024-01-15T24:00:00.000Z",
        ] {
            assert_eq!(fast_timestamp_us(s.as_bytes()), None, "{s}");
        }
        for s in ["2023-02-29", "2024-13-01", "2024-1-01", "20240101"] {
            assert_eq!(fast_date(s.as_bytes()), None, "{s}");
        }
        for s in [
            "1e3",
            "+1",
            ".5",
            "12.",
            "1.234",
            "1234567890123456789",
            "--1",
            "1-",
        ] {
            assert_eq!(fast_decimal(s.as_bytes(), 18, 2), None, "{s}");
        }
    }

    #[test]
    fn other_shapes_fall_back_to_arrow_and_bad_values_are_named() {
        let utc: Tz = "UTC".parse().unwrap();
        assert_eq!(
            timestamp_us(b"2024-01-15T11:00:00.000+00:00", Some(&utc)),
            Ok(1_705_316_400_000_000)
        );
        assert_eq!(decimal128(b"1e3", 18, 2), Ok(100_000));
        assert_eq!(decimal128(b"-3", 18, 2), Ok(-300));
        let e = timestamp_us(b"soon", Some(&utc)).unwrap_err();
        assert!(e.contains("soon"), "{e}");
        let e = decimal128(b"lots", 18, 2).unwrap_err();
        assert!(e.contains("lots"), "{e}");
        let e = date_days(b"2024-02-30").unwrap_err();
        assert!(e.contains("2024-02-30"), "{e}");
    }
}
