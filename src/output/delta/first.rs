//! What a full refresh records in its history table, worked out from its rows as they arrive:
//! an empty history's first versions, written beside the stream table's own files, or the
//! changes to a history that holds versions.
//!
//! Every live row of a full refresh into an empty history becomes a first version: its
//! columns, current from its cursor until the end of time. Written once the table was
//! committed, they were read back from it, text cast back from views, and encoded again: perf
//! put about half of a 1M-row all-fields full refresh with history in that step. Written here
//! they share the table's decoded columns and add three, with no read and no cast (a fifth
//! less CPU for that refresh, and a lower peak of memory). The history still takes them in its
//! own commit after the table's, and only while it holds no version: a history that another
//! writer filled meanwhile, or whose columns are not these, leaves them uncommitted (a later
//! `VACUUM` removes them) and records the refresh as before
//! ([`super::history::record_replacement`]).
//!
//! Into a history that holds versions, the same rows are streamed past its current versions
//! as they arrive ([`super::changes::Diff`]), instead of reading the committed table back (8%
//! less CPU for a 1M-row all-fields refresh, and no second download of the table from an
//! object store). Where the history's files can be read directly ([`super::files`]), the rows
//! that add a version are written as versions then, as first versions are, and the commit
//! rewrites the history files holding a version they close or replace; else they are held for
//! a MERGE. Either is committed if the history is still at the version the changes were worked
//! out against, else they are worked out again from the table.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, TimestampMicrosecondArray};
use arrow::buffer::BooleanBuffer;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use deltalake::DeltaTable;
use deltalake::kernel::Add;

use super::DeltaError;
use super::changes::{Changes, Diff};
use super::commit::FileWriter;
use super::history::{self, OPEN_END, VALID_FROM, valid_from_column};
use super::rows::Keys;
use super::table::TableTarget;
use crate::config::Compression;

/// What a full refresh with history works out while its rows arrive.
pub(super) enum Recorder {
    /// The history holds no version: every row is a first version.
    First(Box<FirstVersions>),
    /// The history holds versions: the rows that change them, against its `version`; the
    /// new versions are written as they come when the history's files are read directly
    /// (`versions`), else held for a MERGE.
    Changes {
        diff: Box<Diff>,
        version: Option<u64>,
        versions: Option<Box<FirstVersions>>,
    },
}

/// What a [`Recorder`] worked out, for the history's commit after the table's.
pub(super) enum Recorded {
    /// First versions, written.
    First(WrittenVersions),
    /// The changes, found against the history at `version`, and the new versions' files when
    /// they were written as they came.
    Changes {
        changes: Changes,
        version: Option<u64>,
        versions: Option<WrittenVersions>,
    },
}

impl Recorder {
    /// The recorder for rows of `table_schema` (of `stream`) into the history at `target`. A
    /// history that holds versions is given the stream's new columns now (as its commit would),
    /// so that its changes are worked out as the rows come; `None` for a history with columns
    /// the stream no longer has (its changes are worked out at its commit).
    pub(super) async fn start(
        target: &TableTarget,
        keys: &Keys,
        table_schema: &SchemaRef,
        stream: &str,
        compression: Compression,
    ) -> Result<Option<Recorder>, DeltaError> {
        let first = || {
            Recorder::First(Box::new(FirstVersions::new(
                keys,
                table_schema,
                compression,
            )))
        };
        let Some(history) = target.open().await? else {
            return Ok(Some(first()));
        };
        if history::is_empty(target, &history).await? {
            return Ok(Some(first()));
        }
        let history = history::open(target, keys, table_schema, stream).await?;
        if !same_columns(target, &history, &history::schema(table_schema))? {
            return Ok(None);
        }
        let diff = Diff::of_history(target, &history, keys, table_schema, true).await?;
        let versions =
            (diff.direct()).then(|| Box::new(FirstVersions::new(keys, table_schema, compression)));
        Ok(Some(Recorder::Changes {
            diff: Box::new(diff),
            version: history.version(),
            versions,
        }))
    }

    /// Takes `rows`: live rows of the stream table's schema, as its own files take them.
    pub(super) async fn write(
        &mut self,
        target: &TableTarget,
        rows: &RecordBatch,
    ) -> Result<(), DeltaError> {
        match self {
            Recorder::First(first) => first.write(target, rows).await,
            Recorder::Changes { diff, versions, .. } => {
                let Some(adds) = diff.push(rows).map_err(|e| target.error(e))? else {
                    return Ok(());
                };
                match versions {
                    Some(versions) => versions.write(target, &adds).await,
                    None => {
                        diff.hold(adds);
                        Ok(())
                    }
                }
            }
        }
    }

