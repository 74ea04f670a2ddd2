//! The market model: per market, a seeded random walk on Upbit's tick grid, trades with sides
//! and increasing `sequential_id`s, tickers whose accumulated fields add up the generated
//! trades, orderbooks around the last price whose totals are the sums of their units, candles
//! built from the trades.
//!
//! One tape per market: each trade put on it keeps the market's state as of that trade
//! ([`Tick`]), so every connection sends the same ticker, orderbook and candle for it (same
//! content, same timestamp), as Upbit sends every subscriber the same messages. An HA pair of
//! services against one simulator therefore receives identical messages.

use std::collections::HashMap;

use crate::upbit::types::{Change, Side};
use crate::upbit::CandleInterval;

/// Upbit's KRW price unit for a price (the table in force since 2023).
pub fn krw_tick(price: f64) -> f64 {
    match price {
        p if p >= 2_000_000.0 => 1000.0,
        p if p >= 1_000_000.0 => 500.0,
        p if p >= 500_000.0 => 100.0,
        p if p >= 100_000.0 => 50.0,
        p if p >= 10_000.0 => 10.0,
        p if p >= 1_000.0 => 1.0,
        p if p >= 100.0 => 0.1,
        p if p >= 10.0 => 0.01,
        p if p >= 1.0 => 0.001,
        _ => 0.0001,
    }
}

/// Trades a market's tape keeps for connections to catch up on.
const TAPE_LENGTH: usize = 256;

/// Rounds to 8 decimals so printed values are clean decimals.
fn clean(x: f64) -> f64 {
    (x * 1e8).round() / 1e8
}

/// A generated trade.
#[derive(Debug, Clone)]
pub struct TradeEvent {
    pub price: f64,
    pub volume: f64,
    pub side: Side,
    pub sequential_id: u64,
    pub timestamp_ms: u64,
}

/// One trade on a market's tape and the market as that trade left it.
#[derive(Debug, Clone)]
pub struct Tick {
    pub trade: TradeEvent,
    /// The market just after the trade (its own tape empty); orderbooks are drawn from a copy
    /// of its random generator, so every connection draws the same book.
    pub state: Box<MarketState>,
}

/// A candle in progress.
#[derive(Debug, Clone, Copy)]
pub struct CandleState {
    pub start_ms: u64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
    pub value: f64,
}

/// One market's state.
#[derive(Debug, Clone)]
pub struct MarketState {
    pub code: String,
    pub price: f64,
    pub prev_close: f64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub acc_volume: f64,
    pub acc_value: f64,
    pub acc_ask_volume: f64,
    pub acc_bid_volume: f64,
    pub last: Option<TradeEvent>,
    /// `market_event.warning` of the market list (and the ticker's deprecated `market_warning`).
    pub warning: bool,
    /// `market_event.caution` flags set through the admin API; Upbit's five are false unless set.
    pub caution: std::collections::BTreeMap<String, bool>,
    next_sequential_id: u64,
    /// The market's tape: recent trades, shared by every connection (as on Upbit, every
    /// subscriber sees the same trade with the same `sequential_id`).
    tape: std::collections::VecDeque<Tick>,
    /// Exchange time of the last trade put on the tape.
    tape_clock: Option<u64>,
    candles: HashMap<CandleInterval, CandleState>,
    rng: fastrand::Rng,
}

