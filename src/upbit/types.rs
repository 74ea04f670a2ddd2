//! The vocabulary of Upbit's quotation WebSocket: data types, formats, market codes.
//!
//! Shared by the client side (subscription requests, decoding) and the simulator, so the two
//! always agree on spelling.

use std::fmt;
use std::str::FromStr;

use crate::text::escape;

/// A candle interval, as in `candle.1s` … `candle.240m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CandleInterval {
    S1,
    M1,
    M3,
    M5,
    M10,
    M15,
    M30,
    M60,
    M240,
}

impl CandleInterval {
    /// Every interval Upbit serves, shortest first.
    pub const ALL: [CandleInterval; 9] = [
        Self::S1,
        Self::M1,
        Self::M3,
        Self::M5,
        Self::M10,
        Self::M15,
        Self::M30,
        Self::M60,
        Self::M240,
    ];

    /// Length of one candle in seconds.
    pub fn seconds(self) -> u64 {
        match self {
            Self::S1 => 1,
            Self::M1 => 60,
            Self::M3 => 180,
            Self::M5 => 300,
            Self::M10 => 600,
            Self::M15 => 900,
            Self::M30 => 1800,
            Self::M60 => 3600,
            Self::M240 => 14400,
        }
    }
}

/// A subscribable data type (the `type` / `ty` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DataType {
    Ticker,
    Trade,
    Orderbook,
    Candle(CandleInterval),
}

impl DataType {
    /// Every public data type, in the order Upbit documents them.
    pub const ALL: [DataType; 12] = [
        Self::Ticker,
        Self::Trade,
        Self::Orderbook,
        Self::Candle(CandleInterval::S1),
        Self::Candle(CandleInterval::M1),
        Self::Candle(CandleInterval::M3),
        Self::Candle(CandleInterval::M5),
        Self::Candle(CandleInterval::M10),
        Self::Candle(CandleInterval::M15),
        Self::Candle(CandleInterval::M30),
        Self::Candle(CandleInterval::M60),
        Self::Candle(CandleInterval::M240),
    ];

    /// The wire name, e.g. `ticker` or `candle.1m`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ticker => "ticker",
            Self::Trade => "trade",
            Self::Orderbook => "orderbook",
            Self::Candle(CandleInterval::S1) => "candle.1s",
            Self::Candle(CandleInterval::M1) => "candle.1m",
            Self::Candle(CandleInterval::M3) => "candle.3m",
            Self::Candle(CandleInterval::M5) => "candle.5m",
            Self::Candle(CandleInterval::M10) => "candle.10m",
            Self::Candle(CandleInterval::M15) => "candle.15m",
            Self::Candle(CandleInterval::M30) => "candle.30m",
            Self::Candle(CandleInterval::M60) => "candle.60m",
            Self::Candle(CandleInterval::M240) => "candle.240m",
        }
    }

    /// Parses a wire name; `None` for anything Upbit does not serve publicly.
    pub fn from_wire(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// True for the `candle.*` family.
    pub fn is_candle(self) -> bool {
        matches!(self, Self::Candle(_))
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DataType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_wire(s).ok_or_else(|| {
            let known: Vec<&str> = Self::ALL.iter().map(|t| t.as_str()).collect();
            format!("unknown type {s:?}; expected one of {}", known.join(", "))
        })
    }
}

/// The message format of a connection (the `{"format": ...}` request object).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// Full field names, one message per frame.
    #[default]
    Default,
    /// Abbreviated keys (`tp`, `cd`, ...), one message per frame.
    Simple,
    /// Full field names, each frame a JSON array of messages.
    JsonList,
    /// Abbreviated keys, each frame a JSON array of messages.
    SimpleList,
}

impl Format {
    /// Every format, in documentation order.
    pub const ALL: [Format; 4] = [
        Self::Default,
        Self::Simple,
        Self::JsonList,
        Self::SimpleList,
    ];

    /// The wire name, e.g. `SIMPLE_LIST`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "DEFAULT",
            Self::Simple => "SIMPLE",
            Self::JsonList => "JSON_LIST",
            Self::SimpleList => "SIMPLE_LIST",
        }
    }

    /// True when keys are abbreviated (SIMPLE, SIMPLE_LIST).
    pub fn is_simple(self) -> bool {
        matches!(self, Self::Simple | Self::SimpleList)
    }

    /// True when each frame is a JSON array (JSON_LIST, SIMPLE_LIST).
    pub fn is_list(self) -> bool {
        matches!(self, Self::JsonList | Self::SimpleList)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown format {s:?}; expected one of DEFAULT, SIMPLE, JSON_LIST, SIMPLE_LIST"
                )
            })
    }
}

/// Whether a message is the first state sent after subscribing or a live update (`stream_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StreamType {
    Snapshot,
    Realtime,
}

impl StreamType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Snapshot => "SNAPSHOT",
            Self::Realtime => "REALTIME",
        }
    }
}

/// The aggressor side of a trade (`ask_bid`): `ASK` is a sell, `BID` a buy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Side {
    Ask,
    Bid,
}

impl Side {
    /// The wire name (`ASK`/`BID`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ask => "ASK",
            Self::Bid => "BID",
        }
    }

    /// Lower-case form used as a metric label (`ask`/`bid`).
    pub fn label(self) -> &'static str {
        match self {
            Self::Ask => "ask",
            Self::Bid => "bid",
        }
    }
}

