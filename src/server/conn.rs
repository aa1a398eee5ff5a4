//! One connection's life: read, parse every complete request in the buffer,
//! answer them all in one write (pipelining), and repeat until the client or a
//! limit ends it. Written once for both runtimes, over [`Stream`].
//!
//! The read buffer holds at most one request head plus whatever of the next
//! requests arrived with it; it grows on demand up to the head limit (or, for a
//! buffered body, the body limit) and is reused for the connection's life.
//!
//! Each read is looked at once: the end of a head is searched for only in the
//! bytes that arrived since the last search ([`HeadScan`]), and a chunked body
//! is decoded in place as it arrives ([`ChunkedDecoder`]), with only a partial
//! chunk-size line held back.
//!
//! Of its shard a connection knows only what [`ShardParts`] lends it (buffer
//! pool, draining flag, metrics); the shard ([`super::shard`]) accepts it,
//! tracks it ([`super::tracking`]) and spawns this loop.

use std::cell::RefCell;
use std::net::{IpAddr, Shutdown};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::tracking::{BufferPool, Draining, Phase, Tracked};
use super::transport::Stream;
use crate::http::chunked::{ChunkedDecoder, MAX_CHUNK_LINE};
use crate::http::request::{HeadScan, HeadStatus, HeaderSlots, leading_empty_lines, parse_head};
use crate::http::{
    BodyFraming, BodyPolicy, Framing, Limits, ProtocolError, RequestHead, Service, Version,
    response,
};
use crate::metrics::ShardMetrics;

/// Per-connection limits and timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Request line and head limits.
    pub head: Limits,
    /// From the first byte of a request to its last: beyond it, 408.
    pub header_timeout: Duration,
    /// Between requests; also bounds each write to a client that stops reading.
    pub idle_timeout: Duration,
}

/// What a connection uses of its shard, lent for the connection's life.
#[derive(Clone, Copy)]
pub(crate) struct ShardParts<'s> {
    /// Where the connection's two buffers come from and go back to.
    pub(crate) buffers: &'s BufferPool,
    /// Once set, answers close their connection and idle connections end.
    pub(crate) draining: &'s Draining,
    /// The shard's counters, when it records them: the loop times requests
    /// and counts the protocol errors it answers.
    pub(crate) metrics: Option<&'s RefCell<ShardMetrics>>,
}

/// Spare room a read always has.
const BUFFER_FLOOR: usize = 4096;

/// Pipelined answers are written out once this many bytes are waiting, so a
/// client that pipelines without reading cannot grow the output buffer.
const OUTPUT_HIGH_WATER: usize = 64 * 1024;

/// A buffer that grew beyond this (a batch body, a burst of pipelined answers)
/// is given back to the allocator once used, not kept for the connection's life.
const RETAINED_CAPACITY: usize = 64 * 1024;

/// Most answers written in one write, so that each request is timed to the
/// write that carried its own answer.
const MAX_PIPELINED: usize = 32;

/// What processing the buffered bytes decided.
enum Next {
    /// Write what is answered, then go on answering what is buffered.
    Flush,
    /// Read more bytes.
    Read,
    /// Read more bytes of a body, the buffer growing (once full) to `total`
    /// bytes from the start of the unanswered ones: a buffered body's whole
    /// length, or a chunked body's next step.
    ReadBody { total: usize },
    /// Write what is answered, then close.
    Close,
}

/// A chunked request whose body is being read. It is answered when the body
/// is complete, because only then is its length known to be within the limit
/// (a `Content-Length` request is answered from its head). Its head stays at
/// the front of the unanswered bytes and is parsed again then; the decoded
/// body (kept only when buffered) follows it, then the bytes not decoded yet,
/// at most a partial chunk-size line plus the latest read.
#[derive(Debug, Clone, Copy)]
struct Dechunking {
    decoder: ChunkedDecoder,
    /// Length of the head, from the start of the unanswered bytes.
    head_len: usize,
    /// End of the decoded body kept after the head (`head_len` when the body
    /// is thrown away), where the bytes not decoded yet start.
    kept: usize,
    /// Whether the body is buffered for the service or thrown away.
    buffered: bool,
    /// The body limit.
    max: u64,
}

