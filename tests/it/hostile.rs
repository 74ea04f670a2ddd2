//! The HTTP API under hostile input, spoken as raw bytes over TCP so that no client library
//! tidies the request first: auth bypass attempts, path tricks, header abuse, oversized and
//! malformed bodies, 10k codes, control characters. Every answer is a 4xx with the JSON error
//! shape (or a closed connection for unparseable HTTP), the service stays up, nothing changes,
//! and nothing raw reaches the logs.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::*;
use serde_json::{json, Value};

const TOKEN: &str = "hostile-token-0123456789abcdef";

/// Sends raw bytes; returns the status (0 when the server closed without answering) and body.
fn raw(addr: &str, request: &[u8]) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The server may answer and close before reading everything (e.g. 413, 431): a failed write
    // is then expected, the answer is still readable.
    let _ = stream.write_all(request);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = match response.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(at) => response[at + 4..].to_vec(),
        None => Vec::new(),
    };
    (status, body)
}

fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// The error code of a JSON error body; panics when the body is not the documented shape.
fn error_code(body: &[u8]) -> String {
    let json: Value = serde_json::from_slice(body)
        .unwrap_or_else(|_| panic!("not JSON: {:?}", String::from_utf8_lossy(body)));
    let code = json["error"]["code"]
        .as_str()
        .expect("error.code")
        .to_owned();
    assert!(json["error"]["message"].is_string(), "{json}");
    code
}

async fn app(extra: &[(&str, &str)]) -> (TestApp, upbit_exporter::simulator::SimulatorHandle) {
    let sim = start_simulator(|c| c.rate = 0.0).await;
    let mut overrides = vec![("control.token", TOKEN), ("upbit.codes", "KRW-BTC,KRW-XRP")];
    overrides.extend_from_slice(extra);
    let app = spawn_app(&sim.ws_url(), &overrides).await;
    eventually("subscribed", || async {
        when(!sim.stats().requests.is_empty())
    })
    .await;
    (app, sim)
}

fn addr(app: &TestApp) -> String {
    app.handle
        .http_url()
        .trim_start_matches("http://")
        .to_owned()
}

async fn unchanged(app: &TestApp) {
    let (_, view) = app.get_json("/api/v1/subscriptions").await;
    assert_eq!(
        view["subscription"],
        json!({"ticker":["KRW-BTC","KRW-XRP"]}),
        "nothing changed"
    );
    assert_eq!(app.get_json("/healthz").await.0, 200, "still alive");
}

#[actix_web::test]
async fn auth_bypass_attempts_are_refused() {
    let (app, sim) = app(&[]).await;
    let addr = addr(&app);
    let body = br#"{"add":{"ticker":["KRW-ETH"]}}"#;
    let bearer = format!("Bearer {TOKEN}");
    let with_nul = format!("Bearer {TOKEN}\0");
    let basic = format!("Basic {TOKEN}");
    let doubled = format!("Bearer {TOKEN}{TOKEN}");
    let prefixed = format!("Bearer x{TOKEN}");
    let cookie = format!("token={TOKEN}");
    let attempts: Vec<(String, Vec<(&str, &str)>)> = vec![
        (format!("/api/v1/subscriptions?token={TOKEN}"), vec![]),
        (
            format!("/api/v1/subscriptions?access_token={TOKEN}"),
            vec![],
        ),
        (
            "/api/v1/subscriptions".into(),
            vec![("Authorization", &basic)],
        ),
        (
            "/api/v1/subscriptions".into(),
            vec![("Authorization", TOKEN)],
        ),
        (
            "/api/v1/subscriptions".into(),
            vec![("Authorization", "Bearer")],
        ),
        (
            "/api/v1/subscriptions".into(),
            vec![("Authorization", "Bearer ")],
        ),
        (
            "/api/v1/subscriptions".into(),
            vec![("Authorization", &doubled)],
        ),
        (
            "/api/v1/subscriptions".into(),
            vec![("Authorization", &prefixed)],
        ),
        (
            "/api/v1/subscriptions".into(),
            vec![("Authorization", &with_nul)],
        ),
        (
            "/api/v1/subscriptions".into(),
            vec![("X-Authorization", &bearer)],
        ),
        ("/api/v1/subscriptions".into(), vec![("Cookie", &cookie)]),
        (
            "/api/v1/subscriptions".into(),
            vec![
                ("Authorization", "Bearer wrong"),
                ("Authorization", &bearer),
            ],
        ),
    ];
    for (path, mut headers) in attempts {
        headers.push(("Content-Type", "application/json"));
        let (status, answer) = raw(&addr, &request("PATCH", &path, &headers, body));
        if headers.iter().any(|(_, v)| v.contains('\0')) {
            // Not a valid header value: refused by the HTTP layer before any route runs.
            assert_eq!(status, 400, "{headers:?}");
            continue;
        }
        let code = error_code(&answer);
        // Nothing about the request (its query included) is evaluated before the token.
        assert_eq!(status, 401, "{path} {headers:?}");
        assert!(code == "missing_token" || code == "invalid_token", "{code}");
    }
    for path in [
        "/api/v1/subscriptions?revision=abc",
        "/api/v1/subscriptions?nonsense=1&revision=-1",
    ] {
        for method in ["PUT", "PATCH"] {
            let (status, answer) = raw(
                &addr,
                &request(method, path, &[("Content-Type", "application/json")], body),
            );
            assert_eq!(
                (status, error_code(&answer).as_str()),
                (401, "missing_token"),
                "{method} {path}: authenticated before the query is looked at"
            );
        }
    }
    let (status, answer) = raw(
        &addr,
        &request(
            "POST",
            "/api/v1/reconnect",
            &[("X-HTTP-Method-Override", "GET")],
            b"",
        ),
    );
    assert_eq!(status, 401, "method override headers change nothing");
    assert_eq!(error_code(&answer), "missing_token");
    unchanged(&app).await;
    assert_eq!(app.metrics().await.get("upbit_connections_total", &[]), 1.0);
    app.shutdown().await;
    sim.stop().await;
}

