//! Outputs: exact RECORD lines, and Parquet files that read back with the right types.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float64Array,
    Int32Array, StringArray, StructArray, Time64MicrosecondArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Fields, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use futures::TryStreamExt;

use super::*;

fn batch() -> RecordBatch {
    let addr_fields = Fields::from(vec![
        Field::new("city", DataType::Utf8, true),
        Field::new("latitude", DataType::Float64, true),
    ]);
    let addr = StructArray::new(
        addr_fields.clone(),
        vec![
            Arc::new(StringArray::from(vec![Some("Paris"), None])) as ArrayRef,
            Arc::new(Float64Array::from(vec![Some(48.85), None])),
        ],
        Some(vec![true, false].into()),
    );
    let schema = Arc::new(Schema::new(vec![
        Field::new("Id", DataType::Utf8, false),
        Field::new("Name", DataType::Utf8, true),
        Field::new("IsDeleted", DataType::Boolean, true),
        Field::new("NumberOfEmployees", DataType::Int32, true),
        Field::new("AnnualRevenue", DataType::Decimal128(18, 2), true),
        Field::new("CloseDate", DataType::Date32, true),
        Field::new("At__c", DataType::Time64(TimeUnit::Microsecond), true),
        Field::new(
            "SystemModstamp",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("Body", DataType::Binary, true),
        Field::new("BillingAddress", DataType::Struct(addr_fields), true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec!["001A", "001B"])),
            Arc::new(StringArray::from(vec![Some("Acme \"Q\"\n"), None])),
            Arc::new(BooleanArray::from(vec![Some(false), Some(true)])),
            Arc::new(Int32Array::from(vec![Some(12), None])),
            Arc::new(
                Decimal128Array::from(vec![Some(123450), None])
                    .with_precision_and_scale(18, 2)
                    .unwrap(),
            ),
            Arc::new(Date32Array::from(vec![Some(19782), None])),
            Arc::new(Time64MicrosecondArray::from(vec![
                Some(37_800_000_000),
                None,
            ])),
            Arc::new(
                TimestampMicrosecondArray::from(vec![Some(1_705_312_800_123_000), None])
                    .with_timezone("UTC"),
            ),
            Arc::new(BinaryArray::from(vec![Some(b"hi".as_slice()), None])),
            Arc::new(addr),
        ],
    )
    .unwrap()
}

#[test]
fn records_lines_are_exact() {
    let mut out = Vec::new();
    RecordsRenderer::new("Account")
        .render(&batch(), 1_700_000_000_000, &mut out)
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        lines[0],
        r#"{"type":"RECORD","record":{"stream":"Account","data":{"Id":"001A","Name":"Acme \"Q\"\n","IsDeleted":false,"NumberOfEmployees":12,"AnnualRevenue":1234.50,"CloseDate":"2024-02-29","At__c":"10:30:00","SystemModstamp":"2024-01-15T10:00:00.123Z","Body":"aGk=","BillingAddress":{"city":"Paris","latitude":48.85}},"emitted_at":1700000000000}}"#
    );
    assert_eq!(
        lines[1],
        r#"{"type":"RECORD","record":{"stream":"Account","data":{"Id":"001B","Name":null,"IsDeleted":true,"NumberOfEmployees":null,"AnnualRevenue":null,"CloseDate":null,"At__c":null,"SystemModstamp":null,"Body":null,"BillingAddress":null},"emitted_at":1700000000000}}"#
    );
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["type"], "RECORD");
    }
}

