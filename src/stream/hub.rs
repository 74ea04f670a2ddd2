//! The consumer registry and the fan-out: who is connected, the caps on joining, each batch
//! handed to every consumer, leaving and shutdown, and the budget on lifecycle log lines.
//!
//! The pipeline calls [`Hub::publish`] (through [`Publisher`](super::Publisher)) with each batch:
//! under one short lock it offers the batch to every consumer (`Consumer::offer` queues what
//! the consumer wants), drops the ones whose queue overflowed, and wakes the transports
//! afterwards. It never waits on a consumer: a consumer that stopped reading only grows its own
//! bounded queue until it is dropped.
//!
//! Locks: the registry (joins and leaves from HTTP workers, batches from the pipeline thread),
//! then a consumer's state under it (see [`super::consumer`]); never the other way round.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::consumer::{address_of, ConsumerHandle};
use super::event::{Event, EventKind};
use super::filter::{type_bit, Filter};
use super::{LeaveReason, Transport};
use crate::telemetry::metrics::StreamMetrics;
use crate::upbit::DataType;

// The consumer's types by their former path (`crate::stream::hub::{Consumer, Ending}`), still
// used by the HTTP transports; `crate::stream::{Consumer, Ending}` is the path to prefer.
pub use super::consumer::{Consumer, Ending};

/// The fan-out; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    shared: Arc<Shared>,
}

struct Shared {
    registry: Mutex<Registry>,
    /// Consumers registered: the pipeline skips all work while it is zero.
    count: AtomicUsize,
    /// The union of the consumers' type masks: types nobody wants are not even encoded.
    interest: AtomicU32,
    next_id: AtomicU64,
    max_consumers: usize,
    /// Most consumers from one remote address.
    max_per_address: usize,
    trade_queue: usize,
    metrics: StreamMetrics,
    /// Join and leave lines: any client can connect in a loop, the log must not follow it.
    log_budget: Mutex<LineBudget>,
}

/// At most `LOG_BURST` consumer lifecycle lines per `LOG_WINDOW`; then one line saying how
/// many were held back (the metrics still count every one).
const LOG_WINDOW: Duration = Duration::from_secs(10);
const LOG_BURST: u32 = 20;

#[derive(Debug, Default)]
struct LineBudget {
    window_start: Option<Instant>,
    used: u32,
    held: u64,
}

impl LineBudget {
    /// Whether a line may be written at `now`, and how many lines were held back in the window
    /// that just ended (to report first).
    fn allow(&mut self, now: Instant) -> (bool, u64) {
        let mut held = 0;
        if self
            .window_start
            .is_none_or(|start| now.duration_since(start) >= LOG_WINDOW)
        {
            self.window_start = Some(now);
            self.used = 0;
            held = std::mem::take(&mut self.held);
        }
        if self.used < LOG_BURST {
            self.used += 1;
            (true, held)
        } else {
            self.held += 1;
            (false, held)
        }
    }
}

impl Shared {
    /// Whether a lifecycle line may be written now (reporting lines held back before).
    fn may_log(&self) -> bool {
        let (allowed, held) = self.log_budget.lock().allow(Instant::now());
        if held > 0 {
            log::info!(
                "{held} more stream consumer joins and departures were not logged in {LOG_WINDOW:?} \
                 (see upbit_stream_consumers and upbit_stream_disconnects_total)"
            );
        }
        allowed
    }
}

struct Registry {
    consumers: Vec<Arc<Consumer>>,
    /// The last link event: the first message of every new consumer.
    link: Event,
    stopping: bool,
}

/// Why a consumer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    #[error("{max} live-stream consumers are connected, the most allowed (stream.max_consumers); try again later")]
    Full { max: usize },
    #[error("{max} live-stream consumers are connected from this address, the most allowed (stream.max_consumers_per_address); close one or try again later")]
    AddressFull { max: usize },
    #[error("the service is stopping")]
    Stopping,
}

