//! The read side of a connection: each client frame (pings, `PING`, requests) and its reply,
//! Upbit's per-connection request limits, and error frames.

use std::time::{Duration, Instant};

use actix_ws::Message;

use super::{Active, Connection};
use crate::simulator::encode;
use crate::simulator::request::{self, ErrorFrame, Request};
use crate::simulator::RecordedRequest;

impl Connection {
    /// Handles one client frame; false ends the connection.
    pub(super) async fn on_message(&mut self, message: Message) -> bool {
        match message {
            Message::Ping(payload) => {
                self.shared.stats().pings_received += 1;
                if !self.shared.muted() {
                    if self.session.pong(&payload).await.is_err() {
                        return false;
                    }
                    self.shared.stats().pongs_sent += 1;
                }
                true
            }
            Message::Text(text) => self.on_text(&text).await,
            Message::Binary(bytes) => match std::str::from_utf8(&bytes) {
                Ok(text) => self.on_text(text).await,
                Err(_) => {
                    self.send_error(ErrorFrame {
                        name: "WRONG_FORMAT",
                        message: "Requested using wrong format".into(),
                    })
                    .await
                }
            },
            Message::Close(reason) => {
                let code = reason.as_ref().map_or(1005, |r| u16::from(r.code));
                self.shared.stats().close_codes_received.push(code);
                // Complete the closing handshake, as a WebSocket server must.
                let _ = self.session.clone().close(reason).await;
                false
            }
            Message::Pong(_) | Message::Continuation(_) | Message::Nop => true,
        }
    }

    async fn on_text(&mut self, text: &str) -> bool {
        {
            let mut stats = self.shared.stats();
            if stats.requests.len() >= 1000 {
                stats.requests.remove(0);
            }
            stats.requests.push(RecordedRequest {
                connection: self.id,
                at_ms: self.shared.elapsed_ms(),
                text: text.to_owned(),
            });
        }
        if text == "PING" {
            self.shared.stats().text_pings_received += 1;
            return self.shared.muted() || self.session.text(r#"{"status":"UP"}"#).await.is_ok();
        }
        if !self.admit_request() {
            let message =
                "too many requests on this connection (simulator's name for Upbit's limit)";
            return self
                .send_error(ErrorFrame {
                    name: "TOO_MANY_REQUESTS",
                    message: message.into(),
                })
                .await;
        }
        match request::parse(text) {
            Err(error) => self.send_error(error).await,
            Ok(Request::ListSubscriptions { ticket, format }) => {
                if format != self.format {
                    self.format = format;
                    if self.firehose.is_some() {
                        self.firehose = Some(self.build_firehose());
                    }
                }
                let types = self.active.as_ref().map_or(&[][..], |a| &a.types[..]);
                let reply = encode::subscription_list(&ticket, types, format);
                self.count_format(1);
                self.session.binary(reply).await.is_ok()
            }
            Ok(Request::Subscribe { types, format, .. }) => {
                self.active = Some(Active { types });
                self.format = format;
                self.firehose = None;
                if self.send_snapshots().await.is_err() {
                    return false;
                }
                if self.shared.config.firehose {
                    self.firehose = Some(self.build_firehose());
                }
                true
            }
        }
    }

    /// Upbit's per-connection request limits (also count rejected requests).
    fn admit_request(&mut self) -> bool {
        let now = Instant::now();
        while self
            .requests
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            self.requests.pop_front();
        }
        let last_second = self
            .requests
            .iter()
            .filter(|t| now.duration_since(**t) < Duration::from_secs(1))
            .count();
        let allowed = last_second < self.shared.config.request_limit_per_sec as usize
            && self.requests.len() < self.shared.config.request_limit_per_min as usize;
        self.requests.push_back(now);
        allowed
    }

    /// Counts frames sent in the connection's current format.
    fn count_format(&self, frames: u64) {
        *self
            .shared
            .stats()
            .frames_by_format
            .entry(self.format.as_str().to_owned())
            .or_default() += frames;
    }

    async fn send_error(&mut self, error: ErrorFrame) -> bool {
        *self
            .shared
            .stats()
            .error_frames_sent
            .entry(error.name.to_owned())
            .or_default() += 1;
        self.session.binary(error.to_json()).await.is_ok()
    }
}
