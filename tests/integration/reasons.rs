//! The reasons a check is refused with, where an operator looks for them.
//!
//! A refused token, when a rule lists several token configurations, is given
//! the reason of the configuration it belongs to (the one that got furthest
//! with it: its algorithm, its kid, its signature), whatever the order the
//! rule lists them in, the first listed among equals. The answer, the access
//! log and the metrics all say the same.
//!
//! A check refused for how it was sent (a proxy wired without the headers
//! its recipe sets) has its reason in the access log and on stderr, since
//! nginx `auth_request` discards the 400's body.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::TempDir;
use common::server::{Conn, Server, request_bytes};
use common::{mint, signing_key};
use jwtgate::Algorithm;

const NOW: &str = "1700000000";
const T: i64 = 1_700_000_000;
const AUD: &str = "api";
const PRODUCTION: &str = "production";
const PARTNERS: &str = "partners";
const STAGING: &str = "staging";

/// Every order of the three configurations, and both orders of two of them.
const ORDERS: [&[&str]; 8] = [
    &[PRODUCTION, PARTNERS, STAGING],
    &[PRODUCTION, STAGING, PARTNERS],
    &[PARTNERS, PRODUCTION, STAGING],
    &[PARTNERS, STAGING, PRODUCTION],
    &[STAGING, PRODUCTION, PARTNERS],
    &[STAGING, PARTNERS, PRODUCTION],
    &[PRODUCTION, STAGING],
    &[STAGING, PRODUCTION],
];

fn issuer(config: &str) -> String {
    format!("https://{config}.test/")
}

fn claims(config: &str, aud: &str, iat: i64, exp: i64) -> String {
    format!(
        r#"{{"iss":"{}","aud":"{aud}","sub":"someone","iat":{iat},"exp":{exp}}}"#,
        issuer(config)
    )
}

/// `production`: RS256, rsa2048-a as kid `prod-rsa`. `partners`: RS256,
/// rsa2048-b from a PEM file (no kid). `staging`: ES256, P-256 from a PEM
/// file. One rule per order of [`ORDERS`], on `/r<index>/`.
fn config(dir: &TempDir) -> String {
    dir.write(
        "production.jwks.json",
        format!(r#"{{"keys":[{}]}}"#, common::rsa_jwk("prod-rsa")),
    );
    let mut text = format!(
        r#"default_action = "deny"

[server]
access_log = "{log}"

[[token_config]]
name = "{PRODUCTION}"
jwks_file = "production.jwks.json"
algorithms = ["RS256"]
issuer = "{production}"
audiences = ["{AUD}"]

[[token_config]]
name = "{PARTNERS}"
public_key_file = "{partners_key}"
algorithms = ["RS256"]
issuer = "{partners}"
audiences = ["{AUD}"]

[[token_config]]
name = "{STAGING}"
public_key_file = "{staging_key}"
algorithms = ["ES256"]
issuer = "{staging}"
audiences = ["{AUD}"]
"#,
        log = dir.path("access.log").display(),
        production = issuer(PRODUCTION),
        partners = issuer(PARTNERS),
        staging = issuer(STAGING),
        partners_key = common::data_path("rsa2048-b.spki.pem").display(),
        staging_key = common::data_path("p256.spki.pem").display(),
    );
    for (index, order) in ORDERS.iter().enumerate() {
        let list: Vec<String> = order.iter().map(|name| format!("\"{name}\"")).collect();
        text.push_str(&format!(
            "\n[[rule]]\nname = \"r{index}\"\npaths = [\"/r{index}/**\"]\ntoken_configs = [{}]\n",
            list.join(", ")
        ));
    }
    text
}

/// A refused token and the configuration whose reason it must get, given
/// the order of a rule's configurations.
struct Case {
    name: &'static str,
    token: String,
    outcome: &'static str,
    /// The configurations that get equally far with it, best first; the
    /// reason is that of the first of them the rule lists.
    owners: &'static [&'static str],
}

