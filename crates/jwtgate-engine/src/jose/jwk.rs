//! JSON Web Keys (RFC 7517, RFC 7518 §6, RFC 8037 §2): one JWK object typed into
//! public key material, with the member checks the RFCs demand.
//!
//! This module only reads JSON; it decides nothing about trust. It reports two
//! kinds of problem so that `keys` ([`crate::KeySet`]) can treat them differently: a key
//! jwtgate does not *support* (an exotic type, curve or algorithm, or an encryption
//! key) is skipped with a warning, while a key that is *invalid* (bad encoding,
//! wrong lengths, private material) fails the whole key set.

use crate::jose::alg::{Algorithm, AlgorithmError, KeyFamily};
use crate::jose::base64url;
use crate::jose::json::{JsonStr, Object, Value};

/// The public material of a JWK jwtgate can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwkMaterial {
    /// `kty: RSA`: big-endian modulus and exponent, leading zero bytes removed.
    Rsa {
        /// The modulus `n`.
        n: Vec<u8>,
        /// The public exponent `e`.
        e: Vec<u8>,
    },
    /// `kty: EC`: the affine coordinates, each exactly the curve's field length.
    Ec {
        /// P-256 or P-384.
        curve: KeyFamily,
        /// The x coordinate.
        x: Vec<u8>,
        /// The y coordinate.
        y: Vec<u8>,
    },
    /// `kty: OKP, crv: Ed25519`: the 32-byte public key.
    Ed25519 {
        /// The encoded point.
        x: [u8; 32],
    },
    /// `kty: oct`: a symmetric secret.
    Symmetric {
        /// The secret bytes.
        k: Vec<u8>,
    },
}

impl JwkMaterial {
    /// The key family, which bounds the algorithms the key may ever verify.
    pub fn family(&self) -> KeyFamily {
        match self {
            JwkMaterial::Rsa { .. } => KeyFamily::Rsa,
            JwkMaterial::Ec { curve, .. } => *curve,
            JwkMaterial::Ed25519 { .. } => KeyFamily::Ed25519,
            JwkMaterial::Symmetric { .. } => KeyFamily::Hmac,
        }
    }
}

/// A JWK that jwtgate can verify with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwk {
    /// `kid`, when present.
    pub kid: Option<String>,
    /// `alg`, when present: the key is bound to exactly this algorithm.
    pub alg: Option<Algorithm>,
    /// The key material.
    pub material: JwkMaterial,
}

/// Why a JWK cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwkError {
    /// A key jwtgate does not support, or one not meant for signature verification.
    #[error("unsupported key: {0}")]
    Unsupported(String),
    /// A key that breaks the RFCs or jwtgate's minimum strength.
    #[error("invalid key: {0}")]
    Invalid(String),
}

fn invalid(reason: impl Into<String>) -> JwkError {
    JwkError::Invalid(reason.into())
}

fn unsupported(reason: impl Into<String>) -> JwkError {
    JwkError::Unsupported(reason.into())
}

fn string_member<'t>(jwk: Object<'t>, name: &str) -> Result<Option<JsonStr<'t>>, JwkError> {
    jwk.get(name)
        .map(|value| {
            value
                .as_str()
                .ok_or_else(|| invalid(format!("{name} is not a string")))
        })
        .transpose()
}

fn required_bytes(jwk: Object<'_>, name: &str) -> Result<Vec<u8>, JwkError> {
    let encoded = string_member(jwk, name)?.ok_or_else(|| invalid(format!("{name} is missing")))?;
    let bytes = base64url::decode(encoded.to_cow().as_bytes())
        .map_err(|error| invalid(format!("{name} is not strict base64url: {error}")))?;
    if bytes.is_empty() {
        return Err(invalid(format!("{name} is empty")));
    }
    Ok(bytes)
}

fn without_leading_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|&&b| b == 0).count();
    bytes.drain(..zeros);
    bytes
}

fn refuse_private_members(jwk: Object<'_>, members: &[&str]) -> Result<(), JwkError> {
    match members.iter().find(|name| jwk.get(name).is_some()) {
        Some(name) => Err(invalid(format!(
            "holds private key material ({name}); publish only the public key"
        ))),
        None => Ok(()),
    }
}

