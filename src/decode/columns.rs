//! Column builders fed one CSV field at a time, for the Salesforce Bulk decoder.
//!
//! arrow-csv collects a batch's fields row by row and then builds each text column in a buffer
//! that starts at 1 KB and doubles (copying) as it grows: those copies alone were 5% of an
//! all-fields Account export's CPU. Here every field goes straight to its column, text columns
//! reserve what the previous batch needed, and datetimes, dates and decimals take
//! [`super::text`]'s fast paths. Empty fields are null, as in arrow-csv.

use std::ops::Range;
use std::sync::Arc;

use arrow::array::timezone::Tz;
use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int32Builder,
    Int64Builder, StringArray, TimestampMicrosecondBuilder,
};
use arrow::buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::compute::kernels::cast_utils::Parser;
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit};

use super::fields::Records;
use super::text::{date_days, decimal128, integer, text, timestamp_us};

/// Text values of one column: offsets and bytes. An empty value is null (as in arrow-csv), so
/// validity is read off the offsets once per batch rather than tracked value by value (a call
/// per value into arrow's `NullBufferBuilder`: dropping it cut a wide read's instructions by
/// 3.5%).
struct TextColumn {
    offsets: Vec<i32>,
    values: Vec<u8>,
    /// Invalid UTF-8 sequences replaced so far.
    replaced: u64,
}

impl TextColumn {
    fn new(rows: usize, bytes: usize) -> TextColumn {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        TextColumn {
            offsets,
            values: Vec::with_capacity(bytes),
            replaced: 0,
        }
    }

    /// Appends the first `len` bytes of `src` (which may run on: see
    /// [`crate::bytes::put_short`]). Inlined into [`ColumnBuilder::push_tile`]'s loop: as a
    /// call, saving and restoring registers cost a third of its instructions.
    #[inline(always)]
    fn push(&mut self, len: usize, src: &[u8]) -> Result<(), String> {
        crate::bytes::put_short(&mut self.values, len, src);
        let end = i32::try_from(self.values.len())
            .map_err(|_| "more than 2 GB of text in one batch".to_string())?;
        self.offsets.push(end);
        Ok(())
    }

    /// Appends a null: an empty value, as `push` records one.
    fn push_null(&mut self) {
        let end = *self.offsets.last().expect("offsets start with 0");
        self.offsets.push(end);
    }

    /// The column so far as a `StringArray`; starts afresh with room for as much again.
    ///
    /// The page is not checked for UTF-8 as it arrives: the whole column is checked here, once
    /// (an all-ASCII column, the usual case, in one pass; any other with simdutf8), and only a
    /// column that fails is repaired value by value, invalid sequences replaced by U+FFFD and
    /// counted.
    fn finish(&mut self, rows: usize) -> Result<StringArray, String> {
        let bytes = self.values.len();
        let done = std::mem::replace(self, TextColumn::new(rows, bytes + bytes / 8));
        self.replaced = done.replaced;
        // A value is null exactly when it is empty: `push` of nothing and `push_null` alike.
        let o = &done.offsets;
        let valid = BooleanBuffer::collect_bool(o.len() - 1, |i| o[i + 1] != o[i]);
        let nulls = Some(NullBuffer::new(valid)).filter(|n| n.null_count() > 0);
        let values = done.values;
        if values.is_ascii() || utf8_at_boundaries(&done.offsets, &values) {
            let offsets = OffsetBuffer::new(ScalarBuffer::from(done.offsets));
            // SAFETY: `push` and `push_null` append a value's bytes and then their end, so the
            // offsets start at 0, never decrease (OffsetBuffer::new checked that too) and end
            // at `values.len()`; `nulls` holds one entry per offset after the first. The bytes
            // are UTF-8 and every offset falls on a character boundary (ASCII, or just
            // checked): all `try_new` would check beyond that, value by value and with std's
            // scalar UTF-8 check, on every batch (1-2% of a wide read's CPU).
            return Ok(unsafe {
                StringArray::new_unchecked(offsets, Buffer::from_vec(values), nulls)
            });
        }
        // `try_new` would fail on what `utf8_at_boundaries` refused: repair it.
        let (offsets, values, replaced) = repair(&done.offsets, &values);
        self.replaced += replaced;
        StringArray::try_new(
            OffsetBuffer::new(ScalarBuffer::from(offsets)),
            Buffer::from_vec(values),
            nulls,
        )
        .map_err(|e| e.to_string())
    }
}

