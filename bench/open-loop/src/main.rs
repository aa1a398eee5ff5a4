//! The open-loop load generator of scripts/bench-overload.sh: HTTP/1.1
//! check requests (`GET /` with `authorization: Bearer <token>`) started at
//! a fixed rate, whatever the server answers, the way traffic from many
//! independent clients arrives at a gate.
//!
//! ```text
//! jwtgate-open-loop --addr HOST:PORT --tokens FILE --rate PER_SECOND
//!                   [--seconds 10] [--connections 512] [--timeout 5]
//! ```
//!
//! Request `i` is due at `start + i / rate`. It is written on an idle
//! keep-alive connection, or on a new one while fewer than `--connections`
//! are open, or else waits for one to come free (as a proxy's upstream pool
//! does). Its latency runs from when it was due, not from when it was
//! written, so time spent waiting for a connection counts (no coordinated
//! omission). A request not answered within `--timeout` of being due counts
//! as a timeout and its connection is dropped. Each non-empty line of FILE is
//! a token, used in turn.
//!
//! Prints one JSON line: requests due and answered, answers per status,
//! errors and timeouts, the peak number of connections, latency quantiles of
//! every answer and of the 200s (milliseconds), and the 200s per second.
//! One thread (a current-thread tokio runtime), to be pinned to a CPU of its own.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

const USAGE: &str = "usage: jwtgate-open-loop --addr HOST:PORT --tokens FILE --rate PER_SECOND \
[--seconds 10] [--connections 512] [--timeout 5]";

/// Longest answer head read; jwtgate's are a few hundred bytes.
const MAX_HEAD: usize = 16 * 1024;

#[derive(Debug, Clone, Copy)]
struct Plan {
    addr: SocketAddr,
    rate: f64,
    duration: Duration,
    connections: usize,
    timeout: Duration,
}

fn parse<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|error| format!("{flag} {value}: {error}"))
}

fn seconds(flag: &str, value: &str) -> Result<Duration, String> {
    let seconds: f64 = parse(flag, value)?;
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|duration| !duration.is_zero())
        .ok_or_else(|| format!("{flag} must be a positive number of seconds"))
}

fn options(args: &[String]) -> Result<(Plan, String), String> {
    let (mut addr, mut tokens, mut rate) = (None, None, None);
    let mut duration = Duration::from_secs(10);
    let mut connections = 512;
    let mut timeout = Duration::from_secs(5);
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let value = rest
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--addr" => addr = Some(parse::<SocketAddr>(flag, value)?),
            "--tokens" => tokens = Some(value.clone()),
            "--rate" => {
                let per_second: f64 = parse(flag, value)?;
                if !(per_second.is_finite() && per_second >= 1.0) {
                    return Err(format!("{flag} must be at least 1 request per second"));
                }
                rate = Some(per_second);
            }
            "--seconds" => duration = seconds(flag, value)?,
            "--connections" => {
                connections = parse(flag, value)?;
                if connections == 0 {
                    return Err(format!("{flag} must be at least 1"));
                }
            }
            "--timeout" => timeout = seconds(flag, value)?,
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    let (Some(addr), Some(tokens), Some(rate)) = (addr, tokens, rate) else {
        return Err(format!("--addr, --tokens and --rate are required\n{USAGE}"));
    };
    let plan = Plan {
        addr,
        rate,
        duration,
        connections,
        timeout,
    };
    Ok((plan, tokens))
}

/// Keep-alive connections to the server, at most `max` open.
struct Pool {
    addr: SocketAddr,
    max: usize,
    idle: RefCell<Vec<TcpStream>>,
    open: Cell<usize>,
    peak: Cell<usize>,
    freed: Notify,
}

impl Pool {
    /// An idle connection, a new one, or the next one given back.
    async fn take(&self) -> std::io::Result<TcpStream> {
        loop {
            if let Some(stream) = self.idle.borrow_mut().pop() {
                return Ok(stream);
            }
            if self.open.get() < self.max {
                self.open.set(self.open.get() + 1);
                self.peak.set(self.peak.get().max(self.open.get()));
                let connected = TcpStream::connect(self.addr).await;
                return match connected.and_then(|stream| stream.set_nodelay(true).map(|()| stream))
                {
                    Ok(stream) => Ok(stream),
                    Err(error) => {
                        self.closed();
                        Err(error)
                    }
                };
            }
            self.freed.notified().await;
        }
    }

