//! A shard's counters for one policy: one dense `u64` array, laid out once
//! per policy so that counting a request is an index computation and an add.
//!
//! Each rule owns a block of `(its token configurations + 1) × DECISIONS ×
//! ACTIONS × FACES` counters (the `+ 1` is "no configuration decided", a missing token
//! say); one more block counts requests that matched no rule. Only the
//! combinations a rule can produce take space, so a thousand rules cost a
//! megabyte, not the product of every rule and every configuration.

use std::sync::Arc;

use super::{ACTIONS, DECISIONS, Decision, FACES, Face, Place, Taken};
use crate::policy::Policy;

const PER_CONFIG: usize = DECISIONS * ACTIONS * FACES;

#[derive(Debug)]
pub(super) struct Table {
    policy: Arc<Policy>,
    /// Where each rule's block starts; the no-rule block starts at the end.
    starts: Box<[usize]>,
    counts: Box<[u64]>,
    /// Verified-token cache `[misses, hits]` per token configuration, by
    /// its index in the policy.
    lookups: Box<[[u64; 2]]>,
}

/// One non-zero counter, with its place resolved to names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Entry<'p> {
    pub(super) rule: &'p str,
    pub(super) token_config: &'p str,
    pub(super) decision: Decision,
    pub(super) taken: Taken,
    pub(super) face: Face,
    pub(super) count: u64,
}

impl Table {
    pub(super) fn new(policy: &Arc<Policy>) -> Table {
        let mut starts = Vec::with_capacity(policy.rules.len());
        let mut next = 0;
        for rule in &policy.rules {
            starts.push(next);
            next += (rule.token_configs.len() + 1) * PER_CONFIG;
        }
        Table {
            policy: Arc::clone(policy),
            starts: starts.into_boxed_slice(),
            counts: vec![0; next + PER_CONFIG].into_boxed_slice(),
            lookups: vec![[0; 2]; policy.configs.len()].into_boxed_slice(),
        }
    }

    /// Whether this table was laid out for `policy`.
    pub(super) fn is_for(&self, policy: &Arc<Policy>) -> bool {
        Arc::ptr_eq(&self.policy, policy)
    }

    fn slot(&self, place: Place) -> Option<usize> {
        let (start, configs) = match place.rule {
            Some(rule) => (
                *self.starts.get(rule)?,
                self.policy.rules.get(rule)?.token_configs.len(),
            ),
            None => (self.counts.len().checked_sub(PER_CONFIG)?, 0),
        };
        let config = match place.config {
            Some(position) if position < configs => position + 1,
            Some(_) => return None,
            None => 0,
        };
        Some(start + config * PER_CONFIG)
    }

    /// Adds one; a place outside the policy (never produced) is not counted.
    #[inline]
    pub(super) fn add(&mut self, face: Face, place: Place, decision: Decision, taken: Taken) {
        if let Some(counter) = self.slot(place).and_then(|block| {
            self.counts.get_mut(
                block + (decision.index() * ACTIONS + taken.index()) * FACES + face.index(),
            )
        }) {
            *counter += 1;
        }
    }

    /// Adds one cache lookup of configuration `config`.
    #[inline]
    pub(super) fn add_lookup(&mut self, config: usize, hit: bool) {
        if let Some(counter) = self
            .lookups
            .get_mut(config)
            .and_then(|counts| counts.get_mut(usize::from(hit)))
        {
            *counter += 1;
        }
    }

    pub(super) fn any(&self) -> bool {
        self.counts.iter().any(|&count| count > 0)
            || self.lookups.iter().flatten().any(|&count| count > 0)
    }

