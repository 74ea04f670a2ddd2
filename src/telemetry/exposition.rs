//! The text behind `/metrics`: the registry's families (connection, pipeline, HTTP and the
//! other few-series metrics), the market families merged in by name, then the process metrics.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use prometheus::{Registry, TextEncoder};

use super::Metrics;

/// The exposition's content type (text format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Everything `/metrics` writes; cheap to clone.
#[derive(Clone)]
pub struct Exposition {
    registry: Registry,
    metrics: Metrics,
    /// The last scrape's length: the next one's buffer is sized to it, so a 3 MB scrape is not
    /// copied a dozen times as it grows.
    last_len: Arc<AtomicUsize>,
}

impl Exposition {
    pub fn new(registry: Registry, metrics: Metrics) -> Self {
        Self {
            registry,
            metrics,
            last_len: Arc::default(),
        }
    }

    /// The whole exposition, families in name order (the process metrics last, as before).
    pub fn render(&self) -> String {
        let hint = self.last_len.load(Ordering::Relaxed);
        let mut out = String::with_capacity(hint + hint / 8);
        let encoder = TextEncoder::new();
        let registry = self.registry.gather();
        let market = self.metrics.market_families();
        let mut market = market.iter().peekable();
        for family in &registry {
            while let Some(ours) = market.next_if(|ours| ours.name() < family.name()) {
                ours.encode(&mut out);
            }
            // Only a family without series fails to encode, and gather() leaves those out.
            let _ = encoder.encode_utf8(std::slice::from_ref(family), &mut out);
        }
        for ours in market {
            ours.encode(&mut out);
        }
        let _ = encoder.encode_utf8(&prometheus::gather(), &mut out);
        self.last_len.store(out.len(), Ordering::Relaxed);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_appears_once_in_name_order_with_the_market_ones_merged_in() {
        let registry = Registry::new();
        let metrics = Metrics::register(&registry).unwrap();
        metrics
            .received_messages
            .with_label_values(&["ticker", "KRW-BTC"])
            .inc();
        metrics.trade_price.with_label_values(&["KRW-BTC"]).set(1.5);
        let text = Exposition::new(registry, metrics.clone()).render();
        let names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| l.split(' ').next().unwrap())
            .filter(|n| n.starts_with("upbit_"))
            .collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted, "sorted, and no name twice");
        assert!(
            text.contains("upbit_received_messages_total{type=\"ticker\",code=\"KRW-BTC\"} 1\n")
        );
        assert!(text.contains("upbit_trade_price{code=\"KRW-BTC\"} 1.5\n"));
        assert!(
            text.contains("upbit_connected 0\n"),
            "the registry's own families"
        );
        assert!(
            !text.contains("upbit_orderbook_depth"),
            "a market family without series is left out"
        );
        for ours in metrics.market_families() {
            assert!(
                Registry::new()
                    .register(Box::new(prometheus::Gauge::new(ours.name(), "x").unwrap()))
                    .is_ok(),
                "{} is a valid metric name",
                ours.name()
            );
        }
    }
}
