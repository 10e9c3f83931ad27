//! Rendering stored values on the wire: REST JSON records (with `attributes`, nested parent
//! relationships and compound address / location objects) and Bulk CSV cells.

use super::describe::FType;
use super::soql::{Path, read, target};
use super::store::{
    Column, Store, Val, unpack, write_date, write_datetime, write_id, write_int, write_number,
    write_time,
};

/// Writes a JSON string literal.
pub fn json_str(out: &mut Vec<u8>, s: &str) {
    // serde_json's escaper writes into any io::Write; a Vec never fails.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Writes one value as JSON.
pub fn json_val(out: &mut Vec<u8>, store: &Store, v: &Val<'_>) {
    match v {
        Val::Null => out.extend_from_slice(b"null"),
        Val::Str(s) => json_str(out, s),
        Val::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Val::Num(n) => write_number(*n, out),
        Val::Int(n) => write_int(*n, out),
        Val::Date(d) => {
            out.push(b'"');
            write_date(*d, out);
            out.push(b'"');
        }
        Val::DateTime(ms) => {
            out.push(b'"');
            write_datetime(*ms, out);
            out.push(b'"');
        }
        Val::Time(t) => {
            out.push(b'"');
            write_time(*t, out);
            out.push(b'"');
        }
        Val::Ref(r) => {
            let (obj, row) = unpack(*r);
            out.push(b'"');
            write_id(&store.catalog.objects[obj].prefix, row, out);
            out.push(b'"');
        }
    }
}

const ADDRESS_KEYS: [&str; 10] = [
    "city",
    "country",
    "countryCode",
    "geocodeAccuracy",
    "latitude",
    "longitude",
    "postalCode",
    "state",
    "stateCode",
    "street",
];

/// Writes a compound address / location field of a row (null when every component is null).
pub fn json_compound(out: &mut Vec<u8>, store: &Store, obj: usize, row: usize, field: usize) {
    let t = &store.tables[obj];
    let Column::Compound(parts) = &t.cols[field] else {
        out.extend_from_slice(b"null");
        return;
    };
    if parts.iter().all(|(_, i)| t.get(row, *i).is_null()) {
        out.extend_from_slice(b"null");
        return;
    }
    let is_location = store.catalog.objects[obj].fields[field].ftype == FType::Location;
    let keys: &[&str] = if is_location {
        &["latitude", "longitude"]
    } else {
        &ADDRESS_KEYS
    };
    out.push(b'{');
    for (k, key) in keys.iter().enumerate() {
        if k > 0 {
            out.push(b',');
        }
        json_str(out, key);
        out.push(b':');
        match parts.iter().find(|(n, _)| n == key) {
            Some((_, i)) => json_val(out, store, &t.get(row, *i)),
            None => out.extend_from_slice(b"null"),
        }
    }
    out.push(b'}');
}

fn attributes(
    out: &mut Vec<u8>,
    store: &Store,
    type_name: &str,
    obj: usize,
    row: usize,
    version: &str,
) {
    out.extend_from_slice(b"{\"attributes\":{\"type\":");
    json_str(out, type_name);
    out.extend_from_slice(b",\"url\":\"/services/data/");
    out.extend_from_slice(version.as_bytes());
    out.extend_from_slice(b"/sobjects/");
    out.extend_from_slice(store.catalog.objects[obj].name.as_bytes());
    out.push(b'/');
    write_id(&store.catalog.objects[obj].prefix, row, out);
    out.extend_from_slice(b"\"}");
}

/// How a REST record shows base64 fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blobs {
    /// As Salesforce does: the URL that serves the content
    /// (`/services/data/vXX.X/sobjects/Attachment/{id}/Body`).
    Urls,
    /// The stored base64 text (the test-control view of a record).
    Inline,
}

