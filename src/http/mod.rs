//! The HTTP surface: `/metrics` (served by the actix-web-prom middleware on the service's
//! registry), `/healthz`, `/readyz`, the control and data API under `/api/v1`, its OpenAPI
//! document, the live stream (`/api/v1/stream`, `/api/v1/events`) and its page (`/`), and JSON
//! errors for everything else.

pub mod auth;
pub mod control;
pub mod data;
pub mod error;
pub mod health;
pub mod live;
pub mod page;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::Addr;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::actors::manager::SubscriptionManager;
use crate::actors::metrics::MetricsActor;
use crate::actors::pacing::RateWindow;
use crate::status::StatusBoards;
use crate::upbit::Format;

/// The OpenAPI 3 document of every route.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Mutating API calls allowed per second (beyond: 429). Bursts far above what Upbit accepts
/// still coalesce into few subscription messages; this only bounds abuse.
pub const MUTATIONS_PER_SECOND: usize = 100;

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    /// Every connection's state (index 0 first).
    pub status: StatusBoards,
    /// `/readyz` needs a frame within this long (the connection's idle timeout).
    pub freshness: Duration,
    pub manager: Addr<SubscriptionManager>,
    pub metrics_actor: Addr<MetricsActor>,
    pub auth: auth::Auth,
    pub max_body_bytes: usize,
    /// `control.body_timeout`: longest a request body may take to arrive.
    pub body_timeout: std::time::Duration,
    pub mutations: Arc<Mutex<RateWindow>>,
    pub started: Instant,
    pub upbit_url: String,
    pub format: Format,
    /// The live stream's hub and limits.
    pub live: live::LiveStream,
}

/// Registers every route. Each documented path answers other methods with 405 and `Allow`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::QueryConfig::default().error_handler(error::query_error))
        .app_data(web::PathConfig::default().error_handler(error::path_error))
        .service(resource("/healthz", "GET").route(web::get().to(health::healthz)))
        .service(resource("/readyz", "GET").route(web::get().to(health::readyz)))
        // GET /metrics is answered by the actix-web-prom middleware before routing.
        .service(resource("/metrics", "GET"))
        .service(resource("/api/v1/openapi.json", "GET").route(web::get().to(openapi)))
        .service(resource("/api/v1/status", "GET").route(web::get().to(control::status)))
        .service(
            resource("/api/v1/subscriptions", "GET, PUT, PATCH")
                .route(web::get().to(control::get_subscriptions))
                .route(web::put().to(control::put_subscriptions))
                .route(web::patch().to(control::patch_subscriptions)),
        )
        .service(
            resource("/api/v1/orderbook", "GET, PUT")
                .route(web::get().to(control::get_orderbook))
                .route(web::put().to(control::put_orderbook)),
        )
        .service(resource("/api/v1/reconnect", "POST").route(web::post().to(control::reconnect)))
        .service(resource("/api/v1/markets", "GET").route(web::get().to(data::markets)))
        .service(resource("/api/v1/markets/{code}", "GET").route(web::get().to(data::market)))
        .service(resource("/api/v1/stream", "GET").route(web::get().to(live::websocket)))
        .service(resource("/api/v1/events", "GET").route(web::get().to(live::events)))
        .service(resource("/", "GET").route(web::get().to(page::index)))
        .service(resource(page::SCRIPT_PATH, "GET").route(web::get().to(page::script)))
        .service(resource(page::STYLE_PATH, "GET").route(web::get().to(page::style)));
}

/// A resource whose unmatched methods get 405 with `Allow: allow`.
fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move |request: HttpRequest| async move {
        error::method_not_allowed(request, allow)
    }))
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(OPENAPI)
}
