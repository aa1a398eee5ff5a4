//! Integration tests of the configuration file through the real binary:
//! `jwtgate serve --config FILE` (token sources, rules, exclusions, modes,
//! actions, claim requirements, forwarded claims, CORS preflight, the three
//! ways a proxy forwards the original request, command-line precedence,
//! start-up errors, hot reload on SIGHUP and on file changes, also under
//! load), `jwtgate check-config` on the shipped example, and `jwtgate verify
//! --config --token-config`.
//!
//! Every server runs on ephemeral loopback ports (harness in
//! `common/server.rs`) with the clock pinned by `--now`; configurations and a
//! JWKS built from `tests/data` are written to a scratch directory; answers
//! are asserted as exact status lines, ordered header lists and bodies.
//! Nothing waits with a sleep for readiness: reloads are awaited by polling
//! the server's stderr for its `reloaded` line, with a deadline.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use crate::common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::TempDir;
use common::server::{Conn, ReadOutcome, Response, Server, run_jwtgate, run_jwtgate_bounded};
use common::{mint, rewrite_unnoticed, signing_key};
use jwtgate::Algorithm;
use jwtgate::internals::SigningKey;

/// The pinned clock, as `--now` takes it.
const NOW: &str = "1700000000";
const T: i64 = 1_700_000_000;
/// Issuer of the `users` token configuration.
const ISS: &str = "https://idp.test/";
/// Issuer of the `service` token configuration.
const SVC_ISS: &str = "https://svc.test/";
const AUD: &str = "api";
const KID_RSA: &str = "rsa-a";
const KID_ED: &str = "ed-1";

/// Bound on a start-up failure and on a one-shot command.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on a reload being reported (polls every 200 ms, then one stable poll).
const RELOAD_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Keys and tokens
// ---------------------------------------------------------------------------

/// `rsa2048-a` as an RS256 JWK with kid [`KID_RSA`].
fn rsa_jwk() -> String {
    common::rsa_jwk(KID_RSA)
}

/// The Ed25519 key of `tests/data` as an EdDSA JWK with kid [`KID_ED`].
fn ed_jwk() -> String {
    common::ed25519_jwk(KID_ED)
}

