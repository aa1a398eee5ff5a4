//! Which tokens a request carries for a rule, and whether they settle it.
//!
//! A request may carry several tokens (a header and a cookie, or sources of
//! different token configurations). jwtgate never picks the one that passes:
//!
//! - `mode = "any"`: every distinct token found must be valid for at least
//!   one of the rule's configurations whose sources found it;
//! - `mode = "all"`: every configuration must find a token, and every token
//!   it finds must be valid for it;
//! - with `"any"`, all valid tokens must also name the same issuer and
//!   subject, so the identity sent upstream is the identity of every token
//!   (with `"all"`, identities differ by design: a user and a service token;
//!   the first configuration's token gives the identity).
//!
//! With `mode = "any"`, when several of a rule's configurations refuse one token, the reason
//! reported (answer, access log, metrics label) is that of the configuration
//! that got furthest with it ([`crate::Stage`]: the algorithm, the `typ`, the
//! kid, the signature, the claims), the first listed among equals: an expired
//! token is `expired` whichever order the rule lists its configurations in.
//!
//! A request with no token at all is `Missing` in both modes, so
//! `on_missing = "allow"` applies to both.
//!
//! Anything else with a valid token in it is `ambiguous_token`. The allow
//! answer is rendered while the first valid token's claims are at hand (they
//! borrow the shard's scratch space, which the next verification reuses).

use crate::http::RequestHead;
use crate::jwks::TokenKeys;
use crate::policy::{Found, Mode, Policy, Rule, TokenConfig};
use jwtgate_engine::json::JsonStr;

use std::cell::RefCell;
use std::sync::Arc;

use crate::metrics::ShardMetrics;
use crate::queue_delay::Shedding;
use crate::revocation::{LookupScratch, Revocations};
use crate::{Lookup, Outcome, Rejection, Scratch, TokenCache, UnixTime};

use super::response::{self, Identity};

/// Distinct tokens one request may carry before it is refused outright.
const MAX_TOKENS: usize = 8;

/// What the rule's tokens decided, and which of its token configurations
/// decided it (a position in `rule.token_configs`), for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decided {
    pub(crate) verdict: Verdict,
    pub(crate) config: Option<usize>,
}

/// What the rule's tokens decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Valid; whether the first valid token meets the rule's claim requirements.
    Valid {
        /// The requirements hold.
        claims_ok: bool,
    },
    /// No source held a token.
    Missing,
    /// Refused, with the reason to report.
    Refused(Rejection),
    /// Not verified: the shard is overloaded and its cache does not hold a
    /// token of the request.
    Shed,
}

#[derive(Clone, Copy)]
enum State {
    /// Not checked yet: what every slot holds until its token is.
    Unchecked,
    Valid,
    Refused(Rejection),
}

/// The request's distinct tokens and how they fared (with the position of the
/// configuration that settled each), on the stack.
struct Ledger<'b> {
    tokens: [&'b [u8]; MAX_TOKENS],
    states: [(State, usize); MAX_TOKENS],
    len: usize,
    /// A source that could not be read as one token (counts as a refused token).
    malformed: Option<(Rejection, usize)>,
}

impl<'b> Ledger<'b> {
    fn new() -> Ledger<'b> {
        Ledger {
            tokens: [&[]; MAX_TOKENS],
            states: [(State::Unchecked, 0); MAX_TOKENS],
            len: 0,
            malformed: None,
        }
    }

    /// The slot of `token`, added if new; `None` when the ledger is full.
    fn slot(&mut self, token: &'b [u8]) -> Option<usize> {
        let known = self.tokens.iter().take(self.len).position(|t| *t == token);
        if known.is_some() {
            return known;
        }
        let slot = self.len;
        *self.tokens.get_mut(slot)? = token;
        self.len += 1;
        Some(slot)
    }

    fn state(&self, slot: usize) -> Option<State> {
        self.states.get(slot).map(|&(state, _)| state)
    }

    fn set(&mut self, slot: usize, state: State, config: usize) {
        if let Some(entry) = self.states.get_mut(slot) {
            *entry = (state, config);
        }
    }

    /// Records that the configuration at `config` refused the token in
    /// `slot`. Of several refusals the one that got furthest stands (the
    /// configuration that knew the token's algorithm, its kid, its
    /// signature), the first listed among equals: a token refused as
    /// `expired` by its own configuration is not reported as
    /// `alg_not_allowed` by another that never could have accepted it.
    fn refuse(&mut self, slot: usize, rejection: Rejection, config: usize) {
        let stands = match self.state(slot) {
            Some(State::Unchecked) => true,
            Some(State::Refused(earlier)) => rejection.stage() > earlier.stage(),
            Some(State::Valid) | None => false,
        };
        if stands {
            self.set(slot, State::Refused(rejection), config);
        }
    }

    fn states(&self) -> impl Iterator<Item = (State, usize)> + '_ {
        self.states.iter().take(self.len).copied()
    }
}

