//! Integration tests of the verified-token cache through the real binary:
//! what it may never change (a token whose key left by a reload, a JWKS
//! rotation or a key set gone stale is refused on the next request; a rule's
//! `require_claims` and another token configuration's issuer and audience
//! are checked as without a cache; an expired token is refused at the same
//! second), and how it is set and observed (`[server] token_cache_entries`
//! and `token_cache_max_age`, `--token-cache-entries`, their errors,
//! `check-config`, `jwtgate_token_cache_*` on `/metrics`, `token_cache` in
//! `/stats`).
//!
//! A test that claims an invalidation first shows that the cache served the
//! token (the `result="hit"` lookups of its token configuration rose), so
//! that a cache that never stores anything cannot pass it. Lookups are
//! counted before the answer is written and a scrape asks every shard
//! synchronously, so counts read after an answer are exact; every server
//! runs one shard (one cache) unless a test is about shards.
//!
//! Every jwtgate runs on ephemeral loopback ports (harness in
//! `common/server.rs`) with the token clock pinned by `--now`; fetched keys
//! come from the local HTTPS server of `common/https.rs`. Reloads, fetches
//! and expiries are awaited by polling `/metrics` or an answer with a
//! deadline: nothing sleeps for readiness.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use crate::common;

use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use common::TempDir;
use common::https::{Ca, HttpsServer, Reply};
use common::server::{Conn, Response, Server, request_bytes, run_jwtgate, run_jwtgate_bounded};
use common::{mint, rewrite_unnoticed, signing_key};
use jwtgate::Algorithm;
use jwtgate::internals::SigningKey;

/// The pinned token clock, as `--now` takes it.
const NOW: &str = "1700000000";
const T: i64 = 1_700_000_000;
const ISS: &str = "https://idp.test/";
const AUD: &str = "api";
/// Where the JWKS server publishes the key set.
const JWKS: &str = "/jwks.json";
/// The leeway a token configuration has unless it says otherwise.
const DEFAULT_LEEWAY: i64 = 60;

/// Bound on any awaited effect (a reload, a fetch, keys going stale).
const POLL_TIMEOUT: Duration = Duration::from_secs(20);
/// Interval between two polls.
const POLL: Duration = Duration::from_millis(20);
/// Bound on a run of the binary expected to exit by itself.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// The cache's documented bounds, as the messages and defaults state them.
const DEFAULT_ENTRIES: u64 = 4096;
/// What a default cache holds before any entry: its slots.
const EMPTY_BYTES: u64 = DEFAULT_ENTRIES * jwtgate::TokenCache::SLOT_BYTES as u64;
const TOO_MANY_ENTRIES: &str = "at most 1048576 entries per shard (0 turns the cache off)";

// ---------------------------------------------------------------------------
// Keys, tokens, configurations
// ---------------------------------------------------------------------------

/// `rsa2048-a` as an RS256 JWK named `kid`: the key sets here tell keys
/// apart by kid, which is all a kid-selecting verifier sees.
fn rsa(kid: &str) -> String {
    common::rsa_jwk(kid)
}

