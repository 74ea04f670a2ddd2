//! Faithful to today's Upbit (issue 15): behaviour that follows Upbit's current documentation,
//! asserted against the in-process simulator through the service's public surface.

use crate::support::*;
use serde_json::{json, Value};
use upbit_exporter::simulator::{Fault, SimulatorHandle};

const TOKEN: &str = "test-token-0123456789abcdef";

/// The sum of every `upbit_decode_errors_total` series.
async fn decode_errors(app: &TestApp) -> f64 {
    app.metrics()
        .await
        .series("upbit_decode_errors_total")
        .iter()
        .map(|(_, v)| v)
        .sum()
}

/// Waits for `/api/v1/status` to show Upbit's acknowledgement of the ticket the simulator saw
/// last, with the codes expected; returns the acknowledged entries.
async fn acknowledged(app: &TestApp, sim: &SimulatorHandle, codes: Value) -> Value {
    eventually(
        "the latest subscription acknowledged in /api/v1/status",
        || {
            let codes = codes.clone();
            async move {
                let last_ticket = sim
                    .stats()
                    .requests
                    .iter()
                    .rev()
                    .find_map(|r| serde_json::from_str::<Vec<Value>>(&r.text).ok())
                    .and_then(|parts| parts[0]["ticket"].as_str().map(str::to_owned))?;
                let (_, body) = app.get_json("/api/v1/status").await;
                let acknowledged = body["subscription"]["acknowledged"].clone();
                (body["connection"]["ticket"] == last_ticket.as_str()
                    && acknowledged
                        .as_array()
                        .is_some_and(|a| a.iter().all(|e| e["codes"] == codes) && !a.is_empty()))
                .then_some(acknowledged)
            }
        },
    )
    .await
}

/// Waits for `more` data frames beyond what the simulator has sent so far.
async fn more_frames(sim: &SimulatorHandle, more: u64) {
    let from = sim.stats().frames_sent;
    eventually("more data frames", || async {
        when(sim.stats().frames_sent >= from + more)
    })
    .await;
}

