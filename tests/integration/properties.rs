#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! Properties of the engine as a whole: hostile input never panics and never
//! verifies, honest tokens always verify and read back what was signed, and no
//! single changed byte survives.
//!
//! Honest tokens here are signed with `ring` directly, not through jwtgate's
//! `SigningKey`, so a mistake shared by jwtgate's signing and verifying halves
//! cannot make these properties pass.

use crate::common;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use common::*;
use jwtgate::{
    Algorithm, AlgorithmSet, ClaimName, KeySet, Outcome, RegisteredClaim, SubjectMatch, Validation,
    Verifier,
};
use jwtgate_engine::base64url;
use proptest::prelude::*;
use proptest::sample::Index;
use ring::signature::{self, KeyPair as _};
use serde_json::{Map, Value, json};

const SECRET: &[u8] = b"jwtgate property test secret, 32";

/// A private key held by `ring`, plus the public JWK members jwtgate should load.
struct Signer {
    algorithm: Algorithm,
    private: Private,
    public_jwk: Map<String, Value>,
}

enum Private {
    Hmac(ring::hmac::Key),
    Ecdsa(signature::EcdsaKeyPair),
    Ed25519(signature::Ed25519KeyPair),
    Rsa(signature::RsaKeyPair),
}

fn pkcs8(name: &str) -> Vec<u8> {
    pem_to_der(&read_data(&format!("{name}.pk8.pem")))
}

fn jwk(members: Value) -> Map<String, Value> {
    match members {
        Value::Object(map) => map,
        other => panic!("not a JWK object: {other}"),
    }
}

impl Signer {
    fn new(algorithm: Algorithm) -> Signer {
        let rng = ring::rand::SystemRandom::new();
        let (private, public_jwk) = match algorithm {
            Algorithm::Hs256 => (
                Private::Hmac(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET)),
                jwk(json!({"kty": "oct", "k": base64url::encode(SECRET)})),
            ),
            Algorithm::Es256 => {
                let pair = signature::EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    &pkcs8("p256"),
                    &rng,
                )
                .unwrap();
                let point = pair.public_key().as_ref();
                let (x, y) = point[1..].split_at(32);
                let public = jwk(json!({
                    "kty": "EC",
                    "crv": "P-256",
                    "x": base64url::encode(x),
                    "y": base64url::encode(y),
                }));
                (Private::Ecdsa(pair), public)
            }
            Algorithm::EdDsa => {
                let pair = signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8("ed25519"))
                    .unwrap();
                let public = jwk(json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": base64url::encode(pair.public_key().as_ref()),
                }));
                (Private::Ed25519(pair), public)
            }
            Algorithm::Rs256 => {
                let pair = signature::RsaKeyPair::from_pkcs8(&pkcs8("rsa2048-a")).unwrap();
                let components = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public());
                let public = jwk(json!({
                    "kty": "RSA",
                    "n": base64url::encode(&components.n),
                    "e": base64url::encode(&components.e),
                }));
                (Private::Rsa(pair), public)
            }
            other => panic!("no test signer for {other}"),
        };
        Signer {
            algorithm,
            private,
            public_jwk,
        }
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        let rng = ring::rand::SystemRandom::new();
        match &self.private {
            Private::Hmac(key) => ring::hmac::sign(key, message).as_ref().to_vec(),
            Private::Ecdsa(pair) => pair.sign(&rng, message).unwrap().as_ref().to_vec(),
            Private::Ed25519(pair) => pair.sign(message).as_ref().to_vec(),
            Private::Rsa(pair) => {
                let mut out = vec![0; pair.public().modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut out)
                    .unwrap();
                out
            }
        }
    }

    /// The compact token over exactly these JSON texts.
    fn token(&self, header: &str, claims: &str) -> String {
        let mut token = base64url::encode(header.as_bytes());
        token.push('.');
        base64url::encode_into(claims.as_bytes(), &mut token);
        let signature = self.sign(token.as_bytes());
        token.push('.');
        base64url::encode_into(&signature, &mut token);
        token
    }

    /// A key set of this signer's public key, under `kid` when given.
    fn key_set(&self, kid: Option<&str>) -> KeySet {
        let mut jwk = self.public_jwk.clone();
        if let Some(kid) = kid {
            jwk.insert("kid".into(), Value::String(kid.into()));
        }
        KeySet::parse(Value::Object(jwk).to_string().as_bytes()).unwrap()
    }

    fn verifier(&self) -> Verifier {
        verifier(self.key_set(None), self.algorithm.name())
    }
}

