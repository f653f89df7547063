//! `actorlog groups list|describe|delete|reset-offsets`, over the Kafka
//! protocol (ListGroups, DescribeGroups, OffsetFetch, OffsetCommit,
//! DeleteGroups), so it works against any broker.

use super::{client_config, fail, REQUEST_TIMEOUT};
use actorlog_actors::group::consumer_protocol::decode_assignment;
use bytes::Bytes;
use clap::{Args, Subcommand};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;

#[derive(Subcommand)]
pub enum GroupsCommand {
    /// List consumer groups with their state.
    List,
    /// Show a group's state, members and, per partition, committed offset,
    /// log end offset and lag.
    Describe { group: String },
    /// Delete an empty group and its committed offsets.
    Delete { group: String },
    /// Move an empty group's committed offsets (dry run unless --execute).
    ResetOffsets(ResetArgs),
}

#[derive(Args)]
pub struct ResetArgs {
    group: String,
    /// Topic whose partitions to reset.
    #[arg(long, short)]
    topic: String,
    #[command(flatten)]
    target: ResetTarget,
    /// Commit the new offsets (without it, only print them).
    #[arg(long)]
    execute: bool,
}

#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct ResetTarget {
    #[arg(long)]
    to_earliest: bool,
    #[arg(long)]
    to_latest: bool,
    #[arg(long)]
    to_offset: Option<i64>,
    /// `YYYY-MM-DDTHH:MM:SS[.mmm]` (UTC) or milliseconds since the epoch.
    #[arg(long)]
    to_datetime: Option<String>,
    /// Add this (possibly negative) number to the committed offsets.
    #[arg(long, allow_hyphen_values = true)]
    shift_by: Option<i64>,
}

pub fn run(bootstrap: &str, command: GroupsCommand) -> Result<(), String> {
    match command {
        GroupsCommand::List => list(bootstrap),
        GroupsCommand::Describe { group } => describe(bootstrap, &group),
        GroupsCommand::Delete { group } => delete(bootstrap, &group),
        GroupsCommand::ResetOffsets(args) => reset(bootstrap, &args),
    }
}

fn client(bootstrap: &str, group: &str) -> Result<BaseConsumer, String> {
    client_config(bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .map_err(fail("cannot create client"))
}

fn list(bootstrap: &str) -> Result<(), String> {
    let groups = client(bootstrap, "actorlog-cli")?
        .fetch_group_list(None, REQUEST_TIMEOUT)
        .map_err(fail("list groups failed"))?;
    let mut rows: Vec<(String, String)> = groups
        .groups()
        .iter()
        .map(|g| (g.name().to_string(), g.state().to_string()))
        .collect();
    rows.sort();
    for (name, state) in rows {
        println!("{name}\t{state}");
    }
    Ok(())
}

/// The partitions in a member's consumer-protocol assignment.
fn assigned(assignment: Option<&[u8]>) -> Vec<String> {
    let bytes = Bytes::copy_from_slice(assignment.unwrap_or_default());
    decode_assignment(bytes)
        .map(|partitions| {
            partitions
                .into_iter()
                .map(|(topic, p)| format!("{topic}-{p}"))
                .collect()
        })
        .unwrap_or_default()
}

/// Committed offsets of a group for every partition of every topic.
fn committed(consumer: &BaseConsumer) -> Result<BTreeMap<(String, i32), i64>, String> {
    let metadata = consumer
        .fetch_metadata(None, REQUEST_TIMEOUT)
        .map_err(fail("metadata request failed"))?;
    let mut wanted = TopicPartitionList::new();
    for topic in metadata.topics() {
        for partition in topic.partitions() {
            wanted.add_partition(topic.name(), partition.id());
        }
    }
    let found = consumer
        .committed_offsets(wanted, REQUEST_TIMEOUT)
        .map_err(fail("offset fetch failed"))?;
    Ok(found
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some(((e.topic().to_string(), e.partition()), o)),
            _ => None,
        })
        .collect())
}

fn describe(bootstrap: &str, group: &str) -> Result<(), String> {
    let consumer = client(bootstrap, group)?;
    let groups = consumer
        .fetch_group_list(Some(group), REQUEST_TIMEOUT)
        .map_err(fail("describe group failed"))?;
    let info = groups
        .groups()
        .first()
        .ok_or_else(|| format!("{group}: no such group"))?;
    println!(
        "group {group}: {}  protocol {} {}",
        info.state(),
        info.protocol_type(),
        info.protocol()
    );
    for member in info.members() {
        println!(
            "  member {}  client {}  host {}  partitions [{}]",
            member.id(),
            member.client_id(),
            member.client_host(),
            assigned(member.assignment()).join(", ")
        );
    }
    let offsets = committed(&consumer)?;
    if !offsets.is_empty() {
        println!("  partition  committed  log-end  lag");
    }
    for ((topic, partition), offset) in offsets {
        let (_, end) = consumer
            .fetch_watermarks(&topic, partition, REQUEST_TIMEOUT)
            .map_err(fail("offsets request failed"))?;
        println!("  {topic}-{partition}  {offset}  {end}  {}", end - offset);
    }
    Ok(())
}

