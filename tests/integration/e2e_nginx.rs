//! End-to-end test behind a real nginx: `auth_request` asks a real
//! `jwtgate serve` about every request, and a tiny upstream on a std thread
//! echoes the request head it receives, so the test sees exactly what the API
//! behind nginx would see. nginx runs `examples/nginx/nginx.conf` itself,
//! the README's recipe, with only its addresses changed.
//!
//! nginx is the Debian package (`/usr/sbin/nginx`, or `nginx` on the PATH). A
//! machine without it fails these tests with a message saying so, unless
//! `JWTGATE_SKIP_E2E=1` is set (then they print a note and pass).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use crate::common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::data_path;
use common::nginx::{Nginx, READY_LOCATION, nginx_binary};
use common::proxied::{API_RULE, AUD, ISS, NOW, config, token};
use common::server::{Conn, Response, Server, request_bytes};
use common::upstream::{echoed_headers, start_upstream};

/// The front: `examples/nginx/nginx.conf` itself, its three addresses
/// pointed at the test's nginx port, jwtgate and the echoing upstream, and
/// nginx's readiness location added.
fn front_file(port: u16, jwtgate: SocketAddr, upstream: SocketAddr) -> String {
    example_with(
        "examples/nginx/nginx.conf",
        &[
            (
                "listen 127.0.0.1:8000;",
                format!("listen 127.0.0.1:{port};\n        {READY_LOCATION}"),
            ),
            ("server 127.0.0.1:8080;", format!("server {jwtgate};")),
            ("server 127.0.0.1:9000;", format!("server {upstream};")),
        ],
    )
}

/// The repository's file `relative` with each `from` (found exactly once)
/// replaced by its `to`: the example runs as shipped, but on the test's ports.
fn example_with(relative: &str, replacements: &[(&str, String)]) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    let mut text = std::fs::read_to_string(&path).unwrap();
    for (from, to) in replacements {
        assert_eq!(
            text.matches(from).count(),
            1,
            "{from} in {}",
            path.display()
        );
        text = text.replace(from, to);
    }
    text
}

// ---------------------------------------------------------------------------
// The stack: upstream, jwtgate, nginx
// ---------------------------------------------------------------------------

/// One shard checking tokens of `tests/data/rsa2048-a` for the issuer and
/// audience of [`token`], configured by flags alone, with `extra` flags.
fn flags_only_jwtgate(extra: &[&str]) -> Server {
    let jwks = data_path("rsa2048-a.spki.pem");
    let mut args = vec![
        "--jwks",
        jwks.to_str().unwrap(),
        "--now",
        NOW,
        "--issuer",
        ISS,
        "--audience",
        AUD,
        "--shards",
        "1",
    ];
    args.extend_from_slice(extra);
    Server::start(&args)
}

struct Stack {
    // Declared first: nginx goes before jwtgate.
    nginx: Nginx,
    jwtgate: Server,
    upstream_hits: Arc<AtomicUsize>,
}

impl Stack {
    fn start() -> Option<Stack> {
        let binary = nginx_binary("e2e_nginx")?;
        let (upstream, upstream_hits) = start_upstream();
        let jwtgate = flags_only_jwtgate(&[]);
        let nginx = Nginx::start_file(&binary, 1, &[0], |ports| {
            front_file(ports[0], jwtgate.addr(), upstream)
        });
        Some(Stack {
            nginx,
            jwtgate,
            upstream_hits,
        })
    }

    /// `GET /api/orders` through nginx with these extra headers.
    fn get(&self, headers: &[(&str, &str)]) -> Response {
        let mut all = vec![("Connection", "close")];
        all.extend_from_slice(headers);
        let mut conn = Conn::open(self.nginx.addr(0));
        conn.send(&request_bytes("GET", "/api/orders?id=7", &all, b""));
        conn.try_read_response().unwrap_or_else(|e| {
            panic!(
                "no answer from nginx: {e}\nnginx stderr: {}",
                self.nginx.stderr_text()
            )
        })
    }

