//! End-to-end test behind a real Caddy: `examples/caddy/Caddyfile` itself
//! (`forward_auth`), its three addresses pointed at a free port, a real
//! `jwtgate serve` and an upstream that echoes the request head it gets.
//!
//! Caddy 2.6 (Debian's) copies `copy_headers` onto the request after a 2xx,
//! and where the answer lacks one it leaves the client's own value or an
//! unexpanded placeholder: the test proves that a client's `X-Jwt-Sub:
//! admin` never reaches the origin, for a valid token, a forged one, an
//! excluded path and a log-mode rule.
//!
//! Caddy is the Debian package (`caddy` on the PATH, installed by
//! `.ci/run`). A machine without it fails these tests with a message saying
//! so, unless `JWTGATE_SKIP_E2E=1` is set.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use crate::common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;

use common::TempDir;
use common::proxied::{NOW, config, token};
use common::proxy::Proxy;
use common::server::{Conn, Response, Server, request_bytes};
use common::upstream::{echoed_headers, start_upstream};

/// Caddy on `examples/caddy/Caddyfile` with its addresses changed.
fn start_caddy(binary: &Path, jwtgate: SocketAddr, upstream: SocketAddr) -> Proxy {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/caddy/Caddyfile");
    let original = std::fs::read_to_string(&path).unwrap();
    Proxy::start("e2e-caddy", |port, dir| {
        let mut text = original.clone();
        for (from, to) in [
            (":8000 {".to_owned(), format!(":{port} {{")),
            (
                "forward_auth 127.0.0.1:8080".to_owned(),
                format!("forward_auth {jwtgate}"),
            ),
            (
                "reverse_proxy 127.0.0.1:9000".to_owned(),
                format!("reverse_proxy {upstream}"),
            ),
        ] {
            assert_eq!(
                text.matches(&from).count(),
                1,
                "{from} in {}",
                path.display()
            );
            text = text.replace(&from, &to);
        }
        let file = dir.write("Caddyfile", text);
        let mut command = Command::new(binary);
        command
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(file)
            .env("XDG_DATA_HOME", dir.path("data"))
            .env("XDG_CONFIG_HOME", dir.path("config"))
            .env("HOME", dir.root());
        command
    })
}

/// `/v1/**` checked (`GET /v1/health` excluded) and `/beta/**` in log mode,
/// on any host.
fn caddy_config(dir: &TempDir) -> PathBuf {
    let rules = r#"[[rule]]
name = "api"
paths = ["/v1/**"]
exclude = ["GET /v1/health"]
token_configs = ["users"]

[[rule]]
name = "beta"
paths = ["/beta/**"]
token_configs = ["users"]
action = "log"
"#;
    dir.write(
        "jwtgate.toml",
        config(
            "forwarded = \"x-forwarded\"\ntrusted_proxies = [\"127.0.0.1\"]",
            "",
            rules,
        ),
    )
}

fn get(caddy: &Proxy, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut all = vec![("Connection", "close")];
    all.extend_from_slice(headers);
    let mut conn = Conn::open(caddy.addr());
    conn.send(&request_bytes("GET", path, &all, b""));
    conn.try_read_response()
        .unwrap_or_else(|e| panic!("no answer from caddy for {path}: {e}"))
}

/// The `x-jwt-sub` values the origin saw.
fn subs(response: &Response) -> Vec<String> {
    echoed_headers(&response.body)
        .into_iter()
        .filter(|(name, _)| name.replace('_', "-") == "x-jwt-sub")
        .map(|(_, value)| value)
        .collect()
}

