//! Strict, zero-copy JSON for JOSE headers, claims sets and JWKs.
//!
//! One pass over the text validates it against RFC 8259 with the I-JSON
//! restrictions that matter for tokens (RFC 7493, RFC 7515 §5.2, RFC 8725 §3.x):
//! UTF-8 only, no byte-order mark, no lone surrogate escapes, no control
//! characters in strings, bounded nesting, and no duplicate member names in any
//! object (names compared after unescaping, so `"alg"` and `"\u0061lg"` collide).
//!
//! The pass records a flat *tape* of nodes (offsets into the text, never copies)
//! in a caller-owned [`Tape`] that is reused from token to token, so parsing
//! allocates nothing in steady state. Values are then read through cheap `Copy`
//! views ([`Value`], [`Object`], [`Array`], [`JsonStr`]) that borrow the text.
//!
//! Neighbours: `jose::header` and `jose::claims` type the documents this module
//! validates; `jose::jwk` reads key sets with it. The views are public as
//! [`crate::json`]; the parser only through `internals`.

use std::borrow::Cow;
use std::fmt;

/// The deepest nesting a caller may ask for; the parser keeps its container stack
/// in a fixed array of this size, so depth can never grow memory.
pub const MAX_DEPTH_CAP: usize = 64;

/// Why a JSON text was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// The bytes are not UTF-8.
    #[error("JSON text is not valid UTF-8")]
    InvalidUtf8,
    /// The text starts with a UTF-8 byte-order mark (RFC 8259 §8.1 forbids adding one).
    #[error("JSON text starts with a byte-order mark")]
    ByteOrderMark,
    /// The text does not follow the JSON grammar.
    #[error("JSON syntax error")]
    Syntax,
    /// A string holds an invalid escape sequence.
    #[error("invalid escape sequence in a JSON string")]
    InvalidEscape,
    /// A string holds a `\u` escape of half a surrogate pair.
    #[error("lone surrogate escape in a JSON string")]
    LoneSurrogate,
    /// A string holds a raw control character.
    #[error("control character in a JSON string")]
    ControlCharacter,
    /// A number is too large for an IEEE 754 double (RFC 7493 §2.2).
    #[error("JSON number out of range")]
    NumberOutOfRange,
    /// Containers are nested deeper than allowed.
    #[error("JSON nesting too deep")]
    TooDeep,
    /// An object names the same member twice.
    #[error("duplicate member name in a JSON object")]
    DuplicateMember,
    /// Something other than white space follows the value.
    #[error("trailing characters after the JSON value")]
    TrailingCharacters,
    /// The text is longer than the tape can address.
    #[error("JSON text too large")]
    TooLarge,
}

/// What a node on the tape is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool,
    /// A number (validated against the JSON grammar, not yet converted).
    Number,
    /// A string.
    String,
    /// An array.
    Array,
    /// An object.
    Object,
}

/// One tape entry. Strings span their contents without the quotes; containers span
/// their brackets; `after` is the tape index just past the node's subtree, which
/// makes skipping a member O(1).
#[derive(Debug, Clone, Copy)]
struct Node {
    kind: Kind,
    /// Strings only: the contents hold at least one backslash escape.
    escaped: bool,
    start: u32,
    end: u32,
    after: u32,
}

/// A string of at most 7 bytes packed into an integer with its length in the top
/// byte, so that equality of keys is equality of strings. Matching member names
/// through these keys costs one integer compare instead of a `memcmp` call.
#[allow(clippy::indexing_slicing)] // index < bytes.len() by the loop condition
pub const fn short_key(bytes: &[u8]) -> Option<u64> {
    if bytes.len() > 7 {
        return None;
    }
    let mut key = (bytes.len() as u64) << 56;
    let mut index = 0;
    while index < bytes.len() {
        key |= (bytes[index] as u64) << (8 * index);
        index += 1;
    }
    Some(key)
}

/// Reusable storage for parsing: the node tape and the scratch used to find
/// duplicate member names in large objects.
#[derive(Debug, Default)]
pub struct Tape {
    nodes: Vec<Node>,
    names_by_hash: Vec<(u64, u32)>,
}

/// Objects with at most this many members are checked for duplicate names pairwise;
/// larger ones by sorting name hashes, so a hostile object costs O(n log n), not O(n²).
const PAIRWISE_DUPLICATE_LIMIT: usize = 16;

impl Tape {
    /// An empty tape; it grows to the largest document parsed and then stays.
    pub fn new() -> Tape {
        Tape::default()
    }

    /// An empty tape with room for `nodes` nodes.
    pub fn with_capacity(nodes: usize) -> Tape {
        Tape {
            nodes: Vec::with_capacity(nodes),
            names_by_hash: Vec::new(),
        }
    }

