//! The batch/stream face: `jwtgate verify`. Tokens in, one JSON line per token
//! out, in input order, at the speed of every core.
//!
//! ```text
//!  reader ──work──▶ worker 0 (pinned) ──done──▶ writer (caller's thread)
//!    ▲      ╲────▶ worker 1 (pinned) ──╱          │ writes in sequence order
//!    └───────────────── free batches ◀────────────┘
//! ```
//!
//! A fixed pool of batches circulates through three bounded crossbeam
//! channels. The reader takes a free batch, fills it with consecutive lines and
//! numbers it; a worker verifies every line and renders its result into the same
//! batch; the writer puts batches back in order and returns them to the pool.
//! Because at most `pool` batches exist, memory is bounded whatever the input
//! size, the writer's reorder window is bounded, and buffers are reused, so the
//! steady state allocates nothing. Nothing is lost, duplicated or reordered: every
//! line, blank or garbage, yields exactly one result.
//!
//! Neighbours: `lines` splits input, `render` formats results,
//! `crate::latency` keeps the per-worker histograms merged at the end.

mod lines;
mod render;

use std::io::{self, BufReader, Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded};

use crate::latency::LatencyHistogram;
use crate::{Outcome, Rejection, Scratch, UnixTime, Verifier};

use lines::{Batch, BatchLimits, LineKind, LineSplitter};

/// One input stream with the name used in messages and (with several inputs) output.
pub struct Input {
    /// File name, or `-` for standard input.
    pub name: String,
    /// The bytes (buffered by the verifier itself).
    pub reader: Box<dyn Read + Send>,
}

/// How to run a batch verification.
#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// Worker threads; 0 means one per available core.
    pub threads: usize,
    /// Judge every token at this time instead of the clock (read once per batch).
    pub now: Option<UnixTime>,
    /// Pin each worker to a core (core_affinity).
    pub pin_threads: bool,
    /// Lines per batch: large enough to amortise channel hand-offs.
    pub batch_lines: usize,
    /// A batch also closes once it holds this many bytes of tokens.
    pub batch_bytes: usize,
    /// How often the progress callback runs.
    pub progress_interval: Duration,
}

impl Default for BatchOptions {
    fn default() -> BatchOptions {
        BatchOptions {
            threads: 0,
            now: None,
            pin_threads: true,
            batch_lines: 512,
            batch_bytes: 1 << 20,
            progress_interval: Duration::from_millis(250),
        }
    }
}

/// Counts so far, handed to the progress callback.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Results written.
    pub done: u64,
    /// Per-outcome counts, indexed by [`Outcome::index`].
    pub counts: [u64; Outcome::COUNT],
    /// Time since the run started.
    pub elapsed: Duration,
}

impl Progress {
    /// The live progress line for a terminal: it returns the cursor to the
    /// line's start and clears it first, so each line replaces the last.
    pub fn line(&self) -> String {
        let seconds = self.elapsed.as_secs_f64().max(1e-9);
        let outcomes: Vec<String> = Outcome::ALL
            .iter()
            .filter_map(|outcome| {
                let count = self.counts.get(outcome.index()).copied().unwrap_or(0);
                (count > 0).then(|| format!("{} {count}", outcome.name()))
            })
            .collect();
        format!(
            "\r\x1b[2K{} tokens, {:.0}/s, {}",
            self.done,
            self.done as f64 / seconds,
            outcomes.join(", ")
        )
    }
}

/// The result of a completed run.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Per-outcome counts, indexed by [`Outcome::index`].
    pub counts: [u64; Outcome::COUNT],
    /// Results written.
    pub total: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Per-token verification latency, merged over workers.
    pub(crate) latency: LatencyHistogram,
    /// Worker threads used.
    pub threads: usize,
}

impl Summary {
    /// Were all tokens valid? (True for an empty input: nothing was refused.)
    pub fn all_valid(&self) -> bool {
        self.counts
            .iter()
            .enumerate()
            .all(|(index, &count)| index == Outcome::Valid.index() || count == 0)
    }

