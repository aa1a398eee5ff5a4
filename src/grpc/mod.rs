//! The gRPC face: Envoy's ext_authz protocol
//! (`envoy.service.auth.v3.Authorization/Check`) and gRPC health checking
//! (`grpc.health.v1.Health`), over HTTP/2 cleartext, on every shard.
//!
//! ```text
//!  shard i: HTTP face (its io_uring or epoll listener)  ─┐
//!           gRPC face (its SO_REUSEPORT listener, epoll) ─┴─▶ the shard's Authorizer
//! ```
//!
//! Each shard serves the gRPC listener on its own thread and runtime, beside
//! its HTTP listener, and decides gRPC checks with the same `Authorizer`: one
//! policy snapshot, one verified-token cache, one set of counters per shard,
//! whichever face a check comes in by, and no hop to another thread. hyper's
//! HTTP/2 server runs each connection on the shard with a local executor;
//! tonic frames the calls (length prefixes, size limits, compression, status
//! trailers). The messages themselves are read in place and written
//! directly, not through prost's owned types, which cost more than the rest
//! of a cached check. tonic's own server is not used: it spawns connections with
//! `tokio::spawn` and so needs `Send` services, and the shard's authorizer is
//! deliberately not `Send` (its cache and scratch space are the shard's).
//!
//! Files: `check` (one check: the proxy's statement in, the decision, the
//! `CheckResponse` out), `request` (a `CheckRequest` read in place),
//! `response` (the decision's HTTP answer written as a `CheckResponse`),
//! `wire` (protobuf's wire format), `codec` (hands messages to tonic and
//! back), `health` (the health service), `linger` (closing without a reset).
//!
//! Draining: when the shard is told to stop, the listener closes, every
//! connection is sent GOAWAY (hyper's graceful shutdown) and finishes the
//! checks it has in flight, and what is still open when the drain timeout
//! ends is cut off. A connection that served calls closes lingering
//! (`linger`), so that its last answers and its GOAWAY reach the client.

mod check;
mod codec;
mod health;
mod linger;
mod request;
mod response;
#[cfg(test)]
mod tests;
mod wire;

use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::watch;
use tokio::time::Instant;
use tonic::codegen::Service as _;
use tonic_health::pb::health_server::HealthServer;

use crate::authz::Authorizer;
use crate::diagnostics::warn;

pub(crate) use health::Readiness;

/// The one method of the ext_authz service.
pub const CHECK_PATH: &str = "/envoy.service.auth.v3.Authorization/Check";

/// The health service's path prefix.
const HEALTH_PREFIX: &str = "/grpc.health.v1.Health/";

/// Limits of the gRPC face, resolved by [`crate::settings`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcOptions {
    /// Where the gRPC face listens (one SO_REUSEPORT socket per shard).
    pub listen: SocketAddr,
    /// Largest `CheckRequest`, in bytes, once decompressed; larger ones are
    /// refused with `OUT_OF_RANGE`.
    pub max_message_bytes: usize,
    /// Checks in flight on one connection (HTTP/2 `MAX_CONCURRENT_STREAMS`).
    pub max_concurrent_streams: u32,
    /// How often an HTTP/2 PING checks that a connection's peer is alive.
    pub keepalive_interval: Duration,
    /// How long a PING may go unanswered before the connection is closed.
    pub keepalive_timeout: Duration,
    /// A connection that starts no call for this long is closed (GOAWAY).
    pub idle_timeout: Duration,
}

/// Not a stable API: one shard's gRPC check without the transport, for the
/// fuzz target: a message's bytes in, the encoded `CheckResponse` (or the
/// gRPC error) out, as the face answers them.
#[doc(hidden)]
#[derive(Debug)]
pub struct Checker {
    authorizer: Authorizer,
}

impl Checker {
    /// A checker over `snapshot` whose clock stands at `now`.
    pub fn new(snapshot: crate::snapshot::Snapshot, now: crate::UnixTime) -> Checker {
        let options = crate::authz::AuthzOptions {
            clock: crate::authz::Clock::Fixed(now),
            ..crate::server::ServeOptions::default().authz
        };
        let shared = std::sync::Arc::new(arc_swap::ArcSwap::from_pointee(snapshot));
        Checker {
            authorizer: Authorizer::new(
                shared,
                options,
                std::sync::Arc::new(crate::authz::Denials::default()),
            ),
        }
    }

