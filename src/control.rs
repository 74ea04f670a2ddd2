//! Control-plane logic, free of HTTP and actors: the JSON shape of a subscription, validation
//! that reports every bad entry, PATCH semantics and the state file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::text::escape;
use crate::upbit::request::OrderbookOptions;
use crate::upbit::types::{entry_problem, is_pattern, pattern_matches};
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
    #[error("subscription would hold {count} distinct codes; control.max_codes allows {max}")]
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

/// The subscription Upbit is asked for: explicit codes as they are, each pattern replaced by the
/// listed codes it matches. Without a market list, patterns match nothing yet.
pub fn resolve(spec: &Subscription, markets: Option<&BTreeSet<String>>) -> Subscription {
    let mut resolved = Subscription::default();
    for (data_type, entry) in spec.pairs() {
        if !is_pattern(entry) {
            resolved.insert(data_type, entry);
            continue;
        }
        for code in markets.into_iter().flatten() {
            if pattern_matches(entry, code) {
                resolved.insert(data_type, code);
            }
        }
    }
    resolved
}

/// Spreads codes over connections of at most `per_connection` codes each (0: one connection),
/// evenly, keeping every code where it was when it can stay, so a listing or a delisting changes
/// only the connection it lands on. Returns code → connection index, and the connection count.
pub fn assign(
    codes: &BTreeSet<&str>,
    previous: &BTreeMap<String, usize>,
    per_connection: usize,
) -> (BTreeMap<String, usize>, usize) {
    let count = match per_connection {
        0 => 1,
        n => codes.len().div_ceil(n).max(1),
    };
    let cap = codes.len().div_ceil(count).max(1);
    let mut load = vec![0usize; count];
    let mut assigned = BTreeMap::new();
    for code in codes {
        if let Some(&at) = previous.get(*code) {
            if at < count && load[at] < cap {
                load[at] += 1;
                assigned.insert((*code).to_owned(), at);
            }
        }
    }
    for code in codes {
        if !assigned.contains_key(*code) {
            let at = (0..count).min_by_key(|i| load[*i]).unwrap_or(0);
            load[at] += 1;
            assigned.insert((*code).to_owned(), at);
        }
    }
    (assigned, count)
}

/// The part of `resolved` whose codes are assigned to connection `index`.
pub fn part(
    resolved: &Subscription,
    assignment: &BTreeMap<String, usize>,
    index: usize,
) -> Subscription {
    let mut part = Subscription::default();
    for (data_type, code) in resolved.pairs() {
        if assignment.get(code) == Some(&index) {
            part.insert(data_type, code);
        }
    }
    part
}

/// The document form of a subscription.
pub fn to_doc(sub: &Subscription) -> SubscriptionDoc {
    sub.entries()
        .map(|(t, codes)| (t.as_str().to_owned(), codes.iter().cloned().collect()))
        .collect()
}

/// The state file's format version written by this build.
pub const STATE_VERSION: u32 = 2;

/// The state file's content. Version 1 had no revision; version 2 keeps the revision with the
/// subscription, so that a restart never hands out a revision again, and the orderbook options
/// once they were set through the API (absent before: the configured ones apply).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revision: Option<u64>,
    subscription: SubscriptionDoc,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    orderbook: Option<OrderbookDoc>,
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

/// What a state file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedState {
    pub subscription: Subscription,
    /// The revision of that subscription: the service continues from here.
    pub revision: u64,
    /// Orderbook options set through the API; `None`: the configured ones.
    pub orderbook: Option<OrderbookOptions>,
}

/// Why a state file could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// It could not be read (permissions, I/O): left where it is.
    #[error("cannot read state file {path}: {reason}")]
    Unreadable { path: String, reason: String },
    /// Its content is not a state file this build reads: move it aside before replacing it.
    #[error("state file {path}: {reason}")]
    Invalid { path: String, reason: String },
}

/// Reads a state file; `Ok(None)` when it does not exist.
pub fn load_state(path: &Path) -> Result<Option<SavedState>, StateError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(StateError::Unreadable {
                path: path.display().to_string(),
                reason: e.to_string(),
            })
        }
    };
    let invalid = |reason: String| StateError::Invalid {
        path: path.display().to_string(),
        reason,
    };
    let state: StateFile =
        serde_json::from_str(&text).map_err(|e| invalid(format!("not valid: {e}")))?;
    let revision = match (state.version, state.revision) {
        // Version 1 was written on a change, so the subscription was at revision 1 or later.
        (1, None) => 1,
        (STATE_VERSION, Some(revision)) => revision,
        (1 | STATE_VERSION, _) => {
            return Err(invalid(format!(
                "version {} {} a revision",
                state.version,
                if state.version == 1 { "has" } else { "lacks" }
            )))
        }
        (other, _) => {
            return Err(invalid(format!(
                "unknown version {other}; this build reads versions 1 and {STATE_VERSION}"
            )))
        }
    };
    let subscription = parse_doc(&state.subscription).map_err(|e| invalid(e.to_string()))?;
    let orderbook = state
        .orderbook
        .map(|doc| doc.parse())
        .transpose()
        .map_err(|e| invalid(format!("orderbook: {e}")))?;
    Ok(Some(SavedState {
        subscription,
        revision,
        orderbook,
    }))
}

/// Moves an invalid state file aside (`<path>.corrupt-<unix seconds>`) so the next change does
/// not destroy it; returns where it went.
pub fn move_aside(path: &Path) -> std::io::Result<std::path::PathBuf> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".corrupt-{stamp}"));
    let aside = std::path::PathBuf::from(name);
    std::fs::rename(path, &aside)?;
    Ok(aside)
}