    /// How many tokens ended in `outcome`.
    pub fn count(&self, outcome: Outcome) -> u64 {
        self.counts.get(outcome.index()).copied().unwrap_or(0)
    }

    /// Tokens per second over the whole run.
    pub fn rate(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.total as f64 / seconds
        } else {
            0.0
        }
    }

    /// The verification latencies as an HdrHistogram percentile
    /// distribution (`.hgrm`), what `jwtgate verify --histogram` writes.
    pub fn latency_distribution(&self) -> String {
        self.latency.percentile_distribution()
    }

    /// The human summary printed to stderr at the end of `jwtgate verify`.
    pub fn render(&self) -> String {
        let outcomes: Vec<String> = Outcome::ALL
            .iter()
            .copied()
            .filter(|&outcome| self.count(outcome) > 0)
            .map(|outcome| format!("{} {}", outcome.name(), self.count(outcome)))
            .collect();
        let outcomes = if outcomes.is_empty() {
            "none".to_owned()
        } else {
            outcomes.join(", ")
        };
        format!(
            "jwtgate verify: {} tokens in {:.3} s ({:.0} tokens/s, {} threads)\n  outcomes: {outcomes}\n  verification latency: {}\n",
            self.total,
            self.elapsed.as_secs_f64(),
            self.rate(),
            self.threads,
            self.latency.summary_line()
        )
    }
}

/// Why a run stopped early. Results written before the error stay written.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// Reading an input failed.
    #[error("{name}: {source}")]
    Input {
        /// The input's name.
        name: String,
        /// The I/O error.
        source: io::Error,
    },
    /// Writing results failed.
    #[error("writing results: {0}")]
    Output(io::Error),
    /// A thread of the pipeline failed; results may be incomplete, so the run
    /// fails rather than report a partial count as a success.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

/// More worker threads than this are never started.
pub const MAX_THREADS: usize = 1024;

const TOO_LONG: Rejection = Rejection::new(
    Outcome::TokenTooLarge,
    "line is longer than the token limit",
);

/// The token configurations a run verifies with. With several, a token is
/// valid for the first that accepts it; a token none accepts gets the reason
/// of the one that got furthest with it ([`crate::Stage`]), the first listed
/// among equals, as `serve` reports a rule's; each line then names the
/// configuration (`"token_config"`).
pub struct Checks {
    configs: Vec<(Option<String>, Arc<Verifier>)>,
}

impl Checks {
    /// One verifier; lines name no configuration.
    pub fn one(verifier: Arc<Verifier>) -> Checks {
        Checks {
            configs: vec![(None, verifier)],
        }
    }

    /// Named token configurations, in precedence order; lines name the
    /// configuration when there are several.
    pub fn named(configs: Vec<(String, Arc<Verifier>)>) -> Checks {
        let several = configs.len() > 1;
        Checks {
            configs: configs
                .into_iter()
                .map(|(name, verifier)| (several.then_some(name), verifier))
                .collect(),
        }
    }

    /// The longest token any of them accepts.
    fn token_limit(&self) -> usize {
        self.configs
            .iter()
            .map(|(_, verifier)| verifier.validation().token_limit())
            .max()
            .unwrap_or(0)
    }

    fn scratch(&self) -> Scratch {
        Scratch::with_token_limit(self.token_limit())
    }

    /// Verifies `token` and renders its line into `out`; its outcome.
    fn verify_into(
        &self,
        out: &mut Vec<u8>,
        input: Option<&str>,
        line: u64,
        token: &[u8],
        now: UnixTime,
        scratch: &mut Scratch,
    ) -> Outcome {
        let mut furthest: Option<(Rejection, Option<&str>)> = None;
        for (name, verifier) in &self.configs {
            // Rendered here, while the verification borrows the scratch.
            match verifier.verify(token, now, scratch) {
                Ok(verified) => {
                    render::valid(out, input, line, name.as_deref(), &verified);
                    return Outcome::Valid;
                }
                Err(rejection) => {
                    if furthest.is_none_or(|(best, _)| rejection.stage() > best.stage()) {
                        furthest = Some((rejection, name.as_deref()));
                    }
                }
            }
        }
        let (rejection, name) = furthest.unwrap_or((NO_CONFIGURATION, None));
        render::rejected(out, input, line, name, rejection);
        rejection.outcome()
    }
}