    /// Reads `message` and checks it as from `peer`.
    pub fn check_message(
        &mut self,
        message: &[u8],
        peer: std::net::IpAddr,
    ) -> Result<Vec<u8>, tonic::Status> {
        check::check_message(&mut self.authorizer, message, peer)
    }
}

/// What every gRPC connection of a shard shares.
#[derive(Debug)]
struct Shared {
    authorizer: Rc<RefCell<Authorizer>>,
    readiness: Readiness,
    options: GrpcOptions,
    call_timeout: Duration,
}

/// The gRPC face of one shard, ready to start on the shard's thread.
#[derive(Debug)]
pub(crate) struct ShardFace {
    /// The shard's bound, listening, non-blocking socket.
    pub(crate) listener: std::net::TcpListener,
    pub(crate) options: GrpcOptions,
    pub(crate) readiness: Readiness,
    /// Open gRPC connections before accepting pauses.
    pub(crate) max_connections: usize,
    /// How long a drain waits for in-flight checks.
    pub(crate) drain_timeout: Duration,
    /// How long one call may take from its headers to its answer, and a new
    /// connection to its first call (the HTTP face's `header_timeout`).
    pub(crate) call_timeout: Duration,
}

/// The task that serves a shard's gRPC face until it has drained.
pub(crate) type FaceTask = Pin<Box<dyn Future<Output = ()>>>;

