//! Fault drills: the real service against the simulator's fault injection. In each the service
//! keeps running, reconnects within its bounds, resubscribes with the whole subscription, and
//! counts every message the exchange sent while connected (the simulator's per-(type, code)
//! count equals `upbit_received_messages_total`), or counts the drop when it had to drop.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::support::*;
use serde_json::Value;
use upbit_exporter::simulator::{Fault, SimulatorHandle};

const CODES: &str = "KRW-BTC,KRW-ETH,KRW-XRP";

/// Subscription requests (not LIST_SUBSCRIPTIONS) the simulator received: (at ms, parts).
fn subscribe_requests(sim: &SimulatorHandle) -> Vec<(u64, Vec<Value>)> {
    sim.stats()
        .requests
        .iter()
        .filter_map(|r| Some((r.at_ms, serde_json::from_str::<Vec<Value>>(&r.text).ok()?)))
        .filter(|(_, parts)| !parts.iter().any(|p| p.get("method").is_some()))
        .collect()
}

/// Mutes the exchange, then waits until the service counted exactly what it sent.
async fn all_sent_is_counted(app: &TestApp, sim: &SimulatorHandle) {
    sim.inject(Fault::Mute { duration_ms: None });
    eventually("metrics to equal the simulator's sent counts", || async {
        let sent = sim.stats().sent;
        let received: BTreeMap<String, BTreeMap<String, u64>> = app
            .metrics()
            .await
            .received()
            .into_iter()
            .map(|(t, codes)| (t, codes.into_iter().filter(|(_, n)| *n > 0).collect()))
            .filter(|(_, codes): &(String, BTreeMap<String, u64>)| !codes.is_empty())
            .collect();
        when(!sent.is_empty() && received == sent)
    })
    .await;
}

/// Every subscription carries the same types, codes and format; tickets are fresh.
fn assert_full_resubscriptions(requests: &[(u64, Vec<Value>)]) {
    let (_, first) = &requests[0];
    let mut tickets = std::collections::HashSet::new();
    for (_, parts) in requests {
        assert_eq!(parts[1..], first[1..], "the whole subscription every time");
        assert!(
            tickets.insert(parts[0]["ticket"].as_str().unwrap().to_owned()),
            "a fresh ticket per connection"
        );
    }
}

/// No more than 5 subscriptions (one per connection) within any second.
fn assert_at_most_5_per_second(requests: &[(u64, Vec<Value>)]) {
    let times: Vec<u64> = requests.iter().map(|(at, _)| *at).collect();
    for (i, start) in times.iter().enumerate() {
        let within = times[i..].iter().take_while(|t| **t < start + 1000).count();
        assert!(
            within <= 5,
            "{within} connections within 1 s from {start} ms"
        );
    }
}

