//! Cuts a byte stream into lines and packs them into [`Batch`]es, in bounded memory.
//!
//! A line ends at LF; a CR before the LF is dropped (CRLF input). A final line
//! without LF still counts. A line longer than the token limit is not buffered:
//! its bytes are skipped up to the next LF and the line is marked
//! [`LineKind::TooLong`], so a 10 GB line costs no memory and still gets its
//! result. Every line, blank or binary, gets exactly one entry, so output line
//! numbers always match input line numbers.

use std::io::{self, BufRead, BufReader, Read};

/// What the reader found on one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineKind {
    /// The line's bytes are in the batch.
    Token,
    /// The line exceeded the token limit; its bytes were skipped.
    TooLong,
}

/// One input line: where it came from and where its bytes sit in the batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Line {
    pub(crate) input: u32,
    pub(crate) number: u64,
    pub(crate) start: u32,
    pub(crate) end: u32,
    pub(crate) kind: LineKind,
}

/// A unit of work: a run of consecutive lines, their bytes, and (once verified)
/// their rendered results. Batches are recycled, so their buffers are reused.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub(crate) sequence: u64,
    pub(crate) data: Vec<u8>,
    pub(crate) lines: Vec<Line>,
    pub(crate) output: Vec<u8>,
    pub(crate) outcome_counts: [u64; crate::Outcome::COUNT],
    /// Set by a worker that could not finish the batch.
    pub(crate) failed: bool,
}

impl Batch {
    pub(crate) fn clear(&mut self) {
        self.data.clear();
        self.lines.clear();
        self.output.clear();
        self.outcome_counts = [0; crate::Outcome::COUNT];
        self.failed = false;
    }

    /// The bytes of `line` (empty for a skipped over-long line).
    #[cfg(test)]
    pub(crate) fn bytes(&self, line: &Line) -> &[u8] {
        self.data
            .get(line.start as usize..line.end as usize)
            .unwrap_or_default()
    }
}

/// Limits on how much one batch holds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchLimits {
    /// Lines longer than this are skipped and marked too long.
    pub(crate) max_line: usize,
    /// A batch is closed at this many lines...
    pub(crate) lines: usize,
    /// ...or once its data reaches this many bytes.
    pub(crate) bytes: usize,
}

/// Reads one input into batches, keeping the state of a partially read line
/// across batch boundaries.
pub(crate) struct LineSplitter<R> {
    reader: BufReader<R>,
    input: u32,
    next_number: u64,
    limits: BatchLimits,
    finished: bool,
}

impl<R: Read> LineSplitter<R> {
    pub(crate) fn new(reader: BufReader<R>, input: u32, limits: BatchLimits) -> LineSplitter<R> {
        LineSplitter {
            reader,
            input,
            next_number: 1,
            limits,
            finished: false,
        }
    }

    /// Has the input been read to its end?
    pub(crate) fn is_finished(&self) -> bool {
        self.finished
    }

    /// Would the next read have to wait for the underlying stream (nothing is
    /// buffered)? For a pipe this is where a partial batch should be handed on.
    pub(crate) fn would_block(&self) -> bool {
        self.reader.buffer().is_empty()
    }

    /// Appends lines to `batch` until it is full, the input ends, or nothing more
    /// is buffered (so a slow stream's lines are not held back).
    pub(crate) fn fill(&mut self, batch: &mut Batch) -> io::Result<()> {
        while !self.finished
            && batch.lines.len() < self.limits.lines
            && batch.data.len() < self.limits.bytes
        {
            self.read_line(batch)?;
            if self.would_block() {
                break;
            }
        }
        Ok(())
    }

