//! Revocations in Redis, shared by every instance.
//!
//! Layout, under the configured prefix `P` (`jwtgate:revocation:` by default):
//!
//! - one key per revocation, `P<kind>:<scope>:<name>` (kind `jti`,
//!   `subject` or `kid`; scope and name base64url, so that any text is one
//!   key), whose value is the revocation's JSON line and whose own expiry
//!   (`EXAT`) is the revocation's `expires`: Redis drops it then;
//! - the channel `P<changes>`, on which every revocation is published as
//!   it is written (`SET` and `PUBLISH` in one `MULTI`).
//!
//! An instance subscribes to the channel first, then reads every key
//! (`SCAN` + `MGET`), then applies what arrived on the channel meanwhile, so
//! nothing written during the read is missed. After that each published
//! revocation is in force as soon as it arrives. Pub/sub delivers at most
//! once: a connection that breaks loses what was published while it was
//! down, so every reconnection reads everything again, and so does a
//! periodic resync (`resync_interval`), which also drops what Redis
//! expired or an operator deleted.
//!
//! Neighbours: [`super::manager`] (runs `RedisFollower`), `jwtgate
//! revoke` ([`RedisStore`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use jwtgate_engine::base64url;
use jwtgate_engine::internals::json::Tape;

use super::Store;
use super::record::{self, Kind, RecentScopes, Revocation};
use super::set::Change;
use super::shared::Shared;
use crate::UnixTime;

/// Connecting, and every command, gives up after this long.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a quiet subscription is checked with a PING.
const PING_INTERVAL: Duration = Duration::from_secs(2);
/// Keys asked for per `SCAN` step and per `MGET`.
const BATCH: usize = 1000;
/// Unreadable keys named one by one in a read's report; the rest are counted.
const MAX_UNREADABLE_REPORTED: usize = 100;
/// Keys a whole read takes at most: far beyond any revocation store (a
/// million take 150 MB in memory), so a store that has more is refused
/// before it exhausts the instance's memory.
const MAX_KEYS: usize = 20_000_000;
/// `SCAN` steps a whole read takes at most (a server whose cursor never
/// comes back to 0 would keep it going forever): enough to walk a database
/// of ten billion keys with the prefix's among them.
const MAX_SCAN_STEPS: usize = 10_000_000;
/// Waits between attempts to reach a failing store.
const BACKOFF: [Duration; 4] = [
    Duration::from_millis(200),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(5),
];

/// `url` without its password, for reports.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user, host)) => {
            let user = user.split(':').next().unwrap_or("");
            let user = if user.is_empty() { "" } else { user };
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => url.to_owned(),
    }
}

/// A Redis revocation store: the keys and channel under one prefix.
#[derive(Debug, Clone)]
pub struct RedisStore {
    client: redis::Client,
    prefix: String,
    description: String,
}

