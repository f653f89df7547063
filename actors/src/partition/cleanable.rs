//! Which part of a compacted log the cleaner may clean now, and how dirty
//! it is, as Kafka's cleaner measures it. Pure: the partition describes its
//! sealed segments, this says whether the log is worth a cleaning.
//!
//! The cleanable part runs from the log start to the first uncleanable
//! offset: the active segment, the first segment holding a record younger
//! than `min.compaction.lag.ms`, and the first unstable offset (an open
//! transaction's records may still be aborted) each end it. Within it, what
//! lies past the cleaner checkpoint (the end of the last cleaning) is dirty.
//! The dirty ratio is dirty bytes over cleanable bytes; a log is eligible
//! once it reaches `min.cleanable.dirty.ratio`, or, whatever the ratio, once
//! a dirty record is older than `max.compaction.lag.ms`.

/// What the measure needs of one sealed segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentSummary {
    pub base: i64,
    /// One past its last offset.
    pub next_offset: i64,
    pub size: u64,
    /// Its newest record's timestamp, `None` when empty.
    pub max_timestamp: Option<i64>,
    /// Its first batch's timestamp: when its oldest record became dirty.
    /// Only read for dirty segments, and only under a finite
    /// `max.compaction.lag.ms`.
    pub first_timestamp: Option<i64>,
}

/// The topic settings the measure follows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CleaningLimits {
    pub min_compaction_lag_ms: i64,
    pub max_compaction_lag_ms: i64,
    pub min_cleanable_dirty_ratio: f64,
}

/// The cleanable part of one log.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cleanable {
    /// The first uncleanable offset: a cleaning covers the sealed segments
    /// below it, and the checkpoint moves up to it afterwards.
    pub clean_below: i64,
    /// Bytes below the checkpoint, cleaned before.
    pub clean_bytes: u64,
    /// Bytes from the checkpoint to `clean_below`.
    pub dirty_bytes: u64,
    /// A dirty record is older than `max.compaction.lag.ms`.
    pub overdue: bool,
}

impl Cleanable {
    /// Dirty bytes over cleanable bytes; 0 for nothing cleanable.
    pub fn dirty_ratio(&self) -> f64 {
        let total = self.clean_bytes + self.dirty_bytes;
        if total == 0 {
            0.0
        } else {
            self.dirty_bytes as f64 / total as f64
        }
    }

    /// Whether the cleaner should take the log now.
    pub fn eligible(&self, limits: &CleaningLimits) -> bool {
        self.dirty_bytes > 0
            && (self.overdue || self.dirty_ratio() >= limits.min_cleanable_dirty_ratio)
    }
}

