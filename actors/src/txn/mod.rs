//! The transaction coordinator: one actor for every transactional id of the
//! broker, each id's state a [`state::Txn`] kept in sled (made durable
//! before any answer that depends on it).
//!
//! Ending a transaction is two-phase: the prepare state is stored, then a
//! commit or abort marker is written to every partition of the transaction
//! (and, on commit, its consumer offsets stored), then the complete state is
//! stored. A broker that dies in between finishes the end when it starts
//! again, so a transaction is never left half visible. Open transactions
//! that outlive their timeout are aborted, fencing their producer.
//!
//! In a cluster the state is not kept in sled but appended to a
//! [`TxnLog`] (the id's partition of the offsets topic, replicated), and
//! the coordinator holds only the ids of the partitions this broker leads:
//! it [`Adopt`]s them from the log when it becomes their leader, finishing
//! any end its predecessor left, and [`Release`]s them when it stops.

pub mod state;

use crate::clock::now_ms;
use crate::partition::WriteMarker;
use crate::store::offsets::{OffsetStore, PartitionOffset};
use crate::store::state_db::{StateDb, StateTree};
use crate::store::StoreError;
use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, MessageResult,
    ResponseActFuture, WrapFuture,
};
use futures_util::future::{join_all, BoxFuture};
use futures_util::FutureExt;
use kafka_protocol::ResponseError;
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::Arc;
use std::time::Duration;

use self::state::{Bump, EndPlan, Txn};

/// The error for a client that may not know PRODUCER_FENCED: it came with
/// KIP-588 (Kafka 2.7), in InitProducerId v4, AddPartitionsToTxn,
/// AddOffsetsToTxn and EndTxn v2 (and in no TxnOffsetCommit version); older
/// clients, as Kafka answers them, get INVALID_PRODUCER_EPOCH, which they
/// know as fencing.
pub fn fencing_for(error: ResponseError, client_knows_fenced: bool) -> ResponseError {
    match error {
        ResponseError::ProducerFenced if !client_knows_fenced => {
            ResponseError::InvalidProducerEpoch
        }
        other => other,
    }
}

/// How often open transactions are checked against their timeout.
const EXPIRY_CHECK: Duration = Duration::from_secs(1);
/// Kafka's `transaction.max.timeout.ms` default.
const MAX_TIMEOUT_MS: i32 = 900_000;

/// Where a transaction's markers go: its partitions and its groups'
/// committed offsets, wherever they are (behind this trait, the
/// coordinator does not depend on the broker or the cluster).
pub trait Participants: Send + Sync {
    /// Writes `marker` to a partition of the transaction; resolves once it
    /// is written (a partition deleted meanwhile needs none).
    fn write_marker(
        &self,
        topic: &str,
        partition: i32,
        marker: WriteMarker,
    ) -> BoxFuture<'static, Result<(), ResponseError>>;

    /// Ends the transaction's offset commits of `group` where the group's
    /// coordinator keeps them pending (in a cluster); a single broker takes
    /// them from the [`EndPlan`] instead.
    fn end_group_offsets(
        &self,
        group: &str,
        marker: WriteMarker,
    ) -> BoxFuture<'static, Result<(), ResponseError>>;
}

/// Where a cluster replicates a transactional id's state before it counts.
pub trait TxnLog: Send + Sync {
    /// Resolves once `txn` is replicated, or with the client's error.
    fn append(&self, id: &str, txn: &Txn) -> BoxFuture<'static, Result<(), ResponseError>>;
}

/// Where each id's state is made durable.
enum Store {
    /// A single broker: the `transactions` tree of its sled database.
    Sled(StateTree),
    /// A cluster: the id's partition of the offsets topic.
    Log(Arc<dyn TxnLog>),
}

