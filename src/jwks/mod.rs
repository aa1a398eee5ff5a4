//! Remote key sets: token configurations whose keys come from a JWKS URL (or
//! an issuer's OIDC discovery document), fetched and refreshed off the hot
//! path, with rotation, stale-if-error and a throttled refetch on unknown `kid`.
//!
//! ```text
//!  shard      verify → unknown_kid → RemoteKeys::want_refetch (one flag)
//!  manager    own thread: refresh when due (Cache-Control max-age within
//!             bounds, else refresh_interval, with jitter; backoff on failure),
//!             refetch when a flag is up and min_refetch_interval has passed;
//!             builds the new Verifier and hands the configuration's new
//!             TokenKeys to its KeySink (the snapshot publisher), which
//!             replaces that configuration's keys alone
//!  reload     Manager::publish_reloaded carries fetched keys over into the
//!             key states of a reloaded policy
//! ```
//!
//! A fetch that fails, or brings a key set that does not parse or has no key
//! for the allow-list, changes nothing: the last good keys are served until
//! they are `max_stale` old; after that the configuration answers
//! `keys_unavailable` until a fetch succeeds. Every change of a key set is
//! logged and counted (kids added and removed, algorithm changes, keys
//! without `alg`, keys dropped as unusable).
//!
//! A redirect, or a discovered `jwks_uri`, may only lead to the configured
//! origin (scheme, host and port of the `jwks_url`, or of the issuer) or to
//! a host `jwks_allowed_hosts` lists; anything else is a failed fetch.
//!
//! Files: `fetch` (HTTPS, redirects, discovery, Cache-Control), `hosts`
//! (where a source's requests may go), `audit` (what changed between two
//! key sets), `manager` (the thread and publishing).

mod audit;
pub(crate) mod fetch;
pub(crate) mod hosts;
mod manager;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use crate::Verifier;

pub(crate) use fetch::{FetchError, FetchSettings, Fetcher};
pub(crate) use hosts::{AllowedHost, Destinations, Origin};
pub use manager::{KeysRefusal, KeysRefused, StartupError, UnusableKeySet};
pub(crate) use manager::{Manager, fetch_once};

/// Where a remote key set is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A JWKS URL.
    Url(String),
    /// `<issuer>/.well-known/openid-configuration`, whose `issuer` must be
    /// this one exactly, and whose `jwks_uri` is then fetched.
    Discovery {
        /// The configured issuer.
        issuer: String,
    },
}

impl Location {
    /// For logs: the URL, or the issuer's discovery.
    pub fn describe(&self) -> String {
        match self {
            Location::Url(url) => url.clone(),
            Location::Discovery { issuer } => format!("discovery of {issuer}"),
        }
    }
}

/// When a remote key set is fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Refresh period when the server gives no `Cache-Control: max-age` (10 min).
    pub refresh_interval: Duration,
    /// A `max-age` below this is raised to it (1 min).
    pub min_refresh_interval: Duration,
    /// A `max-age` above this is lowered to it (24 h).
    pub max_refresh_interval: Duration,
    /// At most one refetch for unknown `kid`s per this (30 s).
    pub min_refetch_interval: Duration,
    /// How long the last good key set is served while fetches fail (24 h).
    pub max_stale: Duration,
}

impl Default for Schedule {
    fn default() -> Schedule {
        Schedule {
            refresh_interval: Duration::from_secs(600),
            min_refresh_interval: Duration::from_secs(60),
            max_refresh_interval: Duration::from_secs(86_400),
            min_refetch_interval: Duration::from_secs(30),
            max_stale: Duration::from_secs(86_400),
        }
    }
}

/// Start-up behaviour of a remote key source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Startup {
    /// How long `serve` waits for a first key set (30 s).
    pub timeout: Duration,
    /// Start anyway (not ready, `keys_unavailable`) when none arrived.
    pub allow_without_keys: bool,
}

impl Default for Startup {
    fn default() -> Startup {
        Startup {
            timeout: Duration::from_secs(30),
            allow_without_keys: false,
        }
    }
}

/// How a remote key source is reached and kept, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSettings {
    /// Where.
    pub location: Location,
    /// TLS, timeouts, size limit.
    pub fetch: FetchSettings,
    /// When.
    pub schedule: Schedule,
    /// At start-up.
    pub startup: Startup,
}

/// A token configuration's remote key source, shared by every policy
/// snapshot that uses it (a reload that keeps the source keeps this object,
/// so its counters and the refetch flag carry over).
#[derive(Debug)]
pub struct RemoteKeys {
    settings: RemoteSettings,
    fetcher: Fetcher,
    /// Raised by a shard that met an unknown `kid`.
    wanted: AtomicBool,
    fetches: AtomicU64,
    failures: AtomicU64,
    changes: AtomicU64,
    /// Unix seconds of the last successful fetch (0: none yet).
    fetched_at: AtomicI64,
    /// The last fetch failed (the last good set, if any, is still served).
    failing: AtomicBool,
    /// Why the last fetch failed, for `/readyz` (written by the key manager
    /// on a failure, read by the admin thread; never by a shard).
    last_failure: std::sync::Mutex<Option<String>>,
}

impl RemoteKeys {
    /// A source with these settings, never fetched yet (reads the CA file now).
    pub fn new(settings: RemoteSettings) -> Result<RemoteKeys, FetchError> {
        Ok(RemoteKeys {
            fetcher: Fetcher::new(&settings.fetch, &settings.location)?,
            settings,
            wanted: AtomicBool::new(false),
            fetches: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            changes: AtomicU64::new(0),
            fetched_at: AtomicI64::new(0),
            failing: AtomicBool::new(false),
            last_failure: std::sync::Mutex::new(None),
        })
    }

