//! The latest-version rules: which key, order and deletion flag a stream gets.

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
        latest_sql("Account_history", &c[..2], &plan, None),
        "SELECT \"Id\", \"Name\" FROM (SELECT *, lag(\"Id\") OVER (ORDER BY \"Id\" ASC NULLS LAST, \"SystemModstamp\" DESC NULLS LAST, \"_sfetl_extracted_at\" DESC NULLS LAST, \"_sfetl_sync_id\" DESC NULLS LAST) AS \"__sfetl_prev0\" FROM \"Account_history\") WHERE ((\"__sfetl_prev0\" IS DISTINCT FROM \"Id\") OR \"Id\" IS NULL) AND \"IsDeleted\" IS NOT TRUE"
    );
}

#[test]
fn a_stream_without_is_deleted_drops_the_rows_the_delete_log_reported() {
    let c = cols(&["Id", "Name", "SystemModstamp", "_sfetl_deleted_at"]);
    let plan = dedupe_plan(&c, None, None);
    assert_eq!(plan.deleted, cols(&["_sfetl_deleted_at"]));
    assert_eq!(
        latest_sql("Account_history", &c[..2], &plan, None),
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
        latest_sql("t_history", &c[..2], &plan, None),
        "SELECT \"source_object\", \"source_id\" FROM (SELECT *, lag(\"source_object\") OVER (ORDER BY \"source_object\" ASC NULLS LAST, \"source_id\" ASC NULLS LAST, \"_sfetl_cursor\" DESC NULLS LAST, \"_sfetl_sync_id\" DESC NULLS LAST) AS \"__sfetl_prev0\", lag(\"source_id\") OVER (ORDER BY \"source_object\" ASC NULLS LAST, \"source_id\" ASC NULLS LAST, \"_sfetl_cursor\" DESC NULLS LAST, \"_sfetl_sync_id\" DESC NULLS LAST) AS \"__sfetl_prev1\" FROM \"t_history\") WHERE ((\"__sfetl_prev0\" IS DISTINCT FROM \"source_object\") OR (\"__sfetl_prev1\" IS DISTINCT FROM \"source_id\") OR \"source_object\" IS NULL OR \"source_id\" IS NULL) AND \"_sfetl_is_deleted\" IS NOT TRUE"
    );
    // Metadata naming a column the files lack falls back; modified_at is a cursor candidate.
    let plan = dedupe_plan(&c, Some(r#"["nope"]"#), Some("gone"));
    assert_eq!(plan.key, Vec::<String>::new());
    assert_eq!(plan.order, cols(&["modified_at", "_sfetl_sync_id"]));
    assert_eq!(
        latest_sql("t_history", &c, &plan, None),
        "SELECT \"source_object\", \"source_id\", \"modified_at\", \"_sfetl_cursor\", \"_sfetl_is_deleted\", \"_sfetl_sync_id\" FROM \"t_history\" WHERE \"_sfetl_sync_id\" = (SELECT max(\"_sfetl_sync_id\") FROM \"t_history\") AND \"_sfetl_is_deleted\" IS NOT TRUE"
    );
}
