//! Proves the engine allocates nothing per token once its scratch buffers are warm:
//! a counting global allocator (per thread, so parallel tests do not interfere)
//! watches thousands of verifications of every outcome class, for every key family.
//!
//! What this cannot see: allocations inside aws-lc's C code, which RSA, ECDSA and
//! Ed25519 verification use (valgrind counts about 25 `malloc` calls per RS256 verification
//! there; `ring` made 5 Rust allocations per RS256 verification before it was
//! replaced for RSA, and was slower). Everything jwtgate itself does is covered.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use crate::common;

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
    key: &jwtgate::internals::SigningKey,
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
        jwtgate_engine::base64url::encode(br#"{"alg":"none"}"#),
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
fn verification_never_allocates_once_warm() {
    let secret = b"0123456789abcdef0123456789abcdef";
    let cases = [
        (
            KeySet::from_hmac_secret(secret, Some("k")).unwrap(),
            jwtgate::internals::SigningKey::hmac(secret),
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
        (
            public_keys("rsa2048-a"),
            signing_key("rsa2048-a", Algorithm::Rs256),
            Algorithm::Rs256,
        ),
        (
            public_keys("rsa2048-a"),
            signing_key("rsa2048-a", Algorithm::Ps256),
            Algorithm::Ps256,
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
        let rounds = if algorithm.family() == jwtgate_engine::KeyFamily::P384 {
            20
        } else {
            100
        };
        let count = allocations_per_round(&verifier, &tokens, rounds);
        assert_eq!(
            count,
            0,
            "{algorithm}: {count} allocations over {rounds} rounds of {} tokens",
            tokens.len()
        );
    }
}
