//! ConnectionActor: one WebSocket to Upbit, kept alive, restarted by a `Supervisor`.
//!
//! Life cycle: `started()` schedules `connect()` after the pending delay (zero the first time),
//! so the first connect and every reconnect share one path. A failed attempt or a lost link
//! records why, picks the next delay (exponential backoff with jitter, at least `Retry-After` or
//! the ban penalty after 429/418, never more than Upbit's 5 attempts per second) and stops the
//! actor; the supervisor restarts the same struct with a fresh context, `restarting()` resets the
//! per-link state, and `started()` runs again. It never gives up.
//!
//! While connected: one subscription message with every type and a fresh UUID v4 ticket, then
//! `LIST_SUBSCRIPTIONS` to verify it; a ping every `ping_interval`; the link is dropped when no
//! frame at all arrives within `idle_timeout`. The frames of one socket read go to the decoder
//! as one batch with `try_send`: frames beyond the decoder stage's bound are dropped (counted),
//! and this reader never stalls.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix::io::{SinkWrite, WriteHandler};
use actix::prelude::*;
use actix_codec::Framed;
use actix_http::ws::Item;
use awc::error::WsProtocolError;
use awc::ws::{self, CloseCode, CloseReason, Frame};
use awc::BoxedSocket;
use bytes::{Bytes, BytesMut};
use futures_util::stream::{SplitSink, StreamExt};
use parking_lot::Mutex;

use super::client::{build_client, classify, RetryAfterSlot};
use super::pacing::{ban_penalty, Backoff, RateWindow, RequestBudget};
use super::queue::StageQueue;
use crate::messages::{
    FramesReceived, LinkChange, LinkChanged, Reconnect, SetSubscription, Shutdown,
};
use crate::settings::{ConnectionSettings, Settings};
use crate::status::{LinkState, StatusBoard};
use crate::telemetry::events::{
    ConnectAttempted, ConnectFailed, ConnectFailure, Connected, DecodeFailed, DisconnectReason,
    Disconnected, MessagesDropped, Subscribed,
};
use crate::telemetry::{LogThrottle, Metrics};
use crate::upbit::request::{list_subscriptions_request, OrderbookOptions};
use crate::upbit::{DecodeError, Format, Subscription};

/// Largest frame the codec accepts; frames above `pipeline.max_frame_bytes` but below this are
/// read and counted as oversized by the decoder, anything larger ends the link (protocol error).
const CODEC_MAX_FRAME: usize = 16 << 20;

/// Most frames handed to the decoder in one batch (what one socket read yields, up to this).
const READ_BATCH: usize = 64;

/// A refused upgrade (429) without `Retry-After` waits at least this long.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// How long a shutdown waits for Upbit to answer our close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

type WsSink = SplitSink<Framed<BoxedSocket, ws::Codec>, ws::Message>;

/// Everything the connection needs besides its peers.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// This connection's index (0 unless the subscription is spread over several).
    pub index: usize,
    pub url: String,
    pub format: Format,
    /// Orderbook depth suffix and price grouping, applied to every request.
    pub orderbook: OrderbookOptions,
    pub timing: ConnectionSettings,
    /// Largest message reassembled from fragments (`pipeline.max_frame_bytes`).
    pub max_frame_bytes: usize,
}

impl ConnectionConfig {
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            index: 0,
            url: settings.upbit.url.clone(),
            format: settings.upbit.format,
            orderbook: settings.upbit.orderbook.clone(),
            timing: settings.connection.clone(),
            max_frame_bytes: settings.pipeline.max_frame_bytes,
        }
    }
}

/// The actor's peers and shared state.
pub struct ConnectionPeers {
    pub decoder: Recipient<FramesReceived>,
    /// Frames waiting for the decoder (reserved here, released by the decoder).
    pub decoder_queue: StageQueue,
    pub metrics: Metrics,
    pub status: StatusBoard,
    /// Shared by every connection of the process: Upbit counts attempts per IP.
    pub attempt_budget: Arc<Mutex<RateWindow>>,
    /// Subscription messages, shared by every connection of the process.
    pub request_budget: Arc<Mutex<RequestBudget>>,
    /// Link up/down events, sent down the frames' path (the decoder) so they stay in order with
    /// the data; `None` when nobody listens.
    pub link_events: Option<Recipient<LinkChanged>>,
}

pub struct ConnectionActor {
    config: ConnectionConfig,
    peers: ConnectionPeers,
    client: Option<awc::Client>,
    retry_after: RetryAfterSlot,
    subscription: Subscription,
    backoff: Backoff,
    attempts: u64,
    /// 418s since data last flowed: each one without `Retry-After` waits twice as long.
    bans: u32,
    /// Delay before the next attempt, decided when the last one failed or ended.
    next_delay: Duration,
    shutting_down: bool,
    drop_log: LogThrottle,
    link: Link,
}

