//! One `Authorization/Check`: the proxy's statement of the request, read into
//! the head the decision code reads; the decision, made by the shard's
//! [`Authorizer`] exactly as for an HTTP check; and its answer, re-expressed
//! as a `CheckResponse`.
//!
//! The answer is rendered once, by the HTTP face's renderer, and translated
//! here: status, headers and body are then the same on both faces by
//! construction, and no policy logic lives in this file.
//!
//! | HTTP answer | `CheckResponse.status` | `http_response` |
//! |---|---|---|
//! | 200 | `OK` | `ok_response`: every answer header, overwriting (never appending) |
//! | 401 | `UNAUTHENTICATED` | `denied_response`: status, headers (`www-authenticate`), JSON body |
//! | 403 | `PERMISSION_DENIED` | the same |
//! | 400 | `INVALID_ARGUMENT` | the same |
//!
//! Every non-`OK` status is a denial that Envoy enforces. jwtgate's own
//! failure is a gRPC error (`INTERNAL`) instead: Envoy's `failure_mode_allow`
//! and `status_on_error` decide what it means.

use std::cell::RefCell;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Instant;

use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{
    CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse,
};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use envoy_types::pb::google::rpc;

use crate::authz::{Authorizer, Origin, Summary};
use crate::http::{Framing, OriginalRequest, RequestHead};
use crate::metrics::Face;
use crate::policy::source::same_header_name;

/// The context extension (set per route in Envoy) that names the rule.
pub(crate) const RULE_EXTENSION: &str = "jwtgate_rule";

/// The namespace Envoy files this filter's dynamic metadata under is the
/// filter's name; jwtgate's fields sit at the top level of it.
const METADATA_CLAIMS: &str = "claims";

/// Headers of the rendered HTTP answer that frame HTTP/1.1 and mean nothing
/// to Envoy (it frames its own response).
const FRAMING_HEADERS: [&str; 2] = ["content-length", "connection"];

/// gRPC status codes (google.rpc.Code) a `CheckResponse` carries.
mod code {
    pub(super) const OK: i32 = 0;
    pub(super) const INVALID_ARGUMENT: i32 = 3;
    pub(super) const PERMISSION_DENIED: i32 = 7;
    pub(super) const UNAUTHENTICATED: i32 = 16;
}

/// The HTTP status a denial's `CheckResponse.status` code stands for.
const fn status_code(http: u16) -> i32 {
    match http {
        200 => code::OK,
        400 => code::INVALID_ARGUMENT,
        403 => code::PERMISSION_DENIED,
        _ => code::UNAUTHENTICATED,
    }
}

/// What a check needs of its shard and connection.
#[derive(Debug, Clone)]
pub(crate) struct Checker {
    pub(crate) authorizer: Rc<RefCell<Authorizer>>,
    /// The proxy's address, for `trusted_proxies`.
    pub(crate) peer: IpAddr,
}

impl tonic::server::UnaryService<CheckRequest> for Checker {
    type Response = CheckResponse;
    type Future = std::future::Ready<Result<tonic::Response<CheckResponse>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<CheckRequest>) -> Self::Future {
        let started = Instant::now();
        let request = request.into_inner();
        // The shard's thread runs one check at a time, start to end, so the
        // authorizer is never borrowed twice; if it were, this is jwtgate's
        // own failure, which Envoy's failure_mode settings are for.
        let answer = match self.authorizer.try_borrow_mut() {
            Ok(mut authorizer) => {
                let answer = check(&mut authorizer, &request, self.peer);
                authorizer.record_request(started.elapsed());
                answer
            }
            Err(_) => Err(tonic::Status::internal("the shard's authorizer is busy")),
        };
        std::future::ready(answer.map(tonic::Response::new))
    }
}

