//! Integration tests of observability (issue 6) through the real binary:
//! `GET /metrics` (Prometheus text, also checked by `promtool`), `GET /stats`
//! (JSON), `GET /readyz`, the reload generation, `--no-metrics`, the JSON
//! access log (never a token in it) and its sampling, and the summary line
//! printed on stderr at shutdown.
//!
//! Every server runs on ephemeral loopback ports (harness in
//! `common/server.rs`) with the clock pinned by `--now`, from a configuration
//! file written to a scratch directory beside a JWKS built from `tests/data`.
//! Counts are asserted exactly: a scrape asks every shard for its counts
//! synchronously, and a request is counted before its answer is written, so
//! the counts are complete once the responses have been read (the request
//! latency, recorded when the write completes, is awaited with a deadline).
//! Nothing waits with a sleep for readiness: reloads and draining are
//! awaited by polling the admin port with a deadline, and access-log lines
//! are read after the server has exited (which flushes them).
//!
//! `promtool` is required, like nginx for `e2e_nginx.rs`: a machine
//! without it fails the promtool test with a message saying so, unless
//! `JWTGATE_SKIP_E2E=1` is set (then it prints a note and passes).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::TempDir;
use common::server::{Conn, Response, Server, request_bytes};
use common::{mint, rewrite_unnoticed, signing_key};
use jwtgate::Algorithm;
use jwtgate::internals::SigningKey;

/// The pinned clock, as `--now` takes it.
const NOW: &str = "1700000000";
const T: i64 = 1_700_000_000;
/// Issuer of the `users` token configuration.
const ISS: &str = "https://idp.test/";
/// Issuer of the `service` token configuration.
const SVC_ISS: &str = "https://svc.test/";
const AUD: &str = "api";
const KID_RSA: &str = "rsa-a";
/// A kid no key set holds.
const KID_UNKNOWN: &str = "no-such-key";

/// Bound on a graceful exit after SIGTERM (a drain delay included).
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on a reload, a drain or the last stderr lines being observed.
const POLL_TIMEOUT: Duration = Duration::from_secs(20);
/// Interval between two polls of the admin port or of stderr.
const POLL: Duration = Duration::from_millis(20);
/// Most connections opened while waiting for both shards to accept one: the
/// kernel spreads connections over SO_REUSEPORT sockets by a hash of the
/// client port, so all of 64 landing on one of two shards has odds of 2^-63.
const MAX_CONNECTIONS: usize = 64;

// ---------------------------------------------------------------------------
// Keys, tokens and configurations
// ---------------------------------------------------------------------------

const RS256_HEADER: &str = r#"{"alg":"RS256","kid":"rsa-a","typ":"JWT"}"#;

/// Signing keys; the JWKS on disk holds the public half of `rsa_a` only.
struct Keys {
    rsa_a: SigningKey,
    rsa_b: SigningKey,
}

impl Keys {
    fn new() -> Keys {
        Keys {
            rsa_a: signing_key("rsa2048-a", Algorithm::Rs256),
            rsa_b: signing_key("rsa2048-b", Algorithm::Rs256),
        }
    }

    fn rs256(&self, claims: &str) -> String {
        mint(RS256_HEADER, claims, &self.rsa_a, Algorithm::Rs256)
    }

    /// A valid `users` token for `sub`.
    fn user(&self, sub: &str) -> String {
        self.rs256(&claims(ISS, sub))
    }

    /// A valid `service` token for `sub`.
    fn service(&self, sub: &str) -> String {
        self.rs256(&claims(SVC_ISS, sub))
    }

    fn expired(&self, sub: &str) -> String {
        self.rs256(&format!(
            r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"{sub}","iat":{},"exp":{}}}"#,
            T - 7200,
            T - 3600
        ))
    }

    /// Signed with `rsa2048-b` while naming `rsa-a`.
    fn bad_signature(&self, sub: &str) -> String {
        mint(
            RS256_HEADER,
            &claims(ISS, sub),
            &self.rsa_b,
            Algorithm::Rs256,
        )
    }

    /// Well signed, but naming [`KID_UNKNOWN`].
    fn unknown_kid(&self, sub: &str) -> String {
        mint(
            &format!(r#"{{"alg":"RS256","kid":"{KID_UNKNOWN}"}}"#),
            &claims(ISS, sub),
            &self.rsa_a,
            Algorithm::Rs256,
        )
    }
}

/// Claims valid at [`T`] for an hour.
fn claims(iss: &str, sub: &str) -> String {
    format!(
        r#"{{"iss":"{iss}","aud":"{AUD}","sub":"{sub}","iat":{T},"exp":{}}}"#,
        T + 3600
    )
}

/// Two token configurations with disjoint sources (so that every refusal is
/// attributed to exactly one), three rules (one of them `action = "log"`),
/// an excluded endpoint, and `default_action = "deny"`. `server` is the body
/// of the `[server]` table. The request line is the original request
/// (`forwarded` left at its default).
fn config(server: &str) -> String {
    format!(
        r#"default_action = "deny"

[server]
{server}

[[token_config]]
name = "users"
sources = [ {{ header = "authorization", prefix = "Bearer" }}, {{ cookie = "session" }}, {{ query = "access_token" }} ]
jwks_file = "keys.jwks.json"
issuer = "{ISS}"
audiences = ["{AUD}"]

[[token_config]]
name = "service"
sources = [ {{ header = "x-service-token" }} ]
jwks_file = "keys.jwks.json"
issuer = "{SVC_ISS}"
audiences = ["{AUD}"]

[[rule]]
name = "api"
paths = ["/v1/**"]
token_configs = ["users"]
action = "block"
exclude = ["/v1/health"]

[[rule]]
name = "internal"
paths = ["/internal/**"]
token_configs = ["service"]
action = "block"

[[rule]]
name = "beta"
paths = ["/v2/**"]
token_configs = ["users"]
action = "log"
"#
    )
}

/// A scratch directory holding `keys.jwks.json` and `jwtgate.toml`.
struct Env {
    dir: TempDir,
    keys: Keys,
}

