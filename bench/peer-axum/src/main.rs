//! The axum + jsonwebtoken peer of scripts/bench-http.sh: an HTTP server that
//! answers any GET with 200 when its `Authorization: Bearer` token verifies
//! and with 401 otherwise, written as a Rust service would check tokens itself.
//!
//!   jwtgate-peer-axum LISTEN ALG PUBLIC_KEY_PEM ISSUER AUDIENCE LEEWAY_SECONDS
//!
//! ALG is RS256 or ES256. The checks are jwtgate's for the bench tokens: the
//! algorithm pinned, the signature, `iss`, `aud` and `exp` (all three required)
//! with the leeway. The key is parsed and the validation built once, at start.
//! One thread: a current-thread tokio runtime, like one jwtgate shard or one
//! HAProxy thread (the script pins the process to one CPU as well).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// The claims the application reads; `iss`, `aud` and `exp` are checked by
/// [`Validation`] on the way.
#[derive(Deserialize)]
struct Claims {
    #[allow(dead_code)] // decoded as an application would, not used here
    sub: String,
}

struct Auth {
    key: DecodingKey,
    validation: Validation,
}

const CHALLENGE: HeaderValue = HeaderValue::from_static("Bearer error=\"invalid_token\"");
const JSON: HeaderValue = HeaderValue::from_static("application/json");

async fn check(State(auth): State<Arc<Auth>>, request: Request) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    match token {
        Some(token)
            if jsonwebtoken::decode::<Claims>(token, &auth.key, &auth.validation).is_ok() =>
        {
            StatusCode::OK.into_response()
        }
        _ => (
            StatusCode::UNAUTHORIZED,
            [
                (header::WWW_AUTHENTICATE, CHALLENGE),
                (header::CONTENT_TYPE, JSON),
            ],
            "{\"error\":\"invalid_token\"}",
        )
            .into_response(),
    }
}

fn auth(alg: &str, pem: &[u8], issuer: &str, audience: &str, leeway: u64) -> Result<Auth, String> {
    let (algorithm, key) = match alg {
        "RS256" => (Algorithm::RS256, DecodingKey::from_rsa_pem(pem)),
        "ES256" => (Algorithm::ES256, DecodingKey::from_ec_pem(pem)),
        other => return Err(format!("no algorithm {other} (RS256 or ES256)")),
    };
    let key = key.map_err(|error| format!("the public key: {error}"))?;
    let mut validation = Validation::new(algorithm);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    validation.leeway = leeway;
    Ok(Auth { key, validation })
}

fn run(args: &[String]) -> Result<(), String> {
    let [listen, alg, pem_file, issuer, audience, leeway] = args else {
        return Err(
            "usage: jwtgate-peer-axum LISTEN ALG PUBLIC_KEY_PEM ISSUER AUDIENCE LEEWAY_SECONDS"
                .into(),
        );
    };
    let listen: SocketAddr = listen
        .parse()
        .map_err(|error| format!("{listen}: {error}"))?;
    let leeway: u64 = leeway
        .parse()
        .map_err(|error| format!("leeway {leeway}: {error}"))?;
    let pem = std::fs::read(pem_file).map_err(|error| format!("{pem_file}: {error}"))?;
    let auth = Arc::new(auth(alg, &pem, issuer, audience, leeway)?);
    let app = Router::new()
        .route("/", get(check))
        .route("/{*path}", get(check))
        .with_state(auth);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("runtime: {error}"))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|error| format!("{listen}: {error}"))?;
        let local = listener.local_addr().map_err(|error| error.to_string())?;
        println!("jwtgate-peer-axum: listening on {local}");
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app)
            .await
            .map_err(|error| error.to_string())
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("jwtgate-peer-axum: {error}");
            ExitCode::FAILURE
        }
    }
}
