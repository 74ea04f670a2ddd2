//! Each kind's fields as [`Scanner`] reads them: the same fields and aliases as the wire
//! types in [`model`](crate::upbit::model), the ones the metrics need converted, every other one
//! checked for its shape (see [`scan`](super::scan) for what counts as plain).

use super::scan::{once, Scanner};
use super::{
    Brief, CandleValues, MarketCode, MarketState, OrderbookValues, TickerValues, TradeValues,
    Values,
};
use crate::clock::{date_to_unix_seconds, datetime_to_unix_seconds};
use crate::upbit::model::OrderbookUnit;
use crate::upbit::types::{DataType, Side};

/// Reads the brief of a plain message of `data_type`; `None` when anything is less than plain.
pub(super) fn read(data_type: DataType, raw: &[u8]) -> Option<Brief> {
    let mut s = Scanner { b: raw, i: 0 };
    let brief = match data_type {
        DataType::Ticker => ticker(&mut s)?,
        DataType::Trade => trade(&mut s)?,
        DataType::Orderbook => orderbook(&mut s)?,
        DataType::Candle(_) => candle(&mut s, data_type)?,
    };
    s.ws();
    (s.i == raw.len()).then_some(brief)
}

const CHANGE: [&[u8]; 3] = [b"RISE", b"EVEN", b"FALL"];
const SIDE: [&[u8]; 2] = [b"ASK", b"BID"];
const STREAM: [&[u8]; 2] = [b"SNAPSHOT", b"REALTIME"];

fn ticker(s: &mut Scanner) -> Option<Brief> {
    let (mut seen, mut code, mut price) = (0u64, None, None);
    let mut v = TickerValues {
        trade_price: 0.0,
        signed_change_rate: None,
        acc_trade_volume_24h: None,
        acc_trade_price_24h: None,
        is_trading_suspended: None,
        warning: None,
        delisting_at: None,
        market_state: None,
    };
    let mut timestamp = None;
    s.object(|s, key| {
        let n = match key {
            b"code" | b"cd" => 0,
            b"opening_price" | b"op" => 1,
            b"high_price" | b"hp" => 2,
            b"low_price" | b"lp" => 3,
            b"trade_price" | b"tp" => 4,
            b"prev_closing_price" | b"pcp" => 5,
            b"change" | b"c" => 6,
            b"change_price" | b"cp" => 7,
            b"signed_change_price" | b"scp" => 8,
            b"change_rate" | b"cr" => 9,
            b"signed_change_rate" | b"scr" => 10,
            b"trade_volume" | b"tv" => 11,
            b"acc_trade_volume" | b"atv" => 12,
            b"acc_trade_volume_24h" | b"atv24h" => 13,
            b"acc_trade_price" | b"atp" => 14,
            b"acc_trade_price_24h" | b"atp24h" => 15,
            b"trade_date" | b"tdt" => 16,
            b"trade_time" | b"ttm" => 17,
            b"trade_timestamp" | b"ttms" => 18,
            b"ask_bid" | b"ab" => 19,
            b"acc_ask_volume" | b"aav" => 20,
            b"acc_bid_volume" | b"abv" => 21,
            b"highest_52_week_price" | b"h52wp" => 22,
            b"highest_52_week_date" | b"h52wdt" => 23,
            b"lowest_52_week_price" | b"l52wp" => 24,
            b"lowest_52_week_date" | b"l52wdt" => 25,
            b"market_state" | b"ms" => 26,
            b"is_trading_suspended" | b"its" => 27,
            b"delisting_date" | b"dd" => 28,
            b"market_warning" | b"mw" => 29,
            b"timestamp" | b"tms" => 30,
            b"stream_type" | b"st" => 31,
            _ => return s.skip(),
        };
        once(&mut seen, n)?;
        match n {
            0 => code = Some(s.string()?),
            4 => price = Some(s.f64()?),
            6 => drop(s.opt_word(&CHANGE)?),
            10 => v.signed_change_rate = s.opt_f64()?,
            13 => v.acc_trade_volume_24h = s.opt_f64()?,
            15 => v.acc_trade_price_24h = s.opt_f64()?,
            16 | 17 | 23 | 25 => drop(s.opt_bytes()?),
            18 => drop(s.opt_u64()?),
            19 => drop(s.opt_word(&SIDE)?),
            26 => v.market_state = s.opt_text()?.map(MarketState::from_wire),
            27 => v.is_trading_suspended = s.opt_bool()?,
            28 => v.delisting_at = delisting(s)?,
            29 => v.warning = s.opt_bytes()?.map(|w| w != b"NONE"),
            30 => timestamp = s.opt_u64()?,
            31 => drop(s.opt_word(&STREAM)?),
            _ => s.opt_number()?,
        }
        Some(())
    })?;
    v.trade_price = price?;
    Some(Brief {
        data_type: DataType::Ticker,
        code: MarketCode::new(code?),
        timestamp,
        values: Values::Ticker(v),
    })
}

