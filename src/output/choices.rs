//! How each leaf column of a Parquet file is written (dictionary or not, which encoding,
//! statistics, codec), judged once per file from its first batch: the writer only sees Arrow
//! types, and the data says what the types do not (an `id` and a `reference` to a handful of
//! owners are both text; timestamps may come in order or scattered).

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use parquet::basic::{Compression, Encoding};
use parquet::file::properties::{EnabledStatistics, WriterPropertiesBuilder};
use parquet::schema::types::ColumnPath;

use crate::config::ParquetEncodings;

/// Fewest non-null values of a column in the first batch for its cardinality to be judged.
pub(crate) const MIN_SAMPLE: usize = 1024;

/// Share of distinct values (percent of non-null values in the first batch) above which a
/// column is written without a dictionary.
const MAX_DISTINCT_PCT: usize = 30;

/// A leaf column written otherwise than parquet's defaults (a dictionary, PLAIN pages when
/// it falls back, statistics, the file's codec).
pub(super) struct ColumnChoice {
    /// The leaf column.
    pub path: ColumnPath,
    /// Whether it is dictionary-encoded: not when its values are mostly distinct.
    pub dictionary: bool,
    /// The encoding of a column without dictionary, when not PLAIN.
    pub encoding: Option<Encoding>,
    /// Whether min/max statistics (and null counts) are written: not for text in no order.
    pub statistics: bool,
    /// Whether its pages go through the file's codec: not when a trial on the first batch
    /// saved less than a fifth of its bytes, nor for delta-packed numbers.
    pub compress: bool,
}

/// What the judge may choose besides dictionaries and statistics.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Allowed {
    /// The file's codec is zstd, so columns it barely shrinks are tried and left uncompressed
    /// (snappy gives up on incompressible data by itself).
    pub codec_trial: bool,
    /// Which encodings the config allows.
    pub encodings: ParquetEncodings,
    /// Statistics that cannot skip a row group (text in no order) may be left out. A Delta
    /// table keeps them: its log's per-file statistics, null counts included, are read from
    /// them, and lake engines plan scans from the log.
    pub drop_statistics: bool,
}

/// `builder` with each leaf column of `first` (a file's first batch) written as
/// [`column_choices`] judges it; other columns keep the builder's settings.
pub(crate) fn with_choices(
    mut builder: WriterPropertiesBuilder,
    first: &RecordBatch,
    allowed: Allowed,
) -> WriterPropertiesBuilder {
    for column in column_choices(first, allowed) {
        if !column.statistics {
            builder =
                builder.set_column_statistics_enabled(column.path.clone(), EnabledStatistics::None);
        }
        if !column.compress {
            builder =
                builder.set_column_compression(column.path.clone(), Compression::UNCOMPRESSED);
        }
        if let Some(encoding) = column.encoding {
            builder = builder.set_column_encoding(column.path.clone(), encoding);
        }
        if !column.dictionary {
            builder = builder.set_column_dictionary_enabled(column.path, false);
        }
    }
    builder
}

