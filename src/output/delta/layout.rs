//! How the data files of a table are written: the Parquet settings of each column, judged
//! from rows like those the files will hold ([`crate::output::choices`], as an export's files
//! are), or, when a write brings too few rows to judge (a checkpoint of a few changed rows,
//! whose MERGE still rewrites whole files), taken from the table's own largest file, so that
//! rewritten files keep the table's layout.

use arrow::record_batch::RecordBatch;
use deltalake::DeltaTable;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression as PqCompression;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::properties::{WriterProperties, WriterPropertiesBuilder};

use super::DeltaError;
use super::table::TableTarget;
use crate::config::{Compression, ParquetEncodings};
use crate::output::choices::{Allowed, MIN_SAMPLE, with_choices};
use crate::output::parquet::{WRITE_BATCH, codec};
use crate::output::parquet_footer;

/// Rows a MERGE's source or a table's file is sampled by for [`writer_properties`] (a read's
/// batch, as the first batch of a full refresh is).
pub(super) const SAMPLE_ROWS: usize = 8192;

/// Largest file read whole for a sample: sfetl closes its files at
/// [`super::commit::TARGET_FILE_BYTES`]; a larger one (another writer's) is not judged.
const SAMPLE_FILE_BYTES: u64 = 64 << 20;

/// The settings every data file of a table starts from: the export's codec, row groups of at
/// most 128k rows, statistics on every column (file skipping uses them).
fn base(compression: Compression) -> WriterPropertiesBuilder {
    WriterProperties::builder()
        .set_compression(codec(compression))
        .set_max_row_group_row_count(Some(128 * 1024))
        .set_write_batch_size(WRITE_BATCH)
        .set_created_by(format!("sfetl {}", env!("CARGO_PKG_VERSION")))
}

/// Parquet settings of data files holding rows like `sample` (a full refresh's first batch, a
/// MERGE's first source rows, a compacted table's largest file): each column written as an
/// export's are, no dictionary for mostly distinct values (a dictionary tried on every column
/// was a third of an all-fields table's CPU), no codec where a trial on the sample saves less
/// than a fifth. Without a sample, parquet's defaults. Pages stay PLAIN or dictionary, which
/// every Delta reader reads, and every column keeps its statistics (the log's per-file
/// statistics, null counts included, are read from them).
pub(super) fn writer_properties(
    compression: Compression,
    sample: Option<&RecordBatch>,
) -> WriterProperties {
    let builder = base(compression);
    let Some(sample) = sample else {
        return builder.build();
    };
    let allowed = Allowed {
        codec_trial: matches!(compression, Compression::Zstd),
        encodings: ParquetEncodings::Plain,
        drop_statistics: false,
    };
    with_choices(builder, sample, allowed).build()
}

/// Settings of the files a MERGE writes into `table` for `source`'s rows: judged from them
/// when they are enough to judge, else as the table's largest file was written (its
/// dictionaries and codecs, read from its footer), else parquet's defaults.
pub(super) async fn merge_properties(
    target: &TableTarget,
    table: &DeltaTable,
    compression: Compression,
    source: &RecordBatch,
) -> Result<WriterProperties, DeltaError> {
    if source.num_rows() >= MIN_SAMPLE {
        let sample = source.slice(0, source.num_rows().min(SAMPLE_ROWS));
        return Ok(writer_properties(compression, Some(&sample)));
    }
    let Some((path, size)) = largest_file(target, table).await? else {
        return Ok(writer_properties(compression, None));
    };
    let footer = parquet_footer(table.object_store().as_ref(), &path, size)
        .await
        .map_err(|e| target.error(e))?;
    Ok(like(base(compression), &footer).build())
}

/// `builder` with each column of `file`'s first row group written as it is there: without a
/// dictionary where it has none, uncompressed where it is stored so.
fn like(mut builder: WriterPropertiesBuilder, file: &ParquetMetaData) -> WriterPropertiesBuilder {
    let Some(group) = file.row_groups().first() else {
        return builder;
    };
    for column in group.columns() {
        let path = column.column_path().clone();
        if column.dictionary_page_offset().is_none() {
            builder = builder.set_column_dictionary_enabled(path.clone(), false);
        }
        if column.compression() == PqCompression::UNCOMPRESSED {
            builder = builder.set_column_compression(path, PqCompression::UNCOMPRESSED);
        }
    }
    builder
}

