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
//!
//! One job per file:
//! - this file: the actor, its configuration and peers, its life cycle (`started`, `stopped`,
//!   `restarting`) and the control messages (`SetSubscription`, `Reconnect`, `Shutdown`);
//! - `link.rs`: the handshake and what a failure costs, the socket's frames, the ping and idle
//!   timers;
//! - `subscribe.rs`: the subscription messages and the coalescing of changes;
//! - `fragments.rs`: reassembly of fragmented messages (plain state);
//! - `batch.rs`: the data frames of one read, handed to the decoder stage.

mod batch;
mod fragments;
mod link;
mod subscribe;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::io::SinkWrite;
use actix::prelude::*;
use actix_codec::Framed;
use awc::ws::{self, CloseCode, CloseReason};
use awc::BoxedSocket;
use bytes::Bytes;
use futures_util::stream::SplitSink;
use parking_lot::Mutex;

use super::client::RetryAfterSlot;
use super::pacing::{Backoff, RateWindow, RequestBudget};
use super::queue::{StageQueue, StageSender};
use crate::messages::{
    FramesReceived, LinkChange, LinkChanged, Reconnect, SetSubscription, Shutdown,
};
use crate::settings::{ConnectionSettings, Settings};
use crate::status::{LinkState, StatusBoard};
use crate::telemetry::events::{DisconnectReason, Disconnected};
use crate::telemetry::{LogThrottle, Metrics};
use crate::upbit::request::OrderbookOptions;
use crate::upbit::{Format, Subscription};
use fragments::Reassembler;

/// How long a shutdown waits for Upbit to answer our close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// How often a flood of oversized fragmented messages may write a log line.
const FRAGMENT_LOG_EVERY: Duration = Duration::from_secs(10);

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
    /// The decoder stage: the frames of each read go there.
    decoder: StageSender<FramesReceived>,
    metrics: Metrics,
    status: StatusBoard,
    attempt_budget: Arc<Mutex<RateWindow>>,
    request_budget: Arc<Mutex<RequestBudget>>,
    link_events: Option<Recipient<LinkChanged>>,
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
    fragment_log: LogThrottle,
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
    fragments: Reassembler,
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
            fragments: Reassembler::default(),
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
        let ConnectionPeers {
            decoder,
            decoder_queue,
            metrics,
            status,
            attempt_budget,
            request_budget,
            link_events,
        } = peers;
        let backoff = Backoff::new(config.timing.backoff_min, config.timing.backoff_max);
        Self {
            config,
            decoder: StageSender::new("decoder", decoder, decoder_queue),
            metrics,
            status,
            attempt_budget,
            request_budget,
            link_events,
            client: None,
            retry_after: Rc::new(Cell::new(None)),
            subscription,
            backoff,
            attempts: 0,
            bans: 0,
            next_delay: Duration::ZERO,
            shutting_down: false,
            fragment_log: LogThrottle::new(FRAGMENT_LOG_EVERY),
            link: Link::default(),
        }
    }
}

impl Actor for ConnectionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.shutting_down {
            return;
        }
        let now = Instant::now();
        let wanted = now + std::mem::take(&mut self.next_delay);
        let at = self.attempt_budget.lock().reserve(wanted);
        let delay = at.saturating_duration_since(now);
        if !delay.is_zero() {
            self.status.update(|s| {
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
        .emit(&self.metrics);
        self.announce(LinkChange::Disconnected {
            reason: reason.as_str(),
            detail: detail.clone(),
        });
        let failures = self.backoff.failures();
        let shutting_down = self.shutting_down;
        self.status.update(|s| {
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
            self.status.update(|s| s.state = LinkState::Stopped);
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
