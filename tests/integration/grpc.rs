//! Integration tests of the gRPC face (`--grpc-listen`) through the real
//! binary, with Envoy's own `Authorization` client and the standard health
//! client: the same decision as the HTTP face for the same request (a table
//! of cases sent over both, compared on status, outcome, headers and body),
//! what only gRPC carries (`context_extensions`, `header_map`, dynamic
//! metadata, `headers_to_remove`), what it refuses (an unreadable statement,
//! a malformed or oversize message, an unknown method), health, metrics and
//! the access log, and a drain with checks in flight.
//!
//! Every jwtgate runs on ephemeral loopback ports with the token clock pinned
//! by `--now`; readiness is its readiness line and a connect (harness in
//! `common/server.rs`, client in `common/grpc.rs`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use crate::common;

use std::time::Duration;

use common::grpc::{
    GrpcClient, answer, check_request, check_request_raw, code, metadata, with_extension,
};
use common::server::{Client, Response, Server, get};
use common::{TempDir, mint, signing_key};
use jwtgate::Algorithm;
use jwtgate::internals::SigningKey;

const NOW: &str = "1700000000";
const T: i64 = 1_700_000_000;
const ISS: &str = "https://idp.test/";
const AUD: &str = "api";
const HOST: &str = "api.example.com";