/// The per-shard buffers a rule check writes into.
pub(crate) struct Workspace<'w> {
    pub(crate) scratch: &'w mut Scratch,
    /// The shard's verified-token cache.
    pub(crate) cache: &'w mut TokenCache,
    /// Where cache hits and misses are counted (`None` with metrics off),
    /// for the policy the request is decided by.
    pub(crate) lookups: Option<(&'w RefCell<ShardMetrics>, &'w Arc<Policy>)>,
    /// The raw `iss` and `sub` of the first valid token, to compare the others with.
    pub(crate) identity_key: &'w mut Vec<u8>,
    /// The output; the allow answer is rendered from `start`.
    pub(crate) out: &'w mut Vec<u8>,
    pub(crate) start: usize,
    /// Set when the request is logged: the identity the log line names.
    pub(crate) seen: Option<&'w mut Seen>,
    /// Set when the shard refuses to verify once overloaded.
    pub(crate) shedding: Option<&'w Shedding>,
    /// Unescaped claims for revocation lookups (grows once, then reused).
    pub(crate) revocation_scratch: &'w mut LookupScratch,
}

/// What a log line says about a request's tokens: the first token's `kid`
/// (claimed, if it was refused) and the first verified token's `sub`, as raw
/// JSON string contents. Reused per shard.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    pub(crate) kid: Option<Vec<u8>>,
    pub(crate) sub: Option<Vec<u8>>,
    kid_buffer: Vec<u8>,
    sub_buffer: Vec<u8>,
}

impl Seen {
    pub(crate) fn clear(&mut self) {
        if let Some(kid) = self.kid.take() {
            self.kid_buffer = kid;
        }
        if let Some(sub) = self.sub.take() {
            self.sub_buffer = sub;
        }
    }

    fn note_kid(&mut self, kid: Option<JsonStr<'_>>) {
        if let (None, Some(kid)) = (&self.kid, kid) {
            let mut buffer = std::mem::take(&mut self.kid_buffer);
            buffer.clear();
            buffer.extend_from_slice(kid.raw().as_bytes());
            self.kid = Some(buffer);
        }
    }

    fn note_sub(&mut self, sub: Option<JsonStr<'_>>) {
        if let (None, Some(sub)) = (&self.sub, sub) {
            let mut buffer = std::mem::take(&mut self.sub_buffer);
            buffer.clear();
            buffer.extend_from_slice(sub.raw().as_bytes());
            self.sub = Some(buffer);
        }
    }
}

/// The request being checked.
pub(crate) struct Request<'r, 'b> {
    pub(crate) head: &'r RequestHead<'r, 'b>,
    pub(crate) query: &'b [u8],
    pub(crate) now: UnixTime,
    /// The revocations in force, checked after a token verifies (cached or not).
    pub(crate) revocations: &'r Revocations,
}

pub(crate) const KEYS_UNAVAILABLE: Rejection = Rejection::new(
    Outcome::KeysUnavailable,
    "the token configuration has no usable key set (not fetched yet, or stale)",
);

const AMBIGUOUS: Rejection = Rejection::new(
    Outcome::AmbiguousToken,
    "the request carries several tokens that are not all valid or not all of one identity",
);

/// Whether `claims` name the identity recorded in `key` by [`identity_key`].
fn same_identity(claims: &crate::Claims<'_>, key: &[u8]) -> bool {
    let iss = claims.iss.map_or("", |iss| iss.raw()).as_bytes();
    let sub = claims.sub.map_or("", |sub| sub.raw()).as_bytes();
    key.len() == iss.len() + 1 + sub.len()
        && key.starts_with(iss)
        && key.get(iss.len()) == Some(&0)
        && key.ends_with(sub)
}

fn identity_key(claims: &crate::Claims<'_>, key: &mut Vec<u8>) {
    key.clear();
    key.extend_from_slice(claims.iss.map_or("", |iss| iss.raw()).as_bytes());
    key.push(0);
    key.extend_from_slice(claims.sub.map_or("", |sub| sub.raw()).as_bytes());
}

