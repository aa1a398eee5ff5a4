//! End to end through a real nginx, asserting what the ORIGIN sees: an
//! origin whose own routing decides. nginx plays both parts, in one process:
//!
//! - the origin, a `server` block on its own port that routes on nginx's
//!   normalised `$uri` (decoded, dot-segments resolved, slashes merged):
//!   `location /admin/ { return 200 "admin\n"; }`, `location =
//!   /v1/users:batchDelete` (`batch`), `location /v1/` (`v1`), `location ~
//!   ^/users/[^/]+/?$` (`user`) and `location / { return 200 "public\n"; }`;
//! - two fronts, each protecting it with `auth_request` to a real `jwtgate
//!   serve` as the README recipe does (`X-Original-URI $request_uri`,
//!   `X-Original-Method $request_method`, `forwarded = "x-original"`), then
//!   proxying: one with `proxy_pass http://origin;` (no URI: the raw request
//!   URI goes on and the origin normalises it itself), one with `proxy_pass
//!   http://origin/;` in `location /` (nginx decodes, normalises and
//!   re-encodes). The `return`s are in the origin block because nginx runs
//!   `return` in the rewrite phase, before the access phase where
//!   `auth_request` runs: a `return` in the front would answer unchecked.
//!
//! jwtgate's policy: `/admin/**` and `/v1/users:batchDelete` require scope
//! `admin`, `/users/{id}` and `/v1/**` a valid token; anything else open,
//! through `default_action = "allow"` or through a catch-all rule with
//! `on_missing = "allow"`. Every path spelling of the dodge battery
//! (`common/spellings.rs`, the same bytes `tests/dodges.rs` sends to jwtgate
//! directly) is sent as raw bytes over a `TcpStream`: without a token, no
//! protected location may answer; with a `read`-scope token, neither
//! `admin` nor `batch` may. The plain spellings reach their locations with
//! the right token (`/admin/users` with an admin token answers `admin`).
//!
//! What nginx itself refuses with 400 before jwtgate is asked (fine: nothing
//! reaches the origin). Seen with Debian's nginx-light 1.22.1, the same in
//! front of both origins and with both fallbacks; each run prints its own
//! list on stderr (`--nocapture`):
//! - malformed escapes anywhere in the path (`%`, `%zz`, `%4`, `%G1`, `%%`,
//!   `%2`: `/admin%`, `/admin%zz/users`, `/%zz/admin`);
//! - `%00` anywhere (`/admin%00`, `/admin%00.json/users`,
//!   `/x/..%00/admin/users`); other escaped controls (`%0a`, `%09`, `%7f`,
//!   `%1F`, `%01`) are NOT refused by nginx and reach jwtgate;
//! - raw controls in the request line (tab, 0x01, 0x7F, NUL);
//! - a target starting with a backslash (`\admin/users`, `\admin\users`);
//!   a backslash later in the path reaches jwtgate;
//! - dot-segments that climb above the root (`/../admin`,
//!   `/../../admin/users`);
//! - absolute-form with userinfo (`http://user@api.example.com/admin`).
//!
//! nginx refuses no other spelling of the battery (raw `#`, `%2F`/`%5C`/
//! `%3F`/`%23`, double encoding, invalid UTF-8, trailing slashes, `..;`,
//! `;params`, `%2e%2e`, case, `//`, the other absolute forms): those go to
//! jwtgate in `X-Original-URI`, and a 400 from jwtgate reaches the client as
//! nginx's 500 (`auth_request` passes on only 2xx, 401 and 403).
//!
//! Against the reading before the canonical one (commit b607d44) these tests
//! failed, in front of both origins: `/v1/users%3AbatchDelete` and
//! `/v1/users:batchDelete#` with a read-scope token reached `batch` (the
//! origin decodes `%3A`; nginx ends the path at a raw `#`), and `/users/7/`,
//! `/users/7/.`, `/users/7/x/..`, `/users/7//`, `/users/7/#` without a token
//! reached `user` (a trailing slash the template rule did not take).
//!
//! nginx is the Debian package (`/usr/sbin/nginx`, or `nginx` on the PATH). A
//! machine without it fails these tests with a message saying so, unless
//! `JWTGATE_SKIP_E2E=1` is set (then they print a note and pass), as in
//! `tests/e2e_nginx.rs`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;
#[path = "common/spellings.rs"]
mod spellings;

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::TempDir;
use common::server::{Conn, IO_TIMEOUT, Response, Server};
use common::{mint, signing_key};
use jwtgate::Algorithm;
use spellings::{Spelling, spellings};

