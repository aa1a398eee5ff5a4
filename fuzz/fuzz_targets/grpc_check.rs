//! The gRPC face's `Check` over arbitrary message bytes: decoded as the face
//! decodes them, then decided by a shard's authorizer over a policy where
//! one endpoint is excluded and everything else needs a token (HS256, the
//! RFC 7515 A.1 secret, so that a seed's token verifies).
//!
//! Invariants: no panic; a message that decodes is always answered with a
//! `CheckResponse` that Envoy's generated types decode (a gRPC error only
//! for a message that does not decode, `INVALID_ARGUMENT`); its status is OK exactly when it carries an
//! `ok_response`, and 16, 7 or 3 with a 401, 403 or 400 denial; every header
//! it sets overwrites; and nothing is allowed but a valid token or the
//! excluded endpoint.
#![no_main]

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr};

use envoy_types::pb::envoy::service::auth::v3::CheckResponse;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use jwtgate::UnixTime;
use jwtgate::internals::{GrpcChecker, Snapshot};
use libfuzzer_sys::fuzz_target;
use prost::Message as _;

/// RFC 7515 A.1's token expires at 1300819380.
const NOW: UnixTime = UnixTime(1_300_819_000);

const CONFIG: &str = r#"
default_action = "deny"
[[token_config]]
name = "users"
jwks = '''{"keys":[{"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}]}'''
algorithms = ["HS256"]
allow_symmetric_keys = true
[[rule]]
name = "admin"
paths = ["/admin/**"]
token_configs = ["users"]
require_claims = [ { claim = "scope", contains = "admin" } ]
[[rule]]
name = "api"
token_configs = ["users"]
exclude = ["GET /api/health"]
forward_claims = { iss = "x-issuer" }
"#;

thread_local! {
    /// A shard's checker is not `Send` (its authorizer is the shard's own);
    /// libFuzzer runs the target on one thread.
    static CHECKER: RefCell<GrpcChecker> = RefCell::new({
        let loaded = jwtgate::config::parse(CONFIG, std::path::Path::new("fuzz.toml"))
            .expect("the fuzz configuration loads");
        GrpcChecker::new(Snapshot::new(loaded.policy, loaded.keys), NOW)
    });
}

const PEER: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fuzz_target!(|data: &[u8]| {
    let answered = CHECKER.with(|checker| checker.borrow_mut().check_message(data, PEER));
    let response = match answered {
        Ok(encoded) => CheckResponse::decode(&encoded[..]).expect("the answer decodes"),
        Err(status) => {
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
            return;
        }
    };
    let code = response.status.as_ref().expect("a status").code;
    let headers = match response.http_response.as_ref().expect("an HTTP response") {
        HttpResponse::OkResponse(ok) => {
            assert_eq!(code, 0);
            let outcome = ok
                .headers
                .iter()
                .filter_map(|option| option.header.as_ref())
                .find(|header| header.key == "x-jwtgate-outcome")
                .map(|header| header.value.as_str());
            assert!(
                matches!(outcome, Some("valid" | "excluded")),
                "allowed without a valid token: {response:?}"
            );
            &ok.headers
        }
        HttpResponse::DeniedResponse(denied) => {
            let status = denied.status.as_ref().expect("a denial's status").code;
            let expected = match status {
                401 => 16,
                403 => 7,
                400 => 3,
                other => panic!("denied with HTTP {other}"),
            };
            assert_eq!(code, expected);
            &denied.headers
        }
        HttpResponse::ErrorResponse(error) => panic!("an error response: {error:?}"),
    };
    for option in headers {
        // 2: OVERWRITE_IF_EXISTS_OR_ADD.
        assert_eq!(option.append_action, 2, "{option:?}");
    }
});
