//! The gRPC face against its reference, the HTTP face: for any request (a
//! method, a path among hostile spellings, tokens valid, forged, expired,
//! repeated or absent, other headers, either header form Envoy sends),
//! `check` answers what `Authorizer::decide` answers to the same request sent
//! in Envoy's HTTP style (the request line and headers as the client sent
//! them): the same status, headers and body, and the gRPC status that stands
//! for that HTTP status. Requests are encoded and answers decoded by
//! Envoy's generated types (prost), so the reading and writing in place are
//! checked on the way.

use std::sync::Arc;

use arc_swap::ArcSwap;
use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest, CheckResponse};
use proptest::prelude::*;
use prost::Message as _;

use super::check::check_message;
use crate::authz::{Authorizer, AuthzOptions, Clock, Denials};
use crate::http::request::{HeadStatus, HeaderSlots, parse_head};
use crate::http::{Framing, Limits};
use crate::signing::SigningKey;
use crate::snapshot::Snapshot;
use crate::{Algorithm, UnixTime};

const T0: i64 = 1_700_000_000;
const SECRET: &[u8] = b"the secret of the gRPC tests, 32 bytes or more";
const OTHER: &[u8] = b"another secret, also thirty-two bytes or more";
const HOST: &str = "api.example";

const CONFIG: &str = r#"
default_action = "deny"
[server]
forwarded = "request-line"
[[token_config]]
name = "users"
jwks = '''@JWKS@'''
algorithms = ["HS256"]
allow_symmetric_keys = true
issuer = "https://idp.invalid/"
[[rule]]
name = "admin"
paths = ["/admin/**"]
token_configs = ["users"]
require_claims = [ { claim = "scope", contains = "admin" } ]
forward_claims = { scope = "x-scope" }
[[rule]]
name = "audit"
paths = ["/audit/**"]
token_configs = ["users"]
action = "log"
[[rule]]
name = "open"
paths = ["/open/**"]
token_configs = ["users"]
on_missing = "allow"
[[rule]]
name = "api"
paths = ["/api/**"]
token_configs = ["users"]
exclude = ["GET /api/health"]
forward_claims = { sub = "x-user" }
"#;

const METHODS: [&str; 4] = ["GET", "POST", "DELETE", "OPTIONS"];
const PATHS: [&str; 13] = [
    "/open/x",
    "/api/orders?page=2",
    "/api/health",
    "/api/./health",
    "/api/health;x=1",
    "/API/Health/",
    "/admin/users",
    "/api/../admin/users",
    "/admin%2fusers",
    "/audit/log",
    "/elsewhere",
    "/api//orders",
    "/%61pi/orders",
];

/// `request`, encoded, checked as the face checks a call's message, and
/// the answer decoded.
fn check(
    authorizer: &mut Authorizer,
    request: &CheckRequest,
    peer: std::net::IpAddr,
) -> Result<CheckResponse, tonic::Status> {
    let answer = check_message(authorizer, &request.encode_to_vec(), peer)?;
    Ok(CheckResponse::decode(&answer[..]).unwrap_or_else(|error| panic!("{error}")))
}

