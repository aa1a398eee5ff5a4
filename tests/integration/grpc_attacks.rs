//! Adversarial tests of the gRPC face (`--grpc-listen`): what a client
//! behind Envoy, or a peer of the gRPC port itself, can make jwtgate answer.
//!
//! Each test says what it asserts: the safe behaviour. Those marked
//! FINDING failed when they were written (the face did not behave safely);
//! the others document ideas that were tried and held, so that they stay
//! held:
//!
//! - the same decision as the HTTP face (Envoy's HTTP ext_authz style,
//!   `forwarded = "request-line"`) for hostile spellings of paths, methods,
//!   repeated and comma-joined headers, cookies, query parameters and
//!   header-name folds;
//! - what only a `CheckRequest` can state (empty or relative paths,
//!   pseudo-headers that disagree with `path`, duplicate `header_map`
//!   entries, `raw_value` beside `value`, `context_extensions` spellings,
//!   huge header counts) never allows what it should not;
//! - transport abuse (silent and stalled connections, compressed or
//!   truncated messages, several messages in one call, rapid resets, huge
//!   metadata, health watches, draining with a stalled call) neither allows
//!   nor takes the face down.
//!
//! Every server runs on ephemeral loopback ports with the token clock pinned
//! by `--now`; every wait is bounded.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use crate::common;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::grpc::{
    Answer, GrpcClient, answer, check_request, check_request_raw, code, with_extension,
};
use common::server::{Client, Response, Server};
use common::{TempDir, mint, signing_key};
use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse};
use jwtgate::Algorithm;
use jwtgate::internals::SigningKey;
use prost::Message as _;

const NOW: &str = "1700000000";
const T: i64 = 1_700_000_000;
const ISS: &str = "https://idp.test/";
const AUD: &str = "api";
const HOST: &str = "api.example.com";
const CHECK: &str = "/envoy.service.auth.v3.Authorization/Check";

/// Rules: `admin` (scope required, `authorization` stripped), `open` (a
/// missing token allowed, an excluded endpoint), `cookie` (a cookie source,
/// a missing token allowed), `query` (a query source), `custom` (a raw
/// header source, a missing token allowed), `api` (an excluded endpoint, a
/// claim forwarded); `rules` adds more. Anything else is denied.
fn config(server: &str, rules: &str) -> String {
    let users = format!("jwks_file = \"users.json\"\nissuer = \"{ISS}\"\naudiences = [\"{AUD}\"]");
    format!(
        r#"default_action = "deny"

[server]
shards = 1
forwarded = "request-line"
{server}

[[token_config]]
name = "users"
{users}

[[token_config]]
name = "cookies"
{users}
sources = [ {{ cookie = "jwt" }} ]

[[token_config]]
name = "query"
{users}
sources = [ {{ query = "access_token" }} ]

[[token_config]]
name = "custom"
{users}
sources = [ {{ header = "x-api-token" }} ]

[[rule]]
name = "admin"
paths = ["/admin/**"]
token_configs = ["users"]
require_claims = [ {{ claim = "scope", contains = "admin" }} ]
strip_authorization = true

[[rule]]
name = "open"
paths = ["/open/**"]
token_configs = ["users"]
on_missing = "allow"
exclude = ["GET /open/public"]

[[rule]]
name = "cookie"
paths = ["/c/**"]
token_configs = ["cookies"]
on_missing = "allow"

[[rule]]
name = "query"
paths = ["/q/**"]
token_configs = ["query"]

[[rule]]
name = "custom"
paths = ["/x/**"]
token_configs = ["custom"]
on_missing = "allow"

[[rule]]
name = "api"
paths = ["/v1/**"]
token_configs = ["users"]
exclude = ["GET /v1/health"]
forward_claims = {{ email = "x-email" }}
{rules}
"#
    )
}

struct Env {
    dir: TempDir,
    key: SigningKey,
    other: SigningKey,
}

impl Env {
    fn new(label: &str) -> Env {
        let dir = TempDir::new(&format!("grpc-attacks-{label}"));
        dir.write(
            "users.json",
            format!(r#"{{"keys":[{}]}}"#, common::rsa_jwk("k1")),
        );
        Env {
            dir,
            key: signing_key("rsa2048-a", Algorithm::Rs256),
            other: signing_key("rsa2048-b", Algorithm::Rs256),
        }
    }

    /// Serves [`config`] with a gRPC port; `extra` flags after.
    fn serve_with(&self, server: &str, rules: &str, extra: &[&str]) -> Server {
        let path = self.dir.write("jwtgate.toml", config(server, rules));
        let mut args = vec![
            "--config",
            path.to_str().unwrap(),
            "--now",
            NOW,
            "--grpc-listen",
            "127.0.0.1:0",
        ];
        args.extend_from_slice(extra);
        Server::start(&args)
    }

    fn serve(&self, server: &str) -> Server {
        self.serve_with(server, "", &[])
    }

    fn sign(&self, key: &SigningKey, extra: &str, exp: i64) -> String {
        let claims = format!(
            r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"alice","iat":{T},"exp":{exp}{extra}}}"#
        );
        mint(
            r#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#,
            &claims,
            key,
            Algorithm::Rs256,
        )
    }

    fn token(&self, extra: &str) -> String {
        self.sign(&self.key, extra, T + 3600)
    }

    fn forged(&self) -> String {
        self.sign(&self.other, "", T + 3600)
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// The `attributes.request.http` of `request`, to edit.
fn http_of(
    request: &mut CheckRequest,
) -> &mut envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest {
    request
        .attributes
        .as_mut()
        .unwrap()
        .request
        .as_mut()
        .unwrap()
        .http
        .as_mut()
        .unwrap()
}

/// The HTTP answer as [`Answer`] reads the gRPC one (framing headers out).
fn http_answer(response: &Response) -> (u16, Vec<(String, String)>, String) {
    let headers = response
        .headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.clone()))
        .filter(|(name, _)| name != "content-length" && name != "connection")
        .collect();
    (
        response.status,
        headers,
        String::from_utf8_lossy(&response.body).into_owned(),
    )
}

