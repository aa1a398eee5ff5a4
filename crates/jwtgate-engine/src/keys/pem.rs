//! PEM public keys for users without a JWKS: SubjectPublicKeyInfo
//! (`BEGIN PUBLIC KEY`: RSA, EC P-256/P-384, Ed25519) and PKCS#1
//! (`BEGIN RSA PUBLIC KEY`), read with a minimal strict DER reader.
//!
//! Private keys and certificates are refused by name, so a misplaced secret is
//! never loaded as if it were a public key.
//!
//! [`decode_blocks`] is also how jwtgate's service crate reads PKCS#8 private
//! keys for signing (the engine itself never holds one).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::jose::alg::KeyFamily;

/// Public key material read from PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PemKey {
    /// Modulus and exponent, big-endian, no leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// Uncompressed SEC1 point.
    Ec { curve: KeyFamily, point: Vec<u8> },
    /// Raw Ed25519 public key.
    Ed25519([u8; 32]),
}

const OID_RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

const TAG_INTEGER: u8 = 0x02;
const TAG_BIT_STRING: u8 = 0x03;
const TAG_NULL: u8 = 0x05;
const TAG_OID: u8 = 0x06;
const TAG_SEQUENCE: u8 = 0x30;

/// Why a PEM file could not be read. The texts reach users (key files in the
/// configuration, `jwtgate mint --key`), so they name the block and its line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    /// Something other than blank lines stands between two blocks.
    #[error("line {line}: text outside a PEM block")]
    TextOutsideBlock {
        /// The offending line, 1-based.
        line: usize,
    },
    /// Headers such as `Proc-Type:` (encrypted PEM) are not read.
    #[error("{label}: encrypted or annotated PEM is not supported")]
    Annotated {
        /// The block's label.
        label: String,
    },
    /// A `BEGIN` line without its `END` line.
    #[error("line {line}: {label} block has no END line")]
    NoEndLine {
        /// The block's label.
        label: String,
        /// The `BEGIN` line, 1-based.
        line: usize,
    },
    /// The body is not base64.
    #[error("{label} at line {line}: invalid base64: {error}")]
    Base64 {
        /// The block's label.
        label: String,
        /// The `BEGIN` line, 1-based.
        line: usize,
        /// What the decoder said.
        error: base64::DecodeError,
    },
    /// The text holds no block at all.
    #[error("no PEM block found")]
    NoBlock,
    /// A block is not a public key jwtgate can use.
    #[error("{label} at line {line}: {problem}")]
    Key {
        /// The block's label.
        label: String,
        /// The `BEGIN` line, 1-based.
        line: usize,
        /// What is wrong with it.
        problem: KeyProblem,
    },
}

/// Why one PEM block is not a usable public key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyProblem {
    /// An X.509 certificate instead of its public key.
    #[error("certificates are not accepted; extract the public key (openssl x509 -pubkey -noout)")]
    Certificate,
    /// A private key (the label, e.g. `EC PRIVATE KEY`).
    #[error("{0}: this is a private key; give jwtgate only the public key")]
    PrivateKey(String),
    /// Any other label.
    #[error("unsupported PEM block {0:?}")]
    UnsupportedBlock(String),
    /// The DER inside is not a key jwtgate reads.
    #[error(transparent)]
    Der(#[from] DerError),
}

/// Why the DER of a public key was refused: the reader is strict (definite,
/// minimal lengths) and knows only RSA, EC P-256/P-384 and Ed25519.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DerError {
    /// The input ends before a tag.
    #[error("truncated DER")]
    Truncated,
    /// Another tag than the structure requires.
    #[error("expected DER tag {expected:#04x}, found {found:#04x}")]
    UnexpectedTag {
        /// The tag the structure requires.
        expected: u8,
        /// The tag found.
        found: u8,
    },
    /// The input ends inside a length.
    #[error("truncated DER length")]
    TruncatedLength,
    /// Indefinite, or longer than four bytes.
    #[error("unsupported DER length")]
    UnsupportedLength,
    /// A long form where the short one fits, or leading zeros.
    #[error("non-minimal DER length")]
    NonMinimalLength,
    /// The input ends inside a value.
    #[error("truncated DER value")]
    TruncatedValue,
    /// Bytes after the outermost value.
    #[error("trailing bytes after DER value")]
    TrailingBytes,
    /// An RSA modulus or exponent that is empty or has its sign bit set.
    #[error("RSA integer is empty or negative")]
    NegativeInteger,
    /// The key's BIT STRING does not start with zero unused bits.
    #[error("public key BIT STRING has unused bits")]
    UnusedBits,
    /// `rsaEncryption` with parameters other than NULL.
    #[error("rsaEncryption parameters must be NULL")]
    RsaParameters,
    /// An EC key on another curve.
    #[error("EC curve is not P-256 or P-384")]
    UnsupportedCurve,
    /// An Ed25519 key of the wrong length.
    #[error("Ed25519 public key must be 32 bytes")]
    Ed25519Length,
    /// Another algorithm than RSA, EC or Ed25519.
    #[error("public key algorithm is not RSA, EC or Ed25519")]
    UnsupportedAlgorithm,
}

