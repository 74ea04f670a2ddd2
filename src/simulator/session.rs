//! One simulated WebSocket connection: requests in; snapshots, realtime data, replies and
//! injected faults out. Counts exactly what it hands to the socket.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix_http::ws::ProtocolError;
use actix_ws::{CloseCode, CloseReason, Message, MessageStream, Session};
use bytes::Bytes;
use tokio::sync::broadcast::{self, error::RecvError};

use super::request::{self, base_code, orderbook_depth, ErrorFrame, Request, TypeRequest};
use super::{encode, Command, Shared};
use crate::frame_limit::Overflow;
use crate::upbit::types::StreamType;
use crate::upbit::{DataType, Format};

/// What a message is encoded for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Round {
    /// The state after a subscription (the last trade).
    Snapshot,
    /// The live stream: the market's tape, shared by every connection.
    Realtime,
    /// Pre-encoded firehose frames: a fresh trade each.
    Firehose,
}

/// Frames the firehose writes per turn of the event loop.
const FIREHOSE_BATCH: usize = 256;

/// The subscription in force on a connection.
struct Active {
    types: Vec<TypeRequest>,
}

/// Pre-encoded frames, rotating over the subscribed pairs.
struct Firehose {
    frames: Vec<(Bytes, String, String)>,
    next: usize,
    sent: u64,
    started: Instant,
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
    /// The `sequential_id` of the last trade sent, per code: realtime rounds send the tape after it.
    seen: std::cell::RefCell<std::collections::HashMap<String, u64>>,
}

