//! Hot reload: a new policy is built and validated off the hot path, then
//! swapped in with one atomic store; shards pick it up on their next request,
//! in-flight requests finish on the old one. A file that does not load leaves
//! the running policy in place, and the error says exactly why.
//!
//! Changes are noticed by polling the configuration file and every key file it
//! names (modification time and size), and acted on once they have been stable
//! for one poll, so that a file caught half-written is not even tried. While
//! the file on disk does not load, it is retried every few polls (a key file
//! it names may appear later), and only a new error is reported. Writers
//! should still replace files atomically (write, then rename): a file cut at
//! a line end can parse, and would then be in force until the next write.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{ConfigError, load};
use crate::jwks::KeysRefused;
use crate::settings::ServerLayer;
use crate::snapshot::{Publisher, Snapshot};

pub(crate) use crate::stamp::Stamp;

/// What the watched files looked like at one poll.
type Fingerprint = Vec<Stamp>;

fn fingerprint(files: &[PathBuf]) -> Fingerprint {
    files.iter().map(|file| Stamp::of(file)).collect()
}

/// The outcome of one successful reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// Token configurations now in force.
    pub token_configs: usize,
    /// Rules now in force.
    pub rules: usize,
    /// Keys skipped with a warning.
    pub warnings: Vec<String>,
    /// The `[server]` settings that changed (they need a restart), by name.
    pub server_changed: Vec<&'static str>,
    /// What changed in the keys read from files, as `token_config "name":
    /// added kid ...` lines (fetched keys report their own changes).
    pub key_changes: Vec<String>,
    /// Whether the `[revocation]` table changed (it takes effect on restart).
    pub revocation_changed: bool,
}

/// The changes between the local keys in force and those `loaded` read,
/// for each token configuration that keeps its name and reads keys from a
/// file or the file itself: a reload that only changed a key file says
/// which kids came and went, as a fetch does.
fn local_key_changes(current: &Snapshot, loaded: &super::Loaded) -> Vec<String> {
    let mut lines = Vec::new();
    for (config, keys) in loaded.policy.configs.iter().zip(&loaded.keys) {
        if keys.remote().is_some() {
            continue;
        }
        let before = current
            .configs()
            .find(|(name, keys)| *name == &*config.name && keys.remote().is_none())
            .map(|(_, keys)| keys.verifier().keys());
        let Some(before) = before else { continue };
        for change in crate::jwks::key_changes(Some(before), keys.verifier().keys()) {
            lines.push(format!(
                "keys of token_config {:?}: {change}",
                &*config.name
            ));
        }
    }
    lines
}

/// Why a reload was kept out (the running configuration stays in force).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file does not load.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The file loads, but the key manager refuses the keys of one of its
    /// token configurations. Worded as an error about the file's token
    /// configurations, as it was when it was carried as a `ConfigError`.
    #[error("{}: token_config: {refused}", file.display())]
    Keys {
        /// The configuration file.
        file: PathBuf,
        /// The configuration whose keys were refused, and why.
        refused: KeysRefused,
    },
}

/// Watches one configuration and swaps its policy in.
#[derive(Debug)]
pub(crate) struct Reloader {
    path: PathBuf,
    publisher: Arc<Publisher>,
    server: ServerLayer,
    files: Vec<PathBuf>,
    loaded: Fingerprint,
    last_seen: Fingerprint,
    /// The error of the last failed load, while the file on disk stays broken.
    failing: Option<String>,
    polls_since_failure: u32,
    /// Publishes through the key manager when keys are fetched, so that a
    /// reload keeps the fetched keys.
    keys: Option<Arc<crate::jwks::Manager>>,
    /// The `[revocation]` table in force (read at start only).
    revocation: Option<crate::revocation::RevocationSettings>,
}

/// Polls between retries of a configuration that does not load.
const RETRY_POLLS: u32 = 5;

impl Reloader {
    /// Watches `path`, which looked like `stamp` before it was loaded (giving
    /// `server` settings, `key_files` read, and the snapshot `publisher` has in force).
    pub(crate) fn new(
        path: &Path,
        stamp: Stamp,
        server: ServerLayer,
        key_files: Vec<PathBuf>,
        publisher: Arc<Publisher>,
    ) -> Reloader {
        let mut files = vec![path.to_owned()];
        files.extend(key_files);
        let mut now = fingerprint(&files);
        // A write between the load and now is a change still to load.
        if let Some(first) = now.first_mut() {
            *first = stamp;
        }
        Reloader {
            path: path.to_owned(),
            publisher,
            server,
            files,
            loaded: now.clone(),
            last_seen: now,
            failing: None,
            polls_since_failure: 0,
            keys: None,
            revocation: None,
        }
    }

