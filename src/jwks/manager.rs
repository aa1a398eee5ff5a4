//! The key manager: one thread that starts a fetch of every remote key set
//! when it is due, each on a thread of its own (at most [`MAX_FETCHES`] at
//! once), so that an identity provider that hangs holds its own refresh up
//! to its `fetch_timeout` and never another configuration's. A fetch builds
//! the new verifier off the hot path and hands the configuration's new keys
//! to its [`KeySink`] (the snapshot's publisher), which replaces that
//! configuration's keys alone. Handing over (after a fetch, and for a
//! reloaded configuration in [`Manager::publish_reloaded`]) happens under
//! one lock, so a fetch never overwrites a reload or the reverse.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{FetchError, KeySink, KeySource, Location, RemoteKeys, TokenKeys, audit, unix_now};
use crate::diagnostics::{Level, info, log, warn};
use crate::{KeySet, KeySetError, Verifier, VerifierError};

/// A source due for a fetch.
struct Due {
    name: Box<str>,
    remote: Arc<RemoteKeys>,
    /// What discovery found before.
    jwks_uri: Option<String>,
    /// An unknown `kid` asked for it (not the schedule).
    refetch: bool,
}

/// How often the thread looks at the refetch flags and the clock.
const TICK: Duration = Duration::from_millis(50);

/// Fetches in flight at once. One per source up to this: sources that hang
/// each hold one until their `fetch_timeout`, and only with this many
/// hanging at once does another source wait (for the first to time out).
pub(crate) const MAX_FETCHES: usize = 8;

/// After this many failures in a row the backoff stops growing.
const MAX_BACKOFF_STEPS: u32 = 10;

/// A remote key source that had no keys when start-up gave up waiting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("token_config {config:?}: no key set from {location} within {waited:?}: {reason}")]
pub struct StartupError {
    /// The token configuration.
    pub config: String,
    /// Where its keys come from.
    pub location: String,
    /// How long start-up waited.
    pub waited: Duration,
    /// The last failure.
    pub reason: String,
}

