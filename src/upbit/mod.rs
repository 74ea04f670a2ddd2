//! Upbit's quotation WebSocket protocol, pure: no runtime, no I/O.
//!
//! - [`types`]: data types, formats, market codes (shared with the simulator);
//! - [`model`]: wire types, one per message kind, each documenting a real payload;
//! - [`decode`]: frames to messages, in all four formats;
//! - [`brief`]: the hot path's decode, only what the metrics need, without allocating;
//! - [`request`]: the subscription and `LIST_SUBSCRIPTIONS` requests;
//! - [`market_list`]: the REST market list with its market events, read leniently.

pub mod brief;
pub mod decode;
pub mod market_list;
pub mod model;
pub mod request;
pub mod types;

pub use decode::{decode_frame, decode_frame_with, DecodeError};
pub use model::Message;
pub use request::Subscription;
pub use types::{CandleInterval, DataType, Format};

#[cfg(test)]
mod fixture_tests;

/// The first message of the recorded frame `tests/fixtures/upbit/{name}`, for unit tests.
#[cfg(test)]
pub(crate) fn fixture_message(name: &str) -> Message {
    let path = format!("{}/tests/fixtures/upbit/{name}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    decode_frame(&bytes)
        .into_iter()
        .next()
        .expect("a message")
        .expect("decodes")
}
