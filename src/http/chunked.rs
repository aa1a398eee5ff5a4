//! Chunked request bodies (RFC 9112 §7.1), decoded incrementally and in
//! place: the connection loop hands each read to a [`ChunkedDecoder`], which
//! keeps its state between reads, holds back at most one size line, and
//! counts the decoded length against the body limit as each size line arrives.
//!
//! Neighbours: [`super::request`] decides from the head that a body is
//! chunked; [`crate::server`] owns the buffer and calls the decoder.

use super::request::ProtocolError;

fn bad(detail: &'static str) -> ProtocolError {
    ProtocolError::BadRequest(detail)
}

/// Longest chunk-size line (size, extensions, CRLF): longer is 400. Sizes
/// take at most 16 hex digits; the rest is room for extensions.
pub(crate) const MAX_CHUNK_LINE: usize = 1024;

/// Most chunk-extension bytes in one body: more is 400. jwtgate ignores
/// extensions, so without a total bound a client could send a long
/// extension with every one-byte chunk (hyper bounds them the same way).
pub(crate) const MAX_CHUNK_EXTENSIONS: usize = 16 * 1024;

/// Longest trailer section, its final CRLF included: longer is 431.
/// Trailers are read and thrown away; they never reach a service.
pub(crate) const MAX_TRAILER_BYTES: usize = 4096;

/// Where a [`ChunkedDecoder`] is in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// At a chunk-size line, the first `searched` bytes of which hold no LF.
    Size { searched: usize },
    /// In chunk data, `left` bytes to go.
    Data { left: u64 },
    /// After chunk data: its CRLF, `cr` once the CR is in.
    DataEnd { cr: bool },
    /// At the start of a trailer field line or of the final empty line.
    TrailerStart,
    /// In a trailer field line, `colon` once its name has ended.
    TrailerField { colon: bool },
    /// After the CR of a trailer line; `last` if the line was empty.
    TrailerEnd { last: bool },
    /// The body and its trailers are complete.
    Done,
}

/// One step of a [`ChunkedDecoder`]: what the front of the bytes it was given holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkStep {
    /// This many bytes of framing (a size line, a CRLF, trailers): skip them.
    Framing(usize),
    /// This many bytes of body data.
    Data(usize),
    /// Every byte given was looked at and more are needed: give the same
    /// bytes again, with what arrives after them.
    Partial,
    /// The body ended with this many bytes of framing; the next request follows.
    Done(usize),
}

/// How far [`ChunkedDecoder::decode_in_place`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InPlace {
    /// Offset of the first byte not decoded yet: where the next call starts,
    /// or, once `done`, where the next request starts.
    pub read: usize,
    /// End of the decoded data kept so far.
    pub write: usize,
    /// The body is complete, trailers included.
    pub done: bool,
}

/// An incremental decoder of a chunked body (RFC 9112 §7.1): its state is
/// kept between reads, it never needs more than one size line of lookahead
/// (`MAX_CHUNK_LINE`), and it does not allocate.
///
/// Strict where peers are known to disagree, so that jwtgate never reads a
/// body's end elsewhere than the proxy before it: a size is 1 to 16 hex
/// digits; every line ends in CRLF (no bare LF, no bare CR); chunk data is
/// followed by CRLF; extensions and trailer lines hold no control bytes
/// other than HTAB; a trailer line has a `:` and does not start with
/// whitespace (no obsolete folding). The decoded length counts against the
/// body limit as each size line arrives, so an oversized chunk is refused
/// (413) before its data is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkedDecoder {
    state: ChunkState,
    /// Body bytes announced by the size lines so far.
    decoded: u64,
    /// The body limit: beyond it, 413.
    max: u64,
    /// Extension bytes so far, against [`MAX_CHUNK_EXTENSIONS`].
    extensions: usize,
    /// Trailer bytes so far, against [`MAX_TRAILER_BYTES`].
    trailers: usize,
}

/// Control bytes other than HTAB, which no extension or field may hold.
fn has_control(bytes: &[u8]) -> bool {
    bytes.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
}

impl ChunkedDecoder {
    /// A decoder at the start of a body of at most `max` decoded bytes.
    pub fn new(max: u64) -> ChunkedDecoder {
        ChunkedDecoder {
            state: ChunkState::Size { searched: 0 },
            decoded: 0,
            max,
            extensions: 0,
            trailers: 0,
        }
    }

    /// Body bytes decoded (announced by the size lines read) so far.
    pub fn decoded(&self) -> u64 {
        self.decoded
    }