    fn give_back(&self, stream: TcpStream) {
        self.idle.borrow_mut().push(stream);
        self.freed.notify_one();
    }

    fn closed(&self) {
        self.open.set(self.open.get().saturating_sub(1));
        self.freed.notify_one();
    }
}

/// A connection taken from the pool: given back, or counted closed when
/// dropped (an error, a timeout, `connection: close`).
struct Lease<'p> {
    pool: &'p Pool,
    stream: Option<TcpStream>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if self.stream.take().is_some() {
            self.pool.closed();
        }
    }
}

/// What the run saw.
struct Tally {
    statuses: BTreeMap<u16, u64>,
    errors: u64,
    timeouts: u64,
    first_error: Option<String>,
    all: Histogram<u64>,
    ok: Histogram<u64>,
}

/// Requests started and not yet settled.
struct Outstanding {
    count: Cell<u64>,
    none: Notify,
}

impl Outstanding {
    fn started(&self) {
        self.count.set(self.count.get() + 1);
    }

    fn settled(&self) {
        self.count.set(self.count.get().saturating_sub(1));
        if self.count.get() == 0 {
            self.none.notify_one();
        }
    }

    async fn all_settled(&self) {
        while self.count.get() > 0 {
            self.none.notified().await;
        }
    }
}

/// Writes `request` and reads one answer: its status and whether the
/// connection stays open.
async fn exchange(stream: &mut TcpStream, request: &[u8]) -> Result<(u16, bool), String> {
    stream
        .write_all(request)
        .await
        .map_err(|error| format!("write: {error}"))?;
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let read = stream
            .read(&mut chunk)
            .await
            .map_err(|error| format!("read: {error}"))?;
        if read == 0 {
            return Err("the server closed the connection before answering".to_owned());
        }
        buffer.extend_from_slice(chunk.get(..read).unwrap_or_default());
        let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") else {
            if buffer.len() > MAX_HEAD {
                return Err("an answer head over 16 KiB".to_owned());
            }
            continue;
        };
        let head =
            String::from_utf8_lossy(buffer.get(..end).unwrap_or_default()).to_ascii_lowercase();
        let status: u16 = head
            .get(9..12)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| format!("not an HTTP answer: {:?}", head.lines().next()))?;
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .map_or(Ok(0), |value| value.trim().parse())
            .map_err(|_| "an unreadable content-length".to_owned())?;
        let keep = !head.contains("\r\nconnection: close");
        let mut have = buffer.len() - end - 4;
        while have < length {
            let read = stream
                .read(&mut chunk)
                .await
                .map_err(|error| format!("read: {error}"))?;
            if read == 0 {
                return Err("the server closed the connection mid-answer".to_owned());
            }
            have += read;
        }
        if have > length {
            return Err("bytes after the answer (nothing was pipelined)".to_owned());
        }
        return Ok((status, keep));
    }
}

async fn one(
    pool: Rc<Pool>,
    tally: Rc<RefCell<Tally>>,
    outstanding: Rc<Outstanding>,
    request: Rc<[u8]>,
    due: Instant,
    timeout: Duration,
) {
    let answered = tokio::time::timeout_at((due + timeout).into(), async {
        let stream = pool
            .take()
            .await
            .map_err(|error| format!("connect: {error}"))?;
        let mut lease = Lease {
            pool: &pool,
            stream: Some(stream),
        };
        let Some(stream) = lease.stream.as_mut() else {
            return Err("no connection".to_owned());
        };
        let (status, keep) = exchange(stream, &request).await?;
        if keep && let Some(stream) = lease.stream.take() {
            pool.give_back(stream);
        }
        Ok(status)
    })
    .await;
    let latency = u64::try_from(due.elapsed().as_micros()).unwrap_or(u64::MAX);
    let mut tally = tally.borrow_mut();
    match answered {
        Ok(Ok(status)) => {
            *tally.statuses.entry(status).or_default() += 1;
            tally.all.saturating_record(latency);
            if status == 200 {
                tally.ok.saturating_record(latency);
            }
        }
        Ok(Err(error)) => {
            tally.errors += 1;
            tally.first_error.get_or_insert(error);
        }
        Err(_) => tally.timeouts += 1,
    }
    outstanding.settled();
}

fn request(token: &str) -> Rc<[u8]> {
    format!("GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {token}\r\n\r\n")
        .into_bytes()
        .into()
}

fn millis(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    if histogram.is_empty() {
        return 0.0;
    }
    histogram.value_at_quantile(quantile) as f64 / 1000.0
}

