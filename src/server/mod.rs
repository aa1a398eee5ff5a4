//! `jwtgate serve`: per-core shards answering ext_authz check requests.
//!
//! ```text
//!  main thread: binds one SO_REUSEPORT socket per shard (after checking that
//!               no other process listens there), starts the shards,
//!               waits for SIGTERM, then drains
//!  shard i (pinned to core i): own runtime (io_uring or epoll), own listeners,
//!               accept → read → parse → verify → respond → write, own sweeper
//!  verify threads (with --verify-listen): POST /v1/verify, on threads of
//!               their own so that a large batch never stalls check requests
//!  admin thread: the admin listener (/healthz), epoll
//! ```
//!
//! The kernel spreads connections over the shards' sockets; each connection
//! lives and dies on one shard. The verifier (keys and policy) is immutable
//! and shared read-only; everything else is shard-local.
//!
//! Files: `transport` (the two runtimes behind one interface), `shard`
//! (runtime, accept loop, sweeper, drain, the shard's metrics), `conn` (one
//! connection's loop, which sees of its shard only the parts lent to it),
//! `tracking` (phases, deadlines, buffer pool, draining flag), `heartbeat`
//! (the pacemaker thread and each shard's probes, which measure how long its
//! work waits), `descriptors` (the open-file limit), `ports` (binding, so
//! that a port another process holds is an error, not a silent share). Imports point
//! from `shard` down to `conn`, `tracking` and `transport`, never back. What
//! requests are answered with lives in [`crate::authz`] and `crate::admin`.

mod conn;
mod descriptors;
mod heartbeat;
mod ports;
mod shard;
mod tracking;
mod transport;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

/// The request-head limits of [`ConnectionLimits::head`].
pub use crate::http::request::Limits;
pub use conn::ConnectionLimits;
pub use ports::Sharing;

use crate::access_log::{AccessLog, AccessLogOptions, ShardLog};
use crate::admin::{Admin, Observed};
use crate::authz::{Authorizer, AuthzOptions, BatchLimits, BatchVerifier, Denials};
use crate::diagnostics::warn;
use crate::grpc::{GrpcOptions, Readiness, ShardFace};
use crate::http::Service;
use crate::metrics::exposition::summary_line;
use crate::metrics::{COLLECT_WAIT, Hub, ShardMetrics};
use crate::queue_delay::QueueDelay;
use crate::snapshot::SharedSnapshot;
use crate::status::Status;
use heartbeat::Pacemaker;
use ports::bind_group;
use shard::{Endpoint, ListenerGroup, ShardSettings, SharedMetrics};

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

/// Everything `serve` needs besides the policy: server settings resolved by
/// [`crate::settings::ServerLayer::resolve`], which declares every default.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The data port (check requests).
    pub listen: SocketAddr,
    /// The batch port (`POST /v1/verify`), if any. It is a port of its
    /// own because on the data port every path is a check request (Envoy sends
    /// the client's own path), so a client could otherwise reach it.
    pub verify_listen: Option<SocketAddr>,
    /// The admin port (`/healthz`), if any.
    pub admin_listen: Option<SocketAddr>,
    /// The gRPC face (Envoy's `Authorization/Check`), if any.
    pub grpc: Option<GrpcOptions>,
    /// Shard threads; 0 means one per available core.
    pub shards: usize,
    /// Runtime choice.
    pub io: IoMode,
    /// Head limits and timeouts.
    pub limits: ConnectionLimits,
    /// Open connections per shard before accepting pauses.
    pub max_connections: usize,
    /// How long a drain waits for in-flight requests.
    pub drain_timeout: Duration,
    /// How long, after a shutdown begins, health checks answer 503 while
    /// requests are still served, so a load balancer can stop sending before the
    /// listeners close.
    pub drain_delay: Duration,
    /// Over how long a drain closes keep-alive connections that stay idle
    /// (each after between half of it and all of it), so that clients
    /// sending continuously get their next request answered with
    /// `connection: close` instead of racing a close; zero closes them at
    /// once.
    pub drain_close_spread: Duration,
    /// The ext_authz answer.
    pub authz: AuthzOptions,
    /// Bounds of one `POST /v1/verify`.
    pub batch: BatchLimits,
    /// Count and time every check request (default on; `--no-metrics` turns
    /// it off, leaving the gauges and connection counts).
    pub metrics: bool,
    /// The JSON-lines access log, if any.
    pub access_log: Option<AccessLogOptions>,
    /// Whether the listening ports may be held already: only for a handover
    /// from a running jwtgate (`--handover`).
    pub sharing: Sharing,
    /// How often the serving command prints a one-line summary to stderr
    /// (`None` or zero: never; a summary is always printed at shutdown).
    pub summary_interval: Option<Duration>,
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
    /// The access log's destination could not be opened.
    #[error("cannot open the access log: {0}")]
    AccessLog(io::Error),
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    listen: SocketAddr,
    grpc_listen: Option<SocketAddr>,
    verify_listen: Option<SocketAddr>,
    admin_listen: Option<SocketAddr>,
    io: ActiveIo,
    uring_fallback: Option<String>,
    shards: Vec<Thread>,
    batch: Vec<Thread>,
    admin: Option<Thread>,
    observed: Arc<Observed>,
    access_log: Option<AccessLog>,
    drain_delay: Duration,
}

