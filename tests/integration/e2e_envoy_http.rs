//! Envoy's HTTP ext_authz, replayed: Envoy cannot run here, so this sends
//! jwtgate the checks Envoy's `http_service` sends for
//! `examples/envoy/envoy-http-ext-authz.yaml` (the original method; the
//! original path after `path_prefix`; the original `Host`; `Authorization`,
//! `Content-Length: 0` and the `allowed_headers`; Envoy's own `x-envoy-*`,
//! `x-forwarded-proto` and `x-request-id`) and checks the answers Envoy acts
//! on: a 200 sends the request on with `allowed_upstream_headers` copied,
//! anything else goes back to the client with `allowed_client_headers`.

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

/// `path_prefix` and the header patterns of the example, read from it.
fn example() -> (String, Vec<String>, Vec<String>) {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/envoy/envoy-http-ext-authz.yaml"),
    )
    .unwrap();
    let prefix = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("path_prefix: "))
        .unwrap()
        .to_owned();
    // allowed_upstream_headers replaces a client's x-jwt-sub, not its
    // x_jwt_sub, which CGI-style applications read as the same: Envoy must
    // refuse names with underscores.
    assert!(
        text.lines()
            .any(|line| line.trim() == "headers_with_underscores_action: REJECT_REQUEST"),
        "the example must refuse header names with underscores"
    );
    let patterns = |after: &str| -> Vec<String> {
        text.split(after)
            .nth(1)
            .unwrap()
            .lines()
            .skip(2)
            .map_while(|line| line.trim().strip_prefix("- exact: ").map(str::to_owned))
            .collect()
    };
    (
        prefix,
        patterns("allowed_upstream_headers:"),
        patterns("allowed_client_headers:"),
    )
}

#[test]
fn envoy_http_ext_authz_checks_get_the_answers_envoy_acts_on() {
    let (prefix, upstream_headers, client_headers) = example();
    assert_eq!(prefix, "/authz");
    assert_eq!(
        upstream_headers,
        ["x-jwt-sub", "x-jwt-iss", "x-jwt-kid", "x-jwt-payload"]
    );
    assert_eq!(client_headers, ["www-authenticate", "x-jwtgate-outcome"]);
    let dir = TempDir::new("e2e-envoy-http");
    let config = dir.write(
        "jwtgate.toml",
        config(
            &format!("forwarded = \"request-line\"\npath_prefix = \"{prefix}\""),
            r#"sources = [ { header = "authorization", prefix = "Bearer" }, { cookie = "session" } ]"#,
            API_RULE,
        ),
    );
    let server = Server::start(&["--config", config.to_str().unwrap(), "--now", NOW]);
    let check = |method: &str, host: &str, path: &str, headers: &[(&str, &str)]| -> Response {
        let mut text =
            format!("{method} {prefix}{path} HTTP/1.1\r\nhost: {host}\r\ncontent-length: 0\r\n");
        for (name, value) in headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str(
            "x-envoy-expected-rq-timeout-ms: 250\r\nx-forwarded-proto: https\r\n\
             x-request-id: 5e4a9c1e-2b1f-4c1e-9a3d-1d2b3c4d5e6f\r\nx-envoy-internal: true\r\n\r\n",
        );
        Conn::open(server.addr()).request(text.as_bytes())
    };
    let valid = format!("Bearer {}", token("rsa2048-a", "alice"));
    let forged = format!("Bearer {}", token("rsa2048-b", "alice"));

    // 200: Envoy sends the request on, copying the upstream headers.
    let r = check(
        "DELETE",
        "api.example.com",
        "/v1/orders/7?x=1",
        &[("authorization", &valid)],
    );
    assert_eq!(r.status, 200, "{}", r.head_text());
    for header in &upstream_headers {
        assert_eq!(r.header_all(header).len(), 1, "{header}: {}", r.head_text());
    }
    assert_eq!(r.header("x-jwt-sub"), Some("alice"));
    // A token in a cookie (an allowed header) counts too.
    let cookie = format!("session={}", token("rsa2048-a", "bob"));
    let r = check(
        "GET",
        "api.example.com",
        "/v1/orders",
        &[("cookie", &cookie)],
    );
    assert_eq!(r.header("x-jwt-sub"), Some("bob"), "{}", r.head_text());
    // A denial goes back to the client with the client headers.
    let r = check(
        "GET",
        "api.example.com",
        "/v1/orders",
        &[("authorization", &forged)],
    );
    assert_eq!(r.status, 401, "{}", r.head_text());
    for header in &client_headers {
        assert!(r.header(header).is_some(), "{header}: {}", r.head_text());
    }
    // The method is the client's: the exclusion is for GET only.
    let r = check("POST", "api.example.com", "/v1/health", &[]);
    assert_eq!(r.status, 401, "{}", r.head_text());
    let r = check("GET", "api.example.com", "/v1/health", &[]);
    assert_eq!(r.status, 200, "{}", r.head_text());
    // Another host: no rule, default deny.
    let r = check(
        "GET",
        "other.example.com",
        "/v1/orders",
        &[("authorization", &valid)],
    );
    assert_eq!(r.status, 403, "{}", r.head_text());
    // A check without the prefix is not one of Envoy's: refused, never routed.
    let mut conn = Conn::open(server.addr());
    let r = conn.request(b"GET /v1/health HTTP/1.1\r\nhost: api.example.com\r\n\r\n");
    assert_eq!(r.status, 400, "{}", r.head_text());
}