    /// Validates `text` and records its structure, returning a view of the top value.
    pub fn parse<'t>(
        &'t mut self,
        text: &'t [u8],
        max_depth: usize,
    ) -> Result<Value<'t>, JsonError> {
        if text.starts_with(b"\xEF\xBB\xBF") {
            return Err(JsonError::ByteOrderMark);
        }
        let text = std::str::from_utf8(text).map_err(|_| JsonError::InvalidUtf8)?;
        if u32::try_from(text.len()).is_err() {
            return Err(JsonError::TooLarge);
        }
        self.nodes.clear();
        let mut parser = Parser {
            bytes: text.as_bytes(),
            text,
            nodes: &mut self.nodes,
            names_by_hash: &mut self.names_by_hash,
            max_depth: max_depth.min(MAX_DEPTH_CAP),
        };
        parser.document()?;
        Ok(Value {
            doc: Document {
                text,
                nodes: &self.nodes,
            },
            index: 0,
        })
    }
}

impl Tape {
    /// Heap bytes of one node of a document.
    pub(crate) const NODE_BYTES: usize = std::mem::size_of::<Node>();

    /// The document this tape last parsed, read again over `text` without
    /// parsing: for a cache that keeps the text and its tape side by side.
    /// `text` must be the text that was parsed (a different one reads
    /// nonsense, never out of bounds).
    pub(crate) fn view<'t>(&'t self, text: &'t str) -> Value<'t> {
        Value {
            doc: Document {
                text,
                nodes: &self.nodes,
            },
            index: 0,
        }
    }

    /// Becomes a copy of `other`'s last document (reusing this tape's room).
    pub(crate) fn copy_from(&mut self, other: &Tape) {
        self.nodes.clear();
        // Exact room: a cache accounts for what its entries hold.
        self.nodes.reserve_exact(other.nodes.len());
        self.nodes.extend_from_slice(&other.nodes);
    }

    /// Nodes of the last document.
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.names_by_hash.capacity() * std::mem::size_of::<(u64, u32)>()
    }
}

struct Parser<'p> {
    bytes: &'p [u8],
    text: &'p str,
    nodes: &'p mut Vec<Node>,
    names_by_hash: &'p mut Vec<(u64, u32)>,
    max_depth: usize,
}

/// Positions fit in `u32`: [`Tape::parse`] refuses longer texts before parsing.
#[allow(clippy::cast_possible_truncation)]
const fn offset(position: usize) -> u32 {
    position as u32
}

