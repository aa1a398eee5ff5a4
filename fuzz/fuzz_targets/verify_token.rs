//! `Verifier::verify` and `claimed_kid` over arbitrary bytes, with verifiers
//! over the RFC 7515 example keys (A.1 HMAC secret, A.2 RSA, A.3 P-256) and
//! the RFC 8037 Ed25519 key, so that the published tokens in the seeds verify.
//!
//! The first byte picks the mode:
//! - even: the rest is a compact token, verified as it is;
//! - odd: the rest is `header JSON 0xFF claims JSON`, encoded and signed here
//!   with the HMAC secret (HS256/384/512 by the first byte), so that the
//!   header and claims checks behind the signature are reached too.
#![no_main]

use std::sync::LazyLock;
use std::time::Duration;

use jwtgate::internals::SigningKey;
use jwtgate::{
    Algorithm, AlgorithmSet, ClaimName, KeySet, RegisteredClaim, Scratch, SubjectMatch, UnixTime,
    Validation, Verifier,
};
use jwtgate_engine::base64url;
use jwtgate_engine::claimed_kid;
use libfuzzer_sys::fuzz_target;

/// RFC 7515 A.1 (and the A.1 token's lifetime: it expires at 1300819380).
const HMAC_JWK: &str = r#"{"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}"#;
const NOW: UnixTime = UnixTime(1_300_819_000);

/// Public parts of RFC 7515 A.2 (RSA) and A.3 (P-256), and RFC 8037 A (Ed25519).
const PUBLIC_JWKS: &str = r#"{"keys":[
{"kty":"RSA","n":"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ","e":"AQAB"},
{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

struct Engines {
    /// HS256/384/512 with the default (strict) validation.
    hmac: Verifier,
    /// The same key with every optional check switched on.
    hmac_checked: Verifier,
    /// RSA, P-256 and Ed25519, no `kid`: the algorithm picks the key.
    public: Verifier,
    secret: SigningKey,
}

static ENGINES: LazyLock<Engines> = LazyLock::new(|| {
    let hmac_keys = || KeySet::parse(HMAC_JWK.as_bytes()).expect("A.1 key");
    let hs = || AlgorithmSet::parse_list("HS256,HS384,HS512").expect("HS list");
    let checked = Validation::new(hs())
        .issuer("joe")
        .audience("api")
        .typ("JWT")
        .subject(SubjectMatch::Prefix("user:".into()))
        .max_lifetime(Duration::from_secs(3600))
        .require([
            ClaimName::Registered(RegisteredClaim::Exp),
            ClaimName::Registered(RegisteredClaim::Iat),
            ClaimName::Other("scope".into()),
        ]);
    let public = AlgorithmSet::parse_list("RS256,PS256,ES256,EdDSA").expect("public list");
    let secret = base64url::decode(
        b"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow",
    )
    .expect("A.1 secret");
    Engines {
        hmac: Verifier::new(hmac_keys(), Validation::new(hs())).expect("hmac verifier"),
        hmac_checked: Verifier::new(hmac_keys(), checked).expect("checked verifier"),
        public: Verifier::new(
            KeySet::parse(PUBLIC_JWKS.as_bytes()).expect("public keys"),
            Validation::new(public),
        )
        .expect("public verifier"),
        secret: SigningKey::hmac(&secret),
    }
});

/// One scratch per input, reused across the verifiers as a connection reuses
/// it across tokens (a fresh one per input keeps every run reproducible).
fn verify_with(verifier: &Verifier, token: &[u8], scratch: &mut Scratch) {
    if let Ok(verified) = verifier.verify(token, NOW, scratch) {
        assert!(
            verifier
                .validation()
                .algorithms()
                .contains(verified.algorithm())
        );
        let _ = (
            verified.claims.raw_json(),
            verified.claims.lookup("a.b"),
            verified.key.describe(),
        );
    }
    let _ = claimed_kid(token, scratch).map(|kid| kid.to_cow().len());
}

fuzz_target!(|data: &[u8]| {
    let engines = &*ENGINES;
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut scratch = engines.hmac.scratch();
    if mode & 1 == 0 {
        for verifier in [&engines.hmac, &engines.hmac_checked, &engines.public] {
            verify_with(verifier, rest, &mut scratch);
        }
        return;
    }
    let (header, claims) = match rest.iter().position(|&b| b == 0xFF) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &b""[..]),
    };
    let algorithm =
        [Algorithm::Hs256, Algorithm::Hs384, Algorithm::Hs512][usize::from(mode >> 1) % 3];
    let mut token = base64url::encode(header);
    token.push('.');
    base64url::encode_into(claims, &mut token);
    let signature = engines
        .secret
        .sign(algorithm, token.as_bytes())
        .expect("HMAC signs anything");
    token.push('.');
    base64url::encode_into(&signature, &mut token);
    verify_with(&engines.hmac, token.as_bytes(), &mut scratch);
    verify_with(&engines.hmac_checked, token.as_bytes(), &mut scratch);
});
