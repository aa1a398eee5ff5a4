//! Table-driven tests: a full configuration, routing through it, and one
//! test per kind of mistake, asserting the exact position, key and message.

use super::*;
use crate::http::OriginalRequest;
use crate::policy::{Action, Mode, Route};
use crate::settings::AdminListen;
use crate::test_support::with_demo_keys;

fn load_str(text: &str) -> Result<Loaded, ConfigError> {
    parse(text, Path::new("jwtgate.toml"))
}

fn error(text: &str) -> String {
    match load_str(&with_demo_keys(text)) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(error) => error.to_string(),
    }
}

const FULL: &str = r#"
default_action = "deny"

[server]
listen = "127.0.0.1:0"
admin_listen = "off"
forwarded = "x-original"
header_timeout = "5s"
drain_close_spread = "250ms"

[[token_config]]
name = "production"
sources = [ { header = "authorization", prefix = "Bearer" }, { cookie = "session" } ]
@JWKS@
algorithms = ["RS256", "ES256"]
issuer = "https://login.example.com/"
audiences = ["orders-api"]
leeway = "60s"

[[token_config]]
name = "staging"
sources = [ { query = "access_token" } ]
@JWKS@
issuer = "https://login.staging.example.com/"

[[rule]]
name = "admin"
hosts = ["admin.example.com"]
token_configs = ["production"]
require_claims = [ { claim = "scope", contains = "admin" } ]

[[rule]]
name = "api"
hosts = ["api.example.com", "*.api.example.com"]
paths = ["/v1/**"]
token_configs = ["production", "staging"]
action = "block"
exclude = ["GET /v1/health", "/v1/public/**"]
forward_claims = { sub = "x-jwt-sub", scope = "x-jwt-scope" }

[[rule]]
name = "beta"
paths = ["/beta/**"]
token_configs = ["staging"]
action = "log"
on_missing = "allow"
"#;

#[test]
fn a_full_configuration_loads_and_routes() {
    let loaded = load_str(&with_demo_keys(FULL)).unwrap();
    let policy = &loaded.policy;
    assert_eq!(policy.configs.len(), 2);
    assert_eq!(policy.rules.len(), 3);
    assert_eq!(policy.default_action, DefaultAction::Deny);
    assert_eq!(
        &*policy.forwarded_headers,
        &[Box::<str>::from("x-jwt-scope")]
    );
    assert_eq!(loaded.server.admin_listen, Some(AdminListen::Off));
    assert_eq!(loaded.server.header_timeout, Some(Duration::from_secs(5)));
    assert_eq!(
        loaded.server.drain_close_spread,
        Some(Duration::from_millis(250))
    );
    let api = &policy.rules[1];
    assert_eq!(&*api.token_configs, &[0, 1]);
    assert_eq!(api.mode, Mode::Any);
    assert_eq!(policy.rules[2].action, Action::Log);
    assert!(policy.rules[2].allow_missing);
    let route = |method: &str, host: &str, path: &str| {
        let request = OriginalRequest {
            method: method.as_bytes(),
            host: host.as_bytes(),
            path: path.as_bytes(),
        };
        let mut buffers = crate::policy::PathBuffers::default();
        match policy
            .route_target(&request, None, false, &mut buffers)
            .map(|routed| routed.route)
        {
            Ok(Route::Check(rule)) => format!("check {}", rule.name),
            Ok(Route::Excluded(rule)) => format!("excluded {}", rule.name),
            Ok(Route::Preflight(rule)) => format!("preflight {}", rule.name),
            Ok(Route::Default(action)) => format!("default {action:?}"),
            Err(error) => format!("400 {error:?}"),
        }
    };
    assert_eq!(
        route("GET", "api.example.com", "/v1/health"),
        "excluded api"
    );
    assert_eq!(route("POST", "api.example.com", "/v1/health"), "check api");
    assert_eq!(
        route("GET", "admin.example.com", "/v1/health"),
        "check admin"
    );
    assert_eq!(route("GET", "other.example.com", "/beta/x"), "check beta");
    assert_eq!(route("GET", "other.example.com", "/"), "default Deny");
}

/// A key file that cannot be read is named by its absolute path, with the
/// path as written and where relative paths are read from.
#[test]
fn an_unreadable_key_file_is_named_as_resolved() {
    let message = error(
        "default_action = \"deny\"\n[[token_config]]\nname = \"p\"\npublic_key_file = \"no/such.pem\"\n",
    );
    let absolute = std::env::current_dir().unwrap().join("no/such.pem");
    let want = format!(
        "token_config[0].public_key_file: cannot read {} (\"no/such.pem\" is read from the configuration file's folder): ",
        absolute.display()
    );
    assert!(message.contains(&want), "{message}");
}

