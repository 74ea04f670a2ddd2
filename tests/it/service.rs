//! The core service against the in-process simulator, asserted through its public surface:
//! what the exchange received, `/metrics`, `/readyz`.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::*;
use serde_json::Value;
use upbit_exporter::simulator::{Fault, SimulatorHandle};

const TYPES: &str = "ticker,trade,orderbook,candle.1m";
const CODES: &str = "KRW-BTC,KRW-ETH";

/// Subscription requests (not LIST_SUBSCRIPTIONS) the simulator received, parsed.
fn subscribe_requests(sim: &SimulatorHandle) -> Vec<Vec<Value>> {
    sim.stats()
        .requests
        .iter()
        .filter_map(|r| serde_json::from_str::<Vec<Value>>(&r.text).ok())
        .filter(|parts| !parts.iter().any(|p| p.get("method").is_some()))
        .collect()
}

/// Waits until the service counted exactly what the simulator sent, for every pair.
async fn counts_match(
    app: &TestApp,
    sim: &SimulatorHandle,
) -> BTreeMap<String, BTreeMap<String, u64>> {
    eventually("metrics to equal the simulator's sent counts", || async {
        let sent = sim.stats().sent;
        let received = app.metrics().await.received();
        let nonzero: BTreeMap<_, BTreeMap<_, _>> = received
            .into_iter()
            .map(|(t, codes)| (t, codes.into_iter().filter(|(_, n)| *n > 0).collect()))
            .filter(|(_, codes): &(String, BTreeMap<String, u64>)| !codes.is_empty())
            .collect();
        (!sent.is_empty() && nonzero == sent).then_some(sent)
    })
    .await
}

