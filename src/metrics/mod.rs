//! What jwtgate counts and times, and how it gets from the shards to a scrape.
//!
//! ```text
//!  shard (hot path)      ShardMetrics: plain u64 counters in a dense table
//!                        laid out for the policy in force, two hdrhistograms;
//!                        no lock, no atomic, no allocation per request
//!  shard (when asked)    Hub::collect raises the shard's ask; the shard hands
//!                        over what it counted since the last ask (a Delta) and
//!                        starts again from zero
//!  admin / main thread   Hub merges deltas by name into running totals, which
//!                        /metrics, /stats and the stderr summary render
//! ```
//!
//! Deltas are merged by names (rule, token configuration), not by table
//! position, so a reload that reorders or renames rules never mixes counts: a
//! shard that sees a new policy keeps its old table aside until it is collected.
//!
//! Files: `table` (the per-shard counter layout), `hub` (collection and
//! totals), `exposition` (Prometheus text, `/stats` JSON, the summary line).

pub(crate) mod exposition;
mod hub;
mod table;

use std::sync::Arc;
use std::time::Duration;

use crate::latency::LatencyHistogram;
use crate::policy::Policy;
use crate::{Outcome, http::ProtocolError};

pub(crate) use hub::{COLLECT_WAIT, Connections, Hub, ShardLink};

use table::Table;

/// What a check request came to: a token outcome, or a decision made before
/// any token was looked at. Its name is the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Decision {
    /// The rule's tokens were checked.
    Token(Outcome),
    /// The endpoint is excluded from the rule that matched.
    Excluded,
    /// A CORS preflight the rule lets through.
    Preflight,
    /// No rule matched; the default action applied.
    NoRule,
    /// Forwarded headers came from a peer outside `trusted_proxies` (403).
    UntrustedProxy,
    /// The original request could not be read or its path is ambiguous (400).
    BadRequest,
    /// The shard was too far behind to verify a token it had not cached (429).
    Overloaded,
}

/// Number of distinct decisions.
pub(crate) const DECISIONS: usize = Outcome::COUNT + 6;

impl Decision {
    /// Dense index, `0..DECISIONS`.
    pub const fn index(self) -> usize {
        const TOKENS: usize = Outcome::COUNT;
        match self {
            Decision::Token(outcome) => outcome.index(),
            Decision::Excluded => TOKENS,
            Decision::Preflight => TOKENS + 1,
            Decision::NoRule => TOKENS + 2,
            Decision::UntrustedProxy => TOKENS + 3,
            Decision::BadRequest => TOKENS + 4,
            Decision::Overloaded => TOKENS + 5,
        }
    }

    /// The decision at `index`, if any.
    pub fn from_index(index: usize) -> Option<Decision> {
        const TOKENS: usize = Outcome::COUNT;
        match index.checked_sub(TOKENS) {
            None => Outcome::ALL.get(index).copied().map(Decision::Token),
            Some(0) => Some(Decision::Excluded),
            Some(1) => Some(Decision::Preflight),
            Some(2) => Some(Decision::NoRule),
            Some(3) => Some(Decision::UntrustedProxy),
            Some(4) => Some(Decision::BadRequest),
            Some(5) => Some(Decision::Overloaded),
            Some(_) => None,
        }
    }

    /// The stable `outcome` label (an [`Outcome::name`] for token decisions).
    pub const fn name(self) -> &'static str {
        match self {
            Decision::Token(outcome) => outcome.name(),
            Decision::Excluded => "excluded",
            Decision::Preflight => "preflight",
            Decision::NoRule => "no_rule",
            Decision::UntrustedProxy => "untrusted_proxy",
            Decision::BadRequest => "bad_request",
            Decision::Overloaded => "overloaded",
        }
    }
}

/// What was done with the request: the `action` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Taken {
    /// Answered 200 as a pass (valid token, excluded endpoint, allowed missing token, ...).
    Allow,
    /// Denied (401, 403, 400 or 429).
    Block,
    /// Would have been denied; let through because the rule's action is `log`.
    Log,
}

