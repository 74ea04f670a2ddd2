//! One consumer: its queue, shared by the hub (writer, on the pipeline thread) and its transport
//! (reader, on an HTTP worker).
//!
//! The hub hands each batch to `Consumer::offer`, which queues what the consumer's filter lets
//! through and ends the stream as `slow` when the queue overflows; the transport reads with
//! [`Consumer::poll_next`] (or [`Consumer::next`]) until it gets [`Next::Ended`]. A transport
//! holds a [`ConsumerHandle`] and leaves by dropping it (reason `client`) or with
//! [`ConsumerHandle::end`]; whichever reason comes first is the one the stream ends with.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;
use prometheus::{IntCounter, IntGauge};

use super::event::{Encoded, Event};
use super::filter::Filter;
use super::hub::Hub;
use super::queue::{ConsumerQueue, Pushed};
use super::{LeaveReason, Transport};
use crate::telemetry::metrics::StreamMetrics;

/// One consumer, shared by the hub (writer) and its transport (reader).
pub struct Consumer {
    pub id: u64,
    pub transport: Transport,
    /// The remote address and port, for logs.
    pub peer: String,
    /// The remote address without the port: what the per-address limit counts.
    pub(super) address: String,
    pub(super) filter: Filter,
    state: Mutex<ConsumerState>,
    /// Signalled once when the stream ends (one waiter: the transport's task).
    ended: tokio::sync::Notify,
    sent: AtomicU64,
    sent_total: IntCounter,
    /// `upbit_stream_consumers{transport}`: up when joined, down when it left.
    pub(super) gauge: IntGauge,
}

struct ConsumerState {
    queue: ConsumerQueue,
    waker: Option<Waker>,
    ending: Option<Ending>,
}

/// Why and how a stream ended, for the close frame or the final SSE event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending {
    pub reason: LeaveReason,
    /// For the client.
    pub message: String,
}

/// What a transport reads next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Message(Encoded),
    /// The hub ended the stream (slow, shutdown) or the transport did: close it.
    Ended(Ending),
}

/// The address part of a peer (`10.0.0.1:1000` → `10.0.0.1`); an unparsable peer as it is.
pub(super) fn address_of(peer: &str) -> String {
    peer.parse::<std::net::SocketAddr>()
        .map_or_else(|_| peer.to_owned(), |a| a.ip().to_string())
}

/// What one consumer made of a batch ([`Consumer::offer`]).
#[derive(Debug, Default)]
pub(super) struct Offered {
    /// Messages that replaced a waiting one of the same type and code.
    pub conflated: u64,
    /// Messages waiting after the batch, when something new was queued.
    pub depth: Option<usize>,
    /// The queue overflowed: the stream is ended as `slow`; the hub must drop the consumer.
    pub slow: bool,
    /// The transport's waker, when it has something new to read.
    pub waker: Option<Waker>,
}

impl Consumer {
    /// A consumer whose first message is `link` (the current link state), keeping at most
    /// `trade_queue` trades and link events waiting.
    pub(super) fn new(
        id: u64,
        transport: Transport,
        peer: String,
        filter: Filter,
        link: &Event,
        trade_queue: usize,
        metrics: &StreamMetrics,
    ) -> Self {
        let mut queue = ConsumerQueue::new(trade_queue);
        queue.push(link);
        let label = [transport.label()];
        Self {
            id,
            transport,
            address: address_of(&peer),
            peer,
            filter,
            state: Mutex::new(ConsumerState {
                queue,
                waker: None,
                ending: None,
            }),
            ended: tokio::sync::Notify::new(),
            sent: AtomicU64::new(0),
            sent_total: metrics.messages_sent.with_label_values(&label),
            gauge: metrics.consumers.with_label_values(&label),
        }
    }

    /// Queues the events this consumer's filter accepts; on overflow (more than `trade_queue`
    /// trades and link events waiting) ends the stream as `slow` and drops the backlog. Nothing
    /// happens once the stream has ended. The caller wakes the returned waker after unlocking.
    pub(super) fn offer(&self, events: &[Event], trade_queue: usize) -> Offered {
        let mut offered = Offered::default();
        let mut state = self.state.lock();
        if state.ending.is_some() {
            return offered;
        }
        let mut queued = false;
        for event in events.iter().filter(|e| self.filter.accepts(&e.kind)) {
            match state.queue.push(event) {
                Pushed::Queued => queued = true,
                Pushed::Conflated => offered.conflated += 1,
                Pushed::Overflow => {
                    offered.slow = true;
                    break;
                }
            }
        }
        if offered.slow {
            state.ending = Some(Ending {
                reason: LeaveReason::Slow,
                message: format!(
                    "more than {trade_queue} trades waiting: this consumer reads too slowly"
                ),
            });
            state.queue.clear();
        } else if queued {
            offered.depth = Some(state.queue.len());
        }
        if queued || offered.slow {
            offered.waker = state.waker.take();
        }
        offered
    }

