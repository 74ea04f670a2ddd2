//! What consumers receive, encoded once per message and shared by every queue that holds it.
//!
//! Every message is one JSON object with an `event` name:
//!
//! ```json
//! {"event":"ticker","data":{"code":"KRW-BTC","trade_price":32287000.0,...},
//!  "exchange_timestamp_ms":1676965262177,"received_timestamp_ms":1676965262190,"delay_ms":13}
//! {"event":"link","data":{"connection":0,"state":"disconnected","reason":"error","detail":"connection lost","timestamp_ms":1676965263000}}
//! {"event":"link","data":{"connection":0,"state":"connected","timestamp_ms":1676965263120}}
//! {"event":"close","data":{"reason":"slow","message":"more than 1000 trades waiting: ..."}}
//! ```
//!
//! Market messages are the data API's [`Entry`] with the event name added (`ticker`, `trade`,
//! `orderbook`, `candle.1m` …); `close` is the last message before the service ends a stream.
//!
//! A market message for the consumers alone is encoded **when first sent**, not when published
//! ([`Event::market_json`]): it waits in the queues as the message's JSON from Upbit, and a
//! ticker, orderbook or candle that a newer one replaces before anyone reads it (conflation) is
//! never decoded in full nor encoded. The first transport to send it encodes it, on its own
//! thread, and every other consumer shares that text.

use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use bytes::Bytes;
use bytestring::ByteString;
use serde::Serialize;
use serde_json::{json, Value};

use super::LeaveReason;
use crate::clock::unix_ms;
use crate::messages::LinkChange;
use crate::upbit::decode::decode_as;
use crate::upbit::{DataType, Message};
use crate::view::Entry;

/// Longest `detail` of a link event (it may carry text from Upbit's close frame).
const MAX_DETAIL_CHARS: usize = 200;

/// A message as sent: the event name (for SSE's `event:` line) and the JSON text.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// `ticker`, `trade`, `orderbook`, `candle.1m` …, `link` or `close`.
    pub name: &'static str,
    body: Body,
}

#[derive(Debug, Clone)]
enum Body {
    Ready(ByteString),
    /// Encoded by the first [`Encoded::json`] call; cloning shares the result.
    Pending(Arc<Pending>),
}

/// A market message not encoded yet: its JSON from Upbit and when it was received.
#[derive(Debug)]
struct Pending {
    data_type: DataType,
    raw: Bytes,
    received: SystemTime,
    json: OnceLock<ByteString>,
}

impl Encoded {
    /// An event named `name` whose JSON is `json`, encoded already.
    pub fn ready(name: &'static str, json: String) -> Self {
        Self {
            name,
            body: Body::Ready(json.into()),
        }
    }

    /// A market message as the data API's entry with its event name; `None` for anything else.
    fn market(message: &Message, received: SystemTime) -> Option<Self> {
        let mut entry = Entry::of(message, received)?;
        let name = entry.data_type().as_str();
        entry.event = Some(name);
        Some(Self::ready(name, serde_json::to_string(&entry).ok()?))
    }

    /// The whole JSON object; cloning shares the bytes. A message published as its JSON from
    /// Upbit is decoded and encoded here, the first time any consumer asks.
    pub fn json(&self) -> ByteString {
        match &self.body {
            Body::Ready(json) => json.clone(),
            Body::Pending(pending) => pending.json.get_or_init(|| pending.encode()).clone(),
        }
    }
}

impl Pending {
    fn encode(&self) -> ByteString {
        // The decoder read this JSON on the hot path with the full decode's verdict (a property
        // test holds the two to it), so it decodes; were it ever not to, the consumer sees the
        // event with `"data":null` rather than nothing.
        decode_as(self.data_type, &self.raw)
            .ok()
            .and_then(|message| Encoded::market(&message, self.received))
            .unwrap_or_else(|| wrap(self.data_type.as_str(), Value::Null))
            .json()
    }
}

impl PartialEq for Encoded {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.json() == other.json()
    }
}

impl Eq for Encoded {}

/// `{"event":…,"data":…}` with the event name first, for people reading the stream.
#[derive(Serialize)]
struct Wrapped<'a> {
    event: &'a str,
    data: Value,
}

fn wrap(event: &'static str, data: Value) -> Encoded {
    let json = serde_json::to_string(&Wrapped { event, data }).unwrap_or_default();
    Encoded::ready(event, json)
}

/// What an event is about, for filtering and conflation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// A market message of one type and code (the code without an orderbook's `.N` suffix).
    Market { data_type: DataType, code: Arc<str> },
    /// The upstream link came up or went down: every consumer gets it, in order.
    Link,
}

/// One message for the fan-out.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: EventKind,
    pub encoded: Encoded,
    /// The market message's deduplication id ([`super::msg_id`]), set by the publisher only
    /// when a sink takes the stream; `None` on link events.
    pub id: Option<std::sync::Arc<str>>,
}

impl Event {
    /// A market message received at `received`; `None` for anything else.
    pub fn market(message: &Message, received: SystemTime) -> Option<Self> {
        Some(Self {
            kind: EventKind::Market {
                data_type: message.data_type()?,
                code: Arc::from(message.code()?),
            },
            encoded: Encoded::market(message, received)?,
            id: None,
        })
    }

