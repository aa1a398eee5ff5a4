//! The three ways collected totals are shown: the Prometheus text exposition
//! format (`GET /metrics`), JSON (`GET /stats`), and the one-line summary on
//! stderr. Metric names and labels are a public contract (dashboards and
//! alerts are written against them); they follow the Prometheus naming
//! conventions: `jwtgate_` prefix, base units (seconds), `_total` counters.

use std::fmt::Write as _;
use std::io::Write as _;

use super::hub::{Recent, Totals};
use super::{ACTIONS, CacheGauges, DECISIONS, Decision, GRPC_ERRORS, PROTOCOL_STATUSES, Taken};
use crate::json_string::quote_into;
use crate::latency::{LatencyHistogram, REPORTED_PERCENTILES};
use crate::snapshot::Snapshot;
use crate::status::Status;

/// Upper bounds of the latency histogram buckets, in seconds: 10 µs to 10 s,
/// dense where verification lives (tens of microseconds).
pub(crate) const BUCKETS_SECONDS: [f64; 19] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// What is shown besides the collected totals.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context<'a> {
    /// Serving state.
    pub status: &'a Status,
    /// The snapshot in force (token configurations and their key sets).
    pub snapshot: &'a Snapshot,
    /// The I/O runtime name (`uring`, `epoll`).
    pub io: &'a str,
    /// Number of shards.
    pub shards: usize,
    /// Whether per-request metrics are recorded (`--no-metrics` turns them off).
    pub recording: bool,
    /// Access-log lines dropped because the writer fell behind, if logging.
    pub access_log_dropped: Option<u64>,
}

impl Context<'_> {
    /// Ready: listening, not draining, and every token configuration has keys.
    pub(crate) fn ready(&self) -> bool {
        self.unready().is_none()
    }

    /// Why the server is not ready, if it is not.
    pub(crate) fn unready(&self) -> Option<&'static str> {
        if !self.status.listening() {
            Some("listeners not bound yet")
        } else if !self.keys_loaded() {
            Some("a token configuration has no keys")
        } else if self.revocations_refused() {
            Some(
                "the revocation store has been unreadable for longer than max_stale (on_unavailable = \"deny\")",
            )
        } else if self.status.draining() {
            Some("draining")
        } else {
            None
        }
    }

    /// Ready but degraded: configurations whose key fetches fail while their
    /// last good key set is still served, one line each.
    pub(crate) fn degraded(&self) -> Vec<String> {
        let revocations = &self.snapshot.revocations;
        let store_failing = revocations.failing_since.map(|since| {
            format!(
                "revocations: {} cannot be read; the revocations read {} s ago stay in force \
                 (on_unavailable = \"{}\" after {} s)",
                revocations.store.as_deref().unwrap_or("the store"),
                crate::UnixTime::now().0.saturating_sub(since.0),
                revocations.on_unavailable.name(),
                revocations.max_stale.as_secs()
            )
        });
        store_failing
            .into_iter()
            .chain(self.snapshot
            .configs()
            .filter_map(|(name, keys)| {
                let remote = keys.remote()?;
                (remote.failing() && keys.available()).then(|| {
                    let age = remote
                        .fetched_at()
                        .map(|at| crate::UnixTime::now().0.saturating_sub(at));
                    let why = remote
                        .last_failure()
                        .map_or_else(String::new, |reason| format!(" ({reason})"));
                    format!(
                        "token_config {name:?}: fetching keys fails{why}; serving the last good set, fetched {} s ago",
                        age.unwrap_or(0)
                    )
                })
            }))
            .collect()
    }

    /// Whether every verified token is refused now: the revocation store
    /// has been unreadable for longer than `max_stale` under `deny`.
    pub(crate) fn revocations_refused(&self) -> bool {
        let revocations = &self.snapshot.revocations;
        revocations.on_unavailable == crate::revocation::OnUnavailable::Deny
            && revocations.too_stale(crate::UnixTime::now())
    }

    /// Every token configuration has usable keys (fetched ones included).
    pub(crate) fn keys_loaded(&self) -> bool {
        self.snapshot.keys_loaded()
    }
}