impl Env {
    fn new() -> Env {
        let dir = TempDir::new("metrics");
        dir.write(
            "keys.jwks.json",
            format!(r#"{{"keys":[{}]}}"#, common::rsa_jwk(KID_RSA)),
        );
        Env {
            dir,
            keys: Keys::new(),
        }
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path("jwtgate.toml")
    }

    /// Writes `text` as `jwtgate.toml` and serves it:
    /// `serve --config … --now NOW --io IO EXTRA…`.
    fn serve(&self, io: &str, text: &str, extra: &[&str]) -> Server {
        self.dir.write("jwtgate.toml", text);
        let path = self.config_path();
        let mut args = vec!["--config", path.to_str().unwrap(), "--now", NOW, "--io", io];
        args.extend_from_slice(extra);
        let server = Server::start(&args);
        assert_eq!(server.io(), io, "{}", server.ready_line());
        server
    }
}

// ---------------------------------------------------------------------------
// Check requests and what each must be counted as
// ---------------------------------------------------------------------------

/// `(rule, token_config, outcome, action)`: the labels of one
/// `jwtgate_requests_total` series.
type Labels = (&'static str, &'static str, &'static str, &'static str);

/// One check request, the answer it must get, and the `jwtgate_requests_total`
/// labels it must be counted under.
#[derive(Debug, Clone)]
struct Check {
    request: Vec<u8>,
    status: u16,
    /// `x-jwtgate-outcome` of the answer (`None`: the answer has none).
    answer: Option<&'static str>,
    rule: &'static str,
    token_config: &'static str,
    outcome: &'static str,
    action: &'static str,
}

impl Check {
    /// `GET path` with `headers`, counted as `(rule, token_config, outcome,
    /// action)`; the expected answer follows from the labels.
    fn new(
        path: &str,
        headers: &[(&str, &str)],
        (rule, token_config, outcome, action): Labels,
    ) -> Check {
        let (status, answer) = match (outcome, action) {
            ("bad_request", _) => (400, None),
            ("no_rule", "block") => (403, Some("no_matching_rule")),
            ("insufficient_scope", "block") => (403, Some(outcome)),
            (_, "block") => (401, Some(outcome)),
            _ => (200, Some(outcome)),
        };
        Check {
            request: request_bytes("GET", path, headers, b""),
            status,
            answer,
            rule,
            token_config,
            outcome,
            action,
        }
    }

    /// Whether the rule's tokens were checked (the verification histogram).
    fn verified(&self) -> bool {
        !matches!(
            self.outcome,
            "excluded" | "preflight" | "no_rule" | "untrusted_proxy" | "bad_request"
        )
    }

    /// The series this request is counted in, as `/metrics` prints it.
    fn series(&self) -> String {
        series(self.rule, self.token_config, self.outcome, self.action)
    }

    /// Sends the request on `conn` and asserts the answer.
    fn run(&self, conn: &mut Conn, server: &Server) {
        conn.send(&self.request);
        let response = conn.try_read_response().unwrap_or_else(|e| {
            panic!(
                "no answer to {:?}: {e}\nstderr: {}",
                String::from_utf8_lossy(&self.request),
                server.stderr_text()
            )
        });
        let what = || {
            format!(
                "{:?} answered\n{}",
                String::from_utf8_lossy(&self.request),
                response.head_text()
            )
        };
        assert_eq!(response.status, self.status, "{}", what());
        assert_eq!(
            response.header("x-jwtgate-outcome"),
            self.answer,
            "{}",
            what()
        );
        let log = (self.action == "log").then_some("log");
        assert_eq!(response.header("x-jwtgate-action"), log, "{}", what());
    }
}

fn series(rule: &str, token_config: &str, outcome: &str, action: &str) -> String {
    format!(
        r#"jwtgate_requests_total{{rule="{rule}",token_config="{token_config}",outcome="{outcome}",action="{action}",face="http"}}"#
    )
}

const API_VALID: Labels = ("api", "users", "valid", "allow");

/// The known mix: every kind of decision the three rules and the default
/// action can come to, several times over.
fn mix(keys: &Keys) -> Vec<Check> {
    let bearer = |token: &str| format!("Bearer {token}");
    let mut checks = Vec::new();
    let mut add = |count: usize, make: &dyn Fn(usize) -> Check| {
        checks.extend((0..count).map(make));
    };
    add(4, &|i| {
        let token = bearer(&keys.user(&format!("user-{i}")));
        Check::new("/v1/orders", &[("Authorization", &token)], API_VALID)
    });
    add(1, &|_| {
        let cookie = format!("theme=dark; session={}", keys.user("carol"));
        Check::new("/v1/orders/7", &[("Cookie", &cookie)], API_VALID)
    });
    add(1, &|_| {
        let path = format!("/v1/orders?access_token={}&page=2", keys.user("dave"));
        Check::new(&path, &[], API_VALID)
    });
    add(3, &|i| {
        let token = bearer(&keys.expired(&format!("old-{i}")));
        let labels = ("api", "users", "expired", "block");
        Check::new("/v1/orders", &[("Authorization", &token)], labels)
    });
    add(2, &|i| {
        let token = bearer(&keys.bad_signature(&format!("mallory-{i}")));
        let labels = ("api", "users", "bad_signature", "block");
        Check::new("/v1/orders", &[("Authorization", &token)], labels)
    });
    add(2, &|_| {
        Check::new("/v1/orders", &[], ("api", "", "missing", "block"))
    });
    add(1, &|_| {
        let token = bearer(&keys.unknown_kid("eve"));
        let labels = ("api", "users", "unknown_kid", "block");
        Check::new("/v1/orders", &[("Authorization", &token)], labels)
    });
    add(1, &|_| {
        let labels = ("api", "users", "malformed", "block");
        Check::new(
            "/v1/orders",
            &[("Authorization", "Bearer not-a-jwt")],
            labels,
        )
    });
    add(2, &|_| {
        Check::new("/v1/health", &[], ("api", "", "excluded", "allow"))
    });
    add(2, &|i| {
        let token = keys.service(&format!("svc-{i}"));
        let labels = ("internal", "service", "valid", "allow");
        Check::new("/internal/jobs", &[("X-Service-Token", &token)], labels)
    });
    add(1, &|_| {
        // A users token where a service token is expected: another issuer.
        let token = keys.user("alice");
        let labels = ("internal", "service", "wrong_issuer", "block");
        Check::new("/internal/jobs", &[("X-Service-Token", &token)], labels)
    });
    add(2, &|i| {
        let token = bearer(&keys.expired(&format!("beta-{i}")));
        let labels = ("beta", "users", "expired", "log");
        Check::new("/v2/search", &[("Authorization", &token)], labels)
    });
    add(1, &|_| {
        Check::new("/v2/search", &[], ("beta", "", "missing", "log"))
    });
    add(1, &|_| {
        let token = bearer(&keys.user("bob"));
        let labels = ("beta", "users", "valid", "allow");
        Check::new("/v2/search", &[("Authorization", &token)], labels)
    });
    add(2, &|_| {
        Check::new("/elsewhere", &[], ("", "", "no_rule", "block"))
    });
    add(1, &|_| {
        // A path that hides a slash: refused by the checker, not the HTTP layer.
        Check::new("/v1/a%2Fb", &[], ("", "", "bad_request", "block"))
    });
    checks
}

/// Keep-alive connections to the data port, at least `min` of them and
/// enough that both of the server's two shards accepted one. Each new
/// connection carries one request (a valid `api` one, returned in `sent`), so
/// that its acceptance is certain before `/metrics` is asked about it.
fn connections_on_both_shards(
    server: &Server,
    keys: &Keys,
    min: usize,
    sent: &mut Vec<Check>,
) -> Vec<Conn> {
    assert_eq!(server.shards(), 2, "{}", server.ready_line());
    let mut conns = Vec::new();
    while conns.len() < MAX_CONNECTIONS {
        let mut conn = Conn::open(server.addr());
        let token = format!("Bearer {}", keys.user(&format!("conn-{}", conns.len())));
        let check = Check::new("/v1/warm", &[("Authorization", &token)], API_VALID);
        check.run(&mut conn, server);
        sent.push(check);
        conns.push(conn);
        if conns.len() >= min {
            let accepted = samples(&scrape(server), "jwtgate_connections_accepted_total");
            if accepted.len() == 2 && accepted.values().all(|count| count != "0") {
                return conns;
            }
        }
    }
    panic!("{MAX_CONNECTIONS} connections and still one shard accepted none");
}

/// Sends `checks` round-robin over `conns`, asserting every answer.
fn run_round_robin(server: &Server, conns: &mut [Conn], checks: &[Check]) {
    for (index, check) in checks.iter().enumerate() {
        let conn = &mut conns[index % conns.len()];
        check.run(conn, server);
    }
}

/// Sends garbage on a fresh connection: the HTTP layer answers 400 and closes.
fn send_garbage(server: &Server) {
    let mut conn = Conn::open(server.addr());
    conn.send(b"hello world\r\n\r\n");
    let r = conn.read_response();
    assert_eq!(r.status, 400, "{}", r.head_text());
    assert_eq!(r.header("x-jwtgate-outcome"), None, "{}", r.head_text());
    conn.expect_eof();
}

/// `series -> count` over `checks`.
fn tally(checks: &[Check]) -> BTreeMap<String, String> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for check in checks {
        *counts.entry(check.series()).or_default() += 1;
    }
    counts
        .into_iter()
        .map(|(series, count)| (series, count.to_string()))
        .collect()
}

