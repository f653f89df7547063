//! Kafka's StandardAuthorizer rules as pure code: whether a principal
//! connecting from a host may perform an operation on a resource, given the
//! ACLs, the super users and `allow_everyone_if_no_acl_found`.
//!
//! The rules, as Kafka applies them:
//! - a super user may do everything;
//! - an ACL applies to a resource when its pattern does: LITERAL with the
//!   resource's name or the wildcard `*`, PREFIXED with a prefix of the name;
//! - it applies to a request when its principal is the requester's or
//!   `User:*`, and its host is the requester's address or `*`;
//! - a DENY of the operation (or of ALL) wins over every ALLOW;
//! - an ALLOW of the operation, of ALL, or of an operation that implies it
//!   (READ, WRITE, DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS implies
//!   DESCRIBE_CONFIGS) grants it;
//! - when no ACL at all applies to the resource (whoever it names),
//!   `allow_everyone_if_no_acl_found` decides; otherwise what is not
//!   allowed is denied.
//!
//! The ACLs are kept in an in-memory index, replaced whole when they change
//! (rarely), so a check on the produce and fetch path costs a few hash
//! lookups and never reads sled.

use super::Principal;
use crate::store::acls::{code, AclBinding};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

/// Which authorizer checks requests (the `authorizer` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthorizerKind {
    /// Every client may do everything.
    #[default]
    None,
    /// Requests are checked against the ACLs.
    Acl,
}

/// Kafka's resource types, with their wire codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i8)]
pub enum ResourceType {
    Topic = 2,
    Group = 3,
    Cluster = 4,
    TransactionalId = 5,
}

/// Kafka's ACL operations, with their wire codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum Operation {
    All = 2,
    Read = 3,
    Write = 4,
    Create = 5,
    Delete = 6,
    Alter = 7,
    Describe = 8,
    ClusterAction = 9,
    DescribeConfigs = 10,
    AlterConfigs = 11,
    IdempotentWrite = 12,
}

impl Operation {
    /// Whether an ALLOW of `granted` grants `self`.
    fn granted_by(self, granted: i8) -> bool {
        let implied_by: &[Operation] = match self {
            Operation::Describe => &[
                Operation::Read,
                Operation::Write,
                Operation::Delete,
                Operation::Alter,
            ],
            Operation::DescribeConfigs => &[Operation::AlterConfigs],
            _ => &[],
        };
        granted == Operation::All as i8
            || granted == self as i8
            || implied_by.iter().any(|op| *op as i8 == granted)
    }

    /// Whether a DENY of `denied` denies `self`: only the operation itself
    /// or ALL (a DENY of READ leaves DESCRIBE alone, as in Kafka).
    fn denied_by(self, denied: i8) -> bool {
        denied == Operation::All as i8 || denied == self as i8
    }
}

/// An ACL from any host, in the authorizer's terms: `permission`
/// (`code::ALLOW` or `code::DENY`) of `operation` for `principal` on the
/// resources of type `resource` that `pattern` (`code::LITERAL` or
/// `code::PREFIXED`) and `name` select.
pub fn acl(
    resource: ResourceType,
    name: &str,
    pattern: i8,
    principal: &str,
    operation: Operation,
    permission: i8,
) -> AclBinding {
    AclBinding {
        resource_type: resource as i8,
        resource_name: name.into(),
        pattern_type: pattern,
        principal: principal.into(),
        host: "*".into(),
        operation: operation as i8,
        permission,
    }
}

/// Who asks: a principal, and the address it connects from.
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    pub principal: &'a Principal,
    pub host: IpAddr,
}

/// The host of an ACL.
#[derive(Debug, Clone, Copy)]
enum HostPattern {
    /// `*`: every host.
    Any,
    Address(IpAddr),
    /// Not an IP address: it matches no one, as clients are known by
    /// address.
    Unmatchable,
}

/// One ACL's entry, parsed once when the index is built.
#[derive(Debug, Clone)]
struct Entry {
    principal_kind: String,
    /// `*` for every principal of the kind.
    principal_name: String,
    host: HostPattern,
    operation: i8,
    allow: bool,
}

impl Entry {
    fn from_binding(acl: &AclBinding) -> Entry {
        let (kind, name) = acl
            .principal
            .split_once(':')
            .unwrap_or((acl.principal.as_str(), ""));
        Entry {
            principal_kind: kind.to_owned(),
            principal_name: name.to_owned(),
            host: match acl.host.as_str() {
                "*" => HostPattern::Any,
                host => host
                    .parse()
                    .map_or(HostPattern::Unmatchable, HostPattern::Address),
            },
            operation: acl.operation,
            allow: acl.permission == code::ALLOW,
        }
    }

