//! The series book: pre-resolved Prometheus handles for every subscribed (type, code), the
//! per-code value series and the latest data of each code, created and removed as the
//! subscription changes.
//!
//! - Per (type, code): `upbit_messages_received_total` and `upbit_last_message_timestamp_seconds`,
//!   created at zero when the pair is subscribed, so `rate()` and alerts work before the first
//!   message.
//! - Per code: the value series (price, ticker, trades, orderbook, candles, market state),
//!   created on first data (a price of 0 before any trade would lie) by [`record`](super::record).
//! - Per type: the size and delay histograms, from the type's first subscription on (they keep
//!   their history; there are at most 12 types).
//! - The market state series ([`MarketEvents`]) of the subscribed codes.
//!
//! Series exist only for subscribed pairs: removed with their pair, so `/metrics` never grows on
//! input.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use crate::telemetry::family::{Counter, Gauge, IntCounter, IntGauge};
use prometheus::local::LocalHistogram;

use super::figures::DEFAULT_DEPTH_BANDS_BPS;
use super::market_events::MarketEvents;
use super::structure::{CandleFields, CandleSeries, OrderbookSeries};
use crate::telemetry::Metrics;
use crate::upbit::market_list::MarketListing;
use crate::upbit::{DataType, Subscription};
use crate::view::{LatestFrames, LatestMarket};

/// FNV-1a, for the maps looked up on every message: their keys are short (a code, a type) and
/// their entries come from our own subscription, never from input, so SipHash's defence against
/// chosen keys buys nothing there and costs more than the rest of the lookup.
pub(super) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// A map hashed with [`Fnv`].
pub(super) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;

/// Series of one subscribed (type, code) pair.
pub(super) struct PairSeries {
    pub received: IntCounter,
    pub last_received: Gauge,
    /// Where the type's histograms are in [`Series::histograms`].
    pub type_index: usize,
}

/// Every data type's place in the per-type arrays: its place in [`DataType::ALL`].
pub(super) fn type_index(data_type: DataType) -> usize {
    DataType::ALL
        .iter()
        .position(|t| *t == data_type)
        .unwrap_or_default()
}

/// A type's size and delay histograms, observed locally (no atomics) and written to the
/// registry once per batch by [`Series::flush`].
pub(super) struct TypeHistograms {
    pub size: LocalHistogram,
    pub delay: LocalHistogram,
}

/// Everything kept for one subscribed code.
#[derive(Default)]
pub(super) struct CodeSeries {
    pub pairs: FastMap<DataType, PairSeries>,
    pub trade_price: Option<Gauge>,
    pub ticker: Option<TickerSeries>,
    /// (count, volume, notional) per side: `[ask, bid]`.
    pub trades: Option<[(IntCounter, Counter, Counter); 2]>,
    pub orderbook: Option<OrderbookSeries>,
    pub candles: FastMap<DataType, CandleSeries>,
    /// The state label now set and its series.
    pub market_state: Option<(&'static str, IntGauge)>,
    /// What this code's tickers last said in the deprecated `market_warning` (`None`: nothing):
    /// the same value [`MarketEvents`] holds, kept here so a ticker that repeats it costs no
    /// lookup there.
    pub ticker_warning: Option<bool>,
    /// The latest message of each kind, for the data API.
    pub latest: LatestFrames,
}

/// Ticker value series of one code.
pub(super) struct TickerSeries {
    pub signed_change_rate: Gauge,
    pub acc_trade_volume_24h: Gauge,
    pub acc_trade_price_24h: Gauge,
    /// Created when a ticker first carries `is_trading_suspended` (deprecated by Upbit).
    pub trading_suspended: Option<IntGauge>,
    pub delisting: Option<Gauge>,
}

/// Every series the metrics actor writes, by subscribed code and type.
pub(super) struct Series {
    pub metrics: Metrics,
    subscription: Subscription,
    pub codes: FastMap<String, CodeSeries>,
    /// By [`type_index`], from the type's first subscription on.
    pub histograms: [Option<TypeHistograms>; DataType::ALL.len()],
    /// Warning, caution and info series of the subscribed codes.
    pub events: MarketEvents,
    /// The orderbook depth bands, in basis points of the mid.
    pub depth_bands: Vec<u32>,
    /// The latest-candle series exported beside the close.
    pub candle_fields: CandleFields,
}

impl Series {
    /// The series of `subscription`, created at zero.
    pub fn new(metrics: Metrics, subscription: Subscription) -> Self {
        let mut series = Self {
            metrics,
            subscription: Subscription::default(),
            codes: FastMap::default(),
            histograms: Default::default(),
            events: MarketEvents::default(),
            depth_bands: DEFAULT_DEPTH_BANDS_BPS.to_vec(),
            candle_fields: CandleFields::ALL,
        };
        series.subscribe(subscription);
        series
    }

