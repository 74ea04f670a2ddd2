//! Faithful to today's Upbit (issue 15): behaviour that follows Upbit's current documentation,
//! asserted against the in-process simulator through the service's public surface.

mod support;

use serde_json::{json, Value};
use support::*;
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