impl Hub {
    /// A hub for at most `max_consumers`, each keeping at most `trade_queue` trades waiting.
    pub fn new(max_consumers: usize, trade_queue: usize, metrics: StreamMetrics) -> Self {
        Self {
            shared: Arc::new(Shared {
                registry: Mutex::new(Registry {
                    consumers: Vec::new(),
                    link: Event::link_starting(),
                    stopping: false,
                }),
                count: AtomicUsize::new(0),
                interest: AtomicU32::new(0),
                next_id: AtomicU64::new(1),
                max_consumers,
                max_per_address: usize::MAX,
                trade_queue,
                metrics,
                log_budget: Mutex::new(LineBudget::default()),
            }),
        }
    }

    /// Limits the consumers from one remote address (`stream.max_consumers_per_address`).
    /// Call before sharing the hub.
    pub fn with_max_per_address(mut self, max: usize) -> Self {
        let shared = Arc::get_mut(&mut self.shared);
        debug_assert!(
            shared.is_some(),
            "set the per-address limit before sharing the hub"
        );
        if let Some(shared) = shared {
            shared.max_per_address = max;
        }
        self
    }

    /// Registers a consumer; its first message is the current link state.
    pub fn join(
        &self,
        transport: Transport,
        filter: Filter,
        peer: String,
    ) -> Result<ConsumerHandle, JoinError> {
        let shared = &self.shared;
        let mut registry = shared.registry.lock();
        if registry.stopping {
            return Err(JoinError::Stopping);
        }
        if registry.consumers.len() >= shared.max_consumers {
            return Err(JoinError::Full {
                max: shared.max_consumers,
            });
        }
        let address = address_of(&peer);
        let from_address = registry
            .consumers
            .iter()
            .filter(|c| c.address == address)
            .count();
        if from_address >= shared.max_per_address {
            return Err(JoinError::AddressFull {
                max: shared.max_per_address,
            });
        }
        let consumer = Arc::new(Consumer::new(
            shared.next_id.fetch_add(1, Ordering::Relaxed),
            transport,
            peer,
            filter,
            &registry.link,
            shared.trade_queue,
            &shared.metrics,
        ));
        registry.consumers.push(consumer.clone());
        self.recount(&registry);
        drop(registry);
        consumer.gauge.inc();
        if shared.may_log() {
            log::info!(
                "stream consumer joined id={} transport={} peer={} {}",
                consumer.id,
                transport.label(),
                consumer.peer,
                consumer.filter.describe()
            );
        }
        Ok(ConsumerHandle::new(self.clone(), consumer))
    }

    /// Consumers connected now.
    pub fn consumers(&self) -> usize {
        self.shared.count.load(Ordering::Relaxed)
    }

    /// Appends a batch to every interested consumer's queue; never waits for a consumer.
    pub fn publish(&self, events: &[Event]) {
        let shared = &self.shared;
        let has_link = events.iter().any(|e| e.kind == EventKind::Link);
        if events.is_empty() || (shared.count.load(Ordering::Relaxed) == 0 && !has_link) {
            return;
        }
        let mut registry = shared.registry.lock();
        if let Some(link) = events.iter().rev().find(|e| e.kind == EventKind::Link) {
            registry.link = link.clone();
        }
        let (mut wake, mut slow, mut conflated) = (Vec::<Waker>::new(), Vec::new(), 0);
        for consumer in &registry.consumers {
            let offered = consumer.offer(events, shared.trade_queue);
            conflated += offered.conflated;
            if let Some(depth) = offered.depth {
                shared.metrics.queue_depth.observe(depth as f64);
            }
            if offered.slow {
                slow.push(consumer.clone());
            }
            wake.extend(offered.waker);
        }
        if !slow.is_empty() {
            registry
                .consumers
                .retain(|c| !slow.iter().any(|s| s.id == c.id));
            self.recount(&registry);
        }
        drop(registry);
        wake.into_iter().for_each(Waker::wake);
        if conflated > 0 {
            shared.metrics.conflated.inc_by(conflated);
        }
        for consumer in slow {
            consumer.notify_ended();
            self.left(&consumer, LeaveReason::Slow);
        }
    }

    /// Ends every stream with reason `shutdown` and refuses new consumers.
    pub fn shutdown(&self) {
        let mut registry = self.shared.registry.lock();
        registry.stopping = true;
        let all = std::mem::take(&mut registry.consumers);
        self.recount(&registry);
        drop(registry);
        for consumer in all {
            consumer.finish(LeaveReason::Shutdown, "the service is stopping");
            self.left(&consumer, LeaveReason::Shutdown);
        }
    }