/// Whether `values` is UTF-8 and each of `offsets` starts a character (or ends the bytes):
/// exactly what `StringArray::try_new` checks of text, with SIMD (simdutf8) rather than std's
/// scalar check.
fn utf8_at_boundaries(offsets: &[i32], values: &[u8]) -> bool {
    simdutf8::basic::from_utf8(values).is_ok()
        && offsets
            .iter()
            .all(|&o| values.get(o as usize).is_none_or(|b| (b & 0xC0) != 0x80))
}

/// Text values with their invalid UTF-8 sequences replaced by U+FFFD, and how many there were.
///
/// std's `utf8_chunks` splits a value where `String::from_utf8_lossy` would put each U+FFFD
/// (one per maximal invalid sequence, one for a character cut off at the value's end), so
/// the values read as any UTF-8 reader repairs them and the count is exact.
fn repair(offsets: &[i32], values: &[u8]) -> (Vec<i32>, Vec<u8>, u64) {
    let mut out = Vec::with_capacity(values.len() + 64);
    let mut out_offsets = Vec::with_capacity(offsets.len());
    out_offsets.push(0);
    let mut replaced = 0;
    for w in offsets.windows(2) {
        for chunk in values[w[0] as usize..w[1] as usize].utf8_chunks() {
            out.extend_from_slice(chunk.valid().as_bytes());
            if !chunk.invalid().is_empty() {
                out.extend_from_slice("\u{FFFD}".as_bytes());
                replaced += 1;
            }
        }
        out_offsets.push(i32::try_from(out.len()).unwrap_or(i32::MAX));
    }
    (out_offsets, out, replaced)
}

/// An integer field's value: plain digits (nearly every one, read from the bytes), else what
/// arrow's parser reads, else Java's E-notation; `None` when it is none of these or exceeds an
/// i64. One reader for Int32 and Int64 columns (an Int32 is an i64 that fits).
fn whole_number(field: &[u8]) -> Result<Option<i64>, String> {
    if let Some(v) = integer(field) {
        return Ok(Some(v));
    }
    Ok(Int64Type::parse(text(field)?)
        .or_else(|| sci_integer(field).and_then(|v| i64::try_from(v).ok())))
}

/// A whole number written in Java's E-notation (`1.6147805824397E13`, as Bulk CSV writes
/// large numbers), exactly: None when it is not one or has a fractional part.
fn sci_integer(field: &[u8]) -> Option<i128> {
    let s = std::str::from_utf8(field).ok()?;
    let (mantissa, exp) = s.split_once(['e', 'E'])?;
    let exp: i32 = exp.strip_prefix('+').unwrap_or(exp).parse().ok()?;
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa.strip_prefix('+').unwrap_or(mantissa)),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let digits = format!("{int}{frac}");
    // The decimal point moves `exp` places right of where it is (after `int`).
    let point = int.len() as i64 + i64::from(exp);
    let (whole, rest) = if point <= 0 {
        ("", digits.as_str())
    } else if point as usize >= digits.len() {
        (digits.as_str(), "")
    } else {
        digits.split_at(point as usize)
    };
    if rest.bytes().any(|b| b != b'0') {
        return None;
    }
    let zeros = usize::try_from(point).map_or(0, |p| p.saturating_sub(digits.len()));
    if whole.len() + zeros > 38 {
        return None;
    }
    let mut v: i128 = 0;
    for b in whole.bytes().chain(std::iter::repeat_n(b'0', zeros)) {
        v = v.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
    }
    Some(if negative { -v } else { v })
}

