//! The sender task: takes messages from the buffer, publishes each to JetStream with its
//! `Nats-Msg-Id`, and follows the acknowledgements (up to `nats.max_in_flight` at once).
//!
//! - Not connected: nothing is taken; the buffer fills (and drops its oldest when full).
//! - Connected: the stream is created or checked first (`stream_config`); a stream it cannot
//!   use is reported (state `stream_error`, `last_error`) and checked again after a while.
//! - An acknowledgement that times out or is lost with the connection puts the message back in
//!   front of the buffer: sent again under the same id, stored once. The server refusing it
//!   (an API error) drops it, counted as `rejected`.
//! - Stopping: what is buffered is still sent for a short while, then counted as `shutdown`.

use std::collections::HashMap;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::{self, Context};
use async_nats::Subject;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::buffer::Buffer;
use super::status::{SinkBoard, SinkState};
use super::{connect, stream_config, subject};
use crate::settings::NatsSettings;
use crate::stream::{Event, EventKind};
use crate::telemetry::metrics::SinkMetrics;
use crate::telemetry::LogThrottle;
use crate::upbit::DataType;

/// How long a stream that cannot be used waits before it is checked again.
const STREAM_RECHECK: Duration = Duration::from_secs(5);

/// How long the sender keeps sending at shutdown before counting the rest as dropped.
pub const SHUTDOWN_FLUSH: Duration = Duration::from_secs(2);

type Acked = Pin<Box<dyn Future<Output = (Event, Result<PublishAck, PublishError>)> + Send>>;

/// Everything the task owns.
pub(super) struct Sender {
    pub settings: NatsSettings,
    pub buffer: Arc<Buffer>,
    pub board: SinkBoard,
    pub metrics: SinkMetrics,
    /// Woken to stop (after `stopping` is set).
    pub stop: Arc<Notify>,
    pub stopping: Arc<std::sync::atomic::AtomicBool>,
    /// Subjects already built, per (type, code).
    subjects: HashMap<(DataType, Arc<str>), Subject>,
    link_subject: Subject,
    error_log: LogThrottle,
}

impl Sender {
    pub fn new(
        settings: NatsSettings,
        buffer: Arc<Buffer>,
        board: SinkBoard,
        metrics: SinkMetrics,
    ) -> Self {
        Self {
            link_subject: Subject::from(format!("{}.link", settings.subject_prefix)),
            settings,
            buffer,
            board,
            metrics,
            stop: Arc::new(Notify::new()),
            stopping: Arc::default(),
            subjects: HashMap::new(),
            error_log: LogThrottle::new(Duration::from_secs(10)),
        }
    }