const ALGORITHMS: [Algorithm; 4] = [
    Algorithm::Hs256,
    Algorithm::Es256,
    Algorithm::EdDsa,
    Algorithm::Rs256,
];

/// Signers, verifiers and one honest token per algorithm, built once: RSA key
/// parsing and signing are too slow in a debug build to repeat per case.
struct Fixture {
    signer: Signer,
    verifier: Verifier,
    token: String,
}

fn fixtures() -> &'static [Fixture] {
    static FIXTURES: OnceLock<Vec<Fixture>> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        ALGORITHMS
            .into_iter()
            .map(|algorithm| {
                let signer = Signer::new(algorithm);
                let verifier = signer.verifier();
                let token = signer.token(
                    &format!(r#"{{"alg":"{algorithm}","typ":"JWT"}}"#),
                    &fresh_claims(),
                );
                assert_eq!(outcome(&verifier, &token), Outcome::Valid, "{algorithm}");
                Fixture {
                    signer,
                    verifier,
                    token,
                }
            })
            .collect()
    })
}

fn outcome_bytes(verifier: &Verifier, token: &[u8]) -> Outcome {
    outcome_at(verifier, token, NOW)
}

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

/// Characters that stress JSON escaping and UTF-8: quotes, backslashes,
/// controls, separators JavaScript treats as line ends, astral-plane characters.
fn tricky_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => any::<char>(),
        2 => proptest::char::range(' ', '~'),
        2 => prop::sample::select(vec![
            '"', '\\', '/', '\n', '\r', '\t', '\u{0}', '\u{1f}', '\u{7f}', '\u{80}', '\u{2028}',
            '\u{2029}', '\u{feff}', '\u{fffd}', 'é', 'ß', '中', '😀', '\u{10ffff}', '.', '=',
        ]),
    ]
}

fn text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(tricky_char(), 0..max).prop_map(|chars| chars.into_iter().collect())
}