/// Number of distinct actions.
pub(crate) const ACTIONS: usize = 3;

impl Taken {
    /// Dense index, `0..ACTIONS`.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The action at `index`, if any.
    pub fn from_index(index: usize) -> Option<Taken> {
        [Taken::Allow, Taken::Block, Taken::Log].get(index).copied()
    }

    /// The stable `action` label.
    pub const fn name(self) -> &'static str {
        match self {
            Taken::Allow => "allow",
            Taken::Block => "block",
            Taken::Log => "log",
        }
    }
}

/// Which face a check request came in by: the `face` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Face {
    /// An HTTP ext_authz check (nginx `auth_request`, Envoy's `http_service`,
    /// Traefik, Caddy).
    Http,
    /// An Envoy gRPC `Authorization/Check`.
    Grpc,
}

/// Number of faces.
pub(crate) const FACES: usize = 2;

impl Face {
    /// Dense index, `0..FACES`.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The face at `index`, if any.
    pub fn from_index(index: usize) -> Option<Face> {
        [Face::Http, Face::Grpc].get(index).copied()
    }

    /// The stable `face` label.
    pub const fn name(self) -> &'static str {
        match self {
            Face::Http => "http",
            Face::Grpc => "grpc",
        }
    }
}

/// Where in the policy a request was decided: the rule that matched, and the
/// position (within that rule's `token_configs`) of the configuration whose
/// token decided. `None` for "no rule" and "no configuration".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Place {
    /// Index into [`Policy::rules`].
    pub rule: Option<usize>,
    /// Position in that rule's `token_configs`.
    pub config: Option<usize>,
}

/// The HTTP statuses of requests the connection loop refused before any
/// service saw them, in label order. Nothing is answered 501 any more (a
/// `Transfer-Encoding` jwtgate cannot decode is 400, so that no client input
/// earns a 5xx); its series stays, always 0, so that dashboards and alerts
/// written against it keep finding it.
pub(crate) const PROTOCOL_STATUSES: [u16; 7] = [400, 408, 413, 414, 431, 500, 501];

/// The gRPC status codes of calls the gRPC face answered with an error
/// itself, in label order, with the label of each; any other code is
/// counted as `other`.
pub(crate) const GRPC_ERRORS: [(i32, &str); 7] = [
    (3, "invalid_argument"),
    (4, "deadline_exceeded"),
    (8, "resource_exhausted"),
    (11, "out_of_range"),
    (12, "unimplemented"),
    (13, "internal"),
    (-1, "other"),
];

/// A shard's counters and histograms, owned by its check service and touched
/// only by its thread.
#[derive(Debug)]
pub struct ShardMetrics {
    table: Table,
    /// Tables of policies replaced by a reload, kept until collected.
    retired: Vec<Table>,
    request: LatencyHistogram,
    verification: LatencyHistogram,
    protocol_errors: [u64; PROTOCOL_STATUSES.len()],
    grpc_errors: [u64; GRPC_ERRORS.len()],
    cache: CacheGauges,
}

/// A shard's verified-token cache as last seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheGauges {
    /// Entries it can hold (0: off).
    pub capacity: u64,
    /// Entries held now.
    pub entries: u64,
    /// Memory it holds: its slots and the entries' heap.
    pub bytes: u64,
    /// Entries replaced to make room, since the shard started.
    pub evictions: u64,
}

impl ShardMetrics {
    /// Counters laid out for `policy` (allocated here, once).
    pub fn new(policy: &Arc<Policy>) -> ShardMetrics {
        ShardMetrics {
            table: Table::new(policy),
            retired: Vec::new(),
            request: LatencyHistogram::new(),
            verification: LatencyHistogram::new(),
            protocol_errors: [0; PROTOCOL_STATUSES.len()],
            grpc_errors: [0; GRPC_ERRORS.len()],
            cache: CacheGauges::default(),
        }
    }