    fn applies_to(&self, who: Requester<'_>) -> bool {
        let principal = self.principal_kind == who.principal.kind
            && (self.principal_name == "*" || self.principal_name == who.principal.name);
        let host = match self.host {
            HostPattern::Any => true,
            HostPattern::Address(ip) => ip == who.host,
            HostPattern::Unmatchable => false,
        };
        principal && host
    }
}

/// The ACLs of one resource type, by pattern.
#[derive(Debug, Default)]
struct TypeIndex {
    /// LITERAL patterns by name, the wildcard `*` among them.
    literal: HashMap<String, Vec<Entry>>,
    /// PREFIXED patterns by prefix: a name's patterns are found by looking
    /// up each of its prefixes, so the cost follows the name's length, not
    /// the number of ACLs.
    prefixed: HashMap<String, Vec<Entry>>,
}

impl TypeIndex {
    /// Every entry whose pattern applies to `name`.
    fn entries<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        let wildcard = (name != "*").then(|| self.literal.get("*")).flatten();
        let literal = self.literal.get(name).into_iter().chain(wildcard);
        let prefixed = (!self.prefixed.is_empty())
            .then(|| {
                name.char_indices()
                    .map(|(i, c)| &name[..i + c.len_utf8()])
                    .filter_map(|prefix| self.prefixed.get(prefix))
            })
            .into_iter()
            .flatten();
        literal.chain(prefixed).flatten()
    }

    /// Every entry of the type, with its pattern: `(name, prefixed, entry)`.
    fn all(&self) -> impl Iterator<Item = (&str, bool, &Entry)> {
        let literal = self
            .literal
            .iter()
            .flat_map(|(name, entries)| entries.iter().map(move |e| (name.as_str(), false, e)));
        let prefixed = self
            .prefixed
            .iter()
            .flat_map(|(name, entries)| entries.iter().map(move |e| (name.as_str(), true, e)));
        literal.chain(prefixed)
    }
}

/// Every ACL, by resource type and pattern.
#[derive(Debug, Default)]
struct AclIndex {
    by_type: HashMap<i8, TypeIndex>,
}

impl AclIndex {
    fn new(acls: &[AclBinding]) -> AclIndex {
        let mut index = AclIndex::default();
        for acl in acls {
            let of_type = index.by_type.entry(acl.resource_type).or_default();
            let patterns = if acl.pattern_type == code::PREFIXED {
                &mut of_type.prefixed
            } else {
                &mut of_type.literal
            };
            patterns
                .entry(acl.resource_name.clone())
                .or_default()
                .push(Entry::from_binding(acl));
        }
        index
    }
}

/// The rules that decide, and the ACLs they decide by.
#[derive(Debug)]
struct Rules {
    super_users: Vec<Principal>,
    allow_if_no_acl: bool,
    acls: RwLock<Arc<AclIndex>>,
}

/// Decides what each requester may do. With [`AuthorizerKind::None`]
/// everyone may do everything and a check is one branch.
#[derive(Debug)]
pub struct Authorizer {
    rules: Option<Rules>,
}

impl Authorizer {
    /// An authorizer of the given kind. `super_users` are `Type:name`
    /// strings (the config checks their form); one without a colon names
    /// no one.
    pub fn new(kind: AuthorizerKind, super_users: &[String], allow_if_no_acl: bool) -> Authorizer {
        let rules = match kind {
            AuthorizerKind::None => None,
            AuthorizerKind::Acl => Some(Rules {
                super_users: super_users
                    .iter()
                    .filter_map(|s| s.split_once(':'))
                    .map(|(kind, name)| Principal {
                        kind: kind.to_owned(),
                        name: name.to_owned(),
                    })
                    .collect(),
                allow_if_no_acl,
                acls: RwLock::default(),
            }),
        };
        Authorizer { rules }
    }

    /// An authorizer that lets everyone do everything.
    pub fn open() -> Authorizer {
        Authorizer { rules: None }
    }

    /// Whether ACLs are enforced.
    pub fn enforcing(&self) -> bool {
        self.rules.is_some()
    }

    /// Replaces the ACLs checks are made against.
    pub fn set_acls(&self, acls: &[AclBinding]) {
        if let Some(rules) = &self.rules {
            let index = Arc::new(AclIndex::new(acls));
            *rules.acls.write().unwrap_or_else(|e| e.into_inner()) = index;
        }
    }

    /// Whether `who` may perform `operation` on the resource.
    pub fn authorize(
        &self,
        who: Requester<'_>,
        operation: Operation,
        resource: ResourceType,
        name: &str,
    ) -> bool {
        self.decide(who, resource, |of_type, allow_if_no_acl| {
            let mut any = false;
            let mut allowed = false;
            for entry in of_type.entries(name) {
                any = true;
                if !entry.applies_to(who) {
                    continue;
                }
                if !entry.allow && operation.denied_by(entry.operation) {
                    return false;
                }
                allowed |= entry.allow && operation.granted_by(entry.operation);
            }
            allowed || (!any && allow_if_no_acl)
        })
    }

