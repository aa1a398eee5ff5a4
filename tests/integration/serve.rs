//! Integration tests of `jwtgate serve` against the contract in issue 4: the
//! real binary on ephemeral loopback ports, driven with raw bytes over std
//! `TcpStream`s (harness in `common/server.rs`), exact status lines, header
//! lists and bodies asserted. Every scenario runs once per I/O backend
//! (`--io uring` and `--io epoll`, modules `uring::` and `epoll::`), with the
//! clock pinned by `--now`.
//!
//! Keys: a JWKS built here from `tests/data` (the RSA key `rsa2048-a` with kid
//! `rsa-a`, and the Ed25519 key with a kid that needs %-encoding); tokens are
//! minted with `common::mint`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use crate::common;

use std::path::PathBuf;
use std::time::Duration;

use common::TempDir;
use common::server::{
    Client, Conn, IO_TIMEOUT, ReadOutcome, Response, Server, get, request_bytes, run_jwtgate,
    run_jwtgate_bounded,
};
use common::{compact, mint, signing_key};
use jwtgate::Algorithm;
use jwtgate::internals::SigningKey;

/// The pinned clock, as `--now` takes it.
const NOW: &str = "1700000000";
const T: i64 = 1_700_000_000;
const ISS: &str = "https://idp.test/";
const AUD: &str = "api";
const KID_RSA: &str = "rsa-a";
/// A kid with a space, a `%` and a non-ASCII letter: emitted as `%XX`.
const KID_ED: &str = "ed 1%é";

/// How long the negative check waits to see that nothing arrives.
const NOTHING_WITHIN: Duration = Duration::from_millis(300);
/// Bound on a graceful exit after SIGTERM.
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Keys, tokens and the server under test
// ---------------------------------------------------------------------------

/// The JWKS every test serves: `rsa2048-a` (RS256, kid `rsa-a`) and the
/// Ed25519 key (EdDSA, kid [`KID_ED`]), built from the PEM files in `tests/data`.
fn jwks_text() -> String {
    format!(
        r#"{{"keys":[{},{}]}}"#,
        common::rsa_jwk(KID_RSA),
        common::ed25519_jwk(KID_ED)
    )
}

/// Signing keys and the JWKS file on disk.
struct Keys {
    _dir: TempDir,
    jwks: PathBuf,
    rsa_a: SigningKey,
    rsa_b: SigningKey,
    ed: SigningKey,
}

impl Keys {
    fn new() -> Keys {
        let dir = TempDir::new("serve-keys");
        let jwks = dir.write("keys.jwks.json", jwks_text());
        Keys {
            _dir: dir,
            jwks,
            rsa_a: signing_key("rsa2048-a", Algorithm::Rs256),
            rsa_b: signing_key("rsa2048-b", Algorithm::Rs256),
            ed: signing_key("ed25519", Algorithm::EdDsa),
        }
    }

    fn jwks(&self) -> &str {
        self.jwks.to_str().unwrap()
    }

    /// RS256 with `rsa2048-a` over exactly these JSON texts.
    fn rs256(&self, header: &str, claims: &str) -> String {
        mint(header, claims, &self.rsa_a, Algorithm::Rs256)
    }

    /// A valid RS256 token (kid `rsa-a`) for `sub` (JSON string contents).
    fn token(&self, sub: &str) -> String {
        self.rs256(RS256_KID, &claims(sub))
    }

    fn valid(&self) -> String {
        self.token("alice")
    }

    fn ed25519(&self, claims: &str) -> String {
        mint(
            &format!(r#"{{"alg":"EdDSA","kid":"{KID_ED}"}}"#),
            claims,
            &self.ed,
            Algorithm::EdDsa,
        )
    }

    /// Signed with `rsa2048-b` but naming `rsa-a`.
    fn bad_signature(&self) -> String {
        mint(RS256_KID, &claims("alice"), &self.rsa_b, Algorithm::Rs256)
    }

    fn expired(&self) -> String {
        self.rs256(
            RS256_KID,
            &format!(
                r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"alice","iat":{},"exp":{}}}"#,
                T - 7200,
                T - 3600
            ),
        )
    }
}

const RS256_KID: &str = r#"{"alg":"RS256","kid":"rsa-a","typ":"JWT"}"#;

/// Claims valid at [`NOW`] for an hour, for `sub` (JSON string contents).
fn claims(sub: &str) -> String {
    format!(
        r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"{sub}","iat":{T},"exp":{}}}"#,
        T + 3600
    )
}

/// A running server and the keys it trusts.
struct Fixture {
    server: Server,
    keys: Keys,
}

impl Fixture {
    fn addr(&self) -> std::net::SocketAddr {
        self.server.addr()
    }

    fn client(&self) -> Client {
        Client::new(self.server.addr())
    }

    fn conn(&self) -> Conn {
        Conn::open(self.server.addr())
    }
}

/// `serve --jwks … --now NOW --issuer ISS --audience AUD --io IO EXTRA…`.
fn serve(io: &str, extra: &[&str]) -> Fixture {
    serve_with_issuer(io, ISS, extra)
}

fn serve_with_issuer(io: &str, issuer: &str, extra: &[&str]) -> Fixture {
    let keys = Keys::new();
    let mut args = vec![
        "--jwks",
        keys.jwks(),
        "--now",
        NOW,
        "--issuer",
        issuer,
        "--audience",
        AUD,
        "--io",
        io,
    ];
    args.extend_from_slice(extra);
    let server = Server::start(&args);
    assert_eq!(
        server.io(),
        io,
        "readiness line {:?} names another backend than --io {io}",
        server.ready_line()
    );
    Fixture { server, keys }
}

// ---------------------------------------------------------------------------
// Expected responses
// ---------------------------------------------------------------------------