/// `Check` on a fresh connection, all of it (connecting included) within
/// `budget`: the answer, or why there was none.
fn check_within(
    addr: SocketAddr,
    request: CheckRequest,
    budget: Duration,
) -> Result<CheckResponse, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        tokio::time::timeout(budget, async {
            let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
                .unwrap()
                .connect()
                .await
                .map_err(|error| format!("connect: {error}"))?;
            AuthorizationClient::new(channel)
                .check(request)
                .await
                .map(tonic::Response::into_inner)
                .map_err(|status| format!("{status:?}"))
        })
        .await
        .map_err(|_| format!("no answer within {budget:?}"))?
    })
}

/// The resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A gRPC message: the 5-byte prefix (compressed flag, length) and `message`.
fn framed(flag: u8, message: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(5 + message.len());
    out.push(flag);
    out.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    out.extend_from_slice(message);
    Bytes::from(out)
}

/// A raw HTTP/2 client (the `h2` crate): calls whose frames the test writes
/// itself (partial messages, no end of stream, resets, odd headers).
struct RawH2 {
    runtime: tokio::runtime::Runtime,
    send: h2::client::SendRequest<Bytes>,
}

/// How a raw call ended, as far as the client saw within its wait.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ended {
    /// The server answered: `grpc-status` (from headers or trailers) and the
    /// message bytes.
    Status(String, Vec<u8>),
    /// The stream or connection failed (a reset, GOAWAY, close).
    Failed(String),
    /// Nothing within the wait.
    Pending,
}

impl RawH2 {
    fn connect(addr: SocketAddr) -> RawH2 {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let send = runtime.block_on(async {
            let tcp = tokio::time::timeout(
                Duration::from_secs(10),
                tokio::net::TcpStream::connect(addr),
            )
            .await
            .unwrap()
            .unwrap();
            let (send, connection) = tokio::time::timeout(
                Duration::from_secs(10),
                h2::client::Builder::new()
                    .max_concurrent_reset_streams(100_000)
                    .handshake::<_, Bytes>(tcp),
            )
            .await
            .unwrap()
            .unwrap();
            tokio::spawn(async move {
                let _ = connection.await;
            });
            send
        });
        RawH2 { runtime, send }
    }

    /// Opens a call of `path` with gRPC's headers and `extra` ones; the
    /// test then writes its body.
    fn open(
        &mut self,
        path: &str,
        extra: &[(&str, &str)],
    ) -> Result<(h2::client::ResponseFuture, h2::SendStream<Bytes>), h2::Error> {
        let mut builder = http::Request::builder()
            .method("POST")
            .uri(format!("http://127.0.0.1{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        for (name, value) in extra {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(()).unwrap();
        let send = self.send.clone();
        self.runtime.block_on(async move {
            let mut ready = tokio::time::timeout(Duration::from_secs(10), send.ready())
                .await
                .map_err(|_| h2::Error::from(h2::Reason::REFUSED_STREAM))??;
            ready.send_request(request, false)
        })
    }

    /// A whole call: `body` then the end of the stream; how it ended within `wait`.
    fn call(&mut self, path: &str, extra: &[(&str, &str)], body: Bytes, wait: Duration) -> Ended {
        match self.open(path, extra) {
            Ok((response, mut stream)) => {
                if let Err(error) = stream.send_data(body, true) {
                    return Ended::Failed(error.to_string());
                }
                self.wait(response, wait)
            }
            Err(error) => Ended::Failed(error.to_string()),
        }
    }

    /// How `response` ends within `wait` (the connection keeps being driven).
    fn wait(&self, response: h2::client::ResponseFuture, wait: Duration) -> Ended {
        self.runtime.block_on(async move {
            tokio::time::timeout(wait, ended(response))
                .await
                .unwrap_or(Ended::Pending)
        })
    }

    /// Drives the connection (PINGs answered) for `time`.
    fn idle(&self, time: Duration) {
        self.runtime
            .block_on(async move { tokio::time::sleep(time).await });
    }
}

async fn ended(response: h2::client::ResponseFuture) -> Ended {
    let response = match response.await {
        Ok(response) => response,
        Err(error) => return Ended::Failed(error.to_string()),
    };
    let status_of = |headers: &http::HeaderMap| {
        headers
            .get("grpc-status")
            .map(|value| value.to_str().unwrap_or("?").to_owned())
    };
    if let Some(status) = status_of(response.headers()) {
        return Ended::Status(status, Vec::new());
    }
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        match chunk {
            Ok(chunk) => {
                let _ = body.flow_control().release_capacity(chunk.len());
                bytes.extend_from_slice(&chunk);
            }
            Err(error) => return Ended::Failed(error.to_string()),
        }
    }
    match body.trailers().await {
        Ok(Some(trailers)) => Ended::Status(status_of(&trailers).unwrap_or_default(), bytes),
        Ok(None) => Ended::Status(String::new(), bytes),
        Err(error) => Ended::Failed(error.to_string()),
    }
}

/// The `CheckResponse` of a raw call that ended with status 0.
fn decoded(ended: &Ended) -> Option<CheckResponse> {
    match ended {
        Ended::Status(status, bytes) if status == "0" && bytes.len() >= 5 => {
            CheckResponse::decode(&bytes[5..]).ok()
        }
        _ => None,
    }
}

fn is_ok_answer(ended: &Ended) -> bool {
    decoded(ended).is_some_and(|response| answer(&response).code == code::OK)
}

// ---------------------------------------------------------------------------
// Findings
// ---------------------------------------------------------------------------

/// FINDING (connection exhaustion). A TCP connection that never completes
/// the HTTP/2 preface is never closed: the idle timer calls hyper's graceful
/// shutdown, which during the handshake only marks the connection to close
/// once the handshake completes, and then awaits it forever (no handshake
/// deadline, and keepalive PINGs only start once serving). A client that
/// opens `max_connections` silent connections takes every slot of the
/// shard's gRPC face: accepting pauses and every later check (Envoy's)
/// waits in the backlog. The HTTP face closes such connections after
/// `header_timeout`; the gRPC face documents that "a connection that starts
/// no call for [grpc_idle_timeout] is closed".
#[test]
fn silent_connections_do_not_hold_the_connection_slots() {
    let env = Env::new("silent");
    let server = env.serve("max_connections = 2\ngrpc_idle_timeout = \"1s\"");
    let grpc = server.grpc_addr().unwrap();
    let mut silent = TcpStream::connect(grpc).unwrap();
    let mut half = TcpStream::connect(grpc).unwrap();
    // Half a preface: a client that stalls inside the handshake.
    half.write_all(b"PRI * HTTP/2.0\r\n").unwrap();
    std::thread::sleep(Duration::from_secs(3));

    let excluded = check_request("GET", HOST, "/v1/health", &[]);
    let got = check_within(grpc, excluded, Duration::from_secs(5));
    assert!(
        got.as_ref()
            .is_ok_and(|response| answer(response).code == code::OK),
        "two silent connections, idle for three idle timeouts, still hold both \
         connection slots: a real check got {got:?}"
    );
    for (name, stream) in [("silent", &mut silent), ("half preface", &mut half)] {
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut buf = [0u8; 256];
        let mut closed = false;
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => {
                    closed = true;
                    break;
                }
                // The server's SETTINGS (or a GOAWAY): keep reading to the close.
                Ok(_) => {}
            }
        }
        assert!(closed, "the {name} connection is still open");
    }
}