fn cases() -> Vec<Case> {
    let rsa_a = signing_key("rsa2048-a", Algorithm::Rs256);
    let rsa_b = signing_key("rsa2048-b", Algorithm::Rs256);
    let p256 = signing_key("p256", Algorithm::Es256);
    let prod_header = r#"{"alg":"RS256","kid":"prod-rsa"}"#;
    let fresh = |config| claims(config, AUD, T, T + 3600);
    let expired = |config| claims(config, AUD, T - 7200, T - 3600);
    vec![
        // partners: unknown kid; staging: RS256 not allowed.
        Case {
            name: "an expired production token",
            token: mint(prod_header, &expired(PRODUCTION), &rsa_a, Algorithm::Rs256),
            outcome: "expired",
            owners: &[PRODUCTION],
        },
        Case {
            name: "a production token signed with another key",
            token: mint(prod_header, &fresh(PRODUCTION), &rsa_b, Algorithm::Rs256),
            outcome: "bad_signature",
            owners: &[PRODUCTION],
        },
        Case {
            name: "a staging token for another audience",
            token: mint(
                r#"{"alg":"ES256"}"#,
                &claims(STAGING, "elsewhere", T, T + 3600),
                &p256,
                Algorithm::Es256,
            ),
            outcome: "wrong_audience",
            owners: &[STAGING],
        },
        // Without a kid, production tries its one RS256 key: bad_signature,
        // which stands where the rule does not list partners.
        Case {
            name: "an expired partners token without a kid",
            token: mint(
                r#"{"alg":"RS256"}"#,
                &expired(PARTNERS),
                &rsa_b,
                Algorithm::Rs256,
            ),
            outcome: "expired",
            owners: &[PARTNERS],
        },
        Case {
            name: "a token naming a kid no configuration has",
            token: mint(
                r#"{"alg":"RS256","kid":"nobody"}"#,
                &fresh(PRODUCTION),
                &rsa_a,
                Algorithm::Rs256,
            ),
            outcome: "unknown_kid",
            owners: &[PRODUCTION, PARTNERS],
        },
        Case {
            name: "an algorithm no configuration accepts",
            token: mint(
                r#"{"alg":"ES384"}"#,
                &fresh(STAGING),
                &signing_key("p384", Algorithm::Es384),
                Algorithm::Es384,
            ),
            outcome: "alg_not_allowed",
            owners: &[PRODUCTION, PARTNERS, STAGING],
        },
    ]
}

/// What `case` must be reported as under a rule listing `order`:
/// `(outcome, token_config)`.
fn expected(case: &Case, order: &[&str]) -> (&'static str, String) {
    if case.name == "an expired partners token without a kid" && !order.contains(&PARTNERS) {
        return ("bad_signature", PRODUCTION.to_owned());
    }
    let owner = order
        .iter()
        .find(|name| case.owners.contains(name))
        .unwrap_or_else(|| panic!("{}: no owner listed in {order:?}", case.name));
    (case.outcome, (*owner).to_owned())
}

fn scrape(server: &Server) -> String {
    let mut conn = Conn::open(server.admin_addr());
    let response = conn.request(&request_bytes("GET", "/metrics", &[], b""));
    assert_eq!(response.status, 200, "{}", response.head_text());
    response.body_text().to_owned()
}

#[test]
fn a_refused_token_gets_the_reason_of_its_own_configuration_in_every_order() {
    let dir = TempDir::new("reasons");
    let path = dir.write("jwtgate.toml", config(&dir));
    let mut server = Server::start(&["--config", path.to_str().unwrap(), "--now", NOW]);
    let mut conn = Conn::open(server.addr());
    let mut want_series: BTreeMap<String, u64> = BTreeMap::new();
    let mut want_log: Vec<(String, String, String)> = Vec::new();
    for case in cases() {
        for (index, order) in ORDERS.iter().enumerate() {
            let (outcome, token_config) = expected(&case, order);
            let rule = format!("r{index}");
            let bearer = format!("Bearer {}", case.token);
            let response = conn.request(&request_bytes(
                "GET",
                &format!("/{rule}/orders"),
                &[("authorization", &bearer)],
                b"",
            ));
            let context = format!("{} under {order:?}", case.name);
            assert_eq!(response.status, 401, "{context}: {}", response.head_text());
            assert_eq!(
                response.header("x-jwtgate-outcome"),
                Some(outcome),
                "{context}"
            );
            let challenge = response.header("www-authenticate").unwrap_or_default();
            assert!(
                challenge.contains(&format!("error_description=\"{outcome}\"")),
                "{context}: {challenge}"
            );
            *want_series
                .entry(format!(
                    r#"jwtgate_requests_total{{rule="{rule}",token_config="{token_config}",outcome="{outcome}",action="block",face="http"}}"#
                ))
                .or_default() += 1;
            want_log.push((rule, token_config, outcome.to_owned()));
        }
    }

    let text = scrape(&server);
    let counted: BTreeMap<String, u64> = text
        .lines()
        .filter(|line| line.starts_with("jwtgate_requests_total{") && line.contains("rule=\"r"))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .filter(|(_, value)| *value > 0)
        .collect();
    assert_eq!(counted, want_series, "metrics:\n{text}");

    server.sigterm();
    let status = server.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{}", server.stderr_text());
    let log = std::fs::read_to_string(dir.path("access.log")).unwrap();
    let logged: Vec<(String, String, String)> = log
        .lines()
        .map(|line| {
            let entry: serde_json::Value = serde_json::from_str(line).unwrap();
            let field = |name: &str| entry[name].as_str().unwrap_or_default().to_owned();
            (field("rule"), field("token_config"), field("outcome"))
        })
        .collect();
    assert_eq!(logged, want_log, "access log:\n{log}");
}

