//! Command-line interface: the Airbyte connector verbs plus the human commands.
//!
//! Kept in the library (not `main.rs`) so tests and docs can parse the same definitions.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// sfetl: Salesforce to Parquet / Airbyte records, and rows back into Salesforce.
#[derive(Debug, Parser)]
#[command(name = "sfetl", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Every sfetl command.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the connector specification (a SPEC message).
    #[command(after_help = "Example:\n  sfetl spec")]
    Spec,

    /// Validate the config and test the connection to the org (a CONNECTION_STATUS message).
    #[command(
        after_help = "Example:\n  sfetl check --config fixtures/configs/airbyte_style.json [--catalog fixtures/catalogs/account.json]"
    )]
    Check(CheckArgs),

    /// List the org's objects as streams with their schemas (a CATALOG message).
    #[command(
        after_help = "Example:\n  sfetl discover --config fixtures/configs/airbyte_style.json"
    )]
    Discover(ConfigArgs),

    /// Read the selected streams: RECORD messages, Parquet files or Arrow IPC, then STATE.
    #[command(
        after_help = "Example:\n  sfetl read --config fixtures/configs/airbyte_style.json --catalog fixtures/catalogs/account.json --state state.json"
    )]
    Read(ReadArgs),

    /// Cut the read into independent slices for workers: one JSON line per slice.
    #[command(
        after_help = "Example:\n  sfetl plan --config config.json --catalog fixtures/catalogs/account.json > slices.jsonl\n  sfetl read --config config.json --catalog fixtures/catalogs/account.json --slice slice-0.json"
    )]
    Plan(PlanArgs),

    /// Write rows (RECORD messages on stdin, or a Parquet/CSV file) back into Salesforce.
    #[command(
        after_help = "Example:\n  sfetl write --config config.json --catalog catalog.json < scores.jsonl\n  sfetl write --config config.json --input scores.parquet --stream person_scores"
    )]
    Write(WriteArgs),

    /// Connect an org in the browser (OAuth 2.0 with PKCE) and save a config with mode 0600.
    #[command(after_help = "Example:\n  sfetl login --client-id 3MVG9... --sandbox")]
    Login(LoginArgs),

    /// Run the built-in Salesforce simulator (prints its credentials as one JSON line).
    #[command(after_help = "Example:\n  sfetl simulate --listen 127.0.0.1:0 --scale 1000 --seed 7")]
    Simulate(SimulateArgs),

    /// Run the whole pipeline on the embedded simulator and explain each step.
    #[command(after_help = "Example:\n  sfetl demo --dir ./sfetl-demo")]
    Demo(DemoArgs),

    /// Rewrite the small files of the Delta tables under output.path into larger ones.
    #[command(after_help = "Example:\n  sfetl compact --config config.json [--stream Account]")]
    Compact(CompactArgs),

    /// Run SQL over a Parquet or Delta export (latest version of each row per stream).
    #[command(
        after_help = "Example:\n  sfetl query --path ./export \"SELECT company, count(*) FROM person GROUP BY company\""
    )]
    Query(QueryArgs),
}

/// `--config F`.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// Connector config (JSON).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

/// Arguments of `check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Connector config (JSON).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// A configured catalog to check against the org as well (stream names, duplicates,
    /// selected fields), as `read` would before reading.
    #[arg(long, value_name = "FILE")]
    pub catalog: Option<PathBuf>,
}

/// Arguments of `read`.
#[derive(Debug, clap::Args)]
pub struct ReadArgs {
    /// Connector config (JSON).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Configured catalog: the streams and fields to read.
    #[arg(long, value_name = "FILE")]
    pub catalog: PathBuf,
    /// State from the previous run (`[]`, a list of STATE objects, or a legacy object).
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Write an Arrow IPC stream on stdout instead of RECORD messages.
    #[arg(long)]
    pub arrow_ipc: bool,
    /// Read exactly one slice of `sfetl plan` (a file holding one of its lines) and commit it.
    #[arg(long, value_name = "FILE")]
    pub slice: Option<PathBuf>,
}

/// Arguments of `plan`.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Connector config (JSON).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Configured catalog: the streams to plan.
    #[arg(long, value_name = "FILE")]
    pub catalog: PathBuf,
    /// State from the previous run (incremental streams start from it).
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Rows a slice holds at most, about (default: the config's bulk_max_records, 200,000).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_rows_per_slice: Option<u64>,
}

