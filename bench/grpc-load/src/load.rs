//! The load: N HTTP/2 connections (prior knowledge, cleartext), M streams
//! kept busy on each, every stream sending the next pre-encoded body
//! (`bodies`) as an `Authorization/Check` call and checking its answer
//! (`verdict`) before it sends again. Everything runs on one thread (a
//! current-thread runtime and its local tasks), so the generator stays on
//! the CPU it is pinned to and shares its state through `Cell`s.
//!
//! The first wrong answer, failed stream or timeout stops every stream: the
//! run is not the benchmark asked for, and its figures are not reported as
//! if it were.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use hdrhistogram::Histogram;
use http::header::{CONTENT_TYPE, TE};
use http::{HeaderValue, Method, Request, StatusCode, Uri};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::verdict::{self, Expected, Mismatch};

/// The ext_authz method.
const CHECK_PATH: &str = "/envoy.service.auth.v3.Authorization/Check";

/// When the streams stop starting calls.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Until {
    /// After this long (calls in flight then are finished and counted).
    Elapsed(Duration),
    /// After this many calls.
    Calls(u64),
}

/// What a run is asked to do.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub(crate) addr: SocketAddr,
    pub(crate) connections: usize,
    pub(crate) streams: usize,
    pub(crate) until: Until,
    /// Longest wait for one answer (as wrk's --timeout).
    pub(crate) call_timeout: Duration,
    pub(crate) expected: Expected,
}

/// Why a call failed.
#[derive(Debug)]
pub(crate) enum Failure {
    Connect(std::io::Error),
    Http2(h2::Error),
    HttpStatus(StatusCode),
    /// A gRPC status other than OK, with its message (trailers, or headers
    /// of a trailers-only response).
    GrpcStatus {
        status: String,
        message: String,
    },
    NoGrpcStatus,
    Answer(Mismatch),
    Timeout(Duration),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Connect(error) => write!(f, "connecting: {error}"),
            Failure::Http2(error) => write!(f, "HTTP/2: {error}"),
            Failure::HttpStatus(status) => write!(f, "HTTP status {status}, expected 200"),
            Failure::GrpcStatus { status, message } => {
                write!(f, "grpc-status {status} ({message}), expected 0")
            }
            Failure::NoGrpcStatus => f.write_str("the call ended without a grpc-status"),
            Failure::Answer(mismatch) => mismatch.fmt(f),
            Failure::Timeout(after) => write!(f, "no answer within {after:?}"),
        }
    }
}

impl From<h2::Error> for Failure {
    fn from(error: h2::Error) -> Self {
        Failure::Http2(error)
    }
}

/// What a run measured.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// Calls answered as expected.
    pub(crate) answered: u64,
    /// From the first call to the last answer.
    pub(crate) elapsed: Duration,
    /// Latency of the answered calls, in microseconds.
    pub(crate) latency: Histogram<u64>,
    pub(crate) failed: u64,
    pub(crate) first_failure: Option<Failure>,
}

/// The state every stream shares.
struct Shared {
    bodies: Vec<Bytes>,
    /// The next body to send: one rotation over the file for the whole
    /// generator, as rotate.lua keeps one for wrk's connections.
    next_body: Cell<usize>,
    uri: Uri,
    plan: Plan,
    /// Set once the streams are to start no more calls.
    stopped: Cell<bool>,
    started: Cell<u64>,
    deadline: Cell<Option<Instant>>,
    answered: Cell<u64>,
    failed: Cell<u64>,
    first_failure: RefCell<Option<Failure>>,
    latency: RefCell<Histogram<u64>>,
}

impl Shared {
    /// The body of the next call, or `None` once the run is over.
    fn claim(&self) -> Option<Bytes> {
        if self.stopped.get() {
            return None;
        }
        let over = match self.plan.until {
            Until::Elapsed(_) => self
                .deadline
                .get()
                .is_some_and(|deadline| Instant::now() >= deadline),
            Until::Calls(calls) => self.started.get() >= calls,
        };
        if over {
            self.stopped.set(true);
            return None;
        }
        self.started.set(self.started.get() + 1);
        let index = self.next_body.get();
        self.next_body.set((index + 1) % self.bodies.len());
        self.bodies.get(index).cloned()
    }

    fn answered(&self, latency: Duration) {
        self.answered.set(self.answered.get() + 1);
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency.borrow_mut().saturating_record(micros.max(1));
    }

    fn failed(&self, failure: Failure) {
        self.failed.set(self.failed.get() + 1);
        self.stopped.set(true);
        self.first_failure.borrow_mut().get_or_insert(failure);
    }

    fn request(&self) -> Request<()> {
        let mut request = Request::new(());
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uri.clone();
        let headers = request.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert(TE, HeaderValue::from_static("trailers"));
        request
    }
}

