//! Who may do what, kept for the whole cluster: ACLs and SCRAM credentials.
//! On a single broker they live in its state database; in a cluster in the
//! metadata image, changed through the controller quorum, so a user logs in
//! and is authorized the same way on every broker, and a change made
//! through one broker holds on all of them.

use super::*;
use crate::security::scram::{ScramCredential, ScramMechanism};
use crate::store::scram::Change;

/// An ACL or credential change the controller quorum refused or did not
/// commit.
fn change_failed(e: TopicError) -> io::Error {
    io::Error::other(format!("the change was not committed: {}", e.message))
}

impl Broker {
    /// Stores new ACLs durably (in a cluster, in the metadata every broker
    /// applies); they are enforced here from the return on.
    pub async fn create_acls(&self, acls: &[AclBinding]) -> io::Result<()> {
        let _one_change = self.acl_changes.lock().await;
        if let Some(node) = &self.cluster {
            let command = Command::CreateAcls {
                acls: acls.to_vec(),
            };
            self.submit(node, command).await.map_err(change_failed)?;
            self.enforce_cluster_acls(node);
            return Ok(());
        }
        self.acls.create(acls).await?;
        self.authorizer.set_acls(&self.acls.all().await?);
        Ok(())
    }

    /// Removes the ACLs each filter matches, durably; what each removed.
    pub async fn delete_acls(&self, filters: &[AclFilter]) -> io::Result<Vec<Vec<AclBinding>>> {
        let _one_change = self.acl_changes.lock().await;
        if let Some(node) = &self.cluster {
            let command = Command::DeleteAcls {
                filters: filters.to_vec(),
            };
            let applied = self.submit(node, command).await.map_err(change_failed)?;
            self.enforce_cluster_acls(node);
            return match applied {
                Applied::AclsDeleted(removed) => Ok(removed),
                other => Err(io::Error::other(format!("unexpected answer {other:?}"))),
            };
        }
        let removed = self.acls.delete(filters).await?;
        self.authorizer.set_acls(&self.acls.all().await?);
        Ok(removed)
    }

    /// The ACLs a filter matches, sorted: the metadata's in a cluster.
    pub async fn describe_acls(&self, filter: &AclFilter) -> io::Result<Vec<AclBinding>> {
        match &self.cluster {
            Some(node) => Ok(node
                .image()
                .borrow()
                .acls
                .iter()
                .filter(|a| filter.matches(a))
                .cloned()
                .collect()),
            None => self.acls.describe(filter).await,
        }
    }

    /// Enforces the ACLs of the latest metadata image (every broker of a
    /// cluster, on each image that changed them).
    pub(crate) fn enforce_cluster_acls(&self, node: &ClusterNode) {
        let acls: Vec<AclBinding> = node.image().borrow().acls.iter().cloned().collect();
        self.authorizer.set_acls(&acls);
    }

    /// A user's SCRAM credential for one hash, from memory (a login never
    /// waits on the disk).
    pub fn scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Option<ScramCredential> {
        match &self.cluster {
            Some(node) => node
                .image()
                .borrow()
                .scram
                .get(&(user.to_owned(), mechanism))
                .cloned(),
            None => self.scram.get(user, mechanism),
        }
    }

    /// Every user with SCRAM credentials: its hashes and iterations.
    pub fn scram_users(&self) -> BTreeMap<String, Vec<(ScramMechanism, u32)>> {
        let Some(node) = &self.cluster else {
            return self.scram.list();
        };
        let mut users: BTreeMap<String, Vec<(ScramMechanism, u32)>> = BTreeMap::new();
        for ((user, mechanism), credential) in &node.image().borrow().scram {
            users
                .entry(user.clone())
                .or_default()
                .push((*mechanism, credential.iterations));
        }
        users
    }

    /// Applies credential changes at once, durably (in a cluster, through
    /// the controller quorum); they hold here from the return on.
    pub async fn alter_scram_credentials(&self, changes: Vec<Change>) -> io::Result<()> {
        match &self.cluster {
            Some(node) => {
                let command = Command::AlterScramCredentials { changes };
                self.submit(node, command).await.map_err(change_failed)?;
                Ok(())
            }
            None => self.scram.apply(&changes).await,
        }
    }
}
