//! Client requests: the subscription message and `LIST_SUBSCRIPTIONS`.
//!
//! Upbit replaces a connection's whole subscription with every request, so the service always
//! sends every type in one message, built from a [`Subscription`].

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::types::{DataType, Format};

/// Orderbook options: a depth suffix on every orderbook code (`KRW-BTC.5`) and a price grouping.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderbookOptions {
    /// Units per orderbook: 1, 5, 15 or 30 (`None`: no suffix, Upbit's default of 30).
    pub depth: Option<u8>,
    /// Price grouping unit, sent as Upbit's docs ask: a numeric string (`"10000"`). KRW markets
    /// only, per Upbit. `None`: not sent.
    pub level: Option<String>,
}

impl OrderbookOptions {
    /// The depths Upbit serves; any other suffix silently gets 30, so the service refuses them.
    pub const DEPTHS: [u8; 4] = [1, 5, 15, 30];

    /// A depth as configured or asked through the API: one of [`Self::DEPTHS`]; the error says
    /// what is accepted.
    pub fn parse_depth(depth: i64) -> Result<u8, String> {
        Self::DEPTHS
            .iter()
            .copied()
            .find(|ok| i64::from(*ok) == depth)
            .ok_or_else(|| {
                format!("{depth} is not one of 1, 5, 15, 30; Upbit would silently send 30")
            })
    }

    /// A price grouping unit: a non-negative decimal number (`10000`, `0.5`), kept as the text
    /// Upbit is sent (its docs ask for a numeric string); empty means none.
    pub fn parse_level(level: &str) -> Result<Option<String>, String> {
        if level.is_empty() {
            return Ok(None);
        }
        let decimal = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        let valid = level.len() <= 20
            && match level.split_once('.') {
                Some((whole, fraction)) => decimal(whole) && decimal(fraction),
                None => decimal(level),
            };
        if valid {
            Ok(Some(level.to_owned()))
        } else {
            Err(format!(
                "{:?} is not a non-negative decimal number such as \"10000\"",
                level.chars().take(20).collect::<String>()
            ))
        }
    }
}

/// What to receive: for each data type, the set of market codes. Ordered, so the request and
/// everything derived from it are deterministic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription {
    entries: BTreeMap<DataType, BTreeSet<String>>,
}

impl Subscription {
    /// Every type gets the same codes (the configuration file's shape).
    pub fn uniform<'a>(
        types: impl IntoIterator<Item = DataType>,
        codes: impl IntoIterator<Item = &'a str> + Clone,
    ) -> Self {
        let mut sub = Self::default();
        for data_type in types {
            for code in codes.clone() {
                sub.insert(data_type, code);
            }
        }
        sub
    }

    /// Adds one (type, code) pair; returns false if it was already there.
    pub fn insert(&mut self, data_type: DataType, code: &str) -> bool {
        self.entries
            .entry(data_type)
            .or_default()
            .insert(code.to_owned())
    }

    /// Removes one (type, code) pair; returns false if it was not there.
    pub fn remove(&mut self, data_type: DataType, code: &str) -> bool {
        let Some(codes) = self.entries.get_mut(&data_type) else {
            return false;
        };
        let removed = codes.remove(code);
        if codes.is_empty() {
            self.entries.remove(&data_type);
        }
        removed
    }

    /// True when nothing is subscribed (the connection then idles: Upbit rejects `codes: []`).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of (type, code) pairs.
    pub fn len(&self) -> usize {
        self.entries.values().map(BTreeSet::len).sum()
    }

    /// The types and their codes, in order.
    pub fn entries(&self) -> impl Iterator<Item = (DataType, &BTreeSet<String>)> {
        self.entries.iter().map(|(t, c)| (*t, c))
    }

    /// Every (type, code) pair, in order.
    pub fn pairs(&self) -> impl Iterator<Item = (DataType, &str)> {
        self.entries
            .iter()
            .flat_map(|(t, codes)| codes.iter().map(move |c| (*t, c.as_str())))
    }

    /// True if the pair is subscribed.
    pub fn contains(&self, data_type: DataType, code: &str) -> bool {
        self.entries
            .get(&data_type)
            .is_some_and(|c| c.contains(code))
    }

    /// Every distinct code, across types.
    pub fn codes(&self) -> BTreeSet<&str> {
        self.entries
            .values()
            .flatten()
            .map(String::as_str)
            .collect()
    }

    /// The subscription request: one JSON array with every type, as Upbit expects.
    ///
    /// ```json
    /// [{"ticket":"…"},{"type":"ticker","codes":["KRW-BTC"]},{"format":"DEFAULT"}]
    /// ```
    pub fn to_request(&self, ticket: &str, format: Format) -> String {
        self.to_request_with(ticket, format, &OrderbookOptions::default())
    }

    /// The request with orderbook options: `{"type":"orderbook","codes":["KRW-BTC.5"],
    /// "level":"10000"}`. Codes elsewhere (metrics, the API) stay plain.
    pub fn to_request_with(
        &self,
        ticket: &str,
        format: Format,
        orderbook: &OrderbookOptions,
    ) -> String {
        let mut parts = Vec::with_capacity(self.entries.len() + 2);
        parts.push(json!({ "ticket": ticket }));
        for (data_type, codes) in &self.entries {
            if *data_type != DataType::Orderbook {
                parts.push(json!({ "type": data_type.as_str(), "codes": codes }));
                continue;
            }
            let codes: Vec<String> = match orderbook.depth {
                Some(depth) => codes.iter().map(|c| format!("{c}.{depth}")).collect(),
                None => codes.iter().cloned().collect(),
            };
            let mut part = json!({ "type": data_type.as_str(), "codes": codes });
            if let Some(level) = &orderbook.level {
                part["level"] = json!(level);
            }
            parts.push(part);
        }
        parts.push(json!({ "format": format.as_str() }));
        Value::Array(parts).to_string()
    }
}

