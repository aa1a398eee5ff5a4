//! What the tests behind a proxy share (`e2e_nginx.rs`, `e2e_caddy.rs`,
//! `e2e_traefik.rs`, `e2e_envoy_http.rs`): one issuer and audience, tokens
//! for them, and a configuration of one token configuration over
//! `tests/data/rsa2048-a` with the proxy's own `[server]` lines and rules.

use super::{data_path, mint, signing_key};
use jwtgate::Algorithm;

/// `serve --now`: the tokens below are valid for an hour from here.
pub const NOW: &str = "1700000000";
pub const T: i64 = 1_700_000_000;
pub const ISS: &str = "https://idp.test/";
pub const AUD: &str = "api";

/// An RS256 token for `sub`, valid at [`NOW`], signed with `tests/data/<key>`
/// (`rsa2048-a` is the configuration's key; another is a forgery).
pub fn token(key: &str, sub: &str) -> String {
    mint(
        r#"{"alg":"RS256","typ":"JWT"}"#,
        &format!(
            r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"{sub}","iat":{T},"exp":{}}}"#,
            T + 3600
        ),
        &signing_key(key, Algorithm::Rs256),
        Algorithm::Rs256,
    )
}

/// `default_action = "deny"`, a `[server]` table of `server` lines, the
/// token configuration `users` (with `extra` lines, e.g. `sources`), and
/// `rules`.
pub fn config(server: &str, extra: &str, rules: &str) -> String {
    format!(
        r#"default_action = "deny"

[server]
{server}

[[token_config]]
name = "users"
{extra}
public_key_file = "{key}"
algorithms = ["RS256"]
issuer = "{ISS}"
audiences = ["{AUD}"]

{rules}"#,
        key = data_path("rsa2048-a.spki.pem").display()
    )
}

/// `/v1/**` on `api.example.com` (`GET /v1/health` excluded) checked by
/// `users`.
pub const API_RULE: &str = r#"[[rule]]
name = "api"
hosts = ["api.example.com"]
paths = ["/v1/**"]
exclude = ["GET /v1/health"]
token_configs = ["users"]
"#;
