//! The control and data API against the simulator: every route's success and failure cases,
//! what Upbit receives after PUT and PATCH, coalescing, persistence, auth and limits.

use std::time::Duration;

use crate::support::*;
use serde_json::{json, Value};
use upbit_exporter::simulator::SimulatorHandle;

const TOKEN: &str = "test-token-0123456789abcdef";

fn subscribe_requests(sim: &SimulatorHandle) -> Vec<(u64, Vec<Value>)> {
    sim.stats()
        .requests
        .iter()
        .filter_map(|r| {
            serde_json::from_str::<Vec<Value>>(&r.text)
                .ok()
                .map(|v| (r.at_ms, v))
        })
        .filter(|(_, parts)| !parts.iter().any(|p| p.get("method").is_some()))
        .collect()
}

/// type → codes of one subscription request.
fn requested(parts: &[Value]) -> Value {
    let mut map = serde_json::Map::new();
    for part in parts {
        if let (Some(t), Some(codes)) = (part.get("type"), part.get("codes")) {
            map.insert(t.as_str().unwrap().to_owned(), codes.clone());
        }
    }
    Value::Object(map)
}

async fn app_with_token(sim: &SimulatorHandle, extra: &[(&str, &str)]) -> TestApp {
    let mut overrides = vec![("control.token", TOKEN), ("upbit.codes", "KRW-BTC,KRW-XRP")];
    overrides.extend_from_slice(extra);
    let app = spawn_app(&sim.ws_url(), &overrides).await;
    eventually("first subscription", || async {
        when(!subscribe_requests(sim).is_empty())
    })
    .await;
    app
}

