//! The ext_authz decision: find the bearer token in a check request, verify it,
//! and answer 200 with identity headers or 401 with a challenge. Also the
//! network batch face, `POST /v1/verify`.
//!
//! Neighbours: [`crate::http`] supplies the parsed head and the [`Service`]
//! seam; [`crate::verify`] is the engine; [`crate::batch`] renders batch lines.
//! One [`Authorizer`] lives in each shard and owns that shard's scratch space,
//! so verifying allocates nothing.

pub mod bearer;
pub mod response;

use std::sync::Arc;

use crate::http::response::write_simple;
use crate::http::{BodyPolicy, Framing, RequestHead, Service};
use crate::{Outcome, Rejection, UnixTime, Verifier};

pub use bearer::Credential;
pub use response::Denials;

/// Where "now" comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// The system clock, read once per request.
    System,
    /// A pinned instant (tests, replays).
    Fixed(UnixTime),
}

impl Clock {
    /// The current time by this clock.
    pub fn now(self) -> UnixTime {
        match self {
            Clock::System => UnixTime::now(),
            Clock::Fixed(time) => time,
        }
    }
}

/// Settings of the ext_authz answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthzOptions {
    /// Put the verified payload segment in `x-jwt-payload` (default off: it can
    /// be large, and not every upstream should see every claim).
    pub forward_payload: bool,
    /// Longest check-request body, read and discarded (default 64 KiB).
    pub max_body: u64,
    /// Answer 200 without looking at the token: only to measure the HTTP
    /// ceiling in benchmarks. Never in production.
    pub danger_skip_verification: bool,
    /// The verification clock.
    pub clock: Clock,
}

impl Default for AuthzOptions {
    fn default() -> AuthzOptions {
        AuthzOptions {
            forward_payload: false,
            max_body: 64 * 1024,
            danger_skip_verification: false,
            clock: Clock::System,
        }
    }
}

/// The ext_authz check service of one shard.
#[derive(Debug)]
pub struct Authorizer {
    verifier: Arc<Verifier>,
    options: AuthzOptions,
    denials: Arc<Denials>,
    scratch: crate::Scratch,
}

impl Authorizer {
    /// A shard's authorizer; `denials` is rendered once and shared by all shards.
    pub fn new(
        verifier: Arc<Verifier>,
        options: AuthzOptions,
        denials: Arc<Denials>,
    ) -> Authorizer {
        let scratch = verifier.scratch();
        Authorizer {
            verifier,
            options,
            denials,
            scratch,
        }
    }

    /// Decides one check request and appends the answer to `out`; returns the outcome.
    pub fn decide(
        &mut self,
        head: &RequestHead<'_, '_>,
        framing: Framing,
        out: &mut Vec<u8>,
    ) -> Outcome {
        if self.options.danger_skip_verification {
            response::unverified(out, framing.close);
            return Outcome::Valid;
        }
        let result = match bearer::credential(head) {
            Credential::Token(token) => {
                self.verifier
                    .verify(token, self.options.clock.now(), &mut self.scratch)
            }
            Credential::Missing => Err(Rejection::new(
                Outcome::Missing,
                "no bearer token in the Authorization header",
            )),
            Credential::Malformed(detail) => Err(Rejection::new(Outcome::Malformed, detail)),
        };
        match result {
            Ok(verified) => {
                response::allowed(out, &verified, self.options.forward_payload, framing.close);
                Outcome::Valid
            }
            Err(rejection) => {
                out.extend_from_slice(self.denials.response(rejection.outcome(), framing));
                rejection.outcome()
            }
        }
    }
}

impl Service for Authorizer {
    fn body_policy(&self, _head: &RequestHead<'_, '_>) -> BodyPolicy {
        BodyPolicy::Discard {
            max: self.options.max_body,
        }
    }

    fn respond(
        &mut self,
        head: &RequestHead<'_, '_>,
        _body: &[u8],
        framing: Framing,
        out: &mut Vec<u8>,
    ) {
        self.decide(head, framing, out);
    }
}

/// The network batch face: `POST /v1/verify` with newline-separated tokens in
/// the body, one JSON line per token out, the format of `jwtgate verify`.
#[derive(Debug)]
pub struct BatchVerifier {
    verifier: Arc<Verifier>,
    clock: Clock,
    limits: BatchLimits,
    scratch: crate::Scratch,
    lines: Vec<u8>,
}

/// Path of the batch endpoint.
pub const VERIFY_PATH: &str = "/v1/verify";

/// Bounds of one `POST /v1/verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Longest body, in bytes (default 1 MiB).
    pub max_body: u64,
    /// Most lines (default 10,000). Every line gets a result of up to a few
    /// hundred bytes, blank ones included, so without this a body of newlines
    /// would be answered with some 70 times its size.
    pub max_lines: usize,
}

impl Default for BatchLimits {
    fn default() -> BatchLimits {
        BatchLimits {
            max_body: 1024 * 1024,
            max_lines: 10_000,
        }
    }
}

impl BatchVerifier {
    /// A batch endpoint within `limits`.
    pub fn new(verifier: Arc<Verifier>, clock: Clock, limits: BatchLimits) -> BatchVerifier {
        let scratch = verifier.scratch();
        BatchVerifier {
            verifier,
            clock,
            limits,
            scratch,
            lines: Vec::new(),
        }
    }
}

/// Lines in `body` as the batch reader counts them (a last line without LF counts).
fn line_count(body: &[u8]) -> usize {
    let newlines = memchr::memchr_iter(b'\n', body).count();
    newlines + usize::from(body.last().is_some_and(|&b| b != b'\n'))
}

impl Service for BatchVerifier {
    fn body_policy(&self, head: &RequestHead<'_, '_>) -> BodyPolicy {
        if head.method == "POST" && head.path == VERIFY_PATH {
            BodyPolicy::Buffer {
                max: self.limits.max_body,
            }
        } else {
            BodyPolicy::Discard {
                max: self.limits.max_body,
            }
        }
    }

    fn respond(
        &mut self,
        head: &RequestHead<'_, '_>,
        body: &[u8],
        framing: Framing,
        out: &mut Vec<u8>,
    ) {
        const JSON: &str = "application/json";
        if head.path != VERIFY_PATH {
            let body = br#"{"error":"not_found","detail":"the batch endpoint is POST /v1/verify"}"#;
            return write_simple(out, 404, JSON, b"", body, framing);
        }
        if head.method != "POST" {
            let body = br#"{"error":"method_not_allowed","detail":"use POST"}"#;
            return write_simple(out, 405, JSON, b"allow: POST\r\n", body, framing);
        }
        if line_count(body) > self.limits.max_lines {
            let body = br#"{"error":"too_many_lines","detail":"the body has more lines than this endpoint accepts"}"#;
            return write_simple(out, 413, JSON, b"", body, framing);
        }
        self.lines.clear();
        crate::batch::verify_buffer(
            &self.verifier,
            body,
            self.clock.now(),
            &mut self.scratch,
            &mut self.lines,
        );
        write_simple(out, 200, "application/x-ndjson", b"", &self.lines, framing);
        // A large batch must not pin its memory for the life of the connection.
        if self.lines.capacity() > 1 << 20 {
            self.lines = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::line_count;

    #[test]
    fn lines_are_counted_as_the_batch_reader_counts_them() {
        for (body, lines) in [
            (&b""[..], 0),
            (b"a", 1),
            (b"a\n", 1),
            (b"a\nb", 2),
            (b"\n\n\n", 3),
            (b"a\r\nb\r\n", 2),
        ] {
            assert_eq!(line_count(body), lines, "{body:?}");
        }
    }
}
