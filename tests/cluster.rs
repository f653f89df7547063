//! A replicated cluster of real broker processes on loopback, seen through
//! unmodified clients (librdkafka, kcat): replication, leader failover under
//! an idempotent `acks=all` producer, `min.insync.replicas`, the ISR
//! shrinking and growing, and the start-up checks of a cluster member.
//! Every wait is bounded; nothing asserts on speed.

mod certificates;
mod cluster_process;
mod power_loss_fs;

use cluster_process::clients::{
    broker_ids, commit_until_acknowledged, committed_offset, create_assigned_topic,
    create_replicated_topic, group_consumer, in_sync_everywhere, metadata, partition_view,
    produce_one, read_partition, recording_producer, ContinuousProducer,
};
use cluster_process::{wait_until, Cluster};
use power_loss_fs::PowerLossDisk;
use rdkafka::producer::{BaseRecord, Producer};
use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

/// Leader kills in `leader_kill_keeps_acknowledged_records`; a longer run
/// sets `ACTORLOG_LEADER_KILLS` (the figures it prints go in the notes).
fn kills() -> usize {
    std::env::var("ACTORLOG_LEADER_KILLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20)
}

/// Bound of each wait for a leader election or an ISR change.
const FAILOVER_WAIT: Duration = Duration::from_secs(60);

/// kcat's metadata listing of the cluster.
fn kcat_metadata(bootstrap: &str) -> String {
    let output = Command::new("kcat")
        .args(["-b", bootstrap, "-m", "10", "-L"])
        .output()
        .expect("kcat runs (scripts/test installs it)");
    assert!(
        output.status.success(),
        "kcat -L: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn three_brokers_replicate() {
    let cluster = Cluster::start(3, "");
    let bootstrap = cluster.bootstrap();
    let brokers = metadata(&bootstrap).expect("metadata");
    assert_eq!(
        broker_ids(&brokers),
        [1, 2, 3],
        "rdkafka sees three brokers"
    );
    let listing = kcat_metadata(&bootstrap);
    assert!(listing.contains(" 3 brokers:"), "kcat -L:\n{listing}");
    for i in 0..3 {
        let line = format!(
            "broker {} at {}",
            cluster.node_id(i),
            cluster.bootstrap_of(i)
        );
        assert!(
            listing.contains(&line),
            "no `{line}` in kcat -L:\n{listing}"
        );
    }

    let view = create_replicated_topic(&bootstrap, "r", 3);
    for (partition, p) in view.iter().enumerate() {
        let mut replicas = p.replicas.clone();
        replicas.sort_unstable();
        assert_eq!(replicas, [1, 2, 3], "replicas of r/{partition}: {p:?}");
        assert!(
            p.replicas.contains(&p.leader),
            "the leader of r/{partition} is a replica: {p:?}"
        );
    }
    // kcat may ask a broker a moment behind the one rdkafka asked.
    wait_until(
        Duration::from_secs(10),
        &format!("kcat sees the leaders rdkafka sees, {view:?}"),
        || {
            let listing = kcat_metadata(&bootstrap);
            view.iter().enumerate().all(|(partition, p)| {
                listing.contains(&format!(
                    "partition {partition}, leader {}, replicas: ",
                    p.leader
                ))
            })
        },
    );

    let (producer, recorder) = recording_producer(&bootstrap, &[]);
    for value in 0..1000u64 {
        let payload = value.to_string();
        let partition = (value % 3) as i32;
        producer
            .send(
                BaseRecord::<(), _>::to("r")
                    .partition(partition)
                    .payload(&payload),
            )
            .expect("queued");
    }
    producer
        .flush(Duration::from_secs(60))
        .expect("every record delivered");
    assert!(
        recorder.failures.lock().unwrap().is_empty(),
        "failed deliveries: {:?}",
        recorder.failures.lock().unwrap()
    );
    let acks = recorder.acks.lock().unwrap().clone();
    assert_eq!(acks.len(), 1000, "every record acknowledged");

    for partition in 0..3 {
        let mut acknowledged: Vec<(i64, u64)> = acks
            .iter()
            .filter(|a| a.partition == partition)
            .map(|a| (a.offset, a.value))
            .collect();
        acknowledged.sort_unstable();
        let read = read_partition(&bootstrap, "r", partition);
        assert_eq!(
            read, acknowledged,
            "r/{partition} holds exactly the acknowledged records at their offsets"
        );
        assert!(
            read.windows(2).all(|w| w[0].1 < w[1].1),
            "r/{partition} keeps the order the records were sent in"
        );
    }
}

#[test]
fn leader_kill_keeps_acknowledged_records() {
    let mut cluster = Cluster::start(3, "");
    create_replicated_topic(&cluster.bootstrap(), "failover", 1);
    let producer = ContinuousProducer::start(&cluster.bootstrap(), "failover");
    wait_until(Duration::from_secs(30), "records are acknowledged", || {
        producer.acknowledged() >= 10
    });

    let kills = kills();
    let mut failovers = Vec::with_capacity(kills);
    for kill in 1..=kills {
        let mut leader = -1;
        wait_until(
            FAILOVER_WAIT,
            &format!("failover/0 has a leader before kill {kill}"),
            || {
                leader = partition_view(&cluster.live_bootstrap(), "failover", 0)
                    .map_or(-1, |p| p.leader);
                leader >= 0
            },
        );
        let victim = cluster.index_of(leader);
        let killed_at = Instant::now();
        cluster.kill9(victim);
        // Records with this number or more were sent after the kill, so
        // no broker but a new leader can acknowledge them.
        let sent_after = producer.next_value() + 1;
        wait_until(
            FAILOVER_WAIT,
            &format!("a broker other than {leader} leads failover/0 (kill {kill})"),
            || {
                partition_view(&cluster.live_bootstrap(), "failover", 0)
                    .is_some_and(|p| p.leader >= 0 && p.leader != leader)
            },
        );
        let mut acknowledged_at = None;
        wait_until(
            FAILOVER_WAIT,
            &format!("a record sent after kill {kill} is acknowledged"),
            || {
                acknowledged_at = producer.first_ack_from(sent_after);
                acknowledged_at.is_some()
            },
        );
        failovers.push(acknowledged_at.expect("an ack") - killed_at);
        cluster.restart(victim);
        wait_until(
            FAILOVER_WAIT,
            &format!("broker {leader} is back in the ISR of failover/0 (kill {kill})"),
            || in_sync_everywhere(&cluster.live_brokers(), "failover", 0),
        );
    }

    let produced = producer.stop();
    failovers.sort_unstable();
    let percentile = |p: usize| failovers[(failovers.len() * p / 100).min(failovers.len() - 1)];
    eprintln!(
        "failover (SIGKILL of the leader to the first acks=all record acknowledged by the new \
         one) over {kills} kills: p50 {:?}, p99 {:?}; {} records acknowledged, {} failed",
        percentile(50),
        percentile(99),
        produced.acks.len(),
        produced.failures.len()
    );
    assert_eq!(
        produced.fatal, None,
        "the idempotent producer hit a fatal error"
    );

    let log = read_partition(&cluster.bootstrap(), "failover", 0);
    for pair in log.windows(2) {
        assert!(
            pair[0].1 < pair[1].1,
            "record {} at offset {} follows record {} at offset {}: a duplicate or reordering",
            pair[1].1,
            pair[1].0,
            pair[0].1,
            pair[0].0
        );
    }
    let stored: HashMap<i64, u64> = log.into_iter().collect();
    for ack in &produced.acks {
        assert_eq!(
            stored.get(&ack.offset),
            Some(&ack.value),
            "record {} was acknowledged at offset {}",
            ack.value,
            ack.offset
        );
    }
}

#[test]
fn two_of_three_down_refuses_acks_all() {
    let mut cluster = Cluster::start(3, "");
    let view = create_replicated_topic(&cluster.bootstrap(), "strict", 1);
    let enough = Duration::from_secs(30);
    produce_one(&cluster.bootstrap(), "strict", 0, enough).expect("acks=all with 3 replicas up");

    // Keep the leader, so the producer reaches it and the refusal is the
    // leader's: fewer in-sync replicas than min.insync.replicas.
    let leader = view[0].leader;
    let followers: Vec<usize> = view[0]
        .replicas
        .iter()
        .filter(|&&r| r != leader)
        .map(|&r| cluster.index_of(r))
        .collect();
    for &follower in &followers {
        cluster.kill9(follower);
    }
    let refused = produce_one(
        &cluster.live_bootstrap(),
        "strict",
        1,
        Duration::from_secs(5),
    );
    assert!(
        refused.is_err(),
        "acks=all was acknowledged with two of three replicas down: {refused:?}"
    );
    eprintln!(
        "acks=all with two of three brokers down: {}",
        refused.unwrap_err()
    );

    for &follower in &followers {
        cluster.restart(follower);
    }
    wait_until(
        Duration::from_secs(90),
        "the ISR of strict/0 is back to 3",
        || in_sync_everywhere(&cluster.live_brokers(), "strict", 0),
    );
    produce_one(&cluster.bootstrap(), "strict", 2, enough).expect("acks=all after recovery");
}

#[test]
fn stopped_follower_leaves_and_rejoins_isr() {
    let mut cluster = Cluster::start(3, "cluster:\n  replica_lag_time_max_ms: 2000\n");
    let view = create_replicated_topic(&cluster.bootstrap(), "lagging", 1);
    let producer = ContinuousProducer::start(&cluster.bootstrap(), "lagging");
    wait_until(Duration::from_secs(30), "records are acknowledged", || {
        producer.acknowledged() >= 10
    });

    let leader = view[0].leader;
    let follower = *view[0]
        .replicas
        .iter()
        .find(|&&r| r != leader)
        .expect("a follower");
    let index = cluster.index_of(follower);
    cluster.stop_signal(index);
    wait_until(
        Duration::from_secs(15),
        &format!("stopped broker {follower} leaves the ISR of lagging/0"),
        || {
            partition_view(&cluster.live_bootstrap(), "lagging", 0)
                .is_some_and(|p| p.isr.len() == 2 && !p.isr.contains(&follower))
        },
    );
    // Two in-sync replicas still meet min.insync.replicas=2.
    let sent_after = producer.next_value() + 1;
    wait_until(
        FAILOVER_WAIT,
        "acks=all records are acknowledged with the follower out of the ISR",
        || producer.first_ack_from(sent_after).is_some(),
    );

    cluster.cont_signal(index);
    wait_until(
        FAILOVER_WAIT,
        &format!("broker {follower} rejoins the ISR of lagging/0"),
        || in_sync_everywhere(&cluster.live_brokers(), "lagging", 0),
    );
    let produced = producer.stop();
    assert_eq!(
        produced.fatal, None,
        "the idempotent producer hit a fatal error"
    );
}

#[test]
fn broker_waits_for_voters_that_do_not_answer() {
    // Three voters configured, only the first one started: the other two
    // controller ports have nothing listening.
    let mut cluster = Cluster::configure(3, "");
    cluster.launch(0);
    wait_until(
        Duration::from_secs(30),
        "the broker says it is waiting for the controller quorum",
        || {
            let stderr = cluster.stderr(0).to_lowercase();
            stderr.contains("waiting") && stderr.contains("quorum")
        },
    );
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        assert!(
            cluster.is_running(0),
            "the broker exited instead of waiting:\n{}",
            cluster.stderr(0)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn data_dir_of_another_cluster_is_refused() {
    // Started means registered: the data dir holds the cluster id by now.
    let mut cluster = Cluster::start(1, "");
    cluster.kill9(0);

    let ours = cluster.cluster_id().to_string();
    let theirs = "another-cluster-7f3a";
    let path = cluster.config_path(0);
    let config = std::fs::read_to_string(&path).expect("config");
    assert!(config.contains(&ours), "the config names the cluster id");
    std::fs::write(&path, config.replace(&ours, theirs)).expect("config rewritten");

    cluster.launch(0);
    let status = cluster.wait_exit(0, Duration::from_secs(30));
    let stderr = cluster.stderr(0);
    assert!(
        !status.success(),
        "the broker started on a data dir of another cluster"
    );
    assert!(
        stderr.contains(&ours) && stderr.contains(theirs),
        "the refusal names both cluster ids ({ours}, {theirs}):\n{stderr}"
    );
}

/// Coordinator kills in `group_commits_survive_coordinator_kills`.
const COORDINATOR_KILLS: usize = 5;

/// Partitions of the offsets topic in that test: few, so it is quick to
/// create, but more than one, so the hash matters.
const OFFSETS_PARTITIONS: i32 = 3;

/// Kafka's partition of the offsets topic for a group (Java's String
/// hashCode, masked), computed here independently of the broker.
fn offsets_partition(group: &str) -> usize {
    let hash = group.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    });
    ((hash & 0x7fff_ffff) % OFFSETS_PARTITIONS) as usize
}

#[test]
fn group_commits_survive_coordinator_kills() {
    use rdkafka::consumer::BaseConsumer;
    use rdkafka::Offset;

    const GROUP: &str = "survivors";
    let mut cluster = Cluster::start(
        3,
        &format!("cluster:\n  offsets_topic_num_partitions: {OFFSETS_PARTITIONS}\n"),
    );
    create_replicated_topic(&cluster.bootstrap(), "tracked", 1);
    // Every broker, dead or alive: librdkafka finds the live ones.
    let bootstrap = cluster.bootstrap();
    let consumer = || group_consumer(&bootstrap, GROUP);
    let committed = |consumer: &BaseConsumer| match committed_offset(consumer, "tracked") {
        Some(Offset::Offset(offset)) => Some(offset),
        _ => None,
    };
    let commit = |consumer: &BaseConsumer, offset: i64| {
        commit_until_acknowledged(consumer, "tracked", offset, FAILOVER_WAIT)
    };

    let partition = offsets_partition(GROUP);
    let mut last_acknowledged = 0;
    for kill in 1..=COORDINATOR_KILLS {
        let client = consumer();
        for step in 1..=3 {
            last_acknowledged = (kill * 10 + step) as i64;
            commit(&client, last_acknowledged);
        }
        drop(client);
        let mut coordinator = -1;
        wait_until(FAILOVER_WAIT, "the offsets partition has a leader", || {
            coordinator =
                partition_view(&cluster.live_bootstrap(), "__consumer_offsets", partition)
                    .map_or(-1, |p| p.leader);
            coordinator >= 0
        });
        let victim = cluster.index_of(coordinator);
        cluster.kill9(victim);
        let client = consumer();
        let mut seen = None;
        wait_until(
            FAILOVER_WAIT,
            &format!("the new coordinator answers OffsetFetch (kill {kill})"),
            || {
                seen = committed(&client);
                seen.is_some()
            },
        );
        assert_eq!(
            seen,
            Some(last_acknowledged),
            "the committed offset after killing coordinator {coordinator} (kill {kill})"
        );
        drop(client);
        cluster.restart(victim);
        wait_until(
            FAILOVER_WAIT,
            &format!("broker {coordinator} is back in the ISR of the offsets partition"),
            || in_sync_everywhere(&cluster.live_brokers(), "__consumer_offsets", partition),
        );
    }
}

/// Transactions (consume-transform-produce: records and consumer offsets
/// committed together) across a kill of their transaction coordinator: the
/// records of every committed transaction are read exactly once, in
/// order, those of aborted ones never, and the group's offset is the last
/// committed transaction's.
#[test]
fn transactions_survive_a_coordinator_kill() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::error::KafkaError;
    use rdkafka::message::Message;
    use rdkafka::producer::{DefaultProducerContext, ThreadedProducer};
    use rdkafka::{Offset, TopicPartitionList};

    const TXN_ID: &str = "survivor-txn";
    const GROUP: &str = "survivor-txn-group";
    // One kill (of the broker coordinating both the transaction and the
    // group). A second kill can stall librdkafka's
    // send_offsets_to_transaction with no request sent: the killed broker
    // leaves the Metadata response (as a fenced broker leaves Kafka's), so
    // librdkafka (2.10 and later) decommissions its broker thread, yet keeps
    // it cached as the group coordinator and waits for a state change of
    // that thread that never comes (librdkafka issue 5511, open). Against
    // Kafka the same client stalls the same way.
    const KILLS: usize = 1;
    const TIMEOUT: Duration = Duration::from_secs(30);
    let mut cluster = Cluster::start(
        3,
        &format!("cluster:\n  offsets_topic_num_partitions: {OFFSETS_PARTITIONS}\n"),
    );
    create_replicated_topic(&cluster.bootstrap(), "txn-in", 1);
    create_replicated_topic(&cluster.bootstrap(), "txn-out", 1);
    let bootstrap = cluster.bootstrap();
    let producer: ThreadedProducer<DefaultProducerContext> =
        cluster_process::clients::client_config(&bootstrap)
            .set("transactional.id", TXN_ID)
            .set("debug", "eos,cgrp")
            .set("log_level", "7")
            .set("transaction.timeout.ms", "60000")
            .create()
            .expect("transactional producer");
    wait_until(FAILOVER_WAIT, "init_transactions succeeds", || {
        producer.init_transactions(TIMEOUT).is_ok()
    });
    // Each round commits its input offsets for a group of its own: round 0
    // for GROUP, on the broker about to be killed, later rounds for groups
    // librdkafka has never looked up, since it keeps a killed coordinator
    // cached (see above).
    let groups: Vec<BaseConsumer> = (0..=KILLS)
        .map(|round| {
            let id = match round {
                0 => GROUP.to_string(),
                n => format!("{GROUP}-{n}"),
            };
            cluster_process::clients::client_config(&bootstrap)
                .set("group.id", id)
                .create()
                .expect("consumer for the group metadata")
        })
        .collect();

    // One transaction: its records, and the input position it consumed to.
    // Ok(true) committed, Ok(false) aborted as asked; Err: it failed and
    // was aborted, so none of it counts.
    let transaction = |group: &BaseConsumer,
                       values: &[u64],
                       input_offset: i64,
                       commit: bool|
     -> Result<bool, KafkaError> {
        let group_metadata = group.group_metadata().expect("group metadata");
        producer.begin_transaction()?;
        for value in values {
            let payload = value.to_string();
            producer
                .send(
                    BaseRecord::<(), str>::to("txn-out")
                        .partition(0)
                        .payload(&payload),
                )
                .map_err(|(e, _)| e)?;
        }
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset("txn-in", 0, Offset::Offset(input_offset))
            .expect("offset");
        let ended = producer
            .send_offsets_to_transaction(&offsets, &group_metadata, TIMEOUT)
            .and_then(|()| {
                if commit {
                    producer.commit_transaction(TIMEOUT)
                } else {
                    producer.abort_transaction(TIMEOUT)
                }
            });
        match ended {
            Ok(()) => Ok(commit),
            Err(e) => {
                let _ = producer.abort_transaction(TIMEOUT);
                Err(e)
            }
        }
    };

    let mut expected: Vec<u64> = Vec::new();
    let mut input_offset = 0;
    // The input offset each round's group committed last.
    let mut round_ends: Vec<i64> = Vec::new();
    let partition = offsets_partition(TXN_ID);
    for (round, group) in groups.iter().enumerate() {
        // Committed transactions, and one aborted among them.
        let mut committed_here = 0;
        let mut attempt = 0;
        while committed_here < 3 {
            attempt += 1;
            let first = (round * 1_000 + attempt * 10) as u64;
            let values: Vec<u64> = (first..first + 5).collect();
            let commit = attempt != 2;
            match transaction(group, &values, input_offset + 1, commit) {
                Ok(true) => {
                    expected.extend(&values);
                    input_offset += 1;
                    committed_here += 1;
                }
                Ok(false) => {}
                Err(e) => {
                    eprintln!("a transaction failed and was aborted: {e}");
                    assert!(
                        !matches!(&e, KafkaError::Transaction(t) if t.is_fatal()),
                        "fatal: {e}"
                    );
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
        round_ends.push(input_offset);
        if round == KILLS {
            break;
        }
        let mut coordinator = -1;
        wait_until(
            FAILOVER_WAIT,
            "the transaction's offsets partition has a leader",
            || {
                coordinator =
                    partition_view(&cluster.live_bootstrap(), "__consumer_offsets", partition)
                        .map_or(-1, |p| p.leader);
                coordinator >= 0
            },
        );
        let victim = cluster.index_of(coordinator);
        cluster.kill9(victim);
        wait_until(
            FAILOVER_WAIT,
            &format!("a broker other than {coordinator} coordinates the transaction"),
            || {
                partition_view(&cluster.live_bootstrap(), "__consumer_offsets", partition)
                    .is_some_and(|p| p.leader >= 0 && p.leader != coordinator)
            },
        );
        // Back before the next transaction: librdkafka waits for a group
        // coordinator it cached to come back rather than look it up again.
        cluster.restart(victim);
        wait_until(
            FAILOVER_WAIT,
            &format!("broker {coordinator} is back in the ISR of the offsets partition"),
            || in_sync_everywhere(&cluster.live_brokers(), "__consumer_offsets", partition),
        );
    }

    // read_committed (librdkafka's default isolation) up to the end.
    let reader: BaseConsumer = cluster_process::clients::client_config(&cluster.live_bootstrap())
        .set("group.id", "txn-check")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset("txn-out", 0, Offset::Beginning)
        .expect("partition");
    reader.assign(&assignment).expect("assign");
    let mut read: Vec<u64> = Vec::new();
    let mut at_end = false;
    wait_until(FAILOVER_WAIT, "txn-out is read to its end", || {
        match reader.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => read.push(
                std::str::from_utf8(message.payload().unwrap_or_default())
                    .expect("utf-8")
                    .parse()
                    .expect("a number"),
            ),
            Some(Err(KafkaError::PartitionEOF(_))) => at_end = true,
            _ => {}
        }
        at_end
    });
    assert_eq!(read, expected, "what read_committed consumers see");

    // Round 0's offsets, committed at the killed coordinator, survived it.
    let mut wanted = TopicPartitionList::new();
    wanted.add_partition("txn-in", 0);
    for (round, (group, end)) in groups.iter().zip(&round_ends).enumerate() {
        let mut committed = None;
        wait_until(FAILOVER_WAIT, "the group's offset is readable", || {
            committed = group
                .committed_offsets(wanted.clone(), Duration::from_secs(5))
                .ok()
                .and_then(|found| match found.find_partition("txn-in", 0)?.offset() {
                    Offset::Offset(offset) => Some(offset),
                    _ => None,
                });
            committed.is_some()
        });
        assert_eq!(
            committed,
            Some(*end),
            "the committed input offset of round {round}'s group"
        );
    }
}

/// A partition whose preferred leader (its first replica) died and came
/// back is handed back to it once it is in sync again
/// (`auto_leader_rebalance_enable`, checked every second here).
#[test]
fn leadership_returns_to_the_preferred_replica() {
    let mut cluster = Cluster::start(3, "cluster:\n  leader_imbalance_check_interval_ms: 1000\n");
    create_replicated_topic(&cluster.bootstrap(), "preferred", 1);
    let first = partition_view(&cluster.bootstrap(), "preferred", 0).expect("metadata");
    let preferred = first.replicas[0];
    assert_eq!(
        first.leader, preferred,
        "a new partition is led by its first replica"
    );
    let victim = cluster.index_of(preferred);
    cluster.kill9(victim);
    wait_until(FAILOVER_WAIT, "another broker leads preferred/0", || {
        partition_view(&cluster.live_bootstrap(), "preferred", 0)
            .is_some_and(|p| p.leader >= 0 && p.leader != preferred)
    });
    cluster.restart(victim);
    wait_until(
        FAILOVER_WAIT,
        &format!("broker {preferred} leads preferred/0 again"),
        || {
            partition_view(&cluster.live_bootstrap(), "preferred", 0)
                .is_some_and(|p| p.leader == preferred)
        },
    );
}

/// A deleted group's offsets stay deleted when its coordinator dies: the
/// deletion is replicated like the commits it removes.
#[test]
fn deleted_group_offsets_stay_deleted_after_failover() {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::consumer::BaseConsumer;
    use rdkafka::Offset;

    const GROUP: &str = "doomed";
    let mut cluster = Cluster::start(
        3,
        &format!("cluster:\n  offsets_topic_num_partitions: {OFFSETS_PARTITIONS}\n"),
    );
    create_replicated_topic(&cluster.bootstrap(), "kept", 1);
    let bootstrap = cluster.bootstrap();
    let consumer = |bootstrap: &str| group_consumer(bootstrap, GROUP);
    let committed = |consumer: &BaseConsumer| committed_offset(consumer, "kept");
    let client = consumer(&bootstrap);
    commit_until_acknowledged(&client, "kept", 42, FAILOVER_WAIT);
    assert_eq!(committed(&client), Some(Offset::Offset(42)));
    drop(client);

    let admin: AdminClient<DefaultClientContext> =
        cluster_process::clients::client_config(&bootstrap)
            .create()
            .expect("admin client");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let deleted = runtime
        .block_on(admin.delete_groups(&[GROUP], &AdminOptions::new()))
        .expect("DeleteGroups answered");
    assert!(deleted.iter().all(Result::is_ok), "{deleted:?}");

    let partition = offsets_partition(GROUP);
    let coordinator = partition_view(&bootstrap, "__consumer_offsets", partition)
        .expect("metadata")
        .leader;
    cluster.kill9(cluster.index_of(coordinator));
    let client = consumer(&cluster.live_bootstrap());
    let mut seen = None;
    wait_until(
        FAILOVER_WAIT,
        "the new coordinator answers OffsetFetch",
        || {
            seen = committed(&client);
            seen.is_some()
        },
    );
    assert_eq!(
        seen,
        Some(Offset::Invalid),
        "the deleted group's offset after failover"
    );
}

/// kafka-python moves a one-replica partition from one broker to the other
/// two (AlterPartitionReassignments, watched with
/// ListPartitionReassignments): the new replicas copy the log, the old one
/// leaves, and with it killed every record is still read back, in order at
/// its offset. The old broker, restarted, deletes its copy.
#[test]
fn reassignment_moves_a_partition_to_other_brokers() {
    const TOPIC: &str = "moving";
    let mut cluster = Cluster::start(3, "");
    let (source, targets) = (cluster.node_id(0), [cluster.node_id(1), cluster.node_id(2)]);
    let output = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/scripts/kafka_python_reassign.py"
        ))
        .args(["--bootstrap", &cluster.bootstrap(), "--topic", TOPIC])
        .args(["--from", &source.to_string(), "--to"])
        .args(targets.map(|t| t.to_string()))
        .output()
        .expect("python3 runs (scripts/test installs kafka-python)");
    assert!(
        output.status.success(),
        "kafka_python_reassign.py:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let written: u64 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("the script prints how many records it wrote");
    let old_copy = cluster.data_dir(0).join(format!("{TOPIC}-0"));
    wait_until(FAILOVER_WAIT, "the old replica deletes its copy", || {
        !old_copy.exists()
    });
    cluster.kill9(0);
    let records = read_partition(&cluster.live_bootstrap(), TOPIC, 0);
    let expected: Vec<(i64, u64)> = (0..written).map(|i| (i as i64, i)).collect();
    assert_eq!(records.len(), expected.len(), "records on the new replicas");
    assert!(records == expected, "records moved out of order or changed");
    cluster.restart(0);
    let view = partition_view(&cluster.live_bootstrap(), TOPIC, 0).expect("metadata");
    assert_eq!(view.replicas, targets, "the replica set after the move");
    assert!(!old_copy.exists(), "the old replica came back on restart");
}

/// Each broker's extra config for a secured cluster: clients on PLAINTEXT,
/// brokers among themselves on a SASL_SSL listener as user `broker` with
/// `password` (the peers accept `broker-secret`), controllers over mutual
/// TLS, and ACLs enforced with `broker` the only super user.
fn secured_broker(certs: &certificates::Certificates, port: u16, password: &str) -> String {
    let inter_broker = cluster_process::free_port();
    format!(
        "listeners: \"PLAINTEXT://127.0.0.1:{port},BROKER://127.0.0.1:{inter_broker}\"\n\
         listener_security_protocol_map: \"PLAINTEXT:PLAINTEXT,BROKER:SASL_SSL\"\n\
         inter_broker_listener_name: BROKER\n\
         sasl_plain_users: {{broker: broker-secret}}\n\
         inter_broker_sasl_username: broker\n\
         inter_broker_sasl_password: {password}\n\
         ssl_cert_file: {}\nssl_key_file: {}\nssl_ca_file: {}\n\
         authorizer: acl\nsuper_users: [\"User:broker\"]\nallow_everyone_if_no_acl_found: true\n\
         cluster:\n  controller_security_protocol: SSL\n  replica_lag_time_max_ms: 2000\n",
        certs.path("broker.pem"),
        certs.path("broker-key.pem"),
        certs.path("ca.pem"),
    )
}

/// Brokers replicate over SASL_SSL and the controllers talk mutual TLS:
/// a replicated topic gets all three replicas in sync and serves what an
/// `acks=all` producer wrote; a plaintext peer gets no answer from a
/// controller.
#[test]
fn brokers_replicate_over_sasl_ssl_and_controllers_over_mutual_tls() {
    use std::io::{Read, Write};

    let certs = certificates::Certificates::make();
    let cluster = Cluster::start_each(3, |_, port| secured_broker(&certs, port, "broker-secret"));
    create_replicated_topic(&cluster.bootstrap(), "guarded", 1);
    for i in 0..20u64 {
        produce_one(&cluster.bootstrap(), "guarded", i, FAILOVER_WAIT)
            .unwrap_or_else(|e| panic!("record {i} not acknowledged: {e}"));
    }
    let records = read_partition(&cluster.bootstrap(), "guarded", 0);
    let values: Vec<u64> = records.iter().map(|&(_, v)| v).collect();
    assert_eq!(values, (0..20).collect::<Vec<u64>>());

    let mut plaintext = std::net::TcpStream::connect(cluster.controller_addr(0)).expect("connect");
    plaintext
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    // A bincode frame as a plaintext controller would send it.
    plaintext
        .write_all(&[0, 0, 0, 4, 4, 0, 0, 0])
        .expect("write");
    let mut answer = Vec::new();
    let _ = plaintext.read_to_end(&mut answer);
    // At most a TLS alert record (content type 21), then the connection closes.
    assert!(
        answer.first().is_none_or(|&kind| kind == 21),
        "a plaintext peer got {answer:?} from a TLS controller"
    );
}

/// A broker that logs in to the others with a wrong password never
/// replicates: it leaves the ISR of the partitions it follows and says why.
#[test]
fn a_broker_with_a_wrong_inter_broker_password_stays_out_of_sync() {
    let certs = certificates::Certificates::make();
    let cluster = Cluster::start_each(3, |node, port| {
        let password = if node == 3 { "wrong" } else { "broker-secret" };
        secured_broker(&certs, port, password)
    });
    create_assigned_topic(&cluster.bootstrap(), "followed", &[1, 2, 3]);
    wait_until(
        FAILOVER_WAIT,
        "broker 3 leaves the ISR of followed/0",
        || partition_view(&cluster.bootstrap(), "followed", 0).is_some_and(|p| p.isr == [1, 2]),
    );
    let log = cluster.stderr(cluster.index_of(3));
    assert!(
        log.contains("logging in to") && log.contains("as broker with PLAIN"),
        "broker 3 does not say why it cannot replicate:\n{log}"
    );
}

/// A broker that is not among the voters joins a running cluster as an
/// observer: it gets the metadata, registers, leads and follows partitions
/// like the others, and after a restart is back in the ISR of its
/// partitions. That is how a cluster grows without touching the voters.
#[test]
fn an_observer_joins_a_running_cluster_and_serves_partitions() {
    let mut cluster = Cluster::configure_with_voters(4, 3, "");
    for i in 0..3 {
        cluster.launch(i);
    }
    for i in 0..3 {
        cluster.wait_listening(i);
    }
    wait_until(FAILOVER_WAIT, "brokers 1 to 3 are registered", || {
        metadata(&cluster.bootstrap_of(0)).is_some_and(|m| broker_ids(&m) == [1, 2, 3])
    });
    cluster.launch(3);
    cluster.wait_listening(3);
    wait_until(
        FAILOVER_WAIT,
        "the observer, broker 4, is registered",
        || metadata(&cluster.bootstrap_of(0)).is_some_and(|m| broker_ids(&m) == [1, 2, 3, 4]),
    );
    create_assigned_topic(&cluster.bootstrap(), "observed", &[4, 1, 2]);
    wait_until(
        FAILOVER_WAIT,
        "broker 4 leads observed/0 with 3 in sync",
        || {
            partition_view(&cluster.bootstrap(), "observed", 0)
                .is_some_and(|p| p.leader == 4 && p.fully_in_sync(3))
        },
    );
    for i in 0..10u64 {
        produce_one(&cluster.bootstrap(), "observed", i, FAILOVER_WAIT)
            .unwrap_or_else(|e| panic!("record {i} not acknowledged: {e}"));
    }
    cluster.kill9(3);
    cluster.restart(3);
    wait_until(
        FAILOVER_WAIT,
        "the restarted observer is back in sync",
        || {
            partition_view(&cluster.bootstrap(), "observed", 0)
                .is_some_and(|p| p.isr.contains(&4) && p.fully_in_sync(3))
        },
    );
    wait_until(FAILOVER_WAIT, "every broker lists the four again", || {
        (0..4).all(|i| {
            metadata(&cluster.bootstrap_of(i)).is_some_and(|m| broker_ids(&m) == [1, 2, 3, 4])
        })
    });
    let values: Vec<u64> = read_partition(&cluster.bootstrap(), "observed", 0)
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(values, (0..10).collect::<Vec<u64>>());
}

/// `kafka_python_broker_configs.py` asking broker `i`: its stdout, or its
/// error output when it failed.
fn broker_configs(cluster: &Cluster, i: usize, args: &[&str]) -> Result<String, String> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/scripts/kafka_python_broker_configs.py"
    );
    let output = Command::new("python3")
        .arg(script)
        .args(["--bootstrap", &cluster.bootstrap_of(i)])
        .args(["--node", &cluster.node_id(i).to_string()])
        .args(args)
        .output()
        .expect("python3 runs");
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).trim().to_string();
    if output.status.success() {
        Ok(text(&output.stdout))
    } else {
        Err(text(&output.stderr))
    }
}

