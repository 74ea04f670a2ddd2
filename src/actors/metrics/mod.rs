//! MetricsActor: decoded market messages in, Prometheus series out.
//!
//! Holds the per-market state: pre-resolved series handles for every subscribed (type, code),
//! so the hot path does one map lookup per message and no label hashing, and the latest message
//! of each kind per code (for the data API). Series exist only for subscribed pairs: created at
//! zero when a pair is added, removed when it is dropped, so `/metrics` never grows on input.

use std::collections::HashMap;
use std::time::SystemTime;

use actix::{Actor, Context, Handler};
use prometheus::{Counter, Gauge, Histogram, IntCounter, IntGauge};

use super::queue::StageQueue;
use crate::clock::{date_to_unix_seconds, unix_seconds};
use crate::messages::{
    FramesDecoded, GetLastMessageTimes, GetMarket, GetMarkets, LinkChanged, MarketListFetched,
    MarketView, SubscriptionChanged,
};
use crate::stream::Publisher;
use crate::telemetry::events::MessagesDropped;
use crate::telemetry::{LogThrottle, Metrics};
use crate::upbit::types::{market_code, Side};
use crate::upbit::{DataType, Message, Subscription};
use crate::view::LatestMarket;
use market_events::MarketEvents;

mod market_events;

/// Series of one subscribed (type, code) pair.
struct PairSeries {
    received: IntCounter,
    last_received: Gauge,
}

/// Per-code value series, created on first data (a price of 0 before any trade would lie).
#[derive(Default)]
struct CodeSeries {
    pairs: HashMap<DataType, PairSeries>,
    trade_price: Option<Gauge>,
    ticker: Option<TickerSeries>,
    trades: Option<[(IntCounter, Counter); 2]>,
    orderbook: Option<[Gauge; 4]>,
    candles: HashMap<DataType, Gauge>,
    market_state: Option<(String, IntGauge)>,
    latest: LatestMarket,
}

struct TickerSeries {
    signed_change_rate: Gauge,
    acc_trade_volume_24h: Gauge,
    acc_trade_price_24h: Gauge,
    /// Created when a ticker first carries `is_trading_suspended` (deprecated by Upbit).
    trading_suspended: Option<IntGauge>,
    delisting: Option<Gauge>,
}

pub struct MetricsActor {
    metrics: Metrics,
    subscription: Subscription,
    codes: HashMap<String, CodeSeries>,
    sizes: HashMap<DataType, Histogram>,
    delays: HashMap<DataType, Histogram>,
    /// Messages waiting for this actor (released here).
    inbound: StageQueue,
    drop_log: LogThrottle,
    /// The live stream's fan-out: every recorded message and link event, in order.
    stream: Publisher,
    /// Warning, caution and info series of the subscribed codes.
    events: MarketEvents,
}

impl MetricsActor {
    pub fn new(metrics: Metrics, subscription: Subscription, inbound: StageQueue) -> Self {
        let mut actor = Self {
            metrics,
            subscription: Subscription::default(),
            codes: HashMap::new(),
            sizes: HashMap::new(),
            delays: HashMap::new(),
            inbound,
            drop_log: LogThrottle::new(std::time::Duration::from_secs(10)),
            stream: Publisher::disabled(),
            events: MarketEvents::default(),
        };
        actor.apply_subscription(subscription);
        actor
    }

    /// Hands every recorded message and every link event to the live stream as well.
    pub fn with_stream(mut self, stream: Publisher) -> Self {
        self.stream = stream;
        self
    }

