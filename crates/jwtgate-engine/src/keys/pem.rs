//! PEM public keys for users without a JWKS: SubjectPublicKeyInfo
//! (`BEGIN PUBLIC KEY`: RSA, EC P-256/P-384, Ed25519) and PKCS#1
//! (`BEGIN RSA PUBLIC KEY`), read with a minimal strict DER reader.
//!
//! Private keys and certificates are refused by name, so a misplaced secret is
//! never loaded as if it were a public key.

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
pub fn decode_blocks(text: &str) -> Result<Vec<PemBlock>, String> {
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
            return Err(format!("line {}: text outside a PEM block", number + 1));
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
                return Err(format!(
                    "{label}: encrypted or annotated PEM is not supported"
                ));
            }
            body.push_str(line);
        }
        if !closed {
            return Err(format!(
                "line {}: {label} block has no END line",
                number + 1
            ));
        }
        let der = STANDARD
            .decode(body.as_bytes())
            .map_err(|error| format!("{label} at line {}: invalid base64: {error}", number + 1))?;
        blocks.push(PemBlock {
            label: label.to_owned(),
            line: number + 1,
            der,
        });
    }
    if blocks.is_empty() {
        return Err("no PEM block found".into());
    }
    Ok(blocks)
}

/// Reads the public keys of a PEM file.
pub(crate) fn parse_pem(text: &str) -> Result<Vec<PemKey>, String> {
    decode_blocks(text)?
        .into_iter()
        .map(|block| {
            let label = block.label.as_str();
            match label {
                "PUBLIC KEY" => parse_spki(&block.der),
                "RSA PUBLIC KEY" => parse_pkcs1(&block.der),
                "CERTIFICATE" => Err("certificates are not accepted; extract the public key \
                                     (openssl x509 -pubkey -noout)"
                    .to_owned()),
                other if other.contains("PRIVATE KEY") => Err(format!(
                    "{other}: this is a private key; give jwtgate only the public key"
                )),
                other => Err(format!("unsupported PEM block {other:?}")),
            }
            .map_err(|error| format!("{label} at line {}: {error}", block.line))
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

    fn read(&mut self, tag: u8) -> Result<&'a [u8], String> {
        let (&found, rest) = self.rest.split_first().ok_or("truncated DER")?;
        if found != tag {
            return Err(format!("expected DER tag {tag:#04x}, found {found:#04x}"));
        }
        let (&first, mut rest) = rest.split_first().ok_or("truncated DER length")?;
        let length = if first < 0x80 {
            usize::from(first)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 {
                return Err("unsupported DER length".into());
            }
            let (bytes, after) = rest.split_at_checked(count).ok_or("truncated DER length")?;
            rest = after;
            let length = bytes
                .iter()
                .fold(0usize, |value, &b| value << 8 | usize::from(b));
            if length < 0x80 || bytes.first() == Some(&0) {
                return Err("non-minimal DER length".into());
            }
            length
        };
        let (value, after) = rest.split_at_checked(length).ok_or("truncated DER value")?;
        self.rest = after;
        Ok(value)
    }

    fn finish(&self) -> Result<(), String> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err("trailing bytes after DER value".into())
        }
    }

    fn positive_integer(&mut self) -> Result<Vec<u8>, String> {
        let bytes = self.read(TAG_INTEGER)?;
        if bytes.first().is_none_or(|&b| b & 0x80 != 0) {
            return Err("RSA integer is empty or negative".into());
        }
        let zeros = bytes.iter().take_while(|&&b| b == 0).count();
        Ok(bytes.get(zeros..).unwrap_or_default().to_vec())
    }
}

fn parse_pkcs1(der: &[u8]) -> Result<PemKey, String> {
    let mut outer = Der::new(der);
    let mut sequence = Der::new(outer.read(TAG_SEQUENCE)?);
    outer.finish()?;
    let n = sequence.positive_integer()?;
    let e = sequence.positive_integer()?;
    sequence.finish()?;
    Ok(PemKey::Rsa { n, e })
}

fn parse_spki(der: &[u8]) -> Result<PemKey, String> {
    let mut outer = Der::new(der);
    let mut spki = Der::new(outer.read(TAG_SEQUENCE)?);
    outer.finish()?;
    let mut algorithm = Der::new(spki.read(TAG_SEQUENCE)?);
    let bit_string = spki.read(TAG_BIT_STRING)?;
    spki.finish()?;
    let key = match bit_string.split_first() {
        Some((0, key)) => key,
        _ => return Err("public key BIT STRING has unused bits".into()),
    };
    let oid = algorithm.read(TAG_OID)?;
    if oid == OID_RSA_ENCRYPTION {
        // Parameters must be NULL (RFC 3279 §2.3.1); absent is tolerated.
        if !algorithm.rest.is_empty() && !algorithm.read(TAG_NULL)?.is_empty() {
            return Err("rsaEncryption parameters must be NULL".into());
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
            _ => return Err("EC curve is not P-256 or P-384".into()),
        };
        return Ok(PemKey::Ec {
            curve,
            point: key.to_vec(),
        });
    }
    if oid == OID_ED25519 {
        algorithm.finish()?;
        let key = <[u8; 32]>::try_from(key).map_err(|_| "Ed25519 public key must be 32 bytes")?;
        return Ok(PemKey::Ed25519(key));
    }
    Err("public key algorithm is not RSA, EC or Ed25519".into())
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
        assert!(parse_pem(private).is_err_and(|e| e.contains("private key")));
        let certificate = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(parse_pem(certificate).is_err_and(|e| e.contains("certificates")));
        assert!(parse_pem("").is_err());
        assert!(parse_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n").is_err_and(|e| e.contains("END")));
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
