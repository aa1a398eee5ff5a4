//! The dodge battery: spellings of a protected request that a proxy in front
//! or the origin behind may read as the protected path while a careless
//! reader routes them elsewhere (to an open default, an exclusion or a
//! catch-all with `on_missing = "allow"`), and token sources spelled so that
//! the origin finds a token jwtgate did not look at.
//!
//! Each spelling is sent to the real binary over loopback (harness in
//! `common/server.rs`), in every forwarded style (`x-original` as nginx
//! sends it, `x-forwarded` as Traefik and Caddy do, `request-line` as Envoy
//! does), against two open fallbacks: `default_action = "allow"`, and a
//! catch-all rule with `on_missing = "allow"`. Without a token, and with a
//! valid token lacking the admin scope for the admin rules, every spelling
//! must be denied (401/403) or refused (400): never 200. The plain spellings
//! must keep their answers. A table drives it all, and every failure names
//! the style, the class and the exact bytes; all failures of a test are
//! collected before it fails, so one run lists every dodge.
//!
//! The spellings themselves live in `tests/common/spellings.rs`, shared with
//! `e2e_origin.rs` (the same bytes through a real nginx and origin).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use crate::common;
use crate::common::spellings;

use std::fmt::Write as _;

use common::TempDir;
use common::server::{Conn, Response, Server};
use common::{mint, signing_key};
use jwtgate::Algorithm;
use jwtgate::internals::SigningKey;
use spellings::{Spelling, exclusion_escapes, must_refuse, spellings};

/// The pinned clock, as `--now` takes it.
const NOW: &str = "1700000000";
const T: i64 = 1_700_000_000;
const ISS: &str = "https://idp.test/";
const AUD: &str = "api";
const KID: &str = "rsa-a";
/// The original host of every check request.
const HOST: &str = spellings::HOST;

// ---------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------

struct Tokens {
    /// alice, scope `read admin`.
    admin: String,
    /// alice, scope `read`.
    read: String,
    /// bob, scope `read`: valid, another identity.
    other: String,
}

impl Tokens {
    fn new() -> Tokens {
        let key = signing_key("rsa2048-a", Algorithm::Rs256);
        Tokens {
            admin: token(&key, "alice", "read admin"),
            read: token(&key, "alice", "read"),
            other: token(&key, "bob", "read"),
        }
    }
}

fn token(key: &SigningKey, sub: &str, scope: &str) -> String {
    mint(
        &format!(r#"{{"alg":"RS256","kid":"{KID}","typ":"JWT"}}"#),
        &format!(
            r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"{sub}","scope":"{scope}","iat":{T},"exp":{}}}"#,
            T + 3600
        ),
        key,
        Algorithm::Rs256,
    )
}

/// Not a token (not even three segments): never `missing`.
const GARBAGE: &str = "garbage";

// ---------------------------------------------------------------------------
// The policy and the server under test
// ---------------------------------------------------------------------------

/// How a request no protected rule takes is let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fallback {
    /// `default_action = "allow"`, no catch-all rule.
    DefaultAllow,
    /// `default_action = "deny"` and a last rule `/**` with `on_missing = "allow"`.
    CatchAll,
}

/// Where the original request comes from (`[server] forwarded`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    /// nginx `auth_request`: `X-Original-URI`, `X-Original-Method`, `Host`.
    XOriginal,
    /// Traefik, Caddy: `X-Forwarded-Uri`, `-Method`, `-Host`.
    XForwarded,
    /// Envoy: the check request's own request line and `Host` (no prefix).
    RequestLine,
}

