//! Every metric of the service, registered here and only here.
//!
//! Names follow Prometheus conventions: prefix `upbit_`, base units, `_total` on counters.
//! Label values are bounded: codes come from the subscription, reasons are fixed codes.
//!
//! Longer than 400 lines because it is the list itself: one registration per metric, in one
//! place, so a name or a help text is written once and a reviewer sees every series together.
//! It holds no logic beyond that list and the queue-depth collector.

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use super::family::{CounterFamily, Encode, GaugeFamily, IntCounterFamily, IntGaugeFamily};
use crate::subscription::Shard;
use crate::upbit::DecodeError;

/// Disconnection reasons (`upbit_disconnections_total{reason}`).
pub const DISCONNECT_REASONS: [&str; 5] = [
    "closed_by_server",
    "idle_timeout",
    "error",
    "control",
    "shutdown",
];

/// Connection failure reasons (`upbit_connect_failures_total{reason}`).
pub const CONNECT_FAILURE_REASONS: [&str; 7] = [
    "dns", "refused", "timeout", "tls", "http_429", "http_418", "other",
];

/// Pipeline drop points (`upbit_dropped_messages_total{stage,reason}`).
pub const DROP_POINTS: [(&str, &str); 4] = [
    ("decoder", "queue_full"),
    ("decoder", "stopped"),
    ("metrics", "queue_full"),
    ("metrics", "unsubscribed"),
];

/// Upbit error names that get their own label value; anything else counts as `other`.
pub const SERVER_ERROR_NAMES: [&str; 8] = [
    "INVALID_AUTH",
    "WRONG_FORMAT",
    "NO_TICKET",
    "NO_TYPE",
    "NO_CODES",
    "INVALID_PARAM",
    "TOO_MANY_REQUESTS",
    "other",
];

/// Frame size buckets, bytes: a SIMPLE trade is ~200 B, a 30-unit DEFAULT orderbook ~4 KiB.
const SIZE_BUCKETS: [f64; 10] = [
    128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0, 65536.0, 1048576.0,
];

/// Exchange-to-receive delay buckets, seconds.
const DELAY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
];

/// Socket-to-metric latency: tens of microseconds when healthy, up to a second when backed up.
const PIPELINE_BUCKETS: [f64; 14] = [
    0.000_01, 0.000_02, 0.000_05, 0.000_1, 0.000_2, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05,
    0.1, 1.0,
];

/// The collectors, shared by the actors (all are cheap atomic handles).
#[derive(Clone)]
pub struct Metrics {
    pub connections: IntCounter,
    pub disconnections: IntCounterVec,
    pub connect_failures: IntCounterVec,
    pub connection_attempts: IntCounter,
    pub connected: IntGauge,
    pub reconnect_backoff: Gauge,
    pub subscription_requests: IntCounter,
    pub subscribed_codes: IntGaugeVec,
    pub received_messages: IntCounterFamily,
    pub received_frames: IntCounter,
    pub received_bytes: IntCounter,
    pub message_size: HistogramVec,
    pub decode_errors: IntCounterVec,
    pub decode_field_errors: IntCounterVec,
    pub server_errors: IntCounterVec,
    pub pings_sent: IntCounter,
    pub pongs_received: IntCounter,
    pub last_message_timestamp: GaugeFamily,
    pub exchange_delay: HistogramVec,
    pub pipeline_latency: prometheus::Histogram,
    pub trade_price: GaugeFamily,
    pub signed_change_rate: GaugeFamily,
    pub acc_trade_volume_24h: GaugeFamily,
    pub acc_trade_price_24h: GaugeFamily,
    pub market_state: IntGaugeFamily,
    pub trading_suspended: IntGaugeFamily,
    pub trades: IntCounterFamily,
    pub trade_volume: CounterFamily,
    pub best_ask_price: GaugeFamily,
    pub best_bid_price: GaugeFamily,
    pub total_ask_size: GaugeFamily,
    pub total_bid_size: GaugeFamily,
    pub candle_close_price: GaugeFamily,
    pub mid_price: GaugeFamily,
    pub spread_price: GaugeFamily,
    pub spread_ratio: GaugeFamily,
    pub orderbook_imbalance: GaugeFamily,
    pub orderbook_depth: GaugeFamily,
    pub orderbook_depth_complete: IntGaugeFamily,
    pub trade_notional: CounterFamily,
    pub candle_open_price: GaugeFamily,
    pub candle_high_price: GaugeFamily,
    pub candle_low_price: GaugeFamily,
    pub candle_volume: GaugeFamily,
    pub candle_start_timestamp: GaugeFamily,
    pub market_listed_timestamp: GaugeFamily,
    pub dropped_messages: IntCounterVec,
    pub build_info: IntGaugeVec,
    pub market_warning: IntGaugeFamily,
    pub market_caution: IntGaugeFamily,
    pub market_info: IntGaugeFamily,
    pub delisting_timestamp: GaugeFamily,
    pub connection_up: IntGaugeVec,
    pub connection_codes: IntGaugeVec,
    pub market_list_fetches: IntCounterVec,
    pub market_list_changes: IntCounterVec,
    pub market_list_codes: IntGauge,
    pub shard_info: IntGaugeVec,
    pub shard_codes: IntGaugeVec,
    /// Connections in use (indexes 0..n): `upbit_connected` is 1 when all of them are up.
    active_links: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help)
}

