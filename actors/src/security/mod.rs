//! Who a client is and what it may do: the principal a connection
//! authenticated as, which every API handler receives with its request.
//! An unauthenticated connection (a PLAINTEXT listener) is
//! [`Principal::anonymous`], as Kafka's `User:ANONYMOUS`.

mod principal;

pub use principal::Principal;
