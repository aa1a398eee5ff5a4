//! Open files: every connection holds a descriptor, so the process's
//! open-file limit bounds how many connections the shards can hold. A limit
//! reached in the middle of serving would fail accepts (the connection waits
//! in the backlog, unexplained) and key fetches alike; instead the limit is
//! raised at start as far as the process may (its soft limit to its hard
//! one, as Go's runtime and nginx's `worker_rlimit_nofile` do), and
//! `max_connections` is lowered, with a warning naming the numbers, when the
//! shards could still not hold it.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Descriptors kept for the process's own use: the admin port and its
/// connections (64), key fetches (8 at once), the access log, the
/// configuration and key files, standard streams.
const RESERVED_BASE: u64 = 128;

/// Descriptors each shard keeps per face besides its connections: the
/// listener and its two duplicates, the runtime's ring and event fds, the
/// heartbeat's loopback pairs.
const RESERVED_PER_FACE: u64 = 16;

/// Descriptors kept back from connections for `shards` shards of `faces` faces.
pub(super) fn reserved(shards: usize, faces: usize) -> u64 {
    let holders = u64::try_from(shards.max(1).saturating_mul(faces.max(1))).unwrap_or(u64::MAX);
    RESERVED_BASE.saturating_add(RESERVED_PER_FACE.saturating_mul(holders))
}

/// Raises the soft open-file limit to the hard one; returns the soft limit
/// then in force (`None`: unlimited).
pub(super) fn raise_limit() -> Option<u64> {
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return limit.maximum;
        }
    }
    limit.current
}

/// The most connections per shard and face that `limit` descriptors hold,
/// for `shards` shards serving `faces` faces each; `wanted` if they fit.
pub(super) fn fitting(wanted: usize, shards: usize, faces: usize, limit: Option<u64>) -> usize {
    let Some(limit) = limit else {
        return wanted;
    };
    let holders = u64::try_from(shards.max(1).saturating_mul(faces.max(1))).unwrap_or(u64::MAX);
    let fit = limit.saturating_sub(reserved(shards, faces)) / holders;
    usize::try_from(fit).map_or(wanted, |fit| wanted.min(fit.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_fit_the_limit_after_the_reserve() {
        assert_eq!(reserved(2, 1), 160);
        assert_eq!(fitting(10_000, 2, 1, Some(20_000)), 9_920);
        assert_eq!(fitting(10_000, 2, 1, Some(1_048_576)), 10_000);
        assert_eq!(reserved(4, 2), 256);
        assert_eq!(fitting(10_000, 4, 2, Some(20_000)), 2_468);
        assert_eq!(
            fitting(10_000, usize::MAX, 3, Some(20_000)),
            1,
            "no overflow"
        );
        assert_eq!(fitting(10_000, 1, 1, None), 10_000, "unlimited");
        assert_eq!(fitting(10_000, 2, 1, Some(100)), 1, "never zero");
        assert_eq!(fitting(500, 2, 3, Some(4_096)), 500);
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let raised = raise_limit();
        let now = getrlimit(Resource::Nofile);
        assert_eq!(raised, now.current);
        assert_eq!(now.current, now.maximum);
    }
}