fn count_where(checks: &[Check], keep: impl Fn(&Check) -> bool) -> u64 {
    checks.iter().filter(|check| keep(check)).count() as u64
}

// ---------------------------------------------------------------------------
// The admin port
// ---------------------------------------------------------------------------

/// One `GET` on the admin port, on a fresh connection.
fn admin_get(server: &Server, path: &str) -> Response {
    let mut conn = Conn::open(server.admin_addr());
    conn.send(&request_bytes("GET", path, &[], b""));
    conn.try_read_response()
        .unwrap_or_else(|e| panic!("GET {path} on the admin port: {e}"))
}

/// `GET /metrics`: 200, the exposition format's content type, the text.
fn scrape(server: &Server) -> String {
    let r = admin_get(server, "/metrics");
    assert_eq!(r.status, 200, "{}", r.head_text());
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8"),
        "{}",
        r.head_text()
    );
    r.body_text().to_owned()
}

/// `GET /stats`, parsed.
fn stats(server: &Server) -> serde_json::Value {
    let r = admin_get(server, "/stats");
    assert_eq!(r.status, 200, "{}", r.head_text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("/stats is not JSON ({e}): {}", r.body_text()))
}

/// The samples of metric `name` (exactly; `name_bucket` is another metric):
/// `series (name and labels) -> value`, both as printed.
fn samples(text: &str, name: &str) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("sample line without a value: {line:?}"));
        if series.split('{').next() == Some(name) {
            let before = found.insert(series.to_owned(), value.to_owned());
            assert!(before.is_none(), "series {series} printed twice:\n{text}");
        }
    }
    found
}