impl Parser<'_> {
    fn byte(&self, position: usize) -> Option<u8> {
        self.bytes.get(position).copied()
    }

    fn skip_whitespace(&self, mut position: usize) -> usize {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.byte(position) {
            position += 1;
        }
        position
    }

    fn push(&mut self, kind: Kind, start: usize, end: usize, escaped: bool) -> u32 {
        let index = offset(self.nodes.len());
        self.nodes.push(Node {
            kind,
            escaped,
            start: offset(start),
            end: offset(end),
            after: index + 1,
        });
        index
    }

    /// Parses the single top-level value and insists nothing but white space follows.
    ///
    /// Iterative, with the open containers in a fixed-size stack, so hostile nesting
    /// can neither overflow the call stack nor allocate.
    fn document(&mut self) -> Result<(), JsonError> {
        let mut open = [0u32; MAX_DEPTH_CAP];
        let mut depth = 0usize;
        let mut position = self.skip_whitespace(0);
        'value: loop {
            // A value starts at `position` (white space already skipped).
            match self.byte(position).ok_or(JsonError::Syntax)? {
                opening @ (b'{' | b'[') => {
                    if depth >= self.max_depth {
                        return Err(JsonError::TooDeep);
                    }
                    let kind = if opening == b'{' {
                        Kind::Object
                    } else {
                        Kind::Array
                    };
                    let index = self.push(kind, position, position, false);
                    let slot = open.get_mut(depth).ok_or(JsonError::TooDeep)?;
                    *slot = index;
                    depth += 1;
                    position = self.skip_whitespace(position + 1);
                    let closing = if kind == Kind::Object { b'}' } else { b']' };
                    if self.byte(position) == Some(closing) {
                        self.close(index, position)?;
                        depth -= 1;
                        position += 1;
                    } else {
                        if kind == Kind::Object {
                            position = self.member_name(position)?;
                        }
                        continue 'value;
                    }
                }
                b'"' => position = self.string(position)?,
                b't' => position = self.literal(position, "true", Kind::Bool)?,
                b'f' => position = self.literal(position, "false", Kind::Bool)?,
                b'n' => position = self.literal(position, "null", Kind::Null)?,
                b'-' | b'0'..=b'9' => position = self.number(position)?,
                _ => return Err(JsonError::Syntax),
            }
            // A value just ended: continue or close the enclosing containers.
            loop {
                let Some(container) = depth.checked_sub(1).and_then(|top| open.get(top)).copied()
                else {
                    break 'value;
                };
                let is_object = self.node(container).kind == Kind::Object;
                position = self.skip_whitespace(position);
                match self.byte(position) {
                    Some(b',') => {
                        position = self.skip_whitespace(position + 1);
                        if is_object {
                            position = self.member_name(position)?;
                        }
                        continue 'value;
                    }
                    Some(b'}') if is_object => {}
                    Some(b']') if !is_object => {}
                    _ => return Err(JsonError::Syntax),
                }
                self.close(container, position)?;
                depth -= 1;
                position += 1;
            }
        }
        if self.skip_whitespace(position) != self.bytes.len() {
            return Err(JsonError::TrailingCharacters);
        }
        Ok(())
    }

    fn node(&self, index: u32) -> Node {
        self.nodes.get(index as usize).copied().unwrap_or(Node {
            kind: Kind::Null,
            escaped: false,
            start: 0,
            end: 0,
            after: 0,
        })
    }

    /// Parses `"name"` and the following `:`, leaving `position` at the member's value.
    fn member_name(&mut self, position: usize) -> Result<usize, JsonError> {
        if self.byte(position) != Some(b'"') {
            return Err(JsonError::Syntax);
        }
        let after_name = self.string(position)?;
        let position = self.skip_whitespace(after_name);
        if self.byte(position) != Some(b':') {
            return Err(JsonError::Syntax);
        }
        Ok(self.skip_whitespace(position + 1))
    }

    fn close(&mut self, index: u32, closing: usize) -> Result<(), JsonError> {
        let after = offset(self.nodes.len());
        let node = self
            .nodes
            .get_mut(index as usize)
            .ok_or(JsonError::Syntax)?;
        node.end = offset(closing + 1);
        node.after = after;
        if node.kind == Kind::Object {
            self.reject_duplicate_names(index)?;
        }
        Ok(())
    }

    fn reject_duplicate_names(&mut self, object: u32) -> Result<(), JsonError> {
        // Typical objects are small with short unescaped names: compare packed
        // (length, first 7 bytes) keys pairwise, and bytes only when keys tie on a
        // longer name. Escaped names or large objects take the general path.
        let mut keys = [0u64; PAIRWISE_DUPLICATE_LIMIT];
        let mut spans = [(0usize, 0usize); PAIRWISE_DUPLICATE_LIMIT];
        let mut count = 0;
        let end = self.nodes.get(object as usize).map_or(0, |node| node.after);
        let mut next = object + 1;
        while next < end {
            let Some(name) = self.nodes.get(next as usize).copied() else {
                break;
            };
            if name.escaped || count == PAIRWISE_DUPLICATE_LIMIT {
                return self.reject_duplicate_names_by_hash(object);
            }
            let span = (name.start as usize, name.end as usize);
            let key = self.name_key(span);
            let earlier = keys.iter().zip(&spans).take(count);
            for (&other_key, &other_span) in earlier {
                if other_key == key
                    && (span.1 - span.0 <= 7
                        || self.bytes.get(span.0..span.1)
                            == self.bytes.get(other_span.0..other_span.1))
                {
                    return Err(JsonError::DuplicateMember);
                }
            }
            if let (Some(key_slot), Some(span_slot)) = (keys.get_mut(count), spans.get_mut(count)) {
                (*key_slot, *span_slot) = (key, span);
            }
            count += 1;
            next = self
                .nodes
                .get(next as usize + 1)
                .map_or(end, |value| value.after);
        }
        Ok(())
    }

    /// [`short_key`] of the first 7 bytes of a name, with its full length (capped)
    /// in the top byte: equal keys mean equal names when both are at most 7 bytes.
    fn name_key(&self, (start, end): (usize, usize)) -> u64 {
        let length = end - start;
        let kept = length.min(7);
        let word = match self.bytes.get(start..start + 8) {
            // Names are followed by at least `":` and a value, so this is the usual case.
            Some(chunk) => chunk
                .iter()
                .rev()
                .fold(0u64, |word, &byte| word << 8 | u64::from(byte)),
            None => self
                .bytes
                .get(start..start + kept)
                .unwrap_or_default()
                .iter()
                .rev()
                .fold(0u64, |word, &byte| word << 8 | u64::from(byte)),
        };
        let mask = (1u64 << (8 * kept)) - 1;
        (word & mask) | (length.min(255) as u64) << 56
    }

    fn reject_duplicate_names_by_hash(&mut self, object: u32) -> Result<(), JsonError> {
        let doc = Document {
            text: self.text,
            nodes: self.nodes,
        };
        self.names_by_hash.clear();
        self.names_by_hash.extend(
            doc.member_name_indices(object)
                .map(|index| (doc.string_at(index).fingerprint(), index)),
        );
        self.names_by_hash.sort_unstable();
        for (position, &(hash, index)) in self.names_by_hash.iter().enumerate() {
            let name = doc.string_at(index);
            let same_hash = self
                .names_by_hash
                .iter()
                .skip(position + 1)
                .take_while(|(other_hash, _)| *other_hash == hash);
            for &(_, other_index) in same_hash {
                if doc.string_at(other_index) == name {
                    return Err(JsonError::DuplicateMember);
                }
            }
        }
        Ok(())
    }

    fn literal(&mut self, position: usize, word: &str, kind: Kind) -> Result<usize, JsonError> {
        let end = position + word.len();
        if self.bytes.get(position..end) != Some(word.as_bytes()) {
            return Err(JsonError::Syntax);
        }
        self.push(kind, position, end, false);
        Ok(end)
    }

    fn digits(&self, mut position: usize) -> usize {
        while let Some(b'0'..=b'9') = self.byte(position) {
            position += 1;
        }
        position
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(&mut self, start: usize) -> Result<usize, JsonError> {
        let mut position = start;
        if self.byte(position) == Some(b'-') {
            position += 1;
        }
        let integer_start = position;
        match self.byte(position) {
            Some(b'0') => position += 1,
            Some(b'1'..=b'9') => position = self.digits(position + 1),
            _ => return Err(JsonError::Syntax),
        }
        // Decimal digits before the point of a non-zero integer part.
        let magnitude = if self.byte(integer_start) == Some(b'0') {
            0
        } else {
            position - integer_start
        };
        if self.byte(position) == Some(b'.') {
            let fraction = self.digits(position + 1);
            if fraction == position + 1 {
                return Err(JsonError::Syntax);
            }
            position = fraction;
        }
        let mut exponent = 0usize;
        if let Some(b'e' | b'E') = self.byte(position) {
            position += 1;
            let negative = self.byte(position) == Some(b'-');
            if let Some(b'+' | b'-') = self.byte(position) {
                position += 1;
            }
            let end = self.digits(position);
            if end == position {
                return Err(JsonError::Syntax);
            }
            if !negative {
                exponent = self
                    .bytes
                    .get(position..end)
                    .unwrap_or_default()
                    .iter()
                    .fold(0usize, |value, digit| {
                        value
                            .saturating_mul(10)
                            .saturating_add(usize::from(digit - b'0'))
                    });
            }
            position = end;
        }
        // I-JSON (RFC 7493 §2.2): no number beyond what an IEEE double holds. Only
        // numbers that could be that large (about 10^308) pay for the exact check.
        if magnitude.saturating_add(exponent) >= 308 || exponent >= 308 {
            let text = self.text.get(start..position).unwrap_or("");
            if !text.parse::<f64>().is_ok_and(f64::is_finite) {
                return Err(JsonError::NumberOutOfRange);
            }
        }
        self.push(Kind::Number, start, position, false);
        Ok(position)
    }

    fn hex4(&self, position: usize) -> Result<u32, JsonError> {
        let digits = self
            .bytes
            .get(position..position + 4)
            .ok_or(JsonError::InvalidEscape)?;
        digits.iter().try_fold(0u32, |value, &digit| {
            let nibble = char::from(digit)
                .to_digit(16)
                .ok_or(JsonError::InvalidEscape)?;
            Ok(value << 4 | nibble)
        })
    }

    /// Parses a string whose opening quote is at `quote`; returns the position after
    /// the closing quote.
    fn string(&mut self, quote: usize) -> Result<usize, JsonError> {
        let start = quote + 1;
        let mut position = start;
        let mut escaped = false;
        loop {
            position = self.skip_plain_string_bytes(position);
            match self.byte(position).ok_or(JsonError::Syntax)? {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    position = self.escape(position + 1)?;
                }
                0x00..=0x1f => return Err(JsonError::ControlCharacter),
                _ => position += 1,
            }
        }
        self.push(Kind::String, start, position, escaped);
        Ok(position + 1)
    }

    /// Skips string bytes that need no attention (not `"`, `\\` or a control
    /// character), eight at a time: strings are most of a token's JSON. The text is
    /// already valid UTF-8, so bytes of multi-byte characters (all >= 0x80) are plain.
    fn skip_plain_string_bytes(&self, mut position: usize) -> usize {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        let has_zero_byte = |word: u64| word.wrapping_sub(ONES) & !word & HIGH;
        while let Some(chunk) = self.bytes.get(position..position + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let word = u64::from_le_bytes(word);
            // Flags a byte equal to `"` or `\\`, or below 0x20; borrows can only
            // add false flags above the first true one, so the lowest flag is exact.
            let special = has_zero_byte(word ^ (ONES * u64::from(b'"')))
                | has_zero_byte(word ^ (ONES * u64::from(b'\\')))
                | (word.wrapping_sub(ONES * 0x20) & !word & HIGH);
            if special != 0 {
                return position + (special.trailing_zeros() / 8) as usize;
            }
            position += 8;
        }
        position
    }

    /// Validates the escape whose letter is at `position`; returns the position after it.
    fn escape(&self, position: usize) -> Result<usize, JsonError> {
        match self.byte(position).ok_or(JsonError::InvalidEscape)? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Ok(position + 1),
            b'u' => {
                let unit = self.hex4(position + 1)?;
                let after = position + 5;
                match unit {
                    0xD800..=0xDBFF => {
                        if self.bytes.get(after..after + 2) != Some(b"\\u") {
                            return Err(JsonError::LoneSurrogate);
                        }
                        match self.hex4(after + 2)? {
                            0xDC00..=0xDFFF => Ok(after + 6),
                            _ => Err(JsonError::LoneSurrogate),
                        }
                    }
                    0xDC00..=0xDFFF => Err(JsonError::LoneSurrogate),
                    _ => Ok(after),
                }
            }
            _ => Err(JsonError::InvalidEscape),
        }
    }
}