impl Style {
    fn name(self) -> &'static str {
        match self {
            Style::XOriginal => "x-original",
            Style::XForwarded => "x-forwarded",
            Style::RequestLine => "request-line",
        }
    }

    /// The check request for `GET target`, with `headers` as the client's.
    fn request(self, target: &[u8], headers: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        let line = |out: &mut Vec<u8>, parts: &[&[u8]]| {
            for part in parts {
                out.extend_from_slice(part);
            }
            out.extend_from_slice(b"\r\n");
        };
        match self {
            Style::XOriginal => {
                line(&mut out, &[b"GET /_jwtgate HTTP/1.1"]);
                line(&mut out, &[b"Host: ", HOST.as_bytes()]);
                line(&mut out, &[b"X-Original-URI: ", target]);
                line(&mut out, &[b"X-Original-Method: GET"]);
            }
            Style::XForwarded => {
                line(&mut out, &[b"GET /auth HTTP/1.1"]);
                line(&mut out, &[b"Host: jwtgate.internal:8080"]);
                line(&mut out, &[b"X-Forwarded-Method: GET"]);
                line(&mut out, &[b"X-Forwarded-Host: ", HOST.as_bytes()]);
                line(&mut out, &[b"X-Forwarded-Uri: ", target]);
            }
            Style::RequestLine => {
                line(&mut out, &[b"GET ", target, b" HTTP/1.1"]);
                line(&mut out, &[b"Host: ", HOST.as_bytes()]);
            }
        }
        for (name, value) in headers {
            line(&mut out, &[name.as_bytes(), b": ", value.as_bytes()]);
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

/// The protected rules. `batch` comes before `v1`: the first match wins.
const RULES: &str = r#"
[[rule]]
name = "admin"
paths = ["/admin/**"]
token_configs = ["users"]
require_claims = [ { claim = "scope", contains = "admin" } ]

[[rule]]
name = "batch"
paths = ["/v1/users:batchDelete"]
token_configs = ["users"]
require_claims = [ { claim = "scope", contains = "admin" } ]

[[rule]]
name = "export"
paths = ["/v1/export"]
token_configs = ["users"]

[[rule]]
name = "user"
paths = ["/users/{id}"]
token_configs = ["users"]

[[rule]]
name = "v1"
paths = ["/v1/**"]
token_configs = ["users"]
exclude = ["GET /v1/health", "/v1/public/**"]
"#;

const CATCH_ALL: &str = r#"
[[rule]]
name = "open"
paths = ["/**"]
token_configs = ["users"]
on_missing = "allow"
"#;

/// One token configuration finding its token in a header with a scheme, a
/// header with a `-` in its name, a cookie and a query parameter.
const TOKEN_CONFIG: &str = r#"
[[token_config]]
name = "users"
sources = [ { header = "authorization", prefix = "Bearer" }, { header = "x-token" }, { cookie = "session" }, { query = "access_token" } ]
jwks_file = "keys.jwks.json"
issuer = "https://idp.test/"
audiences = ["api"]
"#;

fn config_text(fallback: Fallback, style: Style) -> String {
    let (default_action, catch_all) = match fallback {
        Fallback::DefaultAllow => ("allow", ""),
        Fallback::CatchAll => ("deny", CATCH_ALL),
    };
    format!(
        "default_action = \"{default_action}\"\n\n[server]\nforwarded = \"{}\"\nshards = 1\n{TOKEN_CONFIG}{RULES}{catch_all}",
        style.name()
    )
}

/// A served policy, its scratch directory (kept alive), and what names it.
struct Gate {
    server: Server,
    _dir: TempDir,
    fallback: Fallback,
    style: Style,
    tokens: Tokens,
}

impl Gate {
    fn start(fallback: Fallback, style: Style) -> Gate {
        let dir = TempDir::new("dodges");
        dir.write(
            "keys.jwks.json",
            format!(r#"{{"keys":[{}]}}"#, common::rsa_jwk(KID)),
        );
        let path = dir.write("jwtgate.toml", config_text(fallback, style));
        let server = Server::start(&["--config", path.to_str().unwrap(), "--now", NOW]);
        Gate {
            server,
            _dir: dir,
            fallback,
            style,
            tokens: Tokens::new(),
        }
    }

    fn label(&self) -> String {
        format!("[{:?}, {}]", self.fallback, self.style.name())
    }

    /// `GET target` with these client headers, on a fresh connection.
    fn send(&self, target: &[u8], headers: &[(&str, &str)]) -> Result<Response, String> {
        let bytes = self.style.request(target, headers);
        let mut conn = Conn::open(self.server.addr());
        conn.send(&bytes);
        conn.try_read_response()
    }
}

/// `status outcome`, or why there was no answer.
fn shown(answer: &Result<Response, String>) -> String {
    match answer {
        Ok(r) => format!(
            "{} {}",
            r.status,
            r.header("x-jwtgate-outcome").unwrap_or("(no outcome)")
        ),
        Err(e) => format!("no answer: {e}"),
    }
}

/// Denied (401, 403) or refused (400). A connection closed without an
/// answer is not accepted: jwtgate answers every request it refuses.
fn denied_or_refused(answer: &Result<Response, String>) -> bool {
    matches!(answer, Ok(r) if matches!(r.status, 400 | 401 | 403))
}

/// Panics listing every failure, if any.
fn report(gate: &Gate, what: &str, checked: usize, failures: &[String]) {
    if failures.is_empty() {
        return;
    }
    let mut text = format!(
        "{} {what}: {} of {checked} checks failed:\n",
        gate.label(),
        failures.len()
    );
    for failure in failures {
        let _ = writeln!(text, "  {failure}");
    }
    panic!("{text}");
}

// ---------------------------------------------------------------------------
// The batteries
// ---------------------------------------------------------------------------

/// The protected paths the battery spells, and whether their rule needs the
/// admin scope (then a `read` token must not pass either).
const PROTECTED: &[(&str, bool)] = &[
    ("/admin", true),
    ("/admin/users", true),
    ("/v1/users:batchDelete", true),
    ("/v1/export", false),
    ("/users/7", false),
    ("/v1/orders", false),
];

/// Every spelling of every protected path, without a token and (admin rules)
/// with a `read` token, plus the exclusion escapes without a token: each
/// denied or 400, and exactly 400 when the contract refuses the spelling
/// whatever the rules ([`must_refuse`]).
fn path_battery(fallback: Fallback, style: Style) {
    let gate = Gate::start(fallback, style);
    let read = format!("Bearer {}", gate.tokens.read);
    let mut failures = Vec::new();
    let mut checked = 0;
    let mut check = |base: &str, spelling: &Spelling, token: &str, headers: &[(&str, &str)]| {
        checked += 1;
        let answer = gate.send(&spelling.target, headers);
        // A header value loses its surrounding blanks (optional whitespace)
        // before anyone reads it; a request line has none to lose.
        let as_read = match style {
            Style::RequestLine => &spelling.target[..],
            Style::XOriginal | Style::XForwarded => spelling.target.trim_ascii(),
        };
        if must_refuse(as_read) && !matches!(&answer, Ok(r) if r.status == 400) {
            failures.push(format!(
                "{} | class {} | {} (spells {base}) | {token}: got {}, want 400 (refused whatever the rules)",
                style.name(),
                spelling.class,
                spelling.shown(),
                shown(&answer)
            ));
        } else if !denied_or_refused(&answer) {
            failures.push(format!(
                "{} | class {} | {} (spells {base}) | {token}: got {}, want 400/401/403",
                style.name(),
                spelling.class,
                spelling.shown(),
                shown(&answer)
            ));
        }
    };
    for &(base, admin) in PROTECTED {
        for spelling in spellings(base) {
            check(base, &spelling, "no token", &[]);
            if admin {
                check(
                    base,
                    &spelling,
                    "read-scope token",
                    &[("Authorization", &read)],
                );
            }
        }
    }
    for spelling in exclusion_escapes() {
        check("an exclusion", &spelling, "no token", &[]);
    }
    report(&gate, "path spellings", checked, &failures);
}

/// What a plain request must get: `(status, outcome)`.
type Want = (u16, &'static str);
const VALID: Want = (200, "valid");
const MISSING: Want = (401, "missing");
const SCOPE: Want = (403, "insufficient_scope");
const EXCLUDED: Want = (200, "excluded");

/// The plain spellings keep their answers, including the decoded ones.
fn plain_spellings(fallback: Fallback, style: Style) {
    let gate = Gate::start(fallback, style);
    let admin = format!("Bearer {}", gate.tokens.admin);
    let read = format!("Bearer {}", gate.tokens.read);
    let none = "";
    let open: Want = match fallback {
        Fallback::DefaultAllow => (200, "no_rule"),
        Fallback::CatchAll => (200, "missing"),
    };
    let cases: &[(&str, &str, Want)] = &[
        ("/admin/users", &admin, VALID),
        ("/admin", &admin, VALID),
        ("/admin/users", &read, SCOPE),
        ("/admin/users", none, MISSING),
        ("/%61dmin/users", &admin, VALID),
        ("/%61dmin/users", &read, SCOPE),
        ("/v1/users:batchDelete", &admin, VALID),
        ("/v1/users%3AbatchDelete", &admin, VALID),
        ("/v1/users%3abatchDelete", &admin, VALID),
        ("/v1/users:batchDelete", &read, SCOPE),
        ("/v1/users%3AbatchDelete", &read, SCOPE),
        ("/v1/users:batchDelete", none, MISSING),
        ("/v1/export", &read, VALID),
        ("/v1/export/", &read, VALID),
        ("/v1/export", none, MISSING),
        ("/v1/export/", none, MISSING),
        ("/users/7", &read, VALID),
        ("/users/7/", &read, VALID),
        ("/users/7/", none, MISSING),
        ("/v1/orders", &read, VALID),
        ("/v1/orders", none, MISSING),
        ("/v1/health", none, EXCLUDED),
        ("/v1/health?verbose=1", none, EXCLUDED),
        ("/v1/public/docs", none, EXCLUDED),
        ("/v1/health/", none, MISSING),
        ("/other", none, open),
        (
            "/other",
            &read,
            match fallback {
                Fallback::DefaultAllow => (200, "no_rule"),
                Fallback::CatchAll => VALID,
            },
        ),
    ];
    let mut failures = Vec::new();
    for &(target, authorization, (status, outcome)) in cases {
        let headers: &[(&str, &str)] = if authorization.is_empty() {
            &[]
        } else {
            &[("Authorization", authorization)]
        };
        let answer = gate.send(target.as_bytes(), headers);
        let got = answer
            .as_ref()
            .ok()
            .map(|r| (r.status, r.header("x-jwtgate-outcome").unwrap_or_default()));
        if got != Some((status, outcome)) {
            let token = match authorization {
                "" => "no token",
                a if a == admin => "admin token",
                _ => "read-scope token",
            };
            failures.push(format!(
                "{} | plain {target} | {token}: got {}, want {status} {outcome}",
                style.name(),
                shown(&answer)
            ));
        }
    }
    report(&gate, "plain spellings", cases.len(), &failures);
}

/// Where a near-match token source puts its value.
#[derive(Debug, Clone, Copy)]
enum Place {
    /// A query string (without `?`), `{v}` standing for the value.
    Query,
    /// A `Cookie` header value, `{v}` standing for the value.
    Cookie,
    /// A header of this name carrying the value.
    Header,
}

/// Token source spellings: `(class, place, text)`. The first of each place
/// is the real source (a control: it already counts today).
const SOURCES: &[(&str, Place, &str)] = &[
    ("query (exact, control)", Place::Query, "access_token={v}"),
    ("query name case", Place::Query, "ACCESS_TOKEN={v}"),
    ("query name case", Place::Query, "Access_Token={v}"),
    ("query name escaped", Place::Query, "access%5Ftoken={v}"),
    ("query name escaped", Place::Query, "access%5ftoken={v}"),
    ("query name escaped", Place::Query, "%61ccess_token={v}"),
    ("query ; separator", Place::Query, "a=1;access_token={v}"),
    ("query ; separator", Place::Query, "page=2;ACCESS_TOKEN={v}"),
    ("cookie (exact, control)", Place::Cookie, "session={v}"),
    ("cookie name case", Place::Cookie, "SESSION={v}"),
    ("cookie name case", Place::Cookie, "Session={v}"),
    ("cookie name escaped", Place::Cookie, "sess%69on={v}"),
    ("cookie name escaped", Place::Cookie, "%73ession={v}"),
    (
        "cookie , separator",
        Place::Cookie,
        "theme=dark, session={v}",
    ),
    (
        "cookie , separator",
        Place::Cookie,
        "theme=dark,session={v}",
    ),
    ("header (exact, control)", Place::Header, "X-Token"),
    ("header _ for -", Place::Header, "X_Token"),
    ("header _ for -", Place::Header, "x_token"),
    ("header _ for -", Place::Header, "X_TOKEN"),
];

/// `(target, headers)` of `GET path` with `value` in the source `(place, text)`.
fn with_source(
    path: &str,
    place: Place,
    text: &str,
    value: &str,
) -> (String, Vec<(String, String)>) {
    match place {
        Place::Query => (format!("{path}?{}", text.replace("{v}", value)), Vec::new()),
        Place::Cookie => (
            path.to_owned(),
            vec![("Cookie".to_owned(), text.replace("{v}", value))],
        ),
        Place::Header => (path.to_owned(), vec![(text.to_owned(), value.to_owned())]),
    }
}

/// A near-match source counts as the real one: garbage there is not
/// `missing`, and a second token beside a valid one is refused, never 200.
fn source_battery(fallback: Fallback, style: Style) {
    let gate = Gate::start(fallback, style);
    let t = &gate.tokens;
    let bearer = |token: &str| format!("Bearer {token}");
    // (situation, path, Authorization value or none, value in the source, wanted status)
    let mut situations: Vec<(&str, &str, Option<String>, &str, u16)> = vec![
        ("garbage alone", "/v1/export", None, GARBAGE, 401),
        (
            "read token in Authorization, another valid token there",
            "/v1/export",
            Some(bearer(&t.read)),
            t.other.as_str(),
            401,
        ),
        (
            "read token in Authorization, garbage there",
            "/v1/export",
            Some(bearer(&t.read)),
            GARBAGE,
            401,
        ),
        (
            "admin token in Authorization, another valid token there",
            "/admin/users",
            Some(bearer(&t.admin)),
            t.other.as_str(),
            401,
        ),
    ];
    if fallback == Fallback::CatchAll {
        // The catch-all lets a request without any token through: garbage in
        // a near-match source is a token, so it is not without one.
        situations.push((
            "garbage alone (on_missing = allow)",
            "/other",
            None,
            GARBAGE,
            401,
        ));
        situations.push((
            "read token in Authorization, another valid token there (on_missing = allow)",
            "/other",
            Some(bearer(&t.read)),
            t.other.as_str(),
            401,
        ));
    }
    let mut failures = Vec::new();
    let mut checked = 0;
    for (situation, path, authorization, value, want) in &situations {
        for &(class, place, text) in SOURCES {
            checked += 1;
            let (target, mut headers) = with_source(path, place, text, value);
            if let Some(authorization) = authorization {
                headers.push(("Authorization".to_owned(), authorization.clone()));
            }
            let headers: Vec<(&str, &str)> = headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            let answer = gate.send(target.as_bytes(), &headers);
            if !matches!(&answer, Ok(r) if r.status == *want) {
                let spelled = text.replace(
                    "{v}",
                    if *value == GARBAGE {
                        GARBAGE
                    } else {
                        "<token>"
                    },
                );
                failures.push(format!(
                    "{} | class {class} | {path} with {spelled:?} | {situation}: got {}, want {want}",
                    style.name(),
                    shown(&answer)
                ));
            }
        }
    }
    // Twins: the valid read token in the real spelling of a place, another
    // valid token in a near-match spelling of the same place.
    for &(class, place, text) in SOURCES {
        if class.contains("control") {
            continue;
        }
        checked += 1;
        let read = &t.read;
        let other = &t.other;
        let (target, headers) = match place {
            Place::Query => (
                format!(
                    "/v1/export?access_token={read}&{}",
                    text.replace("{v}", other)
                ),
                Vec::new(),
            ),
            Place::Cookie => (
                "/v1/export".to_owned(),
                vec![(
                    "Cookie".to_owned(),
                    format!("session={read}; {}", text.replace("{v}", other)),
                )],
            ),
            Place::Header => (
                "/v1/export".to_owned(),
                vec![
                    ("X-Token".to_owned(), read.clone()),
                    (text.to_owned(), other.clone()),
                ],
            ),
        };
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let answer = gate.send(target.as_bytes(), &headers);
        if !matches!(&answer, Ok(r) if r.status == 401) {
            failures.push(format!(
                "{} | class {class} | /v1/export with the real spelling and {:?} | \
                 read token in the real spelling, another valid token in the near match: got {}, want 401",
                style.name(),
                text.replace("{v}", "<token>"),
                shown(&answer)
            ));
        }
    }
    report(&gate, "token source spellings", checked, &failures);
}

// ---------------------------------------------------------------------------
// Tests: every battery in every forwarded style, with both open fallbacks
// ---------------------------------------------------------------------------

macro_rules! battery_tests {
    ($($name:ident: $battery:ident, $fallback:ident, $style:ident;)*) => {
        $(
            #[test]
            fn $name() {
                $battery(Fallback::$fallback, Style::$style);
            }
        )*
    };
}

battery_tests! {
    paths_default_allow_x_original: path_battery, DefaultAllow, XOriginal;
    paths_default_allow_x_forwarded: path_battery, DefaultAllow, XForwarded;
    paths_default_allow_request_line: path_battery, DefaultAllow, RequestLine;
    paths_catch_all_x_original: path_battery, CatchAll, XOriginal;
    paths_catch_all_x_forwarded: path_battery, CatchAll, XForwarded;
    paths_catch_all_request_line: path_battery, CatchAll, RequestLine;
    plain_default_allow_x_original: plain_spellings, DefaultAllow, XOriginal;
    plain_default_allow_x_forwarded: plain_spellings, DefaultAllow, XForwarded;
    plain_default_allow_request_line: plain_spellings, DefaultAllow, RequestLine;
    plain_catch_all_x_original: plain_spellings, CatchAll, XOriginal;
    plain_catch_all_x_forwarded: plain_spellings, CatchAll, XForwarded;
    plain_catch_all_request_line: plain_spellings, CatchAll, RequestLine;
    sources_default_allow_x_original: source_battery, DefaultAllow, XOriginal;
    sources_default_allow_x_forwarded: source_battery, DefaultAllow, XForwarded;
    sources_default_allow_request_line: source_battery, DefaultAllow, RequestLine;
    sources_catch_all_x_original: source_battery, CatchAll, XOriginal;
    sources_catch_all_x_forwarded: source_battery, CatchAll, XForwarded;
    sources_catch_all_request_line: source_battery, CatchAll, RequestLine;
}

/// The generator itself: every class is present for a two-segment base, and
/// no spelling is the base itself (which would make a plain request count
/// as a dodge).
#[test]
fn the_battery_covers_every_class() {
    let all = spellings("/admin/users");
    for class in [
        "raw #",
        "%-encoded reserved",
        "double encoding",
        "malformed escape",
        "non-ASCII",
        "escaped control",
        "raw control",
        "trailing slash",
        "raw backslash",
        "dot-segment",
        "..;",
        ";params",
        "%2e%2e",
        "case",
        "//",
        "absolute-form",
    ] {
        assert!(
            all.iter().any(|s| s.class == class),
            "no spelling of class {class}"
        );
    }
    assert!(all.iter().all(|s| s.target != b"/admin/users"));
}

/// The reference for refusals agrees with the contract's examples.
#[test]
fn the_refusal_reference_follows_the_contract() {
    let refused: &[&[u8]] = &[
        b"/admin#x",
        b"/a?b#c",
        b"/admin\\users",
        b"/a%2Fb",
        b"/a%5cb",
        b"/a%3Fb",
        b"/a%23b",
        b"/%2561dmin",
        b"/%2525",
        b"/a%zz",
        b"/a%4",
        b"/a%",
        b"/a%00",
        b"/a%0a",
        b"/a%09",
        b"/a\x01",
        b"/a%C0%AE",
        b"/a\xFF",
    ];
    for target in refused {
        assert!(must_refuse(target), "{}", target.escape_ascii());
    }
    let read: &[&[u8]] = &[
        b"/v1/users%3AbatchDelete",
        b"/%61dmin",
        b"/x/%2e%2e/admin",
        b"/a;x/b",
        b"/a?q=%2F&r=\\",
        b"/%C3%A9",
        b"/100%25",
        b"/100%25x",
    ];
    for target in read {
        assert!(!must_refuse(target), "{}", target.escape_ascii());
    }
}
