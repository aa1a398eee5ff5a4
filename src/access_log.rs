//! The structured access log: one JSON line per (sampled) check request,
//! written by a thread of its own so that a slow disk never stalls a shard.
//!
//! ```text
//!  shard: line appended to its buffer ──(32 KiB or the next tick)──▶ channel
//!  writer thread: writes the buffer, sends it back empty for reuse
//! ```
//!
//! Buffers circulate between the shards and the writer, so logging allocates
//! nothing in steady state. When the writer falls behind (its queue is full)
//! the shard drops the buffer's lines and counts them rather than wait: the
//! decision path never blocks on logging.
//!
//! What a line may hold is fixed here: request method, host and path (the
//! path without its query, where a token source may sit), the rule, the token
//! configuration, outcome, action and status, the token's `kid` and, for
//! verified tokens only, `sub`. Never a token, a signature, a cookie or any
//! other header.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where access-log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
    /// A file, appended to (created if absent).
    File(PathBuf),
}

impl Destination {
    /// `stdout`, `stderr` or a path (`-` is stdout).
    pub fn parse(text: &str) -> Destination {
        match text {
            "-" | "stdout" => Destination::Stdout,
            "stderr" => Destination::Stderr,
            path => Destination::File(PathBuf::from(path)),
        }
    }
}

/// Access-log settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessLogOptions {
    /// Where lines go.
    pub destination: Destination,
    /// Fraction of requests logged, in (0, 1]; default 1.
    pub sample: f64,
}

/// A shard flushes its buffer to the writer once it holds this much.
const FLUSH_AT: usize = 32 * 1024;

/// Buffers queued for the writer before shards start dropping lines.
const QUEUE: usize = 64;

/// Empty buffers made at start: enough for every shard to flush while the
/// writer is busy with earlier ones.
const SPARE_BUFFERS: usize = 8;

/// Longest host, path or kid written; longer values are cut (and marked).
const FIELD_LIMIT: usize = 512;

/// The writer thread, joined at shutdown once every shard has flushed.
#[derive(Debug)]
pub(crate) struct AccessLog {
    handle: JoinHandle<()>,
    dropped: Arc<AtomicU64>,
    reopen: Arc<AtomicBool>,
}

/// What each shard gets to log through (cloned per shard).
#[derive(Debug, Clone)]
pub(crate) struct LogSink {
    full: crossbeam_channel::Sender<(Vec<u8>, u64)>,
    empty: crossbeam_channel::Receiver<Vec<u8>>,
    dropped: Arc<AtomicU64>,
    /// A request is logged when a random u64 is below this (`u64::MAX`: always).
    threshold: u64,
}

impl AccessLog {
    /// Opens the destination and starts the writer thread.
    pub(crate) fn start(options: &AccessLogOptions) -> std::io::Result<(AccessLog, LogSink)> {
        let destination = options.destination.clone();
        let mut output = open(&destination)?;
        let reopen = Arc::new(AtomicBool::new(false));
        let writer_reopen = Arc::clone(&reopen);
        let (full, queued) = crossbeam_channel::bounded::<(Vec<u8>, u64)>(QUEUE);
        let (returned, empty) = crossbeam_channel::bounded(QUEUE * 2);
        // Buffers to swap in while the writer still holds the last ones, so
        // that a shard's flush finds one ready instead of allocating.
        for _ in 0..SPARE_BUFFERS {
            let _ = returned.try_send(Vec::with_capacity(FLUSH_AT * 2));
        }
        let dropped = Arc::new(AtomicU64::new(0));
        let writer_dropped = Arc::clone(&dropped);
        let handle = std::thread::Builder::new()
            .name("jwtgate-log".to_owned())
            .spawn(move || {
                let mut failing = false;
                for (mut buffer, lines) in queued {
                    if writer_reopen.swap(false, Ordering::AcqRel) {
                        match open(&destination) {
                            Ok(reopened) => output = reopened,
                            Err(error) => crate::diagnostics::warn(format_args!(
                                "access log: cannot reopen, still writing to the old file: {error}"
                            )),
                        }
                    }
                    match output.write_all(&buffer).and_then(|()| output.flush()) {
                        Ok(()) => failing = false,
                        Err(error) => {
                            writer_dropped.fetch_add(lines, Ordering::Relaxed);
                            if !failing {
                                crate::diagnostics::warn(format_args!(
                                    "access log: cannot write: {error}"
                                ));
                            }
                            failing = true;
                        }
                    }
                    buffer.clear();
                    let _ = returned.try_send(buffer);
                }
            })?;
        let threshold = if options.sample >= 1.0 {
            u64::MAX
        } else {
            (options.sample.max(0.0) * u64::MAX as f64) as u64
        };
        let sink = LogSink {
            full,
            empty,
            dropped: Arc::clone(&dropped),
            threshold,
        };
        Ok((
            AccessLog {
                handle,
                dropped,
                reopen,
            },
            sink,
        ))
    }

