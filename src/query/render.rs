//! Query results out: a table for people, CSV, JSON lines or a Parquet file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
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
        let file = File::create(path).map_err(|e| err(&e))?;
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(file, schema, None).map_err(|e| err(&e))?;
        for b in &batches {
            writer.write(b).map_err(|e| err(&e))?;
        }
        writer.close().map_err(|e| err(&e))?;
        return Ok(());
    }
    let sink: Box<dyn Write> = match out {
        Some(p) => Box::new(File::create(p).map_err(|e| err(&e))?),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut sink = BufWriter::new(sink);
    match format {
        QueryFormat::Table => {
            let table =
                arrow::util::pretty::pretty_format_batches(&batches).map_err(|e| err(&e))?;
            writeln!(sink, "{table}").map_err(|e| err(&e))?;
        }
        QueryFormat::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut sink);
            for b in &batches {
                writer.write(b).map_err(|e| err(&e))?;
            }
        }
        QueryFormat::Json => {
            let mut writer = arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, LineDelimited>(&mut sink);
            for b in &batches {
                writer.write(b).map_err(|e| err(&e))?;
            }
            writer.finish().map_err(|e| err(&e))?;
        }
        QueryFormat::Parquet => unreachable!("handled above"),
    }
    sink.flush().map_err(|e| err(&e))
}
