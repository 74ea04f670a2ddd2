//! Every real Upbit sample in tests/fixtures/upbit decoded to exact expected values.

// Literals are copied from the wire text on purpose, trailing digits included.
#![allow(clippy::excessive_precision)]

use super::decode::{decode_frame, DecodeError};
use super::model::*;
use super::types::{CandleInterval, Change, Side, StreamType};

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!("../../tests/fixtures/upbit/", $name))
    };
}

fn one(payload: &[u8]) -> Message {
    let mut all = decode_frame(payload);
    assert_eq!(all.len(), 1, "one message per frame");
    all.remove(0).expect("decodes")
}

fn many(payload: &[u8]) -> Vec<Message> {
    decode_frame(payload)
        .into_iter()
        .map(|m| m.expect("decodes"))
        .collect()
}

#[test]
fn ticker_default() {
    let Message::Ticker(t) = one(fixture!("ticker_default_1.json")) else {
        panic!("not a ticker")
    };
    assert_eq!(
        t,
        Ticker {
            code: "KRW-BTC".into(),
            opening_price: Some(31883000.0),
            high_price: Some(32310000.0),
            low_price: Some(31855000.0),
            trade_price: 32287000.0,
            prev_closing_price: Some(31883000.0),
            change: Some(Change::Rise),
            change_price: Some(404000.0),
            signed_change_price: Some(404000.0),
            change_rate: Some(0.0126713295),
            signed_change_rate: Some(0.0126713295),
            trade_volume: Some(0.03103806),
            acc_trade_volume: Some(2429.58834336),
            acc_trade_volume_24h: Some(7158.80283560),
            acc_trade_price: Some(78039261076.51241000),
            acc_trade_price_24h: Some(228827082483.70729000),
            trade_date: Some("20230221".into()),
            trade_time: Some("074102".into()),
            trade_timestamp: Some(1676965262139),
            ask_bid: Some(Side::Ask),
            acc_ask_volume: Some(1146.25573608),
            acc_bid_volume: Some(1283.33260728),
            highest_52_week_price: Some(57678000.0),
            highest_52_week_date: Some("2022-03-28".into()),
            lowest_52_week_price: Some(20700000.0),
            lowest_52_week_date: Some("2022-12-30".into()),
            market_state: Some("ACTIVE".into()),
            is_trading_suspended: Some(false),
            delisting_date: None,
            market_warning: Some("NONE".into()),
            timestamp: Some(1676965262177),
            stream_type: Some(StreamType::Realtime),
        }
    );
}

fn expected_trade_1() -> Trade {
    Trade {
        code: "KRW-BTC".into(),
        trade_price: 100473000.0,
        trade_volume: 0.00014208,
        ask_bid: Side::Bid,
        prev_closing_price: Some(100571000.0),
        change: Some(Change::Fall),
        change_price: Some(98000.0),
        trade_date: Some("2024-10-31".into()),
        trade_time: Some("01:07:42".into()),
        trade_timestamp: Some(1730336862047),
        timestamp: Some(1730336862082),
        sequential_id: Some(17303368620470000),
        best_ask_price: Some(100473000.0),
        best_ask_size: Some(0.43139478),
        best_bid_price: Some(100465000.0),
        best_bid_size: Some(0.01990656),
        stream_type: Some(StreamType::Snapshot),
    }
}

#[test]
fn trade_default_keeps_sequential_id_above_2_pow_53() {
    assert_eq!(
        one(fixture!("trade_default_1.json")),
        Message::Trade(expected_trade_1())
    );
    let Message::Trade(t) = one(fixture!("trade_default_2.json")) else {
        panic!()
    };
    assert_eq!(t.sequential_id, Some(17303368620800006));
    assert!(t.sequential_id.unwrap() > 1 << 53);
    assert_eq!(
        (t.code.as_str(), t.trade_price, t.change),
        ("KRW-ETH", 3700000.0, Some(Change::Rise))
    );
}

#[test]
fn trade_json_list_decodes_each_element() {
    let all = many(fixture!("trade_json_list_1.json"));
    assert_eq!(all.len(), 2);
    assert_eq!(all[0], Message::Trade(expected_trade_1()));
    assert_eq!(all[1].code(), Some("KRW-ETH"));
}

