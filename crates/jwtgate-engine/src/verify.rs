//! The engine: [`Verifier::verify`] turns one compact JWS into either typed,
//! verified claims or exactly one [`Rejection`].
//!
//! A verification moves through fixed phases, cheapest and most hostile first,
//! so garbage is refused before any expensive work and the signature is checked
//! before any claim is believed:
//!
//! 1. size limit, before anything is decoded;
//! 2. split into three segments (a JWE is named and refused);
//! 3. header: strict base64url, strict JSON, `crit`/`b64` refused, `alg` classified,
//!    `typ` checked when configured;
//! 4. algorithm allow-list, then key selection by `kid` with the key's bound
//!    algorithm confirmed (the key decides; the token may only agree);
//! 5. signature and payload decoded strictly, signature verified over the
//!    received `header.payload` bytes;
//! 6. claims: strict JSON, registered claims typed, then required claims, times
//!    (with leeway), lifetime, issuer, audience and subject.
//!
//! All decoding goes into a caller-owned [`Scratch`], so a steady stream of
//! tokens allocates nothing; time is a parameter ([`UnixTime`]), never read here.
//! Neighbours: [`crate::jose`] (formats), [`crate::keys`] (key selection),
//! [`crate::crypto`] (signatures), [`crate::outcome`] (results), [`crate::time`]
//! (the clock type).

use std::cell::Cell;
use std::time::Duration;

use crate::jose::alg::{Algorithm, AlgorithmSet};
use crate::jose::base64url;
use crate::jose::claims::{ClaimName, Claims, RegisteredClaim};
use crate::jose::header::Header;
use crate::jose::json::{JsonError, JsonStr, Tape};
use crate::jose::token::RawToken;
use crate::keys::{Key, KeySet};
use crate::outcome::{Outcome, Rejection, Stage};
use crate::time::UnixTime;

/// How `sub` must look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectMatch {
    /// `sub` equals this string.
    Exact(Box<str>),
    /// `sub` starts with this string.
    Prefix(Box<str>),
}

/// The claim and header checks of one token configuration.
///
/// Built with [`Validation::new`] from an algorithm allow-list and refined with
/// the builder methods; every default is the strict one.
#[derive(Debug, Clone)]
pub struct Validation {
    algorithms: AlgorithmSet,
    issuer: Option<Box<str>>,
    audiences: Vec<Box<str>>,
    leeway: i64,
    required: Vec<ClaimName>,
    max_lifetime: Option<i64>,
    typ: Option<Box<str>>,
    subject: Option<SubjectMatch>,
    max_token_len: usize,
    max_json_depth: usize,
}

fn whole_seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

impl Validation {
    /// Default leeway for `exp`, `nbf` and `iat`: 60 s, as Cloudflare and Envoy use.
    pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
    /// Default maximum token length: 16 KiB, checked before any decoding.
    pub const DEFAULT_MAX_TOKEN_LEN: usize = 16 * 1024;
    /// The largest token limit that can be configured: 1 MiB (no real JWT comes
    /// near; scratch buffers are sized from the limit).
    pub const MAX_TOKEN_LEN_CAP: usize = 1024 * 1024;
    /// Default JSON nesting bound for headers and claims.
    pub const DEFAULT_MAX_JSON_DEPTH: usize = 16;

    /// Strict defaults: only `algorithms`, `exp` required, 60 s leeway, no
    /// issuer/audience/subject/type constraint, tokens up to 16 KiB.
    pub fn new(algorithms: AlgorithmSet) -> Validation {
        Validation {
            algorithms,
            issuer: None,
            audiences: Vec::new(),
            leeway: whole_seconds(Validation::DEFAULT_LEEWAY),
            required: vec![ClaimName::Registered(RegisteredClaim::Exp)],
            max_lifetime: None,
            typ: None,
            subject: None,
            max_token_len: Validation::DEFAULT_MAX_TOKEN_LEN,
            max_json_depth: Validation::DEFAULT_MAX_JSON_DEPTH,
        }
    }

    /// `iss` must equal `issuer` exactly (and is then required).
    pub fn issuer(mut self, issuer: &str) -> Validation {
        self.issuer = Some(issuer.into());
        self
    }

    /// Adds an accepted audience: `aud` must contain at least one of them. With none
    /// configured, a token that carries `aud` is refused (RFC 7519 §4.1.3).
    pub fn audience(mut self, audience: &str) -> Validation {
        self.audiences.push(audience.into());
        self
    }

