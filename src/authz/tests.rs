//! The verified-token cache seen from the decision: whatever happens between
//! two requests (a reload, new keys, the clock moving either way), a shard
//! with the cache on answers every request byte for byte as a shard with it
//! off. Both authorizers read the same published snapshot, the way every
//! shard of a server does.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use proptest::prelude::*;

use super::{Authorizer, AuthzOptions, Clock, Denials};
use crate::http::request::{HeadStatus, HeaderSlots, parse_head};
use crate::http::{Framing, Limits};
use crate::jwks::TokenKeys;
use crate::queue_delay::QueueDelay;
use crate::signing::SigningKey;
use crate::snapshot::{SharedSnapshot, Snapshot};
use crate::{Algorithm, CacheSettings, UnixTime};

const T0: i64 = 1_700_000_000;
const SECRETS: [&[u8]; 2] = [
    b"the first secret, thirty-two bytes or more",
    b"the second secret, thirty-two bytes or more",
];
const KIDS: [&str; 2] = ["a", "b"];
const ISSUERS: [&str; 2] = ["https://one.invalid/", "https://two.invalid/"];
const PATHS: [&str; 4] = ["/api/orders", "/admin/users", "/both/x", "/elsewhere"];

/// The JWKS holding the keys whose bits are set in `keys` (bit 0: "a", bit 1: "b").
fn jwks(keys: u8) -> String {
    let members: Vec<String> = (0..2)
        .filter(|bit| keys & (1 << bit) != 0)
        .filter_map(|bit| {
            let secret = SECRETS.get(bit)?;
            Some(format!(
                r#"{{"kty":"oct","kid":"{}","alg":"HS256","k":"{}"}}"#,
                KIDS.get(bit)?,
                jwtgate_engine::base64url::encode(secret)
            ))
        })
        .collect();
    format!(r#"{{"keys":[{}]}}"#, members.join(","))
}

/// One state of the configuration file: which keys "users" trusts, which
/// issuer it wants, its leeway, and whether its tokens may live long.
#[derive(Debug, Clone, Copy)]
struct Variant {
    keys: u8,
    issuer: usize,
    leeway: u8,
    short_lived: bool,
}

fn variant() -> impl Strategy<Value = Variant> {
    (
        1u8..=3,
        0usize..2,
        prop_oneof![Just(0u8), Just(30)],
        any::<bool>(),
    )
        .prop_map(|(keys, issuer, leeway, short_lived)| Variant {
            keys,
            issuer,
            leeway,
            short_lived,
        })
}

fn config(variant: Variant) -> String {
    let issuer = ISSUERS.get(variant.issuer).copied().unwrap_or_default();
    let lifetime = if variant.short_lived { "10m" } else { "1h" };
    format!(
        r#"
default_action = "deny"
[[token_config]]
name = "users"
jwks = '''{users}'''
algorithms = ["HS256"]
allow_symmetric_keys = true
issuer = "{issuer}"
leeway = "{leeway}s"
max_lifetime = "{lifetime}"
[[token_config]]
name = "partners"
jwks = '''{partners}'''
algorithms = ["HS256"]
allow_symmetric_keys = true
issuer = "{other}"
[[rule]]
name = "admin"
paths = ["/admin/**"]
token_configs = ["users"]
require_claims = [ {{ claim = "scope", contains = "admin" }} ]
forward_claims = {{ sub = "x-jwt-sub", scope = "x-jwt-scope" }}
[[rule]]
name = "both"
paths = ["/both/**"]
token_configs = ["users", "partners"]
forward_claims = {{ sub = "x-jwt-sub" }}
[[rule]]
name = "api"
paths = ["/api/**"]
token_configs = ["users"]
"#,
        users = jwks(variant.keys),
        partners = jwks(1),
        leeway = variant.leeway,
        other = ISSUERS.get(1).copied().unwrap_or_default(),
    )
}

fn snapshot(variant: Variant) -> Snapshot {
    let loaded = crate::config::parse(&config(variant), std::path::Path::new("cache.toml"))
        .unwrap_or_else(|error| panic!("{error}"));
    Snapshot::new(loaded.policy, loaded.keys)
}

/// A token: signed by `signer` under the name `kid` (a mismatch is a
/// forgery), for `issuer`, with times relative to `T0`.
#[derive(Debug, Clone)]
struct Token {
    kid: usize,
    signer: usize,
    issuer: usize,
    admin: bool,
    iat: i64,
    exp: i64,
    nbf: Option<i64>,
}

impl Token {
    fn mint(&self, subject: usize) -> String {
        let kid = KIDS.get(self.kid).copied().unwrap_or_default();
        let issuer = ISSUERS.get(self.issuer).copied().unwrap_or_default();
        let scope = if self.admin { "read admin" } else { "read" };
        let nbf = self
            .nbf
            .map_or(String::new(), |nbf| format!(r#","nbf":{}"#, T0 + nbf));
        let claims = format!(
            r#"{{"iss":"{issuer}","sub":"user-{subject}","scope":"{scope}","iat":{},"exp":{}{nbf}}}"#,
            T0 + self.iat,
            T0 + self.exp,
        );
        let mut token = jwtgate_engine::base64url::encode(
            format!(r#"{{"alg":"HS256","kid":"{kid}"}}"#).as_bytes(),
        );
        token.push('.');
        token.push_str(&jwtgate_engine::base64url::encode(claims.as_bytes()));
        let secret = SECRETS.get(self.signer).copied().unwrap_or_default();
        let signature = SigningKey::hmac(secret)
            .sign(Algorithm::Hs256, token.as_bytes())
            .unwrap_or_default();
        token.push('.');
        token.push_str(&jwtgate_engine::base64url::encode(&signature));
        token
    }
}

fn token() -> impl Strategy<Value = Token> {
    (
        0usize..2,
        prop_oneof![4 => Just(None), 1 => Just(Some(1usize))],
        0usize..2,
        any::<bool>(),
        -200i64..50,
        -100i64..400,
        prop::option::of(-50i64..100),
    )
        .prop_map(|(kid, forged, issuer, admin, iat, lifetime, nbf)| Token {
            kid,
            signer: forged.map_or(kid, |flip| kid ^ flip),
            issuer,
            admin,
            iat,
            exp: iat + lifetime,
            nbf,
        })
}

#[derive(Debug, Clone)]
enum Step {
    /// A request with token `token` (an index into the case's tokens, or none) to `path`.
    Request { token: Option<usize>, path: usize },
    /// The file is reloaded in this state.
    Reload(Variant),
    /// The same rules with new keys for "users" (a key refresh).
    Keys(u8),
    /// The clock moves by this many seconds (either way).
    Clock(i64),
    /// The shard with the cache falls behind (true) or catches up: it may
    /// then answer 429 for a token its cache does not hold, and nothing else
    /// differs.
    Overload(bool),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        12 => (prop::option::weighted(0.95, 0usize..6), 0usize..PATHS.len())
            .prop_map(|(token, path)| Step::Request { token, path }),
        1 => variant().prop_map(Step::Reload),
        1 => (1u8..=3).prop_map(Step::Keys),
        3 => prop_oneof![-40i64..40, -400i64..400].prop_map(Step::Clock),
        1 => any::<bool>().prop_map(Step::Overload),
    ]
}

/// A shard's authorizer over `shared`, with `entries` cache entries, shedding
/// load when `delay` says it is behind by more than 100 ms.
fn authorizer(shared: &SharedSnapshot, entries: usize, delay: &Arc<QueueDelay>) -> Authorizer {
    Authorizer::new(
        Arc::clone(shared),
        AuthzOptions {
            token_cache: CacheSettings {
                entries,
                max_age: std::time::Duration::from_secs(120),
            },
            max_queue_delay: Some(Duration::from_millis(100)),
            ..crate::server::ServeOptions::default().authz
        },
        Arc::new(Denials::default()),
    )
    .shedding(Arc::clone(delay))
}

/// A heartbeat that is on time, or (`behind`) whose byte has been on its
/// way for a second.
fn heartbeat(delay: &QueueDelay, behind: bool) {
    delay.behind(behind);
}

fn is_shed(answer: &[u8]) -> bool {
    let text = String::from_utf8_lossy(answer);
    text.starts_with("HTTP/1.1 429 ") && text.contains("\r\nx-jwtgate-outcome: overloaded\r\n")
}

/// The whole answer of `authorizer` to `request` at `now`.
fn answer(authorizer: &mut Authorizer, request: &[u8], now: i64) -> Vec<u8> {
    authorizer.options.clock = Clock::Fixed(UnixTime(now));
    let mut slots = HeaderSlots::default();
    let Ok(HeadStatus::Complete(head)) = parse_head(request, &mut slots, Limits::default()) else {
        panic!("the test's request does not parse");
    };
    let mut out = Vec::new();
    authorizer.decide(&head, Framing::default(), &mut out);
    out
}

fn request(path: &str, token: Option<&str>) -> Vec<u8> {
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: api.example\r\n");
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    request.push_str("\r\n");
    request.into_bytes()
}

/// Runs `steps` through a cached and an uncached authorizer; returns how
/// many lookups the cached one answered from the cache.
fn same_answers(start: Variant, tokens: &[Token], steps: &[Step]) -> Result<u64, TestCaseError> {
    let minted: Vec<String> = tokens
        .iter()
        .enumerate()
        .map(|(subject, token)| token.mint(subject))
        .collect();
    let shared: SharedSnapshot = Arc::new(ArcSwap::from_pointee(snapshot(start)));
    let (loaded, unloaded) = (QueueDelay::for_tests(), QueueDelay::for_tests());
    heartbeat(&loaded, false);
    heartbeat(&unloaded, false);
    // Eight entries: one set, so eviction is exercised too.
    let mut cached = authorizer(&shared, 8, &loaded);
    let mut uncached = authorizer(&shared, 0, &unloaded);
    // Always behind and never holding a token: it sheds every request that
    // needs a verification, and only those.
    let always_behind = QueueDelay::for_tests();
    heartbeat(&always_behind, true);
    let mut sheds_all = authorizer(&shared, 0, &always_behind);
    let mut now = T0;
    let mut behind = false;
    for (index, step) in steps.iter().enumerate() {
        match step {
            Step::Request { token, path } => {
                let token = token.and_then(|token| minted.get(token % minted.len().max(1)));
                let path = PATHS.get(*path).copied().unwrap_or("/");
                let request = request(path, token.map(String::as_str));
                let with = answer(&mut cached, &request, now);
                let without = answer(&mut uncached, &request, now);
                if behind && is_shed(&with) {
                    // Only what needs a verification is shed: a request with
                    // no token, or one no rule checks, is answered as ever.
                    let reference = answer(&mut sheds_all, &request, now);
                    prop_assert!(
                        is_shed(&reference),
                        "step {}: shed what needs no verification",
                        index
                    );
                    continue;
                }
                prop_assert_eq!(
                    String::from_utf8_lossy(&with),
                    String::from_utf8_lossy(&without),
                    "step {} ({:?}) at T0{:+}",
                    index,
                    step,
                    now - T0
                );
            }
            Step::Reload(variant) => shared.store(Arc::new(snapshot(*variant))),
            Step::Keys(keys) => {
                // The same rules and claim checks with new keys for "users",
                // as a key refresh publishes them.
                let current = shared.load_full();
                let mut replaced = current.keys.to_vec();
                if let Some(slot) = replaced.first_mut() {
                    let keys = crate::KeySet::from_jwks(jwks(*keys).as_bytes())
                        .unwrap_or_else(|error| panic!("{error}"));
                    let checks = slot.verifier().validation().clone();
                    let verifier = crate::Verifier::new(keys, checks)
                        .unwrap_or_else(|error| panic!("{error}"));
                    *slot = TokenKeys::local(verifier);
                }
                shared.store(Arc::new(Snapshot {
                    policy: Arc::clone(&current.policy),
                    keys: replaced.into_boxed_slice(),
                    revocations: Arc::clone(&current.revocations),
                }));
            }
            Step::Clock(seconds) => now += seconds,
            Step::Overload(now_behind) => {
                behind = *now_behind;
                heartbeat(&loaded, behind);
            }
        }
    }
    Ok(cached.cache.hits())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn the_cache_never_changes_an_answer(
        start in variant(),
        tokens in prop::collection::vec(token(), 1..6),
        steps in prop::collection::vec(step(), 1..60),
    ) {
        same_answers(start, &tokens, &steps)?;
    }
}

/// The property above would hold trivially if nothing were ever cached: this
/// fixed sequence shows hits happen, and that a hit still ends at the second
/// an uncached check ends.
#[test]
fn hits_happen_and_end_at_exp_plus_leeway_to_the_second() {
    let start = Variant {
        keys: 1,
        issuer: 0,
        leeway: 30,
        short_lived: false,
    };
    let valid = Token {
        kid: 0,
        signer: 0,
        issuer: 0,
        admin: true,
        iat: -10,
        exp: 100,
        nbf: None,
    };
    let request = |path| Step::Request {
        token: Some(0),
        path,
    };
    // Up to exp + leeway - 1 (T0 + 129) the token passes; at T0 + 130 it
    // does not. (Stored at T0 + 20, the entry is younger than its 120 s max
    // age throughout.)
    let steps = [
        Step::Clock(20),
        request(0),
        request(0),
        request(1),
        Step::Clock(109),
        request(0),
        Step::Clock(1),
        request(0),
        Step::Clock(-1),
        request(0),
        request(0),
    ];
    let hits = same_answers(start, std::slice::from_ref(&valid), &steps).unwrap();
    assert_eq!(hits, 4, "repeats are hits, except at and just after expiry");

    let shared: SharedSnapshot = Arc::new(ArcSwap::from_pointee(snapshot(start)));
    let delay = QueueDelay::for_tests();
    heartbeat(&delay, false);
    let mut cached = authorizer(&shared, 8, &delay);
    let token = valid.mint(0);
    let ok = answer(&mut cached, &request_bytes(&token), T0 + 129);
    assert!(
        ok.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&ok)
    );
    assert_eq!(cached.cache.len(), 1);
    let expired = answer(&mut cached, &request_bytes(&token), T0 + 130);
    assert!(
        expired.starts_with(b"HTTP/1.1 401"),
        "{}",
        String::from_utf8_lossy(&expired)
    );
    assert_eq!(cached.cache.len(), 0, "an expired entry leaves");
}

fn request_bytes(token: &str) -> Vec<u8> {
    request("/api/orders", Some(token))
}

/// An overloaded shard still answers the tokens its cache holds, exactly as
/// before; it answers 429 for every other token, valid or forged, without
/// verifying it (so never 200 for a forgery); and once it catches up it
/// verifies again.
#[test]
fn an_overloaded_shard_answers_from_its_cache_and_sheds_the_rest() {
    let start = Variant {
        keys: 1,
        issuer: 0,
        leeway: 30,
        short_lived: false,
    };
    let minted = |subject, signer| {
        Token {
            kid: 0,
            signer,
            issuer: 0,
            admin: false,
            iat: -10,
            exp: 100,
            nbf: None,
        }
        .mint(subject)
    };
    let (known, new, forged) = (minted(0, 0), minted(1, 0), minted(2, 1));
    let shared: SharedSnapshot = Arc::new(ArcSwap::from_pointee(snapshot(start)));
    let delay = QueueDelay::for_tests();
    heartbeat(&delay, false);
    let mut shard = authorizer(&shared, 8, &delay);
    let first = answer(&mut shard, &request_bytes(&known), T0);
    assert!(
        first.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&first)
    );

    heartbeat(&delay, true);
    let again = answer(&mut shard, &request_bytes(&known), T0 + 1);
    assert!(
        again.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&again)
    );
    for token in [&new, &forged] {
        let shed = answer(&mut shard, &request_bytes(token), T0 + 1);
        assert!(is_shed(&shed), "{}", String::from_utf8_lossy(&shed));
        let text = String::from_utf8_lossy(&shed);
        assert!(text.contains("\r\nretry-after: 1\r\n"), "{text}");
        assert!(text.ends_with(r#"{"error":"overloaded","detail":"the server is too far behind to verify a token it has not seen; retry"}"#), "{text}");
    }
    // Past its exp + leeway a cached token is checked afresh: under
    // overload that is shed too, never passed.
    let late = answer(&mut shard, &request_bytes(&known), T0 + 130);
    assert!(is_shed(&late), "{}", String::from_utf8_lossy(&late));
    // No token, and a path no rule covers, cost no verification: answered as ever.
    let missing = answer(&mut shard, &request("/api/orders", None), T0 + 1);
    assert!(
        missing.starts_with(b"HTTP/1.1 401"),
        "{}",
        String::from_utf8_lossy(&missing)
    );
    let unruled = answer(&mut shard, &request("/elsewhere", Some(&new)), T0 + 1);
    assert!(
        unruled.starts_with(b"HTTP/1.1 403"),
        "{}",
        String::from_utf8_lossy(&unruled)
    );

    heartbeat(&delay, false);
    let caught_up = answer(&mut shard, &request_bytes(&new), T0 + 1);
    assert!(
        caught_up.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&caught_up)
    );
    let refused = answer(&mut shard, &request_bytes(&forged), T0 + 1);
    assert!(
        refused.starts_with(b"HTTP/1.1 401"),
        "{}",
        String::from_utf8_lossy(&refused)
    );
}
