//! `KeySet`: verification keys parsed once into ready [`VerifyingKey`] handles,
//! indexed by `kid`, each bound to the algorithms it may verify.
//!
//! Loading is where keys are judged. A set is refused when a key is invalid or
//! weak (RSA under 2048 bits, even or unit exponents, ROCA moduli, EC points off
//! the curve, short HMAC secrets, private material), when two keys share a `kid`,
//! or when symmetric and public keys are mixed (the precondition of algorithm
//! confusion). A key of a type, curve or purpose jwtgate does not support is
//! skipped with a [`KeyWarning`], so one exotic entry cannot take a whole IdP
//! key set down.
//!
//! At verification time [`KeySet::select`] picks the key by `kid` (exactly) and
//! confirms the token's `alg` is the one the key is bound to: the key decides the
//! algorithm, the token may only agree. Neighbours: [`crate::jose::jwk`] and
//! [`pem`] read material, [`crate::crypto`] builds the handles,
//! [`crate::verify`] calls `select`.

pub mod pem;
mod roca;

use std::collections::HashMap;
use std::fmt;

use crate::crypto::{KeyRejected, VerifyingKey};
use crate::jose::alg::{Algorithm, AlgorithmSet, KeyFamily};
use crate::jose::json::{JsonStr, Tape, Value};
use crate::jose::jwk::{Jwk, JwkError, JwkMaterial};
use crate::outcome::{Outcome, Rejection, Stage};

/// JWKS documents nest only a few levels (`{"keys":[{"key_ops":[...]}]}`).
const JWKS_MAX_DEPTH: usize = 8;

/// One verification key.
#[derive(Debug)]
pub struct Key {
    kid: Option<Box<str>>,
    algorithms: AlgorithmSet,
    verifying: VerifyingKey,
}

impl Key {
    /// The key id, if the key has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The algorithms this key may verify.
    pub fn algorithms(&self) -> AlgorithmSet {
        self.algorithms
    }

    /// The ready-to-use verifier.
    pub(crate) fn verifying_key(&self) -> &VerifyingKey {
        &self.verifying
    }

    /// A summary without secret bytes, such as `kid "k1": RSA-2048 for RS256`.
    pub fn describe(&self) -> String {
        let kid = self
            .kid
            .as_deref()
            .map_or_else(|| "(no kid)".to_owned(), |k| format!("kid {k:?}"));
        format!(
            "{kid}: {} for {}",
            self.verifying.describe(),
            self.algorithms
        )
    }
}

/// A key entry that was skipped because jwtgate cannot or must not use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyWarning {
    /// Position of the entry in the key set (0-based).
    pub index: usize,
    /// The entry's `kid`, when it had a readable one.
    pub kid: Option<String>,
    /// Why it was skipped.
    pub reason: String,
}

impl fmt::Display for KeyWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key #{}", self.index)?;
        if let Some(kid) = &self.kid {
            write!(f, " (kid {kid:?})")?;
        }
        write!(f, " skipped: {}", self.reason)
    }
}

/// Why a key set could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeySetError {
    /// The document is not a JWKS, a JWK or a PEM public key.
    #[error("not a JWKS, JWK or PEM public key: {0}")]
    Format(String),
    /// One key is invalid; the whole set is refused.
    #[error("key #{index}{}: {reason}", kid_suffix(.kid))]
    InvalidKey {
        /// Position of the entry (0-based).
        index: usize,
        /// The entry's `kid`, when readable.
        kid: Option<String>,
        /// What is wrong with it.
        reason: String,
    },
    /// Two keys share a `kid`, so selection would be ambiguous.
    #[error("kid {0:?} appears more than once")]
    DuplicateKid(String),
    /// Symmetric and public keys in one set invite algorithm confusion.
    #[error("the key set mixes symmetric (oct) and public keys; use separate token configurations")]
    MixedSymmetry,
    /// Nothing usable remained.
    #[error("no usable key{}", skipped_suffix(.0))]
    Empty(Vec<KeyWarning>),
}