/// Writes the state file atomically: a temporary file beside it, synced, then renamed.
pub fn save_state(
    path: &Path,
    sub: &Subscription,
    revision: u64,
    orderbook: Option<&OrderbookOptions>,
) -> Result<(), String> {
    use std::io::Write;
    let state = StateFile {
        version: STATE_VERSION,
        revision: Some(revision),
        subscription: to_doc(sub),
        orderbook: orderbook.map(OrderbookDoc::of),
    };
    let json = serde_json::to_vec_pretty(&state).map_err(|e| e.to_string())?;
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&json)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| format!("cannot write state file {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(pairs: &[(&str, &[&str])]) -> SubscriptionDoc {
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

    #[test]
    fn state_file_round_trips_atomically() {
        let dir = std::env::temp_dir().join(format!("upbit-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        assert_eq!(load_state(&path), Ok(None));
        let sub = parse_doc(&doc(&[
            ("orderbook", &["KRW-BTC"]),
            ("ticker", &["KRW-ETH"]),
        ]))
        .unwrap();
        save_state(&path, &sub, 7, None).unwrap();
        let saved = SavedState {
            subscription: sub.clone(),
            revision: 7,
            orderbook: None,
        };
        assert_eq!(load_state(&path), Ok(Some(saved)));
        // Orderbook options set through the API travel with the subscription.
        let orderbook = OrderbookOptions {
            depth: Some(5),
            level: Some("10000".into()),
        };
        save_state(&path, &sub, 8, Some(&orderbook)).unwrap();
        let restored = load_state(&path).unwrap().unwrap();
        assert_eq!(
            (restored.revision, restored.orderbook),
            (8, Some(orderbook))
        );
        assert!(!path.with_extension("tmp").exists());
        let problem = |text: &str| {
            std::fs::write(&path, text).unwrap();
            match load_state(&path) {
                Err(StateError::Invalid { reason, .. }) => reason,
                other => panic!("{text}: {other:?}"),
            }
        };
        assert!(
            problem("{\"version\":1,\"subscription\":{\"ticker\":[\"bad\"]}}")
                .contains("malformed")
        );
        assert!(problem("garbage").contains("not valid"));
        assert!(
            problem("{\"version\":3,\"revision\":1,\"subscription\":{}}")
                .contains("unknown version 3; this build reads versions 1 and 2")
        );
        assert!(problem("{\"version\":2,\"subscription\":{}}").contains("lacks a revision"));
        assert!(problem(
            "{\"version\":2,\"revision\":1,\"subscription\":{},\"orderbook\":{\"depth\":7}}"
        )
        .contains("orderbook: invalid subscription: depth: 7 is not one of 1, 5, 15, 30"));
        // A version-1 file (no revision) was written by a change: revision 1 at least.
        std::fs::write(
            &path,
            "{\"version\":1,\"subscription\":{\"ticker\":[\"KRW-ETH\"]}}",
        )
        .unwrap();
        assert_eq!(load_state(&path).unwrap().unwrap().revision, 1);
        let aside = move_aside(&path).unwrap();
        assert!(!path.exists() && aside.exists());
        assert!(
            aside.to_str().unwrap().contains("state.json.corrupt-"),
            "{aside:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn markets(codes: &[&str]) -> BTreeSet<String> {
        codes.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn patterns_resolve_against_the_list_and_explicit_codes_stay() {
        let mut spec = Subscription::default();
        spec.insert(DataType::Ticker, "KRW-*");
        spec.insert(DataType::Ticker, "BTC-ETH");
        spec.insert(DataType::Trade, "*");
        let list = markets(&["KRW-BTC", "KRW-ETH", "BTC-XRP", "USDT-BTC"]);
        let resolved = resolve(&spec, Some(&list));
        let ticker: Vec<&str> = resolved
            .pairs()
            .filter(|(t, _)| *t == DataType::Ticker)
            .map(|(_, c)| c)
            .collect();
        assert_eq!(
            ticker,
            ["BTC-ETH", "KRW-BTC", "KRW-ETH"],
            "BTC-ETH stays though unlisted"
        );
        assert_eq!(
            resolved
                .pairs()
                .filter(|(t, _)| *t == DataType::Trade)
                .count(),
            4
        );
        let without_list = resolve(&spec, None);
        assert_eq!(
            without_list.pairs().map(|(_, c)| c).collect::<Vec<_>>(),
            ["BTC-ETH"]
        );
    }

    #[test]
    fn assignment_is_even_and_stable() {
        let codes: Vec<String> = (0..10).map(|i| format!("KRW-C{i}")).collect();
        let set: BTreeSet<&str> = codes.iter().map(String::as_str).collect();
        let (first, count) = assign(&set, &BTreeMap::new(), 4);
        assert_eq!(count, 3);
        let mut load = [0; 3];
        for at in first.values() {
            load[*at] += 1;
        }
        assert_eq!(
            load.iter().max().unwrap() - load.iter().min().unwrap(),
            1,
            "{load:?}"
        );
        // One more code: everything else stays where it was.
        let mut grown = set.clone();
        grown.insert("KRW-NEW");
        let (second, _) = assign(&grown, &first, 4);
        for (code, at) in &first {
            assert_eq!(second[code], *at, "{code} moved");
        }
        // Unlimited: one connection.
        assert_eq!(assign(&set, &BTreeMap::new(), 0).1, 1);
        assert_eq!(assign(&BTreeSet::new(), &BTreeMap::new(), 4).1, 1);
        let mut resolved = Subscription::default();
        for code in &codes {
            resolved.insert(DataType::Ticker, code);
            resolved.insert(DataType::Trade, code);
        }
        let total: usize = (0..3).map(|i| part(&resolved, &first, i).len()).sum();
        assert_eq!(
            total,
            resolved.len(),
            "every pair on exactly one connection"
        );
    }
}
