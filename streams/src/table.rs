//! Tables read from topics for stream–table joins: global tables, held
//! whole by every instance, and partitioned tables, held by the tasks of
//! the co-partitioned stream that joins them.

use crate::error::StreamsError;
use crate::graph::{Data, Node, SourceFn};
use crate::serdes::SharedSerde;
use crate::store::StoreRef;
use std::sync::Arc;

/// A table read from a topic by every instance (see
/// [`StreamsBuilder::global_table`](crate::StreamsBuilder::global_table)).
pub struct GlobalKTable<K, V> {
    pub(crate) store: StoreRef<K, V>,
}

impl<K: Data, V: Data> GlobalKTable<K, V> {
    /// A handle to read the table while the application runs.
    pub fn queryable(&self) -> StoreRef<K, V> {
        self.store.clone()
    }
}

/// The processor applying a record of a partitioned table's topic to its
/// store in the task: a value sets the key and goes on to `updates`, no
/// value (a tombstone) deletes the key. Records whose bytes the serdes
/// refuse are logged and skipped.
pub(crate) fn table_source<K: Data, V: Data>(
    topic: &str,
    store: &str,
    key_serde: SharedSerde<K>,
    value_serde: SharedSerde<V>,
    updates: Node<K, V>,
) -> SourceFn {
    let (topic, store) = (topic.to_string(), store.to_string());
    Arc::new(move |ctx, key, value| {
        let key = key.unwrap_or_default();
        let decoded = key_serde.deserialize(key).and_then(|k| {
            let v = value.map(|v| value_serde.deserialize(v)).transpose()?;
            Ok::<_, StreamsError>((k, v))
        });
        match decoded {
            Ok((k, Some(v))) => {
                ctx.put(&store, key.to_vec(), value.unwrap_or_default().to_vec())?;
                updates.forward(ctx, k, v)
            }
            Ok((_, None)) => ctx.delete(&store, key),
            Err(e) => {
                log::warn!(
                    "skipping a record of table {topic} partition {}: {e}",
                    ctx.partition
                );
                Ok(())
            }
        }
    })
}
