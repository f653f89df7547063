//! What client connections may hold (below both the broker, which owns
//! the [`Connections`], and the connection actors, which take their share): how many may be open (in total and
//! from one IP address), how many request bytes may be in flight (per
//! connection and in total), and the shutdown signal that makes every
//! connection finish what it has and close.

use crate::config::BrokerConfig;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};

/// The broker's open connections and their shared in-flight budget.
pub struct Connections {
    max_total: u32,
    max_per_ip: u32,
    open: Mutex<Open>,
    /// Woken whenever a connection closes (for [`Connections::drain`]).
    closed: Notify,
    in_flight: Arc<Semaphore>,
    in_flight_capacity: u64,
    per_connection_capacity: u64,
    shutdown: watch::Sender<bool>,
}

#[derive(Default)]
struct Open {
    total: u32,
    by_ip: HashMap<IpAddr, u32>,
}

/// Why a connection was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    TooMany { limit: u32 },
    TooManyFromIp { limit: u32 },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::TooMany { limit } => write!(f, "max_connections ({limit}) reached"),
            Refusal::TooManyFromIp { limit } => {
                write!(f, "max_connections_per_ip ({limit}) reached")
            }
        }
    }
}

impl Connections {
    pub fn new(config: &BrokerConfig) -> Arc<Connections> {
        Arc::new(Connections {
            max_total: config.max_connections,
            max_per_ip: config.max_connections_per_ip,
            open: Mutex::new(Open::default()),
            closed: Notify::new(),
            in_flight: Arc::new(Semaphore::new(semaphore_size(config.max_in_flight_bytes))),
            in_flight_capacity: config.max_in_flight_bytes,
            per_connection_capacity: config.max_in_flight_bytes_per_connection,
            shutdown: watch::channel(false).0,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Open> {
        // The counts stay consistent even if a holder panicked: every
        // update is a single step.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for a new connection from `ip`, held until the slot drops.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refusal> {
        let mut open = self.lock();
        if open.total >= self.max_total {
            return Err(Refusal::TooMany {
                limit: self.max_total,
            });
        }
        let from_ip = open.by_ip.entry(ip).or_default();
        if *from_ip >= self.max_per_ip {
            return Err(Refusal::TooManyFromIp {
                limit: self.max_per_ip,
            });
        }
        *from_ip += 1;
        open.total += 1;
        Ok(Slot {
            connections: self.clone(),
            ip,
            budget: Budget {
                connection: Arc::new(Semaphore::new(semaphore_size(self.per_connection_capacity))),
                connection_capacity: self.per_connection_capacity,
                total: self.in_flight.clone(),
                total_capacity: self.in_flight_capacity,
            },
        })
    }

    /// Open connections now.
    pub fn open(&self) -> u32 {
        self.lock().total
    }

    /// Request bytes of all connections being served now.
    pub fn in_flight_bytes(&self) -> u64 {
        let available = self.in_flight.available_permits() as u64;
        self.in_flight_capacity.saturating_sub(available)
    }

    /// Becomes `true` when the broker shuts down: connections stop reading.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Tells every connection to stop reading, finish its requests and
    /// close, and waits until all have closed or `timeout` passed. Returns
    /// how many are still open.
    pub async fn drain(&self, timeout: Duration) -> u32 {
        self.shutdown.send_replace(true);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Created before the check, so a close in between still wakes it.
            let closed = self.closed.notified();
            let open = self.open();
            if open == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, closed).await.is_err() {
                return self.open();
            }
        }
    }

    fn release(&self, ip: IpAddr) {
        {
            let mut open = self.lock();
            open.total = open.total.saturating_sub(1);
            if let Some(from_ip) = open.by_ip.get_mut(&ip) {
                *from_ip -= 1;
                if *from_ip == 0 {
                    open.by_ip.remove(&ip);
                }
            }
        }
        self.closed.notify_waiters();
    }
}

/// Semaphores count permits in `usize`; the config validation keeps the
/// limits within their ceiling.
fn semaphore_size(bytes: u64) -> usize {
    usize::try_from(bytes)
        .unwrap_or(Semaphore::MAX_PERMITS)
        .min(Semaphore::MAX_PERMITS)
}

/// One open connection's place; dropping it frees the place.
pub struct Slot {
    connections: Arc<Connections>,
    ip: IpAddr,
    budget: Budget,
}

impl Slot {
    /// The connection's in-flight budget (shares the broker-wide one).
    pub fn budget(&self) -> Budget {
        self.budget.clone()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.connections.release(self.ip);
    }
}

/// Request bytes a connection may have in flight, within the broker's total.
#[derive(Clone)]
pub struct Budget {
    connection: Arc<Semaphore>,
    connection_capacity: u64,
    total: Arc<Semaphore>,
    total_capacity: u64,
}

impl Budget {
    /// Waits until a request of `bytes` fits both budgets. A request larger
    /// than a whole budget takes all of it, so it runs alone rather than
    /// never.
    pub async fn admit(&self, bytes: usize) -> Admitted {
        let share = |capacity: u64| {
            let bytes = u64::try_from(bytes).unwrap_or(u64::MAX).min(capacity);
            u32::try_from(bytes).unwrap_or(u32::MAX)
        };
        // Neither semaphore is ever closed, so acquiring cannot fail.
        let connection = self
            .connection
            .clone()
            .acquire_many_owned(share(self.connection_capacity))
            .await
            .ok();
        let total = self
            .total
            .clone()
            .acquire_many_owned(share(self.total_capacity))
            .await
            .ok();
        Admitted {
            _connection: connection,
            _total: total,
        }
    }
}

/// A request's share of the in-flight budgets, given back when it drops.
pub struct Admitted {
    _connection: Option<OwnedSemaphorePermit>,
    _total: Option<OwnedSemaphorePermit>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    fn connections(edit: impl FnOnce(&mut BrokerConfig)) -> Arc<Connections> {
        let mut config = BrokerConfig::default();
        edit(&mut config);
        Connections::new(&config)
    }

