//! Decode cost per message and throughput, for each message kind in DEFAULT and SIMPLE, beside
//! the floor: plain serde deserialisation of the same bytes into a minimal struct.
//!
//! `cargo bench --bench decode` prints time per frame and MB/s (criterion's `thrpt`).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::{Map, Value};
use std::hint::black_box;
use upbit_exporter::upbit::decode::decode_frame_brief_with;
use upbit_exporter::upbit::decode_frame_with;

const TICKER: &str = include_str!("../tests/fixtures/upbit/ticker_default_1.json");
const TRADE: &str = include_str!("../tests/fixtures/upbit/trade_default_1.json");
const ORDERBOOK: &str = include_str!("../tests/fixtures/upbit/orderbook_default_1.json");
const CANDLE: &str = include_str!("../tests/fixtures/upbit/candle_default_1.json");

/// DEFAULT → SIMPLE key table (PROTOCOL.md "Fields").
const SIMPLE_KEYS: &[(&str, &str)] = &[
    ("type", "ty"),
    ("code", "cd"),
    ("opening_price", "op"),
    ("high_price", "hp"),
    ("low_price", "lp"),
    ("trade_price", "tp"),
    ("prev_closing_price", "pcp"),
    ("change", "c"),
    ("change_price", "cp"),
    ("signed_change_price", "scp"),
    ("change_rate", "cr"),
    ("signed_change_rate", "scr"),
    ("trade_volume", "tv"),
    ("acc_trade_volume", "atv"),
    ("acc_trade_volume_24h", "atv24h"),
    ("acc_trade_price", "atp"),
    ("acc_trade_price_24h", "atp24h"),
    ("trade_time", "ttm"),
    ("trade_timestamp", "ttms"),
    ("ask_bid", "ab"),
    ("acc_ask_volume", "aav"),
    ("acc_bid_volume", "abv"),
    ("highest_52_week_price", "h52wp"),
    ("highest_52_week_date", "h52wdt"),
    ("lowest_52_week_price", "l52wp"),
    ("lowest_52_week_date", "l52wdt"),
    ("market_state", "ms"),
    ("is_trading_suspended", "its"),
    ("delisting_date", "dd"),
    ("market_warning", "mw"),
    ("timestamp", "tms"),
    ("stream_type", "st"),
    ("sequential_id", "sid"),
    ("best_ask_price", "bap"),
    ("best_ask_size", "bas"),
    ("best_bid_price", "bbp"),
    ("best_bid_size", "bbs"),
    ("total_ask_size", "tas"),
    ("total_bid_size", "tbs"),
    ("orderbook_units", "obu"),
    ("ask_price", "ap"),
    ("bid_price", "bp"),
    ("ask_size", "as"),
    ("bid_size", "bs"),
    ("level", "lv"),
    ("candle_date_time_utc", "cdttmu"),
    ("candle_date_time_kst", "cdttmk"),
    ("candle_acc_trade_volume", "catv"),
    ("candle_acc_trade_price", "catp"),
];

fn simple(value: &Value, is_ticker: bool) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let key = match (k.as_str(), is_ticker) {
                    ("trade_date", true) => "tdt",
                    ("trade_date", false) => "td",
                    (k, _) => SIMPLE_KEYS
                        .iter()
                        .find(|(d, _)| *d == k)
                        .map_or(k, |(_, s)| *s),
                };
                out.insert(key.to_owned(), simple(v, is_ticker));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| simple(v, is_ticker)).collect()),
        other => other.clone(),
    }
}

/// A DEFAULT orderbook whose units are a placeholder, filled by [`with_units`] once the rest is
/// written (a `Map` sorts keys, and Upbit writes a unit's in its own order).
fn orderbook() -> Value {
    let mut book: Value = serde_json::from_str(ORDERBOOK).unwrap();
    book["orderbook_units"] = Value::String("UNITS".into());
    book
}

