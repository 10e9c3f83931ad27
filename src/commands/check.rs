//! `sfetl check` (the guides' "Test Connection"): validates the config, obtains a token, reads
//! the identity URL and describeGlobal, then on the same connection compiles the mapping (and
//! runs each `soql_where` with `LIMIT 1`), checks a `--catalog` and the writeback routes, and
//! reports one CONNECTION_STATUS: SUCCEEDED with who and where it connected, or FAILED with the
//! setting to fix.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::rotation::rotation_hook;
use crate::config::Config;
use crate::error::Error;
use crate::mapping::MappingPlan;
use crate::mapping::filter::parenthesized;
use crate::protocol::{AirbyteMessage, ConfiguredAirbyteCatalog, ConnectionStatus, Emitter};
use crate::salesforce::{ClientHooks, SalesforceClient, SalesforceError, describe, org, query};
use crate::transport::RetryPolicy;

/// Backoff of `check`: an admin is waiting, so give up sooner than a sync would, a busy org
/// included (the answer says so).
fn check_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(500),
        max_delay: Duration::from_secs(5),
        busy_attempts: 3,
    }
}

/// Why the connection test failed.
#[derive(Debug)]
enum CheckFailure {
    Salesforce(SalesforceError),
    /// `api_version` is not among the versions the org offers (`oldest` to `newest`).
    ApiVersion {
        wanted: String,
        oldest: String,
        newest: String,
    },
}

impl fmt::Display for CheckFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckFailure::Salesforce(e) => e.fmt(f),
            CheckFailure::ApiVersion {
                wanted,
                oldest,
                newest,
            } => {
                let fix = match version_number(wanted) {
                    n if n > version_number(newest) => format!("{newest} or lower"),
                    n if n < version_number(oldest) => format!("{oldest} or higher"),
                    _ => format!("one of them, such as {newest}"),
                };
                write!(
                    f,
                    "The org does not offer REST API version {wanted} (it offers {oldest} to {newest}): set api_version to {fix}."
                )
            }
        }
    }
}

impl From<SalesforceError> for CheckFailure {
    fn from(e: SalesforceError) -> Self {
        CheckFailure::Salesforce(e)
    }
}

/// What a successful check found.
struct Report {
    org_id: String,
    username: String,
    display_name: Option<String>,
    edition: Option<String>,
    instance: String,
    api_version: String,
    objects: usize,
    usage: Option<crate::salesforce::ApiUsage>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Connected to org {} as {}", self.org_id, self.username)?;
        if let Some(name) = &self.display_name {
            write!(f, " ({name})")?;
        }
        if let Some(edition) = &self.edition {
            write!(f, ", {edition}")?;
        }
        write!(
            f,
            "; instance {}; REST API v{}; {} objects visible",
            self.instance, self.api_version, self.objects
        )?;
        match &self.usage {
            Some(u) => write!(f, "; API usage {}/{} in the last 24 hours.", u.used, u.max),
            None => f.write_str("."),
        }
    }
}

pub(super) async fn run(config_path: &Path, catalog: Option<&Path>) -> Result<(), Error> {
    let config = match Config::from_file(config_path) {
        Ok(c) => c,
        Err(e) => {
            Emitter::stdout().emit(&AirbyteMessage::connection_status(
                ConnectionStatus::Failed,
                Some(e.to_string()),
            ))?;
            return Ok(());
        }
    };
    let emitter = Arc::new(Mutex::new(Emitter::stdout()));
    let sink = emitter.clone();
    let hooks = ClientHooks {
        on_refresh_token_rotated: Some(rotation_hook(&config, Some(config_path), move |m| {
            let _ = sink.lock().unwrap_or_else(|e| e.into_inner()).emit(&m);
        })),
        retry: check_retry(),
    };
    let status = match probe(&config, hooks).await {
        Ok((report, client)) => match beyond_connection(&client, &config, catalog).await {
            Ok(notes) => AirbyteMessage::connection_status(
                ConnectionStatus::Succeeded,
                Some(format!("{report}{notes}")),
            ),
            Err(message) => {
                AirbyteMessage::connection_status(ConnectionStatus::Failed, Some(message))
            }
        },
        Err(e) => AirbyteMessage::connection_status(ConnectionStatus::Failed, Some(e.to_string())),
    };
    emitter
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .emit(&status)?;
    Ok(())
}

