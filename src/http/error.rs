//! JSON errors: every error the HTTP surface returns is `{"error":{"code":..,"message":..}}`.

use crate::text::escape;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error: `{"error":{"code":"missing_token","message":"…"}}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody<'a> {
    pub error: ErrorDetail<'a>,
}

/// What went wrong: a fixed code for programs, a message for humans.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail<'a> {
    pub code: &'a str,
    pub message: &'a str,
}

/// An HTTP-facing error with a fixed code and a message for humans.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header (429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 503: the actor a handler asks (`"metrics actor"`) is not running.
    pub fn unavailable(actor: &str) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("the {actor} is not running"),
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(seconds) = self.retry_after {
            response.insert_header((actix_web::http::header::RETRY_AFTER, seconds.to_string()));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header((actix_web::http::header::WWW_AUTHENTICATE, "Bearer"));
        }
        response.json(ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: &self.message,
            },
        })
    }
}

/// The default service: unknown routes get a JSON 404 that names the routes that exist.
pub async fn not_found(request: HttpRequest) -> HttpResponse {
    let path = escape(request.path(), 100);
    ApiError::not_found(format!(
        "no route for {} {path}; see /api/v1/openapi.json, /metrics, /healthz, /readyz",
        request.method()
    ))
    .error_response()
}

/// Query-string errors (`?revision=abc`) as JSON 400s.
pub fn query_error(
    error: actix_web::error::QueryPayloadError,
    _: &HttpRequest,
) -> actix_web::Error {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_query",
        escape(&error.to_string(), 300),
    )
    .into()
}

/// Path errors as JSON 400s.
pub fn path_error(error: actix_web::error::PathError, _: &HttpRequest) -> actix_web::Error {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_path",
        escape(&error.to_string(), 300),
    )
    .into()
}

/// A known route called with the wrong method.
pub fn method_not_allowed(request: HttpRequest, allow: &'static str) -> HttpResponse {
    let mut response = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed here (allowed: {allow}); see /api/v1/openapi.json",
            request.method()
        ),
    )
    .error_response();
    response.headers_mut().insert(
        actix_web::http::header::ALLOW,
        actix_web::http::header::HeaderValue::from_static(allow),
    );
    response
}

/// The 503 for a request the subscription manager could not answer (its mailbox is gone).
pub fn manager_gone<E>(_: E) -> ApiError {
    ApiError::unavailable("subscription manager")
}

/// The 503 for a request the metrics actor could not answer (its mailbox is gone).
pub fn metrics_gone<E>(_: E) -> ApiError {
    ApiError::unavailable("metrics actor")
}
