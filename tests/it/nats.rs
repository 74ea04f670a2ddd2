//! The NATS JetStream sink against a real `nats-server -js` (Debian's package), each test with
//! its own server on a free loopback port and its own store directory.
//!
//! These need the `nats-server` binary, so plain `cargo test` skips them (`#[ignore]`);
//! `scripts/test` installs it when missing (scripts/tools.sh) and runs exactly these
//! (`--run-ignored only -E 'binary(it) & test(/^nats::/)'`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use upbit_exporter::simulator::Fault;

use crate::support::{eventually, free_port, spawn_app, start_simulator, Metrics, TestApp};

mod jwt;

/// A `nats-server -js` of this test: stopped (SIGTERM, so it writes its store) on drop.
struct NatsServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

/// A directory of this test process's own for the server on `port` (its store, its files).
fn scratch_dir(port: u16) -> PathBuf {
    std::env::temp_dir().join(format!("upbit-nats-it-{}-{port}", std::process::id()))
}

/// Waits until `app`'s sink has had at least `count` messages acknowledged.
async fn acked(app: &TestApp, count: f64, what: &str) {
    eventually(what, || async {
        (app.metrics().await.get("upbit_sink_acked_total", &[]) >= count).then_some(())
    })
    .await;
}

impl NatsServer {
    async fn start() -> Self {
        let mut server = Self::at(free_port(), None);
        server.run().await;
        server
    }

    /// A server not started yet, on `port`, its store in `dir` (or a fresh temporary one).
    fn at(port: u16, dir: Option<PathBuf>) -> Self {
        let dir = dir.unwrap_or_else(|| scratch_dir(port));
        Self {
            child: None,
            port,
            dir,
        }
    }

    /// Starts the server (again) on its port and store, and waits until JetStream answers.
    async fn run(&mut self) {
        self.run_with(&[]).await
    }

    /// `run` with more arguments (`--auth TOKEN`); waits until the port accepts connections
    /// and, without auth, until JetStream answers.
    async fn run_with(&mut self, extra: &[&str]) {
        let child = Command::new(nats_server_binary())
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server runs (scripts/test installs Debian's nats-server)");
        self.child = Some(child);
        let url = self.url();
        if !extra.is_empty() {
            let addr = format!("127.0.0.1:{}", self.port);
            eventually("nats-server listens", || async {
                std::net::TcpStream::connect(&addr).ok().map(|_| ())
            })
            .await;
            return;
        }
        eventually("nats-server answers with JetStream", || async {
            // The account info request, read raw: async-nats's typed answer expects a newer server.
            let client = async_nats::connect(&url).await.ok()?;
            let reply = client.request("$JS.API.INFO", "".into()).await.ok()?;
            let info: serde_json::Value = serde_json::from_slice(&reply.payload).ok()?;
            (info["type"] == "io.nats.jetstream.api.v1.account_info_response"
                && info.get("error").is_none())
            .then_some(())
        })
        .await;
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops the server the way an operator does (SIGTERM) and waits for it to exit.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `nats-server` from PATH, else where Debian's package puts it (`/usr/sbin`, which a
/// non-root PATH may lack).
fn nats_server_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH").map(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("nats-server"))
            .find(|p| p.is_file())
    });
    on_path
        .flatten()
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/nats-server"))
}

/// One message as the stream stored it.
#[derive(Debug)]
struct Stored {
    subject: String,
    id: Option<String>,
    json: serde_json::Value,
}

impl Stored {
    fn is_link(&self) -> bool {
        self.json["event"] == "link"
    }
}

/// Every message of the stream, in stream order, as a consumer reads it (a pull consumer from
/// the first message, without acknowledgements).
async fn stored(url: &str, stream: &str) -> Vec<Stored> {
    use futures_util::StreamExt;
    let client = async_nats::connect(url).await.expect("connect to nats");
    let js = jetstream::new(client);
    let mut stream = js.get_stream(stream).await.expect("the stream exists");
    let count = stream.info().await.expect("stream info").state.messages as usize;
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::Config {
            ack_policy: jetstream::consumer::AckPolicy::None,
            deliver_policy: jetstream::consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .expect("a consumer");
    let mut messages = consumer.messages().await.expect("the consumer's messages");
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let message = messages
            .next()
            .await
            .expect("the stream has more")
            .expect("a message");
        out.push(Stored {
            subject: message.subject.to_string(),
            id: message
                .headers
                .as_ref()
                .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
                .map(|v| v.as_str().to_owned()),
            json: serde_json::from_slice(&message.payload).expect("JSON payload"),
        });
    }
    out
}

