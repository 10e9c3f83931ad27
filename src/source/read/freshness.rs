//! What a row's own cursor cannot see, decided from the describe (pure, unit-tested).
//!
//! A read selects values that change while the row's `SystemModstamp` stays put:
//! - a parent's field (`Account.Name` in a mapping): renaming the Account moves only the
//!   Account's own `SystemModstamp`;
//! - a cross-object formula (`TEXT(Account.Industry)`): computed when read, from the parent;
//! - a time-based formula (`TODAY() - DATEVALUE(CreatedDate)`): different every day.
//!
//! - a mapping's `soql_where` on a parent's field (`Account.Industry = 'Banking'`): a row
//!   enters or leaves the filter when its parent changes.
//!
//! Those on a parent follow the parent's cursor ([`super::parents`]: the rows under parents
//! that changed in a window are read again, and for a filter the rows it no longer selects
//! there leave the stream); formulas of both kinds are also read again on the
//! `formula_refresh` schedule ([`super::formulas`]).

use crate::catalog::{SObjectDescribe, StreamSchema};

/// A parent relationship whose changes the read follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentDep {
    /// The relationship as the describe spells it (`Account`, `Parent__r`).
    pub relationship: String,
    /// The parent object (`Account`).
    pub object: String,
    /// The selected columns that depend on it (`Account.Name`, `Account_Name__c`).
    pub because: Vec<String>,
}

/// What [`ParentDep::because`] names for a mapping's `soql_where` on the parent's fields.
pub const FILTER: &str = "soql_where";

impl ParentDep {
    /// Whether the mapping's filter reads the parent's fields: rows under a changed parent
    /// may have left it.
    pub fn filters(&self) -> bool {
        self.because.iter().any(|b| b == FILTER)
    }

    /// The SOQL path of the parent's cursor (`Account.SystemModstamp`): every object a lookup
    /// can point to has `SystemModstamp`.
    pub fn cursor_path(&self) -> String {
        format!("{}.SystemModstamp", self.relationship)
    }
}

/// What keeps one object's values fresh beyond its own cursor.
#[derive(Debug, Clone, Default)]
pub struct Freshness {
    /// Parents to follow, in the order their columns are selected.
    pub parents: Vec<ParentDep>,
    /// Selected formula fields whose value changes without the row changing (time-based or
    /// cross-object), read again on the `formula_refresh` schedule.
    pub formulas: Vec<String>,
    /// For a stream of the object itself (not a mapping): `Id`, the cursor and
    /// [`Freshness::formulas`], the narrow read of a refresh.
    pub formula_schema: Option<StreamSchema>,
    /// What is not followed, and why (logged once per read).
    pub notes: Vec<String>,
}

impl Freshness {
    /// Whether the object needs nothing beyond its own cursor.
    pub fn is_empty(&self) -> bool {
        self.parents.is_empty() && self.formulas.is_empty()
    }
}

/// What `selected` (the SOQL paths a read selects: `Email`, `Account.Name`, formula names)
/// depends on beyond the row's own cursor. `narrow` asks for [`Freshness::formula_schema`].
pub fn analyse(describe: &SObjectDescribe, selected: &[String], narrow: bool) -> Freshness {
    let mut out = Freshness::default();
    for name in selected {
        if let Some((rel, rest)) = name.split_once('.') {
            if rest.contains('.') {
                out.notes.push(format!(
                    "{}: {name} is kept fresh for changes of {rel} only: changes further up ({}) reach it when the {} row itself changes",
                    describe.name,
                    name.rsplit_once('.').map_or(name.as_str(), |(p, _)| p),
                    describe.name
                ));
            }
            add_parent(&mut out, describe, rel, name);
            continue;
        }
        let Some(field) = describe.fields.iter().find(|f| &f.name == name) else {
            continue;
        };
        let Some(formula) = field
            .calculated_formula
            .as_deref()
            .filter(|_| field.calculated)
        else {
            continue;
        };
        let refs = formula_refs(formula);
        for rel in &refs.relationships {
            add_parent(&mut out, describe, rel, name);
        }
        if refs.time_based || !refs.relationships.is_empty() {
            out.formulas.push(name.clone());
        }
    }
    if narrow && !out.formulas.is_empty() {
        out.formula_schema = Some(StreamSchema::from_describe(describe, Some(&out.formulas)));
    }
    out
}

