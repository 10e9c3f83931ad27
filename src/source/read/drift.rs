//! Schema drift: before a stream is read, the fields its configured catalog selects (and their
//! JSON-schema types) are compared with what the org describes now.
//!
//! Why: between discover and read, or between two syncs, an admin deletes a field, hides it
//! from the integration user (field-level security), or changes its type. A query naming a
//! vanished field fails with `INVALID_FIELD`, and a retyped field's values do not fit the
//! columns earlier syncs wrote. Neither may pass silently: a vanished field follows
//! `schema_drift` (`fail` ends the stream, `ignore` reads on without it, with a warning), and a
//! changed type always ends the stream. New fields need nothing here: the next discover offers
//! them, and a catalog that selects them reads them. Pure, so every verdict is unit-tested.

use serde_json::{Map, Value};

use crate::config::SchemaDrift;

/// Columns sfetl adds itself (`_sfetl_deleted_at`, `_sfetl_cursor`): never drift.
const OWN_PREFIX: &str = "_sfetl_";

/// How a stream's selected fields differ from what the org offers now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drift {
    /// Selected fields the current schema no longer has, in catalog order.
    pub missing: Vec<String>,
    /// Selected fields whose type changed, in catalog order.
    pub retyped: Vec<Retyped>,
    /// For a missing field spelt close to fields the org has (a catalog edited by hand), those
    /// fields, nearest first: a misspelling and a deletion read alike otherwise.
    pub near: Vec<(String, Vec<String>)>,
}

/// One field whose type changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retyped {
    /// The field (or mapped column).
    pub field: String,
    /// Its type in the catalog, e.g. `number`.
    pub was: String,
    /// Its type now, e.g. `string` or `string (date-time)`.
    pub now: String,
}

impl Drift {
    /// Whether nothing differs.
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.retyped.is_empty()
    }
}

/// A property's non-null JSON type (`number`, `string`); `None` when it gives none (a
/// hand-written `{}`), which is then not compared.
fn base_type(schema: &Value) -> Option<&str> {
    match &schema["type"] {
        Value::String(t) => Some(t),
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null"),
        _ => None,
    }
}

/// A property's `format` or `contentEncoding` (`date-time`, `base64`).
fn detail(schema: &Value) -> Option<&str> {
    schema["format"]
        .as_str()
        .or_else(|| schema["contentEncoding"].as_str())
}

/// A property's type as named in messages: its non-null JSON type plus its format
/// (`string (date)`); `None` when it gives no type.
pub fn type_label(schema: &Value) -> Option<String> {
    let base = base_type(schema)?;
    Some(match detail(schema) {
        Some(d) => format!("{base} ({d})"),
        None => base.to_string(),
    })
}

/// Whether two property schemas give the same type: the same non-null JSON type, and the
/// same format when both give one (a catalog written without formats, as other tools write
/// them, is not drift).
fn same_type(was: &Value, now: &Value) -> bool {
    base_type(was) == base_type(now)
        && match (detail(was), detail(now)) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
}

/// Compares the catalog's `selected` properties with the `current` ones (the stream's JSON
/// schema properties as the org's describe, or the mapping over it, gives them now).
pub fn compare(selected: &Map<String, Value>, current: &Map<String, Value>) -> Drift {
    let mut drift = Drift::default();
    for (name, was) in selected {
        if name.starts_with(OWN_PREFIX) {
            continue;
        }
        let Some(now) = current.get(name) else {
            drift.missing.push(name.clone());
            let names: Vec<String> = current.keys().cloned().collect();
            let near = crate::catalog::names::closest(name, &names);
            if !near.is_empty() {
                drift.near.push((name.clone(), near));
            }
            continue;
        };
        if let (Some(a), Some(b)) = (type_label(was), type_label(now))
            && !same_type(was, now)
        {
            drift.retyped.push(Retyped {
                field: name.clone(),
                was: a,
                now: b,
            });
        }
    }
    drift
}

