//! The Kafka APIs this broker serves: one handler module per API (a family
//! of APIs that shares its code keeps one module: the ACL APIs, the two
//! config alterations, the transaction listings, replica placement), and the
//! table below, which states each API once: its key, the versions
//! advertised in ApiVersions, and how its handler is called.
//!
//! The connection hands each decoded request to [`dispatch`]; handlers know
//! the broker, never the connection.
//!
//! The maximum versions follow Apache Kafka 4.0 where we implement the API,
//! so clients that infer features from the advertised ranges (older
//! librdkafka, kafka-python) see a broker they know. The minimums reach down,
//! as Kafka 3.x's did, to the versions that clients from before Kafka 0.11
//! still send (Produce v0, Fetch v0 and their message sets, ...): see
//! `connection::old_versions`. Older librdkafka also only enables
//! compression when it sees Produce v0 in the range.

mod acls;
mod add_offsets_to_txn;
mod add_partitions_to_txn;
mod alter_configs;
pub(crate) mod api_versions;
mod client_quotas;
mod consumer_group_describe;
mod consumer_group_heartbeat;
mod create_partitions;
mod create_topics;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod describe_log_dirs;
mod describe_producers;
mod describe_quorum;
mod describe_topic_partitions;
mod describe_transactions;
mod end_txn;
mod fetch;
mod fetch_response;
mod find_coordinator;
mod heartbeat;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_config_resources;
mod list_groups;
mod list_offsets;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
pub mod produce;
mod replica_placement;
mod scram_credentials;
mod sync_group;
mod txn_offset_commit;
mod write_txn_markers;

use crate::broker::Broker;
use crate::partition::{Partition, PartitionHandle};
use crate::protocol::response_parts::ResponseParts;
use crate::protocol::Request;
use crate::security::listeners::Listener;
use crate::security::{Access, Operation, Principal};
use crate::topic::Topic;
use futures_util::future::LocalBoxFuture;
use futures_util::FutureExt;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use kafka_protocol::ResponseError;
use std::net::SocketAddr;
use std::sync::Arc;

/// Fills in where a partition is led and replicated, from a
/// [`crate::broker::PartitionView`], on the partition types of Metadata and
/// DescribeTopicPartitions: generated types that share these fields.
macro_rules! with_placement {
    ($partition:expr, $view:expr) => {{
        let view: crate::broker::PartitionView = $view;
        let ids = |ids: Vec<i32>| {
            ids.into_iter()
                .map(kafka_protocol::messages::BrokerId)
                .collect::<Vec<_>>()
        };
        $partition
            .with_leader_id(kafka_protocol::messages::BrokerId(view.leader))
            .with_leader_epoch(view.leader_epoch)
            .with_replica_nodes(ids(view.replicas))
            .with_isr_nodes(ids(view.isr))
            .with_offline_replicas(ids(view.offline))
    }};
}
pub(crate) use with_placement;

/// A request's handler at work. `None`: send nothing (Produce with acks=0).
pub type Reply = LocalBoxFuture<'static, Option<Response>>;

/// A handler's answer.
pub enum Response {
    /// For kafka-protocol to encode.
    Message(Box<ResponseKind>),
    /// A Fetch body with its records in files, for a plaintext connection
    /// to send as it is (`Err`: it could not be encoded).
    Parts(Result<ResponseParts, String>),
}

/// What a handler may know about the request besides its body.
struct Call {
    broker: Arc<Broker>,
    version: i16,
    client_id: String,
    peer: SocketAddr,
    /// Who the connection authenticated as, from where, and what it may do.
    access: Access,
    /// The listener the request came in on.
    listener: Arc<Listener>,
}

