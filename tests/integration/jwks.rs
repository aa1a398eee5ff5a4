//! Integration tests of remote key sets (issue 7) through the real binary:
//! `jwks_url` and `issuer_discovery` fetched over HTTPS from a local test
//! server (`common/https.rs`: its own CA, written beside the configuration as
//! `ca.pem`). Rotation picked up on an unknown `kid` (also from the batch
//! endpoint) and by `Cache-Control: max-age`; the refetch throttle under a
//! flood of unknown `kid`s; stale-if-error while the server is down, then
//! `keys_unavailable` after `max_stale`; bad, oversized, unusable and slow
//! answers (old keys kept); start-up with and without keys; an untrusted
//! server certificate; configuration errors; reloads that keep the fetched
//! keys, add a source, rotate the CA file, or are refused.
//!
//! Every jwtgate runs on ephemeral loopback ports (harness in
//! `common/server.rs`) with the token clock pinned by `--now`; the JWKS
//! server runs on `127.0.0.1:0` and nothing leaves loopback. Intervals are
//! small (`min_refetch_interval = "1s"`, `startup_timeout = "2s"`), and every
//! wait polls the observable effect (an answer, `/metrics`, stderr, the JWKS
//! server's request count) with a deadline: nothing sleeps for readiness.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::TempDir;
use common::https::{Ca, HttpsServer, Reply};
use common::server::{
    Client, Conn, Response, Server, request_bytes, run_jwtgate, run_jwtgate_bounded,
};
use common::{mint, rewrite_unnoticed, signing_key};
use jwtgate::Algorithm;
use jwtgate::internals::SigningKey;

/// The pinned token clock, as `--now` takes it.
const NOW: &str = "1700000000";
const T: i64 = 1_700_000_000;
/// Issuer of the `users` token configuration (when it does no discovery).
const ISS: &str = "https://idp.test/";
const AUD: &str = "api";
/// Where the test server publishes the key set.
const JWKS: &str = "/jwks.json";
const DISCOVERY: &str = "/.well-known/openid-configuration";

/// The intervals most tests run with.
const FAST: &str = r#"min_refetch_interval = "1s"
fetch_timeout = "1s"
startup_timeout = "2s"
"#;

/// Bound on any awaited effect (a refetch, an expiry, a reload, a log line).
const POLL_TIMEOUT: Duration = Duration::from_secs(20);
/// Interval between two polls.
const POLL: Duration = Duration::from_millis(20);
/// Bound on a run of the binary expected to exit by itself.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Keys, tokens, configurations
// ---------------------------------------------------------------------------

/// `{"keys":[...]}` of these JWKs.
fn jwks(keys: &[String]) -> String {
    format!(r#"{{"keys":[{}]}}"#, keys.join(","))
}

/// `rsa2048-a` as an RS256 JWK named `kid`: rotations here change kids over
/// one key pair, which is all the key manager can tell apart.
fn rsa(kid: &str) -> String {
    common::rsa_jwk(kid)
}

fn ok() -> (u16, String) {
    (200, "valid".to_owned())
}

fn refused(outcome: &str) -> (u16, String) {
    (401, outcome.to_owned())
}

/// A scratch directory with `ca.pem`, a JWKS server whose certificate that CA
/// signed, and the signing keys.
struct Env {
    dir: TempDir,
    https: HttpsServer,
    rsa: SigningKey,
    ed: SigningKey,
}

impl Env {
    fn new(label: &str) -> Env {
        let dir = TempDir::new(&format!("jwks-{label}"));
        let ca = Ca::new(label);
        dir.write("ca.pem", ca.pem());
        Env {
            dir,
            https: HttpsServer::start(&ca),
            rsa: signing_key("rsa2048-a", Algorithm::Rs256),
            ed: signing_key("ed25519", Algorithm::EdDsa),
        }
    }

    fn url(&self) -> String {
        self.https.url(JWKS)
    }

    /// The JWKS server answers `keys` from now on.
    fn publish(&self, keys: &[String]) {
        self.https.set(JWKS, Reply::json(jwks(keys)));
    }

    /// [`Env::publish`] with `Cache-Control: max-age=0`: refetched every
    /// `min_refresh_interval`, no token asking.
    fn publish_refreshing(&self, keys: &[String]) {
        self.https.set(
            JWKS,
            Reply::json(jwks(keys)).header("Cache-Control", "public, max-age=0, must-revalidate"),
        );
    }

    /// An RS256 token for `iss`, audience `aud` (JSON), naming `kid`.
    fn token_for(&self, kid: &str, iss: &str, aud: &str) -> String {
        mint(
            &format!(r#"{{"alg":"RS256","kid":"{kid}","typ":"JWT"}}"#),
            &format!(
                r#"{{"iss":"{iss}","aud":{aud},"sub":"user-1","iat":{T},"exp":{}}}"#,
                T + 3600
            ),
            &self.rsa,
            Algorithm::Rs256,
        )
    }

    /// A valid RS256 `users` token naming `kid`.
    fn rs256(&self, kid: &str) -> String {
        self.token_for(kid, ISS, &format!(r#""{AUD}""#))
    }

    /// A valid EdDSA `users` token naming `kid`.
    fn eddsa(&self, kid: &str) -> String {
        mint(
            &format!(r#"{{"alg":"EdDSA","kid":"{kid}"}}"#),
            &format!(
                r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"user-1","iat":{T},"exp":{}}}"#,
                T + 3600
            ),
            &self.ed,
            Algorithm::EdDsa,
        )
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path("jwtgate.toml")
    }

    /// Writes `jwtgate.toml`: a `users` configuration fetching from
    /// [`Env::url`] with `settings` added, guarding `/v1/**`.
    fn write_config(&self, settings: &str) -> PathBuf {
        let source = format!("jwks_url = \"{}\"\nissuer = \"{ISS}\"", self.url());
        self.dir.write("jwtgate.toml", config(&source, settings))
    }

    /// `serve --config jwtgate.toml --now NOW` with `settings`, up to its readiness line.
    fn serve(&self, settings: &str) -> Server {
        self.serve_with(settings, &[])
    }

    /// [`Env::serve`] with more command-line arguments.
    fn serve_with(&self, settings: &str, extra: &[&str]) -> Server {
        let path = self.write_config(settings);
        let mut args = vec!["--config", path.to_str().unwrap(), "--now", NOW];
        args.extend_from_slice(extra);
        Server::start(&args)
    }

    /// `serve` with `settings`, expected to exit by itself (start-up failure).
    fn serve_to_exit(&self, settings: &str) -> Output {
        let path = self.write_config(settings);
        run_serve_to_exit(&path)
    }
}

/// One token configuration `users` with `source` (its key source and
/// issuer lines) and `settings`, required on `/v1/**`, one shard.
fn config(source: &str, settings: &str) -> String {
    format!(
        r#"default_action = "deny"

[server]
shards = 1

[[token_config]]
name = "users"
{source}
ca_file = "ca.pem"
algorithms = ["RS256", "EdDSA"]
audiences = ["{AUD}"]
{settings}

[[rule]]
name = "api"
paths = ["/v1/**"]
token_configs = ["users"]
action = "block"
"#
    )
}

fn run_serve_to_exit(config: &Path) -> Output {
    run_jwtgate_bounded(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--config",
            config.to_str().unwrap(),
            "--now",
            NOW,
        ],
        RUN_TIMEOUT,
    )
}

// ---------------------------------------------------------------------------
// Requests, the admin port, stderr
// ---------------------------------------------------------------------------

/// `GET /v1/orders` with the bearer `token` on `conn`: status and outcome.
fn check_on(conn: &mut Conn, token: &str) -> Result<(u16, String), String> {
    let bearer = format!("Bearer {token}");
    conn.send(&request_bytes(
        "GET",
        "/v1/orders",
        &[("Authorization", &bearer)],
        b"",
    ));
    let response = conn.try_read_response()?;
    let outcome = response
        .header("x-jwtgate-outcome")
        .ok_or_else(|| format!("no x-jwtgate-outcome in\n{}", response.head_text()))?;
    Ok((response.status, outcome.to_owned()))
}

/// `POST /v1/verify?token_config=users` on the batch port with one token:
/// `valid`, or the error of its one result line.
fn batch(server: &Server, token: &str) -> String {
    let addr = server.verify_addr().expect("no batch listener");
    let r = Client::new(addr).post("/v1/verify?token_config=users", &[], token.as_bytes());
    assert_eq!(r.status, 200, "{}", r.head_text());
    let line: serde_json::Value = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("batch answer {:?}: {e}", r.body_text()));
    if line["valid"] == true {
        "valid".to_owned()
    } else {
        line["error"].as_str().unwrap().to_owned()
    }
}

/// [`check_on`] on a fresh connection; panics with the server's stderr.
fn check(server: &Server, token: &str) -> (u16, String) {
    check_on(&mut Conn::open(server.addr()), token)
        .unwrap_or_else(|e| panic!("check request: {e}\nstderr:\n{}", server.stderr_text()))
}

fn admin_get(server: &Server, path: &str) -> Response {
    let mut conn = Conn::open(server.admin_addr());
    conn.send(&request_bytes("GET", path, &[], b""));
    conn.try_read_response()
        .unwrap_or_else(|e| panic!("GET {path} on the admin port: {e}"))
}

/// `/readyz`: status and body.
fn readyz(server: &Server) -> (u16, String) {
    let r = admin_get(server, "/readyz");
    (r.status, r.body_text().to_owned())
}

fn ready() -> (u16, String) {
    (200, "ready\n".to_owned())
}

/// Asserts `/readyz` says ready but degraded, and why: the `users` key set
/// is served while its fetches fail, the last failure named with its URL.
fn assert_degraded(server: &Server) {
    let (status, body) = readyz(server);
    let want = "ready\ndegraded: token_config \"users\": fetching keys fails (";
    assert!(
        status == 200
            && body.starts_with(want)
            && body.contains("https://127.0.0.1:")
            && body.contains("); serving the last good set, fetched ")
            && body.ends_with(" s ago\n"),
        "/readyz answered {status} {body:?}"
    );
}

fn not_ready() -> (u16, String) {
    (
        503,
        "not ready: a token configuration has no keys\n".to_owned(),
    )
}

fn scrape(server: &Server) -> String {
    let r = admin_get(server, "/metrics");
    assert_eq!(r.status, 200, "{}", r.head_text());
    r.body_text().to_owned()
}

/// The value of the sample `series` (name and labels, as printed).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
        .parse()
        .unwrap_or_else(|e| panic!("{series}: {e}"))
}

