//! Ports for the brokers the tests start: free on 127.0.0.1 when asked for,
//! never handed out twice in one test process, and below Linux's ephemeral
//! range (32768 and up). A broker's port is often unbound for a while
//! (before its launch, or while it restarts); one from the ephemeral range
//! could meanwhile become the source port of any outgoing connection, or
//! another test's `bind(0)`, and the broker would then not start, or
//! receive another test's traffic.

use std::collections::hash_map::RandomState;
use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};
use std::net::TcpListener;
use std::sync::{Mutex, PoisonError};

const FIRST: u16 = 20_000;
const LAST: u16 = 32_000;

/// A port in [FIRST, LAST) that nothing listens on now and that no other
/// test of this process got, picked at random so that test processes
/// running at the same time rarely pick the same one either.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    let handed_out = handed_out.get_or_insert_with(HashSet::new);
    for draw in 0..10_000u64 {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(draw);
        let port = FIRST + (hasher.finish() % u64::from(LAST - FIRST)) as u16;
        if !handed_out.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed_out.insert(port);
            return port;
        }
    }
    panic!("no free port between {FIRST} and {LAST}");
}
