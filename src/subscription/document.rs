//! The subscription as clients write it: the JSON document (`{"ticker":["KRW-BTC"]}`), the
//! `PATCH` document, the orderbook options document, and their validation, which lists every
//! problem at once. Free of HTTP and actors.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::text::escape;
use crate::upbit::request::OrderbookOptions;
use crate::upbit::types::entry_problem;
use crate::upbit::{DataType, Subscription};

/// A subscription as JSON: data type → market codes, e.g. `{"ticker":["KRW-BTC"]}`.
pub type SubscriptionDoc = BTreeMap<String, Vec<String>>;

/// `PATCH /api/v1/subscriptions`: codes to add and remove, per type.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchDoc {
    #[serde(default)]
    pub add: SubscriptionDoc,
    #[serde(default)]
    pub remove: SubscriptionDoc,
}

/// A requested change, validated.
#[derive(Debug, Clone)]
pub enum SubscriptionChange {
    /// Replace everything (`PUT`).
    Replace(Subscription),
    /// Add, then remove (`PATCH`); removing what is absent is not an error.
    Patch {
        add: Subscription,
        remove: Subscription,
    },
}

impl SubscriptionChange {
    /// The subscription after applying this change to `current`.
    pub fn apply(&self, current: &Subscription) -> Subscription {
        match self {
            Self::Replace(next) => next.clone(),
            Self::Patch { add, remove } => {
                let mut next = current.clone();
                for (data_type, code) in add.pairs() {
                    next.insert(data_type, code);
                }
                for (data_type, code) in remove.pairs() {
                    next.remove(data_type, code);
                }
                next
            }
        }
    }
}

/// Why a change was refused; each maps to one HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    /// Unknown types, malformed codes: every problem listed (422).
    #[error("invalid subscription: {}", .0.join("; "))]
    Invalid(Vec<String>),
    /// More distinct codes than `control.max_codes` (422).
    #[error("the subscription would hold {count} distinct codes on this replica (its shard's part, with [shard] set); control.max_codes allows {max}")]
    TooManyCodes { count: usize, max: usize },
    /// The caller's `revision` is not the current one (409).
    #[error("revision {expected} is stale; the current revision is {current}: GET the subscription and retry")]
    Conflict { expected: u64, current: u64 },
    /// The state file could not be written; nothing was changed (500).
    #[error("could not persist the subscription: {0}")]
    Persist(String),
}

impl ChangeError {
    /// The fixed code used in JSON errors.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid_subscription",
            Self::TooManyCodes { .. } => "too_many_codes",
            Self::Conflict { .. } => "revision_conflict",
            Self::Persist(_) => "persist_failed",
        }
    }
}

/// Validates a document into a subscription, listing every problem (at most 20 shown).
pub fn parse_doc(doc: &SubscriptionDoc) -> Result<Subscription, ChangeError> {
    let mut problems = Vec::new();
    let mut sub = Subscription::default();
    for (name, codes) in doc {
        let data_type = match name.parse::<DataType>() {
            Ok(t) => t,
            Err(e) => {
                problems.push(escape(&e, 300));
                continue;
            }
        };
        for code in codes {
            match entry_problem(code) {
                Some(problem) => problems.push(format!("{name}: {problem}")),
                None => {
                    sub.insert(data_type, code);
                }
            }
        }
    }
    if problems.is_empty() {
        return Ok(sub);
    }
    let total = problems.len();
    problems.truncate(20);
    if total > 20 {
        problems.push(format!("… and {} more", total - 20));
    }
    Err(ChangeError::Invalid(problems))
}

/// The document form of a subscription.
pub fn to_doc(sub: &Subscription) -> SubscriptionDoc {
    sub.entries()
        .map(|(t, codes)| (t.as_str().to_owned(), codes.iter().cloned().collect()))
        .collect()
}

/// The orderbook options as JSON (`PUT /api/v1/orderbook`, the state file):
/// `{"depth":5,"level":"10000"}`; `null` or absent means Upbit's default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderbookDoc {
    #[serde(default)]
    pub depth: Option<i64>,
    #[serde(default)]
    pub level: Option<LevelDoc>,
}

/// Largest price grouping unit taken as a JSON number.
pub const MAX_LEVEL: u64 = 1_000_000_000_000;

/// A price grouping unit as clients send it: Upbit's docs say a numeric string, their table says
/// a number; both are taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LevelDoc {
    Text(String),
    Number(serde_json::Number),
}

impl OrderbookDoc {
    /// The options this document asks for; every problem listed (422).
    pub fn parse(&self) -> Result<OrderbookOptions, ChangeError> {
        let mut problems = Vec::new();
        let depth = self.depth.and_then(|d| {
            OrderbookOptions::parse_depth(d)
                .map_err(|e| problems.push(format!("depth: {e}")))
                .ok()
        });
        let level = match &self.level {
            None => None,
            // `null` means none; an empty string is a mistake, not a way to say it.
            Some(LevelDoc::Text(text)) if text.is_empty() => {
                problems.push("level: empty; use null for none".to_owned());
                None
            }
            Some(LevelDoc::Text(text)) => OrderbookOptions::parse_level(text)
                .map_err(|e| problems.push(format!("level: {}", escape(&e, 300))))
                .ok()
                .flatten(),
            Some(LevelDoc::Number(number)) => match number.as_u64() {
                Some(n) if n <= MAX_LEVEL => Some(n.to_string()),
                _ => {
                    problems.push(format!(
                        "level: {number} is not a whole number from 0 to {MAX_LEVEL}; send a decimal as a string (\"0.5\")"
                    ));
                    None
                }
            },
        };
        if problems.is_empty() {
            Ok(OrderbookOptions { depth, level })
        } else {
            Err(ChangeError::Invalid(problems))
        }
    }

    /// The document form of the options.
    pub fn of(options: &OrderbookOptions) -> Self {
        Self {
            depth: options.depth.map(i64::from),
            level: options.level.clone().map(LevelDoc::Text),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A document from `(type, codes)` pairs.
    pub(crate) fn doc(pairs: &[(&str, &[&str])]) -> SubscriptionDoc {
        pairs
            .iter()
            .map(|(t, c)| (t.to_string(), c.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn parse_lists_every_problem() {
        let err = parse_doc(&doc(&[
            ("ticker", &["KRW-BTC", "krw-eth", "A\nB"]),
            ("quotes", &["KRW-BTC"]),
        ]))
        .unwrap_err();
        let ChangeError::Invalid(problems) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems.iter().any(|p| p.contains("\\n")),
            "control characters are escaped: {problems:?}"
        );
        assert!(!err.to_string().contains('\n'));
    }

    #[test]
    fn patch_adds_then_removes() {
        let current = parse_doc(&doc(&[("ticker", &["KRW-BTC", "KRW-XRP"])])).unwrap();
        let change = SubscriptionChange::Patch {
            add: parse_doc(&doc(&[("trade", &["KRW-DOGE"])])).unwrap(),
            remove: parse_doc(&doc(&[("ticker", &["KRW-XRP", "KRW-NOPE"])])).unwrap(),
        };
        let next = change.apply(&current);
        assert_eq!(
            to_doc(&next),
            doc(&[("ticker", &["KRW-BTC"]), ("trade", &["KRW-DOGE"])])
        );
    }
}
