//! Loads the config's field mapping and compiles it against the org's describes, for
//! `check`, `discover` and `read`.

use std::collections::HashMap;
use std::sync::Arc;

use super::FetchError;
use crate::catalog::SObjectDescribe;
use crate::config::Config;
use crate::mapping::{Mapping, MappingPlan, check_objects, compile, describes_needed};
use crate::salesforce::{SalesforceClient, describe};

/// The compiled mapping of `config`, or `None` when it has none. Unknown objects or fields,
/// bad expressions and type conflicts are errors naming what to fix.
pub async fn load_plan(
    client: &SalesforceClient,
    config: &Config,
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
    Ok(Some(Arc::new(compile(&mapping, &describes)?)))
}
