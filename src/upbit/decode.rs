//! Frame decoding: bytes from the socket to [`Message`]s, in any of the four formats.
//!
//! A frame is one JSON object (DEFAULT, SIMPLE) or an array of them (JSON_LIST, SIMPLE_LIST).
//! Each object is dispatched on its `type`/`ty` without building a generic JSON tree: the type is
//! sniffed from the first key when Upbit puts it there (it always does), otherwise a light probe
//! pass finds it. A bad element of a list frame is reported on its own; its neighbours decode.
//!
//! Lenient where Upbit is vague: when a message fails only because a field holds a value of
//! another shape than the wire type expects, the decoder drops that field and tries again (a slow
//! path, taken only for such messages). An optional field then reads as absent and is reported
//! through `on_skipped`; a required one still fails the message.

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::brief::Brief;
use super::model::{
    Candle, Message, Orderbook, ServerError, Status, SubscriptionList, Ticker, Trade,
};
use super::types::DataType;
use crate::text::truncate;

/// Why a frame (or one element of a list frame) could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON, truncated JSON, or not UTF-8.
    #[error("invalid JSON: {0}")]
    InvalidJson(serde_json::Error),
    /// Valid JSON but neither an object nor an array of objects.
    #[error("not a JSON object")]
    NotAnObject,
    /// An object with no `type`/`ty` that is not a status, error or subscription list either.
    #[error("message has no type")]
    MissingType,
    /// A `type` this service does not know.
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    /// A required field is absent.
    #[error("missing field: {0}")]
    MissingField(serde_json::Error),
    /// A field has the wrong JSON type or an unknown enum value.
    #[error("invalid value: {0}")]
    InvalidValue(serde_json::Error),
    /// The frame exceeds the configured size limit and was not parsed.
    #[error("frame of {size} bytes exceeds the limit of {limit} bytes")]
    Oversized { size: usize, limit: usize },
}

impl DecodeError {
    /// Every code [`DecodeError::code`] can return: the complete label set of the metric.
    pub const CODES: [&'static str; 7] = [
        "invalid_json",
        "not_an_object",
        "missing_type",
        "unknown_type",
        "missing_field",
        "invalid_value",
        "oversized",
    ];

    /// A short fixed code: the only form of this error allowed into a metric label.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidJson(_) => "invalid_json",
            Self::NotAnObject => "not_an_object",
            Self::MissingType => "missing_type",
            Self::UnknownType(_) => "unknown_type",
            Self::MissingField(_) => "missing_field",
            Self::InvalidValue(_) => "invalid_value",
            Self::Oversized { .. } => "oversized",
        }
    }

    fn from_serde(err: serde_json::Error) -> Self {
        use serde_json::error::Category;
        match err.classify() {
            Category::Data if err.to_string().starts_with("missing field") => {
                Self::MissingField(err)
            }
            Category::Data => Self::InvalidValue(err),
            Category::Io | Category::Syntax | Category::Eof => Self::InvalidJson(err),
        }
    }
}

/// Decodes one frame, calling `sink` once per message or per failed element.
///
/// Never panics, whatever the bytes (see the property tests).
pub fn decode_frame_with(payload: &[u8], sink: impl FnMut(Result<Message, DecodeError>)) {
    decode_frame_lenient_with(payload, sink, |_| {});
}

/// Like [`decode_frame_with`], and `on_skipped` gets the name (as sent) of every optional field
/// that was dropped because its value could not be read.
pub fn decode_frame_lenient_with(
    payload: &[u8],
    mut sink: impl FnMut(Result<Message, DecodeError>),
    mut on_skipped: impl FnMut(&str),
) {
    let skipped: &mut dyn FnMut(&str) = &mut on_skipped;
    for_each_object(payload, |object| {
        sink(object.and_then(|raw| decode_object(raw, skipped)))
    });
}

/// One message of a frame as the hot path takes it.
#[derive(Debug)]
pub enum Decoded<'a> {
    /// A market message: what the metrics need, its JSON object (the whole frame, or its
    /// element of a list frame) for whoever wants it decoded in full later ([`decode_as`]), and
    /// the full message when it was decoded in full anyway (asked for, or not plain).
    Market {
        brief: Brief,
        json: &'a [u8],
        full: Option<Box<Message>>,
    },
    /// A status, error or `LIST_SUBSCRIPTIONS` answer (boxed: rare, and large beside a brief).
    Control(Box<Message>),
}

