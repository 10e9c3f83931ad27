//! Objects that Salesforce refuses to read the ordinary way, for structural reasons: some need a
//! filter on an id, some Bulk API 2.0 does not support, some have no `queryMore`, one accepts
//! only a few fields. A full-org read meets every one of them on day one; the simulated org has
//! one of each kind (see `crates/sfetl-sim/README.md` for the messages' sources).

use axum::http::StatusCode;
use axum::response::Response;

use super::server::sf_error;
use super::soql::{Expr, Op, Query};
use super::store::Store;

/// What an object refuses.
#[derive(Debug, Clone, Copy)]
pub enum Quirk {
    /// Bulk API 2.0 answers 400 `INVALIDENTITY` "Entity 'X' is not supported by the Bulk API."
    BulkUnsupported,
    /// Every query needs `=` or `IN` on one of these fields (a top-level AND term), else
    /// `MALFORMED_QUERY` with this message (REST at once, Bulk as a failed job).
    NeedsFilter(&'static [&'static str], &'static str),
    /// Results must fit one batch: more rows than the page answer `EXCEEDED_ID_LIMIT`.
    NoQueryMore,
    /// Only these fields may be selected (`INVALID_FIELD` with the message otherwise).
    SelectOnly(&'static [&'static str], &'static str),
    /// Polymorphic WhoId / WhatId: an API user without "View All Data" has every row's
    /// parents checked for sharing, and a query returning more rows than the check takes
    /// (`sharing_check_rows`) answers `OPERATION_TOO_LARGE` (REST at once, Bulk as a failed
    /// job).
    SharingChecked,
}

const CONTENT_DOCUMENT_LINK: &str = "Implementation restriction: ContentDocumentLink requires a filter by a single Id on ContentDocumentId or LinkedEntityId using the equals operator or multiple Id's using the IN operator.";
const USER_RECORD_ACCESS_FIELDS: &str =
    "Can select only RecordId, a Has*Access field, and MaxAccessLevel";
const USER_RECORD_ACCESS_FILTER: &str =
    "Implementation restriction: UserRecordAccess requires a filter by UserId and RecordId";

/// The quirks of an object, by name.
pub fn of(object: &str) -> &'static [Quirk] {
    match object {
        "AccountFeed" | "TaskStatus" | "CaseStatus" | "RecentlyViewed" => &[Quirk::BulkUnsupported],
        "ContentDocumentLink" => &[Quirk::NeedsFilter(
            &["ContentDocumentId", "LinkedEntityId", "Id"],
            CONTENT_DOCUMENT_LINK,
        )],
        "UserRecordAccess" => &[
            Quirk::BulkUnsupported,
            Quirk::SelectOnly(
                &[
                    "RecordId",
                    "HasReadAccess",
                    "HasEditAccess",
                    "HasDeleteAccess",
                    "HasTransferAccess",
                    "HasAllAccess",
                    "MaxAccessLevel",
                ],
                USER_RECORD_ACCESS_FIELDS,
            ),
            Quirk::NeedsFilter(&["UserId"], USER_RECORD_ACCESS_FILTER),
            Quirk::NeedsFilter(&["RecordId"], USER_RECORD_ACCESS_FILTER),
        ],
        "EntityDefinition" => &[Quirk::NoQueryMore],
        "Task" | "Event" => &[Quirk::SharingChecked],
        _ => &[],
    }
}

/// Whether `e` constrains one of `fields` to given ids (`=` or `IN` in a top-level AND term).
fn filters_on(e: &Expr, fields: &[&str]) -> bool {
    let named = |p: &super::soql::Path| {
        p.hops.is_empty() && fields.iter().any(|f| f.eq_ignore_ascii_case(&p.name))
    };
    match e {
        Expr::Cmp(p, Op::Eq, _) => named(p),
        Expr::In(p, _, false) | Expr::SemiJoin(p, _, false, _) => named(p),
        Expr::And(terms) => terms.iter().any(|t| filters_on(t, fields)),
        _ => false,
    }
}

/// The error code and message a query on a quirky object gets, wherever it runs.
fn query_refusal(q: &Query, name: &str) -> Option<(&'static str, &'static str)> {
    for quirk in of(name) {
        match *quirk {
            Quirk::SelectOnly(allowed, message) => {
                let other = q.fields.iter().any(|p| {
                    !p.hops.is_empty() || !allowed.iter().any(|a| a.eq_ignore_ascii_case(&p.name))
                });
                if other {
                    return Some(("INVALID_FIELD", message));
                }
            }
            Quirk::NeedsFilter(fields, message) => {
                if !q.filter.as_ref().is_some_and(|e| filters_on(e, fields)) {
                    return Some(("MALFORMED_QUERY", message));
                }
            }
            Quirk::BulkUnsupported | Quirk::NoQueryMore | Quirk::SharingChecked => {}
        }
    }
    None
}

