//! Serde adapters for settings values: every rule about one key alone lives here, so it is
//! checked (and listed) even when another key of the same section is refused. Each error says
//! what was wrong and what is accepted; the caller puts the key in front.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::Error;
use serde::{Deserialize, Deserializer};

use super::CANDLE_FIELDS;
use crate::secret::Secret;

/// A whole number in `MIN..=MAX`: `#[serde(deserialize_with = "fields::within::<_, 1, 64>")]`.
pub fn within<'de, D: Deserializer<'de>, const MIN: i64, const MAX: i64>(
    de: D,
) -> Result<usize, D::Error> {
    let value = i64::deserialize(de)?;
    match usize::try_from(value) {
        Ok(n) if (MIN..=MAX).contains(&value) => Ok(n),
        _ => Err(D::Error::custom(format!(
            "{value} is out of range {MIN}..={MAX}"
        ))),
    }
}

/// `IP:PORT`.
pub fn socket_address<'de, D: Deserializer<'de>>(de: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(de)?;
    text.trim().parse().map_err(|_| {
        D::Error::custom(format!(
            "{text:?} is not an address; expected IP:PORT such as 0.0.0.0:8081"
        ))
    })
}

/// A path, or `None` for `""`.
pub fn path<'de, D: Deserializer<'de>>(de: D) -> Result<Option<PathBuf>, D::Error> {
    Ok(non_empty(&String::deserialize(de)?).map(PathBuf::from))
}

/// The control token, or `None` for `""`: at least 16 characters. Its value never appears in an
/// error.
pub fn secret<'de, D: Deserializer<'de>>(de: D) -> Result<Option<Secret>, D::Error> {
    token(&String::deserialize(de)?).map_err(D::Error::custom)
}

/// The token rule, for `control.token` and the content of `control.token_file` alike.
pub(super) fn token(text: &str) -> Result<Option<Secret>, String> {
    match non_empty(text) {
        None => Ok(None),
        Some(token) if token.len() < 16 => {
            Err("use at least 16 characters (e.g. openssl rand -hex 32)".into())
        }
        Some(token) => Ok(Some(Secret::new(token))),
    }
}

/// `control.body_timeout`: 1ms to 5m.
pub fn body_timeout<'de, D: Deserializer<'de>>(de: D) -> Result<Duration, D::Error> {
    let timeout = crate::duration::deserialize(de)?;
    if timeout.is_zero() || timeout > Duration::from_secs(300) {
        return Err(D::Error::custom(format!(
            "{timeout:?} is out of range; use 1ms to 5m"
        )));
    }
    Ok(timeout)
}

/// `discovery.refresh`: zero (fetch once) or at least a second.
pub fn refresh<'de, D: Deserializer<'de>>(de: D) -> Result<Duration, D::Error> {
    let refresh = crate::duration::deserialize(de)?;
    if !refresh.is_zero() && refresh < Duration::from_secs(1) {
        return Err(D::Error::custom("at least 1s (or 0 to fetch once)"));
    }
    Ok(refresh)
}

/// `discovery.url`: an HTTP(S) URL, or `""` for the one derived from `upbit.url`.
pub fn http_url<'de, D: Deserializer<'de>>(de: D) -> Result<String, D::Error> {
    let text = String::deserialize(de)?;
    let url = text.trim();
    match url.parse::<awc::http::Uri>() {
        _ if url.is_empty() => Ok(String::new()),
        Ok(uri) if matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some() => {
            Ok(url.to_owned())
        }
        _ => Err(D::Error::custom(format!(
            "{url:?} is not an HTTP URL; expected https://HOST/v1/market/all"
        ))),
    }
}

fn non_empty(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// A whole number as a file writes it, or as text as the environment gives it.
#[derive(Deserialize)]
#[serde(untagged)]
enum Number {
    Int(i64),
    Text(String),
}

/// `metrics.depth_bands_bps`: basis points in 1..=10000, sorted and deduplicated, at most 8
/// (each costs 4 series per orderbook code). Every bad entry is named.
pub fn depth_bands<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<u32>, D::Error> {
    let mut problems = Vec::new();
    let mut bands = Vec::new();
    for entry in Vec::<Number>::deserialize(de)? {
        let parsed = match &entry {
            Number::Int(n) => Some(*n),
            Number::Text(text) => text.trim().parse().ok(),
        };
        match (parsed, entry) {
            (Some(n @ 1..=10_000), _) => bands.push(n as u32),
            (Some(n), _) => problems.push(format!(
                "{n} is out of range 1..=10000 (basis points of the mid)"
            )),
            (None, Number::Int(n)) => problems.push(format!("{n} is not a band")),
            (None, Number::Text(text)) => {
                problems.push(format!("{text:?} is not a whole number from 1 to 10000"))
            }
        }
    }
    bands.sort_unstable();
    bands.dedup();
    if bands.len() > 8 {
        problems.push(format!(
            "{} bands, at most 8 (each costs 4 series per orderbook code)",
            bands.len()
        ));
    }
    if problems.is_empty() {
        Ok(bands)
    } else {
        Err(D::Error::custom(problems.join("; ")))
    }
}

/// `metrics.candle_fields`: names from [`CANDLE_FIELDS`], any case, each once.
pub fn candle_fields<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<String>, D::Error> {
    let mut problems = Vec::new();
    let mut fields: Vec<String> = Vec::new();
    for field in Vec::<String>::deserialize(de)? {
        let field = field.trim().to_ascii_lowercase();
        if !CANDLE_FIELDS.contains(&field.as_str()) {
            problems.push(format!(
                "{field:?} is not one of {}",
                CANDLE_FIELDS.join(", ")
            ));
        } else if !fields.contains(&field) {
            fields.push(field);
        }
    }
    if problems.is_empty() {
        Ok(fields)
    } else {
        Err(D::Error::custom(problems.join("; ")))
    }
}