/// A serving thread and the message that stops it.
#[derive(Debug)]
struct Thread {
    stop: oneshot::Sender<()>,
    handle: JoinHandle<()>,
}

impl Thread {
    fn stop(self) -> JoinHandle<()> {
        let _ = self.stop.send(());
        self.handle
    }
}

fn local_addr(listener: Option<&std::net::TcpListener>, fallback: SocketAddr) -> SocketAddr {
    listener
        .and_then(|listener| listener.local_addr().ok())
        .unwrap_or(fallback)
}

type Started = crossbeam_channel::Sender<(usize, io::Result<()>)>;

/// The CPU shard `index` is pinned to, if any. With one shard per CPU the
/// process may run on (its affinity mask: all of the machine's, or a
/// container's cpuset), each shard gets its own. Any other count leaves the
/// placement to the kernel: pinning N shards to the first N CPUs of a wider
/// mask would stack every process that does the same onto the same CPUs, as
/// happens to pods limited by a CPU quota, which see the whole node's CPUs.
fn shard_core(
    index: usize,
    shard_count: usize,
    cores: &[core_affinity::CoreId],
) -> Option<core_affinity::CoreId> {
    if shard_count == cores.len() {
        cores.get(index).copied()
    } else {
        None
    }
}

fn spawn_shard<V, B>(
    index: usize,
    name: String,
    core: Option<core_affinity::CoreId>,
    io: ActiveIo,
    endpoint: Endpoint<B, V>,
    settings: ShardSettings,
    started: Started,
) -> Result<Thread, ServeError>
where
    V: Service + 'static,
    B: FnOnce(Option<SharedMetrics>, Arc<QueueDelay>) -> V + Send + 'static,
{
    let (stop, stopped) = oneshot::channel();
    let handle = std::thread::Builder::new()
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
                    shard::run_uring(tuned, endpoint, settings, stopped, report);
                }
                ActiveIo::Epoll => shard::run_epoll(endpoint, settings, stopped, report),
            }
        })
        .map_err(ServeError::Thread)?;
    Ok(Thread { stop, handle })
}

