//! What the revocation manager and its store followers share: where they
//! publish ([`RevocationSink`]), the set in force, what is known of the
//! store ([`StoreStatus`]), and the stop signal.
//!
//! Neighbours: [`super::manager`] (starts the followers), [`super::redis`]
//! (one follower).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::set::{Change, RevocationSet};
use super::state::{Revocations, StoreCounters};
use super::{Kind, RevocationSettings};
use crate::UnixTime;

/// How often, at most, expired entries are dropped from the set in force.
pub(super) const PRUNE_INTERVAL: Duration = Duration::from_secs(5);

/// Where the manager publishes.
pub trait RevocationSink: Send + Sync {
    /// Puts `revocations` in force.
    fn publish(&self, revocations: Arc<Revocations>);
}

/// What the manager knows of its store: for `/readyz`, `/metrics` and the
/// log, never for a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStatus {
    /// The store, as reports name it (no credentials).
    pub store: String,
    /// Entries of each kind in force (expired ones are dropped a few
    /// seconds after they expire).
    pub entries: [usize; Kind::COUNT],
    /// The last whole read of the store.
    pub last_read: Option<UnixTime>,
    /// Since when the store has been failing (the last good read's instant),
    /// if it is.
    pub failing_since: Option<UnixTime>,
    /// Why it is failing, if it is.
    pub last_error: Option<String>,
    /// Whole reads that succeeded.
    pub reads: u64,
    /// Reads or follows that failed.
    pub failures: u64,
    /// Single revocations applied as they arrived (Redis).
    pub changes: u64,
}

/// Shared between the manager thread and its owner.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) settings: RevocationSettings,
    pub(super) sink: Arc<dyn RevocationSink>,
    status: Mutex<StoreStatus>,
    stop: Mutex<bool>,
    wake: Condvar,
    /// The set in force, as the manager last published it.
    current: Mutex<Arc<Revocations>>,
    /// Shared with every published set, for `/metrics`.
    counters: Arc<StoreCounters>,
    /// The last instant the store was known current: read in full, a
    /// message or PING answered, a file polled unchanged.
    last_good: Mutex<Option<UnixTime>>,
    /// When expired entries were last looked for.
    pruned: Mutex<Instant>,
    /// The requests' clock, when pinned (`serve --now`).
    pinned_now: Option<UnixTime>,
    store_name: Arc<str>,
}

impl std::fmt::Debug for dyn RevocationSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RevocationSink")
    }
}

impl Shared {
    /// Nothing read yet from the store `settings` names.
    pub(super) fn new(
        settings: RevocationSettings,
        sink: Arc<dyn RevocationSink>,
        pinned_now: Option<UnixTime>,
    ) -> Shared {
        let store_name: Arc<str> = settings.store.describe().into();
        Shared {
            status: Mutex::new(StoreStatus {
                store: store_name.to_string(),
                ..StoreStatus::default()
            }),
            current: Mutex::new(Arc::new(Revocations {
                store: Some(Arc::clone(&store_name)),
                set: RevocationSet::empty(),
                last_read: None,
                failing_since: None,
                max_stale: settings.max_stale,
                on_unavailable: settings.on_unavailable,
                counters: Arc::default(),
            })),
            store_name,
            counters: Arc::default(),
            last_good: Mutex::new(None),
            pruned: Mutex::new(Instant::now()),
            pinned_now,
            settings,
            sink,
            stop: Mutex::new(false),
            wake: Condvar::new(),
        }
    }

    /// Asks the followers to stop, waking any that waits.
    pub(super) fn stop(&self) {
        *self.stop.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.wake.notify_all();
    }

    /// Publishes `set` as read in full, now.
    pub(super) fn read_in_full(&self, set: RevocationSet) {
        let now = UnixTime::now();
        let set = set.without_expired(self.expiry_now());
        self.good();
        self.update_status(|status| {
            status.entries = Kind::ALL.map(|kind| set.count(kind));
            status.last_read = Some(now);
            status.failing_since = None;
            status.last_error = None;
        });
        self.publish(set, None);
        // Counted once published: start-up waits for this count, and must
        // not open the listeners before the set is in force.
        self.update_status(|status| status.reads += 1);
        self.counters.reads.fetch_add(1, Ordering::Relaxed);
    }

