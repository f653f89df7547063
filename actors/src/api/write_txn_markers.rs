//! WriteTxnMarkers: commit or abort markers written into partitions this
//! broker leads. In a cluster the transaction coordinators of other brokers
//! send it (`broker::txn_markers`); it also serves administrators aborting
//! a hanging transaction (`kafka-transactions.sh abort`, kafka-python's
//! `abort_transaction`), with the partition's own check that the producer
//! has not moved to a newer epoch.

use crate::broker::txn_markers::write_local;
use crate::broker::Broker;
use crate::partition::WriteMarker;
use crate::security::{Access, Operation};
use futures_util::future::join_all;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};

pub async fn handle(
    broker: &Broker,
    access: &Access,
    req: WriteTxnMarkersRequest,
) -> WriteTxnMarkersResponse {
    let allowed = access.cluster(Operation::ClusterAction);
    let markers = req.markers.into_iter().map(|marker| async move {
        let topics = marker.topics.into_iter().map(|t| {
            let partitions: Vec<_> = t
                .partition_indexes
                .into_iter()
                .map(|index| {
                    let write = WriteMarker {
                        producer_id: marker.producer_id.0,
                        producer_epoch: marker.producer_epoch,
                        commit: marker.transaction_result,
                        coordinator_epoch: marker.coordinator_epoch,
                    };
                    let name = t.name.to_string();
                    async move {
                        let written = match allowed {
                            Ok(()) => write_local(broker, &name, index, write).await,
                            Err(e) => Err(e),
                        };
                        WritableTxnMarkerPartitionResult::default()
                            .with_partition_index(index)
                            .with_error_code(written.err().map_or(0, |e| e.code()))
                    }
                })
                .collect();
            async move {
                WritableTxnMarkerTopicResult::default()
                    .with_name(t.name)
                    .with_partitions(join_all(partitions).await)
            }
        });
        WritableTxnMarkerResult::default()
            .with_producer_id(marker.producer_id)
            .with_topics(join_all(topics).await)
    });
    WriteTxnMarkersResponse::default().with_markers(join_all(markers).await)
}
