//! The live page at `/`: static HTML, JavaScript and CSS compiled into the binary, no CDN and
//! no build step. It reads `/api/v1/markets` once, then follows `/api/v1/events`.

use actix_web::http::header;
use actix_web::HttpResponse;

/// Where the page loads its script and style from.
pub const SCRIPT_PATH: &str = "/assets/live.js";
pub const STYLE_PATH: &str = "/assets/live.css";

const INDEX: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/live.js");
const STYLE: &str = include_str!("page/live.css");

/// Only this origin's script, style and connections; no framing.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                      connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                      frame-ancestors 'none'; form-action 'none'";

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CONTENT_SECURITY_POLICY, POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

/// The live page: subscribed markets with price, change and a sparkline, following
/// /api/v1/events (HTML, script and style served from this binary).
#[utoipa::path(get, tag = "page", path = "/", responses(
    (status = 200, description = "the page", body = String, content_type = "text/html"),
))]
pub async fn index() -> HttpResponse {
    asset("text/html; charset=utf-8", INDEX)
}

/// The live page's script.
#[utoipa::path(get, tag = "page", path = "/assets/live.js", responses(
    (status = 200, description = "the script", body = String, content_type = "text/javascript"),
))]
pub async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// The live page's style sheet.
#[utoipa::path(get, tag = "page", path = "/assets/live.css", responses(
    (status = 200, description = "the style sheet", body = String, content_type = "text/css"),
))]
pub async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLE)
}
