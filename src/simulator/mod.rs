//! An offline Upbit: the quotation WebSocket and the market list, with Upbit's limits, a market
//! model, a firehose for benchmarks, and fault injection. Tests start it in-process on port 0;
//! `upbit-exporter simulate` serves it from the command line.
//!
//! - [`request`]: server-side parsing of requests, with Upbit's error frames;
//! - [`market`]: the seeded market model; [`encode`]: messages in DEFAULT and SIMPLE keys;
//! - [`session`]: one WebSocket connection; [`server`]: routes, the connection gate, admin;
//! - [`cli`]: the `simulate` subcommand.

pub mod cli;
pub mod encode;
pub mod market;
pub mod request;
mod server;
mod session;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use parking_lot::{Mutex, MutexGuard};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use market::Markets;

/// The 2021 market list (294 markets) captured from `GET /v1/market/all`.
pub const BUNDLED_MARKETS: &str = include_str!("markets.json");

/// The markets of one of Upbit's regional exchanges, as a simulator market list: `sg`
/// (SGD), `id` (IDR), `th` (THB); `None` for `kr` (the bundled Korean list) or an unknown
/// region. A small sample of each quote currency, not the full list.
pub fn region_markets(region: &str) -> Option<Vec<String>> {
    let quote = match region {
        "sg" => "SGD",
        "id" => "IDR",
        "th" => "THB",
        _ => return None,
    };
    Some(
        ["BTC", "ETH", "XRP", "SOL", "ADA", "DOGE"]
            .iter()
            .map(|base| format!("{quote}-{base}"))
            .collect(),
    )
}

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
    fn kind(&self) -> &'static str {
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

/// A one-shot instruction to every open session.
#[derive(Debug, Clone)]
enum Command {
    Drop,
    Close { code: u16, reason: Option<String> },
    Send(Bytes),
}

/// Faults in force and the connection gate.
#[derive(Debug, Default)]
struct Control {
    mute_until: Option<Instant>,
    refuse: Option<(u16, Instant, Option<u64>)>,
    delay: Duration,
    attempts: VecDeque<Instant>,
    rejections: VecDeque<Instant>,
    ban_until: Option<Instant>,
    bans: u32,
    /// `GET /v1/market/all` answers this status while set.
    market_list_down: Option<u16>,
}

/// State shared by the server, the sessions and the handle.
struct Shared {
    config: SimulatorConfig,
    started: Instant,
    stats: Mutex<Stats>,
    control: Mutex<Control>,
    markets: Mutex<Markets>,
    listed: Mutex<Vec<serde_json::Value>>,
    commands: broadcast::Sender<Command>,
    next_connection: AtomicU64,
}

impl Shared {
    fn new(config: SimulatorConfig) -> Self {
        let listed = match &config.markets {
            Some(codes) => codes
                .iter()
                .map(|c| serde_json::json!({ "market": c, "korean_name": c, "english_name": c }))
                .collect(),
            None => {
                serde_json::from_str(BUNDLED_MARKETS).expect("bundled market list is valid JSON")
            }
        };
        Self {
            markets: Mutex::new(Markets::new(config.seed)),
            config,
            started: Instant::now(),
            stats: Mutex::new(Stats::default()),
            control: Mutex::new(Control::default()),
            listed: Mutex::new(listed),
            commands: broadcast::channel(1024).0,
            next_connection: AtomicU64::new(1),
        }
    }

    fn set_market_event(&self, change: &MarketEventChange) {
        let mut markets = self.markets.lock();
        let market = markets.get(&change.code);
        if let Some(warning) = change.warning {
            market.warning = warning;
        }
        for (flag, on) in &change.caution {
            market.caution.insert(flag.clone(), *on);
        }
    }