/// Why a fetched document cannot be put in force.
#[derive(Debug, thiserror::Error)]
pub enum UnusableKeySet {
    /// JSON, but not a key set (a PEM file or a bare JWK is not a JWKS endpoint).
    #[error("not a JWKS document (an object with \"keys\")")]
    NotJwks,
    /// A shared secret has no business being served at a URL.
    #[error("the key set holds HMAC secrets; a secret served at a URL is refused")]
    Symmetric,
    /// The document does not parse as a key set.
    #[error(transparent)]
    KeySet(#[from] KeySetError),
    /// The keys do not fit the configuration's checks (its algorithms).
    #[error(transparent)]
    Verifier(#[from] VerifierError),
}

/// A reloaded configuration whose keys the manager refuses: the reload is
/// kept out, like a file that does not load.
#[derive(Debug, thiserror::Error)]
#[error("token_config {config:?}: {reason}")]
pub struct KeysRefused {
    /// The token configuration.
    pub config: Box<str>,
    /// What is wrong with its keys (boxed: a refusal is rare, and the
    /// `Result` carrying it stays small).
    pub reason: Box<KeysRefusal>,
}

/// Why [`KeysRefused`].
#[derive(Debug, thiserror::Error)]
pub enum KeysRefusal {
    /// The key set in force does not fit the configuration's new checks.
    #[error("the key set in force does not fit the new settings: {0}")]
    Unfit(UnusableKeySet),
    /// A source the reload adds could not be fetched.
    #[error("no key set from {location}: {error}")]
    FetchFailed {
        /// Where its keys come from.
        location: String,
        /// Why the fetch failed.
        error: FetchError,
    },
    /// A source the reload adds was fetched, but its key set is unusable.
    #[error("no key set from {location}: {error}")]
    Unusable {
        /// Where its keys come from.
        location: String,
        /// What is wrong with the key set.
        error: UnusableKeySet,
    },
}

/// One remote key source's state.
#[derive(Debug)]
struct Source {
    name: Box<str>,
    remote: Arc<RemoteKeys>,
    /// The last good document.
    good: Option<Arc<[u8]>>,
    /// When the last good document stops being served if no fetch succeeds:
    /// `max_stale` after it was due for a refresh, so the whole of
    /// `max_stale` is tolerance for failures, whatever the refresh period.
    expires: Instant,
    /// What discovery last found.
    jwks_uri: Option<String>,
    next_refresh: Instant,
    next_refetch: Instant,
    failures_in_row: u32,
    /// The last failure as it was logged: only compared and shown, so that
    /// a failure repeating itself is logged once.
    last_error: Option<String>,
    /// Whether the published snapshot lets this configuration's keys be used.
    available: bool,
    /// The keys last published (or, before any, the configuration's claim
    /// checks with no keys): the validation a new key set is built under,
    /// and what an audit compares it with.
    verifier: Arc<Verifier>,
    /// When it was first asked for (start-up waits from here).
    since: Instant,
    /// A fetch of it is in flight: no second one starts.
    fetching: bool,
    /// When the last good document arrived and the `max-age` it came with,
    /// so that a reload that changes the schedule reschedules from there.
    fetched: Option<(Instant, Option<Duration>)>,
}

impl Source {
    fn new(name: &str, remote: Arc<RemoteKeys>, verifier: Arc<Verifier>, now: Instant) -> Source {
        Source {
            verifier,
            name: name.into(),
            remote,
            good: None,
            expires: now,
            jwks_uri: None,
            next_refresh: now,
            next_refetch: now,
            failures_in_row: 0,
            last_error: None,
            available: false,
            since: now,
            fetching: false,
            fetched: None,
        }
    }

    /// The refresh due under `schedule` after a good fetch that came with
    /// `max_age`.
    fn period(schedule: &crate::jwks::Schedule, max_age: Option<Duration>) -> Duration {
        max_age.map_or(schedule.refresh_interval, |age| {
            age.clamp(schedule.min_refresh_interval, schedule.max_refresh_interval)
        })
    }

    /// A reload changed the schedule: the next refresh is where the new one
    /// puts it after the last good fetch (at once if that is past), not
    /// where the old one did. A source that is failing keeps its backoff.
    fn reschedule(&mut self, schedule: &crate::jwks::Schedule, now: Instant) {
        let Some((at, max_age)) = self.fetched else {
            return;
        };
        if self.failures_in_row > 0 {
            return;
        }
        let due = after(at, jitter(Source::period(schedule, max_age)));
        self.next_refresh = due.max(now);
        // From when the refresh was due, never from now: a reload must not
        // keep an old key set in force past max_stale.
        self.expires = after(due, schedule.max_stale);
    }
}

impl Source {
    /// The keys to put in force for this source's configuration.
    fn keys(&self) -> TokenKeys {
        TokenKeys::new(
            Arc::clone(&self.verifier),
            if self.available {
                KeySource::Fetched(Arc::clone(&self.remote))
            } else {
                KeySource::Unavailable(Arc::clone(&self.remote))
            },
        )
    }
}

/// What a fetch brought back (computed without the lock).
struct Fetch {
    result: Result<(Vec<u8>, Option<Duration>), FetchError>,
    jwks_uri: Option<String>,
    /// Discovery now names a `jwks_uri` this source may not fetch from: the
    /// one found before is no longer what the issuer says, and is dropped.
    forget_jwks_uri: bool,
}

/// Remote key sets of the policy in force.
#[derive(Debug)]
pub(crate) struct Manager {
    sink: Arc<dyn KeySink>,
    sources: Mutex<Vec<Source>>,
    stop: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Fetch threads running.
    fetches: AtomicUsize,
}

/// ± this fraction of a refresh period, so that many gateways started
/// together do not fetch together forever.
fn jitter(period: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let _ = getrandom::fill(&mut byte);
    let [random] = byte;
    // 0.9 .. 1.1 of the period.
    period.mul_f64(0.9 + f64::from(random) / 255.0 * 0.2)
}

/// Whether `source` fetches configuration `name`'s keys from the same place
/// as `remote` would (the keys it holds are then the ones `remote` means).
fn same_place(source: &Source, name: &str, remote: &RemoteKeys) -> bool {
    *source.name == *name && source.remote.settings.location == remote.settings.location
}

/// `now + wait`, or far in the future for a wait beyond what `Instant`
/// holds (a configured interval of centuries must not panic the thread).
fn after(now: Instant, wait: Duration) -> Instant {
    now.checked_add(wait)
        .or_else(|| now.checked_add(Duration::from_secs(u64::from(u32::MAX))))
        .unwrap_or(now)
}

/// The verifier for `body` under the validation of `checks`.
fn verifier_for(checks: &Verifier, body: &[u8]) -> Result<Verifier, UnusableKeySet> {
    // A JWKS only: a URL serving PEM or a bare JWK is not a key set endpoint.
    // (A document that is not JSON at all gets the parser's own words below.)
    let mut tape = jwtgate_engine::internals::json::Tape::new();
    if let Ok(document) = tape.parse(body, 16)
        && document
            .as_object()
            .is_none_or(|object| object.get("keys").is_none())
    {
        return Err(UnusableKeySet::NotJwks);
    }
    let keys = KeySet::from_jwks(body)?;
    if keys.is_symmetric() {
        return Err(UnusableKeySet::Symmetric);
    }
    Ok(Verifier::new(keys, checks.validation().clone())?)
}

fn lock(sources: &Mutex<Vec<Source>>) -> MutexGuard<'_, Vec<Source>> {
    sources
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Manager {
    /// Takes over the remote key sources among `configs` (name and keys of
    /// each token configuration; there may be none yet: a reload can add
    /// some), starts fetching them, and puts what arrives in force through
    /// `sink`.
    pub(crate) fn start(
        sink: Arc<dyn KeySink>,
        configs: &[(&str, &TokenKeys)],
    ) -> std::io::Result<Arc<Manager>> {
        let now = Instant::now();
        let sources: Vec<Source> = configs
            .iter()
            .filter_map(|(name, keys)| {
                let remote = keys.remote()?;
                Some(Source::new(
                    name,
                    Arc::clone(remote),
                    Arc::clone(keys.verifier()),
                    now,
                ))
            })
            .collect();
        let manager = Arc::new(Manager {
            sink,
            sources: Mutex::new(sources),
            stop: AtomicBool::new(false),
            thread: Mutex::new(None),
            fetches: AtomicUsize::new(0),
        });
        let running = Arc::clone(&manager);
        let handle = std::thread::Builder::new()
            .name("jwtgate-keys".to_owned())
            .spawn(move || running.run())?;
        *manager
            .thread
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(handle);
        Ok(manager)
    }

    /// Waits until every source has keys or its start-up timeout has passed.
    /// Sources without keys whose configuration does not allow starting
    /// without them are returned as errors. `None` when `interrupted` said
    /// to stop waiting (a shutdown signal during start-up).
    pub(crate) fn wait_for_keys(
        &self,
        mut interrupted: impl FnMut() -> bool,
    ) -> Option<Vec<StartupError>> {
        loop {
            if interrupted() {
                return None;
            }
            let now = Instant::now();
            let sources = lock(&self.sources);
            let waiting = sources.iter().any(|source| {
                source.good.is_none()
                    && now.duration_since(source.since) < source.remote.settings.startup.timeout
            });
            if !waiting {
                return Some(
                    sources
                        .iter()
                        .filter(|source| {
                            source.good.is_none()
                                && !source.remote.settings.startup.allow_without_keys
                        })
                        .map(|source| StartupError {
                            config: source.name.to_string(),
                            location: source.remote.settings.location.describe(),
                            waited: source.remote.settings.startup.timeout,
                            reason: source
                                .last_error
                                .clone()
                                .unwrap_or_else(|| "no answer yet".to_owned()),
                        })
                        .collect(),
                );
            }
            drop(sources);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The key states of a reloaded policy (`configs`: the name and the
    /// freshly loaded keys of each token configuration): configurations
    /// whose key source is unchanged keep their keys (rebuilt under the new
    /// validation) and their counters; new sources are fetched at once.
    /// `publish` puts the result in force while the manager holds its
    /// sources, so that no key refresh lands between the two.
    pub(crate) fn publish_reloaded(
        &self,
        mut configs: Vec<(Box<str>, TokenKeys)>,
        publish: impl FnOnce(Vec<TokenKeys>),
    ) -> Result<(), KeysRefused> {
        // A source the reload adds is fetched once before the policy goes
        // out (without the lock), so its tokens are not refused meanwhile;
        // if that fails, the reload is refused like a start-up would be.
        let mut first_fetches: Vec<(Box<str>, Fetch)> = {
            let sources = lock(&self.sources);
            configs
                .iter()
                .filter_map(|(name, keys)| {
                    let remote = keys.remote()?;
                    let known = sources
                        .iter()
                        .any(|source| same_place(source, name, remote));
                    (!known).then(|| (name.clone(), Arc::clone(remote)))
                })
                .collect::<Vec<_>>()
        }
        .chunks(MAX_FETCHES)
        .flat_map(|chunk| {
            // At the same time: a reload adding several sources waits for
            // the slowest, not for the sum.
            std::thread::scope(|scope| {
                let fetching: Vec<_> = chunk
                    .iter()
                    .map(|(name, remote)| {
                        scope.spawn(move || (name.clone(), fetch(remote, None, false)))
                    })
                    .collect();
                fetching
                    .into_iter()
                    .zip(chunk)
                    .map(|(fetching, (name, remote))| {
                        // A fetch that panicked is a failed one: the reload
                        // is refused as for any other failure.
                        fetching.join().unwrap_or_else(|_| {
                            (
                                name.clone(),
                                Fetch {
                                    result: Err(FetchError::Transport {
                                        url: remote.settings.location.describe(),
                                        reason: "the fetch failed unexpectedly".to_owned(),
                                    }),
                                    jwks_uri: None,
                                    forget_jwks_uri: false,
                                },
                            )
                        })
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
        let mut sources = lock(&self.sources);
        // Checked before anything changes, so that a refused reload leaves
        // the running sources exactly as they were.
        for (name, keys) in &configs {
            let Some(remote) = keys.remote() else {
                continue;
            };
            let known = sources
                .iter()
                .find(|source| same_place(source, name, remote));
            let refusal = match known {
                Some(source) => source
                    .good
                    .as_ref()
                    .and_then(|body| verifier_for(keys.verifier(), body).err())
                    .map(KeysRefusal::Unfit),
                None => first_fetches
                    .iter()
                    .find(|(fetched, _)| fetched == name)
                    .filter(|_| !remote.settings.startup.allow_without_keys)
                    .and_then(|(_, fetched)| {
                        let location = remote.settings.location.describe();
                        match &fetched.result {
                            Ok((body, _)) => verifier_for(keys.verifier(), body)
                                .err()
                                .map(|error| KeysRefusal::Unusable { location, error }),
                            Err(error) => Some(KeysRefusal::FetchFailed {
                                location,
                                error: error.clone(),
                            }),
                        }
                    }),
            };
            if let Some(reason) = refusal {
                return Err(KeysRefused {
                    config: name.clone(),
                    reason: Box::new(reason),
                });
            }
        }
        let now = Instant::now();
        let mut kept = Vec::with_capacity(sources.len());
        for (name, keys) in &mut configs {
            let Some(remote) = keys.remote().cloned() else {
                continue;
            };
            let known = sources
                .iter()
                .position(|source| same_place(source, name, &remote));
            let mut source = match known {
                Some(position) => {
                    // Same keys, maybe other timeouts or a rotated CA file:
                    // the new settings (and client) take over the state.
                    let mut source = sources.swap_remove(position);
                    if !Arc::ptr_eq(&source.remote, &remote) {
                        let schedule = &remote.settings.schedule;
                        if source.remote.settings.schedule != *schedule {
                            source.reschedule(schedule, now);
                        }
                        remote.carry_over(&source.remote);
                        source.remote = Arc::clone(&remote);
                        // A fetch in flight under the old settings lands
                        // nowhere (it finds no source with its settings):
                        // the next one may start.
                        source.fetching = false;
                    }
                    source
                }
                None => Source::new(name, Arc::clone(&remote), Arc::clone(keys.verifier()), now),
            };
            // The new configuration's checks, whatever keys end up in force.
            source.verifier = Arc::clone(keys.verifier());
            let mut available = false;
            if let Some(position) = first_fetches
                .iter()
                .position(|(fetched, _)| fetched == name)
            {
                let (_, outcome) = first_fetches.swap_remove(position);
                if let Some(verifier) = absorb(&mut source, name, outcome) {
                    source.verifier = Arc::new(verifier);
                    available = true;
                }
            } else if let Some(verifier) = source
                .good
                .as_ref()
                .and_then(|body| verifier_for(keys.verifier(), body).ok())
            {
                source.verifier = Arc::new(verifier);
                available = source.available;
            }
            source.available = available;
            *keys = source.keys();
            kept.push(source);
        }
        *sources = kept;
        publish(configs.into_iter().map(|(_, keys)| keys).collect());
        Ok(())
    }

    /// Stops the thread (at shutdown).
    pub(crate) fn stop(&self) {
        // Not joined: a fetch in progress may take up to its timeout, and a
        // shutdown must not wait for an identity provider. The thread ends
        // at its next look at the flag (or with the process).
        self.stop.store(true, Ordering::Release);
        drop(
            self.thread
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take(),
        );
    }

    fn run(self: &Arc<Self>) {
        while !self.stop.load(Ordering::Acquire) {
            let now = Instant::now();
            let due: Vec<Due> = {
                let mut sources = lock(&self.sources);
                let room = MAX_FETCHES.saturating_sub(self.fetches.load(Ordering::Acquire));
                sources
                    .iter_mut()
                    .filter(|source| !source.fetching)
                    .filter_map(|source| {
                        let refetch = now >= source.next_refetch && source.remote.take_wanted();
                        (now >= source.next_refresh || refetch).then(|| {
                            source.fetching = true;
                            Due {
                                name: source.name.clone(),
                                remote: Arc::clone(&source.remote),
                                jwks_uri: source.jwks_uri.clone(),
                                refetch,
                            }
                        })
                    })
                    .take(room)
                    .collect()
            };
            for due in due {
                self.start_fetch(due);
            }
            self.expire_stale(Instant::now());
            std::thread::sleep(TICK);
        }
    }

    /// Fetches `due` on a thread of its own: the network is used without
    /// the lock, so a slow identity provider holds up neither a reload nor
    /// another source.
    fn start_fetch(self: &Arc<Self>, due: Due) {
        self.fetches.fetch_add(1, Ordering::AcqRel);
        let manager = Arc::clone(self);
        let name = due.name.clone();
        let remote = Arc::clone(&due.remote);
        let started = std::thread::Builder::new()
            .name("jwtgate-fetch".to_owned())
            .spawn(move || {
                let done = FetchDone {
                    manager: &manager,
                    name: &due.name,
                    remote: &due.remote,
                };
                let outcome = fetch(&due.remote, due.jwks_uri.clone(), due.refetch);
                manager.apply(&due.name, &due.remote, outcome);
                drop(done);
            });
        if let Err(error) = started {
            self.fetches.fetch_sub(1, Ordering::AcqRel);
            // Out of threads: the source is due again at the next tick.
            if let Some(source) = lock(&self.sources)
                .iter_mut()
                .find(|source| source.name == name && Arc::ptr_eq(&source.remote, &remote))
            {
                source.fetching = false;
            }
            warn(format_args!(
                "keys of token_config {name:?}: could not start a fetch: {error}"
            ));
        }
    }

    fn apply(&self, name: &str, remote: &Arc<RemoteKeys>, outcome: Fetch) {
        let mut sources = lock(&self.sources);
        let Some(source) = sources
            .iter_mut()
            .find(|source| *source.name == *name && Arc::ptr_eq(&source.remote, remote))
        else {
            // Reloaded away while fetching.
            return;
        };
        if let Some(verifier) = absorb(source, name, outcome) {
            source.verifier = Arc::new(verifier);
            self.sink.refreshed(remote, source.keys());
        }
    }

    /// Stops serving key sets older than their `max_stale`.
    fn expire_stale(&self, now: Instant) {
        let mut sources = lock(&self.sources);
        for source in sources.iter_mut() {
            if source.good.is_none() {
                continue;
            }
            let max_stale = source.remote.settings.schedule.max_stale;
            if source.available && now > source.expires {
                source.available = false;
                warn(format_args!(
                    "keys of token_config {:?}: the last good key set is older than max_stale ({max_stale:?}); answering keys_unavailable until a fetch succeeds",
                    source.name
                ));
                self.sink.refreshed(&source.remote, source.keys());
            }
        }
    }
}

/// A fetch thread's end, however it ends (a panic included): its slot is
/// given back, and its source may be fetched again. Were a panic to skip
/// this, the source would never be fetched again and a slot would be lost.
struct FetchDone<'f> {
    manager: &'f Manager,
    name: &'f str,
    remote: &'f Arc<RemoteKeys>,
}

impl Drop for FetchDone<'_> {
    fn drop(&mut self) {
        if let Some(source) = lock(&self.manager.sources)
            .iter_mut()
            .find(|source| *source.name == *self.name && Arc::ptr_eq(&source.remote, self.remote))
        {
            source.fetching = false;
        }
        self.manager.fetches.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Takes a fetch's result into `source` (schedule, counters, audit, log
/// lines) and returns the verifier to put in force for configuration
/// `name`, if the fetch brought a usable key set.
fn absorb(source: &mut Source, name: &str, outcome: Fetch) -> Option<Verifier> {
    let now = Instant::now();
    let remote = Arc::clone(&source.remote);
    let schedule = remote.settings.schedule;
    source.next_refetch = after(now, schedule.min_refetch_interval);
    if outcome.jwks_uri.is_some() || outcome.forget_jwks_uri {
        source.jwks_uri = outcome.jwks_uri;
    }
    // Rendered once here: a failure is logged, kept for the start-up error
    // and compared with the previous one, nothing more.
    let built = match outcome.result {
        Err(error) => Err(error.to_string()),
        Ok((body, max_age)) => verifier_for(&source.verifier, &body)
            .map(|verifier| (body, max_age, verifier))
            .map_err(|reason| format!("{}: {reason}", remote.settings.location.describe())),
    };
    match built {
        Ok((body, max_age, verifier)) => {
            let before = source.good.as_ref().map(|_| source.verifier.keys());
            let changes = audit::changes(before, verifier.keys(), &body);
            remote.fetches.fetch_add(1, Ordering::Relaxed);
            remote.fetched_at.store(unix_now(), Ordering::Relaxed);
            remote.failing.store(false, Ordering::Relaxed);
            // A fresh set answers every unknown kid raised before it.
            remote.wanted.store(false, Ordering::Relaxed);
            if !changes.is_empty() {
                remote.changes.fetch_add(1, Ordering::Relaxed);
                for change in &changes {
                    // A rotation is an event to record; a key dropped as
                    // unusable is one to look into.
                    let level = if change.starts_with("dropped") {
                        Level::Warning
                    } else {
                        Level::Info
                    };
                    log(
                        level,
                        format_args!("keys of token_config {name:?}: {change}"),
                    );
                }
            }
            if source.last_error.take().is_some() || !source.available {
                let count = verifier.keys().keys().len();
                info(format_args!(
                    "keys of token_config {name:?}: {count} key{} from {} in force",
                    if count == 1 { "" } else { "s" },
                    remote.settings.location.describe()
                ));
            }
            let period = Source::period(&schedule, max_age);
            source.fetched = Some((now, max_age));
            source.next_refresh = after(now, jitter(period));
            source.expires = after(source.next_refresh, schedule.max_stale);
            source.failures_in_row = 0;
            let unchanged = source.available && source.good.as_deref() == Some(body.as_slice());
            source.good = Some(body.into());
            source.available = true;
            // The same document again: nothing to publish.
            (!unchanged).then_some(verifier)
        }
        Err(reason) => {
            remote.failures.fetch_add(1, Ordering::Relaxed);
            remote.failed_because(&reason);
            source.failures_in_row = (source.failures_in_row + 1).min(MAX_BACKOFF_STEPS);
            // 1 s, 2 s, 4 s ... up to the refresh interval; without usable
            // keys, every min_refetch_interval at most, to recover soon.
            let cap = if source.available {
                schedule.refresh_interval
            } else {
                schedule.min_refetch_interval
            };
            let backoff =
                Duration::from_secs(1 << source.failures_in_row.saturating_sub(1)).min(cap);
            source.next_refresh = after(now, jitter(backoff));
            if source.last_error.as_deref() != Some(reason.as_str()) {
                let kept = if source.good.is_some() {
                    "keeping the last good key set"
                } else {
                    "no keys yet"
                };
                warn(format_args!(
                    "keys of token_config {name:?}: fetch failed ({kept}): {reason}"
                ));
            }
            source.last_error = Some(reason);
            None
        }
    }
}

/// Fetches `remote`'s key set once, as the key manager's first fetch would,
/// and builds it under the validation of `checks`: the key set, or why it
/// could not be had, in words (`check-config --fetch`).
pub(crate) fn fetch_once(remote: &RemoteKeys, checks: &Verifier) -> Result<Verifier, String> {
    let location = remote.settings.location.describe();
    let (body, _) = fetch(remote, None, false)
        .result
        .map_err(|error| error.to_string())?;
    verifier_for(checks, &body).map_err(|error| format!("{location}: {error}"))
}

/// Fetches a source's key set (through discovery when configured; a refetch
/// for an unknown `kid` reuses the `jwks_uri` found before).
fn fetch(remote: &RemoteKeys, known_uri: Option<String>, refetch: bool) -> Fetch {
    let fetcher = &remote.fetcher;
    let known_uri_again = known_uri.clone();
    let (url, discovered) = match &remote.settings.location {
        Location::Url(url) => (url.clone(), None),
        Location::Discovery { issuer } => match known_uri.clone().filter(|_| refetch) {
            Some(uri) => (uri, None),
            None => match (fetcher.discover(issuer), known_uri_again) {
                (Ok(uri), _) => (uri.clone(), Some(uri)),
                // Discovery is down but its last answer still points somewhere.
                (Err(error), Some(uri)) if !error.is_refusal() => (uri, None),
                // Down with no answer before, or up and pointing off the
                // allowed hosts: a failed fetch (the last good keys stay).
                (Err(error), _) => {
                    return Fetch {
                        forget_jwks_uri: error.is_refusal(),
                        result: Err(error),
                        jwks_uri: None,
                    };
                }
            },
        },
    };
    Fetch {
        result: fetcher
            .get(&url)
            .map(|fetched| (fetched.body, fetched.max_age)),
        jwks_uri: discovered,
        forget_jwks_uri: false,
    }
}