/// Both keys.
fn jwks_both() -> String {
    format!(r#"{{"keys":[{},{}]}}"#, rsa_jwk(), ed_jwk())
}

/// The RSA key alone (a key rotation that drops the Ed25519 key).
fn jwks_rsa_only() -> String {
    format!(r#"{{"keys":[{}]}}"#, rsa_jwk())
}

/// Signing keys.
struct Keys {
    rsa_a: SigningKey,
    rsa_b: SigningKey,
    ed: SigningKey,
}

const RS256_HEADER: &str = r#"{"alg":"RS256","kid":"rsa-a","typ":"JWT"}"#;

impl Keys {
    fn new() -> Keys {
        Keys {
            rsa_a: signing_key("rsa2048-a", Algorithm::Rs256),
            rsa_b: signing_key("rsa2048-b", Algorithm::Rs256),
            ed: signing_key("ed25519", Algorithm::EdDsa),
        }
    }

    /// RS256 over exactly these claims.
    fn rs256(&self, claims: &str) -> String {
        mint(RS256_HEADER, claims, &self.rsa_a, Algorithm::Rs256)
    }

    /// A valid `users` token for `sub`, with `extra` claims (`,"k":v` JSON).
    fn user(&self, sub: &str, extra: &str) -> String {
        self.rs256(&claims(ISS, sub, extra))
    }

    /// A valid `service` token for `sub`.
    fn service(&self, sub: &str) -> String {
        self.rs256(&claims(SVC_ISS, sub, ""))
    }

    /// Signed with `rsa2048-b` while naming `rsa-a`.
    fn bad_signature(&self) -> String {
        mint(
            RS256_HEADER,
            &claims(ISS, "mallory", ""),
            &self.rsa_b,
            Algorithm::Rs256,
        )
    }

    fn expired(&self) -> String {
        self.rs256(&format!(
            r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"alice","iat":{},"exp":{}}}"#,
            T - 7200,
            T - 3600
        ))
    }

    /// A valid EdDSA `users` token (kid [`KID_ED`]).
    fn ed25519(&self, sub: &str) -> String {
        mint(
            &format!(r#"{{"alg":"EdDSA","kid":"{KID_ED}"}}"#),
            &claims(ISS, sub, ""),
            &self.ed,
            Algorithm::EdDsa,
        )
    }
}

/// Claims valid at [`T`] for an hour; `extra` is appended inside the object.
fn claims(iss: &str, sub: &str, extra: &str) -> String {
    format!(
        r#"{{"iss":"{iss}","aud":"{AUD}","sub":"{sub}","iat":{T},"exp":{}{extra}}}"#,
        T + 3600
    )
}

// ---------------------------------------------------------------------------
// Configurations and the server under test
// ---------------------------------------------------------------------------

/// The two token configurations most tests use: `users` (Authorization,
/// Bearer or raw, or the `session` cookie) and `service` (the raw
/// `X-Service-Token` header, another issuer), over `keys.jwks.json`.
const TOKEN_CONFIGS: &str = r#"
[[token_config]]
name = "users"
sources = [ { header = "authorization", prefix = "Bearer" }, { cookie = "session" } ]
jwks_file = "keys.jwks.json"
issuer = "https://idp.test/"
audiences = ["api"]

[[token_config]]
name = "service"
sources = [ { header = "x-service-token" } ]
jwks_file = "keys.jwks.json"
issuer = "https://svc.test/"
audiences = ["api"]
"#;

/// `default_action`, a `[server]` table with `forwarded = "x-original"` and
/// one shard, the two token configurations, then `rules`.
fn x_original(default_action: &str, rules: &str) -> String {
    format!(
        "default_action = \"{default_action}\"\n\n[server]\nforwarded = \"x-original\"\nshards = 1\n{TOKEN_CONFIGS}\n{rules}"
    )
}

/// A scratch directory holding `keys.jwks.json` and `jwtgate.toml`.
struct Env {
    dir: TempDir,
    keys: Keys,
}

impl Env {
    fn new() -> Env {
        let dir = TempDir::new("config");
        dir.write("keys.jwks.json", jwks_both());
        Env {
            dir,
            keys: Keys::new(),
        }
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path("jwtgate.toml")
    }

    fn config_str(&self) -> String {
        self.config_path().to_str().unwrap().to_owned()
    }

    /// Writes `text` as `jwtgate.toml`.
    fn write_config(&self, text: &str) -> String {
        self.dir.write("jwtgate.toml", text);
        self.config_str()
    }

    /// Writes `text` and serves it: `serve --config … --now NOW EXTRA…`.
    fn serve(&self, text: &str, extra: &[&str]) -> Server {
        let path = self.write_config(text);
        let mut args = vec!["--config", path.as_str(), "--now", NOW];
        args.extend_from_slice(extra);
        Server::start(&args)
    }
}

/// A check request as nginx `auth_request` sends it: the original method and
/// URI in `X-Original-Method`/`X-Original-URI`, the original host in `Host`.
fn original(method: &str, host: &str, uri: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut out = format!(
        "GET /_jwtgate HTTP/1.1\r\nHost: {host}\r\nX-Original-URI: {uri}\r\nX-Original-Method: {method}\r\n"
    );
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// The bytes of a raw request with these lines (request line first).
fn raw(lines: &[&str]) -> Vec<u8> {
    let mut out = lines.join("\r\n");
    out.push_str("\r\n\r\n");
    out.into_bytes()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// One request on a fresh connection.
fn send(server: &Server, bytes: &[u8]) -> Response {
    let mut conn = Conn::open(server.addr());
    conn.send(bytes);
    conn.try_read_response().unwrap_or_else(|e| {
        panic!(
            "no response to {:?}: {e}\nstderr: {}",
            String::from_utf8_lossy(bytes),
            server.stderr_text()
        )
    })
}

// ---------------------------------------------------------------------------
// Expected answers
// ---------------------------------------------------------------------------

/// What a check request must be answered with.
#[derive(Debug, Clone, Copy)]
enum Expect<'a> {
    /// 200 `valid`: subject, issuer, kid, and the forwarded headers that carry
    /// a value (every other forwarded header of the policy is present, empty).
    Valid {
        sub: &'a str,
        iss: &'a str,
        kid: &'a str,
        filled: &'a [(&'a str, &'a str)],
    },
    /// 200 without identity (`excluded`, `preflight`, `no_rule`, a missing
    /// token under `on_missing = "allow"`, or a failure under `action = "log"`).
    Open { outcome: &'a str, log: bool },
    /// 401 with this outcome.
    Denied(&'a str),
    /// 403 `insufficient_scope`.
    Scope,
    /// 403 `no_matching_rule`.
    NoRule,
    /// 400 `bad_request` with this detail (keep-alive kept).
    BadRequest(&'a str),
}

/// A `users` token of `sub` (RS256, kid `rsa-a`), nothing forwarded.
fn valid(sub: &str) -> Expect<'_> {
    Expect::Valid {
        sub,
        iss: ISS,
        kid: KID_RSA,
        filled: &[],
    }
}

fn open(outcome: &str) -> Expect<'_> {
    Expect::Open {
        outcome,
        log: false,
    }
}

fn logged(outcome: &str) -> Expect<'_> {
    Expect::Open { outcome, log: true }
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

/// `(status, reason, headers in order, body)` expected for `expect`, where
/// `forwarded` lists every header the policy forwards (sorted, as sent).
fn expected(
    expect: Expect<'_>,
    forwarded: &[&str],
) -> (u16, String, Vec<(String, String)>, String) {
    let identity = |sub: &str, iss: &str, kid: &str| {
        vec![
            ("x-jwt-sub".to_owned(), sub.to_owned()),
            ("x-jwt-iss".to_owned(), iss.to_owned()),
            ("x-jwt-kid".to_owned(), kid.to_owned()),
            ("x-jwt-payload".to_owned(), String::new()),
        ]
    };
    match expect {
        Expect::Valid {
            sub,
            iss,
            kid,
            filled,
        } => {
            let mut headers = pairs(&[("content-length", "0"), ("x-jwtgate-outcome", "valid")]);
            headers.extend(identity(sub, iss, kid));
            for name in forwarded {
                let value = filled
                    .iter()
                    .find(|(n, _)| n == name)
                    .map_or("", |(_, v)| *v);
                headers.push(((*name).to_owned(), value.to_owned()));
            }
            for (name, _) in filled {
                assert!(
                    forwarded.contains(name),
                    "test bug: {name} is not a forwarded header"
                );
            }
            (200, "OK".into(), headers, String::new())
        }
        Expect::Open { outcome, log } => {
            let mut headers = pairs(&[("content-length", "0"), ("x-jwtgate-outcome", outcome)]);
            if log {
                headers.push(("x-jwtgate-action".into(), "log".into()));
            }
            headers.extend(identity("", "", ""));
            for name in forwarded {
                headers.push(((*name).to_owned(), String::new()));
            }
            (200, "OK".into(), headers, String::new())
        }
        Expect::Denied(outcome) => {
            let body = format!(r#"{{"error":"{outcome}"}}"#);
            let challenge = if outcome == "missing" {
                r#"Bearer realm="jwtgate""#.to_owned()
            } else {
                format!(
                    r#"Bearer realm="jwtgate", error="invalid_token", error_description="{outcome}""#
                )
            };
            let length = body.len().to_string();
            let headers = pairs(&[
                ("content-type", "application/json"),
                ("content-length", &length),
                ("cache-control", "no-store"),
                ("www-authenticate", &challenge),
                ("x-jwtgate-outcome", outcome),
            ]);
            (401, "Unauthorized".into(), headers, body)
        }
        Expect::Scope => {
            let body = r#"{"error":"insufficient_scope"}"#.to_owned();
            let length = body.len().to_string();
            let headers = pairs(&[
                ("content-type", "application/json"),
                ("content-length", &length),
                ("cache-control", "no-store"),
                (
                    "www-authenticate",
                    r#"Bearer realm="jwtgate", error="insufficient_scope", error_description="insufficient_scope""#,
                ),
                ("x-jwtgate-outcome", "insufficient_scope"),
            ]);
            (403, "Forbidden".into(), headers, body)
        }
        Expect::NoRule => {
            let body = r#"{"error":"no_matching_rule"}"#.to_owned();
            let length = body.len().to_string();
            let headers = pairs(&[
                ("content-type", "application/json"),
                ("content-length", &length),
                ("cache-control", "no-store"),
                ("x-jwtgate-outcome", "no_matching_rule"),
            ]);
            (403, "Forbidden".into(), headers, body)
        }
        Expect::BadRequest(detail) => {
            let body = format!(r#"{{"error":"bad_request","detail":"{detail}"}}"#);
            let length = body.len().to_string();
            let headers = pairs(&[
                ("content-type", "application/json"),
                ("content-length", &length),
            ]);
            (400, "Bad Request".into(), headers, body)
        }
    }
}

/// Whether `r` is exactly the answer `expect` describes.
fn matches(r: &Response, expect: Expect<'_>, forwarded: &[&str]) -> bool {
    let (status, reason, headers, body) = expected(expect, forwarded);
    r.version == "HTTP/1.1"
        && r.status == status
        && r.reason == reason
        && r.headers == headers
        && r.body == body.as_bytes()
}

/// Asserts that `r` is exactly the answer `expect` describes.
fn assert_answer(label: &str, r: &Response, expect: Expect<'_>, forwarded: &[&str]) {
    let (status, reason, headers, body) = expected(expect, forwarded);
    let got = format!("{}{}", r.head_text(), r.body_text());
    assert_eq!(
        (r.version.as_str(), r.status, r.reason.as_str()),
        ("HTTP/1.1", status, reason.as_str()),
        "{label}: expected {expect:?}, got:\n{got}"
    );
    assert_eq!(
        r.headers, headers,
        "{label}: expected {expect:?}, got:\n{got}"
    );
    assert_eq!(
        r.body_text(),
        body,
        "{label}: expected {expect:?}, got:\n{got}"
    );
}

/// A served configuration and the headers its rules forward.
struct Gate<'f> {
    server: Server,
    forwarded: &'f [&'f str],
}

impl Gate<'_> {
    /// Sends `bytes` on a fresh connection and asserts the answer.
    fn expect(&self, label: &str, bytes: &[u8], expect: Expect<'_>) {
        let r = send(&self.server, bytes);
        assert_answer(label, &r, expect, self.forwarded);
    }

    /// `GET https://api.example.com{uri}` through nginx-style headers.
    fn get(&self, uri: &str, headers: &[(&str, &str)], expect: Expect<'_>) {
        self.check("GET", "api.example.com", uri, headers, expect);
    }

    /// `method` of `host` `uri` through nginx-style headers.
    fn check(
        &self,
        method: &str,
        host: &str,
        uri: &str,
        headers: &[(&str, &str)],
        expect: Expect<'_>,
    ) {
        let label = format!("{method} {host}{uri} {headers:?}");
        self.expect(&label, &original(method, host, uri, headers), expect);
    }
}

// ---------------------------------------------------------------------------
// Token sources
// ---------------------------------------------------------------------------

#[test]
fn header_cookie_and_query_sources() {
    let env = Env::new();
    let text = format!(
        "{}{}",
        x_original(
            "deny",
            r#"
[[rule]]
name = "query"
paths = ["/q/**"]
token_configs = ["query"]

[[rule]]
name = "users"
paths = ["/**"]
token_configs = ["users"]
"#
        ),
        r#"
[[token_config]]
name = "query"
sources = [ { query = "access_token" } ]
jwks_file = "keys.jwks.json"
issuer = "https://idp.test/"
audiences = ["api"]
"#
    );
    let gate = Gate {
        server: env.serve(&text, &[]),
        forwarded: &[],
    };
    let k = &env.keys;
    let alice = k.user("alice", "");
    let bob = k.user("bob", "");

    // Header: Bearer (any case, extra spaces) or the raw token.
    gate.get("/x", &[("Authorization", &bearer(&alice))], valid("alice"));
    gate.get(
        "/x",
        &[("Authorization", &format!("bEaReR   {alice}"))],
        valid("alice"),
    );
    gate.get("/x", &[("Authorization", &alice)], valid("alice"));
    // Another scheme is no token; the scheme alone is malformed.
    gate.get(
        "/x",
        &[("Authorization", "Basic dXNlcjpwYXNz")],
        Expect::Denied("missing"),
    );
    gate.get(
        "/x",
        &[("Authorization", "Bearer")],
        Expect::Denied("malformed"),
    );
    gate.get("/x", &[], Expect::Denied("missing"));

    // Cookie, among others, quoted or not.
    gate.get(
        "/x",
        &[("Cookie", &format!("theme=dark; session={bob}; lang=en"))],
        valid("bob"),
    );
    gate.get(
        "/x",
        &[("Cookie", &format!("session=\"{bob}\""))],
        valid("bob"),
    );
    gate.get(
        "/x",
        &[("Cookie", &format!("xsession={bob}"))],
        Expect::Denied("missing"),
    );
    gate.get(
        "/x",
        &[("Cookie", &format!("session={}", k.expired()))],
        Expect::Denied("expired"),
    );

    // Header and cookie both present: both valid for one identity passes; one
    // invalid, or two identities, is ambiguous (jwtgate never picks).
    gate.get(
        "/x",
        &[
            ("Authorization", &bearer(&alice)),
            ("Cookie", &format!("session={alice}")),
        ],
        valid("alice"),
    );
    gate.get(
        "/x",
        &[
            ("Authorization", &bearer(&alice)),
            ("Cookie", &format!("session={bob}")),
        ],
        Expect::Denied("ambiguous_token"),
    );
    gate.get(
        "/x",
        &[
            ("Authorization", &bearer(&alice)),
            ("Cookie", &format!("session={}", k.bad_signature())),
        ],
        Expect::Denied("ambiguous_token"),
    );
    gate.get(
        "/x",
        &[
            ("Authorization", &bearer(&k.expired())),
            ("Cookie", &format!("session={alice}")),
        ],
        Expect::Denied("ambiguous_token"),
    );
    // Both invalid: the first source's reason.
    gate.get(
        "/x",
        &[
            ("Authorization", &bearer(&k.expired())),
            ("Cookie", &format!("session={}", k.bad_signature())),
        ],
        Expect::Denied("expired"),
    );

    // Query parameter: read from the original URI only.
    gate.get(
        &format!("/q/orders?page=2&access_token={alice}"),
        &[],
        valid("alice"),
    );
    gate.get(&format!("/q?access_token={bob}"), &[], valid("bob"));
    gate.get("/q/orders?page=2", &[], Expect::Denied("missing"));
    gate.get("/q/orders?access_tokens=1", &[], Expect::Denied("missing"));
    gate.get(
        "/q/orders",
        &[("Authorization", &bearer(&alice))],
        Expect::Denied("missing"),
    );
    gate.get(
        &format!("/q/orders?access_token={}", k.bad_signature()),
        &[],
        Expect::Denied("bad_signature"),
    );
    gate.get(
        &format!("/q/orders?access_token={alice}&access_token={bob}"),
        &[],
        Expect::Denied("malformed"),
    );
    // The check request's own query string is not the original request's.
    gate.expect(
        "query on the check request line",
        &raw(&[
            &format!("GET /_jwtgate?access_token={alice} HTTP/1.1"),
            "Host: api.example.com",
            "X-Original-URI: /q/orders",
            "X-Original-Method: GET",
        ]),
        Expect::Denied("missing"),
    );
}

// ---------------------------------------------------------------------------
// Rules
// ---------------------------------------------------------------------------

/// Four rules, each forwarding `sub` to a header of its own, so the filled
/// header names the rule that decided.
const ROUTING_RULES: &str = r#"
[[rule]]
name = "admin"
hosts = ["admin.example.com"]
token_configs = ["users"]
forward_claims = { sub = "x-rule-admin" }

[[rule]]
name = "item"
hosts = ["api.example.com", "*.api.example.com"]
paths = ["/v1/items/{id}", "/v1/users/{id}/orders/{order}"]
methods = ["GET", "HEAD"]
token_configs = ["users"]
forward_claims = { sub = "x-rule-item" }

[[rule]]
name = "v1"
hosts = ["api.example.com", "*.api.example.com"]
paths = ["/v1/**"]
token_configs = ["users"]
forward_claims = { sub = "x-rule-v1" }

[[rule]]
name = "status"
paths = ["/status"]
methods = ["POST"]
token_configs = ["users"]
forward_claims = { sub = "X-Rule-Status" }
"#;

const ROUTING_FORWARDED: &[&str] = &["x-rule-admin", "x-rule-item", "x-rule-status", "x-rule-v1"];

#[test]
fn hosts_paths_methods_and_first_match_wins() {
    let env = Env::new();
    let gate = Gate {
        server: env.serve(&x_original("deny", ROUTING_RULES), &[]),
        forwarded: ROUTING_FORWARDED,
    };
    let alice = env.keys.user("alice", "");
    let auth = [("Authorization", bearer(&alice))];
    let auth: Vec<(&str, &str)> = auth.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let by = |header: &'static str| Expect::Valid {
        sub: "alice",
        iss: ISS,
        kid: KID_RSA,
        filled: match header {
            "x-rule-admin" => &[("x-rule-admin", "alice")],
            "x-rule-item" => &[("x-rule-item", "alice")],
            "x-rule-v1" => &[("x-rule-v1", "alice")],
            "x-rule-status" => &[("x-rule-status", "alice")],
            _ => unreachable!(),
        },
    };
    let cases: &[(&str, &str, &str, Expect<'_>)] = &[
        // Exact host: case, port and trailing dot ignored; no subdomains.
        ("GET", "admin.example.com", "/anything", by("x-rule-admin")),
        ("DELETE", "ADMIN.Example.com:8443", "/", by("x-rule-admin")),
        ("GET", "admin.example.com.", "/x", by("x-rule-admin")),
        ("GET", "x.admin.example.com", "/anything", Expect::NoRule),
        ("GET", "admin.example.co", "/anything", Expect::NoRule),
        // Templates: one non-empty segment each; methods GET and HEAD.
        ("GET", "api.example.com", "/v1/items/7", by("x-rule-item")),
        ("HEAD", "api.example.com", "/v1/items/7", by("x-rule-item")),
        (
            "GET",
            "api.example.com",
            "/v1/items/7?expand=1",
            by("x-rule-item"),
        ),
        (
            "GET",
            "api.example.com",
            "/v1/users/42/orders/9",
            by("x-rule-item"),
        ),
        // Wildcard host, at any depth, but not the bare domain or a look-alike.
        (
            "GET",
            "eu.api.example.com",
            "/v1/items/7",
            by("x-rule-item"),
        ),
        (
            "GET",
            "a.b.api.example.com:443",
            "/v1/items/7",
            by("x-rule-item"),
        ),
        ("GET", "evilapi.example.com", "/v1/items/7", Expect::NoRule),
        ("GET", "example.com", "/v1/items/7", Expect::NoRule),
        // The item rule does not apply: the next matching rule decides.
        ("POST", "api.example.com", "/v1/items/7", by("x-rule-v1")),
        (
            "GET",
            "api.example.com",
            "/v1/items/7/history",
            by("x-rule-v1"),
        ),
        ("GET", "api.example.com", "/v1/items/", by("x-rule-v1")),
        ("GET", "api.example.com", "/v1/items", by("x-rule-v1")),
        (
            "GET",
            "api.example.com",
            "/v1/users/42/orders",
            by("x-rule-v1"),
        ),
        // `/v1/**` is /v1 itself and below, not /v10.
        ("GET", "api.example.com", "/v1", by("x-rule-v1")),
        ("GET", "api.example.com", "/v1/", by("x-rule-v1")),
        ("GET", "api.example.com", "/v10", Expect::NoRule),
        ("GET", "api.example.com", "/", Expect::NoRule),
        // A spelling that dodges a rule still meets it.
        (
            "GET",
            "api.example.com",
            "/v2/../v1/items/7",
            by("x-rule-item"),
        ),
        // Any host, exact path, POST only (method written in upper case).
        ("POST", "other.example.org", "/status", by("x-rule-status")),
        (
            "POST",
            "other.example.org",
            "/status?x=1",
            by("x-rule-status"),
        ),
        ("GET", "other.example.org", "/status", Expect::NoRule),
        // Rule methods and paths ignore case, so spelling cannot dodge a rule.
        ("post", "other.example.org", "/status", by("x-rule-status")),
        ("POST", "other.example.org", "/STATUS", by("x-rule-status")),
        // One trailing slash meets the rule too (Express and older Spring route it so).
        ("POST", "other.example.org", "/status/", by("x-rule-status")),
        ("POST", "other.example.org", "/status/x", Expect::NoRule),
        // The admin host wins over a later rule that would also match.
        ("POST", "admin.example.com", "/status", by("x-rule-admin")),
    ];
    for &(method, host, uri, expect) in cases {
        gate.check(method, host, uri, &auth, expect);
    }
    // A matching rule needs its token; no rule is 403 with or without one.
    gate.check(
        "GET",
        "eu.api.example.com",
        "/v1/items/7",
        &[],
        Expect::Denied("missing"),
    );
    gate.check("GET", "other.example.org", "/nothing", &[], Expect::NoRule);
    gate.check(
        "GET",
        "other.example.org",
        "/nothing",
        &[("Authorization", &bearer(&env.keys.bad_signature()))],
        Expect::NoRule,
    );
    // HEAD of a denial: the same head without the body, and the connection
    // stays usable (read as raw bytes: the harness would wait for the body).
    let mut conn = Conn::open(gate.server.addr());
    let head_request = raw(&[
        "HEAD /_jwtgate HTTP/1.1",
        "Host: other.example.org",
        "X-Original-URI: /nothing",
        "X-Original-Method: GET",
    ]);
    conn.send(&head_request);
    let expected_head = "HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: 28\r\n\
         cache-control: no-store\r\nx-jwtgate-outcome: no_matching_rule\r\n\r\n";
    let mut got = Vec::new();
    while got.len() < expected_head.len() {
        match conn.read_some(Duration::from_secs(20)) {
            ReadOutcome::Data(data) => got.extend_from_slice(&data),
            other => panic!("HEAD: {other:?} after {:?}", String::from_utf8_lossy(&got)),
        }
    }
    assert_eq!(String::from_utf8_lossy(&got), expected_head);
    let r = conn.request(&original("GET", "other.example.org", "/nothing", &[]));
    assert_answer("GET after HEAD", &r, Expect::NoRule, ROUTING_FORWARDED);
    // The original request is required: a missing X-Original-URI is a 400.
    gate.expect(
        "no X-Original-URI",
        &raw(&[
            "GET /v1/items/7 HTTP/1.1",
            "Host: api.example.com",
            "X-Original-Method: GET",
            &format!("Authorization: Bearer {alice}"),
        ]),
        Expect::BadRequest("exactly one X-Original-URI is required"),
    );
}

#[test]
fn default_action_allow_answers_no_rule() {
    let env = Env::new();
    let gate = Gate {
        server: env.serve(&x_original("allow", ROUTING_RULES), &[]),
        forwarded: ROUTING_FORWARDED,
    };
    let k = &env.keys;
    // No rule: allowed without looking at the token, every forwarded header empty.
    gate.check("GET", "other.example.org", "/nothing", &[], open("no_rule"));
    gate.check(
        "GET",
        "other.example.org",
        "/nothing",
        &[
            ("Authorization", &bearer(&k.bad_signature())),
            ("X-Rule-V1", "forged"),
        ],
        open("no_rule"),
    );
    gate.check("GET", "api.example.com", "/v10", &[], open("no_rule"));
    // A matching rule is still enforced.
    gate.check(
        "GET",
        "api.example.com",
        "/v1/orders",
        &[],
        Expect::Denied("missing"),
    );
    gate.check(
        "GET",
        "api.example.com",
        "/v1/orders",
        &[("Authorization", &bearer(&k.user("alice", "")))],
        Expect::Valid {
            sub: "alice",
            iss: ISS,
            kid: KID_RSA,
            filled: &[("x-rule-v1", "alice")],
        },
    );
}

#[test]
fn methods_hosts_and_folded_spellings_are_read_as_origins_read_them() {
    let env = Env::new();
    let rules = r#"
[[rule]]
name = "login"
paths = ["/account/login"]
token_configs = ["users"]
on_missing = "allow"

[[rule]]
name = "account"
paths = ["/account/**"]
token_configs = ["users"]

[[rule]]
name = "reports"
paths = ["/reports/**"]
methods = ["GET"]
token_configs = ["users"]

[[rule]]
name = "deletes"
paths = ["/v1/**"]
methods = ["DELETE"]
token_configs = ["users"]
require_claims = [ { claim = "scope", contains = "admin" } ]

[[rule]]
name = "v1"
paths = ["/v1/**"]
token_configs = ["users"]
exclude = ["POST /v1/signup"]
"#;
    let gate = Gate {
        server: env.serve(&x_original("allow", rules), &[]),
        forwarded: &[],
    };
    let alice = bearer(&env.keys.user("alice", ""));
    let auth = [("Authorization", alice.as_str())];
    let h = "api.example.com";
    let overridden =
        Expect::BadRequest("the method override meets a different rule than the method sent");
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a str,
        &'a [(&'a str, &'a str)],
        Expect<'a>,
    );
    let cases: &[Case<'_>] = &[
        ("GET", h, "/account/login", &[], open("missing")),
        // Folded, these meet the lax rule before the strict one they meet as
        // spelled: the strict one applies too.
        ("GET", h, "/account/login/", &[], Expect::Denied("missing")),
        (
            "GET",
            h,
            "/account/login.json",
            &[],
            Expect::Denied("missing"),
        ),
        ("GET", h, "/account/login/", &auth, valid("alice")),
        (
            "GET",
            h,
            "/account/settings/",
            &[],
            Expect::Denied("missing"),
        ),
        // HEAD runs the GET handler, so it meets the GET rule.
        ("HEAD", h, "/reports/q3", &[], Expect::Denied("missing")),
        ("GET", h, "/reports.csv", &[], Expect::Denied("missing")),
        // A POST that asks to run as DELETE meets the rule for DELETE...
        (
            "POST",
            h,
            "/v1/orders/7",
            &[
                ("Authorization", alice.as_str()),
                ("X-HTTP-Method-Override", "DELETE"),
            ],
            overridden,
        ),
        ("POST", h, "/v1/orders/7?_method=DELETE", &auth, overridden),
        ("POST", h, "/v1/orders/7", &auth, valid("alice")),
        // ...and one that asks to run as GET does not reach an exclusion for POST.
        ("POST", h, "/v1/signup", &[], open("excluded")),
        (
            "POST",
            h,
            "/v1/signup",
            &[("X-Method-Override", "GET")],
            overridden,
        ),
        ("POST", h, "/v1/signup?_method=get", &[], overridden),
        (
            "POST",
            h,
            "/v1/signup",
            &[("X-HTTP-Method-Override", "GET"), ("X-HTTP-Method", "PUT")],
            Expect::BadRequest("the method overrides disagree or do not name a method"),
        ),
        // A host with no single reading.
        (
            "GET",
            "api.example.com:x:y",
            "/v1/orders",
            &[],
            Expect::BadRequest("the host is not a host name or address with an optional port"),
        ),
        (
            "GET",
            "user@api.example.com",
            "/v1/orders",
            &[],
            Expect::BadRequest("the host is not a host name or address with an optional port"),
        ),
    ];
    for &(method, host, uri, headers, expect) in cases {
        gate.check(method, host, uri, headers, expect);
    }
}

#[test]
fn exclusions_and_spellings_that_do_not_reach_them() {
    let env = Env::new();
    let rules = r#"
[[rule]]
name = "api"
hosts = ["api.example.com"]
paths = ["/v1/**"]
token_configs = ["users"]
exclude = ["GET /v1/health", "/v1/public/**", "POST /v1/users/{id}/login"]
forward_claims = { sub = "x-user" }
"#;
    let gate = Gate {
        server: env.serve(&x_original("deny", rules), &[]),
        forwarded: &["x-user"],
    };
    let alice = env.keys.user("alice", "");
    let h = "api.example.com";
    let excluded = open("excluded");
    let missing = Expect::Denied("missing");
    let cases: &[(&str, &str, Expect<'_>)] = &[
        ("GET", "/v1/health", excluded),
        ("GET", "/v1/health?verbose=1", excluded),
        ("HEAD", "/v1/health", missing),
        ("POST", "/v1/health", missing),
        ("GET", "/v1/healthz", missing),
        ("GET", "/v1/health/", missing),
        ("GET", "/v1/public", excluded),
        ("GET", "/v1/public/", excluded),
        ("POST", "/v1/public/docs/a.html", excluded),
        ("DELETE", "/v1/public/x", excluded),
        ("POST", "/v1/users/7/login", excluded),
        ("GET", "/v1/users/7/login", missing),
        ("POST", "/v1/users//login", missing),
        // Spellings the origin may read as another path are checked instead.
        ("GET", "/v1/public/../orders", missing),
        ("GET", "/v1/public/%2e%2e/orders", missing),
        ("GET", "/v1/public/./docs", missing),
        ("GET", "/v1//health", missing),
        ("GET", "//v1/health", missing),
        ("GET", "/v1/%68ealth", missing),
        ("POST", "/v1/users/7/./login", missing),
        ("GET", "/v1/public/..;/orders", missing),
        ("GET", "/v1/public;x/docs", missing),
        ("GET", "/V1/PUBLIC/docs", missing),
        ("GET", "http://api.example.com/v1/public/../orders", missing),
        // Paths without one reading are refused outright (see README).
        (
            "GET",
            "/v1/public%2Fdocs",
            Expect::BadRequest("the path hides a slash or backslash in %2F or %5C"),
        ),
        (
            "GET",
            "/v1/public\\docs",
            Expect::BadRequest("the path holds a backslash, which some origins read as a slash"),
        ),
        (
            "GET",
            "/v1/public/..%00/docs",
            Expect::BadRequest("the path holds a control character"),
        ),
        (
            "GET",
            "/v1/public/x#/../../orders",
            Expect::BadRequest("the request target holds a raw '#' (a fragment is never sent)"),
        ),
        (
            "GET",
            "/v1/public/..;/../v2/orders",
            Expect::BadRequest(
                "the path meets different rules with and without its ';' parameters",
            ),
        ),
    ];
    for &(method, uri, expect) in cases {
        gate.check(method, h, uri, &[], expect);
    }
    // An excluded endpoint answers the same with any token, valid or not, and
    // never forwards an identity; a checked one is allowed with a valid token.
    gate.get(
        "/v1/health",
        &[("Authorization", &bearer(&env.keys.bad_signature()))],
        excluded,
    );
    gate.get(
        "/v1/health",
        &[("Authorization", &bearer(&alice))],
        excluded,
    );
    let alice_valid = Expect::Valid {
        sub: "alice",
        iss: ISS,
        kid: KID_RSA,
        filled: &[("x-user", "alice")],
    };
    gate.get(
        "/v1/public/../orders",
        &[("Authorization", &bearer(&alice))],
        alice_valid,
    );
    gate.get(
        "/v1//health",
        &[("Authorization", &bearer(&alice))],
        alice_valid,
    );
}

#[test]
fn mode_all_and_mode_any() {
    let env = Env::new();
    let rules = r#"
[[rule]]
name = "both"
paths = ["/all/**"]
token_configs = ["users", "service"]
mode = "all"

[[rule]]
name = "either"
paths = ["/any/**"]
token_configs = ["users", "service"]
mode = "any"
"#;
    let gate = Gate {
        server: env.serve(&x_original("deny", rules), &[]),
        forwarded: &[],
    };
    let k = &env.keys;
    let user = bearer(&k.user("alice", ""));
    let service = k.service("billing");
    let bad_user = bearer(&k.bad_signature());
    let expired = bearer(&k.expired());
    // A user token valid for `service` (the other issuer) is refused by `users`.
    let wrong_issuer_for_users = bearer(&service);
    let by_service = Expect::Valid {
        sub: "billing",
        iss: SVC_ISS,
        kid: KID_RSA,
        filled: &[],
    };

    // all: both tokens, each valid for its configuration; identity of the first.
    gate.get(
        "/all/x",
        &[("Authorization", &user), ("X-Service-Token", &service)],
        valid("alice"),
    );
    gate.get(
        "/all/x",
        &[("Authorization", &user)],
        Expect::Denied("missing"),
    );
    gate.get(
        "/all/x",
        &[("X-Service-Token", &service)],
        Expect::Denied("missing"),
    );
    gate.get("/all/x", &[], Expect::Denied("missing"));
    gate.get(
        "/all/x",
        &[
            ("Authorization", &user),
            ("X-Service-Token", &k.bad_signature()),
        ],
        Expect::Denied("bad_signature"),
    );
    gate.get(
        "/all/x",
        &[("Authorization", &expired), ("X-Service-Token", &service)],
        Expect::Denied("expired"),
    );
    // The same token in both places does not satisfy two issuers.
    gate.get(
        "/all/x",
        &[
            ("Authorization", &wrong_issuer_for_users),
            ("X-Service-Token", &service),
        ],
        Expect::Denied("wrong_issuer"),
    );

    // any: one valid configuration is enough...
    gate.get("/any/x", &[("Authorization", &user)], valid("alice"));
    gate.get("/any/x", &[("X-Service-Token", &service)], by_service);
    // ...but jwtgate never picks: two valid tokens of different identities,
    // or a valid token beside an invalid one, are ambiguous.
    gate.get(
        "/any/x",
        &[("Authorization", &user), ("X-Service-Token", &service)],
        Expect::Denied("ambiguous_token"),
    );
    gate.get(
        "/any/x",
        &[("Authorization", &bad_user), ("X-Service-Token", &service)],
        Expect::Denied("ambiguous_token"),
    );
    gate.get("/any/x", &[], Expect::Denied("missing"));
    gate.get(
        "/any/x",
        &[("Authorization", &bad_user)],
        Expect::Denied("bad_signature"),
    );
    gate.get(
        "/any/x",
        &[("X-Service-Token", &k.expired())],
        Expect::Denied("expired"),
    );
    gate.get(
        "/any/x",
        &[
            ("Authorization", &expired),
            ("X-Service-Token", &k.bad_signature()),
        ],
        Expect::Denied("expired"),
    );
}

#[test]
fn log_action_allows_failures_and_says_so() {
    let env = Env::new();
    let rules = r#"
[[rule]]
name = "beta"
paths = ["/v2/**"]
token_configs = ["users"]
action = "log"
require_claims = [ { claim = "scope", contains = "beta" } ]
forward_claims = { sub = "x-user" }
"#;
    let gate = Gate {
        server: env.serve(&x_original("deny", rules), &[]),
        forwarded: &["x-user"],
    };
    let k = &env.keys;
    let with = |token: &str| bearer(token);
    gate.get("/v2/x", &[], logged("missing"));
    gate.get(
        "/v2/x",
        &[("Authorization", &with(&k.expired()))],
        logged("expired"),
    );
    gate.get(
        "/v2/x",
        &[("Authorization", &with(&k.bad_signature()))],
        logged("bad_signature"),
    );
    gate.get(
        "/v2/x",
        &[("Authorization", "Bearer a b")],
        logged("malformed"),
    );
    gate.get(
        "/v2/x",
        &[(
            "Authorization",
            &with(&k.user("alice", r#","scope":"read""#)),
        )],
        logged("insufficient_scope"),
    );
    gate.get(
        "/v2/x",
        &[(
            "Authorization",
            &with(&k.user("alice", r#","scope":"read beta""#)),
        )],
        Expect::Valid {
            sub: "alice",
            iss: ISS,
            kid: KID_RSA,
            filled: &[("x-user", "alice")],
        },
    );
    // Outside the rule, the default still denies.
    gate.get("/v3/x", &[], Expect::NoRule);
}

#[test]
fn on_missing_allow_lets_no_token_through_but_not_a_bad_one() {
    let env = Env::new();
    let rules = r#"
[[rule]]
name = "optional"
paths = ["/feed/**"]
token_configs = ["users", "service"]
on_missing = "allow"
forward_claims = { sub = "x-user" }

[[rule]]
name = "strict"
paths = ["/**"]
token_configs = ["users"]
"#;
    let gate = Gate {
        server: env.serve(&x_original("deny", rules), &[]),
        forwarded: &["x-user"],
    };
    let k = &env.keys;
    gate.get("/feed", &[], open("missing"));
    gate.get(
        "/feed/latest",
        &[("Authorization", "Basic dXNlcjpwYXNz")],
        open("missing"),
    );
    gate.get("/feed/latest", &[("Cookie", "session=")], open("missing"));
    gate.get(
        "/feed/latest",
        &[("Authorization", &bearer(&k.bad_signature()))],
        Expect::Denied("bad_signature"),
    );
    gate.get(
        "/feed/latest",
        &[("X-Service-Token", &k.expired())],
        Expect::Denied("expired"),
    );
    gate.get(
        "/feed/latest",
        &[("Authorization", "Bearer")],
        Expect::Denied("malformed"),
    );
    gate.get(
        "/feed/latest",
        &[("Authorization", &bearer(&k.user("alice", "")))],
        Expect::Valid {
            sub: "alice",
            iss: ISS,
            kid: KID_RSA,
            filled: &[("x-user", "alice")],
        },
    );
    // The other rule keeps requiring a token.
    gate.get("/other", &[], Expect::Denied("missing"));
}

#[test]
fn require_claims_answer_403_insufficient_scope() {
    let env = Env::new();
    let rules = r#"
[[rule]]
name = "scope"
paths = ["/orders/**"]
token_configs = ["users"]
require_claims = [ { claim = "scope", contains = "read:orders" } ]

[[rule]]
name = "scp"
paths = ["/users/**"]
token_configs = ["users"]
require_claims = [ { claim = "scp", contains = "users.read" } ]

[[rule]]
name = "class"
paths = ["/admin/**"]
token_configs = ["users"]
require_claims = [ { claim = "class", equals = "admin" }, { claim = "realm.level", equals = "3" } ]
"#;
    let gate = Gate {
        server: env.serve(&x_original("deny", rules), &[]),
        forwarded: &[],
    };
    let k = &env.keys;
    let token = |extra: &str| bearer(&k.user("alice", extra));
    let cases: &[(&str, &str, Expect<'_>)] = &[
        (
            "/orders/1",
            r#","scope":"read:orders write:orders""#,
            valid("alice"),
        ),
        (
            "/orders/1",
            r#","scope":"write:orders read:orders""#,
            valid("alice"),
        ),
        ("/orders/1", r#","scope":"read:orders""#, valid("alice")),
        (
            "/orders/1",
            r#","scope":"read:ordersX write:orders""#,
            Expect::Scope,
        ),
        ("/orders/1", r#","scope":"read write""#, Expect::Scope),
        ("/orders/1", r#","scope":["read:orders"]"#, valid("alice")),
        ("/orders/1", r#","scp":"read:orders""#, Expect::Scope),
        ("/orders/1", "", Expect::Scope),
        (
            "/users/1",
            r#","scp":["profile","users.read"]"#,
            valid("alice"),
        ),
        (
            "/users/1",
            r#","scp":["profile","users.readonly"]"#,
            Expect::Scope,
        ),
        ("/users/1", r#","scp":[]"#, Expect::Scope),
        ("/users/1", r#","scp":"users.read""#, valid("alice")),
        (
            "/admin/x",
            r#","class":"admin","realm":{"level":3}"#,
            valid("alice"),
        ),
        (
            "/admin/x",
            r#","class":"Admin","realm":{"level":3}"#,
            Expect::Scope,
        ),
        (
            "/admin/x",
            r#","class":"admin","realm":{"level":4}"#,
            Expect::Scope,
        ),
        ("/admin/x", r#","class":"admin""#, Expect::Scope),
        (
            "/admin/x",
            r#","class":["admin"],"realm":{"level":3}"#,
            Expect::Scope,
        ),
    ];
    for &(uri, extra, expect) in cases {
        gate.get(uri, &[("Authorization", &token(extra))], expect);
    }
    // A token that fails verification is 401, not 403.
    gate.get(
        "/orders/1",
        &[("Authorization", &bearer(&k.expired()))],
        Expect::Denied("expired"),
    );
    gate.get("/orders/1", &[], Expect::Denied("missing"));
}

#[test]
fn forwarded_claims_and_their_headers_on_every_answer() {
    let env = Env::new();
    let rules = r#"
[[rule]]
name = "profile"
paths = ["/profile/**"]
token_configs = ["users"]
forward_claims = { "org.name" = "X-Org", roles = "x-roles", name = "x-name", level = "x-level", absent = "x-absent", email = "x-jwt-sub" }

[[rule]]
name = "api"
paths = ["/api/**"]
token_configs = ["users"]
exclude = ["/api/public/**"]
forward_claims = { sub = "x-user" }

[[rule]]
name = "beta"
paths = ["/beta/**"]
token_configs = ["users"]
action = "log"
"#;
    let forwarded: &[&str] = &[
        "x-absent", "x-level", "x-name", "x-org", "x-roles", "x-user",
    ];
    let gate = Gate {
        server: env.serve(&x_original("allow", rules), &[]),
        forwarded,
    };
    let k = &env.keys;
    let h = "api.example.com";
    let token = bearer(&k.user(
        "alice",
        r#","org":{"name":"Acme","id":7},"roles":["ops","dev"],"name":"Alice Smith","level":3,"email":"a@x.test""#,
    ));
    let auth = [
        ("Authorization", token.as_str()),
        // Client copies of forwarded headers change nothing in the answer.
        ("X-Org", "forged"),
        ("X-User", "root"),
    ];
    gate.get(
        "/profile/me",
        &auth,
        Expect::Valid {
            // x-jwt-sub is one of the four: a rule may fill it from another claim.
            sub: "a@x.test",
            iss: ISS,
            kid: KID_RSA,
            filled: &[
                ("x-level", "3"),
                ("x-name", "Alice%20Smith"),
                ("x-org", "Acme"),
                ("x-roles", "ops,dev"),
            ],
        },
    );
    // Another rule: only its own header is filled, the others are present and empty.
    gate.get(
        "/api/orders",
        &auth,
        Expect::Valid {
            sub: "alice",
            iss: ISS,
            kid: KID_RSA,
            filled: &[("x-user", "alice")],
        },
    );
    // Excluded, no_rule and log answers carry every header, empty.
    gate.get("/api/public/a", &auth, open("excluded"));
    gate.get("/elsewhere", &auth, open("no_rule"));
    gate.get("/beta/x", &[("X-Org", "forged")], logged("missing"));
    // The raw bytes: header names as configured, lower case, values encoded.
    let r = send(&gate.server, &original("GET", h, "/profile/me", &auth));
    let expected_head = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nx-jwtgate-outcome: valid\r\n\
        x-jwt-sub: a@x.test\r\nx-jwt-iss: https://idp.test/\r\nx-jwt-kid: rsa-a\r\nx-jwt-payload: \r\n\
        x-absent: \r\nx-level: 3\r\nx-name: Alice%20Smith\r\nx-org: Acme\r\nx-roles: ops,dev\r\nx-user: \r\n\r\n";
    assert_eq!(r.head_text(), expected_head);
}

#[test]
fn cors_preflight_bypass() {
    let env = Env::new();
    let rules = r#"
[[rule]]
name = "browser"
paths = ["/web/**"]
token_configs = ["users"]
bypass_cors_preflight = true

[[rule]]
name = "api"
paths = ["/**"]
token_configs = ["users"]
"#;
    let gate = Gate {
        server: env.serve(&x_original("deny", rules), &[]),
        forwarded: &[],
    };
    let h = "api.example.com";
    let preflight = [
        ("Origin", "https://app.example.com"),
        ("Access-Control-Request-Method", "POST"),
    ];
    gate.check("OPTIONS", h, "/web/orders", &preflight, open("preflight"));
    // Not a preflight: OPTIONS without Origin or without the request method.
    gate.check(
        "OPTIONS",
        h,
        "/web/orders",
        &preflight[..1],
        Expect::Denied("missing"),
    );
    gate.check(
        "OPTIONS",
        h,
        "/web/orders",
        &preflight[1..],
        Expect::Denied("missing"),
    );
    // The original method is what counts, not the check request's.
    gate.check(
        "POST",
        h,
        "/web/orders",
        &preflight,
        Expect::Denied("missing"),
    );
    // A rule without the bypass checks preflights like anything else.
    gate.check(
        "OPTIONS",
        h,
        "/api/orders",
        &preflight,
        Expect::Denied("missing"),
    );
}

// ---------------------------------------------------------------------------
// How the original request reaches jwtgate
// ---------------------------------------------------------------------------

const FORWARDED_RULES: &str = r#"
[[rule]]
name = "api"
hosts = ["api.example.com"]
paths = ["/v1/**"]
token_configs = ["users"]
exclude = ["GET /v1/health"]
"#;

#[test]
fn x_forwarded_headers_traefik_caddy() {
    let env = Env::new();
    let text = format!(
        "default_action = \"deny\"\n[server]\nforwarded = \"x-forwarded\"\nshards = 1\n{TOKEN_CONFIGS}{FORWARDED_RULES}"
    );
    let gate = Gate {
        server: env.serve(&text, &[]),
        forwarded: &[],
    };
    let alice = env.keys.user("alice", "");
    let authorization = format!("Authorization: Bearer {alice}");
    let request = |method: &str, host: &str, uri: &str, extra: &[&str]| {
        let mut lines = vec![
            "GET /auth HTTP/1.1".to_owned(),
            "Host: jwtgate.internal:8080".to_owned(),
            format!("X-Forwarded-Method: {method}"),
            format!("X-Forwarded-Host: {host}"),
            format!("X-Forwarded-Uri: {uri}"),
        ];
        lines.extend(extra.iter().map(|l| (*l).to_owned()));
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        raw(&lines)
    };
    gate.expect(
        "orders",
        &request("GET", "api.example.com", "/v1/orders", &[]),
        Expect::Denied("missing"),
    );
    gate.expect(
        "orders with token",
        &request("GET", "api.example.com", "/v1/orders", &[&authorization]),
        valid("alice"),
    );
    gate.expect(
        "health",
        &request("GET", "api.example.com", "/v1/health", &[]),
        open("excluded"),
    );
    gate.expect(
        "health by POST",
        &request("POST", "api.example.com", "/v1/health", &[]),
        Expect::Denied("missing"),
    );
    gate.expect(
        "other host",
        &request("GET", "www.example.com", "/v1/orders", &[]),
        Expect::NoRule,
    );
    // nginx-style headers are not read in this mode: a client cannot steer routing with them.
    gate.expect(
        "X-Original-URI ignored",
        &request(
            "GET",
            "api.example.com",
            "/v1/orders",
            &["X-Original-URI: /v1/health", "X-Original-Method: GET"],
        ),
        Expect::Denied("missing"),
    );
    gate.expect(
        "no X-Forwarded-Uri",
        &raw(&[
            "GET /v1/health HTTP/1.1",
            "Host: api.example.com",
            "X-Forwarded-Method: GET",
            "X-Forwarded-Host: api.example.com",
        ]),
        Expect::BadRequest("exactly one X-Forwarded-Uri is required"),
    );
    gate.expect(
        "two X-Forwarded-Uri",
        &request(
            "GET",
            "api.example.com",
            "/v1/orders",
            &["X-Forwarded-Uri: /v1/health"],
        ),
        Expect::BadRequest("exactly one X-Forwarded-Uri is required"),
    );
}

#[test]
fn request_line_with_path_prefix_envoy() {
    let env = Env::new();
    let text = format!(
        "default_action = \"deny\"\n[server]\nforwarded = \"request-line\"\npath_prefix = \"/authz\"\nshards = 1\n{TOKEN_CONFIGS}{FORWARDED_RULES}"
    );
    let gate = Gate {
        server: env.serve(&text, &[]),
        forwarded: &[],
    };
    let alice = env.keys.user("alice", "");
    let authorization = format!("Authorization: Bearer {alice}");
    let host = "Host: api.example.com";
    gate.expect(
        "orders",
        &raw(&["GET /authz/v1/orders HTTP/1.1", host]),
        Expect::Denied("missing"),
    );
    gate.expect(
        "orders with token",
        &raw(&["PUT /authz/v1/orders/7?x=1 HTTP/1.1", host, &authorization]),
        valid("alice"),
    );
    gate.expect(
        "health",
        &raw(&["GET /authz/v1/health HTTP/1.1", host]),
        open("excluded"),
    );
    gate.expect(
        "health by PUT",
        &raw(&["PUT /authz/v1/health HTTP/1.1", host]),
        Expect::Denied("missing"),
    );
    gate.expect(
        "dodge",
        &raw(&["GET /authz/v1//health HTTP/1.1", host]),
        Expect::Denied("missing"),
    );
    // The bare prefix is "/": no rule.
    gate.expect(
        "bare prefix",
        &raw(&["GET /authz HTTP/1.1", host]),
        Expect::NoRule,
    );
    gate.expect(
        "other host",
        &raw(&["GET /authz/v1/orders HTTP/1.1", "Host: www.example.com"]),
        Expect::NoRule,
    );
    // A path without the prefix, or with it as part of a segment, is refused.
    let refused = Expect::BadRequest("the request path does not start with the configured prefix");
    gate.expect(
        "no prefix",
        &raw(&["GET /v1/orders HTTP/1.1", host]),
        refused,
    );
    gate.expect(
        "prefix in a segment",
        &raw(&["GET /authzv1/orders HTTP/1.1", host]),
        refused,
    );
}

#[test]
fn forwarded_headers_only_from_trusted_proxies() {
    let env = Env::new();
    let rules = FORWARDED_RULES;
    let untrusted = x_original("deny", rules).replace(
        "shards = 1",
        "shards = 1\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]",
    );
    let server = env.serve(&untrusted, &[]);
    // Loopback is not listed: the X-Original-* headers are not believed.
    let r = send(
        &server,
        &original("GET", "api.example.com", "/v1/health", &[]),
    );
    let body = r#"{"error":"untrusted_proxy","detail":"forwarded headers are only believed from server.trusted_proxies"}"#;
    assert_eq!(
        format!("{}{}", r.head_text(), r.body_text()),
        format!(
            "HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             cache-control: no-store\r\nx-jwtgate-outcome: untrusted_proxy\r\n\r\n{body}",
            body.len()
        )
    );
    drop(server);
    let trusted = x_original("deny", rules).replace(
        "shards = 1",
        "shards = 1\ntrusted_proxies = [\"10.0.0.0/8\", \"127.0.0.0/8\"]",
    );
    let gate = Gate {
        server: env.serve(&trusted, &[]),
        forwarded: &[],
    };
    gate.get("/v1/health", &[], open("excluded"));
    gate.get("/v1/orders", &[], Expect::Denied("missing"));
}

// ---------------------------------------------------------------------------
// Command line and start-up
// ---------------------------------------------------------------------------

/// A port that is taken for as long as the returned listener lives.
fn occupied_port() -> (std::net::TcpListener, u16) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

#[test]
fn command_line_server_flags_override_the_server_table() {
    let env = Env::new();
    // The file names ports that are taken: only the command line's can work.
    let (_data, data_port) = occupied_port();
    let (_admin, admin_port) = occupied_port();
    let text = format!(
        "default_action = \"deny\"\n[server]\nlisten = \"127.0.0.1:{data_port}\"\nadmin_listen = \"127.0.0.1:{admin_port}\"\nshards = 1\nio = \"epoll\"\n{TOKEN_CONFIGS}\n[[rule]]\nname = \"all\"\ntoken_configs = [\"users\"]\n"
    );
    let path = env.write_config(&text);
    let server = Server::start(&["--config", &path, "--now", NOW, "--shards", "2"]);
    assert_ne!(server.addr().port(), data_port, "{}", server.ready_line());
    assert_ne!(
        server.admin_addr().port(),
        admin_port,
        "{}",
        server.ready_line()
    );
    // --shards given: 2; io not given: the file's epoll.
    assert_eq!(
        (server.shards(), server.io()),
        (2, "epoll"),
        "{}",
        server.ready_line()
    );
    let r = send(
        &server,
        &raw(&[
            "GET / HTTP/1.1",
            "Host: x",
            &format!("Authorization: Bearer {}", env.keys.user("alice", "")),
        ]),
    );
    assert_answer("flags-only style rule", &r, valid("alice"), &[]);
    drop(server);

    // Without listen flags, the file's [server] table decides.
    let text = format!(
        "default_action = \"deny\"\n[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nshards = 1\nio = \"epoll\"\n{TOKEN_CONFIGS}\n[[rule]]\nname = \"all\"\ntoken_configs = [\"users\"]\n"
    );
    let path = env.write_config(&text);
    let server = Server::start_without_listen_flags(&["--config", &path, "--now", NOW]);
    assert_ne!(server.addr().port(), 8080, "{}", server.ready_line());
    assert_ne!(server.admin_addr().port(), 9901, "{}", server.ready_line());
    assert_eq!(
        (server.shards(), server.io()),
        (1, "epoll"),
        "{}",
        server.ready_line()
    );
}

#[test]
fn token_flags_with_config_exit_2() {
    let env = Env::new();
    let path = env.write_config(&x_original(
        "deny",
        "[[rule]]\nname = \"r\"\ntoken_configs = [\"users\"]\n",
    ));
    for (flag, value) in [
        ("--issuer", ISS),
        ("--audience", AUD),
        ("--algorithms", "RS256"),
        ("--leeway", "5"),
        ("--max-token-len", "100"),
    ] {
        let out = run_jwtgate_bounded(
            &[
                "serve",
                "--config",
                &path,
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
                flag,
                value,
            ],
            RUN_TIMEOUT,
        );
        assert_eq!(out.status.code(), Some(2), "{flag}: {out:?}");
        assert!(
            out.stdout.is_empty(),
            "{flag}: stdout {:?}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!(
                "jwtgate: {flag} is a token setting: with --config, set it in a [[token_config]] of {path}\n"
            ),
            "{flag}"
        );
    }
    // --jwks is refused by the argument parser itself.
    let out = run_jwtgate_bounded(
        &[
            "serve",
            "--config",
            &path,
            "--jwks",
            &path,
            "--listen",
            "127.0.0.1:0",
        ],
        RUN_TIMEOUT,
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--jwks") && stderr.contains("--config"),
        "{stderr}"
    );
}

/// 1-based `(line, column)` of byte `offset` of `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |n| n + 1) + 1;
    (line, column)
}

/// 1-based `(line, column)` of the first occurrence of `needle` in `text`.
fn position(text: &str, needle: &str) -> (usize, usize) {
    let offset = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in the text"));
    line_column(text, offset)
}

#[test]
fn a_broken_configuration_at_startup_exits_2_naming_file_line_column_and_key() {
    let env = Env::new();
    let rule = "[[rule]]\nname = \"r\"\ntoken_configs = [\"users\"]\n";
    let base = x_original("deny", rule);
    let cases: Vec<(String, &str, &str, &str)> = vec![
        (
            base.replace(
                "audiences = [\"api\"]\n\n[[token_config]]",
                "audiences = [\"api\"]\nleeway = \"sixty\"\n\n[[token_config]]",
            ),
            "\"sixty\"",
            "token_config[0].leeway",
            "expected a duration such as \"500ms\", \"60s\", \"10m\" or \"1h\"",
        ),
        (
            base.replace(
                "token_configs = [\"users\"]",
                "token_configs = [\"users\", \"nobody\"]",
            ),
            "\"nobody\"",
            "rule[0].token_configs[1]",
            "no token configuration is named \"nobody\" (defined: users, service)",
        ),
        (
            format!("{base}exclude = [\"GET /v1/**/x\"]\n"),
            "\"GET /v1/**/x\"",
            "rule[0].exclude[0]",
            "'**' may only be the last segment",
        ),
        (
            base.replace("forwarded = \"x-original\"", "forwarded = \"nginx\""),
            "\"nginx\"",
            "server.forwarded",
            "expected \"x-original\" (nginx auth_request), \"x-original-url\" (Kubernetes ingress-nginx), \"x-forwarded\" (Traefik, Caddy) or \"request-line\" (Envoy)",
        ),
    ];
    for (text, at, key, message) in cases {
        let path = env.write_config(&text);
        let (line, column) = position(&text, at);
        let out = run_jwtgate_bounded(
            &[
                "serve",
                "--config",
                &path,
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ],
            RUN_TIMEOUT,
        );
        assert_eq!(out.status.code(), Some(2), "{key}: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!("jwtgate: {path}:{line}:{column}: {key}: {message}\n"),
            "config:\n{text}"
        );
    }
    // A syntax or type error names the key too.
    let text = base.replace("shards = 1", "shards = \"one\"");
    let path = env.write_config(&text);
    let (line, _) = position(&text, "shards = \"one\"");
    let out = run_jwtgate_bounded(
        &[
            "serve",
            "--config",
            &path,
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ],
        RUN_TIMEOUT,
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let prefix = format!("jwtgate: {path}:{line}:");
    assert!(
        stderr.starts_with(&prefix) && stderr.contains(": server.shards: "),
        "expected {prefix}…: server.shards: …, got {stderr:?}"
    );
}

// ---------------------------------------------------------------------------
// check-config and verify --config
// ---------------------------------------------------------------------------

#[test]
fn check_config_of_the_example_file() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/config/jwtgate.toml");
    let file = file.to_str().unwrap();
    let requests = [
        "GET https://api.example.com/v1/orders",
        "GET https://api.example.com/v1/health",
        "HEAD https://api.example.com/v1/health",
        "POST https://eu.api.example.com/v1/public/docs",
        "GET https://api.example.com/v1/public/../orders",
        "GET https://api.example.com/v1//health",
        "DELETE https://admin.example.com/users/7",
        "GET https://api.example.com/v2/beta",
        "GET https://api.example.com/v3",
        "GET https://example.com/v1/orders",
    ];
    let mut args = vec!["check-config", file];
    for request in &requests {
        args.extend(["--request", request]);
    }
    let out = run_jwtgate(&args, b"");
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = format!(
        r#"{file}: valid

default_action: deny
original request from: X-Original-Method/-URI and Host (nginx)

[server]
  listen: 127.0.0.1:8080
  admin_listen: 127.0.0.1:9901
  verify_listen: off
  grpc_listen: off
  shards: one per core
  io: auto (io_uring, else epoll)
  limits: head 16384 B, request line 8192 B, body 65536 B, 10000 connections per shard
  overload: 429 overloaded for tokens not cached once requests wait 0.15s
  timeouts: header 10s, idle 60s, drain 10s after a delay of 0s
  observability: metrics on, access log off, stderr summary at shutdown
  token cache: 4096 verified tokens per shard (at most 17 MiB), each used for at most 300s

token_config "production"
  sources: header authorization (Bearer or raw), cookie session
  key kid "demo-rs256": RSA-2048 for RS256
  key kid "demo-es256": EC P-256 for ES256
  key kid "demo-eddsa": Ed25519 for EdDSA
  algorithms: RS256,ES256
  issuer: https://demo.jwtgate.invalid/
  audiences: demo-api
  leeway: 60s
  require: exp, sub
  max_lifetime: 86400s
  max_token_len: 16384

token_config "staging"
  sources: header authorization (Bearer or raw)
  key kid "demo-rs256": RSA-2048 for RS256
  key kid "demo-es256": EC P-256 for ES256
  key kid "demo-eddsa": Ed25519 for EdDSA
  algorithms: RS256,ES256,EdDSA
  issuer: https://staging.jwtgate.invalid/
  audiences: demo-api
  leeway: 60s
  require: exp
  max_token_len: 16384

rules, first match wins:
  1. admin: hosts admin.example.com; paths any; methods any; token_configs production (any one valid); action block; require scope contains "admin"; forward scope -> x-jwt-scope, sub -> x-jwt-sub
  2. api: hosts api.example.com, *.api.example.com; paths /v1/**; methods any; token_configs production, staging (any one valid); action block; exclude GET /v1/health, /v1/public/**; forward realm_access.roles -> x-jwt-roles, scope -> x-jwt-scope, sub -> x-jwt-sub; CORS preflight passes
  3. beta: hosts api.example.com; paths /v2/**; methods any; token_configs staging (any one valid); action log

requests:
  GET https://api.example.com/v1/orders -> rule api (#2): token checked, denied unless valid
  GET https://api.example.com/v1/health -> rule api (#2): excluded endpoint, allowed without a token
  HEAD https://api.example.com/v1/health -> rule api (#2): token checked, denied unless valid
  POST https://eu.api.example.com/v1/public/docs -> rule api (#2): excluded endpoint, allowed without a token
  GET https://api.example.com/v1/public/../orders -> rule api (#2): token checked, denied unless valid [path read as /v1/orders]
  GET https://api.example.com/v1//health -> rule api (#2): token checked, denied unless valid [path read as /v1/health]
  DELETE https://admin.example.com/users/7 -> rule admin (#1): token checked, denied unless valid
  GET https://api.example.com/v2/beta -> rule beta (#3): token checked, allowed and logged
  GET https://api.example.com/v3 -> no rule: default_action deny (403)
  GET https://example.com/v1/orders -> no rule: default_action deny (403)
"#
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    for (got, want) in stdout.lines().zip(expected.lines()) {
        assert_eq!(got, want, "first differing line of check-config output");
    }
    assert_eq!(stdout, expected);

    // The example also serves, with its [server] ports overridden.
    let server = Server::start(&["--config", file, "--now", NOW, "--shards", "1"]);
    let r = send(
        &server,
        &original("GET", "api.example.com", "/v1/health", &[]),
    );
    assert_answer(
        "example: health",
        &r,
        open("excluded"),
        &["x-jwt-roles", "x-jwt-scope"],
    );
    let r = send(
        &server,
        &original("GET", "api.example.com", "/v1/orders", &[]),
    );
    assert_answer("example: orders", &r, Expect::Denied("missing"), &[]);
}

/// The part of `check-config`'s report from the rules on: what the examples'
/// comments and the README promise about them.
fn rules_and_requests(file: &str, requests: &[&str]) -> String {
    let mut args = vec!["check-config", file];
    for request in requests {
        args.extend(["--request", request]);
    }
    let out = run_jwtgate(&args, b"");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(0) && stderr.is_empty(),
        "{file}: {out:?}"
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let at = stdout.find("rules, first match wins:").unwrap();
    stdout[at..].to_owned()
}

#[test]
fn check_config_of_the_envoy_and_istio_examples() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let envoy = root.join("examples/envoy/jwtgate.toml");
    assert_eq!(
        rules_and_requests(
            envoy.to_str().unwrap(),
            &[
                "GET https://api.example.com/v1/orders",
                "GET https://api.example.com/v1/status",
                "HEAD https://api.example.com/v1/status",
                "GET https://api.example.com/v1/./status",
                "GET https://api.example.com/Admin/users",
                "GET https://api.example.com/healthz",
            ],
        ),
        r#"rules, first match wins:
  1. admin: hosts any; paths /admin/**; methods any; token_configs users (any one valid); action block; require scope contains "admin"; forward scope -> x-jwt-scope; gRPC face removes authorization
  2. api: hosts any; paths /v1/**; methods any; token_configs users (any one valid); action block; exclude GET /v1/status; forward email -> x-jwt-email, scope -> x-jwt-scope

requests:
  GET https://api.example.com/v1/orders -> rule api (#2): token checked, denied unless valid
  GET https://api.example.com/v1/status -> rule api (#2): excluded endpoint, allowed without a token
  HEAD https://api.example.com/v1/status -> rule api (#2): token checked, denied unless valid
  GET https://api.example.com/v1/./status -> rule api (#2): token checked, denied unless valid [path read as /v1/status]
  GET https://api.example.com/Admin/users -> rule admin (#1): token checked, denied unless valid
  GET https://api.example.com/healthz -> no rule: default_action deny (403)
"#
    );

    // The Istio example carries its configuration in a ConfigMap: the block
    // under `jwtgate.toml: |`, indented by four spaces, up to the next document.
    let manifest = std::fs::read_to_string(root.join("examples/istio/jwtgate.yaml")).unwrap();
    let block = manifest
        .split_once("  jwtgate.toml: |\n")
        .unwrap()
        .1
        .split("\n---\n")
        .next()
        .unwrap();
    let toml = block
        .lines()
        .map(|line| line.strip_prefix("    ").unwrap_or(line))
        .collect::<Vec<_>>()
        .join("\n");
    let dir = TempDir::new("istio-example");
    let istio = dir.write("jwtgate.toml", toml);
    assert_eq!(
        rules_and_requests(
            istio.to_str().unwrap(),
            &[
                "GET http://api.shop.svc.cluster.local:8080/v1/orders",
                "GET http://api/v1/status",
            ],
        ),
        r#"rules, first match wins:
  1. api: hosts any; paths /v1/**; methods any; token_configs users (any one valid); action block; exclude GET /v1/status; forward email -> x-jwt-email, scope -> x-jwt-scope

requests:
  GET http://api.shop.svc.cluster.local:8080/v1/orders -> rule api (#1): token checked, denied unless valid
  GET http://api/v1/status -> rule api (#1): excluded endpoint, allowed without a token
"#
    );
}

#[test]
fn verify_with_a_token_configuration_of_the_file() {
    let env = Env::new();
    let path = env.write_config(&x_original(
        "deny",
        "[[rule]]\nname = \"r\"\ntoken_configs = [\"users\"]\n",
    ));
    let k = &env.keys;
    let tokens = [
        k.user("alice", ""),
        k.service("billing"),
        k.expired(),
        k.bad_signature(),
        k.ed25519("eve"),
        String::new(),
        "not-a-token".to_owned(),
    ];
    let input = env.dir.write("tokens.txt", tokens.join("\n") + "\n");
    let input = input.to_str().unwrap();
    let run = |name: &str| {
        run_jwtgate(
            &[
                "verify",
                "--config",
                &path,
                "--token-config",
                name,
                "--now",
                NOW,
                "--input",
                input,
                "--threads",
                "1",
                "--quiet",
            ],
            b"",
        )
    };
    let users = run("users");
    assert_eq!(users.status.code(), Some(1), "{users:?}");
    let lines: Vec<serde_json::Value> = String::from_utf8(users.stdout.clone())
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let valid_line = |line: u64, alg: &str, kid: &str, iss: &str, sub: &str| {
        serde_json::json!({
            "line": line, "valid": true, "alg": alg, "kid": kid, "iss": iss, "sub": sub,
            "aud": AUD, "iat": T, "exp": T + 3600,
        })
    };
    let outcomes: Vec<(u64, bool, Option<&str>)> = lines
        .iter()
        .map(|v| {
            (
                v["line"].as_u64().unwrap(),
                v["valid"].as_bool().unwrap(),
                v["error"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            (1, true, None),
            (2, false, Some("wrong_issuer")),
            (3, false, Some("expired")),
            (4, false, Some("bad_signature")),
            (5, true, None),
            (6, false, Some("malformed")),
            (7, false, Some("malformed")),
        ]
    );
    assert_eq!(lines[0], valid_line(1, "RS256", KID_RSA, ISS, "alice"));
    assert_eq!(lines[4], valid_line(5, "EdDSA", KID_ED, ISS, "eve"));

    // The same judgement as the equivalent flags, byte for byte.
    let jwks = env.dir.path("keys.jwks.json");
    let flags = run_jwtgate(
        &[
            "verify",
            "--jwks",
            jwks.to_str().unwrap(),
            "--issuer",
            ISS,
            "--audience",
            AUD,
            "--now",
            NOW,
            "--input",
            input,
            "--threads",
            "1",
            "--quiet",
        ],
        b"",
    );
    assert_eq!(
        String::from_utf8_lossy(&users.stdout),
        String::from_utf8_lossy(&flags.stdout)
    );

    // The other configuration accepts only the service token.
    let service = run("service");
    let valid: Vec<bool> = String::from_utf8(service.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["valid"]
                .as_bool()
                .unwrap()
        })
        .collect();
    assert_eq!(valid, [false, true, false, false, false, false, false]);

    // An unknown name is a usage error naming the defined ones.
    let unknown = run("nobody");
    assert_eq!(unknown.status.code(), Some(2), "{unknown:?}");
    assert!(unknown.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&unknown.stderr),
        format!(
            "jwtgate: {path}: no token configuration is named \"nobody\" (defined: users, service)\n"
        )
    );
}

#[test]
fn verify_with_config_refuses_token_flags() {
    // With --config the token settings come from the file; a token flag given
    // anyway would be silently ignored, so it must be refused as serve does.
    let env = Env::new();
    let path = env.write_config(&x_original(
        "deny",
        "[[rule]]\nname = \"r\"\ntoken_configs = [\"users\"]\n",
    ));
    let out = run_jwtgate(
        &[
            "verify",
            "--config",
            &path,
            "--token-config",
            "users",
            "--now",
            NOW,
            "--issuer",
            "https://other.test/",
            "--quiet",
        ],
        format!("{}\n", env.keys.user("alice", "")).as_bytes(),
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "verify --config with --issuer: stdout {:?}, stderr {:?}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------
// Hot reload
// ---------------------------------------------------------------------------

/// Polls the server's stderr until `done` holds (deadline [`RELOAD_TIMEOUT`]).
fn wait_for_stderr(server: &Server, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + RELOAD_TIMEOUT;
    loop {
        let text = server.stderr_text();
        if done(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} on stderr within {RELOAD_TIMEOUT:?}; stderr:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn count(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

/// `/v1/**` under `users`, with these exclusions and this action.
fn reload_config(exclude: &str, action: &str) -> String {
    x_original(
        "deny",
        &format!(
            "[[rule]]\nname = \"api\"\npaths = [\"/v1/**\"]\ntoken_configs = [\"users\"]\nexclude = [{exclude}]\naction = \"{action}\"\n"
        ),
    )
}

/// `--log-format json`: every line on stderr is one JSON object with its
/// time, level and message, from start-up through a reload to the end.
#[test]
fn stderr_lines_are_json_objects_with_a_level_when_asked() {
    let env = Env::new();
    let first = reload_config(r#""/v1/health""#, "block")
        .replace("shards = 1\n", "shards = 1\nidle_timeout = \"60s\"\n");
    let mut server = env.serve(&first, &["--log-format", "json"]);
    let second = first.replace("\"60s\"", "\"30s\"");
    rewrite_unnoticed(&env.config_path(), &second);
    server.sighup();
    wait_for_stderr(&server, "the reload, as JSON", |t| {
        t.contains("\"message\":\"[server] settings changed")
    });
    server.sigterm();
    assert_eq!(server.wait_exit(Duration::from_secs(30)).code(), Some(0));
    let stderr = wait_for_stderr(&server, "the last line", |t| {
        t.contains("\"message\":\"stopped\"")
    });
    let mut levels = Vec::new();
    for line in stderr.lines() {
        let value: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}\n{stderr}"));
        let time = value["time"].as_str().unwrap_or_default();
        assert!(time.ends_with('Z') && time.len() == 20, "{line}");
        assert!(value["message"].is_string(), "{line}");
        levels.push((
            value["level"].as_str().unwrap_or_default().to_owned(),
            value["message"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    let reloaded = format!(
        "reloaded {} (SIGHUP): 2 token configurations, 1 rules",
        env.config_str()
    );
    assert!(levels.contains(&("info".to_owned(), reloaded)), "{stderr}");
    assert!(
        levels.contains(&(
            "warning".to_owned(),
            "[server] settings changed: idle_timeout; they take effect on restart".to_owned()
        )),
        "{stderr}"
    );
}

/// A reload that changes `[server]` settings applies the policy and names
/// the settings that wait for a restart.
#[test]
fn a_reload_names_the_server_settings_that_need_a_restart() {
    let env = Env::new();
    let first = reload_config(r#""/v1/health""#, "block").replace(
        "shards = 1\n",
        "shards = 1\nidle_timeout = \"60s\"\nmax_connections = 100\n",
    );
    let server = env.serve(&first, &[]);
    let second = first
        .replace("\"60s\"", "\"30s\"")
        .replace("= 100\n", "= 777\n");
    rewrite_unnoticed(&env.config_path(), &second);
    server.sighup();
    let stderr = wait_for_stderr(&server, "the server settings named", |t| {
        t.contains("[server] settings changed")
    });
    assert!(
        stderr.contains(
            "jwtgate: warning: [server] settings changed: max_connections, idle_timeout; \
             they take effect on restart\n"
        ),
        "{stderr}"
    );
}

#[test]
fn sighup_reloads_the_rewritten_file() {
    let env = Env::new();
    let first = reload_config(r#""/v1/aaaaaa""#, "block");
    let second = reload_config(r#""/v1/health""#, "block");
    assert_eq!(first.len(), second.len());
    let gate = Gate {
        server: env.serve(&first, &[]),
        forwarded: &[],
    };
    gate.get("/v1/health", &[], Expect::Denied("missing"));
    gate.get("/v1/aaaaaa", &[], open("excluded"));
    // A keep-alive connection opened before the reload, idle across it.
    let mut idle = Conn::open(gate.server.addr());
    let health = original("GET", "api.example.com", "/v1/health", &[]);
    let r = idle.request(&health);
    assert_answer("idle, before", &r, Expect::Denied("missing"), &[]);

    rewrite_unnoticed(&env.config_path(), &second);
    gate.server.sighup();
    let line = format!(
        "jwtgate: reloaded {} (SIGHUP): 2 token configurations, 1 rules\n",
        env.config_str()
    );
    let stderr = wait_for_stderr(&gate.server, "SIGHUP reload", |t| t.contains(&line));
    assert!(!stderr.contains("reload failed"), "{stderr}");
    assert!(!stderr.contains("[server] settings changed"), "{stderr}");
    gate.get("/v1/health", &[], open("excluded"));
    gate.get("/v1/aaaaaa", &[], Expect::Denied("missing"));
    // The idle connection carries on, under the new policy.
    let r = idle.request(&health);
    assert_answer("idle, after", &r, open("excluded"), &[]);
    // SIGHUP with nothing changed reloads again, and nothing else happens.
    gate.server.sighup();
    wait_for_stderr(&gate.server, "second SIGHUP reload", |t| {
        count(t, &line) == 2
    });
    gate.get("/v1/health", &[], open("excluded"));
}

#[test]
fn a_broken_rewrite_keeps_the_running_configuration() {
    let env = Env::new();
    let good = reload_config(r#""/v1/health""#, "block");
    let gate = Gate {
        server: env.serve(&good, &[]),
        forwarded: &[],
    };
    let alice = bearer(&env.keys.user("alice", ""));
    let as_before = |gate: &Gate<'_>| {
        gate.get("/v1/health", &[], open("excluded"));
        gate.get("/v1/orders", &[], Expect::Denied("missing"));
        gate.get("/v1/orders", &[("Authorization", &alice)], valid("alice"));
    };
    as_before(&gate);

    // A file change that does not load: reported, and the old policy stays.
    let broken = good.replace(r#"action = "block""#, r#"action = "deny""#);
    env.write_config(&broken);
    // The rule's action, not default_action (which is "deny" too).
    let (line, column) = line_column(&broken, broken.rfind(r#""deny""#).unwrap());
    let failed = format!(
        "jwtgate: reload failed (file changed), keeping the running configuration: {}:{line}:{column}: rule[0].action: expected \"block\" or \"log\"\n",
        env.config_str()
    );
    wait_for_stderr(&gate.server, "reload failure", |t| t.contains(&failed));
    as_before(&gate);

    // SIGHUP on the same broken file: the same, said once more.
    gate.server.sighup();
    let on_sighup = failed.replace("(file changed)", "(SIGHUP)");
    wait_for_stderr(&gate.server, "reload failure on SIGHUP", |t| {
        t.contains(&on_sighup)
    });
    as_before(&gate);

    // A key file that stops parsing fails the reload too, even with a good file.
    env.dir.write("keys.jwks.json", "{\"keys\":[");
    let next = reload_config(r#""/v1/orders""#, "block");
    env.write_config(&next);
    let (line, column) = position(&next, r#""keys.jwks.json""#);
    let key_failure = format!(
        "jwtgate: reload failed (file changed), keeping the running configuration: {}:{line}:{column}: token_config[0].jwks_file: ",
        env.config_str()
    );
    wait_for_stderr(&gate.server, "key file failure", |t| {
        t.contains(&key_failure)
    });
    as_before(&gate);

    // Fixed: the new file is in force.
    env.dir.write("keys.jwks.json", jwks_both());
    let reloaded = format!(
        "jwtgate: reloaded {} (file changed): 2 token configurations, 1 rules\n",
        env.config_str()
    );
    let stderr = wait_for_stderr(&gate.server, "reload", |t| t.contains(&reloaded));
    gate.get("/v1/orders", &[], open("excluded"));
    gate.get("/v1/health", &[], Expect::Denied("missing"));
    assert_eq!(count(&stderr, "reloaded"), 1, "{stderr}");
}

#[test]
fn a_key_file_change_reloads_the_keys() {
    let env = Env::new();
    let gate = Gate {
        server: env.serve(&reload_config("", "block"), &[]),
        forwarded: &[],
    };
    let eve = bearer(&env.keys.ed25519("eve"));
    let eve_valid = Expect::Valid {
        sub: "eve",
        iss: ISS,
        kid: KID_ED,
        filled: &[],
    };
    gate.get("/v1/x", &[("Authorization", &eve)], eve_valid);
    // The Ed25519 key is rotated out of the JWKS; the configuration is untouched.
    env.dir.write("keys.jwks.json", jwks_rsa_only());
    let reloaded = format!(
        "jwtgate: reloaded {} (file changed): 2 token configurations, 1 rules\n",
        env.config_str()
    );
    let stderr = wait_for_stderr(&gate.server, "reload after a key change", |t| {
        t.contains(&reloaded) && t.contains("keys of token_config \"service\": removed")
    });
    // Said as a fetched key set's rotation is, for each configuration.
    for name in ["users", "service"] {
        let removed =
            format!("jwtgate: keys of token_config \"{name}\": removed kid \"{KID_ED}\": ");
        assert_eq!(stderr.matches(&removed).count(), 1, "{stderr}");
    }
    assert!(!stderr.contains("added kid"), "{stderr}");
    // The allow-list defaults to the keys' algorithms: with no EdDSA key left,
    // the token is refused for its algorithm before its kid is looked up.
    gate.get(
        "/v1/x",
        &[("Authorization", &eve)],
        Expect::Denied("alg_not_allowed"),
    );
    gate.get(
        "/v1/x",
        &[("Authorization", &bearer(&env.keys.user("alice", "")))],
        valid("alice"),
    );
}

#[test]
fn a_key_file_that_appears_later_is_picked_up() {
    let env = Env::new();
    let gate = Gate {
        server: env.serve(&reload_config("", "block"), &[]),
        forwarded: &[],
    };
    let eve = bearer(&env.keys.ed25519("eve"));
    // The configuration now names a key file that does not exist yet.
    env.write_config(&reload_config("", "block").replace("keys.jwks.json", "later.jwks.json"));
    wait_for_stderr(&gate.server, "a failed reload", |t| {
        t.contains("jwtgate: reload failed (file changed), keeping the running configuration:")
    });
    // Still the old keys.
    gate.get(
        "/v1/x",
        &[("Authorization", &eve)],
        Expect::Valid {
            sub: "eve",
            iss: ISS,
            kid: KID_ED,
            filled: &[],
        },
    );
    // The key file arrives: the broken configuration is retried and loads.
    env.dir.write("later.jwks.json", jwks_rsa_only());
    wait_for_stderr(&gate.server, "the retried reload", |t| {
        t.contains("jwtgate: reloaded ") && t.contains("(file changed): 2 token configurations")
    });
    gate.get(
        "/v1/x",
        &[("Authorization", &eve)],
        Expect::Denied("alg_not_allowed"),
    );
}

/// What the load threads saw.
#[derive(Default)]
struct Tally {
    requests: AtomicUsize,
    failures: Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, what: String) {
        let mut failures = self.failures.lock().unwrap();
        if failures.len() < 20 {
            failures.push(what);
        }
    }
}

/// Sends check requests in a loop on keep-alive connections until `stop`,
/// alternating a request without a token (answered 401 `missing` by the block
/// configuration, 200 `missing` with `x-jwtgate-action: log` by the log one)
/// and one with a valid token (200 `valid` by both). Anything else, and any
/// connection error, is a failure. A connection is replaced every 50 requests.
fn load(addr: std::net::SocketAddr, token: String, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let authorization = bearer(&token);
    let no_token = original("GET", "api.example.com", "/v1/orders", &[]);
    let with_token = original(
        "GET",
        "api.example.com",
        "/v1/orders",
        &[("Authorization", &authorization)],
    );
    let mut conn = Conn::open(addr);
    let mut sent = 0usize;
    while !stop.load(Ordering::Relaxed) {
        if sent > 0 && sent.is_multiple_of(50) {
            conn = Conn::open(addr);
        }
        let carries_token = !sent.is_multiple_of(2);
        let bytes = if carries_token {
            &with_token
        } else {
            &no_token
        };
        sent += 1;
        tally.requests.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = conn.stream().write_all(bytes) {
            tally.fail(format!("request {sent}: write: {e}"));
            conn = Conn::open(addr);
            continue;
        }
        let r = match conn.try_read_response() {
            Ok(r) => r,
            Err(e) => {
                tally.fail(format!("request {sent}: {e}"));
                conn = Conn::open(addr);
                continue;
            }
        };
        let fine = if carries_token {
            matches(&r, valid("alice"), &[])
        } else {
            matches(&r, Expect::Denied("missing"), &[]) || matches(&r, logged("missing"), &[])
        };
        if !fine {
            tally.fail(format!(
                "request {sent} (token: {carries_token}): {}{}",
                r.head_text(),
                r.body_text()
            ));
        }
    }
}

#[test]
fn reload_under_load_answers_every_request() {
    let env = Env::new();
    // Two shards, so that both pick the new policy up.
    let block = reload_config("", "block").replace("shards = 1", "shards = 2");
    let log = reload_config("", "log").replace("shards = 1", "shards = 2");
    // Every answer must be the policy's: a 429 from a shard stalled by a
    // busy test machine would be load shedding, not a reload losing work.
    let server = env.serve(&block, &["--max-queue-delay", "0"]);
    assert_eq!(server.shards(), 2, "{}", server.ready_line());
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let (addr, token) = (server.addr(), env.keys.user("alice", ""));
            let (stop, tally) = (Arc::clone(&stop), Arc::clone(&tally));
            std::thread::spawn(move || load(addr, token, stop, tally))
        })
        .collect();
    let reloaded = format!(
        "jwtgate: reloaded {} (file changed): 2 token configurations, 1 rules\n",
        env.config_str()
    );
    let h = "api.example.com";
    let mut during = Vec::new();
    for round in 1_usize..=10 {
        let (text, expect) = if !round.is_multiple_of(2) {
            (&log, logged("missing"))
        } else {
            (&block, Expect::Denied("missing"))
        };
        let before = tally.requests.load(Ordering::Relaxed);
        env.write_config(text);
        wait_for_stderr(&server, &format!("reload {round}"), |t| {
            count(t, &reloaded) >= round
        });
        during.push(tally.requests.load(Ordering::Relaxed) - before);
        let r = send(&server, &original("GET", h, "/v1/orders", &[]));
        assert_answer(&format!("after reload {round}"), &r, expect, &[]);
    }
    // One more round trip per thread after the last reload, then stop.
    let after_last = tally.requests.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(30);
    while tally.requests.load(Ordering::Relaxed) < after_last + 10 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().expect("load thread panicked");
    }
    let stderr = server.stderr_text();
    let failures = tally.failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} failed requests of {}, first ones:\n{}\nstderr:\n{stderr}",
        failures.len(),
        tally.requests.load(Ordering::Relaxed),
        failures.join("\n")
    );
    assert_eq!(count(&stderr, &reloaded), 10, "{stderr}");
    assert!(!stderr.contains("reload failed"), "{stderr}");
    // Each reload takes 200-400 ms; the threads must have kept sending meanwhile.
    assert!(
        during.iter().all(|&n| n >= 10),
        "requests sent during each reload: {during:?}"
    );
    // The last configuration written (block) is the one in force.
    let r = send(&server, &original("GET", h, "/v1/orders", &[]));
    assert_answer("final", &r, Expect::Denied("missing"), &[]);
    let r = send(
        &server,
        &original(
            "GET",
            h,
            "/v1/orders",
            &[("Authorization", &bearer(&env.keys.user("alice", "")))],
        ),
    );
    assert_answer("final, valid", &r, valid("alice"), &[]);
}

/// A comma inside a forwarded string claim is sent as `%2C`, like a comma
/// inside an array element, so an upstream that splits on commas reads one
/// value; `%` is sent as `%25` everywhere, so `a%2Cb` and `a,b` stay apart.
/// The same holds for the identity headers (`x-jwt-sub` here).
#[test]
fn forwarded_claims_escape_commas_and_percent_signs() {
    let env = Env::new();
    let rules = r#"
[[rule]]
name = "profile"
paths = ["/profile/**"]
token_configs = ["users"]
forward_claims = { dn = "x-dn", note = "x-note", groups = "x-groups", nested = "x-nested" }
"#;
    let forwarded: &[&str] = &["x-dn", "x-groups", "x-nested", "x-note"];
    let gate = Gate {
        server: env.serve(&x_original("deny", rules), &[]),
        forwarded,
    };
    let token = bearer(&env.keys.user(
        "alice,admin",
        r#","dn":"CN=Alice,O=Acme","note":"a%2Cb","groups":["a,b","a%2Cb","c"],"nested":[["x,y"],["x","y"]]"#,
    ));
    let auth = [("Authorization", token.as_str())];
    gate.get(
        "/profile/me",
        &auth,
        Expect::Valid {
            sub: "alice%2Cadmin",
            iss: ISS,
            kid: KID_RSA,
            filled: &[
                ("x-dn", "CN=Alice%2CO=Acme"),
                ("x-groups", "a%2Cb,a%252Cb,c"),
                ("x-nested", "x%252Cy,x%2Cy"),
                ("x-note", "a%252Cb"),
            ],
        },
    );
    let r = send(
        &gate.server,
        &original("GET", "api.example.com", "/profile/me", &auth),
    );
    let expected_head = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nx-jwtgate-outcome: valid\r\n\
        x-jwt-sub: alice%2Cadmin\r\nx-jwt-iss: https://idp.test/\r\nx-jwt-kid: rsa-a\r\nx-jwt-payload: \r\n\
        x-dn: CN=Alice%2CO=Acme\r\nx-groups: a%2Cb,a%252Cb,c\r\nx-nested: x%252Cy,x%2Cy\r\nx-note: a%252Cb\r\n\r\n";
    assert_eq!(r.head_text(), expected_head);
}
