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
//! (`tests/common/spellings.rs`, the same bytes `dodges.rs` sends to jwtgate
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
//! `e2e_nginx.rs`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use crate::common;
use crate::common::spellings;

use std::fmt::Write as _;
use std::net::SocketAddr;

use common::TempDir;
use common::nginx::{Nginx, READY_LOCATION, nginx_binary};
use common::server::{Conn, Response, Server};
use common::{mint, signing_key};
use jwtgate::Algorithm;
use spellings::{Spelling, spellings};

const NOW: &str = "1700000000";
const T: i64 = 1_700_000_000;
const ISS: &str = "https://idp.test/";
const AUD: &str = "api";
const KID: &str = "rsa-a";
/// What the origin answers on its admin location.
const ADMIN_BODY: &[u8] = b"admin\n";
/// What the origin answers on its `users:batchDelete` location.
const BATCH_BODY: &[u8] = b"batch\n";

// ---------------------------------------------------------------------------
// The nginx in front, and the origin behind it
// ---------------------------------------------------------------------------

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

impl Front {
    /// Which of the nginx ports this front listens on.
    fn port_index(self) -> usize {
        match self {
            Front::RawUri => 1,
            Front::NormalizedUri => 2,
        }
    }
}

/// The origin (port 0) and the two fronts (ports 1 and 2), in one nginx.
fn servers(ports: &[u16], jwtgate: SocketAddr) -> String {
    let [origin, raw_front, normalized_front] = [ports[0], ports[1], ports[2]];
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
    format!(
        r#"    # The origin: routes on its own normalised $uri.
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
        {READY_LOCATION}
        location / {{
            auth_request /_jwtgate;
            proxy_pass http://127.0.0.1:{origin};
        }}
        {check}
    }}
    # Front 2: nginx's normalised URI, re-encoded, goes on to the origin.
    server {{
        listen 127.0.0.1:{normalized_front};
        {READY_LOCATION}
        location / {{
            auth_request /_jwtgate;
            proxy_pass http://127.0.0.1:{origin}/;
        }}
        {check}
    }}
"#
    )
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
        let binary = nginx_binary("e2e_origin")?;
        let dir = TempDir::new("e2e-origin-jwtgate");
        dir.write(
            "keys.jwks.json",
            format!(r#"{{"keys":[{}]}}"#, common::rsa_jwk(KID)),
        );
        let path = dir.write("jwtgate.toml", config_text(fallback));
        let jwtgate = Server::start(&["--config", path.to_str().unwrap(), "--now", NOW]);
        let nginx = Nginx::start(&binary, 3, &[1, 2], |ports| servers(ports, jwtgate.addr()));
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
        let mut conn = Conn::open(self.nginx.addr(front.port_index()));
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