impl Server {
    /// Binds every socket, starts the shards and the admin thread, and returns
    /// once all of them accept connections. It raises the process's soft
    /// open-file limit to its hard limit, and lowers `max_connections` (with
    /// a warning) when the shards could still not hold it.
    // Public, but hidden, for `tests/serve_alloc.rs`, which serves in its own
    // process without the control plane; embedders start a server through
    // `control::run`.
    #[doc(hidden)]
    pub fn start(policy: SharedSnapshot, options: &ServeOptions) -> Result<Server, ServeError> {
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
        let data = bind_group(options.listen, shard_count, options.sharing)?;
        let listen = local_addr(data.first(), options.listen);
        let grpc_sockets = match &options.grpc {
            Some(grpc) => bind_group(grpc.listen, shard_count, options.sharing)?,
            None => Vec::new(),
        };
        let grpc_listen = options
            .grpc
            .map(|grpc| local_addr(grpc_sockets.first(), grpc.listen));
        let batch_sockets = match options.verify_listen {
            Some(addr) => bind_group(addr, shard_count, options.sharing)?,
            None => Vec::new(),
        };
        let verify_listen = options
            .verify_listen
            .map(|addr| local_addr(batch_sockets.first(), addr));
        let admin_socket = match options.admin_listen {
            Some(addr) => Some(ports::bind_single(addr)?),
            None => None,
        };
        let admin_listen = options
            .admin_listen
            .map(|addr| local_addr(admin_socket.as_ref(), addr));

        let faces =
            1 + usize::from(options.grpc.is_some()) + usize::from(!batch_sockets.is_empty());
        let open_files = descriptors::raise_limit();
        let max_connections = descriptors::fitting(
            options.max_connections.max(1),
            shard_count,
            faces,
            open_files,
        );
        if max_connections < options.max_connections {
            let reserved = descriptors::reserved(shard_count, faces);
            warn(format_args!(
                "max_connections lowered from {} to {max_connections} per shard: {shard_count} \
                 shards serving {faces} listener(s) each would need {} open files with \
                 {reserved} kept for the process, and the limit is {} (raise it: ulimit -n, \
                 or LimitNOFILE= in a systemd unit)",
                options.max_connections,
                u64::try_from(options.max_connections)
                    .unwrap_or(u64::MAX)
                    .saturating_mul(
                        u64::try_from(shard_count.saturating_mul(faces)).unwrap_or(u64::MAX)
                    )
                    .saturating_add(reserved),
                open_files.unwrap_or_default(),
            ));
        }
        let settings = ShardSettings {
            limits: options.limits,
            max_connections,
            drain_timeout: options.drain_timeout,
            // Spread past the drain timeout would be cut off by it anyway.
            drain_close_spread: options.drain_close_spread.min(options.drain_timeout),
        };
        let denials = Arc::new(Denials::default());
        let (access_log, sink) = match &options.access_log {
            Some(log) => {
                let (log, sink) = AccessLog::start(log).map_err(ServeError::AccessLog)?;
                (Some(log), Some(sink))
            }
            None => (None, None),
        };
        let (hub, links) = Hub::new(shard_count);
        let observed = Arc::new(Observed {
            hub,
            status: Arc::new(Status::new()),
            policy: Arc::clone(&policy),
            io: match io {
                ActiveIo::Uring { .. } => "uring",
                ActiveIo::Epoll => "epoll",
            },
            shards: shard_count,
            recording: options.metrics,
            access_log_dropped: access_log.as_ref().map(AccessLog::dropped_counter),
        });
        let (started, reports) = crossbeam_channel::unbounded();
        let mut threads = 0;
        let mut server = Server {
            listen,
            grpc_listen,
            verify_listen,
            admin_listen,
            io,
            uring_fallback,
            shards: Vec::with_capacity(shard_count),
            batch: Vec::with_capacity(batch_sockets.len()),
            admin: None,
            observed: Arc::clone(&observed),
            access_log,
            drain_delay: options.drain_delay,
        };
        let seed = crate::UnixTime::now().0.unsigned_abs();
        let mut grpc_sockets = grpc_sockets.into_iter();
        let group = ListenerGroup::new(data.len());
        // The shards hold it; it ends once they and this function are done.
        let pacemaker = match options.authz.max_queue_delay {
            Some(_) => Some(Pacemaker::start().map_err(ServeError::Thread)?),
            None => None,
        };
        for ((index, listener), link) in data.into_iter().enumerate().zip(links) {
            let log = sink
                .clone()
                .map(|sink| ShardLog::new(sink, seed.wrapping_mul(index as u64 + 1)));
            let metrics = options
                .metrics
                .then(|| ShardMetrics::new(&policy.load().policy));
            let (policy, denials, authz) =
                (Arc::clone(&policy), Arc::clone(&denials), options.authz);
            let service = move |metrics, delay| {
                Authorizer::new(policy, authz, denials)
                    .observed(index, metrics, log)
                    .shedding(delay)
            };
            let core = shard_core(index, shard_count, &cores);
            let name = format!("jwtgate-shard-{index}");
            let grpc_face = options.grpc.zip(grpc_sockets.next()).map(|(grpc, socket)| {
                let face = ShardFace {
                    listener: socket,
                    options: grpc,
                    readiness: Readiness {
                        status: Arc::clone(&observed.status),
                        snapshot: Arc::clone(&observed.policy),
                    },
                    max_connections: settings.max_connections,
                    drain_timeout: settings.drain_timeout,
                    call_timeout: settings.limits.header_timeout,
                };
                let start: shard::SecondFace<Authorizer> =
                    Box::new(move |authorizer, draining| face.start(authorizer, draining));
                start
            });
            let endpoint = Endpoint {
                listener,
                service,
                metrics,
                link: Some(link),
                second: grpc_face,
                group: Some(Arc::clone(&group)),
                pacemaker: pacemaker.clone(),
            };
            server.shards.push(spawn_shard(
                threads,
                name,
                core,
                io,
                endpoint,
                settings,
                started.clone(),
            )?);
            threads += 1;
        }
        // The shards hold their own handles to the log writer, which ends with
        // them (also when start-up fails below and everything is shut down).
        drop(sink);
        // Batches are bulk work: unpinned threads that the kernel time-slices
        // against the shards, instead of batches stalling a shard's event loop.
        for (index, listener) in batch_sockets.into_iter().enumerate() {
            let (policy, clock, limits) = (Arc::clone(&policy), options.authz.clock, options.batch);
            let service = move |_, _| BatchVerifier::new(policy, clock, limits);
            let name = format!("jwtgate-verify-{index}");
            let endpoint = Endpoint {
                listener,
                service,
                metrics: None,
                link: None,
                second: None,
                group: None,
                pacemaker: None,
            };
            server.batch.push(spawn_shard(
                threads,
                name,
                None,
                io,
                endpoint,
                settings,
                started.clone(),
            )?);
            threads += 1;
        }
        if let Some(listener) = admin_socket {
            let admin = Admin::new(Arc::clone(&observed));
            let endpoint = Endpoint {
                listener,
                service: move |_, _| admin,
                metrics: None,
                link: None,
                second: None,
                group: None,
                pacemaker: None,
            };
            let admin_settings = ShardSettings {
                max_connections: 64,
                ..settings
            };
            let name = "jwtgate-admin".to_owned();
            server.admin = Some(spawn_shard(
                threads,
                name,
                None,
                ActiveIo::Epoll,
                endpoint,
                admin_settings,
                started,
            )?);
            threads += 1;
        } else {
            drop(started);
        }
        for _ in 0..threads {
            let failure = match reports.recv() {
                Ok((_, Ok(()))) => continue,
                Ok((shard, Err(source))) => ServeError::Shard { shard, source },
                Err(_) => ServeError::Shard {
                    shard: 0,
                    source: io::Error::other("a serving thread ended during start-up"),
                },
            };
            server.drain_delay = Duration::ZERO;
            server.shutdown();
            return Err(failure);
        }
        observed.status.set_listening();
        Ok(server)
    }