#[actix_web::test]
async fn patch_and_put_reach_upbit_as_one_replace_all_message_without_reconnecting() {
    let sim = start_simulator(|c| c.rate = 5.0).await;
    let app = app_with_token(&sim, &[]).await;
    let (status, body) = app
        .send(
            "PATCH",
            "/api/v1/subscriptions",
            Some(TOKEN),
            Some(json!({"add":{"trade":["KRW-DOGE"]},"remove":{"ticker":["KRW-XRP"]}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["subscription"],
        json!({"ticker":["KRW-BTC"],"trade":["KRW-DOGE"]})
    );
    assert_eq!(body["revision"], 1);
    eventually("the patched subscription at Upbit", || async {
        when(subscribe_requests(&sim).len() == 2)
    })
    .await;
    assert_eq!(
        requested(&subscribe_requests(&sim)[1].1),
        json!({"ticker":["KRW-BTC"],"trade":["KRW-DOGE"]})
    );

    let (status, body) = app
        .send(
            "PUT",
            "/api/v1/subscriptions?revision=1",
            Some(TOKEN),
            Some(json!({"orderbook":["KRW-ETH"]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    eventually("the replaced subscription at Upbit", || async {
        when(subscribe_requests(&sim).len() == 3)
    })
    .await;
    assert_eq!(
        requested(&subscribe_requests(&sim)[2].1),
        json!({"orderbook":["KRW-ETH"]})
    );
    assert_eq!(
        sim.stats().connections_accepted,
        1,
        "changes ride the live connection"
    );

    // Upbit acknowledges the new set; status shows desired and acknowledged alike.
    let status = eventually("acknowledged", || async {
        let (_, s) = app.get_json("/api/v1/status").await;
        let ack = &s["subscription"]["acknowledged"];
        (ack.as_array().is_some_and(|a| a.len() == 1) && ack[0]["type"] == "orderbook").then_some(s)
    })
    .await;
    assert_eq!(
        status["subscription"]["desired"],
        json!({"orderbook":["KRW-ETH"]})
    );
    assert_eq!(status["subscription"]["revision"], 2);

    // Series of removed pairs disappear; new ones appear.
    let m = eventually("KRW-ETH orderbook data", || async {
        let m = app.metrics().await;
        (m.get(
            "upbit_received_messages_total",
            &[("type", "orderbook"), ("code", "KRW-ETH")],
        ) > 0.0)
            .then_some(m)
    })
    .await;
    assert!(m
        .value(
            "upbit_received_messages_total",
            &[("type", "ticker"), ("code", "KRW-BTC")]
        )
        .is_none());
    assert!(m
        .value("upbit_trade_price", &[("code", "KRW-BTC")])
        .is_none());
    assert!(m
        .value(
            "upbit_trades_total",
            &[("code", "KRW-DOGE"), ("side", "ask")]
        )
        .is_none());
    assert_eq!(app.get_json("/api/v1/markets/KRW-BTC").await.0, 404);
    app.shutdown().await;
    sim.stop().await;
}

#[actix_web::test]
async fn a_burst_of_50_changes_coalesces_within_upbits_request_limits() {
    let sim = start_simulator(|c| c.rate = 1.0).await;
    let app = app_with_token(&sim, &[]).await;
    let codes = ["KRW-ETH", "KRW-SOL", "KRW-ADA", "KRW-DOGE", "KRW-TRX"];
    let calls = (0..50).map(|i| {
        let body = json!({"add": {"trade": [codes[i % 5]]}});
        let app = &app;
        async move {
            app.send("PATCH", "/api/v1/subscriptions", Some(TOKEN), Some(body))
                .await
                .0
        }
    });
    let statuses = futures_util::future::join_all(calls).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    eventually("the final set at Upbit", || async {
        let last = subscribe_requests(&sim).last().map(|(_, p)| requested(p));
        when(last.is_some_and(|l| l["trade"].as_array().is_some_and(|t| t.len() == 5)))
    })
    .await;
    // Every request (subscriptions and LIST_SUBSCRIPTIONS) in any one-second window: at most 5.
    let times: Vec<u64> = sim.stats().requests.iter().map(|r| r.at_ms).collect();
    for (i, t) in times.iter().enumerate() {
        let in_window = times[i..].iter().take_while(|u| **u < t + 1000).count();
        assert!(
            in_window <= 5,
            "{in_window} requests within 1 s from {t} ms: {times:?}"
        );
    }
    assert!(
        subscribe_requests(&sim).len() <= 6,
        "50 calls coalesced into few messages"
    );
    assert!(
        sim.stats().error_frames_sent.is_empty(),
        "Upbit never complained: {:?}",
        sim.stats().error_frames_sent
    );
    app.shutdown().await;
    sim.stop().await;
}

#[actix_web::test]
async fn an_empty_subscription_idles_the_connection_instead_of_sending_empty_codes() {
    let sim = start_simulator(|c| c.rate = 5.0).await;
    let app = app_with_token(&sim, &[]).await;
    let (status, body) = app
        .send("PUT", "/api/v1/subscriptions", Some(TOKEN), Some(json!({})))
        .await;
    assert_eq!((status, body["subscription"].clone()), (200, json!({})));
    eventually("a fresh idle connection", || async {
        when(sim.stats().connections_accepted == 2)
    })
    .await;
    let (_, status) = app.get_json("/api/v1/status").await;
    assert_eq!(status["connection"]["state"], "idle");
    assert_eq!(
        subscribe_requests(&sim).len(),
        1,
        "nothing with codes: [] was sent"
    );
    assert!(sim
        .stats()
        .requests
        .iter()
        .all(|r| !r.text.contains("\"codes\":[]")));
    assert_eq!(
        app.get_json("/readyz").await.0,
        200,
        "idle on purpose is ready"
    );
    app.shutdown().await;
    sim.stop().await;
}

#[actix_web::test]
async fn reconnect_drops_the_link_and_the_supervisor_reconnects() {
    let sim = start_simulator(|c| c.rate = 5.0).await;
    let app = app_with_token(&sim, &[]).await;
    let (status, body) = app
        .send("POST", "/api/v1/reconnect", Some(TOKEN), None)
        .await;
    assert_eq!((status, body), (202, json!({"status":"reconnecting"})));
    eventually("resubscribed on a new connection", || async {
        when(subscribe_requests(&sim).len() == 2)
    })
    .await;
    let m = app.metrics().await;
    assert_eq!(
        m.get("upbit_disconnections_total", &[("reason", "control")]),
        1.0
    );
    assert_eq!(sim.stats().connections_accepted, 2);
    app.shutdown().await;
    sim.stop().await;
}

#[actix_web::test]
async fn auth_missing_wrong_right_and_disabled() {
    let sim = start_simulator(|c| c.rate = 0.0).await;
    let app = app_with_token(&sim, &[]).await;
    let patch = json!({"add":{"ticker":["KRW-ETH"]}});
    let (status, body) = app
        .send("PATCH", "/api/v1/subscriptions", None, Some(patch.clone()))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("missing_token"))
    );
    let (status, body) = app
        .send(
            "PATCH",
            "/api/v1/subscriptions",
            Some("wrong-token-0123456789"),
            Some(patch.clone()),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("invalid_token"))
    );
    let (status, _) = app
        .send(
            "POST",
            "/api/v1/reconnect",
            Some(&TOKEN[..TOKEN.len() - 1]),
            None,
        )
        .await;
    assert_eq!(status, 401, "a prefix of the token is not the token");
    let (status, _) = app
        .send("PATCH", "/api/v1/subscriptions", Some(TOKEN), Some(patch))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        app.get_json("/api/v1/subscriptions").await.0,
        200,
        "reads are open by default"
    );
    let (_, status) = app.get_json("/api/v1/status").await;
    assert!(
        !status.to_string().contains(TOKEN),
        "the token never appears in status"
    );
    app.shutdown().await;

    let open = spawn_app(&sim.ws_url(), &[]).await;
    let (status, body) = open
        .send("POST", "/api/v1/reconnect", Some(TOKEN), None)
        .await;
    assert_eq!(status, 403);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("token_file"),
        "{body}"
    );
    open.shutdown().await;

    let locked = spawn_app(
        &sim.ws_url(),
        &[("control.token", TOKEN), ("control.protect_reads", "true")],
    )
    .await;
    assert_eq!(locked.get_json("/api/v1/status").await.0, 401);
    assert_eq!(
        locked
            .send("GET", "/api/v1/markets", Some(TOKEN), None)
            .await
            .0,
        200
    );
    assert_eq!(locked.get_json("/healthz").await.0, 200, "probes stay open");
    locked.shutdown().await;
    sim.stop().await;
}

#[actix_web::test]
async fn bad_input_gets_the_right_status_and_changes_nothing() {
    let sim = start_simulator(|c| c.rate = 0.0).await;
    let app = app_with_token(
        &sim,
        &[
            ("control.max_codes", "3"),
            ("control.max_body_bytes", "2048"),
        ],
    )
    .await;
    let raw =
        |method: &'static str, path: &'static str, content_type: &'static str, body: Vec<u8>| {
            let app = &app;
            async move {
                let mut response = app
                    .client
                    .request(method.parse().unwrap(), app.url(path))
                    .insert_header(("Authorization", format!("Bearer {TOKEN}")))
                    .insert_header(("Content-Type", content_type))
                    .send_body(body)
                    .await
                    .unwrap();
                let bytes = response.body().await.unwrap();
                let json: Value = serde_json::from_slice(&bytes).expect("every error is JSON");
                (
                    response.status().as_u16(),
                    json["error"]["code"].as_str().unwrap_or("").to_owned(),
                )
            }
        };
    // (method, path, content type, body, expected status, expected error code)
    type Case = (
        &'static str,
        &'static str,
        &'static str,
        Vec<u8>,
        u16,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "PUT",
            "/api/v1/subscriptions",
            "application/json",
            b"{not json".to_vec(),
            400,
            "malformed_json",
        ),
        (
            "PUT",
            "/api/v1/subscriptions",
            "text/plain",
            b"{}".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            "PUT",
            "/api/v1/subscriptions",
            "application/json",
            vec![b' '; 4096],
            413,
            "payload_too_large",
        ),
        (
            "PUT",
            "/api/v1/subscriptions",
            "application/json",
            br#"{"ticker":"KRW-BTC"}"#.to_vec(),
            422,
            "invalid_body",
        ),
        (
            "PUT",
            "/api/v1/subscriptions",
            "application/json",
            br#"{"quotes":["KRW-BTC"]}"#.to_vec(),
            422,
            "invalid_subscription",
        ),
        (
            "PUT",
            "/api/v1/subscriptions",
            "application/json",
            br#"{"ticker":["krw-btc"]}"#.to_vec(),
            422,
            "invalid_subscription",
        ),
        (
            "PUT",
            "/api/v1/subscriptions",
            "application/json",
            "{\"ticker\":[\"KRW-BTC\\nINJECTED\"]}".as_bytes().to_vec(),
            422,
            "invalid_subscription",
        ),
        (
            "PUT",
            "/api/v1/subscriptions",
            "application/json",
            br#"{"ticker":["KRW-A","KRW-B","KRW-C","KRW-D"]}"#.to_vec(),
            422,
            "too_many_codes",
        ),
        (
            "PATCH",
            "/api/v1/subscriptions",
            "application/json",
            br#"{"add":{},"extra":1}"#.to_vec(),
            422,
            "invalid_body",
        ),
        (
            "PUT",
            "/api/v1/subscriptions?revision=99",
            "application/json",
            br#"{"ticker":["KRW-BTC"]}"#.to_vec(),
            409,
            "revision_conflict",
        ),
        (
            "PUT",
            "/api/v1/subscriptions?revision=abc",
            "application/json",
            br#"{}"#.to_vec(),
            400,
            "invalid_query",
        ),
        (
            "DELETE",
            "/api/v1/subscriptions",
            "application/json",
            vec![],
            405,
            "method_not_allowed",
        ),
        (
            "GET",
            "/api/v1/nothing-here",
            "application/json",
            vec![],
            404,
            "not_found",
        ),
        (
            "GET",
            "/api/v1/markets/krw-btc",
            "application/json",
            vec![],
            400,
            "invalid_code",
        ),
        (
            "GET",
            "/api/v1/markets/KRW-NOPE",
            "application/json",
            vec![],
            404,
            "not_found",
        ),
    ];
    for (method, path, content_type, body, status, code) in cases {
        assert_eq!(
            raw(method, path, content_type, body).await,
            (status, code.to_owned()),
            "{method} {path}"
        );
    }
    let (_, view) = app.get_json("/api/v1/subscriptions").await;
    assert_eq!(
        view,
        json!({"revision":0,"subscription":{"ticker":["KRW-BTC","KRW-XRP"]}}),
        "nothing changed"
    );
    assert_eq!(subscribe_requests(&sim).len(), 1);
    app.shutdown().await;
    sim.stop().await;
}

