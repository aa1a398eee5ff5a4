//! JWS algorithms (RFC 7518 §3, RFC 8037 §3.1) and allow-lists of them.
//!
//! Only the algorithms jwtgate can verify are variants; every other `alg` value a
//! token may carry (`none` in any casing, `ES512`, `HS1`, …) is classified by
//! [`Algorithm::from_name`] so the caller can deny it with a precise reason.

use std::fmt;
use std::str::FromStr;

/// A JWS algorithm jwtgate verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// RSASSA-PSS with SHA-256 and MGF1, salt length 32.
    Ps256,
    /// RSASSA-PSS with SHA-384 and MGF1, salt length 48.
    Ps384,
    /// RSASSA-PSS with SHA-512 and MGF1, salt length 64.
    Ps512,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// ECDSA on P-384 with SHA-384.
    Es384,
    /// EdDSA on Ed25519.
    EdDsa,
    /// HMAC with SHA-256.
    Hs256,
    /// HMAC with SHA-384.
    Hs384,
    /// HMAC with SHA-512.
    Hs512,
}

/// The kind of key an algorithm needs; a key's type decides which algorithms it may
/// ever verify, whatever a token claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyFamily {
    /// An RSA public key.
    Rsa,
    /// An EC public key on P-256.
    P256,
    /// An EC public key on P-384.
    P384,
    /// An Ed25519 public key.
    Ed25519,
    /// A symmetric secret.
    Hmac,
}

/// Why an `alg` name is not one jwtgate verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AlgorithmError {
    /// `none`, in any casing: unsecured JWS is never accepted (RFC 8725 §3.1).
    #[error("the \"none\" algorithm is never accepted")]
    None,
    /// A registered JWS algorithm the crypto backend cannot verify.
    #[error("algorithm is registered but not supported by jwtgate's crypto backend")]
    Unsupported,
    /// Not a JWS algorithm name at all (names are case-sensitive).
    #[error("unknown JWS algorithm")]
    Unknown,
}

impl Algorithm {
    /// Every supported algorithm, in a stable order.
    pub const ALL: [Algorithm; 12] = [
        Algorithm::Rs256,
        Algorithm::Rs384,
        Algorithm::Rs512,
        Algorithm::Ps256,
        Algorithm::Ps384,
        Algorithm::Ps512,
        Algorithm::Es256,
        Algorithm::Es384,
        Algorithm::EdDsa,
        Algorithm::Hs256,
        Algorithm::Hs384,
        Algorithm::Hs512,
    ];

    /// The registered `alg` name.
    pub const fn name(self) -> &'static str {
        match self {
            Algorithm::Rs256 => "RS256",
            Algorithm::Rs384 => "RS384",
            Algorithm::Rs512 => "RS512",
            Algorithm::Ps256 => "PS256",
            Algorithm::Ps384 => "PS384",
            Algorithm::Ps512 => "PS512",
            Algorithm::Es256 => "ES256",
            Algorithm::Es384 => "ES384",
            Algorithm::EdDsa => "EdDSA",
            Algorithm::Hs256 => "HS256",
            Algorithm::Hs384 => "HS384",
            Algorithm::Hs512 => "HS512",
        }
    }

    /// Classifies an `alg` name exactly as written (JOSE names are case-sensitive).
    pub fn from_name(name: &str) -> Result<Algorithm, AlgorithmError> {
        if let Some(algorithm) = Algorithm::ALL.into_iter().find(|a| a.name() == name) {
            return Ok(algorithm);
        }
        if name.eq_ignore_ascii_case("none") {
            return Err(AlgorithmError::None);
        }
        match name {
            // Registered in the IANA JOSE registry for JWS, but not in `ring`.
            "ES512" | "ES256K" | "Ed25519" | "Ed448" => Err(AlgorithmError::Unsupported),
            _ => Err(AlgorithmError::Unknown),
        }
    }

    /// The key type this algorithm needs.
    pub const fn family(self) -> KeyFamily {
        match self {
            Algorithm::Rs256
            | Algorithm::Rs384
            | Algorithm::Rs512
            | Algorithm::Ps256
            | Algorithm::Ps384
            | Algorithm::Ps512 => KeyFamily::Rsa,
            Algorithm::Es256 => KeyFamily::P256,
            Algorithm::Es384 => KeyFamily::P384,
            Algorithm::EdDsa => KeyFamily::Ed25519,
            Algorithm::Hs256 | Algorithm::Hs384 | Algorithm::Hs512 => KeyFamily::Hmac,
        }
    }

    /// Is this an HMAC algorithm (symmetric secret)?
    pub const fn is_symmetric(self) -> bool {
        matches!(self.family(), KeyFamily::Hmac)
    }

    /// Output length of the algorithm's hash in bytes; an HMAC key must be at least
    /// this long (RFC 7518 §3.2).
    pub const fn hash_len(self) -> usize {
        match self {
            Algorithm::Rs256 | Algorithm::Ps256 | Algorithm::Es256 | Algorithm::Hs256 => 32,
            Algorithm::Rs384 | Algorithm::Ps384 | Algorithm::Es384 | Algorithm::Hs384 => 48,
            Algorithm::Rs512 | Algorithm::Ps512 | Algorithm::EdDsa | Algorithm::Hs512 => 64,
        }
    }

    const fn bit(self) -> u16 {
        1 << self as u16
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = AlgorithmError;

    fn from_str(name: &str) -> Result<Algorithm, AlgorithmError> {
        Algorithm::from_name(name)
    }
}

