//! Query results out: a table for people, CSV, JSON lines or a Parquet file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::array::RecordBatch;
use arrow::array::StringBuilder;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::json::writer::{EncoderOptions, LineDelimited, make_encoder};
use futures::{Stream, StreamExt};

use super::QueryError;
use crate::cli::QueryFormat;
use crate::config::{Compression, ParquetEncodings};
use crate::output::choices::{Allowed, with_choices};
use crate::output::codec;

/// Writes the batches of a query's result in `format` to `out`, or stdout when no file is
/// given, each as it comes: a result is never held whole (a `SELECT *` of a wide latest view
/// to Parquet held every row twice, DataFusion's and the writer's), except as a table for
/// people, which needs every row to size its columns. A result that fails midway leaves no
/// file behind.
pub(super) async fn write(
    format: QueryFormat,
    out: Option<&Path>,
    schema: SchemaRef,
    mut batches: impl Stream<Item = Result<RecordBatch, QueryError>> + Unpin,
) -> Result<(), QueryError> {
    let target = out
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "stdout".into());
    let err = |e: &dyn std::fmt::Display| QueryError::Write {
        target: target.clone(),
        reason: e.to_string(),
    };
    let closed = Arc::new(AtomicBool::new(false));
    let mut writer = Writer::new(format, out, schema, &closed, &err)?;
    let mut written = 0;
    let result = async {
        while let Some(batch) = batches.next().await {
            let batch = batch?;
            if batch.num_rows() > 0 {
                writer.write(batch, &err)?;
                written += 1;
            }
        }
        writer.finish(written == 0, &err)
    }
    .await;
    match result {
        // The reader went away (`sfetl query ... | head`): it has what it wanted.
        Err(_) if closed.load(Ordering::SeqCst) => Ok(()),
        Err(e) => {
            if let Some(path) = out {
                let _ = std::fs::remove_file(path);
            }
            Err(e)
        }
        Ok(()) => Ok(()),
    }
}

/// Rows of a Parquet result's row group: the writer holds a row group until it is complete, so
/// its default (1,048,576 rows) held every row of most results; DuckDB writes 122,880.
const ROW_GROUP_ROWS: usize = 122_880;

/// The encoder of one result.
enum Writer {
    Parquet {
        /// The file, until the first batch says how to write each column.
        file: Option<File>,
        /// Encoders are boxed: their states differ in size by hundreds of bytes.
        writer: Option<Box<parquet::arrow::ArrowWriter<File>>>,
        /// The file's schema: the result's, view types as plain ones (see [`without_views`]).
        schema: SchemaRef,
    },
    Csv {
        writer: Box<arrow::csv::Writer<BufWriter<Box<dyn Write>>>>,
        /// For the header line of an empty result.
        schema: SchemaRef,
    },
    Json(arrow::json::Writer<BufWriter<Box<dyn Write>>, LineDelimited>),
    Table {
        sink: BufWriter<Box<dyn Write>>,
        batches: Vec<RecordBatch>,
    },
}

impl Writer {
    /// The encoder of `format` into `out` (stdout when none; `closed` is set when its reader
    /// goes away).
    fn new(
        format: QueryFormat,
        out: Option<&Path>,
        schema: SchemaRef,
        closed: &Arc<AtomicBool>,
        err: &impl Fn(&dyn std::fmt::Display) -> QueryError,
    ) -> Result<Writer, QueryError> {
        if let QueryFormat::Parquet = format {
            let path = out.ok_or(QueryError::ParquetNeedsOut)?;
            let file = File::create(path).map_err(|e| err(&e))?;
            return Ok(Writer::Parquet {
                file: Some(file),
                writer: None,
                schema: plain_schema(&schema),
            });
        }
        let sink: Box<dyn Write> = match out {
            Some(p) => Box::new(File::create(p).map_err(|e| err(&e))?),
            None => Box::new(PipeWatch {
                inner: std::io::stdout().lock(),
                closed: closed.clone(),
            }),
        };
        let sink = BufWriter::new(sink);
        Ok(match format {
            QueryFormat::Csv => Writer::Csv {
                writer: Box::new(
                    arrow::csv::WriterBuilder::new()
                        .with_header(true)
                        .build(sink),
                ),
                schema,
            },
            QueryFormat::Json => Writer::Json(
                arrow::json::WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build::<_, LineDelimited>(sink),
            ),
            QueryFormat::Table | QueryFormat::Parquet => Writer::Table {
                sink,
                batches: vec![RecordBatch::new_empty(schema)],
            },
        })
    }

