//! `/api/v1/status`: the connections' state, the subscription as set, as asked of Upbit and as
//! Upbit acknowledged it, message ages, uptime and version.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Reader;
use super::error::{manager_gone, metrics_gone, ApiError};
use super::openapi::ReadRefused;
use super::AppState;
use crate::clock::unix_seconds;
use crate::messages::{GetLastMessageTimes, GetSubscription};
use crate::nats::SinkStatus;
use crate::status::ConnectionStatus;
use crate::subscription::{to_doc, SubscriptionDoc};
use crate::upbit::model::ListedSubscription;
use crate::upbit::request::OrderbookOptions;

/// The orderbook options every connection sends.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderbookSettings {
    /// Units per orderbook, 1, 5, 15 or 30 (the code suffix `KRW-BTC.N`); `null`: none, Upbit's
    /// default of 30.
    #[schema(required = true)]
    pub depth: Option<u8>,
    /// Price grouping unit (KRW markets), sent as a numeric string; `null`: none.
    #[schema(required = true)]
    pub level: Option<String>,
}

impl From<&OrderbookOptions> for OrderbookSettings {
    fn from(options: &OrderbookOptions) -> Self {
        Self {
            depth: options.depth,
            level: options.level.clone(),
        }
    }
}

/// One connection in use: its state, index and share of the subscription.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionEntry {
    #[serde(flatten)]
    pub status: ConnectionStatus,
    /// 0 unless the subscription is spread over several connections.
    pub index: usize,
    /// Codes this connection carries.
    pub codes: usize,
}

/// This replica's shard (`[shard]`): which part of the resolved subscription it takes.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShardStatus {
    /// 0 to `count - 1`.
    pub index: usize,
    /// Shards in the deployment; 1: unsharded, this replica takes every code.
    pub count: usize,
    /// Codes of the resolved subscription this shard takes (before `control.max_codes`).
    pub codes: usize,
    /// Codes of the resolved subscription left to the other shards.
    pub codes_elsewhere: usize,
}

/// The subscription as set, as asked of Upbit, and as Upbit acknowledged it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionState {
    pub revision: u64,
    #[schema(value_type = super::openapi::Subscription)]
    pub desired: SubscriptionDoc,
    /// What Upbit is asked for: patterns such as `KRW-*` resolved against the market list, cut
    /// to this replica's shard, bounded by `control.max_codes`.
    #[schema(value_type = super::openapi::Subscription)]
    pub resolved: SubscriptionDoc,
    /// Upbit's LIST_SUBSCRIPTIONS answer to connection 0 (`type`, `codes`, `level` when Upbit
    /// lists one), in DEFAULT names.
    #[schema(value_type = Option<Vec<Object>>, required = true)]
    pub acknowledged: Option<Vec<ListedSubscription>>,
}

/// Connection state, subscription (desired and acknowledged by Upbit), message ages, uptime,
/// version.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Status)]
pub struct StatusBody {
    pub version: &'static str,
    pub uptime_seconds: f64,
    pub upbit_url: String,
    /// The Upbit message format in use (`upbit.format`).
    pub format: &'static str,
    /// Orderbook options sent to Upbit (`upbit.orderbook_depth`, `upbit.orderbook_level`).
    pub orderbook: OrderbookSettings,
    /// Connection 0 (the only one unless `connection.max_codes_per_connection` spreads the
    /// subscription).
    pub connection: ConnectionStatus,
    /// Every connection in use, by index.
    pub connections: Vec<ConnectionEntry>,
    pub subscription: SubscriptionState,
    /// This replica's shard and its share of the subscription.
    pub shard: ShardStatus,
    /// Seconds since the last message, per data type.
    pub last_message_age_seconds: BTreeMap<String, f64>,
    /// The NATS JetStream sink; `null` when `nats.url` is not set.
    #[schema(required = true)]
    pub nats: Option<SinkStatus>,
}

/// Connection state, subscription (desired and acknowledged by Upbit), message ages, uptime, version.
#[utoipa::path(get, tag = "control", path = "/api/v1/status", responses(
    (status = 200, description = "status", body = StatusBody),
    ReadRefused,
))]
pub async fn status(_: Reader, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let view = state
        .manager
        .send(GetSubscription)
        .await
        .map_err(manager_gone)?;
    let last = state
        .metrics_actor
        .send(GetLastMessageTimes)
        .await
        .map_err(metrics_gone)?;
    let now = unix_seconds(std::time::SystemTime::now());
    let ages = last
        .into_iter()
        .map(|(t, at)| (t, ((now - at).max(0.0) * 1000.0).round() / 1000.0))
        .collect();
    let boards = state.status.all();
    let connection = boards[0].snapshot();
    let connections = boards
        .iter()
        .enumerate()
        .map(|(index, board)| ConnectionEntry {
            status: board.snapshot(),
            index,
            codes: view.connection_codes.get(index).copied().unwrap_or(0),
        })
        .collect();
    Ok(HttpResponse::Ok().json(StatusBody {
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: state.started.elapsed().as_secs_f64(),
        upbit_url: state.upbit_url.clone(),
        format: state.format.as_str(),
        orderbook: OrderbookSettings::from(&view.orderbook),
        subscription: SubscriptionState {
            revision: view.revision,
            desired: to_doc(&view.subscription),
            resolved: to_doc(&view.resolved),
            acknowledged: connection.acknowledged.clone(),
        },
        shard: ShardStatus {
            index: view.shard.shard.index,
            count: view.shard.shard.count,
            codes: view.shard.codes,
            codes_elsewhere: view.shard.codes_elsewhere,
        },
        connection,
        connections,
        last_message_age_seconds: ages,
        nats: state.sink.as_ref().map(|s| s.snapshot()),
    }))
}
