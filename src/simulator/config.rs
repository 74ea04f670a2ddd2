//! How a simulator is set up ([`SimulatorConfig`]) and what can be changed while it runs: the
//! [`Fault`]s to inject and [`MarketEventChange`]s (the admin routes take the same JSON).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How the simulator behaves.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// Where to listen; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Market codes; `None` for the bundled 2021 list.
    pub markets: Option<Vec<String>>,
    /// Seed of the market model: the same seed gives the same prices.
    pub seed: u64,
    /// Realtime messages per second per subscribed (type, code); 0 sends snapshots only.
    pub rate: f64,
    /// After the snapshots, write pre-encoded frames as fast as the socket takes them.
    pub firehose: bool,
    /// Stop the firehose after this many frames per connection.
    pub firehose_frames: Option<u64>,
    /// Pace the firehose at this many frames per second per connection (`None`: flat out).
    pub firehose_rate: Option<f64>,
    /// Close connections that sent nothing for this long (Upbit: about 120 s).
    pub idle_timeout: Duration,
    /// Upgrade attempts allowed per second before HTTP 429; 0 disables the gate.
    pub connect_limit_per_sec: u32,
    /// 429s within a minute after which attempts get 418 (a ban).
    pub ban_after_rejections: u32,
    /// First ban length; doubles with each repeat.
    pub ban_duration: Duration,
    /// Requests per second on one connection before `TOO_MANY_REQUESTS`.
    pub request_limit_per_sec: u32,
    /// Requests per minute on one connection before `TOO_MANY_REQUESTS`.
    pub request_limit_per_min: u32,
    /// Drop every connection abruptly on this period (fault drills, soak).
    pub drop_every: Option<Duration>,
    /// Tickers carry the fields Upbit marks deprecated (`is_trading_suspended`,
    /// `market_warning`); false plays the day Upbit removes them.
    pub legacy_ticker_fields: bool,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9944)),
            markets: None,
            seed: 1,
            rate: 1.0,
            firehose: false,
            firehose_frames: None,
            firehose_rate: None,
            idle_timeout: Duration::from_secs(120),
            connect_limit_per_sec: 5,
            ban_after_rejections: 10,
            ban_duration: Duration::from_secs(60),
            request_limit_per_sec: 5,
            request_limit_per_min: 100,
            drop_every: None,
            legacy_ticker_fields: true,
        }
    }
}

/// A fault to inject (`POST /admin/faults` takes the same JSON, e.g. `{"kind":"drop"}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Every open connection closed abruptly, without a close frame (queued frames flushed).
    Drop,
    /// A close frame with this code on every open connection.
    Close {
        code: u16,
        reason: Option<String>,
    },
    /// Send nothing and answer no ping or `PING` (TCP stays open), for a while or until unmuted.
    Mute {
        duration_ms: Option<u64>,
    },
    Unmute,
    /// One invalid-JSON binary frame to every connection.
    Malformed,
    /// One binary frame of `bytes` bytes: a ticker padded with junk and missing its required
    /// fields, so it can only ever be skipped.
    Oversized {
        bytes: usize,
    },
    /// One `{"type":"mystery",...}` frame.
    UnknownType,
    /// One binary frame holding `text` as given (a message of a shape Upbit might send one day).
    Raw {
        text: String,
    },
    /// One `{"error":{"name":..}}` frame.
    ErrorFrame {
        name: String,
    },
    /// Answer upgrades with 429 or 418 for a while. `Retry-After` is `retry_after_secs`, or the
    /// time left when it is absent; `0` sends no `Retry-After` at all.
    RefuseHandshakes {
        status: u16,
        duration_ms: u64,
        retry_after_secs: Option<u64>,
    },
    /// Answer `GET /v1/market/all` with this HTTP status instead of the list (0 clears).
    MarketListDown {
        status: u16,
    },
    /// Delay every data frame (0 clears).
    Delay {
        per_frame_ms: u64,
    },
    /// Clear mute, refusals, delay and the connection gate (its window and any ban).
    Reset,
}

impl Fault {
    /// The `kind` tag, as counted in [`Stats::faults`](super::Stats::faults).
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Self::Drop => "drop",
            Self::Close { .. } => "close",
            Self::Mute { .. } => "mute",
            Self::Unmute => "unmute",
            Self::Malformed => "malformed",
            Self::Oversized { .. } => "oversized",
            Self::UnknownType => "unknown_type",
            Self::Raw { .. } => "raw",
            Self::ErrorFrame { .. } => "error_frame",
            Self::RefuseHandshakes { .. } => "refuse_handshakes",
            Self::MarketListDown { .. } => "market_list_down",
            Self::Delay { .. } => "delay",
            Self::Reset => "reset",
        }
    }
}

/// A change of one market's `market_event` (`POST /admin/market_events` takes the same JSON,
/// e.g. `{"code":"KRW-ETH","warning":true,"caution":{"PRICE_FLUCTUATIONS":true}}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MarketEventChange {
    pub code: String,
    /// `market_event.warning`; unchanged when absent.
    #[serde(default)]
    pub warning: Option<bool>,
    /// Caution flags to set, by name; flags not named keep their value.
    #[serde(default)]
    pub caution: BTreeMap<String, bool>,
}
