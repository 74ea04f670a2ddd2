//! Builds the actor system and the HTTP server from [`Settings`] and returns a handle.
//!
//! ```text
//!   Upbit ──ws──▶ ConnectionActor ──FramesReceived──▶ DecoderActor ──FramesDecoded──▶ MetricsActor
//!   (supervised,      │  ▲ UpdateSubscription/Reconnect/Shutdown       (own arbiter thread)
//!    main arbiter)    ▼  │                                                     │
//!                  StatusBoard ◀── HTTP: /readyz /api/v1 ──▶ Registry ◀────────┘  /metrics
//! ```

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::{Actor, Addr, Arbiter, Supervisor};
use actix_web::dev::ServerHandle;
use actix_web::{web, HttpServer};
use actix_web_prom::PrometheusMetricsBuilder;
use prometheus::Registry;

use crate::actors::connection::{ConnectionActor, ConnectionConfig, ConnectionPeers};
use crate::actors::decoder::DecoderActor;
use crate::actors::manager::{ManagerConfig, SpawnConnection, SubscriptionManager};
use crate::actors::metrics::MetricsActor;
use crate::actors::pacing::{RateWindow, RequestBudget};
use crate::actors::queue::{QueueDepthCollector, StageQueue};
use crate::http::{self, AppState};
use crate::messages::Shutdown;
use crate::settings::Settings;
use crate::status::{LinkState, StatusBoard, StatusBoards};
use crate::stream::{Hub, Publisher};
use crate::subscription::{load_state, move_aside, SavedState, StateError};
use crate::telemetry::metrics::StreamMetrics;
use crate::telemetry::Metrics;

/// How long the HTTP server may take to finish in-flight requests at shutdown.
const HTTP_SHUTDOWN: Duration = Duration::from_secs(3);

/// The service failed to start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot register metrics: {0}")]
    Metrics(String),
}

/// A running service.
pub struct AppHandle {
    /// Where the HTTP server listens (useful with port 0).
    pub http_addr: SocketAddr,
    /// The registry behind `/metrics`.
    pub registry: Registry,
    boards: StatusBoards,
    manager: Addr<SubscriptionManager>,
    server: ServerHandle,
    pipeline: Arbiter,
    stream: Option<Hub>,
}

