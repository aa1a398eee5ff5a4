//! The server's state as the admin listener reports it: readiness, draining,
//! the configuration generation and reload results. Written by the control
//! thread (start-up, reloads, shutdown), read by the admin thread; never
//! touched on the request path.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Process-wide serving state.
#[derive(Debug)]
pub(crate) struct Status {
    started: Instant,
    started_unix: f64,
    listening: AtomicBool,
    draining: AtomicBool,
    generation: AtomicU64,
    reloads: AtomicU64,
    failed_reloads: AtomicU64,
    last_reload_unix: AtomicI64,
}

impl Default for Status {
    fn default() -> Status {
        Status::new()
    }
}

impl Status {
    /// Starting now, generation 1, not yet listening.
    pub(crate) fn new() -> Status {
        Status {
            started: Instant::now(),
            started_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |since| since.as_secs_f64()),
            listening: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            generation: AtomicU64::new(1),
            reloads: AtomicU64::new(0),
            failed_reloads: AtomicU64::new(0),
            last_reload_unix: AtomicI64::new(0),
        }
    }

    /// Seconds since start.
    pub(crate) fn uptime_seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// When the process started.
    pub(crate) fn started(&self) -> Instant {
        self.started
    }

    /// Start time, Unix seconds.
    pub(crate) fn start_time_unix(&self) -> f64 {
        self.started_unix
    }

    /// Every listener is bound and every shard accepts.
    pub(crate) fn set_listening(&self) {
        self.listening.store(true, Ordering::Release);
    }

    /// Whether every listener is bound and accepting.
    pub(crate) fn listening(&self) -> bool {
        self.listening.load(Ordering::Acquire)
    }

    /// A shutdown has begun.
    pub(crate) fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Whether a shutdown has begun.
    pub(crate) fn draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// A reload succeeded: the generation moves on.
    pub(crate) fn reloaded(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.reloads.fetch_add(1, Ordering::AcqRel);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
            });
        self.last_reload_unix.store(now, Ordering::Release);
    }

    /// A reload failed; the running configuration stays.
    pub(crate) fn reload_failed(&self) {
        self.failed_reloads.fetch_add(1, Ordering::AcqRel);
    }

    /// The configuration generation: 1 at start, one more per successful reload.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Successful and failed reloads.
    pub(crate) fn reloads(&self) -> (u64, u64) {
        (
            self.reloads.load(Ordering::Acquire),
            self.failed_reloads.load(Ordering::Acquire),
        )
    }

    /// When the last successful reload happened, Unix seconds (0: never).
    pub(crate) fn last_reload_unix(&self) -> i64 {
        self.last_reload_unix.load(Ordering::Acquire)
    }
}
