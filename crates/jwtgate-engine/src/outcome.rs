//! The result vocabulary of every verification: one [`Outcome`] per token.
//!
//! Every face of jwtgate (the batch verifier's JSON lines, HTTP status and
//! `WWW-Authenticate`, metrics labels) derives what it says from an `Outcome`,
//! each in exactly one exhaustive `match`. The snake_case names returned by
//! [`Outcome::name`] are a public contract: scripts and dashboards depend on them.
//!
//! A [`Rejection`] pairs an outcome with a static human explanation. Both are
//! `Copy` and never allocate, because under a token-spraying attack rejections
//! are the hot path.

use std::fmt;

/// How the verification of one token ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Outcome {
    /// Signature, header and every configured claim check passed.
    Valid,
    /// No token was presented.
    Missing,
    /// The token is not a well-formed compact JWS carrying a JSON claims set.
    Malformed,
    /// The token is longer than the configured limit; nothing was decoded.
    TokenTooLarge,
    /// The header asks for an extension (`crit`, `b64`) that jwtgate does not implement.
    UnsupportedCrit,
    /// The header's `alg` is not in the allow-list or not the algorithm bound to the key.
    AlgNotAllowed,
    /// No key of the key set matches the token's `kid` (or, without `kid`, none or several fit).
    UnknownKid,
    /// The signature does not verify with the selected key.
    BadSignature,
    /// `now >= exp + leeway`.
    Expired,
    /// `now < nbf - leeway`.
    NotYetValid,
    /// `iat > now + leeway`.
    IssuedInFuture,
    /// The token lives longer than the configured maximum lifetime.
    LifetimeTooLong,
    /// A claim the configuration requires is absent.
    MissingClaim,
    /// `iss` differs from the configured issuer.
    WrongIssuer,
    /// No `aud` value is among the configured audiences.
    WrongAudience,
    /// `sub` does not match the configured subject.
    WrongSubject,
    /// The header's `typ` differs from the configured one.
    WrongType,
    /// The request carries several tokens (say a header and a cookie) and
    /// not all of them are valid: jwtgate never picks the one that passes.
    AmbiguousToken,
    /// The token is valid but lacks a claim the rule requires (HTTP 403).
    InsufficientScope,
    /// The token configuration's keys are fetched and none are usable: not
    /// fetched yet, or the last good set is older than `max_stale`. Nothing
    /// was verified.
    KeysUnavailable,
    /// The token verified, but a revocation in force covers it: its
    /// `(iss, jti)`, its subject's tokens issued before a cut-off, or its key.
    Revoked,
    /// The token verified, but the revocation store has been unreadable for
    /// longer than its `max_stale` and the configuration refuses tokens then.
    RevocationsUnavailable,
}

impl Outcome {
    /// Every outcome, in declaration order (for metrics tables and summaries).
    ///
    /// A slice rather than an array, so that adding an outcome (the enum is
    /// `#[non_exhaustive]`) changes no type; [`Outcome::COUNT`] sizes arrays.
    pub const ALL: &'static [Outcome] = &[
        Outcome::Valid,
        Outcome::Missing,
        Outcome::Malformed,
        Outcome::TokenTooLarge,
        Outcome::UnsupportedCrit,
        Outcome::AlgNotAllowed,
        Outcome::UnknownKid,
        Outcome::BadSignature,
        Outcome::Expired,
        Outcome::NotYetValid,
        Outcome::IssuedInFuture,
        Outcome::LifetimeTooLong,
        Outcome::MissingClaim,
        Outcome::WrongIssuer,
        Outcome::WrongAudience,
        Outcome::WrongSubject,
        Outcome::WrongType,
        Outcome::AmbiguousToken,
        Outcome::InsufficientScope,
        Outcome::KeysUnavailable,
        Outcome::Revoked,
        Outcome::RevocationsUnavailable,
    ];

    /// How many outcomes there are: the length of [`Outcome::ALL`], for
    /// per-outcome counter arrays.
    pub const COUNT: usize = Outcome::ALL.len();

    /// The stable snake_case name used in batch output, HTTP headers and metrics.
    pub const fn name(self) -> &'static str {
        match self {
            Outcome::Valid => "valid",
            Outcome::Missing => "missing",
            Outcome::Malformed => "malformed",
            Outcome::TokenTooLarge => "token_too_large",
            Outcome::UnsupportedCrit => "unsupported_crit",
            Outcome::AlgNotAllowed => "alg_not_allowed",
            Outcome::UnknownKid => "unknown_kid",
            Outcome::BadSignature => "bad_signature",
            Outcome::Expired => "expired",
            Outcome::NotYetValid => "not_yet_valid",
            Outcome::IssuedInFuture => "issued_in_future",
            Outcome::LifetimeTooLong => "lifetime_too_long",
            Outcome::MissingClaim => "missing_claim",
            Outcome::WrongIssuer => "wrong_issuer",
            Outcome::WrongAudience => "wrong_audience",
            Outcome::WrongSubject => "wrong_subject",
            Outcome::WrongType => "wrong_type",
            Outcome::AmbiguousToken => "ambiguous_token",
            Outcome::InsufficientScope => "insufficient_scope",
            Outcome::KeysUnavailable => "keys_unavailable",
            Outcome::Revoked => "revoked",
            Outcome::RevocationsUnavailable => "revocations_unavailable",
        }
    }

    /// The outcome with this stable name, if any.
    pub fn from_name(name: &str) -> Option<Outcome> {
        Outcome::ALL
            .iter()
            .copied()
            .find(|outcome| outcome.name() == name)
    }

    /// Position in [`Outcome::ALL`], for dense per-outcome counters.
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How far a verification got before it was refused, in the order a
/// verification runs. The further a configuration got with a token, the more
/// the token is that configuration's own: one that accepts its algorithm,
/// knows its `kid`, or verified its signature. When several configurations
/// refuse one token, the refusal reported is the one that got furthest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Stage {
    /// Reading the token (its size, encoding, JSON, `crit`): every
    /// configuration refuses such a token alike.
    Read,
    /// The configuration's algorithm allow-list (`none` and algorithms
    /// jwtgate does not know are refused here too, by every configuration).
    Algorithm,
    /// The configuration's `typ`, once the algorithm is accepted.
    Type,
    /// Looking up a key for the token's `kid` (or its `alg`, without one).
    KeyLookup,
    /// The configuration had no usable key set to look in: the token may be
    /// its own, but nothing tells.
    KeySet,
    /// A key was found: its binding to the algorithm, and the signature.
    Signature,
    /// The signature verified: the claims.
    Claims,
    /// Every check passed: the revocations in force (jwtgate's service, not
    /// the engine, refuses at this stage).
    Revocation,
}