    /// Clock-skew allowance for `exp`, `nbf` and `iat`.
    pub fn leeway(mut self, leeway: Duration) -> Validation {
        self.leeway = whole_seconds(leeway);
        self
    }

    /// Replaces the required claims (default: `exp` alone). An empty list makes
    /// even `exp` optional, which is only sensible for tokens revoked elsewhere.
    pub fn require(mut self, claims: impl IntoIterator<Item = ClaimName>) -> Validation {
        self.required = claims.into_iter().collect();
        self
    }

    /// The longest accepted lifetime: `exp` minus `iat` (or `nbf`, or now).
    pub fn max_lifetime(mut self, lifetime: Duration) -> Validation {
        self.max_lifetime = Some(whole_seconds(lifetime));
        self
    }

    /// The header `typ` that tokens must carry, e.g. `at+jwt` (RFC 9068); compared
    /// as a media type: case-insensitively, with an optional `application/` prefix.
    pub fn typ(mut self, typ: &str) -> Validation {
        self.typ = Some(typ.into());
        self
    }

    /// How `sub` must look (and `sub` is then required).
    pub fn subject(mut self, subject: SubjectMatch) -> Validation {
        self.subject = Some(subject);
        self
    }

    /// Longest token accepted, in bytes (at most [`Validation::MAX_TOKEN_LEN_CAP`]).
    pub fn max_token_len(mut self, bytes: usize) -> Validation {
        self.max_token_len = bytes.min(Validation::MAX_TOKEN_LEN_CAP);
        self
    }

    /// Deepest JSON nesting accepted in header and claims.
    pub fn max_json_depth(mut self, depth: usize) -> Validation {
        self.max_json_depth = depth;
        self
    }

    /// The algorithm allow-list.
    pub fn algorithms(&self) -> AlgorithmSet {
        self.algorithms
    }

    /// The configured leeway in seconds.
    pub fn leeway_seconds(&self) -> i64 {
        self.leeway
    }

    /// The longest token accepted, in bytes.
    pub fn token_limit(&self) -> usize {
        self.max_token_len
    }

    /// The issuer `iss` must equal, if one is configured.
    pub fn expected_issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// The accepted audiences, in the order they were added (none: `aud` must be absent).
    pub fn expected_audiences(&self) -> impl Iterator<Item = &str> {
        self.audiences.iter().map(|audience| &**audience)
    }

    /// The claims a token must carry.
    pub fn required_claims(&self) -> &[ClaimName] {
        &self.required
    }

    /// The longest accepted lifetime in seconds, if one is configured.
    pub fn max_lifetime_seconds(&self) -> Option<i64> {
        self.max_lifetime
    }

    /// The header `typ` tokens must carry, if one is configured.
    pub fn expected_typ(&self) -> Option<&str> {
        self.typ.as_deref()
    }

    /// How `sub` must look, if that is configured.
    pub fn expected_subject(&self) -> Option<&SubjectMatch> {
        self.subject.as_ref()
    }
}

/// A verifier cannot be built from this key set and validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifierError {
    /// The allow-list is empty.
    #[error("the algorithm allow-list is empty")]
    NoAlgorithms,
    /// Symmetric keys need an HS algorithm in the allow-list, and the reverse.
    #[error("the key set holds {keys} keys but the allow-list names {algorithms}")]
    KeyTypeMismatch {
        /// "symmetric" or "public".
        keys: &'static str,
        /// The allow-list.
        algorithms: AlgorithmSet,
    },
    /// No key of the set may verify any allowed algorithm.
    #[error("no key of the set can verify any algorithm of the allow-list ({0})")]
    NoUsableKey(AlgorithmSet),
}

/// A key set and a validation, checked against each other once: the engine.
#[derive(Debug)]
pub struct Verifier {
    keys: KeySet,
    validation: Validation,
}

/// Reusable decode buffers and JSON tapes: one per thread or connection, reused
/// for every token, so that verification allocates nothing in steady state.
#[derive(Debug, Default)]
pub struct Scratch {
    pub(crate) header: Vec<u8>,
    pub(crate) payload: Vec<u8>,
    signature: Vec<u8>,
    pub(crate) header_tape: Tape,
    pub(crate) claims_tape: Tape,
}

