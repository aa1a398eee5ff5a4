//! # jwtgate
//!
//! The JWT verification tier: the `jwtgate` binary's commands as a library. It
//! serves ext_authz checks for reverse proxies (`serve`), verifies token streams
//! on every core (`verify`), and carries the token tools (`keygen`, `mint`,
//! `inspect`, `check-config`, `demo`).
//!
//! Verification itself is the `jwtgate-engine` crate: a strict JOSE engine with
//! no runtime, network or CLI dependencies, for embedding in other servers. Its
//! public types are re-exported here (`jwtgate::Verifier` is
//! `jwtgate_engine::Verifier`); its doc has the example.
//!
//! ## Layout
//!
//! | module | job |
//! |---|---|
//! | [`batch`] | `jwtgate verify`: reader, pinned workers and ordered writer over a bounded batch pool |
//! | [`latency`] | hdrhistogram latency recording, percentile summaries, `.hgrm` output |
//! | [`signing`] | signing and key generation for the tools: the only module that imports a crypto library (ring, rsa) |
//! | [`json_string`] | JSON string literals for what the service writes (metrics, batch lines, minted tokens) |
//! | `time` | Unix seconds as civil dates, RFC 3339 and relative times |
//! | [`tools`] | `keygen`, `mint`, `inspect` |
//! | [`http`] | zero-copy request head parsing, limits, protocol errors, the `Service` seam, original-request headers |
//! | [`jwks`] | fetched key sets: HTTPS and OIDC discovery, the key manager thread (refresh, refetch on unknown `kid`, stale-if-error), audit of changes |
//! | [`control`] | the control plane: runs the service from a `Launch` (start-up, key wait, signals, reload, summaries, drain) and reports through `Report` |
//! | [`snapshot`] | the policy and each token configuration's keys as in force together, and the one `Publisher` through which reloads and key refreshes replace them |
//! | [`settings`] | server settings described once (types, defaults, layers merged defaults → file → flags) and every cap checked in one place |
//! | [`config`] | the TOML configuration file → validated `Policy` and server settings; errors with file, line, column, key; hot reload |
//! | [`policy`] | token configurations, sources (header, cookie, query), rules, canonical paths, claim requirements |
//! | [`authz`] | the ext_authz decision (route → tokens → verify → 200/401/403) and the `POST /v1/verify` batch face |
//! | [`admin`] | the admin listener's answers (`/healthz`, `/readyz`, `/metrics`, `/stats`) |
//! | [`metrics`] | per-shard counters and histograms, collection into totals, Prometheus and JSON exposition |
//! | [`access_log`] | the JSON-lines access log: per-shard buffers, sampling, a writer thread |
//! | [`status`] | readiness, draining, configuration generation and reload results |
//! | [`server`] | `jwtgate serve`: per-core shards on io_uring or epoll, connections, timeouts, drain |
//! | `diagnostics` | one-line operational warnings on stderr, usable from any layer |
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
pub mod control;
pub mod demo;
mod diagnostics;
pub mod http;
pub mod json_string;
pub mod jwks;
pub mod latency;
pub mod metrics;
pub mod policy;
pub mod server;
pub mod settings;
pub mod signing;
pub mod snapshot;
pub mod status;
#[cfg(test)]
pub(crate) mod test_support;
mod time;
pub mod tools;

pub use jwtgate_engine::{
    Algorithm, AlgorithmSet, ClaimName, Claims, KeySet, KeySetError, KeyWarning, NumericDate,
    Outcome, RegisteredClaim, Rejection, Scratch, SubjectMatch, UnixTime, Validation, Verified,
    Verifier, VerifierError,
};
