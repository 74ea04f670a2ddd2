//! The pipeline: the metrics actor, the decoder, the subscription manager and the connections
//! it starts, on one arbiter thread, starting from the configured subscription or the one the
//! state file kept.

use std::sync::Arc;

use actix::{Actor, Addr, Arbiter, Supervisor};
use prometheus::Registry;

use super::StartError;
use crate::actors::connection::{ConnectionActor, ConnectionConfig, ConnectionPeers};
use crate::actors::decoder::DecoderActor;
use crate::actors::manager::{ManagerConfig, SpawnConnection, SubscriptionManager};
use crate::actors::metrics::MetricsActor;
use crate::actors::pacing::{RateWindow, RequestBudget};
use crate::actors::queue::StageQueue;
use crate::settings::Settings;
use crate::status::{StatusBoard, StatusBoards};
use crate::stream::{EventSink, Hub, Publisher};
use crate::subscription::{load_state, move_aside, SavedState, StateError};
use crate::telemetry::metrics::QueueDepthCollector;
use crate::telemetry::Metrics;

/// The actors and the thread they share.
pub(super) struct Pipeline {
    pub(super) arbiter: Arbiter,
    pub(super) boards: StatusBoards,
    pub(super) manager: Addr<SubscriptionManager>,
    pub(super) metrics_actor: Addr<MetricsActor>,
}

impl Pipeline {
    /// Starts the metrics actor, the decoder and the manager (which starts the connections).
    ///
    /// The socket reader, the decoder and the metrics share one thread, apart from the HTTP
    /// workers, so scrapes and control calls never wait on the feed. Measured (benches/e2e.rs):
    /// handing each batch to another thread cost 0.6 µs per frame (1.60x the floor against
    /// 1.27x) for no throughput gain; the bounded stage queues still keep a slow stage from
    /// holding frames without limit. The manager and every connection run there too (never on
    /// the caller's thread, which may be busy).
    pub(super) fn start(
        settings: &Settings,
        registry: &Registry,
        metrics: &Metrics,
        stream: Option<&Hub>,
        sink: Option<Arc<dyn EventSink>>,
    ) -> Result<Self, StartError> {
        let SavedState {
            subscription,
            revision,
            orderbook: restored_orderbook,
        } = initial_subscription(settings);
        let capacity = settings.pipeline.queue_capacity;
        let (decoder_queue, metrics_queue) = (StageQueue::new(capacity), StageQueue::new(capacity));
        QueueDepthCollector::register(
            registry,
            vec![
                ("decoder", decoder_queue.clone()),
                ("metrics", metrics_queue.clone()),
            ],
        )
        .map_err(StartError::metrics)?;
        let connection_queue = decoder_queue.clone();
        let arbiter = Arbiter::new();
        // The stream's publisher: the metrics actor publishes through it, and the decoder asks
        // it which types to decode in full at once (every type when a sink takes the stream).
        let publisher = stream
            .cloned()
            .map_or_else(Publisher::disabled, Publisher::new);
        let publisher = match sink {
            Some(sink) => publisher.with_sink(sink),
            None => publisher,
        };
        let metrics_actor = {
            let (metrics, subscription) = (metrics.clone(), subscription.clone());
            let inbound = metrics_queue.clone();
            let publisher = publisher.clone();
            let figures = settings.metrics.clone();
            MetricsActor::start_in_arbiter(&arbiter.handle(), move |_| {
                MetricsActor::new(metrics, subscription, inbound)
                    .with_stream(publisher)
                    .with_figures(&figures)
            })
        };
        let decoder_stream = publisher;
        let boards = StatusBoards::new(StatusBoard::new());
        let decoder = {
            let (metrics, status) = (metrics.clone(), boards.clone());
            let (sink, link_sink) = (
                metrics_actor.clone().recipient(),
                metrics_actor.clone().recipient(),
            );
            let max_frame_bytes = settings.pipeline.max_frame_bytes;
            DecoderActor::start_in_arbiter(&arbiter.handle(), move |_| {
                DecoderActor::new(
                    metrics,
                    status,
                    sink,
                    max_frame_bytes,
                    decoder_queue,
                    metrics_queue,
                )
                .with_link_sink(link_sink)
                .with_stream(decoder_stream)
            })
        };
        let spawn = spawn_connections(settings, &arbiter, metrics, decoder, connection_queue);
        let manager = {
            let config = ManagerConfig::from_settings(settings);
            let (boards, sink, metrics) = (
                boards.clone(),
                metrics_actor.clone().recipient(),
                metrics.clone(),
            );
            let details = metrics_actor.clone().recipient();
            SubscriptionManager::start_in_arbiter(&arbiter.handle(), move |_| {
                let manager =
                    SubscriptionManager::new(config, subscription, boards, spawn, sink, metrics)
                        .with_revision(revision)
                        .with_market_details(details);
                match restored_orderbook {
                    Some(orderbook) => manager.with_orderbook(orderbook),
                    None => manager,
                }
            })
        };
        Ok(Self {
            arbiter,
            boards,
            manager,
            metrics_actor,
        })
    }
}

