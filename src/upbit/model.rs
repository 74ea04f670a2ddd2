//! Wire types of Upbit's quotation stream, decoded from DEFAULT and SIMPLE keys alike.
//!
//! Every struct accepts both spellings of a field (`trade_price` / `tp`), ignores fields it does
//! not know, and keeps fields that Upbit has added or dropped over the years optional, so a
//! message from 2021 and one from 2025 both decode. Numbers documented as doubles arrive as JSON
//! integers or floats; both land in `f64`. `sequential_id` exceeds 2^53 and is a `u64`.

use serde::{Deserialize, Serialize};

use super::types::{market_code, CandleInterval, Change, DataType, Side, StreamType};

/// One decoded message from the stream.
///
/// Tickers dominate the stream and are the largest variant; boxing them would add an allocation
/// per message for no gain (the message is moved once, into an actor envelope), hence the allow.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum Message {
    /// `type: ticker`.
    Ticker(Ticker),
    /// `type: trade`.
    Trade(Trade),
    /// `type: orderbook`.
    Orderbook(Orderbook),
    /// `type: candle.*`.
    Candle(Candle),
    /// `{"status":"UP"}`, the answer to a text `PING`.
    Status(Status),
    /// `{"error":{"name":..,"message":..}}`.
    Error(ServerError),
    /// The answer to a `LIST_SUBSCRIPTIONS` request.
    Subscriptions(SubscriptionList),
}

impl Message {
    /// The market code of a market message (without any `.N` orderbook depth suffix).
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Ticker(m) => Some(&m.code),
            Self::Trade(m) => Some(&m.code),
            Self::Orderbook(m) => Some(market_code(&m.code)),
            Self::Candle(m) => Some(&m.code),
            _ => None,
        }
    }

    /// The data type of a market message; `None` for status, error and list answers.
    pub fn data_type(&self) -> Option<DataType> {
        match self {
            Self::Ticker(_) => Some(DataType::Ticker),
            Self::Trade(_) => Some(DataType::Trade),
            Self::Orderbook(_) => Some(DataType::Orderbook),
            Self::Candle(c) => Some(DataType::Candle(c.interval)),
            _ => None,
        }
    }

    /// The exchange timestamp of a market message, in milliseconds since the epoch.
    pub fn timestamp_ms(&self) -> Option<u64> {
        match self {
            Self::Ticker(m) => m.timestamp,
            Self::Trade(m) => m.timestamp,
            Self::Orderbook(m) => m.timestamp,
            Self::Candle(m) => m.timestamp,
            _ => None,
        }
    }
}

/// A ticker: the market's current price and 24 h statistics.
///
/// ```json
/// {"type":"ticker","code":"KRW-BTC","opening_price":31883000,"high_price":32310000,
///  "trade_price":32287000,"change":"RISE","signed_change_rate":0.0126713295,
///  "acc_trade_price_24h":228827082483.70729000,"market_state":"ACTIVE",
///  "timestamp":1676965262177,"stream_type":"REALTIME", ...}
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Ticker {
    #[serde(alias = "cd")]
    pub code: String,
    #[serde(alias = "op")]
    pub opening_price: Option<f64>,
    #[serde(alias = "hp")]
    pub high_price: Option<f64>,
    #[serde(alias = "lp")]
    pub low_price: Option<f64>,
    #[serde(alias = "tp")]
    pub trade_price: f64,
    #[serde(alias = "pcp")]
    pub prev_closing_price: Option<f64>,
    #[serde(alias = "c")]
    pub change: Option<Change>,
    #[serde(alias = "cp")]
    pub change_price: Option<f64>,
    #[serde(alias = "scp")]
    pub signed_change_price: Option<f64>,
    #[serde(alias = "cr")]
    pub change_rate: Option<f64>,
    #[serde(alias = "scr")]
    pub signed_change_rate: Option<f64>,
    #[serde(alias = "tv")]
    pub trade_volume: Option<f64>,
    #[serde(alias = "atv")]
    pub acc_trade_volume: Option<f64>,
    #[serde(alias = "atv24h")]
    pub acc_trade_volume_24h: Option<f64>,
    #[serde(alias = "atp")]
    pub acc_trade_price: Option<f64>,
    #[serde(alias = "atp24h")]
    pub acc_trade_price_24h: Option<f64>,
    /// `yyyyMMdd` (UTC).
    #[serde(alias = "tdt")]
    pub trade_date: Option<String>,
    /// `HHmmss` (UTC).
    #[serde(alias = "ttm")]
    pub trade_time: Option<String>,
    #[serde(alias = "ttms")]
    pub trade_timestamp: Option<u64>,
    #[serde(alias = "ab")]
    pub ask_bid: Option<Side>,
    #[serde(alias = "aav")]
    pub acc_ask_volume: Option<f64>,
    #[serde(alias = "abv")]
    pub acc_bid_volume: Option<f64>,
    #[serde(alias = "h52wp")]
    pub highest_52_week_price: Option<f64>,
    #[serde(alias = "h52wdt")]
    pub highest_52_week_date: Option<String>,
    #[serde(alias = "l52wp")]
    pub lowest_52_week_price: Option<f64>,
    #[serde(alias = "l52wdt")]
    pub lowest_52_week_date: Option<String>,
    /// `PREVIEW`, `ACTIVE` or `DELISTED` (kept as text: Upbit may add states).
    #[serde(alias = "ms")]
    pub market_state: Option<String>,
    #[serde(alias = "its")]
    pub is_trading_suspended: Option<bool>,
    /// Documented as a date and only ever seen as null: text (`2024-06-13`) or a number
    /// (`20240613`) is kept as text; any other shape is dropped by the lenient decoder.
    #[serde(alias = "dd", default, deserialize_with = "date_text")]
    pub delisting_date: Option<String>,
    /// `NONE` or `CAUTION`.
    #[serde(alias = "mw")]
    pub market_warning: Option<String>,
    /// Exchange time of the message, ms since the epoch.
    #[serde(alias = "tms")]
    pub timestamp: Option<u64>,
    #[serde(alias = "st")]
    pub stream_type: Option<StreamType>,
}

