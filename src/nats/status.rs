//! What the sink reports: its state (written by the sender task) and the counts (read from its
//! metrics), for `/api/v1/status` (`nats`) and `/readyz` (when `nats.required`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;
use serde::Serialize;
use utoipa::ToSchema;

use crate::clock::unix_seconds;
use crate::telemetry::metrics::{SinkMetrics, SINK_DROP_REASONS};

/// Where the sink is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SinkState {
    /// No connection yet, or connecting again after losing it (messages are buffered).
    Connecting,
    /// Connected; the stream is being created or checked.
    CheckingStream,
    /// Connected, but the stream cannot be used (an incompatible existing stream, no
    /// JetStream, no permission): `last_error` says why; checked again periodically.
    StreamError,
    /// Publishing.
    Connected,
    /// The service is stopping.
    Stopped,
}

/// `/api/v1/status`'s `nats` object.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SinkStatus {
    pub state: SinkState,
    /// Unix time (seconds) of the last state change.
    pub since: f64,
    /// The server URLs, without credentials.
    pub url: String,
    pub stream: String,
    pub subject_prefix: String,
    /// Whether `/readyz` fails while the sink is not `connected`.
    pub required: bool,
    /// Messages waiting to be sent, and the most the buffer holds.
    pub buffered: i64,
    pub buffer_capacity: usize,
    /// Messages sent and awaiting their acknowledgement.
    pub in_flight: i64,
    pub published: u64,
    pub acked: u64,
    /// Acknowledged as duplicates of a stored `Nats-Msg-Id`.
    pub duplicates: u64,
    /// Messages given up, by reason (`buffer_full`, `rejected`, `shutdown`).
    pub dropped: BTreeMap<String, u64>,
    /// The last connection, stream or publish error, for humans.
    #[schema(required = true)]
    pub last_error: Option<String>,
}

/// Shared between the sender task (writer) and the HTTP handlers (readers).
#[derive(Clone)]
pub struct SinkBoard {
    inner: Arc<Mutex<(SinkState, f64, Option<String>)>>,
    metrics: SinkMetrics,
    fixed: Arc<Fixed>,
}

/// What never changes after start.
struct Fixed {
    url: String,
    stream: String,
    subject_prefix: String,
    required: bool,
    buffer_capacity: usize,
}

impl SinkBoard {
    pub fn new(settings: &crate::settings::NatsSettings, metrics: SinkMetrics) -> Self {
        Self {
            inner: Arc::new(Mutex::new((
                SinkState::Connecting,
                unix_seconds(SystemTime::now()),
                None,
            ))),
            metrics,
            fixed: Arc::new(Fixed {
                url: settings.redacted_url(),
                stream: settings.stream.clone(),
                subject_prefix: settings.subject_prefix.clone(),
                required: settings.required,
                buffer_capacity: settings.buffer,
            }),
        }
    }

    pub fn state(&self) -> SinkState {
        self.inner.lock().0
    }

    /// Moves to `state` (stamping `since` when it changes); `connected` follows it.
    pub fn set(&self, state: SinkState) {
        let mut inner = self.inner.lock();
        if inner.0 != state {
            *inner = (state, unix_seconds(SystemTime::now()), inner.2.take());
        }
        self.metrics
            .connected
            .set(i64::from(state == SinkState::Connected));
    }

    /// Records an error for `last_error` (never a secret: the callers pass error texts of the
    /// client, which hold no credentials).
    pub fn error(&self, text: impl Into<String>) {
        self.inner.lock().2 = Some(text.into());
    }

    pub fn snapshot(&self) -> SinkStatus {
        let (state, since, last_error) = self.inner.lock().clone();
        let m = &self.metrics;
        SinkStatus {
            state,
            since,
            url: self.fixed.url.clone(),
            stream: self.fixed.stream.clone(),
            subject_prefix: self.fixed.subject_prefix.clone(),
            required: self.fixed.required,
            buffered: m.buffered.get(),
            buffer_capacity: self.fixed.buffer_capacity,
            in_flight: m.in_flight.get(),
            published: m.published.get(),
            acked: m.acked.get(),
            duplicates: m.duplicates.get(),
            dropped: SINK_DROP_REASONS
                .iter()
                .map(|r| ((*r).to_owned(), m.dropped.with_label_values(&[r]).get()))
                .collect(),
            last_error,
        }
    }

    /// Why the service is not ready because of the sink: only when `nats.required` and the
    /// sink is not publishing.
    pub fn not_ready_reason(&self) -> Option<String> {
        if !self.fixed.required {
            return None;
        }
        let (state, _, last_error) = self.inner.lock().clone();
        (state != SinkState::Connected).then(|| {
            let state = serde_json::to_value(state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let detail = last_error
                .map(|e| format!(" (last error: {e})"))
                .unwrap_or_default();
            format!("nats sink (required) not connected: {state}{detail}")
        })
    }
}
