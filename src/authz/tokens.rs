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
//! A request with no token at all is `Missing` in both modes, so
//! `on_missing = "allow"` applies to both.
//!
//! Anything else with a valid token in it is `ambiguous_token`. The allow
//! answer is rendered while the first valid token's claims are at hand (they
//! borrow the shard's scratch space, which the next verification reuses).

use crate::http::RequestHead;
use crate::policy::{Found, Mode, Rule, TokenConfig};
use crate::{Outcome, Rejection, Scratch, UnixTime};

use super::response::{self, Identity};

/// Distinct tokens one request may carry before it is refused outright.
const MAX_TOKENS: usize = 8;

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
}

#[derive(Clone, Copy)]
enum State {
    Valid,
    Refused(Rejection),
}

/// The request's distinct tokens and how they fared, on the stack.
struct Ledger<'b> {
    tokens: [&'b [u8]; MAX_TOKENS],
    states: [State; MAX_TOKENS],
    len: usize,
    /// A source that could not be read as one token (counts as a refused token).
    malformed: Option<Rejection>,
}

impl<'b> Ledger<'b> {
    fn new() -> Ledger<'b> {
        Ledger {
            tokens: [&[]; MAX_TOKENS],
            states: [State::Refused(Rejection::new(Outcome::Missing, "")); MAX_TOKENS],
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
        self.states.get(slot).copied()
    }

    fn set(&mut self, slot: usize, state: State) {
        if let Some(entry) = self.states.get_mut(slot) {
            *entry = state;
        }
    }

    fn states(&self) -> impl Iterator<Item = State> + '_ {
        self.states.iter().take(self.len).copied()
    }
}

/// The per-shard buffers a rule check writes into.
pub(crate) struct Workspace<'w> {
    pub(crate) scratch: &'w mut Scratch,
    /// The raw `iss` and `sub` of the first valid token, to compare the others with.
    pub(crate) identity_key: &'w mut Vec<u8>,
    /// The output; the allow answer is rendered from `start`.
    pub(crate) out: &'w mut Vec<u8>,
    pub(crate) start: usize,
}

/// The request being checked.
pub(crate) struct Request<'r, 'b> {
    pub(crate) head: &'r RequestHead<'r, 'b>,
    pub(crate) query: &'b [u8],
    pub(crate) now: UnixTime,
}

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
    request: &Request<'_, 'b>,
    identity: Identity<'_>,
    close: bool,
    work: &mut Workspace<'_>,
) -> Verdict {
    let mut ledger = Ledger::new();
    let mut rendered = false;
    let mut conflict = false;
    let mut claims_ok = true;
    let mut all_mode_failure: Option<Rejection> = None;
    for config in rule.token_configs.iter().filter_map(|&i| configs.get(i)) {
        let mut found_for_config = false;
        for source in config.sources.iter() {
            let token = match source.find(request.head, request.query) {
                Found::Absent => continue,
                Found::Malformed(detail) => {
                    let rejection = Rejection::new(Outcome::Malformed, detail);
                    ledger.malformed.get_or_insert(rejection);
                    all_mode_failure.get_or_insert(rejection);
                    continue;
                }
                Found::Token(token) => token,
            };
            found_for_config = true;
            let Some(slot) = ledger.slot(token) else {
                return Verdict::Refused(AMBIGUOUS);
            };
            if rule.mode == Mode::Any && matches!(ledger.state(slot), Some(State::Valid)) {
                continue;
            }
            match config.verifier.verify(token, request.now, work.scratch) {
                Ok(verified) => {
                    if rendered {
                        conflict |= !same_identity(&verified.claims, work.identity_key);
                    } else {
                        identity_key(&verified.claims, work.identity_key);
                        claims_ok = rule
                            .require_claims
                            .iter()
                            .all(|requirement| requirement.holds(&verified.claims));
                        work.out.truncate(work.start);
                        response::allowed(work.out, &verified, identity, close);
                        rendered = true;
                    }
                    ledger.set(slot, State::Valid);
                }
                Err(rejection) => {
                    if !matches!(ledger.state(slot), Some(State::Valid)) {
                        ledger.set(slot, State::Refused(rejection));
                    }
                    if rule.mode == Mode::All {
                        all_mode_failure.get_or_insert(rejection);
                    }
                }
            }
        }
        if rule.mode == Mode::All && !found_for_config {
            all_mode_failure.get_or_insert(Rejection::new(
                Outcome::Missing,
                "a token configuration of the rule found no token",
            ));
        }
    }
    let valid = ledger
        .states()
        .filter(|s| matches!(s, State::Valid))
        .count();
    if ledger.len == 0 && ledger.malformed.is_none() {
        return Verdict::Missing;
    }
    if rule.mode == Mode::All {
        // Every configuration must pass; its own reason is the one reported.
        // Identities may differ here by design (a user token and a service token).
        return match all_mode_failure {
            Some(rejection) => Verdict::Refused(rejection),
            None if valid > 0 => Verdict::Valid { claims_ok },
            None => Verdict::Missing,
        };
    }
    let first_refusal = ledger
        .states()
        .find_map(|s| match s {
            State::Refused(rejection) => Some(rejection),
            State::Valid => None,
        })
        .or(ledger.malformed);
    match (valid, first_refusal) {
        (0, None) => Verdict::Missing,
        (0, Some(rejection)) => Verdict::Refused(rejection),
        (_, Some(_)) => Verdict::Refused(AMBIGUOUS),
        (_, None) if conflict => Verdict::Refused(AMBIGUOUS),
        (_, None) => Verdict::Valid { claims_ok },
    }
}
