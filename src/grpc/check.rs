//! One `Authorization/Check`: the proxy's statement of the request (read
//! in place by `request`) turned into the head the decision code reads; the
//! decision, made by the shard's [`Authorizer`] exactly as for an HTTP
//! check; and its answer, rendered once by the HTTP face's renderer and
//! re-expressed as a `CheckResponse` by `response`. Status, headers and body
//! are then the same on both faces by construction, and no policy logic
//! lives in the gRPC face.
//!
//! Every non-`OK` status is a denial that Envoy enforces. jwtgate's own
//! failure is a gRPC error (`INTERNAL`) instead: Envoy's `failure_mode_allow`
//! and `status_on_error` decide what it means.

use std::cell::RefCell;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;

use super::codec::EncodedResponse;
use super::request::{StatedCheck, StatedHttp};
use super::response::{Untranslatable, translate};
use super::wire::WireError;
use crate::authz::{Authorizer, Origin};
use crate::http::{Framing, OriginalRequest, RequestHead};
use crate::metrics::Face;

/// Room for the rendered HTTP answer of a typical check (a denial's head
/// and body, or an allowed answer with a few identity headers), so that it
/// is rendered without growing.
const RENDERED_CAPACITY: usize = 1024;

/// What a check needs of its shard and connection.
#[derive(Debug, Clone)]
pub(crate) struct Checker {
    pub(crate) authorizer: Rc<RefCell<Authorizer>>,
    /// The proxy's address, for `trusted_proxies`.
    pub(crate) peer: IpAddr,
}

impl tonic::server::UnaryService<Bytes> for Checker {
    type Response = EncodedResponse;
    type Future = std::future::Ready<Result<tonic::Response<EncodedResponse>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let started = Instant::now();
        let message = request.into_inner();
        // The shard's thread runs one check at a time, start to end, so the
        // authorizer is never borrowed twice; if it were, this is jwtgate's
        // own failure, which Envoy's failure_mode settings are for.
        let answer = match self.authorizer.try_borrow_mut() {
            Ok(mut authorizer) => {
                let answer = check_message(&mut authorizer, &message, self.peer);
                authorizer.record_request(started.elapsed());
                answer
            }
            Err(_) => Err(tonic::Status::internal("the shard's authorizer is busy")),
        };
        std::future::ready(answer.map(|bytes| tonic::Response::new(EncodedResponse(bytes))))
    }
}

/// Decides the serialized `CheckRequest` `message` from `peer` on
/// `authorizer`: the encoded `CheckResponse`, or the gRPC error that
/// answers instead (`INVALID_ARGUMENT` for a message that is not a
/// `CheckRequest`).
pub(crate) fn check_message(
    authorizer: &mut Authorizer,
    message: &[u8],
    peer: IpAddr,
) -> Result<Vec<u8>, tonic::Status> {
    match StatedCheck::read(message) {
        Ok(stated) => check(authorizer, &stated, peer),
        // Well framed, as Envoy frames it, but a header or the path is not
        // UTF-8 (Envoy passes on bytes a client sent): a denial, since a
        // gRPC error is what `failure_mode_allow` turns into an allow.
        Err(WireError::Utf8) => unreadable(
            authorizer,
            peer,
            "a string the check reads (method, host, path, query, a header, a context extension) is not UTF-8",
        ),
        Err(error) => Err(tonic::Status::invalid_argument(error.reason())),
    }
}

/// Decides a request whose statement cannot be read, as a 400 denial.
fn unreadable(
    authorizer: &mut Authorizer,
    peer: IpAddr,
    reason: &'static str,
) -> Result<Vec<u8>, tonic::Status> {
    let mut rendered = Vec::with_capacity(RENDERED_CAPACITY);
    let mut encoded = Vec::new();
    authorizer
        .decide_from(
            Face::Grpc,
            &RequestHead::stated("", "", &[]),
            Origin::Unreadable(reason),
            framing(peer),
            &mut rendered,
            |s, a| translate(s, a, &[], &mut encoded),
        )
        .map(|()| encoded)
        .map_err(internal)
}

fn framing(peer: IpAddr) -> Framing {
    Framing {
        close: false,
        head_only: false,
        peer,
    }
}

/// Decides `stated` from `peer` on `authorizer`.
fn check(
    authorizer: &mut Authorizer,
    stated: &StatedCheck<'_>,
    peer: IpAddr,
) -> Result<Vec<u8>, tonic::Status> {
    let framing = framing(peer);
    let rule = stated.rule.map(str::as_bytes);
    let Some(http) = &stated.http else {
        return unreadable(
            authorizer,
            peer,
            "a CheckRequest needs attributes.request.http",
        );
    };
    let mut rendered = Vec::with_capacity(RENDERED_CAPACITY);
    let mut encoded = Vec::new();
    let mut headers = Vec::with_capacity(header_count(http));
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
    let head = RequestHead::stated(http.method, http.path, &headers);
    authorizer
        .decide_from(Face::Grpc, &head, origin, framing, &mut rendered, |s, a| {
            translate(s, a, &headers, &mut encoded)
        })
        .map(|()| encoded)
        .map_err(internal)
}

fn internal(error: Untranslatable) -> tonic::Status {
    match error {
        Untranslatable::Unreadable => {
            tonic::Status::internal("jwtgate rendered an unreadable answer")
        }
        Untranslatable::Status(status) => tonic::Status::internal(format!(
            "jwtgate answered HTTP {status}, which the gRPC face does not translate"
        )),
    }
}

fn header_count(http: &StatedHttp<'_>) -> usize {
    if http.lines.is_empty() {
        http.joined
            .iter()
            .map(|(_, value)| 1 + memchr::memchr_iter(b',', value.as_bytes()).count())
            .sum()
    } else {
        http.lines.len()
    }
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
fn read_headers<'m>(
    http: &StatedHttp<'m>,
    headers: &mut Vec<httparse::Header<'m>>,
) -> Result<(), &'static str> {
    if http.lines.is_empty() {
        for &(name, value) in &http.joined {
            headers.extend(value.split(',').map(|part| httparse::Header {
                name,
                value: part.trim_ascii().as_bytes(),
            }));
        }
        return Ok(());
    }
    if !http.joined.is_empty() {
        return Err("attributes.request.http has both headers and header_map");
    }
    headers.extend(
        http.lines
            .iter()
            .map(|&(name, value)| httparse::Header { name, value }),
    );
    Ok(())
}
