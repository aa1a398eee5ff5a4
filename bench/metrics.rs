//! What recording metrics adds to one check request, measured on its own:
//! the clock reads around verification and around the request, one counter
//! and two histogram records. `scripts/bench-http.sh` measures the same cost
//! end to end (`--no-metrics` beside the default); this isolates it from
//! network noise, to set against the request's cost (tens of microseconds for
//! RS256 or ES256).
//!
//! `cargo bench --bench metrics` (pin it with `taskset -c 0` for stable numbers).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use criterion::Criterion;
use jwtgate::Outcome;
use jwtgate::internals::{Decision, Face, Place, Policy, ShardMetrics, Taken};

fn recording(c: &mut Criterion) {
    let policy = Arc::new(Policy::single());
    let mut metrics = ShardMetrics::new(&policy);
    let place = Place {
        rule: Some(0),
        config: Some(0),
    };
    // Exactly what the server adds per request when metrics are on: the time
    // the head was complete, verification start and end, the counter, and
    // the write's completion (shared by pipelined requests; counted whole here).
    c.bench_function("metrics/one request recorded", |b| {
        b.iter(|| {
            let received = Instant::now();
            let verifying = Instant::now();
            metrics.record_verification(verifying.elapsed());
            metrics.count(
                &policy,
                Face::Http,
                black_box(place),
                Decision::Token(Outcome::Valid),
                Taken::Allow,
            );
            metrics.record_request(Instant::now().saturating_duration_since(received));
        });
    });
    c.bench_function("metrics/counter only", |b| {
        b.iter(|| {
            metrics.count(
                &policy,
                Face::Http,
                black_box(place),
                Decision::Token(Outcome::Expired),
                Taken::Block,
            );
        });
    });
    c.bench_function("metrics/a collection (snapshot of one shard)", |b| {
        b.iter(|| black_box(metrics.take()));
    });
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    recording(&mut criterion);
    criterion.final_summary();
}