#[actix_web::test]
async fn subscribes_once_with_a_uuid_ticket_every_type_and_the_format_and_no_origin() {
    let sim = start_simulator(|_| {}).await;
    let app = spawn_app(
        &sim.ws_url(),
        &[
            ("upbit.types", TYPES),
            ("upbit.codes", CODES),
            ("upbit.format", "SIMPLE"),
        ],
    )
    .await;
    eventually("a subscription and a LIST_SUBSCRIPTIONS", || async {
        when(sim.stats().requests.len() >= 2)
    })
    .await;

    let stats = sim.stats();
    let first: Vec<Value> = serde_json::from_str(&stats.requests[0].text).unwrap();
    let ticket = first[0]["ticket"].as_str().expect("ticket first");
    let uuid = uuid::Uuid::parse_str(ticket).expect("ticket is a UUID");
    assert_eq!(uuid.get_version_num(), 4);
    let types: Vec<&str> = first[1..first.len() - 1]
        .iter()
        .map(|t| t["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["ticker", "trade", "orderbook", "candle.1m"]);
    for entry in &first[1..first.len() - 1] {
        assert_eq!(entry["codes"], serde_json::json!(["KRW-BTC", "KRW-ETH"]));
    }
    assert_eq!(
        first.last().unwrap(),
        &serde_json::json!({ "format": "SIMPLE" })
    );
    let second: Vec<Value> = serde_json::from_str(&stats.requests[1].text).unwrap();
    assert_eq!(
        second,
        serde_json::json!([
            { "ticket": ticket },
            { "method": "LIST_SUBSCRIPTIONS" },
            { "format": "SIMPLE" }
        ])
        .as_array()
        .unwrap()
        .clone()
    );
    assert_eq!(
        subscribe_requests(&sim).len(),
        1,
        "exactly one subscription message"
    );

    let handshake = &stats.handshakes[0];
    assert_eq!(handshake.path, "/websocket/v1");
    assert!(
        handshake.headers.iter().all(|(name, _)| name != "origin"),
        "no Origin header: {:?}",
        handshake.headers
    );

    let (status, body) = eventually("Upbit's acknowledgement in /api/v1/status", || async {
        let (status, body) = app.get_json("/api/v1/status").await;
        body["subscription"]["acknowledged"]
            .is_array()
            .then_some((status, body))
    })
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["connection"]["ticket"], ticket);
    assert_eq!(body["connection"]["state"], "subscribed");
    app.shutdown().await;
    sim.stop().await;
}

async fn metrics_equal_what_was_sent(format: &str) {
    let sim = start_simulator(|c| c.rate = 25.0).await;
    let app = spawn_app(
        &sim.ws_url(),
        &[
            ("upbit.types", TYPES),
            ("upbit.codes", CODES),
            ("upbit.format", format),
        ],
    )
    .await;
    eventually("some realtime data", || async {
        when(
            sim.stats()
                .sent
                .get("trade")
                .and_then(|c| c.get("KRW-BTC"))
                .copied()
                .unwrap_or(0)
                >= 5,
        )
    })
    .await;
    sim.inject(Fault::Mute { duration_ms: None });
    let sent = counts_match(&app, &sim).await;
    assert_eq!(sent.len(), 4, "every type was sent: {sent:?}");

    let m = app.metrics().await;
    for code in ["KRW-BTC", "KRW-ETH"] {
        let price = m.get("upbit_trade_price", &[("code", code)]);
        let (ask, bid) = (
            m.get("upbit_orderbook_best_ask_price", &[("code", code)]),
            m.get("upbit_orderbook_best_bid_price", &[("code", code)]),
        );
        assert!(
            price > 0.0 && ask > bid && bid > 0.0,
            "{code}: price {price}, ask {ask}, bid {bid}"
        );
        let trades = m.get("upbit_trades_total", &[("code", code), ("side", "ask")])
            + m.get("upbit_trades_total", &[("code", code), ("side", "bid")]);
        assert_eq!(
            trades as u64, sent["trade"][code],
            "{code}: trades by side add up to trade messages"
        );
        assert!(
            m.get(
                "upbit_last_message_timestamp_seconds",
                &[("type", "ticker"), ("code", code)]
            ) > 1.7e9
        );
        assert!(m.value("upbit_market_state", &[("code", code), ("state", "ACTIVE")]) == Some(1.0));
        assert!(
            m.get(
                "upbit_candle_close_price",
                &[("type", "candle.1m"), ("code", code)]
            ) > 0.0
        );
    }
    assert_eq!(
        m.get("upbit_decode_errors_total", &[("reason", "invalid_json")]),
        0.0
    );
    let frames = m.get("upbit_received_frames_total", &[]);
    let histogram_count: f64 = m
        .series("upbit_received_message_size_bytes_count")
        .iter()
        .map(|(_, v)| v)
        .sum();
    assert_eq!(
        frames,
        histogram_count + 1.0,
        "every market frame observed once in the size histogram; +1 for the LIST_SUBSCRIPTIONS answer"
    );

    // The data API serves the latest values the metrics show.
    let (status, market) = app.get_json("/api/v1/markets/KRW-BTC").await;
    assert_eq!(status, 200);
    assert_eq!(market["ticker"]["data"]["code"], "KRW-BTC");
    assert!(market["orderbook"]["data"]["orderbook_units"]
        .as_array()
        .is_some_and(|u| !u.is_empty()));
    assert!(
        market["trade"]["received_timestamp_ms"].as_u64().unwrap()
            >= market["trade"]["exchange_timestamp_ms"].as_u64().unwrap()
    );
    app.shutdown().await;
    sim.stop().await;
}

#[actix_web::test]
async fn metrics_equal_what_the_simulator_sent_in_default() {
    metrics_equal_what_was_sent("DEFAULT").await;
}

#[actix_web::test]
async fn metrics_equal_what_the_simulator_sent_in_simple() {
    metrics_equal_what_was_sent("SIMPLE").await;
}

#[actix_web::test]
async fn metrics_equal_what_the_simulator_sent_in_json_list() {
    metrics_equal_what_was_sent("JSON_LIST").await;
}

#[actix_web::test]
async fn metrics_equal_what_the_simulator_sent_in_simple_list() {
    metrics_equal_what_was_sent("SIMPLE_LIST").await;
}

#[actix_web::test]
async fn pings_go_out_at_the_configured_interval_and_pongs_are_counted() {
    let sim = start_simulator(|c| c.rate = 0.0).await;
    let app = spawn_app(
        &sim.ws_url(),
        &[
            ("connection.ping_interval", "100ms"),
            ("connection.idle_timeout", "2s"),
        ],
    )
    .await;
    eventually("5 pings at the simulator", || async {
        when(sim.stats().pings_received >= 5)
    })
    .await;
    let m = app.metrics().await;
    assert!(m.get("upbit_pings_sent_total", &[]) >= 5.0);
    let pongs = eventually("pongs counted", || async {
        let n = app.metrics().await.get("upbit_pongs_received_total", &[]);
        (n >= 4.0).then_some(n)
    })
    .await;
    assert!(pongs >= 4.0);
    // Only data and ping frames flowed, yet the quiet link was never dropped as idle.
    let m = app.metrics().await;
    assert_eq!(
        m.get("upbit_disconnections_total", &[("reason", "idle_timeout")]),
        0.0
    );
    assert_eq!(m.get("upbit_connections_total", &[]), 1.0);
    app.shutdown().await;
    sim.stop().await;
}

#[actix_web::test]
async fn reconnects_and_resubscribes_after_an_abrupt_drop() {
    let sim = start_simulator(|c| c.rate = 10.0).await;
    let app = spawn_app(
        &sim.ws_url(),
        &[("upbit.types", "ticker,trade"), ("upbit.codes", CODES)],
    )
    .await;
    eventually("ready", || async {
        when(app.get_json("/readyz").await.0 == 200)
    })
    .await;
    sim.inject(Fault::Drop);
    eventually("a second subscription", || async {
        when(subscribe_requests(&sim).len() >= 2)
    })
    .await;
    let requests = subscribe_requests(&sim);
    assert_ne!(
        requests[0][0]["ticket"], requests[1][0]["ticket"],
        "a fresh ticket per connection"
    );
    assert_eq!(
        requests[0][1..],
        requests[1][1..],
        "the same full subscription"
    );
    let m = app.metrics().await;
    assert_eq!(
        m.get("upbit_disconnections_total", &[("reason", "error")]),
        1.0
    );
    assert_eq!(m.get("upbit_connections_total", &[]), 2.0);
    eventually("ready again", || async {
        when(app.get_json("/readyz").await.0 == 200)
    })
    .await;
    app.shutdown().await;
    sim.stop().await;
}

#[actix_web::test]
async fn a_close_frame_is_counted_as_closed_by_server() {
    let sim = start_simulator(|c| c.rate = 5.0).await;
    let app = spawn_app(&sim.ws_url(), &[]).await;
    eventually("subscribed", || async {
        when(!subscribe_requests(&sim).is_empty())
    })
    .await;
    sim.inject(Fault::Close {
        code: 1001,
        reason: Some("going away".into()),
    });
    eventually("closed_by_server counted and reconnected", || async {
        let m = app.metrics().await;
        when(
            m.get(
                "upbit_disconnections_total",
                &[("reason", "closed_by_server")],
            ) == 1.0
                && m.get("upbit_connections_total", &[]) == 2.0,
        )
    })
    .await;
    app.shutdown().await;
    sim.stop().await;
}

#[actix_web::test]
async fn a_mute_exchange_is_detected_within_the_idle_timeout_and_left() {
    let sim = start_simulator(|c| c.rate = 5.0).await;
    let app = spawn_app(
        &sim.ws_url(),
        &[
            ("connection.ping_interval", "200ms"),
            ("connection.idle_timeout", "800ms"),
        ],
    )
    .await;
    eventually("ready", || async {
        when(app.get_json("/readyz").await.0 == 200)
    })
    .await;
    sim.inject(Fault::Mute {
        duration_ms: Some(1500),
    });
    eventually("an idle_timeout disconnect", || async {
        when(
            app.metrics()
                .await
                .get("upbit_disconnections_total", &[("reason", "idle_timeout")])
                >= 1.0,
        )
    })
    .await;
    eventually("reconnected and ready after the mute", || async {
        let m = app.metrics().await;
        when(m.get("upbit_connections_total", &[]) >= 2.0 && app.get_json("/readyz").await.0 == 200)
    })
    .await;
    app.shutdown().await;
    sim.stop().await;
}

#[actix_web::test]
async fn a_429_with_retry_after_is_honoured() {
    let sim = start_simulator(|_| {}).await;
    sim.inject(Fault::RefuseHandshakes {
        status: 429,
        duration_ms: 2500,
        retry_after_secs: Some(2),
    });
    // backoff_min is 50 ms: without Retry-After the service would try ~20 times in 2.5 s.
    let app = spawn_app(&sim.ws_url(), &[]).await;
    eventually("connected after the refusals", || async {
        when(app.metrics().await.get("upbit_connections_total", &[]) == 1.0)
    })
    .await;
    let m = app.metrics().await;
    let refused = m.get("upbit_connect_failures_total", &[("reason", "http_429")]);
    assert!(
        (1.0..=2.0).contains(&refused),
        "{refused} attempts refused with 429 in 2.5 s (Retry-After: 2)"
    );
    assert_eq!(sim.stats().rejected_429 as f64, refused);
    app.shutdown().await;
    sim.stop().await;
}

#[actix_web::test]
async fn a_418_ban_waits_the_retry_after_and_is_counted() {
    let sim = start_simulator(|_| {}).await;
    sim.inject(Fault::RefuseHandshakes {
        status: 418,
        duration_ms: 1500,
        retry_after_secs: Some(2),
    });
    let app = spawn_app(&sim.ws_url(), &[]).await;
    eventually("connected after the ban", || async {
        when(app.metrics().await.get("upbit_connections_total", &[]) == 1.0)
    })
    .await;
    let m = app.metrics().await;
    assert_eq!(
        m.get("upbit_connect_failures_total", &[("reason", "http_418")]),
        1.0,
        "one attempt, then the 2 s wait"
    );
    app.shutdown().await;
    sim.stop().await;
}

#[actix_web::test]
async fn backoff_grows_while_nothing_listens_and_attempts_stay_under_5_per_second() {
    // A port that was free a moment ago: connections are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("ws://127.0.0.1:{port}/websocket/v1");
    let app = spawn_app(
        &url,
        &[
            ("connection.backoff_min", "10ms"),
            ("connection.backoff_max", "10s"),
        ],
    )
    .await;
    let start = std::time::Instant::now();
    eventually("8 refused attempts", || async {
        when(
            app.metrics()
                .await
                .get("upbit_connect_failures_total", &[("reason", "refused")])
                >= 8.0,
        )
    })
    .await;
    // Ceilings 10, 20, 40, ... 1280 ms: 8 attempts cannot take less than the 5-per-second
    // window allows (the 6th waits for the 1st to leave the window).
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "8 attempts in {:?}",
        start.elapsed()
    );
    let (_, status) = app.get_json("/api/v1/status").await;
    assert!(
        status["connection"]["consecutive_failures"]
            .as_u64()
            .unwrap()
            >= 8
    );
    let (code, body) = app.get_json("/readyz").await;
    assert_eq!(code, 503);
    assert!(
        body["reason"].as_str().unwrap().contains("refused"),
        "{body}"
    );
    app.shutdown().await;
}

