//! DecoderActor: frames in, typed market messages out.
//!
//! Runs on its own arbiter (thread) so decoding never delays the socket reader. Status frames
//! only prove liveness (the connection actor already noted the frame); error frames are counted
//! and logged loudly; LIST_SUBSCRIPTIONS answers go to the status board; market messages go to
//! the metrics actor in one message per frame. A full metrics mailbox drops the frame's
//! messages and counts them.

use std::time::Duration;

use actix::{Actor, Context, Handler, Recipient};

use crate::messages::{FrameDecoded, FrameReceived};
use crate::status::StatusBoard;
use crate::telemetry::events::{DecodeFailed, MessagesDropped, ServerErrorReceived};
use crate::telemetry::{LogThrottle, Metrics};
use crate::upbit::{decode_frame_with, DecodeError, Message};

/// How often a flood of bad frames or drops may write a log line.
const LOG_EVERY: Duration = Duration::from_secs(10);

pub struct DecoderActor {
    metrics: Metrics,
    status: StatusBoard,
    sink: Recipient<FrameDecoded>,
    max_frame_bytes: usize,
    mailbox_capacity: usize,
    decode_log: LogThrottle,
    drop_log: LogThrottle,
}

impl DecoderActor {
    pub fn new(
        metrics: Metrics,
        status: StatusBoard,
        sink: Recipient<FrameDecoded>,
        max_frame_bytes: usize,
        mailbox_capacity: usize,
    ) -> Self {
        Self {
            metrics,
            status,
            sink,
            max_frame_bytes,
            mailbox_capacity,
            decode_log: LogThrottle::new(LOG_EVERY),
            drop_log: LogThrottle::new(LOG_EVERY),
        }
    }

    fn decode_failed(&mut self, error: &DecodeError, payload: &[u8]) {
        let log = self.decode_log.allow();
        if log {
            let held_back = self.decode_log.take_suppressed();
            if held_back > 0 {
                log::warn!("{held_back} more undecodable frames since the last report (see upbit_decode_errors_total)");
            }
        }
        DecodeFailed {
            error,
            payload,
            log,
        }
        .emit(&self.metrics);
    }
}

impl Actor for DecoderActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.mailbox_capacity);
    }
}

impl Handler<FrameReceived> for DecoderActor {
    type Result = ();

    fn handle(&mut self, frame: FrameReceived, _: &mut Self::Context) {
        let payload = &frame.payload[..];
        if payload.len() > self.max_frame_bytes {
            let error = DecodeError::Oversized {
                size: payload.len(),
                limit: self.max_frame_bytes,
            };
            self.decode_failed(&error, payload);
            return;
        }
        let mut messages = Vec::new();
        let mut failures = Vec::new();
        decode_frame_with(payload, |result| match result {
            Ok(Message::Status(_)) => {}
            Ok(Message::Error(e)) => ServerErrorReceived {
                name: &e.name,
                message: e.message.as_deref(),
            }
            .emit(&self.metrics),
            Ok(Message::Subscriptions(list)) => {
                log::info!(
                    "Upbit acknowledged subscription entries={}",
                    list.result.len()
                );
                self.status.update(|s| s.acknowledged = Some(list.result));
            }
            Ok(market) => messages.push(market),
            Err(error) => failures.push(error),
        });
        for error in &failures {
            self.decode_failed(error, payload);
        }
        if messages.is_empty() {
            return;
        }
        let count = messages.len() as u64;
        let decoded = FrameDecoded {
            messages,
            received_at: frame.received_at,
            frame_bytes: payload.len(),
        };
        if self.sink.try_send(decoded).is_err() {
            let log = self.drop_log.allow();
            MessagesDropped {
                stage: "metrics",
                reason: "queue_full",
                count,
                log,
            }
            .emit(&self.metrics);
        }
    }
}
