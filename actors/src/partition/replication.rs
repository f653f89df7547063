//! The partition actor as a replica: leader or follower as the cluster
//! metadata says, or standalone on a single broker.
//!
//! A leader stamps its epoch on what it appends, learns its followers'
//! progress from their fetches ([`ReplicaRead`] on a [`super::Read`]),
//! keeps the ISR through the controller ([`ReplicaControl`]) and answers
//! acks=all appends once the high watermark passes them. A follower takes
//! no client appends or reads; its fetcher copies the leader's batches in
//! with [`ReplicaAppend`], answering only once they are fsynced, so the
//! offset it fetches next is what it holds on disk.

use super::batch::BatchHeader;
use super::disk::answered;
use super::local_log::ReadError;
use super::replicas::LeaderState;
use super::Partition;
use crate::clock::now_ms;
use actix::{
    ActorFutureExt, AsyncContext, Context, Handler, Message, ResponseFuture, SpawnHandle,
    WrapFuture,
};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// How the leader of a partition reaches the controller.
pub trait ReplicaControl: Send + Sync {
    /// Whether `broker` may join an ISR (the controller refuses fenced ones).
    fn eligible(&self, broker: i32) -> bool;

    /// Proposes a new ISR (Kafka's AlterPartition). Answers the ISR and
    /// partition epoch the controller holds afterwards.
    fn alter_isr(
        &self,
        change: IsrChange,
    ) -> BoxFuture<'static, Result<(Vec<i32>, i32), ResponseError>>;
}

/// An ISR change as the leader proposes it.
#[derive(Debug, Clone)]
pub struct IsrChange {
    pub topic: Arc<str>,
    pub partition: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub isr: Vec<i32>,
}

/// What this broker is for the partition.
pub(super) enum Role {
    /// The only broker: every append is committed once written.
    Standalone,
    Leader(Box<Leadership>),
    Follower {
        leader_epoch: i32,
        /// The leader's high watermark as last fetched, capped by the log end.
        high_watermark: i64,
    },
}

pub(super) struct Leadership {
    pub(super) state: LeaderState,
    control: Arc<dyn ReplicaControl>,
    topic: Arc<str>,
    partition: i32,
    lag_ms: i64,
    /// acks=all appends waiting for the high watermark, by the offset it
    /// must reach.
    waiting: BTreeMap<i64, Vec<oneshot::Sender<Result<(), ResponseError>>>>,
    /// The periodic ISR check of this leadership, cancelled when it ends.
    isr_check: Option<SpawnHandle>,
}

impl Leadership {
    /// Answers every waiting append the high watermark has passed.
    fn release(&mut self) {
        let hw = self.state.high_watermark();
        let still = self.waiting.split_off(&(hw + 1));
        for done in std::mem::replace(&mut self.waiting, still)
            .into_values()
            .flatten()
        {
            let _ = done.send(Ok(()));
        }
    }

    /// Answers every waiting append with `error`: leadership moved.
    fn fail_all(&mut self, error: ResponseError) {
        for done in std::mem::take(&mut self.waiting).into_values().flatten() {
            let _ = done.send(Err(error));
        }
    }
}

/// A follower's fetch, as the leader sees it.
#[derive(Debug, Clone, Copy)]
pub struct ReplicaRead {
    pub replica: i32,
    /// The epoch of the follower's last batch (-1: none), for the
    /// diverging-epoch check (KIP-320).
    pub last_fetched_epoch: i32,
}

impl Partition {
    /// A replica of a cluster's partition, opened before the metadata says
    /// whether it leads: it serves nobody until told. Its high watermark
    /// starts at the log start, since what the cluster committed is not
    /// known here; as leader it rises as soon as the ISR has fetched.
    pub fn awaiting_role(&mut self) {
        self.role = Role::Follower {
            leader_epoch: -1,
            high_watermark: self.log.log_start_offset(),
        };
        self.publish();
    }

