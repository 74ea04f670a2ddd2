//! DecoderActor: frames in, typed market messages out.
//!
//! Runs on the pipeline arbiter beside the connections and the metrics actor (one thread apart
//! from the HTTP workers; `app.rs` says why). Status frames
//! only prove liveness (the connection actor already noted the frame); error frames are counted
//! and logged loudly; LIST_SUBSCRIPTIONS answers go to the status board; market messages go to
//! the metrics actor, one envelope per batch of frames. Messages beyond the metrics stage's
//! queue bound are dropped and counted.
//!
//! Not supervised, on purpose (and the same is recommended for the metrics actor). actix's
//! `Supervisor` restarts an actor when it *stops*, and this one never stops on its own: no
//! handler calls `ctx.stop()`, and its addresses live as long as the pipeline (the connections
//! hold one), so it ends only with the pipeline thread. The one way it can die early, a panic in
//! a handler, is not a stop: tokio catches the panic and drops the actor's task, `Supervisor`
//! included, so no restart happens either way (the test below pins this actix behaviour). A
//! restart would also lose little, the log throttles, since the mailbox is kept across one.
//! What guards the pipeline instead: decoding cannot panic on any input (a property test feeds
//! it arbitrary bytes; a bad frame is a counted `upbit_decode_errors_total`, never a panic); and
//! were this actor gone, every later batch would fail `try_send` as closed and be counted as
//! `upbit_dropped_messages_total{stage="decoder",reason="stopped"}` (the alert
//! `UpbitExporterDroppedMessages` fires), with `upbit_pipeline_queue_depth{stage="decoder"}`
//! stuck at what the dead mailbox held, instead of frames vanishing unseen.

use std::time::Duration;

use actix::{Actor, Context, Handler, Recipient};

use super::queue::{StageQueue, StageSender};
use bytes::Bytes;

use crate::messages::{FramesDecoded, FramesReceived, LinkChanged, MarketMessage};
use crate::status::StatusBoards;
use crate::stream::Publisher;
use crate::telemetry::events::{DecodeFailed, FieldSkipped, ServerErrorReceived};
use crate::telemetry::{LogThrottle, Metrics};
use crate::upbit::decode::{decode_frame_brief_with, Decoded};
use crate::upbit::{DecodeError, Message};

/// How often a flood of bad frames or drops may write a log line.
const LOG_EVERY: Duration = Duration::from_secs(10);

pub struct DecoderActor {
    metrics: Metrics,
    status: StatusBoards,
    max_frame_bytes: usize,
    /// Frames waiting for this actor (released here).
    inbound: StageQueue,
    /// The metrics stage: decoded messages go there.
    outbound: StageSender<FramesDecoded>,
    decode_log: LogThrottle,
    field_log: LogThrottle,
    /// Where link events go on, in order with the decoded frames (the metrics actor).
    link_sink: Option<Recipient<LinkChanged>>,
    /// The live stream: with a sink, every message is decoded in full here, once (the hub's
    /// consumers take the JSON as it is).
    stream: Publisher,
}

impl DecoderActor {
    pub fn new(
        metrics: Metrics,
        status: StatusBoards,
        sink: Recipient<FramesDecoded>,
        max_frame_bytes: usize,
        inbound: StageQueue,
        outbound: StageQueue,
    ) -> Self {
        Self {
            metrics,
            status,
            max_frame_bytes,
            inbound,
            outbound: StageSender::new("metrics", sink, outbound),
            decode_log: LogThrottle::new(LOG_EVERY),
            field_log: LogThrottle::new(LOG_EVERY),
            link_sink: None,
            stream: Publisher::disabled(),
        }
    }

    /// Decodes in full, at once, the messages of the types `stream`'s consumers want (the
    /// metrics actor's publisher, which encodes them).
    pub fn with_stream(mut self, stream: Publisher) -> Self {
        self.stream = stream;
        self
    }

    /// Forwards link events to `sink`, which must be the actor that receives `FramesDecoded`
    /// (one mailbox keeps them in order).
    pub fn with_link_sink(mut self, sink: Recipient<LinkChanged>) -> Self {
        self.link_sink = Some(sink);
        self
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
        // The stage queue bounds what waits, in frames; the mailbox only needs to hold as many
        // envelopes (batches of at least one frame).
        ctx.set_mailbox_capacity(self.inbound.capacity());
    }
}

impl Handler<FramesReceived> for DecoderActor {
    type Result = ();

