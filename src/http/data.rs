//! `/api/v1/markets` and `/api/v1/markets/{code}`: the latest data, normalised to DEFAULT field
//! names, each with its exchange and receive timestamps.
//!
//! [`Entry`](crate::view::Entry) is that normalised shape; the live stream (`src/stream/`) sends
//! the same, plus its event name.

use std::time::SystemTime;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::auth::Access;
use super::error::ApiError;
use super::AppState;
use crate::messages::{GetMarket, GetMarkets, MarketView};
use crate::upbit::market_list::MarketListing;
use crate::upbit::types::code_problem;
use crate::view::{Entry, MarketData};

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