impl Dechunking {
    fn new(head_len: usize, max: u64, buffered: bool) -> Dechunking {
        Dechunking {
            decoder: ChunkedDecoder::new(max),
            head_len,
            kept: head_len,
            buffered,
            max,
        }
    }

    /// How far the buffer may grow for the next read, from the start of the
    /// unanswered bytes: room for a size line and a read after what is kept,
    /// doubling for a buffered body up to its limit.
    fn room(&self, capacity: usize) -> usize {
        let next_read = self.kept + MAX_CHUNK_LINE + BUFFER_FLOOR;
        if !self.buffered {
            return next_read;
        }
        let limit = usize::try_from(self.max)
            .unwrap_or(usize::MAX)
            .saturating_add(self.head_len + MAX_CHUNK_LINE + BUFFER_FLOOR);
        capacity.saturating_mul(2).max(next_read).min(limit)
    }
}

struct Connection<'s, S: Stream, V: Service> {
    tracked: &'s Tracked<S>,
    /// The peer's address (the proxy, for ext_authz).
    peer: IpAddr,
    shard: ShardParts<'s>,
    service: &'s RefCell<V>,
    limits: ConnectionLimits,
    input: Vec<u8>,
    output: Vec<u8>,
    /// Bytes of `input` already consumed by answered requests.
    consumed: usize,
    /// Body bytes still to read and throw away.
    discard: u64,
    /// How far the search for the end of the next head got.
    head_scan: HeadScan,
    /// The chunked request whose body is being read, if any.
    chunked: Option<Dechunking>,
    /// Whether `100 Continue` went out for the request whose body is being read.
    continued: bool,
    /// When the first byte of the request being read arrived.
    request_started: Option<Instant>,
    /// Whether the shard records metrics (request latencies are then timed).
    timing: bool,
    /// When the last read completed: every head parsed from the buffer was
    /// complete then (for pipelined requests, queueing behind earlier ones counts).
    last_read: Instant,
    /// When each answered, not yet written request's head was complete.
    received: [Instant; MAX_PIPELINED],
    /// Answers not yet written (at most MAX_PIPELINED, timed or not).
    unwritten: usize,
}

/// Has the service answer one request into `output`; false if it panicked,
/// its partial answer then removed.
fn respond<V: Service>(
    service: &RefCell<V>,
    head: &RequestHead<'_, '_>,
    body: &[u8],
    framing: Framing,
    output: &mut Vec<u8>,
) -> bool {
    let before = output.len();
    let answered = catch_unwind(AssertUnwindSafe(|| {
        service.borrow_mut().respond(head, body, framing, output);
    }));
    if answered.is_err() {
        output.truncate(before);
    }
    answered.is_ok()
}

/// Sends `100 Continue` once (`continued`) to a client that waits for it
/// before sending a body that must be read before the answer (RFC 9110
/// §10.1.1); without it a strict client stalls until the header timeout. A
/// body that is only thrown away needs none: its request is answered at once.
fn continue_if_expected(head: &RequestHead<'_, '_>, continued: &mut bool, output: &mut Vec<u8>) {
    let expects = head.version == Version::Http11
        && head
            .header_values("expect")
            .any(|value| value.trim_ascii().eq_ignore_ascii_case(b"100-continue"));
    if expects && !*continued {
        output.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        *continued = true;
    }
}

/// Serves one accepted connection to its end.
pub(crate) async fn serve<S: Stream, V: Service>(
    tracked: Rc<Tracked<S>>,
    peer: IpAddr,
    shard: ShardParts<'_>,
    service: Rc<RefCell<V>>,
    limits: ConnectionLimits,
) {
    let mut connection = Connection {
        tracked: &tracked,
        peer,
        shard,
        service: &service,
        limits,
        input: shard.buffers.take(),
        output: shard.buffers.take(),
        consumed: 0,
        discard: 0,
        head_scan: HeadScan::default(),
        chunked: None,
        continued: false,
        request_started: None,
        timing: shard.metrics.is_some(),
        last_read: Instant::now(),
        received: [Instant::now(); MAX_PIPELINED],
        unwritten: 0,
    };
    connection.run().await;
    let Connection { input, output, .. } = connection;
    shard.buffers.give(input);
    shard.buffers.give(output);
}