/// Measures the log whose sealed segments are `sealed` (oldest first),
/// cleaned up to `checkpoint`, with no open transaction before
/// `first_unstable`.
pub fn measure(
    sealed: &[SegmentSummary],
    checkpoint: i64,
    first_unstable: i64,
    now_ms: i64,
    limits: &CleaningLimits,
) -> Cleanable {
    let young_after = now_ms.saturating_sub(limits.min_compaction_lag_ms.max(0));
    let overdue_before = now_ms.saturating_sub(limits.max_compaction_lag_ms.max(0));
    let mut cleanable = Cleanable {
        clean_below: sealed.first().map_or(0, |s| s.base),
        clean_bytes: 0,
        dirty_bytes: 0,
        overdue: false,
    };
    for segment in sealed {
        let too_young = segment.max_timestamp.is_some_and(|t| t > young_after);
        if too_young || segment.next_offset > first_unstable {
            break;
        }
        if segment.next_offset <= checkpoint {
            cleanable.clean_bytes += segment.size;
        } else {
            cleanable.dirty_bytes += segment.size;
            cleanable.overdue |= segment.first_timestamp.is_some_and(|t| t < overdue_before);
        }
        cleanable.clean_below = segment.next_offset;
    }
    cleanable
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: CleaningLimits = CleaningLimits {
        min_compaction_lag_ms: 0,
        max_compaction_lag_ms: i64::MAX,
        min_cleanable_dirty_ratio: 0.5,
    };

    /// Segments of 10 offsets and 100 bytes, the i-th with records at
    /// timestamps 1000 * i to 1000 * i + 999.
    fn segments(count: i64) -> Vec<SegmentSummary> {
        (0..count)
            .map(|i| SegmentSummary {
                base: 10 * i,
                next_offset: 10 * i + 10,
                size: 100,
                max_timestamp: Some(1000 * i + 999),
                first_timestamp: Some(1000 * i),
            })
            .collect()
    }

    #[test]
    fn the_ratio_is_dirty_bytes_over_cleanable_bytes() {
        let log = segments(4);
        let fresh = measure(&log, 0, i64::MAX, 10_000, &LIMITS);
        assert_eq!((fresh.clean_below, fresh.dirty_bytes), (40, 400));
        assert_eq!(fresh.dirty_ratio(), 1.0);
        assert!(fresh.eligible(&LIMITS));
        let cleaned_to_30 = measure(&log, 30, i64::MAX, 10_000, &LIMITS);
        assert_eq!(
            (cleaned_to_30.clean_bytes, cleaned_to_30.dirty_bytes),
            (300, 100)
        );
        assert_eq!(cleaned_to_30.dirty_ratio(), 0.25);
        assert!(!cleaned_to_30.eligible(&LIMITS));
        let half = measure(&log, 20, i64::MAX, 10_000, &LIMITS);
        assert!(
            half.eligible(&LIMITS),
            "a ratio equal to the minimum is enough"
        );
        let clean = measure(&log, 40, i64::MAX, 10_000, &LIMITS);
        assert_eq!(clean.dirty_ratio(), 0.0);
        assert!(!clean.eligible(&LIMITS));
        let empty = measure(&[], 0, i64::MAX, 10_000, &LIMITS);
        assert!(!empty.eligible(&LIMITS));
    }

    #[test]
    fn young_segments_and_open_transactions_end_the_cleanable_part() {
        let log = segments(4);
        let lagged = CleaningLimits {
            min_compaction_lag_ms: 2_500,
            ..LIMITS
        };
        // At 4000 only records up to 1500 are old enough: segment 0 alone.
        let young = measure(&log, 0, i64::MAX, 4_000, &lagged);
        assert_eq!((young.clean_below, young.dirty_bytes), (10, 100));
        let all_young = measure(&log, 0, i64::MAX, 1_000, &lagged);
        assert_eq!((all_young.clean_below, all_young.dirty_bytes), (0, 0));
        assert!(!all_young.eligible(&LIMITS));
        // An open transaction from offset 25 on keeps segment 2 and later out.
        let open = measure(&log, 0, 25, 10_000, &LIMITS);
        assert_eq!((open.clean_below, open.dirty_bytes), (20, 200));
        // The checkpoint below an uncleanable part: only what lies between.
        let between = measure(&log, 10, 25, 10_000, &LIMITS);
        assert_eq!((between.clean_bytes, between.dirty_bytes), (100, 100));
    }

    #[test]
    fn an_overdue_dirty_record_makes_the_log_eligible_whatever_its_ratio() {
        let log = segments(4);
        let strict = CleaningLimits {
            max_compaction_lag_ms: 5_000,
            min_cleanable_dirty_ratio: 0.9,
            ..LIMITS
        };
        // Dirty: segment 3, first record at 3000.
        let before = measure(&log, 30, i64::MAX, 8_000, &strict);
        assert!(!before.overdue && !before.eligible(&strict));
        let after = measure(&log, 30, i64::MAX, 8_001, &strict);
        assert!(after.overdue && after.eligible(&strict));
        // Clean segments never make a log overdue, however old.
        let clean = measure(&log, 40, i64::MAX, 1_000_000, &strict);
        assert!(!clean.overdue && !clean.eligible(&strict));
    }
}
