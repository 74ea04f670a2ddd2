//! What one key cannot say alone: keys against each other (`idle_timeout` against
//! `ping_interval`, the codes against `control.max_codes`), URLs derived from others, the token
//! file, and the `[upbit]` section, whose lists report every bad entry. Rules between keys run
//! only when every key involved was read; rules about one key are in `fields.rs`.

use serde::Deserialize;

use super::fields;
use super::load::Sections;
use super::{
    ConnectionSettings, ControlSettings, DiscoverySettings, Settings, ShardSection, UpbitSettings,
    UPBIT_IDLE_CLOSE,
};
use crate::subscription::Shard;
use crate::upbit::request::OrderbookOptions;
use crate::upbit::types::entry_problem;
use crate::upbit::{DataType, Format};

/// Upbit's regional exchanges: the same API on another host.
pub const REGIONS: [&str; 4] = ["kr", "sg", "id", "th"];

/// The `[upbit]` section as written. It stays loosely typed, unlike the other sections, because
/// serde would stop at its first refusal: each bad code or type is its own problem, listed with
/// every other one; `url` is derived from `region` when empty; and two keys make one
/// [`OrderbookOptions`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UpbitSection {
    region: String,
    url: String,
    codes: Vec<String>,
    types: Vec<String>,
    format: String,
    orderbook_depth: i64,
    orderbook_level: String,
}

/// Checks what serde could not, adding to `problems`; the settings when every section was read.
pub(super) fn validate(sections: Sections, problems: &mut Vec<String>) -> Option<Settings> {
    if let Some(connection) = &sections.connection {
        check_connection(connection, problems);
    }
    let upbit = sections.upbit.map(|raw| validate_upbit(raw, problems));
    let ws_url = upbit.as_ref().map_or("", |u| u.url.as_str());
    let discovery = sections.discovery.map(|d| validate_discovery(d, ws_url));
    let control = sections.control.map(|c| validate_control(c, problems));
    let shard = sections.shard.and_then(|s| validate_shard(s, problems));
    let nats = sections.nats.map(|n| super::nats::validate(n, problems));
    if let (Some(upbit), Some(control)) = (&upbit, &control) {
        // The bound applies to this replica's shard of the codes (all of them unsharded).
        let shard = shard.unwrap_or_default();
        let taken = upbit.codes.iter().filter(|c| shard.owns(c)).count();
        if taken > control.max_codes {
            let what = match shard.count {
                1 => format!("{taken} codes"),
                n => format!("{taken} of them fall to shard {} of {n}; they", shard.index),
            };
            problems.push(format!(
                "upbit.codes: {what} exceed control.max_codes ({})",
                control.max_codes
            ));
        }
    }
    Some(Settings {
        upbit: upbit?,
        connection: sections.connection?,
        pipeline: sections.pipeline?,
        http: sections.http?,
        control: control?,
        discovery: discovery?,
        stream: sections.stream?,
        metrics: sections.metrics?,
        shard: shard?,
        nats: nats?,
    })
}

/// Shards are numbered from 0: `index` must be below `count`.
fn validate_shard(section: ShardSection, problems: &mut Vec<String>) -> Option<Shard> {
    let ShardSection { index, count } = section;
    if index >= count {
        problems.push(format!(
            "shard.index: {index} is not below shard.count ({count}); shards are numbered 0 to \
             count - 1 (a StatefulSet's pod ordinal with count = its replicas)"
        ));
        return None;
    }
    Some(Shard { index, count })
}

/// An empty `discovery.url` is derived from the WebSocket URL.
fn validate_discovery(mut discovery: DiscoverySettings, ws_url: &str) -> DiscoverySettings {
    if discovery.url.is_empty() {
        // Empty when upbit.url is invalid, which is already reported.
        discovery.url = market_list_url(ws_url).unwrap_or_default();
    }
    discovery
}

/// The REST market list beside a WebSocket URL: `wss://api.upbit.com/websocket/v1` →
/// `https://api.upbit.com/v1/market/all`.
pub fn market_list_url(ws_url: &str) -> Option<String> {
    let uri = ws_url.parse::<awc::http::Uri>().ok()?;
    let scheme = match uri.scheme_str()? {
        "wss" => "https",
        "ws" => "http",
        _ => return None,
    };
    Some(format!("{scheme}://{}/v1/market/all", uri.authority()?))
}