/// Each kind of `bad_request`: the request and the reason the log must hold.
fn bad_requests() -> Vec<(Vec<u8>, &'static str)> {
    let original = |method: Option<&str>, uri: Option<&str>, host: &str| {
        let mut text = format!("GET /auth HTTP/1.1\r\nHost: {host}\r\n");
        if let Some(method) = method {
            text.push_str(&format!("X-Original-Method: {method}\r\n"));
        }
        if let Some(uri) = uri {
            text.push_str(&format!("X-Original-URI: {uri}\r\n"));
        }
        text.push_str("\r\n");
        text.into_bytes()
    };
    let twice = b"GET /auth HTTP/1.1\r\nHost: api.test\r\nX-Original-Method: GET\r\nX-Original-Method: POST\r\nX-Original-URI: /r0/x\r\n\r\n".to_vec();
    vec![
        (
            original(None, Some("/r0/x"), "api.test"),
            "exactly one X-Original-Method is required",
        ),
        (twice, "exactly one X-Original-Method is required"),
        (
            original(Some("GET"), None, "api.test"),
            "exactly one X-Original-URI is required",
        ),
        (
            original(Some("GET"), Some("/r0%2Fx"), "api.test"),
            "the path hides a slash or backslash in %2F or %5C",
        ),
        (
            original(Some("GET"), Some("/r0/a\\b"), "api.test"),
            "the path holds a backslash, which some origins read as a slash",
        ),
        (
            original(Some("GET"), Some("/r0/%zz"), "api.test"),
            "the path holds a malformed percent escape",
        ),
        (
            original(Some("GET"), Some("/r0/x"), "api.test:port"),
            "the host is not a host name or address with an optional port",
        ),
    ]
}

#[test]
fn a_bad_request_has_its_reason_in_the_access_log_and_on_stderr() {
    let dir = TempDir::new("reasons-bad-request");
    let text = config(&dir).replace("[server]\n", "[server]\nforwarded = \"x-original\"\n");
    let path = dir.write("jwtgate.toml", text);
    let mut server = Server::start(&[
        "--config",
        path.to_str().unwrap(),
        "--now",
        NOW,
        "--shards",
        "1",
    ]);
    let cases = bad_requests();
    for (request, reason) in &cases {
        let mut conn = Conn::open(server.addr());
        let response = conn.request(request);
        assert_eq!(response.status, 400, "{reason}: {}", response.head_text());
        assert!(
            response.body_text().contains(reason),
            "{}",
            response.body_text()
        );
    }
    // A refused token's reason is the engine's, in words.
    let token = cases_token_expired();
    let mut conn = Conn::open(server.addr());
    let bearer = format!("Bearer {token}");
    let response = conn.request(&request_bytes(
        "GET",
        "/auth",
        &[
            ("x-original-method", "GET"),
            ("x-original-uri", "/r0/x"),
            ("authorization", &bearer),
        ],
        b"",
    ));
    assert_eq!(response.status, 401, "{}", response.head_text());

    server.sigterm();
    assert_eq!(server.wait_exit(Duration::from_secs(30)).code(), Some(0));
    let log = std::fs::read_to_string(dir.path("access.log")).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), cases.len() + 1, "{log}");
    for (line, (_, reason)) in lines.iter().zip(&cases) {
        assert_eq!(line["outcome"], "bad_request", "{line}");
        assert_eq!(line["status"], 400, "{line}");
        assert_eq!(line["reason"], *reason, "{line}");
    }
    let last = lines.last().unwrap();
    assert_eq!(last["outcome"], "expired", "{last}");
    assert_eq!(last["reason"], "exp has passed", "{last}");

    // One line for the first, the others held back (at most one per 10 s).
    let stderr = server.stderr_text();
    let notices: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("answered 400 bad_request"))
        .collect();
    assert_eq!(notices.len(), 1, "{stderr}");
    assert!(
        notices[0].contains("on the http face: exactly one X-Original-Method is required;"),
        "{stderr}"
    );
}

