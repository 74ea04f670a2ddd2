//! The live stream against the simulator: WebSocket and SSE consumers side by side, filters, a
//! reconnect of the upstream, a consumer that stops reading, the consumer cap, conflation,
//! refusals and shutdown, asserted through what consumers receive and `/metrics`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

use crate::support::*;
use actix_codec::Framed;
use awc::ws::{self, Frame};
use awc::BoxedSocket;
use futures_util::StreamExt;
use serde_json::Value;
use upbit_exporter::simulator::Fault;

const CODES: &str = "KRW-BTC,KRW-ETH,KRW-XRP";

/// A client without the test client's 10 s response timeout (streams last longer).
fn stream_client() -> awc::Client {
    awc::Client::builder().disable_timeout().finish()
}

/// A WebSocket consumer.
struct WsConsumer {
    framed: Framed<BoxedSocket, ws::Codec>,
}

impl WsConsumer {
    async fn connect(app: &TestApp, query: &str) -> Self {
        let (response, framed) = stream_client()
            .ws(app.url(&format!("/api/v1/stream{query}")))
            .connect()
            .await
            .expect("WebSocket handshake");
        assert_eq!(response.status().as_u16(), 101);
        Self { framed }
    }

    /// The next message, or `Err(close frame)` when the server closes.
    async fn next(&mut self) -> Result<Value, Option<ws::CloseReason>> {
        loop {
            let frame = actix_rt::time::timeout(DEADLINE, self.framed.next())
                .await
                .expect("a frame within the deadline");
            match frame {
                Some(Ok(Frame::Text(text))) => {
                    return Ok(serde_json::from_slice(&text).expect("JSON message"))
                }
                Some(Ok(Frame::Close(reason))) => return Err(reason),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Err(None),
            }
        }
    }
}

/// An SSE consumer.
struct SseConsumer {
    body: SseResponse,
    buffer: String,
}

/// The raw response of an SSE request.
type SseResponse = awc::ClientResponse;

impl SseConsumer {
    async fn connect(app: &TestApp, query: &str) -> Self {
        let response = Self::request(app, query).await;
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(
            response.headers().get("content-type").unwrap(),
            "text/event-stream"
        );
        Self {
            body: response,
            buffer: String::new(),
        }
    }

    async fn request(app: &TestApp, query: &str) -> SseResponse {
        stream_client()
            .get(app.url(&format!("/api/v1/events{query}")))
            .send()
            .await
            .expect("SSE request")
    }

    /// The next event's name and message; `None` when the stream ends.
    async fn next(&mut self) -> Option<(String, Value)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = None;
                let mut data = None;
                for line in block.lines() {
                    if let Some(n) = line.strip_prefix("event: ") {
                        name = Some(n.to_owned());
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data = Some(d.to_owned());
                    }
                }
                match (name, data) {
                    (Some(name), Some(data)) => {
                        let message: Value = serde_json::from_str(&data).expect("JSON data");
                        assert_eq!(message["event"], name.as_str(), "event line = event field");
                        return Some((name, message));
                    }
                    _ => continue, // a keep-alive comment
                }
            }
            let chunk = actix_rt::time::timeout(DEADLINE, self.body.next())
                .await
                .expect("an event within the deadline")?;
            self.buffer
                .push_str(std::str::from_utf8(&chunk.ok()?).expect("UTF-8 events"));
        }
    }

    async fn message(&mut self) -> Value {
        self.next().await.expect("the stream goes on").1
    }
}

/// `(type, code)` of a market message; `None` for link and close events.
fn pair(message: &Value) -> Option<(String, String)> {
    let event = message["event"].as_str()?;
    if event == "link" || event == "close" {
        return None;
    }
    let code = message["data"]["code"].as_str()?;
    let code = code.split('.').next().unwrap();
    Some((event.to_owned(), code.to_owned()))
}

/// The trades' sequential ids, in order.
fn trade_ids(messages: &[Value]) -> Vec<u64> {
    messages
        .iter()
        .filter(|m| m["event"] == "trade")
        .map(|m| m["data"]["sequential_id"].as_u64().expect("sequential_id"))
        .collect()
}

/// A raw HTTP client with a tiny receive buffer that sends one request and never reads.
fn stalled_client(addr: SocketAddr, path: &str) -> TcpStream {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&addr.into()).unwrap();
    let mut stream: TcpStream = socket.into();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    stream
}