    /// Whether `who` may perform `operation` on some resource of the type
    /// (Kafka's `authorizeByResourceType`, which lets a producer allowed to
    /// WRITE to any topic be idempotent): an ALLOW that applies to `who`,
    /// on a pattern no applying DENY covers whole.
    pub fn authorize_any(
        &self,
        who: Requester<'_>,
        operation: Operation,
        resource: ResourceType,
    ) -> bool {
        self.decide(who, resource, |of_type, _| {
            let denials: Vec<(&str, bool)> = of_type
                .all()
                .filter(|(_, _, e)| {
                    !e.allow && e.applies_to(who) && operation.denied_by(e.operation)
                })
                .map(|(name, prefixed, _)| (name, prefixed))
                .collect();
            let covered = |name: &str, prefixed: bool| {
                denials.iter().any(|&(denied, denied_prefixed)| {
                    denied == "*" && !denied_prefixed
                        || denied_prefixed && name.starts_with(denied)
                        || denied == name && denied_prefixed == prefixed
                })
            };
            of_type.all().any(|(name, prefixed, e)| {
                e.allow
                    && e.applies_to(who)
                    && operation.granted_by(e.operation)
                    && !covered(name, prefixed)
            })
        })
    }

    /// What both checks share: everyone may do everything without rules,
    /// a super user too, and a resource type without any ACL is open only
    /// with `allow_everyone_if_no_acl_found`; otherwise `check` decides
    /// from the type's ACLs (and that setting).
    fn decide(
        &self,
        who: Requester<'_>,
        resource: ResourceType,
        check: impl FnOnce(&TypeIndex, bool) -> bool,
    ) -> bool {
        let Some(rules) = &self.rules else {
            return true;
        };
        if rules.super_users.contains(who.principal) {
            return true;
        }
        let index = rules.acls.read().unwrap_or_else(|e| e.into_inner());
        match index.by_type.get(&(resource as i8)) {
            Some(of_type) => check(of_type, rules.allow_if_no_acl),
            None => rules.allow_if_no_acl,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOW: i8 = code::ALLOW;
    const DENY: i8 = code::DENY;

    fn topic_acl(name: &str, principal: &str, op: Operation, permission: i8) -> AclBinding {
        acl(
            ResourceType::Topic,
            name,
            code::LITERAL,
            principal,
            op,
            permission,
        )
    }

    fn authorizer(acls: &[AclBinding]) -> Authorizer {
        let authorizer = Authorizer::new(AuthorizerKind::Acl, &["User:admin".into()], false);
        authorizer.set_acls(acls);
        authorizer
    }

    fn local(principal: &Principal) -> Requester<'_> {
        Requester {
            principal,
            host: IpAddr::from([127, 0, 0, 1]),
        }
    }

    fn may(a: &Authorizer, user: &str, op: Operation, topic: &str) -> bool {
        a.authorize(
            local(&Principal::user(user)),
            op,
            ResourceType::Topic,
            topic,
        )
    }

    #[test]
    fn without_an_authorizer_everything_is_allowed() {
        let open = Authorizer::new(AuthorizerKind::None, &[], false);
        open.set_acls(&[topic_acl("t", "User:*", Operation::All, DENY)]);
        assert!(!open.enforcing());
        assert!(may(&open, "alice", Operation::Write, "t"));
    }

    #[test]
    fn an_allow_grants_its_operation_and_what_it_implies() {
        let a = authorizer(&[
            topic_acl("t", "User:alice", Operation::Write, ALLOW),
            topic_acl("c", "User:alice", Operation::AlterConfigs, ALLOW),
        ]);
        assert!(may(&a, "alice", Operation::Write, "t"));
        assert!(may(&a, "alice", Operation::Describe, "t"));
        assert!(!may(&a, "alice", Operation::Read, "t"));
        assert!(!may(&a, "bob", Operation::Write, "t"));
        assert!(may(&a, "alice", Operation::DescribeConfigs, "c"));
        assert!(!may(&a, "alice", Operation::Describe, "c"));
        let all = authorizer(&[topic_acl("t", "User:alice", Operation::All, ALLOW)]);
        assert!(may(&all, "alice", Operation::Delete, "t"));
    }

    #[test]
    fn deny_beats_allow_but_only_for_its_operation() {
        let a = authorizer(&[
            topic_acl("t", "User:*", Operation::All, ALLOW),
            topic_acl("t", "User:bob", Operation::Read, DENY),
        ]);
        assert!(may(&a, "alice", Operation::Read, "t"));
        assert!(!may(&a, "bob", Operation::Read, "t"));
        assert!(may(&a, "bob", Operation::Describe, "t"));
        let denied_all = authorizer(&[
            topic_acl("t", "User:bob", Operation::Read, ALLOW),
            topic_acl("*", "User:bob", Operation::All, DENY),
        ]);
        assert!(!may(&denied_all, "bob", Operation::Read, "t"));
    }

    #[test]
    fn literal_wildcard_and_prefixed_patterns_apply_to_matching_names() {
        let a = authorizer(&[
            topic_acl("*", "User:alice", Operation::Read, ALLOW),
            acl(
                ResourceType::Topic,
                "orders-",
                code::PREFIXED,
                "User:bob",
                Operation::Write,
                ALLOW,
            ),
        ]);
        assert!(may(&a, "alice", Operation::Read, "anything"));
        assert!(may(&a, "bob", Operation::Write, "orders-eu"));
        assert!(may(&a, "bob", Operation::Write, "orders-"));
        assert!(!may(&a, "bob", Operation::Write, "orders"));
        assert!(!may(&a, "bob", Operation::Write, "payments"));
        // A literal `orders-` is not a prefix.
        let literal = authorizer(&[topic_acl("orders-", "User:bob", Operation::Write, ALLOW)]);
        assert!(!may(&literal, "bob", Operation::Write, "orders-eu"));
    }

    #[test]
    fn hosts_match_by_address_or_wildcard() {
        let mut from_one_host = topic_acl("t", "User:alice", Operation::Read, ALLOW);
        from_one_host.host = "10.0.0.7".into();
        let a = authorizer(&[from_one_host]);
        let alice = Principal::user("alice");
        let at = |ip: [u8; 4]| Requester {
            principal: &alice,
            host: IpAddr::from(ip),
        };
        assert!(a.authorize(at([10, 0, 0, 7]), Operation::Read, ResourceType::Topic, "t"));
        assert!(!a.authorize(at([10, 0, 0, 8]), Operation::Read, ResourceType::Topic, "t"));
    }

    #[test]
    fn super_users_may_do_everything() {
        let a = authorizer(&[topic_acl("t", "User:*", Operation::All, DENY)]);
        assert!(may(&a, "admin", Operation::Delete, "t"));
        assert!(a.authorize(
            local(&Principal::user("admin")),
            Operation::Alter,
            ResourceType::Cluster,
            "kafka-cluster"
        ));
        assert!(!may(&a, "alice", Operation::Describe, "t"));
    }

    #[test]
    fn allow_everyone_if_no_acl_found_applies_only_to_resources_without_acls() {
        let a = Authorizer::new(AuthorizerKind::Acl, &[], true);
        a.set_acls(&[topic_acl("guarded", "User:alice", Operation::Read, ALLOW)]);
        assert!(may(&a, "bob", Operation::Write, "free"));
        assert!(!may(&a, "bob", Operation::Read, "guarded"));
        assert!(may(&a, "alice", Operation::Read, "guarded"));
        assert!(a.authorize(
            local(&Principal::user("bob")),
            Operation::Read,
            ResourceType::Group,
            "g"
        ));
        let closed = authorizer(&[]);
        assert!(!may(&closed, "bob", Operation::Write, "free"));
    }

    #[test]
    fn write_on_any_topic_unless_denied_everywhere() {
        let bob = Principal::user("bob");
        let any =
            |a: &Authorizer| a.authorize_any(local(&bob), Operation::Write, ResourceType::Topic);
        assert!(!any(&authorizer(&[])));
        assert!(any(&authorizer(&[topic_acl(
            "t",
            "User:bob",
            Operation::Write,
            ALLOW
        )])));
        assert!(!any(&authorizer(&[
            topic_acl("t", "User:bob", Operation::Write, ALLOW),
            topic_acl("*", "User:*", Operation::Write, DENY),
        ])));
        assert!(!any(&authorizer(&[
            topic_acl("t", "User:bob", Operation::Write, ALLOW),
            topic_acl("t", "User:bob", Operation::All, DENY),
        ])));
        assert!(!any(&authorizer(&[topic_acl(
            "t",
            "User:alice",
            Operation::Write,
            ALLOW
        )])));
    }

    #[test]
    fn changed_acls_take_effect() {
        let a = authorizer(&[]);
        assert!(!may(&a, "alice", Operation::Read, "t"));
        a.set_acls(&[topic_acl("t", "User:alice", Operation::Read, ALLOW)]);
        assert!(may(&a, "alice", Operation::Read, "t"));
        a.set_acls(&[]);
        assert!(!may(&a, "alice", Operation::Read, "t"));
    }
}
