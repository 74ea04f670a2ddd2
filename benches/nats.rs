//! The NATS JetStream sink's figures on this machine (README, "NATS JetStream").
//!
//! ```text
//! cargo bench --bench nats                  # both figures (needs nats-server for the second)
//! cargo bench --bench nats -- --quick       # fewer messages
//! ```
//!
//! - **Publish cost per message on the pipeline thread**: `Publisher::encode` and `publish` with
//!   the sink attached (the stream entry encoded, its `Nats-Msg-Id` computed, the event pushed
//!   into the sink's buffer), per message of a mix of the four types decoded from the fixtures,
//!   beside the entry's encoding alone and the id alone; and the same from each message's JSON
//!   (`Publisher::encode_json`: the full decode first, as the pipeline does with a sink since the
//!   hot path reads only a brief). Wall time of a tight loop, best of 5.
//! - **Sustained publish rate with acknowledgements**: N messages pushed at once into a started
//!   sink against a local `nats-server -js` (file storage, this machine's disk), timed from the
//!   first push until JetStream acknowledged every one (`upbit_sink_acked_total`), for several
//!   `nats.max_in_flight`. Every message has its own id, so none is a duplicate.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use upbit_exporter::nats::buffer::Buffer;
use upbit_exporter::nats::{NatsSink, SinkState};
use upbit_exporter::settings::Settings;
use upbit_exporter::stream::msg_id::message_id;
use upbit_exporter::stream::{Event, EventSink, Publisher};
use upbit_exporter::telemetry::metrics::SinkMetrics;
use upbit_exporter::upbit::brief::MarketCode;
use upbit_exporter::upbit::{decode_frame, CandleInterval, DataType, Message};

fn fixture_bytes(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/upbit/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(path).expect("fixture")
}

fn fixture(name: &str) -> Message {
    decode_frame(&fixture_bytes(name))
        .into_iter()
        .next()
        .unwrap()
        .unwrap()
}

fn mix() -> Vec<Message> {
    [
        "ticker_default_1.json",
        "trade_default_1.json",
        "orderbook_default_1.json",
        "candle_default_1.json",
    ]
    .iter()
    .map(|name| fixture(name))
    .collect()
}