const NOW: &str = "1700000000";
const T: i64 = 1_700_000_000;
const ISS: &str = "https://idp.test/";
const AUD: &str = "api";
const KID: &str = "rsa-a";
/// How long nginx may take to answer its readiness probe.
const NGINX_START: Duration = Duration::from_secs(30);
/// Attempts at starting nginx on fresh ports.
const NGINX_ATTEMPTS: usize = 5;
/// What the origin answers on its admin location.
const ADMIN_BODY: &[u8] = b"admin\n";
/// What the origin answers on its `users:batchDelete` location.
const BATCH_BODY: &[u8] = b"batch\n";

// ---------------------------------------------------------------------------
// Finding and running nginx (as in tests/e2e_nginx.rs)
// ---------------------------------------------------------------------------

/// The nginx binary, or `None` when the test is to be skipped; panics when
/// nginx is missing and skipping was not asked for.
#[allow(clippy::print_stderr)]
fn nginx_binary() -> Option<PathBuf> {
    let skip = std::env::var("JWTGATE_SKIP_E2E").is_ok_and(|v| v == "1");
    let candidates = std::iter::once(PathBuf::from("/usr/sbin/nginx")).chain(
        std::env::var_os("PATH")
            .map(|path| {
                std::env::split_paths(&path)
                    .map(|dir| dir.join("nginx"))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default(),
    );
    for candidate in candidates {
        if candidate.is_file() {
            return Some(candidate);
        }
    }
    if skip {
        eprintln!("e2e_origin: nginx not found; skipped because JWTGATE_SKIP_E2E=1");
        return None;
    }
    panic!(
        "e2e_origin: nginx not found (looked for /usr/sbin/nginx and nginx on PATH). \
         Install it (Debian: apt-get install nginx-light or nginx) or set JWTGATE_SKIP_E2E=1 \
         to skip the end-to-end tests."
    );
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// How a front passes the request on to the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Front {
    /// `proxy_pass http://origin;`: the raw request URI.
    RawUri,
    /// `proxy_pass http://origin/;` in `location /`: nginx's normalised URI, re-encoded.
    NormalizedUri,
}

impl Front {
    fn name(self) -> &'static str {
        match self {
            Front::RawUri => "proxy_pass http://origin; (raw URI)",
            Front::NormalizedUri => "proxy_pass http://origin/; (normalised URI)",
        }
    }
}

/// A running nginx (master and one worker) in its own temp prefix: the
/// origin and the two fronts.
struct Nginx {
    child: Child,
    raw_front: SocketAddr,
    normalized_front: SocketAddr,
    stderr: Arc<Mutex<Vec<u8>>>,
    /// Dropped after the process is gone (fields drop after `Drop::drop`).
    _dir: TempDir,
}

/// Three distinct free ports. nginx cannot listen on an ephemeral port and
/// report it, so ports are found by binding 127.0.0.1:0 and dropping the
/// listeners; another process may take one in between, hence retries.
fn free_ports() -> [u16; 3] {
    let listeners: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let ports: Vec<u16> = listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect();
    [ports[0], ports[1], ports[2]]
}

impl Nginx {
    fn start(binary: &PathBuf, jwtgate: SocketAddr) -> Nginx {
        let mut failures = Vec::new();
        for attempt in 1..=NGINX_ATTEMPTS {
            let ports = free_ports();
            match Nginx::try_start(binary, ports, jwtgate) {
                Ok(nginx) => return nginx,
                Err(why) => failures.push(format!("attempt {attempt} (ports {ports:?}): {why}")),
            }
        }
        panic!("nginx did not start:\n{}", failures.join("\n"));
    }

    fn try_start(binary: &PathBuf, ports: [u16; 3], jwtgate: SocketAddr) -> Result<Nginx, String> {
        let [origin, raw_front, normalized_front] = ports;
        let dir = TempDir::new("e2e-origin");
        let root = dir.root().display().to_string();
        let user = if running_as_root() {
            // The workers would otherwise drop to `nobody`; keeping root keeps
            // the temp prefix writable for them.
            "user root;\n"
        } else {
            ""
        };
        // The check location of the README recipe, shared by both fronts.
        let check = format!(
            r#"location = /_jwtgate {{
            internal;
            proxy_pass http://{jwtgate};
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header Host $host;
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Original-Method $request_method;
        }}"#
        );
        let conf = format!(
            r#"{user}daemon off;
master_process on;
worker_processes 1;
error_log stderr;
pid {root}/nginx.pid;
events {{
    worker_connections 256;
}}
http {{
    access_log off;
    default_type text/plain;
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    # The origin: routes on its own normalised $uri.
    server {{
        listen 127.0.0.1:{origin};
        location /admin/ {{
            return 200 "admin\n";
        }}
        location = /v1/users:batchDelete {{
            return 200 "batch\n";
        }}
        location /v1/ {{
            return 200 "v1\n";
        }}
        location ~ ^/users/[^/]+/?$ {{
            return 200 "user\n";
        }}
        location / {{
            return 200 "public\n";
        }}
    }}
    # Front 1: the raw request URI goes on to the origin.
    server {{
        listen 127.0.0.1:{raw_front};
        location = /_ready {{
            return 204;
        }}
        location / {{
            auth_request /_jwtgate;
            proxy_pass http://127.0.0.1:{origin};
        }}
        {check}
    }}
    # Front 2: nginx's normalised URI, re-encoded, goes on to the origin.
    server {{
        listen 127.0.0.1:{normalized_front};
        location = /_ready {{
            return 204;
        }}
        location / {{
            auth_request /_jwtgate;
            proxy_pass http://127.0.0.1:{origin}/;
        }}
        {check}
    }}
}}
"#
        );
        let conf_path = dir.write("nginx.conf", conf);
        let mut child = Command::new(binary)
            .arg("-p")
            .arg(dir.root())
            .arg("-c")
            .arg(&conf_path)
            .args(["-e", "stderr"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", binary.display()))?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut pipe = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut chunk = [0_u8; 4096];
            while let Ok(n) = pipe.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        let mut nginx = Nginx {
            child,
            raw_front: SocketAddr::from(([127, 0, 0, 1], raw_front)),
            normalized_front: SocketAddr::from(([127, 0, 0, 1], normalized_front)),
            stderr,
            _dir: dir,
        };
        nginx.wait_ready(nginx.raw_front)?;
        nginx.wait_ready(nginx.normalized_front)?;
        Ok(nginx)
    }

    /// Ready when `GET /_ready` on `addr` is answered `204` by nginx itself
    /// (a `Server: nginx` header: not some other process that took the port).
    /// Fails early when nginx exits (a port taken in between, typically).
    fn wait_ready(&mut self, addr: SocketAddr) -> Result<(), String> {
        let deadline = Instant::now() + NGINX_START;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the stderr thread catch the last words.
                std::thread::sleep(Duration::from_millis(50));
                return Err(format!("nginx exited ({status}): {}", self.stderr_text()));
            }
            if let Ok(mut stream) = TcpStream::connect(addr) {
                stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                stream
                    .write_all(b"GET /_ready HTTP/1.1\r\nHost: ready\r\nConnection: close\r\n\r\n")
                    .map_err(|e| format!("probe write: {e}"))?;
                let mut answer = Vec::new();
                let _ = stream.read_to_end(&mut answer);
                let text = String::from_utf8_lossy(&answer).to_ascii_lowercase();
                if text.starts_with("http/1.1 204") && text.contains("\r\nserver: nginx") {
                    return Ok(());
                }
                return Err(format!("the port answered, but not as our nginx: {text:?}"));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no answer within {NGINX_START:?}; stderr: {}",
                    self.stderr_text()
                ));
            }
            // Poll interval of the readiness probe (nginx cannot say when it
            // listens); the probe's answer, not the time, decides.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn front(&self, front: Front) -> SocketAddr {
        match front {
            Front::RawUri => self.raw_front,
            Front::NormalizedUri => self.normalized_front,
        }
    }

    fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM makes the master stop its workers and exit; a SIGKILL to
        // the master alone would leave the worker orphaned on the port.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// jwtgate and the stack
