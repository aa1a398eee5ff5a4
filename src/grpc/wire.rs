//! Protocol Buffers' wire format, as far as the `Check` face needs it: a
//! reader of one message's fields that borrows from the message's bytes, and
//! a writer of fields into a buffer. `request` reads a `CheckRequest` with
//! the one, `response` writes a `CheckResponse` with the other.
//!
//! prost decodes a whole `CheckRequest` into owned strings and hash maps and
//! encodes a `CheckResponse` from owned structs: the better part of a cached
//! check's cost went there. Reading in place and writing once costs neither.
//!
//! The reader is strict where prost is lenient in ways Envoy never needs:
//! groups (wire types 3 and 4, deprecated since proto2) are refused, not
//! skipped.

/// Why a message's bytes are not a protobuf message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WireError {
    /// A varint runs past the end, or past 10 bytes.
    Varint,
    /// A field number of 0, or above 2^29 - 1.
    FieldNumber,
    /// Wire type 3, 4, 6 or 7 (groups, or no wire type at all).
    WireType,
    /// A field's declared length runs past the end of its message.
    Length,
    /// A known field arrived with another wire type than its own.
    FieldType,
    /// A string field that is not UTF-8.
    Utf8,
}

impl WireError {
    /// What the caller is told (in the `INVALID_ARGUMENT` status).
    pub(crate) const fn reason(self) -> &'static str {
        match self {
            WireError::Varint => "not a CheckRequest: a varint is truncated or too long",
            WireError::FieldNumber => "not a CheckRequest: a field number is out of range",
            WireError::WireType => "not a CheckRequest: a field has an unsupported wire type",
            WireError::Length => "not a CheckRequest: a field's length runs past its message",
            WireError::FieldType => "not a CheckRequest: a field has the wrong wire type",
            WireError::Utf8 => "not a CheckRequest: a string field is not UTF-8",
        }
    }
}

/// One field's value, as its wire type carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Value<'m> {
    Varint(u64),
    Fixed64,
    Fixed32,
    /// A string, bytes, embedded message or packed repeated field.
    Delimited(&'m [u8]),
}

impl<'m> Value<'m> {
    /// The value of a string field.
    pub(crate) fn string(self) -> Result<&'m str, WireError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| WireError::Utf8)
    }

    /// The value of a bytes field or an embedded message.
    pub(crate) fn bytes(self) -> Result<&'m [u8], WireError> {
        match self {
            Value::Delimited(bytes) => Ok(bytes),
            _ => Err(WireError::FieldType),
        }
    }
}

/// The fields of one message, in the order they were written.
#[derive(Debug, Clone)]
pub(crate) struct Fields<'m> {
    rest: &'m [u8],
}

impl<'m> Fields<'m> {
    pub(crate) fn new(message: &'m [u8]) -> Fields<'m> {
        Fields { rest: message }
    }

    /// The next field's number and value, `None` at the end of the message.
    pub(crate) fn next_field(&mut self) -> Result<Option<(u32, Value<'m>)>, WireError> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let number = u32::try_from(key >> 3)
            .ok()
            .filter(|&number| (1..=MAX_FIELD_NUMBER).contains(&number))
            .ok_or(WireError::FieldNumber)?;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Fixed64
            }
            2 => {
                let length = usize::try_from(self.varint()?).map_err(|_| WireError::Length)?;
                Value::Delimited(self.take(length)?)
            }
            5 => {
                self.take(4)?;
                Value::Fixed32
            }
            _ => return Err(WireError::WireType),
        };
        Ok(Some((number, value)))
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for (index, &byte) in self.rest.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * index);
            if byte < 0x80 {
                // The tenth byte holds only the top bit of a u64.
                if index == 9 && byte > 1 {
                    return Err(WireError::Varint);
                }
                self.rest = self.rest.get(index + 1..).unwrap_or_default();
                return Ok(value);
            }
        }
        Err(WireError::Varint)
    }

    fn take(&mut self, length: usize) -> Result<&'m [u8], WireError> {
        if length > self.rest.len() {
            return Err(WireError::Length);
        }
        let (taken, rest) = self.rest.split_at(length);
        self.rest = rest;
        Ok(taken)
    }
}

