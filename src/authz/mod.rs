//! The ext_authz decision: route a check request through the policy, find
//! and verify its tokens, and answer 200 with identity headers, 401 with a
//! challenge, or 403.
//!
//! Files: `tokens` (finding and checking a rule's tokens), `response` (the
//! answers' bytes), `wiring` (a rate-limited stderr line for checks refused
//! for how they were sent), `batch` (the network batch face, `POST /v1/verify`, whose
//! types are re-exported here).
//!
//! Neighbours: `crate::http` supplies the parsed head and the `Service`
//! seam; `crate::policy` routes; [`Verifier`](crate::Verifier) is the
//! engine; [`crate::batch`] writes the batch face's lines.
//! One `Authorizer` lives in each shard and owns that shard's scratch space,
//! so verifying allocates nothing; it counts decisions into the shard's
//! metrics, which the shard shares with it (`Authorizer::observed`).
//!
//! Public: the options an embedder sets ([`AuthzOptions`], [`Clock`],
//! [`BatchLimits`]) and the identity headers ([`IDENTITY_HEADERS`]); the
//! decision itself is internal.

mod batch;
mod response;
#[cfg(test)]
mod tests;
mod tokens;
mod wiring;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::access_log::{Entry, ShardLog};
use crate::metrics::{CacheGauges, Decision, Face, Place, ShardMetrics, Taken};

use crate::http::response::write_simple;
use crate::http::{BodyPolicy, Framing, OriginalRequest, RequestHead, Service};
use crate::policy::{self, Action, DefaultAction, Policy, Route, Routed, Rule};
use crate::queue_delay::{QueueDelay, Shedding};
use crate::snapshot::{SharedSnapshot, Snapshot};
use crate::{CacheSettings, Outcome, TokenCache, UnixTime};

pub use batch::BatchLimits;
pub(crate) use batch::BatchVerifier;
pub use response::IDENTITY_HEADERS;
pub(crate) use response::{Denials, Identity};

/// Where "now" comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// The system clock, read once per request.
    System,
    /// A pinned instant (tests, replays).
    Fixed(UnixTime),
}

impl Clock {
    /// The current time by this clock.
    pub fn now(self) -> UnixTime {
        match self {
            Clock::System => UnixTime::now(),
            Clock::Fixed(time) => time,
        }
    }
}

/// Settings of the ext_authz answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthzOptions {
    /// Put the verified payload segment in `x-jwt-payload`.
    pub forward_payload: bool,
    /// Longest check-request body, read and discarded.
    pub max_body: u64,
    /// Answer 200 without looking at the token: only to measure the HTTP
    /// ceiling in benchmarks. Never in production.
    pub danger_skip_verification: bool,
    /// The verification clock.
    pub clock: Clock,
    /// Each shard's verified-token cache.
    pub token_cache: CacheSettings,
    /// Past this wait for its shard, a request whose token is not cached is
    /// answered 429 instead of verified (`None`: always verified).
    pub max_queue_delay: Option<Duration>,
}

/// The ext_authz check service of one shard.
#[derive(Debug)]
pub(crate) struct Authorizer {
    policy: SharedSnapshot,
    options: AuthzOptions,
    denials: Arc<Denials>,
    scratch: crate::Scratch,
    /// Tokens this shard verified, with the key state they were verified by.
    cache: TokenCache,
    /// The readings of the path of the request being decided.
    paths: policy::PathBuffers,
    /// The first valid token's `iss` and `sub`, to compare the others with.
    identity_key: Vec<u8>,
    /// This shard's counters and histograms (`None` with metrics off), shared
    /// with the shard's connection loop, which times requests and counts
    /// protocol errors into them.
    metrics: Option<Rc<RefCell<ShardMetrics>>>,
    /// This shard's access log (`None` when off).
    log: Option<ShardLog>,
    /// What a logged request's tokens said.
    seen: tokens::Seen,
    /// Unescaped claims for revocation lookups.
    revocation_scratch: crate::revocation::LookupScratch,
    /// Set when verifications are refused once the shard is overloaded.
    shedding: Option<Shedding>,
    /// Stderr lines for checks refused for how they were sent.
    wiring: wiring::WiringNotices,
    shard: usize,
}

