//! A single broker's dynamic configs (KIP-226), durable in its sled
//! database. In a cluster the metadata image holds them instead.

use super::state_db::{StateDb, StateTree};
use super::StoreError;
use crate::dynamic_config::DynamicConfigs;
use std::io;

/// The one key of the tree: the whole set is small and replaced at once.
const KEY: &[u8] = b"configs";

pub struct DynamicConfigStore {
    /// [`KEY`] to the bincode of [`DynamicConfigs`].
    tree: StateTree,
}

fn io_error(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    StoreError::io("dynamic broker config store", e)
}

impl DynamicConfigStore {
    pub fn open(db: &StateDb) -> io::Result<DynamicConfigStore> {
        let tree = db.open_tree("dynamic_broker_configs")?;
        Ok(DynamicConfigStore { tree })
    }

    /// What was last saved; none at all before the first save. Read on
    /// the calling thread: for the broker's start.
    pub fn load(&self) -> io::Result<DynamicConfigs> {
        self.tree
            .load(|tree| match tree.get(KEY).map_err(io_error)? {
                Some(bytes) => bincode::deserialize(&bytes).map_err(io_error),
                None => Ok(DynamicConfigs::default()),
            })
    }

    /// Replaces the saved set; on disk (surviving a power loss) on return.
    pub async fn save(&self, configs: &DynamicConfigs) -> io::Result<()> {
        let bytes = bincode::serialize(configs).map_err(io_error)?;
        self.tree
            .write(move |tree| tree.insert(KEY, bytes).map(drop).map_err(io_error))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[actix_rt::test]
    async fn kept_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let open = || {
            DynamicConfigStore::open(&crate::store::state_db::open(Some(dir.path())).unwrap())
                .unwrap()
        };
        let mut configs = DynamicConfigs::default();
        {
            let store = open();
            assert_eq!(store.load().unwrap(), configs);
            configs.alter(
                None,
                BTreeMap::from([("log.retention.ms".into(), Some("60000".into()))]),
            );
            store.save(&configs).await.unwrap();
        }
        assert_eq!(open().load().unwrap(), configs);
    }
}
