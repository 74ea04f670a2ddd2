//! Shards: two instances of the service with the same subscription, shard 0 of 2 and 1 of 2,
//! against one simulator. What the simulator received from each is disjoint, together it is
//! the whole subscription (explicit codes and pattern-matched ones), and each instance's status
//! and metrics say which part it took.

use std::collections::BTreeSet;

use crate::support::*;
use serde_json::Value;

/// Codes of a status document's `subscription.resolved.ticker`.
fn resolved_tickers(status: &Value) -> BTreeSet<String> {
    status["subscription"]["resolved"]["ticker"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.as_str().map(str::to_owned))
        .collect()
}

#[actix_web::test]
async fn two_shards_split_one_subscription_exactly() {
    let sim = start_simulator(|c| c.rate = 0.0).await;
    let shard = |index: &'static str| {
        [
            ("upbit.codes", "KRW-*,BTC-ETH,USDT-BTC"),
            ("upbit.types", "ticker,trade"),
            ("connection.max_codes_per_connection", "0"),
            ("shard.count", "2"),
            ("shard.index", index),
        ]
    };
    let first = spawn_app(&sim.ws_url(), &shard("0")).await;
    let second = spawn_app(&sim.ws_url(), &shard("1")).await;
    let mut whole = listed("KRW");
    whole.extend(["BTC-ETH".to_owned(), "USDT-BTC".to_owned()]);

    // One connection per instance; wait until their latest subscriptions cover everything.
    let latest = eventually(
        "both shards subscribed, together covering the whole",
        || async {
            let latest = latest_per_connection(&sim);
            let union: BTreeSet<String> = ticker_codes(&latest).into_iter().collect();
            (latest.len() == 2 && union == whole).then_some(latest)
        },
    )
    .await;
    let parts: Vec<BTreeSet<String>> = latest
        .values()
        .map(|types| {
            let ticker = types["ticker"].clone();
            assert_eq!(types["trade"], ticker, "a code's types stay on one shard");
            ticker
        })
        .collect();
    assert!(
        parts[0].is_disjoint(&parts[1]),
        "a code subscribed by both shards: {:?}",
        parts[0].intersection(&parts[1]).collect::<Vec<_>>()
    );
    assert_eq!(parts[0].len() + parts[1].len(), whole.len());
    for part in &parts {
        // Rendezvous hashing splits 119 codes roughly in half, never all to one side.
        assert!(
            part.len() > whole.len() / 4,
            "{} of {}",
            part.len(),
            whole.len()
        );
    }

    // Each instance's status names its shard and its part, which is one of the two the
    // simulator received.
    let mut from_status = Vec::new();
    for (app, index) in [(&first, 0), (&second, 1)] {
        let (code, status) = app.get_json("/api/v1/status").await;
        assert_eq!(code, 200);
        let mine = resolved_tickers(&status);
        assert!(
            parts.contains(&mine),
            "shard {index}'s status {mine:?} is not what it sent"
        );
        assert_eq!(status["shard"]["index"], index);
        assert_eq!(status["shard"]["count"], 2);
        assert_eq!(status["shard"]["codes"], mine.len());
        assert_eq!(status["shard"]["codes_elsewhere"], whole.len() - mine.len());
        assert_eq!(
            status["subscription"]["desired"]["ticker"],
            serde_json::json!(["BTC-ETH", "KRW-*", "USDT-BTC"]),
            "every shard keeps the whole desired subscription"
        );
        let m = app.metrics().await;
        let index_label = index.to_string();
        assert_eq!(
            m.get(
                "upbit_shard_info",
                &[("index", &index_label), ("count", "2")]
            ),
            1.0
        );
        assert_eq!(
            m.get("upbit_shard_codes", &[("owner", "self")]),
            mine.len() as f64
        );
        assert_eq!(
            m.get("upbit_shard_codes", &[("owner", "others")]),
            (whole.len() - mine.len()) as f64
        );
        from_status.push(mine);
    }
    assert_ne!(from_status[0], from_status[1]);
    first.shutdown().await;
    second.shutdown().await;
}