/// One trade.
///
/// ```json
/// {"type":"trade","code":"KRW-BTC","timestamp":1730336862082,"trade_date":"2024-10-31",
///  "trade_time":"01:07:42","trade_timestamp":1730336862047,"trade_price":100473000.00000000,
///  "trade_volume":0.00014208,"ask_bid":"BID","sequential_id":17303368620470000,
///  "best_ask_price":100473000,"stream_type":"SNAPSHOT", ...}
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Trade {
    #[serde(alias = "cd")]
    pub code: String,
    #[serde(alias = "tp")]
    pub trade_price: f64,
    #[serde(alias = "tv")]
    pub trade_volume: f64,
    #[serde(alias = "ab")]
    pub ask_bid: Side,
    #[serde(alias = "pcp")]
    pub prev_closing_price: Option<f64>,
    #[serde(alias = "c")]
    pub change: Option<Change>,
    #[serde(alias = "cp")]
    pub change_price: Option<f64>,
    /// `yyyy-MM-dd` (UTC); note the SIMPLE key is `td`, not the ticker's `tdt`.
    #[serde(alias = "td")]
    pub trade_date: Option<String>,
    /// `HH:mm:ss` (UTC).
    #[serde(alias = "ttm")]
    pub trade_time: Option<String>,
    #[serde(alias = "ttms")]
    pub trade_timestamp: Option<u64>,
    #[serde(alias = "tms")]
    pub timestamp: Option<u64>,
    /// Unique per trade, not ordered, above 2^53.
    #[serde(alias = "sid")]
    pub sequential_id: Option<u64>,
    #[serde(alias = "bap")]
    pub best_ask_price: Option<f64>,
    #[serde(alias = "bas")]
    pub best_ask_size: Option<f64>,
    #[serde(alias = "bbp")]
    pub best_bid_price: Option<f64>,
    #[serde(alias = "bbs")]
    pub best_bid_size: Option<f64>,
    #[serde(alias = "st")]
    pub stream_type: Option<StreamType>,
}

impl Trade {
    /// A trade with its code, price, volume and side and nothing else (every optional field
    /// absent, `timestamp` 1): what tests of the pipeline need, without a page of `None`s.
    pub fn bare(code: &str, trade_price: f64, trade_volume: f64, ask_bid: Side) -> Self {
        Self {
            code: code.to_owned(),
            trade_price,
            trade_volume,
            ask_bid,
            prev_closing_price: None,
            change: None,
            change_price: None,
            trade_date: None,
            trade_time: None,
            trade_timestamp: None,
            timestamp: Some(1),
            sequential_id: None,
            best_ask_price: None,
            best_ask_size: None,
            best_bid_price: None,
            best_bid_size: None,
            stream_type: None,
        }
    }
}

/// One price level of an orderbook: an ask and a bid side by side, best first.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
pub struct OrderbookUnit {
    #[serde(alias = "ap")]
    pub ask_price: f64,
    #[serde(alias = "bp")]
    pub bid_price: f64,
    #[serde(alias = "as")]
    pub ask_size: f64,
    #[serde(alias = "bs")]
    pub bid_size: f64,
}

