//! The OpenAPI 3.1 document of every route, generated from the handlers' `#[utoipa::path]`
//! attributes and the response types' `ToSchema` derives, built once and served at
//! `/api/v1/openapi.json`.
//!
//! What serde alone cannot say is written here, next to the code that enforces it: the data
//! types a subscription may name ([`Subscription`], from [`DataType::ALL`]), the shape of a
//! market code, the accepted orderbook depths ([`OrderbookOptions::DEPTHS`]) and levels. The
//! request bodies are `control::{SubscriptionDoc, PatchDoc, OrderbookDoc}`, which validate
//! beyond their serde shape; [`SubscriptionPatch`] and [`OrderbookChange`] describe them and a
//! test below reads their examples with the real types.

use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::json;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::RefOr;
use utoipa::{IntoResponses, Modify, OpenApi, PartialSchema, ToSchema};

use super::error::ErrorBody;
use crate::subscription::{SubscriptionDoc, MAX_LEVEL};
use crate::upbit::request::OrderbookOptions;
use crate::upbit::types::MAX_CODE_LEN;
use crate::upbit::DataType;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "upbit-exporter",
        description = "Upbit real-time feed as Prometheus metrics, with a control and data API. \
Mutating routes need `Authorization: Bearer <token>` (control.token_file or \
UPBIT_EXPORTER__CONTROL__TOKEN); without a configured token they answer 403. Every error is \
`{\"error\":{\"code\":...,\"message\":...}}`."
    ),
    servers((url = "/")),
    paths(
        super::health::healthz,
        super::health::readyz,
        super::health::metrics,
        openapi_json,
        super::status::status,
        super::control::get_subscriptions,
        super::control::put_subscriptions,
        super::control::patch_subscriptions,
        super::control::get_orderbook,
        super::control::put_orderbook,
        super::control::reconnect,
        super::data::markets,
        super::data::market,
        super::live::websocket,
        super::live::events,
        super::page::index,
        super::page::script,
        super::page::style,
    ),
    modifiers(&BearerScheme),
)]
struct ApiDoc;

/// The document as served: built on first use (`configure` forces it at start), then shared.
pub static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    // An `OpenApi` value is plain data (strings, maps, JSON values): serialising it cannot fail.
    serde_json::to_string(&ApiDoc::openapi()).expect("the OpenAPI document serialises")
});

/// Adds the `bearer` security scheme the mutating routes name.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// This document.
#[utoipa::path(get, tag = "meta", path = "/api/v1/openapi.json", responses(
    (status = 200, description = "OpenAPI 3.1 document", body = Object),
))]
pub async fn openapi_json() -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .content_type("application/json")
        .body(DOCUMENT.as_str())
}

// --- Responses shared by several routes -----------------------------------------------------

/// What a read route may refuse with.
#[derive(IntoResponses)]
pub enum ReadRefused {
    #[response(
        status = 401,
        description = "token required (control.protect_reads) and missing or invalid"
    )]
    Unauthorized(ErrorBody<'static>),
    #[response(status = 503, description = "an actor is not running")]
    Unavailable(ErrorBody<'static>),
}

/// What every mutating route may refuse with.
#[derive(IntoResponses)]
pub enum WriteRefused {
    #[response(status = 401, description = "missing or invalid bearer token")]
    Unauthorized(ErrorBody<'static>),
    #[response(
        status = 403,
        description = "no control token configured: mutating routes disabled"
    )]
    Forbidden(ErrorBody<'static>),
    #[response(
        status = 429,
        description = "too many changes per second (Retry-After)",
        headers(("Retry-After" = u64, description = "seconds to wait"))
    )]
    TooManyRequests(ErrorBody<'static>),
    #[response(status = 503, description = "an actor is not running")]
    Unavailable(ErrorBody<'static>),
}

/// What a change with a body and `?revision` may refuse with, beyond [`WriteRefused`] and its
/// own 422.
#[derive(IntoResponses)]
pub enum ChangeRefused {
    #[response(status = 400, description = "malformed JSON or query")]
    BadRequest(ErrorBody<'static>),
    #[response(
        status = 408,
        description = "the body did not arrive within control.body_timeout (code body_timeout)"
    )]
    RequestTimeout(ErrorBody<'static>),
    #[response(status = 409, description = "stale ?revision")]
    Conflict(ErrorBody<'static>),
    #[response(status = 413, description = "body larger than control.max_body_bytes")]
    PayloadTooLarge(ErrorBody<'static>),
    #[response(status = 415, description = "Content-Type is not application/json")]
    UnsupportedMediaType(ErrorBody<'static>),
    #[response(
        status = 500,
        description = "the state file could not be written; nothing changed"
    )]
    Persist(ErrorBody<'static>),
}

/// What the live stream's routes may refuse with.
#[derive(IntoResponses)]
pub enum StreamRefused {
    #[response(
        status = 400,
        description = "malformed query, unknown type or malformed code"
    )]
    BadRequest(ErrorBody<'static>),
    #[response(
        status = 401,
        description = "token required (control.protect_reads) and missing or invalid"
    )]
    Unauthorized(ErrorBody<'static>),
    #[response(
        status = 404,
        description = "the live stream is disabled (stream.enabled = false)"
    )]
    Disabled(ErrorBody<'static>),
    #[response(
        status = 503,
        description = "stream.max_consumers consumers are connected (too_many_consumers), \
stream.max_consumers_per_address from this address (too_many_consumers_from_address), or the \
service is stopping; retry after Retry-After seconds",
        headers(("Retry-After" = u64, description = "seconds to wait"))
    )]
    Full(ErrorBody<'static>),
}