impl Jwk {
    /// Types one JWK object.
    pub fn parse(value: Value<'_>) -> Result<Jwk, JwkError> {
        let jwk = value
            .as_object()
            .ok_or_else(|| invalid("not a JSON object"))?;
        let kid = string_member(jwk, "kid")?.map(|kid| kid.to_string());
        check_use(jwk)?;
        let alg = match string_member(jwk, "alg")? {
            None => None,
            Some(name) => Some(Algorithm::from_name(&name.to_cow()).map_err(
                |error| match error {
                    AlgorithmError::None => invalid("alg none"),
                    AlgorithmError::Unsupported | AlgorithmError::Unknown => unsupported(format!(
                        "alg {name} is not a JWS algorithm jwtgate verifies"
                    )),
                },
            )?),
        };
        let material = material(jwk)?;
        if let Some(alg) = alg
            && alg.family() != material.family()
        {
            return Err(invalid(format!(
                "alg {alg} does not fit a {} key",
                family_name(material.family())
            )));
        }
        Ok(Jwk { kid, alg, material })
    }
}

/// `use` must be `sig` and `key_ops` must include `verify` when present
/// (RFC 7517 §4.2, §4.3); anything else is a key for another job.
fn check_use(jwk: Object<'_>) -> Result<(), JwkError> {
    if let Some(usage) = string_member(jwk, "use")?
        && usage != "sig"
    {
        return Err(unsupported(format!("use is {usage:?}, not \"sig\"")));
    }
    if let Some(ops) = jwk.get("key_ops") {
        let ops = ops
            .as_array()
            .ok_or_else(|| invalid("key_ops is not an array"))?;
        let mut verify = false;
        for op in ops {
            let op = op
                .as_str()
                .ok_or_else(|| invalid("key_ops holds a non-string"))?;
            verify |= op == "verify";
        }
        if !verify {
            return Err(unsupported("key_ops does not include \"verify\""));
        }
    }
    Ok(())
}

fn material(jwk: Object<'_>) -> Result<JwkMaterial, JwkError> {
    let kty = string_member(jwk, "kty")?.ok_or_else(|| invalid("kty is missing"))?;
    let kty = kty.to_cow();
    match &*kty {
        "RSA" => {
            refuse_private_members(jwk, &["d", "p", "q", "dp", "dq", "qi", "oth"])?;
            Ok(JwkMaterial::Rsa {
                n: without_leading_zeros(required_bytes(jwk, "n")?),
                e: without_leading_zeros(required_bytes(jwk, "e")?),
            })
        }
        "EC" => {
            refuse_private_members(jwk, &["d"])?;
            let crv = string_member(jwk, "crv")?.ok_or_else(|| invalid("crv is missing"))?;
            let (curve, length) = match &*crv.to_cow() {
                "P-256" => (KeyFamily::P256, 32),
                "P-384" => (KeyFamily::P384, 48),
                other => return Err(unsupported(format!("EC curve {other:?}"))),
            };
            let x = required_bytes(jwk, "x")?;
            let y = required_bytes(jwk, "y")?;
            if x.len() != length || y.len() != length {
                return Err(invalid(format!(
                    "{crv} coordinates must be {length} bytes each"
                )));
            }
            Ok(JwkMaterial::Ec { curve, x, y })
        }
        "OKP" => {
            refuse_private_members(jwk, &["d"])?;
            let crv = string_member(jwk, "crv")?.ok_or_else(|| invalid("crv is missing"))?;
            if crv != "Ed25519" {
                return Err(unsupported(format!("OKP curve {crv}")));
            }
            let x = required_bytes(jwk, "x")?;
            let x = <[u8; 32]>::try_from(x.as_slice())
                .map_err(|_| invalid("Ed25519 x must be 32 bytes"))?;
            Ok(JwkMaterial::Ed25519 { x })
        }
        "oct" => Ok(JwkMaterial::Symmetric {
            k: required_bytes(jwk, "k")?,
        }),
        other => Err(unsupported(format!("key type {other:?}"))),
    }
}