#[actix_web::test]
async fn malformed_oversized_unknown_and_error_frames_are_counted_and_the_stream_goes_on() {
    let sim = start_simulator(|c| c.rate = 20.0).await;
    let app = spawn_app(
        &sim.ws_url(),
        &[
            ("upbit.types", "ticker,trade"),
            ("upbit.codes", CODES),
            ("pipeline.max_frame_bytes", "65536"),
        ],
    )
    .await;
    eventually("data flowing", || async {
        when(sim.stats().frames_sent >= 10)
    })
    .await;
    sim.inject(Fault::Malformed);
    sim.inject(Fault::UnknownType);
    sim.inject(Fault::Oversized { bytes: 200_000 });
    sim.inject(Fault::ErrorFrame {
        name: "INVALID_PARAM".into(),
    });
    sim.inject(Fault::ErrorFrame {
        name: "SOMETHING_NEW".into(),
    });
    eventually("more data after the bad frames", || async {
        let before = sim.stats().frames_sent;
        actix_rt::time::sleep(Duration::from_millis(200)).await;
        when(sim.stats().frames_sent > before + 4)
    })
    .await;
    sim.inject(Fault::Mute { duration_ms: None });
    counts_match(&app, &sim).await;
    let m = app.metrics().await;
    assert_eq!(
        m.get("upbit_decode_errors_total", &[("reason", "invalid_json")]),
        1.0
    );
    assert_eq!(
        m.get("upbit_decode_errors_total", &[("reason", "unknown_type")]),
        1.0
    );
    assert_eq!(
        m.get("upbit_decode_errors_total", &[("reason", "oversized")]),
        1.0
    );
    assert_eq!(
        m.get("upbit_server_errors_total", &[("name", "INVALID_PARAM")]),
        1.0
    );
    assert_eq!(
        m.get("upbit_server_errors_total", &[("name", "other")]),
        1.0,
        "unknown names stay bounded"
    );
    assert_eq!(
        m.get("upbit_connections_total", &[]),
        1.0,
        "bad frames never cost the connection"
    );
    app.shutdown().await;
    sim.stop().await;
}

