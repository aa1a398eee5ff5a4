//! Collection: the control side asks every shard for what it counted, waits
//! (boundedly) for the answers, and merges them into running totals.
//!
//! A shard answers between two requests, so an answer normally takes
//! microseconds. A shard that does not answer within the wait (a stalled
//! core) is reported from what it sent before; its late answer stays in the
//! channel and is merged by the next collection, so nothing is lost or counted
//! twice. A shard sends one last delta, unasked, when it stops.
//!
//! What an answer costs the shard is constant and small: its latency
//! histograms (a few hundred KiB each) are handed over, not copied, and
//! replaced by a pair this side has emptied and sent back ([`Spares`]), so
//! copying and zeroing happen here, off the shard. And asks are at least
//! [`MIN_ASK_INTERVAL`] apart: an admin port scraped in a tight loop is
//! answered as fast as that allows, and cannot take more than that from
//! the shards.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::table::Table;
use super::{
    ACTIONS, CacheGauges, DECISIONS, Decision, Face, GRPC_ERRORS, PROTOCOL_STATUSES, Taken,
};
use crate::latency::LatencyHistogram;

/// What a shard's check service counted since the last collection.
#[derive(Debug)]
pub struct Counted {
    pub(super) tables: Vec<Table>,
    pub(super) request: LatencyHistogram,
    pub(super) verification: LatencyHistogram,
    pub(super) protocol_errors: [u64; PROTOCOL_STATUSES.len()],
    pub(super) grpc_errors: [u64; GRPC_ERRORS.len()],
    pub(super) cache: CacheGauges,
}

/// A shard's connection gauges at the time of its answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Connections {
    /// Open now.
    pub open: u64,
    /// Accepted since start.
    pub accepted: u64,
}

/// One shard's answer.
#[derive(Debug)]
pub(super) struct Delta {
    shard: usize,
    /// The ask this answers; `u64::MAX` for the last delta of a stopped shard.
    answers: u64,
    counted: Option<Counted>,
    connections: Connections,
}

#[derive(Debug, Default)]
struct Ask {
    wake: Notify,
    number: AtomicU64,
}

/// How long a collection waits for the shards' answers.
pub(crate) const COLLECT_WAIT: Duration = Duration::from_secs(1);

/// Least time between two asks: at most 20 collections a second reach the
/// shards, however fast the admin port is scraped.
pub(crate) const MIN_ASK_INTERVAL: Duration = Duration::from_millis(50);

/// An emptied pair of latency histograms (request, verification) for a
/// shard to record into next.
pub(crate) type Spares = (LatencyHistogram, LatencyHistogram);

/// A shard's end of the collection channel.
#[derive(Debug)]
pub(crate) struct ShardLink {
    shard: usize,
    ask: Arc<Ask>,
    deltas: crossbeam_channel::Sender<Delta>,
    /// Histograms this side emptied after merging an answer, for the next.
    spares: crossbeam_channel::Receiver<Spares>,
    /// Whether the last delta was sent; if the shard ends without sending it
    /// (a panic), dropping the link does, so that no collection waits for it.
    finished: std::cell::Cell<bool>,
}

impl Drop for ShardLink {
    fn drop(&mut self) {
        if !self.finished.get() {
            self.last(None, Connections::default());
        }
    }
}

impl ShardLink {
    /// Emptied histograms to record into after the next answer, if this
    /// side has sent some back.
    pub(crate) fn spares(&self) -> Option<Spares> {
        self.spares.try_recv().ok()
    }

    /// Waits for the next ask and returns its number.
    pub(crate) async fn asked(&self) -> u64 {
        self.ask.wake.notified().await;
        self.ask.number.load(Ordering::Acquire)
    }

    /// Hands over an answer to ask `number` (never blocks: the channel is unbounded).
    pub(crate) fn answer(&self, number: u64, counted: Option<Counted>, connections: Connections) {
        let _ = self.deltas.send(Delta {
            shard: self.shard,
            answers: number,
            counted,
            connections,
        });
    }

    /// Hands over the last delta of a stopping shard.
    pub(crate) fn last(&self, counted: Option<Counted>, connections: Connections) {
        self.finished.set(true);
        self.answer(u64::MAX, counted, connections);
    }
}