    /// The instant entries are dropped at: the requests' clock, which a
    /// pinned `--now` fixes (dropping by the system clock then would free
    /// revocations still in force at the pinned instant).
    fn expiry_now(&self) -> UnixTime {
        self.pinned_now.unwrap_or_else(UnixTime::now)
    }

    /// Publishes the set in force with `changes` applied (Redis).
    pub(super) fn changed(&self, changes: Vec<Change>) {
        let count = changes.len() as u64;
        let current = self.current();
        let set = current.set.with(changes);
        self.update_status(|status| {
            status.entries = Kind::ALL.map(|kind| set.count(kind));
            status.changes += count;
            self.counters.changes.fetch_add(count, Ordering::Relaxed);
        });
        self.publish(set, current.failing_since);
    }

    /// Drops the entries that have expired, if any has, at most once every
    /// [`PRUNE_INTERVAL`]: lookups already ignore them, this frees their
    /// memory and takes them out of the counts.
    pub(super) fn drop_expired(&self) {
        let now = self.expiry_now();
        {
            let mut pruned = self.pruned.lock().unwrap_or_else(PoisonError::into_inner);
            if pruned.elapsed() < PRUNE_INTERVAL {
                return;
            }
            *pruned = Instant::now();
        }
        let current = self.current();
        if current.set.next_expiry().is_none_or(|next| next > now) {
            return;
        }
        let set = current.set.without_expired(now);
        self.update_status(|status| status.entries = Kind::ALL.map(|kind| set.count(kind)));
        self.publish(set, current.failing_since);
    }

    /// Marks the store as failing for `error`; the set in force stays.
    pub(super) fn failed(&self, error: &str) {
        let current = self.current();
        // Stale from the last instant the store was known current, not from
        // its last whole read (which a quiet store makes old).
        let failing_since = current
            .failing_since
            .or(*self
                .last_good
                .lock()
                .unwrap_or_else(PoisonError::into_inner))
            .unwrap_or_else(UnixTime::now);
        let newly = current.failing_since.is_none();
        let never_read = self.status().reads == 0;
        self.update_status(|status| {
            status.failing_since = Some(failing_since);
            status.last_error = Some(error.to_owned());
            status.failures += 1;
            self.counters.failures.fetch_add(1, Ordering::Relaxed);
        });
        if newly && never_read {
            // Start-up is waiting for the first read, and says why it failed.
            self.publish(current.set.clone(), Some(failing_since));
        } else if newly {
            crate::diagnostics::warn(format_args!(
                "revocations: {}: {error}; the last revocations read stay in force \
                 (on_unavailable = \"{}\" after {:?})",
                self.settings.store.describe(),
                self.settings.on_unavailable.name(),
                self.settings.max_stale
            ));
            self.publish(current.set.clone(), Some(failing_since));
        }
    }

    fn publish(&self, set: RevocationSet, failing_since: Option<UnixTime>) {
        let revocations = Arc::new(Revocations {
            store: Some(self.store_name.clone()),
            set,
            last_read: self.status().last_read,
            failing_since,
            max_stale: self.settings.max_stale,
            on_unavailable: self.settings.on_unavailable,
            counters: Arc::clone(&self.counters),
        });
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&revocations);
        self.sink.publish(revocations);
    }

    /// The store is current now.
    pub(super) fn good(&self) {
        *self
            .last_good
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(UnixTime::now());
    }

    pub(super) fn current(&self) -> Arc<Revocations> {
        Arc::clone(&self.current.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub(super) fn status(&self) -> StoreStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn update_status(&self, change: impl FnOnce(&mut StoreStatus)) {
        change(&mut self.status.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// Waits up to `timeout` or until stopped; true once stopped.
    pub(super) fn sleep(&self, timeout: Duration) -> bool {
        let stopped = self.stop.lock().unwrap_or_else(PoisonError::into_inner);
        let (stopped, _) = self
            .wake
            .wait_timeout_while(stopped, timeout, |stopped| !*stopped)
            .unwrap_or_else(PoisonError::into_inner);
        *stopped
    }

    pub(super) fn stopped(&self) -> bool {
        *self.stop.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