/// A set of algorithms: an allow-list, or the algorithms a key is bound to.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AlgorithmSet(u16);

impl AlgorithmSet {
    /// No algorithm.
    pub const EMPTY: AlgorithmSet = AlgorithmSet(0);

    /// Every algorithm of `family`.
    pub fn of_family(family: KeyFamily) -> AlgorithmSet {
        Algorithm::ALL
            .into_iter()
            .filter(|a| a.family() == family)
            .collect()
    }

    /// Just `algorithm`.
    pub const fn only(algorithm: Algorithm) -> AlgorithmSet {
        AlgorithmSet(algorithm.bit())
    }

    /// Is `algorithm` in the set?
    pub const fn contains(self, algorithm: Algorithm) -> bool {
        self.0 & algorithm.bit() != 0
    }

    /// Adds `algorithm`.
    pub fn insert(&mut self, algorithm: Algorithm) {
        self.0 |= algorithm.bit();
    }

    /// The algorithms in both sets.
    pub const fn intersection(self, other: AlgorithmSet) -> AlgorithmSet {
        AlgorithmSet(self.0 & other.0)
    }

    /// Is the set empty?
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// How many algorithms the set holds.
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The members, in [`Algorithm::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Algorithm> {
        Algorithm::ALL
            .into_iter()
            .filter(move |a| self.contains(*a))
    }

    /// Does the set hold any HMAC algorithm?
    pub fn has_symmetric(self) -> bool {
        self.iter().any(Algorithm::is_symmetric)
    }

    /// Does the set hold any public-key algorithm?
    pub fn has_asymmetric(self) -> bool {
        self.iter().any(|a| !a.is_symmetric())
    }

    /// Parses a comma-separated list such as `RS256,ES256`; an unknown or unsupported
    /// name is an error naming it, so a typo never silently narrows or widens the list.
    pub fn parse_list(list: &str) -> Result<AlgorithmSet, UnknownAlgorithm> {
        list.split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(|name| {
                Algorithm::from_name(name).map_err(|reason| UnknownAlgorithm {
                    name: name.to_owned(),
                    reason,
                })
            })
            .collect()
    }
}

/// An allow-list named an algorithm jwtgate cannot verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("algorithm {name:?} cannot be allowed: {reason}")]
pub struct UnknownAlgorithm {
    /// The name as written.
    pub name: String,
    /// Why it is not accepted.
    pub reason: AlgorithmError,
}

impl FromIterator<Algorithm> for AlgorithmSet {
    fn from_iter<I: IntoIterator<Item = Algorithm>>(iter: I) -> AlgorithmSet {
        let mut set = AlgorithmSet::EMPTY;
        iter.into_iter().for_each(|a| set.insert(a));
        set
    }
}

impl fmt::Debug for AlgorithmSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl fmt::Display for AlgorithmSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, algorithm) in self.iter().enumerate() {
            if position > 0 {
                f.write_str(",")?;
            }
            f.write_str(algorithm.name())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_case_sensitive() {
        for algorithm in Algorithm::ALL {
            assert_eq!(Algorithm::from_name(algorithm.name()), Ok(algorithm));
        }
        assert_eq!(Algorithm::from_name("rs256"), Err(AlgorithmError::Unknown));
        assert_eq!(Algorithm::from_name("EDDSA"), Err(AlgorithmError::Unknown));
    }

    #[test]
    fn none_is_classified_in_every_casing() {
        for name in ["none", "None", "NONE", "nOnE"] {
            assert_eq!(Algorithm::from_name(name), Err(AlgorithmError::None));
        }
    }

    #[test]
    fn unsupported_algorithms_are_named() {
        assert_eq!(
            Algorithm::from_name("ES512"),
            Err(AlgorithmError::Unsupported)
        );
        assert_eq!(Algorithm::from_name("HS1"), Err(AlgorithmError::Unknown));
    }

    #[test]
    fn sets_parse_and_display() {
        let set = AlgorithmSet::parse_list("RS256, ES256,,EdDSA").unwrap_or_default();
        assert_eq!(set.to_string(), "RS256,ES256,EdDSA");
        assert!(set.contains(Algorithm::Es256) && !set.contains(Algorithm::Hs256));
        assert!(!set.has_symmetric() && set.has_asymmetric());
        let error = AlgorithmSet::parse_list("RS256,ES512");
        assert_eq!(error.err().map(|e| e.name), Some("ES512".to_owned()));
        assert_eq!(AlgorithmSet::of_family(KeyFamily::Rsa).len(), 6);
    }
}
