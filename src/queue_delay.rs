//! How long a shard's work waits before the shard gets to it, so that an
//! overloaded shard can refuse verifications whose answer would come too
//! late, instead of answering everything later and later.
//!
//! A shard runs its connections one after another on one thread; when
//! requests arrive faster than it verifies them, they wait in its run queue,
//! and the wait grows for as long as the overload lasts. A proxy gives up on
//! a check after its own timeout (Envoy's ext_authz: 200 ms by default), and
//! then either fails the request or, with `failure_mode_allow`, lets it
//! through unchecked: work answered after that is wasted at best.
//!
//! The measure is a heartbeat sent through the shard's own I/O: every few
//! milliseconds a thread of its own writes a byte into a loopback connection
//! of each shard ([`crate::server`] runs it), and the byte's arrival wakes
//! the shard's reading end through the same completion (io_uring) or
//! readiness (epoll) path, into the same run queue, as a client's request.
//! Until the shard reads it, every request the shard serves arrived no later
//! than the byte did, so it has waited at least as long as the byte has.
//! Neither a timer on the shard nor a byte the shard sends itself would do:
//! their wake-ups queue behind the shard's own work on epoll, and overtake
//! it on io_uring (tokio's LocalSet looks at wake-ups from outside the set
//! every 31 polls), so an overloaded shard would look on time. Per request
//! the cost is a clock read and an atomic load per probe; nothing is locked.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The I/O paths a shard's connections are woken through: its runtime's own
/// sockets, and tokio's (the gRPC face's, on an io_uring shard).
pub(crate) const PROBES: usize = 2;

/// A shard's heartbeat: written by the heartbeat thread and the shard,
/// read by the shard's authorizer.
#[derive(Debug)]
pub(crate) struct QueueDelay {
    /// What the sending times are counted from.
    base: Instant,
    /// When each probe's byte was sent, in nanoseconds after `base` (at
    /// least 1), while it is on its way; 0 otherwise.
    sent: [AtomicU64; PROBES],
}

impl QueueDelay {
    /// A heartbeat with no byte on its way.
    pub(crate) fn new() -> Arc<QueueDelay> {
        Arc::new(QueueDelay {
            base: Instant::now(),
            sent: std::array::from_fn(|_| AtomicU64::new(0)),
        })
    }

    /// How long a request served at `now` has waited at least: how long the
    /// oldest byte on its way has been (zero when none is).
    pub(crate) fn waited(&self, now: Instant) -> Duration {
        let now = now.saturating_duration_since(self.base);
        self.sent
            .iter()
            .map(|sent| sent.load(Ordering::Relaxed))
            .filter(|&sent| sent != 0)
            .map(|sent| now.saturating_sub(Duration::from_nanos(sent)))
            .max()
            .unwrap_or_default()
    }

    /// Notes that probe `probe` sends its byte at `at`; false (nothing to
    /// send) while its last byte is still on its way.
    pub(crate) fn send(&self, probe: usize, at: Instant) -> bool {
        let nanos = u64::try_from(at.saturating_duration_since(self.base).as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        self.sent.get(probe).is_some_and(|sent| {
            sent.compare_exchange(0, nanos, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        })
    }

    /// A shard `behind` (a second or more, or not at all): its first probe's
    /// byte sent a second before the heartbeat began, or none on its way.
    #[cfg(test)]
    pub(crate) fn behind(&self, behind: bool) {
        let second = if behind { 1 } else { 0 };
        if let Some(sent) = self.sent.first() {
            sent.store(second, Ordering::Relaxed);
        }
    }

    /// A heartbeat that began a second ago, for [`QueueDelay::behind`].
    #[cfg(test)]
    pub(crate) fn for_tests() -> Arc<QueueDelay> {
        let base = Instant::now()
            .checked_sub(Duration::from_secs(1))
            .unwrap_or_else(Instant::now);
        Arc::new(QueueDelay {
            base,
            sent: std::array::from_fn(|_| AtomicU64::new(0)),
        })
    }

    /// Notes that probe `probe`'s byte was read, or that the probe stopped
    /// (whose last byte must not count as waiting forever).
    pub(crate) fn arrived(&self, probe: usize) {
        if let Some(sent) = self.sent.get(probe) {
            sent.store(0, Ordering::Relaxed);
        }
    }
}

/// An authorizer's view of its shard's queue: whether to refuse work that
/// would need a verification.
#[derive(Debug, Clone)]
pub(crate) struct Shedding {
    delay: Arc<QueueDelay>,
    limit: Duration,
}

impl Shedding {
    /// Refuses verifications once requests have waited longer than `limit`.
    pub(crate) fn new(delay: Arc<QueueDelay>, limit: Duration) -> Shedding {
        Shedding { delay, limit }
    }

    /// Whether the request being served has waited longer than the limit.
    pub(crate) fn overloaded(&self) -> bool {
        self.delay.waited(Instant::now()) > self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_is_the_oldest_byte_on_its_way() {
        let delay = QueueDelay::new();
        let start = Instant::now() + Duration::from_secs(1);
        let ms = Duration::from_millis;
        assert_eq!(
            delay.waited(start + ms(500)),
            Duration::ZERO,
            "nothing sent"
        );
        assert!(delay.send(0, start));
        assert!(!delay.send(0, start + ms(10)), "one byte at a time");
        assert!(delay.send(1, start + ms(30)));
        assert_eq!(delay.waited(start + ms(75)), ms(75));
        delay.arrived(0);
        assert_eq!(delay.waited(start + ms(75)), ms(45));
        assert_eq!(delay.waited(start), Duration::ZERO, "sent after now");
        delay.arrived(1);
        assert_eq!(delay.waited(start + ms(75)), Duration::ZERO);
        assert!(!delay.send(PROBES, start), "no such probe");
        delay.arrived(PROBES);
    }

    #[test]
    fn shedding_starts_past_the_limit() {
        let delay = QueueDelay::for_tests();
        let shedding = Shedding::new(Arc::clone(&delay), Duration::from_millis(100));
        assert!(!shedding.overloaded());
        delay.behind(true);
        assert!(shedding.overloaded());
        delay.behind(false);
        assert!(!shedding.overloaded());
        delay.behind(true);
        delay.arrived(0);
        assert!(!shedding.overloaded());
    }
}
