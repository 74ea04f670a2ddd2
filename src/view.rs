//! What the service shows of market data, shared by the data API, the live stream and the
//! metrics actor's cache: the latest messages per code as received ([`LatestFrames`], what the
//! cache keeps) and decoded ([`LatestMarket`], what the data API shows), and one message in its
//! normalised JSON shape ([`Entry`]).

use std::time::SystemTime;

use serde::Serialize;
use utoipa::ToSchema;

use crate::clock::unix_ms;
use crate::upbit::decode::decode_as;
use crate::upbit::model::{Candle, Orderbook, Ticker, Trade};
use crate::upbit::{DataType, Message};

/// The latest message of each kind for one code, as its JSON: kept on every message without an
/// allocation (each slot reuses its room), decoded only when the data API asks.
#[derive(Debug, Clone, Default)]
pub struct LatestFrames {
    ticker: Option<LatestFrame>,
    trade: Option<LatestFrame>,
    orderbook: Option<LatestFrame>,
    candle: Option<LatestFrame>,
}

/// One kept message: its type, JSON object and receive time.
#[derive(Debug, Clone)]
struct LatestFrame {
    data_type: DataType,
    json: Vec<u8>,
    received_at: SystemTime,
}

impl LatestFrame {
    fn decode(&self) -> Option<(Message, SystemTime)> {
        // It decoded when it arrived, so it does again; `None` would only hide a bug.
        decode_as(self.data_type, &self.json)
            .ok()
            .map(|message| (message, self.received_at))
    }
}

impl LatestFrames {
    /// Keeps `json`, a market message of `data_type` received at `received_at`, as the latest
    /// of its kind.
    pub fn keep(&mut self, data_type: DataType, json: &[u8], received_at: SystemTime) {
        let slot = match data_type {
            DataType::Ticker => &mut self.ticker,
            DataType::Trade => &mut self.trade,
            DataType::Orderbook => &mut self.orderbook,
            DataType::Candle(_) => &mut self.candle,
        };
        match slot {
            // The room of the last one is reused, unless an outsized message left far too much.
            Some(frame) if frame.json.capacity() <= 4 * json.len().max(4096) => {
                frame.data_type = data_type;
                frame.json.clear();
                frame.json.extend_from_slice(json);
                frame.received_at = received_at;
            }
            _ => {
                *slot = Some(LatestFrame {
                    data_type,
                    json: json.to_vec(),
                    received_at,
                })
            }
        }
    }

    /// Every kind's latest message, decoded.
    pub fn decode(&self) -> LatestMarket {
        let mut latest = self.decode_ticker();
        latest.trade = self
            .trade
            .as_ref()
            .and_then(LatestFrame::decode)
            .and_then(|m| match m {
                (Message::Trade(t), at) => Some((t, at)),
                _ => None,
            });
        latest.orderbook = self
            .orderbook
            .as_ref()
            .and_then(LatestFrame::decode)
            .and_then(|m| match m {
                (Message::Orderbook(o), at) => Some((o, at)),
                _ => None,
            });
        latest.candle = self
            .candle
            .as_ref()
            .and_then(LatestFrame::decode)
            .and_then(|m| match m {
                (Message::Candle(c), at) => Some((c, at)),
                _ => None,
            });
        latest
    }

    /// The latest ticker alone, decoded (the other kinds left `None`).
    pub fn decode_ticker(&self) -> LatestMarket {
        LatestMarket {
            ticker: self
                .ticker
                .as_ref()
                .and_then(LatestFrame::decode)
                .and_then(|m| match m {
                    (Message::Ticker(t), at) => Some((t, at)),
                    _ => None,
                }),
            ..LatestMarket::default()
        }
    }
}

/// The latest message of each kind for one code, with its receive time (the data API).
#[derive(Debug, Clone, Default)]
pub struct LatestMarket {
    pub ticker: Option<(Ticker, SystemTime)>,
    pub trade: Option<(Trade, SystemTime)>,
    pub orderbook: Option<(Orderbook, SystemTime)>,
    pub candle: Option<(Candle, SystemTime)>,
}

/// One market message as the data API and the live stream present it: the message under
/// `data` with Upbit's DEFAULT field names, its exchange and receive timestamps in Unix
/// milliseconds, and the delay between them.
///
/// ```json
/// {"data":{"code":"KRW-BTC","trade_price":32287000.0,...},"exchange_timestamp_ms":1676965262177,
///  "received_timestamp_ms":1676965262190,"delay_ms":13}
/// ```
#[derive(Debug, Serialize, ToSchema)]
pub struct Entry<'a> {
    /// The stream's event name (the data type, e.g. `ticker`, `candle.1m`); absent in the data API.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub event: Option<&'static str>,
    /// The candle type (`candle.1m`), for candles only.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub candle_type: Option<&'static str>,
    /// The message itself, with Upbit's DEFAULT field names.
    #[schema(value_type = Object)]
    pub data: MarketData<'a>,
    /// Upbit's `timestamp`, if the message had one.
    #[schema(required = true)]
    pub exchange_timestamp_ms: Option<u64>,
    /// When the frame was read from the socket.
    pub received_timestamp_ms: u64,
    /// Receive minus exchange time (0 when the clocks disagree the other way).
    #[schema(required = true)]
    pub delay_ms: Option<u64>,
}

/// The message of an [`Entry`], serialised as the message itself.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum MarketData<'a> {
    Ticker(&'a Ticker),
    Trade(&'a Trade),
    Orderbook(&'a Orderbook),
    Candle(&'a Candle),
}

impl<'a> Entry<'a> {
    /// The entry of a market message received at `received`; `None` for non-market messages.
    pub fn of(message: &'a Message, received: SystemTime) -> Option<Self> {
        let data = match message {
            Message::Ticker(t) => MarketData::Ticker(t),
            Message::Trade(t) => MarketData::Trade(t),
            Message::Orderbook(o) => MarketData::Orderbook(o),
            Message::Candle(c) => MarketData::Candle(c),
            _ => return None,
        };
        Some(Self::new(data, received))
    }

    pub fn new(data: MarketData<'a>, received: SystemTime) -> Self {
        let (exchange_ms, candle_type) = match data {
            MarketData::Ticker(t) => (t.timestamp, None),
            MarketData::Trade(t) => (t.timestamp, None),
            MarketData::Orderbook(o) => (o.timestamp, None),
            MarketData::Candle(c) => (c.timestamp, Some(DataType::Candle(c.interval).as_str())),
        };
        let received_ms = unix_ms(received);
        Self {
            event: None,
            candle_type,
            data,
            exchange_timestamp_ms: exchange_ms,
            received_timestamp_ms: received_ms,
            delay_ms: exchange_ms.map(|ex| received_ms.saturating_sub(ex)),
        }
    }

    /// The data type of the message.
    pub fn data_type(&self) -> DataType {
        match self.data {
            MarketData::Ticker(_) => DataType::Ticker,
            MarketData::Trade(_) => DataType::Trade,
            MarketData::Orderbook(_) => DataType::Orderbook,
            MarketData::Candle(c) => DataType::Candle(c.interval),
        }
    }
}
