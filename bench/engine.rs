//! Engine throughput per algorithm, side by side in one run:
//!
//! - `ring`: raw `ring` verification of the same signature over the same bytes
//!   (the floor: what the signature alone costs);
//! - `jwtgate`: the full verification (split, strict decode, header, key selection,
//!   signature, claims, time and identity checks);
//! - `jsonwebtoken`: the `jsonwebtoken` crate's `decode` with its aws-lc-rs backend,
//!   the same key and the same checks (issuer, audience, exp with 60 s leeway);
//! - `jwtgate cached`: the same verification through a `TokenCache` that holds
//!   the token (a hit: the stored claims typed again and their time checked).
//!
//! `scripts/bench-engine.sh` runs this pinned to one CPU and prints medians, ops/s
//! and the ratios, measured interleaved.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use base64::Engine as _;
use criterion::Criterion;
use jwtgate::internals::SigningKey;
use jwtgate::{
    Algorithm, AlgorithmSet, CacheSettings, KeySet, Lookup, TokenCache, UnixTime, Validation,
    Verifier,
};
use jwtgate_engine::base64url;
use ring::signature::{self, KeyPair as _};

/// Tokens are minted at the real clock so that `jsonwebtoken`, which reads the
/// system clock itself, judges exactly the same validity window.
static NOW: std::sync::LazyLock<i64> = std::sync::LazyLock::new(|| UnixTime::now().0);
const ISSUER: &str = "https://login.example.com/";
const AUDIENCE: &str = "orders-api";

