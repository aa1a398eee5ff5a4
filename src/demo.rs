//! `jwtgate demo`: the engine at work on the bundled demo key set, with no
//! setup. It signs a handful of tokens (good ones and the classic attacks) with
//! the demo private keys compiled into the binary and shows each outcome.
//!
//! The demo keys are public knowledge (they are in the repository): never trust
//! them anywhere but on a laptop.

use std::fmt::Write as _;

use jwtgate_engine::base64url;
use jwtgate_engine::internals::pem;

use crate::signing::SigningKey;
use crate::{Algorithm, AlgorithmSet, KeySet, UnixTime, Validation, Verifier};

/// The demo JWKS (RS256, ES256 and EdDSA keys), as in `examples/keys/demo.jwks.json`.
pub(crate) const DEMO_JWKS: &str = include_str!("../examples/keys/demo.jwks.json");
const DEMO_RS256_PKCS8: &str = include_str!("../examples/keys/demo-rs256.pk8.pem");
const DEMO_EDDSA_PKCS8: &str = include_str!("../examples/keys/demo-eddsa.pk8.pem");

/// Issuer and audience the demo tokens carry and the demo verifier expects.
pub const DEMO_ISSUER: &str = "https://demo.jwtgate.invalid/";
/// See [`DEMO_ISSUER`].
pub const DEMO_AUDIENCE: &str = "demo-api";

/// Something in the embedded demo material is broken (a build problem, not input).
#[derive(Debug, thiserror::Error)]
#[error("demo material: {0}")]
pub struct DemoError(String);

fn pkcs8_der(pem: &str) -> Result<Vec<u8>, DemoError> {
    pem::decode_blocks(pem)
        .map_err(|error| DemoError(error.to_string()))?
        .into_iter()
        .next()
        .map(|block| block.der)
        .ok_or_else(|| DemoError("no PEM block".into()))
}

/// The verifier the demo uses: the demo key set, RS256/ES256/EdDSA, demo issuer
/// and audience, default leeway.
pub fn demo_verifier() -> Result<Verifier, DemoError> {
    let keys = KeySet::parse(DEMO_JWKS.as_bytes()).map_err(|e| DemoError(e.to_string()))?;
    let algorithms: AlgorithmSet = [Algorithm::Rs256, Algorithm::Es256, Algorithm::EdDsa]
        .into_iter()
        .collect();
    let validation = Validation::new(algorithms)
        .issuer(DEMO_ISSUER)
        .audience(DEMO_AUDIENCE);
    Verifier::new(keys, validation).map_err(|e| DemoError(e.to_string()))
}

fn sign(
    header: &str,
    claims: &str,
    key: &SigningKey,
    algorithm: Algorithm,
) -> Result<String, DemoError> {
    let mut token = base64url::encode(header.as_bytes());
    token.push('.');
    base64url::encode_into(claims.as_bytes(), &mut token);
    let signature = key
        .sign(algorithm, token.as_bytes())
        .map_err(|e| DemoError(e.to_string()))?;
    token.push('.');
    base64url::encode_into(&signature, &mut token);
    Ok(token)
}

/// A demo token signed with the embedded RS256 key, valid from `now` for `ttl` seconds.
pub fn demo_token(now: UnixTime, ttl: i64, subject: &str) -> Result<String, DemoError> {
    let key = SigningKey::from_pkcs8(Algorithm::Rs256, &pkcs8_der(DEMO_RS256_PKCS8)?)
        .map_err(|e| DemoError(e.to_string()))?;
    let claims = format!(
        r#"{{"iss":"{DEMO_ISSUER}","aud":"{DEMO_AUDIENCE}","sub":"{subject}","iat":{},"exp":{}}}"#,
        now.0,
        now.0 + ttl
    );
    sign(
        r#"{"alg":"RS256","typ":"JWT","kid":"demo-rs256"}"#,
        &claims,
        &key,
        Algorithm::Rs256,
    )
}

/// `token` with its payload swapped for one naming `admin`, keeping the
/// original signature: the classic tampering, refused as `bad_signature`.
pub(crate) fn tampered_token(token: &str, now: UnixTime) -> Result<String, DemoError> {
    let (Some(first), Some(last)) = (token.find('.'), token.rfind('.')) else {
        return Err(DemoError("a demo token has no dots".into()));
    };
    let forged = format!(
        r#"{{"iss":"{DEMO_ISSUER}","aud":"{DEMO_AUDIENCE}","sub":"admin","iat":{},"exp":{}}}"#,
        now.0,
        now.0 + 3600
    );
    Ok(format!(
        "{}.{}{}",
        token.get(..first).unwrap_or(""),
        base64url::encode(forged.as_bytes()),
        token.get(last..).unwrap_or("")
    ))
}

