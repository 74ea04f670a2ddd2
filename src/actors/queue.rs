//! The bound on what waits between two pipeline stages, counted in frames (decoder) or messages
//! (metrics) rather than in mailbox envelopes, since one envelope carries a whole batch.
//!
//! The sender reserves room before `try_send` and keeps only what fits (the rest is dropped and
//! counted by the caller); the receiver releases what it has handled. The depth is exported at
//! scrape time as `upbit_pipeline_queue_depth{stage}` (`telemetry::metrics::QueueDepthCollector`),
//! read from the same counter.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::telemetry::metrics::QueueDepth;

/// One stage's queue bound, shared by its sender and its receiver.
#[derive(Debug, Clone)]
pub struct StageQueue {
    queued: Arc<AtomicUsize>,
    capacity: usize,
}

impl StageQueue {
    pub fn new(capacity: usize) -> Self {
        Self {
            queued: Arc::new(AtomicUsize::new(0)),
            capacity: capacity.max(1),
        }
    }

    /// Reserves room for up to `wanted` items; returns how many fit (0 when full).
    pub fn reserve(&self, wanted: usize) -> usize {
        let mut current = self.queued.load(Ordering::Relaxed);
        loop {
            let granted = wanted.min(self.capacity.saturating_sub(current));
            if granted == 0 {
                return 0;
            }
            match self.queued.compare_exchange_weak(
                current,
                current + granted,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return granted,
                Err(actual) => current = actual,
            }
        }
    }

    /// Gives back room for `handled` items (handled or never delivered).
    pub fn release(&self, handled: usize) {
        let _ = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |q| {
                Some(q.saturating_sub(handled))
            });
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn depth(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }
}

impl QueueDepth for StageQueue {
    fn depth(&self) -> usize {
        StageQueue::depth(self)
    }
}

#[cfg(test)]
mod tests {
    use prometheus::core::Collector;

    use super::*;
    use crate::telemetry::metrics::QueueDepthCollector;

    #[test]
    fn grants_only_what_fits_and_release_makes_room() {
        let queue = StageQueue::new(10);
        assert_eq!(queue.reserve(4), 4);
        assert_eq!(queue.reserve(8), 6);
        assert_eq!(queue.reserve(1), 0);
        queue.release(5);
        assert_eq!(queue.depth(), 5);
        assert_eq!(queue.reserve(7), 5);
        queue.release(100);
        assert_eq!(queue.depth(), 0);
    }

    #[test]
    fn the_collector_reports_live_depths() {
        let queue = StageQueue::new(10);
        let collector = QueueDepthCollector::new(vec![("decoder", queue.clone())]).unwrap();
        queue.reserve(3);
        let families = collector.collect();
        assert_eq!(families[0].get_metric()[0].get_gauge().get_value(), 3.0);
    }
}