/// The value of the one sample `series` (name and labels, as printed).
fn sample(text: &str, series: &str) -> String {
    let name = series.split('{').next().unwrap();
    samples(text, name)
        .remove(series)
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

/// Polls `/metrics` until `series` reads `value` (deadline [`POLL_TIMEOUT`]).
fn wait_for_sample(server: &Server, series: &str, value: &str) -> String {
    let deadline = Instant::now() + POLL_TIMEOUT;
    loop {
        let text = scrape(server);
        if sample(&text, series) == value {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{series} never became {value} within {POLL_TIMEOUT:?}:\n{text}\nstderr:\n{}",
            server.stderr_text()
        );
        std::thread::sleep(POLL);
    }
}

/// SIGTERM, a clean exit, and the whole of stderr (its last line included:
/// the pipe is drained by a thread, so the text is polled for it).
fn stop(server: &mut Server) -> String {
    server.sigterm();
    let status = server.wait_exit(EXIT_TIMEOUT);
    assert_eq!(status.code(), Some(0), "stderr: {}", server.stderr_text());
    let deadline = Instant::now() + POLL_TIMEOUT;
    loop {
        let text = server.stderr_text();
        if text.contains("jwtgate serve: stopped\n") {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no `stopped` line on stderr:\n{text}"
        );
        std::thread::sleep(POLL);
    }
}

// ---------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------

/// The issue's "done when": after a known mix over several keep-alive
/// connections and both shards, every `jwtgate_requests_total` series holds
/// exactly its count and no other series exists; `/stats` says the same;
/// the histograms counted every answered check request (the verification one
/// only those whose tokens were checked); the malformed HTTP request is a
/// protocol error and nothing else.
fn exact_counts_after_a_known_mix(io: &str) {
    let env = Env::new();
    // The flag wins over the file's `[server]` table.
    let server = env.serve(io, &config("shards = 1"), &["--shards", "2"]);

    // Before any traffic: no request series, gauges at their start values.
    let text = scrape(&server);
    assert_eq!(samples(&text, "jwtgate_requests_total"), BTreeMap::new());
    assert_eq!(sample(&text, "jwtgate_shards"), "2");
    assert_eq!(sample(&text, "jwtgate_ready"), "1");
    assert_eq!(sample(&text, "jwtgate_draining"), "0");
    assert_eq!(sample(&text, "jwtgate_config_generation"), "1");

    let mut sent = Vec::new();
    let mut conns = connections_on_both_shards(&server, &env.keys, 4, &mut sent);
    let checks = mix(&env.keys);
    run_round_robin(&server, &mut conns, &checks);
    send_garbage(&server);
    sent.extend(checks);
    let expected = tally(&sent);
    let answered = sent.len() as u64;
    let verified = count_where(&sent, Check::verified);

    // Counters are counted before the answer is written, so they are exact as
    // soon as the answers arrived. The request histogram is recorded when the
    // shard sees its write complete, which can come just after the client has
    // read the answer: wait (boundedly) for it to catch up.
    let text = wait_for_sample(
        &server,
        "jwtgate_request_duration_seconds_count",
        &answered.to_string(),
    );
    assert_eq!(
        samples(&text, "jwtgate_requests_total"),
        expected,
        "requests_total differs; the whole scrape:\n{text}"
    );
    let mut protocol_errors = BTreeMap::new();
    for status in ["400", "408", "413", "414", "431", "500", "501"] {
        let count = if status == "400" { "1" } else { "0" };
        protocol_errors.insert(
            format!(r#"jwtgate_protocol_errors_total{{code="{status}"}}"#),
            count.to_owned(),
        );
    }
    assert_eq!(
        samples(&text, "jwtgate_protocol_errors_total"),
        protocol_errors
    );
    for histogram in ["request", "verification"] {
        let count = if histogram == "request" {
            answered
        } else {
            verified
        };
        let name = format!("jwtgate_{histogram}_duration_seconds");
        assert_eq!(
            sample(&text, &format!("{name}_count")),
            count.to_string(),
            "{text}"
        );
        assert_eq!(
            sample(&text, &format!(r#"{name}_bucket{{le="+Inf"}}"#)),
            count.to_string(),
            "{text}"
        );
        // Buckets are cumulative: never decreasing, ending at the count.
        let buckets: Vec<u64> = text
            .lines()
            .filter(|line| line.starts_with(&format!("{name}_bucket{{")))
            .map(|line| line.rsplit_once(' ').unwrap().1.parse().unwrap())
            .collect();
        assert_eq!(buckets.len(), 20, "{text}");
        assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{text}");
    }
    // Accepted: ours, the garbage one, and the harness's start-up probe
    // (`Server::start` connects once to confirm the port). The probe was queued
    // before any of ours, and both shards have accepted one of ours since, so
    // it has been accepted too, whichever shard it went to.
    let accepted: u64 = samples(&text, "jwtgate_connections_accepted_total")
        .values()
        .map(|v| v.parse::<u64>().unwrap())
        .sum();
    assert_eq!(accepted, conns.len() as u64 + 2, "{text}");
    // Open: the data connections kept, plus perhaps the garbage one, which the
    // server may not have finished closing.
    let open: u64 = samples(&text, "jwtgate_connections_open")
        .values()
        .map(|v| v.parse::<u64>().unwrap())
        .sum();
    assert!(
        (conns.len() as u64..=conns.len() as u64 + 1).contains(&open),
        "{open} open connections for {} kept:\n{text}",
        conns.len()
    );
    assert_eq!(
        sample(&text, r#"jwtgate_token_config_keys{token_config="users"}"#),
        "1"
    );
    assert_eq!(
        sample(
            &text,
            r#"jwtgate_token_config_keys{token_config="service"}"#
        ),
        "1"
    );
    assert_eq!(
        sample(
            &text,
            &format!(
                r#"jwtgate_build_info{{version="{}",io="{io}"}}"#,
                env!("CARGO_PKG_VERSION")
            )
        ),
        "1"
    );
    // No access log, no dropped-lines family.
    assert!(!text.contains("jwtgate_access_log_dropped_lines_total"));

    // A second scrape reads the same counts: collecting does not reset them.
    assert_eq!(
        samples(&scrape(&server), "jwtgate_requests_total"),
        expected
    );

    // /stats: the same totals.
    let stats = stats(&server);
    assert_eq!(stats["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(stats["io"], io);
    assert_eq!(stats["shards"], 2);
    assert_eq!(stats["ready"], true);
    assert_eq!(stats["draining"], false);
    assert_eq!(stats["config_generation"], 1);
    assert_eq!(stats["reloads"], 0);
    assert_eq!(stats["failed_reloads"], 0);
    let requests = &stats["requests"];
    assert_eq!(requests["total"], answered, "{stats}");
    for action in ["allow", "block", "log"] {
        let count = count_where(&sent, |check| check.action == action);
        assert_eq!(requests["by_action"][action], count, "{action}: {stats}");
    }
    let mut by_outcome = serde_json::Map::new();
    for check in &sent {
        let count = count_where(&sent, |other| other.outcome == check.outcome);
        by_outcome.insert(check.outcome.to_owned(), count.into());
    }
    assert_eq!(
        requests["by_outcome"],
        serde_json::Value::Object(by_outcome),
        "{stats}"
    );
    let counters: BTreeMap<String, String> = stats["counters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let text = |field: &str| row[field].as_str().unwrap().to_owned();
            assert_eq!(text("face"), "http", "{stats}");
            (
                series(
                    &text("rule"),
                    &text("token_config"),
                    &text("outcome"),
                    &text("action"),
                ),
                row["count"].to_string(),
            )
        })
        .collect();
    assert_eq!(counters, expected, "{stats}");
    for (histogram, count) in [("request", answered), ("verification", verified)] {
        let latency = &stats["latency_us"][histogram];
        assert_eq!(latency["count"], count, "{stats}");
        let ordered: Vec<f64> = ["p50", "p90", "p99", "p99.9", "max"]
            .into_iter()
            .map(|name| latency[name].as_f64().unwrap())
            .collect();
        assert!(ordered[0] > 0.0, "{histogram}: {latency}");
        assert!(
            ordered.windows(2).all(|w| w[0] <= w[1]),
            "{histogram} percentiles out of order: {latency}"
        );
    }
    assert!(stats["uptime_seconds"].as_f64().unwrap() > 0.0, "{stats}");
    for (status, count) in stats["protocol_errors"].as_object().unwrap() {
        let want = u64::from(status == "400");
        assert_eq!(count, &serde_json::Value::from(want), "{status}: {stats}");
    }
    assert_eq!(stats["protocol_errors"].as_object().unwrap().len(), 7);
    assert_eq!(stats["connections"]["accepted"], conns.len() as u64 + 2);
    assert_eq!(stats["keys"], serde_json::json!({"users": 1, "service": 1}));
}

/// The promtool executable, or `None` when the test is to be skipped; panics
/// when it is missing and skipping was not asked for.
#[allow(clippy::print_stderr)]
/// `promtool check metrics` (which lints as well as parses) accepts a scrape
/// with every family present: request series, both histograms, and the
/// access log's dropped-lines counter. It prints nothing and exits 0.
fn promtool_accepts_the_exposition(io: &str) {
    let Some(promtool) = common::promtool("metrics") else {
        return;
    };
    let env = Env::new();
    let log = env.dir.path("access.log");
    let server = env.serve(
        io,
        &config("shards = 2"),
        &["--access-log", log.to_str().unwrap()],
    );
    let mut conns = vec![Conn::open(server.addr()), Conn::open(server.addr())];
    run_round_robin(&server, &mut conns, &mix(&env.keys));
    send_garbage(&server);
    let text = scrape(&server);
    assert!(
        text.contains("\njwtgate_access_log_dropped_lines_total 0\n"),
        "{text}"
    );
    assert!(text.contains("\njwtgate_verification_duration_seconds_count "));

    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", promtool.display()));
    let mut stdin = child.stdin.take().unwrap();
    let input = text.clone();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && said.is_empty(),
        "promtool check metrics: {} saying {said:?}\non:\n{text}",
        output.status
    );
}

/// The fields of every access-log line, in order.
const LOG_FIELDS: [&str; 15] = [
    "time",
    "shard",
    "face",
    "method",
    "host",
    "path",
    "rule",
    "token_config",
    "outcome",
    "action",
    "status",
    "kid",
    "sub",
    "latency_us",
    "reason",
];

/// Reads the access log: one JSON object per line, each with exactly
/// [`LOG_FIELDS`].
fn read_log(path: &Path) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("access log {}: {e}", path.display()));
    text.lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("access-log line is not JSON ({e}): {line:?}"));
            let object = value.as_object().unwrap_or_else(|| panic!("{line:?}"));
            let fields: BTreeSet<&str> = object.keys().map(String::as_str).collect();
            assert_eq!(
                fields,
                LOG_FIELDS.into_iter().collect::<BTreeSet<_>>(),
                "{line:?}"
            );
            // In that order, too (a stable line for grep and cut).
            let mut at = 0;
            for field in LOG_FIELDS {
                let position = line[at..]
                    .find(&format!("\"{field}\":"))
                    .unwrap_or_else(|| panic!("{field} out of order in {line:?}"));
                at += position;
            }
            object.clone()
        })
        .collect()
}

