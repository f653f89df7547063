//! The entry point of the DSL: a builder that creates streams from topics
//! and, once wired, a [`Topology`] ready to run.

use crate::error::StreamsError;
use crate::graph::{
    with_graph, Data, Graph, Node, PartitionedTable, SharedGraph, SourceFn, TableSpec,
};
use crate::grouped::KTable;
use crate::serdes::{Serde, SharedSerde};
use crate::store::StoreRef;
use crate::stream::KStream;
use crate::table::{table_source, GlobalKTable};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// Builds the processing graph of one application.
pub struct StreamsBuilder {
    graph: SharedGraph,
}

/// A built graph: what [`Topology::run`](crate::Topology::run) starts.
pub struct Topology {
    pub(crate) graph: Graph,
}

impl StreamsBuilder {
    /// A builder for application `application_id`, which is also the
    /// consumer group of its instances and the prefix of its internal topics.
    pub fn new(application_id: &str) -> Self {
        let graph = Graph {
            app_id: application_id.to_string(),
            ..Graph::default()
        };
        Self {
            graph: Arc::new(Mutex::new(graph)),
        }
    }

    /// The records of `topic`, keys and values read with the given serdes.
    /// A record whose bytes the serdes refuse is logged and skipped.
    pub fn stream<K: Data, V: Data>(
        &mut self,
        topic: &str,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
    ) -> KStream<K, V> {
        source_stream(
            &self.graph,
            topic,
            Arc::new(key_serde),
            Arc::new(value_serde),
        )
    }

    /// A table of the latest value per key of the (compacted) `topic`,
    /// held whole by every instance in store `store` (a global table: no
    /// co-partitioning needed to join with it). Every instance reads it to
    /// its end before its tasks process, and keeps following it; a record
    /// with no value deletes its key.
    pub fn global_table<K: Data, V: Data>(
        &mut self,
        topic: &str,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
        store: &str,
    ) -> GlobalKTable<K, V> {
        with_graph(&self.graph, |g| {
            g.tables.push(TableSpec {
                topic: topic.to_string(),
                store: store.to_string(),
            })
        });
        GlobalKTable {
            store: StoreRef::new(store, Arc::new(key_serde), Arc::new(value_serde)),
        }
    }

    /// A table of the latest value per key of the (compacted) `topic`, in
    /// store `store`, partitioned as the topic is (Kafka Streams'
    /// `builder.table`): partition p of the topic is held by the task of
    /// partition p of the stream joined with the table
    /// ([`KStream::join_table`]), which must be co-partitioned with it —
    /// keyed alike, with as many partitions, checked when the instance
    /// starts. The topic is the store's changelog: a task restores the
    /// store from it and then follows it. A record with no value deletes
    /// its key.
    pub fn table<K: Data, V: Data>(
        &mut self,
        topic: &str,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
        store: &str,
    ) -> KTable<K, V> {
        let key_serde: SharedSerde<K> = Arc::new(key_serde);
        let value_serde: SharedSerde<V> = Arc::new(value_serde);
        let updates = Node::new();
        let source = table_source(
            topic,
            store,
            Arc::clone(&key_serde),
            Arc::clone(&value_serde),
            updates.clone(),
        );
        with_graph(&self.graph, |g| {
            g.table_sources
                .entry(topic.to_string())
                .or_default()
                .push(source);
            g.partitioned_tables.push(PartitionedTable {
                topic: topic.to_string(),
                store: store.to_string(),
                joined_by: None,
            });
        });
        KTable {
            updates: KStream {
                node: updates,
                graph: Arc::clone(&self.graph),
                origins: BTreeSet::from([topic.to_string()]),
                key_changed: false,
            },
            store: StoreRef::new(store, key_serde, value_serde),
            source_topic: Some(topic.to_string()),
        }
    }

    /// The topology, or why it cannot run (a store fed by records of more
    /// than one topic, a name used twice, a table read from a topic that
    /// no stream joins).
    pub fn build(self) -> Result<Topology, StreamsError> {
        let mut graph = std::mem::take(&mut *self.graph.lock().unwrap_or_else(|e| e.into_inner()));
        check_partitioned_tables(&mut graph);
        if !graph.errors.is_empty() {
            return Err(StreamsError::Topology(graph.errors.join("; ")));
        }
        let mut names = BTreeSet::new();
        for name in graph
            .stores
            .iter()
            .map(|s| &s.name)
            .chain(graph.tables.iter().map(|t| &t.store))
            .chain(graph.partitioned_tables.iter().map(|t| &t.store))
        {
            if !names.insert(name) {
                return Err(StreamsError::Topology(format!(
                    "store {name} is defined twice"
                )));
            }
        }
        Ok(Topology { graph })
    }
}

/// A partitioned table lives in the tasks of the stream joining it, so it
/// needs one, and a store fed straight from its updates would have no
/// task of its own.
fn check_partitioned_tables(graph: &mut Graph) {
    for table in &graph.partitioned_tables {
        if table.joined_by.is_none() {
            graph.errors.push(format!(
                "table {} (topic {}) is joined with no stream: join it with a co-partitioned stream (KStream::join_table), or read it with global_table",
                table.store, table.topic
            ));
        }
        if graph.stores.iter().any(|s| s.source_topic == table.topic) {
            graph.errors.push(format!(
                "a store aggregates the updates of table {} as they are: group them by a new key (group_by) to repartition them",
                table.store
            ));
        }
    }
}

/// A stream of the records of `topic`, registered as a source of the graph.
pub(crate) fn source_stream<K: Data, V: Data>(
    graph: &SharedGraph,
    topic: &str,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
) -> KStream<K, V> {
    let node = Node::new();
    let target = node.clone();
    let name = topic.to_string();
    let source: SourceFn = Arc::new(move |ctx, key, value| {
        let decoded = key_serde
            .deserialize(key.unwrap_or_default())
            .and_then(|k| Ok((k, value_serde.deserialize(value.unwrap_or_default())?)));
        match decoded {
            Ok((k, v)) => target.forward(ctx, k, v),
            Err(e) => {
                log::warn!(
                    "skipping a record of {name} partition {}: {e}",
                    ctx.partition
                );
                Ok(())
            }
        }
    });
    with_graph(graph, |g| {
        g.sources.entry(topic.to_string()).or_default().push(source)
    });
    KStream {
        node,
        graph: Arc::clone(graph),
        origins: BTreeSet::from([topic.to_string()]),
        key_changed: false,
    }
}
