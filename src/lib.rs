//! upbit-exporter: Upbit's real-time WebSocket feed as Prometheus metrics and an HTTP API.
pub mod actors;
pub mod app;
pub mod cli;
pub mod clock;
pub mod control;
pub mod duration;
pub mod frame_limit;
pub mod http;
pub mod messages;
pub mod secret;
pub mod settings;
pub mod simulator;
pub mod status;
pub mod stream;
pub mod telemetry;
pub mod text;
pub mod upbit;
pub mod view;

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = terminate.recv() => log::info!("received SIGTERM"),
                _ = tokio::signal::ctrl_c() => log::info!("received SIGINT"),
            }
        }
        Err(err) => {
            log::warn!("cannot listen for SIGTERM ({err}); stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