#[tokio::test]
async fn parquet_files_appear_only_when_complete_and_read_back_typed() {
    let dir = tempfile::tempdir().unwrap();
    let loc = open_location(
        dir.path().join("export").to_str().unwrap(),
        &BTreeMap::new(),
    )
    .unwrap();
    let b = batch();
    let mut w = ParquetFileWriter::new(
        loc.clone(),
        "Account",
        "S1",
        b.schema(),
        ParquetOptions::default(),
    );
    w.write(&b, 1_700_000_000_000_000).await.unwrap();
    w.write(&b, 1_700_000_000_000_000).await.unwrap();
    assert_eq!(w.rows_in_file(), 4);
    let final_path = dir.path().join("export/Account/S1/part-00000.parquet");
    assert!(
        !final_path.exists(),
        "no file under its final name before completion"
    );
    let done = w.complete_file().await.unwrap().unwrap();
    assert_eq!(done.rows, 4);
    assert_eq!(done.path.as_ref(), "Account/S1/part-00000.parquet");
    assert!(final_path.exists());
    assert_eq!(w.complete_file().await.unwrap(), None);
    w.write(&b, 1).await.unwrap();
    assert_eq!(
        w.complete_file().await.unwrap().unwrap().path.as_ref(),
        "Account/S1/part-00001.parquet"
    );

    let files: Vec<String> = std::fs::read_dir(dir.path().join("export/Account/S1"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(files, vec!["part-00000.parquet", "part-00001.parquet"]);

    let file = std::fs::File::open(&final_path).unwrap();
    let reader =
        ::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let schema = reader.schema().clone();
    let batches: Vec<RecordBatch> = reader.build().unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 4);
    assert_eq!(
        schema.field_with_name("AnnualRevenue").unwrap().data_type(),
        &DataType::Decimal128(18, 2)
    );
    assert_eq!(
        schema
            .field_with_name("_sfetl_extracted_at")
            .unwrap()
            .data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    let first = &batches[0];
    assert_eq!(
        first.column(0).slice(0, 2).as_ref(),
        b.column(0).as_ref() as &dyn arrow::array::Array
    );
    let sync = first.column_by_name("_sfetl_sync_id").unwrap();
    assert_eq!(
        sync.as_ref(),
        &StringArray::from(vec!["S1"; first.num_rows()]) as &dyn arrow::array::Array
    );
}

#[tokio::test]
async fn memory_store_and_bad_urls() {
    let loc = open_location("memory:///exports", &BTreeMap::new()).unwrap();
    let b = batch();
    let mut w = ParquetFileWriter::new(
        loc.clone(),
        "Lead",
        "S2",
        b.schema(),
        ParquetOptions::default(),
    );
    w.write(&b, 0).await.unwrap();
    w.complete_file().await.unwrap();
    let listed: Vec<_> = loc.store.list(None).try_collect().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].location.as_ref(),
        "exports/Lead/S2/part-00000.parquet"
    );

    let e = open_location("ftp://host/x", &BTreeMap::new())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("output.path \"ftp://host/x\": cannot open it"),
        "{e}"
    );
    let secret: BTreeMap<String, crate::secret::Secret> = [(
        "aws_secret_access_key".to_string(),
        crate::secret::Secret::new("TOPSECRETKEY"),
    )]
    .into();
    let e = open_location("s3://", &secret).unwrap_err().to_string();
    assert!(!e.contains("TOPSECRETKEY"), "{e}");
}

#[test]
fn sync_ids_sort_by_time() {
    let a = new_sync_id();
    assert_eq!(a.len(), "20261123T110000.123Z-3f9a1c".len());
    assert!(a.as_bytes()[8] == b'T' && a.as_bytes()[15] == b'.' && a.as_bytes()[19] == b'Z');
    assert!(
        new_sync_id()[..20] >= a[..20],
        "a later run never sorts before"
    );
}

/// Puts `x` at each `stream/sync/file` path of `loc`.
async fn put_all(loc: &OutputLocation, paths: &[&str]) {
    use object_store::ObjectStoreExt;
    for p in paths {
        let parts: Vec<&str> = p.split('/').collect();
        loc.store
            .put(&loc.child(&parts), b"x".to_vec().into())
            .await
            .unwrap();
    }
}

async fn listing(loc: &OutputLocation) -> Vec<String> {
    let left: Vec<_> = loc.store.list(None).try_collect().await.unwrap();
    let mut left: Vec<String> = left.into_iter().map(|m| m.location.to_string()).collect();
    left.sort();
    left
}

