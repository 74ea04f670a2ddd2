//! Operational events: each one writes its log line and bumps its metric in one place, so the
//! two never drift apart. Log fields are `key=value`; nothing here logs a secret or a whole
//! payload.

use std::time::Duration;

use log::{debug, error, info, warn};

use super::metrics::Metrics;
use crate::text::{preview, truncate};
use crate::upbit::DecodeError;

/// Why a connection ended (`upbit_disconnections_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// Upbit sent a close frame.
    ClosedByServer,
    /// No frame within `idle_timeout`.
    IdleTimeout,
    /// A protocol or I/O error, or the stream ended without a close frame.
    Error,
    /// An operator asked for it (`POST /api/v1/reconnect`).
    Control,
    /// The service is stopping.
    Shutdown,
}

impl DisconnectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClosedByServer => "closed_by_server",
            Self::IdleTimeout => "idle_timeout",
            Self::Error => "error",
            Self::Control => "control",
            Self::Shutdown => "shutdown",
        }
    }
}

/// Why a connection attempt failed (`upbit_connect_failures_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectFailure {
    /// The host name could not be resolved (no network, or a wrong `upbit.url`).
    Dns,
    Refused,
    Timeout,
    Tls,
    Http429,
    Http418,
    Other,
}

impl ConnectFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dns => "dns",
            Self::Refused => "refused",
            Self::Timeout => "timeout",
            Self::Tls => "tls",
            Self::Http429 => "http_429",
            Self::Http418 => "http_418",
            Self::Other => "other",
        }
    }
}

/// A connection attempt starts.
pub struct ConnectAttempted<'a> {
    pub url: &'a str,
    pub attempt: u64,
}

impl ConnectAttempted<'_> {
    pub fn emit(&self, m: &Metrics) {
        debug!("connecting url={} attempt={}", self.url, self.attempt);
        m.connection_attempts.inc();
    }
}

/// The WebSocket handshake completed.
pub struct Connected<'a> {
    pub url: &'a str,
    pub attempt: u64,
}

impl Connected<'_> {
    pub fn emit(&self, m: &Metrics) {
        info!("connected url={} attempt={}", self.url, self.attempt);
        m.connections.inc();
        m.reconnect_backoff.set(0.0);
    }
}

/// The subscription request went out.
pub struct Subscribed<'a> {
    /// Index of the connection (0 unless the subscription is spread over several).
    pub connection: usize,
    pub ticket: &'a str,
    pub pairs: usize,
    pub codes: usize,
    pub types: &'a str,
    pub format: &'a str,
}

impl Subscribed<'_> {
    pub fn emit(&self, m: &Metrics) {
        info!(
            "subscribed connection={} ticket={} types={} codes={} pairs={} format={}",
            self.connection, self.ticket, self.types, self.codes, self.pairs, self.format
        );
        m.subscription_requests.inc();
        m.link_up(self.connection, true);
    }
}

/// Set once the "cannot resolve" hint has been logged: one line per process is enough.
static DNS_HINT_GIVEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The line logged at the first DNS failure of the process, if this failure is one and the hint
/// was not given yet.
pub fn dns_hint(reason: ConnectFailure) -> Option<&'static str> {
    use std::sync::atomic::Ordering;
    (reason == ConnectFailure::Dns && !DNS_HINT_GIVEN.swap(true, Ordering::Relaxed)).then_some(
        "the Upbit host cannot be resolved: no network here? `upbit-exporter demo` runs the \
         service against its built-in Upbit simulator instead",
    )
}

/// A connection attempt failed before the handshake completed.
pub struct ConnectFailed<'a> {
    pub connection: usize,
    pub reason: ConnectFailure,
    pub error: &'a str,
    pub retry_in: Duration,
}

impl ConnectFailed<'_> {
    pub fn emit(&self, m: &Metrics) {
        let delay_ms = self.retry_in.as_millis();
        match self.reason {
            ConnectFailure::Http418 => error!(
                "connect failed: banned by Upbit (HTTP 418) reason={} delay_ms={delay_ms}: too many connection attempts from this IP",
                self.reason.as_str()
            ),
            _ => warn!("connect failed reason={} delay_ms={delay_ms}: {}", self.reason.as_str(), self.error),
        }
        if let Some(hint) = dns_hint(self.reason) {
            warn!("{hint}");
        }
        m.connect_failures
            .with_label_values(&[self.reason.as_str()])
            .inc();
        m.link_up(self.connection, false);
        m.reconnect_backoff.set(self.retry_in.as_secs_f64());
    }
}