/// Rules: `admin` (scope required, a claim forwarded, `authorization`
/// stripped), `audit` (log mode), `api` (an excluded endpoint, a claim
/// forwarded); anything else is denied. Envoy's request-line style on the
/// HTTP face, so that both faces read the same request.
fn config(server: &str) -> String {
    format!(
        r#"default_action = "deny"

[server]
shards = 1
forwarded = "request-line"
{server}

[[token_config]]
name = "users"
jwks_file = "users.json"
issuer = "{ISS}"
audiences = ["{AUD}"]

[[rule]]
name = "admin"
paths = ["/admin/**"]
token_configs = ["users"]
require_claims = [ {{ claim = "scope", contains = "admin" }} ]
forward_claims = {{ scope = "x-scope" }}
strip_authorization = true

[[rule]]
name = "audit"
paths = ["/audit/**"]
token_configs = ["users"]
action = "log"

[[rule]]
name = "api"
paths = ["/v1/**"]
token_configs = ["users"]
exclude = ["GET /v1/health"]
forward_claims = {{ email = "x-email" }}
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
        let dir = TempDir::new(&format!("grpc-{label}"));
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

    /// Serves [`config`] with `server` in its `[server]` table, with a gRPC
    /// port, and `extra` flags.
    fn serve(&self, server: &str, extra: &[&str]) -> Server {
        let path = self.dir.write("jwtgate.toml", config(server));
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
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// The HTTP answer as the gRPC face's [`Answer`] reads: the headers a proxy
/// acts on (framing headers left out), lowercased.
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

fn expected_code(status: u16) -> i32 {
    match status {
        200 => code::OK,
        400 => code::INVALID_ARGUMENT,
        403 => code::PERMISSION_DENIED,
        _ => code::UNAUTHENTICATED,
    }
}

#[test]
fn every_case_is_decided_alike_over_http_and_grpc() {
    let env = Env::new("parity");
    let server = env.serve("", &[]);
    let grpc = GrpcClient::connect(server.grpc_addr().unwrap());
    let mut http = Client::new(server.addr());

    let valid = bearer(&env.token(r#","email":"a@x.test","scope":"read admin""#));
    let reader = bearer(&env.token(r#","scope":"read""#));
    let forged = bearer(&env.sign(&env.other, "", T + 3600));
    let expired = bearer(&env.sign(&env.key, "", T - 3600));
    let second = bearer(&env.token(r#","n":2"#));
    let garbage = "Bearer not-a-token";
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a str,
        Vec<(&'a str, &'a str)>,
        u16,
        &'a str,
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "valid",
            "GET",
            "/v1/orders?page=2",
            vec![("authorization", &valid)],
            200,
            "valid",
        ),
        (
            "valid with claims",
            "POST",
            "/admin/users",
            vec![("authorization", &valid)],
            200,
            "valid",
        ),
        (
            "forged",
            "GET",
            "/v1/orders",
            vec![("authorization", &forged)],
            401,
            "bad_signature",
        ),
        (
            "expired",
            "GET",
            "/v1/orders",
            vec![("authorization", &expired)],
            401,
            "expired",
        ),
        ("missing", "GET", "/v1/orders", vec![], 401, "missing"),
        (
            "malformed",
            "GET",
            "/v1/orders",
            vec![("authorization", garbage)],
            401,
            "malformed",
        ),
        (
            "two tokens",
            "GET",
            "/v1/orders",
            vec![("authorization", &valid), ("authorization", &second)],
            401,
            "malformed",
        ),
        (
            "insufficient scope",
            "GET",
            "/admin/users",
            vec![("authorization", &reader)],
            403,
            "insufficient_scope",
        ),
        ("excluded", "GET", "/v1/health", vec![], 200, "excluded"),
        (
            "excluded for GET only",
            "POST",
            "/v1/health",
            vec![],
            401,
            "missing",
        ),
        (
            "log mode",
            "GET",
            "/audit/log",
            vec![("authorization", &forged)],
            200,
            "bad_signature",
        ),
        (
            "no rule",
            "GET",
            "/elsewhere",
            vec![("authorization", &valid)],
            403,
            "no_matching_rule",
        ),
        (
            "dot segments",
            "GET",
            "/v1/../admin/users",
            vec![("authorization", &reader)],
            403,
            "insufficient_scope",
        ),
        ("encoded slash", "GET", "/v1%2fhealth", vec![], 400, ""),
    ];
    for (name, method, path, headers, status, outcome) in &cases {
        let over_http = http_answer(&http.request_with(method, path, HOST, headers));
        for (face, request) in [
            ("headers", check_request(method, HOST, path, headers)),
            ("header_map", check_request_raw(method, HOST, path, headers)),
        ] {
            // The HTTP face refuses a header it sees twice; Envoy joins them
            // with a comma into one map value, which must be refused too.
            let response = grpc
                .check(request)
                .unwrap_or_else(|e| panic!("{name} ({face}): {e}"));
            let got = answer(&response);
            assert_eq!(got.status, *status, "{name} ({face}): {got:?}");
            assert_eq!(got.code, expected_code(*status), "{name} ({face})");
            if !outcome.is_empty() {
                assert_eq!(
                    got.header("x-jwtgate-outcome"),
                    Some(*outcome),
                    "{name} ({face})"
                );
            }
            assert_eq!(
                (got.status, got.headers.clone(), got.body.clone()),
                over_http,
                "{name} ({face}): the gRPC answer differs from the HTTP one"
            );
        }
    }
}

#[test]
fn allowed_checks_carry_identity_metadata_and_header_mutations() {
    let env = Env::new("allowed");
    let server = env.serve("", &[]);
    let grpc = GrpcClient::connect(server.grpc_addr().unwrap());
    let token = bearer(&env.token(r#","email":"a@x.test","scope":"read admin""#));

    let response = grpc
        .check(check_request(
            "GET",
            HOST,
            "/admin/x",
            &[("authorization", &token), ("x-jwt-sub", "mallory")],
        ))
        .unwrap();
    let got = answer(&response);
    assert_eq!((got.code, got.status), (code::OK, 200));
    // Identity headers overwrite what the client sent (checked in `answer`).
    assert_eq!(got.header("x-jwt-sub"), Some("alice"));
    assert_eq!(got.header("x-jwt-iss"), Some(ISS));
    assert_eq!(got.header("x-jwt-kid"), Some("k1"));
    assert_eq!(got.header("x-scope"), Some("read%20admin"));
    // Every header any rule forwards is present, empty when this rule does not fill it.
    assert_eq!(got.header("x-email"), Some(""));
    assert_eq!(got.header("x-jwt-payload"), Some(""));
    assert_eq!(
        got.removed,
        ["authorization"],
        "the admin rule strips the token"
    );
    for (field, want) in [
        ("outcome", "valid"),
        ("action", "allow"),
        ("rule", "admin"),
        ("token_config", "users"),
        ("iss", ISS),
        ("sub", "alice"),
        ("kid", "k1"),
    ] {
        assert_eq!(metadata(&response, &[field]), Some(want), "{field}");
    }
    assert_eq!(
        metadata(&response, &["claims", "x-scope"]),
        Some("read%20admin")
    );

    // Another rule: no stripping, its own forwarded claim.
    let response = grpc
        .check(check_request(
            "GET",
            HOST,
            "/v1/orders",
            &[("authorization", &token)],
        ))
        .unwrap();
    let got = answer(&response);
    assert!(got.removed.is_empty());
    assert_eq!(got.header("x-email"), Some("a@x.test"));
    assert_eq!(metadata(&response, &["rule"]), Some("api"));

    // Log mode: allowed, saying what would have been denied.
    let response = grpc
        .check(check_request("GET", HOST, "/audit/x", &[]))
        .unwrap();
    let got = answer(&response);
    assert_eq!((got.code, got.status), (code::OK, 200));
    assert_eq!(got.header("x-jwtgate-outcome"), Some("missing"));
    assert_eq!(got.header("x-jwtgate-action"), Some("log"));
    assert_eq!(got.header("x-jwt-sub"), Some(""));
    assert_eq!(metadata(&response, &["outcome"]), Some("missing"));
    assert_eq!(metadata(&response, &["action"]), Some("log"));
    assert_eq!(metadata(&response, &["sub"]), None);
}

#[test]
fn denials_carry_the_http_challenge_and_body() {
    let env = Env::new("denied");
    let server = env.serve("", &[]);
    let grpc = GrpcClient::connect(server.grpc_addr().unwrap());
    let expired = bearer(&env.sign(&env.key, "", T - 3600));
    let response = grpc
        .check(check_request(
            "GET",
            HOST,
            "/v1/x",
            &[("authorization", &expired)],
        ))
        .unwrap();
    let got = answer(&response);
    assert_eq!((got.code, got.status), (code::UNAUTHENTICATED, 401));
    assert_eq!(
        got.header("www-authenticate"),
        Some(r#"Bearer realm="jwtgate", error="invalid_token", error_description="expired""#)
    );
    assert_eq!(got.header("cache-control"), Some("no-store"));
    assert_eq!(got.body, r#"{"error":"expired"}"#);
    assert_eq!(response.status.as_ref().unwrap().message, "expired");
    assert_eq!(metadata(&response, &["outcome"]), Some("expired"));
    assert_eq!(metadata(&response, &["action"]), Some("block"));
}

#[test]
fn context_extensions_name_the_rule_and_an_unknown_name_denies() {
    let env = Env::new("extensions");
    let server = env.serve("", &[]);
    let grpc = GrpcClient::connect(server.grpc_addr().unwrap());
    let reader = bearer(&env.token(r#","scope":"read""#));
    let auth = [("authorization", reader.as_str())];

    // Routing alone sends /v1/x to `api`, where the reader passes...
    let routed = answer(
        &grpc
            .check(check_request("GET", HOST, "/v1/x", &auth))
            .unwrap(),
    );
    assert_eq!(routed.status, 200);
    // ...but Envoy's route names `admin`, whose scope it lacks.
    let named = with_extension(
        check_request("GET", HOST, "/v1/x", &auth),
        "jwtgate_rule",
        "admin",
    );
    let response = grpc.check(named).unwrap();
    let got = answer(&response);
    assert_eq!((got.code, got.status), (code::PERMISSION_DENIED, 403));
    assert_eq!(got.header("x-jwtgate-outcome"), Some("insufficient_scope"));
    assert_eq!(metadata(&response, &["rule"]), Some("admin"));

    // A named rule's exclusions still apply, read canonically.
    let excluded = with_extension(
        check_request("GET", HOST, "/v1/health", &[]),
        "jwtgate_rule",
        "api",
    );
    assert_eq!(
        answer(&grpc.check(excluded).unwrap()).header("x-jwtgate-outcome"),
        Some("excluded")
    );
    let dodged = with_extension(
        check_request("GET", HOST, "/v1/./health", &[]),
        "jwtgate_rule",
        "api",
    );
    assert_eq!(
        answer(&grpc.check(dodged).unwrap()).status,
        401,
        "a rewritten path meets no exclusion"
    );

    // A name the policy does not define is a denial, never an allow.
    let unknown = with_extension(
        check_request("GET", HOST, "/v1/health", &auth),
        "jwtgate_rule",
        "nope",
    );
    let response = grpc.check(unknown).unwrap();
    let got = answer(&response);
    assert_eq!((got.code, got.status), (code::PERMISSION_DENIED, 403));
    assert_eq!(got.header("x-jwtgate-outcome"), Some("unknown_rule"));
    assert!(got.body.contains("jwtgate_rule"), "{}", got.body);

    // Other extensions are the proxy's own business.
    let other = with_extension(
        check_request("GET", HOST, "/v1/x", &auth),
        "team",
        "payments",
    );
    assert_eq!(answer(&grpc.check(other).unwrap()).status, 200);
}

#[test]
fn an_unreadable_statement_is_a_bad_request_denial() {
    let env = Env::new("unreadable");
    let server = env.serve("", &[]);
    let grpc = GrpcClient::connect(server.grpc_addr().unwrap());
    let token = bearer(&env.token(""));
    let auth = [("authorization", token.as_str())];

    let mut both = check_request("GET", HOST, "/v1/x", &auth);
    let raw = check_request_raw("GET", HOST, "/v1/x", &auth);
    let http = both
        .attributes
        .as_mut()
        .unwrap()
        .request
        .as_mut()
        .unwrap()
        .http
        .as_mut()
        .unwrap();
    http.header_map = raw
        .attributes
        .unwrap()
        .request
        .unwrap()
        .http
        .unwrap()
        .header_map;

    let mut query = check_request("GET", HOST, "/v1/x", &auth);
    let http = query
        .attributes
        .as_mut()
        .unwrap()
        .request
        .as_mut()
        .unwrap()
        .http
        .as_mut()
        .unwrap();
    http.query = "page=2".to_owned();

    let empty = envoy_types::pb::envoy::service::auth::v3::CheckRequest::default();
    for (name, request, detail) in [
        ("both header forms", both, "both headers and header_map"),
        ("a query field", query, "the query belongs in path"),
        ("no http attributes", empty, "attributes.request.http"),
    ] {
        let got = answer(&grpc.check(request).unwrap());
        assert_eq!(
            (got.code, got.status),
            (code::INVALID_ARGUMENT, 400),
            "{name}"
        );
        assert!(got.body.contains(detail), "{name}: {}", got.body);
    }
}

#[test]
fn health_follows_readiness() {
    let env = Env::new("health");
    let server = env.serve("", &[]);
    let grpc = GrpcClient::connect(server.grpc_addr().unwrap());
    const SERVING: i32 = 1;
    assert_eq!(grpc.health("").unwrap(), SERVING);
    assert_eq!(
        grpc.health("envoy.service.auth.v3.Authorization").unwrap(),
        SERVING
    );
    let unknown = grpc.health("some.Other").unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
}

#[test]
fn health_turns_not_serving_while_draining() {
    let env = Env::new("drain-health");
    let mut server = env.serve("", &["--drain-delay", "3"]);
    let grpc = GrpcClient::connect(server.grpc_addr().unwrap());
    let mut client = tonic_health::pb::health_client::HealthClient::new(grpc.channel());
    let mut stream = grpc
        .block(client.watch(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        }))
        .unwrap()
        .into_inner();
    assert_eq!(grpc.block(stream.message()).unwrap().unwrap().status, 1);
    server.sigterm();
    // Within the drain delay the watch says NOT_SERVING, then ends.
    assert_eq!(grpc.block(stream.message()).unwrap().unwrap().status, 2);
    assert!(grpc.block(stream.message()).unwrap().is_none());
    assert!(server.wait_exit(Duration::from_secs(20)).success());
}

#[test]
fn malformed_oversize_and_unknown_calls_are_refused_and_the_face_carries_on() {
    let env = Env::new("refused");
    let server = env.serve("grpc_max_message_bytes = 8192", &[]);
    let grpc = GrpcClient::connect(server.grpc_addr().unwrap());

    let status = grpc.raw_check(vec![0xff, 0xff, 0xff, 0xff]).unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");

    let big = "x".repeat(10_000);
    let status = grpc
        .check(check_request("GET", HOST, "/v1/x", &[("x-big", &big)]))
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");

    let status = grpc
        .raw_call("/envoy.service.auth.v2.Authorization/Check", Vec::new())
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented, "{status:?}");

    let token = bearer(&env.token(""));
    let got = answer(
        &grpc
            .check(check_request(
                "GET",
                HOST,
                "/v1/x",
                &[("authorization", &token)],
            ))
            .unwrap(),
    );
    assert_eq!(got.status, 200, "the connection still serves checks");
    // Each is counted by its code: a misconfigured proxy shows on /metrics.
    let metrics = String::from_utf8(get(server.admin_addr(), "/metrics", &[]).body).unwrap();
    for (code, count) in [
        ("invalid_argument", 1),
        ("out_of_range", 1),
        ("unimplemented", 1),
        ("internal", 0),
    ] {
        let series = format!("jwtgate_grpc_errors_total{{code=\"{code}\"}} {count}\n");
        assert!(metrics.contains(&series), "{series} in\n{metrics}");
    }
}

#[test]
fn grpc_checks_are_counted_and_logged_with_their_face() {
    let env = Env::new("observed");
    let log = env.dir.path("access.log");
    let mut server = env.serve("", &["--access-log", log.to_str().unwrap()]);
    let grpc = GrpcClient::connect(server.grpc_addr().unwrap());
    let token = bearer(&env.token(""));
    for _ in 0..3 {
        let got = answer(
            &grpc
                .check(check_request(
                    "GET",
                    HOST,
                    "/v1/x",
                    &[("authorization", &token)],
                ))
                .unwrap(),
        );
        assert_eq!(got.status, 200);
    }
    let over_http =
        Client::new(server.addr()).request_with("GET", "/v1/x", HOST, &[("authorization", &token)]);
    assert_eq!(over_http.status, 200);
    let metrics = String::from_utf8(get(server.admin_addr(), "/metrics", &[]).body).unwrap();
    for (face, count) in [("grpc", 3), ("http", 1)] {
        let series = format!(
            "jwtgate_requests_total{{rule=\"api\",token_config=\"users\",outcome=\"valid\",action=\"allow\",face=\"{face}\"}} {count}"
        );
        assert!(metrics.contains(&series), "{series} in\n{metrics}");
    }
    drop(grpc);
    server.sigterm();
    assert!(server.wait_exit(Duration::from_secs(20)).success());
    let text = std::fs::read_to_string(&log).unwrap();
    let grpc_lines = text
        .lines()
        .filter(|line| line.contains(r#""face":"grpc""#))
        .count();
    let http_lines = text
        .lines()
        .filter(|line| line.contains(r#""face":"http""#))
        .count();
    assert_eq!((grpc_lines, http_lines), (3, 1), "{text}");
    assert!(text.contains(r#""path":"/v1/x""#), "{text}");
}

#[test]
fn a_drain_answers_the_checks_in_flight_and_refuses_only_unsent_ones() {
    let env = Env::new("drain");
    let log = env.dir.path("access.log");
    let log_flag = log.to_str().unwrap();
    let mut server = env.serve("", &["--drain-delay", "1", "--access-log", log_flag]);
    let grpc = GrpcClient::connect(server.grpc_addr().unwrap());
    let token = bearer(&env.token(""));
    let request = check_request("GET", HOST, "/v1/x", &[("authorization", &token)]);
    const IN_FLIGHT: usize = 64;
    let (answered, refused, signalled_at) = grpc.block(async {
        let mut calls = tokio::task::JoinSet::new();
        let client = envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient::new(
            grpc.channel(),
        );
        let (mut answered, mut refused, mut signalled_at) = (0_usize, 0_usize, None);
        while refused == 0 || !calls.is_empty() {
            while refused == 0 && calls.len() < IN_FLIGHT {
                let (mut client, request) = (client.clone(), request.clone());
                calls.spawn(async move { client.check(request).await });
            }
            match calls.join_next().await.unwrap().unwrap() {
                Ok(response) => {
                    let got = answer(&response.into_inner());
                    assert_eq!((got.code, got.status), (code::OK, 200), "{got:?}");
                    answered += 1;
                }
                // A call the server never took: one on a connection after
                // the listener closed (Unavailable), one still queued in the
                // client when the connection closed (Cancelled), or one the
                // client had not sent when the server's GOAWAY (NO_ERROR)
                // came, which tonic reports as Internal. Whether the server
                // took any call it did not answer is what the access log
                // says below.
                Err(status)
                    if matches!(
                        status.code(),
                        tonic::Code::Unavailable | tonic::Code::Cancelled
                    ) || format!("{status:?}").contains("GoAway(b\"\", NO_ERROR, Remote)") =>
                {
                    refused += 1;
                }
                Err(status) => panic!("a check was cut off: {status:?}"),
            }
            if answered == 2_000 && signalled_at.is_none() {
                server.sigterm();
                signalled_at = Some(answered);
            }
        }
        (answered, refused, signalled_at.unwrap())
    });
    assert!(
        answered > signalled_at,
        "checks kept being answered after SIGTERM (drain delay): {answered} answered, signalled at {signalled_at}"
    );
    assert!(refused > 0);
    assert!(server.wait_exit(Duration::from_secs(20)).success());
    // Every check the server decided (and logged) reached the client.
    let decided = std::fs::read_to_string(&log).unwrap().lines().count();
    assert_eq!(decided, answered, "checks decided but never answered");
}

#[test]
fn trusted_proxies_apply_to_grpc_peers() {
    let env = Env::new("trusted");
    let token = bearer(&env.token(""));
    let auth = [("authorization", token.as_str())];
    // With Envoy's request-line style, trusted proxies concern only the gRPC
    // face, which the file must then name.
    let path = env.dir.write(
        "no-grpc.toml",
        config(r#"trusted_proxies = ["10.0.0.0/8"]"#),
    );
    let out = common::server::run_jwtgate(&["check-config", path.to_str().unwrap()], b"");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && said.contains("server.grpc_listen"),
        "{said}"
    );
    // Loopback is not among the trusted proxies: the statement is not believed.
    let grpc_listen = "grpc_listen = \"127.0.0.1:0\"";
    let server = env.serve(
        &format!("{grpc_listen}\ntrusted_proxies = [\"10.0.0.0/8\"]"),
        &[],
    );
    let grpc = GrpcClient::connect(server.grpc_addr().unwrap());
    let got = answer(
        &grpc
            .check(check_request("GET", HOST, "/v1/health", &auth))
            .unwrap(),
    );
    assert_eq!((got.code, got.status), (code::PERMISSION_DENIED, 403));
    assert_eq!(got.header("x-jwtgate-outcome"), Some("untrusted_proxy"));
    drop((grpc, server));
    // It is once loopback is trusted.
    let server = env.serve(
        &format!("{grpc_listen}\ntrusted_proxies = [\"127.0.0.1/32\"]"),
        &[],
    );
    let grpc = GrpcClient::connect(server.grpc_addr().unwrap());
    let got = answer(
        &grpc
            .check(check_request("GET", HOST, "/v1/x", &auth))
            .unwrap(),
    );
    assert_eq!((got.code, got.status), (code::OK, 200));
}

/// `examples/envoy/`: jwtgate.toml served as it is (ports overridden), asked
/// what envoy-grpc-ext-authz.yaml makes Envoy ask: `header_map` (its
/// `encode_raw_headers: true`), `jwtgate_rule = "admin"` on the `/admin/`
/// route only, and nothing for `/healthz` (the filter is disabled there).
#[test]
fn the_envoy_example_answers_as_its_comments_say() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = root.join("examples/envoy/jwtgate.toml");
    let server = Server::start(&[
        "--config",
        config.to_str().unwrap(),
        "--now",
        NOW,
        "--shards",
        "1",
        "--grpc-listen",
        "127.0.0.1:0",
    ]);
    let grpc = GrpcClient::connect(server.grpc_addr().unwrap());
    let pem = std::fs::read_to_string(root.join("examples/keys/demo-rs256.pk8.pem")).unwrap();
    let demo = SigningKey::from_pkcs8(Algorithm::Rs256, &common::pem_to_der(&pem)).unwrap();
    let token = |extra: &str| {
        let claims = format!(
            r#"{{"iss":"https://demo.jwtgate.invalid/","aud":"demo-api","sub":"alice","iat":{T},"exp":{}{extra}}}"#,
            T + 3600
        );
        let header = r#"{"alg":"RS256","kid":"demo-rs256","typ":"JWT"}"#;
        bearer(&mint(header, &claims, &demo, Algorithm::Rs256))
    };
    let admin = token(r#","scope":"read admin","email":"alice@example.com""#);
    let reader = token(r#","scope":"read","email":"alice@example.com""#);
    // What Envoy sends for a GET of `path` with `authorization` (if any), on
    // a route naming `rule` (if any).
    let ask = |path: &str, authorization: Option<&str>, rule: Option<&str>| {
        let headers: Vec<(&str, &str)> = authorization
            .map(|value| ("authorization", value))
            .into_iter()
            .collect();
        let request = check_request_raw("GET", HOST, path, &headers);
        let request = match rule {
            Some(rule) => with_extension(request, "jwtgate_rule", rule),
            None => request,
        };
        grpc.check(request).unwrap()
    };

    // The /admin/ route: scope required, the token removed, the identity set.
    let response = ask("/admin/users", Some(&admin), Some("admin"));
    let got = answer(&response);
    assert_eq!((got.code, got.status), (code::OK, 200), "{got:?}");
    assert_eq!(got.removed, ["authorization"]);
    assert_eq!(got.header("x-jwt-sub"), Some("alice"));
    assert_eq!(got.header("x-jwt-scope"), Some("read%20admin"));
    assert_eq!(
        got.header("x-jwt-email"),
        Some(""),
        "another rule's, emptied"
    );
    assert_eq!(metadata(&response, &["rule"]), Some("admin"));
    let scope = metadata(&response, &["claims", "x-jwt-scope"]);
    assert_eq!(scope, Some("read%20admin"));
    let got = answer(&ask("/admin/users", Some(&reader), Some("admin")));
    assert_eq!((got.code, got.status), (code::PERMISSION_DENIED, 403));
    assert_eq!(got.header("x-jwtgate-outcome"), Some("insufficient_scope"));

    // The catch-all route names no rule: jwtgate routes by its own reading.
    let got = answer(&ask("/v1/orders", Some(&admin), None));
    assert_eq!((got.code, got.status), (code::OK, 200), "{got:?}");
    assert!(got.removed.is_empty(), "only rule admin strips the token");
    assert_eq!(got.header("x-jwt-email"), Some("alice@example.com"));
    let got = answer(&ask("/Admin/users", None, None));
    assert_eq!(
        (got.status, got.header("x-jwtgate-outcome")),
        (401, Some("missing"))
    );
    let got = answer(&ask("/v1/status", None, None));
    assert_eq!(
        (got.status, got.header("x-jwtgate-outcome")),
        (200, Some("excluded"))
    );
    let got = answer(&ask("/v1/orders", None, None));
    assert_eq!((got.code, got.status), (code::UNAUTHENTICATED, 401));
    assert_eq!(
        got.header("www-authenticate"),
        Some(r#"Bearer realm="jwtgate""#)
    );
    // Were Envoy to ask about /healthz (its route disables the filter).
    let got = answer(&ask("/healthz", Some(&admin), None));
    assert_eq!((got.code, got.status), (code::PERMISSION_DENIED, 403));
    assert_eq!(got.header("x-jwtgate-outcome"), Some("no_matching_rule"));

    // Envoy's health check: the server ("") and the service name agree.
    const SERVING: i32 = 1;
    assert_eq!(grpc.health("").unwrap(), SERVING);
    let service = grpc.health("envoy.service.auth.v3.Authorization");
    assert_eq!(service.unwrap(), SERVING);
}
