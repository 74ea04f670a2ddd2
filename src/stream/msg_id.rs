//! The deduplication id of a market message (NATS `Nats-Msg-Id`), derived from the message
//! alone, so two replicas that receive the same Upbit message compute the same id and a
//! JetStream stream stores it once (within its duplicate window).
//!
//! ```text
//! trade:KRW-BTC:17303368620470000                      type, code, sequential_id
//! ticker:KRW-BTC:1730336862082:5f0e3c1a9b27d4e8        type, code, exchange timestamp, content hash
//! orderbook:KRW-BTC:1730336862082:0c4b...              (the hash covers every unit)
//! candle.1m:KRW-BTC:1730336862082:93aa...
//! ```
//!
//! A trade is identified by Upbit's `sequential_id`, unique per trade. The other types carry no
//! such id: the exchange timestamp (ms) and a 64-bit FNV-1a hash of the fields that describe the
//! market state stand in for one. `stream_type` (SNAPSHOT or REALTIME) is left out, so the
//! snapshot a replica receives on subscribing deduplicates against the realtime message the
//! other replica already stored. Limits: two messages of one type and code in the same
//! millisecond whose hashed fields are all equal are taken as one (they say the same thing);
//! fields outside the hash (52-week figures, market state) cannot tell such messages apart; a
//! message without a timestamp uses 0.

use crate::upbit::model::{Candle, Orderbook, Ticker, Trade};
use crate::upbit::{DataType, Message};

/// The id of a market message; `None` for anything else.
pub fn message_id(message: &Message) -> Option<String> {
    match message {
        Message::Trade(trade) => Some(trade_id(trade)),
        Message::Ticker(ticker) => Some(ticker_id(ticker)),
        Message::Orderbook(book) => Some(orderbook_id(book)),
        Message::Candle(candle) => Some(candle_id(candle)),
        _ => None,
    }
}

fn trade_id(t: &Trade) -> String {
    match t.sequential_id {
        Some(id) => format!("trade:{}:{id}", t.code),
        // Never seen without one; the content then stands in, as for the other types.
        None => {
            let mut h = Fnv::new();
            h.f(t.trade_price).f(t.trade_volume).o(t.trade_timestamp);
            h.s(t.ask_bid.as_str());
            with_hash("trade", &t.code, t.timestamp, h)
        }
    }
}

fn ticker_id(t: &Ticker) -> String {
    let mut h = Fnv::new();
    h.f(t.trade_price)
        .of(t.opening_price)
        .of(t.high_price)
        .of(t.low_price)
        .of(t.prev_closing_price)
        .of(t.trade_volume)
        .of(t.acc_trade_volume)
        .of(t.acc_trade_price)
        .of(t.acc_ask_volume)
        .of(t.acc_bid_volume)
        .o(t.trade_timestamp);
    with_hash("ticker", &t.code, t.timestamp, h)
}

fn orderbook_id(b: &Orderbook) -> String {
    let mut h = Fnv::new();
    h.f(b.total_ask_size).f(b.total_bid_size).of(b.level);
    h.o(Some(b.orderbook_units.len() as u64));
    for unit in &b.orderbook_units {
        h.f(unit.ask_price)
            .f(unit.ask_size)
            .f(unit.bid_price)
            .f(unit.bid_size);
    }
    with_hash("orderbook", &b.code, b.timestamp, h)
}

fn candle_id(c: &Candle) -> String {
    let mut h = Fnv::new();
    h.s(c.candle_date_time_utc.as_deref().unwrap_or(""));
    h.f(c.opening_price)
        .f(c.high_price)
        .f(c.low_price)
        .f(c.trade_price)
        .of(c.candle_acc_trade_volume)
        .of(c.candle_acc_trade_price);
    with_hash(
        DataType::Candle(c.interval).as_str(),
        &c.code,
        c.timestamp,
        h,
    )
}

fn with_hash(kind: &str, code: &str, timestamp: Option<u64>, h: Fnv) -> String {
    format!("{kind}:{code}:{}:{:016x}", timestamp.unwrap_or(0), h.0)
}

/// FNV-1a, 64 bits: written here so the id never changes with a library or Rust release (a
/// pair mid-upgrade still agrees).
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        self
    }

    fn f(&mut self, x: f64) -> &mut Self {
        self.bytes(&[1]).bytes(&x.to_bits().to_le_bytes())
    }

    fn of(&mut self, x: Option<f64>) -> &mut Self {
        match x {
            Some(x) => self.f(x),
            None => self.bytes(&[0]),
        }
    }

    fn o(&mut self, x: Option<u64>) -> &mut Self {
        match x {
            Some(x) => self.bytes(&[1]).bytes(&x.to_le_bytes()),
            None => self.bytes(&[0]),
        }
    }

    fn s(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes()).bytes(&[0xff])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upbit::types::StreamType;

    use crate::upbit::fixture_message as fixture;

    #[test]
    fn a_trade_is_its_type_code_and_sequential_id() {
        let Message::Trade(trade) = fixture("trade_default_1.json") else {
            panic!("a trade")
        };
        let id = message_id(&Message::Trade(trade.clone())).unwrap();
        assert_eq!(
            id,
            format!("trade:{}:{}", trade.code, trade.sequential_id.unwrap())
        );
    }

    #[test]
    fn a_snapshot_has_the_id_of_the_same_realtime_message() {
        for name in [
            "ticker_default_1.json",
            "orderbook_default_1.json",
            "candle_default_1.json",
            "trade_default_1.json",
        ] {
            let as_type = |stream_type| {
                let mut m = fixture(name);
                match &mut m {
                    Message::Ticker(t) => t.stream_type = Some(stream_type),
                    Message::Orderbook(o) => o.stream_type = Some(stream_type),
                    Message::Candle(c) => c.stream_type = Some(stream_type),
                    Message::Trade(t) => t.stream_type = Some(stream_type),
                    _ => unreachable!(),
                }
                m
            };
            let (realtime, snapshot) =
                (as_type(StreamType::Realtime), as_type(StreamType::Snapshot));
            assert_ne!(realtime, snapshot);
            let id = message_id(&realtime).unwrap();
            assert_eq!(Some(&id), message_id(&snapshot).as_ref(), "{name}");
            assert!(
                id.starts_with(realtime.data_type().unwrap().as_str()),
                "{id}"
            );
        }
    }

    #[test]
    fn a_changed_field_or_timestamp_changes_the_id() {
        let Message::Ticker(ticker) = fixture("ticker_default_1.json") else {
            panic!("a ticker")
        };
        let id = |t: &Ticker| message_id(&Message::Ticker(t.clone())).unwrap();
        let mut moved = ticker.clone();
        moved.acc_trade_volume = moved.acc_trade_volume.map(|v| v + 1.0);
        let mut later = ticker.clone();
        later.timestamp = later.timestamp.map(|t| t + 1);
        assert_ne!(id(&ticker), id(&moved));
        assert_ne!(id(&ticker), id(&later));
        let Message::Orderbook(book) = fixture("orderbook_default_1.json") else {
            panic!("an orderbook")
        };
        let mut deeper = book.clone();
        deeper.orderbook_units[1].bid_size += 0.5;
        assert_ne!(
            message_id(&Message::Orderbook(book)),
            message_id(&Message::Orderbook(deeper))
        );
    }
}