/// A validated document: the text and its tape.
#[derive(Debug, Clone, Copy)]
struct Document<'t> {
    text: &'t str,
    nodes: &'t [Node],
}

impl<'t> Document<'t> {
    fn node(&self, index: u32) -> Option<Node> {
        self.nodes.get(index as usize).copied()
    }

    fn span(&self, node: Node) -> &'t str {
        self.text
            .get(node.start as usize..node.end as usize)
            .unwrap_or("")
    }

    /// Tape indices of an object's member names, in document order.
    fn member_name_indices(&self, object: u32) -> impl Iterator<Item = u32> + Clone + use<'t> {
        let doc = *self;
        let end = doc.node(object).map_or(0, |node| node.after);
        let mut next = object + 1;
        std::iter::from_fn(move || {
            if next >= end {
                return None;
            }
            let name = next;
            next = doc.node(name + 1)?.after;
            Some(name)
        })
    }

    fn string_at(&self, index: u32) -> JsonStr<'t> {
        match self.node(index) {
            Some(node) if node.kind == Kind::String => JsonStr {
                raw: self.span(node),
                escaped: node.escaped,
            },
            _ => JsonStr::EMPTY,
        }
    }
}

/// Any JSON value inside a validated document.
#[derive(Debug, Clone, Copy)]
pub struct Value<'t> {
    doc: Document<'t>,
    index: u32,
}

