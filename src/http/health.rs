//! `/healthz` (the process serves HTTP; never depends on Upbit) and `/readyz` (connected,
//! subscribed, and a frame arrived within the idle timeout).

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::AppState;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.status.not_ready_reason(state.freshness) {
        None => HttpResponse::Ok().json(json!({ "status": "ready" })),
        Some(reason) => HttpResponse::ServiceUnavailable()
            .json(json!({ "status": "not_ready", "reason": reason })),
    }
}
