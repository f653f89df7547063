//! `KStream`: a typed stream of records and its stateless operators.

use crate::builder::source_stream;
use crate::graph::{with_graph, Data, Node, Origins, SharedGraph};
use crate::grouped::{KGroupedStream, KTable};
use crate::serdes::Serde;
use crate::store::StoreRef;
use crate::table::GlobalKTable;
use std::sync::Arc;

/// A predicate of [`KStream::branch`].
pub type Predicate<K, V> = Box<dyn Fn(&K, &V) -> bool + Send + Sync>;

/// A stream of key-value records. Operators consume the stream and return
/// the next one; `Clone` it to hang several operators off one stream.
pub struct KStream<K, V> {
    pub(crate) node: Node<K, V>,
    pub(crate) graph: SharedGraph,
    pub(crate) origins: Origins,
    /// Whether an operator may have changed keys since the source, so that
    /// grouping must repartition.
    pub(crate) key_changed: bool,
}

impl<K, V> Clone for KStream<K, V> {
    fn clone(&self) -> Self {
        Self {
            node: self.node.clone(),
            graph: Arc::clone(&self.graph),
            origins: self.origins.clone(),
            key_changed: self.key_changed,
        }
    }
}

impl<K: Data, V: Data> KStream<K, V> {
    /// A stream that receives what `wire` passes on from this one.
    fn derive<K2: Data, V2: Data>(
        &self,
        key_changed: bool,
        wire: impl Fn(Node<K2, V2>) -> crate::graph::Processor<K, V>,
    ) -> KStream<K2, V2> {
        let node = Node::new();
        self.node.add(wire(node.clone()));
        KStream {
            node,
            graph: Arc::clone(&self.graph),
            origins: self.origins.clone(),
            key_changed,
        }
    }

