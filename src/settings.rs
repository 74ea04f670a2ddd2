//! Settings: the compiled-in defaults (config/default.toml), an optional file, then environment
//! variables `UPBIT_EXPORTER__SECTION__KEY`. [`Settings::load`] reports every problem at once.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;

use crate::control::Secret;
use crate::duration::parse_duration;
use crate::upbit::request::OrderbookOptions;
use crate::upbit::types::entry_problem;
use crate::upbit::{DataType, Format, Subscription};

/// The defaults, with a comment on every key: the operator's reference.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

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
    pub metrics: MetricsSettings,
}

/// `[metrics]`: which market-structure series are exported, so a large subscription stays
/// affordable.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsSettings {
    /// Orderbook depth bands, basis points of the mid, ascending and distinct (at most 8).
    pub depth_bands_bps: Vec<u32>,
    /// Latest-candle series beside the close: `open`, `high`, `low`, `volume`, `start`.
    pub candle_fields: Vec<String>,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            depth_bands_bps: vec![10, 50, 100, 200],
            candle_fields: CANDLE_FIELDS.map(str::to_owned).to_vec(),
        }
    }
}

/// The names `metrics.candle_fields` accepts.
pub const CANDLE_FIELDS: [&str; 5] = ["open", "high", "low", "volume", "start"];

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
    metrics: RawMetrics,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    depth_bands_bps: Vec<i64>,
    candle_fields: Vec<String>,
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
                .with_list_parse_key("metrics.depth_bands_bps")
                .with_list_parse_key("metrics.candle_fields")
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
        let metrics = validate_metrics(self.metrics, &mut problems);
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
                metrics,
            })
        } else {
            Err(SettingsError { problems })
        }
    }
}

