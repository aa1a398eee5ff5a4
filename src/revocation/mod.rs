//! Revocations: tokens, subjects and keys refused before their tokens
//! expire, shared by every instance.
//!
//! - [`record`]: what a revocation is and its one-line JSON form;
//! - [`set`]: the entries in force, as the shards read them (hash lookups,
//!   no lock, no allocation);
//! - [`state`]: the set with how current it is, as published beside the
//!   keys in the `crate::snapshot::Snapshot`;
//! - [`file`](mod@file): a revocation file (one instance, tests);
//! - [`redis`]: Redis, shared by every instance;
//! - [`manager`]: the thread that keeps the published set current from
//!   the store, and [`shared`], what it shares with the store's follower.
//!
//! No request ever waits on the store: a shard reads the set published
//! last, and the manager replaces it as the store changes.

pub mod file;
pub mod manager;
pub mod record;
pub mod redis;
pub mod set;
pub mod shared;
pub mod state;

use std::path::PathBuf;
use std::time::Duration;

pub use manager::RevocationManager;
pub use record::{Kind, RecentScopes, Revocation};
pub use set::{Change, LookupScratch, Rebuild, RevocationSet};
pub use shared::{RevocationSink, StoreStatus};
pub use state::{OnUnavailable, Revocations, StoreCounters};

/// Where revocations are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Store {
    /// A local file of JSON lines.
    File(PathBuf),
    /// Redis, shared by every instance.
    Redis {
        /// `redis://` or `rediss://` (TLS), with user, password and database.
        url: String,
        /// The prefix of every key, and of the change channel.
        prefix: String,
        /// Trust only the CAs in this PEM file for `rediss://`.
        ca_file: Option<PathBuf>,
    },
}

impl Store {
    /// The store as a report names it, without credentials.
    pub fn describe(&self) -> String {
        match self {
            Store::File(path) => format!("file {}", path.display()),
            Store::Redis { url, prefix, .. } => {
                format!("redis {} (keys {prefix}*)", redis::redacted(url))
            }
        }
    }
}

/// The `[revocation]` table's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationSettings {
    /// Where the revocations are kept.
    pub store: Store,
    /// How long a store's last set stays in force alone once it cannot be read.
    pub max_stale: Duration,
    /// What applies after that.
    pub on_unavailable: OnUnavailable,
    /// How often the whole store is read again (Redis), to repair anything
    /// a change notification missed.
    pub resync_interval: Duration,
}
