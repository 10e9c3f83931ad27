//! Validation of a configured catalog (the `--catalog` of `read` and `check`) against what the
//! org and the mapping offer, before any stream name reaches a URL or a path.
//!
//! Why before: a stream name is spliced into `sobjects/{name}/describe` and joined onto the
//! output folder, so a name like `../../x` would reach another endpoint and another folder. A
//! stream listed twice would be read twice at once into the same files. Every problem is
//! reported at once, naming the catalog entry, so a hand-written catalog is fixed in one pass.

use std::collections::HashMap;
use std::fmt;

use super::names::{check_safe_name, closest, did_you_mean};
use crate::protocol::ConfiguredAirbyteStream;

/// Selected field names starting with this are sfetl's own columns (`_sfetl_deleted_at`), not
/// Salesforce fields.
const OWN_COLUMN_PREFIX: &str = "_sfetl_";

/// Everything wrong with a configured catalog, one sentence per problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct CatalogProblems(pub Vec<String>);

impl fmt::Display for CatalogProblems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.len() {
            1 => f.write_str("The catalog has 1 problem: ")?,
            n => write!(f, "The catalog has {n} problems: ")?,
        }
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "({}) {p}", i + 1)?;
        }
        f.write_str(". Run `sfetl discover` to see the streams and fields this org offers.")
    }
}

/// What the org and the mapping offer, to check a configured catalog against.
#[derive(Debug, Clone, Copy)]
pub struct Offered<'a> {
    /// The org's object names (describeGlobal).
    pub objects: &'a [String],
    /// The mapping's stream names (they take precedence over objects of the same name).
    pub mapped: &'a [String],
}

impl Offered<'_> {
    fn is_mapped(&self, name: &str) -> bool {
        self.mapped.iter().any(|m| m == name)
    }
    fn is_object(&self, name: &str) -> bool {
        self.objects.iter().any(|o| o == name)
    }
}

/// `streams[3] "Acount"`: how messages name a catalog entry.
fn entry(index: usize, name: &str) -> String {
    format!("streams[{index}] {name:?}")
}

/// Problems with the stream names: unsafe names, duplicates (both entries named) and names
/// that are neither an org object nor a mapped stream (with the closest real names).
pub fn name_problems(streams: &[ConfiguredAirbyteStream], offered: Offered<'_>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut first_seen: HashMap<&str, usize> = HashMap::new();
    for (i, cs) in streams.iter().enumerate() {
        let name = cs.stream.name.as_str();
        if let Some(why) = check_safe_name(name) {
            problems.push(format!(
                "{} is not a stream name: {why} (Salesforce API names such as Account or Score__c); use a name from `sfetl discover`",
                entry(i, name)
            ));
            continue;
        }
        if let Some(&first) = first_seen.get(name) {
            problems.push(format!(
                "{} and {} are the same stream; list each stream once, with every field it needs in one json_schema",
                entry(first, name),
                entry(i, name)
            ));
            continue;
        }
        first_seen.insert(name, i);
        if offered.is_mapped(name) || offered.is_object(name) {
            continue;
        }
        let mut candidates: Vec<String> = offered.objects.to_vec();
        candidates.extend(offered.mapped.iter().cloned());
        problems.push(format!(
            "{}: the org has no object and the mapping no stream of that name{}",
            entry(i, name),
            did_you_mean(&closest(name, &candidates))
        ));
    }
    problems
}

/// The stream names, when every one is a safe name listed once: such a catalog can be checked
/// by describing its objects alone, without describeGlobal (see
/// `commands::catalog::validate_catalog`). `None` when any name needs the full check.
pub fn plain_names(streams: &[ConfiguredAirbyteStream]) -> Option<Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    for cs in streams {
        let name = &cs.stream.name;
        if check_safe_name(name).is_some() || names.contains(name) {
            return None;
        }
        names.push(name.clone());
    }
    Some(names)
}

/// The raw (not mapped) streams whose names passed [`name_problems`], once each: the objects
/// to describe before reading, for [`field_problems`] and so that a describe Salesforce refuses
/// is reported as such before any stream starts.
pub fn objects_to_describe(
    streams: &[ConfiguredAirbyteStream],
    offered: Offered<'_>,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for cs in streams {
        let name = &cs.stream.name;
        if check_safe_name(name).is_none()
            && !offered.is_mapped(name)
            && offered.is_object(name)
            && !out.contains(name)
        {
            out.push(name.clone());
        }
    }
    out
}

/// The fields a configured stream selects (`json_schema.properties`), or `None` for all.
pub fn selected_fields(cs: &ConfiguredAirbyteStream) -> Option<Vec<&str>> {
    let props = cs.stream.json_schema.get("properties")?.as_object()?;
    (!props.is_empty()).then(|| props.keys().map(String::as_str).collect())
}