fn kid_suffix(kid: &Option<String>) -> String {
    kid.as_ref()
        .map_or_else(String::new, |kid| format!(" (kid {kid:?})"))
}

fn skipped_suffix(warnings: &[KeyWarning]) -> String {
    if warnings.is_empty() {
        return String::new();
    }
    let reasons: Vec<String> = warnings.iter().map(ToString::to_string).collect();
    format!(" ({})", reasons.join("; "))
}

/// A set of verification keys, parsed once and immutable afterwards.
#[derive(Debug)]
pub struct KeySet {
    keys: Vec<Key>,
    by_kid: HashMap<Box<str>, usize>,
    symmetric: bool,
    warnings: Vec<KeyWarning>,
}

/// Key sets up to this size are searched linearly for a `kid`.
const LINEAR_KID_SEARCH: usize = 8;

const NO_SUCH_KID: Rejection =
    Rejection::new(Outcome::UnknownKid, "no key in the key set has this kid");
// The kid names a key of this set: the token is this configuration's own,
// which an algorithm-confusion attempt must not hide behind another's refusal.
const KEY_BOUND_ELSEWHERE: Rejection = Rejection::new(
    Outcome::AlgNotAllowed,
    "the key with this kid is bound to a different algorithm",
)
.at(Stage::Signature);
const NO_KID_NO_KEY: Rejection = Rejection::new(
    Outcome::UnknownKid,
    "token has no kid and no key of the set fits its alg",
);
const NO_KID_SEVERAL_KEYS: Rejection = Rejection::new(
    Outcome::UnknownKid,
    "token has no kid and several keys of the set fit its alg",
);

impl KeySet {
    /// A set with no key: what a remote key source holds before its first fetch.
    pub(crate) fn empty() -> KeySet {
        KeySet {
            keys: Vec::new(),
            by_kid: HashMap::new(),
            symmetric: false,
            warnings: Vec::new(),
        }
    }

    /// Loads a key set from a JWKS (`{"keys":[...]}`), a single JWK, or PEM public
    /// keys, recognised by content.
    pub fn parse(document: &[u8]) -> Result<KeySet, KeySetError> {
        let trimmed = document.trim_ascii_start();
        if trimmed.starts_with(b"-----BEGIN") {
            let text = std::str::from_utf8(document)
                .map_err(|_| KeySetError::Format("PEM is not UTF-8".into()))?;
            KeySet::from_pem(text)
        } else {
            KeySet::from_jwks(document)
        }
    }