/// How a request was decided, for metrics and the access log.
#[derive(Debug, Clone, Copy)]
struct Record {
    place: Place,
    decision: Decision,
    taken: Taken,
    status: u16,
    /// Which check decided, in words, for the access log ("": nothing failed).
    reason: &'static str,
}

impl Record {
    fn allowed(rule: Option<usize>, decision: Decision) -> Record {
        Record {
            place: Place { rule, config: None },
            decision,
            taken: Taken::Allow,
            status: 200,
            reason: "",
        }
    }

    fn blocked(decision: Decision, status: u16) -> Record {
        Record {
            place: Place::default(),
            decision,
            taken: Taken::Block,
            status,
            reason: "",
        }
    }

    fn because(self, reason: &'static str) -> Record {
        Record { reason, ..self }
    }

    /// The token outcome, when a token was looked at.
    fn outcome(&self) -> Option<Outcome> {
        match self.decision {
            Decision::Token(outcome) => Some(outcome),
            _ => None,
        }
    }
}

/// Where a check's original request (the client's request to the proxy)
/// comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Origin<'b> {
    /// The HTTP face: read from the check request's own head, as the
    /// policy's `forwarded` style says.
    Forwarded,
    /// The gRPC face: stated by the proxy (Envoy's `CheckRequest`
    /// attributes), whose headers make up the head; `rule` is the rule the
    /// proxy's route names, if it names one.
    Stated {
        /// Method, host and path (with its query).
        request: OriginalRequest<'b>,
        /// The `jwtgate_rule` context extension.
        rule: Option<&'b [u8]>,
    },
    /// The gRPC face, when the proxy's statement cannot be read: answered
    /// 400 with this reason, counted and logged like any other check.
    Unreadable(&'static str),
}

/// How one check was decided, for the face that renders it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Summary<'p> {
    policy: &'p Policy,
    record: Record,
}

impl<'p> Summary<'p> {
    /// The rule that decided, if one did.
    pub(crate) fn rule(&self) -> Option<&'p Rule> {
        self.record
            .place
            .rule
            .and_then(|index| self.policy.rules.get(index))
    }

    /// The name of the token configuration that decided (empty: none).
    pub(crate) fn token_config(&self) -> &'p str {
        self.rule()
            .zip(self.record.place.config)
            .and_then(|(rule, position)| rule.token_configs.get(position))
            .and_then(|&index| self.policy.configs.get(index))
            .map_or("", |config| &config.name)
    }

    /// Which check decided, in words ("": nothing failed).
    pub(crate) fn reason(&self) -> &'static str {
        self.record.reason
    }

    /// The `outcome` label.
    pub(crate) fn outcome_name(&self) -> &'static str {
        self.record.decision.name()
    }

    /// The `action` label.
    pub(crate) fn action_name(&self) -> &'static str {
        self.record.taken.name()
    }

    /// The token outcome, when a token was looked at.
    pub(crate) fn outcome(&self) -> Option<Outcome> {
        self.record.outcome()
    }
}

fn as_text(bytes: Option<&[u8]>) -> Option<&str> {
    bytes.and_then(|bytes| std::str::from_utf8(bytes).ok())
}

/// Whether the request is a CORS preflight.
fn is_preflight(head: &RequestHead<'_, '_>, method: &[u8]) -> bool {
    method == b"OPTIONS"
        && head.header_values("origin").next().is_some()
        && head
            .header_values("access-control-request-method")
            .next()
            .is_some()
}

impl Authorizer {
    /// A shard's authorizer over `policy`; `denials` is rendered once and shared.
    pub(crate) fn new(
        policy: SharedSnapshot,
        options: AuthzOptions,
        denials: Arc<Denials>,
    ) -> Authorizer {
        let scratch = policy.load().keys.first().map_or_else(
            || crate::Scratch::with_token_limit(4096),
            |keys| keys.verifier().scratch(),
        );
        Authorizer {
            policy,
            options,
            denials,
            scratch,
            cache: TokenCache::new(options.token_cache),
            paths: policy::PathBuffers::with_capacity(256),
            identity_key: Vec::with_capacity(256),
            metrics: None,
            log: None,
            seen: tokens::Seen::default(),
            revocation_scratch: crate::revocation::LookupScratch::default(),
            shedding: None,
            wiring: wiring::WiringNotices::default(),
            shard: 0,
        }
    }