/// `delisting_date`: text or digits, as the Unix time of that day when it reads as a date.
fn delisting(s: &mut Scanner) -> Option<Option<f64>> {
    if s.null() {
        return Some(None);
    }
    let text = if s.peek()? == b'"' {
        s.string()?
    } else {
        let digits = std::str::from_utf8(s.number()?).ok()?;
        digits.bytes().all(|b| b.is_ascii_digit()).then_some(())?;
        digits.parse::<u64>().ok()?;
        digits
    };
    Some(date_to_unix_seconds(text))
}

fn trade(s: &mut Scanner) -> Option<Brief> {
    let (mut seen, mut code, mut timestamp) = (0u64, None, None);
    let (mut price, mut volume, mut side) = (None, None, None);
    s.object(|s, key| {
        let n = match key {
            b"code" | b"cd" => 0,
            b"trade_price" | b"tp" => 1,
            b"trade_volume" | b"tv" => 2,
            b"ask_bid" | b"ab" => 3,
            b"prev_closing_price" | b"pcp" => 4,
            b"change" | b"c" => 5,
            b"change_price" | b"cp" => 6,
            b"trade_date" | b"td" => 7,
            b"trade_time" | b"ttm" => 8,
            b"trade_timestamp" | b"ttms" => 9,
            b"timestamp" | b"tms" => 10,
            b"sequential_id" | b"sid" => 11,
            b"best_ask_price" | b"bap" => 12,
            b"best_ask_size" | b"bas" => 13,
            b"best_bid_price" | b"bbp" => 14,
            b"best_bid_size" | b"bbs" => 15,
            b"stream_type" | b"st" => 16,
            _ => return s.skip(),
        };
        once(&mut seen, n)?;
        match n {
            0 => code = Some(s.string()?),
            1 => price = Some(s.f64()?),
            2 => volume = Some(s.f64()?),
            3 => side = Some([Side::Ask, Side::Bid][s.opt_word(&SIDE)??]),
            5 => drop(s.opt_word(&CHANGE)?),
            7 | 8 => drop(s.opt_bytes()?),
            9 | 11 => drop(s.opt_u64()?),
            10 => timestamp = s.opt_u64()?,
            16 => drop(s.opt_word(&STREAM)?),
            _ => s.opt_number()?,
        }
        Some(())
    })?;
    Some(Brief {
        data_type: DataType::Trade,
        code: MarketCode::new(code?),
        timestamp,
        values: Values::Trade(TradeValues {
            trade_price: price?,
            trade_volume: volume?,
            ask_bid: side?,
        }),
    })
}

fn orderbook(s: &mut Scanner) -> Option<Brief> {
    let (mut seen, mut code, mut timestamp) = (0u64, None, None);
    let (mut ask, mut bid, mut units) = (None, None, None);
    s.object(|s, key| {
        let n = match key {
            b"code" | b"cd" => 0,
            b"total_ask_size" | b"tas" => 1,
            b"total_bid_size" | b"tbs" => 2,
            b"orderbook_units" | b"obu" => 3,
            b"timestamp" | b"tms" => 4,
            b"level" | b"lv" => 5,
            b"stream_type" | b"st" => 6,
            _ => return s.skip(),
        };
        once(&mut seen, n)?;
        match n {
            0 => code = Some(s.string()?),
            1 => ask = Some(s.f64()?),
            2 => bid = Some(s.f64()?),
            3 => units = Some(book_units(s)?),
            4 => timestamp = s.opt_u64()?,
            6 => drop(s.opt_word(&STREAM)?),
            _ => s.opt_number()?,
        }
        Some(())
    })?;
    Some(Brief {
        data_type: DataType::Orderbook,
        code: MarketCode::new(code?),
        timestamp,
        values: Values::Orderbook(OrderbookValues {
            total_ask_size: ask?,
            total_bid_size: bid?,
            units: units?,
        }),
    })
}

