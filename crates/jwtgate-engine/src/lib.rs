//! # jwtgate-engine
//!
//! The JWT verification engine of jwtgate, for embedding in your own server:
//! it takes a compact JWS, a key set and a claims policy, and returns either the
//! verified claims or one precise [`Outcome`]. It is strict where JWT libraries
//! are lenient (strict base64url, duplicate JSON members refused, the key decides
//! the algorithm, `none` and unknown `crit` never accepted) and it allocates
//! nothing per token in steady state.
//!
//! ```
//! use jwtgate_engine::{AlgorithmSet, KeySet, UnixTime, Validation, Verifier};
//!
//! // RFC 7515 Appendix A.1: an HS256 token and its key.
//! let jwks = br#"{"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}"#;
//! let token = b"eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
//!
//! let keys = KeySet::parse(jwks)?;
//! let validation = Validation::new(AlgorithmSet::parse_list("HS256")?).issuer("joe");
//! let verifier = Verifier::new(keys, validation)?;
//! let mut scratch = verifier.scratch(); // reuse it for every token
//!
//! let verified = verifier.verify(token, UnixTime(1_300_819_000), &mut scratch)?;
//! assert_eq!(verified.claims.iss.map(|iss| iss.to_string()).as_deref(), Some("joe"));
//! assert_eq!(verified.claims.lookup("http://example.com/is_root").and_then(|v| v.as_bool()), Some(true));
//!
//! // One hour later the same token is refused, with a precise outcome.
//! let rejection = verifier.verify(token, UnixTime(1_300_822_980), &mut scratch).unwrap_err();
//! assert_eq!(rejection.outcome().name(), "expired");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## How it is used
//!
//! Build a [`KeySet`] (JWKS, JWK or PEM, parsed and judged once) and a
//! [`Validation`] (the allow-list and claim checks), check them against each
//! other into a [`Verifier`], and keep it for as long as the keys are current.
//! Give each thread or connection a [`Scratch`], and call
//! [`Verifier::verify`] with the clock reading ([`UnixTime`]) you chose: the
//! engine never reads the clock or does I/O. A [`Verified`] token borrows the
//! token and the scratch; its claims are zero-copy [`json`] views. A refused
//! token is a [`Rejection`]: an [`Outcome`] with a stable snake_case name, and
//! a static explanation that is safe to log.
//!
//! ## Layout
//!
//! | module | job |
//! |---|---|
//! | `outcome.rs` | the [`Outcome`] vocabulary and [`Rejection`] (outcome + static reason) |
//! | `time.rs` | [`UnixTime`], the clock reading a verification is judged at |
//! | `jose/` | base64url, strict JSON tape, compact split, header, claims, algorithms, JWK |
//! | `keys/` | [`KeySet`]: JWKS/JWK/PEM parsed once into handles, `kid` index, key rules (ROCA, small-order points, weak secrets) |
//! | `crypto.rs` | the only module that imports a crypto library (aws-lc-rs, ring): verifying keys |
//! | `verify.rs` | [`Validation`] and [`Verifier`]: the engine's phases |
//!
//! Dependencies point down: `verify` → `keys` → `crypto` → `jose` → `outcome`.
//! Nothing here knows about HTTP, threads, configuration files or runtimes.
#![forbid(unsafe_code)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

mod cache;
mod crypto;
mod jose;
mod keys;
mod outcome;
mod time;
mod verify;

pub use cache::{CacheSettings, Lookup, TokenCache};
pub use jose::alg::{Algorithm, AlgorithmError, AlgorithmSet, KeyFamily, UnknownAlgorithm};
pub use jose::base64url;
pub use jose::claims::{Audience, ClaimName, Claims, NumericDate, RegisteredClaim};
pub use jose::header::Header;
pub use keys::{Key, KeySet, KeySetError, KeyWarning};
pub use outcome::{Outcome, Rejection, Stage};
pub use time::UnixTime;
pub use verify::{
    Scratch, SubjectMatch, Validation, Verified, Verifier, VerifierError, claimed_kid,
};

/// Zero-copy views of the JSON inside a verified token: what [`Claims::get`],
/// [`Claims::lookup`] and the [`Header`] hand out.
///
/// The views borrow the decoded text held in a [`Scratch`]; strings are
/// unescaped only on demand ([`JsonStr`](json::JsonStr)). The text they come
/// from was validated strictly (UTF-8, no duplicate member names, no lone
/// surrogates, bounded nesting), so reading them cannot fail in surprising ways.
pub mod json {
    pub use crate::jose::json::{
        Array, Elements, JsonStr, Kind, Members, Object, Unescaped, Value,
    };
}

/// Not a stable API: the pieces of the engine that jwtgate's service crate,
/// benchmarks and fuzz targets use besides the public API. They may change in
/// any release.
///
/// - [`json`](internals::json): the strict JSON parser ([`Tape`](internals::json::Tape)),
///   which the service also reads fetched JWKS and discovery documents with;
/// - [`jwk`](internals::jwk): one JWK typed into key material, for the token
///   tools (an HMAC secret from a JWK file; keys `keygen` publishes);
/// - [`pem`](internals::pem): PEM blocks, for the PKCS#8 private keys the tools
///   sign with;
/// - [`RawToken`](internals::RawToken): a token cut into its segments without
///   trusting it, for `jwtgate inspect`.
#[doc(hidden)]
pub mod internals {
    pub use crate::jose::json;
    pub use crate::jose::jwk;
    pub use crate::jose::token::RawToken;
    pub use crate::keys::pem;
}
