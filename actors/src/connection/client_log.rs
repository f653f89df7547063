//! Warnings about misbehaving clients, rate-limited so that one bad client
//! cannot flood the log: at most [`PER_SECOND`] lines per second for each
//! peer IP address and kind of error. The first line let through in a
//! later window is preceded by a summary of how many were suppressed. Lines
//! are `key=value` pairs, easy to grep and to parse.

use std::collections::HashMap;
use std::fmt::Display;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Lines per peer IP and kind in one window.
pub const PER_SECOND: u32 = 5;
const WINDOW: Duration = Duration::from_secs(1);
/// Past this many tracked keys, quiet ones are forgotten.
const MAX_KEYS: usize = 4096;

/// Logs `detail` about the client at `peer` unless its kind of error from
/// that IP address was logged [`PER_SECOND`] times in the current second.
pub fn warn(peer: SocketAddr, kind: &'static str, detail: impl Display) {
    static LIMITER: OnceLock<Mutex<RateLimiter>> = OnceLock::new();
    let verdict = LIMITER
        .get_or_init(|| Mutex::new(RateLimiter::new(PER_SECOND, WINDOW)))
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .check(peer.ip(), kind, Instant::now());
    if let Verdict::Log { suppressed } = verdict {
        if suppressed > 0 {
            log::warn!(
                "client_error peer_ip={} kind={kind} suppressed={suppressed}",
                peer.ip()
            );
        }
        log::warn!("client_error peer={peer} kind={kind} detail=\"{detail}\"");
    }
}

/// Whether to log one more line, and how many were dropped before it.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Log it; first report the lines suppressed in the last window.
    Log {
        suppressed: u64,
    },
    Suppress,
}

/// Counts lines per (IP address, kind) in fixed windows.
pub struct RateLimiter {
    per_window: u32,
    window: Duration,
    keys: HashMap<(IpAddr, &'static str), Window>,
}

struct Window {
    start: Instant,
    logged: u32,
    suppressed: u64,
}

impl RateLimiter {
    pub fn new(per_window: u32, window: Duration) -> RateLimiter {
        RateLimiter {
            per_window,
            window,
            keys: HashMap::new(),
        }
    }

    pub fn check(&mut self, ip: IpAddr, kind: &'static str, now: Instant) -> Verdict {
        if self.keys.len() >= MAX_KEYS {
            self.forget_quiet(now);
        }
        let window = self.keys.entry((ip, kind)).or_insert(Window {
            start: now,
            logged: 0,
            suppressed: 0,
        });
        if now.duration_since(window.start) >= self.window {
            let suppressed = window.suppressed;
            *window = Window {
                start: now,
                logged: 1,
                suppressed: 0,
            };
            return Verdict::Log { suppressed };
        }
        if window.logged < self.per_window {
            window.logged += 1;
            Verdict::Log { suppressed: 0 }
        } else {
            window.suppressed += 1;
            Verdict::Suppress
        }
    }

    /// Drops keys whose window is over and who owe no summary.
    fn forget_quiet(&mut self, now: Instant) {
        let window = self.window;
        self.keys
            .retain(|_, w| w.suppressed > 0 || now.duration_since(w.start) < window);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BAD: &str = "bad_request";

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn logs_n_per_window_then_summarises_the_rest() {
        let mut limiter = RateLimiter::new(3, Duration::from_secs(1));
        let start = Instant::now();
        let verdicts: Vec<Verdict> = (0..10)
            .map(|i| limiter.check(ip(1), BAD, start + Duration::from_millis(i)))
            .collect();
        assert_eq!(
            verdicts.iter().filter(|v| **v != Verdict::Suppress).count(),
            3
        );
        assert_eq!(verdicts[3..], [(); 7].map(|_| Verdict::Suppress));
        let next = start + Duration::from_secs(1);
        assert_eq!(
            limiter.check(ip(1), BAD, next),
            Verdict::Log { suppressed: 7 }
        );
        assert_eq!(
            limiter.check(ip(1), BAD, next),
            Verdict::Log { suppressed: 0 }
        );
    }

    #[test]
    fn peers_and_kinds_have_their_own_budgets() {
        let mut limiter = RateLimiter::new(1, Duration::from_secs(1));
        let now = Instant::now();
        assert_eq!(
            limiter.check(ip(1), BAD, now),
            Verdict::Log { suppressed: 0 }
        );
        assert_eq!(limiter.check(ip(1), BAD, now), Verdict::Suppress);
        assert_eq!(
            limiter.check(ip(2), BAD, now),
            Verdict::Log { suppressed: 0 }
        );
        assert_eq!(
            limiter.check(ip(1), "connection_limit", now),
            Verdict::Log { suppressed: 0 }
        );
    }

    #[test]
    fn many_peers_do_not_grow_it_without_bound() {
        let mut limiter = RateLimiter::new(1, Duration::from_millis(10));
        let start = Instant::now();
        for i in 0..(3 * MAX_KEYS as u32) {
            let peer = IpAddr::from(i.to_be_bytes());
            limiter.check(peer, BAD, start + Duration::from_millis(u64::from(i)));
        }
        assert!(limiter.keys.len() <= MAX_KEYS);
        // A peer that owes a summary is kept until it is reported.
        let noisy = ip(9);
        let later = start + Duration::from_secs(3600);
        limiter.check(noisy, BAD, later);
        limiter.check(noisy, BAD, later);
        for i in 0..(2 * MAX_KEYS as u32) {
            let peer = IpAddr::from((0x2000_0000 + i).to_be_bytes());
            limiter.check(peer, BAD, later + Duration::from_secs(1));
        }
        assert_eq!(
            limiter.check(noisy, BAD, later + Duration::from_secs(2)),
            Verdict::Log { suppressed: 1 }
        );
    }
}
