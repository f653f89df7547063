//! `actorlog topics create|list|describe|delete`.

use super::{client_config, fail, REQUEST_TIMEOUT};
use clap::Subcommand;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigSource, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaResult;
use rdkafka::types::RDKafkaErrorCode;

#[derive(Subcommand)]
pub enum TopicsCommand {
    /// Create a topic.
    Create {
        name: String,
        /// Number of partitions.
        #[arg(long, short, default_value_t = 1)]
        partitions: i32,
        /// Replicas of each partition; by default the broker's
        /// `default_replication_factor` (1 on a single broker).
        #[arg(long, short)]
        replication_factor: Option<i32>,
        /// Topic config overrides, key=value (repeatable).
        #[arg(long = "config", value_parser = parse_key_value)]
        configs: Vec<(String, String)>,
    },
    /// List topic names, one per line.
    List,
    /// Show a topic's partitions: leader, replicas, in-sync replicas, offsets.
    Describe { name: String },
    /// Delete a topic.
    Delete { name: String },
    /// Change a topic's config overrides (applied at once, kept across restarts).
    AlterConfig {
        name: String,
        /// Set an override, key=value (repeatable).
        #[arg(long = "set", value_parser = parse_key_value)]
        set: Vec<(String, String)>,
        /// Remove an override, back to the broker default (repeatable).
        #[arg(long = "delete")]
        delete: Vec<String>,
    },
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected key=value, got '{s}'"))
}

pub fn run(bootstrap: &str, command: TopicsCommand) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    match command {
        TopicsCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
        } => runtime.block_on(create(
            bootstrap,
            &name,
            partitions,
            replication_factor,
            &configs,
        )),
        TopicsCommand::Delete { name } => runtime.block_on(delete(bootstrap, &name)),
        TopicsCommand::AlterConfig { name, set, delete } => {
            runtime.block_on(alter_config(bootstrap, &name, &set, &delete))
        }
        TopicsCommand::List => list(bootstrap),
        TopicsCommand::Describe { name } => {
            describe(bootstrap, &name)?;
            runtime.block_on(describe_configs(bootstrap, &name))
        }
    }
}

fn admin(bootstrap: &str) -> Result<AdminClient<DefaultClientContext>, String> {
    client_config(bootstrap)
        .create()
        .map_err(fail("cannot create admin client"))
}

fn options() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT))
}

/// Turns the per-topic results of an admin call into one outcome.
fn check(
    results: KafkaResult<Vec<Result<String, (String, RDKafkaErrorCode)>>>,
) -> Result<(), String> {
    for result in results.map_err(fail("request failed"))? {
        if let Err((topic, code)) = result {
            return Err(format!("{topic}: {code}"));
        }
    }
    Ok(())
}

async fn create(
    bootstrap: &str,
    name: &str,
    partitions: i32,
    replication_factor: Option<i32>,
    configs: &[(String, String)],
) -> Result<(), String> {
    // -1 asks the broker for its default (CreateTopics v4+).
    let replication = TopicReplication::Fixed(replication_factor.unwrap_or(-1));
    let mut topic = NewTopic::new(name, partitions, replication);
    for (key, value) in configs {
        topic = topic.set(key, value);
    }
    check(admin(bootstrap)?.create_topics([&topic], &options()).await)?;
    println!("created topic {name} with {partitions} partitions");
    Ok(())
}

async fn delete(bootstrap: &str, name: &str) -> Result<(), String> {
    check(admin(bootstrap)?.delete_topics(&[name], &options()).await)?;
    println!("deleted topic {name}");
    Ok(())
}

fn metadata_client(bootstrap: &str) -> Result<BaseConsumer, String> {
    client_config(bootstrap)
        .create()
        .map_err(fail("cannot create client"))
}

fn list(bootstrap: &str) -> Result<(), String> {
    let metadata = metadata_client(bootstrap)?
        .fetch_metadata(None, REQUEST_TIMEOUT)
        .map_err(fail("metadata request failed"))?;
    let mut names: Vec<_> = metadata.topics().iter().map(|t| t.name()).collect();
    names.sort_unstable();
    for name in names {
        println!("{name}");
    }
    Ok(())
}

fn describe(bootstrap: &str, name: &str) -> Result<(), String> {
    let client = metadata_client(bootstrap)?;
    let metadata = client
        .fetch_metadata(Some(name), REQUEST_TIMEOUT)
        .map_err(fail("metadata request failed"))?;
    let topic = metadata
        .topics()
        .iter()
        .find(|t| t.name() == name)
        .ok_or_else(|| format!("{name}: no such topic"))?;
    if let Some(error) = topic.error() {
        return Err(format!("{name}: {}", RDKafkaErrorCode::from(error)));
    }
    println!("topic {name}: {} partitions", topic.partitions().len());
    for partition in topic.partitions() {
        let offsets = if partition.leader() < 0 {
            Err("no leader".to_string())
        } else {
            client
                .fetch_watermarks(name, partition.id(), REQUEST_TIMEOUT)
                .map_err(|e| e.to_string())
        };
        println!(
            "  {}",
            partition_line(
                partition.id(),
                partition.leader(),
                partition.replicas(),
                partition.isr(),
                offsets
            )
        );
    }
    Ok(())
}

