//! `jwtgate mint`: signs tokens for demos, tests and benchmarks.
//!
//! Claims are assembled from flags (`iss`, `sub`, `aud`, `iat`, `exp`, a fresh
//! random `jti` per token) plus any members of `--claims`, which win over the
//! flags. Many tokens (`--count`) are signed on every core, written in order.

use std::io::Write;
use std::path::Path;

use jwtgate_engine::internals::json::Tape;
use jwtgate_engine::internals::jwk::{Jwk, JwkMaterial};
use jwtgate_engine::internals::pem;
use jwtgate_engine::{KeyFamily, base64url};

use crate::json_string::quote_into;
use crate::signing::{self, SigningKey};
use crate::tools::{ToolError, read_file};
use crate::{Algorithm, UnixTime};

/// What to mint.
#[derive(Debug, Clone)]
pub struct MintOptions {
    /// Signature algorithm.
    pub algorithm: Algorithm,
    /// Header `kid`; default: the key file's own `kid`, if it is a JWK.
    pub kid: Option<String>,
    /// `iss`
    pub issuer: Option<String>,
    /// `aud`: one value becomes a string, several an array.
    pub audiences: Vec<String>,
    /// `sub`
    pub subject: Option<String>,
    /// Seconds from issue to `exp`.
    pub ttl: i64,
    /// A JSON object whose members are added (and override the flags).
    pub claims: Option<String>,
    /// How many tokens.
    pub count: u64,
    /// Issue time (`iat`).
    pub now: UnixTime,
    /// Signing threads for large counts; 0 means one per core.
    pub threads: usize,
}

/// Loads a signing key: a PKCS#8 PEM private key, or for HMAC a JWK/JWKS whose
/// first `oct` key is the secret. Returns the key and the key file's `kid`.
pub fn load_signing_key(
    path: &Path,
    algorithm: Algorithm,
) -> Result<(SigningKey, Option<String>), ToolError> {
    let bytes = read_file(path)?;
    let content = |reason: String| ToolError::Content {
        path: path.to_owned(),
        reason,
    };
    if algorithm.family() == KeyFamily::Hmac {
        let jwk = first_jwk(&bytes).map_err(content)?;
        return match jwk.material {
            JwkMaterial::Symmetric { k } => Ok((SigningKey::hmac(&k), jwk.kid)),
            _ => Err(content(format!("{algorithm} needs an oct (symmetric) key"))),
        };
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| content("not a PEM file".into()))?;
    let blocks = pem::decode_blocks(text).map_err(|e| content(e.to_string()))?;
    let block = blocks
        .into_iter()
        .next()
        .ok_or_else(|| content("no PEM block".into()))?;
    match block.label.as_str() {
        "PRIVATE KEY" => {}
        "RSA PRIVATE KEY" | "EC PRIVATE KEY" => {
            return Err(content(format!(
                "{} is not PKCS#8; convert it: openssl pkcs8 -topk8 -nocrypt -in {}",
                block.label,
                path.display()
            )));
        }
        other => {
            return Err(content(format!(
                "expected a PRIVATE KEY block, found {other:?}"
            )));
        }
    }
    let key = SigningKey::from_pkcs8(algorithm, &block.der).map_err(|e| content(e.to_string()))?;
    Ok((key, None))
}

fn first_jwk(bytes: &[u8]) -> Result<Jwk, String> {
    let mut tape = Tape::new();
    let root = tape
        .parse(bytes, 8)
        .map_err(|e| format!("invalid JSON: {e}"))?;
    let object = root.as_object().ok_or("not a JSON object")?;
    let value = match object.get("keys") {
        Some(keys) => keys
            .as_array()
            .and_then(|keys| keys.iter().next())
            .ok_or("the JWKS has no keys")?,
        None => root,
    };
    Jwk::parse(value).map_err(|e| e.to_string())
}

/// The parts of every token that do not change from one to the next.
struct Template {
    header_b64: String,
    /// The claims JSON up to (not including) the `jti` member and closing brace.
    claims_head: String,
    /// Members of `--claims`, appended after `jti`.
    claims_tail: String,
    jti: bool,
}

