//! The latest-version rules: which key, order and deletion flag a stream gets.

use super::latest::{LatestView, ViewSql};
use super::tables::{Dedupe, dedupe_plan, latest_sql};

fn cols(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn raw_streams_dedupe_on_id_by_systemmodstamp() {
    let c = cols(&[
        "Id",
        "Name",
        "IsDeleted",
        "SystemModstamp",
        "LastModifiedDate",
        "_sfetl_extracted_at",
        "_sfetl_sync_id",
    ]);
    let plan = dedupe_plan(&c, None, None);
    assert_eq!(
        plan,
        Dedupe {
            key: cols(&["Id"]),
            order: cols(&["SystemModstamp", "_sfetl_extracted_at", "_sfetl_sync_id"]),
            deleted: cols(&["IsDeleted"]),
        }
    );
    assert_eq!(
        latest_sql("Account_history", &c[..2], &plan, None, &[]),
        "SELECT \"Id\", \"Name\" FROM (SELECT *, lag(\"Id\") OVER (ORDER BY \"Id\" ASC NULLS LAST, \"SystemModstamp\" DESC NULLS LAST, \"_sfetl_extracted_at\" DESC NULLS LAST, \"_sfetl_sync_id\" DESC NULLS LAST) AS \"__sfetl_prev0\" FROM \"Account_history\") WHERE ((\"__sfetl_prev0\" IS DISTINCT FROM \"Id\") OR \"Id\" IS NULL) AND \"IsDeleted\" IS NOT TRUE"
    );
}

#[test]
fn a_stream_without_is_deleted_drops_the_rows_the_delete_log_reported() {
    let c = cols(&["Id", "Name", "SystemModstamp", "_sfetl_deleted_at"]);
    let plan = dedupe_plan(&c, None, None);
    assert_eq!(plan.deleted, cols(&["_sfetl_deleted_at"]));
    assert_eq!(
        latest_sql("Account_history", &c[..2], &plan, None, &[]),
        "SELECT \"Id\", \"Name\" FROM (SELECT *, lag(\"Id\") OVER (ORDER BY \"Id\" ASC NULLS LAST, \"SystemModstamp\" DESC NULLS LAST) AS \"__sfetl_prev0\" FROM \"Account_history\") WHERE ((\"__sfetl_prev0\" IS DISTINCT FROM \"Id\") OR \"Id\" IS NULL) AND \"_sfetl_deleted_at\" IS NULL"
    );
}

#[test]
fn mapped_streams_use_their_metadata() {
    let c = cols(&[
        "source_object",
        "source_id",
        "modified_at",
        "_sfetl_cursor",
        "_sfetl_is_deleted",
        "_sfetl_sync_id",
    ]);
    let plan = dedupe_plan(
        &c,
        Some(r#"["source_object","source_id"]"#),
        Some("_sfetl_cursor"),
    );
    assert_eq!(
        plan,
        Dedupe {
            key: cols(&["source_object", "source_id"]),
            order: cols(&["_sfetl_cursor", "_sfetl_sync_id"]),
            deleted: cols(&["_sfetl_is_deleted"]),
        }
    );
    assert_eq!(
        latest_sql("t_history", &c[..2], &plan, None, &[]),
        "SELECT \"source_object\", \"source_id\" FROM (SELECT *, lag(\"source_object\") OVER (ORDER BY \"source_object\" ASC NULLS LAST, \"source_id\" ASC NULLS LAST, \"_sfetl_cursor\" DESC NULLS LAST, \"_sfetl_sync_id\" DESC NULLS LAST) AS \"__sfetl_prev0\", lag(\"source_id\") OVER (ORDER BY \"source_object\" ASC NULLS LAST, \"source_id\" ASC NULLS LAST, \"_sfetl_cursor\" DESC NULLS LAST, \"_sfetl_sync_id\" DESC NULLS LAST) AS \"__sfetl_prev1\" FROM \"t_history\") WHERE ((\"__sfetl_prev0\" IS DISTINCT FROM \"source_object\") OR (\"__sfetl_prev1\" IS DISTINCT FROM \"source_id\") OR \"source_object\" IS NULL OR \"source_id\" IS NULL) AND \"_sfetl_is_deleted\" IS NOT TRUE"
    );
    // Metadata naming a column the files lack falls back; modified_at is a cursor candidate.
    let plan = dedupe_plan(&c, Some(r#"["nope"]"#), Some("gone"));
    assert_eq!(plan.key, Vec::<String>::new());
    assert_eq!(plan.order, cols(&["modified_at", "_sfetl_sync_id"]));
    assert_eq!(
        latest_sql("t_history", &c, &plan, None, &[]),
        "SELECT \"source_object\", \"source_id\", \"modified_at\", \"_sfetl_cursor\", \"_sfetl_is_deleted\", \"_sfetl_sync_id\" FROM \"t_history\" WHERE \"_sfetl_sync_id\" = (SELECT max(\"_sfetl_sync_id\") FROM \"t_history\") AND \"_sfetl_is_deleted\" IS NOT TRUE"
    );
}

/// The latest view's `lag` form keeps exactly the rows the `row_number() OVER (PARTITION BY
/// key ...)` form it replaced kept, over random histories: several versions per key in any
/// order, null ordering values (last, as NULLS LAST puts them), null keys (each kept), deleted
/// versions, and a key of two columns.
#[tokio::test]
async fn the_latest_view_keeps_what_row_number_per_key_kept() {
    use arrow::array::{BooleanArray, Int64Array, RecordBatch, StringArray};
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;
    use rand::{Rng, SeedableRng};
    use std::sync::Arc;

    let mut rng = rand::rngs::StdRng::seed_from_u64(17);
    for round in 0..20 {
        let n = 300;
        let pick = |rng: &mut rand::rngs::StdRng, values: &[&str]| -> Option<String> {
            let i = rng.random_range(0..=values.len());
            values.get(i).map(|v| v.to_string())
        };
        let mut objects = Vec::new();
        let mut ids = Vec::new();
        let mut stamps = Vec::new();
        let mut syncs = Vec::new();
        let mut deleted = Vec::new();
        let mut serial = Vec::new();
        for i in 0..n {
            objects.push(pick(&mut rng, &["Lead", "Contact"]));
            ids.push(pick(&mut rng, &["a", "b", "c", "d", "e", "f", "g", "h"]));
            // Distinct (stamp, sync) pairs within a key, so "latest" is one row either way.
            stamps.push((rng.random_range(0..5) != 0).then(|| i64::from(rng.random_range(0..4))));
            syncs.push(format!("s{:04}", i));
            deleted.push(rng.random_range(0..6) == 0);
            serial.push(i as i64);
        }
        let columns = cols(&[
            "source_object",
            "source_id",
            "_sfetl_cursor",
            "_sfetl_sync_id",
            "_sfetl_is_deleted",
            "serial",
        ]);
        let batch = RecordBatch::try_from_iter(vec![
            ("source_object", Arc::new(StringArray::from(objects)) as _),
            ("source_id", Arc::new(StringArray::from(ids)) as _),
            ("_sfetl_cursor", Arc::new(Int64Array::from(stamps)) as _),
            ("_sfetl_sync_id", Arc::new(StringArray::from(syncs)) as _),
            (
                "_sfetl_is_deleted",
                Arc::new(BooleanArray::from(deleted)) as _,
            ),
            ("serial", Arc::new(Int64Array::from(serial)) as _),
        ])
        .unwrap();
        let ctx = SessionContext::new();
        let table = MemTable::try_new(batch.schema(), vec![vec![batch]]).unwrap();
        ctx.register_table("t_history", Arc::new(table)).unwrap();
        let keys: &[&str] = if round % 2 == 0 {
            &["source_object", "source_id"]
        } else {
            &["source_id"]
        };
        let plan = Dedupe {
            key: cols(keys),
            order: cols(&["_sfetl_cursor", "_sfetl_sync_id"]),
            deleted: cols(&["_sfetl_is_deleted"]),
        };
        let quoted: Vec<String> = keys.iter().map(|k| format!("\"{k}\"")).collect();
        let keyless: String = quoted.iter().map(|k| format!(" OR {k} IS NULL")).collect();
        let by_rank = format!(
            "SELECT \"serial\" FROM (SELECT *, row_number() OVER (PARTITION BY {} ORDER BY \"_sfetl_cursor\" DESC NULLS LAST, \"_sfetl_sync_id\" DESC NULLS LAST) AS r FROM \"t_history\") WHERE (r = 1{keyless}) AND \"_sfetl_is_deleted\" IS NOT TRUE",
            quoted.join(", ")
        );
        let serials = |sql: String| {
            let ctx = ctx.clone();
            async move {
                let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
                let mut out: Vec<i64> = batches
                    .iter()
                    .flat_map(|b| {
                        let a = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                        a.values().to_vec()
                    })
                    .collect();
                out.sort_unstable();
                out
            }
        };
        let latest = format!(
            "SELECT \"serial\" FROM ({})",
            latest_sql("t_history", &columns, &plan, None, &[])
        );
        let expected = serials(by_rank.clone()).await;
        assert!(!expected.is_empty());
        assert_eq!(serials(latest).await, expected, "round {round}");

        // The same view as a table of its own: filters on the key go below its window, others
        // stay above; either way the rows are those of the filter applied to the view.
        let (view_columns, view_plan) = (columns.clone(), plan.clone());
        let sql: ViewSql = Box::new(move |filters: &[String]| {
            latest_sql("t_history", &view_columns, &view_plan, None, filters)
        });
        let schema = ctx.sql(&sql(&[])).await.unwrap().schema().inner().clone();
        let view = LatestView::new(schema, plan.key.clone(), sql);
        let _ = ctx.deregister_table("t");
        ctx.register_table("t", Arc::new(view)).unwrap();
        for filter in [
            "\"source_id\" IN ('a', 'c')",
            "\"source_id\" = 'b' OR \"source_id\" IS NULL",
            "\"source_id\" > 'e' AND \"serial\" % 2 = 0",
        ] {
            let every_column = by_rank.replacen("SELECT \"serial\"", "SELECT *", 1);
            let expected = serials(format!(
                "SELECT \"serial\" FROM ({every_column}) WHERE {filter}"
            ))
            .await;
            let got = serials(format!("SELECT \"serial\" FROM t WHERE {filter}")).await;
            assert_eq!(got, expected, "round {round}, {filter}");
        }
        // The key filter is below the window: read before the sort, not after it.
        let explain = ctx
            .sql("EXPLAIN SELECT \"serial\" FROM t WHERE \"source_id\" = 'b'")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let text = arrow::util::pretty::pretty_format_batches(&explain)
            .unwrap()
            .to_string();
        let window = text.find("BoundedWindowAggExec").expect("a window");
        let filter = text.find("FilterExec: source_id@").expect("the key filter");
        assert!(filter > window, "{text}");
    }
}

/// The latest view starts at the newest complete base sync, found reading the markers newest
/// first, a chunk at a time: here in the third chunk back, past a newer base sync unfinished.
#[tokio::test]
async fn the_newest_complete_base_sync_is_found_markers_back() {
    use crate::output::sync::SyncMarker;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let loc = crate::output::open_location(root, &Default::default()).unwrap();
    let id = |i: usize| format!("20250101T{:06}.000Z-aaaaaa", i);
    for i in 0..70 {
        let folder = dir.path().join("Lead").join(id(i));
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("part-00000.parquet"), b"not read").unwrap();
        let marker = SyncMarker {
            stream: "Lead".into(),
            sync_id: id(i),
            base: [2, 5, 68].contains(&i),
            resumed_from: None,
            complete: i != 68,
            slice: None,
        };
        marker.write(&loc).await.unwrap();
    }
    let export = super::export::Export::open(root).unwrap();
    let (mut streams, _) = export.streams(Some(&["Lead".to_string()])).await.unwrap();
    assert_eq!(streams[0].current_from, None);
    export.find_current_from(&mut streams[0]).await;
    assert_eq!(streams[0].current_from.as_deref(), Some(id(5).as_str()));
}