/// What `check` validates once connected, on the same client (a second connection would use a
/// refresh token the first may have rotated): the mapping, each mapped `soql_where` run against
/// the org, the `--catalog` when given, and the writeback routes. Returns what to add to the
/// success message, or the failure message.
async fn beyond_connection(
    client: &SalesforceClient,
    config: &Config,
    catalog: Option<&Path>,
) -> Result<String, String> {
    future_start(config, client.org_now())?;
    let plan = crate::source::mapped::load_plan(client, config)
        .await
        .map_err(|e| format!("The connection works, but the field mapping is not valid: {e}"))?;
    if let Some(plan) = &plan {
        check_filters(client, plan).await.map_err(|problems| {
            format!(
                "The connection works, but Salesforce refuses the mapping's soql_where: {}",
                problems.join("; ")
            )
        })?;
    }
    let mut notes = String::new();
    if let Some(path) = catalog {
        let n = check_catalog(client, path, plan.as_deref())
            .await
            .map_err(|e| format!("The connection works, but the catalog is not valid: {e}"))?;
        notes.push_str(&format!(" Catalog: {n} stream(s) valid against the org."));
    }
    let routes = crate::sink::check_writeback(client, config.writeback.as_ref())
        .await
        .map_err(|e| {
            format!("The connection works, but the writeback section is not valid: {e}")
        })?;
    if let Some(n) = routes {
        notes.push_str(&format!(
            " Writeback: {n} route(s) valid against the org's describes."
        ));
    }
    if let Some(lead) = client.org_clock().lead() {
        let text = crate::salesforce::clock::lead_warning(lead);
        notes.push_str(&format!(" Warning: {text}."));
    }
    Ok(notes)
}

/// Refuses a `start_date` still to come (a mistyped year, most often): a read would find no
/// row, and its STATE would start the next read at the time of that read, before the
/// start_date.
fn future_start(config: &Config, now: chrono::DateTime<chrono::Utc>) -> Result<(), String> {
    match config.start_date {
        Some(start) if start > now => Err(format!(
            "The connection works, but start_date {} is in the future (it is now {}): a read would find no row. Give a start_date in the past, or leave it out to read every row",
            start.format("%Y-%m-%dT%H:%M:%SZ"),
            now.format("%Y-%m-%dT%H:%M:%SZ")
        )),
        _ => Ok(()),
    }
}

/// Runs each mapped source's `soql_where` as `SELECT Id FROM X WHERE (filter) LIMIT 1`, so a
/// filter Salesforce refuses fails `check` rather than the first read. One sentence per refusal.
async fn check_filters(client: &SalesforceClient, plan: &MappingPlan) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    for stream in &plan.streams {
        for source in &stream.sources {
            let Some(filter) = &source.soql_where else {
                continue;
            };
            let soql = format!(
                "SELECT Id FROM {} WHERE {} LIMIT 1",
                source.object,
                parenthesized(filter)
            );
            let url = query::first_page_url(client, &soql, false);
            match query::fetch_page(client, &url, 200).await {
                Ok(_) => {}
                Err(SalesforceError::Api {
                    status,
                    code,
                    message,
                }) => problems.push(format!(
                    "stream {:?} from {}: {filter:?} answered HTTP {status} {code} ({message}); fix the condition in the mapping file",
                    stream.name, source.object
                )),
                Err(e) => problems.push(format!(
                    "stream {:?} from {}: {filter:?} could not be tried: {e}",
                    stream.name, source.object
                )),
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Checks the `--catalog` file against the org; how many streams it selects.
async fn check_catalog(
    client: &SalesforceClient,
    path: &Path,
    plan: Option<&MappingPlan>,
) -> Result<usize, Error> {
    let catalog = ConfiguredAirbyteCatalog::from_file(path)?;
    super::catalog::validate_catalog(
        client,
        &catalog.streams,
        plan,
        super::catalog::FieldCheck::All,
    )
    .await?;
    Ok(catalog.streams.len())
}

async fn probe(
    config: &Config,
    hooks: ClientHooks,
) -> Result<(Report, SalesforceClient), CheckFailure> {
    let client = SalesforceClient::connect(config, hooks).await?;
    let instance = client.instance_url();
    check_api_version(&client).await?;
    let token = client
        .tokens()
        .current()
        .ok_or_else(|| SalesforceError::InvalidResponse {
            host: instance.clone(),
            detail: "no token after connecting".into(),
        })?;
    let identity = org::identity(&client, &token.identity_url).await?;
    let objects = describe::describe_global(&client).await?.sobjects.len();
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let ids = token.org_and_user_ids();
    let report = Report {
        org_id: text(&identity, "organization_id")
            .or_else(|| ids.map(|(o, _)| o))
            .unwrap_or_default(),
        username: text(&identity, "username").unwrap_or_default(),
        display_name: text(&identity, "display_name"),
        edition: org::edition(&client).await,
        instance,
        api_version: client.api_version().to_string(),
        objects,
        usage: client.api_usage(),
    };
    Ok((report, client))
}

/// Checks the configured version against `GET /services/data/` (no quota cost).
async fn check_api_version(client: &SalesforceClient) -> Result<(), CheckFailure> {
    let offered = org::api_versions(client).await?;
    let wanted = client.api_version();
    if offered.is_empty() || offered.iter().any(|v| v == wanted) {
        return Ok(());
    }
    let by_number = |a: &&String, b: &&String| version_number(a).total_cmp(&version_number(b));
    let oldest = offered
        .iter()
        .min_by(by_number)
        .cloned()
        .unwrap_or_default();
    let newest = offered
        .iter()
        .max_by(by_number)
        .cloned()
        .unwrap_or_default();
    Err(CheckFailure::ApiVersion {
        wanted: wanted.to_string(),
        oldest,
        newest,
    })
}

/// A version such as `62.0` as a number, for ordering (0 when it is not one).
fn version_number(v: &str) -> f64 {
    v.parse().unwrap_or(0.0)
}