    /// The highest offset consumers may read up to (exclusive).
    pub(super) fn high_watermark(&self) -> i64 {
        let end = self.log.log_end_offset();
        match &self.role {
            Role::Standalone => end,
            Role::Leader(l) => l.state.high_watermark().min(end),
            Role::Follower { high_watermark, .. } => (*high_watermark).min(end),
        }
    }

    /// The leader epoch this replica serves, for clients' epoch checks.
    pub(super) fn leader_epoch(&self) -> i32 {
        match &self.role {
            Role::Standalone => super::LEADER_EPOCH,
            Role::Leader(l) => l.state.leader_epoch,
            Role::Follower { leader_epoch, .. } => *leader_epoch,
        }
    }

    /// Checks a client's view of the leader epoch (-1: none given) and that
    /// this broker leads: Kafka's FENCED_LEADER_EPOCH for an older epoch,
    /// UNKNOWN_LEADER_EPOCH for a newer one, NOT_LEADER_OR_FOLLOWER on a
    /// follower.
    pub(super) fn check_leader(&self, client_epoch: i32) -> Result<(), ResponseError> {
        let epoch = self.leader_epoch();
        if client_epoch >= 0 && client_epoch < epoch {
            return Err(ResponseError::FencedLeaderEpoch);
        }
        if client_epoch > epoch {
            return Err(ResponseError::UnknownLeaderEpoch);
        }
        match self.role {
            Role::Follower { .. } => Err(ResponseError::NotLeaderOrFollower),
            _ => Ok(()),
        }
    }

    /// Whether an acks=all append may be written now.
    pub(super) fn check_enough_replicas(&self) -> Result<(), ResponseError> {
        match &self.role {
            Role::Leader(l) if !l.state.enough_replicas() => Err(ResponseError::NotEnoughReplicas),
            _ => Ok(()),
        }
    }