/// Adds the parents a mapping's `filter` (a `soql_where`) reads fields of
/// (`Account.Industry = 'Banking'`), as [`FILTER`]: a row enters or leaves the filter when its
/// parent changes, while its own cursor stays put.
pub fn follow_filter(out: &mut Freshness, describe: &SObjectDescribe, filter: &str) {
    for rel in formula_refs(filter).relationships {
        add_parent(out, describe, &rel, FILTER);
    }
}

/// Records that `column` depends on the parent reached by `rel`, when `rel` is a relationship
/// of one object (a polymorphic one, such as `Owner` or `What`, cannot be filtered on its
/// `SystemModstamp`: noted instead).
fn add_parent(out: &mut Freshness, describe: &SObjectDescribe, rel: &str, column: &str) {
    let Some(field) = describe.fields.iter().find(|f| {
        f.relationship_name
            .as_deref()
            .is_some_and(|r| r.eq_ignore_ascii_case(rel))
    }) else {
        return;
    };
    let relationship = field.relationship_name.clone().unwrap_or_default();
    let [object] = field.reference_to.as_slice() else {
        let note = format!(
            "{}: {column} is not refreshed when {relationship} changes: {relationship} can point to several objects ({}), and queries cannot filter on its SystemModstamp",
            describe.name,
            field.reference_to.join(", ")
        );
        if !out.notes.contains(&note) {
            out.notes.push(note);
        }
        return;
    };
    match out
        .parents
        .iter_mut()
        .find(|p| p.relationship == relationship)
    {
        Some(p) if !p.because.iter().any(|c| c == column) => p.because.push(column.to_string()),
        Some(_) => {}
        None => out.parents.push(ParentDep {
            relationship,
            object: object.clone(),
            because: vec![column.to_string()],
        }),
    }
}

/// What a formula's text refers to.
#[derive(Debug, Default, PartialEq, Eq)]
struct FormulaRefs {
    /// It calls `TODAY()`, `NOW()` or `TIMENOW()`.
    time_based: bool,
    /// The first relationship of each cross-object path (`Account` of `Account.Owner.Name`),
    /// in order, once each.
    relationships: Vec<String>,
    /// The plain names it reads (fields of its own object, and function names), in order,
    /// once each.
    names: Vec<String>,
}

/// The fields of the object's own that `formula` reads (names the describe has, found in its
/// text outside string literals): a formula reading another formula changes when that one's
/// definition does.
pub fn formula_reads<'d>(describe: &'d SObjectDescribe, formula: &str) -> Vec<&'d str> {
    formula_refs(formula)
        .names
        .iter()
        .filter_map(|n| {
            describe
                .fields
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case(n))
                .map(|f| f.name.as_str())
        })
        .collect()
}