fn template(options: &MintOptions, kid: Option<&str>) -> Result<Template, ToolError> {
    let mut header = Vec::new();
    header.extend_from_slice(format!(r#"{{"alg":"{}","typ":"JWT""#, options.algorithm).as_bytes());
    if let Some(kid) = kid {
        header.extend_from_slice(b",\"kid\":");
        quote_into(&mut header, kid);
    }
    header.push(b'}');

    let mut extra_names = Vec::new();
    let mut claims_tail = String::new();
    if let Some(extra) = &options.claims {
        let mut tape = Tape::new();
        let root = tape
            .parse(extra.as_bytes(), 32)
            .map_err(|e| ToolError::Usage(format!("--claims is not valid JSON: {e}")))?;
        let object = root
            .as_object()
            .ok_or_else(|| ToolError::Usage("--claims must be a JSON object".into()))?;
        for (name, value) in object.members() {
            extra_names.push(name.to_string());
            claims_tail.push(',');
            let mut quoted = Vec::new();
            quote_into(&mut quoted, &name.to_cow());
            claims_tail.push_str(&String::from_utf8_lossy(&quoted));
            claims_tail.push(':');
            claims_tail.push_str(value.raw_json());
        }
    }
    let overridden = |name: &str| extra_names.iter().any(|n| n == name);
    let mut members: Vec<Vec<u8>> = Vec::new();
    let mut string_claim = |name: &str, value: &Option<String>| {
        if let (Some(value), false) = (value, overridden(name)) {
            let mut member = format!("\"{name}\":").into_bytes();
            quote_into(&mut member, value);
            members.push(member);
        }
    };
    string_claim("iss", &options.issuer);
    string_claim("sub", &options.subject);
    if !options.audiences.is_empty() && !overridden("aud") {
        let mut member = b"\"aud\":".to_vec();
        if let [single] = options.audiences.as_slice() {
            quote_into(&mut member, single);
        } else {
            member.push(b'[');
            for (position, audience) in options.audiences.iter().enumerate() {
                if position > 0 {
                    member.push(b',');
                }
                quote_into(&mut member, audience);
            }
            member.push(b']');
        }
        members.push(member);
    }
    if !overridden("iat") {
        members.push(format!("\"iat\":{}", options.now.0).into_bytes());
    }
    if !overridden("exp") {
        members.push(format!("\"exp\":{}", options.now.0.saturating_add(options.ttl)).into_bytes());
    }
    let joined: Vec<String> = members
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect();
    let claims_head = format!("{{{}", joined.join(","));
    let jti = !overridden("jti");
    let claims_tail = if joined.is_empty() && !jti {
        // `{` + tail would start with a comma.
        claims_tail
            .strip_prefix(',')
            .unwrap_or(&claims_tail)
            .to_owned()
    } else {
        claims_tail
    };
    Ok(Template {
        header_b64: base64url::encode(&header),
        claims_head,
        claims_tail,
        jti,
    })
}

fn mint_one(
    template: &Template,
    key: &SigningKey,
    algorithm: Algorithm,
    out: &mut Vec<u8>,
) -> Result<(), ToolError> {
    let mut claims = template.claims_head.clone();
    if template.jti {
        let mut random = [0u8; 16];
        signing::random_bytes(&mut random).map_err(|e| ToolError::Usage(e.to_string()))?;
        if claims.len() > 1 {
            claims.push(',');
        }
        claims.push_str("\"jti\":\"");
        base64url::encode_into(&random, &mut claims);
        claims.push('"');
    }
    claims.push_str(&template.claims_tail);
    claims.push('}');
    let mut token = template.header_b64.clone();
    token.push('.');
    base64url::encode_into(claims.as_bytes(), &mut token);
    let signature = key
        .sign(algorithm, token.as_bytes())
        .map_err(|e| ToolError::Usage(e.to_string()))?;
    token.push('.');
    base64url::encode_into(&signature, &mut token);
    out.extend_from_slice(token.as_bytes());
    out.push(b'\n');
    Ok(())
}

/// Mints `options.count` tokens, one per line, into `out`.
pub fn mint(
    key: &SigningKey,
    key_kid: Option<&str>,
    options: &MintOptions,
    out: &mut dyn Write,
) -> Result<(), ToolError> {
    let kid = options.kid.as_deref().or(key_kid);
    let template = template(options, kid)?;
    let threads = match options.threads {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    const CHUNK: u64 = 4096;
    let mut remaining = options.count;
    while remaining > 0 {
        let chunk = remaining.min(CHUNK);
        remaining -= chunk;
        let per_thread = chunk.div_ceil(threads as u64);
        let parts: Vec<Result<Vec<u8>, ToolError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads as u64)
                .map(|index| {
                    let count = per_thread.min(chunk.saturating_sub(index * per_thread));
                    let template = &template;
                    scope.spawn(move || {
                        let mut lines = Vec::new();
                        for _ in 0..count {
                            mint_one(template, key, options.algorithm, &mut lines)?;
                        }
                        Ok(lines)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|handle| {
                    handle
                        .join()
                        .unwrap_or_else(|_| Err(ToolError::Usage("a signing thread failed".into())))
                })
                .collect()
        });
        for part in parts {
            out.write_all(&part?).map_err(ToolError::Output)?;
        }
    }
    out.flush().map_err(ToolError::Output)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AlgorithmSet, KeySet, Validation, Verifier};

    fn options() -> MintOptions {
        MintOptions {
            algorithm: Algorithm::Hs256,
            kid: Some("k\"1".into()),
            issuer: Some("https://idp/".into()),
            audiences: vec!["a".into(), "b".into()],
            subject: Some("user \"q\"".into()),
            ttl: 600,
            claims: Some(r#"{"scope":"read write","exp":1700000300,"nested":{"x":[1,2]}}"#.into()),
            count: 50,
            now: UnixTime(1_700_000_000),
            threads: 3,
        }
    }

    #[test]
    fn minted_tokens_verify_and_carry_the_requested_claims() {
        let secret = [7u8; 32];
        let key = SigningKey::hmac(&secret);
        let mut out = Vec::new();
        mint(&key, None, &options(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let tokens: Vec<&str> = text.lines().collect();
        assert_eq!(tokens.len(), 50);
        let keys = KeySet::from_hmac_secret(&secret, Some("k\"1")).unwrap();
        let validation = Validation::new(AlgorithmSet::only(Algorithm::Hs256))
            .issuer("https://idp/")
            .audience("b");
        let verifier = Verifier::new(keys, validation).unwrap();
        let mut scratch = verifier.scratch();
        let mut jtis = std::collections::HashSet::new();
        for token in tokens {
            let verified = verifier
                .verify(token.as_bytes(), UnixTime(1_700_000_100), &mut scratch)
                .unwrap();
            assert_eq!(
                verified.claims.exp.map(|e| e.seconds()),
                Some(1_700_000_300),
                "--claims wins"
            );
            assert_eq!(
                verified.claims.sub.map(|s| s.to_string()).as_deref(),
                Some("user \"q\"")
            );
            assert_eq!(
                verified.claims.lookup("nested.x").map(|v| v.raw_json()),
                Some("[1,2]")
            );
            assert!(jtis.insert(verified.claims.jti.map(|j| j.to_string()).unwrap()));
        }
    }

    #[test]
    fn claims_must_be_an_object() {
        let mut bad = options();
        bad.claims = Some("[1]".into());
        let key = SigningKey::hmac(&[7u8; 32]);
        assert!(matches!(
            mint(&key, None, &bad, &mut Vec::new()),
            Err(ToolError::Usage(_))
        ));
        bad.claims = Some("{\"a\":1,\"a\":2}".into());
        assert!(matches!(
            mint(&key, None, &bad, &mut Vec::new()),
            Err(ToolError::Usage(_))
        ));
    }
}