    /// Whether the body and its trailers are complete.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decodes from the front of `input`: the bytes after those the last
    /// step consumed (a [`ChunkStep::Partial`] consumes nothing).
    pub fn step(&mut self, input: &[u8]) -> Result<ChunkStep, ProtocolError> {
        match self.state {
            ChunkState::Size { searched } => self.size_line(input, searched),
            ChunkState::Data { left } => {
                if input.is_empty() {
                    return Ok(ChunkStep::Partial);
                }
                let available = u64::try_from(input.len()).unwrap_or(u64::MAX);
                let taken = left.min(available);
                self.state = if taken == left {
                    ChunkState::DataEnd { cr: false }
                } else {
                    ChunkState::Data { left: left - taken }
                };
                // `taken` is at most `input.len()`, a usize.
                Ok(ChunkStep::Data(usize::try_from(taken).unwrap_or(0)))
            }
            ChunkState::DataEnd { cr } => {
                let used = match (cr, input) {
                    (_, []) => return Ok(ChunkStep::Partial),
                    (false, [b'\r']) => {
                        self.state = ChunkState::DataEnd { cr: true };
                        return Ok(ChunkStep::Framing(1));
                    }
                    (false, [b'\r', b'\n', ..]) => 2,
                    (true, [b'\n', ..]) => 1,
                    _ => return Err(bad("chunk data is not followed by CRLF")),
                };
                self.state = ChunkState::Size { searched: 0 };
                Ok(ChunkStep::Framing(used))
            }
            ChunkState::TrailerStart
            | ChunkState::TrailerField { .. }
            | ChunkState::TrailerEnd { .. } => self.trailer(input),
            ChunkState::Done => Ok(ChunkStep::Done(0)),
        }
    }

    /// A chunk-size line: `1*HEXDIG [ BWS ; extensions ] CRLF`.
    fn size_line(&mut self, input: &[u8], searched: usize) -> Result<ChunkStep, ProtocolError> {
        let from = searched.min(input.len());
        let rest = input.get(from..).unwrap_or_default();
        let Some(lf) = memchr::memchr(b'\n', rest).map(|at| at + from) else {
            if input.len() >= MAX_CHUNK_LINE {
                return Err(bad("chunk size line too long"));
            }
            self.state = ChunkState::Size {
                searched: input.len(),
            };
            return Ok(ChunkStep::Partial);
        };
        let len = lf + 1;
        if len > MAX_CHUNK_LINE {
            return Err(bad("chunk size line too long"));
        }
        let line = input.get(..len).unwrap_or_default();
        let malformed = bad("malformed chunk size line");
        // httparse reads an empty size as 0, which would end the body where a
        // stricter peer sees none: at least one digit.
        if !line.first().is_some_and(u8::is_ascii_hexdigit) {
            return Err(malformed);
        }
        // httparse passes over every byte of an extension, a bare LF included
        // (the line then has no CRLF and is Partial, refused below).
        if has_control(line.get(..len.saturating_sub(2)).unwrap_or_default()) {
            return Err(malformed);
        }
        let size = match httparse::parse_chunk_size(line) {
            Ok(httparse::Status::Complete((used, size))) if used == len => size,
            _ => return Err(malformed),
        };
        // Everything past the digits but the CRLF counts, whitespace padding
        // included: httparse accepts spaces after a size, and without them
        // in the budget a one-byte chunk could carry a 1 KiB size line.
        let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        self.extensions += len.saturating_sub(digits + 2);
        if self.extensions > MAX_CHUNK_EXTENSIONS {
            return Err(bad("chunk extensions too long"));
        }
        self.decoded = self
            .decoded
            .checked_add(size)
            .filter(|&total| total <= self.max)
            .ok_or(ProtocolError::BodyTooLarge)?;
        self.state = if size == 0 {
            ChunkState::TrailerStart
        } else {
            ChunkState::Data { left: size }
        };
        Ok(ChunkStep::Framing(len))
    }

