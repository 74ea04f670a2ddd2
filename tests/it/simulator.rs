//! The simulator's own contract, asserted from a plain WebSocket client: what Upbit does is what
//! the simulator does (PROTOCOL.md), because every other test stands on it.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::support::*;
use actix_codec::Framed;
use awc::ws::{self, Frame};
use awc::BoxedSocket;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use upbit_exporter::simulator::{Fault, SimulatorHandle};
use upbit_exporter::upbit::{decode_frame, Message};

/// A raw WebSocket client of the simulator.
struct Client {
    framed: Framed<BoxedSocket, ws::Codec>,
}

/// What a client reads next.
#[derive(Debug)]
enum Read {
    Frame(Frame),
    /// The stream ended without a close frame.
    Ended,
}

async fn connect(sim: &SimulatorHandle) -> Client {
    let (response, framed) = awc::Client::new()
        .ws(sim.ws_url())
        .max_frame_size(16 << 20)
        .connect()
        .await
        .expect("WebSocket handshake");
    assert_eq!(response.status(), 101);
    Client { framed }
}

/// awc's WebSocket client keeps only the status; `refused_raw` reads the rest.
async fn refused(sim: &SimulatorHandle) -> (u16, Option<u64>) {
    match awc::Client::new().ws(sim.ws_url()).connect().await {
        Err(awc::error::WsClientError::InvalidResponseStatus(status)) => (status.as_u16(), None),
        Ok(_) => panic!("handshake accepted; expected a refusal"),
        Err(other) => panic!("unexpected handshake error: {other}"),
    }
}

/// A refused upgrade seen through plain HTTP: status, `Retry-After`, body.
async fn refused_raw(sim: &SimulatorHandle) -> (u16, Option<u64>, Value) {
    let mut response = awc::Client::new()
        .get(sim.ws_url().replace("ws://", "http://"))
        .insert_header(("Connection", "Upgrade"))
        .insert_header(("Upgrade", "websocket"))
        .insert_header(("Sec-WebSocket-Version", "13"))
        .insert_header(("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="))
        .send()
        .await
        .expect("upgrade request");
    let retry = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let body = response.body().await.unwrap_or_default();
    (
        response.status().as_u16(),
        retry,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

impl Client {
    async fn send_text(&mut self, text: impl Into<String>) {
        self.framed
            .send(ws::Message::Text(text.into().into()))
            .await
            .expect("send text");
    }

    async fn subscribe(&mut self, parts: Value) {
        self.send_text(parts.to_string()).await;
    }

    async fn read(&mut self) -> Read {
        match actix_rt::time::timeout(DEADLINE, self.framed.next()).await {
            Err(_) => panic!("no frame within {DEADLINE:?}"),
            Ok(None) | Ok(Some(Err(_))) => Read::Ended,
            Ok(Some(Ok(frame))) => Read::Frame(frame),
        }
    }

    /// The next data frame (binary or text), skipping pongs; panics on close or end.
    async fn data(&mut self) -> (bool, Bytes) {
        loop {
            match self.read().await {
                Read::Frame(Frame::Binary(bytes)) => return (true, bytes),
                Read::Frame(Frame::Text(bytes)) => return (false, bytes),
                Read::Frame(Frame::Pong(_)) => continue,
                other => panic!("expected a data frame, got {other:?}"),
            }
        }
    }

    async fn json(&mut self) -> Value {
        let (_, bytes) = self.data().await;
        serde_json::from_slice(&bytes).expect("JSON frame")
    }

    /// Reads data frames until one satisfies `accept`, within a bounded count.
    async fn json_until(&mut self, what: &str, accept: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..10_000 {
            let value = self.json().await;
            if accept(&value) {
                return value;
            }
        }
        panic!("no frame matching {what} within 10000 frames");
    }
}

/// The one message of a single-message frame.
fn single(bytes: &[u8]) -> Message {
    let mut messages = decode_frame(bytes);
    assert_eq!(messages.len(), 1, "one message per frame");
    messages.pop().unwrap().expect("decodes")
}

fn ticket() -> Value {
    json!({ "ticket": "simulator-test" })
}

fn field<'a>(v: &'a Value, long: &str, short: &str) -> &'a Value {
    v.get(long).or_else(|| v.get(short)).unwrap_or(&Value::Null)
}

