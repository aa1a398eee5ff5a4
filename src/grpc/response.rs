//! The answer to a `Check`: the HTTP answer the decision rendered,
//! re-expressed as an encoded `CheckResponse` (`envoy.service.auth.v3`),
//! written field by field with `wire`. `check` calls it with what it decided.
//!
//! | HTTP answer | `CheckResponse.status` | `http_response` |
//! |---|---|---|
//! | 200 | `OK` | `ok_response`: every answer header, overwriting (never appending) |
//! | 401 | `UNAUTHENTICATED` | `denied_response`: status, headers (`www-authenticate`), JSON body |
//! | 403 | `PERMISSION_DENIED` | the same |
//! | 400 | `INVALID_ARGUMENT` | the same |
//!
//! `dynamic_metadata` carries the outcome, the action, the rule and the token
//! configuration, and on an allowed answer the verified `iss`, `sub` and
//! `kid` and the forwarded claims (under `claims`).
//!
//! Field numbers are those of Envoy's `external_auth.proto`, `base.proto`
//! and `http_status.proto`, and of `google/rpc/status.proto` and
//! `google/protobuf/struct.proto`, as `envoy-types` generates them; the tests
//! decode what this writes with those generated types.

use super::wire::{put_bytes_field, put_delimited, put_message, put_varint, put_varint_field};
use crate::authz::Summary;
use crate::policy::source::same_header_name;

/// Headers of the rendered HTTP answer that frame HTTP/1.1 and mean nothing
/// to Envoy (it frames its own response).
const FRAMING_HEADERS: [&str; 2] = ["content-length", "connection"];

/// The key of the forwarded claims in the dynamic metadata.
const METADATA_CLAIMS: &str = "claims";

/// `HeaderValueOption.append_action`: OVERWRITE_IF_EXISTS_OR_ADD.
const OVERWRITE_IF_EXISTS_OR_ADD: u64 = 2;

/// Header slots on the stack; an answer with more headers (many forwarded
/// claims) parses into slots on the heap.
const STACK_HEADERS: usize = 32;

/// gRPC status codes (google.rpc.Code) a `CheckResponse` carries.
mod code {
    pub(super) const OK: u64 = 0;
    pub(super) const INVALID_ARGUMENT: u64 = 3;
    pub(super) const PERMISSION_DENIED: u64 = 7;
    pub(super) const RESOURCE_EXHAUSTED: u64 = 8;
    pub(super) const UNAUTHENTICATED: u64 = 16;
}

/// Why a rendered answer cannot be translated: jwtgate's own failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Untranslatable {
    /// The rendered answer does not parse as an HTTP/1.1 response.
    Unreadable,
    /// An HTTP status the gRPC face has no translation for.
    Status(u16),
}

