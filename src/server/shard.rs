//! A shard: one thread, usually pinned to one core, running its own runtime
//! (io_uring or epoll) with its own listener, connections, buffers and sweeper.
//! Shards share nothing on the request path; the only cross-thread traffic is
//! the start-up report, the one stop message and the counts handed over when
//! asked ([`ShardLink`]).
//!
//! The shard owns its metrics and shares them on its thread with the service
//! it builds there and with its connections ([`conn`]), so that the
//! [`Service`] seam knows nothing of metrics.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::net::{IpAddr, Shutdown};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, oneshot, watch};

use super::conn::{self, ConnectionLimits, ShardParts};
use super::heartbeat::{Heartbeat, Pacemaker};
use super::tracking::{BufferPool, Draining, Phase, Registry, Tracked};
use super::transport::{EpollListener, Listener, Stream, UringListener};
use crate::http::Service;
use crate::metrics::{Connections, ShardLink, ShardMetrics};
use crate::queue_delay::QueueDelay;

/// Size of a fresh connection buffer: a typical check request (a JWT of 1 KB
/// and proxy headers) fits with room to spare.
const BUFFER_SIZE: usize = 4096;

/// Buffers a shard keeps for reuse.
const POOLED_BUFFERS: usize = 1024;

/// A shard's counters, shared on its thread by its check service (which counts
/// decisions) and its connections (which time requests and count protocol
/// errors). Each borrow lasts one recording, never across an await.
pub(crate) type SharedMetrics = Rc<RefCell<ShardMetrics>>;

/// What every connection of a shard shares.
pub(crate) struct Shard<S> {
    buffers: BufferPool,
    /// `None` when the shard records nothing (metrics off, or not a check shard).
    metrics: Option<SharedMetrics>,
    registry: Registry<S>,
    draining: Draining,
    max_connections: usize,
    /// Wakes the accept loop when a slot frees up or the drain starts.
    slot_freed: Notify,
    /// Wakes the drain when the last connection closes.
    all_closed: Notify,
    /// Connections accepted since start.
    accepted: Cell<u64>,
    /// The listener is closed (or closing): the accept loop ends.
    closed: Cell<bool>,
}

impl<S: Stream> Shard<S> {
    fn new(max_connections: usize, metrics: Option<SharedMetrics>) -> Shard<S> {
        Shard {
            buffers: BufferPool::new(POOLED_BUFFERS.min(2 * max_connections), BUFFER_SIZE),
            metrics,
            registry: Registry::with_capacity(max_connections.min(65_536)),
            draining: Draining::default(),
            max_connections,
            slot_freed: Notify::new(),
            all_closed: Notify::new(),
            accepted: Cell::new(0),
            closed: Cell::new(false),
        }
    }

    fn connections(&self) -> Connections {
        Connections {
            open: self.registry.open() as u64,
            accepted: self.accepted.get(),
        }
    }

    /// Resolves once no connection is open.
    async fn all_closed(&self) {
        while self.registry.open() > 0 {
            self.all_closed.notified().await;
        }
    }

    /// What a connection uses of the shard.
    fn parts(&self) -> ShardParts<'_> {
        ShardParts {
            buffers: &self.buffers,
            draining: &self.draining,
            metrics: self.metrics.as_deref(),
        }
    }
}

/// A second face of the shard's service, on a listener of its own (the
/// gRPC face). Called on the shard's thread with the service and a signal
/// that turns true when the drain begins, it returns the task serving that
/// face until it has drained, which the shard awaits before it ends.
pub(crate) type SecondFace<V> = Box<
    dyn FnOnce(
            Rc<RefCell<V>>,
            watch::Receiver<bool>,
        ) -> io::Result<Pin<Box<dyn Future<Output = ()>>>>
        + Send,
>;

