//! JOSE formats, read strictly and without copies: base64url, JSON, the compact
//! serialization, the JWS header, the JWT claims set, algorithms and JWKs
//! (RFC 7515, 7517, 7518, 7519, 8037, 8725).
//!
//! Nothing here does I/O, checks a signature or knows about HTTP.

// `pub` where a whole module is re-exported from the crate root (`base64url`)
// or from `internals`; the others' public types are re-exported one by one.
pub(crate) mod alg;
pub mod base64url;
pub(crate) mod claims;
pub(crate) mod header;
pub mod json;
pub mod jwk;
pub(crate) mod token;