fn data(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn pkcs8(name: &str) -> Vec<u8> {
    let pem = data(name);
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct TypicalClaims {
    iss: String,
    sub: String,
    aud: String,
    exp: i64,
    iat: i64,
    jti: String,
    scope: String,
}

/// Raw `ring` verification of `(message, signature)`.
type RingVerify = Box<dyn Fn(&[u8], &[u8]) -> bool>;

/// One algorithm's fixtures: the same token and key for all three contenders.
struct Case {
    algorithm: Algorithm,
    token: String,
    jwks: String,
    ring_verify: RingVerify,
    jsonwebtoken_key: jsonwebtoken::DecodingKey,
    jsonwebtoken_algorithm: jsonwebtoken::Algorithm,
}

fn typical_token(algorithm: Algorithm, signer: &SigningKey, kid: &str) -> String {
    let header = format!(r#"{{"alg":"{algorithm}","typ":"JWT","kid":"{kid}"}}"#);
    let claims = format!(
        r#"{{"iss":"{ISSUER}","sub":"user-81723","aud":"{AUDIENCE}","exp":{},"iat":{},"jti":"5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b","scope":"orders:read orders:write"}}"#,
        *NOW + 3600,
        *NOW
    );
    let mut token = base64url::encode(header.as_bytes());
    token.push('.');
    base64url::encode_into(claims.as_bytes(), &mut token);
    let signature = signer.sign(algorithm, token.as_bytes()).unwrap();
    token.push('.');
    base64url::encode_into(&signature, &mut token);
    token
}

fn cases() -> Vec<Case> {
    let b64 = |bytes: &[u8]| base64url::encode(bytes);
    let mut cases = Vec::new();

    let rsa_der = pkcs8("rsa2048-a.pk8.pem");
    let rsa = signature::RsaKeyPair::from_pkcs8(&rsa_der).unwrap();
    let components = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(rsa.public());
    for (algorithm, ring_alg, jwt_alg) in [
        (
            Algorithm::Rs256,
            &signature::RSA_PKCS1_2048_8192_SHA256,
            jsonwebtoken::Algorithm::RS256,
        ),
        (
            Algorithm::Ps256,
            &signature::RSA_PSS_2048_8192_SHA256,
            jsonwebtoken::Algorithm::PS256,
        ),
    ] {
        let signer = SigningKey::from_pkcs8(algorithm, &rsa_der).unwrap();
        let (n, e) = (components.n.clone(), components.e.clone());
        cases.push(Case {
            algorithm,
            token: typical_token(algorithm, &signer, "k1"),
            jwks: format!(
                r#"{{"keys":[{{"kty":"RSA","kid":"k1","alg":"{algorithm}","n":"{}","e":"{}"}}]}}"#,
                b64(&n),
                b64(&e)
            ),
            ring_verify: Box::new(move |message, sig| {
                signature::RsaPublicKeyComponents { n: &n, e: &e }
                    .verify(ring_alg, message, sig)
                    .is_ok()
            }),
            jsonwebtoken_key: jsonwebtoken::DecodingKey::from_rsa_raw_components(
                &components.n,
                &components.e,
            ),
            jsonwebtoken_algorithm: jwt_alg,
        });
    }

    for (algorithm, file, signing, verifying, crv, jwt_alg) in [
        (
            Algorithm::Es256,
            "p256.pk8.pem",
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &signature::ECDSA_P256_SHA256_FIXED,
            "P-256",
            jsonwebtoken::Algorithm::ES256,
        ),
        (
            Algorithm::Es384,
            "p384.pk8.pem",
            &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            &signature::ECDSA_P384_SHA384_FIXED,
            "P-384",
            jsonwebtoken::Algorithm::ES384,
        ),
    ] {
        let der = pkcs8(file);
        let pair =
            signature::EcdsaKeyPair::from_pkcs8(signing, &der, &ring::rand::SystemRandom::new())
                .unwrap();
        let point = pair.public_key().as_ref().to_vec();
        let size = (point.len() - 1) / 2;
        let (x, y) = (point[1..=size].to_vec(), point[1 + size..].to_vec());
        let signer = SigningKey::from_pkcs8(algorithm, &der).unwrap();
        let ring_point = point.clone();
        cases.push(Case {
            algorithm,
            token: typical_token(algorithm, &signer, "k1"),
            jwks: format!(
                r#"{{"keys":[{{"kty":"EC","crv":"{crv}","kid":"k1","alg":"{algorithm}","x":"{}","y":"{}"}}]}}"#,
                b64(&x),
                b64(&y)
            ),
            ring_verify: Box::new(move |message, sig| {
                signature::UnparsedPublicKey::new(verifying, &ring_point).verify(message, sig).is_ok()
            }),
            jsonwebtoken_key: jsonwebtoken::DecodingKey::from_ec_components(&b64(&x), &b64(&y)).unwrap(),
            jsonwebtoken_algorithm: jwt_alg,
        });
    }

    let ed_der = pkcs8("ed25519.pk8.pem");
    let ed = signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&ed_der).unwrap();
    let ed_public = ed.public_key().as_ref().to_vec();
    let signer = SigningKey::from_pkcs8(Algorithm::EdDsa, &ed_der).unwrap();
    let ring_public = ed_public.clone();
    cases.push(Case {
        algorithm: Algorithm::EdDsa,
        token: typical_token(Algorithm::EdDsa, &signer, "k1"),
        jwks: format!(
            r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"k1","alg":"EdDSA","x":"{}"}}]}}"#,
            b64(&ed_public)
        ),
        ring_verify: Box::new(move |message, sig| {
            signature::UnparsedPublicKey::new(&signature::ED25519, &ring_public)
                .verify(message, sig)
                .is_ok()
        }),
        jsonwebtoken_key: jsonwebtoken::DecodingKey::from_ed_components(&b64(&ed_public)).unwrap(),
        jsonwebtoken_algorithm: jsonwebtoken::Algorithm::EdDSA,
    });

    let secret = b"bench-secret-bench-secret-bench-secret!!".to_vec();
    let signer = SigningKey::hmac(&secret);
    let ring_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret);
    cases.push(Case {
        algorithm: Algorithm::Hs256,
        token: typical_token(Algorithm::Hs256, &signer, "k1"),
        jwks: format!(
            r#"{{"keys":[{{"kty":"oct","kid":"k1","alg":"HS256","k":"{}"}}]}}"#,
            b64(&secret)
        ),
        ring_verify: Box::new(move |message, sig| {
            ring::hmac::verify(&ring_key, message, sig).is_ok()
        }),
        jsonwebtoken_key: jsonwebtoken::DecodingKey::from_secret(&secret).unwrap(),
        jsonwebtoken_algorithm: jsonwebtoken::Algorithm::HS256,
    });
    cases
}

/// The contenders of one algorithm, ready to run: each call verifies once.
struct Contenders {
    algorithm: Algorithm,
    ring: Box<dyn FnMut() -> bool>,
    jwtgate: Box<dyn FnMut() -> bool>,
    jsonwebtoken: Box<dyn FnMut() -> bool>,
    /// jwtgate through its verified-token cache, the token already in it (a hit).
    cached: Box<dyn FnMut() -> bool>,
}

