//! The entry point of the DSL: a builder that creates streams from topics
//! and, once wired, a [`Topology`] ready to run.

use crate::error::StreamsError;
use crate::graph::{with_graph, Data, Graph, Node, SharedGraph, SourceFn, TableSpec};
use crate::serdes::Serde;
use crate::store::StoreRef;
use crate::stream::KStream;
use crate::table::GlobalKTable;
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

    /// The topology, or why it cannot run (a store fed by records of more
    /// than one topic, a name used twice).
    pub fn build(self) -> Result<Topology, StreamsError> {
        let graph = std::mem::take(&mut *self.graph.lock().unwrap_or_else(|e| e.into_inner()));
        if !graph.errors.is_empty() {
            return Err(StreamsError::Topology(graph.errors.join("; ")));
        }
        let mut names = BTreeSet::new();
        for name in graph
            .stores
            .iter()
            .map(|s| &s.name)
            .chain(graph.tables.iter().map(|t| &t.store))
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