/// State of one connection; reset on every restart.
struct Link {
    sink: Option<SinkWrite<ws::Message, WsSink>>,
    connected: bool,
    last_frame: Instant,
    data_flowed: bool,
    ended: Option<(DisconnectReason, String)>,
    /// What the last request on this link asked for: the subscription and the orderbook options.
    sent: Option<(Subscription, OrderbookOptions)>,
    flush_pending: bool,
    fragments: Option<Fragments>,
    /// Data frames of the current socket read, sent as one batch when the read is handled.
    pending: Vec<Bytes>,
}

impl Default for Link {
    fn default() -> Self {
        Self {
            sink: None,
            connected: false,
            last_frame: Instant::now(),
            data_flowed: false,
            ended: None,
            sent: None,
            flush_pending: false,
            fragments: None,
            pending: Vec::new(),
        }
    }
}

impl ConnectionActor {
    pub fn new(
        config: ConnectionConfig,
        peers: ConnectionPeers,
        subscription: Subscription,
    ) -> Self {
        let backoff = Backoff::new(config.timing.backoff_min, config.timing.backoff_max);
        Self {
            config,
            peers,
            client: None,
            retry_after: Rc::new(Cell::new(None)),
            subscription,
            backoff,
            attempts: 0,
            bans: 0,
            next_delay: Duration::ZERO,
            shutting_down: false,
            drop_log: LogThrottle::new(Duration::from_secs(10)),
            link: Link::default(),
        }
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        if self.shutting_down {
            return;
        }
        self.attempts += 1;
        ConnectAttempted {
            url: &self.config.url,
            attempt: self.attempts,
        }
        .emit(&self.peers.metrics);
        let attempts = self.attempts;
        self.peers.status.update(|s| {
            s.state = LinkState::Connecting;
            s.attempts = attempts;
            s.backoff_seconds = None;
        });
        self.retry_after.set(None);
        let timing = &self.config.timing;
        let client = self
            .client
            .get_or_insert_with(|| build_client(timing.connect_timeout, self.retry_after.clone()));
        let handshake = client
            .ws(&self.config.url)
            .max_frame_size(CODEC_MAX_FRAME)
            .connect();
        let handshake = actix_rt::time::timeout(timing.connect_timeout, handshake);
        ctx.spawn(
            handshake
                .into_actor(self)
                .map(|result, act, ctx| match result {
                    Ok(Ok((_response, framed))) => act.on_connected(framed, ctx),
                    Ok(Err(error)) => {
                        act.on_connect_failed(classify(&error), error.to_string(), ctx)
                    }
                    Err(_elapsed) => act.on_connect_failed(
                        ConnectFailure::Timeout,
                        format!(
                            "handshake not done within {:?}",
                            act.config.timing.connect_timeout
                        ),
                        ctx,
                    ),
                }),
        );
    }

    fn on_connect_failed(
        &mut self,
        reason: ConnectFailure,
        error: String,
        ctx: &mut Context<Self>,
    ) {
        let mut delay = self.backoff.next_delay();
        match reason {
            ConnectFailure::Http429 => {
                delay = delay.max(self.retry_after.get().unwrap_or(DEFAULT_RETRY_AFTER))
            }
            ConnectFailure::Http418 => {
                // Upbit's answer says how long the ban lasts; without a Retry-After the wait
                // doubles with every repeat (Upbit's bans grow), up to BAN_PENALTY_CAP.
                let penalty = self
                    .retry_after
                    .get()
                    .unwrap_or_else(|| ban_penalty(self.config.timing.ban_penalty, self.bans));
                self.bans = self.bans.saturating_add(1);
                delay = delay.max(penalty)
            }
            _ => {}
        }
        self.next_delay = delay;
        ConnectFailed {
            connection: self.config.index,
            reason,
            error: &error,
            retry_in: delay,
        }
        .emit(&self.peers.metrics);
        let failures = self.backoff.failures();
        self.peers.status.update(|s| {
            s.state = LinkState::Backoff;
            s.consecutive_failures = failures;
            s.last_error = Some(format!("{}: {error}", reason.as_str()));
        });
        ctx.stop();
    }