/// Like [`decode_frame_lenient_with`], with market messages as their [`Brief`] and JSON: the
/// same messages fail with the same errors and the same fields are reported skipped (the
/// [`brief`](super::brief) module says how), at a fraction of the cost. Messages of a type for
/// which `full` says yes (someone will read them whole) are decoded in full at once instead.
pub fn decode_frame_brief_with<'a>(
    payload: &'a [u8],
    full: impl Fn(DataType) -> bool,
    mut sink: impl FnMut(Result<Decoded<'a>, DecodeError>),
    mut on_skipped: impl FnMut(&str),
) {
    let skipped: &mut dyn FnMut(&str) = &mut on_skipped;
    for_each_object(payload, |object| {
        sink(object.and_then(|raw| decode_object_brief(raw, &full, skipped)))
    });
}

/// Fully decodes the JSON object of a market message of `data_type`, leniently (a field of the
/// wrong shape reads as absent, unreported): what [`Decoded::Market`]'s JSON holds.
pub fn decode_as(data_type: DataType, raw: &[u8]) -> Result<Message, DecodeError> {
    decode_typed(data_type, raw, &mut |_| {})
}

/// Calls `f` with each object of a frame (one, or each element of a list), or why there is none.
fn for_each_object<'a>(payload: &'a [u8], mut f: impl FnMut(Result<&'a [u8], DecodeError>)) {
    match first_non_space(payload) {
        Some(b'{') => f(Ok(payload)),
        Some(b'[') => match serde_json::from_slice::<Vec<&RawValue>>(payload) {
            Ok(elements) => {
                for element in elements {
                    let raw = element.get().as_bytes();
                    if first_non_space(raw) == Some(b'{') {
                        f(Ok(raw));
                    } else {
                        f(Err(DecodeError::NotAnObject));
                    }
                }
            }
            Err(err) => f(Err(DecodeError::from_serde(err))),
        },
        _ => f(Err(match serde_json::from_slice::<IgnoredAny>(payload) {
            Ok(_) => DecodeError::NotAnObject,
            Err(err) => DecodeError::InvalidJson(err),
        })),
    }
}

/// The brief of a market message when it reads plainly, else what the full decode makes of it.
fn decode_object_brief<'a>(
    raw: &'a [u8],
    full: &dyn Fn(DataType) -> bool,
    skipped: &mut dyn FnMut(&str),
) -> Result<Decoded<'a>, DecodeError> {
    if let Some(data_type) = sniff_type(raw).and_then(DataType::from_wire) {
        if !full(data_type) {
            if let Some(brief) = Brief::read(data_type, raw) {
                return Ok(Decoded::Market {
                    brief,
                    json: raw,
                    full: None,
                });
            }
        }
    }
    let message = decode_object(raw, skipped)?;
    Ok(match Brief::of(&message) {
        Some(brief) => Decoded::Market {
            brief,
            json: raw,
            full: Some(Box::new(message)),
        },
        None => Decoded::Control(Box::new(message)),
    })
}

/// Convenience form of [`decode_frame_with`] that collects the results.
pub fn decode_frame(payload: &[u8]) -> Vec<Result<Message, DecodeError>> {
    let mut out = Vec::with_capacity(1);
    decode_frame_with(payload, |m| out.push(m));
    out
}

/// A required field is absent (any other error of valid JSON is a value of the wrong shape).
fn is_missing_field(err: &serde_json::Error) -> bool {
    err.classify() == serde_json::error::Category::Data
        && err.to_string().starts_with("missing field")
}

fn first_non_space(bytes: &[u8]) -> Option<u8> {
    bytes.iter().copied().find(|b| !b.is_ascii_whitespace())
}

/// Fields that tell what an object is when its first key is not the type.
#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(rename = "type", alias = "ty", borrow, default)]
    data_type: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    error: Option<ServerError>,
    #[serde(default)]
    status: Option<IgnoredAny>,
    #[serde(default, alias = "mthd")]
    method: Option<IgnoredAny>,
}

