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

use crate::http::{BodyPolicy, RequestHead, Service};
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
        close: bool,
        out: &mut Vec<u8>,
    ) -> Outcome {
        if self.options.danger_skip_verification {
            out.extend_from_slice(crate::http::response::status_line(200).as_bytes());
            out.extend_from_slice(b"content-length: 0\r\nx-jwtgate-outcome: valid\r\n");
            if close {
                out.extend_from_slice(crate::http::response::CONNECTION_CLOSE);
            }
            out.extend_from_slice(b"\r\n");
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
                response::allowed(out, &verified, self.options.forward_payload, close);
                Outcome::Valid
            }
            Err(rejection) => {
                out.extend_from_slice(self.denials.response(rejection.outcome(), close));
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
        close: bool,
        out: &mut Vec<u8>,
    ) {
        self.decide(head, close, out);
    }
}

/// The network batch face of one shard: `POST /v1/verify` with newline-separated
/// tokens in the body, one JSON line per token out, the format of `jwtgate verify`.
#[derive(Debug)]
pub struct BatchVerifier {
    verifier: Arc<Verifier>,
    clock: Clock,
    max_body: u64,
    scratch: crate::Scratch,
    lines: Vec<u8>,
}

/// Path of the batch endpoint.
pub const VERIFY_PATH: &str = "/v1/verify";

impl BatchVerifier {
    /// A shard's batch endpoint accepting bodies up to `max_body` bytes.
    pub fn new(verifier: Arc<Verifier>, clock: Clock, max_body: u64) -> BatchVerifier {
        let scratch = verifier.scratch();
        BatchVerifier {
            verifier,
            clock,
            max_body,
            scratch,
            lines: Vec::new(),
        }
    }
}

impl Service for BatchVerifier {
    fn body_policy(&self, head: &RequestHead<'_, '_>) -> BodyPolicy {
        if head.method == "POST" && head.path == VERIFY_PATH {
            BodyPolicy::Buffer { max: self.max_body }
        } else {
            BodyPolicy::Discard { max: self.max_body }
        }
    }

    fn respond(&mut self, head: &RequestHead<'_, '_>, body: &[u8], close: bool, out: &mut Vec<u8>) {
        use crate::http::response::write_simple;
        if head.path != VERIFY_PATH {
            let body = br#"{"error":"not_found","detail":"the batch endpoint is POST /v1/verify"}"#;
            write_simple(out, 404, "application/json", b"", body, close);
            return;
        }
        if head.method != "POST" {
            let body = br#"{"error":"method_not_allowed","detail":"use POST"}"#;
            write_simple(
                out,
                405,
                "application/json",
                b"allow: POST\r\n",
                body,
                close,
            );
            return;
        }
        self.lines.clear();
        crate::batch::verify_buffer(
            &self.verifier,
            body,
            self.clock.now(),
            &mut self.scratch,
            &mut self.lines,
        );
        write_simple(out, 200, "application/x-ndjson", b"", &self.lines, close);
        // A huge batch must not pin its memory for the life of the connection.
        if self.lines.capacity() > 1 << 20 {
            self.lines = Vec::new();
        }
    }
}
