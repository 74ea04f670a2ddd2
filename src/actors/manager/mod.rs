//! SubscriptionManager: what the service watches, and over which connections.
//!
//! It owns the desired subscription as operators wrote it (codes and patterns such as `KRW-*`),
//! Upbit's market list that patterns resolve against (fetched with `is_details=true` at start
//! and every `discovery.refresh`, patterns or not, since its market events are the supported
//! source of warnings; kept when a fetch fails), and the connections that carry the result:
//! one `ConnectionActor` per `connection.max_codes_per_connection` codes, each under its own
//! supervisor, codes spread evenly and kept in place across changes. Every change reaches each
//! affected connection as one replace-all message on its live link. With `[shard]` set, the
//! resolved subscription is cut to this replica's shard before anything else sees it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use actix::prelude::*;

mod discovery;

use super::connection::ConnectionActor;
use crate::messages::{
    ChangeOrderbook, ChangeSubscription, GetSubscription, MarketListFetched, Reconnect,
    SetSubscription, ShardView, Shutdown, SubscriptionChanged, SubscriptionView,
};
use crate::settings::Settings;
use crate::status::{StatusBoard, StatusBoards};
use crate::subscription::{assign, bound, part, resolve, save_state, shard, ChangeError, Shard};
use crate::telemetry::Metrics;
use crate::upbit::request::OrderbookOptions;
use crate::upbit::types::is_pattern;
use crate::upbit::Subscription;

#[derive(Debug, Clone)]
pub struct ManagerConfig {
    pub max_codes: usize,
    pub state_file: Option<PathBuf>,
    pub per_connection: usize,
    pub market_list_url: String,
    pub refresh: Duration,
    /// The configured orderbook options (depth suffix, level); the API may change them.
    pub orderbook: OrderbookOptions,
    /// The part of the subscription this replica takes.
    pub shard: Shard,
}

impl ManagerConfig {
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            max_codes: settings.control.max_codes,
            state_file: settings.control.state_file.clone(),
            per_connection: settings.connection.max_codes_per_connection,
            market_list_url: settings.discovery.url.clone(),
            refresh: settings.discovery.refresh,
            orderbook: settings.upbit.orderbook.clone(),
            shard: settings.shard,
        }
    }
}

/// Starts connection `index` with its status board, first subscription and orderbook options.
pub type SpawnConnection =
    Box<dyn Fn(usize, StatusBoard, Subscription, OrderbookOptions) -> Addr<ConnectionActor> + Send>;

pub struct SubscriptionManager {
    config: ManagerConfig,
    spec: Subscription,
    revision: u64,
    /// The orderbook options every connection sends (configured, restored or set by the API).
    orderbook: OrderbookOptions,
    /// True once the options came from the API (or a state file that had them): only then are
    /// they saved, so a configuration change still applies to a service that never had one.
    orderbook_saved: bool,
    markets: Option<BTreeSet<String>>,
    resolved: Subscription,
    /// This replica's shard and its share of the resolved subscription.
    shard: ShardView,
    assignment: BTreeMap<String, usize>,
    connections: Vec<Addr<ConnectionActor>>,
    boards: StatusBoards,
    spawn: SpawnConnection,
    metrics_actor: Recipient<SubscriptionChanged>,
    metrics: Metrics,
    client: Option<awc::Client>,
    fetching: bool,
    /// Where each fetched market list goes (the metrics actor's market events).
    market_details: Option<Recipient<MarketListFetched>>,
}

impl SubscriptionManager {
    pub fn new(
        config: ManagerConfig,
        spec: Subscription,
        boards: StatusBoards,
        spawn: SpawnConnection,
        metrics_actor: Recipient<SubscriptionChanged>,
        metrics: Metrics,
    ) -> Self {
        Self {
            spec,
            revision: 0,
            orderbook: config.orderbook.clone(),
            orderbook_saved: false,
            markets: None,
            resolved: Subscription::default(),
            shard: ShardView {
                shard: config.shard,
                ..ShardView::default()
            },
            assignment: BTreeMap::new(),
            connections: Vec::new(),
            boards,
            spawn,
            metrics_actor,
            metrics,
            client: None,
            fetching: false,
            market_details: None,
            config,
        }
    }

