//! Loads the config's field mapping and compiles it against the org's describes, for
//! `check`, `discover` and `read`.

use std::collections::HashMap;
use std::sync::Arc;

use super::FetchError;
use crate::catalog::SObjectDescribe;
use crate::config::{Config, SchemaDrift};
use crate::mapping::drift::{MissingField, missing_fields, names_for, with_nulls};
use crate::mapping::{Mapping, MappingPlan, check_objects, compile, describes_needed};
use crate::salesforce::{SalesforceClient, describe};

/// The compiled mapping of `config`, or `None` when it has none. Unknown objects or fields,
/// bad expressions and type conflicts are errors naming what to fix.
pub async fn load_plan(
    client: &SalesforceClient,
    config: &Config,
) -> Result<Option<Arc<MappingPlan>>, FetchError> {
    load(client, config, false).await
}

/// The compiled mapping for `read`: a stream whose expressions read fields the org no longer
/// describes (deleted, or hidden by field-level security) does not fail the whole mapping. Per
/// `schema_drift` it is left out with the message its read ends with (`fail`), or reads those
/// fields as null with a warning (`ignore`). Everything else is as [`load_plan`].
pub async fn load_plan_for_read(
    client: &SalesforceClient,
    config: &Config,
) -> Result<Option<Arc<MappingPlan>>, FetchError> {
    load(client, config, true).await
}

/// The compiled mapping for `discover`: with `schema_drift: ignore`, fields the org no longer
/// describes read as null (the plan's warnings say which), so the catalog can be refreshed;
/// with `fail`, as [`load_plan`] (the mapping must be fixed first).
pub async fn load_plan_for_discover(
    client: &SalesforceClient,
    config: &Config,
) -> Result<Option<Arc<MappingPlan>>, FetchError> {
    load(client, config, config.schema_drift == SchemaDrift::Ignore).await
}

async fn load(
    client: &SalesforceClient,
    config: &Config,
    drift_per_stream: bool,
) -> Result<Option<Arc<MappingPlan>>, FetchError> {
    let Some(source) = &config.mapping else {
        return Ok(None);
    };
    let mapping = Mapping::load(source)?;
    let global = describe::describe_global(client).await?;
    let names: Vec<String> = global.sobjects.into_iter().map(|o| o.name).collect();
    check_objects(&mapping, &names)?;
    let mut describes: HashMap<String, SObjectDescribe> = HashMap::new();
    loop {
        let needed = describes_needed(&mapping, &describes);
        if needed.is_empty() {
            break;
        }
        for (_, d) in describe::describe_many(client, needed).await {
            let d = d?;
            describes.insert(d.name.clone(), d);
        }
    }
    if !drift_per_stream {
        return Ok(Some(Arc::new(compile(&mapping, &describes)?)));
    }
    let missing = missing_fields(&mapping, &describes);
    let (mapping, drifted, warnings) = apply_drift(mapping, &missing, config.schema_drift);
    let mut plan = compile(&mapping, &describes)?;
    plan.drifted = drifted;
    plan.warnings = warnings;
    Ok(Some(Arc::new(plan)))
}

/// Per-stream messages: (stream, message).
type StreamMessages = Vec<(String, String)>;

/// The mapping to compile once `missing` fields are dealt with by `policy`, the streams left
/// out with their messages (`fail`), and the warnings of streams reading them as null
/// (`ignore`).
fn apply_drift(
    mapping: Mapping,
    missing: &[MissingField],
    policy: SchemaDrift,
) -> (Mapping, StreamMessages, StreamMessages) {
    let mut streams: Vec<String> = Vec::new();
    for m in missing {
        if !streams.contains(&m.stream) {
            streams.push(m.stream.clone());
        }
    }
    let gone = "which the org no longer describes (deleted, or hidden from this user by field-level security)";
    let about = |s: &String| {
        let names = names_for(s, missing).unwrap_or_default();
        let pronoun = if missing.iter().filter(|m| &m.stream == s).count() == 1 {
            "it"
        } else {
            "them"
        };
        (names, pronoun)
    };
    match policy {
        SchemaDrift::Fail => {
            let drifted = streams
                .iter()
                .map(|s| {
                    let (names, pronoun) = about(s);
                    (s.clone(), format!("the mapping reads {names}, {gone}. Run `sfetl discover` again and fix the mapping, or set schema_drift to \"ignore\" to read {pronoun} as null"))
                })
                .collect();
            let kept = Mapping {
                streams: mapping
                    .streams
                    .into_iter()
                    .filter(|s| !streams.contains(&s.name))
                    .collect(),
            };
            (kept, drifted, Vec::new())
        }
        SchemaDrift::Ignore => {
            let warnings = streams
                .iter()
                .map(|s| {
                    let (names, pronoun) = about(s);
                    (s.clone(), format!("{s}: the mapping reads {names}, {gone}: reading {pronoun} as null (schema_drift is \"ignore\"). Run `sfetl discover` again and fix the mapping"))
                })
                .collect();
            (with_nulls(&mapping, missing), Vec::new(), warnings)
        }
    }
}