pub struct TxnCoordinator {
    /// Where markers go.
    participants: Arc<dyn Participants>,
    /// The committed-offset store that a committed transaction's consumer
    /// offsets go to (single broker).
    offsets: OffsetStore,
    /// Where each id's [`Txn`] is stored before any answer that depends on it.
    store: Store,
    /// Every transactional id's state, as stored.
    txns: HashMap<String, Txn>,
}

/// A sled or bincode error of this store, kept as the source.
fn io_error(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    StoreError::io("transaction store", e)
}

impl TxnCoordinator {
    /// The tree of the broker's sled database that a single broker's
    /// coordinator keeps its transactional ids in.
    pub fn open_tree(db: &StateDb) -> io::Result<StateTree> {
        db.open_tree("transactions")
    }

    /// A single broker's coordinator: loads every transactional id from
    /// `tree` ([`TxnCoordinator::open_tree`]).
    pub fn open(
        tree: StateTree,
        participants: Arc<dyn Participants>,
        offsets: OffsetStore,
    ) -> io::Result<TxnCoordinator> {
        let txns = tree.load(|tree| {
            let mut txns = HashMap::new();
            for entry in tree.iter() {
                let (key, value) = entry.map_err(io_error)?;
                let id = String::from_utf8(key.to_vec()).map_err(io_error)?;
                txns.insert(id, bincode::deserialize(&value).map_err(io_error)?);
            }
            Ok(txns)
        })?;
        Ok(TxnCoordinator {
            participants,
            offsets,
            store: Store::Sled(tree),
            txns,
        })
    }

    /// A cluster member's coordinator: it holds no id until it adopts them.
    pub fn replicated(
        log: Arc<dyn TxnLog>,
        participants: Arc<dyn Participants>,
        offsets: OffsetStore,
    ) -> TxnCoordinator {
        TxnCoordinator {
            participants,
            offsets,
            store: Store::Log(log),
            txns: HashMap::new(),
        }
    }

    /// Stores an id's state; the future resolves once it is durable.
    fn save(&self, id: &str) -> BoxFuture<'static, Result<(), ResponseError>> {
        let Some(txn) = self.txns.get(id) else {
            return futures_util::future::ready(Ok(())).boxed();
        };
        match &self.store {
            Store::Log(log) => log.append(id, txn),
            Store::Sled(tree) => {
                // Queued on the store's writer now, so an id's states are
                // stored in the order this actor made them.
                let written = bincode::serialize(txn).map_err(io_error).map(|value| {
                    let key = id.as_bytes().to_vec();
                    tree.write(move |tree| tree.insert(key, value).map_err(io_error))
                });
                async move {
                    match written {
                        Ok(written) => written.await.map(drop),
                        Err(e) => Err(e),
                    }
                    .map_err(|e| {
                        log::error!("{e}");
                        ResponseError::KafkaStorageError
                    })
                }
                .boxed()
            }
        }
    }

    /// Finishes, in the background, every end that was prepared but whose
    /// markers may not all be written.
    fn finish_prepared(&mut self, ctx: &mut Context<Self>, ids: impl Iterator<Item = String>) {
        let unfinished: Vec<(String, EndPlan)> = ids
            .filter_map(|id| {
                let txn = self.txns.get(&id).filter(|t| t.is_preparing())?;
                let plan = txn.plan();
                Some((id, plan))
            })
            .collect();
        for (id, plan) in unfinished {
            log::info!("finishing the interrupted end of transaction {id}");
            ctx.spawn(self.end(id, plan).map(|_, _, _| ()));
        }
    }

    /// Stores the prepare state, writes the markers and offsets, then stores
    /// the complete state; resolves with the outcome.
    fn end(
        &mut self,
        id: String,
        plan: EndPlan,
    ) -> ResponseActFuture<Self, Result<(), ResponseError>> {
        let saved = self.save(&id);
        let participants = self.participants.clone();
        let offsets = self.offsets.clone();
        Box::pin(
            async move {
                saved.await?;
                carry_out(participants, offsets, plan).await
            }
            .into_actor(self)
            .then(move |done, act, _| {
                if done.is_ok() {
                    if let Some(txn) = act.txns.get_mut(&id) {
                        txn.complete();
                    }
                }
                let saved = act.save(&id);
                async move { done.and(saved.await) }.into_actor(act)
            }),
        )
    }

    fn txn(&mut self, id: &str) -> Result<&mut Txn, ResponseError> {
        self.txns
            .get_mut(id)
            .ok_or(ResponseError::InvalidProducerIdMapping)
    }
}