    fn stats(&self) -> MutexGuard<'_, Stats> {
        self.stats.lock()
    }

    fn market_list_down(&self) -> Option<u16> {
        self.control.lock().market_list_down
    }

    fn muted(&self) -> bool {
        self.control
            .lock()
            .mute_until
            .is_some_and(|until| Instant::now() < until)
    }

    fn delay(&self) -> Duration {
        self.control.lock().delay
    }

    fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The connection gate: `Some((status, retry_after))` refuses the upgrade (`Retry-After` in
    /// seconds; `None` sends no header).
    fn admit(&self, now: Instant) -> Option<(u16, Option<u64>)> {
        let mut control = self.control.lock();
        let config = &self.config;
        if let Some((status, until, retry)) = control.refuse {
            if now < until {
                let retry = match retry {
                    Some(0) => None,
                    Some(secs) => Some(secs),
                    None => Some(until.duration_since(now).as_secs().max(1)),
                };
                return Some((status, retry));
            }
            control.refuse = None;
        }
        if config.connect_limit_per_sec == 0 {
            return None;
        }
        if let Some(until) = control.ban_until.filter(|u| now < *u) {
            return Some((418, Some(until.duration_since(now).as_secs().max(1))));
        }
        while control
            .attempts
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            control.attempts.pop_front();
        }
        while control
            .rejections
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            control.rejections.pop_front();
        }
        control.attempts.push_back(now);
        if control.attempts.len() <= config.connect_limit_per_sec as usize {
            return None;
        }
        control.rejections.push_back(now);
        if control.rejections.len() >= config.ban_after_rejections.max(1) as usize {
            let ban = config
                .ban_duration
                .saturating_mul(1 << control.bans.min(10));
            control.bans += 1;
            control.ban_until = Some(now + ban);
            control.rejections.clear();
            return Some((418, Some(ban.as_secs().max(1))));
        }
        Some((429, Some(1)))
    }

    fn apply(&self, fault: Fault) {
        *self
            .stats()
            .faults
            .entry(fault.kind().to_owned())
            .or_default() += 1;
        let send = |bytes: Vec<u8>| {
            let _ = self.commands.send(Command::Send(Bytes::from(bytes)));
        };
        let now = Instant::now();
        match fault {
            Fault::Drop => {
                let _ = self.commands.send(Command::Drop);
            }
            Fault::Close { code, reason } => {
                let _ = self.commands.send(Command::Close { code, reason });
            }
            Fault::Mute { duration_ms } => {
                let until = duration_ms.map_or(now + Duration::from_secs(365 * 86_400), |ms| {
                    now + Duration::from_millis(ms)
                });
                self.control.lock().mute_until = Some(until);
            }
            Fault::Unmute => self.control.lock().mute_until = None,
            Fault::Malformed => {
                send(br#"{"type":"ticker","code":"KRW-BTC","trade_price":"#.to_vec())
            }
            Fault::Oversized { bytes } => {
                let head = br#"{"type":"ticker","padding":""#;
                let mut frame = Vec::with_capacity(bytes.max(head.len() + 2));
                frame.extend_from_slice(head);
                frame.resize(bytes.saturating_sub(2).max(head.len()), b'x');
                frame.extend_from_slice(b"\"}");
                send(frame)
            }
            Fault::UnknownType => send(
                format!(
                    r#"{{"type":"mystery","code":"KRW-BTC","timestamp":{}}}"#,
                    crate::clock::unix_ms(SystemTime::now())
                )
                .into_bytes(),
            ),
            Fault::Raw { text } => send(text.into_bytes()),
            Fault::ErrorFrame { name } => {
                *self
                    .stats()
                    .error_frames_sent
                    .entry(name.clone())
                    .or_default() += 1;
                let frame = serde_json::json!({ "error": { "name": name, "message": "injected by the simulator" } });
                send(frame.to_string().into_bytes())
            }
            Fault::RefuseHandshakes {
                status,
                duration_ms,
                retry_after_secs,
            } => {
                let status = if status == 418 { 418 } else { 429 };
                self.control.lock().refuse = Some((
                    status,
                    now + Duration::from_millis(duration_ms),
                    retry_after_secs,
                ));
            }
            Fault::Delay { per_frame_ms } => {
                self.control.lock().delay = Duration::from_millis(per_frame_ms)
            }
            Fault::MarketListDown { status } => {
                self.control.lock().market_list_down = (status != 0).then_some(status)
            }
            Fault::Reset => {
                let mut control = self.control.lock();
                control.mute_until = None;
                control.refuse = None;
                control.delay = Duration::ZERO;
                control.market_list_down = None;
                control.ban_until = None;
                control.bans = 0;
                control.attempts.clear();
                control.rejections.clear();
            }
        }
    }
}

/// Starts simulators.
pub struct Simulator;

impl Simulator {
    /// Binds `config.listen` and serves on the current actix System; returns at once.
    pub async fn start(config: SimulatorConfig) -> std::io::Result<SimulatorHandle> {
        let shared = Arc::new(Shared::new(config));
        let (addr, server) = server::start(shared.clone())?;
        if let Some(period) = shared.config.drop_every {
            let shared = shared.clone();
            actix_rt::spawn(async move {
                let mut interval =
                    actix_rt::time::interval_at(actix_rt::time::Instant::now() + period, period);
                loop {
                    interval.tick().await;
                    shared.apply(Fault::Drop);
                }
            });
        }
        Ok(SimulatorHandle {
            addr,
            shared,
            server,
        })
    }
}

/// A running simulator.
#[derive(Clone)]
pub struct SimulatorHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: actix_web::dev::ServerHandle,
}

impl SimulatorHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://127.0.0.1:PORT/websocket/v1`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/websocket/v1", self.addr)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn inject(&self, fault: Fault) {
        self.shared.apply(fault);
    }

    pub fn stats(&self) -> Stats {
        self.shared.stats().clone()
    }

    /// Adds a market to `/v1/market/all`.
    pub fn list_market(&self, code: &str) {
        let mut listed = self.shared.listed.lock();
        if !listed.iter().any(|m| m["market"] == code) {
            listed.push(
                serde_json::json!({ "market": code, "korean_name": code, "english_name": code }),
            );
        }
    }

    /// Sets a market's `market_event` (the detailed market list; the ticker's deprecated
    /// `market_warning` follows `warning`): `warning` when given, and each caution flag given
    /// (any name, so a test can send a flag Upbit has not documented yet).
    pub fn set_market_event(&self, code: &str, warning: Option<bool>, caution: &[(&str, bool)]) {
        self.shared.set_market_event(&MarketEventChange {
            code: code.to_owned(),
            warning,
            caution: caution
                .iter()
                .map(|(flag, on)| ((*flag).to_owned(), *on))
                .collect(),
        });
    }

    /// Removes a market from `/v1/market/all`.
    pub fn delist_market(&self, code: &str) {
        self.shared.listed.lock().retain(|m| m["market"] != code);
    }

    pub async fn stop(&self) {
        let _ = self.shared.commands.send(Command::Drop);
        self.server.stop(false).await;
    }
}