/// States each API once: `Name min..=max, how |call, request| handler;`.
/// `how` says what the handler expression is: `now`, the response, computed
/// before `dispatch` returns; `later`, a future of the response; `answers`,
/// a future of a [`Response`] (Fetch, whose body may be parts); `started`,
/// a `'static` future of an optional response whose work starts before
/// `dispatch` returns (Produce sends its appends in request order).
macro_rules! apis {
    ($($api:ident $min:literal..=$max:literal, $how:ident |$call:ident, $req:pat_param| $handler:expr;)*) => {
        /// `(api, min advertised, max)`.
        const SUPPORTED: &[(ApiKey, i16, i16)] = &[$((ApiKey::$api, $min, $max),)*];

        /// Starts the handler of one request.
        pub fn dispatch(
            broker: &Arc<Broker>,
            peer: SocketAddr,
            principal: &Arc<Principal>,
            listener: &Arc<Listener>,
            request: Request,
        ) -> Reply {
            let call = Call {
                broker: broker.clone(),
                version: request.version,
                client_id: request.client_id,
                peer,
                access: Access::new(broker.authorizer().clone(), principal.clone(), peer.ip()),
                listener: listener.clone(),
            };
            match request.body {
                $(RequestKind::$api($req) => apis!(@$how $api, call, $call, $handler),)*
                // frame::decode only lets through the APIs listed here.
                other => unreachable_api(other),
            }
        }
    };
    (@now $api:ident, $given:ident, $call:ident, $handler:expr) => {{
        let $call = $given;
        let body = Response::Message(Box::new(ResponseKind::$api($handler)));
        async move { Some(body) }.boxed_local()
    }};
    (@later $api:ident, $given:ident, $call:ident, $handler:expr) => {
        async move {
            let $call = $given;
            Some(Response::Message(Box::new(ResponseKind::$api(
                $handler.await,
            ))))
        }
        .boxed_local()
    };
    (@answers $api:ident, $given:ident, $call:ident, $handler:expr) => {
        async move {
            let $call = $given;
            Some($handler.await)
        }
        .boxed_local()
    };
    (@started $api:ident, $given:ident, $call:ident, $handler:expr) => {{
        let $call = $given;
        $handler
            .map(|r| r.map(|r| Response::Message(Box::new(ResponseKind::$api(r)))))
            .boxed_local()
    }};
}

