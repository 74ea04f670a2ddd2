//! The live stream: decoded market messages and link events fanned out to WebSocket and
//! Server-Sent Events consumers (`GET /api/v1/stream`, `GET /api/v1/events`).
//!
//! ```text
//!  MetricsActor ──publish(batch)──▶ Hub ──▶ Consumer queue ──wake──▶ transport task ──▶ socket
//!  (pipeline thread; never waits)   │       (one per consumer,        (HTTP worker: WS task or
//!                                   │        bounded, conflating)      SSE body stream)
//!                                   └─ register / leave / shutdown from the HTTP handlers
//! ```
//!
//! - [`event`]: a message or link event encoded once, as the JSON every consumer receives.
//! - [`filter`]: the `types` and `codes` a consumer asked for.
//! - [`queue`]: one consumer's queue: tickers, orderbooks and candles conflate to the latest per
//!   (type, code); trades and link events queue up to `stream.trade_queue`, beyond which the
//!   consumer is too slow and is disconnected.
//! - [`hub`]: the registry of consumers (joining with its caps, leaving, shutdown) and the
//!   fan-out of each batch to their queues.
//! - [`consumer`]: one consumer's queue and end, what its transport reads, and the handle whose
//!   drop leaves the hub.
//! - [`publisher`]: what the pipeline holds: encodes only what some consumer wants, publishes
//!   batches and link events (nothing when the stream is disabled).
//! - [`sink`]: a destination beside the hub (the NATS JetStream sink, `crate::nats`) that takes
//!   every message; [`msg_id`]: the deduplication id each market message carries to it.
//! - [`crate::peer_socket`]: closes a connection whose peer stopped reading, which actix cannot
//!   do itself.
//!
//! The pipeline side only takes short locks and wakes tasks; it never waits for a consumer.
//! The transports (`src/http/live.rs`) run on the HTTP workers.

pub mod consumer;
pub mod event;
pub mod filter;
pub mod hub;
pub mod msg_id;
pub mod publisher;
pub mod queue;
pub mod sink;

pub use consumer::{Consumer, ConsumerHandle, Ending, Next};
pub use event::{Encoded, Event, EventKind};
pub use filter::Filter;
pub use hub::{Hub, JoinError};
pub use publisher::Publisher;
pub use sink::EventSink;

/// How a consumer is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `GET /api/v1/stream`, one text frame per message.
    WebSocket,
    /// `GET /api/v1/events`, one event per message.
    Sse,
}

impl Transport {
    /// The `transport` label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::WebSocket => "ws",
            Self::Sse => "sse",
        }
    }
}

/// Why a consumer's stream ended (`upbit_stream_disconnects_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveReason {
    /// The client closed the connection or went away.
    Client,
    /// Its queue held more than `stream.trade_queue` trades: it reads too slowly.
    Slow,
    /// A WebSocket client stopped answering pings.
    Timeout,
    /// The service is stopping.
    Shutdown,
    /// A WebSocket client sent (or announced) a frame over the limit: closed with 1009.
    TooLarge,
}

impl LeaveReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Slow => "slow",
            Self::Timeout => "timeout",
            Self::Shutdown => "shutdown",
            Self::TooLarge => "too_large",
        }
    }
}
