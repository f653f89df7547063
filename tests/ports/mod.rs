//! Ports for the brokers the tests start: free on 127.0.0.1 when asked for,
//! and below Linux's ephemeral range (32768 and up). A broker's port is
//! often unbound for a while (before its launch, or while it restarts);
//! one from the ephemeral range could meanwhile become the source port of
//! any outgoing connection, or another test's `bind(0)`, and the broker
//! would then not start, or receive another test's traffic.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};

const FIRST: u16 = 20_000;
const LAST: u16 = 32_000;

/// A port in [FIRST, LAST) that nothing listens on now, picked at random
/// so that tests running at the same time rarely pick the same one.
pub fn free_port() -> u16 {
    static DRAWS: AtomicU64 = AtomicU64::new(0);
    for _ in 0..1000 {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(DRAWS.fetch_add(1, Ordering::Relaxed));
        let port = FIRST + (hasher.finish() % u64::from(LAST - FIRST)) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {FIRST} and {LAST}");
}
