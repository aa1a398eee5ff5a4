//! The `Check` codec: a call's message handed over as its bytes, which
//! `request` reads in place, and an answer already encoded by `response`,
//! copied into tonic's frame. tonic still frames the call (length prefixes,
//! size limits, compression, status trailers).

use bytes::{Buf as _, BufMut as _, Bytes};
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// A `CheckResponse`, encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EncodedResponse(pub(crate) Vec<u8>);

/// Hands over `CheckRequest` bytes and writes encoded `CheckResponse`s.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CheckCodec;

/// Takes a message's bytes out of tonic's buffer: a split of the buffer it
/// was received into, not a copy.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MessageDecoder;

impl Decoder for MessageDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// Copies an encoded answer into the frame.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct EncodedEncoder;

impl Encoder for EncodedEncoder {
    type Item = EncodedResponse;
    type Error = Status;

    fn encode(&mut self, item: EncodedResponse, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item.0);
        Ok(())
    }
}

impl Codec for CheckCodec {
    type Encode = EncodedResponse;
    type Decode = Bytes;
    type Encoder = EncodedEncoder;
    type Decoder = MessageDecoder;

    fn encoder(&mut self) -> EncodedEncoder {
        EncodedEncoder
    }

    fn decoder(&mut self) -> MessageDecoder {
        MessageDecoder
    }
}
