//! The plan of what Upbit is asked for: patterns resolved against the market list, and the
//! codes spread over connections so a change moves as few as possible. Used by the manager.

use std::collections::{BTreeMap, BTreeSet};

use crate::upbit::types::{is_pattern, pattern_matches};
use crate::upbit::Subscription;

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

/// `resolved` cut to at most `max` distinct codes, for when patterns grew past the bound (new
/// listings): the spec's explicit codes are kept first, then the others in code order. Returns
/// the bounded subscription and how many codes were left out.
pub fn bound(resolved: Subscription, spec: &Subscription, max: usize) -> (Subscription, usize) {
    let codes = resolved.codes();
    if codes.len() <= max {
        return (resolved, 0);
    }
    let explicit: BTreeSet<&str> = spec
        .pairs()
        .map(|(_, e)| e)
        .filter(|e| !is_pattern(e))
        .collect();
    let mut kept = BTreeSet::new();
    for code in explicit.into_iter().chain(codes.iter().copied()) {
        if kept.len() < max && codes.contains(code) {
            kept.insert(code);
        }
    }
    let mut bounded = Subscription::default();
    for (data_type, code) in resolved.pairs() {
        if kept.contains(code) {
            bounded.insert(data_type, code);
        }
    }
    (bounded, codes.len() - kept.len())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upbit::DataType;

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
    fn a_bound_keeps_explicit_codes_first_then_code_order() {
        let mut spec = Subscription::default();
        spec.insert(DataType::Ticker, "KRW-*");
        spec.insert(DataType::Trade, "KRW-XRP");
        let resolved = resolve(&spec, Some(&markets(&["KRW-BTC", "KRW-ETH", "KRW-XRP"])));
        let (bounded, left_out) = bound(resolved.clone(), &spec, 2);
        assert_eq!(left_out, 1);
        assert_eq!(
            bounded.codes().into_iter().collect::<Vec<_>>(),
            ["KRW-BTC", "KRW-XRP"]
        );
        assert!(bounded.pairs().any(|p| p == (DataType::Trade, "KRW-XRP")));
        assert_eq!(bound(resolved.clone(), &spec, 3), (resolved, 0));
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