/// Decides `request` from `peer` on `authorizer`.
pub(crate) fn check(
    authorizer: &mut Authorizer,
    request: &CheckRequest,
    peer: IpAddr,
) -> Result<CheckResponse, tonic::Status> {
    let framing = Framing {
        close: false,
        head_only: false,
        peer,
    };
    let http = request
        .attributes
        .as_ref()
        .and_then(|attributes| attributes.request.as_ref())
        .and_then(|request| request.http.as_ref());
    let rule = request
        .attributes
        .as_ref()
        .and_then(|attributes| attributes.context_extensions.get(RULE_EXTENSION))
        .map(String::as_bytes);
    let mut out = Vec::with_capacity(512);
    let Some(http) = http else {
        let head = RequestHead::stated("", "", &[]);
        let origin = Origin::Unreadable("a CheckRequest needs attributes.request.http");
        return authorizer.decide_from(Face::Grpc, &head, origin, framing, &mut out, |s, a| {
            translate(s, a, &[])
        });
    };
    let mut headers = Vec::with_capacity(http_header_count(http));
    let origin = match read_headers(http, &mut headers) {
        Err(reason) => Origin::Unreadable(reason),
        // Envoy puts the query in `path` and leaves `query` empty; a request
        // stating it in both places could mean two different queries.
        Ok(()) if !http.query.is_empty() => Origin::Unreadable(
            "attributes.request.http.query must be empty: the query belongs in path",
        ),
        Ok(()) => Origin::Stated {
            request: OriginalRequest {
                method: http.method.as_bytes(),
                host: http.host.as_bytes(),
                path: http.path.as_bytes(),
            },
            rule,
        },
    };
    let head = RequestHead::stated(&http.method, &http.path, &headers);
    authorizer.decide_from(Face::Grpc, &head, origin, framing, &mut out, |s, a| {
        translate(s, a, &headers)
    })
}

fn http_header_count(http: &HttpRequest) -> usize {
    http.header_map.as_ref().map_or_else(
        || {
            http.headers
                .values()
                .map(|value| 1 + memchr::memchr_iter(b',', value.as_bytes()).count())
                .sum()
        },
        |map| map.headers.len(),
    )
}

/// The request's headers, from `header_map` (Envoy's `encode_raw_headers`,
/// one entry per header line) or `headers`, whichever the proxy filled. A
/// request filling both could mean two different sets, so it is unreadable.
///
/// In `headers`, Envoy joins the values of a repeated header with commas.
/// Each comma-separated part is read as a header line of its own, as the
/// origin receives them: `authorization: Basic …` and `authorization:
/// Bearer <forged>` joined into one value are two token headers, refused as
/// on the HTTP face, and never one "other scheme" that reads as no token. A
/// single header whose value holds a comma reads the same way here, the
/// stricter of the two readings (no token source's value holds a comma).
fn read_headers<'r>(
    http: &'r HttpRequest,
    headers: &mut Vec<httparse::Header<'r>>,
) -> Result<(), &'static str> {
    match &http.header_map {
        Some(map) if !map.headers.is_empty() => {
            if !http.headers.is_empty() {
                return Err("attributes.request.http has both headers and header_map");
            }
            headers.extend(map.headers.iter().map(|header| httparse::Header {
                name: &header.key,
                // Envoy sends `raw_value` with `encode_raw_headers`, `value` without.
                value: if header.raw_value.is_empty() {
                    header.value.as_bytes()
                } else {
                    &header.raw_value
                },
            }));
        }
        _ => {
            for (name, value) in &http.headers {
                headers.extend(value.split(',').map(|part| httparse::Header {
                    name,
                    value: part.trim_ascii().as_bytes(),
                }));
            }
        }
    }
    Ok(())
}