/// A human name for a key family, for messages.
pub fn family_name(family: KeyFamily) -> &'static str {
    match family {
        KeyFamily::Rsa => "RSA",
        KeyFamily::P256 => "EC P-256",
        KeyFamily::P384 => "EC P-384",
        KeyFamily::Ed25519 => "Ed25519",
        KeyFamily::Hmac => "symmetric (oct)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::json::Tape;

    fn parse(json: &str) -> Result<Jwk, JwkError> {
        let mut tape = Tape::new();
        let value = tape
            .parse(json.as_bytes(), 8)
            .map_err(|e| invalid(e.to_string()))?;
        Jwk::parse(value)
    }

    const P256_X: &str = "04N0xi21hshyvBp7I167sbE_bXqyqkAPfefdklMO7wY";
    const P256_Y: &str = "UI8exy-C06a7DUnjIdENkxeFtHM4-l_41LqEw9nVgmw";

    #[test]
    fn reads_an_ec_key() {
        let jwk = parse(&format!(
            r#"{{"kty":"EC","crv":"P-256","x":"{P256_X}","y":"{P256_Y}","kid":"k","alg":"ES256","use":"sig","key_ops":["verify"]}}"#
        ));
        let Ok(jwk) = jwk else {
            unreachable!("{jwk:?}")
        };
        assert_eq!(jwk.kid.as_deref(), Some("k"));
        assert_eq!(jwk.alg, Some(Algorithm::Es256));
        assert_eq!(jwk.material.family(), KeyFamily::P256);
    }

    #[test]
    fn classifies_problems() {
        let is_unsupported = |json: &str| matches!(parse(json), Err(JwkError::Unsupported(_)));
        let is_invalid = |json: &str| matches!(parse(json), Err(JwkError::Invalid(_)));
        assert!(is_unsupported(
            r#"{"kty":"EC","crv":"P-521","x":"AA","y":"AA"}"#
        ));
        assert!(is_unsupported(r#"{"kty":"OKP","crv":"Ed448","x":"AA"}"#));
        assert!(is_unsupported(r#"{"kty":"AKP","pub":"AA"}"#));
        assert!(is_unsupported(r#"{"kty":"oct","k":"AAAA","use":"enc"}"#));
        assert!(is_unsupported(
            r#"{"kty":"oct","k":"AAAA","key_ops":["sign"]}"#
        ));
        assert!(is_unsupported(
            r#"{"kty":"oct","k":"AAAA","alg":"A256GCM"}"#
        ));
        assert!(is_invalid(r#"{"k":"AAAA"}"#));
        assert!(is_invalid(r#"{"kty":"oct","k":""}"#));
        assert!(is_invalid(r#"{"kty":"oct","k":"AA=="}"#));
        assert!(is_invalid(r#"{"kty":"oct","k":"AAAA","alg":"RS256"}"#));
        assert!(is_invalid(r#"{"kty":"oct","k":"AAAA","key_ops":"verify"}"#));
        assert!(is_invalid(
            r#"{"kty":"RSA","n":"AQAB","e":"AQAB","d":"AQAB"}"#
        ));
        assert!(is_invalid(&format!(
            r#"{{"kty":"EC","crv":"P-384","x":"{P256_X}","y":"{P256_Y}"}}"#
        )));
        assert!(is_invalid(&format!(
            r#"{{"kty":"EC","crv":"P-256","x":"{P256_X}","y":"{P256_Y}","alg":"ES384"}}"#
        )));
        assert!(is_invalid(r#"{"kty":"OKP","crv":"Ed25519","x":"AAAA"}"#));
        assert!(is_invalid(r#"{"kty":"oct","k":"AAAA","kid":7}"#));
    }

    #[test]
    fn strips_leading_zeros_from_rsa_integers() {
        let jwk = parse(r#"{"kty":"RSA","n":"AAEC","e":"AAEAAQ"}"#);
        assert_eq!(
            jwk.map(|j| j.material),
            Ok(JwkMaterial::Rsa {
                n: vec![1, 2],
                e: vec![1, 0, 1]
            })
        );
    }
}
