//! The admin listener's answers, on a port of its own so that health checks
//! and scrapes never compete with, or leak into, check traffic.
//!
//! - `GET /healthz`: alive: `200 ok`, or `503 draining` once a shutdown has
//!   begun, so a load balancer stops sending before the listeners close.
//! - `GET /readyz`: ready to take traffic: every listener bound and every token
//!   configuration holding keys, and not draining; 503 with the failing check
//!   otherwise.
//! - `GET /metrics`: the Prometheus text exposition ([`crate::metrics::exposition`]).
//! - `GET /stats`: the same as JSON, with latency percentiles.
//! - `GET /stats/request.hgrm`, `GET /stats/verification.hgrm`: the latency
//!   histograms since start as HdrHistogram percentile distributions, the
//!   format `jwtgate verify --histogram` writes and `scripts/plot-latency.py` plots.
//!
//! A scrape asks every shard for its counts and waits for the answers (for
//! a second at most), on the admin thread: check traffic is never held up.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::http::response::write_simple;
use crate::http::{BodyPolicy, Framing, RequestHead, Service};
use crate::metrics::exposition::{self, Context};
use crate::metrics::{COLLECT_WAIT, Hub};
use crate::snapshot::SharedSnapshot;
use crate::status::Status;

/// What the admin endpoints report on.
#[derive(Debug)]
pub(crate) struct Observed {
    /// Collects the shards' counts.
    pub hub: Arc<Hub>,
    /// Readiness, draining, reloads.
    pub status: Arc<Status>,
    /// The snapshot in force.
    pub policy: SharedSnapshot,
    /// The I/O runtime's name.
    pub io: &'static str,
    /// Number of shards.
    pub shards: usize,
    /// Whether check requests are counted and timed.
    pub recording: bool,
    /// Access-log lines dropped, when the log is on.
    pub access_log_dropped: Option<Arc<AtomicU64>>,
}

/// The admin endpoints.
#[derive(Debug, Clone)]
pub(crate) struct Admin {
    observed: Arc<Observed>,
}

impl Admin {
    /// Answers on what `observed` holds.
    pub(crate) fn new(observed: Arc<Observed>) -> Admin {
        Admin { observed }
    }
}

/// As before /metrics existed: scripts match on it.
const TEXT: &str = "text/plain";

impl Service for Admin {
    fn body_policy(&self, _head: &RequestHead<'_, '_>) -> BodyPolicy {
        BodyPolicy::Discard { max: 0 }
    }

    fn respond(
        &mut self,
        head: &RequestHead<'_, '_>,
        _body: &[u8],
        framing: Framing,
        out: &mut Vec<u8>,
    ) {
        let path = head.path.split('?').next().unwrap_or_default();
        let known = matches!(
            path,
            "/healthz"
                | "/readyz"
                | "/metrics"
                | "/stats"
                | "/stats/request.hgrm"
                | "/stats/verification.hgrm"
        );
        if !known {
            return write_simple(out, 404, TEXT, b"", b"not found\n", framing);
        }
        if head.method != "GET" && head.method != "HEAD" {
            return write_simple(
                out,
                405,
                TEXT,
                b"allow: GET, HEAD\r\n",
                b"use GET\n",
                framing,
            );
        }
        let observed = &self.observed;
        let status = &observed.status;
        let policy = observed.policy.load();
        let context = Context {
            status,
            snapshot: &policy,
            io: observed.io,
            shards: observed.shards,
            recording: observed.recording,
            access_log_dropped: observed
                .access_log_dropped
                .as_ref()
                .map(|dropped| dropped.load(Ordering::Relaxed)),
        };
        match path {
            "/healthz" if status.draining() => {
                write_simple(out, 503, TEXT, b"", b"draining\n", framing);
            }
            "/healthz" => write_simple(out, 200, TEXT, b"", b"ok\n", framing),
            "/readyz" => match context.unready() {
                None => {
                    let mut body = String::from("ready\n");
                    for line in context.degraded() {
                        body.push_str("degraded: ");
                        body.push_str(&line);
                        body.push('\n');
                    }
                    write_simple(out, 200, TEXT, b"", body.as_bytes(), framing);
                }
                Some(why) => {
                    let body = format!("not ready: {why}\n");
                    write_simple(out, 503, TEXT, b"", body.as_bytes(), framing);
                }
            },
            _ => {
                // A scrape: ask every shard, render, and let the totals go
                // before answering.
                let totals = observed.hub.collect(COLLECT_WAIT);
                let (content_type, body) = match path {
                    "/metrics" => (
                        "text/plain; version=0.0.4; charset=utf-8",
                        exposition::prometheus(&totals, &context).into_bytes(),
                    ),
                    "/stats/request.hgrm" => {
                        (TEXT, totals.request.percentile_distribution().into_bytes())
                    }
                    "/stats/verification.hgrm" => (
                        TEXT,
                        totals.verification.percentile_distribution().into_bytes(),
                    ),
                    _ => ("application/json", exposition::stats(&totals, &context)),
                };
                drop(totals);
                let no_store = b"cache-control: no-store\r\n";
                write_simple(out, 200, content_type, no_store, &body, framing);
            }
        }
    }
}