    /// Reopens the access-log file before its next write (log rotation; SIGHUP).
    pub(crate) fn reopen_access_log(&self) {
        if let Some(log) = &self.access_log {
            log.reopen();
        }
    }

    /// The serving state (readiness, reloads), shared with the admin listener.
    pub(crate) fn status(&self) -> &Status {
        &self.observed.status
    }

    /// Collects every shard's counts (waiting up to a second), so that what
    /// they counted under replaced policies is merged and let go of.
    pub(crate) fn collect(&self) {
        drop(self.observed.hub.collect(COLLECT_WAIT));
    }

    /// Collects every shard's counts (waiting up to a second) and returns the
    /// summary line of the window since the last call.
    pub(crate) fn summary(&self) -> String {
        let mut totals = self.observed.hub.collect(COLLECT_WAIT);
        let recent = totals.take_recent();
        summary_line("last", &recent)
    }

    /// The data port's address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.listen
    }

    /// The gRPC face's address, if one is configured.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc_listen
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

    /// Graceful shutdown: health checks turn 503 (and, for the drain delay,
    /// requests are still served), then listeners stop accepting, in-flight
    /// requests are answered (with `connection: close`) and idle connections
    /// close; returns when every thread has finished or the drain timeout has
    /// cut the stragglers off.
    // Public, but hidden, for `tests/serve_alloc.rs` (see `start`).
    #[doc(hidden)]
    pub fn shutdown(self) -> String {
        self.observed.status.set_draining();
        if !self.drain_delay.is_zero() {
            std::thread::sleep(self.drain_delay);
        }
        let serving: Vec<JoinHandle<()>> = self
            .shards
            .into_iter()
            .chain(self.batch)
            .map(Thread::stop)
            .collect();
        for handle in serving {
            if handle.join().is_err() {
                warn(format_args!("a serving thread panicked during shutdown"));
            }
        }
        if let Some(admin) = self.admin {
            let _ = admin.stop().join();
        }
        if let Some(log) = self.access_log {
            log.finish();
        }
        // Every shard has handed over its last counts on its way out.
        let totals = self.observed.hub.collect(Duration::ZERO);
        summary_line(
            "since start,",
            &totals.since(self.observed.status.started()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::shard_core;
    use core_affinity::CoreId;

    fn cores(ids: &[usize]) -> Vec<CoreId> {
        ids.iter().map(|&id| CoreId { id }).collect()
    }

    #[test]
    fn one_shard_per_allowed_cpu_pins_each_to_its_own() {
        let allowed = cores(&[3, 5, 8]);
        let pinned: Vec<Option<usize>> = (0..3)
            .map(|index| shard_core(index, 3, &allowed).map(|core| core.id))
            .collect();
        assert_eq!(pinned, [Some(3), Some(5), Some(8)]);
    }

    #[test]
    fn fewer_or_more_shards_than_allowed_cpus_are_left_to_the_kernel() {
        // Two shards of a pod on a 64-CPU node: pinning them to CPUs 0 and 1
        // would put every such pod on the same two CPUs.
        let node = cores(&(0..64).collect::<Vec<_>>());
        assert!((0..2).all(|index| shard_core(index, 2, &node).is_none()));
        let two = cores(&[0, 1]);
        assert!((0..4).all(|index| shard_core(index, 4, &two).is_none()));
        assert_eq!(shard_core(0, 1, &[]), None);
    }
}
