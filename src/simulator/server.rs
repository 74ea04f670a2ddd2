//! The simulator's HTTP surface: the WebSocket upgrade behind the connection gate, the market
//! list, and the loopback-only admin routes.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, HttpServer};
use serde::Deserialize;
use serde_json::json;

use super::{session, Fault, Handshake, MarketEventChange, Shared};
use crate::peer_socket::PeerSocket;

/// Largest frame the simulator reads from a client; a larger one (even announced) is closed
/// with 1009 before it is buffered.
const MAX_CLIENT_FRAME: usize = 1 << 20;

pub(super) fn start(shared: Arc<Shared>) -> std::io::Result<(SocketAddr, ServerHandle)> {
    let listener = TcpListener::bind(shared.config.listen)?;
    let addr = listener.local_addr()?;
    let data = web::Data::new(shared);
    let server = HttpServer::new(move || {
        actix_web::App::new()
            .app_data(data.clone())
            .app_data(web::JsonConfig::default().limit(1 << 16).error_handler(|err, _| {
                let body = json!({ "error": { "name": "BAD_REQUEST", "message": err.to_string() } });
                actix_web::error::InternalError::from_response(err, HttpResponse::BadRequest().json(body)).into()
            }))
            .route("/websocket/v1", web::get().to(websocket))
            .route("/v1/market/all", web::get().to(market_all))
            .route("/admin/faults", web::post().to(inject))
            .route("/admin/stats", web::get().to(stats))
            .route("/admin/markets", web::post().to(markets))
            .route("/admin/market_events", web::post().to(market_events))
    })
    .workers(1)
    // Upbit ends the TCP connection as soon as the closing handshake is done; actix-web's
    // default waits up to a second for the client to hang up first. (1 ms was seen to hang the
    // close altogether; 50 ms is prompt and reliable.)
    .client_disconnect_timeout(std::time::Duration::from_millis(50))
    // Under load that timer was seen to miss (1 run in 20 kept the connection open): a session
    // that ends on a client's close also shuts its socket down (`session::CLOSE_GRACE`).
    .on_connect(crate::peer_socket::remember_socket)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    let handle = server.handle();
    actix_rt::spawn(server);
    Ok((addr, handle))
}

async fn websocket(
    request: HttpRequest,
    body: web::Payload,
    shared: web::Data<Arc<Shared>>,
) -> Result<HttpResponse, actix_web::Error> {
    if let Some((status, retry_after)) = shared.admit(Instant::now()) {
        let mut stats = shared.stats();
        let name = if status == 418 {
            stats.rejected_418 += 1;
            "I'm a teapot"
        } else {
            stats.rejected_429 += 1;
            "Too Many Requests"
        };
        let mut response = HttpResponse::build(
            StatusCode::from_u16(status).unwrap_or(StatusCode::TOO_MANY_REQUESTS),
        );
        if let Some(secs) = retry_after {
            response.insert_header(("Retry-After", secs.to_string()));
        }
        return Ok(
            response.json(json!({ "error": { "name": "TOO_MANY_REQUESTS", "message": name } }))
        );
    }
    let (body, overflow) = crate::frame_limit::bound(&request, body, MAX_CLIENT_FRAME).await?;
    let (response, session, stream) = actix_ws::handle(&request, body)?;
    let id = shared
        .next_connection
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    {
        let mut stats = shared.stats();
        stats.connections_accepted += 1;
        stats.active_connections += 1;
        if stats.handshakes.len() >= 100 {
            stats.handshakes.remove(0);
        }
        let headers = request
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        stats.handshakes.push(Handshake {
            connection: id,
            path: request.path().to_owned(),
            headers,
        });
    }
    let shared: Arc<Shared> = Arc::clone(shared.get_ref());
    let commands = shared.commands.subscribe();
    let socket = PeerSocket::of(&request);
    actix_rt::spawn(session::run(
        shared,
        id,
        session,
        socket,
        stream.max_frame_size(MAX_CLIENT_FRAME),
        overflow,
        commands,
    ));
    Ok(response)
}

#[derive(Deserialize)]
struct MarketQuery {
    #[serde(default)]
    is_details: bool,
}

async fn market_all(
    query: web::Query<MarketQuery>,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    shared.stats().market_list_requests += 1;
    if let Some(status) = shared.market_list_down() {
        return HttpResponse::build(
            StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
        )
        .json(
            json!({ "error": { "name": "UNAVAILABLE", "message": "market list down (fault)" } }),
        );
    }
    let listed = shared.listed.lock().clone();
    if !query.is_details {
        return HttpResponse::Ok().json(listed);
    }
    let mut states = shared.markets.lock();
    let detailed: Vec<serde_json::Value> = listed
        .into_iter()
        .map(|mut market| {
            if let Some(code) = market["market"].as_str() {
                market["market_event"] = states.get(code).market_event();
            }
            market
        })
        .collect();
    HttpResponse::Ok().json(detailed)
}

/// `Some(403)` unless the peer is on loopback.
fn loopback_only(request: &HttpRequest) -> Option<HttpResponse> {
    match request.peer_addr() {
        Some(peer) if peer.ip().is_loopback() => None,
        _ => Some(HttpResponse::Forbidden().json(
            json!({ "error": { "name": "FORBIDDEN", "message": "admin routes answer loopback peers only" } }),
        )),
    }
}

async fn inject(
    request: HttpRequest,
    fault: web::Json<Fault>,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    if let Some(refused) = loopback_only(&request) {
        return refused;
    }
    shared.apply(fault.into_inner());
    HttpResponse::NoContent().finish()
}

async fn stats(request: HttpRequest, shared: web::Data<Arc<Shared>>) -> HttpResponse {
    if let Some(refused) = loopback_only(&request) {
        return refused;
    }
    let stats = shared.stats().clone();
    HttpResponse::Ok().json(stats)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MarketChange {
    #[serde(default)]
    list: Vec<String>,
    #[serde(default)]
    delist: Vec<String>,
}

async fn markets(
    request: HttpRequest,
    change: web::Json<MarketChange>,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    if let Some(refused) = loopback_only(&request) {
        return refused;
    }
    let mut listed = shared.listed.lock();
    for code in &change.list {
        if crate::upbit::types::is_valid_code(code)
            && !listed.iter().any(|m| m["market"] == code.as_str())
        {
            listed.push(json!({ "market": code, "korean_name": code, "english_name": code }));
        }
    }
    listed.retain(|m| !change.delist.iter().any(|c| m["market"] == c.as_str()));
    HttpResponse::Ok().json(json!({ "markets": listed.len() }))
}

async fn market_events(
    request: HttpRequest,
    change: web::Json<MarketEventChange>,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    if let Some(refused) = loopback_only(&request) {
        return refused;
    }
    if !crate::upbit::types::is_valid_code(&change.code) || change.caution.len() > 32 {
        return HttpResponse::BadRequest().json(
            json!({ "error": { "name": "BAD_REQUEST", "message": "code must be QUOTE-BASE; at most 32 caution flags" } }),
        );
    }
    shared.set_market_event(&change);
    HttpResponse::NoContent().finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn admin_routes_refuse_peers_off_loopback() {
        let from = |addr: &str| {
            TestRequest::default()
                .peer_addr(addr.parse().unwrap())
                .to_http_request()
        };
        assert!(loopback_only(&from("127.0.0.1:5000")).is_none());
        assert!(loopback_only(&from("[::1]:5000")).is_none());
        let refused = loopback_only(&from("10.1.2.3:5000")).expect("refused");
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert!(loopback_only(&TestRequest::default().to_http_request()).is_some());
    }
}
