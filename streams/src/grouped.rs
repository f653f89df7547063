//! Grouped streams and their aggregations into state stores: `count`,
//! `reduce` and `aggregate`, plain or over time windows, giving tables
//! whose updates can be streamed on and whose stores can be queried.

use crate::builder::source_stream;
use crate::context::Ctx;
use crate::error::StreamsError;
use crate::graph::{with_graph, Data, InternalTopic, Node, StoreSpec};
use crate::serdes::{Serde, SharedSerde, I64};
use crate::store::{split_window_key, window_key, StoreRef, WindowStoreRef};
use crate::stream::KStream;
use crate::window::{TimeWindows, Window, Windowed};
use std::sync::Arc;

/// A stream grouped by key, ready to aggregate.
pub struct KGroupedStream<K, V> {
    upstream: KStream<K, V>,
    key_serde: SharedSerde<K>,
    value_serde: SharedSerde<V>,
    repartition: bool,
}

/// A grouped stream over time windows.
pub struct WindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: TimeWindows,
}

/// A table: one value per key, in a store. An aggregation keeps one, and
/// [`StreamsBuilder::table`](crate::StreamsBuilder::table) reads one from
/// a topic (only those can be joined with a stream).
pub struct KTable<K, V> {
    pub(crate) updates: KStream<K, V>,
    pub(crate) store: StoreRef<K, V>,
    /// The topic of a table read from one.
    pub(crate) source_topic: Option<String>,
}

/// The table a windowed aggregation keeps: one value per key and window.
pub struct WindowedKTable<K, V> {
    updates: KStream<Windowed<K>, V>,
    store: WindowStoreRef<K, V>,
    windows: TimeWindows,
}

/// An aggregation step: the aggregate so far (none for a new key or
/// window) and a record's value give the next aggregate.
type Step<A, V> = Arc<dyn Fn(Option<A>, V) -> A + Send + Sync>;

/// The step of `aggregate`: fold into the aggregate so far or a fresh one.
fn folding<A, V>(
    init: impl Fn() -> A + Send + Sync + 'static,
    f: impl Fn(A, V) -> A + Send + Sync + 'static,
) -> Step<A, V> {
    Arc::new(move |old, v| f(old.unwrap_or_else(&init), v))
}

/// The step of `reduce`: a key's first value starts its aggregate.
fn reducing<V>(f: impl Fn(V, V) -> V + Send + Sync + 'static) -> Step<V, V> {
    Arc::new(move |old, v| match old {
        Some(agg) => f(agg, v),
        None => v,
    })
}

impl<K: Data, V: Data> KGroupedStream<K, V> {
    pub(crate) fn new(
        upstream: KStream<K, V>,
        key_serde: SharedSerde<K>,
        value_serde: SharedSerde<V>,
        repartition: bool,
    ) -> Self {
        Self {
            upstream,
            key_serde,
            value_serde,
            repartition,
        }
    }

    /// Over time windows of event time.
    pub fn window(self, windows: TimeWindows) -> WindowedKStream<K, V> {
        WindowedKStream {
            grouped: self,
            windows,
        }
    }

    /// The number of records per key, in store `store`.
    pub fn count(self, store: &str) -> KTable<K, i64> {
        self.aggregate(|| 0, |n, _| n + 1, store, I64)
    }

    /// Values per key combined with `f`, in store `store`.
    pub fn reduce(
        self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        store: &str,
    ) -> KTable<K, V> {
        let serde = SerdeRef(Arc::clone(&self.value_serde));
        self.fold_into(store, reducing(f), serde)
    }

    /// Values per key folded into an aggregate starting at `init()`, in
    /// store `store`, whose values `serde` writes.
    pub fn aggregate<A: Data>(
        self,
        init: impl Fn() -> A + Send + Sync + 'static,
        f: impl Fn(A, V) -> A + Send + Sync + 'static,
        store: &str,
        serde: impl Serde<A>,
    ) -> KTable<K, A> {
        self.fold_into(store, folding(init, f), serde)
    }