/// `frame` with its units placeholder replaced by `units` copies of the doc sample's first
/// unit, keys in Upbit's order (live captures agree: ask price, bid price, ask size, bid size).
fn with_units(frame: Vec<u8>, units: usize, simple: bool) -> Vec<u8> {
    let unit = if simple {
        r#"{"ap":137002000,"bp":137001000,"as":0.10623869,"bs":0.03656812}"#
    } else {
        r#"{"ask_price":137002000,"bid_price":137001000,"ask_size":0.10623869,"bid_size":0.03656812}"#
    };
    let list = format!("[{}]", vec![unit; units].join(","));
    String::from_utf8(frame)
        .unwrap()
        .replace(r#""UNITS""#, &list)
        .into_bytes()
}

/// The object's JSON with its type key first, where Upbit puts it (a `Map` sorts its keys).
fn type_first(value: &Value, key: &str) -> Vec<u8> {
    let mut rest = value.clone();
    let data_type = rest.as_object_mut().unwrap().remove(key).unwrap();
    let rest = serde_json::to_string(&rest).unwrap();
    format!("{{\"{key}\":{data_type},{}", &rest[1..]).into_bytes()
}

fn frames() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let kinds: Vec<(&str, Value, bool)> = vec![
        ("ticker", serde_json::from_str(TICKER).unwrap(), true),
        ("trade", serde_json::from_str(TRADE).unwrap(), false),
        ("orderbook15", orderbook(), false),
        ("orderbook30", orderbook(), false),
        ("candle", serde_json::from_str(CANDLE).unwrap(), false),
    ];
    for (name, value, is_ticker) in kinds {
        let units: usize = name.trim_start_matches("orderbook").parse().unwrap_or(0);
        out.push((
            format!("{name}/DEFAULT"),
            with_units(type_first(&value, "type"), units, false),
        ));
        out.push((
            format!("{name}/SIMPLE"),
            with_units(type_first(&simple(&value, is_ticker), "ty"), units, true),
        ));
    }
    out
}

/// The floor: the least a client can do with a ticker frame.
#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct FloorTicker {
    #[serde(alias = "cd")]
    code: String,
    #[serde(alias = "tp")]
    trade_price: f64,
    #[serde(alias = "tms")]
    timestamp: u64,
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for (name, frame) in frames() {
        group.throughput(Throughput::Bytes(frame.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(&name), &frame, |b, frame| {
            b.iter(|| {
                let mut n = 0usize;
                decode_frame_with(black_box(frame), |m| n += usize::from(m.is_ok()));
                assert_eq!(n, 1);
            })
        });
    }
    group.finish();

    // The hot path's decode: what the metrics need, borrowed, every other field checked.
    let mut brief = c.benchmark_group("brief");
    for (name, frame) in frames() {
        let data_type = name
            .split(['/', '1', '3'])
            .next()
            .unwrap()
            .replace("candle", "candle.1s")
            .parse()
            .unwrap();
        assert!(
            upbit_exporter::upbit::brief::Brief::read(data_type, &frame).is_some(),
            "{name} takes the fast path: {}",
            String::from_utf8_lossy(&frame)
        );
        brief.throughput(Throughput::Bytes(frame.len() as u64));
        brief.bench_with_input(BenchmarkId::from_parameter(&name), &frame, |b, frame| {
            b.iter(|| {
                let mut n = 0usize;
                decode_frame_brief_with(
                    black_box(frame),
                    |_| false,
                    |m| n += usize::from(m.is_ok()),
                    |_| {},
                );
                assert_eq!(n, 1);
            })
        });
    }
    brief.finish();

    let mut floor = c.benchmark_group("floor");
    for (name, frame) in frames()
        .into_iter()
        .filter(|(n, _)| n.starts_with("ticker"))
    {
        floor.throughput(Throughput::Bytes(frame.len() as u64));
        floor.bench_with_input(BenchmarkId::from_parameter(&name), &frame, |b, frame| {
            b.iter(|| serde_json::from_slice::<FloorTicker>(black_box(frame)).unwrap())
        });
    }
    floor.finish();
}

/// The e2e bench's orderbooks: the simulator's firehose frames (65 books over five markets,
/// prices and sizes as it draws them), decoded in turn so the branches see varied numbers, as
/// the service does, rather than one book over and over.
fn simulated_books(c: &mut Criterion) {
    use upbit_exporter::simulator::{encode, market::Markets};
    use upbit_exporter::upbit::types::StreamType;
    let mut group = c.benchmark_group("brief_sim");
    for simple in [false, true] {
        let mut markets = Markets::new(7);
        let books: Vec<Vec<u8>> = (0..13)
            .flat_map(|_| ["KRW-BTC", "KRW-ETH", "KRW-XRP", "KRW-SOL", "KRW-DOGE"])
            .map(|code| {
                let m = markets.get(code);
                encode::orderbook(m, code, 15, 0.0, 1, StreamType::Realtime, simple).into_bytes()
            })
            .collect();
        let bytes: usize = books.iter().map(Vec::len).sum();
        group.throughput(Throughput::Bytes(bytes as u64));
        let name = if simple {
            "orderbook/SIMPLE"
        } else {
            "orderbook/DEFAULT"
        };
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut n = 0usize;
                for book in &books {
                    decode_frame_brief_with(
                        black_box(book),
                        |_| false,
                        |m| n += usize::from(m.is_ok()),
                        |_| {},
                    );
                }
                assert_eq!(n, books.len());
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decode, simulated_books);
criterion_main!(benches);