    /// Creates series for added pairs and removes those of dropped pairs.
    fn apply_subscription(&mut self, next: Subscription) {
        let removed: Vec<(DataType, String)> = self
            .subscription
            .pairs()
            .filter(|(t, c)| !next.contains(*t, c))
            .map(|(t, c)| (t, c.to_owned()))
            .collect();
        for (data_type, code) in removed {
            self.remove_pair(data_type, &code);
        }
        let m = &self.metrics;
        for (data_type, code) in next.pairs() {
            let series = self.codes.entry(code.to_owned()).or_default();
            series.pairs.entry(data_type).or_insert_with(|| PairSeries {
                received: m
                    .received_messages
                    .with_label_values(&[data_type.as_str(), code]),
                last_received: m
                    .last_message_timestamp
                    .with_label_values(&[data_type.as_str(), code]),
            });
        }
        // Histograms per type exist from the first subscription of the type on, and stay: their
        // history is worth keeping and there are at most 12 types.
        for (data_type, _) in next.entries() {
            let label = [data_type.as_str()];
            self.sizes
                .entry(data_type)
                .or_insert_with(|| m.message_size.with_label_values(&label));
            self.delays
                .entry(data_type)
                .or_insert_with(|| m.exchange_delay.with_label_values(&label));
        }
        for data_type in DataType::ALL {
            let count = next
                .entries()
                .find(|(t, _)| *t == data_type)
                .map_or(0, |(_, c)| c.len());
            m.subscribed_codes
                .with_label_values(&[data_type.as_str()])
                .set(count as i64);
        }
        self.events.set_codes(m, &next.codes());
        self.subscription = next;
    }

    fn remove_pair(&mut self, data_type: DataType, code: &str) {
        let m = &self.metrics;
        let t = data_type.as_str();
        let _ = m.received_messages.remove_label_values(&[t, code]);
        let _ = m.last_message_timestamp.remove_label_values(&[t, code]);
        let Some(series) = self.codes.get_mut(code) else {
            return;
        };
        series.pairs.remove(&data_type);
        match data_type {
            DataType::Ticker => {
                if series.ticker.take().is_some() {
                    for vec in [
                        &m.signed_change_rate,
                        &m.acc_trade_volume_24h,
                        &m.acc_trade_price_24h,
                    ] {
                        let _ = vec.remove_label_values(&[code]);
                    }
                    let _ = m.trading_suspended.remove_label_values(&[code]);
                    let _ = m.delisting_timestamp.remove_label_values(&[code]);
                }
                self.events.ticker_warning(m, code, None);
                if let Some((state, _)) = series.market_state.take() {
                    let _ = m.market_state.remove_label_values(&[code, &state]);
                }
            }
            DataType::Trade => {
                if series.trades.take().is_some() {
                    for side in ["ask", "bid"] {
                        let _ = m.trades.remove_label_values(&[code, side]);
                        let _ = m.trade_volume.remove_label_values(&[code, side]);
                    }
                }
            }
            DataType::Orderbook => {
                if series.orderbook.take().is_some() {
                    for vec in [
                        &m.best_ask_price,
                        &m.best_bid_price,
                        &m.total_ask_size,
                        &m.total_bid_size,
                    ] {
                        let _ = vec.remove_label_values(&[code]);
                    }
                }
            }
            DataType::Candle(_) => {
                if series.candles.remove(&data_type).is_some() {
                    let _ = m.candle_close_price.remove_label_values(&[t, code]);
                }
            }
        }
        let price_source_left = series.pairs.contains_key(&DataType::Ticker)
            || series.pairs.contains_key(&DataType::Trade);
        if !price_source_left && series.trade_price.take().is_some() {
            let _ = m.trade_price.remove_label_values(&[code]);
        }
        if series.pairs.is_empty() {
            self.codes.remove(code);
        }
    }