#[test]
fn every_kind_of_mistake_names_its_place() {
    let base = "default_action = \"deny\"\n";
    let tc = "[[token_config]]\nname = \"p\"\n@JWKS@\n";
    let remote = "[[token_config]]\nname = \"r\"\nissuer = \"https://idp.example/\"\n";
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "jwtgate.toml: default_action: is required"),
        (
            "default_action = \"maybe\"\n".into(),
            "jwtgate.toml:1:18: default_action: expected \"allow\" or \"deny\"",
        ),
        (
            format!("{base}[server]\nlisten = \"localhost\"\n"),
            "jwtgate.toml:3:10: server.listen: expected an address",
        ),
        (
            format!("{base}[server]\nshards = \"two\"\n"),
            "jwtgate.toml:3:10: server.shards: invalid type: string \"two\", expected usize",
        ),
        (
            format!("{base}[server]\nlistn = \"1.2.3.4:5\"\n"),
            "jwtgate.toml:3:1: server.listn: unknown field `listn`",
        ),
        (
            format!("{base}[server]\nheader_timeout = \"10\"\n"),
            "jwtgate.toml:3:18: server.header_timeout: expected a duration",
        ),
        (
            format!("{base}[server]\nidle_timeout = \"0s\"\n"),
            "server.idle_timeout: must be longer than zero",
        ),
        (
            format!("{base}[server]\ndrain_close_spread = 1\n"),
            "jwtgate.toml:3:22: server.drain_close_spread: a duration is a string with its unit, such as \"1s\" or \"1ms\", not a bare 1",
        ),
        (
            format!("{base}[server]\nio = \"kqueue\"\n"),
            "jwtgate.toml:3:6: server.io: expected \"uring\", \"epoll\" or \"auto\"",
        ),
        (
            format!("{base}[server]\nforwarded = \"nginx\"\n"),
            "server.forwarded: expected \"x-original\"",
        ),
        (
            format!("{base}[server]\nforwarded = \"x-original\"\npath_prefix = \"/a\"\n"),
            "server.path_prefix: only applies with forwarded = \"request-line\"",
        ),
        (
            format!("{base}[server]\npath_prefix = \"authz/\"\n"),
            "server.path_prefix: expected a path",
        ),
        (
            format!("{base}[server]\nmax_request_line_bytes = 20000\n"),
            "server.max_request_line_bytes: cannot exceed",
        ),
        (
            format!("{base}[[token_config]]\nname = \"p\"\n"),
            "jwtgate.toml:2:1: token_config[0].jwks_file: a token configuration needs keys",
        ),
        (
            format!("{base}{tc}jwks_file = \"x.json\"\n"),
            "token_config[0].jwks: give one key source; jwks_file is already set",
        ),
        (
            format!("{base}[[token_config]]\nname = \"p\"\npublic_key_file = \"no/such.pem\"\n"),
            "jwtgate.toml:4:19: token_config[0].public_key_file: cannot read /",
        ),
        (
            format!("{base}[[token_config]]\nname = \"p\"\njwks = '{{\"keys\":[]}}'\n"),
            "jwtgate.toml:4:8: token_config[0].jwks:",
        ),
        (
            format!("{base}{tc}{tc}"),
            "token_config[1].name: a token configuration named \"p\" is already defined",
        ),
        (
            format!(
                "{base}{tc}[[rule]]\nname = \"a\"\ntoken_configs = [\"p\"]\n[[rule]]\nname = \"a\"\ntoken_configs = [\"p\"]\n"
            ),
            "rule[1].name: a rule named \"a\" is already defined",
        ),
        (
            format!("{base}{tc}[[rule]]\nname = \" \"\ntoken_configs = [\"p\"]\n"),
            "rule[0].name: must not be empty",
        ),
        (
            format!(
                "{base}{remote}jwks_url = \"http://idp.example/keys\"\nalgorithms = [\"RS256\"]\n"
            ),
            "token_config[0].jwks_url: an https:// URL (http:// only with danger_allow_http = true",
        ),
        (
            format!("{base}{remote}jwks_url = \"https://idp.example/keys\"\n"),
            "token_config[0].algorithms: a fetched key set needs the allow-list written out",
        ),
        (
            format!(
                "{base}{remote}jwks_url = \"https://idp.example/keys\"\nalgorithms = [\"HS256\"]\n"
            ),
            "token_config[0].algorithms: HMAC algorithms need a shared secret",
        ),
        (
            format!(
                "{base}{remote}jwks_url = \"https://idp.example/keys\"\nalgorithms = [\"RS256\"]\njwks_file = \"k.json\"\n"
            ),
            "token_config[0].jwks_file: give one key source: the keys are already fetched",
        ),
        (
            format!(
                "{base}{remote}jwks_url = \"https://idp.example/keys\"\nissuer_discovery = true\nalgorithms = [\"RS256\"]\n"
            ),
            "token_config[0].issuer_discovery: give jwks_url or issuer_discovery, not both",
        ),
        (
            format!(
                "{base}[[token_config]]\nname = \"r\"\nissuer_discovery = true\nalgorithms = [\"RS256\"]\n"
            ),
            "token_config[0].issuer: issuer_discovery needs the issuer",
        ),
        (
            format!(
                "{base}[[token_config]]\nname = \"r\"\njwks_url = \"https://idp.example/keys\"\nalgorithms = [\"RS256\"]\n"
            ),
            "token_config[0].issuer: fetched keys need the issuer checked",
        ),
        (
            format!(
                "{base}{remote}jwks_url = \"https://user:pw@idp.example/keys\"\nalgorithms = [\"RS256\"]\n"
            ),
            "token_config[0].jwks_url: credentials in the URL",
        ),
        (
            format!(
                "{base}{remote}jwks_url = \"https://idp.example/keys\"\nalgorithms = [\"RS256\"]\nmin_refetch_interval = \"100ms\"\n"
            ),
            "token_config[0].min_refetch_interval: between 1s and 365 days",
        ),
        (
            format!("{base}{tc}refresh_interval = \"5m\"\n"),
            "token_config[0].refresh_interval: applies to fetched keys only",
        ),
        (
            format!(
                "{base}{remote}jwks_url = \"https://idp.example/keys\"\nalgorithms = [\"RS256\"]\nmin_refresh_interval = \"2h\"\nmax_refresh_interval = \"1h\"\n"
            ),
            "token_config[0].min_refresh_interval: min_refresh_interval cannot exceed max_refresh_interval",
        ),
        (
            format!(
                "{base}{remote}jwks_url = \"https://idp.example/keys\"\nalgorithms = [\"RS256\"]\nca_file = \"no/such/ca.pem\"\n"
            ),
            "token_config[0].ca_file: cannot read",
        ),
        (
            format!("{base}{tc}leeway = \"2d\"\n"),
            "token_config[0].leeway: expected a duration",
        ),
        (
            format!("{base}{tc}leeway = \"48h\"\n"),
            "token_config[0].leeway: at most a day",
        ),
        (
            format!("{base}{tc}algorithms = [\"RS256\", \"none\"]\n"),
            "token_config[0].algorithms:",
        ),
        (
            format!("{base}{tc}sources = [ {{ cookie = \"a\", prefix = \"Bearer\" }} ]\n"),
            "token_config[0].sources[0]: a source is",
        ),
        (
            format!("{base}{tc}sources = [ {{ header = \"a b\" }} ]\n"),
            "token_config[0].sources[0]: the name is not a valid",
        ),
        (
            format!("{base}{tc}sources = []\n"),
            "token_config[0].sources: lists at least one source",
        ),
        (
            format!("{base}{tc}subject = \"a\"\nsubject_prefix = \"b\"\n"),
            "token_config[0].subject_prefix: give subject or subject_prefix, not both",
        ),
        (
            format!(
                "{base}[[token_config]]\nname = \"h\"\njwks = '{{\"kty\":\"oct\",\"k\":\"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow\"}}'\n"
            ),
            "token_config[0].allow_symmetric_keys: the keys are HMAC secrets",
        ),
        (
            format!("{base}{tc}[[rule]]\nname = \"r\"\n"),
            "rule[0].token_configs: a rule names at least one token configuration",
        ),
        (
            format!("{base}{tc}[[rule]]\nname = \"r\"\ntoken_configs = [\"q\"]\n"),
            "jwtgate.toml:7:18: rule[0].token_configs[0]: no token configuration is named \"q\" (defined: p)",
        ),
        (
            format!(
                "{base}{tc}[[rule]]\nname = \"r\"\ntoken_configs = [\"p\"]\nhosts = [\"https://a.com\"]\n"
            ),
            "rule[0].hosts[0]: a host pattern is",
        ),
        (
            format!(
                "{base}{tc}[[rule]]\nname = \"r\"\ntoken_configs = [\"p\"]\npaths = [\"/a/**/b\"]\n"
            ),
            "rule[0].paths[0]: '**' may only be the last segment",
        ),
        (
            format!(
                "{base}{tc}[[rule]]\nname = \"r\"\ntoken_configs = [\"p\"]\nexclude = [\"get /health\"]\n"
            ),
            "rule[0].exclude[0]: an endpoint is",
        ),
        (
            format!(
                "{base}{tc}[[rule]]\nname = \"r\"\ntoken_configs = [\"p\"]\nexclude = [\"GETT /v1/health\"]\n"
            ),
            "rule[0].exclude[0]: \"GETT\" is not an HTTP method (did you mean \"GET\"?); methods are those of IANA's registry",
        ),
        (
            format!(
                "{base}{tc}[[rule]]\nname = \"r\"\ntoken_configs = [\"p\"]\nmethods = [\"get\", \"delet\"]\n"
            ),
            "rule[0].methods[1]: \"DELET\" is not an HTTP method (did you mean \"DELETE\"?)",
        ),
        (
            format!("{base}{tc}[[token_config]]\nname = \"q\"\naudience = [\"api\"]\n"),
            "token_config[1].audience: unknown field `audience`: did you mean `audiences`?",
        ),
        (
            format!("{base}[server]\nidle_timeout = 60\n"),
            "jwtgate.toml:3:16: server.idle_timeout: a duration is a string with its unit, such as \"60s\" or \"60ms\", not a bare 60",
        ),
        (
            format!("{base}{tc}[[rule]]\nname = \"r\"\ntoken_configs = [\"p\"]\nmode = \"some\"\n"),
            "rule[0].mode: expected \"any\" or \"all\"",
        ),
        (
            format!(
                "{base}{tc}[[rule]]\nname = \"r\"\ntoken_configs = [\"p\"]\naction = \"warn\"\n"
            ),
            "rule[0].action: expected \"block\" or \"log\"",
        ),
        (
            format!(
                "{base}{tc}[[rule]]\nname = \"r\"\ntoken_configs = [\"p\"]\non_missing = \"ok\"\n"
            ),
            "rule[0].on_missing: expected \"deny\" or \"allow\"",
        ),
        (
            format!(
                "{base}{tc}[[rule]]\nname = \"r\"\ntoken_configs = [\"p\"]\nrequire_claims = [ {{ claim = \"scope\" }} ]\n"
            ),
            "rule[0].require_claims[0]: a requirement is",
        ),
        (
            format!(
                "{base}{tc}[[rule]]\nname = \"r\"\ntoken_configs = [\"p\"]\nforward_claims = {{ sub = \"x jwt\" }}\n"
            ),
            "rule[0].forward_claims.sub: expected a header name",
        ),
        (
            format!(
                "{base}{tc}[[rule]]\nname = \"r\"\ntoken_configs = [\"p\"]\nforward_claims = {{ sub = \"x-jwtgate-outcome\" }}\n"
            ),
            "rule[0].forward_claims.sub: x-jwtgate-* headers are jwtgate's own",
        ),
        (
            format!("{base}{tc}[[rule]]\nname = \"r\"\ntoken_configs = [\"p\"]\nbogus = 1\n"),
            "rule[0].bogus: unknown field `bogus`",
        ),
    ];
    for (text, expected) in cases {
        let message = error(&text);
        assert!(
            message.contains(expected),
            "for:\n{text}\nexpected: {expected}\n     got: {message}"
        );
    }
}