/// The table's file holding the most rows, as its path under the table and its size; `None`
/// for a table without files.
async fn largest_file(
    target: &TableTarget,
    table: &DeltaTable,
) -> Result<Option<(Path, u64)>, DeltaError> {
    let snapshot = table.snapshot().map_err(|e| target.error(e))?;
    let largest = snapshot
        .snapshot()
        .file_views(table.log_store().as_ref(), None)
        .try_fold(None, |most: Option<(i64, String, u64)>, f| async move {
            let rows = f.num_records().unwrap_or(0) as i64;
            Ok(match most {
                Some(m) if m.0 >= rows => Some(m),
                _ => Some((rows, f.path().into_owned(), f.size().max(0) as u64)),
            })
        })
        .await
        .map_err(|e| target.error(e))?;
    let Some((_, path, size)) = largest else {
        return Ok(None);
    };
    Ok(Some((
        Path::parse(path).map_err(|e| target.error(e))?,
        size,
    )))
}

/// Rows of the table's largest file, for a write that has no rows of its own to judge from
/// (compaction, a full refresh's history), as a full refresh judges its files from its first
/// batch (a small MERGE's file may hold too few rows to judge); `None` for a table without
/// files or whose largest file is too large to read whole.
pub(super) async fn sample_rows(
    target: &TableTarget,
    table: &DeltaTable,
) -> Result<Option<RecordBatch>, DeltaError> {
    let Some((path, size)) = largest_file(target, table).await? else {
        return Ok(None);
    };
    if size > SAMPLE_FILE_BYTES {
        return Ok(None);
    }
    let bytes = table
        .object_store()
        .get(&path)
        .await
        .map_err(|e| target.error(e))?
        .bytes()
        .await
        .map_err(|e| target.error(e))?;
    let mut batches = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| target.error(e))?
        .with_batch_size(SAMPLE_ROWS)
        .build()
        .map_err(|e| target.error(e))?;
    batches.next().transpose().map_err(|e| target.error(e))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;
    use parquet::arrow::ArrowWriter;
    use parquet::schema::types::ColumnPath;

    use super::*;

    #[tokio::test]
    async fn a_file_too_small_to_judge_is_written_as_the_tables_largest_file_was() {
        // A file written as a judged one is: names without a dictionary, coordinates
        // uncompressed, a picklist with both.
        let schema = Arc::new(Schema::new(vec![
            Field::new("Name", DataType::Utf8, true),
            Field::new("Latitude", DataType::Float64, true),
            Field::new("Type", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from_iter_values(
                    (0..100).map(|i| format!("Acme {i}")),
                )),
                Arc::new(Float64Array::from_iter_values((0..100).map(f64::from))),
                Arc::new(StringArray::from_iter_values(
                    (0..100).map(|i| ["A", "B"][i % 2]),
                )),
            ],
        )
        .unwrap();
        let judged = base(Compression::Zstd)
            .set_column_dictionary_enabled(ColumnPath::from("Name"), false)
            .set_column_dictionary_enabled(ColumnPath::from("Latitude"), false)
            .set_column_compression(ColumnPath::from("Latitude"), PqCompression::UNCOMPRESSED)
            .build();
        let mut bytes = Vec::new();
        let mut w = ArrowWriter::try_new(&mut bytes, schema, Some(judged)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let store = InMemory::new();
        let path = Path::from("part-0.parquet");
        let size = bytes.len() as u64;
        store.put(&path, bytes.into()).await.unwrap();
        let footer = parquet_footer(&store, &path, size).await.unwrap();
        let props = like(base(Compression::Zstd), &footer).build();
        let zstd = codec(Compression::Zstd);
        let of = |name: &str| {
            let path = ColumnPath::from(name);
            (props.dictionary_enabled(&path), props.compression(&path))
        };
        assert_eq!(of("Name"), (false, zstd));
        assert_eq!(of("Latitude"), (false, PqCompression::UNCOMPRESSED));
        assert_eq!(of("Type"), (true, zstd));
        // Not a Parquet file: the footer's error says so.
        let text = Path::from("notes.txt");
        store
            .put(&text, b"hello, this is text".to_vec().into())
            .await
            .unwrap();
        let err = parquet_footer(&store, &text, 19).await.unwrap_err();
        assert_eq!(err, "not a Parquet file (bad footer)");
    }
}
