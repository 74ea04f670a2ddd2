//! The sink's bounded buffer between the pipeline (which must never wait) and the sender task.
//!
//! The pipeline pushes each batch under a short lock and wakes the sender; when the buffer is
//! full the oldest messages make room and are counted (`upbit_sink_dropped_total{reason=
//! "buffer_full"}`), so after an outage the stream gets the newest `nats.buffer` messages and
//! the gap sits at the start of the outage. Messages whose acknowledgement failed come back to
//! the front, to be sent again under the same id.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use prometheus::IntCounter;
use tokio::sync::Notify;

use crate::stream::{Event, EventSink};
use crate::telemetry::metrics::SinkMetrics;

/// Shared by the pipeline (push) and the sender task (take, put back).
pub struct Buffer {
    queue: Mutex<VecDeque<Event>>,
    capacity: usize,
    /// Woken on every push; one waiter, the sender.
    pub(super) ready: Notify,
    metrics: SinkMetrics,
    full: IntCounter,
    /// Link events get ids of their own, unique to this process (`link:{instance}:{n}`), so a
    /// resend is recognised but the two replicas' link events are both kept.
    instance: String,
    links: AtomicU64,
}

impl Buffer {
    pub fn new(capacity: usize, metrics: SinkMetrics) -> Arc<Self> {
        Arc::new(Self {
            queue: Mutex::new(VecDeque::with_capacity(capacity.min(1 << 16))),
            capacity,
            ready: Notify::new(),
            full: metrics.dropped.with_label_values(&["buffer_full"]),
            metrics,
            instance: uuid::Uuid::new_v4().simple().to_string(),
            links: AtomicU64::new(0),
        })
    }

    /// Up to `max` messages, oldest first; wakes the sender again when some are left.
    pub fn take(&self, max: usize) -> Vec<Event> {
        let mut queue = self.queue.lock();
        let n = max.min(queue.len());
        let taken: Vec<Event> = queue.drain(..n).collect();
        self.metrics.buffered.set(queue.len() as i64);
        if !queue.is_empty() {
            self.ready.notify_one();
        }
        taken
    }

    /// Messages to send again, in front of the rest (dropping the oldest if that overfills).
    pub fn put_back(&self, events: Vec<Event>) {
        let mut queue = self.queue.lock();
        let mut dropped = 0;
        for event in events.into_iter().rev() {
            if queue.len() >= self.capacity {
                dropped += 1;
                continue;
            }
            queue.push_front(event);
        }
        self.metrics.buffered.set(queue.len() as i64);
        drop(queue);
        self.full.inc_by(dropped);
        self.ready.notify_one();
    }

    /// Empties the buffer, returning how many messages it held.
    pub fn clear(&self) -> usize {
        let mut queue = self.queue.lock();
        let n = queue.len();
        queue.clear();
        self.metrics.buffered.set(0);
        n
    }

    pub fn len(&self) -> usize {
        self.queue.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl EventSink for Buffer {
    fn publish(&self, events: &[Event]) {
        let mut dropped = 0;
        let mut queue = self.queue.lock();
        for event in events {
            if queue.len() >= self.capacity {
                queue.pop_front();
                dropped += 1;
            }
            let mut event = event.clone();
            if event.id.is_none() {
                let n = self.links.fetch_add(1, Ordering::Relaxed);
                event.id = Some(format!("link:{}:{n}", self.instance).into());
            }
            queue.push_back(event);
        }
        self.metrics.buffered.set(queue.len() as i64);
        drop(queue);
        if dropped > 0 {
            self.full.inc_by(dropped);
        }
        self.ready.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::LinkChange;
    use std::time::SystemTime;

    fn link(n: usize) -> Event {
        Event::link(&LinkChange::Connected, SystemTime::now(), n)
    }

    fn connection(e: &Event) -> u64 {
        let v: serde_json::Value = serde_json::from_str(&e.encoded.json()).unwrap();
        v["data"]["connection"].as_u64().unwrap()
    }

    #[test]
    fn a_full_buffer_drops_the_oldest_and_counts_them() {
        let metrics = SinkMetrics::register(&prometheus::Registry::new()).unwrap();
        let buffer = Buffer::new(3, metrics.clone());
        buffer.publish(&(0..5).map(link).collect::<Vec<_>>());
        assert_eq!(buffer.len(), 3);
        assert_eq!(metrics.buffered.get(), 3);
        assert_eq!(metrics.dropped.with_label_values(&["buffer_full"]).get(), 2);
        let taken = buffer.take(2);
        assert_eq!(taken.iter().map(connection).collect::<Vec<_>>(), [2, 3]);
        assert!(taken
            .iter()
            .all(|e| e.id.as_deref().is_some_and(|id| id.starts_with("link:"))));
        assert_ne!(taken[0].id, taken[1].id);
        buffer.put_back(taken);
        assert_eq!(
            buffer.take(10).iter().map(connection).collect::<Vec<_>>(),
            [2, 3, 4],
            "put back in front, in order"
        );
        assert!(buffer.is_empty());
        assert_eq!(metrics.buffered.get(), 0);
    }
}