#[tokio::test]
async fn a_resume_removes_only_files_its_state_proves_superseded() {
    use crate::output::sync::SyncMarker;
    use crate::state::OutputCommit;
    let loc = open_location("memory:///x", &BTreeMap::new()).unwrap();
    let commit = OutputCommit {
        sync_id: "S1".into(),
        parts: 2,
    };
    super::resume::marker("Lead", "S1", None)
        .write(&loc)
        .await
        .unwrap();
    // A run that resumed from the same commit and was killed before its STATE was kept.
    super::resume::marker("Lead", "S2", Some(commit.clone()))
        .write(&loc)
        .await
        .unwrap();
    // A run that resumed from another commit: not superseded by this resume.
    SyncMarker {
        resumed_from: Some(OutputCommit {
            sync_id: "S1".into(),
            parts: 1,
        }),
        ..super::resume::marker("Lead", "S3", None)
    }
    .write(&loc)
    .await
    .unwrap();
    put_all(
        &loc,
        &[
            "Lead/S1/part-00000.parquet",
            "Lead/S1/part-00001.parquet",
            "Lead/S1/part-00002.parquet",
            "Lead/S1/notes.txt",
            "Lead/S2/part-00000.parquet",
            "Lead/S3/part-00000.parquet",
            "Lead/zz_archive/part-00000.parquet",
            "Lead/archive/old/part-00001.parquet",
            "Contact/S1/part-00000.parquet",
        ],
    )
    .await;
    let notes = prepare_resume(&loc, "Lead", Some(&commit)).await.unwrap();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes[0].starts_with("Lead: removed 1 file(s) of sync S1 not covered by the STATE this run resumes from (sync S1, 2 part(s))"), "{notes:?}");
    assert_eq!(
        listing(&loc).await,
        vec![
            "x/Contact/S1/part-00000.parquet",
            "x/Lead/S1/_sfetl_sync.json",
            "x/Lead/S1/notes.txt",
            "x/Lead/S1/part-00000.parquet",
            "x/Lead/S1/part-00001.parquet",
            "x/Lead/S3/_sfetl_sync.json",
            "x/Lead/S3/part-00000.parquet",
            "x/Lead/archive/old/part-00001.parquet",
            "x/Lead/zz_archive/part-00000.parquet",
        ]
    );
    // Without a state nothing is removed: a fresh start supersedes, never deletes.
    assert!(prepare_resume(&loc, "Lead", None).await.unwrap().is_empty());
    assert_eq!(listing(&loc).await.len(), 9);
}

#[test]
fn staging_names_are_recognised_exactly() {
    use super::resume::{is_staging, part_index};
    assert!(is_staging("part-00003.parquet#2"));
    assert!(is_staging("_sfetl_sync.json#11"));
    assert!(!is_staging("part-00003.parquet"));
    assert!(!is_staging("mine.parquet#2"));
    assert!(!is_staging("part-3.parquet#2"));
    assert!(!is_staging("part-00003.parquet#x"));
    assert_eq!(part_index("part-00012.parquet"), Some(12));
    assert_eq!(part_index("part-00012.parquet.bak"), None);
}

#[test]
fn staging_files_are_removed_only_in_sfetl_sync_folders() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let write = |p: &str| {
        let path = root.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"x").unwrap();
    };
    write("Lead/S1/_sfetl_sync.json");
    write("Lead/S1/part-00000.parquet#1");
    write("Lead/S1/part-00000.parquet");
    write("Contact/S9/_sfetl_sync.json");
    write("Contact/S9/_sfetl_sync.json#3");
    write("Contact/mine/part-00000.parquet#1");
    write("Contact/S9/keep#1");
    // A slice's folder: another process may be writing it now.
    let slice = r#"{"stream":"Lead","sync_id":"S5","base":false,"complete":false,"slice":{"id":"Lead-0001-abc","sequence":1}}"#;
    std::fs::create_dir_all(root.join("Lead/S5")).unwrap();
    std::fs::write(root.join("Lead/S5/_sfetl_sync.json"), slice).unwrap();
    write("Lead/S5/part-00000.parquet#1");
    let loc = open_location(root.to_str().unwrap(), &BTreeMap::new()).unwrap();
    let mut removed: Vec<String> = loc
        .remove_staging()
        .unwrap()
        .into_iter()
        .map(|p| p.strip_prefix(root).unwrap().display().to_string())
        .collect();
    removed.sort();
    assert_eq!(
        removed,
        vec![
            "Contact/S9/_sfetl_sync.json#3",
            "Lead/S1/part-00000.parquet#1"
        ]
    );
    assert!(root.join("Contact/mine/part-00000.parquet#1").is_file());
    assert!(root.join("Lead/S5/part-00000.parquet#1").is_file());
    assert!(root.join("Contact/S9/keep#1").is_file());
}