#[test]
fn trade_simple_2021_capture() {
    let Message::Trade(t) = one(fixture!("trade_simple_1.json")) else {
        panic!()
    };
    assert_eq!(
        t,
        Trade {
            code: "KRW-LAMB".into(),
            trade_price: 127.0,
            trade_volume: 46.48838371,
            ask_bid: Side::Bid,
            prev_closing_price: Some(123.0),
            change: Some(Change::Rise),
            change_price: Some(4.0),
            trade_date: Some("2021-04-17".into()),
            trade_time: Some("16:51:02".into()),
            trade_timestamp: Some(1618678262000),
            timestamp: Some(1618678262712),
            sequential_id: Some(1618678262000003),
            best_ask_price: None,
            best_ask_size: None,
            best_bid_price: None,
            best_bid_size: None,
            stream_type: Some(StreamType::Realtime),
        }
    );
    let Message::Trade(t) = one(fixture!("trade_simple_2.json")) else {
        panic!()
    };
    assert_eq!(
        (t.code.as_str(), t.trade_price, t.ask_bid),
        ("BTC-ITAM", 0.00000113, Side::Ask)
    );
    assert_eq!(t.change_price, Some(6e-8), "exponent notation");
    assert_eq!(t.sequential_id, Some(16186782720000000));
}

#[test]
fn orderbook_default_with_level() {
    let Message::Orderbook(o) = one(fixture!("orderbook_default_1.json")) else {
        panic!()
    };
    assert_eq!(o.code, "KRW-BTC");
    assert_eq!(
        (o.total_ask_size, o.total_bid_size),
        (4.79158413, 2.65609625)
    );
    assert_eq!(o.orderbook_units.len(), 3);
    assert_eq!(
        o.best(),
        Some(&OrderbookUnit {
            ask_price: 137002000.0,
            bid_price: 137001000.0,
            ask_size: 0.10623869,
            bid_size: 0.03656812
        })
    );
    assert_eq!(o.orderbook_units[2].ask_size, 0.0055433);
    assert_eq!(
        (o.timestamp, o.level, o.stream_type),
        (Some(1746601573804), Some(0.0), Some(StreamType::Snapshot))
    );
}

#[test]
fn orderbook_simple_2021_captures_have_15_units_and_no_level() {
    let Message::Orderbook(o) = one(fixture!("orderbook_simple_1.json")) else {
        panic!()
    };
    assert_eq!(
        (o.code.as_str(), o.orderbook_units.len(), o.level),
        ("KRW-LAMB", 15, None)
    );
    assert_eq!(o.best().unwrap().ask_price, 127.0);
    assert_eq!(o.orderbook_units[14].bid_size, 446759.1304656);
    assert_eq!(o.total_ask_size, 25752275.55420627);
    let Message::Orderbook(o) = one(fixture!("orderbook_simple_2.json")) else {
        panic!()
    };
    assert_eq!(
        (o.code.as_str(), o.best().unwrap().bid_price),
        ("BTC-XTZ", 0.00011802)
    );
}

#[test]
fn orderbook_simple_list_without_stream_type() {
    let all = many(fixture!("orderbook_simple_list_1.json"));
    let [Message::Orderbook(o)] = all.as_slice() else {
        panic!("{all:?}")
    };
    assert_eq!(
        (o.code.as_str(), o.level, o.stream_type, o.timestamp),
        ("KRW-BTC", Some(10000.0), None, Some(1751855921432))
    );
    assert_eq!(o.best().unwrap().ask_price, 148880000.0);
}

#[test]
fn candles_default_and_simple_list_with_missing_optional_fields() {
    let Message::Candle(c) = one(fixture!("candle_default_1.json")) else {
        panic!()
    };
    assert_eq!(
        c,
        Candle {
            interval: CandleInterval::S1,
            code: "KRW-BTC".into(),
            candle_date_time_utc: Some("2025-01-02T04:28:05".into()),
            candle_date_time_kst: Some("2025-01-02T13:28:05".into()),
            opening_price: 142009000.0,
            high_price: 142009000.0,
            low_price: 142009000.0,
            trade_price: 142009000.0,
            candle_acc_trade_volume: Some(0.00606119),
            candle_acc_trade_price: Some(860743.53071),
            timestamp: Some(1735792085824),
            stream_type: Some(StreamType::Realtime),
        }
    );
    assert_eq!(
        one(fixture!("candle_default_2.json")).code(),
        Some("KRW-ETH")
    );
    let all = many(fixture!("candle_simple_list_1.json"));
    assert_eq!(all.len(), 2);
    let Message::Candle(second) = &all[1] else {
        panic!()
    };
    assert_eq!(
        (second.code.as_str(), second.trade_price),
        ("KRW-ETH", 3515000.0)
    );
    assert_eq!(
        (second.candle_acc_trade_price, second.timestamp),
        (None, None)
    );
    assert_eq!(second.stream_type, Some(StreamType::Snapshot));
}