/// The largest field number protobuf allows.
const MAX_FIELD_NUMBER: u32 = (1 << 29) - 1;

/// Wire type 2: a length, then that many bytes.
const DELIMITED: u64 = 2;

/// Writes `value` as a varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, value: u64) {
    let (bytes, used) = varint(value);
    out.extend_from_slice(bytes.get(..used).unwrap_or_default());
}

/// `value` as a varint: its bytes, and how many of them it uses.
fn varint(mut value: u64) -> ([u8; 10], usize) {
    let mut bytes = [0u8; 10];
    let mut used = 0;
    for slot in &mut bytes {
        used += 1;
        // Seven bits at a time, low first; the cast keeps the low eight.
        *slot = value as u8 & 0x7f;
        value >>= 7;
        if value == 0 {
            break;
        }
        *slot |= 0x80;
    }
    (bytes, used)
}

/// Writes a varint field (`int32`, `enum` or `bool`), omitted when it is 0
/// as proto3 omits defaults.
pub(crate) fn put_varint_field(out: &mut Vec<u8>, number: u32, value: u64) {
    if value != 0 {
        put_varint(out, u64::from(number) << 3);
        put_varint(out, value);
    }
}

/// Writes a string or bytes field, omitted when empty as proto3 omits
/// defaults.
pub(crate) fn put_bytes_field(out: &mut Vec<u8>, number: u32, value: &[u8]) {
    if !value.is_empty() {
        put_delimited(out, number, value);
    }
}

/// Writes a delimited field even when it is empty (a repeated string's
/// empty element is an element).
pub(crate) fn put_delimited(out: &mut Vec<u8>, number: u32, value: &[u8]) {
    put_varint(out, (u64::from(number) << 3) | DELIMITED);
    put_varint(out, value.len() as u64);
    out.extend_from_slice(value);
}