/// Writes a transaction's markers and, on commit, its offsets.
async fn carry_out(
    participants: Arc<dyn Participants>,
    offsets: OffsetStore,
    plan: EndPlan,
) -> Result<(), ResponseError> {
    let marker = WriteMarker {
        producer_id: plan.producer_id,
        producer_epoch: plan.producer_epoch,
        commit: plan.commit,
        coordinator_epoch: 0,
    };
    let partitions = plan
        .partitions
        .iter()
        .map(|(topic, partition)| participants.write_marker(topic, *partition, marker));
    let groups = plan
        .groups
        .iter()
        .map(|group| participants.end_group_offsets(group, marker));
    for written in join_all(partitions.chain(groups)).await {
        written?;
    }
    offsets.commit_groups(&plan.offsets).await.map_err(|e| {
        log::error!("committing transactional offsets: {e}");
        ResponseError::KafkaStorageError
    })?;
    Ok(())
}

impl Actor for TxnCoordinator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Finish the ends a crash interrupted.
        let ids: Vec<String> = self.txns.keys().cloned().collect();
        self.finish_prepared(ctx, ids.into_iter());
        ctx.run_interval(EXPIRY_CHECK, |act, ctx| {
            let now = now_ms();
            let expired: Vec<String> = act
                .txns
                .iter()
                .filter(|(_, txn)| txn.expired(now))
                .map(|(id, _)| id.clone())
                .collect();
            for id in expired {
                let Some(Bump::Abort(plan)) =
                    act.txns.get_mut(&id).map(|t| t.bump_epoch(t.timeout_ms))
                else {
                    continue;
                };
                log::info!("aborting transaction {id}: it outlived its timeout");
                ctx.spawn(act.end(id, plan).map(|_, _, _| ()));
            }
        });
    }
}

/// InitProducerId with a transactional id. `fresh_producer_id` is used if
/// the id is new or its epochs are exhausted.
#[derive(Message)]
#[rtype(result = "Result<(i64, i16), ResponseError>")]
pub struct InitTransactional {
    pub id: String,
    pub timeout_ms: i32,
    pub fresh_producer_id: i64,
}

impl Handler<InitTransactional> for TxnCoordinator {
    type Result = ResponseActFuture<Self, Result<(i64, i16), ResponseError>>;

    fn handle(&mut self, msg: InitTransactional, _: &mut Self::Context) -> Self::Result {
        if msg.timeout_ms <= 0 || msg.timeout_ms > MAX_TIMEOUT_MS {
            return Box::pin(actix::fut::ready(Err(
                ResponseError::InvalidTransactionTimeout,
            )));
        }
        let id = msg.id;
        let abort = match self.txns.get_mut(&id) {
            Some(txn) if txn.is_preparing() => {
                return Box::pin(actix::fut::ready(Err(
                    ResponseError::ConcurrentTransactions,
                )))
            }
            Some(txn) => match txn.bump_epoch(msg.timeout_ms) {
                Bump::Done => None,
                Bump::Abort(plan) => Some(plan),
                Bump::Exhausted => {
                    *txn = Txn::new(msg.fresh_producer_id, msg.timeout_ms);
                    None
                }
            },
            None => {
                self.txns
                    .insert(id.clone(), Txn::new(msg.fresh_producer_id, msg.timeout_ms));
                None
            }
        };
        let ended: ResponseActFuture<Self, Result<(), ResponseError>> = match abort {
            Some(plan) => self.end(id.clone(), plan),
            None => Box::pin(self.save(&id).into_actor(self)),
        };
        Box::pin(ended.map(move |done, act, _| {
            done?;
            let txn = act.txn(&id)?;
            txn.status = state::Status::Empty;
            Ok((txn.producer_id, txn.epoch))
        }))
    }
}

