//! State stores: how they are laid out in sled, and typed handles to read
//! them, from processors and from the application (interactive queries).
//!
//! A task's store lives in tree `<store>/<partition>`; a global table in
//! tree `<store>`. Keys are the key serde's bytes; a windowed store appends
//! the window start (8 bytes, sign bit flipped, big-endian, so the bytes
//! sort as the times do). Changelog records carry exactly the tree's key
//! and value bytes, so restoring copies them back.

use crate::context::Ctx;
use crate::error::StreamsError;
use crate::graph::Data;
use crate::serdes::SharedSerde;
use crate::window::Window;
use std::sync::Arc;

/// The sled tree of partition `partition` of store `store`.
pub(crate) fn tree_name(store: &str, partition: i32) -> String {
    format!("{store}/{partition}")
}

/// The trees of `store` this instance holds (its partitions, or a global table).
pub(crate) fn local_trees(db: &sled::Db, store: &str) -> Result<Vec<sled::Tree>, StreamsError> {
    let prefix = format!("{store}/");
    let mut trees = Vec::new();
    for name in db.tree_names() {
        let Ok(name) = std::str::from_utf8(&name) else {
            continue;
        };
        if name == store
            || name
                .strip_prefix(&prefix)
                .is_some_and(|p| p.parse::<i32>().is_ok())
        {
            trees.push(db.open_tree(name)?);
        }
    }
    Ok(trees)
}

/// The tree key of `key` in window starting at `start`.
pub(crate) fn window_key(key: &[u8], start: i64) -> Vec<u8> {
    let mut bytes = key.to_vec();
    bytes.extend_from_slice(&((start as u64) ^ (1 << 63)).to_be_bytes());
    bytes
}

/// The key bytes and the window start a tree key of a windowed store holds.
pub(crate) fn split_window_key(tree_key: &[u8]) -> Option<(&[u8], i64)> {
    let (key, tail) = tree_key.split_at_checked(tree_key.len().checked_sub(8)?)?;
    let tail: [u8; 8] = tail.try_into().ok()?;
    Some((key, (u64::from_be_bytes(tail) ^ (1 << 63)) as i64))
}

/// A typed handle on a key-value store, for
/// [`KafkaStreams::get`](crate::KafkaStreams::get) and friends.
pub struct StoreRef<K, V> {
    pub(crate) name: String,
    pub(crate) key_serde: SharedSerde<K>,
    pub(crate) value_serde: SharedSerde<V>,
}

impl<K, V> Clone for StoreRef<K, V> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            key_serde: Arc::clone(&self.key_serde),
            value_serde: Arc::clone(&self.value_serde),
        }
    }
}

impl<K: Data, V: Data> StoreRef<K, V> {
    pub(crate) fn new(name: &str, key_serde: SharedSerde<K>, value_serde: SharedSerde<V>) -> Self {
        Self {
            name: name.to_string(),
            key_serde,
            value_serde,
        }
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value of `key` in the task's store, from a processor.
    pub(crate) fn lookup(&self, ctx: &mut Ctx<'_>, key: &K) -> Result<Option<V>, StreamsError> {
        let key = self.key_serde.serialize(key)?;
        ctx.get(&self.name, &key)?
            .map(|bytes| self.value_serde.deserialize(&bytes))
            .transpose()
    }

    /// The value of `key` in whichever of `trees` holds it.
    pub(crate) fn get_in(&self, trees: &[sled::Tree], key: &K) -> Result<Option<V>, StreamsError> {
        let key = self.key_serde.serialize(key)?;
        for tree in trees {
            if let Some(bytes) = tree.get(&key)? {
                return self.value_serde.deserialize(&bytes).map(Some);
            }
        }
        Ok(None)
    }

    /// Entries of `trees` with keys from `from` to `to` (inclusive) in key
    /// byte order.
    pub(crate) fn range_in(
        &self,
        trees: &[sled::Tree],
        from: &K,
        to: &K,
    ) -> Result<Vec<(K, V)>, StreamsError> {
        let from = self.key_serde.serialize(from)?;
        let to = self.key_serde.serialize(to)?;
        let mut entries = Vec::new();
        for tree in trees {
            for entry in tree.range(from.clone()..=to.clone()) {
                let (k, v) = entry?;
                entries.push((k.to_vec(), v));
            }
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries
            .into_iter()
            .map(|(k, v)| {
                Ok((
                    self.key_serde.deserialize(&k)?,
                    self.value_serde.deserialize(&v)?,
                ))
            })
            .collect()
    }
}

/// A typed handle on a windowed store, for
/// [`KafkaStreams::fetch_windows`](crate::KafkaStreams::fetch_windows).
pub struct WindowStoreRef<K, V> {
    pub(crate) inner: StoreRef<K, V>,
    pub(crate) size: i64,
}

impl<K, V> Clone for WindowStoreRef<K, V> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            size: self.size,
        }
    }
}

impl<K: Data, V: Data> WindowStoreRef<K, V> {
    /// The windows of `key` starting from `from` to `to` (inclusive, ms), oldest first.
    pub(crate) fn fetch_in(
        &self,
        trees: &[sled::Tree],
        key: &K,
        from: i64,
        to: i64,
    ) -> Result<Vec<(Window, V)>, StreamsError> {
        let key = self.inner.key_serde.serialize(key)?;
        let mut found = Vec::new();
        for tree in trees {
            for entry in tree.range(window_key(&key, from)..=window_key(&key, to)) {
                let (k, v) = entry?;
                if k.len() != key.len() + 8 {
                    continue;
                }
                if let Some((_, start)) = split_window_key(&k) {
                    let window = Window {
                        start,
                        end: start + self.size,
                    };
                    found.push((window, self.inner.value_serde.deserialize(&v)?));
                }
            }
        }
        found.sort_by_key(|(w, _)| w.start);
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_keys_sort_by_time_and_decode() {
        let early = window_key(b"k", -5);
        let late = window_key(b"k", 7);
        assert!(early < late);
        assert_eq!(split_window_key(&early), Some((&b"k"[..], -5)));
        assert_eq!(split_window_key(&late), Some((&b"k"[..], 7)));
    }
}