fn delete(bootstrap: &str, group: &str) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = client_config(bootstrap)
        .create()
        .map_err(fail("cannot create admin client"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let options = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
    let results = runtime
        .block_on(admin.delete_groups(&[group], &options))
        .map_err(fail("delete groups failed"))?;
    for result in results {
        result.map_err(|(name, code)| format!("{name}: {code}"))?;
    }
    println!("deleted group {group}");
    Ok(())
}

fn reset(bootstrap: &str, args: &ResetArgs) -> Result<(), String> {
    let consumer = client(bootstrap, &args.group)?;
    let metadata = consumer
        .fetch_metadata(Some(&args.topic), REQUEST_TIMEOUT)
        .map_err(fail("metadata request failed"))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .find(|t| t.name() == args.topic)
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .filter(|p: &Vec<i32>| !p.is_empty())
        .ok_or_else(|| format!("{}: no such topic", args.topic))?;
    let current = committed(&consumer)?;
    let datetime = args
        .target
        .to_datetime
        .as_deref()
        .map(parse_datetime)
        .transpose()?;
    let mut new_offsets = TopicPartitionList::new();
    for partition in partitions {
        let (low, high) = consumer
            .fetch_watermarks(&args.topic, partition, REQUEST_TIMEOUT)
            .map_err(fail("offsets request failed"))?;
        let target = if args.target.to_earliest {
            low
        } else if args.target.to_latest {
            high
        } else if let Some(offset) = args.target.to_offset {
            offset
        } else if let Some(shift) = args.target.shift_by {
            let from = current
                .get(&(args.topic.clone(), partition))
                .copied()
                .unwrap_or(low);
            from + shift
        } else if let Some(ms) = datetime {
            offset_for_time(&consumer, &args.topic, partition, ms)?.unwrap_or(high)
        } else {
            return Err("no reset target given".into());
        };
        let target = target.clamp(low, high);
        println!("{}-{partition}  {target}", args.topic);
        new_offsets
            .add_partition_offset(&args.topic, partition, Offset::Offset(target))
            .map_err(fail("bad offset"))?;
    }
    if !args.execute {
        println!("(dry run: add --execute to commit these offsets)");
        return Ok(());
    }
    consumer
        .commit(&new_offsets, CommitMode::Sync)
        .map_err(|e| format!("commit failed (is the group empty?): {e}"))?;
    println!("committed");
    Ok(())
}

fn offset_for_time(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
    ms: i64,
) -> Result<Option<i64>, String> {
    let mut query = TopicPartitionList::new();
    query
        .add_partition_offset(topic, partition, Offset::Offset(ms))
        .map_err(fail("bad query"))?;
    let found = consumer
        .offsets_for_times(query, REQUEST_TIMEOUT)
        .map_err(fail("offsets for times failed"))?;
    Ok(found
        .elements()
        .first()
        .and_then(|e| e.offset().to_raw())
        .filter(|o| *o >= 0))
}

/// Milliseconds since the epoch, or `YYYY-MM-DDTHH:MM:SS[.mmm][Z]` in UTC.
fn parse_datetime(text: &str) -> Result<i64, String> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    let bad = || format!("'{text}' is neither milliseconds nor YYYY-MM-DDTHH:MM:SS[.mmm]");
    let text = text.trim_end_matches('Z');
    let (date, time) = text.split_once('T').ok_or_else(bad)?;
    let numbers = |s: &str, sep: char| -> Result<Vec<i64>, String> {
        s.split(sep).map(|n| n.parse().map_err(|_| bad())).collect()
    };
    let [year, month, day] = numbers(date, '-')?[..] else {
        return Err(bad());
    };
    let (clock, millis) = time.split_once('.').unwrap_or((time, "0"));
    let [hour, minute, second] = numbers(clock, ':')?[..] else {
        return Err(bad());
    };
    let millis: i64 = millis.parse().map_err(|_| bad())?;
    // Days from the civil date (proleptic Gregorian), as in Howard Hinnant's algorithm.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes() {
        assert_eq!(parse_datetime("0"), Ok(0));
        assert_eq!(parse_datetime("1970-01-01T00:00:00"), Ok(0));
        assert_eq!(
            parse_datetime("2023-11-14T22:13:20Z"),
            Ok(1_700_000_000_000)
        );
        assert_eq!(
            parse_datetime("2000-03-01T00:00:00.250"),
            Ok(951_868_800_250)
        );
        assert!(parse_datetime("yesterday").is_err());
    }
}