/// The trades a `/api/v1/stream?types=trade` consumer received, as JSON: up to `n`, or what
/// came before the feed (muted by then) stopped sending for a second.
async fn ws_trades(
    framed: &mut actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>,
    n: usize,
) -> Vec<serde_json::Value> {
    use futures_util::StreamExt;
    let mut out = Vec::new();
    while out.len() < n {
        let Ok(frame) = actix_rt::time::timeout(Duration::from_secs(1), framed.next()).await else {
            break;
        };
        if let Some(Ok(awc::ws::Frame::Text(text))) = frame {
            let value: serde_json::Value = serde_json::from_slice(&text).expect("JSON");
            if value["event"] == "trade" {
                out.push(value);
            }
        }
    }
    out
}

fn received_total(m: &Metrics) -> u64 {
    m.received().values().flat_map(|codes| codes.values()).sum()
}

/// Whether the sink has nothing left to send or to hear back: every message sent was
/// acknowledged or refused.
fn sink_idle(m: &Metrics) -> bool {
    // Every message sent ends acknowledged, rejected, or retried (its acknowledgement lost or
    // late, and it is back in the buffer).
    let answered = m.get("upbit_sink_acked_total", &[])
        + m.get("upbit_sink_dropped_total", &[("reason", "rejected")])
        + m.get("upbit_sink_retried_total", &[]);
    m.get("upbit_sink_buffer_messages", &[]) == 0.0
        && m.get("upbit_sink_in_flight_messages", &[]) == 0.0
        && m.get("upbit_sink_published_total", &[]) == answered
}

/// Waits until the simulator is muted and every app's sink has sent and heard back everything
/// its service counted, with the counts unchanged across a read of the stream; returns the
/// stream and each app's scrape from before that read.
async fn settled(url: &str, apps: &[&TestApp]) -> (Vec<Stored>, Vec<Metrics>) {
    eventually(
        "every sink idle and the stream read between two equal scrapes",
        || async {
            let mut before = Vec::new();
            for app in apps {
                let m = app.metrics().await;
                if !sink_idle(&m) {
                    return None;
                }
                before.push(m);
            }
            let messages = stored(url, "UPBIT").await;
            for (app, m) in apps.iter().zip(&before) {
                let again = app.metrics().await;
                let sent = |m: &Metrics| m.get("upbit_sink_published_total", &[]);
                if received_total(&again) != received_total(m)
                    || sent(&again) != sent(m)
                    || !sink_idle(&again)
                {
                    return None;
                }
            }
            Some((messages, before))
        },
    )
    .await
}

const TYPES: [&str; 4] = ["ticker", "trade", "orderbook", "candle.1m"];

fn overrides<'a>(nats_url: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut all = vec![
        ("upbit.codes", "KRW-BTC,KRW-ETH"),
        ("upbit.types", "ticker,trade,orderbook,candle.1m"),
        ("nats.url", nats_url),
        ("nats.reconnect_delay_max", "200ms"),
    ];
    all.extend_from_slice(extra);
    all
}