impl RedisStore {
    /// The store `store` names (which must be [`Store::Redis`]).
    pub fn open(store: &Store) -> Result<RedisStore, String> {
        let Store::Redis {
            url,
            prefix,
            ca_file,
        } = store
        else {
            return Err("not a Redis store".to_owned());
        };
        let client = match ca_file {
            None => redis::Client::open(url.as_str()),
            Some(path) => {
                let pem =
                    std::fs::read(path).map_err(|e| format!("ca_file {}: {e}", path.display()))?;
                redis::Client::build_with_tls(
                    url.as_str(),
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem),
                    },
                )
            }
        }
        .map_err(|e| format!("{}: {e}", redacted(url)))?;
        Ok(RedisStore {
            client,
            prefix: prefix.clone(),
            description: store.describe(),
        })
    }

    /// The channel every revocation is published on: `<prefix>changes`,
    /// and `<prefix>changes:<db>` for a database other than 0, since Redis
    /// delivers a message to subscribers of every database.
    pub fn channel(&self) -> String {
        match self.client.get_connection_info().redis_settings().db() {
            0 => format!("{}changes", self.prefix),
            db => format!("{}changes:{db}", self.prefix),
        }
    }

    /// The key of a revocation.
    pub fn key(&self, kind: Kind, scope: &str, name: &str) -> String {
        format!(
            "{}{}:{}:{}",
            self.prefix,
            kind.name(),
            base64url::encode(scope.as_bytes()),
            base64url::encode(name.as_bytes())
        )
    }

    fn connection(&self) -> Result<redis::Connection, String> {
        let connection = self
            .client
            .get_connection_with_timeout(COMMAND_TIMEOUT)
            .map_err(|e| e.to_string())?;
        connection
            .set_read_timeout(Some(COMMAND_TIMEOUT))
            .and_then(|()| connection.set_write_timeout(Some(COMMAND_TIMEOUT)))
            .map_err(|e| e.to_string())?;
        Ok(connection)
    }

    /// Writes `revocation` (with its own expiry) and publishes it, in one
    /// transaction, merged with the revocation of the same token, subject
    /// or key already there (the later cut-off and end stand, as in every
    /// instance's set): the store never holds a weaker one than the
    /// instances. Returns what the store now holds.
    pub fn revoke(&self, revocation: &Revocation) -> Result<Revocation, String> {
        let mut connection = self.connection()?;
        let key = self.key(revocation.kind, &revocation.scope, &revocation.name);
        let existing: Option<Vec<u8>> = redis::cmd("GET")
            .arg(&key)
            .query(&mut connection)
            .map_err(|e| e.to_string())?;
        let mut stored = revocation.clone();
        if let Some(existing) = existing
            .as_deref()
            .and_then(|bytes| std::str::from_utf8(bytes).ok())
            .and_then(|line| Revocation::parse(line, &mut Tape::new()).ok())
            .filter(|existing| {
                existing.matches(revocation.kind, &revocation.scope, &revocation.name)
            })
        {
            stored.before = stored.before.max(existing.before);
            stored.expires = stored.expires.max(existing.expires);
        }
        let line = stored.to_line();
        redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(&key)
            .arg(&line)
            .arg("EXAT")
            .arg(stored.expires.0)
            .ignore()
            .cmd("PUBLISH")
            .arg(self.channel())
            .arg(&line)
            .ignore()
            .query::<()>(&mut connection)
            .map_err(|e| e.to_string())?;
        Ok(stored)
    }

    /// Every revocation in the store (expired ones included until Redis
    /// drops them), and the lines it could not read, with their keys.
    pub fn read_all(&self) -> Result<(Vec<Revocation>, Vec<String>), String> {
        let mut revocations = Vec::new();
        let unreadable = self.read_each(&mut |revocation| revocations.push(revocation))?;
        Ok((revocations, unreadable))
    }

    /// Hands every revocation in the store to `each`, a `SCAN` step and its
    /// `MGET` at a time (never the whole key list at once: a million keys
    /// take a hundred megabytes), and returns the lines it could not read.
    /// `SCAN` may name a key twice; the same entry is then handed twice.
    pub fn read_each(&self, each: &mut dyn FnMut(Revocation)) -> Result<Vec<String>, String> {
        let mut connection = self.connection()?;
        let pattern = format!("{}*", self.prefix);
        let channel = self.channel();
        let mut tape = Tape::new();
        let mut scopes = RecentScopes::default();
        let mut unreadable = Vec::new();
        let mut skipped = 0_u64;
        let mut cursor: u64 = 0;
        let mut keys_seen = 0_usize;
        for _ in 0..MAX_SCAN_STEPS {
            let (next, mut keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(BATCH)
                .query(&mut connection)
                .map_err(|e| e.to_string())?;
            keys.retain(|key| *key != channel.as_bytes());
            keys_seen += keys.len();
            if keys_seen > MAX_KEYS {
                return Err(format!(
                    "more than {MAX_KEYS} keys under {:?}: not a revocation store",
                    self.prefix
                ));
            }
            if !keys.is_empty() {
                // Bytes, not text: a value that is not UTF-8 is one
                // unreadable entry, not a failed read.
                let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                    .arg(&keys)
                    .query(&mut connection)
                    .map_err(|e| e.to_string())?;
                for (key, value) in keys.iter().zip(values) {
                    // Gone between SCAN and MGET: expired or deleted meanwhile.
                    let Some(value) = value else { continue };
                    let key = String::from_utf8_lossy(key);
                    let parsed = std::str::from_utf8(&value)
                        .map_err(|_| record::error("not UTF-8"))
                        .and_then(|value| Revocation::parse_sharing(value, &mut tape, &mut scopes));
                    match parsed {
                        Ok(revocation) => each(revocation),
                        Err(error) if unreadable.len() < MAX_UNREADABLE_REPORTED => {
                            unreadable.push(format!("{key}: {error}"));
                        }
                        Err(_) => skipped += 1,
                    }
                }
            }
            if next == 0 {
                if skipped > 0 {
                    unreadable.push(format!("{skipped} more unreadable keys"));
                }
                return Ok(unreadable);
            }
            cursor = next;
        }
        Err(format!("SCAN did not finish within {MAX_SCAN_STEPS} steps"))
    }
}

/// Follows a Redis store for the manager; see the module documentation.
#[derive(Debug)]
pub(super) struct RedisFollower {
    shared: Arc<Shared>,
    store: RedisStore,
    tape: Tape,
}

impl RedisFollower {
    pub(super) fn new(shared: Arc<Shared>) -> Result<RedisFollower, String> {
        let store = RedisStore::open(&shared.settings.store)?;
        Ok(RedisFollower {
            shared,
            store,
            tape: Tape::new(),
        })
    }

