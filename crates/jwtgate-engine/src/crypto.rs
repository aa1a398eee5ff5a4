//! The crypto seam: the only module that imports a crypto library.
//!
//! Key material arrives here already typed ([`crate::jose::jwk::JwkMaterial`]
//! shapes, PEM-derived bytes); what leaves is a [`VerifyingKey`], built once at
//! load time, that checks one signature per call.
//!
//! Two backends, chosen per algorithm by `bench/engine.rs` (measured side by
//! side on this project's machine):
//! - **aws-lc-rs** for RSA, ECDSA and Ed25519, through `ParsedPublicKey`: the key
//!   is parsed and validated once (for EC this includes the on-curve check) and
//!   kept as a ready handle. `ring` 0.17 has no such handle and rebuilds the RSA
//!   key and re-decodes points inside every verification. Measured one after the
//!   other on one pinned core: RS256 25.5 µs against ring's 34.8, ES384 248 against
//!   1004, EdDSA 53.5 against 76.7, ES256 78.8 against 79.4.
//! - **ring** for HMAC, where it was faster (0.26 against 0.39 µs).
//!
//! Signing and key generation are not here: verification never needs them, so
//! they live with the token tools (the service crate's `signing` module).
//!
//! Every length, size and exponent rule is checked here before either backend
//! sees a key, so both enforce the same policy.

use aws_lc_rs::signature::{self as lc, ParsedPublicKey};
use ring::hmac;

use crate::jose::alg::{Algorithm, KeyFamily};

/// Why key material was refused. The texts reach users inside
/// [`crate::KeySetError::InvalidKey`], so they are worded for someone fixing a
/// key set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum KeyRejected {
    #[error("RSA modulus has {0} bits; at least {RSA_MIN_BITS} are required")]
    RsaTooSmall(usize),
    #[error("RSA modulus has {0} bits; at most {RSA_MAX_BITS} are supported")]
    RsaTooLarge(usize),
    #[error("RSA modulus is even")]
    RsaEvenModulus,
    #[error("RSA exponent {0} is not an odd number above 1")]
    RsaExponent(u64),
    #[error("RSA exponent is larger than 2^33 - 1")]
    RsaExponentTooLarge,
    /// Checked by [`crate::keys`], which knows the fingerprint.
    #[error(
        "RSA modulus has the ROCA fingerprint (CVE-2017-15361): its private key can be recovered"
    )]
    RsaRoca,
    /// aws-lc-rs's own reason, a static string.
    #[error("RSA key rejected by the crypto backend: {0}")]
    RsaBackend(&'static str),
    /// A family other than P-256 or P-384 was passed where a curve was expected.
    #[error("not an EC curve")]
    NotEcCurve,
    #[error("EC coordinates must be {0} bytes each")]
    EcCoordinateLength(usize),
    #[error("EC point is not on the curve")]
    EcNotOnCurve,
    #[error("EC point is not an uncompressed point of the curve")]
    EcNotUncompressed,
    #[error("Ed25519 key is a point of small order")]
    Ed25519SmallOrder,
    #[error("Ed25519 key rejected by the crypto backend")]
    Ed25519Backend,
    #[error("HMAC secret has {0} bytes; at least 32 are required")]
    HmacTooShort(usize),
}

/// A signature did not verify. Carries nothing, so rejecting costs nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadSignature;

/// Smallest RSA modulus accepted, in bits (RFC 7518 §3.3 requires 2048).
pub(crate) const RSA_MIN_BITS: usize = 2048;
/// Largest RSA modulus the backend verifies, in bits.
pub(crate) const RSA_MAX_BITS: usize = 8192;

/// A public key (or HMAC secret) ready to verify signatures: decoded, validated,
/// and in the backend's preferred form.
pub(crate) struct VerifyingKey {
    inner: Inner,
}

enum Inner {
    Rsa(Box<RsaKeys>),
    /// A parsed P-256 point, bound to ES256.
    P256(ParsedPublicKey),
    /// A parsed P-384 point, bound to ES384.
    P384(ParsedPublicKey),
    /// A parsed Ed25519 key (never of small order).
    Ed25519(ParsedPublicKey),
    Hmac(Box<HmacKeys>),
}