impl<'t> Value<'t> {
    fn node(&self) -> Option<Node> {
        self.doc.node(self.index)
    }

    /// What kind of value this is.
    pub fn kind(&self) -> Kind {
        self.node().map_or(Kind::Null, |node| node.kind)
    }

    /// The value's JSON text exactly as it appears in the document (strings with quotes).
    pub fn raw_json(&self) -> &'t str {
        match self.node() {
            Some(node) if node.kind == Kind::String => self
                .doc
                .text
                .get(node.start as usize - 1..node.end as usize + 1)
                .unwrap_or(""),
            Some(node) => self.doc.span(node),
            None => "",
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<JsonStr<'t>> {
        (self.kind() == Kind::String).then(|| self.doc.string_at(self.index))
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        (self.kind() == Kind::Bool).then(|| self.raw_json() == "true")
    }

    /// The number's text (already validated against the JSON grammar), if this is one.
    pub fn number_text(&self) -> Option<&'t str> {
        (self.kind() == Kind::Number).then(|| self.raw_json())
    }

    /// The number as the nearest `f64`, if this is one (may be infinite when huge).
    pub fn as_f64(&self) -> Option<f64> {
        self.number_text().and_then(|text| text.parse::<f64>().ok())
    }

    /// The object, if this is one.
    pub fn as_object(&self) -> Option<Object<'t>> {
        (self.kind() == Kind::Object).then_some(Object {
            doc: self.doc,
            index: self.index,
        })
    }

    /// The array, if this is one.
    pub fn as_array(&self) -> Option<Array<'t>> {
        (self.kind() == Kind::Array).then_some(Array {
            doc: self.doc,
            index: self.index,
        })
    }

    /// Is this `null`?
    pub fn is_null(&self) -> bool {
        self.kind() == Kind::Null
    }
}

