//! `[nats]`: the JetStream sink (`crate::nats`), off unless `url` is set. Its one-key rules are
//! serde adapters here; the rules between keys (one credential at most, a TLS key with its
//! certificate) and the secret files are checked in [`validate`].

use std::path::PathBuf;
use std::time::Duration;

use serde::de::Error;
use serde::{Deserialize, Deserializer};

use super::fields;
use crate::secret::Secret;

/// `[nats]`, validated. `Debug` shows the URL without credentials.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSettings {
    /// Server URLs, comma-separated (`nats://host:4222`, `tls://host:4222`); `""`: the sink is
    /// off. Credentials in the URL are accepted and never shown.
    #[serde(deserialize_with = "urls")]
    pub url: String,
    /// `/readyz` fails while the sink is not connected.
    pub required: bool,
    /// First subject token: `{subject_prefix}.{type}.{code}`.
    #[serde(deserialize_with = "subject_prefix")]
    pub subject_prefix: String,
    /// The JetStream stream's name, created at start when missing.
    #[serde(deserialize_with = "stream_name")]
    pub stream: String,
    /// `file` or `memory`.
    #[serde(deserialize_with = "storage")]
    pub storage: String,
    /// `limits`, `interest` or `workqueue`.
    #[serde(deserialize_with = "retention")]
    pub retention: String,
    /// Oldest message kept; zero: no limit.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub max_age: Duration,
    /// Bytes kept; zero: no limit.
    #[serde(deserialize_with = "fields::within::<_, 0, { 1 << 50 }>")]
    pub max_bytes: usize,
    /// How long the stream remembers a `Nats-Msg-Id` to drop a repeat (an HA pair's twin).
    #[serde(deserialize_with = "duplicate_window")]
    pub duplicate_window: Duration,
    /// Stream replicas in a NATS cluster.
    #[serde(deserialize_with = "fields::within::<_, 1, 5>")]
    pub replicas: usize,
    /// Messages held while NATS is unreachable or slow; beyond, the oldest are dropped.
    #[serde(deserialize_with = "fields::within::<_, 1, 10_000_000>")]
    pub buffer: usize,
    /// Publishes awaiting their acknowledgement at once.
    #[serde(deserialize_with = "fields::within::<_, 1, 100_000>")]
    pub max_in_flight: usize,
    /// How long an acknowledgement may take before the message is sent again.
    #[serde(deserialize_with = "positive")]
    pub ack_timeout: Duration,
    /// Longest wait for one connection attempt.
    #[serde(deserialize_with = "positive")]
    pub connect_timeout: Duration,
    /// Longest delay between reconnection attempts (they start at 100 ms and double).
    #[serde(deserialize_with = "positive")]
    pub reconnect_delay_max: Duration,
    /// A NATS `.creds` file (user JWT and nkey seed).
    #[serde(deserialize_with = "fields::path")]
    pub credentials_file: Option<PathBuf>,
    /// A file holding a user nkey seed (`SU...`).
    #[serde(deserialize_with = "fields::path")]
    pub nkey_seed_file: Option<PathBuf>,
    /// A file holding the auth token.
    #[serde(deserialize_with = "fields::path")]
    pub token_file: Option<PathBuf>,
    /// PEM CA certificates to trust beside the system's (for `tls://` or a server that
    /// requires TLS).
    #[serde(deserialize_with = "fields::path")]
    pub tls_ca_file: Option<PathBuf>,
    /// A client certificate (PEM) for servers that verify clients, with `tls_key_file`.
    #[serde(deserialize_with = "fields::path")]
    pub tls_cert_file: Option<PathBuf>,
    #[serde(deserialize_with = "fields::path")]
    pub tls_key_file: Option<PathBuf>,
    /// Read from `nkey_seed_file` or `token_file` at load; never printed.
    #[serde(skip)]
    pub secret: Option<NatsSecret>,
}

impl std::fmt::Debug for NatsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSettings")
            .field("url", &self.redacted_url())
            .field("required", &self.required)
            .field("subject_prefix", &self.subject_prefix)
            .field("stream", &self.stream)
            .field("storage", &self.storage)
            .field("retention", &self.retention)
            .field("max_age", &self.max_age)
            .field("max_bytes", &self.max_bytes)
            .field("duplicate_window", &self.duplicate_window)
            .field("replicas", &self.replicas)
            .field("buffer", &self.buffer)
            .field("max_in_flight", &self.max_in_flight)
            .field("ack_timeout", &self.ack_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("reconnect_delay_max", &self.reconnect_delay_max)
            .field("credentials_file", &self.credentials_file)
            .field("nkey_seed_file", &self.nkey_seed_file)
            .field("token_file", &self.token_file)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("tls_cert_file", &self.tls_cert_file)
            .field("tls_key_file", &self.tls_key_file)
            .field("secret", &self.secret)
            .finish()
    }
}