/// Dynamic broker configs set through one broker ride the metadata log:
/// another broker describes them (a cluster default, and a value set for
/// that broker's id) and still has them after a kill -9 and a restart,
/// while a third broker is not given the second one's own value.
#[test]
fn dynamic_broker_configs_reach_every_broker_and_survive_a_restart() {
    let mut cluster = Cluster::start(3, "");
    let second = cluster.node_id(1).to_string();
    let third = cluster.node_id(2).to_string();
    let set = |cluster: &Cluster, resource: &str, key: &str, value: &str| {
        let result = broker_configs(cluster, 0, &["set", resource, key, value]);
        assert_eq!(result, Ok(String::new()), "set {key} on '{resource}'");
    };
    set(&cluster, "", "log.retention.ms", "120000");
    set(&cluster, &second, "log.retention.bytes", "4096");
    let described = |cluster: &Cluster, i: usize, resource: &str, key: &str| {
        broker_configs(cluster, i, &["describe", resource, key])
    };
    let in_force_on_second = |cluster: &Cluster| {
        described(cluster, 1, &second, "log.retention.ms").as_deref() == Ok("120000 3")
            && described(cluster, 1, &second, "log.retention.bytes").as_deref() == Ok("4096 2")
    };
    wait_until(
        Duration::from_secs(30),
        "the second broker has the dynamic values",
        || in_force_on_second(&cluster),
    );
    assert_eq!(
        described(&cluster, 2, &third, "log.retention.bytes").as_deref(),
        Ok("-1 5"),
        "another broker's own value does not apply to the third"
    );
    assert_eq!(
        described(&cluster, 2, &third, "log.retention.ms").as_deref(),
        Ok("120000 3")
    );
    cluster.kill9(1);
    cluster.restart(1);
    wait_until(
        Duration::from_secs(60),
        "the restarted broker has the dynamic values again",
        || in_force_on_second(&cluster),
    );
}

