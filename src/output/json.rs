//! JSON value text written straight into an output buffer, byte for byte as arrow-json (and
//! serde_json under it) writes it, but without the intermediate `String`s, `fmt` machinery and
//! dynamic dispatch: the RECORD renderer spends most of its time here.
//!
//! Every writer covers the values Salesforce data holds (years 0..=9999, times within a day,
//! decimals within their precision); anything else says so (`false`) and the caller formats it
//! with arrow's own formatter, so rare values stay exact too.

use base64::Engine;
use lexical_core::{FormattedSize, ToLexical};

use crate::bytes::{SHORT, put_short};

/// Appends `s` as a JSON string, escaped exactly as serde_json escapes (`\"`, `\\`, the short
/// escapes `\b \t \n \f \r`, `\u00xx` for other control bytes; everything else as is).
pub(super) fn write_str(out: &mut Vec<u8>, s: &[u8]) {
    write_str_from(out, s.len(), s);
}

/// As [`write_str`] for the first `len` bytes of `src`, which may run on past them (the rest
/// of an Arrow values buffer): a short value needing no escape is then copied by
/// [`put_short`].
pub(super) fn write_str_from(out: &mut Vec<u8>, len: usize, src: &[u8]) {
    let s = &src[..len];
    let mut at = find_escape(s);
    if at == len {
        write_clean_str_from(out, len, src);
        return;
    }
    out.reserve(len + 2);
    out.push(b'"');
    let mut start = 0;
    loop {
        out.extend_from_slice(&s[start..at]);
        let Some(&byte) = s.get(at) else { break };
        write_escape(out, byte);
        start = at + 1;
        at = start + find_escape(&s[start..]);
    }
    out.push(b'"');
}

/// As [`write_str_from`] for a value already known to need no escape (see [`any_escape`]).
///
/// A value shorter than [`SHORT`] (most Ids, names, picklist values, codes) is copied with one
/// fixed block of `SHORT` bytes, cut back to length, between its quotes: no `memmove` call. It
/// is written straight into `out`, not composed with its quotes on the stack and then copied
/// (see [`compose`] for why); `perf` showed no difference in time for this one, either way.
#[inline(always)]
pub(super) fn write_clean_str_from(out: &mut Vec<u8>, len: usize, src: &[u8]) {
    out.reserve(len.max(SHORT) + 2);
    out.push(b'"');
    put_short(out, len, src);
    out.push(b'"');
}

/// Appends what `write` composes in `room` bytes at the end of `out` (zeroed first, by a
/// constant-size copy), keeping the length it returns; with `None`, nothing. Values are
/// composed in place rather than on the stack and then copied, because such a copy reads back
/// bytes stored a moment before by several narrower stores, and that load stalls until they
/// land (store-to-load forwarding fails). Timestamps, dates and decimals composed on the stack
/// took 5.0% of a wide RECORD read's time in `perf` (cpu-clock samples), 2.5% in place.
#[inline(always)]
fn compose<const ROOM: usize>(
    out: &mut Vec<u8>,
    write: impl FnOnce(&mut [u8; ROOM]) -> Option<usize>,
) -> bool {
    let at = out.len();
    out.extend_from_slice(&[0; ROOM]);
    let room = out[at..]
        .first_chunk_mut::<ROOM>()
        .expect("ROOM bytes were just appended");
    match write(room) {
        Some(n) => {
            out.truncate(at + n);
            true
        }
        None => {
            out.truncate(at);
            false
        }
    }
}

/// Whether any byte of `s` needs escaping in a JSON string. One pass over the text of many
/// values, 32 bytes a step (the compiler turns the step into vector compares), costs far less
/// than a search per value, which pays its set-up and its tail on every Id and name.
pub(super) fn any_escape(s: &[u8]) -> bool {
    let flag = |b: u8| u8::from(b < 0x20) | u8::from(b == b'"') | u8::from(b == b'\\');
    let mut chunks = s.chunks_exact(32);
    for chunk in &mut chunks {
        if chunk.iter().fold(0, |acc, &b| acc | flag(b)) != 0 {
            return true;
        }
    }
    chunks.remainder().iter().any(|&b| flag(b) != 0)
}

