//! `jwtgate keygen`: a fresh signing key and the JWKS that verifies it, for
//! quick starts, tests and benchmarks.
//!
//! Writes `<kid>.pk8.pem` (PKCS#8, mode 0600) and `<kid>.jwks.json`. For HMAC
//! algorithms there is no private key file: the JWKS holds the secret itself and
//! is written with mode 0600. Existing files are never overwritten.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::Algorithm;
use crate::jose::jwk::Jwk;
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

/// Generates the key and writes its files.
pub fn keygen(options: &KeygenOptions) -> Result<KeygenReport, ToolError> {
    let algorithm = options.algorithm;
    if algorithm.family() == crate::jose::alg::KeyFamily::Rsa
        && !(2048..=8192).contains(&options.rsa_bits)
    {
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
    let jwks = format!("{{\"keys\":[{}]}}\n", jwk.to_json());
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