/// Tokens in every source (header, cookie, query), valid and refused, in the
/// query of paths where they are no source, and in headers nobody reads:
/// neither the access log nor stderr (periodic and shutdown summaries
/// included) ever holds a token or one of its segments. The log is
/// configured in the `[server]` table; its lines have the contract's fields,
/// and the right kid, sub and outcome.
fn tokens_are_never_logged(io: &str) {
    let env = Env::new();
    let log = env.dir.path("access.log");
    let server_table = format!(
        "shards = 2\naccess_log = \"{}\"\nsummary_interval = \"1s\"",
        log.display()
    );
    let mut server = env.serve(io, &config(&server_table), &[]);
    let keys = &env.keys;
    let valid = keys.user("alice");
    let expired = keys.expired("bob");
    let bad = keys.bad_signature("mallory");
    let unknown = keys.unknown_kid("eve");
    let service = keys.service("batch");
    let tokens = [&valid, &expired, &bad, &unknown, &service];
    let bearer = |token: &str| format!("Bearer {token}");
    let cookie = |token: &str| format!("session={token}");
    let query = |path: &str, token: &str| format!("{path}?access_token={token}");
    let mut checks = Vec::new();
    for (token, outcome, action) in [
        (&valid, "valid", "allow"),
        (&expired, "expired", "block"),
        (&bad, "bad_signature", "block"),
        (&unknown, "unknown_kid", "block"),
    ] {
        let labels = ("api", "users", outcome, action);
        checks.push(Check::new(
            "/v1/orders",
            &[("Authorization", &bearer(token))],
            labels,
        ));
        checks.push(Check::new(
            "/v1/orders",
            &[("Cookie", &cookie(token))],
            labels,
        ));
        checks.push(Check::new(&query("/v1/orders", token), &[], labels));
        // On the log-mode rule a refusal is let through, and still logged.
        let beta = if outcome == "valid" {
            ("beta", "users", "valid", "allow")
        } else {
            ("beta", "users", outcome, "log")
        };
        checks.push(Check::new(&query("/v2/search", token), &[], beta));
    }
    checks.push(Check::new(
        "/internal/jobs",
        &[("X-Service-Token", &service)],
        ("internal", "service", "valid", "allow"),
    ));
    // Tokens where nothing reads them: the query of an excluded path, of a
    // path no rule matches, another parameter, a header no source names.
    checks.push(Check::new(
        &query("/v1/health", &valid),
        &[],
        ("api", "", "excluded", "allow"),
    ));
    checks.push(Check::new(
        &query("/elsewhere", &unknown),
        &[],
        ("", "", "no_rule", "block"),
    ));
    checks.push(Check::new(
        &format!("/v1/orders?token={bad}&x={expired}"),
        &[("X-Debug", &valid)],
        ("api", "", "missing", "block"),
    ));
    checks.push(Check::new(
        &format!("/internal/jobs?access_token={service}"),
        &[("Authorization", &bearer(&service))],
        ("internal", "", "missing", "block"),
    ));
    let mut conns = vec![Conn::open(server.addr()), Conn::open(server.addr())];
    run_round_robin(&server, &mut conns, &checks);
    drop(conns);
    let stderr = stop(&mut server);

    let lines = read_log(&log);
    assert_eq!(lines.len(), checks.len(), "one line per request");
    let text = std::fs::read_to_string(&log).unwrap();
    for token in tokens {
        let segments: Vec<&str> = token.split('.').collect();
        let (payload, signature) = (segments[1], segments[2]);
        let signing_input = &token[..token.rfind('.').unwrap()];
        for (what, secret) in [
            ("token", token.as_str()),
            ("signed part", signing_input),
            ("payload", payload),
            ("signature", signature),
        ] {
            assert!(
                !text.contains(secret),
                "the access log holds a {what}: {secret}\n{text}"
            );
            assert!(
                !stderr.contains(secret),
                "stderr holds a {what}: {secret}\n{stderr}"
            );
        }
    }

    // Lines are in request order per shard, not overall: match them up by
    // their labels instead. Every request has its line.
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for check in &checks {
        *expected.entry(check.series()).or_default() += 1;
    }
    let mut logged: BTreeMap<String, u64> = BTreeMap::new();
    for line in &lines {
        let text = |field: &str| line[field].as_str().unwrap_or_default().to_owned();
        *logged
            .entry(series(
                &text("rule"),
                &text("token_config"),
                &text("outcome"),
                &text("action"),
            ))
            .or_default() += 1;
        assert_eq!(line["method"], "GET");
        assert_eq!(line["host"], "jwtgate.test");
        let path = text("path");
        assert!(!path.contains('?'), "query logged: {line:?}");
        let shard = line["shard"].as_u64().unwrap();
        assert!(shard < 2, "{line:?}");
        assert!(line["latency_us"].as_f64().unwrap() >= 0.0, "{line:?}");
        // A reason whenever something failed, none when nothing did.
        let passed = match text("outcome").as_str() {
            "valid" | "excluded" | "preflight" => true,
            "no_rule" => line["status"] == 200,
            _ => false,
        };
        assert_eq!(line["reason"].is_null(), passed, "{line:?}");
        let time = text("time");
        assert!(
            time.len() >= 20 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
            "time {time:?} is not RFC 3339 UTC"
        );
        // kid: the token's claim, also when refused; sub: verified tokens only.
        let (kid, sub) = match (text("rule").as_str(), text("outcome").as_str()) {
            ("internal", "valid") => (Some(KID_RSA), Some("batch")),
            (_, "valid") => (Some(KID_RSA), Some("alice")),
            (_, "expired" | "bad_signature") => (Some(KID_RSA), None),
            (_, "unknown_kid") => (Some(KID_UNKNOWN), None),
            _ => (None, None),
        };
        assert_eq!(line["kid"].as_str(), kid, "{line:?}");
        assert_eq!(line["sub"].as_str(), sub, "{line:?}");
        let status = line["status"].as_u64().unwrap();
        let want = match (text("outcome").as_str(), text("action").as_str()) {
            ("no_rule", _) => 403,
            (_, "block") => 401,
            _ => 200,
        };
        assert_eq!(status, want, "{line:?}");
        let path_ok = match text("rule").as_str() {
            "api" => path == "/v1/orders" || path == "/v1/health",
            "beta" => path == "/v2/search",
            "internal" => path == "/internal/jobs",
            _ => path == "/elsewhere",
        };
        assert!(path_ok, "{line:?}");
    }
    assert_eq!(logged, expected);
}

