//! The plan of what Upbit is asked for: patterns resolved against the market list, the codes
//! this replica's shard takes, and those spread over connections so a change moves as few as
//! possible. Used by the manager, in that order: resolve, shard, bound, assign.

use std::collections::{BTreeMap, BTreeSet};

use crate::upbit::types::{is_pattern, market_code, pattern_matches};
use crate::upbit::Subscription;

/// Which part of the subscription this replica takes: shard `index` of `count` (0 of 1, the
/// default, is everything). Every replica of a sharded deployment has the same subscription and
/// its own index; together they cover it exactly once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 0 to `count - 1`.
    pub index: usize,
    /// Shards in the deployment, at least 1.
    pub count: usize,
}

impl Default for Shard {
    fn default() -> Self {
        Self::ALL
    }
}

impl Shard {
    /// One shard: every code.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// The shard that takes `code` among `count`, by rendezvous (highest random weight)
    /// hashing: each shard weighs the code with [`shard_weight`] and the heaviest takes it (the
    /// lowest index on a tie). A code's orderbook depth suffix is ignored (`KRW-BTC.15` goes
    /// with `KRW-BTC`). When the count grows from n to n+1, a code moves only if the new shard
    /// outweighs all others, about 1 in n+1, and only to the new shard.
    pub fn owner(code: &str, count: usize) -> usize {
        let code = market_code(code);
        let mut best = (0, shard_weight(code, 0));
        for index in 1..count {
            let weight = shard_weight(code, index);
            if weight > best.1 {
                best = (index, weight);
            }
        }
        best.0
    }

    /// True if this shard takes `code`.
    pub fn owns(&self, code: &str) -> bool {
        self.count <= 1 || Self::owner(code, self.count) == self.index
    }
}