#[actix_web::test]
async fn path_tricks_and_header_abuse_get_4xx_and_the_service_stays_up() {
    let (app, sim) = app(&[]).await;
    let addr = addr(&app);
    let long_path = format!("/api/v1/markets/{}", "A".repeat(16 * 1024));
    let paths = [
        "/api/v1/markets/..%2F..%2Fstatus",
        "/api/v1/markets/KRW-BTC%00",
        "/api/v1/markets/KRW-BTC%0AInjected",
        "/api/v1/markets/%E2%80%AEKRW-BTC",
        "/api/v1/markets/KRW-BTC/../../subscriptions",
        "/API/V1/STATUS",
        "/api/v1/./status/..",
        "//api/v1/status",
        "/api/v1/markets/%",
        long_path.as_str(),
    ];
    for path in paths {
        let (status, body) = raw(&addr, &request("GET", path, &[], b""));
        assert!(
            (400..500).contains(&status) || status == 0,
            "{path:.80} answered {status}"
        );
        if (400..500).contains(&status) && !body.is_empty() && status != 431 && status != 414 {
            error_code(&body);
        }
    }
    // A huge header, a flood of headers, a header with a bare CR, garbage instead of HTTP.
    let huge = "x".repeat(1024 * 1024);
    let mut many: Vec<(String, String)> = Vec::new();
    for i in 0..500 {
        many.push((format!("X-Junk-{i}"), "y".repeat(50)));
    }
    let many_refs: Vec<(&str, &str)> = many.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    for (i, request_bytes) in [
        request("GET", "/api/v1/status", &[("X-Huge", &huge)], b""),
        request("GET", "/api/v1/status", &many_refs, b""),
        request("GET", "/api/v1/status", &[("X-Bad", "a\rb")], b""),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n".to_vec(),
        b"GET /api/v1/status HTTP/9.9\r\n\r\n".to_vec(),
    ]
    .into_iter()
    .enumerate()
    {
        let (status, _) = raw(&addr, &request_bytes);
        assert!(
            status == 0 || (400..500).contains(&status) || status == 505,
            "abuse #{i} answered {status}"
        );
    }
    unchanged(&app).await;
    app.shutdown().await;
    sim.stop().await;
}