/// How each leaf column is written, judged from the first batch.
///
/// **Dictionary.** Leaf columns whose first batch is mostly distinct values (Ids, names,
/// streets, phone numbers, coordinates, timestamps) are written PLAIN (+ zstd) rather than
/// dictionary-encoded. Parquet's writer tries a dictionary on every column and falls back to
/// PLAIN only once the dictionary passes 1 MB, per column chunk: on such columns every value
/// was hashed and compared for nothing (a fifth of the CPU of an all-fields Account export),
/// and the files came out no smaller. Picklists, owners, record types, booleans keep their
/// dictionaries. Judged from data rather than from the describe because the writer only sees
/// Arrow types (a `reference` to a handful of owners and an `id` are both text).
///
/// **Statistics.** They exist so that readers skip row groups, and a row group's min/max of
/// text in no particular order spans its whole range: names, streets, phone numbers, websites
/// run across the alphabet, and a picklist's few values all turn up in every row group of
/// 100k rows, so no filter on a value can skip one. Working them out compares every value
/// with the page's min and max (7% of an all-fields Account export's CPU over all text
/// columns: 3-4% for the free text, 5% more for the picklists), so text with at least two
/// distinct values in no order goes without. Kept: text that arrives in order (Ids, when the
/// org returns them by Id; sequential external ids), text with one value (min = max skips
/// every other value), columns too sparse to judge (their null counts skip row groups where
/// they are empty), numbers, dates and timestamps (cheap to compare, and they follow creation
/// order).
///
/// **Codec.** With zstd, a column it barely shrinks is stored uncompressed: see
/// [`zstd_size`].
///
/// **Delta encodings** (unless the config asks for `plain`). Text without dictionary that
/// arrives in order (Ids read by Id, sequential external ids) is written DELTA_BYTE_ARRAY:
/// each value as the length of the prefix it shares with the one before and the rest, so
/// 18-character Ids become 2-3 bytes before zstd sees them. zstd took a fifth of a 7-field
/// Account export's CPU, and the Ids were a third of the bytes it was given. Whole numbers,
/// dates, times, timestamps and decimals of up to 18 digits without dictionary are written
/// DELTA_BINARY_PACKED, uncompressed, where that is a fifth smaller than PLAIN and what PLAIN
/// pages would store (compressed where the codec is worth it) is not a fifth smaller than the
/// packed values: see [`delta_packed_size`].
/// Packing each value at the width of its difference from the one before is a few
/// instructions a value, where zstd spends some 14 ns on each 8-byte value it is given.
pub(super) fn column_choices(batch: &RecordBatch, allowed: Allowed) -> Vec<ColumnChoice> {
    let mut out = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        collect_choices(&[field.name().clone()], column, allowed, &mut out);
    }
    out
}

/// How many distinct values, counted with ahash (the hasher parquet's own dictionaries use).
/// std's SipHash took 120M instructions per file to count an all-fields Account's first
/// batch (8,192 rows, some 400k values): 5% of a 50k-row export, 1.5% of a 200k one. The
/// values are the export's own and counted once per file, so a hash keyed against chosen
/// collisions buys nothing.
fn count_distinct<T: std::hash::Hash + Eq>(values: usize, each: impl Iterator<Item = T>) -> usize {
    // Sized for every value up front: grown from empty, the set rehashed its way up to the
    // batch's size for each mostly distinct column.
    let mut seen =
        std::collections::HashSet::with_capacity_and_hasher(values, ahash::RandomState::new());
    seen.extend(each);
    seen.len()
}