#[actix_rt::test]
#[ignore = "needs nats-server; scripts/test installs it and runs these"]
async fn nats_a_consumer_reads_every_counted_message_in_order_on_the_documented_subjects() {
    let nats = NatsServer::start().await;
    let url = nats.url();
    let sim = start_simulator(|c| c.rate = 20.0).await;
    let app = spawn_app(&sim.ws_url(), &overrides(&url, &[])).await;
    let (_, mut live) = awc::Client::builder()
        .disable_timeout()
        .finish()
        .ws(app.url("/api/v1/stream?types=trade"))
        .connect()
        .await
        .expect("a live-stream consumer");
    eventually("every type acknowledged by JetStream", || async {
        let m = app.metrics().await;
        let received = m.received();
        let all = TYPES
            .iter()
            .all(|t| received.get(*t).is_some_and(|c| c.len() == 2));
        (all && m.get("upbit_sink_acked_total", &[]) >= 40.0).then_some(())
    })
    .await;
    let (_, status) = app.get_json("/api/v1/status").await;
    assert_eq!(status["nats"]["state"], "connected", "{status}");
    assert_eq!(status["nats"]["stream"], "UPBIT");
    assert_eq!(status["nats"]["url"], url.as_str());
    sim.inject(Fault::Mute { duration_ms: None });
    let (messages, scrapes) = settled(&url, &[&app]).await;
    let m = &scrapes[0];
    let market: Vec<&Stored> = messages.iter().filter(|s| !s.is_link()).collect();
    assert_eq!(
        market.len() as u64,
        received_total(m),
        "every message the service counted is in the stream, once"
    );
    assert_eq!(m.get("upbit_sink_connected", &[]), 1.0);
    assert_eq!(m.get("upbit_sink_duplicates_total", &[]), 0.0);
    assert_eq!(
        m.get("upbit_sink_dropped_total", &[("reason", "buffer_full")]),
        0.0
    );
    // Per type and code: the count, the subject, the payload and the id; in order per subject.
    let mut per_subject: BTreeMap<&str, Vec<&Stored>> = BTreeMap::new();
    for s in &market {
        per_subject.entry(s.subject.as_str()).or_default().push(s);
    }
    for (data_type, codes) in m.received() {
        for (code, count) in codes {
            let subject = format!("upbit.{}.{code}", data_type.replace('.', "_"));
            let on = per_subject
                .get(subject.as_str())
                .map_or(&[][..], Vec::as_slice);
            assert_eq!(on.len() as u64, count, "{subject}");
            let mut last: Option<(u64, u64)> = None;
            for s in on {
                assert_eq!(s.json["event"], data_type.as_str(), "{}", s.json);
                assert_eq!(s.json["data"]["code"], code.as_str());
                assert!(s.json["received_timestamp_ms"].is_u64(), "{}", s.json);
                let exchange = s.json["exchange_timestamp_ms"]
                    .as_u64()
                    .expect("exchange time");
                let id = s.id.as_deref().expect("every market message has an id");
                let seq = s.json["data"]["sequential_id"].as_u64().unwrap_or(0);
                if data_type == "trade" {
                    assert_eq!(id, format!("trade:{code}:{seq}"));
                } else {
                    assert!(
                        id.starts_with(&format!("{data_type}:{code}:{exchange}:")),
                        "{id}"
                    );
                }
                if let Some((last_seq, last_time)) = last {
                    assert!(exchange >= last_time, "{subject}: exchange time goes back");
                    if data_type == "trade" {
                        assert!(
                            seq > last_seq,
                            "{subject}: sequential_id {seq} after {last_seq}"
                        );
                    }
                }
                last = Some((seq, exchange));
            }
        }
    }
    // The payloads are the live stream's entries: every trade a consumer of /api/v1/stream
    // received is in the stream as the same JSON.
    let trades: Vec<&serde_json::Value> = market
        .iter()
        .filter(|s| s.json["event"] == "trade")
        .map(|s| &s.json)
        .collect();
    let consumed = ws_trades(&mut live, trades.len()).await;
    for trade in &consumed {
        assert!(
            trades.contains(&trade),
            "not in the stream as sent live: {trade}"
        );
    }
    assert_eq!(
        consumed.last(),
        trades.last().copied(),
        "the consumer got the last trades, as the stream has them"
    );
    let links: Vec<&Stored> = messages.iter().filter(|s| s.is_link()).collect();
    assert!(
        !links.is_empty(),
        "the link's connected event is in the stream"
    );
    assert!(links.iter().all(|l| l.subject == "upbit.link"));
    assert_eq!(links[0].json["data"]["state"], "connected");
    app.shutdown().await;
    sim.stop().await;
}

/// A message's content without what differs between receivers (the receive time, the delay)
/// or between a snapshot and the realtime message (`stream_type`).
fn content(s: &Stored) -> String {
    let mut data = s.json["data"].clone();
    if let Some(object) = data.as_object_mut() {
        object.remove("stream_type");
    }
    format!("{} {data}", s.json["event"])
}