    /// Loads a JWKS or a single JWK.
    pub fn from_jwks(json: &[u8]) -> Result<KeySet, KeySetError> {
        let mut tape = Tape::new();
        let root = tape
            .parse(json, JWKS_MAX_DEPTH)
            .map_err(|error| KeySetError::Format(format!("invalid JSON: {error}")))?;
        let object = root
            .as_object()
            .ok_or_else(|| KeySetError::Format("top level is not a JSON object".into()))?;
        let entries: Vec<Value<'_>> = match object.get("keys") {
            Some(keys) => keys
                .as_array()
                .ok_or_else(|| KeySetError::Format("\"keys\" is not an array".into()))?
                .iter()
                .collect(),
            None if object.get("kty").is_some() => vec![root],
            None => {
                return Err(KeySetError::Format(
                    "neither a JWKS (\"keys\") nor a JWK (\"kty\")".into(),
                ));
            }
        };
        let mut builder = Builder::default();
        for (index, entry) in entries.into_iter().enumerate() {
            let kid = entry
                .as_object()
                .and_then(|o| o.get("kid"))
                .and_then(|v| v.as_str())
                .map(|k| k.to_string());
            match Jwk::parse(entry) {
                Ok(jwk) => builder.add_jwk(index, jwk)?,
                Err(JwkError::Unsupported(reason)) => {
                    builder.warnings.push(KeyWarning { index, kid, reason })
                }
                Err(JwkError::Invalid(reason)) => {
                    return Err(KeySetError::InvalidKey { index, kid, reason });
                }
            }
        }
        builder.finish()
    }

    /// Loads one or more PEM public keys (SPKI or PKCS#1); they have no `kid`.
    pub fn from_pem(text: &str) -> Result<KeySet, KeySetError> {
        let keys = pem::parse_pem(text).map_err(|error| KeySetError::Format(error.to_string()))?;
        let mut builder = Builder::default();
        for (index, key) in keys.into_iter().enumerate() {
            let invalid = |reason: KeyRejected| KeySetError::InvalidKey {
                index,
                kid: None,
                reason: reason.to_string(),
            };
            let verifying = match key {
                pem::PemKey::Rsa { n, e } => rsa_key(&n, &e),
                pem::PemKey::Ec { curve, point } => VerifyingKey::ec_point(curve, &point),
                pem::PemKey::Ed25519(x) => VerifyingKey::ed25519(x),
            }
            .map_err(invalid)?;
            builder.add(None, None, verifying)?;
        }
        builder.finish()
    }

    /// A key set of one HMAC secret (at least 32 bytes), optionally with a `kid`.
    pub fn from_hmac_secret(secret: &[u8], kid: Option<&str>) -> Result<KeySet, KeySetError> {
        let verifying = VerifyingKey::hmac(secret).map_err(|error| KeySetError::InvalidKey {
            index: 0,
            kid: kid.map(str::to_owned),
            reason: error.to_string(),
        })?;
        let mut builder = Builder::default();
        builder.add(kid.map(Into::into), None, verifying)?;
        builder.finish()
    }

    /// The keys, in the order they were given.
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// How many usable keys the set holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Does the set hold no key? (Never true for a loaded set.)
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Are the keys HMAC secrets?
    pub fn is_symmetric(&self) -> bool {
        self.symmetric
    }

    /// Entries that were skipped at load time.
    pub fn warnings(&self) -> &[KeyWarning] {
        &self.warnings
    }

    /// Every algorithm some key of the set may verify.
    pub fn algorithms(&self) -> AlgorithmSet {
        self.keys
            .iter()
            .flat_map(|key| key.algorithms.iter())
            .collect()
    }

    /// Selects the key for a token with this `kid` and (already allow-listed) `alg`.
    ///
    /// Not a stable API: [`Verifier::verify`](crate::Verifier::verify) selects
    /// the key itself; this is public for jwtgate's fuzz targets.
    #[doc(hidden)]
    pub fn select(
        &self,
        kid: Option<JsonStr<'_>>,
        algorithm: Algorithm,
    ) -> Result<&Key, Rejection> {
        let Some(kid) = kid else {
            let mut fitting = self
                .keys
                .iter()
                .filter(|key| key.algorithms.contains(algorithm));
            return match (fitting.next(), fitting.next()) {
                (Some(key), None) => Ok(key),
                (None, _) => Err(NO_KID_NO_KEY),
                (Some(_), Some(_)) => Err(NO_KID_SEVERAL_KEYS),
            };
        };
        let key = match kid.as_plain() {
            // Most key sets hold a handful of keys: comparing a few short byte
            // strings beats hashing the kid (SipHash) for the map.
            Some(plain) if self.keys.len() <= LINEAR_KID_SEARCH => self
                .keys
                .iter()
                .find(|key| key.kid.as_deref() == Some(plain)),
            Some(plain) => self.by_kid.get(plain).and_then(|&i| self.keys.get(i)),
            // Escaped kids are rare: compare unescaped without allocating.
            None => self
                .keys
                .iter()
                .find(|key| key.kid.as_deref().is_some_and(|k| kid == k)),
        }
        .ok_or(NO_SUCH_KID)?;
        if key.algorithms.contains(algorithm) {
            Ok(key)
        } else {
            Err(KEY_BOUND_ELSEWHERE)
        }
    }
}

