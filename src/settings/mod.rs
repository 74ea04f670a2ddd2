//! Settings: the compiled-in defaults (config/default.toml), an optional file, then environment
//! variables `UPBIT_EXPORTER__SECTION__KEY`. [`Settings::load`] reports every problem at once.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;

use crate::duration::parse_duration;
use crate::secret::Secret;
use crate::upbit::request::OrderbookOptions;
use crate::upbit::types::entry_problem;
use crate::upbit::{DataType, Format, Subscription};

/// The defaults, with a comment on every key: the operator's reference.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// Prefix of the environment variables that override settings.
pub const ENV_PREFIX: &str = "UPBIT_EXPORTER";

/// Upbit closes connections idle for about this long; `idle_timeout` must stay under it.
pub const UPBIT_IDLE_CLOSE: Duration = Duration::from_secs(120);

/// Everything the service needs, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub upbit: UpbitSettings,
    pub connection: ConnectionSettings,
    pub pipeline: PipelineSettings,
    pub http: HttpSettings,
    pub control: ControlSettings,
    pub discovery: DiscoverySettings,
    pub stream: StreamSettings,
}

/// `[discovery]`: the market list that patterns such as `KRW-*` resolve against.
#[derive(Debug, Clone)]
pub struct DiscoverySettings {
    /// `GET` URL of Upbit's market list; derived from `upbit.url` unless set.
    pub url: String,
    /// How often the list is fetched again; zero fetches it once at start.
    pub refresh: Duration,
}

/// `[stream]`: the live stream (`/api/v1/stream`, `/api/v1/events`).
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// Serve the stream at all.
    pub enabled: bool,
    /// Consumers at once, both transports together; beyond: 503.
    pub max_consumers: usize,
    /// Consumers at once from one remote address; beyond: 503.
    pub max_consumers_per_address: usize,
    /// Trades (and link events) waiting for one consumer; one more disconnects it as slow.
    pub trade_queue: usize,
}

/// `[control]`: who may change what, and limits on what they send.
#[derive(Debug, Clone)]
pub struct ControlSettings {
    /// The bearer token, from `token` or `token_file`; `None` disables mutating routes.
    pub token: Option<Secret>,
    pub protect_reads: bool,
    pub max_codes: usize,
    pub max_body_bytes: usize,
    /// Longest a request body may take to arrive; beyond: 408.
    pub body_timeout: Duration,
    pub state_file: Option<PathBuf>,
}

/// `[upbit]`: what to receive, from where.
#[derive(Debug, Clone)]
pub struct UpbitSettings {
    /// Upbit's exchange: `kr` (api.upbit.com), `sg`, `id` or `th` ({region}-api.upbit.com).
    pub region: String,
    /// WebSocket URL (`ws://` or `wss://`): `upbit.url` when set, else the region's.
    pub url: String,
    /// Market codes, validated and de-duplicated.
    pub codes: Vec<String>,
    /// Data types received for every code.
    pub types: Vec<DataType>,
    /// Message format of the connection.
    pub format: Format,
    /// Orderbook depth suffix and price grouping.
    pub orderbook: OrderbookOptions,
}

impl UpbitSettings {
    /// The subscription the configuration asks for.
    pub fn subscription(&self) -> Subscription {
        Subscription::uniform(
            self.types.iter().copied(),
            self.codes.iter().map(String::as_str),
        )
    }
}

/// `[connection]`: keepalive and reconnect policy.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    pub ping_interval: Duration,
    pub idle_timeout: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    pub connect_timeout: Duration,
    pub ban_penalty: Duration,
    /// Codes one connection carries at most; beyond, the subscription is spread over several
    /// connections. 0: no limit (one connection).
    pub max_codes_per_connection: usize,
}

/// `[pipeline]`: queues between actors and frame limits.
#[derive(Debug, Clone)]
pub struct PipelineSettings {
    pub queue_capacity: usize,
    pub max_frame_bytes: usize,
}

/// `[http]`: the metrics, health and control server.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    pub workers: usize,
}

/// Settings could not be loaded: every problem found, one per line.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", problems.join("\n  - "))]
pub struct SettingsError {
    pub problems: Vec<String>,
}