/// Every encoding of an Ed25519 point of order 1, 2, 4 or 8, sign bit cleared:
/// y = 0, 1, p - 1, the two order-8 values, and the non-canonical p and p + 1
/// (the list libsodium refuses; each checked to have small order by computation).
const ED25519_SMALL_ORDER: [[u8; 32]; 7] = [
    [0; 32],
    [
        1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0,
    ],
    [
        0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98,
        0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53,
        0xfc, 0x05,
    ],
    [
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67,
        0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac,
        0x03, 0x7a,
    ],
    [
        0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
    [
        0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
    [
        0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
];

/// One parsed handle per RSA algorithm (a parsed key is bound to one algorithm),
/// in [`RSA_ALGORITHMS`] order, plus what summaries need.
struct RsaKeys {
    handles: [ParsedPublicKey; 6],
    bits: usize,
    modulus_len: usize,
}

const RSA_ALGORITHMS: [(Algorithm, &lc::RsaParameters); 6] = [
    (Algorithm::Rs256, &lc::RSA_PKCS1_2048_8192_SHA256),
    (Algorithm::Rs384, &lc::RSA_PKCS1_2048_8192_SHA384),
    (Algorithm::Rs512, &lc::RSA_PKCS1_2048_8192_SHA512),
    (Algorithm::Ps256, &lc::RSA_PSS_2048_8192_SHA256),
    (Algorithm::Ps384, &lc::RSA_PSS_2048_8192_SHA384),
    (Algorithm::Ps512, &lc::RSA_PSS_2048_8192_SHA512),
];

/// DER `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`
/// (RFC 8017 A.1.1) from big-endian magnitudes without leading zeros.
fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    fn length(out: &mut Vec<u8>, len: usize) {
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes = len.to_be_bytes();
            let skip = bytes.iter().take_while(|&&b| b == 0).count();
            let significant = bytes.get(skip..).unwrap_or_default();
            out.push(0x80 | significant.len() as u8);
            out.extend_from_slice(significant);
        }
    }
    fn integer(out: &mut Vec<u8>, magnitude: &[u8]) {
        let pad = magnitude.first().is_some_and(|&b| b & 0x80 != 0);
        out.push(0x02);
        length(out, magnitude.len() + usize::from(pad));
        if pad {
            out.push(0);
        }
        out.extend_from_slice(magnitude);
    }
    let mut body = Vec::with_capacity(n.len() + e.len() + 16);
    integer(&mut body, n);
    integer(&mut body, e);
    let mut der = Vec::with_capacity(body.len() + 4);
    der.push(0x30);
    length(&mut der, body.len());
    der.extend_from_slice(&body);
    der
}

/// One precomputed HMAC key schedule per hash the secret is long enough for.
struct HmacKeys {
    sha256: Option<hmac::Key>,
    sha384: Option<hmac::Key>,
    sha512: Option<hmac::Key>,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key bytes: an HMAC secret must not reach a log.
        write!(f, "VerifyingKey({})", self.describe())
    }
}

fn bit_length(big_endian: &[u8]) -> usize {
    match big_endian.iter().position(|&b| b != 0) {
        Some(first) => {
            let leading = big_endian
                .get(first)
                .map_or(0, |b| b.leading_zeros() as usize);
            (big_endian.len() - first) * 8 - leading
        }
        None => 0,
    }
}