#[actix_web::test]
async fn readyz_flips_with_the_connection() {
    let sim = start_simulator(|c| c.rate = 10.0).await;
    let app = spawn_app(&sim.ws_url(), &[]).await;
    assert_eq!(
        app.get_json("/healthz").await,
        (200, serde_json::json!({ "status": "ok" }))
    );
    eventually("ready", || async {
        when(app.get_json("/readyz").await.0 == 200)
    })
    .await;
    sim.inject(Fault::RefuseHandshakes {
        status: 429,
        duration_ms: 1500,
        retry_after_secs: Some(1),
    });
    sim.inject(Fault::Drop);
    let body = eventually("not ready", || async {
        let (status, body) = app.get_json("/readyz").await;
        (status == 503).then_some(body)
    })
    .await;
    assert_eq!(body["status"], "not_ready");
    assert!(body["reason"].is_string());
    assert_eq!(
        app.get_json("/healthz").await.0,
        200,
        "liveness never depends on Upbit"
    );
    eventually("ready again", || async {
        when(app.get_json("/readyz").await.0 == 200)
    })
    .await;
    app.shutdown().await;
    sim.stop().await;
}

#[actix_web::test]
async fn metric_names_follow_prometheus_conventions_and_known_series_start_at_zero() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = spawn_app(
        &format!("ws://127.0.0.1:{port}/websocket/v1"),
        &[("upbit.types", TYPES), ("upbit.codes", CODES)],
    )
    .await;
    let m = app.metrics().await;
    let mut families = 0;
    for line in m.0.lines().filter(|l| l.starts_with("# TYPE upbit_")) {
        let mut parts = line.split_whitespace().skip(2);
        let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
        families += 1;
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{name}"
        );
        match kind {
            "counter" => assert!(
                name.ends_with("_total"),
                "counter {name} must end in _total"
            ),
            _ => assert!(
                !name.ends_with("_total"),
                "{kind} {name} must not end in _total"
            ),
        }
        if name.contains("timestamp") {
            assert!(name.ends_with("_timestamp_seconds"), "{name}");
        }
    }
    assert!(
        families >= 20,
        "only {families} upbit_ families with series at start"
    );
    for (t, c) in [("ticker", "KRW-BTC"), ("candle.1m", "KRW-ETH")] {
        assert_eq!(
            m.value("upbit_received_messages_total", &[("type", t), ("code", c)]),
            Some(0.0)
        );
    }
    assert_eq!(
        m.value("upbit_disconnections_total", &[("reason", "idle_timeout")]),
        Some(0.0)
    );
    assert_eq!(
        m.value("upbit_decode_errors_total", &[("reason", "invalid_json")]),
        Some(0.0)
    );
    assert_eq!(
        m.value(
            "upbit_dropped_messages_total",
            &[("stage", "decoder"), ("reason", "queue_full")]
        ),
        Some(0.0)
    );
    assert_eq!(
        m.value("upbit_subscribed_codes", &[("type", "trade")]),
        Some(2.0)
    );
    assert!(
        m.value("upbit_trade_price", &[("code", "KRW-BTC")])
            .is_none(),
        "no price before data"
    );
    // The NATS sink is off (no nats.url): its series are there at zero, and a capacity of 0
    // is what tells the alerts the sink is off rather than disconnected.
    assert_eq!(m.value("upbit_sink_connected", &[]), Some(0.0));
    assert_eq!(
        m.value("upbit_sink_buffer_capacity_messages", &[]),
        Some(0.0)
    );
    assert!(m.0.contains("process_resident_memory_bytes"));
    app.shutdown().await;
}