    fn on_connected(&mut self, framed: Framed<BoxedSocket, ws::Codec>, ctx: &mut Context<Self>) {
        Connected {
            url: &self.config.url,
            attempt: self.attempts,
        }
        .emit(&self.peers.metrics);
        self.announce(LinkChange::Connected);
        let (sink, stream) = framed.split();
        self.link = Link {
            sink: Some(SinkWrite::new(sink, ctx)),
            connected: true,
            ..Link::default()
        };
        self.peers.status.frame_seen();
        // Everything the socket has ready arrives as one batch (one frame when traffic is light).
        ctx.add_stream(stream.ready_chunks(READ_BATCH));

        let timing = &self.config.timing;
        ctx.run_interval(timing.ping_interval, |act, _| {
            if act.write(ws::Message::Ping(Bytes::new())) {
                act.peers.metrics.pings_sent.inc();
            }
        });
        let idle_timeout = timing.idle_timeout;
        let check_every =
            (idle_timeout / 10).clamp(Duration::from_millis(10), Duration::from_secs(1));
        ctx.run_interval(check_every, move |act, ctx| {
            let quiet = act.link.last_frame.elapsed();
            if quiet > idle_timeout {
                act.end(
                    DisconnectReason::IdleTimeout,
                    format!("no frame for {:.1}s", quiet.as_secs_f64()),
                );
                ctx.stop();
            }
        });
        self.send_subscription();
    }

    /// Sends the whole desired subscription (or idles on an empty one) and asks Upbit to list it.
    fn send_subscription(&mut self) {
        self.peers.request_budget.lock().reserve(Instant::now());
        if self.subscription.is_empty() {
            self.link.sent = Some((Subscription::default(), self.config.orderbook.clone()));
            log::info!("connected with an empty subscription: idling (pings keep the link open)");
            self.peers.metrics.link_up(self.config.index, true);
            self.peers.status.update(|s| {
                s.state = LinkState::Idle;
                s.ticket = None;
                s.acknowledged = None;
            });
            return;
        }
        let ticket = uuid::Uuid::new_v4().to_string();
        let request =
            self.subscription
                .to_request_with(&ticket, self.config.format, &self.config.orderbook);
        let list = list_subscriptions_request(&ticket, self.config.format);
        if !self.write(ws::Message::Text(request.into())) {
            return;
        }
        let types: Vec<&str> = self
            .subscription
            .entries()
            .map(|(t, _)| t.as_str())
            .collect();
        Subscribed {
            connection: self.config.index,
            ticket: &ticket,
            pairs: self.subscription.len(),
            codes: self.subscription.codes().len(),
            types: &types.join(","),
            format: self.config.format.as_str(),
        }
        .emit(&self.peers.metrics);
        if self.write(ws::Message::Text(list.into())) {
            self.peers.metrics.subscription_requests.inc();
        }
        self.link.sent = Some((self.subscription.clone(), self.config.orderbook.clone()));
        self.peers.status.update(|s| {
            s.state = LinkState::Subscribed;
            s.ticket = Some(ticket);
            s.acknowledged = None;
        });
    }

    /// Sends the desired subscription on the live link as soon as Upbit's request limits allow;
    /// calls arriving meanwhile coalesce into that one message.
    fn schedule_flush(&mut self, ctx: &mut Context<Self>) {
        if !self.link.connected || self.link.flush_pending {
            return;
        }
        let now = Instant::now();
        let at = self.peers.request_budget.lock().earliest(now);
        self.link.flush_pending = true;
        ctx.run_later(at.saturating_duration_since(now), |act, ctx| {
            act.link.flush_pending = false;
            let current = act.link.sent.as_ref().is_some_and(|(sub, orderbook)| {
                *sub == act.subscription && *orderbook == act.config.orderbook
            });
            if current {
                return;
            }
            let was_subscribed = act.link.sent.as_ref().is_some_and(|(s, _)| !s.is_empty());
            if act.subscription.is_empty() && was_subscribed {
                // Upbit rejects `codes: []` and keeps the old set; a fresh link that subscribes
                // to nothing is the only way to stop the data.
                act.next_delay = Duration::ZERO;
                act.end(DisconnectReason::Control, "subscription emptied".into());
                ctx.stop();
                return;
            }
            act.send_subscription();
        });
    }

    /// Queues a frame on the sink; false if there is no open sink.
    fn write(&mut self, message: ws::Message) -> bool {
        match self.link.sink.as_mut() {
            Some(sink) => sink.write(message).is_ok(),
            None => false,
        }
    }

    /// Records why the link ends (the first reason wins).
    fn end(&mut self, reason: DisconnectReason, detail: String) {
        self.link.ended.get_or_insert((reason, detail));
    }

    fn on_data(&mut self, payload: Bytes) {
        if !self.link.data_flowed && !payload.starts_with(b"{\"error\"") {
            self.link.data_flowed = true;
            self.backoff.reset();
            self.bans = 0;
            self.peers.status.update(|s| s.consecutive_failures = 0);
        }
        self.link.pending.push(payload);
    }