impl Scratch {
    /// Buffers sized for tokens up to `max_token_len` bytes.
    pub fn with_token_limit(max_token_len: usize) -> Scratch {
        let decoded = base64url::decoded_len_upper_bound(max_token_len);
        Scratch {
            header: Vec::with_capacity(decoded.min(4096)),
            payload: Vec::with_capacity(decoded),
            signature: Vec::with_capacity(1024),
            header_tape: Tape::with_capacity(64),
            claims_tape: Tape::with_capacity(256),
        }
    }
}

/// A token that passed every check, borrowing the token and the scratch buffers.
#[derive(Debug, Clone, Copy)]
pub struct Verified<'a> {
    /// The typed header.
    pub header: Header<'a>,
    /// The typed claims.
    pub claims: Claims<'a>,
    /// The key that verified the signature.
    pub key: &'a Key,
    /// The payload segment as received (base64url), e.g. to forward it verbatim.
    pub payload_b64: &'a [u8],
    /// A word the caller keeps with a cached verification, 0 when it is
    /// stored and whenever its slot is reused; `None` when the verification
    /// is not in a cache. For what the caller checks after a verification
    /// and can name a version of, e.g. the deny-list version a token was
    /// last found clear in, so that an unchanged list is not searched again.
    pub memo: Option<&'a Cell<u64>>,
}

/// The `kid` a token's header claims, read without verifying anything: for
/// logs of refused tokens (an unknown `kid` above all). `None` when the header
/// is not strict base64url JSON with a string `kid`. Only the header is decoded.
pub fn claimed_kid<'s>(token: &[u8], scratch: &'s mut Scratch) -> Option<JsonStr<'s>> {
    const DEPTH: usize = 16;
    let raw = RawToken::split(token).ok()?;
    base64url::decode_into(raw.header, &mut scratch.header).ok()?;
    let header = scratch.header_tape.parse(&scratch.header, DEPTH).ok()?;
    header.as_object()?.get("kid")?.as_str()
}

impl Verified<'_> {
    /// The verified algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.header.algorithm
    }
}

const fn malformed(detail: &'static str) -> Rejection {
    Rejection::new(Outcome::Malformed, detail)
}

#[derive(Clone, Copy)]
enum Part {
    Header,
    Payload,
}

/// One static explanation per (part, JSON error), so rejections never allocate.
fn json_rejection(part: Part, error: JsonError) -> Rejection {
    let detail = match (part, error) {
        (Part::Header, JsonError::InvalidUtf8) => "header is not UTF-8",
        (Part::Header, JsonError::ByteOrderMark) => "header starts with a byte-order mark",
        (Part::Header, JsonError::Syntax) => "header is not valid JSON",
        (Part::Header, JsonError::InvalidEscape) => "header has an invalid JSON escape",
        (Part::Header, JsonError::LoneSurrogate) => "header has a lone surrogate escape",
        (Part::Header, JsonError::ControlCharacter) => "header has a control character in a string",
        (Part::Header, JsonError::TooDeep) => "header JSON is nested too deep",
        (Part::Header, JsonError::NumberOutOfRange) => {
            "header has a number beyond the range of a double"
        }
        (Part::Header, JsonError::DuplicateMember) => "header repeats a member name",
        (Part::Header, JsonError::TrailingCharacters) => "header has data after the JSON object",
        (Part::Header, JsonError::TooLarge) => "header is too large",
        (Part::Payload, JsonError::InvalidUtf8) => "payload is not UTF-8",
        (Part::Payload, JsonError::ByteOrderMark) => "payload starts with a byte-order mark",
        (Part::Payload, JsonError::Syntax) => "payload is not JSON, so the token is not a JWT",
        (Part::Payload, JsonError::InvalidEscape) => "claims have an invalid JSON escape",
        (Part::Payload, JsonError::LoneSurrogate) => "claims have a lone surrogate escape",
        (Part::Payload, JsonError::ControlCharacter) => {
            "claims have a control character in a string"
        }
        (Part::Payload, JsonError::TooDeep) => "claims JSON is nested too deep",
        (Part::Payload, JsonError::NumberOutOfRange) => {
            "claims have a number beyond the range of a double"
        }
        (Part::Payload, JsonError::DuplicateMember) => "claims repeat a member name",
        (Part::Payload, JsonError::TrailingCharacters) => "payload has data after the JSON object",
        (Part::Payload, JsonError::TooLarge) => "payload is too large",
    };
    malformed(detail)
}