    fn handle(&mut self, batch: FramesReceived, _: &mut Self::Context) {
        let frames = batch.payloads.len();
        let mut messages = Vec::with_capacity(frames);
        for payload in &batch.payloads {
            self.decode(batch.connection, payload, &mut messages);
        }
        self.inbound.release(frames);
        let wrap = |messages| FramesDecoded {
            messages,
            received_at: batch.received_at,
            read_at: batch.read_at,
        };
        self.outbound.hand_over(messages, wrap, &self.metrics);
    }
}

impl DecoderActor {
    /// Decodes one frame: market messages to `out`, everything else handled here.
    fn decode(&mut self, connection: usize, payload: &Bytes, out: &mut Vec<MarketMessage>) {
        if payload.len() > self.max_frame_bytes {
            let error = DecodeError::Oversized {
                size: payload.len(),
                limit: self.max_frame_bytes,
            };
            self.decode_failed(&error, payload);
            return;
        }
        let mut failures = Vec::new();
        let mut skipped_fields: Vec<String> = Vec::new();
        let skipped = |field: &str| skipped_fields.push(field.to_owned());
        let mut frame_bytes = Some(payload.len());
        let stream = &self.stream;
        decode_frame_brief_with(
            payload,
            |_| stream.wants_in_full(),
            |result| match result {
                Ok(Decoded::Market { brief, json, full }) => out.push(MarketMessage {
                    brief,
                    json: payload.slice_ref(json),
                    frame_bytes: frame_bytes.take(),
                    full,
                }),
                Ok(Decoded::Control(control)) => match *control {
                    Message::Error(e) => ServerErrorReceived {
                        name: &e.name,
                        message: e.message.as_deref(),
                    }
                    .emit(&self.metrics),
                    Message::Subscriptions(list) => {
                        log::info!(
                            "Upbit acknowledged subscription entries={}",
                            list.result.len()
                        );
                        if let Some(board) = self.status.get(connection) {
                            board.update(|s| s.acknowledged = Some(list.result));
                        }
                    }
                    // Status frames only prove liveness; market messages come as `Market`.
                    _ => {}
                },
                Err(error) => failures.push(error),
            },
            skipped,
        );
        for field in &skipped_fields {
            let log = self.field_log.allow();
            FieldSkipped { field, log }.emit(&self.metrics);
        }
        for error in &failures {
            self.decode_failed(error, payload);
        }
    }
}

impl Handler<LinkChanged> for DecoderActor {
    type Result = ();

    /// Passes the event on behind the frames decoded so far; `do_send`, so it is never dropped.
    fn handle(&mut self, event: LinkChanged, _: &mut Self::Context) {
        if let Some(sink) = &self.link_sink {
            sink.do_send(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use actix::{Actor, ActorContext, Context, Handler, Supervised, Supervisor};

    /// An actor that can be told to stop or to panic, counting its restarts.
    struct Fragile {
        restarts: Arc<AtomicUsize>,
    }

    impl Actor for Fragile {
        type Context = Context<Self>;
    }

    impl Supervised for Fragile {
        fn restarting(&mut self, _: &mut Context<Self>) {
            self.restarts.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[derive(actix::Message)]
    #[rtype(result = "()")]
    enum Poke {
        Stop,
        Panic,
        Ping,
    }

    impl Handler<Poke> for Fragile {
        type Result = ();
        fn handle(&mut self, poke: Poke, ctx: &mut Context<Self>) {
            match poke {
                Poke::Stop => ctx.stop(),
                Poke::Panic => panic!("a handler panicked (expected by this test)"),
                Poke::Ping => {}
            }
        }
    }

    /// The premise of the module doc's decision: supervision covers a stop, not a panic.
    #[actix_rt::test]
    async fn a_supervisor_restarts_a_stopped_actor_but_not_one_whose_handler_panicked() {
        let restarts = Arc::new(AtomicUsize::new(0));
        let counter = restarts.clone();
        let addr = Supervisor::start(move |_| Fragile { restarts: counter });

        addr.send(Poke::Stop).await.unwrap();
        addr.send(Poke::Ping).await.expect("restarted after a stop");
        assert_eq!(restarts.load(Ordering::SeqCst), 1);

        assert!(
            addr.send(Poke::Panic).await.is_err(),
            "no answer from a panic"
        );
        assert!(
            addr.send(Poke::Ping).await.is_err(),
            "gone for good after a panic, although supervised"
        );
        assert_eq!(
            restarts.load(Ordering::SeqCst),
            1,
            "no restart after a panic"
        );
    }
}