const NO_CONFIGURATION: Rejection = Rejection::new(
    Outcome::KeysUnavailable,
    "no token configuration to verify with",
);

/// Verifies every line of an in-memory `body` (the network face, `POST
/// /v1/verify`) and appends one JSON line per input line to `out`, exactly as
/// [`run`] would print them for the same bytes: LF ends a line, a CR before it
/// is dropped, a last line without LF counts, and a line longer than the token
/// limit is `token_too_large` without being decoded.
///
/// `refused` stands in for every verification when the keys may not be used
/// (a fetched key set that is missing or stale). A token that verifies is
/// then checked against `revocations` (the token configuration's name, the
/// revocations in force, a lookup buffer), as `serve` checks a request's.
/// Returns whether a token named a `kid` the key set lacks.
pub(crate) fn verify_buffer(
    verifier: &Verifier,
    refused: Option<Rejection>,
    revocations: Option<(
        &str,
        &crate::revocation::Revocations,
        &mut crate::revocation::LookupScratch,
    )>,
    body: &[u8],
    now: UnixTime,
    scratch: &mut Scratch,
    out: &mut Vec<u8>,
) -> bool {
    let mut revocations = revocations;
    let mut unknown_kid = false;
    let max_line = verifier.validation().token_limit();
    let mut rest = body;
    let mut number = 0u64;
    while !rest.is_empty() {
        let (line, next) = match memchr::memchr(b'\n', rest) {
            Some(end) => (rest.get(..end).unwrap_or_default(), rest.get(end + 1..)),
            None => (rest, None),
        };
        rest = next.unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        number += 1;
        if line.len() > max_line {
            render::rejected(out, None, number, None, TOO_LONG);
            continue;
        }
        let verified = match refused {
            Some(rejection) => Err(rejection),
            None => verifier.verify(line, now, scratch),
        };
        let verified = verified.and_then(|verified| match revocations.as_mut() {
            Some((config, in_force, lookup)) => in_force
                .check(config, &verified, now, lookup)
                .map_or(Ok(verified), Err),
            None => Ok(verified),
        });
        match verified {
            Ok(verified) => render::valid(out, None, number, None, &verified),
            Err(rejection) => {
                unknown_kid |= rejection.outcome() == Outcome::UnknownKid;
                render::rejected(out, None, number, None, rejection);
            }
        }
    }
    unknown_kid
}

