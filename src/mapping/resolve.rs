//! Names in expressions → Salesforce field paths, case-insensitively as SOQL does: plain fields
//! (`Email`), parent fields through relationships (`Account.Name`, `Account.Owner.Name`) and
//! compound components (`BillingAddress.country` → `BillingCountry`, which Bulk can select).

use std::collections::HashMap;

use arrow::datatypes::DataType;

pub(super) use crate::catalog::names::closest;
use crate::catalog::{FieldDescribe, SObjectDescribe, SfKind, arrow_type, compound_part, sf_kind};

/// A resolved name: the SOQL path to select and the Arrow type its values have.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Resolved {
    /// Canonical SOQL path (`Account.Name`, `BillingCountry`); also the batch column name.
    pub path: String,
    /// Arrow type of the values.
    pub data_type: DataType,
    /// For a compound component: the compound field and struct child it also lives in.
    pub compound: Option<(String, String)>,
}

/// Why a name did not resolve.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Unresolved {
    /// No such field on `on`.
    Unknown {
        /// Object where the lookup failed.
        on: String,
        /// Closest names, written in full as the user would.
        suggestions: Vec<String>,
    },
    /// A whole compound was used.
    WholeCompound {
        /// A component path to suggest.
        example: String,
    },
    /// A describe needed to follow a relationship is missing.
    MissingDescribe(String),
}

/// Describes by object name, looked up case-insensitively.
pub(super) struct Describes<'a> {
    by_lower: HashMap<String, &'a SObjectDescribe>,
}

impl<'a> Describes<'a> {
    pub(super) fn new(describes: &'a HashMap<String, SObjectDescribe>) -> Describes<'a> {
        Describes {
            by_lower: describes
                .values()
                .map(|d| (d.name.to_ascii_lowercase(), d))
                .collect(),
        }
    }

    pub(super) fn get(&self, object: &str) -> Option<&'a SObjectDescribe> {
        self.by_lower.get(&object.to_ascii_lowercase()).copied()
    }

    pub(super) fn names(&self) -> Vec<String> {
        self.by_lower.values().map(|d| d.name.clone()).collect()
    }
}

fn is_compound(f: &FieldDescribe) -> bool {
    matches!(sf_kind(&f.kind), SfKind::Address | SfKind::Location)
}

/// Components of a compound: (component field, struct child).
fn components<'d>(
    describe: &'d SObjectDescribe,
    compound: &str,
) -> Vec<(&'d FieldDescribe, &'static str)> {
    describe
        .fields
        .iter()
        .filter(|c| c.compound_field_name.as_deref() == Some(compound))
        .filter_map(|c| compound_part(&c.name).map(|p| (c, p)))
        .collect()
}

/// Resolves `parts` (a name split on dots) on `describe`: an own field, a component of a
/// compound field (`BillingAddress.city`), or a field of a parent through a relationship.
pub(super) fn resolve(
    describes: &Describes<'_>,
    describe: &SObjectDescribe,
    parts: &[String],
) -> Result<Resolved, Unresolved> {
    let (head, rest) = parts.split_first().expect("a name has at least one part");
    if rest.is_empty() {
        return resolve_own(describe, head);
    }
    if let Some(f) = describe.field(head).filter(|f| is_compound(f)) {
        return resolve_component(describe, f, parts);
    }
    let Some(reference) = describe.fields.iter().find(|f| {
        f.relationship_name
            .as_deref()
            .is_some_and(|r| r.eq_ignore_ascii_case(head))
    }) else {
        let rest_text = rest.join(".");
        let candidates: Vec<String> = describe
            .fields
            .iter()
            .filter_map(|f| {
                f.relationship_name
                    .clone()
                    .or_else(|| is_compound(f).then(|| f.name.clone()))
            })
            .collect();
        let suggestions = closest(head, &candidates)
            .into_iter()
            .map(|c| format!("{c}.{rest_text}"))
            .collect();
        return Err(Unresolved::Unknown {
            on: describe.name.clone(),
            suggestions,
        });
    };
    resolve_parent(describes, describe, reference, rest)
}