#[actix_web::test]
async fn an_unsharded_service_is_shard_zero_of_one_and_takes_everything() {
    let sim = start_simulator(|c| c.rate = 0.0).await;
    let app = spawn_app(&sim.ws_url(), &[("upbit.codes", "KRW-BTC,KRW-ETH")]).await;
    let (_, status) = app.get_json("/api/v1/status").await;
    assert_eq!(
        status["shard"],
        serde_json::json!({"index": 0, "count": 1, "codes": 2, "codes_elsewhere": 0})
    );
    let m = app.metrics().await;
    assert_eq!(
        m.get("upbit_shard_info", &[("index", "0"), ("count", "1")]),
        1.0
    );
    assert_eq!(m.get("upbit_shard_codes", &[("owner", "others")]), 0.0);
    app.shutdown().await;
}

#[actix_web::test]
async fn control_max_codes_bounds_each_shards_part_of_a_change_not_the_whole() {
    const TOKEN: &str = "shard-token-0123456789";
    let sim = start_simulator(|c| c.rate = 0.0).await;
    // Among 3 shards (fixed by the hash's unit test): shard 0 takes KRW-ETH and USDT-BTC,
    // shard 2 takes KRW-BTC, KRW-XRP and KRW-SOL, shard 1 takes BTC-ETH.
    let six = serde_json::json!({"ticker": ["KRW-BTC", "KRW-ETH", "KRW-XRP", "BTC-ETH", "USDT-BTC", "KRW-SOL"]});
    let shard = |index: &'static str| {
        [
            ("upbit.codes", "KRW-ETH"),
            ("control.max_codes", "2"),
            ("control.token", TOKEN),
            ("shard.count", "3"),
            ("shard.index", index),
        ]
    };
    let zero = spawn_app(&sim.ws_url(), &shard("0")).await;
    let two = spawn_app(&sim.ws_url(), &shard("2")).await;

    // Six codes, over max_codes as a whole, but shard 0's part is two: accepted.
    let (code, view) = zero
        .send(
            "PUT",
            "/api/v1/subscriptions",
            Some(TOKEN),
            Some(six.clone()),
        )
        .await;
    assert_eq!(code, 200, "{view}");
    let (_, status) = zero.get_json("/api/v1/status").await;
    assert_eq!(
        status["shard"],
        serde_json::json!({"index": 0, "count": 3, "codes": 2, "codes_elsewhere": 4})
    );
    assert_eq!(
        resolved_tickers(&status),
        BTreeSet::from(["KRW-ETH".to_owned(), "USDT-BTC".to_owned()])
    );
    let wanted = BTreeSet::from(["KRW-ETH".to_owned(), "USDT-BTC".to_owned()]);
    eventually("shard 0 asks the simulator for its two codes", || async {
        let latest = latest_per_connection(&sim);
        when(
            latest
                .values()
                .any(|types| types.get("ticker") == Some(&wanted)),
        )
    })
    .await;

    // Shard 2's part of the same six is three: refused, and nothing changes.
    let (code, body) = two
        .send("PUT", "/api/v1/subscriptions", Some(TOKEN), Some(six))
        .await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["error"]["code"], "too_many_codes");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("3 distinct codes on this replica"),
        "{message}"
    );
    let (_, status) = two.get_json("/api/v1/status").await;
    assert_eq!(
        status["subscription"]["desired"]["ticker"],
        serde_json::json!(["KRW-ETH"])
    );
    zero.shutdown().await;
    two.shutdown().await;
}

#[actix_web::test]
async fn a_shard_that_takes_no_code_idles_and_is_ready() {
    let sim = start_simulator(|c| c.rate = 0.0).await;
    // KRW-BTC falls to shard 2 of 3: shard 0 takes nothing.
    let app = spawn_app(
        &sim.ws_url(),
        &[
            ("upbit.codes", "KRW-BTC"),
            ("shard.count", "3"),
            ("shard.index", "0"),
        ],
    )
    .await;
    let (_, status) = app.get_json("/api/v1/status").await;
    assert_eq!(
        status["shard"],
        serde_json::json!({"index": 0, "count": 3, "codes": 0, "codes_elsewhere": 1})
    );
    eventually("an idle shard is ready", || async {
        let (code, _) = app.get_json("/readyz").await;
        when(code == 200)
    })
    .await;
    assert!(
        ticker_codes(&latest_per_connection(&sim)).is_empty(),
        "nothing asked of Upbit"
    );
    app.shutdown().await;
}
