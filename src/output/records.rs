//! RECORD lines rendered straight from Arrow into one buffer: the line's fixed prefix and each
//! field's `"Name":` are escaped once per schema, and each value is written by [`super::json`]
//! without intermediate strings, so nothing is allocated per value or per row.
//!
//! The text is byte for byte what arrow-json's encoders (explicit nulls, binary as base64)
//! write; types Salesforce data never has fall back to those encoders themselves.

use std::ops::Range;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, GenericStringArray, StringViewArray,
    StructArray,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Date32Type, Decimal128Type, FieldRef, Fields, Float32Type,
    Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, SchemaRef, Time64MicrosecondType,
    TimeUnit, TimestampMicrosecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow::error::ArrowError;
use arrow::json::writer::{Encoder, EncoderFactory, EncoderOptions, NullableEncoder, make_encoder};
use arrow::record_batch::RecordBatch;
use arrow::util::bit_chunk_iterator::BitChunks;
use arrow::util::display::{ArrayFormatter, FormatOptions};

use super::json;
use crate::bytes::{SHORT, put_short};

/// Renders batches of one stream as Airbyte RECORD lines.
pub struct RecordsRenderer {
    /// `{"type":"RECORD","record":{"stream":"…","data":{`
    prefix: Vec<u8>,
    /// The field-name fragments of the last schema seen.
    names: Option<(SchemaRef, Names)>,
    /// arrow-json's options, for the types this renderer leaves to it.
    options: EncoderOptions,
    /// Line buffers for wide rows (see [`Tiles`]).
    tiles: Tiles,
}

/// Rows rendered together, column by column: 32 to 64 measured alike (5-7% less CPU than one
/// row at a time on an all-fields Account); 32 wide lines still fit in the CPU's first caches.
const TILE_ROWS: usize = 32;

/// Top-level columns from which rows are rendered in tiles: 7 columns measured 4% slower in
/// tiles than row by row, 45 columns 6% faster.
const TILE_MIN_COLUMNS: usize = 12;

/// A tile's line buffer larger than this after rendering (a row with long text areas) is
/// freed rather than kept for the next batch.
const TILE_LINE_KEPT: usize = 64 * 1024;

/// The pre-escaped `"name":` of each field (`,"name":` after the first), and of each child of
/// a struct field, each followed by [`SHORT`] zero bytes so that [`put_short`] copies a short
/// name as one fixed block.
#[derive(Debug, Default)]
struct Names(Vec<(Vec<u8>, Names)>);

impl Names {
    fn of(fields: &Fields) -> Names {
        let names = fields.iter().enumerate().map(|(i, f)| {
            let mut name = Vec::with_capacity(f.name().len() + 4);
            if i > 0 {
                name.push(b',');
            }
            json::write_str(&mut name, f.name().as_bytes());
            name.push(b':');
            name.extend_from_slice(&[0; SHORT]);
            let children = match f.data_type() {
                DataType::Struct(children) => Names::of(children),
                _ => Names::default(),
            };
            (name, children)
        });
        Names(names.collect())
    }
}

