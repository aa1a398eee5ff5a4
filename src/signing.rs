//! Signing and key generation, for the token tools (`keygen`, `mint`, `demo`),
//! tests and benchmarks: the service crate's only module that imports a crypto
//! library (`ring` signs and generates EC, Ed25519 and HMAC keys; `rsa`
//! generates RSA keys, which `ring` cannot).
//!
//! Verification is the engine's job (`jwtgate_engine`, behind its own crypto
//! seam); nothing here is used to verify a token. Neighbours: [`crate::tools`]
//! and [`crate::demo`] call it; key material comes back as the engine's JWK
//! types so that `keygen` publishes exactly what the engine will load.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{self, KeyPair as _};
use ring::{hmac, rand};

use jwtgate_engine::KeyFamily;
use jwtgate_engine::internals::jwk::JwkMaterial;

use crate::Algorithm;

/// Why a key could not be generated or used for signing.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// The `rsa` crate could not generate a key.
    #[error("RSA key generation failed: {0}")]
    RsaGeneration(rsa::Error),
    /// A generated RSA key could not be written as PKCS#8.
    #[error("RSA key encoding failed: {0}")]
    RsaEncoding(rsa::pkcs8::Error),
    /// `ring` could not generate this kind of key (the argument names it).
    #[error("could not generate {0}")]
    Generation(&'static str),
    /// `ring` refused a key it had just generated.
    #[error("{0}")]
    Generated(ring::error::KeyRejected),
    /// A PKCS#8 private key was refused.
    #[error("private key rejected: {0}")]
    PrivateKey(ring::error::KeyRejected),
    /// A PKCS#8 private key of another type than the algorithm needs.
    #[error("{algorithm} needs {needs}, and this private key is {given}")]
    KeyType {
        /// The algorithm asked for.
        algorithm: Algorithm,
        /// The key type it needs, in words.
        needs: &'static str,
        /// The key type given, in words.
        given: &'static str,
    },
    /// An HMAC algorithm was asked of a PKCS#8 key.
    #[error("HMAC secrets are not PKCS#8 keys")]
    HmacNotPkcs8,
    /// The backend failed to sign.
    #[error("signing with {0} failed")]
    Signing(Algorithm),
    /// The key is of another family than the algorithm needs.
    #[error("this key cannot sign {0}")]
    WrongAlgorithm(Algorithm),
    /// The operating system's random generator failed.
    #[error("the system random generator failed")]
    Random,
}

/// Fresh key material from [`generate`]: the private key (PKCS#8 DER; for HMAC,
/// no private key exists beside the secret) and the public half as a JWK.
pub(crate) struct GeneratedKey {
    /// The private key, PKCS#8 DER; `None` for HMAC, whose secret is in `public`.
    pub pkcs8_der: Option<Vec<u8>>,
    /// The material a verifier needs (for HMAC, the secret itself).
    pub public: JwkMaterial,
}

/// Generates a key for `algorithm`: RSA 2048 bits (or `rsa_bits`), P-256, P-384,
/// Ed25519, or a random HMAC secret as long as the hash.
pub(crate) fn generate(
    algorithm: Algorithm,
    rsa_bits: usize,
) -> Result<GeneratedKey, SigningError> {
    use ring::rand::SecureRandom as _;
    let rng = rand::SystemRandom::new();
    match algorithm.family() {
        KeyFamily::Rsa => {
            use rsa::pkcs8::EncodePrivateKey as _;
            let private = rsa::PrivateKey::new(&mut getrandom::SysRng, rsa_bits)
                .map_err(SigningError::RsaGeneration)?;
            let der = private
                .to_pkcs8_der()
                .map_err(SigningError::RsaEncoding)?
                .as_bytes()
                .to_vec();
            // Read it back through ring: proves the signer accepts it and yields n, e.
            let pair = signature::RsaKeyPair::from_pkcs8(&der).map_err(SigningError::Generated)?;
            let components = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public());
            Ok(GeneratedKey {
                pkcs8_der: Some(der),
                public: JwkMaterial::Rsa {
                    n: components.n,
                    e: components.e,
                },
            })
        }
        family @ (KeyFamily::P256 | KeyFamily::P384) => {
            let signing = if family == KeyFamily::P256 {
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING
            } else {
                &signature::ECDSA_P384_SHA384_FIXED_SIGNING
            };
            let der = signature::EcdsaKeyPair::generate_pkcs8(signing, &rng)
                .map_err(|_| SigningError::Generation("an EC key"))?;
            let pair = signature::EcdsaKeyPair::from_pkcs8(signing, der.as_ref(), &rng)
                .map_err(SigningError::Generated)?;
            let point = pair.public_key().as_ref();
            let coordinates = point.get(1..).unwrap_or_default();
            let (x, y) = coordinates.split_at(coordinates.len() / 2);
            Ok(GeneratedKey {
                pkcs8_der: Some(der.as_ref().to_vec()),
                public: JwkMaterial::Ec {
                    curve: family,
                    x: x.to_vec(),
                    y: y.to_vec(),
                },
            })
        }
        KeyFamily::Ed25519 => {
            let der = signature::Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| SigningError::Generation("an Ed25519 key"))?;
            let pair = signature::Ed25519KeyPair::from_pkcs8(der.as_ref())
                .map_err(SigningError::Generated)?;
            let x = <[u8; 32]>::try_from(pair.public_key().as_ref())
                .map_err(|_| SigningError::Generation("an Ed25519 key"))?;
            Ok(GeneratedKey {
                pkcs8_der: Some(der.as_ref().to_vec()),
                public: JwkMaterial::Ed25519 { x },
            })
        }
        KeyFamily::Hmac => {
            let mut k = vec![0u8; algorithm.hash_len()];
            rng.fill(&mut k)
                .map_err(|_| SigningError::Generation("an HMAC secret"))?;
            Ok(GeneratedKey {
                pkcs8_der: None,
                public: JwkMaterial::Symmetric { k },
            })
        }
    }
}