    /// Cache `(configuration name, misses, hits)`, for configurations with any.
    pub(super) fn lookups(&self) -> impl Iterator<Item = (&str, u64, u64)> + '_ {
        self.policy
            .configs
            .iter()
            .zip(self.lookups.iter())
            .filter(|&(_, &[misses, hits])| misses + hits > 0)
            .map(|(config, &[misses, hits])| (&*config.name, misses, hits))
    }

    /// A copy of the counts for collection; this table starts again at zero.
    pub(super) fn take(&mut self) -> Table {
        let taken = Table {
            policy: Arc::clone(&self.policy),
            starts: self.starts.clone(),
            counts: self.counts.clone(),
            lookups: self.lookups.clone(),
        };
        self.counts.fill(0);
        self.lookups.fill([0; 2]);
        taken
    }

    /// Every non-zero counter, with names.
    pub(super) fn entries(&self) -> impl Iterator<Item = Entry<'_>> + '_ {
        let policy = &*self.policy;
        let blocks = policy
            .rules
            .iter()
            .zip(self.starts.iter())
            .flat_map(move |(rule, &start)| {
                let configs = std::iter::once("").chain(
                    rule.token_configs
                        .iter()
                        .map(move |&index| policy.configs.get(index).map_or("", |c| &*c.name)),
                );
                configs.enumerate().map(move |(position, config)| {
                    (&*rule.name, config, start + position * PER_CONFIG)
                })
            })
            .chain(std::iter::once((
                "",
                "",
                self.counts.len().saturating_sub(PER_CONFIG),
            )));
        blocks.flat_map(move |(rule, token_config, start)| {
            let block = self
                .counts
                .get(start..start + PER_CONFIG)
                .unwrap_or_default();
            block
                .iter()
                .enumerate()
                .filter(|&(_, &count)| count > 0)
                .filter_map(move |(offset, &count)| {
                    let (outcome, face) = (offset / FACES, offset % FACES);
                    Some(Entry {
                        rule,
                        token_config,
                        decision: Decision::from_index(outcome / ACTIONS)?,
                        taken: Taken::from_index(outcome % ACTIONS)?,
                        face: Face::from_index(face)?,
                        count,
                    })
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Outcome;

    fn policy() -> Arc<Policy> {
        let source = r#"
            default_action = "deny"
            [[token_config]]
            name = "staff"
            @JWKS@
            [[token_config]]
            name = "partners"
            @JWKS@
            [[rule]]
            name = "api"
            token_configs = ["staff", "partners"]
            [[rule]]
            name = "admin"
            token_configs = ["partners"]
        "#;
        crate::test_support::policy_with_demo_keys(source)
    }

    #[test]
    fn counts_land_under_their_names() {
        let policy = policy();
        let mut table = Table::new(&policy);
        let valid = Decision::Token(Outcome::Valid);
        let expired = Decision::Token(Outcome::Expired);
        let at = |rule, config| Place { rule, config };
        let (http, grpc) = (Face::Http, Face::Grpc);
        table.add(http, at(Some(0), Some(1)), valid, Taken::Allow);
        table.add(http, at(Some(0), Some(1)), valid, Taken::Allow);
        table.add(grpc, at(Some(0), Some(1)), valid, Taken::Allow);
        table.add(grpc, at(Some(1), Some(0)), expired, Taken::Block);
        table.add(
            http,
            at(Some(0), None),
            Decision::Token(Outcome::Missing),
            Taken::Log,
        );
        table.add(http, at(None, None), Decision::NoRule, Taken::Block);
        // Places no policy produces are ignored, not misfiled.
        table.add(http, at(Some(1), Some(1)), valid, Taken::Allow);
        table.add(grpc, at(Some(2), None), valid, Taken::Allow);
        table.add(http, at(None, Some(0)), valid, Taken::Allow);
        let mut entries: Vec<_> = table
            .entries()
            .map(|e| {
                (
                    e.rule,
                    e.token_config,
                    e.decision.name(),
                    e.taken.name(),
                    e.face.name(),
                    e.count,
                )
            })
            .collect();
        entries.sort();
        assert_eq!(
            entries,
            [
                ("", "", "no_rule", "block", "http", 1),
                ("admin", "partners", "expired", "block", "grpc", 1),
                ("api", "", "missing", "log", "http", 1),
                ("api", "partners", "valid", "allow", "grpc", 1),
                ("api", "partners", "valid", "allow", "http", 2),
            ]
        );
        let taken = table.take();
        assert!(taken.any() && !table.any());
        assert!(table.is_for(&policy) && !table.is_for(&self::policy()));
    }
}