    /// Removes a consumer if still registered (the first reason wins) and ends its stream.
    pub(super) fn leave(&self, consumer: &Arc<Consumer>, reason: LeaveReason, message: &str) {
        let mut registry = self.shared.registry.lock();
        let Some(index) = registry.consumers.iter().position(|c| c.id == consumer.id) else {
            return;
        };
        registry.consumers.swap_remove(index);
        self.recount(&registry);
        drop(registry);
        consumer.finish(reason, message);
        self.left(consumer, reason);
    }

    /// Counts and logs a departure (the consumer is already out of the registry).
    fn left(&self, consumer: &Consumer, reason: LeaveReason) {
        consumer.gauge.dec();
        self.shared
            .metrics
            .disconnects
            .with_label_values(&[reason.as_str()])
            .inc();
        if !self.shared.may_log() {
            return;
        }
        let sent = consumer.sent();
        let line = format!(
            "stream consumer left id={} transport={} peer={} reason={} sent={sent}",
            consumer.id,
            consumer.transport.label(),
            consumer.peer,
            reason.as_str()
        );
        if reason == LeaveReason::Slow {
            log::warn!(
                "{line} (more than {} trades waiting)",
                self.shared.trade_queue
            );
        } else {
            log::info!("{line}");
        }
    }

    fn recount(&self, registry: &Registry) {
        let interest = registry
            .consumers
            .iter()
            .fold(0, |mask, c| mask | c.filter.type_mask());
        self.shared.interest.store(interest, Ordering::Relaxed);
        self.shared
            .count
            .store(registry.consumers.len(), Ordering::Relaxed);
    }

    /// Whether some consumer's filter takes this type (the publisher encodes nothing else).
    pub(super) fn wants(&self, data_type: DataType) -> bool {
        self.shared.interest.load(Ordering::Relaxed) & type_bit(data_type) != 0
    }
}

#[cfg(test)]
mod tests {
    use std::task::{Context, Poll};
    use std::time::SystemTime;

    use super::*;
    use crate::messages::{LinkChange, LinkChanged};
    use crate::stream::{Next, Publisher};
    use crate::upbit::model::Trade;
    use crate::upbit::types::Side;
    use crate::upbit::Message;

    fn hub(max: usize, trades: usize) -> (Hub, StreamMetrics) {
        let metrics = StreamMetrics::register(&prometheus::Registry::new()).unwrap();
        (Hub::new(max, trades, metrics.clone()), metrics)
    }

    fn trade(code: &str, price: f64) -> Message {
        Message::Trade(Trade::bare(code, price, 1.0, Side::Bid))
    }

    /// What is waiting for a consumer, without blocking.
    fn waiting(handle: &ConsumerHandle) -> Vec<Next> {
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut out = Vec::new();
        while let Poll::Ready(next) = handle.consumer().poll_next(&mut cx) {
            let ended = matches!(next, Next::Ended(_));
            out.push(next);
            if ended {
                break;
            }
        }
        out
    }

    fn names(nexts: &[Next]) -> Vec<String> {
        nexts
            .iter()
            .map(|n| match n {
                Next::Message(m) => m.name.to_owned(),
                Next::Ended(e) => format!("ended:{}", e.reason.as_str()),
            })
            .collect()
    }

    #[test]
    fn the_first_message_is_the_link_state_then_what_the_filter_lets_through() {
        let (hub, _) = hub(10, 10);
        let publisher = Publisher::new(hub.clone());
        assert!(
            publisher
                .encode(&trade("KRW-BTC", 1.0), SystemTime::now())
                .is_none(),
            "nothing is encoded while nobody listens"
        );
        publisher.link_changed(&LinkChanged {
            connection: 0,
            change: LinkChange::Connected,
            at: SystemTime::now(),
        });
        let btc = hub
            .join(
                Transport::Sse,
                Filter::parse(None, Some("KRW-BTC"), 10).unwrap(),
                "peer".into(),
            )
            .unwrap();
        let tickers = hub
            .join(
                Transport::WebSocket,
                Filter::parse(Some("ticker"), None, 10).unwrap(),
                "peer".into(),
            )
            .unwrap();
        let events: Vec<Event> = [trade("KRW-BTC", 1.0), trade("KRW-ETH", 2.0)]
            .iter()
            .filter_map(|m| publisher.encode(m, SystemTime::now()))
            .collect();
        assert_eq!(events.len(), 2);
        publisher.publish(&events);
        let got = waiting(&btc);
        assert_eq!(names(&got), ["link", "trade"]);
        let Next::Message(link) = &got[0] else {
            panic!()
        };
        assert!(link.json().contains("connected"));
        assert_eq!(names(&waiting(&tickers)), ["link"]);
        assert_eq!(hub.consumers(), 2);
        drop(btc);
        assert_eq!(hub.consumers(), 1);
    }

