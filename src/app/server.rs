//! The HTTP server: the state every handler reads, and actix-web serving `/metrics`, health,
//! the API and the live page on its own worker threads.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::{web, HttpServer};
use actix_web_prom::PrometheusMetricsBuilder;
use prometheus::Registry;

use super::pipeline::Pipeline;
use super::{StartError, HTTP_SHUTDOWN};
use crate::actors::pacing::RateWindow;
use crate::http::{self, AppState};
use crate::nats::SinkBoard;
use crate::settings::Settings;
use crate::stream::Hub;
use crate::telemetry::Exposition;

/// What every HTTP handler reads.
pub(super) fn app_state(
    settings: &Settings,
    pipeline: &Pipeline,
    stream: Option<Hub>,
    sink: Option<SinkBoard>,
    exposition: &Exposition,
) -> AppState {
    AppState {
        exposition: exposition.clone(),
        sink,
        status: pipeline.boards.clone(),
        freshness: settings.connection.idle_timeout,
        manager: pipeline.manager.clone(),
        metrics_actor: pipeline.metrics_actor.clone(),
        auth: http::auth::Auth {
            token: settings.control.token.clone(),
            protect_reads: settings.control.protect_reads,
        },
        max_body_bytes: settings.control.max_body_bytes,
        body_timeout: settings.control.body_timeout,
        mutations: Arc::new(parking_lot::Mutex::new(RateWindow::new(
            http::MUTATIONS_PER_SECOND,
            Duration::from_secs(1),
        ))),
        started: Instant::now(),
        upbit_url: settings.upbit.url.clone(),
        format: settings.upbit.format,
        live: http::live::LiveStream {
            hub: stream,
            max_codes: settings.control.max_codes,
        },
    }
}

/// Starts the HTTP server on `listener`: `/metrics`, health, the API and the live page, on
/// `http.workers` threads. actix-web-prom counts the requests into `registry`; `/metrics` itself
/// is a route of ours ([`Exposition`]).
pub(super) fn serve(
    settings: &Settings,
    listener: TcpListener,
    registry: &Registry,
    state: AppState,
) -> Result<ServerHandle, StartError> {
    let prometheus = PrometheusMetricsBuilder::new("upbit")
        .registry(registry.clone())
        .exclude("/healthz")
        .exclude("/readyz")
        .mask_unmatched_patterns("UNKNOWN")
        .build()
        .map_err(StartError::metrics)?;
    let workers = match settings.http.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let listen = settings.http.listen;
    let server = HttpServer::new(move || {
        actix_web::App::new()
            .wrap(prometheus.clone())
            .app_data(web::Data::new(state.clone()))
            .configure(http::configure)
            .default_service(web::to(http::error::not_found))
    })
    .workers(workers)
    // Lets the live stream shut down a connection whose peer stopped reading.
    .on_connect(crate::peer_socket::remember_socket)
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
    Ok(handle)
}