/// A field of the object itself (a whole compound field is refused with an example part).
fn resolve_own(describe: &SObjectDescribe, name: &str) -> Result<Resolved, Unresolved> {
    match describe.field(name) {
        Some(f) if is_compound(f) => Err(Unresolved::WholeCompound {
            example: components(describe, &f.name)
                .first()
                .map(|(_, p)| format!("{}.{p}", f.name))
                .unwrap_or_else(|| f.name.clone()),
        }),
        Some(f) => Ok(Resolved {
            path: f.name.clone(),
            data_type: arrow_type(f),
            compound: f.compound_field_name.as_ref().and_then(|c| {
                let parent = describe.field(c).filter(|p| is_compound(p))?;
                compound_part(&f.name).map(|p| (parent.name.clone(), p.to_string()))
            }),
        }),
        None => Err(Unresolved::Unknown {
            on: describe.name.clone(),
            suggestions: closest(
                name,
                &describe
                    .fields
                    .iter()
                    .map(|f| f.name.clone())
                    .collect::<Vec<_>>(),
            ),
        }),
    }
}

/// A component of the compound field `f`: `parts` is `[f, component]`.
fn resolve_component(
    describe: &SObjectDescribe,
    f: &FieldDescribe,
    parts: &[String],
) -> Result<Resolved, Unresolved> {
    let rest = &parts[1..];
    let parts_of = components(describe, &f.name);
    match (
        rest,
        parts_of
            .iter()
            .find(|(_, p)| p.eq_ignore_ascii_case(&rest[0])),
    ) {
        ([_], Some((c, p))) => Ok(Resolved {
            path: c.name.clone(),
            data_type: arrow_type(c),
            compound: Some((f.name.clone(), p.to_string())),
        }),
        _ => Err(Unresolved::Unknown {
            on: describe.name.clone(),
            suggestions: closest(
                &parts.join("."),
                &parts_of
                    .iter()
                    .map(|(_, p)| format!("{}.{p}", f.name))
                    .collect::<Vec<_>>(),
            ),
        }),
    }
}

/// `rest` on the parent(s) a reference points to (the first that resolves; else the first
/// error, its suggestions prefixed with the relationship).
fn resolve_parent(
    describes: &Describes<'_>,
    describe: &SObjectDescribe,
    reference: &FieldDescribe,
    rest: &[String],
) -> Result<Resolved, Unresolved> {
    let relationship = reference.relationship_name.clone().unwrap_or_default();
    let mut first_error = None;
    for target in &reference.reference_to {
        let Some(parent) = describes.get(target) else {
            first_error.get_or_insert(Unresolved::MissingDescribe(target.clone()));
            continue;
        };
        match resolve(describes, parent, rest) {
            Ok(r) => {
                return Ok(Resolved {
                    path: format!("{relationship}.{}", r.path),
                    data_type: r.data_type,
                    compound: None,
                });
            }
            Err(Unresolved::Unknown { on, suggestions }) => {
                first_error.get_or_insert(Unresolved::Unknown {
                    on,
                    suggestions: suggestions
                        .into_iter()
                        .map(|s| format!("{relationship}.{s}"))
                        .collect(),
                });
            }
            Err(Unresolved::WholeCompound { example }) => {
                first_error.get_or_insert(Unresolved::WholeCompound {
                    example: format!("{relationship}.{example}"),
                });
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or(Unresolved::Unknown {
        on: describe.name.clone(),
        suggestions: Vec::new(),
    }))
}

/// Objects whose describes are needed to resolve `parts` on `describe` and are missing.
pub(super) fn missing_describes(
    describes: &Describes<'_>,
    describe: &SObjectDescribe,
    parts: &[String],
    out: &mut Vec<String>,
) {
    match resolve(describes, describe, parts) {
        Err(Unresolved::MissingDescribe(_)) => {}
        _ => return,
    }
    // Follow the relationship to list every missing target, not only the first.
    let Some(reference) = describe.fields.iter().find(|f| {
        f.relationship_name
            .as_deref()
            .is_some_and(|r| r.eq_ignore_ascii_case(&parts[0]))
    }) else {
        return;
    };
    for target in &reference.reference_to {
        match describes.get(target) {
            None => {
                if !out.iter().any(|o| o == target) {
                    out.push(target.clone());
                }
            }
            Some(parent) => missing_describes(describes, parent, &parts[1..], out),
        }
    }
}
