//! One consumer's queue, pure data (no locks, no runtime).
//!
//! - Tickers, orderbooks and candles **conflate**: while one of a (type, code) waits, a newer
//!   one replaces it in place, so the consumer gets the latest without the history, and the
//!   queue holds at most one per subscribed pair.
//! - Trades and link events are **kept**, in order, up to `limit`; one more overflows and the
//!   caller disconnects the consumer (a gap in trades would be a lie).
//! - A link event is a **barrier**: values queued before it keep their place and value, and a
//!   newer value after it queues behind it, so data from after a reconnect never overtakes the
//!   announcement of the reconnect.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::event::{Encoded, Event, EventKind};
use crate::upbit::DataType;

/// What `push` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// A new item at the back.
    Queued,
    /// Replaced a waiting item of the same type and code.
    Conflated,
    /// Over the limit of kept items: nothing was queued, the consumer is too slow.
    Overflow,
}

#[derive(Debug)]
enum Slot {
    /// A trade or link event.
    Kept(Encoded),
    /// The latest value of a conflating (type, code), held in `ConsumerQueue::latest`.
    Latest(DataType, Arc<str>),
    /// A conflated value fixed in place by a barrier.
    Frozen(Encoded),
}

/// The queue.
#[derive(Debug)]
pub struct ConsumerQueue {
    slots: VecDeque<Slot>,
    latest: HashMap<DataType, HashMap<Arc<str>, Encoded>>,
    kept: usize,
    limit: usize,
}

/// True for the types whose latest value is all a consumer needs.
pub fn conflates(data_type: DataType) -> bool {
    !matches!(data_type, DataType::Trade)
}

impl ConsumerQueue {
    /// A queue that keeps at most `limit` trades and link events.
    pub fn new(limit: usize) -> Self {
        Self {
            slots: VecDeque::new(),
            latest: HashMap::new(),
            kept: 0,
            limit: limit.max(1),
        }
    }

    pub fn push(&mut self, event: &Event) -> Pushed {
        match &event.kind {
            EventKind::Market { data_type, code } if conflates(*data_type) => {
                let by_code = self.latest.entry(*data_type).or_default();
                if let Some(waiting) = by_code.get_mut(&**code) {
                    *waiting = event.encoded.clone();
                    return Pushed::Conflated;
                }
                by_code.insert(code.clone(), event.encoded.clone());
                self.slots.push_back(Slot::Latest(*data_type, code.clone()));
                Pushed::Queued
            }
            EventKind::Link => {
                self.freeze();
                self.keep(&event.encoded)
            }
            EventKind::Market { .. } => self.keep(&event.encoded),
        }
    }

    fn keep(&mut self, encoded: &Encoded) -> Pushed {
        if self.kept >= self.limit {
            return Pushed::Overflow;
        }
        self.kept += 1;
        self.slots.push_back(Slot::Kept(encoded.clone()));
        Pushed::Queued
    }

    /// Fixes every waiting conflated value in place (the barrier before a link event).
    fn freeze(&mut self) {
        if self.latest.values().all(HashMap::is_empty) {
            return;
        }
        for slot in &mut self.slots {
            if let Slot::Latest(data_type, code) = slot {
                if let Some(value) = self
                    .latest
                    .get_mut(data_type)
                    .and_then(|m| m.remove(&**code))
                {
                    *slot = Slot::Frozen(value);
                }
            }
        }
        self.latest.clear();
    }

