//! What routing costs per request: canonicalising the path and finding the
//! rule (hosts, paths, methods, exclusions), against a policy of the example
//! configuration's three rules behind 29 others, so that some requests match
//! late and some match nothing. The flags-only policy does no routing at all;
//! this is the whole price of a configuration on top of verification.
//!
//! `cargo bench --bench policy` (pin it with `taskset -c 0` for stable numbers).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::Path;

use criterion::Criterion;
use jwtgate::internals::{OriginalRequest, PathBuffers, Policy, Route, Routed};

fn policy() -> Policy {
    let jwks = std::fs::read_to_string(format!(
        "{}/examples/keys/demo.jwks.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let mut config =
        format!("default_action = \"deny\"\n[[token_config]]\nname = \"p\"\njwks = '''{jwks}'''\n");
    for i in 0..29 {
        config.push_str(&format!(
            "[[rule]]\nname = \"filler{i}\"\nhosts = [\"svc{i}.example.com\", \"*.svc{i}.example.net\"]\npaths = [\"/svc{i}/**\", \"/items/{{id}}/svc{i}\"]\nmethods = [\"GET\", \"POST\"]\ntoken_configs = [\"p\"]\nexclude = [\"GET /svc{i}/health\"]\n"
        ));
    }
    config.push_str(
        "[[rule]]\nname = \"api\"\nhosts = [\"api.example.com\", \"*.api.example.com\"]\npaths = [\"/v1/**\"]\ntoken_configs = [\"p\"]\nexclude = [\"GET /v1/health\", \"/v1/public/**\"]\n",
    );
    jwtgate::config::parse(&config, Path::new("bench.toml"))
        .unwrap()
        .policy
}

fn route_once(
    policy: &Policy,
    buffers: &mut PathBuffers,
    method: &str,
    host: &str,
    target: &str,
) -> bool {
    let request = OriginalRequest {
        method: method.as_bytes(),
        host: host.as_bytes(),
        path: target.as_bytes(),
    };
    matches!(
        policy.route_target(&request, None, false, buffers),
        Ok(Routed {
            route: Route::Check(_),
            ..
        })
    )
}

fn main() {
    let policy = policy();
    let mut criterion = Criterion::default().configure_from_args();
    let mut buffers = PathBuffers::with_capacity(256);
    let cases = [
        ("first rule", "GET", "svc0.example.com", "/svc0/orders/7"),
        (
            "last rule",
            "GET",
            "eu.api.example.com",
            "/v1/orders/7?page=2",
        ),
        ("excluded", "GET", "api.example.com", "/v1/health"),
        (
            "dot-segments",
            "GET",
            "api.example.com",
            "/v1/public/../orders/7",
        ),
        ("no rule", "GET", "www.example.com", "/index.html"),
    ];
    let mut group = criterion.benchmark_group("route (30 rules)");
    for (name, method, host, target) in cases {
        group.bench_function(name, |b| {
            b.iter(|| {
                route_once(
                    &policy,
                    &mut buffers,
                    black_box(method),
                    black_box(host),
                    black_box(target),
                )
            });
        });
    }
    group.finish();
    criterion.final_summary();
}
