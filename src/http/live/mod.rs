//! The live stream's transports: `GET /api/v1/stream` (WebSocket, one text frame per message)
//! and `GET /api/v1/events` (Server-Sent Events, `event: <name>` and `data: <json>` per
//! message). Both take `?types=…&codes=…`, read the same consumer queue (`src/stream/`) and run
//! on the HTTP workers, never on the pipeline.
//!
//! A stream the hub ends (slow consumer, shutdown) gets a last word: a close frame with the
//! reason, or a final `close` event. If the connection has not finished `CLOSE_GRACE` later
//! (the peer stopped reading, so even that cannot be written), its socket is shut down.
//!
//! What a consumer sends is bounded too: a WebSocket frame header announcing more than
//! `CLIENT_MAX_FRAME` ends the stream before that frame is buffered (close 1009, reason
//! `too_large`; see `crate::frame_limit`), and an SSE request's body is never read.
//!
//! `ws.rs` serves the WebSocket, `sse.rs` the event stream; this module admits a consumer to
//! either (the token, then the query, then the hub's limits).

mod sse;
mod ws;

pub use sse::{__path_events, events};
pub use ws::{__path_websocket, websocket};

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest};
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::ApiError;
use super::AppState;
use crate::stream::{ConsumerHandle, Filter, Hub, JoinError, Transport};
use crate::text::escape;

/// How long an ended stream may take to deliver its last word before its socket is shut down.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Seconds a refused consumer is asked to wait (`Retry-After`).
const RETRY_AFTER_SECS: u64 = 5;

/// What the handlers need: the hub (`None` when `stream.enabled = false`) and the filter bound.
#[derive(Clone)]
pub struct LiveStream {
    pub hub: Option<Hub>,
    /// Most codes a filter may name (`control.max_codes`).
    pub max_codes: usize,
}

/// `?types=…&codes=…`: what a consumer receives.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// Comma-separated data types to receive (ticker, trade, orderbook, candle.1s ... candle.240m);
    /// all when absent.
    #[param(
        pattern = r"^(ticker|trade|orderbook|candle\.(1s|1m|3m|5m|10m|15m|30m|60m|240m))(,(ticker|trade|orderbook|candle\.(1s|1m|3m|5m|10m|15m|30m|60m|240m)))*$",
        example = "ticker,trade"
    )]
    types: Option<String>,
    /// Comma-separated upper-case market codes to receive; every subscribed code when absent.
    #[param(
        pattern = r"^[A-Z]+-[A-Z0-9]+(,[A-Z]+-[A-Z0-9]+)*$",
        example = "KRW-BTC,KRW-ETH"
    )]
    codes: Option<String>,
}

/// The query, then the switch (after the token: [`Reader`]): the hub and the consumer's filter.
fn admit(request: &HttpRequest, state: &AppState) -> Result<(Hub, Filter), ApiError> {
    let query = web::Query::<StreamQuery>::from_query(request.query_string()).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!(
                "{}; accepted: types and codes, comma-separated",
                escape(&e.to_string(), 300)
            ),
        )
    })?;
    let filter = Filter::parse(
        query.types.as_deref(),
        query.codes.as_deref(),
        state.live.max_codes,
    )
    .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.code, e.message))?;
    let hub = state.live.hub.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "stream_disabled",
            "the live stream is disabled (stream.enabled = false)",
        )
    })?;
    Ok((hub, filter))
}

fn join(
    hub: &Hub,
    transport: Transport,
    filter: Filter,
    request: &HttpRequest,
) -> Result<ConsumerHandle, ApiError> {
    let peer = request
        .peer_addr()
        .map_or_else(|| "-".to_owned(), |a| a.to_string());
    hub.join(transport, filter, peer).map_err(|error| {
        let code = match error {
            JoinError::Full { .. } => "too_many_consumers",
            JoinError::AddressFull { .. } => "too_many_consumers_from_address",
            JoinError::Stopping => "stopping",
        };
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, error.to_string())
            .with_retry_after(RETRY_AFTER_SECS)
    })
}