/// Single quotes for a POSIX shell; demo tokens are base64url, so this is a formality.
fn shell_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// `serve --demo`'s ready-to-paste curl lines against the service at `addr`,
/// with tokens minted at `now`.
pub(crate) fn curl_lines(addr: std::net::SocketAddr, now: UnixTime) -> Result<String, DemoError> {
    let token = demo_token(now, 3600, "alice")?;
    let tampered = tampered_token(&token, now)?;
    let url = format!("http://{addr}/");
    Ok(format!(
        "\nDemo mode: built-in demo keys (public in the repository; never trust them outside a laptop).\n\
         Issuer {iss}, audience {aud}.\n\n\
         Allowed, 200 with x-jwt-sub: alice (the token is valid for an hour):\n  \
         curl -i -H {valid} {url}\n\n\
         Denied, 401 bad_signature (the payload was swapped for one naming admin):\n  \
         curl -i -H {forged} {url}\n\n\
         Missing token, 401 with a bare Bearer challenge:\n  \
         curl -i {url}\n\n\
         Stop with Ctrl-C.",
        iss = DEMO_ISSUER,
        aud = DEMO_AUDIENCE,
        valid = shell_quoted(&format!("Authorization: Bearer {token}")),
        forged = shell_quoted(&format!("Authorization: Bearer {tampered}")),
    ))
}

/// Runs the demo at `now` and renders its report.
pub fn run(now: UnixTime) -> Result<String, DemoError> {
    let verifier = demo_verifier()?;
    let rs256 = SigningKey::from_pkcs8(Algorithm::Rs256, &pkcs8_der(DEMO_RS256_PKCS8)?)
        .map_err(|e| DemoError(e.to_string()))?;
    let eddsa = SigningKey::from_pkcs8(Algorithm::EdDsa, &pkcs8_der(DEMO_EDDSA_PKCS8)?)
        .map_err(|e| DemoError(e.to_string()))?;
    let claims = |sub: &str, exp: i64| {
        format!(
            r#"{{"iss":"{DEMO_ISSUER}","aud":"{DEMO_AUDIENCE}","sub":"{sub}","iat":{},"exp":{exp}}}"#,
            now.0
        )
    };
    let rs_header = r#"{"alg":"RS256","typ":"JWT","kid":"demo-rs256"}"#;
    let valid = demo_token(now, 3600, "alice")?;
    let tampered = tampered_token(&valid, now)?;
    let public_pem_as_secret = SigningKey::hmac(DEMO_JWKS.as_bytes());
    let cases: Vec<(&str, String)> = vec![
        ("valid RS256 token", valid.clone()),
        (
            "valid EdDSA token",
            sign(
                r#"{"alg":"EdDSA","kid":"demo-eddsa"}"#,
                &claims("bob", now.0 + 600),
                &eddsa,
                Algorithm::EdDsa,
            )?,
        ),
        (
            "expired an hour ago",
            sign(
                rs_header,
                &claims("alice", now.0 - 3600),
                &rs256,
                Algorithm::Rs256,
            )?,
        ),
        ("payload swapped (sub=admin)", tampered),
        (
            "alg none",
            format!(
                "{}.{}.",
                base64url::encode(br#"{"alg":"none"}"#),
                base64url::encode(claims("admin", now.0 + 60).as_bytes())
            ),
        ),
        (
            "HS256 keyed with the public JWKS",
            sign(
                r#"{"alg":"HS256","kid":"demo-rs256"}"#,
                &claims("admin", now.0 + 60),
                &public_pem_as_secret,
                Algorithm::Hs256,
            )?,
        ),
        (
            "unknown kid",
            sign(
                r#"{"alg":"RS256","kid":"rotated-away"}"#,
                &claims("alice", now.0 + 60),
                &rs256,
                Algorithm::Rs256,
            )?,
        ),
        (
            "wrong audience",
            sign(
                rs_header,
                &claims("alice", now.0 + 60).replace(DEMO_AUDIENCE, "billing-api"),
                &rs256,
                Algorithm::Rs256,
            )?,
        ),
        (
            "encrypted (JWE)",
            "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d".to_owned(),
        ),
    ];

    let mut report = String::new();
    let _ = writeln!(
        report,
        "jwtgate demo: the verification engine on the bundled demo key set"
    );
    for key in verifier.keys().keys() {
        let _ = writeln!(report, "  key {}", key.describe());
    }
    let _ = writeln!(
        report,
        "  issuer {DEMO_ISSUER}, audience {DEMO_AUDIENCE}, leeway 60 s\n"
    );
    let mut scratch = verifier.scratch();
    for (label, token) in &cases {
        let line = match verifier.verify(token.as_bytes(), now, &mut scratch) {
            Ok(verified) => format!(
                "valid (sub={}, alg={}, kid={})",
                verified
                    .claims
                    .sub
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
                verified.algorithm(),
                verified.key.kid().unwrap_or("-")
            ),
            Err(rejection) => rejection.to_string(),
        };
        let _ = writeln!(report, "  {label:<34} -> {line}");
    }
    let _ = writeln!(report, "\nA valid demo token (RS256, one hour):\n{valid}");
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_shows_every_outcome_it_promises() {
        let report = run(UnixTime(1_700_000_000)).unwrap();
        for expected in [
            "valid RS256 token                  -> valid (sub=alice, alg=RS256, kid=demo-rs256)",
            "valid EdDSA token                  -> valid (sub=bob, alg=EdDSA, kid=demo-eddsa)",
            "-> expired:",
            "payload swapped (sub=admin)        -> bad_signature:",
            "alg none                           -> alg_not_allowed: alg none is never accepted",
            "HS256 keyed with the public JWKS   -> alg_not_allowed:",
            "unknown kid                        -> unknown_kid:",
            "wrong audience                     -> wrong_audience:",
            "encrypted (JWE)                    -> malformed: encrypted tokens are not supported",
        ] {
            assert!(
                report.contains(expected),
                "missing {expected:?} in\n{report}"
            );
        }
    }
}
