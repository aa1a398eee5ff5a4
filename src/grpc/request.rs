//! A `CheckRequest` (`envoy.service.auth.v3`), read in place from the
//! message's bytes: the fields a check reads, borrowed, and every other field
//! stepped over. `check` turns what this reads into the request head the
//! decision code reads; `wire` reads the fields.
//!
//! It reads what prost's generated decoder reads, field for field (the
//! property tests hold it to that), with three differences:
//! - a `headers` map that names one header twice keeps both entries (prost
//!   keeps the last), so that two `authorization` entries are two tokens,
//!   refused, and never the one a decoder happened to keep;
//! - a group (wire types 3 and 4) is refused anywhere;
//! - fields a check never reads are checked for their framing only: their
//!   strings are not checked for UTF-8 (a request body of Latin-1 bytes,
//!   which Envoy sends as it came with `with_request_body`, must not turn
//!   the check into an error that `failure_mode_allow` would let through),
//!   nor their messages decoded (`source`, `destination`, `time`,
//!   `metadata_context`, `tls_session`).
//!
//! A string the check reads that is not UTF-8 is [`WireError::Utf8`], which
//! `check` answers with a denial (400), never with a gRPC error.
//!
//! Field numbers are those of Envoy's `external_auth.proto` and
//! `attribute_context.proto`, as `envoy-types` generates them.

use super::wire::{Fields, Value, WireError};

/// The context extension (set per route in Envoy) that names the rule.
pub(crate) const RULE_EXTENSION: &str = "jwtgate_rule";

/// What a check reads of a `CheckRequest`.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct StatedCheck<'m> {
    /// `attributes.request.http`, if the message has it.
    pub(crate) http: Option<StatedHttp<'m>>,
    /// `attributes.context_extensions["jwtgate_rule"]`.
    pub(crate) rule: Option<&'m str>,
}

/// `attributes.request.http`: the original request as the proxy states it.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct StatedHttp<'m> {
    pub(crate) method: &'m str,
    pub(crate) path: &'m str,
    pub(crate) host: &'m str,
    pub(crate) query: &'m str,
    /// `headers`: one entry per header name, the values of a repeated header
    /// joined with commas by Envoy; in the order they arrived.
    pub(crate) joined: Vec<(&'m str, &'m str)>,
    /// `header_map` (Envoy's `encode_raw_headers`): one entry per header
    /// line, `raw_value` or else `value`.
    pub(crate) lines: Vec<(&'m str, &'m [u8])>,
}