    /// The `[revocation]` table in force, which a reload does not change.
    pub(crate) fn with_revocation(
        mut self,
        revocation: Option<crate::revocation::RevocationSettings>,
    ) -> Reloader {
        self.revocation = revocation;
        self
    }

    /// Publishes reloaded policies through `manager`, which carries fetched
    /// keys over (and fetches those of new remote sources).
    pub(crate) fn with_key_manager(
        mut self,
        manager: Option<Arc<crate::jwks::Manager>>,
    ) -> Reloader {
        self.keys = manager;
        self
    }

    /// Loads the file again and, if it is valid, swaps its policy in.
    pub(crate) fn reload(&mut self) -> Result<Reloaded, ReloadError> {
        // Taken before reading, so a write during the load is noticed next time.
        let before = fingerprint(&self.files);
        let result = load(&self.path);
        self.loaded = before.clone();
        self.last_seen = before;
        self.polls_since_failure = 0;
        let loaded = match result {
            Ok(loaded) => {
                self.failing = None;
                loaded
            }
            Err(error) => {
                self.failing = Some(error.to_string());
                return Err(error.into());
            }
        };
        let reloaded = Reloaded {
            token_configs: loaded.policy.configs.len(),
            rules: loaded.policy.rules.len(),
            warnings: loaded.warnings.clone(),
            server_changed: loaded.server.differences(&self.server),
            key_changes: local_key_changes(&self.publisher.current(), &loaded),
            revocation_changed: loaded.revocation != self.revocation,
        };
        let mut files = vec![self.path.clone()];
        files.extend(loaded.key_files.iter().cloned());
        if files != self.files {
            // Files first named by this configuration were read without a
            // fingerprint taken beforehand, so a write while they were read
            // could go unnoticed: mark them unknown, which makes the next
            // stable poll load once more.
            let now = fingerprint(&files);
            self.loaded = files
                .iter()
                .zip(&now)
                .map(|(file, seen)| {
                    if self.files.contains(file) {
                        *seen
                    } else {
                        Stamp::UNREADABLE
                    }
                })
                .collect();
            self.last_seen = now;
            self.files = files;
        }
        let super::Loaded { policy, keys, .. } = loaded;
        match &self.keys {
            Some(manager) => {
                let named = policy
                    .configs
                    .iter()
                    .map(|config| config.name.clone())
                    .zip(keys)
                    .collect();
                let publisher = &self.publisher;
                let published =
                    manager.publish_reloaded(named, |keys| publisher.reloaded(policy, keys));
                if let Err(refused) = published {
                    // Like a file that does not load: kept out, retried.
                    let error = ReloadError::Keys {
                        file: self.path.clone(),
                        refused,
                    };
                    self.failing = Some(error.to_string());
                    return Err(error);
                }
            }
            None => self.publisher.reloaded(policy, keys),
        }
        Ok(reloaded)
    }

    /// Checks the files; reloads when they changed and have been stable since
    /// the previous poll. `None` when there was nothing to do.
    pub(crate) fn poll(&mut self) -> Option<Result<Reloaded, ReloadError>> {
        let now = fingerprint(&self.files);
        let stable = now == self.last_seen;
        self.last_seen = now;
        if stable && self.last_seen != self.loaded {
            return Some(self.reload());
        }
        if self.failing.is_some() {
            self.polls_since_failure += 1;
            if self.polls_since_failure >= RETRY_POLLS {
                let previous = self.failing.clone();
                return match self.reload() {
                    Err(error) if Some(error.to_string()) == previous => None,
                    result => Some(result),
                };
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwks::{KeysRefusal, UnusableKeySet};

    #[test]
    fn a_refusal_of_keys_reads_as_an_error_about_the_file() {
        let error = ReloadError::Keys {
            file: PathBuf::from("/etc/jwtgate.toml"),
            refused: KeysRefused {
                config: "users".into(),
                reason: Box::new(KeysRefusal::Unfit(UnusableKeySet::Symmetric)),
            },
        };
        assert_eq!(
            error.to_string(),
            "/etc/jwtgate.toml: token_config: token_config \"users\": the key set in force does not fit the new settings: the key set holds HMAC secrets; a secret served at a URL is refused"
        );
    }
}