/// Best of 5 runs of `f` over `n` messages, in ns per message.
fn per_message(n: usize, mut f: impl FnMut(usize)) -> f64 {
    (0..5)
        .map(|_| {
            let start = Instant::now();
            f(n);
            start.elapsed().as_nanos() as f64 / n as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn pipeline_cost(n: usize) {
    let messages = mix();
    let now = SystemTime::now();
    let encode = per_message(n, |n| {
        for i in 0..n {
            std::hint::black_box(Event::market(&messages[i % 4], now));
        }
    });
    let id = per_message(n, |n| {
        for i in 0..n {
            std::hint::black_box(message_id(&messages[i % 4]));
        }
    });
    let metrics = SinkMetrics::register(&prometheus::Registry::new()).unwrap();
    let buffer = Buffer::new(1 << 16, metrics);
    let publisher = Publisher::disabled().with_sink(buffer.clone());
    let with_sink = per_message(n, |n| {
        let mut batch = Vec::with_capacity(16);
        for i in 0..n {
            batch.extend(publisher.encode(&messages[i % 4], now));
            if batch.len() == 16 {
                publisher.publish(&batch);
                batch.clear();
            }
            if i % (1 << 15) == 0 {
                buffer.clear();
            }
        }
    });
    // Since the hot path reads only a brief of each message (#17), the stream entry needs the
    // message decoded in full first: with a sink, every message is; this is the whole added cost.
    let frames: Vec<(DataType, Vec<u8>)> = [
        (DataType::Ticker, "ticker_default_1.json"),
        (DataType::Trade, "trade_default_1.json"),
        (DataType::Orderbook, "orderbook_default_1.json"),
        (
            DataType::Candle(CandleInterval::S1),
            "candle_default_1.json",
        ),
    ]
    .into_iter()
    .map(|(t, name)| (t, fixture_bytes(name)))
    .collect();
    let code = MarketCode::new("KRW-BTC");
    let from_json = per_message(n, |n| {
        let mut batch = Vec::with_capacity(16);
        for i in 0..n {
            let (data_type, json) = &frames[i % 4];
            batch.extend(publisher.encode_json(*data_type, &code, json, now));
            if batch.len() == 16 {
                publisher.publish(&batch);
                batch.clear();
            }
            if i % (1 << 15) == 0 {
                buffer.clear();
            }
        }
    });
    let bytes: usize = messages
        .iter()
        .filter_map(|m| Event::market(m, now))
        .map(|e| e.encoded.json().len())
        .sum::<usize>()
        / 4;
    println!("publish cost per message on the pipeline thread (mix of ticker, trade, orderbook, candle; {bytes} B average entry)");
    println!(
        "  entry encoding alone (what a live-stream consumer already costs)  {encode:>7.0} ns"
    );
    println!("  Nats-Msg-Id alone                                                 {id:>7.0} ns");
    println!(
        "  encode + id + push into the sink's buffer (Publisher with a sink) {with_sink:>7.0} ns"
    );
    println!(
        "  full decode + encode + id + push (what the sink adds per message) {from_json:>7.0} ns"
    );
}

fn nats_server() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("nats-server"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| Some(PathBuf::from("/usr/sbin/nats-server")).filter(|p| p.is_file()))
}

struct Server(Child, PathBuf);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

fn start_server(binary: &PathBuf) -> (Server, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("upbit-nats-bench-{}", std::process::id()));
    let child = Command::new(binary)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    (Server(child, dir), format!("nats://127.0.0.1:{port}"))
}

/// CPU time (user + system) of this process so far.
fn cpu() -> Duration {
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Pushes `n` messages into a sink with `max_in_flight` and times the acknowledgements: the
/// rate, the time, and this process's CPU per message meanwhile (the sender thread and the
/// NATS client; the pushing loop is a small part, the waiting loop polls every millisecond).
async fn rate(url: &str, n: usize, max_in_flight: usize) -> (f64, Duration, Duration) {
    let prefix = format!("bench{max_in_flight}");
    let stream = format!("BENCH{max_in_flight}");
    let (buffer, in_flight) = (n.to_string(), max_in_flight.to_string());
    let settings = Settings::from_overrides([
        ("nats.url", url),
        ("nats.subject_prefix", prefix.as_str()),
        ("nats.stream", stream.as_str()),
        ("nats.buffer", buffer.as_str()),
        ("nats.max_in_flight", in_flight.as_str()),
    ])
    .expect("bench settings");
    let metrics = SinkMetrics::register(&prometheus::Registry::new()).unwrap();
    let sink = NatsSink::start(&settings.nats, metrics.clone());
    let deadline = Instant::now() + Duration::from_secs(10);
    while sink.board().state() != SinkState::Connected {
        assert!(Instant::now() < deadline, "the sink did not connect");
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    let messages = mix();
    let now = SystemTime::now();
    let events: Vec<Event> = (0..n)
        .map(|i| {
            let mut event = Event::market(&messages[i % 4], now).unwrap();
            event.id = Some(Arc::from(format!("bench:{i}")));
            event
        })
        .collect();
    let into: Arc<dyn EventSink> = sink.event_sink();
    let cpu_before = cpu();
    let start = Instant::now();
    for chunk in events.chunks(64) {
        into.publish(chunk);
    }
    let deadline = start + Duration::from_secs(120);
    while (metrics.acked.get() as usize) < n {
        assert!(Instant::now() < deadline, "not every message acknowledged");
        actix_rt::time::sleep(Duration::from_millis(1)).await;
    }
    let took = start.elapsed();
    let cpu_per_message = (cpu() - cpu_before) / n as u32;
    assert_eq!(metrics.duplicates.get(), 0);
    sink.shutdown().await;
    (n as f64 / took.as_secs_f64(), took, cpu_per_message)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        eprintln!("nats: run with `cargo bench --bench nats`");
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let n = if quick { 20_000 } else { 100_000 };
    pipeline_cost(200_000);
    let Some(binary) = nats_server() else {
        println!("\nsustained publish rate: skipped, no nats-server (scripts/test installs it)");
        return;
    };
    let (_server, url) = start_server(&binary);
    let version = Command::new(&binary)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    println!("\nsustained publish rate with acknowledgements ({n} messages pushed at once, {version}, file storage on loopback)");
    actix_rt::System::new().block_on(async {
        for max_in_flight in [64, 256, 1024, 4096] {
            let (per_second, took, cpu) = rate(&url, n, max_in_flight).await;
            println!(
                "  max_in_flight {max_in_flight:>5}: {per_second:>9.0} messages/s acknowledged ({:.2} s), {:.1} µs CPU per message in the service process",
                took.as_secs_f64(),
                cpu.as_nanos() as f64 / 1000.0
            );
        }
    });
}
