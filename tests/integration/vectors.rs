#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! Public test vectors (`../shared/vectors`, see its README): RFC 7515 Appendix A,
//! RFC 7520 §4, RFC 7797, RFC 8037 and Wycheproof's JOSE files.
//!
//! Almost none of these payloads is a JWT, so "the signature verified" is observed
//! as the engine's post-signature refusal of a non-JSON payload (`SIGNATURE_VERIFIED`);
//! `Valid` is only ever expected for the RFC 7519 JWT of RFC 7515 A.1-A.3.

use crate::common;

use std::collections::HashMap;

use common::*;
use jwtgate::internals::SigningKey;
use jwtgate::{
    Algorithm, AlgorithmSet, KeySet, KeySetError, Outcome, Rejection, UnixTime, Validation,
    Verifier,
};
use jwtgate_engine::base64url;
use serde_json::Value;

const NOT_JSON: &str = "payload is not JSON, so the token is not a JWT";
const NOT_OBJECT: &str = "payload is not a JSON object, so the token is not a JWT";
const NOT_UTF8: &str = "payload is not UTF-8";
const ENCRYPTED: &str = "encrypted tokens are not supported";

/// Details the engine can only produce after the signature verified: the payload
/// was authenticated and then found not to be a JSON claims set. `NOT_UTF8` is
/// here because Wycheproof's "normalPayload" cases sign the bytes 0xE0..0xFF.
const SIGNATURE_VERIFIED: [&str; 3] = [NOT_JSON, NOT_OBJECT, NOT_UTF8];

/// Members that make a JWK private (RFC 7518 §6.2.2, §6.3.2; RFC 8037 §2).
const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "oth"];

