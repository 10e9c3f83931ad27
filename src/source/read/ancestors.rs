//! The objects above an object: the describes a relationship path passes through
//! (`Account.Owner.Name` from Contact passes through Account and ends at User), fetched level
//! by level, and the parents' formulas a read depends on.
//!
//! [`super::freshness`] says which objects it needs ([`super::freshness::Freshness::missing`]);
//! [`ancestors_of`] fetches them until nothing is missing. A parent's formula read through a
//! path (`ReportsTo.Account_Name__c`, or `Account.Score__c` inside a formula) changes every
//! row's value when an admin edits its definition, with no row's `SystemModstamp` moving:
//! [`parent_formula_definitions`] records those definitions with the object's read, as the
//! object's own formulas are, so an edit is noticed like a new field.

use std::collections::HashSet;

use super::FetchError;
use super::freshness::{self, Ancestors};
use crate::catalog::SObjectDescribe;
use crate::salesforce::{SalesforceClient, SalesforceError};

/// What [`parent_formula_definitions`] found: the entries, and the objects whose describes it
/// still needs.
#[derive(Debug, Default, PartialEq)]
pub struct ParentFormulas {
    /// `formula <path>.<Field> = <definition>` ([`crate::state::FORMULA_ENTRY`]).
    pub entries: Vec<String>,
    /// Objects at the end of a path whose describes are not known yet.
    pub missing: Vec<String>,
}

/// The definitions of the parents' formulas that `selected` reads: a selected path's last
/// field (`ReportsTo.Account_Name__c`), or a parent's field read by a selected formula of the
/// object's own (`Account.Score__c` in `TEXT(Account.Score__c)`), each when it is a formula,
/// then the formulas of the same parent those read in turn. Named by path, in order, once each.
pub fn parent_formula_definitions(
    describe: &SObjectDescribe,
    selected: &[String],
    ancestors: &Ancestors,
) -> ParentFormulas {
    let mut reads: Vec<String> = Vec::new();
    for name in selected {
        if name.contains('.') {
            reads.push(name.clone());
        } else if let Some(text) = freshness::formula_of(describe, name) {
            reads.extend(freshness::formula_parent_fields(text));
        }
    }
    let mut out = ParentFormulas::default();
    let mut seen = HashSet::new();
    for read in reads {
        let Some((path, field)) = read.rsplit_once('.') else {
            continue;
        };
        let Some(parent) = ancestors.reach(describe, path) else {
            if let Some(object) = end_object(describe, ancestors, path)
                && !ancestors.failed.contains_key(object)
                && !out.missing.iter().any(|m| m == object)
            {
                out.missing.push(object.to_string());
            }
            continue;
        };
        let prefix = format!("{path}.");
        let found = freshness::formula_definitions(parent, &prefix, vec![field.into()], &mut seen);
        out.entries.extend(found);
    }
    out
}

/// The object at the end of `path` when all of it is known but its last object's describe:
/// the one describe to fetch next.
fn end_object<'a>(
    describe: &'a SObjectDescribe,
    ancestors: &'a Ancestors,
    path: &str,
) -> Option<&'a str> {
    let (before, last) = match path.rsplit_once('.') {
        Some((before, last)) => (Some(before), last),
        None => (None, path),
    };
    let at = match before {
        Some(before) => ancestors.reach(describe, before)?,
        None => describe,
    };
    match freshness::relationship(at, last)?.reference_to.as_slice() {
        [object] => Some(object),
        _ => None,
    }
}