/// Fills `bytes` from the operating system's secure random generator.
pub(crate) fn random_bytes(bytes: &mut [u8]) -> Result<(), SigningError> {
    use ring::rand::SecureRandom as _;
    rand::SystemRandom::new()
        .fill(bytes)
        .map_err(|_| SigningError::Random)
}

/// Encodes DER as a PEM block with 64-character lines.
pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for chunk in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

/// A private key for signing tokens (tools, tests, benchmarks).
pub struct SigningKey {
    inner: SigningInner,
}

enum SigningInner {
    Rsa(signature::RsaKeyPair),
    Ecdsa(signature::EcdsaKeyPair, KeyFamily),
    Ed25519(signature::Ed25519KeyPair),
    Hmac(Vec<u8>),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

fn family_text(family: KeyFamily) -> &'static str {
    match family {
        KeyFamily::Rsa => "an RSA key",
        KeyFamily::P256 => "an EC key on P-256",
        KeyFamily::P384 => "an EC key on P-384",
        KeyFamily::Ed25519 => "an Ed25519 key",
        KeyFamily::Hmac => "an HMAC secret",
    }
}

/// The key type a PKCS#8 key names in its algorithm identifier, which comes
/// within its first few dozen bytes: the object identifiers' DER encodings
/// (rsaEncryption, id-ecPublicKey with its curve, id-Ed25519).
fn pkcs8_family(der: &[u8]) -> Option<KeyFamily> {
    const RSA: &[u8] = &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
    const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    const P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
    const ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
    let head = der.get(..der.len().min(64))?;
    let holds = |oid: &[u8]| head.windows(oid.len()).any(|window| window == oid);
    [
        (RSA, KeyFamily::Rsa),
        (P256, KeyFamily::P256),
        (P384, KeyFamily::P384),
        (ED25519, KeyFamily::Ed25519),
    ]
    .into_iter()
    .find_map(|(oid, family)| holds(oid).then_some(family))
}

impl SigningKey {
    /// A private key from PKCS#8 DER, for the family `algorithm` needs.
    pub fn from_pkcs8(algorithm: Algorithm, der: &[u8]) -> Result<SigningKey, SigningError> {
        SigningKey::read_pkcs8(algorithm, der).map_err(|error| {
            let needs = family_text(algorithm.family());
            match (error, pkcs8_family(der)) {
                (SigningError::PrivateKey(_), Some(family)) if family != algorithm.family() => {
                    SigningError::KeyType {
                        algorithm,
                        needs,
                        given: family_text(family),
                    }
                }
                (error, _) => error,
            }
        })
    }

