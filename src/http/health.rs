//! `/healthz` (the process serves HTTP; never depends on Upbit), `/readyz` (connected,
//! subscribed, and a frame arrived within the idle timeout; with `nats.required`, the NATS sink
//! publishing too) and `/metrics`, what Prometheus probes.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;

/// `{"status":"ok"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: Alive,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Alive {
    Ok,
}

/// `{"status":"ready"}`, or `{"status":"not_ready","reason":"…"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    pub status: Ready,
    /// Why the service is not ready; absent when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Ready {
    Ready,
    NotReady,
}

/// Liveness: the process serves HTTP (never depends on Upbit).
#[utoipa::path(get, tag = "health", path = "/healthz", responses((status = 200, description = "alive", body = Health)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: Alive::Ok })
}

/// Readiness: connected, subscribed, and a frame within connection.idle_timeout; and, when
/// nats.required, the NATS sink connected with a usable stream.
#[utoipa::path(get, tag = "health", path = "/readyz", responses(
    (status = 200, description = "ready", body = Readiness),
    (status = 503, description = "not ready, with a reason", body = Readiness),
))]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let sink = || state.sink.as_ref().and_then(|s| s.not_ready_reason());
    match state.status.not_ready_reason(state.freshness).or_else(sink) {
        None => HttpResponse::Ok().json(Readiness {
            status: Ready::Ready,
            reason: None,
        }),
        Some(reason) => HttpResponse::ServiceUnavailable().json(Readiness {
            status: Ready::NotReady,
            reason: Some(reason),
        }),
    }
}

/// Prometheus metrics (text exposition format 0.0.4).
#[utoipa::path(get, tag = "meta", path = "/metrics", responses(
    (status = 200, description = "metrics", body = String, content_type = "text/plain"),
))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(crate::telemetry::exposition::CONTENT_TYPE)
        .body(state.exposition.render())
}
