//! Writes market messages as Upbit does, in DEFAULT (full names) or SIMPLE (abbreviated keys).
//! Prices are written sometimes as integers (`100473000`) and sometimes as floats
//! (`100473000.0`), as Upbit's own messages are.

use std::fmt::Write;

use super::market::{MarketState, TradeEvent};
use super::request::TypeRequest;
use crate::upbit::types::StreamType;
use crate::upbit::{CandleInterval, DataType, Format};

/// A JSON object writer choosing DEFAULT or SIMPLE keys.
struct Obj {
    out: String,
    simple: bool,
}

impl Obj {
    fn new(simple: bool) -> Self {
        Self {
            out: String::with_capacity(512),
            simple,
        }
    }

    fn key(&mut self, long: &str, short: &str) {
        self.out.push(if self.out.is_empty() { '{' } else { ',' });
        let _ = write!(self.out, "\"{}\":", if self.simple { short } else { long });
    }

    fn str(&mut self, long: &str, short: &str, value: &str) -> &mut Self {
        self.key(long, short);
        let _ = write!(self.out, "\"{value}\"");
        self
    }

    /// A number in its shortest form: whole values print as integers.
    fn num(&mut self, long: &str, short: &str, value: f64) -> &mut Self {
        self.key(long, short);
        let _ = write!(self.out, "{value}");
        self
    }

    /// A number always with a fraction or exponent (`100473000.0`, `1.13e-6`).
    fn float(&mut self, long: &str, short: &str, value: f64) -> &mut Self {
        self.key(long, short);
        let _ = write!(self.out, "{value:?}");
        self
    }

    fn int(&mut self, long: &str, short: &str, value: u64) -> &mut Self {
        self.key(long, short);
        let _ = write!(self.out, "{value}");
        self
    }

    fn bool(&mut self, long: &str, short: &str, value: bool) -> &mut Self {
        self.key(long, short);
        self.out.push_str(if value { "true" } else { "false" });
        self
    }

    fn null(&mut self, long: &str, short: &str) -> &mut Self {
        self.key(long, short);
        self.out.push_str("null");
        self
    }

    fn raw(&mut self, long: &str, short: &str, json: &str) -> &mut Self {
        self.key(long, short);
        self.out.push_str(json);
        self
    }

    fn finish(mut self) -> String {
        if self.out.is_empty() {
            self.out.push('{');
        }
        self.out.push('}');
        self.out
    }
}

/// `yyyy-MM-dd`, `HH:mm:ss` (UTC) of a unix time in milliseconds.
fn date_time(ms: u64) -> ((u64, u64, u64), (u64, u64, u64)) {
    let secs = ms / 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm), for dates after 1970.
    let z = days as i64 + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        (year as u64, month as u64, day as u64),
        (rem / 3600, rem % 3600 / 60, rem % 60),
    )
}

/// A ticker for `market` as of its last trade.
/// `legacy` adds the fields Upbit marks deprecated (`is_trading_suspended`, `market_warning`).
pub fn ticker(
    m: &mut MarketState,
    now_ms: u64,
    stream: StreamType,
    simple: bool,
    legacy: bool,
) -> String {
    let last = m.last_trade(now_ms);
    let (change, diff, rate) = m.change();
    let ((y, mo, d), (h, mi, s)) = date_time(last.timestamp_ms);
    let mut o = Obj::new(simple);
    o.str("type", "ty", "ticker")
        .str("code", "cd", &m.code)
        .num("opening_price", "op", m.open)
        .num("high_price", "hp", m.high)
        .num("low_price", "lp", m.low)
        .num("trade_price", "tp", m.price)
        .float("prev_closing_price", "pcp", m.prev_close)
        .str("change", "c", change.as_str())
        .float("change_price", "cp", diff.abs())
        .float("signed_change_price", "scp", diff)
        .num("change_rate", "cr", rate.abs())
        .num("signed_change_rate", "scr", rate)
        .num("trade_volume", "tv", last.volume)
        .num("acc_trade_volume", "atv", m.acc_volume)
        .num("acc_trade_volume_24h", "atv24h", m.acc_volume)
        .num("acc_trade_price", "atp", m.acc_value)
        .num("acc_trade_price_24h", "atp24h", m.acc_value)
        .str("trade_date", "tdt", &format!("{y:04}{mo:02}{d:02}"))
        .str("trade_time", "ttm", &format!("{h:02}{mi:02}{s:02}"))
        .int("trade_timestamp", "ttms", last.timestamp_ms)
        .str("ask_bid", "ab", last.side.as_str())
        .num("acc_ask_volume", "aav", m.acc_ask_volume)
        .num("acc_bid_volume", "abv", m.acc_bid_volume)
        .float("highest_52_week_price", "h52wp", m.high * 1.5)
        .str("highest_52_week_date", "h52wdt", "2025-03-28")
        .float("lowest_52_week_price", "l52wp", m.low * 0.5)
        .str("lowest_52_week_date", "l52wdt", "2024-12-30")
        .str("market_state", "ms", "ACTIVE");
    if legacy {
        o.bool("is_trading_suspended", "its", false);
    }
    o.null("delisting_date", "dd");
    if legacy {
        o.str(
            "market_warning",
            "mw",
            if m.warning { "CAUTION" } else { "NONE" },
        );
    }
    o.int("timestamp", "tms", now_ms)
        .str("stream_type", "st", stream.as_str());
    o.finish()
}

