//! A memory bound on what a WebSocket peer may send to our servers (the live stream, the
//! simulator).
//!
//! actix-ws 0.4's `MessageStream` appends every byte the peer sends to one buffer and checks
//! `max_frame_size` only once a frame is complete: a peer that announces a frame of 2^40 bytes
//! and keeps sending makes that buffer grow without bound. [`bound`] puts a watcher between the
//! request payload and `actix_ws::handle`: it reads each frame header as the bytes go by (it
//! keeps at most 14 header bytes, never the payload) and fails the stream the moment a header
//! announces more than the limit, before any of that frame's payload is handed on. What the
//! message stream then holds is at most one frame of the limit plus what the HTTP layer had
//! already buffered (actix-http pauses reading at 32 KiB).
//!
//! The failure surfaces as an error from `MessageStream::recv`; [`Overflow::happened`] tells it
//! apart from a broken connection, so the server can close with 1009 (message too big).

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_http::error::PayloadError;
use actix_web::dev::Payload;
use actix_web::web::Bytes;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::Stream;

/// Whether the peer announced a frame over the limit (shared with the watcher).
#[derive(Clone, Default)]
pub struct Overflow(Rc<Cell<bool>>);

impl Overflow {
    /// The peer announced a frame larger than the limit; the stream failed at that point.
    pub fn happened(&self) -> bool {
        self.0.get()
    }
}

/// Wraps the request payload so that no frame larger than `max_frame` bytes is ever buffered;
/// hand the result to `actix_ws::handle`.
pub async fn bound(
    request: &HttpRequest,
    payload: web::Payload,
    max_frame: usize,
) -> Result<(web::Payload, Overflow), actix_web::Error> {
    let overflow = Overflow::default();
    let watcher = FrameWatcher {
        inner: payload.into_inner(),
        scan: HeaderScan::new(max_frame as u64),
        overflow: overflow.clone(),
        failed: false,
    };
    let mut boxed = Payload::from(
        Box::pin(watcher) as Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>>
    );
    let payload = web::Payload::from_request(request, &mut boxed).await?;
    Ok((payload, overflow))
}

struct FrameWatcher {
    inner: Payload,
    scan: HeaderScan,
    overflow: Overflow,
    failed: bool,
}

impl Stream for FrameWatcher {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                if this.scan.feed(&bytes) {
                    Poll::Ready(Some(Ok(bytes)))
                } else {
                    this.failed = true;
                    this.overflow.0.set(true);
                    Poll::Ready(Some(Err(PayloadError::Overflow)))
                }
            }
            other => other,
        }
    }
}

/// Follows frame boundaries through the byte stream, reading only the headers.
#[derive(Debug)]
struct HeaderScan {
    max: u64,
    header: [u8; 14],
    /// Header bytes seen of the current frame.
    have: usize,
    /// Header length of the current frame (2 until the second byte says more).
    need: usize,
    /// Payload bytes of the current frame still to pass.
    remaining: u64,
}

impl HeaderScan {
    fn new(max: u64) -> Self {
        Self {
            max,
            header: [0; 14],
            have: 0,
            need: 2,
            remaining: 0,
        }
    }

    /// Follows `bytes`; false when a header announces a frame over the limit.
    fn feed(&mut self, mut bytes: &[u8]) -> bool {
        while !bytes.is_empty() {
            if self.remaining > 0 {
                let skip = self.remaining.min(bytes.len() as u64);
                self.remaining -= skip;
                bytes = &bytes[skip as usize..];
                continue;
            }
            self.header[self.have] = bytes[0];
            self.have += 1;
            bytes = &bytes[1..];
            if self.have == 2 {
                let second = self.header[1];
                let extended = match second & 0x7f {
                    126 => 2,
                    127 => 8,
                    _ => 0,
                };
                let mask = if second & 0x80 != 0 { 4 } else { 0 };
                self.need = 2 + extended + mask;
            }
            if self.have >= 2 && self.have == self.need {
                let length = match self.header[1] & 0x7f {
                    126 => u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
                    127 => {
                        let mut eight = [0; 8];
                        eight.copy_from_slice(&self.header[2..10]);
                        u64::from_be_bytes(eight)
                    }
                    short => u64::from(short),
                };
                if length > self.max {
                    return false;
                }
                self.remaining = length;
                self.have = 0;
                self.need = 2;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::HeaderScan;

    /// A masked client frame header announcing `length` bytes.
    fn header(opcode: u8, length: u64) -> Vec<u8> {
        let mut out = vec![0x80 | opcode];
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
        out.extend_from_slice(&[1, 2, 3, 4]);
        out
    }

    #[test]
    fn frames_within_the_limit_pass_whatever_the_chunking() {
        let mut stream = Vec::new();
        for length in [0u64, 5, 125, 126, 4000, 4096] {
            let opcode = if length > 125 { 0x2 } else { 0x9 };
            stream.extend(header(opcode, length));
            stream.extend(std::iter::repeat_n(7u8, length as usize));
        }
        for chunk in [1, 2, 3, 7, 13, 100, stream.len()] {
            let mut scan = HeaderScan::new(4096);
            assert!(stream.chunks(chunk).all(|c| scan.feed(c)), "chunk {chunk}");
            assert_eq!((scan.have, scan.remaining), (0, 0), "ends on a boundary");
        }
    }

    #[test]
    fn a_header_announcing_more_fails_before_its_payload() {
        for (length, split) in [(4097u64, 1usize), (70_000, 3), (1 << 40, 5), (u64::MAX, 9)] {
            let mut scan = HeaderScan::new(4096);
            let mut bytes = header(0x9, 3);
            bytes.extend_from_slice(b"abc");
            let ok = header(0x2, length);
            let (a, b) = ok.split_at(split);
            assert!(scan.feed(&bytes));
            assert!(scan.feed(a), "{length}: not known yet");
            assert!(
                !scan.feed(b),
                "{length}: refused once the header is complete"
            );
        }
    }

    #[test]
    fn unmasked_short_headers_are_followed_too() {
        let mut scan = HeaderScan::new(10);
        assert!(scan.feed(&[0x81, 3, b'a', b'b', b'c', 0x81, 2]));
        assert!(scan.feed(b"xy"));
        assert!(!scan.feed(&[0x81, 11]));
    }
}