/// Appends to `out` the `CheckResponse` for the rendered HTTP `answer`.
///
/// `client` is the request's headers: a client header that an application
/// reads as one of the answer's headers (`x_jwt_sub` for `x-jwt-sub`: CGI,
/// WSGI, Rack and PHP fold `_` and `-` together) but that the answer's
/// overwrite does not reach is named in `headers_to_remove`.
pub(crate) fn translate(
    summary: Summary<'_>,
    answer: &[u8],
    client: &[httparse::Header<'_>],
    out: &mut Vec<u8>,
) -> Result<(), Untranslatable> {
    // One slot per line of the head: the policy decides how many headers an
    // allowed answer forwards.
    let lines = memchr::memmem::find(answer, b"\r\n\r\n").map_or(0, |end| {
        memchr::memchr_iter(b'\n', answer.get(..end).unwrap_or_default()).count()
    });
    let mut stack = [httparse::EMPTY_HEADER; STACK_HEADERS];
    let mut heap = Vec::new();
    let slots = match stack.get_mut(..=lines) {
        Some(slots) => slots,
        None => {
            heap.resize(lines + 1, httparse::EMPTY_HEADER);
            &mut heap[..]
        }
    };
    let mut response = httparse::Response::new(slots);
    let body_at = match response.parse(answer) {
        Ok(httparse::Status::Complete(at)) => at,
        _ => return Err(Untranslatable::Unreadable),
    };
    // The message repeats the answer's headers and body with a few bytes of
    // framing each, and adds the metadata: room for it all, so that it is
    // written without growing.
    out.reserve(2 * answer.len() + 256);
    let status = response.code.unwrap_or(0);
    let headers: &[httparse::Header<'_>] = response.headers;
    let grpc_code = match status {
        200 => code::OK,
        400 => code::INVALID_ARGUMENT,
        401 => code::UNAUTHENTICATED,
        403 => code::PERMISSION_DENIED,
        // A denial (with the 429 in `denied_response`), not a gRPC error:
        // Envoy's `failure_mode_allow` would let an error through.
        429 => code::RESOURCE_EXHAUSTED,
        other => return Err(Untranslatable::Status(other)),
    };
    // CheckResponse.status: google.rpc.Status
    put_message(out, 1, |out| {
        put_varint_field(out, 1, grpc_code);
        put_bytes_field(out, 2, summary.outcome_name().as_bytes());
    });
    if status == 200 {
        // CheckResponse.ok_response: OkHttpResponse
        put_message(out, 3, |out| {
            put_headers(out, 2, headers);
            put_headers_to_remove(out, summary, headers, client);
        });
    } else {
        // CheckResponse.denied_response: DeniedHttpResponse
        put_message(out, 2, |out| {
            // status: envoy.type.v3.HttpStatus
            put_message(out, 1, |out| put_varint_field(out, 1, u64::from(status)));
            put_headers(out, 2, headers);
            let body = String::from_utf8_lossy(answer.get(body_at..).unwrap_or_default());
            put_bytes_field(out, 3, body.as_bytes());
        });
    }
    // CheckResponse.dynamic_metadata: google.protobuf.Struct
    put_message(out, 4, |out| {
        put_string_entry(out, "outcome", summary.outcome_name());
        put_string_entry(out, "action", summary.action_name());
        if let Some(rule) = summary.rule() {
            put_string_entry(out, "rule", &rule.name);
        }
        put_string_entry(out, "token_config", summary.token_config());
        if status == 200 {
            put_identity(out, summary, headers);
        }
    });
    Ok(())
}

/// Every answer header but the framing ones, as repeated field `number` of
/// `HeaderValueOption`s that Envoy sets on the request (or denial),
/// replacing any value the client sent: never appended, and kept when
/// empty, since an empty identity header is how "no identity" overwrites a
/// client's own copy.
fn put_headers(out: &mut Vec<u8>, number: u32, headers: &[httparse::Header<'_>]) {
    for header in headers {
        let framing = FRAMING_HEADERS
            .iter()
            .any(|framing| header.name.eq_ignore_ascii_case(framing));
        if framing {
            continue;
        }
        put_message(out, number, |out| {
            // header: HeaderValue
            put_message(out, 1, |out| {
                put_bytes_field(out, 1, header.name.as_bytes());
                put_bytes_field(out, 2, String::from_utf8_lossy(header.value).as_bytes());
            });
            put_varint_field(out, 3, OVERWRITE_IF_EXISTS_OR_ADD);
            // keep_empty_value
            put_varint_field(out, 4, 1);
        });
    }
}

/// `OkHttpResponse.headers_to_remove`: `authorization` if the rule strips
/// it, and each client header that folds into an answer header without
/// being overwritten by it, lowercased, each once.
fn put_headers_to_remove(
    out: &mut Vec<u8>,
    summary: Summary<'_>,
    answer: &[httparse::Header<'_>],
    client: &[httparse::Header<'_>],
) {
    let strip = summary.rule().is_some_and(|rule| rule.strip_authorization);
    if strip {
        put_delimited(out, 5, b"authorization");
    }
    for (index, field) in client.iter().enumerate() {
        let folds_into_answer = |name: &str| {
            answer.iter().any(|header| {
                !header.name.eq_ignore_ascii_case(name) && same_header_name(name, header.name)
            })
        };
        if !folds_into_answer(field.name) {
            continue;
        }
        let removed_already = (strip && field.name.eq_ignore_ascii_case("authorization"))
            || client
                .iter()
                .take(index)
                .any(|earlier| earlier.name.eq_ignore_ascii_case(field.name));
        if !removed_already {
            put_varint(out, (5 << 3) | 2);
            put_varint(out, field.name.len() as u64);
            out.extend(field.name.bytes().map(|byte| byte.to_ascii_lowercase()));
        }
    }
}

/// The verified identity and forwarded claims, as the origin receives them:
/// the values of the answer's identity headers, where not empty.
fn put_identity(out: &mut Vec<u8>, summary: Summary<'_>, headers: &[httparse::Header<'_>]) {
    let value_of = |name: &str| {
        headers
            .iter()
            .find(|header| header.name.eq_ignore_ascii_case(name))
            .map(|header| String::from_utf8_lossy(header.value))
            .filter(|value| !value.is_empty())
    };
    for (field, header) in [
        ("iss", "x-jwt-iss"),
        ("sub", "x-jwt-sub"),
        ("kid", "x-jwt-kid"),
    ] {
        if let Some(value) = value_of(header) {
            put_string_entry(out, field, &value);
        }
    }
    let Some(rule) = summary.rule() else { return };
    let mut claims = rule
        .forward_claims
        .iter()
        .filter_map(|forward| Some((&*forward.header, value_of(&forward.header)?)))
        .peekable();
    if claims.peek().is_none() {
        return;
    }
    // Struct.fields entry: "claims" → Value { struct_value }
    put_message(out, 1, |out| {
        put_bytes_field(out, 1, METADATA_CLAIMS.as_bytes());
        put_message(out, 2, |out| {
            put_message(out, 5, |out| {
                for (name, value) in claims {
                    put_string_entry(out, name, &value);
                }
            });
        });
    });
}

/// One `Struct.fields` entry whose value is a string. The value is written
/// even when empty: a oneof's chosen field is always on the wire.
fn put_string_entry(out: &mut Vec<u8>, key: &str, value: &str) {
    put_message(out, 1, |out| {
        put_bytes_field(out, 1, key.as_bytes());
        // Value { string_value }
        put_message(out, 2, |out| put_delimited(out, 3, value.as_bytes()));
    });
}