    /// Continues from `revision` (restored from the state file): revisions never repeat.
    pub fn with_revision(mut self, revision: u64) -> Self {
        self.revision = revision;
        self
    }

    /// Orderbook options restored from the state file (set through the API before a restart).
    pub fn with_orderbook(mut self, orderbook: OrderbookOptions) -> Self {
        self.orderbook = orderbook;
        self.orderbook_saved = true;
        self
    }

    /// The orderbook options to save with the subscription, if they are the API's.
    fn saved_orderbook(&self) -> Option<&OrderbookOptions> {
        self.orderbook_saved.then_some(&self.orderbook)
    }

    /// Hands every market list fetched to `recipient` as well.
    pub fn with_market_details(mut self, recipient: Recipient<MarketListFetched>) -> Self {
        self.market_details = Some(recipient);
        self
    }

    fn has_patterns(&self) -> bool {
        self.spec.pairs().any(|(_, entry)| is_pattern(entry))
    }

    /// Resolves the spec, takes this replica's shard of it, bounds that by `max_codes`, and
    /// hands each connection its part.
    fn distribute(&mut self) {
        let resolved = resolve(&self.spec, self.markets.as_ref());
        let (resolved, elsewhere) = shard(resolved, self.config.shard);
        self.shard.codes = resolved.codes().len();
        self.shard.codes_elsewhere = elsewhere;
        self.metrics.set_shard_codes(self.shard.codes, elsewhere);
        let (resolved, left_out) = bound(resolved, &self.spec, self.config.max_codes);
        if left_out > 0 {
            log::warn!(
                "the subscription resolves to {} codes; control.max_codes allows {}: {left_out} left out",
                self.config.max_codes + left_out,
                self.config.max_codes,
            );
        }
        if resolved != self.resolved || self.connections.is_empty() {
            // Control path, rare: do_send ignores the mailbox bound so the change is never lost.
            self.metrics_actor.do_send(SubscriptionChanged {
                subscription: resolved.clone(),
            });
        }
        self.resolved = resolved;
        let (assignment, count) = assign(
            &self.resolved.codes(),
            &self.assignment,
            self.config.per_connection,
        );
        self.assignment = assignment;
        while self.connections.len() > count {
            let index = self.connections.len() - 1;
            log::info!("connection={index} no longer needed: closing it");
            if let Some(connection) = self.connections.pop() {
                connection.do_send(Shutdown);
            }
            self.boards.truncate(index);
        }
        self.metrics.set_links(count);
        for index in 0..count {
            let share = part(&self.resolved, &self.assignment, index);
            self.metrics
                .connection_codes
                .with_label_values(&[&index.to_string()])
                .set(share.codes().len() as i64);
            match self.connections.get(index) {
                Some(connection) => connection.do_send(SetSubscription {
                    subscription: share,
                    orderbook: self.orderbook.clone(),
                }),
                None => {
                    let board = self.boards.get_or_add(index);
                    if index > 0 {
                        log::info!(
                            "opening connection={index} for {} codes",
                            share.codes().len()
                        );
                    }
                    self.connections.push((self.spawn)(
                        index,
                        board,
                        share,
                        self.orderbook.clone(),
                    ));
                }
            }
        }
    }
}

impl Actor for SubscriptionManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Explicit codes connect at once; patterns join when the list arrives. The list is
        // fetched whether or not patterns are used: it carries the market events.
        self.metrics.set_shard(self.config.shard);
        if self.config.shard.count > 1 {
            log::info!(
                "shard index={} count={}: taking the codes that hash to this shard",
                self.config.shard.index,
                self.config.shard.count
            );
        }
        self.distribute();
        self.fetch_markets(ctx);
        if !self.config.refresh.is_zero() {
            ctx.run_interval(self.config.refresh, |act, ctx| act.fetch_markets(ctx));
        }
    }
}

