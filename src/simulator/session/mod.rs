//! One simulated WebSocket connection: requests in; snapshots, realtime data, replies and
//! injected faults out. Counts exactly what it hands to the socket.
//!
//! This file holds the connection's state and its event loop; the rest by job:
//! - `requests`: the read side, each client frame and its reply (errors, pongs, subscriptions);
//! - `rounds`: encoding from the market model, snapshot and realtime rounds;
//! - `firehose`: pre-encoded frames written flat out or paced, for benchmarks.

mod firehose;
mod requests;
mod rounds;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_http::ws::ProtocolError;
use actix_ws::{CloseCode, CloseReason, MessageStream, Session};
use tokio::sync::broadcast::{self, error::RecvError};

use super::request::TypeRequest;
use super::{Command, Shared};
use crate::frame_limit::Overflow;
use crate::peer_socket::PeerSocket;
use crate::upbit::Format;
use firehose::Firehose;

/// How long after answering a client's close the socket is shut down, at the latest (the close
/// frame is on its way by then; actix-web's disconnect timer usually ends it sooner).
pub(super) const CLOSE_GRACE: Duration = Duration::from_millis(200);

/// The subscription in force on a connection.
struct Active {
    types: Vec<TypeRequest>,
}

struct Connection {
    shared: Arc<Shared>,
    id: u64,
    session: Session,
    active: Option<Active>,
    /// The connection's format: set by every subscription and every LIST_SUBSCRIPTIONS request
    /// (DEFAULT when the request names none), as Upbit documents.
    format: Format,
    firehose: Option<Firehose>,
    requests: VecDeque<Instant>,
    /// Last frame either way: Upbit's idle timer counts traffic in both directions.
    last_traffic: Instant,
    /// The `sequential_id` of the last tick sent, per (type, code as requested): realtime rounds
    /// send the tape after it.
    seen: std::cell::RefCell<std::collections::HashMap<(crate::upbit::DataType, String), u64>>,
}

/// Runs a connection until the client leaves, a fault ends it, or it idles out.
/// `commands` is subscribed before the upgrade is answered, so a fault injected right after a
/// client's handshake completes reaches this connection too.
pub(super) async fn run(
    shared: Arc<Shared>,
    id: u64,
    session: Session,
    socket: Option<PeerSocket>,
    mut stream: MessageStream,
    overflow: Overflow,
    mut commands: broadcast::Receiver<Command>,
) {
    let rate = shared.config.rate;
    let period = if rate > 0.0 {
        Duration::from_secs_f64(1.0 / rate)
    } else {
        Duration::from_secs(3600)
    };
    let mut ticks = actix_rt::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let idle_timeout = shared.config.idle_timeout;
    let mut idle_checks = actix_rt::time::interval(
        (idle_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(5)),
    );
    let mut conn = Connection {
        shared,
        id,
        session,
        active: None,
        format: Format::Default,
        firehose: None,
        requests: VecDeque::new(),
        last_traffic: Instant::now(),
        seen: Default::default(),
    };
    loop {
        let firehose_on = conn.firehose.is_some();
        tokio::select! {
            message = stream.recv() => match message {
                Some(Ok(message)) => {
                    log::trace!("simulator connection={} received {message:?}", conn.id);
                    conn.last_traffic = Instant::now();
                    if !conn.on_message(message).await {
                        // The client closed and the handshake is answered: end the TCP
                        // connection soon after, as Upbit does, whatever actix's own timer does.
                        if let Some(socket) = socket {
                            actix_rt::spawn(async move {
                                actix_rt::time::sleep(CLOSE_GRACE).await;
                                socket.shut_down();
                            });
                        }
                        break;
                    }
                }
                other => {
                    log::debug!("simulator connection={} stream ended: {other:?}", conn.id);
                    if overflow.happened() || matches!(other, Some(Err(ProtocolError::Overflow))) {
                        let close = CloseReason { code: CloseCode::Size, description: Some("frame too large".into()) };
                        let _ = conn.session.clone().close(Some(close)).await;
                    }
                    break;
                }
            },
            // In firehose mode the firehose is the only source of realtime data, even after it
            // has written its `firehose_frames`.
            _ = ticks.tick(), if conn.active.is_some() && !conn.shared.config.firehose && rate > 0.0 => {
                if !conn.shared.muted() {
                    if conn.send_realtime().await.is_err() {
                        break;
                    }
                    conn.last_traffic = Instant::now();
                }
            }
            command = commands.recv() => match command {
                // Dropping the session ends the response stream after the queued frames: no close frame.
                Ok(Command::Drop) | Err(RecvError::Closed) => break,
                Ok(Command::Close { code, reason }) => {
                    let close = CloseReason { code: CloseCode::from(code), description: reason };
                    let _ = conn.session.clone().close(Some(close)).await;
                    break;
                }
                Ok(Command::Send(frame)) => {
                    if conn.session.binary(frame).await.is_err() {
                        break;
                    }
                    conn.last_traffic = Instant::now();
                }
                Err(RecvError::Lagged(_)) => {}
            },
            _ = idle_checks.tick() => {
                if conn.last_traffic.elapsed() > idle_timeout {
                    conn.shared.stats().closed_idle += 1;
                    let _ = conn.session.clone().close(None).await;
                    break;
                }
            }
            _ = std::future::ready(()), if firehose_on && !conn.shared.muted() => {
                if conn.firehose_batch().await.is_err() {
                    break;
                }
                conn.last_traffic = Instant::now();
            }
        }
    }
    conn.shared.stats().active_connections -= 1;
}
