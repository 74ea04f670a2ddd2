//! `/api/v1/subscriptions` (GET, PUT, PATCH), `/api/v1/orderbook` (GET, PUT),
//! `/api/v1/reconnect`.

use std::time::Instant;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{read_json, Reader, Writer};
use super::error::{manager_gone, ApiError};
use super::openapi::{
    ChangeRefused, OrderbookChange, ReadRefused, SubscriptionPatch, WriteRefused,
};
use super::AppState;
use crate::messages::{
    ChangeOrderbook, ChangeSubscription, GetSubscription, Reconnect, SubscriptionView,
};
use crate::subscription::{
    parse_doc, to_doc, ChangeError, OrderbookDoc, PatchDoc, SubscriptionChange, SubscriptionDoc,
};
use crate::text::escape;

/// `?revision=N` on PUT and PATCH: apply only if the subscription is still at revision N.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RevisionQuery {
    /// Apply only if the subscription is still at this revision (409 otherwise).
    #[param(minimum = 0, maximum = 9007199254740991_u64)]
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

/// Books a mutation against the API's own rate limit (429 beyond it).
fn admit_mutation(state: &AppState) -> Result<(), ApiError> {
    let now = Instant::now();
    let mut window = state.mutations.lock();
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

// --- Response bodies ------------------------------------------------------------------------

/// The desired subscription and its revision.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SubscriptionView)]
pub struct SubscriptionBody {
    /// Starts at 0; +1 per accepted change (subscription or orderbook options).
    pub revision: u64,
    #[schema(value_type = super::openapi::Subscription)]
    pub subscription: SubscriptionDoc,
}

impl From<&SubscriptionView> for SubscriptionBody {
    fn from(view: &SubscriptionView) -> Self {
        Self {
            revision: view.revision,
            subscription: to_doc(&view.subscription),
        }
    }
}

/// `{"revision":N,"depth":5,"level":"10000"}`: the orderbook options and the revision they
/// belong to (shared with the subscription).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Orderbook)]
pub struct OrderbookBody {
    /// The desired state's revision (shared with the subscription).
    pub revision: u64,
    /// Units per orderbook, 1, 5, 15 or 30 (the code suffix `KRW-BTC.N`); `null`: none, Upbit's
    /// default of 30.
    #[schema(required = true)]
    pub depth: Option<u8>,
    /// Price grouping unit (KRW markets), sent as a numeric string; `null`: none.
    #[schema(required = true)]
    pub level: Option<String>,
}

impl From<&SubscriptionView> for OrderbookBody {
    fn from(view: &SubscriptionView) -> Self {
        Self {
            revision: view.revision,
            depth: view.orderbook.depth,
            level: view.orderbook.level.clone(),
        }
    }
}

/// `POST /api/v1/reconnect`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Reconnecting {
    /// Always `reconnecting`.
    #[schema(example = "reconnecting")]
    pub status: &'static str,
}

// --- Handlers -------------------------------------------------------------------------------

/// The desired subscription and its revision.
#[utoipa::path(get, tag = "control", path = "/api/v1/subscriptions", responses(
    (status = 200, description = "subscription", body = SubscriptionBody),
    ReadRefused,
))]
pub async fn get_subscriptions(
    _: Reader,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let view = state
        .manager
        .send(GetSubscription)
        .await
        .map_err(manager_gone)?;
    Ok(HttpResponse::Ok().json(SubscriptionBody::from(&view)))
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
        .map_err(manager_gone)?
        .map_err(change_error)?;
    Ok(HttpResponse::Ok().json(SubscriptionBody::from(&view)))
}

/// The shared start of every change, after the token ([`Writer`]): `?revision`, then the JSON
/// body.
async fn change_request<T: serde::de::DeserializeOwned>(
    request: &HttpRequest,
    state: &AppState,
    payload: web::Payload,
) -> Result<(Option<u64>, T), ApiError> {
    let revision = revision(request)?;
    let body = read_json(request, payload, state.max_body_bytes, state.body_timeout).await?;
    Ok((revision, body))
}

