//! The HTTP surface: `/metrics` (served by the actix-web-prom middleware on the service's
//! registry), `/healthz`, `/readyz`, and JSON errors for everything that does not match.

pub mod error;
pub mod health;

use std::time::Duration;

use actix::Addr;
use actix_web::web;

use crate::actors::connection::ConnectionActor;
use crate::actors::metrics::MetricsActor;
use crate::status::StatusBoard;

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    pub status: StatusBoard,
    /// `/readyz` needs a frame within this long (the connection's idle timeout).
    pub freshness: Duration,
    pub connection: Addr<ConnectionActor>,
    pub metrics_actor: Addr<MetricsActor>,
}

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz));
}
