//! The link itself: the handshake, what a failed attempt costs ([`delay_after_failure`]), the
//! socket's frames and the timers of a live link (a ping every `ping_interval`; the link is
//! dropped when no frame at all arrives within `idle_timeout`). Every way a link ends records
//! why (the first reason wins) and stops the actor; `stopped()` in the parent module reports it.

use std::time::{Duration, Instant, SystemTime};

use actix::io::{SinkWrite, WriteHandler};
use actix::prelude::*;
use actix_codec::Framed;
use awc::error::WsProtocolError;
use awc::ws::{self, CloseReason, Frame};
use awc::BoxedSocket;
use bytes::Bytes;
use futures_util::stream::StreamExt;

use super::{ConnectionActor, Link};
use crate::actors::client::{build_client, classify};
use crate::actors::pacing::ban_penalty;
use crate::messages::{LinkChange, LinkChanged};
use crate::status::LinkState;
use crate::telemetry::events::{
    ConnectAttempted, ConnectFailed, ConnectFailure, Connected, DisconnectReason,
};

/// Largest frame the codec accepts; frames above `pipeline.max_frame_bytes` but below this are
/// read and counted as oversized by the decoder, anything larger ends the link (protocol error).
const CODEC_MAX_FRAME: usize = 16 << 20;

/// Most frames handed to the decoder in one batch (what one socket read yields, up to this).
const READ_BATCH: usize = 64;

/// A refused upgrade (429) without `Retry-After` waits at least this long.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The wait after a failed attempt: the backoff's draw (`drawn`), but at least what Upbit asked
/// for after 429 (`Retry-After`, else [`DEFAULT_RETRY_AFTER`]) or 418 (`Retry-After`, else the
/// ban penalty for the `bans`-th repeat, doubling from `ban_base`).
pub(super) fn delay_after_failure(
    reason: ConnectFailure,
    drawn: Duration,
    retry_after: Option<Duration>,
    ban_base: Duration,
    bans: u32,
) -> Duration {
    match reason {
        ConnectFailure::Http429 => drawn.max(retry_after.unwrap_or(DEFAULT_RETRY_AFTER)),
        ConnectFailure::Http418 => {
            drawn.max(retry_after.unwrap_or_else(|| ban_penalty(ban_base, bans)))
        }
        _ => drawn,
    }
}

