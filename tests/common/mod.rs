//! Shared helpers for the integration tests: key material from `tests/data`,
//! token minting with `ring` (through jwtgate's signing seam), and verifiers.
#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

pub mod grpc;
pub mod https;
pub mod nginx;
pub mod proxied;
pub mod proxy;
pub mod server;
pub mod spellings;
pub mod upstream;

use std::path::{Path, PathBuf};

use base64::Engine as _;
use jwtgate::internals::SigningKey;
use jwtgate::{Algorithm, AlgorithmSet, KeySet, Outcome, UnixTime, Validation, Verifier};
use jwtgate_engine::base64url;

/// The clock every test verifies at, unless it says otherwise.
pub const NOW: UnixTime = UnixTime(1_700_000_000);

/// A file of the repository, by its path from the root.
pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

pub fn data_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// `../shared/vectors` beside the checkout (CI copies shared/ there too).
pub fn vectors_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/vectors")
        .join(relative)
}

pub fn read_data(name: &str) -> String {
    std::fs::read_to_string(data_path(name)).unwrap_or_else(|e| panic!("tests/data/{name}: {e}"))
}

/// DER bytes of the single PEM block in `pem`.
pub fn pem_to_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

/// A signing key from `tests/data/<name>.pk8.pem`.
pub fn signing_key(name: &str, algorithm: Algorithm) -> SigningKey {
    SigningKey::from_pkcs8(
        algorithm,
        &pem_to_der(&read_data(&format!("{name}.pk8.pem"))),
    )
    .unwrap()
}

/// Public key set from `tests/data/<name>.spki.pem`.
pub fn public_keys(name: &str) -> KeySet {
    KeySet::parse(read_data(&format!("{name}.spki.pem")).as_bytes()).unwrap()
}

/// `b64(header).b64(claims).b64(sign(...))` with exactly these JSON texts.
pub fn mint(header: &str, claims: &str, key: &SigningKey, algorithm: Algorithm) -> String {
    let mut token = base64url::encode(header.as_bytes());
    token.push('.');
    base64url::encode_into(claims.as_bytes(), &mut token);
    let signature = key.sign(algorithm, token.as_bytes()).unwrap();
    token.push('.');
    base64url::encode_into(&signature, &mut token);
    token
}

/// Joins already-encoded segments, for hand-built hostile tokens.
pub fn compact(header: &str, claims: &str, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        base64url::encode(header.as_bytes()),
        base64url::encode(claims.as_bytes()),
        base64url::encode(signature)
    )
}

pub fn verifier(keys: KeySet, algorithms: &str) -> Verifier {
    Verifier::new(
        keys,
        Validation::new(AlgorithmSet::parse_list(algorithms).unwrap()),
    )
    .unwrap()
}

pub fn verifier_with(keys: KeySet, validation: Validation) -> Verifier {
    Verifier::new(keys, validation).unwrap()
}

/// The outcome of verifying `token` at `now`.
pub fn outcome_at(verifier: &Verifier, token: &[u8], now: UnixTime) -> Outcome {
    let mut scratch = verifier.scratch();
    match verifier.verify(token, now, &mut scratch) {
        Ok(_) => Outcome::Valid,
        Err(rejection) => rejection.outcome(),
    }
}

pub fn outcome(verifier: &Verifier, token: &str) -> Outcome {
    outcome_at(verifier, token.as_bytes(), NOW)
}

/// Claims valid at [`NOW`] for an hour.
pub fn fresh_claims() -> String {
    format!(
        r#"{{"sub":"user-1","iat":{},"exp":{}}}"#,
        NOW.0,
        NOW.0 + 3600
    )
}

/// `(tag, contents, rest)` of the DER element at the front of `der`.
fn der_element(der: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = der[0];
    let (length, header) = if der[1] < 0x80 {
        (usize::from(der[1]), 2)
    } else {
        let count = usize::from(der[1] & 0x7f);
        let length = der[2..2 + count]
            .iter()
            .fold(0_usize, |acc, &b| (acc << 8) | usize::from(b));
        (length, 2 + count)
    };
    (tag, &der[header..header + length], &der[header + length..])
}

/// An unsigned big-endian integer without the DER sign byte.
fn unsigned(bytes: &[u8]) -> &[u8] {
    let zeros = bytes.iter().take_while(|&&b| b == 0).count();
    &bytes[zeros..]
}

/// `tests/data/rsa2048-a` as an RS256 JWK with this kid.
pub fn rsa_jwk(kid: &str) -> String {
    let pkcs1 = pem_to_der(&read_data("rsa2048-a.pkcs1.pem"));
    let (_, sequence, _) = der_element(&pkcs1);
    let (_, n, rest) = der_element(sequence);
    let (_, e, _) = der_element(rest);
    format!(
        r#"{{"kty":"RSA","kid":"{kid}","alg":"RS256","use":"sig","n":"{}","e":"{}"}}"#,
        base64url::encode(unsigned(n)),
        base64url::encode(unsigned(e)),
    )
}

/// The Ed25519 key of `tests/data` as an EdDSA JWK with this kid.
pub fn ed25519_jwk(kid: &str) -> String {
    let spki = pem_to_der(&read_data("ed25519.spki.pem"));
    // An Ed25519 SubjectPublicKeyInfo ends with the 32-byte public key.
    let x = &spki[spki.len() - 32..];
    format!(
        r#"{{"kty":"OKP","crv":"Ed25519","kid":"{kid}","alg":"EdDSA","use":"sig","x":"{}"}}"#,
        base64url::encode(x)
    )
}

/// A scratch directory under the system temp dir, unique per use, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let unique = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "jwtgate-{label}-{}-{unique}-{nanos}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn root(&self) -> &Path {
        &self.0
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Replaces a file's contents without changing its size or modification
/// time, so that only a SIGHUP makes a server notice (its file watcher would
/// otherwise race the signal and could reload once more).
pub fn rewrite_unnoticed(path: &Path, text: &str) {
    let before = std::fs::metadata(path).unwrap();
    assert_eq!(
        before.len(),
        text.len() as u64,
        "test bug: same size needed"
    );
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .unwrap();
    std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
    file.set_modified(before.modified().unwrap()).unwrap();
}

/// `program` on the PATH (from Debian's `package`, installed by `.ci/run`),
/// or `None` when `test` is to be skipped (`JWTGATE_SKIP_E2E=1`); panics
/// when it is missing and skipping was not asked for.
#[allow(clippy::print_stderr)]
pub fn required_tool(test: &str, program: &str, package: &str) -> Option<PathBuf> {
    let found = on_path(program);
    if found.is_some() {
        return found;
    }
    if std::env::var("JWTGATE_SKIP_E2E").is_ok_and(|v| v == "1") {
        eprintln!("{test}: {program} not found; skipped because JWTGATE_SKIP_E2E=1");
        return None;
    }
    panic!(
        "{test}: {program} not found on PATH. Install it (Debian: apt-get install {package}) \
         or set JWTGATE_SKIP_E2E=1 to skip this test."
    );
}

/// `program` in a directory of `PATH`.
pub fn on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    })
}

/// `promtool` (Debian's `prometheus`), as [`required_tool`].
pub fn promtool(test: &str) -> Option<PathBuf> {
    required_tool(test, "promtool", "prometheus")
}
