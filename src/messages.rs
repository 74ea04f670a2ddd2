//! Every message that crosses between actors, grouped by the actor that receives it.
//!
//! Commands are imperative (`UpdateSubscription`), events past tense (`FrameReceived`), queries
//! `Get…`. Raw frames travel as `Bytes` with the receive time taken at the socket.

use std::time::SystemTime;

use actix::Message;
use bytes::Bytes;

use crate::upbit::{self, Subscription};

// --- DecoderActor ---------------------------------------------------------------------------

/// A data frame (binary or text) as read from the socket.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct FrameReceived {
    /// The frame's payload, untouched.
    pub payload: Bytes,
    /// Wall-clock time the frame was read, for delay and staleness metrics.
    pub received_at: SystemTime,
}

// --- MetricsActor ---------------------------------------------------------------------------

/// The market messages decoded from one frame (several for the list formats).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct FrameDecoded {
    /// Market messages only; status, error and subscription-list frames are handled upstream.
    pub messages: Vec<upbit::Message>,
    /// When the frame was read from the socket.
    pub received_at: SystemTime,
    /// Payload size of the whole frame, in bytes.
    pub frame_bytes: usize,
}

/// The desired subscription changed: create series for new pairs, remove those of old ones.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct SubscriptionChanged {
    /// The complete new subscription.
    pub subscription: Subscription,
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
#[rtype(result = "Result<SubscriptionView, crate::control::ChangeError>")]
pub struct ChangeSubscription {
    /// What to change.
    pub change: crate::control::SubscriptionChange,
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
    /// The subscription.
    pub subscription: Subscription,
    /// Starts at 0; +1 per accepted change.
    pub revision: u64,
}

// --- MetricsActor queries (data API) ----------------------------------------------------------

/// The latest data of every subscribed code.
#[derive(Message, Debug)]
#[rtype(result = "Vec<(String, crate::actors::metrics::LatestMarket)>")]
pub struct GetMarkets;

/// The latest data of one code; `None` when it is not subscribed.
#[derive(Message, Debug)]
#[rtype(result = "Option<crate::actors::metrics::LatestMarket>")]
pub struct GetMarket {
    /// A validated market code.
    pub code: String,
}

/// Unix time of the last message received, per data type.
#[derive(Message, Debug)]
#[rtype(result = "std::collections::BTreeMap<String, f64>")]
pub struct GetLastMessageTimes;
