//! Traefik's ForwardAuth, replayed: Traefik cannot be installed here, so this
//! sends jwtgate the request Traefik's `forwardAuth` middleware sends for
//! `examples/traefik/dynamic.yml` (as Traefik's
//! `pkg/middlewares/auth/forward.go` builds it: a GET to `address` with the
//! client's headers copied, hop-by-hop ones removed, and `X-Forwarded-For`,
//! `-Method`, `-Proto`, `-Host`, `-Uri`, `-Port`, `-Server` and
//! `X-Real-Ip` set by Traefik) and checks the answers Traefik acts on: a 2xx
//! lets the request through with `authResponseHeaders` copied, anything else
//! goes back to the client as it is.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use crate::common;

use std::path::Path;

use common::TempDir;
use common::proxied::{API_RULE, NOW, config, token};
use common::server::{Conn, Response, Server};

/// The middleware's `address` and `authResponseHeaders`, read from the
/// example file (its shape is checked, not its YAML semantics).
fn middleware() -> (String, Vec<String>) {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/traefik/dynamic.yml"),
    )
    .unwrap();
    let address = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("address: "))
        .unwrap()
        .trim_matches('"')
        .to_owned();
    assert!(
        text.lines()
            .any(|line| line.trim() == "trustForwardHeader: false"),
        "the example must not trust a client's X-Forwarded-*"
    );
    // Traefik strips the request headers this matches: every spelling of
    // x-jwt-* that a CGI-style application reads as one (Go's regexp syntax;
    // its match is not run here).
    assert!(
        text.lines()
            .any(|line| line.trim() == r#"authResponseHeadersRegex: "(?i)^x[-_]jwt[-_]""#),
        "the example must strip a client's x_jwt_* headers"
    );
    // An h2c upgrade relayed after the check would carry unchecked HTTP/2
    // requests: the middleware before jwtgate removes Upgrade.
    assert!(
        text.lines()
            .any(|line| line.trim() == "middlewares: [jwtgate-hardening, jwtgate]"),
        "the router must run the hardening middleware first"
    );
    for header in ["Upgrade", "HTTP2-Settings", "X-Original-Url"] {
        assert!(
            text.lines()
                .any(|line| line.trim() == format!("{header}: \"\"")),
            "the hardening middleware must remove {header}"
        );
    }
    let copied: Vec<String> = text
        .split("authResponseHeaders:")
        .nth(1)
        .unwrap()
        .lines()
        .skip(1)
        .map_while(|line| line.trim().strip_prefix("- ").map(str::to_owned))
        .collect();
    (address, copied)
}

/// What Traefik sends for a client's `method target` on `host`, with the
/// client's `headers` (`X-Forwarded-*` a client sent are replaced).
fn forward_request(
    path: &str,
    method: &str,
    host: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Vec<u8> {
    let mut text = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n"
    );
    for (name, value) in headers {
        if !name.to_ascii_lowercase().starts_with("x-forwarded-") {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    text.push_str(&format!(
        "X-Forwarded-For: 10.0.0.7\r\nX-Forwarded-Host: {host}\r\nX-Forwarded-Method: {method}\r\n\
         X-Forwarded-Port: 443\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Server: traefik-7d9c\r\n\
         X-Forwarded-Uri: {target}\r\nX-Real-Ip: 10.0.0.7\r\nAccept-Encoding: gzip\r\n\r\n"
    ));
    text.into_bytes()
}

#[test]
fn traefik_forward_auth_requests_get_the_answers_traefik_acts_on() {
    let (address, copied) = middleware();
    let path = address
        .strip_prefix("http://127.0.0.1:8080")
        .expect("the example's address is jwtgate's default port");
    assert_eq!(
        copied,
        ["X-Jwt-Sub", "X-Jwt-Iss", "X-Jwt-Kid", "X-Jwt-Payload"]
    );
    let dir = TempDir::new("e2e-traefik");
    let config = dir.write(
        "jwtgate.toml",
        config(
            "forwarded = \"x-forwarded\"\ntrusted_proxies = [\"127.0.0.1\"]",
            "",
            API_RULE,
        ),
    );
    let server = Server::start(&["--config", config.to_str().unwrap(), "--now", NOW]);
    let ask = |method: &str, host: &str, target: &str, headers: &[(&str, &str)]| -> Response {
        let mut conn = Conn::open(server.addr());
        conn.request(&forward_request(path, method, host, target, headers))
    };
    let valid = format!("Bearer {}", token("rsa2048-a", "alice"));
    let forged = format!("Bearer {}", token("rsa2048-b", "alice"));

    // 2xx: Traefik forwards, copying the identity headers from this answer.
    let r = ask(
        "POST",
        "api.example.com",
        "/v1/orders?id=7",
        &[("Authorization", &valid), ("X-Jwt-Sub", "admin")],
    );
    assert_eq!(r.status, 200, "{}", r.head_text());
    for header in &copied {
        assert_eq!(
            r.header_all(&header.to_ascii_lowercase()).len(),
            1,
            "{header}: {}",
            r.head_text()
        );
    }
    assert_eq!(r.header("x-jwt-sub"), Some("alice"));
    // A client's own X-Forwarded-Uri is never what Traefik sends
    // (trustForwardHeader: false): the real path is checked.
    let r = ask(
        "GET",
        "api.example.com",
        "/v1/admin",
        &[("X-Forwarded-Uri", "/v1/health")],
    );
    assert_eq!(r.status, 401, "{}", r.head_text());
    // Anything else goes back to the client as it is: our 401 and challenge.
    let r = ask(
        "GET",
        "api.example.com",
        "/v1/orders",
        &[("Authorization", &forged)],
    );
    assert_eq!(r.status, 401, "{}", r.head_text());
    assert!(
        r.header("www-authenticate")
            .is_some_and(|v| v.contains("bad_signature"))
    );
    // Another host: no rule, default deny.
    let r = ask(
        "GET",
        "other.example.com",
        "/v1/orders",
        &[("Authorization", &valid)],
    );
    assert_eq!(r.status, 403, "{}", r.head_text());
    // The excluded endpoint: 2xx with the identity headers present and empty,
    // so Traefik copies nothing a client sent.
    let r = ask("GET", "api.example.com", "/v1/health", &[]);
    assert_eq!(r.status, 200, "{}", r.head_text());
    assert_eq!(r.header("x-jwt-sub"), Some(""));
}