/// Runs a connection until the client leaves, a fault ends it, or it idles out.
/// `commands` is subscribed before the upgrade is answered, so a fault injected right after a
/// client's handshake completes reaches this connection too.
pub(super) async fn run(
    shared: Arc<Shared>,
    id: u64,
    session: Session,
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

impl Connection {
    /// Handles one client frame; false ends the connection.
    async fn on_message(&mut self, message: Message) -> bool {
        match message {
            Message::Ping(payload) => {
                self.shared.stats().pings_received += 1;
                if !self.shared.muted() {
                    if self.session.pong(&payload).await.is_err() {
                        return false;
                    }
                    self.shared.stats().pongs_sent += 1;
                }
                true
            }
            Message::Text(text) => self.on_text(&text).await,
            Message::Binary(bytes) => match std::str::from_utf8(&bytes) {
                Ok(text) => self.on_text(text).await,
                Err(_) => {
                    self.send_error(ErrorFrame {
                        name: "WRONG_FORMAT",
                        message: "Requested using wrong format".into(),
                    })
                    .await
                }
            },
            Message::Close(reason) => {
                let code = reason.as_ref().map_or(1005, |r| u16::from(r.code));
                self.shared.stats().close_codes_received.push(code);
                // Complete the closing handshake, as a WebSocket server must.
                let _ = self.session.clone().close(reason).await;
                false
            }
            Message::Pong(_) | Message::Continuation(_) | Message::Nop => true,
        }
    }

    async fn on_text(&mut self, text: &str) -> bool {
        {
            let mut stats = self.shared.stats();
            if stats.requests.len() >= 1000 {
                stats.requests.remove(0);
            }
            stats.requests.push(super::RecordedRequest {
                connection: self.id,
                at_ms: self.shared.elapsed_ms(),
                text: text.to_owned(),
            });
        }
        if text == "PING" {
            self.shared.stats().text_pings_received += 1;
            return self.shared.muted() || self.session.text(r#"{"status":"UP"}"#).await.is_ok();
        }
        if !self.admit_request() {
            let message =
                "too many requests on this connection (simulator's name for Upbit's limit)";
            return self
                .send_error(ErrorFrame {
                    name: "TOO_MANY_REQUESTS",
                    message: message.into(),
                })
                .await;
        }
        match request::parse(text) {
            Err(error) => self.send_error(error).await,
            Ok(Request::ListSubscriptions { ticket, format }) => {
                if format != self.format {
                    self.format = format;
                    if self.firehose.is_some() {
                        self.firehose = Some(self.build_firehose());
                    }
                }
                let types = self.active.as_ref().map_or(&[][..], |a| &a.types[..]);
                let reply = encode::subscription_list(&ticket, types, format);
                self.count_format(1);
                self.session.binary(reply).await.is_ok()
            }
            Ok(Request::Subscribe { types, format, .. }) => {
                self.active = Some(Active { types });
                self.format = format;
                self.firehose = None;
                if self.send_snapshots().await.is_err() {
                    return false;
                }
                if self.shared.config.firehose {
                    self.firehose = Some(self.build_firehose());
                }
                true
            }
        }
    }

    /// Upbit's per-connection request limits (also count rejected requests).
    fn admit_request(&mut self) -> bool {
        let now = Instant::now();
        while self
            .requests
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            self.requests.pop_front();
        }
        let last_second = self
            .requests
            .iter()
            .filter(|t| now.duration_since(**t) < Duration::from_secs(1))
            .count();
        let allowed = last_second < self.shared.config.request_limit_per_sec as usize
            && self.requests.len() < self.shared.config.request_limit_per_min as usize;
        self.requests.push_back(now);
        allowed
    }

    /// Counts frames sent in the connection's current format.
    fn count_format(&self, frames: u64) {
        *self
            .shared
            .stats()
            .frames_by_format
            .entry(self.format.as_str().to_owned())
            .or_default() += frames;
    }

    async fn send_error(&mut self, error: ErrorFrame) -> bool {
        *self
            .shared
            .stats()
            .error_frames_sent
            .entry(error.name.to_owned())
            .or_default() += 1;
        self.session.binary(error.to_json()).await.is_ok()
    }

    /// Encodes the messages of `t` for `code` (the requested form, maybe with `.N`): one, except
    /// for realtime trades, which are the tape's trades this connection has not seen (0 or more).
    fn encode(
        &self,
        t: &TypeRequest,
        code: &str,
        stream: StreamType,
        simple: bool,
        round: Round,
    ) -> Vec<String> {
        let now = crate::clock::unix_ms(SystemTime::now());
        let mut markets = self.shared.markets.lock();
        let market = markets.get(base_code(code));
        if round == Round::Realtime {
            let rate = self.shared.config.rate;
            let period_ms = if rate > 0.0 {
                (1000.0 / rate) as u64
            } else {
                1000
            };
            market.tape_until(now, period_ms);
        }
        if t.data_type == DataType::Trade {
            let mut seen = self.seen.borrow_mut();
            let trades = match round {
                Round::Firehose => vec![market.trade(now)],
                Round::Snapshot => vec![market.last_trade(now)],
                Round::Realtime => {
                    let after = seen.get(base_code(code)).copied().unwrap_or(0);
                    market.tape_since(after)
                }
            };
            if let (Some(last), false) = (trades.last(), round == Round::Firehose) {
                seen.insert(base_code(code).to_owned(), last.sequential_id);
            }
            return trades
                .iter()
                .map(|trade| encode::trade(market, trade, now, stream, simple))
                .collect();
        }
        let message = match t.data_type {
            DataType::Ticker => encode::ticker(
                market,
                now,
                stream,
                simple,
                self.shared.config.legacy_ticker_fields,
            ),
            DataType::Trade => return Vec::new(), // handled above
            DataType::Orderbook => encode::orderbook(
                market,
                base_code(code),
                orderbook_depth(code),
                t.level,
                now,
                stream,
                simple,
            ),
            DataType::Candle(interval) => encode::candle(market, interval, now, stream, simple),
        };
        vec![message]
    }

    /// Sends one message per (type, code), as single frames or one list frame per type.
    async fn send_round(
        &mut self,
        stream: StreamType,
        snapshot: bool,
    ) -> Result<(), actix_ws::Closed> {
        let Some(active) = self.active.as_ref() else {
            return Ok(());
        };
        let (format, simple) = (self.format, self.format.is_simple());
        let mut frames: Vec<(String, Vec<(String, String)>)> = Vec::new();
        for t in &active.types {
            if (snapshot && t.only_realtime) || (!snapshot && t.only_snapshot) {
                continue;
            }
            let round = if snapshot {
                Round::Snapshot
            } else {
                Round::Realtime
            };
            let messages: Vec<(String, String)> = t
                .codes
                .iter()
                .flat_map(|code| {
                    self.encode(t, code, stream, simple, round)
                        .into_iter()
                        .map(move |m| (base_code(code).to_owned(), m))
                })
                .collect();
            if messages.is_empty() {
                continue;
            }
            let type_name = t.data_type.as_str().to_owned();
            if format.is_list() {
                frames.push((type_name, messages));
            } else {
                frames.extend(messages.into_iter().map(|m| (type_name.clone(), vec![m])));
            }
        }
        for (type_name, messages) in frames {
            let delay = self.shared.delay();
            if !delay.is_zero() {
                actix_rt::time::sleep(delay).await;
            }
            let body = if format.is_list() {
                let parts: Vec<&str> = messages.iter().map(|(_, m)| m.as_str()).collect();
                format!("[{}]", parts.join(","))
            } else {
                messages[0].1.clone()
            };
            let size = body.len();
            self.session.binary(body).await?;
            let mut stats = self.shared.stats();
            for (code, _) in &messages {
                *stats
                    .sent
                    .entry(type_name.clone())
                    .or_default()
                    .entry(code.clone())
                    .or_default() += 1;
            }
            stats.frames_sent += 1;
            stats.bytes_sent += size as u64;
            *stats
                .frames_by_format
                .entry(format.as_str().to_owned())
                .or_default() += 1;
        }
        Ok(())
    }

    async fn send_snapshots(&mut self) -> Result<(), actix_ws::Closed> {
        self.send_round(StreamType::Snapshot, true).await
    }

    async fn send_realtime(&mut self) -> Result<(), actix_ws::Closed> {
        self.send_round(StreamType::Realtime, false).await
    }

    fn build_firehose(&self) -> Firehose {
        let mut frames = Vec::new();
        if let Some(active) = &self.active {
            let simple = self.format.is_simple();
            for round in 0..64 {
                for t in active.types.iter().filter(|t| !t.only_snapshot) {
                    for code in &t.codes {
                        let body = self
                            .encode(t, code, StreamType::Realtime, simple, Round::Firehose)
                            .concat();
                        let body = if self.format.is_list() {
                            format!("[{body}]")
                        } else {
                            body
                        };
                        frames.push((
                            Bytes::from(body),
                            t.data_type.as_str().to_owned(),
                            base_code(code).to_owned(),
                        ));
                    }
                }
                if frames.len() >= 64 && round > 0 {
                    break;
                }
            }
        }
        Firehose {
            frames,
            next: 0,
            sent: 0,
            started: Instant::now(),
        }
    }

    /// Writes up to `FIREHOSE_BATCH` pre-encoded frames, counting each.
    async fn firehose_batch(&mut self) -> Result<(), actix_ws::Closed> {
        let limit = self.shared.config.firehose_frames.unwrap_or(u64::MAX);
        let Some(hose) = self.firehose.as_mut() else {
            return Ok(());
        };
        if hose.frames.is_empty() || hose.sent >= limit {
            self.firehose = None;
            return Ok(());
        }
        let mut n = (FIREHOSE_BATCH as u64).min(limit - hose.sent);
        if let Some(rate) = self.shared.config.firehose_rate {
            // Send what is due by now; when nothing is, wait for the next frame's time (the
            // timer's millisecond granularity makes small bursts at high rates).
            let elapsed = hose.started.elapsed().as_secs_f64();
            let due = (elapsed * rate) as u64;
            if due <= hose.sent {
                let next = Duration::from_secs_f64((hose.sent + 1) as f64 / rate - elapsed);
                actix_rt::time::sleep(next).await;
                return Ok(());
            }
            n = n.min(due - hose.sent);
        }
        let n = n as usize;
        let mut counts: Vec<(usize, u64)> = Vec::new();
        let mut bytes = 0u64;
        let mut result = Ok(());
        for _ in 0..n {
            let index = hose.next;
            let frame = hose.frames[index].0.clone();
            let size = frame.len() as u64;
            if let Err(closed) = self.session.binary(frame).await {
                result = Err(closed);
                break;
            }
            hose.next = (index + 1) % hose.frames.len();
            hose.sent += 1;
            bytes += size;
            match counts.iter_mut().find(|(i, _)| *i == index) {
                Some((_, c)) => *c += 1,
                None => counts.push((index, 1)),
            }
        }
        let mut stats = self.shared.stats();
        let mut frames = 0;
        for (index, count) in counts {
            let (_, type_name, code) = &hose.frames[index];
            *stats
                .sent
                .entry(type_name.clone())
                .or_default()
                .entry(code.clone())
                .or_default() += count;
            frames += count;
        }
        stats.frames_sent += frames;
        stats.bytes_sent += bytes;
        *stats
            .frames_by_format
            .entry(self.format.as_str().to_owned())
            .or_default() += frames;
        result
    }
}
