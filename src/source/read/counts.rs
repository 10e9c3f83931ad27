//! The count query behind windows sized by rows: one REST aggregate query per object (rows per
//! calendar month of the cursor within the read's bounds), turned into [`sizing`] buckets.
//! Used by `read` (before its windows) and `sfetl plan` (for its slices).

use serde_json::Value;

use super::plan::Bounds;
use super::sizing::{self, Bucket};
use crate::salesforce::{SalesforceClient, SalesforceError, query};
use crate::source::soql::{self, Window};

/// Rows of `object` per calendar month of `cursor` in `b` (soft-deleted rows included, as a
/// `queryAll` read sees them), as buckets clipped to the bounds.
pub async fn month_buckets(
    client: &SalesforceClient,
    object: &str,
    cursor: &str,
    soql_where: Option<&str>,
    b: Bounds,
) -> Result<Vec<Bucket>, SalesforceError> {
    let window = Window {
        lower: b.lower,
        upper: b.upper,
    };
    let q = soql::count_by_month(object, cursor, window, soql_where);
    // A GROUP BY answer has no query locator: every group comes in this one page.
    let page = query::fetch_page(client, &query::first_page_url(client, &q, true), 2000).await?;
    let counts: Vec<(i32, u32, u64)> = page.records.iter().filter_map(month_count).collect();
    Ok(sizing::month_buckets(b, &counts))
}

/// `(year, month, rows)` of one `AggregateResult` record (`{"y": 2024, "m": 3, "n": 120}`).
fn month_count(r: &Value) -> Option<(i32, u32, u64)> {
    let int = |k: &str| r.get(k).and_then(Value::as_i64);
    Some((
        i32::try_from(int("y")?).ok()?,
        u32::try_from(int("m")?).ok()?,
        u64::try_from(int("n")?).ok()?,
    ))
}

/// Whether Salesforce refused the count query itself (an aggregate the object does not
/// support, a cursor it cannot group by, a count that timed out): the read then cuts its
/// windows by the calendar instead. Other failures (network, session, quota) are failures.
pub fn refused(e: &SalesforceError) -> bool {
    matches!(e, SalesforceError::Api { status, .. } if *status == 400)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::month_count;

    #[test]
    fn aggregate_records_by_alias() {
        let r = json!({"attributes": {"type": "AggregateResult"}, "y": 2024, "m": 3, "n": 120});
        assert_eq!(month_count(&r), Some((2024, 3, 120)));
        assert_eq!(month_count(&json!({"y": 2024, "m": 3})), None);
    }
}