#[test]
fn a_client_sent_identity_never_reaches_the_origin_through_caddy() {
    let Some(binary) = common::required_tool("e2e_caddy", "caddy", "caddy") else {
        return;
    };
    let dir = TempDir::new("e2e-caddy-jwtgate");
    let path = caddy_config(&dir);
    let (upstream, hits) = start_upstream();
    let jwtgate = Server::start(&["--config", path.to_str().unwrap(), "--now", NOW]);
    let caddy = start_caddy(&binary, jwtgate.addr(), upstream);
    let valid = format!("Bearer {}", token("rsa2048-a", "alice"));
    let forged = format!("Bearer {}", token("rsa2048-b", "alice"));
    let spoof = ("X-Jwt-Sub", "admin");
    // Read as X-Jwt-Sub by CGI, WSGI, Rack and PHP applications.
    let underscored = ("x_JWT_sub", "admin");

    // A valid token: through, with jwtgate's identity and nothing else.
    let r = get(
        &caddy,
        "/v1/orders?id=7",
        &[
            ("Authorization", &valid),
            spoof,
            underscored,
            ("X-Original-URL", "/admin"),
            ("X_Original_URL", "/admin"),
        ],
    );
    assert_eq!(r.status, 200, "{}{}", r.head_text(), r.body_text());
    assert_eq!(subs(&r), ["alice"], "{}\n{}", r.head_text(), r.body_text());
    // Nor a URL of the client's own under a header some frameworks route on.
    assert!(
        echoed_headers(&r.body)
            .iter()
            .all(|(name, _)| name.replace('_', "-") != "x-original-url"),
        "{}",
        r.body_text()
    );
    // The original request reached jwtgate as the client sent it.
    assert!(
        r.body_text()
            .starts_with("GET /v1/orders?id=7 HTTP/1.1\r\n"),
        "{}",
        r.body_text()
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // An h2c upgrade to an excluded path: after the origin's 101 the
    // connection would carry HTTP/2 requests no one checks.
    let r = get(
        &caddy,
        "/v1/health",
        &[
            ("Upgrade", "h2c"),
            ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA"),
        ],
    );
    assert_eq!(r.status, 400, "{}", r.head_text());
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // A forged token: our 401 at the client, nothing at the origin.
    let r = get(&caddy, "/v1/orders", &[("Authorization", &forged), spoof]);
    assert_eq!(r.status, 401, "{}", r.head_text());
    assert_eq!(r.header("x-jwtgate-outcome"), Some("bad_signature"));
    assert!(
        r.header("www-authenticate")
            .is_some_and(|v| v.contains("bad_signature")),
        "{}",
        r.head_text()
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // An excluded path and a log-mode rule let the request through with no
    // identity: the client's own never survives, nor a placeholder.
    for (path, auth) in [("/v1/health", None), ("/beta/x", Some(forged.as_str()))] {
        let mut headers = vec![spoof, underscored];
        if let Some(auth) = auth {
            headers.push(("Authorization", auth));
        }
        let r = get(&caddy, path, &headers);
        assert_eq!(r.status, 200, "{path}: {}", r.head_text());
        for sub in subs(&r) {
            assert!(
                sub.is_empty(),
                "{path}: the origin saw x-jwt-sub {sub:?}\n{}",
                r.body_text()
            );
        }
        assert!(!r.body_text().contains('{'), "{path}: {}", r.body_text());
    }
    assert_eq!(hits.load(Ordering::SeqCst), 3);
}

/// A jwtgate that stops answering (SIGSTOP): Caddy answers 504 once
/// `response_header_timeout` passes, and nothing reaches the origin.
#[test]
fn caddy_refuses_when_jwtgate_stops_answering() {
    let Some(binary) = common::required_tool("e2e_caddy", "caddy", "caddy") else {
        return;
    };
    let dir = TempDir::new("e2e-caddy-stopped");
    let path = caddy_config(&dir);
    let (upstream, hits) = start_upstream();
    let jwtgate = Server::start(&["--config", path.to_str().unwrap(), "--now", NOW]);
    let caddy = start_caddy(&binary, jwtgate.addr(), upstream);
    let valid = format!("Bearer {}", token("rsa2048-a", "alice"));
    let signal = |name: &str| {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(jwtgate.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name}");
    };
    signal("STOP");
    let r = get(&caddy, "/v1/orders", &[("Authorization", &valid)]);
    signal("CONT");
    // 504 once response_header_timeout passes (502 if the connect itself
    // failed): a refusal either way, and the origin never asked.
    assert!(
        [502, 504].contains(&r.status),
        "{}{}",
        r.head_text(),
        r.body_text()
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}