/// Writes one REST record: `attributes`, then the selected fields in order, relationship paths
/// grouped into one nested object per relationship (or `null`).
pub fn json_record(
    out: &mut Vec<u8>,
    store: &Store,
    obj: usize,
    row: usize,
    fields: &[Path],
    version: &str,
    blobs: Blobs,
) {
    let name = &store.catalog.objects[obj].name;
    attributes(out, store, name, obj, row, version);
    let mut done_rels: Vec<&str> = Vec::new();
    for p in fields {
        match &p.via {
            None => {
                out.push(b',');
                json_str(out, &p.name);
                out.push(b':');
                if matches!(p.ftype, FType::Address | FType::Location) {
                    json_compound(out, store, obj, row, p.field);
                    continue;
                }
                let v = read(store, obj, row, p);
                if p.ftype == FType::Base64 && blobs == Blobs::Urls && !v.is_null() {
                    out.extend_from_slice(b"\"/services/data/");
                    out.extend_from_slice(version.as_bytes());
                    out.extend_from_slice(b"/sobjects/");
                    out.extend_from_slice(name.as_bytes());
                    out.push(b'/');
                    write_id(&store.catalog.objects[obj].prefix, row, out);
                    out.push(b'/');
                    out.extend_from_slice(p.name.as_bytes());
                    out.push(b'"');
                } else {
                    json_val(out, store, &v);
                }
            }
            Some(via) => {
                if done_rels.contains(&via.rel_name.as_str()) {
                    continue;
                }
                done_rels.push(&via.rel_name);
                out.push(b',');
                json_str(out, &via.rel_name);
                out.push(b':');
                match target(store, obj, row, via) {
                    None => out.extend_from_slice(b"null"),
                    Some((t, trow)) => {
                        let tname = if via.polymorphic {
                            "Name"
                        } else {
                            store.catalog.objects[t].name.as_str()
                        };
                        attributes(out, store, tname, t, trow, version);
                        for q in fields
                            .iter()
                            .filter(|q| q.via.as_ref().is_some_and(|v| v.rel_name == via.rel_name))
                        {
                            out.push(b',');
                            json_str(out, &q.name);
                            out.push(b':');
                            let f = if via.polymorphic {
                                store.catalog.objects[t].field(&q.name)
                            } else {
                                Some(q.field)
                            };
                            match f {
                                Some(f) if matches!(q.ftype, FType::Address | FType::Location) => {
                                    json_compound(out, store, t, trow, f)
                                }
                                Some(f) => json_val(out, store, &store.get(t, trow, f)),
                                None => out.extend_from_slice(b"null"),
                            }
                        }
                        out.push(b'}');
                    }
                }
            }
        }
    }
    out.push(b'}');
}

/// Writes one Bulk CSV cell: every value quoted with `""` escaping, null and empty text as a
/// quoted empty value (`""`: Salesforce stores an empty string as null and quotes every cell);
/// datetimes in Bulk's `2024-01-02T03:04:05.000Z` form.
pub fn csv_cell(out: &mut Vec<u8>, store: &Store, v: &Val<'_>) {
    match v {
        Val::Null => out.extend_from_slice(b"\"\""),
        Val::Str(s) => {
            out.push(b'"');
            if s.as_bytes().contains(&b'"') {
                for &c in s.as_bytes() {
                    if c == b'"' {
                        out.push(b'"');
                    }
                    out.push(c);
                }
            } else {
                out.extend_from_slice(s.as_bytes());
            }
            out.push(b'"');
        }
        Val::DateTime(ms) => {
            out.push(b'"');
            write_datetime(*ms, out);
            out.truncate(out.len() - 5);
            out.extend_from_slice(b"Z\"");
        }
        Val::Ref(_) | Val::Date(_) | Val::Time(_) => {
            // Reuse the JSON form: it is already a quoted string without escapes.
            json_val(out, store, v);
        }
        other => {
            out.push(b'"');
            json_val(out, store, other);
            out.push(b'"');
        }
    }
}

/// Writes a double as a Bulk CSV cell the way Java's `Double.toString` does past its plain
/// range (|n| >= 10^7 or < 10^-3): `"1.6147805824397E13"`; other values as JSON numbers.
pub fn csv_double(out: &mut Vec<u8>, n: f64) {
    out.push(b'"');
    let a = n.abs();
    if a != 0.0 && !(1e-3..1e7).contains(&a) {
        let e = format!("{n:e}");
        let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
        out.extend_from_slice(mantissa.as_bytes());
        if !mantissa.contains('.') {
            out.extend_from_slice(b".0");
        }
        out.push(b'E');
        out.extend_from_slice(exp.as_bytes());
    } else {
        write_number(n, out);
    }
    out.push(b'"');
}

/// Writes one CSV text cell for a header or an ingest result column.
pub fn csv_text(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for &c in s.as_bytes() {
        if c == b'"' {
            out.push(b'"');
        }
        out.push(c);
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn double(n: f64) -> String {
        let mut v = Vec::new();
        csv_double(&mut v, n);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn doubles_past_javas_plain_range_use_e_notation() {
        assert_eq!(double(16_147_805_824_397.0), "\"1.6147805824397E13\"");
        assert_eq!(double(1e7), "\"1.0E7\"");
        assert_eq!(double(-25_000_000.5), "\"-2.50000005E7\"");
        assert_eq!(double(0.0001), "\"1.0E-4\"");
        assert_eq!(double(9_999_999.0), "\"9999999\"");
        assert_eq!(double(12.5), "\"12.5\"");
        assert_eq!(double(0.0), "\"0\"");
    }
}