/// `A`, `A and B`, `A, B and C`.
fn list(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// The sentence naming the vanished fields of `object`, with the fields the describe has
/// near those spelt close to them.
fn missing_sentence(object: &str, drift: &Drift) -> String {
    let (noun, verb) = if drift.missing.len() == 1 {
        ("field", "is")
    } else {
        ("fields", "are")
    };
    let near = match drift.near.as_slice() {
        [] => String::new(),
        [(_, names)] if drift.missing.len() == 1 => {
            format!(": the describe has {}", names.join(" or "))
        }
        all => {
            let each: Vec<String> = all
                .iter()
                .map(|(field, names)| format!("{} near {field}", names.join(" or ")))
                .collect();
            format!(": the describe has {}", each.join(", "))
        }
    };
    format!(
        "the selected {noun} {} {verb} not in {object}'s describe (deleted, hidden from this user by field-level security, or misspelt{near})",
        list(&drift.missing)
    )
}

/// What the read does about `drift` of `object` under `policy`: `Ok(None)` when nothing
/// differs, `Ok(Some(warning))` to read on without the missing fields (`ignore`), `Err` with
/// the message ending the stream (`fail`, or any changed type).
pub fn verdict(object: &str, drift: &Drift, policy: SchemaDrift) -> Result<Option<String>, String> {
    let pronoun = if drift.missing.len() == 1 {
        "it"
    } else {
        "them"
    };
    let mut problems = Vec::new();
    if !drift.missing.is_empty() && policy == SchemaDrift::Fail {
        problems.push(missing_sentence(object, drift));
    }
    for r in &drift.retyped {
        problems.push(format!(
            "{} changed type: the catalog has {}, the org now has {}",
            r.field, r.was, r.now
        ));
    }
    if !problems.is_empty() {
        let hint = if drift.retyped.is_empty() {
            format!(", or set schema_drift to \"ignore\" to read the stream without {pronoun}")
        } else {
            String::new()
        };
        return Err(format!(
            "{}. Run `sfetl discover` again and refresh the configured catalog{hint}",
            problems.join("; ")
        ));
    }
    if drift.missing.is_empty() {
        return Ok(None);
    }
    Ok(Some(format!(
        "{object}: {}: reading the stream without {pronoun} (schema_drift is \"ignore\"). Run `sfetl discover` again to refresh the catalog",
        missing_sentence(object, drift)
    )))
}

/// The `properties` of a JSON schema (empty when it has none).
pub fn properties(schema: &Value) -> Map<String, Value> {
    schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn props(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn types_are_named_by_their_json_type_and_format() {
        assert_eq!(
            type_label(&json!({"type": ["null", "number"]})).as_deref(),
            Some("number")
        );
        assert_eq!(
            type_label(&json!({"type": "string"})).as_deref(),
            Some("string")
        );
        assert_eq!(
            type_label(&json!({"type": ["null", "string"], "format": "date-time"})).as_deref(),
            Some("string (date-time)")
        );
        assert_eq!(
            type_label(&json!({"type": ["null", "string"], "contentEncoding": "base64"}))
                .as_deref(),
            Some("string (base64)")
        );
        assert_eq!(type_label(&json!({})), None);
        assert_eq!(type_label(&json!({"type": ["null"]})), None);
    }

    #[test]
    fn missing_and_retyped_fields_are_found_in_catalog_order() {
        let selected = props(json!({
            "Id": {"type": ["null", "string"]},
            "Tier__c": {"type": ["null", "string"]},
            "Score__c": {"type": ["null", "number"]},
            "Since__c": {"type": ["null", "string"], "format": "date"},
            "Gone__c": {},
            "Hand__c": {},
            "Review__c": {"type": ["string", "null"]},
            "_sfetl_deleted_at": {"type": ["null", "string"]},
        }));
        let current = props(json!({
            "Id": {"type": "string"},
            "Tier__c": {"type": ["null", "string"]},
            "Score__c": {"type": ["null", "string"]},
            "Since__c": {"type": ["null", "string"], "format": "date-time"},
            "Hand__c": {"type": ["null", "boolean"]},
            "New__c": {"type": ["null", "string"]},
            "Review__c": {"type": ["null", "string"], "format": "time"},
        }));
        assert_eq!(
            compare(&selected, &current),
            Drift {
                missing: vec!["Gone__c".into()],
                retyped: vec![
                    Retyped {
                        field: "Score__c".into(),
                        was: "number".into(),
                        now: "string".into()
                    },
                    Retyped {
                        field: "Since__c".into(),
                        was: "string (date)".into(),
                        now: "string (date-time)".into()
                    },
                ],
                near: vec![],
            }
        );
        assert!(compare(&props(json!({"Id": {}})), &current).is_empty());
    }

    #[test]
    fn missing_fields_fail_or_warn_by_policy() {
        let drift = Drift {
            missing: vec!["Score_Reason__c".into(), "Tier__c".into()],
            retyped: vec![],
            near: vec![],
        };
        assert_eq!(
            verdict("Contact", &drift, SchemaDrift::Fail),
            Err("the selected fields Score_Reason__c and Tier__c are not in Contact's describe (deleted, hidden from this user by field-level security, or misspelt). Run `sfetl discover` again and refresh the configured catalog, or set schema_drift to \"ignore\" to read the stream without them".into())
        );
        let one = Drift {
            missing: vec!["Industry".into()],
            retyped: vec![],
            near: vec![],
        };
        assert_eq!(
            verdict("Account", &one, SchemaDrift::Ignore),
            Ok(Some("Account: the selected field Industry is not in Account's describe (deleted, hidden from this user by field-level security, or misspelt): reading the stream without it (schema_drift is \"ignore\"). Run `sfetl discover` again to refresh the catalog".into()))
        );
        assert_eq!(
            verdict("Account", &Drift::default(), SchemaDrift::Fail),
            Ok(None)
        );
    }

    #[test]
    fn a_changed_type_fails_under_either_policy() {
        let drift = Drift {
            missing: vec!["A__c".into(), "B__c".into(), "C__c".into()],
            retyped: vec![Retyped {
                field: "Score__c".into(),
                was: "number".into(),
                now: "string".into(),
            }],
            near: vec![],
        };
        assert_eq!(
            verdict("Contact", &drift, SchemaDrift::Ignore),
            Err("Score__c changed type: the catalog has number, the org now has string. Run `sfetl discover` again and refresh the configured catalog".into())
        );
        assert_eq!(
            verdict("Contact", &drift, SchemaDrift::Fail),
            Err("the selected fields A__c, B__c and C__c are not in Contact's describe (deleted, hidden from this user by field-level security, or misspelt); Score__c changed type: the catalog has number, the org now has string. Run `sfetl discover` again and refresh the configured catalog".into())
        );
    }

    #[test]
    fn a_misspelt_field_is_named_with_the_fields_spelt_close_to_it() {
        let current = props(json!({
            "Id": {"type": "string"},
            "Name": {"type": ["null", "string"]},
            "Industry": {"type": ["null", "string"]},
            "Rating": {"type": ["null", "string"]},
        }));
        let one = compare(&props(json!({"Id": {}, "Nmae": {}})), &current);
        assert_eq!(one.near, [("Nmae".to_string(), vec!["Name".to_string()])]);
        assert_eq!(
            verdict("Account", &one, SchemaDrift::Fail),
            Err("the selected field Nmae is not in Account's describe (deleted, hidden from this user by field-level security, or misspelt: the describe has Name). Run `sfetl discover` again and refresh the configured catalog, or set schema_drift to \"ignore\" to read the stream without it".into())
        );
        let three = compare(
            &props(json!({"Nmae": {}, "Indstry": {}, "Gone__c": {}})),
            &current,
        );
        assert_eq!(
            verdict("Account", &three, SchemaDrift::Fail),
            Err("the selected fields Nmae, Indstry and Gone__c are not in Account's describe (deleted, hidden from this user by field-level security, or misspelt: the describe has Name near Nmae, Industry near Indstry). Run `sfetl discover` again and refresh the configured catalog, or set schema_drift to \"ignore\" to read the stream without them".into())
        );
    }
}
