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
    probes: [Probe; PROBES],
}

#[derive(Debug, Default)]
struct Probe {
    /// When the byte on its way was sent, in nanoseconds after `base` (at
    /// least 1); 0 when none is; [`STOPPED`] once the probe has ended.
    sent: AtomicU64,
    /// How long the last byte that arrived took, in nanoseconds: the wait
    /// as last measured, which stands until the next byte arrives (else
    /// each byte's arrival would read as "no wait" until the next one aged
    /// past the limit, and a steady overload would be verified in bursts).
    last: AtomicU64,
}

/// A probe that has ended: it sends no more, and nothing of it counts.
const STOPPED: u64 = u64::MAX;

impl QueueDelay {
    /// A heartbeat with no byte on its way.
    pub(crate) fn new() -> Arc<QueueDelay> {
        QueueDelay::since(Instant::now())
    }

    fn since(base: Instant) -> Arc<QueueDelay> {
        Arc::new(QueueDelay {
            base,
            probes: std::array::from_fn(|_| Probe::default()),
        })
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos())
            .unwrap_or(STOPPED - 1)
            .clamp(1, STOPPED - 1)
    }

    /// How long a request served at `now` has waited at least: for each
    /// probe, how long its byte on its way has been, or the last byte took
    /// if that is longer; the longest of the probes (zero when none says).
    pub(crate) fn waited(&self, now: Instant) -> Duration {
        let now = now.saturating_duration_since(self.base);
        self.probes
            .iter()
            .map(|probe| {
                let on_its_way = match probe.sent.load(Ordering::Relaxed) {
                    0 | STOPPED => Duration::ZERO,
                    sent => now.saturating_sub(Duration::from_nanos(sent)),
                };
                on_its_way.max(Duration::from_nanos(probe.last.load(Ordering::Relaxed)))
            })
            .max()
            .unwrap_or_default()
    }

    /// Notes that probe `probe` sends its byte at `at`; false (nothing to
    /// send) while its last byte is still on its way or once it has ended.
    pub(crate) fn send(&self, probe: usize, at: Instant) -> bool {
        let nanos = self.nanos(at);
        self.probes.get(probe).is_some_and(|probe| {
            probe
                .sent
                .compare_exchange(0, nanos, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        })
    }

    /// Takes back a byte that could not be sent, so the next period sends one.
    pub(crate) fn unsent(&self, probe: usize) {
        if let Some(probe) = self.probes.get(probe) {
            let sent = probe.sent.load(Ordering::Relaxed);
            if sent != STOPPED {
                let _ = probe
                    .sent
                    .compare_exchange(sent, 0, Ordering::Relaxed, Ordering::Relaxed);
            }
        }
    }

    /// Notes that probe `probe`'s byte was read at `at`: how long it took
    /// is the wait as measured until the next byte arrives.
    pub(crate) fn arrived(&self, probe: usize, at: Instant) {
        let Some(probe) = self.probes.get(probe) else {
            return;
        };
        let sent = probe.sent.load(Ordering::Relaxed);
        if sent == 0 || sent == STOPPED {
            return;
        }
        let took = self.nanos(at).saturating_sub(sent);
        if probe
            .sent
            .compare_exchange(sent, 0, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            probe.last.store(took, Ordering::Relaxed);
        }
    }

    /// Ends probe `probe` for good: its byte on its way, if any, and its
    /// last measure no longer count, and it sends no more. A probe whose
    /// reading end is gone must never read as a wait that grows forever.
    pub(crate) fn stop(&self, probe: usize) {
        if let Some(probe) = self.probes.get(probe) {
            probe.sent.store(STOPPED, Ordering::Relaxed);
            probe.last.store(0, Ordering::Relaxed);
        }
    }

    /// A shard `behind` (a second or more, or not at all): its first probe's
    /// byte sent a second before the heartbeat began, or none on its way.
    #[cfg(test)]
    pub(crate) fn behind(&self, behind: bool) {
        if let Some(probe) = self.probes.first() {
            probe.sent.store(u64::from(behind), Ordering::Relaxed);
            probe.last.store(0, Ordering::Relaxed);
        }
    }

    /// A heartbeat that began a second ago, for [`QueueDelay::behind`].
    #[cfg(test)]
    pub(crate) fn for_tests() -> Arc<QueueDelay> {
        QueueDelay::since(
            Instant::now()
                .checked_sub(Duration::from_secs(1))
                .unwrap_or_else(Instant::now),
        )
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
    fn the_wait_is_the_byte_on_its_way_or_the_last_one_s_transit() {
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
        assert_eq!(delay.waited(start), Duration::ZERO, "sent after now");
        delay.arrived(0, start + ms(80));
        delay.arrived(1, start + ms(40));
        // Until the next byte arrives, the last transit stands.
        assert_eq!(delay.waited(start + ms(500)), ms(80));
        assert!(delay.send(0, start + ms(90)));
        assert_eq!(
            delay.waited(start + ms(300)),
            ms(210),
            "the new byte is older"
        );
        delay.arrived(0, start + ms(95));
        assert_eq!(delay.waited(start + ms(300)), ms(10), "caught up");
        assert!(!delay.send(PROBES, start), "no such probe");
        delay.arrived(PROBES, start);
    }

    #[test]
    fn a_probe_that_ended_never_counts_nor_sends_again() {
        let delay = QueueDelay::new();
        let start = Instant::now() + Duration::from_secs(1);
        assert!(delay.send(0, start));
        delay.stop(0);
        let later = start + Duration::from_secs(3600);
        assert_eq!(delay.waited(later), Duration::ZERO);
        assert!(!delay.send(0, later), "stopped for good");
        delay.arrived(0, later);
        delay.unsent(0);
        assert!(!delay.send(0, later));
        assert_eq!(delay.waited(later), Duration::ZERO);
    }

    #[test]
    fn a_byte_that_could_not_be_sent_is_taken_back() {
        let delay = QueueDelay::new();
        let start = Instant::now() + Duration::from_secs(1);
        assert!(delay.send(0, start));
        delay.unsent(0);
        assert_eq!(
            delay.waited(start + Duration::from_secs(60)),
            Duration::ZERO
        );
        assert!(delay.send(0, start));
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
    }
}