// ---------------------------------------------------------------------------

/// How jwtgate lets through what its admin rule does not take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fallback {
    /// `default_action = "allow"`.
    DefaultAllow,
    /// `default_action = "deny"` and a catch-all `/**` with `on_missing = "allow"`.
    CatchAll,
}

fn config_text(fallback: Fallback) -> String {
    let (default_action, catch_all) = match fallback {
        Fallback::DefaultAllow => ("allow", ""),
        Fallback::CatchAll => (
            "deny",
            "\n[[rule]]\nname = \"open\"\npaths = [\"/**\"]\ntoken_configs = [\"users\"]\non_missing = \"allow\"\n",
        ),
    };
    format!(
        r#"default_action = "{default_action}"

[server]
forwarded = "x-original"
shards = 1

[[token_config]]
name = "users"
jwks_file = "keys.jwks.json"
issuer = "{ISS}"
audiences = ["{AUD}"]

[[rule]]
name = "admin"
paths = ["/admin/**"]
token_configs = ["users"]
require_claims = [ {{ claim = "scope", contains = "admin" }} ]

[[rule]]
name = "batch"
paths = ["/v1/users:batchDelete"]
token_configs = ["users"]
require_claims = [ {{ claim = "scope", contains = "admin" }} ]

[[rule]]
name = "user"
paths = ["/users/{{id}}"]
token_configs = ["users"]

[[rule]]
name = "v1"
paths = ["/v1/**"]
token_configs = ["users"]
{catch_all}"#
    )
}