    /// Wires the aggregation: each record's `step` result is stored and
    /// passed on as an update of the table.
    fn fold_into<A: Data>(
        self,
        store: &str,
        step: Step<A, V>,
        serde: impl Serde<A>,
    ) -> KTable<K, A> {
        let key_serde = Arc::clone(&self.key_serde);
        let (input, name) = self.store_input(store);
        let serde: SharedSerde<A> = Arc::new(serde);
        let updates = Node::new();
        let out = updates.clone();
        let value_serde = Arc::clone(&serde);
        let keys = Arc::clone(&key_serde);
        input
            .node
            .add(Arc::new(move |ctx: &mut Ctx<'_>, k: K, v: V| {
                let key = keys.serialize(&k)?;
                let old = ctx
                    .get(&name, &key)?
                    .map(|b| value_serde.deserialize(&b))
                    .transpose()?;
                let new = step(old, v);
                ctx.put(&name, key, value_serde.serialize(&new)?)?;
                out.forward(ctx, k, new)
            }));
        KTable {
            updates: KStream {
                node: updates,
                graph: Arc::clone(&input.graph),
                origins: input.origins.clone(),
                key_changed: false,
            },
            store: StoreRef::new(store, key_serde, serde),
            source_topic: None,
        }
    }

    /// The stream a store's processor hangs off: this one, or the records
    /// read back from `<app>-<store>-repartition`. Registers the store and
    /// its changelog `<app>-<store>-changelog`.
    fn store_input(self, store: &str) -> (KStream<K, V>, String) {
        let graph = Arc::clone(&self.upstream.graph);
        let app = with_graph(&graph, |g| g.app_id.clone());
        let input = if self.repartition {
            let topic = format!("{app}-{store}-repartition");
            let (ks, vs) = (Arc::clone(&self.key_serde), Arc::clone(&self.value_serde));
            let target = topic.clone();
            self.upstream.node.add(Arc::new(move |ctx, k, v| {
                let key = ks.serialize(&k)?;
                let value = vs.serialize(&v)?;
                ctx.emit(&target, key, value);
                Ok(())
            }));
            with_graph(&graph, |g| {
                g.internal_topics.push(InternalTopic {
                    name: topic.clone(),
                    partitions_of: self.upstream.origins.iter().cloned().collect(),
                    compacted: false,
                })
            });
            source_stream(&graph, &topic, self.key_serde, self.value_serde)
        } else {
            self.upstream
        };
        register_store(&input, store);
        (input, store.to_string())
    }
}

/// Registers store `store`, fed by the records of `input`, and its
/// changelog `<app>-<store>-changelog`.
fn register_store<K, V>(input: &KStream<K, V>, store: &str) {
    with_graph(&input.graph, |g| {
        let changelog = format!("{}-{store}-changelog", g.app_id);
        match input.origins.iter().next() {
            Some(source) if input.origins.len() == 1 => {
                g.stores.push(StoreSpec {
                    name: store.to_string(),
                    changelog: changelog.clone(),
                    source_topic: source.clone(),
                });
                g.internal_topics.push(InternalTopic {
                    name: changelog,
                    partitions_of: vec![source.clone()],
                    compacted: true,
                });
            }
            _ => g.errors.push(format!(
                "store {store} is fed by records of {:?}: group by a new key (group_by) to repartition them into one topic",
                input.origins
            )),
        }
    });
}

/// A shared serde passed where a serde value is expected.
struct SerdeRef<T>(SharedSerde<T>);

impl<T: 'static> Serde<T> for SerdeRef<T> {
    fn serialize(&self, value: &T) -> Result<Vec<u8>, StreamsError> {
        self.0.serialize(value)
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<T, StreamsError> {
        self.0.deserialize(bytes)
    }
}

impl<K: Data, V: Data> WindowedKStream<K, V> {
    /// The number of records per key and window.
    pub fn count(self, store: &str) -> WindowedKTable<K, i64> {
        self.aggregate(|| 0, |n, _| n + 1, store, I64)
    }

    /// Values per key and window combined with `f`.
    pub fn reduce(
        self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        store: &str,
    ) -> WindowedKTable<K, V> {
        let serde = SerdeRef(Arc::clone(&self.grouped.value_serde));
        self.fold_into(store, reducing(f), serde)
    }

    /// Values per key and window folded into an aggregate starting at `init()`.
    pub fn aggregate<A: Data>(
        self,
        init: impl Fn() -> A + Send + Sync + 'static,
        f: impl Fn(A, V) -> A + Send + Sync + 'static,
        store: &str,
        serde: impl Serde<A>,
    ) -> WindowedKTable<K, A> {
        self.fold_into(store, folding(init, f), serde)
    }