#[test]
fn trusted_proxies_limit_who_may_forward() {
    let open = load_str(&with_demo_keys("default_action = \"deny\"\n")).unwrap();
    assert!(open.policy.trusts("203.0.113.9".parse().unwrap()));
    let text = "default_action = \"deny\"\n[server]\nforwarded = \"x-original\"\ntrusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\"]\n";
    let closed = load_str(text).unwrap();
    assert!(closed.policy.trusts("127.0.0.1".parse().unwrap()));
    assert!(closed.policy.trusts("10.9.8.7".parse().unwrap()));
    assert!(!closed.policy.trusts("203.0.113.9".parse().unwrap()));
    let bad = "default_action = \"deny\"\n[server]\nforwarded = \"x-original\"\ntrusted_proxies = [\"10.0.0.0/8\", \"10.0.0.0/40\"]\n";
    assert_eq!(
        error(bad),
        "jwtgate.toml:4:34: server.trusted_proxies[1]: expected an IP address or CIDR block such as \"10.0.0.0/8\" or \"::1\""
    );
    let pointless = "default_action = \"deny\"\n[server]\ntrusted_proxies = [\"10.0.0.0/8\"]\n";
    assert!(error(pointless).contains("server.trusted_proxies: only applies with forwarded"));
}

#[test]
fn risky_settings_are_refused() {
    let tc = "default_action = \"deny\"\n[[token_config]]\nname = \"p\"\n@JWKS@\n";
    let rule = "[[rule]]\nname = \"r\"\ntoken_configs = [\"p\"]\n";
    for (extra, expected) in [
        (
            "sources = [ { header = \"authorization\", prefix = \"\" } ]\n",
            "token_config[0].sources[0]: a prefix is an auth scheme",
        ),
        (
            "sources = [ { header = \"authorization\", prefix = \"Be arer\" } ]\n",
            "a prefix is an auth scheme",
        ),
    ] {
        let message = error(&format!("{tc}{extra}"));
        assert!(message.contains(expected), "{message}");
    }
    assert!(
        error(&format!("{tc}algorithms = [\"HS256\"]\n")).starts_with(
            "jwtgate.toml:5:14: token_config[0].algorithms: the key set holds public keys"
        )
    );
    for (extra, expected) in [
        (
            "forward_claims = { sub = \"content-length\" }\n",
            "rule[0].forward_claims.sub: that header frames or routes the response",
        ),
        (
            "forward_claims = { sub = \"Transfer-Encoding\" }\n",
            "that header frames or routes",
        ),
        (
            "forward_claims = { sub = \"set-cookie\" }\n",
            "that header frames or routes",
        ),
        (
            "require_claims = [ { claim = \"scope\", contains = \"\" } ]\n",
            "rule[0].require_claims[0]: claim is a claim name",
        ),
        (
            "require_claims = [ { claim = \"scope\", contains = \"a b\" } ]\n",
            "contains one word without spaces",
        ),
        (
            "require_claims = [ { claim = \"\", equals = \"x\" } ]\n",
            "rule[0].require_claims[0]: claim is a claim name",
        ),
    ] {
        let message = error(&format!("{tc}{rule}{extra}"));
        assert!(message.contains(expected), "{message}");
    }
}