fn decode_object(raw: &[u8], skipped: &mut dyn FnMut(&str)) -> Result<Message, DecodeError> {
    if let Some(name) = sniff_type(raw) {
        return decode_named(name, raw, skipped);
    }
    let probe: Probe = serde_json::from_slice(raw).map_err(DecodeError::from_serde)?;
    if let Some(name) = probe.data_type {
        return decode_named(&name, raw, skipped);
    }
    if let Some(error) = probe.error {
        return Ok(Message::Error(error));
    }
    if probe.status.is_some() {
        return parse::<Status>(raw, skipped).map(Message::Status);
    }
    if probe.method.is_some() {
        return parse::<SubscriptionList>(raw, skipped).map(Message::Subscriptions);
    }
    Err(DecodeError::MissingType)
}

fn decode_named(
    name: &str,
    raw: &[u8],
    skipped: &mut dyn FnMut(&str),
) -> Result<Message, DecodeError> {
    match DataType::from_wire(name) {
        Some(data_type) => decode_typed(data_type, raw, skipped),
        None => Err(DecodeError::UnknownType(truncate(name, 40))),
    }
}

fn decode_typed(
    data_type: DataType,
    raw: &[u8],
    skipped: &mut dyn FnMut(&str),
) -> Result<Message, DecodeError> {
    match data_type {
        DataType::Ticker => parse::<Ticker>(raw, skipped).map(Message::Ticker),
        DataType::Trade => parse::<Trade>(raw, skipped).map(Message::Trade),
        DataType::Orderbook => parse::<Orderbook>(raw, skipped).map(Message::Orderbook),
        DataType::Candle(interval) => parse::<Candle>(raw, skipped).map(|mut candle| {
            candle.interval = interval;
            Message::Candle(candle)
        }),
    }
}

/// Parses a message; on a value of the wrong shape, retries without the offending fields.
fn parse<T: DeserializeOwned>(raw: &[u8], skipped: &mut dyn FnMut(&str)) -> Result<T, DecodeError> {
    let original = match serde_json::from_slice(raw) {
        Ok(message) => return Ok(message),
        Err(err) => DecodeError::from_serde(err),
    };
    if matches!(original, DecodeError::MissingField(_)) {
        return Err(original);
    }
    // Valid JSON (an enum given an array reads as a syntax error to serde): a shape problem.
    let Ok(mut object) = serde_json::from_slice::<Map<String, Value>>(raw) else {
        return Err(original);
    };
    let mut dropped: Vec<String> = Vec::new();
    // Each pass drops one field; bounded by the number of fields.
    for _ in 0..object.len() {
        // One field per line, so the error's line names the field: field i is on line i + 2.
        let mut text = String::from("{\n");
        for (i, (key, value)) in object.iter().enumerate() {
            if i > 0 {
                text.push_str(",\n");
            }
            text.push_str(&Value::String(key.clone()).to_string());
            text.push(':');
            text.push_str(&value.to_string());
        }
        text.push_str("\n}");
        let err = match serde_json::from_str::<T>(&text) {
            Ok(message) => {
                for key in &dropped {
                    skipped(key);
                }
                return Ok(message);
            }
            Err(err) => err,
        };
        if is_missing_field(&err) {
            // The field dropped last was required: the message fails as it did at first.
            return Err(original);
        }
        let Some(key) = err
            .line()
            .checked_sub(2)
            .and_then(|i| object.keys().nth(i))
            .cloned()
        else {
            return Err(original);
        };
        object.remove(&key);
        dropped.push(key);
    }
    Err(original)
}

/// Reads the type when the object opens with `"type":"…"` or `"ty":"…"`, as Upbit's always do.
///
/// Returns `None` (and the caller probes properly) for anything less plain, such as escapes.
fn sniff_type(raw: &[u8]) -> Option<&str> {
    let rest = skip_space(raw).strip_prefix(b"{")?;
    let rest = skip_space(rest);
    let rest = rest
        .strip_prefix(b"\"type\"")
        .or_else(|| rest.strip_prefix(b"\"ty\""))?;
    let rest = skip_space(rest).strip_prefix(b":")?;
    let rest = skip_space(rest).strip_prefix(b"\"")?;
    let end = rest.iter().position(|&b| b == b'"' || b == b'\\')?;
    if rest[end] != b'"' {
        return None;
    }
    std::str::from_utf8(&rest[..end]).ok()
}

fn skip_space(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    &bytes[start..]
}
