//! Runs the simulator without the client (`cargo run -p sfetl-sim --example simulate -- --scale
//! 100`): the benchmark builds only this crate, not the connector.

use sfetl_sim::{SimOptions, run_cli};

#[tokio::main]
async fn main() {
    let mut opts = SimOptions::default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i + 1 < args.len() + 1 && i < args.len() {
        let v = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--listen" => opts.listen = v.parse().expect("--listen IP:PORT"),
            "--scale" => opts.scale = v.parse().expect("--scale N"),
            "--seed" => opts.seed = v.parse().expect("--seed S"),
            "--data" => opts.data_dir = Some(v.into()),
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    if let Err(e) = run_cli(opts).await {
        eprintln!("simulate: {e}");
        std::process::exit(1);
    }
}