    /// Encodes one batch (a table keeps it for [`Writer::finish`]).
    fn write(
        &mut self,
        batch: RecordBatch,
        err: &impl Fn(&dyn std::fmt::Display) -> QueryError,
    ) -> Result<(), QueryError> {
        match self {
            Writer::Parquet {
                file,
                writer,
                schema,
            } => {
                let batch = without_views(schema, batch).map_err(|e| err(&e))?;
                let writer = match writer {
                    Some(w) => w,
                    None => writer.insert(parquet_writer(file.take(), schema, Some(&batch), err)?),
                };
                writer.write(&batch).map_err(|e| err(&e))
            }
            Writer::Csv { writer, .. } => {
                let batch = nested_as_json(batch).map_err(|e| err(&e))?;
                writer.write(&batch).map_err(|e| err(&e))
            }
            Writer::Json(w) => w.write(&batch).map_err(|e| err(&e)),
            Writer::Table { batches, .. } => {
                batches.push(batch);
                Ok(())
            }
        }
    }

    /// Ends the output; `empty`: no row came, and CSV still gets its header line.
    fn finish(
        self,
        empty: bool,
        err: &impl Fn(&dyn std::fmt::Display) -> QueryError,
    ) -> Result<(), QueryError> {
        match self {
            Writer::Parquet {
                file,
                writer,
                schema,
            } => {
                // An empty result is still a file with the result's columns.
                let writer = match writer {
                    Some(w) => w,
                    None => parquet_writer(file, &schema, None, err)?,
                };
                writer.close().map(|_| ()).map_err(|e| err(&e))
            }
            Writer::Csv { mut writer, schema } => {
                if empty {
                    // The header line still names the columns of an empty result.
                    let none =
                        nested_as_json(RecordBatch::new_empty(schema)).map_err(|e| err(&e))?;
                    writer.write(&none).map_err(|e| err(&e))?;
                }
                writer.into_inner().flush().map_err(|e| err(&e))
            }
            Writer::Json(mut w) => {
                w.finish().map_err(|e| err(&e))?;
                w.into_inner().flush().map_err(|e| err(&e))
            }
            Writer::Table { mut sink, batches } => {
                let table =
                    arrow::util::pretty::pretty_format_batches(&batches).map_err(|e| err(&e))?;
                writeln!(sink, "{table}").map_err(|e| err(&e))?;
                sink.flush().map_err(|e| err(&e))
            }
        }
    }
}

/// The writer of a Parquet result into `file`, each column written as an export's are
/// ([`crate::output::choices`]), judged from `first`, the result's first batch (parquet's
/// defaults for an empty result).
fn parquet_writer(
    file: Option<File>,
    schema: &SchemaRef,
    first: Option<&RecordBatch>,
    err: &impl Fn(&dyn std::fmt::Display) -> QueryError,
) -> Result<Box<parquet::arrow::ArrowWriter<File>>, QueryError> {
    let file = file.ok_or_else(|| err(&"the file's writer failed before"))?;
    // zstd, as the export's own files: a result of a whole stream was 10% larger than the
    // stream's export uncompressed.
    let mut props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_compression(codec(Compression::Zstd));
    if let Some(first) = first {
        // A dictionary tried on every column (names, streets, Ids) was a sixth of a wide
        // `SELECT *`'s CPU.
        let allowed = Allowed {
            codec_trial: true,
            encodings: ParquetEncodings::Auto,
            drop_statistics: true,
        };
        props = with_choices(props, first, allowed);
    }
    let writer = parquet::arrow::ArrowWriter::try_new(file, schema.clone(), Some(props.build()))
        .map_err(|e| err(&e))?;
    Ok(Box::new(writer))
}

