//! `KeySet::parse` over arbitrary bytes: a JWKS, a single JWK or PEM public
//! keys, recognised by content. A set that loads is never empty, never mixes
//! HMAC secrets with public keys, names each `kid` once, and every key can
//! verify at least one algorithm.
#![no_main]

use std::collections::HashSet;

use jwtgate::KeySet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let keys = match KeySet::parse(data) {
        Ok(keys) => keys,
        Err(error) => {
            let _ = error.to_string();
            return;
        }
    };
    assert!(!keys.is_empty() && keys.len() == keys.keys().len());
    let mut kids = HashSet::new();
    for key in keys.keys() {
        assert!(!key.algorithms().is_empty(), "{}", key.describe());
        assert_eq!(
            key.algorithms().has_symmetric(),
            keys.is_symmetric(),
            "{}",
            key.describe()
        );
        if let Some(kid) = key.kid() {
            assert!(kids.insert(kid), "kid {kid:?} twice");
        }
    }
    for warning in keys.warnings() {
        let _ = warning.to_string();
    }
    if let [only] = keys.keys() {
        for algorithm in only.algorithms().iter() {
            assert!(keys.select(None, algorithm).is_ok(), "{algorithm}");
        }
    }
});