    /// Reopens a log file before the next write (after `logrotate` moved it).
    pub(crate) fn reopen(&self) {
        self.reopen.store(true, Ordering::Release);
    }

    /// A counter of dropped lines that outlives the writer.
    pub(crate) fn dropped_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.dropped)
    }

    /// Waits for the writer to write everything flushed so far; call once every
    /// [`LogSink`] (the shards' and this one's) is gone.
    pub(crate) fn finish(self) {
        let _ = self.handle.join();
    }
}

fn open(destination: &Destination) -> std::io::Result<Box<dyn std::io::Write + Send>> {
    Ok(match destination {
        Destination::Stdout => Box::new(std::io::stdout()),
        Destination::Stderr => Box::new(std::io::stderr()),
        Destination::File(path) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        ),
    })
}

/// One request's line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry<'a> {
    /// The shard that decided it.
    pub shard: usize,
    /// The face the check came in by (`http`, `grpc`).
    pub face: &'static str,
    /// The original request's method, host and path (the query is never written).
    pub method: &'a [u8],
    /// Host, as sent.
    pub host: &'a [u8],
    /// Path, as sent; cut at `?`.
    pub path: &'a [u8],
    /// Rule name (empty: none).
    pub rule: &'a str,
    /// Token configuration name (empty: none).
    pub token_config: &'a str,
    /// The outcome label.
    pub outcome: &'static str,
    /// The action label.
    pub action: &'static str,
    /// The HTTP status answered.
    pub status: u16,
    /// The token header's `kid`, as the raw contents of a validated JSON string.
    pub kid: Option<&'a str>,
    /// The verified token's `sub`, as the raw contents of a validated JSON string.
    pub sub: Option<&'a str>,
    /// From the start of the decision to the answer rendered.
    pub latency: Duration,
    /// Which check decided, in words (static text, never request bytes;
    /// empty: nothing failed).
    pub reason: &'static str,
}

/// A shard's end of the log: its buffer and sampler.
#[derive(Debug)]
pub(crate) struct ShardLog {
    sink: LogSink,
    buffer: Vec<u8>,
    lines: u64,
    random: u64,
}

impl ShardLog {
    /// A shard's log over `sink`.
    pub(crate) fn new(sink: LogSink, seed: u64) -> ShardLog {
        ShardLog {
            sink,
            buffer: Vec::with_capacity(FLUSH_AT * 2),
            lines: 0,
            // xorshift must not start at zero.
            random: seed | 1,
        }
    }

    /// Whether this request is to be logged (xorshift64*: cheap and good enough to sample).
    pub(crate) fn sampled(&mut self) -> bool {
        if self.sink.threshold == u64::MAX {
            return true;
        }
        let mut x = self.random;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.random = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d) < self.sink.threshold
    }

    /// Appends `entry`'s line; hands the buffer over once it is large.
    pub(crate) fn write(&mut self, entry: &Entry<'_>) {
        let out = &mut self.buffer;
        out.extend_from_slice(b"{\"time\":\"");
        write_time(out, SystemTime::now());
        let _ = write!(
            out,
            "\",\"shard\":{},\"face\":\"{}\",\"method\":",
            entry.shard, entry.face
        );
        quote_bytes(out, entry.method);
        out.extend_from_slice(b",\"host\":");
        quote_bytes(out, entry.host);
        out.extend_from_slice(b",\"path\":");
        let path = memchr::memchr(b'?', entry.path)
            .and_then(|query| entry.path.get(..query))
            .unwrap_or(entry.path);
        quote_bytes(out, path);
        out.extend_from_slice(b",\"rule\":");
        quote_bytes(out, entry.rule.as_bytes());
        out.extend_from_slice(b",\"token_config\":");
        quote_bytes(out, entry.token_config.as_bytes());
        let _ = write!(
            out,
            ",\"outcome\":\"{}\",\"action\":\"{}\",\"status\":{}",
            entry.outcome, entry.action, entry.status
        );
        for (name, value) in [("kid", entry.kid), ("sub", entry.sub)] {
            let _ = write!(out, ",\"{name}\":");
            match value {
                Some(raw) => raw_json_string(out, raw),
                None => out.extend_from_slice(b"null"),
            }
        }
        let _ = write!(
            out,
            ",\"latency_us\":{:.1},\"reason\":",
            entry.latency.as_nanos() as f64 / 1000.0
        );
        if entry.reason.is_empty() {
            out.extend_from_slice(b"null}\n");
        } else {
            quote_bytes(out, entry.reason.as_bytes());
            out.extend_from_slice(b"}\n");
        }
        self.lines += 1;
        if self.buffer.len() >= FLUSH_AT {
            self.flush();
        }
    }

    /// Hands what is buffered to the writer (or drops it, counted, if the
    /// writer is behind).
    pub(crate) fn flush(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        let full = std::mem::take(&mut self.buffer);
        let lines = std::mem::take(&mut self.lines);
        match self.sink.full.try_send((full, lines)) {
            Ok(()) => {
                self.buffer = self
                    .sink
                    .empty
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(FLUSH_AT * 2));
            }
            Err(error) => {
                self.sink.dropped.fetch_add(lines, Ordering::Relaxed);
                let (mut back, _) = error.into_inner();
                back.clear();
                self.buffer = back;
            }
        }
    }
}