/// Calls `push` with field `n` (its length and the bytes from its start) of each record in
/// `rows`; returns the bytes of text pushed, or the record and reason of the first refusal.
#[inline(always)]
fn each_field(
    records: Records<'_>,
    rows: Range<usize>,
    n: usize,
    mut push: impl FnMut(usize, &[u8]) -> Result<(), String>,
) -> Result<usize, (usize, String)> {
    let mut bytes = 0;
    for r in rows {
        let (len, tail) = records.field(records.fields(r).start + n);
        bytes += len;
        push(len, tail).map_err(|e| (r, e))?;
    }
    Ok(bytes)
}

/// One wire column being built.
enum Builder {
    Text(TextColumn),
    Boolean(BooleanBuilder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Decimal128(Decimal128Builder, u8, i8),
    Date32(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder, Option<Tz>),
    /// Any other type: collected as text and converted by arrow's cast.
    Cast(TextColumn),
}

/// A wire column: its type and its builder.
pub(super) struct ColumnBuilder {
    data_type: DataType,
    builder: Builder,
    /// NUL bytes removed from this column's values so far.
    removed_nul: u64,
    /// Whether values may hold NUL bytes (the page had one): only then is each value scanned.
    nul_possible: bool,
}

impl ColumnBuilder {
    /// A builder for a column of `data_type`, sized for batches of `rows`.
    pub(super) fn new(data_type: &DataType, rows: usize) -> Result<ColumnBuilder, String> {
        let builder = match data_type {
            DataType::Utf8 => Builder::Text(TextColumn::new(rows, rows * 16)),
            DataType::Boolean => Builder::Boolean(BooleanBuilder::with_capacity(rows)),
            DataType::Int32 => Builder::Int32(Int32Builder::with_capacity(rows)),
            DataType::Int64 => Builder::Int64(Int64Builder::with_capacity(rows)),
            DataType::Float64 => Builder::Float64(Float64Builder::with_capacity(rows)),
            DataType::Decimal128(p, s) => {
                Builder::Decimal128(Decimal128Builder::with_capacity(rows), *p, *s)
            }
            DataType::Date32 => Builder::Date32(Date32Builder::with_capacity(rows)),
            DataType::Timestamp(TimeUnit::Microsecond, tz) => {
                let zone = match tz {
                    Some(tz) => Some(tz.parse::<Tz>().map_err(|e| e.to_string())?),
                    None => None,
                };
                Builder::Timestamp(TimestampMicrosecondBuilder::with_capacity(rows), zone)
            }
            _ => Builder::Cast(TextColumn::new(rows, rows * 16)),
        };
        Ok(ColumnBuilder {
            data_type: data_type.clone(),
            builder,
            removed_nul: 0,
            nul_possible: false,
        })
    }

    /// Appends field `n` of each record in `rows` (a tile of [`Records`]) and returns the bytes
    /// of text taken, or the record and reason of the first value that did not fit.
    ///
    /// The column's kind is matched once for the tile, not once per value: a text column (most
    /// of an object's fields) then copies its values in one inlined loop. One call and one
    /// dispatch per value were 2.5% of a wide read's instructions.
    pub(super) fn push_tile(
        &mut self,
        records: Records<'_>,
        rows: Range<usize>,
        n: usize,
    ) -> Result<usize, (usize, String)> {
        match &mut self.builder {
            Builder::Text(t) | Builder::Cast(t) if !self.nul_possible => {
                each_field(records, rows, n, |len, tail| t.push(len, tail))
            }
            _ => each_field(records, rows, n, |len, tail| self.push(len, tail)),
        }
    }