#[tokio::test]
async fn an_export_sync_folder_holds_its_marker_until_complete() {
    use crate::output::sync::{SyncMarker, current_from, markers};
    let loc = open_location("memory:///x", &BTreeMap::new()).unwrap();
    let b = batch();
    let mut w = ParquetFileWriter::new(
        loc.clone(),
        "Lead",
        "S1",
        b.schema(),
        ParquetOptions::default(),
    )
    .with_sync(true, None);
    w.write(&b, 0).await.unwrap();
    let first = markers(&loc, "Lead", None).await.unwrap();
    assert_eq!(
        first,
        vec![SyncMarker {
            stream: "Lead".into(),
            sync_id: "S1".into(),
            base: true,
            resumed_from: None,
            complete: false,
            slice: None,
        }]
    );
    assert_eq!(
        current_from(&first),
        None,
        "an unfinished base sync supersedes nothing"
    );
    w.complete_sync().await.unwrap();
    let done = markers(&loc, "Lead", None).await.unwrap();
    assert!(done[0].complete);
    assert_eq!(current_from(&done), Some("S1"));
    assert_eq!(
        listing(&loc).await,
        vec!["x/Lead/S1/_sfetl_sync.json", "x/Lead/S1/part-00000.parquet"]
    );
}

/// A run resuming from a sync reads the markers of that sync's day, the day before and every
/// later folder (and folders whose names are not dated), not the years before; a stream never
/// written has none.
#[tokio::test]
async fn a_resuming_run_reads_the_markers_of_the_syncs_since_the_day_before_its_own() {
    use crate::output::sync::{SyncMarker, markers};
    let dir = tempfile::tempdir().unwrap();
    let loc = open_location(dir.path().to_str().unwrap(), &BTreeMap::new()).unwrap();
    let ids = [
        "20240101T000000.000Z-aaaaaa",
        "20250301T235959.999Z-bbbbbb",
        "20250302T120000.000Z-cccccc",
        "20250303T000000.000Z-dddddd",
        "manual",
    ];
    for id in ids {
        let m = SyncMarker {
            stream: "Lead".into(),
            sync_id: id.into(),
            base: false,
            resumed_from: None,
            complete: true,
            slice: None,
        };
        m.write(&loc).await.unwrap();
    }
    // A folder without a marker is not sfetl's.
    std::fs::create_dir_all(dir.path().join("Lead/20250304T000000.000Z-eeeeee")).unwrap();
    let since = markers(&loc, "Lead", Some("20250302T120000.000Z-cccccc"))
        .await
        .unwrap();
    let got: Vec<&str> = since.iter().map(|m| m.sync_id.as_str()).collect();
    assert_eq!(
        got,
        [
            "20250301T235959.999Z-bbbbbb",
            "20250302T120000.000Z-cccccc",
            "20250303T000000.000Z-dddddd",
            "manual"
        ]
    );
    assert_eq!(markers(&loc, "Lead", None).await.unwrap().len(), 5);
    assert!(markers(&loc, "Contact", None).await.unwrap().is_empty());
}

/// A seeded stream of numbers below the bound asked (a 64-bit LCG): values in no order, the
/// same on every run.
pub(super) fn random_below(mut seed: u64) -> impl FnMut(u64) -> u64 {
    move |below| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 20) % below
    }
}

/// The encodings of a column chunk's values, in parquet's order, without RLE (which every
/// chunk lists for its levels): "PLAIN", "DELTA_BYTE_ARRAY"...
pub(super) fn data_encodings(chunk: &::parquet::file::metadata::ColumnChunkMetaData) -> String {
    let values: Vec<String> = chunk
        .encodings()
        .map(|e| format!("{e:?}"))
        .filter(|e| e != "RLE")
        .collect();
    values.join(",")
}

/// `batch` written as the one batch of a Parquet file with the default options, and that file
/// opened (the folder lives as long as the returned guard).
async fn written_alone(
    batch: &RecordBatch,
) -> (
    tempfile::TempDir,
    ::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder<std::fs::File>,
) {
    written_with(batch, ParquetOptions::default()).await
}