    /// Reads everything and publishes it with what arrived on `pubsub`
    /// (already subscribed) meanwhile.
    fn sync(&mut self, pubsub: &mut redis::PubSub<'_>) -> Result<(), String> {
        let current = self.shared.current();
        let mut rebuild = current.set.rebuild();
        let unreadable = self
            .store
            .read_each(&mut |revocation| rebuild.add(revocation))?;
        for line in &unreadable {
            crate::diagnostics::warn(format_args!(
                "revocations: {}: skipped {line}",
                self.store.description
            ));
        }
        // What was published while the keys were read: applied over them
        // (an entry read and published both is the same entry).
        let mut arrived = Vec::new();
        pubsub
            .set_read_timeout(Some(Duration::from_millis(1)))
            .map_err(|e| e.to_string())?;
        // Bounded: a store published to faster than it is drained would
        // otherwise keep this loop going; the rest is applied as it arrives.
        for _ in 0..100_000 {
            match pubsub.get_message() {
                Ok(message) => arrived.extend(self.change(&message)),
                Err(error) if error.is_timeout() => break,
                Err(error) => return Err(error.to_string()),
            }
        }
        let set = rebuild.finish().with(arrived);
        drop(current);
        self.shared.read_in_full(set);
        Ok(())
    }

    fn change(&mut self, message: &redis::Msg) -> Option<Change> {
        let line: String = message.get_payload().ok()?;
        match Revocation::parse(&line, &mut self.tape) {
            Ok(revocation) => Some(Change::Add(revocation)),
            Err(error) => {
                crate::diagnostics::warn(format_args!(
                    "revocations: {}: skipped a published line: {error}",
                    self.store.description
                ));
                None
            }
        }
    }

    /// Follows the store until stopped: subscribe and read everything, apply
    /// what is published, read everything again every `resync_interval` or
    /// after any failure.
    pub(super) fn follow(mut self) {
        let mut attempt = 0;
        while !self.shared.stopped() {
            match self.subscribe_and_follow() {
                Ok(()) => attempt = 0,
                Err(error) => {
                    self.shared.failed(&error);
                    // Expired entries go during an outage too.
                    self.shared.drop_expired();
                    let pause = BACKOFF
                        .get(attempt)
                        .copied()
                        .unwrap_or(Duration::from_secs(5));
                    attempt = (attempt + 1).min(BACKOFF.len());
                    if self.shared.sleep(pause) {
                        return;
                    }
                }
            }
        }
    }

    /// One subscription: read everything, then apply each published
    /// revocation until the resync is due (`Ok`) or the connection fails.
    fn subscribe_and_follow(&mut self) -> Result<(), String> {
        let mut connection = self.store.connection()?;
        let mut pubsub = connection.as_pubsub();
        pubsub
            .subscribe(self.store.channel())
            .map_err(|e| e.to_string())?;
        self.sync(&mut pubsub)?;
        // A short read timeout, so that a stop or a resync is never waited
        // for long.
        pubsub
            .set_read_timeout(Some(Duration::from_millis(250)))
            .map_err(|e| e.to_string())?;
        let resync_at = Instant::now() + self.shared.settings.resync_interval;
        let mut pinged = Instant::now();
        while !self.shared.stopped() && Instant::now() < resync_at {
            self.shared.drop_expired();
            match pubsub.get_message() {
                Ok(message) => {
                    if let Some(change) = self.change(&message) {
                        self.shared.changed(vec![change]);
                    }
                    self.shared.good();
                }
                Err(error) if error.is_timeout() => {}
                Err(error) => return Err(error.to_string()),
            }
            // A connection that broke without a reset reads as silence:
            // a PING every PING_INTERVAL tells silence from a dead store.
            if pinged.elapsed() >= PING_INTERVAL {
                pubsub.ping::<redis::Value>().map_err(|e| e.to_string())?;
                pinged = Instant::now();
                self.shared.good();
            }
        }
        Ok(())
    }
}

/// The instant `seconds` from now, for `--ttl`.
pub fn after(now: UnixTime, ttl: Duration) -> UnixTime {
    UnixTime(
        now.0
            .saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
    )
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn a_password_never_reaches_a_report() {
        assert_eq!(
            redacted("rediss://jwtgate:s3cret@redis.internal:6380/0"),
            "rediss://jwtgate:***@redis.internal:6380/0"
        );
        assert_eq!(
            redacted("redis://:s3cret@127.0.0.1:6379"),
            "redis://:***@127.0.0.1:6379"
        );
        assert_eq!(
            redacted("redis://127.0.0.1:6379/2"),
            "redis://127.0.0.1:6379/2"
        );
    }
}