/// Which part of a transaction a request adds.
pub enum Addition {
    Partitions(Vec<(String, i32)>),
    Group(String),
    Offsets {
        group: String,
        offsets: Vec<PartitionOffset>,
    },
}

/// AddPartitionsToTxn, AddOffsetsToTxn and TxnOffsetCommit.
#[derive(Message)]
#[rtype(result = "Result<(), ResponseError>")]
pub struct Add {
    pub id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub addition: Addition,
}

impl Handler<Add> for TxnCoordinator {
    type Result = ResponseActFuture<Self, Result<(), ResponseError>>;

    fn handle(&mut self, msg: Add, _: &mut Self::Context) -> Self::Result {
        let (pid, epoch, now) = (msg.producer_id, msg.producer_epoch, now_ms());
        let changed = self.txn(&msg.id).and_then(|txn| match msg.addition {
            Addition::Partitions(partitions) => txn.add_partitions(pid, epoch, partitions, now),
            Addition::Group(group) => txn.add_group(pid, epoch, group, now),
            Addition::Offsets { group, offsets } => txn.add_offsets(pid, epoch, &group, offsets),
        });
        let saved = changed.map(|()| self.save(&msg.id));
        Box::pin(
            async move {
                match saved {
                    Ok(saved) => saved.await,
                    Err(e) => Err(e),
                }
            }
            .into_actor(self),
        )
    }
}

/// EndTxn: commit or abort.
#[derive(Message)]
#[rtype(result = "Result<(), ResponseError>")]
pub struct End {
    pub id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
}

impl Handler<End> for TxnCoordinator {
    type Result = ResponseActFuture<Self, Result<(), ResponseError>>;

    fn handle(&mut self, msg: End, _: &mut Self::Context) -> Self::Result {
        let plan = self
            .txn(&msg.id)
            .and_then(|txn| txn.prepare_end(msg.producer_id, msg.producer_epoch, msg.commit));
        match plan {
            Ok(Some(plan)) => self.end(msg.id, plan),
            Ok(None) => Box::pin(actix::fut::ready(Ok(()))),
            Err(e) => Box::pin(actix::fut::ready(Err(e))),
        }
    }
}

/// Every transactional id with its state (DescribeTransactions, ListTransactions).
#[derive(Message)]
#[rtype(result = "Vec<(String, Txn)>")]
pub struct Snapshot;

impl Handler<Snapshot> for TxnCoordinator {
    type Result = MessageResult<Snapshot>;

    fn handle(&mut self, _: Snapshot, _: &mut Self::Context) -> Self::Result {
        let mut all: Vec<(String, Txn)> = self
            .txns
            .iter()
            .map(|(id, t)| (id.clone(), t.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        MessageResult(all)
    }
}

/// The ids of a partition of the offsets topic this broker now leads, with
/// their state as replayed from it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Adopt(pub BTreeMap<String, Txn>);

impl Handler<Adopt> for TxnCoordinator {
    type Result = ();

    fn handle(&mut self, Adopt(txns): Adopt, ctx: &mut Self::Context) {
        let ids: Vec<String> = txns.keys().cloned().collect();
        self.txns.extend(txns);
        self.finish_prepared(ctx, ids.into_iter());
    }
}

/// This broker no longer coordinates the ids for which `owned` holds.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Release(pub Box<dyn Fn(&str) -> bool + Send>);

impl Handler<Release> for TxnCoordinator {
    type Result = ();

    fn handle(&mut self, Release(owned): Release, _: &mut Self::Context) {
        self.txns.retain(|id, _| !owned(id));
    }
}