    /// A receiver answered once the high watermark reaches `end`; `None`
    /// when it already has (or there are no followers to wait for).
    pub(super) fn wait_for_high_watermark(
        &mut self,
        end: i64,
    ) -> Option<oneshot::Receiver<Result<(), ResponseError>>> {
        let Role::Leader(l) = &mut self.role else {
            return None;
        };
        let leader_end = self.log.log_end_offset();
        l.state.update_high_watermark(leader_end);
        if l.state.high_watermark() >= end {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        l.waiting.entry(end).or_default().push(tx);
        Some(rx)
    }

    /// After an append as leader: the high watermark may move (a leader
    /// alone in its ISR commits at once).
    pub(super) fn leader_appended(&mut self) {
        let leader_end = self.log.log_end_offset();
        if let Role::Leader(l) = &mut self.role {
            if l.state.update_high_watermark(leader_end).is_some() {
                l.release();
            }
        }
    }

    /// A follower fetched: note its progress, move the high watermark, and
    /// propose it back into the ISR once it caught up. Answers the
    /// divergence `(epoch, end offset)` if its log parts from ours before
    /// the fetch offset, or an error if it is not a follower of this epoch.
    pub(super) fn on_replica_read(
        &mut self,
        read: ReplicaRead,
        fetch_offset: i64,
        ctx: &mut Context<Self>,
    ) -> Result<Option<(i32, i64)>, ResponseError> {
        let leader_end = self.log.log_end_offset();
        let Role::Leader(l) = &mut self.role else {
            return Err(ResponseError::NotLeaderOrFollower);
        };
        if !l.state.is_replica(read.replica) {
            return Err(ResponseError::NotLeaderOrFollower);
        }
        if read.last_fetched_epoch >= 0 {
            let (epoch, end) = self
                .log
                .epochs()
                .end_offset_for(read.last_fetched_epoch, leader_end);
            // No epoch that old here: the follower's log predates ours, and
            // only a restart from our log start or end can reconcile them.
            if epoch < 0 {
                return Err(ResponseError::OffsetOutOfRange);
            }
            if epoch != read.last_fetched_epoch || end < fetch_offset {
                return Ok(Some((epoch, end)));
            }
        }
        if l.state
            .on_fetch(read.replica, fetch_offset, leader_end, now_ms())
            .is_some()
        {
            l.release();
            self.publish();
        }
        self.propose_isr_change(ctx);
        Ok(None)
    }

    /// Sends the ISR change the leader's state calls for, if any.
    pub(super) fn propose_isr_change(&mut self, ctx: &mut Context<Self>) {
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        let control = l.control.clone();
        let Some(isr) = l
            .state
            .isr_change(now_ms(), l.lag_ms, |b| control.eligible(b))
        else {
            return;
        };
        let change = IsrChange {
            topic: l.topic.clone(),
            partition: l.partition,
            leader_epoch: l.state.leader_epoch,
            partition_epoch: l.state.partition_epoch,
            isr: isr.clone(),
        };
        log::info!(
            "{}: proposing ISR {:?} (was {:?})",
            self.name,
            isr,
            l.state.isr
        );
        l.state.propose(isr);
        let epoch = change.leader_epoch;
        ctx.spawn(
            control
                .alter_isr(change)
                .into_actor(self)
                .map(move |answer, act, _| {
                    let Role::Leader(l) = &mut act.role else {
                        return;
                    };
                    if l.state.leader_epoch != epoch {
                        return;
                    }
                    match answer {
                        Ok((isr, partition_epoch)) => l.state.on_committed(isr, partition_epoch),
                        Err(e) => {
                            log::warn!("{}: ISR change refused: {e}", act.name);
                            l.state.on_refused();
                        }
                    }
                    let end = act.log.log_end_offset();
                    if let Role::Leader(l) = &mut act.role {
                        if l.state.update_high_watermark(end).is_some() {
                            l.release();
                        }
                    }
                    act.publish();
                }),
        );
    }

    /// Leaves leadership (or follows another leader): waiting acks=all
    /// appends fail, as Kafka answers them when the leader moves, and the
    /// ISR check stops.
    fn step_down(&mut self, ctx: &mut Context<Self>) {
        if let Role::Leader(l) = &mut self.role {
            l.fail_all(ResponseError::NotLeaderOrFollower);
            if let Some(check) = l.isr_check.take() {
                ctx.cancel_future(check);
            }
        }
    }

    /// Rebuilds the idempotent-producer state and the open transactions
    /// from the headers of the log's tail, after the log was cut back.
    fn replay_tail(&mut self, tail: io::Result<Vec<BatchHeader>>) {
        self.producers = super::producers::Producers::default();
        super::replay(
            &self.name,
            &mut self.producers,
            &mut self.transactions,
            tail,
        );
    }
}

/// This broker leads the partition in `leader_epoch` (or its ISR changed
/// within the same epoch).
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct BecomeLeader {
    pub topic: Arc<str>,
    pub partition: i32,
    pub local_id: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub min_isr: usize,
    pub lag_ms: i64,
    pub control: Arc<dyn ReplicaControl>,
}

impl Handler<BecomeLeader> for Partition {
    type Result = ();