fn authorizer() -> Authorizer {
    let secret = jwtgate_engine::base64url::encode(SECRET);
    let jwks = format!(r#"{{"keys":[{{"kty":"oct","kid":"k","alg":"HS256","k":"{secret}"}}]}}"#);
    let text = CONFIG.replace("@JWKS@", &jwks);
    let loaded = crate::config::parse(&text, std::path::Path::new("grpc.toml"))
        .unwrap_or_else(|error| panic!("{error}"));
    let snapshot = Arc::new(ArcSwap::from_pointee(Snapshot::new(
        loaded.policy,
        loaded.keys,
    )));
    Authorizer::new(
        snapshot,
        AuthzOptions {
            clock: Clock::Fixed(UnixTime(T0)),
            ..crate::server::ServeOptions::default().authz
        },
        Arc::new(Denials::default()),
    )
}

/// A token: `forged` signs with the wrong secret, `expired` ended an hour ago.
fn token(admin: bool, forged: bool, expired: bool) -> String {
    let scope = if admin { "read admin" } else { "read" };
    let exp = if expired { T0 - 3600 } else { T0 + 3600 };
    let claims =
        format!(r#"{{"iss":"https://idp.invalid/","sub":"alice","scope":"{scope}","exp":{exp}}}"#);
    let mut token = jwtgate_engine::base64url::encode(br#"{"alg":"HS256","kid":"k"}"#);
    token.push('.');
    token.push_str(&jwtgate_engine::base64url::encode(claims.as_bytes()));
    let secret = if forged { OTHER } else { SECRET };
    let signature = SigningKey::hmac(secret)
        .sign(Algorithm::Hs256, token.as_bytes())
        .unwrap_or_default();
    token.push('.');
    token.push_str(&jwtgate_engine::base64url::encode(&signature));
    token
}

/// A request's headers, as the client sent them (names in any case).
fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let authorization = (any::<bool>(), any::<bool>(), any::<bool>(), 0..3usize).prop_map(
        |(admin, forged, expired, spelling)| {
            let token = token(admin, forged, expired);
            let name = ["authorization", "Authorization", "AUTHORIZATION"][spelling];
            (name.to_owned(), format!("Bearer {token}"))
        },
    );
    let other = prop_oneof![
        Just(("x-request-id".to_owned(), "abc".to_owned())),
        Just(("x-jwt-sub".to_owned(), "mallory".to_owned())),
        Just(("origin".to_owned(), "https://app.example".to_owned())),
        Just((
            "access-control-request-method".to_owned(),
            "DELETE".to_owned()
        )),
        Just(("x-http-method-override".to_owned(), "GET".to_owned())),
        Just(("authorization".to_owned(), "Basic dXNlcjpwYXNz".to_owned())),
    ];
    prop::collection::vec(prop_oneof![2 => authorization, 1 => other], 0..4)
}

/// The request in Envoy's HTTP ext_authz style: the client's request line
/// and headers.
fn http_answer(
    authorizer: &mut Authorizer,
    method: &str,
    path: &str,
    headers: &[(String, String)],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {HOST}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut slots = HeaderSlots::default();
    let Ok(HeadStatus::Complete(head)) =
        parse_head(request.as_bytes(), &mut slots, Limits::default())
    else {
        panic!("the test's request does not parse");
    };
    let mut out = Vec::new();
    authorizer.decide(&head, Framing::default(), &mut out);
    let mut parsed = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut parsed);
    let Ok(httparse::Status::Complete(at)) = response.parse(&out) else {
        panic!("an unreadable HTTP answer");
    };
    let kept = response
        .headers
        .iter()
        .filter(|header| header.name != "content-length" && header.name != "connection")
        .map(|header| {
            (
                header.name.to_owned(),
                String::from_utf8_lossy(header.value).into_owned(),
            )
        })
        .collect();
    (
        response.code.unwrap_or(0),
        kept,
        out.get(at..).unwrap_or_default().to_vec(),
    )
}

/// The request as Envoy states it: lowercased names, repeated headers joined
/// with commas into the map, or each its own entry in `header_map`.
fn check_request(
    method: &str,
    path: &str,
    headers: &[(String, String)],
    raw: bool,
) -> CheckRequest {
    let mut http = HttpRequest {
        method: method.to_owned(),
        path: path.to_owned(),
        host: HOST.to_owned(),
        ..HttpRequest::default()
    };
    let lowered = headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.clone()));
    if raw {
        http.header_map = Some(HeaderMap {
            headers: lowered
                .map(|(key, value)| HeaderValue {
                    key,
                    value: String::new(),
                    raw_value: value.into_bytes(),
                })
                .collect(),
        });
    } else {
        for (name, value) in lowered {
            http.headers
                .entry(name)
                .and_modify(|joined| {
                    joined.push(',');
                    joined.push_str(&value);
                })
                .or_insert(value);
        }
    }
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(http),
                ..Request::default()
            }),
            ..AttributeContext::default()
        }),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn grpc_answers_what_http_answers(
        method in prop::sample::select(&METHODS[..]),
        path in prop::sample::select(&PATHS[..]),
        headers in headers(),
        raw in any::<bool>(),
    ) {
        let mut authorizer = authorizer();
        let (status, http_headers, body) = http_answer(&mut authorizer, method, path, &headers);
        let request = check_request(method, path, &headers, raw);
        let response = check(&mut authorizer, &request, Framing::default().peer)
            .unwrap_or_else(|status| panic!("{status:?}"));
        let code = response.status.as_ref().map_or(-1, |status| status.code);
        let (grpc_status, grpc_headers, grpc_body) = match &response.http_response {
            Some(HttpResponse::OkResponse(ok)) => (200, &ok.headers, Vec::new()),
            Some(HttpResponse::DeniedResponse(denied)) => (
                denied.status.as_ref().map_or(0, |status| u16::try_from(status.code).unwrap_or(0)),
                &denied.headers,
                denied.body.clone().into_bytes(),
            ),
            other => panic!("{other:?}"),
        };
        let grpc_headers: Vec<(String, String)> = grpc_headers
            .iter()
            .filter_map(|option| option.header.as_ref())
            .map(|header| (header.key.clone(), header.value.clone()))
            .collect();
        prop_assert_eq!(grpc_status, status);
        prop_assert_eq!(grpc_headers, http_headers);
        prop_assert_eq!(grpc_body, body);
        let expected_code = match status {
            200 => 0,
            400 => 3,
            403 => 7,
            _ => 16,
        };
        prop_assert_eq!(code, expected_code);
    }
}