impl<S: Stream, V: Service> Connection<'_, S, V> {
    async fn run(&mut self) {
        loop {
            let next = self.answer_buffered();
            if !self.output.is_empty() && !self.flush().await {
                return;
            }
            let room = match next {
                Next::Close => return self.linger().await,
                Next::Flush => continue,
                // Doubling up to one byte past the head limit, which parse_head refuses.
                Next::Read => {
                    (self.input.capacity() * 2).min(self.limits.head.max_header_bytes + 1)
                }
                Next::ReadBody { total } => total,
            };
            self.compact();
            if !self.read_more(room).await {
                return;
            }
        }
    }

    /// Answers every complete request in the buffer, in order.
    fn answer_buffered(&mut self) -> Next {
        loop {
            if self.discard > 0 {
                let available = (self.input.len() - self.consumed) as u64;
                let skipped = self.discard.min(available);
                self.discard -= skipped;
                // `skipped` is at most `available`, a usize.
                self.consumed += usize::try_from(skipped).unwrap_or(0);
                if self.discard > 0 {
                    return Next::Read;
                }
                // The discarded body belonged to an answered request.
                self.request_started = None;
            }
            if self.output.len() >= OUTPUT_HIGH_WATER || self.unwritten >= MAX_PIPELINED {
                return Next::Flush;
            }
            if let Some(chunked) = self.chunked.take() {
                match self.answer_chunked(chunked) {
                    Some(next) => return next,
                    None => continue,
                }
            }
            let pending = self.input.get(self.consumed..).unwrap_or_default();
            let blank = leading_empty_lines(pending);
            self.consumed += blank;
            let pending = pending.get(blank..).unwrap_or_default();
            if pending.is_empty() {
                return Next::Read;
            }
            let mut slots = HeaderSlots::default();
            let head = match self.head_scan.poll(pending, &mut slots, self.limits.head) {
                Ok(HeadStatus::Complete(head)) => head,
                Ok(HeadStatus::Partial) => return Next::Read,
                Err(error) => return self.refuse(error),
            };
            self.head_scan = HeadScan::default();

            let policy = self.service.borrow().body_policy(&head);
            let (max, buffered) = match policy {
                BodyPolicy::Discard { max } => (max, false),
                BodyPolicy::Buffer { max } => (max, true),
            };
            let (body, used, discard): (&[u8], usize, u64) = match head.body {
                BodyFraming::Length(length) if length > max => {
                    return self.refuse(ProtocolError::BodyTooLarge);
                }
                BodyFraming::Length(length) if buffered => {
                    // The policy bounded the length, and buffers are sized to it.
                    let length = usize::try_from(length).unwrap_or(usize::MAX);
                    let total = head.head_len.saturating_add(length);
                    match pending.get(head.head_len..total) {
                        Some(body) => (body, total, 0),
                        // Relative to `pending`, which `compact` moves to the front.
                        None => {
                            continue_if_expected(&head, &mut self.continued, &mut self.output);
                            return Next::ReadBody { total };
                        }
                    }
                }
                BodyFraming::Length(length) => (&[], head.head_len, length),
                BodyFraming::Chunked if !buffered => {
                    // The usual case: the whole body came with the head, and is
                    // answered without a second parse of the head.
                    let mut decoder = ChunkedDecoder::new(max);
                    match decoder.skip(pending.get(head.head_len..).unwrap_or_default()) {
                        Ok((read, true)) => (&[], head.head_len + read, 0),
                        Ok((_, false)) => {
                            continue_if_expected(&head, &mut self.continued, &mut self.output);
                            self.chunked = Some(Dechunking::new(head.head_len, max, false));
                            continue;
                        }
                        Err(error) => return self.refuse(error),
                    }
                }
                BodyFraming::Chunked => {
                    continue_if_expected(&head, &mut self.continued, &mut self.output);
                    self.chunked = Some(Dechunking::new(head.head_len, max, true));
                    continue;
                }
            };
            let framing = self.framing(&head);
            if !respond(self.service, &head, body, framing, &mut self.output) {
                return self.refuse(ProtocolError::Internal);
            }
            if let Some(next) = self.answered(used, discard, framing) {
                return next;
            }
        }
    }

    /// Decodes what arrived of a chunked body; once it is complete, answers
    /// its request (`None`: go on with what follows it).
    fn answer_chunked(&mut self, mut chunked: Dechunking) -> Option<Next> {
        let unanswered = self.input.get_mut(self.consumed..).unwrap_or_default();
        let progress = match chunked.decoder.decode_in_place(
            unanswered,
            chunked.kept,
            chunked.kept,
            chunked.buffered,
        ) {
            Ok(progress) => progress,
            Err(error) => return Some(self.refuse(error)),
        };
        if !progress.done {
            // Drop the framing and any data not kept: the bytes not decoded
            // yet (a partial size line) move down to follow what is kept.
            let end = unanswered.len();
            // write <= read <= end: decode_in_place only ever moves data down.
            unanswered.copy_within(progress.read..end, progress.write);
            self.input
                .truncate(self.consumed + progress.write + (end - progress.read));
            chunked.kept = progress.write;
            self.chunked = Some(chunked);
            return Some(Next::ReadBody {
                total: chunked.room(self.input.capacity()),
            });
        }
        let pending = self.input.get(self.consumed..).unwrap_or_default();
        let mut slots = HeaderSlots::default();
        let head = match parse_head(
            pending.get(..chunked.head_len).unwrap_or_default(),
            &mut slots,
            self.limits.head,
        ) {
            Ok(HeadStatus::Complete(head)) => head,
            // The same bytes were a complete head before; refused as a
            // client's error all the same, never as a 5xx.
            Ok(HeadStatus::Partial) | Err(_) => {
                return Some(self.refuse(ProtocolError::BadRequest("malformed request head")));
            }
        };
        let body = if chunked.buffered {
            pending
                .get(chunked.head_len..progress.write)
                .unwrap_or_default()
        } else {
            &[]
        };
        let framing = self.framing(&head);
        if !respond(self.service, &head, body, framing, &mut self.output) {
            return Some(self.refuse(ProtocolError::Internal));
        }
        self.answered(progress.read, 0, framing)
    }

    /// How the answer to `head` ends its exchange.
    fn framing(&self, head: &RequestHead<'_, '_>) -> Framing {
        Framing {
            close: !head.keep_alive || self.shard.draining.is_draining(),
            head_only: head.method == "HEAD",
            peer: self.peer,
        }
    }

    /// Books an answered request that took `used` bytes of the buffer and
    /// has `discard` body bytes still to come; `Some` if the connection closes.
    fn answered(&mut self, used: usize, discard: u64, framing: Framing) -> Option<Next> {
        if let Some(slot) = self.received.get_mut(self.unwritten) {
            *slot = self.last_read;
        }
        self.unwritten += 1;
        self.continued = false;
        self.discard = discard;
        self.consumed += used;
        self.request_started = None;
        framing.close.then_some(Next::Close)
    }

    /// Answers a request the connection cannot serve, counts it, and closes.
    fn refuse(&mut self, error: ProtocolError) -> Next {
        response::error(&mut self.output, error);
        if let Some(metrics) = self.shard.metrics {
            metrics.borrow_mut().count_protocol_error(error);
        }
        Next::Close
    }

    /// Closes from the server's side without losing the last response: closing
    /// a socket with unread input makes the kernel send a reset, which can
    /// destroy the response before the client reads it (a 413 sent while the
    /// body is still arriving). So: send FIN, then read and discard what the
    /// client still sends, briefly and boundedly, until it closes too.
    async fn linger(&mut self) {
        const LINGER: Duration = Duration::from_secs(2);
        const LINGER_BYTES: usize = 1 << 20;
        if self.tracked.stream.shutdown(Shutdown::Write).is_err() {
            return;
        }
        self.tracked.arm(
            Phase::Reading,
            Instant::now() + LINGER.min(self.limits.header_timeout),
        );
        let mut discarded = 0;
        while discarded < LINGER_BYTES && !self.tracked.expired() {
            let mut input = std::mem::take(&mut self.input);
            input.clear();
            input.reserve(BUFFER_FLOOR);
            let (result, input) = self.tracked.stream.read(input).await;
            self.input = input;
            match result {
                Ok(n) if n > 0 => discarded += n,
                _ => return,
            }
        }
    }

    /// Writes the answers; false if the connection is gone.
    async fn flush(&mut self) -> bool {
        let output = std::mem::take(&mut self.output);
        self.tracked
            .arm(Phase::Writing, Instant::now() + self.limits.idle_timeout);
        let (result, mut output) = self.tracked.stream.write_all(output).await;
        if self.unwritten > 0 {
            if result.is_ok()
                && self.timing
                && let Some(metrics) = self.shard.metrics
            {
                let mut metrics = metrics.borrow_mut();
                let written = Instant::now();
                for received in self.received.iter().take(self.unwritten) {
                    metrics.record_request(written.saturating_duration_since(*received));
                }
            }
            self.unwritten = 0;
        }
        output.clear();
        if output.capacity() > RETAINED_CAPACITY {
            output = Vec::with_capacity(BUFFER_FLOOR);
        }
        self.output = output;
        result.is_ok() && !self.tracked.expired()
    }

    /// Moves unanswered bytes to the front of the buffer.
    fn compact(&mut self) {
        if self.consumed > 0 {
            self.input.copy_within(self.consumed.., 0);
            self.input.truncate(self.input.len() - self.consumed);
            self.consumed = 0;
        }
        if self.input.capacity() > RETAINED_CAPACITY && self.input.len() < BUFFER_FLOOR {
            let mut smaller = Vec::with_capacity(BUFFER_FLOOR);
            smaller.extend_from_slice(&self.input);
            self.input = smaller;
        }
    }

    /// Reads until at least one more byte arrived; false when the connection
    /// should end (end of stream, error, timeout, drain).
    async fn read_more(&mut self, room: usize) -> bool {
        let now = Instant::now();
        let idle = self.input.is_empty() && self.discard == 0;
        if idle {
            self.request_started = None;
            let mut deadline = now + self.limits.idle_timeout;
            // During a drain a connection waits here for a request only if
            // it has had none since the drain began (answers then close):
            // one accepted during the drain, or one whose last answer went
            // out before. It gets until the end of the close spread.
            if let Some(drained_by) = self.shard.draining.idle_deadline() {
                deadline = deadline.min(drained_by);
            }
            self.tracked.arm(Phase::Idle, deadline);
        } else {
            let started = *self.request_started.get_or_insert(now);
            self.tracked
                .arm(Phase::Reading, started + self.limits.header_timeout);
        }
        if self.input.len() >= self.input.capacity() {
            // The buffer grows only when full, to what this request may need.
            let target = room.max(self.input.len() + 1);
            self.input.reserve_exact(target - self.input.len());
        }
        let input = std::mem::take(&mut self.input);
        let (result, input) = self.tracked.stream.read(input).await;
        self.input = input;
        if self.timing {
            self.last_read = Instant::now();
        }
        match result {
            Ok(n) if n > 0 && !self.tracked.expired() => true,
            _ => {
                // A body still being discarded belongs to a request already
                // answered: it gets no second response, only the close.
                if self.tracked.expired()
                    && self.tracked.phase() == Phase::Reading
                    && self.discard == 0
                {
                    // The read side is shut; the write side still reaches the
                    // client, within a write deadline of its own.
                    self.tracked.rearm_after_expiry();
                    self.output.clear();
                    let _ = self.refuse(ProtocolError::Timeout);
                    if self.flush().await {
                        let _ = self.tracked.stream.shutdown(Shutdown::Write);
                    }
                }
                false
            }
        }
    }
}
