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

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_http::ws::ProtocolError;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::web::{Bytes, BytesMut};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use actix_ws::{CloseCode, CloseReason, Message, MessageStream, Session};
use futures_util::Stream;
use serde::Deserialize;
use tokio::sync::oneshot;
use tokio::time::{interval_at, Instant, Interval};
use utoipa::IntoParams;

use super::auth::Reader;
use super::error::ApiError;
use super::openapi::StreamRefused;
use super::AppState;
use crate::frame_limit::{self, Overflow};
use crate::stream::hub::{Consumer, Ending};
use crate::stream::socket::PeerSocket;
use crate::stream::{event, ConsumerHandle, Filter, Hub, JoinError, LeaveReason, Next, Transport};
use crate::text::escape;

/// A WebSocket consumer is pinged this often…
const PING_EVERY: Duration = Duration::from_secs(15);
/// …and dropped (reason `timeout`) after this long without a frame from it.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(45);
/// An SSE comment line this long after the last write keeps proxies from closing a quiet stream
/// and finds clients that went away.
const SSE_KEEPALIVE: Duration = Duration::from_secs(15);
/// How long an ended stream may take to deliver its last word before its socket is shut down.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Most messages written to an SSE connection in one chunk.
const SSE_BATCH: usize = 64;
/// Largest frame a WebSocket consumer may send (it has nothing to send but control frames).
const CLIENT_MAX_FRAME: usize = 4096;
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

// --- WebSocket ------------------------------------------------------------------------------

/// The live stream over WebSocket: one text frame per message (StreamMessage JSON).
///
/// Tickers, orderbooks and candles a consumer has not read yet are replaced by newer ones; more
/// than stream.trade_queue unread trades end the connection with close code 1008 and reason
/// slow. Pings every 15 s; no answer for 45 s ends it. A plain GET gets 426.
#[utoipa::path(get, tag = "stream", path = "/api/v1/stream",
    params(StreamQuery),
    responses(
        (status = 101, description = "switched to WebSocket; every text frame is a StreamMessage"),
        (status = 426, description = "a plain GET: this route needs Upgrade: websocket (/api/v1/events serves the same as Server-Sent Events)",
            body = super::error::ErrorBody, headers(("Upgrade" = String, description = "websocket"))),
        StreamRefused,
    ),
)]
pub async fn websocket(
    _: Reader,
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (hub, filter) = admit(&request, &state)?;
    let upgrade = request
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !upgrade {
        let mut response = ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "upgrade_required",
            "this route speaks WebSocket (Upgrade: websocket); /api/v1/events serves the same \
             stream as Server-Sent Events",
        )
        .error_response();
        response
            .headers_mut()
            .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        return Ok(response);
    }
    let (payload, overflow) = frame_limit::bound(&request, payload, CLIENT_MAX_FRAME)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_handshake",
                format!("cannot read the request: {e}"),
            )
        })?;
    let (response, session, messages) = actix_ws::handle(&request, payload).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_handshake",
            format!("not a valid WebSocket handshake: {e}"),
        )
    })?;
    let handle = join(&hub, Transport::WebSocket, filter, &request)?;
    let socket = PeerSocket::of(&request);
    socket.iter().for_each(PeerSocket::bound_send_buffer);
    actix_web::rt::spawn(serve_websocket(
        handle,
        session,
        messages.max_frame_size(CLIENT_MAX_FRAME),
        overflow,
        socket,
    ));
    Ok(response)
}

/// Moves messages from the consumer's queue to the socket until either side ends.
async fn serve_websocket(
    handle: ConsumerHandle,
    mut session: Session,
    mut messages: MessageStream,
    overflow: Overflow,
    socket: Option<PeerSocket>,
) {
    let consumer = handle.consumer().clone();
    let mut ping = interval_at(Instant::now() + PING_EVERY, PING_EVERY);
    let mut heard = Instant::now();
    let ending = loop {
        tokio::select! {
            next = consumer.next() => match next {
                Next::Message(message) => {
                    // A peer that stopped reading blocks this send; the hub may end the stream
                    // meanwhile (slow), and the next round closes it.
                    tokio::select! {
                        sent = session.text(message.json) => match sent {
                            Ok(()) => consumer.count_sent(1),
                            Err(_) => break None,
                        },
                        () = consumer.ended() => {}
                    }
                }
                Next::Ended(ending) => break Some(ending),
            },
            message = messages.recv() => match message {
                Some(Ok(Message::Ping(bytes))) => {
                    heard = Instant::now();
                    tokio::select! {
                        _ = session.pong(&bytes) => {}
                        () = consumer.ended() => {}
                    }
                }
                Some(Ok(Message::Close(reason))) => {
                    let _ = tokio::time::timeout(CLOSE_GRACE, session.clone().close(reason)).await;
                    break None;
                }
                Some(Ok(_)) => heard = Instant::now(),
                Some(Err(ProtocolError::Overflow)) => break Some(too_large(&handle)),
                Some(Err(_)) if overflow.happened() => break Some(too_large(&handle)),
                Some(Err(_)) | None => break None,
            },
            _ = ping.tick() => {
                if heard.elapsed() > CLIENT_TIMEOUT {
                    handle.end(LeaveReason::Timeout, "no answer to pings");
                } else {
                    tokio::select! {
                        _ = session.ping(b"") => {}
                        () = consumer.ended() => {}
                    }
                }
            }
        }
    };
    if let Some(ending) = ending {
        close_websocket(session, messages, &ending, socket.as_ref()).await;
    }
    drop(handle);
}