    /// The records for which `predicate` holds.
    pub fn filter(&self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> Self {
        let predicate = Arc::new(predicate);
        self.derive(self.key_changed, move |next| {
            let predicate = Arc::clone(&predicate);
            Arc::new(move |ctx, k, v| {
                if predicate(&k, &v) {
                    next.forward(ctx, k, v)
                } else {
                    Ok(())
                }
            })
        })
    }

    /// Each record turned into a new key and value.
    pub fn map<K2: Data, V2: Data>(
        &self,
        f: impl Fn(K, V) -> (K2, V2) + Send + Sync + 'static,
    ) -> KStream<K2, V2> {
        let f = Arc::new(f);
        self.derive(true, move |next| {
            let f = Arc::clone(&f);
            Arc::new(move |ctx, k, v| {
                let (k2, v2) = f(k, v);
                next.forward(ctx, k2, v2)
            })
        })
    }

    /// Each value turned into a new one, keys unchanged (no repartition needed).
    pub fn map_values<V2: Data>(
        &self,
        f: impl Fn(V) -> V2 + Send + Sync + 'static,
    ) -> KStream<K, V2> {
        let f = Arc::new(f);
        self.derive(self.key_changed, move |next| {
            let f = Arc::clone(&f);
            Arc::new(move |ctx, k, v| next.forward(ctx, k, f(v)))
        })
    }

    /// Each record turned into any number of records.
    pub fn flat_map<K2: Data, V2: Data, I>(
        &self,
        f: impl Fn(K, V) -> I + Send + Sync + 'static,
    ) -> KStream<K2, V2>
    where
        I: IntoIterator<Item = (K2, V2)>,
    {
        let f = Arc::new(f);
        self.derive(true, move |next| {
            let f = Arc::clone(&f);
            Arc::new(move |ctx, k, v| {
                for (k2, v2) in f(k, v) {
                    next.forward(ctx, k2, v2)?;
                }
                Ok(())
            })
        })
    }

    /// Calls `f` on each record and passes it on unchanged.
    pub fn peek(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) -> Self {
        let f = Arc::new(f);
        self.derive(self.key_changed, move |next| {
            let f = Arc::clone(&f);
            Arc::new(move |ctx, k, v| {
                f(&k, &v);
                next.forward(ctx, k, v)
            })
        })
    }

    /// Event time from the records themselves: downstream operators (windows,
    /// and the timestamps of written records) see `extract(key, value)`
    /// instead of the record's timestamp.
    pub fn timestamp_by(&self, extract: impl Fn(&K, &V) -> i64 + Send + Sync + 'static) -> Self {
        let extract = Arc::new(extract);
        self.derive(self.key_changed, move |next| {
            let extract = Arc::clone(&extract);
            Arc::new(move |ctx, k, v| {
                let record_time = ctx.timestamp;
                ctx.timestamp = extract(&k, &v);
                let result = next.forward(ctx, k, v);
                ctx.timestamp = record_time;
                result
            })
        })
    }

    /// One stream per predicate: each record goes to the first whose
    /// predicate holds, or nowhere.
    pub fn branch(&self, predicates: Vec<Predicate<K, V>>) -> Vec<Self> {
        let outputs: Vec<Node<K, V>> = predicates.iter().map(|_| Node::new()).collect();
        let targets = outputs.clone();
        self.node.add(Arc::new(move |ctx, k, v| {
            match predicates.iter().position(|p| p(&k, &v)) {
                Some(i) => targets[i].forward(ctx, k, v),
                None => Ok(()),
            }
        }));
        outputs
            .into_iter()
            .map(|node| KStream {
                node,
                graph: Arc::clone(&self.graph),
                origins: self.origins.clone(),
                key_changed: self.key_changed,
            })
            .collect()
    }

    /// The records of both streams.
    pub fn merge(&self, other: &Self) -> Self {
        let node = Node::new();
        self.node.add(node.as_processor());
        other.node.add(node.as_processor());
        KStream {
            node,
            graph: Arc::clone(&self.graph),
            origins: self.origins.union(&other.origins).cloned().collect(),
            key_changed: self.key_changed || other.key_changed,
        }
    }

    /// Writes the records to `topic`, partitioned by key as the Java client
    /// does (murmur2).
    pub fn to(&self, topic: &str, key_serde: impl Serde<K>, value_serde: impl Serde<V>) {
        let topic = topic.to_string();
        self.node.add(Arc::new(move |ctx, k, v| {
            let key = key_serde.serialize(&k)?;
            let value = value_serde.serialize(&v)?;
            ctx.emit(&topic, key, value);
            Ok(())
        }));
    }

    /// Writes the records to `topic` (which must exist) and reads them back
    /// from it: a repartition by the current key through a topic of your own.
    pub fn through<KS, VS>(&self, topic: &str, key_serde: KS, value_serde: VS) -> Self
    where
        KS: Serde<K> + Clone,
        VS: Serde<V> + Clone,
    {
        self.to(topic, key_serde.clone(), value_serde.clone());
        source_stream(
            &self.graph,
            topic,
            Arc::new(key_serde),
            Arc::new(value_serde),
        )
    }

    /// Records with the value `join(value, table_value)` for keys the global
    /// table holds; records whose key it lacks are dropped.
    pub fn join<T: Data, R: Data>(
        &self,
        table: &GlobalKTable<K, T>,
        join: impl Fn(&V, &T) -> R + Send + Sync + 'static,
    ) -> KStream<K, R> {
        self.looked_up(table.store.clone(), move |v, t| t.map(|t| join(v, t)))
    }

    /// Like [`join`](Self::join), but records whose key the table lacks
    /// are kept, joined with `None`.
    pub fn left_join<T: Data, R: Data>(
        &self,
        table: &GlobalKTable<K, T>,
        join: impl Fn(&V, Option<&T>) -> R + Send + Sync + 'static,
    ) -> KStream<K, R> {
        self.looked_up(table.store.clone(), move |v, t| Some(join(v, t)))
    }

    /// Records with the value `join(value, table_value)` for keys the
    /// table read from a topic ([`StreamsBuilder::table`]) holds when the
    /// record is processed; records whose key it lacks are dropped. The
    /// stream must come straight (no key change) from one topic
    /// co-partitioned with the table's, whose tasks then hold the table.
    ///
    /// [`StreamsBuilder::table`]: crate::StreamsBuilder::table
    pub fn join_table<T: Data, R: Data>(
        &self,
        table: &KTable<K, T>,
        join: impl Fn(&V, &T) -> R + Send + Sync + 'static,
    ) -> KStream<K, R> {
        self.holds(table);
        self.looked_up(table.store.clone(), move |v, t| t.map(|t| join(v, t)))
    }

    /// Like [`join_table`](Self::join_table), but records whose key the
    /// table lacks are kept, joined with `None`.
    pub fn left_join_table<T: Data, R: Data>(
        &self,
        table: &KTable<K, T>,
        join: impl Fn(&V, Option<&T>) -> R + Send + Sync + 'static,
    ) -> KStream<K, R> {
        self.holds(table);
        self.looked_up(table.store.clone(), move |v, t| Some(join(v, t)))
    }

    /// Records whose key `store` is looked up in, passed on with the value
    /// `join` makes of theirs and the table's, if it makes one.
    fn looked_up<T: Data, R: Data>(
        &self,
        store: StoreRef<K, T>,
        join: impl Fn(&V, Option<&T>) -> Option<R> + Send + Sync + 'static,
    ) -> KStream<K, R> {
        let join = Arc::new(join);
        self.derive(self.key_changed, move |next| {
            let join = Arc::clone(&join);
            let store = store.clone();
            Arc::new(move |ctx, k, v| {
                let t = store.lookup(ctx, &k)?;
                match join(&v, t.as_ref()) {
                    Some(r) => next.forward(ctx, k, r),
                    None => Ok(()),
                }
            })
        })
    }

    /// Makes the tasks of this stream's topic hold `table`, or records why
    /// they cannot.
    fn holds<T: Data>(&self, table: &KTable<K, T>) {
        let store = table.store.name().to_string();
        with_graph(&self.graph, |g| {
            let problem = match (&table.source_topic, self.origins.iter().next()) {
                (None, _) => Some(format!(
                    "table {store} is an aggregation's: only a table read with StreamsBuilder::table can be joined"
                )),
                _ if self.key_changed => Some(format!(
                    "a stream whose keys may have changed joins table {store}: repartition it first (through)"
                )),
                (Some(_), Some(origin)) if self.origins.len() == 1 => {
                    let spec = g
                        .partitioned_tables
                        .iter_mut()
                        .find(|t| t.store == store);
                    match spec {
                        Some(spec) if spec.joined_by.as_ref().is_some_and(|o| o != origin) => {
                            Some(format!(
                                "table {store} is joined by streams of {} and {origin}: its partitions can live in the tasks of one topic only",
                                spec.joined_by.clone().unwrap_or_default()
                            ))
                        }
                        Some(spec) => {
                            spec.joined_by = Some(origin.clone());
                            None
                        }
                        None => Some(format!("table {store} is not part of this topology")),
                    }
                }
                _ => Some(format!(
                    "a stream of records of {:?} joins table {store}: it must come from one topic",
                    self.origins
                )),
            };
            g.errors.extend(problem);
        });
    }

    /// Groups records by their key for an aggregation, repartitioning
    /// through `<app>-<store>-repartition` if an operator may have changed
    /// the keys (as Kafka Streams does).
    pub fn group_by_key(
        &self,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
    ) -> KGroupedStream<K, V> {
        KGroupedStream::new(
            self.clone(),
            Arc::new(key_serde),
            Arc::new(value_serde),
            self.key_changed,
        )
    }

    /// Groups records by the key `key_of` gives them, always repartitioning
    /// through `<app>-<store>-repartition`.
    pub fn group_by<K2: Data>(
        &self,
        key_of: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
        key_serde: impl Serde<K2>,
        value_serde: impl Serde<V>,
    ) -> KGroupedStream<K2, V> {
        let rekeyed = self.map(move |k, v| (key_of(&k, &v), v));
        KGroupedStream::new(rekeyed, Arc::new(key_serde), Arc::new(value_serde), true)
    }
}
