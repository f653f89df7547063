//! Access control lists, kept as Kafka's authorizer keeps them: bindings of
//! a resource pattern to an entry (principal, host, operation, allow or
//! deny), created, listed by filter and deleted by filter, durable in the
//! broker's sled database.
//!
//! With `authorizer: acl` they are enforced by
//! [`crate::security::Authorizer`], which keeps them indexed in memory.

use super::state_db::{StateDb, StateTree};
use super::StoreError;
use serde::{Deserialize, Serialize};
use std::io;

/// Kafka's enum values, as the ACL APIs carry them.
pub mod code {
    pub const UNKNOWN: i8 = 0;
    pub const ANY: i8 = 1;
    /// Pattern type filter only: every pattern that applies to a name.
    pub const MATCH: i8 = 2;
    pub const LITERAL: i8 = 3;
    pub const PREFIXED: i8 = 4;
    pub const CLUSTER: i8 = 4;
    pub const DENY: i8 = 2;
    pub const ALLOW: i8 = 3;
}

/// Resource types: topic, group, cluster, transactional id, delegation
/// token, user.
const RESOURCE_TYPES: std::ops::RangeInclusive<i8> = 2..=7;
/// Operations: ALL (2), READ (3) up to TWO_PHASE_COMMIT (15).
const OPERATIONS: std::ops::RangeInclusive<i8> = 2..=15;
/// The one name of the cluster resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// A literal name that stands for every resource of its type.
const WILDCARD: &str = "*";

/// One ACL.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: i8,
    pub resource_name: String,
    pub pattern_type: i8,
    pub principal: String,
    pub host: String,
    pub operation: i8,
    pub permission: i8,
}

/// Which ACLs a describe or delete selects; `None` and ANY match all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclFilter {
    pub resource_type: i8,
    pub resource_name: Option<String>,
    pub pattern_type: i8,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: i8,
    pub permission: i8,
}

impl AclBinding {
    /// Kafka's checks of a new ACL; the message says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if !RESOURCE_TYPES.contains(&self.resource_type) {
            return Err(format!("invalid resource type {}", self.resource_type));
        }
        if ![code::LITERAL, code::PREFIXED].contains(&self.pattern_type) {
            return Err(format!(
                "invalid pattern type {}: LITERAL or PREFIXED",
                self.pattern_type
            ));
        }
        if self.resource_name.is_empty() {
            return Err("the resource name is empty".to_string());
        }
        if self.resource_type == code::CLUSTER && self.resource_name != CLUSTER_NAME {
            return Err(format!(
                "the cluster resource is named {CLUSTER_NAME}, not {}",
                self.resource_name
            ));
        }
        if !OPERATIONS.contains(&self.operation) {
            return Err(format!("invalid operation {}", self.operation));
        }
        if ![code::ALLOW, code::DENY].contains(&self.permission) {
            return Err(format!("invalid permission type {}", self.permission));
        }
        match self.principal.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {}
            _ => return Err(format!("invalid principal {:?}: Type:name", self.principal)),
        }
        if self.host.is_empty() {
            return Err("the host is empty".to_string());
        }
        Ok(())
    }
}

impl AclFilter {
    /// A filter naming an UNKNOWN value matches nothing and is refused.
    pub fn validate(&self) -> Result<(), String> {
        let known = |value: i8, what: &str| {
            if value == code::UNKNOWN {
                Err(format!("the {what} filter is UNKNOWN"))
            } else {
                Ok(())
            }
        };
        known(self.resource_type, "resource type")?;
        known(self.pattern_type, "pattern type")?;
        known(self.operation, "operation")?;
        known(self.permission, "permission type")
    }

    pub fn matches(&self, acl: &AclBinding) -> bool {
        let value = |filter: i8, value: i8| filter == code::ANY || filter == value;
        let text =
            |filter: &Option<String>, value: &str| filter.as_deref().is_none_or(|f| f == value);
        value(self.resource_type, acl.resource_type)
            && self.matches_pattern(acl)
            && text(&self.principal, &acl.principal)
            && text(&self.host, &acl.host)
            && value(self.operation, acl.operation)
            && value(self.permission, acl.permission)
    }

    fn matches_pattern(&self, acl: &AclBinding) -> bool {
        match self.pattern_type {
            code::MATCH => {
                self.resource_name
                    .as_deref()
                    .is_none_or(|name| match acl.pattern_type {
                        code::LITERAL => acl.resource_name == name || acl.resource_name == WILDCARD,
                        code::PREFIXED => name.starts_with(&acl.resource_name),
                        _ => false,
                    })
            }
            pattern => {
                (pattern == code::ANY || pattern == acl.pattern_type)
                    && self
                        .resource_name
                        .as_deref()
                        .is_none_or(|name| name == acl.resource_name)
            }
        }
    }
}

/// The ACLs of the broker, durable.
#[derive(Clone)]
pub struct AclStore {
    tree: StateTree,
}

/// A sled or bincode error of this store, kept as the source.
fn io_error(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    StoreError::io("ACL store", e)
}

impl AclStore {
    pub fn open(db: &StateDb) -> io::Result<AclStore> {
        let tree = db.open_tree("acls")?;
        Ok(AclStore { tree })
    }