impl VerifyingKey {
    /// An RSA public key from its big-endian modulus and exponent, checked as the
    /// backend will check it at verification time (so a key that loads, verifies):
    /// 2048 to 8192 bits, an odd modulus, and an odd exponent from 3 to 2^33 - 1.
    pub(crate) fn rsa(n: &[u8], e: &[u8]) -> Result<VerifyingKey, KeyRejected> {
        let zeros = n.iter().take_while(|&&b| b == 0).count();
        let n = n.get(zeros..).unwrap_or_default();
        let e_zeros = e.iter().take_while(|&&b| b == 0).count();
        let e = e.get(e_zeros..).unwrap_or_default();
        let bits = bit_length(n);
        if bits < RSA_MIN_BITS {
            return Err(KeyRejected::RsaTooSmall(bits));
        }
        if bits > RSA_MAX_BITS {
            return Err(KeyRejected::RsaTooLarge(bits));
        }
        if n.last().is_none_or(|b| b & 1 == 0) {
            return Err(KeyRejected::RsaEvenModulus);
        }
        let exponent = if e.len() <= 8 {
            e.iter().fold(0u64, |value, &b| value << 8 | u64::from(b))
        } else {
            u64::MAX
        };
        if exponent == 1 || exponent & 1 == 0 {
            return Err(KeyRejected::RsaExponent(exponent));
        }
        if !(3..=(1 << 33) - 1).contains(&exponent) {
            return Err(KeyRejected::RsaExponentTooLarge);
        }
        let der = rsa_public_key_der(n, e);
        let parse = |parameters: &'static lc::RsaParameters| {
            ParsedPublicKey::new(parameters, &der)
                .map_err(|error| KeyRejected::RsaBackend(error.description_()))
        };
        let [rs256, rs384, rs512, ps256, ps384, ps512] =
            RSA_ALGORITHMS.map(|(_, parameters)| parse(parameters));
        Ok(VerifyingKey {
            inner: Inner::Rsa(Box::new(RsaKeys {
                handles: [rs256?, rs384?, rs512?, ps256?, ps384?, ps512?],
                bits,
                modulus_len: n.len(),
            })),
        })
    }

    /// An EC public key from its affine coordinates; the point must lie on the curve.
    pub(crate) fn ec(curve: KeyFamily, x: &[u8], y: &[u8]) -> Result<VerifyingKey, KeyRejected> {
        let (length, algorithm): (usize, &'static lc::EcdsaVerificationAlgorithm) = match curve {
            KeyFamily::P256 => (32, &lc::ECDSA_P256_SHA256_FIXED),
            KeyFamily::P384 => (48, &lc::ECDSA_P384_SHA384_FIXED),
            _ => return Err(KeyRejected::NotEcCurve),
        };
        if x.len() != length || y.len() != length {
            return Err(KeyRejected::EcCoordinateLength(length));
        }
        let mut point = Vec::with_capacity(1 + 2 * length);
        point.push(0x04);
        point.extend_from_slice(x);
        point.extend_from_slice(y);
        // Parsing decodes the point and refuses one that is not on the curve,
        // which is what stops invalid-curve attacks.
        let parsed =
            ParsedPublicKey::new(algorithm, &point).map_err(|_| KeyRejected::EcNotOnCurve)?;
        Ok(VerifyingKey {
            inner: if curve == KeyFamily::P256 {
                Inner::P256(parsed)
            } else {
                Inner::P384(parsed)
            },
        })
    }

    /// An EC public key from an uncompressed SEC1 point (`04 || x || y`).
    pub(crate) fn ec_point(curve: KeyFamily, point: &[u8]) -> Result<VerifyingKey, KeyRejected> {
        let length = match curve {
            KeyFamily::P256 => 32,
            KeyFamily::P384 => 48,
            _ => return Err(KeyRejected::NotEcCurve),
        };
        match point.split_first() {
            Some((0x04, coordinates)) if coordinates.len() == 2 * length => {
                let (x, y) = coordinates.split_at(length);
                VerifyingKey::ec(curve, x, y)
            }
            _ => Err(KeyRejected::EcNotUncompressed),
        }
    }

    /// An Ed25519 public key. Points of small order are refused: with such a key
    /// (the identity, say) a signature with `R` = identity and `S` = 0 verifies for
    /// every message, and the backend does not refuse them by itself.
    pub(crate) fn ed25519(x: [u8; 32]) -> Result<VerifyingKey, KeyRejected> {
        let mut y = x;
        if let Some(last) = y.last_mut() {
            *last &= 0x7f; // the sign of x does not change the order
        }
        if ED25519_SMALL_ORDER.contains(&y) {
            return Err(KeyRejected::Ed25519SmallOrder);
        }
        let parsed =
            ParsedPublicKey::new(&lc::ED25519, x).map_err(|_| KeyRejected::Ed25519Backend)?;
        Ok(VerifyingKey {
            inner: Inner::Ed25519(parsed),
        })
    }

    /// An HMAC secret, keyed for every SHA-2 size it is at least as long as
    /// (RFC 7518 §3.2); shorter secrets are refused.
    pub(crate) fn hmac(secret: &[u8]) -> Result<VerifyingKey, KeyRejected> {
        let keyed = |algorithm, min_len: usize| {
            (secret.len() >= min_len).then(|| hmac::Key::new(algorithm, secret))
        };
        if secret.len() < 32 {
            return Err(KeyRejected::HmacTooShort(secret.len()));
        }
        Ok(VerifyingKey {
            inner: Inner::Hmac(Box::new(HmacKeys {
                sha256: keyed(hmac::HMAC_SHA256, 32),
                sha384: keyed(hmac::HMAC_SHA384, 48),
                sha512: keyed(hmac::HMAC_SHA512, 64),
            })),
        })
    }

    /// The family of the key.
    pub(crate) fn family(&self) -> KeyFamily {
        match self.inner {
            Inner::Rsa(_) => KeyFamily::Rsa,
            Inner::P256(_) => KeyFamily::P256,
            Inner::P384(_) => KeyFamily::P384,
            Inner::Ed25519(_) => KeyFamily::Ed25519,
            Inner::Hmac(_) => KeyFamily::Hmac,
        }
    }

    /// Can this key verify `algorithm` at all (family and, for HMAC, secret length)?
    pub(crate) fn supports(&self, algorithm: Algorithm) -> bool {
        match (&self.inner, algorithm) {
            (Inner::Hmac(keys), Algorithm::Hs256) => keys.sha256.is_some(),
            (Inner::Hmac(keys), Algorithm::Hs384) => keys.sha384.is_some(),
            (Inner::Hmac(keys), Algorithm::Hs512) => keys.sha512.is_some(),
            _ => algorithm.family() == self.family(),
        }
    }

    /// A short description without secret bytes, such as `RSA-2048` or `EC P-256`.
    pub(crate) fn describe(&self) -> String {
        match &self.inner {
            Inner::Rsa(keys) => format!("RSA-{}", keys.bits),
            Inner::P256(_) => "EC P-256".into(),
            Inner::P384(_) => "EC P-384".into(),
            Inner::Ed25519(_) => "Ed25519".into(),
            Inner::Hmac(_) => "HMAC secret".into(),
        }
    }

    /// The exact signature length `algorithm` produces with this key.
    fn signature_len(&self, algorithm: Algorithm) -> usize {
        match (&self.inner, algorithm.family()) {
            (Inner::Rsa(keys), _) => keys.modulus_len,
            (_, KeyFamily::P256) => 64,
            (_, KeyFamily::P384) => 96,
            (_, KeyFamily::Ed25519) => 64,
            (_, _) => algorithm.hash_len(),
        }
    }

    /// Verifies `signature` over `message` with `algorithm`, which the caller has
    /// already matched to this key. ECDSA signatures must be JOSE's fixed-width
    /// `r || s` (RFC 7518 §3.4); DER is refused by length.
    pub(crate) fn verify(
        &self,
        algorithm: Algorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), BadSignature> {
        if signature.len() != self.signature_len(algorithm) {
            return Err(BadSignature);
        }
        let outcome = match (&self.inner, algorithm) {
            (Inner::Rsa(keys), _) => {
                let handle = RSA_ALGORITHMS
                    .iter()
                    .zip(&keys.handles)
                    .find(|((rsa_algorithm, _), _)| *rsa_algorithm == algorithm)
                    .map(|(_, handle)| handle)
                    .ok_or(BadSignature)?;
                return handle
                    .verify_sig(message, signature)
                    .map_err(|_| BadSignature);
            }
            (Inner::P256(parsed), Algorithm::Es256) | (Inner::P384(parsed), Algorithm::Es384) => {
                return parsed
                    .verify_sig(message, signature)
                    .map_err(|_| BadSignature);
            }
            (Inner::Ed25519(parsed), Algorithm::EdDsa) => {
                return parsed
                    .verify_sig(message, signature)
                    .map_err(|_| BadSignature);
            }
            (Inner::Hmac(keys), _) => {
                let key = match algorithm {
                    Algorithm::Hs256 => &keys.sha256,
                    Algorithm::Hs384 => &keys.sha384,
                    Algorithm::Hs512 => &keys.sha512,
                    _ => &None,
                };
                let key = key.as_ref().ok_or(BadSignature)?;
                hmac::verify(key, message, signature)
            }
            _ => return Err(BadSignature),
        };
        outcome.map_err(|_| BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use ring::{rand, signature};

    use super::*;

    #[test]
    fn rsa_checks_mirror_the_backend() {
        let mut n = vec![0xff; 256];
        assert!(VerifyingKey::rsa(&n, &[1, 0, 1]).is_ok());
        assert!(
            VerifyingKey::rsa(&[0xff; 255], &[1, 0, 1]).is_err(),
            "2040 bits"
        );
        assert!(VerifyingKey::rsa(&n, &[1]).is_err(), "e = 1");
        assert!(VerifyingKey::rsa(&n, &[1, 0, 0]).is_err(), "even e");
        assert!(
            VerifyingKey::rsa(&n, &[2, 0, 0, 0, 1]).is_err(),
            "e above 2^33 - 1"
        );
        assert!(
            VerifyingKey::rsa(&n, &[1, 0, 0, 0, 1]).is_ok(),
            "e = 2^32 + 1"
        );
        if let Some(last) = n.last_mut() {
            *last = 0xfe;
        }
        assert!(VerifyingKey::rsa(&n, &[1, 0, 1]).is_err(), "even modulus");
        assert!(VerifyingKey::rsa(&[0xff; 1025], &[3]).is_err(), "8200 bits");
    }

    #[test]
    fn ec_points_must_be_on_the_curve() {
        let x = [1u8; 32];
        let y = [2u8; 32];
        assert!(VerifyingKey::ec(KeyFamily::P256, &x, &y).is_err());
        assert!(VerifyingKey::ec(KeyFamily::P256, &x, &[2u8; 31]).is_err());
        assert!(VerifyingKey::ec_point(KeyFamily::P384, &[4u8; 97]).is_err());
    }

    #[test]
    fn small_order_ed25519_keys_are_refused_and_would_have_verified_anything() {
        // With the identity as public key, R = identity and S = 0 satisfy the
        // verification equation for every message: ring accepts it, so we must not
        // load such a key.
        let identity = ED25519_SMALL_ORDER[1];
        let mut forged = [0u8; 64];
        forged[0] = 1;
        assert!(
            signature::UnparsedPublicKey::new(&signature::ED25519, identity)
                .verify(b"any", &forged)
                .is_ok()
        );
        for point in ED25519_SMALL_ORDER {
            let mut signed = point;
            signed[31] |= 0x80;
            assert!(VerifyingKey::ed25519(point).is_err());
            assert!(VerifyingKey::ed25519(signed).is_err(), "sign bit set");
        }
        assert!(VerifyingKey::ed25519([9; 32]).is_ok());
    }

    #[test]
    fn hmac_keys_cover_the_hashes_they_are_long_enough_for() {
        assert!(VerifyingKey::hmac(&[7; 31]).is_err());
        let Ok(key) = VerifyingKey::hmac(&[7; 48]) else {
            unreachable!("48-byte secret")
        };
        assert!(key.supports(Algorithm::Hs256) && key.supports(Algorithm::Hs384));
        assert!(!key.supports(Algorithm::Hs512) && !key.supports(Algorithm::Rs256));
        assert_eq!(format!("{key:?}"), "VerifyingKey(HMAC secret)");
    }

    #[test]
    fn hmac_round_trip_and_length_check() {
        let secret = [9u8; 64];
        let Ok(key) = VerifyingKey::hmac(&secret) else {
            unreachable!("64-byte secret")
        };
        for (algorithm, hash) in [
            (Algorithm::Hs256, hmac::HMAC_SHA256),
            (Algorithm::Hs384, hmac::HMAC_SHA384),
            (Algorithm::Hs512, hmac::HMAC_SHA512),
        ] {
            let mut tag = hmac::sign(&hmac::Key::new(hash, &secret), b"msg")
                .as_ref()
                .to_vec();
            assert_eq!(key.verify(algorithm, b"msg", &tag), Ok(()));
            assert_eq!(key.verify(algorithm, b"msh", &tag), Err(BadSignature));
            tag.pop();
            assert_eq!(key.verify(algorithm, b"msg", &tag), Err(BadSignature));
        }
    }

    #[test]
    fn ecdsa_and_eddsa_round_trip() {
        let rng = rand::SystemRandom::new();
        for (algorithm, signing) in [
            (
                Algorithm::Es256,
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            ),
            (
                Algorithm::Es384,
                &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            ),
        ] {
            let Ok(pkcs8) = signature::EcdsaKeyPair::generate_pkcs8(signing, &rng) else {
                unreachable!()
            };
            let Ok(pair) = signature::EcdsaKeyPair::from_pkcs8(signing, pkcs8.as_ref(), &rng)
            else {
                unreachable!()
            };
            use signature::KeyPair as _;
            let Ok(key) = VerifyingKey::ec_point(algorithm.family(), pair.public_key().as_ref())
            else {
                unreachable!()
            };
            let Ok(sig) = pair.sign(&rng, b"m") else {
                unreachable!()
            };
            let sig = sig.as_ref();
            assert_eq!(key.verify(algorithm, b"m", sig), Ok(()));
            assert_eq!(key.verify(algorithm, b"n", sig), Err(BadSignature));
        }
        let Ok(pkcs8) = signature::Ed25519KeyPair::generate_pkcs8(&rng) else {
            unreachable!()
        };
        let Ok(pair) = signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()) else {
            unreachable!()
        };
        use signature::KeyPair as _;
        let Ok(public) = <[u8; 32]>::try_from(pair.public_key().as_ref()) else {
            unreachable!()
        };
        let Ok(key) = VerifyingKey::ed25519(public) else {
            unreachable!()
        };
        let sig = pair.sign(b"m");
        assert_eq!(key.verify(Algorithm::EdDsa, b"m", sig.as_ref()), Ok(()));
        assert_eq!(
            key.verify(Algorithm::Es256, b"m", sig.as_ref()),
            Err(BadSignature)
        );
    }
}