fn cases_token_expired() -> String {
    cases()
        .into_iter()
        .find(|case| case.name == "an expired production token")
        .map(|case| case.token)
        .unwrap()
}

/// `check-config --request ... --token ...` decides the sample request with
/// the service's own code and says what each configuration made of the token.
#[test]
fn check_config_explains_a_sample_decision_configuration_by_configuration() {
    let dir = TempDir::new("reasons-check-config");
    let path = dir.write("jwtgate.toml", config(&dir));
    let token = cases_token_expired();
    let check = |extra: &[&str]| {
        let mut args = vec![
            "check-config",
            path.to_str().unwrap(),
            "--request",
            "GET https://api.test/r4/orders",
            "--token",
            &token,
        ];
        args.extend_from_slice(extra);
        common::server::run_jwtgate(&args, b"")
    };
    let out = check(&["--now", NOW]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let decision = stdout
        .split_once("\ndecisions:\n")
        .map(|(_, decision)| decision)
        .unwrap_or_else(|| panic!("no decisions in:\n{stdout}"));
    // The token is a credential: cut short even in the tool's output.
    let bearer = format!(
        "      authorization: Bearer {}...({} bytes)\n",
        &token[..16],
        token.len()
    );
    assert!(!stdout.contains(&token), "{stdout}");
    let expected = format!(
        "  GET api.test/r4/orders
    check request as the recipe's proxy sends it:
      GET /r4/orders HTTP/1.1
      host: api.test
{bearer}    answer: 401 Unauthorized (outcome expired, action block, rule r4, token configuration production)
    reason: exp has passed
      x-jwtgate-outcome: expired
    what each of the rule's token configurations says:
      staging: alg_not_allowed at the algorithm allow-list: alg is not in this configuration's allow-list
      production: expired at the claims: exp has passed
      partners: unknown_kid at finding a key for its kid: no key in the key set has this kid
"
    );
    assert_eq!(decision, expected);

    // A sample that would smuggle a line into the check request, or set what
    // the recipe sets, is refused, not decided.
    for (flag, value, why) in [
        (
            "--header",
            "x-original-uri: /elsewhere",
            "--header x-original-uri is what --request",
        ),
        (
            "--header",
            "Cookie: a=b\r\nX-Original-URI: /x",
            "holds a line break",
        ),
        ("--header", "no colon here", "is not \"Name: value\""),
    ] {
        let out = check(&[flag, value]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("    refused: ") && stdout.contains(why),
            "{value:?}: {stdout}"
        );
        assert!(!stdout.contains("    answer: "), "{value:?}: {stdout}");
    }
}

/// `verify --config` with several `--token-config`s reports each token as
/// `serve` would under a rule listing them in that order, and names the
/// configuration in each line.
#[test]
fn verify_with_several_configurations_gives_the_same_reasons() {
    let dir = TempDir::new("reasons-verify");
    let path = dir.write("jwtgate.toml", config(&dir));
    let order: &[&str] = &[STAGING, PARTNERS, PRODUCTION];
    let cases = cases();
    let valid = mint(
        r#"{"alg":"RS256","kid":"prod-rsa"}"#,
        &claims(PRODUCTION, AUD, T, T + 3600),
        &signing_key("rsa2048-a", Algorithm::Rs256),
        Algorithm::Rs256,
    );
    let mut input = String::new();
    for case in &cases {
        input.push_str(&case.token);
        input.push('\n');
    }
    input.push_str(&valid);
    input.push('\n');
    let mut args = vec!["verify", "--config", path.to_str().unwrap(), "--now", NOW];
    for name in order {
        args.extend_from_slice(&["--token-config", name]);
    }
    let out = common::server::run_jwtgate(&args, input.as_bytes());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), cases.len() + 1, "{stdout}");
    for (line, case) in lines.iter().zip(&cases) {
        let (outcome, token_config) = expected(case, order);
        assert_eq!(line["valid"], false, "{}: {line}", case.name);
        assert_eq!(line["error"], outcome, "{}: {line}", case.name);
        assert_eq!(
            line["token_config"],
            token_config.as_str(),
            "{}: {line}",
            case.name
        );
    }
    let last = lines.last().unwrap();
    assert_eq!(last["valid"], true, "{last}");
    assert_eq!(last["token_config"], PRODUCTION, "{last}");
}