/// Arguments of `write`.
#[derive(Debug, clap::Args)]
pub struct WriteArgs {
    /// Connector config (JSON) with a `writeback` section.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Configured catalog of the incoming streams.
    #[arg(long, value_name = "FILE")]
    pub catalog: Option<PathBuf>,
    /// Read rows from a Parquet or CSV file instead of stdin.
    #[arg(long, value_name = "FILE_OR_URL")]
    pub input: Option<String>,
    /// The stream the --input rows belong to.
    #[arg(long)]
    pub stream: Option<String>,
    /// Validate and print what would be sent, without writing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Arguments of `login`.
#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// Consumer Key of the connected app.
    #[arg(long)]
    pub client_id: String,
    /// Consumer Secret, if the app requires one (PKCE apps do not).
    #[arg(long, env = "SFETL_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
    /// Log in to a sandbox (test.salesforce.com).
    #[arg(long, conflicts_with_all = ["domain", "login_url"])]
    pub sandbox: bool,
    /// My Domain host, e.g. acme.my.salesforce.com.
    #[arg(long, conflicts_with = "login_url")]
    pub domain: Option<String>,
    /// Explicit login URL (simulator, private endpoints).
    #[arg(long)]
    pub login_url: Option<String>,
    /// Loopback port of the callback http://localhost:PORT/oauth/callback.
    #[arg(long, default_value_t = 1717)]
    pub port: u16,
    /// OAuth scopes.
    #[arg(long, default_value = "api refresh_token offline_access")]
    pub scopes: String,
    /// Print the authorization URL instead of opening a browser.
    #[arg(long)]
    pub no_browser: bool,
    /// Where to write the config (mode 0600).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Arguments of `simulate`.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Address of the instance listener (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Data volume: N Accounts, 3N Contacts, 2N Leads, N Opportunities.
    #[arg(long, default_value_t = 100)]
    pub scale: u64,
    /// Seed of the deterministic data generator.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Folder with describes and seed records overriding the embedded fixtures.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Custom objects added to the org's metadata only (listed and described, no rows), to
    /// try `discover` on a large org (real orgs have 1,000+ objects).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub extra_objects: u32,
    /// Bulk processing time, for timing runs against a realistic org: matching rows a query
    /// job handles per second (0, the default: jobs complete at once).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub bulk_rows_per_second: u64,
    /// Bulk processing time: milliseconds a new query job waits in the queue.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub bulk_queue_ms: u64,
}

/// Arguments of `demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Folder for the demo's config, export and reports.
    #[arg(long, value_name = "DIR", default_value = "./sfetl-demo")]
    pub dir: PathBuf,
}

/// Arguments of `compact`.
#[derive(Debug, clap::Args)]
pub struct CompactArgs {
    /// Connector config (JSON) whose output is `delta`.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Compact only these tables (streams, or `<stream>_history`); all by default.
    #[arg(long, value_name = "NAME")]
    pub stream: Vec<String>,
}

/// Arguments of `query`.
#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// The export folder or URL (output.path of the read).
    #[arg(long, value_name = "PATH")]
    pub path: String,
    /// The SQL to run.
    pub sql: String,
    /// Output format; a table on the terminal by default.
    #[arg(long, value_enum)]
    pub format: Option<QueryFormat>,
    /// File to write csv/json/parquet output to.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Memory the query may hold (e.g. 512MB, 4GiB) before its sorts, joins and groupings
    /// spill to the system's temporary folder; half the machine's memory by default.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub memory_limit: Option<usize>,
}

/// A size in bytes written as a number and an optional unit: `B`, `KB`, `MB`, `GB`, `TB`
/// (powers of 1000) or `KiB`, `MiB`, `GiB`, `TiB` (powers of 1024), any case.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let unit = unit.trim().to_ascii_lowercase();
    let scale: f64 = match unit.as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(format!(
                "{text:?} is not a size: write a number and a unit, e.g. 512MB or 4GiB"
            ));
        }
    };
    let n: f64 = number.parse().map_err(|_| {
        format!("{text:?} is not a size: write a number and a unit, e.g. 512MB or 4GiB")
    })?;
    let bytes = n * scale;
    if !(1.0..=usize::MAX as f64).contains(&bytes) {
        return Err(format!("{text:?} is out of range: give at least 1 byte"));
    }
    Ok(bytes as usize)
}

/// Output formats of `query`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum QueryFormat {
    /// A table for people.
    Table,
    /// CSV.
    Csv,
    /// JSON lines.
    Json,
    /// A Parquet file.
    Parquet,
}