    /// Completes what was worked out; `table_schema` is the rows' schema.
    pub(super) async fn close(
        self,
        target: &TableTarget,
        table_schema: &SchemaRef,
    ) -> Result<Recorded, DeltaError> {
        Ok(match self {
            Recorder::First(first) => Recorded::First(first.close(target).await?),
            Recorder::Changes {
                diff,
                version,
                versions,
            } => Recorded::Changes {
                changes: diff
                    .finish(table_schema.clone())
                    .map_err(|e| target.error(e))?,
                version,
                versions: match versions {
                    Some(v) => Some(v.close(target).await?),
                    None => None,
                },
            },
        })
    }
}

/// Whether `history` has exactly `schema`'s columns, each of the same type as Delta stores it
/// (the comparison a table's schema evolution makes, [`super::rows::compare`]), so that files
/// of `schema`'s rows are files of the history.
fn same_columns(
    target: &TableTarget,
    history: &DeltaTable,
    schema: &Schema,
) -> Result<bool, DeltaError> {
    let snapshot = history.snapshot().map_err(|e| target.error(e))?;
    let theirs = snapshot.snapshot().arrow_schema();
    let (added, changed) = super::rows::compare(&theirs, schema);
    Ok(added.is_empty() && changed.is_empty() && theirs.fields().len() == schema.fields().len())
}

/// The first versions being written while the stream's rows arrive.
pub(super) struct FirstVersions {
    /// The history table's schema: the stream table's and the three validity columns.
    schema: SchemaRef,
    /// The column each version is current from.
    from: String,
    files: FileWriter,
}

/// First versions whose files are complete, to be appended to the history in one commit.
pub(super) struct WrittenVersions {
    /// The schema they were written with.
    pub schema: SchemaRef,
    /// Their data files.
    pub files: Vec<Add>,
}

impl FirstVersions {
    /// First versions of rows of `table_schema`.
    fn new(keys: &Keys, table_schema: &SchemaRef, compression: Compression) -> FirstVersions {
        let schema = history::schema(table_schema);
        FirstVersions {
            files: FileWriter::new(&schema, compression),
            schema,
            from: valid_from_column(keys).to_string(),
        }
    }

    /// Writes the versions of `rows`: live rows of the stream table's schema, as its own files
    /// take them.
    async fn write(&mut self, target: &TableTarget, rows: &RecordBatch) -> Result<(), DeltaError> {
        let batch = versions(rows, &self.schema, &self.from).map_err(|e| target.error(e))?;
        self.files.write(target, &batch).await
    }

    /// Completes the last file.
    async fn close(self, target: &TableTarget) -> Result<WrittenVersions, DeltaError> {
        Ok(WrittenVersions {
            files: self.files.close(target).await?,
            schema: self.schema,
        })
    }
}

impl WrittenVersions {
    /// Whether `history` (opened for this refresh's commit, and holding no version) takes
    /// these files as they are: its columns are the ones written.
    pub(super) fn fit(
        &self,
        target: &TableTarget,
        history: &DeltaTable,
    ) -> Result<bool, DeltaError> {
        same_columns(target, history, &self.schema)
    }
}

