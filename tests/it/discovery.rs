//! Whole-market coverage against the simulator serving the bundled 294-market list: patterns
//! resolved against `/v1/market/all`, listings and delistings handled live, a failing list
//! tolerated, and a large subscription spread over several connections sharing one budget.

use std::collections::{BTreeMap, BTreeSet};

use crate::support::*;
use upbit_exporter::simulator::Fault;

const TOKEN: &str = "discovery-token-0123456789";

#[actix_web::test]
async fn every_krw_market_is_subscribed_from_a_pattern() {
    let sim = start_simulator(|c| c.rate = 0.0).await;
    let app = spawn_app(
        &sim.ws_url(),
        &[
            ("upbit.codes", "KRW-*,BTC-ETH"),
            ("connection.max_codes_per_connection", "0"),
        ],
    )
    .await;
    let mut expected = listed("KRW");
    expected.insert("BTC-ETH".into());
    let latest = eventually("a subscription holding every KRW market", || async {
        let latest = latest_per_connection(&sim);
        let codes: BTreeSet<String> = ticker_codes(&latest).into_iter().collect();
        (codes == expected).then_some(latest)
    })
    .await;
    assert_eq!(latest.len(), 1, "one connection when unlimited");
    // The series follow the same change through the metrics actor, on its own schedule: wait for
    // them rather than assume they are there once the request reached the exchange.
    let m = eventually("the series of every resolved code", || async {
        let m = app.metrics().await;
        (m.get("upbit_subscribed_codes", &[("type", "ticker")]) == expected.len() as f64)
            .then_some(m)
    })
    .await;
    assert_eq!(m.get("upbit_market_list_codes", &[]), 294.0);
    assert_eq!(
        m.get("upbit_market_list_fetches_total", &[("result", "ok")]),
        1.0
    );
    assert_eq!(
        m.get("upbit_subscribed_codes", &[("type", "ticker")]),
        expected.len() as f64
    );
    let (_, status) = app.get_json("/api/v1/status").await;
    assert_eq!(
        status["subscription"]["desired"]["ticker"],
        serde_json::json!(["BTC-ETH", "KRW-*"])
    );
    assert_eq!(
        status["subscription"]["resolved"]["ticker"]
            .as_array()
            .unwrap()
            .len(),
        expected.len()
    );
    // The subscription document keeps the pattern, not its expansion.
    let (_, view) = app.get_json("/api/v1/subscriptions").await;
    assert_eq!(
        view["subscription"]["ticker"],
        serde_json::json!(["BTC-ETH", "KRW-*"])
    );
    // Market-state series from the tickers' snapshots.
    eventually("market warning series", || async {
        when(
            app.metrics()
                .await
                .value("upbit_market_warning", &[("code", "KRW-BTC")])
                == Some(0.0),
        )
    })
    .await;
    app.shutdown().await;
    sim.stop().await;
}

#[actix_web::test]
async fn a_listing_and_a_delisting_are_handled_live_on_the_same_connection() {
    let sim = start_simulator(|c| c.rate = 2.0).await;
    let app = spawn_app(
        &sim.ws_url(),
        &[
            ("upbit.codes", "KRW-*"),
            ("upbit.types", "ticker,trade"),
            ("discovery.refresh", "1s"),
        ],
    )
    .await;
    eventually("KRW-BTC data counted", || async {
        when(
            app.metrics().await.get(
                "upbit_received_messages_total",
                &[("type", "ticker"), ("code", "KRW-BTC")],
            ) > 0.0,
        )
    })
    .await;
    let connections_before = sim.stats().connections_accepted;
    let listed_after = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    sim.list_market("KRW-NEWCOIN");
    sim.delist_market("KRW-BTC");
    eventually(
        "KRW-NEWCOIN in and KRW-BTC out of the subscription",
        || async {
            let codes = ticker_codes(&latest_per_connection(&sim));
            when(codes.iter().any(|c| c == "KRW-NEWCOIN") && !codes.iter().any(|c| c == "KRW-BTC"))
        },
    )
    .await;
    let m = eventually("the KRW-BTC series removed", || async {
        let m = app.metrics().await;
        m.value(
            "upbit_received_messages_total",
            &[("type", "ticker"), ("code", "KRW-BTC")],
        )
        .is_none()
        .then_some(m)
    })
    .await;
    assert_eq!(
        m.get("upbit_market_list_changes_total", &[("change", "listed")]),
        1.0
    );
    assert_eq!(
        m.get("upbit_market_list_changes_total", &[("change", "delisted")]),
        1.0
    );
    assert!(m
        .value(
            "upbit_received_messages_total",
            &[("type", "trade"), ("code", "KRW-NEWCOIN")]
        )
        .is_some());
    assert_eq!(
        sim.stats().connections_accepted,
        connections_before,
        "changed on the live connection, no reconnect"
    );
    // First seen in a later list: a listing time, from the fetch that showed it.
    let listed_at = eventually("KRW-NEWCOIN's listing time", || async {
        app.metrics().await.value(
            "upbit_market_listed_timestamp_seconds",
            &[("code", "KRW-NEWCOIN")],
        )
    })
    .await;
    assert!(
        listed_at >= listed_after.floor(),
        "{listed_at} < {listed_after}"
    );
    assert!(
        m.value(
            "upbit_market_listed_timestamp_seconds",
            &[("code", "KRW-ETH")]
        )
        .is_none(),
        "in the first list: listed at an unknown time"
    );
    app.shutdown().await;
    sim.stop().await;
}

