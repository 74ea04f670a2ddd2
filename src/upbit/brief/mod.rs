//! The hot path's decode: of each market message, only what the metrics need, read without
//! allocating ([`Brief`]), while every other field is checked for its shape and skipped.
//!
//! The full wire types ([`model`](super::model)) own every field, strings included: about eight
//! allocations per ticker, and most of a frame's decode time spent on fields no metric reads.
//! The metrics need a handful of numbers, the code and the closed vocabularies (side, market
//! state, warning), so the brief reads those, borrowed from the frame. The rest of the frame's
//! JSON travels along as bytes (latest data, live stream) and is decoded fully only when someone
//! asks for it.
//!
//! **Same verdict as the full decode.** The brief is read by a one-pass reader of plain messages
//! ([`scan`]) that accepts a message only where the full decode accepts it with no field
//! dropped: it knows the same fields and aliases and is stricter about every value (see there).
//! On anything less than plain the caller falls back to the full, lenient decode, which decides
//! what fails and which fields are skipped exactly as before, and takes the brief from its result
//! ([`Brief::of`]). The slow path is taken only by odd messages; Upbit's own never take it. A
//! property test holds the two paths to the same verdict.

use super::model::{Candle, Message, Orderbook, OrderbookUnit, Ticker, Trade};
use super::types::{market_code, DataType, Side, MAX_CODE_LEN};
use crate::clock::{date_to_unix_seconds, datetime_to_unix_seconds};

mod digits;
mod read;
mod scan;

/// What the metrics need of one market message.
#[derive(Debug, Clone, PartialEq)]
pub struct Brief {
    pub data_type: DataType,
    /// The market code, without an orderbook's `.N` depth suffix.
    pub code: MarketCode,
    /// Exchange time of the message, ms since the epoch.
    pub timestamp: Option<u64>,
    pub values: Values,
}

/// The figures of a brief, by kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    Ticker(TickerValues),
    Trade(TradeValues),
    Orderbook(OrderbookValues),
    Candle(CandleValues),
}

/// A ticker's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct TickerValues {
    pub trade_price: f64,
    pub signed_change_rate: Option<f64>,
    pub acc_trade_volume_24h: Option<f64>,
    pub acc_trade_price_24h: Option<f64>,
    pub is_trading_suspended: Option<bool>,
    /// `market_warning` other than `NONE` (`None`: the ticker did not say).
    pub warning: Option<bool>,
    /// `delisting_date` as the Unix time of that day, when it reads as a date.
    pub delisting_at: Option<f64>,
    pub market_state: Option<MarketState>,
}

/// A trade's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TradeValues {
    pub trade_price: f64,
    pub trade_volume: f64,
    pub ask_bid: Side,
}

/// An orderbook's figures: the totals and the levels, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderbookValues {
    pub total_ask_size: f64,
    pub total_bid_size: f64,
    pub units: Vec<OrderbookUnit>,
}

/// A candle's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CandleValues {
    pub opening_price: f64,
    pub high_price: f64,
    pub low_price: f64,
    pub trade_price: f64,
    pub candle_acc_trade_volume: Option<f64>,
    /// `candle_date_time_utc` as Unix seconds, when it reads as one.
    pub start: Option<f64>,
}

/// A ticker's `market_state`, folded into the bounded label set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarketState {
    Preview,
    Active,
    Delisted,
    /// Any state Upbit has not documented.
    Other,
}

impl MarketState {
    pub fn from_wire(state: &str) -> Self {
        match state {
            "PREVIEW" => Self::Preview,
            "ACTIVE" => Self::Active,
            "DELISTED" => Self::Delisted,
            _ => Self::Other,
        }
    }

    /// The label value of `upbit_market_state{state}`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Preview => "PREVIEW",
            Self::Active => "ACTIVE",
            Self::Delisted => "DELISTED",
            Self::Other => "OTHER",
        }
    }
}

