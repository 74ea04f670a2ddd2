//! Applying one decoded message to the series of its (type, code): the hot path.
//!
//! One map lookup for the code and one for the pair, then only pre-resolved handles; value
//! series are created on a code's first data of their kind and kept until the pair is dropped
//! ([`series`](super::series) removes them). The message itself is kept as the code's latest
//! of its kind, for the data API.

use std::time::SystemTime;

use crate::telemetry::family::Gauge;

use super::series::{CodeSeries, Series, TickerSeries};
use super::structure::{CandleSeries, OrderbookSeries};
use crate::messages::MarketMessage;
use crate::telemetry::Metrics;
use crate::upbit::brief::{MarketState, Values};
use crate::upbit::types::Side;

impl Series {
    /// Updates the series of one message; false if its (type, code) is not subscribed.
    pub fn record(
        &mut self,
        message: &MarketMessage,
        received_at: SystemTime,
        received_unix: f64,
    ) -> bool {
        let brief = &message.brief;
        let (data_type, key) = (brief.data_type, brief.code.as_str());
        let m = &self.metrics;
        let Some(series) = self.codes.get_mut(key) else {
            return false;
        };
        let Some(pair) = series.pairs.get(&data_type) else {
            return false;
        };
        pair.received.inc();
        pair.last_received.set(received_unix);
        if let (Some(ts), Some(histograms)) = (brief.timestamp, &self.histograms[pair.type_index]) {
            histograms
                .delay
                .observe((received_unix - ts as f64 / 1000.0).max(0.0));
        }
        match &brief.values {
            Values::Ticker(t) => {
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
                if series.ticker_warning != t.warning {
                    series.ticker_warning = t.warning;
                    self.events.ticker_warning(m, key, t.warning);
                }
                match t.delisting_at {
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
                if let Some(state) = t.market_state {
                    update_market_state(series, m, key, state);
                }
            }
            Values::Trade(t) => {
                price_gauge(series, m, key).set(t.trade_price);
                let sides = series.trades.get_or_insert_with(|| {
                    ["ask", "bid"].map(|side| {
                        (
                            m.trades.with_label_values(&[key, side]),
                            m.trade_volume.with_label_values(&[key, side]),
                            m.trade_notional.with_label_values(&[key, side]),
                        )
                    })
                });
                let (count, volume, notional) = &sides[usize::from(t.ask_bid == Side::Bid)];
                count.inc();
                // A volume or price that is not a finite non-negative number is counted as a
                // trade but adds to neither sum, so VWAP = notional / volume stays exact.
                if t.trade_volume.is_finite() && t.trade_volume >= 0.0 {
                    let value = t.trade_price * t.trade_volume;
                    if value.is_finite() && value >= 0.0 {
                        volume.inc_by(t.trade_volume);
                        notional.inc_by(value);
                    }
                }
            }
            Values::Orderbook(o) => {
                let bands = &self.depth_bands;
                series
                    .orderbook
                    .get_or_insert_with(|| OrderbookSeries::new(m, key, bands))
                    .set(o, bands);
            }
            Values::Candle(c) => {
                series
                    .candles
                    .entry(data_type)
                    .or_insert_with(|| CandleSeries::new(m, data_type, key, self.candle_fields))
                    .set(c);
            }
        }
        series.latest.keep(data_type, &message.json, received_at);
        true
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

fn update_market_state(series: &mut CodeSeries, m: &Metrics, code: &str, state: MarketState) {
    let label = state.label();
    if series
        .market_state
        .as_ref()
        .is_some_and(|(s, _)| *s == label)
    {
        return;
    }
    if let Some((old, _)) = series.market_state.take() {
        let _ = m.market_state.remove_label_values(&[code, old]);
    }
    let gauge = m.market_state.with_label_values(&[code, label]);
    gauge.set(1);
    series.market_state = Some((label, gauge));
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::actors::metrics::series::tests::{book, count, ticker, trade, value};
    use crate::upbit::Subscription;
    use crate::upbit::{DataType, Message};

    const BTC: &str = "KRW-BTC";

    fn with_warning(warning: Option<&str>) -> Message {
        let Message::Ticker(mut t) = ticker() else {
            unreachable!()
        };
        t.market_warning = warning.map(str::to_owned);
        Message::Ticker(t)
    }

    fn warning(registry: &crate::telemetry::Exposition) -> Option<f64> {
        value(registry, "upbit_market_warning", &[("code", BTC)])
    }

    #[test]
    fn a_ticker_sets_its_series_and_becomes_the_latest() {
        let (registry, mut book) = book(Subscription::uniform([DataType::Ticker], [BTC]));
        let at = SystemTime::now();
        assert!(book.record_message(ticker(), at, 1_676_965_262.5));
        let pair = [("type", "ticker"), ("code", BTC)];
        assert_eq!(
            value(&registry, "upbit_received_messages_total", &pair),
            Some(1.0)
        );
        assert_eq!(
            value(&registry, "upbit_last_message_timestamp_seconds", &pair),
            Some(1_676_965_262.5)
        );
        assert_eq!(
            value(&registry, "upbit_trade_price", &[("code", BTC)]),
            Some(32_287_000.0)
        );
        assert_eq!(
            value(&registry, "upbit_trading_suspended", &[("code", BTC)]),
            Some(0.0)
        );
        assert_eq!(warning(&registry), Some(0.0), "NONE from the ticker");
        assert_eq!(count(&registry, "upbit_delisting_timestamp_seconds"), 0);
        assert_eq!(
            value(
                &registry,
                "upbit_exchange_delay_seconds",
                &[("type", "ticker")]
            ),
            Some(1.0),
            "one delay observed"
        );
        let latest = book.latest(BTC).and_then(|l| l.ticker).unwrap();
        assert_eq!(
            latest.0.code, BTC,
            "the code is put back before it is stored"
        );
        assert_eq!(latest.1, at);
        assert_eq!(
            book.last_message_times().get("ticker"),
            Some(&1_676_965_262.5)
        );
    }

    #[test]
    fn trades_count_per_side_and_a_bad_volume_is_not_added() {
        let (registry, mut book) = book(Subscription::uniform([DataType::Trade], [BTC]));
        let Message::Trade(mut bad) = trade() else {
            unreachable!()
        };
        bad.trade_volume = f64::NAN;
        bad.ask_bid = Side::Ask;
        let now = SystemTime::now();
        assert!(book.record_message(trade(), now, 1.0));
        assert!(book.record_message(Message::Trade(bad), now, 2.0));
        let side = |side| [("code", BTC), ("side", side)];
        assert_eq!(
            value(&registry, "upbit_trades_total", &side("bid")),
            Some(1.0)
        );
        assert_eq!(
            value(&registry, "upbit_trades_total", &side("ask")),
            Some(1.0)
        );
        assert_eq!(
            value(&registry, "upbit_trade_volume_total", &side("bid")),
            Some(0.00014208)
        );
        assert_eq!(
            value(&registry, "upbit_trade_volume_total", &side("ask")),
            Some(0.0)
        );
        // 100 473 000 × 0.00014208 = 14 275.20384 KRW.
        let notional = value(&registry, "upbit_trade_notional_total", &side("bid")).unwrap();
        assert!((notional - 14_275.203_84).abs() < 1e-9, "{notional}");
        assert_eq!(
            value(&registry, "upbit_trade_notional_total", &side("ask")),
            Some(0.0)
        );
    }

    #[test]
    fn notional_over_volume_is_the_vwap_of_the_trades() {
        let (registry, mut book) = book(Subscription::uniform([DataType::Trade], [BTC]));
        let Message::Trade(template) = trade() else {
            unreachable!()
        };
        // Buys of 2 at 100 and 1 at 130: VWAP (200 + 130) / 3 = 110.
        for (price, volume) in [(100.0, 2.0), (130.0, 1.0)] {
            let mut t = template.clone();
            t.trade_price = price;
            t.trade_volume = volume;
            assert!(book.record_message(Message::Trade(t), SystemTime::now(), 1.0));
        }
        let side = [("code", BTC), ("side", "bid")];
        let notional = value(&registry, "upbit_trade_notional_total", &side).unwrap();
        let volume = value(&registry, "upbit_trade_volume_total", &side).unwrap();
        assert_eq!((notional, volume), (330.0, 3.0));
        assert_eq!(notional / volume, 110.0);
    }

    fn orderbook(units: &[(f64, f64, f64, f64)]) -> Message {
        use crate::upbit::model::{Orderbook, OrderbookUnit};
        Message::Orderbook(Orderbook {
            code: BTC.into(),
            total_ask_size: units.iter().map(|u| u.1).sum(),
            total_bid_size: units.iter().map(|u| u.3).sum(),
            orderbook_units: units
                .iter()
                .map(
                    |&(ask_price, ask_size, bid_price, bid_size)| OrderbookUnit {
                        ask_price,
                        bid_price,
                        ask_size,
                        bid_size,
                    },
                )
                .collect(),
            timestamp: None,
            level: None,
            stream_type: None,
        })
    }

    #[test]
    fn an_orderbook_sets_its_figures_per_band_and_they_leave_with_the_pair() {
        let (registry, mut book) = book(Subscription::uniform([DataType::Orderbook], [BTC]));
        assert_eq!(
            count(&registry, "upbit_orderbook_mid_price"),
            0,
            "no mid before data"
        );
        // mid 1000; 10 bps = 999..1001, 50 bps = 995..1005, 100 bps = 990..1010, 200 bps = 980..1020.
        let units = [
            (1000.5, 2.0, 999.5, 1.0),
            (1003.0, 1.0, 996.0, 3.0),
            (1010.0, 5.0, 990.0, 4.0),
        ];
        assert!(book.record_message(orderbook(&units), SystemTime::now(), 1.0));
        let code = [("code", BTC)];
        assert_eq!(
            value(&registry, "upbit_orderbook_mid_price", &code),
            Some(1000.0)
        );
        assert_eq!(
            value(&registry, "upbit_orderbook_spread_price", &code),
            Some(1.0)
        );
        assert_eq!(
            value(&registry, "upbit_orderbook_spread_ratio", &code),
            Some(0.001)
        );
        assert_eq!(
            value(&registry, "upbit_orderbook_imbalance", &code),
            Some(0.0)
        );
        assert_eq!(
            value(&registry, "upbit_orderbook_best_ask_price", &code),
            Some(1000.5)
        );
        let depth = |side, bps| {
            let labels = [("code", BTC), ("side", side), ("bps", bps)];
            (
                value(&registry, "upbit_orderbook_depth", &labels).unwrap(),
                value(&registry, "upbit_orderbook_depth_complete", &labels).unwrap(),
            )
        };
        assert_eq!(depth("ask", "10"), (2001.0, 1.0));
        assert_eq!(depth("bid", "50"), (3987.5, 1.0));
        // 100 bps: ask 2001 + 1003 + 1010 × 5 = 8054, nothing beyond; bid 3987.5 + 990 × 4 = 7947.5.
        assert_eq!(depth("ask", "100"), (8054.0, 0.0));
        assert_eq!(depth("bid", "100"), (7947.5, 0.0));
        assert_eq!(depth("ask", "200"), (8054.0, 0.0));
        assert_eq!(count(&registry, "upbit_orderbook_depth"), 8);

        // The next book, with only asks: no mid, so no spread and no depth.
        assert!(book.record_message(
            orderbook(&[(1001.0, 1.0, 0.0, 0.0)]),
            SystemTime::now(),
            2.0
        ));
        assert!(value(&registry, "upbit_orderbook_mid_price", &code)
            .unwrap()
            .is_nan());
        assert_eq!(
            value(&registry, "upbit_orderbook_imbalance", &code),
            Some(-1.0)
        );
        assert!(depth("bid", "10").0.is_nan());
        assert_eq!(depth("bid", "10").1, 0.0);

        book.subscribe(Subscription::default());
        for name in [
            "upbit_orderbook_mid_price",
            "upbit_orderbook_spread_price",
            "upbit_orderbook_spread_ratio",
            "upbit_orderbook_imbalance",
            "upbit_orderbook_depth",
            "upbit_orderbook_depth_complete",
            "upbit_orderbook_best_ask_price",
        ] {
            assert_eq!(count(&registry, name), 0, "{name}");
        }
    }

    #[test]
    fn a_repeated_candle_is_updated_in_place_and_the_next_one_replaces_it() {
        use crate::upbit::types::CandleInterval;
        let candle_type = DataType::Candle(CandleInterval::S1);
        let (registry, mut book) = book(Subscription::uniform([candle_type], [BTC]));
        let Message::Candle(first) = crate::upbit::decode::decode_frame(include_bytes!(
            "../../../tests/fixtures/upbit/candle_default_1.json"
        ))
        .remove(0)
        .unwrap() else {
            unreachable!()
        };
        let labels = [("type", "candle.1s"), ("code", BTC)];
        let get = |name| value(&registry, name, &labels);
        assert!(book.record_message(Message::Candle(first.clone()), SystemTime::now(), 1.0));
        assert_eq!(get("upbit_candle_open_price"), Some(first.opening_price));
        assert_eq!(get("upbit_candle_close_price"), Some(first.trade_price));
        // 2025-01-02T04:28:05 UTC.
        assert_eq!(
            get("upbit_candle_start_timestamp_seconds"),
            Some(1_735_792_085.0)
        );

        let mut again = first.clone();
        again.high_price = first.high_price + 1000.0;
        again.trade_price = first.high_price + 1000.0;
        again.candle_acc_trade_volume = Some(1.5);
        assert!(book.record_message(Message::Candle(again.clone()), SystemTime::now(), 2.0));
        assert_eq!(get("upbit_candle_high_price"), Some(again.high_price));
        assert_eq!(get("upbit_candle_close_price"), Some(again.trade_price));
        assert_eq!(get("upbit_candle_volume"), Some(1.5));
        assert_eq!(
            get("upbit_candle_start_timestamp_seconds"),
            Some(1_735_792_085.0)
        );
        assert_eq!(
            count(&registry, "upbit_candle_open_price"),
            1,
            "one candle per type"
        );

        let mut next = first;
        next.candle_date_time_utc = Some("2025-01-02T04:28:06".into());
        next.low_price = 1.0;
        assert!(book.record_message(Message::Candle(next), SystemTime::now(), 3.0));
        assert_eq!(
            get("upbit_candle_start_timestamp_seconds"),
            Some(1_735_792_086.0)
        );
        assert_eq!(get("upbit_candle_low_price"), Some(1.0));

        book.subscribe(Subscription::default());
        assert_eq!(count(&registry, "upbit_candle_start_timestamp_seconds"), 0);
        assert_eq!(count(&registry, "upbit_candle_volume"), 0);
    }

    #[test]
    fn the_ticker_warning_follows_its_changes_and_starts_over_with_the_pair() {
        let both = Subscription::uniform([DataType::Ticker, DataType::Trade], [BTC]);
        let (registry, mut book) = book(both.clone());
        let now = SystemTime::now();
        book.record_message(with_warning(Some("CAUTION")), now, 1.0);
        assert_eq!(warning(&registry), Some(1.0));
        book.record_message(with_warning(Some("CAUTION")), now, 2.0);
        assert_eq!(warning(&registry), Some(1.0), "a repeat changes nothing");
        book.record_message(with_warning(None), now, 3.0);
        assert_eq!(warning(&registry), None, "the ticker fell silent");
        book.record_message(with_warning(Some("CAUTION")), now, 4.0);
        assert_eq!(warning(&registry), Some(1.0));

        book.subscribe(Subscription::uniform([DataType::Trade], [BTC]));
        assert_eq!(warning(&registry), None, "no ticker, no ticker warning");
        book.subscribe(both);
        book.record_message(with_warning(Some("CAUTION")), now, 5.0);
        assert_eq!(
            warning(&registry),
            Some(1.0),
            "the pair's new tickers speak again"
        );
    }

    #[test]
    fn configured_bands_and_candle_fields_are_the_only_series() {
        use super::super::structure::CandleFields;
        use crate::upbit::types::CandleInterval;
        let candle_type = DataType::Candle(CandleInterval::S1);
        let (registry, mut book) = book(Subscription::uniform(
            [DataType::Orderbook, candle_type],
            [BTC],
        ));
        book.configure(vec![100], CandleFields::from_names(&["start"]));
        assert!(book.record_message(
            orderbook(&[(1000.5, 2.0, 999.5, 1.0)]),
            SystemTime::now(),
            1.0
        ));
        assert_eq!(
            count(&registry, "upbit_orderbook_depth"),
            2,
            "one band, two sides"
        );
        assert_eq!(count(&registry, "upbit_orderbook_depth_complete"), 2);
        let candle = crate::upbit::decode::decode_frame(include_bytes!(
            "../../../tests/fixtures/upbit/candle_default_1.json"
        ))
        .remove(0)
        .unwrap();
        assert!(book.record_message(candle, SystemTime::now(), 2.0));
        assert_eq!(count(&registry, "upbit_candle_start_timestamp_seconds"), 1);
        assert_eq!(
            count(&registry, "upbit_candle_close_price"),
            1,
            "the close always"
        );
        for name in [
            "upbit_candle_open_price",
            "upbit_candle_high_price",
            "upbit_candle_low_price",
            "upbit_candle_volume",
        ] {
            assert_eq!(count(&registry, name), 0, "{name}");
        }
        book.subscribe(Subscription::default());
        assert_eq!(count(&registry, "upbit_orderbook_depth"), 0);
        assert_eq!(count(&registry, "upbit_candle_start_timestamp_seconds"), 0);
    }

    #[test]
    fn market_states_are_bounded_and_one_at_a_time() {
        let label = |state| MarketState::from_wire(state).label();
        assert_eq!(label("ACTIVE"), "ACTIVE");
        assert_eq!(label("PREVIEW"), "PREVIEW");
        assert_eq!(label("DELISTED"), "DELISTED");
        assert_eq!(label("anything else"), "OTHER");

        let (registry, mut book) = book(Subscription::uniform([DataType::Ticker], [BTC]));
        let Message::Ticker(mut t) = ticker() else {
            unreachable!()
        };
        t.market_state = Some("SOMETHING_NEW".into());
        book.record_message(ticker(), SystemTime::now(), 1.0);
        book.record_message(Message::Ticker(t), SystemTime::now(), 2.0);
        assert_eq!(count(&registry, "upbit_market_state"), 1);
        assert_eq!(
            value(&registry, "upbit_market_state", &[("state", "OTHER")]),
            Some(1.0)
        );
    }

    #[test]
    fn a_repeated_undocumented_state_keeps_its_series() {
        let (registry, mut book) = book(Subscription::uniform([DataType::Ticker], [BTC]));
        let Message::Ticker(mut t) = ticker() else {
            unreachable!()
        };
        t.market_state = Some("SOMETHING_NEW".into());
        book.record_message(Message::Ticker(t.clone()), SystemTime::now(), 1.0);
        let first = book.codes[BTC].market_state.as_ref().unwrap().1.clone();
        // A gauge that is removed and recreated is a new series: writing to the old handle
        // would no longer show. The same handle must stay registered.
        book.record_message(Message::Ticker(t), SystemTime::now(), 2.0);
        first.set(7);
        assert_eq!(
            value(&registry, "upbit_market_state", &[("state", "OTHER")]),
            Some(7.0),
            "the series was not recreated"
        );
    }
}
