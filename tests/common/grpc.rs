//! A blocking gRPC client for the gRPC face's tests: Envoy's own
//! `Authorization` client and the standard health client (from the protos
//! jwtgate is built on), each call bounded by [`CALL_TIMEOUT`], on a runtime
//! of the test's own. Also what a check request and its answer look like
//! when compared with the HTTP face's.
#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::net::SocketAddr;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest, CheckResponse};
use envoy_types::pb::google::protobuf::value::Kind;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// Bound on one call (connecting included).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// gRPC status codes the tests name.
pub mod code {
    pub const OK: i32 = 0;
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const PERMISSION_DENIED: i32 = 7;
    pub const UNAUTHENTICATED: i32 = 16;
}

/// One HTTP/2 connection to the gRPC face.
pub struct GrpcClient {
    runtime: tokio::runtime::Runtime,
    channel: Channel,
}

impl GrpcClient {
    pub fn connect(addr: SocketAddr) -> GrpcClient {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let channel = runtime
            .block_on(async {
                tokio::time::timeout(
                    CALL_TIMEOUT,
                    Channel::from_shared(format!("http://{addr}"))
                        .unwrap()
                        .connect(),
                )
                .await
            })
            .expect("connect within the timeout")
            .expect("connect to the gRPC face");
        GrpcClient { runtime, channel }
    }

    /// `Authorization/Check`.
    pub fn check(&self, request: CheckRequest) -> Result<CheckResponse, tonic::Status> {
        let mut client = AuthorizationClient::new(self.channel.clone());
        self.block(async move { client.check(request).await.map(tonic::Response::into_inner) })
    }

    /// `Health/Check` of `service`: the serving status, or the call's error.
    pub fn health(&self, service: &str) -> Result<i32, tonic::Status> {
        let mut client = HealthClient::new(self.channel.clone());
        let request = HealthCheckRequest {
            service: service.to_owned(),
        };
        self.block(async move {
            client
                .check(request)
                .await
                .map(|response| response.into_inner().status)
        })
    }

    /// Runs `future` on this client's runtime, within [`CALL_TIMEOUT`].
    pub fn block<T>(&self, future: impl Future<Output = T>) -> T {
        self.runtime
            .block_on(async { tokio::time::timeout(CALL_TIMEOUT, future).await })
            .expect("the call ended within the timeout")
    }

    /// `Authorization/Check` with `message` as the request's bytes.
    pub fn raw_check(&self, message: Vec<u8>) -> Result<CheckResponse, tonic::Status> {
        self.raw_call("/envoy.service.auth.v3.Authorization/Check", message)
    }

    /// A unary call of `path` with `message` as the request's bytes.
    pub fn raw_call(&self, path: &str, message: Vec<u8>) -> Result<CheckResponse, tonic::Status> {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        let path: http::uri::PathAndQuery = path.parse().unwrap();
        self.block(async move {
            grpc.ready()
                .await
                .map_err(|error| tonic::Status::unavailable(error.to_string()))?;
            grpc.unary(tonic::Request::new(message), path, RawCodec)
                .await
                .map(tonic::Response::into_inner)
        })
    }

    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }
}

/// A check request as Envoy sends it: `headers` lowercased into the map
/// (pseudo-headers included), `path` with its query, `query` empty.
pub fn check_request(
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> CheckRequest {
    let mut http = HttpRequest {
        id: "1".to_owned(),
        method: method.to_owned(),
        path: path.to_owned(),
        host: host.to_owned(),
        scheme: "http".to_owned(),
        protocol: "HTTP/1.1".to_owned(),
        ..HttpRequest::default()
    };
    http.headers
        .insert(":authority".to_owned(), host.to_owned());
    http.headers.insert(":method".to_owned(), method.to_owned());
    http.headers.insert(":path".to_owned(), path.to_owned());
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        // Envoy joins a repeated header's values with commas.
        http.headers
            .entry(name)
            .and_modify(|joined| {
                joined.push(',');
                joined.push_str(value);
            })
            .or_insert_with(|| (*value).to_owned());
    }
    wrap(http)
}

