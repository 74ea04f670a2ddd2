//! The real binary stops cleanly on SIGTERM: close frame 1000 to the exchange, exit code 0,
//! within a few seconds, whether connected, in reconnect backoff, or mid-burst.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;
use upbit_exporter::simulator::SimulatorHandle;

/// Longest a clean stop may take (well inside terminationGracePeriodSeconds in deploy/).
const STOP_WITHIN: Duration = Duration::from_secs(8);

fn spawn_service(ws_url: &str, extra: &[(&str, &str)]) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_upbit-exporter"));
    command
        .env("UPBIT_EXPORTER__UPBIT__URL", ws_url)
        .env("UPBIT_EXPORTER__HTTP__LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (key, value) in extra {
        command.env(key, value);
    }
    command.spawn().expect("service binary starts")
}

fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

/// SIGTERM; the process exits 0 in time and the exchange saw exactly one close frame, 1000.
async fn stops_cleanly_with_a_close_1000(child: &mut Child, sim: &SimulatorHandle) {
    terminate(child);
    assert_eq!(exit_code_within(child, STOP_WITHIN).await, 0);
    let stats = eventually("the simulator saw the close", || async {
        let stats = sim.stats();
        when(!stats.close_codes_received.is_empty()).map(|_| stats)
    })
    .await;
    assert_eq!(stats.close_codes_received, vec![1000]);
    sim.stop().await;
}

/// Polls for the exit with a deadline; kills the child if it overstays.
async fn exit_code_within(child: &mut Child, limit: Duration) -> i32 {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status.code().expect("exited, not killed by a signal");
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("still running {limit:?} after SIGTERM");
        }
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_web::test]
async fn sigterm_while_connected_sends_close_1000_and_exits_0() {
    let sim = start_simulator(|c| c.rate = 50.0).await;
    let mut child = spawn_service(
        &sim.ws_url(),
        &[("UPBIT_EXPORTER__UPBIT__TYPES", "ticker,trade,orderbook")],
    );
    eventually("the service subscribed", || async {
        when(!sim.stats().requests.is_empty())
    })
    .await;
    eventually("data flowing (a burst in progress)", || async {
        when(sim.stats().frames_sent > 50)
    })
    .await;
    stops_cleanly_with_a_close_1000(&mut child, &sim).await;
}

#[actix_web::test]
async fn sigterm_during_a_firehose_exits_0_with_a_close_frame() {
    let sim = start_simulator(|c| {
        c.rate = 0.0;
        c.firehose = true;
        c.firehose_rate = Some(50_000.0);
        c.markets = Some(vec!["KRW-BTC".into(), "KRW-ETH".into()]);
    })
    .await;
    let mut child = spawn_service(
        &sim.ws_url(),
        &[("UPBIT_EXPORTER__UPBIT__CODES", "KRW-BTC,KRW-ETH")],
    );
    eventually("the flood under way", || async {
        when(sim.stats().frames_sent > 20_000)
    })
    .await;
    stops_cleanly_with_a_close_1000(&mut child, &sim).await;
}

#[actix_web::test]
async fn sigterm_during_reconnect_backoff_exits_0() {
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (upbit_port, http) = (free_port(), format!("127.0.0.1:{}", free_port()));
    let mut child = spawn_service(
        &format!("ws://127.0.0.1:{upbit_port}/websocket/v1"),
        &[
            ("UPBIT_EXPORTER__HTTP__LISTEN", http.as_str()),
            ("UPBIT_EXPORTER__CONNECTION__BACKOFF_MIN", "30s"),
            ("UPBIT_EXPORTER__CONNECTION__BACKOFF_MAX", "60s"),
        ],
    );
    // The first attempt is refused at once; wait until the service says it is waiting 30 s
    // or more before the next one.
    let client = awc::Client::default();
    let status_url = format!("http://{http}/api/v1/status");
    let backoff = eventually("the service in reconnect backoff", || async {
        let mut response = client.get(&status_url).send().await.ok()?;
        let status: serde_json::Value = response.json().await.ok()?;
        let connection = &status["connection"];
        when(connection["state"] == "backoff")?;
        connection["backoff_seconds"].as_f64()
    })
    .await;
    assert!(
        backoff >= 25.0,
        "backoff_min is 30 s (with jitter): {backoff}"
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "the service keeps running without an exchange"
    );
    terminate(&child);
    assert_eq!(exit_code_within(&mut child, STOP_WITHIN).await, 0);
}

#[actix_web::test]
async fn invalid_configuration_exits_2_listing_every_problem() {
    let output = Command::new(env!("CARGO_BIN_EXE_upbit-exporter"))
        .env("UPBIT_EXPORTER__UPBIT__CODES", "krw-btc,KRW-ETH")
        .env("UPBIT_EXPORTER__CONNECTION__IDLE_TIMEOUT", "5m")
        .env("UPBIT_EXPORTER__UPBIT__URL", "http://example")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for needle in ["krw-btc", "idle_timeout", "upbit.url"] {
        assert!(stderr.contains(needle), "{needle} missing from: {stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn invalid_configuration_lists_every_refused_key_even_in_one_section() {
    let output = Command::new(env!("CARGO_BIN_EXE_upbit-exporter"))
        .arg("check-config")
        .env("UPBIT_EXPORTER__CONNECTION__BACKOFF_MAX", "forever")
        .env("UPBIT_EXPORTER__CONNECTION__PING_INTERVALL", "1s")
        .env("UPBIT_EXPORTER__STREAM__TRADE_QUEUE", "-1")
        .env("UPBIT_EXPORTER__STREAM__MAX_CONSUMERS", "0")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for needle in [
        "connection.backoff_max: invalid duration \"forever\"",
        "connection.ping_intervall: unknown field",
        "stream.trade_queue: -1 is out of range",
        "stream.max_consumers: 0 is out of range",
    ] {
        assert!(stderr.contains(needle), "{needle} missing from: {stderr}");
    }
}
