//! The key manager: one thread that fetches every remote key set when it is
//! due, builds the new verifier off the hot path and publishes a new policy
//! snapshot with it. Publishing (here, and for a reloaded configuration in
//! [`Manager::publish_reloaded`]) happens under one lock, so a fetch never
//! overwrites a reload or the reverse.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Location, RemoteKeys, audit, unix_now};
use crate::authz::SharedPolicy;
use crate::keys::KeySet;
use crate::policy::{Policy, TokenConfig};
use crate::{Verifier, server};

/// A source due for a fetch: its name, the source, a `jwks_uri` found by
/// discovery before, and whether an unknown `kid` asked for it.
type Due = (Box<str>, Arc<RemoteKeys>, Option<String>, bool);

/// How often the thread looks at the refetch flags and the clock.
const TICK: Duration = Duration::from_millis(50);

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

/// One remote key source's state.
#[derive(Debug)]
struct Source {
    name: Box<str>,
    remote: Arc<RemoteKeys>,
    /// The last good document and when it was fetched.
    good: Option<(Arc<[u8]>, Instant)>,
    /// What discovery last found.
    jwks_uri: Option<String>,
    next_refresh: Instant,
    next_refetch: Instant,
    failures_in_row: u32,
    last_error: Option<String>,
    /// Whether the published policy lets this configuration's keys be used.
    available: bool,
    /// When it was first asked for (start-up waits from here).
    since: Instant,
}

impl Source {
    fn new(name: &str, remote: Arc<RemoteKeys>, now: Instant) -> Source {
        Source {
            name: name.into(),
            remote,
            good: None,
            jwks_uri: None,
            next_refresh: now,
            next_refetch: now,
            failures_in_row: 0,
            last_error: None,
            available: false,
            since: now,
        }
    }
}

/// What a fetch brought back (computed without the lock).
struct Fetch {
    result: Result<(Vec<u8>, Option<Duration>), String>,
    jwks_uri: Option<String>,
}