/// A counter's labels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct CounterKey {
    /// Rule name (empty: no rule matched).
    pub rule: Box<str>,
    /// Token configuration name (empty: none decided).
    pub token_config: Box<str>,
    /// The outcome label.
    pub decision: Decision,
    /// The action label.
    pub taken: Taken,
    /// The face label.
    pub face: Face,
}

/// Everything collected so far.
#[derive(Debug)]
pub(crate) struct Totals {
    /// Requests by labels, since start.
    pub counters: BTreeMap<CounterKey, u64>,
    /// Request latency, since start.
    pub request: LatencyHistogram,
    /// Verification latency, since start.
    pub verification: LatencyHistogram,
    /// Refused by the connection loop, by [`PROTOCOL_STATUSES`].
    pub protocol_errors: [u64; PROTOCOL_STATUSES.len()],
    /// gRPC calls answered with an error, by [`GRPC_ERRORS`].
    pub grpc_errors: [u64; GRPC_ERRORS.len()],
    /// Per shard, as last reported.
    pub connections: Vec<Connections>,
    /// Verified-token cache `[misses, hits]` by token configuration, since start.
    pub cache_lookups: BTreeMap<Box<str>, [u64; 2]>,
    /// Each shard's verified-token cache, as last reported.
    pub caches: Vec<CacheGauges>,
    /// Since [`Totals::take_recent`] was last called (the periodic summary).
    pub recent: Recent,
    answered: Vec<u64>,
    asks: u64,
    /// When the shards were last asked.
    asked_at: Option<Instant>,
}

/// The window of the periodic summary.
#[derive(Debug)]
pub(crate) struct Recent {
    /// When the window began.
    pub since: Instant,
    /// Requests by outcome and action.
    pub decisions: [[u64; ACTIONS]; DECISIONS],
    /// Request latency in the window.
    pub request: LatencyHistogram,
    /// Verification latency in the window.
    pub verification: LatencyHistogram,
}

impl Recent {
    fn new() -> Recent {
        Recent {
            since: Instant::now(),
            decisions: [[0; ACTIONS]; DECISIONS],
            request: LatencyHistogram::new(),
            verification: LatencyHistogram::new(),
        }
    }

    /// Requests in the window.
    pub(crate) fn requests(&self) -> u64 {
        self.decisions.iter().flatten().sum()
    }
}

impl Totals {
    /// Verified-token cache lookups `(misses, hits)` over every configuration.
    pub(crate) fn cache_totals(&self) -> (u64, u64) {
        self.cache_lookups
            .values()
            .fold((0, 0), |(misses, hits), &[m, h]| (misses + m, hits + h))
    }

    /// Requests by action, since start.
    pub(crate) fn by_action(&self, taken: Taken) -> u64 {
        self.counters
            .iter()
            .filter(|(key, _)| key.taken == taken)
            .map(|(_, count)| count)
            .sum()
    }

    /// Requests by outcome, since start.
    pub(crate) fn by_decision(&self, decision: Decision) -> u64 {
        self.counters
            .iter()
            .filter(|(key, _)| key.decision == decision)
            .map(|(_, count)| count)
            .sum()
    }

    /// The whole run since `since` as one window (for the summary at shutdown).
    pub(crate) fn since(&self, since: Instant) -> Recent {
        let mut whole = Recent {
            since,
            decisions: [[0; ACTIONS]; DECISIONS],
            request: self.request.clone(),
            verification: self.verification.clone(),
        };
        for (key, count) in &self.counters {
            if let Some(row) = whole.decisions.get_mut(key.decision.index())
                && let Some(cell) = row.get_mut(key.taken.index())
            {
                *cell += count;
            }
        }
        whole
    }

    /// Ends the summary window and starts the next.
    pub(crate) fn take_recent(&mut self) -> Recent {
        std::mem::replace(&mut self.recent, Recent::new())
    }