apis! {
    Produce 0..=11, started |c, req| produce::handle(&c.broker, &c.access, req);
    Fetch 0..=17, answers |c, req| fetch::handle(&c.broker, &c.access, &c.listener, c.version, req);
    ListOffsets 0..=10, later |c, req| list_offsets::handle(&c.broker, &c.access, c.version, req);
    Metadata 0..=12, later |c, req| metadata::handle(&c.broker, &c.access, &c.listener, c.version, req);
    ApiVersions 0..=4, now |_c, _| api_versions::handle(None);
    CreateTopics 0..=7, later |c, req| create_topics::handle(&c.broker, &c.access, req);
    DeleteTopics 0..=6, later |c, req| delete_topics::handle(&c.broker, &c.access, c.version, req);
    DescribeConfigs 0..=4, now |c, req| describe_configs::handle(&c.broker, &c.access, req);
    CreatePartitions 0..=3, later |c, req| create_partitions::handle(&c.broker, &c.access, req);
    DescribeCluster 0..=1, now |c, _| describe_cluster::handle(&c.broker, &c.access, &c.listener);
    DescribeQuorum 0..=2, now |c, req| describe_quorum::handle(&c.broker, &c.access, req);
    FindCoordinator 0..=6, later |c, req| find_coordinator::handle(&c.broker, &c.access, &c.listener, c.version, req);
    JoinGroup 0..=9, later |c, req| join_group::handle(&c.broker, &c.access, c.version, c.client_id, c.peer, req);
    SyncGroup 0..=5, later |c, req| sync_group::handle(&c.broker, &c.access, req);
    Heartbeat 0..=4, later |c, req| heartbeat::handle(&c.broker, &c.access, req);
    LeaveGroup 0..=5, later |c, req| leave_group::handle(&c.broker, &c.access, c.version, req);
    OffsetCommit 0..=9, later |c, req| offset_commit::handle(&c.broker, &c.access, req);
    OffsetFetch 0..=9, later |c, req| offset_fetch::handle(&c.broker, &c.access, c.version, req);
    ListGroups 0..=5, later |c, req| list_groups::handle(&c.broker, &c.access, req);
    DescribeGroups 0..=5, later |c, req| describe_groups::handle(&c.broker, &c.access, req);
    DeleteGroups 0..=2, later |c, req| delete_groups::handle(&c.broker, &c.access, req);
    OffsetDelete 0..=0, later |c, req| offset_delete::handle(&c.broker, &c.access, req);
    InitProducerId 0..=5, later |c, req| init_producer_id::handle(&c.broker, &c.access, c.version, req);
    DeleteRecords 0..=2, later |c, req| delete_records::handle(&c.broker, &c.access, req);
    AlterConfigs 0..=2, later |c, req| alter_configs::handle(&c.broker, &c.access, req);
    IncrementalAlterConfigs 0..=1, later |c, req| alter_configs::handle_incremental(&c.broker, &c.access, req);
    AddPartitionsToTxn 0..=3, later |c, req| add_partitions_to_txn::handle(&c.broker, &c.access, c.version, req);
    AddOffsetsToTxn 0..=3, later |c, req| add_offsets_to_txn::handle(&c.broker, &c.access, c.version, req);
    TxnOffsetCommit 0..=3, later |c, req| txn_offset_commit::handle(&c.broker, &c.access, req);
    EndTxn 0..=3, later |c, req| end_txn::handle(&c.broker, &c.access, c.version, req);
    DescribeTransactions 0..=0, later |c, req| describe_transactions::describe(&c.broker, &c.access, req);
    ListTransactions 0..=1, later |c, req| describe_transactions::list(&c.broker, &c.access, req);
    DescribeAcls 0..=3, later |c, req| acls::describe(&c.broker, &c.access, req);
    CreateAcls 0..=3, later |c, req| acls::create(&c.broker, &c.access, req);
    DeleteAcls 0..=3, later |c, req| acls::delete(&c.broker, &c.access, req);
    ConsumerGroupHeartbeat 0..=1, later |c, req| consumer_group_heartbeat::handle(&c.broker, &c.access, c.client_id, c.peer, req);
    ConsumerGroupDescribe 0..=1, later |c, req| consumer_group_describe::handle(&c.broker, &c.access, req);
    DescribeLogDirs 1..=4, later |c, req| describe_log_dirs::handle(&c.broker, &c.access, req);
    DescribeProducers 0..=0, later |c, req| describe_producers::handle(&c.broker, &c.access, req);
    DescribeTopicPartitions 0..=0, now |c, req| describe_topic_partitions::handle(&c.broker, &c.access, req);
    OffsetForLeaderEpoch 2..=4, later |c, req| offset_for_leader_epoch::handle(&c.broker, &c.access, req);
    ElectLeaders 0..=2, later |c, req| replica_placement::elect_leaders(&c.broker, &c.access, req);
    ListPartitionReassignments 0..=0, now |c, req| replica_placement::list_partition_reassignments(&c.broker, &c.access, req);
    AlterPartitionReassignments 0..=1, later |c, req| replica_placement::alter_partition_reassignments(&c.broker, &c.access, req);
    AlterReplicaLogDirs 1..=2, now |c, req| replica_placement::alter_replica_log_dirs(&c.broker, &c.access, req);
    DescribeUserScramCredentials 0..=0, now |c, req| scram_credentials::describe(&c.broker, &c.access, req);
    AlterUserScramCredentials 0..=0, later |c, req| scram_credentials::alter(&c.broker, &c.access, req);
    DescribeClientQuotas 0..=1, now |c, req| client_quotas::describe(&c.access, req);
    ListConfigResources 0..=1, now |c, req| list_config_resources::handle(&c.broker, &c.access, c.version, req);
    WriteTxnMarkers 1..=1, later |c, req| write_txn_markers::handle(&c.broker, &c.access, req);
}