/// The answer to LIST_SUBSCRIPTIONS in `format`: DEFAULT keys `method`, `result` (`type`,
/// `codes`, `level`), `ticket`; SIMPLE keys `mthd`, `rslt` (`ty`, `cds`, `lv`), `tckt`; the list
/// formats wrap it in an array.
pub fn subscription_list(ticket: &str, types: &[TypeRequest], format: Format) -> String {
    let simple = format.is_simple();
    let key = |long: &'static str, short: &'static str| if simple { short } else { long };
    let result: Vec<serde_json::Value> = types
        .iter()
        .map(|t| {
            let mut entry = serde_json::Map::new();
            entry.insert(key("type", "ty").into(), t.data_type.as_str().into());
            entry.insert(key("codes", "cds").into(), t.codes.clone().into());
            if t.data_type == DataType::Orderbook {
                entry.insert(key("level", "lv").into(), serde_json::json!(t.level));
            }
            serde_json::Value::Object(entry)
        })
        .collect();
    let mut reply = serde_json::Map::new();
    reply.insert(key("method", "mthd").into(), "LIST_SUBSCRIPTIONS".into());
    reply.insert(key("result", "rslt").into(), result.into());
    reply.insert(key("ticket", "tckt").into(), ticket.into());
    let reply = serde_json::Value::Object(reply);
    if format.is_list() {
        serde_json::Value::Array(vec![reply]).to_string()
    } else {
        reply.to_string()
    }
}

/// One trade.
pub fn trade(
    m: &mut MarketState,
    t: &TradeEvent,
    now_ms: u64,
    stream: StreamType,
    simple: bool,
) -> String {
    let (change, diff, _) = m.change();
    let ((y, mo, d), (h, mi, s)) = date_time(t.timestamp_ms);
    let tick = m.tick();
    let mut o = Obj::new(simple);
    o.str("type", "ty", "trade")
        .str("code", "cd", &m.code)
        .int("timestamp", "tms", now_ms)
        .str("trade_date", "td", &format!("{y:04}-{mo:02}-{d:02}"))
        .str("trade_time", "ttm", &format!("{h:02}:{mi:02}:{s:02}"))
        .int("trade_timestamp", "ttms", t.timestamp_ms)
        .float("trade_price", "tp", t.price)
        .num("trade_volume", "tv", t.volume)
        .str("ask_bid", "ab", t.side.as_str())
        .float("prev_closing_price", "pcp", m.prev_close)
        .str("change", "c", change.as_str())
        .float("change_price", "cp", diff.abs())
        .int("sequential_id", "sid", t.sequential_id)
        .num(
            "best_ask_price",
            "bap",
            ((t.price + tick) * 1e8).round() / 1e8,
        )
        .num("best_ask_size", "bas", 0.5)
        .num("best_bid_price", "bbp", t.price)
        .num("best_bid_size", "bbs", 0.25)
        .str("stream_type", "st", stream.as_str());
    o.finish()
}

