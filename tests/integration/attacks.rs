#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! The RFC 8725 negative battery: every known way to make a JWT verifier say
//! yes when it must say no, each pinned to the exact outcome jwtgate owes it.
//!
//! Hostile tokens are signed with the right key wherever that is possible, so a
//! refusal proves the check under test fired, not that the signature happened to
//! be wrong; most tests also verify an untouched control token for the same reason.

use crate::common;

use std::fmt::Display;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::*;
use jwtgate::internals::SigningKey;
use jwtgate::{
    Algorithm, AlgorithmSet, ClaimName, KeySet, KeySetError, Outcome, RegisteredClaim, Rejection,
    UnixTime, Validation, Verifier, VerifierError,
};
use jwtgate_engine::base64url;
use ring::signature::{self, KeyPair as _};

/// Exactly 32 bytes: the shortest secret jwtgate accepts for HS256.
const SECRET: &[u8] = b"jwtgate attack battery secret 32";
const OTHER_SECRET: &[u8] = b"a second secret, also 32 bytes!!";

const BAD_SIGNATURE: &str = "signature does not verify with the selected key";
const NOT_ALLOWED: &str = "alg is not in this configuration's allow-list";
const NO_SUCH_KID: &str = "no key in the key set has this kid";
const BOUND_ELSEWHERE: &str = "the key with this kid is bound to a different algorithm";
const NO_KID_NO_KEY: &str = "token has no kid and no key of the set fits its alg";
const CRIT: &str = "header names critical extensions (crit); jwtgate implements none";
const B64: &str = "unencoded payloads (b64, RFC 7797) are not supported";
const BAD_EXP: &str = "exp is not a NumericDate from 1970 to 9999";

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn b64(bytes: &[u8]) -> String {
    base64url::encode(bytes)
}

fn verdict_at(verifier: &Verifier, token: &[u8], now: UnixTime) -> Result<(), Rejection> {
    let mut scratch = verifier.scratch();
    verifier.verify(token, now, &mut scratch).map(|_| ())
}

fn verdict(verifier: &Verifier, token: &str) -> Result<(), Rejection> {
    verdict_at(verifier, token.as_bytes(), NOW)
}

fn denied(outcome: Outcome, detail: &'static str) -> Result<(), Rejection> {
    Err(Rejection::new(outcome, detail))
}

fn bad_signature() -> Result<(), Rejection> {
    denied(Outcome::BadSignature, BAD_SIGNATURE)
}

fn malformed(detail: &'static str) -> Result<(), Rejection> {
    denied(Outcome::Malformed, detail)
}

fn hmac_key() -> SigningKey {
    SigningKey::hmac(SECRET)
}

fn hmac_verifier() -> Verifier {
    verifier(KeySet::from_hmac_secret(SECRET, None).unwrap(), "HS256")
}

fn hmac_verifier_with(validation: impl FnOnce(Validation) -> Validation) -> Verifier {
    verifier_with(
        KeySet::from_hmac_secret(SECRET, None).unwrap(),
        validation(Validation::new(AlgorithmSet::only(Algorithm::Hs256))),
    )
}

fn hs256(header: &str, claims: &str) -> String {
    mint(header, claims, &hmac_key(), Algorithm::Hs256)
}

/// Signs the segment texts exactly as given, however hostile, so that only the
/// check under test can refuse the token.
fn sign_segments(header: &str, payload: &str, key: &SigningKey, algorithm: Algorithm) -> String {
    let input = format!("{header}.{payload}");
    let signature = key.sign(algorithm, input.as_bytes()).unwrap();
    format!("{input}.{}", b64(&signature))
}

fn exp_claims(exp: impl Display) -> String {
    format!(r#"{{"sub":"user-1","exp":{exp}}}"#)
}

fn split3(token: &str) -> (&str, &str, &str) {
    let mut parts = token.splitn(3, '.');
    (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    )
}

fn signature_bytes(token: &str) -> Vec<u8> {
    base64url::decode(split3(token).2.as_bytes()).unwrap()
}

fn with_signature(token: &str, signature: &[u8]) -> String {
    let (header, payload, _) = split3(token);
    format!("{header}.{payload}.{}", b64(signature))
}

/// The modulus of a DER `RSAPublicKey` (PKCS#1), leading zero removed.
fn pkcs1_modulus(der: &[u8]) -> Vec<u8> {
    fn read(der: &[u8], tag: u8) -> (&[u8], &[u8]) {
        assert_eq!(der[0], tag);
        let (length, header) = match der[1] {
            short @ 0..=0x7f => (usize::from(short), 2),
            0x81 => (usize::from(der[2]), 3),
            0x82 => (usize::from(der[2]) << 8 | usize::from(der[3]), 4),
            other => panic!("DER length form {other:#04x}"),
        };
        (&der[header..header + length], &der[header + length..])
    }
    let (sequence, _) = read(der, 0x30);
    let (n, _) = read(sequence, 0x02);
    n.strip_prefix(&[0]).unwrap_or(n).to_vec()
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// `(n, e)` of a committed RSA key, read with `ring` rather than jwtgate's PEM code.
fn rsa_components(name: &str) -> (Vec<u8>, Vec<u8>) {
    let der = pem_to_der(&read_data(&format!("{name}.pk8.pem")));
    let pair = ring::rsa::KeyPair::from_pkcs8(&der).unwrap();
    let public = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public());
    (public.n, public.e)
}

/// The public JWK of a committed RSA key; `members` is spliced in verbatim
/// (`,"kid":"x"`).
fn rsa_jwk(name: &str, members: &str) -> String {
    let (n, e) = rsa_components(name);
    format!(
        r#"{{"kty":"RSA","n":"{}","e":"{}"{members}}}"#,
        b64(&n),
        b64(&e)
    )
}

fn ecdsa_signing(algorithm: Algorithm) -> &'static signature::EcdsaSigningAlgorithm {
    match algorithm {
        Algorithm::Es256 => &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        _ => &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
    }
}

/// The uncompressed point of a PKCS#8 EC key.
fn ec_point(pkcs8: &[u8], algorithm: Algorithm) -> Vec<u8> {
    let rng = ring::rand::SystemRandom::new();
    signature::EcdsaKeyPair::from_pkcs8(ecdsa_signing(algorithm), pkcs8, &rng)
        .unwrap()
        .public_key()
        .as_ref()
        .to_vec()
}

fn ec_jwk_from_point(point: &[u8], members: &str) -> String {
    let coordinates = &point[1..];
    let (x, y) = coordinates.split_at(coordinates.len() / 2);
    let crv = if x.len() == 32 { "P-256" } else { "P-384" };
    format!(
        r#"{{"kty":"EC","crv":"{crv}","x":"{}","y":"{}"{members}}}"#,
        b64(x),
        b64(y)
    )
}

/// The public JWK of a committed EC key.
fn ec_jwk(name: &str, algorithm: Algorithm, members: &str) -> String {
    let der = pem_to_der(&read_data(&format!("{name}.pk8.pem")));
    ec_point_jwk(&der, algorithm, members)
}

fn ec_point_jwk(pkcs8: &[u8], algorithm: Algorithm, members: &str) -> String {
    ec_jwk_from_point(&ec_point(pkcs8, algorithm), members)
}