fn rsa_key(n: &[u8], e: &[u8]) -> Result<VerifyingKey, KeyRejected> {
    let verifying = VerifyingKey::rsa(n, e)?;
    if roca::has_fingerprint(n) {
        return Err(KeyRejected::RsaRoca);
    }
    Ok(verifying)
}

#[derive(Default)]
struct Builder {
    keys: Vec<Key>,
    by_kid: HashMap<Box<str>, usize>,
    warnings: Vec<KeyWarning>,
}

impl Builder {
    fn add_jwk(&mut self, index: usize, jwk: Jwk) -> Result<(), KeySetError> {
        let invalid = |reason: String| KeySetError::InvalidKey {
            index,
            kid: jwk.kid.clone(),
            reason,
        };
        let verifying = match &jwk.material {
            JwkMaterial::Rsa { n, e } => rsa_key(n, e),
            JwkMaterial::Ec { curve, x, y } => VerifyingKey::ec(*curve, x, y),
            JwkMaterial::Ed25519 { x } => VerifyingKey::ed25519(*x),
            JwkMaterial::Symmetric { k } => VerifyingKey::hmac(k),
        }
        .map_err(|rejected| invalid(rejected.to_string()))?;
        if let Some(alg) = jwk.alg
            && !verifying.supports(alg)
        {
            return Err(invalid(format!(
                "alg {alg} needs a secret of at least {} bytes",
                alg.hash_len()
            )));
        }
        self.add(jwk.kid.map(Into::into), jwk.alg, verifying)
    }

    fn add(
        &mut self,
        kid: Option<Box<str>>,
        alg: Option<Algorithm>,
        verifying: VerifyingKey,
    ) -> Result<(), KeySetError> {
        let algorithms = match alg {
            Some(alg) => AlgorithmSet::only(alg),
            None => AlgorithmSet::of_family(verifying.family())
                .iter()
                .filter(|&a| verifying.supports(a))
                .collect(),
        };
        if let Some(kid) = &kid
            && self.by_kid.contains_key(kid)
        {
            return Err(KeySetError::DuplicateKid(kid.to_string()));
        }
        let position = self.keys.len();
        if let Some(kid) = &kid {
            self.by_kid.insert(kid.clone(), position);
        }
        self.keys.push(Key {
            kid,
            algorithms,
            verifying,
        });
        Ok(())
    }

