//! SCRAM credentials, durable in the broker's sled database: for each user
//! and hash the salt, iterations, stored key and server key, never the
//! password (RFC 5802 section 3).

use super::state_db::{StateDb, StateTree};
use super::StoreError;
use crate::security::scram::{ScramCredential, ScramMechanism};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};

pub struct ScramStore {
    /// Key: the mechanism's code, then the user name; value: the
    /// credential, bincode.
    tree: StateTree,
    /// Every credential of the tree, read when a client logs in: a SASL
    /// exchange, run on an arbiter, never waits for sled. Updated by the
    /// store's writer as it applies a change, as sled's own view is.
    credentials: Arc<RwLock<Credentials>>,
}

/// Credentials by user and hash.
type Credentials = BTreeMap<(String, ScramMechanism), ScramCredential>;

/// A sled or bincode error of this store, kept as the source.
fn io_error(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    StoreError::io("SCRAM credential store", e)
}

fn key(user: &str, mechanism: ScramMechanism) -> Vec<u8> {
    let mut key = vec![mechanism.code() as u8];
    key.extend_from_slice(user.as_bytes());
    key
}

/// A change to one user's credential for one hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    Upsert(String, ScramMechanism, ScramCredential),
    Delete(String, ScramMechanism),
}

impl ScramStore {
    /// Opens the store and reads every credential into memory.
    pub fn open(db: &StateDb) -> io::Result<ScramStore> {
        let tree = db.open_tree("scram_credentials")?;
        let credentials = tree.load(|tree| {
            let mut credentials = Credentials::new();
            for entry in tree.iter() {
                let (key, value) = entry.map_err(io_error)?;
                let Some((&code, user)) = key.split_first() else {
                    continue;
                };
                let Some(mechanism) = ScramMechanism::from_code(code as i8) else {
                    continue;
                };
                let user = String::from_utf8_lossy(user).into_owned();
                let credential = bincode::deserialize(&value).map_err(io_error)?;
                credentials.insert((user, mechanism), credential);
            }
            Ok(credentials)
        })?;
        Ok(ScramStore {
            tree,
            credentials: Arc::new(RwLock::new(credentials)),
        })
    }

    /// A user's credential for one hash, from memory.
    pub fn get(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        read(&self.credentials)
            .get(&(user.to_owned(), mechanism))
            .cloned()
    }

    /// Applies the changes at once, flushed before returning.
    pub async fn apply(&self, changes: &[Change]) -> io::Result<()> {
        let mut batch = sled::Batch::default();
        for change in changes {
            match change {
                Change::Upsert(user, mechanism, credential) => batch.insert(
                    key(user, *mechanism),
                    bincode::serialize(credential).map_err(io_error)?,
                ),
                Change::Delete(user, mechanism) => batch.remove(key(user, *mechanism)),
            }
        }
        let changes = changes.to_vec();
        let credentials = self.credentials.clone();
        self.tree
            .write(move |tree| {
                tree.apply_batch(batch).map_err(io_error)?;
                let mut credentials = credentials.write().unwrap_or_else(PoisonError::into_inner);
                for change in changes {
                    match change {
                        Change::Upsert(user, mechanism, credential) => {
                            credentials.insert((user, mechanism), credential);
                        }
                        Change::Delete(user, mechanism) => {
                            credentials.remove(&(user, mechanism));
                        }
                    }
                }
                Ok(())
            })
            .await
    }

    /// Every user with credentials: per user, its hashes and iterations.
    pub fn list(&self) -> BTreeMap<String, Vec<(ScramMechanism, u32)>> {
        let mut users: BTreeMap<String, Vec<(ScramMechanism, u32)>> = BTreeMap::new();
        for ((user, mechanism), credential) in read(&self.credentials).iter() {
            users
                .entry(user.clone())
                .or_default()
                .push((*mechanism, credential.iterations));
        }
        users
    }
}

/// The credentials, readable even after a thread panicked holding the
/// lock: the map only ever holds whole credentials.
fn read(credentials: &RwLock<Credentials>) -> RwLockReadGuard<'_, Credentials> {
    credentials.read().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn credentials_are_kept_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let m = ScramMechanism::Sha512;
        let credential = ScramCredential::new(m, b"salt".to_vec(), &[7; 64], 4096);
        {
            let store =
                ScramStore::open(&crate::store::state_db::open(Some(dir.path())).unwrap()).unwrap();
            let changes = [
                Change::Upsert("alice".into(), m, credential.clone()),
                Change::Upsert("bob".into(), m, credential.clone()),
            ];
            store.apply(&changes).await.unwrap();
            store
                .apply(&[Change::Delete("bob".into(), m)])
                .await
                .unwrap();
        }
        let store =
            ScramStore::open(&crate::store::state_db::open(Some(dir.path())).unwrap()).unwrap();
        assert_eq!(store.get("alice", m), Some(credential));
        assert_eq!(store.get("alice", ScramMechanism::Sha256), None);
        assert_eq!(store.get("bob", m), None);
        let listed = store.list();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed["alice"], vec![(m, 4096)]);
    }
}
