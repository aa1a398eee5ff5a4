//! `jwtgate serve`: per-core shards answering ext_authz check requests.
//!
//! ```text
//!  main thread: binds one SO_REUSEPORT socket per shard, starts the shards,
//!               waits for SIGTERM, then drains
//!  shard i (pinned to core i): own runtime (io_uring or epoll), own listeners,
//!               accept → read → parse → verify → respond → write, own sweeper
//!  admin thread: the admin listener (/healthz), epoll
//! ```
//!
//! The kernel spreads connections over the shards' sockets; each connection
//! lives and dies on one shard. The verifier (keys and policy) is immutable
//! and shared read-only; everything else is shard-local.
//!
//! Files: `transport` (the two runtimes behind one interface), `shard`
//! (runtime, accept loop, sweeper, drain), `conn` (one connection's loop),
//! `tracking` (phases, deadlines, buffer pool). What requests are answered
//! with lives in [`crate::authz`] and [`crate::admin`].

mod conn;
mod shard;
mod tracking;
mod transport;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

pub use conn::ConnectionLimits;

use crate::Verifier;
use crate::admin::Admin;
use crate::authz::{Authorizer, AuthzOptions, BatchVerifier, Denials};
use crate::http::Service;
use shard::{Endpoint, ShardSettings};

/// Which I/O runtime the shards use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoMode {
    /// io_uring, or fail with the reason it is unavailable.
    Uring,
    /// epoll (tokio).
    Epoll,
    /// io_uring if the kernel and sandbox allow it, else epoll with a warning.
    Auto,
}

/// The runtime the shards actually run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActiveIo {
    /// io_uring; `tuned` when the ring runs with COOP_TASKRUN and SINGLE_ISSUER
    /// (Linux 6.0 and later).
    Uring {
        /// Whether the single-threaded ring flags are in effect.
        tuned: bool,
    },
    /// epoll.
    Epoll,
}

impl fmt::Display for ActiveIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ActiveIo::Uring { .. } => "uring",
            ActiveIo::Epoll => "epoll",
        })
    }
}

/// Everything `serve` needs besides the verifier. Defaults are documented per field.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The data port (check requests).
    pub listen: SocketAddr,
    /// The batch port (`POST /v1/verify`); off by default. It is a port of its
    /// own because on the data port every path is a check request (Envoy sends
    /// the client's own path), so a client could otherwise reach it.
    pub verify_listen: Option<SocketAddr>,
    /// The admin port (`/healthz`); default 127.0.0.1:9901, `None` for none.
    pub admin_listen: Option<SocketAddr>,
    /// Shard threads; 0 (the default) means one per available core.
    pub shards: usize,
    /// Runtime choice; default [`IoMode::Auto`].
    pub io: IoMode,
    /// Head limits and timeouts.
    pub limits: ConnectionLimits,
    /// Open connections per shard before accepting pauses; default 10,000.
    pub max_connections: usize,
    /// How long a drain waits for in-flight requests; default 10 s.
    pub drain_timeout: Duration,
    /// The ext_authz answer.
    pub authz: AuthzOptions,
    /// Longest `POST /v1/verify` body; default 1 MiB.
    pub max_verify_body: u64,
}

impl Default for ServeOptions {
    fn default() -> ServeOptions {
        ServeOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            verify_listen: None,
            admin_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9901))),
            shards: 0,
            io: IoMode::Auto,
            limits: ConnectionLimits::default(),
            max_connections: 10_000,
            drain_timeout: Duration::from_secs(10),
            authz: AuthzOptions::default(),
            max_verify_body: 1024 * 1024,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: io::Error,
    },
    /// `--io uring` was asked for and io_uring is unavailable.
    #[error("io_uring is unavailable: {0}")]
    UringUnavailable(io::Error),
    /// A shard failed to start.
    #[error("shard {shard} failed to start: {source}")]
    Shard {
        /// Shard number.
        shard: usize,
        /// The cause.
        source: io::Error,
    },
    /// A thread could not be spawned.
    #[error("cannot start a thread: {0}")]
    Thread(io::Error),
}