    /// Updates the series of one message; false if its (type, code) is not subscribed.
    fn record(
        &mut self,
        mut message: Message,
        received_at: SystemTime,
        received_unix: f64,
    ) -> bool {
        // The code is taken out of the message and put back before the message is stored, so
        // the lookup key needs no allocation.
        let (data_type, code) = match &mut message {
            Message::Ticker(t) => (DataType::Ticker, std::mem::take(&mut t.code)),
            Message::Trade(t) => (DataType::Trade, std::mem::take(&mut t.code)),
            Message::Orderbook(o) => (DataType::Orderbook, std::mem::take(&mut o.code)),
            Message::Candle(c) => (DataType::Candle(c.interval), std::mem::take(&mut c.code)),
            _ => return true,
        };
        let key = market_code(&code);
        let m = &self.metrics;
        let Some(series) = self.codes.get_mut(key) else {
            return false;
        };
        let Some(pair) = series.pairs.get(&data_type) else {
            return false;
        };
        pair.received.inc();
        pair.last_received.set(received_unix);
        if let (Some(ts), Some(histogram)) = (message.timestamp_ms(), self.delays.get(&data_type)) {
            histogram.observe((received_unix - ts as f64 / 1000.0).max(0.0));
        }
        match message {
            Message::Ticker(mut t) => {
                price_gauge(series, m, key).set(t.trade_price);
                let ts = series.ticker.get_or_insert_with(|| TickerSeries {
                    signed_change_rate: m.signed_change_rate.with_label_values(&[key]),
                    acc_trade_volume_24h: m.acc_trade_volume_24h.with_label_values(&[key]),
                    acc_trade_price_24h: m.acc_trade_price_24h.with_label_values(&[key]),
                    trading_suspended: None,
                    delisting: None,
                });
                set_some(&ts.signed_change_rate, t.signed_change_rate);
                set_some(&ts.acc_trade_volume_24h, t.acc_trade_volume_24h);
                set_some(&ts.acc_trade_price_24h, t.acc_trade_price_24h);
                match t.is_trading_suspended {
                    Some(suspended) => ts
                        .trading_suspended
                        .get_or_insert_with(|| m.trading_suspended.with_label_values(&[key]))
                        .set(i64::from(suspended)),
                    None => {
                        if ts.trading_suspended.take().is_some() {
                            let _ = m.trading_suspended.remove_label_values(&[key]);
                        }
                    }
                }
                self.events
                    .ticker_warning(m, key, t.market_warning.as_deref());
                match t.delisting_date.as_deref().and_then(date_to_unix_seconds) {
                    Some(at) => ts
                        .delisting
                        .get_or_insert_with(|| m.delisting_timestamp.with_label_values(&[key]))
                        .set(at),
                    None => {
                        if ts.delisting.take().is_some() {
                            let _ = m.delisting_timestamp.remove_label_values(&[key]);
                        }
                    }
                }
                if let Some(state) = t.market_state.as_deref() {
                    update_market_state(series, m, key, state);
                }
                t.code = code;
                series.latest.ticker = Some((t, received_at));
            }
            Message::Trade(mut t) => {
                price_gauge(series, m, key).set(t.trade_price);
                let sides = series.trades.get_or_insert_with(|| {
                    ["ask", "bid"].map(|side| {
                        (
                            m.trades.with_label_values(&[key, side]),
                            m.trade_volume.with_label_values(&[key, side]),
                        )
                    })
                });
                let (count, volume) = &sides[usize::from(t.ask_bid == Side::Bid)];
                count.inc();
                if t.trade_volume.is_finite() && t.trade_volume >= 0.0 {
                    volume.inc_by(t.trade_volume);
                }
                t.code = code;
                series.latest.trade = Some((t, received_at));
            }
            Message::Orderbook(mut o) => {
                let [ask, bid, total_ask, total_bid] = series.orderbook.get_or_insert_with(|| {
                    [
                        &m.best_ask_price,
                        &m.best_bid_price,
                        &m.total_ask_size,
                        &m.total_bid_size,
                    ]
                    .map(|vec| vec.with_label_values(&[key]))
                });
                if let Some(best) = o.best() {
                    ask.set(best.ask_price);
                    bid.set(best.bid_price);
                }
                total_ask.set(o.total_ask_size);
                total_bid.set(o.total_bid_size);
                o.code = code;
                series.latest.orderbook = Some((o, received_at));
            }
            Message::Candle(mut c) => {
                series
                    .candles
                    .entry(data_type)
                    .or_insert_with(|| {
                        m.candle_close_price
                            .with_label_values(&[data_type.as_str(), key])
                    })
                    .set(c.trade_price);
                c.code = code;
                series.latest.candle = Some((c, received_at));
            }
            _ => {}
        }
        true
    }

    /// The latest data of one code, if subscribed.
    pub fn latest(&self, code: &str) -> Option<&LatestMarket> {
        self.codes.get(code).map(|series| &series.latest)
    }
}

fn price_gauge<'a>(series: &'a mut CodeSeries, m: &Metrics, code: &str) -> &'a Gauge {
    series
        .trade_price
        .get_or_insert_with(|| m.trade_price.with_label_values(&[code]))
}

fn set_some(gauge: &Gauge, value: Option<f64>) {
    if let Some(v) = value {
        gauge.set(v);
    }
}