#[actix_web::test]
async fn websocket_and_sse_consumers_each_receive_exactly_what_they_asked_for() {
    let sim = start_simulator(|c| c.rate = 20.0).await;
    let app = spawn_app(
        &sim.ws_url(),
        &[
            ("upbit.types", "ticker,trade,orderbook"),
            ("upbit.codes", CODES),
        ],
    )
    .await;
    let mut everything = WsConsumer::connect(&app, "").await;
    let mut btc_tickers = WsConsumer::connect(&app, "?types=ticker&codes=KRW-BTC").await;
    let mut eth_xrp =
        SseConsumer::connect(&app, "?types=trade,orderbook&codes=KRW-ETH,KRW-XRP").await;
    let mut sse_all = SseConsumer::connect(&app, "").await;

    let m = app.metrics().await;
    assert_eq!(m.get("upbit_stream_consumers", &[("transport", "ws")]), 2.0);
    assert_eq!(
        m.get("upbit_stream_consumers", &[("transport", "sse")]),
        2.0
    );

    let (mut all, mut btc, mut narrow, mut all_sse) = (vec![], vec![], vec![], vec![]);
    for (i, list) in [&mut all, &mut btc, &mut narrow, &mut all_sse]
        .into_iter()
        .enumerate()
    {
        let first = match i {
            0 => everything.next().await.unwrap(),
            1 => btc_tickers.next().await.unwrap(),
            2 => eth_xrp.message().await,
            _ => sse_all.message().await,
        };
        assert_eq!(
            first["event"], "link",
            "every stream opens with the link state"
        );
        assert!(first["data"]["state"].is_string());
        list.push(first);
    }
    while trade_ids(&narrow).len() < 30 || btc.len() < 10 {
        tokio::select! {
            m = everything.next() => all.push(m.unwrap()),
            m = btc_tickers.next() => btc.push(m.unwrap()),
            m = eth_xrp.message() => narrow.push(m),
            m = sse_all.message() => all_sse.push(m),
        }
    }

    // Link events (the initial state, the first connect) pass every filter.
    let market = |m: &&Value| m["event"] != "link";
    for m in btc.iter().filter(market) {
        assert_eq!(pair(m), Some(("ticker".into(), "KRW-BTC".into())), "{m}");
        assert!(m["data"]["trade_price"].is_number());
        assert!(
            m["received_timestamp_ms"].as_u64().unwrap()
                >= m["exchange_timestamp_ms"].as_u64().unwrap()
        );
        assert!(m["delay_ms"].is_u64());
    }
    for m in narrow.iter().filter(market) {
        let (t, c) = pair(m).expect("market messages only");
        assert!(t == "trade" || t == "orderbook", "{m}");
        assert!(c == "KRW-ETH" || c == "KRW-XRP", "{m}");
    }
    // Trades are never conflated: the unfiltered stream's ETH/XRP trades and the narrow
    // stream's are the same sequence wherever both were connected.
    let wide: Vec<u64> = all
        .iter()
        .filter(|m| m["event"] == "trade" && pair(m).is_some_and(|(_, c)| c != "KRW-BTC"))
        .map(|m| m["data"]["sequential_id"].as_u64().unwrap())
        .collect();
    let narrow_ids = trade_ids(&narrow);
    let start = wide
        .iter()
        .position(|id| *id == narrow_ids[0])
        .expect("both saw the narrow stream's first trade");
    let common = (wide.len() - start).min(narrow_ids.len());
    assert!(common >= 10, "only {common} trades in common");
    assert_eq!(wide[start..start + common], narrow_ids[..common]);
    let types: std::collections::BTreeSet<String> = all
        .iter()
        .chain(&all_sse)
        .filter_map(pair)
        .map(|(t, _)| t)
        .collect();
    assert_eq!(
        types.len(),
        3,
        "unfiltered streams carry every type: {types:?}"
    );

    let m = app.metrics().await;
    let sent = m.get("upbit_stream_messages_sent_total", &[("transport", "ws")]);
    assert!(sent >= (all.len() + btc.len()) as f64, "{sent}");
    assert!(m.get("upbit_stream_messages_sent_total", &[("transport", "sse")]) > 0.0);
    drop((everything, eth_xrp));
    eventually("departures counted as client", || async {
        let m = app.metrics().await;
        when(
            m.get("upbit_stream_disconnects_total", &[("reason", "client")]) == 2.0
                && m.get("upbit_stream_consumers", &[("transport", "ws")]) == 1.0
                && m.get("upbit_stream_consumers", &[("transport", "sse")]) == 1.0,
        )
    })
    .await;
    app.shutdown().await;
    sim.stop().await;
}