fn read_vector(relative: &str) -> String {
    let path = vectors_path(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn json_vector(relative: &str) -> Value {
    serde_json::from_str(&read_vector(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn str_at<'v>(value: &'v Value, pointer: &str) -> &'v str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer}"))
}

/// The same JWK without its private members, as an IdP would publish it.
fn public_jwk(jwk: &Value) -> Value {
    let mut public = jwk.clone();
    let members = public.as_object_mut().expect("a JWK is an object");
    for name in PRIVATE_MEMBERS {
        members.remove(name);
    }
    public
}

fn load(jwk: &Value) -> Result<KeySet, KeySetError> {
    KeySet::parse(jwk.to_string().as_bytes())
}

fn build(jwk: &Value, algorithms: &str) -> Verifier {
    let keys = load(jwk).unwrap_or_else(|e| panic!("{jwk}: {e}"));
    verifier(keys, algorithms)
}

fn check(verifier: &Verifier, token: &str, now: UnixTime) -> Result<(), Rejection> {
    let mut scratch = verifier.scratch();
    verifier
        .verify(token.as_bytes(), now, &mut scratch)
        .map(|_| ())
}

fn run(verifier: &Verifier, token: &str) -> Result<(), Rejection> {
    check(verifier, token, NOW)
}

fn signature_verified(result: &Result<(), Rejection>) -> bool {
    matches!(result, Err(r) if r.outcome() == Outcome::Malformed
        && SIGNATURE_VERIFIED.contains(&r.detail()))
}

fn shown(result: &Result<(), Rejection>) -> String {
    match result {
        Ok(()) => "valid".into(),
        Err(rejection) => rejection.to_string(),
    }
}

fn outcome_of(result: &Result<(), Rejection>) -> Outcome {
    match result {
        Ok(()) => Outcome::Valid,
        Err(rejection) => rejection.outcome(),
    }
}

fn expect_signature_verified(
    failures: &mut Vec<String>,
    what: &str,
    result: Result<(), Rejection>,
) {
    if !signature_verified(&result) {
        failures.push(format!(
            "{what}: expected the signature to verify (then a non-JWT payload), got {}",
            shown(&result)
        ));
    }
}

fn expect_outcome(
    failures: &mut Vec<String>,
    what: &str,
    result: Result<(), Rejection>,
    expected: Outcome,
) {
    if outcome_of(&result) != expected {
        failures.push(format!(
            "{what}: expected {expected}, got {}",
            shown(&result)
        ));
    }
}

/// Guards against a loop that silently ran nothing.
fn at_least(failures: &mut Vec<String>, what: &str, got: usize, minimum: usize) {
    if got < minimum {
        failures.push(format!("{what}: {got}, expected at least {minimum}"));
    }
}

fn assert_no_failures(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} mismatch(es):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------
// RFC 7515 Appendix A, transcribed by erlang-jose as Erlang terms.

/// Reads lines such as `{"a.1.1.compact", <<"eyJ...">>}.` into a map.
fn erlang_config(relative: &str) -> HashMap<String, String> {
    let text = read_vector(relative);
    let mut entries = HashMap::new();
    for line in text.lines().filter(|line| line.starts_with("{\"")) {
        let (name, rest) = line[2..]
            .split_once("\", <<\"")
            .unwrap_or_else(|| panic!("{relative}: unexpected line {line}"));
        let value = rest
            .strip_suffix("\">>}.")
            .unwrap_or_else(|| panic!("{relative}: unexpected line {line}"));
        entries.insert(name.to_owned(), unescape_erlang(value));
    }
    assert!(!entries.is_empty(), "{relative} has no entries");
    entries
}

fn unescape_erlang(escaped: &str) -> String {
    let mut text = String::with_capacity(escaped.len());
    let mut chars = escaped.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            text.push(c);
            continue;
        }
        match chars.next() {
            Some('r') => text.push('\r'),
            Some('n') => text.push('\n'),
            Some('t') => text.push('\t'),
            Some(other @ ('"' | '\\')) => text.push(other),
            other => panic!("unknown Erlang escape \\{other:?} in {escaped}"),
        }
    }
    text
}

/// The compact token of `a.N`, after checking the transcription is self-consistent
/// (so a test failure below is about the engine, not about reading the file).
fn rfc7515_token(config: &HashMap<String, String>, prefix: &str) -> String {
    let entry = |suffix: &str| {
        config
            .get(&format!("{prefix}.{suffix}"))
            .unwrap_or_else(|| panic!("{prefix}.{suffix} missing"))
    };
    let compact = entry("compact").clone();
    assert_eq!(
        base64url::decode(entry("payload-b64").as_bytes()).unwrap(),
        entry("payload").as_bytes(),
        "{prefix}: payload-b64 and payload disagree (Erlang unescaping?)"
    );
    assert_eq!(
        format!(
            "{}.{}",
            entry("signing-input"),
            entry("signature-b64").as_str()
        ),
        compact,
        "{prefix}: compact is not signing-input.signature"
    );
    compact
}

/// RFC 7519 §3.1's example JWT: `exp` is 1300819380.
const RFC7519_EXP: i64 = 1_300_819_380;
const LEEWAY: i64 = 60;

fn rfc7515_verifier(name: &str, algorithm: &str) -> Verifier {
    let jwk = json_vector(&format!("rfc7515/{name}.1.jwk+json"));
    let keys = load(&public_jwk(&jwk)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let validation = Validation::new(AlgorithmSet::parse_list(algorithm).unwrap()).issuer("joe");
    verifier_with(keys, validation)
}

#[test]
fn rfc7515_a1_to_a3_verify_the_rfc7519_jwt_and_expire_it() {
    let mut failures = Vec::new();
    for (name, algorithm) in [("a.1", "HS256"), ("a.2", "RS256"), ("a.3", "ES256")] {
        let config = erlang_config(&format!("rfc7515/{name}.config"));
        let token = rfc7515_token(&config, &format!("{name}.1"));
        let verifier = rfc7515_verifier(name, algorithm);

        let mut scratch = verifier.scratch();
        match verifier.verify(token.as_bytes(), UnixTime(1_300_819_000), &mut scratch) {
            Ok(verified) => {
                let iss = verified.claims.iss.map(|iss| iss.to_string());
                if iss.as_deref() != Some("joe") {
                    failures.push(format!("{name}: iss {iss:?}"));
                }
                let is_root = verified
                    .claims
                    .lookup("http://example.com/is_root")
                    .and_then(|value| value.as_bool());
                if is_root != Some(true) {
                    failures.push(format!("{name}: is_root {is_root:?}"));
                }
                if verified.algorithm().name() != algorithm {
                    failures.push(format!("{name}: verified as {}", verified.algorithm()));
                }
            }
            Err(rejection) => failures.push(format!("{name}: before exp: {rejection}")),
        }

        // The leeway edge: the last accepted second, then the first refused one.
        let last_second = check(&verifier, &token, UnixTime(RFC7519_EXP + LEEWAY - 1));
        expect_outcome(&mut failures, name, last_second, Outcome::Valid);
        let expired = check(&verifier, &token, UnixTime(RFC7519_EXP + LEEWAY));
        expect_outcome(&mut failures, name, expired, Outcome::Expired);
    }
    assert_no_failures(&failures);
}

#[test]
fn rfc7515_a4_es512_is_unsupported_and_denied() {
    // ring has no P-521: the key is skipped as unsupported, leaving nothing usable.
    let jwk = public_jwk(&json_vector("rfc7515/a.4.1.jwk+json"));
    match load(&jwk) {
        Err(KeySetError::Empty(skipped)) => assert_eq!(skipped.len(), 1, "{skipped:?}"),
        other => panic!("P-521 key: expected KeySetError::Empty, got {other:?}"),
    }
    assert!(
        AlgorithmSet::parse_list("ES512").is_err(),
        "ES512 must not be configurable"
    );

    let config = erlang_config("rfc7515/a.4.config");
    let token = rfc7515_token(&config, "a.4.1");
    assert_eq!(config["a.4.1.jws+json"], r#"{"alg":"ES512"}"#);
    // An EC verifier is the one an ES512 token could hope to slip through.
    let result = run(&rfc7515_verifier("a.3", "ES256"), &token);
    assert_eq!(
        outcome_of(&result),
        Outcome::AlgNotAllowed,
        "{}",
        shown(&result)
    );
}

#[test]
fn rfc7515_a5_unsecured_jws_is_never_allowed() {
    let config = erlang_config("rfc7515/a.5.config");
    let token = &config["a.5.compact"];
    assert_eq!(
        token,
        &format!("{}.{}.", config["a.5.b64"], config["a.5.payload-b64"])
    );
    let mut failures = Vec::new();
    for (name, algorithm) in [("a.1", "HS256"), ("a.2", "RS256"), ("a.3", "ES256")] {
        let result = run(&rfc7515_verifier(name, algorithm), token);
        expect_outcome(
            &mut failures,
            &format!("a.5 against {algorithm}"),
            result,
            Outcome::AlgNotAllowed,
        );
    }
    assert_no_failures(&failures);
}

// ---------------------------------------------------------------------------
// Private key material.

#[test]
fn verification_key_sets_refuse_private_key_material() {
    // Every published example key is a private key; a gateway holding one could
    // sign tokens, so loading it is refused rather than silently using its public half.
    let mut failures = Vec::new();
    for (what, jwk) in [
        (
            "RFC 7520 RSA",
            json_vector("rfc7520/4_1.rsa_v15_signature.json")["input"]["key"].clone(),
        ),
        ("RFC 7515 A.3 EC", json_vector("rfc7515/a.3.1.jwk+json")),
        (
            "RFC 8037 OKP",
            json_vector("rfc8037/jws.json")["input"]["key"].clone(),
        ),
    ] {
        match load(&jwk) {
            Err(KeySetError::InvalidKey { reason, .. })
                if reason.contains("holds private key material") => {}
            other => failures.push(format!(
                "{what}: expected a private-material refusal, got {other:?}"
            )),
        }
        if let Err(e) = load(&public_jwk(&jwk)) {
            failures.push(format!("{what}: public half refused: {e}"));
        }
    }
    assert_no_failures(&failures);
}

// ---------------------------------------------------------------------------
// RFC 7520 §4 (ietf-jose/cookbook).

fn cookbook(name: &str) -> Value {
    json_vector(&format!("rfc7520/{name}.json"))
}

/// `protected.payload.signature` from parts, the payload base64url-encoded from
/// the cookbook's input text.
fn compact_of(protected: &str, payload: &str, signature: &str) -> String {
    format!(
        "{protected}.{}.{signature}",
        base64url::encode(payload.as_bytes())
    )
}

#[test]
fn rfc7520_section4_compact_signatures() {
    let mut failures = Vec::new();
    let rsa = cookbook("4_1.rsa_v15_signature");
    let rsa_key = public_jwk(&rsa["input"]["key"]);
    let payload = str_at(&rsa, "/input/payload").to_owned();

    // 4.1 RS256, 4.2 PS384, 4.4 HS256: the published compact tokens. The RSA key
    // has no alg, so it may verify every RSA algorithm.
    for (name, algorithm) in [
        ("4_1.rsa_v15_signature", "RS256"),
        ("4_2.rsa-pss_signature", "PS384"),
        ("4_4.hmac-sha2_integrity_protection", "HS256"),
    ] {
        let vector = cookbook(name);
        let compact = str_at(&vector, "/output/compact");
        assert_eq!(
            compact,
            compact_of(
                str_at(&vector, "/signing/protected_b64u"),
                &payload,
                str_at(&vector, "/signing/sig")
            ),
            "{name}: transcription"
        );
        let key = public_jwk(&vector["input"]["key"]);
        let verifier = build(&key, algorithm);
        expect_signature_verified(&mut failures, name, run(&verifier, compact));
        // The cookbook payload begins "It’s"; one changed letter must break it.
        let tampered = compact.replacen(".SXTigJlz", ".SXTigJly", 1);
        assert_ne!(tampered, compact);
        expect_outcome(
            &mut failures,
            &format!("{name} tampered"),
            run(&verifier, &tampered),
            Outcome::BadSignature,
        );
    }

    // 4.3 ES512 over P-521: unsupported key, and the token is denied by its alg.
    let ecdsa = cookbook("4_3.ecdsa_signature");
    match load(&public_jwk(&ecdsa["input"]["key"])) {
        Err(KeySetError::Empty(_)) => {}
        other => failures.push(format!("4.3 P-521 key: expected Empty, got {other:?}")),
    }
    let rsa_verifier = build(&rsa_key, "RS256");
    expect_outcome(
        &mut failures,
        "4.3 ES512 token",
        run(&rsa_verifier, str_at(&ecdsa, "/output/compact")),
        Outcome::AlgNotAllowed,
    );
    assert_no_failures(&failures);
}

#[test]
fn rfc7520_section4_serializations_a_compact_verifier_can_see() {
    let mut failures = Vec::new();
    let hmac = cookbook("4_4.hmac-sha2_integrity_protection");
    let hmac_verifier = build(&hmac["input"]["key"], "HS256");
    let rsa_verifier = build(
        &public_jwk(&cookbook("4_1.rsa_v15_signature")["input"]["key"]),
        "RS256",
    );
    let payload = str_at(&hmac, "/input/payload").to_owned();

    // 4.5 detached content: the compact form has an empty payload segment, but the
    // MAC covers the real content, so without it the signature cannot verify.
    // Re-attaching the content gives a token whose signature does verify, and a
    // different content fails again.
    let detached = cookbook("4_5.signature_with_detached_content");
    let detached_compact = str_at(&detached, "/output/compact");
    let (head, signature) = detached_compact.split_once("..").expect("empty payload");
    expect_outcome(
        &mut failures,
        "4.5 detached",
        run(&hmac_verifier, detached_compact),
        Outcome::BadSignature,
    );
    expect_signature_verified(
        &mut failures,
        "4.5 re-attached",
        run(&hmac_verifier, &compact_of(head, &payload, signature)),
    );
    expect_outcome(
        &mut failures,
        "4.5 other content",
        run(
            &hmac_verifier,
            &compact_of(head, &payload.replace("Frodo", "Sam"), signature),
        ),
        Outcome::BadSignature,
    );

    // 4.6 is JSON-only because its kid is unprotected. The protected part alone
    // makes a valid compact JWS without kid; the single key is selected by alg.
    let partial = cookbook("4_6.protecting_specific_header_fields");
    assert!(partial["output"].get("compact").is_none());
    let token = compact_of(
        str_at(&partial, "/output/json_flat/protected"),
        &payload,
        str_at(&partial, "/output/json_flat/signature"),
    );
    expect_signature_verified(
        &mut failures,
        "4.6 protected part",
        run(&hmac_verifier, &token),
    );

    // 4.7 protects nothing in a header, so its compact form has an empty header,
    // which is not a JWS at all.
    let content_only = cookbook("4_7.protecting_content_only");
    assert!(
        content_only["output"]["json_flat"]
            .get("protected")
            .is_none()
    );
    let token = compact_of(
        "",
        &payload,
        str_at(&content_only, "/output/json_flat/signature"),
    );
    expect_outcome(
        &mut failures,
        "4.7 unprotected header",
        run(&hmac_verifier, &token),
        Outcome::Malformed,
    );

    // 4.8: each signature of the JSON form is a separate compact candidate.
    let multiple = cookbook("4_8.multiple_signatures");
    let signatures = multiple["output"]["json"]["signatures"].as_array().unwrap();
    assert_eq!(signatures.len(), 3);
    let candidate = |index: usize| {
        let entry = &signatures[index];
        compact_of(
            entry.get("protected").and_then(Value::as_str).unwrap_or(""),
            &payload,
            entry["signature"].as_str().unwrap(),
        )
    };
    expect_signature_verified(
        &mut failures,
        "4.8 RS256",
        run(&rsa_verifier, &candidate(0)),
    );
    expect_outcome(
        &mut failures,
        "4.8 ES512 (unprotected header)",
        run(&rsa_verifier, &candidate(1)),
        Outcome::Malformed,
    );
    expect_signature_verified(
        &mut failures,
        "4.8 HS256",
        run(&hmac_verifier, &candidate(2)),
    );
    // Its key list, as one set: the P-521 key is skipped, then RSA beside an HMAC
    // secret is the algorithm-confusion precondition and is refused.
    let keys: Vec<Value> = multiple["input"]["key"]
        .as_array()
        .unwrap()
        .iter()
        .map(public_jwk)
        .collect();
    match load(&serde_json::json!({ "keys": keys })) {
        Err(KeySetError::MixedSymmetry) => {}
        other => failures.push(format!(
            "4.8 key set: expected MixedSymmetry, got {other:?}"
        )),
    }
    assert_no_failures(&failures);
}

// ---------------------------------------------------------------------------
// RFC 7797 (unencoded payload).

/// RFC 7797 §4.1 (ordinary JWS of `$.02`) and §4.2 (`b64:false`, detached),
/// recomputed per the vectors README because the cookbook files are wrong.
const RFC7797_4_1: &str = "eyJhbGciOiJIUzI1NiJ9.JC4wMg.5mvfOroL-g7HyqJoozehmsaqmvTYGEq5jTI1gVvoEoQ";
const RFC7797_4_2_HEADER: &str = "eyJhbGciOiJIUzI1NiIsImI2NCI6ZmFsc2UsImNyaXQiOlsiYjY0Il19";
const RFC7797_4_2_SIGNATURE: &str = "A5dxf2s96_n5FLueVuW1Z_vh161FwXZC4YLPff6dmDY";

fn hmac_sha256_b64(secret_b64: &str, message: &str) -> String {
    let secret = base64url::decode(secret_b64.as_bytes()).unwrap();
    let mac = SigningKey::hmac(&secret)
        .sign(Algorithm::Hs256, message.as_bytes())
        .unwrap();
    base64url::encode(&mac)
}

#[test]
fn rfc7797_unencoded_payloads_are_unsupported_crit() {
    let mut failures = Vec::new();
    let file = json_vector("rfc7797/4.2.hmac-sha2_b64_false.json");
    let key = &file["input"]["key"];
    let secret = str_at(key, "/k");
    let payload = str_at(&file, "/input/payload");
    assert_eq!(payload, "$.02");
    let verifier = build(key, "HS256");

    // The ordinary §4.1 token verifies with this key, so the refusals below are
    // about b64, not about the key.
    expect_signature_verified(&mut failures, "RFC 7797 4.1", run(&verifier, RFC7797_4_1));

    // §4.2 is authentic (its MAC is over the unencoded payload), yet refused.
    assert_eq!(
        base64url::decode(RFC7797_4_2_HEADER.as_bytes()).unwrap(),
        br#"{"alg":"HS256","b64":false,"crit":["b64"]}"#
    );
    assert_eq!(
        hmac_sha256_b64(secret, &format!("{RFC7797_4_2_HEADER}.{payload}")),
        RFC7797_4_2_SIGNATURE
    );
    let detached = format!("{RFC7797_4_2_HEADER}..{RFC7797_4_2_SIGNATURE}");
    expect_outcome(
        &mut failures,
        "RFC 7797 4.2",
        run(&verifier, &detached),
        Outcome::UnsupportedCrit,
    );

    // The cookbook's own header omits crit (README anomaly); its MAC matches that
    // header, and b64 alone is still refused.
    let header = str_at(&file, "/signing/protected_b64u");
    let signature = str_at(&file, "/signing/sig");
    assert_eq!(
        base64url::decode(header.as_bytes()).unwrap(),
        br#"{"alg":"HS256","b64":false}"#
    );
    assert_eq!(
        hmac_sha256_b64(secret, &format!("{header}.{payload}")),
        signature
    );
    expect_outcome(
        &mut failures,
        "cookbook 4.2 header without crit",
        run(&verifier, &format!("{header}..{signature}")),
        Outcome::UnsupportedCrit,
    );

    // The second file: its compact carries the RFC header with an attached
    // unencoded payload; its protected_b64u is broken JSON (README anomaly).
    let compatible = json_vector("rfc7797/hmac-sha2_b64_false.json");
    let compact = str_at(&compatible, "/output/compact");
    assert!(compact.starts_with(RFC7797_4_2_HEADER));
    expect_outcome(
        &mut failures,
        "cookbook compact b64:false",
        run(&verifier, compact),
        Outcome::UnsupportedCrit,
    );
    let broken = format!(
        "{}..{}",
        str_at(&compatible, "/signing/protected_b64u"),
        str_at(&compatible, "/signing/sig")
    );
    let result = run(&verifier, &broken);
    if !matches!(result, Err(r) if r.outcome() == Outcome::Malformed
        && r.detail() == "header is not valid JSON")
    {
        failures.push(format!("broken cookbook header: got {}", shown(&result)));
    }
    assert_no_failures(&failures);
}

// ---------------------------------------------------------------------------
// RFC 8037 (Ed25519).

#[test]
fn rfc8037_ed25519_signature_verifies() {
    let mut failures = Vec::new();
    let vector = json_vector("rfc8037/jws.json");
    let verifier = build(&public_jwk(&vector["input"]["key"]), "EdDSA");
    let compact = str_at(&vector, "/output/compact");
    assert_eq!(
        compact,
        compact_of(
            str_at(&vector, "/signing/protected_b64u"),
            str_at(&vector, "/input/payload"),
            str_at(&vector, "/signing/sig")
        )
    );
    expect_signature_verified(&mut failures, "RFC 8037", run(&verifier, compact));
    let tampered = compact_of(
        str_at(&vector, "/signing/protected_b64u"),
        "Example of Ed25519 signinG",
        str_at(&vector, "/signing/sig"),
    );
    expect_outcome(
        &mut failures,
        "RFC 8037 tampered",
        run(&verifier, &tampered),
        Outcome::BadSignature,
    );
    assert_no_failures(&failures);
}

// ---------------------------------------------------------------------------
// Wycheproof.

const SIGNATURE_FILE: &str = "wycheproof/json_web_signature_test.json";
const KEY_FILE: &str = "wycheproof/json_web_key_test.json";
const CRYPTO_FILE: &str = "wycheproof/json_web_crypto_test.json";

/// What a case listed in the vectors README's anomalies must produce instead of
/// what its `result` says.
#[derive(Debug, Clone, Copy)]
enum Expected {
    /// The signature verifies (so only the non-JWT payload stops it).
    SignatureVerified,
    /// Refused with exactly this outcome.
    Rejected(Outcome),
    /// The group's key cannot be loaded as a verification key.
    KeySetRefused,
}

struct Anomaly {
    file: &'static str,
    tc_id: u64,
    expected: Expected,
    why: &'static str,
}

const ANOMALIES: [Anomaly; 8] = [
    Anomaly {
        file: SIGNATURE_FILE,
        tc_id: 346,
        expected: Expected::Rejected(Outcome::AlgNotAllowed),
        why: "valid, but a PS384 token (RFC 7520 Fig. 20) under a key bound to PS256",
    },
    Anomaly {
        file: SIGNATURE_FILE,
        tc_id: 350,
        expected: Expected::Rejected(Outcome::AlgNotAllowed),
        why: "valid, but a PS384 token (RFC 7520 Fig. 20) under a key bound to PS256",
    },
    Anomaly {
        file: SIGNATURE_FILE,
        tc_id: 347,
        expected: Expected::KeySetRefused,
        why: "valid, but ES512 with a P-521 key bound to \"ES521\", not a JWS algorithm",
    },
    Anomaly {
        file: SIGNATURE_FILE,
        tc_id: 351,
        expected: Expected::KeySetRefused,
        why: "valid, but ES512 with a P-521 key bound to \"ES521\", not a JWS algorithm",
    },
    Anomaly {
        file: SIGNATURE_FILE,
        tc_id: 367,
        expected: Expected::SignatureVerified,
        why: "invalid, but byte-identical to tcId 357 (the padding it names is missing)",
    },
    Anomaly {
        file: SIGNATURE_FILE,
        tc_id: 370,
        expected: Expected::SignatureVerified,
        why: "invalid, but byte-identical to tcId 357 (the padding it names is missing)",
    },
    Anomaly {
        file: SIGNATURE_FILE,
        tc_id: 372,
        expected: Expected::Rejected(Outcome::Malformed),
        why: "valid, but a '?' sits in the header segment; the MAC is over the text without it",
    },
    Anomaly {
        file: SIGNATURE_FILE,
        tc_id: 373,
        expected: Expected::Rejected(Outcome::Malformed),
        why: "valid, but a '?' sits in the payload segment; the MAC is over the text without it",
    },
];

fn anomaly(file: &str, tc_id: u64) -> Option<&'static Anomaly> {
    ANOMALIES
        .iter()
        .find(|a| a.file == file && a.tc_id == tc_id)
}

fn has_flag(case: &Value, flag: &str) -> bool {
    case["flags"]
        .as_array()
        .is_some_and(|flags| flags.iter().any(|f| f == flag))
}

/// The outcomes an invalid case may end in, where its comment or flags say plainly
/// what was done to the token. Checked against every case; unlisted cases are only
/// required to be refused before the signature verifies.
fn obvious_outcomes(group: &str, case: &Value) -> Option<&'static [Outcome]> {
    use Outcome::{AlgNotAllowed, BadSignature, Malformed, UnknownKid};
    let comment = case["comment"].as_str().unwrap_or_default();
    let lower = comment.to_ascii_lowercase();
    if has_flag(case, "AlgIsNone") || comment == "rejectsNoneAlgorithmAndMissingSignature" {
        return Some(&[AlgNotAllowed]);
    }
    if has_flag(case, "JsonSerialization") {
        return Some(&[Malformed]);
    }
    // A changed signature is either canonical base64url that fails to verify, or
    // not canonical and refused while decoding.
    if has_flag(case, "ModifiedSignature")
        || has_flag(case, "ModifiedPadding")
        || lower == "rejectsmodifiedsignature"
        || lower == "modifiedsignature"
    {
        return Some(&[BadSignature, Malformed]);
    }
    // The header names another algorithm than the key's (refused by the allow-list)
    // or the same one with a signature from another primitive.
    if has_flag(case, "WrongPrimitive") {
        return Some(&[AlgNotAllowed, BadSignature]);
    }
    match comment {
        "rejectsMissingSignature"
        | "rejectsModifiedPayload"
        | "rejectsMissingPayload"
        | "rejectsAttackerProvidedEmbeddedJwk" => return Some(&[BadSignature]),
        // Only the kid was changed ("kid-..." to "Xid-...").
        "rejectsModifiedHeader" => return Some(&[UnknownKid]),
        "rejectsEmptyString" | "rejectsExtraEmptyComponent" | "rejectsExtraComponent" => {
            return Some(&[Malformed]);
        }
        // An HS256 token against an EC key: HS256 cannot be in an EC allow-list.
        "rejectsSymmetryConfusionAttacks_aesKeyFromEcVerificationKeyBytes" => {
            return Some(&[AlgNotAllowed]);
        }
        _ => {}
    }
    // Too few segments, or an empty header: not a compact JWS.
    if comment.starts_with("rejectsMissingHeader")
        || comment.ends_with("AndSeparator")
        || comment.ends_with("AndSeparators")
    {
        return Some(&[Malformed]);
    }
    if group == "base64"
        && [
            "spaces",
            "invalidcharacter",
            "unusedbits",
            "incorrectlyencoded",
        ]
        .iter()
        .any(|marker| lower.contains(marker))
    {
        return Some(&[Malformed]);
    }
    // Out-of-range r/s and wrong-length ECDSA signatures, all canonical base64url.
    if group == "SpecialCaseEs256" {
        return Some(&[BadSignature]);
    }
    None
}

/// The group's verification keys: `public`, or for secret-only groups `private`
/// with each oct key reduced to its public-facing members (the secret is the key)
/// and any other key stripped of private members.
fn group_keys(group: &Value) -> Value {
    if let Some(public) = group.get("public") {
        return public.clone();
    }
    let reduce = |jwk: &Value| {
        if jwk["kty"] == "oct" {
            let mut kept = jwk.clone();
            kept.as_object_mut().unwrap().retain(|name, _| {
                ["kty", "k", "kid", "alg", "use", "key_ops"].contains(&name.as_str())
            });
            kept
        } else {
            public_jwk(jwk)
        }
    };
    let private = &group["private"];
    match private.get("keys").and_then(Value::as_array) {
        Some(keys) => serde_json::json!({ "keys": keys.iter().map(reduce).collect::<Vec<_>>() }),
        None => reduce(private),
    }
}

fn jwks_entries(keys: &Value) -> Vec<&Value> {
    match keys.get("keys").and_then(Value::as_array) {
        Some(entries) => entries.iter().collect(),
        None => vec![keys],
    }
}

fn case_token(case: &Value) -> String {
    match case.get("jws").or_else(|| case.get("jwe")) {
        Some(Value::String(token)) => token.clone(),
        // JSON serializations are stored as objects in json_web_crypto_test.json.
        Some(other) => other.to_string(),
        None => panic!("tcId {}: no jws or jwe", case["tcId"]),
    }
}

fn header_alg(token: &str) -> Option<String> {
    let header = base64url::decode(token.split('.').next()?.as_bytes()).ok()?;
    let header: Value = serde_json::from_slice(&header).ok()?;
    header.get("alg")?.as_str().map(str::to_owned)
}

fn add_supported(algorithms: &mut AlgorithmSet, name: &str) {
    if let Ok(parsed) = AlgorithmSet::parse_list(name) {
        parsed.iter().for_each(|a| algorithms.insert(a));
    }
}

/// The allow-list a deployment would configure: the keys' own supported `alg`s, or
/// when they name none, the supported algorithms the group's tokens use.
fn group_algorithms(keys: &Value, group: &Value) -> AlgorithmSet {
    let mut algorithms = AlgorithmSet::EMPTY;
    for jwk in jwks_entries(keys) {
        if let Some(name) = jwk.get("alg").and_then(Value::as_str) {
            add_supported(&mut algorithms, name);
        }
    }
    if algorithms.is_empty() {
        for case in group["tests"].as_array().unwrap() {
            if let Some(name) = case.get("jws").and_then(Value::as_str).and_then(header_alg) {
                add_supported(&mut algorithms, &name);
            }
        }
    }
    algorithms
}

#[derive(Default)]
struct Tally {
    cases: usize,
    signature_verified: usize,
    refused_key_sets: usize,
    jwe: usize,
    jwe_named_encrypted: usize,
    anomalies: Vec<u64>,
}

fn run_wycheproof(file: &str, failures: &mut Vec<String>) -> Tally {
    let document = json_vector(file);
    let mut tally = Tally::default();
    // A JWE is refused while splitting, before any key is used.
    let split_only = verifier(KeySet::from_hmac_secret(&[7; 32], None).unwrap(), "HS256");
    for group in document["testGroups"].as_array().unwrap() {
        let name = group["comment"].as_str().unwrap_or_default();
        let keys = group_keys(group);
        let algorithms = group_algorithms(&keys, group);
        let setup = load(&keys)
            .map_err(|e| format!("KeySetError::{e:?}"))
            .and_then(|set| {
                Verifier::new(set, Validation::new(algorithms))
                    .map_err(|e| format!("VerifierError::{e:?} (allow-list {algorithms})"))
            });
        for case in group["tests"].as_array().unwrap() {
            tally.cases += 1;
            let tc_id = case["tcId"].as_u64().unwrap();
            let result_field = case["result"].as_str().unwrap();
            let label = format!(
                "{file} tcId {tc_id} [{name}] {} ({result_field})",
                case["comment"].as_str().unwrap_or_default()
            );
            let token = case_token(case);

            if case.get("jwe").is_some() {
                tally.jwe += 1;
                let result = run(&split_only, &token);
                let five_segments = token.split('.').count() == 5;
                if five_segments {
                    tally.jwe_named_encrypted += 1;
                }
                let ok = match &result {
                    Err(r) if r.outcome() == Outcome::Malformed => {
                        !five_segments || r.detail() == ENCRYPTED
                    }
                    _ => false,
                };
                if !ok {
                    failures.push(format!("{label}: JWE got {}", shown(&result)));
                }
                if let Ok(verifier) = &setup {
                    failures.push(format!(
                        "{label}: an encryption key loaded as a verification key: {:?}",
                        verifier.keys()
                    ));
                }
                continue;
            }

            let listed = anomaly(file, tc_id);
            if listed.is_some() {
                tally.anomalies.push(tc_id);
            }
            let verifier = match &setup {
                Ok(verifier) => verifier,
                Err(reason) => {
                    tally.refused_key_sets += 1;
                    let excused =
                        matches!(listed, Some(a) if matches!(a.expected, Expected::KeySetRefused));
                    if result_field != "invalid" && !excused {
                        failures.push(format!("{label}: key set refused: {reason}"));
                    }
                    continue;
                }
            };

            let result = run(verifier, &token);
            if signature_verified(&result) {
                tally.signature_verified += 1;
            }
            // No Wycheproof payload is a JWT.
            if result.is_ok() {
                failures.push(format!("{label}: accepted a non-JWT payload"));
                continue;
            }
            if let Some(listed) = listed {
                let fits = match listed.expected {
                    Expected::SignatureVerified => signature_verified(&result),
                    Expected::Rejected(outcome) => {
                        outcome_of(&result) == outcome && !signature_verified(&result)
                    }
                    Expected::KeySetRefused => false,
                };
                if !fits {
                    failures.push(format!(
                        "{label}: README anomaly ({}) expects {:?}, got {}",
                        listed.why,
                        listed.expected,
                        shown(&result)
                    ));
                }
                continue;
            }
            match result_field {
                "valid" => {
                    if !signature_verified(&result) {
                        failures.push(format!(
                            "{label}: signature should verify, got {}",
                            shown(&result)
                        ));
                    }
                }
                "invalid" => {
                    if signature_verified(&result) {
                        failures.push(format!("{label}: signature verified"));
                    } else if let Some(allowed) = obvious_outcomes(name, case)
                        && !allowed.contains(&outcome_of(&result))
                    {
                        failures.push(format!(
                            "{label}: expected one of {allowed:?}, got {}",
                            shown(&result)
                        ));
                    }
                }
                other => failures.push(format!("{label}: unexpected result {other:?}")),
            }
        }
    }
    let declared = document["numberOfTests"].as_u64().unwrap();
    if tally.cases as u64 != declared {
        failures.push(format!(
            "{file}: ran {} cases, the file declares {declared}",
            tally.cases
        ));
    }
    tally
}

#[test]
fn wycheproof_json_web_signature() {
    let mut failures = Vec::new();
    let tally = run_wycheproof(SIGNATURE_FILE, &mut failures);
    at_least(&mut failures, "cases", tally.cases, 401);
    // 46 valid cases, less the 6 anomalies expected to fail, plus 367 and 370.
    at_least(
        &mut failures,
        "verified signatures",
        tally.signature_verified,
        42,
    );
    let mut seen = tally.anomalies.clone();
    seen.sort_unstable();
    if seen != [346, 347, 350, 351, 367, 370, 372, 373] {
        failures.push(format!("README anomalies met: {seen:?}"));
    }
    assert_no_failures(&failures);
}

#[test]
fn wycheproof_padding_anomalies_are_the_valid_token() {
    // The README's reading of tcIds 367/370 and 372/373, checked on the data.
    let document = json_vector(SIGNATURE_FILE);
    let tokens: HashMap<u64, String> = document["testGroups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|group| group["tests"].as_array().unwrap())
        .map(|case| (case["tcId"].as_u64().unwrap(), case_token(case)))
        .collect();
    let valid_mac = &tokens[&357];
    assert_eq!(&tokens[&367], valid_mac);
    assert_eq!(&tokens[&370], valid_mac);
    for tc_id in [372, 373] {
        assert_ne!(&tokens[&tc_id], valid_mac);
        assert_eq!(
            &tokens[&tc_id].replacen('?', "", 1),
            valid_mac,
            "tcId {tc_id}"
        );
    }
}

#[test]
fn wycheproof_json_web_key() {
    let mut failures = Vec::new();
    let tally = run_wycheproof(KEY_FILE, &mut failures);
    at_least(&mut failures, "cases", tally.cases, 26);
    // Every weak, malformed, misused or ambiguous key of the file is refused at load.
    at_least(
        &mut failures,
        "refused key sets",
        tally.refused_key_sets,
        20,
    );
    at_least(
        &mut failures,
        "verified signatures",
        tally.signature_verified,
        5,
    );
    assert_no_failures(&failures);
}

#[test]
fn wycheproof_duplicate_kid_is_refused_once_its_key_is_canonical() {
    // The file's duplicate-kid set is refused for its second key's non-canonical
    // `k` (README anomaly) before the kid rule is reached; with that `k` made
    // canonical, the kid rule itself must refuse the set.
    use base64::Engine as _;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    let lenient = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::RequireNone),
    );
    let document = json_vector(KEY_FILE);
    let group = document["testGroups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|group| group["comment"] == "jws_duplicate_kid")
        .expect("jws_duplicate_kid group");
    let mut keys = group_keys(group);
    match load(&keys) {
        Err(KeySetError::InvalidKey {
            index: 1, reason, ..
        }) if reason.contains("non-canonical") => {}
        other => panic!("as published: {other:?}"),
    }
    let second = &mut keys["keys"][1];
    let secret = lenient.decode(second["k"].as_str().unwrap()).unwrap();
    second["k"] = Value::String(base64url::encode(&secret));
    assert_eq!(
        load(&keys).err(),
        Some(KeySetError::DuplicateKid("kid-aes-sign".into()))
    );
}

#[test]
fn wycheproof_json_web_crypto() {
    let mut failures = Vec::new();
    let tally = run_wycheproof(CRYPTO_FILE, &mut failures);
    at_least(&mut failures, "cases", tally.cases, 83);
    at_least(&mut failures, "JWE cases", tally.jwe, 34);
    // The other JWE cases lack a segment or are JSON, so are merely malformed.
    at_least(
        &mut failures,
        "five-segment JWE cases",
        tally.jwe_named_encrypted,
        23,
    );
    at_least(
        &mut failures,
        "verified signatures",
        tally.signature_verified,
        4,
    );
    assert_no_failures(&failures);
}
