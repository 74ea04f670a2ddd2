//! `/api/v1/status`, `/api/v1/subscriptions` (GET, PUT, PATCH), `/api/v1/orderbook` (GET, PUT),
//! `/api/v1/reconnect`.

use std::time::Instant;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::auth::{read_json, Access};
use super::error::ApiError;
use super::AppState;
use crate::clock::unix_seconds;
use crate::messages::{
    ChangeOrderbook, ChangeSubscription, GetLastMessageTimes, GetSubscription, Reconnect,
    SubscriptionView,
};
use crate::subscription::{
    parse_doc, to_doc, ChangeError, OrderbookDoc, PatchDoc, SubscriptionChange, SubscriptionDoc,
};
use crate::text::escape;

/// `?revision=N` on PUT and PATCH: apply only if the subscription is still at revision N.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevisionQuery {
    revision: Option<u64>,
}

/// The query of a change, read only after authentication: a caller without the token learns
/// nothing about how the request would be evaluated.
fn revision(request: &HttpRequest) -> Result<Option<u64>, ApiError> {
    web::Query::<RevisionQuery>::from_query(request.query_string())
        .map(|query| query.revision)
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                format!("{}; accepted: revision", escape(&e.to_string(), 300)),
            )
        })
}

fn unavailable() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the connection actor is not running",
    )
}

fn change_error(error: ChangeError) -> ApiError {
    let status = match error {
        ChangeError::Invalid(_) | ChangeError::TooManyCodes { .. } => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        ChangeError::Conflict { .. } => StatusCode::CONFLICT,
        ChangeError::Persist(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, error.code(), error.to_string())
}

fn view_json(view: &SubscriptionView) -> serde_json::Value {
    json!({ "revision": view.revision, "subscription": to_doc(&view.subscription) })
}

/// Books a mutation against the API's own rate limit (429 beyond it).
fn admit_mutation(state: &AppState) -> Result<(), ApiError> {
    let now = Instant::now();
    let mut window = state.mutations.lock().unwrap_or_else(|p| p.into_inner());
    let at = window.earliest(now);
    if at > now {
        let secs = at.duration_since(now).as_secs().max(1);
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many changes; retry in {secs}s"),
        )
        .with_retry_after(secs));
    }
    window.reserve(now);
    Ok(())
}

pub async fn status(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let view = read_view(&request, &state).await?;
    let last = state
        .metrics_actor
        .send(GetLastMessageTimes)
        .await
        .map_err(|_| unavailable())?;
    let now = unix_seconds(std::time::SystemTime::now());
    let ages: serde_json::Map<String, serde_json::Value> = last
        .into_iter()
        .map(|(t, at)| (t, json!(((now - at).max(0.0) * 1000.0).round() / 1000.0)))
        .collect();
    let boards = state.status.all();
    let connection = boards[0].snapshot();
    let connections: Vec<serde_json::Value> = boards
        .iter()
        .enumerate()
        .map(|(index, board)| {
            let mut value = json!(board.snapshot());
            value["index"] = json!(index);
            value["codes"] = json!(view.connection_codes.get(index).copied().unwrap_or(0));
            value
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started.elapsed().as_secs_f64(),
        "upbit_url": state.upbit_url,
        "format": state.format.as_str(),
        "orderbook": {
            "depth": view.orderbook.depth,
            "level": view.orderbook.level,
        },
        "connection": connection,
        "connections": connections,
        "subscription": {
            "revision": view.revision,
            "desired": to_doc(&view.subscription),
            "resolved": to_doc(&view.resolved),
            "acknowledged": connection.acknowledged,
        },
        "last_message_age_seconds": ages,
    })))
}

/// A read route's start: the read policy, then the manager's current view.
async fn read_view(request: &HttpRequest, state: &AppState) -> Result<SubscriptionView, ApiError> {
    state.auth.check(request, Access::Read)?;
    state
        .manager
        .send(GetSubscription)
        .await
        .map_err(|_| unavailable())
}

pub async fn get_subscriptions(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(view_json(&read_view(&request, &state).await?)))
}

async fn apply(
    state: &AppState,
    change: SubscriptionChange,
    revision: Option<u64>,
) -> Result<HttpResponse, ApiError> {
    admit_mutation(state)?;
    let request = ChangeSubscription {
        change,
        expected_revision: revision,
    };
    let view = state
        .manager
        .send(request)
        .await
        .map_err(|_| unavailable())?
        .map_err(change_error)?;
    Ok(HttpResponse::Ok().json(view_json(&view)))
}

/// The shared start of every change: the token (before anything else is looked at), then
/// `?revision`, then the JSON body.
async fn authorized_change<T: serde::de::DeserializeOwned>(
    request: &HttpRequest,
    state: &AppState,
    payload: web::Payload,
) -> Result<(Option<u64>, T), ApiError> {
    state.auth.check(request, Access::Write)?;
    let revision = revision(request)?;
    let body = read_json(request, payload, state.max_body_bytes, state.body_timeout).await?;
    Ok((revision, body))
}

pub async fn put_subscriptions(
    request: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (revision, doc): (_, SubscriptionDoc) =
        authorized_change(&request, &state, payload).await?;
    let next = parse_doc(&doc).map_err(change_error)?;
    apply(&state, SubscriptionChange::Replace(next), revision).await
}

pub async fn patch_subscriptions(
    request: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (revision, patch): (_, PatchDoc) = authorized_change(&request, &state, payload).await?;
    let add = parse_doc(&patch.add);
    let remove = parse_doc(&patch.remove);
    let (add, remove) = match (add, remove) {
        (Ok(add), Ok(remove)) => (add, remove),
        (Err(ChangeError::Invalid(mut a)), Err(ChangeError::Invalid(b))) => {
            a.extend(b);
            return Err(change_error(ChangeError::Invalid(a)));
        }
        (Err(e), _) | (_, Err(e)) => return Err(change_error(e)),
    };
    apply(&state, SubscriptionChange::Patch { add, remove }, revision).await
}

/// `{"revision":N,"depth":5,"level":"10000"}`: the orderbook options and the revision they
/// belong to (`null`: Upbit's default).
fn orderbook_json(view: &SubscriptionView) -> serde_json::Value {
    json!({
        "revision": view.revision,
        "depth": view.orderbook.depth,
        "level": view.orderbook.level,
    })
}

pub async fn get_orderbook(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(orderbook_json(&read_view(&request, &state).await?)))
}

/// Sets the depth suffix and price grouping of every orderbook request, on every connection,
/// without reconnecting (one replace-all message each, within Upbit's request limits).
pub async fn put_orderbook(
    request: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (revision, doc): (_, OrderbookDoc) = authorized_change(&request, &state, payload).await?;
    let orderbook = doc.parse().map_err(change_error)?;
    admit_mutation(&state)?;
    let view = state
        .manager
        .send(ChangeOrderbook {
            orderbook,
            expected_revision: revision,
        })
        .await
        .map_err(|_| unavailable())?
        .map_err(change_error)?;
    Ok(HttpResponse::Ok().json(orderbook_json(&view)))
}

pub async fn reconnect(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.auth.check(&request, Access::Write)?;
    admit_mutation(&state)?;
    state
        .manager
        .send(Reconnect)
        .await
        .map_err(|_| unavailable())?;
    Ok(HttpResponse::Accepted()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({ "status": "reconnecting" })))
}
