//! `sfetl query` on Parquet exports written by sfetl's own writer: dedupe on the key by cursor,
//! deleted rows removed, history tables, every output format, and the error messages.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use sfetl::output::{ParquetFileWriter, ParquetOptions, open_location};

use crate::common::{manifest_dir, run_blocking};

/// 2025-01-01T10:00:00Z in µs.
const T10: i64 = 1_735_725_600_000_000;
const HOUR: i64 = 3_600_000_000;
const SYNC1: &str = "20250101T120000Z-aaaaaa";
const SYNC2: &str = "20250102T120000Z-bbbbbb";

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")))
}

fn account_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("Id", DataType::Utf8, false),
        Field::new("Name", DataType::Utf8, true),
        Field::new("IsDeleted", DataType::Boolean, true),
        Field::new("SystemModstamp", ts(), true),
    ]))
}

/// One Account row: Id, Name, IsDeleted, SystemModstamp (µs).
type AccountRow<'a> = (&'a str, &'a str, bool, i64);

fn account_rows(rows: &[AccountRow]) -> RecordBatch {
    let text = |values: Vec<&str>| -> ArrayRef { Arc::new(StringArray::from(values)) };
    RecordBatch::try_new(
        account_schema(),
        vec![
            text(rows.iter().map(|r| r.0).collect()),
            text(rows.iter().map(|r| r.1).collect()),
            Arc::new(BooleanArray::from(
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            )),
            Arc::new(
                TimestampMicrosecondArray::from(rows.iter().map(|r| r.3).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            ),
        ],
    )
    .unwrap()
}

/// A mapped stream as `sfetl read` writes it: the key is in the schema's metadata.
fn person_schema() -> SchemaRef {
    Arc::new(Schema::new_with_metadata(
        vec![
            Field::new("source_object", DataType::Utf8, true),
            Field::new("source_id", DataType::Utf8, true),
            Field::new("email", DataType::Utf8, true),
            Field::new("_sfetl_cursor", ts(), true),
            Field::new("_sfetl_is_deleted", DataType::Boolean, false),
        ],
        HashMap::from([
            (
                "sfetl.primary_key".to_string(),
                r#"["source_object","source_id"]"#.to_string(),
            ),
            ("sfetl.cursor".to_string(), "_sfetl_cursor".to_string()),
        ]),
    ))
}

fn person_rows(rows: &[(&str, &str, Option<&str>, i64, bool)]) -> RecordBatch {
    RecordBatch::try_new(
        person_schema(),
        vec![
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            )),
            Arc::new(
                TimestampMicrosecondArray::from(rows.iter().map(|r| r.3).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            ),
            Arc::new(BooleanArray::from(
                rows.iter().map(|r| r.4).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap()
}

async fn write(
    dir: &Path,
    stream: &str,
    sync: &str,
    schema: SchemaRef,
    batch: RecordBatch,
    at: i64,
) {
    let location = open_location(dir.to_str().unwrap(), &BTreeMap::new()).unwrap();
    let mut w = ParquetFileWriter::new(location, stream, sync, schema, ParquetOptions::default());
    w.write(&batch, at).await.unwrap();
    w.complete_file().await.unwrap().unwrap();
}

/// Two syncs of Account (an update, a deletion, a row re-read with the same SystemModstamp,
/// a new row) and of the mapped person stream.
async fn export(dir: &Path) {
    write(
        dir,
        "Account",
        SYNC1,
        account_schema(),
        account_rows(&[
            ("001A", "Acme", false, T10),
            ("001B", "Beta", false, T10),
            ("001C", "Gamma", false, T10),
        ]),
        T10 + 2 * HOUR,
    )
    .await;
    write(
        dir,
        "Account",
        SYNC2,
        account_schema(),
        account_rows(&[
            ("001A", "Acme Corp", false, T10 + HOUR),
            ("001B", "Beta", true, T10 + HOUR),
            ("001C", "Gamma", false, T10),
            ("001D", "Delta", false, T10 + HOUR),
        ]),
        T10 + 26 * HOUR,
    )
    .await;
    write(
        dir,
        "person",
        SYNC1,
        person_schema(),
        person_rows(&[
            ("Lead", "X1", Some("lead@x.org"), T10, false),
            ("Contact", "X1", Some("contact@x.org"), T10, false),
            ("Lead", "X2", Some("gone@x.org"), T10, false),
        ]),
        T10 + 2 * HOUR,
    )
    .await;
    write(
        dir,
        "person",
        SYNC2,
        person_schema(),
        person_rows(&[
            ("Lead", "X1", Some("new@x.org"), T10 + HOUR, false),
            ("Lead", "X2", None, T10 + HOUR, true),
        ]),
        T10 + 26 * HOUR,
    )
    .await;
}

fn query(dir: &Path, sql: &str, extra: &[&str]) -> (String, String, i32) {
    let mut args = vec!["query", "--path", dir.to_str().unwrap(), sql];
    args.extend_from_slice(extra);
    let out = run_blocking(&args);
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
        out.status.code().unwrap(),
    )
}

fn ok(dir: &Path, sql: &str, extra: &[&str]) -> String {
    let (stdout, stderr, code) = query(dir, sql, extra);
    assert_eq!(code, 0, "stderr: {stderr}");
    assert_eq!(stderr, "");
    stdout
}

#[tokio::test]
async fn latest_rows_as_a_table() {
    let dir = tempdir();
    export(dir.path()).await;
    assert_eq!(
        ok(
            dir.path(),
            "SELECT Id, Name, SystemModstamp, _sfetl_sync_id FROM Account ORDER BY Id",
            &[]
        ),
        "\
+------+-----------+----------------------+-------------------------+
| Id   | Name      | SystemModstamp       | _sfetl_sync_id          |
+------+-----------+----------------------+-------------------------+
| 001A | Acme Corp | 2025-01-01T11:00:00Z | 20250102T120000Z-bbbbbb |
| 001C | Gamma     | 2025-01-01T10:00:00Z | 20250102T120000Z-bbbbbb |
| 001D | Delta     | 2025-01-01T11:00:00Z | 20250102T120000Z-bbbbbb |
+------+-----------+----------------------+-------------------------+
"
    );
    // Lower-case names reach the same tables.
    assert_eq!(
        ok(dir.path(), "select count(*) as n from account", &[]),
        "\
+---+
| n |
+---+
| 3 |
+---+
"
    );
}

#[tokio::test]
async fn history_holds_every_row_of_every_sync() {
    let dir = tempdir();
    export(dir.path()).await;
    assert_eq!(
        ok(
            dir.path(),
            "SELECT _sfetl_sync_id, count(*) AS n, sum(CASE WHEN IsDeleted THEN 1 ELSE 0 END) AS deleted FROM Account_history GROUP BY _sfetl_sync_id ORDER BY _sfetl_sync_id",
            &["--format", "csv"]
        ),
        "_sfetl_sync_id,n,deleted\n20250101T120000Z-aaaaaa,3,0\n20250102T120000Z-bbbbbb,4,1\n"
    );
    assert_eq!(
        ok(
            dir.path(),
            "SELECT count(*) AS n FROM person_history",
            &["--format", "csv"]
        ),
        "n\n5\n"
    );
}

/// A mapping's stream `account` beside the raw stream `Account` (one export, as the people
/// mapping and a raw read write it): each name reaches its own stream, quoted or not, and the
/// lower-case alias of `Account` gives way to the stream really called `account`.
#[tokio::test]
async fn streams_whose_names_differ_in_case_each_keep_their_own_tables() {
    let dir = tempdir();
    export(dir.path()).await;
    write(
        dir.path(),
        "account",
        SYNC1,
        person_schema(),
        person_rows(&[("Account", "Z1", Some("z@x.org"), T10, false)]),
        T10 + 2 * HOUR,
    )
    .await;
    let count = |table: &str| {
        ok(
            dir.path(),
            &format!("SELECT count(*) AS n FROM {table}"),
            &["--format", "csv"],
        )
    };
    assert_eq!(count("\"Account\""), "n\n3\n");
    assert_eq!(count("\"Account_history\""), "n\n7\n");
    assert_eq!(count("account"), "n\n1\n");
    assert_eq!(count("\"account\""), "n\n1\n");
    assert_eq!(count("account_history"), "n\n1\n");
    assert_eq!(
        ok(
            dir.path(),
            "SELECT source_id FROM account",
            &["--format", "csv"]
        ),
        "source_id\nZ1\n"
    );
}

#[tokio::test]
async fn mapped_streams_dedupe_on_their_declared_key_as_csv_and_json() {
    let dir = tempdir();
    export(dir.path()).await;
    let sql = "SELECT source_object, source_id, email, _sfetl_cursor FROM person ORDER BY source_object, source_id";
    assert_eq!(
        ok(dir.path(), sql, &["--format", "csv"]),
        "source_object,source_id,email,_sfetl_cursor\nContact,X1,contact@x.org,2025-01-01T10:00:00Z\nLead,X1,new@x.org,2025-01-01T11:00:00Z\n"
    );
    assert_eq!(
        ok(dir.path(), sql, &["--format", "json"]),
        "{\"source_object\":\"Contact\",\"source_id\":\"X1\",\"email\":\"contact@x.org\",\"_sfetl_cursor\":\"2025-01-01T10:00:00Z\"}\n{\"source_object\":\"Lead\",\"source_id\":\"X1\",\"email\":\"new@x.org\",\"_sfetl_cursor\":\"2025-01-01T11:00:00Z\"}\n"
    );
    // An empty result still shows its columns.
    assert_eq!(
        ok(
            dir.path(),
            "SELECT source_id FROM person WHERE email IS NULL",
            &["--format", "csv"]
        ),
        "source_id\n"
    );
}

#[tokio::test]
async fn results_to_files() {
    let dir = tempdir();
    export(dir.path()).await;
    let out = tempdir();
    let csv = out.path().join("r.csv");
    assert_eq!(
        ok(
            dir.path(),
            "SELECT Id FROM Account ORDER BY Id",
            &["--format", "csv", "--out", csv.to_str().unwrap()]
        ),
        ""
    );
    assert_eq!(
        std::fs::read_to_string(&csv).unwrap(),
        "Id\n001A\n001C\n001D\n"
    );
    let pq = out.path().join("r.parquet");
    ok(
        dir.path(),
        "SELECT Id, Name FROM Account ORDER BY Id",
        &["--format", "parquet", "--out", pq.to_str().unwrap()],
    );
    let file = std::fs::File::open(&pq).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    // Plain text columns, which every Parquet reader takes (not DataFusion's string views).
    let types: Vec<String> = batches[0]
        .schema()
        .fields()
        .iter()
        .map(|f| f.data_type().to_string())
        .collect();
    assert_eq!(types, ["Utf8", "Utf8"]);
    let text = arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    assert_eq!(
        text,
        "\
+------+-----------+
| Id   | Name      |
+------+-----------+
| 001A | Acme Corp |
| 001C | Gamma     |
| 001D | Delta     |
+------+-----------+"
    );
    // Each column is written as an export's are, judged from the first batch: distinct names
    // without a dictionary (a dictionary of them was only cost), a picklist with one.
    let wide = out.path().join("wide.parquet");
    ok(
        dir.path(),
        "SELECT 'Acme ' || CAST((value * 7919) % 3000 AS VARCHAR) AS name, \
         CASE value % 3 WHEN 0 THEN 'Customer' WHEN 1 THEN 'Partner' ELSE 'Prospect' END AS kind \
         FROM generate_series(1, 3000)",
        &["--format", "parquet", "--out", wide.to_str().unwrap()],
    );
    let file = std::fs::File::open(&wide).unwrap();
    let meta = parquet::file::reader::SerializedFileReader::new(file).unwrap();
    let meta = parquet::file::reader::FileReader::metadata(&meta);
    let chunks: Vec<(String, Vec<String>)> = meta
        .row_group(0)
        .columns()
        .iter()
        .map(|c| {
            let encodings = c.encodings().map(|e| format!("{e:?}"));
            (
                c.column_path().string(),
                encodings.filter(|e| e != "RLE").collect(),
            )
        })
        .collect();
    assert_eq!(meta.file_metadata().num_rows(), 3000);
    assert_eq!(
        chunks,
        [
            ("name".to_string(), vec!["PLAIN".to_string()]),
            (
                "kind".to_string(),
                vec!["PLAIN".to_string(), "RLE_DICTIONARY".to_string()]
            ),
        ]
    );
    // An empty result is a file with the result's columns and no row.
    let none = out.path().join("none.parquet");
    ok(
        dir.path(),
        "SELECT Id, Name FROM Account WHERE Id = 'none'",
        &["--format", "parquet", "--out", none.to_str().unwrap()],
    );
    let file = std::fs::File::open(&none).unwrap();
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    assert_eq!(reader.metadata().file_metadata().num_rows(), 0);
    let names: Vec<&str> = reader
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(names, ["Id", "Name"]);
    // Rows go out as they come; a result that fails midway leaves no file behind.
    let bad = out.path().join("bad.parquet");
    let (stdout, stderr, code) = query(
        dir.path(),
        "SELECT CAST(Name AS INT) AS n FROM Account",
        &["--format", "parquet", "--out", bad.to_str().unwrap()],
    );
    assert_eq!((stdout.as_str(), code), ("", 2));
    assert_eq!(
        stderr,
        "sfetl: error: SQL error: Arrow error: Cast error: Cannot cast string 'Acme Corp' to value of Int32 type\n"
    );
    assert!(!bad.exists());
}

#[tokio::test]
async fn clear_errors() {
    let dir = tempdir();
    let missing = dir.path().join("nope");
    let (stdout, stderr, code) = query(&missing, "SELECT 1", &[]);
    assert_eq!((stdout.as_str(), code), ("", 2));
    assert_eq!(
        stderr,
        format!(
            "sfetl: error: no export at {}: cannot open the folder (No such file or directory (os error 2))\n",
            missing.display()
        )
    );
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (_, stderr, code) = query(&empty, "SELECT 1", &[]);
    assert_eq!(code, 2);
    assert_eq!(
        stderr,
        format!(
            "sfetl: error: no export at {}: no Parquet files laid out as <stream>/<sync-id>/part-NNNNN.parquet and no Delta tables; give the output.path of a read with output.format parquet or delta\n",
            std::fs::canonicalize(&empty).unwrap().display()
        )
    );
    export(dir.path()).await;
    let (stdout, stderr, code) = query(dir.path(), "SELECT * FROM Contact", &[]);
    assert_eq!((stdout.as_str(), code), ("", 2));
    assert_eq!(
        stderr,
        "sfetl: error: unknown table \"Contact\"; the export has: Account, Account_history, person, person_history\n"
    );
    let (_, stderr, code) = query(dir.path(), "SELEC Id FROM Account", &[]);
    assert_eq!(code, 2);
    assert_eq!(
        stderr,
        "sfetl: error: SQL error: Expected: an SQL statement, found: SELEC at Line: 1, Column: 1\n"
    );
    let (_, stderr, code) = query(dir.path(), "SELECT Nme FROM Account", &[]);
    assert_eq!(code, 2);
    assert_eq!(
        stderr,
        "sfetl: error: SQL error: Schema error: No field named \"Nme\". Did you mean '\"Account\".\"Name\"'?\nValid fields are \"Account\".\"Id\", \"Account\".\"Name\", \"Account\".\"IsDeleted\", \"Account\".\"SystemModstamp\", \"Account\"._sfetl_extracted_at, \"Account\"._sfetl_sync_id.\n"
    );
    let (_, stderr, code) = query(dir.path(), "DROP TABLE Account", &[]);
    assert_eq!(code, 2);
    assert_eq!(
        stderr,
        "sfetl: error: SQL error: Error during planning: DDL not supported: DropTable\n"
    );
    let (_, stderr, code) = query(dir.path(), "SELECT 1", &["--format", "parquet"]);
    assert_eq!(code, 2);
    assert_eq!(
        stderr,
        "sfetl: error: --format parquet writes a file: add --out FILE.parquet\n"
    );
}

/// `--memory-limit` bounds what a query holds: past it, its sorts spill to disk (DataFusion's
/// `spill_count`) and the answer is the same; a limit too small for one batch is a clear
/// error, and a size that is not one is refused.
#[tokio::test]
async fn a_memory_limit_spills_sorts_to_disk_and_says_when_it_is_too_small() {
    let dir = tempdir();
    let n = 300_000;
    let ids: Vec<String> = (0..n).map(|i| format!("001{i:015}")).collect();
    // Names in another order than the Ids, so that ordering by name sorts for real.
    let long = "with a name of some length ".repeat(4);
    let names: Vec<String> = (0..n)
        .map(|i| format!("Company {:07} {long}", (i * 7_919) % n))
        .collect();
    let rows: Vec<AccountRow> = (0..n)
        .map(|i| (ids[i].as_str(), names[i].as_str(), false, T10))
        .collect();
    write(
        dir.path(),
        "Account",
        SYNC1,
        account_schema(),
        account_rows(&rows),
        T10 + HOUR,
    )
    .await;
    let sql = "SELECT Id, Name FROM Account ORDER BY Name DESC";
    let free = ok(dir.path(), sql, &["--format", "csv"]);
    assert_eq!(free.lines().count(), n + 1);
    assert_eq!(
        free.lines().nth(1).unwrap(),
        format!("001{:015},Company {:07} {long}", 82_321, n - 1)
    );
    let bounded = ok(
        dir.path(),
        sql,
        &["--format", "csv", "--memory-limit", "96MB"],
    );
    assert!(bounded == free, "the bounded query's answer differs");
    let explain = ok(
        dir.path(),
        &format!("EXPLAIN ANALYZE {sql}"),
        &["--format", "csv", "--memory-limit", "96MB"],
    );
    let spills: u64 = explain
        .split("spill_count=")
        .skip(1)
        .map(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert!(spills > 0, "no sort spilled under 96 MB:\n{explain}");

    let (stdout, stderr, code) = query(dir.path(), sql, &["--memory-limit", "100KB"]);
    assert_eq!((stdout.as_str(), code), ("", 2));
    assert!(
        stderr.starts_with(
            "sfetl: error: the query needs more memory than --memory-limit allows (0.1 MB), in a part that cannot spill to disk (Failed to allocate additional "
        ) && stderr.ends_with("): raise --memory-limit, or select fewer columns or rows\n"),
        "{stderr}"
    );
    let (_, stderr, code) = query(dir.path(), sql, &["--memory-limit", "lots"]);
    assert_eq!(code, 2);
    assert!(
        stderr.starts_with(
            "error: invalid value 'lots' for '--memory-limit <SIZE>': \"lots\" is not a size: write a number and a unit, e.g. 512MB or 4GiB\n"
        ),
        "{stderr}"
    );
}

/// A temporary folder whose name does not start with a dot.
fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sfetl-query-")
        .tempdir()
        .unwrap()
}

/// The compiled people mapping, from the simulator's describes.
fn people_plan() -> sfetl::mapping::MappingPlan {
    let root = manifest_dir();
    let describes: HashMap<String, sfetl::catalog::SObjectDescribe> =
        ["Lead", "Contact", "Account"]
            .iter()
            .map(|o| {
                let text = std::fs::read_to_string(format!(
                    "{root}/crates/sfetl-sim/fixtures/describe_{o}.json"
                ))
                .unwrap();
                (o.to_string(), serde_json::from_str(&text).unwrap())
            })
            .collect();
    let mapping =
        sfetl::mapping::Mapping::from_file(&Path::new(&root).join("fixtures/mappings/people.yaml"))
            .unwrap();
    sfetl::mapping::compile(&mapping, &describes).unwrap()
}

/// A batch of a source's input schema from (column name, values) pairs; other columns null.
fn source_batch(schema: &SchemaRef, rows: usize, values: &[(&str, ArrayRef)]) -> RecordBatch {
    let columns = schema
        .fields()
        .iter()
        .map(|f| {
            values
                .iter()
                .find(|(n, _)| n == f.name())
                .map(|(_, a)| a.clone())
                .unwrap_or_else(|| arrow::array::new_null_array(f.data_type(), rows))
        })
        .collect();
    RecordBatch::try_new(schema.clone(), columns).unwrap()
}

#[tokio::test]
async fn a_mapped_export_from_the_real_plan_dedupes_on_its_declared_key() {
    let dir = tempdir();
    let plan = people_plan();
    let person = plan.stream("person").unwrap();
    let (lead, contact) = (&person.sources[0], &person.sources[1]);
    let strings = |v: &[&str]| -> ArrayRef { Arc::new(StringArray::from(v.to_vec())) };
    let stamps = |v: &[i64]| -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from(v.to_vec()).with_timezone("UTC"))
    };
    let flags = |v: &[bool]| -> ArrayRef { Arc::new(BooleanArray::from(v.to_vec())) };
    // Sync 1: two Leads and a Contact sharing an Id suffix; sync 2: one Lead changed, one deleted.
    let sync1 = [
        lead.evaluate(&source_batch(
            &lead.input_schema,
            2,
            &[
                ("Id", strings(&["00Q1", "00Q2"])),
                ("Email", strings(&["Ada@X.org", "Bob@X.org"])),
                ("FirstName", strings(&["Ada", "Bob"])),
                ("LastName", strings(&["Lovelace", "Byte"])),
                ("Company", strings(&["Engines", "Bits"])),
                ("SystemModstamp", stamps(&[T10, T10])),
                ("IsDeleted", flags(&[false, false])),
            ],
        ))
        .unwrap(),
        contact
            .evaluate(&source_batch(
                &contact.input_schema,
                1,
                &[
                    ("Id", strings(&["0031"])),
                    ("Email", strings(&["Cy@Y.org"])),
                    ("FirstName", strings(&["Cy"])),
                    ("LastName", strings(&["Borg"])),
                    ("Account.Name", strings(&["Acme"])),
                    ("SystemModstamp", stamps(&[T10])),
                    ("IsDeleted", flags(&[false])),
                ],
            ))
            .unwrap(),
    ];
    let sync2 = lead
        .evaluate(&source_batch(
            &lead.input_schema,
            2,
            &[
                ("Id", strings(&["00Q1", "00Q2"])),
                ("Email", strings(&["ADA@new.org", "Bob@X.org"])),
                ("FirstName", strings(&["Ada", "Bob"])),
                ("LastName", strings(&["King", "Byte"])),
                ("Company", strings(&["Engines", "Bits"])),
                ("SystemModstamp", stamps(&[T10 + HOUR, T10 + HOUR])),
                ("IsDeleted", flags(&[false, true])),
            ],
        ))
        .unwrap();
    let location = open_location(dir.path().to_str().unwrap(), &BTreeMap::new()).unwrap();
    let mut w = ParquetFileWriter::new(
        location.clone(),
        "person",
        SYNC1,
        person.schema.clone(),
        ParquetOptions::default(),
    );
    for b in &sync1 {
        w.write(b, T10 + 2 * HOUR).await.unwrap();
    }
    w.complete_file().await.unwrap().unwrap();
    let mut w = ParquetFileWriter::new(
        location,
        "person",
        SYNC2,
        person.schema.clone(),
        ParquetOptions::default(),
    );
    w.write(&sync2, T10 + 26 * HOUR).await.unwrap();
    w.complete_file().await.unwrap().unwrap();
    assert_eq!(
        ok(
            dir.path(),
            "SELECT source_object, source_id, email, full_name, company, modified_at FROM person ORDER BY source_id",
            &["--format", "csv"]
        ),
        "source_object,source_id,email,full_name,company,modified_at\nContact,0031,cy@y.org,Cy Borg,Acme,2025-01-01T10:00:00Z\nLead,00Q1,ada@new.org,Ada King,Engines,2025-01-01T11:00:00Z\n"
    );
    assert_eq!(
        ok(
            dir.path(),
            "SELECT source_object, count(*) AS n FROM person_history GROUP BY source_object ORDER BY source_object",
            &["--format", "csv"]
        ),
        "source_object,n\nContact,1\nLead,4\n"
    );
}
