//! Calls about the org and the connection rather than its data: the identity URL, the API
//! versions the instance offers, the org's edition.

use serde_json::Value;

use super::{SalesforceClient, SalesforceError, query};

/// The identity document of the connected user (`organization_id`, `username`,
/// `display_name`...), from the token's identity URL.
pub async fn identity(
    client: &SalesforceClient,
    identity_url: &str,
) -> Result<Value, SalesforceError> {
    client.get_json(identity_url).await
}

/// The API versions the instance offers (`GET /services/data/`, no quota cost), e.g. `62.0`.
pub async fn api_versions(client: &SalesforceClient) -> Result<Vec<String>, SalesforceError> {
    let versions: Vec<Value> = client
        .get_json(&format!("{}/services/data/", client.instance_url()))
        .await?;
    Ok(versions
        .iter()
        .filter_map(|v| v.get("version").and_then(Value::as_str))
        .map(str::to_string)
        .collect())
}

/// The org's edition (`Organization.OrganizationType`, with "(sandbox)"), when the user may
/// read it.
pub async fn edition(client: &SalesforceClient) -> Option<String> {
    let rows = query::query_all_rows(
        client,
        "SELECT OrganizationType, IsSandbox FROM Organization LIMIT 1",
        false,
    )
    .await
    .ok()?;
    let org = rows.first()?;
    let kind = org.get("OrganizationType")?.as_str()?;
    let sandbox = org.get("IsSandbox").and_then(Value::as_bool) == Some(true);
    Some(if sandbox {
        format!("{kind} (sandbox)")
    } else {
        kind.to_string()
    })
}
