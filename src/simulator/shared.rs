//! State shared by the server, the sessions and the handle: the statistics, the market model
//! and list, the faults in force, and the command channel to every open session. Applying a
//! [`Fault`] and admitting an upgrade (faults first, then the [`Gate`]) happen here.

use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use parking_lot::{Mutex, MutexGuard};
use tokio::sync::broadcast;

use super::gate::Gate;
use super::market::Markets;
use super::{Fault, MarketEventChange, SimulatorConfig, Stats, BUNDLED_MARKETS};

/// A one-shot instruction to every open session.
#[derive(Debug, Clone)]
pub(super) enum Command {
    /// End the connection abruptly, without a close frame (queued frames flushed).
    Drop,
    /// Send a close frame with this code and reason, then end the connection.
    Close { code: u16, reason: Option<String> },
    /// Write this binary frame as it is.
    Send(Bytes),
}

/// Faults in force and the connection gate.
#[derive(Debug, Default)]
struct Control {
    mute_until: Option<Instant>,
    /// Refuse upgrades with this status until then, with this `Retry-After`.
    refuse: Option<(u16, Instant, Option<u64>)>,
    delay: Duration,
    gate: Gate,
    /// `GET /v1/market/all` answers this status while set.
    market_list_down: Option<u16>,
}

/// State shared by the server, the sessions and the handle.
pub(super) struct Shared {
    pub(super) config: SimulatorConfig,
    started: Instant,
    stats: Mutex<Stats>,
    control: Mutex<Control>,
    /// The market model every connection encodes from.
    pub(super) markets: Mutex<Markets>,
    /// What `GET /v1/market/all` answers.
    pub(super) listed: Mutex<Vec<serde_json::Value>>,
    /// One-shot instructions to every open session.
    pub(super) commands: broadcast::Sender<Command>,
    pub(super) next_connection: AtomicU64,
}

impl Shared {
    pub(super) fn new(config: SimulatorConfig) -> Self {
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

    pub(super) fn set_market_event(&self, change: &MarketEventChange) {
        let mut markets = self.markets.lock();
        let market = markets.get(&change.code);
        if let Some(warning) = change.warning {
            market.warning = warning;
        }
        for (flag, on) in &change.caution {
            market.caution.insert(flag.clone(), *on);
        }
    }

    pub(super) fn stats(&self) -> MutexGuard<'_, Stats> {
        self.stats.lock()
    }

    pub(super) fn market_list_down(&self) -> Option<u16> {
        self.control.lock().market_list_down
    }

    pub(super) fn muted(&self) -> bool {
        self.control
            .lock()
            .mute_until
            .is_some_and(|until| Instant::now() < until)
    }

    pub(super) fn delay(&self) -> Duration {
        self.control.lock().delay
    }

    pub(super) fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The connection gate: `Some((status, retry_after))` refuses the upgrade (`Retry-After` in
    /// seconds; `None` sends no header).
    pub(super) fn admit(&self, now: Instant) -> Option<(u16, Option<u64>)> {
        let mut control = self.control.lock();
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
        control.gate.admit(&self.config, now)
    }

    pub(super) fn apply(&self, fault: Fault) {
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
            Fault::Reset => *self.control.lock() = Control::default(),
        }
    }
}