    /// Appends one field: the first `len` bytes of `src` (its unquoted bytes; empty is null),
    /// which may run on past them (the rest of the page: text is then copied as one fixed
    /// block, see [`crate::bytes::put_short`]). NUL bytes are removed and counted
    /// ([`ColumnBuilder::removed_nul`]).
    pub(super) fn push(&mut self, len: usize, src: &[u8]) -> Result<(), String> {
        if self.nul_possible && memchr::memchr(0, &src[..len]).is_some() {
            let clean: Vec<u8> = src[..len].iter().copied().filter(|&b| b != 0).collect();
            self.removed_nul += (len - clean.len()) as u64;
            return self.push_clean(clean.len(), &clean);
        }
        self.push_clean(len, src)
    }

    /// From now on, scan each value for NUL bytes.
    pub(super) fn check_nul(&mut self) {
        self.nul_possible = true;
    }

    /// NUL bytes removed from this column's values so far.
    pub(super) fn removed_nul(&self) -> u64 {
        self.removed_nul
    }

    /// [`ColumnBuilder::push`] of a value without NUL bytes; inlined, so that in
    /// [`ColumnBuilder::push_tile`]'s loop over a typed column the call and its dispatch go.
    #[inline(always)]
    fn push_clean(&mut self, len: usize, src: &[u8]) -> Result<(), String> {
        if let Builder::Text(t) | Builder::Cast(t) = &mut self.builder {
            return t.push(len, src);
        }
        let field = &src[..len];
        if field.is_empty() {
            self.push_null();
            return Ok(());
        }
        let bad = |what: &str| {
            format!(
                "{:?} is not {what}",
                String::from_utf8_lossy(&field[..field.len().min(100)])
            )
        };
        match &mut self.builder {
            Builder::Text(_) | Builder::Cast(_) => unreachable!("handled above"),
            Builder::Boolean(b) => {
                if field.eq_ignore_ascii_case(b"true") {
                    b.append_value(true)
                } else if field.eq_ignore_ascii_case(b"false") {
                    b.append_value(false)
                } else {
                    return Err(bad("a boolean"));
                }
            }
            Builder::Int32(b) => b.append_value(
                whole_number(field)?
                    .and_then(|v| i32::try_from(v).ok())
                    .ok_or_else(|| bad("an Int32"))?,
            ),
            Builder::Int64(b) => {
                b.append_value(whole_number(field)?.ok_or_else(|| bad("an Int64"))?)
            }
            Builder::Float64(b) => {
                b.append_value(Float64Type::parse(text(field)?).ok_or_else(|| bad("a Float64"))?)
            }
            Builder::Decimal128(b, p, s) => b.append_value(decimal128(field, *p, *s)?),
            Builder::Date32(b) => b.append_value(date_days(field)?),
            Builder::Timestamp(b, zone) => b.append_value(timestamp_us(field, zone.as_ref())?),
        }
        Ok(())
    }

    fn push_null(&mut self) {
        match &mut self.builder {
            Builder::Text(t) | Builder::Cast(t) => t.push_null(),
            Builder::Boolean(b) => b.append_null(),
            Builder::Int32(b) => b.append_null(),
            Builder::Int64(b) => b.append_null(),
            Builder::Float64(b) => b.append_null(),
            Builder::Decimal128(b, _, _) => b.append_null(),
            Builder::Date32(b) => b.append_null(),
            Builder::Timestamp(b, _) => b.append_null(),
        }
    }

    /// Invalid UTF-8 sequences replaced in this column's text so far.
    pub(super) fn replaced_utf8(&self) -> u64 {
        match &self.builder {
            Builder::Text(t) | Builder::Cast(t) => t.replaced,
            _ => 0,
        }
    }