    /// Adds ACLs (an existing one stays once), flushed before returning.
    pub async fn create(&self, acls: &[AclBinding]) -> io::Result<()> {
        let mut batch = sled::Batch::default();
        for acl in acls {
            batch.insert(bincode::serialize(acl).map_err(io_error)?, &[][..]);
        }
        self.tree
            .write(move |tree| tree.apply_batch(batch).map_err(io_error))
            .await
    }

    /// Every ACL the filter matches, in a stable order.
    pub async fn describe(&self, filter: &AclFilter) -> io::Result<Vec<AclBinding>> {
        let filter = filter.clone();
        self.tree.read(move |tree| matching(tree, &filter)).await
    }

    /// Every ACL, in a stable order.
    pub async fn all(&self) -> io::Result<Vec<AclBinding>> {
        self.tree.read(|tree| matching(tree, &EVERY_ACL)).await
    }

    /// Every ACL, read on the calling thread: for the broker's start.
    pub fn load(&self) -> io::Result<Vec<AclBinding>> {
        self.tree.load(|tree| matching(tree, &EVERY_ACL))
    }

    /// Removes what each filter matches; what each one removed.
    pub async fn delete(&self, filters: &[AclFilter]) -> io::Result<Vec<Vec<AclBinding>>> {
        let filters = filters.to_vec();
        self.tree
            .write(move |tree| {
                let mut removed = Vec::with_capacity(filters.len());
                let mut batch = sled::Batch::default();
                for filter in &filters {
                    let matched = matching(tree, filter)?;
                    for acl in &matched {
                        batch.remove(bincode::serialize(acl).map_err(io_error)?);
                    }
                    removed.push(matched);
                }
                tree.apply_batch(batch).map_err(io_error)?;
                Ok(removed)
            })
            .await
    }
}

/// The filter that matches every ACL.
pub const EVERY_ACL: AclFilter = AclFilter {
    resource_type: code::ANY,
    resource_name: None,
    pattern_type: code::ANY,
    principal: None,
    host: None,
    operation: code::ANY,
    permission: code::ANY,
};

/// The ACLs of `tree` that `filter` matches, sorted.
fn matching(tree: &sled::Tree, filter: &AclFilter) -> io::Result<Vec<AclBinding>> {
    let mut found = Vec::new();
    for key in tree.iter().keys() {
        let acl: AclBinding = bincode::deserialize(&key.map_err(io_error)?).map_err(io_error)?;
        if filter.matches(&acl) {
            found.push(acl);
        }
    }
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(name: &str, pattern_type: i8, principal: &str) -> AclBinding {
        AclBinding {
            resource_type: 2,
            resource_name: name.into(),
            pattern_type,
            principal: principal.into(),
            host: "*".into(),
            operation: 3,
            permission: code::ALLOW,
        }
    }

    #[test]
    fn new_acls_are_checked() {
        assert!(acl("t", code::LITERAL, "User:a").validate().is_ok());
        assert!(acl("t", code::MATCH, "User:a").validate().is_err());
        assert!(acl("t", code::LITERAL, "a").validate().is_err());
        assert!(acl("", code::LITERAL, "User:a").validate().is_err());
        let cluster = AclBinding {
            resource_type: code::CLUSTER,
            ..acl("other", code::LITERAL, "User:a")
        };
        assert!(cluster.validate().is_err());
        assert!(AclFilter {
            operation: code::UNKNOWN,
            ..EVERY_ACL
        }
        .validate()
        .is_err());
    }

    #[test]
    fn match_filters_take_literals_wildcards_and_prefixes_of_a_name() {
        let filter = AclFilter {
            resource_name: Some("orders-eu".into()),
            pattern_type: code::MATCH,
            ..EVERY_ACL
        };
        assert!(filter.matches(&acl("orders-eu", code::LITERAL, "User:a")));
        assert!(filter.matches(&acl("*", code::LITERAL, "User:a")));
        assert!(filter.matches(&acl("orders-", code::PREFIXED, "User:a")));
        assert!(!filter.matches(&acl("orders-us", code::LITERAL, "User:a")));
        assert!(!filter.matches(&acl("payments", code::PREFIXED, "User:a")));
        let exact = AclFilter {
            resource_name: Some("orders-".into()),
            pattern_type: code::LITERAL,
            ..EVERY_ACL
        };
        assert!(!exact.matches(&acl("orders-", code::PREFIXED, "User:a")));
    }

    #[actix_rt::test]
    async fn acls_are_created_listed_deleted_and_durable() {
        let dir = tempfile::tempdir().unwrap();
        let open = || crate::store::state_db::open(Some(dir.path())).unwrap();
        {
            let store = AclStore::open(&open()).unwrap();
            let made = [
                acl("a", code::LITERAL, "User:x"),
                acl("b", code::LITERAL, "User:y"),
            ];
            store.create(&made).await.unwrap();
            store.create(&made[..1]).await.unwrap();
            assert_eq!(store.describe(&EVERY_ACL).await.unwrap().len(), 2);
        }
        let store = AclStore::open(&open()).unwrap();
        let by_principal = AclFilter {
            principal: Some("User:x".into()),
            ..EVERY_ACL
        };
        let removed = store
            .delete(std::slice::from_ref(&by_principal))
            .await
            .unwrap();
        assert_eq!(removed, vec![vec![acl("a", code::LITERAL, "User:x")]]);
        assert!(store.describe(&by_principal).await.unwrap().is_empty());
        assert_eq!(store.load().unwrap().len(), 1);
    }
}