    fn hits(&self) -> usize {
        self.upstream_hits.load(Ordering::SeqCst)
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn valid_token_reaches_upstream_with_sub_header() {
    let Some(stack) = Stack::start() else { return };
    let auth = format!("Bearer {}", token("rsa2048-a", "alice"));
    // The client tries to pass itself off as admin: the header is overwritten.
    // Under a name CGI-style applications read as X-Jwt-Sub too: nginx drops
    // names with underscores (underscores_in_headers off, the default).
    let r = stack.get(&[
        ("Authorization", &auth),
        ("X-Jwt-Sub", "admin"),
        ("x_JWT_sub", "admin"),
        ("X-Jwt-Kid", "admin"),
        ("X-Jwt-Payload", "admin"),
        // Forwarded-claim headers of examples/config/jwtgate.toml, and
        // headers some frameworks take the URL or host from.
        ("X-Jwt-Scope", "admin"),
        ("X-Jwt-Roles", "admin"),
        ("X-Original-URL", "admin"),
        ("X-Forwarded-Host", "admin"),
    ]);
    assert_eq!(
        r.status,
        200,
        "{}{}\nnginx stderr: {}",
        r.head_text(),
        String::from_utf8_lossy(&r.body),
        stack.nginx.stderr_text()
    );
    assert_eq!(stack.hits(), 1);
    let seen = echoed_headers(&r.body);
    // Every identity header is jwtgate's to set: none carries the client's.
    assert!(
        seen.iter().all(|(_, value)| value != "admin"),
        "upstream saw a client's identity header:\n{}",
        String::from_utf8_lossy(&r.body)
    );
    // The API sees the host the client asked for.
    let hosts: Vec<&(String, String)> = seen.iter().filter(|(name, _)| name == "host").collect();
    assert_eq!(hosts, [&("host".to_owned(), "jwtgate.test".to_owned())]);
    let subs: Vec<&str> = seen
        .iter()
        .filter(|(n, _)| n.replace('_', "-") == "x-jwt-sub")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(
        subs,
        ["alice"],
        "upstream saw:\n{}",
        String::from_utf8_lossy(&r.body)
    );
    assert!(
        String::from_utf8_lossy(&r.body).starts_with("GET /api/orders?id=7 HTTP/1."),
        "upstream saw:\n{}",
        String::from_utf8_lossy(&r.body)
    );
}

#[test]
fn invalid_token_gets_401_with_jwtgate_challenge() {
    let Some(stack) = Stack::start() else { return };
    // Signed with another key than the one jwtgate trusts.
    let auth = format!("Bearer {}", token("rsa2048-b", "alice"));
    let r = stack.get(&[("Authorization", &auth)]);
    assert_eq!(r.status, 401, "{}", r.head_text());
    assert_eq!(
        r.header_all("www-authenticate"),
        [r#"Bearer realm="jwtgate", error="invalid_token", error_description="bad_signature""#],
        "{}",
        r.head_text()
    );
    assert_eq!(stack.hits(), 0, "the upstream was reached");
}

#[test]
fn missing_token_gets_401_with_realm_only() {
    let Some(stack) = Stack::start() else { return };
    let r = stack.get(&[]);
    assert_eq!(r.status, 401, "{}", r.head_text());
    assert_eq!(
        r.header_all("www-authenticate"),
        [r#"Bearer realm="jwtgate""#],
        "{}",
        r.head_text()
    );
    // Another scheme is no token either.
    let r = stack.get(&[("Authorization", "Basic dXNlcjpwYXNz")]);
    assert_eq!(r.status, 401, "{}", r.head_text());
    assert_eq!(
        r.header_all("www-authenticate"),
        [r#"Bearer realm="jwtgate""#]
    );
    assert_eq!(stack.hits(), 0, "the upstream was reached");
}

// ---------------------------------------------------------------------------
// Kubernetes ingress-nginx: `nginx.ingress.kubernetes.io/auth-url`
// ---------------------------------------------------------------------------

/// The auth location as ingress-nginx's template writes it for an
/// `auth-url` annotation (controller v1.x): the subrequest's `Host` is the
/// auth service's, the client's URL is in `X-Original-URL`, and the
/// client's own headers are passed along (`proxy_pass_request_headers`).
fn ingress_server(port: u16, jwtgate: SocketAddr, upstream: SocketAddr) -> String {
    format!(
        r#"    server {{
        listen 127.0.0.1:{port};
        {READY_LOCATION}
        location / {{
            auth_request /_external-auth;
            auth_request_set $authHeader0 $upstream_http_x_jwt_sub;
            proxy_set_header X-Jwt-Sub $authHeader0;
            proxy_set_header Host $host;
            proxy_pass http://{upstream};
        }}
        location = /_external-auth {{
            internal;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Forwarded-Proto "";
            proxy_set_header X-Request-ID $request_id;
            proxy_set_header Host jwtgate.auth.svc.cluster.local;
            proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Sent-From "nginx-ingress-controller";
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Auth-Request-Redirect $request_uri;
            proxy_http_version 1.1;
            proxy_pass_request_headers on;
            proxy_pass http://{jwtgate};
        }}
    }}"#
    )
}

#[test]
fn ingress_nginx_auth_url_is_read_from_x_original_url() {
    let Some(binary) = nginx_binary("e2e_nginx") else {
        return;
    };
    let (upstream, hits) = start_upstream();
    let dir = common::TempDir::new("e2e-ingress");
    let rules = API_RULE.replace("api.example.com", "api.test");
    let config = dir.write(
        "jwtgate.toml",
        config(
            "forwarded = \"x-original-url\"\ntrusted_proxies = [\"127.0.0.1\"]",
            "",
            &rules,
        ),
    );
    let jwtgate = Server::start(&["--config", config.to_str().unwrap(), "--now", NOW]);
    let nginx = Nginx::start(&binary, 1, &[0], |ports| {
        ingress_server(ports[0], jwtgate.addr(), upstream)
    });
    let send = |host: &str, path: &str, headers: &[(&str, &str)]| {
        let mut conn = Conn::open(nginx.addr(0));
        let mut text = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
        for (name, value) in headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str("\r\n");
        conn.send(text.as_bytes());
        conn.try_read_response()
            .unwrap_or_else(|e| panic!("no answer for {host}{path}: {e}\n{}", nginx.stderr_text()))
    };
    let valid = format!("Bearer {}", token("rsa2048-a", "alice"));

    // Host and path come from X-Original-URL: the rule for api.test applies.
    let r = send("api.test", "/v1/orders?id=7", &[("Authorization", &valid)]);
    assert_eq!(r.status, 200, "{}\n{}", r.head_text(), nginx.stderr_text());
    let seen = echoed_headers(&r.body);
    assert!(
        seen.contains(&("x-jwt-sub".to_owned(), "alice".to_owned())),
        "{seen:?}"
    );
    // Another host meets no rule: default_action deny, passed on as 403.
    let r = send("other.test", "/v1/orders", &[("Authorization", &valid)]);
    assert_eq!(r.status, 403, "{}", r.head_text());
    // The excluded endpoint, without a token.
    let r = send("api.test", "/v1/health", &[]);
    assert_eq!(r.status, 200, "{}", r.head_text());
    // A client's own X-Original-URL naming the excluded endpoint changes
    // nothing: nginx replaces it with the request's own.
    let r = send(
        "api.test",
        "/v1/admin",
        &[("X-Original-URL", "http://api.test/v1/health")],
    );
    assert_eq!(r.status, 401, "{}", r.head_text());
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

// ---------------------------------------------------------------------------
// Scale-out: two instances behind nginx (`examples/nginx/scale-out.conf`)
// ---------------------------------------------------------------------------

/// `examples/nginx/scale-out.conf` with its addresses pointed at the test's
/// port, two jwtgates and the echoing upstream, and the readiness location.
fn scale_out_servers(port: u16, jwtgates: [SocketAddr; 2], upstream: SocketAddr) -> String {
    example_with(
        "examples/nginx/scale-out.conf",
        &[
            (
                "listen 127.0.0.1:8000;",
                format!("listen 127.0.0.1:{port};\n    {READY_LOCATION}"),
            ),
            ("server 127.0.0.1:8080 ", format!("server {} ", jwtgates[0])),
            ("server 127.0.0.1:8081 ", format!("server {} ", jwtgates[1])),
            ("server 127.0.0.1:9000;", format!("server {upstream};")),
        ],
    )
}

/// The `sub`s in an access log, each with how many lines name it.
fn subs_logged(path: &std::path::Path) -> std::collections::BTreeMap<String, usize> {
    let mut subs = std::collections::BTreeMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        let entry: serde_json::Value = serde_json::from_str(line).unwrap();
        if let Some(sub) = entry["sub"].as_str() {
            *subs.entry(sub.to_owned()).or_insert(0) += 1;
        }
    }
    subs
}

#[test]
fn two_instances_share_the_tokens_and_one_stops_without_a_failed_request() {
    let Some(binary) = nginx_binary("e2e_nginx") else {
        return;
    };
    let (upstream, hits) = start_upstream();
    let dir = common::TempDir::new("e2e-scale-out");
    let logs = [dir.path("a.log"), dir.path("b.log")];
    let start =
        |log: &std::path::Path| flags_only_jwtgate(&["--access-log", log.to_str().unwrap()]);
    let mut first = start(&logs[0]);
    let mut second = start(&logs[1]);
    let nginx = Nginx::start(&binary, 1, &[0], |ports| {
        scale_out_servers(ports[0], [first.addr(), second.addr()], upstream)
    });
    let get = |auth: &str| {
        let mut conn = Conn::open(nginx.addr(0));
        conn.send(&request_bytes(
            "GET",
            "/api/orders",
            &[("Connection", "close"), ("Authorization", auth)],
            b"",
        ));
        conn.try_read_response()
            .unwrap_or_else(|e| panic!("no answer from nginx: {e}\n{}", nginx.stderr_text()))
    };

    // Each of 24 tokens, 4 times: every answer 200.
    let tokens: Vec<String> = (0..24)
        .map(|i| format!("Bearer {}", token("rsa2048-a", &format!("user{i}"))))
        .collect();
    for _ in 0..4 {
        for auth in &tokens {
            let r = get(auth);
            assert_eq!(r.status, 200, "{}\n{}", r.head_text(), nginx.stderr_text());
        }
    }

    // Each token met exactly one instance, and both got tokens (read from
    // the access logs, written out within a second).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let (a, b) = loop {
        let (a, b) = (subs_logged(&logs[0]), subs_logged(&logs[1]));
        let lines: usize = a.values().chain(b.values()).sum();
        if lines >= 96 || std::time::Instant::now() > deadline {
            break (a, b);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for i in 0..24 {
        let sub = format!("user{i}");
        let split = (
            a.get(&sub).copied().unwrap_or(0),
            b.get(&sub).copied().unwrap_or(0),
        );
        assert!(
            split == (4, 0) || split == (0, 4),
            "{sub}: {split:?}\n{a:?}\n{b:?}"
        );
    }
    assert!(
        !a.is_empty() && !b.is_empty(),
        "one instance got every token: {a:?} {b:?}"
    );

    // One instance stops (SIGTERM, as a rollout does) while requests keep
    // coming: none fails.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let failures = std::sync::Mutex::new(Vec::new());
    let sent = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut index = 0;
            while !stop.load(Ordering::Acquire) {
                let auth = &tokens[index % tokens.len()];
                index += 1;
                let r = get(auth);
                sent.fetch_add(1, Ordering::SeqCst);
                if r.status != 200 {
                    failures.lock().unwrap().push(r.head_text());
                }
            }
        });
        let before = sent.load(Ordering::SeqCst);
        while sent.load(Ordering::SeqCst) < before + 20 {
            std::thread::yield_now();
        }
        first.sigterm();
        assert_eq!(first.wait_exit(Duration::from_secs(30)).code(), Some(0));
        let after = sent.load(Ordering::SeqCst);
        while sent.load(Ordering::SeqCst) < after + 50 {
            std::thread::yield_now();
        }
        stop.store(true, Ordering::Release);
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} failed: {failures:?}\n{}",
        failures.len(),
        nginx.stderr_text()
    );
    assert!(hits.load(Ordering::SeqCst) >= 96 + 70);