/// The same request with `encode_raw_headers`: every header its own entry
/// in `header_map`, its value in `raw_value`.
pub fn check_request_raw(
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> CheckRequest {
    let header_map = HeaderMap {
        headers: [(":authority", host), (":method", method), (":path", path)]
            .iter()
            .chain(headers)
            .map(|(name, value)| HeaderValue {
                key: name.to_ascii_lowercase(),
                value: String::new(),
                raw_value: value.as_bytes().to_vec(),
            })
            .collect(),
    };
    wrap(HttpRequest {
        id: "1".to_owned(),
        method: method.to_owned(),
        path: path.to_owned(),
        host: host.to_owned(),
        scheme: "http".to_owned(),
        header_map: Some(header_map),
        ..HttpRequest::default()
    })
}

fn wrap(http: HttpRequest) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(http),
                ..Request::default()
            }),
            ..AttributeContext::default()
        }),
    }
}

/// `request` with the route's context extension `name = value`.
pub fn with_extension(mut request: CheckRequest, name: &str, value: &str) -> CheckRequest {
    request
        .attributes
        .as_mut()
        .unwrap()
        .context_extensions
        .insert(name.to_owned(), value.to_owned());
    request
}

/// A `CheckResponse` read as the HTTP answer it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// `CheckResponse.status.code`.
    pub code: i32,
    /// 200 for an `ok_response`, else the denial's status.
    pub status: u16,
    /// Lowercased names, in order.
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// `ok_response.headers_to_remove`.
    pub removed: Vec<String>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Reads `response`, checking on the way what every answer must hold: a
/// status, an HTTP response, and headers that overwrite (never append) and
/// are kept even when empty.
pub fn answer(response: &CheckResponse) -> Answer {
    let code = response.status.as_ref().expect("a status").code;
    let (status, headers, body, removed) = match response.http_response.as_ref() {
        Some(HttpResponse::OkResponse(ok)) => (
            200,
            &ok.headers,
            String::new(),
            ok.headers_to_remove.clone(),
        ),
        Some(HttpResponse::DeniedResponse(denied)) => (
            u16::try_from(denied.status.as_ref().expect("a denial's status").code).unwrap(),
            &denied.headers,
            denied.body.clone(),
            Vec::new(),
        ),
        other => panic!("unexpected http_response {other:?}"),
    };
    let headers = headers
        .iter()
        .map(|option| {
            assert_eq!(
                option.append_action,
                HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
                "{option:?}"
            );
            assert!(option.keep_empty_value, "{option:?}");
            let header = option.header.as_ref().unwrap();
            (header.key.to_ascii_lowercase(), header.value.clone())
        })
        .collect();
    Answer {
        code,
        status,
        headers,
        body,
        removed,
    }
}

/// A string field of the response's dynamic metadata.
pub fn metadata<'r>(response: &'r CheckResponse, path: &[&str]) -> Option<&'r str> {
    let mut fields = &response.dynamic_metadata.as_ref()?.fields;
    let (last, parents) = path.split_last()?;
    for parent in parents {
        match fields.get(*parent)?.kind.as_ref()? {
            Kind::StructValue(inner) => fields = &inner.fields,
            _ => return None,
        }
    }
    match fields.get(*last)?.kind.as_ref()? {
        Kind::StringValue(value) => Some(value),
        _ => None,
    }
}

/// Sends bytes as they are; decodes `CheckResponse`s.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

#[derive(Debug, Clone, Copy, Default)]
struct RawEncoder;

impl tonic::codec::Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut as _;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = CheckResponse;
    type Encoder = RawEncoder;
    type Decoder =
        <tonic_prost::ProstCodec<CheckRequest, CheckResponse> as tonic::codec::Codec>::Decoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstCodec::<CheckRequest, CheckResponse>::default().decoder()
    }
}