/// `{"keys":[...]}` of these JWKs.
fn jwks(keys: &[String]) -> String {
    format!(r#"{{"keys":[{}]}}"#, keys.join(","))
}

/// Claims for `iss`, audience `aud` (JSON), subject `sub`, valid at [`T`]
/// for an hour; `extra` is appended inside the object (`,"k":v`).
fn claims(iss: &str, aud: &str, sub: &str, extra: &str) -> String {
    format!(
        r#"{{"iss":"{iss}","aud":{aud},"sub":"{sub}","iat":{T},"exp":{}{extra}}}"#,
        T + 3600
    )
}

/// A scratch directory for the configuration and key files, and the key
/// every token is signed with.
struct Env {
    dir: TempDir,
    rsa: SigningKey,
}

impl Env {
    fn new(label: &str) -> Env {
        Env {
            dir: TempDir::new(&format!("token-cache-{label}")),
            rsa: signing_key("rsa2048-a", Algorithm::Rs256),
        }
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        self.dir.write(name, contents)
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path("jwtgate.toml")
    }

    /// Writes `text` as `jwtgate.toml` and serves it with `extra` flags.
    fn serve(&self, text: &str, extra: &[&str]) -> Server {
        self.serve_file("jwtgate.toml", text, extra)
    }

    /// [`Env::serve`] from the file `name`: a second server beside a
    /// running one must not rewrite the file the first one watches.
    fn serve_file(&self, name: &str, text: &str, extra: &[&str]) -> Server {
        let path = self.write(name, text);
        let mut args = vec!["--config", path.to_str().unwrap(), "--now", NOW];
        args.extend_from_slice(extra);
        Server::start(&args)
    }

    /// An RS256 token naming `kid` over exactly these claims.
    fn token(&self, kid: &str, claims: &str) -> String {
        mint(
            &format!(r#"{{"alg":"RS256","kid":"{kid}","typ":"JWT"}}"#),
            claims,
            &self.rsa,
            Algorithm::Rs256,
        )
    }

    /// A valid token of the `users` configurations below, naming `kid`.
    fn user(&self, kid: &str, sub: &str) -> String {
        self.token(kid, &claims(ISS, &format!(r#""{AUD}""#), sub, ""))
    }
}

/// One shard, a `users` token configuration over the key file `jwks_file`,
/// required on `/v1/**`; `server` goes into the `[server]` table.
fn users_config(server: &str, jwks_file: &str) -> String {
    format!(
        r#"default_action = "deny"

[server]
shards = 1
{server}

[[token_config]]
name = "users"
jwks_file = "{jwks_file}"
issuer = "{ISS}"
audiences = ["{AUD}"]

[[rule]]
name = "api"
paths = ["/v1/**"]
token_configs = ["users"]
"#
    )
}

/// An [`Env`] whose `users` keys are fetched from a local HTTPS server (its
/// CA written beside the configuration as `ca.pem`).
struct Remote {
    env: Env,
    https: HttpsServer,
}

impl Remote {
    fn new(label: &str) -> Remote {
        let env = Env::new(label);
        let ca = Ca::new(label);
        env.write("ca.pem", ca.pem());
        Remote {
            https: HttpsServer::start(&ca),
            env,
        }
    }

    /// The JWKS server answers `keys` from now on.
    fn publish(&self, keys: &[String]) {
        self.https.set(JWKS, Reply::json(jwks(keys)));
    }

    /// Serves `users` fetching from the JWKS server with `settings` added
    /// to its token configuration; refetches at most once a second.
    fn serve(&self, settings: &str) -> Server {
        let text = format!(
            r#"default_action = "deny"

[server]
shards = 1

[[token_config]]
name = "users"
jwks_url = "{url}"
ca_file = "ca.pem"
algorithms = ["RS256"]
issuer = "{ISS}"
audiences = ["{AUD}"]
min_refetch_interval = "1s"
fetch_timeout = "1s"
startup_timeout = "2s"
{settings}

[[rule]]
name = "api"
paths = ["/v1/**"]
token_configs = ["users"]
"#,
            url = self.https.url(JWKS)
        );
        self.env.serve(&text, &[])
    }
}

// ---------------------------------------------------------------------------
// Requests, the admin port
// ---------------------------------------------------------------------------

/// `GET path` with the bearer `token` on `conn`.
fn ask(conn: &mut Conn, path: &str, token: &str) -> Response {
    let bearer = format!("Bearer {token}");
    conn.request(&request_bytes(
        "GET",
        path,
        &[("Authorization", &bearer)],
        b"",
    ))
}

/// Status and `x-jwtgate-outcome` of an answer.
fn answer(response: &Response) -> (u16, String) {
    let outcome = response
        .header("x-jwtgate-outcome")
        .unwrap_or_else(|| panic!("no x-jwtgate-outcome in\n{}", response.head_text()));
    (response.status, outcome.to_owned())
}

/// [`ask`] `GET /v1/orders` on a fresh connection: status and outcome.
fn check(server: &Server, token: &str) -> (u16, String) {
    answer(&ask(&mut Conn::open(server.addr()), "/v1/orders", token))
}

fn ok() -> (u16, String) {
    (200, "valid".to_owned())
}

fn refused(outcome: &str) -> (u16, String) {
    (401, outcome.to_owned())
}

fn admin_get(server: &Server, path: &str) -> Response {
    let mut conn = Conn::open(server.admin_addr());
    conn.send(&request_bytes("GET", path, &[], b""));
    conn.try_read_response()
        .unwrap_or_else(|e| panic!("GET {path} on the admin port: {e}"))
}

fn scrape(server: &Server) -> String {
    let r = admin_get(server, "/metrics");
    assert_eq!(r.status, 200, "{}", r.head_text());
    r.body_text().to_owned()
}

/// The `token_cache` object of `/stats`.
fn cache_stats(server: &Server) -> serde_json::Value {
    let r = admin_get(server, "/stats");
    assert_eq!(r.status, 200, "{}", r.head_text());
    let stats: serde_json::Value = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("/stats is not JSON ({e}): {}", r.body_text()));
    stats["token_cache"].clone()
}

/// Every sample of metric `name` (exactly: not `name_suffix`), as
/// `(series with labels, value)` in the order printed.
fn samples(text: &str, name: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter(|(series, _)| series.split('{').next() == Some(name))
        .map(|(series, value)| (series.to_owned(), value.to_owned()))
        .collect()
}

/// The value of the one sample `series`, if printed.
fn sample(text: &str, series: &str) -> Option<u64> {
    let name = series.split('{').next().unwrap();
    let found: Vec<_> = samples(text, name)
        .into_iter()
        .filter(|(printed, _)| printed == series)
        .collect();
    assert!(found.len() <= 1, "{series} printed twice:\n{text}");
    found.first().map(|(_, value)| {
        value
            .parse()
            .unwrap_or_else(|e| panic!("{series} {value}: {e}"))
    })
}

/// Cache lookups of one token configuration since start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Lookups {
    misses: u64,
    hits: u64,
}

fn lookups_in(text: &str, config: &str) -> Lookups {
    let count = |result: &str| {
        let series = format!(
            r#"jwtgate_token_cache_lookups_total{{token_config="{config}",result="{result}"}}"#
        );
        sample(text, &series)
    };
    match (count("miss"), count("hit")) {
        (Some(misses), Some(hits)) => Lookups { misses, hits },
        // A configuration is printed once it has a lookup, with both series.
        (None, None) => Lookups { misses: 0, hits: 0 },
        _ => panic!("one of the hit and miss series of {config} without the other:\n{text}"),
    }
}

fn lookups(server: &Server, config: &str) -> Lookups {
    lookups_in(&scrape(server), config)
}

fn counted(misses: u64, hits: u64) -> Lookups {
    Lookups { misses, hits }
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

/// Waits for configuration `generation` (or a later one) to be in force.
fn wait_for_generation(server: &Server, generation: u64) {
    wait_until(server, &format!("config generation {generation}"), || {
        sample(&scrape(server), "jwtgate_config_generation").filter(|&seen| seen >= generation)
    });
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

/// Sends `token` until one answer (each of them valid) came from the cache:
/// for servers whose key state may be replaced between two requests (a
/// periodic refresh makes a new one, and its first lookup is a miss).
fn wait_for_a_hit(server: &Server, config: &str, token: &str) {
    let before = lookups(server, config);
    wait_until(server, &format!("a cache hit for {config}"), || {
        assert_eq!(check(server, token), ok());
        (lookups(server, config).hits > before.hits).then_some(())
    });
}

// ---------------------------------------------------------------------------
// Invalidation: reloads, rotation, stale keys
// ---------------------------------------------------------------------------

/// The file names have one length, so that the configuration can be
/// rewritten in place (same size and time) for a SIGHUP-only reload.
const KEYS_BEFORE: &str = "keys-one.jwks.json";
const KEYS_AFTER: &str = "keys-two.jwks.json";

/// Serves `users` over [`KEYS_BEFORE`] (kids `kept` and `dropped`), shows
/// that a `dropped` token is served from the cache, runs `reload` (which
/// puts in force a key set without `dropped`) and checks that the next
/// request with that token is refused, while a `kept` token still passes
/// (verified again under the new key state: a miss, then a hit).
fn cached_token_refused_after(reload: impl FnOnce(&Env, &Server)) {
    let env = Env::new("reload");
    env.write(KEYS_BEFORE, &jwks(&[rsa("kept"), rsa("dropped")]));
    env.write(KEYS_AFTER, &jwks(&[rsa("kept")]));
    let server = env.serve(&users_config("", KEYS_BEFORE), &[]);
    let dropped = env.user("dropped", "alice");
    let kept = env.user("kept", "bob");
    let mut conn = Conn::open(server.addr());
    for _ in 0..2 {
        assert_eq!(answer(&ask(&mut conn, "/v1/orders", &dropped)), ok());
    }
    assert_eq!(answer(&ask(&mut conn, "/v1/orders", &kept)), ok());
    assert_eq!(lookups(&server, "users"), counted(2, 1));

    reload(&env, &server);
    wait_for_generation(&server, 2);
    // The connection opened before the reload asks again.
    assert_eq!(
        answer(&ask(&mut conn, "/v1/orders", &dropped)),
        refused("unknown_kid")
    );
    assert_eq!(lookups(&server, "users"), counted(3, 1));
    for _ in 0..2 {
        assert_eq!(answer(&ask(&mut conn, "/v1/orders", &kept)), ok());
    }
    assert_eq!(lookups(&server, "users"), counted(4, 2));
}

/// A SIGHUP reload of a configuration rewritten to name a key file without
/// the token's key.
#[test]
fn a_cached_token_is_refused_after_a_sighup_reload_drops_its_key() {
    cached_token_refused_after(|env, server| {
        let text = std::fs::read_to_string(env.config_path()).unwrap();
        let changed = text.replace(KEYS_BEFORE, KEYS_AFTER);
        assert_ne!(text, changed);
        rewrite_unnoticed(&env.config_path(), &changed);
        server.sighup();
    });
}

/// The file watcher's reload of the key file, rewritten without the
/// token's key (the configuration untouched).
#[test]
fn a_cached_token_is_refused_after_its_key_leaves_the_watched_key_file() {
    cached_token_refused_after(|env, _| {
        env.write(KEYS_BEFORE, &jwks(&[rsa("kept")]));
    });
}

/// The JWKS URL rotates `k1` out for `k2`: a `k1` token served from the
/// cache is refused on its next request once the new set is in force, and
/// `k2` tokens pass (and are cached in their turn).
#[test]
fn a_cached_token_is_refused_after_the_jwks_url_rotates_its_key_out() {
    let remote = Remote::new("rotation");
    remote.publish(&[rsa("k1")]);
    let server = remote.serve("");
    let old = remote.env.user("k1", "alice");
    for _ in 0..2 {
        assert_eq!(check(&server, &old), ok());
    }
    assert_eq!(lookups(&server, "users"), counted(1, 1));

    remote.publish(&[rsa("k2")]);
    let new = remote.env.user("k2", "alice");
    // Its first request is refused unknown_kid and asks for the refetch
    // (throttled to one a second) that brings k2.
    wait_for_answer(&server, &new, &ok(), &[refused("unknown_kid")]);
    // Polled: an unknown kid raised just before the fetch that brought k2
    // asks for one more a second later, a new key state whose first lookup
    // is a miss.
    wait_for_a_hit(&server, "users", &new);
    let before = lookups(&server, "users");
    assert_eq!(check(&server, &old), refused("unknown_kid"));
    assert_eq!(
        lookups(&server, "users"),
        counted(before.misses + 1, before.hits),
        "the k1 token verified afresh, not served from the cache"
    );
    assert!(remote.https.hits(JWKS) >= 2);
}

/// With the JWKS server down past `max_stale`, a token served from the
/// cache is refused `keys_unavailable` without the cache being asked; when
/// the server is back, the token is verified afresh under the new key state.
#[test]
fn a_cached_token_is_refused_keys_unavailable_once_its_keys_are_stale() {
    let mut remote = Remote::new("stale");
    remote.publish(&[rsa("k1")]);
    // A refresh every second (each a new key state) keeps the keys fresh
    // while the server is up and finds it down soon after.
    let server = remote.serve("refresh_interval = \"1s\"\nmax_stale = \"2s\"\n");
    let valid = remote.env.user("k1", "alice");
    wait_for_a_hit(&server, "users", &valid);

    remote.https.down();
    wait_for_answer(&server, &valid, &refused("keys_unavailable"), &[ok()]);
    let unavailable = lookups(&server, "users");
    assert_eq!(check(&server, &valid), refused("keys_unavailable"));
    assert_eq!(
        lookups(&server, "users"),
        unavailable,
        "keys_unavailable is answered before any lookup"
    );

    remote.https.up();
    wait_for_answer(&server, &valid, &ok(), &[refused("keys_unavailable")]);
    assert_eq!(
        lookups(&server, "users"),
        counted(unavailable.misses + 1, unavailable.hits),
        "the first answer under the fetched keys is a fresh verification"
    );
}

// ---------------------------------------------------------------------------
// What a hit may not change: rule requirements, other configurations, time
// ---------------------------------------------------------------------------

/// Two rules over one `users` configuration, the strict one requiring an
/// `admin` scope, both forwarding claims that need the token's JSON read
/// back faithfully (escapes, non-ASCII, nesting, arrays) and the payload.
fn two_rules_config() -> String {
    let forward = r#"forward_claims = { name = "x-jwt-name", "realm.level" = "x-jwt-level", roles = "x-jwt-roles" }"#;
    format!(
        r#"default_action = "deny"

[server]
shards = 1
forward_payload = true

[[token_config]]
name = "users"
jwks_file = "keys.jwks.json"
issuer = "{ISS}"
audiences = ["{AUD}"]

[[rule]]
name = "lax"
paths = ["/lax/**"]
token_configs = ["users"]
{forward}

[[rule]]
name = "strict"
paths = ["/strict/**"]
token_configs = ["users"]
require_claims = [ {{ claim = "scope", contains = "admin" }} ]
{forward}
"#
    )
}

/// A token cached through a lax rule gets, on a rule that requires a claim
/// it lacks, the answer a server without a cache gives: the same status
/// line, headers (identity and forwarded claims included) and body, for a
/// token that meets the requirement and one that does not.
#[test]
fn a_token_cached_on_a_lax_rule_is_answered_on_a_strict_rule_as_without_a_cache() {
    let env = Env::new("rules");
    env.write("keys.jwks.json", &jwks(&[rsa("rsa-a")]));
    let text = two_rules_config();
    let token = |sub: &str, scope: &str| {
        let extra = format!(
            r#","scope":"{scope}","name":"Zo\u00eb \"Z\" \\ \ud83d\ude00","realm":{{"level":3}},"roles":["a","b,c"]"#
        );
        env.token("rsa-a", &claims(ISS, &format!(r#""{AUD}""#), sub, &extra))
    };
    let reader = token("reader", "read");
    let admin = token("admin", "read admin");

    let run = |server: &Server| -> Vec<(String, Vec<u8>)> {
        let mut conn = Conn::open(server.addr());
        let mut answers = Vec::new();
        for token in [&reader, &admin] {
            for path in ["/lax/a", "/strict/a", "/lax/b", "/strict/b"] {
                let r = ask(&mut conn, path, token);
                answers.push((r.head_text(), r.body));
            }
        }
        answers
    };
    let cached = env.serve(&text, &[]);
    let with_cache = run(&cached);
    assert_eq!(lookups(&cached, "users"), counted(2, 6));
    let uncached = env.serve_file("uncached.toml", &text, &["--token-cache-entries", "0"]);
    let without_cache = run(&uncached);
    assert_eq!(lookups(&uncached, "users"), counted(0, 0));

    for (index, (with, without)) in with_cache.iter().zip(&without_cache).enumerate() {
        assert_eq!(
            with, without,
            "answer {index} differs with the cache on (left) and off (right)"
        );
    }
    assert_eq!(with_cache.len(), 8);
    // And the answers are the ones the rules call for.
    let status = |index: usize| with_cache[index].0.lines().next().unwrap().to_owned();
    for index in [0, 2, 4, 5, 6, 7] {
        assert_eq!(status(index), "HTTP/1.1 200 OK", "answer {index}");
    }
    for index in [1, 3] {
        assert_eq!(status(index), "HTTP/1.1 403 Forbidden", "answer {index}");
        assert!(
            with_cache[index]
                .0
                .contains("x-jwtgate-outcome: insufficient_scope\r\n"),
            "{}",
            with_cache[index].0
        );
    }
    let allowed = &with_cache[4].0;
    for header in [
        "x-jwt-sub: admin\r\n",
        "x-jwt-level: 3\r\n",
        "x-jwt-name: Zo%C3%AB%20\"Z\"%20\\%20%F0%9F%98%80\r\n",
    ] {
        assert!(allowed.contains(header), "no {header:?} in\n{allowed}");
    }
}

/// Three token configurations find the same token in the same header and
/// check it with the same key, but want another issuer (`beta`) or another
/// audience (`gamma`) than `alpha`: each token passes only where it
/// belongs, whether the configuration that accepts it saw it before or
/// after the others, and each configuration counts its own lookups.
#[test]
fn token_configurations_that_find_the_same_token_never_share_an_entry() {
    let env = Env::new("configs");
    env.write("keys.jwks.json", &jwks(&[rsa("rsa-a")]));
    const OTHER_ISS: &str = "https://other-idp.test/";
    let text = format!(
        r#"default_action = "deny"

[server]
shards = 1

[[token_config]]
name = "alpha"
jwks_file = "keys.jwks.json"
issuer = "{ISS}"
audiences = ["{AUD}"]

[[token_config]]
name = "beta"
jwks_file = "keys.jwks.json"
issuer = "{OTHER_ISS}"
audiences = ["{AUD}"]

[[token_config]]
name = "gamma"
jwks_file = "keys.jwks.json"
issuer = "{ISS}"
audiences = ["other"]

[[rule]]
name = "alpha"
paths = ["/alpha/**"]
token_configs = ["alpha"]

[[rule]]
name = "beta"
paths = ["/beta/**"]
token_configs = ["beta"]

[[rule]]
name = "gamma"
paths = ["/gamma/**"]
token_configs = ["gamma"]
"#
    );
    let server = env.serve(&text, &[]);
    let api = format!(r#""{AUD}""#);
    // (token, the configuration that accepts it, what each other one says).
    let cases = [
        (
            env.token("rsa-a", &claims(ISS, &api, "a", "")),
            "alpha",
            [("beta", "wrong_issuer"), ("gamma", "wrong_audience")],
        ),
        (
            env.token("rsa-a", &claims(OTHER_ISS, &api, "b", "")),
            "beta",
            [("alpha", "wrong_issuer"), ("gamma", "wrong_issuer")],
        ),
        (
            env.token("rsa-a", &claims(ISS, r#""other""#, "c", "")),
            "gamma",
            [("alpha", "wrong_audience"), ("beta", "wrong_issuer")],
        ),
    ];
    let mut conn = Conn::open(server.addr());
    for (token, accepting, others) in &cases {
        let refusals = |conn: &mut Conn, when: &str| {
            for (config, outcome) in others {
                assert_eq!(
                    answer(&ask(conn, &format!("/{config}/x"), token)),
                    refused(outcome),
                    "{config}, {when} {accepting} cached the token"
                );
            }
        };
        refusals(&mut conn, "before");
        for _ in 0..2 {
            assert_eq!(
                answer(&ask(&mut conn, &format!("/{accepting}/x"), token)),
                ok(),
                "{accepting}"
            );
        }
        refusals(&mut conn, "after");
    }
    // Each: its own token once missed and once hit; the two others' tokens
    // twice each, refused, never stored.
    let text = scrape(&server);
    for config in ["alpha", "beta", "gamma"] {
        assert_eq!(lookups_in(&text, config), counted(5, 1), "{config}\n{text}");
    }
}

/// With the clock pinned at `exp + leeway - 1` a token passes twice, the
/// second time from the cache; a server pinned one second later refuses it
/// `expired`, every time (a refusal is never stored).
#[test]
fn a_token_passes_from_the_cache_until_exp_plus_leeway_and_not_at_it() {
    let env = Env::new("expiry");
    let jwks_file = env.write("keys.jwks.json", &jwks(&[rsa("rsa-a")]));
    let exp = T + 600;
    let token = env.token(
        "rsa-a",
        &format!(r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"alice","iat":{T},"exp":{exp}}}"#),
    );
    let serve_at = |now: i64| {
        Server::start(&[
            "--jwks",
            jwks_file.to_str().unwrap(),
            "--issuer",
            ISS,
            "--audience",
            AUD,
            "--shards",
            "1",
            "--now",
            &now.to_string(),
        ])
    };
    let answers = |server: &Server| -> Vec<(u16, String)> {
        let mut conn = Conn::open(server.addr());
        (0..2)
            .map(|_| answer(&ask(&mut conn, "/", &token)))
            .collect()
    };
    // The flags-only policy names its one token configuration `default`.
    let last_second = serve_at(exp + DEFAULT_LEEWAY - 1);
    assert_eq!(answers(&last_second), [ok(), ok()]);
    assert_eq!(lookups(&last_second, "default"), counted(1, 1));
    let expired = serve_at(exp + DEFAULT_LEEWAY);
    assert_eq!(answers(&expired), [refused("expired"), refused("expired")]);
    assert_eq!(lookups(&expired, "default"), counted(2, 0));
}

// ---------------------------------------------------------------------------
// Settings and what the admin port reports
// ---------------------------------------------------------------------------

/// `(capacity, entries, bytes, evictions)` per shard, from `/metrics`.
fn shard_gauges(text: &str, shards: usize) -> Vec<[u64; 4]> {
    (0..shards)
        .map(|shard| {
            [
                "jwtgate_token_cache_capacity",
                "jwtgate_token_cache_entries",
                "jwtgate_token_cache_bytes",
                "jwtgate_token_cache_evictions_total",
            ]
            .map(|name| {
                let series = format!(r#"{name}{{shard="{shard}"}}"#);
                sample(text, &series).unwrap_or_else(|| panic!("no {series} in:\n{text}"))
            })
        })
        .collect()
}

/// `token_cache_entries = 0` in the `[server]` table and
/// `--token-cache-entries 0`: requests are answered as before, no lookup is
/// counted, and both `/metrics` and `/stats` say capacity 0.
#[test]
fn entries_0_turns_the_cache_off() {
    let env = Env::new("off");
    env.write("keys.jwks.json", &jwks(&[rsa("rsa-a")]));
    let token = env.user("rsa-a", "alice");
    for (how, text, extra) in [
        (
            "the [server] table",
            users_config("token_cache_entries = 0", "keys.jwks.json"),
            &[][..],
        ),
        (
            "the flag",
            users_config("", "keys.jwks.json"),
            &["--token-cache-entries", "0"][..],
        ),
    ] {
        let server = env.serve(&text, extra);
        let mut conn = Conn::open(server.addr());
        for _ in 0..3 {
            assert_eq!(answer(&ask(&mut conn, "/v1/orders", &token)), ok(), "{how}");
        }
        let text = scrape(&server);
        assert_eq!(
            samples(&text, "jwtgate_token_cache_lookups_total"),
            Vec::<(String, String)>::new(),
            "{how}\n{text}"
        );
        assert_eq!(
            sample(
                &text,
                r#"jwtgate_requests_total{rule="api",token_config="users",outcome="valid",action="allow",face="http"}"#
            ),
            Some(3),
            "{how}: the requests themselves are counted\n{text}"
        );
        assert_eq!(shard_gauges(&text, 1), [[0, 0, 0, 0]], "{how}\n{text}");
        assert_eq!(
            cache_stats(&server),
            serde_json::json!({
                "capacity": 0, "entries": 0, "bytes": 0, "evictions": 0,
                "hits": 0, "misses": 0, "hit_ratio": 0.0
            }),
            "{how}"
        );
    }
}

/// By default each of two shards holds 4096 entries; a token repeated on
/// one connection (one shard) is a miss, then hits; `/stats` sums the
/// shards and its `hit_ratio` is hits over lookups.
#[test]
fn by_default_each_shard_holds_4096_and_a_repeated_token_misses_once() {
    let env = Env::new("default");
    env.write("keys.jwks.json", &jwks(&[rsa("rsa-a")]));
    let text = users_config("", "keys.jwks.json").replace("shards = 1", "shards = 2");
    let server = env.serve(&text, &[]);
    assert_eq!(server.shards(), 2, "{}", server.ready_line());
    let empty = [DEFAULT_ENTRIES, 0, EMPTY_BYTES, 0];
    assert_eq!(shard_gauges(&scrape(&server), 2), [empty, empty]);
    assert_eq!(
        cache_stats(&server),
        serde_json::json!({
            "capacity": 2 * DEFAULT_ENTRIES, "entries": 0, "bytes": 2 * EMPTY_BYTES, "evictions": 0,
            "hits": 0, "misses": 0, "hit_ratio": 0.0
        })
    );

    let mut conn = Conn::open(server.addr());
    let alice = env.user("rsa-a", "alice");
    let bob = env.user("rsa-a", "bob");
    for token in [&alice, &alice, &alice, &bob, &bob, &alice] {
        assert_eq!(answer(&ask(&mut conn, "/v1/orders", token)), ok());
    }
    let text = scrape(&server);
    assert_eq!(lookups_in(&text, "users"), counted(2, 4));
    let gauges = shard_gauges(&text, 2);
    // One connection is one shard: its cache holds both tokens, the other none.
    let (used, idle) = if gauges[0][1] > 0 {
        (gauges[0], gauges[1])
    } else {
        (gauges[1], gauges[0])
    };
    assert_eq!(idle, empty, "{text}");
    assert_eq!(
        (used[0], used[1], used[3]),
        (DEFAULT_ENTRIES, 2, 0),
        "{text}"
    );
    // Two RS256 tokens of about 600 bytes: their copies and decoded JSON,
    // within the documented budget of 4096 bytes an entry, besides the slots.
    let entries_bytes = used[2] - EMPTY_BYTES;
    assert!(
        entries_bytes > 1000 && entries_bytes <= 2 * 4096,
        "bytes {}\n{text}",
        used[2]
    );

    let stats = cache_stats(&server);
    assert_eq!(
        (
            &stats["capacity"],
            &stats["entries"],
            &stats["bytes"],
            &stats["evictions"],
            &stats["hits"],
            &stats["misses"]
        ),
        (
            &(2 * DEFAULT_ENTRIES).into(),
            &2.into(),
            &(used[2] + idle[2]).into(),
            &0.into(),
            &4.into(),
            &2.into()
        ),
        "{stats}"
    );
    let ratio = stats["hit_ratio"].as_f64().unwrap();
    assert!((ratio - 4.0 / 6.0).abs() < 1e-4, "hit_ratio {ratio}");
}

/// Runs `jwtgate serve` with `args`, expecting it to refuse to start.
fn serve_to_exit(args: &[&str]) -> Output {
    let mut all = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ];
    all.extend_from_slice(args);
    run_jwtgate_bounded(&all, RUN_TIMEOUT)
}

/// 1-based `(line, column)` of the first `needle` in `text`.
fn position(text: &str, needle: &str) -> (usize, usize) {
    let offset = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in the text"));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = offset - before.rfind('\n').map_or(0, |n| n + 1) + 1;
    (line, column)
}

const WHOLE_SECONDS: &str =
    "expected whole seconds, at least 1s: cached entries are aged by the second";

/// A cache larger than a shard may hold and a maximum age of zero (or a
/// fraction of a second) are
/// refused at start-up naming the file, line, column and key (by
/// `check-config` too); the flag is refused naming itself.
#[test]
fn cache_settings_out_of_range_are_refused() {
    let env = Env::new("errors");
    env.write("keys.jwks.json", &jwks(&[rsa("rsa-a")]));
    let cases = [
        (
            "token_cache_entries = 2000000",
            "2000000",
            "server.token_cache_entries",
            TOO_MANY_ENTRIES,
        ),
        (
            "token_cache_max_age = \"0s\"",
            "\"0s\"",
            "server.token_cache_max_age",
            WHOLE_SECONDS,
        ),
        // Entries are aged by the second: a fraction would be rounded away.
        (
            "token_cache_max_age = \"1500ms\"",
            "\"1500ms\"",
            "server.token_cache_max_age",
            WHOLE_SECONDS,
        ),
        (
            "token_cache_max_age = \"five minutes\"",
            "\"five minutes\"",
            "server.token_cache_max_age",
            "expected a duration such as \"500ms\", \"60s\", \"10m\" or \"1h\"",
        ),
    ];
    for (setting, at, key, message) in cases {
        let text = users_config(setting, "keys.jwks.json");
        let path = env.write("jwtgate.toml", &text);
        let path = path.to_str().unwrap();
        let (line, column) = position(&text, at);
        let expected = format!("jwtgate: {path}:{line}:{column}: {key}: {message}\n");
        let out = serve_to_exit(&["--config", path]);
        assert_eq!(out.status.code(), Some(2), "{setting}: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), expected, "{setting}");
        let out = run_jwtgate(&["check-config", path], b"");
        assert_eq!(
            out.status.code(),
            Some(2),
            "check-config, {setting}: {out:?}"
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            expected,
            "check-config, {setting}"
        );
    }

    let jwks_file = env.dir.path("keys.jwks.json");
    let jwks_file = jwks_file.to_str().unwrap();
    for (flag, value, message) in [
        ("--token-cache-entries", "2000000", TOO_MANY_ENTRIES),
        ("--token-cache-max-age", "0", WHOLE_SECONDS),
        ("--token-cache-max-age", "0.5", WHOLE_SECONDS),
    ] {
        let out = serve_to_exit(&["--jwks", jwks_file, flag, value]);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!("jwtgate: {flag}: {message}\n")
        );
    }
}

/// `check-config` says how large the cache is and for how long an entry is
/// used, or that it is off.
#[test]
fn check_config_reports_the_token_cache() {
    let env = Env::new("check");
    env.write("keys.jwks.json", &jwks(&[rsa("rsa-a")]));
    for (setting, line) in [
        (
            "",
            "  token cache: 4096 verified tokens per shard (at most 17 MiB), each used for at most 300s",
        ),
        (
            "token_cache_entries = 1024\ntoken_cache_max_age = \"90s\"",
            "  token cache: 1024 verified tokens per shard (at most 4.2 MiB), each used for at most 90s",
        ),
        (
            "token_cache_max_age = \"2m\"",
            "  token cache: 4096 verified tokens per shard (at most 17 MiB), each used for at most 120s",
        ),
        // The largest allowed (checked, not allocated).
        (
            "token_cache_entries = 1048576",
            "  token cache: 1048576 verified tokens per shard (at most 4352 MiB), each used for at most 300s",
        ),
        // Rounded up to whole sets of 8, and the bound said to a tenth of a MiB.
        (
            "token_cache_entries = 1000",
            "  token cache: 1000 verified tokens per shard (at most 4.2 MiB), each used for at most 300s",
        ),
        (
            "token_cache_entries = 10",
            "  token cache: 16 verified tokens per shard (at most 0.1 MiB), each used for at most 300s",
        ),
        ("token_cache_entries = 0", "  token cache: off"),
    ] {
        let path = env.write("jwtgate.toml", &users_config(setting, "keys.jwks.json"));
        let out = run_jwtgate(&["check-config", path.to_str().unwrap()], b"");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{setting:?}: {out:?}");
        let found: Vec<&str> = stdout
            .lines()
            .filter(|text| text.starts_with("  token cache:"))
            .collect();
        assert_eq!(found, [line], "{setting:?}:\n{stdout}");
    }
}
