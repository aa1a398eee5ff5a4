//! The integration tests, compiled as one test binary with a module per
//! topic: the library and everything it links (aws-lc, ring, tokio-uring,
//! rustls) are linked once here instead of once per file. Run one topic with
//! `cargo test --test integration serve::`, one test with its full path.
//!
//! `tests/serve_alloc.rs` is the one binary apart (`Cargo.toml` says why);
//! the key, token and server helpers both use are in `tests/common/`.
//!
//! `steady_state_alloc` installs this binary's global allocator, a counting
//! one: its counter is per thread, so the other modules' tests, running
//! beside it, neither disturb its counts nor depend on it.

#[path = "../common/mod.rs"]
mod common;

mod attacks;
mod cli;
mod config;
mod dodges;
mod drain;
mod e2e_caddy;
mod e2e_envoy_http;
mod e2e_haproxy;
mod e2e_nginx;
mod e2e_origin;
mod e2e_traefik;
mod fuzz_regressions;
mod grpc;
mod grpc_attacks;
mod grpc_python;
mod http_framing;
mod image;
mod jwks;
mod kubernetes;
mod metrics;
mod monitoring;
mod overload;
mod path_reading;
mod properties;
mod reasons;
mod revocation;
mod second_instance;
mod serve;
mod smoke;
mod steady_state_alloc;
mod systemd;
mod token_cache;
mod vectors;
