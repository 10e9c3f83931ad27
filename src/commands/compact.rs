//! `sfetl compact --config C [--stream S]`: compacts the Delta tables of a config's output
//! (see [`crate::output::delta::compact`]), printing one line per table.

use crate::cli::CompactArgs;
use crate::config::{Config, ConfigError, OutputFormat, Problem};
use crate::error::Error;
use crate::output::delta::compact;
use crate::output::{OutputError, local_path, open_location};

pub(super) async fn run(args: &CompactArgs) -> Result<(), Error> {
    let config = Config::from_file(&args.config)?;
    if config.output.format != OutputFormat::Delta {
        return Err(Error::Config(ConfigError::Invalid(vec![Problem {
            field: "output.format".into(),
            message: "compact rewrites Delta tables: set output.format to \"delta\" (Parquet exports need no compaction: each sync writes few large files)".into(),
        }])));
    }
    let path = config.output.path.as_deref().unwrap_or_default();
    // A local folder that is not there holds no table: say so rather than create it.
    if local_path(path).is_some_and(|local| !std::path::Path::new(local).is_dir()) {
        return Err(Error::Config(ConfigError::Invalid(vec![Problem {
            field: "output.path".into(),
            message: format!(
                "{path:?} is not a folder: there are no Delta tables to compact; give the output.path a read with output.format \"delta\" wrote"
            ),
        }])));
    }
    let location = open_location(path, &config.output.storage_options)?;
    let names = if args.stream.is_empty() {
        compact::tables(&location)
            .await
            .map_err(OutputError::from)?
    } else {
        args.stream.clone()
    };
    if names.is_empty() {
        println!("no Delta tables under {}", location.display);
    }
    for name in names {
        let done = compact::compact(&location, &name, config.output.compression)
            .await
            .map_err(OutputError::from)?;
        match done.files_removed {
            0 => println!("{name}: nothing to compact (version {})", done.version),
            n => println!(
                "{name}: {n} files rewritten as {} (version {})",
                done.files_added, done.version
            ),
        }
    }
    Ok(())
}
