//! `jwtgate keygen`: a fresh signing key and the JWKS that verifies it, for
//! quick starts, tests and benchmarks.
//!
//! Writes `<kid>.pk8.pem` (PKCS#8, mode 0600) and `<kid>.jwks.json`. For HMAC
//! algorithms there is no private key file: the JWKS holds the secret itself and
//! is written with mode 0600. Existing files are never overwritten.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use jwtgate_engine::internals::jwk::{Jwk, JwkMaterial};
use jwtgate_engine::{KeyFamily, base64url};

use crate::Algorithm;
use crate::json_string::quote_into;
use crate::signing;
use crate::tools::ToolError;

/// What to generate.
#[derive(Debug, Clone)]
pub struct KeygenOptions {
    /// The algorithm the key is bound to (its JWK carries this `alg`).
    pub algorithm: Algorithm,
    /// The key id; default `<alg>-<random>`.
    pub kid: Option<String>,
    /// Where to write the files.
    pub out_dir: PathBuf,
    /// RSA modulus size (ignored for other algorithms).
    pub rsa_bits: usize,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct KeygenReport {
    /// The key id.
    pub kid: String,
    /// The private key file (`None` for HMAC).
    pub private_key: Option<PathBuf>,
    /// The JWKS file.
    pub jwks: PathBuf,
}

fn write_new(path: &Path, contents: &[u8], private: bool) -> Result<(), ToolError> {
    let io = |source| ToolError::Io {
        path: path.to_owned(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    let mut file = options.open(path).map_err(io)?;
    file.write_all(contents).map_err(io)
}

/// The JWK as compact JSON with `use: sig` (and `alg`, `kid` when set), as
/// the engine loads it. For a symmetric key this contains the secret.
fn jwk_json(jwk: &Jwk) -> String {
    let b64 = |bytes: &[u8]| base64url::encode(bytes);
    let mut json = match &jwk.material {
        JwkMaterial::Rsa { n, e } => {
            format!(r#"{{"kty":"RSA","n":"{}","e":"{}""#, b64(n), b64(e))
        }
        JwkMaterial::Ec { curve, x, y } => {
            let crv = if *curve == KeyFamily::P384 {
                "P-384"
            } else {
                "P-256"
            };
            format!(
                r#"{{"kty":"EC","crv":"{crv}","x":"{}","y":"{}""#,
                b64(x),
                b64(y)
            )
        }
        JwkMaterial::Ed25519 { x } => {
            format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{}""#, b64(x))
        }
        JwkMaterial::Symmetric { k } => format!(r#"{{"kty":"oct","k":"{}""#, b64(k)),
    };
    json.push_str(r#","use":"sig""#);
    if let Some(alg) = jwk.alg {
        json.push_str(&format!(r#","alg":"{alg}""#));
    }
    if let Some(kid) = &jwk.kid {
        let mut quoted = Vec::new();
        quote_into(&mut quoted, kid);
        json.push_str(r#","kid":"#);
        json.push_str(&String::from_utf8_lossy(&quoted));
    }
    json.push('}');
    json
}

/// Generates the key and writes its files.
pub fn keygen(options: &KeygenOptions) -> Result<KeygenReport, ToolError> {
    let algorithm = options.algorithm;
    if algorithm.family() == KeyFamily::Rsa && !(2048..=8192).contains(&options.rsa_bits) {
        return Err(ToolError::Usage(format!(
            "RSA keys must have 2048 to 8192 bits, not {}",
            options.rsa_bits
        )));
    }
    let kid = match &options.kid {
        Some(kid) => kid.clone(),
        None => {
            let mut random = [0u8; 4];
            signing::random_bytes(&mut random).map_err(|e| ToolError::Usage(e.to_string()))?;
            let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
            format!("{}-{suffix}", algorithm.name().to_ascii_lowercase())
        }
    };
    if kid.is_empty() || kid.contains(['/', '\\', '\0']) || kid.starts_with('.') {
        return Err(ToolError::Usage(format!("kid {kid:?} cannot name a file")));
    }
    std::fs::create_dir_all(&options.out_dir).map_err(|source| ToolError::Io {
        path: options.out_dir.clone(),
        source,
    })?;
    let generated = signing::generate(algorithm, options.rsa_bits)
        .map_err(|e| ToolError::Usage(e.to_string()))?;
    let jwk = Jwk {
        kid: Some(kid.clone()),
        alg: Some(algorithm),
        material: generated.public,
    };
    let jwks = format!("{{\"keys\":[{}]}}\n", jwk_json(&jwk));
    let jwks_path = options.out_dir.join(format!("{kid}.jwks.json"));
    let private_key = match &generated.pkcs8_der {
        Some(der) => {
            let path = options.out_dir.join(format!("{kid}.pk8.pem"));
            write_new(
                &path,
                signing::pem_encode("PRIVATE KEY", der).as_bytes(),
                true,
            )?;
            Some(path)
        }
        None => None,
    };
    write_new(&jwks_path, jwks.as_bytes(), algorithm.is_symmetric())?;
    Ok(KeygenReport {
        kid,
        private_key,
        jwks: jwks_path,
    })
}