#[actix_web::test]
async fn the_subscription_survives_a_restart_through_the_state_file() {
    let dir = std::env::temp_dir().join(format!("upbit-control-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("subscription.json");
    let state_path = state.to_str().unwrap();
    let sim = start_simulator(|c| c.rate = 0.0).await;
    let app = app_with_token(&sim, &[("control.state_file", state_path)]).await;
    let (status, _) = app
        .send(
            "PUT",
            "/api/v1/subscriptions",
            Some(TOKEN),
            Some(json!({"trade":["KRW-DOGE"]})),
        )
        .await;
    assert_eq!(status, 200);
    app.shutdown().await;

    let restarted = spawn_app(
        &sim.ws_url(),
        &[
            ("control.state_file", state_path),
            ("upbit.codes", "KRW-BTC"),
        ],
    )
    .await;
    let (_, view) = restarted.get_json("/api/v1/subscriptions").await;
    assert_eq!(
        view["subscription"],
        json!({"trade":["KRW-DOGE"]}),
        "restored, not the configured codes"
    );
    eventually("restored subscription sent to Upbit", || async {
        when(
            subscribe_requests(&sim)
                .last()
                .is_some_and(|(_, p)| requested(p) == json!({"trade":["KRW-DOGE"]})),
        )
    })
    .await;
    restarted.shutdown().await;
    sim.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[actix_web::test]
async fn every_route_in_the_openapi_document_exists_and_answers_as_documented() {
    let sim = start_simulator(|c| c.rate = 2.0).await;
    let app = app_with_token(&sim, &[]).await;
    eventually("some data", || async {
        when(app.get_json("/api/v1/markets/KRW-BTC").await.1["ticker"].is_object())
    })
    .await;
    let (status, doc) = app.get_json("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    let paths = doc["paths"].as_object().unwrap();
    // Every route the app serves, with every method it answers, is in the document…
    for (path, allow) in upbit_exporter::http::routes() {
        for method in allow.split(", ") {
            assert!(
                paths
                    .get(path)
                    .is_some_and(|p| p.get(method.to_lowercase()).is_some()),
                "{method} {path} is served but not in the document"
            );
        }
    }
    assert_eq!(paths.len(), upbit_exporter::http::routes().count());
    // …and every documented operation answers a valid request with a documented 2xx.
    for (path, operations) in paths {
        for (method, operation) in operations.as_object().unwrap() {
            let concrete = path.replace("{code}", "KRW-BTC");
            if operation["responses"].get("101").is_some() {
                // A WebSocket route: the valid request is the upgrade handshake.
                let (response, _socket) = app
                    .client
                    .ws(app.url(&concrete))
                    .connect()
                    .await
                    .unwrap_or_else(|e| panic!("{method} {path}: WebSocket handshake failed: {e}"));
                assert_eq!(response.status().as_u16(), 101, "{method} {path}");
                continue;
            }
            let body = match method.as_str() {
                "put" if path == "/api/v1/orderbook" => Some(json!({"depth":15,"level":null})),
                "put" => Some(json!({"ticker":["KRW-BTC"]})),
                "patch" => Some(json!({"add":{"trade":["KRW-BTC"]}})),
                _ => None,
            };
            let mut request = app
                .client
                .request(method.to_uppercase().parse().unwrap(), app.url(&concrete));
            if operation.get("security").is_some() {
                request = request.insert_header(("Authorization", format!("Bearer {TOKEN}")));
            }
            let response = match body {
                Some(body) => request.send_json(&body).await,
                None => request.send().await,
            }
            .unwrap();
            let status = response.status().as_u16().to_string();
            assert!(
                operation["responses"].get(&status).is_some(),
                "{method} {path} answered {status}, not documented"
            );
            assert!(
                status.starts_with('2'),
                "{method} {path} answered {status} to a valid request"
            );
            actix_rt::time::sleep(Duration::from_millis(10)).await;
        }
    }
    app.shutdown().await;
    sim.stop().await;
}

/// Every `"$ref"` in `value`, with where it stands.
fn refs<'a>(value: &'a Value, at: String, found: &mut Vec<(String, &'a str)>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner.as_str()) {
                    ("$ref", Some(target)) => found.push((at.clone(), target)),
                    _ => refs(inner, format!("{at}/{key}"), found),
                }
            }
        }
        Value::Array(items) => {
            for (i, inner) in items.iter().enumerate() {
                refs(inner, format!("{at}/{i}"), found);
            }
        }
        _ => {}
    }
}