fn contenders(case: Case) -> Contenders {
    let name = case.algorithm.name();
    let (signing_input, signature_b64) = case.token.rsplit_once('.').unwrap();
    let signing_input = signing_input.to_owned();
    let signature = base64url::decode(signature_b64.as_bytes()).unwrap();
    let ring_verify = case.ring_verify;
    assert!(
        ring_verify(signing_input.as_bytes(), &signature),
        "{name}: ring baseline"
    );

    let keys = KeySet::parse(case.jwks.as_bytes()).unwrap();
    let validation = Validation::new(AlgorithmSet::only(case.algorithm))
        .issuer(ISSUER)
        .audience(AUDIENCE);
    let verifier = std::rc::Rc::new(Verifier::new(keys, validation).unwrap());
    let mut scratch = verifier.scratch();
    let now = UnixTime(*NOW);
    assert!(
        verifier
            .verify(case.token.as_bytes(), now, &mut scratch)
            .is_ok(),
        "{name}: jwtgate"
    );
    let token = case.token.clone();
    let cached_verifier = std::rc::Rc::clone(&verifier);
    let mut cached_scratch = verifier.scratch();
    let mut cache = TokenCache::new(CacheSettings::DEFAULT);
    let cached_token = case.token.clone();
    let (first, _) = cache.verify(
        &cached_verifier,
        1,
        cached_token.as_bytes(),
        now,
        &mut cached_scratch,
    );
    assert!(first.is_ok(), "{name}: jwtgate cached");
    let (again, lookup) = cache.verify(
        &cached_verifier,
        1,
        cached_token.as_bytes(),
        now,
        &mut cached_scratch,
    );
    assert!(
        again.is_ok() && lookup == Lookup::Hit,
        "{name}: jwtgate cached"
    );

    let mut validation = jsonwebtoken::Validation::new(case.jsonwebtoken_algorithm);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    validation.leeway = 60;
    let key = case.jsonwebtoken_key;
    let decoded = jsonwebtoken::decode::<TypicalClaims>(&case.token, &key, &validation);
    assert!(decoded.is_ok(), "{name}: jsonwebtoken: {:?}", decoded.err());
    let their_token = case.token;

    Contenders {
        algorithm: case.algorithm,
        ring: Box::new(move || {
            ring_verify(black_box(signing_input.as_bytes()), black_box(&signature))
        }),
        jwtgate: Box::new(move || {
            verifier
                .verify(black_box(token.as_bytes()), now, &mut scratch)
                .map(|verified| verified.claims.exp)
                .is_ok()
        }),
        jsonwebtoken: Box::new(move || {
            jsonwebtoken::decode::<TypicalClaims>(black_box(&their_token), &key, &validation)
                .is_ok()
        }),
        cached: Box::new(move || {
            cache
                .verify(
                    &cached_verifier,
                    1,
                    black_box(cached_token.as_bytes()),
                    now,
                    &mut cached_scratch,
                )
                .0
                .map(|verified| verified.claims.exp)
                .is_ok()
        }),
    }
}