    /// Merges `delta`; returns its shard and histograms, to be emptied and
    /// sent back.
    fn merge(&mut self, delta: Delta) -> Option<(usize, Spares)> {
        if let Some(answered) = self.answered.get_mut(delta.shard) {
            *answered = (*answered).max(delta.answers);
        }
        if let Some(connections) = self.connections.get_mut(delta.shard) {
            *connections = delta.connections;
        }
        let counted = delta.counted?;
        if let Some(cache) = self.caches.get_mut(delta.shard) {
            *cache = counted.cache;
        }
        for table in &counted.tables {
            for (config, misses, hits) in table.lookups() {
                let counts = self.cache_lookups.entry(config.into()).or_insert([0; 2]);
                counts[0] += misses;
                counts[1] += hits;
            }
            for entry in table.entries() {
                let key = CounterKey {
                    rule: entry.rule.into(),
                    token_config: entry.token_config.into(),
                    decision: entry.decision,
                    taken: entry.taken,
                    face: entry.face,
                };
                *self.counters.entry(key).or_insert(0) += entry.count;
                if let Some(row) = self.recent.decisions.get_mut(entry.decision.index())
                    && let Some(count) = row.get_mut(entry.taken.index())
                {
                    *count += entry.count;
                }
            }
        }
        self.request.merge(&counted.request);
        self.verification.merge(&counted.verification);
        self.recent.request.merge(&counted.request);
        self.recent.verification.merge(&counted.verification);
        for (total, added) in self.protocol_errors.iter_mut().zip(counted.protocol_errors) {
            *total += added;
        }
        for (total, added) in self.grpc_errors.iter_mut().zip(counted.grpc_errors) {
            *total += added;
        }
        Some((delta.shard, (counted.request, counted.verification)))
    }
}

/// The control side: asks, waits, merges.
#[derive(Debug)]
pub(crate) struct Hub {
    asks: Vec<Arc<Ask>>,
    deltas: crossbeam_channel::Receiver<Delta>,
    /// Per shard: where its emptied histograms go back.
    spares: Vec<crossbeam_channel::Sender<Spares>>,
    totals: Mutex<Totals>,
}

impl Hub {
    /// A hub for `shards` shards, and the link each shard answers through.
    pub(crate) fn new(shards: usize) -> (Arc<Hub>, Vec<ShardLink>) {
        let (sender, deltas) = crossbeam_channel::unbounded();
        let asks: Vec<Arc<Ask>> = (0..shards).map(|_| Arc::new(Ask::default())).collect();
        // Bounded: a shard takes one pair per answer, so more never pile up.
        let (spares, returned): (Vec<_>, Vec<_>) =
            (0..shards).map(|_| crossbeam_channel::bounded(2)).unzip();
        let links = asks
            .iter()
            .zip(returned)
            .enumerate()
            .map(|(shard, (ask, spares))| ShardLink {
                shard,
                ask: Arc::clone(ask),
                deltas: sender.clone(),
                spares,
                finished: std::cell::Cell::new(false),
            })
            .collect();
        let totals = Totals {
            counters: BTreeMap::new(),
            request: LatencyHistogram::new(),
            verification: LatencyHistogram::new(),
            protocol_errors: [0; PROTOCOL_STATUSES.len()],
            grpc_errors: [0; GRPC_ERRORS.len()],
            connections: vec![Connections::default(); shards],
            cache_lookups: BTreeMap::new(),
            caches: vec![CacheGauges::default(); shards],
            recent: Recent::new(),
            answered: vec![0; shards],
            asks: 0,
            asked_at: None,
        };
        let hub = Hub {
            asks,
            deltas,
            spares,
            totals: Mutex::new(totals),
        };
        (Arc::new(hub), links)
    }