/// Escapes a label value (backslash, double quote, line feed).
fn label(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// The revocation families, when a store is configured.
fn revocations(out: &mut String, revocations: &crate::revocation::Revocations) {
    if revocations.store.is_none() {
        return;
    }
    family(
        out,
        "jwtgate_revocations",
        "gauge",
        "Revocations in force, by kind (jti, subject, kid).",
    );
    for kind in crate::revocation::Kind::ALL {
        let _ = writeln!(
            out,
            "jwtgate_revocations{{kind=\"{}\"}} {}",
            kind.name(),
            revocations.set.count(kind)
        );
    }
    family(
        out,
        "jwtgate_revocation_store_up",
        "gauge",
        "1 while the revocation store is read without failing.",
    );
    let _ = writeln!(
        out,
        "jwtgate_revocation_store_up {}",
        u8::from(revocations.failing_since.is_none())
    );
    family(
        out,
        "jwtgate_revocation_last_read_timestamp_seconds",
        "gauge",
        "Unix time of the last whole read of the revocation store.",
    );
    let _ = writeln!(
        out,
        "jwtgate_revocation_last_read_timestamp_seconds {}",
        revocations.last_read.map_or(0, |at| at.0)
    );
    let counters = &revocations.counters;
    for (name, help, value) in [
        (
            "jwtgate_revocation_store_reads_total",
            "Whole reads of the revocation store that succeeded.",
            &counters.reads,
        ),
        (
            "jwtgate_revocation_store_failures_total",
            "Reads or follows of the revocation store that failed.",
            &counters.failures,
        ),
        (
            "jwtgate_revocation_changes_total",
            "Revocations applied as they were published (Redis).",
            &counters.changes,
        ),
    ] {
        family(out, name, "counter", help);
        let _ = writeln!(
            out,
            "{name} {}",
            value.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn histogram(out: &mut String, name: &str, help: &str, values: &LatencyHistogram) {
    family(out, name, "histogram", help);
    for bound in BUCKETS_SECONDS {
        let nanos = (bound * 1e9) as u64;
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"{bound}\"}} {}",
            values.count_at_or_below(nanos)
        );
    }
    let count = values.count();
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
    let sum = values.mean_nanos() * count as f64 / 1e9;
    let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
}

/// `GET /metrics`: the Prometheus text exposition format, version 0.0.4.
pub(crate) fn prometheus(totals: &Totals, context: &Context<'_>) -> String {
    let mut out = String::with_capacity(4096);
    let status = context.status;
    family(
        &mut out,
        "jwtgate_build_info",
        "gauge",
        "Always 1; the labels say which build runs.",
    );
    let _ = writeln!(
        out,
        "jwtgate_build_info{{version=\"{}\",io=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        context.io
    );
    family(
        &mut out,
        "jwtgate_start_time_seconds",
        "gauge",
        "When serving started, Unix seconds.",
    );
    let _ = writeln!(
        out,
        "jwtgate_start_time_seconds {}",
        status.start_time_unix()
    );
    family(
        &mut out,
        "jwtgate_uptime_seconds",
        "gauge",
        "Seconds since start.",
    );
    let _ = writeln!(out, "jwtgate_uptime_seconds {}", status.uptime_seconds());
    family(
        &mut out,
        "jwtgate_shards",
        "gauge",
        "Shard threads serving check requests.",
    );
    let _ = writeln!(out, "jwtgate_shards {}", context.shards);
    family(
        &mut out,
        "jwtgate_ready",
        "gauge",
        "1 when listening, not draining and every token configuration has keys.",
    );
    let _ = writeln!(out, "jwtgate_ready {}", u8::from(context.ready()));
    family(
        &mut out,
        "jwtgate_draining",
        "gauge",
        "1 once a shutdown has begun.",
    );
    let _ = writeln!(out, "jwtgate_draining {}", u8::from(status.draining()));
    revocations(&mut out, &context.snapshot.revocations);
    family(
        &mut out,
        "jwtgate_config_generation",
        "gauge",
        "1 at start, one more per successful reload.",
    );
    let _ = writeln!(out, "jwtgate_config_generation {}", status.generation());
    let (reloads, failures) = status.reloads();
    family(
        &mut out,
        "jwtgate_config_reloads_total",
        "counter",
        "Configuration reloads by result.",
    );
    let _ = writeln!(
        out,
        "jwtgate_config_reloads_total{{result=\"success\"}} {reloads}"
    );
    let _ = writeln!(
        out,
        "jwtgate_config_reloads_total{{result=\"failure\"}} {failures}"
    );
    family(
        &mut out,
        "jwtgate_config_last_reload_success_timestamp_seconds",
        "gauge",
        "When the last successful reload happened, Unix seconds (0: never).",
    );
    let _ = writeln!(
        out,
        "jwtgate_config_last_reload_success_timestamp_seconds {}",
        status.last_reload_unix()
    );
    family(
        &mut out,
        "jwtgate_token_config_keys",
        "gauge",
        "Keys in each token configuration's key set.",
    );
    for (name, keys) in context.snapshot.configs() {
        out.push_str("jwtgate_token_config_keys{token_config=\"");
        label(&mut out, name);
        let _ = writeln!(out, "\"}} {}", keys.verifier().keys().len());
    }
    family(
        &mut out,
        "jwtgate_token_config_keys_available",
        "gauge",
        "1 when the token configuration's keys may be used; 0 while fetched keys are missing or older than max_stale (tokens get keys_unavailable).",
    );
    for (name, keys) in context.snapshot.configs() {
        out.push_str("jwtgate_token_config_keys_available{token_config=\"");
        label(&mut out, name);
        let _ = writeln!(out, "\"}} {}", u8::from(keys.available()));
    }
    let remote: Vec<_> = context
        .snapshot
        .configs()
        .filter_map(|(name, keys)| Some((name, keys.remote()?)))
        .collect();
    if !remote.is_empty() {
        family(
            &mut out,
            "jwtgate_jwks_fetches_total",
            "counter",
            "Fetches of remote key sets by result (a failure keeps the last good set).",
        );
        for (name, keys) in &remote {
            for (result, count) in [("success", keys.fetches()), ("failure", keys.failures())] {
                out.push_str("jwtgate_jwks_fetches_total{token_config=\"");
                label(&mut out, name);
                let _ = writeln!(out, "\",result=\"{result}\"}} {count}");
            }
        }
        family(
            &mut out,
            "jwtgate_jwks_key_set_changes_total",
            "counter",
            "Fetches that changed a remote key set (rotations).",
        );
        for (name, keys) in &remote {
            out.push_str("jwtgate_jwks_key_set_changes_total{token_config=\"");
            label(&mut out, name);
            let _ = writeln!(out, "\"}} {}", keys.changes());
        }
        family(
            &mut out,
            "jwtgate_jwks_last_success_timestamp_seconds",
            "gauge",
            "When each remote key set was last fetched successfully, Unix seconds (0: never); its age is time() minus this.",
        );
        for (name, keys) in &remote {
            out.push_str("jwtgate_jwks_last_success_timestamp_seconds{token_config=\"");
            label(&mut out, name);
            let _ = writeln!(out, "\"}} {}", keys.fetched_at().unwrap_or(0));
        }
    }
    family(
        &mut out,
        "jwtgate_requests_total",
        "counter",
        "Check requests by rule, token configuration, outcome, action taken and face (http, grpc).",
    );
    for (key, count) in &totals.counters {
        out.push_str("jwtgate_requests_total{rule=\"");
        label(&mut out, &key.rule);
        out.push_str("\",token_config=\"");
        label(&mut out, &key.token_config);
        let _ = writeln!(
            out,
            "\",outcome=\"{}\",action=\"{}\",face=\"{}\"}} {count}",
            key.decision.name(),
            key.taken.name(),
            key.face.name()
        );
    }
    family(
        &mut out,
        "jwtgate_protocol_errors_total",
        "counter",
        "Requests answered by the HTTP layer itself, by status code: malformed or too large (4xx), timed out (408), or failed inside jwtgate (500).",
    );
    for (status, count) in PROTOCOL_STATUSES.iter().zip(totals.protocol_errors) {
        let _ = writeln!(
            out,
            "jwtgate_protocol_errors_total{{code=\"{status}\"}} {count}"
        );
    }
    family(
        &mut out,
        "jwtgate_grpc_errors_total",
        "counter",
        "gRPC calls the gRPC face answered with an error status instead of a decision, by code: a message that does not decode (invalid_argument) or is too large (out_of_range), a call not complete within header_timeout (deadline_exceeded), an unknown method (unimplemented), or a failure inside jwtgate (internal). Envoy's failure_mode_allow and status_on_error decide what such a check means.",
    );
    for ((_, code), count) in GRPC_ERRORS.iter().zip(totals.grpc_errors) {
        let _ = writeln!(out, "jwtgate_grpc_errors_total{{code=\"{code}\"}} {count}");
    }
    family(
        &mut out,
        "jwtgate_connections_open",
        "gauge",
        "Open connections per shard.",
    );
    for (shard, connections) in totals.connections.iter().enumerate() {
        let _ = writeln!(
            out,
            "jwtgate_connections_open{{shard=\"{shard}\"}} {}",
            connections.open
        );
    }
    family(
        &mut out,
        "jwtgate_connections_accepted_total",
        "counter",
        "Connections accepted per shard.",
    );
    for (shard, connections) in totals.connections.iter().enumerate() {
        let _ = writeln!(
            out,
            "jwtgate_connections_accepted_total{{shard=\"{shard}\"}} {}",
            connections.accepted
        );
    }
    if context.recording {
        histogram(
            &mut out,
            "jwtgate_request_duration_seconds",
            "Check requests from complete head to response written.",
            &totals.request,
        );
        histogram(
            &mut out,
            "jwtgate_verification_duration_seconds",
            "Checking a rule's tokens: extraction, signature and claims.",
            &totals.verification,
        );
        token_cache(&mut out, totals);
    }
    if let Some(dropped) = context.access_log_dropped {
        family(
            &mut out,
            "jwtgate_access_log_dropped_lines_total",
            "counter",
            "Access-log lines dropped because the writer fell behind.",
        );
        let _ = writeln!(out, "jwtgate_access_log_dropped_lines_total {dropped}");
    }
    out
}

/// The verified-token cache's families (counted only with metrics on).
fn token_cache(out: &mut String, totals: &Totals) {
    family(
        out,
        "jwtgate_token_cache_lookups_total",
        "counter",
        "Verified-token cache lookups by token configuration: hit (the signature was not checked again) or miss.",
    );
    for (config, [misses, hits]) in &totals.cache_lookups {
        for (result, count) in [("hit", hits), ("miss", misses)] {
            out.push_str("jwtgate_token_cache_lookups_total{token_config=\"");
            label(out, config);
            let _ = writeln!(out, "\",result=\"{result}\"}} {count}");
        }
    }
    type Family = (
        &'static str,
        &'static str,
        &'static str,
        fn(&CacheGauges) -> u64,
    );
    let gauges: [Family; 4] = [
        (
            "jwtgate_token_cache_entries",
            "gauge",
            "Verified tokens held per shard.",
            |cache| cache.entries,
        ),
        (
            "jwtgate_token_cache_capacity",
            "gauge",
            "Verified tokens each shard can hold (0: the cache is off).",
            |cache| cache.capacity,
        ),
        (
            "jwtgate_token_cache_bytes",
            "gauge",
            "Memory the verified-token cache holds per shard: its slots and the cached entries.",
            |cache| cache.bytes,
        ),
        (
            "jwtgate_token_cache_evictions_total",
            "counter",
            "Cached verifications replaced to make room, per shard.",
            |cache| cache.evictions,
        ),
    ];
    for (name, kind, help, value) in gauges {
        family(out, name, kind, help);
        for (shard, cache) in totals.caches.iter().enumerate() {
            let _ = writeln!(out, "{name}{{shard=\"{shard}\"}} {}", value(cache));
        }
    }
}

fn json_percentiles(out: &mut Vec<u8>, values: &LatencyHistogram) {
    let _ = write!(out, "{{\"count\":{}", values.count());
    for (percentile, name) in REPORTED_PERCENTILES {
        let micros = values.percentile_nanos(percentile) as f64 / 1000.0;
        let _ = write!(out, ",\"{name}\":{micros}");
    }
    let _ = write!(out, ",\"max\":{}}}", values.max_nanos() as f64 / 1000.0);
}

/// `GET /stats`: the same totals as JSON, with latency percentiles in microseconds.
pub(crate) fn stats(totals: &Totals, context: &Context<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(2048);
    let status = context.status;
    let (reloads, failures) = status.reloads();
    let _ = write!(
        out,
        "{{\"version\":\"{}\",\"io\":\"{}\",\"shards\":{},\"uptime_seconds\":{:.3},\"ready\":{},\"draining\":{},\"config_generation\":{},\"reloads\":{reloads},\"failed_reloads\":{failures},",
        env!("CARGO_PKG_VERSION"),
        context.io,
        context.shards,
        status.uptime_seconds(),
        context.ready(),
        status.draining(),
        status.generation(),
    );
    let total: u64 = totals.counters.values().sum();
    let _ = write!(out, "\"requests\":{{\"total\":{total},\"by_action\":{{");
    for (index, taken) in [Taken::Allow, Taken::Block, Taken::Log]
        .into_iter()
        .enumerate()
    {
        let comma = if index > 0 { "," } else { "" };
        let _ = write!(
            out,
            "{comma}\"{}\":{}",
            taken.name(),
            totals.by_action(taken)
        );
    }
    out.extend_from_slice(b"},\"by_outcome\":{");
    let mut first = true;
    for decision in (0..DECISIONS).filter_map(Decision::from_index) {
        let count = totals.by_decision(decision);
        if count > 0 {
            let comma = if first { "" } else { "," };
            first = false;
            let _ = write!(out, "{comma}\"{}\":{count}", decision.name());
        }
    }
    out.extend_from_slice(b"}},\"latency_us\":{\"request\":");
    json_percentiles(&mut out, &totals.request);
    out.extend_from_slice(b",\"verification\":");
    json_percentiles(&mut out, &totals.verification);
    out.extend_from_slice(b"},\"counters\":[");
    for (index, (key, count)) in totals.counters.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"rule\":");
        quote_into(&mut out, &key.rule);
        out.extend_from_slice(b",\"token_config\":");
        quote_into(&mut out, &key.token_config);
        let _ = write!(
            out,
            ",\"outcome\":\"{}\",\"action\":\"{}\",\"face\":\"{}\",\"count\":{count}}}",
            key.decision.name(),
            key.taken.name(),
            key.face.name()
        );
    }
    out.extend_from_slice(b"],\"protocol_errors\":{");
    for (index, (status, count)) in PROTOCOL_STATUSES
        .iter()
        .zip(totals.protocol_errors)
        .enumerate()
    {
        let comma = if index > 0 { "," } else { "" };
        let _ = write!(out, "{comma}\"{status}\":{count}");
    }
    out.extend_from_slice(b"},\"grpc_errors\":{");
    for (index, ((_, code), count)) in GRPC_ERRORS.iter().zip(totals.grpc_errors).enumerate() {
        let comma = if index > 0 { "," } else { "" };
        let _ = write!(out, "{comma}\"{code}\":{count}");
    }
    let open: u64 = totals.connections.iter().map(|c| c.open).sum();
    let accepted: u64 = totals.connections.iter().map(|c| c.accepted).sum();
    let _ = write!(
        out,
        "}},\"connections\":{{\"open\":{open},\"accepted\":{accepted}}},\"keys\":{{"
    );
    for (index, (name, keys)) in context.snapshot.configs().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        quote_into(&mut out, name);
        let _ = write!(out, ":{}", keys.verifier().keys().len());
    }
    if !context.recording {
        // The shards report their caches with their counts: with metrics
        // off there is nothing to report, which is not a cache that is off.
        out.extend_from_slice(b"},\"token_cache\":null}\n");
        return out;
    }
    let (misses, hits) = totals.cache_totals();
    let sum = |value: fn(&CacheGauges) -> u64| totals.caches.iter().map(value).sum::<u64>();
    let ratio = if hits + misses == 0 {
        0.0
    } else {
        hits as f64 / (hits + misses) as f64
    };
    let _ = writeln!(
        out,
        "}},\"token_cache\":{{\"capacity\":{},\"entries\":{},\"bytes\":{},\"evictions\":{},\"hits\":{hits},\"misses\":{misses},\"hit_ratio\":{ratio:.4}}}}}",
        sum(|cache| cache.capacity),
        sum(|cache| cache.entries),
        sum(|cache| cache.bytes),
        sum(|cache| cache.evictions),
    );
    out
}