/// One decoded PEM block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PemBlock {
    /// The label between `BEGIN ` and `-----`, e.g. `PUBLIC KEY`.
    pub label: String,
    /// The 1-based line of the BEGIN line, for messages.
    pub line: usize,
    /// The DER bytes.
    pub der: Vec<u8>,
}

/// Splits a PEM file into its blocks (RFC 7468) and decodes each; text before
/// the first block is ignored (OpenSSL writes explanations there), text between
/// blocks is refused.
pub fn decode_blocks(text: &str) -> Result<Vec<PemBlock>, PemError> {
    let mut blocks = Vec::new();
    let mut lines = text.lines().map(str::trim).enumerate();
    while let Some((number, line)) = lines.next() {
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            if line.is_empty() || blocks.is_empty() {
                continue;
            }
            return Err(PemError::TextOutsideBlock { line: number + 1 });
        };
        let end = format!("-----END {label}-----");
        let mut body = String::new();
        let mut closed = false;
        for (_, line) in lines.by_ref() {
            if line == end {
                closed = true;
                break;
            }
            if line.contains(':') {
                return Err(PemError::Annotated {
                    label: label.to_owned(),
                });
            }
            body.push_str(line);
        }
        if !closed {
            return Err(PemError::NoEndLine {
                label: label.to_owned(),
                line: number + 1,
            });
        }
        let der = STANDARD
            .decode(body.as_bytes())
            .map_err(|error| PemError::Base64 {
                label: label.to_owned(),
                line: number + 1,
                error,
            })?;
        blocks.push(PemBlock {
            label: label.to_owned(),
            line: number + 1,
            der,
        });
    }
    if blocks.is_empty() {
        return Err(PemError::NoBlock);
    }
    Ok(blocks)
}

/// Reads the public keys of a PEM file.
pub(crate) fn parse_pem(text: &str) -> Result<Vec<PemKey>, PemError> {
    decode_blocks(text)?
        .into_iter()
        .map(|block| {
            let key = match block.label.as_str() {
                "PUBLIC KEY" => parse_spki(&block.der).map_err(KeyProblem::Der),
                "RSA PUBLIC KEY" => parse_pkcs1(&block.der).map_err(KeyProblem::Der),
                "CERTIFICATE" => Err(KeyProblem::Certificate),
                other if other.contains("PRIVATE KEY") => {
                    Err(KeyProblem::PrivateKey(other.to_owned()))
                }
                other => Err(KeyProblem::UnsupportedBlock(other.to_owned())),
            };
            key.map_err(|problem| PemError::Key {
                label: block.label,
                line: block.line,
                problem,
            })
        })
        .collect()
}

/// A strict DER cursor: definite, minimal lengths only.
struct Der<'a> {
    rest: &'a [u8],
}

impl<'a> Der<'a> {
    fn new(bytes: &'a [u8]) -> Der<'a> {
        Der { rest: bytes }
    }

    fn read(&mut self, tag: u8) -> Result<&'a [u8], DerError> {
        let (&found, rest) = self.rest.split_first().ok_or(DerError::Truncated)?;
        if found != tag {
            return Err(DerError::UnexpectedTag {
                expected: tag,
                found,
            });
        }
        let (&first, mut rest) = rest.split_first().ok_or(DerError::TruncatedLength)?;
        let length = if first < 0x80 {
            usize::from(first)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 {
                return Err(DerError::UnsupportedLength);
            }
            let (bytes, after) = rest
                .split_at_checked(count)
                .ok_or(DerError::TruncatedLength)?;
            rest = after;
            let length = bytes
                .iter()
                .fold(0usize, |value, &b| value << 8 | usize::from(b));
            if length < 0x80 || bytes.first() == Some(&0) {
                return Err(DerError::NonMinimalLength);
            }
            length
        };
        let (value, after) = rest
            .split_at_checked(length)
            .ok_or(DerError::TruncatedValue)?;
        self.rest = after;
        Ok(value)
    }

