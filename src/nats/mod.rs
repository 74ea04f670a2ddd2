//! The NATS JetStream sink: every message of the live stream (the JSON of `/api/v1/stream`,
//! link events included) published to JetStream, one subject per type and code, each market
//! message with a `Nats-Msg-Id` that an HA pair computes alike (`crate::stream::msg_id`).
//!
//! ```text
//!  MetricsActor ─ Publisher ─▶ Hub (live stream)
//!   (pipeline thread)   └────▶ Buffer ─wake─▶ sender task ──publish + ack──▶ JetStream
//!                        push, never waits     (own thread; reconnects, retries, counts)
//! ```
//!
//! The pipeline side is the [`buffer::Buffer`] (an [`EventSink`]): a short lock per batch, the
//! oldest dropped and counted when full. The sender is one task on its own arbiter thread, so
//! NATS I/O never shares the feed's thread; it is a loop rather than an actor because all it
//! does is wait on the buffer, the acknowledgements and the connection, which one `select!`
//! says plainly.
//!
//! - [`subject`]: the subject scheme; [`stream_config`]: the stream asked for, and how an
//!   existing one differs; [`connect`]: credentials, TLS, backoff;
//! - [`sender`]: the task; [`status`]: what `/api/v1/status` and `/readyz` read.

pub mod buffer;
pub mod connect;
pub mod sender;
pub mod status;
pub mod stream_config;
pub mod subject;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix::Arbiter;
use tokio::sync::Notify;

use crate::settings::NatsSettings;
use crate::stream::EventSink;
use crate::telemetry::metrics::SinkMetrics;
pub use status::{SinkBoard, SinkState, SinkStatus};

/// A running sink: what the pipeline publishes to, what the HTTP handlers read.
#[derive(Clone)]
pub struct NatsSink {
    buffer: Arc<buffer::Buffer>,
    board: SinkBoard,
    stop: Arc<Notify>,
    stopping: Arc<std::sync::atomic::AtomicBool>,
    /// Woken when the sender task has ended.
    done: Arc<Notify>,
    arbiter: Arc<parking_lot::Mutex<Option<Arbiter>>>,
}

impl NatsSink {
    /// Starts the sender on its own thread; returns at once (connecting happens there).
    pub fn start(settings: &NatsSettings, metrics: SinkMetrics) -> Self {
        let buffer = buffer::Buffer::new(settings.buffer, metrics.clone());
        let board = SinkBoard::new(settings, metrics.clone());
        let sender = sender::Sender::new(settings.clone(), buffer.clone(), board.clone(), metrics);
        let (stop, stopping) = (sender.stop.clone(), sender.stopping.clone());
        let done = Arc::new(Notify::new());
        let arbiter = Arbiter::new();
        let finished = done.clone();
        arbiter.spawn(async move {
            sender.run().await;
            finished.notify_one();
        });
        log::info!(
            "nats: sink starting url={} stream={} subjects={}.> buffer={}",
            settings.redacted_url(),
            settings.stream,
            settings.subject_prefix,
            settings.buffer
        );
        Self {
            buffer,
            board,
            stop,
            stopping,
            done,
            arbiter: Arc::new(parking_lot::Mutex::new(Some(arbiter))),
        }
    }

    /// What the pipeline's publisher hands every batch to.
    pub fn event_sink(&self) -> Arc<dyn EventSink> {
        self.buffer.clone()
    }

    pub fn board(&self) -> &SinkBoard {
        &self.board
    }

    /// Sends what is buffered for up to [`sender::SHUTDOWN_FLUSH`], counts the rest as dropped
    /// (`shutdown`), and stops the sender's thread.
    pub async fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.stop.notify_one();
        let wait = sender::SHUTDOWN_FLUSH + Duration::from_secs(1);
        let _ = tokio::time::timeout(wait, self.done.notified()).await;
        if let Some(arbiter) = self.arbiter.lock().take() {
            arbiter.stop();
        }
    }
}