/// As [`written_alone`], with `options`.
async fn written_with(
    batch: &RecordBatch,
    options: ParquetOptions,
) -> (
    tempfile::TempDir,
    ::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder<std::fs::File>,
) {
    let dir = tempfile::tempdir().unwrap();
    let loc = open_location(dir.path().to_str().unwrap(), &BTreeMap::new()).unwrap();
    let mut w = ParquetFileWriter::new(loc, "Account", "S1", batch.schema(), options);
    w.write(batch, 0).await.unwrap();
    w.complete_file().await.unwrap().unwrap();
    let file = std::fs::File::open(dir.path().join("Account/S1/part-00000.parquet")).unwrap();
    let reader =
        ::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    (dir, reader)
}

#[tokio::test]
async fn text_in_no_order_goes_without_statistics_ids_and_constant_or_sparse_text_keep_them() {
    let n = 2000;
    let ids: Vec<String> = (0..n).map(|i| format!("001{i:015}")).collect();
    // Distinct names in no order, as an org's Account names come when read by Id.
    let names: Vec<String> = (0..n).map(|i| format!("Acme {}", (i * 7919) % n)).collect();
    let types: Vec<&str> = (0..n)
        .map(|i| ["Customer", "Partner", "Prospect"][i % 3])
        .collect();
    // A picklist that happens to arrive in order, one with a single value, and one too sparse
    // to judge (fewer than 1,024 values).
    let stages: Vec<&str> = (0..n)
        .map(|i| if i < n / 2 { "Closed" } else { "Open" })
        .collect();
    let currency: Vec<&str> = vec!["USD"; n];
    let sparse: Vec<Option<&str>> = (0..n)
        .map(|i| (i % 4 == 0).then_some(["b", "a"][i % 8 / 4]))
        .collect();
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    let schema = Arc::new(Schema::new(vec![
        Field::new("Id", DataType::Utf8, false),
        text("Name"),
        text("Type"),
        text("Stage"),
        text("Currency"),
        text("Sparse"),
    ]));
    let b = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(ids.clone())),
            Arc::new(StringArray::from(names.clone())),
            Arc::new(StringArray::from(types)),
            Arc::new(StringArray::from(stages)),
            Arc::new(StringArray::from(currency)),
            Arc::new(StringArray::from(sparse)),
        ],
    )
    .unwrap();
    let (_dir, reader) = written_alone(&b).await;
    let group = reader.metadata().row_group(0).clone();
    let column = |name: &str| {
        group
            .columns()
            .iter()
            .find(|c| c.column_path().string() == name)
            .unwrap()
            .clone()
    };
    let min_max = |name: &str| {
        let c = column(name);
        let s = c.statistics()?;
        Some((
            String::from_utf8(s.min_bytes_opt()?.to_vec()).unwrap(),
            String::from_utf8(s.max_bytes_opt()?.to_vec()).unwrap(),
        ))
    };
    let dictionary = |name: &str| column(name).dictionary_page_offset().is_some();
    // Ids in order: min/max, so a reader can skip row groups by Id; no dictionary.
    assert_eq!(
        min_max("Id"),
        Some(("001000000000000000".into(), "001000000000001999".into()))
    );
    assert!(!dictionary("Id"));
    // Ids in order share their prefixes: DELTA_BYTE_ARRAY. Names in no order: PLAIN.
    assert_eq!(data_encodings(&column("Id")), "DELTA_BYTE_ARRAY");
    assert_eq!(data_encodings(&column("Name")), "PLAIN");
    // Names: no statistics (they would span every row group), no dictionary.
    assert!(column("Name").statistics().is_none());
    assert!(!dictionary("Name"));
    // A picklist in no order: its dictionary, no statistics (every value in every row group).
    assert!(column("Type").statistics().is_none());
    assert!(dictionary("Type"));
    // In order, a single value, too sparse to judge: statistics kept, with the null count.
    assert_eq!(min_max("Stage"), Some(("Closed".into(), "Open".into())));
    assert_eq!(min_max("Currency"), Some(("USD".into(), "USD".into())));
    assert_eq!(min_max("Sparse"), Some(("a".into(), "b".into())));
    let sparse = column("Sparse");
    assert_eq!(sparse.statistics().unwrap().null_count_opt(), Some(1500));
    assert!(
        ["Stage", "Currency", "Sparse"]
            .iter()
            .all(|c| dictionary(c))
    );
    // The values themselves are all there.
    let batches: Vec<RecordBatch> = reader.build().unwrap().collect::<Result<_, _>>().unwrap();
    let read: Vec<String> = batches
        .iter()
        .flat_map(|b| {
            let c = b.column_by_name("Name").unwrap().as_string::<i32>().clone();
            c.iter().map(|v| v.unwrap().to_string()).collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(read, names);
}

#[tokio::test]
async fn columns_zstd_barely_shrinks_are_stored_uncompressed_the_rest_compressed() {
    let n = 4000;
    // Coordinates with six random decimals (as an org's geocodes): zstd saves ~5% on them.
    let mut seed: u64 = 7;
    let mut random = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as i64 % 180_000_000 - 90_000_000
    };
    let latitudes: Vec<f64> = (0..n).map(|_| random() as f64 / 1e6).collect();
    // The same as Decimal128(18, 15), which parquet stores as 8-byte integers.
    let decimals: Vec<i128> = (0..n).map(|_| random() as i128 * 1_000_000_000).collect();
    // Timestamps a second apart and repetitive text: zstd shrinks them several times.
    let stamps: Vec<i64> = (0..n as i64)
        .map(|i| 1_700_000_000_000_000 + i * 1_000_000)
        .collect();
    let streets: Vec<String> = (0..n)
        .map(|i| format!("{} Main Street", i * 7 % n))
        .collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("Latitude", DataType::Float64, true),
        Field::new("Geo", DataType::Decimal128(18, 15), true),
        Field::new(
            "Stamp",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("Street", DataType::Utf8, true),
    ]));
    let b = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Float64Array::from(latitudes.clone())),
            Arc::new(
                Decimal128Array::from(decimals.clone())
                    .with_precision_and_scale(18, 15)
                    .unwrap(),
            ),
            Arc::new(TimestampMicrosecondArray::from(stamps.clone()).with_timezone("UTC")),
            Arc::new(StringArray::from(streets.clone())),
        ],
    )
    .unwrap();
    let (_dir, reader) = written_alone(&b).await;
    let group = reader.metadata().row_group(0).clone();
    let codecs: Vec<(String, String)> = group
        .columns()
        .iter()
        .map(|c| (c.column_path().string(), format!("{:?}", c.compression())))
        .collect();
    let zstd = "ZSTD(ZstdLevel(1))".to_string();
    assert_eq!(
        codecs,
        vec![
            ("Latitude".to_string(), "UNCOMPRESSED".to_string()),
            ("Geo".to_string(), "UNCOMPRESSED".to_string()),
            // Delta-packed (a second apart: nothing left to compress).
            ("Stamp".to_string(), "UNCOMPRESSED".to_string()),
            ("Street".to_string(), zstd.clone()),
            ("_sfetl_extracted_at".to_string(), zstd.clone()),
            ("_sfetl_sync_id".to_string(), zstd),
        ]
    );
    // The values read back as written.
    let batches: Vec<RecordBatch> = reader.build().unwrap().collect::<Result<_, _>>().unwrap();
    let all = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    let concat = |i: usize| all.column(i).clone();
    assert_eq!(
        concat(0)
            .as_primitive::<arrow::datatypes::Float64Type>()
            .values()
            .to_vec(),
        latitudes
    );
    assert_eq!(
        concat(1)
            .as_primitive::<arrow::datatypes::Decimal128Type>()
            .values()
            .to_vec(),
        decimals
    );
    assert_eq!(
        concat(2)
            .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
            .values()
            .to_vec(),
        stamps
    );
    assert_eq!(
        concat(3)
            .as_string::<i32>()
            .iter()
            .map(|v| v.unwrap().to_string())
            .collect::<Vec<_>>(),
        streets
    );
}

