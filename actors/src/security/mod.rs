//! Who a client is and what it may do: the principal a connection
//! authenticated as, which every API handler receives with its request,
//! and the authorizer that checks it against the ACLs.
//! An unauthenticated connection (a PLAINTEXT listener) is
//! [`Principal::anonymous`], as Kafka's `User:ANONYMOUS`.

mod access;
pub mod authorizer;
mod principal;

pub use access::Access;
pub use authorizer::{Authorizer, Operation, ResourceType};
pub use principal::Principal;