fn metric(server: &Server, series: &str) -> f64 {
    sample(&scrape(server), series)
}

const SUCCESSES: &str = r#"jwtgate_jwks_fetches_total{token_config="users",result="success"}"#;
const FAILURES: &str = r#"jwtgate_jwks_fetches_total{token_config="users",result="failure"}"#;
const CHANGES: &str = r#"jwtgate_jwks_key_set_changes_total{token_config="users"}"#;
const LAST_SUCCESS: &str = r#"jwtgate_jwks_last_success_timestamp_seconds{token_config="users"}"#;
const AVAILABLE: &str = r#"jwtgate_token_config_keys_available{token_config="users"}"#;
const KEYS: &str = r#"jwtgate_token_config_keys{token_config="users"}"#;
const READY: &str = "jwtgate_ready";

fn requests(outcome: &str, action: &str) -> String {
    format!(
        r#"jwtgate_requests_total{{rule="api",token_config="users",outcome="{outcome}",action="{action}",face="http"}}"#
    )
}

/// Asserts `series = value` for each pair, on one scrape.
fn assert_metrics(server: &Server, expected: &[(&str, f64)]) -> String {
    let text = scrape(server);
    for (series, value) in expected {
        assert_eq!(sample(&text, series), *value, "{series}\n{text}");
    }
    text
}

/// Polls `probe` until it gives a value (deadline [`POLL_TIMEOUT`]).
fn wait_until<T>(server: &Server, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + POLL_TIMEOUT;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {POLL_TIMEOUT:?}\nmetrics:\n{}\nstderr:\n{}",
            scrape(server),
            server.stderr_text()
        );
        std::thread::sleep(POLL);
    }
}

/// Polls until `series` is at least `value`; returns it.
fn wait_for_metric(server: &Server, series: &str, value: f64) -> f64 {
    wait_until(server, &format!("{series} >= {value}"), || {
        Some(metric(server, series)).filter(|&seen| seen >= value)
    })
}

/// Polls stderr (drained by a thread) until it contains `needle`.
fn wait_for_stderr(server: &Server, needle: &str) -> String {
    wait_until(server, &format!("stderr line {needle:?}"), || {
        Some(server.stderr_text()).filter(|text| text.contains(needle))
    })
}

/// Polls with `token` until the answer is `want`; every answer on the way
/// must be one of `meanwhile`.
fn wait_for_answer(
    server: &Server,
    token: &str,
    want: &(u16, String),
    meanwhile: &[(u16, String)],
) {
    wait_until(server, &format!("answer {want:?}"), || {
        let got = check(server, token);
        if got == *want {
            return Some(());
        }
        assert!(
            meanwhile.contains(&got),
            "answered {got:?} while waiting for {want:?}\nstderr:\n{}",
            server.stderr_text()
        );
        None
    });
}

/// The line the key manager writes for an event of the `users` key set.
/// A key event of `users` on stderr: a rotation or the keys in force
/// (information).
fn audit(event: &str) -> String {
    format!("jwtgate: keys of token_config \"users\": {event}")
}