/// Shard `index`'s weight for `code`: SplitMix64's finalizer over the code's 64-bit FNV-1a
/// hash XOR `(index + 1) × 0x9E3779B97F4A7C15`. Written here, with fixed constants, so every
/// replica, build and platform agrees (std's hasher is seeded per process).
pub fn shard_weight(code: &str, index: usize) -> u64 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = code.bytes().fold(FNV_OFFSET, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME)
    });
    let salt = (index as u64)
        .wrapping_add(1)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut z = hash ^ salt;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The part of `resolved` whose codes `shard` takes (explicit and pattern-matched codes
/// alike), and how many distinct codes it leaves to the other shards.
pub fn shard(resolved: Subscription, shard: Shard) -> (Subscription, usize) {
    if shard.count <= 1 {
        return (resolved, 0);
    }
    let mut kept = Subscription::default();
    for (data_type, code) in resolved.pairs() {
        if shard.owns(code) {
            kept.insert(data_type, code);
        }
    }
    let elsewhere = resolved.codes().len() - kept.codes().len();
    (kept, elsewhere)
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

    /// A realistic whole-market list: each of the bundled list's 177 base currencies under
    /// KRW, BTC, USDT and ETH quotes (708 codes).
    fn market_list() -> Vec<String> {
        let markets: Vec<serde_json::Value> =
            serde_json::from_str(include_str!("../simulator/markets.json")).unwrap();
        let bases: BTreeSet<&str> = markets
            .iter()
            .filter_map(|m| m["market"].as_str()?.split_once('-').map(|(_, b)| b))
            .collect();
        ["KRW", "BTC", "USDT", "ETH"]
            .iter()
            .flat_map(|quote| bases.iter().map(move |base| format!("{quote}-{base}")))
            .collect()
    }

    fn whole_market(types: &[DataType]) -> Subscription {
        let list = market_list();
        Subscription::uniform(types.iter().copied(), list.iter().map(String::as_str))
    }

    #[test]
    fn shards_together_cover_the_subscription_exactly_once() {
        let resolved = whole_market(&[DataType::Ticker, DataType::Trade]);
        let codes = resolved.codes().len();
        assert_eq!(codes, 708);
        for count in [2, 3, 5] {
            let mut union = Subscription::default();
            let mut pairs = 0;
            for index in 0..count {
                let (part, elsewhere) = shard(resolved.clone(), Shard { index, count });
                assert_eq!(part.codes().len() + elsewhere, codes, "{index} of {count}");
                // Even enough: within a quarter of an equal share (rendezvous is random-like).
                let share = codes as f64 / count as f64;
                let kept = part.codes().len() as f64;
                assert!(
                    (kept - share).abs() < share / 4.0,
                    "shard {index} of {count} keeps {kept} codes, an equal share is {share:.0}"
                );
                // A code's types stay together on one shard.
                for code in part.codes() {
                    assert!(
                        part.contains(DataType::Ticker, code)
                            && part.contains(DataType::Trade, code)
                    );
                }
                pairs += part.len();
                for (data_type, code) in part.pairs() {
                    assert!(
                        union.insert(data_type, code),
                        "{code} on two shards of {count}"
                    );
                }
            }
            assert_eq!(
                union, resolved,
                "the {count} shards together are the subscription"
            );
            assert_eq!(pairs, resolved.len(), "no pair twice among {count} shards");
        }
    }

    #[test]
    fn growing_from_two_to_three_shards_moves_about_a_third_and_only_to_the_new_one() {
        let list = market_list();
        let mut moved = 0;
        for code in &list {
            let (before, after) = (Shard::owner(code, 2), Shard::owner(code, 3));
            if before != after {
                moved += 1;
                assert_eq!(after, 2, "{code} moved from {before} to an old shard");
            }
        }
        // Rendezvous moves 1/3 of the codes on average (236 of 708); 40% leaves a margin for
        // this list's luck, and a hash that reshuffled (like `hash % count`, about 2/3) fails.
        let bound = list.len() * 40 / 100;
        assert!(
            moved <= bound,
            "{moved} of {} codes moved 2 -> 3 shards (bound {bound})",
            list.len()
        );
        assert_eq!(moved, 231, "the measured count the README states (of 708)");
        let held: Vec<usize> = (0..3)
            .map(|index| list.iter().filter(|c| Shard::owner(c, 3) == index).count())
            .collect();
        assert_eq!(held, [240, 237, 231], "the README's counts per shard of 3");
        // Shrinking back moves the same codes home.
        for code in &list {
            if Shard::owner(code, 3) != 2 {
                assert_eq!(Shard::owner(code, 3), Shard::owner(code, 2), "{code}");
            }
        }
    }

    #[test]
    fn the_hash_is_fixed_across_processes_and_builds() {
        // Fixed values: a change to the hash changes which replica takes which code, so it
        // must fail here and be a deliberate, documented change.
        assert_eq!(shard_weight("KRW-BTC", 0), 14_987_160_365_122_901_278);
        let owners: Vec<usize> = [
            "KRW-BTC", "KRW-ETH", "KRW-XRP", "BTC-ETH", "USDT-BTC", "KRW-SOL",
        ]
        .iter()
        .map(|code| Shard::owner(code, 3))
        .collect();
        assert_eq!(owners, [2, 0, 2, 1, 0, 2]);
        assert_eq!(
            Shard::owner("KRW-BTC.15", 3),
            Shard::owner("KRW-BTC", 3),
            "depth suffix ignored"
        );
        assert_eq!(Shard::owner("KRW-BTC", 1), 0);
    }

    #[test]
    fn patterns_resolve_first_then_explicit_and_matched_codes_are_both_sharded() {
        let mut spec = Subscription::default();
        spec.insert(DataType::Ticker, "KRW-*");
        spec.insert(DataType::Ticker, "BTC-ETH");
        let list: BTreeSet<String> = market_list()
            .into_iter()
            .filter(|c| c.starts_with("KRW-"))
            .collect();
        let resolved = resolve(&spec, Some(&list));
        let whole = resolved.codes().len();
        let owner = Shard::owner("BTC-ETH", 2);
        let (mine, elsewhere) = shard(
            resolved.clone(),
            Shard {
                index: owner,
                count: 2,
            },
        );
        let (theirs, _) = shard(
            resolved.clone(),
            Shard {
                index: 1 - owner,
                count: 2,
            },
        );
        assert!(
            mine.contains(DataType::Ticker, "BTC-ETH"),
            "the explicit code goes to its owner"
        );
        assert!(
            !theirs.contains(DataType::Ticker, "BTC-ETH"),
            "and to no other shard"
        );
        assert!(
            mine.codes().len() > 1 && theirs.codes().len() > 1,
            "matched codes split too"
        );
        assert_eq!(mine.codes().len() + elsewhere, whole);
        assert_eq!(
            shard(resolved.clone(), Shard::ALL),
            (resolved, 0),
            "one shard keeps all"
        );
    }
}