#[tokio::test]
async fn numbers_and_timestamps_are_delta_packed_where_that_is_as_small_unless_plain_is_asked() {
    let n = 4000;
    let mut random = random_below(11);
    // An autonumber-like sequence: deltas of 3, packed at two bits.
    let sequence: Vec<i64> = (0..n as i64).map(|i| 1_000 + 3 * i).collect();
    // Modification times scattered over ten years: zstd shrinks them less than packing does.
    let ten_years = 10 * 365 * 86_400_000_000u64;
    let scattered: Vec<i64> = (0..n)
        .map(|_| 1_500_000_000_000_000 + random(ten_years) as i64)
        .collect();
    // 2,000 amounts in no order, then the same again: zstd finds the repeat, packing cannot.
    let amounts: Vec<i128> = (0..n / 2).map(|_| random(1_000_000_000) as i128).collect();
    let amounts: Vec<i128> = amounts.iter().chain(&amounts).copied().collect();
    let stamp = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let schema = Arc::new(Schema::new(vec![
        Field::new("Sequence", DataType::Int64, true),
        Field::new("Scattered", stamp, true),
        Field::new("Amount", DataType::Decimal128(18, 0), true),
    ]));
    let b = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(arrow::array::Int64Array::from(sequence.clone())),
            Arc::new(TimestampMicrosecondArray::from(scattered.clone()).with_timezone("UTC")),
            Arc::new(
                Decimal128Array::from(amounts.clone())
                    .with_precision_and_scale(18, 0)
                    .unwrap(),
            ),
        ],
    )
    .unwrap();
    let layout = |reader: &::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder<
        std::fs::File,
    >| {
        reader.metadata().row_group(0).columns()[..3]
            .iter()
            .map(|c| {
                format!(
                    "{} {} {:?}",
                    c.column_path().string(),
                    data_encodings(c),
                    c.compression()
                )
            })
            .collect::<Vec<_>>()
    };
    let read_back = |reader: ::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder<
        std::fs::File,
    >| {
        let batches: Vec<RecordBatch> = reader.build().unwrap().collect::<Result<_, _>>().unwrap();
        let all = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        (
            all.column(0)
                .as_primitive::<arrow::datatypes::Int64Type>()
                .values()
                .to_vec(),
            all.column(1)
                .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                .values()
                .to_vec(),
            all.column(2)
                .as_primitive::<arrow::datatypes::Decimal128Type>()
                .values()
                .to_vec(),
        )
    };
    let (_dir, reader) = written_alone(&b).await;
    assert_eq!(
        layout(&reader),
        [
            "Sequence DELTA_BINARY_PACKED UNCOMPRESSED",
            "Scattered DELTA_BINARY_PACKED UNCOMPRESSED",
            "Amount PLAIN ZSTD(ZstdLevel(1))",
        ]
    );
    assert_eq!(
        read_back(reader),
        (sequence.clone(), scattered.clone(), amounts.clone())
    );
    // `encodings: plain`: PLAIN pages, each column's codec judged as before (zstd would save
    // less than a fifth of the scattered times).
    let plain = ParquetOptions {
        encodings: crate::config::ParquetEncodings::Plain,
        ..ParquetOptions::default()
    };
    let (_dir, reader) = written_with(&b, plain).await;
    assert_eq!(
        layout(&reader),
        [
            "Sequence PLAIN ZSTD(ZstdLevel(1))",
            "Scattered PLAIN UNCOMPRESSED",
            "Amount PLAIN ZSTD(ZstdLevel(1))",
        ]
    );
    assert_eq!(read_back(reader), (sequence, scattered, amounts));
}

#[test]
fn streams_written_at_once_share_the_row_group_bound() {
    let parquet = || Destination::Parquet {
        location: open_location("memory:///x", &BTreeMap::new()).unwrap(),
        sync_id: "S1".into(),
        options: ParquetOptions::default(),
    };
    let bound = |d: &Destination| match d {
        Destination::Parquet { options, .. } => options.max_row_group_bytes,
        _ => unreachable!(),
    };
    let mut two = parquet();
    two.share_row_groups(2);
    assert_eq!(bound(&two), 8 << 20);
    let mut one = parquet();
    one.share_row_groups(1);
    assert_eq!(bound(&one), 16 << 20);
    // No streams at all divides by one, not by zero.
    let mut none = parquet();
    none.share_row_groups(0);
    assert_eq!(bound(&none), 16 << 20);
}