#[actix_web::test]
async fn hostile_bodies_are_refused_whole() {
    let (app, sim) = app(&[("control.max_body_bytes", "1048576")]).await;
    let addr = addr(&app);
    let auth = format!("Bearer {TOKEN}");
    let json_headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let ten_thousand: Vec<String> = (0..10_000).map(|i| format!("KRW-C{i:05}")).collect();
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        // 10k valid-looking codes: over max_codes (500), refused as a whole.
        (
            "PUT",
            serde_json::to_vec(&json!({ "ticker": ten_thousand })).unwrap(),
            422,
        ),
        // Deep nesting: serde's recursion limit, not a stack overflow.
        (
            "PUT",
            ("[".repeat(100_000) + &"]".repeat(100_000)).into_bytes(),
            400,
        ),
        // Not UTF-8.
        ("PUT", b"{\"ticker\":[\"KRW-\xff\xfe\"]}".to_vec(), 400),
        // Control characters and escapes inside codes.
        (
            "PUT",
            br#"{"ticker":["KRW-BTC\u001b[31m","KRW-\u0000"]}"#.to_vec(),
            422,
        ),
        // Duplicate keys, a valid part beside an invalid one: nothing applied.
        (
            "PATCH",
            br#"{"add":{"ticker":["KRW-ETH"]},"remove":{"ticker":["krw-xrp"]}}"#.to_vec(),
            422,
        ),
        (
            "PUT",
            br#"{"ticker":["KRW-BTC"],"ticker":["KRW-ETH"]}"#.to_vec(),
            422,
        ),
        ("PUT", b"null".to_vec(), 422),
        ("PUT", b"".to_vec(), 400),
        ("PATCH", br#"{"add":{"ticker":"KRW-ETH"}}"#.to_vec(), 422),
        ("PUT", br#"{"candle.7m":["KRW-BTC"]}"#.to_vec(), 422),
    ];
    for (method, body, expected) in cases {
        let (status, answer) = raw(
            &addr,
            &request(method, "/api/v1/subscriptions", &json_headers, &body),
        );
        assert_eq!(
            status,
            expected,
            "{method} {:.120}",
            String::from_utf8_lossy(&body)
        );
        error_code(&answer);
    }
    // A declared length over the limit is refused before the body arrives; so is a chunked body
    // that grows past it.
    let (status, answer) = raw(
        &addr,
        format!(
            "PUT /api/v1/subscriptions HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\
             Content-Type: application/json\r\nContent-Length: 999999999\r\nConnection: close\r\n\r\n{{"
        )
        .as_bytes(),
    );
    assert_eq!(status, 413);
    assert_eq!(error_code(&answer), "payload_too_large");
    let mut chunked = format!(
        "PUT /api/v1/subscriptions HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for _ in 0..40 {
        chunked.extend_from_slice(
            format!("{:x}\r\n{}\r\n", 32 * 1024, " ".repeat(32 * 1024)).as_bytes(),
        );
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let (status, answer) = raw(&addr, &chunked);
    assert_eq!(status, 413);
    assert_eq!(error_code(&answer), "payload_too_large");
    unchanged(&app).await;
    assert_eq!(
        sim.stats()
            .requests
            .iter()
            .filter(|r| !r.text.contains("LIST_SUBSCRIPTIONS"))
            .count(),
        1,
        "Upbit never saw a change"
    );
    app.shutdown().await;
    sim.stop().await;
}

#[actix_web::test]
async fn control_characters_in_input_never_reach_the_logs_raw() {
    let sim = start_simulator(|c| c.rate = 0.0).await;
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_upbit-exporter"))
        .env("UPBIT_EXPORTER__UPBIT__URL", sim.ws_url())
        .env("UPBIT_EXPORTER__HTTP__LISTEN", &addr)
        .env("UPBIT_EXPORTER__CONTROL__TOKEN", TOKEN)
        .env(
            "RUST_LOG",
            "trace,actix_http::h1=trace,actix_server=info,mio=info,h2=info,rustls=info",
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("service starts");
    until_serving(&addr).await;
    let auth = format!("Bearer {TOKEN}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let evil = [
        r#"{"ticker":["KRW-BTC\nINJECTED-LINE level=error forged"]}"#,
        r#"{"ticker":["KRW-BTC\r\nINJECTED-LINE"],"trade":["\u001b[2J\u001b[31mESC"]}"#,
        r#"{"add":{"ticker":["KRW-\u0007BELL"]}}"#,
    ];
    for (i, body) in evil.iter().enumerate() {
        let method = if i == 2 { "PATCH" } else { "PUT" };
        let (status, _) = raw(
            &addr,
            &request(method, "/api/v1/subscriptions", &headers, body.as_bytes()),
        );
        assert_eq!(status, 422, "{body}");
    }
    let (status, _) = raw(
        &addr,
        &request(
            "GET",
            "/api/v1/markets/KRW-BTC%0AINJECTED-LINE%1B[31m",
            &[],
            b"",
        ),
    );
    assert_eq!(status, 400);
    let (status, _) = raw(
        &addr,
        &request(
            "PATCH",
            "/api/v1/subscriptions",
            &[("Authorization", "Bearer \u{1b}[31mINJECTED-LINE")],
            b"{}",
        ),
    );
    assert!(status == 400 || status == 401, "{status}");
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let output = child.wait_with_output().expect("exits");
    assert_eq!(output.status.code(), Some(0));
    let logs = String::from_utf8_lossy(&output.stderr);
    assert!(
        logs.contains("422") || logs.contains("invalid"),
        "the refusals are logged: {logs:.2000}"
    );
    for line in logs.lines() {
        assert!(
            !line.starts_with("INJECTED-LINE"),
            "a forged log line: {line}"
        );
        assert!(
            !line.chars().any(|c| c.is_control() && c != '\t'),
            "a raw control character in: {line:?}"
        );
    }
    assert!(!logs.contains(TOKEN), "the token never appears in logs");
    sim.stop().await;
}

#[actix_web::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let (app, sim) = app(&[]).await;
    let addr = addr(&app);
    for (i, scheme) in ["Bearer", "bearer", "BEARER", "BeArEr"].iter().enumerate() {
        let auth = format!("{scheme} {TOKEN}");
        let body = format!(r#"{{"add":{{"ticker":["KRW-C{i}"]}}}}"#);
        let (status, answer) = raw(
            &addr,
            &request(
                "PATCH",
                "/api/v1/subscriptions",
                &[
                    ("Authorization", &auth),
                    ("Content-Type", "application/json"),
                ],
                body.as_bytes(),
            ),
        );
        assert_eq!(
            status,
            200,
            "{scheme}: {}",
            String::from_utf8_lossy(&answer)
        );
    }
    let (_, view) = app.get_json("/api/v1/subscriptions").await;
    assert_eq!(view["revision"], json!(4));
    app.shutdown().await;
    sim.stop().await;
}

#[actix_web::test]
async fn a_body_that_stops_arriving_is_cut_off_with_408() {
    let (app, sim) = app(&[("control.body_timeout", "300ms")]).await;
    let addr = addr(&app);
    let auth = format!("Bearer {TOKEN}");
    let mut stream = TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // 100 bytes announced, 10 sent, then nothing: the answer comes without the rest.
    let head = format!(
        "PATCH /api/v1/subscriptions HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"add\":{{"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    let body = &response[response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4..];
    assert_eq!(error_code(body), "body_timeout");
    unchanged(&app).await;
    app.shutdown().await;
    sim.stop().await;
}

#[actix_web::test]
async fn malformed_requests_do_not_log_at_error_and_a_huge_uri_gets_a_4xx() {
    let sim = start_simulator(|c| c.rate = 0.0).await;
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    // The default log filter, as in production (no RUST_LOG).
    let child = Command::new(env!("CARGO_BIN_EXE_upbit-exporter"))
        .env("UPBIT_EXPORTER__UPBIT__URL", sim.ws_url())
        .env("UPBIT_EXPORTER__HTTP__LISTEN", &addr)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("service starts");
    until_serving(&addr).await;
    for i in 0..50 {
        let (status, _) = raw(&addr, format!("GARBAGE {i} \x01\x02\r\n\r\n").as_bytes());
        assert!(status == 0 || (400..500).contains(&status), "{status}");
    }
    let huge = format!("/api/v1/markets/{}", "A".repeat(64 * 1024));
    let (status, _) = raw(&addr, &request("GET", &huge, &[], b""));
    assert!(
        matches!(status, 400 | 414 | 431),
        "a 64 KiB URI is refused before routing, got {status}"
    );
    let (status, _) = raw(&addr, &request("GET", "/healthz", &[], b""));
    assert_eq!(status, 200, "still serving");
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let output = child.wait_with_output().expect("exits");
    assert_eq!(output.status.code(), Some(0));
    let logs = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = logs.lines().filter(|l| l.contains(" ERROR ")).collect();
    assert!(
        errors.is_empty(),
        "a client made the service log at ERROR: {errors:?}"
    );
    sim.stop().await;
}