impl Metrics {
    /// Creates every collector, registers it, and creates the label-less and fixed-label series
    /// at zero so `rate()` and alerts work before the first event.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let m = Self {
            connections: IntCounter::with_opts(opts("upbit_connections_total", "Successful WebSocket handshakes with Upbit."))?,
            disconnections: IntCounterVec::new(opts("upbit_disconnections_total", "Connections lost or closed, by reason."), &["reason"])?,
            connect_failures: IntCounterVec::new(opts("upbit_connect_failures_total", "Connection attempts that failed before the handshake completed, by reason."), &["reason"])?,
            connection_attempts: IntCounter::with_opts(opts("upbit_connection_attempts_total", "Connection attempts started."))?,
            connected: IntGauge::with_opts(opts("upbit_connected", "1 while connected and subscribed, else 0."))?,
            reconnect_backoff: Gauge::with_opts(opts("upbit_reconnect_backoff_seconds", "Delay before the current or next reconnect attempt; 0 when connected."))?,
            subscription_requests: IntCounter::with_opts(opts("upbit_subscription_requests_total", "Subscription and LIST_SUBSCRIPTIONS messages sent to Upbit."))?,
            subscribed_codes: IntGaugeVec::new(opts("upbit_subscribed_codes", "Codes in the desired subscription, by type."), &["type"])?,
            received_messages: IntCounterFamily::new("upbit_received_messages_total", "Decoded market messages, by type and code.", &["type", "code"]),
            received_frames: IntCounter::with_opts(opts("upbit_received_frames_total", "WebSocket data frames received (binary and text)."))?,
            received_bytes: IntCounter::with_opts(opts("upbit_received_bytes_total", "Payload bytes of the data frames received."))?,
            message_size: HistogramVec::new(HistogramOpts::new("upbit_received_message_size_bytes", "Size of data frames, by the type of their (first) message.").buckets(SIZE_BUCKETS.to_vec()), &["type"])?,
            decode_errors: IntCounterVec::new(opts("upbit_decode_errors_total", "Frames or list elements that could not be decoded, by reason."), &["reason"])?,
            decode_field_errors: IntCounterVec::new(opts("upbit_decode_field_errors_total", "Optional message fields dropped because their value had an unreadable shape (the message itself was kept), by field name as sent."), &["field"])?,
            server_errors: IntCounterVec::new(opts("upbit_server_errors_total", "Error frames sent by Upbit, by error name."), &["name"])?,
            pings_sent: IntCounter::with_opts(opts("upbit_pings_sent_total", "WebSocket pings sent."))?,
            pongs_received: IntCounter::with_opts(opts("upbit_pongs_received_total", "WebSocket pongs received."))?,
            last_message_timestamp: GaugeFamily::new("upbit_last_message_timestamp_seconds", "Unix time at which the last message of this type and code was received.", &["type", "code"]),
            exchange_delay: HistogramVec::new(HistogramOpts::new("upbit_exchange_delay_seconds", "Receive time minus the message's exchange timestamp.").buckets(DELAY_BUCKETS.to_vec()), &["type"])?,
            pipeline_latency: prometheus::Histogram::with_opts(HistogramOpts::new("upbit_pipeline_latency_seconds", "Time from reading a frame off the socket to its metrics being updated.").buckets(PIPELINE_BUCKETS.to_vec()))?,
            trade_price: GaugeFamily::new("upbit_trade_price", "Last traded price (from tickers and trades).", &["code"]),
            signed_change_rate: GaugeFamily::new("upbit_signed_change_rate", "Change against the previous close, as a signed ratio (ticker).", &["code"]),
            acc_trade_volume_24h: GaugeFamily::new("upbit_acc_trade_volume_24h", "Traded volume over the last 24 h (ticker).", &["code"]),
            acc_trade_price_24h: GaugeFamily::new("upbit_acc_trade_price_24h", "Traded value over the last 24 h, in the quote currency (ticker).", &["code"]),
            market_state: IntGaugeFamily::new("upbit_market_state", "1 for the market's current state (PREVIEW, ACTIVE, DELISTED), from the ticker.", &["code", "state"]),
            trading_suspended: IntGaugeFamily::new("upbit_trading_suspended", "1 while trading is suspended, from the ticker.", &["code"]),
            trades: IntCounterFamily::new("upbit_trades_total", "Trades received, by code and aggressor side.", &["code", "side"]),
            trade_volume: CounterFamily::new("upbit_trade_volume_total", "Volume traded, by code and aggressor side.", &["code", "side"]),
            best_ask_price: GaugeFamily::new("upbit_orderbook_best_ask_price", "Lowest ask of the last orderbook.", &["code"]),
            best_bid_price: GaugeFamily::new("upbit_orderbook_best_bid_price", "Highest bid of the last orderbook.", &["code"]),
            total_ask_size: GaugeFamily::new("upbit_orderbook_total_ask_size", "Sum of ask sizes of the last orderbook.", &["code"]),
            total_bid_size: GaugeFamily::new("upbit_orderbook_total_bid_size", "Sum of bid sizes of the last orderbook.", &["code"]),
            candle_close_price: GaugeFamily::new("upbit_candle_close_price", "Close (last trade) price of the latest candle, by candle type and code.", &["type", "code"]),
            mid_price: GaugeFamily::new("upbit_orderbook_mid_price", "(best ask + best bid) / 2 of the last orderbook; NaN while a side is empty.", &["code"]),
            spread_price: GaugeFamily::new("upbit_orderbook_spread_price", "Best ask - best bid of the last orderbook; NaN while a side is empty.", &["code"]),
            spread_ratio: GaugeFamily::new("upbit_orderbook_spread_ratio", "Spread / mid of the last orderbook; NaN while a side is empty.", &["code"]),
            orderbook_imbalance: GaugeFamily::new("upbit_orderbook_imbalance", "(bid size - ask size) / (bid size + ask size) over the units of the last orderbook, -1 to 1; NaN when both sides are empty.", &["code"]),
            orderbook_depth: GaugeFamily::new("upbit_orderbook_depth", "Quote-currency value (price x size) of the last orderbook's levels on this side within bps basis points of the mid; a lower bound where upbit_orderbook_depth_complete is 0.", &["code", "side", "bps"]),
            orderbook_depth_complete: IntGaugeFamily::new("upbit_orderbook_depth_complete", "1 when the last orderbook had a level on this side beyond the band, so upbit_orderbook_depth covers the whole band; 0 when the band may reach past the last unit received.", &["code", "side", "bps"]),
            trade_notional: CounterFamily::new("upbit_trade_notional_total", "Price x volume traded, in the quote currency, by code and aggressor side: VWAP = rate(notional) / rate(volume).", &["code", "side"]),
            candle_open_price: GaugeFamily::new("upbit_candle_open_price", "Open price of the latest candle, by candle type and code.", &["type", "code"]),
            candle_high_price: GaugeFamily::new("upbit_candle_high_price", "High price of the latest candle, by candle type and code.", &["type", "code"]),
            candle_low_price: GaugeFamily::new("upbit_candle_low_price", "Low price of the latest candle, by candle type and code.", &["type", "code"]),
            candle_volume: GaugeFamily::new("upbit_candle_volume", "Volume traded in the latest candle so far, by candle type and code.", &["type", "code"]),
            candle_start_timestamp: GaugeFamily::new("upbit_candle_start_timestamp_seconds", "Unix time at which the latest candle starts (candle_date_time_utc), by candle type and code.", &["type", "code"]),
            market_listed_timestamp: GaugeFamily::new("upbit_market_listed_timestamp_seconds", "Unix time of the market list fetch in which this service first saw the market, for markets that appeared after its first fetch; absent for markets already in the first list.", &["code"]),
            dropped_messages: IntCounterVec::new(opts("upbit_dropped_messages_total", "Frames or messages the pipeline dropped, by stage and reason."), &["stage", "reason"])?,
            build_info: IntGaugeVec::new(opts("upbit_build_info", "Always 1; the version label tells what runs."), &["version"])?,
            market_warning: IntGaugeFamily::new("upbit_market_warning", "1 while Upbit flags the market with an investment warning: market_event.warning from the market list, else the ticker's deprecated market_warning; absent while neither said.", &["code"]),
            market_caution: IntGaugeFamily::new("upbit_market_caution", "1 while Upbit raises this caution flag on the market (market_event.caution of the market list; reason is Upbit's flag name, OTHER for flags not known here); absent until the list said.", &["code", "reason"]),
            market_info: IntGaugeFamily::new("upbit_market_info", "Always 1: the coin's names from the market list, to join on code.", &["code", "korean_name", "english_name"]),
            delisting_timestamp: GaugeFamily::new("upbit_delisting_timestamp_seconds", "Unix time (00:00 UTC) of the market's announced delisting date, from the ticker; absent when none.", &["code"]),
            connection_up: IntGaugeVec::new(opts("upbit_connection_up", "1 while this connection is connected and subscribed, by connection index."), &["connection"])?,
            connection_codes: IntGaugeVec::new(opts("upbit_connection_codes", "Codes assigned to this connection, by connection index."), &["connection"])?,
            market_list_fetches: IntCounterVec::new(opts("upbit_market_list_fetches_total", "Fetches of Upbit's market list (discovery), by result."), &["result"])?,
            market_list_changes: IntCounterVec::new(opts("upbit_market_list_changes_total", "Markets that appeared in (listed) or left (delisted) Upbit's market list between fetches."), &["change"])?,
            market_list_codes: IntGauge::with_opts(opts("upbit_market_list_codes", "Markets in the last market list fetched; 0 before the first."))?,
            shard_info: IntGaugeVec::new(opts("upbit_shard_info", "Always 1: this replica's shard index and the shard count (0 of 1: unsharded)."), &["index", "count"])?,
            shard_codes: IntGaugeVec::new(opts("upbit_shard_codes", "Codes of the resolved subscription this shard takes (owner=\"self\", before control.max_codes) and leaves to the other shards (owner=\"others\")."), &["owner"])?,
            active_links: Default::default(),
        };
        m.register_all(registry)?;
        for reason in DISCONNECT_REASONS {
            m.disconnections.with_label_values(&[reason]);
        }
        for reason in CONNECT_FAILURE_REASONS {
            m.connect_failures.with_label_values(&[reason]);
        }
        for reason in DecodeError::CODES {
            m.decode_errors.with_label_values(&[reason]);
        }
        for name in SERVER_ERROR_NAMES {
            m.server_errors.with_label_values(&[name]);
        }
        for (stage, reason) in DROP_POINTS {
            m.dropped_messages.with_label_values(&[stage, reason]);
        }
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        for result in ["ok", "error"] {
            m.market_list_fetches.with_label_values(&[result]);
        }
        for change in ["listed", "delisted"] {
            m.market_list_changes.with_label_values(&[change]);
        }
        m.set_links(1);
        m.set_shard(Shard::ALL);
        m.set_shard_codes(0, 0);
        Ok(m)
    }

    /// The market families, by name: written to `/metrics` beside the registry, not through it
    /// ([`family`](super::family) says why).
    pub fn market_families(&self) -> [&dyn Encode; 32] {
        [
            &self.acc_trade_price_24h,
            &self.acc_trade_volume_24h,
            &self.candle_close_price,
            &self.candle_high_price,
            &self.candle_low_price,
            &self.candle_open_price,
            &self.candle_start_timestamp,
            &self.candle_volume,
            &self.delisting_timestamp,
            &self.last_message_timestamp,
            &self.market_caution,
            &self.market_info,
            &self.market_listed_timestamp,
            &self.market_state,
            &self.market_warning,
            &self.best_ask_price,
            &self.best_bid_price,
            &self.orderbook_depth,
            &self.orderbook_depth_complete,
            &self.orderbook_imbalance,
            &self.mid_price,
            &self.spread_price,
            &self.spread_ratio,
            &self.total_ask_size,
            &self.total_bid_size,
            &self.received_messages,
            &self.signed_change_rate,
            &self.trade_notional,
            &self.trade_price,
            &self.trade_volume,
            &self.trades,
            &self.trading_suspended,
        ]
    }

    fn register_all(&self, r: &Registry) -> prometheus::Result<()> {
        r.register(Box::new(self.connections.clone()))?;
        r.register(Box::new(self.disconnections.clone()))?;
        r.register(Box::new(self.connect_failures.clone()))?;
        r.register(Box::new(self.connection_attempts.clone()))?;
        r.register(Box::new(self.connected.clone()))?;
        r.register(Box::new(self.reconnect_backoff.clone()))?;
        r.register(Box::new(self.subscription_requests.clone()))?;
        r.register(Box::new(self.subscribed_codes.clone()))?;
        r.register(Box::new(self.received_frames.clone()))?;
        r.register(Box::new(self.received_bytes.clone()))?;
        r.register(Box::new(self.message_size.clone()))?;
        r.register(Box::new(self.decode_errors.clone()))?;
        r.register(Box::new(self.decode_field_errors.clone()))?;
        r.register(Box::new(self.server_errors.clone()))?;
        r.register(Box::new(self.pings_sent.clone()))?;
        r.register(Box::new(self.pongs_received.clone()))?;
        r.register(Box::new(self.exchange_delay.clone()))?;
        r.register(Box::new(self.pipeline_latency.clone()))?;
        r.register(Box::new(self.dropped_messages.clone()))?;
        r.register(Box::new(self.build_info.clone()))?;
        r.register(Box::new(self.connection_up.clone()))?;
        r.register(Box::new(self.connection_codes.clone()))?;
        r.register(Box::new(self.market_list_fetches.clone()))?;
        r.register(Box::new(self.market_list_changes.clone()))?;
        r.register(Box::new(self.market_list_codes.clone()))?;
        r.register(Box::new(self.shard_info.clone()))?;
        r.register(Box::new(self.shard_codes.clone()))?;
        Ok(())
    }

    /// This replica is shard `shard.index` of `shard.count`: one `upbit_shard_info` series.
    pub fn set_shard(&self, shard: Shard) {
        self.shard_info.reset();
        self.shard_info
            .with_label_values(&[&shard.index.to_string(), &shard.count.to_string()])
            .set(1);
    }

    /// Codes this shard takes and codes it leaves to the others.
    pub fn set_shard_codes(&self, taken: usize, elsewhere: usize) {
        let gauge = |owner: &str, n: usize| {
            self.shard_codes
                .with_label_values(&[owner])
                .set(i64::try_from(n).unwrap_or(i64::MAX))
        };
        gauge("self", taken);
        gauge("others", elsewhere);
    }

    /// Connection `index` went up (connected and subscribed) or down. A connection no longer in
    /// use (closing after the subscription shrank) leaves no series behind.
    pub fn link_up(&self, index: usize, up: bool) {
        if index >= self.active_links.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        self.connection_up
            .with_label_values(&[&index.to_string()])
            .set(i64::from(up));
        self.refresh_connected();
    }

    /// The number of connections in use; series of connections beyond it are removed.
    pub fn set_links(&self, count: usize) {
        let before = self
            .active_links
            .swap(count, std::sync::atomic::Ordering::Relaxed);
        for index in 0..count {
            self.connection_up.with_label_values(&[&index.to_string()]);
            self.connection_codes
                .with_label_values(&[&index.to_string()]);
        }
        for index in count..before {
            let _ = self
                .connection_up
                .remove_label_values(&[&index.to_string()]);
            let _ = self
                .connection_codes
                .remove_label_values(&[&index.to_string()]);
        }
        self.refresh_connected();
    }

    fn refresh_connected(&self) {
        let count = self.active_links.load(std::sync::atomic::Ordering::Relaxed);
        let all_up = count > 0
            && (0..count).all(|i| {
                self.connection_up
                    .get_metric_with_label_values(&[&i.to_string()])
                    .is_ok_and(|g| g.get() == 1)
            });
        self.connected.set(i64::from(all_up));
    }

    /// The label for an Upbit error name: itself if known, else `other` (bounded cardinality).
    pub fn server_error_label(name: &str) -> &'static str {
        SERVER_ERROR_NAMES
            .iter()
            .find(|known| **known == name)
            .copied()
            .unwrap_or("other")
    }
}