fn book_units(s: &mut Scanner) -> Option<Vec<OrderbookUnit>> {
    s.eat(b'[')?;
    let mut units = Vec::with_capacity(16);
    if s.peek()? == b']' {
        s.i += 1;
        return Some(units);
    }
    loop {
        let at = s.i;
        let unit = match plain_unit(s) {
            Some(unit) => unit,
            None => {
                s.i = at;
                any_unit(s)?
            }
        };
        units.push(unit);
        match s.peek()? {
            b',' => s.i += 1,
            b']' => {
                s.i += 1;
                return Some(units);
            }
            _ => return None,
        }
    }
}

/// The unit keys as Upbit writes them, in its order, each with the byte before it: DEFAULT's and
/// SIMPLE's.
const UNIT_KEYS: [[&[u8]; 4]; 2] = [
    [
        b"{\"ask_price\":",
        b",\"bid_price\":",
        b",\"ask_size\":",
        b",\"bid_size\":",
    ],
    [b"{\"ap\":", b",\"bp\":", b",\"as\":", b",\"bs\":"],
];

/// A unit exactly as Upbit writes it: its four keys in Upbit's order, no space around them. Most
/// of a book's bytes are its units, so matching their keys as they come saves reading each one
/// as a string and looking it up. `None` for any other shape, which [`any_unit`] then reads.
#[inline(always)]
pub(super) fn plain_unit(s: &mut Scanner) -> Option<OrderbookUnit> {
    s.ws();
    let rest = &s.b[s.i..];
    let keys = UNIT_KEYS.iter().find(|keys| rest.starts_with(keys[0]))?;
    let mut unit = [0.0; 4];
    for (value, key) in unit.iter_mut().zip(keys) {
        if !s.b[s.i..].starts_with(key) {
            return None;
        }
        s.i += key.len();
        *value = s.f64()?;
    }
    s.eat(b'}')?;
    let [ask_price, bid_price, ask_size, bid_size] = unit;
    Some(OrderbookUnit {
        ask_price,
        bid_price,
        ask_size,
        bid_size,
    })
}

/// A unit in any order and spacing, with unknown keys skipped.
fn any_unit(s: &mut Scanner) -> Option<OrderbookUnit> {
    let mut seen = 0u64;
    let mut unit = [None; 4];
    s.object(|s, key| {
        let n = match key {
            b"ask_price" | b"ap" => 0,
            b"bid_price" | b"bp" => 1,
            b"ask_size" | b"as" => 2,
            b"bid_size" | b"bs" => 3,
            _ => return s.skip(),
        };
        once(&mut seen, n)?;
        unit[n as usize] = Some(s.f64()?);
        Some(())
    })?;
    let [ask_price, bid_price, ask_size, bid_size] = unit;
    Some(OrderbookUnit {
        ask_price: ask_price?,
        bid_price: bid_price?,
        ask_size: ask_size?,
        bid_size: bid_size?,
    })
}

fn candle(s: &mut Scanner, data_type: DataType) -> Option<Brief> {
    let (mut seen, mut code, mut timestamp) = (0u64, None, None);
    let mut prices = [None; 4];
    let (mut volume, mut start) = (None, None);
    s.object(|s, key| {
        let n = match key {
            b"code" | b"cd" => 0,
            b"candle_date_time_utc" | b"cdttmu" => 1,
            b"candle_date_time_kst" | b"cdttmk" => 2,
            b"opening_price" | b"op" => 3,
            b"high_price" | b"hp" => 4,
            b"low_price" | b"lp" => 5,
            b"trade_price" | b"tp" => 6,
            b"candle_acc_trade_volume" | b"catv" => 7,
            b"candle_acc_trade_price" | b"catp" => 8,
            b"timestamp" | b"tms" => 9,
            b"stream_type" | b"st" => 10,
            _ => return s.skip(),
        };
        once(&mut seen, n)?;
        match n {
            0 => code = Some(s.string()?),
            1 => start = s.opt_bytes()?.and_then(datetime_to_unix_seconds),
            2 => drop(s.opt_bytes()?),
            3..=6 => prices[n as usize - 3] = Some(s.f64()?),
            7 => volume = s.opt_f64()?,
            9 => timestamp = s.opt_u64()?,
            10 => drop(s.opt_word(&STREAM)?),
            _ => s.opt_number()?,
        }
        Some(())
    })?;
    let [open, high, low, close] = prices;
    Some(Brief {
        data_type,
        code: MarketCode::new(code?),
        timestamp,
        values: Values::Candle(CandleValues {
            opening_price: open?,
            high_price: high?,
            low_price: low?,
            trade_price: close?,
            candle_acc_trade_volume: volume,
            start,
        }),
    })
}