fn type_of(v: &Value) -> String {
    field(v, "type", "ty").as_str().unwrap_or("").to_owned()
}

fn code_of(v: &Value) -> String {
    field(v, "code", "cd").as_str().unwrap_or("").to_owned()
}

fn stream_of(v: &Value) -> String {
    field(v, "stream_type", "st")
        .as_str()
        .unwrap_or("")
        .to_owned()
}

#[actix_web::test]
async fn data_arrives_in_binary_frames_a_snapshot_first_then_realtime() {
    let sim = start_simulator(|c| c.rate = 50.0).await;
    let mut client = connect(&sim).await;
    client
        .subscribe(json!([ticket(), { "type": "ticker", "codes": ["KRW-BTC"] }]))
        .await;
    let (binary, first) = client.data().await;
    assert!(binary, "Upbit sends data in binary frames");
    let first: Value = serde_json::from_slice(&first).unwrap();
    assert_eq!(
        (type_of(&first), code_of(&first), stream_of(&first)),
        ("ticker".into(), "KRW-BTC".into(), "SNAPSHOT".into())
    );
    for _ in 0..3 {
        let next = client.json().await;
        assert_eq!(stream_of(&next), "REALTIME");
        assert_eq!(code_of(&next), "KRW-BTC");
    }
    let handshake = &sim.stats().handshakes[0];
    assert_eq!(handshake.path, "/websocket/v1");
    assert!(handshake
        .headers
        .iter()
        .any(|(k, _)| k == "sec-websocket-key"));
}

#[actix_web::test]
async fn a_new_request_replaces_the_whole_subscription_and_list_subscriptions_reports_it() {
    let sim = start_simulator(|c| c.rate = 50.0).await;
    let mut client = connect(&sim).await;
    client
        .subscribe(json!([ticket(), { "type": "ticker", "codes": ["KRW-BTC", "KRW-ETH"] }]))
        .await;
    client
        .json_until("a ticker", |v| type_of(v) == "ticker")
        .await;
    client
        .subscribe(json!([ticket(), { "type": "trade", "codes": ["KRW-XRP"] }]))
        .await;
    // Skip what was in flight; from the first trade on, nothing of the old subscription comes.
    client
        .json_until("a trade", |v| type_of(v) == "trade")
        .await;
    for _ in 0..10 {
        let next = client.json().await;
        assert_eq!(
            (type_of(&next), code_of(&next)),
            ("trade".into(), "KRW-XRP".into())
        );
    }
    client
        .subscribe(json!([{ "ticket": "list" }, { "method": "LIST_SUBSCRIPTIONS" }]))
        .await;
    let reply = client
        .json_until("the LIST_SUBSCRIPTIONS reply", |v| {
            v.get("method").is_some()
        })
        .await;
    assert_eq!(
        reply,
        json!({ "method": "LIST_SUBSCRIPTIONS", "result": [{ "type": "trade", "codes": ["KRW-XRP"] }], "ticket": "list" })
    );
}