/// A full top-N orderbook snapshot (Upbit never sends deltas).
///
/// ```json
/// {"ty":"orderbook","cd":"KRW-LAMB","tms":1618678262640,"tas":25752275.55420627,
///  "tbs":14407925.20098682,"obu":[{"ap":127.0,"bp":126.0,"as":280460.37,"bs":688682.44}, ...],
///  "st":"REALTIME"}
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Orderbook {
    #[serde(alias = "cd")]
    pub code: String,
    #[serde(alias = "tas")]
    pub total_ask_size: f64,
    #[serde(alias = "tbs")]
    pub total_bid_size: f64,
    #[serde(alias = "obu")]
    pub orderbook_units: Vec<OrderbookUnit>,
    #[serde(alias = "tms")]
    pub timestamp: Option<u64>,
    /// Price grouping unit (KRW markets), 0 for none; absent in older captures.
    #[serde(alias = "lv")]
    pub level: Option<f64>,
    #[serde(alias = "st")]
    pub stream_type: Option<StreamType>,
}

impl Orderbook {
    /// The best (first) level, if the book is not empty.
    pub fn best(&self) -> Option<&OrderbookUnit> {
        self.orderbook_units.first()
    }
}

/// A candle (`candle.1s` … `candle.240m`); the same candle may arrive several times, the last wins.
///
/// ```json
/// {"type":"candle.1s","code":"KRW-BTC","candle_date_time_utc":"2025-01-02T04:28:05",
///  "opening_price":142009000.00000000,"trade_price":142009000.00000000,
///  "candle_acc_trade_volume":0.00606119,"timestamp":1735792085824,"stream_type":"REALTIME", ...}
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Candle {
    /// Taken from the message's `type`; set by the decoder.
    #[serde(skip, default = "default_interval")]
    pub interval: CandleInterval,
    #[serde(alias = "cd")]
    pub code: String,
    /// `yyyy-MM-ddTHH:mm:ss`.
    #[serde(alias = "cdttmu")]
    pub candle_date_time_utc: Option<String>,
    #[serde(alias = "cdttmk")]
    pub candle_date_time_kst: Option<String>,
    #[serde(alias = "op")]
    pub opening_price: f64,
    #[serde(alias = "hp")]
    pub high_price: f64,
    #[serde(alias = "lp")]
    pub low_price: f64,
    #[serde(alias = "tp")]
    pub trade_price: f64,
    #[serde(alias = "catv")]
    pub candle_acc_trade_volume: Option<f64>,
    #[serde(alias = "catp")]
    pub candle_acc_trade_price: Option<f64>,
    #[serde(alias = "tms")]
    pub timestamp: Option<u64>,
    #[serde(alias = "st")]
    pub stream_type: Option<StreamType>,
}

/// A date as text, or as a number written as its digits.
fn date_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Date {
        Text(String),
        Number(u64),
    }
    Ok(Option::<Date>::deserialize(d)?.map(|date| match date {
        Date::Text(text) => text,
        Date::Number(number) => number.to_string(),
    }))
}

fn default_interval() -> CandleInterval {
    CandleInterval::S1
}

/// `{"status":"UP"}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Status {
    pub status: String,
}

/// An error frame: `{"error":{"name":"NO_TICKET","message":"Ticket field must be contained."}}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ServerError {
    /// `INVALID_AUTH`, `WRONG_FORMAT`, `NO_TICKET`, `NO_TYPE`, `NO_CODES`, `INVALID_PARAM`, ...
    pub name: String,
    /// Human text; varies between documentation versions, so match on `name`.
    #[serde(default)]
    pub message: Option<String>,
}

/// One entry of a `LIST_SUBSCRIPTIONS` answer (SIMPLE keys `ty`, `cds`, `lv`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ListedSubscription {
    #[serde(rename = "type", alias = "ty")]
    pub data_type: String,
    #[serde(default, alias = "cds")]
    pub codes: Vec<String>,
    /// Orderbook price grouping, when Upbit lists one.
    #[serde(default, alias = "lv", skip_serializing_if = "Option::is_none")]
    pub level: Option<f64>,
}

/// The answer to `LIST_SUBSCRIPTIONS`, in the connection's format:
/// DEFAULT `{"method":"LIST_SUBSCRIPTIONS","result":[{"type":"ticker","codes":["KRW-BTC"]}],"ticket":"x"}`,
/// SIMPLE `{"mthd":"LIST_SUBSCRIPTIONS","rslt":[{"ty":"ticker","cds":["KRW-BTC"]}],"tckt":"x"}`;
/// the list formats may wrap either in an array.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SubscriptionList {
    #[serde(default, alias = "rslt")]
    pub result: Vec<ListedSubscription>,
    #[serde(default, alias = "tckt")]
    pub ticket: Option<String>,
}