/// Market structure through `/metrics`: a SIMPLE orderbook, two DEFAULT trades and a candle
/// injected after the snapshots, every figure computed by hand.
#[actix_web::test]
async fn orderbook_figures_trade_notional_and_candles_reach_metrics_exactly() {
    let sim = start_simulator(|c| c.rate = 0.0).await;
    let app = spawn_app(
        &sim.ws_url(),
        &[
            ("upbit.types", "orderbook,trade,candle.1m"),
            ("upbit.codes", "KRW-BTC"),
        ],
    )
    .await;
    let received = |m: &Metrics, t: &str| {
        m.value(
            "upbit_received_messages_total",
            &[("type", t), ("code", "KRW-BTC")],
        )
        .unwrap_or(0.0)
    };
    let bid = [("code", "KRW-BTC"), ("side", "bid")];
    let before = eventually("the snapshots", || async {
        let m = app.metrics().await;
        let all = ["orderbook", "trade", "candle.1m"];
        all.iter().all(|t| received(&m, t) >= 1.0).then_some(m)
    })
    .await;
    let notional_before = before
        .value("upbit_trade_notional_total", &bid)
        .unwrap_or(0.0);
    let volume_before = before
        .value("upbit_trade_volume_total", &bid)
        .unwrap_or(0.0);

    // mid (1000.5 + 999.5) / 2 = 1000; 10 bps = 999..1001, 50 bps = 995..1005.
    sim.inject(Fault::Raw {
        text: r#"{"ty":"orderbook","cd":"KRW-BTC","tms":1735792085824,"tas":3.0,"tbs":5.0,"obu":[{"ap":1000.5,"bp":999.5,"as":2.0,"bs":1.0},{"ap":1003.0,"bp":996.0,"as":1.0,"bs":4.0}],"st":"REALTIME"}"#.into(),
    });
    for (price, volume) in [(100.0, 2.0), (130.0, 1.0)] {
        sim.inject(Fault::Raw {
            text: format!(
                r#"{{"type":"trade","code":"KRW-BTC","timestamp":1735792085824,"trade_price":{price},"trade_volume":{volume},"ask_bid":"BID","stream_type":"REALTIME"}}"#
            ),
        });
    }
    sim.inject(Fault::Raw {
        text: r#"{"type":"candle.1m","code":"KRW-BTC","candle_date_time_utc":"2025-01-02T04:28:00","opening_price":10,"high_price":12,"low_price":9,"trade_price":11,"candle_acc_trade_volume":3.5,"timestamp":1735792085824,"stream_type":"REALTIME"}"#.into(),
    });
    // Waits for the injected book and candle themselves (their sizes and close, which no
    // simulated message has), not for counts: a count can also grow with a snapshot still on its
    // way, and then the figures below were read from the snapshot's book (seen once under load).
    let code = [("code", "KRW-BTC")];
    let candle = [("type", "candle.1m"), ("code", "KRW-BTC")];
    let m = eventually("the injected messages recorded", || async {
        let m = app.metrics().await;
        let done = m.value("upbit_orderbook_total_ask_size", &code) == Some(3.0)
            && m.value("upbit_orderbook_total_bid_size", &code) == Some(5.0)
            && received(&m, "trade") >= received(&before, "trade") + 2.0
            && m.value("upbit_candle_close_price", &candle) == Some(11.0);
        done.then_some(m)
    })
    .await;
    assert_eq!(m.get("upbit_orderbook_mid_price", &code), 1000.0);
    assert_eq!(m.get("upbit_orderbook_spread_price", &code), 1.0);
    assert_eq!(m.get("upbit_orderbook_spread_ratio", &code), 0.001);
    // Bids 1 + 4 = 5, asks 2 + 1 = 3: (5 − 3) / 8.
    assert_eq!(m.get("upbit_orderbook_imbalance", &code), 0.25);
    let depth = |side, bps| {
        let labels = [("code", "KRW-BTC"), ("side", side), ("bps", bps)];
        (
            m.get("upbit_orderbook_depth", &labels),
            m.get("upbit_orderbook_depth_complete", &labels),
        )
    };
    // 10 bps: only the best levels, and the second ones lie beyond the band.
    assert_eq!(depth("ask", "10"), (2001.0, 1.0));
    assert_eq!(depth("bid", "10"), (999.5, 1.0));
    // 50 bps: both levels; nothing received beyond the band, so it may be truncated.
    assert_eq!(depth("ask", "50"), (3004.0, 0.0));
    assert_eq!(depth("bid", "50"), (999.5 + 3984.0, 0.0));
    assert_eq!(
        m.series("upbit_orderbook_depth").len(),
        8,
        "4 bands × 2 sides"
    );

    // 100 × 2 + 130 × 1 = 330 over a volume of 3: VWAP 110.
    let notional = m.get("upbit_trade_notional_total", &bid) - notional_before;
    let volume = m.get("upbit_trade_volume_total", &bid) - volume_before;
    assert!((notional - 330.0).abs() < 1e-6, "notional {notional}");
    assert!((volume - 3.0).abs() < 1e-9, "volume {volume}");

    assert_eq!(m.get("upbit_candle_open_price", &candle), 10.0);
    assert_eq!(m.get("upbit_candle_high_price", &candle), 12.0);
    assert_eq!(m.get("upbit_candle_low_price", &candle), 9.0);
    assert_eq!(m.get("upbit_candle_close_price", &candle), 11.0);
    assert_eq!(m.get("upbit_candle_volume", &candle), 3.5);
    assert_eq!(
        m.get("upbit_candle_start_timestamp_seconds", &candle),
        1_735_792_080.0
    );
    app.shutdown().await;
    sim.stop().await;
}