fn validate_metrics(raw: RawMetrics, problems: &mut Vec<String>) -> MetricsSettings {
    let mut bands = Vec::new();
    for bps in raw.depth_bands_bps {
        match u32::try_from(bps) {
            Ok(b @ 1..=10_000) => bands.push(b),
            _ => problems.push(format!(
                "metrics.depth_bands_bps: {bps} is out of range 1..=10000 (basis points of the mid)"
            )),
        }
    }
    bands.sort_unstable();
    bands.dedup();
    if bands.len() > 8 {
        problems.push(format!(
            "metrics.depth_bands_bps: {} bands, at most 8 (each costs 4 series per orderbook code)",
            bands.len()
        ));
        bands.truncate(8);
    }
    let mut candle_fields = Vec::new();
    for field in raw.candle_fields {
        let field = field.trim().to_ascii_lowercase();
        if !CANDLE_FIELDS.contains(&field.as_str()) {
            problems.push(format!(
                "metrics.candle_fields: {field:?} is not one of {}",
                CANDLE_FIELDS.join(", ")
            ));
        } else if !candle_fields.contains(&field) {
            candle_fields.push(field);
        }
    }
    MetricsSettings {
        depth_bands_bps: bands,
        candle_fields,
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
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let s = Settings::from_overrides([]).unwrap();
        assert_eq!(s.upbit.url, "wss://api.upbit.com/websocket/v1");
        assert_eq!(
            s.upbit.codes,
            ["KRW-BTC", "KRW-ETH", "KRW-SOL", "KRW-ADA", "KRW-XRP"]
        );
        assert_eq!(s.upbit.types, [DataType::Ticker]);
        assert_eq!(s.upbit.format, Format::Default);
        assert_eq!(s.connection.ping_interval, Duration::from_secs(30));
        assert_eq!(s.connection.idle_timeout, Duration::from_secs(60));
        assert_eq!(s.connection.backoff_min, Duration::from_secs(1));
        assert_eq!(s.connection.backoff_max, Duration::from_secs(60));
        assert_eq!(s.http.listen, "0.0.0.0:8081".parse().unwrap());
    }

    #[test]
    fn environment_overrides_with_lists_and_durations() {
        let s = Settings::from_overrides([
            ("upbit.url", "ws://127.0.0.1:9944/websocket/v1"),
            ("upbit.codes", "KRW-BTC,KRW-ETH,KRW-BTC"),
            ("upbit.types", "ticker,trade,orderbook,candle.1m"),
            ("upbit.format", "SIMPLE"),
            ("connection.ping_interval", "500ms"),
            ("connection.idle_timeout", "2s"),
            ("http.listen", "127.0.0.1:18081"),
        ])
        .unwrap();
        assert_eq!(s.upbit.codes, ["KRW-BTC", "KRW-ETH"]);
        assert_eq!(s.upbit.types.len(), 4);
        assert_eq!(s.upbit.format, Format::Simple);
        assert_eq!(s.connection.ping_interval, Duration::from_millis(500));
        assert_eq!(s.upbit.subscription().len(), 8);
    }

    #[test]
    fn market_figures_default_and_come_from_the_environment_checked() {
        let s = Settings::from_overrides([]).unwrap();
        assert_eq!(s.metrics, MetricsSettings::default());
        assert_eq!(s.metrics.depth_bands_bps, [10, 50, 100, 200]);
        let s = Settings::from_overrides([
            ("metrics.depth_bands_bps", "100,10,100"),
            ("metrics.candle_fields", "start"),
        ])
        .unwrap();
        assert_eq!(s.metrics.depth_bands_bps, [10, 100], "sorted, distinct");
        assert_eq!(s.metrics.candle_fields, ["start"]);
        let err = Settings::from_overrides([
            ("metrics.depth_bands_bps", "0,1,2,3,4,5,6,7,8,9,20000"),
            ("metrics.candle_fields", "open,vwap"),
        ])
        .unwrap_err();
        let text = err.to_string();
        for needle in [
            "0 is out of range",
            "20000 is out of range",
            "at most 8",
            "\"vwap\"",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
        assert_eq!(err.problems.len(), 4, "{text}");
    }

    #[test]
    fn a_single_code_in_the_environment_is_a_list() {
        let s = Settings::from_overrides([("upbit.codes", "KRW-DOGE")]).unwrap();
        assert_eq!(s.upbit.codes, ["KRW-DOGE"]);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = Settings::from_overrides([
            ("upbit.url", "https://api.upbit.com"),
            ("upbit.codes", "krw-btc,KRW_ETH,KRW-XRP"),
            ("upbit.types", "ticker,quote"),
            ("upbit.format", "XML"),
            ("connection.backoff_max", "forever"),
            ("http.listen", "localhost"),
        ])
        .unwrap_err();
        let text = err.to_string();
        for needle in [
            "upbit.url",
            "upper case",
            "KRW_ETH",
            "quote",
            "XML",
            "backoff_max",
            "http.listen",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
        assert_eq!(err.problems.len(), 7, "{text}");
    }

    #[test]
    fn control_token_from_env_or_file_never_both() {
        let s = Settings::from_overrides([]).unwrap();
        assert!(s.control.token.is_none());
        assert_eq!(
            (s.control.max_codes, s.control.max_body_bytes),
            (500, 65536)
        );
        let s = Settings::from_overrides([("control.token", "0123456789abcdef0123")]).unwrap();
        assert!(s.control.token.unwrap().matches("0123456789abcdef0123"));
        let err = Settings::from_overrides([("control.token", "short")]).unwrap_err();
        assert!(err.to_string().contains("16 characters"), "{err}");
        assert!(
            !err.to_string().contains("short"),
            "the token never appears in errors: {err}"
        );
        let err = Settings::from_overrides([
            ("control.token", "0123456789abcdef0123"),
            ("control.token_file", "/nonexistent/token"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("not both"), "{err}");
        let err =
            Settings::from_overrides([("control.token_file", "/nonexistent/token")]).unwrap_err();
        assert!(
            err.to_string().contains("cannot read /nonexistent/token"),
            "{err}"
        );
    }

    #[test]
    fn per_address_consumers_and_body_timeout_have_defaults_and_bounds() {
        let s = Settings::from_overrides([]).unwrap();
        assert_eq!(s.stream.max_consumers_per_address, 10);
        assert_eq!(s.control.body_timeout, Duration::from_secs(10));
        let s = Settings::from_overrides([
            ("stream.max_consumers_per_address", "3"),
            ("control.body_timeout", "250ms"),
        ])
        .unwrap();
        assert_eq!(s.stream.max_consumers_per_address, 3);
        assert_eq!(s.control.body_timeout, Duration::from_millis(250));
        let err = Settings::from_overrides([
            ("stream.max_consumers_per_address", "0"),
            ("control.body_timeout", "0s"),
        ])
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("stream.max_consumers_per_address"), "{text}");
        assert!(text.contains("control.body_timeout"), "{text}");
    }

    #[test]
    fn stream_settings_have_defaults_and_bounds() {
        let s = Settings::from_overrides([]).unwrap();
        assert!(s.stream.enabled);
        assert_eq!((s.stream.max_consumers, s.stream.trade_queue), (100, 1000));
        let s = Settings::from_overrides([
            ("stream.enabled", "false"),
            ("stream.max_consumers", "3"),
            ("stream.trade_queue", "20"),
        ])
        .unwrap();
        assert!(!s.stream.enabled);
        assert_eq!((s.stream.max_consumers, s.stream.trade_queue), (3, 20));
        let err =
            Settings::from_overrides([("stream.max_consumers", "0"), ("stream.trade_queue", "-1")])
                .unwrap_err();
        assert_eq!(err.problems.len(), 2, "{err}");
        assert!(err.problems[0].contains("stream.max_consumers"), "{err}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = Settings::from_overrides([("connection.ping_intervall", "1s")]).unwrap_err();
        assert!(err.to_string().contains("ping_intervall"), "{err}");
        let err = Settings::from_overrides([("nonsense.key", "1")]).unwrap_err();
        assert!(err.to_string().contains("nonsense"), "{err}");
    }

    #[test]
    fn durations_are_checked_against_each_other() {
        let err = Settings::from_overrides([
            ("connection.ping_interval", "30s"),
            ("connection.idle_timeout", "10s"),
            ("connection.backoff_min", "5s"),
            ("connection.backoff_max", "1s"),
        ])
        .unwrap_err();
        assert_eq!(err.problems.len(), 2, "{err}");
        assert!(
            err.problems[0].contains("longer than ping_interval"),
            "{err}"
        );
        assert!(err.problems[1].contains("backoff_max"), "{err}");
    }

    #[test]
    fn idle_timeout_must_stay_under_upbits_limit() {
        let err = Settings::from_overrides([("connection.idle_timeout", "2m")]).unwrap_err();
        assert!(err.to_string().contains("Upbit's own idle close"), "{err}");
    }

    #[test]
    fn a_config_file_layers_over_defaults_and_env_over_it() {
        let dir = std::env::temp_dir().join(format!("upbit-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.toml");
        std::fs::write(
            &path,
            "[upbit]\ncodes = [\"KRW-DOGE\"]\nformat = \"SIMPLE\"\n",
        )
        .unwrap();
        let env = vec![(
            "UPBIT_EXPORTER__UPBIT__FORMAT".to_owned(),
            "JSON_LIST".to_owned(),
        )];
        let s = Settings::load(Sources {
            file: Some(&path),
            env,
        })
        .unwrap();
        assert_eq!(s.upbit.codes, ["KRW-DOGE"]);
        assert_eq!(s.upbit.format, Format::JsonList);
        assert_eq!(
            s.upbit.types,
            [DataType::Ticker],
            "untouched keys keep defaults"
        );
        let missing = Settings::load(Sources {
            file: Some(&dir.join("nope.toml")),
            env: vec![],
        });
        assert!(missing.unwrap_err().to_string().contains("does not exist"));
        std::fs::write(&path, "[upbit]\ncodes = 5\n").unwrap();
        let wrong_type = Settings::load(Sources {
            file: Some(&path),
            env: vec![],
        })
        .unwrap_err();
        assert!(wrong_type.to_string().contains("codes"), "{wrong_type}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_region_picks_the_hosts_and_an_explicit_url_wins() {
        for (region, ws, list) in [
            (
                "kr",
                "wss://api.upbit.com/websocket/v1",
                "https://api.upbit.com/v1/market/all",
            ),
            (
                "sg",
                "wss://sg-api.upbit.com/websocket/v1",
                "https://sg-api.upbit.com/v1/market/all",
            ),
            (
                "id",
                "wss://id-api.upbit.com/websocket/v1",
                "https://id-api.upbit.com/v1/market/all",
            ),
            (
                "th",
                "wss://th-api.upbit.com/websocket/v1",
                "https://th-api.upbit.com/v1/market/all",
            ),
        ] {
            let s = Settings::from_overrides([("upbit.region", region)]).unwrap();
            assert_eq!((s.upbit.url.as_str(), s.discovery.url.as_str()), (ws, list));
        }
        let s = Settings::from_overrides([
            ("upbit.region", "sg"),
            ("upbit.url", "ws://127.0.0.1:9944/websocket/v1"),
        ])
        .unwrap();
        assert_eq!(s.upbit.url, "ws://127.0.0.1:9944/websocket/v1");
        assert_eq!(s.upbit.region, "sg");
        let err = Settings::from_overrides([("upbit.region", "jp")]).unwrap_err();
        assert!(err.to_string().contains("upbit.region"), "{err}");
    }

    #[test]
    fn orderbook_depth_and_level_are_checked() {
        let s = Settings::from_overrides([
            ("upbit.orderbook_depth", "15"),
            ("upbit.orderbook_level", " 1000 "),
        ])
        .unwrap();
        assert_eq!(s.upbit.orderbook.depth, Some(15));
        assert_eq!(s.upbit.orderbook.level.as_deref(), Some("1000"));
        let defaults = Settings::from_overrides(Vec::<(&str, &str)>::new()).unwrap();
        assert_eq!(defaults.upbit.orderbook, OrderbookOptions::default());
        let err = Settings::from_overrides([
            ("upbit.orderbook_depth", "7"),
            ("upbit.orderbook_level", "ten"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("upbit.orderbook_depth: 7 is not one of 1, 5, 15, 30"),
            "{err}"
        );
        assert!(err.contains("upbit.orderbook_level"), "{err}");
    }

    #[test]
    fn the_market_list_url_derives_from_the_websocket_url() {
        assert_eq!(
            market_list_url("wss://api.upbit.com/websocket/v1").as_deref(),
            Some("https://api.upbit.com/v1/market/all")
        );
        assert_eq!(
            market_list_url("ws://127.0.0.1:9944/websocket/v1").as_deref(),
            Some("http://127.0.0.1:9944/v1/market/all")
        );
        let s = Settings::from_overrides([("upbit.url", "wss://sg-api.upbit.com/websocket/v1")])
            .unwrap();
        assert_eq!(s.discovery.url, "https://sg-api.upbit.com/v1/market/all");
        assert_eq!(s.discovery.refresh, Duration::from_secs(600));
        assert_eq!(s.connection.max_codes_per_connection, 200);
        let s =
            Settings::from_overrides([("discovery.url", "http://10.0.0.1:8080/markets")]).unwrap();
        assert_eq!(s.discovery.url, "http://10.0.0.1:8080/markets");
    }

    #[test]
    fn patterns_are_accepted_and_bad_ones_explained() {
        let s = Settings::from_overrides([("upbit.codes", "KRW-*,BTC-ETH,*")]).unwrap();
        assert_eq!(s.upbit.codes, ["KRW-*", "BTC-ETH", "*"]);
        let err = Settings::from_overrides([
            ("upbit.codes", "KRW-B*"),
            ("discovery.url", "ftp://x"),
            ("discovery.refresh", "10ms"),
            ("connection.max_codes_per_connection", "-1"),
        ])
        .unwrap_err()
        .to_string();
        for needle in [
            "QUOTE-*",
            "discovery.url",
            "discovery.refresh",
            "max_codes_per_connection",
        ] {
            assert!(err.contains(needle), "{needle} missing from {err}");
        }
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        /// Every key an operator can set through the environment, read from the documented
        /// defaults (config/default.toml) so a new key is covered the day it is added.
        fn keys() -> Vec<String> {
            let mut section = String::new();
            let mut keys = Vec::new();
            for line in DEFAULT_TOML.lines().map(str::trim) {
                if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                    section = name.to_uppercase();
                } else if let Some((key, _)) =
                    line.split_once('=').filter(|_| !line.starts_with('#'))
                {
                    keys.push(format!(
                        "{ENV_PREFIX}__{section}__{}",
                        key.trim().to_uppercase()
                    ));
                }
            }
            keys
        }

        #[test]
        fn the_key_list_covers_every_section() {
            let keys = keys();
            assert!(keys.len() >= 30, "{keys:?}");
            for key in [
                "UPBIT__REGION",
                "CONTROL__BODY_TIMEOUT",
                "STREAM__MAX_CONSUMERS_PER_ADDRESS",
                "DISCOVERY__REFRESH",
            ] {
                assert!(
                    keys.iter().any(|k| k.ends_with(key)),
                    "{key} missing from {keys:?}"
                );
            }
        }

        fn hostile_value() -> impl Strategy<Value = String> {
            prop_oneof![
                "\\PC{0,40}",
                "-?[0-9]{1,25}(ms|s|m|h|d)?",
                "[A-Za-z,\\- ]{0,40}",
                Just("18446744073709551616".to_owned()),
                Just("0s".to_owned()),
                Just("ws://[::1".to_owned()),
                Just(",,,".to_owned()),
            ]
        }

        proptest! {
            /// Any value for any key loads or is refused with a message; never a panic.
            #[test]
            fn any_environment_loads_or_is_refused_with_a_message(
                pairs in prop::collection::vec((0usize..64, hostile_value()), 1..5),
            ) {
                let keys = keys();
                let env = pairs
                    .into_iter()
                    .map(|(k, v)| (keys[k % keys.len()].clone(), v))
                    .collect();
                if let Err(error) = Settings::load(Sources { file: None, env }) {
                    prop_assert!(!error.to_string().is_empty());
                }
            }
        }
    }
}
