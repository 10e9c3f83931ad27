//! Salesforce's wire text for stored values: 18-character ids (with the case checksum),
//! datetimes (`2013-05-20T20:49:32.000+0000`), dates, times and numbers, and their parsers.

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

/// Epoch milliseconds cut to the whole second before them: Salesforce keeps datetimes, and
/// compares them, to the second (a value written or compared with milliseconds loses them; its
/// API shows `.000`).
pub fn whole_second(ms: i64) -> i64 {
    ms.div_euclid(1000) * 1000
}

/// [`parse_datetime`] as Salesforce stores or compares the value: to the whole second.
pub fn parse_stored_datetime(s: &str) -> Option<i64> {
    parse_datetime(s).map(whole_second)
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