    /// Counts one decided request. `policy` is the policy it was decided by;
    /// the first request after a reload lays out a new table (the only
    /// allocation, once per reload).
    #[inline]
    pub fn count(
        &mut self,
        policy: &Arc<Policy>,
        face: Face,
        place: Place,
        decision: Decision,
        taken: Taken,
    ) {
        self.table_for(policy).add(face, place, decision, taken);
    }

    /// Counts one verified-token cache lookup for token configuration
    /// `config` (an index into `policy.configs`).
    #[inline]
    pub fn count_cache_lookup(&mut self, policy: &Arc<Policy>, config: usize, hit: bool) {
        self.table_for(policy).add_lookup(config, hit);
    }

    /// Notes the state of the shard's verified-token cache, reported with
    /// the next collection.
    #[inline]
    pub fn note_cache(&mut self, cache: CacheGauges) {
        self.cache = cache;
    }

    fn table_for(&mut self, policy: &Arc<Policy>) -> &mut Table {
        if !self.table.is_for(policy) {
            let replaced = std::mem::replace(&mut self.table, Table::new(policy));
            if replaced.any() {
                self.retired.push(replaced);
            }
        }
        &mut self.table
    }

    /// Records how long the rule's tokens took to check.
    #[inline]
    pub fn record_verification(&mut self, latency: Duration) {
        self.verification.record(latency);
    }

    /// Records one request from its complete head to its response written.
    #[inline]
    pub fn record_request(&mut self, latency: Duration) {
        self.request.record(latency);
    }

    /// Counts a request the connection loop refused.
    pub fn count_protocol_error(&mut self, error: ProtocolError) {
        let status = error.status();
        if let Some(slot) = PROTOCOL_STATUSES
            .iter()
            .position(|&known| known == status)
            .and_then(|index| self.protocol_errors.get_mut(index))
        {
            *slot += 1;
        }
    }

    /// Counts a gRPC call the gRPC face answered with error status `code`.
    pub fn count_grpc_error(&mut self, code: i32) {
        let index = GRPC_ERRORS
            .iter()
            .position(|&(known, _)| known == code)
            .unwrap_or(GRPC_ERRORS.len() - 1);
        if let Some(slot) = self.grpc_errors.get_mut(index) {
            *slot += 1;
        }
    }

    /// Everything counted since the last call, leaving the shard at zero.
    pub fn take(&mut self) -> hub::Counted {
        self.take_with(None)
    }

    /// [`ShardMetrics::take`], recording next into `spares` (emptied
    /// histograms the collecting side sent back): the histograms are handed
    /// over, not copied, and no zeroing happens on the shard. Without spares,
    /// new ones are allocated.
    pub(crate) fn take_with(&mut self, spares: Option<hub::Spares>) -> hub::Counted {
        let mut tables = std::mem::take(&mut self.retired);
        if self.table.any() {
            tables.push(self.table.take());
        }
        let (next_request, next_verification) =
            spares.unwrap_or_else(|| (LatencyHistogram::new(), LatencyHistogram::new()));
        let request = std::mem::replace(&mut self.request, next_request);
        let verification = std::mem::replace(&mut self.verification, next_verification);
        hub::Counted {
            tables,
            request,
            verification,
            protocol_errors: std::mem::take(&mut self.protocol_errors),
            grpc_errors: std::mem::take(&mut self.grpc_errors),
            cache: self.cache,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_and_actions_round_trip_through_their_indexes() {
        for index in 0..DECISIONS {
            let decision = Decision::from_index(index).unwrap();
            assert_eq!(decision.index(), index);
        }
        assert_eq!(Decision::from_index(DECISIONS), None);
        for index in 0..ACTIONS {
            assert_eq!(Taken::from_index(index).unwrap().index(), index);
        }
        let names: std::collections::BTreeSet<_> = (0..DECISIONS)
            .filter_map(Decision::from_index)
            .map(Decision::name)
            .collect();
        assert_eq!(names.len(), DECISIONS, "names are distinct");
    }
}
