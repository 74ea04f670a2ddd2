//! The wire types, briefly: the same fields and aliases as [`model`](crate::upbit::model)'s, the
//! fields the metrics read as values, every other one only checked for its shape.

use std::borrow::Cow;

use serde::de::Visitor;
use serde::{Deserialize, Deserializer};

use super::{
    Brief, CandleValues, MarketCode, MarketState, OrderbookValues, TickerValues, TradeValues,
    Values,
};
use crate::clock::{date_to_unix_seconds, datetime_to_unix_seconds};
use crate::upbit::model::OrderbookUnit;
use crate::upbit::types::{CandleInterval, Change, DataType, Side, StreamType};

// --- shape checks: accept exactly what the wire type's field accepts, keep nothing ------------

/// A JSON number that reads as an `f64` (what `f64` accepts), not kept.
struct Number;

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        f64::deserialize(d).map(|_| Self)
    }
}

/// A JSON string (what `String` accepts: escapes decoded and checked), not copied.
struct Text;

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl Visitor<'_> for TextVisitor {
            type Value = Text;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E>(self, _: &str) -> Result<Text, E> {
                Ok(Text)
            }
        }
        d.deserialize_str(TextVisitor)
    }
}

/// `delisting_date`: text, or a number written as its digits (what `model::date_text` accepts).
enum DateText<'a> {
    Text(Cow<'a, str>),
    Number(u64),
}

impl<'de: 'a, 'a> Deserialize<'de> for DateText<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct DateVisitor;
        impl<'de> Visitor<'de> for DateVisitor {
            type Value = DateText<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a date as text or digits")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(DateText::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(DateText::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(DateText::Number(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
                u64::try_from(v)
                    .map(DateText::Number)
                    .map_err(|_| E::custom("a negative date"))
            }
        }
        d.deserialize_any(DateVisitor)
    }
}

impl DateText<'_> {
    fn unix_seconds(&self) -> Option<f64> {
        match self {
            Self::Text(text) => date_to_unix_seconds(text),
            Self::Number(number) => date_to_unix_seconds(&number.to_string()),
        }
    }
}

// --- the wire types ----------------------------------------------------------------------
// Fields that only have their shape checked are never read, hence the `dead_code` allows. A
// text field the metrics read is a `&str`: it refuses an escaped string, which the full decode
// then reads (a code is a `Cow`, borrowed unless escaped).

#[derive(Deserialize)]
#[allow(dead_code)]
pub(super) struct TickerWire<'a> {
    #[serde(borrow, alias = "cd")]
    code: Cow<'a, str>,
    #[serde(alias = "op")]
    opening_price: Option<Number>,
    #[serde(alias = "hp")]
    high_price: Option<Number>,
    #[serde(alias = "lp")]
    low_price: Option<Number>,
    #[serde(alias = "tp")]
    trade_price: f64,
    #[serde(alias = "pcp")]
    prev_closing_price: Option<Number>,
    #[serde(alias = "c")]
    change: Option<Change>,
    #[serde(alias = "cp")]
    change_price: Option<Number>,
    #[serde(alias = "scp")]
    signed_change_price: Option<Number>,
    #[serde(alias = "cr")]
    change_rate: Option<Number>,
    #[serde(alias = "scr")]
    signed_change_rate: Option<f64>,
    #[serde(alias = "tv")]
    trade_volume: Option<Number>,
    #[serde(alias = "atv")]
    acc_trade_volume: Option<Number>,
    #[serde(alias = "atv24h")]
    acc_trade_volume_24h: Option<f64>,
    #[serde(alias = "atp")]
    acc_trade_price: Option<Number>,
    #[serde(alias = "atp24h")]
    acc_trade_price_24h: Option<f64>,
    #[serde(alias = "tdt")]
    trade_date: Option<Text>,
    #[serde(alias = "ttm")]
    trade_time: Option<Text>,
    #[serde(alias = "ttms")]
    trade_timestamp: Option<u64>,
    #[serde(alias = "ab")]
    ask_bid: Option<Side>,
    #[serde(alias = "aav")]
    acc_ask_volume: Option<Number>,
    #[serde(alias = "abv")]
    acc_bid_volume: Option<Number>,
    #[serde(alias = "h52wp")]
    highest_52_week_price: Option<Number>,
    #[serde(alias = "h52wdt")]
    highest_52_week_date: Option<Text>,
    #[serde(alias = "l52wp")]
    lowest_52_week_price: Option<Number>,
    #[serde(alias = "l52wdt")]
    lowest_52_week_date: Option<Text>,
    #[serde(borrow, alias = "ms")]
    market_state: Option<&'a str>,
    #[serde(alias = "its")]
    is_trading_suspended: Option<bool>,
    #[serde(borrow, alias = "dd", default)]
    delisting_date: Option<DateText<'a>>,
    #[serde(borrow, alias = "mw")]
    market_warning: Option<&'a str>,
    #[serde(alias = "tms")]
    timestamp: Option<u64>,
    #[serde(alias = "st")]
    stream_type: Option<StreamType>,
}

