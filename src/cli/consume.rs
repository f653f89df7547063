//! `actorlog consume`: print a topic's records, one value per line.

use super::{client_config, fail, REQUEST_TIMEOUT};
use clap::Args;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};
use std::io::Write;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct ConsumeArgs {
    /// Topic to read.
    #[arg(long, short)]
    topic: String,
    /// Start at the earliest offset (default: only new records).
    #[arg(long, conflicts_with = "offset")]
    from_beginning: bool,
    /// Start at this offset.
    #[arg(long)]
    offset: Option<i64>,
    /// Read only this partition (default: all).
    #[arg(long, short, conflicts_with = "group")]
    partition: Option<i32>,
    /// Join this consumer group: share the partitions with its other
    /// members and resume from (and commit) the group's offsets.
    #[arg(long, short, conflicts_with = "offset")]
    group: Option<String>,
    /// Exit after this many records.
    #[arg(long)]
    max_messages: Option<u64>,
    /// Exit after this long without a record.
    #[arg(long)]
    idle_timeout_ms: Option<u64>,
    /// Print `key SEP value` instead of the value alone.
    #[arg(long)]
    print_key: bool,
    /// Separator for --print-key.
    #[arg(long, default_value = "\t")]
    key_separator: String,
}

pub fn run(bootstrap: &str, args: ConsumeArgs) -> Result<(), String> {
    let consumer = match &args.group {
        Some(group) => joined(bootstrap, group, &args)?,
        None => assigned(bootstrap, &args)?,
    };
    print(&consumer, &args)?;
    if args.group.is_some() {
        consumer
            .commit_consumer_state(CommitMode::Sync)
            .or_else(|e| match e.rdkafka_error_code() {
                // Nothing consumed, nothing to commit.
                Some(RDKafkaErrorCode::NoOffset) => Ok(()),
                _ => Err(e),
            })
            .map_err(fail("commit failed"))?;
    }
    Ok(())
}

/// A group member: the group decides the partitions and the start offsets.
fn joined(bootstrap: &str, group: &str, args: &ConsumeArgs) -> Result<BaseConsumer, String> {
    let reset = if args.from_beginning {
        "earliest"
    } else {
        "latest"
    };
    let consumer: BaseConsumer = client_config(bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", reset)
        .set("enable.partition.eof", "false")
        .create()
        .map_err(fail("cannot create consumer"))?;
    consumer
        .subscribe(&[&args.topic])
        .map_err(fail("cannot subscribe"))?;
    Ok(consumer)
}

/// Partitions chosen on the command line, read from the given offset.
fn assigned(bootstrap: &str, args: &ConsumeArgs) -> Result<BaseConsumer, String> {
    // librdkafka wants a group id even for assigned partitions; nothing is
    // committed and no group is joined.
    let consumer: BaseConsumer = client_config(bootstrap)
        .set("group.id", "actorlog-cli")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .map_err(fail("cannot create consumer"))?;
    let partitions = match args.partition {
        Some(p) => vec![p],
        None => {
            let metadata = consumer
                .fetch_metadata(Some(&args.topic), REQUEST_TIMEOUT)
                .map_err(fail("metadata request failed"))?;
            let topic = metadata
                .topics()
                .iter()
                .find(|t| t.name() == args.topic)
                .ok_or_else(|| format!("{}: no such topic", args.topic))?;
            topic.partitions().iter().map(|p| p.id()).collect()
        }
    };
    let start = match (args.from_beginning, args.offset) {
        (true, _) => Offset::Beginning,
        (false, Some(offset)) => Offset::Offset(offset),
        (false, None) => Offset::End,
    };
    let mut assignment = TopicPartitionList::new();
    for partition in partitions {
        assignment
            .add_partition_offset(&args.topic, partition, start)
            .map_err(fail("bad assignment"))?;
    }
    consumer
        .assign(&assignment)
        .map_err(fail("cannot assign"))?;
    Ok(consumer)
}

/// Prints records until `--max-messages` or `--idle-timeout-ms`.
fn print(consumer: &BaseConsumer, args: &ConsumeArgs) -> Result<(), String> {
    let idle = args.idle_timeout_ms.map(Duration::from_millis);
    let mut last = Instant::now();
    let mut count = 0u64;
    let stdout = std::io::stdout();
    while args.max_messages.is_none_or(|max| count < max) {
        if idle.is_some_and(|idle| last.elapsed() >= idle) {
            break;
        }
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = message.map_err(fail("fetch failed"))?;
        let value = String::from_utf8_lossy(message.payload().unwrap_or_default());
        let mut out = stdout.lock();
        let written = if args.print_key {
            let key = String::from_utf8_lossy(message.key().unwrap_or_default());
            writeln!(out, "{key}{}{value}", args.key_separator)
        } else {
            writeln!(out, "{value}")
        };
        written.map_err(|e| format!("writing stdout: {e}"))?;
        count += 1;
        last = Instant::now();
    }
    Ok(())
}
