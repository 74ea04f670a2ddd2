//! `/api/v1/markets` and `/api/v1/markets/{code}`: the latest data, normalised to DEFAULT field
//! names, each with its exchange and receive timestamps.
//!
//! [`Entry`](crate::view::Entry) is that normalised shape; the live stream (`src/stream/`) sends
//! the same, plus its event name.

use std::collections::BTreeMap;
use std::time::SystemTime;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Reader;
use super::error::{metrics_gone, ApiError, ErrorBody};
use super::openapi::ReadRefused;
use super::AppState;
use crate::messages::{GetMarket, GetMarkets, MarketView};
use crate::upbit::market_list::{MarketEvent, MarketListing};
use crate::upbit::types::code_problem;
use crate::view::{Entry, LatestMarket, MarketData};

/// Every subscribed code with its latest ticker.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Markets)]
pub struct MarketsBody<'a> {
    pub markets: Vec<MarketSummary<'a>>,
}

/// A code and its latest ticker (`null` until one arrived).
#[derive(Debug, Serialize, ToSchema)]
pub struct MarketSummary<'a> {
    pub code: &'a str,
    #[schema(required = true)]
    pub ticker: Option<Entry<'a>>,
}

/// One code's latest ticker, trade, orderbook and candle (each `null` until one arrived) and its
/// entry in Upbit's market list.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Market)]
pub struct MarketBody<'a> {
    pub code: &'a str,
    /// The market's entry in Upbit's market list (`GET /v1/market/all?is_details=true`): `null`
    /// until a list naming it was fetched.
    #[schema(required = true)]
    pub listing: Option<Listing<'a>>,
    #[schema(required = true)]
    pub ticker: Option<Entry<'a>>,
    #[schema(required = true)]
    pub trade: Option<Entry<'a>>,
    #[schema(required = true)]
    pub orderbook: Option<Entry<'a>>,
    #[schema(required = true)]
    pub candle: Option<Entry<'a>>,
}

/// A market's entry in Upbit's market list: names and the market event, each as sent (`null`
/// where the list said nothing).
#[derive(Debug, Serialize, ToSchema)]
pub struct Listing<'a> {
    #[schema(required = true)]
    pub korean_name: Option<&'a str>,
    #[schema(required = true)]
    pub english_name: Option<&'a str>,
    /// `null` when the list carried no readable `market_event`: nothing is known then.
    #[schema(required = true)]
    pub market_event: Option<MarketEventBody<'a>>,
}

/// `market_event` of the market list.
#[derive(Debug, Serialize, ToSchema)]
pub struct MarketEventBody<'a> {
    /// The investment warning, `null` when Upbit did not send one.
    #[schema(required = true)]
    pub warning: Option<bool>,
    /// Upbit's caution flags by name (unknown flags folded into `OTHER`).
    #[schema(value_type = BTreeMap<String, bool>)]
    pub caution: &'a BTreeMap<&'static str, bool>,
}

impl<'a> From<&'a MarketListing> for Listing<'a> {
    fn from(listing: &'a MarketListing) -> Self {
        Self {
            korean_name: listing.korean_name.as_deref(),
            english_name: listing.english_name.as_deref(),
            market_event: listing.event.as_ref().map(MarketEventBody::from),
        }
    }
}

impl<'a> From<&'a MarketEvent> for MarketEventBody<'a> {
    fn from(event: &'a MarketEvent) -> Self {
        Self {
            warning: event.warning,
            caution: &event.caution,
        }
    }
}

fn ticker(latest: &LatestMarket) -> Option<Entry<'_>> {
    latest
        .ticker
        .as_ref()
        .map(|(t, at)| entry(MarketData::Ticker(t), at))
}

fn entry<'a>(data: MarketData<'a>, received: &SystemTime) -> Entry<'a> {
    Entry::new(data, *received)
}

impl<'a> MarketBody<'a> {
    fn new(code: &'a str, view: &'a MarketView) -> Self {
        let latest = &view.latest;
        Self {
            code,
            listing: view.listing.as_ref().map(Listing::from),
            ticker: ticker(latest),
            trade: latest
                .trade
                .as_ref()
                .map(|(t, at)| entry(MarketData::Trade(t), at)),
            orderbook: latest
                .orderbook
                .as_ref()
                .map(|(o, at)| entry(MarketData::Orderbook(o), at)),
            candle: latest
                .candle
                .as_ref()
                .map(|(c, at)| entry(MarketData::Candle(c), at)),
        }
    }
}

/// The latest ticker of every subscribed code.
#[utoipa::path(get, tag = "data", path = "/api/v1/markets", responses(
    (status = 200, description = "markets", body = MarketsBody),
    ReadRefused,
))]
pub async fn markets(_: Reader, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let markets = state
        .metrics_actor
        .send(GetMarkets)
        .await
        .map_err(metrics_gone)?;
    let markets = markets
        .iter()
        .map(|(code, latest)| MarketSummary {
            code,
            ticker: ticker(latest),
        })
        .collect();
    Ok(HttpResponse::Ok().json(MarketsBody { markets }))
}

/// The latest ticker, trade, orderbook and candle of one subscribed code.
#[utoipa::path(get, tag = "data", path = "/api/v1/markets/{code}",
    params(("code" = String, Path, description = "An upper-case market code.", example = "KRW-BTC",
        pattern = "^[A-Z]+-[A-Z0-9]+$", max_length = 32)),
    responses(
        (status = 200, description = "market", body = MarketBody),
        (status = 400, description = "malformed code", body = ErrorBody),
        (status = 404, description = "code not subscribed", body = ErrorBody),
        ReadRefused,
    ),
)]
pub async fn market(
    _: Reader,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
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
        .map_err(metrics_gone)?;
    match latest {
        Some(view) => Ok(HttpResponse::Ok().json(MarketBody::new(&code, &view))),
        None => Err(ApiError::not_found(format!(
            "{code} is not subscribed; see GET /api/v1/subscriptions"
        ))),
    }
}