/// Checks `rule`'s token configurations against the request, rendering the
/// allow answer into `work.out` on the way (the caller discards it unless the
/// verdict is valid with claims met).
pub(crate) fn check_rule<'b>(
    rule: &Rule,
    configs: &[TokenConfig],
    keys: &[TokenKeys],
    request: &Request<'_, 'b>,
    identity: Identity<'_>,
    close: bool,
    work: &mut Workspace<'_>,
) -> Decided {
    let mut ledger = Ledger::new();
    let mut rendered: Option<usize> = None;
    let mut conflict = false;
    let mut claims_ok = true;
    let mut all_mode_failure: Option<(Rejection, Option<usize>)> = None;
    let chosen = rule
        .token_configs
        .iter()
        .enumerate()
        .filter_map(|(position, &index)| {
            Some((position, index, configs.get(index)?, keys.get(index)?))
        });
    for (position, index, config, keys) in chosen {
        let mut found_for_config = false;
        for source in config.sources.iter() {
            let token = match source.find(request.head, request.query) {
                Found::Absent => continue,
                Found::Malformed(detail) => {
                    let rejection = Rejection::new(Outcome::Malformed, detail);
                    ledger.malformed.get_or_insert((rejection, position));
                    all_mode_failure.get_or_insert((rejection, Some(position)));
                    continue;
                }
                Found::Token(token) => token,
            };
            found_for_config = true;
            let Some(slot) = ledger.slot(token) else {
                return Decided {
                    verdict: Verdict::Refused(AMBIGUOUS),
                    config: Some(position),
                };
            };
            if rule.mode == Mode::Any && matches!(ledger.state(slot), Some(State::Valid)) {
                continue;
            }
            // Checked per token, as late as possible: a verification is
            // refused only when the shard is behind at the moment it would run.
            if keys.available()
                && work.shedding.is_some_and(Shedding::overloaded)
                && !work
                    .cache
                    .holds(keys.verifier(), keys.generation(), token, request.now)
            {
                return Decided {
                    verdict: Verdict::Shed,
                    config: Some(position),
                };
            }
            let verified = if keys.available() {
                let (verified, lookup) = work.cache.verify(
                    keys.verifier(),
                    keys.generation(),
                    token,
                    request.now,
                    work.scratch,
                );
                if let Some((metrics, policy)) = work.lookups
                    && lookup != Lookup::Bypassed
                {
                    metrics
                        .borrow_mut()
                        .count_cache_lookup(policy, index, lookup == Lookup::Hit);
                }
                verified
            } else {
                // A token this configuration could never accept is refused
                // for that, so that another configuration's reason can stand.
                keys.verifier()
                    .screen(token, work.scratch)
                    .and(Err(KEYS_UNAVAILABLE))
            };
            // A verified token (fresh or from the cache) is refused while a
            // revocation covers it: a cached entry stops passing the moment
            // the revocation is published.
            let verified = verified.and_then(|verified| {
                match request.revocations.check(
                    &config.name,
                    &verified,
                    request.now,
                    work.revocation_scratch,
                ) {
                    Some(rejection) => Err(rejection),
                    None => Ok(verified),
                }
            });
            if let (Err(rejection), Some(remote)) = (&verified, keys.remote())
                && rejection.outcome() == Outcome::UnknownKid
            {
                // The key set may have rotated: the key manager refetches (throttled).
                remote.want_refetch();
            }
            match verified {
                Ok(verified) => {
                    if let Some(seen) = work.seen.as_deref_mut() {
                        seen.note_kid(verified.header.kid);
                        seen.note_sub(verified.claims.sub);
                    }
                    if rendered.is_some() {
                        conflict |= !same_identity(&verified.claims, work.identity_key);
                    } else {
                        identity_key(&verified.claims, work.identity_key);
                        claims_ok = rule
                            .require_claims
                            .iter()
                            .all(|requirement| requirement.holds(&verified.claims));
                        work.out.truncate(work.start);
                        response::allowed(work.out, &verified, identity, close);
                        rendered = Some(position);
                    }
                    ledger.set(slot, State::Valid, position);
                }
                Err(rejection) => {
                    // The header is decoded once more, for a logged request
                    // only, and never for a token beyond the length limit.
                    if let Some(seen) = work.seen.as_deref_mut()
                        && seen.kid.is_none()
                        && rejection.outcome() != Outcome::TokenTooLarge
                    {
                        seen.note_kid(jwtgate_engine::claimed_kid(token, work.scratch));
                    }
                    ledger.refuse(slot, rejection, position);
                    if rule.mode == Mode::All {
                        all_mode_failure.get_or_insert((rejection, Some(position)));
                    }
                }
            }
        }
        if rule.mode == Mode::All && !found_for_config {
            all_mode_failure.get_or_insert((
                Rejection::new(
                    Outcome::Missing,
                    "a token configuration of the rule found no token",
                ),
                Some(position),
            ));
        }
    }
    let valid = ledger
        .states()
        .filter(|(s, _)| matches!(s, State::Valid))
        .count();
    let decided = |verdict, config| Decided { verdict, config };
    if ledger.len == 0 && ledger.malformed.is_none() {
        return decided(Verdict::Missing, None);
    }
    if rule.mode == Mode::All {
        // Every configuration must pass; its own reason is the one reported.
        // Identities may differ here by design (a user token and a service token).
        return match all_mode_failure {
            Some((rejection, config)) => decided(Verdict::Refused(rejection), config),
            None if valid > 0 => decided(Verdict::Valid { claims_ok }, rendered),
            None => decided(Verdict::Missing, None),
        };
    }
    let first_refusal = ledger
        .states()
        .find_map(|(s, config)| match s {
            State::Refused(rejection) => Some((rejection, config)),
            State::Valid | State::Unchecked => None,
        })
        .or(ledger.malformed);
    match (valid, first_refusal) {
        (0, None) => decided(Verdict::Missing, None),
        (0, Some((rejection, config))) => decided(Verdict::Refused(rejection), Some(config)),
        (_, Some((_, config))) => decided(Verdict::Refused(AMBIGUOUS), Some(config)),
        (_, None) if conflict => decided(Verdict::Refused(AMBIGUOUS), rendered),
        (_, None) => decided(Verdict::Valid { claims_ok }, rendered),
    }
}