    /// Hands the data frames of this read to the decoder, dropping (and counting) what its
    /// stage queue has no room for.
    fn flush_frames(&mut self) {
        if self.link.pending.is_empty() {
            return;
        }
        let mut payloads = std::mem::take(&mut self.link.pending);
        let metrics = &self.peers.metrics;
        metrics.received_frames.inc_by(payloads.len() as u64);
        metrics
            .received_bytes
            .inc_by(payloads.iter().map(|p| p.len() as u64).sum());
        let wanted = payloads.len();
        let granted = self.peers.decoder_queue.reserve(wanted);
        payloads.truncate(granted);
        let (mut dropped, mut reason) = (wanted - granted, "queue_full");
        if granted > 0 {
            let batch = FramesReceived {
                connection: self.config.index,
                payloads,
                received_at: SystemTime::now(),
                read_at: Instant::now(),
            };
            if let Err(error) = self.peers.decoder.try_send(batch) {
                self.peers.decoder_queue.release(granted);
                dropped = wanted;
                if let SendError::Closed(_) = error {
                    reason = "stopped";
                }
            }
        }
        if dropped > 0 {
            let log = self.drop_log.allow();
            MessagesDropped {
                stage: "decoder",
                reason,
                count: dropped as u64,
                log,
            }
            .emit(metrics);
        }
    }

    /// Reassembles a fragmented message, holding at most `pipeline.max_frame_bytes`: a longer
    /// one is counted (`oversized`) the moment it passes the limit and its remaining parts are
    /// skipped as they arrive. Fragments out of order (a continuation without a start, a start
    /// inside a message) never get here: the codec refuses them as a protocol error, which ends
    /// the link (`upbit_disconnections_total{reason="error"}`).
    fn on_continuation(&mut self, item: Item) {
        let limit = self.config.max_frame_bytes;
        let (part, last) = match item {
            Item::FirstText(part) | Item::FirstBinary(part) => {
                self.link.fragments = Some(Fragments::Collecting(BytesMut::new()));
                (part, false)
            }
            Item::Continue(part) => (part, false),
            Item::Last(part) => (part, true),
        };
        let fragments = match self.link.fragments.take() {
            Some(Fragments::Collecting(mut buffer)) if buffer.len() + part.len() <= limit => {
                buffer.extend_from_slice(&part);
                Fragments::Collecting(buffer)
            }
            Some(Fragments::Collecting(buffer)) => {
                let size = buffer.len() + part.len();
                self.fragment_failed(DecodeError::Oversized { size, limit }, &buffer);
                Fragments::Discarding
            }
            Some(Fragments::Discarding) | None => Fragments::Discarding,
        };
        match (fragments, last) {
            (Fragments::Collecting(buffer), true) => self.on_data(buffer.freeze()),
            (_, true) => {}
            (fragments, false) => self.link.fragments = Some(fragments),
        }
    }

    fn fragment_failed(&mut self, error: DecodeError, payload: &[u8]) {
        let log = self.drop_log.allow();
        DecodeFailed {
            error: &error,
            payload,
            log,
        }
        .emit(&self.peers.metrics);
    }
}

/// A fragmented message being reassembled from Upbit.
enum Fragments {
    /// Its parts so far (at most `pipeline.max_frame_bytes`).
    Collecting(BytesMut),
    /// Counted already (too large): its remaining parts are skipped.
    Discarding,
}

impl Actor for ConnectionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.shutting_down {
            return;
        }
        let now = Instant::now();
        let wanted = now + std::mem::take(&mut self.next_delay);
        let at = self.peers.attempt_budget.lock().reserve(wanted);
        let delay = at.saturating_duration_since(now);
        if !delay.is_zero() {
            self.peers.status.update(|s| {
                s.state = LinkState::Backoff;
                s.backoff_seconds = Some(delay.as_secs_f64());
            });
        }
        ctx.run_later(delay, |act, ctx| act.connect(ctx));
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if !self.link.connected {
            return;
        }
        let (reason, detail) = self
            .link
            .ended
            .take()
            .unwrap_or((DisconnectReason::Error, "connection lost".to_owned()));
        let retry_in = match reason {
            DisconnectReason::Shutdown => None,
            DisconnectReason::Control => Some(self.next_delay),
            _ => {
                self.next_delay = self.backoff.next_delay();
                Some(self.next_delay)
            }
        };
        Disconnected {
            connection: self.config.index,
            reason,
            detail: &detail,
            retry_in,
        }
        .emit(&self.peers.metrics);
        self.announce(LinkChange::Disconnected {
            reason: reason.as_str(),
            detail: detail.clone(),
        });
        let failures = self.backoff.failures();
        let shutting_down = self.shutting_down;
        self.peers.status.update(|s| {
            s.state = if shutting_down {
                LinkState::Stopped
            } else {
                LinkState::Backoff
            };
            s.backoff_seconds = retry_in.map(|d| d.as_secs_f64());
            s.consecutive_failures = failures;
            s.last_error = Some(format!("{}: {detail}", reason.as_str()));
        });
        self.link = Link::default();
    }
}

