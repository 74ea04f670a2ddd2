//! The subscription on a live link: one message with every type and a fresh UUID v4 ticket,
//! then `LIST_SUBSCRIPTIONS` to verify it, both within Upbit's request limits (shared by every
//! connection). Changes arriving while a send waits for the budget coalesce into that one send;
//! when it is due, [`flush_step`] decides what it does.

use std::time::{Duration, Instant};

use actix::prelude::*;
use awc::ws;

use super::ConnectionActor;
use crate::status::LinkState;
use crate::telemetry::events::{DisconnectReason, Subscribed};
use crate::upbit::request::{list_subscriptions_request, OrderbookOptions};
use crate::upbit::Subscription;

/// What a due subscription send does.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum FlushStep {
    /// The link already carries what is wanted (changes cancelled out meanwhile).
    UpToDate,
    /// Send the wanted subscription.
    Send,
    /// Drop the link and start a fresh one: Upbit rejects `codes: []` and keeps the old set,
    /// so a link that subscribes to nothing is the only way to stop the data.
    Relink,
}

/// Decides a due send from what the link last sent (`None`: nothing yet) and what is wanted.
pub(super) fn flush_step(
    sent: Option<&(Subscription, OrderbookOptions)>,
    wanted: &Subscription,
    orderbook: &OrderbookOptions,
) -> FlushStep {
    if sent.is_some_and(|(s, o)| s == wanted && o == orderbook) {
        return FlushStep::UpToDate;
    }
    let was_subscribed = sent.is_some_and(|(s, _)| !s.is_empty());
    if wanted.is_empty() && was_subscribed {
        FlushStep::Relink
    } else {
        FlushStep::Send
    }
}

impl ConnectionActor {
    /// Sends the whole desired subscription (or idles on an empty one) and asks Upbit to list it.
    pub(super) fn send_subscription(&mut self) {
        self.request_budget.lock().reserve(Instant::now());
        if self.subscription.is_empty() {
            self.link.sent = Some((Subscription::default(), self.config.orderbook.clone()));
            log::info!("connected with an empty subscription: idling (pings keep the link open)");
            self.metrics.link_up(self.config.index, true);
            self.status.update(|s| {
                s.state = LinkState::Idle;
                s.ticket = None;
                s.acknowledged = None;
            });
            return;
        }
        let ticket = uuid::Uuid::new_v4().to_string();
        let request =
            self.subscription
                .to_request_with(&ticket, self.config.format, &self.config.orderbook);
        let list = list_subscriptions_request(&ticket, self.config.format);
        if !self.write(ws::Message::Text(request.into())) {
            return;
        }
        let types: Vec<&str> = self
            .subscription
            .entries()
            .map(|(t, _)| t.as_str())
            .collect();
        Subscribed {
            connection: self.config.index,
            ticket: &ticket,
            pairs: self.subscription.len(),
            codes: self.subscription.codes().len(),
            types: &types.join(","),
            format: self.config.format.as_str(),
        }
        .emit(&self.metrics);
        if self.write(ws::Message::Text(list.into())) {
            self.metrics.subscription_requests.inc();
        }
        self.link.sent = Some((self.subscription.clone(), self.config.orderbook.clone()));
        self.status.update(|s| {
            s.state = LinkState::Subscribed;
            s.ticket = Some(ticket);
            s.acknowledged = None;
        });
    }

    /// Sends the desired subscription on the live link as soon as Upbit's request limits allow;
    /// calls arriving meanwhile coalesce into that one message.
    pub(super) fn schedule_flush(&mut self, ctx: &mut Context<Self>) {
        if !self.link.connected || self.link.flush_pending {
            return;
        }
        let now = Instant::now();
        let at = self.request_budget.lock().earliest(now);
        self.link.flush_pending = true;
        ctx.run_later(at.saturating_duration_since(now), |act, ctx| {
            act.link.flush_pending = false;
            let sent = act.link.sent.as_ref();
            match flush_step(sent, &act.subscription, &act.config.orderbook) {
                FlushStep::UpToDate => {}
                FlushStep::Send => act.send_subscription(),
                FlushStep::Relink => {
                    act.next_delay = Duration::ZERO;
                    act.end(DisconnectReason::Control, "subscription emptied".into());
                    ctx.stop();
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upbit::DataType;

    fn subscription(codes: &[&str]) -> Subscription {
        let mut s = Subscription::default();
        for code in codes {
            s.insert(DataType::Ticker, code);
        }
        s
    }

    fn depth(units: u8) -> OrderbookOptions {
        OrderbookOptions {
            depth: Some(units),
            level: None,
        }
    }

    #[test]
    fn what_the_link_carries_already_is_not_sent_again() {
        let btc = subscription(&["KRW-BTC"]);
        let sent = (btc.clone(), depth(5));
        assert_eq!(
            flush_step(Some(&sent), &btc, &depth(5)),
            FlushStep::UpToDate
        );
    }

    #[test]
    fn a_changed_set_or_orderbook_option_is_sent() {
        let sent = (subscription(&["KRW-BTC"]), depth(5));
        let both = subscription(&["KRW-BTC", "KRW-ETH"]);
        assert_eq!(flush_step(Some(&sent), &both, &depth(5)), FlushStep::Send);
        assert_eq!(
            flush_step(Some(&sent), &sent.0, &depth(15)),
            FlushStep::Send
        );
        assert_eq!(flush_step(None, &both, &depth(5)), FlushStep::Send);
    }

    #[test]
    fn emptying_a_subscribed_link_relinks_but_an_idle_one_just_idles() {
        let empty = Subscription::default();
        let subscribed = (subscription(&["KRW-BTC"]), OrderbookOptions::default());
        let idle = (empty.clone(), OrderbookOptions::default());
        let options = OrderbookOptions::default();
        assert_eq!(
            flush_step(Some(&subscribed), &empty, &options),
            FlushStep::Relink
        );
        assert_eq!(
            flush_step(Some(&idle), &empty, &options),
            FlushStep::UpToDate
        );
        assert_eq!(flush_step(Some(&idle), &empty, &depth(5)), FlushStep::Send);
        assert_eq!(flush_step(None, &empty, &options), FlushStep::Send);
    }
}
