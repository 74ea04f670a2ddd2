//! Market state series of the subscribed codes, owned by the metrics actor:
//! `upbit_market_warning{code}`, `upbit_market_caution{code,reason}`,
//! `upbit_market_info{code,korean_name,english_name}`,
//! `upbit_market_listed_timestamp_seconds{code}`.
//!
//! Sources and precedence: the market list's `market_event` (fetched with `is_details=true`) is
//! Upbit's supported source and wins whenever it says something about a code. The ticker's
//! deprecated `market_warning` (`NONE`/`CAUTION`) is used only while tickers still carry it and
//! only for codes the last list said nothing about (no list yet, the code not in it, or no
//! readable `warning`). A series never claims "no warning" on its own: it is absent until a
//! source speaks, and removed again when every source has gone silent.
//!
//! The listing time is when this process first saw a market in a fetched list, and only for
//! markets that were not in its first list (those were listed at some unknown earlier time, and
//! a restart must not make them look new). It lives in memory: a restart forgets it, so a market
//! listed while the service was down gets no listing time.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::telemetry::family::{Gauge, IntGauge};

use crate::telemetry::Metrics;
use crate::upbit::market_list::MarketListing;

/// The market state of one subscribed code.
#[derive(Default)]
struct CodeEvents {
    /// The ticker's deprecated `market_warning`, while tickers carry it.
    ticker_warning: Option<bool>,
    warning: Option<IntGauge>,
    cautions: Vec<&'static str>,
    info: Option<[String; 2]>,
    listed: Option<Gauge>,
}

/// Every subscribed code's market state and the last market list.
#[derive(Default)]
pub struct MarketEvents {
    list: Arc<HashMap<String, MarketListing>>,
    codes: HashMap<String, CodeEvents>,
    /// Every market seen in a fetched list, with the fetch time of its first appearance
    /// (`None` for the markets of the first list). Grows only with Upbit's listings.
    first_seen: HashMap<String, Option<f64>>,
}

impl MarketEvents {
    /// The code's entry in the last market list, if it is listed there.
    pub fn listing(&self, code: &str) -> Option<&MarketListing> {
        self.list.get(code)
    }

    /// A new market list: every subscribed code's series follow it.
    /// `fetched_unix` is the fetch time: the listing time of markets not seen before.
    pub fn set_list(
        &mut self,
        m: &Metrics,
        list: Arc<HashMap<String, MarketListing>>,
        fetched_unix: f64,
    ) {
        let first = self.first_seen.is_empty();
        for code in list.keys() {
            if !self.first_seen.contains_key(code) {
                let at = (!first).then_some(fetched_unix);
                self.first_seen.insert(code.clone(), at);
            }
        }
        self.list = list;
        let codes: Vec<String> = self.codes.keys().cloned().collect();
        for code in codes {
            self.refresh(m, &code);
        }
    }

    /// The subscribed codes changed: series for new codes from the last list, none for old ones.
    pub fn set_codes(&mut self, m: &Metrics, codes: &BTreeSet<&str>) {
        let gone: Vec<String> = self
            .codes
            .keys()
            .filter(|c| !codes.contains(c.as_str()))
            .cloned()
            .collect();
        for code in gone {
            if let Some(events) = self.codes.remove(&code) {
                remove_series(m, &code, &events);
            }
        }
        for code in codes {
            if !self.codes.contains_key(*code) {
                self.codes.insert((*code).to_owned(), CodeEvents::default());
                self.refresh(m, code);
            }
        }
    }

    /// A ticker's deprecated `market_warning` as a flag (`NONE` is off, anything else on; `None`
    /// when the ticker no longer carries it).
    pub fn ticker_warning(&mut self, m: &Metrics, code: &str, warning: Option<bool>) {
        let Some(events) = self.codes.get_mut(code) else {
            return;
        };
        if events.ticker_warning != warning {
            events.ticker_warning = warning;
            self.refresh(m, code);
        }
    }