impl TickerWire<'_> {
    pub(super) fn brief(self) -> Brief {
        Brief {
            data_type: DataType::Ticker,
            code: MarketCode::new(&self.code),
            timestamp: self.timestamp,
            values: Values::Ticker(TickerValues {
                trade_price: self.trade_price,
                signed_change_rate: self.signed_change_rate,
                acc_trade_volume_24h: self.acc_trade_volume_24h,
                acc_trade_price_24h: self.acc_trade_price_24h,
                is_trading_suspended: self.is_trading_suspended,
                warning: self.market_warning.map(|w| w != "NONE"),
                delisting_at: self.delisting_date.and_then(|d| d.unix_seconds()),
                market_state: self.market_state.map(MarketState::from_wire),
            }),
        }
    }
}

#[derive(Deserialize)]
#[allow(dead_code)]
pub(super) struct TradeWire<'a> {
    #[serde(borrow, alias = "cd")]
    code: Cow<'a, str>,
    #[serde(alias = "tp")]
    trade_price: f64,
    #[serde(alias = "tv")]
    trade_volume: f64,
    #[serde(alias = "ab")]
    ask_bid: Side,
    #[serde(alias = "pcp")]
    prev_closing_price: Option<Number>,
    #[serde(alias = "c")]
    change: Option<Change>,
    #[serde(alias = "cp")]
    change_price: Option<Number>,
    #[serde(alias = "td")]
    trade_date: Option<Text>,
    #[serde(alias = "ttm")]
    trade_time: Option<Text>,
    #[serde(alias = "ttms")]
    trade_timestamp: Option<u64>,
    #[serde(alias = "tms")]
    timestamp: Option<u64>,
    #[serde(alias = "sid")]
    sequential_id: Option<u64>,
    #[serde(alias = "bap")]
    best_ask_price: Option<Number>,
    #[serde(alias = "bas")]
    best_ask_size: Option<Number>,
    #[serde(alias = "bbp")]
    best_bid_price: Option<Number>,
    #[serde(alias = "bbs")]
    best_bid_size: Option<Number>,
    #[serde(alias = "st")]
    stream_type: Option<StreamType>,
}

impl TradeWire<'_> {
    pub(super) fn brief(self) -> Brief {
        Brief {
            data_type: DataType::Trade,
            code: MarketCode::new(&self.code),
            timestamp: self.timestamp,
            values: Values::Trade(TradeValues {
                trade_price: self.trade_price,
                trade_volume: self.trade_volume,
                ask_bid: self.ask_bid,
            }),
        }
    }
}

#[derive(Deserialize)]
#[allow(dead_code)]
pub(super) struct OrderbookWire<'a> {
    #[serde(borrow, alias = "cd")]
    code: Cow<'a, str>,
    #[serde(alias = "tas")]
    total_ask_size: f64,
    #[serde(alias = "tbs")]
    total_bid_size: f64,
    #[serde(alias = "obu")]
    orderbook_units: Vec<OrderbookUnit>,
    #[serde(alias = "tms")]
    timestamp: Option<u64>,
    #[serde(alias = "lv")]
    level: Option<Number>,
    #[serde(alias = "st")]
    stream_type: Option<StreamType>,
}

impl OrderbookWire<'_> {
    pub(super) fn brief(self) -> Brief {
        Brief {
            data_type: DataType::Orderbook,
            code: MarketCode::new(&self.code),
            timestamp: self.timestamp,
            values: Values::Orderbook(OrderbookValues {
                total_ask_size: self.total_ask_size,
                total_bid_size: self.total_bid_size,
                units: self.orderbook_units,
            }),
        }
    }
}

#[derive(Deserialize)]
#[allow(dead_code)]
pub(super) struct CandleWire<'a> {
    #[serde(borrow, alias = "cd")]
    code: Cow<'a, str>,
    #[serde(borrow, alias = "cdttmu")]
    candle_date_time_utc: Option<&'a str>,
    #[serde(alias = "cdttmk")]
    candle_date_time_kst: Option<Text>,
    #[serde(alias = "op")]
    opening_price: f64,
    #[serde(alias = "hp")]
    high_price: f64,
    #[serde(alias = "lp")]
    low_price: f64,
    #[serde(alias = "tp")]
    trade_price: f64,
    #[serde(alias = "catv")]
    candle_acc_trade_volume: Option<f64>,
    #[serde(alias = "catp")]
    candle_acc_trade_price: Option<Number>,
    #[serde(alias = "tms")]
    timestamp: Option<u64>,
    #[serde(alias = "st")]
    stream_type: Option<StreamType>,
}

impl CandleWire<'_> {
    /// The brief, as a 1 s candle: [`Brief::read`] sets the interval from the type.
    pub(super) fn brief(self) -> Brief {
        Brief {
            data_type: DataType::Candle(CandleInterval::S1),
            code: MarketCode::new(&self.code),
            timestamp: self.timestamp,
            values: Values::Candle(CandleValues {
                opening_price: self.opening_price,
                high_price: self.high_price,
                low_price: self.low_price,
                trade_price: self.trade_price,
                candle_acc_trade_volume: self.candle_acc_trade_volume,
                start: self.candle_date_time_utc.and_then(datetime_to_unix_seconds),
            }),
        }
    }
}