/// Eight copies of a byte.
const fn splat(b: u8) -> u64 {
    0x0101_0101_0101_0101 * b as u64
}

/// The high bit of each byte of `w` that needs escaping, and possibly of later bytes (a borrow
/// runs upward only): the lowest set bit is always exact.
fn escape_mask(w: u64) -> u64 {
    let low = w.wrapping_sub(splat(0x20)) & !w;
    let q = w ^ splat(b'"');
    let quote = q.wrapping_sub(splat(1)) & !q;
    let b = w ^ splat(b'\\');
    let backslash = b.wrapping_sub(splat(1)) & !b;
    (low | quote | backslash) & splat(0x80)
}

/// The index of the first byte of `s` that needs escaping, or `s.len()`; eight bytes a step.
/// The last few bytes are read as a word that overlaps bytes already seen (clean, so they flag
/// nothing), not one by one nor copied to a padded word (a `memcpy` call): most values are
/// short (Ids, codes, names), and their tails took most of this function's time.
#[inline(always)]
fn find_escape(s: &[u8]) -> usize {
    let n = s.len();
    let mut i = 0;
    while let Some(word) = s.get(i..i + 8) {
        let mask = escape_mask(u64::from_le_bytes(word.try_into().expect("eight bytes")));
        if mask != 0 {
            return i + (mask.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    if i == n {
        return n;
    }
    if n >= 8 {
        let word = u64::from_le_bytes(s[n - 8..].try_into().expect("eight bytes"));
        return first_flagged(escape_mask(word), n - 8, 8);
    }
    if n >= 4 {
        // The first four bytes and the last four (which may overlap them) as one word.
        let lo = u32::from_le_bytes(s[..4].try_into().expect("four bytes"));
        let hi = u32::from_le_bytes(s[n - 4..].try_into().expect("four bytes"));
        let mask = escape_mask(u64::from(lo) | u64::from(hi) << 32);
        if mask == 0 {
            return n;
        }
        let k = (mask.trailing_zeros() / 8) as usize;
        return if k < 4 { k } else { n - 4 + (k - 4) };
    }
    s.iter()
        .position(|&b| b < 0x20 || b == b'"' || b == b'\\')
        .unwrap_or(n)
}

/// The index in `s` of the lowest byte flagged in `mask` of the word read at `at`, or `at +
/// len` (the end) when none is.
fn first_flagged(mask: u64, at: usize, len: usize) -> usize {
    if mask == 0 {
        at + len
    } else {
        at + (mask.trailing_zeros() / 8) as usize
    }
}

/// The escape of one byte that needs one.
fn write_escape(out: &mut Vec<u8>, byte: u8) {
    let short = match byte {
        b'"' => b'"',
        b'\\' => b'\\',
        0x08 => b'b',
        0x09 => b't',
        0x0A => b'n',
        0x0C => b'f',
        0x0D => b'r',
        _ => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            let hex = [HEX[(byte >> 4) as usize], HEX[(byte & 0xF) as usize]];
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', hex[0], hex[1]]);
            return;
        }
    };
    out.extend_from_slice(&[b'\\', short]);
}

/// Appends an integer (or a finite float) as arrow-json does (lexical-core), written by
/// lexical straight into `out` (see [`compose`]).
pub(super) fn write_number<N: ToLexical + FormattedSize>(out: &mut Vec<u8>, n: N) {
    // Three rooms of constant size, not one of `N::FORMATTED_SIZE` passed at run time: that
    // measured 0.7% more instructions in a wide read (bounds checks no longer proven away).
    match N::FORMATTED_SIZE {
        0..=24 => compose::<24>(out, |room| Some(lexical_core::write(n, room).len())),
        25..=40 => compose::<40>(out, |room| Some(lexical_core::write(n, room).len())),
        _ => compose::<64>(out, |room| Some(lexical_core::write(n, room).len())),
    };
}

/// Appends a float as arrow-json does: lexical-core's shortest form, `null` for NaN and
/// infinities (JSON has neither).
pub(super) fn write_f64(out: &mut Vec<u8>, x: f64) {
    if x.is_finite() {
        write_number(out, x);
    } else {
        out.extend_from_slice(b"null");
    }
}

/// As [`write_f64`] for `f32`.
pub(super) fn write_f32(out: &mut Vec<u8>, x: f32) {
    if x.is_finite() {
        write_number(out, x);
    } else {
        out.extend_from_slice(b"null");
    }
}

/// Appends a Decimal128 value as a bare JSON number the way arrow formats it (`1234.50`,
/// `-0.05`, `7`); false, with nothing written, when it has more digits than `precision` or a
/// negative scale (arrow's formatter then decides).
pub(super) fn write_decimal(out: &mut Vec<u8>, value: i128, precision: u8, scale: i8) -> bool {
    let Ok(scale) = usize::try_from(scale) else {
        return false;
    };
    if scale > 38 {
        return false;
    }
    // Composed in place (see [`compose`]): a sign, then the digits (at most 39) written by
    // lexical; the fraction is then moved right by one for the point, or all digits by two and
    // more for "0." and the zeros when all of them are fraction.
    compose::<48>(out, |room| {
        let sign = usize::from(value < 0);
        room[0] = b'-';
        let len = lexical_core::write(value.unsigned_abs(), &mut room[sign..sign + 39]).len();
        if len > precision as usize {
            return None;
        }
        let digits = sign..sign + len;
        if scale == 0 {
            return Some(digits.end);
        }
        if len > scale {
            let point = digits.end - scale;
            room.copy_within(point..digits.end, point + 1);
            room[point] = b'.';
            return Some(digits.end + 1);
        }
        let zeros = scale - len;
        room.copy_within(digits.clone(), sign + 2 + zeros);
        room[sign] = b'0';
        room[sign + 1] = b'.';
        room[sign + 2..sign + 2 + zeros].fill(b'0');
        Some(sign + 2 + scale)
    })
}

/// Day counts from 1970-01-01 of 0000-01-01 and 9999-12-31: the dates a RECORD writes as
/// `YYYY-MM-DD` (arrow's own formatting takes over outside them).
const FIRST_DAY: i64 = -719_528;
const LAST_DAY: i64 = 2_932_896;

/// The proleptic Gregorian (year, month, day) of a day count from 1970-01-01 within
/// [`FIRST_DAY`]`..=`[`LAST_DAY`], by C. Neri and L. Schneider's Euclidean affine functions
/// ("Euclidean affine functions and their application to calendar algorithms", 2022): a few
/// multiplications and shifts on unsigned 32-bit words, where H. Hinnant's signed
/// `civil_from_days`, used before, divided by constants about ten times. With two datetimes a
/// row, writing them took 8.7% of a 7 fields RECORD read's perf samples before, 5.7% after.
fn civil_from_days(days: i64) -> (u32, u32, u32) {
    debug_assert!((FIRST_DAY..=LAST_DAY).contains(&days));
    // Days since 0000-03-01 (719,468 days before the epoch), plus one 400-year era (146,097
    // days) so that January and February of year 0 count from a positive number too. The
    // computational year starts in March, so that the leap day ends it.
    let n = (days + 719_468 + 146_097) as u32;
    let n1 = 4 * n + 3;
    let century = n1 / 146_097;
    let n2 = 4 * (n1 % 146_097 / 4) + 3;
    let p2 = 2_939_745u64 * u64::from(n2);
    let year_of_century = (p2 >> 32) as u32;
    let day_of_year = (p2 as u32) / 2_939_745 / 4;
    let n3 = 2_141 * day_of_year + 197_913;
    let (month, day) = (n3 >> 16, (n3 & 0xFFFF) / 2_141 + 1);
    // Days 306 and on of a computational year are January and February of the next.
    let next = day_of_year >= 306;
    let year = 100 * century + year_of_century + u32::from(next) - 400;
    (year, if next { month - 12 } else { month }, day)
}

/// Two decimal digits of `n` (< 100).
fn two(n: u32) -> [u8; 2] {
    [b'0' + (n / 10) as u8, b'0' + (n % 10) as u8]
}

/// `YYYY-MM-DD` into `buf[..10]`; false for years outside 0..=9999.
fn date_text(days: i64, buf: &mut [u8]) -> bool {
    if !(FIRST_DAY..=LAST_DAY).contains(&days) {
        return false;
    }
    let (year, month, day) = civil_from_days(days);
    buf[..2].copy_from_slice(&two(year / 100));
    buf[2..4].copy_from_slice(&two(year % 100));
    buf[4] = b'-';
    buf[5..7].copy_from_slice(&two(month));
    buf[7] = b'-';
    buf[8..10].copy_from_slice(&two(day));
    true
}

/// `HH:MM:SS` and the fraction as chrono writes it (none, 3 or 6 digits for microseconds)
/// into `buf`; returns the length written.
fn time_text(second_of_day: u32, micros: u32, buf: &mut [u8]) -> usize {
    buf[..2].copy_from_slice(&two(second_of_day / 3600));
    buf[2] = b':';
    buf[3..5].copy_from_slice(&two(second_of_day / 60 % 60));
    buf[5] = b':';
    buf[6..8].copy_from_slice(&two(second_of_day % 60));
    let (digits, value) = match micros {
        0 => return 8,
        m if m % 1000 == 0 => (3, m / 1000),
        m => (6, m),
    };
    buf[8] = b'.';
    let mut v = value;
    for i in (9..9 + digits).rev() {
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    9 + digits
}

/// Appends a Date32 as a quoted `YYYY-MM-DD`; false, with nothing written, outside years
/// 0..=9999.
pub(super) fn write_date32(out: &mut Vec<u8>, days: i32) -> bool {
    compose::<12>(out, |room| {
        room[0] = b'"';
        date_text(i64::from(days), &mut room[1..]).then_some(())?;
        room[11] = b'"';
        Some(12)
    })
}

/// Appends a Time64(µs) as a quoted `HH:MM:SS[.fff[fff]]`; false, with nothing written, for a
/// value outside one day.
pub(super) fn write_time64_us(out: &mut Vec<u8>, micros: i64) -> bool {
    if !(0..86_400_000_000).contains(&micros) {
        return false;
    }
    compose::<SHORT>(out, |room| {
        room[0] = b'"';
        let (second, micro) = ((micros / 1_000_000) as u32, (micros % 1_000_000) as u32);
        let n = 1 + time_text(second, micro, &mut room[1..]);
        room[n] = b'"';
        Some(n + 1)
    })
}

/// Appends a Timestamp(µs, UTC) as chrono's RFC 3339 with `Z` and the shortest of no, 3 or 6
/// fraction digits, quoted; false, with nothing written, outside years 0..=9999.
pub(super) fn write_timestamp_us_utc(out: &mut Vec<u8>, micros: i64) -> bool {
    let seconds = micros.div_euclid(1_000_000);
    compose::<SHORT>(out, |room| {
        room[0] = b'"';
        date_text(seconds.div_euclid(86_400), &mut room[1..]).then_some(())?;
        room[11] = b'T';
        let second = seconds.rem_euclid(86_400) as u32;
        let n = 12 + time_text(second, micros.rem_euclid(1_000_000) as u32, &mut room[12..]);
        room[n] = b'Z';
        room[n + 1] = b'"';
        Some(n + 2)
    })
}

/// Appends bytes as a quoted standard base64 string (with padding).
pub(super) fn write_base64(out: &mut Vec<u8>, bytes: &[u8]) {
    let engine = &base64::engine::general_purpose::STANDARD;
    let len = base64::encoded_len(bytes.len(), true).expect("a base64 length fits in usize");
    out.push(b'"');
    let at = out.len();
    out.resize(at + len, 0);
    let written = engine
        .encode_slice(bytes, &mut out[at..])
        .expect("the slice has the encoded length");
    out.truncate(at + written);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_value_is_quoted_at_its_length_whatever_follows() {
        let text: Vec<u8> = (0..80u8).map(|i| b'a' + i % 26).collect();
        for len in 0..=70 {
            for extra in [0, 1, SHORT - len.min(SHORT), SHORT, 10] {
                let src = &text[..(len + extra).min(text.len())];
                let mut out = b"x".to_vec();
                write_clean_str_from(&mut out, len, src);
                let want = [b"x\"".as_slice(), &text[..len], b"\""].concat();
                assert_eq!(out, want, "{len} bytes, {extra} after");
            }
        }
    }

    fn serde(s: &str) -> Vec<u8> {
        serde_json::to_vec(s).unwrap()
    }

    #[test]
    fn strings_escape_as_serde_json_does() {
        let mut all = String::new();
        for c in (0u8..0x80).map(char::from) {
            all.push(c);
        }
        let cases = [
            "",
            "a",
            "plain ASCII text longer than eight bytes",
            "\"",
            "\\",
            "ends with a quote\"",
            "é日本😀\u{2028}\u{7f}",
            "12345678\n",
            "1234567\u{1f}",
            &all,
        ];
        for s in cases {
            let mut out = Vec::new();
            write_str(&mut out, s.as_bytes());
            assert_eq!(out, serde(s), "{s:?}");
        }
        // Every length around the word size, every byte at every position (and two escapes,
        // for the words read overlapping).
        for (len, second) in (1..=17).flat_map(|n| [(n, false), (n, true)]) {
            for b in 0u8..=255 {
                for pos in 0..len {
                    let mut bytes = vec![b'x'; len];
                    if second {
                        bytes[len - 1 - pos / 2] = b'\n';
                    }
                    bytes[pos] = b;
                    let Ok(s) = std::str::from_utf8(&bytes) else {
                        continue;
                    };
                    let mut out = Vec::new();
                    write_str(&mut out, s.as_bytes());
                    assert_eq!(out, serde(s), "byte {b} at {pos} of {len}");
                }
            }
        }
    }

    #[test]
    fn a_whole_text_is_flagged_exactly_when_a_byte_needs_escaping() {
        let flag = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
        for len in 0..=70 {
            assert!(!any_escape(&vec![b'x'; len]), "{len} clean bytes");
            for pos in 0..len {
                for b in 0u8..=255 {
                    let mut bytes = vec![b'x'; len];
                    bytes[pos] = b;
                    assert_eq!(any_escape(&bytes), flag(b), "byte {b} at {pos} of {len}");
                }
            }
        }
    }

    #[test]
    fn values_read_from_a_longer_buffer_stop_at_their_length() {
        let text = "0123456789abcdefghijklmnopqrstuvwxyz\"ABCDEFGHIJ\nKLMNOPQRSTUVWXYZ";
        for len in 0..=text.len() {
            for extra in [0, 1, 7, SHORT - 1, SHORT, 40] {
                let src = &text.as_bytes()[..(len + extra).min(text.len())];
                let mut out = b"prefix".to_vec();
                write_str_from(&mut out, len, src);
                assert_eq!(out[6..], serde(&text[..len]), "{len} bytes, {extra} after");
            }
        }
        let mut out = Vec::new();
        for (v, s, want) in [
            (-5i128, 3i8, "-0.005"),
            (123_456, 2, "1234.56"),
            (7, 0, "7"),
            (1, 38, "0.00000000000000000000000000000000000001"),
        ] {
            out.clear();
            assert!(write_decimal(&mut out, v, 38, s));
            assert_eq!(String::from_utf8_lossy(&out), want);
        }
    }

    #[test]
    fn days_match_chrono_on_every_day_of_years_0_to_9999() {
        use chrono::Datelike;
        let mut date = chrono::NaiveDate::from_ymd_opt(0, 1, 1).unwrap();
        for days in FIRST_DAY..=LAST_DAY {
            assert_eq!(
                civil_from_days(days),
                (date.year() as u32, date.month(), date.day()),
                "{days}"
            );
            date = date.succ_opt().unwrap();
        }
        assert_eq!(date, chrono::NaiveDate::from_ymd_opt(10000, 1, 1).unwrap());
        let mut buf = [0u8; 10];
        assert!(date_text(FIRST_DAY, &mut buf) && &buf == b"0000-01-01");
        assert!(date_text(LAST_DAY, &mut buf) && &buf == b"9999-12-31");
        assert!(date_text(0, &mut buf) && &buf == b"1970-01-01");
        for outside in [FIRST_DAY - 1, LAST_DAY + 1, i64::MIN, i64::MAX] {
            assert!(!date_text(outside, &mut buf), "{outside}");
        }
    }
}
