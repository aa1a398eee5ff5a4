//! Reading an answer: the gRPC frame of a `CheckResponse` and the fields
//! that say what was decided (`status.code`, and which of `ok_response`,
//! `denied_response` and `error_response` is set), decoded with prost while
//! every other field (headers, body, dynamic metadata) is skipped unread.
//! That keeps the generator's work per answer small and free of allocation;
//! the tests check the reading against envoy-types' full `CheckResponse`.

use std::fmt;

use crate::bodies::FRAME_PREFIX;

/// The fields of `envoy.service.auth.v3.CheckResponse` that carry the
/// decision, under their proto tags; prost skips the fields not named.
/// The three responses are a oneof in the proto: read as optional fields,
/// an answer holding more than one is seen (and refused).
#[derive(Clone, Copy, PartialEq, prost::Message)]
struct Verdict {
    #[prost(message, optional, tag = "1")]
    status: Option<StatusCode>,
    #[prost(message, optional, tag = "2")]
    denied_response: Option<Unread>,
    #[prost(message, optional, tag = "3")]
    ok_response: Option<Unread>,
    /// The service's own failure, with a custom answer for the client.
    #[prost(message, optional, tag = "5")]
    error_response: Option<Unread>,
}

/// `google.rpc.Status` without its message and details.
#[derive(Clone, Copy, PartialEq, prost::Message)]
struct StatusCode {
    #[prost(int32, tag = "1")]
    code: i32,
}

/// A message whose presence matters and whose fields are skipped.
#[derive(Clone, Copy, PartialEq, prost::Message)]
struct Unread {}

/// What an answer must say: `CheckResponse.status.code`, with an
/// `ok_response` when it is 0 (OK) and a `denied_response` otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Expected {
    pub(crate) code: i32,
}

/// Which `http_response` an answer carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Carried {
    Ok,
    Denied,
    Error,
    Neither,
    Several,
}

impl fmt::Display for Carried {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Carried::Ok => "an ok_response",
            Carried::Denied => "a denied_response",
            Carried::Error => "an error_response",
            Carried::Neither => "no http_response",
            Carried::Several => "several of ok_response, denied_response and error_response",
        })
    }
}

/// Why an answer's body is not the expected verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mismatch {
    /// Not one uncompressed length-prefixed message.
    Frame(&'static str),
    Decode(prost::DecodeError),
    /// A readable `CheckResponse` that decided otherwise (or without a
    /// status, read as code 0 by proto3's defaults, but noted).
    Decided {
        code: i32,
        has_status: bool,
        carried: Carried,
        expected: Expected,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Frame(why) => write!(f, "the response body is not a gRPC message: {why}"),
            Mismatch::Decode(error) => write!(f, "the CheckResponse does not decode: {error}"),
            Mismatch::Decided {
                code,
                has_status,
                carried,
                expected,
            } => {
                let status = if *has_status { "" } else { " (no status)" };
                let wanted = if expected.code == 0 {
                    Carried::Ok
                } else {
                    Carried::Denied
                };
                write!(
                    f,
                    "CheckResponse status code {code}{status} with {carried}, expected {} with {wanted}",
                    expected.code
                )
            }
        }
    }
}

/// The message of a gRPC response body holding exactly one.
fn message(body: &[u8]) -> Result<&[u8], Mismatch> {
    let (prefix, message) = body
        .split_first_chunk::<FRAME_PREFIX>()
        .ok_or(Mismatch::Frame("shorter than the 5-byte prefix"))?;
    let [compressed, length @ ..] = *prefix;
    if compressed != 0 {
        return Err(Mismatch::Frame("compressed, which was not offered"));
    }
    if usize::try_from(u32::from_be_bytes(length)).ok() != Some(message.len()) {
        return Err(Mismatch::Frame(
            "its length prefix is not the body's length",
        ));
    }
    Ok(message)
}