#[test]
fn durations() {
    assert_eq!(parse_duration("60s"), Some(Duration::from_secs(60)));
    assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
    assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
    assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
    assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
    for bad in ["", "10", "s", "-1s", "1d", "1 parsec"] {
        assert_eq!(parse_duration(bad), None, "{bad}");
    }
}

#[test]
fn a_fetched_key_source_starts_without_keys_and_keeps_its_settings() {
    let text = "default_action = \"deny\"\n[[token_config]]\nname = \"idp\"\njwks_url = \"https://idp.example/.well-known/jwks.json\"\nissuer = \"https://idp.example/\"\nalgorithms = [\"RS256\", \"ES256\"]\nrefresh_interval = \"5m\"\nmin_refetch_interval = \"10s\"\nmax_stale = \"2h\"\nstartup_timeout = \"3s\"\nallow_start_without_keys = true\nmax_response_bytes = 4096\n[[rule]]\nname = \"all\"\ntoken_configs = [\"idp\"]\n";
    let loaded = load_str(text).unwrap();
    let keys = &loaded.keys[0];
    assert!(!keys.available());
    assert!(keys.verifier().keys().is_empty());
    let settings = keys.remote().unwrap().settings();
    assert_eq!(
        settings.location,
        crate::jwks::Location::Url("https://idp.example/.well-known/jwks.json".into())
    );
    assert_eq!(settings.schedule.refresh_interval, Duration::from_secs(300));
    assert_eq!(
        settings.schedule.min_refetch_interval,
        Duration::from_secs(10)
    );
    assert_eq!(settings.schedule.max_stale, Duration::from_secs(7200));
    assert_eq!(
        settings.schedule.min_refresh_interval,
        Duration::from_secs(60)
    );
    assert_eq!(settings.startup.timeout, Duration::from_secs(3));
    assert!(settings.startup.allow_without_keys);
    assert_eq!(settings.fetch.max_bytes, 4096);
    assert!(!settings.fetch.allow_http);
}