impl SettingsError {
    fn one(problem: String) -> Self {
        Self {
            problems: vec![problem],
        }
    }
}

// The raw, loosely typed shape of the layered sources; `validate` turns it into `Settings`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    upbit: RawUpbit,
    connection: RawConnection,
    pipeline: RawPipeline,
    http: RawHttp,
    control: RawControl,
    discovery: RawDiscovery,
    stream: RawStream,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDiscovery {
    url: String,
    refresh: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStream {
    enabled: bool,
    max_consumers: i64,
    max_consumers_per_address: i64,
    trade_queue: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawControl {
    token_file: String,
    token: String,
    protect_reads: bool,
    max_codes: i64,
    max_body_bytes: i64,
    body_timeout: String,
    state_file: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpbit {
    region: String,
    url: String,
    codes: Vec<String>,
    types: Vec<String>,
    format: String,
    orderbook_depth: i64,
    orderbook_level: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConnection {
    ping_interval: String,
    idle_timeout: String,
    backoff_min: String,
    backoff_max: String,
    connect_timeout: String,
    ban_penalty: String,
    max_codes_per_connection: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    queue_capacity: i64,
    max_frame_bytes: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: String,
    workers: i64,
}

/// Where overrides come from besides the defaults.
#[derive(Debug, Default, Clone)]
pub struct Sources<'a> {
    /// A TOML file layered over the defaults (`--config`).
    pub file: Option<&'a Path>,
    /// Environment variables, as `(name, value)`; pass `std::env::vars()` in production and a
    /// literal list in tests, so tests never touch the process environment.
    pub env: Vec<(String, String)>,
}

impl Settings {
    /// Loads and validates: defaults, then `sources.file`, then `sources.env`.
    pub fn load(sources: Sources<'_>) -> Result<Self, SettingsError> {
        let env: config::Map<String, String> = sources
            .env
            .into_iter()
            .filter(|(name, _)| name.starts_with(&format!("{ENV_PREFIX}__")))
            .collect();
        let mut builder =
            Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
        if let Some(path) = sources.file {
            if !path.is_file() {
                return Err(SettingsError::one(format!(
                    "config file {} does not exist or is not a file",
                    path.display()
                )));
            }
            builder = builder.add_source(File::from(path).format(FileFormat::Toml));
        }
        builder = builder.add_source(
            Environment::with_prefix(ENV_PREFIX)
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("upbit.codes")
                .with_list_parse_key("upbit.types")
                .try_parsing(true)
                .source(Some(env)),
        );
        let raw: Raw = builder
            .build()
            .and_then(Config::try_deserialize)
            .map_err(|err| SettingsError::one(explain_config_error(err)))?;
        raw.validate()
    }

    /// Defaults with the given environment-style overrides, for tests and tools.
    pub fn from_overrides<'a>(
        overrides: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, SettingsError> {
        let env = overrides
            .into_iter()
            .map(|(key, value)| {
                let name = format!("{ENV_PREFIX}__{}", key.replace('.', "__").to_uppercase());
                (name, value.to_owned())
            })
            .collect();
        Self::load(Sources { file: None, env })
    }
}

fn explain_config_error(err: config::ConfigError) -> String {
    let text = err.to_string();
    if text.contains("unknown field") {
        format!("{text} (see config/default.toml for every accepted key)")
    } else {
        text
    }
}

impl Raw {
    fn validate(self) -> Result<Settings, SettingsError> {
        let mut problems = Vec::new();
        let problems_before = problems.len();
        let mut duration = |key: &str, text: &str| match parse_duration(text) {
            Ok(d) => d,
            Err(e) => {
                problems.push(format!("connection.{key}: {e}"));
                Duration::ZERO
            }
        };
        let c = &self.connection;
        let connection = ConnectionSettings {
            ping_interval: duration("ping_interval", &c.ping_interval),
            idle_timeout: duration("idle_timeout", &c.idle_timeout),
            backoff_min: duration("backoff_min", &c.backoff_min),
            backoff_max: duration("backoff_max", &c.backoff_max),
            connect_timeout: duration("connect_timeout", &c.connect_timeout),
            ban_penalty: duration("ban_penalty", &c.ban_penalty),
            max_codes_per_connection: c.max_codes_per_connection.clamp(0, 100_000) as usize,
        };
        if !(0..=100_000).contains(&c.max_codes_per_connection) {
            problems.push(format!(
                "connection.max_codes_per_connection: {} is out of range 0..=100000",
                c.max_codes_per_connection
            ));
        }
        if problems.len() == problems_before {
            check_connection(&connection, &mut problems);
        }

        let upbit = validate_upbit(self.upbit, &mut problems);
        let discovery = validate_discovery(self.discovery, &upbit.url, &mut problems);

        let mut positive = |key: &str, value: i64, max: i64| {
            if (1..=max).contains(&value) {
                value as usize
            } else {
                problems.push(format!("{key}: {value} is out of range 1..={max}"));
                1
            }
        };
        let pipeline = PipelineSettings {
            queue_capacity: positive(
                "pipeline.queue_capacity",
                self.pipeline.queue_capacity,
                1 << 20,
            ),
            max_frame_bytes: positive(
                "pipeline.max_frame_bytes",
                self.pipeline.max_frame_bytes,
                64 << 20,
            ),
        };
        let listen = self.http.listen.parse().unwrap_or_else(|_| {
            problems.push(format!(
                "http.listen: {:?} is not an address; expected IP:PORT such as 0.0.0.0:8081",
                self.http.listen
            ));
            SocketAddr::from(([127, 0, 0, 1], 0))
        });
        if !(0..=64).contains(&self.http.workers) {
            problems.push(format!(
                "http.workers: {} is out of range 0..=64",
                self.http.workers
            ));
        }
        let http = HttpSettings {
            listen,
            workers: self.http.workers.clamp(0, 64) as usize,
        };
        let control = validate_control(self.control, &mut problems);
        let stream = validate_stream(self.stream, &mut problems);
        if upbit.codes.len() > control.max_codes {
            problems.push(format!(
                "upbit.codes: {} codes exceed control.max_codes ({})",
                upbit.codes.len(),
                control.max_codes
            ));
        }

        if problems.is_empty() {
            Ok(Settings {
                upbit,
                connection,
                pipeline,
                http,
                control,
                discovery,
                stream,
            })
        } else {
            Err(SettingsError { problems })
        }
    }
}

fn validate_discovery(
    raw: RawDiscovery,
    ws_url: &str,
    problems: &mut Vec<String>,
) -> DiscoverySettings {
    let refresh = parse_duration(&raw.refresh).unwrap_or_else(|e| {
        problems.push(format!("discovery.refresh: {e}"));
        Duration::ZERO
    });
    if !refresh.is_zero() && refresh < Duration::from_secs(1) {
        problems.push("discovery.refresh: at least 1s (or 0 to fetch once)".into());
    }
    let url = if raw.url.trim().is_empty() {
        market_list_url(ws_url).unwrap_or_default()
    } else {
        raw.url.trim().to_owned()
    };
    match url.parse::<awc::http::Uri>() {
        Ok(uri) if matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some() => {}
        _ if url.is_empty() => {} // upbit.url is invalid and already reported
        _ => problems.push(format!(
            "discovery.url: {url:?} is not an HTTP URL; expected https://HOST/v1/market/all"
        )),
    }
    DiscoverySettings { url, refresh }
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
    let bad = |p: &mut Vec<String>, text: String| p.push(format!("connection.{text}"));
    if c.ping_interval.is_zero() {
        bad(problems, "ping_interval must be above zero".into());
    }
    if c.idle_timeout <= c.ping_interval {
        bad(problems, format!(
            "idle_timeout ({:?}) must be longer than ping_interval ({:?}), or every quiet market drops the link",
            c.idle_timeout, c.ping_interval
        ));
    }
    if c.idle_timeout >= UPBIT_IDLE_CLOSE {
        bad(
            problems,
            format!(
                "idle_timeout ({:?}) must stay under Upbit's own idle close of {:?}",
                c.idle_timeout, UPBIT_IDLE_CLOSE
            ),
        );
    }
    if c.backoff_min.is_zero() {
        bad(problems, "backoff_min must be above zero".into());
    }
    if c.backoff_max < c.backoff_min {
        bad(
            problems,
            format!(
                "backoff_max ({:?}) must not be below backoff_min ({:?})",
                c.backoff_max, c.backoff_min
            ),
        );
    }
    if c.connect_timeout.is_zero() {
        bad(problems, "connect_timeout must be above zero".into());
    }
}

fn validate_control(raw: RawControl, problems: &mut Vec<String>) -> ControlSettings {
    let token = match (raw.token.trim(), raw.token_file.trim()) {
        ("", "") => None,
        (token, "") => Some(token.to_owned()),
        ("", file) => match std::fs::read_to_string(file) {
            Ok(text) if !text.trim().is_empty() => Some(text.trim().to_owned()),
            Ok(_) => {
                problems.push(format!("control.token_file: {file} is empty"));
                None
            }
            Err(e) => {
                problems.push(format!("control.token_file: cannot read {file}: {e}"));
                None
            }
        },
        (_, _) => {
            problems.push("control: set either token or token_file, not both".into());
            None
        }
    };
    if token.as_ref().is_some_and(|t| t.len() < 16) {
        problems
            .push("control.token: use at least 16 characters (e.g. openssl rand -hex 32)".into());
    }
    let mut bounded = |key: &str, value: i64, range: std::ops::RangeInclusive<i64>| {
        if range.contains(&value) {
            value as usize
        } else {
            problems.push(format!("control.{key}: {value} is out of range {range:?}"));
            *range.start() as usize
        }
    };
    ControlSettings {
        token: token.map(Secret::new),
        protect_reads: raw.protect_reads,
        max_codes: bounded("max_codes", raw.max_codes, 1..=10_000),
        max_body_bytes: bounded("max_body_bytes", raw.max_body_bytes, 1024..=16 << 20),
        body_timeout: match parse_duration(&raw.body_timeout) {
            Ok(d) if !d.is_zero() && d <= Duration::from_secs(300) => d,
            Ok(d) => {
                problems.push(format!(
                    "control.body_timeout: {d:?} is out of range; use 1ms to 5m"
                ));
                Duration::from_secs(10)
            }
            Err(e) => {
                problems.push(format!("control.body_timeout: {e}"));
                Duration::from_secs(10)
            }
        },
        state_file: Some(raw.state_file.trim())
            .filter(|f| !f.is_empty())
            .map(PathBuf::from),
    }
}

fn validate_stream(raw: RawStream, problems: &mut Vec<String>) -> StreamSettings {
    let mut bounded = |key: &str, value: i64, range: std::ops::RangeInclusive<i64>| {
        if range.contains(&value) {
            value as usize
        } else {
            problems.push(format!("stream.{key}: {value} is out of range {range:?}"));
            *range.start() as usize
        }
    };
    StreamSettings {
        enabled: raw.enabled,
        max_consumers: bounded("max_consumers", raw.max_consumers, 1..=100_000),
        max_consumers_per_address: bounded(
            "max_consumers_per_address",
            raw.max_consumers_per_address,
            1..=100_000,
        ),
        trade_queue: bounded("trade_queue", raw.trade_queue, 1..=1_000_000),
    }
}

/// Upbit's regional exchanges: the same API on another host.
pub const REGIONS: [&str; 4] = ["kr", "sg", "id", "th"];

/// The quotation WebSocket of a region: `kr` → `wss://api.upbit.com/websocket/v1`, `sg` →
/// `wss://sg-api.upbit.com/websocket/v1` (likewise `id`, `th`).
pub fn region_url(region: &str) -> String {
    match region {
        "kr" => "wss://api.upbit.com/websocket/v1".to_owned(),
        other => format!("wss://{other}-api.upbit.com/websocket/v1"),
    }
}

fn validate_upbit(mut raw: RawUpbit, problems: &mut Vec<String>) -> UpbitSettings {
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

#[cfg(test)]
mod tests;