const REGISTERED: [&str; 7] = ["iss", "sub", "aud", "exp", "nbf", "iat", "jti"];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        text(12).prop_map(Value::String),
    ];
    // At most 4 levels below the claims object, well inside the default 16.
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(text(8), inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

#[derive(Debug, Clone)]
struct Case {
    kid: Option<String>,
    sub: String,
    iss: String,
    jti: String,
    exp_offset: u32,
    exp_fraction: Option<u8>,
    iat_age: Option<u32>,
    aud: Option<Vec<String>>,
    aud_as_array: bool,
    extra: BTreeMap<String, Value>,
    spelling: Spelling,
}

/// How string contents are written: escapes are JSON syntax, so every spelling
/// must verify and read back the same strings.
#[derive(Debug, Clone, Copy)]
enum Spelling {
    /// As serde_json writes them.
    Plain,
    /// Non-ASCII characters as `\u` escapes (surrogate pairs above U+FFFF), `/` as `\/`.
    EscapedNonAscii,
    /// Every character inside every string, member names included, as `\u` escapes.
    EscapedEverything,
}

fn case() -> impl Strategy<Value = Case> {
    (
        (
            prop::option::of(text(16)),
            text(24),
            text(24),
            text(16),
            1u32..1_000_000_000,
            prop::option::of(1u8..100),
            prop::option::of(0u32..1_000_000),
        ),
        (
            prop::option::of(prop::collection::vec(text(12), 1..4)),
            any::<bool>(),
            prop::collection::btree_map(
                text(10).prop_filter("registered claim", |name| {
                    !REGISTERED.contains(&name.as_str())
                }),
                json_value(),
                0..6,
            ),
            prop_oneof![
                Just(Spelling::Plain),
                Just(Spelling::EscapedNonAscii),
                Just(Spelling::EscapedEverything),
            ],
        ),
    )
        .prop_map(
            |(
                (kid, sub, iss, jti, exp_offset, exp_fraction, iat_age),
                (aud, aud_as_array, extra, spelling),
            )| Case {
                kid,
                sub,
                iss,
                jti,
                exp_offset,
                exp_fraction,
                iat_age,
                aud,
                aud_as_array,
                extra,
                spelling,
            },
        )
}

fn push_escaped(out: &mut String, c: char) {
    let mut units = [0u16; 2];
    for unit in c.encode_utf16(&mut units) {
        out.push_str(&format!("\\u{unit:04x}"));
    }
}

/// Rewrites the string contents of serde_json's output in `spelling`; the
/// escapes serde_json already wrote are kept as they are.
fn respell(json: &str, spelling: Spelling) -> String {
    let mut out = String::with_capacity(json.len() * 6);
    let mut chars = json.chars();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                in_string = !in_string;
                out.push(c);
            }
            '\\' if in_string => {
                out.push(c);
                let letter = chars.next().unwrap();
                out.push(letter);
                if letter == 'u' {
                    out.extend(chars.by_ref().take(4));
                }
            }
            c if in_string => match spelling {
                Spelling::EscapedEverything => push_escaped(&mut out, c),
                Spelling::EscapedNonAscii if c == '/' => out.push_str("\\/"),
                Spelling::EscapedNonAscii if !c.is_ascii() => push_escaped(&mut out, c),
                _ => out.push(c),
            },
            c => out.push(c),
        }
    }
    out
}

impl Case {
    fn header(&self, algorithm: Algorithm) -> String {
        let mut header = json!({"alg": algorithm.name(), "typ": "JWT"});
        if let Some(kid) = &self.kid {
            header["kid"] = Value::String(kid.clone());
        }
        self.spell(&header)
    }

    fn claims(&self) -> String {
        let mut claims: Map<String, Value> = self.extra.clone().into_iter().collect();
        claims.insert("sub".into(), self.sub.clone().into());
        claims.insert("iss".into(), self.iss.clone().into());
        claims.insert("jti".into(), self.jti.clone().into());
        let exp = NOW.0 + i64::from(self.exp_offset);
        let exp = match self.exp_fraction {
            Some(hundredths) => json!(exp as f64 + f64::from(hundredths) / 100.0),
            None => json!(exp),
        };
        claims.insert("exp".into(), exp);
        if let Some(age) = self.iat_age {
            claims.insert("iat".into(), json!(NOW.0 - i64::from(age)));
        }
        if let Some(aud) = &self.aud {
            let value = match (aud.as_slice(), self.aud_as_array) {
                ([one], false) => Value::String(one.clone()),
                _ => json!(aud),
            };
            claims.insert("aud".into(), value);
        }
        self.spell(&Value::Object(claims))
    }

    fn spell(&self, value: &Value) -> String {
        respell(&serde_json::to_string(value).unwrap(), self.spelling)
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(AlgorithmSet::only(algorithm))
            .issuer(&self.iss)
            .subject(SubjectMatch::Exact(self.sub.as_str().into()))
            .require([
                ClaimName::Registered(RegisteredClaim::Exp),
                ClaimName::Registered(RegisteredClaim::Jti),
            ]);
        if let Some(aud) = self.aud.clone() {
            // Only the last audience is configured, so a match anywhere in
            // the array must count.
            validation = validation.audience(aud.last().unwrap());
        }
        validation
    }
}