/// How often a live link checks for silence: a tenth of the timeout, within 10 ms..1 s.
fn idle_check_every(idle_timeout: Duration) -> Duration {
    (idle_timeout / 10).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// How a close frame is described in the disconnect reason.
fn close_detail(reason: Option<CloseReason>) -> String {
    match reason {
        Some(CloseReason { code, description }) => format!(
            "close frame code={} {}",
            u16::from(code),
            description.unwrap_or_default()
        ),
        None => "close frame without code".to_owned(),
    }
}

impl ConnectionActor {
    pub(super) fn connect(&mut self, ctx: &mut Context<Self>) {
        if self.shutting_down {
            return;
        }
        self.attempts += 1;
        ConnectAttempted {
            url: &self.config.url,
            attempt: self.attempts,
        }
        .emit(&self.metrics);
        let attempts = self.attempts;
        self.status.update(|s| {
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
        let drawn = self.backoff.next_delay();
        let (ban_base, bans) = (self.config.timing.ban_penalty, self.bans);
        let delay = delay_after_failure(reason, drawn, self.retry_after.get(), ban_base, bans);
        if reason == ConnectFailure::Http418 {
            // Upbit's bans grow with repeats: without a Retry-After the next one waits longer.
            self.bans = self.bans.saturating_add(1);
        }
        self.next_delay = delay;
        ConnectFailed {
            connection: self.config.index,
            reason,
            error: &error,
            retry_in: delay,
        }
        .emit(&self.metrics);
        let failures = self.backoff.failures();
        self.status.update(|s| {
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
        .emit(&self.metrics);
        self.announce(LinkChange::Connected);
        let (sink, stream) = framed.split();
        self.link = Link {
            sink: Some(SinkWrite::new(sink, ctx)),
            connected: true,
            ..Link::default()
        };
        self.status.frame_seen();
        // Everything the socket has ready arrives as one batch (one frame when traffic is light).
        ctx.add_stream(stream.ready_chunks(READ_BATCH));

        let timing = &self.config.timing;
        ctx.run_interval(timing.ping_interval, |act, _| {
            if act.write(ws::Message::Ping(Bytes::new())) {
                act.metrics.pings_sent.inc();
            }
        });
        let idle_timeout = timing.idle_timeout;
        ctx.run_interval(idle_check_every(idle_timeout), move |act, ctx| {
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

    /// Queues a frame on the sink; false if there is no open sink.
    pub(super) fn write(&mut self, message: ws::Message) -> bool {
        match self.link.sink.as_mut() {
            Some(sink) => sink.write(message).is_ok(),
            None => false,
        }
    }

    /// Records why the link ends (the first reason wins).
    pub(super) fn end(&mut self, reason: DisconnectReason, detail: String) {
        self.link.ended.get_or_insert((reason, detail));
    }

    /// Tells the pipeline the link came up or went down, behind every frame already handed on.
    /// `do_send`: rare, and never dropped for a full mailbox.
    pub(super) fn announce(&self, change: LinkChange) {
        if let Some(link_events) = &self.link_events {
            link_events.do_send(LinkChanged {
                connection: self.config.index,
                change,
                at: SystemTime::now(),
            });
        }
    }

    /// Handles one frame of a read; false when the link ends (the rest of the read is ignored).
    fn on_frame(&mut self, item: Result<Frame, WsProtocolError>, ctx: &mut Context<Self>) -> bool {
        match item {
            Ok(Frame::Binary(payload) | Frame::Text(payload)) => self.on_data(payload),
            Ok(Frame::Continuation(item)) => self.on_continuation(item),
            Ok(Frame::Ping(payload)) => {
                self.write(ws::Message::Pong(payload));
            }
            Ok(Frame::Pong(_)) => self.metrics.pongs_received.inc(),
            Ok(Frame::Close(reason)) => {
                self.end(DisconnectReason::ClosedByServer, close_detail(reason));
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
        self.status.frame_seen();
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

#[cfg(test)]
mod tests {
    use awc::ws::CloseCode;

    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_plain_failure_waits_what_the_backoff_drew() {
        for reason in [ConnectFailure::Refused, ConnectFailure::Timeout] {
            let delay = delay_after_failure(reason, SECOND, Some(SECOND * 30), SECOND * 60, 3);
            assert_eq!(delay, SECOND, "{reason:?} ignores Retry-After");
        }
    }

    #[test]
    fn a_429_waits_at_least_its_retry_after_or_a_second() {
        let wait = |drawn, retry_after| {
            delay_after_failure(ConnectFailure::Http429, drawn, retry_after, SECOND * 60, 0)
        };
        assert_eq!(wait(SECOND / 10, Some(SECOND * 7)), SECOND * 7);
        assert_eq!(wait(SECOND / 10, None), DEFAULT_RETRY_AFTER);
        assert_eq!(wait(SECOND * 9, Some(SECOND * 7)), SECOND * 9);
    }

    #[test]
    fn a_418_waits_its_retry_after_or_a_penalty_that_doubles_with_repeats() {
        let wait = |retry_after, bans| {
            delay_after_failure(
                ConnectFailure::Http418,
                SECOND,
                retry_after,
                SECOND * 60,
                bans,
            )
        };
        assert_eq!(wait(Some(SECOND * 5), 4), SECOND * 5);
        assert_eq!(wait(None, 0), SECOND * 60);
        assert_eq!(wait(None, 2), SECOND * 240);
    }

    #[test]
    fn silence_is_checked_ten_times_per_timeout_within_bounds() {
        assert_eq!(idle_check_every(SECOND), SECOND / 10);
        assert_eq!(
            idle_check_every(Duration::from_millis(50)),
            Duration::from_millis(10)
        );
        assert_eq!(idle_check_every(SECOND * 60), SECOND);
    }

    #[test]
    fn a_close_frame_is_described_by_its_code_and_text() {
        let reason = CloseReason {
            code: CloseCode::Away,
            description: Some("bye".into()),
        };
        assert_eq!(close_detail(Some(reason)), "close frame code=1001 bye");
        assert_eq!(close_detail(None), "close frame without code");
    }
}