/// FINDING (stalled calls never end). A call whose message never completes,
/// or whose stream never ends after it (tonic's unary handler waits for the
/// end of the stream before deciding), is never answered, reset or timed
/// out (not even by the caller's own `grpc-timeout`): the idle timer only
/// counts calls started, and its graceful shutdown
/// waits for the calls in flight, which the client's HTTP/2 stack keeps
/// alive by answering PINGs. Such a call and its connection live as long as
/// the client likes (the HTTP face bounds a request with `header_timeout`).
#[test]
fn a_stalled_call_is_ended_within_a_bound() {
    let env = Env::new("stalled");
    let server = env.serve("grpc_idle_timeout = \"1s\"\nheader_timeout = \"1s\"");
    let mut h2 = RawH2::connect(server.grpc_addr().unwrap());
    let message = check_request("GET", HOST, "/v1/health", &[]).encode_to_vec();

    // A prefix and part of the message it announces, under the caller's own
    // one-second deadline.
    let (partial, mut stream) = h2.open(CHECK, &[("grpc-timeout", "1S")]).unwrap();
    let mut announced = framed(0, &message).to_vec();
    announced.truncate(5 + message.len() / 2);
    stream.send_data(Bytes::from(announced), false).unwrap();
    // The whole message, but the stream never ends.
    let (unended, mut stream2) = h2.open(CHECK, &[]).unwrap();
    stream2.send_data(framed(0, &message), false).unwrap();

    let partial = h2.wait(partial, Duration::from_secs(6));
    let unended = h2.wait(unended, Duration::from_secs(1));
    assert!(
        partial != Ended::Pending && unended != Ended::Pending,
        "stalled calls are still open after 6 s (grpc_idle_timeout and header_timeout \
         are 1 s): partial message {partial:?}, unended stream {unended:?}"
    );
    drop((stream, stream2));
}

/// FINDING (memory pinned by one client). Each stalled call may buffer up
/// to `grpc_max_message_bytes` (tonic reserves the announced length at the
/// prefix and keeps what arrives), `grpc_max_concurrent_streams` calls per
/// connection, `max_connections` connections, with no deadline: 256 KiB x
/// 256 x 10,000 by default. Here two connections of 200 stalled calls each
/// pin some 100 MB for as long as the client keeps them; nothing ends them.
#[test]
fn stalled_calls_do_not_pin_memory() {
    let env = Env::new("pinned");
    let server = env.serve("grpc_idle_timeout = \"1s\"\nheader_timeout = \"1s\"");
    let addr = server.grpc_addr().unwrap();
    const CONNECTIONS: usize = 2;
    const CALLS: usize = 200;
    const ANNOUNCED: usize = 256 * 1024;
    const SENT: usize = 250_000;
    let before = rss_kib(server.pid());
    let ended = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    let mut streams = Vec::new();
    for _ in 0..CONNECTIONS {
        let mut h2 = RawH2::connect(addr);
        for _ in 0..CALLS {
            let (response, mut stream) = h2.open(CHECK, &[]).unwrap();
            let mut prefix = vec![0u8];
            prefix.extend_from_slice(&u32::try_from(ANNOUNCED).unwrap().to_be_bytes());
            prefix.resize(5 + SENT, b'x');
            stream.send_data(Bytes::from(prefix), false).unwrap();
            streams.push(stream);
            let ended = Arc::clone(&ended);
            h2.runtime.spawn(async move {
                let _ = response.await;
                ended.fetch_add(1, Ordering::SeqCst);
            });
        }
        // Flush the calls before the next connection is set up.
        h2.idle(Duration::from_millis(300));
        clients.push(h2);
    }
    // Let the bytes arrive (each client's connection is driven while it idles).
    for h2 in &clients {
        h2.idle(Duration::from_millis(1500));
    }
    let pinned = rss_kib(server.pid()).saturating_sub(before);
    // Well past both timeouts.
    for h2 in &clients {
        h2.idle(Duration::from_millis(2500));
    }
    let still = rss_kib(server.pid()).saturating_sub(before);
    let open = CONNECTIONS * CALLS - ended.load(Ordering::SeqCst);
    assert_eq!(
        open, 0,
        "{open} stalled calls of one client are still held 4 s later (timeouts 1 s); the \
         server's memory grew by {pinned} KiB when they were sent and is still {still} KiB \
         above where it was"
    );
    drop(streams);
}

