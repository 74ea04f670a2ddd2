//! `upbit-exporter demo` with port 0 everywhere: the simulator and the service each bind a free
//! port, the printed lines name the addresses actually bound, the service is pointed at the
//! simulator's, becomes ready, counts messages and stops cleanly on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(30);

/// A plain HTTP/1.0 GET on loopback: (status, body), or `None` while nothing answers.
fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Some((status, body))
}

/// Polls `probe` until it gives a value, failing after `DEADLINE`.
fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{what}: not within {DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The address in a printed URL such as `ws://127.0.0.1:40123/websocket/v1`.
fn addr_in(line: &str, scheme: &str) -> SocketAddr {
    let rest = line
        .split(scheme)
        .nth(1)
        .unwrap_or_else(|| panic!("no {scheme} URL in {line:?}"));
    let authority = rest.split(['/', ' ']).next().unwrap();
    authority
        .parse()
        .unwrap_or_else(|e| panic!("{authority:?} in {line:?}: {e}"))
}

struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn demo_with_port_zero_prints_real_addresses_becomes_ready_and_stops_cleanly() {
    let mut command = Command::new(env!("CARGO_BIN_EXE_upbit-exporter"));
    command
        .args(["demo", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .args(["--rate", "5/s"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("UPBIT_EXPORTER__")) {
        command.env_remove(key);
    }
    let mut demo = Demo(command.spawn().expect("the binary starts"));
    let stdout = demo.0.stdout.take().unwrap();
    let (lines, printed) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let next_line = || {
        printed
            .recv_timeout(DEADLINE)
            .expect("demo prints its addresses")
    };
    let simulator_line = next_line();
    let service_line = next_line();
    let simulator = addr_in(&simulator_line, "ws://");
    let service = addr_in(&service_line, "http://");
    assert_ne!(simulator.port(), 0, "{simulator_line}");
    assert_ne!(service.port(), 0, "{service_line}");
    assert!(service_line.contains("live page"), "{service_line}");

    // The simulator printed is the one the service uses: it becomes ready and counts messages.
    eventually("/readyz 200", || {
        get(service, "/readyz").filter(|(status, _)| *status == 200)
    });
    let (_, stats) = get(simulator, "/admin/stats").expect("the printed simulator answers");
    assert!(stats.contains("connections"), "{stats}");
    eventually("messages counted", || {
        let (_, metrics) = get(service, "/metrics")?;
        metrics
            .lines()
            .filter(|l| l.starts_with("upbit_received_messages_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .any(|v| v > 0.0)
            .then_some(())
    });

    let status = Command::new("kill")
        .args(["-TERM", &demo.0.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let code = eventually("exit after SIGTERM", || demo.0.try_wait().ok().flatten());
    assert_eq!(code.code(), Some(0));
}
