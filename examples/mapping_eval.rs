//! Cost of evaluating the people mapping (`fixtures/mappings/people.yaml`) on Lead batches:
//! CPU per row of `SourcePlan::evaluate`, to set against the read's per-row budget
//! (issue 7: a mapped read costs at most 1.5x the unmapped one).
//!
//!   cargo run --example mapping_eval [ROWS] [BATCH_ROWS]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::TimestampMicrosecondArray;
use arrow::array::{ArrayRef, BooleanArray, Decimal128Array, RecordBatch, StringArray};
use sfetl::catalog::SObjectDescribe;
use sfetl::mapping::{Mapping, compile};

fn main() {
    let mut args = std::env::args().skip(1);
    let rows: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let batch_rows: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(50_000);
    let root = env!("CARGO_MANIFEST_DIR");
    let describes: HashMap<String, SObjectDescribe> = ["Lead", "Contact", "Account"]
        .iter()
        .map(|o| {
            let text = std::fs::read_to_string(format!(
                "{root}/crates/sfetl-sim/fixtures/describe_{o}.json"
            ))
            .expect("simulator describe");
            (
                o.to_string(),
                serde_json::from_str(&text).expect("describe JSON"),
            )
        })
        .collect();
    let mapping = Mapping::from_file(std::path::Path::new(&format!(
        "{root}/fixtures/mappings/people.yaml"
    )))
    .expect("people mapping");
    let plan = compile(&mapping, &describes).expect("compiles");
    let lead = &plan.stream("person").expect("person stream").sources[0];

    let n = batch_rows;
    let text = |prefix: &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(
            (0..n).map(|i| format!("{prefix}{i}")),
        ))
    };
    let batch = RecordBatch::try_new(
        lead.input_schema.clone(),
        vec![
            text("00Q000000000"),
            text("Person.Name@Example.COM"),
            text("First"),
            text("Last"),
            text("Company "),
            Arc::new(
                Decimal128Array::from_iter_values((0..n).map(|i| (i % 10_000) as i128))
                    .with_precision_and_scale(5, 2)
                    .expect("decimal"),
            ),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    (0..n).map(|i| 1_700_000_000_000_000 + i as i64),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(BooleanArray::from(vec![false; n])),
        ],
    )
    .expect("batch");
    let batches = rows.div_ceil(n);
    let start = Instant::now();
    let mut out_rows = 0;
    for _ in 0..batches {
        out_rows += lead.evaluate(&batch).expect("evaluates").num_rows();
    }
    let elapsed = start.elapsed();
    println!(
        "evaluated {out_rows} rows in {:.3} s: {:.0} ns/row ({} rows per batch)",
        elapsed.as_secs_f64(),
        elapsed.as_nanos() as f64 / out_rows as f64,
        n
    );
}