fn check_connection(c: &ConnectionSettings, problems: &mut Vec<String>) {
    let mut bad = |text: String| problems.push(format!("connection.{text}"));
    if c.ping_interval.is_zero() {
        bad("ping_interval must be above zero".into());
    }
    if c.idle_timeout <= c.ping_interval {
        bad(format!(
            "idle_timeout ({:?}) must be longer than ping_interval ({:?}), or every quiet market drops the link",
            c.idle_timeout, c.ping_interval
        ));
    }
    if c.idle_timeout >= UPBIT_IDLE_CLOSE {
        bad(format!(
            "idle_timeout ({:?}) must stay under Upbit's own idle close of {:?}",
            c.idle_timeout, UPBIT_IDLE_CLOSE
        ));
    }
    if c.backoff_min.is_zero() {
        bad("backoff_min must be above zero".into());
    }
    if c.backoff_max < c.backoff_min {
        bad(format!(
            "backoff_max ({:?}) must not be below backoff_min ({:?})",
            c.backoff_max, c.backoff_min
        ));
    }
    if c.connect_timeout.is_zero() {
        bad("connect_timeout must be above zero".into());
    }
}

/// Reads the token from `token_file` when that is the one set.
fn validate_control(mut control: ControlSettings, problems: &mut Vec<String>) -> ControlSettings {
    control.token = match (control.token.take(), &control.token_file) {
        (token, None) => token,
        (None, Some(file)) => match std::fs::read_to_string(file).map(|t| fields::token(&t)) {
            Ok(Ok(Some(token))) => Some(token),
            Ok(Ok(None)) => {
                problems.push(format!("control.token_file: {} is empty", file.display()));
                None
            }
            Ok(Err(rule)) => {
                problems.push(format!("control.token: {rule}"));
                None
            }
            Err(e) => {
                problems.push(format!(
                    "control.token_file: cannot read {}: {e}",
                    file.display()
                ));
                None
            }
        },
        (Some(_), Some(_)) => {
            problems.push("control: set either token or token_file, not both".into());
            None
        }
    };
    control
}

/// The quotation WebSocket of a region: `kr` → `wss://api.upbit.com/websocket/v1`, `sg` →
/// `wss://sg-api.upbit.com/websocket/v1` (likewise `id`, `th`).
pub fn region_url(region: &str) -> String {
    match region {
        "kr" => "wss://api.upbit.com/websocket/v1".to_owned(),
        other => format!("wss://{other}-api.upbit.com/websocket/v1"),
    }
}

fn validate_upbit(mut raw: UpbitSection, problems: &mut Vec<String>) -> UpbitSettings {
    let region = raw.region.trim().to_ascii_lowercase();
    if !REGIONS.contains(&region.as_str()) {
        problems.push(format!(
            "upbit.region: {:?} is not one of kr, sg, id, th",
            raw.region.chars().take(20).collect::<String>()
        ));
    } else if raw.url.trim().is_empty() {
        // An explicit upbit.url wins; without one the region picks the host.
        raw.url = region_url(&region);
    }
    match raw.url.parse::<awc::http::Uri>() {
        Ok(uri) if matches!(uri.scheme_str(), Some("ws" | "wss")) && uri.host().is_some() => {}
        _ => problems.push(format!(
            "upbit.url: {:?} is not a WebSocket URL; expected ws://HOST[:PORT]/PATH or wss://...",
            raw.url
        )),
    }
    let mut codes: Vec<String> = Vec::with_capacity(raw.codes.len());
    for code in raw.codes.iter().map(|c| c.trim()) {
        if let Some(problem) = entry_problem(code) {
            problems.push(format!("upbit.codes: {problem}"));
        } else if !codes.iter().any(|c| c == code) {
            codes.push(code.to_owned());
        }
    }
    let mut types = Vec::with_capacity(raw.types.len());
    for name in raw.types.iter().map(|t| t.trim()) {
        match name.parse::<DataType>() {
            Ok(t) if !types.contains(&t) => types.push(t),
            Ok(_) => {}
            Err(e) => problems.push(format!("upbit.types: {e}")),
        }
    }
    let format = raw.format.trim().parse().unwrap_or_else(|e| {
        problems.push(format!("upbit.format: {e}"));
        Format::Default
    });
    let depth = match raw.orderbook_depth {
        0 => None,
        d => OrderbookOptions::parse_depth(d)
            .map_err(|e| {
                problems.push(format!(
                    "upbit.orderbook_depth: {e} (0 for Upbit's default)"
                ))
            })
            .ok(),
    };
    let level = OrderbookOptions::parse_level(raw.orderbook_level.trim()).unwrap_or_else(|e| {
        problems.push(format!("upbit.orderbook_level: {e} (\"\" for none)"));
        None
    });
    UpbitSettings {
        orderbook: OrderbookOptions { depth, level },
        region,
        url: raw.url,
        codes,
        types,
        format,
    }
}