async fn run(plan: Plan, requests: Vec<Rc<[u8]>>) -> Result<String, String> {
    let histogram =
        || Histogram::new_with_bounds(1, 120_000_000, 3).map_err(|error| error.to_string());
    let tally = Rc::new(RefCell::new(Tally {
        statuses: BTreeMap::new(),
        errors: 0,
        timeouts: 0,
        first_error: None,
        all: histogram()?,
        ok: histogram()?,
    }));
    let outstanding = Rc::new(Outstanding {
        count: Cell::new(0),
        none: Notify::new(),
    });
    let pool = Rc::new(Pool {
        addr: plan.addr,
        max: plan.connections,
        idle: RefCell::new(Vec::new()),
        open: Cell::new(0),
        peak: Cell::new(0),
        freed: Notify::new(),
    });
    let total = (plan.rate * plan.duration.as_secs_f64()).round() as u64;
    let period = Duration::from_secs_f64(1.0 / plan.rate);
    let start = Instant::now();
    for (index, request) in (0..total).zip(requests.iter().cycle()) {
        let due = start + period.mul_f64(index as f64);
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
        }
        outstanding.started();
        tokio::task::spawn_local(one(
            Rc::clone(&pool),
            Rc::clone(&tally),
            Rc::clone(&outstanding),
            Rc::clone(request),
            due,
            plan.timeout,
        ));
    }
    let behind = start.elapsed().as_secs_f64() - plan.duration.as_secs_f64();
    outstanding.all_settled().await;
    let tally = tally.borrow();
    let answered: u64 = tally.statuses.values().sum();
    let ok = tally.statuses.get(&200).copied().unwrap_or(0);
    let statuses = tally
        .statuses
        .iter()
        .map(|(status, count)| format!("\"{status}\":{count}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut line = format!(
        "{{\"rate\":{:.1},\"seconds\":{:.3},\"due\":{total},\"answered\":{answered},\"statuses\":{{{statuses}}},\
\"errors\":{},\"timeouts\":{},\"connections\":{},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"p999_ms\":{:.3},\
\"max_ms\":{:.3},\"ok_p50_ms\":{:.3},\"ok_p99_ms\":{:.3},\"ok_max_ms\":{:.3},\"ok_per_second\":{:.1},\
\"sender_behind_s\":{:.3}",
        plan.rate,
        plan.duration.as_secs_f64(),
        tally.errors,
        tally.timeouts,
        pool.peak.get(),
        millis(&tally.all, 0.5),
        millis(&tally.all, 0.99),
        millis(&tally.all, 0.999),
        millis(&tally.all, 1.0),
        millis(&tally.ok, 0.5),
        millis(&tally.ok, 0.99),
        millis(&tally.ok, 1.0),
        ok as f64 / plan.duration.as_secs_f64(),
        behind.max(0.0),
    );
    if let Some(error) = &tally.first_error {
        line.push_str(&format!(",\"first_error\":{:?}", error));
    }
    line.push('}');
    Ok(line)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = options(&args).and_then(|(plan, path)| {
        let text = std::fs::read_to_string(&path).map_err(|error| format!("{path}: {error}"))?;
        let requests: Vec<Rc<[u8]>> = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(request)
            .collect();
        if requests.is_empty() {
            return Err(format!("{path}: no tokens"));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| format!("runtime: {error}"))?;
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, run(plan, requests))
    });
    match outcome {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("jwtgate-open-loop: {error}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn flags_are_read_and_bad_ones_refused() {
        let args = |line: &str| line.split(' ').map(str::to_owned).collect::<Vec<_>>();
        let (plan, tokens) = options(&args(
            "--addr 127.0.0.1:1 --tokens t --rate 500 --seconds 2",
        ))
        .unwrap();
        assert_eq!(
            (plan.rate, plan.duration, tokens.as_str()),
            (500.0, Duration::from_secs(2), "t")
        );
        assert_eq!(plan.connections, 512);
        assert!(options(&args("--addr 127.0.0.1:1 --tokens t --rate 0")).is_err());
        assert!(
            options(&args(
                "--addr 127.0.0.1:1 --tokens t --rate 5 --connections 0"
            ))
            .is_err()
        );
        assert!(options(&args("--addr 127.0.0.1:1 --tokens t")).is_err());
        assert!(options(&args("--addr 127.0.0.1:1 --tokens t --rate 5 --bogus 1")).is_err());
    }
}
