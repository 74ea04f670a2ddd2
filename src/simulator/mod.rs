//! An offline Upbit: the quotation WebSocket and the market list, with Upbit's limits, a market
//! model, a firehose for benchmarks, and fault injection. Tests start it in-process on port 0;
//! `upbit-exporter simulate` serves it from the command line. This file holds the public
//! [`Simulator`] and its [`SimulatorHandle`]; the rest lives by job:
//!
//! - `config`: [`SimulatorConfig`], the [`Fault`]s and [`MarketEventChange`]s;
//! - `stats`: what happened, for assertions ([`Stats`]);
//! - `shared`: the state every part shares, fault application; `gate`: the connection gate;
//! - [`request`]: server-side parsing of requests, with Upbit's error frames;
//! - [`market`]: the seeded market model; [`encode`]: messages in DEFAULT and SIMPLE keys;
//! - `session`: one WebSocket connection; `server`: routes, the upgrade, admin;
//! - [`cli`]: the `simulate` subcommand.

pub mod cli;
mod config;
pub mod encode;
mod gate;
pub mod market;
pub mod request;
mod server;
mod session;
mod shared;
mod stats;

use std::net::SocketAddr;
use std::sync::Arc;

pub use config::{Fault, MarketEventChange, SimulatorConfig};
use shared::{Command, Shared};
pub use stats::{Handshake, RecordedRequest, Stats};

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