/// Why a live-stream consumer left (`upbit_stream_disconnects_total{reason}`).
pub const STREAM_DISCONNECT_REASONS: [&str; 5] =
    ["client", "slow", "timeout", "shutdown", "too_large"];

/// Live-stream transports (`upbit_stream_consumers{transport}`).
pub const STREAM_TRANSPORTS: [&str; 2] = ["ws", "sse"];

/// Messages waiting in one consumer's queue: a consumer that keeps up sees 1.
const STREAM_QUEUE_BUCKETS: [f64; 12] = [
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 5000.0, 20000.0,
];

/// The live stream's collectors (`src/stream/`), registered in the same registry as [`Metrics`].
#[derive(Clone)]
pub struct StreamMetrics {
    pub consumers: IntGaugeVec,
    pub messages_sent: IntCounterVec,
    pub conflated: IntCounter,
    pub disconnects: IntCounterVec,
    pub queue_depth: prometheus::Histogram,
}

impl StreamMetrics {
    /// Creates and registers the collectors, every fixed-label series at zero.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let m = Self {
            consumers: IntGaugeVec::new(opts("upbit_stream_consumers", "Live-stream consumers connected, by transport (ws, sse)."), &["transport"])?,
            messages_sent: IntCounterVec::new(opts("upbit_stream_messages_sent_total", "Messages handed to live-stream consumers' connections, by transport."), &["transport"])?,
            conflated: IntCounter::with_opts(opts("upbit_stream_conflated_total", "Queued tickers, orderbooks and candles replaced by a newer one of the same type and code before a consumer read them."))?,
            disconnects: IntCounterVec::new(opts("upbit_stream_disconnects_total", "Live-stream consumers that left, by reason (client, slow, timeout, shutdown, too_large)."), &["reason"])?,
            queue_depth: prometheus::Histogram::with_opts(HistogramOpts::new("upbit_stream_queue_depth", "Messages waiting in a consumer's queue after each batch the pipeline queued for it.").buckets(STREAM_QUEUE_BUCKETS.to_vec()))?,
        };
        registry.register(Box::new(m.consumers.clone()))?;
        registry.register(Box::new(m.messages_sent.clone()))?;
        registry.register(Box::new(m.conflated.clone()))?;
        registry.register(Box::new(m.disconnects.clone()))?;
        registry.register(Box::new(m.queue_depth.clone()))?;
        for transport in STREAM_TRANSPORTS {
            m.consumers.with_label_values(&[transport]);
            m.messages_sent.with_label_values(&[transport]);
        }
        for reason in STREAM_DISCONNECT_REASONS {
            m.disconnects.with_label_values(&[reason]);
        }
        Ok(m)
    }
}