#[actix_web::test]
async fn a_reconnect_of_the_upstream_is_announced_before_any_data_after_the_gap() {
    let sim = start_simulator(|c| c.rate = 50.0).await;
    let app = spawn_app(
        &sim.ws_url(),
        &[("upbit.types", "ticker,trade"), ("upbit.codes", CODES)],
    )
    .await;
    let mut ws = WsConsumer::connect(&app, "").await;
    let mut sse = SseConsumer::connect(&app, "?types=trade").await;
    let mut seen_ws = vec![ws.next().await.unwrap()];
    let mut seen_sse = vec![sse.message().await];
    while seen_ws.len() < 20 || seen_sse.len() < 10 {
        tokio::select! {
            m = ws.next() => seen_ws.push(m.unwrap()),
            m = sse.message() => seen_sse.push(m),
        }
    }
    sim.inject(Fault::Drop);
    // The drop, not the initial state (which is `disconnected`/`starting` for a consumer that
    // came before the first connection).
    let connected_after_drop = |seen: &[Value]| {
        let down = seen.iter().position(|m| {
            m["event"] == "link"
                && m["data"]["state"] == "disconnected"
                && m["data"]["reason"] != "starting"
        })?;
        let up = seen[down..]
            .iter()
            .position(|m| m["event"] == "link" && m["data"]["state"] == "connected")?;
        Some((down, down + up))
    };
    let done =
        |seen: &[Value]| connected_after_drop(seen).is_some_and(|(_, up)| seen.len() > up + 10);
    while !done(&seen_ws) || !done(&seen_sse) {
        tokio::select! {
            m = ws.next() => seen_ws.push(m.unwrap()),
            m = sse.message() => seen_sse.push(m),
        }
    }
    for seen in [&seen_ws, &seen_sse] {
        let (down, up) = connected_after_drop(seen).unwrap();
        assert!(
            seen[..down].iter().any(|m| pair(m).is_some()),
            "data before the drop"
        );
        assert_eq!(seen[down]["data"]["reason"], "error", "{}", seen[down]);
        assert!(
            seen[down + 1..up].iter().all(|m| pair(m).is_none()),
            "no data between the disconnect and the reconnect: {:?}",
            &seen[down + 1..up]
        );
        let reconnected_at = seen[up]["data"]["timestamp_ms"].as_u64().unwrap();
        for m in &seen[up + 1..] {
            assert!(pair(m).is_some(), "{m}");
            assert!(
                m["received_timestamp_ms"].as_u64().unwrap() >= reconnected_at,
                "data after the announcement was read after the reconnect: {m}"
            );
        }
        assert!(
            seen[..down]
                .iter()
                .filter(|m| pair(m).is_some())
                .all(|m| m["received_timestamp_ms"].as_u64().unwrap() <= reconnected_at),
            "everything before the announcement came from the old link"
        );
    }
    app.shutdown().await;
    sim.stop().await;
}

#[actix_web::test]
async fn a_consumer_that_stops_reading_is_dropped_as_slow_and_the_others_keep_receiving() {
    let sim = start_simulator(|c| c.rate = 200.0).await;
    let app = spawn_app(
        &sim.ws_url(),
        &[
            ("upbit.types", "ticker,trade"),
            ("upbit.codes", CODES),
            ("stream.trade_queue", "50"),
        ],
    )
    .await;
    let mut reader = WsConsumer::connect(&app, "?codes=KRW-BTC").await;
    let mut stalled = stalled_client(app.handle.http_addr, "/api/v1/events?types=trade");
    eventually("the stalled consumer joined", || async {
        when(
            app.metrics()
                .await
                .get("upbit_stream_consumers", &[("transport", "sse")])
                == 1.0,
        )
    })
    .await;

    // Read on while the other one stalls, until the service gives up on it.
    let started = Instant::now();
    loop {
        for _ in 0..20 {
            reader.next().await.expect("the reader is never dropped");
        }
        let m = app.metrics().await;
        if m.get("upbit_stream_disconnects_total", &[("reason", "slow")]) == 1.0 {
            assert_eq!(
                m.get("upbit_stream_consumers", &[("transport", "sse")]),
                0.0
            );
            assert_eq!(m.get("upbit_stream_consumers", &[("transport", "ws")]), 1.0);
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "the stalled consumer was never dropped"
        );
    }
    // It never reads again, so nothing more can be written to it: the service shuts its
    // socket down after the grace period, which ends the response (counted when dropped),
    // while the reader goes on.
    let events_served = |m: &Metrics| {
        m.get(
            "upbit_http_requests_total",
            &[
                ("endpoint", "/api/v1/events"),
                ("method", "GET"),
                ("status", "200"),
            ],
        )
    };
    let mut after_drop = 0;
    loop {
        for _ in 0..20 {
            let m = reader.next().await.expect("the reader goes on");
            assert_eq!(pair(&m).map(|(_, c)| c), Some("KRW-BTC".to_owned()));
            after_drop += 1;
        }
        if events_served(&app.metrics().await) == 1.0 {
            break;
        }
        assert!(
            started.elapsed() < 2 * DEADLINE,
            "the stalled connection stayed open"
        );
    }
    assert!(after_drop >= 20);

    // What was buffered, then the end.
    stalled.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut buffer = vec![0; 64 << 10];
    loop {
        match stalled.read(&mut buffer) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the stalled connection is not closed: {e}"),
        }
    }
    assert_eq!(
        app.metrics()
            .await
            .get("upbit_stream_disconnects_total", &[("reason", "client")]),
        0.0,
        "the departure is counted once, as slow"
    );
    app.shutdown().await;
    sim.stop().await;
}