/// The APIs the connection serves itself, not [`dispatch`]: they change
/// who the connection is (`connection::authentication`).
pub const AUTHENTICATION: &[(ApiKey, i16, i16)] = &[
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
];

/// The advertised `(min, max)` versions of `api`, if we serve it.
pub fn supported(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .chain(AUTHENTICATION)
        .find(|(key, _, _)| *key == api)
        .map(|&(_, min, max)| (min, max))
}

/// The answer to an ApiVersions request of a version we do not know
/// (KIP-511): UNSUPPORTED_VERSION, with the versions we serve.
pub fn api_versions_too_new() -> ResponseKind {
    ResponseKind::ApiVersions(api_versions::handle(Some(
        ResponseError::UnsupportedVersion,
    )))
}

/// The wire code of an outcome the engine gives as a typed error: 0 for
/// success, else the error's Kafka code. The engine passes
/// [`ResponseError`]s; numbers appear only here, at the edge.
trait WireCode {
    fn wire_code(&self) -> i16;
}

impl WireCode for Option<ResponseError> {
    fn wire_code(&self) -> i16 {
        self.map_or(0, |e| e.code())
    }
}

impl WireCode for Result<(), ResponseError> {
    fn wire_code(&self) -> i16 {
        self.err().wire_code()
    }
}

/// The local replica of partition `index` of `topic` (as [`Broker::topic`]
/// found it, `None` if it did not), or the error a client gets for it.
fn replica(topic: Option<&Topic>, index: i32) -> Result<PartitionHandle, ResponseError> {
    topic
        .ok_or(ResponseError::UnknownTopicOrPartition)?
        .replica(index)
        .cloned()
}

/// A topic as [`authorized_topic`] looked it up: found or not, or off
/// limits to the requester.
type AuthorizedTopic = Result<Option<Arc<Topic>>, ResponseError>;

/// Topic `name` as [`Broker::topic`] finds it (`None` if it does not
/// exist), once `access` may perform `operation` on it: Kafka checks before
/// it looks, so a client learns nothing of a topic it may not see.
fn authorized_topic(
    broker: &Broker,
    access: &Access,
    operation: Operation,
    name: &str,
) -> AuthorizedTopic {
    access.topic(operation, name)?;
    Ok(broker.topic(name))
}

/// The local replica of partition `index` of a topic that
/// [`authorized_topic`] looked up.
fn authorized_replica(
    topic: &AuthorizedTopic,
    index: i32,
) -> Result<PartitionHandle, ResponseError> {
    replica(topic.clone()?.as_deref(), index)
}

/// Whether `access` may perform `operation` on a config resource: a
/// topic's configs are the topic's, the broker's (and its loggers') the
/// cluster's, as in Kafka.
fn config_access(
    access: &Access,
    operation: Operation,
    resource_type: i8,
    name: &str,
) -> Result<(), ResponseError> {
    match resource_type {
        crate::protocol::resource_type::TOPIC => access.topic(operation, name),
        _ => access.cluster(operation),
    }
}

/// Sends `message` to the partition `target` resolved to, or passes on why
/// there is none. A partition actor that has stopped (its topic deleted
/// meanwhile) answers UNKNOWN_TOPIC_OR_PARTITION.
async fn ask<M, T>(
    target: Result<PartitionHandle, ResponseError>,
    message: M,
) -> Result<T, ResponseError>
where
    M: actix::Message<Result = Result<T, ResponseError>> + Send + 'static,
    T: Send + 'static,
    Partition: actix::Handler<M>,
{
    target?
        .addr
        .send(message)
        .await
        .unwrap_or(Err(ResponseError::UnknownTopicOrPartition))
}

fn unreachable_api(request: RequestKind) -> Reply {
    log::error!("no handler for {request:?}");
    async { None }.boxed_local()
}
