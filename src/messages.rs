//! Every message that crosses between actors, grouped by the actor that receives it.
//!
//! Commands are imperative (`UpdateSubscription`), events past tense (`FrameReceived`), queries
//! `Get…`. Raw frames travel as `Bytes` with the receive time taken at the socket, in batches:
//! everything one read of the socket produced crosses to the next stage in one envelope, so a
//! busy feed pays the hand-over once per batch and a quiet one sends batches of one.

use std::time::{Instant, SystemTime};

use actix::Message;
use bytes::Bytes;

use crate::upbit::{self, Subscription};

// --- DecoderActor ---------------------------------------------------------------------------

/// Data frames (binary or text) read from the socket together.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct FramesReceived {
    /// Index of the connection that read them.
    pub connection: usize,
    /// The frames' payloads, untouched, in arrival order.
    pub payloads: Vec<Bytes>,
    /// Wall-clock time the frames were read, for delay and staleness metrics.
    pub received_at: SystemTime,
    /// Monotonic time the frames were read, for the pipeline latency.
    pub read_at: Instant,
}

/// The upstream link came up or went down. It travels the path of the frames (connection →
/// decoder → metrics → stream fan-out) so live-stream consumers see it in order with the data
/// around it: a reconnect is announced before any frame read after the gap.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct LinkChanged {
    /// Index of the connection (0 unless the subscription is spread over several).
    pub connection: usize,
    /// Up, or down and why.
    pub change: LinkChange,
    /// When it happened (wall clock).
    pub at: SystemTime,
}

/// What happened to the link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkChange {
    /// The WebSocket handshake completed; the subscription follows at once.
    Connected,
    /// The link ended.
    Disconnected {
        /// The `upbit_disconnections_total` reason code (`error`, `closed_by_server`, …).
        reason: &'static str,
        /// What happened, for humans.
        detail: String,
    },
}

// --- MetricsActor ---------------------------------------------------------------------------

/// The market messages decoded from one batch of frames (a list-format frame holds several).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct FramesDecoded {
    /// Market messages only, in arrival order; status, error and subscription-list frames are
    /// handled upstream.
    pub messages: Vec<MarketMessage>,
    /// When the frames were read from the socket.
    pub received_at: SystemTime,
    /// Monotonic time the frames were read, for the pipeline latency.
    pub read_at: Instant,
}

/// One market message on its way to the metrics: what they need, and its JSON for the rest.
#[derive(Debug)]
pub struct MarketMessage {
    /// What the metrics read, decoded without allocating.
    pub brief: upbit::brief::Brief,
    /// The message's JSON object (the frame, or its element of a list frame), untouched: the
    /// latest data keeps a copy and the live stream encodes it, each decoding it in full only
    /// when someone reads it.
    pub json: Bytes,
    /// The payload size of the frame, on the first market message of each frame (`None` on the
    /// others of a list frame): the size histogram and the pipeline latency count frames.
    pub frame_bytes: Option<usize>,
    /// The whole message, when the decoder decoded it in full (a sink such as NATS takes every
    /// message, or it was not plain), so the stream need not decode it again.
    pub full: Option<Box<upbit::Message>>,
}

/// The desired subscription changed: create series for new pairs, remove those of old ones.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct SubscriptionChanged {
    /// The complete new subscription.
    pub subscription: Subscription,
}

/// Upbit's market list was fetched (with details): names and market events by code, for the
/// subscribed codes' warning, caution and info series. Not sent when a fetch fails (the last
/// list stays in force).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct MarketListFetched {
    /// Every listed market by code.
    pub markets:
        std::sync::Arc<std::collections::HashMap<String, upbit::market_list::MarketListing>>,
}

// --- ConnectionActor ------------------------------------------------------------------------

/// Drop the current connection (reason `control`); the supervisor reconnects at once.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Reconnect;

/// Close the connection with status 1000 and stop reconnecting.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Shutdown;

/// Apply a validated change to the desired subscription (PUT/PATCH); answers the result.
#[derive(Message, Debug)]
#[rtype(result = "Result<SubscriptionView, crate::subscription::ChangeError>")]
pub struct ChangeSubscription {
    /// What to change.
    pub change: crate::subscription::SubscriptionChange,
    /// Refuse with a conflict unless the current revision is this one.
    pub expected_revision: Option<u64>,
}

/// Set the orderbook options every connection sends (`PUT /api/v1/orderbook`); answers the
/// view, bumps the revision like a subscription change.
#[derive(Message, Debug)]
#[rtype(result = "Result<SubscriptionView, crate::subscription::ChangeError>")]
pub struct ChangeOrderbook {
    /// The validated options.
    pub orderbook: crate::upbit::request::OrderbookOptions,
    /// Refuse with a conflict unless the current revision is this one.
    pub expected_revision: Option<u64>,
}

/// Read the desired subscription.
#[derive(Message, Debug)]
#[rtype(result = "SubscriptionView")]
pub struct GetSubscription;

/// The desired subscription and its revision (bumped by every accepted change).
#[derive(Debug, Clone)]
pub struct SubscriptionView {
    /// The subscription as set: codes and patterns.
    pub subscription: Subscription,
    /// Starts at 0; +1 per accepted change.
    pub revision: u64,
    /// What Upbit is asked for: patterns resolved against the market list.
    pub resolved: Subscription,
    /// Codes carried by each connection, by index.
    pub connection_codes: Vec<usize>,
    /// The orderbook options every connection sends.
    pub orderbook: crate::upbit::request::OrderbookOptions,
    /// The part of the subscription this replica takes (`[shard]`).
    pub shard: ShardView,
}

/// This replica's shard and its share of the resolved subscription.
#[derive(Debug, Clone, Copy, Default)]
pub struct ShardView {
    /// Shard index and count (0 of 1: unsharded).
    pub shard: crate::subscription::Shard,
    /// Codes of the resolved subscription this shard takes (before `control.max_codes`).
    pub codes: usize,
    /// Codes of the resolved subscription left to the other shards.
    pub codes_elsewhere: usize,
}

/// This connection's share of the resolved subscription (from the SubscriptionManager): sent
/// on the live link as one replace-all message, within Upbit's request limits.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct SetSubscription {
    pub subscription: Subscription,
    /// The orderbook options (depth suffix, level) the request carries.
    pub orderbook: crate::upbit::request::OrderbookOptions,
}

// --- MetricsActor queries (data API) ----------------------------------------------------------

/// The latest ticker of every subscribed code (the other kinds are left out: the list shows
/// tickers only, and each latest message is decoded when asked for).
#[derive(Message, Debug)]
#[rtype(result = "Vec<(String, crate::view::LatestMarket)>")]
pub struct GetMarkets;

/// The latest data of one code; `None` when it is not subscribed.
#[derive(Message, Debug)]
#[rtype(result = "Option<MarketView>")]
pub struct GetMarket {
    /// A validated market code.
    pub code: String,
}

/// One code's latest data and its entry in the last market list.
#[derive(Debug, Clone)]
pub struct MarketView {
    /// The latest message of each kind.
    pub latest: crate::view::LatestMarket,
    /// The code's entry in the last market list (names, market event), if it is listed there.
    pub listing: Option<upbit::market_list::MarketListing>,
}

/// Unix time of the last message received, per data type.
#[derive(Message, Debug)]
#[rtype(result = "std::collections::BTreeMap<String, f64>")]
pub struct GetLastMessageTimes;
