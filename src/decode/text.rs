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

/// A whole number of at most 18 digits (`-?[0-9]+`), as Bulk CSV writes every integer below
/// 10^7 and most above it; `None` for any other shape (a sign of `+`, Java's E-notation, more
/// digits), which is left to arrow's parser. Its bytes are taken as they are: checking a field
/// for UTF-8 first, to hand arrow a `&str`, was a sixth of the cost of an integer column. A
/// decimal of scale 0 is exactly that shape, and below 10^18 it fits an i64.
pub(super) fn integer(s: &[u8]) -> Option<i64> {
    fast_decimal(s, 18, 0).map(|v| v as i64)
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

fn digit(b: u8) -> Option<u32> {
    let d = b.wrapping_sub(b'0');
    (d < 10).then_some(u32::from(d))
}

/// Eight bytes checked against a shape in one go: every byte where `digits` is `0xFF` must be
/// an ASCII digit, every other byte must equal `shape`'s. Returns each byte's digit value
/// times ten plus the next byte's (so byte `i` holds the two-digit number starting at `i`),
/// or `None` when the bytes are not in the shape.
///
/// This is where a timestamp's 17 digits and 6 separators are validated without a branch a
/// byte: a wide Account row holds five datetimes, and parsing them one byte at a time was 7%
/// of a narrow Parquet export's instructions.
#[inline(always)]
fn digit_pairs(bytes: [u8; 8], digits: u64, shape: u64) -> Option<u64> {
    let v = u64::from_le_bytes(bytes);
    // Digits become 0..=9 in their byte; anything else gets a high nibble or exceeds 9.
    let x = (v ^ 0x3030_3030_3030_3030) & digits;
    let bad_digit = (x | x.wrapping_add(0x0606_0606_0606_0606 & digits)) & 0xF0F0_F0F0_F0F0_F0F0;
    if bad_digit != 0 || (v & !digits) != (shape & !digits) {
        return None;
    }
    // Each byte is at most 9, so x * 10 + next stays below 100: no carry between bytes.
    Some(x.wrapping_mul(10).wrapping_add(x >> 8))
}

/// Byte `i` of a little-endian word.
#[inline(always)]
fn byte(word: u64, i: u32) -> u32 {
    (word >> (8 * i)) as u32 & 0xFF
}

/// `YYYY-MM-` as year and month, and `DD` as day.
#[inline(always)]
fn year_month_day(s: &[u8; 10]) -> Option<(u32, u32, u32)> {
    const DIGITS: u64 = 0x00FF_FF00_FFFF_FFFF;
    const SHAPE: u64 = u64::from_le_bytes(*b"0000-00-");
    let ym = digit_pairs(s[..8].try_into().ok()?, DIGITS, SHAPE)?;
    let day = digit(s[8])? * 10 + digit(s[9])?;
    Some((byte(ym, 0) * 100 + byte(ym, 2), byte(ym, 5), day))
}

/// Days since 1970-01-01 of a proleptic Gregorian date of years 0..=9999, `None` when the
/// month or day does not exist.
#[inline(always)]
fn days_from_civil(year: u32, month: u32, day: u32) -> Option<i64> {
    const MONTH_DAYS: [u32; 13] = [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    let month_days = *MONTH_DAYS.get(month as usize)? + u32::from(month == 2 && leap);
    if day == 0 || day > month_days {
        return None;
    }
    // Howard Hinnant's days_from_civil, on a year shifted by one 400-year era (146,097 days)
    // so that every quantity stays unsigned.
    let y = year + 400 - u32::from(month <= 2);
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(i64::from(era) * 146_097 + i64::from(doe) - 719_468 - 146_097)
}

/// `YYYY-MM-DD`.
fn fast_date(s: &[u8]) -> Option<i32> {
    let (year, month, day) = year_month_day(s.try_into().ok()?)?;
    i32::try_from(days_from_civil(year, month, day)?).ok()
}

/// `YYYY-MM-DDTHH:MM:SS.sssZ` or `...sss+0000`, as µs since the epoch.
fn fast_timestamp_us(s: &[u8]) -> Option<i64> {
    const DIGITS: u64 = 0xFFFF_00FF_FF00_FFFF;
    const SHAPE: u64 = u64::from_le_bytes(*b"00:00:00");
    let utc = match s.len() {
        24 => s[23] == b'Z',
        28 => &s[23..] == b"+0000",
        _ => false,
    };
    if !utc || s[10] != b'T' || s[19] != b'.' {
        return None;
    }
    let (year, month, day) = year_month_day(s[..10].try_into().ok()?)?;
    let hms = digit_pairs(s[11..19].try_into().ok()?, DIGITS, SHAPE)?;
    let (h, m, sec) = (byte(hms, 0), byte(hms, 3), byte(hms, 6));
    let ms = i64::from(digit(s[20])? * 100 + digit(s[21])? * 10 + digit(s[22])?);
    if h > 23 || m > 59 || sec > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day)?;
    let seconds = i64::from(h * 3_600 + m * 60 + sec);
    Some(((days * 86_400 + seconds) * 1_000 + ms) * 1_000)
}

/// 10^0 to 10^19, every power of ten a u64 holds.
const POW10: [u64; 20] = {
    let mut p = [1u64; 20];
    let mut i = 1;
    while i < 20 {
        p[i] = p[i - 1] * 10;
        i += 1;
    }
    p
};

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
    let zeros = scale - frac.len();
    // Below 10^19 (19 digits at most, the scale's zeros included) the value fits a u64, whose
    // arithmetic is cheaper than i128's, and its scaling is one multiplication by a power from
    // a table: scaling in i128 by a power computed per value (latitudes and longitudes have
    // scale 15) was 0.8% of a wide read's instructions.
    let v = if int.len() + scale <= 19 {
        let mut u: u64 = 0;
        for b in int.iter().chain(frac) {
            let d = b.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            u = u * 10 + u64::from(d);
        }
        i128::from(u * POW10[zeros])
    } else {
        let mut w: i128 = 0;
        for b in int.iter().chain(frac) {
            w = w * 10 + i128::from(digit(*b)?);
        }
        w * 10i128.pow(zeros as u32)
    };
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
    fn integers_match_arrow_where_the_fast_path_applies() {
        use arrow::datatypes::Int64Type;
        let values = [
            "0",
            "-0",
            "7",
            "007",
            "-42",
            "2147483647",
            "-2147483648",
            "999999999999999999",
            "-999999999999999999",
        ];
        for v in values {
            assert_eq!(integer(v.as_bytes()), Int64Type::parse(v), "{v}");
        }
        // Other shapes are arrow's to judge (or refuse).
        for v in [
            "",
            "-",
            "+5",
            "1.0",
            "1e3",
            "12a",
            "9223372036854775807",
            " 1",
        ] {
            assert_eq!(integer(v.as_bytes()), None, "{v:?}");
        }
    }

    #[test]
    fn decimals_match_arrow_on_both_sides_of_the_u64_range() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let types = [
            (18, 2),
            (18, 15),
            (19, 15),
            (20, 15),
            (38, 15),
            (19, 0),
            (20, 0),
            (38, 3),
        ];
        for (precision, scale) in types {
            let to = DataType::Decimal128(precision, scale);
            let mut values: Vec<String> = ["9999", "9999.9999999999999999", "18446744073709551615"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            for _ in 0..2_000 {
                let int: String = (0..rng.random_range(1..=21))
                    .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
                    .collect();
                let frac: String = (0..rng.random_range(0..=17))
                    .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
                    .collect();
                let sign = if rng.random() { "-" } else { "" };
                let dot = if frac.is_empty() { "" } else { "." };
                values.push(format!("{sign}{int}{dot}{frac}"));
            }
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            let ours: Vec<Option<i128>> = values
                .iter()
                .map(|v| decimal128(v.as_bytes(), precision, scale).ok())
                .collect();
            assert_eq!(
                ours,
                reference(&values, &to),
                "Decimal128({precision}, {scale})"
            );
            assert!(ours.iter().filter(|v| v.is_some()).count() > 100);
        }
    }

    /// The reference for dates: chrono's calendar.
    fn chrono_days(year: i32, month: u32, day: u32) -> Option<i64> {
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        chrono::NaiveDate::from_ymd_opt(year, month, day).map(|d| (d - epoch).num_days())
    }

    #[test]
    fn dates_and_timestamps_match_the_calendar_across_years_0_to_9999() {
        // Every day of 1600-2400 (four leap-century cycles around today), and the days around
        // each month's end in every year the shape can hold.
        let mut checked = 0;
        for year in 0..=9999 {
            let full = (1600..=2400).contains(&year);
            for month in 0..=13 {
                for day in 0..=32 {
                    if !(full || day <= 1 || day >= 27) {
                        continue;
                    }
                    let text = format!("{year:04}-{month:02}-{day:02}");
                    let want = chrono_days(year, month, day);
                    assert_eq!(fast_date(text.as_bytes()).map(i64::from), want, "{text}");
                    let stamp = format!("{text}T23:59:58.999Z");
                    let want_us = want.map(|d| ((d * 86_400 + 86_398) * 1_000 + 999) * 1_000);
                    assert_eq!(fast_timestamp_us(stamp.as_bytes()), want_us, "{stamp}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 500_000, "{checked}");
    }

    #[test]
    fn a_stray_byte_anywhere_in_a_timestamp_leaves_it_to_arrow() {
        let good = *b"2024-02-29T13:45:07.123Z";
        assert_eq!(fast_timestamp_us(&good), Some(1_709_214_307_123_000));
        for i in 0..good.len() {
            for stray in [
                b'/',
                b':',
                b'-',
                b'T',
                b'.',
                b'Z',
                b' ',
                b'a',
                0x80,
                0xFF,
                b'0' - 1,
                b'9' + 1,
            ] {
                if stray == good[i] {
                    continue;
                }
                let mut bad = good;
                bad[i] = stray;
                assert_eq!(
                    fast_timestamp_us(&bad),
                    None,
                    "{:?}",
                    String::from_utf8_lossy(&bad)
                );
            }
        }
        for i in [4, 7, 10, 13, 16, 19, 23] {
            let mut bad = good;
            bad[i] = b'0';
            assert_eq!(
                fast_timestamp_us(&bad),
                None,
                "{:?}",
                String::from_utf8_lossy(&bad)
            );
        }
        for (time, valid) in [
            ("23:59:59", true),
            ("24:00:00", false),
            ("00:60:00", false),
            ("00:00:60", false),
        ] {
            let s = format!("2024-01-01T{time}.000Z");
            assert_eq!(fast_timestamp_us(s.as_bytes()).is_some(), valid, "{s}");
        }
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