/// A REST query's refusal (400), if its object has one for it.
#[allow(clippy::result_large_err)]
pub fn rest_refusal(store: &Store, q: &Query) -> Option<Response> {
    let name = &store.catalog.objects[q.object].name;
    query_refusal(q, name).map(|(code, message)| sf_error(StatusCode::BAD_REQUEST, code, message))
}

/// Rows a REST query page holds at most when the query selects two or more custom long text
/// fields, whatever `batchSize` asks.
const LONG_TEXT_BATCH: usize = 200;

/// The page size of a REST query: `asked` (`batchSize`, 200..2,000), but at most 200 rows
/// when the query selects two or more custom long text fields, as Salesforce caps it.
pub fn rest_batch(store: &Store, q: &Query, asked: usize) -> usize {
    let long_texts = q
        .fields
        .iter()
        .filter(|p| custom_long_text(store, q.object, p))
        .count();
    if long_texts >= 2 {
        asked.min(LONG_TEXT_BATCH)
    } else {
        asked
    }
}

/// Whether a selected path ends at a custom field of type long text area (`textarea` longer
/// than 255 characters), on the queried object or a parent.
fn custom_long_text(store: &Store, obj: usize, p: &crate::soql::Path) -> bool {
    let mut at = obj;
    for via in &p.hops {
        let target = store.catalog.objects[at].fields[via.ref_field]
            .reference_to
            .first()
            .and_then(|t| store.catalog.object(t));
        match target {
            Some(t) if !via.polymorphic => at = t,
            _ => return false,
        }
    }
    store.catalog.objects[at]
        .fields
        .get(p.field)
        .is_some_and(|f| f.name.ends_with("__c") && f.sf_type == "textarea" && f.length > 255)
}

/// A REST query's refusal once its result size is known: an object without `queryMore`
/// refuses results that need more than one page, and a sharing-checked one results bigger
/// than the check takes.
pub fn rest_page_refusal(
    store: &Store,
    q: &Query,
    total: usize,
    batch: usize,
    sharing_check_rows: usize,
) -> Option<Response> {
    size_refusal(store, q, total, batch, sharing_check_rows)
        .map(|(code, message)| sf_error(StatusCode::BAD_REQUEST, code, &message))
}

/// The error code and message of a query whose object refuses `total` result rows, given
/// the rows one batch holds and the rows the sharing check takes.
fn size_refusal(
    store: &Store,
    q: &Query,
    total: usize,
    batch: usize,
    sharing_check_rows: usize,
) -> Option<(&'static str, String)> {
    let name = &store.catalog.objects[q.object].name;
    of(name).iter().find_map(|quirk| match quirk {
        Quirk::NoQueryMore if total > batch => Some((
            "EXCEEDED_ID_LIMIT",
            format!(
                "{name} does not support queryMore(), use LIMIT to restrict the results to a single batch"
            ),
        )),
        Quirk::SharingChecked if total > sharing_check_rows => Some((
            "OPERATION_TOO_LARGE",
            format!("exceeded {sharing_check_rows} distinct who/what's"),
        )),
        _ => None,
    })
}

/// A Bulk query job's refusal at creation (400), if its object is not supported by Bulk.
pub fn bulk_refusal(store: &Store, q: &Query) -> Option<Response> {
    let name = &store.catalog.objects[q.object].name;
    of(name)
        .iter()
        .any(|k| matches!(k, Quirk::BulkUnsupported))
        .then(|| {
            sf_error(
                StatusCode::BAD_REQUEST,
                "INVALIDENTITY",
                &format!("Entity '{name}' is not supported by the Bulk API."),
            )
        })
}

/// Rows a Bulk query batch holds: an object without `queryMore` cannot go past it.
const BULK_BATCH: usize = 2_000;

/// The `errorMessage` of a Bulk job whose query its object refuses (the job ends `Failed`),
/// given how many rows it matched and the rows the sharing check takes. The text is Bulk's
/// batch failure (`InvalidBatch : Failed to process query: CODE: message`).
pub fn bulk_failure(
    store: &Store,
    q: &Query,
    matched: usize,
    sharing_check_rows: usize,
) -> Option<String> {
    let name = &store.catalog.objects[q.object].name;
    query_refusal(q, name)
        .map(|(c, m)| (c, m.to_string()))
        .or_else(|| size_refusal(store, q, matched, BULK_BATCH, sharing_check_rows))
        .map(|(code, message)| format!("InvalidBatch : Failed to process query: {code}: {message}"))
}
