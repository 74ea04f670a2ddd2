//! Series of the market-structure figures of one code: the orderbook's top of book, mid, spread,
//! imbalance and depth bands, and the latest candle of each candle type. Each is created with
//! pre-resolved handles on the code's first message of its kind (a price of 0 before any data
//! would lie), set from each message without a label lookup or an allocation, and removed with
//! its pair.

use crate::telemetry::family::{Gauge, GaugeFamily, IntGauge};

use super::figures::{book_figures, MAX_DEPTH_BANDS};
use crate::telemetry::Metrics;
use crate::upbit::brief::{CandleValues, OrderbookValues};
use crate::upbit::DataType;

/// The sides, in the order of [`BookFigures::depth`](super::figures::BookFigures).
const SIDES: [&str; 2] = ["ask", "bid"];

/// Orderbook series of one code.
pub(super) struct OrderbookSeries {
    best_ask: Gauge,
    best_bid: Gauge,
    total_ask: Gauge,
    total_bid: Gauge,
    mid: Gauge,
    spread: Gauge,
    spread_ratio: Gauge,
    imbalance: Gauge,
    /// Per band (in the order of the bands list): `[ask, bid]` (depth, complete).
    depth: Vec<[(Gauge, IntGauge); 2]>,
}

impl OrderbookSeries {
    /// The series of `code`, for `bands` (basis points; at most [`MAX_DEPTH_BANDS`]).
    pub fn new(m: &Metrics, code: &str, bands: &[u32]) -> Self {
        let one = |vec: &GaugeFamily| vec.with_label_values(&[code]);
        let depth = bands
            .iter()
            .take(MAX_DEPTH_BANDS)
            .map(|bps| {
                let bps = bps.to_string();
                SIDES.map(|side| {
                    (
                        m.orderbook_depth.with_label_values(&[code, side, &bps]),
                        m.orderbook_depth_complete
                            .with_label_values(&[code, side, &bps]),
                    )
                })
            })
            .collect();
        Self {
            best_ask: one(&m.best_ask_price),
            best_bid: one(&m.best_bid_price),
            total_ask: one(&m.total_ask_size),
            total_bid: one(&m.total_bid_size),
            mid: one(&m.mid_price),
            spread: one(&m.spread_price),
            spread_ratio: one(&m.spread_ratio),
            imbalance: one(&m.orderbook_imbalance),
            depth,
        }
    }

    /// Sets every series from one orderbook.
    pub fn set(&self, book: &OrderbookValues, bands: &[u32]) {
        if let Some(best) = book.units.first() {
            self.best_ask.set(best.ask_price);
            self.best_bid.set(best.bid_price);
        }
        self.total_ask.set(book.total_ask_size);
        self.total_bid.set(book.total_bid_size);
        let f = book_figures(&book.units, bands);
        self.mid.set(f.mid);
        self.spread.set(f.spread);
        self.spread_ratio.set(f.spread_ratio);
        self.imbalance.set(f.imbalance);
        for (series, figures) in self.depth.iter().zip(&f.depth) {
            for ((value, complete), side) in series.iter().zip(figures) {
                value.set(side.value);
                complete.set(i64::from(side.complete));
            }
        }
    }

    /// Removes every series of `code`.
    pub fn remove(m: &Metrics, code: &str, bands: &[u32]) {
        for vec in [
            &m.best_ask_price,
            &m.best_bid_price,
            &m.total_ask_size,
            &m.total_bid_size,
            &m.mid_price,
            &m.spread_price,
            &m.spread_ratio,
            &m.orderbook_imbalance,
        ] {
            let _ = vec.remove_label_values(&[code]);
        }
        for bps in bands.iter().take(MAX_DEPTH_BANDS) {
            let bps = bps.to_string();
            for side in SIDES {
                let _ = m.orderbook_depth.remove_label_values(&[code, side, &bps]);
                let _ = m
                    .orderbook_depth_complete
                    .remove_label_values(&[code, side, &bps]);
            }
        }
    }
}

/// Which latest-candle series are exported beside the close (always).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CandleFields {
    pub open: bool,
    pub high: bool,
    pub low: bool,
    pub volume: bool,
    pub start: bool,
}

impl CandleFields {
    pub const ALL: Self = Self {
        open: true,
        high: true,
        low: true,
        volume: true,
        start: true,
    };

    /// From the names `open`, `high`, `low`, `volume`, `start` (others are ignored: the
    /// settings reject them).
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Self {
        let has = |name: &str| names.iter().any(|n| n.as_ref() == name);
        Self {
            open: has("open"),
            high: has("high"),
            low: has("low"),
            volume: has("volume"),
            start: has("start"),
        }
    }
}

/// Series of the latest candle of one candle type and code; `None` for a field not exported.
pub(super) struct CandleSeries {
    open: Option<Gauge>,
    high: Option<Gauge>,
    low: Option<Gauge>,
    close: Gauge,
    volume: Option<Gauge>,
    start: Option<Gauge>,
}

impl CandleSeries {
    pub fn new(m: &Metrics, data_type: DataType, code: &str, fields: CandleFields) -> Self {
        let labels = [data_type.as_str(), code];
        let one = |on: bool, vec: &GaugeFamily| on.then(|| vec.with_label_values(&labels));
        Self {
            open: one(fields.open, &m.candle_open_price),
            high: one(fields.high, &m.candle_high_price),
            low: one(fields.low, &m.candle_low_price),
            close: m.candle_close_price.with_label_values(&labels),
            volume: one(fields.volume, &m.candle_volume),
            start: one(fields.start, &m.candle_start_timestamp),
        }
    }

    /// Sets the series from a candle. Upbit repeats a candle while it changes: every message
    /// overwrites the last, and a new start time means the next candle began. A candle without a
    /// readable start time or volume leaves those two series as they were.
    pub fn set(&self, candle: &CandleValues) {
        for (gauge, value) in [
            (&self.open, candle.opening_price),
            (&self.high, candle.high_price),
            (&self.low, candle.low_price),
        ] {
            if let Some(gauge) = gauge {
                gauge.set(value);
            }
        }
        self.close.set(candle.trade_price);
        if let (Some(gauge), Some(volume)) = (&self.volume, candle.candle_acc_trade_volume) {
            gauge.set(volume);
        }
        if let (Some(gauge), Some(start)) = (&self.start, candle.start) {
            gauge.set(start);
        }
    }

    pub fn remove(m: &Metrics, data_type: DataType, code: &str) {
        let labels = [data_type.as_str(), code];
        for vec in [
            &m.candle_open_price,
            &m.candle_high_price,
            &m.candle_low_price,
            &m.candle_close_price,
            &m.candle_volume,
            &m.candle_start_timestamp,
        ] {
            let _ = vec.remove_label_values(&labels);
        }
    }
}