/// `--access-log-sample 0.5` over 400 requests logs about half: the count is
/// Binomial(400, 1/2) (mean 200, standard deviation 10), so outside
/// (100, 300) is ten deviations out, odds far below 1e-9.
fn access_log_is_sampled(io: &str) {
    const REQUESTS: usize = 400;
    let env = Env::new();
    let log = env.dir.path("sampled.log");
    let mut server = env.serve(
        io,
        &config("shards = 2"),
        &[
            "--access-log",
            log.to_str().unwrap(),
            "--access-log-sample",
            "0.5",
        ],
    );
    let token = format!("Bearer {}", env.keys.user("alice"));
    let checks: Vec<Check> = (0..REQUESTS)
        .map(|i| {
            if i % 2 == 0 {
                Check::new("/v1/orders", &[("Authorization", &token)], API_VALID)
            } else {
                Check::new("/v1/orders", &[], ("api", "", "missing", "block"))
            }
        })
        .collect();
    let mut conns: Vec<Conn> = (0..4).map(|_| Conn::open(server.addr())).collect();
    run_round_robin(&server, &mut conns, &checks);
    // Sampling applies to the log only: every request is counted.
    let text = scrape(&server);
    assert_eq!(samples(&text, "jwtgate_requests_total"), tally(&checks));
    assert_eq!(sample(&text, "jwtgate_access_log_dropped_lines_total"), "0");
    drop(conns);
    stop(&mut server);
    let lines = read_log(&log);
    assert!(
        (101..300).contains(&lines.len()),
        "{} of {REQUESTS} requests logged at a 0.5 sample rate",
        lines.len()
    );
}

