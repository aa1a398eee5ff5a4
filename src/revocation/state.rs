//! The revocations as published to the shards: the set, and how current it
//! is. A store that cannot be read leaves the last set it gave in force; once
//! it has been unreadable for longer than `max_stale`, `on_unavailable`
//! decides (no default: refusing every token or honouring revoked ones is
//! the operator's choice to write down). The clock is the request's, so the
//! policy starts to apply at exactly `max_stale` after the last good read,
//! with nothing republished.
//!
//! Neighbours: [`super::set`] (the entries), `crate::snapshot` (which
//! carries this beside the keys).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use super::set::{LookupScratch, RevocationSet};
use crate::{Outcome, Rejection, Stage, UnixTime, Verified};

const UNAVAILABLE: Rejection = Rejection::new(
    Outcome::RevocationsUnavailable,
    "the revocation store has been unreadable for longer than max_stale \
     (on_unavailable = \"deny\")",
)
.at(Stage::Revocation);

/// What a token gets once the store has been unreadable for longer than
/// `max_stale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnUnavailable {
    /// Refused, `revocations_unavailable`: no revoked token can pass.
    Deny,
    /// Checked against the last set read: a revocation made since may be missed.
    Allow,
}

impl OnUnavailable {
    /// The configuration's word for it.
    pub const fn name(self) -> &'static str {
        match self {
            OnUnavailable::Deny => "deny",
            OnUnavailable::Allow => "allow",
        }
    }
}

/// The published revocations; see the module documentation.
#[derive(Debug, Clone)]
pub struct Revocations {
    /// The store, as reports name it (`None`: no store configured).
    pub store: Option<Arc<str>>,
    /// The entries in force.
    pub set: RevocationSet,
    /// The last whole read of the store.
    pub last_read: Option<UnixTime>,
    /// When the store was last read in full or followed without a gap, if it
    /// has failed since (`None`: current).
    pub failing_since: Option<UnixTime>,
    /// How long a failing store's last set stays in force alone.
    pub max_stale: Duration,
    /// What applies after that.
    pub on_unavailable: OnUnavailable,
    /// What the store's follower counted (shared by every set it publishes).
    pub counters: Arc<StoreCounters>,
}

/// Whole reads, failures and single changes applied, for `/metrics`.
#[derive(Debug, Default)]
pub struct StoreCounters {
    /// Whole reads of the store that succeeded.
    pub reads: AtomicU64,
    /// Reads or follows that failed.
    pub failures: AtomicU64,
    /// Single revocations applied as they were published (Redis).
    pub changes: AtomicU64,
}

impl Default for Revocations {
    fn default() -> Revocations {
        Revocations::none()
    }
}

impl Revocations {
    /// No store: nothing is revoked, ever.
    pub fn none() -> Revocations {
        Revocations {
            store: None,
            set: RevocationSet::empty(),
            last_read: None,
            failing_since: None,
            max_stale: Duration::MAX,
            on_unavailable: OnUnavailable::Allow,
            counters: Arc::default(),
        }
    }

    /// Whether the store's last good read is older than `max_stale` at `now`.
    pub fn too_stale(&self, now: UnixTime) -> bool {
        self.failing_since.is_some_and(|since| {
            let age = u64::try_from(now.0.saturating_sub(since.0)).unwrap_or(0);
            Duration::from_secs(age) > self.max_stale
        })
    }

    /// Why a token that verified under the configuration `config` is
    /// refused at `now`: a revocation in force, or a store unreadable for
    /// too long under `on_unavailable = "deny"`.
    ///
    /// A cached verification remembers ([`Verified::memo`]) the version of
    /// the set it was last found clear in; while that set is in force it is
    /// not searched again. That is exact: a set only ever clears more
    /// tokens as time passes (entries expire), and any change to it is a new
    /// version, searched at the first request after it is published.
    #[inline]
    pub fn check(
        &self,
        config: &str,
        verified: &Verified<'_>,
        now: UnixTime,
        scratch: &mut LookupScratch,
    ) -> Option<Rejection> {
        if self.on_unavailable == OnUnavailable::Deny && self.too_stale(now) {
            return Some(UNAVAILABLE);
        }
        let version = self.set.version();
        if verified.memo.is_some_and(|memo| memo.get() == version) {
            return None;
        }
        let refused = self
            .set
            .check(config, &verified.claims, verified.key.kid(), now, scratch);
        if refused.is_none()
            && let Some(memo) = verified.memo
        {
            memo.set(version);
        }
        refused
    }
}
