//! The layers (defaults → file → environment) and serde turning each section into its type.
//!
//! Serde stops at the first error of a value, so each section is deserialized on its own, and
//! a section that fails is tried again one key at a time over the defaults: every bad key is
//! listed, in every section, not only the first.

use config::builder::{ConfigBuilder, DefaultState};
use config::{Config, ConfigError, File, FileFormat, Map, Value};
use serde::de::DeserializeOwned;

use super::validate::UpbitSection;
use super::{
    ConnectionSettings, ControlSettings, DiscoverySettings, HttpSettings, MetricsSettings,
    NatsSettings, PipelineSettings, SettingsError, ShardSection, Sources, StreamSettings,
    DEFAULT_TOML, ENV_PREFIX,
};

/// The sections as serde read them; `None` where a key was refused (and listed).
pub(super) struct Sections {
    pub upbit: Option<UpbitSection>,
    pub connection: Option<ConnectionSettings>,
    pub pipeline: Option<PipelineSettings>,
    pub http: Option<HttpSettings>,
    pub control: Option<ControlSettings>,
    pub discovery: Option<DiscoverySettings>,
    pub stream: Option<StreamSettings>,
    pub metrics: Option<MetricsSettings>,
    pub shard: Option<ShardSection>,
    pub nats: Option<NatsSettings>,
}

type Builder = ConfigBuilder<DefaultState>;

/// Every section name, in the order of config/default.toml.
const SECTIONS: [&str; 10] = [
    "upbit",
    "connection",
    "pipeline",
    "http",
    "control",
    "discovery",
    "stream",
    "metrics",
    "shard",
    "nats",
];

impl Sections {
    /// Layers the sources and reads every section, adding each refused key to `problems`.
    /// Fails alone only when the sources cannot be read at all (a missing or malformed file).
    pub fn layered(
        sources: Sources<'_>,
        problems: &mut Vec<String>,
    ) -> Result<Self, SettingsError> {
        let defaults = root(Config::builder().add_source(defaults()))?;
        let layered = root(layers(sources)?)?;
        let mut unknown: Vec<&String> = layered
            .keys()
            .filter(|key| !SECTIONS.contains(&key.as_str()))
            .collect();
        unknown.sort();
        for key in unknown {
            problems.push(format!(
                "{key}: unknown section; expected one of {} (see config/default.toml for every \
                 accepted key)",
                SECTIONS.join(", ")
            ));
        }
        let mut read = Reader {
            layered,
            defaults,
            problems,
        };
        Ok(Self {
            upbit: read.section("upbit"),
            connection: read.section("connection"),
            pipeline: read.section("pipeline"),
            http: read.section("http"),
            control: read.section("control"),
            discovery: read.section("discovery"),
            stream: read.section("stream"),
            metrics: read.section("metrics"),
            shard: read.section("shard"),
            nats: read.section("nats"),
        })
    }
}

fn defaults() -> File<config::FileSourceString, FileFormat> {
    File::from_str(DEFAULT_TOML, FileFormat::Toml)
}

/// Keys whose environment value is a comma-separated list.
const LIST_KEYS: [&str; 4] = [
    "upbit.codes",
    "upbit.types",
    "metrics.depth_bands_bps",
    "metrics.candle_fields",
];

/// Defaults, then the file, then the environment. Environment values stay text (or lists of
/// text) until serde asks for a number or a boolean, so a token or a path made of digits keeps
/// its leading zeros (config's `try_parsing` would turn `0012...` into the number `12...`).
fn layers(sources: Sources<'_>) -> Result<Builder, SettingsError> {
    let mut builder = Config::builder().add_source(defaults());
    if let Some(path) = sources.file {
        if !path.is_file() {
            return Err(one(format!(
                "config file {} does not exist or is not a file",
                path.display()
            )));
        }
        builder = builder.add_source(File::from(path).format(FileFormat::Toml));
    }
    let origin = Some("the environment".to_owned());
    let prefix = format!("{ENV_PREFIX}__");
    for (name, text) in sources.env {
        let Some(key) = name.strip_prefix(&prefix) else {
            continue;
        };
        let key = key.to_lowercase().replace("__", ".");
        let value = if LIST_KEYS.contains(&key.as_str()) {
            // An empty value is the empty list (`[]` in a file), not one empty item.
            let items: Vec<String> = match text.trim() {
                "" => Vec::new(),
                _ => text.split(',').map(str::to_owned).collect(),
            };
            Value::new(origin.as_ref(), items)
        } else {
            Value::new(origin.as_ref(), text)
        };
        builder = builder
            .set_override(&key, value)
            .map_err(|err| one(format!("{name}: not a settings key ({err})")))?;
    }
    Ok(builder)
}

/// The merged sources as one table of sections.
fn root(builder: Builder) -> Result<Map<String, Value>, SettingsError> {
    builder
        .build()
        .and_then(Config::try_deserialize)
        .map_err(|err| one(err.to_string()))
}

fn one(problem: String) -> SettingsError {
    SettingsError {
        problems: vec![problem],
    }
}

/// The merged sources, taken apart one section at a time.
struct Reader<'a> {
    layered: Map<String, Value>,
    defaults: Map<String, Value>,
    problems: &'a mut Vec<String>,
}

impl Reader<'_> {
    /// Section `name` as `T`. When serde refuses it, each of its keys is tried alone over the
    /// defaults, and every key refused that way is listed as `name.key: reason`.
    fn section<T: DeserializeOwned>(&mut self, name: &str) -> Option<T> {
        let (defaults, problems) = (&self.defaults, &mut *self.problems);
        let value = self.layered.remove(name)?;
        let whole = match value.clone().try_deserialize::<T>() {
            Ok(section) => return Some(section),
            Err(err) => err,
        };
        let before = problems.len();
        if let (Ok(table), Some(Ok(base))) = (
            value.into_table(),
            defaults.get(name).cloned().map(Value::into_table),
        ) {
            let mut keys: Vec<_> = table.into_iter().collect();
            keys.sort_by(|a, b| a.0.cmp(&b.0));
            for (key, value) in keys {
                let mut alone = base.clone();
                alone.insert(key.clone(), value);
                if let Err(err) = Value::from(alone).try_deserialize::<T>() {
                    problems.push(format!("{name}.{key}: {}", reason(err)));
                }
            }
        }
        if problems.len() == before {
            problems.push(format!("{name}: {}", reason(whole)));
        }
        None
    }
}

/// The error without config's `for key ...` suffix, which the caller states up front.
fn reason(err: ConfigError) -> String {
    match err {
        ConfigError::At { error, origin, .. } => with_origin(reason(*error), origin),
        ConfigError::Type {
            unexpected,
            expected,
            origin,
            ..
        } => with_origin(format!("{unexpected} is not {expected}"), origin),
        ConfigError::Message(text) if text.starts_with("unknown field") => {
            format!("{text} (see config/default.toml for every accepted key)")
        }
        other => other.to_string(),
    }
}

fn with_origin(text: String, origin: Option<String>) -> String {
    match origin {
        Some(origin) => format!("{text} (in {origin})"),
        None => text,
    }
}
