//! `/api/v1/markets` and `/api/v1/markets/{code}`: the latest data, normalised to DEFAULT field
//! names, each with its exchange and receive timestamps.
//!
//! [`Entry`] is that normalised shape; the live stream (`src/stream/`) sends the same, plus its
//! event name.

use std::time::SystemTime;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::{json, Value};

use super::auth::Access;
use super::error::ApiError;
use super::AppState;
use crate::clock::unix_ms;
use crate::messages::{GetMarket, GetMarkets, MarketView};
use crate::upbit::market_list::MarketListing;
use crate::upbit::model::{Candle, Orderbook, Ticker, Trade};
use crate::upbit::types::code_problem;
use crate::upbit::{DataType, Message};

/// One market message as the data API and the live stream present it: the message under
/// `data` with Upbit's DEFAULT field names, its exchange and receive timestamps in Unix
/// milliseconds, and the delay between them.
///
/// ```json
/// {"data":{"code":"KRW-BTC","trade_price":32287000.0,...},"exchange_timestamp_ms":1676965262177,
///  "received_timestamp_ms":1676965262190,"delay_ms":13}
/// ```
#[derive(Debug, Serialize)]
pub struct Entry<'a> {
    /// The stream's event name (the data type, e.g. `ticker`, `candle.1m`); absent in the data API.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<&'static str>,
    /// The candle type (`candle.1m`), for candles only.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub candle_type: Option<&'static str>,
    /// The message itself.
    pub data: MarketData<'a>,
    /// Upbit's `timestamp`, if the message had one.
    pub exchange_timestamp_ms: Option<u64>,
    /// When the frame was read from the socket.
    pub received_timestamp_ms: u64,
    /// Receive minus exchange time (0 when the clocks disagree the other way).
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

fn entry(data: MarketData<'_>, received: SystemTime) -> Value {
    serde_json::to_value(Entry::new(data, received)).unwrap_or(Value::Null)
}

/// A market's entry in Upbit's market list: names and the market event, each as sent (`null`
/// where the list said nothing).
fn listing_json(listing: &MarketListing) -> Value {
    json!({
        "korean_name": listing.korean_name,
        "english_name": listing.english_name,
        "market_event": listing.event.as_ref().map(|e| json!({
            "warning": e.warning,
            "caution": e.caution,
        })),
    })
}

fn market_json(code: &str, view: &MarketView) -> Value {
    let latest = &view.latest;
    json!({
        "code": code,
        "listing": view.listing.as_ref().map(listing_json),
        "ticker": latest.ticker.as_ref().map(|(t, at)| entry(MarketData::Ticker(t), *at)),
        "trade": latest.trade.as_ref().map(|(t, at)| entry(MarketData::Trade(t), *at)),
        "orderbook": latest.orderbook.as_ref().map(|(o, at)| entry(MarketData::Orderbook(o), *at)),
        "candle": latest.candle.as_ref().map(|(c, at)| entry(MarketData::Candle(c), *at)),
    })
}

fn unavailable() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the metrics actor is not running",
    )
}

pub async fn markets(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.auth.check(&request, Access::Read)?;
    let markets = state
        .metrics_actor
        .send(GetMarkets)
        .await
        .map_err(|_| unavailable())?;
    let list: Vec<Value> = markets
        .iter()
        .map(|(code, latest)| {
            json!({
                "code": code,
                "ticker": latest.ticker.as_ref().map(|(t, at)| entry(MarketData::Ticker(t), *at)),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "markets": list })))
}

pub async fn market(
    request: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.auth.check(&request, Access::Read)?;
    let code = path.into_inner();
    if let Some(problem) = code_problem(&code) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_code",
            problem,
        ));
    }
    let latest = state
        .metrics_actor
        .send(GetMarket { code: code.clone() })
        .await
        .map_err(|_| unavailable())?;
    match latest {
        Some(view) => Ok(HttpResponse::Ok().json(market_json(&code, &view))),
        None => Err(ApiError::not_found(format!(
            "{code} is not subscribed; see GET /api/v1/subscriptions"
        ))),
    }
}