    fn handle(&mut self, msg: BecomeLeader, ctx: &mut Self::Context) {
        if let Role::Leader(l) = &mut self.role {
            if l.state.leader_epoch == msg.leader_epoch {
                l.state.set_min_isr(msg.min_isr);
                l.state.set_replicas(msg.replicas, now_ms());
                l.state.on_committed(msg.isr, msg.partition_epoch);
                self.leader_appended();
                self.publish();
                return;
            }
        }
        self.step_down(ctx);
        log::info!(
            "{}: leader in epoch {} with ISR {:?}",
            self.name,
            msg.leader_epoch,
            msg.isr
        );
        let mut state = LeaderState::new(
            msg.local_id,
            msg.leader_epoch,
            msg.partition_epoch,
            msg.replicas,
            msg.isr,
            self.high_watermark(),
            now_ms(),
        );
        state.set_min_isr(msg.min_isr);
        self.log.set_leader_epoch(msg.leader_epoch);
        self.role = Role::Leader(Box::new(Leadership {
            state,
            control: msg.control,
            topic: msg.topic,
            partition: msg.partition,
            lag_ms: msg.lag_ms,
            waiting: BTreeMap::new(),
            isr_check: None,
        }));
        self.leader_appended();
        self.publish();
        let every = Duration::from_millis((msg.lag_ms / 2).max(100) as u64);
        let check = ctx.run_interval(every, |act, ctx| act.propose_isr_change(ctx));
        if let Role::Leader(l) = &mut self.role {
            l.isr_check = Some(check);
        }
    }
}

/// This broker follows `leader` in `leader_epoch`.
#[derive(Message, Clone, Copy)]
#[rtype(result = "()")]
pub struct BecomeFollower {
    pub leader: i32,
    pub leader_epoch: i32,
}

impl Handler<BecomeFollower> for Partition {
    type Result = ();

    fn handle(&mut self, msg: BecomeFollower, ctx: &mut Self::Context) {
        if matches!(self.role, Role::Follower { leader_epoch, .. } if leader_epoch == msg.leader_epoch)
        {
            return;
        }
        self.step_down(ctx);
        log::info!(
            "{}: following broker {} in epoch {}",
            self.name,
            msg.leader,
            msg.leader_epoch
        );
        let high_watermark = self.high_watermark();
        self.role = Role::Follower {
            leader_epoch: msg.leader_epoch,
            high_watermark,
        };
        self.publish();
    }
}

/// Where a follower stands, for its next fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerPosition {
    pub log_end: i64,
    /// The epoch of the last batch in the log, -1 for none.
    pub last_epoch: i32,
    pub log_start: i64,
}

/// Asks a follower where to fetch from.
#[derive(Message)]
#[rtype(result = "Result<FollowerPosition, ResponseError>")]
pub struct Position {
    pub leader_epoch: i32,
}

impl Handler<Position> for Partition {
    type Result = Result<FollowerPosition, ResponseError>;

    fn handle(&mut self, msg: Position, _: &mut Self::Context) -> Self::Result {
        self.check_follower(msg.leader_epoch)?;
        Ok(self.position())
    }
}

impl Partition {
    fn check_follower(&self, leader_epoch: i32) -> Result<(), ResponseError> {
        match self.role {
            Role::Follower {
                leader_epoch: e, ..
            } if e == leader_epoch => Ok(()),
            Role::Follower {
                leader_epoch: e, ..
            } if e > leader_epoch => Err(ResponseError::FencedLeaderEpoch),
            _ => Err(ResponseError::NotLeaderOrFollower),
        }
    }

    fn position(&self) -> FollowerPosition {
        FollowerPosition {
            log_end: self.log.log_end_offset(),
            last_epoch: self.log.epochs().latest().map_or(-1, |e| e.epoch),
            log_start: self.log.log_start_offset(),
        }
    }
}

/// Batches fetched from the leader, with its high watermark and log start.
/// Answered once the batches are fsynced.
#[derive(Message)]
#[rtype(result = "Result<FollowerPosition, ResponseError>")]
pub struct ReplicaAppend {
    pub leader_epoch: i32,
    pub records: Bytes,
    pub high_watermark: i64,
    pub log_start: i64,
}

impl Handler<ReplicaAppend> for Partition {
    type Result = ResponseFuture<Result<FollowerPosition, ResponseError>>;