const fn missing(claim: RegisteredClaim) -> Rejection {
    Rejection::new(
        Outcome::MissingClaim,
        match claim {
            RegisteredClaim::Iss => "iss is required",
            RegisteredClaim::Sub => "sub is required",
            RegisteredClaim::Aud => "aud is required",
            RegisteredClaim::Exp => "exp is required",
            RegisteredClaim::Nbf => "nbf is required",
            RegisteredClaim::Iat => "iat is required",
            RegisteredClaim::Jti => "jti is required",
        },
    )
}

/// Compares a `typ` as a media type (RFC 7515 §4.1.9): case-insensitive, and
/// `application/` may be left out on either side.
fn media_type_matches(typ: JsonStr<'_>, wanted: &str) -> bool {
    const PREFIX: &str = "application/";
    let wanted = match wanted.get(..PREFIX.len()) {
        Some(head) if head.eq_ignore_ascii_case(PREFIX) => wanted.get(PREFIX.len()..).unwrap_or(""),
        _ => wanted,
    };
    let mut chars = typ.chars().peekable();
    let has_prefix = {
        let mut probe = chars.clone();
        PREFIX
            .chars()
            .all(|p| probe.next().is_some_and(|c| c.eq_ignore_ascii_case(&p)))
    };
    if has_prefix {
        chars.nth(PREFIX.len() - 1);
    }
    let mut wanted_chars = wanted.chars();
    loop {
        match (chars.next(), wanted_chars.next()) {
            (None, None) => return true,
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(&b) => {}
            _ => return false,
        }
    }
}

impl Verifier {
    /// Checks `keys` against `validation` and builds the engine.
    ///
    /// Refused: an empty allow-list; HMAC algorithms with public keys or public-key
    /// algorithms with HMAC secrets (a key's type always decides, so such an
    /// allow-list could never be what was meant); and a set where no key can verify
    /// any allowed algorithm.
    pub fn new(keys: KeySet, validation: Validation) -> Result<Verifier, VerifierError> {
        let algorithms = validation.algorithms;
        if algorithms.is_empty() {
            return Err(VerifierError::NoAlgorithms);
        }
        if keys.is_symmetric() && algorithms.has_asymmetric() {
            return Err(VerifierError::KeyTypeMismatch {
                keys: "symmetric",
                algorithms,
            });
        }
        if !keys.is_symmetric() && algorithms.has_symmetric() {
            return Err(VerifierError::KeyTypeMismatch {
                keys: "public",
                algorithms,
            });
        }
        if keys.algorithms().intersection(algorithms).is_empty() {
            return Err(VerifierError::NoUsableKey(algorithms));
        }
        Ok(Verifier { keys, validation })
    }

    /// The key set.
    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    /// The validation settings.
    pub fn validation(&self) -> &Validation {
        &self.validation
    }

    /// A verifier without keys, for a remote key set not fetched yet: every
    /// token would be `unknown_kid`; the configuration is marked unavailable
    /// meanwhile, so tokens get `keys_unavailable` instead.
    ///
    /// Not a stable API: for jwtgate's service crate, whose key manager swaps
    /// in the fetched keys.
    #[doc(hidden)]
    pub fn without_keys(validation: Validation) -> Verifier {
        Verifier {
            keys: KeySet::empty(),
            validation,
        }
    }

    /// Scratch buffers sized for this verifier's token limit.
    pub fn scratch(&self) -> Scratch {
        Scratch::with_token_limit(self.validation.max_token_len)
    }