fn collect_choices(
    path: &[String],
    array: &ArrayRef,
    allowed: Allowed,
    out: &mut Vec<ColumnChoice>,
) {
    if let DataType::Struct(children) = array.data_type() {
        let parent = array.as_struct();
        for (child, column) in children.iter().zip(parent.columns()) {
            let mut p = path.to_vec();
            p.push(child.name().clone());
            collect_choices(&p, column, allowed, out);
        }
        return;
    }
    // Text as string views or with 64-bit offsets (a Delta table's files as DataFusion and
    // deltalake read them back) is judged as the text it is.
    if matches!(array.data_type(), DataType::Utf8View | DataType::LargeUtf8)
        && let Ok(text) = arrow::compute::cast(array, &DataType::Utf8)
    {
        return collect_choices(path, &text, allowed, out);
    }
    // Too few values to judge: nothing counted.
    let values = array.len() - array.null_count();
    if values < MIN_SAMPLE {
        return;
    }
    let (distinct, in_order) = match array.data_type() {
        DataType::Utf8 => {
            let strings = array.as_string::<i32>();
            let distinct = count_distinct(values, strings.iter().flatten());
            (distinct, strings.iter().flatten().is_sorted())
        }
        dt => match dt.primitive_width() {
            // Fixed-width values (ints, decimals, dates, timestamps, floats) compared as bytes;
            // they keep their statistics, so count as in order.
            Some(width) if !matches!(dt, DataType::Boolean) => {
                let data = array.to_data();
                (count_distinct(values, fixed_values(&data, width)), true)
            }
            _ => return,
        },
    };
    let dictionary = distinct * 100 / values <= MAX_DISTINCT_PCT;
    let statistics = !allowed.drop_statistics || in_order || distinct < 2;
    let delta = matches!(allowed.encodings, ParquetEncodings::Auto);
    let mut encoding = None;
    // A dictionary column's pages hold small bit-packed indices; only plain pages are tried.
    let mut compress = true;
    if !dictionary && (allowed.codec_trial || delta) {
        let plain = plain_values(array);
        // What the codec would store of PLAIN pages, if it shrinks them by a fifth.
        let zstd = allowed
            .codec_trial
            .then(|| zstd_size(&plain))
            .filter(|packed| packed * 5 <= plain.len() * 4);
        compress = zstd.is_some() || !allowed.codec_trial;
        if delta && in_order && matches!(array.data_type(), DataType::Utf8) {
            encoding = Some(Encoding::DELTA_BYTE_ARRAY);
        } else if delta && let Some(width) = integer_width(array.data_type()) {
            let packed = delta_packed_size(&plain, width);
            let stored = zstd.unwrap_or(plain.len());
            if packed * 5 <= plain.len() * 4 && stored * 5 > packed * 4 {
                encoding = Some(Encoding::DELTA_BINARY_PACKED);
                compress = false;
            }
        }
    }
    if !dictionary || !statistics || !compress {
        out.push(ColumnChoice {
            path: ColumnPath::new(path.to_vec()),
            dictionary,
            encoding,
            statistics,
            compress,
        });
    }
}

/// Bytes of a column's first values tried at most (a trial then takes well under a
/// millisecond).
const TRIAL_BYTES: usize = 256 << 10;