/// Writes a server warning to stderr. (Structured logging arrives with the
/// observability work; until then one line per event.)
#[allow(clippy::print_stderr)]
pub(crate) fn warn(message: fmt::Arguments<'_>) {
    eprintln!("jwtgate: warning: {message}");
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    listen: SocketAddr,
    verify_listen: Option<SocketAddr>,
    admin_listen: Option<SocketAddr>,
    io: ActiveIo,
    uring_fallback: Option<String>,
    shards: Vec<(oneshot::Sender<()>, JoinHandle<()>)>,
    admin: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
    draining: Arc<AtomicBool>,
}

/// Binds `count` sockets to `addr` with SO_REUSEPORT (the first one picks the
/// port when `addr` has port 0, the others join it).
fn bind_group(addr: SocketAddr, count: usize) -> Result<Vec<std::net::TcpListener>, ServeError> {
    let mut bound = Vec::with_capacity(count);
    let mut addr_now = addr;
    for _ in 0..count {
        let listener = bind_one(addr_now).map_err(|source| ServeError::Bind { addr, source })?;
        addr_now = listener
            .local_addr()
            .map_err(|source| ServeError::Bind { addr, source })?;
        bound.push(listener);
    }
    Ok(bound)
}

fn bind_one(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

fn local_addr(listener: Option<&std::net::TcpListener>, fallback: SocketAddr) -> SocketAddr {
    listener
        .and_then(|listener| listener.local_addr().ok())
        .unwrap_or(fallback)
}

type Started = crossbeam_channel::Sender<(usize, io::Result<()>)>;

fn spawn_shard<A: Service + Send + 'static, B: Service + Send + 'static>(
    index: usize,
    name: String,
    core: Option<core_affinity::CoreId>,
    io: ActiveIo,
    endpoints: (Endpoint<A>, Option<Endpoint<B>>),
    settings: ShardSettings,
    started: Started,
) -> Result<(oneshot::Sender<()>, JoinHandle<()>), ServeError> {
    let (stop, stopped) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            if let Some(core) = core {
                core_affinity::set_for_current(core);
            }
            let report = |result| {
                let _ = started.send((index, result));
            };
            match io {
                ActiveIo::Uring { tuned } => {
                    shard::run_uring(tuned, endpoints, settings, stopped, report);
                }
                ActiveIo::Epoll => shard::run_epoll(endpoints, settings, stopped, report),
            }
        })
        .map_err(ServeError::Thread)?;
    Ok((stop, thread))
}