/// The listener a shard serves, with what answers on it.
pub(crate) struct Endpoint<B, V> {
    /// The bound, listening, non-blocking socket (one per shard, SO_REUSEPORT).
    pub(crate) listener: std::net::TcpListener,
    /// Builds the service on the shard's thread, handed the shard's metrics
    /// when it records any and the shard's heartbeat (how long its work
    /// waits): what the two share there need not be `Send`.
    pub(crate) service: B,
    /// The shard's counters, laid out before its thread starts (check shards
    /// with metrics on).
    pub(crate) metrics: Option<ShardMetrics>,
    /// Where the shard hands its counts when asked (check shards only).
    pub(crate) link: Option<ShardLink>,
    /// The gRPC face, on check shards that have one.
    pub(crate) second: Option<SecondFace<V>>,
    /// The shards sharing this listener's port, on check shards.
    pub(crate) group: Option<Arc<ListenerGroup>>,
    /// What sends the heartbeat a shedding service reads, on check shards.
    pub(crate) pacemaker: Option<Arc<Pacemaker>>,
}

/// The listeners of the shards that share one port (SO_REUSEPORT). A drain
/// closes every one of them before any shard answers with `connection:
/// close`: a client told to reconnect is then refused, never queued on
/// another shard's listener just as that one closes, which would reset the
/// connection with the request the client wrote on it.
#[derive(Debug)]
pub(crate) struct ListenerGroup {
    open: AtomicUsize,
    all_closed: Notify,
}

/// How long a shard waits for the other shards' listeners to close: a
/// shard too busy to get there within it must not hold up the drain.
const GROUP_CLOSE_WAIT: Duration = Duration::from_secs(1);

impl ListenerGroup {
    pub(crate) fn new(listeners: usize) -> Arc<ListenerGroup> {
        Arc::new(ListenerGroup {
            open: AtomicUsize::new(listeners),
            all_closed: Notify::new(),
        })
    }

