//! HTTP/1.1 as the server speaks it, with no I/O: a request head parsed
//! zero-copy out of the connection's read buffer, a chunked body decoded in
//! place, the limits that guard both, the protocol errors and their wire form,
//! the [`Service`] seam, and the original request an ext_authz proxy forwards.
//!
//! Neighbours: [`crate::server`] owns sockets and buffers and calls
//! [`request::HeadScan`] and [`chunked::ChunkedDecoder`] after each read;
//! [`crate::authz`] and [`crate::admin`] implement [`Service`] and write
//! responses with [`response`].

pub(crate) mod chunked;
pub(crate) mod forwarded;
pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod service;

pub use forwarded::{ForwardedStyle, OriginalRequest};
pub(crate) use request::{BodyFraming, Limits, ProtocolError, RequestHead, Version};
pub(crate) use response::Framing;
pub(crate) use service::{BodyPolicy, Service};