impl Server {
    /// Binds every socket, starts the shards and the admin thread, and returns
    /// once all of them accept connections.
    pub fn start(verifier: Arc<Verifier>, options: &ServeOptions) -> Result<Server, ServeError> {
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        let shard_count = match options.shards {
            0 => cores.len().max(1),
            n => n,
        };
        let (io, uring_fallback) = match options.io {
            IoMode::Epoll => (ActiveIo::Epoll, None),
            IoMode::Uring => match shard::probe_uring() {
                Ok(tuned) => (ActiveIo::Uring { tuned }, None),
                Err(error) => return Err(ServeError::UringUnavailable(error)),
            },
            IoMode::Auto => match shard::probe_uring() {
                Ok(tuned) => (ActiveIo::Uring { tuned }, None),
                Err(error) => (ActiveIo::Epoll, Some(error.to_string())),
            },
        };
        let data = bind_group(options.listen, shard_count)?;
        let listen = local_addr(data.first(), options.listen);
        let mut batch: Vec<Option<std::net::TcpListener>> = match options.verify_listen {
            Some(addr) => bind_group(addr, shard_count)?
                .into_iter()
                .map(Some)
                .collect(),
            None => (0..shard_count).map(|_| None).collect(),
        };
        let verify_listen = options
            .verify_listen
            .map(|addr| local_addr(batch.first().and_then(Option::as_ref), addr));
        let admin_socket = options
            .admin_listen
            .map(|addr| bind_group(addr, 1).map(|mut group| (group.pop(), addr)))
            .transpose()?;
        let admin_listen = admin_socket
            .as_ref()
            .map(|(listener, addr)| local_addr(listener.as_ref(), *addr));

        let settings = ShardSettings {
            limits: options.limits,
            max_connections: options.max_connections.max(1),
            drain_timeout: options.drain_timeout,
        };
        let denials = Arc::new(Denials::default());
        let (started, reports) = crossbeam_channel::unbounded();
        let mut shards = Vec::with_capacity(shard_count);
        for (index, listener) in data.into_iter().enumerate() {
            let authz = Endpoint {
                listener,
                service: Authorizer::new(
                    Arc::clone(&verifier),
                    options.authz,
                    Arc::clone(&denials),
                ),
            };
            let batch_endpoint =
                batch
                    .get_mut(index)
                    .and_then(Option::take)
                    .map(|listener| Endpoint {
                        listener,
                        service: BatchVerifier::new(
                            Arc::clone(&verifier),
                            options.authz.clock,
                            options.max_verify_body,
                        ),
                    });
            let core = cores.get(index % cores.len().max(1)).copied();
            shards.push(spawn_shard(
                index,
                format!("jwtgate-shard-{index}"),
                core,
                io,
                (authz, batch_endpoint),
                settings,
                started.clone(),
            )?);
        }
        let draining = Arc::new(AtomicBool::new(false));
        let admin = match admin_socket {
            Some((Some(listener), _)) => Some(spawn_shard(
                shard_count,
                "jwtgate-admin".into(),
                None,
                ActiveIo::Epoll,
                (
                    Endpoint {
                        listener,
                        service: Admin::new(Arc::clone(&draining)),
                    },
                    None::<Endpoint<Admin>>,
                ),
                ShardSettings {
                    max_connections: 64,
                    ..settings
                },
                started.clone(),
            )?),
            _ => None,
        };
        drop(started);
        let server = Server {
            listen,
            verify_listen,
            admin_listen,
            io,
            uring_fallback,
            shards,
            admin,
            draining,
        };
        let expected = shard_count + usize::from(server.admin.is_some());
        for _ in 0..expected {
            match reports.recv() {
                Ok((_, Ok(()))) => {}
                Ok((shard, Err(source))) => {
                    server.shutdown();
                    return Err(ServeError::Shard { shard, source });
                }
                Err(_) => {
                    server.shutdown();
                    return Err(ServeError::Shard {
                        shard: 0,
                        source: io::Error::other("a shard thread ended during start-up"),
                    });
                }
            }
        }
        Ok(server)
    }

    /// The data port's address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.listen
    }

    /// The batch port's address, if one is configured.
    pub fn verify_addr(&self) -> Option<SocketAddr> {
        self.verify_listen
    }

    /// The admin port's address, if one is configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_listen
    }

    /// The runtime the shards run on.
    pub fn io(&self) -> ActiveIo {
        self.io
    }

    /// Why `--io auto` fell back to epoll, if it did.
    pub fn uring_fallback(&self) -> Option<&str> {
        self.uring_fallback.as_deref()
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Graceful shutdown: health checks turn 503, listeners stop accepting,
    /// in-flight requests are answered (with `connection: close`), idle
    /// connections close; returns when every shard has finished or the drain
    /// timeout has cut the stragglers off.
    pub fn shutdown(self) {
        self.draining.store(true, Ordering::Relaxed);
        let mut threads = Vec::with_capacity(self.shards.len());
        for (stop, thread) in self.shards {
            let _ = stop.send(());
            threads.push(thread);
        }
        for thread in threads {
            if thread.join().is_err() {
                warn(format_args!("a shard thread panicked during shutdown"));
            }
        }
        if let Some((stop, thread)) = self.admin {
            let _ = stop.send(());
            let _ = thread.join();
        }
    }
}
