//! The actors: [`manager::SubscriptionManager`] (what to watch: patterns, the market list, and
//! which connection carries which codes), [`connection::ConnectionActor`] (one Upbit link each,
//! supervised), [`decoder::DecoderActor`] (frames to typed messages; not supervised, its module
//! doc says why) and [`metrics::MetricsActor`] (typed messages to series), plus the client and
//! pacing helpers and [`queue`], the bound between two stages and the one hand-over into it.

pub mod client;
pub mod connection;
pub mod decoder;
pub mod manager;
pub mod metrics;
pub mod pacing;
pub mod queue;