#[test]
fn an_empty_allow_list_is_refused_for_fetched_keys_as_for_local_ones() {
    let local =
        "default_action = \"deny\"\n[[token_config]]\nname = \"p\"\n@JWKS@\nalgorithms = []\n";
    assert_eq!(
        error(local),
        "jwtgate.toml:5:14: token_config[0].algorithms: the algorithm allow-list is empty"
    );
    for source in [
        "jwks_url = \"https://idp.example/keys\"",
        "issuer_discovery = true",
    ] {
        for list in ["[]", "[\"\"]"] {
            let text = format!(
                "default_action = \"deny\"\n[[token_config]]\nname = \"r\"\nissuer = \"https://idp.example/\"\n{source}\nalgorithms = {list}\n"
            );
            assert_eq!(
                error(&text),
                "jwtgate.toml:6:14: token_config[0].algorithms: the algorithm allow-list is empty: \
                 a fetched key set needs at least one algorithm, such as [\"RS256\"]",
                "{text}"
            );
        }
    }
}

#[test]
fn jwks_allowed_hosts_are_hosts_of_a_fetched_key_source() {
    let remote = |lines: &str| {
        format!(
            "default_action = \"deny\"\n[[token_config]]\nname = \"r\"\nissuer = \"https://idp.example/\"\nalgorithms = [\"RS256\"]\n{lines}\n"
        )
    };
    let text = remote(
        "jwks_url = \"https://idp.example/keys\"\njwks_allowed_hosts = [\"Keys.Example.com\", \"localhost:8443\"]",
    );
    let loaded = load_str(&text).unwrap();
    let keys = loaded.keys[0].remote().unwrap();
    let listed: Vec<String> = keys
        .settings()
        .fetch
        .allowed_hosts
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(listed, ["keys.example.com", "localhost:8443"]);
    assert_eq!(
        keys.destinations().describe(),
        "https://idp.example:443 (configured), https://keys.example.com:443 (jwks_allowed_hosts), \
         https://localhost:8443 (jwks_allowed_hosts)"
    );
    // Discovery: the issuer's origin is the configured one.
    let loaded = load_str(&remote("issuer_discovery = true")).unwrap();
    assert_eq!(
        loaded.keys[0].remote().unwrap().destinations().describe(),
        "https://idp.example:443 (configured)"
    );
    for (text, expected) in [
        (
            remote(
                "jwks_url = \"https://idp.example/keys\"\njwks_allowed_hosts = [\"keys.example.com\", \"https://cdn.example.com\"]",
            ),
            "jwtgate.toml:7:43: token_config[0].jwks_allowed_hosts[1]: expected a host such as \"keys.example.com\" or \"keys.example.com:8443\": a host, not a URL: no scheme (the configured one applies)",
        ),
        (
            remote(
                "jwks_url = \"https://idp.example/keys\"\njwks_allowed_hosts = [\"*.example.com\"]",
            ),
            "jwtgate.toml:7:23: token_config[0].jwks_allowed_hosts[0]: expected a host such as \"keys.example.com\" or \"keys.example.com:8443\": no wildcards: list each host",
        ),
        (
            remote(
                "jwks_url = \"https://idp.example/keys\"\njwks_allowed_hosts = [\"keys.example.com/jwks\"]",
            ),
            "token_config[0].jwks_allowed_hosts[0]: expected a host such as \"keys.example.com\" or \"keys.example.com:8443\": a host, not a URL: no path, query or fragment",
        ),
        (
            remote(
                "jwks_url = \"https://idp.example/keys\"\njwks_allowed_hosts = [\"keys.example.com:0\"]",
            ),
            "token_config[0].jwks_allowed_hosts[0]: expected a host such as \"keys.example.com\" or \"keys.example.com:8443\": the port is not a number from 1 to 65535",
        ),
        (
            "default_action = \"deny\"\n[[token_config]]\nname = \"p\"\n@JWKS@\njwks_allowed_hosts = [\"keys.example.com\"]\n".to_owned(),
            "jwtgate.toml:5:22: token_config[0].jwks_allowed_hosts: applies to fetched keys only: set jwks_url or issuer_discovery = true",
        ),
        (
            remote("jwks_url = \"https://idp example/keys\""),
            "jwtgate.toml:6:12: token_config[0].jwks_url: not a URL such as \"https://idp.example.com/keys\"",
        ),
    ] {
        let message = error(&text);
        assert!(
            message.contains(expected),
            "for:\n{text}\nexpected: {expected}\n     got: {message}"
        );
    }
}
