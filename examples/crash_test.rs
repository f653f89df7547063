//! Kills the broker with SIGKILL at random moments while idempotent
//! `acks=all` producers and a committing group consumer run, and checks
//! that nothing acknowledged is lost, moved or torn (see `chaos/crash.rs`).
//!
//! cargo build --release && cargo run --release --example crash_test -- --kills 50

#[path = "chaos/broker.rs"]
mod broker;
#[path = "chaos/crash.rs"]
mod crash;

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
struct Args {
    /// The broker binary (default: target/release/actorlog).
    #[arg(long)]
    broker: Option<PathBuf>,
    /// How many times to SIGKILL the broker.
    #[arg(long, default_value_t = 50)]
    kills: u32,
    /// Seed of the kill moments.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value_t = 3)]
    producers: usize,
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// Longest time the broker runs before a kill, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    max_uptime_ms: u64,
    /// Stop after this many seconds even if not all kills are done.
    #[arg(long, default_value_t = 900)]
    time_limit_s: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let options = crash::Options {
        broker: args.broker.unwrap_or_else(broker::default_binary),
        kills: args.kills,
        seed: args.seed,
        producers: args.producers,
        partitions: args.partitions,
        max_uptime: Duration::from_millis(args.max_uptime_ms),
        time_limit: Duration::from_secs(args.time_limit_s),
    };
    match crash::run(&options).await {
        Ok(summary) => {
            summary.print();
            if summary.violations.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("crash_test: {e}");
            ExitCode::FAILURE
        }
    }
}
