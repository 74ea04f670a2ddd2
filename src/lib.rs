//! upbit-exporter: Upbit's real-time WebSocket feed as Prometheus metrics and an HTTP API.
pub mod duration;
pub mod settings;
pub mod upbit;