#[actix_web::test]
async fn every_format_decodes_back_with_the_service_decoder() {
    let sim = start_simulator(|c| c.rate = 20.0).await;
    let codes = ["KRW-BTC", "KRW-ETH"];
    for format in ["DEFAULT", "SIMPLE", "JSON_LIST", "SIMPLE_LIST"] {
        let mut client = connect(&sim).await;
        client
            .subscribe(json!([
                ticket(),
                { "type": "ticker", "codes": codes },
                { "type": "trade", "codes": codes },
                { "type": "orderbook", "codes": codes },
                { "type": "candle.1m", "codes": codes },
                { "format": format },
            ]))
            .await;
        let mut seen = BTreeSet::new();
        for _ in 0..200 {
            let (_, bytes) = client.data().await;
            let text = std::str::from_utf8(&bytes).unwrap();
            let is_list = text.starts_with('[');
            assert_eq!(is_list, format.ends_with("_LIST"), "{format}: {text}");
            let simple = text.contains("\"ty\":");
            assert_eq!(simple, format.starts_with("SIMPLE"), "{format}: {text}");
            for message in decode_frame(&bytes) {
                let message = message.unwrap_or_else(|e| panic!("{format}: {e} in {text}"));
                let kind = match &message {
                    Message::Ticker(_) => "ticker",
                    Message::Trade(t) => {
                        assert!(t.sequential_id.is_some_and(|id| id > 0));
                        "trade"
                    }
                    Message::Orderbook(o) => {
                        assert_eq!(o.orderbook_units.len(), 30);
                        "orderbook"
                    }
                    Message::Candle(_) => "candle.1m",
                    other => panic!("{format}: unexpected {other:?}"),
                };
                seen.insert((kind, message.code().unwrap().to_owned()));
            }
            if seen.len() == 8 {
                break;
            }
        }
        assert_eq!(
            seen.len(),
            8,
            "{format}: every (type, code) decoded: {seen:?}"
        );
    }
}

#[actix_web::test]
async fn only_snapshot_only_realtime_and_orderbook_depth_are_honoured() {
    let sim = start_simulator(|c| c.rate = 50.0).await;
    let mut client = connect(&sim).await;
    client
        .subscribe(json!([
            ticket(),
            { "type": "ticker", "codes": ["KRW-BTC"], "is_only_snapshot": true },
            { "type": "trade", "codes": ["KRW-BTC"], "is_only_realtime": true },
            { "type": "orderbook", "codes": ["KRW-ETH.15"], "is_only_realtime": true, "level": 0 },
        ]))
        .await;
    let mut tickers = 0;
    for _ in 0..40 {
        let frame = client.json().await;
        match type_of(&frame).as_str() {
            "ticker" => {
                tickers += 1;
                assert_eq!(stream_of(&frame), "SNAPSHOT");
            }
            "trade" => assert_eq!(stream_of(&frame), "REALTIME"),
            "orderbook" => {
                assert_eq!(stream_of(&frame), "REALTIME");
                assert_eq!(code_of(&frame), "KRW-ETH");
                let units = frame["orderbook_units"].as_array().unwrap();
                assert_eq!(units.len(), 15);
                let asks: f64 = units.iter().map(|u| u["ask_size"].as_f64().unwrap()).sum();
                let total = frame["total_ask_size"].as_f64().unwrap();
                assert!(
                    (asks - total).abs() <= 1e-6 * total.max(1.0),
                    "{asks} vs {total}"
                );
                let best_ask = units[0]["ask_price"].as_f64().unwrap();
                let best_bid = units[0]["bid_price"].as_f64().unwrap();
                assert!(best_ask > best_bid);
            }
            other => panic!("unexpected frame type {other}"),
        }
    }
    assert_eq!(tickers, 1, "one ticker snapshot and no realtime tickers");
}

#[actix_web::test]
async fn trades_carry_increasing_sequential_ids_and_tickers_accumulate_them() {
    let sim = start_simulator(|c| c.rate = 100.0).await;
    let mut client = connect(&sim).await;
    client
        .subscribe(
            json!([ticket(), { "type": "trade", "codes": ["KRW-BTC"], "is_only_realtime": true }]),
        )
        .await;
    let mut last = 0u64;
    for _ in 0..20 {
        let (_, bytes) = client.data().await;
        let Message::Trade(trade) = single(&bytes) else {
            panic!("a trade")
        };
        let id = trade.sequential_id.expect("sequential_id");
        assert!(id > last, "{id} after {last}");
        last = id;
    }
}