// --- Request bodies -------------------------------------------------------------------------

/// A subscription as JSON (`control::SubscriptionDoc`): data type → market codes or patterns.
///
/// serde reads any map; the handlers refuse unknown types (422), so the document names the
/// known ones, from [`DataType::ALL`].
pub struct Subscription;

impl PartialSchema for Subscription {
    fn schema() -> RefOr<Schema> {
        let mut object = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "Data type (ticker, trade, orderbook, candle.1s ... candle.240m) to upper-case \
                 market codes.",
            ))
            .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)))
            .examples([json!({"ticker": ["KRW-BTC", "KRW-ETH"], "trade": ["KRW-BTC"]})]);
        for data_type in DataType::ALL {
            object = object.property(data_type.as_str(), Codes::name_ref());
        }
        object.into()
    }
}

impl ToSchema for Subscription {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((Codes::name().into(), Codes::schema()));
    }
}

/// The codes of one data type.
struct Codes;

impl Codes {
    fn name_ref() -> RefOr<Schema> {
        RefOr::Ref(utoipa::openapi::Ref::from_schema_name(Self::name()))
    }
}

impl PartialSchema for Codes {
    fn schema() -> RefOr<Schema> {
        let code = ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(r"^([A-Z]+-[A-Z0-9]+|[A-Z]{1,10}-\*|\*)$"))
            .max_length(Some(MAX_CODE_LEN))
            .description(Some(
                "A market code (QUOTE-BASE) or a pattern resolved against the market list: * or \
                 QUOTE-* such as KRW-*.",
            ));
        ArrayBuilder::new().items(code).into()
    }
}

impl ToSchema for Codes {}

// The shape of `control::PatchDoc`.
/// `PATCH /api/v1/subscriptions`: codes to add and remove, per type.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"add": {"trade": ["KRW-DOGE"]}, "remove": {"ticker": ["KRW-XRP"]}})))]
pub struct SubscriptionPatch {
    #[serde(default)]
    #[schema(value_type = Subscription)]
    pub add: SubscriptionDoc,
    #[serde(default)]
    #[schema(value_type = Subscription)]
    pub remove: SubscriptionDoc,
}

// The shape of `control::OrderbookDoc`.
/// `PUT /api/v1/orderbook`: `{"depth":5,"level":"10000"}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"depth": 15, "level": "10000"})))]
pub struct OrderbookChange {
    // Described in `depth_schema`.
    #[serde(default)]
    #[schema(schema_with = depth_schema)]
    pub depth: Option<i64>,
    // Described in `level_schema`.
    #[serde(default)]
    #[schema(schema_with = level_schema)]
    pub level: Option<serde_json::Value>,
}

/// One of [`OrderbookOptions::DEPTHS`] or `null`.
fn depth_schema() -> Schema {
    let values = OrderbookOptions::DEPTHS
        .iter()
        .map(|d| json!(d))
        .chain([serde_json::Value::Null]);
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
        .enum_values(Some(values))
        .description(Some(
            "1, 5, 15 or 30; null or absent: Upbit's default (30). Other values are refused \
             (422): Upbit would silently send 30.",
        ))
        .into()
}

/// A decimal string, a whole number up to [`MAX_LEVEL`], or `null`.
fn level_schema() -> Schema {
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(r"^[0-9]+(\.[0-9]+)?$"))
                .min_length(Some(1))
                .max_length(Some(20)),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0))
                .maximum(Some(MAX_LEVEL as f64)),
        )
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .description(Some(
            "Price grouping unit as a decimal string (\"10000\", \"0.5\") or a whole number; \
             null or absent: none.",
        ))
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subscription::{OrderbookDoc, PatchDoc};

    fn schema_example<T: ToSchema>() -> serde_json::Value {
        let RefOr::T(schema) = T::schema() else {
            panic!("{} is a reference", T::name())
        };
        let schema = serde_json::to_value(schema).unwrap();
        schema["examples"][0].clone()
    }

    #[test]
    fn examples_of_request_bodies_are_read_by_the_real_types() {
        let patch = schema_example::<SubscriptionPatch>();
        let real: PatchDoc = serde_json::from_value(patch.clone()).unwrap();
        assert_eq!(real.add["trade"], ["KRW-DOGE"]);
        crate::subscription::parse_doc(&real.remove).unwrap();
        let change = schema_example::<OrderbookChange>();
        let real: OrderbookDoc = serde_json::from_value(change).unwrap();
        assert!(real.parse().is_ok());
        let subscription = schema_example::<Subscription>();
        let real: SubscriptionDoc = serde_json::from_value(subscription).unwrap();
        crate::subscription::parse_doc(&real).unwrap();
    }

    #[test]
    fn the_subscription_schema_names_every_data_type() {
        let schema = serde_json::to_value(Subscription::schema()).unwrap();
        for data_type in DataType::ALL {
            assert!(
                schema["properties"][data_type.as_str()].is_object(),
                "{data_type:?}"
            );
        }
        assert_eq!(schema["additionalProperties"], false);
    }
}