/// Replace the subscription.
///
/// Reaches Upbit as one replace-all message on the live connection (coalesced, within Upbit's
/// request limits). An empty object idles the connection.
#[utoipa::path(put, tag = "control", path = "/api/v1/subscriptions",
    params(RevisionQuery),
    request_body(content = super::openapi::Subscription, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the new subscription", body = SubscriptionBody),
        (status = 422, description = "unknown type, malformed code, unknown field, or more than control.max_codes codes", body = super::error::ErrorBody),
        WriteRefused,
        ChangeRefused,
    ),
)]
pub async fn put_subscriptions(
    _: Writer,
    request: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (revision, doc): (_, SubscriptionDoc) = change_request(&request, &state, payload).await?;
    let next = parse_doc(&doc).map_err(change_error)?;
    apply(&state, SubscriptionChange::Replace(next), revision).await
}

/// Add and remove codes per type.
#[utoipa::path(patch, tag = "control", path = "/api/v1/subscriptions",
    params(RevisionQuery),
    request_body(content = SubscriptionPatch, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the new subscription", body = SubscriptionBody),
        (status = 422, description = "unknown type, malformed code, unknown field, or more than control.max_codes codes", body = super::error::ErrorBody),
        WriteRefused,
        ChangeRefused,
    ),
)]
pub async fn patch_subscriptions(
    _: Writer,
    request: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (revision, patch): (_, PatchDoc) = change_request(&request, &state, payload).await?;
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

/// The orderbook options every connection sends (depth suffix, price grouping) and the revision.
#[utoipa::path(get, tag = "control", path = "/api/v1/orderbook", responses(
    (status = 200, description = "the orderbook options", body = OrderbookBody),
    ReadRefused,
))]
pub async fn get_orderbook(
    _: Reader,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let view = state
        .manager
        .send(GetSubscription)
        .await
        .map_err(manager_gone)?;
    Ok(HttpResponse::Ok().json(OrderbookBody::from(&view)))
}

/// Set the orderbook depth suffix and price grouping on every connection.
///
/// Reaches Upbit as one replace-all message per connection on the live link (coalesced, within
/// Upbit's request limits), without reconnecting. Bumps the revision; persisted in the state file.
#[utoipa::path(put, tag = "control", path = "/api/v1/orderbook",
    params(RevisionQuery),
    request_body(content = OrderbookChange, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the orderbook options now in force", body = OrderbookBody),
        (status = 422, description = "depth not one of 1, 5, 15, 30, a level that is not a non-negative number, or an unknown field", body = super::error::ErrorBody),
        WriteRefused,
        ChangeRefused,
    ),
)]
pub async fn put_orderbook(
    _: Writer,
    request: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (revision, doc): (_, OrderbookDoc) = change_request(&request, &state, payload).await?;
    let orderbook = doc.parse().map_err(change_error)?;
    admit_mutation(&state)?;
    let view = state
        .manager
        .send(ChangeOrderbook {
            orderbook,
            expected_revision: revision,
        })
        .await
        .map_err(manager_gone)?
        .map_err(change_error)?;
    Ok(HttpResponse::Ok().json(OrderbookBody::from(&view)))
}

/// Drop the connection; it is re-established at once.
#[utoipa::path(post, tag = "control", path = "/api/v1/reconnect",
    security(("bearer" = [])),
    responses(
        (status = 202, description = "reconnecting", body = Reconnecting),
        WriteRefused,
    ),
)]
pub async fn reconnect(_: Writer, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    admit_mutation(&state)?;
    state.manager.send(Reconnect).await.map_err(manager_gone)?;
    Ok(HttpResponse::Accepted()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(Reconnecting {
            status: "reconnecting",
        }))
}
