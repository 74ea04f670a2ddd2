//! Test support: start the real service in-process against the in-process simulator, read its
//! public surface (`/metrics`, `/readyz`, `/api/v1`), and wait for conditions with deadlines.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use std::collections::BTreeSet;
use upbit_exporter::app::{self, AppHandle};
use upbit_exporter::settings::Settings;

use serde_json::Value;
use upbit_exporter::simulator::{Simulator, SimulatorConfig, SimulatorHandle, BUNDLED_MARKETS};

/// Generous bound for anything that should happen "soon"; tests poll and stop as soon as the
/// condition holds, so a fast machine never waits this long.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Starts a simulator on a free loopback port.
pub async fn start_simulator(tweak: impl FnOnce(&mut SimulatorConfig)) -> SimulatorHandle {
    let mut config = SimulatorConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..SimulatorConfig::default()
    };
    tweak(&mut config);
    Simulator::start(config).await.expect("simulator starts")
}

/// The service under test.
pub struct TestApp {
    pub handle: AppHandle,
    pub client: awc::Client,
}

/// Settings for a test: fast timings, loopback, the simulator's URL, then `overrides`.
pub fn test_settings(ws_url: &str, overrides: &[(&str, &str)]) -> Settings {
    let mut all: Vec<(&str, &str)> = vec![
        ("upbit.url", ws_url),
        ("http.listen", "127.0.0.1:0"),
        ("connection.ping_interval", "1s"),
        ("connection.idle_timeout", "5s"),
        ("connection.backoff_min", "50ms"),
        ("connection.backoff_max", "500ms"),
        ("connection.connect_timeout", "3s"),
    ];
    all.extend_from_slice(overrides);
    Settings::from_overrides(all).expect("valid test settings")
}

/// Starts the real application on a free port against `ws_url`.
pub async fn spawn_app(ws_url: &str, overrides: &[(&str, &str)]) -> TestApp {
    let handle = app::start(test_settings(ws_url, overrides))
        .await
        .expect("app starts");
    TestApp {
        handle,
        client: awc::Client::builder()
            .timeout(Duration::from_secs(10))
            .finish(),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.handle.http_url())
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> Metrics {
        let mut response = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("scrape");
        assert_eq!(response.status(), 200);
        let body = response.body().limit(64 << 20).await.expect("metrics body");
        Metrics(String::from_utf8(body.to_vec()).expect("utf-8 metrics"))
    }

    /// GET a path; status and JSON body.
    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let mut response = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let body = response.body().limit(16 << 20).await.expect("body");
        (
            status,
            serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        )
    }

    /// Sends a request with an optional bearer token and JSON body; status, headers, JSON body.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut request = self
            .client
            .request(method.parse().expect("method"), self.url(path));
        if let Some(token) = token {
            request = request.insert_header(("Authorization", format!("Bearer {token}")));
        }
        let mut response = match body {
            Some(body) => request.send_json(&body).await,
            None => request.send().await,
        }
        .expect("request");
        let status = response.status().as_u16();
        let bytes = response.body().limit(16 << 20).await.expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }

    pub async fn shutdown(self) {
        self.handle.shutdown().await;
    }
}

/// A `/metrics` scrape.
#[derive(Debug, Clone)]
pub struct Metrics(pub String);

impl Metrics {
    /// The value of the series `name` whose labels are exactly `labels` (any order).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut wanted: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        wanted.sort();
        self.series(name)
            .into_iter()
            .find(|(l, _)| *l == wanted)
            .map(|(_, v)| v)
    }

    /// Like `value`, 0 when the series is absent.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels).unwrap_or(0.0)
    }

    /// Every series of one metric name: sorted labels and value.
    pub fn series(&self, name: &str) -> Vec<(Vec<(String, String)>, f64)> {
        let mut out = Vec::new();
        for line in self.0.lines().filter(|l| !l.starts_with('#')) {
            let (head, value) = match line.rsplit_once(' ') {
                Some(parts) => parts,
                None => continue,
            };
            let (metric, labels) = match head.split_once('{') {
                Some((m, rest)) => (m, rest.trim_end_matches('}')),
                None => (head, ""),
            };
            if metric != name {
                continue;
            }
            let mut parsed: Vec<(String, String)> = labels
                .split("\",")
                .filter(|p| !p.is_empty())
                .filter_map(|p| p.split_once("=\""))
                .map(|(k, v)| (k.to_string(), v.trim_end_matches('"').to_string()))
                .collect();
            parsed.sort();
            if let Ok(v) = value.parse::<f64>() {
                out.push((parsed, v));
            }
        }
        out
    }

    /// `upbit_received_messages_total` as type → code → count.
    pub fn received(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        let mut out: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for (labels, value) in self.series("upbit_received_messages_total") {
            let get = |k: &str| {
                labels
                    .iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            out.entry(get("type"))
                .or_default()
                .insert(get("code"), value as u64);
        }
        out
    }
}

/// Polls `check` every 20 ms until it returns `Some`, failing with `what` after `DEADLINE`.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if start.elapsed() > DEADLINE {
            panic!("timed out after {DEADLINE:?} waiting for: {what}");
        }
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A loopback port that was free a moment ago (for a service the test starts as a process).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Waits until the service at `addr` (`127.0.0.1:PORT`) answers `/healthz` with 200.
pub async fn until_serving(addr: &str) {
    let client = awc::Client::default();
    let health = format!("http://{addr}/healthz");
    eventually("serving", || async {
        when(
            client
                .get(&health)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200),
        )
    })
    .await;
}

/// `Some(())` when `cond` holds, for `eventually`.
pub fn when(cond: bool) -> Option<()> {
    cond.then_some(())
}

/// The bundled list's codes with this quote currency.
pub fn listed(quote: &str) -> BTreeSet<String> {
    let markets: Vec<Value> = serde_json::from_str(BUNDLED_MARKETS).unwrap();
    markets
        .iter()
        .filter_map(|m| m["market"].as_str())
        .filter(|code| code.starts_with(&format!("{quote}-")))
        .map(str::to_owned)
        .collect()
}

/// The last subscription each simulator connection received: connection → type → codes.
pub fn latest_per_connection(
    sim: &SimulatorHandle,
) -> BTreeMap<u64, BTreeMap<String, BTreeSet<String>>> {
    let mut latest = BTreeMap::new();
    for request in sim.stats().requests {
        let Ok(parts) = serde_json::from_str::<Vec<Value>>(&request.text) else {
            continue;
        };
        if parts.iter().any(|p| p.get("method").is_some()) {
            continue;
        }
        let mut types = BTreeMap::new();
        for part in &parts {
            if let (Some(t), Some(codes)) = (part["type"].as_str(), part["codes"].as_array()) {
                let codes = codes.iter().filter_map(|c| c.as_str().map(str::to_owned));
                types.insert(t.to_owned(), codes.collect());
            }
        }
        latest.insert(request.connection, types);
    }
    latest
}

/// Ticker codes across the given connections' latest subscriptions.
pub fn ticker_codes(latest: &BTreeMap<u64, BTreeMap<String, BTreeSet<String>>>) -> Vec<String> {
    latest
        .values()
        .flat_map(|types| types.get("ticker").into_iter().flatten().cloned())
        .collect()
}
