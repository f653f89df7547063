//! Idempotent-producer state of one partition: for each producer id, its
//! epoch and the sequence ranges and offsets of its last five batches (the
//! most a client keeps in flight), so a retried batch is recognised and
//! answered with its original offset instead of being written twice.
//!
//! The checks follow Kafka's: an older epoch is fenced, a new epoch must
//! start at sequence 0, within an epoch sequences must follow on without a
//! gap. A producer this partition knows nothing about (its batches are older
//! than what was replayed at start) may continue at any sequence.

use super::batch::BatchHeader;
use kafka_protocol::ResponseError;
use std::collections::{HashMap, VecDeque};

/// How many recent batches are remembered per producer.
const REMEMBERED_BATCHES: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Written {
    first_sequence: i32,
    last_sequence: i32,
    base_offset: i64,
}

#[derive(Debug)]
struct Producer {
    epoch: i16,
    recent: VecDeque<Written>,
    /// Max timestamp of its last batch written (-1: only markers seen).
    last_timestamp: i64,
}

/// A producer as DescribeProducers reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveProducer {
    pub producer_id: i64,
    pub epoch: i16,
    /// -1 when no batch of this epoch is remembered.
    pub last_sequence: i32,
    pub last_timestamp: i64,
}

/// What to do with a batch.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not idempotent, or next in sequence: write it.
    Write,
    /// Already written at this base offset: answer without writing.
    Duplicate { base_offset: i64 },
    /// Refuse the batch with this error.
    Reject(ResponseError),
}

#[derive(Debug, Default)]
pub struct Producers {
    by_id: HashMap<i64, Producer>,
}

/// The sequence number after `last`, wrapping as Kafka's does.
fn next_sequence(last: i32) -> i32 {
    if last == i32::MAX {
        0
    } else {
        last + 1
    }
}

fn last_sequence(header: &BatchHeader) -> i32 {
    let last = i64::from(header.base_sequence) + i64::from(header.last_offset_delta);
    // Sequences wrap at i32::MAX back to 0.
    (last % (i64::from(i32::MAX) + 1)) as i32
}

impl Producers {
    /// Judges a batch against what this partition has seen of its producer.
    pub fn check(&self, header: &BatchHeader) -> Verdict {
        if header.producer_id < 0 {
            return Verdict::Write;
        }
        let Some(producer) = self.by_id.get(&header.producer_id) else {
            return Verdict::Write;
        };
        if header.producer_epoch < producer.epoch {
            return Verdict::Reject(ResponseError::InvalidProducerEpoch);
        }
        if header.producer_epoch > producer.epoch {
            return if header.base_sequence == 0 {
                Verdict::Write
            } else {
                Verdict::Reject(ResponseError::OutOfOrderSequenceNumber)
            };
        }
        let last = last_sequence(header);
        if let Some(seen) = producer
            .recent
            .iter()
            .find(|w| w.first_sequence == header.base_sequence && w.last_sequence == last)
        {
            return Verdict::Duplicate {
                base_offset: seen.base_offset,
            };
        }
        match producer.recent.back() {
            Some(previous) if next_sequence(previous.last_sequence) != header.base_sequence => {
                Verdict::Reject(ResponseError::OutOfOrderSequenceNumber)
            }
            _ => Verdict::Write,
        }
    }

    /// Records a batch written at `base_offset` (also used to replay the log).
    /// A transaction marker only moves the producer's epoch on, which fences
    /// an older instance of a transactional producer.
    pub fn record(&mut self, header: &BatchHeader, base_offset: i64) {
        if header.producer_id < 0 {
            return;
        }
        if header.is_control() {
            if let Some(producer) = self.by_id.get_mut(&header.producer_id) {
                if header.producer_epoch > producer.epoch {
                    producer.epoch = header.producer_epoch;
                    producer.recent.clear();
                }
            }
            return;
        }
        let producer = self.by_id.entry(header.producer_id).or_insert(Producer {
            epoch: header.producer_epoch,
            recent: VecDeque::new(),
            last_timestamp: -1,
        });
        if header.producer_epoch != producer.epoch {
            producer.epoch = header.producer_epoch;
            producer.recent.clear();
        }
        if producer.recent.len() == REMEMBERED_BATCHES {
            producer.recent.pop_front();
        }
        producer.recent.push_back(Written {
            first_sequence: header.base_sequence,
            last_sequence: last_sequence(header),
            base_offset,
        });
        producer.last_timestamp = header.max_timestamp;
    }