/// A credential read from its file.
#[derive(Debug, Clone)]
pub enum NatsSecret {
    NkeySeed(Secret),
    Token(Secret),
}

impl NatsSettings {
    /// Whether the sink runs.
    pub fn enabled(&self) -> bool {
        !self.url.is_empty()
    }

    /// The URLs without any `user:password@`, for logs and `/api/v1/status`.
    pub fn redacted_url(&self) -> String {
        self.url
            .split(',')
            .map(|url| match (url.find("://"), url.rfind('@')) {
                (Some(scheme), Some(at)) if at > scheme => {
                    format!("{}***@{}", &url[..scheme + 3], &url[at + 1..])
                }
                (None, Some(at)) => format!("***@{}", &url[at + 1..]),
                _ => url.to_owned(),
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Rules between keys and the secret files; adds to `problems`.
pub(super) fn validate(mut nats: NatsSettings, problems: &mut Vec<String>) -> NatsSettings {
    let credentials = [
        nats.credentials_file.is_some(),
        nats.nkey_seed_file.is_some(),
        nats.token_file.is_some(),
    ];
    if credentials.iter().filter(|set| **set).count() > 1 {
        problems
            .push("nats: set at most one of credentials_file, nkey_seed_file, token_file".into());
    }
    if nats.tls_cert_file.is_some() != nats.tls_key_file.is_some() {
        problems.push("nats: tls_cert_file and tls_key_file go together".into());
    }
    for (key, file) in [
        ("credentials_file", &nats.credentials_file),
        ("tls_ca_file", &nats.tls_ca_file),
        ("tls_cert_file", &nats.tls_cert_file),
        ("tls_key_file", &nats.tls_key_file),
    ] {
        if let Some(path) = file {
            if let Err(e) = std::fs::metadata(path) {
                problems.push(format!("nats.{key}: cannot read {}: {e}", path.display()));
            }
        }
    }
    let mut read = |key: &str, path: &PathBuf| match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => Some(Secret::new(text.trim().to_owned())),
        Ok(_) => {
            problems.push(format!("nats.{key}: {} is empty", path.display()));
            None
        }
        Err(e) => {
            problems.push(format!("nats.{key}: cannot read {}: {e}", path.display()));
            None
        }
    };
    nats.secret = match (&nats.nkey_seed_file, &nats.token_file) {
        (Some(path), _) => read("nkey_seed_file", path).map(NatsSecret::NkeySeed),
        (None, Some(path)) => read("token_file", path).map(NatsSecret::Token),
        (None, None) => None,
    };
    nats
}

/// `nats.url`: `""`, or comma-separated `nats://`, `tls://` or bare `HOST:PORT` addresses.
fn urls<'de, D: Deserializer<'de>>(de: D) -> Result<String, D::Error> {
    let text = String::deserialize(de)?;
    let text = text.trim();
    if text.is_empty() {
        return Ok(String::new());
    }
    let mut urls = Vec::new();
    for url in text.split(',').map(str::trim) {
        let rest = match url.split_once("://") {
            Some(("nats" | "tls", rest)) => rest,
            Some(_) => return Err(D::Error::custom(
                "not a NATS URL; expected nats://HOST:PORT or tls://HOST:PORT (comma-separated for several)",
            )),
            None => url,
        };
        let host = rest.rsplit('@').next().unwrap_or_default();
        if host.is_empty() || host.contains(char::is_whitespace) || host.contains('/') {
            return Err(D::Error::custom(
                "not a NATS URL; expected nats://HOST:PORT or tls://HOST:PORT (comma-separated for several)",
            ));
        }
        urls.push(url);
    }
    Ok(urls.join(","))
}

/// One or more subject tokens (`upbit`, `md.upbit`): no wildcards, spaces or empty tokens.
fn subject_prefix<'de, D: Deserializer<'de>>(de: D) -> Result<String, D::Error> {
    let text = String::deserialize(de)?;
    let ok = !text.is_empty()
        && text.split('.').all(|token| {
            !token.is_empty()
                && !token
                    .chars()
                    .any(|c| c.is_whitespace() || c == '*' || c == '>')
        });
    match ok {
        true => Ok(text),
        false => Err(D::Error::custom(format!(
            "{text:?} is not a subject prefix; expected tokens separated by dots, without spaces, * or >"
        ))),
    }
}

/// A JetStream stream name: no spaces, dots, `*`, `>`, `/` or `\`.
fn stream_name<'de, D: Deserializer<'de>>(de: D) -> Result<String, D::Error> {
    let text = String::deserialize(de)?;
    let bad = |c: char| c.is_whitespace() || matches!(c, '.' | '*' | '>' | '/' | '\\');
    match !text.is_empty() && !text.contains(bad) && text.len() <= 255 {
        true => Ok(text),
        false => Err(D::Error::custom(format!(
            "{text:?} is not a stream name; expected letters, digits, - or _ (no dots, spaces, * or >)"
        ))),
    }
}

fn one_of<'de, D: Deserializer<'de>>(de: D, accepted: &[&str]) -> Result<String, D::Error> {
    let text = String::deserialize(de)?.trim().to_ascii_lowercase();
    match accepted.contains(&text.as_str()) {
        true => Ok(text),
        false => Err(D::Error::custom(format!(
            "{text:?} is not one of {}",
            accepted.join(", ")
        ))),
    }
}

fn storage<'de, D: Deserializer<'de>>(de: D) -> Result<String, D::Error> {
    one_of(de, &["file", "memory"])
}

fn retention<'de, D: Deserializer<'de>>(de: D) -> Result<String, D::Error> {
    one_of(de, &["limits", "interest", "workqueue"])
}

fn positive<'de, D: Deserializer<'de>>(de: D) -> Result<Duration, D::Error> {
    let value = crate::duration::deserialize(de)?;
    match value.is_zero() {
        true => Err(D::Error::custom("must be above zero")),
        false => Ok(value),
    }
}

/// `nats.duplicate_window`: 1 s to 1 day (JetStream keeps every id of the window in memory).
fn duplicate_window<'de, D: Deserializer<'de>>(de: D) -> Result<Duration, D::Error> {
    let value = crate::duration::deserialize(de)?;
    match value >= Duration::from_secs(1) && value <= Duration::from_secs(86_400) {
        true => Ok(value),
        false => Err(D::Error::custom(format!(
            "{value:?} is out of range; use 1s to 24h"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use crate::settings::{NatsSecret, Settings};

    #[test]
    fn off_by_default_with_the_documented_names() {
        let s = Settings::from_overrides([]).unwrap();
        assert!(!s.nats.enabled());
        assert!(!s.nats.required);
        assert_eq!(s.nats.subject_prefix, "upbit");
        assert_eq!(s.nats.stream, "UPBIT");
    }

    #[test]
    fn bad_values_are_each_listed() {
        let err = Settings::from_overrides([
            ("nats.url", "http://x:4222"),
            ("nats.subject_prefix", "up.*"),
            ("nats.stream", "A.B"),
            ("nats.retention", "forever"),
            ("nats.duplicate_window", "0s"),
        ])
        .unwrap_err();
        for key in [
            "nats.url",
            "nats.subject_prefix",
            "nats.stream",
            "nats.retention",
            "nats.duplicate_window",
        ] {
            assert!(
                err.problems.iter().any(|p| p.starts_with(key)),
                "{key}: {:?}",
                err.problems
            );
        }
    }

    #[test]
    fn one_credential_at_most_and_the_secret_is_read_but_never_shown() {
        let dir = std::env::temp_dir().join(format!("nats-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let token = dir.join("token");
        std::fs::write(&token, "s3cr3t-token\n").unwrap();
        let path = token.to_str().unwrap();
        let s = Settings::from_overrides([
            ("nats.url", "nats://user:pw@127.0.0.1:4222"),
            ("nats.token_file", path),
        ])
        .unwrap();
        assert!(matches!(s.nats.secret, Some(NatsSecret::Token(_))));
        let shown = format!("{:?} {}", s.nats, s.nats.redacted_url());
        assert!(
            !shown.contains("s3cr3t") && !shown.contains(":pw@"),
            "{shown}"
        );
        assert_eq!(s.nats.redacted_url(), "nats://***@127.0.0.1:4222");
        let err =
            Settings::from_overrides([("nats.token_file", path), ("nats.nkey_seed_file", path)])
                .unwrap_err();
        assert!(
            err.problems.iter().any(|p| p.contains("at most one")),
            "{:?}",
            err.problems
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