impl ShardFace {
    /// Takes the listener over on the shard's runtime and returns the task
    /// serving it, which drains once `draining` turns true.
    pub(crate) fn start(
        self,
        authorizer: Rc<RefCell<Authorizer>>,
        draining: watch::Receiver<bool>,
    ) -> io::Result<FaceTask> {
        let listener = tokio::net::TcpListener::from_std(self.listener)?;
        let shared = Rc::new(Shared {
            authorizer,
            readiness: self.readiness,
            options: self.options,
            call_timeout: self.call_timeout,
        });
        Ok(Box::pin(accept_loop(
            listener,
            shared,
            self.max_connections,
            self.drain_timeout,
            draining,
        )))
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    shared: Rc<Shared>,
    max_connections: usize,
    drain_timeout: Duration,
    draining: watch::Receiver<bool>,
) {
    let mut connections = tokio::task::JoinSet::new();
    let mut stop = draining.clone();
    loop {
        // At the limit, connections wait in the kernel's backlog.
        let room = connections.len() < max_connections;
        tokio::select! {
            accepted = listener.accept(), if room => match accepted {
                Ok((stream, peer)) => {
                    // Checks are small request-response exchanges.
                    let _ = stream.set_nodelay(true);
                    let shared = Rc::clone(&shared);
                    connections.spawn_local(serve_connection(stream, peer, shared, draining.clone()));
                }
                Err(error) => {
                    warn(format_args!("gRPC accept failed: {error}"));
                    // Out of file descriptors or memory: give closing connections a moment.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = stop.wait_for(|&draining| draining) => break,
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(drain_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.shutdown().await;
    }
}

/// Runs the futures hyper spawns (a connection's streams) on the shard.
#[derive(Debug, Clone, Copy)]
struct ShardExecutor;

impl<F: Future + 'static> hyper::rt::Executor<F> for ShardExecutor {
    fn execute(&self, future: F) {
        tokio::task::spawn_local(future);
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    shared: Rc<Shared>,
    draining: watch::Receiver<bool>,
) {
    let options = shared.options;
    let call_timeout = shared.call_timeout;
    let calls = Rc::new(Cell::new(0u64));
    let service = Calls {
        shared,
        peer,
        started: Rc::clone(&calls),
    };
    let mut builder = hyper::server::conn::http2::Builder::new(ShardExecutor);
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(options.max_concurrent_streams)
        .keep_alive_interval(options.keepalive_interval)
        .keep_alive_timeout(options.keepalive_timeout);
    let home = linger::Home::default();
    let connection =
        builder.serve_connection(TokioIo::new(linger::Lent::new(stream, &home)), service);
    run_connection(
        connection,
        &calls,
        call_timeout,
        options.idle_timeout,
        draining,
    )
    .await;
    // A connection that never started a call (silent, or stalled in the
    // handshake) has nothing whose delivery a lingering close protects.
    if calls.get() > 0
        && let Some(stream) = home.take()
    {
        linger::close(stream, call_timeout).await;
    }
}

/// Serves the connection's calls until it ends, goes idle or drains; the
/// connection (and with it the socket hyper was lent) is dropped on return.
async fn run_connection(
    connection: hyper::server::conn::http2::Connection<TokioIo<linger::Lent>, Calls, ShardExecutor>,
    calls: &Cell<u64>,
    call_timeout: Duration,
    idle_timeout: Duration,
    mut draining: watch::Receiver<bool>,
) {
    tokio::pin!(connection);
    let mut seen = calls.get();
    // A connection gets as long to start its first call as a call gets to
    // finish: one that never does (silent, or stalled in the handshake)
    // must not hold a connection slot for the idle timeout.
    let mut idle_at = Instant::now() + call_timeout.min(idle_timeout);
    loop {
        tokio::select! {
            _ = connection.as_mut() => return,
            _ = draining.wait_for(|&draining| draining) => break,
            () = tokio::time::sleep_until(idle_at) => {
                if calls.get() == seen {
                    break;
                }
                seen = calls.get();
                idle_at = Instant::now() + idle_timeout;
            }
        }
    }
    // A connection that never started a call (silent, or stalled in the
    // handshake, where a GOAWAY cannot go) has nothing to finish: close it.
    if calls.get() == 0 {
        return;
    }
    // GOAWAY: no new calls; the ones in flight are answered, each within
    // the call timeout.
    connection.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(call_timeout, connection).await;
}

/// The calls of one connection.
#[derive(Debug, Clone)]
struct Calls {
    shared: Rc<Shared>,
    peer: SocketAddr,
    /// Calls started on the connection (for its idle timeout).
    started: Rc<Cell<u64>>,
}

type CallFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<tonic::body::Body>, Infallible>>>>;

impl hyper::service::Service<http::Request<Incoming>> for Calls {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = CallFuture;

    fn call(&self, request: http::Request<Incoming>) -> CallFuture {
        self.started.set(self.started.get() + 1);
        let path = request.uri().path();
        let shared = Rc::clone(&self.shared);
        if path == CHECK_PATH {
            let checker = check::Checker {
                authorizer: Rc::clone(&shared.authorizer),
                peer: self.peer.ip(),
            };
            let max = shared.options.max_message_bytes;
            Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(codec::CheckCodec)
                    .apply_max_message_size_config(Some(max), None);
                // A call whose message never completes is ended, and what it
                // buffered freed: dropping it resets the stream.
                let response =
                    match tokio::time::timeout(shared.call_timeout, grpc.unary(checker, request))
                        .await
                    {
                        Ok(response) => response,
                        Err(_) => tonic::Status::deadline_exceeded(
                            "the call did not complete within the server's header_timeout",
                        )
                        .into_http(),
                    };
                // A decision always comes with status 0; anything else in
                // the headers (a trailers-only answer) is an error tonic or
                // the check answered instead of one.
                if let Some(code) = error_code(&response) {
                    shared.authorizer.borrow().count_grpc_error(code);
                }
                Ok(response)
            })
        } else if path.starts_with(HEALTH_PREFIX) {
            let mut health = HealthServer::new(shared.readiness.clone());
            Box::pin(async move { health.call(request).await })
        } else {
            shared
                .authorizer
                .borrow()
                .count_grpc_error(tonic::Code::Unimplemented as i32);
            let status = tonic::Status::unimplemented(
                "jwtgate serves envoy.service.auth.v3.Authorization/Check and grpc.health.v1.Health",
            );
            Box::pin(std::future::ready(Ok(status.into_http())))
        }
    }
}

/// The error status of a trailers-only answer, if it is one.
fn error_code(response: &http::Response<tonic::body::Body>) -> Option<i32> {
    let code = response.headers().get("grpc-status")?.to_str().ok()?;
    code.parse().ok().filter(|&code| code != 0)
}
