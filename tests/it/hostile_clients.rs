//! Hostile clients against every place a peer's bytes could pile up, spoken as raw WebSocket
//! frames over TCP: a frame header announcing 2^40 bytes followed by a flood, many half-sent
//! frames, many connections from one address, a request body streamed to the SSE route, and,
//! from the other side, an "Upbit" that fragments a message without end. The service closes
//! (1009 or a TCP close), counts it, keeps serving the others, and its resident memory stays
//! under 64 MiB throughout (read from /proc/PID/status of the real binary).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use socket2::{Domain, Socket, Type};

/// The bound the issue states: the Deployment's limit is 128 Mi, the service idles near 15 MiB.
const RSS_LIMIT_KIB: u64 = 64 * 1024;

/// Most bytes one attacker tries to push (the unbounded service took all of them into memory).
const FLOOD_BYTES: usize = 200 << 20;

const UPGRADE: &str = "Upgrade: websocket\r\nConnection: Upgrade\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

/// A TCP connection from `source` (any 127.0.0.0/8 address works on loopback).
fn connect_from(source: &str, to: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let from: SocketAddr = format!("{source}:0").parse().unwrap();
    socket.bind(&from.into()).expect("bind source");
    socket.connect(&to.into()).expect("connect");
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    stream
}

/// Reads a response head byte by byte (so no frame after it is consumed); returns the status.
fn read_head(stream: &mut TcpStream) -> io::Result<u16> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head);
    Ok(text
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0))
}

/// Opens a live-stream WebSocket from `source`; the upgrade's status (101 when admitted).
fn open_stream(source: &str, to: SocketAddr) -> (TcpStream, u16) {
    let mut stream = connect_from(source, to);
    let request = format!("GET /api/v1/stream HTTP/1.1\r\nHost: x\r\n{UPGRADE}\r\n");
    stream.write_all(request.as_bytes()).expect("send upgrade");
    let status = read_head(&mut stream).expect("an answer to the upgrade");
    (stream, status)
}

/// A masked client frame header.
fn header(opcode: u8, fin: bool, length: u64) -> Vec<u8> {
    let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
    match length {
        0..=125 => out.push(0x80 | length as u8),
        126..=0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(length as u16).to_be_bytes());
        }
        _ => {
            out.push(0x80 | 127);
            out.extend_from_slice(&length.to_be_bytes());
        }
    }
    out.extend_from_slice(&[0x11, 0x22, 0x33, 0x44]);
    out
}

/// One unmasked server frame: (opcode, payload).
fn read_frame(stream: &mut TcpStream) -> io::Result<(u8, Vec<u8>)> {
    let mut two = [0u8; 2];
    stream.read_exact(&mut two)?;
    let length = match two[1] & 0x7f {
        126 => {
            let mut ext = [0u8; 2];
            stream.read_exact(&mut ext)?;
            u64::from(u16::from_be_bytes(ext))
        }
        127 => {
            let mut ext = [0u8; 8];
            stream.read_exact(&mut ext)?;
            u64::from_be_bytes(ext)
        }
        short => u64::from(short),
    };
    let mut payload = vec![0u8; length as usize];
    stream.read_exact(&mut payload)?;
    Ok((two[0] & 0x0f, payload))
}