impl<'m> StatedCheck<'m> {
    /// Reads `message`, a serialized `CheckRequest`.
    pub(crate) fn read(message: &'m [u8]) -> Result<StatedCheck<'m>, WireError> {
        let mut check = StatedCheck::default();
        let mut fields = Fields::new(message);
        while let Some((number, value)) = fields.next_field()? {
            // CheckRequest.attributes
            if number == 1 {
                check.read_attributes(value.bytes()?)?;
            }
        }
        Ok(check)
    }

    /// An `AttributeContext`; a second one merges into the first, as
    /// protobuf merges a repeated embedded message.
    fn read_attributes(&mut self, message: &'m [u8]) -> Result<(), WireError> {
        let mut fields = Fields::new(message);
        while let Some((number, value)) = fields.next_field()? {
            match number {
                // request
                4 => self.read_request(value.bytes()?)?,
                // context_extensions
                10 => {
                    let (key, value) = map_entry(value.bytes()?)?;
                    if key == RULE_EXTENSION {
                        self.rule = Some(value);
                    }
                }
                // source, destination, metadata_context, tls_session,
                // route_metadata_context
                1 | 2 | 11 | 12 | 13 => {
                    value.bytes()?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// An `AttributeContext.Request`.
    fn read_request(&mut self, message: &'m [u8]) -> Result<(), WireError> {
        let mut fields = Fields::new(message);
        while let Some((number, value)) = fields.next_field()? {
            match number {
                // http
                2 => self
                    .http
                    .get_or_insert_with(StatedHttp::default)
                    .read(value.bytes()?)?,
                // time
                1 => {
                    value.bytes()?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

impl<'m> StatedHttp<'m> {
    /// An `AttributeContext.HttpRequest`.
    fn read(&mut self, message: &'m [u8]) -> Result<(), WireError> {
        let mut fields = Fields::new(message);
        while let Some((number, value)) = fields.next_field()? {
            match number {
                2 => self.method = value.string()?,
                3 => self.joined.push(map_entry(value.bytes()?)?),
                4 => self.path = value.string()?,
                5 => self.host = value.string()?,
                7 => self.query = value.string()?,
                13 => self.read_header_map(value.bytes()?)?,
                // id, scheme, fragment, protocol, body (strings, unread),
                // raw_body (bytes)
                1 | 6 | 8 | 10 | 11 | 12 => {
                    value.bytes()?;
                }
                // size (int64)
                9 if !matches!(value, Value::Varint(_)) => return Err(WireError::FieldType),
                _ => {}
            }
        }
        Ok(())
    }

    /// A `HeaderMap`: its `headers`, each a `HeaderValue`.
    fn read_header_map(&mut self, message: &'m [u8]) -> Result<(), WireError> {
        let mut fields = Fields::new(message);
        while let Some((number, value)) = fields.next_field()? {
            if number == 1 {
                self.lines.push(header_value(value.bytes()?)?);
            }
        }
        Ok(())
    }
}

/// A `HeaderValue`'s key, and its `raw_value` (what Envoy sends with
/// `encode_raw_headers`) or, when that is empty, its `value`.
fn header_value(message: &[u8]) -> Result<(&str, &[u8]), WireError> {
    let (mut key, mut value, mut raw): (&str, &str, &[u8]) = ("", "", &[]);
    let mut fields = Fields::new(message);
    while let Some((number, field)) = fields.next_field()? {
        match number {
            1 => key = field.string()?,
            2 => value = field.string()?,
            3 => raw = field.bytes()?,
            _ => {}
        }
    }
    Ok((
        key,
        if raw.is_empty() {
            value.as_bytes()
        } else {
            raw
        },
    ))
}

/// One entry of a `map<string, string>`: a message with the key as field 1
/// and the value as field 2, either of which may be absent (empty).
fn map_entry(message: &[u8]) -> Result<(&str, &str), WireError> {
    let (mut key, mut value) = ("", "");
    let mut fields = Fields::new(message);
    while let Some((number, field)) = fields.next_field()? {
        match number {
            1 => key = field.string()?,
            2 => value = field.string()?,
            _ => {}
        }
    }
    Ok((key, value))
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::core::v3::{Address, HeaderMap, HeaderValue};
    use envoy_types::pb::envoy::service::auth::v3::attribute_context::{
        HttpRequest, Peer, Request,
    };
    use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
    use envoy_types::pb::google::protobuf::Timestamp;
    use proptest::prelude::*;
    use prost::Message as _;

    use super::*;

    /// What a check reads, taken from prost's decoding: the reference.
    fn reference(request: &CheckRequest) -> StatedCheck<'_> {
        let attributes = request.attributes.as_ref();
        let http = attributes
            .and_then(|attributes| attributes.request.as_ref())
            .and_then(|request| request.http.as_ref());
        StatedCheck {
            rule: attributes
                .and_then(|attributes| attributes.context_extensions.get(RULE_EXTENSION))
                .map(String::as_str),
            http: http.map(|http| {
                let mut joined: Vec<(&str, &str)> = http
                    .headers
                    .iter()
                    .map(|(name, value)| (name.as_str(), value.as_str()))
                    .collect();
                joined.sort_unstable();
                StatedHttp {
                    method: &http.method,
                    path: &http.path,
                    host: &http.host,
                    query: &http.query,
                    joined,
                    lines: http.header_map.as_ref().map_or_else(Vec::new, |map| {
                        map.headers
                            .iter()
                            .map(|header| {
                                let value = if header.raw_value.is_empty() {
                                    header.value.as_bytes()
                                } else {
                                    &header.raw_value
                                };
                                (header.key.as_str(), value)
                            })
                            .collect()
                    }),
                }
            }),
        }
    }

    /// What the reader reads, with a `headers` map reduced to what prost
    /// keeps of it (the last entry of each name) and sorted (prost's map
    /// has no order).
    fn read_as_prost(bytes: &[u8]) -> Result<StatedCheck<'_>, WireError> {
        let mut check = StatedCheck::read(bytes)?;
        if let Some(http) = &mut check.http {
            let mut kept: Vec<(&str, &str)> = Vec::new();
            for &(name, value) in http.joined.iter().rev() {
                if !kept.iter().any(|&(kept_name, _)| kept_name == name) {
                    kept.push((name, value));
                }
            }
            kept.sort_unstable();
            http.joined = kept;
        }
        Ok(check)
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            "[a-z/?=&%.;-]{1,12}",
            ".{0,8}",
            Just(RULE_EXTENSION.to_owned()),
        ]
    }

    fn http_request() -> impl Strategy<Value = HttpRequest> {
        (
            (text(), text(), text(), text(), text()),
            prop::collection::hash_map(text(), text(), 0..4),
            prop::option::of(prop::collection::vec(
                (text(), text(), prop::collection::vec(any::<u8>(), 0..6)),
                0..4,
            )),
            (
                text(),
                any::<i64>(),
                prop::collection::vec(any::<u8>(), 0..6),
            ),
        )
            .prop_map(
                |((method, path, host, query, id), headers, map, (body, size, raw_body))| {
                    HttpRequest {
                        id,
                        method,
                        headers,
                        header_map: map.map(|lines| HeaderMap {
                            headers: lines
                                .into_iter()
                                .map(|(key, value, raw_value)| HeaderValue {
                                    key,
                                    value,
                                    raw_value,
                                })
                                .collect(),
                        }),
                        path,
                        host,
                        scheme: "https".to_owned(),
                        query,
                        fragment: String::new(),
                        size,
                        protocol: "HTTP/1.1".to_owned(),
                        body,
                        raw_body,
                    }
                },
            )
    }

    fn check_request() -> impl Strategy<Value = CheckRequest> {
        (
            prop::option::of(http_request()),
            any::<bool>(),
            prop::collection::hash_map(text(), text(), 0..3),
            any::<bool>(),
        )
            .prop_map(|(http, has_request, context_extensions, peers)| {
                let peer = peers.then(|| Peer {
                    address: Some(Address::default()),
                    service: "client".to_owned(),
                    principal: "spiffe://cluster/ns/x".to_owned(),
                    ..Peer::default()
                });
                CheckRequest {
                    attributes: Some(AttributeContext {
                        source: peer.clone(),
                        destination: peer,
                        request: (has_request || http.is_some()).then_some(Request {
                            time: Some(Timestamp {
                                seconds: 1_700_000_000,
                                nanos: 5,
                            }),
                            http,
                        }),
                        context_extensions,
                        ..AttributeContext::default()
                    }),
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn reads_what_prost_decodes(request in check_request()) {
            let bytes = request.encode_to_vec();
            prop_assert_eq!(read_as_prost(&bytes), Ok(reference(&request)));
        }

        /// Two encodings concatenated, which protobuf reads as one message
        /// merged from both: singular fields take the second's value, maps
        /// and repeated fields hold both.
        #[test]
        fn reads_a_concatenation_as_prost_merges_it(
            first in check_request(),
            second in check_request(),
        ) {
            let mut bytes = first.encode_to_vec();
            bytes.extend(second.encode_to_vec());
            let merged = CheckRequest::decode(&bytes[..]).unwrap_or_else(|error| panic!("{error}"));
            prop_assert_eq!(read_as_prost(&bytes), Ok(reference(&merged)));
        }

        /// Whatever prost decodes, the reader reads the same, or refuses
        /// for a group (the one place it is stricter): never for a reason
        /// prost would not have.
        #[test]
        fn any_bytes_prost_decodes_read_the_same(bytes in prop::collection::vec(any::<u8>(), 0..96)) {
            if let Ok(decoded) = CheckRequest::decode(&bytes[..]) {
                match read_as_prost(&bytes) {
                    Ok(read) => prop_assert_eq!(read, reference(&decoded)),
                    Err(error) => prop_assert_eq!(error, WireError::WireType),
                }
            }
        }

        #[test]
        fn every_truncation_is_refused_or_read(request in check_request(), cut in any::<prop::sample::Index>()) {
            let bytes = request.encode_to_vec();
            let cut = cut.index(bytes.len() + 1);
            // A cut at a field boundary is a shorter message; elsewhere an error.
            let _ = StatedCheck::read(bytes.get(..cut).unwrap_or_default());
        }
    }

    #[test]
    fn a_header_named_twice_in_the_map_is_read_twice() {
        // Two map entries for `authorization`: prost keeps the second.
        let entry = |value: &str| {
            let mut entry = vec![0x0a, 13];
            entry.extend(b"authorization");
            entry.push(0x12);
            entry.push(u8::try_from(value.len()).unwrap_or(0));
            entry.extend(value.as_bytes());
            entry
        };
        let mut http = Vec::new();
        for value in ["Bearer a", "Bearer b"] {
            let entry = entry(value);
            http.push(0x1a);
            http.push(u8::try_from(entry.len()).unwrap_or(0));
            http.extend(entry);
        }
        let request = [vec![0x12, u8::try_from(http.len()).unwrap_or(0)], http].concat();
        let attributes = [
            vec![0x22, u8::try_from(request.len()).unwrap_or(0)],
            request,
        ]
        .concat();
        let message = [
            vec![0x0a, u8::try_from(attributes.len()).unwrap_or(0)],
            attributes,
        ]
        .concat();
        let decoded = CheckRequest::decode(&message[..]).unwrap_or_else(|error| panic!("{error}"));
        let http = decoded
            .attributes
            .and_then(|a| a.request)
            .and_then(|r| r.http);
        assert_eq!(
            http.map(|http| http.headers.len()),
            Some(1),
            "prost keeps one"
        );
        let read = StatedCheck::read(&message).unwrap_or_else(|error| panic!("{error:?}"));
        assert_eq!(
            read.http.map(|http| http.joined),
            Some(vec![
                ("authorization", "Bearer a"),
                ("authorization", "Bearer b")
            ])
        );
    }

    #[test]
    fn a_known_field_of_the_wrong_type_or_encoding_is_refused() {
        for (message, error) in [
            // attributes as a varint
            (&[0x08, 0x01][..], WireError::FieldType),
            // attributes.request.http.method not UTF-8
            (
                &[0x0a, 0x07, 0x22, 0x05, 0x12, 0x03, 0x12, 0x01, 0xff][..],
                WireError::Utf8,
            ),
            // attributes.request.http.size as a string
            (
                &[0x0a, 0x07, 0x22, 0x05, 0x12, 0x03, 0x4a, 0x01, b'1'][..],
                WireError::FieldType,
            ),
            // attributes.context_extensions entry value not UTF-8
            (
                &[0x0a, 0x05, 0x52, 0x03, 0x12, 0x01, 0xc0][..],
                WireError::Utf8,
            ),
            // a group
            (&[0x0b, 0x0c][..], WireError::WireType),
        ] {
            assert_eq!(StatedCheck::read(message), Err(error), "{message:x?}");
        }
    }
}