impl Stage {
    /// Where a refusal with `outcome` happens, unless said otherwise.
    const fn of(outcome: Outcome) -> Stage {
        match outcome {
            Outcome::Missing
            | Outcome::Malformed
            | Outcome::TokenTooLarge
            | Outcome::UnsupportedCrit
            | Outcome::AmbiguousToken => Stage::Read,
            Outcome::AlgNotAllowed => Stage::Algorithm,
            Outcome::WrongType => Stage::Type,
            Outcome::UnknownKid => Stage::KeyLookup,
            Outcome::KeysUnavailable => Stage::KeySet,
            Outcome::BadSignature => Stage::Signature,
            Outcome::Valid
            | Outcome::Expired
            | Outcome::NotYetValid
            | Outcome::IssuedInFuture
            | Outcome::LifetimeTooLong
            | Outcome::MissingClaim
            | Outcome::WrongIssuer
            | Outcome::WrongAudience
            | Outcome::WrongSubject
            | Outcome::InsufficientScope => Stage::Claims,
            Outcome::Revoked | Outcome::RevocationsUnavailable => Stage::Revocation,
        }
    }
}

/// A denied token: the outcome and a static, human explanation of the exact check
/// that failed. The explanation never contains token bytes, so it is safe to log.
///
/// Two rejections are equal when they say the same thing (outcome and
/// explanation); the [`Stage`] only ranks them against each other.
#[derive(Debug, Clone, Copy)]
pub struct Rejection {
    outcome: Outcome,
    stage: Stage,
    detail: &'static str,
}

impl Rejection {
    /// A rejection with `outcome`, explained by `detail`, at the stage where
    /// a verification meets that outcome (see [`Rejection::at`]).
    pub const fn new(outcome: Outcome, detail: &'static str) -> Rejection {
        Rejection {
            outcome,
            stage: Stage::of(outcome),
            detail,
        }
    }

    /// The same refusal met at `stage`: a payload that is not JSON once its
    /// signature verified is malformed, but the token is the configuration's own.
    pub const fn at(self, stage: Stage) -> Rejection {
        Rejection { stage, ..self }
    }

    /// The outcome (never [`Outcome::Valid`] for rejections built by the engine).
    pub const fn outcome(self) -> Outcome {
        self.outcome
    }

    /// How far the verification got before this refusal.
    pub const fn stage(self) -> Stage {
        self.stage
    }

    /// Which check failed, in words.
    pub const fn detail(self) -> &'static str {
        self.detail
    }
}

impl PartialEq for Rejection {
    fn eq(&self, other: &Rejection) -> bool {
        self.outcome == other.outcome && self.detail == other.detail
    }
}

impl Eq for Rejection {}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.outcome.name(), self.detail)
    }
}

impl std::error::Error for Rejection {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_snake_case_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for (position, &outcome) in Outcome::ALL.iter().enumerate() {
            let name = outcome.name();
            assert!(seen.insert(name), "duplicate name {name}");
            assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
            assert_eq!(Outcome::from_name(name), Some(outcome));
            assert_eq!(outcome.index(), position);
        }
        assert_eq!(Outcome::from_name("Valid"), None);
    }

    #[test]
    fn rejection_displays_outcome_and_detail() {
        let rejection = Rejection::new(Outcome::Expired, "exp is in the past");
        assert_eq!(rejection.to_string(), "expired: exp is in the past");
        assert_eq!(rejection.outcome(), Outcome::Expired);
    }
}