fn engine(c: &mut Criterion, all: &mut [Contenders]) {
    for contenders in all {
        let mut group = c.benchmark_group(contenders.algorithm.name());
        group
            .measurement_time(Duration::from_secs(3))
            .warm_up_time(Duration::from_secs(1));
        group.bench_function("ring", |b| b.iter(&mut contenders.ring));
        group.bench_function("jwtgate", |b| b.iter(&mut contenders.jwtgate));
        group.bench_function("jsonwebtoken", |b| b.iter(&mut contenders.jsonwebtoken));
        group.bench_function("jwtgate cached", |b| b.iter(&mut contenders.cached));
        group.finish();
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Measures the contenders in alternation (blocks of about 5 ms, rotating
/// which goes first), so that drift in machine speed hits all of them alike, and
/// returns the median ns/op of each (ring, jwtgate, jsonwebtoken, jwtgate
/// cached) and the median of the per-round ratios of the others to jwtgate
/// (ring/jwtgate, jsonwebtoken/jwtgate, jwtgate/cached).
fn interleaved(contenders: &mut Contenders, rounds: usize) -> ([f64; 4], [f64; 3]) {
    let mut runners: [&mut Box<dyn FnMut() -> bool>; 4] = [
        &mut contenders.ring,
        &mut contenders.jwtgate,
        &mut contenders.jsonwebtoken,
        &mut contenders.cached,
    ];
    let block_iterations: Vec<u32> = runners
        .iter_mut()
        .map(|run| {
            let started = Instant::now();
            let mut calls = 0u32;
            while started.elapsed() < Duration::from_millis(20) {
                black_box(run());
                calls += 1;
            }
            let per_call = started.elapsed().as_secs_f64() / f64::from(calls);
            ((0.005 / per_call) as u32).max(1)
        })
        .collect();
    let mut samples = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    let mut ratios = [Vec::new(), Vec::new(), Vec::new()];
    for round in 0..rounds {
        let mut this_round = [0.0; 4];
        for offset in 0..4 {
            let who = (round + offset) % 4;
            let iterations = block_iterations[who];
            let run = &mut runners[who];
            let started = Instant::now();
            for _ in 0..iterations {
                black_box(run());
            }
            this_round[who] = started.elapsed().as_nanos() as f64 / f64::from(iterations);
        }
        ratios[0].push(this_round[0] / this_round[1]);
        ratios[1].push(this_round[2] / this_round[1]);
        ratios[2].push(this_round[1] / this_round[3]);
        for (sample, value) in samples.iter_mut().zip(this_round) {
            sample.push(value);
        }
    }
    let [ring, ours, theirs, cached] = &mut samples;
    let [vs_ring, vs_theirs, cache_gain] = &mut ratios;
    (
        [median(ring), median(ours), median(theirs), median(cached)],
        [median(vs_ring), median(vs_theirs), median(cache_gain)],
    )
}

#[allow(clippy::print_stdout)] // the benchmark's report
fn report(all: &mut [Contenders]) {
    let format = |ns: f64| {
        if ns >= 1000.0 {
            format!("{:.2} µs", ns / 1000.0)
        } else {
            format!("{ns:.0} ns")
        }
    };
    println!("\ninterleaved medians (31 rounds of ~5 ms blocks per contender), throughput ratios:");
    println!(
        "{:<6} {:>11} {:>11} {:>13} {:>14} {:>10} {:>17} {:>9} {:>13} {:>9}",
        "alg",
        "ring",
        "jwtgate",
        "jsonwebtoken",
        "jwtgate ops/s",
        "vs ring",
        "vs jsonwebtoken",
        "cached",
        "cached ops/s",
        "hit gain"
    );
    for contenders in all {
        let ([ring, ours, theirs, cached], [vs_ring, vs_theirs, cache_gain]) =
            interleaved(contenders, 31);
        println!(
            "{:<6} {:>11} {:>11} {:>13} {:>14.0} {:>9.3}x {:>16.2}x {:>9} {:>13.0} {:>8.1}x",
            contenders.algorithm.name(),
            format(ring),
            format(ours),
            format(theirs),
            1e9 / ours,
            vs_ring,
            vs_theirs,
            format(cached),
            1e9 / cached,
            cache_gain
        );
        if contenders.algorithm == Algorithm::Hs256 {
            println!(
                "HS256: {:.2} M tokens/s uncached, {:.2} M/s cached, on one core (target: 1 M/s uncached)",
                1e3 / ours,
                1e3 / cached
            );
        }
    }
}

fn main() {
    // BENCH_ALGS=HS256,RS256 limits the run (and its set-up) to those
    // algorithms: for profiling one of them under callgrind.
    let only = std::env::var("BENCH_ALGS").ok();
    let wanted = |case: &Case| {
        only.as_deref().is_none_or(|list| {
            list.split(',')
                .any(|name| name.eq_ignore_ascii_case(case.algorithm.name()))
        })
    };
    let mut all: Vec<Contenders> = cases().into_iter().filter(wanted).map(contenders).collect();
    let mut criterion = Criterion::default().configure_from_args();
    engine(&mut criterion, &mut all);
    criterion.final_summary();
    // `cargo bench` passes --bench; `cargo test --all-targets` does not, and then
    // the binary only proves every contender runs.
    if std::env::args().any(|arg| arg == "--bench") {
        report(&mut all);
    }
}