    fn stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Connects (retrying until it can start), then publishes until stopped.
    pub async fn run(mut self) {
        let changed = Arc::new(Notify::new());
        let client = loop {
            match connect::connect(&self.settings, changed.clone(), self.board.clone()).await {
                Ok(client) => break client,
                Err(e) => {
                    log::error!("nats: {e}");
                    self.board.error(e);
                    let retry = tokio::time::sleep(self.settings.reconnect_delay_max);
                    tokio::select! {
                        _ = retry => {}
                        _ = self.stop.notified() => {}
                    }
                    if self.stopping() {
                        self.finish(0);
                        return;
                    }
                }
            }
        };
        let js = jetstream::ContextBuilder::new()
            .timeout(self.settings.ack_timeout)
            .max_ack_inflight(self.settings.max_in_flight)
            .build(client.clone());
        let mut in_flight: FuturesUnordered<Acked> = FuturesUnordered::new();
        let mut stream_ready = false;
        let mut check_at = Instant::now();
        let mut stop_by: Option<Instant> = None;
        loop {
            let connected = client.connection_state() == State::Connected;
            self.board.set(match (connected, stream_ready) {
                _ if stop_by.is_some() => SinkState::Stopped,
                (false, _) => SinkState::Connecting,
                (true, true) => SinkState::Connected,
                (true, false) if self.board.state() == SinkState::StreamError => {
                    SinkState::StreamError
                }
                (true, false) => SinkState::CheckingStream,
            });
            if let Some(by) = stop_by {
                let drained = self.buffer.is_empty() && in_flight.is_empty();
                if drained || Instant::now() >= by || !connected {
                    break;
                }
            }
            if connected && !stream_ready && Instant::now() >= check_at {
                match self.ensure_stream(&js).await {
                    Ok(()) => stream_ready = true,
                    Err(e) => {
                        log::error!("nats: {e}");
                        self.board.error(e);
                        self.board.set(SinkState::StreamError);
                        check_at = Instant::now() + STREAM_RECHECK;
                    }
                }
                continue;
            }
            let room = self.settings.max_in_flight.saturating_sub(in_flight.len());
            let can_send = connected && stream_ready && room > 0;
            let wait_check = connected && !stream_ready;
            tokio::select! {
                _ = self.buffer.ready.notified(), if can_send => {
                    let mut batch = self.buffer.take(room).into_iter();
                    while let Some(event) = batch.next() {
                        match self.send(&js, event).await {
                            Ok(acked) => in_flight.push(acked),
                            Err(event) => {
                                // The client would not take it (lost connection, full
                                // queue): it and the rest wait in the buffer, in order. Never
                                // sent, so not a retry: `retried` counts sent messages whose
                                // acknowledgement failed, and every sent message ends acked,
                                // rejected or retried.
                                let rest = std::iter::once(event).chain(batch.by_ref());
                                self.buffer.put_back(rest.collect());
                                break;
                            }
                        }
                    }
                }
                Some((event, result)) = in_flight.next(), if !in_flight.is_empty() => {
                    if self.acked(event, result) {
                        stream_ready = false;
                    }
                }
                _ = changed.notified() => {}
                _ = tokio::time::sleep_until(check_at), if wait_check => {}
                _ = self.stop.notified(), if stop_by.is_none() => {}
                // The connection state has no event for every change: look again now and then.
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
            if self.stopping() && stop_by.is_none() {
                stop_by = Some(Instant::now() + SHUTDOWN_FLUSH);
            }
            self.metrics.in_flight.set(in_flight.len() as i64);
        }
        let left = self.buffer.clear() + in_flight.len();
        self.finish(left);
        drop(in_flight);
        let _ = client.flush().await;
    }

    fn finish(&self, left: usize) {
        self.metrics
            .dropped
            .with_label_values(&["shutdown"])
            .inc_by(left as u64);
        self.metrics.in_flight.set(0);
        self.board.set(SinkState::Stopped);
        log::info!("nats: stopped dropped={left}");
    }

    /// Sends one message; gives it back when it could not even be handed to the client.
    async fn send(&mut self, js: &Context, event: Event) -> Result<Acked, Event> {
        let subject = self.subject(&event);
        let mut publish = PublishMessage::build().payload(event.encoded.json().into_bytes());
        if let Some(id) = &event.id {
            publish = publish.message_id(id);
        }
        match js.send_publish(subject, publish).await {
            Ok(ack) => {
                self.metrics.published.inc();
                let ack = ack.into_future();
                Ok(Box::pin(async move { (event, ack.await) }))
            }
            Err(e) => {
                self.warn(format!("cannot publish: {e}"));
                Err(event)
            }
        }
    }

    /// Follows one acknowledgement; `true` when the stream has gone (checked again).
    fn acked(&mut self, event: Event, result: Result<PublishAck, PublishError>) -> bool {
        let error = match result {
            Ok(ack) => {
                self.metrics.acked.inc();
                if ack.duplicate {
                    self.metrics.duplicates.inc();
                }
                return false;
            }
            Err(error) => error,
        };
        let refused = matches!(
            error.kind(),
            PublishErrorKind::WrongLastMessageId | PublishErrorKind::WrongLastSequence
        ) || std::error::Error::source(&error)
            .is_some_and(|s| s.downcast_ref::<jetstream::Error>().is_some());
        if refused {
            self.warn(format!("JetStream refused a message: {error}"));
            self.metrics.dropped.with_label_values(&["rejected"]).inc();
            return false;
        }
        self.warn(format!("no acknowledgement, sending again: {error}"));
        self.metrics.retried.inc();
        self.buffer.put_back(vec![event]);
        error.kind() == PublishErrorKind::StreamNotFound
    }

    fn warn(&mut self, text: String) {
        if self.error_log.allow() {
            log::warn!("nats: {text}");
        }
        self.board.error(text);
    }

    fn subject(&mut self, event: &Event) -> Subject {
        let EventKind::Market { data_type, code } = &event.kind else {
            return self.link_subject.clone();
        };
        let prefix = &self.settings.subject_prefix;
        self.subjects
            .entry((*data_type, code.clone()))
            .or_insert_with(|| Subject::from(subject::of(prefix, event)))
            .clone()
    }

    /// Creates the stream, or checks that the existing one is the configured one.
    async fn ensure_stream(&self, js: &Context) -> Result<(), String> {
        let want = stream_config::desired(&self.settings);
        let name = &self.settings.stream;
        match js.create_stream(want.clone()).await {
            Ok(_) => {
                log::info!("nats: stream {name} ready subjects={:?}", want.subjects);
                Ok(())
            }
            Err(e) => {
                let exists = matches!(e.kind(), async_nats::jetstream::context::CreateStreamErrorKind::JetStream(ref j) if j.error_code() == jetstream::ErrorCode::STREAM_NAME_EXIST);
                if !exists {
                    return Err(format!("cannot create stream {name}: {e}"));
                }
                let mut stream = js
                    .get_stream(name)
                    .await
                    .map_err(|e| format!("cannot read stream {name}: {e}"))?;
                let info = stream
                    .info()
                    .await
                    .map_err(|e| format!("cannot read stream {name}: {e}"))?;
                let differences = stream_config::differences(&info.config, &want);
                match differences.is_empty() {
                    true => Ok(()),
                    false => Err(format!(
                        "stream {name} exists with another configuration: {}; change the stream \
                         (nats stream edit {name}) or the [nats] settings to match; not publishing",
                        differences.join(", ")
                    )),
                }
            }
        }
    }
}