    /// Asks every shard for its counts and waits up to `wait` for all the
    /// answers; returns the totals, locked (concurrent collections take turns).
    pub(crate) fn collect(&self, wait: Duration) -> MutexGuard<'_, Totals> {
        let mut totals = self
            .totals
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Waiting (with the lock: concurrent scrapes queue behind it) keeps
        // every answer as fresh as the scrape, and the shards' share bounded.
        if let Some(asked_at) = totals.asked_at {
            let next = asked_at + MIN_ASK_INTERVAL;
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            }
        }
        totals.asked_at = Some(Instant::now());
        totals.asks += 1;
        let number = totals.asks;
        for ask in &self.asks {
            ask.number.store(number, Ordering::Release);
            ask.wake.notify_one();
        }
        let deadline = Instant::now() + wait;
        while totals.answered.iter().any(|&answered| answered < number) {
            match self.deltas.recv_deadline(deadline) {
                Ok(delta) => {
                    let merged = totals.merge(delta);
                    self.send_back(merged);
                }
                Err(_) => break,
            }
        }
        // Unasked deltas (a stopped shard's last) that arrived meanwhile.
        while let Ok(delta) = self.deltas.try_recv() {
            let merged = totals.merge(delta);
            self.send_back(merged);
        }
        totals
    }

    /// Empties a shard's merged histograms here and sends them back for it
    /// to record into next (if it has no pair waiting already).
    fn send_back(&self, merged: Option<(usize, Spares)>) {
        if let Some((shard, (mut request, mut verification))) = merged
            && let Some(sender) = self.spares.get(shard)
        {
            request.reset();
            verification.reset();
            let _ = sender.try_send((request, verification));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Outcome;
    use crate::metrics::{Place, ShardMetrics};

    #[test]
    fn answers_are_merged_by_name_and_late_ones_are_not_lost() {
        let policy = crate::test_support::policy_with_demo_keys(
            "default_action = \"deny\"\n[[token_config]]\nname = \"prod\"\n@JWKS@\n[[rule]]\nname = \"api\"\ntoken_configs = [\"prod\"]\n",
        );
        let (hub, links) = Hub::new(2);
        let mut shard = ShardMetrics::new(&policy);
        let place = Place {
            rule: Some(0),
            config: Some(0),
        };
        let valid = Decision::Token(Outcome::Valid);
        shard.count(&policy, Face::Http, place, valid, Taken::Allow);
        shard.record_request(Duration::from_micros(40));
        // Shard 0 answers ask 1 ahead of time; shard 1 stays silent.
        links[0].answer(
            1,
            Some(shard.take()),
            Connections {
                open: 3,
                accepted: 9,
            },
        );
        let totals = hub.collect(Duration::from_millis(20));
        assert_eq!(totals.by_decision(valid), 1);
        assert_eq!(totals.request.count(), 1);
        assert_eq!(
            totals.connections[0],
            Connections {
                open: 3,
                accepted: 9
            }
        );
        drop(totals);
        // Shard 1's late answer and shard 0's next count arrive before the next ask.
        shard.count(&policy, Face::Http, place, valid, Taken::Allow);
        links[1].answer(1, Some(shard.take()), Connections::default());
        links[0].last(None, Connections::default());
        links[1].last(None, Connections::default());
        let mut totals = hub.collect(Duration::from_secs(5));
        assert_eq!(totals.by_decision(valid), 2);
        assert_eq!(totals.by_action(Taken::Allow), 2);
        assert_eq!(totals.take_recent().requests(), 2);
        assert_eq!(totals.recent.requests(), 0);
    }

    #[test]
    fn histograms_are_handed_over_and_come_back_emptied_and_asks_are_spaced() {
        let policy = crate::test_support::policy_with_demo_keys(
            "default_action = \"deny\"\n[[token_config]]\nname = \"prod\"\n@JWKS@\n[[rule]]\nname = \"api\"\ntoken_configs = [\"prod\"]\n",
        );
        let (hub, links) = Hub::new(1);
        let link = &links[0];
        let mut shard = ShardMetrics::new(&policy);
        assert!(
            link.spares().is_none(),
            "nothing to give back before an answer"
        );
        shard.record_request(Duration::from_micros(40));
        link.answer(
            1,
            Some(shard.take_with(link.spares())),
            Connections::default(),
        );
        let first = {
            let totals = hub.collect(Duration::from_secs(5));
            assert_eq!(totals.request.count(), 1);
            totals.asked_at.unwrap()
        };
        // The merged pair came back, emptied; the shard records into it next.
        let spares = link.spares().expect("the merged histograms came back");
        assert_eq!((spares.0.count(), spares.1.count()), (0, 0));
        shard.record_request(Duration::from_micros(50));
        shard.record_request(Duration::from_micros(60));
        link.answer(
            2,
            Some(shard.take_with(Some(spares))),
            Connections::default(),
        );
        let totals = hub.collect(Duration::from_secs(5));
        assert_eq!(totals.request.count(), 3);
        // A second collection at once asked no sooner than the interval allows.
        assert!(totals.asked_at.unwrap() >= first + MIN_ASK_INTERVAL);
    }
}