    fn read_pkcs8(algorithm: Algorithm, der: &[u8]) -> Result<SigningKey, SigningError> {
        let rng = rand::SystemRandom::new();
        let inner = match algorithm.family() {
            KeyFamily::Rsa => SigningInner::Rsa(
                signature::RsaKeyPair::from_pkcs8(der).map_err(SigningError::PrivateKey)?,
            ),
            KeyFamily::P256 => SigningInner::Ecdsa(
                signature::EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    der,
                    &rng,
                )
                .map_err(SigningError::PrivateKey)?,
                KeyFamily::P256,
            ),
            KeyFamily::P384 => SigningInner::Ecdsa(
                signature::EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
                    der,
                    &rng,
                )
                .map_err(SigningError::PrivateKey)?,
                KeyFamily::P384,
            ),
            KeyFamily::Ed25519 => SigningInner::Ed25519(
                signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                    .map_err(SigningError::PrivateKey)?,
            ),
            KeyFamily::Hmac => return Err(SigningError::HmacNotPkcs8),
        };
        Ok(SigningKey { inner })
    }

    /// An HMAC secret for signing.
    pub fn hmac(secret: &[u8]) -> SigningKey {
        SigningKey {
            inner: SigningInner::Hmac(secret.to_vec()),
        }
    }

    /// Signs `message` with `algorithm`, producing the JWS signature bytes.
    pub fn sign(&self, algorithm: Algorithm, message: &[u8]) -> Result<Vec<u8>, SigningError> {
        let failed = |_| SigningError::Signing(algorithm);
        let rng = rand::SystemRandom::new();
        match (&self.inner, algorithm) {
            (SigningInner::Rsa(pair), _) if algorithm.family() == KeyFamily::Rsa => {
                let padding: &'static dyn signature::RsaEncoding = match algorithm {
                    Algorithm::Rs256 => &signature::RSA_PKCS1_SHA256,
                    Algorithm::Rs384 => &signature::RSA_PKCS1_SHA384,
                    Algorithm::Rs512 => &signature::RSA_PKCS1_SHA512,
                    Algorithm::Ps256 => &signature::RSA_PSS_SHA256,
                    Algorithm::Ps384 => &signature::RSA_PSS_SHA384,
                    _ => &signature::RSA_PSS_SHA512,
                };
                let mut out = vec![0; pair.public().modulus_len()];
                pair.sign(padding, &rng, message, &mut out)
                    .map_err(failed)?;
                Ok(out)
            }
            (SigningInner::Ecdsa(pair, family), _) if algorithm.family() == *family => {
                Ok(pair.sign(&rng, message).map_err(failed)?.as_ref().to_vec())
            }
            (SigningInner::Ed25519(pair), Algorithm::EdDsa) => {
                Ok(pair.sign(message).as_ref().to_vec())
            }
            (SigningInner::Hmac(secret), _) if algorithm.is_symmetric() => {
                let hash = match algorithm {
                    Algorithm::Hs256 => hmac::HMAC_SHA256,
                    Algorithm::Hs384 => hmac::HMAC_SHA384,
                    _ => hmac::HMAC_SHA512,
                };
                Ok(hmac::sign(&hmac::Key::new(hash, secret), message)
                    .as_ref()
                    .to_vec())
            }
            _ => Err(SigningError::WrongAlgorithm(algorithm)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AlgorithmSet, KeySet, Outcome, UnixTime, Validation, Verifier};
    use jwtgate_engine::base64url;

    /// A token signed by `key`, judged by a verifier over `jwk`.
    fn outcome(jwk: &str, key: &SigningKey, algorithm: Algorithm) -> Outcome {
        let Ok(keys) = KeySet::parse(jwk.as_bytes()) else {
            unreachable!("{jwk}")
        };
        let Ok(verifier) = Verifier::new(keys, Validation::new(AlgorithmSet::only(algorithm)))
        else {
            unreachable!("{jwk}")
        };
        let mut token = base64url::encode(format!(r#"{{"alg":"{algorithm}"}}"#).as_bytes());
        token.push('.');
        base64url::encode_into(br#"{"exp":1700000100}"#, &mut token);
        let Ok(signature) = key.sign(algorithm, token.as_bytes()) else {
            unreachable!("{algorithm} signs")
        };
        token.push('.');
        base64url::encode_into(&signature, &mut token);
        let mut scratch = verifier.scratch();
        match verifier.verify(token.as_bytes(), UnixTime(1_700_000_000), &mut scratch) {
            Ok(_) => Outcome::Valid,
            Err(rejection) => rejection.outcome(),
        }
    }

    fn jwk(material: &JwkMaterial) -> String {
        let b64 = base64url::encode;
        match material {
            JwkMaterial::Rsa { n, e } => {
                format!(r#"{{"kty":"RSA","n":"{}","e":"{}"}}"#, b64(n), b64(e))
            }
            JwkMaterial::Ec { curve, x, y } => format!(
                r#"{{"kty":"EC","crv":"{}","x":"{}","y":"{}"}}"#,
                if *curve == KeyFamily::P256 {
                    "P-256"
                } else {
                    "P-384"
                },
                b64(x),
                b64(y)
            ),
            JwkMaterial::Ed25519 { x } => {
                format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{}"}}"#, b64(x))
            }
            JwkMaterial::Symmetric { k } => format!(r#"{{"kty":"oct","k":"{}"}}"#, b64(k)),
        }
    }

    #[test]
    fn generated_keys_sign_what_their_public_half_verifies() {
        for algorithm in [
            Algorithm::Rs256,
            Algorithm::Ps384,
            Algorithm::Es256,
            Algorithm::Es384,
            Algorithm::EdDsa,
            Algorithm::Hs256,
            Algorithm::Hs512,
        ] {
            let Ok(generated) = generate(algorithm, 2048) else {
                unreachable!("{algorithm} generates")
            };
            let key = match (&generated.pkcs8_der, &generated.public) {
                (Some(der), _) => SigningKey::from_pkcs8(algorithm, der),
                (None, JwkMaterial::Symmetric { k }) => Ok(SigningKey::hmac(k)),
                (None, _) => unreachable!("only HMAC has no private key"),
            };
            let Ok(key) = key else {
                unreachable!("{algorithm} key loads")
            };
            let public = jwk(&generated.public);
            assert_eq!(
                outcome(&public, &key, algorithm),
                Outcome::Valid,
                "{algorithm}"
            );
            if let Ok(other) = generate(algorithm, 2048)
                && let Some(Ok(other)) = other
                    .pkcs8_der
                    .as_deref()
                    .map(|der| SigningKey::from_pkcs8(algorithm, der))
            {
                assert_eq!(
                    outcome(&public, &other, algorithm),
                    Outcome::BadSignature,
                    "{algorithm}"
                );
            }
        }
    }

    #[test]
    fn keys_sign_only_their_own_family() {
        let hmac = SigningKey::hmac(&[7; 32]);
        assert!(matches!(
            hmac.sign(Algorithm::Rs256, b"m"),
            Err(SigningError::WrongAlgorithm(Algorithm::Rs256))
        ));
        assert!(matches!(
            SigningKey::from_pkcs8(Algorithm::Hs256, b"der"),
            Err(SigningError::HmacNotPkcs8)
        ));
        let error = SigningKey::from_pkcs8(Algorithm::Es256, b"not DER").map(|_| ());
        assert!(error.is_err_and(|e| e.to_string().starts_with("private key rejected: ")));
    }

    #[test]
    fn a_key_of_another_type_is_named_with_the_type_needed() {
        let cases = [
            (
                Algorithm::Es256,
                Algorithm::Rs256,
                "ES256 needs an EC key on P-256, and this private key is an RSA key",
            ),
            (
                Algorithm::Rs256,
                Algorithm::Es384,
                "RS256 needs an RSA key, and this private key is an EC key on P-384",
            ),
            (
                Algorithm::Es384,
                Algorithm::Es256,
                "ES384 needs an EC key on P-384, and this private key is an EC key on P-256",
            ),
            (
                Algorithm::EdDsa,
                Algorithm::Ps256,
                "EdDSA needs an Ed25519 key, and this private key is an RSA key",
            ),
            (
                Algorithm::Es256,
                Algorithm::EdDsa,
                "ES256 needs an EC key on P-256, and this private key is an Ed25519 key",
            ),
        ];
        for (wanted, given, message) in cases {
            let generated = generate(given, 2048).unwrap();
            let der = generated.pkcs8_der.unwrap();
            let error = SigningKey::from_pkcs8(wanted, &der)
                .map(|_| ())
                .unwrap_err();
            assert_eq!(error.to_string(), message);
        }
    }

    #[test]
    fn pem_encoding_round_trips_in_64_character_lines() {
        let der: Vec<u8> = (0..=255).collect();
        let pem = pem_encode("PRIVATE KEY", &der);
        assert!(pem.lines().all(|line| line.len() <= 64));
        let blocks = jwtgate_engine::internals::pem::decode_blocks(&pem).unwrap();
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].der, der);
        assert_eq!(blocks[0].label, "PRIVATE KEY");
    }
}