#[actix_web::test]
async fn a_websocket_consumer_that_falls_behind_gets_a_close_frame_saying_slow() {
    let sim = start_simulator(|c| c.rate = 200.0).await;
    let app = spawn_app(
        &sim.ws_url(),
        &[
            ("upbit.types", "trade"),
            ("upbit.codes", CODES),
            ("stream.trade_queue", "50"),
        ],
    )
    .await;
    // Connected, then not polled: its socket fills up and the service's queue for it grows.
    let mut lagging = WsConsumer::connect(&app, "").await;
    eventually("the consumer is dropped as slow", || async {
        let m = app.metrics().await;
        when(m.get("upbit_stream_disconnects_total", &[("reason", "slow")]) == 1.0)
    })
    .await;
    // Reading again, it gets what was on the way, then the reason.
    let close = loop {
        match lagging.next().await {
            Ok(_) => continue,
            Err(reason) => break reason.expect("a close frame"),
        }
    };
    assert_eq!(close.code, ws::CloseCode::Policy);
    let reason = close.description.unwrap();
    assert!(reason.starts_with("slow: more than 50 trades"), "{reason}");
    app.shutdown().await;
    sim.stop().await;
}

#[actix_web::test]
async fn tickers_conflate_for_a_consumer_that_falls_behind_instead_of_queueing() {
    let sim = start_simulator(|c| c.rate = 200.0).await;
    let app = spawn_app(
        &sim.ws_url(),
        &[
            ("upbit.types", "ticker"),
            ("upbit.codes", CODES),
            ("stream.trade_queue", "5"),
        ],
    )
    .await;
    let _stalled = stalled_client(app.handle.http_addr, "/api/v1/events?types=ticker");
    let m = eventually(
        "tickers conflated while the consumer does not read",
        || async {
            let m = app.metrics().await;
            (m.get("upbit_stream_conflated_total", &[]) >= 100.0).then_some(m)
        },
    )
    .await;
    assert_eq!(
        m.get("upbit_stream_disconnects_total", &[("reason", "slow")]),
        0.0,
        "tickers never make a consumer slow"
    );
    assert_eq!(
        m.get("upbit_stream_consumers", &[("transport", "sse")]),
        1.0
    );
    // Its queue never held more than one ticker per code, plus the link event.
    let depths = m.get("upbit_stream_queue_depth_count", &[]);
    assert!(depths > 0.0);
    assert_eq!(
        m.get("upbit_stream_queue_depth_bucket", &[("le", "5")]),
        depths,
        "{}",
        m.0.lines()
            .filter(|l| l.contains("queue_depth"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    app.shutdown().await;
    sim.stop().await;
}

#[actix_web::test]
async fn the_consumer_cap_answers_503_until_a_place_frees_up() {
    let sim = start_simulator(|c| c.rate = 20.0).await;
    let app = spawn_app(
        &sim.ws_url(),
        &[("upbit.codes", CODES), ("stream.max_consumers", "2")],
    )
    .await;
    let first = SseConsumer::connect(&app, "").await;
    let _second = WsConsumer::connect(&app, "").await;
    let mut refused = SseConsumer::request(&app, "").await;
    assert_eq!(refused.status().as_u16(), 503);
    assert_eq!(refused.headers().get("retry-after").unwrap(), "5");
    let body: Value = serde_json::from_slice(&refused.body().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "too_many_consumers");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("max_consumers"));
    let ws_refused = stream_client()
        .ws(app.url("/api/v1/stream"))
        .connect()
        .await;
    assert!(
        matches!(
            ws_refused,
            Err(awc::error::WsClientError::InvalidResponseStatus(s)) if s.as_u16() == 503
        ),
        "a WebSocket consumer is refused the same way"
    );
    drop(first);
    eventually("a place frees up", || async {
        let response = SseConsumer::request(&app, "").await;
        when(response.status() == 200)
    })
    .await;
    app.shutdown().await;
    sim.stop().await;
}

#[actix_web::test]
async fn bad_filters_are_400_reads_need_the_token_when_protected_and_a_plain_get_is_426() {
    const TOKEN: &str = "test-token-0123456789abcdef";
    let sim = start_simulator(|c| c.rate = 5.0).await;
    let app = spawn_app(
        &sim.ws_url(),
        &[("control.token", TOKEN), ("control.protect_reads", "true")],
    )
    .await;
    for (query, code) in [
        ("?types=ticker,quote", "invalid_type"),
        ("?codes=krw-btc", "invalid_code"),
        ("?codes=KRW-BTC,,KRW-ETH", "invalid_code"),
        ("?types=", "invalid_type"),
        ("?type=ticker", "invalid_query"),
    ] {
        for path in ["/api/v1/events", "/api/v1/stream"] {
            let (status, body) = app
                .send("GET", &format!("{path}{query}"), Some(TOKEN), None)
                .await;
            assert_eq!(
                (status, body["error"]["code"].as_str()),
                (400, Some(code)),
                "{path}{query}"
            );
        }
    }
    let (status, body) = app.get_json("/api/v1/events").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("missing_token"))
    );
    assert_eq!(app.get_json("/api/v1/stream").await.0, 401);
    // A plain GET is told to upgrade (over raw TCP: awc does not read a body that comes with
    // `Connection: upgrade`).
    let mut raw = TcpStream::connect(app.handle.http_addr).unwrap();
    write!(
        raw,
        "GET /api/v1/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    raw.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut answer = String::new();
    raw.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 426"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("\r\nupgrade: websocket\r\n"),
        "{answer}"
    );
    assert!(
        answer.contains(r#"{"error":{"code":"upgrade_required""#),
        "{answer}"
    );
    let response = stream_client()
        .get(app.url("/api/v1/events?types=ticker&codes=KRW-BTC"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (response, _framed) = stream_client()
        .ws(app.url("/api/v1/stream"))
        .bearer_auth(TOKEN)
        .connect()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 101);
    assert_eq!(
        app.get_json("/").await.0,
        200,
        "the page itself is static and open"
    );
    app.shutdown().await;

    let off = spawn_app(&sim.ws_url(), &[("stream.enabled", "false")]).await;
    let (status, body) = off.get_json("/api/v1/events").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("stream_disabled"))
    );
    off.shutdown().await;
    sim.stop().await;
}

