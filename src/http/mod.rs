//! The HTTP surface: `/metrics` ([`crate::telemetry::Exposition`]; actix-web-prom's middleware
//! counts every request), `/healthz`, `/readyz`, the control and data API under `/api/v1`, its OpenAPI
//! document (generated from the handlers and their response types: `openapi.rs`), the live
//! stream (`/api/v1/stream`, `/api/v1/events`) and its page (`/`), and JSON errors for
//! everything else.
//!
//! Handlers answer typed bodies (`Serialize` + `utoipa::ToSchema`) or an [`error::ApiError`];
//! a route's access (read or write) is its first extractor ([`auth::Reader`], [`auth::Writer`]).

pub mod auth;
pub mod control;
pub mod data;
pub mod error;
pub mod health;
pub mod live;
pub mod openapi;
pub mod page;
pub mod status;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use actix_web::{web, HttpRequest};

use crate::actors::manager::SubscriptionManager;
use crate::actors::metrics::MetricsActor;
use crate::actors::pacing::RateWindow;
use crate::status::StatusBoards;
use crate::upbit::Format;

/// Mutating API calls allowed per second (beyond: 429). Bursts far above what Upbit accepts
/// still coalesce into few subscription messages; this only bounds abuse.
pub const MUTATIONS_PER_SECOND: usize = 100;

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The text behind `/metrics`.
    pub exposition: crate::telemetry::Exposition,
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
    pub mutations: Arc<parking_lot::Mutex<RateWindow>>,
    pub started: Instant,
    pub upbit_url: String,
    pub format: Format,
    /// The live stream's hub and limits.
    pub live: live::LiveStream,
    /// The NATS sink's state, when `nats.url` is set.
    pub sink: Option<crate::nats::SinkBoard>,
}

/// One served path: the methods it answers (its `Allow` header) and its handlers.
struct Route {
    path: &'static str,
    allow: &'static str,
    handlers: fn(actix_web::Resource) -> actix_web::Resource,
}

const ROUTES: [Route; 15] = [
    Route {
        path: "/healthz",
        allow: "GET",
        handlers: |r| r.route(web::get().to(health::healthz)),
    },
    Route {
        path: "/readyz",
        allow: "GET",
        handlers: |r| r.route(web::get().to(health::readyz)),
    },
    Route {
        path: "/metrics",
        allow: "GET",
        handlers: |r| r.route(web::get().to(health::metrics)),
    },
    Route {
        path: "/api/v1/openapi.json",
        allow: "GET",
        handlers: |r| r.route(web::get().to(openapi::openapi_json)),
    },
    Route {
        path: "/api/v1/status",
        allow: "GET",
        handlers: |r| r.route(web::get().to(status::status)),
    },
    Route {
        path: "/api/v1/subscriptions",
        allow: "GET, PUT, PATCH",
        handlers: |r| {
            r.route(web::get().to(control::get_subscriptions))
                .route(web::put().to(control::put_subscriptions))
                .route(web::patch().to(control::patch_subscriptions))
        },
    },
    Route {
        path: "/api/v1/orderbook",
        allow: "GET, PUT",
        handlers: |r| {
            r.route(web::get().to(control::get_orderbook))
                .route(web::put().to(control::put_orderbook))
        },
    },
    Route {
        path: "/api/v1/reconnect",
        allow: "POST",
        handlers: |r| r.route(web::post().to(control::reconnect)),
    },
    Route {
        path: "/api/v1/markets",
        allow: "GET",
        handlers: |r| r.route(web::get().to(data::markets)),
    },
    Route {
        path: "/api/v1/markets/{code}",
        allow: "GET",
        handlers: |r| r.route(web::get().to(data::market)),
    },
    Route {
        path: "/api/v1/stream",
        allow: "GET",
        handlers: |r| r.route(web::get().to(live::websocket)),
    },
    Route {
        path: "/api/v1/events",
        allow: "GET",
        handlers: |r| r.route(web::get().to(live::events)),
    },
    Route {
        path: "/",
        allow: "GET",
        handlers: |r| r.route(web::get().to(page::index)),
    },
    Route {
        path: page::SCRIPT_PATH,
        allow: "GET",
        handlers: |r| r.route(web::get().to(page::script)),
    },
    Route {
        path: page::STYLE_PATH,
        allow: "GET",
        handlers: |r| r.route(web::get().to(page::style)),
    },
];

/// Every path the app serves, with the methods it answers there (`"GET, PUT"`).
pub fn routes() -> impl Iterator<Item = (&'static str, &'static str)> {
    ROUTES.iter().map(|route| (route.path, route.allow))
}

/// Registers every route (and builds the OpenAPI document, once). Each path answers other
/// methods with 405 and `Allow`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    std::sync::LazyLock::force(&openapi::DOCUMENT);
    cfg.app_data(web::QueryConfig::default().error_handler(error::query_error))
        .app_data(web::PathConfig::default().error_handler(error::path_error));
    for route in &ROUTES {
        cfg.service((route.handlers)(resource(route.path, route.allow)));
    }
}

/// A resource whose unmatched methods get 405 with `Allow: allow`.
fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move |request: HttpRequest| async move {
        error::method_not_allowed(request, allow)
    }))
}