    /// Verifies one compact JWS at time `now`.
    pub fn verify<'a>(
        &'a self,
        token: &'a [u8],
        now: UnixTime,
        scratch: &'a mut Scratch,
    ) -> Result<Verified<'a>, Rejection> {
        let Scratch {
            header: header_bytes,
            payload: payload_bytes,
            signature: signature_bytes,
            header_tape,
            claims_tape,
        } = scratch;
        let (raw, header) = self.read_header(token, header_bytes, header_tape)?;
        let key = self.keys.select(header.kid, header.algorithm)?;

        let at_signature = |rejection: Rejection| rejection.at(Stage::Signature);
        base64url::decode_into(raw.signature, signature_bytes)
            .map_err(|_| at_signature(malformed("signature is not strict base64url")))?;
        base64url::decode_into(raw.payload, payload_bytes)
            .map_err(|_| at_signature(malformed("payload is not strict base64url")))?;
        key.verifying_key()
            .verify(header.algorithm, raw.signing_input, signature_bytes)
            .map_err(|_| {
                Rejection::new(
                    Outcome::BadSignature,
                    "signature does not verify with the selected key",
                )
            })?;

        // From here on the token is this configuration's own, whatever fails.
        let at_claims = |rejection: Rejection| rejection.at(Stage::Claims);
        let claims = claims_tape
            .parse(payload_bytes, self.validation.max_json_depth)
            .map_err(|error| at_claims(json_rejection(Part::Payload, error)))?;
        let claims = Claims::parse(claims).map_err(at_claims)?;
        self.check_claims(&claims, now)?;
        Ok(Verified {
            header,
            claims,
            key,
            payload_b64: raw.payload,
            memo: None,
        })
    }

    /// The checks of [`Verifier::verify`] that need no key: the token's
    /// size and encoding, its header, this configuration's algorithm
    /// allow-list and `typ`. A configuration whose key set is unusable
    /// still tells with them whether a token could be its own.
    pub fn screen(&self, token: &[u8], scratch: &mut Scratch) -> Result<(), Rejection> {
        let Scratch {
            header,
            header_tape,
            ..
        } = scratch;
        self.read_header(token, header, header_tape).map(|_| ())
    }

    /// Splits `token` and reads its header, checking it against this
    /// configuration: algorithm first (the stronger sign that a token is
    /// meant for another configuration), then `typ`.
    fn read_header<'a>(
        &self,
        token: &'a [u8],
        header_bytes: &'a mut Vec<u8>,
        header_tape: &'a mut Tape,
    ) -> Result<(RawToken<'a>, Header<'a>), Rejection> {
        let validation = &self.validation;
        if token.len() > validation.max_token_len {
            return Err(Rejection::new(
                Outcome::TokenTooLarge,
                "token is longer than the configured limit",
            ));
        }
        if token.is_empty() {
            return Err(malformed("empty token"));
        }
        let raw = RawToken::split(token)?;
        base64url::decode_into(raw.header, header_bytes)
            .map_err(|_| malformed("header is not strict base64url"))?;
        let header = header_tape
            .parse(header_bytes, validation.max_json_depth)
            .map_err(|error| json_rejection(Part::Header, error))?;
        let header = Header::parse(header)?;
        if !validation.algorithms.contains(header.algorithm) {
            return Err(Rejection::new(
                Outcome::AlgNotAllowed,
                "alg is not in this configuration's allow-list",
            ));
        }
        if let Some(wanted) = &validation.typ {
            let typ = header.typ.ok_or(Rejection::new(
                Outcome::WrongType,
                "token has no typ but the configuration requires one",
            ))?;
            if !media_type_matches(typ, wanted) {
                return Err(Rejection::new(
                    Outcome::WrongType,
                    "typ differs from the configured type",
                ));
            }
        }
        Ok((raw, header))
    }

    /// The claim checks of [`Verifier::verify`], time included: also what
    /// every cache hit runs.
    pub(crate) fn check_claims(
        &self,
        claims: &Claims<'_>,
        UnixTime(now): UnixTime,
    ) -> Result<(), Rejection> {
        let validation = &self.validation;
        for required in &validation.required {
            if !claims.contains(required) {
                return Err(match required {
                    ClaimName::Registered(claim) => missing(*claim),
                    ClaimName::Other(_) => {
                        Rejection::new(Outcome::MissingClaim, "a required claim is absent")
                    }
                });
            }
        }
        let leeway = validation.leeway;
        // Compared in f64: every NumericDate (0 to year 9999) and every clock
        // reading of this era is exact there, and fractions keep their meaning.
        let now_f = now as f64;
        let leeway_f = leeway as f64;
        if let Some(exp) = claims.exp
            && now_f >= exp.as_f64() + leeway_f
        {
            return Err(Rejection::new(Outcome::Expired, "exp has passed"));
        }
        if let Some(nbf) = claims.nbf
            && now_f + leeway_f < nbf.as_f64()
        {
            return Err(Rejection::new(
                Outcome::NotYetValid,
                "nbf has not been reached",
            ));
        }
        if let Some(iat) = claims.iat
            && iat.as_f64() > now_f + leeway_f
        {
            return Err(Rejection::new(
                Outcome::IssuedInFuture,
                "iat is in the future",
            ));
        }
        if let Some(max_lifetime) = validation.max_lifetime {
            let exp = claims.exp.ok_or(missing(RegisteredClaim::Exp))?;
            let start = claims
                .iat
                .or(claims.nbf)
                .map_or(now_f, |date| date.as_f64());
            if exp.as_f64() - start > max_lifetime as f64 {
                return Err(Rejection::new(
                    Outcome::LifetimeTooLong,
                    "token lives longer than the configured maximum",
                ));
            }
        }
        if let Some(issuer) = &validation.issuer {
            let iss = claims.iss.ok_or(missing(RegisteredClaim::Iss))?;
            if iss != **issuer {
                return Err(Rejection::new(
                    Outcome::WrongIssuer,
                    "iss differs from the configured issuer",
                ));
            }
        }
        match (&claims.aud, validation.audiences.is_empty()) {
            (None, true) => {}
            (None, false) => return Err(missing(RegisteredClaim::Aud)),
            (Some(_), true) => {
                return Err(Rejection::new(
                    Outcome::WrongAudience,
                    "token has aud but no audience is configured",
                ));
            }
            (Some(aud), false) => {
                let accepted = aud
                    .iter()
                    .any(|value| validation.audiences.iter().any(|wanted| value == **wanted));
                if !accepted {
                    return Err(Rejection::new(
                        Outcome::WrongAudience,
                        "no aud value is a configured audience",
                    ));
                }
            }
        }
        if let Some(subject) = &validation.subject {
            let sub = claims.sub.ok_or(missing(RegisteredClaim::Sub))?;
            let matches = match subject {
                SubjectMatch::Exact(wanted) => sub == **wanted,
                SubjectMatch::Prefix(prefix) => sub.starts_with(prefix),
            };
            if !matches {
                return Err(Rejection::new(
                    Outcome::WrongSubject,
                    "sub does not match the configured subject",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use ring::hmac;

    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: UnixTime = UnixTime(1_700_000_000);

    fn token(header: &str, claims: &str) -> String {
        let mut token = base64url::encode(header.as_bytes());
        token.push('.');
        base64url::encode_into(claims.as_bytes(), &mut token);
        let signature = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, SECRET), token.as_bytes());
        token.push('.');
        base64url::encode_into(signature.as_ref(), &mut token);
        token
    }

    fn verifier(validation: impl FnOnce(Validation) -> Validation) -> Verifier {
        let keys = KeySet::from_hmac_secret(SECRET, Some("k"));
        let validation = validation(Validation::new(AlgorithmSet::only(Algorithm::Hs256)));
        match keys.map(|keys| Verifier::new(keys, validation)) {
            Ok(Ok(verifier)) => verifier,
            other => unreachable!("test verifier: {other:?}"),
        }
    }

    fn outcome(verifier: &Verifier, claims: &str) -> Outcome {
        let token = token(r#"{"alg":"HS256","kid":"k"}"#, claims);
        let mut scratch = verifier.scratch();
        match verifier.verify(token.as_bytes(), NOW, &mut scratch) {
            Ok(_) => Outcome::Valid,
            Err(rejection) => rejection.outcome(),
        }
    }

    fn refusal(verifier: &Verifier, token: &str) -> Option<(Outcome, Stage)> {
        let mut scratch = verifier.scratch();
        let refused = verifier.verify(token.as_bytes(), NOW, &mut scratch).err();
        refused.map(|rejection| (rejection.outcome(), rejection.stage()))
    }

    /// Each refusal says how far the verification got, in the order the
    /// checks run; `screen` runs the checks that need no key.
    #[test]
    fn a_refusal_says_how_far_the_verification_got() {
        let v = verifier(|v| v.typ("at+jwt").audience("api"));
        let fresh = format!(r#"{{"aud":"api","exp":{}}}"#, NOW.0 + 60);
        let signed = |header: &str, claims: &str| token(header, claims);
        let mut forged = signed(r#"{"alg":"HS256","kid":"k","typ":"at+jwt"}"#, &fresh);
        forged.push('!');
        let cases = [
            ("x.y".to_owned(), Some((Outcome::Malformed, Stage::Read))),
            (
                signed(r#"{"alg":"HS256","crit":["b64"],"typ":"at+jwt"}"#, &fresh),
                Some((Outcome::UnsupportedCrit, Stage::Read)),
            ),
            (
                signed(r#"{"alg":"HS384","kid":"k","typ":"JWT"}"#, &fresh),
                Some((Outcome::AlgNotAllowed, Stage::Algorithm)),
            ),
            (
                signed(r#"{"alg":"HS256","kid":"k","typ":"JWT"}"#, &fresh),
                Some((Outcome::WrongType, Stage::Type)),
            ),
            (
                signed(r#"{"alg":"HS256","kid":"x","typ":"at+jwt"}"#, &fresh),
                Some((Outcome::UnknownKid, Stage::KeyLookup)),
            ),
            (forged, Some((Outcome::Malformed, Stage::Signature))),
            (
                signed(r#"{"alg":"HS256","kid":"k","typ":"at+jwt"}"#, "[1]"),
                Some((Outcome::Malformed, Stage::Claims)),
            ),
            (
                signed(
                    r#"{"alg":"HS256","kid":"k","typ":"at+jwt"}"#,
                    &format!(r#"{{"aud":"web","exp":{}}}"#, NOW.0 + 60),
                ),
                Some((Outcome::WrongAudience, Stage::Claims)),
            ),
            (
                signed(r#"{"alg":"HS256","kid":"k","typ":"at+jwt"}"#, &fresh),
                None,
            ),
        ];
        let mut scratch = v.scratch();
        for (token, want) in cases {
            assert_eq!(refusal(&v, &token), want, "{token}");
            let screened = v.screen(token.as_bytes(), &mut scratch).err();
            let screened = screened.map(|rejection| (rejection.outcome(), rejection.stage()));
            let keyless = want.filter(|(_, stage)| *stage < Stage::KeyLookup);
            assert_eq!(screened, keyless, "{token}");
        }
        let mut bad = token(r#"{"alg":"HS256","kid":"k","typ":"at+jwt"}"#, &fresh);
        let last = bad.pop().map_or('A', |c| if c == 'A' { 'B' } else { 'A' });
        bad.push(last);
        assert_eq!(
            refusal(&v, &bad).map(|(outcome, _)| outcome),
            Some(Outcome::BadSignature)
        );
        assert!(Stage::KeySet > Stage::KeyLookup && Stage::KeySet < Stage::Signature);
    }

    #[test]
    fn time_edges_follow_the_leeway() {
        let v = verifier(|v| v);
        let now = NOW.0;
        assert_eq!(
            outcome(&v, &format!(r#"{{"exp":{}}}"#, now - 59)),
            Outcome::Valid
        );
        assert_eq!(
            outcome(&v, &format!(r#"{{"exp":{}}}"#, now - 60)),
            Outcome::Expired
        );
        assert_eq!(
            outcome(&v, &format!(r#"{{"exp":{}.5}}"#, now - 60)),
            Outcome::Valid
        );
        let strict = verifier(|v| v.leeway(Duration::ZERO));
        assert_eq!(
            outcome(&strict, &format!(r#"{{"exp":{now}}}"#)),
            Outcome::Expired
        );
        assert_eq!(
            outcome(&strict, &format!(r#"{{"exp":{}}}"#, now + 1)),
            Outcome::Valid
        );
        assert_eq!(
            outcome(&strict, &format!(r#"{{"exp":{},"nbf":{now}}}"#, now + 9)),
            Outcome::Valid
        );
        assert_eq!(
            outcome(
                &strict,
                &format!(r#"{{"exp":{},"nbf":{}}}"#, now + 9, now + 1)
            ),
            Outcome::NotYetValid
        );
        assert_eq!(
            outcome(&v, &format!(r#"{{"exp":{},"nbf":{}}}"#, now + 99, now + 60)),
            Outcome::Valid
        );
        assert_eq!(
            outcome(&v, &format!(r#"{{"exp":{},"iat":{}}}"#, now + 99, now + 60)),
            Outcome::Valid
        );
        assert_eq!(
            outcome(&v, &format!(r#"{{"exp":{},"iat":{}}}"#, now + 99, now + 61)),
            Outcome::IssuedInFuture
        );
    }

    #[test]
    fn identity_checks() {
        let exp = NOW.0 + 100;
        let v = verifier(|v| {
            v.issuer("https://idp/")
                .audience("api")
                .audience("web")
                .subject(SubjectMatch::Prefix("user:".into()))
        });
        let good =
            format!(r#"{{"exp":{exp},"iss":"https://idp/","aud":["x","web"],"sub":"user:1"}}"#);
        assert_eq!(outcome(&v, &good), Outcome::Valid);
        assert_eq!(
            outcome(&v, &good.replace("https://idp/", "https://evil/")),
            Outcome::WrongIssuer
        );
        assert_eq!(
            outcome(&v, &good.replace("\"web\"", "\"mail\"")),
            Outcome::WrongAudience
        );
        assert_eq!(
            outcome(&v, &good.replace("user:1", "svc:1")),
            Outcome::WrongSubject
        );
        assert_eq!(
            outcome(
                &v,
                &format!(r#"{{"exp":{exp},"aud":"api","sub":"user:1"}}"#)
            ),
            Outcome::MissingClaim
        );
        let no_audience = verifier(|v| v);
        assert_eq!(
            outcome(&no_audience, &format!(r#"{{"exp":{exp},"aud":"api"}}"#)),
            Outcome::WrongAudience
        );
        assert_eq!(
            outcome(&no_audience, r#"{"sub":"x"}"#),
            Outcome::MissingClaim
        );
        let optional = verifier(|v| v.require([]));
        assert_eq!(outcome(&optional, r#"{"sub":"x"}"#), Outcome::Valid);
        let custom =
            verifier(|v| v.require(["scope".parse().unwrap_or(ClaimName::Other("scope".into()))]));
        assert_eq!(outcome(&custom, r#"{"scope":"read"}"#), Outcome::Valid);
        assert_eq!(outcome(&custom, r#"{"scp":"read"}"#), Outcome::MissingClaim);
    }

    #[test]
    fn lifetime_is_measured_from_iat_then_nbf_then_now() {
        let v = verifier(|v| v.max_lifetime(Duration::from_secs(3600)));
        let now = NOW.0;
        assert_eq!(
            outcome(&v, &format!(r#"{{"exp":{},"iat":{now}}}"#, now + 3600)),
            Outcome::Valid
        );
        assert_eq!(
            outcome(&v, &format!(r#"{{"exp":{},"iat":{now}}}"#, now + 3601)),
            Outcome::LifetimeTooLong
        );
        assert_eq!(
            outcome(
                &v,
                &format!(r#"{{"exp":{},"nbf":{}}}"#, now + 4000, now - 10)
            ),
            Outcome::LifetimeTooLong
        );
        assert_eq!(
            outcome(&v, &format!(r#"{{"exp":{}}}"#, now + 3601)),
            Outcome::LifetimeTooLong
        );
    }

    #[test]
    fn typ_is_compared_as_a_media_type() {
        let v = verifier(|v| v.typ("at+jwt"));
        let exp = NOW.0 + 10;
        let mut scratch = v.scratch();
        for (header, expected) in [
            (r#"{"alg":"HS256","typ":"at+jwt"}"#, Outcome::Valid),
            (
                r#"{"alg":"HS256","typ":"application/AT+JWT"}"#,
                Outcome::Valid,
            ),
            (r#"{"alg":"HS256","typ":"JWT"}"#, Outcome::WrongType),
            (r#"{"alg":"HS256","typ":"at+jwtx"}"#, Outcome::WrongType),
            (r#"{"alg":"HS256"}"#, Outcome::WrongType),
        ] {
            let token = token(header, &format!(r#"{{"exp":{exp}}}"#));
            let got = v
                .verify(token.as_bytes(), NOW, &mut scratch)
                .map(|_| Outcome::Valid);
            assert_eq!(got.unwrap_or_else(Rejection::outcome), expected, "{header}");
        }
    }

    #[test]
    fn verifier_refuses_allow_lists_that_cannot_fit_the_keys() {
        let keys = || KeySet::from_hmac_secret(SECRET, None).map_err(|e| e.to_string());
        let build = |algorithms: &str| {
            let algorithms = AlgorithmSet::parse_list(algorithms).unwrap_or_default();
            keys().map(|k| Verifier::new(k, Validation::new(algorithms)).map(|_| ()))
        };
        assert_eq!(build(""), Ok(Err(VerifierError::NoAlgorithms)));
        assert!(matches!(
            build("HS256,RS256"),
            Ok(Err(VerifierError::KeyTypeMismatch { .. }))
        ));
        assert!(matches!(
            build("HS512"),
            Ok(Err(VerifierError::NoUsableKey(_)))
        ));
        assert_eq!(build("HS256"), Ok(Ok(())));
    }

    #[test]
    fn size_limit_is_checked_before_decoding() {
        let v = verifier(|v| v.max_token_len(10));
        let mut scratch = v.scratch();
        let result = v.verify(b"not even a token, but long", NOW, &mut scratch);
        assert_eq!(
            result.err().map(Rejection::outcome),
            Some(Outcome::TokenTooLarge)
        );
    }
}