    /// Reads exactly one line (or detects the end of input).
    fn read_line(&mut self, batch: &mut Batch) -> io::Result<()> {
        let start = batch.data.len();
        let mut too_long = false;
        let mut saw_bytes = false;
        loop {
            let available = match self.reader.fill_buf() {
                Ok(available) => available,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            };
            if available.is_empty() {
                self.finished = true;
                if !saw_bytes {
                    return Ok(());
                }
                break;
            }
            saw_bytes = true;
            let (chunk, consumed, ends_line) = match memchr::memchr(b'\n', available) {
                Some(newline) => (
                    available.get(..newline).unwrap_or_default(),
                    newline + 1,
                    true,
                ),
                None => (available, available.len(), false),
            };
            if !too_long {
                if batch.data.len() - start + chunk.len() > self.limits.max_line.saturating_add(1) {
                    // +1 tolerates the CR of a CRLF line of exactly the limit.
                    too_long = true;
                    batch.data.truncate(start);
                } else {
                    batch.data.extend_from_slice(chunk);
                }
            }
            self.reader.consume(consumed);
            if ends_line {
                break;
            }
        }
        if batch.data.last() == Some(&b'\r') && batch.data.len() > start {
            batch.data.pop();
        }
        if !too_long && batch.data.len() - start > self.limits.max_line {
            too_long = true;
            batch.data.truncate(start);
        }
        // Positions fit in u32: a batch closes at `limits.bytes` plus one line.
        let offset = |position: usize| u32::try_from(position).unwrap_or(u32::MAX);
        batch.lines.push(Line {
            input: self.input,
            number: self.next_number,
            start: offset(start),
            end: offset(batch.data.len()),
            kind: if too_long {
                LineKind::TooLong
            } else {
                LineKind::Token
            },
        });
        self.next_number += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(input: &[u8], max_line: usize, buffer: usize) -> Vec<(u64, Vec<u8>, LineKind)> {
        let limits = BatchLimits {
            max_line,
            lines: 3,
            bytes: 1 << 20,
        };
        let reader = io::BufReader::with_capacity(buffer, input);
        let mut splitter = LineSplitter::new(reader, 0, limits);
        let mut lines = Vec::new();
        let mut batch = Batch::default();
        while !splitter.is_finished() {
            batch.clear();
            splitter.fill(&mut batch).unwrap();
            assert!(batch.lines.len() <= 3);
            for line in &batch.lines {
                lines.push((line.number, batch.bytes(line).to_vec(), line.kind));
            }
        }
        lines
    }

    #[test]
    fn every_line_gets_an_entry_whatever_its_ending() {
        for buffer in [1, 2, 3, 7, 64] {
            let lines = split(b"a\r\n\nbb\n\r\nccc", 8, buffer);
            let expected: Vec<(u64, Vec<u8>, LineKind)> = vec![
                (1, b"a".to_vec(), LineKind::Token),
                (2, b"".to_vec(), LineKind::Token),
                (3, b"bb".to_vec(), LineKind::Token),
                (4, b"".to_vec(), LineKind::Token),
                (5, b"ccc".to_vec(), LineKind::Token),
            ];
            assert_eq!(lines, expected, "buffer {buffer}");
        }
        assert!(split(b"", 8, 4).is_empty());
        assert_eq!(split(b"\n", 8, 4).len(), 1);
        assert_eq!(split(b"x\n", 8, 4).len(), 1);
    }

    #[test]
    fn over_long_lines_are_skipped_not_buffered() {
        for buffer in [1, 3, 16] {
            let lines = split(b"12345678\r\n123456789\nok\n123456789", 8, buffer);
            let kinds: Vec<LineKind> = lines.iter().map(|l| l.2).collect();
            assert_eq!(
                kinds,
                [
                    LineKind::Token,
                    LineKind::TooLong,
                    LineKind::Token,
                    LineKind::TooLong
                ],
                "buffer {buffer}"
            );
            assert!(
                lines
                    .iter()
                    .filter(|l| l.2 == LineKind::TooLong)
                    .all(|l| l.1.is_empty())
            );
            assert_eq!(lines.get(2).map(|l| l.1.as_slice()), Some(&b"ok"[..]));
        }
    }

    #[test]
    fn a_batch_stops_where_the_buffered_input_ends() {
        // A reader that hands out one line per read, like a pipe written slowly.
        struct OneLineAtATime(Vec<&'static [u8]>);
        impl Read for OneLineAtATime {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let Some(next) = self.0.pop() else {
                    return Ok(0);
                };
                buf[..next.len()].copy_from_slice(next);
                Ok(next.len())
            }
        }
        let limits = BatchLimits {
            max_line: 64,
            lines: 100,
            bytes: 1 << 20,
        };
        let reader = BufReader::new(OneLineAtATime(vec![b"c\n", b"b\n", b"a\n"]));
        let mut splitter = LineSplitter::new(reader, 0, limits);
        let mut batch = Batch::default();
        splitter.fill(&mut batch).unwrap();
        assert_eq!(
            batch.lines.len(),
            1,
            "must not wait for more input before handing on"
        );
        assert!(splitter.would_block());
    }

    #[test]
    fn binary_garbage_is_just_bytes() {
        let lines = split(b"\xff\xfe\x00\n\x80", 8, 2);
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines.first().map(|l| l.1.clone()),
            Some(vec![0xff, 0xfe, 0x00])
        );
    }
}