    fn finish(self) -> Result<KeySet, KeySetError> {
        let symmetric = self
            .keys
            .iter()
            .filter(|k| k.verifying.family() == KeyFamily::Hmac)
            .count();
        if symmetric != 0 && symmetric != self.keys.len() {
            return Err(KeySetError::MixedSymmetry);
        }
        if self.keys.is_empty() {
            return Err(KeySetError::Empty(self.warnings));
        }
        Ok(KeySet {
            keys: self.keys,
            by_kid: self.by_kid,
            symmetric: symmetric != 0,
            warnings: self.warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P256: &str = r#""kty":"EC","crv":"P-256","x":"04N0xi21hshyvBp7I167sbE_bXqyqkAPfefdklMO7wY","y":"UI8exy-C06a7DUnjIdENkxeFtHM4-l_41LqEw9nVgmw""#;
    const SECRET: &str = r#""kty":"oct","k":"-ebuDNsVZ2iJtoZ-akfXTSCt4UO2cruLCsbWlBinggE""#;

    fn load(json: &str) -> Result<KeySet, KeySetError> {
        KeySet::parse(json.as_bytes())
    }

    fn kid(name: &'static str) -> Option<JsonStr<'static>> {
        // A kid as the JSON layer would hand it over.
        let text: &'static str = Box::leak(format!("\"{name}\"").into_boxed_str());
        let tape: &'static mut Tape = Box::leak(Box::new(Tape::new()));
        tape.parse(text.as_bytes(), 2).ok().and_then(|v| v.as_str())
    }

    #[test]
    fn selects_by_kid_and_binds_the_algorithm() {
        let set = load(&format!(r#"{{"keys":[{{{P256},"kid":"ec"}}]}}"#));
        let Ok(set) = set else {
            unreachable!("{set:?}")
        };
        assert_eq!(set.algorithms(), AlgorithmSet::only(Algorithm::Es256));
        assert!(set.select(kid("ec"), Algorithm::Es256).is_ok());
        assert_eq!(
            set.select(kid("ec"), Algorithm::Es384).err(),
            Some(KEY_BOUND_ELSEWHERE)
        );
        assert_eq!(
            set.select(kid("other"), Algorithm::Es256).err(),
            Some(NO_SUCH_KID)
        );
        assert!(set.select(None, Algorithm::Es256).is_ok());
        assert_eq!(
            set.select(None, Algorithm::Rs256).err(),
            Some(NO_KID_NO_KEY)
        );
        assert!(
            set.select(kid("\\u0065c"), Algorithm::Es256).is_ok(),
            "escaped kid"
        );
    }

    #[test]
    fn no_kid_with_several_fitting_keys_is_ambiguous() {
        let set = load(&format!(
            r#"{{"keys":[{{{P256},"kid":"a"}},{{{P256},"kid":"b"}}]}}"#
        ));
        let Ok(set) = set else {
            unreachable!("{set:?}")
        };
        assert_eq!(
            set.select(None, Algorithm::Es256).err(),
            Some(NO_KID_SEVERAL_KEYS)
        );
    }

    #[test]
    fn refuses_unsafe_sets() {
        assert_eq!(
            load(&format!(
                r#"{{"keys":[{{{P256},"kid":"a"}},{{{P256},"kid":"a"}}]}}"#
            ))
            .err(),
            Some(KeySetError::DuplicateKid("a".into()))
        );
        assert_eq!(
            load(&format!(r#"{{"keys":[{{{P256}}},{{{SECRET}}}]}}"#)).err(),
            Some(KeySetError::MixedSymmetry)
        );
        assert!(matches!(load(r#"{"keys":[]}"#), Err(KeySetError::Empty(_))));
        assert!(matches!(
            load(r#"{"keys":{}}"#),
            Err(KeySetError::Format(_))
        ));
        assert!(matches!(
            load(r#"{"kid":"x"}"#),
            Err(KeySetError::Format(_))
        ));
        assert!(matches!(load("[]"), Err(KeySetError::Format(_))));
        assert!(matches!(
            load(r#"{"keys":[{"kty":"oct","k":"c2hvcnQ"}]}"#),
            Err(KeySetError::InvalidKey { index: 0, .. })
        ));
    }

    #[test]
    fn skips_unsupported_entries_with_a_warning() {
        let set = load(&format!(
            r#"{{"keys":[{{"kty":"EC","crv":"P-521","kid":"big","x":"AA","y":"AA"}},{{{P256},"kid":"ok"}},{{{P256},"kid":"enc","use":"enc"}}]}}"#
        ));
        let Ok(set) = set else {
            unreachable!("{set:?}")
        };
        assert_eq!(set.len(), 1);
        let warnings: Vec<String> = set.warnings().iter().map(ToString::to_string).collect();
        assert_eq!(warnings.len(), 2);
        assert!(
            warnings
                .first()
                .is_some_and(|w| w.starts_with("key #0 (kid \"big\") skipped"))
        );
    }

    #[test]
    fn hmac_keys_without_alg_bind_to_the_hashes_they_cover() {
        let Ok(set) = load(&format!("{{{SECRET}}}")) else {
            unreachable!()
        };
        assert!(set.is_symmetric());
        assert_eq!(set.algorithms(), AlgorithmSet::only(Algorithm::Hs256));
        assert!(KeySet::from_hmac_secret(&[1; 16], None).is_err());
    }
}