/// A market code held inline (no allocation). Codes longer than any subscribable one
/// ([`MAX_CODE_LEN`]) are kept as the empty code, which no
/// subscription contains: such a message is counted as unsubscribed, as before.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MarketCode {
    len: u8,
    bytes: [u8; MAX_CODE_LEN],
}

impl MarketCode {
    /// The market code of `code` (an orderbook's `.N` suffix removed).
    pub fn new(code: &str) -> Self {
        let code = market_code(code);
        let mut bytes = [0; MAX_CODE_LEN];
        if code.len() > bytes.len() {
            return Self { len: 0, bytes };
        }
        bytes[..code.len()].copy_from_slice(code.as_bytes());
        Self {
            len: code.len() as u8,
            bytes,
        }
    }

    pub fn as_str(&self) -> &str {
        // Always a whole prefix of a `str` (split at an ASCII '.'), so always UTF-8.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

impl std::fmt::Debug for MarketCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

impl Brief {
    /// Reads the brief of a message of `data_type` from its JSON object; `None` means "ask the
    /// full decode" (see the module doc).
    pub fn read(data_type: DataType, raw: &[u8]) -> Option<Self> {
        read::read(data_type, raw)
    }

    /// The brief of a fully decoded market message; `None` for status, error and list answers.
    pub fn of(message: &Message) -> Option<Self> {
        let (code, timestamp, values) = match message {
            Message::Ticker(t) => (&t.code, t.timestamp, Values::Ticker(ticker_values(t))),
            Message::Trade(t) => (&t.code, t.timestamp, Values::Trade(trade_values(t))),
            Message::Orderbook(o) => (&o.code, o.timestamp, Values::Orderbook(book_values(o))),
            Message::Candle(c) => (&c.code, c.timestamp, Values::Candle(candle_values(c))),
            _ => return None,
        };
        Some(Self {
            data_type: message.data_type()?,
            code: MarketCode::new(code),
            timestamp,
            values,
        })
    }
}

fn ticker_values(t: &Ticker) -> TickerValues {
    TickerValues {
        trade_price: t.trade_price,
        signed_change_rate: t.signed_change_rate,
        acc_trade_volume_24h: t.acc_trade_volume_24h,
        acc_trade_price_24h: t.acc_trade_price_24h,
        is_trading_suspended: t.is_trading_suspended,
        warning: t.market_warning.as_deref().map(|w| w != "NONE"),
        delisting_at: t.delisting_date.as_deref().and_then(date_to_unix_seconds),
        market_state: t.market_state.as_deref().map(MarketState::from_wire),
    }
}

fn trade_values(t: &Trade) -> TradeValues {
    TradeValues {
        trade_price: t.trade_price,
        trade_volume: t.trade_volume,
        ask_bid: t.ask_bid,
    }
}

fn book_values(o: &Orderbook) -> OrderbookValues {
    OrderbookValues {
        total_ask_size: o.total_ask_size,
        total_bid_size: o.total_bid_size,
        units: o.orderbook_units.clone(),
    }
}

fn candle_values(c: &Candle) -> CandleValues {
    CandleValues {
        opening_price: c.opening_price,
        high_price: c.high_price,
        low_price: c.low_price,
        trade_price: c.trade_price,
        candle_acc_trade_volume: c.candle_acc_trade_volume,
        start: c
            .candle_date_time_utc
            .as_deref()
            .and_then(datetime_to_unix_seconds),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::upbit::decode::{decode_as, decode_frame_brief_with, decode_frame_lenient_with};
    use crate::upbit::model::Message;

    /// What a decode made of a frame: per message its brief and full form (or the error code),
    /// and the fields skipped.
    type Verdict = (
        Vec<Result<(Option<Brief>, Message), &'static str>>,
        Vec<String>,
    );

    fn full(frame: &[u8]) -> Verdict {
        let (mut out, mut skipped) = (Vec::new(), Vec::new());
        decode_frame_lenient_with(
            frame,
            |m| out.push(m.map(|m| (Brief::of(&m), m)).map_err(|e| e.code())),
            |f| skipped.push(f.to_owned()),
        );
        (out, skipped)
    }

    /// The brief path's verdict; `whole`: decode every market message in full at once (as when
    /// a sink such as NATS takes every message).
    fn brief(frame: &[u8], whole: bool) -> Verdict {
        let (mut out, mut skipped) = (Vec::new(), Vec::new());
        decode_frame_brief_with(
            frame,
            |_| whole,
            |m| {
                out.push(
                    m.map(|m| match m {
                        Decoded::Market { brief, json, full } => {
                            let decoded =
                                decode_as(brief.data_type, json).expect("its JSON decodes");
                            match full {
                                Some(full) => assert_eq!(*full, decoded),
                                None => assert!(!whole, "asked for in full"),
                            }
                            (Some(brief), decoded)
                        }
                        Decoded::Control(message) => (None, *message),
                    })
                    .map_err(|e| e.code()),
                )
            },
            |f| skipped.push(f.to_owned()),
        );
        (out, skipped)
    }

    use crate::upbit::decode::Decoded;

    /// Every recorded frame, and odd ones around the brief's shape checks.
    fn frames() -> Vec<Vec<u8>> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/upbit");
        let mut frames: Vec<Vec<u8>> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .filter(|p| !p.to_string_lossy().contains("rest_market"))
            .map(|p| std::fs::read(p).unwrap())
            .collect();
        let base = r#"{"type":"ticker","code":"KRW-BTC","trade_price":1"#;
        for odd in [
            r#","opening_price":1e400"#,
            r#","opening_price":-1e400"#,
            r#","opening_price":1e-400"#,
            r#","opening_price":6E-8"#,
            r#","opening_price":1e+2"#,
            r#","opening_price":01"#,
            r#","opening_price":1."#,
            r#","opening_price":-"#,
            r#","opening_price":1.e5"#,
            r#","opening_price":"1""#,
            r#","opening_price":true"#,
            r#","acc_trade_price_24h":228827082483.70729000"#,
            r#","signed_change_rate":-0"#,
            r#","signed_change_rate":01"#,
            r#","signed_change_rate":-01.5"#,
            r#","signed_change_rate":1."#,
            r#","signed_change_rate":-"#,
            r#","signed_change_rate":1.e5"#,
            r#","signed_change_rate":1.5e5"#,
            r#","signed_change_rate":12345678901234567890.5"#,
            r#","signed_change_rate":0.12345678901234567891"#,
            r#","signed_change_rate":9007199254740993"#,
            r#","trade_timestamp":1e3"#,
            r#","trade_timestamp":18446744073709551616"#,
            r#","unknown":[1]"#,
            r#","unknown":"é""#,
            r#" , "stream_type" : "REALTIME" "#,
            r#","stream_type":"LIVE""#,
            r#","trade_date":"\ud800""#,
            r#","trade_date":"a\"b""#,
            r#","market_state":"ACT\u0049VE""#,
            r#","market_warning":"CAUTION","market_state":"SOMETHING""#,
            r#","delisting_date":20240613"#,
            r#","delisting_date":-1"#,
            r#","delisting_date":"2024-06-13""#,
            r#","code":"KRW-ETH""#,
            r#","cd":"KRW-ETH""#,
            r#","trade_price":2"#,
            r#","ask_bid":"SIDEWAYS""#,
            r#","timestamp":1.5"#,
            r#","timestamp":-1"#,
            r#","is_trading_suspended":1"#,
        ] {
            frames.push(format!("{base}{odd}}}").into_bytes());
        }
        // Orderbook units as Upbit writes them (read by matching their keys in order) and in
        // every other shape, which the general object reader takes.
        let book = r#"{"type":"orderbook","code":"KRW-BTC","total_ask_size":1,"total_bid_size":2,"orderbook_units":["#;
        let upbit = r#"{"ask_price":137002000,"bid_price":137001000,"ask_size":0.10623869,"bid_size":0.03656812}"#;
        let simple = r#"{"ap":0.0001234,"bp":1.5,"as":12345678.12345678,"bs":0}"#;
        for units in [
            upbit.to_owned(),
            simple.to_owned(),
            format!("{upbit},{simple},{upbit}"),
            format!(" {upbit} , {simple} "),
            r#"{"bid_price":1,"ask_price":2,"ask_size":3,"bid_size":4}"#.into(),
            r#"{"ask_price": 1,"bid_price":2,"ask_size":3,"bid_size":4}"#.into(),
            r#"{"ask_price":1 ,"bid_price":2,"ask_size":3,"bid_size":4}"#.into(),
            r#"{"ask_price":1,"bid_price":2,"ask_size":3,"bid_size":4,"extra":5}"#.into(),
            r#"{"ask_price":1,"bid_price":2,"ask_size":3,"bid_size":4,"bid_size":4}"#.into(),
            r#"{"ask_price":1,"bid_price":2,"ask_size":3}"#.into(),
            r#"{"ap":1,"bid_price":2,"as":3,"bid_size":4}"#.into(),
            r#"{"ap":1,"bp":2,"as":3e2,"bs":4}"#.into(),
            r#"{"ap":1,"bp":2,"as":1e400,"bs":4}"#.into(),
            r#"{"ap":1,"bp":2,"as":-0.5,"bs":04}"#.into(),
            r#"{"ap":1,"bp":2,"as":"3","bs":4}"#.into(),
            r#"{"ap":123456789012345678901,"bp":2,"as":3,"bs":4}"#.into(),
            r#"{"ap":1,"bp":2,"as":3,"bs":4"#.into(),
            r#"{"ap":1,"bp":2,"as":3,"bs":4},"#.into(),
            r#"{"ap":1,"bp":2,"as":3,"bs":4}{"ap":1,"bp":2,"as":3,"bs":4}"#.into(),
        ] {
            frames.push(format!("{book}{units}]}}").into_bytes());
        }
        frames.push(br#"{"type":"ticker","code":"KRW-\u0042TC","trade_price":1}"#.to_vec());
        frames.push(format!(r#"{{"type":"trade","code":"{}","trade_price":1,"trade_volume":1,"ask_bid":"BID"}}"#, "A".repeat(40)).into_bytes());
        frames
    }

    #[test]
    fn every_recorded_and_odd_frame_gets_the_full_decodes_verdict() {
        for frame in frames() {
            let full = full(&frame);
            for whole in [false, true] {
                assert_eq!(
                    brief(&frame, whole),
                    full,
                    "{}",
                    String::from_utf8_lossy(&frame)
                );
            }
        }
    }

    /// Upbit's own messages take the fast path (the slow one would still be right, only slow).
    #[test]
    fn recorded_market_messages_are_read_in_one_pass() {
        let mut read = 0;
        for frame in frames()
            .iter()
            .take_while(|f| !f.starts_with(br#"{"type":"ticker","code":"KRW-BTC","trade_price":1"#))
        {
            for_each_market_object(frame, |data_type, raw| {
                assert!(
                    read::read(data_type, raw).is_some(),
                    "{}",
                    String::from_utf8_lossy(raw)
                );
                read += 1;
            });
        }
        assert!(read >= 12, "{read}");
    }

    /// Calls `f` with the type and JSON of every market message of a frame.
    fn for_each_market_object(frame: &[u8], mut f: impl FnMut(DataType, &[u8])) {
        decode_frame_brief_with(
            frame,
            |_| false,
            |m| {
                if let Ok(Decoded::Market { brief, json, .. }) = m {
                    f(brief.data_type, json);
                }
            },
            |_| {},
        );
    }

    #[test]
    fn a_code_too_long_to_subscribe_is_the_empty_code() {
        assert_eq!(MarketCode::new("KRW-BTC.15").as_str(), "KRW-BTC");
        assert_eq!(MarketCode::new(&"A".repeat(33)).as_str(), "");
    }

    /// Upbit's compact units are read by matching their keys, and read as the full decode reads
    /// them.
    #[test]
    fn compact_units_are_read_by_their_keys_in_either_format() {
        for unit in [
            &br#"{"ask_price":137002000,"bid_price":137001000,"ask_size":0.10623869,"bid_size":0.03656812}"#[..],
            br#"{"ap":137002000,"bp":137001000,"as":0.10623869,"bs":0.03656812}"#,
        ] {
            let mut scanner = scan::Scanner { b: unit, i: 0 };
            let read = read::plain_unit(&mut scanner).expect("read by its keys");
            assert_eq!(scanner.i, unit.len());
            let full: OrderbookUnit = serde_json::from_slice(unit).unwrap();
            assert_eq!(read, full);
        }
        let reordered = br#"{"bid_price":1,"ask_price":2,"ask_size":3,"bid_size":4}"#;
        assert!(read::plain_unit(&mut scan::Scanner { b: reordered, i: 0 }).is_none());
    }

    proptest! {
        /// The fast path's numbers are serde_json's (`float_roundtrip`), bit for bit.
        #[test]
        fn numbers_read_as_serde_json_reads_them(
            negative in any::<bool>(),
            whole in "(0|[1-9][0-9]{0,19})",
            fraction in proptest::option::of("[0-9]{1,24}"),
            after in "[,}\\] \"a\u{80}-\u{ff}\u{0}-\u{1f}]{0,12}",
        ) {
            let text = format!(
                "{}{whole}{}",
                if negative { "-" } else { "" },
                fraction.map(|f| format!(".{f}")).unwrap_or_default()
            );
            let ours = scan::as_f64(text.as_bytes()).unwrap();
            let serde: f64 = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(ours.to_bits(), serde.to_bits(), "{}", text);
            let mut scanner = scan::Scanner { b: text.as_bytes(), i: 0 };
            prop_assert_eq!(scanner.f64().map(f64::to_bits), Some(serde.to_bits()), "{}", text);
            prop_assert_eq!(scanner.i, text.len());
            // Inside a frame, where the digits are read eight bytes at a time.
            let framed = format!("{text}{after}");
            let mut scanner = scan::Scanner { b: framed.as_bytes(), i: 0 };
            prop_assert_eq!(scanner.f64().map(f64::to_bits), Some(serde.to_bits()), "{}", framed);
            prop_assert_eq!(scanner.i, text.len());
        }

        /// Trailing zeros in a fraction (Upbit pads to 8 or 16 places) and runs of zeros inside
        /// one: serde_json's value bit for bit, on the fast path or the long way.
        #[test]
        fn padded_fractions_read_as_serde_json_reads_them(
            whole in "(0|[1-9][0-9]{0,17})",
            digits in "[0-9]{0,12}",
            inner in "0{0,20}",
            last in "[1-9]?",
            padding in "0{1,40}",
        ) {
            let text = format!("{whole}.{digits}{inner}{last}{padding}");
            let serde: f64 = serde_json::from_str(&text).unwrap();
            let mut scanner = scan::Scanner { b: text.as_bytes(), i: 0 };
            prop_assert_eq!(scanner.f64().map(f64::to_bits), Some(serde.to_bits()), "{}", text);
            prop_assert_eq!(scanner.i, text.len());
        }

        #[test]
        fn mutated_frames_get_the_full_decodes_verdict(
            pick in 0usize..64,
            cut in 0usize..2000,
            flip in 0usize..2000,
            byte in any::<u8>(),
        ) {
            let frames = frames();
            let mut frame = frames[pick % frames.len()].clone();
            let at = flip % frame.len();
            frame[at] = byte;
            frame.truncate(cut.max(1).min(frame.len()));
            prop_assert_eq!(brief(&frame, false), full(&frame));
            prop_assert_eq!(brief(&frame, true), full(&frame));
        }
    }
}