/// Scans a formula's identifiers, skipping string literals and global variables (`$User.Id`).
fn formula_refs(text: &str) -> FormulaRefs {
    let mut out = FormulaRefs::default();
    let mut chars = text.chars();
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut FormulaRefs| {
        let t = std::mem::take(token);
        if t.starts_with('$') || t.is_empty() {
            return;
        }
        if ["TODAY", "NOW", "TIMENOW"]
            .iter()
            .any(|f| t.eq_ignore_ascii_case(f))
        {
            out.time_based = true;
        } else if let Some((rel, _)) = t.split_once('.') {
            if rel.starts_with(|c: char| c.is_alphabetic())
                && !out
                    .relationships
                    .iter()
                    .any(|r| r.eq_ignore_ascii_case(rel))
            {
                out.relationships.push(rel.to_string());
            }
        } else if t.starts_with(|c: char| c.is_alphabetic()) && !out.names.contains(&t) {
            out.names.push(t);
        }
    };
    while let Some(c) = chars.next() {
        if c == '"' || c == '\'' {
            flush(&mut token, &mut out);
            while let Some(d) = chars.next() {
                match d {
                    '\\' => {
                        chars.next();
                    }
                    d if d == c => break,
                    _ => {}
                }
            }
        } else if c.is_alphanumeric() || matches!(c, '_' | '.' | '$') {
            token.push(c);
        } else {
            flush(&mut token, &mut out);
        }
    }
    flush(&mut token, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn describe() -> SObjectDescribe {
        let field = |name: &str, kind: &str, extra: serde_json::Value| {
            let mut f = json!({"name": name, "type": kind});
            for (k, v) in extra.as_object().unwrap() {
                f[k] = v.clone();
            }
            f
        };
        serde_json::from_value(json!({"name": "Opportunity", "fields": [
            field("Id", "id", json!({})),
            field("Name", "string", json!({})),
            field("SystemModstamp", "datetime", json!({})),
            field("AccountId", "reference", json!({"relationshipName": "Account", "referenceTo": ["Account"]})),
            field("OwnerId", "reference", json!({"relationshipName": "Owner", "referenceTo": ["User", "Group"]})),
            field("Account_Industry__c", "string", json!({"calculated": true, "calculatedFormula": "TEXT(Account.Industry)"})),
            field("Days_Since_Created__c", "double", json!({"calculated": true, "calculatedFormula": "TODAY() - DATEVALUE(CreatedDate)"})),
            field("Weighted__c", "double", json!({"calculated": true, "calculatedFormula": "Amount * Probability / 100"})),
            field("Label__c", "string", json!({"calculated": true, "calculatedFormula": "\"Account.Name TODAY()\" & $User.Id & Name"})),
            field("Owner_Name__c", "string", json!({"calculated": true, "calculatedFormula": "Owner.Name"})),
        ]}))
        .unwrap()
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_filter_on_parent_fields_follows_those_parents() {
        let d = describe();
        let mut f = analyse(&d, &names(&["Id", "Account.Name"]), false);
        follow_filter(
            &mut f,
            &d,
            "account.Industry = 'Banking' AND Name != 'Owner.Name' AND Amount > 1.5",
        );
        assert_eq!(
            f.parents,
            vec![ParentDep {
                relationship: "Account".into(),
                object: "Account".into(),
                because: names(&["Account.Name", FILTER]),
            }]
        );
        assert!(f.parents[0].filters());
        let mut plain = Freshness::default();
        follow_filter(&mut plain, &d, "IsConverted = false");
        assert!(plain.is_empty());
    }

    #[test]
    fn formulas_that_change_without_their_row_are_found_and_their_parents_followed() {
        let d = describe();
        let f = analyse(
            &d,
            &names(&[
                "Id",
                "Name",
                "Account_Industry__c",
                "Days_Since_Created__c",
                "Weighted__c",
                "Label__c",
            ]),
            true,
        );
        assert_eq!(
            f.formulas,
            names(&["Account_Industry__c", "Days_Since_Created__c"])
        );
        assert_eq!(
            f.parents,
            vec![ParentDep {
                relationship: "Account".into(),
                object: "Account".into(),
                because: names(&["Account_Industry__c"]),
            }]
        );
        assert_eq!(f.parents[0].cursor_path(), "Account.SystemModstamp");
        let narrow: Vec<&str> = f
            .formula_schema
            .as_ref()
            .unwrap()
            .fields
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(
            narrow,
            [
                "Id",
                "SystemModstamp",
                "Account_Industry__c",
                "Days_Since_Created__c"
            ]
        );
        assert!(f.notes.is_empty());
    }

    #[test]
    fn mapped_parent_paths_are_followed_and_what_cannot_be_is_said() {
        let d = describe();
        let f = analyse(
            &d,
            &names(&[
                "Id",
                "account.Name",
                "Account.Owner.Name",
                "Owner.Name",
                "Name",
            ]),
            false,
        );
        assert_eq!(f.parents.len(), 1);
        assert_eq!(
            f.parents[0].because,
            names(&["account.Name", "Account.Owner.Name"])
        );
        assert!(f.formulas.is_empty() && f.formula_schema.is_none());
        assert_eq!(
            f.notes,
            names(&[
                "Opportunity: Account.Owner.Name is kept fresh for changes of Account only: changes further up (Account.Owner) reach it when the Opportunity row itself changes",
                "Opportunity: Owner.Name is not refreshed when Owner changes: Owner can point to several objects (User, Group), and queries cannot filter on its SystemModstamp",
            ])
        );
        assert!(analyse(&d, &names(&["Id", "Weighted__c"]), true).is_empty());
    }

    #[test]
    fn formula_text_scan_skips_literals_and_globals() {
        assert_eq!(
            formula_refs(
                "IF(ISPICKVAL(Account.Type, 'A.B'), NOW(), $User.Manager.Name) & Parent__r.Name & account.x"
            ),
            FormulaRefs {
                time_based: true,
                relationships: names(&["Account", "Parent__r"]),
                names: names(&["IF", "ISPICKVAL"]),
            }
        );
        assert_eq!(
            formula_refs("\"TODAY()\" & Name * 1.5"),
            FormulaRefs {
                names: names(&["Name"]),
                ..FormulaRefs::default()
            }
        );
    }
}