    #[test]
    fn limits_connections_in_total_and_per_ip() {
        let connections = connections(|c| {
            c.max_connections = 3;
            c.max_connections_per_ip = 2;
        });
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = connections.admit(a).unwrap();
        let _second = connections.admit(a).unwrap();
        assert_eq!(
            connections.admit(a).err(),
            Some(Refusal::TooManyFromIp { limit: 2 })
        );
        let _third = connections.admit(b).unwrap();
        assert_eq!(
            connections.admit(b).err(),
            Some(Refusal::TooMany { limit: 3 })
        );
        drop(first);
        assert_eq!(connections.open(), 2);
        assert!(connections.admit(a).is_ok());
    }

    #[tokio::test]
    async fn a_full_budget_waits_for_a_release() {
        let connections = connections(|c| {
            c.max_in_flight_bytes_per_connection = 2048;
            c.max_in_flight_bytes = 4096;
        });
        let slot = connections.admit("10.0.0.1".parse().unwrap()).unwrap();
        let budget = slot.budget();
        let first = budget.admit(1500).await;
        assert_eq!(connections.in_flight_bytes(), 1500);
        let second = budget.admit(1500);
        tokio::pin!(second);
        assert!(
            second.as_mut().now_or_never().is_none(),
            "over the per-connection budget"
        );
        drop(first);
        drop(second.await);
        // Larger than the whole budget: admitted alone, as the whole budget.
        let other = connections.admit("10.0.0.2".parse().unwrap()).unwrap();
        let _huge = other.budget().admit(1 << 20).await;
        assert_eq!(connections.in_flight_bytes(), 4096);
    }

    #[tokio::test]
    async fn drain_waits_for_every_connection() {
        let connections = connections(|_| {});
        let slot = connections.admit("10.0.0.1".parse().unwrap()).unwrap();
        let signal = connections.shutdown_signal();
        assert!(!*signal.borrow());
        let remaining = connections.drain(Duration::from_millis(1));
        assert_eq!(remaining.await, 1, "still open after the timeout");
        assert!(*signal.borrow());
        drop(slot);
        assert_eq!(connections.drain(Duration::from_secs(60)).await, 0);
    }
}