    /// Written on a disk thread, then answered once fsynced.
    fn handle(&mut self, msg: ReplicaAppend, ctx: &mut Self::Context) -> Self::Result {
        if let Err(e) = self.check_follower(msg.leader_epoch) {
            return Box::pin(async move { Err(e) });
        }
        let batches = match super::batch::split(msg.records) {
            Ok(batches) => batches,
            Err(e) => {
                log::warn!("{}: the leader sent a malformed batch: {e}", self.name);
                return Box::pin(async { Err(ResponseError::CorruptMessage) });
            }
        };
        let (now, log_start, name) = (now_ms(), msg.log_start, self.name.clone());
        let appended = self.on_disk(
            ctx,
            move |log, transactions| {
                let mut files: Vec<Arc<File>> = Vec::new();
                let mut written = Vec::new();
                if !batches.is_empty() {
                    let infos = log.append_replicated(&batches, now)?;
                    for (bytes, info) in batches.iter().zip(infos) {
                        if let Ok(header) = super::batch::parse_header(bytes) {
                            // A follower keeps the aborted transactions
                            // too: read_committed reads need them once it
                            // leads.
                            if header.is_control()
                                && super::batch::marker_commits(bytes) == Some(false)
                            {
                                if let Err(e) =
                                    transactions.abort(header.producer_id, info.base_offset)
                                {
                                    log::error!("{name}: recording an abort failed: {e}");
                                }
                            }
                            transactions.on_batch(&header, info.base_offset);
                            written.push((header, info.base_offset));
                        }
                        if !files.iter().any(|f| Arc::ptr_eq(f, &info.file)) {
                            files.push(info.file);
                        }
                    }
                }
                if log_start > log.log_start_offset() {
                    if let Err(e) = log.delete_records(log_start) {
                        log::error!("{name}: moving the log start failed: {e}");
                    }
                }
                Ok((files, written))
            },
            move |act, appended: io::Result<_>, _| {
                let (files, written) = appended.map_err(|e| {
                    log::error!("{}: appending the leader's batches failed: {e}", act.name);
                    ResponseError::KafkaStorageError
                })?;
                for (header, base_offset) in &written {
                    act.producers.record(header, *base_offset);
                }
                let end = act.log.log_end_offset();
                if let Role::Follower { high_watermark, .. } = &mut act.role {
                    *high_watermark = (*high_watermark).max(msg.high_watermark.min(end));
                }
                act.publish();
                let synced = (!files.is_empty()).then(|| act.flusher.flush(files));
                Ok((act.position(), synced))
            },
        );
        let name = self.name.clone();
        Box::pin(async move {
            let (position, synced) = answered(appended).await?;
            let Some(synced) = synced else {
                return Ok(position);
            };
            match synced.await {
                Ok(Ok(())) => Ok(position),
                Ok(Err(e)) => {
                    log::error!("{name}: fsync failed: {e}");
                    Err(ResponseError::KafkaStorageError)
                }
                Err(_) => Err(ResponseError::KafkaStorageError),
            }
        })
    }
}

/// Cuts a follower's log back: to `offset` where it diverged from the
/// leader's, or (`fully`) empties it to start again at `offset`, the
/// leader's log start.
#[derive(Message)]
#[rtype(result = "Result<FollowerPosition, ResponseError>")]
pub struct Truncate {
    pub leader_epoch: i32,
    pub offset: i64,
    /// The leader's diverging epoch, `offset` being where it ends on the
    /// leader: the follower then cuts where its own copy of that epoch
    /// ends, if earlier (only the follower knows its epoch cache).
    pub epoch: Option<i32>,
    pub fully: bool,
}

impl Handler<Truncate> for Partition {
    type Result = ResponseFuture<Result<FollowerPosition, ResponseError>>;

