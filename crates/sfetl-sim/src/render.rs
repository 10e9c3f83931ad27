//! Rendering stored values on the wire: REST JSON records (with `attributes`, nested parent
//! relationships and compound address / location objects) and Bulk CSV cells.

use super::describe::FType;
use super::soql::{Path, target};
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
/// grouped into one nested object per relationship (or `null`), recursively for every hop
/// (`"Account":{..., "Owner":{...}}`), as Salesforce nests them.
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
    let ctx = Ctx {
        store,
        version,
        blobs,
    };
    let fields: Vec<&Path> = fields.iter().collect();
    json_fields(out, &ctx, obj, row, &fields, 0);
    out.push(b'}');
}

/// What every level of a REST record is written with.
struct Ctx<'a> {
    store: &'a Store,
    version: &'a str,
    blobs: Blobs,
}

/// Writes the fields of one level of a record: `depth` hops of every path in `paths` already
/// followed to (`obj`, `row`); a path ending here is a field, the others are grouped by their
/// next relationship in order of first appearance.
fn json_fields(
    out: &mut Vec<u8>,
    ctx: &Ctx<'_>,
    obj: usize,
    row: usize,
    paths: &[&Path],
    depth: usize,
) {
    let mut done: Vec<&str> = Vec::new();
    for p in paths {
        let Some(via) = p.hops.get(depth) else {
            json_field(out, ctx, obj, row, p);
            continue;
        };
        if done.contains(&via.rel_name.as_str()) {
            continue;
        }
        done.push(&via.rel_name);
        out.push(b',');
        json_str(out, &via.rel_name);
        out.push(b':');
        let Some((t, trow)) = target(ctx.store, obj, row, via) else {
            out.extend_from_slice(b"null");
            continue;
        };
        let tname = if via.polymorphic {
            "Name"
        } else {
            ctx.store.catalog.objects[t].name.as_str()
        };
        attributes(out, ctx.store, tname, t, trow, ctx.version);
        let group: Vec<&Path> = paths
            .iter()
            .filter(|q| {
                q.hops
                    .get(depth)
                    .is_some_and(|v| v.rel_name == via.rel_name)
            })
            .copied()
            .collect();
        json_fields(out, ctx, t, trow, &group, depth + 1);
        out.push(b'}');
    }
}

/// Writes one field of the object a path reached (compound fields as objects, base64 fields
/// as the URL serving their content unless the caller asked for the stored text).
fn json_field(out: &mut Vec<u8>, ctx: &Ctx<'_>, obj: usize, row: usize, p: &Path) {
    let store = ctx.store;
    out.push(b',');
    json_str(out, &p.name);
    out.push(b':');
    let Some(f) = p.field_in(store, obj) else {
        out.extend_from_slice(b"null");
        return;
    };
    if matches!(p.ftype, FType::Address | FType::Location) {
        json_compound(out, store, obj, row, f);
        return;
    }
    let v = store.get(obj, row, f);
    if p.ftype == FType::Base64 && ctx.blobs == Blobs::Urls && !v.is_null() {
        out.extend_from_slice(b"\"/services/data/");
        out.extend_from_slice(ctx.version.as_bytes());
        out.extend_from_slice(b"/sobjects/");
        out.extend_from_slice(store.catalog.objects[obj].name.as_bytes());
        out.push(b'/');
        write_id(&store.catalog.objects[obj].prefix, row, out);
        out.push(b'/');
        out.extend_from_slice(p.name.as_bytes());
        out.push(b'"');
    } else {
        json_val(out, store, &v);
    }
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
