//! A backfill of new fields called off when no row below the saved cursor holds a value in
//! them. A field an admin has just created is null in every existing row, and reading a large
//! object again to learn that would cost a whole read; a field shown again by field-level
//! security, a formula, a checkbox (`false`, not null) or one filled by a data load holds
//! values, and keeps its backfill. One REST count decides; fields SOQL cannot filter on (long
//! text areas, compound fields) keep the backfill.

use std::collections::HashMap;

use super::FetchError;
use super::plan::StreamPlan;
use crate::catalog::SObjectDescribe;
use crate::config::Config;
use crate::protocol::LogLevel;
use crate::salesforce::query::{fetch_page, first_page_url};
use crate::salesforce::{SalesforceClient, SalesforceError};
use crate::source::soql::datetime_literal;

/// For each object whose read starts again because of new fields alone, counts the rows
/// below its saved cursor (from `start_date`) holding a value in one of them; none: the read
/// goes on from the cursor, and its note says so instead.
pub(super) async fn confirm_backfills(
    client: &SalesforceClient,
    config: &Config,
    plan: &mut StreamPlan<'_>,
    describes: &HashMap<String, SObjectDescribe>,
) -> Result<(), FetchError> {
    for object in &mut plan.objects {
        let (Some(b), Some(cursor)) = (&object.backfill, object.cursor) else {
            continue;
        };
        let Some(valued) = describes
            .get(&object.object)
            .and_then(|d| countable(d, &b.fields))
        else {
            continue;
        };
        let mut soql = format!(
            "SELECT COUNT() FROM {} WHERE {cursor} < {} AND ({})",
            object.object,
            datetime_literal(b.cursor),
            valued.join(" OR ")
        );
        if let Some(start) = config.start_date {
            soql.push_str(&format!(" AND {cursor} >= {}", datetime_literal(start)));
        }
        let held = match fetch_page(client, &first_page_url(client, &soql, false), 2000).await {
            Ok(page) => page.total_size,
            // Salesforce would not count (a field it will not filter on after all): backfill.
            Err(SalesforceError::Api { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        if held > 0 {
            continue;
        }
        let them = if b.fields.len() == 1 { "it" } else { "them" };
        plan.notes[b.note] = (
            LogLevel::Info,
            format!(
                "{}: no row below the saved cursor holds a value in {them} (one count query), so the read goes on from the cursor",
                b.what
            ),
        );
        object.saved_at = Some(b.cursor);
        object.backfill = None;
    }
    Ok(())
}

/// `F != null` for each of `fields`, or `None` when one cannot be filtered on (or is not in
/// the describe, as a parent path is not): such fields keep the backfill.
fn countable(describe: &SObjectDescribe, fields: &[String]) -> Option<Vec<String>> {
    if fields.is_empty() {
        return None;
    }
    fields
        .iter()
        .map(|f| {
            let d = describe.field(f)?;
            let compound = matches!(d.kind.as_str(), "address" | "location" | "base64");
            (d.filterable && !compound).then(|| format!("{} != null", d.name))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_fields_soql_can_filter_on_are_counted() {
        let d: SObjectDescribe = serde_json::from_value(json!({
            "name": "Account",
            "fields": [
                {"name": "Tier__c", "type": "string"},
                {"name": "Vip__c", "type": "boolean"},
                {"name": "Notes__c", "type": "textarea", "filterable": false},
                {"name": "BillingAddress", "type": "address"}
            ]
        }))
        .unwrap();
        let names = |f: &[&str]| f.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            countable(&d, &names(&["tier__c", "Vip__c"])),
            Some(vec![
                "Tier__c != null".to_string(),
                "Vip__c != null".to_string()
            ])
        );
        for keeps_backfill in [
            &["Tier__c", "Notes__c"][..],
            &["BillingAddress"],
            &["Account.Name"],
            &[],
        ] {
            assert_eq!(
                countable(&d, &names(keeps_backfill)),
                None,
                "{keeps_backfill:?}"
            );
        }
    }
}