/// Why the NATS sink dropped a message (`upbit_sink_dropped_total{reason}`): `buffer_full` (NATS
/// unreachable or slow for longer than the buffer holds; the oldest go), `rejected` (the server
/// refused it with an error other than a timeout), `shutdown` (still buffered when the service
/// stopped).
pub const SINK_DROP_REASONS: [&str; 3] = ["buffer_full", "rejected", "shutdown"];

/// The NATS JetStream sink's collectors (`src/nats/`), registered whether or not it runs.
#[derive(Clone)]
pub struct SinkMetrics {
    pub published: IntCounter,
    pub acked: IntCounter,
    pub duplicates: IntCounter,
    pub retried: IntCounter,
    pub dropped: IntCounterVec,
    pub buffered: IntGauge,
    /// `nats.buffer` while the sink runs, 0 when it is off: what tells the alerts "on".
    pub buffer_capacity: IntGauge,
    pub in_flight: IntGauge,
    pub connected: IntGauge,
}

impl SinkMetrics {
    /// Creates and registers the collectors, every fixed-label series at zero.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let m = Self {
            published: IntCounter::with_opts(opts("upbit_sink_published_total", "Messages sent to NATS JetStream (a message sent again after a failed acknowledgement counts again)."))?,
            acked: IntCounter::with_opts(opts("upbit_sink_acked_total", "Messages JetStream acknowledged (stored, or recognised as a duplicate)."))?,
            duplicates: IntCounter::with_opts(opts("upbit_sink_duplicates_total", "Acknowledged messages JetStream reported as duplicates of a stored Nats-Msg-Id (an HA pair's twin, or a resend)."))?,
            retried: IntCounter::with_opts(opts("upbit_sink_retried_total", "Messages put back in the buffer to be sent again because their acknowledgement failed or timed out."))?,
            dropped: IntCounterVec::new(opts("upbit_sink_dropped_total", "Messages the sink gave up, by reason (buffer_full, rejected, shutdown)."), &["reason"])?,
            buffered: IntGauge::with_opts(opts("upbit_sink_buffer_messages", "Messages waiting in the sink's buffer to be sent."))?,
            buffer_capacity: IntGauge::with_opts(opts("upbit_sink_buffer_capacity_messages", "The most messages the sink's buffer holds (nats.buffer); 0 when the sink is off."))?,
            in_flight: IntGauge::with_opts(opts("upbit_sink_in_flight_messages", "Messages sent and awaiting their acknowledgement."))?,
            connected: IntGauge::with_opts(opts("upbit_sink_connected", "1 while the sink is connected to NATS with a usable stream, else 0 (also 0 when the sink is off)."))?,
        };
        registry.register(Box::new(m.published.clone()))?;
        registry.register(Box::new(m.acked.clone()))?;
        registry.register(Box::new(m.duplicates.clone()))?;
        registry.register(Box::new(m.retried.clone()))?;
        registry.register(Box::new(m.dropped.clone()))?;
        registry.register(Box::new(m.buffered.clone()))?;
        registry.register(Box::new(m.buffer_capacity.clone()))?;
        registry.register(Box::new(m.in_flight.clone()))?;
        registry.register(Box::new(m.connected.clone()))?;
        for reason in SINK_DROP_REASONS {
            m.dropped.with_label_values(&[reason]);
        }
        Ok(m)
    }
}

