//! Stopping on a signal: the service and the simulator both stop cleanly on SIGTERM or Ctrl-C.

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