/// Remote key sets of the policy in force.
#[derive(Debug)]
pub struct Manager {
    shared: SharedPolicy,
    sources: Mutex<Vec<Source>>,
    stop: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
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

/// `now + wait`, or far in the future for a wait beyond what `Instant`
/// holds (a configured interval of centuries must not panic the thread).
fn after(now: Instant, wait: Duration) -> Instant {
    now.checked_add(wait)
        .or_else(|| now.checked_add(Duration::from_secs(u64::from(u32::MAX))))
        .unwrap_or(now)
}

/// The verifier for `body` under `config`'s validation.
fn verifier_for(config: &TokenConfig, body: &[u8]) -> Result<(Verifier, KeySet), String> {
    let keys = KeySet::parse(body).map_err(|error| error.to_string())?;
    if keys.is_symmetric() {
        return Err("the key set holds HMAC secrets; a secret served at a URL is refused".into());
    }
    // Parsed twice: one set goes into the verifier, one stays for the audit.
    let audit = KeySet::parse(body).map_err(|error| error.to_string())?;
    let verifier = Verifier::new(keys, config.verifier.validation().clone())
        .map_err(|error| error.to_string())?;
    Ok((verifier, audit))
}

fn lock(sources: &Mutex<Vec<Source>>) -> MutexGuard<'_, Vec<Source>> {
    sources
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Manager {
    /// Takes over the remote key sources of the policy in `shared` and starts
    /// fetching them; `None` when it has none.
    pub fn start(shared: SharedPolicy) -> std::io::Result<Option<Arc<Manager>>> {
        let now = Instant::now();
        let sources: Vec<Source> = shared
            .load()
            .configs
            .iter()
            .filter_map(|config| {
                let remote = config.remote.as_ref()?;
                Some(Source::new(&config.name, Arc::clone(remote), now))
            })
            .collect();
        if sources.is_empty() {
            return Ok(None);
        }
        let manager = Arc::new(Manager {
            shared,
            sources: Mutex::new(sources),
            stop: AtomicBool::new(false),
            thread: Mutex::new(None),
        });
        let running = Arc::clone(&manager);
        let handle = std::thread::Builder::new()
            .name("jwtgate-keys".to_owned())
            .spawn(move || running.run())?;
        *manager
            .thread
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(handle);
        Ok(Some(manager))
    }

    /// Waits until every source has keys or its start-up timeout has passed.
    /// Sources without keys whose configuration does not allow starting
    /// without them are returned as errors.
    pub fn wait_for_keys(&self) -> Vec<StartupError> {
        loop {
            let now = Instant::now();
            let sources = lock(&self.sources);
            let waiting = sources.iter().any(|source| {
                source.good.is_none()
                    && now.duration_since(source.since) < source.remote.settings.startup.timeout
            });
            if !waiting {
                return sources
                    .iter()
                    .filter(|source| {
                        source.good.is_none() && !source.remote.settings.startup.allow_without_keys
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
                    .collect();
            }
            drop(sources);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Publishes a reloaded policy: configurations whose key source is
    /// unchanged keep their keys (rebuilt under the new validation) and their
    /// counters; new sources are fetched at once.
    pub fn publish_reloaded(&self, mut policy: Policy) {
        // A source the reload adds is fetched once before the policy goes
        // out (without the lock), so its tokens are not refused meanwhile.
        let mut first_fetches: Vec<(Box<str>, Fetch)> = {
            let sources = lock(&self.sources);
            policy
                .configs
                .iter()
                .filter_map(|config| {
                    let remote = config.remote.as_ref()?;
                    let known = sources.iter().any(|source| {
                        *source.name == *config.name && source.remote.settings == remote.settings
                    });
                    (!known).then(|| (config.name.clone(), Arc::clone(remote)))
                })
                .collect::<Vec<_>>()
        }
        .into_iter()
        .map(|(name, remote)| (name, fetch(&remote, None, false)))
        .collect();
        let mut sources = lock(&self.sources);
        let now = Instant::now();
        let mut kept = Vec::with_capacity(sources.len());
        for config in &mut policy.configs {
            let Some(remote) = config.remote.clone() else {
                continue;
            };
            let known = sources.iter().position(|source| {
                *source.name == *config.name && source.remote.settings == remote.settings
            });
            let mut source = match known {
                Some(position) => sources.swap_remove(position),
                None => Source::new(&config.name, remote, now),
            };
            config.remote = Some(Arc::clone(&source.remote));
            config.keys_available = false;
            if let Some(position) = first_fetches
                .iter()
                .position(|(name, _)| *name == config.name)
            {
                let (_, outcome) = first_fetches.swap_remove(position);
                if let Some(verifier) = absorb(&mut source, config, outcome) {
                    config.verifier = Arc::new(verifier);
                    config.keys_available = true;
                }
            } else if let Some((body, _)) = &source.good {
                match verifier_for(config, body) {
                    Ok((verifier, _)) => {
                        config.verifier = Arc::new(verifier);
                        config.keys_available = source.available;
                    }
                    Err(reason) => {
                        // The new validation does not fit the keys (an allow-list
                        // change, say): fetch again now, deny meanwhile.
                        source.next_refresh = now;
                        source.last_error = Some(reason);
                    }
                }
            }
            source.available = config.keys_available;
            kept.push(source);
        }
        *sources = kept;
        self.shared.store(Arc::new(policy));
    }

    /// Stops the thread (at shutdown).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        let handle = self
            .thread
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }

    fn run(&self) {
        while !self.stop.load(Ordering::Acquire) {
            let now = Instant::now();
            let due: Vec<Due> = {
                let sources = lock(&self.sources);
                sources
                    .iter()
                    .filter_map(|source| {
                        let refetch = now >= source.next_refetch && source.remote.take_wanted();
                        (now >= source.next_refresh || refetch).then(|| {
                            (
                                source.name.clone(),
                                Arc::clone(&source.remote),
                                source.jwks_uri.clone(),
                                refetch,
                            )
                        })
                    })
                    .collect()
            };
            for (name, remote, jwks_uri, refetch) in due {
                // The network is used without the lock: a slow IdP never holds up a reload.
                let outcome = fetch(&remote, jwks_uri, refetch);
                self.apply(&name, &remote, outcome);
            }
            self.expire_stale(Instant::now());
            std::thread::sleep(TICK);
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
        let policy = self.shared.load_full();
        let Some(config) = policy.configs.iter().find(|config| *config.name == *name) else {
            return;
        };
        if let Some(verifier) = absorb(source, config, outcome) {
            publish(&self.shared, &policy, name, remote, Some(verifier), true);
        }
    }

    /// Stops serving key sets older than their `max_stale`.
    fn expire_stale(&self, now: Instant) {
        let mut sources = lock(&self.sources);
        for source in sources.iter_mut() {
            let Some((_, fetched)) = &source.good else {
                continue;
            };
            let max_stale = source.remote.settings.schedule.max_stale;
            if source.available && now.duration_since(*fetched) > max_stale {
                source.available = false;
                server::warn(format_args!(
                    "keys of token_config {:?}: the last good key set is older than max_stale ({max_stale:?}); answering keys_unavailable until a fetch succeeds",
                    source.name
                ));
                let policy = self.shared.load_full();
                let (name, remote) = (source.name.clone(), Arc::clone(&source.remote));
                publish(&self.shared, &policy, &name, &remote, None, false);
            }
        }
    }
}

/// Takes a fetch's result into `source` (schedule, counters, audit, log
/// lines) and returns the verifier to put in force for `config`, if the
/// fetch brought a usable key set.
fn absorb(source: &mut Source, config: &TokenConfig, outcome: Fetch) -> Option<Verifier> {
    let now = Instant::now();
    let remote = Arc::clone(&source.remote);
    let name = &*config.name;
    let schedule = remote.settings.schedule;
    source.next_refetch = after(now, schedule.min_refetch_interval);
    if outcome.jwks_uri.is_some() {
        source.jwks_uri = outcome.jwks_uri;
    }
    let built = outcome.result.and_then(|(body, max_age)| {
        let (verifier, keys) = verifier_for(config, &body)?;
        Ok((body, max_age, verifier, keys))
    });
    match built {
        Ok((body, max_age, verifier, keys)) => {
            let before = source.good.as_ref().map(|_| config.verifier.keys());
            let changes = audit::changes(before, &keys, &body);
            remote.fetches.fetch_add(1, Ordering::Relaxed);
            remote.fetched_at.store(unix_now(), Ordering::Relaxed);
            remote.failing.store(false, Ordering::Relaxed);
            if !changes.is_empty() {
                remote.changes.fetch_add(1, Ordering::Relaxed);
                for change in &changes {
                    server::warn(format_args!("keys of token_config {name:?}: {change}"));
                }
            }
            if source.last_error.take().is_some() || !source.available {
                server::warn(format_args!(
                    "keys of token_config {name:?}: {} keys from {} in force",
                    keys.keys().len(),
                    remote.settings.location.describe()
                ));
            }
            let period = max_age.map_or(schedule.refresh_interval, |age| {
                age.clamp(schedule.min_refresh_interval, schedule.max_refresh_interval)
            });
            source.next_refresh = after(now, jitter(period));
            source.failures_in_row = 0;
            source.good = Some((body.into(), now));
            source.available = true;
            Some(verifier)
        }
        Err(reason) => {
            remote.failures.fetch_add(1, Ordering::Relaxed);
            remote.failing.store(true, Ordering::Relaxed);
            source.failures_in_row = (source.failures_in_row + 1).min(MAX_BACKOFF_STEPS);
            // 1 s, 2 s, 4 s ... up to the refresh interval.
            let backoff = Duration::from_secs(1 << source.failures_in_row.saturating_sub(1))
                .min(schedule.refresh_interval);
            source.next_refresh = after(now, jitter(backoff));
            if source.last_error.as_deref() != Some(reason.as_str()) {
                let kept = if source.good.is_some() {
                    "keeping the last good key set"
                } else {
                    "no keys yet"
                };
                server::warn(format_args!(
                    "keys of token_config {name:?}: fetch failed ({kept}): {reason}"
                ));
            }
            source.last_error = Some(reason);
            None
        }
    }
}

/// Stores a copy of `policy` in which configuration `name` (of source
/// `remote`) has `verifier` (if given) and the given availability.
fn publish(
    shared: &SharedPolicy,
    policy: &Policy,
    name: &str,
    remote: &Arc<RemoteKeys>,
    verifier: Option<Verifier>,
    available: bool,
) {
    let mut next = policy.clone();
    let verifier = verifier.map(Arc::new);
    for config in &mut next.configs {
        let same = config
            .remote
            .as_ref()
            .is_some_and(|own| Arc::ptr_eq(own, remote));
        if *config.name == *name && same {
            if let Some(verifier) = &verifier {
                config.verifier = Arc::clone(verifier);
            }
            config.keys_available = available;
        }
    }
    shared.store(Arc::new(next));
}

/// Fetches a source's key set (through discovery when configured; a refetch
/// for an unknown `kid` reuses the `jwks_uri` found before).
fn fetch(remote: &RemoteKeys, known_uri: Option<String>, refetch: bool) -> Fetch {
    let fetcher = &remote.fetcher;
    let (url, discovered) = match &remote.settings.location {
        Location::Url(url) => (url.clone(), None),
        Location::Discovery { issuer } => match known_uri.filter(|_| refetch) {
            Some(uri) => (uri, None),
            None => match fetcher.discover(issuer) {
                Ok(uri) => (uri.clone(), Some(uri)),
                Err(error) => {
                    return Fetch {
                        result: Err(error.to_string()),
                        jwks_uri: None,
                    };
                }
            },
        },
    };
    Fetch {
        result: fetcher
            .get(&url)
            .map(|fetched| (fetched.body, fetched.max_age))
            .map_err(|error| error.to_string()),
        jwks_uri: discovered,
    }
}
