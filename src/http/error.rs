//! JSON errors: every error the HTTP surface returns is `{"error":{"code":..,"message":..}}`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde_json::json;

/// An HTTP-facing error with a fixed code and a message for humans.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status)
            .json(json!({ "error": { "code": self.code, "message": self.message } }))
    }
}

/// The default service: unknown routes get a JSON 404 that names the routes that exist.
pub async fn not_found(request: HttpRequest) -> HttpResponse {
    let path: String = request
        .path()
        .chars()
        .take(100)
        .flat_map(char::escape_default)
        .collect();
    ApiError::not_found(format!(
        "no route for {} {path}; see /api/v1/openapi.json, /metrics, /healthz, /readyz",
        request.method()
    ))
    .error_response()
}
