//! The network batch face, `POST /v1/verify`: newline-separated tokens in,
//! one JSON line per token out, in the format of `jwtgate verify`, on a port
//! of its own (`--verify-listen`) served by threads of their own.
//!
//! Neighbours: [`crate::batch`] verifies the lines and writes each result;
//! the token configurations come from the same [`SharedSnapshot`] as the check
//! service's ([`super::Authorizer`]), and a configuration without keys
//! refuses each token as that service does ([`super::tokens`]).

use crate::http::response::write_simple;
use crate::http::{BodyPolicy, Framing, RequestHead, Service};
use crate::snapshot::SharedSnapshot;

use super::Clock;
use super::tokens;

/// The network batch face: `POST /v1/verify` with newline-separated tokens in
/// the body, one JSON line per token out, the format of `jwtgate verify`.
/// `?token_config=NAME` picks the token configuration (default: the first).
#[derive(Debug)]
pub(crate) struct BatchVerifier {
    policy: SharedSnapshot,
    clock: Clock,
    limits: BatchLimits,
    scratch: crate::Scratch,
    lines: Vec<u8>,
    revocation_scratch: crate::revocation::LookupScratch,
}

/// Path of the batch endpoint.
pub(super) const VERIFY_PATH: &str = "/v1/verify";

/// Bounds of one `POST /v1/verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Longest body, in bytes.
    pub max_body: u64,
    /// Most lines. Every line gets a result of up to a few
    /// hundred bytes, blank ones included, so without this a body of newlines
    /// would be answered with some 70 times its size.
    pub max_lines: usize,
}

impl BatchVerifier {
    /// A batch endpoint over `policy`'s token configurations, within `limits`.
    pub(crate) fn new(policy: SharedSnapshot, clock: Clock, limits: BatchLimits) -> BatchVerifier {
        BatchVerifier {
            policy,
            clock,
            limits,
            scratch: crate::Scratch::with_token_limit(4096),
            lines: Vec::new(),
            revocation_scratch: crate::revocation::LookupScratch::default(),
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
        let path = head.path.split('?').next().unwrap_or_default();
        if head.method == "POST" && path == VERIFY_PATH {
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
        let (path, query) = head.path.split_once('?').unwrap_or((head.path, ""));
        if path != VERIFY_PATH {
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
        let snapshot = self.policy.load();
        let wanted = query
            .split('&')
            .find_map(|pair| pair.strip_prefix("token_config="));
        let found = match wanted {
            Some(name) => snapshot.configs().find(|(own, _)| *own == name),
            None => snapshot.configs().next(),
        };
        let Some((config, keys)) = found else {
            let body = br#"{"error":"unknown_token_config","detail":"no token configuration has this name"}"#;
            return write_simple(out, 404, JSON, b"", body, framing);
        };
        self.lines.clear();
        let refused = (!keys.available()).then_some(tokens::KEYS_UNAVAILABLE);
        let unknown_kid = crate::batch::verify_buffer(
            keys.verifier(),
            refused,
            Some((config, &snapshot.revocations, &mut self.revocation_scratch)),
            body,
            self.clock.now(),
            &mut self.scratch,
            &mut self.lines,
        );
        if unknown_kid && let Some(remote) = keys.remote() {
            remote.want_refetch();
        }
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
