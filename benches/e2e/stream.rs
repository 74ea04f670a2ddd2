//! The live stream's consumer for the e2e bench: one client of `/api/v1/events` (Server-Sent
//! Events) on its own thread, counting the events it reads until the service goes away.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

/// Follows `path` (an `/api/v1/events` query) on `http`; the handle's answer is the number of
/// events read when the service closed the connection.
pub fn follow(http: SocketAddr, path: &str) -> JoinHandle<u64> {
    let mut stream =
        TcpStream::connect_timeout(&http, Duration::from_secs(5)).expect("consumer connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("a read timeout");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n").expect("consumer asks");
    std::thread::spawn(move || {
        let mut buffer = vec![0u8; 64 << 10];
        // The end of the previous read, so a line start split across reads is still seen.
        let mut carry = Vec::new();
        let mut events = 0;
        while let Ok(n) = stream.read(&mut buffer) {
            if n == 0 {
                break;
            }
            carry.extend_from_slice(&buffer[..n]);
            events += carry.windows(EVENT.len()).filter(|w| *w == EVENT).count() as u64;
            let keep = carry.len().min(EVENT.len() - 1);
            carry.drain(..carry.len() - keep);
        }
        events
    })
}

/// What starts each event: its `event:` line.
const EVENT: &[u8] = b"\nevent:";