/// Problems with selected fields: names the stream does not have. `fields` holds the known
/// field names per stream (describe fields for objects, columns for mapped streams); streams
/// not in it are not checked. sfetl's own `_sfetl_` columns are always allowed.
pub fn field_problems(
    streams: &[ConfiguredAirbyteStream],
    fields: &HashMap<String, Vec<String>>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, cs) in streams.iter().enumerate() {
        let (Some(selected), Some(known)) = (selected_fields(cs), fields.get(&cs.stream.name))
        else {
            continue;
        };
        let unknown: Vec<String> = selected
            .iter()
            .filter(|s| !s.starts_with(OWN_COLUMN_PREFIX) && !known.iter().any(|k| k == *s))
            .map(|s| {
                let hint = match closest(s, known).first() {
                    Some(c) => format!(" (did you mean {c}?)"),
                    None => String::new(),
                };
                format!("{s:?}{hint}")
            })
            .collect();
        if !unknown.is_empty() {
            problems.push(format!(
                "{} selects fields that {} does not have: {}; remove them from json_schema.properties",
                entry(i, &cs.stream.name),
                cs.stream.name,
                unknown.join(", ")
            ));
        }
    }
    problems
}

/// Checks a configured catalog: names first, then selected fields of the streams in `fields`.
/// Every problem is in the error.
pub fn validate(
    streams: &[ConfiguredAirbyteStream],
    offered: Offered<'_>,
    fields: &HashMap<String, Vec<String>>,
) -> Result<(), CatalogProblems> {
    let mut problems = name_problems(streams, offered);
    problems.extend(field_problems(streams, fields));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CatalogProblems(problems))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn stream(name: &str, fields: &[&str]) -> ConfiguredAirbyteStream {
        let props: serde_json::Map<String, Value> =
            fields.iter().map(|f| (f.to_string(), json!({}))).collect();
        serde_json::from_value(json!({
            "stream": {"name": name, "json_schema": {"type": "object", "properties": props},
                       "supported_sync_modes": ["full_refresh", "incremental"]},
            "sync_mode": "incremental",
            "destination_sync_mode": "append",
        }))
        .unwrap()
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let objects = strings(&["Account", "Contact", "Lead"]);
        let mapped = strings(&["person"]);
        let offered = Offered {
            objects: &objects,
            mapped: &mapped,
        };
        let streams = vec![
            stream("Contact", &["Id", "Email"]),
            stream("../../../../services/data/v62.0/sobjects/Account", &[]),
            stream("Contact", &["Id", "LastName"]),
            stream("Acount", &[]),
            stream("Account", &["Id", "Nmae", "Bogus", "_sfetl_deleted_at"]),
            stream("person", &["email", "phone"]),
            stream("Zebra", &[]),
        ];
        assert_eq!(
            objects_to_describe(&streams, offered),
            strings(&["Contact", "Account"])
        );
        let mut fields = HashMap::new();
        fields.insert(
            "Account".to_string(),
            strings(&["Id", "Name", "SystemModstamp"]),
        );
        fields.insert("Contact".to_string(), strings(&["Id", "Email", "LastName"]));
        fields.insert(
            "person".to_string(),
            strings(&["email", "full_name", "_sfetl_cursor"]),
        );
        let err = validate(&streams, offered, &fields).unwrap_err();
        assert_eq!(
            err.0,
            vec![
                "streams[1] \"../../../../services/data/v62.0/sobjects/Account\" is not a stream name: it must start with a letter or an underscore (Salesforce API names such as Account or Score__c); use a name from `sfetl discover`",
                "streams[0] \"Contact\" and streams[2] \"Contact\" are the same stream; list each stream once, with every field it needs in one json_schema",
                "streams[3] \"Acount\": the org has no object and the mapping no stream of that name; did you mean Account?",
                "streams[6] \"Zebra\": the org has no object and the mapping no stream of that name",
                "streams[4] \"Account\" selects fields that Account does not have: \"Nmae\" (did you mean Name?), \"Bogus\"; remove them from json_schema.properties",
                "streams[5] \"person\" selects fields that person does not have: \"phone\"; remove them from json_schema.properties",
            ]
        );
        assert!(
            err.to_string()
                .starts_with("The catalog has 6 problems: (1) streams[1] "),
            "{err}"
        );
        assert!(
            err.to_string()
                .ends_with("Run `sfetl discover` to see the streams and fields this org offers."),
            "{err}"
        );
    }

    #[test]
    fn a_discovered_selection_passes() {
        let objects = strings(&["Account"]);
        let offered = Offered {
            objects: &objects,
            mapped: &[],
        };
        let streams = vec![stream("Account", &["Id", "Name"])];
        let mut fields = HashMap::new();
        fields.insert("Account".to_string(), strings(&["Id", "Name"]));
        assert_eq!(validate(&streams, offered, &fields), Ok(()));
        // Not described (e.g. everything selected): names only.
        assert_eq!(validate(&streams, offered, &HashMap::new()), Ok(()));
    }
}
