//! The thread that keeps the published revocations current
//! (`jwtgate-revocations`): it reads the whole store at start (start-up
//! waits for that first read, like fetched keys), then follows it, and
//! publishes a new [`Revocations`] whenever the set or the store's health
//! changes. A store that cannot be read leaves the last set in force,
//! marked with the instant of the last good read, so that `max_stale` and
//! `on_unavailable` apply from the request's clock without anything else
//! being published.
//!
//! - A file is polled every [`FILE_POLL`] and read again once its
//!   modification time or size has changed and stayed so for one poll.
//! - Redis: see [`super::redis`].
//!
//! Neighbours: [`super::state`] (what is published), `crate::snapshot`
//! (where it is published), `crate::admin` (which reports
//! [`StoreStatus`]).

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::file;
use super::redis::RedisFollower;
use super::set::RevocationSet;
use super::shared::{RevocationSink, Shared, StoreStatus};
use super::state::Revocations;
use super::{RevocationSettings, Store};
use crate::UnixTime;
use crate::stamp::Stamp;

/// How often a revocation file is looked at.
pub const FILE_POLL: Duration = Duration::from_secs(1);
/// Polls a file that keeps changing waits to settle before it is read anyway.
const MAX_UNSETTLED_POLLS: u32 = 3;
/// How long start-up waits for the first read of the store.
pub const STARTUP_WAIT: Duration = Duration::from_secs(30);
/// How often start-up looks whether the store has been read.
const STARTUP_POLL: Duration = Duration::from_millis(20);

/// Keeps the published revocations current; stops its thread when dropped.
#[derive(Debug)]
pub struct RevocationManager {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl RevocationManager {
    /// Reads the store (waiting up to [`STARTUP_WAIT`] for a first good
    /// read, which it publishes) and starts following it.
    /// `should_stop` is asked between attempts; once it says yes, start
    /// gives up. `pinned_now` is the requests' clock when it is pinned
    /// (`serve --now`): entries expire by it.
    pub fn start(
        settings: RevocationSettings,
        sink: Arc<dyn RevocationSink>,
        pinned_now: Option<UnixTime>,
        should_stop: &mut dyn FnMut() -> bool,
    ) -> Result<RevocationManager, String> {
        let shared = Arc::new(Shared::new(settings, sink, pinned_now));
        let thread = match &shared.settings.store {
            Store::File(path) => {
                let path = path.clone();
                let deadline = Instant::now() + STARTUP_WAIT;
                let mut stamp = Stamp::of(&path);
                loop {
                    match read_file(&shared, &path) {
                        Ok(set) => {
                            shared.read_in_full(set);
                            break;
                        }
                        Err(error) if Instant::now() >= deadline || should_stop() => {
                            return Err(format!(
                                "revocations not read within {STARTUP_WAIT:?}: {error}"
                            ));
                        }
                        Err(_) => {
                            std::thread::sleep(FILE_POLL);
                            stamp = Stamp::of(&path);
                        }
                    }
                }
                let follower = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name("jwtgate-revocations".into())
                    .spawn(move || follow_file(&follower, &path, stamp))
                    .map_err(|e| format!("cannot start the revocation thread: {e}"))?
            }
            Store::Redis { .. } => {
                let follower = RedisFollower::new(Arc::clone(&shared))?;
                let thread = std::thread::Builder::new()
                    .name("jwtgate-revocations".into())
                    .spawn(move || follower.follow())
                    .map_err(|e| format!("cannot start the revocation thread: {e}"))?;
                // The follower's first subscription reads the whole store
                // (once: the read a later subscription would repeat is the
                // one start-up waits for).
                let deadline = Instant::now() + STARTUP_WAIT;
                while shared.status().reads == 0 {
                    if Instant::now() >= deadline || should_stop() {
                        shared.stop();
                        let why = shared
                            .status()
                            .last_error
                            .unwrap_or_else(|| "no answer".to_owned());
                        return Err(format!(
                            "revocations not read within {STARTUP_WAIT:?}: {why}"
                        ));
                    }
                    shared.sleep(STARTUP_POLL);
                }
                thread
            }
        };
        Ok(RevocationManager {
            shared,
            thread: Some(thread),
        })
    }

    /// What the manager knows of its store now.
    pub fn status(&self) -> StoreStatus {
        self.shared.status()
    }

    /// The revocations in force.
    pub fn current(&self) -> Arc<Revocations> {
        self.shared.current()
    }
}

impl Drop for RevocationManager {
    fn drop(&mut self) {
        // Not joined: a read of a large store, or a Redis command waiting
        // out its timeout, must not hold up a shutdown. The thread sees the
        // stop at its next wait and ends; at exit it is gone anyway.
        self.shared.stop();
        drop(self.thread.take());
    }
}

/// Polls `path` and publishes what it holds whenever it changed and stayed
/// so for one poll.
fn follow_file(shared: &Shared, path: &std::path::Path, mut stamp: Stamp) {
    let mut pending: Option<Stamp> = None;
    let mut last_error: Option<String> = None;
    // Polls the file has kept changing for without being read.
    let mut unsettled = 0;
    while !shared.sleep(FILE_POLL) {
        shared.drop_expired();
        let now = Stamp::of(path);
        if now == stamp && last_error.is_none() {
            // Unchanged and read fine: the store is current.
            shared.good();
        }
        // A file appended to more often than it is polled (a `revoke` a
        // second) never settles; it is read anyway, at most
        // MAX_UNSETTLED_POLLS polls after it changed.
        if pending != Some(now) && unsettled < MAX_UNSETTLED_POLLS {
            // Changed since the last poll (or first seen changed): wait one
            // poll for it to settle.
            let changing = pending.is_some();
            pending = (now != stamp).then_some(now);
            if pending.is_some() && changing {
                unsettled += 1;
            }
            if pending.is_some() || last_error.is_none() {
                continue;
            }
        }
        unsettled = 0;
        match read_file(shared, path) {
            Ok(set) => {
                stamp = now;
                pending = None;
                last_error = None;
                shared.read_in_full(set);
            }
            Err(error) => {
                stamp = now;
                pending = None;
                let error = error.to_string();
                if last_error.as_ref() != Some(&error) {
                    shared.failed(&error);
                }
                last_error = Some(error);
            }
        }
    }
}

/// The set the file at `path` holds, sharing the unchanged entries with the
/// set in force.
fn read_file(shared: &Shared, path: &std::path::Path) -> Result<RevocationSet, file::FileError> {
    let current = shared.current();
    let mut rebuild = current.set.rebuild();
    file::read_each(path, &mut |revocation| rebuild.add(revocation))?;
    Ok(rebuild.finish())
}
