//! Builds the actor system ([`pipeline`]) and the HTTP server ([`server`]) from [`Settings`]
//! and returns a handle.
//!
//! ```text
//!   Upbit ──ws──▶ ConnectionActor ──FramesReceived──▶ DecoderActor ──FramesDecoded──▶ MetricsActor
//!   (supervised)      │  ▲ SetSubscription/Reconnect/Shutdown   (all on one pipeline arbiter)
//!                     ▼  │                                                     │
//!                  StatusBoard ◀── HTTP: /readyz /api/v1 ──▶ Exposition ◀──────┘  /metrics
//! ```

mod pipeline;
mod server;

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use actix::{Addr, Arbiter};
use actix_web::dev::ServerHandle;
use prometheus::Registry;

use crate::actors::manager::SubscriptionManager;
use crate::messages::Shutdown;
use crate::nats::NatsSink;
use crate::settings::Settings;
use crate::status::{LinkState, StatusBoards};
use crate::stream::Hub;
use crate::telemetry::metrics::{SinkMetrics, StreamMetrics};
use crate::telemetry::{Exposition, Metrics};

/// How long the HTTP server may take to finish in-flight requests at shutdown.
pub(crate) const HTTP_SHUTDOWN: Duration = Duration::from_secs(3);

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
    /// The text behind `/metrics` (readable after the HTTP server stopped).
    pub exposition: Exposition,
    boards: StatusBoards,
    manager: Addr<SubscriptionManager>,
    server: ServerHandle,
    pipeline: Arbiter,
    stream: Option<Hub>,
    sink: Option<NatsSink>,
}

/// Starts everything on the current actix System: binds the HTTP port first (so a taken port
/// fails before any connection to Upbit), then the live stream, the pipeline, the HTTP server.
pub async fn start(settings: Settings) -> Result<AppHandle, StartError> {
    let (listener, http_addr) = bind(settings.http.listen)?;
    let registry = Registry::new();
    let metrics = Metrics::register(&registry).map_err(StartError::metrics)?;
    let stream = live_stream(&settings, &registry)?;
    let sink = nats_sink(&settings, &registry)?;
    let pipeline = pipeline::Pipeline::start(
        &settings,
        &registry,
        &metrics,
        stream.as_ref(),
        sink.as_ref().map(NatsSink::event_sink),
    )?;
    let board = sink.as_ref().map(|s| s.board().clone());
    let exposition = Exposition::new(registry.clone(), metrics.clone());
    let state = server::app_state(&settings, &pipeline, stream.clone(), board, &exposition);
    let server = server::serve(&settings, listener, &registry, state)?;
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
        exposition,
        boards: pipeline.boards,
        manager: pipeline.manager,
        server,
        pipeline: pipeline.arbiter,
        stream,
        sink,
    })
}

impl StartError {
    fn metrics(error: impl std::fmt::Display) -> Self {
        Self::Metrics(error.to_string())
    }
}

/// The HTTP listener and the address it really has (port 0 resolved).
fn bind(listen: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    let error = |source| StartError::Bind {
        addr: listen,
        source,
    };
    let listener = TcpListener::bind(listen).map_err(error)?;
    let addr = listener.local_addr().map_err(error)?;
    Ok((listener, addr))
}

/// The live stream's fan-out, fed by the metrics actor; `None` when `stream.enabled` is off
/// (its metrics are registered either way, so dashboards see zeros rather than nothing).
fn live_stream(settings: &Settings, registry: &Registry) -> Result<Option<Hub>, StartError> {
    let metrics = StreamMetrics::register(registry).map_err(StartError::metrics)?;
    let stream = &settings.stream;
    Ok(stream.enabled.then(|| {
        Hub::new(stream.max_consumers, stream.trade_queue, metrics)
            .with_max_per_address(stream.max_consumers_per_address)
    }))
}

/// The NATS JetStream sink when `nats.url` is set (its metrics are registered either way).
fn nats_sink(settings: &Settings, registry: &Registry) -> Result<Option<NatsSink>, StartError> {
    let metrics = SinkMetrics::register(registry).map_err(StartError::metrics)?;
    Ok(settings.nats.enabled().then(|| {
        let capacity = i64::try_from(settings.nats.buffer).unwrap_or(i64::MAX);
        metrics.buffer_capacity.set(capacity);
        NatsSink::start(&settings.nats, metrics)
    }))
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
        if let Some(sink) = &self.sink {
            // After the pipeline: the links' last events are in the buffer by now.
            sink.shutdown().await;
        }
        log::info!("stopped");
    }
}
