//! Proves the engine allocates nothing per token once its scratch buffers are warm:
//! a counting global allocator (per thread, so parallel tests do not interfere)
//! watches thousands of verifications of every outcome class.
//!
//! RSA is the one exception, and it is the backend's: `ring` 0.17 rebuilds the RSA
//! public key (heap-allocated limbs) inside every verification. The RSA test proves
//! jwtgate adds no allocation on top of what raw `ring` does for the same signature.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::*;
use jwtgate::{Algorithm, KeySet, Outcome};

struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: delegates every call to the system allocator unchanged; the counter is a
// const-initialised thread-local without a destructor, so touching it cannot allocate
// or re-enter the allocator.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// Tokens that end in every phase of the engine, so each early exit is covered.
fn mixed_tokens(
    key: &jwtgate::crypto::SigningKey,
    algorithm: Algorithm,
    kid: &str,
) -> Vec<(String, Outcome)> {
    let header = format!(r#"{{"alg":"{algorithm}","kid":"{kid}","typ":"JWT"}}"#);
    let valid = mint(&header, &fresh_claims(), key, algorithm);
    let expired = mint(
        &header,
        &format!(r#"{{"sub":"u","exp":{}}}"#, NOW.0 - 3600),
        key,
        algorithm,
    );
    let wrong_kid = mint(
        &format!(r#"{{"alg":"{algorithm}","kid":"nope"}}"#),
        &fresh_claims(),
        key,
        algorithm,
    );
    let mut tampered = valid.clone().into_bytes();
    let middle = tampered.iter().position(|&b| b == b'.').unwrap() + 3;
    tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
    let none = format!(
        "{}.{}.",
        jwtgate::jose::base64url::encode(br#"{"alg":"none"}"#),
        "e30"
    );
    vec![
        (valid, Outcome::Valid),
        (expired, Outcome::Expired),
        (wrong_kid, Outcome::UnknownKid),
        (String::from_utf8(tampered).unwrap(), Outcome::BadSignature),
        (none, Outcome::AlgNotAllowed),
        ("garbage".to_owned(), Outcome::Malformed),
        ("a.b.c.d.e".to_owned(), Outcome::Malformed),
    ]
}

fn allocations_per_round(
    verifier: &jwtgate::Verifier,
    tokens: &[(String, Outcome)],
    rounds: usize,
) -> u64 {
    let mut scratch = verifier.scratch();
    let check = |scratch: &mut jwtgate::Scratch| {
        for (token, expected) in tokens {
            let got = match verifier.verify(token.as_bytes(), NOW, scratch) {
                Ok(verified) => {
                    assert_eq!(
                        verified.claims.sub.map(|s| s.as_plain() == Some("user-1")),
                        Some(true)
                    );
                    Outcome::Valid
                }
                Err(rejection) => rejection.outcome(),
            };
            assert_eq!(got, *expected);
        }
    };
    check(&mut scratch); // warm-up: buffers grow to their steady size here
    let before = allocations();
    for _ in 0..rounds {
        check(&mut scratch);
    }
    allocations() - before
}

#[test]
fn hmac_ecdsa_and_eddsa_verification_never_allocate() {
    let secret = b"0123456789abcdef0123456789abcdef";
    let cases = [
        (
            KeySet::from_hmac_secret(secret, Some("k")).unwrap(),
            jwtgate::crypto::SigningKey::hmac(secret),
            Algorithm::Hs256,
        ),
        (
            public_keys("p256"),
            signing_key("p256", Algorithm::Es256),
            Algorithm::Es256,
        ),
        (
            public_keys("p384"),
            signing_key("p384", Algorithm::Es384),
            Algorithm::Es384,
        ),
        (
            public_keys("ed25519"),
            signing_key("ed25519", Algorithm::EdDsa),
            Algorithm::EdDsa,
        ),
    ];
    for (keys, signer, algorithm) in cases {
        // PEM keys have no kid; HMAC's has "k". Build kid-appropriate tokens.
        let kid_of_set = keys.keys()[0].kid().map(str::to_owned);
        let verifier = verifier(keys, algorithm.name());
        let mut tokens = mixed_tokens(&signer, algorithm, kid_of_set.as_deref().unwrap_or("x"));
        if kid_of_set.is_none() {
            // No kid in the set: tokens naming a kid are unknown, so drop the kid.
            let header = format!(r#"{{"alg":"{algorithm}"}}"#);
            tokens[0] = (
                mint(&header, &fresh_claims(), &signer, algorithm),
                Outcome::Valid,
            );
            tokens[1].1 = Outcome::UnknownKid;
            tokens[3].1 = Outcome::UnknownKid;
        }
        let count = allocations_per_round(&verifier, &tokens, 200);
        assert_eq!(
            count,
            0,
            "{algorithm}: {count} allocations over 200 rounds of {} tokens",
            tokens.len()
        );
    }
}

#[test]
fn rsa_verification_allocates_only_what_ring_itself_does() {
    let signer = signing_key("rsa2048-a", Algorithm::Rs256);
    let verifier = verifier(public_keys("rsa2048-a"), "RS256");
    let token = mint(
        r#"{"alg":"RS256"}"#,
        &fresh_claims(),
        &signer,
        Algorithm::Rs256,
    );
    let tokens = vec![(token.clone(), Outcome::Valid)];
    let rounds = 50;
    let ours = allocations_per_round(&verifier, &tokens, rounds);

    // The same signature through raw ring, with the modulus and exponent it needs.
    let der = pem_to_der(&read_data("rsa2048-a.pk8.pem"));
    let pair = ring::signature::RsaKeyPair::from_pkcs8(&der).unwrap();
    let components = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public());
    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    let signature = jwtgate::jose::base64url::decode(signature.as_bytes()).unwrap();
    let before = allocations();
    for _ in 0..rounds {
        components
            .verify(
                &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                signing_input.as_bytes(),
                &signature,
            )
            .unwrap();
    }
    let ring_alone = allocations() - before;
    assert!(
        ring_alone > 0,
        "ring 0.17 is expected to allocate inside RSA verification"
    );
    assert_eq!(
        ours, ring_alone,
        "jwtgate must add no allocation on top of ring's own"
    );
}