#[test]
fn a_second_scheme_joined_beside_a_forged_token_is_two_tokens_not_none() {
    let mut authorizer = authorizer();
    let forged = format!("Bearer {}", token(false, true, false));
    for joined in [
        format!("Basic dXNlcjpwYXNz,{forged}"),
        format!("{forged},Basic dXNlcjpwYXNz"),
        format!("{forged},"),
    ] {
        let headers = [("authorization".to_owned(), joined.clone())];
        let request = check_request("GET", "/open/x", &headers, false);
        let response = check(&mut authorizer, &request, Framing::default().peer)
            .unwrap_or_else(|status| panic!("{status:?}"));
        let Some(HttpResponse::DeniedResponse(denied)) = &response.http_response else {
            panic!("{joined}: allowed: {response:?}");
        };
        assert_eq!(denied.body, r#"{"error":"malformed"}"#, "{joined}");
    }
    // Alone, the other scheme is no token, which this rule allows.
    let headers = [("authorization".to_owned(), "Basic dXNlcjpwYXNz".to_owned())];
    let request = check_request("GET", "/open/x", &headers, false);
    let response = check(&mut authorizer, &request, Framing::default().peer)
        .unwrap_or_else(|status| panic!("{status:?}"));
    assert!(matches!(
        response.http_response,
        Some(HttpResponse::OkResponse(_))
    ));
}

/// Envoy passes on bytes a client sent: a header value that is not UTF-8 is
/// a 400 denial, and a request body that is not UTF-8 (an unread field) is
/// no obstacle at all. Neither becomes a gRPC error, which Envoy's
/// `failure_mode_allow` would turn into an allow.
#[test]
fn bytes_that_are_not_utf8_never_become_a_grpc_error() {
    let mut authorizer = authorizer();
    let peer = Framing::default().peer;
    let valid = format!("Bearer {}", token(false, false, false));
    let mut request = check_request(
        "GET",
        "/api/orders",
        &[
            ("authorization".to_owned(), valid),
            ("x-note".to_owned(), "MARK".to_owned()),
        ],
        false,
    );
    if let Some(http) = request
        .attributes
        .as_mut()
        .and_then(|attributes| attributes.request.as_mut())
        .and_then(|request| request.http.as_mut())
    {
        http.body = "BODY".to_owned();
    }
    let encoded = request.encode_to_vec();
    let patched = |needle: &[u8]| {
        let mut bytes = encoded.clone();
        let at = bytes
            .windows(needle.len())
            .position(|window| window == needle)
            .unwrap_or_else(|| panic!("{needle:?} is in the message"));
        bytes[at..at + needle.len()].fill(0xff);
        bytes
    };
    let answer = |bytes: &[u8], authorizer: &mut Authorizer| {
        let encoded = check_message(authorizer, bytes, peer)
            .unwrap_or_else(|status| panic!("a gRPC error: {status:?}"));
        CheckResponse::decode(&encoded[..]).unwrap_or_else(|error| panic!("{error}"))
    };

    let response = answer(&patched(b"MARK"), &mut authorizer);
    let Some(HttpResponse::DeniedResponse(denied)) = &response.http_response else {
        panic!("not denied: {response:?}");
    };
    assert_eq!(denied.status.as_ref().map(|status| status.code), Some(400));
    assert_eq!(response.status.as_ref().map(|status| status.code), Some(3));

    let response = answer(&patched(b"BODY"), &mut authorizer);
    assert!(
        matches!(response.http_response, Some(HttpResponse::OkResponse(_))),
        "{response:?}"
    );
}

/// An overloaded shard's 429 reaches Envoy as a denial (its status code
/// `RESOURCE_EXHAUSTED`, the 429 and `retry-after` in `denied_response`),
/// never as a gRPC error that `failure_mode_allow` would pass; under a `log`
/// rule, which never blocks, it is the pass marked `overloaded`.
#[test]
fn an_overloaded_shard_denies_over_grpc_and_never_errs() {
    let delay = crate::queue_delay::QueueDelay::for_tests();
    let mut authorizer = authorizer().shedding(Arc::clone(&delay));
    delay.behind(true);
    let peer = Framing::default().peer;
    let bearer = vec![(
        "authorization".to_owned(),
        format!("Bearer {}", token(false, false, false)),
    )];
    let response = check(
        &mut authorizer,
        &check_request("GET", "/api/orders", &bearer, false),
        peer,
    )
    .unwrap_or_else(|status| panic!("a gRPC error: {status:?}"));
    assert_eq!(response.status.as_ref().map(|status| status.code), Some(8));
    let Some(HttpResponse::DeniedResponse(denied)) = &response.http_response else {
        panic!("not denied: {response:?}");
    };
    assert_eq!(denied.status.as_ref().map(|status| status.code), Some(429));
    let header = |name: &str| {
        denied
            .headers
            .iter()
            .filter_map(|option| option.header.as_ref())
            .find(|header| header.key == name)
            .map(|header| header.value.as_str())
    };
    assert_eq!(header("retry-after"), Some("1"));
    assert_eq!(header("x-jwtgate-outcome"), Some("overloaded"));

    let response = check(
        &mut authorizer,
        &check_request("GET", "/audit/log", &bearer, false),
        peer,
    )
    .unwrap_or_else(|status| panic!("a gRPC error: {status:?}"));
    let Some(HttpResponse::OkResponse(ok)) = &response.http_response else {
        panic!("a log rule blocked: {response:?}");
    };
    let outcome = ok
        .headers
        .iter()
        .filter_map(|option| option.header.as_ref())
        .find(|header| header.key == "x-jwtgate-outcome")
        .map(|header| header.value.as_str());
    assert_eq!(outcome, Some("overloaded"));
}