#[actix_web::test]
async fn a_failing_market_list_is_counted_and_the_last_list_kept() {
    let sim = start_simulator(|c| c.rate = 1.0).await;
    sim.inject(Fault::MarketListDown { status: 503 });
    let app = spawn_app(
        &sim.ws_url(),
        &[
            ("upbit.codes", "KRW-BTC,BTC-*"),
            ("discovery.refresh", "1s"),
        ],
    )
    .await;
    // No list yet: the explicit code works on its own.
    eventually("failures counted while KRW-BTC flows", || async {
        let m = app.metrics().await;
        when(
            m.get("upbit_market_list_fetches_total", &[("result", "error")]) >= 2.0
                && m.get(
                    "upbit_received_messages_total",
                    &[("type", "ticker"), ("code", "KRW-BTC")],
                ) > 0.0,
        )
    })
    .await;
    assert_eq!(ticker_codes(&latest_per_connection(&sim)), ["KRW-BTC"]);
    assert_eq!(
        app.get_json("/readyz").await.0,
        200,
        "ready on explicit codes"
    );
    // The list comes back: the pattern resolves.
    sim.inject(Fault::MarketListDown { status: 0 });
    let btc = listed("BTC");
    eventually("every BTC market subscribed", || async {
        let codes: BTreeSet<String> = ticker_codes(&latest_per_connection(&sim))
            .into_iter()
            .collect();
        when(btc.iter().all(|c| codes.contains(c)) && codes.contains("KRW-BTC"))
    })
    .await;
    // Down again: the last list is kept, nothing is unsubscribed.
    let errors = app
        .metrics()
        .await
        .get("upbit_market_list_fetches_total", &[("result", "error")]);
    sim.inject(Fault::MarketListDown { status: 500 });
    eventually("another failure counted", || async {
        when(
            app.metrics()
                .await
                .get("upbit_market_list_fetches_total", &[("result", "error")])
                > errors,
        )
    })
    .await;
    let codes: BTreeSet<String> = ticker_codes(&latest_per_connection(&sim))
        .into_iter()
        .collect();
    assert_eq!(codes.len(), btc.len() + 1, "the last list is kept");
    app.shutdown().await;
    sim.stop().await;
}

#[actix_web::test]
async fn a_large_subscription_spreads_over_connections_that_share_one_budget() {
    let sim = start_simulator(|c| c.rate = 0.5).await;
    let app = spawn_app(
        &sim.ws_url(),
        &[
            ("upbit.codes", "KRW-*"),
            ("connection.max_codes_per_connection", "15"),
            ("control.token", TOKEN),
        ],
    )
    .await;
    let krw = listed("KRW");
    let wanted_connections = krw.len().div_ceil(15) as u64; // 117 codes: 8 connections
    let latest = eventually("every connection subscribed", || async {
        let latest = latest_per_connection(&sim);
        (latest.len() as u64 == wanted_connections).then_some(latest)
    })
    .await;
    let mut seen = BTreeSet::new();
    for types in latest.values() {
        let codes = &types["ticker"];
        assert!(codes.len() <= 15, "{} codes on one connection", codes.len());
        assert!(codes.len() >= 14, "uneven spread: {}", codes.len());
        for code in codes {
            assert!(seen.insert(code.clone()), "{code} on two connections");
        }
    }
    assert_eq!(seen, krw, "every KRW market on exactly one connection");
    eventually("all connected", || async {
        let m = app.metrics().await;
        when(
            m.get("upbit_connected", &[]) == 1.0
                && m.series("upbit_connection_up").len() as u64 == wanted_connections,
        )
    })
    .await;
    let (_, status) = app.get_json("/api/v1/status").await;
    assert_eq!(
        status["connections"].as_array().unwrap().len() as u64,
        wanted_connections
    );
    assert_eq!(app.get_json("/readyz").await.0, 200);

    // A network blip drops every link at once: all come back, never more than 5 a second.
    sim.inject(Fault::Drop);
    eventually("every connection back", || async {
        when(sim.stats().connections_accepted == 2 * wanted_connections)
    })
    .await;
    let stats = sim.stats();
    assert_eq!(
        stats.rejected_429 + stats.rejected_418,
        0,
        "the shared budget kept within Upbit's 5/s"
    );
    let mut firsts: BTreeMap<u64, u64> = BTreeMap::new();
    for request in &stats.requests {
        firsts.entry(request.connection).or_insert(request.at_ms);
    }
    let times: Vec<u64> = firsts.values().copied().collect();
    for (i, start) in times.iter().enumerate() {
        let within = times[i..].iter().filter(|t| **t < start + 1000).count();
        assert!(within <= 5, "{within} connections subscribed within 1 s");
    }
    // The simulator counts a connection when it accepts it, the service when its handshake
    // completes: wait for the service's count to catch up, then check it is exact.
    let want = (2 * wanted_connections) as f64;
    eventually("the service counts every connection", || async {
        when(app.metrics().await.get("upbit_connections_total", &[]) >= want)
    })
    .await;
    let m = app.metrics().await;
    assert_eq!(m.get("upbit_connections_total", &[]), want);

    // The subscription shrinks to one code: the extra connections close and leave no series.
    let (status, body) = app
        .send(
            "PUT",
            "/api/v1/subscriptions",
            Some(TOKEN),
            Some(serde_json::json!({"ticker": ["KRW-BTC"]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    eventually("one connection left, ready", || async {
        let m = app.metrics().await;
        when(
            sim.stats().active_connections == 1
                && m.series("upbit_connection_up").len() == 1
                && m.get("upbit_connected", &[]) == 1.0
                && app.get_json("/readyz").await.0 == 200,
        )
    })
    .await;
    let (_, status) = app.get_json("/api/v1/status").await;
    assert_eq!(status["connections"].as_array().unwrap().len(), 1);
    assert_eq!(status["connections"][0]["codes"], 1);
    app.shutdown().await;
    sim.stop().await;
}