/// Reads frames until a close frame (its code) or the end of the connection (`None`).
fn close_code(stream: &mut TcpStream) -> Option<u16> {
    loop {
        match read_frame(stream) {
            Ok((0x8, payload)) if payload.len() >= 2 => {
                return Some(u16::from_be_bytes([payload[0], payload[1]]))
            }
            Ok((0x8, _)) => return Some(1005),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

/// Whether the connection is finished: reading ends (EOF or reset) within the read timeout.
fn ends(stream: &mut TcpStream) -> bool {
    let mut sink = [0u8; 64 << 10];
    loop {
        match stream.read(&mut sink) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// Writes up to `total` bytes in 64 KiB pieces; stops at the first failed write (the service
/// stopped taking them). Returns what was written.
fn flood(stream: &mut TcpStream, total: usize) -> usize {
    let chunk = vec![0x5au8; 64 << 10];
    let mut sent = 0;
    while sent < total {
        match stream.write(&chunk) {
            Ok(n) if n > 0 => sent += n,
            _ => break,
        }
    }
    sent
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Samples the process's RSS every 20 ms until stopped; the largest sample.
struct RssWatch {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssWatch {
    fn start(pid: u32) -> Self {
        let (stop, peak) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let thread = {
            let (stop, peak) = (stop.clone(), peak.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        Self {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    fn peak_kib(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        self.peak_kib()
    }
}

struct Service {
    child: Child,
    addr: SocketAddr,
    /// Where its log goes (the production default filter).
    log: std::path::PathBuf,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

async fn spawn_service(ws_url: &str, extra: &[(&str, &str)]) -> Service {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let log = std::env::temp_dir().join(format!("upbit-hostile-clients-{port}.log"));
    let mut command = Command::new(env!("CARGO_BIN_EXE_upbit-exporter"));
    command
        .env("UPBIT_EXPORTER__UPBIT__URL", ws_url)
        .env("UPBIT_EXPORTER__HTTP__LISTEN", addr.to_string())
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"));
    for (key, value) in extra {
        command.env(key, value);
    }
    let service = Service {
        child: command.spawn().expect("service binary starts"),
        addr,
        log,
    };
    until_serving(&addr.to_string()).await;
    service
}

async fn scrape(addr: SocketAddr) -> Metrics {
    let body = awc::Client::default()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .expect("scrape")
        .body()
        .limit(4 << 20)
        .await
        .expect("metrics body");
    Metrics(String::from_utf8_lossy(&body).into_owned())
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work).await.expect("no panic")
}

/// Splits buffered server bytes into frames: (opcode, payload length) of each complete one.
fn take_frames(buffer: &mut Vec<u8>) -> Vec<(u8, usize)> {
    let mut frames = Vec::new();
    loop {
        if buffer.len() < 2 {
            return frames;
        }
        let (start, length) = match buffer[1] & 0x7f {
            126 if buffer.len() >= 4 => {
                (4, usize::from(u16::from_be_bytes([buffer[2], buffer[3]])))
            }
            127 if buffer.len() >= 10 => {
                let mut eight = [0u8; 8];
                eight.copy_from_slice(&buffer[2..10]);
                (10, u64::from_be_bytes(eight) as usize)
            }
            126 | 127 => return frames,
            short => (2, usize::from(short)),
        };
        if buffer.len() < start + length {
            return frames;
        }
        frames.push((buffer[0] & 0x0f, length));
        buffer.drain(..start + length);
    }
}

/// A well-behaved consumer from another address: counts the data frames it receives.
fn good_consumer(to: SocketAddr, received: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
    let (mut stream, status) = open_stream("127.0.0.2", to);
    assert_eq!(status, 101, "the good consumer is admitted");
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let (mut buffer, mut chunk) = (Vec::new(), vec![0u8; 64 << 10]);
    while !stop.load(Ordering::Relaxed) {
        match stream.read(&mut chunk) {
            Ok(0) => panic!("the good consumer's connection ended"),
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut => {
            }
            Err(e) => panic!("the good consumer lost its connection: {e}"),
        }
        for (opcode, _) in take_frames(&mut buffer) {
            assert_ne!(opcode, 0x8, "the good consumer was closed");
            if opcode == 0x1 {
                received.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[actix_web::test]
async fn hostile_stream_clients_are_closed_counted_and_memory_stays_bounded() {
    let sim = start_simulator(|c| c.rate = 20.0).await;
    let service = spawn_service(&sim.ws_url(), &[]).await;
    let (addr, pid) = (service.addr, service.child.id());
    let baseline = rss_kib(pid);
    let watch = RssWatch::start(pid);

    let (received, stop) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let good = {
        let (received, stop) = (received.clone(), stop.clone());
        std::thread::spawn(move || good_consumer(addr, received, stop))
    };
    eventually("the good consumer receives data", || async {
        when(received.load(Ordering::Relaxed) > 0)
    })
    .await;

    // 1. A header announcing 2^40 bytes, then a flood: the service stops taking bytes.
    let sent = blocking(move || {
        let (mut stream, status) = open_stream("127.0.0.1", addr);
        assert_eq!(status, 101);
        stream.write_all(&header(0x2, true, 1 << 40)).unwrap();
        let sent = flood(&mut stream, FLOOD_BYTES);
        assert!(ends(&mut stream), "the connection is closed");
        sent
    })
    .await;
    eprintln!("flood: the service took {sent} B before closing");

    // 2. The same announce, read: the answer is a close frame 1009, then the end.
    let code = blocking(move || {
        let (mut stream, status) = open_stream("127.0.0.1", addr);
        assert_eq!(status, 101);
        let mut frame = header(0x1, true, 1 << 40);
        frame.extend_from_slice(&[0u8; 1024]);
        stream.write_all(&frame).unwrap();
        let code = close_code(&mut stream);
        assert!(ends(&mut stream), "closed after the close frame");
        code
    })
    .await;
    assert_eq!(code, Some(1009), "message too big");

    // 3. One frame just over the limit, sent whole: 1009 as well.
    let code = blocking(move || {
        let (mut stream, _) = open_stream("127.0.0.1", addr);
        let mut frame = header(0x2, true, 4097);
        frame.extend(std::iter::repeat_n(0u8, 4097));
        stream.write_all(&frame).unwrap();
        close_code(&mut stream)
    })
    .await;
    assert_eq!(code, Some(1009));

    // 4. Many connections from one address, each leaving a frame half sent, and one sending
    //    frames a byte at a time: each holds at most one frame's worth.
    let statuses = blocking(move || {
        let mut held = Vec::new();
        for _ in 0..30 {
            let (mut stream, status) = open_stream("127.0.0.1", addr);
            if status == 101 {
                let mut partial = header(0x2, true, 4000);
                partial.extend(std::iter::repeat_n(1u8, 3999));
                stream.write_all(&partial).unwrap();
            }
            held.push((stream, status));
        }
        let (mut trickle, _) = open_stream("127.0.0.1", addr);
        let mut pings = Vec::new();
        for _ in 0..50 {
            pings.extend(header(0x9, true, 4));
            pings.extend_from_slice(b"ping");
        }
        for byte in pings {
            if trickle.write_all(&[byte]).is_err() {
                break;
            }
        }
        // The address is at its limit: an SSE consumer from it is refused too, with the reason.
        let mut refused = connect_from("127.0.0.1", addr);
        refused
            .write_all(b"GET /api/v1/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        let _ = refused.read_to_string(&mut answer);
        let statuses = held.iter().map(|(_, status)| *status).collect::<Vec<_>>();
        (statuses, answer)
    })
    .await;
    let (statuses, refusal) = statuses;
    assert!(
        statuses.iter().all(|s| *s == 101 || *s == 503),
        "admitted or refused: {statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 101).count(),
        10,
        "stream.max_consumers_per_address (default 10) from one address: {statuses:?}"
    );
    assert!(refusal.starts_with("HTTP/1.1 503"), "{refusal}");
    assert!(
        refusal.contains("too_many_consumers_from_address"),
        "{refusal}"
    );
    assert!(
        refusal.to_ascii_lowercase().contains("retry-after: 5"),
        "{refusal}"
    );

    // 5. A client connecting and leaving in a loop (from its own address, under its limit).
    blocking(move || {
        for _ in 0..60 {
            let (stream, status) = open_stream("127.0.0.3", addr);
            // Its departures may lag its arrivals: the address limit can refuse some.
            assert!(status == 101 || status == 503, "{status}");
            drop(stream);
        }
    })
    .await;

    // 6. A request body streamed to the SSE route: nothing reads it, nothing keeps it.
    let sent = blocking(move || {
        let mut stream = connect_from("127.0.0.1", addr);
        stream
            .write_all(
                b"GET /api/v1/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
            )
            .unwrap();
        let mut sent = 0;
        let chunk = format!("{:x}\r\n{}\r\n", 64 << 10, "z".repeat(64 << 10));
        while sent < FLOOD_BYTES / 2 && stream.write_all(chunk.as_bytes()).is_ok() {
            sent += chunk.len();
        }
        sent
    })
    .await;

    let metrics = scrape(addr).await;
    assert!(
        metrics.get("upbit_stream_disconnects_total", &[("reason", "too_large")]) >= 3.0,
        "each oversized frame counted"
    );
    let before = received.load(Ordering::Relaxed);
    eventually("the good consumer is still served", || async {
        when(received.load(Ordering::Relaxed) > before + 5)
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    good.join().expect("the good consumer saw no close");
    let peak = watch.finish();
    // Some 150 joins and departures in a few seconds: the log writes a bounded burst of them
    // (20 per 10 s) and a count of the rest, not a line each.
    let log = std::fs::read_to_string(&service.log).unwrap_or_default();
    let lifecycle = log
        .lines()
        .filter(|l| l.contains("stream consumer"))
        .count();
    assert!(
        lifecycle <= 45,
        "{lifecycle} consumer lines logged during the attacks"
    );
    assert!(
        !log.contains(" ERROR "),
        "no client makes the service log at ERROR"
    );
    eprintln!(
        "RSS baseline {baseline} KiB, peak {peak} KiB during the attacks; SSE body sent {sent} B"
    );
    assert!(
        peak < RSS_LIMIT_KIB,
        "RSS peaked at {peak} KiB (baseline {baseline} KiB)"
    );
    sim.stop().await;
}

#[actix_web::test]
async fn the_simulator_closes_a_client_announcing_a_huge_frame_with_1009() {
    let sim = start_simulator(|c| c.rate = 0.0).await;
    let url = sim.ws_url();
    let addr: SocketAddr = url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let code = blocking(move || {
        let mut stream = connect_from("127.0.0.1", addr);
        let request = format!("GET /websocket/v1 HTTP/1.1\r\nHost: x\r\n{UPGRADE}\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        assert_eq!(read_head(&mut stream).unwrap(), 101);
        // Only the header: payload left unread when the simulator closes would make the kernel
        // answer with a reset, which can overtake the close frame.
        stream.write_all(&header(0x2, true, 1 << 40)).unwrap();
        close_code(&mut stream)
    })
    .await;
    assert_eq!(code, Some(1009));
    sim.stop().await;
}

/// An "Upbit" that answers the first WebSocket upgrade, sends `frames` and holds that
/// connection; anything else (the market-list fetch) gets a 404.
fn fake_upbit(frames: Vec<Vec<u8>>) -> (String, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/websocket/v1", listener.local_addr().unwrap());
    let thread = std::thread::spawn(move || {
        for _ in 0..20 {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            let Ok(head) = read_request_head(&mut stream) else {
                continue;
            };
            let key = head.lines().find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("sec-websocket-key")
                    .then(|| value.trim().to_owned())
            });
            let Some(key) = key else {
                let _ = stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                continue;
            };
            let accept = actix_http::ws::hash_key(key.as_bytes());
            let answer = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {}\r\n\r\n",
                std::str::from_utf8(&accept).unwrap()
            );
            stream.write_all(answer.as_bytes()).unwrap();
            for frame in frames {
                stream.write_all(&frame).unwrap();
            }
            stream
                .set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
            let mut sink = [0u8; 4096];
            while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
            return;
        }
    });
    (url, thread)
}

fn read_request_head(stream: &mut TcpStream) -> io::Result<String> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// An unmasked server frame.
fn server_frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
    match payload.len() {
        n @ 0..=125 => out.push(n as u8),
        n @ 126..=0xffff => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

#[actix_web::test]
async fn fragments_from_upbit_are_bounded_and_counted() {
    // A message fragmented past pipeline.max_frame_bytes (4096) and on to 17 MiB: one
    // `oversized` (it used to be held up to 16 MiB, then dropped uncounted).
    let filler = server_frame(0x0, false, &vec![b' '; 1 << 20]);
    let mut frames = vec![server_frame(0x1, false, b"{\"ty\":")];
    frames.extend(std::iter::repeat_n(filler, 17));
    frames.extend([
        server_frame(0x0, true, b"1}"),
        // A fragmented message within the limit is reassembled and decoded (no `type`).
        server_frame(0x1, false, b"{\"a\":"),
        server_frame(0x0, true, b"1}"),
        // A continuation with no start: a protocol error, the link ends (counted).
        server_frame(0x0, false, b"abc"),
    ]);
    let (url, _upbit) = fake_upbit(frames);
    let app = spawn_app(&url, &[("pipeline.max_frame_bytes", "4096")]).await;
    eventually("the orphan continuation ended the link", || async {
        let m = app.metrics().await;
        when(m.get("upbit_disconnections_total", &[("reason", "error")]) >= 1.0)
    })
    .await;
    let m = app.metrics().await;
    let decode_error = |reason| m.get("upbit_decode_errors_total", &[("reason", reason)]);
    assert_eq!(decode_error("oversized"), 1.0, "the long message, once");
    assert_eq!(
        decode_error("missing_type"),
        1.0,
        "the short one reassembled"
    );
    app.shutdown().await;
}