/// `rows` as first versions: every column, then current from the `from` column until the end
/// of time. The stream's columns are shared, not copied.
fn versions(
    rows: &RecordBatch,
    schema: &SchemaRef,
    from: &str,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let n = rows.num_rows();
    let valid_from = schema.field_with_name(VALID_FROM)?.data_type();
    let cursor = rows.schema().index_of(from)?;
    let tz = Arc::<str>::from("UTC");
    let mut columns: Vec<ArrayRef> = rows.columns().to_vec();
    columns.push(arrow::compute::cast(rows.column(cursor), valid_from)?);
    columns.push(Arc::new(
        TimestampMicrosecondArray::from_value(OPEN_END, n).with_timezone(tz),
    ));
    columns.push(Arc::new(BooleanArray::new(BooleanBuffer::new_set(n), None)));
    RecordBatch::try_new(schema.clone(), columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray, StringArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit, TimestampMicrosecondType};

    #[test]
    fn versions_add_the_validity_columns_to_the_rows_as_they_are() {
        let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let table = Arc::new(Schema::new(vec![
            Field::new("Id", DataType::Utf8, false),
            Field::new("SystemModstamp", ts.clone(), true),
        ]));
        let ids: ArrayRef = Arc::new(StringArray::from(vec!["001A", "001B"]));
        let stamps = TimestampMicrosecondArray::from(vec![Some(5), Some(7)]).with_timezone("UTC");
        let rows =
            RecordBatch::try_new(table.clone(), vec![ids.clone(), Arc::new(stamps)]).unwrap();
        let out = versions(&rows, &history::schema(&table), "SystemModstamp").unwrap();
        assert_eq!(out.schema(), history::schema(&table));
        // The stream's columns are the same buffers.
        assert_eq!(
            out.column(0).to_data().buffers()[1].as_ptr(),
            ids.to_data().buffers()[1].as_ptr()
        );
        let col = |name: &str| out.column_by_name(name).unwrap().clone();
        let from = col(VALID_FROM);
        let from = from.as_primitive::<TimestampMicrosecondType>();
        assert_eq!(from.values().to_vec(), vec![5, 7]);
        let to = col(history::VALID_TO);
        let to = to.as_primitive::<TimestampMicrosecondType>();
        assert_eq!(to.values().to_vec(), vec![OPEN_END, OPEN_END]);
        let current = col(history::IS_CURRENT);
        assert_eq!(current.as_boolean().true_count(), 2);
        assert_eq!(current.null_count(), 0);
    }

    /// Rows of `table`: `Id`s with their `SystemModstamp`s.
    fn rows(table: &SchemaRef, ids: &[&str]) -> RecordBatch {
        let stamps = TimestampMicrosecondArray::from_iter_values(0..ids.len() as i64);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(ids.to_vec())),
            Arc::new(stamps.with_timezone("UTC")),
        ];
        RecordBatch::try_new(table.clone(), columns).unwrap()
    }

    /// Account's table (`Id`, `SystemModstamp`) and its keys.
    fn account() -> (SchemaRef, Keys) {
        let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let table = Arc::new(Schema::new(vec![
            Field::new("Id", DataType::Utf8, false),
            Field::new("SystemModstamp", ts, true),
        ]));
        let keys = Keys::of(&table, Some("SystemModstamp"));
        (table, keys)
    }

    /// The history table `name` in the folder `dir`.
    fn history_in(dir: &tempfile::TempDir, name: &str) -> TableTarget {
        let path = dir.path().to_str().unwrap();
        let location = crate::output::open_location(path, &Default::default()).unwrap();
        TableTarget::new(&location, name).unwrap()
    }

    /// Creates Account's history at `target` with `schema`, empty.
    async fn create(target: &TableTarget, schema: SchemaRef, keys: &Keys) -> DeltaTable {
        let props = super::super::table::properties("Account_history", &keys.key, Some(VALID_FROM));
        super::super::commit::create_or_theirs(target, &schema, props, "Account_history", &keys.key)
            .await
            .unwrap()
    }

    /// The first versions of Accounts `ids` as a first full refresh writes them.
    async fn first_versions(target: &TableTarget, ids: &[&str]) -> WrittenVersions {
        let (table, keys) = account();
        let start = Recorder::start(target, &keys, &table, "Account", Compression::Zstd);
        let mut first = start.await.unwrap().unwrap();
        assert!(matches!(first, Recorder::First(_)));
        first.write(target, &rows(&table, ids)).await.unwrap();
        let Recorded::First(written) = first.close(target, &table).await.unwrap() else {
            panic!("first versions")
        };
        written
    }

    /// The commit tag of `txn` `version`.
    fn tag(version: i64) -> super::super::state::CommitTag {
        super::super::state::CommitTag {
            app_id: "Account".into(),
            version,
            state: serde_json::json!({}),
        }
    }

    #[tokio::test]
    async fn written_versions_fit_only_a_history_of_their_columns() {
        let dir = tempfile::tempdir().unwrap();
        let target = history_in(&dir, "Account_history");
        let (table, keys) = account();
        // No history yet: first versions are written.
        let written = first_versions(&target, &["001A", "001B"]).await;
        assert_eq!(written.files.len(), 1);
        let history = create(&target, history::schema(&table), &keys).await;
        assert!(written.fit(&target, &history).unwrap());
        // An empty history with a column more (an older schema) does not take them.
        let older = history_in(&dir, "Older_history");
        let mut fields: Vec<Field> = (history::schema(&table).fields().iter())
            .map(|f| f.as_ref().clone())
            .collect();
        fields.insert(1, Field::new("Name", DataType::Utf8, true));
        let older_history = create(&older, Arc::new(Schema::new(fields)), &keys).await;
        assert!(!written.fit(&older, &older_history).unwrap());
    }

    /// Each version of `history`: Id, valid from and to (µs), and whether current.
    async fn versions_of(history: &DeltaTable) -> Vec<(String, i64, i64, bool)> {
        use arrow::datatypes::Int64Type;
        let ctx = datafusion::prelude::SessionContext::new();
        history::register(&ctx, "h", history).await.unwrap();
        let sql = "SELECT \"Id\", CAST(_sfetl_valid_from AS BIGINT), \
                   CAST(_sfetl_valid_to AS BIGINT), _sfetl_is_current FROM h ORDER BY 1, 2";
        let found = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let found = arrow::compute::concat_batches(&found[0].schema(), &found).unwrap();
        let ids = found.column(0).as_string_view();
        let from = found.column(1).as_primitive::<Int64Type>();
        let to = found.column(2).as_primitive::<Int64Type>();
        let current = found.column(3).as_boolean();
        (0..found.num_rows())
            .map(|i| {
                let id = ids.value(i).to_string();
                (id, from.value(i), to.value(i), current.value(i))
            })
            .collect()
    }

    /// Another writer's commit (its own app id) of a first version of Account `id`.
    async fn another_writer_adds(target: &TableTarget, table: &SchemaRef, id: &str) {
        let schema = history::schema(table);
        let mut files = super::super::commit::FileWriter::new(&schema, Compression::Zstd);
        let rows = versions(&rows(table, &[id]), &schema, "SystemModstamp").unwrap();
        files.write(target, &rows).await.unwrap();
        let files = files.close(target).await.unwrap();
        let fresh = target.open().await.unwrap().unwrap();
        let other = super::super::state::CommitTag {
            app_id: "Account/other".into(),
            ..tag(1)
        };
        let append = super::super::commit::append(target, fresh, files, &other);
        append.await.unwrap();
    }

    #[tokio::test]
    async fn a_later_refresh_writes_its_versions_and_rewrites_the_file_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let target = history_in(&dir, "Account_history");
        let (table, keys) = account();
        let written = first_versions(&target, &["001A", "001B"]).await;
        let history = create(&target, history::schema(&table), &keys).await;
        let history = super::super::commit::append(&target, history, written.files, &tag(1))
            .await
            .unwrap();
        // Once it holds versions, a refresh finds its changes against them: a new key, a
        // moved cursor, and a key no longer there.
        let again = Recorder::start(&target, &keys, &table, "Account", Compression::Zstd);
        let mut changes = again.await.unwrap().unwrap();
        let Recorder::Changes { version, .. } = &changes else {
            panic!("changes")
        };
        assert_eq!(*version, history.version());
        let refresh = RecordBatch::try_new(
            table.clone(),
            vec![
                Arc::new(StringArray::from(vec!["001B", "001C"])),
                Arc::new(TimestampMicrosecondArray::from(vec![9_000, 2]).with_timezone("UTC")),
            ],
        )
        .unwrap();
        changes.write(&target, &refresh).await.unwrap();
        let Recorded::Changes {
            changes,
            versions: Some(versions),
            ..
        } = changes.close(&target, &table).await.unwrap()
        else {
            panic!("changes, the new versions written as they came")
        };
        // Nothing held: the new versions are in files, and the one file holding 001A (gone)
        // and 001B (moved) is rewritten.
        assert!(changes.rows.is_empty() && changes.gone.is_empty());
        assert_eq!(versions.files.len(), 1);
        let fates = changes.fates.clone().unwrap();
        assert_eq!(fates.rewritten(), 1);
        let (removed, mut added) = fates.rewrite(&target, Compression::Zstd).await.unwrap();
        assert_eq!(removed.len(), 1);
        added.extend(versions.files.clone());
        // Another writer's commit of versions since the changes were worked out is a conflict
        // (they are then worked out again): the rewrite read the whole table.
        another_writer_adds(&target, &table, "001Z").await;
        let (stale, second) = (history.clone(), tag(2));
        let lost =
            super::super::commit::rewrite(&target, stale, removed.clone(), added.clone(), &second);
        let Err(err) = lost.await else {
            panic!("a conflict")
        };
        assert!(
            matches!(err, super::super::DeltaError::Conflict { .. }),
            "{err}"
        );
        // On top of it, the same files commit (its version kept).
        let mut history = history;
        history.update_state().await.unwrap();
        let second = tag(2);
        let commit = super::super::commit::rewrite(&target, history, removed, added, &second);
        let found = versions_of(&commit.await.unwrap()).await;
        let closed_now = found[0].2;
        assert!(closed_now > 1_700_000_000_000_000 && closed_now < OPEN_END);
        let want = [
            ("001A", 0, closed_now, false),
            ("001B", 1, 8_000, false),
            ("001B", 9_000, OPEN_END, true),
            ("001C", 2, OPEN_END, true),
            ("001Z", 0, OPEN_END, true),
        ];
        let want: Vec<(String, i64, i64, bool)> = (want.iter())
            .map(|(i, f, t, c)| (i.to_string(), *f, *t, *c))
            .collect();
        assert_eq!(found, want);
    }

    #[test]
    fn versions_name_a_missing_cursor_column() {
        let table = Arc::new(Schema::new(vec![Field::new("Id", DataType::Utf8, false)]));
        let ids: ArrayRef = Arc::new(StringArray::from(vec!["001A"]));
        let rows = RecordBatch::try_new(table.clone(), vec![ids]).unwrap();
        let err = versions(&rows, &history::schema(&table), "SystemModstamp").unwrap_err();
        assert!(err.to_string().contains("SystemModstamp"), "{err}");
    }
}
