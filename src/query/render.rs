//! Query results out: a table for people, CSV, JSON lines or a Parquet file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::json::writer::LineDelimited;

use super::QueryError;
use crate::cli::QueryFormat;

/// Writes `batches` in `format` to `out`, or stdout when no file is given.
pub(super) fn write(
    format: QueryFormat,
    out: Option<&Path>,
    schema: SchemaRef,
    mut batches: Vec<RecordBatch>,
) -> Result<(), QueryError> {
    batches.retain(|b| b.num_rows() > 0);
    if batches.is_empty() {
        // Headers are still shown for an empty result.
        batches.push(RecordBatch::new_empty(schema.clone()));
    }
    let target = out
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "stdout".into());
    let err = |e: &dyn std::fmt::Display| QueryError::Write {
        target: target.clone(),
        reason: e.to_string(),
    };
    if let QueryFormat::Parquet = format {
        let path = out.ok_or(QueryError::ParquetNeedsOut)?;
        let (schema, batches) = without_views(schema, batches).map_err(|e| err(&e))?;
        let file = File::create(path).map_err(|e| err(&e))?;
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(file, schema, None).map_err(|e| err(&e))?;
        for b in &batches {
            writer.write(b).map_err(|e| err(&e))?;
        }
        writer.close().map_err(|e| err(&e))?;
        return Ok(());
    }
    let closed = Arc::new(AtomicBool::new(false));
    let sink: Box<dyn Write> = match out {
        Some(p) => Box::new(File::create(p).map_err(|e| err(&e))?),
        None => Box::new(PipeWatch {
            inner: std::io::stdout().lock(),
            closed: closed.clone(),
        }),
    };
    let mut sink = BufWriter::new(sink);
    let written = write_text(format, &mut sink, &batches, &err);
    match written.and_then(|()| sink.flush().map_err(|e| err(&e))) {
        // The reader went away (`sfetl query ... | head`): it has what it wanted.
        Err(_) if closed.load(Ordering::SeqCst) => Ok(()),
        other => other,
    }
}

/// `batches` with DataFusion's view types (`Utf8View`, `BinaryView`, which it reads Parquet
/// text as) cast to plain `Utf8` and `Binary`, in structs and lists too: the Parquet file a query writes is for other
/// tools, and readers before pyarrow 16 or DuckDB 1.1 cannot sort or take view columns.
fn without_views(
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
) -> Result<(SchemaRef, Vec<RecordBatch>), arrow::error::ArrowError> {
    if !schema
        .fields()
        .iter()
        .any(|f| plain(f.data_type()) != *f.data_type())
    {
        return Ok((schema, batches));
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_data_type(plain(f.data_type())))
        .collect();
    let target = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
    // Leaves as plain types, structs' children too (a Delta export's addresses).
    let cast = |b: RecordBatch| {
        let columns = b
            .columns()
            .iter()
            .zip(target.fields())
            .map(|(c, f)| arrow::compute::cast(c, f.data_type()))
            .collect::<Result<Vec<_>, _>>()?;
        RecordBatch::try_new(target.clone(), columns)
    };
    let batches = batches.into_iter().map(cast).collect::<Result<_, _>>()?;
    Ok((target, batches))
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

/// Writes the table, CSV or JSON lines text of `batches` to `sink`.
fn write_text(
    format: QueryFormat,
    sink: &mut impl Write,
    batches: &[RecordBatch],
    err: &impl Fn(&dyn std::fmt::Display) -> QueryError,
) -> Result<(), QueryError> {
    match format {
        QueryFormat::Table => {
            let table = arrow::util::pretty::pretty_format_batches(batches).map_err(|e| err(&e))?;
            writeln!(sink, "{table}").map_err(|e| err(&e))?;
        }
        QueryFormat::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *sink);
            for b in batches {
                writer.write(b).map_err(|e| err(&e))?;
            }
        }
        QueryFormat::Json => {
            let mut writer = arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, LineDelimited>(&mut *sink);
            for b in batches {
                writer.write(b).map_err(|e| err(&e))?;
            }
            writer.finish().map_err(|e| err(&e))?;
        }
        QueryFormat::Parquet => unreachable!("handled by the caller"),
    }
    Ok(())
}