/// FINDING (every allowed check fails when the policy forwards many
/// claims). The gRPC face re-parses the rendered HTTP answer with room for
/// 64 headers; an allowed answer carries six of its own plus every header
/// any rule forwards, so with 59 or more forwarded headers in the policy
/// (nothing limits them) every allowed check, excluded endpoints included,
/// is `INTERNAL` ("jwtgate rendered an unreadable answer") while the HTTP
/// face answers 200. Behind Envoy with `failure_mode_allow`, those requests
/// then pass without jwtgate's identity headers, so whatever `x-jwt-*`
/// the client sent reaches the origin.
#[test]
fn a_policy_forwarding_many_claims_still_answers_allowed_checks() {
    let env = Env::new("wide");
    let claims = (0..60)
        .map(|i| format!("c{i} = \"x-c{i}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let rules = format!(
        "\n[[rule]]\nname = \"wide\"\npaths = [\"/wide/**\"]\ntoken_configs = [\"users\"]\nforward_claims = {{ {claims} }}\n"
    );
    let server = env.serve_with("", &rules, &[]);
    let grpc = GrpcClient::connect(server.grpc_addr().unwrap());
    let token = bearer(&env.token(r#","c0":"zero""#));
    for (what, path, headers) in [
        (
            "a valid token",
            "/wide/x",
            vec![("authorization", token.as_str())],
        ),
        (
            "a valid token, another rule",
            "/v1/x",
            vec![("authorization", token.as_str())],
        ),
        ("an excluded endpoint", "/v1/health", vec![]),
    ] {
        let over_http = Client::new(server.addr()).request_with("GET", path, HOST, &headers);
        assert_eq!(over_http.status, 200, "{what} over HTTP");
        let got = grpc.check(check_request("GET", HOST, path, &headers));
        let got = got.map(|response| answer(&response));
        assert!(
            got.as_ref().is_ok_and(|got| got.code == code::OK),
            "{what}: HTTP says 200, gRPC says {got:?}"
        );
    }
}

/// FINDING (client-set identity headers survive under another spelling).
/// The OK answer overwrites `x-jwt-sub`, `x-email`, … but leaves the
/// client's `x_jwt_sub`, `x_email`: Envoy forwards header names with
/// underscores by default (`headers_with_underscores_action: ALLOW`), and
/// CGI, WSGI, Rack and PHP read both spellings as one variable (the reason
/// jwtgate folds `_` into `-` when it looks for tokens). The gRPC face sees
/// the client's headers and can name them in `headers_to_remove`; it does
/// not, so the origin can read the client's identity beside (or instead of)
/// the verified one.
#[test]
fn identity_headers_spelled_with_underscores_are_removed() {
    let env = Env::new("underscores");
    let server = env.serve("");
    let grpc = GrpcClient::connect(server.grpc_addr().unwrap());
    let token = bearer(&env.token(r#","email":"a@x.test""#));
    let spoofed = [
        ("x_jwt_sub", "admin"),
        ("x_jwt_iss", "https://idp.evil/"),
        ("x_email", "boss@x.test"),
        ("x-jwt_kid", "k2"),
    ];
    for (what, path, with_token) in [
        ("a valid token", "/v1/x", true),
        ("an excluded endpoint", "/v1/health", false),
    ] {
        let mut headers = spoofed.to_vec();
        if with_token {
            headers.push(("authorization", &token));
        }
        for request in [
            check_request("GET", HOST, path, &headers),
            check_request_raw("GET", HOST, path, &headers),
        ] {
            let got = answer(&grpc.check(request).unwrap());
            assert_eq!(got.code, code::OK, "{what}");
            let kept: Vec<&str> = spoofed
                .iter()
                .map(|(name, _)| *name)
                .filter(|name| !got.removed.iter().any(|removed| removed == name))
                .collect();
            assert!(
                kept.is_empty(),
                "{what}: the client's {kept:?} reach the origin beside the verified identity \
                 (removed: {:?})",
                got.removed
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Held: the same decision as the HTTP face
// ---------------------------------------------------------------------------

/// Hostile spellings decided alike over HTTP (Envoy's request-line style)
/// and gRPC (both header forms), on status, headers and body; and the
/// expected status, so that the table documents what each one gets.
#[test]
fn hostile_requests_are_decided_alike_over_http_and_grpc() {
    let env = Env::new("parity");
    let server = env.serve("");
    let grpc = GrpcClient::connect(server.grpc_addr().unwrap());
    let valid = env.token(r#","email":"a@x.test","scope":"read""#);
    let forged = env.forged();
    let (bv, bf) = (bearer(&valid), bearer(&forged));
    let jwt_scheme = format!("JWT {forged}");
    let jwt_valid = format!("jwt={valid}");
    let jwt_forged = format!("jwt={forged}");
    let a_then_forged = format!("a=1,jwt={forged}");
    let q_two = format!("/q/x?access_token={valid}&access_token={forged}");
    let q_semicolon = format!("/q/x?access_token={valid};access_token={forged}");
    let q_upper = format!("/q/x?ACCESS_TOKEN={forged}");
    let q_encoded = format!("/q/x?access%5Ftoken={forged}");
    let q_valid = format!("/q/x?access_token={valid}");
    type Case<'a> = (&'a str, &'a str, &'a str, Vec<(&'a str, &'a str)>, u16);
    let cases: Vec<Case<'_>> = vec![
        ("excluded", "GET", "/v1/health", vec![], 200),
        ("excluded, query", "GET", "/v1/health?x=1", vec![], 200),
        ("escaped letter", "GET", "/v1/%68ealth", vec![], 401),
        ("parameter", "GET", "/v1/health;a=b", vec![], 401),
        ("double slash", "GET", "/v1//health", vec![], 401),
        ("dot segment", "GET", "/v1/./health", vec![], 401),
        ("upper case", "GET", "/V1/HEALTH", vec![], 401),
        ("trailing slash", "GET", "/v1/health/", vec![], 401),
        ("escaped #", "GET", "/v1/health%23x", vec![], 400),
        ("escaped ?", "GET", "/v1/health%3fx", vec![], 400),
        ("escaped slash", "GET", "/v1%2fhealth", vec![], 400),
        ("double encoding", "GET", "/v1/%2568ealth", vec![], 400),
        ("escaped dots", "GET", "/v1/x/%2e%2e/health", vec![], 401),
        (
            "absolute form",
            "GET",
            "http://api.example.com/v1/health",
            vec![],
            401,
        ),
        ("lower-case method", "get", "/v1/health", vec![], 401),
        (
            "override header",
            "POST",
            "/v1/health",
            vec![("x-http-method-override", "GET")],
            400,
        ),
        (
            "underscored override header",
            "POST",
            "/v1/health",
            vec![("x_http_method", "GET")],
            400,
        ),
        (
            "override parameter",
            "POST",
            "/v1/health?_method=GET",
            vec![],
            400,
        ),
        (
            "overrides joined",
            "POST",
            "/v1/x",
            vec![
                ("x-http-method-override", "GET"),
                ("x-http-method-override", "DELETE"),
            ],
            400,
        ),
        (
            "preflight without bypass",
            "OPTIONS",
            "/v1/x",
            vec![
                ("origin", "https://app.example"),
                ("access-control-request-method", "GET"),
            ],
            401,
        ),
        (
            "Basic beside forged",
            "GET",
            "/open/x",
            vec![
                ("authorization", "Basic dXNlcjpwYXNz"),
                ("authorization", &bf),
            ],
            401,
        ),
        (
            "valid beside forged",
            "GET",
            "/v1/x",
            vec![("authorization", &bv), ("authorization", &bf)],
            401,
        ),
        (
            "valid, case-spelled twice",
            "GET",
            "/v1/x",
            vec![("Authorization", &bv), ("AUTHORIZATION", &bf)],
            401,
        ),
        ("allowed missing", "GET", "/open/x", vec![], 200),
        (
            "allowed missing, other scheme",
            "GET",
            "/open/x",
            vec![("authorization", "Basic dXNlcjpwYXNz")],
            200,
        ),
        (
            "JWT scheme with forged",
            "GET",
            "/open/x",
            vec![("authorization", &jwt_scheme)],
            401,
        ),
        (
            "cookie forged in a second header",
            "GET",
            "/c/x",
            vec![("cookie", "a=1"), ("cookie", &jwt_forged)],
            401,
        ),
        (
            "cookie twice",
            "GET",
            "/c/x",
            vec![("cookie", &jwt_valid), ("cookie", &jwt_forged)],
            401,
        ),
        (
            "cookie after a comma",
            "GET",
            "/c/x",
            vec![("cookie", &a_then_forged)],
            401,
        ),
        (
            "cookie valid",
            "GET",
            "/c/x",
            vec![("cookie", &jwt_valid)],
            200,
        ),
        ("query twice", "GET", &q_two, vec![], 401),
        ("query after ;", "GET", &q_semicolon, vec![], 401),
        ("query upper case", "GET", &q_upper, vec![], 401),
        ("query escaped name", "GET", &q_encoded, vec![], 401),
        ("query valid", "GET", &q_valid, vec![], 200),
        (
            "custom header underscored",
            "GET",
            "/x/y",
            vec![("x_api_token", &forged)],
            401,
        ),
        (
            "custom header both spellings",
            "GET",
            "/x/y",
            vec![("x-api-token", &valid), ("x_api_token", &forged)],
            401,
        ),
        (
            "client identity overwritten",
            "GET",
            "/v1/x",
            vec![("authorization", &bv), ("x-jwt-sub", "mallory")],
            200,
        ),
        (
            "no rule",
            "GET",
            "/elsewhere",
            vec![("authorization", &bv)],
            403,
        ),
        (
            "routes to admin after dots",
            "GET",
            "/v1/../admin/x",
            vec![("authorization", &bv)],
            403,
        ),
    ];
    for (name, method, path, headers, status) in &cases {
        let over_http =
            http_answer(&Client::new(server.addr()).request_with(method, path, HOST, headers));
        assert_eq!(over_http.0, *status, "{name} over HTTP: {over_http:?}");
        for (form, request) in [
            ("headers", check_request(method, HOST, path, headers)),
            ("header_map", check_request_raw(method, HOST, path, headers)),
        ] {
            let got = answer(
                &grpc
                    .check(request)
                    .unwrap_or_else(|e| panic!("{name} ({form}): {e}")),
            );
            assert_eq!(
                (got.status, got.headers.clone(), got.body.clone()),
                over_http,
                "{name} ({form}): the gRPC answer differs from the HTTP one"
            );
        }
    }
}

/// Envoy's `headers` map cannot tell one header whose value holds a comma
/// from a repeated header it joined, and the gRPC face reads every comma as
/// a line break. Where that changes the decision, it is only ever stricter
/// than the HTTP face: a lone `Authorization: Digest username="a", …` (or
/// AWS SigV4) under `on_missing = "allow"` is 401 `malformed` over gRPC and
/// 200 over HTTP (a documented, fail-closed divergence; `header_map` keeps
/// the lines and agrees with HTTP). Asserted here: gRPC never allows what
/// HTTP denies, and `header_map` decides as HTTP does.
#[test]
fn comma_readings_are_never_laxer_than_http() {
    let env = Env::new("commas");
    let server = env.serve("");
    let grpc = GrpcClient::connect(server.grpc_addr().unwrap());
    let valid = env.token("");
    let forged = env.forged();
    let digest = r#"Digest username="a", realm="r", nonce="n", response="x""#;
    let sigv4 = "AWS4-HMAC-SHA256 Credential=AK/20240101/us-east-1/s3/aws4_request, \
                 SignedHeaders=host, Signature=abc";
    let valid_comma = format!("Bearer {valid},");
    let forged_cookie = format!("a=\"x,jwt={forged}\"");
    let override_twice = "GET,GET";
    for (name, path, header, value) in [
        (
            "Digest, missing allowed",
            "/open/x",
            "authorization",
            digest,
        ),
        ("SigV4, missing allowed", "/open/x", "authorization", sigv4),
        ("Digest, token required", "/v1/x", "authorization", digest),
        (
            "valid token, trailing comma",
            "/v1/x",
            "authorization",
            &valid_comma,
        ),
        (
            "cookie value quoting a comma",
            "/c/x",
            "cookie",
            &forged_cookie,
        ),
        (
            "override repeated in one line",
            "/v1/health",
            "x-http-method-override",
            override_twice,
        ),
    ] {
        let headers = [(header, value)];
        let method = if header == "x-http-method-override" {
            "POST"
        } else {
            "GET"
        };
        let over_http =
            http_answer(&Client::new(server.addr()).request_with(method, path, HOST, &headers));
        let joined = answer(
            &grpc
                .check(check_request(method, HOST, path, &headers))
                .unwrap(),
        );
        let lines = answer(
            &grpc
                .check(check_request_raw(method, HOST, path, &headers))
                .unwrap(),
        );
        assert!(
            joined.status != 200 || over_http.0 == 200,
            "{name}: gRPC allows what HTTP answers {over_http:?}"
        );
        assert_eq!(
            (lines.status, lines.headers.clone(), lines.body.clone()),
            over_http,
            "{name}: header_map differs from HTTP"
        );
    }
}

// ---------------------------------------------------------------------------
// Held: what only a CheckRequest can state
// ---------------------------------------------------------------------------

fn assert_not_ok(grpc: &GrpcClient, name: &str, request: CheckRequest) -> Answer {
    let got = answer(
        &grpc
            .check(request)
            .unwrap_or_else(|e| panic!("{name}: {e}")),
    );
    assert_ne!(got.code, code::OK, "{name}: allowed: {got:?}");
    assert_ne!(got.status, 200, "{name}: {got:?}");
    got
}

/// Statements no HTTP request line can make, each around the excluded
/// `GET /v1/health` or a forged token: none of them is allowed.
#[test]
fn odd_statements_are_never_allowed() {
    let env = Env::new("statements");
    let server = env.serve("");
    let grpc = GrpcClient::connect(server.grpc_addr().unwrap());
    let valid = bearer(&env.token(""));
    let forged = bearer(&env.forged());

    for (name, method, host, path) in [
        ("empty path", "GET", HOST, ""),
        ("relative path", "GET", HOST, "v1/health"),
        ("asterisk", "GET", HOST, "*"),
        ("raw fragment", "GET", HOST, "/v1/health#x"),
        ("NUL in path", "GET", HOST, "/v1/health\0"),
        ("NUL escaped", "GET", HOST, "/v1/health%00"),
        ("backslash", "GET", HOST, "/v1\\health"),
        ("fullwidth letter", "GET", HOST, "/v1/\u{ff48}ealth"),
        ("empty method", "", HOST, "/v1/health"),
        ("method with a space", "GET ", HOST, "/v1/health"),
        ("method with NUL", "GET\0", HOST, "/v1/health"),
        ("scheme-relative", "GET", HOST, "//v1/health"),
        ("empty host, protected path", "GET", "", "/v1/x"),
    ] {
        assert_not_ok(&grpc, name, check_request(method, HOST, path, &[]));
        let mut request = check_request(method, HOST, path, &[]);
        http_of(&mut request).host = host.to_owned();
        assert_not_ok(&grpc, &format!("{name} (host {host:?})"), request);
    }

    // Pseudo-headers that disagree with the statement: `path` decides.
    let mut request = check_request("GET", HOST, "/v1/x", &[]);
    let http = http_of(&mut request);
    http.headers
        .insert(":path".to_owned(), "/v1/health".to_owned());
    http.headers.insert(":method".to_owned(), "GET".to_owned());
    assert_not_ok(&grpc, ":path says the excluded endpoint", request);
    let mut request = check_request("POST", HOST, "/v1/health", &[]);
    http_of(&mut request)
        .headers
        .insert(":method".to_owned(), "GET".to_owned());
    assert_not_ok(&grpc, ":method says GET", request);

    // The fragment field (always empty from Envoy) changes nothing.
    let mut request = check_request("GET", HOST, "/v1/x", &[]);
    http_of(&mut request).fragment = "/../health".to_owned();
    assert_not_ok(&grpc, "fragment field", request);

    // header_map: a forged duplicate, and raw_value beside value.
    let request = check_request_raw(
        "GET",
        HOST,
        "/v1/x",
        &[("authorization", &valid), ("authorization", &forged)],
    );
    assert_not_ok(&grpc, "header_map duplicate", request);
    let mut request = check_request_raw("GET", HOST, "/v1/x", &[]);
    http_of(&mut request)
        .header_map
        .as_mut()
        .unwrap()
        .headers
        .push(HeaderValue {
            key: "authorization".to_owned(),
            value: valid.clone(),
            raw_value: forged.clone().into_bytes(),
        });
    assert_not_ok(&grpc, "raw_value forged beside a valid value", request);
    let mut request = check_request_raw("GET", HOST, "/v1/x", &[]);
    http_of(&mut request)
        .header_map
        .as_mut()
        .unwrap()
        .headers
        .push(HeaderValue {
            key: "Authorization".to_owned(),
            value: forged.clone(),
            raw_value: Vec::new(),
        });
    assert_not_ok(&grpc, "header_map value only, upper-case key", request);
    // Both maps: the empty header_map is no header_map.
    let mut request = check_request("GET", HOST, "/v1/x", &[("authorization", &forged)]);
    http_of(&mut request).header_map = Some(HeaderMap::default());
    assert_not_ok(&grpc, "empty header_map beside headers", request);
    // Two keys in the map that differ only by case.
    let mut request = check_request("GET", HOST, "/v1/x", &[("authorization", &valid)]);
    http_of(&mut request)
        .headers
        .insert("Authorization".to_owned(), forged.clone());
    assert_not_ok(&grpc, "map keys differing by case", request);
    // Empty parts of a joined value are not tokens, nor do they hide one.
    let joined = format!(",,{forged},");
    assert_not_ok(
        &grpc,
        "empty parts around a forged token",
        check_request("GET", HOST, "/open/x", &[("authorization", &joined)]),
    );
    // The query field, even beside an excluded path.
    let mut request = check_request("GET", HOST, "/v1/health", &[]);
    http_of(&mut request).query = "x=1".to_owned();
    assert_not_ok(&grpc, "query field", request);

    // context_extensions: only `jwtgate_rule`, spelled exactly, names a rule.
    for (key, value, status) in [
        ("JWTGATE_RULE", "open", 401),
        ("jwtgate_rule ", "open", 401),
        ("jwtgate-rule", "open", 401),
        ("jwtgate_rule", "Open", 403),
        ("jwtgate_rule", "open\0", 403),
        ("jwtgate_rule", " open", 403),
        ("jwtgate_rule", "", 403),
        ("jwtgate_rule", "open,api", 403),
    ] {
        let request = with_extension(check_request("GET", HOST, "/v1/x", &[]), key, value);
        let got = assert_not_ok(&grpc, &format!("{key:?} = {value:?}"), request);
        assert_eq!(got.status, status, "{key:?} = {value:?}: {got:?}");
    }
    // A named rule's exclusions are read as routing reads them.
    for path in [
        "/open/public;x",
        "/open/./public",
        "/open/%70ublic",
        "/OPEN/public",
    ] {
        let request = with_extension(
            check_request("GET", HOST, path, &[("authorization", &forged)]),
            "jwtgate_rule",
            "open",
        );
        assert_not_ok(&grpc, &format!("named rule, {path}"), request);
    }
    let request = with_extension(
        check_request(
            "POST",
            HOST,
            "/open/public",
            &[("x-http-method-override", "GET")],
        ),
        "jwtgate_rule",
        "open",
    );
    assert_not_ok(
        &grpc,
        "named rule, method override into the exclusion",
        request,
    );
    // Naming an `on_missing = "allow"` rule does not excuse a forged token.
    let request = with_extension(
        check_request("GET", HOST, "/v1/x", &[("authorization", &forged)]),
        "jwtgate_rule",
        "open",
    );
    assert_not_ok(&grpc, "named allow-missing rule, forged token", request);
}

/// Many headers, or one header of many comma-joined parts, within the
/// message limit: decided, quickly, with the token among them found.
#[test]
fn huge_header_counts_are_decided() {
    let env = Env::new("counts");
    let server = env.serve("");
    let grpc = GrpcClient::connect(server.grpc_addr().unwrap());
    let valid = bearer(&env.token(""));
    let forged = bearer(&env.forged());

    let commas = ",".repeat(200_000);
    let joined = format!("{commas}{forged}");
    let started = Instant::now();
    assert_not_ok(
        &grpc,
        "forged after 200,000 commas",
        check_request("GET", HOST, "/open/x", &[("authorization", &joined)]),
    );
    let many: Vec<(String, String)> = (0..10_000)
        .map(|i| (format!("x-h{i}"), "v".to_owned()))
        .collect();
    let mut with_forged: Vec<(&str, &str)> = many
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    with_forged.push(("authorization", &valid));
    with_forged.push(("authorization", &forged));
    for request in [
        check_request("GET", HOST, "/v1/x", &with_forged),
        check_request_raw("GET", HOST, "/v1/x", &with_forged),
    ] {
        assert_not_ok(&grpc, "10,000 headers, then two tokens", request);
    }
    with_forged.pop();
    let got = answer(
        &grpc
            .check(check_request_raw("GET", HOST, "/v1/x", &with_forged))
            .unwrap(),
    );
    assert_eq!(got.code, code::OK, "10,000 headers, then a valid token");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------
// Held: transport abuse
// ---------------------------------------------------------------------------

/// Messages no Envoy sends: each is refused with an error (never an OK
/// answer), and the connection goes on serving checks.
#[test]
fn malformed_framing_is_refused_and_the_connection_carries_on() {
    let env = Env::new("framing");
    let server = env.serve("");
    let mut h2 = RawH2::connect(server.grpc_addr().unwrap());
    let wait = Duration::from_secs(10);
    let forged = bearer(&env.forged());
    let valid = bearer(&env.token(""));
    let excluded = check_request("GET", HOST, "/v1/health", &[]).encode_to_vec();
    let forged_check =
        check_request("GET", HOST, "/v1/x", &[("authorization", &forged)]).encode_to_vec();
    let valid_check =
        check_request("GET", HOST, "/v1/x", &[("authorization", &valid)]).encode_to_vec();

    let mut truncated = framed(0, &excluded).to_vec();
    truncated.truncate(truncated.len() - 3);
    let mut two = framed(0, &forged_check).to_vec();
    two.extend_from_slice(&framed(0, &valid_check));
    type Frames<'a> = (&'a str, Vec<(&'a str, &'a str)>, Bytes);
    let cases: Vec<Frames<'_>> = vec![
        ("compressed flag, no encoding", vec![], framed(1, &excluded)),
        (
            "compressed flag, gzip",
            vec![("grpc-encoding", "gzip")],
            framed(1, &excluded),
        ),
        (
            "identity encoding, compressed flag",
            vec![("grpc-encoding", "identity")],
            framed(1, &excluded),
        ),
        ("flag 2", vec![], framed(2, &excluded)),
        ("truncated", vec![], Bytes::from(truncated)),
        ("prefix only", vec![], Bytes::from_static(&[0, 0, 0, 0, 9])),
        ("empty body", vec![], Bytes::new()),
        (
            "announces more than the limit",
            vec![],
            Bytes::from_static(&[0, 0xff, 0xff, 0xff, 0xff]),
        ),
        ("not a CheckRequest", vec![], framed(0, &[0xff; 16])),
    ];
    for (name, headers, body) in cases {
        let ended = h2.call(CHECK, &headers, body, wait);
        assert!(
            matches!(&ended, Ended::Status(status, _) if status != "0"),
            "{name}: not a gRPC error: {ended:?}"
        );
    }
    // Two messages in one unary call: the first is the one decided (Envoy
    // sends one), so a valid second one cannot rescue a forged first.
    let ended = h2.call(CHECK, &[], Bytes::from(two), wait);
    let response = decoded(&ended).unwrap_or_else(|| panic!("{ended:?}"));
    assert_eq!(answer(&response).code, code::UNAUTHENTICATED);
    // Content types and methods tonic does not check do not change the decision.
    for (name, headers) in [
        ("text/plain", vec![("content-type", "text/plain")]),
        ("grpc+json", vec![("content-type", "application/grpc+json")]),
    ] {
        let ended = h2.call(CHECK, &headers, framed(0, &forged_check), wait);
        assert!(!is_ok_answer(&ended), "{name}: allowed: {ended:?}");
    }
    let ended = h2.call(CHECK, &[], framed(0, &excluded), wait);
    assert!(
        is_ok_answer(&ended),
        "the connection still serves: {ended:?}"
    );
}

/// Rapid resets (CVE-2023-44487's pattern), metadata past the limit, and an
/// unknown path, on one connection: the face stays up for the next client.
#[test]
fn resets_and_huge_metadata_do_not_take_the_face_down() {
    let env = Env::new("h2-abuse");
    let server = env.serve("");
    let addr = server.grpc_addr().unwrap();
    let started = Instant::now();
    let mut h2 = RawH2::connect(addr);
    let mut reset = 0;
    for _ in 0..5_000 {
        match h2.open(CHECK, &[]) {
            Ok((_response, mut stream)) => {
                stream.send_reset(h2::Reason::CANCEL);
                reset += 1;
            }
            Err(_) => break,
        }
        if started.elapsed() > Duration::from_secs(20) {
            break;
        }
    }
    h2.idle(Duration::from_millis(200));
    assert!(reset > 0);

    let mut h2 = RawH2::connect(addr);
    let big = "x".repeat(64 * 1024);
    let excluded = check_request("GET", HOST, "/v1/health", &[]).encode_to_vec();
    let ended = h2.call(
        CHECK,
        &[("x-big", &big)],
        framed(0, &excluded),
        Duration::from_secs(10),
    );
    assert!(!matches!(ended, Ended::Pending), "{ended:?}");
    let many: Vec<(String, String)> = (0..2_000)
        .map(|i| (format!("x-m{i}"), "v".repeat(16)))
        .collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let mut h2 = RawH2::connect(addr);
    let ended = h2.call(CHECK, &many, framed(0, &excluded), Duration::from_secs(10));
    assert!(!matches!(ended, Ended::Pending), "{ended:?}");

    let got = check_within(
        addr,
        check_request("GET", HOST, "/v1/health", &[]),
        Duration::from_secs(10),
    );
    assert!(
        got.as_ref()
            .is_ok_and(|response| answer(response).code == code::OK),
        "{got:?}"
    );
}

/// Health: a watch of an unknown service says so and stays a watch; many
/// watches on one connection leave checks answered; a drain ends them all
/// and the server exits in time.
#[test]
fn health_watches_do_not_block_checks_or_the_drain() {
    let env = Env::new("watches");
    let mut server = env.serve("drain_timeout = \"2s\"");
    let grpc = GrpcClient::connect(server.grpc_addr().unwrap());
    let mut health = tonic_health::pb::health_client::HealthClient::new(grpc.channel());
    let mut unknown = grpc
        .block(health.watch(tonic_health::pb::HealthCheckRequest {
            service: "no.such.Service".to_owned(),
        }))
        .unwrap()
        .into_inner();
    const SERVICE_UNKNOWN: i32 = 3;
    assert_eq!(
        grpc.block(unknown.message()).unwrap().unwrap().status,
        SERVICE_UNKNOWN
    );
    let mut watches = Vec::new();
    for _ in 0..100 {
        watches.push(
            grpc.block(health.watch(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            }))
            .unwrap()
            .into_inner(),
        );
    }
    let got = answer(
        &grpc
            .check(check_request("GET", HOST, "/v1/health", &[]))
            .unwrap(),
    );
    assert_eq!(got.code, code::OK);
    server.sigterm();
    assert!(server.wait_exit(Duration::from_secs(15)).success());
    drop((watches, unknown));
}

/// The draining path with a stalled call: the drain timeout cuts it off and
/// the server exits, rather than waiting for the client.
#[test]
fn a_drain_does_not_wait_for_a_stalled_call() {
    let env = Env::new("drain-stalled");
    let mut server = env.serve("drain_timeout = \"1s\"");
    let mut h2 = RawH2::connect(server.grpc_addr().unwrap());
    let (response, mut stream) = h2.open(CHECK, &[]).unwrap();
    stream
        .send_data(Bytes::from_static(&[0, 0, 0, 1, 0, 1]), false)
        .unwrap();
    h2.idle(Duration::from_millis(300));
    server.sigterm();
    let started = Instant::now();
    let ended = h2.wait(response, Duration::from_secs(10));
    assert!(!is_ok_answer(&ended), "{ended:?}");
    assert!(server.wait_exit(Duration::from_secs(10)).success());
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    drop(stream);
}