/// The contract's claim encoding: visible ASCII other than `%` as is, every
/// other byte of the UTF-8 value as upper-case `%XX`.
fn pct(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if (0x21..=0x7e).contains(&b) && b != b'%' {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

/// Every header value is visible ASCII or blanks: no byte a client could
/// read as a line break or a second header.
fn assert_header_bytes_clean(r: &Response) {
    for (name, value) in &r.headers {
        assert!(
            value.bytes().all(|b| (0x20..=0x7e).contains(&b)),
            "header {name} carries a byte outside visible ASCII: {value:?}"
        );
    }
    // Lines end in CR LF; no CR or LF anywhere else.
    let head = &r.head[..r.head.len() - 4];
    let text = std::str::from_utf8(head).unwrap();
    for line in text.split("\r\n") {
        assert!(
            !line.contains(['\r', '\n']),
            "bare CR or LF in the head: {:?}",
            r.head_text()
        );
    }
}

/// `200 OK` with exactly the allow headers, in order.
fn assert_allowed(r: &Response, sub: &str, iss: &str, kid: &str, payload: &str, close: bool) {
    assert!(
        r.head.starts_with(b"HTTP/1.1 200 OK\r\n"),
        "expected 200 OK, got {:?}\n{}",
        r.head_text(),
        String::from_utf8_lossy(&r.body)
    );
    let mut expected = vec![
        ("content-length", "0"),
        ("x-jwtgate-outcome", "valid"),
        ("x-jwt-sub", sub),
        ("x-jwt-iss", iss),
        ("x-jwt-kid", kid),
        ("x-jwt-payload", payload),
    ];
    if close {
        expected.push(("connection", "close"));
    }
    assert_eq!(r.headers, owned(&expected), "head:\n{}", r.head_text());
    assert!(r.body.is_empty(), "body {:?}", r.body_text());
    assert_header_bytes_clean(r);
}

/// `401 Unauthorized` with exactly the deny headers and `{"error":"<outcome>"}`.
fn assert_denied(r: &Response, outcome: &str, close: bool) {
    let body = format!(r#"{{"error":"{outcome}"}}"#);
    let challenge = if outcome == "missing" {
        r#"Bearer realm="jwtgate""#.to_owned()
    } else {
        format!(r#"Bearer realm="jwtgate", error="invalid_token", error_description="{outcome}""#)
    };
    let length = body.len().to_string();
    let mut expected = vec![
        ("content-type", "application/json"),
        ("content-length", length.as_str()),
        ("cache-control", "no-store"),
        ("www-authenticate", challenge.as_str()),
        ("x-jwtgate-outcome", outcome),
    ];
    if close {
        expected.push(("connection", "close"));
    }
    assert!(
        r.head.starts_with(b"HTTP/1.1 401 Unauthorized\r\n"),
        "expected 401 ({outcome}), got {:?}\n{}",
        r.head_text(),
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(
        r.headers,
        owned(&expected),
        "expected {outcome}; head:\n{}",
        r.head_text()
    );
    assert_eq!(r.body_text(), body);
    assert_header_bytes_clean(r);
}

/// The reason phrases RFC 9110 (and, where it renamed them, RFC 7231) give.
fn reasons(status: u16) -> &'static [&'static str] {
    match status {
        400 => &["Bad Request"],
        404 => &["Not Found"],
        408 => &["Request Timeout"],
        413 => &["Content Too Large", "Payload Too Large"],
        414 => &["URI Too Long"],
        431 => &["Request Header Fields Too Large"],
        500 => &["Internal Server Error"],
        501 => &["Not Implemented"],
        503 => &["Service Unavailable"],
        _ => &[],
    }
}

/// A protocol error: `status`, `connection: close`, JSON `{"error":name,"detail":…}`.
fn assert_protocol_error(r: &Response, status: u16, name: &str) {
    assert_eq!(
        (r.version.as_str(), r.status),
        ("HTTP/1.1", status),
        "expected {status} {name}, got:\n{}{}",
        r.head_text(),
        String::from_utf8_lossy(&r.body)
    );
    assert!(
        reasons(status).contains(&r.reason.as_str()),
        "reason phrase {:?} for {status}",
        r.reason
    );
    let length = r.body.len().to_string();
    assert_eq!(
        r.headers,
        owned(&[
            ("content-type", "application/json"),
            ("content-length", &length),
            ("connection", "close"),
        ]),
        "head:\n{}",
        r.head_text()
    );
    let body: serde_json::Value = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", r.body_text()));
    let object = body.as_object().expect("body is a JSON object");
    assert_eq!(object.len(), 2, "body {body}");
    assert_eq!(body["error"], name, "body {body}");
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "body {body}"
    );
}

/// The bytes of `GET path` carrying `Authorization: <value>`.
fn get_auth(path: &str, authorization: &str) -> Vec<u8> {
    request_bytes("GET", path, &[("Authorization", authorization)], b"")
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Sends `bytes` on a fresh connection, expects protocol error `status`/`name`, then EOF.
fn expect_protocol_error(f: &Fixture, bytes: &[u8], status: u16, name: &str) {
    let mut conn = f.conn();
    conn.send(bytes);
    let r = conn.try_read_response().unwrap_or_else(|e| {
        panic!(
            "{status} {name} for {:?}: {e}",
            String::from_utf8_lossy(bytes)
        )
    });
    assert_protocol_error(&r, status, name);
    conn.expect_eof();
}

// ---------------------------------------------------------------------------
// One test per scenario and I/O backend
// ---------------------------------------------------------------------------

macro_rules! for_each_io {
    ($($name:ident),* $(,)?) => {
        mod uring {
            $( #[test] fn $name() { super::$name("uring"); } )*
        }
        mod epoll {
            $( #[test] fn $name() { super::$name("epoll"); } )*
        }
    };
}

for_each_io!(
    allowed_has_exact_headers,
    forward_payload_is_the_payload_segment,
    claim_values_are_percent_encoded,
    denied_has_exact_headers_and_body,
    missing_token_has_no_error_attribute,
    bearer_scheme_variants_and_raw_token,
    two_authorization_headers_are_malformed,
    keep_alive_serves_many_requests_on_one_connection,
    pipelined_requests_are_answered_in_order,
    request_arriving_byte_by_byte_is_answered,
    header_block_over_limit_is_431,
    request_line_over_limit_is_414,
    garbage_and_bad_content_length_are_400,
    content_length_with_transfer_encoding_is_400,
    body_over_limit_is_413,
    body_within_limit_is_discarded_and_next_request_answered,
    transfer_encoding_other_than_chunked_is_400,
    http10_is_answered_then_closed,
    connection_close_is_honoured,
    slow_headers_get_408_then_close,
    idle_connection_is_closed_silently,
    max_connections_makes_accept_wait,
    sigterm_finishes_in_flight_request_then_exits,
    sigterm_closes_idle_connections,
    sigint_shuts_down_like_sigterm,
    drain_timeout_cuts_off_stragglers,
    demo_mode_starts,
    verify_listen_port_matches_batch_verify,
    admin_healthz_and_unknown_path,
    head_responses_have_no_body,
    empty_lines_between_requests_are_ignored,
    discarded_body_does_not_shorten_the_next_header_timeout,
    client_that_never_reads_is_cut_off,
    verify_port_refuses_too_many_lines,
    drain_delay_turns_health_503_while_still_serving,
);

fn allowed_has_exact_headers(io: &str) {
    let f = serve(io, &[]);
    let mut client = f.client();
    let r = client.get_bearer("/api/orders?id=1", &f.keys.valid());
    assert_allowed(&r, "alice", ISS, KID_RSA, "", false);

    // No kid: the one RS256 key of the set is selected; x-jwt-kid is empty.
    let no_kid = f.keys.rs256(r#"{"alg":"RS256"}"#, &claims("bob"));
    let r = client.get_bearer("/", &no_kid);
    assert_allowed(&r, "bob", ISS, "", "", false);

    // No sub: x-jwt-sub is present and empty.
    let no_sub = f.keys.rs256(
        RS256_KID,
        &format!(r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{}}}"#, T + 60),
    );
    let r = client.get_bearer("/", &no_sub);
    assert_allowed(&r, "", ISS, KID_RSA, "", false);

    // Ed25519 key whose kid needs %-encoding.
    let ed = f.keys.ed25519(&claims("carol"));
    let r = client.get_bearer("/", &ed);
    assert_allowed(&r, "carol", ISS, "ed%201%25%C3%A9", "", false);
    assert_eq!(pct(KID_ED), "ed%201%25%C3%A9");

    // Any method and path is an authorization check, /v1/verify included: a
    // client's own POST /v1/verify through Envoy must never reach a batch face.
    let auth = bearer(&f.keys.valid());
    for (method, path, body) in [
        ("POST", "/api/orders", &b"{\"qty\":1}"[..]),
        ("DELETE", "/api/orders/7", b""),
        ("PUT", "/x", b"abc"),
        ("GET", "/v1/verify", b""),
        ("POST", "/v1/verify", b"eyJ.e30.sig\n"),
        ("OPTIONS", "*", b""),
    ] {
        let r = client.conn().request(&request_bytes(
            method,
            path,
            &[("Authorization", &auth)],
            body,
        ));
        assert_allowed(&r, "alice", ISS, KID_RSA, "", false);
    }
}

fn forward_payload_is_the_payload_segment(io: &str) {
    let f = serve(io, &["--forward-payload"]);
    let mut client = f.client();
    let cases = [
        (f.keys.valid(), "alice", KID_RSA),
        (
            f.keys.rs256(r#"{"alg":"RS256"}"#, &claims("bob")),
            "bob",
            "",
        ),
        (f.keys.ed25519(&claims("carol")), "carol", "ed%201%25%C3%A9"),
    ];
    for (token, sub, kid) in &cases {
        let payload = token.split('.').nth(1).unwrap();
        let r = client.get_bearer("/", token);
        assert_allowed(&r, sub, ISS, kid, payload, false);
    }
    // Byte for byte, where no value is empty.
    let token = &cases[0].0;
    let r = client.get_bearer("/", token);
    let expected = format!(
        "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nx-jwtgate-outcome: valid\r\n\
         x-jwt-sub: alice\r\nx-jwt-iss: {ISS}\r\nx-jwt-kid: {KID_RSA}\r\n\
         x-jwt-payload: {}\r\n\r\n",
        token.split('.').nth(1).unwrap()
    );
    assert_eq!(r.head_text(), expected);
    // A denied request carries no payload header at all.
    let r = client.get_bearer("/", &f.keys.expired());
    assert_denied(&r, "expired", false);
}

fn claim_values_are_percent_encoded(io: &str) {
    // An issuer with a space and a non-ASCII letter, configured and in the token.
    let issuer = "https://idp.test/ä b";
    let f = serve_with_issuer(io, issuer, &["--forward-payload"]);
    // The JSON text of the sub: a space, `%`, raw and escaped non-ASCII, a quote,
    // a tab, an escaped CR LF followed by what would be a header, and DEL.
    let sub_json = r#"a b%c/é\u00e9\"\t\r\nX-Evil: 1\u007f"#;
    let sub_value = "a b%c/éé\"\t\r\nX-Evil: 1\u{7f}";
    let claims = format!(
        r#"{{"iss":"{issuer}","aud":"{AUD}","sub":"{sub_json}","exp":{}}}"#,
        T + 600
    );
    let token = f.keys.rs256(RS256_KID, &claims);
    let payload = token.split('.').nth(1).unwrap().to_owned();
    let r = f.client().get_bearer("/", &token);
    let expected_sub = "a%20b%25c/%C3%A9%C3%A9\"%09%0D%0AX-Evil:%201%7F";
    assert_eq!(pct(sub_value), expected_sub);
    assert_allowed(
        &r,
        expected_sub,
        "https://idp.test/%C3%A4%20b",
        KID_RSA,
        &payload,
        false,
    );
    assert!(
        r.header("x-evil").is_none(),
        "header injection: {:?}",
        r.head_text()
    );
    assert_eq!(r.headers.len(), 6, "head:\n{}", r.head_text());
}

fn denied_has_exact_headers_and_body(io: &str) {
    let f = serve(io, &["--max-token-len", "2000"]);
    let exp = T + 600;
    let keys = &f.keys;
    let cases = [
        ("bad_signature", keys.bad_signature()),
        ("expired", keys.expired()),
        (
            "wrong_issuer",
            keys.rs256(
                RS256_KID,
                &format!(r#"{{"iss":"https://evil.test/","aud":"{AUD}","exp":{exp}}}"#),
            ),
        ),
        (
            "wrong_audience",
            keys.rs256(
                RS256_KID,
                &format!(r#"{{"iss":"{ISS}","aud":"other","exp":{exp}}}"#),
            ),
        ),
        (
            "unknown_kid",
            keys.rs256(r#"{"alg":"RS256","kid":"nope"}"#, &claims("alice")),
        ),
        (
            "alg_not_allowed",
            compact(r#"{"alg":"none"}"#, &claims("alice"), b""),
        ),
        ("malformed", "not.a-token".to_owned()),
        ("token_too_large", "a".repeat(3000)),
    ];
    // All on one connection: a denial keeps the connection open.
    let mut client = f.client();
    // Byte for byte once.
    let r = client.get_bearer("/api", &keys.bad_signature());
    let mut raw = r.head.clone();
    raw.extend_from_slice(&r.body);
    assert_eq!(
        String::from_utf8(raw).unwrap(),
        "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: 25\r\n\
         cache-control: no-store\r\nwww-authenticate: Bearer realm=\"jwtgate\", \
         error=\"invalid_token\", error_description=\"bad_signature\"\r\n\
         x-jwtgate-outcome: bad_signature\r\n\r\n{\"error\":\"bad_signature\"}"
    );
    for (outcome, token) in &cases {
        let r = client.get_bearer("/api", token);
        assert_denied(&r, outcome, false);
    }
}

fn missing_token_has_no_error_attribute(io: &str) {
    let f = serve(io, &[]);
    let mut client = f.client();
    let r = client.get("/api", &[]);
    assert_denied(&r, "missing", false);
    // Another scheme is not a bearer token.
    let r = client.get("/api", &[("Authorization", "Basic dXNlcjpwYXNz")]);
    assert_denied(&r, "missing", false);
    // The bearer scheme without a token is malformed.
    let r = client.get("/api", &[("Authorization", "Bearer")]);
    assert_denied(&r, "malformed", false);
    let r = client.get("/api", &[("Authorization", "Bearer   ")]);
    assert_denied(&r, "malformed", false);
    // Still fine afterwards.
    let r = client.get_bearer("/api", &f.keys.valid());
    assert_allowed(&r, "alice", ISS, KID_RSA, "", false);
}

fn bearer_scheme_variants_and_raw_token(io: &str) {
    let f = serve(io, &[]);
    let token = f.keys.valid();
    let mut conn = f.conn();
    for value in [
        format!("bearer {token}"),
        format!("BEARER {token}"),
        format!("Bearer    {token}"),
        format!("bearer  {token}   "),
        format!("   Bearer {token}"),
        token.clone(),
    ] {
        let r = conn.request(&get_auth("/", &value));
        assert_eq!(r.status, 200, "Authorization: {value:?}\n{}", r.head_text());
        assert_allowed(&r, "alice", ISS, KID_RSA, "", false);
    }
    // A lower-case header name is the same header.
    let r = conn.request(&request_bytes(
        "GET",
        "/",
        &[("authorization", &bearer(&token))],
        b"",
    ));
    assert_allowed(&r, "alice", ISS, KID_RSA, "", false);
}

fn two_authorization_headers_are_malformed(io: &str) {
    let f = serve(io, &[]);
    let valid = bearer(&f.keys.valid());
    let mut client = f.client();
    let r = client.get("/", &[("Authorization", &valid), ("Authorization", &valid)]);
    assert_denied(&r, "malformed", false);
    let r = client.get(
        "/",
        &[
            ("Authorization", &valid),
            ("X-Other", "1"),
            ("authorization", "Basic dXNlcjpwYXNz"),
        ],
    );
    assert_denied(&r, "malformed", false);
    let r = client.get("/", &[("Authorization", &valid)]);
    assert_allowed(&r, "alice", ISS, KID_RSA, "", false);
}

fn keep_alive_serves_many_requests_on_one_connection(io: &str) {
    let f = serve(io, &[]);
    let mut client = f.client();
    let local = client.conn().stream().local_addr().unwrap();
    for i in 0..20 {
        match i % 4 {
            0 => {
                let r = client.get_bearer(&format!("/r/{i}"), &f.keys.token(&format!("u{i}")));
                assert_allowed(&r, &format!("u{i}"), ISS, KID_RSA, "", false);
            }
            1 => assert_denied(&client.get_bearer("/", &f.keys.expired()), "expired", false),
            2 => assert_denied(&client.get("/", &[]), "missing", false),
            _ => {
                let r = client.post(
                    "/upload",
                    &[("Authorization", &bearer(&f.keys.valid()))],
                    b"x=1",
                );
                assert_allowed(&r, "alice", ISS, KID_RSA, "", false);
            }
        }
    }
    assert_eq!(client.conn().stream().local_addr().unwrap(), local);
}

fn pipelined_requests_are_answered_in_order(io: &str) {
    let f = serve(io, &[]);
    let bad = f.keys.bad_signature();
    let mut batch = Vec::new();
    let mut expected = Vec::new();
    for i in 0..100 {
        match i % 3 {
            0 => {
                let sub = format!("user-{i}");
                batch.extend(get_auth(&format!("/p/{i}"), &bearer(&f.keys.token(&sub))));
                expected.push(Some(sub));
            }
            1 => {
                batch.extend(get_auth(&format!("/p/{i}"), &bearer(&bad)));
                expected.push(None);
            }
            _ => {
                batch.extend(request_bytes("GET", &format!("/p/{i}"), &[], b""));
                expected.push(None);
            }
        }
    }
    let mut conn = f.conn();
    conn.send(&batch);
    for (i, sub) in expected.iter().enumerate() {
        let r = conn
            .try_read_response()
            .unwrap_or_else(|e| panic!("response {i} of 100: {e}"));
        match (sub, i % 3) {
            (Some(sub), _) => assert_allowed(&r, sub, ISS, KID_RSA, "", false),
            (None, 1) => assert_denied(&r, "bad_signature", false),
            (None, _) => assert_denied(&r, "missing", false),
        }
    }
    // Nothing more than the 100 answers, and the connection is still usable.
    let r = conn.request(&request_bytes(
        "GET",
        "/last",
        &[("Connection", "close")],
        b"",
    ));
    assert_denied(&r, "missing", true);
    conn.expect_eof();
}

fn request_arriving_byte_by_byte_is_answered(io: &str) {
    let f = serve(io, &[]);
    let mut conn = f.conn();
    let request = get_auth("/slow", &bearer(&f.keys.valid()));
    conn.send_bytewise(&request);
    assert_allowed(&conn.read_response(), "alice", ISS, KID_RSA, "", false);
    // A second one on the same connection, with a body, also byte by byte.
    conn.send_bytewise(&request_bytes("POST", "/slow", &[], b"0123456789"));
    assert_denied(&conn.read_response(), "missing", false);
}

fn header_block_over_limit_is_431(io: &str) {
    // The request line limit may not exceed the head limit (a startup check).
    let f = serve(
        io,
        &[
            "--max-header-bytes",
            "2048",
            "--max-request-line-bytes",
            "1024",
        ],
    );
    // Under the limit: answered.
    let padding = "p".repeat(600);
    let r = f.client().get(
        "/",
        &[
            ("X-Pad", &padding),
            ("Authorization", &bearer(&f.keys.valid())),
        ],
    );
    assert_allowed(&r, "alice", ISS, KID_RSA, "", false);
    // Over it, whole header block sent.
    let padding = "p".repeat(3000);
    expect_protocol_error(
        &f,
        &request_bytes("GET", "/", &[("X-Pad", &padding)], b""),
        431,
        "headers_too_large",
    );
    // Over it by many small headers (fewer than 100 fields).
    let many: Vec<(String, String)> = (0..90)
        .map(|i| (format!("X-H{i}"), "v".repeat(20)))
        .collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    expect_protocol_error(
        &f,
        &request_bytes("GET", "/", &many, b""),
        431,
        "headers_too_large",
    );
}

fn request_line_over_limit_is_414(io: &str) {
    let f = serve(io, &["--max-request-line-bytes", "256"]);
    let short = format!("/{}", "a".repeat(150));
    assert_denied(&f.client().get(&short, &[]), "missing", false);
    let long = format!("/{}", "a".repeat(1000));
    expect_protocol_error(
        &f,
        &request_bytes("GET", &long, &[], b""),
        414,
        "request_line_too_long",
    );
    // The line alone, still unterminated, is already too long.
    expect_protocol_error(
        &f,
        format!("GET {long}").as_bytes(),
        414,
        "request_line_too_long",
    );
}

fn garbage_and_bad_content_length_are_400(io: &str) {
    let f = serve(io, &[]);
    let cases: [&[u8]; 12] = [
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",
        b"GET\r\n\r\n",
        b"hello world\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: x\r\n\r\n",
        // RFC 9112 5.1: whitespace before the colon must be refused with 400.
        b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization : Bearer x.y.z\r\n\r\n",
        // RFC 9112 5.2: obsolete line folding (could smuggle a second value).
        b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n Authorization: Bearer x.y.z\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1 2\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
    ];
    for bytes in cases {
        expect_protocol_error(&f, bytes, 400, "bad_request");
    }
    // Pipelined behind a good request: the good one is answered, then the 400,
    // then the close; the request after the garbage is never answered.
    let valid = get_auth("/", &bearer(&f.keys.valid()));
    let mut batch = valid.clone();
    batch.extend_from_slice(b"BROKEN\r\n\r\n");
    batch.extend_from_slice(&valid);
    let mut conn = f.conn();
    conn.send(&batch);
    assert_allowed(&conn.read_response(), "alice", ISS, KID_RSA, "", false);
    assert_protocol_error(&conn.read_response(), 400, "bad_request");
    conn.expect_eof();
}

fn content_length_with_transfer_encoding_is_400(io: &str) {
    let f = serve(io, &[]);
    // The contract's table: "both CL and TE" is 400 (the smuggling shape).
    for bytes in [
        &b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
    ] {
        expect_protocol_error(&f, bytes, 400, "bad_request");
    }
}

fn body_over_limit_is_413(io: &str) {
    let f = serve(io, &["--max-body-bytes", "100"]);
    // At the limit: read and answered.
    let mut conn = f.conn();
    let r = conn.request(&request_bytes(
        "POST",
        "/",
        &[("Authorization", &bearer(&f.keys.valid()))],
        &[b'b'; 100],
    ));
    assert_allowed(&r, "alice", ISS, KID_RSA, "", false);
    // Over it: refused from the header alone, before any body byte is sent.
    expect_protocol_error(
        &f,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n",
        413,
        "body_too_large",
    );
    expect_protocol_error(
        &f,
        b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n",
        413,
        "body_too_large",
    );
}

fn body_within_limit_is_discarded_and_next_request_answered(io: &str) {
    let f = serve(io, &["--max-body-bytes", "100"]);
    // The body looks like a request: it must be skipped, never parsed.
    let smuggled = format!("GET /smuggled HTTP/1.1\r\nAuthorization: {}\r\n\r\n", "x");
    let mut batch = request_bytes("POST", "/first", &[], smuggled.as_bytes());
    batch.extend(get_auth("/second", &bearer(&f.keys.valid())));
    batch.extend(request_bytes(
        "GET",
        "/third",
        &[("Connection", "close")],
        b"",
    ));
    let mut conn = f.conn();
    conn.send(&batch);
    assert_denied(&conn.read_response(), "missing", false);
    assert_allowed(&conn.read_response(), "alice", ISS, KID_RSA, "", false);
    assert_denied(&conn.read_response(), "missing", true);
    conn.expect_eof();
}

fn transfer_encoding_other_than_chunked_is_400(io: &str) {
    let f = serve(io, &[]);
    // Never a 5xx (501 was once the answer): a proxy that fails open would
    // let the request through. Chunked bodies are read: http_framing.rs.
    for te in ["gzip", "gzip, chunked", "chunked, chunked", "identity"] {
        // By hand: request_bytes would add a Content-Length to a POST. No
        // chunk is sent, so the server has nothing unread when it closes.
        let request = format!("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: {te}\r\n\r\n");
        expect_protocol_error(&f, request.as_bytes(), 400, "bad_transfer_encoding");
    }
}

fn http10_is_answered_then_closed(io: &str) {
    let f = serve(io, &[]);
    let token = f.keys.valid();
    let mut conn = f.conn();
    let r =
        conn.request(format!("GET / HTTP/1.0\r\nAuthorization: Bearer {token}\r\n\r\n").as_bytes());
    assert_allowed(&r, "alice", ISS, KID_RSA, "", true);
    conn.expect_eof();
    // Even when the client asks for keep-alive.
    let mut conn = f.conn();
    let r = conn.request(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_denied(&r, "missing", true);
    conn.expect_eof();
}

fn connection_close_is_honoured(io: &str) {
    let f = serve(io, &[]);
    let auth = bearer(&f.keys.valid());
    let mut conn = f.conn();
    let r = conn.request(&request_bytes(
        "GET",
        "/",
        &[("Authorization", &auth), ("Connection", "close")],
        b"",
    ));
    assert_allowed(&r, "alice", ISS, KID_RSA, "", true);
    conn.expect_eof();
    let mut conn = f.conn();
    let r = conn.request(&request_bytes(
        "GET",
        "/",
        &[("connection", "Close"), ("Authorization", "Bearer x.y.z")],
        b"",
    ));
    assert_denied(&r, "malformed", true);
    conn.expect_eof();
}

fn slow_headers_get_408_then_close(io: &str) {
    let f = serve(io, &["--header-timeout", "1"]);
    // Headers that never complete.
    let mut conn = f.conn();
    conn.send(b"GET / HTTP/1.1\r\nHost: x\r\nAuthoriz");
    let r = conn.read_response();
    assert_protocol_error(&r, 408, "request_timeout");
    conn.expect_eof();
    // A body that never completes. A check needs only the head, so it is
    // answered at once; the body is then discarded, and when it stops coming
    // the connection closes without a second response to the same request.
    let mut conn = f.conn();
    conn.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345");
    assert_denied(&conn.read_response(), "missing", false);
    conn.expect_eof();
    // Decimal seconds are accepted.
    let f = serve(io, &["--header-timeout", "0.5"]);
    let mut conn = f.conn();
    conn.send(b"GET / HTTP/1.1\r\n");
    assert_protocol_error(&conn.read_response(), 408, "request_timeout");
    conn.expect_eof();
}

fn idle_connection_is_closed_silently(io: &str) {
    let f = serve(io, &["--idle-timeout", "1"]);
    // A fresh connection that never sends a byte.
    let mut fresh = f.conn();
    // A connection idle after one answered request.
    let mut used = f.conn();
    let r = used.request(&get_auth("/", &bearer(&f.keys.valid())));
    assert_allowed(&r, "alice", ISS, KID_RSA, "", false);
    fresh.expect_eof();
    used.expect_eof();
}

fn max_connections_makes_accept_wait(io: &str) {
    let f = serve(io, &["--shards", "1", "--max-connections", "2"]);
    assert_eq!(f.server.shards(), 1, "{}", f.server.ready_line());
    let request = get_auth("/", &bearer(&f.keys.valid()));
    let mut first = f.conn();
    let mut second = f.conn();
    // Both are served, so both have been accepted.
    assert_allowed(&first.request(&request), "alice", ISS, KID_RSA, "", false);
    assert_allowed(&second.request(&request), "alice", ISS, KID_RSA, "", false);
    // The third completes its TCP handshake in the backlog but is not served.
    let mut third = f.conn();
    third.send(&request);
    assert_eq!(
        third.read_some(NOTHING_WITHIN),
        ReadOutcome::TimedOut,
        "a third connection was served with --max-connections 2"
    );
    // Closing one frees a slot: the waiting connection is accepted and answered.
    drop(first);
    assert_allowed(&third.read_response(), "alice", ISS, KID_RSA, "", false);
    // The survivor still works.
    assert_allowed(&second.request(&request), "alice", ISS, KID_RSA, "", false);
}

/// Polls the admin `/healthz` until it reports `503 draining` (bounded).
fn wait_until_draining(server: &Server) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut conn = Conn::open(server.admin_addr());
        let r = conn.request(&request_bytes("GET", "/healthz", &[], b""));
        if r.status == 503 {
            assert_eq!(r.body_text(), "draining\n");
            assert_eq!(r.header("content-type"), Some("text/plain"));
            return;
        }
        assert_eq!((r.status, r.body_text()), (200, "ok\n"));
        assert!(
            std::time::Instant::now() < deadline,
            "/healthz never reported draining after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn sigterm_finishes_in_flight_request_then_exits(io: &str) {
    // One shard, so that the idle connection closing proves that the shard
    // holding the in-flight connection has seen the signal.
    let mut f = serve(io, &["--shards", "1"]);
    let request = get_auth("/", &bearer(&f.keys.valid()));
    let (head, tail) = request.split_at(request.len() / 2);
    let mut in_flight = f.conn();
    // One whole request and half of the next in one write: once the first
    // answer is back, the server has read the half request too.
    let mut first_write = request.clone();
    first_write.extend_from_slice(head);
    in_flight.send(&first_write);
    assert_allowed(&in_flight.read_response(), "alice", ISS, KID_RSA, "", false);
    let mut idle = f.conn();
    assert_allowed(&idle.request(&request), "alice", ISS, KID_RSA, "", false);

    f.server.sigterm();
    idle.expect_eof();
    wait_until_draining(&f.server);

    in_flight.send(tail);
    let r = in_flight.read_response();
    assert_allowed(&r, "alice", ISS, KID_RSA, "", true);
    in_flight.expect_eof();

    let status = f.server.wait_exit(EXIT_TIMEOUT);
    assert_eq!(status.code(), Some(0), "stderr: {}", f.server.stderr_text());
    let refused = std::net::TcpStream::connect(f.addr());
    assert!(refused.is_err(), "connection accepted after exit");
}

fn drain_timeout_cuts_off_stragglers(io: &str) {
    // The header timeout is longer than any read here: only the drain
    // timeout can end the half request within the test's bounds.
    let mut f = serve(
        io,
        &[
            "--shards",
            "1",
            "--drain-timeout",
            "1",
            "--header-timeout",
            "60",
        ],
    );
    let request = get_auth("/", &bearer(&f.keys.valid()));
    let mut straggler = f.conn();
    let mut first_write = request.clone();
    first_write.extend_from_slice(&request[..request.len() / 2]);
    straggler.send(&first_write);
    assert_allowed(&straggler.read_response(), "alice", ISS, KID_RSA, "", false);
    f.server.sigterm();
    wait_until_draining(&f.server);
    // The rest never comes: the connection is cut (with or without a last
    // answer; the contract names none) and the process exits 0.
    loop {
        match straggler.read_some(Duration::from_secs(20)) {
            ReadOutcome::Eof => break,
            ReadOutcome::Data(_) => {}
            ReadOutcome::TimedOut => panic!("straggler not cut off after --drain-timeout 1"),
        }
    }
    let status = f.server.wait_exit(EXIT_TIMEOUT);
    assert_eq!(status.code(), Some(0), "stderr: {}", f.server.stderr_text());
}

fn sigterm_closes_idle_connections(io: &str) {
    shutdown_closes_idle_connections(io, Server::sigterm);
}

fn sigint_shuts_down_like_sigterm(io: &str) {
    shutdown_closes_idle_connections(io, Server::sigint);
}

/// Idle connections are closed on the signal, the process exits 0 and both
/// listeners are gone.
fn shutdown_closes_idle_connections(io: &str, signal: fn(&Server)) {
    let mut f = serve(io, &[]);
    let mut idle: Vec<Conn> = (0..4).map(|_| f.conn()).collect();
    for conn in &mut idle {
        let r = conn.request(&request_bytes("GET", "/", &[], b""));
        assert_denied(&r, "missing", false);
    }
    signal(&f.server);
    for conn in &mut idle {
        conn.expect_eof();
    }
    let status = f.server.wait_exit(EXIT_TIMEOUT);
    assert_eq!(status.code(), Some(0), "stderr: {}", f.server.stderr_text());
    for addr in [f.server.addr(), f.server.admin_addr()] {
        assert!(
            std::net::TcpStream::connect(addr).is_err(),
            "{addr} accepts connections after exit"
        );
    }
}

/// POSTs three tokens (valid, expired, garbage) to `/v1/verify` at `addr`
/// and compares the answer with what `jwtgate verify` prints for the same
/// input (a differential check), then checks the endpoint's own body limit
/// (`--max-verify-body-bytes 4000`).
fn check_verify_endpoint(f: &Fixture, addr: std::net::SocketAddr) {
    let body = format!("{}\n{}\ngarbage\n", f.keys.valid(), f.keys.expired());
    assert!(body.len() > 100);
    let mut client = Client::new(addr);
    let r = client.post("/v1/verify", &[], body.as_bytes());
    assert_eq!(
        r.status,
        200,
        "{}\n{}",
        r.head_text(),
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.reason, "OK");
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );

    let batch = run_jwtgate(
        &[
            "verify",
            "--jwks",
            f.keys.jwks(),
            "--now",
            NOW,
            "--issuer",
            ISS,
            "--audience",
            AUD,
            "--no-progress",
            "--quiet",
        ],
        body.as_bytes(),
    );
    assert_eq!(
        batch.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&batch.stderr)
    );
    assert_eq!(
        r.body_text(),
        String::from_utf8(batch.stdout).unwrap(),
        "POST /v1/verify differs from jwtgate verify"
    );
    let lines: Vec<serde_json::Value> = r
        .body_text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["valid"], true);
    assert_eq!(lines[1]["error"], "expired");
    assert_eq!(lines[2]["error"], "malformed");

    // The connection stays usable for a second batch.
    let r = client.post(
        "/v1/verify",
        &[],
        format!("{}\n", f.keys.valid()).as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.head_text());
    assert_eq!(r.body_text().lines().count(), 1);

    let mut conn = Conn::open(addr);
    conn.send(b"POST /v1/verify HTTP/1.1\r\nHost: x\r\nContent-Length: 4001\r\n\r\n");
    assert_protocol_error(&conn.read_response(), 413, "body_too_large");
    conn.expect_eof();
}

/// `POST /v1/verify` lives on a port of its own (`--verify-listen`), with its own
/// body limit (`--max-body-bytes` does not apply to it).
fn verify_listen_port_matches_batch_verify(io: &str) {
    let f = serve(
        io,
        &[
            "--verify-listen",
            "127.0.0.1:0",
            "--max-body-bytes",
            "100",
            "--max-verify-body-bytes",
            "4000",
        ],
    );
    let verify = f
        .server
        .verify_addr()
        .unwrap_or_else(|| panic!("no verify address in {:?}", f.server.ready_line()));
    check_verify_endpoint(&f, verify);
}

fn admin_healthz_and_unknown_path(io: &str) {
    let f = serve(io, &[]);
    let mut admin = Client::new(f.server.admin_addr());
    let r = admin.get("/healthz", &[]);
    assert_eq!(
        (r.status, r.reason.as_str()),
        (200, "OK"),
        "{}",
        r.head_text()
    );
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.body_text(), "ok\n");
    let r = Client::new(f.server.admin_addr()).get("/nope", &[]);
    assert_eq!(r.status, 404, "{}", r.head_text());
    assert!(reasons(404).contains(&r.reason.as_str()));
    // The data port does not serve the admin paths: /healthz is just a request.
    let r = f.client().get("/healthz", &[]);
    assert_denied(&r, "missing", false);
}

fn demo_mode_starts(io: &str) {
    let server = Server::start(&["--demo", "--io", io]);
    assert_eq!(server.io(), io, "{}", server.ready_line());
    let r = Client::new(server.addr()).get("/", &[]);
    assert_denied(&r, "missing", false);
}

// ---------------------------------------------------------------------------
// Backend selection and startup errors
// ---------------------------------------------------------------------------

#[test]
fn io_auto_starts_with_uring_or_epoll() {
    let keys = Keys::new();
    let server = Server::start(&[
        "--jwks",
        keys.jwks(),
        "--now",
        NOW,
        "--issuer",
        ISS,
        "--audience",
        AUD,
        "--io",
        "auto",
    ]);
    assert!(
        ["uring", "epoll"].contains(&server.io()),
        "readiness line {:?}",
        server.ready_line()
    );
    assert!(server.shards() >= 1, "{}", server.ready_line());
    let r = Client::new(server.addr()).get_bearer("/", &keys.valid());
    assert_allowed(&r, "alice", ISS, KID_RSA, "", false);
}

#[test]
fn startup_errors_exit_2_with_a_message() {
    let dir = TempDir::new("serve-startup");
    let missing = dir.path("absent.jwks.json");
    let private = common::data_path("rsa2048-a.pk8.pem");
    let base = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--now",
        NOW,
    ];
    let cases: [(&[&str], Option<&str>); 4] = [
        (
            &["--jwks", missing.to_str().unwrap()],
            Some("absent.jwks.json"),
        ),
        // Private key material is refused.
        (
            &["--jwks", private.to_str().unwrap()],
            Some("rsa2048-a.pk8.pem"),
        ),
        (
            &["--jwks", missing.to_str().unwrap(), "--io", "bogus"],
            None,
        ),
        (
            &[
                "--jwks",
                missing.to_str().unwrap(),
                "--max-header-bytes",
                "lots",
            ],
            None,
        ),
    ];
    for (extra, named) in cases {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        let out = run_jwtgate_bounded(&args, Duration::from_secs(60));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: stderr {stderr}");
        assert!(out.stdout.is_empty(), "{extra:?}: stdout {:?}", out.stdout);
        assert!(!stderr.trim().is_empty(), "{extra:?}: no message");
        if let Some(named) = named {
            assert!(stderr.contains(named), "{extra:?}: stderr {stderr}");
        }
    }
}

// ---------------------------------------------------------------------------
// Regressions found in review
// ---------------------------------------------------------------------------

/// Reads until the server closes the connection; everything it sent.
fn read_to_close(conn: &mut Conn) -> Vec<u8> {
    let mut all = Vec::new();
    loop {
        match conn.read_some(IO_TIMEOUT) {
            ReadOutcome::Data(data) => all.extend_from_slice(&data),
            ReadOutcome::Eof => return all,
            ReadOutcome::TimedOut => panic!(
                "connection still open after {IO_TIMEOUT:?}; got {} bytes",
                all.len()
            ),
        }
    }
}

fn head_responses_have_no_body(io: &str) {
    // Envoy forwards the client's method: a body after a HEAD answer would be
    // read as the start of the next response on a pooled connection.
    let f = serve(io, &[]);
    let mut conn = f.conn();
    let mut requests = request_bytes("HEAD", "/", &[], b"");
    requests.extend(request_bytes("GET", "/", &[("Connection", "close")], b""));
    conn.send(&requests);
    let all = read_to_close(&mut conn);
    let text = String::from_utf8_lossy(&all);
    let (first_head, rest) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        first_head.starts_with("HTTP/1.1 401 Unauthorized\r\n"),
        "{text}"
    );
    assert!(first_head.contains("content-length: 19\r\n"), "{text}");
    assert!(
        rest.starts_with("HTTP/1.1 401 Unauthorized\r\n"),
        "the HEAD answer carried a body: {text}"
    );
    assert!(rest.ends_with("\r\n\r\n{\"error\":\"missing\"}"), "{text}");
}

fn empty_lines_between_requests_are_ignored(io: &str) {
    let f = serve(
        io,
        &["--header-timeout", "1", "--max-request-line-bytes", "64"],
    );
    // Leading CRLFs before a request line are skipped (RFC 9112 §2.2)...
    let mut conn = f.conn();
    conn.send(b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_denied(&conn.read_response(), "missing", false);
    // ...and do not hide an over-long request line from its limit.
    let mut long = b"\r\nGET /".to_vec();
    long.extend(std::iter::repeat_n(b'a', 100));
    long.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut conn = f.conn();
    conn.send(&long);
    assert_protocol_error(&conn.read_response(), 414, "request_line_too_long");
    // A CRLF after a body leaves the connection idle, not half-way through a
    // request: no 408 when the header timeout passes.
    let mut conn = f.conn();
    conn.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab\r\n");
    assert_denied(&conn.read_response(), "missing", false);
    assert_eq!(
        conn.read_some(Duration::from_millis(1600)),
        ReadOutcome::TimedOut
    );
    assert_denied(&conn.request(&get_auth("/", "Basic x")), "missing", false);
}

fn discarded_body_does_not_shorten_the_next_header_timeout(io: &str) {
    let f = serve(io, &["--header-timeout", "1"]);
    let mut conn = f.conn();
    conn.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n");
    assert_denied(&conn.read_response(), "missing", false);
    conn.send(b"12345");
    // Idle for longer than the header timeout, then a head in two parts.
    assert_eq!(
        conn.read_some(Duration::from_millis(1500)),
        ReadOutcome::TimedOut
    );
    conn.send(b"GET / HTTP/1.1\r\n");
    assert_eq!(
        conn.read_some(Duration::from_millis(300)),
        ReadOutcome::TimedOut
    );
    conn.send(b"Host: x\r\n\r\n");
    assert_denied(&conn.read_response(), "missing", false);
}

fn client_that_never_reads_is_cut_off(io: &str) {
    // Pipelined requests from a client that never reads fill the socket
    // buffers; the server's write then waits, and must give up after the
    // write (idle) timeout instead of holding the connection forever.
    let f = serve(io, &["--header-timeout", "1", "--idle-timeout", "1"]);
    let conn = f.conn();
    let stream = conn.stream().try_clone().unwrap();
    stream
        .set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut burst = Vec::new();
    for _ in 0..1000 {
        burst.extend_from_slice(request);
    }
    let mut writer = &stream;
    let started = std::time::Instant::now();
    // Write until the server stops reading (its output is blocked) or cuts us off.
    loop {
        use std::io::Write as _;
        match writer.write(&burst) {
            Ok(_) if started.elapsed() < IO_TIMEOUT => {}
            Ok(_) => panic!("the server kept reading for {IO_TIMEOUT:?} without being read"),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break;
            }
            Err(_) => return, // already cut off
        }
    }
    // Now the client reads: the server must have closed the connection.
    let mut conn = conn;
    let all = read_to_close(&mut conn);
    assert!(all.starts_with(b"HTTP/1.1 401"), "{} bytes", all.len());
}

fn verify_port_refuses_too_many_lines(io: &str) {
    let f = serve(
        io,
        &[
            "--verify-listen",
            "127.0.0.1:0",
            "--max-verify-lines",
            "100",
        ],
    );
    let addr = f.server.verify_addr().unwrap();
    let mut client = Client::new(addr);
    let r = client.post("/v1/verify", &[], &[b'\n'; 101]);
    assert_eq!(r.status, 413, "{}", r.head_text());
    assert!(
        r.body_text().contains("too_many_lines"),
        "{}",
        r.body_text()
    );
    let r = client.post("/v1/verify", &[], &[b'\n'; 100]);
    assert_eq!(r.status, 200, "{}", r.head_text());
    assert_eq!(r.body_text().lines().count(), 100);
}

fn drain_delay_turns_health_503_while_still_serving(io: &str) {
    let mut f = serve(io, &["--drain-delay", "2"]);
    f.server.sigterm();
    // Health turns 503 at once...
    let mut status = 0;
    for _ in 0..100 {
        status = get(f.server.admin_addr(), "/healthz", &[]).status;
        if status == 503 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10)); // polling the signal's effect
    }
    assert_eq!(status, 503);
    // ...while check requests are still answered during the delay.
    let r = f.client().get_bearer("/", &f.keys.valid());
    assert_allowed(&r, "alice", ISS, KID_RSA, "", false);
    let exit = f.server.wait_exit(EXIT_TIMEOUT);
    assert_eq!(exit.code(), Some(0));
}

/// A server whose stdout and stderr readers have gone (a pipe closed early)
/// keeps serving: a line it cannot write is lost, never fatal. The reload
/// forces a stderr line after both pipes are closed.
#[test]
fn closed_stdout_and_stderr_do_not_stop_the_server() {
    use std::io::{BufRead as _, BufReader};
    use std::process::{Command, Stdio};

    let dir = TempDir::new("closed-streams");
    let config = dir.write(
        "jwtgate.toml",
        format!(
            "default_action = \"deny\"\n\n[[token_config]]\nname = \"users\"\n\
             jwks_file = \"{}\"\nalgorithms = [\"RS256\"]\n",
            common::repo_path("examples/keys/demo.jwks.json").display()
        ),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_jwtgate"))
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let ready = loop {
        let mut line = String::new();
        assert_ne!(stdout.read_line(&mut line).unwrap(), 0, "no readiness line");
        if let Some(ready) = common::server::parse_ready_line(line.trim_end()) {
            break ready;
        }
    };
    drop(stdout);
    drop(child.stderr.take());

    let status = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = Conn::open(ready.admin)
            .request(b"GET /metrics HTTP/1.1\r\nhost: admin\r\n\r\n")
            .body_text()
            .to_owned();
        if metrics.contains("jwtgate_config_reloads_total{result=\"success\"} 1") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the reload was not counted"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = Conn::open(ready.addr).request(b"GET / HTTP/1.1\r\nhost: api\r\n\r\n");
    // No rule matches: the default deny, answered.
    assert_eq!(r.status, 403, "{}", r.head_text());
    assert_eq!(child.try_wait().unwrap(), None, "the server exited");
    let _ = child.kill();
    let _ = child.wait();
}