impl Drop for ShardLog {
    fn drop(&mut self) {
        if !self.buffer.is_empty() {
            let lines = self.lines;
            let buffer = std::mem::take(&mut self.buffer);
            // At shutdown the writer is draining its queue: waiting briefly is fine.
            if self
                .sink
                .full
                .send_timeout((buffer, lines), Duration::from_secs(1))
                .is_err()
            {
                self.sink.dropped.fetch_add(lines, Ordering::Relaxed);
            }
        }
    }
}

/// Writes a validated JSON string's raw contents (escapes intact), cut to the
/// field limit at a character boundary that does not split an escape.
fn raw_json_string(out: &mut Vec<u8>, raw: &str) {
    out.push(b'"');
    if raw.len() <= FIELD_LIMIT {
        out.extend_from_slice(raw.as_bytes());
    } else {
        // Walk escape by escape (`\x` is two bytes, `\uXXXX` six) and
        // characters whole, so the cut never splits either.
        let bytes = raw.as_bytes();
        let mut end = 0;
        while let Some(&byte) = bytes.get(end) {
            let width = match byte {
                b'\\' if bytes.get(end + 1) == Some(&b'u') => 6,
                b'\\' => 2,
                _ => raw
                    .get(end..)
                    .and_then(|rest| rest.chars().next())
                    .map_or(1, char::len_utf8),
            };
            if end + width > FIELD_LIMIT {
                break;
            }
            end += width;
        }
        out.extend_from_slice(raw.get(..end).unwrap_or_default().as_bytes());
        out.extend_from_slice("…".as_bytes());
    }
    out.push(b'"');
}

/// Writes untrusted bytes as a JSON string: printable ASCII as is (quote and
/// backslash escaped), every other byte as `\u00XX`, cut at the field limit.
fn quote_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let cut = bytes.len() > FIELD_LIMIT;
    for &byte in bytes.iter().take(FIELD_LIMIT) {
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x20..=0x7e => out.push(byte),
            _ => {
                out.extend_from_slice(b"\\u00");
                for nibble in [byte >> 4, byte & 0xf] {
                    out.push(HEX.get(usize::from(nibble)).copied().unwrap_or(b'0'));
                }
            }
        }
    }
    if cut {
        out.extend_from_slice("…".as_bytes());
    }
    out.push(b'"');
}

/// `2026-11-28T21:40:00.123Z`.
fn write_time(out: &mut Vec<u8>, now: SystemTime) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = i64::try_from(since.as_secs()).unwrap_or(i64::MAX);
    let (year, month, day) = crate::time::civil_from_days(seconds.div_euclid(86_400));
    let second_of_day = seconds.rem_euclid(86_400);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60,
        since.subsec_millis()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_bytes_become_valid_json() {
        let mut out = Vec::new();
        quote_bytes(&mut out, b"/a\"b\\c\n\xff");
        assert_eq!(out, br#""/a\"b\\c\u000a\u00ff""#);
        let mut long = Vec::new();
        quote_bytes(&mut long, &[b'x'; 600]);
        assert_eq!(long.len(), 1 + FIELD_LIMIT + "…".len() + 1);
    }

    #[test]
    fn long_raw_strings_are_cut_outside_escapes() {
        let raw = format!("{}\\u0041tail", "a".repeat(FIELD_LIMIT - 3));
        let mut out = Vec::new();
        raw_json_string(&mut out, &raw);
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with(&format!("{}…\"", "a".repeat(10))), "{text}");
        assert!(!text.contains('\\'));
    }

    #[test]
    fn a_cut_never_splits_an_escaped_backslash() {
        for pad in FIELD_LIMIT - 8..FIELD_LIMIT {
            let raw = format!("{}\\\\\\\\é\\u00e9tail{}", "a".repeat(pad), "b".repeat(40));
            let mut out = Vec::new();
            raw_json_string(&mut out, &raw);
            let text = String::from_utf8(out).unwrap();
            let parsed: String =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("pad {pad}: {e}: {text}"));
            assert!(parsed.ends_with('…'), "{parsed}");
        }
    }

    #[test]
    fn times_have_milliseconds() {
        let mut out = Vec::new();
        write_time(
            &mut out,
            UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        );
        assert_eq!(out, b"2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn sampling_keeps_about_the_asked_fraction() {
        let (log, sink) = AccessLog::start(&AccessLogOptions {
            destination: Destination::Stderr,
            sample: 0.25,
        })
        .unwrap();
        let mut shard = ShardLog::new(sink, 42);
        let kept = (0..100_000).filter(|_| shard.sampled()).count();
        assert!((23_000..27_000).contains(&kept), "{kept}");
        drop(shard);
        log.finish();
    }
}
