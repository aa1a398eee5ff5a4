//! End-to-end test behind a real HAProxy: `examples/haproxy/haproxy.cfg`
//! itself, with `examples/haproxy/jwtgate-auth.lua` (the `http-request`
//! action that asks jwtgate), its addresses pointed at free ports, a real
//! `jwtgate serve` and an upstream that echoes the request head it gets.
//!
//! HAProxy is Debian's package (2.6, built with Lua; installed by `.ci/run`).
//! A machine without it fails this test with a message saying so, unless
//! `JWTGATE_SKIP_E2E=1` is set.

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
use common::proxied::{API_RULE, NOW, config, token};
use common::proxy::Proxy;
use common::server::{Conn, Response, Server};
use common::upstream::{echoed_headers, start_upstream};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/haproxy")
        .join(name)
}

/// HAProxy on `examples/haproxy/haproxy.cfg` with its addresses changed,
/// loading the Lua action from `lua`.
fn start_haproxy(binary: &Path, lua: &Path, jwtgate: SocketAddr, upstream: SocketAddr) -> Proxy {
    let original = std::fs::read_to_string(example("haproxy.cfg")).unwrap();
    Proxy::start("e2e-haproxy", |port, dir| {
        let mut text = original.clone();
        for (from, to) in [
            (
                "lua-load examples/haproxy/jwtgate-auth.lua".to_owned(),
                format!("lua-load {}", lua.display()),
            ),
            (
                "bind 127.0.0.1:8000".to_owned(),
                format!("bind 127.0.0.1:{port}"),
            ),
            (
                "http://127.0.0.1:8080/".to_owned(),
                format!("http://{jwtgate}/"),
            ),
            (
                "server api1 127.0.0.1:9000".to_owned(),
                format!("server api1 {upstream}"),
            ),
        ] {
            assert_eq!(text.matches(&from).count(), 1, "{from} in haproxy.cfg");
            text = text.replace(&from, &to);
        }
        let file = dir.write("haproxy.cfg", text);
        let mut command = Command::new(binary);
        command.arg("-db").arg("-f").arg(file);
        command
    })
}

fn send(haproxy: &Proxy, head: &str) -> Response {
    let mut conn = Conn::open(haproxy.addr());
    conn.send(format!("{head}Connection: close\r\n\r\n").as_bytes());
    conn.try_read_response()
        .unwrap_or_else(|e| panic!("no answer from haproxy for {head:?}: {e}"))
}

fn get(haproxy: &Proxy, host: &str, target: &str, headers: &[(&str, &str)]) -> Response {
    let mut head = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    send(haproxy, &head)
}

/// The identity headers the origin saw, named as a CGI-style application
/// reads them (`_` as `-`).
fn identity(response: &Response) -> Vec<(String, String)> {
    echoed_headers(&response.body)
        .into_iter()
        .map(|(name, value)| (name.replace('_', "-"), value))
        .filter(|(name, _)| name.starts_with("x-jwt-"))
        .collect()
}