/// An established connection ended.
pub struct Disconnected<'a> {
    pub connection: usize,
    pub reason: DisconnectReason,
    pub detail: &'a str,
    pub retry_in: Option<Duration>,
}

impl Disconnected<'_> {
    pub fn emit(&self, m: &Metrics) {
        let delay = self
            .retry_in
            .map(|d| format!(" delay_ms={}", d.as_millis()))
            .unwrap_or_default();
        match self.reason {
            DisconnectReason::Shutdown | DisconnectReason::Control => {
                info!(
                    "disconnected reason={}{delay}: {}",
                    self.reason.as_str(),
                    self.detail
                )
            }
            _ => warn!(
                "disconnected reason={}{delay}: {}",
                self.reason.as_str(),
                self.detail
            ),
        }
        m.disconnections
            .with_label_values(&[self.reason.as_str()])
            .inc();
        m.link_up(self.connection, false);
        if let Some(d) = self.retry_in {
            m.reconnect_backoff.set(d.as_secs_f64());
        }
    }
}

/// A frame or list element could not be decoded; it is skipped and the stream goes on.
pub struct DecodeFailed<'a> {
    pub error: &'a DecodeError,
    pub payload: &'a [u8],
    /// Whether to write the log line (callers throttle floods of bad frames).
    pub log: bool,
}

impl DecodeFailed<'_> {
    pub fn emit(&self, m: &Metrics) {
        if self.log {
            warn!(
                "skipped undecodable frame reason={} bytes={}: {} payload={:?}",
                self.error.code(),
                self.payload.len(),
                truncate(&self.error.to_string(), 200),
                preview(self.payload, 120)
            );
        }
        m.decode_errors
            .with_label_values(&[self.error.code()])
            .inc();
    }
}

/// An optional field of a message held a value of a shape the wire type cannot read: dropped,
/// the message kept. The label is the field's name as sent: only the wire types' own field names
/// can fail this way (unknown keys are ignored), and anything else is reported as `other`.
pub struct FieldSkipped<'a> {
    pub field: &'a str,
    /// Whether to write the log line (callers throttle).
    pub log: bool,
}

impl FieldSkipped<'_> {
    pub fn emit(&self, m: &Metrics) {
        let plain = !self.field.is_empty()
            && self.field.len() <= 40
            && self
                .field
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        let label = if plain { self.field } else { "other" };
        if self.log {
            warn!("dropped an unreadable optional field field={label} (the message was kept)");
        }
        m.decode_field_errors.with_label_values(&[label]).inc();
    }
}

/// Upbit sent an error frame: almost always a configuration problem, so loud, but never a
/// reason to reconnect in a loop.
pub struct ServerErrorReceived<'a> {
    pub name: &'a str,
    pub message: Option<&'a str>,
}

impl ServerErrorReceived<'_> {
    pub fn emit(&self, m: &Metrics) {
        error!(
            "Upbit rejected a request name={} message={:?}: check upbit.codes, upbit.types and upbit.format",
            truncate(self.name, 40),
            truncate(self.message.unwrap_or(""), 200)
        );
        m.server_errors
            .with_label_values(&[Metrics::server_error_label(self.name)])
            .inc();
    }
}

/// The pipeline dropped data rather than block the socket reader.
pub struct MessagesDropped {
    pub stage: &'static str,
    pub reason: &'static str,
    pub count: u64,
    pub log: bool,
}

impl MessagesDropped {
    pub fn emit(&self, m: &Metrics) {
        if self.log {
            warn!(
                "dropped messages stage={} reason={} count={}",
                self.stage, self.reason, self.count
            );
        }
        m.dropped_messages
            .with_label_values(&[self.stage, self.reason])
            .inc_by(self.count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_dns_failure_suggests_the_demo_once() {
        assert_eq!(dns_hint(ConnectFailure::Refused), None);
        let first = dns_hint(ConnectFailure::Dns).expect("the first DNS failure gets the hint");
        assert!(first.contains("upbit-exporter demo"), "{first}");
        assert_eq!(dns_hint(ConnectFailure::Dns), None, "one line per process");
        assert_eq!(ConnectFailure::Dns.as_str(), "dns");
    }
}