    /// The column of the rows pushed since the last call, in its data type.
    pub(super) fn finish(&mut self, rows: usize) -> Result<ArrayRef, String> {
        Ok(match &mut self.builder {
            Builder::Text(t) => Arc::new(t.finish(rows)?),
            Builder::Cast(t) => {
                let text: ArrayRef = Arc::new(t.finish(rows)?);
                arrow::compute::cast(&text, &self.data_type).map_err(|e| e.to_string())?
            }
            Builder::Boolean(b) => Arc::new(b.finish()),
            Builder::Int32(b) => Arc::new(b.finish()),
            Builder::Int64(b) => Arc::new(b.finish()),
            Builder::Float64(b) => Arc::new(b.finish()),
            Builder::Decimal128(b, p, s) => Arc::new(
                b.finish()
                    .with_precision_and_scale(*p, *s)
                    .map_err(|e| e.to_string())?,
            ),
            Builder::Date32(b) => Arc::new(b.finish()),
            Builder::Timestamp(b, _) => {
                let a = b.finish();
                match &self.data_type {
                    DataType::Timestamp(_, Some(tz)) => Arc::new(a.with_timezone(tz.clone())),
                    _ => Arc::new(a),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{TextColumn, repair, sci_integer};

    #[test]
    fn invalid_utf8_is_replaced_once_per_sequence_and_counted() {
        // "ok", "é" cut after its first byte (at the value's end), "a" + a stray continuation
        // byte + "b" + an overlong "/" + "c", an empty value, "Zürich".
        let values: &[&[u8]] = &[b"ok", b"\xC3", b"a\x80b\xC0\xAFc", b"", "Zürich".as_bytes()];
        let mut offsets = vec![0i32];
        let mut bytes = Vec::new();
        for v in values {
            bytes.extend_from_slice(v);
            offsets.push(bytes.len() as i32);
        }
        let (offsets, out, replaced) = repair(&offsets, &bytes);
        let text: Vec<&str> = offsets
            .windows(2)
            .map(|w| std::str::from_utf8(&out[w[0] as usize..w[1] as usize]).unwrap())
            .collect();
        assert_eq!(
            text,
            [
                "ok",
                "\u{FFFD}",
                "a\u{FFFD}b\u{FFFD}\u{FFFD}c",
                "",
                "Zürich"
            ]
        );
        assert_eq!(replaced, 4);
    }

    #[test]
    fn text_is_checked_as_a_column_and_split_characters_repaired() {
        let column = |values: &[&[u8]]| {
            let mut c = TextColumn::new(values.len(), 64);
            for v in values {
                c.push(v.len(), v).unwrap();
            }
            let array = c.finish(values.len()).unwrap();
            let text: Vec<Option<String>> = array.iter().map(|v| v.map(str::to_owned)).collect();
            (text, c.replaced)
        };
        // Valid non-ASCII text passes whole; an empty value is null.
        assert_eq!(
            column(&["Zürich".as_bytes(), b"", "日本".as_bytes()]),
            (vec![Some("Zürich".into()), None, Some("日本".into())], 0)
        );
        // "é" split between two values: each value is repaired, though the column's bytes are
        // valid UTF-8 as a whole (a check of the whole column alone would let them pass).
        assert_eq!(
            column(&[b"a\xC3", b"\xA9b"]),
            (vec![Some("a\u{FFFD}".into()), Some("\u{FFFD}b".into())], 2)
        );
        // A byte that is never UTF-8, inside a value.
        assert_eq!(
            column(&["Zürich".as_bytes(), b"x\xFFy"]),
            (vec![Some("Zürich".into()), Some("x\u{FFFD}y".into())], 1)
        );
    }

    #[test]
    fn e_notation_integers_are_exact() {
        assert_eq!(sci_integer(b"1.6147805824397E13"), Some(16_147_805_824_397));
        assert_eq!(sci_integer(b"-2.5E1"), Some(-25));
        assert_eq!(sci_integer(b"1E+3"), Some(1000));
        assert_eq!(sci_integer(b"1.50E1"), Some(15));
        assert_eq!(sci_integer(b"1.25E1"), None, "12.5 is not whole");
        assert_eq!(sci_integer(b"5E-1"), None);
        assert_eq!(sci_integer(b"0E-3"), Some(0));
        assert_eq!(
            sci_integer(b"12"),
            None,
            "no exponent: not this parser's job"
        );
        assert_eq!(sci_integer(b"1.2.3E4"), None);
        assert_eq!(sci_integer(b"E5"), None);
    }
}
