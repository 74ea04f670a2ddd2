//! What the simulator saw and sent, kept for assertions: [`Stats`] (`GET /admin/stats`) with
//! the recent [`Handshake`]s and [`RecordedRequest`]s.

use std::collections::BTreeMap;

use serde::Serialize;

/// A WebSocket upgrade the simulator accepted.
#[derive(Debug, Clone, Serialize)]
pub struct Handshake {
    pub connection: u64,
    pub path: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
}

/// A text frame a client sent.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedRequest {
    pub connection: u64,
    /// Milliseconds since the simulator started.
    pub at_ms: u64,
    pub text: String,
}

/// What happened, for assertions (`GET /admin/stats`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub connections_accepted: u64,
    pub active_connections: u64,
    /// The last 100.
    pub handshakes: Vec<Handshake>,
    /// The last 1000.
    pub requests: Vec<RecordedRequest>,
    pub pings_received: u64,
    pub text_pings_received: u64,
    pub pongs_sent: u64,
    /// type → code → market messages sent (not frames).
    pub sent: BTreeMap<String, BTreeMap<String, u64>>,
    pub frames_sent: u64,
    pub bytes_sent: u64,
    /// Data frames and LIST_SUBSCRIPTIONS answers sent, by the format they were written in.
    pub frames_by_format: BTreeMap<String, u64>,
    pub error_frames_sent: BTreeMap<String, u64>,
    /// Close codes clients sent.
    pub close_codes_received: Vec<u16>,
    pub faults: BTreeMap<String, u64>,
    pub rejected_429: u64,
    pub rejected_418: u64,
    pub closed_idle: u64,
    /// `GET /v1/market/all` requests answered (with the list or an error).
    pub market_list_requests: u64,
}
