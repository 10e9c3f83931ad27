//! Schema drift under a mapping: the fields a mapping's expressions read that the org no
//! longer describes (deleted, or hidden from the user by field-level security), found before
//! compiling, so that `read` can end just the streams that need them (`schema_drift: fail`)
//! or read them as null (`ignore`) instead of refusing the whole mapping.

use std::collections::HashMap;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, Ident, visit_expressions_mut};

use super::model::Mapping;
use super::resolve::{Describes, Unresolved, resolve};
use crate::catalog::SObjectDescribe;
use crate::expr::{parse, rewrite_names};

/// A field a mapping reads that the describes lack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingField {
    /// The mapped stream.
    pub stream: String,
    /// The `from` object whose expression names it.
    pub object: String,
    /// The name as the expression writes it (`Email`, `Account.Industry`).
    pub path: String,
    /// The closest name the object has, when one is close (a typo rather than drift).
    pub suggestion: Option<String>,
}

impl MissingField {
    /// `Contact.Email`, `Contact.Account.Industry`: the field as a path from its object.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.object, self.path)
    }
}

/// Every field the mapping's expressions name that `describes` lack, once per stream, object
/// and name (as first written; names are case-insensitive, as in SOQL). Names the org never had (typos) are found too: they are indistinguishable.
pub fn missing_fields(
    mapping: &Mapping,
    describes: &HashMap<String, SObjectDescribe>,
) -> Vec<MissingField> {
    let index = Describes::new(describes);
    let mut out: Vec<MissingField> = Vec::new();
    for stream in &mapping.streams {
        for source in &stream.from {
            let Some(describe) = index.get(&source.object) else {
                continue;
            };
            for (_, text) in &source.columns {
                let Ok(mut expr) = parse(text) else { continue };
                let _ = rewrite_names(&mut expr, |parts| {
                    if let Err(Unresolved::Unknown { suggestions, .. }) =
                        resolve(&index, describe, parts)
                    {
                        let found = MissingField {
                            stream: stream.name.clone(),
                            object: describe.name.clone(),
                            path: parts.join("."),
                            suggestion: suggestions.into_iter().next(),
                        };
                        let path = &found.path;
                        if !out.iter().any(|m| {
                            m.stream == found.stream
                                && m.object == found.object
                                && m.path.eq_ignore_ascii_case(path)
                        }) {
                            out.push(found);
                        }
                    }
                    Ok::<_, ()>(String::new())
                });
            }
        }
    }
    out
}

/// The mapping with every use of a `missing` field replaced by `NULL` in the expressions of
/// its stream and object, so those columns read as null.
pub fn with_nulls(mapping: &Mapping, missing: &[MissingField]) -> Mapping {
    let mut out = mapping.clone();
    for stream in &mut out.streams {
        for source in &mut stream.from {
            let gone: Vec<String> = missing
                .iter()
                .filter(|m| {
                    m.stream == stream.name && m.object.eq_ignore_ascii_case(&source.object)
                })
                .map(|m| m.path.to_ascii_lowercase())
                .collect();
            if gone.is_empty() {
                continue;
            }
            for (_, text) in &mut source.columns {
                if let Some(rewritten) = null_out(text, &gone) {
                    *text = rewritten;
                }
            }
        }
    }
    out
}

/// `text` with the names in `gone` (lower case, dotted) replaced by `NULL`; `None` when it
/// does not parse or names none of them.
fn null_out(text: &str, gone: &[String]) -> Option<String> {
    let mut expr = parse(text).ok()?;
    let null = parse("NULL").ok()?;
    let mut changed = false;
    let _ = visit_expressions_mut(&mut expr, |e| {
        let idents: Vec<&Ident> = match e {
            SqlExpr::Identifier(i) => vec![i],
            SqlExpr::CompoundIdentifier(ids) => ids.iter().collect(),
            _ => return ControlFlow::<()>::Continue(()),
        };
        let name: Vec<&str> = idents.iter().map(|i| i.value.as_str()).collect();
        if gone.contains(&name.join(".").to_ascii_lowercase()) {
            *e = null.clone();
            changed = true;
        }
        ControlFlow::Continue(())
    });
    changed.then(|| expr.to_string())
}

/// The fields of `missing` that `stream` reads, as one list: `Contact.Email and
/// Contact.Account.Industry`, each with the closest name the object has, if any.
pub fn names_for(stream: &str, missing: &[MissingField]) -> Option<String> {
    let names: Vec<String> = missing
        .iter()
        .filter(|m| m.stream == stream)
        .map(|m| match &m.suggestion {
            Some(s) => format!("{} (did you mean {s}?)", m.qualified()),
            None => m.qualified(),
        })
        .collect();
    match names.as_slice() {
        [] => None,
        [one] => Some(one.clone()),
        [init @ .., last] => Some(format!("{} and {last}", init.join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::model::{SourceMapping, StreamMapping};

    fn describe(name: &str, fields: &[(&str, &str)]) -> SObjectDescribe {
        let fields: Vec<serde_json::Value> = fields
            .iter()
            .map(|(n, t)| {
                let mut f = serde_json::json!({"name": n, "type": t});
                if *n == "AccountId" {
                    f["referenceTo"] = serde_json::json!(["Account"]);
                    f["relationshipName"] = serde_json::json!("Account");
                }
                f
            })
            .collect();
        serde_json::from_value(
            serde_json::json!({"name": name, "queryable": true, "fields": fields}),
        )
        .unwrap()
    }

    fn mapping() -> Mapping {
        Mapping {
            streams: vec![StreamMapping {
                name: "person".into(),
                primary_key: None,
                from: vec![SourceMapping {
                    object: "Contact".into(),
                    soql_where: None,
                    columns: vec![
                        ("id".into(), "Id".into()),
                        ("email".into(), "lower(Email)".into()),
                        ("company".into(), "Account.Industry".into()),
                        ("label".into(), "concat(LastName, ' <', email, '>')".into()),
                    ],
                }],
            }],
        }
    }

    #[test]
    fn vanished_fields_are_found_and_read_as_null() {
        let describes = HashMap::from([
            (
                "Contact".to_string(),
                describe(
                    "Contact",
                    &[
                        ("Id", "id"),
                        ("LastName", "string"),
                        ("AccountId", "reference"),
                    ],
                ),
            ),
            (
                "Account".to_string(),
                describe("Account", &[("Id", "id"), ("Name", "string")]),
            ),
        ]);
        let missing = missing_fields(&mapping(), &describes);
        let want = |path: &str| MissingField {
            stream: "person".into(),
            object: "Contact".into(),
            path: path.into(),
            suggestion: None,
        };
        assert_eq!(
            missing,
            vec![want("Email"), want("Account.Industry")],
            "Email once, though two columns read it"
        );
        assert_eq!(
            names_for("person", &missing).as_deref(),
            Some("Contact.Email and Contact.Account.Industry")
        );
        assert_eq!(names_for("other", &missing), None);
        let columns: Vec<String> = with_nulls(&mapping(), &missing).streams[0].from[0]
            .columns
            .iter()
            .map(|(_, t)| t.clone())
            .collect();
        assert_eq!(
            columns,
            vec![
                "Id",
                "lower(NULL)",
                "NULL",
                "concat(LastName, ' <', NULL, '>')"
            ]
        );
    }
}