    /// Sets which market-structure series are exported. Before any data only: series already
    /// created keep their shape, and removal follows the current settings.
    pub fn configure(&mut self, depth_bands: Vec<u32>, candle_fields: CandleFields) {
        self.depth_bands = depth_bands;
        self.candle_fields = candle_fields;
    }

    /// Creates series for added pairs and removes those of dropped pairs.
    pub fn subscribe(&mut self, next: Subscription) {
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
        // Histograms per type exist from the first subscription of the type on, and stay: their
        // history is worth keeping and there are at most 12 types.
        for (data_type, _) in next.entries() {
            let label = [data_type.as_str()];
            self.histograms[type_index(data_type)].get_or_insert_with(|| TypeHistograms {
                size: m.message_size.with_label_values(&label).local(),
                delay: m.exchange_delay.with_label_values(&label).local(),
            });
        }
        for (data_type, code) in next.pairs() {
            let series = self.codes.entry(code.to_owned()).or_default();
            series.pairs.entry(data_type).or_insert_with(|| PairSeries {
                received: m
                    .received_messages
                    .with_label_values(&[data_type.as_str(), code]),
                last_received: m
                    .last_message_timestamp
                    .with_label_values(&[data_type.as_str(), code]),
                type_index: type_index(data_type),
            });
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
                series.ticker_warning = None;
                self.events.ticker_warning(m, code, None);
                if let Some((state, _)) = series.market_state.take() {
                    let _ = m.market_state.remove_label_values(&[code, state]);
                }
            }
            DataType::Trade => {
                if series.trades.take().is_some() {
                    for side in ["ask", "bid"] {
                        let _ = m.trades.remove_label_values(&[code, side]);
                        let _ = m.trade_volume.remove_label_values(&[code, side]);
                        let _ = m.trade_notional.remove_label_values(&[code, side]);
                    }
                }
            }
            DataType::Orderbook => {
                if series.orderbook.take().is_some() {
                    OrderbookSeries::remove(m, code, &self.depth_bands);
                }
            }
            DataType::Candle(_) => {
                if series.candles.remove(&data_type).is_some() {
                    CandleSeries::remove(m, data_type, code);
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

    /// Observes one frame's size, if its type is subscribed (or was).
    pub fn frame_size(&self, data_type: DataType, bytes: usize) {
        if let Some(histograms) = &self.histograms[type_index(data_type)] {
            histograms.size.observe(bytes as f64);
        }
    }

    /// Writes the batch's histogram observations to the registry.
    pub fn flush(&self) {
        for histograms in self.histograms.iter().flatten() {
            histograms.size.flush();
            histograms.delay.flush();
        }
    }

    /// A new market list: the market state series follow it.
    /// `fetched_unix` is when it was fetched (Unix seconds): the listing time of its new markets.
    pub fn set_market_list(
        &mut self,
        list: Arc<HashMap<String, MarketListing>>,
        fetched_unix: f64,
    ) {
        self.events.set_list(&self.metrics, list, fetched_unix);
    }

    /// The code's entry in the last market list.
    pub fn listing(&self, code: &str) -> Option<&MarketListing> {
        self.events.listing(code)
    }

    /// The latest data of one code, decoded, if subscribed.
    pub fn latest(&self, code: &str) -> Option<LatestMarket> {
        self.codes.get(code).map(|series| series.latest.decode())
    }

    /// The latest ticker of every subscribed code, decoded, by code.
    pub fn markets(&self) -> Vec<(String, LatestMarket)> {
        let mut markets: Vec<(String, LatestMarket)> = self
            .codes
            .iter()
            .map(|(code, series)| (code.clone(), series.latest.decode_ticker()))
            .collect();
        markets.sort_by(|a, b| a.0.cmp(&b.0));
        markets
    }

    /// The newest message time of each type (Unix seconds), over the codes that had one.
    pub fn last_message_times(&self) -> BTreeMap<String, f64> {
        let mut last = BTreeMap::new();
        for series in self.codes.values() {
            for (data_type, pair) in &series.pairs {
                let at = pair.last_received.get();
                if at > 0.0 {
                    let entry = last.entry(data_type.as_str().to_owned()).or_insert(at);
                    *entry = f64::max(*entry, at);
                }
            }
        }
        last
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::time::SystemTime;

    use prometheus::Registry;

    use super::*;
    use crate::messages::MarketMessage;
    use crate::telemetry::Exposition;
    use crate::upbit::brief::Brief;
    use crate::upbit::decode::decode_frame;
    use crate::upbit::Message;

    /// A decoded message as the decoder hands it over: its brief and its JSON.
    pub fn market(message: Message) -> MarketMessage {
        let json = match &message {
            Message::Ticker(t) => serde_json::to_vec(t),
            Message::Trade(t) => serde_json::to_vec(t),
            Message::Orderbook(o) => serde_json::to_vec(o),
            Message::Candle(c) => serde_json::to_vec(c),
            other => panic!("not a market message: {other:?}"),
        }
        .unwrap();
        MarketMessage {
            brief: Brief::of(&message).unwrap(),
            frame_bytes: Some(json.len()),
            json: json.into(),
            full: None,
        }
    }

    impl Series {
        /// [`Series::record`] of a decoded message, its histograms flushed.
        pub fn record_message(&mut self, message: Message, at: SystemTime, unix: f64) -> bool {
            let recorded = self.record(&market(message), at, unix);
            self.flush();
            recorded
        }
    }

    /// The service's `/metrics` text, and the series book of `subscription` writing to it.
    pub fn book(subscription: Subscription) -> (Exposition, Series) {
        let registry = Registry::new();
        let metrics = Metrics::register(&registry).unwrap();
        (
            Exposition::new(registry, metrics.clone()),
            Series::new(metrics, subscription),
        )
    }

    /// The samples of `name` in a scrape: each one's labels and value (for a histogram, its
    /// `_count`).
    fn samples(scrape: &Exposition, name: &str) -> Vec<(Vec<(String, String)>, f64)> {
        let text = scrape.render();
        let histogram = text.contains(&format!("# TYPE {name} histogram\n"));
        let series = if histogram {
            format!("{name}_count")
        } else {
            name.to_owned()
        };
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|line| {
                let (head, value) = line.rsplit_once(' ')?;
                let (metric, labels) = head.split_once('{').unwrap_or((head, "}"));
                (metric == series).then(|| (parse_labels(labels), value.parse().unwrap()))
            })
            .collect()
    }

    /// `a="x",b="y\"z"}` into its pairs, unescaped.
    fn parse_labels(text: &str) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        let mut rest = text;
        while let Some((name, after)) = rest.split_once("=\"") {
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next().expect("a closed label value") {
                    (i, '"') => break i,
                    (_, '\\') => match chars.next().map(|(_, c)| c) {
                        Some('n') => value.push('\n'),
                        Some(c) => value.push(c),
                        None => panic!("a dangling escape"),
                    },
                    (_, c) => value.push(c),
                }
            };
            pairs.push((name.trim_start_matches(',').to_owned(), value));
            rest = &after[end + 1..];
        }
        pairs
    }

    /// The value of the series `name` whose labels include `labels`, if it exists.
    pub fn value(scrape: &Exposition, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        samples(scrape, name)
            .into_iter()
            .find(|(have, _)| {
                labels
                    .iter()
                    .all(|(k, v)| have.iter().any(|(hk, hv)| hk == k && hv == v))
            })
            .map(|(_, value)| value)
    }

    /// How many series `name` has.
    pub fn count(scrape: &Exposition, name: &str) -> usize {
        samples(scrape, name).len()
    }

    /// A real Upbit ticker (KRW-BTC), or trade, from the fixtures.
    pub fn ticker() -> Message {
        fixture(include_bytes!(
            "../../../tests/fixtures/upbit/ticker_default_1.json"
        ))
    }

    pub fn trade() -> Message {
        fixture(include_bytes!(
            "../../../tests/fixtures/upbit/trade_default_1.json"
        ))
    }

    fn fixture(bytes: &[u8]) -> Message {
        decode_frame(bytes).remove(0).unwrap()
    }

    fn pairs(entries: &[(DataType, &str)]) -> Subscription {
        let mut subscription = Subscription::default();
        for (data_type, code) in entries {
            subscription.insert(*data_type, code);
        }
        subscription
    }

    const BTC: &str = "KRW-BTC";

    #[test]
    fn subscribed_pairs_start_at_zero_and_value_series_wait_for_data() {
        let (registry, book) = book(pairs(&[
            (DataType::Ticker, BTC),
            (DataType::Trade, BTC),
            (DataType::Trade, "KRW-ETH"),
        ]));
        let received = "upbit_received_messages_total";
        assert_eq!(
            value(&registry, received, &[("type", "ticker"), ("code", BTC)]),
            Some(0.0)
        );
        assert_eq!(count(&registry, received), 3);
        assert_eq!(count(&registry, "upbit_last_message_timestamp_seconds"), 3);
        assert_eq!(
            value(&registry, "upbit_subscribed_codes", &[("type", "trade")]),
            Some(2.0)
        );
        assert_eq!(
            value(
                &registry,
                "upbit_subscribed_codes",
                &[("type", "orderbook")]
            ),
            Some(0.0),
            "every type has its count"
        );
        assert_eq!(
            count(&registry, "upbit_trade_price"),
            0,
            "no price before data"
        );
        assert!(book.latest(BTC).is_some() && book.latest("KRW-XRP").is_none());
        assert_eq!(
            book.markets()
                .iter()
                .map(|(c, _)| c.as_str())
                .collect::<Vec<_>>(),
            ["KRW-BTC", "KRW-ETH"]
        );
        assert!(book.last_message_times().is_empty(), "nothing received yet");
    }

    #[test]
    fn dropping_a_pair_removes_its_series_and_the_price_stays_while_a_source_is_left() {
        let (registry, mut book) = book(pairs(&[(DataType::Ticker, BTC), (DataType::Trade, BTC)]));
        let now = SystemTime::now();
        assert!(book.record_message(ticker(), now, 100.0));
        assert!(book.record_message(trade(), now, 101.0));
        assert!(value(&registry, "upbit_signed_change_rate", &[("code", BTC)]).is_some());
        assert_eq!(
            value(
                &registry,
                "upbit_market_state",
                &[("code", BTC), ("state", "ACTIVE")]
            ),
            Some(1.0)
        );
        assert_eq!(count(&registry, "upbit_trades_total"), 2);

        book.subscribe(pairs(&[(DataType::Trade, BTC)]));
        assert_eq!(count(&registry, "upbit_received_messages_total"), 1);
        assert_eq!(count(&registry, "upbit_signed_change_rate"), 0);
        assert_eq!(count(&registry, "upbit_market_state"), 0);
        assert!(
            value(&registry, "upbit_trade_price", &[("code", BTC)]).is_some(),
            "trades still set the price"
        );
        assert!(book.latest(BTC).is_some_and(|l| l.trade.is_some()));
        assert!(
            !book.record_message(ticker(), now, 102.0),
            "a ticker of a dropped pair is not recorded"
        );
        assert_eq!(count(&registry, "upbit_signed_change_rate"), 0);

        book.subscribe(Subscription::default());
        for name in [
            "upbit_received_messages_total",
            "upbit_last_message_timestamp_seconds",
            "upbit_trade_price",
            "upbit_trades_total",
            "upbit_trade_volume_total",
        ] {
            assert_eq!(count(&registry, name), 0, "{name}");
        }
        assert!(book.markets().is_empty());
        assert_eq!(
            value(
                &registry,
                "upbit_received_message_size_bytes",
                &[("type", "ticker")]
            ),
            Some(0.0),
            "the histograms per type stay"
        );
    }
}