/// Runs `plan` with `bodies` (at least one) on the current thread's local
/// task set: connects, then keeps every stream busy until the plan ends.
pub(crate) async fn run(plan: Plan, bodies: Vec<Bytes>) -> Result<Outcome, String> {
    if bodies.is_empty() {
        return Err("no request bodies".to_owned());
    }
    let uri = Uri::builder()
        .scheme("http")
        .authority(plan.addr.to_string())
        .path_and_query(CHECK_PATH)
        .build()
        .map_err(|error| format!("the call's URI: {error}"))?;
    // Microseconds, up to a minute, three significant digits (as wrk).
    let latency = Histogram::new_with_bounds(1, 60_000_000, 3)
        .map_err(|error| format!("latency histogram: {error}"))?;
    let shared = Rc::new(Shared {
        bodies,
        next_body: Cell::new(0),
        uri,
        plan,
        stopped: Cell::new(false),
        started: Cell::new(0),
        deadline: Cell::new(None),
        answered: Cell::new(0),
        failed: Cell::new(0),
        first_failure: RefCell::new(None),
        latency: RefCell::new(latency),
    });

    // Every connection is up before the clock starts.
    let mut senders = Vec::with_capacity(plan.connections);
    for _ in 0..plan.connections {
        let connecting = tokio::time::timeout(plan.call_timeout, connect(plan.addr)).await;
        match connecting {
            Ok(Ok(sender)) => senders.push(sender),
            Ok(Err(failure)) => return Err(format!("{}: {failure}", plan.addr)),
            Err(_) => {
                return Err(format!(
                    "{}: {}",
                    plan.addr,
                    Failure::Timeout(plan.call_timeout)
                ));
            }
        }
    }

    let start = Instant::now();
    if let Until::Elapsed(duration) = plan.until {
        shared.deadline.set(Some(start + duration));
    }
    let mut streams = tokio::task::JoinSet::new();
    for sender in &senders {
        for _ in 0..plan.streams {
            streams.spawn_local(calls(sender.clone(), Rc::clone(&shared)));
        }
    }
    // The streams' senders are the last handles: each connection ends once
    // its streams have.
    drop(senders);
    while streams.join_next().await.is_some() {}
    let elapsed = start.elapsed();

    // Every stream has ended, and with it every other handle on the state.
    let shared = Rc::try_unwrap(shared).map_err(|_| "a stream outlived the run".to_owned())?;
    Ok(Outcome {
        answered: shared.answered.get(),
        elapsed,
        latency: shared.latency.into_inner(),
        failed: shared.failed.get(),
        first_failure: shared.first_failure.into_inner(),
    })
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Bytes>, Failure> {
    let tcp = TcpStream::connect(addr).await.map_err(Failure::Connect)?;
    // Calls are small request-response exchanges, as on the server's side.
    tcp.set_nodelay(true).map_err(Failure::Connect)?;
    let (sender, connection) = h2::client::handshake(tcp).await?;
    // The connection's frames are read and written by this task; a failure
    // there fails the streams' calls, which report it.
    tokio::task::spawn_local(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// One stream: calls one after the other until the run is over.
async fn calls(mut sender: SendRequest<Bytes>, shared: Rc<Shared>) {
    // Reused for the answers' bytes, which usually arrive in one DATA frame.
    let mut answer = Vec::with_capacity(1024);
    while let Some(body) = shared.claim() {
        let started = Instant::now();
        let timeout = shared.plan.call_timeout;
        let call = call(&mut sender, &shared, body, &mut answer);
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(())) => shared.answered(started.elapsed()),
            Ok(Err(failure)) => shared.failed(failure),
            Err(_) => shared.failed(Failure::Timeout(timeout)),
        }
    }
}

/// One `Authorization/Check` call and the check of its answer.
async fn call(
    sender: &mut SendRequest<Bytes>,
    shared: &Shared,
    body: Bytes,
    answer: &mut Vec<u8>,
) -> Result<(), Failure> {
    // Waits while the connection has as many streams open as the server allows.
    std::future::poll_fn(|cx| sender.poll_ready(cx)).await?;
    let (response, mut request_body) = sender.send_request(shared.request(), false)?;
    request_body.send_data(body, true)?;
    let response = response.await?;
    if response.status() != StatusCode::OK {
        return Err(Failure::HttpStatus(response.status()));
    }
    // A trailers-only response (an error, no message) has its status in the headers.
    if let Some(status) = grpc_failure(response.headers()) {
        return Err(status);
    }
    let mut response_body = response.into_body();
    answer.clear();
    while let Some(chunk) = response_body.data().await {
        let chunk = chunk?;
        answer.extend_from_slice(&chunk);
        response_body.flow_control().release_capacity(chunk.len())?;
    }
    let trailers = response_body
        .trailers()
        .await?
        .ok_or(Failure::NoGrpcStatus)?;
    match grpc_failure(&trailers) {
        Some(failure) => return Err(failure),
        None if !trailers.contains_key("grpc-status") => return Err(Failure::NoGrpcStatus),
        None => {}
    }
    verdict::check(answer, shared.plan.expected).map_err(Failure::Answer)
}

/// The failure a `grpc-status` other than 0 in `headers` reports.
fn grpc_failure(headers: &http::HeaderMap) -> Option<Failure> {
    let status = headers.get("grpc-status")?;
    if status == "0" {
        return None;
    }
    let text = |value: Option<&HeaderValue>| {
        String::from_utf8_lossy(value.map_or(&b""[..], HeaderValue::as_bytes)).into_owned()
    };
    Some(Failure::GrpcStatus {
        status: text(Some(status)),
        message: text(headers.get("grpc-message")),
    })
}