#[actix_rt::test]
#[ignore = "needs nats-server; scripts/test installs it and runs these"]
async fn nats_two_instances_against_one_simulator_store_every_message_once() {
    let nats = NatsServer::start().await;
    let url = nats.url();
    let sim = start_simulator(|c| c.rate = 20.0).await;
    let first = spawn_app(&sim.ws_url(), &overrides(&url, &[])).await;
    acked(&first, 20.0, "the first instance publishes").await;
    let second = spawn_app(&sim.ws_url(), &overrides(&url, &[])).await;
    eventually(
        "the second instance's copies are recognised as duplicates",
        || async {
            let m = second.metrics().await;
            (m.get("upbit_sink_acked_total", &[]) >= 40.0
                && m.get("upbit_sink_duplicates_total", &[]) >= 20.0)
                .then_some(())
        },
    )
    .await;
    sim.inject(Fault::Mute { duration_ms: None });
    let (messages, scrapes) = settled(&url, &[&first, &second]).await;
    let market: Vec<&Stored> = messages.iter().filter(|s| !s.is_link()).collect();
    let mut contents = BTreeSet::new();
    for s in &market {
        assert!(contents.insert(content(s)), "stored twice: {}", content(s));
    }
    let counted: u64 = scrapes.iter().map(received_total).sum();
    let duplicates: f64 = scrapes
        .iter()
        .map(|m| m.get("upbit_sink_duplicates_total", &[]))
        .sum();
    assert_eq!(
        market.len() as u64 + duplicates as u64,
        counted,
        "every message either instance counted is stored once or acknowledged as a duplicate"
    );
    let ids: BTreeSet<&str> = market.iter().filter_map(|s| s.id.as_deref()).collect();
    assert_eq!(ids.len(), market.len(), "one id per stored message");
    // Both instances' link events are kept: their ids are their own.
    let links = messages.iter().filter(|s| s.is_link()).count();
    assert!(links >= 2, "{links} link events");
    first.shutdown().await;
    second.shutdown().await;
    sim.stop().await;
}

/// How long NATS stays down in the outage test.
const OUTAGE: Duration = Duration::from_secs(10);

#[actix_rt::test]
#[ignore = "needs nats-server; scripts/test installs it and runs these"]
async fn nats_down_then_back_delivers_the_buffer_and_counts_the_rest_while_the_feed_goes_on() {
    let mut nats = NatsServer::start().await;
    let url = nats.url();
    let sim = start_simulator(|c| c.rate = 50.0).await;
    let app = spawn_app(
        &sim.ws_url(),
        &overrides(&url, &[("nats.buffer", "100"), ("nats.ack_timeout", "1s")]),
    )
    .await;
    acked(&app, 20.0, "publishing").await;
    nats.stop();
    let stopped = Instant::now();
    // Held down until the sink reports its buffer overflowing; meanwhile /metrics answers
    // (every poll scrapes it) and the Upbit feed goes on.
    let (at_drops, counted_at_drops) =
        eventually("the sink drops what its buffer cannot hold", || async {
            let m = app.metrics().await;
            let dropped = m.get("upbit_sink_dropped_total", &[("reason", "buffer_full")]);
            (m.get("upbit_sink_connected", &[]) == 0.0 && dropped > 0.0)
                .then(|| (dropped, received_total(&m)))
        })
        .await;
    eventually("the feed goes on while NATS is down", || async {
        let m = app.metrics().await;
        (received_total(&m) >= counted_at_drops + 50
            && m.get("upbit_sink_dropped_total", &[("reason", "buffer_full")]) > at_drops)
            .then_some(())
    })
    .await;
    // The outage lasts at least the 10 s (a scenario length, not a wait for anything):
    // every half second /metrics answers and the feed's count has not gone backwards.
    let mut last = received_total(&app.metrics().await);
    while stopped.elapsed() < OUTAGE {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = received_total(&app.metrics().await);
        assert!(now >= last, "the received count went from {last} to {now}");
        last = now;
    }
    assert!(
        last > counted_at_drops + 50,
        "the feed went on through the outage: {counted_at_drops} -> {last}"
    );
    let (ready, _) = app.get_json("/readyz").await;
    assert_eq!(ready, 200, "nats.required is off: ready without NATS");
    let (_, status) = app.get_json("/api/v1/status").await;
    assert_eq!(status["nats"]["state"], "connecting", "{status}");
    assert_eq!(status["nats"]["buffered"], 100);
    let m = app.metrics().await;
    assert_eq!(m.get("upbit_sink_buffer_messages", &[]), 100.0);
    assert_eq!(m.get("upbit_sink_buffer_capacity_messages", &[]), 100.0);
    nats.run().await;
    eventually("reconnected and the buffer sent", || async {
        let m = app.metrics().await;
        (m.get("upbit_sink_connected", &[]) == 1.0 && sink_idle(&m)).then_some(())
    })
    .await;
    sim.inject(Fault::Mute { duration_ms: None });
    let (messages, scrapes) = settled(&url, &[&app]).await;
    let m = &scrapes[0];
    let market = messages.iter().filter(|s| !s.is_link()).count() as u64;
    let dropped = m.get("upbit_sink_dropped_total", &[("reason", "buffer_full")]) as u64;
    let retried = m.get("upbit_sink_retried_total", &[]) as u64;
    let counted = received_total(m);
    assert!(dropped > 0);
    // Every counted message is stored or counted as dropped. Both at once only for a message
    // whose acknowledgement was lost with the server (stored, then resent into a full buffer and
    // dropped there): at most the resent ones.
    assert!(market <= counted, "{market} stored of {counted}");
    assert!(
        market + dropped >= counted && market + dropped <= counted + retried,
        "stored {market} + dropped {dropped} against counted {counted} (resent {retried})"
    );
    assert_eq!(
        m.get("upbit_sink_dropped_total", &[("reason", "rejected")]),
        0.0
    );
    // The buffer's messages arrived after the restart: trades received while NATS was down
    // are in the stream, after a gap of dropped ones.
    let mut gaps = 0;
    for code in ["KRW-BTC", "KRW-ETH"] {
        let subject = format!("upbit.trade.{code}");
        let ids: Vec<u64> = messages
            .iter()
            .filter(|s| s.subject == subject)
            .filter_map(|s| s.json["data"]["sequential_id"].as_u64())
            .collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len(), "{subject}: no trade stored twice");
        gaps += m.get(
            "upbit_received_messages_total",
            &[("type", "trade"), ("code", code)],
        ) as u64
            - ids.len() as u64;
    }
    assert!(gaps > 0, "some trades were dropped during the outage");
    app.shutdown().await;
    sim.stop().await;
}