/// `/readyz` is 200 once serving; a reload that loads moves the generation
/// from 1 to 2 and stamps its time; one that does not load counts a failure
/// and leaves the generation (and the policy) alone; a shutdown with a drain
/// delay turns `/readyz` 503 while requests are still answered.
fn readiness_and_reload_generation(io: &str) {
    let env = Env::new();
    let first = config("shards = 1");
    let mut server = env.serve(io, &first, &["--drain-delay", "2"]);
    let r = admin_get(&server, "/readyz");
    assert_eq!((r.status, r.body_text()), (200, "ready\n"));
    assert_eq!(r.header("content-type"), Some("text/plain"));
    let text = scrape(&server);
    for (series, value) in [
        ("jwtgate_config_generation", "1"),
        (r#"jwtgate_config_reloads_total{result="success"}"#, "0"),
        (r#"jwtgate_config_reloads_total{result="failure"}"#, "0"),
        ("jwtgate_config_last_reload_success_timestamp_seconds", "0"),
        ("jwtgate_ready", "1"),
    ] {
        assert_eq!(sample(&text, series), value, "{series}\n{text}");
    }
    let start: f64 = sample(&text, "jwtgate_start_time_seconds").parse().unwrap();
    assert!(start > 1.6e9, "start time {start}");
    let health = Check::new("/v1/health", &[], ("api", "", "excluded", "allow"));
    let mut conn = Conn::open(server.addr());
    health.run(&mut conn, &server);

    // A valid change (same size: only the SIGHUP reloads it).
    let second = first.replace(r#"exclude = ["/v1/health"]"#, r#"exclude = ["/v1/public"]"#);
    assert_ne!(first, second);
    rewrite_unnoticed(&env.config_path(), &second);
    server.sighup();
    let text = wait_for_sample(&server, "jwtgate_config_generation", "2");
    assert_eq!(
        sample(&text, r#"jwtgate_config_reloads_total{result="success"}"#),
        "1"
    );
    assert_eq!(
        sample(&text, r#"jwtgate_config_reloads_total{result="failure"}"#),
        "0"
    );
    let stamped: f64 = sample(
        &text,
        "jwtgate_config_last_reload_success_timestamp_seconds",
    )
    .parse()
    .unwrap();
    assert!(
        stamped >= start.floor(),
        "reload stamped {stamped}, start {start}"
    );
    // In force: /v1/health is checked now, on the connection opened before.
    let now_checked = Check::new("/v1/health", &[], ("api", "", "missing", "block"));
    now_checked.run(&mut conn, &server);

    // A change that does not load (a rule action that does not exist).
    let broken = second.replace(r#"action = "block""#, r#"action = "deny!""#);
    assert_ne!(broken, second);
    rewrite_unnoticed(&env.config_path(), &broken);
    server.sighup();
    let text = wait_for_sample(
        &server,
        r#"jwtgate_config_reloads_total{result="failure"}"#,
        "1",
    );
    assert_eq!(sample(&text, "jwtgate_config_generation"), "2");
    assert_eq!(
        sample(&text, r#"jwtgate_config_reloads_total{result="success"}"#),
        "1"
    );
    assert_eq!(sample(&text, "jwtgate_ready"), "1");
    let numbers = stats(&server);
    assert_eq!(
        (
            &numbers["config_generation"],
            &numbers["reloads"],
            &numbers["failed_reloads"]
        ),
        (&2.into(), &1.into(), &1.into()),
        "{numbers}"
    );
    // The running policy stays.
    now_checked.run(&mut conn, &server);
    let r = admin_get(&server, "/readyz");
    assert_eq!((r.status, r.body_text()), (200, "ready\n"));
    // Both the policy before and after the reload counted under one name.
    assert_eq!(
        samples(&text, "jwtgate_requests_total"),
        BTreeMap::from([
            (health.series(), "1".to_owned()),
            (now_checked.series(), "1".to_owned()),
        ])
    );

    // Shutdown: /readyz turns 503 during the drain delay, /healthz too.
    server.sigterm();
    let deadline = Instant::now() + POLL_TIMEOUT;
    loop {
        let r = admin_get(&server, "/readyz");
        if r.status == 503 {
            assert_eq!(r.body_text(), "not ready: draining\n");
            break;
        }
        assert_eq!((r.status, r.body_text()), (200, "ready\n"));
        assert!(
            Instant::now() < deadline,
            "/readyz never reported draining after SIGTERM"
        );
        std::thread::sleep(POLL);
    }
    let text = scrape(&server);
    assert_eq!(sample(&text, "jwtgate_ready"), "0");
    assert_eq!(sample(&text, "jwtgate_draining"), "1");
    assert_eq!(stats(&server)["ready"], false);
    let r = admin_get(&server, "/healthz");
    assert_eq!((r.status, r.body_text()), (503, "draining\n"));
    let exit = server.wait_exit(EXIT_TIMEOUT);
    assert_eq!(exit.code(), Some(0), "{}", server.stderr_text());
}

/// `--no-metrics`: no request is counted or timed, but the gauges and the
/// connection counters are there.
fn no_metrics_keeps_only_the_gauges(io: &str) {
    counts_nothing(io, "shards = 1", &["--no-metrics"]);
}

/// `metrics = false` in the `[server]` table is `--no-metrics`.
#[test]
fn metrics_false_in_the_server_table_counts_nothing() {
    counts_nothing("epoll", "shards = 1\nmetrics = false", &[]);
}

/// Serves with counting turned off by `server_table` or `extra`; checks that
/// only the gauges and connection counters are there after a mix.
fn counts_nothing(io: &str, server_table: &str, extra: &[&str]) {
    let env = Env::new();
    let server = env.serve(io, &config(server_table), extra);
    let mut conns = vec![Conn::open(server.addr()), Conn::open(server.addr())];
    run_round_robin(&server, &mut conns, &mix(&env.keys));
    let text = scrape(&server);
    assert_eq!(
        samples(&text, "jwtgate_requests_total"),
        BTreeMap::new(),
        "{text}"
    );
    for absent in [
        "jwtgate_request_duration_seconds",
        "jwtgate_verification_duration_seconds",
    ] {
        assert!(!text.contains(absent), "{absent} present:\n{text}");
    }
    assert_eq!(
        sample(
            &text,
            &format!(
                r#"jwtgate_build_info{{version="{}",io="{io}"}}"#,
                env!("CARGO_PKG_VERSION")
            )
        ),
        "1"
    );
    // Ours and the harness's start-up probe, queued before them on the one
    // shard (so accepted before them).
    assert_eq!(
        samples(&text, "jwtgate_connections_accepted_total"),
        BTreeMap::from([(
            r#"jwtgate_connections_accepted_total{shard="0"}"#.to_owned(),
            "3".to_owned()
        )])
    );
    assert_eq!(sample(&text, "jwtgate_ready"), "1");
    assert_eq!(sample(&text, "jwtgate_config_generation"), "1");
    let stats = stats(&server);
    assert_eq!(stats["requests"]["total"], 0, "{stats}");
    assert_eq!(stats["requests"]["by_outcome"], serde_json::json!({}));
    assert_eq!(stats["counters"], serde_json::json!([]));
    assert_eq!(stats["latency_us"]["request"]["count"], 0);
    assert_eq!(stats["connections"]["accepted"], 3);
    // The cache runs, but nothing of it is counted: null, never "capacity 0",
    // which would read as a cache that is off.
    assert_eq!(stats["token_cache"], serde_json::Value::Null, "{stats}");
    assert!(!text.contains("jwtgate_token_cache_capacity"), "{text}");
}

/// At shutdown stderr gets exactly one `jwtgate summary (since start, …)`
/// line, with the number of requests, the actions and the outcomes.
fn shutdown_summary_counts_every_request(io: &str) {
    let env = Env::new();
    let mut server = env.serve(io, &config("shards = 2"), &[]);
    let keys = &env.keys;
    let bearer = |token: &str| format!("Bearer {token}");
    let checks = vec![
        Check::new(
            "/v1/orders",
            &[("Authorization", &bearer(&keys.user("alice")))],
            API_VALID,
        ),
        Check::new(
            "/v1/orders",
            &[("Authorization", &bearer(&keys.user("bob")))],
            API_VALID,
        ),
        Check::new(
            "/v1/orders",
            &[("Authorization", &bearer(&keys.user("carol")))],
            API_VALID,
        ),
        Check::new(
            "/v1/orders",
            &[("Authorization", &bearer(&keys.expired("dave")))],
            ("api", "users", "expired", "block"),
        ),
        Check::new(
            "/v2/x",
            &[("Authorization", &bearer(&keys.expired("erin")))],
            ("beta", "users", "expired", "log"),
        ),
        Check::new("/v1/orders", &[], ("api", "", "missing", "block")),
        Check::new("/nowhere", &[], ("", "", "no_rule", "block")),
    ];
    let mut conns = vec![Conn::open(server.addr()), Conn::open(server.addr())];
    run_round_robin(&server, &mut conns, &checks);
    drop(conns);
    let stderr = stop(&mut server);
    let summaries: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("jwtgate summary (since start,"))
        .collect();
    assert_eq!(summaries.len(), 1, "{stderr}");
    let (_, counts) = summaries[0]
        .split_once("): ")
        .unwrap_or_else(|| panic!("{:?}", summaries[0]));
    assert!(counts.starts_with("7 requests, "), "{counts:?}");
    assert!(counts.contains("; allow 3, block 3, log 1; "), "{counts:?}");
    // Outcomes by count, most first, ties by name.
    assert!(
        counts.contains("; valid 3, expired 2, missing 1, no_rule 1"),
        "{counts:?}"
    );
    // No periodic summary was asked for.
    assert!(!stderr.contains("jwtgate summary (last"), "{stderr}");
}

/// `--summary-interval 1`: a `jwtgate summary (last …)` line per interval
/// on stderr, each counting the requests of its window only, so that over
/// the windows every request is counted once (the windows are summed rather
/// than the first one read, which a slow start could close before the
/// requests arrive).
fn periodic_summary_counts_each_window(io: &str) {
    let env = Env::new();
    let mut server = env.serve(io, &config("shards = 2"), &["--summary-interval", "1"]);
    let token = format!("Bearer {}", env.keys.user("alice"));
    let checks = vec![
        Check::new("/v1/orders", &[("Authorization", &token)], API_VALID),
        Check::new("/v1/orders", &[("Authorization", &token)], API_VALID),
        Check::new("/v1/orders", &[], ("api", "", "missing", "block")),
    ];
    let mut conns = vec![Conn::open(server.addr())];
    run_round_robin(&server, &mut conns, &checks);
    let windows = |stderr: &str| -> Vec<u64> {
        stderr
            .lines()
            .filter_map(|line| line.strip_prefix("jwtgate summary (last "))
            .map(|rest| {
                let (_, counts) = rest.split_once("): ").unwrap();
                let (requests, _) = counts.split_once(" requests, ").unwrap();
                requests.parse().unwrap()
            })
            .collect()
    };
    let deadline = Instant::now() + POLL_TIMEOUT;
    loop {
        let stderr = server.stderr_text();
        let counted: u64 = windows(&stderr).iter().sum();
        assert!(counted <= 3, "a request counted twice:\n{stderr}");
        if counted == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "periodic summaries never counted the 3 requests:\n{stderr}"
        );
        std::thread::sleep(POLL);
    }
    // One more window passes with nothing in it, and says so.
    let deadline = Instant::now() + POLL_TIMEOUT;
    let stderr = loop {
        let stderr = server.stderr_text();
        if windows(&stderr).last() == Some(&0) {
            break stderr;
        }
        assert!(
            Instant::now() < deadline,
            "no empty window reported:\n{stderr}"
        );
        std::thread::sleep(POLL);
    };
    assert_eq!(windows(&stderr).iter().sum::<u64>(), 3, "{stderr}");
    drop(conns);
    // The shutdown summary counts since start, across the windows.
    let stderr = stop(&mut server);
    let last = stderr
        .lines()
        .find(|line| line.starts_with("jwtgate summary (since start,"))
        .unwrap_or_else(|| panic!("no shutdown summary:\n{stderr}"));
    assert!(last.contains("): 3 requests, "), "{last:?}");
}

/// Admin paths answer GET only; other methods get 405 with `Allow`.
fn admin_paths_refuse_other_methods(io: &str) {
    let env = Env::new();
    let server = env.serve(io, &config("shards = 1"), &[]);
    for path in ["/metrics", "/stats", "/readyz", "/healthz"] {
        let mut conn = Conn::open(server.admin_addr());
        let r = conn.request(&request_bytes("POST", path, &[], b""));
        assert_eq!(r.status, 405, "POST {path}: {}", r.head_text());
        assert_eq!(r.header("allow"), Some("GET, HEAD"), "{}", r.head_text());
    }
    // The admin port is not counted as check traffic: no request, and no
    // connection but perhaps the harness's start-up probe of the data port.
    let text = scrape(&server);
    assert_eq!(samples(&text, "jwtgate_requests_total"), BTreeMap::new());
    let accepted = sample(&text, r#"jwtgate_connections_accepted_total{shard="0"}"#);
    assert!(accepted == "0" || accepted == "1", "{text}");
}

// ---------------------------------------------------------------------------
// One test per scenario and I/O backend
// ---------------------------------------------------------------------------

macro_rules! for_each_io {
    ($($name:ident),* $(,)?) => {
        mod uring {
            $( #[test] fn $name() { super::$name("uring"); } )*
        }
        mod epoll {
            $( #[test] fn $name() { super::$name("epoll"); } )*
        }
    };
}

/// The latency histograms as HdrHistogram percentile distributions (what
/// `scripts/plot-latency.py` reads), and log rotation: after the file is
/// moved away and SIGHUP sent, new lines go to a new file of the same name.
fn histograms_and_log_rotation(io: &str) {
    let env = Env::new();
    let log = env.dir.path("access.log");
    let server_table = format!("shards = 1\naccess_log = \"{}\"", log.display());
    let mut server = env.serve(io, &config(&server_table), &[]);
    let bearer = format!("Bearer {}", env.keys.user("alice"));
    let before = Check::new("/v1/before", &[("Authorization", &bearer)], API_VALID);
    let after = Check::new("/v1/after", &[("Authorization", &bearer)], API_VALID);
    let mut conns = vec![Conn::open(server.addr())];
    run_round_robin(
        &server,
        &mut conns,
        &[before.clone(), before.clone(), before],
    );
    wait_for_sample(&server, "jwtgate_request_duration_seconds_count", "3");
    for name in ["request", "verification"] {
        let r = admin_get(&server, &format!("/stats/{name}.hgrm"));
        assert_eq!(r.status, 200, "{}", r.head_text());
        let text = r.body_text();
        assert!(
            text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)"),
            "{text}"
        );
        assert!(
            text.contains("Total count    =            3]"),
            "{name}: {text}"
        );
    }

    let rotated = env.dir.path("access.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    server.sighup();
    // The SIGHUP was handled once the reload it also asked for is counted.
    wait_for_sample(
        &server,
        r#"jwtgate_config_reloads_total{result="success"}"#,
        "1",
    );
    run_round_robin(&server, &mut conns, &[after.clone(), after]);
    drop(conns);
    stop(&mut server);
    let paths = |file: &Path| -> Vec<String> {
        read_log(file)
            .iter()
            .map(|line| line["path"].as_str().unwrap().to_owned())
            .collect()
    };
    let (old, new) = (paths(&rotated), paths(&log));
    // Lines of before the rotation may still have been buffered when it
    // happened; every line after it is in the new file, and none is lost.
    assert!(old.iter().all(|path| path == "/v1/before"), "{old:?}");
    assert_eq!(
        new.iter().filter(|path| *path == "/v1/after").count(),
        2,
        "{new:?}"
    );
    assert_eq!(old.len() + new.len(), 5, "{old:?} {new:?}");
}

for_each_io!(
    exact_counts_after_a_known_mix,
    promtool_accepts_the_exposition,
    tokens_are_never_logged,
    no_metrics_keeps_only_the_gauges,
    shutdown_summary_counts_every_request,
    admin_paths_refuse_other_methods,
    histograms_and_log_rotation,
);

// Slower (a drain delay) or heavier: once, on the default backend of the tests.
#[test]
fn readiness_and_reload_generation_epoll() {
    readiness_and_reload_generation("epoll");
}

#[test]
fn periodic_summary_counts_each_window_epoll() {
    periodic_summary_counts_each_window("epoll");
}

#[test]
fn access_log_is_sampled_uring() {
    access_log_is_sampled("uring");
}
