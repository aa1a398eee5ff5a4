//! Every algorithm signs and verifies with the committed key material (PEM keys).
#![allow(clippy::unwrap_used)]
use crate::common;
use common::*;
use jwtgate::{Algorithm, Outcome};

#[test]
fn every_algorithm_round_trips_with_committed_keys() {
    for (name, algorithms) in [
        (
            "rsa2048-a",
            &[
                Algorithm::Rs256,
                Algorithm::Rs384,
                Algorithm::Rs512,
                Algorithm::Ps256,
                Algorithm::Ps384,
                Algorithm::Ps512,
            ][..],
        ),
        ("p256", &[Algorithm::Es256]),
        ("p384", &[Algorithm::Es384]),
        ("ed25519", &[Algorithm::EdDsa]),
    ] {
        for &algorithm in algorithms {
            let key = signing_key(name, algorithm);
            let verifier = verifier(public_keys(name), algorithm.name());
            let token = mint(
                &format!(r#"{{"alg":"{algorithm}"}}"#),
                &fresh_claims(),
                &key,
                algorithm,
            );
            assert_eq!(
                outcome(&verifier, &token),
                Outcome::Valid,
                "{name} {algorithm}"
            );
        }
    }
}