/// `[{"ticket":"…"},{"method":"LIST_SUBSCRIPTIONS"},{"format":"…"}]`: asks Upbit what the
/// connection receives.
///
/// It carries the connection's format because Upbit makes a LIST_SUBSCRIPTIONS request's format
/// the format of the whole connection's stream from then on; without one it falls back to
/// DEFAULT and a connection configured for SIMPLE or a list format silently changes format.
pub fn list_subscriptions_request(ticket: &str, format: Format) -> String {
    json!([
        { "ticket": ticket },
        { "method": "LIST_SUBSCRIPTIONS" },
        { "format": format.as_str() }
    ])
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_holds_every_type_in_one_message() {
        let sub =
            Subscription::uniform([DataType::Trade, DataType::Ticker], ["KRW-ETH", "KRW-BTC"]);
        assert_eq!(
            sub.to_request("t-1", Format::Simple),
            r#"[{"ticket":"t-1"},{"codes":["KRW-BTC","KRW-ETH"],"type":"ticker"},{"codes":["KRW-BTC","KRW-ETH"],"type":"trade"},{"format":"SIMPLE"}]"#
        );
    }

    #[test]
    fn orderbook_codes_carry_the_depth_and_the_type_the_level() {
        let sub = Subscription::uniform([DataType::Orderbook, DataType::Ticker], ["KRW-BTC"]);
        let options = OrderbookOptions {
            depth: Some(5),
            level: Some("10000".into()),
        };
        assert_eq!(
            sub.to_request_with("t", Format::Default, &options),
            r#"[{"ticket":"t"},{"codes":["KRW-BTC"],"type":"ticker"},{"codes":["KRW-BTC.5"],"level":"10000","type":"orderbook"},{"format":"DEFAULT"}]"#
        );
    }

    #[test]
    fn insert_remove_and_len() {
        let mut sub = Subscription::default();
        assert!(sub.insert(DataType::Ticker, "KRW-BTC"));
        assert!(!sub.insert(DataType::Ticker, "KRW-BTC"));
        assert!(sub.insert(DataType::Trade, "KRW-BTC"));
        assert_eq!(sub.len(), 2);
        assert_eq!(sub.codes().len(), 1);
        assert!(sub.remove(DataType::Trade, "KRW-BTC"));
        assert!(!sub.remove(DataType::Trade, "KRW-BTC"));
        assert_eq!(sub.entries().count(), 1);
        assert!(sub.remove(DataType::Ticker, "KRW-BTC"));
        assert!(sub.is_empty());
    }

    #[test]
    fn list_request_shape() {
        assert_eq!(
            list_subscriptions_request("x", Format::SimpleList),
            r#"[{"ticket":"x"},{"method":"LIST_SUBSCRIPTIONS"},{"format":"SIMPLE_LIST"}]"#
        );
    }
}
