//! The awc client for the Upbit connection: rustls (ring) for `wss`, HTTP/1.1 only (WebSocket
//! upgrades fail when TLS negotiates HTTP/2, actix-web issue #1069), no `Origin` header (Upbit
//! throttles requests that carry one), and a middleware that keeps the `Retry-After` of a
//! refused upgrade, which awc's `connect()` otherwise discards with the response head.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use actix_service::Service;
use awc::error::{ConnectError, SendRequestError, WsClientError};
use awc::http::{header, StatusCode, Version};
use awc::{ConnectRequest, ConnectResponse};
use futures_util::future::LocalBoxFuture;

use crate::telemetry::events::ConnectFailure;

/// Installs rustls' ring provider as the process default (awc's connector needs one); harmless
/// when already installed.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Holds the `Retry-After` of the last refused upgrade, if it had one.
pub type RetryAfterSlot = Rc<Cell<Option<Duration>>>;

/// Builds the client; `retry_after` receives the header of 429/418 answers.
pub fn build_client(connect_timeout: Duration, retry_after: RetryAfterSlot) -> awc::Client {
    install_crypto_provider();
    let connector = awc::Connector::new()
        .max_http_version(Version::HTTP_11)
        .timeout(connect_timeout);
    awc::Client::builder()
        .connector(connector)
        .timeout(connect_timeout)
        .wrap(RetryAfterCapture { slot: retry_after })
        .finish()
}

/// A client for Upbit's REST API (the market list): rustls, HTTP/1.1, one overall timeout.
pub fn rest_client(timeout: Duration) -> awc::Client {
    install_crypto_provider();
    let connector = awc::Connector::new()
        .max_http_version(Version::HTTP_11)
        .timeout(timeout);
    awc::Client::builder()
        .connector(connector)
        .timeout(timeout)
        .finish()
}

/// Maps a failed upgrade to its metric reason.
pub fn classify(error: &WsClientError) -> ConnectFailure {
    match error {
        WsClientError::InvalidResponseStatus(status)
            if *status == StatusCode::TOO_MANY_REQUESTS =>
        {
            ConnectFailure::Http429
        }
        WsClientError::InvalidResponseStatus(status) if status.as_u16() == 418 => {
            ConnectFailure::Http418
        }
        WsClientError::SendRequest(SendRequestError::Connect(err)) => match err {
            ConnectError::Resolver(_) => ConnectFailure::Dns,
            ConnectError::Timeout => ConnectFailure::Timeout,
            ConnectError::SslIsNotSupported => ConnectFailure::Tls,
            ConnectError::Io(io) => match io.kind() {
                std::io::ErrorKind::ConnectionRefused => ConnectFailure::Refused,
                std::io::ErrorKind::TimedOut => ConnectFailure::Timeout,
                std::io::ErrorKind::InvalidData => ConnectFailure::Tls,
                _ if looks_like_tls(&io.to_string()) => ConnectFailure::Tls,
                _ => ConnectFailure::Other,
            },
            _ => ConnectFailure::Other,
        },
        WsClientError::SendRequest(SendRequestError::Timeout) => ConnectFailure::Timeout,
        other if looks_like_tls(&other.to_string()) => ConnectFailure::Tls,
        _ => ConnectFailure::Other,
    }
}

fn looks_like_tls(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    [
        "tls",
        "certificate",
        "handshake",
        "invalidcontenttype",
        "corrupt message",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

/// Reads `Retry-After` (delta seconds; the HTTP-date form is not used by Upbit and is ignored).
fn parse_retry_after(value: &header::HeaderValue) -> Option<Duration> {
    let secs: u64 = value.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs.min(24 * 3600)))
}

struct RetryAfterCapture {
    slot: RetryAfterSlot,
}

impl<S> awc::middleware::Transform<S, ConnectRequest> for RetryAfterCapture
where
    S: Service<ConnectRequest, Response = ConnectResponse, Error = SendRequestError> + 'static,
{
    type Transform = RetryAfterService<S>;

    fn new_transform(self, service: S) -> Self::Transform {
        RetryAfterService {
            service,
            slot: self.slot,
        }
    }
}

struct RetryAfterService<S> {
    service: S,
    slot: RetryAfterSlot,
}

impl<S> Service<ConnectRequest> for RetryAfterService<S>
where
    S: Service<ConnectRequest, Response = ConnectResponse, Error = SendRequestError> + 'static,
{
    type Response = ConnectResponse;
    type Error = SendRequestError;
    type Future = LocalBoxFuture<'static, Result<ConnectResponse, SendRequestError>>;

    actix_service::forward_ready!(service);

    fn call(&self, request: ConnectRequest) -> Self::Future {
        let response = self.service.call(request);
        let slot = self.slot.clone();
        Box::pin(async move {
            let response = response.await;
            if let Ok(ConnectResponse::Tunnel(head, _)) = &response {
                if head.status != StatusCode::SWITCHING_PROTOCOLS {
                    slot.set(
                        head.headers
                            .get(header::RETRY_AFTER)
                            .and_then(parse_retry_after),
                    );
                }
            }
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_as_seconds() {
        let value = |s: &'static str| header::HeaderValue::from_static(s);
        assert_eq!(parse_retry_after(&value("7")), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after(&value(" 30 ")),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after(&value("Wed, 21 Oct 2015 07:28:00 GMT")),
            None
        );
        assert_eq!(
            parse_retry_after(&value("99999999")),
            Some(Duration::from_secs(86400))
        );
    }

    #[test]
    fn refused_statuses_are_classified() {
        let status =
            |code| WsClientError::InvalidResponseStatus(StatusCode::from_u16(code).unwrap());
        assert_eq!(classify(&status(429)), ConnectFailure::Http429);
        assert_eq!(classify(&status(418)), ConnectFailure::Http418);
        assert_eq!(classify(&status(500)), ConnectFailure::Other);
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let err = WsClientError::SendRequest(SendRequestError::Connect(ConnectError::Io(refused)));
        assert_eq!(classify(&err), ConnectFailure::Refused);
        let unresolved: Box<dyn std::error::Error> = "failed to lookup address information".into();
        let err = WsClientError::SendRequest(SendRequestError::Connect(ConnectError::Resolver(
            unresolved,
        )));
        assert_eq!(classify(&err), ConnectFailure::Dns);
    }
}