/// A JSON object: members in document order, names unique.
#[derive(Debug, Clone, Copy)]
pub struct Object<'t> {
    doc: Document<'t>,
    index: u32,
}

impl<'t> Object<'t> {
    /// The members in document order.
    pub fn members(&self) -> Members<'t> {
        let end = self.doc.node(self.index).map_or(0, |node| node.after);
        Members {
            doc: self.doc,
            next: self.index + 1,
            end,
        }
    }

    /// The value of the member named `name` (compared after unescaping).
    pub fn get(&self, name: &str) -> Option<Value<'t>> {
        self.members()
            .find(|(member, _)| *member == name)
            .map(|(_, value)| value)
    }

    /// How many members the object has.
    pub fn len(&self) -> usize {
        self.members().count()
    }

    /// Does the object have no members?
    pub fn is_empty(&self) -> bool {
        self.members().next().is_none()
    }

    /// The object's JSON text exactly as it appears in the document.
    pub fn raw_json(&self) -> &'t str {
        self.doc
            .node(self.index)
            .map_or("", |node| self.doc.span(node))
    }
}

/// Iterator over an object's `(name, value)` pairs.
#[derive(Debug, Clone)]
pub struct Members<'t> {
    doc: Document<'t>,
    next: u32,
    end: u32,
}

impl<'t> Iterator for Members<'t> {
    type Item = (JsonStr<'t>, Value<'t>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.end {
            return None;
        }
        let name = self.doc.string_at(self.next);
        let value_index = self.next + 1;
        let value_node = self.doc.node(value_index)?;
        self.next = value_node.after;
        Some((
            name,
            Value {
                doc: self.doc,
                index: value_index,
            },
        ))
    }
}

/// A JSON array.
#[derive(Debug, Clone, Copy)]
pub struct Array<'t> {
    doc: Document<'t>,
    index: u32,
}

impl<'t> Array<'t> {
    /// The elements in document order.
    pub fn iter(&self) -> Elements<'t> {
        let end = self.doc.node(self.index).map_or(0, |node| node.after);
        Elements {
            doc: self.doc,
            next: self.index + 1,
            end,
        }
    }

    /// How many elements the array has.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Does the array have no elements?
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

impl<'t> IntoIterator for Array<'t> {
    type Item = Value<'t>;
    type IntoIter = Elements<'t>;

    fn into_iter(self) -> Elements<'t> {
        self.iter()
    }
}

/// Iterator over an array's elements.
#[derive(Debug, Clone)]
pub struct Elements<'t> {
    doc: Document<'t>,
    next: u32,
    end: u32,
}

impl<'t> Iterator for Elements<'t> {
    type Item = Value<'t>;

    fn next(&mut self) -> Option<Value<'t>> {
        if self.next >= self.end {
            return None;
        }
        let value = Value {
            doc: self.doc,
            index: self.next,
        };
        self.next = self.doc.node(self.next)?.after;
        Some(value)
    }
}

/// A JSON string as it stands in the document: borrowed, unescaped only on demand.
#[derive(Clone, Copy)]
pub struct JsonStr<'t> {
    raw: &'t str,
    escaped: bool,
}

impl<'t> JsonStr<'t> {
    const EMPTY: JsonStr<'static> = JsonStr {
        raw: "",
        escaped: false,
    };

    /// The string's text without escapes, borrowed, if it had none (the usual case).
    pub fn as_plain(&self) -> Option<&'t str> {
        (!self.escaped).then_some(self.raw)
    }

    /// The contents between the quotes, escapes and all.
    pub fn raw(&self) -> &'t str {
        self.raw
    }

    /// The unescaped characters.
    pub fn chars(&self) -> Unescaped<'t> {
        Unescaped {
            rest: self.raw.chars(),
        }
    }

    /// The unescaped string, borrowed when there was nothing to unescape.
    pub fn to_cow(&self) -> Cow<'t, str> {
        match self.as_plain() {
            Some(plain) => Cow::Borrowed(plain),
            None => Cow::Owned(self.chars().collect()),
        }
    }

    /// Does the unescaped string start with `prefix`?
    pub fn starts_with(&self, prefix: &str) -> bool {
        match self.as_plain() {
            Some(plain) => plain.starts_with(prefix),
            None => {
                let mut chars = self.chars();
                prefix.chars().all(|wanted| chars.next() == Some(wanted))
            }
        }
    }

    /// [`short_key`] of the string, if it is unescaped and at most 7 bytes long.
    ///
    /// Not a stable API: how the engine matches member names; public for
    /// jwtgate's fuzz targets.
    #[doc(hidden)]
    pub fn short_key(&self) -> Option<u64> {
        if self.escaped {
            None
        } else {
            short_key(self.raw.as_bytes())
        }
    }

    /// Is the string empty?
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// A 64-bit FNV-1a hash of the unescaped characters (equal strings, equal hashes).
    fn fingerprint(&self) -> u64 {
        self.chars().fold(0xcbf2_9ce4_8422_2325, |hash, c| {
            (hash ^ u64::from(u32::from(c))).wrapping_mul(0x0000_0100_0000_01b3)
        })
    }
}