/// Direction against the previous close (`change`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Change {
    Rise,
    Even,
    Fall,
}

impl Change {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rise => "RISE",
            Self::Even => "EVEN",
            Self::Fall => "FALL",
        }
    }
}

/// Longest market code accepted; real ones are under 20 bytes.
pub const MAX_CODE_LEN: usize = 32;

/// The market code without an orderbook depth suffix: `KRW-BTC.15` → `KRW-BTC`.
pub fn market_code(code: &str) -> &str {
    code.split_once('.').map_or(code, |(market, _)| market)
}

/// Checks a market code against `^[A-Z]+-[A-Z0-9]+$` (PROTOCOL.md), with a length bound.
pub fn is_valid_code(code: &str) -> bool {
    if code.is_empty() || code.len() > MAX_CODE_LEN {
        return false;
    }
    let Some((quote, base)) = code.split_once('-') else {
        return false;
    };
    !quote.is_empty()
        && !base.is_empty()
        && quote.bytes().all(|b| b.is_ascii_uppercase())
        && base
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// A subscription pattern: `*` (every market) or `QUOTE-*` (every market of one quote currency,
/// e.g. `KRW-*`), resolved against Upbit's market list.
pub fn is_pattern(entry: &str) -> bool {
    entry == "*"
        || entry.strip_suffix("-*").is_some_and(|quote| {
            !quote.is_empty() && quote.len() <= 10 && quote.bytes().all(|b| b.is_ascii_uppercase())
        })
}

/// Whether `code` is matched by `pattern` (see [`is_pattern`]).
pub fn pattern_matches(pattern: &str, code: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => code.starts_with(prefix),
        None => pattern == code,
    }
}

/// Explains why a subscription entry (a code or a pattern) is invalid.
pub fn entry_problem(entry: &str) -> Option<String> {
    if is_pattern(entry) {
        return None;
    }
    code_problem(entry).map(|problem| {
        if entry.contains('*') {
            format!(
                "pattern \"{}\" is not supported; use * or QUOTE-* such as KRW-*",
                escape(entry, 40)
            )
        } else {
            problem
        }
    })
}

/// Explains why a code is invalid, for user-facing errors.
pub fn code_problem(code: &str) -> Option<String> {
    if is_valid_code(code) {
        return None;
    }
    let shown = escape(code, 40);
    if code.len() > MAX_CODE_LEN {
        return Some(format!(
            "market code \"{shown}…\" is longer than {MAX_CODE_LEN} bytes"
        ));
    }
    if is_valid_code(&code.to_ascii_uppercase()) {
        return Some(format!(
            "market code \"{shown}\" must be upper case (Upbit rejects lower case), e.g. {}",
            code.to_ascii_uppercase()
        ));
    }
    Some(format!(
        "market code \"{shown}\" is malformed; expected QUOTE-BASE such as KRW-BTC"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_type_names_round_trip() {
        for t in DataType::ALL {
            assert_eq!(t.as_str().parse::<DataType>().unwrap(), t);
        }
        assert!("candle.2m".parse::<DataType>().is_err());
        assert!("Ticker".parse::<DataType>().is_err());
    }

    #[test]
    fn format_names_round_trip() {
        for f in Format::ALL {
            assert_eq!(f.as_str().parse::<Format>().unwrap(), f);
        }
        assert!("default".parse::<Format>().is_err());
    }

    #[test]
    fn codes_are_validated() {
        for ok in ["KRW-BTC", "BTC-ETH", "USDT-BTC", "KRW-1INCH", "KRW-T"] {
            assert!(is_valid_code(ok), "{ok}");
        }
        for bad in [
            "",
            "krw-btc",
            "KRW",
            "KRW-",
            "-BTC",
            "KRW-BTC-X",
            "KRW_BTC",
            "KRW-BTC\n",
        ] {
            assert!(!is_valid_code(bad), "{bad:?}");
        }
        assert!(code_problem("krw-btc").unwrap().contains("upper case"));
        assert!(code_problem("a\nb").unwrap().contains("\\n"));
        assert!(code_problem(&"A".repeat(100)).unwrap().contains("longer"));
    }

    #[test]
    fn patterns_are_star_or_quote_star() {
        for ok in ["*", "KRW-*", "BTC-*", "USDT-*"] {
            assert!(is_pattern(ok), "{ok}");
            assert_eq!(entry_problem(ok), None);
        }
        for bad in ["krw-*", "KRW*", "*-BTC", "KRW-B*", "-*", "KRW-**", "**"] {
            assert!(!is_pattern(bad), "{bad}");
            assert!(entry_problem(bad).is_some(), "{bad}");
        }
        assert!(entry_problem("KRW-B*").unwrap().contains("QUOTE-*"));
        assert!(pattern_matches("KRW-*", "KRW-BTC"));
        assert!(!pattern_matches("KRW-*", "BTC-KRW"));
        assert!(!pattern_matches("KRW-*", "KRWX-BTC"));
        assert!(pattern_matches("*", "USDT-ETH"));
        assert!(pattern_matches("KRW-BTC", "KRW-BTC"));
    }
}
