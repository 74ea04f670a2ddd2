//! `GET /api/v1/stream`: the live stream over WebSocket, one text frame per message; a close
//! frame with the reason when the hub ends it, and a frame over `CLIENT_MAX_FRAME` from the
//! consumer ends it (close 1009).

use std::time::Duration;

use actix_http::ws::ProtocolError;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use actix_ws::{CloseCode, CloseReason, Message, MessageStream, Session};
use tokio::time::{interval_at, Instant};

use super::{admit, join, StreamQuery, CLOSE_GRACE};
use crate::frame_limit::{self, Overflow};
use crate::http::auth::Reader;
use crate::http::error::ApiError;
use crate::http::openapi::StreamRefused;
use crate::http::AppState;
use crate::peer_socket::PeerSocket;
use crate::stream::hub::Ending;
use crate::stream::{ConsumerHandle, LeaveReason, Next, Transport};

/// A WebSocket consumer is pinged this often…
const PING_EVERY: Duration = Duration::from_secs(15);
/// …and dropped (reason `timeout`) after this long without a frame from it.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(45);
/// Largest frame a WebSocket consumer may send (it has nothing to send but control frames).
const CLIENT_MAX_FRAME: usize = 4096;

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
            body = crate::http::error::ErrorBody, headers(("Upgrade" = String, description = "websocket"))),
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
                        sent = session.text(message.json()) => match sent {
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
