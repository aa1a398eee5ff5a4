//! Time as the engine sees it: [`UnixTime`], whole seconds since the Unix
//! epoch, always passed in by the caller.
//!
//! The engine never reads the clock itself, so a verification is a pure
//! function of the token, the keys, the settings and `now`: tests pin time,
//! and a server reads the clock once per batch or loop turn instead of once
//! per token. [`UnixTime::now`] is here for those callers.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch: the clock reading a verification is judged at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixTime(pub i64);

impl UnixTime {
    /// The system clock now (callers read it once per batch or loop turn).
    pub fn now() -> UnixTime {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        UnixTime(i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX))
    }
}
