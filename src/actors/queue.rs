//! The bound on what waits between two pipeline stages, counted in frames (decoder) or messages
//! (metrics) rather than in mailbox envelopes, since one envelope carries a whole batch.
//!
//! The sender hands a batch over with [`StageSender::hand_over`]: it reserves room, keeps only
//! what fits, `try_send`s it and counts the rest as dropped; the receiver releases what it has
//! handled. The depth is exported at
//! scrape time as `upbit_pipeline_queue_depth{stage}` (`telemetry::metrics::QueueDepthCollector`),
//! read from the same counter.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::SendError;
use actix::{Message, Recipient};

use crate::telemetry::events::MessagesDropped;
use crate::telemetry::metrics::{QueueDepth, DROP_POINTS};
use crate::telemetry::{LogThrottle, Metrics};

/// How often a stage's drops may write a log line (the metric counts every one).
const DROP_LOG_EVERY: Duration = Duration::from_secs(10);

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

/// The hand-over into one pipeline stage: where its batches go, the bound they share, and how
/// what does not fit is counted. Every stage's sender uses it, so each drop point counts the same
/// way (`upbit_dropped_messages_total{stage, reason}`).
pub struct StageSender<M: Message + Send>
where
    M::Result: Send,
{
    /// The stage's name in `upbit_dropped_messages_total{stage}`.
    stage: &'static str,
    recipient: Recipient<M>,
    queue: StageQueue,
    drop_log: LogThrottle,
}

impl<M: Message + Send> StageSender<M>
where
    M::Result: Send,
{
    /// `stage` is the receiving stage's name (`decoder`, `metrics`); `queue` its bound, shared
    /// with the receiver, which releases what it handles.
    pub fn new(stage: &'static str, recipient: Recipient<M>, queue: StageQueue) -> Self {
        Self {
            stage,
            recipient,
            queue,
            drop_log: LogThrottle::new(DROP_LOG_EVERY),
        }
    }

    /// Hands over as many of `items` as the stage has room for, as one message built by `wrap`,
    /// and returns how many went. What does not fit is dropped and counted as `queue_full`;
    /// when the message cannot be delivered at all, every item is, as `stopped` for a closed
    /// mailbox where that drop point is declared (`DROP_POINTS`), else as `queue_full`. Never
    /// waits.
    pub fn hand_over<T>(
        &mut self,
        mut items: Vec<T>,
        wrap: impl FnOnce(Vec<T>) -> M,
        metrics: &Metrics,
    ) -> usize {
        let wanted = items.len();
        if wanted == 0 {
            return 0;
        }
        let granted = self.queue.reserve(wanted);
        items.truncate(granted);
        let (mut sent, mut reason) = (granted, "queue_full");
        if granted > 0 {
            if let Err(error) = self.recipient.try_send(wrap(items)) {
                self.queue.release(granted);
                sent = 0;
                if matches!(error, SendError::Closed(_)) && self.declares("stopped") {
                    reason = "stopped";
                }
            }
        }
        if sent < wanted {
            let log = self.drop_log.allow();
            MessagesDropped {
                stage: self.stage,
                reason,
                count: (wanted - sent) as u64,
                log,
            }
            .emit(metrics);
        }
        sent
    }

    /// Whether `(stage, reason)` is a declared drop point, so label values stay bounded.
    fn declares(&self, reason: &str) -> bool {
        DROP_POINTS.contains(&(self.stage, reason))
    }
}

#[cfg(test)]
mod tests {
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
        let (queue, registry) = (StageQueue::new(10), prometheus::Registry::new());
        QueueDepthCollector::register(&registry, vec![("decoder", queue.clone())]).unwrap();
        queue.reserve(3);
        let families = registry.gather();
        assert_eq!(families[0].name(), "upbit_pipeline_queue_depth");
        let series = &families[0].get_metric()[0];
        assert_eq!(series.get_label()[0].value(), "decoder");
        assert_eq!(series.get_gauge().get_value(), 3.0);
    }

    /// Collects what it receives; never releases its queue (a stage that has stalled).
    #[derive(Default)]
    struct Receiver {
        got: Vec<u32>,
    }

    impl actix::Actor for Receiver {
        type Context = actix::Context<Self>;
    }

    #[derive(actix::Message)]
    #[rtype(result = "()")]
    struct Batch(Vec<u32>);

    impl actix::Handler<Batch> for Receiver {
        type Result = ();
        fn handle(&mut self, batch: Batch, _: &mut Self::Context) {
            self.got.extend(batch.0);
        }
    }

    #[derive(actix::Message)]
    #[rtype(result = "Vec<u32>")]
    struct Got;

    impl actix::Handler<Got> for Receiver {
        type Result = Vec<u32>;
        fn handle(&mut self, _: Got, _: &mut Self::Context) -> Vec<u32> {
            self.got.clone()
        }
    }

    fn dropped(metrics: &Metrics, stage: &str, reason: &str) -> u64 {
        metrics
            .dropped_messages
            .with_label_values(&[stage, reason])
            .get()
    }

    #[actix_rt::test]
    async fn a_hand_over_sends_what_fits_and_counts_the_rest_as_queue_full() {
        use actix::Actor;
        let metrics = Metrics::register(&prometheus::Registry::new()).unwrap();
        let collector = Receiver::default().start();
        let queue = StageQueue::new(3);
        let mut stage = StageSender::new("decoder", collector.clone().recipient(), queue.clone());

        assert_eq!(stage.hand_over(vec![1, 2, 3, 4, 5], Batch, &metrics), 3);
        assert_eq!(stage.hand_over(vec![6], Batch, &metrics), 0, "full");
        assert_eq!(stage.hand_over(Vec::new(), Batch, &metrics), 0);

        assert_eq!(collector.send(Got).await.unwrap(), [1, 2, 3]);
        assert_eq!(queue.depth(), 3, "held until the receiver releases");
        assert_eq!(dropped(&metrics, "decoder", "queue_full"), 3);
        assert_eq!(dropped(&metrics, "decoder", "stopped"), 0);
    }

    #[test]
    fn a_hand_over_to_a_stopped_stage_gives_the_room_back_and_counts_every_item() {
        let metrics = Metrics::register(&prometheus::Registry::new()).unwrap();
        let gone = actix::AsyncContext::address(&actix::Context::<Receiver>::new());
        let queue = StageQueue::new(10);
        let mut decoder = StageSender::new("decoder", gone.clone().recipient(), queue.clone());
        assert_eq!(decoder.hand_over(vec![1, 2, 3, 4], Batch, &metrics), 0);
        assert_eq!(queue.depth(), 0);
        assert_eq!(dropped(&metrics, "decoder", "stopped"), 4);

        // Only declared drop points become label values: the metrics stage has no `stopped`.
        let mut later = StageSender::new("metrics", gone.recipient(), queue.clone());
        assert_eq!(later.hand_over(vec![1, 2], Batch, &metrics), 0);
        assert_eq!(dropped(&metrics, "metrics", "queue_full"), 2);
        assert_eq!(queue.depth(), 0);
    }
}