impl MarketState {
    fn new(code: &str, seed: u64) -> Self {
        let mut hash = seed ^ 0x9e37_79b9_7f4a_7c15;
        for b in code.bytes() {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        let mut rng = fastrand::Rng::with_seed(hash);
        let price = match code {
            "KRW-BTC" => 100_000_000.0,
            "KRW-ETH" => 5_000_000.0,
            _ if code.starts_with("KRW-") => {
                let raw = 10f64.powf(rng.f64() * 5.0 + 1.0);
                let tick = krw_tick(raw);
                clean((raw / tick).round() * tick)
            }
            _ => clean(10f64.powf(-(rng.f64() * 4.0 + 1.0))),
        };
        Self {
            code: code.to_owned(),
            price,
            prev_close: price,
            open: price,
            high: price,
            low: price,
            acc_volume: 0.0,
            acc_value: 0.0,
            acc_ask_volume: 0.0,
            acc_bid_volume: 0.0,
            last: None,
            warning: false,
            caution: std::collections::BTreeMap::new(),
            next_sequential_id: 17_000_000_000_000_000 + rng.u64(0..1_000_000),
            tape: std::collections::VecDeque::new(),
            tape_clock: None,
            candles: HashMap::new(),
            rng,
        }
    }

    /// `market_event` as the detailed market list shows it.
    pub fn market_event(&self) -> serde_json::Value {
        let mut caution: serde_json::Map<String, serde_json::Value> =
            crate::upbit::market_list::CAUTION_FLAGS
                .iter()
                .map(|flag| ((*flag).to_owned(), false.into()))
                .collect();
        for (flag, on) in &self.caution {
            caution.insert(flag.clone(), (*on).into());
        }
        serde_json::json!({ "warning": self.warning, "caution": caution })
    }

    /// The price unit of this market.
    pub fn tick(&self) -> f64 {
        if self.code.starts_with("KRW-") {
            krw_tick(self.price)
        } else {
            0.00000001
        }
    }

    /// Moves the price and records one trade.
    pub fn trade(&mut self, now_ms: u64) -> TradeEvent {
        let tick = self.tick();
        let steps = self.rng.i32(-2..=2) as f64;
        self.price = clean((self.price + steps * tick).max(tick));
        let side = if self.rng.bool() {
            Side::Bid
        } else {
            Side::Ask
        };
        let volume = clean(self.rng.f64() * 2.0 + 0.0001);
        self.acc_volume = clean(self.acc_volume + volume);
        self.acc_value = clean(self.acc_value + volume * self.price);
        match side {
            Side::Ask => self.acc_ask_volume = clean(self.acc_ask_volume + volume),
            Side::Bid => self.acc_bid_volume = clean(self.acc_bid_volume + volume),
        }
        self.high = self.high.max(self.price);
        self.low = self.low.min(self.price);
        self.next_sequential_id += 1 + self.rng.u64(0..1000);
        for interval in CandleInterval::ALL {
            let span = interval.seconds() * 1000;
            let start = now_ms - now_ms % span;
            let candle = self.candles.entry(interval).or_insert(CandleState {
                start_ms: start,
                open: self.price,
                high: self.price,
                low: self.price,
                close: self.price,
                volume: 0.0,
                value: 0.0,
            });
            if candle.start_ms != start {
                *candle = CandleState {
                    start_ms: start,
                    open: self.price,
                    high: self.price,
                    low: self.price,
                    close: self.price,
                    volume: 0.0,
                    value: 0.0,
                };
            }
            candle.high = candle.high.max(self.price);
            candle.low = candle.low.min(self.price);
            candle.close = self.price;
            candle.volume = clean(candle.volume + volume);
            candle.value = clean(candle.value + volume * self.price);
        }
        let event = TradeEvent {
            price: self.price,
            volume,
            side,
            sequential_id: self.next_sequential_id,
            timestamp_ms: now_ms,
        };
        self.last = Some(event.clone());
        event
    }

    /// Puts a trade on the tape for every `period_ms` elapsed since the last one (the first call
    /// only starts the clock); at most 64 at once, the rest skipped.
    pub fn tape_until(&mut self, now_ms: u64, period_ms: u64) {
        let period = period_ms.max(1);
        let clock = *self.tape_clock.get_or_insert(now_ms);
        let due = now_ms.saturating_sub(clock) / period;
        for i in 1..=due.min(64) {
            let trade = self.trade(clock + i * period);
            let tape = std::mem::take(&mut self.tape);
            let state = Box::new(self.clone());
            self.tape = tape;
            if self.tape.len() >= TAPE_LENGTH {
                self.tape.pop_front();
            }
            self.tape.push_back(Tick { trade, state });
        }
        if due > 64 {
            self.tape_clock = Some(now_ms);
        } else {
            self.tape_clock = Some(clock + due * period);
        }
    }

    /// The tape's trades after `sequential_id`, oldest first.
    pub fn tape_since(&self, sequential_id: u64) -> Vec<TradeEvent> {
        self.tape
            .iter()
            .filter(|t| t.trade.sequential_id > sequential_id)
            .map(|t| t.trade.clone())
            .collect()
    }

    /// The tape's ticks after the trade `sequential_id`, oldest first.
    pub fn ticks_since(&self, sequential_id: u64) -> Vec<Tick> {
        self.tape
            .iter()
            .filter(|t| t.trade.sequential_id > sequential_id)
            .cloned()
            .collect()
    }

    /// The newest tick on the tape, if any.
    pub fn last_tick(&self) -> Option<&Tick> {
        self.tape.back()
    }

    /// The last trade, generating one if there is none yet.
    pub fn last_trade(&mut self, now_ms: u64) -> TradeEvent {
        match &self.last {
            Some(t) => t.clone(),
            None => self.trade(now_ms),
        }
    }

    /// Change against the previous close.
    pub fn change(&self) -> (Change, f64, f64) {
        let diff = clean(self.price - self.prev_close);
        let change = match diff {
            d if d > 0.0 => Change::Rise,
            d if d < 0.0 => Change::Fall,
            _ => Change::Even,
        };
        let rate = if self.prev_close > 0.0 {
            (diff / self.prev_close * 1e10).round() / 1e10
        } else {
            0.0
        };
        (change, diff, rate)
    }

    /// `units` levels: asks from one tick above the price, bids from the price down.
    pub fn orderbook(&mut self, units: usize) -> Vec<[f64; 4]> {
        let tick = self.tick();
        (0..units)
            .map(|i| {
                let ask = clean(self.price + tick * (i as f64 + 1.0));
                let bid = clean((self.price - tick * i as f64).max(tick));
                [
                    ask,
                    bid,
                    clean(self.rng.f64() * 5.0 + 0.001),
                    clean(self.rng.f64() * 5.0 + 0.001),
                ]
            })
            .collect()
    }

    /// `units` levels grouped by the price unit `level` (Upbit: KRW markets only; a level not
    /// above the tick, or another market, is no grouping): asks from the first multiple of
    /// `level` above the price, bids from the last one at or below it.
    pub fn orderbook_grouped(&mut self, units: usize, level: f64) -> Vec<[f64; 4]> {
        let tick = self.tick();
        if !(level > tick && level.is_finite() && self.code.starts_with("KRW-")) {
            return self.orderbook(units);
        }
        let best_ask = ((self.price + tick) / level).ceil() * level;
        let best_bid = (self.price / level).floor() * level;
        (0..units)
            .map(|i| {
                [
                    clean(best_ask + level * i as f64),
                    clean((best_bid - level * i as f64).max(level)),
                    clean(self.rng.f64() * 50.0 + 0.001),
                    clean(self.rng.f64() * 50.0 + 0.001),
                ]
            })
            .collect()
    }

    /// The candle of `interval` in progress, if a trade made one.
    pub fn candle(&mut self, interval: CandleInterval, now_ms: u64) -> CandleState {
        if !self.candles.contains_key(&interval) {
            self.trade(now_ms);
        }
        self.candles[&interval]
    }
}

/// Every market of the simulator, keyed by code.
#[derive(Debug)]
pub struct Markets {
    seed: u64,
    states: HashMap<String, MarketState>,
}

impl Markets {
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            states: HashMap::new(),
        }
    }

    /// The state of one market, created on first use from the seed.
    pub fn get(&mut self, code: &str) -> &mut MarketState {
        let seed = self.seed;
        self.states
            .entry(code.to_owned())
            .or_insert_with(|| MarketState::new(code, seed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_sizes_follow_upbits_table() {
        assert_eq!(krw_tick(100_000_000.0), 1000.0);
        assert_eq!(krw_tick(1_500_000.0), 500.0);
        assert_eq!(krw_tick(600_000.0), 100.0);
        assert_eq!(krw_tick(150_000.0), 50.0);
        assert_eq!(krw_tick(50_000.0), 10.0);
        assert_eq!(krw_tick(5_000.0), 1.0);
        assert_eq!(krw_tick(500.0), 0.1);
        assert_eq!(krw_tick(50.0), 0.01);
        assert_eq!(krw_tick(5.0), 0.001);
        assert_eq!(krw_tick(0.5), 0.0001);
    }

    #[test]
    fn prices_stay_on_the_tick_grid_and_sequence_ids_increase() {
        let mut markets = Markets::new(7);
        let btc = markets.get("KRW-BTC");
        let mut last_id = 0;
        for i in 0..1000 {
            let t = btc.trade(1_700_000_000_000 + i);
            let units = t.price / krw_tick(t.price);
            assert!(
                (units - units.round()).abs() < 1e-6,
                "{} off the grid",
                t.price
            );
            assert!(t.sequential_id > last_id && t.sequential_id > 1 << 53);
            last_id = t.sequential_id;
        }
        assert!((btc.acc_ask_volume + btc.acc_bid_volume - btc.acc_volume).abs() < 1e-6);
    }

    #[test]
    fn the_seed_makes_runs_reproducible() {
        let prices = |seed| {
            let mut m = Markets::new(seed);
            (0..50)
                .map(|i| m.get("KRW-XRP").trade(i).price)
                .collect::<Vec<f64>>()
        };
        assert_eq!(prices(3), prices(3));
        assert_ne!(prices(3), prices(4));
    }

    #[test]
    fn every_reader_of_a_tick_draws_the_same_messages() {
        use crate::simulator::encode;
        use crate::upbit::types::StreamType;
        let mut markets = Markets::new(5);
        let btc = markets.get("KRW-BTC");
        btc.tape_until(1_000, 100);
        btc.tape_until(1_500, 100);
        let ticks = btc.ticks_since(0);
        assert_eq!(ticks.len(), 5);
        let draw = |tick: &Tick| {
            let mut state = tick.state.as_ref().clone();
            let at = tick.trade.timestamp_ms;
            [
                encode::ticker(&mut state, at, StreamType::Realtime, false, false),
                encode::orderbook(
                    &mut state,
                    "KRW-BTC",
                    15,
                    0.0,
                    at,
                    StreamType::Realtime,
                    false,
                ),
                encode::candle(
                    &mut state,
                    CandleInterval::M1,
                    at,
                    StreamType::Realtime,
                    false,
                ),
            ]
        };
        for tick in &ticks {
            assert_eq!(draw(tick), draw(tick), "the same tick, the same messages");
            assert_eq!(
                tick.state.last.as_ref().unwrap().sequential_id,
                tick.trade.sequential_id
            );
        }
        assert_ne!(draw(&ticks[0]), draw(&ticks[1]), "each tick its own state");
        assert_eq!(
            btc.ticks_since(ticks[2].trade.sequential_id).len(),
            2,
            "a reader picks up after the last tick it sent"
        );
    }

    #[test]
    fn orderbooks_surround_the_price() {
        let mut markets = Markets::new(1);
        let eth = markets.get("KRW-ETH");
        eth.trade(0);
        let book = eth.orderbook(15);
        assert_eq!(book.len(), 15);
        assert!(book[0][0] > eth.price && book[0][1] <= eth.price);
        assert!(book
            .windows(2)
            .all(|w| w[1][0] > w[0][0] && w[1][1] < w[0][1]));
    }
}
