//! The `Check` codec: prost, except that a message that does not decode is
//! `INVALID_ARGUMENT` (the caller sent it), where tonic's prost codec says
//! `INTERNAL`, which reads as jwtgate's own failure.

use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse};
use prost::Message as _;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::ProstCodec;

/// One `CheckRequest` from a message's bytes.
pub(crate) fn decode(message: impl bytes::Buf) -> Result<CheckRequest, Status> {
    CheckRequest::decode(message)
        .map_err(|error| Status::invalid_argument(format!("not a CheckRequest: {error}")))
}

/// Encodes `CheckResponse`s and decodes `CheckRequest`s.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CheckCodec;

/// Decodes one `CheckRequest`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CheckDecoder;

impl Decoder for CheckDecoder {
    type Item = CheckRequest;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<CheckRequest>, Status> {
        decode(src).map(Some)
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

impl Codec for CheckCodec {
    type Encode = CheckResponse;
    type Decode = CheckRequest;
    type Encoder = <ProstCodec<CheckResponse, CheckRequest> as Codec>::Encoder;
    type Decoder = CheckDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<CheckResponse, CheckRequest>::default().encoder()
    }

    fn decoder(&mut self) -> CheckDecoder {
        CheckDecoder
    }
}