#[actix_web::test]
async fn faulty_requests_get_upbit_error_frames_and_the_connection_stays_up() {
    let sim = start_simulator(|c| {
        c.rate = 20.0;
        c.request_limit_per_sec = 1000;
    })
    .await;
    let mut client = connect(&sim).await;
    let cases = [
        ("WRONG_FORMAT", "PONG".to_owned()),
        (
            "NO_TICKET",
            json!([{ "type": "ticker", "codes": ["KRW-BTC"] }]).to_string(),
        ),
        (
            "NO_TYPE",
            json!([ticket(), { "format": "DEFAULT" }]).to_string(),
        ),
        (
            "NO_CODES",
            json!([ticket(), { "type": "ticker" }]).to_string(),
        ),
        (
            "INVALID_PARAM",
            json!([ticket(), { "type": "ticker", "codes": ["krw-btc"] }]).to_string(),
        ),
    ];
    for (name, request) in &cases {
        client.send_text(request).await;
        let reply = client.json().await;
        assert_eq!(reply["error"]["name"], *name, "{reply}");
        assert!(reply["error"]["message"].is_string());
    }
    // The same connection still subscribes.
    client
        .subscribe(json!([ticket(), { "type": "ticker", "codes": ["KRW-BTC"] }]))
        .await;
    assert_eq!(type_of(&client.json().await), "ticker");
    let errors = sim.stats().error_frames_sent;
    for (name, _) in cases {
        assert_eq!(errors.get(name), Some(&1), "{name} counted: {errors:?}");
    }
}

#[actix_web::test]
async fn more_than_the_per_minute_request_budget_gets_too_many_requests() {
    let sim = start_simulator(|c| {
        c.rate = 0.0;
        c.request_limit_per_sec = 1000;
        c.request_limit_per_min = 3;
    })
    .await;
    let mut client = connect(&sim).await;
    for _ in 0..3 {
        client
            .subscribe(json!([ticket(), { "type": "ticker", "codes": ["KRW-BTC"] }]))
            .await;
        assert_eq!(type_of(&client.json().await), "ticker");
    }
    client
        .subscribe(json!([ticket(), { "type": "ticker", "codes": ["KRW-BTC"] }]))
        .await;
    let reply = client.json().await;
    assert_eq!(reply["error"]["name"], "TOO_MANY_REQUESTS");
}

#[actix_web::test]
async fn a_burst_above_the_per_second_request_budget_gets_too_many_requests() {
    let sim = start_simulator(|c| {
        c.rate = 0.0;
        c.request_limit_per_sec = 2;
    })
    .await;
    let mut client = connect(&sim).await;
    // Three requests written back to back reach the simulator within the same second.
    let request = json!([ticket(), { "type": "ticker", "codes": ["KRW-BTC"] }]).to_string();
    for _ in 0..3 {
        client
            .framed
            .feed(ws::Message::Text(request.clone().into()))
            .await
            .unwrap();
    }
    client.framed.flush().await.unwrap();
    let replies = [
        client.json().await,
        client.json().await,
        client.json().await,
    ];
    let names: Vec<&Value> = replies.iter().map(|r| &r["error"]["name"]).collect();
    assert_eq!(
        names,
        [&Value::Null, &Value::Null, &json!("TOO_MANY_REQUESTS")]
    );
}

