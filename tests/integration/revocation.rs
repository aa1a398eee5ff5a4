//! Revocations end to end: `jwtgate revoke` writes to the store a
//! `[revocation]` table names (a file, or a real `redis-server` shared by two
//! instances), and every instance refuses the covered tokens, cached ones
//! included: by jti, by subject cut-off, by key; an entry that expires
//! stops counting; a store that fails keeps its last set, degrades
//! readiness, and after `max_stale` applies `on_unavailable`.
//!
//! redis-server comes from Debian's package (installed by `.ci/run`; the
//! tests start their own on a free loopback port). A machine without it
//! fails the Redis tests with a message saying so, unless
//! `JWTGATE_SKIP_E2E=1` is set.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use crate::common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::TempDir;
use common::server::{Conn, Response, Server, run_jwtgate};

const ISS: &str = "https://demo.jwtgate.invalid/";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A token of the demo keys: `alg` RS256 (kid demo-rs256) or ES256 (kid
/// demo-es256), for `sub`, issued at `iat`, with these extra claims.
fn token(alg: &str, sub: &str, iat: i64, claims: &str) -> String {
    let (key, kid) = match alg {
        "RS256" => ("demo-rs256.pk8.pem", "demo-rs256"),
        _ => ("demo-es256.pk8.pem", "demo-es256"),
    };
    let out = run_jwtgate(
        &[
            "mint",
            "--key",
            common::repo_path(&format!("examples/keys/{key}"))
                .to_str()
                .unwrap(),
            "--alg",
            alg,
            "--kid",
            kid,
            "--iss",
            ISS,
            "--aud",
            "demo-api",
            "--sub",
            sub,
            "--now",
            &iat.to_string(),
            "--ttl",
            "600",
            "--claims",
            claims,
            "--threads",
            "1",
        ],
        b"",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A configuration over the demo keys with this `[revocation]` table.
fn config(dir: &TempDir, revocation: &str) -> PathBuf {
    dir.write(
        "jwtgate.toml",
        format!(
            r#"default_action = "deny"

[revocation]
{revocation}

[[token_config]]
name = "users"
jwks_file = "{jwks}"
algorithms = ["RS256", "ES256"]
issuer = "{ISS}"
audiences = ["demo-api"]
max_lifetime = "1h"
require = ["exp", "iat"]

[[rule]]
name = "api"
paths = ["/**"]
token_configs = ["users"]
"#,
            jwks = common::repo_path("examples/keys/demo.jwks.json").display()
        ),
    )
}

fn check(server: &Server, token: &str) -> Response {
    Conn::open(server.addr()).request(
        format!("GET /v1/orders HTTP/1.1\r\nhost: api\r\nauthorization: Bearer {token}\r\n\r\n")
            .as_bytes(),
    )
}

/// The outcome a check gets (`valid` for a 200).
fn outcome(server: &Server, token: &str) -> String {
    let response = check(server, token);
    match response.status {
        200 => "valid".to_owned(),
        _ => response
            .header("x-jwtgate-outcome")
            .unwrap_or("?")
            .to_owned(),
    }
}

/// Polls until `server` gives `token` the outcome `wanted` (a store's change
/// reaches a server on its own schedule; how fast is the benchmark's to
/// measure, scripts/bench-revocation.sh).
fn until(server: &Server, token: &str, wanted: &str) {
    let start = Instant::now();
    loop {
        let got = outcome(server, token);
        if got == wanted {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{token:.20}… still {got}, not {wanted}\nstderr: {}",
            server.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn revoke(config: &Path, args: &[&str]) -> String {
    let mut all = vec!["revoke", "--config", config.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = run_jwtgate(&all, b"");
    assert!(
        out.status.success(),
        "jwtgate {all:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn admin_get(server: &Server, path: &str) -> Response {
    Conn::open(server.admin_addr())
        .request(format!("GET {path} HTTP/1.1\r\nhost: admin\r\n\r\n").as_bytes())
}

#[test]
fn each_kind_of_revocation_refuses_what_it_names_cached_tokens_included() {
    let dir = TempDir::new("revocation-file");
    dir.write("revoked.jsonl", "");
    let config = config(&dir, "file = \"revoked.jsonl\"\non_unavailable = \"deny\"");
    let server = Server::start(&[
        "--config",
        config.to_str().unwrap(),
        "--verify-listen",
        "127.0.0.1:0",
    ]);
    let t = now();
    let alice = token("RS256", "alice", t - 10, r#"{"jti":"alice-1"}"#);
    let alice_other = token("RS256", "alice", t - 10, r#"{"jti":"alice-2"}"#);
    let bob_old = token("RS256", "bob", t - 100, r#"{"jti":"bob-1"}"#);
    let bob_new = token("RS256", "bob", t + 30, r#"{"jti":"bob-2"}"#);
    let es = token("ES256", "carol", t - 10, r#"{"jti":"carol-1"}"#);
    for token in [&alice, &alice_other, &bob_old, &bob_new, &es] {
        // On a connection each, sixteen times: every shard verifies the
        // token and then answers it from its token cache.
        for _ in 0..16 {
            assert_eq!(outcome(&server, token), "valid");
        }
    }

    // One token, by its jti: refused at once it is read, cached or not.
    let said = revoke(&config, &["--jti", "alice-1", "--issuer", ISS]);
    assert!(said.contains("revoked jti \"alice-1\""), "{said}");
    until(&server, &alice, "revoked");
    // Every shard refuses it, though each had it cached.
    for _ in 0..16 {
        assert_eq!(outcome(&server, &alice), "revoked");
    }
    let refused = check(&server, &alice);
    assert_eq!(refused.status, 401);
    assert_eq!(
        refused.header("www-authenticate"),
        Some("Bearer realm=\"jwtgate\", error=\"invalid_token\", error_description=\"revoked\"")
    );
    assert_eq!(outcome(&server, &alice_other), "valid");
    // The batch face too.
    let body = format!("{alice}\n{alice_other}\n");
    let batch = Conn::open(server.verify_addr().unwrap()).request(
        format!(
            "POST /v1/verify HTTP/1.1\r\nhost: api\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    let lines: Vec<&str> = batch.body_text().lines().collect();
    assert!(lines[0].contains("\"revoked\""), "{}", batch.body_text());
    assert!(lines[1].contains("\"valid\""), "{}", batch.body_text());

    // A subject's tokens issued before a cut-off.
    revoke(
        &config,
        &[
            "--subject",
            "bob",
            "--issuer",
            ISS,
            "--before",
            &t.to_string(),
        ],
    );
    until(&server, &bob_old, "revoked");
    assert_eq!(outcome(&server, &bob_new), "valid");

    // Every token one key signed, under its configuration.
    revoke(
        &config,
        &[
            "--kid",
            "demo-es256",
            "--token-config",
            "users",
            "--ttl",
            "720h",
        ],
    );
    until(&server, &es, "revoked");
    assert_eq!(outcome(&server, &alice_other), "valid");

    // A key revocation follows the key that verified the token, not the
    // header: a token signed with the revoked key and no kid is refused too.
    let no_kid = {
        let out = run_jwtgate(
            &[
                "mint",
                "--key",
                common::repo_path("examples/keys/demo-es256.pk8.pem")
                    .to_str()
                    .unwrap(),
                "--alg",
                "ES256",
                "--iss",
                ISS,
                "--aud",
                "demo-api",
                "--sub",
                "mallory",
                "--threads",
                "1",
            ],
            b"",
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    assert!(!no_kid.is_empty());
    let header = no_kid.split('.').next().unwrap();
    assert!(
        !String::from_utf8_lossy(&jwtgate_engine::base64url::decode(header.as_bytes()).unwrap())
            .contains("kid"),
        "the token names no kid"
    );
    assert_eq!(outcome(&server, &no_kid), "revoked");

    // What a store could not read back is refused before it is written.
    let out = run_jwtgate(
        &[
            "revoke",
            "--config",
            config.to_str().unwrap(),
            "--jti",
            "x",
            "--issuer",
            "",
            "--ttl",
            "1h",
        ],
        b"",
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("iss is empty") || stderr.contains("issuer \"\""),
        "{stderr}"
    );

    // Counted under its own outcome; listed by `revoke --list`.
    let metrics = admin_get(&server, "/metrics").body_text().to_owned();
    assert!(
        metrics.contains("outcome=\"revoked\""),
        "no revoked outcome in /metrics"
    );
    assert!(
        metrics.contains("jwtgate_revocations{kind=\"jti\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("jwtgate_revocations{kind=\"subject\"} 1"));
    assert!(metrics.contains("jwtgate_revocations{kind=\"kid\"} 1"));
    let listed = revoke(&config, &["--list"]);
    assert_eq!(listed.lines().count(), 3, "{listed}");
}

#[test]
fn a_revocation_stops_counting_when_it_expires() {
    let dir = TempDir::new("revocation-expiry");
    dir.write("revoked.jsonl", "");
    let config = config(&dir, "file = \"revoked.jsonl\"\non_unavailable = \"deny\"");
    let server = Server::start(&["--config", config.to_str().unwrap()]);
    let alice = token("RS256", "alice", now() - 10, r#"{"jti":"short"}"#);
    revoke(&config, &["--jti", "short", "--issuer", ISS, "--ttl", "3s"]);
    until(&server, &alice, "revoked");
    until(&server, &alice, "valid");
    // And the entry is dropped: no longer counted as in force.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = admin_get(&server, "/metrics").body_text().to_owned();
        if metrics.contains("jwtgate_revocations{kind=\"jti\"} 0") {
            break;
        }
        assert!(Instant::now() < deadline, "{metrics}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The TOML form: entries people write (date-times with offsets), read by
/// `serve`, appended to by `revoke` in the same form, listed; an edit that
/// does not read leaves the last set in force and says where it is wrong.
#[test]
fn a_toml_revocation_file_is_read_appended_to_and_its_errors_named() {
    let dir = TempDir::new("revocation-toml");
    let t = now();
    let written = format!(
        "# revoked by hand\n[[revoked]]\nsub = \"alice\"\niss = \"{ISS}\"\n\
         before = {}\nexpires = {}\n",
        // The cut-off as a date-time an hour east of UTC.
        rfc3339_plus_one_hour(t),
        t + 3_600
    );
    let file = dir.write("revoked.toml", &written);
    let config = config(&dir, "file = \"revoked.toml\"\non_unavailable = \"deny\"");
    let server = Server::start(&["--config", config.to_str().unwrap()]);
    let alice = token("RS256", "alice", t - 10, r#"{"jti":"toml-alice"}"#);
    let bob = token("RS256", "bob", t - 10, r#"{"jti":"toml-bob"}"#);
    assert_eq!(outcome(&server, &alice), "revoked");
    assert_eq!(outcome(&server, &bob), "valid");

    let said = revoke(&config, &["--jti", "toml-bob", "--issuer", ISS]);
    assert!(said.contains("revoked jti \"toml-bob\""), "{said}");
    until(&server, &bob, "revoked");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with(&written), "{text}");
    assert!(
        text.contains("\n[[revoked]]\njti = \"toml-bob\"\n"),
        "{text}"
    );
    let listed = revoke(&config, &["--list"]);
    assert!(listed.contains(r#""sub":"alice""#), "{listed}");
    assert!(listed.contains(r#""jti":"toml-bob""#), "{listed}");

    // A typo: the last set stays in force, and readiness names the line and
    // the member.
    let lines_before = text.lines().count();
    std::fs::write(
        &file,
        format!(
            "{text}\n[[revoked]]\njti = \"x\"\nissuer = \"{ISS}\"\nexpires = {}\n",
            t + 60
        ),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = admin_get(&server, "/readyz");
        let body = ready.body_text();
        if body.contains("degraded: revocations:") {
            let said = server.stderr_text();
            assert!(
                said.contains(&format!("revoked.toml:{}:", lines_before + 2))
                    && said.contains("unknown member \"issuer\""),
                "{said}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{body}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(outcome(&server, &alice), "revoked");
    assert_eq!(outcome(&server, &bob), "revoked");
}

/// A file appended to more often than it is polled (a `revoke` every half
/// second) never stays unchanged for a poll; it is still read, so a
/// revocation among the appends takes effect while they go on.
#[test]
fn a_file_that_keeps_changing_is_still_read() {
    let dir = TempDir::new("revocation-busy");
    let file = dir.write("revoked.jsonl", "");
    let config = config(&dir, "file = \"revoked.jsonl\"\non_unavailable = \"deny\"");
    let server = Server::start(&["--config", config.to_str().unwrap()]);
    let alice = token("RS256", "alice", now() - 10, r#"{"jti":"busy-alice"}"#);
    assert_eq!(outcome(&server, &alice), "valid");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let appender = {
        let (stop, file) = (std::sync::Arc::clone(&stop), file.clone());
        std::thread::spawn(move || {
            // Bounded by itself too: at most 30 s of appends.
            for n in 0..100 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let line = format!(
                    "{{\"jti\":\"busy-{n}\",\"iss\":\"{ISS}\",\"expires\":{}}}\n",
                    now() + 3_600
                );
                let mut out = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&file)
                    .unwrap();
                std::io::Write::write_all(&mut out, line.as_bytes()).unwrap();
                std::thread::sleep(Duration::from_millis(300));
            }
        })
    };
    revoke(&config, &["--jti", "busy-alice", "--issuer", ISS]);
    // Polled while the appends go on (they last longer than this wait).
    until(&server, &alice, "revoked");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    appender.join().unwrap();
}

/// `seconds` as RFC 3339 with a `+01:00` offset (coreutils' `date` does
/// the calendar).
fn rfc3339_plus_one_hour(seconds: i64) -> String {
    let out = Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("@{}", seconds + 3_600),
            "+%Y-%m-%dT%H:%M:%S+01:00",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn revoke_says_what_it_cannot_bound_and_the_configuration_must_choose() {
    let dir = TempDir::new("revocation-cli");
    dir.write("revoked.jsonl", "");
    // Without max_lifetime nothing bounds a token's life: --ttl is needed.
    let config_path = dir.write(
        "unbounded.toml",
        std::fs::read_to_string(config(
            &dir,
            "file = \"revoked.jsonl\"\non_unavailable = \"allow\"",
        ))
        .unwrap()
        .replace("max_lifetime = \"1h\"\n", ""),
    );
    let out = run_jwtgate(
        &[
            "revoke",
            "--config",
            config_path.to_str().unwrap(),
            "--jti",
            "x",
            "--issuer",
            ISS,
        ],
        b"",
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("sets no max_lifetime") && stderr.contains("--ttl"),
        "{stderr}"
    );

    // A jti may start with "-" (base64url) and is still the value.
    let said = revoke(
        &config_path,
        &["--jti", "-6zpT", "--issuer", ISS, "--ttl", "1h"],
    );
    assert!(said.contains("revoked jti \"-6zpT\""), "{said}");

    // What else nothing bounds, or what would match nothing, is refused.
    let bounded = config(&dir, "file = \"revoked.jsonl\"\non_unavailable = \"allow\"");
    let no_iat = dir.write(
        "no-iat.toml",
        std::fs::read_to_string(&bounded)
            .unwrap()
            .replace("require = [\"exp\", \"iat\"]\n", ""),
    );
    for (config_path, args, wanted) in [
        (
            &no_iat,
            vec!["--jti", "x", "--issuer", ISS],
            "accepts tokens without iat",
        ),
        (
            &bounded,
            vec!["--kid", "demo-es256", "--token-config", "users"],
            "give --ttl",
        ),
        (
            &bounded,
            vec![
                "--jti",
                "x",
                "--issuer",
                "https://demo.jwtgate.invalid",
                "--ttl",
                "1h",
            ],
            "would match nothing",
        ),
    ] {
        let out = run_jwtgate(
            &[
                &["revoke", "--config", config_path.to_str().unwrap()],
                &args[..],
            ]
            .concat(),
            b"",
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(wanted),
            "{args:?}: {stderr}"
        );
    }

    // A weaker revocation of the same token never weakens the one in force.
    let long = revoke(
        &bounded,
        &["--jti", "twice", "--issuer", ISS, "--ttl", "2h"],
    );
    let short = revoke(
        &bounded,
        &["--jti", "twice", "--issuer", ISS, "--ttl", "1s"],
    );
    let until = |said: &str| {
        said.split(" until ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(until(&long), until(&short), "{long}\n{short}");
    let listed = revoke(&bounded, &["--list"]);
    assert!(
        listed.contains(&format!(
            "\"jti\":\"twice\",\"iss\":\"{ISS}\",\"expires\":{}",
            until(&long)
        )),
        "{listed}"
    );

    // on_unavailable has no default, and one store only.
    for (table, wanted) in [
        ("file = \"revoked.jsonl\"", "on_unavailable"),
        (
            "file = \"revoked.jsonl\"\nredis_url = \"redis://127.0.0.1:1\"\non_unavailable = \"deny\"",
            "not both",
        ),
        (
            "file = \"missing.jsonl\"\non_unavailable = \"deny\"",
            "cannot read",
        ),
        (
            "redis_url = \"http://127.0.0.1:1\"\non_unavailable = \"deny\"",
            "redis://",
        ),
    ] {
        let path = config(&dir, table);
        let out = run_jwtgate(&["check-config", path.to_str().unwrap()], b"");
        assert!(!out.status.success(), "{table}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(wanted), "{table}: {stderr}");
    }
}

/// A `redis-server` on a loopback port of its own, killed when dropped.
struct Redis {
    child: Child,
    port: u16,
    dir: PathBuf,
    binary: PathBuf,
    /// Besides the port, persistence and the directory.
    options: Vec<String>,
}

impl Redis {
    fn start(binary: &Path, dir: &Path) -> Redis {
        let port = free_port();
        Redis::start_with(binary, dir, port, vec!["--port".into(), port.to_string()])
    }

    /// Listening on `port` as `options` say (plain `--port`, or `--tls-port`
    /// with its certificate options), with users and the like.
    fn start_with(binary: &Path, dir: &Path, port: u16, options: Vec<String>) -> Redis {
        let mut redis = Redis {
            child: Redis::spawn(binary, dir, &options),
            port,
            dir: dir.to_owned(),
            binary: binary.to_owned(),
            options,
        };
        redis.wait();
        redis
    }

    fn spawn(binary: &Path, dir: &Path, options: &[String]) -> Child {
        Command::new(binary)
            .args(options)
            .args(["--bind", "127.0.0.1", "--save", ""])
            // Every write on disk before it is acknowledged: a restart keeps
            // what was revoked.
            .args(["--appendonly", "yes", "--appendfsync", "always", "--dir"])
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    /// Polled: redis-server cannot say when it listens; the connect decides.
    fn wait(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        while TcpStream::connect(addr).is_err() {
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "redis-server exited"
            );
            assert!(Instant::now() < deadline, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn restart(&mut self) {
        self.stop();
        self.child = Redis::spawn(&self.binary, &self.dir, &self.options);
        self.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn two_instances_follow_one_redis_and_survive_its_outage() {
    let Some(binary) = common::required_tool("revocation", "redis-server", "redis-server") else {
        return;
    };
    let dir = TempDir::new("revocation-redis");
    let mut redis = Redis::start(&binary, dir.root());
    let deny = config(
        &dir,
        &format!(
            "redis_url = \"{}\"\nmax_stale = \"2s\"\non_unavailable = \"deny\"",
            redis.url()
        ),
    );
    let allow_dir = TempDir::new("revocation-redis-allow");
    let allow = config(
        &allow_dir,
        &format!(
            "redis_url = \"{}\"\nmax_stale = \"2s\"\non_unavailable = \"allow\"",
            redis.url()
        ),
    );
    let first = Server::start(&["--config", deny.to_str().unwrap()]);
    let second = Server::start(&["--config", allow.to_str().unwrap()]);
    let t = now();
    let alice = token("RS256", "alice", t - 10, r#"{"jti":"r-alice"}"#);
    let bob = token("RS256", "bob", t - 10, r#"{"jti":"r-bob"}"#);
    for server in [&first, &second] {
        assert_eq!(outcome(server, &alice), "valid");
    }

    // Revoked through one store, refused by both instances: a token, a
    // subject's earlier tokens, a key.
    revoke(&deny, &["--jti", "r-alice", "--issuer", ISS]);
    for server in [&first, &second] {
        until(server, &alice, "revoked");
        assert_eq!(outcome(server, &bob), "valid");
    }
    let carol = token("RS256", "carol", t - 10, r#"{"jti":"r-carol"}"#);
    let es = token("ES256", "dave", t - 10, r#"{"jti":"r-dave"}"#);
    revoke(
        &deny,
        &[
            "--subject",
            "carol",
            "--issuer",
            ISS,
            "--before",
            &t.to_string(),
        ],
    );
    revoke(
        &deny,
        &[
            "--kid",
            "demo-es256",
            "--token-config",
            "users",
            "--ttl",
            "720h",
        ],
    );
    for server in [&first, &second] {
        until(server, &carol, "revoked");
        until(server, &es, "revoked");
    }

    // Redis down: the last set stays in force and readiness says so.
    redis.stop();
    for server in [&first, &second] {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = admin_get(server, "/readyz");
            if ready.body_text().contains("degraded: revocations:") {
                break;
            }
            assert!(Instant::now() < deadline, "{}", ready.body_text());
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(outcome(server, &alice), "revoked");
    }
    // After max_stale: "deny" refuses every token and is not ready;
    // "allow" goes on with the last set.
    until(&first, &bob, "revocations_unavailable");
    assert_eq!(admin_get(&first, "/readyz").status, 503);
    assert_eq!(outcome(&second, &bob), "valid");
    assert_eq!(outcome(&second, &alice), "revoked");
    let metrics = admin_get(&first, "/metrics").body_text().to_owned();
    assert!(
        metrics.contains("jwtgate_revocation_store_up 0"),
        "{metrics}"
    );
    let counted = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics"))
    };
    assert!(counted("jwtgate_revocation_store_failures_total") >= 1);
    assert!(counted("jwtgate_revocation_store_reads_total") >= 1);
    // The subject and kid revocations arrived on the channel.
    assert!(counted("jwtgate_revocation_changes_total") >= 2);

    // Back: read again in full, ready, and the revocation (kept on disk)
    // still in force.
    redis.restart();
    until(&first, &bob, "valid");
    assert_eq!(outcome(&first, &alice), "revoked");
    assert_eq!(admin_get(&first, "/readyz").status, 200);
}

/// The README's Redis setup, for real: TLS only, the default user off, and
/// the two ACL users it documents, limited to the key prefix and the
/// change channel: `serve` reads with the read-only one, `revoke` writes
/// with the other. Entries expire by their own expiry. Wrong credentials,
/// an untrusted certificate and a plain connection are refused with an
/// error that never shows the password.
#[test]
fn revocations_travel_over_tls_with_acl_users_limited_to_the_prefix() {
    let Some(binary) = common::required_tool("revocation", "redis-server", "redis-server") else {
        return;
    };
    let dir = TempDir::new("revocation-redis-tls");
    let ca = common::https::Ca::new("redis");
    let (certificate, key) = ca.leaf_pem();
    let ca_file = dir.write("ca.pem", ca.pem());
    let certificate = dir.write("redis.pem", certificate);
    let key = dir.write("redis.key", key);
    let port = free_port();
    let serve_rights = "~jwtgate:revocation:* &jwtgate:revocation:changes \
                        +scan +mget +subscribe +unsubscribe +ping";
    let mut options: Vec<String> = [
        "--port",
        "0",
        "--tls-port",
        &port.to_string(),
        "--tls-cert-file",
        certificate.to_str().unwrap(),
        "--tls-key-file",
        key.to_str().unwrap(),
        "--tls-ca-cert-file",
        ca_file.to_str().unwrap(),
        "--tls-auth-clients",
        "no",
    ]
    .map(str::to_owned)
    .to_vec();
    for user in [
        "default off".to_owned(),
        format!("jwtgate-serve on >serve-secret resetchannels {serve_rights}"),
        format!(
            "jwtgate-admin on >admin-secret resetchannels {serve_rights} +get +set +publish +multi +exec"
        ),
    ] {
        // redis-server joins the words after `--user` into one directive.
        options.push("--user".to_owned());
        options.extend(user.split_whitespace().map(str::to_owned));
    }
    let _redis = Redis::start_with(&binary, dir.root(), port, options);

    let table = |user: &str, ca: bool| {
        let ca_line = if ca { "\nca_file = \"ca.pem\"" } else { "" };
        format!(
            "redis_url = \"rediss://{user}@localhost:{port}/0\"{ca_line}\non_unavailable = \"deny\""
        )
    };
    let serve_dir = TempDir::new("revocation-redis-tls-serve");
    serve_dir.write("ca.pem", ca.pem());
    let serve = config(&serve_dir, &table("jwtgate-serve:serve-secret", true));
    let admin_dir = TempDir::new("revocation-redis-tls-admin");
    admin_dir.write("ca.pem", ca.pem());
    let admin = config(&admin_dir, &table("jwtgate-admin:admin-secret", true));

    let server = Server::start(&["--config", serve.to_str().unwrap()]);
    let t = now();
    let alice = token("RS256", "alice", t - 10, r#"{"jti":"tls-alice"}"#);
    let bob = token("RS256", "bob", t - 10, r#"{"jti":"tls-bob"}"#);
    assert_eq!(outcome(&server, &alice), "valid");
    let said = revoke(&admin, &["--jti", "tls-alice", "--issuer", ISS]);
    assert!(!said.contains("admin-secret"), "{said}");
    until(&server, &alice, "revoked");
    // An entry with a short life: Redis drops its key, the instance its entry.
    revoke(
        &admin,
        &["--jti", "tls-bob", "--issuer", ISS, "--ttl", "3s"],
    );
    until(&server, &bob, "revoked");
    until(&server, &bob, "valid");
    assert_eq!(outcome(&server, &alice), "revoked");

    // The serving user may read, not write.
    let refused = |config: &Path, args: &[&str]| -> String {
        let out = run_jwtgate(
            &[&["revoke", "--config", config.to_str().unwrap()], args].concat(),
            b"",
        );
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{args:?}: {stderr}");
        for secret in ["serve-secret", "admin-secret", "wrong-secret"] {
            assert!(!stderr.contains(secret), "{stderr}");
        }
        stderr
    };
    let stderr = refused(&serve, &["--jti", "x", "--issuer", ISS]);
    assert!(stderr.to_lowercase().contains("noperm"), "{stderr}");
    // A wrong password, a certificate from an unknown CA, a plain
    // connection: nothing is read, and the error says why.
    let wrong_dir = TempDir::new("revocation-redis-tls-wrong");
    wrong_dir.write("ca.pem", ca.pem());
    let wrong = config(&wrong_dir, &table("jwtgate-serve:wrong-secret", true));
    let stderr = refused(&wrong, &["--list"]);
    assert!(
        stderr.to_lowercase().contains("auth") || stderr.contains("WRONGPASS"),
        "{stderr}"
    );
    let untrusted_dir = TempDir::new("revocation-redis-tls-untrusted");
    let untrusted = config(&untrusted_dir, &table("jwtgate-serve:serve-secret", false));
    let stderr = refused(&untrusted, &["--list"]);
    assert!(stderr.to_lowercase().contains("certificate"), "{stderr}");
    let plain_dir = TempDir::new("revocation-redis-tls-plain");
    let plain = config(
        &plain_dir,
        &format!(
            "redis_url = \"redis://jwtgate-serve:serve-secret@localhost:{port}/0\"\non_unavailable = \"deny\""
        ),
    );
    refused(&plain, &["--list"]);
    // What serve lists is what is in force, read with the serving user.
    let listed = revoke(&serve, &["--list"]);
    assert!(listed.contains(r#""jti":"tls-alice""#), "{listed}");
    assert!(!listed.contains("tls-bob"), "{listed}");
}
