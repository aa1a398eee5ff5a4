//! The request bodies: one gRPC-framed `CheckRequest` per token of the token
//! file, encoded before the run so that a request costs the generator a
//! reference count, not an encoding. The load (`load`) sends them in turn.

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use prost::Message;

/// The gRPC message prefix: a compression flag and a big-endian length.
pub(crate) const FRAME_PREFIX: usize = 5;

/// The request that every check states: `GET /` on `host` with the token as
/// its bearer credential. This is what wrk sends the HTTP face in
/// scripts/bench-http.sh (a request line, Host, Authorization), as Envoy
/// states it: the fields and lowercased headers map (pseudo-headers
/// included) that tests/common/grpc.rs `check_request` builds.
pub(crate) fn check_request(host: &str, token: &str) -> CheckRequest {
    let headers = HashMap::from([
        (":authority".to_owned(), host.to_owned()),
        (":method".to_owned(), "GET".to_owned()),
        (":path".to_owned(), "/".to_owned()),
        ("authorization".to_owned(), format!("Bearer {token}")),
    ]);
    let http = HttpRequest {
        id: "1".to_owned(),
        method: "GET".to_owned(),
        path: "/".to_owned(),
        host: host.to_owned(),
        scheme: "http".to_owned(),
        protocol: "HTTP/1.1".to_owned(),
        headers,
        ..HttpRequest::default()
    };
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

/// `message` as a gRPC request body: uncompressed, one length-prefixed message.
pub(crate) fn framed(message: &CheckRequest) -> Result<Bytes, String> {
    let length = message.encoded_len();
    let prefix_length = u32::try_from(length)
        .map_err(|_| format!("a CheckRequest of {length} bytes does not fit a gRPC frame"))?;
    let mut body = BytesMut::with_capacity(FRAME_PREFIX + length);
    body.put_u8(0);
    body.put_u32(prefix_length);
    message
        .encode(&mut body)
        .map_err(|error| format!("encoding a CheckRequest: {error}"))?;
    Ok(body.freeze())
}

/// One body per non-empty line of `tokens` (a token file as
/// bench/http/rotate.lua reads it), in the file's order.
pub(crate) fn from_tokens(tokens: &str, host: &str) -> Result<Vec<Bytes>, String> {
    tokens
        .lines()
        .map(|line| line.trim_end_matches('\r'))
        .filter(|token| !token.is_empty())
        .map(|token| framed(&check_request(host, token)))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn a_body_is_one_uncompressed_message_that_decodes_to_the_request() {
        let bodies = from_tokens("aaa.bbb.ccc\r\n\nddd.eee.fff\n", "127.0.0.1").unwrap();
        assert_eq!(bodies.len(), 2);
        for (body, token) in bodies.iter().zip(["aaa.bbb.ccc", "ddd.eee.fff"]) {
            assert_eq!(body[0], 0, "not compressed");
            let length = u32::from_be_bytes(body[1..FRAME_PREFIX].try_into().unwrap());
            assert_eq!(length as usize, body.len() - FRAME_PREFIX);
            let request = CheckRequest::decode(&body[FRAME_PREFIX..]).unwrap();
            assert_eq!(request, check_request("127.0.0.1", token));
            let http = request.attributes.unwrap().request.unwrap().http.unwrap();
            assert_eq!(http.headers["authorization"], format!("Bearer {token}"));
            assert_eq!((http.method.as_str(), http.path.as_str()), ("GET", "/"));
            assert!(
                http.query.is_empty(),
                "jwtgate refuses a query outside path"
            );
        }
    }
}