struct Stack {
    // Declared first: nginx goes before jwtgate.
    nginx: Nginx,
    jwtgate: Server,
    _dir: TempDir,
}

impl Stack {
    fn start(fallback: Fallback) -> Option<Stack> {
        let binary = nginx_binary()?;
        let dir = TempDir::new("e2e-origin-jwtgate");
        dir.write(
            "keys.jwks.json",
            format!(r#"{{"keys":[{}]}}"#, common::rsa_jwk(KID)),
        );
        let path = dir.write("jwtgate.toml", config_text(fallback));
        let jwtgate = Server::start(&["--config", path.to_str().unwrap(), "--now", NOW]);
        let nginx = Nginx::start(&binary, jwtgate.addr());
        Some(Stack {
            nginx,
            jwtgate,
            _dir: dir,
        })
    }

    /// `GET target` through `front`, exactly these bytes, on a fresh
    /// connection; the answer or why there is none.
    fn get(&self, front: Front, target: &[u8], token: Option<&str>) -> Result<Response, String> {
        let mut bytes = b"GET ".to_vec();
        bytes.extend_from_slice(target);
        bytes.extend_from_slice(b" HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n");
        if let Some(token) = token {
            bytes.extend_from_slice(format!("Authorization: Bearer {token}\r\n").as_bytes());
        }
        bytes.extend_from_slice(b"\r\n");
        let mut conn = Conn::open(self.nginx.front(front));
        conn.send(&bytes);
        conn.try_read_response()
    }

    fn context(&self) -> String {
        format!(
            "nginx stderr:\n{}\njwtgate stderr:\n{}",
            self.nginx.stderr_text(),
            self.jwtgate.stderr_text()
        )
    }
}

fn token(sub: &str, scope: &str) -> String {
    mint(
        &format!(r#"{{"alg":"RS256","kid":"{KID}","typ":"JWT"}}"#),
        &format!(
            r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"{sub}","scope":"{scope}","iat":{T},"exp":{}}}"#,
            T + 3600
        ),
        &signing_key("rsa2048-a", Algorithm::Rs256),
        Algorithm::Rs256,
    )
}

/// `status body` (body trimmed to a line), or why there was no answer.
fn shown(answer: &Result<Response, String>) -> String {
    match answer {
        Ok(r) => {
            let body = String::from_utf8_lossy(&r.body);
            let first = body.lines().next().unwrap_or_default();
            format!("{} {first:?}", r.status)
        }
        Err(e) => format!("no answer: {e}"),
    }
}

/// The origin's answer from a location this token may not reach: with no
/// token, any protected one; with a read-scope token, those needing admin.
fn forbidden_location(answer: &Result<Response, String>, token: Option<&str>) -> Option<String> {
    let Ok(r) = answer else { return None };
    let forbidden: &[&[u8]] = match token {
        None => &[ADMIN_BODY, BATCH_BODY, b"v1\n", b"user\n"],
        Some(_) => &[ADMIN_BODY, BATCH_BODY],
    };
    (r.status == 200 && forbidden.contains(&r.body.as_slice()))
        .then(|| String::from_utf8_lossy(&r.body).trim_end().to_owned())
}

