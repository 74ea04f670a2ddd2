//! The manager's market discovery: Upbit's market list fetched with details, compared with the
//! last one (listings and delistings logged and counted), handed to the metrics actor for its
//! market events, and the subscription redistributed when patterns resolve differently.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::SubscriptionManager;
use crate::messages::MarketListFetched;
use crate::upbit::market_list::{parse_market_list, MarketListing};

/// Most market-list changes logged one by one per fetch; the rest are summed up.
const LOGGED_CHANGES: usize = 20;

/// How long one market-list fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

impl SubscriptionManager {
    pub(super) fn fetch_markets(&mut self, ctx: &mut Context<Self>) {
        if self.fetching || self.config.market_list_url.is_empty() {
            return;
        }
        self.fetching = true;
        let client = self
            .client
            .get_or_insert_with(|| crate::actors::client::rest_client(FETCH_TIMEOUT));
        let request = client
            .get(detailed_url(&self.config.market_list_url))
            .insert_header(("Accept", "application/json"));
        let fetch = async move {
            let mut response = request.send().await.map_err(|e| e.to_string())?;
            if !response.status().is_success() {
                return Err(format!("HTTP {}", response.status().as_u16()));
            }
            let body = response
                .body()
                .limit(8 << 20)
                .await
                .map_err(|e| e.to_string())?;
            let (markets, skipped) = parse_market_list(&body)?;
            if skipped > 0 {
                log::warn!("market list: {skipped} entries without a valid market code skipped");
            }
            if markets.is_empty() {
                return Err("an empty market list".to_owned());
            }
            Ok(markets)
        };
        ctx.spawn(fetch.into_actor(self).map(|result, act, _| {
            act.fetching = false;
            act.on_market_list(result);
        }));
    }

    fn on_market_list(&mut self, result: Result<Vec<MarketListing>, String>) {
        let markets = match result {
            Ok(listings) => {
                let markets: BTreeSet<String> = listings.iter().map(|m| m.market.clone()).collect();
                if let Some(recipient) = &self.market_details {
                    let by_code: HashMap<String, MarketListing> = listings
                        .into_iter()
                        .map(|m| (m.market.clone(), m))
                        .collect();
                    // Rare and small: do_send, never lost to a full mailbox.
                    recipient.do_send(MarketListFetched {
                        markets: Arc::new(by_code),
                    });
                }
                markets
            }
            Err(error) => {
                self.metrics
                    .market_list_fetches
                    .with_label_values(&["error"])
                    .inc();
                let kept = match &self.markets {
                    Some(list) => format!("keeping the last list of {} markets", list.len()),
                    None => "until a fetch succeeds, patterns match nothing and market warnings stay unknown".to_owned(),
                };
                log::warn!(
                    "market list fetch failed url={}: {error}; {kept}",
                    self.config.market_list_url
                );
                return;
            }
        };
        self.metrics
            .market_list_fetches
            .with_label_values(&["ok"])
            .inc();
        self.metrics.market_list_codes.set(markets.len() as i64);
        if let Some(previous) = &self.markets {
            let listed: Vec<&String> = markets.difference(previous).collect();
            let delisted: Vec<&String> = previous.difference(&markets).collect();
            for (change, codes) in [("listed", &listed), ("delisted", &delisted)] {
                self.metrics
                    .market_list_changes
                    .with_label_values(&[change])
                    .inc_by(codes.len() as u64);
                for code in codes.iter().take(LOGGED_CHANGES) {
                    log::info!("market {change} code={code}");
                }
                if codes.len() > LOGGED_CHANGES {
                    log::info!("… and {} more {change}", codes.len() - LOGGED_CHANGES);
                }
            }
        } else {
            log::info!("market list fetched markets={}", markets.len());
        }
        self.markets = Some(markets);
        self.distribute();
    }
}
/// The market list URL asking for details (`market_event`), whatever query it already has.
fn detailed_url(url: &str) -> String {
    if url.contains("is_details=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&is_details=true")
    } else {
        format!("{url}?is_details=true")
    }
}

#[cfg(test)]
mod tests {
    use super::detailed_url;

    #[test]
    fn the_list_is_asked_with_details() {
        assert_eq!(
            detailed_url("https://api.upbit.com/v1/market/all"),
            "https://api.upbit.com/v1/market/all?is_details=true"
        );
        assert_eq!(
            detailed_url("http://h/m?x=1"),
            "http://h/m?x=1&is_details=true"
        );
        assert_eq!(
            detailed_url("http://h/m?is_details=false"),
            "http://h/m?is_details=false"
        );
    }
}