impl RecordsRenderer {
    /// A renderer for `stream`.
    pub fn new(stream: &str) -> RecordsRenderer {
        let mut prefix = br#"{"type":"RECORD","record":{"stream":"#.to_vec();
        json::write_str(&mut prefix, stream.as_bytes());
        prefix.extend_from_slice(br#","data":{"#);
        let options = EncoderOptions::default()
            .with_explicit_nulls(true)
            .with_encoder_factory(Arc::new(Base64Binary));
        RecordsRenderer {
            prefix,
            names: None,
            options,
            tiles: Tiles::default(),
        }
    }

    /// Appends one line per row of `batch` to `out`.
    pub fn render(
        &mut self,
        batch: &RecordBatch,
        emitted_at: i64,
        out: &mut Vec<u8>,
    ) -> Result<(), ArrowError> {
        self.render_from(batch, 0, emitted_at, out, usize::MAX)
            .map(|_| ())
    }

    /// Appends the lines of `batch`'s rows from `start` on to `out`, stopping after the row that
    /// takes `out` to `limit` bytes or more; returns the next row to render (`num_rows` when
    /// done), so a large batch goes out in bounded pieces.
    pub fn render_from(
        &mut self,
        batch: &RecordBatch,
        start: usize,
        emitted_at: i64,
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<usize, ArrowError> {
        let schema = batch.schema();
        let fresh = match &self.names {
            Some((known, _)) => !Arc::ptr_eq(known, &schema) && known != &schema,
            None => true,
        };
        if fresh {
            let names = Names::of(schema.fields());
            self.names = Some((schema, names));
        }
        let Some((schema, names)) = &self.names else {
            unreachable!("names were set above")
        };
        let fields = schema.fields().iter().zip(batch.columns()).zip(&names.0);
        let mut columns = fields
            .map(|((f, a), (name, children))| Column::new(f, a, name, children, &self.options))
            .collect::<Result<Vec<_>, _>>()?;
        let mut suffix = Vec::with_capacity(40);
        suffix.extend_from_slice(br#"},"emitted_at":"#);
        json::write_number(&mut suffix, emitted_at);
        suffix.extend_from_slice(b"}}\n");
        let frame = Frame {
            prefix: &self.prefix,
            suffix: &suffix,
        };
        let rows = start..batch.num_rows();
        if columns.len() < TILE_MIN_COLUMNS {
            // Few columns: their values stay in cache and their types predicted row after
            // row; tiles would only add a copy of every line.
            return Ok(frame.rows_one_by_one(&mut columns, rows, out, limit));
        }
        Ok(self.tiles.render(&frame, &mut columns, rows, out, limit))
    }
}

/// The bytes around each line's fields.
struct Frame<'a> {
    /// `{"type":"RECORD","record":{"stream":"…","data":{`
    prefix: &'a [u8],
    /// `},"emitted_at":…}}` and the newline.
    suffix: &'a [u8],
}

impl Frame<'_> {
    /// Writes `rows` one line after the other into `out`, stopping after the line that takes
    /// it to `limit` bytes; returns the next row.
    fn rows_one_by_one(
        &self,
        columns: &mut [Column<'_>],
        rows: Range<usize>,
        out: &mut Vec<u8>,
        limit: usize,
    ) -> usize {
        let mut row = rows.start;
        while row < rows.end && out.len() < limit {
            out.extend_from_slice(self.prefix);
            for c in columns.iter_mut() {
                c.write(row, out);
            }
            out.extend_from_slice(self.suffix);
            row += 1;
        }
        row
    }
}

/// Line buffers for rows rendered a tile at a time: column by column into one buffer per
/// row, then copied out in order. A column's values are then read in one run (its type
/// matched once per tile, its values and validity loaded in sequence) rather than 45 columns
/// interleaved per row, and the rows stay in cache until copied.
#[derive(Default)]
struct Tiles {
    /// One line buffer per row of a tile.
    lines: Vec<Vec<u8>>,
    /// The average line length of the last tile (0 before the first).
    line_bytes: usize,
}

impl Tiles {
    /// As [`Frame::rows_one_by_one`], a tile at a time.
    fn render(
        &mut self,
        frame: &Frame<'_>,
        columns: &mut [Column<'_>],
        rows: Range<usize>,
        out: &mut Vec<u8>,
        limit: usize,
    ) -> usize {
        let tile = &mut self.lines;
        tile.resize_with(TILE_ROWS, Vec::new);
        let mut row = rows.start;
        while row < rows.end && out.len() < limit {
            // As many rows as likely fit under `limit` (one until a line's size is known), so
            // that a bounded piece renders few rows it then leaves to the next call.
            let room = match self.line_bytes {
                0 => 1,
                line => (limit - out.len()).div_ceil(line),
            };
            let n = TILE_ROWS.min(rows.end - row).min(room);
            for b in &mut tile[..n] {
                b.clear();
                b.extend_from_slice(frame.prefix);
            }
            for c in columns.iter_mut() {
                c.write_rows(row, &mut tile[..n]);
            }
            let mut bytes = 0;
            for b in &mut tile[..n] {
                b.extend_from_slice(frame.suffix);
                bytes += b.len();
            }
            self.line_bytes = bytes.div_ceil(n);
            for b in &tile[..n] {
                out.extend_from_slice(b);
                row += 1;
                if out.len() >= limit {
                    break;
                }
            }
        }
        // A tile that held a very long value gives its memory back.
        for b in tile.iter_mut().filter(|b| b.capacity() > TILE_LINE_KEPT) {
            *b = Vec::new();
        }
        row
    }
}

/// One column of a batch, ready to write any of its rows as `"name":value`.
struct Column<'a> {
    /// `"name":`, padded (see [`Names`]).
    name: &'a [u8],
    nulls: Option<&'a NullBuffer>,
    value: Value<'a>,
}

/// How a column's values are written.
enum Value<'a> {
    Utf8(&'a GenericStringArray<i32>),
    LargeUtf8(&'a GenericStringArray<i64>),
    Utf8View(&'a StringViewArray),
    Boolean(&'a BooleanArray),
    Int8(&'a [i8]),
    Int16(&'a [i16]),
    Int32(&'a [i32]),
    Int64(&'a [i64]),
    UInt8(&'a [u8]),
    UInt16(&'a [u16]),
    UInt32(&'a [u32]),
    UInt64(&'a [u64]),
    Float32(&'a [f32]),
    Float64(&'a [f64]),
    /// Values, precision, scale; the array for arrow's formatter on values out of range.
    Decimal128(&'a [i128], u8, i8, &'a dyn Array),
    Date32(&'a [i32], &'a dyn Array),
    Time64Us(&'a [i64], &'a dyn Array),
    TimestampUsUtc(&'a [i64], &'a dyn Array),
    Binary(&'a BinaryArray),
    Struct(Vec<Column<'a>>),
    /// Anything else, by arrow-json's own encoder (which also knows its nulls).
    Other(NullableEncoder<'a>),
}

/// Writes a `"name":` of [`Names`] (padded for [`put_short`]).
#[inline(always)]
fn put_name(out: &mut Vec<u8>, name: &[u8]) {
    put_short(out, name.len() - SHORT, name);
}

fn values<T: ArrowPrimitiveType>(array: &dyn Array) -> &[T::Native] {
    array.as_primitive::<T>().values()
}

impl<'a> Column<'a> {
    fn new(
        field: &'a FieldRef,
        array: &'a ArrayRef,
        name: &'a [u8],
        children: &'a Names,
        options: &'a EncoderOptions,
    ) -> Result<Column<'a>, ArrowError> {
        let a = array.as_ref();
        let value = match a.data_type() {
            DataType::Utf8 => Value::Utf8(a.as_string()),
            DataType::LargeUtf8 => Value::LargeUtf8(a.as_string()),
            DataType::Utf8View => Value::Utf8View(a.as_string_view()),
            DataType::Boolean => Value::Boolean(a.as_boolean()),
            DataType::Int8 => Value::Int8(values::<Int8Type>(a)),
            DataType::Int16 => Value::Int16(values::<Int16Type>(a)),
            DataType::Int32 => Value::Int32(values::<Int32Type>(a)),
            DataType::Int64 => Value::Int64(values::<Int64Type>(a)),
            DataType::UInt8 => Value::UInt8(values::<UInt8Type>(a)),
            DataType::UInt16 => Value::UInt16(values::<UInt16Type>(a)),
            DataType::UInt32 => Value::UInt32(values::<UInt32Type>(a)),
            DataType::UInt64 => Value::UInt64(values::<UInt64Type>(a)),
            DataType::Float32 => Value::Float32(values::<Float32Type>(a)),
            DataType::Float64 => Value::Float64(values::<Float64Type>(a)),
            DataType::Decimal128(p, s) => Value::Decimal128(values::<Decimal128Type>(a), *p, *s, a),
            DataType::Date32 => Value::Date32(values::<Date32Type>(a), a),
            DataType::Time64(TimeUnit::Microsecond) => {
                Value::Time64Us(values::<Time64MicrosecondType>(a), a)
            }
            DataType::Timestamp(TimeUnit::Microsecond, Some(tz)) if tz.as_ref() == "UTC" => {
                Value::TimestampUsUtc(values::<TimestampMicrosecondType>(a), a)
            }
            DataType::Binary => Value::Binary(a.as_binary()),
            DataType::Struct(fields) => {
                Value::Struct(struct_columns(fields, a.as_struct(), children, options)?)
            }
            _ => {
                return Ok(Column {
                    name,
                    nulls: None,
                    value: Value::Other(make_encoder(field, a, options)?),
                });
            }
        };
        Ok(Column {
            name,
            nulls: a.nulls(),
            value,
        })
    }

    /// Writes rows `first..first + lines.len()`, each into its line, the column's type matched
    /// once for them all (one call and one dispatch per value were 2.7% of a wide read's
    /// instructions). The text of a text column's rows is searched for bytes JSON escapes once
    /// for them all: in most columns (Ids, names, picklists, codes) there are none, and each
    /// value is then copied as it is, with no search of its own. A struct with no null in the
    /// tile writes its children a column at a time too.
    fn write_rows(&mut self, first: usize, lines: &mut [Vec<u8>]) {
        match self.value {
            Value::Utf8(a) => {
                let offsets = &a.value_offsets()[first..=first + lines.len()];
                let data = a.value_data();
                let (start, end) = (offsets[0] as usize, offsets[lines.len()] as usize);
                let clean = !json::any_escape(&data[start..end]);
                let value = |line: &mut Vec<u8>, row: usize| {
                    let (start, end) = (offsets[row - first] as usize, offsets[row - first + 1]);
                    let len = end as usize - start;
                    if clean {
                        json::write_clean_str_from(line, len, &data[start..]);
                    } else {
                        json::write_str_from(line, len, &data[start..]);
                    }
                };
                self.each_row(first, lines, value);
            }
            Value::Boolean(a) => self.each_row(first, lines, |line, row| {
                line.extend_from_slice(if a.value(row) { b"true" } else { b"false" })
            }),
            Value::Int32(v) => {
                self.each_row(first, lines, |line, row| json::write_number(line, v[row]))
            }
            Value::Int64(v) => {
                self.each_row(first, lines, |line, row| json::write_number(line, v[row]))
            }
            Value::Float64(v) => {
                self.each_row(first, lines, |line, row| json::write_f64(line, v[row]))
            }
            Value::Decimal128(v, p, s, a) => self.each_row(first, lines, |line, row| {
                if !json::write_decimal(line, v[row], p, s) {
                    arrow_format(line, a, row, false);
                }
            }),
            Value::Date32(v, a) => self.each_row(first, lines, |line, row| {
                if !json::write_date32(line, v[row]) {
                    arrow_format(line, a, row, true);
                }
            }),
            Value::TimestampUsUtc(v, a) => self.each_row(first, lines, |line, row| {
                if !json::write_timestamp_us_utc(line, v[row]) {
                    arrow_format(line, a, row, true);
                }
            }),
            Value::Struct(ref mut children)
                if valid_bits(self.nulls, first, lines.len()).count_ones() as usize
                    == lines.len() =>
            {
                for line in lines.iter_mut() {
                    put_name(line, self.name);
                    line.push(b'{');
                }
                for c in children.iter_mut() {
                    c.write_rows(first, lines);
                }
                for line in lines.iter_mut() {
                    line.push(b'}');
                }
            }
            _ => {
                for (row, line) in (first..).zip(lines) {
                    self.write(row, line);
                }
            }
        }
    }

    /// Writes each row's `"name":` and, unless it is null, its value by `value`.
    #[inline(always)]
    fn each_row(
        &self,
        first: usize,
        lines: &mut [Vec<u8>],
        mut value: impl FnMut(&mut Vec<u8>, usize),
    ) {
        let valid = valid_bits(self.nulls, first, lines.len());
        for (i, line) in lines.iter_mut().enumerate() {
            if self.name_or_null(valid >> i & 1 != 0, line) {
                value(line, first + i);
            }
        }
    }

    /// Writes `"name":`, and `null` unless the value is `valid`; true when the value is still
    /// to write.
    #[inline(always)]
    fn name_or_null(&self, valid: bool, out: &mut Vec<u8>) -> bool {
        put_name(out, self.name);
        if !valid {
            out.extend_from_slice(b"null");
        }
        valid
    }

    /// Writes `"name":value` (or `"name":null`) of `row`.
    fn write(&mut self, row: usize, out: &mut Vec<u8>) {
        if !self.name_or_null(self.nulls.is_none_or(|n| n.is_valid(row)), out) {
            return;
        }
        match &mut self.value {
            Value::Utf8(a) => {
                let (start, end) = (a.value_offsets()[row], a.value_offsets()[row + 1]);
                let (start, end) = (start as usize, end as usize);
                json::write_str_from(out, end - start, &a.value_data()[start..]);
            }
            Value::LargeUtf8(a) => json::write_str(out, a.value(row).as_bytes()),
            Value::Utf8View(a) => json::write_str(out, a.value(row).as_bytes()),
            Value::Boolean(a) => {
                out.extend_from_slice(if a.value(row) { b"true" } else { b"false" })
            }
            Value::Int8(v) => json::write_number(out, v[row]),
            Value::Int16(v) => json::write_number(out, v[row]),
            Value::Int32(v) => json::write_number(out, v[row]),
            Value::Int64(v) => json::write_number(out, v[row]),
            Value::UInt8(v) => json::write_number(out, v[row]),
            Value::UInt16(v) => json::write_number(out, v[row]),
            Value::UInt32(v) => json::write_number(out, v[row]),
            Value::UInt64(v) => json::write_number(out, v[row]),
            Value::Float32(v) => json::write_f32(out, v[row]),
            Value::Float64(v) => json::write_f64(out, v[row]),
            Value::Decimal128(v, p, s, a) => {
                if !json::write_decimal(out, v[row], *p, *s) {
                    arrow_format(out, *a, row, false);
                }
            }
            Value::Date32(v, a) => {
                if !json::write_date32(out, v[row]) {
                    arrow_format(out, *a, row, true);
                }
            }
            Value::Time64Us(v, a) => {
                if !json::write_time64_us(out, v[row]) {
                    arrow_format(out, *a, row, true);
                }
            }
            Value::TimestampUsUtc(v, a) => {
                if !json::write_timestamp_us_utc(out, v[row]) {
                    arrow_format(out, *a, row, true);
                }
            }
            Value::Binary(a) => json::write_base64(out, a.value(row)),
            Value::Struct(children) => {
                out.push(b'{');
                for c in children.iter_mut() {
                    c.write(row, out);
                }
                out.push(b'}');
            }
            Value::Other(e) => {
                if e.is_null(row) {
                    out.extend_from_slice(b"null");
                } else {
                    e.encode(row, out);
                }
            }
        }
    }
}

/// The validity of rows `first..first + n` (`n` ≤ [`TILE_ROWS`]) as the low `n` bits, bit `i`
/// for row `first + i`: read once per column and tile, so that each value tests one bit
/// rather than going through `NullBuffer::is_null` (its bounds check, offset and byte load:
/// 1.1% of a wide read's instructions). One eight-byte load where the buffer has eight bytes
/// left; arrow's [`BitChunks`] near its end (it reads byte by byte: 0.6% more instructions in
/// a wide read when used for every tile).
#[inline(always)]
fn valid_bits(nulls: Option<&NullBuffer>, first: usize, n: usize) -> u64 {
    debug_assert!(n <= TILE_ROWS);
    let low = (1 << n) - 1;
    let Some(nulls) = nulls else {
        return low;
    };
    let bit = nulls.offset() + first;
    match nulls.validity()[bit / 8..].first_chunk::<8>() {
        Some(word) => u64::from_le_bytes(*word) >> (bit % 8) & low,
        None => BitChunks::new(nulls.validity(), bit, n).remainder_bits(),
    }
}

/// The columns of a struct's children.
fn struct_columns<'a>(
    fields: &'a Fields,
    array: &'a StructArray,
    names: &'a Names,
    options: &'a EncoderOptions,
) -> Result<Vec<Column<'a>>, ArrowError> {
    fields
        .iter()
        .zip(array.columns())
        .zip(&names.0)
        .map(|((f, a), (name, children))| Column::new(f, a, name, children, options))
        .collect()
}

/// A value the fast writers leave alone, as arrow-json writes it: arrow's display formatter,
/// quoted for temporal types, bare for decimals. Only values Salesforce cannot hold get here.
fn arrow_format(out: &mut Vec<u8>, array: &dyn Array, row: usize, quoted: bool) {
    use std::io::Write;
    let options = FormatOptions::new().with_display_error(true);
    let Ok(formatter) = ArrayFormatter::try_new(array, &options) else {
        out.extend_from_slice(b"null");
        return;
    };
    if quoted {
        out.push(b'"');
    }
    let _ = write!(out, "{}", formatter.value(row));
    if quoted {
        out.push(b'"');
    }
}

/// base64 fields travel as base64 text, as Salesforce and Airbyte's source send them (arrow-json
/// would write hex). Used for binary values inside types left to arrow-json (lists, maps).
#[derive(Debug)]
struct Base64Binary;

struct Base64Encoder<'a>(&'a BinaryArray);

impl Encoder for Base64Encoder<'_> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        json::write_base64(out, self.0.value(idx));
    }
}

impl EncoderFactory for Base64Binary {
    fn make_default_encoder<'a>(
        &self,
        _field: &'a FieldRef,
        array: &'a dyn Array,
        _options: &'a EncoderOptions,
    ) -> Result<Option<NullableEncoder<'a>>, ArrowError> {
        if array.data_type() != &DataType::Binary {
            return Ok(None);
        }
        let binary = array.as_binary::<i32>();
        Ok(Some(NullableEncoder::new(
            Box::new(Base64Encoder(binary)),
            binary.nulls().cloned(),
        )))
    }
}
