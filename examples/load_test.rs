//! 1,000 concurrent connections producing and fetching against the broker
//! binary for a minute; reports the broker's RSS over time, request rates
//! and errors, and checks that every acknowledged record reads back (see
//! `chaos/load.rs`).
//!
//! cargo build --release && cargo run --release --example load_test -- --connections 1000

#[path = "chaos/broker.rs"]
mod broker;
#[path = "chaos/load.rs"]
mod load;

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
struct Args {
    /// The broker binary (default: target/release/actorlog).
    #[arg(long)]
    broker: Option<PathBuf>,
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Every n-th connection fetches, the others produce.
    #[arg(long, default_value_t = 2)]
    fetch_every: usize,
    #[arg(long, default_value_t = 50)]
    partitions: i32,
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    #[arg(long, default_value_t = 10)]
    records_per_batch: usize,
    #[arg(long, default_value_t = 100)]
    value_bytes: usize,
    /// Pause of each producer between an acknowledgement and its next batch.
    #[arg(long, default_value_t = 100)]
    produce_pause_ms: u64,
}

#[tokio::main(worker_threads = 2)]
async fn main() -> ExitCode {
    let args = Args::parse();
    match load::raise_fd_limit(args.connections) {
        Ok(limit) => println!("open file limit: {limit}"),
        Err(e) => {
            eprintln!("load_test: {e}");
            return ExitCode::FAILURE;
        }
    }
    let options = load::Options {
        broker: args.broker.unwrap_or_else(broker::default_binary),
        connections: args.connections,
        fetch_every: args.fetch_every,
        partitions: args.partitions,
        duration: Duration::from_secs(args.seconds),
        records_per_batch: args.records_per_batch,
        value_bytes: args.value_bytes,
        produce_pause: Duration::from_millis(args.produce_pause_ms),
    };
    match load::run(&options).await {
        Ok(summary) => {
            summary.print(options.duration);
            if summary.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("load_test: {e}");
            ExitCode::FAILURE
        }
    }
}
