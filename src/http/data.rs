//! `/api/v1/markets` and `/api/v1/markets/{code}`: the latest data, normalised to DEFAULT field
//! names, each with its exchange and receive timestamps.

use std::time::SystemTime;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::{json, Value};

use super::auth::Access;
use super::error::ApiError;
use super::AppState;
use crate::actors::metrics::LatestMarket;
use crate::messages::{GetMarket, GetMarkets};
use crate::status::unix_seconds;
use crate::upbit::types::code_problem;

fn entry<T: Serialize>(data: &T, exchange_ms: Option<u64>, received: SystemTime) -> Value {
    let received_ms = (unix_seconds(received) * 1000.0).round() as u64;
    json!({
        "data": data,
        "exchange_timestamp_ms": exchange_ms,
        "received_timestamp_ms": received_ms,
        "delay_ms": exchange_ms.map(|ex| received_ms.saturating_sub(ex)),
    })
}

fn market_json(code: &str, latest: &LatestMarket) -> Value {
    json!({
        "code": code,
        "ticker": latest.ticker.as_ref().map(|(t, at)| entry(t, t.timestamp, *at)),
        "trade": latest.trade.as_ref().map(|(t, at)| entry(t, t.timestamp, *at)),
        "orderbook": latest.orderbook.as_ref().map(|(o, at)| entry(o, o.timestamp, *at)),
        "candle": latest.candle.as_ref().map(|(c, at)| {
            let mut value = entry(c, c.timestamp, *at);
            value["type"] = json!(crate::upbit::DataType::Candle(c.interval).as_str());
            value
        }),
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
                "ticker": latest.ticker.as_ref().map(|(t, at)| entry(t, t.timestamp, *at)),
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
        Some(latest) => Ok(HttpResponse::Ok().json(market_json(&code, &latest))),
        None => Err(ApiError::not_found(format!(
            "{code} is not subscribed; see GET /api/v1/subscriptions"
        ))),
    }
}