    second.sigterm();
    assert_eq!(second.wait_exit(Duration::from_secs(30)).code(), Some(0));
}

/// Every header the example policy forwards a claim in is one nginx.conf
/// sets from jwtgate's answer: a header nginx does not set is the client's.
#[test]
fn nginx_conf_sets_every_header_the_example_policy_forwards() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let policy = std::fs::read_to_string(root.join("examples/config/jwtgate.toml")).unwrap();
    let conf = std::fs::read_to_string(root.join("examples/nginx/nginx.conf"))
        .unwrap()
        .to_ascii_lowercase();
    let forwarded: Vec<&str> = policy
        .lines()
        .filter_map(|line| line.strip_prefix("forward_claims = "))
        .flat_map(|table| table.split('=').skip(1))
        .filter_map(|value| value.split('"').nth(1))
        .collect();
    assert!(forwarded.contains(&"x-jwt-roles"), "{forwarded:?}");
    for header in forwarded {
        let variable = header.replace('-', "_");
        for line in [
            format!(
                "auth_request_set ${} $upstream_http_{variable};",
                &variable[2..]
            ),
            format!("proxy_set_header {header} ${};", &variable[2..]),
        ] {
            assert!(conf.contains(&line), "nginx.conf lacks `{line}`");
        }
    }
}

/// A jwtgate that stops answering (SIGSTOP): nginx answers 500 once
/// `proxy_read_timeout` passes, and nothing reaches the API.
#[test]
fn nginx_refuses_when_jwtgate_stops_answering() {
    let Some(stack) = Stack::start() else { return };
    let auth = format!("Bearer {}", token("rsa2048-a", "alice"));
    let signal = |name: &str| {
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(stack.jwtgate.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name}");
    };
    signal("STOP");
    let r = stack.get(&[("Authorization", &auth)]);
    signal("CONT");
    assert_eq!(r.status, 500, "{}", r.head_text());
    assert_eq!(stack.hits(), 0);
}