/// A column's first non-null values (up to [`TRIAL_BYTES`]) as a plain page holds them (text
/// with its 4-byte lengths).
fn plain_values(array: &ArrayRef) -> Vec<u8> {
    if let Some(strings) = array.as_string_opt::<i32>() {
        let mut out = Vec::new();
        for s in strings.iter().flatten() {
            if out.len() >= TRIAL_BYTES {
                break;
            }
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        return out;
    }
    let width = array.data_type().primitive_width().unwrap_or(0);
    // A decimal stored as an integer: the low (little-endian) bytes of Arrow's 16.
    let stored = integer_width(array.data_type()).unwrap_or(width);
    let data = array.to_data();
    let mut out = Vec::with_capacity(TRIAL_BYTES.min(data.len() * stored));
    // A value's bytes copied at once: a byte-at-a-time collect was an eighth of the judge.
    for v in fixed_values(&data, width).take(TRIAL_BYTES / stored.max(1)) {
        out.extend_from_slice(&v[..stored]);
    }
    out
}

/// Bytes of each value of a type parquet stores as a 32- or 64-bit integer (INT32 or INT64):
/// whole numbers, dates, times, timestamps, and decimals of up to 9 and up to 18 digits;
/// `None` for any other type.
fn integer_width(data_type: &DataType) -> Option<usize> {
    match data_type {
        DataType::Int32 | DataType::Date32 | DataType::Time32(_) => Some(4),
        DataType::Int64 | DataType::Timestamp(..) | DataType::Time64(_) => Some(8),
        DataType::Decimal128(p, _) if *p <= 9 => Some(4),
        DataType::Decimal128(p, _) if *p <= 18 => Some(8),
        _ => None,
    }
}

/// The non-null values of a fixed-width column, `width` bytes each.
fn fixed_values(data: &arrow::array::ArrayData, width: usize) -> impl Iterator<Item = &[u8]> {
    let values = &data.buffers()[0].as_slice()[data.offset() * width..];
    (0..data.len())
        .filter(|i| data.is_valid(*i))
        .map(move |i| &values[i * width..(i + 1) * width])
}

/// The size of `sample` compressed by zstd (level 1, the file codec's); pages of a column it
/// shrinks by less than a fifth are stored uncompressed.
///
/// Coordinates and other high-entropy numbers shrink by 5-13% (an all-fields Account's eight
/// coordinate columns: 59 MB of 404 MB of pages per million rows), yet compressing them took
/// as long per byte as text that shrinks five times: stored as they are, they cost a few
/// percent more file for several percent less CPU. Judged from the first batch's values, as
/// a page of them would be compressed.
fn zstd_size(sample: &[u8]) -> usize {
    zstd::bulk::compress(sample, 1).map_or(0, |packed| packed.len())
}

/// Miniblocks per block of DELTA_BINARY_PACKED: a block of deltas shares one minimum, and
/// each of its miniblocks one bit width. parquet's writer makes a miniblock 32 deltas of a
/// 32-bit column and 64 of a 64-bit one.
const MINIBLOCKS: usize = 4;

/// The bytes DELTA_BINARY_PACKED would take for `plain`, a column's first values as PLAIN
/// holds them ([`plain_values`]), integers of `width` bytes ([`integer_width`]). Laid out as
/// parquet's writer does: per block of four miniblocks, its minimum delta (a zigzag varint) and
/// four widths, then each miniblock's deltas above that minimum, packed at the width its
/// largest one needs (a partial last miniblock padded).
fn delta_packed_size(plain: &[u8], width: usize) -> usize {
    // Each value sign-extended from its `width` little-endian bytes.
    let mut values = plain.chunks_exact(width).map(|v| match width {
        4 => i64::from(i32::from_le_bytes(v.try_into().expect("four bytes"))),
        _ => i64::from_le_bytes(v.try_into().expect("eight bytes")),
    });
    let Some(mut previous) = values.next() else {
        return 0;
    };
    let miniblock = 8 * width;
    let mut deltas = Vec::with_capacity(MINIBLOCKS * miniblock);
    let mut bytes = 0;
    for v in values {
        deltas.push(v.wrapping_sub(previous));
        previous = v;
        if deltas.len() == MINIBLOCKS * miniblock {
            bytes += packed_block_size(&deltas, miniblock);
            deltas.clear();
        }
    }
    if !deltas.is_empty() {
        bytes += packed_block_size(&deltas, miniblock);
    }
    bytes
}

/// Bytes of one block of deltas in miniblocks of `miniblock`: see [`delta_packed_size`].
fn packed_block_size(deltas: &[i64], miniblock: usize) -> usize {
    let min = deltas.iter().copied().min().unwrap_or(0);
    let zigzag = ((min << 1) ^ (min >> 63)) as u64;
    let varint = (64 - zigzag.leading_zeros() as usize).div_ceil(7).max(1);
    let packed: usize = deltas
        .chunks(miniblock)
        .map(|m| {
            let top = m
                .iter()
                .map(|d| d.wrapping_sub(min) as u64)
                .max()
                .unwrap_or(0);
            miniblock * (64 - top.leading_zeros() as usize) / 8
        })
        .sum();
    varint + MINIBLOCKS + packed
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int32Array, Int64Array};
    use arrow::datatypes::{Field, Schema};
    use parquet::arrow::ArrowWriter;
    use parquet::basic::Compression;
    use parquet::file::properties::WriterProperties;

    use super::*;

    /// The bytes parquet's writer gives a DELTA_BINARY_PACKED column chunk of `array` (one
    /// page, uncompressed), less its page header and definition levels: what
    /// [`delta_packed_size`] estimates, plus the encoding's own few header bytes.
    fn written_size(array: ArrayRef) -> usize {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "v",
            array.data_type().clone(),
            false,
        )]));
        let props = WriterProperties::builder()
            .set_dictionary_enabled(false)
            .set_encoding(Encoding::DELTA_BINARY_PACKED)
            .set_compression(Compression::UNCOMPRESSED)
            .set_statistics_enabled(parquet::file::properties::EnabledStatistics::None)
            .build();
        let batch = RecordBatch::try_new(schema.clone(), vec![array]).unwrap();
        let mut file = Vec::new();
        let mut w = ArrowWriter::try_new(&mut file, schema, Some(props)).unwrap();
        w.write(&batch).unwrap();
        let meta = w.close().unwrap();
        let chunk = meta.row_group(0).column(0);
        assert!(
            chunk
                .encodings()
                .any(|e| e == Encoding::DELTA_BINARY_PACKED)
        );
        chunk.uncompressed_size() as usize
    }

    #[test]
    fn delta_packed_size_is_what_parquet_writes_less_its_headers() {
        let mut random = crate::output::tests::random_below(5);
        let columns: Vec<ArrayRef> = vec![
            // Evenly spaced, in order: deltas of one width.
            Arc::new(Int64Array::from_iter_values((0..5000).map(|i| 7 * i))),
            // Scattered over 2^40, a partial last block.
            Arc::new(Int64Array::from_iter_values(
                (0..4321).map(|_| random(1 << 40) as i64),
            )),
            // 32-bit, with negative deltas.
            Arc::new(Int32Array::from_iter_values(
                (0..3000).map(|_| random(100_000) as i32 - 50_000),
            )),
        ];
        for column in columns {
            let width = integer_width(column.data_type()).unwrap();
            let estimate = delta_packed_size(&plain_values(&column), width);
            let written = written_size(column.clone());
            // The page header and the encoding's header (block size, miniblocks, count, first
            // value) are some 30 bytes; the blocks are exactly as estimated.
            assert!(
                written > estimate && written - estimate < 40,
                "{:?}: estimated {estimate}, written {written}",
                column.data_type()
            );
        }
    }

    #[test]
    fn only_integer_stored_types_are_delta_packed() {
        assert_eq!(integer_width(&arrow::datatypes::DataType::Float64), None);
        assert_eq!(integer_width(&DataType::Decimal128(38, 0)), None);
        assert_eq!(integer_width(&DataType::Decimal128(18, 2)), Some(8));
        let narrow: ArrayRef = Arc::new(
            arrow::array::Decimal128Array::from(vec![1, 2, 4])
                .with_precision_and_scale(9, 2)
                .unwrap(),
        );
        assert_eq!(integer_width(narrow.data_type()), Some(4));
        // Two deltas (1, 2): minimum 1 (one varint byte), four widths, one miniblock of 32
        // deltas at one bit.
        assert_eq!(delta_packed_size(&plain_values(&narrow), 4), 1 + 4 + 4);
    }

    #[test]
    fn text_read_back_as_string_views_is_judged_as_text() {
        use arrow::array::{StringArray, StringViewArray};
        let names: Vec<String> = (0..2000)
            .map(|i| format!("Acme {}", (i * 7919) % 2000))
            .collect();
        let picks = (0..2000).map(|i| ["Customer", "Partner"][i % 2]);
        let judged = |names: ArrayRef, picks: ArrayRef| {
            let schema = Arc::new(Schema::new(vec![
                Field::new("Name", names.data_type().clone(), false),
                Field::new("Type", picks.data_type().clone(), false),
            ]));
            let batch = RecordBatch::try_new(schema, vec![names, picks]).unwrap();
            let allowed = Allowed {
                codec_trial: true,
                encodings: ParquetEncodings::Plain,
                drop_statistics: true,
            };
            column_choices(&batch, allowed)
                .into_iter()
                .map(|c| (c.path.string(), c.dictionary, c.statistics))
                .collect::<Vec<_>>()
        };
        let views = judged(
            Arc::new(StringViewArray::from_iter_values(&names)),
            Arc::new(StringViewArray::from_iter_values(picks.clone())),
        );
        let text = judged(
            Arc::new(StringArray::from_iter_values(&names)),
            Arc::new(StringArray::from_iter_values(picks)),
        );
        assert_eq!(
            views,
            [
                ("Name".to_string(), false, false),
                ("Type".to_string(), true, false)
            ]
        );
        assert_eq!(views, text);
    }
}