/// `schema` with DataFusion's view types (`Utf8View`, `BinaryView`, which it reads Parquet
/// text as) as plain `Utf8` and `Binary`, in structs and lists too: the Parquet file a query
/// writes is for other tools, and readers before pyarrow 16 or DuckDB 1.1 cannot sort or take
/// view columns.
fn plain_schema(schema: &SchemaRef) -> SchemaRef {
    if !schema
        .fields()
        .iter()
        .any(|f| plain(f.data_type()) != *f.data_type())
    {
        return schema.clone();
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_data_type(plain(f.data_type())))
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `batch` cast to `target` ([`plain_schema`] of its own), leaves as plain types, structs'
/// children too (a Delta export's addresses).
fn without_views(
    target: &SchemaRef,
    batch: RecordBatch,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    if batch.schema().fields() == target.fields() {
        return Ok(batch);
    }
    let columns = batch
        .columns()
        .iter()
        .zip(target.fields())
        .map(|(c, f)| arrow::compute::cast(c, f.data_type()))
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(target.clone(), columns)
}

/// `batch` with each column CSV has no form for (an Account's address structs, lists, maps) as
/// the JSON text arrow-json writes for it (`{"street":"1 Main St","city":...}`), so that a CSV
/// of a whole stream is still one plain cell per column (arrow-csv refuses such a column).
fn nested_as_json(batch: RecordBatch) -> Result<RecordBatch, arrow::error::ArrowError> {
    let nested = |t: &DataType| t.is_nested();
    let schema = batch.schema();
    if !schema.fields().iter().any(|f| nested(f.data_type())) {
        return Ok(batch);
    }
    let options = EncoderOptions::default().with_explicit_nulls(true);
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(fields.capacity());
    for (f, c) in schema.fields().iter().zip(batch.columns()) {
        if !nested(f.data_type()) {
            fields.push(f.as_ref().clone());
            columns.push(c.clone());
            continue;
        }
        let mut encoder = make_encoder(f, c.as_ref(), &options)?;
        let mut text = StringBuilder::with_capacity(c.len(), c.len() * 64);
        let mut value = Vec::new();
        for row in 0..c.len() {
            if encoder.is_null(row) {
                text.append_null();
                continue;
            }
            value.clear();
            encoder.encode(row, &mut value);
            let json = std::str::from_utf8(&value)
                .map_err(|e| arrow::error::ArrowError::CsvError(e.to_string()))?;
            text.append_value(json);
        }
        fields.push(Field::new(f.name(), DataType::Utf8, true));
        columns.push(Arc::new(text.finish()) as _);
    }
    let schema = Schema::new_with_metadata(fields, schema.metadata().clone());
    RecordBatch::try_new(Arc::new(schema), columns)
}

/// `t` with every view type, at any depth of structs and lists, as its plain form.
fn plain(t: &DataType) -> DataType {
    let field = |f: &Field| f.clone().with_data_type(plain(f.data_type()));
    match t {
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        DataType::Struct(fields) => {
            DataType::Struct(fields.iter().map(|f| field(f)).collect::<Vec<_>>().into())
        }
        DataType::List(f) => DataType::List(Arc::new(field(f))),
        DataType::LargeList(f) => DataType::LargeList(Arc::new(field(f))),
        other => other.clone(),
    }
}

/// A writer that remembers whether its reader closed the pipe, so the error can be told apart
/// from a real failure after the encoders have wrapped it in their own error types.
struct PipeWatch<W> {
    inner: W,
    closed: Arc<AtomicBool>,
}

impl<W: Write> PipeWatch<W> {
    fn watch<T>(&self, r: std::io::Result<T>) -> std::io::Result<T> {
        if let Err(e) = &r
            && e.kind() == std::io::ErrorKind::BrokenPipe
        {
            self.closed.store(true, Ordering::SeqCst);
        }
        r
    }
}

impl<W: Write> Write for PipeWatch<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let r = self.inner.write(buf);
        self.watch(r)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        let r = self.inner.flush();
        self.watch(r)
    }
}
