//! The raft state machine: committed entries applied to the
//! [`ClusterImage`], published on a watch channel, and snapshotted.
//!
//! The image is kept behind an `Arc` and changed copy-on-write, so a
//! snapshot (or a reader of the watch channel) holds an immutable version
//! while apply goes on: snapshot building never blocks apply. Snapshots are
//! the only persisted form of the state machine; on restart the image is the
//! last snapshot and openraft re-applies the log after it.

use super::files;
use super::{LogId, StorageError, TypeConfig};
use crate::cluster::image::{Applied, ClusterImage};
use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    Entry, EntryPayload, ErrorSubject, ErrorVerb, RaftSnapshotBuilder, StorageIOError,
    StoredMembership,
};
use serde::{Deserialize, Serialize};
use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::watch;

const SNAPSHOT_FILE: &str = "snapshot";

type Meta = SnapshotMeta<u64, super::ControllerNode>;

/// A snapshot as stored on disk: its meta and the bincode of the image.
#[derive(Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: Meta,
    data: Vec<u8>,
}

/// The state machine openraft drives.
pub struct StateMachine {
    image: Arc<ClusterImage>,
    last_applied: Option<LogId>,
    membership: StoredMembership<u64, super::ControllerNode>,
    published: watch::Sender<Arc<ClusterImage>>,
    dir: PathBuf,
    /// Shared with snapshot builders, which finish on their own task.
    current: Arc<Mutex<Option<StoredSnapshot>>>,
}

/// Builds a snapshot of one version of the image.
pub struct SnapshotBuilder {
    image: Arc<ClusterImage>,
    last_applied: Option<LogId>,
    membership: StoredMembership<u64, super::ControllerNode>,
    dir: PathBuf,
    current: Arc<Mutex<Option<StoredSnapshot>>>,
}

fn sm_err(verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError {
    log::error!("controller state machine storage failed ({verb:?}): {e}; stopping the raft node");
    StorageIOError::new(
        ErrorSubject::StateMachine,
        verb,
        &io::Error::other(e.to_string()),
    )
    .into()
}

impl StateMachine {
    /// Loads the last snapshot in `dir`, if any, and publishes its image.
    pub fn open(dir: &Path) -> io::Result<(StateMachine, watch::Receiver<Arc<ClusterImage>>)> {
        let stored: Option<StoredSnapshot> = files::read_record_file(&dir.join(SNAPSHOT_FILE))?
            .map(|b| bincode::deserialize(&b))
            .transpose()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let (image, last_applied, membership) = match &stored {
            Some(s) => (
                bincode::deserialize(&s.data)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?,
                s.meta.last_log_id,
                s.meta.last_membership.clone(),
            ),
            None => (ClusterImage::default(), None, StoredMembership::default()),
        };
        let image = Arc::new(image);
        let (published, rx) = watch::channel(image.clone());
        let sm = StateMachine {
            image,
            last_applied,
            membership,
            published,
            dir: dir.to_path_buf(),
            current: Arc::new(Mutex::new(stored)),
        };
        Ok((sm, rx))
    }
}

/// Writes a snapshot durably off the async threads and makes it current.
async fn persist(
    dir: PathBuf,
    current: Arc<Mutex<Option<StoredSnapshot>>>,
    stored: StoredSnapshot,
) -> Result<(), StorageError> {
    let bytes = bincode::serialize(&stored).map_err(|e| sm_err(ErrorVerb::Write, e))?;
    tokio::task::spawn_blocking(move || {
        files::write_record_file(&dir.join(SNAPSHOT_FILE), &bytes, true)
    })
    .await
    .map_err(|e| sm_err(ErrorVerb::Write, e))?
    .map_err(|e| sm_err(ErrorVerb::Write, e))?;
    let mut slot = current.lock().unwrap_or_else(PoisonError::into_inner);
    // Builders may finish out of order; never go back to an older one.
    if slot
        .as_ref()
        .is_none_or(|s| s.meta.last_log_id <= stored.meta.last_log_id)
    {
        *slot = Some(stored);
    }
    Ok(())
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let data = bincode::serialize(&*self.image).map_err(|e| sm_err(ErrorVerb::Write, e))?;
        let snapshot_id = match self.last_applied {
            Some(id) => format!(
                "{}-{}-{}",
                id.leader_id.term, id.leader_id.node_id, id.index
            ),
            None => "empty".to_string(),
        };
        let meta = Meta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id,
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        };
        persist(self.dir.clone(), self.current.clone(), stored).await?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, StoredMembership<u64, super::ControllerNode>), StorageError> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(
        &mut self,
        entries: I,
    ) -> Result<Vec<crate::cluster::CommandResult>, StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let image = Arc::make_mut(&mut self.image);
        let mut results = Vec::new();
        for entry in entries {
            let index = entry.log_id.index;
            self.last_applied = Some(entry.log_id);
            let result = match entry.payload {
                EntryPayload::Normal(cmd) => image.apply(cmd, index),
                EntryPayload::Blank => {
                    image.applied_index = index;
                    Ok(Applied::Done)
                }
                EntryPayload::Membership(m) => {
                    image.applied_index = index;
                    self.membership = StoredMembership::new(Some(entry.log_id), m);
                    Ok(Applied::Done)
                }
            };
            results.push(result);
        }
        self.published.send_replace(self.image.clone());
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            image: self.image.clone(),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            dir: self.dir.clone(),
            current: self.current.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let image: ClusterImage =
            bincode::deserialize(&data).map_err(|e| sm_err(ErrorVerb::Read, e))?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        persist(self.dir.clone(), self.current.clone(), stored).await?;
        self.image = Arc::new(image);
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.published.send_replace(self.image.clone());
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let slot = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(slot.as_ref().map(|s| Snapshot {
            meta: s.meta.clone(),
            snapshot: Box::new(Cursor::new(s.data.clone())),
        }))
    }
}