#[test]
fn haproxy_asks_jwtgate_before_every_request_and_relays_its_refusals() {
    let Some(binary) = common::required_tool("e2e_haproxy", "haproxy", "haproxy") else {
        return;
    };
    let dir = TempDir::new("e2e-haproxy-jwtgate");
    let path = dir.write(
        "jwtgate.toml",
        config(
            "forwarded = \"x-forwarded\"\ntrusted_proxies = [\"127.0.0.1\"]",
            "",
            &format!("{API_RULE}forward_claims = {{ sub = \"x-user\" }}\n"),
        ),
    );
    let (upstream, hits) = start_upstream();
    let jwtgate = Server::start(&["--config", path.to_str().unwrap(), "--now", NOW]);
    let haproxy = start_haproxy(
        &binary,
        &example("jwtgate-auth.lua"),
        jwtgate.addr(),
        upstream,
    );
    let valid = format!("Bearer {}", token("rsa2048-a", "alice"));
    let forged = format!("Bearer {}", token("rsa2048-b", "alice"));
    let spoof = ("X-Jwt-Sub", "admin");
    // Read as X-Jwt-Sub by CGI, WSGI, Rack and PHP applications.
    let underscored = ("x_JWT_sub", "admin");
    // Headers jwtgate owns but the action does not copy here: a backend that
    // reads them must never get a client's.
    let payload = ("X-Jwt-Payload", "eyJzdWIiOiJhZG1pbiJ9");
    let claim = ("X-Jwt-Roles", "admin");
    let action = ("X-Jwtgate-Action", "allow");
    // A forwarded claim's header under a name of the backend's choosing: the
    // action removes the client's as soon as jwtgate answers that name.
    let forwarded_claim = ("X-User", "admin");
    // Where some frameworks take the URL from (an IIS rewrite's header).
    let rewrite = ("X-Original-URL", "/admin");
    let api = "api.example.com";

    // A valid token: through, with jwtgate's identity replacing the client's.
    let r = get(
        &haproxy,
        api,
        "/v1/orders?id=7",
        &[
            ("Authorization", &valid),
            spoof,
            underscored,
            payload,
            claim,
            action,
            forwarded_claim,
            rewrite,
        ],
    );
    assert_eq!(r.status, 200, "{}{}", r.head_text(), r.body_text());
    let seen = identity(&r);
    assert!(
        seen.contains(&("x-jwt-sub".to_owned(), "alice".to_owned())),
        "{}",
        r.body_text()
    );
    for (name, _) in [payload, claim, action, forwarded_claim, rewrite] {
        let name = name.to_ascii_lowercase();
        assert!(
            echoed_headers(&r.body)
                .iter()
                .all(|(seen, _)| *seen != name),
            "the origin saw the client's {name}:\n{}",
            r.body_text()
        );
    }
    assert!(
        seen.iter().filter(|(name, _)| name == "x-jwt-sub").count() == 1,
        "{}",
        r.body_text()
    );
    assert!(
        seen.contains(&("x-jwt-iss".to_owned(), "https://idp.test/".to_owned())),
        "{}",
        r.body_text()
    );
    assert!(
        r.body_text()
            .starts_with("GET /v1/orders?id=7 HTTP/1.1\r\n"),
        "{}",
        r.body_text()
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // A forged token, and none: jwtgate's 401, challenge and outcome at the
    // client; nothing at the origin.
    for (auth, outcome) in [(Some(forged.as_str()), "bad_signature"), (None, "missing")] {
        let mut headers = vec![spoof];
        if let Some(auth) = auth {
            headers.push(("Authorization", auth));
        }
        let r = get(&haproxy, api, "/v1/orders", &headers);
        assert_eq!(r.status, 401, "{}", r.head_text());
        assert_eq!(r.header("x-jwtgate-outcome"), Some(outcome));
        assert!(
            r.header("www-authenticate")
                .is_some_and(|v| v.starts_with("Bearer")),
            "{}",
            r.head_text()
        );
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // The rules see the client's host and path, and the client's own
    // forwarded headers change nothing: a host without a rule is refused,
    // and claiming the excluded path does not open another.
    let r = get(
        &haproxy,
        "other.example.com",
        "/v1/orders",
        &[("Authorization", &valid)],
    );
    assert_eq!(r.status, 403, "{}", r.head_text());
    let r = get(
        &haproxy,
        api,
        "/v1/orders",
        &[
            ("X-Forwarded-Uri", "/v1/health"),
            ("X-Forwarded-Host", api),
            ("X-Forwarded-Method", "GET"),
        ],
    );
    assert_eq!(r.status, 401, "{}", r.head_text());
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // The excluded endpoint passes without a token, and without the client's
    // identity.
    let r = get(&haproxy, api, "/v1/health", &[spoof, underscored]);
    assert_eq!(r.status, 200, "{}", r.head_text());
    assert_eq!(identity(&r), [], "{}", r.body_text());
    assert_eq!(hits.load(Ordering::SeqCst), 2);

    // Two Host headers: refused (HAProxy 2.6's parser does; the action would
    // otherwise).
    let r = send(
        &haproxy,
        &format!("GET /v1/health HTTP/1.1\r\nHost: {api}\r\nHost: other.example.com\r\n"),
    );
    assert_eq!(r.status, 400, "{}", r.head_text());
    assert_eq!(hits.load(Ordering::SeqCst), 2);

    // A target the origin reads with another host than the one jwtgate is
    // told: HAProxy ends the authority at "/", taking "admin.example.com?"
    // for user information, where URL parsers end it at "?".
    let r = send(
        &haproxy,
        &format!("GET http://admin.example.com?@{api}/v1/health HTTP/1.1\r\nHost: {api}\r\n"),
    );
    assert_eq!(r.status, 400, "{}", r.head_text());
    // The same URL form, naming the Host, is a plain request.
    let r = send(
        &haproxy,
        &format!("GET http://{api}/v1/health HTTP/1.1\r\nHost: {api}\r\n"),
    );
    assert_eq!(r.status, 200, "{}", r.head_text());
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    // An h2c upgrade: after a 101, the connection would carry HTTP/2
    // requests no one checks.
    let r = send(
        &haproxy,
        &format!(
            "GET /v1/health HTTP/1.1\r\nHost: {api}\r\nUpgrade: h2c\r\n\
             HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        ),
    );
    assert_eq!(r.status, 400, "{}", r.head_text());
    assert_eq!(hits.load(Ordering::SeqCst), 3);

    // jwtgate gone: 503, nothing passes unjudged.
    drop(jwtgate);
    let r = get(&haproxy, api, "/v1/orders", &[("Authorization", &valid)]);
    assert_eq!(r.status, 503, "{}", r.head_text());
    let r = get(&haproxy, api, "/v1/health", &[]);
    assert_eq!(r.status, 503, "{}", r.head_text());
    assert_eq!(hits.load(Ordering::SeqCst), 3);
}

#[test]
fn haproxy_lets_nothing_through_that_jwtgate_did_not_allow() {
    let Some(binary) = common::required_tool("e2e_haproxy", "haproxy", "haproxy") else {
        return;
    };
    let dir = TempDir::new("e2e-haproxy-failures");
    let path = dir.write(
        "jwtgate.toml",
        config(
            "forwarded = \"x-forwarded\"\ntrusted_proxies = [\"127.0.0.1\"]",
            "",
            API_RULE,
        ),
    );
    let (upstream, hits) = start_upstream();
    let jwtgate = Server::start(&["--config", path.to_str().unwrap(), "--now", NOW]);
    let valid = format!("Bearer {}", token("rsa2048-a", "alice"));
    let api = "api.example.com";

    // The action fails (a Lua runtime error: HAProxy goes on to the next
    // rule): the deny line refuses the request.
    let script = std::fs::read_to_string(example("jwtgate-auth.lua")).unwrap();
    let anchor = "function(txn, url, copied_csv)\n";
    assert_eq!(script.matches(anchor).count(), 1);
    let broken = dir.write(
        "broken.lua",
        script.replace(
            anchor,
            &format!("{anchor}    error(\"injected failure\")\n"),
        ),
    );
    let haproxy = start_haproxy(&binary, &broken, jwtgate.addr(), upstream);
    let r = get(&haproxy, api, "/v1/orders", &[("Authorization", &valid)]);
    assert_eq!(r.status, 503, "{}", r.head_text());
    let r = get(&haproxy, api, "/v1/health", &[]);
    assert_eq!(r.status, 503, "{}", r.head_text());
    drop(haproxy);

    // The URL reaches another service, which answers 200 to anything: that
    // is not jwtgate's answer.
    let (elsewhere, asked) = start_upstream();
    let haproxy = start_haproxy(&binary, &example("jwtgate-auth.lua"), elsewhere, upstream);
    let r = get(&haproxy, api, "/v1/orders", &[("Authorization", &valid)]);
    assert_eq!(r.status, 503, "{}", r.head_text());
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}