/// Re-expresses the rendered HTTP answer as a `CheckResponse`.
///
/// `client` is the request's headers: a client header that an application
/// reads as one of the answer's headers (`x_jwt_sub` for `x-jwt-sub`: CGI,
/// WSGI, Rack and PHP fold `_` and `-` together) but that the answer's
/// overwrite does not reach is named in `headers_to_remove`.
fn translate(
    summary: Summary<'_>,
    answer: &[u8],
    client: &[httparse::Header<'_>],
) -> Result<CheckResponse, tonic::Status> {
    // One slot per line of the head: the policy decides how many headers an
    // allowed answer forwards.
    let lines = memchr::memmem::find(answer, b"\r\n\r\n").map_or(0, |end| {
        memchr::memchr_iter(b'\n', answer.get(..end).unwrap_or_default()).count()
    });
    let mut slots = vec![httparse::EMPTY_HEADER; lines + 1];
    let mut response = httparse::Response::new(&mut slots);
    let body_at = match response.parse(answer) {
        Ok(httparse::Status::Complete(at)) => at,
        _ => {
            return Err(tonic::Status::internal(
                "jwtgate rendered an unreadable answer",
            ));
        }
    };
    let status = response.code.unwrap_or(500);
    let headers = response
        .headers
        .iter()
        .filter(|header| {
            !FRAMING_HEADERS
                .iter()
                .any(|framing| header.name.eq_ignore_ascii_case(framing))
        })
        .map(|header| overwrite(header.name, header.value))
        .collect::<Vec<_>>();
    let mut metadata = Struct::default();
    put(&mut metadata, "outcome", summary.outcome_name());
    put(&mut metadata, "action", summary.action_name());
    if let Some(rule) = summary.rule() {
        put(&mut metadata, "rule", &rule.name);
    }
    put(&mut metadata, "token_config", summary.token_config());
    let http_response = if status == 200 {
        identity_metadata(&mut metadata, summary, response.headers);
        let strip = summary.rule().is_some_and(|rule| rule.strip_authorization);
        let mut headers_to_remove: Vec<String> = Vec::new();
        if strip {
            headers_to_remove.push("authorization".to_owned());
        }
        for field in client {
            let folded_twin = response.headers.iter().any(|header| {
                !header.name.eq_ignore_ascii_case(field.name)
                    && same_header_name(field.name, header.name)
            });
            let name = field.name.to_ascii_lowercase();
            if folded_twin && !headers_to_remove.contains(&name) {
                headers_to_remove.push(name);
            }
        }
        HttpResponse::OkResponse(OkHttpResponse {
            headers,
            headers_to_remove,
            ..OkHttpResponse::default()
        })
    } else if matches!(status, 400 | 401 | 403) {
        HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus {
                code: i32::from(status),
            }),
            headers,
            body: String::from_utf8_lossy(answer.get(body_at..).unwrap_or_default()).into_owned(),
        })
    } else {
        return Err(tonic::Status::internal(format!(
            "jwtgate answered HTTP {status}, which the gRPC face does not translate"
        )));
    };
    Ok(CheckResponse {
        status: Some(rpc::Status {
            code: status_code(status),
            message: summary.outcome_name().to_owned(),
            details: Vec::new(),
        }),
        dynamic_metadata: Some(metadata),
        http_response: Some(http_response),
    })
}

/// The verified identity and forwarded claims, as the origin receives them.
fn identity_metadata(
    metadata: &mut Struct,
    summary: Summary<'_>,
    headers: &[httparse::Header<'_>],
) {
    let value_of = |name: &str| {
        headers
            .iter()
            .find(|header| header.name.eq_ignore_ascii_case(name))
            .map(|header| String::from_utf8_lossy(header.value))
    };
    for (field, header) in [
        ("iss", "x-jwt-iss"),
        ("sub", "x-jwt-sub"),
        ("kid", "x-jwt-kid"),
    ] {
        if let Some(value) = value_of(header).filter(|value| !value.is_empty()) {
            put(metadata, field, &value);
        }
    }
    let Some(rule) = summary.rule() else { return };
    let mut claims = Struct::default();
    for forward in &rule.forward_claims {
        if let Some(value) = value_of(&forward.header).filter(|value| !value.is_empty()) {
            put(&mut claims, &forward.header, &value);
        }
    }
    if !claims.fields.is_empty() {
        metadata.fields.insert(
            METADATA_CLAIMS.to_owned(),
            Value {
                kind: Some(Kind::StructValue(claims)),
            },
        );
    }
}

fn put(metadata: &mut Struct, field: &str, value: &str) {
    metadata.fields.insert(
        field.to_owned(),
        Value {
            kind: Some(Kind::StringValue(value.to_owned())),
        },
    );
}

/// A header Envoy sets on the request (or denial), replacing any value the
/// client sent: never appended, and kept when empty, since an empty identity
/// header is how "no identity" overwrites a client's own copy.
fn overwrite(name: &str, value: &[u8]) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: name.to_owned(),
            value: String::from_utf8_lossy(value).into_owned(),
            raw_value: Vec::new(),
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        keep_empty_value: true,
        ..HeaderValueOption::default()
    }
}