    /// The next message, or the end of the stream; registers the waker when there is neither.
    pub fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Next> {
        let mut state = self.state.lock();
        if let Some(ending) = &state.ending {
            return Poll::Ready(Next::Ended(ending.clone()));
        }
        if let Some(message) = state.queue.pop() {
            return Poll::Ready(Next::Message(message));
        }
        if !state
            .waker
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            state.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// The next message, or the end of the stream.
    pub async fn next(&self) -> Next {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Resolves once the stream has ended, whoever ended it.
    pub async fn ended(&self) {
        loop {
            if self.state.lock().ending.is_some() {
                return;
            }
            self.ended.notified().await;
        }
    }

    /// Counts messages handed to the connection.
    pub fn count_sent(&self, messages: u64) {
        self.sent.fetch_add(messages, Ordering::Relaxed);
        self.sent_total.inc_by(messages);
    }

    /// Messages handed to the connection so far.
    pub(super) fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Messages waiting.
    pub fn queued(&self) -> usize {
        self.state.lock().queue.len()
    }

    /// Ends the stream for `reason` unless it already ended (the first reason stays), drops
    /// the backlog and wakes the transport.
    pub(super) fn finish(&self, reason: LeaveReason, message: &str) {
        let mut state = self.state.lock();
        if state.ending.is_none() {
            state.ending = Some(Ending {
                reason,
                message: message.to_owned(),
            });
        }
        state.queue.clear();
        let waker = state.waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
        self.ended.notify_one();
    }

    /// Tells the transport's task waiting in [`Consumer::ended`] that the stream ended.
    pub(super) fn notify_ended(&self) {
        self.ended.notify_one();
    }
}

/// A transport's hold on its consumer: dropping it leaves the hub (reason `client` unless the
/// stream already ended for another reason).
pub struct ConsumerHandle {
    hub: Hub,
    consumer: Arc<Consumer>,
}

impl ConsumerHandle {
    pub(super) fn new(hub: Hub, consumer: Arc<Consumer>) -> Self {
        Self { hub, consumer }
    }

    pub fn consumer(&self) -> &Arc<Consumer> {
        &self.consumer
    }

    /// Ends the stream for `reason` (the transport noticed it: a timeout, the client closed).
    pub fn end(&self, reason: LeaveReason, message: &str) {
        self.hub.leave(&self.consumer, reason, message);
    }
}

impl Drop for ConsumerHandle {
    fn drop(&mut self) {
        self.hub
            .leave(&self.consumer, LeaveReason::Client, "the client left");
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::upbit::model::Trade;
    use crate::upbit::types::Side;
    use crate::upbit::Message;

    fn consumer(filter: Filter, trade_queue: usize) -> Consumer {
        let metrics = StreamMetrics::register(&prometheus::Registry::new()).unwrap();
        let link = Event::link_starting();
        Consumer::new(
            1,
            Transport::Sse,
            "10.0.0.1:1000".into(),
            filter,
            &link,
            trade_queue,
            &metrics,
        )
    }

    fn trade(code: &str) -> Event {
        let message = Message::Trade(Trade::bare(code, 1.0, 1.0, Side::Bid));
        Event::market(&message, SystemTime::now()).unwrap()
    }

    /// Polls once with a waker that does nothing.
    fn poll(consumer: &Consumer) -> Poll<Next> {
        let waker = futures_util::task::noop_waker();
        consumer.poll_next(&mut Context::from_waker(&waker))
    }

    fn names(consumer: &Consumer) -> Vec<String> {
        let mut out = Vec::new();
        while let Poll::Ready(next) = poll(consumer) {
            match next {
                Next::Message(m) => out.push(m.name.to_owned()),
                Next::Ended(e) => {
                    out.push(format!("ended:{}", e.reason.as_str()));
                    break;
                }
            }
        }
        out
    }

    #[test]
    fn the_address_is_the_peer_without_its_port() {
        assert_eq!(address_of("10.0.0.1:1000"), "10.0.0.1");
        assert_eq!(address_of("[::1]:80"), "::1");
        assert_eq!(address_of("unix-peer"), "unix-peer");
        assert_eq!(consumer(Filter::everything(), 1).address, "10.0.0.1");
    }

    #[test]
    fn an_offer_queues_what_the_filter_takes_and_hands_back_the_waiting_waker() {
        let c = consumer(Filter::parse(None, Some("KRW-BTC"), 10).unwrap(), 10);
        assert_eq!(c.queued(), 1, "the link state comes first");
        assert_eq!(names(&c), ["link"]);
        assert!(poll(&c).is_pending(), "the waker is registered");
        let offered = c.offer(&[trade("KRW-ETH")], 10);
        assert!(
            offered.waker.is_none() && offered.depth.is_none(),
            "filtered out"
        );
        let offered = c.offer(&[trade("KRW-BTC"), trade("KRW-ETH"), trade("KRW-BTC")], 10);
        assert!(!offered.slow);
        assert_eq!(offered.depth, Some(2));
        assert!(offered.waker.is_some(), "something new to read");
        assert_eq!(names(&c), ["trade", "trade"]);
    }

    #[test]
    fn an_overflow_ends_the_stream_as_slow_and_drops_the_backlog() {
        let c = consumer(Filter::everything(), 2);
        let offered = c.offer(&[trade("KRW-BTC")], 2);
        assert!(!offered.slow, "the link state and one trade fit");
        let offered = c.offer(&[trade("KRW-BTC")], 2);
        assert!(offered.slow);
        assert_eq!(c.queued(), 0);
        let Poll::Ready(Next::Ended(ending)) = poll(&c) else {
            panic!("the stream ended")
        };
        assert_eq!(ending.reason, LeaveReason::Slow);
        assert_eq!(
            ending.message,
            "more than 2 trades waiting: this consumer reads too slowly"
        );
        let after = c.offer(&[trade("KRW-BTC")], 2);
        assert!(
            !after.slow && after.depth.is_none(),
            "an ended stream takes nothing"
        );
    }

    #[test]
    fn the_first_ending_stays() {
        let c = consumer(Filter::everything(), 10);
        c.finish(LeaveReason::Timeout, "no answer to pings");
        c.finish(LeaveReason::Client, "the client left");
        assert_eq!(names(&c), ["ended:timeout"], "the backlog is gone too");
        futures_util::FutureExt::now_or_never(c.ended()).expect("ended resolves at once");
    }
}