/// Starts everything on the current actix System.
pub async fn start(settings: Settings) -> Result<AppHandle, StartError> {
    let listen = settings.http.listen;
    let listener = TcpListener::bind(listen).map_err(|source| StartError::Bind {
        addr: listen,
        source,
    })?;
    let http_addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: listen,
        source,
    })?;

    let registry = Registry::new();
    let metrics = Metrics::register(&registry).map_err(|e| StartError::Metrics(e.to_string()))?;
    let status = StatusBoard::new();
    let SavedState {
        subscription,
        revision,
        orderbook: restored_orderbook,
    } = initial_subscription(&settings);
    let capacity = settings.pipeline.queue_capacity;
    let (decoder_queue, metrics_queue) = (StageQueue::new(capacity), StageQueue::new(capacity));
    registry
        .register(Box::new(
            QueueDepthCollector::new(vec![
                ("decoder", decoder_queue.clone()),
                ("metrics", metrics_queue.clone()),
            ])
            .map_err(|e| StartError::Metrics(e.to_string()))?,
        ))
        .map_err(|e| StartError::Metrics(e.to_string()))?;
    // The live stream's fan-out, fed by the metrics actor (None when disabled).
    let stream_metrics =
        StreamMetrics::register(&registry).map_err(|e| StartError::Metrics(e.to_string()))?;
    let stream = settings.stream.enabled.then(|| {
        Hub::new(
            settings.stream.max_consumers,
            settings.stream.trade_queue,
            stream_metrics,
        )
        .with_max_per_address(settings.stream.max_consumers_per_address)
    });

    // The socket reader, the decoder and the metrics share one thread, apart from the HTTP
    // workers, so scrapes and control calls never wait on the feed. Measured (benches/e2e.rs):
    // handing each batch to another thread cost 0.6 µs per frame (1.60x the floor against 1.27x)
    // for no throughput gain; the bounded stage queues still keep a slow stage from holding
    // frames without limit.
    let pipeline = Arbiter::new();
    let metrics_actor = {
        let (metrics, subscription) = (metrics.clone(), subscription.clone());
        let inbound = metrics_queue.clone();
        let publisher = stream
            .clone()
            .map_or_else(Publisher::disabled, Publisher::new);
        let figures = settings.metrics.clone();
        MetricsActor::start_in_arbiter(&pipeline.handle(), move |_| {
            MetricsActor::new(metrics, subscription, inbound)
                .with_stream(publisher)
                .with_figures(&figures)
        })
    };
    let boards = StatusBoards::new(status);
    let decoder = {
        let (metrics, status, sink) = (
            metrics.clone(),
            boards.clone(),
            metrics_actor.clone().recipient(),
        );
        let max_frame_bytes = settings.pipeline.max_frame_bytes;
        let (inbound, outbound) = (decoder_queue.clone(), metrics_queue);
        let link_sink = metrics_actor.clone().recipient();
        DecoderActor::start_in_arbiter(&pipeline.handle(), move |_| {
            DecoderActor::new(metrics, status, sink, max_frame_bytes, inbound, outbound)
                .with_link_sink(link_sink)
        })
    };
    // The manager and every connection run on the pipeline thread beside the decoder (never on
    // the caller's thread, which may be busy); the manager starts connections as the
    // subscription needs them, all sharing Upbit's budgets for attempts and requests.
    let spawn: SpawnConnection = {
        let (arbiter, metrics) = (pipeline.handle(), metrics.clone());
        let link_events = decoder.clone().recipient();
        let decoder = decoder.recipient();
        let config = ConnectionConfig::from_settings(&settings);
        let attempt_budget = Arc::new(Mutex::new(RateWindow::upbit_connections()));
        let request_budget = Arc::new(Mutex::new(RequestBudget::default()));
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
    };
    let manager = {
        let config = ManagerConfig::from_settings(&settings);
        let (boards, sink, metrics) = (
            boards.clone(),
            metrics_actor.clone().recipient(),
            metrics.clone(),
        );
        let details = metrics_actor.clone().recipient();
        SubscriptionManager::start_in_arbiter(&pipeline.handle(), move |_| {
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

    let prometheus = PrometheusMetricsBuilder::new("upbit")
        .registry(registry.clone())
        .endpoint("/metrics")
        .exclude("/healthz")
        .exclude("/readyz")
        .mask_unmatched_patterns("UNKNOWN")
        .build()
        .map_err(|e| StartError::Metrics(e.to_string()))?;
    let state = AppState {
        status: boards.clone(),
        freshness: settings.connection.idle_timeout,
        manager: manager.clone(),
        metrics_actor,
        auth: http::auth::Auth {
            token: settings.control.token.clone(),
            protect_reads: settings.control.protect_reads,
        },
        max_body_bytes: settings.control.max_body_bytes,
        body_timeout: settings.control.body_timeout,
        mutations: Arc::new(Mutex::new(RateWindow::new(
            http::MUTATIONS_PER_SECOND,
            Duration::from_secs(1),
        ))),
        started: Instant::now(),
        upbit_url: settings.upbit.url.clone(),
        format: settings.upbit.format,
        live: http::live::LiveStream {
            hub: stream.clone(),
            max_codes: settings.control.max_codes,
        },
    };
    let workers = match settings.http.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let server = HttpServer::new(move || {
        actix_web::App::new()
            .wrap(prometheus.clone())
            .app_data(web::Data::new(state.clone()))
            .configure(http::configure)
            .default_service(web::to(http::error::not_found))
    })
    .workers(workers)
    // Lets the live stream shut down a connection whose peer stopped reading.
    .on_connect(crate::stream::socket::remember_socket)
    .disable_signals()
    .shutdown_timeout(HTTP_SHUTDOWN.as_secs())
    .listen(listener)
    .map_err(|source| StartError::Bind {
        addr: listen,
        source,
    })?
    .run();
    let handle = server.handle();
    actix_rt::spawn(server);
    log::info!(
        "started version={} http={http_addr} upbit={} control={}",
        env!("CARGO_PKG_VERSION"),
        settings.upbit.url,
        if settings.control.token.is_some() {
            "enabled"
        } else {
            "read-only (no token)"
        }
    );
    Ok(AppHandle {
        http_addr,
        registry,
        boards,
        manager,
        server: handle,
        pipeline,
        stream,
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

impl AppHandle {
    /// Base URL of the HTTP server.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// The subscription manager, for control messages.
    pub fn manager(&self) -> &Addr<SubscriptionManager> {
        &self.manager
    }

    /// Closes every Upbit link with 1000, stops the HTTP server and the pipeline thread.
    pub async fn shutdown(self) {
        log::info!("shutting down");
        let _ = self.manager.send(Shutdown).await;
        if let Some(stream) = &self.stream {
            // Streams never end on their own: end them so the HTTP server can stop at once.
            stream.shutdown();
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        let stopped = |boards: &StatusBoards| {
            boards
                .all()
                .iter()
                .all(|b| b.snapshot().state == LinkState::Stopped)
        };
        while !stopped(&self.boards) && Instant::now() < deadline {
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
        self.server.stop(true).await;
        self.pipeline.stop();
        log::info!("stopped");
    }
}