    /// The trailer section: field lines and an empty line, read and dropped.
    fn trailer(&mut self, input: &[u8]) -> Result<ChunkStep, ProtocolError> {
        let malformed = bad("malformed trailer section");
        let mut at = 0;
        let mut done = false;
        while let Some(&byte) = input.get(at) {
            match self.state {
                ChunkState::TrailerStart => match byte {
                    b'\r' => {
                        self.state = ChunkState::TrailerEnd { last: true };
                        at += 1;
                    }
                    // A bare LF; leading whitespace (obsolete folding); no name.
                    b'\n' | b' ' | b'\t' | b':' => return Err(malformed),
                    _ => self.state = ChunkState::TrailerField { colon: false },
                },
                ChunkState::TrailerField { colon } => {
                    let rest = input.get(at..).unwrap_or_default();
                    let end = memchr::memchr2(b'\r', b'\n', rest);
                    let field = rest.get(..end.unwrap_or(rest.len())).unwrap_or_default();
                    if has_control(field) {
                        return Err(malformed);
                    }
                    let colon = colon || memchr::memchr(b':', field).is_some();
                    match end.and_then(|end| rest.get(end)) {
                        None => {
                            self.state = ChunkState::TrailerField { colon };
                            at = input.len();
                        }
                        Some(b'\r') if colon => {
                            self.state = ChunkState::TrailerEnd { last: false };
                            at += field.len() + 1;
                        }
                        Some(_) => return Err(malformed),
                    }
                }
                ChunkState::TrailerEnd { last } => {
                    if byte != b'\n' {
                        return Err(malformed);
                    }
                    at += 1;
                    if last {
                        self.state = ChunkState::Done;
                        done = true;
                        break;
                    }
                    self.state = ChunkState::TrailerStart;
                }
                _ => break,
            }
        }
        self.trailers += at;
        if self.trailers > MAX_TRAILER_BYTES {
            return Err(ProtocolError::HeadersTooLarge);
        }
        Ok(match (done, at) {
            (true, _) => ChunkStep::Done(at),
            (false, 0) => ChunkStep::Partial,
            (false, _) => ChunkStep::Framing(at),
        })
    }

    /// Decodes `buf[read..]` in place: each run of body data is moved down to
    /// `write` when `keep` (the body is wanted whole, contiguous from where
    /// `write` started) or dropped otherwise, and framing is dropped. Stops
    /// at the end of the body or of `buf`; a size line not yet complete is
    /// left at `read` for the caller to keep, with what arrives after it,
    /// and pass again.
    pub fn decode_in_place(
        &mut self,
        buf: &mut [u8],
        mut read: usize,
        mut write: usize,
        keep: bool,
    ) -> Result<InPlace, ProtocolError> {
        loop {
            let rest = buf.get(read..).unwrap_or_default();
            match self.step(rest)? {
                ChunkStep::Framing(n) => read += n,
                ChunkStep::Data(n) => {
                    if keep {
                        // In bounds: `n` bytes follow `read`, and `write <= read`
                        // because framing is never kept.
                        buf.copy_within(read..read + n, write);
                        write += n;
                    }
                    read += n;
                }
                ChunkStep::Partial => {
                    return Ok(InPlace {
                        read,
                        write,
                        done: false,
                    });
                }
                ChunkStep::Done(n) => {
                    return Ok(InPlace {
                        read: read + n,
                        write,
                        done: true,
                    });
                }
            }
        }
    }

