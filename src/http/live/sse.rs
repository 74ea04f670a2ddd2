//! `GET /api/v1/events`: the live stream as Server-Sent Events, `event: <name>` and
//! `data: <json>` per message, a keep-alive comment when quiet, a final `close` event when the
//! hub ends it. The request's body is never read.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::http::header;
use actix_web::web::{Bytes, BytesMut};
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::Stream;
use tokio::sync::oneshot;
use tokio::time::{interval_at, Instant, Interval};

use super::{admit, join, StreamQuery, CLOSE_GRACE};
use crate::http::auth::Reader;
use crate::http::error::ApiError;
use crate::http::openapi::StreamRefused;
use crate::http::AppState;
use crate::peer_socket::PeerSocket;
use crate::stream::hub::Consumer;
use crate::stream::{event, ConsumerHandle, Next, Transport};

/// An SSE comment line this long after the last write keeps proxies from closing a quiet stream
/// and finds clients that went away.
const SSE_KEEPALIVE: Duration = Duration::from_secs(15);
/// Most messages written to an SSE connection in one chunk.
const SSE_BATCH: usize = 64;

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
                    write_event(&mut chunk, message.name, &message.json());
                    count += 1;
                }
                Poll::Ready(Next::Ended(ending)) => {
                    let last = event::close(ending.reason, &ending.message);
                    write_event(&mut chunk, last.name, &last.json());
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