    /// The next message, oldest first.
    pub fn pop(&mut self) -> Option<Encoded> {
        loop {
            match self.slots.pop_front()? {
                Slot::Kept(encoded) => {
                    self.kept -= 1;
                    return Some(encoded);
                }
                Slot::Frozen(encoded) => return Some(encoded),
                Slot::Latest(data_type, code) => {
                    let value = self
                        .latest
                        .get_mut(&data_type)
                        .and_then(|m| m.remove(&*code));
                    if value.is_some() {
                        return value;
                    }
                }
            }
        }
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Drops everything waiting and gives the memory back.
    pub fn clear(&mut self) {
        *self = Self::new(self.limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(data_type: DataType, code: &str, text: &str) -> Event {
        Event {
            kind: EventKind::Market {
                data_type,
                code: Arc::from(code),
            },
            encoded: Encoded::ready(data_type.as_str(), text.to_owned()),
            id: None,
        }
    }

    fn link(text: &str) -> Event {
        Event {
            kind: EventKind::Link,
            encoded: Encoded::ready("link", text.to_owned()),
            id: None,
        }
    }

    fn drain(queue: &mut ConsumerQueue) -> Vec<String> {
        std::iter::from_fn(|| queue.pop())
            .map(|e| e.json().to_string())
            .collect()
    }

    #[test]
    fn tickers_conflate_in_place_and_trades_keep_order() {
        let mut q = ConsumerQueue::new(10);
        assert_eq!(
            q.push(&event(DataType::Ticker, "KRW-BTC", "t1")),
            Pushed::Queued
        );
        assert_eq!(
            q.push(&event(DataType::Trade, "KRW-BTC", "x1")),
            Pushed::Queued
        );
        assert_eq!(
            q.push(&event(DataType::Ticker, "KRW-ETH", "e1")),
            Pushed::Queued
        );
        assert_eq!(
            q.push(&event(DataType::Ticker, "KRW-BTC", "t2")),
            Pushed::Conflated
        );
        assert_eq!(
            q.push(&event(DataType::Trade, "KRW-BTC", "x2")),
            Pushed::Queued
        );
        assert_eq!(
            q.push(&event(DataType::Orderbook, "KRW-BTC", "o1")),
            Pushed::Queued
        );
        assert_eq!(
            q.push(&event(DataType::Orderbook, "KRW-BTC", "o2")),
            Pushed::Conflated
        );
        assert_eq!(q.len(), 5);
        assert_eq!(drain(&mut q), ["t2", "x1", "e1", "x2", "o2"]);
        assert!(q.is_empty());
        assert_eq!(
            q.push(&event(DataType::Ticker, "KRW-BTC", "t3")),
            Pushed::Queued
        );
        assert_eq!(drain(&mut q), ["t3"]);
    }

    #[test]
    fn trades_beyond_the_limit_overflow_but_tickers_never_do() {
        let mut q = ConsumerQueue::new(3);
        for i in 0..3 {
            assert_eq!(
                q.push(&event(DataType::Trade, "KRW-BTC", &i.to_string())),
                Pushed::Queued
            );
        }
        for i in 0..100 {
            let pushed = q.push(&event(DataType::Ticker, "KRW-BTC", &i.to_string()));
            assert_ne!(pushed, Pushed::Overflow);
        }
        assert_eq!(
            q.push(&event(DataType::Trade, "KRW-BTC", "3")),
            Pushed::Overflow
        );
        assert_eq!(
            q.push(&link("l")),
            Pushed::Overflow,
            "link events count too"
        );
        assert_eq!(q.len(), 4);
        q.pop();
        assert_eq!(
            q.push(&event(DataType::Trade, "KRW-BTC", "4")),
            Pushed::Queued
        );
        q.clear();
        assert!(q.is_empty() && q.pop().is_none());
    }

    #[test]
    fn a_link_event_is_a_barrier_data_after_it_never_overtakes_it() {
        let mut q = ConsumerQueue::new(10);
        q.push(&event(DataType::Ticker, "KRW-BTC", "before"));
        q.push(&link("down"));
        q.push(&link("up"));
        assert_eq!(
            q.push(&event(DataType::Ticker, "KRW-BTC", "after1")),
            Pushed::Queued
        );
        assert_eq!(
            q.push(&event(DataType::Ticker, "KRW-BTC", "after2")),
            Pushed::Conflated
        );
        assert_eq!(drain(&mut q), ["before", "down", "up", "after2"]);
    }
}