    fn finish(&self) -> Result<(), DerError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DerError::TrailingBytes)
        }
    }

    fn positive_integer(&mut self) -> Result<Vec<u8>, DerError> {
        let bytes = self.read(TAG_INTEGER)?;
        if bytes.first().is_none_or(|&b| b & 0x80 != 0) {
            return Err(DerError::NegativeInteger);
        }
        let zeros = bytes.iter().take_while(|&&b| b == 0).count();
        Ok(bytes.get(zeros..).unwrap_or_default().to_vec())
    }
}

fn parse_pkcs1(der: &[u8]) -> Result<PemKey, DerError> {
    let mut outer = Der::new(der);
    let mut sequence = Der::new(outer.read(TAG_SEQUENCE)?);
    outer.finish()?;
    let n = sequence.positive_integer()?;
    let e = sequence.positive_integer()?;
    sequence.finish()?;
    Ok(PemKey::Rsa { n, e })
}

fn parse_spki(der: &[u8]) -> Result<PemKey, DerError> {
    let mut outer = Der::new(der);
    let mut spki = Der::new(outer.read(TAG_SEQUENCE)?);
    outer.finish()?;
    let mut algorithm = Der::new(spki.read(TAG_SEQUENCE)?);
    let bit_string = spki.read(TAG_BIT_STRING)?;
    spki.finish()?;
    let key = match bit_string.split_first() {
        Some((0, key)) => key,
        _ => return Err(DerError::UnusedBits),
    };
    let oid = algorithm.read(TAG_OID)?;
    if oid == OID_RSA_ENCRYPTION {
        // Parameters must be NULL (RFC 3279 §2.3.1); absent is tolerated.
        if !algorithm.rest.is_empty() && !algorithm.read(TAG_NULL)?.is_empty() {
            return Err(DerError::RsaParameters);
        }
        algorithm.finish()?;
        return parse_pkcs1(key);
    }
    if oid == OID_EC_PUBLIC_KEY {
        let curve_oid = algorithm.read(TAG_OID)?;
        algorithm.finish()?;
        let curve = match curve_oid {
            OID_P256 => KeyFamily::P256,
            OID_P384 => KeyFamily::P384,
            _ => return Err(DerError::UnsupportedCurve),
        };
        return Ok(PemKey::Ec {
            curve,
            point: key.to_vec(),
        });
    }
    if oid == OID_ED25519 {
        algorithm.finish()?;
        let key = <[u8; 32]>::try_from(key).map_err(|_| DerError::Ed25519Length)?;
        return Ok(PemKey::Ed25519(key));
    }
    Err(DerError::UnsupportedAlgorithm)
}

#[cfg(test)]
mod tests {
    use super::*;

    // openssl genpkey -algorithm ed25519 | openssl pkey -pubout
    const ED25519_PEM: &str = "-----BEGIN PUBLIC KEY-----\n\
        MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n\
        -----END PUBLIC KEY-----\n";

    #[test]
    fn reads_an_ed25519_spki() {
        let keys = parse_pem(ED25519_PEM);
        assert!(
            matches!(keys.as_deref(), Ok([PemKey::Ed25519(_)])),
            "{keys:?}"
        );
    }

    #[test]
    fn refuses_private_keys_and_certificates_by_name() {
        let private = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert_eq!(
            parse_pem(private).map_err(|e| e.to_string()),
            Err("PRIVATE KEY at line 1: PRIVATE KEY: this is a private key; give jwtgate only the public key".to_owned())
        );
        assert!(parse_pem(private).is_err_and(|e| e.to_string().contains("private key")));
        let certificate = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(parse_pem(certificate).is_err_and(|e| e.to_string().contains("certificates")));
        assert!(parse_pem("").is_err());
        assert_eq!(
            parse_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n").map_err(|e| e.to_string()),
            Err("line 1: PUBLIC KEY block has no END line".to_owned())
        );
    }

    #[test]
    fn der_reader_is_strict() {
        assert!(
            Der::new(&[0x30, 0x81, 0x05]).read(TAG_SEQUENCE).is_err(),
            "non-minimal length"
        );
        assert!(
            Der::new(&[0x30, 0x05, 0x00]).read(TAG_SEQUENCE).is_err(),
            "truncated"
        );
        assert!(
            Der::new(&[0x30, 0x80]).read(TAG_SEQUENCE).is_err(),
            "indefinite length"
        );
        assert!(
            Der::new(&[0x02, 0x01, 0x80]).positive_integer().is_err(),
            "negative"
        );
        assert_eq!(
            Der::new(&[0x02, 0x02, 0x00, 0x80]).positive_integer(),
            Ok(vec![0x80])
        );
    }
}
