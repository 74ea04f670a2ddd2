//! The NATS connection as `[nats]` asks for it: servers, credentials (from files only), TLS,
//! timeouts and the reconnection backoff. The client reconnects by itself once connected; its
//! events wake the sender, which reads the connection state.

use std::sync::Arc;
use std::time::Duration;

use async_nats::{Client, ConnectOptions, Event};
use tokio::sync::Notify;

use super::status::SinkBoard;
use crate::settings::{NatsSecret, NatsSettings};

/// First delay between reconnection attempts; doubles up to `nats.reconnect_delay_max`.
const RECONNECT_DELAY_MIN: Duration = Duration::from_millis(100);

/// The delay before reconnection attempt `attempts` (1 for the first retry).
pub fn reconnect_delay(attempts: usize, max: Duration) -> Duration {
    let doublings = attempts.saturating_sub(1).min(20) as u32;
    RECONNECT_DELAY_MIN.saturating_mul(1 << doublings).min(max)
}

/// Starts connecting; returns at once (the first connection is retried in the background like
/// every later one). `changed` is woken on every connection event; errors the server or the
/// client report go to the board's `last_error`.
pub async fn connect(
    settings: &NatsSettings,
    changed: Arc<Notify>,
    board: SinkBoard,
) -> Result<Client, String> {
    let mut options = match &settings.credentials_file {
        Some(path) => ConnectOptions::with_credentials_file(path.clone())
            .await
            .map_err(|e| format!("cannot read nats.credentials_file {}: {e}", path.display()))?,
        None => ConnectOptions::new(),
    };
    options = match &settings.secret {
        Some(NatsSecret::NkeySeed(seed)) => options.nkey(seed.expose().to_owned()),
        Some(NatsSecret::Token(token)) => options.token(token.expose().to_owned()),
        None => options,
    };
    if let Some(ca) = &settings.tls_ca_file {
        options = options.add_root_certificates(ca.clone());
    }
    if let (Some(cert), Some(key)) = (&settings.tls_cert_file, &settings.tls_key_file) {
        options = options.add_client_certificate(cert.clone(), key.clone());
    }
    if settings
        .url
        .split(',')
        .any(|u| u.trim().starts_with("tls://"))
    {
        options = options.require_tls(true);
    }
    let max = settings.reconnect_delay_max;
    let urls: Vec<String> = settings.url.split(',').map(str::to_owned).collect();
    options
        .name(format!("upbit-exporter {}", env!("CARGO_PKG_VERSION")))
        .connection_timeout(settings.connect_timeout)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .reconnect_delay_callback(move |attempts| reconnect_delay(attempts, max))
        .event_callback(move |event| {
            let (changed, board) = (changed.clone(), board.clone());
            async move {
                match &event {
                    Event::Connected => log::info!("nats: connected"),
                    Event::Disconnected => log::warn!("nats: disconnected; reconnecting"),
                    Event::ServerError(e) => {
                        log::warn!("nats: server error: {e}");
                        board.error(format!("server error: {e}"));
                    }
                    Event::ClientError(e) => {
                        log::warn!("nats: client error: {e}");
                        board.error(format!("client error: {e}"));
                    }
                    other => log::info!("nats: {other}"),
                }
                changed.notify_one();
            }
        })
        .connect(urls.as_slice())
        .await
        .map_err(|e| format!("cannot connect to NATS: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnection_delays_double_from_100ms_up_to_the_limit() {
        let max = Duration::from_secs(5);
        assert_eq!(reconnect_delay(0, max), Duration::from_millis(100));
        assert_eq!(reconnect_delay(1, max), Duration::from_millis(100));
        assert_eq!(reconnect_delay(2, max), Duration::from_millis(200));
        assert_eq!(reconnect_delay(4, max), Duration::from_millis(800));
        assert_eq!(reconnect_delay(10, max), max);
        assert_eq!(reconnect_delay(usize::MAX, max), max);
    }
}