impl Handler<ChangeSubscription> for SubscriptionManager {
    type Result = Result<SubscriptionView, ChangeError>;

    /// Validates against the current state, persists, then applies: all or nothing.
    fn handle(&mut self, request: ChangeSubscription, ctx: &mut Self::Context) -> Self::Result {
        self.check_revision(request.expected_revision)?;
        let next = request.change.apply(&self.spec);
        let resolved = resolve(&next, self.markets.as_ref());
        let count = shard(resolved, self.config.shard).0.codes().len();
        if count > self.config.max_codes {
            return Err(ChangeError::TooManyCodes {
                count,
                max: self.config.max_codes,
            });
        }
        if next != self.spec {
            if let Some(path) = &self.config.state_file {
                save_state(path, &next, self.revision + 1, self.saved_orderbook())
                    .map_err(ChangeError::Persist)?;
            }
            log::info!(
                "subscription changed revision={} pairs={} codes={count}",
                self.revision + 1,
                next.len()
            );
            self.spec = next;
            self.revision += 1;
            self.distribute();
            if self.markets.is_none() && self.has_patterns() {
                self.fetch_markets(ctx);
            }
        }
        Ok(self.view())
    }
}

impl SubscriptionManager {
    /// A conditional change (`?revision=N`) goes ahead only at that revision.
    fn check_revision(&self, expected: Option<u64>) -> Result<(), ChangeError> {
        match expected {
            Some(expected) if expected != self.revision => Err(ChangeError::Conflict {
                expected,
                current: self.revision,
            }),
            _ => Ok(()),
        }
    }

    fn view(&self) -> SubscriptionView {
        let connections = (0..self.connections.len())
            .map(|i| self.assignment.values().filter(|at| **at == i).count())
            .collect();
        SubscriptionView {
            subscription: self.spec.clone(),
            revision: self.revision,
            resolved: self.resolved.clone(),
            connection_codes: connections,
            orderbook: self.orderbook.clone(),
            shard: self.shard,
        }
    }
}

impl Handler<ChangeOrderbook> for SubscriptionManager {
    type Result = Result<SubscriptionView, ChangeError>;

    /// New orderbook options for every connection: persisted, then sent as one replace-all
    /// message per connection (within Upbit's request limits), like a subscription change.
    fn handle(&mut self, request: ChangeOrderbook, _: &mut Self::Context) -> Self::Result {
        self.check_revision(request.expected_revision)?;
        if request.orderbook != self.orderbook {
            if let Some(path) = &self.config.state_file {
                save_state(
                    path,
                    &self.spec,
                    self.revision + 1,
                    Some(&request.orderbook),
                )
                .map_err(ChangeError::Persist)?;
            }
            log::info!(
                "orderbook options changed revision={} depth={} level={}",
                self.revision + 1,
                request
                    .orderbook
                    .depth
                    .map_or_else(|| "default".to_owned(), |d| d.to_string()),
                request.orderbook.level.as_deref().unwrap_or("none"),
            );
            self.orderbook = request.orderbook;
            self.orderbook_saved = true;
            self.revision += 1;
            self.distribute();
        }
        Ok(self.view())
    }
}

impl Handler<GetSubscription> for SubscriptionManager {
    type Result = actix::MessageResult<GetSubscription>;

    fn handle(&mut self, _: GetSubscription, _: &mut Self::Context) -> Self::Result {
        actix::MessageResult(self.view())
    }
}

impl Handler<Reconnect> for SubscriptionManager {
    type Result = ();

    fn handle(&mut self, _: Reconnect, _: &mut Self::Context) {
        for connection in &self.connections {
            connection.do_send(Reconnect);
        }
    }
}

impl Handler<Shutdown> for SubscriptionManager {
    type Result = ();

    fn handle(&mut self, _: Shutdown, _: &mut Self::Context) {
        for connection in &self.connections {
            connection.do_send(Shutdown);
        }
    }
}