impl Supervised for ConnectionActor {
    fn restarting(&mut self, _: &mut Self::Context) {
        self.link = Link::default();
    }
}

impl WriteHandler<WsProtocolError> for ConnectionActor {
    fn error(&mut self, error: WsProtocolError, _: &mut Self::Context) -> Running {
        self.end(DisconnectReason::Error, format!("write failed: {error}"));
        Running::Stop
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl StreamHandler<Vec<Result<Frame, WsProtocolError>>> for ConnectionActor {
    fn handle(&mut self, items: Vec<Result<Frame, WsProtocolError>>, ctx: &mut Self::Context) {
        self.link.last_frame = Instant::now();
        self.peers.status.frame_seen();
        for item in items {
            if !self.on_frame(item, ctx) {
                break;
            }
        }
        // Data read before a close frame or an error still counts.
        self.flush_frames();
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        self.end(
            DisconnectReason::Error,
            "stream ended without a close frame".into(),
        );
        ctx.stop();
    }
}

impl ConnectionActor {
    /// Handles one frame of a read; false when the link ends (the rest of the read is ignored).
    fn on_frame(&mut self, item: Result<Frame, WsProtocolError>, ctx: &mut Context<Self>) -> bool {
        match item {
            Ok(Frame::Binary(payload) | Frame::Text(payload)) => self.on_data(payload),
            Ok(Frame::Continuation(item)) => self.on_continuation(item),
            Ok(Frame::Ping(payload)) => {
                self.write(ws::Message::Pong(payload));
            }
            Ok(Frame::Pong(_)) => self.peers.metrics.pongs_received.inc(),
            Ok(Frame::Close(reason)) => {
                let detail = match reason {
                    Some(CloseReason { code, description }) => {
                        format!(
                            "close frame code={} {}",
                            u16::from(code),
                            description.unwrap_or_default()
                        )
                    }
                    None => "close frame without code".to_owned(),
                };
                self.end(DisconnectReason::ClosedByServer, detail);
                ctx.stop();
                return false;
            }
            Err(error) => {
                self.end(DisconnectReason::Error, format!("protocol error: {error}"));
                ctx.stop();
                return false;
            }
        }
        true
    }
}

impl Handler<SetSubscription> for ConnectionActor {
    type Result = ();

    fn handle(&mut self, request: SetSubscription, ctx: &mut Self::Context) {
        if request.subscription != self.subscription || request.orderbook != self.config.orderbook {
            self.subscription = request.subscription;
            self.config.orderbook = request.orderbook;
            self.schedule_flush(ctx);
        }
    }
}

impl Handler<Reconnect> for ConnectionActor {
    type Result = ();

    fn handle(&mut self, _: Reconnect, ctx: &mut Self::Context) {
        if self.link.connected {
            self.next_delay = Duration::ZERO;
            self.end(DisconnectReason::Control, "reconnect requested".into());
            ctx.stop();
        }
    }
}

impl Handler<Shutdown> for ConnectionActor {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        self.shutting_down = true;
        if !self.link.connected {
            self.peers.status.update(|s| s.state = LinkState::Stopped);
            ctx.stop();
            return;
        }
        self.end(DisconnectReason::Shutdown, "service stopping".into());
        // The closing handshake: our close frame, then Upbit's answer ends the stream and the
        // actor. Shutting the socket right behind our frame can lose it at the peer.
        let close = CloseReason {
            code: CloseCode::Normal,
            description: None,
        };
        self.write(ws::Message::Close(Some(close)));
        ctx.run_later(CLOSE_GRACE, |_, ctx| ctx.stop());
    }
}

impl ConnectionActor {
    /// Tells the pipeline the link came up or went down, behind every frame already handed on.
    /// `do_send`: rare, and never dropped for a full mailbox.
    fn announce(&self, change: LinkChange) {
        if let Some(link_events) = &self.peers.link_events {
            link_events.do_send(LinkChanged {
                connection: self.config.index,
                change,
                at: SystemTime::now(),
            });
        }
    }
}