fn update_market_state(series: &mut CodeSeries, m: &Metrics, code: &str, state: &str) {
    if series
        .market_state
        .as_ref()
        .is_some_and(|(s, _)| s == state)
    {
        return;
    }
    // Bounded: Upbit's documented states, anything else reported as OTHER.
    let label = match state {
        "PREVIEW" | "ACTIVE" | "DELISTED" => state,
        _ => "OTHER",
    };
    if let Some((old, _)) = series.market_state.take() {
        let _ = m.market_state.remove_label_values(&[code, &old]);
    }
    let gauge = m.market_state.with_label_values(&[code, label]);
    gauge.set(1);
    series.market_state = Some((label.to_owned(), gauge));
}

impl Actor for MetricsActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Bounded in messages by the stage queue; envelopes hold at least one message each.
        ctx.set_mailbox_capacity(self.inbound.capacity());
    }
}

impl Handler<FramesDecoded> for MetricsActor {
    type Result = ();

    fn handle(&mut self, batch: FramesDecoded, _: &mut Self::Context) {
        let received_unix = unix_seconds(batch.received_at);
        for (data_type, bytes) in &batch.frame_sizes {
            if let Some(histogram) = self.sizes.get(data_type) {
                histogram.observe(*bytes as f64);
            }
        }
        let count = batch.messages.len();
        let mut unsubscribed = 0;
        let mut live = Vec::new();
        for message in batch.messages {
            // Encoded before `record` takes the message; only when a consumer wants the type.
            let event = self.stream.encode(&message, batch.received_at);
            if self.record(message, batch.received_at, received_unix) {
                live.extend(event);
            } else {
                unsubscribed += 1;
            }
        }
        self.stream.publish(&live);
        self.inbound.release(count);
        if unsubscribed > 0 {
            // Messages for pairs no longer (or not yet) subscribed: expected briefly around a
            // subscription change; counted, never turned into new series.
            let log = self.drop_log.allow();
            MessagesDropped {
                stage: "metrics",
                reason: "unsubscribed",
                count: unsubscribed,
                log,
            }
            .emit(&self.metrics);
        }
        // One observation per frame: every frame of a batch was read and finished together.
        let latency = batch.read_at.elapsed().as_secs_f64();
        for _ in 0..batch.frame_sizes.len() {
            self.metrics.pipeline_latency.observe(latency);
        }
    }
}

impl Handler<LinkChanged> for MetricsActor {
    type Result = ();

    fn handle(&mut self, event: LinkChanged, _: &mut Self::Context) {
        self.stream.link_changed(&event);
    }
}

impl Handler<SubscriptionChanged> for MetricsActor {
    type Result = ();

    fn handle(&mut self, change: SubscriptionChanged, _: &mut Self::Context) {
        self.apply_subscription(change.subscription);
    }
}

impl Handler<MarketListFetched> for MetricsActor {
    type Result = ();

    fn handle(&mut self, fetched: MarketListFetched, _: &mut Self::Context) {
        self.events.set_list(&self.metrics, fetched.markets);
    }
}

impl Handler<GetMarkets> for MetricsActor {
    type Result = actix::MessageResult<GetMarkets>;

    fn handle(&mut self, _: GetMarkets, _: &mut Self::Context) -> Self::Result {
        let mut markets: Vec<(String, LatestMarket)> = self
            .codes
            .iter()
            .map(|(code, series)| (code.clone(), series.latest.clone()))
            .collect();
        markets.sort_by(|a, b| a.0.cmp(&b.0));
        actix::MessageResult(markets)
    }
}

impl Handler<GetMarket> for MetricsActor {
    type Result = Option<MarketView>;

    fn handle(&mut self, query: GetMarket, _: &mut Self::Context) -> Self::Result {
        Some(MarketView {
            latest: self.latest(&query.code).cloned()?,
            listing: self.events.listing(&query.code).cloned(),
        })
    }
}

impl Handler<GetLastMessageTimes> for MetricsActor {
    type Result = actix::MessageResult<GetLastMessageTimes>;

    fn handle(&mut self, _: GetLastMessageTimes, _: &mut Self::Context) -> Self::Result {
        let mut last = std::collections::BTreeMap::new();
        for series in self.codes.values() {
            for (data_type, pair) in &series.pairs {
                let at = pair.last_received.get();
                if at > 0.0 {
                    let entry = last.entry(data_type.as_str().to_owned()).or_insert(at);
                    *entry = f64::max(*entry, at);
                }
            }
        }
        actix::MessageResult(last)
    }
}
