//! Settings: the compiled-in defaults (config/default.toml), an optional file, then environment
//! variables `UPBIT_EXPORTER__SECTION__KEY`. [`Settings::load`] reports every problem at once.
//!
//! - `load.rs`: the layers, and serde turning each section into its typed struct (a bad key is
//!   reported on its own, so several bad keys in one section are all listed);
//! - `fields.rs`: serde adapters holding every rule about one key alone (ranges, URLs, the
//!   token's length), so such a problem is listed even beside another refused key;
//! - `validate.rs`: the rules between keys (`idle_timeout` against `ping_interval`, the codes
//!   against `control.max_codes`), the token file, and the `[upbit]` section's lists.

mod fields;
mod load;
mod nats;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::secret::Secret;
use crate::subscription::Shard;
use crate::upbit::request::OrderbookOptions;
use crate::upbit::{DataType, Format, Subscription};

pub use nats::{NatsSecret, NatsSettings};
pub use validate::{market_list_url, region_url, REGIONS};

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
    pub metrics: MetricsSettings,
    pub nats: NatsSettings,
    /// `[shard]`: the part of the subscription this replica takes.
    pub shard: Shard,
}

/// `[shard]` as written: shard `index` of `count`; checked against each other in `validate.rs`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ShardSection {
    #[serde(deserialize_with = "fields::within::<_, 0, 999>")]
    pub index: usize,
    #[serde(deserialize_with = "fields::within::<_, 1, 1000>")]
    pub count: usize,
}

/// `[metrics]`: which market-structure series are exported, so a large subscription stays
/// affordable.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// Orderbook depth bands, basis points of the mid, ascending and distinct (at most 8).
    #[serde(deserialize_with = "fields::depth_bands")]
    pub depth_bands_bps: Vec<u32>,
    /// Latest-candle series beside the close: `open`, `high`, `low`, `volume`, `start`.
    #[serde(deserialize_with = "fields::candle_fields")]
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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoverySettings {
    /// `GET` URL of Upbit's market list; derived from `upbit.url` unless set.
    #[serde(deserialize_with = "fields::http_url")]
    pub url: String,
    /// How often the list is fetched again; zero fetches it once at start.
    #[serde(deserialize_with = "fields::refresh")]
    pub refresh: Duration,
}

/// `[stream]`: the live stream (`/api/v1/stream`, `/api/v1/events`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamSettings {
    /// Serve the stream at all.
    pub enabled: bool,
    /// Consumers at once, both transports together; beyond: 503.
    #[serde(deserialize_with = "fields::within::<_, 1, 100_000>")]
    pub max_consumers: usize,
    /// Consumers at once from one remote address; beyond: 503.
    #[serde(deserialize_with = "fields::within::<_, 1, 100_000>")]
    pub max_consumers_per_address: usize,
    /// Trades (and link events) waiting for one consumer; one more disconnects it as slow.
    #[serde(deserialize_with = "fields::within::<_, 1, 1_000_000>")]
    pub trade_queue: usize,
}

/// `[control]`: who may change what, and limits on what they send.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlSettings {
    /// The bearer token, from `token` or read from `token_file`; `None` disables mutating routes.
    #[serde(deserialize_with = "fields::secret")]
    pub token: Option<Secret>,
    /// Where `token` was read from, if from a file.
    #[serde(deserialize_with = "fields::path")]
    pub token_file: Option<PathBuf>,
    pub protect_reads: bool,
    #[serde(deserialize_with = "fields::within::<_, 1, 10_000>")]
    pub max_codes: usize,
    #[serde(deserialize_with = "fields::within::<_, 1024, { 16 << 20 }>")]
    pub max_body_bytes: usize,
    /// Longest a request body may take to arrive; beyond: 408.
    #[serde(deserialize_with = "fields::body_timeout")]
    pub body_timeout: Duration,
    #[serde(deserialize_with = "fields::path")]
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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionSettings {
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub ping_interval: Duration,
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub idle_timeout: Duration,
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub backoff_min: Duration,
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub backoff_max: Duration,
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub connect_timeout: Duration,
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub ban_penalty: Duration,
    /// Codes one connection carries at most; beyond, the subscription is spread over several
    /// connections. 0: no limit (one connection).
    #[serde(deserialize_with = "fields::within::<_, 0, 100_000>")]
    pub max_codes_per_connection: usize,
}

/// `[pipeline]`: queues between actors and frame limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSettings {
    #[serde(deserialize_with = "fields::within::<_, 1, { 1 << 20 }>")]
    pub queue_capacity: usize,
    #[serde(deserialize_with = "fields::within::<_, 1, { 64 << 20 }>")]
    pub max_frame_bytes: usize,
}

/// `[http]`: the metrics, health and control server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    #[serde(deserialize_with = "fields::socket_address")]
    pub listen: SocketAddr,
    #[serde(deserialize_with = "fields::within::<_, 0, 64>")]
    pub workers: usize,
}

/// Settings could not be loaded: every problem found, one per line.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", problems.join("\n  - "))]
pub struct SettingsError {
    pub problems: Vec<String>,
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
        let mut problems = Vec::new();
        let sections = load::Sections::layered(sources, &mut problems)?;
        let settings = validate::validate(sections, &mut problems);
        match settings {
            Some(settings) if problems.is_empty() => Ok(settings),
            _ => Err(SettingsError { problems }),
        }
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

#[cfg(test)]
mod tests;