/// Verifies every line of `inputs` and writes one JSON line per token to `output`,
/// in input order. `progress` is called from the caller's thread every
/// `options.progress_interval` while the run lasts.
pub fn run(
    checks: &Checks,
    inputs: Vec<Input>,
    output: &mut dyn Write,
    options: &BatchOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Summary, BatchError> {
    let threads = if options.threads == 0 {
        std::thread::available_parallelism().map_or(1, usize::from)
    } else {
        options.threads.min(MAX_THREADS)
    };
    let pool = (threads * 4).max(4);
    let limits = BatchLimits {
        max_line: checks.token_limit(),
        lines: options.batch_lines.max(1),
        bytes: options.batch_bytes.max(1),
    };
    let names: Vec<String> = inputs.iter().map(|input| input.name.clone()).collect();
    let show_names = names.len() > 1;
    let cores = if options.pin_threads {
        core_affinity::get_core_ids().unwrap_or_default()
    } else {
        Vec::new()
    };
    let started = Instant::now();

    let (free_tx, free_rx) = bounded::<Batch>(pool);
    let (work_tx, work_rx) = bounded::<Batch>(pool);
    let (done_tx, done_rx) = bounded::<Batch>(pool);
    for _ in 0..pool {
        // The channel holds `pool` batches, so these sends cannot block or fail.
        let _ = free_tx.send(Batch::default());
    }

    std::thread::scope(|scope| {
        let reader = scope.spawn(move || read_inputs(inputs, limits, &free_rx, &work_tx));
        let workers: Vec<_> = (0..threads)
            .map(|index| {
                let work_rx = work_rx.clone();
                let done_tx = done_tx.clone();
                let core = cores.get(index % cores.len().max(1)).copied();
                let names = &names;
                scope.spawn(move || {
                    if let Some(core) = core {
                        core_affinity::set_for_current(core);
                    }
                    verify_batches(
                        checks,
                        &work_rx,
                        &done_tx,
                        options.now,
                        show_names.then_some(names),
                    )
                })
            })
            .collect();
        drop((work_rx, done_tx));

        let written = write_in_order(
            done_rx,
            free_tx,
            pool,
            output,
            started,
            options.progress_interval,
            progress,
        );

        let mut latency = LatencyHistogram::new();
        let mut workers_failed = false;
        for worker in workers {
            match worker.join() {
                Ok(histogram) => latency.merge(&histogram),
                Err(_) => workers_failed = true,
            }
        }
        let read = reader
            .join()
            .map_err(|_| BatchError::Internal("the input reader stopped unexpectedly"))?;
        let (counts, total) = written?;
        let lines_read = read.map_err(|(index, source)| BatchError::Input {
            name: names.get(index).cloned().unwrap_or_default(),
            source,
        })?;
        // Every line read must have been written: anything else is a lost result.
        if workers_failed || total != lines_read {
            return Err(BatchError::Internal(
                "a verification worker failed; results are incomplete",
            ));
        }
        Ok(Summary {
            counts,
            total,
            elapsed: started.elapsed(),
            latency,
            threads,
        })
    })
}

/// Reader thread: fills free batches with lines, numbers them, hands them on.
/// Returns how many lines it handed on, or the index of the input that failed
/// with its error.
fn read_inputs(
    inputs: Vec<Input>,
    limits: BatchLimits,
    free: &Receiver<Batch>,
    work: &Sender<Batch>,
) -> Result<u64, (usize, io::Error)> {
    let mut sequence = 0u64;
    let mut lines = 0u64;
    let mut current: Option<Batch> = None;
    let mut send = |mut batch: Batch, lines: &mut u64| {
        batch.sequence = sequence;
        sequence += 1;
        *lines += batch.lines.len() as u64;
        work.send(batch).is_ok()
    };
    for (index, input) in inputs.into_iter().enumerate() {
        let input_id = u32::try_from(index).unwrap_or(u32::MAX);
        let reader = BufReader::with_capacity(256 * 1024, input.reader);
        let mut splitter = LineSplitter::new(reader, input_id, limits);
        while !splitter.is_finished() {
            let mut batch = match current.take() {
                Some(batch) => batch,
                None => match free.recv() {
                    Ok(mut batch) => {
                        batch.clear();
                        batch
                    }
                    // The writer has stopped: nothing more can be delivered.
                    Err(_) => return Ok(lines),
                },
            };
            let filled = splitter.fill(&mut batch);
            let full = batch.lines.len() >= limits.lines || batch.data.len() >= limits.bytes;
            // A stream that has nothing more buffered may be a pipe waiting for its
            // writer: hand on what we have so results keep flowing.
            let stalled = !batch.lines.is_empty() && splitter.would_block();
            if full || stalled || filled.is_err() {
                if !send(batch, &mut lines) {
                    return Ok(lines);
                }
            } else {
                // The input ended mid-batch: keep filling from the next input.
                current = Some(batch);
            }
            filled.map_err(|error| (index, error))?;
        }
    }
    if let Some(batch) = current.filter(|batch| !batch.lines.is_empty()) {
        send(batch, &mut lines);
    }
    Ok(lines)
}

/// Worker thread: verifies and renders every line of each batch.
fn verify_batches(
    checks: &Checks,
    work: &Receiver<Batch>,
    done: &Sender<Batch>,
    fixed_now: Option<UnixTime>,
    names: Option<&Vec<String>>,
) -> LatencyHistogram {
    let mut scratch = checks.scratch();
    let mut latency = LatencyHistogram::new();
    let mut lines = Vec::new();
    while let Ok(mut batch) = work.recv() {
        let now = fixed_now.unwrap_or_else(UnixTime::now);
        // The engine does not panic on any input; should a bug make it, the batch is
        // marked failed so the writer stops the run instead of waiting for it forever.
        let verified = catch_unwind(AssertUnwindSafe(|| {
            verify_batch(
                checks,
                &mut batch,
                &mut lines,
                &mut scratch,
                &mut latency,
                now,
                names,
            );
        }));
        batch.failed = verified.is_err();
        if done.send(batch).is_err() || verified.is_err() {
            break;
        }
    }
    latency
}

fn verify_batch(
    checks: &Checks,
    batch: &mut Batch,
    lines: &mut Vec<lines::Line>,
    scratch: &mut Scratch,
    latency: &mut LatencyHistogram,
    now: UnixTime,
    names: Option<&Vec<String>>,
) {
    // Detach the line table so lines can be read while output is appended.
    std::mem::swap(lines, &mut batch.lines);
    for line in lines.iter() {
        let name = names
            .and_then(|names| names.get(line.input as usize))
            .map(String::as_str);
        let outcome = if line.kind == LineKind::TooLong {
            render::rejected(&mut batch.output, name, line.number, None, TOO_LONG);
            TOO_LONG.outcome()
        } else {
            let token = batch
                .data
                .get(line.start as usize..line.end as usize)
                .unwrap_or_default();
            let started = Instant::now();
            let outcome =
                checks.verify_into(&mut batch.output, name, line.number, token, now, scratch);
            latency.record(started.elapsed());
            outcome
        };
        if let Some(count) = batch.outcome_counts.get_mut(outcome.index()) {
            *count += 1;
        }
    }
    std::mem::swap(lines, &mut batch.lines);
}

type Written = Result<([u64; Outcome::COUNT], u64), BatchError>;

/// Writer (the caller's thread): restores input order with a window of `pool`
/// slots, writes, recycles batches, reports progress.
fn write_in_order(
    done: Receiver<Batch>,
    free: Sender<Batch>,
    pool: usize,
    output: &mut dyn Write,
    started: Instant,
    interval: Duration,
    progress: &mut dyn FnMut(&Progress),
) -> Written {
    let mut window: Vec<Option<Batch>> = (0..pool).map(|_| None).collect();
    let mut next = 0u64;
    let mut counts = [0u64; Outcome::COUNT];
    let mut total = 0u64;
    let mut last_report = Instant::now();
    let slot_of = |sequence: u64| (sequence % pool as u64) as usize;
    while let Ok(batch) = done.recv() {
        if batch.failed {
            return Err(BatchError::Internal(
                "a verification worker failed; results are incomplete",
            ));
        }
        let slot = slot_of(batch.sequence);
        if let Some(entry) = window.get_mut(slot) {
            *entry = Some(batch);
        }
        while let Some(batch) = window.get_mut(slot_of(next)).and_then(Option::take) {
            output
                .write_all(&batch.output)
                .map_err(BatchError::Output)?;
            for (sum, count) in counts.iter_mut().zip(batch.outcome_counts) {
                *sum += count;
            }
            total += batch.lines.len() as u64;
            next += 1;
            // The reader may have stopped; then the batch is simply dropped.
            let _ = free.send(batch);
        }
        if done.is_empty() {
            // Nothing else is ready: let results out now rather than when the
            // buffer fills, so a slow stream sees its answers as they come.
            output.flush().map_err(BatchError::Output)?;
        }
        if last_report.elapsed() >= interval {
            last_report = Instant::now();
            progress(&Progress {
                done: total,
                counts,
                elapsed: started.elapsed(),
            });
        }
    }
    output.flush().map_err(BatchError::Output)?;
    Ok((counts, total))
}