/// What the official schema (tests/openapi/validate.py, run by the test script against the live
/// service) does not check: references resolve, path templates have their parameters,
/// operations are named once, security names a declared scheme.
#[actix_web::test]
async fn the_served_openapi_document_is_consistent() {
    let sim = start_simulator(|_| {}).await;
    let app = app_with_token(&sim, &[]).await;
    let (status, doc) = app.get_json("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        doc["openapi"]
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"],
        json!({"type": "http", "scheme": "bearer"})
    );
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let mut found = Vec::new();
    refs(&doc, String::new(), &mut found);
    assert!(found.len() > 20, "the document refers to its schemas");
    for (at, target) in found {
        let name = target.strip_prefix("#/components/schemas/");
        assert!(
            name.is_some_and(|name| schemas.contains_key(name)),
            "{at}: {target} does not resolve"
        );
    }
    let mut operation_ids = std::collections::BTreeSet::new();
    for (path, operations) in doc["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let id = operation["operationId"].as_str().unwrap();
            assert!(
                operation_ids.insert(id),
                "{method} {path}: operationId {id} twice"
            );
            let responses = operation["responses"].as_object().unwrap();
            assert!(!responses.is_empty(), "{method} {path} has no responses");
            for (code, response) in responses {
                assert!(
                    response["description"].is_string(),
                    "{method} {path} {code}"
                );
            }
            for requirement in operation["security"].as_array().into_iter().flatten() {
                for scheme in requirement.as_object().unwrap().keys() {
                    assert!(
                        doc["components"]["securitySchemes"].get(scheme).is_some(),
                        "{method} {path}: unknown security scheme {scheme}"
                    );
                }
            }
            let parameters = operation["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for template in path.split('/').filter_map(|s| s.strip_prefix('{')) {
                let name = template.trim_end_matches('}');
                assert!(
                    parameters
                        .iter()
                        .any(|p| p["name"] == name && p["in"] == "path" && p["required"] == true),
                    "{method} {path}: path parameter {name} undocumented"
                );
            }
        }
    }
    app.shutdown().await;
    sim.stop().await;
}

