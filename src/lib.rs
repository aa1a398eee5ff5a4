//! # jwtgate
//!
//! A JWT verification engine built to sit in front of APIs: it takes a compact
//! JWS, a key set and a claims policy, and returns either the verified claims or
//! one precise [`Outcome`]. It is strict where JWT libraries are lenient (strict
//! base64url, duplicate JSON members refused, the key decides the algorithm,
//! `none` and unknown `crit` never accepted) and it allocates nothing per token
//! in steady state.
//!
//! ```
//! use jwtgate::{AlgorithmSet, KeySet, UnixTime, Validation, Verifier};
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
//! ## Layout
//!
//! | module | job |
//! |---|---|
//! | [`outcome`] | the `Outcome` vocabulary and `Rejection` (outcome + static reason) |
//! | [`jose`] | base64url, strict JSON tape, compact split, header, claims, algorithms, JWK |
//! | [`keys`] | `KeySet`: JWKS/JWK/PEM parsed once into handles, `kid` index, key rules |
//! | [`crypto`] | the engine's crypto seam (aws-lc-rs, ring): verifying keys |
//! | [`verify`] | `Validation` and `Verifier`: the engine's phases |
//! | [`batch`] | `jwtgate verify`: reader, pinned workers and ordered writer over a bounded batch pool |
//! | [`latency`] | hdrhistogram latency recording, percentile summaries, `.hgrm` output |
//! | [`signing`] | signing and key generation for the tools (ring, rsa) |
//! | [`tools`] | `keygen`, `mint`, `inspect` |
//! | [`http`] | zero-copy request head parsing, limits, protocol errors, the `Service` seam, original-request headers |
//! | [`jwks`] | fetched key sets: HTTPS and OIDC discovery, the key manager thread (refresh, refetch on unknown `kid`, stale-if-error), audit of changes |
//! | [`config`] | the TOML configuration file → validated `Policy` and server settings; errors with file, line, column, key; hot reload |
//! | [`policy`] | token configurations, sources (header, cookie, query), rules, canonical paths, claim requirements |
//! | [`authz`] | the ext_authz decision (route → tokens → verify → 200/401/403) and the `POST /v1/verify` batch face |
//! | [`admin`] | the admin listener's answers (`/healthz`, `/readyz`, `/metrics`, `/stats`) |
//! | [`metrics`] | per-shard counters and histograms, collection into totals, Prometheus and JSON exposition |
//! | [`access_log`] | the JSON-lines access log: per-shard buffers, sampling, a writer thread |
//! | [`status`] | readiness, draining, configuration generation and reload results |
//! | [`server`] | `jwtgate serve`: per-core shards on io_uring or epoll, connections, timeouts, drain |
//! | [`demo`] | `jwtgate demo`: the engine on the bundled demo keys |
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

pub mod access_log;
pub mod admin;
pub mod authz;
pub mod batch;
pub mod config;
pub mod crypto;
pub mod demo;
pub mod http;
pub mod jose;
pub mod jwks;
pub mod keys;
pub mod latency;
pub mod metrics;
pub mod outcome;
pub mod policy;
pub mod server;
pub mod signing;
pub mod status;
pub mod tools;
pub mod verify;

pub use jose::alg::{Algorithm, AlgorithmSet};
pub use jose::claims::{ClaimName, Claims, NumericDate, RegisteredClaim};
pub use keys::{KeySet, KeySetError, KeyWarning};
pub use outcome::{Outcome, Rejection};
pub use verify::{Scratch, SubjectMatch, UnixTime, Validation, Verified, Verifier, VerifierError};