/// A top-`units` orderbook; totals are the sums of the units sent.
pub fn orderbook(
    m: &mut MarketState,
    code: &str,
    units: usize,
    level: f64,
    now_ms: u64,
    stream: StreamType,
    simple: bool,
) -> String {
    let book = m.orderbook_grouped(units, level);
    let mut list = String::with_capacity(units * 80);
    let (mut total_ask, mut total_bid) = (0.0, 0.0);
    for (i, [ask, bid, ask_size, bid_size]) in book.iter().enumerate() {
        total_ask += ask_size;
        total_bid += bid_size;
        let mut unit = Obj::new(simple);
        unit.num("ask_price", "ap", *ask)
            .num("bid_price", "bp", *bid)
            .num("ask_size", "as", *ask_size)
            .num("bid_size", "bs", *bid_size);
        list.push(if i == 0 { '[' } else { ',' });
        list.push_str(&unit.finish());
    }
    if list.is_empty() {
        list.push('[');
    }
    list.push(']');
    let mut o = Obj::new(simple);
    o.str("type", "ty", "orderbook")
        .str("code", "cd", code)
        .int("timestamp", "tms", now_ms)
        .num("total_ask_size", "tas", (total_ask * 1e8_f64).round() / 1e8)
        .num("total_bid_size", "tbs", (total_bid * 1e8_f64).round() / 1e8)
        .raw("orderbook_units", "obu", &list)
        .str("stream_type", "st", stream.as_str())
        .num("level", "lv", level);
    o.finish()
}

/// The candle of `interval` in progress.
pub fn candle(
    m: &mut MarketState,
    interval: CandleInterval,
    now_ms: u64,
    stream: StreamType,
    simple: bool,
) -> String {
    let c = m.candle(interval, now_ms);
    let ((y, mo, d), (h, mi, s)) = date_time(c.start_ms);
    let kst_ms = c.start_ms + 9 * 3_600_000;
    let ((ky, kmo, kd), (kh, kmi, ks)) = date_time(kst_ms);
    let mut o = Obj::new(simple);
    o.str("type", "ty", DataType::Candle(interval).as_str())
        .str("code", "cd", &m.code)
        .str(
            "candle_date_time_utc",
            "cdttmu",
            &format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}"),
        )
        .str(
            "candle_date_time_kst",
            "cdttmk",
            &format!("{ky:04}-{kmo:02}-{kd:02}T{kh:02}:{kmi:02}:{ks:02}"),
        )
        .float("opening_price", "op", c.open)
        .float("high_price", "hp", c.high)
        .float("low_price", "lp", c.low)
        .float("trade_price", "tp", c.close)
        .num("candle_acc_trade_volume", "catv", c.volume)
        .num("candle_acc_trade_price", "catp", c.value)
        .int("timestamp", "tms", now_ms)
        .str("stream_type", "st", stream.as_str());
    o.finish()
}

#[cfg(test)]
mod tests {
    use super::super::market::Markets;
    use super::*;
    use crate::upbit::{decode_frame, Message};

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(date_time(1_730_336_862_047), ((2024, 10, 31), (1, 7, 42)));
        assert_eq!(date_time(1_676_965_262_139), ((2023, 2, 21), (7, 41, 2)));
    }

    #[test]
    fn each_kind_decodes_back_in_both_key_styles() {
        let mut markets = Markets::new(1);
        let m = markets.get("KRW-BTC");
        let now = 1_730_336_862_082;
        let t = m.trade(now);
        for simple in [false, true] {
            let frames = [
                ticker(m, now, StreamType::Snapshot, simple, true),
                trade(m, &t, now, StreamType::Realtime, simple),
                orderbook(m, "KRW-BTC.15", 15, 0.0, now, StreamType::Realtime, simple),
                candle(m, CandleInterval::M1, now, StreamType::Realtime, simple),
            ];
            assert_eq!(frames[0].contains("\"tdt\""), simple);
            assert_eq!(frames[1].contains("\"td\""), simple);
            assert_eq!(frames[1].contains("\"trade_date\""), !simple);
            for frame in &frames {
                let decoded = decode_frame(frame.as_bytes());
                assert!(
                    matches!(decoded.as_slice(), [Ok(_)]),
                    "{frame}: {decoded:?}"
                );
            }
            let Ok(Message::Orderbook(book)) = decode_frame(frames[2].as_bytes()).remove(0) else {
                panic!()
            };
            let sum: f64 = book.orderbook_units.iter().map(|u| u.ask_size).sum();
            assert!((sum - book.total_ask_size).abs() < 1e-6);
            assert_eq!(book.orderbook_units.len(), 15);
            let Ok(Message::Trade(decoded)) = decode_frame(frames[1].as_bytes()).remove(0) else {
                panic!()
            };
            assert_eq!(
                (decoded.trade_price, decoded.sequential_id),
                (t.price, Some(t.sequential_id))
            );
        }
    }
}