fn check_round_trip(fixture: &Fixture, case: &Case) -> Result<(), TestCaseError> {
    let signer = &fixture.signer;
    let algorithm = signer.algorithm;
    let keys = signer.key_set(case.kid.as_deref());
    let verifier = verifier_with(keys, case.validation(algorithm));
    let token = signer.token(&case.header(algorithm), &case.claims());
    let mut scratch = verifier.scratch();
    let verified = verifier.verify(token.as_bytes(), NOW, &mut scratch);
    let verified = match verified {
        Ok(verified) => verified,
        Err(rejection) => {
            return Err(TestCaseError::fail(format!(
                "{algorithm}: {rejection} for header {} claims {}",
                case.header(algorithm),
                case.claims()
            )));
        }
    };
    let claims = verified.claims;
    prop_assert_eq!(verified.algorithm(), algorithm);
    prop_assert_eq!(verified.key.kid(), case.kid.as_deref());
    prop_assert_eq!(claims.sub.map(|s| s.to_string()), Some(case.sub.clone()));
    prop_assert_eq!(claims.iss.map(|s| s.to_string()), Some(case.iss.clone()));
    prop_assert_eq!(claims.jti.map(|s| s.to_string()), Some(case.jti.clone()));
    let aud: Option<Vec<String>> = claims
        .aud
        .map(|aud| aud.iter().map(|value| value.to_string()).collect());
    prop_assert_eq!(aud, case.aud.clone());
    prop_assert_eq!(
        claims.exp.map(|exp| exp.seconds()),
        Some(NOW.0 + i64::from(case.exp_offset))
    );
    // Compared as text: jwtgate hands values out verbatim, and serde_json
    // prints a nested value exactly as it printed it inside the claims set.
    for (name, value) in &case.extra {
        let read = claims.get(name).map(|v| v.raw_json());
        let written = case.spell(value);
        prop_assert_eq!(read, Some(written.as_str()), "claim {:?}", name);
    }
    prop_assert_eq!(
        verified.payload_b64,
        token.split('.').nth(1).unwrap().as_bytes()
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

fn base64url_segment() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{0,96}"
}

/// A header jwtgate will get past, so random tokens also reach key selection
/// and the signature check.
fn plausible_header() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(ALGORITHMS.to_vec())
            .prop_map(|algorithm| format!(r#"{{"alg":"{algorithm}"}}"#)),
        text(20).prop_map(|kid| json!({"alg": "HS256", "kid": kid}).to_string()),
        Just(r#"{"alg":"none"}"#.to_owned()),
    ]
    .prop_map(|header| base64url::encode(header.as_bytes()))
}

#[derive(Debug, Clone)]
enum Mutation {
    Replace(Index, u8),
    Insert(Index, u8),
    Delete(Index),
    Truncate(Index),
    SwapSegments(Index, Index),
    SegmentFromOtherToken(Index, Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<Index>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Replace(at, byte)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Insert(at, byte)),
        2 => any::<Index>().prop_map(Mutation::Delete),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::SwapSegments(a, b)),
        1 => (any::<Index>(), any::<Index>())
            .prop_map(|(token, segment)| Mutation::SegmentFromOtherToken(token, segment)),
    ]
}