    #[test]
    fn a_consumer_over_its_trade_limit_is_ended_as_slow_and_the_others_go_on() {
        let (hub, metrics) = hub(10, 3);
        let publisher = Publisher::new(hub.clone());
        let stalled = hub
            .join(Transport::Sse, Filter::everything(), "a".into())
            .unwrap();
        let reader = hub
            .join(Transport::WebSocket, Filter::everything(), "b".into())
            .unwrap();
        for i in 0..5 {
            let event = publisher
                .encode(&trade("KRW-BTC", i as f64), SystemTime::now())
                .unwrap();
            publisher.publish(&[event]);
            assert_eq!(waiting(&reader).len(), if i == 0 { 2 } else { 1 });
        }
        let got = waiting(&stalled);
        assert_eq!(
            names(&got),
            ["ended:slow"],
            "the backlog is dropped at once"
        );
        assert_eq!(hub.consumers(), 1);
        assert_eq!(metrics.disconnects.with_label_values(&["slow"]).get(), 1);
        assert_eq!(metrics.consumers.with_label_values(&["sse"]).get(), 0);
        assert_eq!(metrics.consumers.with_label_values(&["ws"]).get(), 1);
        drop(stalled);
        assert_eq!(
            metrics.disconnects.with_label_values(&["client"]).get(),
            0,
            "one departure, counted once"
        );
    }

    #[test]
    fn the_cap_refuses_and_shutdown_ends_everyone() {
        let (hub, metrics) = hub(2, 3);
        let a = hub
            .join(Transport::Sse, Filter::everything(), "a".into())
            .unwrap();
        let _b = hub
            .join(Transport::Sse, Filter::everything(), "b".into())
            .unwrap();
        let refused = hub.join(Transport::Sse, Filter::everything(), "c".into());
        assert!(matches!(refused, Err(JoinError::Full { max: 2 })));
        hub.shutdown();
        assert_eq!(names(&waiting(&a)), ["ended:shutdown"]);
        assert_eq!(
            metrics.disconnects.with_label_values(&["shutdown"]).get(),
            2
        );
        assert!(matches!(
            hub.join(Transport::Sse, Filter::everything(), "d".into()),
            Err(JoinError::Stopping)
        ));
        a.end(LeaveReason::Timeout, "late");
        assert_eq!(metrics.disconnects.with_label_values(&["timeout"]).get(), 0);
    }

    #[test]
    fn one_address_gets_at_most_its_share() {
        let (hub, _) = hub(10, 3);
        let hub = hub.with_max_per_address(2);
        let join = |peer: &str| hub.join(Transport::Sse, Filter::everything(), peer.into());
        let first = join("10.0.0.1:1000").unwrap();
        let _second = join("10.0.0.1:1001").unwrap();
        assert!(matches!(
            join("10.0.0.1:1002"),
            Err(JoinError::AddressFull { max: 2 })
        ));
        let _other = join("10.0.0.2:1000").expect("another address is not affected");
        drop(first);
        join("10.0.0.1:1003").expect("a slot freed");
    }

    #[test]
    fn lifecycle_lines_are_budgeted_per_window() {
        let mut budget = LineBudget::default();
        let start = Instant::now();
        let allowed = (0..25).filter(|_| budget.allow(start).0).count();
        assert_eq!(allowed, LOG_BURST as usize, "a burst, then held back");
        assert_eq!(budget.allow(start + LOG_WINDOW / 2), (false, 0));
        assert_eq!(
            budget.allow(start + LOG_WINDOW),
            (true, 6),
            "a new window reports what the last one held back"
        );
        assert_eq!(budget.allow(start + LOG_WINDOW * 3), (true, 0));
    }
}
