//! The org's describes of the objects the routes name, and `sfetl check`'s validation of the
//! `writeback` section against them.

use std::collections::HashMap;

use serde_json::Value;

use super::config::Writeback;
use super::error::SinkError;
use crate::catalog::SObjectDescribe;
use crate::salesforce::{SalesforceClient, SalesforceError, describe};

/// Describes every object the routes name; an object the org does not have is left out (the
/// check then names it), any other failure stops the run.
pub async fn fetch_describes(
    client: &SalesforceClient,
    writeback: &Writeback,
) -> Result<HashMap<String, SObjectDescribe>, SinkError> {
    let mut out = HashMap::new();
    for s in &writeback.streams {
        for r in &s.routes {
            if out.contains_key(&r.object) || r.object.is_empty() {
                continue;
            }
            match describe::describe(client, &r.object).await {
                Ok(d) => {
                    out.insert(r.object.clone(), d);
                }
                Err(SalesforceError::Api { status: 404, .. })
                | Err(SalesforceError::Api { status: 400, .. })
                | Err(SalesforceError::InvalidObjectName { .. }) => {}
                Err(e) => {
                    return Err(SinkError::Salesforce {
                        during: format!("describing {}", r.object),
                        source: e,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// Checks the config's `writeback` section against the org (for `sfetl check`): `Ok(None)`
/// when there is none, otherwise how many routes were checked.
pub async fn check_writeback(
    client: &SalesforceClient,
    raw: Option<&Value>,
) -> Result<Option<usize>, SinkError> {
    if raw.is_none() {
        return Ok(None);
    }
    let wb = Writeback::parse(raw).map_err(SinkError::Config)?;
    let describes = fetch_describes(client, &wb).await?;
    wb.check_describes(|o| describes.get(o).cloned())
        .map_err(SinkError::Config)?;
    Ok(Some(wb.streams.iter().map(|s| s.routes.len()).sum()))
}