fn apply(token: &mut Vec<u8>, mutation: &Mutation) {
    let len = token.len().max(1);
    match mutation {
        Mutation::Replace(at, byte) => {
            if let Some(slot) = token.get_mut(at.index(len)) {
                *slot = *byte;
            }
        }
        Mutation::Insert(at, byte) => token.insert(at.index(token.len() + 1), *byte),
        Mutation::Delete(at) => {
            if !token.is_empty() {
                token.remove(at.index(len));
            }
        }
        Mutation::Truncate(at) => token.truncate(at.index(len)),
        Mutation::SwapSegments(a, b) => {
            let mut segments: Vec<Vec<u8>> =
                token.split(|&b| b == b'.').map(<[u8]>::to_vec).collect();
            let count = segments.len();
            segments.swap(a.index(count), b.index(count));
            *token = segments.join(&b'.');
        }
        Mutation::SegmentFromOtherToken(other, segment) => {
            let other = &fixtures()[other.index(fixtures().len())].token;
            let donor: Vec<&[u8]> = other.as_bytes().split(|&b| b == b'.').collect();
            let mut segments: Vec<Vec<u8>> =
                token.split(|&b| b == b'.').map(<[u8]>::to_vec).collect();
            let at = segment.index(segments.len().min(donor.len()));
            segments[at] = donor[at].to_vec();
            *token = segments.join(&b'.');
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn arbitrary_bytes_never_panic_and_never_verify(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        for fixture in fixtures() {
            prop_assert_ne!(outcome_bytes(&fixture.verifier, &bytes), Outcome::Valid);
        }
    }

    #[test]
    fn random_base64url_segments_never_verify(
        segments in prop::collection::vec(base64url_segment(), 1..7),
    ) {
        let token = segments.join(".");
        for fixture in fixtures() {
            prop_assert_ne!(outcome(&fixture.verifier, &token), Outcome::Valid, "{}", token);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn random_tokens_with_plausible_headers_never_verify(
        header in plausible_header(),
        payload in prop_oneof![
            base64url_segment(),
            json_value().prop_map(|claims| base64url::encode(claims.to_string().as_bytes())),
        ],
        signature_len in prop_oneof![Just(32usize), Just(64), Just(256), 0usize..300],
        signature_seed in any::<u64>(),
    ) {
        // Signature bytes of the lengths the real keys produce, so the
        // cryptographic check itself is what refuses them.
        let signature: Vec<u8> = (0..signature_len)
            .map(|i| (signature_seed.rotate_left(i as u32 % 64) ^ i as u64) as u8)
            .collect();
        let token = format!("{header}.{payload}.{}", base64url::encode(&signature));
        for fixture in fixtures() {
            prop_assert_ne!(outcome(&fixture.verifier, &token), Outcome::Valid, "{}", token);
        }
    }

    #[test]
    fn mutated_tokens_never_verify(
        which in any::<Index>(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let fixture = &fixtures()[which.index(fixtures().len())];
        let original = fixture.token.as_bytes();
        let mut token = original.to_vec();
        for mutation in &mutations {
            apply(&mut token, mutation);
        }
        // Whole segments may come from another fixture; rebuilding one of
        // them exactly is not a forgery.
        prop_assume!(fixtures().iter().all(|f| f.token.as_bytes() != token.as_slice()));
        prop_assume!(token != original);
        for other in fixtures() {
            prop_assert_ne!(
                outcome_bytes(&other.verifier, &token),
                Outcome::Valid,
                "{:?} applied to the {} token",
                mutations,
                fixture.signer.algorithm
            );
        }
    }

    #[test]
    fn any_single_byte_change_never_verifies(
        which in any::<Index>(),
        at in any::<Index>(),
        byte in any::<u8>(),
    ) {
        let fixture = &fixtures()[which.index(fixtures().len())];
        let mut token = fixture.token.as_bytes().to_vec();
        let at = at.index(token.len());
        prop_assume!(token[at] != byte);
        token[at] = byte;
        prop_assert_ne!(
            outcome_bytes(&fixture.verifier, &token),
            Outcome::Valid,
            "{} token, byte {} set to {:#04x}",
            fixture.signer.algorithm,
            at,
            byte
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn honest_hs256_tokens_verify_and_read_back(case in case()) {
        check_round_trip(&fixtures()[0], &case)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn honest_es256_tokens_verify_and_read_back(case in case()) {
        check_round_trip(&fixtures()[1], &case)?;
    }

    #[test]
    fn honest_eddsa_tokens_verify_and_read_back(case in case()) {
        check_round_trip(&fixtures()[2], &case)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn honest_rs256_tokens_verify_and_read_back(case in case()) {
        check_round_trip(&fixtures()[3], &case)?;
    }
}

/// Exhaustive where the property above samples: every position of every
/// fixture token, every other byte value.
#[test]
fn every_single_byte_change_is_refused() {
    for fixture in fixtures() {
        let original = fixture.token.as_bytes();
        let mut scratch = fixture.verifier.scratch();
        let mut token = original.to_vec();
        for at in 0..original.len() {
            for byte in (0..=255u8).filter(|&b| b != original[at]) {
                token[at] = byte;
                let result = fixture.verifier.verify(&token, NOW, &mut scratch);
                assert!(
                    result.is_err(),
                    "{} token: byte {at} set to {byte:#04x} still verifies",
                    fixture.signer.algorithm
                );
            }
            token[at] = original[at];
        }
    }
}

// Differential tests of the strict JSON parser against serde_json, the reference:
// every document serde_json produces (no duplicate names by construction) must
// parse to the same value, and every text jwtgate accepts must be JSON that
// serde_json accepts too, so strictness can only ever narrow, never widen.

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..8).prop_map(|members| {
                Value::Object(members.into_iter().collect::<Map<String, Value>>())
            }),
        ]
    })
}

/// jwtgate's view of a parsed value, rebuilt as a serde_json value for comparison.
fn to_serde(value: jwtgate_engine::json::Value<'_>) -> Value {
    use jwtgate_engine::json::Kind;
    match value.kind() {
        Kind::Null => Value::Null,
        Kind::Bool => Value::Bool(value.as_bool().unwrap()),
        // Rust's own parser rounds correctly; serde_json's default one does not.
        Kind::Number => {
            let text = value.number_text().unwrap();
            text.parse::<i64>()
                .map(|n| json!(n))
                .or_else(|_| text.parse::<u64>().map(|n| json!(n)))
                .unwrap_or_else(|_| json!(text.parse::<f64>().unwrap()))
        }
        Kind::String => Value::String(value.as_str().unwrap().to_string()),
        Kind::Array => Value::Array(value.as_array().unwrap().iter().map(to_serde).collect()),
        Kind::Object => Value::Object(
            value
                .as_object()
                .unwrap()
                .members()
                .map(|(name, member)| (name.to_string(), to_serde(member)))
                .collect(),
        ),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn json_parser_reads_what_serde_json_writes(document in arbitrary_json(), pretty in any::<bool>()) {
        let text = if pretty {
            serde_json::to_string_pretty(&document).unwrap()
        } else {
            serde_json::to_string(&document).unwrap()
        };
        let mut tape = jwtgate_engine::internals::json::Tape::new();
        let parsed = tape.parse(text.as_bytes(), 16);
        prop_assert!(parsed.is_ok(), "{text}: {:?}", parsed.err());
        prop_assert_eq!(to_serde(parsed.unwrap()), document);
    }

    #[test]
    fn json_parser_accepts_nothing_serde_json_refuses(
        document in arbitrary_json(),
        edits in prop::collection::vec((any::<Index>(), any::<u8>(), 0u8..3), 1..4),
    ) {
        let mut text = serde_json::to_vec(&document).unwrap();
        for (position, byte, kind) in edits {
            let at = position.index(text.len() + 1);
            match kind {
                0 if at < text.len() => text[at] = byte,
                1 => text.insert(at, byte),
                _ if at < text.len() => { text.remove(at); }
                _ => {}
            }
        }
        let mut tape = jwtgate_engine::internals::json::Tape::new();
        if tape.parse(&text, 64).is_ok() {
            let reference: Result<Value, _> = serde_json::from_slice(&text);
            prop_assert!(reference.is_ok(), "jwtgate accepted {:?}", String::from_utf8_lossy(&text));
        }
    }
}
