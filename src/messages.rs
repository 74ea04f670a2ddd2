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

/// Replace the desired subscription; sent to Upbit on the live connection (rate limited and
/// coalesced) and used for every later reconnect.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct UpdateSubscription {
    /// The complete new subscription.
    pub subscription: Subscription,
}

/// Drop the current connection (reason `control`); the supervisor reconnects at once.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Reconnect;

/// Close the connection with status 1000 and stop reconnecting.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Shutdown;