    /// Cut on a disk thread, with the aborted-transaction index, whose
    /// tail is then replayed here.
    fn handle(&mut self, msg: Truncate, ctx: &mut Self::Context) -> Self::Result {
        if let Err(e) = self.check_follower(msg.leader_epoch) {
            return Box::pin(async move { Err(e) });
        }
        let end = self.log.log_end_offset();
        let offset = match msg.epoch {
            Some(epoch) if !msg.fully => self.divergence_point(epoch, msg.offset),
            _ => msg.offset,
        };
        let cut = self.on_disk(
            ctx,
            move |log, transactions| {
                let cut = if msg.fully {
                    log.truncate_fully_and_start_at(offset)
                } else {
                    log.truncate_to(offset)
                };
                cut.map_err(|e| ("truncation failed", e))?;
                transactions
                    .truncate(log.log_end_offset())
                    .map_err(|e| ("cutting the aborted-transaction index", e))?;
                Ok(log.tail_headers(super::PRODUCER_REPLAY_BYTES))
            },
            move |act, cut, _| {
                let tail = cut.map_err(|(what, e)| act.storage_error(what, &e))?;
                let new_end = act.log.log_end_offset();
                log::info!(
                    "{}: truncated from {end} to {new_end} to follow the leader",
                    act.name
                );
                act.replay_tail(tail);
                if let Role::Follower { high_watermark, .. } = &mut act.role {
                    *high_watermark = (*high_watermark).min(new_end);
                }
                act.publish();
                Ok(act.position())
            },
        );
        Box::pin(answered(cut))
    }
}

impl Partition {
    /// Where a follower cuts its log when the leader says its `epoch` ends
    /// at `leader_end` (Kafka's follower truncation, KIP-279): at the
    /// earlier of the two ends of that epoch; if this log never had
    /// `epoch`, at the end of its newest older epoch, and the next fetch
    /// checks again from there; if it knows no epoch that old, at the
    /// leader's end. Offsets at or past the log end cut nothing.
    fn divergence_point(&self, epoch: i32, leader_end: i64) -> i64 {
        let end = self.log.log_end_offset();
        match self.log.epochs().end_offset_for(epoch, end) {
            (-1, _) => leader_end,
            (own, own_end) if own != epoch => own_end,
            (_, own_end) => own_end.min(leader_end),
        }
    }
}

/// The end offset of `epoch` in this log (OffsetForLeaderEpoch), as
/// `(epoch, end_offset)`; on the leader only.
#[derive(Message)]
#[rtype(result = "Result<(i32, i64), ResponseError>")]
pub struct EpochEnd {
    pub current_leader_epoch: i32,
    pub epoch: i32,
}

impl Handler<EpochEnd> for Partition {
    type Result = Result<(i32, i64), ResponseError>;

    fn handle(&mut self, msg: EpochEnd, _: &mut Self::Context) -> Self::Result {
        self.check_leader(msg.current_leader_epoch)?;
        let end = self.log.log_end_offset();
        // A single broker's log from before epochs were recorded was all
        // written in its one epoch.
        if matches!(self.role, Role::Standalone)
            && self.log.epochs().latest().is_none()
            && msg.epoch >= 0
        {
            return Ok((super::LEADER_EPOCH, end));
        }
        Ok(self.log.epochs().end_offset_for(msg.epoch, end))
    }
}

/// Reads whole batches from `offset` up to the log end on the leader,
/// beyond the high watermark: what a new coordinator replays of its
/// offsets partition (everything acknowledged is in its log).
#[derive(Message)]
#[rtype(result = "Result<Bytes, ResponseError>")]
pub struct ReadLocal {
    pub leader_epoch: i32,
    pub offset: i64,
    pub max_bytes: usize,
}

impl Handler<ReadLocal> for Partition {
    type Result = ResponseFuture<Result<Bytes, ResponseError>>;

    /// Read on a reader thread.
    fn handle(&mut self, msg: ReadLocal, _: &mut Self::Context) -> Self::Result {
        if let Err(e) = self.check_leader(msg.leader_epoch) {
            return Box::pin(async move { Err(e) });
        }
        let plan = self.log.read_plan(msg.offset);
        let (readers, name) = (self.readers.clone(), self.name.clone());
        Box::pin(async move {
            let read = match plan {
                Ok(plan) => readers
                    .read(plan, msg.max_bytes)
                    .await
                    .map_err(ReadError::Io),
                Err(e) => Err(e),
            };
            read.map_err(|e| {
                log::error!("{name}: local read at {} failed: {e}", msg.offset);
                ResponseError::KafkaStorageError
            })
        })
    }
}
