//! The seam between the connection loop and what answers requests: the server
//! parses a head, asks the service how to treat the body, then hands it the
//! head and body to answer. The service never sees sockets or the runtime,
//! and the server never asks it for metrics: a shard that records them hands
//! them to its service and its connection loop itself.

use super::RequestHead;
use super::response::Framing;

/// What to do with a request's body, `Content-Length` or chunked alike: the
/// limit is on the decoded length of a chunked body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyPolicy {
    /// Read it and throw it away (an ext_authz proxy may forward the client's
    /// body); a longer body is answered 413. A `Content-Length` body is read
    /// after the answer; a chunked one before it, since its length is known
    /// only at its end.
    Discard {
        /// Longest accepted body, in bytes.
        max: u64,
    },
    /// Buffer it whole and pass it to [`Service::respond`] (a chunked body
    /// decoded, contiguous); longer is 413.
    Buffer {
        /// Longest accepted body, in bytes.
        max: u64,
    },
}

/// Answers requests on one connection of one shard.
pub(crate) trait Service {
    /// How the body of this request is handled.
    fn body_policy(&self, head: &RequestHead<'_, '_>) -> BodyPolicy;

    /// Appends the complete response to `out`. `body` is the buffered body
    /// ([`BodyPolicy::Buffer`]) or empty. `framing` says whether this is the
    /// connection's last response (it must carry `connection: close`) and
    /// whether the body must be left out (`HEAD`).
    fn respond(
        &mut self,
        head: &RequestHead<'_, '_>,
        body: &[u8],
        framing: Framing,
        out: &mut Vec<u8>,
    );

    /// Called by the shard between requests at least once a second (flushes logs).
    fn tick(&mut self) {}
}