#[actix_web::test]
async fn a_minute_of_drops_every_2_seconds_loses_nothing() {
    let sim = start_simulator(|c| {
        c.rate = 20.0;
        c.drop_every = Some(Duration::from_secs(2));
    })
    .await;
    let app = spawn_app(
        &sim.ws_url(),
        &[("upbit.types", "ticker,trade"), ("upbit.codes", CODES)],
    )
    .await;
    // About a minute of drops: run until 30 connections were made (29 dropped), with a
    // generous deadline for a slow machine, rather than for a fixed minute of wall clock.
    let start = Instant::now();
    let mut readiness_seen = (false, false);
    while sim.stats().connections_accepted < 30 {
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "only {} connections in {:?}",
            sim.stats().connections_accepted,
            start.elapsed()
        );
        // /readyz tells the truth throughout: never a 5xx other than 503, and both states seen.
        let (status, body) = app.get_json("/readyz").await;
        match status {
            200 => readiness_seen.0 = true,
            503 => {
                readiness_seen.1 = true;
                assert!(body["reason"].is_string(), "{body}");
            }
            other => panic!("/readyz answered {other}: {body}"),
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    all_sent_is_counted(&app, &sim).await;
    let requests = subscribe_requests(&sim);
    let accepted = sim.stats().connections_accepted;
    assert_eq!(requests.len() as u64, accepted, "one subscription each");
    assert_full_resubscriptions(&requests);
    assert_at_most_5_per_second(&requests);
    // Drops go on every 2 s: judge at a moment when a connection is up (the simulator now ends
    // a dropped TCP connection at once, so a drop at the very end is seen before the reconnect).
    let m = eventually("every drop but the current connection counted", || async {
        let m = app.metrics().await;
        let accepted = sim.stats().connections_accepted as f64;
        let dropped = m.get("upbit_disconnections_total", &[("reason", "error")])
            + m.get(
                "upbit_disconnections_total",
                &[("reason", "closed_by_server")],
            );
        (m.get("upbit_connections_total", &[]) == accepted && dropped == accepted - 1.0)
            .then_some(m)
    })
    .await;
    assert_eq!(m.get("upbit_dropped_messages_total", &[]), 0.0);
    assert!(readiness_seen.0, "ready at some point");
    app.shutdown().await;
    sim.stop().await;
}

#[actix_web::test]
async fn each_close_code_is_counted_and_followed_by_a_full_resubscription() {
    let sim = start_simulator(|c| c.rate = 20.0).await;
    let app = spawn_app(
        &sim.ws_url(),
        &[("upbit.types", "ticker,orderbook"), ("upbit.codes", CODES)],
    )
    .await;
    let codes = [1000u16, 1001, 1008, 1011, 1012, 1013, 4000, 4999];
    for (i, code) in codes.iter().enumerate() {
        eventually("connected and data flowing", || async {
            let m = app.metrics().await;
            when(
                m.get("upbit_connections_total", &[]) == (i + 1) as f64
                    && app.get_json("/readyz").await.0 == 200,
            )
        })
        .await;
        sim.inject(Fault::Close {
            code: *code,
            reason: Some(format!("drill {code}")),
        });
        eventually("the close counted", || async {
            when(
                app.metrics().await.get(
                    "upbit_disconnections_total",
                    &[("reason", "closed_by_server")],
                ) == (i + 1) as f64,
            )
        })
        .await;
    }
    eventually("reconnected after the last close", || async {
        when(app.metrics().await.get("upbit_connections_total", &[]) == (codes.len() + 1) as f64)
    })
    .await;
    all_sent_is_counted(&app, &sim).await;
    let requests = subscribe_requests(&sim);
    assert_eq!(requests.len(), codes.len() + 1);
    assert_full_resubscriptions(&requests);
    assert_at_most_5_per_second(&requests);
    app.shutdown().await;
    sim.stop().await;
}

#[actix_web::test]
async fn a_429_then_a_418_without_retry_after_waits_the_penalty() {
    let sim = start_simulator(|_| {}).await;
    sim.inject(Fault::RefuseHandshakes {
        status: 429,
        duration_ms: 60_000,
        retry_after_secs: Some(0), // no Retry-After header
    });
    let app = spawn_app(
        &sim.ws_url(),
        &[
            ("connection.backoff_min", "10ms"),
            ("connection.backoff_max", "20ms"),
            ("connection.ban_penalty", "3s"),
        ],
    )
    .await;
    eventually("a 429 counted", || async {
        when(
            app.metrics()
                .await
                .get("upbit_connect_failures_total", &[("reason", "http_429")])
                >= 1.0,
        )
    })
    .await;
    // A 429 without Retry-After waits at least 1 s, whatever the 10-20 ms backoff says.
    sim.inject(Fault::RefuseHandshakes {
        status: 418,
        duration_ms: 1_500,
        retry_after_secs: Some(0),
    });
    let banned_at = eventually("a 418 counted", || async {
        let m = app.metrics().await;
        (m.get("upbit_connect_failures_total", &[("reason", "http_418")]) >= 1.0).then(Instant::now)
    })
    .await;
    eventually("connected once the ban is over", || async {
        when(app.metrics().await.get("upbit_connections_total", &[]) == 1.0)
    })
    .await;
    let waited = banned_at.elapsed();
    let m = app.metrics().await;
    let stats = sim.stats();
    assert_eq!(
        m.get("upbit_connect_failures_total", &[("reason", "http_418")]),
        1.0,
        "one attempt in the ban, then the 3 s penalty"
    );
    assert!(
        waited >= Duration::from_millis(2_500),
        "reconnected {waited:?} after the 418"
    );
    assert_eq!(
        m.get("upbit_connect_failures_total", &[("reason", "http_429")]),
        stats.rejected_429 as f64
    );
    assert!(
        stats.rejected_429 <= 2,
        "{} attempts refused with 429 before the 418",
        stats.rejected_429
    );
    assert_eq!(stats.rejected_418, 1);
    app.shutdown().await;
    sim.stop().await;
}

#[actix_web::test]
async fn tls_against_a_plain_listener_fails_as_tls_and_keeps_trying() {
    let sim = start_simulator(|_| {}).await;
    let url = format!("wss://{}/websocket/v1", sim.addr());
    let app = spawn_app(&url, &[("connection.backoff_max", "100ms")]).await;
    eventually("two TLS failures", || async {
        when(
            app.metrics()
                .await
                .get("upbit_connect_failures_total", &[("reason", "tls")])
                >= 2.0,
        )
    })
    .await;
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 503, "{body}");
    let (status, health) = app.get_json("/healthz").await;
    assert_eq!(status, 200, "alive whatever the exchange does: {health}");
    assert_eq!(sim.stats().connections_accepted, 0, "no upgrade ever made");
    app.shutdown().await;
    sim.stop().await;
}