#[actix_web::test]
async fn shutdown_ends_every_stream_with_a_reason_and_does_not_wait_for_consumers() {
    let sim = start_simulator(|c| c.rate = 5.0).await;
    let app = spawn_app(&sim.ws_url(), &[]).await;
    let mut ws = WsConsumer::connect(&app, "").await;
    let mut sse = SseConsumer::connect(&app, "").await;
    ws.next().await.unwrap();
    sse.message().await;
    let shutdown = actix_rt::spawn(app.shutdown());
    let close = loop {
        match ws.next().await {
            Ok(_) => continue,
            Err(reason) => break reason.expect("a close frame with a reason"),
        }
    };
    assert_eq!(close.code, ws::CloseCode::Away);
    assert!(close.description.unwrap().starts_with("shutdown"));
    let last = loop {
        match sse.next().await {
            Some((name, message)) if name == "close" => break message,
            Some(_) => continue,
            None => panic!("the SSE stream ended without a close event"),
        }
    };
    assert_eq!(last["data"]["reason"], "shutdown");
    assert!(sse.next().await.is_none(), "then the stream ends");
    // Both consumers are still held open here and the WebSocket one never answers the close:
    // the service ended their streams itself, so its stop does not depend on them. (How long
    // the stop takes is not asserted: it also waits up to 3 s for the Upbit link to close.)
    tokio::time::timeout(DEADLINE, shutdown)
        .await
        .expect("the service stops although its consumers never hung up")
        .unwrap();
    drop((ws, sse));
    sim.stop().await;
}