    /// Wires the windowed aggregation: each record updates every window its
    /// timestamp falls in, unless that window closed (stream time passed
    /// its end plus grace), in which case the record is dropped for it.
    fn fold_into<A: Data>(
        self,
        store: &str,
        step: Step<A, V>,
        serde: impl Serde<A>,
    ) -> WindowedKTable<K, A> {
        let windows = self.windows;
        let key_serde = Arc::clone(&self.grouped.key_serde);
        let (input, name) = self.grouped.store_input(store);
        let serde: SharedSerde<A> = Arc::new(serde);
        let updates = Node::new();
        let out = updates.clone();
        let value_serde = Arc::clone(&serde);
        let keys = Arc::clone(&key_serde);
        input
            .node
            .add(Arc::new(move |ctx: &mut Ctx<'_>, k: K, v: V| {
                let timestamp = ctx.timestamp;
                let stream_time = {
                    let local = ctx.store(&name)?;
                    local.stream_time = local.stream_time.max(timestamp);
                    local.stream_time
                };
                let key = keys.serialize(&k)?;
                for window in windows.windows_for(timestamp) {
                    if windows.is_closed(window, stream_time) {
                        log::debug!(
                            "dropping a record at {timestamp} for closed window {window:?}"
                        );
                        continue;
                    }
                    let tree_key = window_key(&key, window.start);
                    let old = ctx
                        .get(&name, &tree_key)?
                        .map(|b| value_serde.deserialize(&b))
                        .transpose()?;
                    let new = step(old, v.clone());
                    ctx.put(&name, tree_key, value_serde.serialize(&new)?)?;
                    let windowed = Windowed {
                        key: k.clone(),
                        window,
                    };
                    out.forward(ctx, windowed, new)?;
                }
                Ok(())
            }));
        WindowedKTable {
            updates: KStream {
                node: updates,
                graph: Arc::clone(&input.graph),
                origins: input.origins.clone(),
                key_changed: false,
            },
            store: WindowStoreRef {
                inner: StoreRef::new(store, key_serde, serde),
                size: windows.size(),
            },
            windows,
        }
    }
}

impl<K: Data, V: Data> KTable<K, V> {
    /// Every update of the table, as a stream of the new values.
    pub fn to_stream(&self) -> KStream<K, V> {
        self.updates.clone()
    }

    /// A handle to read the table's store while the application runs.
    pub fn queryable(&self) -> StoreRef<K, V> {
        self.store.clone()
    }
}

impl<K: Data, V: Data> WindowedKTable<K, V> {
    /// Every update of a window's aggregate, as a stream.
    pub fn to_stream(&self) -> KStream<Windowed<K>, V> {
        self.updates.clone()
    }

    /// A handle to read the windows of a key while the application runs.
    pub fn queryable(&self) -> WindowStoreRef<K, V> {
        self.store.clone()
    }

    /// Only the final value of each window, once, when the window closes
    /// (stream time reached its end plus grace), as Kafka Streams'
    /// `suppress(untilWindowCloses)`. The values still waiting are kept in
    /// store `store`, with a changelog, so they survive a restart; a
    /// window closes when a record of the task's partition advances its
    /// stream time past it.
    pub fn suppress_until_window_closes(&self, store: &str) -> KStream<Windowed<K>, V> {
        register_store(&self.updates, store);
        let (windows, size) = (self.windows, self.store.size);
        let keys = Arc::clone(&self.store.inner.key_serde);
        let values = Arc::clone(&self.store.inner.value_serde);
        let name = store.to_string();
        let finals = Node::new();
        let out = finals.clone();
        self.updates
            .node
            .add(Arc::new(move |ctx: &mut Ctx<'_>, k: Windowed<K>, v: V| {
                let key = window_key(&keys.serialize(&k.key)?, k.window.start);
                ctx.put(&name, key, values.serialize(&v)?)?;
                let timestamp = ctx.timestamp;
                let local = ctx.store(&name)?;
                local.stream_time = local.stream_time.max(timestamp);
                let stream_time = local.stream_time;
                let mut closed = Vec::new();
                for entry in local.tree.iter() {
                    let (tree_key, value) = entry?;
                    let Some((key, start)) = split_window_key(&tree_key) else {
                        log::warn!("store {name} holds a key without a window");
                        continue;
                    };
                    let window = Window {
                        start,
                        end: start + size,
                    };
                    if windows.is_closed(window, stream_time) {
                        closed.push((tree_key.to_vec(), key.to_vec(), window, value));
                    }
                }
                for (tree_key, key, window, value) in closed {
                    ctx.delete(&name, &tree_key)?;
                    let windowed = Windowed {
                        key: keys.deserialize(&key)?,
                        window,
                    };
                    out.forward(ctx, windowed, values.deserialize(&value)?)?;
                }
                Ok(())
            }));
        KStream {
            node: finals,
            graph: Arc::clone(&self.updates.graph),
            origins: self.updates.origins.clone(),
            key_changed: false,
        }
    }
}
