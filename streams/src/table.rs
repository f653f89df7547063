//! Global tables: the latest value per key of a compacted topic, held
//! whole by every instance, for stream–table joins.

use crate::graph::Data;
use crate::store::StoreRef;

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