#[actix_web::test]
async fn pings_get_pongs_and_a_text_ping_gets_status_up() {
    let sim = start_simulator(|c| c.rate = 0.0).await;
    let mut client = connect(&sim).await;
    client
        .framed
        .send(ws::Message::Ping(Bytes::from_static(b"keepalive")))
        .await
        .unwrap();
    match client.read().await {
        Read::Frame(Frame::Pong(payload)) => assert_eq!(&payload[..], b"keepalive"),
        other => panic!("expected a pong, got {other:?}"),
    }
    client.send_text("PING").await;
    let (binary, status) = client.data().await;
    assert!(!binary, "the status answer is a text frame");
    assert_eq!(&status[..], br#"{"status":"UP"}"#);
    let stats = sim.stats();
    assert_eq!(
        (
            stats.pings_received,
            stats.pongs_sent,
            stats.text_pings_received
        ),
        (1, 1, 1)
    );
}

#[actix_web::test]
async fn an_idle_connection_is_closed() {
    let sim = start_simulator(|c| {
        c.rate = 0.0;
        c.idle_timeout = Duration::from_millis(300);
    })
    .await;
    // The simulator's idle clock starts when it accepts the connection, after this instant: a
    // close seen earlier than 300 ms from here would be early.
    let started = Instant::now();
    let mut client = connect(&sim).await;
    loop {
        match client.read().await {
            Read::Frame(Frame::Close(_)) | Read::Ended => break,
            _ => continue,
        }
    }
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(sim.stats().closed_idle, 1);
}

#[actix_web::test]
async fn traffic_keeps_a_connection_from_idling_out() {
    let sim = start_simulator(|c| {
        c.rate = 0.0;
        c.idle_timeout = Duration::from_millis(400);
    })
    .await;
    let mut client = connect(&sim).await;
    // Pings every 100 ms for a second: well past the idle timeout, the link stays.
    for _ in 0..10 {
        actix_rt::time::sleep(Duration::from_millis(100)).await;
        client.send_text("PING").await;
        assert_eq!(&client.data().await.1[..], br#"{"status":"UP"}"#);
    }
    assert_eq!(sim.stats().closed_idle, 0);
}

#[actix_web::test]
async fn too_many_handshakes_get_429_with_retry_after_then_a_418_ban() {
    let sim = start_simulator(|c| {
        c.connect_limit_per_sec = 2;
        c.ban_after_rejections = 2;
        c.ban_duration = Duration::from_secs(30);
    })
    .await;
    // Four attempts in a burst: two admitted, one 429, then the second rejection bans.
    let _a = connect(&sim).await;
    let _b = connect(&sim).await;
    let (status, retry, body) = refused_raw(&sim).await;
    assert_eq!((status, retry), (429, Some(1)));
    assert_eq!(body["error"]["name"], "TOO_MANY_REQUESTS");
    let (status, retry, _) = refused_raw(&sim).await;
    assert_eq!(status, 418);
    assert!(retry.is_some_and(|r| (29..=30).contains(&r)), "{retry:?}");
    // Banned: even after the per-second window has passed.
    assert_eq!(refused(&sim).await.0, 418);
    let stats = sim.stats();
    assert_eq!((stats.rejected_429, stats.rejected_418), (1, 2));
    sim.inject(Fault::Reset);
    let _c = connect(&sim).await;
}

#[actix_web::test]
async fn refuse_handshakes_fault_answers_the_chosen_status_until_it_expires() {
    let sim = start_simulator(|_| {}).await;
    sim.inject(Fault::RefuseHandshakes {
        status: 418,
        duration_ms: 400,
        retry_after_secs: Some(7),
    });
    assert_eq!(refused(&sim).await.0, 418);
    let (status, retry, _) = refused_raw(&sim).await;
    assert_eq!((status, retry), (418, Some(7)));
    // After the duration, upgrades succeed again (poll with a deadline).
    eventually("handshakes accepted again", || async {
        awc::Client::new()
            .ws(sim.ws_url())
            .connect()
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    assert_eq!(sim.stats().faults.get("refuse_handshakes"), Some(&1));
}

#[actix_web::test]
async fn drop_fault_ends_the_stream_without_a_close_frame() {
    let sim = start_simulator(|c| c.rate = 20.0).await;
    let mut client = connect(&sim).await;
    client
        .subscribe(json!([ticket(), { "type": "ticker", "codes": ["KRW-BTC"] }]))
        .await;
    client.json().await;
    sim.inject(Fault::Drop);
    loop {
        match client.read().await {
            Read::Ended => break,
            Read::Frame(Frame::Close(reason)) => panic!("a close frame {reason:?}"),
            Read::Frame(_) => continue,
        }
    }
    eventually("the connection gone", || async {
        when(sim.stats().active_connections == 0)
    })
    .await;
    assert_eq!(sim.stats().faults.get("drop"), Some(&1));
}

#[actix_web::test]
async fn close_fault_sends_the_chosen_close_code() {
    let sim = start_simulator(|c| c.rate = 20.0).await;
    let mut client = connect(&sim).await;
    sim.inject(Fault::Close {
        code: 4000,
        reason: Some("drill".into()),
    });
    loop {
        match client.read().await {
            Read::Frame(Frame::Close(Some(reason))) => {
                assert_eq!(u16::from(reason.code), 4000);
                assert_eq!(reason.description.as_deref(), Some("drill"));
                break;
            }
            Read::Frame(Frame::Close(None)) | Read::Ended => panic!("no close code"),
            Read::Frame(_) => continue,
        }
    }
}

#[actix_web::test]
async fn mute_stops_data_and_pongs_until_unmuted() {
    let sim = start_simulator(|c| c.rate = 50.0).await;
    let mut client = connect(&sim).await;
    client
        .subscribe(json!([ticket(), { "type": "ticker", "codes": ["KRW-BTC"] }]))
        .await;
    client.json().await;
    sim.inject(Fault::Mute { duration_ms: None });
    // Drain what was already in flight, then nothing: the ping below goes unanswered.
    let sent_before = sim.stats().frames_sent;
    client
        .framed
        .send(ws::Message::Ping(Bytes::from_static(b"hello?")))
        .await
        .unwrap();
    client.send_text("PING").await;
    eventually("the ping to reach the simulator", || async {
        when(sim.stats().text_pings_received == 1)
    })
    .await;
    let stats = sim.stats();
    assert_eq!((stats.pings_received, stats.pongs_sent), (1, 0));
    assert!(stats.frames_sent <= sent_before + 1, "data while muted");
    sim.inject(Fault::Unmute);
    // Data flows again and pings are answered.
    client
        .framed
        .send(ws::Message::Ping(Bytes::from_static(b"back")))
        .await
        .unwrap();
    loop {
        match client.read().await {
            Read::Frame(Frame::Pong(payload)) if &payload[..] == b"back" => break,
            Read::Frame(Frame::Pong(payload)) => panic!("pong while muted: {payload:?}"),
            Read::Frame(_) => continue,
            Read::Ended => panic!("connection ended"),
        }
    }
    assert_eq!(sim.stats().pongs_sent, 1);
}

#[actix_web::test]
async fn bad_frame_faults_send_exactly_what_they_name() {
    let sim = start_simulator(|c| c.rate = 0.0).await;
    let mut client = connect(&sim).await;
    client
        .subscribe(json!([ticket(), { "type": "ticker", "codes": ["KRW-BTC"] }]))
        .await;
    client.json().await;

    sim.inject(Fault::Malformed);
    let (_, malformed) = client.data().await;
    assert!(serde_json::from_slice::<Value>(&malformed).is_err());

    sim.inject(Fault::Oversized { bytes: 2 << 20 });
    let (binary, oversized) = client.data().await;
    assert!(binary);
    assert_eq!(oversized.len(), 2 << 20);
    assert!(decode_frame(&oversized)[0].is_err());

    sim.inject(Fault::UnknownType);
    assert_eq!(type_of(&client.json().await), "mystery");

    sim.inject(Fault::ErrorFrame {
        name: "INVALID_AUTH".into(),
    });
    let error = client.json().await;
    assert_eq!(error["error"]["name"], "INVALID_AUTH");

    let faults = sim.stats().faults;
    for kind in ["malformed", "oversized", "unknown_type", "error_frame"] {
        assert_eq!(faults.get(kind), Some(&1), "{kind}: {faults:?}");
    }
}

#[actix_web::test]
async fn delay_fault_spaces_every_frame() {
    let sim = start_simulator(|c| c.rate = 0.0).await;
    let mut client = connect(&sim).await;
    sim.inject(Fault::Delay { per_frame_ms: 150 });
    let started = Instant::now();
    client
        .subscribe(
            json!([ticket(), { "type": "ticker", "codes": ["KRW-BTC", "KRW-ETH", "KRW-XRP"] }]),
        )
        .await;
    for _ in 0..3 {
        client.json().await;
    }
    // A lower bound only: three delayed frames cannot arrive sooner than three delays.
    assert!(started.elapsed() >= Duration::from_millis(450));
    sim.inject(Fault::Delay { per_frame_ms: 0 });
    assert_eq!(sim.stats().faults.get("delay"), Some(&2));
}

#[actix_web::test]
async fn firehose_counts_exactly_what_it_wrote() {
    let frames = 20_000;
    let sim = start_simulator(|c| {
        c.firehose = true;
        c.firehose_frames = Some(frames);
    })
    .await;
    let mut client = connect(&sim).await;
    client
        .subscribe(json!([ticket(), { "type": "ticker", "codes": ["KRW-BTC", "KRW-ETH"], "is_only_realtime": true }]))
        .await;
    let mut received = 0u64;
    let mut per_code = std::collections::BTreeMap::<String, u64>::new();
    while received < frames {
        let (_, bytes) = client.data().await;
        let Message::Ticker(ticker) = single(&bytes) else {
            panic!("a ticker")
        };
        *per_code.entry(ticker.code).or_default() += 1;
        received += 1;
    }
    let stats = sim.stats();
    assert_eq!(stats.frames_sent, frames);
    assert_eq!(stats.sent["ticker"], per_code);
    // And then the firehose stops: a text PING is answered next, no more data in between.
    client.send_text("PING").await;
    assert_eq!(&client.data().await.1[..], br#"{"status":"UP"}"#);
}

#[actix_web::test]
async fn a_paced_firehose_keeps_its_rate() {
    let frames = 2_000;
    let sim = start_simulator(|c| {
        c.firehose = true;
        c.firehose_frames = Some(frames);
        c.firehose_rate = Some(10_000.0);
    })
    .await;
    let mut client = connect(&sim).await;
    client
        .subscribe(
            json!([ticket(), { "type": "trade", "codes": ["KRW-BTC"], "is_only_realtime": true }]),
        )
        .await;
    let started = Instant::now();
    for _ in 0..frames {
        client.data().await;
    }
    // A lower bound only: 2000 frames at 10k/s cannot take less than 0.2 s (less one frame).
    assert!(
        started.elapsed() >= Duration::from_millis(199),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(sim.stats().frames_sent, frames);
}

#[actix_web::test]
async fn market_list_with_and_without_details_and_live_listing_changes() {
    let sim = start_simulator(|_| {}).await;
    let client = awc::Client::new();
    let get = |details: bool| {
        let url = format!(
            "{}/v1/market/all{}",
            sim.http_url(),
            if details { "?is_details=true" } else { "" }
        );
        let client = client.clone();
        async move {
            let mut response = client.get(url).send().await.unwrap();
            assert_eq!(response.status(), 200);
            let body = response.body().limit(1 << 20).await.unwrap();
            serde_json::from_slice::<Vec<Value>>(&body).unwrap()
        }
    };
    let plain = get(false).await;
    assert_eq!(plain.len(), 294, "the bundled 2021 list");
    assert!(plain.iter().all(|m| m.get("market_event").is_none()));
    assert!(plain.iter().any(|m| m["market"] == "KRW-BTC"));
    let detailed = get(true).await;
    assert_eq!(detailed.len(), 294);
    assert!(detailed
        .iter()
        .all(|m| m["market_event"]["warning"].is_boolean()));

    // Over HTTP admin and through the handle.
    let mut response = client
        .post(format!("{}/admin/markets", sim.http_url()))
        .send_json(&json!({ "list": ["KRW-NEW"], "delist": ["KRW-BTC"] }))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["markets"], 294);
    let after = get(false).await;
    assert!(after.iter().any(|m| m["market"] == "KRW-NEW"));
    assert!(!after.iter().any(|m| m["market"] == "KRW-BTC"));
    sim.list_market("KRW-BTC");
    sim.delist_market("KRW-NEW");
    let restored = get(false).await;
    assert!(restored.iter().any(|m| m["market"] == "KRW-BTC"));
    assert!(!restored.iter().any(|m| m["market"] == "KRW-NEW"));
}

#[actix_web::test]
async fn admin_faults_and_stats_over_http() {
    let sim = start_simulator(|c| c.rate = 0.0).await;
    let client = awc::Client::new();
    let post = |body: Value| {
        let request = client.post(format!("{}/admin/faults", sim.http_url()));
        async move { request.send_json(&body).await.unwrap().status().as_u16() }
    };
    assert_eq!(
        post(json!({ "kind": "error_frame", "name": "NO_TICKET" })).await,
        204
    );
    assert_eq!(post(json!({ "kind": "reset" })).await, 204);
    assert_eq!(post(json!({ "kind": "earthquake" })).await, 400);
    assert_eq!(
        post(json!({ "kind": "close", "code": 4000, "extra": 1 })).await,
        400
    );
    assert_eq!(post(json!({ "kind": "delay" })).await, 400);
    let mut response = client
        .get(format!("{}/admin/stats", sim.http_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let stats: Value = response.json().limit(1 << 20).await.unwrap();
    assert_eq!(stats["faults"], json!({ "error_frame": 1, "reset": 1 }));
    assert_eq!(stats["error_frames_sent"]["NO_TICKET"], 1);
}

/// Upbit's idle timer counts traffic both ways: a client that only receives data is not idle.
#[actix_web::test]
async fn data_flowing_to_a_silent_client_keeps_the_connection() {
    let sim = start_simulator(|c| {
        c.rate = 20.0;
        c.idle_timeout = Duration::from_millis(300);
    })
    .await;
    let mut client = connect(&sim).await;
    client
        .subscribe(json!([ticket(), {"type":"trade","codes":["KRW-BTC"]}]))
        .await;
    let started = Instant::now();
    let mut frames = 0;
    while started.elapsed() < Duration::from_millis(1_200) {
        client.data().await;
        frames += 1;
    }
    assert!(frames > 4, "{frames} frames");
    assert_eq!(sim.stats().closed_idle, 0);
    assert_eq!(sim.stats().active_connections, 1);
}

/// A client's close frame is answered and the TCP connection ends at once, as on Upbit
/// (actix-web's default waits a second for the client to hang up first).
#[actix_web::test]
async fn a_client_close_ends_the_tcp_connection_promptly() {
    let sim = start_simulator(|c| c.rate = 0.0).await;
    let mut client = connect(&sim).await;
    client
        .framed
        .send(ws::Message::Close(Some(ws::CloseCode::Normal.into())))
        .await
        .expect("send close");
    let sent = Instant::now();
    loop {
        match client.read().await {
            Read::Frame(Frame::Close(_)) => continue,
            Read::Ended => break,
            other => panic!("{other:?}"),
        }
    }
    let took = sent.elapsed();
    // Far below the old 1 s; generous for a loaded machine.
    assert!(
        took < Duration::from_millis(700),
        "the connection ended {took:?} after the close"
    );
}

/// One tape per market: every connection subscribed to a code sees the same trades, with the
/// same `sequential_id`s and prices, as on Upbit.
#[actix_web::test]
async fn every_subscriber_sees_the_same_trades() {
    let sim = start_simulator(|c| c.rate = 20.0).await;
    let mut clients = [connect(&sim).await, connect(&sim).await];
    for client in &mut clients {
        client
            .subscribe(
                json!([ticket(), {"type":"trade","codes":["KRW-BTC"],"is_only_realtime":true}]),
            )
            .await;
    }
    let mut tapes = Vec::new();
    for client in &mut clients {
        let mut tape = std::collections::BTreeMap::new();
        while tape.len() < 15 {
            let trade = client.json().await;
            tape.insert(
                trade["sequential_id"].as_u64().expect("sequential_id"),
                (
                    trade["trade_price"].as_f64(),
                    trade["trade_timestamp"].as_u64(),
                ),
            );
        }
        tapes.push(tape);
    }
    let common: Vec<&u64> = tapes[0]
        .keys()
        .filter(|sid| tapes[1].contains_key(sid))
        .collect();
    assert!(
        common.len() >= 10,
        "the two connections share only {} of 15 trades: {:?} vs {:?}",
        common.len(),
        tapes[0].keys(),
        tapes[1].keys()
    );
    for sid in common {
        assert_eq!(tapes[0][sid], tapes[1][sid], "trade {sid}");
    }
}