    /// This authorizer without the stderr notices of checks refused for how
    /// they were sent: for a tool deciding sample requests.
    pub(crate) fn without_notices(mut self) -> Authorizer {
        self.wiring = wiring::WiringNotices::silent();
        self
    }

    /// Counts and times every request of shard number `shard` into `metrics`
    /// (the shard's own, which its connections also record into), and logs
    /// them to `log`.
    pub(crate) fn observed(
        mut self,
        shard: usize,
        metrics: Option<Rc<RefCell<ShardMetrics>>>,
        log: Option<ShardLog>,
    ) -> Authorizer {
        self.shard = shard;
        if let Some(metrics) = &metrics {
            metrics.borrow_mut().note_cache(self.cache_gauges());
        }
        self.metrics = metrics;
        self.log = log;
        self
    }

    /// Refuses to verify tokens its cache does not hold while requests
    /// wait for the shard longer than `max_queue_delay` (if set), as `delay`
    /// (the shard's heartbeat) measures it.
    pub(crate) fn shedding(mut self, delay: Arc<QueueDelay>) -> Authorizer {
        self.shedding = self
            .options
            .max_queue_delay
            .map(|limit| Shedding::new(delay, limit));
        self
    }

    fn cache_gauges(&self) -> CacheGauges {
        CacheGauges {
            capacity: self.cache.capacity() as u64,
            entries: self.cache.len() as u64,
            bytes: self.cache.memory_bytes() as u64,
            evictions: self.cache.evictions(),
        }
    }

    /// Decides one HTTP check request and appends the answer to `out`;
    /// returns the token outcome (`None` when no token was looked at).
    pub(crate) fn decide(
        &mut self,
        head: &RequestHead<'_, '_>,
        framing: Framing,
        out: &mut Vec<u8>,
    ) -> Option<Outcome> {
        self.decide_from(
            Face::Http,
            head,
            Origin::Forwarded,
            framing,
            out,
            |summary, _| summary.outcome(),
        )
    }