    /// A market message of `data_type` and `code` given as its JSON object from Upbit, received
    /// at `received`: encoded only when a consumer first sends it (see the module's doc).
    pub fn market_json(data_type: DataType, code: &str, raw: Bytes, received: SystemTime) -> Self {
        Self {
            kind: EventKind::Market {
                data_type,
                code: Arc::from(code),
            },
            encoded: Encoded {
                name: data_type.as_str(),
                body: Body::Pending(Arc::new(Pending {
                    data_type,
                    raw,
                    received,
                    json: OnceLock::new(),
                })),
            },
            id: None,
        }
    }

    /// Upstream connection `connection` came up or went down at `at`.
    pub fn link(change: &LinkChange, at: SystemTime, connection: usize) -> Self {
        let timestamp_ms = unix_ms(at);
        let data = match change {
            LinkChange::Connected => json!({
                "state": "connected",
                "connection": connection,
                "timestamp_ms": timestamp_ms,
            }),
            LinkChange::Disconnected { reason, detail } => json!({
                "state": "disconnected",
                "connection": connection,
                "reason": reason,
                "detail": detail.chars().take(MAX_DETAIL_CHARS).collect::<String>(),
                "timestamp_ms": timestamp_ms,
            }),
        };
        Self {
            kind: EventKind::Link,
            encoded: wrap("link", data),
            id: None,
        }
    }

    /// The link state before the first connection: down, because nothing connected yet.
    pub fn link_starting() -> Self {
        Self::link(
            &LinkChange::Disconnected {
                reason: "starting",
                detail: "not connected yet".into(),
            },
            SystemTime::now(),
            0,
        )
    }
}

/// The last message of a stream the service ends.
pub fn close(reason: LeaveReason, message: &str) -> Encoded {
    wrap(
        "close",
        json!({"reason": reason.as_str(), "message": message}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::upbit::fixture_message as fixture;

    #[test]
    fn a_market_message_is_the_data_api_entry_with_its_event_name() {
        let message = fixture("ticker_default_1.json");
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_676_965_262_190);
        let event = Event::market(&message, at).unwrap();
        let value: serde_json::Value = serde_json::from_str(&event.encoded.json()).unwrap();
        let Message::Ticker(ticker) = &message else {
            panic!("a ticker")
        };
        assert_eq!(event.encoded.name, "ticker");
        assert_eq!(value["event"], "ticker");
        assert_eq!(value["data"], serde_json::to_value(ticker).unwrap());
        assert_eq!(value["received_timestamp_ms"], 1_676_965_262_190u64);
        assert_eq!(value["exchange_timestamp_ms"], json!(ticker.timestamp));
        assert_eq!(
            event.kind,
            EventKind::Market {
                data_type: DataType::Ticker,
                code: Arc::from(ticker.code.as_str())
            }
        );
    }

    /// A message published as its JSON reads, once a consumer asks, exactly as one encoded at
    /// once; every clone (every consumer's queue) shares that text.
    #[test]
    fn a_message_published_as_its_json_encodes_as_the_decoded_one_does() {
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_676_965_262_190);
        for name in [
            "ticker_default_1.json",
            "trade_default_1.json",
            "orderbook_simple_1.json",
            "candle_default_1.json",
        ] {
            let path = format!("{}/tests/fixtures/upbit/{name}", env!("CARGO_MANIFEST_DIR"));
            let raw = Bytes::from(std::fs::read(path).unwrap());
            let message = fixture(name);
            let eager = Event::market(&message, at).unwrap();
            let (data_type, code) = (message.data_type().unwrap(), message.code().unwrap());
            let lazy = Event::market_json(data_type, code, raw, at);
            assert_eq!(lazy.kind, eager.kind, "{name}");
            let other_consumer = lazy.encoded.clone();
            assert_eq!(lazy.encoded.json(), eager.encoded.json(), "{name}");
            assert_eq!(other_consumer, eager.encoded, "{name}");
        }
        // JSON that does not decode (the decoder never passes such on) still reaches the
        // consumer, named, with no data.
        let odd = Event::market_json(DataType::Trade, "KRW-BTC", Bytes::from_static(b"{"), at);
        let value: serde_json::Value = serde_json::from_str(&odd.encoded.json()).unwrap();
        assert_eq!(value, json!({"event": "trade", "data": null}));
    }

    #[test]
    fn a_candle_keeps_its_type_and_names_the_event_after_it() {
        let event = Event::market(&fixture("candle_default_1.json"), SystemTime::now()).unwrap();
        let value: serde_json::Value = serde_json::from_str(&event.encoded.json()).unwrap();
        assert_eq!(value["event"], value["type"]);
        assert!(event.encoded.name.starts_with("candle."));
    }

    #[test]
    fn link_events_carry_state_reason_and_time() {
        let down = Event::link(
            &LinkChange::Disconnected {
                reason: "error",
                detail: "x".repeat(1000),
            },
            SystemTime::UNIX_EPOCH,
            0,
        );
        let value: serde_json::Value = serde_json::from_str(&down.encoded.json()).unwrap();
        assert_eq!(value["event"], "link");
        assert_eq!(value["data"]["state"], "disconnected");
        assert_eq!(value["data"]["reason"], "error");
        assert_eq!(value["data"]["timestamp_ms"], 0);
        assert_eq!(
            value["data"]["detail"].as_str().unwrap().len(),
            MAX_DETAIL_CHARS
        );
        let up = Event::link(&LinkChange::Connected, SystemTime::now(), 2);
        let value: serde_json::Value = serde_json::from_str(&up.encoded.json()).unwrap();
        assert_eq!(value["event"], "link");
        assert_eq!(value["data"]["state"], "connected");
        assert_eq!(value["data"]["connection"], 2);
        assert_eq!(up.kind, EventKind::Link);
    }
}