/// The describes `selected` (and a mapping's `filter`) need, fetched level by level until the
/// analysis misses none (one describe per object, memoized by the client). An object the user
/// may not describe (403, 404) is recorded as failed, which stops its paths with a note,
/// instead of failing the read.
pub async fn ancestors_of(
    client: &SalesforceClient,
    describe: &SObjectDescribe,
    selected: &[String],
    filter: Option<&str>,
) -> Result<Ancestors, FetchError> {
    let mut ancestors = Ancestors::default();
    loop {
        let missing = missing(describe, selected, filter, &ancestors);
        if missing.is_empty() {
            return Ok(ancestors);
        }
        // Each round describes objects not asked before, so the loop ends.
        for object in missing {
            match crate::salesforce::describe::describe(client, &object).await {
                Ok(d) => {
                    ancestors.describes.insert(object, d);
                }
                Err(
                    e @ SalesforceError::Api {
                        status: 403 | 404, ..
                    },
                ) => {
                    ancestors.failed.insert(object, e.to_string());
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// The objects whose describes the analyses of `selected` still need.
fn missing(
    describe: &SObjectDescribe,
    selected: &[String],
    filter: Option<&str>,
    ancestors: &Ancestors,
) -> Vec<String> {
    let mut missing = freshness::analyse_read(describe, selected, filter, false, ancestors).missing;
    for object in parent_formula_definitions(describe, selected, ancestors).missing {
        if !missing.contains(&object) {
            missing.push(object);
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn describe(name: &str, fields: serde_json::Value) -> SObjectDescribe {
        serde_json::from_value(json!({"name": name, "fields": fields})).unwrap()
    }

    fn contact() -> SObjectDescribe {
        describe(
            "Contact",
            json!([
                {"name": "Id", "type": "id"},
                {"name": "AccountId", "type": "reference", "relationshipName": "Account", "referenceTo": ["Account"]},
                {"name": "ReportsToId", "type": "reference", "relationshipName": "ReportsTo", "referenceTo": ["Contact"]},
                {"name": "Account_Name__c", "type": "string", "calculated": true, "calculatedFormula": "Account.Name"},
                {"name": "Account_Score__c", "type": "double", "calculated": true, "calculatedFormula": "Account.Score__c * 2"},
            ]),
        )
    }

    fn account() -> SObjectDescribe {
        describe(
            "Account",
            json!([
                {"name": "Id", "type": "id"},
                {"name": "Name", "type": "string"},
                {"name": "OwnerId", "type": "reference", "relationshipName": "Owner", "referenceTo": ["User"]},
                {"name": "Score__c", "type": "double", "calculated": true, "calculatedFormula": "Base__c + Bonus__c"},
                {"name": "Base__c", "type": "double", "calculated": true, "calculatedFormula": "AnnualRevenue / 1000"},
                {"name": "Bonus__c", "type": "double"},
            ]),
        )
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parents_formulas_read_by_paths_and_formulas_are_recorded_with_those_they_read() {
        let c = contact();
        let selected = names(&[
            "Id",
            "Account_Score__c",
            "Account_Name__c",
            "ReportsTo.Account_Name__c",
        ]);
        // The Account's describe first, then nothing more: the Contact's is the one given.
        let none = parent_formula_definitions(&c, &selected, &Ancestors::default());
        assert_eq!(none.missing, names(&["Account", "Contact"]));
        assert!(none.entries.is_empty());
        let mut ancestors = Ancestors::default();
        ancestors.describes.insert("Account".into(), account());
        ancestors.describes.insert("Contact".into(), contact());
        let found = parent_formula_definitions(&c, &selected, &ancestors);
        assert_eq!(
            found,
            ParentFormulas {
                entries: names(&[
                    "formula Account.Score__c = Base__c + Bonus__c",
                    "formula Account.Base__c = AnnualRevenue / 1000",
                    "formula ReportsTo.Account_Name__c = Account.Name",
                ]),
                missing: Vec::new(),
            }
        );
        assert_eq!(
            ancestors.reach(&c, "account").map(|d| d.name.as_str()),
            Some("Account")
        );
        assert!(ancestors.reach(&c, "Account.Owner").is_none());
    }

    #[test]
    fn a_parent_that_cannot_be_described_is_not_asked_for_again() {
        let c = contact();
        let mut ancestors = Ancestors::default();
        ancestors.failed.insert("Account".into(), "HTTP 403".into());
        let found = parent_formula_definitions(&c, &names(&["Account_Score__c"]), &ancestors);
        assert_eq!(found, ParentFormulas::default());
        assert!(missing(&c, &names(&["Account.Owner.Name"]), None, &ancestors).is_empty());
    }
}