    /// The epoch this partition last saw of a producer.
    pub fn epoch(&self, producer_id: i64) -> Option<i16> {
        self.by_id.get(&producer_id).map(|p| p.epoch)
    }

    /// Every producer this partition remembers, by id.
    pub fn active(&self) -> Vec<ActiveProducer> {
        let mut active: Vec<ActiveProducer> = self
            .by_id
            .iter()
            .map(|(&producer_id, p)| ActiveProducer {
                producer_id,
                epoch: p.epoch,
                last_sequence: p.recent.back().map_or(-1, |w| w.last_sequence),
                last_timestamp: p.last_timestamp,
            })
            .collect();
        active.sort_by_key(|p| p.producer_id);
        active
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(producer_id: i64, epoch: i16, first: i32, records: i32) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            batch_length: 0,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: records - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id,
            producer_epoch: epoch,
            base_sequence: first,
            records_count: records,
        }
    }

    #[test]
    fn plain_batches_always_write() {
        let producers = Producers::default();
        assert_eq!(producers.check(&header(-1, -1, -1, 3)), Verdict::Write);
    }

    #[test]
    fn in_sequence_duplicate_and_gap() {
        let mut producers = Producers::default();
        let first = header(7, 0, 0, 3);
        assert_eq!(producers.check(&first), Verdict::Write);
        producers.record(&first, 100);
        let second = header(7, 0, 3, 2);
        assert_eq!(producers.check(&second), Verdict::Write);
        producers.record(&second, 103);
        assert_eq!(
            producers.check(&header(7, 0, 0, 3)),
            Verdict::Duplicate { base_offset: 100 }
        );
        assert_eq!(
            producers.check(&header(7, 0, 3, 2)),
            Verdict::Duplicate { base_offset: 103 }
        );
        assert_eq!(
            producers.check(&header(7, 0, 9, 1)),
            Verdict::Reject(ResponseError::OutOfOrderSequenceNumber)
        );
        assert_eq!(producers.check(&header(7, 0, 5, 1)), Verdict::Write);
    }

    #[test]
    fn epochs_fence_and_restart_sequences() {
        let mut producers = Producers::default();
        producers.record(&header(7, 1, 0, 1), 0);
        assert_eq!(
            producers.check(&header(7, 0, 1, 1)),
            Verdict::Reject(ResponseError::InvalidProducerEpoch)
        );
        assert_eq!(
            producers.check(&header(7, 2, 5, 1)),
            Verdict::Reject(ResponseError::OutOfOrderSequenceNumber)
        );
        assert_eq!(producers.check(&header(7, 2, 0, 1)), Verdict::Write);
    }

    #[test]
    fn only_five_batches_are_remembered() {
        let mut producers = Producers::default();
        for i in 0..6 {
            producers.record(&header(1, 0, i, 1), i64::from(i));
        }
        assert_eq!(
            producers.check(&header(1, 0, 0, 1)),
            Verdict::Reject(ResponseError::OutOfOrderSequenceNumber)
        );
        assert_eq!(
            producers.check(&header(1, 0, 1, 1)),
            Verdict::Duplicate { base_offset: 1 }
        );
    }

    #[test]
    fn sequences_wrap() {
        let mut producers = Producers::default();
        producers.record(&header(1, 0, i32::MAX - 1, 2), 0);
        assert_eq!(producers.check(&header(1, 0, 0, 1)), Verdict::Write);
    }

    #[test]
    fn unknown_producer_may_continue_anywhere() {
        let producers = Producers::default();
        assert_eq!(producers.check(&header(3, 4, 77, 1)), Verdict::Write);
    }

    #[test]
    fn active_lists_each_producer_once_with_its_last_batch() {
        let mut producers = Producers::default();
        let mut later = header(9, 0, 0, 3);
        later.max_timestamp = 42;
        producers.record(&header(9, 0, 0, 3), 0);
        producers.record(&header(2, 1, 0, 1), 3);
        later.base_sequence = 3;
        producers.record(&later, 4);
        let summary =
            |p: &ActiveProducer| (p.producer_id, p.epoch, p.last_sequence, p.last_timestamp);
        assert_eq!(
            producers.active().iter().map(summary).collect::<Vec<_>>(),
            vec![(2, 1, 0, 0), (9, 0, 5, 42)]
        );
    }
}