    fn closed_one(&self) {
        if self.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.all_closed.notify_waiters();
        }
    }

    async fn all_closed(&self) {
        loop {
            let notified = self.all_closed.notified();
            tokio::pin!(notified);
            // Registered before the check, so a close in between wakes it.
            notified.as_mut().enable();
            if self.open.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// How a shard runs, decided before it starts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShardSettings {
    pub(crate) limits: ConnectionLimits,
    pub(crate) max_connections: usize,
    pub(crate) drain_timeout: Duration,
    /// Over how long a drain closes the connections that stay idle.
    pub(crate) drain_close_spread: Duration,
}

/// Settings of the io_uring instance each shard creates.
///
/// Tuned: COOP_TASKRUN (completions are processed when the thread next enters
/// the kernel, instead of interrupting it: the shard is the ring's only user)
/// and SINGLE_ISSUER (only this thread submits, so the kernel can skip
/// synchronisation). They need Linux 6.0; older kernels refuse them with
/// EINVAL and get a plain ring. DEFER_TASKRUN is not used: tokio-uring 0.5
/// hangs with it.
pub(crate) fn uring_builder(tuned: bool) -> tokio_uring::Builder {
    let mut ring = tokio_uring::uring_builder();
    if tuned {
        ring.setup_coop_taskrun().setup_single_issuer();
    }
    let mut builder = tokio_uring::builder();
    builder.entries(1024).uring_builder(&ring);
    builder
}

/// Creates (and drops) an io_uring runtime, to learn whether this kernel and
/// sandbox allow it; returns whether the tuned setup works.
pub(crate) fn probe_uring() -> io::Result<bool> {
    match tokio_uring::Runtime::new(&uring_builder(true)) {
        Ok(_) => Ok(true),
        // EINVAL: a kernel older than the setup flags.
        Err(error) if error.kind() == io::ErrorKind::InvalidInput => {
            tokio_uring::Runtime::new(&uring_builder(false)).map(|_| false)
        }
        Err(error) => Err(error),
    }
}

/// Runs a shard on io_uring on the calling thread until `stop` fires and the
/// drain ends. `started` is told once the listeners are accepting.
pub(crate) fn run_uring<V, B>(
    tuned: bool,
    endpoint: Endpoint<B, V>,
    settings: ShardSettings,
    stop: oneshot::Receiver<()>,
    started: impl FnOnce(io::Result<()>),
) where
    V: Service + 'static,
    B: FnOnce(Option<SharedMetrics>, Arc<QueueDelay>) -> V,
{
    let runtime = match tokio_uring::Runtime::new(&uring_builder(tuned)) {
        Ok(runtime) => runtime,
        Err(error) => return started(Err(error)),
    };
    runtime.block_on(serve::<UringListener, V, B>(
        endpoint, settings, stop, started,
    ));
}

/// Runs a shard on tokio's epoll runtime; otherwise as [`run_uring`].
pub(crate) fn run_epoll<V, B>(
    endpoint: Endpoint<B, V>,
    settings: ShardSettings,
    stop: oneshot::Receiver<()>,
    started: impl FnOnce(io::Result<()>),
) where
    V: Service + 'static,
    B: FnOnce(Option<SharedMetrics>, Arc<QueueDelay>) -> V,
{
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return started(Err(error)),
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(
        &runtime,
        serve::<EpollListener, V, B>(endpoint, settings, stop, started),
    );
}

/// A listener taken over by the runtime, and a duplicate of its socket with
/// which the drain stops it: shutting a listening socket down completes a
/// pending accept, in both runtimes.
struct Running<L> {
    listener: L,
    stopper: std::net::TcpListener,
    /// Another duplicate, with which the accept loop takes what else waits.
    waiting: std::net::TcpListener,
}

fn take_over<L: Listener>(listener: std::net::TcpListener) -> io::Result<Running<L>> {
    let stopper = listener.try_clone()?;
    let waiting = listener.try_clone()?;
    Ok(Running {
        listener: L::from_std(listener)?,
        stopper,
        waiting,
    })
}

async fn serve<L, V, B>(
    endpoint: Endpoint<B, V>,
    settings: ShardSettings,
    stop: oneshot::Receiver<()>,
    started: impl FnOnce(io::Result<()>),
) where
    L: Listener,
    V: Service + 'static,
    B: FnOnce(Option<SharedMetrics>, Arc<QueueDelay>) -> V,
{
    let group = endpoint.group;
    let running = match take_over::<L>(endpoint.listener) {
        Ok(running) => running,
        Err(error) => return started(Err(error)),
    };
    let metrics = endpoint
        .metrics
        .map(|metrics| Rc::new(RefCell::new(metrics)));
    let delay = QueueDelay::new();
    let service = (endpoint.service)(metrics.clone(), Arc::clone(&delay));
    // Only a service that kept the heartbeat reads it (one that sheds
    // load): the others' shards are spared its wake-ups.
    let heartbeat = if Arc::strong_count(&delay) > 1 {
        match endpoint
            .pacemaker
            .as_ref()
            .map(|pacemaker| Heartbeat::start::<L>(pacemaker, &delay))
            .transpose()
        {
            Ok(heartbeat) => heartbeat,
            Err(error) => {
                crate::diagnostics::warn(format_args!(
                    "no load shedding on this shard: its heartbeat could not start: {error}"
                ));
                None
            }
        }
    } else {
        None
    };
    let service = Rc::new(RefCell::new(service));
    let (drain_signal, drain_watch) = watch::channel(false);
    let second = match endpoint
        .second
        .map(|face| face(Rc::clone(&service), drain_watch))
        .transpose()
    {
        Ok(task) => task.map(tokio::task::spawn_local),
        Err(error) => return started(Err(error)),
    };
    let shard: Rc<Shard<L::Stream>> = Rc::new(Shard::new(settings.max_connections, metrics));
    let link = endpoint.link.map(Rc::new);
    let accepting = tokio::task::spawn_local(accept_loop(
        running.listener,
        running.waiting,
        Rc::clone(&shard),
        Rc::clone(&service),
        settings.limits,
    ));
    let sweeper = tokio::task::spawn_local(sweep(
        Rc::clone(&shard),
        Rc::clone(&service),
        settings.limits,
    ));
    let reporter = link
        .as_ref()
        .map(|link| tokio::task::spawn_local(report(Rc::clone(link), Rc::clone(&shard))));
    started(Ok(()));

    // A dropped sender (the server handle gone) also stops the shard.
    let _ = stop.await;
    let stopped_at = Instant::now();
    // The second face drains beside this one, within the same timeout.
    let _ = drain_signal.send(true);
    // Connections the kernel has completed but the accept loop not yet
    // taken would be reset with the listener, their requests lost: take
    // them first, each for one request. Nothing runs on this thread between
    // the last of them and the shutdown.
    shard.closed.set(true);
    // Past `max_connections` if need be: there are at most the backlog's
    // length, and each gets one request.
    adopt_waiting::<L, V>(
        &running.stopper,
        &shard,
        &service,
        settings.limits,
        MAX_BACKLOG,
    );
    let _ = socket2::SockRef::from(&running.stopper).shutdown(Shutdown::Read);
    shard.slot_freed.notify_waiters();
    let _ = accepting.await;
    drop(running.stopper);
    // Until every listener of the port is closed, answers keep their
    // connections open, so that no client is sent to reconnect yet.
    if let Some(group) = &group {
        group.closed_one();
        let _ = tokio::time::timeout(GROUP_CLOSE_WAIT, group.all_closed()).await;
    }
    let drain_started = Instant::now();
    // From here every answer carries `connection: close`.
    shard
        .draining
        .start(drain_started, settings.drain_close_spread);
    shard
        .registry
        .close_idle(drain_started, settings.drain_close_spread);
    // Swept here, every few milliseconds, so that idle connections close at
    // their turn in the spread (the sweeper may be most of a second from
    // its next look).
    let drain_ends = stopped_at + settings.drain_timeout;
    let mut drained = false;
    while !drained && Instant::now() < drain_ends {
        let wait = DRAIN_SWEEP_PERIOD.min(drain_ends.saturating_duration_since(Instant::now()));
        drained = tokio::time::timeout(wait, shard.all_closed()).await.is_ok();
        shard.registry.sweep(Instant::now());
    }
    if !drained {
        shard.registry.expire_all();
        // The cut-short operations complete at once; let their tasks finish.
        let _ = tokio::time::timeout(Duration::from_secs(1), shard.all_closed()).await;
    }
    if let Some(second) = second {
        let _ = second.await;
    }
    sweeper.abort();
    if let Some(heartbeat) = heartbeat {
        heartbeat.stop().await;
    }
    if let Some(reporter) = reporter {
        reporter.abort();
    }
    // What the access log still buffers is handed over when the service is
    // dropped, waiting for the writer if it is behind (see ShardLog's Drop).
    if let Some(link) = link {
        let counted = shard
            .metrics
            .as_ref()
            .map(|metrics| metrics.borrow_mut().take_with(link.spares()));
        link.last(counted, shard.connections());
    }
}

/// Answers every ask of the control thread with what was counted since the last.
async fn report<S: Stream>(link: Rc<ShardLink>, shard: Rc<Shard<S>>) {
    loop {
        let number = link.asked().await;
        // Let completions that are already in (a response just written) be
        // recorded first, so a scrape right after a response sees its latency.
        tokio::task::yield_now().await;
        let counted = shard
            .metrics
            .as_ref()
            .map(|metrics| metrics.borrow_mut().take_with(link.spares()));
        link.answer(number, counted, shard.connections());
    }
}

async fn accept_loop<L: Listener, V: Service + 'static>(
    listener: L,
    waiting: std::net::TcpListener,
    shard: Rc<Shard<L::Stream>>,
    service: Rc<RefCell<V>>,
    limits: ConnectionLimits,
) {
    loop {
        // Back-pressure: at the limit, connections wait in the kernel's backlog.
        while shard.registry.open() >= shard.max_connections && !shard.closed.get() {
            shard.slot_freed.notified().await;
        }
        if shard.closed.get() {
            return;
        }
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(_) if shard.closed.get() => return,
            Err(error) => {
                crate::diagnostics::warn(format_args!("accept failed: {error}"));
                // Out of file descriptors or memory: give closing connections a moment.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        adopt(&shard, &service, limits, stream, peer);
        // Then whatever else waits, as nginx's `multi_accept` does: one
        // accept per turn of the shard would leave a flood of new
        // connections queued in the kernel, out of sight of the queue delay
        // that sheds load, their wait unbounded by anything jwtgate sets.
        let room = shard.max_connections.saturating_sub(shard.registry.open());
        adopt_waiting::<L, V>(&waiting, &shard, &service, limits, room.min(ACCEPT_BATCH));
    }
}

/// Serves `stream` from `peer` on the shard, tracked in its registry.
fn adopt<S: Stream, V: Service + 'static>(
    shard: &Rc<Shard<S>>,
    service: &Rc<RefCell<V>>,
    limits: ConnectionLimits,
    stream: S,
    peer: IpAddr,
) {
    shard.accepted.set(shard.accepted.get() + 1);
    let tracked = Rc::new(Tracked::new(
        stream,
        Phase::Idle,
        Instant::now() + limits.idle_timeout,
    ));
    let slot = Slot {
        shard: Rc::clone(shard),
        index: shard.registry.insert(Rc::clone(&tracked)),
    };
    let service = Rc::clone(service);
    tokio::task::spawn_local(async move {
        conn::serve(tracked, peer, slot.shard.parts(), service, limits).await;
        drop(slot);
    });
}