/// A pipeline stage's queue as the depth gauge reads it (`actors::queue::StageQueue`).
pub trait QueueDepth: Send + Sync {
    /// Items (frames or messages) waiting in the stage now.
    fn depth(&self) -> usize;
}

/// `upbit_pipeline_queue_depth{stage}`, read at scrape time from each stage's own counter, so
/// the hot path never touches a gauge.
pub struct QueueDepthCollector {
    gauge: IntGaugeVec,
    stages: Vec<(&'static str, Box<dyn QueueDepth>)>,
}

impl QueueDepthCollector {
    /// Creates the collector for `stages` (name and queue) and registers it.
    pub fn register<Q: QueueDepth + 'static>(
        registry: &Registry,
        stages: Vec<(&'static str, Q)>,
    ) -> prometheus::Result<()> {
        let help = "Frames (decoder) or messages (metrics) waiting in a pipeline stage.";
        let gauge = IntGaugeVec::new(opts("upbit_pipeline_queue_depth", help), &["stage"])?;
        let stages = stages
            .into_iter()
            .map(|(stage, queue)| (stage, Box::new(queue) as Box<dyn QueueDepth>))
            .collect();
        registry.register(Box::new(Self { gauge, stages }))
    }
}

impl Collector for QueueDepthCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        for (stage, queue) in &self.stages {
            self.gauge
                .with_label_values(&[stage])
                .set(queue.depth() as i64);
        }
        self.gauge.collect()
    }
}