impl PartialEq for JsonStr<'_> {
    fn eq(&self, other: &JsonStr<'_>) -> bool {
        match (self.as_plain(), other.as_plain()) {
            (Some(a), Some(b)) => a == b,
            _ => self.chars().eq(other.chars()),
        }
    }
}

impl Eq for JsonStr<'_> {}

impl PartialEq<&str> for JsonStr<'_> {
    fn eq(&self, other: &&str) -> bool {
        match self.as_plain() {
            Some(plain) => plain == *other,
            None => self.chars().eq(other.chars()),
        }
    }
}

impl PartialEq<str> for JsonStr<'_> {
    fn eq(&self, other: &str) -> bool {
        PartialEq::<&str>::eq(self, &other)
    }
}

impl fmt::Display for JsonStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_plain() {
            Some(plain) => f.write_str(plain),
            None => self.chars().try_for_each(|c| fmt::Write::write_char(f, c)),
        }
    }
}

impl fmt::Debug for JsonStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.to_cow(), f)
    }
}

/// The characters of a validated JSON string with its escapes resolved.
#[derive(Debug, Clone)]
pub struct Unescaped<'t> {
    rest: std::str::Chars<'t>,
}

impl Unescaped<'_> {
    fn hex4(&mut self) -> u32 {
        (0..4).fold(0, |value, _| {
            value << 4 | self.rest.next().and_then(|c| c.to_digit(16)).unwrap_or(0)
        })
    }
}