/// Checks that `body`, a whole gRPC response body, is the `expected` verdict.
pub(crate) fn check(body: &[u8], expected: Expected) -> Result<(), Mismatch> {
    let verdict = <Verdict as prost::Message>::decode(message(body)?).map_err(Mismatch::Decode)?;
    let carried = match (
        verdict.ok_response,
        verdict.denied_response,
        verdict.error_response,
    ) {
        (Some(_), None, None) => Carried::Ok,
        (None, Some(_), None) => Carried::Denied,
        (None, None, Some(_)) => Carried::Error,
        (None, None, None) => Carried::Neither,
        _ => Carried::Several,
    };
    let code = verdict.status.map_or(0, |status| status.code);
    let wanted = if expected.code == 0 {
        Carried::Ok
    } else {
        Carried::Denied
    };
    if verdict.status.is_some() && code == expected.code && carried == wanted {
        Ok(())
    } else {
        Err(Mismatch::Decided {
            code,
            has_status: verdict.status.is_some(),
            carried,
            expected,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
    use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
    use envoy_types::pb::envoy::service::auth::v3::{
        CheckResponse, DeniedHttpResponse, OkHttpResponse,
    };
    use envoy_types::pb::envoy::r#type::v3::HttpStatus;
    use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
    use envoy_types::pb::google::rpc;
    use prost::Message;

    use super::*;

    const OK: Expected = Expected { code: 0 };
    const UNAUTHENTICATED: Expected = Expected { code: 16 };

    fn header(name: &str, value: &str) -> HeaderValueOption {
        HeaderValueOption {
            header: Some(HeaderValue {
                key: name.to_owned(),
                value: value.to_owned(),
                raw_value: Vec::new(),
            }),
            keep_empty_value: true,
            ..HeaderValueOption::default()
        }
    }

    /// A response as jwtgate's gRPC face writes one: every field set.
    fn response(code: i32, http: Option<HttpResponse>) -> CheckResponse {
        let mut metadata = Struct::default();
        metadata.fields.insert(
            "outcome".to_owned(),
            Value {
                kind: Some(Kind::StringValue("valid".to_owned())),
            },
        );
        CheckResponse {
            status: Some(rpc::Status {
                code,
                message: "valid".to_owned(),
                details: Vec::new(),
            }),
            dynamic_metadata: Some(metadata),
            http_response: http,
        }
    }

    fn allowed() -> Option<HttpResponse> {
        Some(HttpResponse::OkResponse(OkHttpResponse {
            headers: vec![header("x-jwt-sub", "user"), header("x-jwt-kid", "bench")],
            ..OkHttpResponse::default()
        }))
    }

    fn denied() -> Option<HttpResponse> {
        Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus { code: 401 }),
            headers: vec![header("www-authenticate", "Bearer error=\"invalid_token\"")],
            body: "{\"error\":\"invalid_token\"}".to_owned(),
        }))
    }

    /// The service's own failure (INTERNAL), with an answer for the client.
    fn failed() -> Option<HttpResponse> {
        Some(HttpResponse::ErrorResponse(DeniedHttpResponse {
            status: Some(HttpStatus { code: 503 }),
            ..DeniedHttpResponse::default()
        }))
    }

    fn framed(message: &CheckResponse) -> Vec<u8> {
        let encoded = message.encode_to_vec();
        let mut body = vec![0];
        body.extend_from_slice(&u32::try_from(encoded.len()).unwrap().to_be_bytes());
        body.extend_from_slice(&encoded);
        body
    }

    #[test]
    fn an_ok_answer_with_an_ok_response_is_the_ok_verdict() {
        assert_eq!(check(&framed(&response(0, allowed())), OK), Ok(()));
    }

    #[test]
    fn a_denial_is_the_verdict_only_when_a_denial_is_expected() {
        let body = framed(&response(16, denied()));
        assert_eq!(check(&body, UNAUTHENTICATED), Ok(()));
        assert_eq!(
            check(&body, OK),
            Err(Mismatch::Decided {
                code: 16,
                has_status: true,
                carried: Carried::Denied,
                expected: OK
            })
        );
    }

    #[test]
    fn a_code_and_a_response_that_disagree_are_refused() {
        // OK with a denial, a denial code with an ok_response, an error,
        // no response, no status.
        for (message, code, has_status, carried) in [
            (response(0, denied()), 0, true, Carried::Denied),
            (response(16, allowed()), 16, true, Carried::Ok),
            (response(13, failed()), 13, true, Carried::Error),
            (response(0, None), 0, true, Carried::Neither),
            (
                CheckResponse {
                    status: None,
                    ..response(0, allowed())
                },
                0,
                false,
                Carried::Ok,
            ),
        ] {
            let expected = if code == 0 { OK } else { UNAUTHENTICATED };
            assert_eq!(
                check(&framed(&message), expected),
                Err(Mismatch::Decided {
                    code,
                    has_status,
                    carried,
                    expected
                }),
                "{message:?}"
            );
        }
    }

    #[test]
    fn several_responses_at_once_are_refused() {
        // Not expressible with envoy-types (a oneof): two encodings joined,
        // which protobuf reads as one message with both fields.
        let mut encoded = response(0, allowed()).encode_to_vec();
        encoded.extend(
            CheckResponse {
                http_response: denied(),
                ..CheckResponse::default()
            }
            .encode_to_vec(),
        );
        let mut body = vec![0];
        body.extend_from_slice(&u32::try_from(encoded.len()).unwrap().to_be_bytes());
        body.extend_from_slice(&encoded);
        assert!(matches!(
            check(&body, OK),
            Err(Mismatch::Decided {
                carried: Carried::Several,
                ..
            })
        ));
    }

    #[test]
    fn the_reading_agrees_with_the_full_decoding() {
        for message in [
            response(0, allowed()),
            response(16, denied()),
            response(7, denied()),
            response(13, failed()),
            response(0, None),
        ] {
            let body = framed(&message);
            let full = CheckResponse::decode(&body[FRAME_PREFIX..]).unwrap();
            let code = full.status.as_ref().unwrap().code;
            let carried = match full.http_response {
                Some(HttpResponse::OkResponse(_)) => Carried::Ok,
                Some(HttpResponse::DeniedResponse(_)) => Carried::Denied,
                Some(HttpResponse::ErrorResponse(_)) => Carried::Error,
                None => Carried::Neither,
            };
            let wanted = if code == 0 {
                Carried::Ok
            } else {
                Carried::Denied
            };
            assert_eq!(
                check(&body, Expected { code }).is_ok(),
                carried == wanted,
                "{full:?}"
            );
        }
    }

    #[test]
    fn frames_other_than_one_uncompressed_message_are_refused() {
        let body = framed(&response(0, allowed()));
        assert!(matches!(check(&body[..4], OK), Err(Mismatch::Frame(_))));
        assert!(matches!(
            check(&body[..body.len() - 1], OK),
            Err(Mismatch::Frame(_))
        ));
        let mut compressed = body.clone();
        compressed[0] = 1;
        assert!(matches!(check(&compressed, OK), Err(Mismatch::Frame(_))));
        let mut two = body.clone();
        two.extend_from_slice(&body);
        assert!(matches!(check(&two, OK), Err(Mismatch::Frame(_))));
    }
}
