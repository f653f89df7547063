//! How the workers of one `group.id` share the source tasks, as Kafka
//! Connect's distributed mode does, with nothing but an ordinary consumer
//! group: every worker subscribes as `<group.id>-sources` to a small
//! internal topic whose partition `i` stands for the `i`-th source
//! connector by name. A worker runs a source task only while the group
//! assigns it that partition; when a worker leaves (or its session times
//! out after a kill), the group hands its partitions, and so its tasks, to
//! the others. Exactly-once survives a takeover because the new task fences
//! the old one through the connector's transactional id and reads the
//! committed position back, as a restarted task does.

use crate::clients::{create_source_tasks_topic, source_group_consumer};
use crate::config::ConnectConfig;
use crate::error::ConnectError;
use crate::worker::Worker;
use actix::prelude::*;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::TopicPartitionList;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The internal topic whose partitions stand for the source connectors.
pub const SOURCE_TASKS_TOPIC: &str = "__actorlog_connect_source_tasks";

/// The source connectors' names in partition order.
pub fn source_connectors(config: &ConnectConfig) -> Vec<String> {
    let mut names: Vec<String> = config
        .connectors
        .iter()
        .filter(|c| c.kind.role() == "source")
        .map(|c| c.name.clone())
        .collect();
    names.sort();
    names
}

/// The group gave this worker these partitions (cooperative: in addition
/// to those it had).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Assigned(pub Vec<i32>);

/// The group takes these partitions away; `done` is dropped once their
/// tasks stopped, so no other worker starts one while it still runs here.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Revoked {
    pub partitions: Vec<i32>,
    pub done: mpsc::Sender<()>,
}

/// This worker's membership: a thread polling the group's consumer, which
/// serves the rebalances.
pub struct Membership {
    leaving: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Membership {
    /// Creates the topic if needed and joins the group; `None` if the
    /// config has no source connector.
    pub async fn join(
        config: &ConnectConfig,
        worker: Addr<Worker>,
    ) -> Result<Option<Self>, ConnectError> {
        let sources = source_connectors(config).len();
        if sources == 0 {
            return Ok(None);
        }
        create_source_tasks_topic(config, SOURCE_TASKS_TOPIC, sources).await?;
        let consumer = source_group_consumer(config, Rebalances { worker })?;
        consumer.subscribe(&[SOURCE_TASKS_TOPIC])?;
        let leaving = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&leaving);
        let thread = std::thread::Builder::new()
            .name("source-group".into())
            .spawn(move || serve(&consumer, &flag))?;
        Ok(Some(Self { leaving, thread }))
    }

    /// Leaves the group at once (revoking this worker's tasks), so the
    /// others take them over without waiting for the session to time out.
    pub async fn leave(self) {
        self.leaving.store(true, Ordering::Relaxed);
        let thread = self.thread;
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
}

/// Polls until told to leave; the rebalance callbacks run inside `poll`.
/// The consumer's drop, after, leaves the group.
fn serve(consumer: &BaseConsumer<Rebalances>, leaving: &AtomicBool) {
    while !leaving.load(Ordering::Relaxed) {
        // The topic holds no record: a poll only serves the group.
        if let Some(Err(e)) = consumer.poll(Duration::from_millis(200)) {
            log::warn!("{SOURCE_TASKS_TOPIC}: {e}");
        }
    }
}

/// Passes the group's decisions to the worker.
struct Rebalances {
    worker: Addr<Worker>,
}

impl ClientContext for Rebalances {}

impl ConsumerContext for Rebalances {
    /// Before giving partitions up: waits until their tasks stopped.
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(list) => {
                let (done, stopped) = mpsc::channel();
                let partitions = ours(list);
                log::info!("source tasks: partitions {partitions:?} revoked");
                self.worker.do_send(Revoked { partitions, done });
                // Err once the worker dropped `done`: the tasks stopped (or
                // the worker is gone).
                let _ = stopped.recv();
            }
            Rebalance::Assign(_) => {}
            Rebalance::Error(e) => log::warn!("source tasks: rebalance failed: {e}"),
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            let partitions = ours(list);
            log::info!("source tasks: partitions {partitions:?} assigned");
            self.worker.do_send(Assigned(partitions));
        }
    }
}

fn ours(list: &TopicPartitionList) -> Vec<i32> {
    list.elements_for_topic(SOURCE_TASKS_TOPIC)
        .iter()
        .map(|p| p.partition())
        .collect()
}