/// ACLs and SCRAM users live in the cluster metadata: created through one
/// broker, ACLs are enforced by every leader and listed by every broker,
/// and a SCRAM user logs in anywhere, also after a restart (confluent-kafka
/// as the administrator, as alice and as carol).
#[test]
fn acls_and_scram_users_created_through_one_broker_hold_on_every_broker() {
    let sasl_ports = std::sync::Mutex::new(std::collections::BTreeMap::new());
    let mut cluster = Cluster::start_each(3, |node, port| {
        let sasl = cluster_process::free_port();
        sasl_ports.lock().unwrap().insert(node, sasl);
        format!(
            "listeners: \"PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sasl}\"\n\
             sasl_plain_users: {{alice: alice-secret, admin: admin-secret}}\n\
             authorizer: acl\nsuper_users: [\"User:admin\", \"User:ANONYMOUS\"]\n"
        )
    });
    let sasl: Vec<String> = sasl_ports
        .lock()
        .unwrap()
        .values()
        .map(|port| format!("127.0.0.1:{port}"))
        .collect();
    create_replicated_topic(&cluster.bootstrap(), "guarded", 3);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/scripts/confluent_cluster_acls.py"
    );
    let run = |extra: &[&str]| {
        let output = Command::new("python3")
            .arg(script)
            .arg("--sasl")
            .args(&sasl)
            .args(extra)
            .output()
            .expect("python3 runs (scripts/test installs confluent-kafka)");
        assert!(
            output.status.success(),
            "confluent_cluster_acls.py {extra:?}:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    };
    run(&[]);
    cluster.kill9(1);
    cluster.restart(1);
    run(&["--granted"]);
}

/// A failed fsync takes a broker's only log directory offline. Kafka then
/// halts the broker; this one stays up, says so in its heartbeats, and the
/// controller fences it: its partitions get leaders elsewhere and `acks=all`
/// producers go on there. Without that, the partition stays on the broker
/// that can no longer write, and every produce fails with
/// KAFKA_STORAGE_ERROR until its message times out.
#[test]
fn a_broker_whose_log_directory_fails_hands_over_its_leadership() {
    const TOPIC: &str = "doomed";
    // Declared first, dropped last: the brokers go before the disk.
    let disk = PowerLossDisk::mount();
    let on_disk = disk.path().join("data");
    let cluster = Cluster::start_each(3, |id, _| match id {
        1 => format!("data_dir: {}\n", on_disk.display()),
        _ => String::new(),
    });
    create_assigned_topic(&cluster.bootstrap(), TOPIC, &[1, 2, 3]);
    wait_until(FAILOVER_WAIT, "all three replicas are in sync", || {
        in_sync_everywhere(&cluster.live_brokers(), TOPIC, 0)
    });
    let before = produce_one(&cluster.bootstrap(), TOPIC, 0, FAILOVER_WAIT)
        .expect("acks=all produce to broker 1");

    disk.fail_fsyncs_under(&format!("{TOPIC}-0"));
    let after = produce_one(&cluster.bootstrap(), TOPIC, 1, FAILOVER_WAIT)
        .expect("acks=all produce once broker 1's log directory failed");
    let view = partition_view(&cluster.bootstrap_of(1), TOPIC, 0).expect("metadata");
    assert_ne!(view.leader, 1, "leader after the failure");
    assert!(
        !view.isr.contains(&1),
        "broker 1 still in the ISR: {view:?}"
    );
    let listed = metadata(&cluster.bootstrap_of(1)).expect("broker 1 still answers metadata");
    assert_eq!(
        broker_ids(&listed),
        [2, 3],
        "brokers after fencing broker 1"
    );
    let records = read_partition(&cluster.bootstrap_of(1), TOPIC, 0);
    assert!(records.contains(&(before, 0)), "{records:?}");
    assert!(records.contains(&(after, 1)), "{records:?}");
}

/// kafka-python's describe_metadata_quorum (DescribeQuorum v2), sent to
/// whichever broker it picks: the raft leader and epoch, the three voters
/// with their controller listeners, and the observer.
#[test]
fn describe_quorum_shows_the_controller_quorum() {
    let mut cluster = Cluster::configure_with_voters(4, 3, "");
    for i in 0..4 {
        cluster.launch(i);
    }
    for i in 0..4 {
        cluster.wait_listening(i);
    }
    wait_until(FAILOVER_WAIT, "brokers 1 to 4 are registered", || {
        metadata(&cluster.bootstrap_of(0)).is_some_and(|m| broker_ids(&m) == [1, 2, 3, 4])
    });
    let quorum = |i: usize| -> serde_json::Value {
        let output = Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/scripts/kafka_python_quorum.py"
            ))
            .arg(cluster.bootstrap_of(i))
            .output()
            .expect("python3 runs (scripts/test installs kafka-python)");
        assert!(
            output.status.success(),
            "kafka_python_quorum.py: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("JSON")
    };
    let mut seen = serde_json::Value::Null;
    wait_until(FAILOVER_WAIT, "every broker sees the observer join", || {
        (0..4).all(|i| {
            seen = quorum(i);
            seen["observers"] == serde_json::json!([4])
        })
    });
    for i in 0..4 {
        let view = quorum(i);
        assert_eq!(view["error"], serde_json::Value::Null, "{view}");
        assert_eq!(view["voters"], serde_json::json!([1, 2, 3]), "{view}");
        assert_eq!(view["nodes"], serde_json::json!([1, 2, 3]), "{view}");
        let leader = view["leader"].as_i64().expect("a leader");
        assert!((1..=3).contains(&leader), "{view}");
        assert!(view["epoch"].as_i64() >= Some(1), "{view}");
        assert!(view["high_watermark"].as_i64() >= Some(1), "{view}");
        // The broker that answered knows its own log end at least, among
        // the voters or, for the observer, the observers (the leader knows
        // every voter's). kafka-python asks whichever broker it likes.
        let ends = ["voter_ends", "observer_ends"]
            .iter()
            .flat_map(|list| view[list].as_array().cloned().unwrap_or_default());
        assert!(ends.into_iter().any(|e| e.as_i64() >= Some(1)), "{view}");
    }
}