/// A 400 from nginx itself (jwtgate's own 400 would reach the client as
/// nginx's 500: `auth_request` only passes on 401 and 403).
fn refused_by_nginx(answer: &Result<Response, String>) -> bool {
    matches!(answer, Ok(r) if r.status == 400)
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// The spellings sent, of every protected location, and whether that
/// location needs the admin scope (then a read-scope token is sent too).
fn battery() -> Vec<(Spelling, bool)> {
    let mut all: Vec<(Spelling, bool)> = Vec::new();
    for (base, admin) in [
        ("/admin/users", true),
        ("/admin", true),
        ("/v1/users:batchDelete", true),
        ("/users/7", false),
        ("/v1/orders", false),
    ] {
        for spelling in spellings(base) {
            if !all.iter().any(|(s, _)| *s == spelling) {
                all.push((spelling, admin));
            }
        }
    }
    all
}

#[allow(clippy::print_stderr)]
fn origin_serves_protected_locations_only_with_their_token(fallback: Fallback) {
    let Some(stack) = Stack::start(fallback) else {
        return;
    };
    let admin = token("alice", "read admin");
    let read = token("alice", "read");
    let fronts = [Front::RawUri, Front::NormalizedUri];

    // The plain spellings.
    let plain: &[(&[u8], Option<&str>, &str)] = &[
        (b"/admin/users", Some(&admin), "200 admin"),
        (b"/v1/users:batchDelete", Some(&admin), "200 batch"),
        (b"/v1/users%3AbatchDelete", Some(&admin), "200 batch"),
        (b"/users/7", Some(&read), "200 user"),
        (b"/users/7/", Some(&read), "200 user"),
        (b"/v1/orders", Some(&read), "200 v1"),
        (b"/other", None, "200 public"),
        (b"/admin/users", Some(&read), "403"),
        (b"/v1/users:batchDelete", Some(&read), "403"),
        (b"/admin/users", None, "401"),
        (b"/users/7", None, "401"),
        (b"/v1/orders", None, "401"),
    ];
    for front in fronts {
        for &(target, token, want) in plain {
            let answer = stack.get(front, target, token);
            let got = match &answer {
                Ok(r) if r.status == 200 => {
                    format!("200 {}", String::from_utf8_lossy(&r.body).trim_end())
                }
                Ok(r) => r.status.to_string(),
                Err(e) => format!("no answer: {e}"),
            };
            assert_eq!(
                got,
                want,
                "[{fallback:?}] {}: {} with {}\n{}",
                front.name(),
                target.escape_ascii(),
                match token {
                    None => "no token",
                    Some(t) if t == admin => "an admin token",
                    Some(_) => "a read-scope token",
                },
                stack.context()
            );
        }
    }

    // The battery: never a protected location without the token it needs.
    let mut failures = Vec::new();
    let mut refused = Vec::new();
    let mut tally: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    let mut checked = 0;
    for (spelling, needs_admin) in battery() {
        for front in fronts {
            for (label, token) in [
                ("no token", None),
                ("read-scope token", Some(read.as_str())),
            ] {
                if token.is_some() && !needs_admin {
                    continue;
                }
                checked += 1;
                let answer = stack.get(front, &spelling.target, token);
                if let Some(location) = forbidden_location(&answer, token) {
                    failures.push(format!(
                        "{} | class {} | {} | {label}: the origin answered {location:?}",
                        front.name(),
                        spelling.class,
                        spelling.shown()
                    ));
                }
                *tally
                    .entry(format!("{} {label}: {}", front.name(), shown(&answer)))
                    .or_default() += 1;
                if token.is_none() && refused_by_nginx(&answer) {
                    refused.push(format!(
                        "{} | class {} | {}",
                        front.name(),
                        spelling.class,
                        spelling.shown()
                    ));
                }
            }
        }
    }
    eprintln!(
        "[{fallback:?}] nginx refused with 400 ({} spellings x fronts, no token):\n  {}",
        refused.len(),
        refused.join("\n  ")
    );
    eprintln!("[{fallback:?}] answers to the battery:");
    for (answer, count) in &tally {
        eprintln!("  {count:4} x {answer}");
    }
    if !failures.is_empty() {
        let mut text = format!(
            "[{fallback:?}] {} of {checked} requests reached a protected location of the origin without the token it needs:\n",
            failures.len()
        );
        for failure in &failures {
            let _ = writeln!(text, "  {failure}");
        }
        panic!("{text}");
    }
}

#[test]
fn origin_protected_locations_default_allow() {
    origin_serves_protected_locations_only_with_their_token(Fallback::DefaultAllow);
}

#[test]
fn origin_protected_locations_catch_all_on_missing_allow() {
    origin_serves_protected_locations_only_with_their_token(Fallback::CatchAll);
}