/// One partition of `topics describe`: who leads it, which brokers hold a
/// replica, which of those are in sync (the ISR), and its offsets. A
/// partition whose ISR is smaller than its replica set is flagged: losing
/// the ISR members left loses what only they hold.
fn partition_line(
    id: i32,
    leader: i32,
    replicas: &[i32],
    isr: &[i32],
    offsets: Result<(i64, i64), String>,
) -> String {
    let list = |ids: &[i32]| {
        let ids: Vec<String> = ids.iter().map(i32::to_string).collect();
        ids.join(",")
    };
    let leader = if leader < 0 {
        "none".to_string()
    } else {
        leader.to_string()
    };
    let offsets = match offsets {
        Ok((low, high)) => format!("{low}..{high}"),
        Err(e) => format!("unknown ({e})"),
    };
    let flag = if isr.len() < replicas.len() {
        "  under-replicated"
    } else {
        ""
    };
    format!(
        "partition {id}  leader {leader}  replicas {}  isr {}  offsets {offsets}{flag}",
        list(replicas),
        list(isr)
    )
}

/// The topic's configs that are overrides, as key → value.
async fn overrides(
    admin: &AdminClient<DefaultClientContext>,
    name: &str,
) -> Result<Vec<(String, String, bool)>, String> {
    let results = admin
        .describe_configs([&ResourceSpecifier::Topic(name)], &options())
        .await
        .map_err(fail("describe configs failed"))?;
    let resource = results
        .into_iter()
        .next()
        .ok_or("no configs in the answer")?
        .map_err(|code| format!("{name}: {code}"))?;
    Ok(resource
        .entries
        .into_iter()
        .map(|e| {
            let overridden = matches!(e.source, ConfigSource::DynamicTopic);
            (e.name, e.value.unwrap_or_default(), overridden)
        })
        .collect())
}

async fn describe_configs(bootstrap: &str, name: &str) -> Result<(), String> {
    println!("  configs:");
    for (key, value, overridden) in overrides(&admin(bootstrap)?, name).await? {
        let origin = if overridden { "topic" } else { "default" };
        println!("    {key}={value}  ({origin})");
    }
    Ok(())
}

async fn alter_config(
    bootstrap: &str,
    name: &str,
    set: &[(String, String)],
    delete: &[String],
) -> Result<(), String> {
    let admin = admin(bootstrap)?;
    // AlterConfigs replaces the whole override set: start from the current one.
    let mut configs: Vec<(String, String)> = overrides(&admin, name)
        .await?
        .into_iter()
        .filter(|(key, _, overridden)| *overridden && !delete.contains(key))
        .map(|(key, value, _)| (key, value))
        .collect();
    for (key, value) in set {
        configs.retain(|(k, _)| k != key);
        configs.push((key.clone(), value.clone()));
    }
    let mut change = AlterConfig::new(ResourceSpecifier::Topic(name));
    for (key, value) in &configs {
        change = change.set(key, value);
    }
    admin
        .alter_configs([&change], &options())
        .await
        .map_err(fail("alter configs failed"))?;
    // The rdkafka crate does not report per-topic AlterConfigs errors: check
    // that the broker took the new values.
    let now = overrides(&admin, name).await?;
    for (key, value) in set {
        if !now.iter().any(|(k, v, _)| k == key && v == value) {
            return Err(format!("{name}: the broker refused {key}={value}"));
        }
    }
    println!("altered the configs of topic {name}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::partition_line;

    #[test]
    fn partition_lines_show_leader_replicas_and_isr() {
        assert_eq!(
            partition_line(0, 2, &[2, 3, 1], &[2, 3, 1], Ok((0, 42))),
            "partition 0  leader 2  replicas 2,3,1  isr 2,3,1  offsets 0..42"
        );
        assert_eq!(
            partition_line(1, 3, &[3, 1, 2], &[3, 2], Ok((5, 9))),
            "partition 1  leader 3  replicas 3,1,2  isr 3,2  offsets 5..9  under-replicated"
        );
        assert_eq!(
            partition_line(2, -1, &[1, 2, 3], &[1], Err("no leader".into())),
            "partition 2  leader none  replicas 1,2,3  isr 1  offsets unknown (no leader)  \
             under-replicated"
        );
    }
}