#[test]
fn status_and_error_frames() {
    assert_eq!(
        one(fixture!("status_up_1.json")),
        Message::Status(Status {
            status: "UP".into()
        })
    );
    for (payload, name) in [
        (
            &fixture!("error_invalid_auth_global_1.json")[..],
            "INVALID_AUTH",
        ),
        (fixture!("error_invalid_auth_kr_1.json"), "INVALID_AUTH"),
        (
            fixture!("error_invalid_param_global_1.json"),
            "INVALID_PARAM",
        ),
        (
            fixture!("error_invalid_param_global_2_template.json"),
            "INVALID_PARAM",
        ),
        (
            fixture!("error_invalid_param_global_3_template.json"),
            "INVALID_PARAM",
        ),
        (fixture!("error_no_codes_global_1.json"), "NO_CODES"),
        (fixture!("error_no_ticket_global_1.json"), "NO_TICKET"),
        (fixture!("error_no_type_global_1.json"), "NO_TYPE"),
        (fixture!("error_wrong_format_global_1.json"), "WRONG_FORMAT"),
    ] {
        let Message::Error(e) = one(payload) else {
            panic!("{name}")
        };
        assert_eq!(e.name, name);
        assert!(e.message.is_some());
    }
}

#[test]
fn list_subscriptions_reply() {
    let reply = br#"{"method":"LIST_SUBSCRIPTIONS","result":[{"type":"ticker","codes":["KRW-BTC","KRW-ETH"]},{"type":"orderbook","codes":["KRW-BTC.15"],"level":0}],"ticket":"abc"}"#;
    let Message::Subscriptions(list) = one(reply) else {
        panic!()
    };
    assert_eq!(list.ticket.as_deref(), Some("abc"));
    assert_eq!(list.result.len(), 2);
    assert_eq!(
        list.result[1],
        ListedSubscription {
            data_type: "orderbook".into(),
            codes: vec!["KRW-BTC.15".into()],
            level: Some(0.0),
        }
    );
}

#[test]
fn list_subscriptions_reply_in_simple_keys_and_in_a_list_frame() {
    let simple = br#"{"mthd":"LIST_SUBSCRIPTIONS","rslt":[{"ty":"ticker","cds":["KRW-BTC"]},{"ty":"orderbook","cds":["KRW-BTC.5"],"lv":10000}],"tckt":"t-1"}"#;
    let listed = |payload: &[u8]| {
        let messages = decode_frame(payload);
        assert_eq!(messages.len(), 1, "{messages:?}");
        match messages.into_iter().next() {
            Some(Ok(Message::Subscriptions(list))) => list,
            other => panic!("{other:?}"),
        }
    };
    let list = listed(simple);
    assert_eq!(list.ticket.as_deref(), Some("t-1"));
    assert_eq!(list.result[0].data_type, "ticker");
    assert_eq!(list.result[0].codes, ["KRW-BTC"]);
    assert_eq!(list.result[1].level, Some(10000.0));
    let mut wrapped = b"[".to_vec();
    wrapped.extend_from_slice(simple);
    wrapped.push(b']');
    assert_eq!(listed(&wrapped), list);
    let default_list = br#"[{"method":"LIST_SUBSCRIPTIONS","result":[{"type":"ticker","codes":["KRW-BTC"]}],"ticket":"t-1"}]"#;
    assert_eq!(listed(default_list).result[0].codes, ["KRW-BTC"]);
}

#[test]
fn type_found_when_not_the_first_key() {
    let payload =
        br#"{"code":"KRW-BTC","trade_price":1,"type":"ticker","future_field":{"x":[1,2]}}"#;
    let Message::Ticker(t) = one(payload) else {
        panic!()
    };
    assert_eq!((t.code.as_str(), t.trade_price), ("KRW-BTC", 1.0));
}