/// A failing fetch of `users` on stderr (a warning).
fn failure(event: &str) -> String {
    format!("jwtgate: warning: keys of token_config \"users\": {event}")
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

// ---------------------------------------------------------------------------
// Rotation and the refetch throttle
// ---------------------------------------------------------------------------

/// A token signed by a newly published key is refused `unknown_kid` once,
/// and accepted after the refetch that refusal asked for; every change of
/// the key set is on stderr and counted.
#[test]
fn a_rotated_key_is_fetched_after_its_first_unknown_kid() {
    let env = Env::new("rotation");
    env.publish(&[rsa("k1")]);
    let server = env.serve(FAST);
    assert_eq!(check(&server, &env.rs256("k1")), ok());
    let text = assert_metrics(
        &server,
        &[
            (SUCCESSES, 1.0),
            (FAILURES, 0.0),
            (CHANGES, 1.0),
            (KEYS, 1.0),
            (AVAILABLE, 1.0),
            (READY, 1.0),
        ],
    );
    assert!(sample(&text, LAST_SUCCESS) > 1.6e9, "{text}");
    assert_eq!(env.https.hits(JWKS), 1);
    wait_for_stderr(&server, &audit("added kid \"k1\": RSA-2048 for RS256\n"));

    // The IdP rotates: k2 replaces k1. Nothing is fetched until a token asks.
    env.publish(&[rsa("k2")]);
    let k2 = env.rs256("k2");
    assert_eq!(check(&server, &k2), refused("unknown_kid"));
    wait_for_answer(&server, &k2, &ok(), &[refused("unknown_kid")]);
    assert_eq!(check(&server, &env.rs256("k1")), refused("unknown_kid"));
    let stderr = wait_for_stderr(&server, &audit("removed kid \"k1\": RSA-2048 for RS256\n"));
    assert!(
        stderr.contains(&audit("added kid \"k2\": RSA-2048 for RS256\n")),
        "{stderr}"
    );
    let text = assert_metrics(
        &server,
        &[
            (FAILURES, 0.0),
            (CHANGES, 2.0),
            (KEYS, 1.0),
            (AVAILABLE, 1.0),
        ],
    );
    assert!(sample(&text, SUCCESSES) >= 2.0, "{text}");
    assert!(env.https.hits(JWKS) >= 2);

    // A kid that now names another key type, and a new kid beside it. (The
    // k1 request above may already have fetched this set: no first refusal
    // is asserted.)
    env.publish(&[common::ed25519_jwk("k2"), rsa("k3")]);
    wait_for_answer(&server, &env.rs256("k3"), &ok(), &[refused("unknown_kid")]);
    assert_eq!(check(&server, &env.eddsa("k2")), ok());
    let stderr = wait_for_stderr(&server, &audit("added kid \"k3\": RSA-2048 for RS256\n"));
    let changed = stderr
        .lines()
        .find(|line| line.starts_with(&audit("changed kid \"k2\": ")))
        .unwrap_or_else(|| panic!("no `changed` line:\n{stderr}"));
    assert!(
        changed.contains("RSA-2048 for RS256 -> ") && changed.contains("EdDSA"),
        "{changed}"
    );
    assert_metrics(&server, &[(CHANGES, 3.0), (KEYS, 2.0), (FAILURES, 0.0)]);
}

/// 300 tokens with random kids over about a second cause at most one
/// refetch (`min_refetch_interval = "5s"`), every one is refused
/// `unknown_kid`, and valid tokens keep being accepted meanwhile.
#[test]
fn a_flood_of_unknown_kids_fetches_at_most_once_per_interval() {
    let env = Env::new("flood");
    env.publish(&[rsa("k1")]);
    let server = env.serve(
        r#"min_refetch_interval = "5s"
fetch_timeout = "1s"
startup_timeout = "2s"
"#,
    );
    let nonce = std::process::id();
    let flood: Vec<String> = (0..300)
        .map(|i| env.rs256(&format!("random-{nonce}-{i}")))
        .collect();
    let valid = env.rs256("k1");
    let mut client = Client::new(server.addr());
    let mut run = |tokens: &[String], pace: Duration| {
        for (i, token) in tokens.iter().enumerate() {
            let answer = check_on(client.conn(), token).unwrap();
            assert_eq!(answer, refused("unknown_kid"), "request {i}");
            if i % 50 == 0 {
                assert_eq!(check_on(client.conn(), &valid).unwrap(), ok(), "valid {i}");
            }
            // The initial fetch and at most one refetch, at every moment.
            assert!(
                env.https.hits(JWKS) <= 2,
                "{} fetches",
                env.https.hits(JWKS)
            );
            std::thread::sleep(pace);
        }
    };
    run(&flood, Duration::from_millis(3));
    // The refetch the flood asked for does come, once the interval is over.
    wait_for_metric(&server, SUCCESSES, 2.0);
    assert_eq!(env.https.hits(JWKS), 2);
    // Right after it, another flood: the next refetch is 5 s away.
    run(&flood[..100], Duration::ZERO);
    assert_eq!(env.https.hits(JWKS), 2);
    assert_metrics(
        &server,
        &[
            (SUCCESSES, 2.0),
            (FAILURES, 0.0),
            (CHANGES, 1.0),
            (&requests("unknown_kid", "block"), 400.0),
            (&requests("valid", "allow"), 8.0),
        ],
    );
}

// ---------------------------------------------------------------------------
// Failures: down, stale, bad answers, slow answers
// ---------------------------------------------------------------------------

/// Connection refused, then HTTP 503: the last good keys are served, the
/// failures counted and logged, and the gateway stays ready; when the
/// server is back the same keys are fetched without a change.
#[test]
fn a_server_down_keeps_the_last_good_keys() {
    let mut env = Env::new("down");
    env.publish(&[rsa("k1")]);
    let server = env.serve(FAST);
    let valid = env.rs256("k1");
    assert_eq!(check(&server, &valid), ok());

    env.https.down();
    // An unknown kid asks for a refetch, which is refused.
    assert_eq!(check(&server, &env.rs256("k9")), refused("unknown_kid"));
    wait_for_metric(&server, FAILURES, 1.0);
    let prefix = failure(&format!(
        "fetch failed (keeping the last good key set): {}: ",
        env.url()
    ));
    wait_for_stderr(&server, &prefix);
    assert_eq!(check(&server, &valid), ok());
    assert_degraded(&server);
    assert_metrics(
        &server,
        &[
            (SUCCESSES, 1.0),
            (AVAILABLE, 1.0),
            (KEYS, 1.0),
            (READY, 1.0),
        ],
    );

    // Back on the same port, but answering 503 (retried after the backoff).
    env.https.set(JWKS, Reply::status(503));
    env.https.up();
    let failures = metric(&server, FAILURES);
    wait_for_stderr(
        &server,
        &failure(&format!(
            "fetch failed (keeping the last good key set): {} answered HTTP 503\n",
            env.url()
        )),
    );
    wait_for_metric(&server, FAILURES, failures + 1.0);
    assert_eq!(check(&server, &valid), ok());
    assert_degraded(&server);

    // Healthy again: the next retry fetches the same keys, no change.
    env.publish(&[rsa("k1")]);
    wait_for_metric(&server, SUCCESSES, 2.0);
    wait_for_stderr(
        &server,
        &audit(&format!("1 key from {} in force\n", env.url())),
    );
    assert_metrics(&server, &[(CHANGES, 1.0), (AVAILABLE, 1.0), (READY, 1.0)]);
    assert_eq!(check(&server, &valid), ok());
    assert_eq!(readyz(&server), ready());
}

/// With the server down past `max_stale`, the configuration answers
/// `keys_unavailable` and the gateway is not ready; when the server is back
/// it recovers by itself.
#[test]
fn keys_older_than_max_stale_are_refused_until_the_server_is_back() {
    let mut env = Env::new("stale");
    env.publish(&[rsa("k1")]);
    // Refreshes every second (well inside max_stale while the server is up).
    let server = env.serve(&format!(
        "{FAST}refresh_interval = \"1s\"\nmax_stale = \"2s\"\n"
    ));
    let valid = env.rs256("k1");
    assert_eq!(check(&server, &valid), ok());
    assert_eq!(readyz(&server), ready());

    env.https.down();
    wait_for_answer(&server, &valid, &refused("keys_unavailable"), &[ok()]);
    assert_eq!(readyz(&server), not_ready());
    let text = assert_metrics(&server, &[(AVAILABLE, 0.0), (READY, 0.0)]);
    assert!(sample(&text, FAILURES) >= 1.0, "{text}");
    assert!(
        sample(&text, &requests("keys_unavailable", "block")) >= 1.0,
        "{text}"
    );
    wait_for_stderr(&server, "the last good key set is older than max_stale");

    env.https.up();
    wait_for_answer(&server, &valid, &ok(), &[refused("keys_unavailable")]);
    assert_eq!(readyz(&server), ready());
    assert_metrics(&server, &[(AVAILABLE, 1.0), (READY, 1.0), (KEYS, 1.0)]);
    wait_for_stderr(
        &server,
        &audit(&format!("1 key from {} in force\n", env.url())),
    );
}

/// Refuses each answer in turn (set on the JWKS path, asked for by an
/// unknown kid) and checks that the key set in force stayed: the failure is
/// counted and logged (a `fetch failed` line containing `message`), the
/// valid token still passes, and /readyz says the gateway is degraded.
fn refuse_each(env: &Env, server: &Server, answers: Vec<(Reply, String)>) {
    let valid = env.rs256("k1");
    for (reply, message) in answers {
        let failures = metric(server, FAILURES);
        env.https.set(JWKS, reply);
        // A kid every refused set holds, so that a set wrongly taken shows.
        assert_eq!(check(server, &env.rs256("k2")), refused("unknown_kid"));
        wait_for_metric(server, FAILURES, failures + 1.0);
        let prefix = failure("fetch failed (keeping the last good key set): ");
        wait_until(
            server,
            &format!("a fetch failed line with {message:?}"),
            || {
                let stderr = server.stderr_text();
                let logged = stderr
                    .lines()
                    .any(|line| line.starts_with(&prefix) && line.contains(&message));
                logged.then_some(())
            },
        );
        assert_eq!(check(server, &valid), ok(), "after {message:?}");
        assert_eq!(check(server, &env.rs256("k2")), refused("unknown_kid"));
        assert_degraded(server);
        assert_metrics(
            server,
            &[
                (SUCCESSES, 1.0),
                (CHANGES, 1.0),
                (KEYS, 1.0),
                (AVAILABLE, 1.0),
            ],
        );
    }
}

/// A body that is not JSON, and a good key set larger than
/// `max_response_bytes`: both failures, the old keys kept.
#[test]
fn bad_json_and_oversized_responses_keep_the_old_keys() {
    let env = Env::new("bad");
    env.publish(&[rsa("k1")]);
    let server = env.serve(&format!("{FAST}max_response_bytes = 2048\n"));
    let many: Vec<String> = (1..=8).map(|i| rsa(&format!("k{i}"))).collect();
    assert!(jwks(&many).len() > 2048);
    refuse_each(
        &env,
        &server,
        vec![
            (
                Reply::json(r#"{"keys":[{"kty":"RSA","kid":"k2", oops"#),
                "invalid JSON".to_owned(),
            ),
            (
                Reply::json(jwks(&many)),
                format!("{}: the response is longer than 2048 bytes", env.url()),
            ),
        ],
    );
}

/// HMAC secrets at a URL, a set with no key for the allow-list, a 404 and a
/// PEM public key or a bare JWK: failures, the old keys kept.
#[test]
fn unusable_key_sets_keep_the_old_keys() {
    let env = Env::new("unusable");
    env.publish(&[rsa("k1")]);
    let server = env.serve(FAST);
    let hmac = r#"{"kty":"oct","kid":"k2","alg":"HS256","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}"#;
    // An ES256 key: a key the allow-list (RS256, EdDSA) has no use for.
    let p256 = r#"{"kty":"EC","crv":"P-256","kid":"k2","alg":"ES256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;
    refuse_each(
        &env,
        &server,
        vec![
            (
                Reply::json(format!(r#"{{"keys":[{hmac}]}}"#)),
                "HMAC secrets".to_owned(),
            ),
            (
                Reply::json(format!(r#"{{"keys":[{p256}]}}"#)),
                "no key of the set can verify any algorithm of the allow-list".to_owned(),
            ),
            (
                Reply::status(404),
                format!("{} answered HTTP 404", env.url()),
            ),
            // A PEM key or a bare JWK is a key file, not a key set endpoint's answer.
            (
                Reply::json(common::read_data("rsa2048-a.spki.pem")),
                "invalid JSON".to_owned(),
            ),
            (Reply::json(rsa("k2")), "not a JWKS document".to_owned()),
        ],
    );
}

/// An answer slower than `fetch_timeout` is a failure, and the gateway
/// answers requests while the key manager waits for it.
#[test]
fn a_slow_server_times_out_and_requests_are_answered_meanwhile() {
    let env = Env::new("slow");
    env.publish(&[rsa("k1")]);
    let server = env.serve(
        r#"min_refetch_interval = "1s"
fetch_timeout = "2s"
startup_timeout = "2s"
"#,
    );
    let valid = env.rs256("k1");
    assert_eq!(check(&server, &valid), ok());
    env.https.set(
        JWKS,
        Reply::json(jwks(&[rsa("k1"), rsa("k2")])).delay(Duration::from_secs(8)),
    );
    assert_eq!(check(&server, &env.rs256("k2")), refused("unknown_kid"));
    // The JWKS server holds the request: the fetch is in flight.
    wait_until(&server, "the refetch reaching the JWKS server", || {
        (env.https.hits(JWKS) == 2).then_some(())
    });
    // Answered while the fetch waits. The failure counter is still 0 after
    // the answers, so the fetch had not ended (it ends at fetch_timeout, 2 s:
    // far longer than ten loopback requests take).
    for _ in 0..10 {
        assert_eq!(check(&server, &valid), ok());
    }
    assert_eq!(metric(&server, FAILURES), 0.0, "the fetch ended too early");
    wait_for_metric(&server, FAILURES, 1.0);
    let stderr = wait_for_stderr(
        &server,
        &failure(&format!(
            "fetch failed (keeping the last good key set): {}: ",
            env.url()
        )),
    );
    assert!(stderr.to_lowercase().contains("timeout"), "{stderr}");
    assert_eq!(check(&server, &valid), ok());
    assert_eq!(check(&server, &env.rs256("k2")), refused("unknown_kid"));
    assert_degraded(&server);
    assert_metrics(&server, &[(SUCCESSES, 1.0), (AVAILABLE, 1.0), (READY, 1.0)]);
}

/// An identity provider that never answers (its fetches hang until their
/// 20 s `fetch_timeout`), listed first, holds neither the start-up of
/// another configuration nor its rotation: that one starts with its keys
/// and picks up a rotated key after its first unknown `kid` while the hung
/// fetch is still in flight.
#[test]
fn a_hung_identity_provider_holds_up_no_other_configuration() {
    const HUNG: &str = "/hung.json";
    let env = Env::new("hung");
    env.publish(&[rsa("k1")]);
    env.https.set(
        HUNG,
        Reply::json(jwks(&[rsa("h1")])).delay(Duration::from_secs(60)),
    );
    let config = format!(
        r#"default_action = "deny"

[server]
shards = 1

[[token_config]]
name = "hung"
jwks_url = "{hung}"
issuer = "https://hung.test/"
ca_file = "ca.pem"
algorithms = ["RS256"]
fetch_timeout = "20s"
min_refetch_interval = "1s"
startup_timeout = "1s"
allow_start_without_keys = true

[[token_config]]
name = "users"
jwks_url = "{users}"
issuer = "{ISS}"
ca_file = "ca.pem"
algorithms = ["RS256"]
audiences = ["{AUD}"]
{FAST}
[[rule]]
name = "api"
paths = ["/v1/**"]
token_configs = ["users"]
action = "block"
"#,
        hung = env.https.url(HUNG),
        users = env.url(),
    );
    let path = env.dir.write("jwtgate.toml", config);
    let server = Server::start(&["--config", path.to_str().unwrap(), "--now", NOW]);
    assert_eq!(check(&server, &env.rs256("k1")), ok());
    wait_until(&server, "the hung fetch reaching its server", || {
        (env.https.hits(HUNG) >= 1).then_some(())
    });

    env.publish(&[rsa("k2")]);
    let rotated = Instant::now();
    wait_for_answer(&server, &env.rs256("k2"), &ok(), &[refused("unknown_kid")]);
    let hung_failures = metric(
        &server,
        r#"jwtgate_jwks_fetches_total{token_config="hung",result="failure"}"#,
    );
    assert_eq!(
        hung_failures, 0.0,
        "the hung fetch ended before the rotation was picked up: it may have waited for it"
    );
    assert!(
        rotated.elapsed() < Duration::from_secs(10),
        "the rotation took {:?}, about as long as the hung fetch's timeout",
        rotated.elapsed()
    );
}

// ---------------------------------------------------------------------------
// Discovery
// ---------------------------------------------------------------------------

/// Writes a discovery configuration whose issuer is the test server.
fn discovery_config(env: &Env) -> PathBuf {
    let issuer = env.https.url("");
    let source = format!("issuer_discovery = true\nissuer = \"{issuer}\"");
    env.dir.write("jwtgate.toml", config(&source, FAST))
}

fn discovery_document(issuer: &str, jwks_uri: &str) -> Reply {
    Reply::json(format!(
        r#"{{"issuer":"{issuer}","jwks_uri":"{jwks_uri}","id_token_signing_alg_values_supported":["RS256"]}}"#
    ))
}

/// The document names the configured issuer: its `jwks_uri` is fetched and
/// its keys verify tokens of that issuer; a refetch goes straight to it.
#[test]
fn discovery_finds_the_jwks_uri_of_a_matching_issuer() {
    let env = Env::new("discovery");
    let issuer = env.https.url("");
    env.https.set(
        DISCOVERY,
        discovery_document(&issuer, &env.https.url("/keys")),
    );
    env.https.set("/keys", Reply::json(jwks(&[rsa("k1")])));
    let path = discovery_config(&env);
    let server = Server::start(&["--config", path.to_str().unwrap(), "--now", NOW]);
    let token = |kid: &str| env.token_for(kid, &issuer, &format!(r#""{AUD}""#));
    assert_eq!(check(&server, &token("k1")), ok());
    // Tokens of another issuer are still refused: discovery sets no issuer of its own.
    assert_eq!(check(&server, &env.rs256("k1")), refused("wrong_issuer"));
    assert_eq!((env.https.hits(DISCOVERY), env.https.hits("/keys")), (1, 1));

    env.https
        .set("/keys", Reply::json(jwks(&[rsa("k1"), rsa("k2")])));
    assert_eq!(check(&server, &token("k2")), refused("unknown_kid"));
    wait_for_answer(&server, &token("k2"), &ok(), &[refused("unknown_kid")]);
    assert_eq!(
        env.https.hits(DISCOVERY),
        1,
        "a refetch reuses the jwks_uri"
    );
    assert!(env.https.hits("/keys") >= 2);
}

/// A discovery document naming another issuer is refused: start-up fails
/// and says which issuer it named and which was configured.
#[test]
fn discovery_with_a_mismatched_issuer_fails_startup() {
    let env = Env::new("mismatch");
    let issuer = env.https.url("");
    env.https.set(
        DISCOVERY,
        discovery_document("https://evil.test/", &env.https.url("/keys")),
    );
    env.https.set("/keys", Reply::json(jwks(&[rsa("k1")])));
    let out = run_serve_to_exit(&discovery_config(&env));
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    let expected = format!(
        "jwtgate: token_config \"users\": no key set from discovery of {issuer} within 2s: \
         discovery {issuer}{DISCOVERY}: names issuer \"https://evil.test/\", not the configured \"{issuer}\"\n"
    );
    assert!(
        stderr.contains(&expected),
        "want {expected:?} in:\n{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        env.https.hits("/keys"),
        0,
        "the jwks_uri of a wrong issuer was fetched"
    );
}

// ---------------------------------------------------------------------------
// Start-up
// ---------------------------------------------------------------------------

/// No key set within `startup_timeout`: exit 2 without serving, naming the
/// configuration, the URL and the reason.
#[test]
fn startup_without_keys_fails() {
    let mut env = Env::new("nokeys");
    env.publish(&[rsa("k1")]);
    env.https.down();
    let started = Instant::now();
    let out = env.serve_to_exit(FAST);
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    let url = env.url();
    let expected =
        format!("jwtgate: token_config \"users\": no key set from {url} within 2s: {url}: ");
    assert!(
        stderr.contains(&expected),
        "want {expected:?} in:\n{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "gave up before startup_timeout"
    );
}

/// SIGTERM while start-up waits for a first key set ends the wait: the
/// gateway stops at once instead of sitting out a minute of startup_timeout.
#[test]
fn sigterm_during_the_startup_wait_stops_at_once() {
    let mut env = Env::new("sigterm");
    env.publish(&[rsa("k1")]);
    env.https.down();
    let path = env.write_config(
        "min_refetch_interval = \"1s\"\nfetch_timeout = \"1s\"\nstartup_timeout = \"60s\"\n",
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_jwtgate"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--config",
            path.to_str().unwrap(),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let stderr = std::sync::Arc::clone(&stderr);
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(std::io::BufReader::new(pipe)).map_while(Result::ok)
            {
                let mut text = stderr.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        })
    };
    // In the wait: the first fetch has failed.
    let deadline = Instant::now() + POLL_TIMEOUT;
    while !stderr
        .lock()
        .unwrap()
        .contains("fetch failed (no keys yet)")
    {
        assert!(
            Instant::now() < deadline,
            "no failed fetch:\n{}",
            stderr.lock().unwrap()
        );
        assert!(child.try_wait().unwrap().is_none(), "exited early");
        std::thread::sleep(POLL);
    }
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + POLL_TIMEOUT;
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "still waiting for keys after SIGTERM:\n{}",
                stderr.lock().unwrap()
            );
        }
        std::thread::sleep(POLL);
    };
    reader.join().unwrap();
    let text = stderr.lock().unwrap().clone();
    assert_eq!(exit.code(), Some(0), "{text}");
    assert!(
        text.contains("jwtgate serve: stopped during start-up"),
        "{text}"
    );
}

/// With `allow_start_without_keys`, the gateway starts not ready and answers
/// `keys_unavailable`; the first successful fetch makes it ready.
#[test]
fn startup_allowed_without_keys_is_not_ready_until_the_first_fetch() {
    let mut env = Env::new("later");
    env.publish(&[rsa("k1")]);
    env.https.down();
    // refresh_interval caps the retry backoff, so that recovery is quick.
    let server = env.serve_with(
        &format!("{FAST}allow_start_without_keys = true\nrefresh_interval = \"2s\"\n"),
        &["--verify-listen", "127.0.0.1:0"],
    );
    wait_for_stderr(
        &server,
        "jwtgate: warning: token_config \"users\" starts without keys (allow_start_without_keys)",
    );
    assert_eq!(readyz(&server), not_ready());
    let valid = env.rs256("k1");
    // Not the client's fault: no `error="invalid_token"` that would send it
    // to an identity provider that may well be down.
    let bearer = format!("Bearer {valid}");
    let r = common::server::get(server.addr(), "/v1/orders", &[("Authorization", &bearer)]);
    assert_eq!(r.status, 401, "{}", r.head_text());
    assert_eq!(r.header("x-jwtgate-outcome"), Some("keys_unavailable"));
    let challenge = r.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer ") && !challenge.contains("error="),
        "{}",
        r.head_text()
    );
    assert_eq!(batch(&server, &valid), "keys_unavailable");
    let text = assert_metrics(
        &server,
        &[
            (SUCCESSES, 0.0),
            (LAST_SUCCESS, 0.0),
            (AVAILABLE, 0.0),
            (KEYS, 0.0),
            (READY, 0.0),
            (&requests("keys_unavailable", "block"), 1.0),
        ],
    );
    assert!(sample(&text, FAILURES) >= 1.0, "{text}");
    wait_for_stderr(
        &server,
        &failure(&format!("fetch failed (no keys yet): {}: ", env.url())),
    );

    env.https.up();
    wait_for_answer(&server, &valid, &ok(), &[refused("keys_unavailable")]);
    assert_eq!(readyz(&server), ready());
    assert_eq!(batch(&server, &valid), "valid");
    assert_metrics(
        &server,
        &[
            (SUCCESSES, 1.0),
            (AVAILABLE, 1.0),
            (KEYS, 1.0),
            (READY, 1.0),
        ],
    );
    wait_for_stderr(
        &server,
        &audit(&format!("1 key from {} in force\n", env.url())),
    );
}

/// The server's certificate is not signed by `ca_file`'s CA: start-up fails
/// with the TLS error, and no request ever reached the server.
#[test]
fn an_untrusted_server_certificate_fails_startup() {
    let env = Env::new("untrusted");
    env.publish(&[rsa("k1")]);
    env.dir.write("ca.pem", Ca::new("another").pem());
    let out = env.serve_to_exit(FAST);
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    let url = env.url();
    let expected =
        format!("jwtgate: token_config \"users\": no key set from {url} within 2s: {url}: ");
    let line = stderr
        .lines()
        .find(|line| line.starts_with(&expected))
        .unwrap_or_else(|| panic!("want {expected:?} in:\n{stderr}"));
    assert!(
        line.contains("invalid peer certificate: UnknownIssuer"),
        "not the TLS error: {line}"
    );
    assert_eq!(env.https.hits(JWKS), 0);
}

// ---------------------------------------------------------------------------
// Configuration and reload
// ---------------------------------------------------------------------------

/// Remote key settings that cannot be used are refused by `check-config`
/// (and by `serve`), naming the key.
#[test]
fn remote_key_settings_are_checked() {
    let dir = TempDir::new("jwks-config");
    dir.write("ca.pem", Ca::new("config").pem());
    dir.write("keys.jwks.json", jwks(&[rsa("k1")]));
    let url = "jwks_url = \"https://127.0.0.1:9/jwks.json\"";
    let block = |lines: &str| {
        format!(
            "default_action = \"deny\"\n\n[[token_config]]\nname = \"users\"\nissuer = \"{ISS}\"\n{lines}\n"
        )
    };
    let cases = [
        (
            block("jwks_url = \"http://127.0.0.1:9/jwks.json\"\nalgorithms = [\"RS256\"]"),
            "token_config[0].jwks_url: an https:// URL (http:// only with danger_allow_http = true",
        ),
        (
            block(url),
            "token_config[0].algorithms: a fetched key set needs the allow-list written out",
        ),
        (
            block("jwks_file = \"keys.jwks.json\"\nmax_stale = \"1h\""),
            "token_config[0].max_stale: applies to fetched keys only: set jwks_url or issuer_discovery = true",
        ),
        (
            block("jwks_file = \"keys.jwks.json\"\nmin_refetch_interval = \"1s\""),
            "token_config[0].min_refetch_interval: applies to fetched keys only",
        ),
        (
            block(&format!(
                "{url}\njwks_file = \"keys.jwks.json\"\nalgorithms = [\"RS256\"]"
            )),
            "token_config[0].jwks_file: give one key source",
        ),
        (
            block(&format!(
                "{url}\nissuer_discovery = true\nalgorithms = [\"RS256\"]"
            )),
            "token_config[0].issuer_discovery: give jwks_url or issuer_discovery, not both",
        ),
        (
            block(&format!("{url}\nalgorithms = [\"HS256\"]")),
            "token_config[0].algorithms: HMAC algorithms need a shared secret",
        ),
        (
            block(&format!(
                "{url}\nalgorithms = [\"RS256\"]\nmax_response_bytes = 10"
            )),
            "token_config[0].max_response_bytes: at least 64 bytes",
        ),
        (
            block(&format!(
                "{url}\nalgorithms = [\"RS256\"]\nca_file = \"missing.pem\""
            )),
            "token_config[0].ca_file: cannot read",
        ),
        (
            block(&format!(
                "{url}\nalgorithms = [\"RS256\"]\nmin_refetch_interval = \"500ms\""
            )),
            "token_config[0].min_refetch_interval: between 1s and 365 days",
        ),
        (
            block(
                "jwks_url = \"https://user:secret@127.0.0.1:9/jwks.json\"\nalgorithms = [\"RS256\"]",
            ),
            "token_config[0].jwks_url: credentials in the URL would be written to every log line",
        ),
        (
            format!(
                "default_action = \"deny\"\n\n[[token_config]]\nname = \"users\"\n{url}\nalgorithms = [\"RS256\"]\n"
            ),
            "token_config[0].issuer: fetched keys need the issuer checked",
        ),
    ];
    for (text, expected) in &cases {
        let path = dir.write("jwtgate.toml", text);
        let out = run_jwtgate(&["check-config", path.to_str().unwrap()], b"");
        let stderr = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{text}\nstderr: {stderr}");
        let want = format!("jwtgate: {}:", path.display());
        assert!(stderr.starts_with(&want), "{text}\nstderr: {stderr}");
        assert!(
            stderr.contains(expected),
            "{text}\nwant {expected:?} in: {stderr}"
        );
    }
    // serve refuses the same file before fetching anything.
    let (text, expected) = &cases[0];
    let path = dir.write("jwtgate.toml", text);
    let out = run_serve_to_exit(&path);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains(expected), "{}", stderr_of(&out));

    // The same http:// URL is accepted when the danger is spelled out.
    let path = dir.write(
        "jwtgate.toml",
        block("jwks_url = \"http://127.0.0.1:9/jwks.json\"\ndanger_allow_http = true\nalgorithms = [\"RS256\"]"),
    );
    let out = run_jwtgate(&["check-config", path.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr_of(&out));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("keys fetched from http://127.0.0.1:9/jwks.json"),
        "{report}"
    );
}

/// Waits for a reload (or, with the file watcher and a SIGHUP both noticing
/// a change, for two) to be in force.
fn wait_for_generation(server: &Server, generation: f64) {
    wait_for_metric(server, "jwtgate_config_generation", generation);
}

/// A SIGHUP reload whose token configuration keeps its key source (only the
/// audience changes) keeps the fetched keys: requests sampled throughout the
/// reload are never `keys_unavailable`, nothing is refetched, and the new
/// audience is enforced.
#[test]
fn a_reload_with_the_same_source_keeps_the_fetched_keys() {
    let env = Env::new("reload");
    env.publish(&[rsa("k1")]);
    let server = env.serve(FAST);
    let both = env.token_for("k1", ISS, r#"["api","new"]"#);
    let old_only = env.rs256("k1");
    let new_only = env.token_for("k1", ISS, r#""new""#);
    assert_eq!(check(&server, &old_only), ok());

    let stop = AtomicBool::new(false);
    let answers = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        // Samples a token valid before and after the reload, on one connection.
        let sampler = scope.spawn(|| {
            let mut conn = Conn::open(server.addr());
            while !stop.load(Ordering::Acquire) {
                let answer = check_on(&mut conn, &both).unwrap();
                answers.lock().unwrap().push(answer);
            }
        });
        wait_until(&server, "samples before the reload", || {
            (answers.lock().unwrap().len() >= 20).then_some(())
        });
        let text = std::fs::read_to_string(env.config_path()).unwrap();
        let changed = text.replace(r#"audiences = ["api"]"#, r#"audiences = ["new"]"#);
        assert_ne!(text, changed);
        rewrite_unnoticed(&env.config_path(), &changed);
        server.sighup();
        wait_for_generation(&server, 2.0);
        let seen = answers.lock().unwrap().len();
        wait_until(&server, "samples after the reload", || {
            (answers.lock().unwrap().len() >= seen + 20).then_some(())
        });
        stop.store(true, Ordering::Release);
        sampler.join().unwrap();
    });
    let answers = answers.into_inner().unwrap();
    let odd: Vec<_> = answers.iter().filter(|answer| **answer != ok()).collect();
    assert!(
        odd.is_empty(),
        "{} of {} answers: {odd:?}",
        odd.len(),
        answers.len()
    );

    assert_eq!(check(&server, &new_only), ok());
    assert_eq!(check(&server, &old_only), refused("wrong_audience"));
    assert_eq!(env.https.hits(JWKS), 1, "the reload fetched again");
    assert_metrics(
        &server,
        &[
            (SUCCESSES, 1.0),
            (CHANGES, 1.0),
            (AVAILABLE, 1.0),
            (READY, 1.0),
            (r#"jwtgate_config_reloads_total{result="success"}"#, 1.0),
        ],
    );
    assert_eq!(readyz(&server), ready());
}

/// A reload that adds a fetched key source to a gateway that had none
/// fetches it before the new configuration goes out: its tokens are valid
/// on the first request after the reload, and the gateway stays ready.
#[test]
fn a_reload_that_adds_a_remote_source_fetches_it_first() {
    let env = Env::new("added");
    env.publish(&[rsa("k1")]);
    env.dir.write("keys.jwks.json", jwks(&[rsa("local")]));
    let local = format!(
        r#"default_action = "deny"

[server]
shards = 1

[[token_config]]
name = "local"
jwks_file = "keys.jwks.json"
issuer = "{ISS}"
audiences = ["{AUD}"]

[[rule]]
name = "local"
paths = ["/v2/**"]
token_configs = ["local"]
action = "block"
"#
    );
    let path = env.dir.write("jwtgate.toml", &local);
    let server = Server::start(&["--config", path.to_str().unwrap(), "--now", NOW]);
    assert_eq!(
        check(&server, &env.rs256("k1")),
        (403, "no_matching_rule".to_owned())
    );
    assert_eq!(readyz(&server), ready());

    let remote = format!(
        r#"
[[token_config]]
name = "users"
jwks_url = "{}"
ca_file = "ca.pem"
algorithms = ["RS256"]
issuer = "{ISS}"
audiences = ["{AUD}"]

[[rule]]
name = "api"
paths = ["/v1/**"]
token_configs = ["users"]
action = "block"
"#,
        env.url()
    );
    env.dir.write("jwtgate.toml", format!("{local}{remote}"));
    server.sighup();
    wait_for_generation(&server, 2.0);
    assert_eq!(check(&server, &env.rs256("k1")), ok());
    assert_eq!(readyz(&server), ready());
    assert_metrics(&server, &[(SUCCESSES, 1.0), (AVAILABLE, 1.0), (READY, 1.0)]);
    assert_eq!(env.https.hits(JWKS), 1);
}

/// A new CA in `ca_file` (the IdP moved to another CA) is used after the
/// reload it causes: the fetches that failed on the new certificate succeed.
#[test]
fn a_reload_with_a_new_ca_file_trusts_the_new_ca() {
    let env = Env::new("newca");
    env.publish(&[rsa("k1")]);
    let server = env.serve(FAST);
    assert_eq!(check(&server, &env.rs256("k1")), ok());

    let next = Ca::new("next");
    env.https.reissue(&next);
    env.publish(&[rsa("k1"), rsa("k2")]);
    let k2 = env.rs256("k2");
    assert_eq!(check(&server, &k2), refused("unknown_kid"));
    wait_for_stderr(&server, "invalid peer certificate: UnknownIssuer");
    assert_eq!(check(&server, &env.rs256("k1")), ok());

    env.dir.write("ca.pem", next.pem());
    server.sighup();
    wait_for_generation(&server, 2.0);
    wait_for_answer(&server, &k2, &ok(), &[refused("unknown_kid")]);
    assert_eq!(readyz(&server), ready());
}

/// `Cache-Control: max-age` schedules the refresh (raised to
/// `min_refresh_interval`): a rotation is picked up with no token asking.
#[test]
fn cache_control_max_age_schedules_the_refresh() {
    let env = Env::new("maxage");
    let publish = |keys: &[String]| env.publish_refreshing(keys);
    publish(&[rsa("k1")]);
    let server = env.serve(&format!("{FAST}min_refresh_interval = \"1s\"\n"));
    assert_eq!(check(&server, &env.rs256("k1")), ok());
    publish(&[rsa("k2")]);
    wait_for_metric(&server, CHANGES, 2.0);
    wait_for_stderr(&server, &audit("added kid \"k2\": RSA-2048 for RS256\n"));
    assert_eq!(check(&server, &env.rs256("k2")), ok());
    assert_metrics(&server, &[(FAILURES, 0.0)]);
}

/// Ten key rotations through the JWKS URL under continuous load, as an
/// identity provider rotates: it publishes the next key beside the current
/// one, signs with the next once relying parties have it, and drops the old
/// one with the following rotation. Three keep-alive clients send
/// throughout with the key in use: every answer is 200, before, during and
/// after each swap of the key set.
#[test]
fn ten_key_rotations_under_load_fail_no_request() {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    let env = Env::new("rotations");
    let publish = |keys: &[String]| env.publish_refreshing(keys);
    let kid = |round: usize| format!("k{round}");
    let tokens: Arc<Vec<String>> = Arc::new((0..=10).map(|round| env.rs256(&kid(round))).collect());
    publish(&[rsa(&kid(0))]);
    // Every answer must be the keys': a 429 from a shard stalled by a busy
    // test machine would be load shedding, not a rotation failing a request.
    let server = env.serve_with(
        &format!("{FAST}min_refresh_interval = \"1s\"\n"),
        &["--max-queue-delay", "0"],
    );
    let in_use = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let (tokens, in_use, stop) =
                (Arc::clone(&tokens), Arc::clone(&in_use), Arc::clone(&stop));
            let (answered, failures) = (Arc::clone(&answered), Arc::clone(&failures));
            let addr = server.addr();
            std::thread::spawn(move || {
                let mut conn = Conn::open(addr);
                while !stop.load(Ordering::SeqCst) {
                    let round = in_use.load(Ordering::SeqCst);
                    match check_on(&mut conn, &tokens[round]) {
                        Ok(answer) if answer == ok() => {
                            answered.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(answer) => failures
                            .lock()
                            .unwrap()
                            .push(format!("k{round}: {answer:?}")),
                        Err(error) => {
                            failures.lock().unwrap().push(format!("k{round}: {error}"));
                            conn = Conn::open(addr);
                        }
                    }
                }
            })
        })
        .collect();
    for round in 1..=10 {
        publish(&[rsa(&kid(round - 1)), rsa(&kid(round))]);
        // A probe of its own (its first answers may be unknown_kid, and ask
        // for the refetch) learns when the shards hold the new key.
        wait_for_answer(&server, &tokens[round], &ok(), &[refused("unknown_kid")]);
        let before = answered.load(Ordering::SeqCst);
        in_use.store(round, Ordering::SeqCst);
        wait_until(&server, "answers with the new key", || {
            (answered.load(Ordering::SeqCst) >= before + 30).then_some(())
        });
    }
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.join().unwrap();
    }
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {:?}\nstderr:\n{}",
        failures.len(),
        answered.load(Ordering::SeqCst) + failures.len(),
        &failures[..failures.len().min(10)],
        server.stderr_text()
    );
    // The key of round 9 left with the last rotation.
    assert_eq!(
        check(&server, &tokens[9]),
        ok(),
        "k9 is still published beside k10"
    );
    publish(&[rsa(&kid(10))]);
    wait_for_answer(&server, &tokens[9], &refused("unknown_kid"), &[ok()]);
}

/// `max_stale` counts from a failure, not from the last fetch: with the
/// server healthy and the next refresh ten minutes away, keys are still
/// served when twice `max_stale` has passed since they were fetched (before
/// the readiness line).
#[test]
fn a_max_stale_shorter_than_the_refresh_period_does_not_expire_healthy_keys() {
    let env = Env::new("healthy");
    env.publish(&[rsa("k1")]);
    let server = env.serve(&format!("{FAST}max_stale = \"1s\"\n"));
    let fetched_before = Instant::now();
    let valid = env.rs256("k1");
    let mut conn = Conn::open(server.addr());
    while fetched_before.elapsed() < Duration::from_secs(2) {
        assert_eq!(check_on(&mut conn, &valid).unwrap(), ok());
        std::thread::sleep(POLL);
    }
    assert_eq!(readyz(&server), ready());
    assert_metrics(
        &server,
        &[(SUCCESSES, 1.0), (FAILURES, 0.0), (AVAILABLE, 1.0)],
    );
}

/// An unknown kid in a batch (`POST /v1/verify`) asks for a refetch too.
#[test]
fn an_unknown_kid_in_a_batch_asks_for_a_refetch() {
    let env = Env::new("batch");
    env.publish(&[rsa("k1")]);
    let server = env.serve_with(FAST, &["--verify-listen", "127.0.0.1:0"]);
    assert_eq!(batch(&server, &env.rs256("k1")), "valid");
    env.publish(&[rsa("k1"), rsa("k2")]);
    let k2 = env.rs256("k2");
    assert_eq!(batch(&server, &k2), "unknown_kid");
    wait_until(&server, "k2 valid in a batch", || {
        let answer = batch(&server, &k2);
        assert!(
            ["valid", "unknown_kid"].contains(&answer.as_str()),
            "{answer}"
        );
        (answer == "valid").then_some(())
    });
    assert_metrics(&server, &[(CHANGES, 2.0), (FAILURES, 0.0)]);
}

/// A gateway fetching `users`, whose configuration file was just rewritten
/// to add `other` (fetched from a second server, down) and SIGHUP'd: the
/// reload is refused and the running configuration stays.
fn refused_reload() -> (Env, HttpsServer, Server) {
    let env = Env::new("refused");
    env.publish(&[rsa("k1")]);
    let other_ca = Ca::new("other");
    env.dir.write("other.pem", other_ca.pem());
    let mut other = HttpsServer::start(&other_ca);
    other.set(JWKS, Reply::json(jwks(&[rsa("o1")])));
    other.down();
    let server = env.serve(FAST);
    assert_eq!(check(&server, &env.rs256("k1")), ok());

    let text = std::fs::read_to_string(env.config_path()).unwrap();
    let added = format!(
        r#"{text}
[[token_config]]
name = "other"
sources = [ {{ header = "x-other-token" }} ]
jwks_url = "{}"
ca_file = "other.pem"
algorithms = ["RS256"]
issuer = "{ISS}"
audiences = ["{AUD}"]
min_refetch_interval = "1s"
fetch_timeout = "1s"

[[rule]]
name = "other"
paths = ["/v2/**"]
token_configs = ["other"]
action = "block"
"#,
        other.url(JWKS)
    );
    env.dir.write("jwtgate.toml", &added);
    server.sighup();
    wait_for_metric(
        &server,
        r#"jwtgate_config_reloads_total{result="failure"}"#,
        1.0,
    );
    wait_for_stderr(
        &server,
        &format!(
            "jwtgate: reload failed (SIGHUP), keeping the running configuration: {}: token_config: token_config \"other\": no key set from {}: ",
            env.config_path().display(),
            other.url(JWKS)
        ),
    );
    assert_eq!(metric(&server, "jwtgate_config_generation"), 1.0);
    assert_eq!(check(&server, &env.rs256("k1")), ok());
    (env, other, server)
}

/// A reload that adds a source which cannot be fetched is refused (the
/// running configuration answers on); once the new source answers, a
/// reload brings it in, its tokens valid at once.
#[test]
fn a_reload_adding_an_unreachable_source_is_refused_until_it_answers() {
    let (env, mut other, server) = refused_reload();
    let v2 = |token: &str| {
        let r = common::server::get(server.addr(), "/v2/jobs", &[("X-Other-Token", token)]);
        (
            r.status,
            r.header("x-jwtgate-outcome").unwrap_or("").to_owned(),
        )
    };
    assert_eq!(v2(&env.rs256("o1")), (403, "no_matching_rule".to_owned()));
    other.up();
    // The file watcher retries the failed reload by itself; SIGHUP is sooner.
    server.sighup();
    wait_for_generation(&server, 2.0);
    assert_eq!(v2(&env.rs256("o1")), ok());
    assert_eq!(check(&server, &env.rs256("k1")), ok());
    assert_eq!(readyz(&server), ready());
}

/// After a refused reload, the running configuration's fetched source is
/// still the key manager's: a rotation is still picked up on an unknown kid
/// (and refreshes and the `max_stale` expiry still run).
#[test]
fn a_refused_reload_keeps_refreshing_the_running_sources() {
    let (env, _other, server) = refused_reload();
    env.publish(&[rsa("k2")]);
    let k2 = env.rs256("k2");
    assert_eq!(check(&server, &k2), refused("unknown_kid"));
    wait_for_answer(&server, &k2, &ok(), &[refused("unknown_kid")]);
}

// ---------------------------------------------------------------------------
// Where fetches may go: redirects and a discovered jwks_uri
// ---------------------------------------------------------------------------

/// The test server's `path` under another host name, `localhost` (its
/// certificate names both `127.0.0.1` and `localhost`; both reach it).
fn other_host_url(env: &Env, path: &str) -> String {
    format!("https://localhost:{}{path}", env.https.addr().port())
}

/// Why a request to `localhost` was not sent, as the log says it.
fn off_host(env: &Env) -> String {
    let port = env.https.addr().port();
    format!(
        "host localhost:{port} is neither the configured host 127.0.0.1:{port} nor listed in jwks_allowed_hosts"
    )
}

/// Writes a configuration fetching the `users` keys from `url`, with `settings`.
fn url_config(env: &Env, url: &str, settings: &str) -> PathBuf {
    let source = format!("jwks_url = \"{url}\"\nissuer = \"{ISS}\"");
    env.dir.write("jwtgate.toml", config(&source, settings))
}

/// A redirect to another host is not followed: start-up fails naming the
/// redirect, the host and the setting, also when the host is listed without
/// its port (which then means 443). Listed with its port, it is followed.
#[test]
fn a_redirect_to_another_host_is_refused_unless_listed() {
    let env = Env::new("redirect-host");
    env.publish(&[rsa("k1")]);
    let port = env.https.addr().port();
    let elsewhere = other_host_url(&env, JWKS);
    env.https
        .set("/moved", Reply::status(302).header("location", &elsewhere));
    let moved = env.https.url("/moved");
    for listed in ["", "jwks_allowed_hosts = [\"localhost\", \"127.0.0.2\"]\n"] {
        let path = url_config(&env, &moved, &format!("{FAST}{listed}"));
        let out = run_serve_to_exit(&path);
        let stderr = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
        let expected = format!(
            "jwtgate: token_config \"users\": no key set from {moved} within 2s: \
             {moved}: redirect to {elsewhere} refused: {}\n",
            off_host(&env)
        );
        assert!(
            stderr.contains(&expected),
            "want {expected:?} in:\n{stderr}"
        );
    }
    assert!(env.https.hits("/moved") >= 2);
    assert_eq!(env.https.hits(JWKS), 0, "a refused redirect was followed");

    let listed = format!("{FAST}jwks_allowed_hosts = [\"localhost:{port}\"]\n");
    let path = url_config(&env, &moved, &listed);
    let server = Server::start(&["--config", path.to_str().unwrap(), "--now", NOW]);
    assert_eq!(check(&server, &env.rs256("k1")), ok());
    assert_eq!(env.https.hits(JWKS), 1);
}

/// A key set URL that starts redirecting to another host fails like any
/// failed fetch: logged with the host and the setting, counted, `/readyz`
/// degraded, and the last good keys stay in force. Nothing is asked of the
/// other host.
#[test]
fn a_refused_redirect_keeps_the_last_good_keys() {
    let env = Env::new("redirect-stale");
    env.publish(&[rsa("k1")]);
    let server = env.serve(FAST);
    assert_eq!(check(&server, &env.rs256("k1")), ok());
    let elsewhere = other_host_url(&env, "/keys");
    env.https.set("/keys", Reply::json(jwks(&[rsa("k2")])));
    env.https
        .set(JWKS, Reply::status(307).header("location", &elsewhere));
    // An unknown kid asks for a refetch, which is refused.
    assert_eq!(check(&server, &env.rs256("k2")), refused("unknown_kid"));
    let url = env.url();
    wait_for_stderr(
        &server,
        &failure(&format!(
            "fetch failed (keeping the last good key set): {url}: redirect to {elsewhere} refused: {}\n",
            off_host(&env)
        )),
    );
    assert_eq!(check(&server, &env.rs256("k1")), ok());
    assert_eq!(check(&server, &env.rs256("k2")), refused("unknown_kid"));
    assert_degraded(&server);
    assert!(metric(&server, FAILURES) >= 1.0);
    assert_eq!(env.https.hits("/keys"), 0);
}

/// Redirects on the configured host and port are followed, relative or
/// absolute, up to three in a row; a loop is a failed fetch.
#[test]
fn same_host_redirects_are_followed() {
    let env = Env::new("redirect-same");
    env.publish(&[rsa("k1")]);
    env.https
        .set("/old/a", Reply::status(301).header("location", "b"));
    env.https
        .set("/old/b", Reply::status(308).header("location", "/moved"));
    env.https
        .set("/moved", Reply::status(302).header("location", &env.url()));
    let path = url_config(&env, &env.https.url("/old/a"), FAST);
    let server = Server::start(&["--config", path.to_str().unwrap(), "--now", NOW]);
    assert_eq!(check(&server, &env.rs256("k1")), ok());
    let hits = ["/old/a", "/old/b", "/moved", JWKS].map(|path| env.https.hits(path));
    assert_eq!(hits, [1, 1, 1, 1]);
    drop(server);

    env.https
        .set("/loop", Reply::status(302).header("location", "/loop"));
    let looping = env.https.url("/loop");
    let out = run_serve_to_exit(&url_config(&env, &looping, FAST));
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    let expected = format!(
        "jwtgate: token_config \"users\": no key set from {looping} within 2s: {looping}: more than 3 redirects\n"
    );
    assert!(
        stderr.contains(&expected),
        "want {expected:?} in:\n{stderr}"
    );
}

/// A discovery document whose `jwks_uri` is on another host than the
/// issuer's is refused (nothing is fetched there) unless the host is listed.
#[test]
fn a_discovered_jwks_uri_on_another_host_is_refused_unless_listed() {
    let env = Env::new("discovery-host");
    let issuer = env.https.url("");
    let port = env.https.addr().port();
    let elsewhere = other_host_url(&env, "/keys");
    env.https
        .set(DISCOVERY, discovery_document(&issuer, &elsewhere));
    env.https.set("/keys", Reply::json(jwks(&[rsa("k1")])));
    let out = run_serve_to_exit(&discovery_config(&env));
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    let expected = format!(
        "jwtgate: token_config \"users\": no key set from discovery of {issuer} within 2s: \
         discovery {issuer}{DISCOVERY}: jwks_uri {elsewhere} refused: {}\n",
        off_host(&env)
    );
    assert!(
        stderr.contains(&expected),
        "want {expected:?} in:\n{stderr}"
    );
    assert_eq!(env.https.hits("/keys"), 0, "a refused jwks_uri was fetched");

    let source = format!("issuer_discovery = true\nissuer = \"{issuer}\"");
    let listed = format!("{FAST}jwks_allowed_hosts = [\"localhost:{port}\"]\n");
    let path = env.dir.write("jwtgate.toml", config(&source, &listed));
    let server = Server::start(&["--config", path.to_str().unwrap(), "--now", NOW]);
    let token = env.token_for("k1", &issuer, &format!(r#""{AUD}""#));
    assert_eq!(check(&server, &token), ok());
    assert_eq!(env.https.hits("/keys"), 1);
}

/// `jwks_allowed_hosts` is refused when malformed or without fetched keys,
/// naming file, line and key; `check-config` says where fetches may go. An
/// empty allow-list is refused for fetched keys as for local ones.
#[test]
fn jwks_allowed_hosts_is_checked_and_reported() {
    let dir = TempDir::new("jwks-hosts-config");
    dir.write("keys.jwks.json", jwks(&[rsa("k1")]));
    let block = |lines: &str| {
        format!(
            "default_action = \"deny\"\n\n[[token_config]]\nname = \"users\"\nissuer = \"{ISS}\"\n{lines}\n"
        )
    };
    let url = "jwks_url = \"https://127.0.0.1:9/jwks.json\"";
    let cases = [
        (
            block(&format!(
                "{url}\nalgorithms = [\"RS256\"]\njwks_allowed_hosts = [\"https://keys.example.com\"]"
            )),
            "8:23: token_config[0].jwks_allowed_hosts[0]: expected a host such as \"keys.example.com\" or \"keys.example.com:8443\": a host, not a URL: no scheme (the configured one applies)\n",
        ),
        (
            block(&format!(
                "{url}\nalgorithms = [\"RS256\"]\njwks_allowed_hosts = [\"keys.example.com:https\"]"
            )),
            "8:23: token_config[0].jwks_allowed_hosts[0]: expected a host such as \"keys.example.com\" or \"keys.example.com:8443\": the port is not a number from 1 to 65535\n",
        ),
        (
            block("jwks_file = \"keys.jwks.json\"\njwks_allowed_hosts = [\"keys.example.com\"]"),
            "7:22: token_config[0].jwks_allowed_hosts: applies to fetched keys only: set jwks_url or issuer_discovery = true\n",
        ),
        (
            block(&format!("{url}\nalgorithms = []")),
            "7:14: token_config[0].algorithms: the algorithm allow-list is empty: a fetched key set needs at least one algorithm, such as [\"RS256\"]\n",
        ),
    ];
    for (text, expected) in &cases {
        let path = dir.write("jwtgate.toml", text);
        let out = run_jwtgate(&["check-config", path.to_str().unwrap()], b"");
        let stderr = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{text}\nstderr: {stderr}");
        let want = format!("jwtgate: {}:{expected}", path.display());
        assert_eq!(stderr, want, "{text}");
    }

    let path = dir.write(
        "jwtgate.toml",
        block(&format!(
            "{url}\nalgorithms = [\"RS256\"]\njwks_allowed_hosts = [\"Keys.Example.com\", \"localhost:8443\"]"
        )),
    );
    let out = run_jwtgate(&["check-config", path.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr_of(&out));
    let report = String::from_utf8_lossy(&out.stdout);
    let line = "\n  redirects and jwks_uri may lead to: https://127.0.0.1:9 (configured), \
                https://keys.example.com:443 (jwks_allowed_hosts), https://localhost:8443 (jwks_allowed_hosts)\n";
    assert!(report.contains(line), "{report}");
}

/// A discovery document that later names a `jwks_uri` on another host makes
/// the refresh fail (logged, degraded, last good keys kept), and the
/// `jwks_uri` it gave before is not used instead, not even by a refetch.
#[test]
fn a_discovery_document_that_moves_its_keys_off_host_keeps_the_last_good_keys() {
    let env = Env::new("discovery-moves");
    let issuer = env.https.url("");
    env.https.set(
        DISCOVERY,
        discovery_document(&issuer, &env.https.url("/keys")),
    );
    env.https.set("/keys", Reply::json(jwks(&[rsa("k1")])));
    let source = format!("issuer_discovery = true\nissuer = \"{issuer}\"");
    let settings = format!("{FAST}refresh_interval = \"1s\"\n");
    let path = env.dir.write("jwtgate.toml", config(&source, &settings));
    let server = Server::start(&["--config", path.to_str().unwrap(), "--now", NOW]);
    let token = |kid: &str| env.token_for(kid, &issuer, &format!(r#""{AUD}""#));
    assert_eq!(check(&server, &token("k1")), ok());

    let elsewhere = other_host_url(&env, "/elsewhere");
    env.https
        .set(DISCOVERY, discovery_document(&issuer, &elsewhere));
    wait_for_stderr(
        &server,
        &failure(&format!(
            "fetch failed (keeping the last good key set): discovery {issuer}{DISCOVERY}: \
             jwks_uri {elsewhere} refused: {}\n",
            off_host(&env)
        )),
    );
    let old_uri_hits = env.https.hits("/keys");
    env.https
        .set("/keys", Reply::json(jwks(&[rsa("k1"), rsa("k2")])));
    // A refetch asks discovery again, which still points off host.
    assert_eq!(check(&server, &token("k2")), refused("unknown_kid"));
    let failures = metric(&server, FAILURES);
    wait_for_metric(&server, FAILURES, failures + 1.0);
    assert_eq!(check(&server, &token("k2")), refused("unknown_kid"));
    assert_eq!(check(&server, &token("k1")), ok());
    assert_degraded(&server);
    assert_eq!(env.https.hits("/keys"), old_uri_hits);
    assert_eq!(env.https.hits("/elsewhere"), 0);
}

/// A reload that shortens `refresh_interval` takes effect from the last
/// fetch, not after the old interval (600 s here) runs out.
#[test]
fn a_reload_that_shortens_the_refresh_interval_refetches_on_the_new_schedule() {
    let env = Env::new("reload-refresh");
    env.publish(&[rsa("k1")]);
    let server = env.serve(&format!("{FAST}refresh_interval = \"600s\"\n"));
    assert_eq!(check(&server, &env.rs256("k1")), ok());
    assert_eq!(env.https.hits(JWKS), 1);

    let text = std::fs::read_to_string(env.config_path()).unwrap();
    let changed = text.replace("refresh_interval = \"600s\"", "refresh_interval = \"001s\"");
    assert_ne!(text, changed);
    rewrite_unnoticed(&env.config_path(), &changed);
    server.sighup();
    wait_for_generation(&server, 2.0);
    wait_until(&server, "a refetch on the new schedule", || {
        (env.https.hits(JWKS) >= 3).then_some(())
    });
}

/// `check-config --fetch` fetches every remote key set once and says what
/// came back; a source that cannot be had makes it exit 1, with the reason.
#[test]
fn check_config_fetch_reports_each_remote_key_set() {
    let mut env = Env::new("check-config-fetch");
    env.publish(&[rsa("k1"), rsa("k2")]);
    let path = env.write_config(FAST);
    let out = run_jwtgate(&["check-config", path.to_str().unwrap(), "--fetch"], b"");
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{report}\nstderr: {}",
        stderr_of(&out)
    );
    let want = format!(
        "\nfetched key sets:\n  token_config \"users\": 2 keys from {}\n    key kid \"k1\"",
        env.url()
    );
    assert!(report.contains(&want), "{report}");
    assert!(report.contains("\n    key kid \"k2\""), "{report}");
    assert_eq!(env.https.hits(JWKS), 1);

    env.https.down();
    let out = run_jwtgate(&["check-config", path.to_str().unwrap(), "--fetch"], b"");
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    let want = format!("  token_config \"users\": fetch failed: {}", env.url());
    assert!(report.contains(&want), "{report}");
}