/// What the manager calls to start connection `index`: every connection feeds the one decoder
/// through its queue and shares Upbit's budgets for connection attempts and requests.
fn spawn_connections(
    settings: &Settings,
    arbiter: &Arbiter,
    metrics: &Metrics,
    decoder: Addr<DecoderActor>,
    decoder_queue: StageQueue,
) -> SpawnConnection {
    let (arbiter, metrics) = (arbiter.handle(), metrics.clone());
    let link_events = decoder.clone().recipient();
    let decoder = decoder.recipient();
    let config = ConnectionConfig::from_settings(settings);
    let attempt_budget = Arc::new(parking_lot::Mutex::new(RateWindow::upbit_connections()));
    let request_budget = Arc::new(parking_lot::Mutex::new(RequestBudget::default()));
    Box::new(move |index, status, subscription, orderbook| {
        let peers = ConnectionPeers {
            link_events: Some(link_events.clone()),
            decoder: decoder.clone(),
            decoder_queue: decoder_queue.clone(),
            metrics: metrics.clone(),
            status,
            attempt_budget: attempt_budget.clone(),
            request_budget: request_budget.clone(),
        };
        let config = ConnectionConfig {
            index,
            orderbook,
            ..config.clone()
        };
        Supervisor::start_in_arbiter(&arbiter, move |_| {
            ConnectionActor::new(config, peers, subscription)
        })
    })
}

/// The configured subscription (revision 0), or the one an operator set before a restart and
/// its revision (state file). A file this build cannot use is moved aside, never overwritten.
fn initial_subscription(settings: &Settings) -> SavedState {
    let configured = SavedState {
        subscription: settings.upbit.subscription(),
        revision: 0,
        orderbook: None,
    };
    let Some(path) = &settings.control.state_file else {
        return configured;
    };
    match load_state(path) {
        Ok(Some(saved)) => {
            log::info!(
                "restored subscription from state file path={} pairs={} revision={} orderbook={}",
                path.display(),
                saved.subscription.len(),
                saved.revision,
                if saved.orderbook.is_some() {
                    "restored"
                } else {
                    "configured"
                }
            );
            saved
        }
        Ok(None) => configured,
        Err(problem @ StateError::Unreadable { .. }) => {
            log::error!("{problem}; starting with the configured subscription");
            configured
        }
        Err(problem) => {
            match move_aside(path) {
                Ok(aside) => log::error!(
                    "{problem}; moved it to {} and starting with the configured subscription",
                    aside.display()
                ),
                Err(e) => log::error!(
                    "{problem}; cannot move it aside ({e}); starting with the configured subscription"
                ),
            }
            configured
        }
    }
}
