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
//! ## The public API
//!
//! What an embedder of the service uses, and what the `jwtgate` binary (a
//! crate of its own over this library) is written against:
//!
//! - [`control`]: run the service from a [`Launch`](control::Launch)
//!   ([`run`](control::run)), stop or reload it through a
//!   [`Controller`](control::Controller), hear what it says through a
//!   [`Report`](control::Report); [`verifier_for`](control::verifier_for)
//!   builds one configuration's verifier without serving;
//! - [`settings`]: the server settings as layers
//!   ([`ServerLayer`](settings::ServerLayer)) and the checks of every cap;
//! - [`config`]: [`load`](config::load) a configuration file (what
//!   `check-config` reports on) and its errors;
//! - [`server`]: the options a service runs with
//!   ([`ServeOptions`](server::ServeOptions)) and the running
//!   [`Server`](server::Server) a report is handed; [`authz`] and
//!   [`access_log`] hold the options' parts;
//! - [`batch`]: `jwtgate verify` over readers; [`tools`]: `keygen`, `mint`,
//!   `inspect` and `check-config`'s report; [`demo`]: `jwtgate demo`;
//! - the engine's types, re-exported at the root.
//!
//! Everything else is internal (`pub(crate)`). jwtgate's own integration
//! tests, benchmarks and fuzz targets reach what they need of it through
//! `internals`, which is hidden from the docs and is not a stable API.
//!
//! ## Layout
//!
//! | module | job | API |
//! |---|---|---|
//! | [`batch`] | `jwtgate verify`: reader, pinned workers and ordered writer over a bounded batch pool | public |
//! | `latency` | hdrhistogram latency recording, percentile summaries, `.hgrm` output | internal |
//! | `signing` | signing and key generation for the tools: the only module that imports a crypto library (ring, rsa) | internal |
//! | `json_string` | JSON string literals for what the service writes (metrics, batch lines, minted tokens) | internal |
//! | `time` | Unix seconds as civil dates, RFC 3339 and relative times | internal |
//! | [`tools`] | `keygen`, `mint`, `inspect`, `check-config`'s report | public |
//! | `http` | zero-copy request head parsing, limits, protocol errors, the `Service` seam, original-request headers | internal |
//! | `jwks` | fetched key sets: HTTPS and OIDC discovery, the key manager thread (refresh, refetch on unknown `kid`, stale-if-error), audit of changes | internal |
//! | [`control`] | the control plane: runs the service from a `Launch` (start-up, key wait, signals, reload, summaries, drain) and reports through `Report` | public |
//! | `snapshot` | the policy and each token configuration's keys as in force together, and the one `Publisher` through which reloads and key refreshes replace them | internal |
//! | [`settings`] | server settings described once (types, defaults, layers merged defaults → file → flags) and every cap checked in one place | public |
//! | [`config`] | the TOML configuration file → validated `Policy` and server settings; errors with file, line, column, key; hot reload | public: loading and its errors |
//! | `policy` | token configurations, sources (header, cookie, query), rules, canonical paths, claim requirements | internal |
//! | [`authz`] | the ext_authz decision (route → tokens → verify → 200/401/403, 429 when overloaded) and the `POST /v1/verify` batch face | public: the options |
//! | `queue_delay` | how long a shard's work waits (the heartbeat's measure), and shedding past `max_queue_delay` | internal |
//! | `admin` | the admin listener's answers (`/healthz`, `/readyz`, `/metrics`, `/stats`) | internal |
//! | `metrics` | per-shard counters and histograms, collection into totals, Prometheus and JSON exposition | internal |
//! | [`access_log`] | the JSON-lines access log: per-shard buffers, sampling, a writer thread | public: the options |
//! | `status` | readiness, draining, configuration generation and reload results | internal |
//! | [`grpc`] | the gRPC face: Envoy's `Authorization/Check` and gRPC health, on every shard, deciding with the shard's authorizer | public: the options |
//! | [`server`] | `jwtgate serve`: per-core shards on io_uring or epoll, connections, timeouts, drain | public: the options and the running server |
//! | `diagnostics` | one-line operational lines on stderr with a level (text or JSON), usable from any layer | `serve --log-format` |
//! | [`demo`] | `jwtgate demo`: the engine on the bundled demo keys | public |
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
mod admin;
pub mod authz;
pub mod batch;
pub mod config;
pub mod control;
pub mod demo;
pub mod diagnostics;
pub mod grpc;
mod http;
mod json_string;
mod jwks;
mod latency;
mod metrics;
mod policy;
mod queue_delay;
pub mod revocation;
pub mod server;
pub mod settings;
mod signing;
mod snapshot;
mod stamp;
mod status;
#[cfg(test)]
pub(crate) mod test_support;
mod time;
pub mod tools;

pub use jwtgate_engine::{
    Algorithm, AlgorithmSet, CacheSettings, ClaimName, Claims, KeySet, KeySetError, KeyWarning,
    Lookup, NumericDate, Outcome, RegisteredClaim, Rejection, Scratch, Stage, SubjectMatch,
    TokenCache, UnixTime, Validation, Verified, Verifier, VerifierError,
};

/// Not a stable API: the pieces of the service that jwtgate's own integration
/// tests, benchmarks and fuzz targets use besides the public API. They may
/// change in any release.
///
/// - request heads: [`parse_head`](internals::parse_head) and its limits,
///   slots and errors, the one-pass [`HeadScan`](internals::HeadScan), the
///   [`ChunkedDecoder`](internals::ChunkedDecoder), the
///   [`OriginalRequest`](internals::OriginalRequest) a proxy forwards, for the
///   head benchmark and the request fuzz targets;
/// - the policy: [`Policy`](internals::Policy) and routing, canonical paths
///   ([`canonicalize`](internals::canonicalize)), token sources, host names
///   and method overrides, for the policy benchmark, the path and source fuzz
///   targets and the path-reading tests;
/// - [`ShardMetrics`](internals::ShardMetrics), for the metrics benchmark;
/// - [`Snapshot`](internals::Snapshot), what `Server::start` serves, for
///   `tests/serve_alloc.rs`;
/// - [`SigningKey`](internals::SigningKey), to mint test tokens.
#[doc(hidden)]
pub mod internals {
    pub use crate::grpc::Checker as GrpcChecker;
    pub use crate::http::chunked::ChunkedDecoder;
    pub use crate::http::request::{
        HeadScan, HeadStatus, HeaderSlots, Limits, ProtocolError, leading_empty_lines, parse_head,
    };
    pub use crate::http::{ForwardedStyle, OriginalRequest};
    pub use crate::metrics::{Decision, Face, Place, ShardMetrics, Taken};
    pub use crate::policy::path::{Params, PathError, canonicalize};
    pub use crate::policy::{Found, PathBuffers, Policy, Route, Routed, TokenSource};
    pub use crate::signing::SigningKey;
    pub use crate::snapshot::Snapshot;

    /// Host names of the original request.
    pub mod host {
        pub use crate::policy::host::host_name;
    }

    /// Method overrides of the original request.
    pub mod method {
        pub use crate::policy::method::overriding_method;
    }
}