/// The one-line summary of a window: rate, actions, outcomes, latency.
pub(crate) fn summary_line(label: &str, recent: &Recent) -> String {
    let seconds = recent.since.elapsed().as_secs_f64().max(1e-9);
    let requests = recent.requests();
    let rate = requests as f64 / seconds;
    let precision = usize::from(rate < 10.0);
    let mut line = format!(
        "jwtgate summary ({label} {seconds:.1} s): {requests} requests, {rate:.precision$}/s"
    );
    let by_action = |taken: Taken| -> u64 {
        recent
            .decisions
            .iter()
            .map(|row| row.get(taken.index()).copied().unwrap_or(0))
            .sum()
    };
    for (index, taken) in [Taken::Allow, Taken::Block, Taken::Log]
        .into_iter()
        .enumerate()
    {
        let separator = if index == 0 { "; " } else { ", " };
        let _ = write!(line, "{separator}{} {}", taken.name(), by_action(taken));
    }
    let mut outcomes: Vec<(u64, &str)> = recent
        .decisions
        .iter()
        .enumerate()
        .filter_map(|(index, row)| {
            let count: u64 = row.iter().take(ACTIONS).sum();
            Some((count, Decision::from_index(index)?.name()))
        })
        .filter(|&(count, _)| count > 0)
        .collect();
    outcomes.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    if !outcomes.is_empty() {
        line.push_str("; ");
        let named: Vec<String> = outcomes
            .iter()
            .map(|(count, name)| format!("{name} {count}"))
            .collect();
        line.push_str(&named.join(", "));
    }
    if recent.request.count() > 0 {
        let _ = write!(line, "; request {}", recent.request.summary_line());
    }
    if recent.verification.count() > 0 {
        let _ = write!(
            line,
            "; verification {}",
            recent.verification.summary_line()
        );
    }
    line
}
