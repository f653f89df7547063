//! Time windows on event time: which windows a timestamp falls in, and when
//! a window closes.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A half-open interval of event time `[start, end)` in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Window {
    /// First millisecond in the window.
    pub start: i64,
    /// First millisecond after the window.
    pub end: i64,
}

/// A key of a windowed aggregation: the grouping key and its window.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Windowed<K> {
    /// The grouping key.
    pub key: K,
    /// The window the aggregate covers.
    pub window: Window,
}

/// Tumbling (`advance == size`) or hopping (`advance < size`) windows of
/// event time, aligned to the epoch, accepting records up to `grace` after
/// they end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindows {
    size: i64,
    advance: i64,
    grace: i64,
}

/// Milliseconds in `d`, saturating: durations beyond 292 million years are
/// not windows anyone means.
fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl TimeWindows {
    /// Back-to-back windows of `size`, each record in exactly one, no grace.
    pub fn tumbling(size: Duration) -> Self {
        let size = millis(size).max(1);
        Self {
            size,
            advance: size,
            grace: 0,
        }
    }

    /// Windows of `size` starting every `advance` (at most `size`), so a
    /// record falls in `size / advance` windows; no grace.
    pub fn hopping(size: Duration, advance: Duration) -> Self {
        let size = millis(size).max(1);
        Self {
            size,
            advance: millis(advance).clamp(1, size),
            grace: 0,
        }
    }

    /// Accept records for a window until stream time passes its end by `grace`.
    pub fn grace(self, grace: Duration) -> Self {
        Self {
            grace: millis(grace),
            ..self
        }
    }

    /// The windows holding `timestamp`, oldest first; as in Kafka Streams,
    /// none starts before the epoch.
    pub(crate) fn windows_for(&self, timestamp: i64) -> Vec<Window> {
        let last_start = timestamp - timestamp.rem_euclid(self.advance);
        let mut windows = Vec::new();
        let mut start = last_start;
        while start > timestamp - self.size && start >= 0 {
            windows.push(Window {
                start,
                end: start + self.size,
            });
            start -= self.advance;
        }
        windows.reverse();
        windows
    }

    /// The length of each window in milliseconds.
    pub(crate) fn size(&self) -> i64 {
        self.size
    }

    /// Whether `window` no longer accepts records once stream time is `stream_time`.
    pub(crate) fn is_closed(&self, window: Window, stream_time: i64) -> bool {
        window.end.saturating_add(self.grace) <= stream_time
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tumbling_puts_each_timestamp_in_one_window() {
        let w = TimeWindows::tumbling(Duration::from_millis(10));
        assert_eq!(w.windows_for(25), vec![Window { start: 20, end: 30 }]);
        assert_eq!(w.windows_for(20), vec![Window { start: 20, end: 30 }]);
    }

    #[test]
    fn hopping_puts_a_timestamp_in_size_over_advance_windows() {
        let w = TimeWindows::hopping(Duration::from_millis(10), Duration::from_millis(5));
        assert_eq!(
            w.windows_for(12),
            vec![Window { start: 5, end: 15 }, Window { start: 10, end: 20 }]
        );
        assert_eq!(w.windows_for(3), vec![Window { start: 0, end: 10 }]);
    }

    #[test]
    fn a_window_closes_at_its_end_plus_grace() {
        let w = TimeWindows::tumbling(Duration::from_millis(10)).grace(Duration::from_millis(5));
        let window = Window { start: 0, end: 10 };
        assert!(!w.is_closed(window, 14));
        assert!(w.is_closed(window, 15));
    }
}