    /// Decides one check request of `face` whose original request comes from
    /// `origin`, appends the HTTP answer to `out`, and hands `then` how it
    /// was decided and the answer (the bytes appended), while the policy
    /// that decided is at hand.
    pub(crate) fn decide_from<R>(
        &mut self,
        face: Face,
        head: &RequestHead<'_, '_>,
        origin: Origin<'_>,
        framing: Framing,
        out: &mut Vec<u8>,
        then: impl FnOnce(Summary<'_>, &[u8]) -> R,
    ) -> R {
        // A guard, not a clone of the Arc: no shared reference count is touched.
        let snapshot = self.policy.load();
        let start = out.len();
        if self.metrics.is_none() && self.log.is_none() {
            let record = self.decide_with(&snapshot, head, origin, framing, out, None);
            self.wiring.note(
                self.shard,
                face,
                record.decision,
                record.reason,
                framing.peer,
            );
            let summary = Summary {
                policy: &snapshot.policy,
                record,
            };
            return then(summary, out.get(start..).unwrap_or_default());
        }
        let logged = self.log.as_mut().is_some_and(ShardLog::sampled);
        let started = logged.then(Instant::now);
        self.seen.clear();
        let decided = self.decide_with(&snapshot, head, origin, framing, out, Some(logged));
        self.wiring.note(
            self.shard,
            face,
            decided.decision,
            decided.reason,
            framing.peer,
        );
        if let Some(metrics) = &self.metrics {
            // Counted per policy: a key refresh shares the policy, so the
            // shard's table carries on.
            let mut metrics = metrics.borrow_mut();
            metrics.count(
                &snapshot.policy,
                face,
                decided.place,
                decided.decision,
                decided.taken,
            );
            metrics.note_cache(self.cache_gauges());
        }
        let summary = Summary {
            policy: &snapshot.policy,
            record: decided,
        };
        if let Some(started) = started {
            self.log_line(face, summary, head, origin, started.elapsed());
        }
        then(summary, out.get(start..).unwrap_or_default())
    }

    /// Counts a gRPC call answered with error status `code` (not a decision).
    pub(crate) fn count_grpc_error(&self, code: i32) {
        if let Some(metrics) = &self.metrics {
            metrics.borrow_mut().count_grpc_error(code);
        }
    }

    /// Records how long a check took from its arrival to its answer, for a
    /// face whose connections do not time their own requests (gRPC).
    pub(crate) fn record_request(&self, latency: std::time::Duration) {
        if let Some(metrics) = &self.metrics {
            metrics.borrow_mut().record_request(latency);
        }
    }

    fn log_line(
        &mut self,
        face: Face,
        summary: Summary<'_>,
        head: &RequestHead<'_, '_>,
        origin: Origin<'_>,
        latency: std::time::Duration,
    ) {
        let Some(log) = &mut self.log else {
            return;
        };
        let (policy, decided) = (summary.policy, &summary.record);
        // Forwarded headers from a peer that is not trusted are not the request:
        // the line names what the peer itself sent.
        let believed = decided.decision != Decision::UntrustedProxy;
        let original = match origin {
            Origin::Stated { request, .. } if believed => Some(request),
            Origin::Forwarded if believed && policy.needs_original_request() => {
                OriginalRequest::from_head(head, policy.forwarded.style()).ok()
            }
            _ => None,
        };
        let (method, host, path) = match &original {
            Some(original) => (original.method, original.host, original.path),
            None => (
                head.method.as_bytes(),
                head.header_values("host").next().unwrap_or_default(),
                head.path.as_bytes(),
            ),
        };
        log.write(&Entry {
            shard: self.shard,
            face: face.name(),
            method,
            host,
            path,
            rule: summary.rule().map_or("", |rule| &rule.name),
            token_config: summary.token_config(),
            outcome: decided.decision.name(),
            action: decided.taken.name(),
            status: decided.status,
            kid: as_text(self.seen.kid.as_deref()),
            sub: as_text(self.seen.sub.as_deref()),
            latency,
            reason: decided.reason,
        });
    }

    /// Routes, verifies and answers. `observe` is `None` when nothing is
    /// recorded, else whether the request's tokens are to be noted for the log.
    fn decide_with(
        &mut self,
        snapshot: &Snapshot,
        head: &RequestHead<'_, '_>,
        origin: Origin<'_>,
        framing: Framing,
        out: &mut Vec<u8>,
        observe: Option<bool>,
    ) -> Record {
        let policy = &*snapshot.policy;
        if let Origin::Unreadable(detail) = origin {
            response::bad_request(out, detail, framing);
            return Record::blocked(Decision::BadRequest, 400).because(detail);
        }
        if self.options.danger_skip_verification {
            response::unverified(out, framing.close);
            return Record::allowed(None, Decision::Token(Outcome::Valid));
        }
        // A gRPC peer states the whole request; an HTTP peer, unless it is
        // Envoy's request-line style, states it in headers a client could
        // have written itself, which would let the client pick an excluded
        // path. Either is believed only from trusted proxies.
        let stated = match origin {
            Origin::Stated { .. } => true,
            _ => {
                policy.needs_original_request()
                    && !matches!(policy.forwarded, policy::Forwarded::RequestLine { .. })
            }
        };
        if stated && !policy.trusts(framing.peer) {
            write_simple(
                out,
                403,
                "application/json",
                b"cache-control: no-store\r\nx-jwtgate-outcome: untrusted_proxy\r\n",
                br#"{"error":"untrusted_proxy","detail":"forwarded headers are only believed from server.trusted_proxies"}"#,
                framing,
            );
            return Record::blocked(Decision::UntrustedProxy, 403).because(UNTRUSTED_PROXY);
        }
        let (original, named) = match origin {
            Origin::Stated { request, rule } => (Some(request), rule),
            _ if policy.needs_original_request() => {
                match OriginalRequest::from_head(head, policy.forwarded.style()) {
                    Ok(original) => (Some(original), None),
                    Err(error) => {
                        response::bad_request(out, error.detail(), framing);
                        return Record::blocked(Decision::BadRequest, 400).because(error.detail());
                    }
                }
            }
            _ => (None, None),
        };
        let named = match named.map(|name| policy.rule_named(name)) {
            None => None,
            Some(Some(rule)) => Some(rule),
            Some(None) => {
                response::unknown_rule(out, framing);
                return Record::blocked(Decision::NoRule, 403).because(response::UNKNOWN_RULE);
            }
        };
        let (route, query) = match original {
            Some(original) if named.is_some() || policy.needs_original_request() => {
                let preflight = is_preflight(head, original.method);
                let query = memchr::memchr(b'?', original.path)
                    .and_then(|q| original.path.get(q + 1..))
                    .unwrap_or_default();
                let paths = &mut self.paths;
                let routed = policy::method::overriding_method(original.method, head, query)
                    .and_then(|method_override| match named {
                        Some(rule) => {
                            policy.route_named(rule, &original, method_override, preflight, paths)
                        }
                        None => policy.route_target(&original, method_override, preflight, paths),
                    });
                match routed {
                    Ok(routed) => (routed, query),
                    Err(error) => {
                        response::bad_request(out, error.detail(), framing);
                        return Record::blocked(Decision::BadRequest, 400).because(error.detail());
                    }
                }
            }
            // Nothing routes on the request and no source reads its query:
            // the one rule (or the default) applies, as on the HTTP face.
            _ => {
                let route = match policy.rules.first() {
                    Some(rule) => Route::Check(rule),
                    None => Route::Default(policy.default_action),
                };
                (Routed { route, also: None }, &b""[..])
            }
        };
        // The stricter of two readings applies: a request the path as spelled
        // routes elsewhere must pass there first, and its denial is the answer.
        if let Some(also) = route.also {
            let start = out.len();
            let record = self.answer(snapshot, also, head, query, framing, out, observe);
            if record.taken == Taken::Block {
                return record;
            }
            out.truncate(start);
        }
        self.answer(snapshot, route.route, head, query, framing, out, observe)
    }

    /// Answers a request routed to `route`: checks its rule's tokens.
    #[allow(clippy::too_many_arguments)] // one call site's locals, passed on
    fn answer(
        &mut self,
        snapshot: &Snapshot,
        route: Route<'_>,
        head: &RequestHead<'_, '_>,
        query: &[u8],
        framing: Framing,
        out: &mut Vec<u8>,
        observe: Option<bool>,
    ) -> Record {
        let all_headers = &snapshot.policy.forwarded_headers;
        let rule = match route {
            Route::Check(rule) => rule,
            Route::Excluded(rule) | Route::Preflight(rule) => {
                let (reason, decision) = match route {
                    Route::Excluded(_) => ("excluded", Decision::Excluded),
                    _ => ("preflight", Decision::Preflight),
                };
                response::allowed_without_identity(out, reason, false, all_headers, framing.close);
                return Record::allowed(Some(rule.index), decision);
            }
            Route::Default(DefaultAction::Allow) => {
                response::allowed_without_identity(
                    out,
                    "no_rule",
                    false,
                    all_headers,
                    framing.close,
                );
                return Record::allowed(None, Decision::NoRule);
            }
            Route::Default(DefaultAction::Deny) => {
                response::no_matching_rule(out, framing);
                return Record::blocked(Decision::NoRule, 403)
                    .because("no rule matches the request and default_action is deny");
            }
        };
        let identity = Identity {
            forward_claims: &rule.forward_claims,
            all_headers,
            forward_payload: self.options.forward_payload,
        };
        let start = out.len();
        let timed = self.metrics.is_some().then(Instant::now);
        let decided = tokens::check_rule(
            rule,
            &snapshot.policy.configs,
            &snapshot.keys,
            &tokens::Request {
                head,
                query,
                now: self.options.clock.now(),
                revocations: &snapshot.revocations,
            },
            identity,
            framing.close,
            &mut tokens::Workspace {
                scratch: &mut self.scratch,
                cache: &mut self.cache,
                lookups: self
                    .metrics
                    .as_deref()
                    .map(|metrics| (metrics, &snapshot.policy)),
                identity_key: &mut self.identity_key,
                out,
                start,
                seen: (observe == Some(true)).then_some(&mut self.seen),
                shedding: self.shedding.as_ref(),
                revocation_scratch: &mut self.revocation_scratch,
            },
        );
        if let (Some(metrics), Some(timed)) = (&self.metrics, timed) {
            metrics.borrow_mut().record_verification(timed.elapsed());
        }
        let place = Place {
            rule: Some(rule.index),
            config: decided.config,
        };
        let (outcome, reason) = match decided.verdict {
            tokens::Verdict::Valid { claims_ok: true } => {
                return Record {
                    place,
                    ..Record::allowed(None, Decision::Token(Outcome::Valid))
                };
            }
            tokens::Verdict::Valid { claims_ok: false } => (
                Outcome::InsufficientScope,
                "the token lacks a claim value the rule requires (require_claims)",
            ),
            tokens::Verdict::Missing => (
                Outcome::Missing,
                "no source of the rule's token configurations holds a token",
            ),
            tokens::Verdict::Refused(rejection) => (rejection.outcome(), rejection.detail()),
            tokens::Verdict::Shed => {
                out.truncate(start);
                return shed(rule.action, place, all_headers, framing, out);
            }
        };
        out.truncate(start);
        let decision = Decision::Token(outcome);
        if decided.verdict == tokens::Verdict::Missing && rule.allow_missing {
            response::allowed_without_identity(
                out,
                outcome.name(),
                false,
                all_headers,
                framing.close,
            );
            Record {
                place,
                ..Record::allowed(None, decision)
            }
            .because(reason)
        } else if rule.action == Action::Log {
            response::allowed_without_identity(
                out,
                outcome.name(),
                true,
                all_headers,
                framing.close,
            );
            Record {
                place,
                decision,
                taken: Taken::Log,
                status: 200,
                reason,
            }
        } else {
            out.extend_from_slice(self.denials.response(outcome, framing));
            Record {
                place,
                ..Record::blocked(decision, response::status(outcome))
            }
            .because(reason)
        }
    }
}

const SHED: &str = "the shard was too far behind to verify a token it had not cached";
const UNTRUSTED_PROXY: &str = "forwarded headers came from a peer outside server.trusted_proxies";

/// The answer to a request shed by an overloaded shard: 429 under a `block`
/// rule (a denial every proxy passes on, never a 5xx that one failing open
/// would let through); under a `log` rule, which never blocks, the pass it
/// would have had with a failed token, marked `overloaded`.
fn shed(
    action: Action,
    place: Place,
    all_headers: &[Box<str>],
    framing: Framing,
    out: &mut Vec<u8>,
) -> Record {
    match action {
        Action::Log => {
            response::allowed_without_identity(out, "overloaded", true, all_headers, framing.close);
            Record {
                place,
                decision: Decision::Overloaded,
                taken: Taken::Log,
                status: 200,
                reason: SHED,
            }
        }
        Action::Block => {
            response::overloaded(out, framing);
            Record {
                place,
                ..Record::blocked(Decision::Overloaded, 429)
            }
            .because(SHED)
        }
    }
}

impl Service for Authorizer {
    fn body_policy(&self, _head: &RequestHead<'_, '_>) -> BodyPolicy {
        BodyPolicy::Discard {
            max: self.options.max_body,
        }
    }

    fn respond(
        &mut self,
        head: &RequestHead<'_, '_>,
        _body: &[u8],
        framing: Framing,
        out: &mut Vec<u8>,
    ) {
        self.decide(head, framing, out);
    }

    fn tick(&mut self) {
        if let Some(log) = &mut self.log {
            log.flush();
        }
    }
}
