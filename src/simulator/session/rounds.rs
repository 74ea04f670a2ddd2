//! What a connection sends from the market model: each message encoded for its round, and the
//! snapshot and realtime rounds written as single frames or one list frame per type.

use std::time::SystemTime;

use super::Connection;
use crate::simulator::encode;
use crate::simulator::market::MarketState;
use crate::simulator::request::{base_code, orderbook_depth, TypeRequest};
use crate::upbit::types::StreamType;
use crate::upbit::DataType;

/// What a message is encoded for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Round {
    /// The state after a subscription (the last trade).
    Snapshot,
    /// The live stream: the market's tape, shared by every connection.
    Realtime,
    /// Pre-encoded firehose frames: a fresh trade each.
    Firehose,
}

impl Connection {
    /// Encodes the messages of `t` for `code` (the requested form, maybe with `.N`): one, except
    /// for realtime trades, which are the tape's trades this connection has not seen (0 or more).
    pub(super) fn encode(
        &self,
        t: &TypeRequest,
        code: &str,
        stream: StreamType,
        simple: bool,
        round: Round,
    ) -> Vec<String> {
        let now = crate::clock::unix_ms(SystemTime::now());
        let mut markets = self.shared.markets.lock();
        let market = markets.get(base_code(code));
        if round == Round::Realtime {
            let rate = self.shared.config.rate;
            let period_ms = if rate > 0.0 {
                (1000.0 / rate) as u64
            } else {
                1000
            };
            market.tape_until(now, period_ms);
        }
        if t.data_type == DataType::Trade {
            let mut seen = self.seen.borrow_mut();
            let trades = match round {
                Round::Firehose => vec![market.trade(now)],
                Round::Snapshot => vec![market.last_trade(now)],
                Round::Realtime => {
                    let after = seen.get(&(t.data_type, code.to_owned())).copied();
                    market.tape_since(after.unwrap_or(0))
                }
            };
            if let (Some(last), false) = (trades.last(), round == Round::Firehose) {
                seen.insert((t.data_type, code.to_owned()), last.sequential_id);
            }
            return trades
                .iter()
                .map(|trade| encode::trade(market, trade, now, stream, simple))
                .collect();
        }
        // Tickers, orderbooks and candles: one per tick of the tape this connection has not
        // sent yet (the snapshot: the newest tick), each as the tick left the market and at its
        // time, so every connection sends the same messages. Before the tape has a tick (a
        // snapshot right at the start, the firehose) the market as it is now.
        let ticks = match round {
            Round::Firehose => Vec::new(),
            Round::Snapshot => market.last_tick().cloned().into_iter().collect(),
            Round::Realtime => {
                let seen = self.seen.borrow();
                let after = seen.get(&(t.data_type, code.to_owned())).copied();
                market.ticks_since(after.unwrap_or(0))
            }
        };
        if let Some(last) = ticks.last() {
            self.seen
                .borrow_mut()
                .insert((t.data_type, code.to_owned()), last.trade.sequential_id);
        }
        if ticks.is_empty() && round == Round::Realtime {
            return Vec::new();
        }
        let legacy = self.shared.config.legacy_ticker_fields;
        let draw = |m: &mut MarketState, at: u64| match t.data_type {
            DataType::Ticker => encode::ticker(m, at, stream, simple, legacy),
            DataType::Trade => String::new(), // handled above
            DataType::Orderbook => encode::orderbook(
                m,
                base_code(code),
                orderbook_depth(code),
                t.level,
                at,
                stream,
                simple,
            ),
            DataType::Candle(interval) => encode::candle(m, interval, at, stream, simple),
        };
        if ticks.is_empty() {
            return vec![draw(market, now)];
        }
        ticks
            .iter()
            .map(|tick| draw(&mut tick.state.as_ref().clone(), tick.trade.timestamp_ms))
            .collect()
    }

    /// Sends one message per (type, code), as single frames or one list frame per type.
    async fn send_round(
        &mut self,
        stream: StreamType,
        snapshot: bool,
    ) -> Result<(), actix_ws::Closed> {
        let Some(active) = self.active.as_ref() else {
            return Ok(());
        };
        let (format, simple) = (self.format, self.format.is_simple());
        let mut frames: Vec<(String, Vec<(String, String)>)> = Vec::new();
        for t in &active.types {
            if (snapshot && t.only_realtime) || (!snapshot && t.only_snapshot) {
                continue;
            }
            let round = if snapshot {
                Round::Snapshot
            } else {
                Round::Realtime
            };
            let messages: Vec<(String, String)> = t
                .codes
                .iter()
                .flat_map(|code| {
                    self.encode(t, code, stream, simple, round)
                        .into_iter()
                        .map(move |m| (base_code(code).to_owned(), m))
                })
                .collect();
            if messages.is_empty() {
                continue;
            }
            let type_name = t.data_type.as_str().to_owned();
            if format.is_list() {
                frames.push((type_name, messages));
            } else {
                frames.extend(messages.into_iter().map(|m| (type_name.clone(), vec![m])));
            }
        }
        for (type_name, messages) in frames {
            let delay = self.shared.delay();
            if !delay.is_zero() {
                actix_rt::time::sleep(delay).await;
            }
            let body = if format.is_list() {
                let parts: Vec<&str> = messages.iter().map(|(_, m)| m.as_str()).collect();
                format!("[{}]", parts.join(","))
            } else {
                messages[0].1.clone()
            };
            let size = body.len();
            self.session.binary(body).await?;
            let mut stats = self.shared.stats();
            for (code, _) in &messages {
                *stats
                    .sent
                    .entry(type_name.clone())
                    .or_default()
                    .entry(code.clone())
                    .or_default() += 1;
            }
            stats.frames_sent += 1;
            stats.bytes_sent += size as u64;
            *stats
                .frames_by_format
                .entry(format.as_str().to_owned())
                .or_default() += 1;
        }
        Ok(())
    }

    pub(super) async fn send_snapshots(&mut self) -> Result<(), actix_ws::Closed> {
        self.send_round(StreamType::Snapshot, true).await
    }

    pub(super) async fn send_realtime(&mut self) -> Result<(), actix_ws::Closed> {
        self.send_round(StreamType::Realtime, false).await
    }
}
