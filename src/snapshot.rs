//! The snapshot every shard reads: the policy (rules and token
//! configurations, compiled once per load) beside the keys of each token
//! configuration, which change on their own schedule. A reload replaces
//! both; a key refresh replaces one configuration's keys and shares the
//! policy, so the rules are not copied and the shards' metrics tables (laid
//! out per policy) carry on.
//!
//! Both kinds of change go through one [`Publisher`]. Shards load the
//! snapshot with one atomic load per request and no lock.
//!
//! Neighbours: [`crate::policy`] (rules), [`crate::jwks`] (key states and
//! the key manager, which reaches the publisher as a [`KeySink`]),
//! [`crate::authz`] and [`crate::metrics`] (readers), [`crate::control`]
//! and [`crate::config`]'s reloader (writers).

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::Verifier;
use crate::jwks::{KeySink, RemoteKeys, TokenKeys};
use crate::policy::Policy;
use crate::revocation::RevocationSink;
use crate::revocation::Revocations;

/// The policy and its keys, as in force together.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Rules and token configurations.
    pub policy: Arc<Policy>,
    /// The keys of each token configuration, in the order of
    /// [`Policy::configs`].
    pub keys: Box<[TokenKeys]>,
    /// The revocations in force (none without a `[revocation]` store). A
    /// reload keeps them; the revocation manager replaces them.
    pub revocations: Arc<Revocations>,
}

impl Snapshot {
    /// `policy` with `keys`, one per token configuration.
    pub fn new(policy: Policy, keys: Vec<TokenKeys>) -> Snapshot {
        Snapshot {
            policy: Arc::new(policy),
            keys: keys.into_boxed_slice(),
            revocations: Arc::new(Revocations::none()),
        }
    }

    /// The flags-only policy ([`Policy::single`]) with `verifier`'s keys.
    pub fn single(verifier: Verifier) -> Snapshot {
        Snapshot::new(Policy::single(), vec![TokenKeys::local(verifier)])
    }

    /// The keys of token configuration `config` (an index into
    /// [`Policy::configs`]).
    #[inline]
    pub fn keys_of(&self, config: usize) -> Option<&TokenKeys> {
        self.keys.get(config)
    }

    /// Whether every token configuration holds keys it can verify with.
    pub fn keys_loaded(&self) -> bool {
        self.keys
            .iter()
            .all(|keys| keys.available() && !keys.verifier().keys().is_empty())
    }

    /// Each token configuration's name with its keys.
    pub fn configs(&self) -> impl Iterator<Item = (&str, &TokenKeys)> + '_ {
        self.policy
            .configs
            .iter()
            .map(|config| &*config.name)
            .zip(self.keys.iter())
    }

    /// This snapshot with the keys fetched from `remote` replaced by `keys`,
    /// the policy shared; `None` if no configuration fetches from `remote`
    /// any more (a reload took it away).
    fn with_keys(&self, remote: &Arc<RemoteKeys>, keys: &TokenKeys) -> Option<Snapshot> {
        let position = self.keys.iter().position(|own| {
            own.remote()
                .is_some_and(|own_remote| Arc::ptr_eq(own_remote, remote))
        })?;
        let mut next = self.keys.clone();
        if let Some(slot) = next.get_mut(position) {
            *slot = keys.clone();
        }
        Some(Snapshot {
            policy: Arc::clone(&self.policy),
            keys: next,
            revocations: Arc::clone(&self.revocations),
        })
    }
}

/// The snapshot in force, shared by every shard.
pub(crate) type SharedSnapshot = Arc<ArcSwap<Snapshot>>;

/// The one writer of the snapshot in force: reloads and key refreshes both
/// come through here.
#[derive(Debug)]
pub(crate) struct Publisher {
    shared: SharedSnapshot,
}

impl Publisher {
    /// A publisher that starts with `snapshot` in force.
    pub(crate) fn new(snapshot: Snapshot) -> Publisher {
        Publisher {
            shared: Arc::new(ArcSwap::from_pointee(snapshot)),
        }
    }

    /// What the shards read.
    pub(crate) fn shared(&self) -> &SharedSnapshot {
        &self.shared
    }

    /// The snapshot in force now.
    pub(crate) fn current(&self) -> Arc<Snapshot> {
        self.shared.load_full()
    }

    /// Puts a reloaded policy and its keys in force, with the revocations
    /// in force.
    pub(crate) fn reloaded(&self, policy: Policy, keys: Vec<TokenKeys>) {
        let policy = Arc::new(policy);
        let keys = keys.into_boxed_slice();
        self.shared.rcu(|current| Snapshot {
            policy: Arc::clone(&policy),
            keys: keys.clone(),
            revocations: Arc::clone(&current.revocations),
        });
    }
}

impl RevocationSink for Publisher {
    fn publish(&self, revocations: Arc<Revocations>) {
        self.shared.rcu(|current| Snapshot {
            policy: Arc::clone(&current.policy),
            keys: current.keys.clone(),
            revocations: Arc::clone(&revocations),
        });
    }
}

impl KeySink for Publisher {
    fn refreshed(&self, remote: &Arc<RemoteKeys>, keys: TokenKeys) {
        // Compare-and-swap, so that a reload stored meanwhile is never
        // overwritten with the snapshot it replaced.
        self.shared.rcu(|current| {
            current
                .with_keys(remote, &keys)
                .map_or_else(|| Arc::clone(current), Arc::new)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwks::{KeySource, Location, RemoteSettings};

    fn remote() -> Arc<RemoteKeys> {
        Arc::new(
            RemoteKeys::new(RemoteSettings {
                location: Location::Url("https://idp.test/jwks.json".into()),
                fetch: crate::jwks::FetchSettings::default(),
                schedule: crate::jwks::Schedule::default(),
                startup: crate::jwks::Startup::default(),
            })
            .unwrap(),
        )
    }

    #[test]
    fn a_key_refresh_replaces_one_configurations_keys_and_shares_the_policy() {
        let verifier = || Arc::new(crate::demo::demo_verifier().unwrap());
        let fetched = remote();
        let waiting = TokenKeys::new(verifier(), KeySource::Unavailable(Arc::clone(&fetched)));
        let local = TokenKeys::new(verifier(), KeySource::Local);
        let publisher = Publisher::new(Snapshot::new(Policy::single(), vec![waiting, local]));
        let before = publisher.current();
        let arrived = TokenKeys::new(verifier(), KeySource::Fetched(Arc::clone(&fetched)));
        publisher.refreshed(&fetched, arrived);
        let after = publisher.current();
        assert!(
            Arc::ptr_eq(&before.policy, &after.policy),
            "the rules are shared"
        );
        assert!(after.keys_of(0).unwrap().available());
        assert!(!before.keys_of(0).unwrap().available());
        assert!(Arc::ptr_eq(
            before.keys_of(1).unwrap().verifier(),
            after.keys_of(1).unwrap().verifier()
        ));

        // A source no configuration uses any more changes nothing.
        let gone = remote();
        publisher.refreshed(
            &gone,
            TokenKeys::local(crate::demo::demo_verifier().unwrap()),
        );
        assert!(Arc::ptr_eq(&after, &publisher.current()));
    }
}
