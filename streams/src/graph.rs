//! The processor graph a builder wires and tasks run: typed nodes that push
//! each record to their children, and the untyped parts a runtime needs
//! (sources by topic, stores, internal topics, global and partitioned
//! tables).

use crate::context::Ctx;
use crate::error::StreamsError;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

/// What keys and values of a stream must be: cloned when a node has several
/// children, moved between the driver and task threads.
pub trait Data: Clone + Send + Sync + 'static {}
impl<T: Clone + Send + Sync + 'static> Data for T {}

/// A processor: handles one record in a task's context.
pub(crate) type Processor<K, V> =
    Arc<dyn Fn(&mut Ctx<'_>, K, V) -> Result<(), StreamsError> + Send + Sync>;

/// Reads one raw record of a source topic into the graph.
pub(crate) type SourceFn = Arc<
    dyn Fn(&mut Ctx<'_>, Option<&[u8]>, Option<&[u8]>) -> Result<(), StreamsError> + Send + Sync,
>;

/// A node's children, filled while building and only read while running.
pub(crate) struct Node<K, V>(Arc<RwLock<Vec<Processor<K, V>>>>);

impl<K, V> Clone for Node<K, V> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<K: Data, V: Data> Node<K, V> {
    pub fn new() -> Self {
        Self(Arc::new(RwLock::new(Vec::new())))
    }

    pub fn add(&self, child: Processor<K, V>) {
        self.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(child);
    }

    /// Hands the record to every child, cloning for all but the last.
    pub fn forward(&self, ctx: &mut Ctx<'_>, key: K, value: V) -> Result<(), StreamsError> {
        let children = self.0.read().unwrap_or_else(PoisonError::into_inner);
        if let Some((last, rest)) = children.split_last() {
            for child in rest {
                child(ctx, key.clone(), value.clone())?;
            }
            last(ctx, key, value)?;
        }
        Ok(())
    }

    /// A processor that forwards into this node.
    pub fn as_processor(&self) -> Processor<K, V> {
        let node = self.clone();
        Arc::new(move |ctx, k, v| node.forward(ctx, k, v))
    }
}

/// A state store fed by one source topic: one sled tree and one changelog
/// partition per partition of that topic.
#[derive(Debug, Clone)]
pub(crate) struct StoreSpec {
    pub name: String,
    pub changelog: String,
    pub source_topic: String,
}

/// A topic the application creates: a repartition topic (as many
/// partitions as the widest of `partitions_of`) or a compacted changelog.
#[derive(Debug, Clone)]
pub(crate) struct InternalTopic {
    pub name: String,
    pub partitions_of: Vec<String>,
    pub compacted: bool,
}

/// A global table: every instance holds all of `topic` in store `store`.
#[derive(Debug, Clone)]
pub(crate) struct TableSpec {
    pub topic: String,
    pub store: String,
}

/// A table materialised per task from a (compacted) topic, which serves
/// as its changelog: partition p of `topic` fills tree `<store>/<p>` of
/// the task of partition p of `joined_by`, the one source topic of the
/// streams joined with it (which must have as many partitions).
#[derive(Debug, Clone)]
pub(crate) struct PartitionedTable {
    pub topic: String,
    pub store: String,
    pub joined_by: Option<String>,
}

/// Everything a built topology holds.
#[derive(Default)]
pub(crate) struct Graph {
    pub app_id: String,
    pub sources: HashMap<String, Vec<SourceFn>>,
    pub stores: Vec<StoreSpec>,
    pub internal_topics: Vec<InternalTopic>,
    pub tables: Vec<TableSpec>,
    pub partitioned_tables: Vec<PartitionedTable>,
    /// The processors reading the records of each partitioned table's topic.
    pub table_sources: HashMap<String, Vec<SourceFn>>,
    /// Problems found while wiring, reported by `build`.
    pub errors: Vec<String>,
}

/// The graph under construction, shared by the builder and its streams.
pub(crate) type SharedGraph = Arc<Mutex<Graph>>;

/// Runs `f` on the graph under construction.
pub(crate) fn with_graph<R>(graph: &SharedGraph, f: impl FnOnce(&mut Graph) -> R) -> R {
    f(&mut graph.lock().unwrap_or_else(PoisonError::into_inner))
}

/// The source topics a stream's records come from.
pub(crate) type Origins = BTreeSet<String>;

impl Graph {
    /// The partitioned tables the tasks of `topic` hold.
    pub fn tables_joined_by<'a>(
        &'a self,
        topic: &'a str,
    ) -> impl Iterator<Item = &'a PartitionedTable> + 'a {
        self.partitioned_tables
            .iter()
            .filter(move |t| t.joined_by.as_deref() == Some(topic))
    }
}