#[test]
fn each_failure_has_its_reason_code() {
    let cases: [(&[u8], &str); 9] = [
        (b"{not json", "invalid_json"),
        (b"", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (b"42", "not_an_object"),
        (b"[1]", "not_an_object"),
        (br#"{"code":"KRW-BTC"}"#, "missing_type"),
        (br#"{"type":"mystery","code":"KRW-BTC"}"#, "unknown_type"),
        (br#"{"type":"ticker","code":"KRW-BTC"}"#, "missing_field"),
        (br#"{"type":"trade","code":"KRW-BTC","trade_price":"1","trade_volume":1,"ask_bid":"BID"}"#, "invalid_value"),
    ];
    for (payload, code) in cases {
        let results = decode_frame(payload);
        let errors: Vec<&str> = results
            .iter()
            .map(|r| r.as_ref().unwrap_err().code())
            .collect();
        assert_eq!(errors, [code], "{}", String::from_utf8_lossy(payload));
        assert!(DecodeError::CODES.contains(&code));
    }
}

#[test]
fn a_bad_list_element_leaves_its_neighbours() {
    let frame = br#"[{"ty":"trade","cd":"KRW-A","tp":1,"tv":1,"ab":"ASK"},{"ty":"trade"},7,{"ty":"trade","cd":"KRW-B","tp":2,"tv":1,"ab":"BID"}]"#;
    let results = decode_frame(frame);
    let codes: Vec<Result<Option<&str>, &str>> = results
        .iter()
        .map(|r| r.as_ref().map(|m| m.code()).map_err(|e| e.code()))
        .collect();
    assert_eq!(
        codes,
        [
            Ok(Some("KRW-A")),
            Err("missing_field"),
            Err("not_an_object"),
            Ok(Some("KRW-B"))
        ]
    );
}

mod properties {
    use proptest::prelude::*;

    use super::super::decode::decode_frame;

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_frame(&bytes);
        }

        #[test]
        fn never_panics_on_mutated_real_frames(
            pick in 0usize..4,
            cut in 0usize..1200,
            flip in 0usize..1200,
            byte in any::<u8>(),
        ) {
            let frames: [&[u8]; 4] = [
                include_bytes!("../../tests/fixtures/upbit/ticker_default_1.json"),
                include_bytes!("../../tests/fixtures/upbit/trade_json_list_1.json"),
                include_bytes!("../../tests/fixtures/upbit/orderbook_simple_1.json"),
                include_bytes!("../../tests/fixtures/upbit/candle_simple_list_1.json"),
            ];
            let mut frame = frames[pick].to_vec();
            if !frame.is_empty() {
                let at = flip % frame.len();
                frame[at] = byte;
                frame.truncate(cut.max(1).min(frame.len()));
            }
            let _ = decode_frame(&frame);
        }

        #[test]
        fn trade_fields_round_trip(price in 0.0f64..1e12, volume in 0.0f64..1e6, sid in any::<u64>(), simple in any::<bool>()) {
            let frame = if simple {
                format!(r#"{{"ty":"trade","cd":"KRW-BTC","tp":{price},"tv":{volume},"ab":"ASK","sid":{sid}}}"#)
            } else {
                format!(r#"{{"type":"trade","code":"KRW-BTC","trade_price":{price},"trade_volume":{volume},"ask_bid":"ASK","sequential_id":{sid}}}"#)
            };
            let results = decode_frame(frame.as_bytes());
            let Some(Ok(super::super::model::Message::Trade(t))) = results.into_iter().next() else {
                panic!("did not decode {frame}")
            };
            prop_assert_eq!(t.trade_price, price);
            prop_assert_eq!(t.trade_volume, volume);
            prop_assert_eq!(t.sequential_id, Some(sid));
        }
    }
}

mod lenient_fields {
    use super::super::decode::decode_frame_lenient_with;
    use super::*;

    const TEXT: [&str; 13] = [
        "trade_date",
        "trade_time",
        "highest_52_week_date",
        "lowest_52_week_date",
        "market_state",
        "delisting_date",
        "market_warning",
        "candle_date_time_utc",
        "candle_date_time_kst",
        "change",
        "ask_bid",
        "stream_type",
        "is_trading_suspended",
    ];

    /// Decodes one message, returning it and the names of the fields skipped.
    fn decode(payload: &str) -> (Result<Message, String>, Vec<String>) {
        let mut messages = Vec::new();
        let mut skipped = Vec::new();
        decode_frame_lenient_with(
            payload.as_bytes(),
            |m| messages.push(m.map_err(|e| e.code().to_owned())),
            |field| skipped.push(field.to_owned()),
        );
        assert_eq!(messages.len(), 1);
        (messages.pop().unwrap(), skipped)
    }

    /// Every optional field of every wire type, given an object, an array, or a scalar of the
    /// wrong kind: the message decodes as if the field were absent and the field is reported.
    #[test]
    fn every_optional_field_accepts_any_json_value() {
        let cases: [(&str, &[&str]); 4] = [
            (
                r#"{"type":"ticker","code":"KRW-BTC","trade_price":1"#,
                &[
                    "opening_price",
                    "high_price",
                    "low_price",
                    "prev_closing_price",
                    "change",
                    "change_price",
                    "signed_change_price",
                    "change_rate",
                    "signed_change_rate",
                    "trade_volume",
                    "acc_trade_volume",
                    "acc_trade_volume_24h",
                    "acc_trade_price",
                    "acc_trade_price_24h",
                    "trade_date",
                    "trade_time",
                    "trade_timestamp",
                    "ask_bid",
                    "acc_ask_volume",
                    "acc_bid_volume",
                    "highest_52_week_price",
                    "highest_52_week_date",
                    "lowest_52_week_price",
                    "lowest_52_week_date",
                    "market_state",
                    "is_trading_suspended",
                    "delisting_date",
                    "market_warning",
                    "timestamp",
                    "stream_type",
                ],
            ),
            (
                r#"{"type":"trade","code":"KRW-BTC","trade_price":1,"trade_volume":1,"ask_bid":"BID""#,
                &[
                    "prev_closing_price",
                    "change",
                    "change_price",
                    "trade_date",
                    "trade_time",
                    "trade_timestamp",
                    "timestamp",
                    "sequential_id",
                    "best_ask_price",
                    "best_ask_size",
                    "best_bid_price",
                    "best_bid_size",
                    "stream_type",
                ],
            ),
            (
                r#"{"type":"orderbook","code":"KRW-BTC","total_ask_size":1,"total_bid_size":1,"orderbook_units":[]"#,
                &["timestamp", "level", "stream_type"],
            ),
            (
                r#"{"type":"candle.1m","code":"KRW-BTC","opening_price":1,"high_price":1,"low_price":1,"trade_price":1"#,
                &[
                    "candle_date_time_utc",
                    "candle_date_time_kst",
                    "candle_acc_trade_volume",
                    "candle_acc_trade_price",
                    "timestamp",
                    "stream_type",
                ],
            ),
        ];
        for (base, fields) in cases {
            let (plain, skipped) = decode(&format!("{base}}}"));
            let plain = plain.expect(base);
            assert!(skipped.is_empty());
            for field in fields {
                let wrong_scalar = if TEXT.contains(field) {
                    "12.5"
                } else {
                    r#""abc""#
                };
                for odd in [r#"{"a":[1,{"b":null}]}"#, r#"[1,"x",[]]"#, wrong_scalar] {
                    let payload = format!(r#"{base},"{field}":{odd}}}"#);
                    let (message, skipped) = decode(&payload);
                    assert_eq!(message.as_ref(), Ok(&plain), "{payload}");
                    assert_eq!(skipped, [*field], "{payload}");
                }
            }
        }
    }

    #[test]
    fn simple_keys_several_odd_fields_and_readable_dates() {
        let (message, mut skipped) =
            decode(r#"{"ty":"ticker","cd":"KRW-BTC","tp":1,"dd":{"y":2024},"its":"no"}"#);
        let Ok(Message::Ticker(t)) = message else {
            panic!("{message:?}")
        };
        assert_eq!((t.delisting_date, t.is_trading_suspended), (None, None));
        skipped.sort();
        assert_eq!(skipped, ["dd", "its"]);
        for (dd, read) in [("\"2024-06-13\"", "2024-06-13"), ("20240613", "20240613")] {
            let (message, skipped) = decode(&format!(
                r#"{{"type":"ticker","code":"KRW-BTC","trade_price":1,"delisting_date":{dd}}}"#
            ));
            let Ok(Message::Ticker(t)) = message else {
                panic!("{message:?}")
            };
            assert_eq!(t.delisting_date.as_deref(), Some(read));
            assert!(skipped.is_empty());
        }
    }

    #[test]
    fn a_required_field_of_the_wrong_shape_still_fails_the_message() {
        for payload in [
            r#"{"type":"ticker","code":"KRW-BTC","trade_price":{"x":1},"opening_price":"abc"}"#,
            r#"{"type":"trade","code":"KRW-BTC","trade_price":1,"trade_volume":1,"ask_bid":"SIDEWAYS"}"#,
            r#"{"type":"orderbook","code":"KRW-BTC","total_ask_size":1,"total_bid_size":1,"orderbook_units":[{"ap":"x"}]}"#,
        ] {
            let (message, skipped) = decode(payload);
            assert_eq!(message, Err("invalid_value".to_owned()), "{payload}");
            assert!(skipped.is_empty(), "nothing counted for a failed message");
        }
    }
}