#[actix_rt::test]
#[ignore = "needs nats-server; scripts/test installs it and runs these"]
async fn nats_required_holds_readiness_until_the_sink_connects_and_the_feed_never_waits() {
    let port = free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let sim = start_simulator(|c| c.rate = 20.0).await;
    let app = spawn_app(
        &sim.ws_url(),
        &overrides(&url, &[("nats.required", "true"), ("nats.buffer", "10")]),
    )
    .await;
    let reason = eventually(
        "not ready while NATS is absent, the feed flowing",
        || async {
            let (status, body) = app.get_json("/readyz").await;
            let m = app.metrics().await;
            (status == 503 && received_total(&m) >= 40).then(|| body["reason"].to_string())
        },
    )
    .await;
    assert!(
        reason.contains("nats sink (required) not connected: connecting"),
        "{reason}"
    );
    assert!(
        app.metrics()
            .await
            .get("upbit_sink_dropped_total", &[("reason", "buffer_full")])
            > 0.0
    );
    // The server comes up on the configured port: the sink connects, the service is ready.
    let mut nats = NatsServer::at(port, None);
    nats.run().await;
    eventually("ready once the sink publishes", || async {
        let (status, _) = app.get_json("/readyz").await;
        (status == 200 && app.metrics().await.get("upbit_sink_connected", &[]) == 1.0).then_some(())
    })
    .await;
    app.shutdown().await;
    sim.stop().await;
}

#[actix_rt::test]
#[ignore = "needs nats-server; scripts/test installs it and runs these"]
async fn nats_an_existing_stream_with_another_configuration_is_named_and_left_alone() {
    let nats = NatsServer::start().await;
    let url = nats.url();
    let js = jetstream::new(async_nats::connect(&url).await.expect("connect"));
    js.create_stream(jetstream::stream::Config {
        name: "UPBIT".into(),
        subjects: vec!["elsewhere.>".into()],
        duplicate_window: std::time::Duration::from_secs(30),
        ..Default::default()
    })
    .await
    .expect("a stream made by someone else");
    let sim = start_simulator(|c| c.rate = 20.0).await;
    let app = spawn_app(&sim.ws_url(), &overrides(&url, &[])).await;
    let status = eventually("the sink reports the stream's differences", || async {
        let (_, status) = app.get_json("/api/v1/status").await;
        (status["nats"]["state"] == "stream_error").then_some(status)
    })
    .await;
    let error = status["nats"]["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    for part in [
        "stream UPBIT exists with another configuration",
        "subjects",
        "duplicate_window 30s (want 2m)",
    ] {
        assert!(error.contains(part), "{part}: {error}");
    }
    let m = app.metrics().await;
    assert_eq!(m.get("upbit_sink_connected", &[]), 0.0);
    assert_eq!(
        m.get("upbit_sink_published_total", &[]),
        0.0,
        "nothing written to it"
    );
    let mut stream = js.get_stream("UPBIT").await.expect("still there");
    let info = stream.info().await.expect("info");
    assert_eq!(info.config.subjects, ["elsewhere.>"], "left as it was");
    assert_eq!(info.state.messages, 0);
    app.shutdown().await;
    sim.stop().await;
}