    /// Brings one code's series in line with its sources.
    fn refresh(&mut self, m: &Metrics, code: &str) {
        let Some(events) = self.codes.get_mut(code) else {
            return;
        };
        let listing = self.list.get(code);
        let event = listing.and_then(|l| l.event.as_ref());
        match event.and_then(|e| e.warning).or(events.ticker_warning) {
            Some(on) => events
                .warning
                .get_or_insert_with(|| m.market_warning.with_label_values(&[code]))
                .set(i64::from(on)),
            None => {
                if events.warning.take().is_some() {
                    let _ = m.market_warning.remove_label_values(&[code]);
                }
            }
        }
        let cautions: Vec<(&'static str, bool)> = event
            .map(|e| e.caution.iter().map(|(r, on)| (*r, *on)).collect())
            .unwrap_or_default();
        for reason in &events.cautions {
            if !cautions.iter().any(|(r, _)| r == reason) {
                let _ = m.market_caution.remove_label_values(&[code, reason]);
            }
        }
        for (reason, on) in &cautions {
            m.market_caution
                .with_label_values(&[code, reason])
                .set(i64::from(*on));
        }
        events.cautions = cautions.into_iter().map(|(r, _)| r).collect();
        let info = listing.and_then(|l| {
            (l.korean_name.is_some() || l.english_name.is_some()).then(|| {
                [
                    l.korean_name.clone().unwrap_or_default(),
                    l.english_name.clone().unwrap_or_default(),
                ]
            })
        });
        match self.first_seen.get(code).copied().flatten() {
            Some(at) => events
                .listed
                .get_or_insert_with(|| m.market_listed_timestamp.with_label_values(&[code]))
                .set(at),
            None => {
                if events.listed.take().is_some() {
                    let _ = m.market_listed_timestamp.remove_label_values(&[code]);
                }
            }
        }
        if events.info != info {
            if let Some([korean, english]) = &events.info {
                let _ = m.market_info.remove_label_values(&[code, korean, english]);
            }
            if let Some([korean, english]) = &info {
                m.market_info
                    .with_label_values(&[code, korean, english])
                    .set(1);
            }
            events.info = info;
        }
    }
}

fn remove_series(m: &Metrics, code: &str, events: &CodeEvents) {
    if events.warning.is_some() {
        let _ = m.market_warning.remove_label_values(&[code]);
    }
    for reason in &events.cautions {
        let _ = m.market_caution.remove_label_values(&[code, reason]);
    }
    if let Some([korean, english]) = &events.info {
        let _ = m.market_info.remove_label_values(&[code, korean, english]);
    }
    if events.listed.is_some() {
        let _ = m.market_listed_timestamp.remove_label_values(&[code]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upbit::market_list::MarketEvent;

    fn list(warning: Option<bool>) -> Arc<HashMap<String, MarketListing>> {
        let listing = MarketListing {
            market: "KRW-BTC".into(),
            korean_name: Some("비트코인".into()),
            english_name: Some("Bitcoin".into()),
            event: Some(MarketEvent {
                warning,
                caution: Default::default(),
            }),
        };
        Arc::new(HashMap::from([("KRW-BTC".to_owned(), listing)]))
    }

    #[test]
    fn the_list_wins_the_ticker_fills_in_and_silence_claims_nothing() {
        let m = Metrics::register(&prometheus::Registry::new()).unwrap();
        let warning = || m.market_warning.get(&["KRW-BTC"]).map(|s| s.get());
        let mut events = MarketEvents::default();
        events.set_codes(&m, &BTreeSet::from(["KRW-BTC"]));
        assert_eq!(warning(), None, "no source yet");
        events.ticker_warning(&m, "KRW-BTC", Some(true));
        assert_eq!(warning(), Some(1), "the ticker while the list is silent");
        events.set_list(&m, list(Some(false)), 1.0);
        assert_eq!(warning(), Some(0), "the list wins over the ticker");
        events.set_list(&m, list(None), 2.0);
        assert_eq!(
            warning(),
            Some(1),
            "the list without a warning: the ticker again"
        );
        events.ticker_warning(&m, "KRW-BTC", None);
        assert_eq!(warning(), None, "nobody speaks: no series");
        events.set_list(&m, list(Some(true)), 3.0);
        assert_eq!(warning(), Some(1));
        events.set_codes(&m, &BTreeSet::new());
        assert_eq!(warning(), None, "unsubscribed: no series");
        assert!(m.market_info.is_empty());
    }

    #[test]
    fn a_market_gets_a_listing_time_only_when_it_appears_after_the_first_list() {
        let m = Metrics::register(&prometheus::Registry::new()).unwrap();
        let listed = |code: &str| m.market_listed_timestamp.get(&[code]).map(|s| s.get());
        let with = |codes: &[&str]| {
            Arc::new(
                codes
                    .iter()
                    .map(|c| {
                        let mut l = list(None)["KRW-BTC"].clone();
                        l.market = (*c).into();
                        ((*c).to_owned(), l)
                    })
                    .collect::<HashMap<_, _>>(),
            )
        };
        let mut events = MarketEvents::default();
        events.set_codes(&m, &BTreeSet::from(["KRW-BTC", "KRW-NEW", "KRW-LATER"]));
        events.set_list(&m, with(&["KRW-BTC"]), 100.0);
        assert_eq!(
            listed("KRW-BTC"),
            None,
            "in the first list: listed at an unknown time"
        );
        events.set_list(&m, with(&["KRW-BTC", "KRW-NEW"]), 200.0);
        assert_eq!(listed("KRW-NEW"), Some(200.0));
        events.set_list(&m, with(&["KRW-BTC", "KRW-NEW"]), 300.0);
        assert_eq!(listed("KRW-NEW"), Some(200.0), "the first appearance stays");
        // Not subscribed when it appeared: the time is kept and shown once it is subscribed.
        events.set_codes(&m, &BTreeSet::from(["KRW-BTC"]));
        assert_eq!(listed("KRW-NEW"), None, "unsubscribed: no series");
        events.set_list(&m, with(&["KRW-BTC", "KRW-NEW", "KRW-LATER"]), 400.0);
        events.set_codes(&m, &BTreeSet::from(["KRW-BTC", "KRW-NEW", "KRW-LATER"]));
        assert_eq!(listed("KRW-NEW"), Some(200.0));
        assert_eq!(listed("KRW-LATER"), Some(400.0));
    }
}
