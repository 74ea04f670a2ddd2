//! Upbit's market list, `GET /v1/market/all?is_details=true`: the codes, the coins' names and
//! the market events (investment warning and the caution flags) that replaced the ticker's
//! deprecated `market_warning`.
//!
//! ```json
//! [{"market":"KRW-ETH","korean_name":"이더리움","english_name":"Ethereum",
//!   "market_event":{"warning":true,"caution":{"PRICE_FLUCTUATIONS":false,
//!     "TRADING_VOLUME_SOARING":false,"DEPOSIT_AMOUNT_SOARING":false,
//!     "GLOBAL_PRICE_DIFFERENCES":false,"CONCENTRATION_OF_SMALL_ACCOUNTS":false}}}]
//! ```
//!
//! Read leniently: an entry without a readable `market` is skipped, and a field of any other
//! shape than documented reads as absent (never "no warning"): the list keeps working when Upbit
//! changes a detail.

use std::collections::BTreeMap;

use serde_json::Value;

use super::types::is_valid_code;

/// The caution flags Upbit documents (2024-02-22; true at any alert level since 2026-01-29).
/// Anything else Upbit sends is reported as [`OTHER_CAUTION`].
pub const CAUTION_FLAGS: [&str; 5] = [
    "PRICE_FLUCTUATIONS",
    "TRADING_VOLUME_SOARING",
    "DEPOSIT_AMOUNT_SOARING",
    "GLOBAL_PRICE_DIFFERENCES",
    "CONCENTRATION_OF_SMALL_ACCOUNTS",
];

/// The caution reason that stands for every flag not in [`CAUTION_FLAGS`].
pub const OTHER_CAUTION: &str = "OTHER";

/// Longest coin name kept, in characters (longer names are cut and end with `…`).
pub const MAX_NAME_CHARS: usize = 64;

/// One market of the list.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MarketListing {
    pub market: String,
    pub korean_name: Option<String>,
    pub english_name: Option<String>,
    /// `None` when the list carried no readable `market_event` (no details asked, or an older
    /// list): nothing is known then, and nothing may be claimed.
    pub event: Option<MarketEvent>,
}

/// `market_event`: the investment warning and the caution flags, each only as far as Upbit sent
/// it (`None`: not sent or not a boolean).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MarketEvent {
    pub warning: Option<bool>,
    /// Reason → flag; known flags by their name, unknown ones folded into `OTHER` (true if any
    /// unknown flag is true). Empty when `caution` was absent or not an object.
    pub caution: BTreeMap<&'static str, bool>,
}

/// Parses a market list body; entries without a valid market code are skipped and counted.
/// Fails only when the body is not a JSON array.
pub fn parse_market_list(body: &[u8]) -> Result<(Vec<MarketListing>, usize), String> {
    let entries: Vec<Value> =
        serde_json::from_slice(body).map_err(|e| format!("not a market list: {e}"))?;
    let mut skipped = 0;
    let listings = entries
        .iter()
        .filter_map(|entry| {
            let listing = listing(entry);
            if listing.is_none() {
                skipped += 1;
            }
            listing
        })
        .collect();
    Ok((listings, skipped))
}

fn listing(entry: &Value) -> Option<MarketListing> {
    let market = entry.get("market")?.as_str().filter(|c| is_valid_code(c))?;
    Some(MarketListing {
        market: market.to_owned(),
        korean_name: entry.get("korean_name").and_then(name),
        english_name: entry.get("english_name").and_then(name),
        event: entry.get("market_event").and_then(event),
    })
}

/// A coin name as a label may carry it: control characters dropped, at most `MAX_NAME_CHARS`.
fn name(value: &Value) -> Option<String> {
    let text = value.as_str()?;
    let mut out: String = text
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME_CHARS)
        .collect();
    if text.chars().filter(|c| !c.is_control()).count() > MAX_NAME_CHARS {
        out.push('…');
    }
    Some(out)
}

fn event(value: &Value) -> Option<MarketEvent> {
    let object = value.as_object()?;
    let mut caution = BTreeMap::new();
    if let Some(flags) = object.get("caution").and_then(Value::as_object) {
        for (flag, value) in flags {
            let Some(on) = value.as_bool() else {
                continue;
            };
            let reason = CAUTION_FLAGS
                .iter()
                .find(|known| **known == flag)
                .copied()
                .unwrap_or(OTHER_CAUTION);
            let entry = caution.entry(reason).or_insert(false);
            *entry |= on;
        }
    }
    Some(MarketEvent {
        warning: object.get("warning").and_then(Value::as_bool),
        caution,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_detailed_list_reads() {
        let body =
            include_bytes!("../../tests/fixtures/upbit/rest_market_all_is_details_docs_1.json");
        let (list, skipped) = parse_market_list(body).unwrap();
        assert_eq!(skipped, 0);
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].market, "KRW-ETH");
        assert_eq!(list[1].korean_name.as_deref(), Some("이더리움"));
        assert_eq!(list[1].english_name.as_deref(), Some("Ethereum"));
        let event = list[1].event.as_ref().unwrap();
        assert_eq!(event.warning, Some(true));
        assert_eq!(event.caution.len(), 5);
        assert!(event.caution.values().all(|on| !on));
        assert_eq!(list[0].event.as_ref().unwrap().warning, Some(false));
    }

    #[test]
    fn a_list_without_details_claims_nothing() {
        let (list, _) =
            parse_market_list(br#"[{"market":"KRW-BTC","korean_name":"x","english_name":"y"}]"#)
                .unwrap();
        assert_eq!(list[0].event, None);
    }

    #[test]
    fn odd_shapes_read_as_absent_and_unknown_flags_as_other() {
        let body = br#"[
            {"market":"KRW-BTC","korean_name":7,"english_name":{"a":1},
             "market_event":{"warning":"yes","caution":{"PRICE_FLUCTUATIONS":true,"NEW_FLAG":true,"OLD":false,"TRADING_VOLUME_SOARING":1}}},
            {"market":"KRW-ETH","market_event":[1,2]},
            {"market":"krw-bad"},{"nomarket":1},5,
            {"market":"KRW-XRP","english_name":"a\nb","market_event":{"warning":false,"caution":"none"}}
        ]"#;
        let (list, skipped) = parse_market_list(body).unwrap();
        assert_eq!(skipped, 3);
        assert_eq!(list.len(), 3);
        let btc = &list[0];
        assert_eq!(
            (btc.korean_name.as_deref(), btc.english_name.as_deref()),
            (None, None)
        );
        let event = btc.event.as_ref().unwrap();
        assert_eq!(event.warning, None);
        assert_eq!(
            event.caution,
            BTreeMap::from([("PRICE_FLUCTUATIONS", true), ("OTHER", true)])
        );
        assert_eq!(list[1].event, None);
        assert_eq!(list[2].english_name.as_deref(), Some("ab"));
        assert_eq!(list[2].event.as_ref().unwrap().caution.len(), 0);
        assert!(parse_market_list(b"{}").is_err());
    }

    #[test]
    fn long_names_are_bounded() {
        let long = "N".repeat(500);
        let body = format!(r#"[{{"market":"KRW-BTC","english_name":"{long}"}}]"#);
        let (list, _) = parse_market_list(body.as_bytes()).unwrap();
        assert_eq!(
            list[0].english_name.as_ref().unwrap().chars().count(),
            MAX_NAME_CHARS + 1
        );
    }
}