#[actix_rt::test]
#[ignore = "needs nats-server; scripts/test installs it and runs these"]
async fn nats_a_token_from_its_file_authenticates_and_is_never_shown() {
    const TOKEN: &str = "s3cret-nats-token-0123";
    let port = free_port();
    let dir = scratch_dir(port);
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let mut nats = NatsServer::at(port, Some(dir.join("store")));
    nats.run_with(&["--auth", TOKEN]).await;
    let url = nats.url();
    let sim = start_simulator(|c| c.rate = 20.0).await;
    let file = token_file.to_str().unwrap();
    let app = spawn_app(
        &sim.ws_url(),
        &overrides(&url, &[("nats.token_file", file)]),
    )
    .await;
    acked(&app, 10.0, "publishing with the token").await;
    let (_, status) = app.get_json("/api/v1/status").await;
    assert!(!status.to_string().contains(TOKEN));
    let wrong = spawn_app(&sim.ws_url(), &overrides(&url, &[])).await;
    let (_, status) = wrong.get_json("/api/v1/status").await;
    assert_ne!(
        status["nats"]["state"], "connected",
        "no token, no connection"
    );
    app.shutdown().await;
    wrong.shutdown().await;
    sim.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[actix_rt::test]
#[ignore = "needs nats-server; scripts/test installs it and runs these"]
async fn nats_over_tls_trusts_the_configured_ca_and_refuses_an_unknown_one() {
    let tls = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nats-tls");
    let (cert, key, ca) = (
        tls.join("server.pem"),
        tls.join("server.key"),
        tls.join("ca.pem"),
    );
    let port = free_port();
    let mut nats = NatsServer::at(port, None);
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    nats.run_with(&["--tls", "--tlscert", cert, "--tlskey", key])
        .await;
    let url = format!("tls://127.0.0.1:{port}");
    let sim = start_simulator(|c| c.rate = 20.0).await;
    let ca = ca.to_str().unwrap();
    let app = spawn_app(&sim.ws_url(), &overrides(&url, &[("nats.tls_ca_file", ca)])).await;
    acked(&app, 10.0, "publishing over TLS").await;
    // Without the test CA the server's certificate is not trusted: no connection.
    let untrusting = spawn_app(&sim.ws_url(), &overrides(&url, &[])).await;
    let status = eventually("the unknown certificate is refused", || async {
        let (_, status) = untrusting.get_json("/api/v1/status").await;
        let error = status["nats"]["last_error"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        (!error.is_empty()).then_some(status)
    })
    .await;
    assert_eq!(status["nats"]["state"], "connecting", "{status}");
    assert_eq!(
        untrusting
            .metrics()
            .await
            .get("upbit_sink_acked_total", &[]),
        0.0
    );
    app.shutdown().await;
    untrusting.shutdown().await;
    sim.stop().await;
}

/// Link events the service produced: one per connect and one per disconnect.
fn link_events(m: &Metrics) -> u64 {
    let downs: f64 = m
        .series("upbit_disconnections_total")
        .iter()
        .map(|(_, v)| v)
        .sum();
    (m.get("upbit_connections_total", &[]) + downs) as u64
}

/// The `/metrics` text after the service stopped (its HTTP server is gone by then).
fn final_metrics(exposition: &upbit_exporter::telemetry::Exposition) -> Metrics {
    Metrics(exposition.render())
}

#[actix_rt::test]
#[ignore = "needs nats-server; scripts/test installs it and runs these"]
async fn nats_at_shutdown_the_buffer_is_sent_or_counted() {
    let nats = NatsServer::start().await;
    let url = nats.url();
    let sim = start_simulator(|c| c.rate = 50.0).await;
    // Connected: stopped while the feed flows, everything counted reaches the stream.
    let app = spawn_app(&sim.ws_url(), &overrides(&url, &[])).await;
    acked(&app, 50.0, "publishing").await;
    let registry = app.handle.exposition.clone();
    app.shutdown().await;
    let m = final_metrics(&registry);
    let stored = stored(&url, "UPBIT").await.len() as u64;
    let at_exit = m.get("upbit_sink_dropped_total", &[("reason", "shutdown")]) as u64;
    let links = link_events(&m);
    assert!(links >= 2, "connected, then disconnected at shutdown");
    assert_eq!(
        stored + at_exit,
        received_total(&m) + links,
        "stored {stored} + dropped at exit {at_exit}: every message and link event"
    );
    assert_eq!(m.get("upbit_sink_buffer_messages", &[]), 0.0);
    // NATS away: what the buffer holds at exit is counted as dropped at shutdown.
    let absent = format!("nats://127.0.0.1:{}", free_port());
    let app = spawn_app(&sim.ws_url(), &overrides(&absent, &[("nats.buffer", "10")])).await;
    eventually("the buffer full", || async {
        let m = app.metrics().await;
        (m.get("upbit_sink_dropped_total", &[("reason", "buffer_full")]) > 0.0).then_some(())
    })
    .await;
    let registry = app.handle.exposition.clone();
    app.shutdown().await;
    let m = final_metrics(&registry);
    assert_eq!(
        m.get("upbit_sink_dropped_total", &[("reason", "shutdown")]),
        10.0
    );
    assert_eq!(m.get("upbit_sink_buffer_messages", &[]), 0.0);
    assert_eq!(
        m.get("upbit_sink_dropped_total", &[("reason", "shutdown")])
            + m.get("upbit_sink_dropped_total", &[("reason", "buffer_full")]),
        (received_total(&m) + link_events(&m)) as f64,
        "nothing published, every message and link event counted"
    );
    sim.stop().await;
}

#[actix_rt::test]
#[ignore = "needs nats-server; scripts/test installs it and runs these"]
async fn nats_a_user_nkey_seed_from_its_file_authenticates() {
    let user = nkeys::KeyPair::new_user();
    let port = free_port();
    let dir = scratch_dir(port);
    std::fs::create_dir_all(&dir).unwrap();
    let (seed_file, config) = (dir.join("user.nk"), dir.join("server.conf"));
    std::fs::write(&seed_file, user.seed().unwrap()).unwrap();
    let users = format!(
        "authorization {{ users: [ {{ nkey: {} }} ] }}\n",
        user.public_key()
    );
    std::fs::write(&config, users).unwrap();
    let mut nats = NatsServer::at(port, Some(dir.join("store")));
    nats.run_with(&["-c", config.to_str().unwrap()]).await;
    let url = nats.url();
    let sim = start_simulator(|c| c.rate = 20.0).await;
    let seed = seed_file.to_str().unwrap();
    let app = spawn_app(
        &sim.ws_url(),
        &overrides(&url, &[("nats.nkey_seed_file", seed)]),
    )
    .await;
    acked(&app, 10.0, "publishing as the nkey user").await;
    let (_, status) = app.get_json("/api/v1/status").await;
    assert!(!status.to_string().contains(&user.seed().unwrap()));
    app.shutdown().await;
    sim.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[actix_rt::test]
#[ignore = "needs nats-server; scripts/test installs it and runs these"]
async fn nats_messages_the_server_refuses_are_counted_as_rejected_and_the_rest_go_on() {
    let nats = NatsServer::start().await;
    let url = nats.url();
    // The configured stream, but made by an operator with a message size limit that every
    // orderbook entry exceeds and every trade entry fits.
    let js = jetstream::new(async_nats::connect(&url).await.expect("connect"));
    js.create_stream(jetstream::stream::Config {
        name: "UPBIT".into(),
        subjects: vec!["upbit.>".into()],
        max_age: Duration::from_secs(86_400),
        duplicate_window: Duration::from_secs(120),
        max_message_size: 1500,
        ..Default::default()
    })
    .await
    .expect("the operator's stream");
    let sim = start_simulator(|c| c.rate = 20.0).await;
    let app = spawn_app(
        &sim.ws_url(),
        &overrides(&url, &[("upbit.types", "trade,orderbook")]),
    )
    .await;
    let m = eventually("orderbooks refused, trades stored", || async {
        let m = app.metrics().await;
        (m.get("upbit_sink_dropped_total", &[("reason", "rejected")]) >= 4.0
            && m.get("upbit_sink_acked_total", &[]) >= 10.0)
            .then_some(m)
    })
    .await;
    assert_eq!(m.get("upbit_sink_connected", &[]), 1.0);
    let (_, status) = app.get_json("/api/v1/status").await;
    let error = status["nats"]["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("refused"), "{error}");
    sim.inject(Fault::Mute { duration_ms: None });
    let (messages, _) = settled(&url, &[&app]).await;
    assert!(messages
        .iter()
        .any(|s| s.subject.starts_with("upbit.trade.")));
    assert!(
        messages
            .iter()
            .all(|s| !s.subject.starts_with("upbit.orderbook.")),
        "no orderbook fits the limit"
    );
    app.shutdown().await;
    sim.stop().await;
}

/// The sink's view in `/api/v1/status` says nothing of these secrets.
fn shows_none_of(status: &serde_json::Value, secrets: &[&str]) {
    let text = status.to_string();
    for secret in secrets {
        assert!(!text.contains(secret), "a secret in the status: {text}");
    }
}

#[actix_rt::test]
#[ignore = "needs nats-server; scripts/test installs it and runs these"]
async fn nats_a_credentials_file_authenticates_in_operator_mode_and_another_accounts_is_refused() {
    use nkeys::KeyPair;
    // Operator mode: the server trusts the operator, knows the accounts it signed (preloaded),
    // and admits a user whose JWT one of them signed and who proves it holds the user's seed.
    let operator = KeyPair::new_operator();
    let (system, account, stranger) = (
        KeyPair::new_account(),
        KeyPair::new_account(),
        KeyPair::new_account(),
    );
    let (user, outsider) = (KeyPair::new_user(), KeyPair::new_user());
    let user_jwt = jwt::user(&account, &user);
    // Signed by an account the operator never signed: the server cannot resolve its issuer.
    let outsider_jwt = jwt::user(&stranger, &outsider);
    let port = free_port();
    let dir = scratch_dir(port);
    std::fs::create_dir_all(&dir).unwrap();
    let (operator_file, config) = (dir.join("operator.jwt"), dir.join("server.conf"));
    let (creds_file, outsider_file) = (dir.join("user.creds"), dir.join("outsider.creds"));
    std::fs::write(&operator_file, jwt::operator(&operator, &system)).unwrap();
    std::fs::write(&creds_file, jwt::creds(&user_jwt, &user)).unwrap();
    std::fs::write(&outsider_file, jwt::creds(&outsider_jwt, &outsider)).unwrap();
    let server_config = format!(
        "operator: {:?}\nsystem_account: {sys}\nresolver: MEMORY\n\
         resolver_preload: {{\n  {sys}: {:?}\n  {acc}: {:?}\n}}\n",
        operator_file.to_str().unwrap(),
        jwt::account(&operator, &system, "SYS", false),
        jwt::account(&operator, &account, "upbit-it", true),
        sys = system.public_key(),
        acc = account.public_key(),
    );
    std::fs::write(&config, server_config).unwrap();
    let mut nats = NatsServer::at(port, Some(dir.join("store")));
    nats.run_with(&["-c", config.to_str().unwrap()]).await;
    let url = nats.url();
    let as_user = || async {
        let options = async_nats::ConnectOptions::with_credentials_file(creds_file.clone())
            .await
            .expect("the creds file reads");
        jetstream::new(options.connect(&url).await.expect("the user connects"))
    };
    let sim = start_simulator(|c| c.rate = 20.0).await;
    // Another account's user is refused: the sink says why and stores nothing.
    let file = outsider_file.to_str().unwrap();
    let refused = spawn_app(
        &sim.ws_url(),
        &overrides(&url, &[("nats.credentials_file", file)]),
    )
    .await;
    let status = eventually("the outsider's connection refused", || async {
        let (_, status) = refused.get_json("/api/v1/status").await;
        let error = status["nats"]["last_error"].as_str().unwrap_or_default();
        error
            .to_lowercase()
            .contains("authorization")
            .then_some(status)
    })
    .await;
    assert_eq!(status["nats"]["state"], "connecting", "{status}");
    shows_none_of(&status, &[&outsider.seed().unwrap(), &outsider_jwt]);
    assert!(
        as_user().await.get_stream("UPBIT").await.is_err(),
        "the refused sink made no stream"
    );
    // The account's user connects with its creds file and publishes into its stream.
    let file = creds_file.to_str().unwrap();
    let app = spawn_app(
        &sim.ws_url(),
        &overrides(&url, &[("nats.credentials_file", file)]),
    )
    .await;
    acked(&app, 10.0, "publishing as the account's user").await;
    let (_, status) = app.get_json("/api/v1/status").await;
    assert_eq!(status["nats"]["state"], "connected", "{status}");
    shows_none_of(&status, &[&user.seed().unwrap(), &user_jwt]);
    let mut stream = as_user()
        .await
        .get_stream("UPBIT")
        .await
        .expect("the stream");
    let stored = stream.info().await.expect("stream info").state.messages;
    assert!(stored >= 10, "{stored} messages in the account's stream");
    let m = refused.metrics().await;
    assert_eq!(m.get("upbit_sink_connected", &[]), 0.0);
    assert_eq!(m.get("upbit_sink_published_total", &[]), 0.0);
    assert_eq!(
        m.get("upbit_sink_acked_total", &[]),
        0.0,
        "the outsider stored nothing"
    );
    app.shutdown().await;
    refused.shutdown().await;
    sim.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