fn jwks(keys: &[&str]) -> KeySet {
    KeySet::parse(format!(r#"{{"keys":[{}]}}"#, keys.join(",")).as_bytes()).unwrap()
}

fn jwks_error(keys: &[&str]) -> KeySetError {
    KeySet::parse(format!(r#"{{"keys":[{}]}}"#, keys.join(",")).as_bytes()).unwrap_err()
}

fn oct_jwk(secret: &[u8], members: &str) -> String {
    format!(r#"{{"kty":"oct","k":"{}"{members}}}"#, b64(secret))
}

fn invalid_key_reason(error: KeySetError) -> (usize, Option<String>, String) {
    match error {
        KeySetError::InvalidKey { index, kid, reason } => (index, kid, reason),
        other => panic!("expected InvalidKey, got {other:?}"),
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        STANDARD.encode(der)
    )
}

// ---------------------------------------------------------------------------
// alg none
// ---------------------------------------------------------------------------

#[test]
fn alg_none_is_refused_in_every_spelling_and_with_any_signature() {
    let rsa = verifier(public_keys("rsa2048-a"), "RS256");
    let hmac = hmac_verifier();
    let claims = fresh_claims();
    let headers = [
        r#"{"alg":"none"}"#,
        r#"{"alg":"None"}"#,
        r#"{"alg":"NONE"}"#,
        r#"{"alg":"nOnE"}"#,
        r#"{"alg":"n\u006fne"}"#,
        r#"{"alg":"\u006E\u006F\u004E\u0045"}"#,
        r#"{"typ":"JWT","alg":"none"}"#,
    ];
    let zeros = b64(&[0u8; 256]);
    let signatures = ["", "Z2FyYmFnZQ", "!!not base64!!", zeros.as_str()];
    for header in headers {
        for signature in signatures {
            let token = format!(
                "{}.{}.{signature}",
                b64(header.as_bytes()),
                b64(claims.as_bytes())
            );
            for (name, verifier) in [("RS256", &rsa), ("HS256", &hmac)] {
                assert_eq!(
                    verdict(verifier, &token),
                    denied(Outcome::AlgNotAllowed, "alg none is never accepted"),
                    "{header} with signature {signature:?} against {name}"
                );
            }
        }
    }
    // Near-misses of "none" are unknown algorithms, refused all the same.
    for header in [
        r#"{"alg":"none "}"#,
        r#"{"alg":"nonE\u0000"}"#,
        r#"{"alg":""}"#,
    ] {
        let token = format!("{}.{}.", b64(header.as_bytes()), b64(claims.as_bytes()));
        assert_eq!(
            verdict(&rsa, &token).map_err(Rejection::outcome),
            Err(Outcome::AlgNotAllowed),
            "{header}"
        );
    }
}

// ---------------------------------------------------------------------------
// Algorithm confusion
// ---------------------------------------------------------------------------

#[test]
fn hs256_keyed_with_the_rsa_public_key_is_refused() {
    let spki_pem = read_data("rsa2048-a.spki.pem");
    let pkcs1_pem = read_data("rsa2048-a.pkcs1.pem");
    let jwk = rsa_jwk("rsa2048-a", "");
    let jwk_with_kid = rsa_jwk("rsa2048-a", r#","kid":"rsa-a""#);
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("SPKI PEM text", spki_pem.clone().into_bytes()),
        (
            "SPKI PEM text, trimmed",
            spki_pem.trim_end().as_bytes().to_vec(),
        ),
        ("PKCS#1 PEM text", pkcs1_pem.clone().into_bytes()),
        ("SPKI DER", pem_to_der(&spki_pem)),
        ("PKCS#1 DER", pem_to_der(&pkcs1_pem)),
        ("JWK JSON", jwk.into_bytes()),
        ("JWK JSON with kid", jwk_with_kid.clone().into_bytes()),
    ];
    let pem_set = verifier(public_keys("rsa2048-a"), "RS256");
    let every_public_algorithm = verifier(
        public_keys("rsa2048-a"),
        "RS256,RS384,RS512,PS256,PS384,PS512,ES256,ES384,EdDSA",
    );
    let jwks_set = verifier(jwks(&[&jwk_with_kid]), "RS256");
    for (what, secret) in &secrets {
        let key = SigningKey::hmac(secret);
        let plain = mint(
            r#"{"alg":"HS256","typ":"JWT"}"#,
            &fresh_claims(),
            &key,
            Algorithm::Hs256,
        );
        let with_kid = mint(
            r#"{"alg":"HS256","kid":"rsa-a"}"#,
            &fresh_claims(),
            &key,
            Algorithm::Hs256,
        );
        // The forgery is a perfectly good HS256 token for whoever treats the
        // public key as a secret, so only the confusion defence can refuse it.
        let naive = verifier(KeySet::from_hmac_secret(secret, None).unwrap(), "HS256");
        assert_eq!(verdict(&naive, &plain), Ok(()), "{what}: control");
        for (set, verifier, token) in [
            ("PEM set", &pem_set, &plain),
            ("PEM set, all public algs", &every_public_algorithm, &plain),
            ("JWKS set", &jwks_set, &plain),
            ("JWKS set, kid", &jwks_set, &with_kid),
        ] {
            assert_eq!(
                verdict(verifier, token),
                denied(Outcome::AlgNotAllowed, NOT_ALLOWED),
                "{what} against {set}"
            );
        }
    }
}

#[test]
fn a_public_key_set_cannot_be_paired_with_an_hmac_allow_list() {
    for name in ["rsa2048-a", "p256", "p384", "ed25519"] {
        for list in ["HS256", "RS256,HS256", "ES256,ES384,EdDSA,HS384", "HS512"] {
            let algorithms = AlgorithmSet::parse_list(list).unwrap();
            let result = Verifier::new(public_keys(name), Validation::new(algorithms));
            assert_eq!(
                result.err(),
                Some(VerifierError::KeyTypeMismatch {
                    keys: "public",
                    algorithms
                }),
                "{name} with {list}"
            );
        }
    }
    // And the mirror image: a secret with a public-key allow-list.
    let algorithms = AlgorithmSet::parse_list("HS256,RS256").unwrap();
    let result = Verifier::new(
        KeySet::from_hmac_secret(SECRET, None).unwrap(),
        Validation::new(algorithms),
    );
    assert_eq!(
        result.err(),
        Some(VerifierError::KeyTypeMismatch {
            keys: "symmetric",
            algorithms
        })
    );
}

#[test]
fn a_jwks_mixing_secrets_and_public_keys_is_refused() {
    let rsa = rsa_jwk("rsa2048-a", r#","kid":"rsa""#);
    let ec = ec_jwk("p256", Algorithm::Es256, r#","kid":"ec""#);
    let oct = oct_jwk(SECRET, r#","kid":"oct""#);
    let pkcs8 = pem_to_der(&read_data("ed25519.pk8.pem"));
    let ed_public = signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8)
        .unwrap()
        .public_key()
        .as_ref()
        .to_vec();
    let okp = format!(
        r#"{{"kty":"OKP","crv":"Ed25519","x":"{}","kid":"ed"}}"#,
        b64(&ed_public)
    );
    for keys in [
        vec![&rsa, &oct],
        vec![&oct, &rsa],
        vec![&ec, &oct],
        vec![&okp, &oct],
        vec![&rsa, &ec, &okp, &oct],
    ] {
        let keys: Vec<&str> = keys.into_iter().map(String::as_str).collect();
        assert_eq!(jwks_error(&keys), KeySetError::MixedSymmetry, "{keys:?}");
    }
    // Each half on its own is a fine key set.
    assert_eq!(jwks(&[&rsa, &ec, &okp]).len(), 3);
    assert_eq!(jwks(&[&oct]).len(), 1);
}

#[test]
fn the_key_decides_the_algorithm() {
    let p256 = ec_jwk("p256", Algorithm::Es256, r#","kid":"ec""#);
    let v = verifier(jwks(&[&p256]), "ES256,ES384");
    let p256_key = signing_key("p256", Algorithm::Es256);
    let p384_key = signing_key("p384", Algorithm::Es384);
    let claims = fresh_claims();

    let control = mint(
        r#"{"alg":"ES256","kid":"ec"}"#,
        &claims,
        &p256_key,
        Algorithm::Es256,
    );
    assert_eq!(verdict(&v, &control), Ok(()));
    // ES384 named on a P-256 key, with a real P-384 signature and with the
    // P-256 signature relabelled.
    let es384 = mint(
        r#"{"alg":"ES384","kid":"ec"}"#,
        &claims,
        &p384_key,
        Algorithm::Es384,
    );
    assert_eq!(
        verdict(&v, &es384),
        denied(Outcome::AlgNotAllowed, BOUND_ELSEWHERE)
    );
    let relabelled = sign_segments(
        &b64(br#"{"alg":"ES384","kid":"ec"}"#),
        &b64(claims.as_bytes()),
        &p256_key,
        Algorithm::Es256,
    );
    assert_eq!(
        verdict(&v, &relabelled),
        denied(Outcome::AlgNotAllowed, BOUND_ELSEWHERE)
    );
    // Without a kid the key is looked up by algorithm, and no P-256 key fits ES384.
    let es384_no_kid = mint(r#"{"alg":"ES384"}"#, &claims, &p384_key, Algorithm::Es384);
    assert_eq!(
        verdict(&v, &es384_no_kid),
        denied(Outcome::UnknownKid, NO_KID_NO_KEY)
    );

    // A JWK's own alg narrows an RSA key to exactly that algorithm.
    let rsa = rsa_jwk("rsa2048-a", r#","kid":"rsa","alg":"RS256""#);
    let v = verifier(jwks(&[&rsa]), "RS256,PS256");
    let rsa_key = signing_key("rsa2048-a", Algorithm::Ps256);
    let ps256 = mint(
        r#"{"alg":"PS256","kid":"rsa"}"#,
        &claims,
        &rsa_key,
        Algorithm::Ps256,
    );
    assert_eq!(
        verdict(&v, &ps256),
        denied(Outcome::AlgNotAllowed, BOUND_ELSEWHERE)
    );
    let rs256 = mint(
        r#"{"alg":"RS256","kid":"rsa"}"#,
        &claims,
        &rsa_key,
        Algorithm::Rs256,
    );
    assert_eq!(verdict(&v, &rs256), Ok(()));
}

// ---------------------------------------------------------------------------
// Keys embedded in the header
// ---------------------------------------------------------------------------

/// Header members that carry or point at the attacker's key.
fn embedded_key_members(
    attacker_jwk: &str,
    attacker_spki_der: &[u8],
) -> Vec<(&'static str, String)> {
    let x5c = STANDARD.encode(attacker_spki_der);
    vec![
        ("jwk", format!(r#""jwk":{attacker_jwk}"#)),
        (
            "jku",
            r#""jku":"https://attacker.example/jwks.json""#.to_owned(),
        ),
        (
            "x5u",
            r#""x5u":"https://attacker.example/cert.pem""#.to_owned(),
        ),
        ("x5c", format!(r#""x5c":["{x5c}"]"#)),
        (
            "all of them",
            format!(
                r#""jwk":{attacker_jwk},"jku":"https://attacker.example/jwks.json","x5u":"https://attacker.example/cert.pem","x5c":["{x5c}"],"x5t#S256":"AAAA""#
            ),
        ),
    ]
}

fn assert_embedded_keys_are_ignored(
    v: &Verifier,
    algorithm: Algorithm,
    our_kid: &str,
    ours: &SigningKey,
    attacker: &SigningKey,
    members: &[(&'static str, String)],
) {
    let claims = fresh_claims();
    for (what, member) in members {
        for (kid, expected) in [
            (Some(our_kid), bad_signature()),
            (None, bad_signature()),
            (Some("attacker-1"), denied(Outcome::UnknownKid, NO_SUCH_KID)),
        ] {
            let kid_member = kid.map_or_else(String::new, |kid| format!(r#","kid":"{kid}""#));
            let header = format!(r#"{{"alg":"{algorithm}",{member}{kid_member}}}"#);
            let forged = mint(&header, &claims, attacker, algorithm);
            assert_eq!(
                verdict(v, &forged),
                expected,
                "{algorithm}: {what}, kid {kid:?}"
            );
        }
        // The same header on a token our key signed is accepted: the members are
        // inert, so the refusals above come from the signature alone.
        let header = format!(r#"{{"alg":"{algorithm}",{member},"kid":"{our_kid}"}}"#);
        let genuine = mint(&header, &claims, ours, algorithm);
        assert_eq!(verdict(v, &genuine), Ok(()), "{algorithm}: {what}, control");
    }
}

#[test]
fn keys_embedded_in_the_header_are_never_trusted_rsa() {
    let v = verifier(jwks(&[&rsa_jwk("rsa2048-a", r#","kid":"ours""#)]), "RS256");
    let attacker_jwk = rsa_jwk("rsa2048-b", "");
    let mut members =
        embedded_key_members(&attacker_jwk, &pem_to_der(&read_data("rsa2048-b.spki.pem")));
    // The attacker's JWK may even claim our kid.
    members.push((
        "jwk claiming our kid",
        format!(r#""jwk":{}"#, rsa_jwk("rsa2048-b", r#","kid":"ours""#)),
    ));
    assert_embedded_keys_are_ignored(
        &v,
        Algorithm::Rs256,
        "ours",
        &signing_key("rsa2048-a", Algorithm::Rs256),
        &signing_key("rsa2048-b", Algorithm::Rs256),
        &members,
    );
}

#[test]
fn keys_embedded_in_the_header_are_never_trusted_ec() {
    let v = verifier(
        jwks(&[&ec_jwk("p256", Algorithm::Es256, r#","kid":"ours""#)]),
        "ES256",
    );
    let rng = ring::rand::SystemRandom::new();
    let attacker_pkcs8 =
        signature::EcdsaKeyPair::generate_pkcs8(ecdsa_signing(Algorithm::Es256), &rng).unwrap();
    let attacker = SigningKey::from_pkcs8(Algorithm::Es256, attacker_pkcs8.as_ref()).unwrap();
    let attacker_point = ec_point(attacker_pkcs8.as_ref(), Algorithm::Es256);
    let attacker_jwk = ec_jwk_from_point(&attacker_point, "");
    // An SPKI for the attacker's point, as it would sit in a certificate.
    let mut spki = hex("3059301306072a8648ce3d020106082a8648ce3d030107034200");
    spki.extend_from_slice(&attacker_point);
    let mut members = embedded_key_members(&attacker_jwk, &spki);
    members.push((
        "jwk claiming our kid",
        format!(
            r#""jwk":{}"#,
            ec_jwk_from_point(&attacker_point, r#","kid":"ours""#)
        ),
    ));
    assert_embedded_keys_are_ignored(
        &v,
        Algorithm::Es256,
        "ours",
        &signing_key("p256", Algorithm::Es256),
        &attacker,
        &members,
    );
}

// ---------------------------------------------------------------------------
// kid tricks
// ---------------------------------------------------------------------------

#[test]
fn kid_selects_exactly_one_key_and_is_never_interpreted() {
    let v = verifier(
        jwks(&[
            &oct_jwk(SECRET, r#","kid":"2024/key-1""#),
            &oct_jwk(OTHER_SECRET, r#","kid":"key-2""#),
        ]),
        "HS256",
    );
    let claims = fresh_claims();
    let ours = hmac_key();
    let header_with_kid = |kid: &str| format!(r#"{{"alg":"HS256","kid":{kid}}}"#);

    assert_eq!(
        verdict(&v, &hs256(&header_with_kid(r#""2024/key-1""#), &claims)),
        Ok(())
    );
    // Escapes are JSON syntax, not part of the kid: these name the real key.
    for escaped in [
        r#""2024\/key-1""#,
        r#""2024/key-\u0031""#,
        r#""\u0032\u0030\u0032\u0034\u002f\u006b\u0065\u0079\u002d\u0031""#,
    ] {
        assert_eq!(
            verdict(&v, &hs256(&header_with_kid(escaped), &claims)),
            Ok(()),
            "{escaped}"
        );
    }

    // The classic payloads expect a file, a query or a wildcard behind the kid;
    // the forgeries are signed with what that lookup would have returned (an
    // empty file) and with our real secret, which must not help either: a kid
    // that names no key never falls back to trying the keys there are.
    let long_kid = format!(r#""{}""#, "k".repeat(10_000));
    let unknown = [
        r#""../../dev/null""#,
        r#""/dev/null""#,
        r#""../../../../../../etc/passwd""#,
        r#""' OR 1=1 --""#,
        r#""x' UNION SELECT 'AAAA""#,
        r#""""#,
        r#""*""#,
        r#""KEY-2""#,
        r#""key-2 ""#,
        r#""key-2\u0000""#,
        r#""2024/key-1/../key-2""#,
        long_kid.as_str(),
    ];
    for kid in unknown {
        for key in [SigningKey::hmac(b""), hmac_key()] {
            let token = mint(&header_with_kid(kid), &claims, &key, Algorithm::Hs256);
            assert_eq!(
                verdict(&v, &token),
                denied(Outcome::UnknownKid, NO_SUCH_KID),
                "kid {}",
                &kid[..kid.len().min(40)]
            );
        }
    }
    // A real kid with the wrong secret selects that key and fails on it.
    assert_eq!(
        verdict(&v, &hs256(&header_with_kid(r#""key-2""#), &claims)),
        bad_signature()
    );
    for kid in ["7", "null", "true", r#"{"kid":"key-2"}"#, r#"["key-2"]"#] {
        let token = mint(&header_with_kid(kid), &claims, &ours, Algorithm::Hs256);
        assert_eq!(
            verdict(&v, &token),
            malformed("header kid is not a string"),
            "kid {kid}"
        );
    }
}

// ---------------------------------------------------------------------------
// ECDSA
// ---------------------------------------------------------------------------

const P256_ORDER: &str = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";
const P384_ORDER: &str = "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973";

fn der_integer(unsigned: &[u8]) -> Vec<u8> {
    let first = unsigned
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(unsigned.len() - 1);
    let mut body = unsigned[first..].to_vec();
    if body[0] & 0x80 != 0 {
        body.insert(0, 0);
    }
    let mut out = vec![0x02, u8::try_from(body.len()).unwrap()];
    out.extend(body);
    out
}

/// JOSE's fixed-width `r || s` re-encoded as the DER `SEQUENCE { r, s }` that
/// other ECDSA APIs produce.
fn der_signature(fixed: &[u8]) -> Vec<u8> {
    let (r, s) = fixed.split_at(fixed.len() / 2);
    let mut body = der_integer(r);
    body.extend(der_integer(s));
    let mut out = vec![0x30];
    let length = u8::try_from(body.len()).unwrap();
    if length >= 0x80 {
        out.push(0x81);
    }
    out.push(length);
    out.extend(body);
    out
}

#[test]
fn degenerate_and_misencoded_ecdsa_signatures_are_refused() {
    for (name, algorithm, order, asn1) in [
        (
            "p256",
            Algorithm::Es256,
            P256_ORDER,
            &signature::ECDSA_P256_SHA256_ASN1,
        ),
        (
            "p384",
            Algorithm::Es384,
            P384_ORDER,
            &signature::ECDSA_P384_SHA384_ASN1,
        ),
    ] {
        let v = verifier(public_keys(name), algorithm.name());
        let token = mint(
            &format!(r#"{{"alg":"{algorithm}"}}"#),
            &fresh_claims(),
            &signing_key(name, algorithm),
            algorithm,
        );
        assert_eq!(verdict(&v, &token), Ok(()), "{name}: control");
        let valid = signature_bytes(&token);
        let width = valid.len() / 2;
        let (r, s) = valid.split_at(width);
        let n = hex(order);
        let zero = vec![0u8; width];
        let ones = vec![0xffu8; width];
        let der = der_signature(&valid);
        // The DER form really is the same signature, to an ASN.1 ECDSA verifier.
        let der_pem = pem_to_der(&read_data(&format!("{name}.spki.pem")));
        let point = &der_pem[der_pem.len() - (2 * width + 1)..];
        let (header, payload, _) = split3(&token);
        signature::UnparsedPublicKey::new(asn1, point)
            .verify(format!("{header}.{payload}").as_bytes(), &der)
            .unwrap();
        assert_ne!(der.len(), valid.len(), "{name}: DER length collides");

        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("r = s = 0", [zero.clone(), zero.clone()].concat()),
            ("r = s = n", [n.clone(), n.clone()].concat()),
            ("r = 0", [zero.clone(), s.to_vec()].concat()),
            ("s = 0", [r.to_vec(), zero.clone()].concat()),
            ("r = n", [n.clone(), s.to_vec()].concat()),
            ("s = n", [r.to_vec(), n.clone()].concat()),
            ("r = s = 2^k - 1", [ones.clone(), ones].concat()),
            ("DER", der),
            ("one byte short", valid[..valid.len() - 1].to_vec()),
            ("one byte long", [valid.clone(), vec![0]].concat()),
            ("leading zero", [vec![0], valid.clone()].concat()),
            ("r alone", r.to_vec()),
            ("empty", Vec::new()),
        ];
        for (what, forged) in cases {
            assert_eq!(
                verdict(&v, &with_signature(&token, &forged)),
                bad_signature(),
                "{name}: {what}"
            );
        }
    }
}

#[test]
fn signatures_of_the_wrong_length_are_refused() {
    let cases = [
        ("rsa2048-a", Algorithm::Rs256, 256),
        ("ed25519", Algorithm::EdDsa, 64),
    ];
    let hmac = hmac_verifier();
    let hmac_token = hs256(r#"{"alg":"HS256"}"#, &fresh_claims());
    let mut checked = vec![(hmac, hmac_token, 32usize)];
    for (name, algorithm, length) in cases {
        let token = mint(
            &format!(r#"{{"alg":"{algorithm}"}}"#),
            &fresh_claims(),
            &signing_key(name, algorithm),
            algorithm,
        );
        checked.push((verifier(public_keys(name), algorithm.name()), token, length));
    }
    for (v, token, length) in &checked {
        assert_eq!(
            verdict(v, token),
            Ok(()),
            "control, {length}-byte signature"
        );
        let valid = signature_bytes(token);
        assert_eq!(valid.len(), *length);
        for (what, forged) in [
            ("one byte short", valid[..length - 1].to_vec()),
            ("one byte long", [valid.clone(), vec![0]].concat()),
            // Same integer for RSA, so only the length check can refuse it.
            ("leading zero byte", [vec![0], valid.clone()].concat()),
            ("half", valid[..length / 2].to_vec()),
            ("doubled", [valid.clone(), valid.clone()].concat()),
            ("empty", Vec::new()),
        ] {
            assert_eq!(
                verdict(v, &with_signature(token, &forged)),
                bad_signature(),
                "{length}-byte signature: {what}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// crit and b64
// ---------------------------------------------------------------------------

#[test]
fn crit_and_b64_are_refused_even_when_properly_signed() {
    let v = hmac_verifier();
    let claims = fresh_claims();
    assert_eq!(
        verdict(&v, &hs256(r#"{"alg":"HS256","typ":"JWT"}"#, &claims)),
        Ok(())
    );
    for header in [
        r#"{"alg":"HS256","kid":"k","crit":["kid"]}"#,
        r#"{"alg":"HS256","crit":["urn:example:unknown"],"urn:example:unknown":true}"#,
        r#"{"alg":"HS256","crit":[]}"#,
        r#"{"alg":"HS256","crit":["exp"],"exp":1}"#,
        r#"{"alg":"HS256","crit":"urn:example:unknown"}"#,
        r#"{"alg":"HS256","crit":null}"#,
        r#"{"alg":"HS256","b64":false,"crit":["b64"]}"#,
        r#"{"alg":"HS256","\u0063rit":["urn:example:unknown"]}"#,
    ] {
        assert_eq!(
            verdict(&v, &hs256(header, &claims)),
            denied(Outcome::UnsupportedCrit, CRIT),
            "{header}"
        );
    }
    for header in [
        r#"{"alg":"HS256","b64":false}"#,
        r#"{"alg":"HS256","b64":true}"#,
        r#"{"alg":"HS256","b\u0036\u0034":false}"#,
    ] {
        assert_eq!(
            verdict(&v, &hs256(header, &claims)),
            denied(Outcome::UnsupportedCrit, B64),
            "{header}"
        );
    }
}

// ---------------------------------------------------------------------------
// Strict base64url
// ---------------------------------------------------------------------------

const URL_ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The segment with the lowest unused bit of its last character set: the same
/// bytes to a lenient decoder, a different text to the signature.
fn with_trailing_bit_set(segment: &str) -> String {
    assert_ne!(segment.len() % 4, 0, "{segment} has no unused bits");
    let mut bytes = segment.as_bytes().to_vec();
    let last = bytes.last_mut().unwrap();
    let value = URL_ALPHABET.iter().position(|c| c == last).unwrap();
    *last = URL_ALPHABET[value | 1];
    let altered = String::from_utf8(bytes).unwrap();
    assert_ne!(altered, segment);
    altered
}

/// What a lenient decoder (padding optional, trailing bits ignored) makes of a segment.
fn lenient_decode(segment: &str) -> Vec<u8> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    let lenient = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    lenient.decode(segment).unwrap()
}

/// A valid HS256 token whose three segments each use both `-` and `_` and each
/// leave unused bits in their last character, so every alteration applies.
fn token_exercising_the_alphabet() -> (String, String, String) {
    let header = b64(br#"{"alg":"HS256","x":"?>?>"}"#);
    let exercises = |segment: &str| {
        segment.contains('-') && segment.contains('_') && !segment.len().is_multiple_of(4)
    };
    assert!(exercises(&header), "{header}");
    for jti in 0..10_000 {
        let claims = format!(r#"{{"exp":{},"x":"?>?>~~","jti":"{jti}"}}"#, NOW.0 + 3600);
        let payload = b64(claims.as_bytes());
        let token = sign_segments(&header, &payload, &hmac_key(), Algorithm::Hs256);
        let signature = split3(&token).2.to_owned();
        if exercises(&payload) && exercises(&signature) {
            return (header, payload, signature);
        }
    }
    panic!("no claims set exercised the whole alphabet");
}

fn alterations(segment: &str) -> Vec<(&'static str, String)> {
    let padding = "=".repeat((4 - segment.len() % 4) % 4);
    let middle = segment.len() / 2;
    let (front, back) = segment.split_at(middle);
    vec![
        ("correct padding", format!("{segment}{padding}")),
        ("one pad character", format!("{segment}=")),
        ("'+' for '-'", segment.replacen('-', "+", 1)),
        ("'/' for '_'", segment.replacen('_', "/", 1)),
        ("space inside", format!("{front} {back}")),
        ("line break inside", format!("{front}\r\n{back}")),
        ("tab inside", format!("{front}\t{back}")),
        ("leading space", format!(" {segment}")),
        ("trailing newline", format!("{segment}\n")),
        ("percent-encoded '-'", segment.replacen('-', "%2D", 1)),
        ("unused bits set", with_trailing_bit_set(segment)),
        (
            "dangling character",
            format!(
                "{segment}{}",
                if segment.len() % 4 == 3 { "AA" } else { "A" }
            ),
        ),
    ]
}

#[test]
fn non_canonical_base64url_is_refused_in_every_segment() {
    let v = hmac_verifier();
    let key = hmac_key();
    let (header, payload, signature) = token_exercising_the_alphabet();
    assert_eq!(
        verdict(&v, &format!("{header}.{payload}.{signature}")),
        Ok(())
    );
    for (what, altered) in alterations(&header) {
        assert_ne!(altered, header, "{what}");
        // Re-signed: the signature covers the altered text.
        let token = sign_segments(&altered, &payload, &key, Algorithm::Hs256);
        assert_eq!(
            verdict(&v, &token),
            malformed("header is not strict base64url"),
            "header: {what}"
        );
    }
    for (what, altered) in alterations(&payload) {
        assert_ne!(altered, payload, "{what}");
        let token = sign_segments(&header, &altered, &key, Algorithm::Hs256);
        assert_eq!(
            verdict(&v, &token),
            malformed("payload is not strict base64url"),
            "payload: {what}"
        );
    }
    for (what, altered) in alterations(&signature) {
        assert_ne!(altered, signature, "{what}");
        let token = format!("{header}.{payload}.{altered}");
        assert_eq!(
            verdict(&v, &token),
            malformed("signature is not strict base64url"),
            "signature: {what}"
        );
    }
}

#[test]
fn unused_trailing_bits_cannot_make_a_second_spelling_of_a_segment() {
    let v = hmac_verifier();
    let key = hmac_key();
    let (header, payload, signature) = token_exercising_the_alphabet();

    // Header: to a lenient decoder the altered text is the very same header, and
    // the signature over the altered text is genuine. It must still be refused.
    let altered_header = with_trailing_bit_set(&header);
    assert_eq!(lenient_decode(&altered_header), lenient_decode(&header));
    let resigned = sign_segments(&altered_header, &payload, &key, Algorithm::Hs256);
    assert_eq!(
        verdict(&v, &resigned),
        malformed("header is not strict base64url")
    );
    let spliced = format!("{altered_header}.{payload}.{signature}");
    assert_eq!(
        verdict(&v, &spliced),
        malformed("header is not strict base64url")
    );

    let altered_payload = with_trailing_bit_set(&payload);
    assert_eq!(lenient_decode(&altered_payload), lenient_decode(&payload));
    let resigned = sign_segments(&header, &altered_payload, &key, Algorithm::Hs256);
    assert_eq!(
        verdict(&v, &resigned),
        malformed("payload is not strict base64url")
    );

    // Signature: the signing input is untouched and the decoded MAC is the valid
    // one, so a lenient engine would call this token valid.
    let altered_signature = with_trailing_bit_set(&signature);
    assert_eq!(
        lenient_decode(&altered_signature),
        lenient_decode(&signature)
    );
    assert_eq!(
        verdict(&v, &format!("{header}.{payload}.{altered_signature}")),
        malformed("signature is not strict base64url")
    );
}

// ---------------------------------------------------------------------------
// Duplicate members and hostile JSON
// ---------------------------------------------------------------------------

#[test]
fn duplicate_members_are_refused_even_with_a_valid_signature() {
    let v = hmac_verifier();
    let exp = NOW.0 + 3600;
    let past = NOW.0 - 3600;
    for header in [
        r#"{"alg":"HS256","alg":"HS256"}"#,
        r#"{"alg":"HS256","\u0061lg":"HS256"}"#,
        r#"{"\u0061lg":"none","alg":"HS256"}"#,
        r#"{"alg":"HS256","alg":"none"}"#,
        r#"{"alg":"HS256","kid":"a","kid":"b"}"#,
    ] {
        assert_eq!(
            verdict(&v, &hs256(header, &fresh_claims())),
            malformed("header repeats a member name"),
            "{header}"
        );
    }
    // Wide objects take the hashed duplicate check rather than the pairwise one.
    let wide: String = (0..40).map(|i| format!(r#""c{i}":{i},"#)).collect();
    for claims in [
        format!(r#"{{"exp":{exp},"exp":{exp}}}"#),
        format!(r#"{{"exp":{past},"exp":{exp}}}"#),
        format!(r#"{{"exp":{exp},"exp":{past}}}"#),
        format!(r#"{{"exp":{exp},"\u0065xp":{exp}}}"#),
        format!(r#"{{"sub":"alice","exp":{exp},"sub":"admin"}}"#),
        format!(r#"{{"s\u0075b":"alice","exp":{exp},"sub":"admin"}}"#),
        format!(r#"{{"exp":{exp},"aud":"a","aud":"b"}}"#),
        format!(r#"{{"exp":{exp},"roles":{{"admin":false,"admin":true}}}}"#),
        format!(r#"{{{wide}"exp":{exp},"c7":"again"}}"#),
    ] {
        assert_eq!(
            verdict(&v, &hs256(r#"{"alg":"HS256"}"#, &claims)),
            malformed("claims repeat a member name"),
            "{claims}"
        );
    }
    assert_eq!(
        verdict(
            &v,
            &hs256(r#"{"alg":"HS256"}"#, &format!(r#"{{{wide}"exp":{exp}}}"#))
        ),
        Ok(()),
        "wide control"
    );
}

#[test]
fn escaped_claim_names_are_the_claims_they_spell() {
    let v = hmac_verifier();
    let past = NOW.0 - 3600;
    let future = NOW.0 + 3600;
    // An escaped spelling must not hide a claim from the checks.
    assert_eq!(
        verdict(
            &v,
            &hs256(r#"{"alg":"HS256"}"#, &format!(r#"{{"\u0065xp":{past}}}"#))
        ),
        denied(Outcome::Expired, "exp has passed")
    );
    assert_eq!(
        verdict(
            &v,
            &hs256(
                r#"{"alg":"HS256"}"#,
                &format!(r#"{{"exp":{future},"n\u0062f":{future}}}"#)
            )
        ),
        denied(Outcome::NotYetValid, "nbf has not been reached")
    );
    assert_eq!(
        verdict(
            &v,
            &hs256(
                r#"{"alg":"HS256"}"#,
                &format!(r#"{{"exp":{future},"\u0061\u0075\u0064":"other-api"}}"#)
            )
        ),
        denied(
            Outcome::WrongAudience,
            "token has aud but no audience is configured"
        )
    );
    let subject = hmac_verifier_with(|v| v.subject(jwtgate::SubjectMatch::Exact("admin".into())));
    assert_eq!(
        verdict(
            &subject,
            &hs256(
                r#"{"alg":"HS256"}"#,
                &format!(r#"{{"exp":{future},"s\u0075b":"adm\u0069n"}}"#)
            )
        ),
        Ok(())
    );
    assert_eq!(
        verdict(
            &subject,
            &hs256(
                r#"{"alg":"HS256"}"#,
                &format!(r#"{{"exp":{future},"s\u0075b":"admin\u0000"}}"#)
            )
        ),
        denied(
            Outcome::WrongSubject,
            "sub does not match the configured subject"
        )
    );
}

fn raw_token(header: &[u8], claims: &[u8]) -> String {
    sign_segments(&b64(header), &b64(claims), &hmac_key(), Algorithm::Hs256)
}

fn nested_claims(depth: usize) -> String {
    format!(
        r#"{{"exp":{},"n":{}{}}}"#,
        NOW.0 + 3600,
        "[".repeat(depth),
        "]".repeat(depth)
    )
}

#[test]
fn hostile_json_is_refused() {
    let v = hmac_verifier();
    let header = br#"{"alg":"HS256"}"#;
    let exp = NOW.0 + 3600;
    let claims = fresh_claims();

    let with_bom = |json: &[u8]| [b"\xEF\xBB\xBF".as_slice(), json].concat();
    assert_eq!(
        verdict(&v, &raw_token(&with_bom(header), claims.as_bytes())),
        malformed("header starts with a byte-order mark")
    );
    assert_eq!(
        verdict(&v, &raw_token(header, &with_bom(claims.as_bytes()))),
        malformed("payload starts with a byte-order mark")
    );

    let cases: Vec<(String, &str)> = vec![
        (
            format!(r#"{{"exp":{exp},"sub":"\ud800"}}"#),
            "claims have a lone surrogate escape",
        ),
        (
            format!(r#"{{"exp":{exp},"sub":"\udc00"}}"#),
            "claims have a lone surrogate escape",
        ),
        (
            format!(r#"{{"exp":{exp},"sub":"\ud800\u0041"}}"#),
            "claims have a lone surrogate escape",
        ),
        (
            format!(r#"{{"exp":{exp},"sub":"\ud800x"}}"#),
            "claims have a lone surrogate escape",
        ),
        (
            format!(r#"{{"exp":{exp},"\udfff":1}}"#),
            "claims have a lone surrogate escape",
        ),
        (nested_claims(16), "claims JSON is nested too deep"),
        (
            format!(r#"["exp",{exp}]"#),
            "payload is not a JSON object, so the token is not a JWT",
        ),
        (
            "null".to_owned(),
            "payload is not a JSON object, so the token is not a JWT",
        ),
        (
            format!("{exp}"),
            "payload is not a JSON object, so the token is not a JWT",
        ),
        (
            r#""a string""#.to_owned(),
            "payload is not a JSON object, so the token is not a JWT",
        ),
        (
            format!("{claims}x"),
            "payload has data after the JSON object",
        ),
        (
            format!("{claims}{claims}"),
            "payload has data after the JSON object",
        ),
        (
            format!("{claims}\u{0}"),
            "payload has data after the JSON object",
        ),
        (
            format!("{{\"exp\":{exp},\"sub\":\"a\tb\"}}"),
            "claims have a control character in a string",
        ),
        (
            format!(r#"{{"exp":{exp},"sub":"\x41"}}"#),
            "claims have an invalid JSON escape",
        ),
        (
            format!(r#"{{"exp":{exp},"sub":"\u00g0"}}"#),
            "claims have an invalid JSON escape",
        ),
        (
            format!(r#"{{"exp":{exp},}}"#),
            "payload is not JSON, so the token is not a JWT",
        ),
        (
            format!("{{'exp':{exp}}}"),
            "payload is not JSON, so the token is not a JWT",
        ),
        (
            format!(r#"{{"exp":{exp},"n":NaN}}"#),
            "payload is not JSON, so the token is not a JWT",
        ),
        (
            format!(r#"{{"exp":{exp} /* c */}}"#),
            "payload is not JSON, so the token is not a JWT",
        ),
        (
            format!(r#"{{"exp":0{exp}}}"#),
            "payload is not JSON, so the token is not a JWT",
        ),
        (
            String::new(),
            "payload is not JSON, so the token is not a JWT",
        ),
    ];
    for (claims, detail) in &cases {
        assert_eq!(
            verdict(&v, &raw_token(header, claims.as_bytes())),
            malformed(detail),
            "{claims}"
        );
    }

    // Surrogates smuggled as raw bytes (CESU-8) and overlong forms are not UTF-8.
    for bytes in [&b"\xED\xA0\x80"[..], &b"\xC0\xAF"[..], &b"\xFF"[..]] {
        let prefix = format!(r#"{{"exp":{exp},"sub":""#);
        let claims = [prefix.as_bytes(), bytes, &b"\"}"[..]].concat();
        assert_eq!(
            verdict(&v, &raw_token(header, &claims)),
            malformed("payload is not UTF-8"),
            "{bytes:?}"
        );
    }

    // One level inside the default depth of 16 is fine; the top-level object
    // counts as the first level.
    assert_eq!(
        verdict(&v, &raw_token(header, nested_claims(15).as_bytes())),
        Ok(())
    );
    let nested_header = format!(
        r#"{{"alg":"HS256","x":{}{}}}"#,
        "[".repeat(16),
        "]".repeat(16)
    );
    assert_eq!(
        verdict(&v, &raw_token(nested_header.as_bytes(), claims.as_bytes())),
        malformed("header JSON is nested too deep")
    );
    // A configured depth beyond the parser's fixed stack is capped, not obeyed.
    let permissive = hmac_verifier_with(|v| v.max_json_depth(1_000_000));
    assert_eq!(
        verdict(
            &permissive,
            &raw_token(header, nested_claims(5_000).as_bytes())
        ),
        malformed("claims JSON is nested too deep")
    );
}

// ---------------------------------------------------------------------------
// Structure and size
// ---------------------------------------------------------------------------

#[test]
fn token_structure_is_checked_before_content() {
    let v = hmac_verifier();
    let token = hs256(r#"{"alg":"HS256"}"#, &fresh_claims());
    assert_eq!(verdict(&v, &token), Ok(()));
    let (header, payload, signature) = split3(&token);
    let jwe_header = b64(br#"{"alg":"RSA-OAEP","enc":"A256GCM"}"#);
    for jwe in [
        format!("{jwe_header}.a2V5.aXY.Y2lwaGVy.dGFn"),
        // Direct key agreement leaves the encrypted-key segment empty.
        format!("{jwe_header}..aXY.Y2lwaGVy.dGFn"),
        format!("{header}.{payload}.{signature}.{payload}.{signature}"),
        "....".to_owned(),
    ] {
        assert_eq!(
            verdict(&v, &jwe),
            malformed("encrypted tokens are not supported"),
            "{jwe}"
        );
    }
    const NOT_COMPACT: &str =
        "not a compact JWS: expected three base64url segments separated by dots";
    for shape in [
        header.to_owned(),
        format!("{header}.{payload}"),
        format!("{header}.{payload}.{signature}."),
        format!("{header}.{payload}.{signature}.{signature}"),
        format!("{header}.{payload}.{signature}.a.b.c"),
        format!("{header}.{payload}.{signature}.a.b.c.d"),
    ] {
        assert_eq!(verdict(&v, &shape), malformed(NOT_COMPACT), "{shape}");
    }
    assert_eq!(
        verdict(&v, &format!(".{payload}.{signature}")),
        malformed("empty header segment")
    );
    assert_eq!(verdict(&v, ""), malformed("empty token"));
    // A token's segments are not interchangeable.
    assert_eq!(
        verdict(&v, &format!("{payload}.{header}.{signature}")).map_err(Rejection::outcome),
        Err(Outcome::Malformed)
    );
}

#[test]
fn oversized_tokens_are_refused_before_anything_is_decoded() {
    const TOO_LARGE: &str = "token is longer than the configured limit";
    let v = hmac_verifier();
    let limit = v.validation().token_limit();
    assert_eq!(limit, 16 * 1024);

    let token = hs256(r#"{"alg":"HS256"}"#, &fresh_claims());
    let exact = hmac_verifier_with(|v| v.max_token_len(token.len()));
    assert_eq!(verdict(&exact, &token), Ok(()), "a token at the limit");
    let short = hmac_verifier_with(|v| v.max_token_len(token.len() - 1));
    assert_eq!(
        verdict(&short, &token),
        denied(Outcome::TokenTooLarge, TOO_LARGE)
    );

    // A genuinely signed, otherwise valid token just over the default limit.
    let filler = "x".repeat(limit * 3 / 4);
    let big = hs256(
        r#"{"alg":"HS256"}"#,
        &format!(r#"{{"exp":{},"filler":"{filler}"}}"#, NOW.0 + 3600),
    );
    assert!(big.len() > limit);
    let roomy = hmac_verifier_with(|v| v.max_token_len(big.len()));
    assert_eq!(verdict(&roomy, &big), Ok(()), "big token, raised limit");
    assert_eq!(verdict(&v, &big), denied(Outcome::TokenTooLarge, TOO_LARGE));

    // Pure garbage: one byte over the limit is judged by its length alone, while
    // the same garbage at the limit gets as far as the structure check.
    for byte in [b'x', 0xFF, b'.', 0] {
        let over = vec![byte; limit + 1];
        assert_eq!(
            verdict_at(&v, &over, NOW),
            denied(Outcome::TokenTooLarge, TOO_LARGE),
            "byte {byte:#04x}"
        );
        let at = vec![byte; limit];
        assert_eq!(
            verdict_at(&v, &at, NOW).map_err(Rejection::outcome),
            Err(Outcome::Malformed),
            "byte {byte:#04x}"
        );
    }
}

// ---------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------

fn time_verdict(v: &Verifier, claims: &str) -> Result<(), Outcome> {
    verdict(v, &hs256(r#"{"alg":"HS256"}"#, claims)).map_err(Rejection::outcome)
}

#[test]
fn time_edges_with_the_default_leeway() {
    let v = hmac_verifier();
    assert_eq!(v.validation().leeway_seconds(), 60);
    let now = NOW.0;
    let exp = now + 3600;
    let cases: Vec<(String, Result<(), Outcome>)> = vec![
        (format!(r#"{{"exp":{}}}"#, now + 1), Ok(())),
        (format!(r#"{{"exp":{now}}}"#), Ok(())),
        (format!(r#"{{"exp":{}}}"#, now - 59), Ok(())),
        (format!(r#"{{"exp":{}}}"#, now - 60), Err(Outcome::Expired)),
        (format!(r#"{{"exp":{}}}"#, now - 61), Err(Outcome::Expired)),
        (format!(r#"{{"exp":{}.5}}"#, now - 60), Ok(())),
        (
            format!(r#"{{"exp":{}.5}}"#, now - 61),
            Err(Outcome::Expired),
        ),
        (format!(r#"{{"exp":{exp},"nbf":{now}}}"#), Ok(())),
        (format!(r#"{{"exp":{exp},"nbf":{}}}"#, now + 60), Ok(())),
        (
            format!(r#"{{"exp":{exp},"nbf":{}}}"#, now + 61),
            Err(Outcome::NotYetValid),
        ),
        (
            format!(r#"{{"exp":{exp},"nbf":{}.5}}"#, now + 60),
            Err(Outcome::NotYetValid),
        ),
        (format!(r#"{{"exp":{exp},"iat":{now}}}"#), Ok(())),
        (format!(r#"{{"exp":{exp},"iat":{}}}"#, now + 60), Ok(())),
        (
            format!(r#"{{"exp":{exp},"iat":{}}}"#, now + 61),
            Err(Outcome::IssuedInFuture),
        ),
        (
            format!(r#"{{"exp":{exp},"iat":{}.5}}"#, now + 60),
            Err(Outcome::IssuedInFuture),
        ),
        // Exponent notation is a NumericDate too: 1.7000036e9 is exp.
        (r#"{"exp":1.7000036e9}"#.to_owned(), Ok(())),
        (r#"{"exp":1.7e9}"#.to_owned(), Ok(())),
        (r#"{"exp":1.69999994e9}"#.to_owned(), Err(Outcome::Expired)),
    ];
    for (claims, expected) in cases {
        assert_eq!(time_verdict(&v, &claims), expected, "{claims}");
    }

    // The same token judged as the clock moves: valid until now == exp + 60.
    let token = hs256(r#"{"alg":"HS256"}"#, &format!(r#"{{"exp":{now}}}"#));
    for (at, expected) in [
        (now - 1, Ok(())),
        (now, Ok(())),
        (now + 59, Ok(())),
        (now + 60, Err(Outcome::Expired)),
        (now + 61, Err(Outcome::Expired)),
    ] {
        assert_eq!(
            verdict_at(&v, token.as_bytes(), UnixTime(at)).map_err(Rejection::outcome),
            expected,
            "now = exp {:+}",
            at - now
        );
    }
    let token = hs256(
        r#"{"alg":"HS256"}"#,
        &format!(r#"{{"exp":{},"nbf":{now}}}"#, now + 3600),
    );
    for (at, expected) in [
        (now - 61, Err(Outcome::NotYetValid)),
        (now - 60, Ok(())),
        (now, Ok(())),
    ] {
        assert_eq!(
            verdict_at(&v, token.as_bytes(), UnixTime(at)).map_err(Rejection::outcome),
            expected,
            "now = nbf {:+}",
            at - now
        );
    }
}

#[test]
fn time_edges_without_leeway() {
    let v = hmac_verifier_with(|v| v.leeway(Duration::ZERO));
    assert_eq!(v.validation().leeway_seconds(), 0);
    let now = NOW.0;
    let exp = now + 3600;
    let cases: Vec<(String, Result<(), Outcome>)> = vec![
        (format!(r#"{{"exp":{now}}}"#), Err(Outcome::Expired)),
        (format!(r#"{{"exp":{}}}"#, now + 1), Ok(())),
        (format!(r#"{{"exp":{now}.5}}"#), Ok(())),
        (format!(r#"{{"exp":{}.5}}"#, now - 1), Err(Outcome::Expired)),
        (format!(r#"{{"exp":{now}.000001}}"#), Ok(())),
        (format!(r#"{{"exp":{exp},"nbf":{now}}}"#), Ok(())),
        (
            format!(r#"{{"exp":{exp},"nbf":{}}}"#, now + 1),
            Err(Outcome::NotYetValid),
        ),
        (
            format!(r#"{{"exp":{exp},"nbf":{now}.5}}"#),
            Err(Outcome::NotYetValid),
        ),
        (format!(r#"{{"exp":{exp},"iat":{now}}}"#), Ok(())),
        (
            format!(r#"{{"exp":{exp},"iat":{}}}"#, now + 1),
            Err(Outcome::IssuedInFuture),
        ),
        (
            format!(r#"{{"exp":{exp},"iat":{now}.5}}"#),
            Err(Outcome::IssuedInFuture),
        ),
    ];
    for (claims, expected) in cases {
        assert_eq!(time_verdict(&v, &claims), expected, "{claims}");
    }
    let token = hs256(r#"{"alg":"HS256"}"#, &format!(r#"{{"exp":{now}}}"#));
    assert_eq!(verdict_at(&v, token.as_bytes(), UnixTime(now - 1)), Ok(()));
    assert_eq!(
        verdict_at(&v, token.as_bytes(), UnixTime(now)).map_err(Rejection::outcome),
        Err(Outcome::Expired)
    );
}

#[test]
fn dates_that_are_not_numeric_dates_are_malformed() {
    let v = hmac_verifier_with(|v| v.require([]));
    for exp in [
        r#""1700003600""#,
        "true",
        "false",
        "null",
        "-1",
        "-0.5",
        "1e400",
        "-1e400",
        "253402300800",
        "253402300799.5",
        "1e12",
        "99999999999999999999",
        "[1700003600]",
        r#"{"t":1700003600}"#,
    ] {
        // Beyond a double's range the JSON layer refuses the number itself (I-JSON).
        let expected = if exp.contains("e400") {
            malformed("claims have a number beyond the range of a double")
        } else {
            malformed(BAD_EXP)
        };
        assert_eq!(
            verdict(&v, &hs256(r#"{"alg":"HS256"}"#, &exp_claims(exp))),
            expected,
            "exp {exp}"
        );
    }
    for (claims, detail) in [
        (
            format!(r#"{{"exp":{},"nbf":"0"}}"#, NOW.0 + 60),
            "nbf is not a NumericDate from 1970 to 9999",
        ),
        (
            format!(r#"{{"exp":{},"iat":1e300}}"#, NOW.0 + 60),
            "iat is not a NumericDate from 1970 to 9999",
        ),
    ] {
        assert_eq!(
            verdict(&v, &hs256(r#"{"alg":"HS256"}"#, &claims)),
            malformed(detail),
            "{claims}"
        );
    }
    // The last second of year 9999 is the latest date there is.
    assert_eq!(
        verdict(
            &v,
            &hs256(r#"{"alg":"HS256"}"#, &exp_claims(253_402_300_799_i64))
        ),
        Ok(())
    );
}

#[test]
fn exp_is_required_by_default() {
    let v = hmac_verifier();
    for claims in [
        r#"{"sub":"user-1"}"#.to_owned(),
        format!(r#"{{"sub":"user-1","iat":{0},"nbf":{0}}}"#, NOW.0),
        "{}".to_owned(),
        // A claim named like exp is not exp.
        format!(r#"{{"Exp":{0},"exp ":{0}}}"#, NOW.0 + 60),
    ] {
        assert_eq!(
            verdict(&v, &hs256(r#"{"alg":"HS256"}"#, &claims)),
            denied(Outcome::MissingClaim, "exp is required"),
            "{claims}"
        );
    }
    let optional = hmac_verifier_with(|v| v.require([]));
    assert_eq!(
        verdict(
            &optional,
            &hs256(r#"{"alg":"HS256"}"#, r#"{"sub":"user-1"}"#)
        ),
        Ok(())
    );
    let also_iat = hmac_verifier_with(|v| {
        v.require([
            ClaimName::Registered(RegisteredClaim::Exp),
            ClaimName::Registered(RegisteredClaim::Iat),
        ])
    });
    assert_eq!(
        verdict(
            &also_iat,
            &hs256(r#"{"alg":"HS256"}"#, &exp_claims(NOW.0 + 60))
        ),
        denied(Outcome::MissingClaim, "iat is required")
    );
}

// ---------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------

#[test]
fn weak_rsa_keys_are_refused_at_load() {
    for file in ["rsa1024.spki.pem", "rsa1024.pkcs1.pem"] {
        let (index, kid, reason) =
            invalid_key_reason(KeySet::parse(read_data(file).as_bytes()).unwrap_err());
        assert_eq!((index, kid), (0, None), "{file}");
        assert!(reason.contains("1024 bits"), "{file}: {reason}");
    }
    // ring refuses to load a 1024-bit private key, so read n from the PKCS#1 DER.
    let n = pkcs1_modulus(&pem_to_der(&read_data("rsa1024.pkcs1.pem")));
    assert_eq!(n.len(), 128);
    let small = format!(
        r#"{{"kty":"RSA","n":"{}","e":"AQAB","kid":"small"}}"#,
        b64(&n)
    );
    let (_, kid, reason) = invalid_key_reason(KeySet::parse(small.as_bytes()).unwrap_err());
    assert_eq!(kid.as_deref(), Some("small"));
    assert!(reason.contains("1024 bits"), "{reason}");

    let (n, _) = rsa_components("rsa2048-a");
    let mut even_n = n.clone();
    *even_n.last_mut().unwrap() &= 0xfe;
    let jwk = |n: &[u8], e: &[u8]| format!(r#"{{"kty":"RSA","n":"{}","e":"{}"}}"#, b64(n), b64(e));
    for (what, key, needle) in [
        ("e = 1", jwk(&n, &[1]), "exponent 1 is not"),
        ("e = 2", jwk(&n, &[2]), "exponent 2 is not"),
        ("e = 65536", jwk(&n, &[1, 0, 0]), "exponent 65536 is not"),
        ("e = 0", jwk(&n, &[0]), "exponent 0 is not"),
        (
            "e = 2^34 + 1",
            jwk(&n, &[4, 0, 0, 0, 1]),
            "larger than 2^33 - 1",
        ),
        ("even modulus", jwk(&even_n, &[1, 0, 1]), "modulus is even"),
    ] {
        let (index, _, reason) = invalid_key_reason(jwks_error(&[&key]));
        assert_eq!(index, 0, "{what}");
        assert!(reason.contains(needle), "{what}: {reason}");
    }
    // A good key next to a weak one does not rescue the set.
    let good = rsa_jwk("rsa2048-a", r#","kid":"good""#);
    let (index, _, _) = invalid_key_reason(jwks_error(&[&good, &jwk(&n, &[1])]));
    assert_eq!(index, 1);
    // e = 3 is small but sound.
    assert_eq!(jwks(&[&jwk(&n, &[3])]).len(), 1);
}

/// The ROCA-vulnerable RS256 key of Wycheproof's `jws_rsa_roca_key` group
/// (json_web_crypto_test.json): 2049 bits, odd, e = 65537, so only the ROCA
/// fingerprint can refuse it.
const ROCA_JWK: &str = r#"{"alg":"RS256","use":"sig","n":"AanFpofbj7KjD4Lf-N2hVMKR7yewSyXhhbirIMTGpfYEhZ_lnt5UoK98DnKIgArXGTu3MaW_HhFw16HGaTDUHqPrId7fe4r11CqRw09yBFuW79V8sYIwHdzCaWflUI6auImYbVfoN9_nD5n8N8SY9DwXw7mwZM9wREPXoDPgOoIWl6q_MPsp7n0zs3Z5ZaiQWOOzl1S9OhwAfSiiOwz6efnXEaxuTEtPd7BjSx7NaFka8Dx9U7YqXy2RFj1O9PjyaDGuRh7YXsX3iMUSP_wSyHQg_c_qHRtKUsNSGCT7OZg0hzm2KphtjnayKJvC64vAbROBR4Ubg6Bxg9IQVZ-QYyE","e":"AQAB","kid":"kid-rsa-roca-sign","kty":"RSA"}"#;

#[test]
fn roca_moduli_are_refused_at_load() {
    let (index, kid, reason) = invalid_key_reason(KeySet::parse(ROCA_JWK.as_bytes()).unwrap_err());
    assert_eq!(index, 0);
    assert_eq!(kid.as_deref(), Some("kid-rsa-roca-sign"));
    assert!(reason.contains("ROCA"), "{reason}");
    let good = rsa_jwk("rsa2048-a", r#","kid":"good""#);
    let (index, _, reason) = invalid_key_reason(jwks_error(&[&good, ROCA_JWK]));
    assert_eq!(index, 1);
    assert!(reason.contains("ROCA"), "{reason}");
    // Neither committed 2048-bit key carries the fingerprint.
    assert_eq!(
        jwks(&[&good, &rsa_jwk("rsa2048-b", r#","kid":"b""#)]).len(),
        2
    );
}

#[test]
fn ec_points_off_the_curve_are_refused_at_load() {
    for (name, algorithm) in [("p256", Algorithm::Es256), ("p384", Algorithm::Es384)] {
        let der = pem_to_der(&read_data(&format!("{name}.pk8.pem")));
        let mut point = ec_point(&der, algorithm);
        *point.last_mut().unwrap() ^= 1;
        let (_, kid, reason) = invalid_key_reason(jwks_error(&[&ec_jwk_from_point(
            &point,
            r#","kid":"bent""#,
        )]));
        assert_eq!(kid.as_deref(), Some("bent"));
        assert_eq!(reason, "EC point is not on the curve", "{name}");

        let width = (point.len() - 1) / 2;
        let mut origin = vec![4u8];
        origin.extend(vec![0u8; 2 * width]);
        let (_, _, reason) = invalid_key_reason(jwks_error(&[&ec_jwk_from_point(&origin, "")]));
        assert_eq!(reason, "EC point is not on the curve", "{name} (0, 0)");

        let mut spki = pem_to_der(&read_data(&format!("{name}.spki.pem")));
        *spki.last_mut().unwrap() ^= 1;
        let error = KeySet::parse(pem("PUBLIC KEY", &spki).as_bytes()).unwrap_err();
        let (index, kid, reason) = invalid_key_reason(error);
        assert_eq!((index, kid), (0, None));
        assert_eq!(reason, "EC point is not on the curve", "{name} SPKI");
    }
}

#[test]
fn keys_for_other_purposes_are_skipped_with_a_warning() {
    let der = pem_to_der(&read_data("p256.pk8.pem"));
    let set = jwks(&[
        &ec_point_jwk(&der, Algorithm::Es256, r#","kid":"enc","use":"enc""#),
        &ec_point_jwk(&der, Algorithm::Es256, r#","kid":"sig","use":"sig""#),
        &ec_point_jwk(
            &der,
            Algorithm::Es256,
            r#","kid":"signer","key_ops":["sign"]"#,
        ),
        &ec_point_jwk(
            &der,
            Algorithm::Es256,
            r#","kid":"ok-ops","key_ops":["sign","verify"]"#,
        ),
    ]);
    assert_eq!(set.len(), 2);
    let kids: Vec<Option<&str>> = set.keys().iter().map(|k| k.kid()).collect();
    assert_eq!(kids, [Some("sig"), Some("ok-ops")]);
    let skipped: Vec<(usize, Option<&str>)> = set
        .warnings()
        .iter()
        .map(|w| (w.index, w.kid.as_deref()))
        .collect();
    assert_eq!(skipped, [(0, Some("enc")), (2, Some("signer"))]);

    // A skipped key cannot verify even a signature it would match.
    let v = verifier(set, "ES256");
    let key = signing_key("p256", Algorithm::Es256);
    for (kid, expected) in [
        ("enc", denied(Outcome::UnknownKid, NO_SUCH_KID)),
        ("signer", denied(Outcome::UnknownKid, NO_SUCH_KID)),
        ("sig", Ok(())),
    ] {
        let token = mint(
            &format!(r#"{{"alg":"ES256","kid":"{kid}"}}"#),
            &fresh_claims(),
            &key,
            Algorithm::Es256,
        );
        assert_eq!(verdict(&v, &token), expected, "kid {kid}");
    }

    // Nothing usable left is an error that still lists what was skipped.
    match jwks_error(&[&ec_point_jwk(
        &der,
        Algorithm::Es256,
        r#","kid":"enc","use":"enc""#,
    )]) {
        KeySetError::Empty(warnings) => assert_eq!(warnings.len(), 1),
        other => panic!("expected Empty, got {other:?}"),
    }
}

#[test]
fn duplicate_kids_are_refused() {
    let p256 = ec_jwk("p256", Algorithm::Es256, r#","kid":"same""#);
    let p384 = ec_jwk("p384", Algorithm::Es384, r#","kid":"same""#);
    let escaped = ec_jwk("p384", Algorithm::Es384, r#","kid":"s\u0061me""#);
    assert_eq!(
        jwks_error(&[&p256, &p384]),
        KeySetError::DuplicateKid("same".into())
    );
    assert_eq!(
        jwks_error(&[&p256, &escaped]),
        KeySetError::DuplicateKid("same".into())
    );
    assert_eq!(
        jwks_error(&[
            &oct_jwk(SECRET, r#","kid":"k""#),
            &oct_jwk(OTHER_SECRET, r#","kid":"k""#)
        ]),
        KeySetError::DuplicateKid("k".into())
    );
    // Kids differing only in case are different kids.
    let upper = ec_jwk("p384", Algorithm::Es384, r#","kid":"SAME""#);
    assert_eq!(jwks(&[&p256, &upper]).len(), 2);
}

#[test]
fn private_keys_are_refused() {
    for name in ["rsa2048-a", "p256", "p384", "ed25519"] {
        let private = read_data(&format!("{name}.pk8.pem"));
        let public = read_data(&format!("{name}.spki.pem"));
        for document in [private.clone(), format!("{public}{private}")] {
            match KeySet::parse(document.as_bytes()) {
                Err(KeySetError::Format(message)) => {
                    assert!(message.contains("private key"), "{name}: {message}");
                }
                other => panic!("{name}: expected a Format error, got {other:?}"),
            }
        }
    }
    let pkcs1_private = pem("RSA PRIVATE KEY", &[0x30, 0x00]);
    assert!(
        matches!(KeySet::parse(pkcs1_private.as_bytes()), Err(KeySetError::Format(m)) if m.contains("private key"))
    );
    let ec_private = pem("EC PRIVATE KEY", &[0x30, 0x00]);
    assert!(
        matches!(KeySet::parse(ec_private.as_bytes()), Err(KeySetError::Format(m)) if m.contains("private key"))
    );

    let d = r#","d":"AQAB""#;
    for (what, jwk) in [
        ("RSA", rsa_jwk("rsa2048-a", d)),
        ("RSA with only p", rsa_jwk("rsa2048-a", r#","p":"AQAB""#)),
        ("EC", ec_jwk("p256", Algorithm::Es256, d)),
        (
            "OKP",
            format!(
                r#"{{"kty":"OKP","crv":"Ed25519","x":"{}"{d}}}"#,
                b64(&[9; 32])
            ),
        ),
    ] {
        let (_, _, reason) = invalid_key_reason(KeySet::parse(jwk.as_bytes()).unwrap_err());
        assert!(reason.contains("private key material"), "{what}: {reason}");
    }
}

#[test]
fn hmac_secrets_must_be_long_enough_for_their_hash() {
    let (index, kid, reason) =
        invalid_key_reason(KeySet::from_hmac_secret(&SECRET[..31], Some("short")).unwrap_err());
    assert_eq!((index, kid.as_deref()), (0, Some("short")));
    assert_eq!(reason, "HMAC secret has 31 bytes; at least 32 are required");
    let (_, _, reason) = invalid_key_reason(jwks_error(&[&oct_jwk(&SECRET[..31], "")]));
    assert_eq!(reason, "HMAC secret has 31 bytes; at least 32 are required");
    assert!(KeySet::from_hmac_secret(&[], None).is_err());
    assert!(KeySet::from_hmac_secret(SECRET, None).is_ok());

    // A 32-byte secret covers HS256 only.
    let keys = || jwks(&[&oct_jwk(SECRET, r#","kid":"k""#)]);
    let v = verifier(keys(), "HS256,HS384");
    let claims = fresh_claims();
    let hs384 = |header: &str| mint(header, &claims, &hmac_key(), Algorithm::Hs384);
    assert_eq!(
        verdict(&v, &hs384(r#"{"alg":"HS384","kid":"k"}"#)),
        denied(Outcome::AlgNotAllowed, BOUND_ELSEWHERE)
    );
    assert_eq!(
        verdict(&v, &hs384(r#"{"alg":"HS384"}"#)),
        denied(Outcome::UnknownKid, NO_KID_NO_KEY)
    );
    assert_eq!(
        verdict(&v, &hs256(r#"{"alg":"HS256","kid":"k"}"#, &claims)),
        Ok(())
    );
    let hs384_only = AlgorithmSet::only(Algorithm::Hs384);
    assert_eq!(
        Verifier::new(keys(), Validation::new(hs384_only)).err(),
        Some(VerifierError::NoUsableKey(hs384_only))
    );
    let (_, _, reason) = invalid_key_reason(jwks_error(&[&oct_jwk(SECRET, r#","alg":"HS384""#)]));
    assert!(reason.contains("48 bytes"), "{reason}");

    // 48 bytes reach HS384, and HS512 still needs 64.
    let secret48 = [7u8; 48];
    let v = verifier(
        KeySet::from_hmac_secret(&secret48, None).unwrap(),
        "HS384,HS512",
    );
    let key48 = SigningKey::hmac(&secret48);
    assert_eq!(
        verdict(
            &v,
            &mint(r#"{"alg":"HS384"}"#, &claims, &key48, Algorithm::Hs384)
        ),
        Ok(())
    );
    assert_eq!(
        verdict(
            &v,
            &mint(r#"{"alg":"HS512"}"#, &claims, &key48, Algorithm::Hs512)
        ),
        denied(Outcome::UnknownKid, NO_KID_NO_KEY)
    );
}

/// An Ed25519 key of small order (here the identity) would accept the forgery
/// R = identity, S = 0 for any message; such keys must not load.
#[test]
fn small_order_ed25519_keys_are_refused_at_load() {
    for x in [
        "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "7P_______________________________________38",
        "JuiVj8KyJ7BFw_SJ8u-Y8NXfrAXTxjM5sTgCiG1T_AU",
    ] {
        let jwks =
            format!(r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"weak","x":"{x}"}}]}}"#);
        let result = jwtgate::KeySet::parse(jwks.as_bytes());
        assert!(
            matches!(&result, Err(jwtgate::KeySetError::InvalidKey { reason, .. }) if reason.contains("small order")),
            "{x}: {result:?}"
        );
    }
}