/// Serves up to `most` of the connections waiting in the listener's
/// backlog, taken with non-blocking accepts on `listener` (a duplicate of
/// the shard's listening socket).
fn adopt_waiting<L: Listener, V: Service + 'static>(
    listener: &std::net::TcpListener,
    shard: &Rc<Shard<L::Stream>>,
    service: &Rc<RefCell<V>>,
    limits: ConnectionLimits,
    most: usize,
) {
    // The socket is non-blocking (Listener::from_std requires it), so this
    // ends when the backlog is empty, or at `most`, so that clients
    // reconnecting meanwhile cannot keep it going.
    for _ in 0..most {
        match listener.accept() {
            Ok((stream, peer)) => match L::adopt(stream) {
                Ok(stream) => adopt(shard, service, limits, stream, peer.ip()),
                Err(error) => crate::diagnostics::warn(format_args!(
                    "a connection taken from the backlog could not be served: {error}"
                )),
            },
            // One that gave up while waiting; the next may not have.
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted
                ) => {}
            // Empty (WouldBlock), or out of descriptors: nothing more to take.
            Err(_) => break,
        }
    }
}

/// Most connections taken from the backlog after each accept.
const ACCEPT_BATCH: usize = 256;

/// Most connections the drain takes from a listener's backlog: Linux's
/// default `somaxconn`, the most a backlog holds unless raised.
const MAX_BACKLOG: usize = 4096;

/// A connection's place in the registry, given back when the connection task
/// ends however it ends (a panic included), so that slots never leak.
struct Slot<S: Stream> {
    shard: Rc<Shard<S>>,
    index: usize,
}

impl<S: Stream> Drop for Slot<S> {
    fn drop(&mut self) {
        self.shard.registry.remove(self.index);
        self.shard.slot_freed.notify_one();
        if self.shard.registry.open() == 0 {
            self.shard.all_closed.notify_one();
        }
    }
}

/// How often the drain sweeps: idle connections close at times spread
/// over `--drain-close-spread`.
const DRAIN_SWEEP_PERIOD: Duration = Duration::from_millis(20);

/// Expires connections past their deadline, a few times per shortest timeout
/// (at least once a second), and gives the service its tick.
fn sweep<S: Stream, V: Service>(
    shard: Rc<Shard<S>>,
    service: Rc<RefCell<V>>,
    limits: ConnectionLimits,
) -> impl Future<Output = ()> {
    let shortest = limits.header_timeout.min(limits.idle_timeout);
    let period = (shortest / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    async move {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            shard.registry.sweep(Instant::now());
            service.borrow_mut().tick();
        }
    }
}