    /// Reads through `input` and throws the body away: how many bytes were
    /// consumed (up to a partial size line, which must be passed again), and
    /// whether the body is complete.
    pub fn skip(&mut self, input: &[u8]) -> Result<(usize, bool), ProtocolError> {
        let mut read = 0;
        loop {
            match self.step(input.get(read..).unwrap_or_default())? {
                ChunkStep::Framing(n) | ChunkStep::Data(n) => read += n,
                ChunkStep::Partial => return Ok((read, false)),
                ChunkStep::Done(n) => return Ok((read + n, true)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `encoded` fed in reads cut at `cuts`, as the connection loop
    /// does: decoded in place, the unconsumed rest moved down after each read.
    /// The body (kept or only counted) and the encoded bytes used.
    fn decode_in_reads(
        encoded: &[u8],
        cuts: &[usize],
        keep: bool,
        max: u64,
    ) -> Result<(Vec<u8>, u64, usize), ProtocolError> {
        let mut decoder = ChunkedDecoder::new(max);
        let mut buf = Vec::new();
        let mut kept = 0;
        let mut removed = 0;
        let mut ends: Vec<usize> = cuts.iter().map(|&cut| cut.min(encoded.len())).collect();
        ends.push(encoded.len());
        ends.sort_unstable();
        let mut start = 0;
        for end in ends {
            buf.extend_from_slice(&encoded[start..end]);
            start = end;
            let progress = decoder.decode_in_place(&mut buf, kept, kept, keep)?;
            if progress.done {
                assert!(decoder.is_done());
                buf.truncate(progress.write);
                return Ok((buf, decoder.decoded(), progress.read - kept + removed));
            }
            buf.copy_within(progress.read.., progress.write);
            buf.truncate(buf.len() - (progress.read - progress.write));
            removed += progress.read - kept;
            kept = progress.write;
            // Never more held back than one size line.
            assert!(buf.len() - kept < MAX_CHUNK_LINE);
        }
        Err(bad("incomplete"))
    }

    /// A naive chunked decoder over the whole input at once: the body and the
    /// bytes used, or `None` if malformed or incomplete.
    fn reference_decode(encoded: &[u8]) -> Option<(Vec<u8>, usize)> {
        let mut at = 0;
        let mut body = Vec::new();
        loop {
            let line_end = at + encoded[at..].windows(2).position(|w| w == b"\r\n")?;
            let line = &encoded[at..line_end];
            let digits = line.split(|&b| b == b';').next()?;
            let digits = std::str::from_utf8(digits)
                .ok()?
                .trim_end_matches([' ', '\t']);
            let size = usize::from_str_radix(digits, 16).ok()?;
            at = line_end + 2;
            if size == 0 {
                break;
            }
            body.extend_from_slice(encoded.get(at..at + size)?);
            at += size;
            (encoded.get(at..at + 2)? == b"\r\n").then_some(())?;
            at += 2;
        }
        loop {
            let line_end = at + encoded[at..].windows(2).position(|w| w == b"\r\n")?;
            let empty = line_end == at;
            at = line_end + 2;
            if empty {
                return Some((body, at));
            }
        }
    }

    fn decode_whole(encoded: &[u8]) -> Result<(Vec<u8>, u64, usize), ProtocolError> {
        decode_in_reads(encoded, &[], true, 1 << 20)
    }

    #[test]
    fn chunked_bodies_decode_with_extensions_and_trailers() {
        let encoded = b"5\r\nhello\r\n1;name=\"v\" ; x\r\n \r\n6 \r\nworld!\r\n0\r\nX-Sum: 1\r\nY:\r\n\r\nGET";
        let (body, decoded, used) = decode_whole(encoded).unwrap();
        assert_eq!((&body[..], decoded), (&b"hello world!"[..], 12));
        assert_eq!(&encoded[used..], b"GET");
        let (body, _, used) = decode_whole(b"0\r\n\r\n").unwrap();
        assert_eq!((body.len(), used), (0, 5));
        let upper = decode_whole(b"A\r\n0123456789\r\n0000\r\n\r\n").unwrap();
        assert_eq!(upper.0, b"0123456789");
    }

    #[test]
    fn malformed_chunking_is_refused() {
        let too_long_line = format!("1;{}\r\nx\r\n0\r\n\r\n", "e".repeat(MAX_CHUNK_LINE));
        let many_extensions = format!("{}0\r\n\r\n", "1;abcdefghijklmnop\r\nx\r\n".repeat(1100));
        let padded_sizes = format!(
            "{}0\r\n\r\n",
            format!("1{}\r\nx\r\n", " ".repeat(100)).repeat(200)
        );
        let big_trailer = format!("0\r\nX: {}\r\n\r\n", "v".repeat(MAX_TRAILER_BYTES));
        let cases: [(&[u8], u16); 21] = [
            (b"\r\n\r\n", 400),               // no size digits
            (b";ext\r\nx\r\n0\r\n\r\n", 400), // no size digits before an extension
            (b"-1\r\nx\r\n0\r\n\r\n", 400),
            (b"0x1\r\nx\r\n0\r\n\r\n", 400),
            (b" 1\r\nx\r\n0\r\n\r\n", 400),
            (b"1\nx\r\n0\r\n\r\n", 400), // bare LF ends a size line
            (b"1;a\nb\r\nx\r\n0\r\n\r\n", 400), // bare LF inside an extension
            (b"1;a\0\r\nx\r\n0\r\n\r\n", 400), // a control byte in an extension
            (b"1\rx\r\n0\r\n\r\n", 400), // bare CR
            (b"11111111111111111\r\n", 400), // 17 digits
            (b"3\r\nabcd\r\n0\r\n\r\n", 400), // data longer than its size
            (b"3\r\nab\r\n\r\n0\r\n\r\n", 400), // no CRLF after the data: "\r\n" is data
            (b"3\r\nabc\n0\r\n\r\n", 400), // LF alone after the data
            (b"0\r\nX: y\n\r\n", 400),   // bare LF in the trailers
            (b"0\r\nno colon\r\n\r\n", 400),
            (b"0\r\n folded: x\r\n\r\n", 400),
            (b"0\r\n\n", 400),
            (too_long_line.as_bytes(), 400),
            (many_extensions.as_bytes(), 400),
            (padded_sizes.as_bytes(), 400),
            (big_trailer.as_bytes(), 431),
        ];
        for (encoded, status) in cases {
            let error = decode_whole(encoded).unwrap_err();
            assert_eq!(
                error.status(),
                status,
                "{:?}",
                String::from_utf8_lossy(encoded)
            );
            for cut in 0..encoded.len().min(64) {
                let split = decode_in_reads(encoded, &[cut], false, 1 << 20).unwrap_err();
                assert_eq!(split, error, "cut at {cut}");
            }
        }
    }

    #[test]
    fn the_decoded_length_counts_against_the_limit_before_the_data_arrives() {
        let mut decoder = ChunkedDecoder::new(10);
        assert_eq!(decoder.skip(b"6\r\nabcdef\r\n"), Ok((11, false)));
        assert_eq!(decoder.skip(b"5\r\n"), Err(ProtocolError::BodyTooLarge));
        let mut decoder = ChunkedDecoder::new(10);
        assert_eq!(
            decoder.skip(b"6\r\nabcdef\r\n4\r\nabcd\r\n0\r\n\r\n"),
            Ok((25, true))
        );
        let mut huge = ChunkedDecoder::new(u64::MAX);
        assert_eq!(huge.skip(b"ffffffffffffffff\r\n"), Ok((18, false)));
        // Its data starts at once, CRLF included.
        assert_eq!(huge.skip(b"\r\n"), Ok((2, false)));
    }

    fn encode(
        body: &[u8],
        sizes: &[usize],
        upper: bool,
        extensions: bool,
        trailers: bool,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = body;
        let mut sizes = sizes.iter().cycle();
        while !rest.is_empty() {
            let size = (*sizes.next().unwrap()).clamp(1, rest.len());
            let line = if upper {
                format!("{size:X}")
            } else {
                format!("{size:x}")
            };
            out.extend_from_slice(line.as_bytes());
            if extensions {
                out.extend_from_slice(b" ;ext=\"a;b\"");
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&rest[..size]);
            out.extend_from_slice(b"\r\n");
            rest = &rest[size..];
        }
        out.extend_from_slice(b"0\r\n");
        if trailers {
            out.extend_from_slice(b"X-Checksum: abc\r\nX-Other:\tv\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    use proptest::prelude::*;

    proptest! {
        #[test]
        fn chunked_decoding_matches_a_naive_reference_whatever_the_reads(
            body in proptest::collection::vec(any::<u8>(), 0..1500),
            sizes in proptest::collection::vec(1usize..400, 1..8),
            cuts in proptest::collection::vec(0usize..4000, 0..40),
            upper in any::<bool>(),
            extensions in any::<bool>(),
            trailers in any::<bool>(),
        ) {
            let mut encoded = encode(&body, &sizes, upper, extensions, trailers);
            let framing_len = encoded.len();
            encoded.extend_from_slice(b"GET / HTTP/1.1\r\n");
            let (reference, reference_used) = reference_decode(&encoded).unwrap();
            prop_assert_eq!(&reference, &body);
            prop_assert_eq!(reference_used, framing_len);
            let (kept, decoded, used) = decode_in_reads(&encoded, &cuts, true, 1 << 20).unwrap();
            prop_assert_eq!(&kept, &body);
            prop_assert_eq!(decoded, body.len() as u64);
            prop_assert_eq!(used, framing_len);
            let (dropped, decoded, used) = decode_in_reads(&encoded, &cuts, false, 1 << 20).unwrap();
            prop_assert!(dropped.is_empty());
            prop_assert_eq!((decoded, used), (body.len() as u64, framing_len));
            // One byte short of the body is 413.
            if !body.is_empty() {
                let short = decode_in_reads(&encoded, &cuts, false, body.len() as u64 - 1);
                prop_assert_eq!(short, Err(ProtocolError::BodyTooLarge));
            }
        }

        #[test]
        fn chunked_decoding_of_arbitrary_bytes_never_panics_and_agrees_with_the_reference(
            encoded in proptest::collection::vec(
                prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'0'), Just(b'1'), Just(b'a'),
                            Just(b';'), Just(b':'), Just(b' '), any::<u8>()],
                0..64),
            cuts in proptest::collection::vec(0usize..64, 0..8),
        ) {
            let whole = decode_in_reads(&encoded, &[], true, 1 << 20);
            let split = decode_in_reads(&encoded, &cuts, true, 1 << 20);
            prop_assert_eq!(&whole, &split);
            // Whatever the decoder accepts, the naive reader reads the same way.
            if let Ok((body, _, used)) = whole {
                prop_assert_eq!(reference_decode(&encoded), Some((body, used)));
            }
        }
    }
}