#[actix_web::test]
async fn a_hanging_handshake_times_out_and_is_retried() {
    // Accepts TCP connections and never answers: the handshake hangs.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    {
        let accepted = accepted.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            // Bounded: at most 50 connections, then the listener (and the thread) goes away.
            for stream in listener.incoming().take(50).flatten() {
                accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                held.push(stream);
            }
        });
    }
    let app = spawn_app(
        &format!("ws://{addr}/websocket/v1"),
        &[
            ("connection.connect_timeout", "300ms"),
            ("connection.backoff_max", "100ms"),
        ],
    )
    .await;
    eventually("two timeouts", || async {
        when(
            app.metrics()
                .await
                .get("upbit_connect_failures_total", &[("reason", "timeout")])
                >= 2.0,
        )
    })
    .await;
    assert!(accepted.load(std::sync::atomic::Ordering::SeqCst) >= 2);
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 503);
    assert!(
        body["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("timeout"),
        "{body}"
    );
    app.shutdown().await;
}

#[actix_web::test]
async fn a_flood_into_a_small_queue_is_dropped_counted_and_never_idles_the_reader() {
    const FRAMES: u64 = 100_000;
    let sim = start_simulator(|c| {
        c.rate = 0.0;
        c.firehose = true;
        c.firehose_frames = Some(FRAMES);
        c.markets = Some(vec!["KRW-BTC".into(), "KRW-ETH".into()]);
    })
    .await;
    let app = spawn_app(
        &sim.ws_url(),
        &[
            ("upbit.codes", "KRW-BTC,KRW-ETH"),
            ("pipeline.queue_capacity", "8"),
            ("connection.idle_timeout", "2s"),
        ],
    )
    .await;
    let total = FRAMES + 2; // plus one snapshot per code
    let sum = |m: &Metrics, name: &str| m.series(name).iter().map(|(_, v)| v).sum::<f64>();
    let m = eventually("every frame read, and counted or dropped", || async {
        let m = app.metrics().await;
        let frames = m.get("upbit_received_frames_total", &[]);
        let handled =
            sum(&m, "upbit_received_messages_total") + sum(&m, "upbit_dropped_messages_total");
        // The market frames and the LIST_SUBSCRIPTIONS reply.
        (frames as u64 == sim.stats().frames_sent + 1 && handled >= total as f64).then_some(m)
    })
    .await;
    let received = sum(&m, "upbit_received_messages_total");
    let dropped = m.get(
        "upbit_dropped_messages_total",
        &[("stage", "decoder"), ("reason", "queue_full")],
    ) + m.get(
        "upbit_dropped_messages_total",
        &[("stage", "metrics"), ("reason", "queue_full")],
    );
    // Besides the market frames the exchange sent one LIST_SUBSCRIPTIONS reply, which lands in
    // the flood and is either decoded (not a market message) or dropped with the rest.
    assert_eq!(sim.stats().frames_sent, total);
    let accounted = received + dropped;
    assert!(
        accounted == total as f64 || accounted == total as f64 + 1.0,
        "{received} counted + {dropped} dropped for {total} market frames"
    );
    assert!(dropped > 0.0, "a queue of 8 must overflow under a flood");
    assert!(received > 0.0);
    assert_eq!(
        m.get("upbit_disconnections_total", &[("reason", "idle_timeout")]),
        0.0,
        "the reader never stalled into an idle timeout"
    );
    assert_eq!(m.get("upbit_connections_total", &[]), 1.0);
    let depth = m.get("upbit_pipeline_queue_depth", &[("stage", "decoder")]);
    assert!(depth <= 8.0, "queue depth {depth} over its capacity");
    app.shutdown().await;
    sim.stop().await;
}

#[actix_web::test]
async fn a_stalled_scrape_and_a_half_sent_request_do_not_slow_the_feed() {
    let sim = start_simulator(|c| c.rate = 20.0).await;
    let app = spawn_app(
        &sim.ws_url(),
        &[
            ("upbit.types", "ticker,trade,orderbook"),
            ("upbit.codes", CODES),
            ("http.workers", "1"),
        ],
    )
    .await;
    eventually("ready", || async {
        when(app.get_json("/readyz").await.0 == 200)
    })
    .await;
    let http = app.handle.http_url();
    let addr = http.trim_start_matches("http://").to_owned();
    // A scraper that asks and never reads, and a client that stops halfway through its headers.
    let mut stalled = std::net::TcpStream::connect(&addr).unwrap();
    stalled
        .write_all(
            b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
                .repeat(20)
                .as_slice(),
        )
        .unwrap();
    let mut half = std::net::TcpStream::connect(&addr).unwrap();
    half.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    let before = sim.stats().frames_sent;
    let counted_before = app.metrics().await.get("upbit_received_frames_total", &[]);
    eventually("the feed keeps flowing and being counted", || async {
        let m = app.metrics().await;
        when(
            sim.stats().frames_sent > before + 50
                && m.get("upbit_received_frames_total", &[]) > counted_before + 50.0,
        )
    })
    .await;
    assert_eq!(app.get_json("/readyz").await.0, 200);
    all_sent_is_counted(&app, &sim).await;
    // The stalled scrape still gets its answers once it reads.
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut first = [0u8; 12];
    stalled.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    drop(half);
    app.shutdown().await;
    sim.stop().await;
}