/// The real binary on a free port with a token and a state file.
async fn spawn_binary(sim: &SimulatorHandle, state: &str) -> (std::process::Child, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_upbit-exporter"))
        .env("UPBIT_EXPORTER__UPBIT__URL", sim.ws_url())
        .env("UPBIT_EXPORTER__HTTP__LISTEN", &addr)
        .env("UPBIT_EXPORTER__CONTROL__TOKEN", TOKEN)
        .env("UPBIT_EXPORTER__CONTROL__STATE_FILE", state)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("service binary starts");
    until_serving(&addr).await;
    let base = format!("http://{addr}");
    (child, base)
}

async fn call(method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
    let request = awc::Client::default()
        .request(method.parse().unwrap(), url)
        .insert_header(("Authorization", format!("Bearer {TOKEN}")));
    let mut response = match body {
        Some(body) => request.send_json(&body).await,
        None => request.send().await,
    }
    .expect("request");
    let bytes = response.body().await.expect("body");
    (
        response.status().as_u16(),
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[actix_web::test]
async fn revisions_never_repeat_across_a_kill_and_restart() {
    let dir = std::env::temp_dir().join(format!("upbit-control-rev-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state.json");
    let state_path = state.to_str().unwrap();
    let sim = start_simulator(|c| c.rate = 0.0).await;
    let (mut child, base) = spawn_binary(&sim, state_path).await;
    let subscriptions = format!("{base}/api/v1/subscriptions");
    let (status, view) = call(
        "PATCH",
        &format!("{subscriptions}?revision=0"),
        Some(json!({"add":{"trade":["KRW-DOGE"]}})),
    )
    .await;
    assert_eq!((status, &view["revision"]), (200, &json!(1)), "{view}");
    child.kill().expect("SIGKILL: no graceful stop");
    child.wait().unwrap();

    let (mut child, base) = spawn_binary(&sim, state_path).await;
    let subscriptions = format!("{base}/api/v1/subscriptions");
    let (status, answer) = call(
        "PUT",
        &format!("{subscriptions}?revision=0"),
        Some(json!({"ticker":["KRW-BTC"]})),
    )
    .await;
    assert_eq!(
        status, 409,
        "a client holding revision 0 is stale: {answer}"
    );
    assert_eq!(answer["error"]["code"], "revision_conflict");
    let (_, view) = call("GET", &subscriptions, None).await;
    assert_eq!(view["revision"], json!(1), "{view}");
    assert_eq!(view["subscription"]["trade"], json!(["KRW-DOGE"]));
    let (status, view) = call(
        "PUT",
        &format!("{subscriptions}?revision=1"),
        Some(json!({"ticker":["KRW-BTC"]})),
    )
    .await;
    assert_eq!((status, &view["revision"]), (200, &json!(2)));
    child.kill().unwrap();
    child.wait().unwrap();
    sim.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[actix_web::test]
async fn a_corrupt_state_file_is_moved_aside_before_it_is_replaced() {
    let dir = std::env::temp_dir().join(format!("upbit-control-corrupt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state.json");
    std::fs::write(&state, "{\"version\":9,\"subscription\":{}}").unwrap();
    let sim = start_simulator(|c| c.rate = 0.0).await;
    let app = app_with_token(&sim, &[("control.state_file", state.to_str().unwrap())]).await;
    let (_, view) = app.get_json("/api/v1/subscriptions").await;
    assert_eq!(
        view["subscription"],
        json!({"ticker":["KRW-BTC","KRW-XRP"]})
    );
    let (status, _) = app
        .send(
            "PATCH",
            "/api/v1/subscriptions",
            Some(TOKEN),
            Some(json!({"add":{"trade":["KRW-DOGE"]}})),
        )
        .await;
    assert_eq!(status, 200);
    let aside: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("state.json.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "kept beside the new file: {aside:?}");
    assert_eq!(
        std::fs::read_to_string(dir.join(&aside[0])).unwrap(),
        "{\"version\":9,\"subscription\":{}}",
        "unchanged"
    );
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(
        (&saved["version"], &saved["revision"]),
        (&json!(2), &json!(1))
    );
    app.shutdown().await;
    sim.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