impl Iterator for Unescaped<'_> {
    type Item = char;

    fn next(&mut self) -> Option<char> {
        let c = self.rest.next()?;
        if c != '\\' {
            return Some(c);
        }
        // The parser validated every escape, including surrogate pairing, so the
        // fallbacks below are unreachable for strings that come from a tape.
        Some(match self.rest.next()? {
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => {
                let unit = self.hex4();
                if (0xD800..0xDC00).contains(&unit) {
                    self.rest.nth(1);
                    let low = self.hex4();
                    char::from_u32(
                        0x10000 + ((unit - 0xD800) << 10) + (low.wrapping_sub(0xDC00) & 0x3FF),
                    )
                    .unwrap_or(char::REPLACEMENT_CHARACTER)
                } else {
                    char::from_u32(unit).unwrap_or(char::REPLACEMENT_CHARACTER)
                }
            }
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<String, JsonError> {
        let mut tape = Tape::new();
        tape.parse(text.as_bytes(), 32)
            .map(|value| value.raw_json().to_owned())
    }

    #[test]
    fn accepts_well_formed_documents() {
        for text in [
            "{}",
            " { \"a\" : [1, -2.5e+3, true, false, null, \"x\"], \"b\": {\"c\": {}} } ",
            "[]",
            "\"\\u00e9\\ud83d\\ude00\\n\"",
            "0",
            "-0.0e-0",
            "[[[]]]",
        ] {
            assert_eq!(parse(text).as_deref(), Ok(text.trim()), "{text}");
        }
    }

    #[test]
    fn refuses_grammar_violations() {
        for text in [
            "",
            " ",
            "{",
            "}",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "[1,]",
            "[,1]",
            "{a:1}",
            "{'a':1}",
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "+1",
            "tru",
            "nulll",
            "NaN",
            "Infinity",
            "[1 2]",
            "{\"a\":1 \"b\":2}",
            "\"abc",
            "[\"a\"]]",
        ] {
            let result = parse(text);
            assert!(
                matches!(
                    result,
                    Err(JsonError::Syntax | JsonError::TrailingCharacters)
                ),
                "{text:?} gave {result:?}"
            );
        }
    }

    #[test]
    fn refuses_what_i_json_forbids() {
        assert_eq!(parse("\u{feff}{}"), Err(JsonError::ByteOrderMark));
        assert_eq!(parse("{\"a\":\"\\ud800\"}"), Err(JsonError::LoneSurrogate));
        assert_eq!(parse("{\"a\":\"\\udc00\"}"), Err(JsonError::LoneSurrogate));
        assert_eq!(
            parse("{\"a\":\"\\ud800\\u0041\"}"),
            Err(JsonError::LoneSurrogate)
        );
        assert_eq!(parse("{\"a\":\"\\x41\"}"), Err(JsonError::InvalidEscape));
        assert_eq!(parse("{\"a\":\"\\u12\"}"), Err(JsonError::InvalidEscape));
        assert_eq!(
            parse("{\"a\":\"tab\there\"}"),
            Err(JsonError::ControlCharacter)
        );
        let mut tape = Tape::new();
        assert_eq!(
            tape.parse(b"{\"a\":\"\xff\"}", 8).err(),
            Some(JsonError::InvalidUtf8)
        );
    }

    #[test]
    fn refuses_duplicate_names_even_when_escaped() {
        assert_eq!(parse("{\"a\":1,\"a\":2}"), Err(JsonError::DuplicateMember));
        assert_eq!(
            parse("{\"alg\":1,\"\\u0061lg\":2}"),
            Err(JsonError::DuplicateMember)
        );
        assert_eq!(
            parse("{\"x\":{\"b\":1,\"b\":1}}"),
            Err(JsonError::DuplicateMember)
        );
        assert!(parse("{\"a\":{\"a\":1},\"b\":[{\"a\":1},{\"a\":2}]}").is_ok());
    }

    #[test]
    fn finds_duplicates_in_large_objects_by_hash() {
        let mut members: Vec<String> = (0..200).map(|i| format!("\"k{i}\":{i}")).collect();
        let unique = format!("{{{}}}", members.join(","));
        assert!(parse(&unique).is_ok());
        members.push("\"k\\u0031\\u0037\":0".to_owned());
        assert_eq!(
            parse(&format!("{{{}}}", members.join(","))),
            Err(JsonError::DuplicateMember)
        );
    }

    #[test]
    fn bounds_depth_without_recursion() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let mut tape = Tape::new();
        assert!(tape.parse(deep(4).as_bytes(), 4).is_ok());
        assert_eq!(
            tape.parse(deep(5).as_bytes(), 4).err(),
            Some(JsonError::TooDeep)
        );
        assert_eq!(
            tape.parse(deep(100_000).as_bytes(), 1000).err(),
            Some(JsonError::TooDeep)
        );
    }

    #[test]
    fn views_read_members_and_elements() {
        let mut tape = Tape::new();
        let text = br#"{"s":"a\"b","n":12.5,"t":true,"arr":["x",{"y":null}],"o":{"k":"v"}}"#;
        let root = tape.parse(text, 8).map_err(|e| e.to_string());
        let object = root.ok().and_then(|v| v.as_object());
        let Some(object) = object else {
            unreachable!("document is an object")
        };
        assert_eq!(object.len(), 5);
        assert_eq!(
            object
                .get("s")
                .and_then(|v| v.as_str())
                .map(|s| s.to_cow().into_owned())
                .as_deref(),
            Some("a\"b")
        );
        assert_eq!(object.get("n").and_then(|v| v.as_f64()), Some(12.5));
        assert_eq!(object.get("t").and_then(|v| v.as_bool()), Some(true));
        let array = object.get("arr").and_then(|v| v.as_array());
        assert_eq!(array.map(|a| a.len()), Some(2));
        let second = array.and_then(|a| a.iter().nth(1));
        assert_eq!(second.map(|v| v.raw_json()), Some(r#"{"y":null}"#));
        assert_eq!(object.get("o").map(|v| v.raw_json()), Some(r#"{"k":"v"}"#));
        assert!(object.get("missing").is_none());
        let names: Vec<String> = object.members().map(|(name, _)| name.to_string()).collect();
        assert_eq!(names, ["s", "n", "t", "arr", "o"]);
    }

    #[test]
    fn unescapes_every_escape() {
        let mut tape = Tape::new();
        let text = br#""\"\\\/\b\f\n\r\t\u0041\u00e9\ud83d\ude00""#;
        let string = tape.parse(text, 4).ok().and_then(|v| v.as_str());
        assert_eq!(
            string.map(|s| s.to_cow().into_owned()).as_deref(),
            Some("\"\\/\u{8}\u{c}\n\r\tA\u{e9}\u{1f600}")
        );
        assert!(string.is_some_and(|s| s.as_plain().is_none()));
        assert!(string.is_some_and(|s| s.starts_with("\"\\/")));
    }
}
