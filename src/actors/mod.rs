//! The actors: [`connection::ConnectionActor`] (the Upbit link, supervised),
//! [`decoder::DecoderActor`] (frames to typed messages) and [`metrics::MetricsActor`] (typed
//! messages to series), plus the connection's client and pacing helpers.

pub mod client;
pub mod connection;
pub mod decoder;
pub mod metrics;
pub mod pacing;
pub mod queue;