/// The stream keeps the configured format through the LIST_SUBSCRIPTIONS verification, a
/// subscription change and a reconnect: Upbit makes a LIST_SUBSCRIPTIONS request's format (DEFAULT
/// when it names none) the whole connection's format, and the simulator does the same.
async fn the_stream_keeps_its_format(format: &str) {
    let sim = start_simulator(|c| c.rate = 20.0).await;
    let app = spawn_app(
        &sim.ws_url(),
        &[
            ("upbit.types", "ticker,trade"),
            ("upbit.codes", "KRW-BTC"),
            ("upbit.format", format),
            ("control.token", TOKEN),
        ],
    )
    .await;
    let listed = acknowledged(&app, &sim, json!(["KRW-BTC"])).await;
    assert_eq!(listed[0]["type"], "ticker", "{listed}");
    more_frames(&sim, 10).await;

    let (status, body) = app
        .send(
            "PATCH",
            "/api/v1/subscriptions",
            Some(TOKEN),
            Some(json!({"add":{"ticker":["KRW-ETH"],"trade":["KRW-ETH"]}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    acknowledged(&app, &sim, json!(["KRW-BTC", "KRW-ETH"])).await;
    more_frames(&sim, 10).await;

    sim.inject(Fault::Drop);
    eventually("a second connection", || async {
        when(sim.stats().connections_accepted >= 2)
    })
    .await;
    acknowledged(&app, &sim, json!(["KRW-BTC", "KRW-ETH"])).await;
    more_frames(&sim, 10).await;

    let stats = sim.stats();
    let list_requests: Vec<Vec<Value>> = stats
        .requests
        .iter()
        .filter_map(|r| serde_json::from_str::<Vec<Value>>(&r.text).ok())
        .filter(|parts| parts.iter().any(|p| p.get("method").is_some()))
        .collect();
    assert!(list_requests.len() >= 3, "{list_requests:?}");
    for request in &list_requests {
        assert_eq!(
            request.last(),
            Some(&json!({ "format": format })),
            "every LIST_SUBSCRIPTIONS carries the format"
        );
    }
    assert_eq!(
        stats.frames_by_format.keys().collect::<Vec<_>>(),
        [format],
        "every frame in the configured format: {:?}",
        stats.frames_by_format
    );
    assert_eq!(decode_errors(&app).await, 0.0);
    app.shutdown().await;
    sim.stop().await;
}

#[actix_web::test]
async fn the_stream_stays_default() {
    the_stream_keeps_its_format("DEFAULT").await;
}

#[actix_web::test]
async fn the_stream_stays_simple() {
    the_stream_keeps_its_format("SIMPLE").await;
}

#[actix_web::test]
async fn the_stream_stays_json_list() {
    the_stream_keeps_its_format("JSON_LIST").await;
}

#[actix_web::test]
async fn the_stream_stays_simple_list() {
    the_stream_keeps_its_format("SIMPLE_LIST").await;
}

/// Every series of `name` as (labels, value), labels as `k=v` strings for short assertions.
async fn series(app: &TestApp, name: &str) -> Vec<(Vec<String>, f64)> {
    app.metrics()
        .await
        .series(name)
        .into_iter()
        .map(|(labels, v)| {
            (
                labels
                    .into_iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect(),
                v,
            )
        })
        .collect()
}

/// Market warnings and cautions come from the market list's `market_event` (asked with
/// `is_details=true`, patterns or not); with no source at all there is no series, never a 0.
#[actix_web::test]
async fn market_warnings_and_cautions_come_from_the_market_list() {
    let sim = start_simulator(|c| {
        c.rate = 10.0;
        c.legacy_ticker_fields = false;
    })
    .await;
    sim.inject(Fault::MarketListDown { status: 503 });
    let app = spawn_app(
        &sim.ws_url(),
        &[
            ("upbit.types", "ticker"),
            ("upbit.codes", "KRW-BTC,KRW-ETH"),
            ("discovery.refresh", "1s"),
        ],
    )
    .await;
    eventually("tickers and a failed market list fetch", || async {
        let m = app.metrics().await;
        when(
            m.get(
                "upbit_received_messages_total",
                &[("type", "ticker"), ("code", "KRW-ETH")],
            ) >= 3.0
                && m.get("upbit_market_list_fetches_total", &[("result", "error")]) >= 1.0,
        )
    })
    .await;
    for name in [
        "upbit_market_warning",
        "upbit_market_caution",
        "upbit_market_info",
        "upbit_trading_suspended",
    ] {
        assert_eq!(series(&app, name).await, [], "{name}: no source has spoken");
    }

    sim.set_market_event("KRW-ETH", Some(true), &[("PRICE_FLUCTUATIONS", true)]);
    sim.inject(Fault::MarketListDown { status: 0 });
    // The metrics actor writes a fetched list's series one after another while a scrape may
    // run: wait for all of them (warning, the ten cautions, the names), then check the values.
    let m = eventually("the market list's events in /metrics", || async {
        let m = app.metrics().await;
        let info = m.series("upbit_market_info").len();
        (m.value("upbit_market_warning", &[("code", "KRW-ETH")])
            .is_some()
            && m.value("upbit_market_warning", &[("code", "KRW-BTC")])
                .is_some()
            && m.series("upbit_market_caution").len() >= 10
            && info >= 2)
            .then_some(m)
    })
    .await;
    assert_eq!(
        m.value("upbit_market_warning", &[("code", "KRW-ETH")]),
        Some(1.0)
    );
    assert_eq!(
        m.value("upbit_market_warning", &[("code", "KRW-BTC")]),
        Some(0.0)
    );
    let caution = |code: &str, reason: &str| {
        m.value(
            "upbit_market_caution",
            &[("code", code), ("reason", reason)],
        )
    };
    assert_eq!(caution("KRW-ETH", "PRICE_FLUCTUATIONS"), Some(1.0));
    assert_eq!(caution("KRW-ETH", "TRADING_VOLUME_SOARING"), Some(0.0));
    assert_eq!(
        caution("KRW-BTC", "CONCENTRATION_OF_SMALL_ACCOUNTS"),
        Some(0.0)
    );
    assert_eq!(
        m.series("upbit_market_caution").len(),
        10,
        "5 flags x 2 codes"
    );
    assert_eq!(
        m.value(
            "upbit_market_info",
            &[
                ("code", "KRW-BTC"),
                ("korean_name", "비트코인"),
                ("english_name", "Bitcoin")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.series("upbit_market_info").len(),
        2,
        "subscribed codes only"
    );
    assert_eq!(
        m.series("upbit_market_warning").len(),
        2,
        "subscribed codes only"
    );
    // The data API shows the same listing: names and the market event as Upbit sent them.
    let (status, market) = app.get_json("/api/v1/markets/KRW-ETH").await;
    assert_eq!(status, 200, "{market}");
    let listing = &market["listing"];
    assert_eq!(listing["english_name"], "Ethereum", "{market}");
    assert_eq!(listing["market_event"]["warning"], true, "{market}");
    assert_eq!(
        listing["market_event"]["caution"]["PRICE_FLUCTUATIONS"], true,
        "{market}"
    );
    assert_eq!(
        listing["market_event"]["caution"]["TRADING_VOLUME_SOARING"], false,
        "{market}"
    );

    // An undocumented flag is reported as OTHER; a lifted warning reads 0.
    sim.set_market_event("KRW-ETH", Some(false), &[("SOMETHING_NEW", true)]);
    eventually("the next fetch's events", || async {
        let m = app.metrics().await;
        when(
            m.value("upbit_market_warning", &[("code", "KRW-ETH")]) == Some(0.0)
                && m.value(
                    "upbit_market_caution",
                    &[("code", "KRW-ETH"), ("reason", "OTHER")],
                ) == Some(1.0),
        )
    })
    .await;
    app.shutdown().await;
    sim.stop().await;
}

/// The orderbook options change through the API, on the live link and without a reconnect: the
/// next request carries the depth suffix and level, the books follow, status and GET show them,
/// and invalid or unauthenticated changes change nothing.
#[actix_web::test]
async fn orderbook_depth_and_level_change_through_the_api() {
    let sim = start_simulator(|c| c.rate = 5.0).await;
    let app = spawn_app(
        &sim.ws_url(),
        &[
            ("upbit.types", "orderbook"),
            ("upbit.codes", "KRW-BTC"),
            ("control.token", TOKEN),
        ],
    )
    .await;
    let units = |market: &Value| {
        market["orderbook"]["data"]["orderbook_units"]
            .as_array()
            .map_or(0, Vec::len)
    };
    eventually("a 30-unit orderbook", || async {
        let (_, market) = app.get_json("/api/v1/markets/KRW-BTC").await;
        (units(&market) == 30).then_some(())
    })
    .await;
    let (status, body) = app.get_json("/api/v1/orderbook").await;
    assert_eq!(
        (status, &body),
        (200, &json!({"revision":0,"depth":null,"level":null}))
    );

    // Refused, and nothing changes: no token, a depth Upbit would turn into 30, a bad level.
    let change = json!({"depth": 5, "level": 10000});
    let (status, _) = app
        .send("PUT", "/api/v1/orderbook", None, Some(change.clone()))
        .await;
    assert_eq!(status, 401);
    let (status, body) = app
        .send(
            "PUT",
            "/api/v1/orderbook",
            Some(TOKEN),
            Some(json!({"depth": 7, "level": "x"})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("depth: 7 is not one of 1, 5, 15, 30") && message.contains("level"),
        "{message}"
    );
    let (status, body) = app
        .send(
            "PUT",
            "/api/v1/orderbook?revision=3",
            Some(TOKEN),
            Some(change.clone()),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let requests_before = sim.stats().requests.len();

    let (status, body) = app
        .send(
            "PUT",
            "/api/v1/orderbook?revision=0",
            Some(TOKEN),
            Some(change),
        )
        .await;
    assert_eq!(
        (status, &body),
        (200, &json!({"revision":1,"depth":5,"level":"10000"}))
    );
    let request = eventually("the new request at the simulator", || async {
        let stats = sim.stats();
        stats.requests[requests_before..]
            .iter()
            .filter_map(|r| serde_json::from_str::<Vec<Value>>(&r.text).ok())
            .find(|r| r.iter().any(|part| part["type"] == "orderbook"))
    })
    .await;
    assert_eq!(
        request[1],
        json!({"type":"orderbook","codes":["KRW-BTC.5"],"level":"10000"})
    );
    eventually("5-unit books on the 10,000 grid", || async {
        let (_, market) = app.get_json("/api/v1/markets/KRW-BTC").await;
        let on_grid = market["orderbook"]["data"]["orderbook_units"]
            .as_array()?
            .iter()
            .all(|u| u["ask_price"].as_f64().is_some_and(|p| p % 10_000.0 == 0.0));
        (units(&market) == 5 && on_grid).then_some(())
    })
    .await;
    let (_, status) = app.get_json("/api/v1/status").await;
    assert_eq!(status["orderbook"], json!({"depth": 5, "level": "10000"}));
    assert_eq!(status["subscription"]["revision"], 1);
    let m = app.metrics().await;
    assert_eq!(
        m.get("upbit_connections_total", &[]),
        1.0,
        "changed on the live link, no reconnect"
    );
    assert!(m.get("upbit_orderbook_best_ask_price", &[("code", "KRW-BTC")]) > 0.0);
    assert_eq!(decode_errors(&app).await, 0.0);
    app.shutdown().await;
    sim.stop().await;
}

/// While the market list says nothing, the ticker's deprecated `market_warning` is used.
#[actix_web::test]
async fn the_tickers_deprecated_warning_is_used_while_the_list_is_silent() {
    let sim = start_simulator(|c| c.rate = 10.0).await;
    sim.inject(Fault::MarketListDown { status: 503 });
    sim.set_market_event("KRW-ETH", Some(true), &[]);
    let app = spawn_app(
        &sim.ws_url(),
        &[
            ("upbit.types", "ticker"),
            ("upbit.codes", "KRW-BTC,KRW-ETH"),
        ],
    )
    .await;
    eventually("warnings from the tickers", || async {
        let m = app.metrics().await;
        when(
            m.value("upbit_market_warning", &[("code", "KRW-ETH")]) == Some(1.0)
                && m.value("upbit_market_warning", &[("code", "KRW-BTC")]) == Some(0.0)
                && m.value("upbit_trading_suspended", &[("code", "KRW-BTC")]) == Some(0.0),
        )
    })
    .await;
    assert_eq!(series(&app, "upbit_market_caution").await, []);
    app.shutdown().await;
    sim.stop().await;
}

/// An optional field of a shape the docs do not promise (`delisting_date` as an object, a
/// price as text) costs the field, not the message: counted per field, the ticker recorded.
#[actix_web::test]
async fn odd_optional_fields_are_counted_and_the_message_kept() {
    let sim = start_simulator(|c| c.rate = 0.0).await;
    let app = spawn_app(
        &sim.ws_url(),
        &[("upbit.types", "ticker"), ("upbit.codes", "KRW-BTC")],
    )
    .await;
    let received = |m: &Metrics| {
        m.get(
            "upbit_received_messages_total",
            &[("type", "ticker"), ("code", "KRW-BTC")],
        )
    };
    let before = eventually("the snapshot", || async {
        let m = app.metrics().await;
        (received(&m) >= 1.0).then(|| received(&m))
    })
    .await;
    sim.inject(Fault::Raw {
        text: r#"{"type":"ticker","code":"KRW-BTC","trade_price":123,"delisting_date":{"date":"2026-01-29"},"acc_trade_price_24h":"n/a","stream_type":"REALTIME"}"#.into(),
    });
    let m = eventually("the odd ticker recorded", || async {
        let m = app.metrics().await;
        (received(&m) > before).then_some(m)
    })
    .await;
    assert_eq!(m.get("upbit_trade_price", &[("code", "KRW-BTC")]), 123.0);
    assert_eq!(
        m.get(
            "upbit_decode_field_errors_total",
            &[("field", "delisting_date")]
        ),
        1.0
    );
    assert_eq!(
        m.get(
            "upbit_decode_field_errors_total",
            &[("field", "acc_trade_price_24h")]
        ),
        1.0
    );
    assert_eq!(decode_errors(&app).await, 0.0);
    app.shutdown().await;
    sim.stop().await;
}

/// Repeated 418s without `Retry-After` wait longer each time: `ban_penalty` doubled per repeat
/// (Upbit: ban times grow with repeats), so the fifth waits 16 × 100 ms; data flowing again
/// starts over.
#[actix_web::test]
async fn repeated_418s_without_retry_after_back_off_further() {
    let sim = start_simulator(|_| {}).await;
    sim.inject(Fault::RefuseHandshakes {
        status: 418,
        duration_ms: 60_000,
        retry_after_secs: Some(0), // no Retry-After header
    });
    let app = spawn_app(
        &sim.ws_url(),
        &[
            ("connection.backoff_min", "10ms"),
            ("connection.backoff_max", "20ms"),
            ("connection.ban_penalty", "100ms"),
        ],
    )
    .await;
    for (bans, wait) in [(1.0, 0.1), (2.0, 0.2), (3.0, 0.4), (4.0, 0.8), (5.0, 1.6)] {
        eventually("the next 418 and its doubled wait", || async {
            let m = app.metrics().await;
            when(
                m.get("upbit_connect_failures_total", &[("reason", "http_418")]) == bans
                    && m.get("upbit_reconnect_backoff_seconds", &[]) == wait,
            )
        })
        .await;
    }
    sim.inject(Fault::Reset);
    eventually("connected once the ban is lifted", || async {
        when(app.metrics().await.get("upbit_connected", &[]) == 1.0)
    })
    .await;
    app.shutdown().await;
    sim.stop().await;
}

/// `upbit.region = sg` picks Singapore's hosts, an explicit `upbit.url` wins over it (here: the
/// simulator serving SGD markets), and the market list next to that URL resolves `SGD-*`.
#[actix_web::test]
async fn a_regional_exchange_serves_its_own_markets() {
    let sim = start_simulator(|c| {
        c.rate = 5.0;
        c.markets = upbit_exporter::simulator::region_markets("sg");
    })
    .await;
    let app = spawn_app(
        &sim.ws_url(),
        &[
            ("upbit.region", "sg"),
            ("upbit.types", "ticker"),
            ("upbit.codes", "SGD-*"),
        ],
    )
    .await;
    let received = eventually("tickers of every SGD market", || async {
        let received = app.metrics().await.received();
        let tickers = received.get("ticker")?;
        (tickers.len() == 6 && tickers.values().all(|n| *n > 0)).then_some(received)
    })
    .await;
    assert!(
        received["ticker"]
            .keys()
            .all(|code| code.starts_with("SGD-")),
        "{received:?}"
    );
    let (_, status) = app.get_json("/api/v1/status").await;
    assert_eq!(status["subscription"]["resolved"]["ticker"][0], "SGD-ADA");
    assert_eq!(
        sim.stats().handshakes.len(),
        1,
        "the explicit URL, not sg-api.upbit.com"
    );
    app.shutdown().await;
    sim.stop().await;
}

/// Orderbook depth and level from the configuration: codes go out as `KRW-BTC.5` with
/// `"level":"10000"` (a numeric string, as Upbit's docs ask), the simulator answers 5 units on
/// a 10,000 KRW grid, and metric labels and the API keep the plain code.
#[actix_web::test]
async fn orderbook_depth_and_level_reach_upbit_and_labels_stay_plain() {
    let sim = start_simulator(|c| c.rate = 5.0).await;
    let app = spawn_app(
        &sim.ws_url(),
        &[
            ("upbit.types", "orderbook"),
            ("upbit.codes", "KRW-BTC"),
            ("upbit.orderbook_depth", "5"),
            ("upbit.orderbook_level", "10000"),
        ],
    )
    .await;
    let market = eventually("an orderbook in the data API", || async {
        let (status, market) = app.get_json("/api/v1/markets/KRW-BTC").await;
        (status == 200 && market["orderbook"]["data"].is_object()).then_some(market)
    })
    .await;
    let units = market["orderbook"]["data"]["orderbook_units"]
        .as_array()
        .expect("units");
    assert_eq!(units.len(), 5);
    for unit in units {
        for side in ["ask_price", "bid_price"] {
            let price = unit[side].as_f64().unwrap();
            assert_eq!(price % 10_000.0, 0.0, "{side} {price} on the 10,000 grid");
        }
    }
    let request: Vec<Value> = serde_json::from_str(&sim.stats().requests[0].text).unwrap();
    assert_eq!(
        request[1],
        json!({"type":"orderbook","codes":["KRW-BTC.5"],"level":"10000"})
    );
    let m = app.metrics().await;
    assert!(m.get("upbit_orderbook_best_ask_price", &[("code", "KRW-BTC")]) > 0.0);
    assert!(
        m.get(
            "upbit_received_messages_total",
            &[("type", "orderbook"), ("code", "KRW-BTC")]
        ) >= 1.0
    );
    let (_, status) = app.get_json("/api/v1/status").await;
    assert_eq!(status["orderbook"], json!({"depth": 5, "level": "10000"}));
    assert_eq!(decode_errors(&app).await, 0.0);
    app.shutdown().await;
    sim.stop().await;
}