    /// Its settings.
    pub fn settings(&self) -> &RemoteSettings {
        &self.settings
    }

    /// Where its requests (redirects and a discovered `jwks_uri` included) may go.
    pub fn destinations(&self) -> &Destinations {
        self.fetcher.destinations()
    }

    /// Called by a shard when a token names a `kid` the key set lacks: the
    /// key set may have rotated. A load, and a store only when the flag is
    /// down, so a flood of unknown `kid`s does not bounce a cache line.
    pub fn want_refetch(&self) {
        if !self.wanted.load(Ordering::Relaxed) {
            self.wanted.store(true, Ordering::Relaxed);
        }
    }

    /// Takes over `old`'s counters, flag and history (a reload that changed
    /// how the same keys are fetched).
    fn carry_over(&self, old: &RemoteKeys) {
        for (mine, theirs) in [
            (&self.fetches, &old.fetches),
            (&self.failures, &old.failures),
            (&self.changes, &old.changes),
        ] {
            mine.store(theirs.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        self.fetched_at
            .store(old.fetched_at.load(Ordering::Relaxed), Ordering::Relaxed);
        self.failing
            .store(old.failing.load(Ordering::Relaxed), Ordering::Relaxed);
        self.wanted
            .store(old.wanted.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    fn take_wanted(&self) -> bool {
        self.wanted.swap(false, Ordering::AcqRel)
    }

    /// Successful fetches.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Failed fetches (transport, status, size, parse, no usable key).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Fetches that changed the key set.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }

    /// Whether the last fetch failed.
    pub fn failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    /// Why the last failed fetch failed, if one has.
    pub fn last_failure(&self) -> Option<String> {
        self.last_failure
            .lock()
            .map_or(None, |reason| reason.clone())
    }

    /// Records why a fetch failed.
    pub(crate) fn failed_because(&self, reason: &str) {
        self.failing.store(true, Ordering::Relaxed);
        if let Ok(mut last) = self.last_failure.lock() {
            *last = Some(reason.to_owned());
        }
    }

    /// Unix seconds of the last successful fetch, if any.
    pub fn fetched_at(&self) -> Option<i64> {
        match self.fetched_at.load(Ordering::Relaxed) {
            0 => None,
            at => Some(at),
        }
    }
}

/// A token configuration's keys as they are in force. Where they come from
/// and whether they may be used is one enum, so no combination can
/// contradict itself (local keys that are "unavailable", fetched keys
/// without a source).
///
/// Every value made is a new key state with its own generation, which is
/// what the verified-token cache keys on: a reload, a fetch or a change of
/// availability makes a new `TokenKeys`, so no entry stored under the old
/// one can be found again. The fields are private so that nothing can change
/// a key state while keeping its generation.
#[derive(Debug, Clone)]
pub struct TokenKeys {
    verifier: Arc<Verifier>,
    source: KeySource,
    generation: u64,
}

/// Where a configuration's keys come from, and whether they are in force.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// The configuration file's (or the command line's) keys: always in force.
    Local,
    /// A fetched key set, in force.
    Fetched(Arc<RemoteKeys>),
    /// Fetched keys not arrived yet, or older than `max_stale`: tokens get
    /// `keys_unavailable` until a fetch succeeds.
    Unavailable(Arc<RemoteKeys>),
}

/// The last generation given out; 0 is never one (the cache reads it as "do
/// not cache").
static GENERATIONS: AtomicU64 = AtomicU64::new(0);

impl TokenKeys {
    /// A new key state: `verifier` (the keys and the configuration's claim
    /// checks; for a source that has not brought keys yet, the checks and no
    /// keys) from `source`.
    pub fn new(verifier: Arc<Verifier>, source: KeySource) -> TokenKeys {
        TokenKeys {
            verifier,
            source,
            generation: GENERATIONS.fetch_add(1, Ordering::Relaxed) + 1,
        }
    }

    /// Keys read from a file or given directly.
    pub fn local(verifier: Verifier) -> TokenKeys {
        TokenKeys::new(Arc::new(verifier), KeySource::Local)
    }

    /// The keys and the configuration's claim checks.
    pub fn verifier(&self) -> &Arc<Verifier> {
        &self.verifier
    }

    /// Where they come from.
    pub fn source(&self) -> &KeySource {
        &self.source
    }

    /// This key state's number, unique in the process.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether tokens may be verified with these keys.
    pub fn available(&self) -> bool {
        !matches!(self.source, KeySource::Unavailable(_))
    }

    /// The remote source, for fetched keys.
    pub fn remote(&self) -> Option<&Arc<RemoteKeys>> {
        match &self.source {
            KeySource::Local => None,
            KeySource::Fetched(remote) | KeySource::Unavailable(remote) => Some(remote),
        }
    }
}

/// Where the key manager puts the keys it fetched: the one publisher of the
/// running snapshot ([`crate::snapshot::Publisher`]), seen from here as a
/// sink so that this module does not depend on the snapshot it feeds.
pub(crate) trait KeySink: Send + Sync + std::fmt::Debug {
    /// Puts `keys` in force for the configuration whose keys come from
    /// `remote`, if the snapshot in force still has it; every other
    /// configuration's keys, and the rules, stay as they are.
    fn refreshed(&self, remote: &Arc<RemoteKeys>, keys: TokenKeys);
}

/// Unix seconds now.
fn unix_now() -> i64 {
    crate::UnixTime::now().0
}

/// What changed between two key sets, one line per key added, changed or
/// removed (empty when they hold the same keys), in the words fetched key
/// sets are reported with.
pub(crate) fn key_changes(old: Option<&crate::KeySet>, new: &crate::KeySet) -> Vec<String> {
    audit::changes(old, new, b"")
}
