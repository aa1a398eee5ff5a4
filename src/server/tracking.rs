//! What a shard knows about its open connections: each one's phase and
//! deadline, so that one sweeper per shard enforces every timeout and a drain
//! can close the idle ones. This replaces a timer per read: arming a deadline is
//! a store into a `Cell`, with no syscall, lock or allocation.
//!
//! Also what the shard lends each connection ([`super::conn`]) besides its
//! socket: the buffer pool and the draining flag.
//!
//! Everything here is shard-local (`Rc`, `Cell`, `RefCell`): a shard is one
//! thread, and nothing crosses to another.

use std::cell::{Cell, RefCell};
use std::net::Shutdown;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::transport::Stream;

/// Where a connection is in its exchange, which decides what its deadline means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Waiting for the first byte of the next request: idle timeout, and a
    /// drain may close it.
    Idle,
    /// Part of a request has arrived: header timeout, answered 408.
    Reading,
    /// Writing responses to a client that may not be reading: write timeout.
    Writing,
}

/// A connection as the shard sees it.
pub(crate) struct Tracked<S> {
    pub(crate) stream: S,
    phase: Cell<Phase>,
    deadline: Cell<Instant>,
    expired: Cell<bool>,
}

impl<S: Stream> Tracked<S> {
    pub(crate) fn new(stream: S, phase: Phase, deadline: Instant) -> Tracked<S> {
        Tracked {
            stream,
            phase: Cell::new(phase),
            deadline: Cell::new(deadline),
            expired: Cell::new(false),
        }
    }

    /// Enters `phase`, to be over by `deadline`.
    pub(crate) fn arm(&self, phase: Phase, deadline: Instant) {
        self.phase.set(phase);
        self.deadline.set(deadline);
    }

    pub(crate) fn phase(&self) -> Phase {
        self.phase.get()
    }

    /// Clears the expiry, so that the next phase armed gets a deadline of its
    /// own (the 408 written after a read timed out).
    pub(crate) fn rearm_after_expiry(&self) {
        self.expired.set(false);
    }

    /// Whether the sweeper cut this connection's pending operation short.
    pub(crate) fn expired(&self) -> bool {
        self.expired.get()
    }

    /// Cuts the pending operation short: a read sees end of stream (the write
    /// side stays open for a 408), a write fails.
    fn expire(&self) {
        self.expired.set(true);
        let how = match self.phase.get() {
            Phase::Idle | Phase::Reading => Shutdown::Read,
            Phase::Writing => Shutdown::Both,
        };
        // The socket may already be closed by the peer; nothing more to do then.
        let _ = self.stream.shutdown(how);
    }
}

/// The open connections of one shard, in a slab whose slots are reused.
pub(crate) struct Registry<S> {
    slots: RefCell<Vec<Option<Rc<Tracked<S>>>>>,
    free: RefCell<Vec<usize>>,
    open: Cell<usize>,
}

impl<S: Stream> Registry<S> {
    pub(crate) fn with_capacity(capacity: usize) -> Registry<S> {
        Registry {
            slots: RefCell::new(Vec::with_capacity(capacity)),
            free: RefCell::new(Vec::with_capacity(capacity)),
            open: Cell::new(0),
        }
    }

    /// Open connections.
    pub(crate) fn open(&self) -> usize {
        self.open.get()
    }

    /// Tracks `connection`; returns its slot for [`Registry::remove`].
    pub(crate) fn insert(&self, connection: Rc<Tracked<S>>) -> usize {
        let mut slots = self.slots.borrow_mut();
        self.open.set(self.open.get() + 1);
        if let Some(slot) = self.free.borrow_mut().pop()
            && let Some(entry) = slots.get_mut(slot)
        {
            *entry = Some(connection);
            return slot;
        }
        slots.push(Some(connection));
        slots.len() - 1
    }

    pub(crate) fn remove(&self, slot: usize) {
        if let Some(entry) = self.slots.borrow_mut().get_mut(slot)
            && entry.take().is_some()
        {
            self.free.borrow_mut().push(slot);
            self.open.set(self.open.get().saturating_sub(1));
        }
    }

    /// Expires every connection whose deadline has passed.
    pub(crate) fn sweep(&self, now: Instant) {
        for connection in self.slots.borrow().iter().flatten() {
            if !connection.expired() && connection.deadline.get() <= now {
                connection.expire();
            }
        }
    }

    /// Schedules the close of every idle connection (a drain): the `n` idle
    /// ones are closed one after another from `spread / 2` to `spread` after
    /// `now`, each unless it sends a request first (which it gets answered,
    /// with `connection: close`). Busy ones finish their request.
    ///
    /// A client that sends continuously is then never closed on while it
    /// writes: its next request arrives long before its turn. Closing them
    /// all at once would race every such client, and send every client of
    /// the shard to reconnect elsewhere at the same moment.
    pub(crate) fn close_idle(&self, now: Instant, spread: Duration) {
        let slots = self.slots.borrow();
        let idle = || {
            slots
                .iter()
                .flatten()
                .filter(|connection| connection.phase() == Phase::Idle && !connection.expired())
        };
        let count = idle().count().max(1) as f64;
        for (turn, connection) in idle().enumerate() {
            if spread.is_zero() {
                connection.expire();
                continue;
            }
            let share = 0.5 + 0.5 * (turn as f64 + 1.0) / count;
            let close_at = now + spread.mul_f64(share);
            if close_at < connection.deadline.get() {
                connection.deadline.set(close_at);
            }
        }
    }

    /// Cuts every connection short (the drain timeout has passed).
    pub(crate) fn expire_all(&self) {
        for connection in self.slots.borrow().iter().flatten() {
            connection.arm(Phase::Writing, connection.deadline.get());
            connection.expire();
        }
    }
}

/// Whether the shard has begun to drain, and since when: set once by the
/// shard when it is told to stop. Its connections then answer with
/// `connection: close`, and one that is idle is closed by the end of the
/// close spread ([`Registry::close_idle`]).
#[derive(Debug, Default)]
pub(crate) struct Draining {
    since: Cell<Option<Instant>>,
    spread: Cell<Duration>,
}

impl Draining {
    pub(crate) fn start(&self, now: Instant, spread: Duration) {
        self.since.set(Some(now));
        self.spread.set(spread);
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.since.get().is_some()
    }

    /// When an idle connection is closed during the drain at the latest: a
    /// connection accepted during the drain waits this long for its one
    /// request.
    pub(crate) fn idle_deadline(&self) -> Option<Instant> {
        self.since.get().map(|since| since + self.spread.get())
    }
}

/// Read and write buffers returned by closed connections, handed to new ones,
/// so that short connections do not allocate either.
pub(crate) struct BufferPool {
    buffers: RefCell<Vec<Vec<u8>>>,
    keep: usize,
    size: usize,
}

impl BufferPool {
    /// Keeps up to `keep` buffers of `size` bytes.
    pub(crate) fn new(keep: usize, size: usize) -> BufferPool {
        BufferPool {
            buffers: RefCell::new(Vec::with_capacity(keep)),
            keep,
            size,
        }
    }

    pub(crate) fn take(&self) -> Vec<u8> {
        self.buffers
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.size))
    }

    /// Takes `buffer` back unless the pool is full or the buffer grew beyond
    /// the usual size (a large batch body), which is freed instead.
    pub(crate) fn give(&self, mut buffer: Vec<u8>) {
        let mut buffers = self.buffers.borrow_mut();
        if buffers.len() < self.keep && buffer.capacity() <= 4 * self.size {
            buffer.clear();
            buffers.push(buffer);
        }
    }
}
