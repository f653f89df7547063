//! The broker's registries over time, with an in-memory broker.

use super::{Broker, Storage};
use crate::config::BrokerConfig;
use crate::group::classic::{JoinRequest, LeaveMember};
use crate::group::{Commit, Heartbeat, Join, Leave};
use crate::store::acls::EVERY_ACL;
use crate::store::offsets::{CommittedOffset, PartitionOffset};
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The bound of every wait: far above a few idle checks.
const PATIENCE: Duration = Duration::from_secs(20);

fn join_request() -> JoinRequest {
    JoinRequest {
        member_id: String::new(),
        group_instance_id: None,
        client_id: "test".to_string(),
        client_host: "/127.0.0.1".to_string(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 10_000,
        protocol_type: "consumer".to_string(),
        protocols: vec![("range".to_string(), Bytes::new())],
        require_known_member_id: false,
        reason: None,
    }
}

/// One member joins `group` (a generation of its own) and leaves it.
async fn join_and_leave(broker: &Broker, group: &str) {
    let joined = broker
        .group(group)
        .send(Join(join_request()))
        .await
        .unwrap();
    assert_eq!(joined.error, None, "{group}: {joined:?}");
    let leave = Leave(vec![LeaveMember {
        member_id: joined.member_id,
        group_instance_id: None,
    }]);
    let left = broker.group(group).send(leave).await.unwrap();
    assert!(left.iter().all(|(_, result)| result.is_ok()), "{left:?}");
}

async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "waited too long for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A commit of `offset` for orders-0 from outside the group's
/// management (generation -1).
fn outside_commit(offset: i64) -> Commit {
    Commit {
        member_id: String::new(),
        group_instance_id: None,
        generation_id: -1,
        offsets: vec![PartitionOffset {
            topic: "orders".to_string(),
            partition: 0,
            committed: CommittedOffset {
                offset,
                leader_epoch: -1,
                metadata: None,
                commit_timestamp_ms: crate::clock::now_ms(),
            },
        }],
    }
}

fn start() -> Arc<Broker> {
    let config = BrokerConfig {
        worker_threads: 1,
        group_initial_rebalance_delay_ms: 0,
        retention_check_interval_ms: 50,
        ..BrokerConfig::default()
    };
    Broker::start_with(config, Storage::Memory).unwrap()
}

#[actix_rt::test]
async fn idle_group_coordinators_stop_and_start_again_on_demand() {
    let broker = start();
    for i in 0..30 {
        join_and_leave(&broker, &format!("group-{i}")).await;
    }
    let commit = outside_commit(42);
    let stale = broker.group("group-0");
    assert_eq!(stale.send(commit).await.unwrap(), Ok(()));

    until("the idle coordinators to stop", || broker.groups.is_empty()).await;

    // What the group committed stays.
    let committed = broker
        .offsets()
        .fetch("group-0", "orders", 0)
        .await
        .unwrap();
    assert_eq!(committed.map(|c| c.offset), Some(42));
    // A request that took the address before the stop fails to send (the
    // api handlers answer COORDINATOR_NOT_AVAILABLE), and the retry gets a
    // new coordinator.
    let heartbeat = || Heartbeat {
        member_id: "gone".to_string(),
        group_instance_id: None,
        generation_id: 1,
    };
    assert!(stale.send(heartbeat()).await.is_err());
    assert!(broker.existing_group("group-0").is_none());
    join_and_leave(&broker, "group-0").await;
    assert_eq!(broker.groups.len(), 1);
    broker.stop();
}

#[actix_rt::test]
async fn a_group_with_members_keeps_its_coordinator() {
    let broker = start();
    let joined = broker
        .group("busy")
        .send(Join(join_request()))
        .await
        .unwrap();
    assert_eq!(joined.error, None);
    join_and_leave(&broker, "quiet").await;
    until("the quiet group's coordinator to stop", || {
        !broker.groups.contains_key("quiet")
    })
    .await;
    assert!(broker.existing_group("busy").is_some());
    broker.stop();
}

/// A commit taken by a group coordinator, and the reads that OffsetFetch,
/// ListGroups, DeleteGroups, DescribeAcls and the metrics page make from
/// tasks on the arbiters, make no sled call on an arbiter thread.
#[actix_rt::test]
async fn the_offset_and_acl_stores_are_read_and_written_off_the_arbiters() {
    let broker = start();
    let commit = outside_commit(7);
    let committed = broker.group("off-the-arbiters").send(commit).await;
    assert_eq!(committed.unwrap(), Ok(()));
    let (done, answer) = tokio::sync::oneshot::channel();
    let on_arbiter = broker.clone();
    let spawned = broker.next_arbiter().spawn(async move {
        let broker = on_arbiter;
        let fetched = broker.offsets().fetch_all("off-the-arbiters").await;
        let listed = broker.group_ids().await;
        let exists = broker.group_exists("off-the-arbiters").await;
        let acls = broker.describe_acls(&EVERY_ACL).await;
        let metrics = crate::metrics_endpoint::render(&broker).await;
        let _ = done.send((fetched, listed, exists, acls, metrics));
    });
    assert!(spawned, "the arbiter is running");
    let (fetched, listed, exists, acls, metrics) = answer.await.unwrap();
    assert_eq!(fetched.unwrap().len(), 1);
    assert!(listed.unwrap().contains(&"off-the-arbiters".to_string()));
    assert!(exists.unwrap());
    assert!(acls.unwrap().is_empty());
    assert!(metrics.contains("actorlog_group_lag"));
    let seen = crate::store::state_db::sled_threads::seen();
    // actix-rt names its arbiter threads `actix-rt|system:N|arbiter:M`.
    assert!(
        !seen.iter().any(|name| name.starts_with("actix-rt|")),
        "sled was called on an arbiter: {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|name| name.starts_with("actorlog-store-writer")),
        "{seen:?}"
    );
    broker.stop();
}