/// Ends a consumer that sent (or announced) a frame over `CLIENT_MAX_FRAME`.
fn too_large(handle: &ConsumerHandle) -> Ending {
    let ending = Ending {
        reason: LeaveReason::TooLarge,
        message: format!("a stream client may send frames of at most {CLIENT_MAX_FRAME} bytes"),
    };
    handle.end(ending.reason, &ending.message);
    ending
}

/// Sends the close frame with the reason and waits for the connection to finish; shuts the
/// socket down if it does not within `CLOSE_GRACE`.
///
/// After a frame over the limit nothing reads the connection any more (that is the bound): the
/// socket is shut down `CLOSE_GRACE` after the close frame, whatever the peer does.
async fn close_websocket(
    session: Session,
    mut messages: MessageStream,
    ending: &Ending,
    socket: Option<&PeerSocket>,
) {
    let code = match ending.reason {
        LeaveReason::Slow => CloseCode::Policy,
        LeaveReason::Shutdown | LeaveReason::Timeout => CloseCode::Away,
        LeaveReason::Client => CloseCode::Normal,
        LeaveReason::TooLarge => CloseCode::Size,
    };
    let unread = ending.reason == LeaveReason::TooLarge;
    let reason = CloseReason {
        code,
        description: Some(format!("{}: {}", ending.reason.as_str(), ending.message)),
    };
    let finished = tokio::time::timeout(CLOSE_GRACE, async move {
        let _ = session.close(Some(reason)).await;
        if unread {
            // Held but never polled: the HTTP layer stops reading at its buffer's limit.
            std::future::pending::<()>().await;
        } else {
            while messages.recv().await.is_some() {}
        }
    })
    .await;
    if finished.is_err() {
        if let Some(socket) = socket {
            log::debug!("stream connection still open {CLOSE_GRACE:?} after close; shutting its socket down");
            socket.shut_down();
        }
    }
}

// --- Server-Sent Events ---------------------------------------------------------------------

/// The live stream as Server-Sent Events.
///
/// Per message `event: <name>` and `data: <StreamMessage JSON>`; a `: keep-alive` comment after
/// 15 s without one. Same backpressure as /api/v1/stream; a stream the service ends gets a final
/// `close` event.
#[utoipa::path(get, tag = "stream", path = "/api/v1/events",
    params(StreamQuery),
    responses(
        (status = 200, description = "text/event-stream of StreamMessage events (named ticker, trade, orderbook, candle.*, link, close)",
            body = String, content_type = "text/event-stream"),
        StreamRefused,
    ),
)]
pub async fn events(
    _: Reader,
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (hub, filter) = admit(&request, &state)?;
    let handle = join(&hub, Transport::Sse, filter, &request)?;
    let socket = PeerSocket::of(&request);
    socket.iter().for_each(PeerSocket::bound_send_buffer);
    let (done, finished) = oneshot::channel();
    actix_web::rt::spawn(watch_sse(handle.consumer().clone(), socket, finished));
    let body = SseBody {
        handle,
        keepalive: interval_at(Instant::now() + SSE_KEEPALIVE, SSE_KEEPALIVE),
        finished: false,
        _done: done,
    };
    // The stream holds the connection until it ends; then the connection closes rather than
    // idle in keep-alive (a slow consumer's would otherwise linger).
    Ok(HttpResponse::Ok()
        .force_close()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}

/// The response body: drains the consumer's queue whenever actix polls it.
struct SseBody {
    handle: ConsumerHandle,
    keepalive: Interval,
    /// The final `close` event was written.
    finished: bool,
    /// Dropped with the body: tells the watchdog the connection is done with it.
    _done: oneshot::Sender<()>,
}

impl Stream for SseBody {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.finished {
            return Poll::Ready(None);
        }
        let consumer = this.handle.consumer();
        let (mut chunk, mut count) = (BytesMut::new(), 0);
        while count < SSE_BATCH {
            match consumer.poll_next(cx) {
                Poll::Ready(Next::Message(message)) => {
                    write_event(&mut chunk, message.name, &message.json);
                    count += 1;
                }
                Poll::Ready(Next::Ended(ending)) => {
                    let last = event::close(ending.reason, &ending.message);
                    write_event(&mut chunk, last.name, &last.json);
                    this.finished = true;
                    break;
                }
                Poll::Pending => break,
            }
        }
        if count > 0 {
            consumer.count_sent(count as u64);
        }
        if !chunk.is_empty() {
            this.keepalive.reset();
            return Poll::Ready(Some(Ok(chunk.freeze())));
        }
        if this.keepalive.poll_tick(cx).is_ready() {
            return Poll::Ready(Some(Ok(Bytes::from_static(b": keep-alive\n\n"))));
        }
        Poll::Pending
    }
}

fn write_event(chunk: &mut BytesMut, name: &str, json: &str) {
    for part in ["event: ", name, "\ndata: ", json, "\n\n"] {
        chunk.extend_from_slice(part.as_bytes());
    }
}

/// Waits for the stream to end; shuts the socket down if the body is still held `CLOSE_GRACE`
/// later (its peer stopped reading, so actix never polls the body to its end).
async fn watch_sse(
    consumer: Arc<Consumer>,
    socket: Option<PeerSocket>,
    mut finished: oneshot::Receiver<()>,
) {
    tokio::select! {
        _ = &mut finished => return,
        () = consumer.ended() => {}
    }
    if tokio::time::timeout(CLOSE_GRACE, finished).await.is_err() {
        if let Some(socket) = socket {
            log::debug!(
                "stream consumer id={} still open {CLOSE_GRACE:?} after it ended; shutting its socket down",
                consumer.id
            );
            socket.shut_down();
        }
    }
}