/// Writes an embedded message field whose fields `body` writes. The length
/// comes first on the wire but is known only after: one byte is reserved for
/// it, and the body moved up in the rare case its length needs more.
pub(crate) fn put_message(out: &mut Vec<u8>, number: u32, body: impl FnOnce(&mut Vec<u8>)) {
    put_varint(out, (u64::from(number) << 3) | DELIMITED);
    let at = out.len();
    out.push(0);
    body(out);
    let length = out.len() - at - 1;
    let (prefix, used) = varint(length as u64);
    let extra = used - 1;
    if extra > 0 {
        out.resize(out.len() + extra, 0);
        out.copy_within(at + 1..at + 1 + length, at + 1 + extra);
    }
    if let (Some(slot), Some(prefix)) = (out.get_mut(at..at + used), prefix.get(..used)) {
        slot.copy_from_slice(prefix);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use prost::Message as _;

    fn fields(message: &[u8]) -> Result<Vec<(u32, Value<'_>)>, WireError> {
        let mut fields = Fields::new(message);
        let mut all = Vec::new();
        while let Some(field) = fields.next_field()? {
            all.push(field);
        }
        Ok(all)
    }

    #[test]
    fn reads_each_wire_type() {
        // 1: varint 150; 2: fixed64; 3: "hi"; 4: fixed32.
        let message = [
            0x08, 0x96, 0x01, 0x11, 1, 2, 3, 4, 5, 6, 7, 8, 0x1a, 2, b'h', b'i', 0x25, 1, 2, 3, 4,
        ];
        assert_eq!(
            fields(&message),
            Ok(vec![
                (1, Value::Varint(150)),
                (2, Value::Fixed64),
                (3, Value::Delimited(b"hi")),
                (4, Value::Fixed32),
            ])
        );
    }

    #[test]
    fn refuses_what_is_not_a_message() {
        for (message, error) in [
            (&[0x08][..], WireError::Varint),
            (
                &[
                    0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
                ][..],
                WireError::Varint,
            ),
            (
                &[
                    0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01,
                ][..],
                WireError::Varint,
            ),
            (&[0x00, 0x01][..], WireError::FieldNumber),
            (&[0x0b][..], WireError::WireType),
            (&[0x0c][..], WireError::WireType),
            (&[0x0e][..], WireError::WireType),
            (&[0x0a, 0x03, b'a', b'b'][..], WireError::Length),
            (&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f][..], WireError::Length),
            (&[0x09, 1, 2, 3][..], WireError::Length),
            (&[0x0d, 1, 2, 3][..], WireError::Length),
        ] {
            assert_eq!(fields(message), Err(error), "{message:x?}");
        }
    }

    #[test]
    fn a_string_must_be_utf8_and_delimited() {
        assert_eq!(Value::Delimited(b"\xff").string(), Err(WireError::Utf8));
        assert_eq!(Value::Varint(1).string(), Err(WireError::FieldType));
        assert_eq!(Value::Delimited(b"ok").string(), Ok("ok"));
    }

    /// A message with one field of each kind the writer writes, as prost
    /// declares it: the reference the writer's bytes are decoded with.
    #[derive(Clone, PartialEq, prost::Message)]
    struct Sample {
        #[prost(int32, tag = "1")]
        number: i32,
        #[prost(string, tag = "2")]
        text: String,
        #[prost(message, optional, tag = "3")]
        inner: Option<Box<Sample>>,
        #[prost(string, repeated, tag = "4")]
        texts: Vec<String>,
        #[prost(bool, tag = "5")]
        flag: bool,
    }

    fn write(sample: &Sample, out: &mut Vec<u8>) {
        put_varint_field(out, 1, i64::from(sample.number) as u64);
        put_bytes_field(out, 2, sample.text.as_bytes());
        if let Some(inner) = &sample.inner {
            put_message(out, 3, |out| write(inner, out));
        }
        for text in &sample.texts {
            put_delimited(out, 4, text.as_bytes());
        }
        put_varint_field(out, 5, u64::from(sample.flag));
    }

    fn sample() -> impl Strategy<Value = Sample> {
        let leaf = (
            any::<i32>(),
            ".{0,300}",
            prop::collection::vec(".{0,3}", 0..3),
            any::<bool>(),
        )
            .prop_map(|(number, text, texts, flag)| Sample {
                number,
                text,
                inner: None,
                texts,
                flag,
            });
        leaf.prop_recursive(3, 8, 1, |inner| {
            (inner, any::<i32>(), ".{0,200}").prop_map(|(inner, number, text)| Sample {
                number,
                text,
                inner: Some(Box::new(inner)),
                texts: Vec::new(),
                flag: false,
            })
        })
    }

    /// Lengths at the edges of one, two and three bytes of length prefix,
    /// each nested once (the body moved up by `put_message`).
    #[test]
    fn writes_every_length_prefix_as_prost_does() {
        for length in [0, 1, 127, 128, 129, 16_383, 16_384, 16_385, 70_000] {
            let sample = Sample {
                inner: Some(Box::new(Sample {
                    text: "x".repeat(length),
                    ..Sample::default()
                })),
                ..Sample::default()
            };
            let mut out = Vec::new();
            write(&sample, &mut out);
            assert_eq!(out, sample.encode_to_vec(), "{length}");
        }
    }

    proptest! {
        #[test]
        fn writes_what_prost_reads_and_prost_writes(sample in sample()) {
            let mut out = Vec::new();
            write(&sample, &mut out);
            prop_assert_eq!(Sample::decode(&out[..]).ok(), Some(sample.clone()));
            prop_assert_eq!(out, sample.encode_to_vec());
        }

        #[test]
        fn reads_what_prost_writes(sample in sample()) {
            let bytes = sample.encode_to_vec();
            let read = fields(&bytes).unwrap_or_else(|error| panic!("{error:?}"));
            let mut text = "";
            for (number, value) in read {
                if number == 2 {
                    text = value.string().unwrap_or_else(|error| panic!("{error:?}"));
                }
            }
            prop_assert_eq!(text, sample.text.as_str());
        }

        #[test]
        fn never_panics_and_accepts_what_prost_accepts(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            // prost skips groups; the reader refuses them.
            let has_group = fields(&bytes) == Err(WireError::WireType);
            if Sample::decode(&bytes[..]).is_ok() && !has_group {
                prop_assert!(fields(&bytes).is_ok());
            }
        }
    }
}
