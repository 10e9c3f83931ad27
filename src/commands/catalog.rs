//! A configured catalog checked against the org before anything is read: the describe of each
//! raw stream, and describeGlobal for the stream names when a name is not plainly an object.
//! `read` and `check --catalog` call [`validate_catalog`]; the rules themselves are pure, in
//! `catalog::configured`.

use std::collections::HashMap;

use crate::catalog::configured::{field_problems, name_problems, objects_to_describe, plain_names};
use crate::catalog::{CatalogProblems, Offered};
use crate::error::Error;
use crate::mapping::MappingPlan;
use crate::protocol::ConfiguredAirbyteStream;
use crate::salesforce::{SalesforceClient, SalesforceError, describe};
use crate::source::FetchError;

/// Which selected fields [`validate_catalog`] checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldCheck {
    /// Every stream's (`check --catalog`): a field the org lacks is a catalog problem.
    All,
    /// Mapped streams' columns only (`read`): a raw stream's fields the org no longer has are
    /// schema drift, which each stream's read handles as `schema_drift` says.
    MappedOnly,
}

/// Checks `streams` against the org's objects and the mapping's streams: unsafe names,
/// duplicates, unknown streams, describes Salesforce refuses and unknown selected fields (as
/// `fields` says), all reported in one config error. Only names that passed are described
/// (never `../x`). The describes fetched stay with the client for the read's plans.
pub async fn validate_catalog(
    client: &SalesforceClient,
    streams: &[ConfiguredAirbyteStream],
    mapping: Option<&MappingPlan>,
    fields_checked: FieldCheck,
) -> Result<(), Error> {
    let objects = match exact_objects(client, streams, mapping).await {
        Some(names) => names,
        None => describe::describe_global(client)
            .await?
            .sobjects
            .into_iter()
            .map(|o| o.name)
            .collect(),
    };
    // Streams schema drift left out of the mapping are still the mapping's (their read
    // fails with the drift message).
    let mapped: Vec<String> = mapping
        .map(|m| {
            let names = m.streams.iter().map(|s| s.name.clone());
            names
                .chain(m.drifted.iter().map(|(s, _)| s.clone()))
                .collect()
        })
        .unwrap_or_default();
    let offered = Offered {
        objects: &objects,
        mapped: &mapped,
    };
    let mut problems = name_problems(streams, offered);
    let mut fields: HashMap<String, Vec<String>> = HashMap::new();
    for stream in mapping.iter().flat_map(|m| &m.streams) {
        let columns = stream.schema.fields().iter().map(|f| f.name().clone());
        fields.insert(stream.name.clone(), columns.collect());
    }
    let needed = objects_to_describe(streams, offered);
    // Describes are kept by the client (`describe::DescribeMemo`): the read's plans, and
    // `exact_objects` before this, reuse them.
    for (name, d) in describe::describe_many(client, needed).await {
        match d.map_err(FetchError::from) {
            Ok(d) => {
                if fields_checked == FieldCheck::All {
                    let names = d.fields.iter().map(|f| f.name.clone());
                    fields.insert(name, names.collect());
                }
            }
            Err(e) => match describe_refusal(&name, &e) {
                Some(text) => {
                    let i = streams.iter().position(|s| s.stream.name == name);
                    problems.push(format!("streams[{}] {name:?}: {text}", i.unwrap_or(0)));
                }
                None => return Err(e.into()),
            },
        }
    }
    problems.extend(field_problems(streams, &fields));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CatalogProblems(problems).into())
    }
}

/// The stream names as the org's objects, when there is no mapping, every name is plain (safe,
/// listed once) and Salesforce describes each under exactly that name: then the catalog's names
/// need no describeGlobal, an answer of 0.5-2 MB on a real org (514 objects, 524 KB, in
/// `fixtures/recorded`) fetched and parsed before every read. `None` when anything is off (an
/// unknown, misspelt or wrong-case name, a refusal, a failed call): describeGlobal then gives
/// the names to judge and suggest from.
async fn exact_objects(
    client: &SalesforceClient,
    streams: &[ConfiguredAirbyteStream],
    mapping: Option<&MappingPlan>,
) -> Option<Vec<String>> {
    if mapping.is_some() {
        return None;
    }
    let names = plain_names(streams)?;
    for (name, d) in describe::describe_many(client, names.clone()).await {
        // Salesforce describes `account` as `Account`: only the exact name is the object.
        d.ok().filter(|d| d.name == name)?;
    }
    Some(names)
}

/// What to tell about an object describeGlobal lists but whose describe Salesforce refused
/// (`None` for failures that are not a refusal: network, token, quota). It names the call that
/// failed and the likely cause, and never blames `api_version`, which describeGlobal just
/// proved right.
pub fn describe_refusal(object: &str, e: &FetchError) -> Option<String> {
    let FetchError::Salesforce(SalesforceError::Api {
        status,
        code,
        message,
    }) = e
    else {
        return None;
    };
    let cause = match *status {
        404 => {
            "this user cannot describe it (object permissions), or the object is not available through the REST API"
        }
        403 => "the connecting user lacks access to it (grant the object in a permission set)",
        _ => "Salesforce could not describe it",
    };
    Some(format!(
        "describeGlobal lists {object}, but GET sobjects/{object}/describe answered HTTP {status} {code} ({message}): {cause}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_describe_names_the_call_not_the_api_version() {
        let e = FetchError::Salesforce(SalesforceError::Api {
            status: 404,
            code: "NOT_FOUND".into(),
            message: "The requested resource does not exist".into(),
        });
        let text = describe_refusal("AccountFeed", &e).unwrap();
        assert_eq!(
            text,
            "describeGlobal lists AccountFeed, but GET sobjects/AccountFeed/describe answered HTTP 404 NOT_FOUND (The requested resource does not exist): this user cannot describe it (object permissions), or the object is not available through the REST API"
        );
        assert!(!text.contains("api_version"));
        assert_eq!(describe_refusal("X", &FetchError::Stopped), None);
    }
}
