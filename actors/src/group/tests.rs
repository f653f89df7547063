//! The coordinator actor around the store: a commit waits for the store
//! without keeping its coordinator from answering.

use super::*;
use crate::store::offsets::CommittedOffset;
use crate::store::state_db;
use actix::Arbiter;

/// Far above any wait here; reached only if the store or the actor is stuck.
const PATIENCE: Duration = Duration::from_secs(20);

fn commit(offset: i64) -> Commit {
    Commit {
        member_id: String::new(),
        group_instance_id: None,
        generation_id: -1,
        offsets: vec![PartitionOffset {
            topic: "t".into(),
            partition: 0,
            committed: CommittedOffset {
                offset,
                leader_epoch: -1,
                metadata: None,
                commit_timestamp_ms: 1,
            },
        }],
    }
}

/// The store's writer is held by an earlier write: the coordinator, on its
/// arbiter, still answers while its commit waits, and the commit is
/// answered once the writer has applied it.
#[actix_rt::test]
async fn a_coordinator_answers_while_its_commit_waits_for_the_store() {
    let db = state_db::open(None).unwrap();
    let offsets = OffsetStore::open(&db).unwrap();
    let (release, held) = std::sync::mpsc::channel::<()>();
    let holding = db.open_tree("held").unwrap().write(move |_| {
        // Bounded, so that a store that ran this on the test's own thread
        // fails the test below instead of hanging it.
        let _ = held.recv_timeout(PATIENCE);
        Ok(())
    });
    let arbiter = Arbiter::new();
    let coordinator = GroupCoordinator::new(
        "g".into(),
        GroupConfig::default(),
        ConsumerGroupConfig::default(),
        offsets.clone(),
        None,
    );
    let addr = GroupCoordinator::start_in_arbiter(&arbiter.handle(), move |_| coordinator);
    let committed = addr.send(commit(5));
    let described = addr.send(Describe).await.unwrap();
    assert!(described.members.is_empty());
    assert_eq!(
        offsets.fetch("g", "t", 0).await.unwrap(),
        None,
        "the commit waits for the held writer"
    );
    release.send(()).unwrap();
    assert_eq!(committed.await.unwrap(), Ok(()));
    holding.await.unwrap();
    let stored = offsets.fetch("g", "t", 0).await.unwrap();
    assert_eq!(stored.map(|c| c.offset), Some(5));
    arbiter.stop();
    arbiter.join().unwrap();
}
