//! A verified-token cache: what a [`Verifier`] established about a token
//! that is true at every instant (signature, header, typed claims, issuer,
//! audience and subject), kept so that the same token is not verified again
//! while the same key state is in force.
//!
//! What makes it safe by construction:
//!
//! - **What is cached is one token's verification under one verifier, never
//!   a decision.** An entry is found by a keyed hash of the token and then
//!   matched on the *whole* token bytes and the caller's *generation* (a
//!   number that names one verifier with one key state; the service gives
//!   every new key state a new one). A token is never matched by its hash
//!   alone, and one verifier's entry is never another's.
//! - **A hit is the same code as a fresh verification**: the header and the
//!   claims are typed again from the stored JSON and its tape, and
//!   [`Verifier`]'s own claim checks (required claims, `exp`, `nbf`, `iat`
//!   with the leeway, maximum lifetime, issuer, audience, subject) run on
//!   every hit with the caller's `now`. A cached token therefore stops
//!   passing at exactly the instant an uncached one would; nothing about
//!   time is stored.
//! - Only tokens that passed every check are stored. A refusal is never
//!   stored: repeated forgeries are verified (and refused) each time.
//! - An entry is not used once it is `max_age` old (or if the clock went back
//!   past its insertion), so a token stops passing soon after its key is
//!   gone even where no new key state is ever published.
//!
//! Bounds: a fixed number of entries in sets of [`TokenCache::WAYS`], CLOCK eviction
//! within a set; tokens longer than [`TokenCache::MAX_TOKEN_LEN`] or with
//! more than [`TokenCache::MAX_NODES`] JSON nodes are verified but not stored; the heap
//! the entries of a set hold is capped at [`TokenCache::BYTES_PER_ENTRY`]
//! per slot of the set, and a new entry takes the room of the set's least
//! recently used ones (so entries nobody asks for any more, cold or of a key
//! state no longer in force, never keep new ones out). A full set admits a
//! token only when it was verified a short while ago too, so tokens that
//! never come back cost a hash and a word, not a copy and an eviction. After the entries have
//! grown to the tokens they see, neither a hit nor a miss allocates. One
//! cache belongs to one thread: nothing is shared, nothing is locked.
//!
//! A hit is much faster than a miss, so a client holding a valid token could
//! tell whether that token was used on the same shard a moment ago. Refusals
//! are never stored, so this says nothing about tokens it cannot forge.

use std::cell::Cell;
use std::time::Duration;

use crate::jose::claims::Claims;
use crate::jose::header::Header;
use crate::jose::json::{Tape, Value};
use crate::jose::token::RawToken;
use crate::outcome::{Outcome, Rejection};
use crate::time::UnixTime;
use crate::verify::{Scratch, Verified, Verifier};

const LOST: Rejection = Rejection::new(
    Outcome::Malformed,
    "a verified token could not be read back (a bug: please report it)",
);

/// How a token was looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Found, and re-checked against the clock.
    Hit,
    /// Not found (or too old): verified afresh, and stored if valid (and,
    /// when its set is full, verified a short while ago too).
    Miss,
    /// Not looked up: the cache is off, the generation is 0, or the token
    /// is too long to store.
    Bypassed,
}

/// Sizes of a [`TokenCache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    /// Entries; 0 turns the cache off. Rounded up to a multiple of [`TokenCache::WAYS`].
    pub entries: usize,
    /// How long an entry may be used after it was stored.
    pub max_age: Duration,
}

impl CacheSettings {
    /// 4096 entries (16 MiB at most) used for at most 5 minutes.
    pub const DEFAULT: CacheSettings = CacheSettings {
        entries: 4096,
        max_age: Duration::from_secs(300),
    };
}

impl CacheSettings {
    /// Slots a cache of these settings has: the entries rounded up to whole sets.
    pub fn slots(&self) -> usize {
        let ways = self.entries.clamp(1, TokenCache::WAYS);
        self.entries.div_ceil(ways) * ways
    }

    /// The most heap its entries may hold: [`TokenCache::BYTES_PER_ENTRY`] per slot.
    pub fn max_heap_bytes(&self) -> usize {
        self.slots().saturating_mul(TokenCache::BYTES_PER_ENTRY)
    }

    /// The most memory a cache of these settings holds: its slots, allocated
    /// when it is made, and the heap of its entries.
    pub fn max_memory_bytes(&self) -> usize {
        self.max_heap_bytes()
            .saturating_add(self.slots().saturating_mul(TokenCache::SLOT_BYTES))
    }
}

impl Default for CacheSettings {
    fn default() -> CacheSettings {
        CacheSettings::DEFAULT
    }
}

/// A JSON text with the tape it was parsed into.
#[derive(Debug, Default)]
struct Parsed {
    text: String,
    tape: Tape,
}

impl Parsed {
    fn copy_from(&mut self, text: &[u8], tape: &Tape) -> Option<()> {
        self.text.clear();
        // Exact room, so that what an entry holds is what `growth` foretold.
        self.text.reserve_exact(text.len());
        self.text.push_str(std::str::from_utf8(text).ok()?);
        self.tape.copy_from(tape);
        Some(())
    }

    /// Heap bytes copying `text` and `tape` in would add.
    fn growth(&self, text: &[u8], tape: &Tape) -> usize {
        text.len().saturating_sub(self.text.capacity())
            + (tape.len() * Tape::NODE_BYTES).saturating_sub(self.tape.heap_bytes())
    }

    fn value(&self) -> Value<'_> {
        self.tape.view(&self.text)
    }

    fn heap_bytes(&self) -> usize {
        self.text.capacity() + self.tape.heap_bytes()
    }
}

#[derive(Debug, Default)]
struct Slot {
    occupied: bool,
    /// Used since the CLOCK hand last passed.
    referenced: bool,
    hash: u64,
    generation: u64,
    /// Unix seconds when stored.
    stored_at: i64,
    /// Index of the verifying key in the verifier's key set.
    key: usize,
    /// `exp`, for eviction only (every hit runs the verifier's time checks).
    expires: Option<f64>,
    /// Where the payload segment lies in `token`.
    payload_start: usize,
    payload_end: usize,
    token: Vec<u8>,
    header: Parsed,
    claims: Parsed,
    /// The caller's word ([`Verified::memo`]).
    memo: Cell<u64>,
}

impl Slot {
    fn heap_bytes(&self) -> usize {
        self.token.capacity() + self.header.heap_bytes() + self.claims.heap_bytes()
    }

    /// Heap bytes storing `token` with the verification in `scratch` would add.
    fn growth(&self, token: &[u8], scratch: &Scratch) -> usize {
        token.len().saturating_sub(self.token.capacity())
            + self.header.growth(&scratch.header, &scratch.header_tape)
            + self.claims.growth(&scratch.payload, &scratch.claims_tape)
    }

    fn holds(&self, hash: u64, generation: u64, token: &[u8]) -> bool {
        self.occupied && self.hash == hash && self.generation == generation && self.token == token
    }

    /// Worth a hit at `now`: stored less than `max_age` ago and not in the
    /// future (a clock stepped back is not trusted to measure age), and not
    /// past `exp` + `leeway` (the claim checks would refuse it; this only
    /// decides that the entry goes).
    fn usable(&self, now: i64, max_age: i64, leeway: i64) -> bool {
        now.checked_sub(self.stored_at)
            .is_some_and(|age| (0..max_age).contains(&age))
            && self
                .expires
                .is_none_or(|exp| (now as f64) < exp + leeway as f64)
    }

    /// Drops the entry; its buffers keep their room for the next one.
    fn clear(&mut self) {
        self.occupied = false;
        self.referenced = false;
        self.memo.set(0);
    }
}

/// A per-thread cache of verified tokens. See the module documentation.
#[derive(Debug)]
pub struct TokenCache {
    slots: Box<[Slot]>,
    /// The CLOCK hand of each set.
    hands: Box<[u8]>,
    ways: usize,
    hasher: ahash::RandomState,
    max_age: i64,
    /// What the entries of one set may hold on the heap, and what each set
    /// holds: a budget per set, so that room for a new entry can always be
    /// made within its own set.
    set_budget: usize,
    set_bytes: Box<[usize]>,
    /// The sum of `set_bytes`.
    held_bytes: usize,
    entries: usize,
    evictions: u64,
    hits: u64,
    /// Hashes of tokens recently verified but not stored: the admission
    /// filter of full sets, one word per slot.
    seen: Box<[u64]>,
}

impl TokenCache {
    /// Entries per set: a token can live in any of its set's slots.
    pub const WAYS: usize = 8;
    /// The most JSON nodes (header and claims together) of a stored token:
    /// real access tokens have tens; the bound keeps one entry's tape small.
    pub const MAX_NODES: usize = 512;
    /// Longest token stored, in bytes; longer ones are verified every time.
    pub const MAX_TOKEN_LEN: usize = 4096;
    /// Heap budget per slot, shared by the slots of a set: an 800-byte RS256
    /// access token takes about 2 KiB (the token, its decoded header and
    /// claims, their tapes).
    pub const BYTES_PER_ENTRY: usize = 4096;
    /// Memory of one slot without its entry's heap (and its word of the
    /// admission filter).
    pub const SLOT_BYTES: usize = std::mem::size_of::<Slot>() + std::mem::size_of::<u64>();

    /// A cache with these sizes; its slots are allocated here, their buffers
    /// as tokens are stored.
    pub fn new(settings: CacheSettings) -> TokenCache {
        let ways = settings.entries.min(TokenCache::WAYS);
        let slots = settings.slots();
        let sets = slots / ways.max(1);
        TokenCache {
            slots: std::iter::repeat_with(Slot::default).take(slots).collect(),
            hands: vec![0; sets].into_boxed_slice(),
            ways,
            hasher: ahash::RandomState::new(),
            max_age: i64::try_from(settings.max_age.as_secs()).unwrap_or(i64::MAX),
            set_budget: ways * TokenCache::BYTES_PER_ENTRY,
            set_bytes: vec![0; sets].into_boxed_slice(),
            held_bytes: 0,
            entries: 0,
            evictions: 0,
            hits: 0,
            seen: vec![0; slots].into_boxed_slice(),
        }
    }

    /// A cache that stores nothing.
    pub fn off() -> TokenCache {
        TokenCache::new(CacheSettings {
            entries: 0,
            max_age: Duration::ZERO,
        })
    }

    /// Whether it stores anything.
    pub fn is_on(&self) -> bool {
        !self.slots.is_empty()
    }

    /// Slots (the configured entries rounded up to a multiple of [`TokenCache::WAYS`]).
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Entries stored now (some may be of key states no longer in force,
    /// unreachable and waiting for eviction).
    pub fn len(&self) -> usize {
        self.entries
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Entries replaced to make room, since the cache was made.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Lookups answered from the cache, since the cache was made.
    pub fn hits(&self) -> u64 {
        self.hits
    }

    /// Heap bytes the entries hold.
    pub fn heap_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Memory the cache holds: its slots and the entries' heap.
    pub fn memory_bytes(&self) -> usize {
        self.held_bytes + self.slots.len() * TokenCache::SLOT_BYTES
    }

    /// Verifies `token` with `verifier` at `now`, through the cache.
    ///
    /// `generation` names `verifier` with its key state: a caller must pass a
    /// different number whenever the verifier, its keys or their availability
    /// change, and never pass one number for two verifiers (0 bypasses the
    /// cache). The answer is the one [`Verifier::verify`] gives, always.
    pub fn verify<'a>(
        &'a mut self,
        verifier: &'a Verifier,
        generation: u64,
        token: &'a [u8],
        now: UnixTime,
        scratch: &'a mut Scratch,
    ) -> (Result<Verified<'a>, Rejection>, Lookup) {
        if self.slots.is_empty() || generation == 0 || token.len() > TokenCache::MAX_TOKEN_LEN {
            return (verifier.verify(token, now, scratch), Lookup::Bypassed);
        }
        let hash = self.hasher.hash_one(token);
        let set = self.set_of(hash);
        let leeway = verifier.validation().leeway_seconds();
        let found = self.set_range(set).find(|&index| {
            self.slots
                .get(index)
                .is_some_and(|slot| slot.holds(hash, generation, token))
        });
        if let Some(index) = found {
            match self.slots.get_mut(index) {
                Some(slot) if slot.usable(now.0, self.max_age, leeway) => {
                    slot.referenced = true;
                    self.hits += 1;
                    return (self.hit(index, verifier, now), Lookup::Hit);
                }
                // Too old, or past `exp` + leeway: verified afresh below, so
                // that the answer is the uncached one.
                _ => self.remove(index),
            }
        }
        let key = match verifier.verify(token, now, scratch) {
            Ok(verified) => verifier
                .keys()
                .keys()
                .iter()
                .position(|key| std::ptr::eq(key, verified.key)),
            Err(rejection) => return (Err(rejection), Lookup::Miss),
        };
        // Always found: the verified key is one of the verifier's.
        let Some(key) = key else {
            return (Err(LOST), Lookup::Miss);
        };
        if found.is_none() && !self.has_room(set) && !self.seen_before(hash) {
            return (
                TokenCache::view_parts(verifier, key, token, scratch),
                Lookup::Miss,
            );
        }
        let index = found.unwrap_or_else(|| self.victim(set));
        if self.store(set, index, hash, generation, key, token, now, scratch) {
            (self.view(index, verifier), Lookup::Miss)
        } else {
            (
                TokenCache::view_parts(verifier, key, token, scratch),
                Lookup::Miss,
            )
        }
    }

    /// Whether [`TokenCache::verify`] of `token` at `now` would be a hit,
    /// changing nothing: an overloaded server answers what its cache holds
    /// and refuses to verify the rest.
    pub fn holds(&self, verifier: &Verifier, generation: u64, token: &[u8], now: UnixTime) -> bool {
        if self.slots.is_empty() || generation == 0 || token.len() > TokenCache::MAX_TOKEN_LEN {
            return false;
        }
        let hash = self.hasher.hash_one(token);
        let leeway = verifier.validation().leeway_seconds();
        self.set_range(self.set_of(hash)).any(|index| {
            self.slots.get(index).is_some_and(|slot| {
                slot.holds(hash, generation, token) && slot.usable(now.0, self.max_age, leeway)
            })
        })
    }

    /// Whether set `set` has a free slot.
    fn has_room(&self, set: usize) -> bool {
        self.set_range(set)
            .any(|index| self.slots.get(index).is_some_and(|slot| !slot.occupied))
    }

    /// Admission to a full set: whether this token was verified a short
    /// while ago too (within about as many verifications as the cache has
    /// slots); if not, it is remembered. A stream of tokens that never come
    /// back within the cache's reach (a crawl, a batch, a spray of new
    /// tokens) then costs a word per request instead of a copy of each and
    /// the eviction of entries that do come back. Not storing is always
    /// safe: the answer is the same either way.
    fn seen_before(&mut self, hash: u64) -> bool {
        let slots = self.seen.len() as u64;
        // The low half picks the word (the high half picks the set).
        let word = usize::try_from(((hash & 0xffff_ffff) * slots) >> 32).unwrap_or(0);
        match self.seen.get_mut(word) {
            Some(seen) if *seen == hash => true,
            Some(seen) => {
                *seen = hash;
                false
            }
            None => true,
        }
    }

    /// Range reduction of the hash's high half onto the sets.
    fn set_of(&self, hash: u64) -> usize {
        let sets = self.hands.len() as u64;
        // Both factors are below 2^32 and 2^64 / 2^32: the product fits.
        usize::try_from(((hash >> 32) * sets) >> 32).unwrap_or(0)
    }

    fn set_range(&self, set: usize) -> std::ops::Range<usize> {
        set * self.ways..(set + 1) * self.ways
    }

    /// A hit: the stored verification, checked against `now` by the same
    /// code as a fresh one.
    fn hit<'a>(
        &'a self,
        index: usize,
        verifier: &'a Verifier,
        now: UnixTime,
    ) -> Result<Verified<'a>, Rejection> {
        let verified = self.view(index, verifier)?;
        verifier.check_claims(&verified.claims, now)?;
        Ok(verified)
    }

    /// The stored verification of slot `index`, typed again from its JSON.
    fn view<'a>(&'a self, index: usize, verifier: &'a Verifier) -> Result<Verified<'a>, Rejection> {
        let slot = self.slots.get(index).ok_or(LOST)?;
        Ok(Verified {
            header: Header::parse(slot.header.value())?,
            claims: Claims::parse(slot.claims.value())?,
            key: verifier.keys().keys().get(slot.key).ok_or(LOST)?,
            payload_b64: slot
                .token
                .get(slot.payload_start..slot.payload_end)
                .ok_or(LOST)?,
            memo: Some(&slot.memo),
        })
    }

    /// The verification the scratch still holds, typed again (a token that
    /// passed but is not stored).
    fn view_parts<'a>(
        verifier: &'a Verifier,
        key: usize,
        token: &'a [u8],
        scratch: &'a Scratch,
    ) -> Result<Verified<'a>, Rejection> {
        let header = std::str::from_utf8(&scratch.header).map_err(|_| LOST)?;
        let claims = std::str::from_utf8(&scratch.payload).map_err(|_| LOST)?;
        Ok(Verified {
            header: Header::parse(scratch.header_tape.view(header))?,
            claims: Claims::parse(scratch.claims_tape.view(claims))?,
            key: verifier.keys().keys().get(key).ok_or(LOST)?,
            payload_b64: RawToken::split(token).map_err(|_| LOST)?.payload,
            memo: None,
        })
    }

    /// The slot of set `set` to store into: a free one (the one with the most
    /// room already, to allocate least), else the CLOCK victim.
    fn victim(&mut self, set: usize) -> usize {
        let free = self
            .set_range(set)
            .filter(|&index| self.slots.get(index).is_some_and(|slot| !slot.occupied))
            .max_by_key(|&index| self.slots.get(index).map_or(0, Slot::heap_bytes));
        free.or_else(|| self.clock(set, None))
            .unwrap_or(set * self.ways)
    }

    /// CLOCK over the entries of `set` other than `keep`: the first one not
    /// used since the hand last passed it (at most two turns: the first
    /// clears every reference bit).
    fn clock(&mut self, set: usize, keep: Option<usize>) -> Option<usize> {
        let base = set * self.ways;
        for _ in 0..2 * self.ways {
            let hand = self.hands.get_mut(set)?;
            let index = base + usize::from(*hand);
            *hand = u8::try_from((usize::from(*hand) + 1) % self.ways).unwrap_or(0);
            match self.slots.get_mut(index) {
                Some(slot) if !slot.occupied || Some(index) == keep => {}
                Some(slot) if slot.referenced => slot.referenced = false,
                Some(_) => return Some(index),
                None => return None,
            }
        }
        None
    }

    /// Gives back the heap of one slot of `set` other than `keep`: an empty
    /// slot's first, else the CLOCK victim's (evicting it). False when no
    /// other slot of the set holds anything.
    fn reclaim(&mut self, set: usize, keep: usize) -> bool {
        let empty = self.set_range(set).find(|&index| {
            index != keep
                && self
                    .slots
                    .get(index)
                    .is_some_and(|slot| !slot.occupied && slot.heap_bytes() > 0)
        });
        let Some(index) = empty.or_else(|| self.clock(set, Some(keep))) else {
            return false;
        };
        if self.slots.get(index).is_some_and(|slot| slot.occupied) {
            self.evictions += 1;
            self.remove(index);
        }
        let freed = self
            .slots
            .get_mut(index)
            .map_or(0, |slot| std::mem::take(slot).heap_bytes());
        self.account(set, freed, 0);
        freed > 0
    }

    /// Records that set `set` gave back `freed` heap bytes and took `taken`.
    fn account(&mut self, set: usize, freed: usize, taken: usize) {
        if let Some(bytes) = self.set_bytes.get_mut(set) {
            *bytes = *bytes + taken - freed;
        }
        self.held_bytes = self.held_bytes + taken - freed;
    }

    fn set_bytes(&self, set: usize) -> usize {
        self.set_bytes.get(set).copied().unwrap_or(0)
    }

    /// Copies the verification the scratch holds into slot `index` of set
    /// `set`, making room within the set's budget by giving back the heap
    /// of its other slots; false (nothing stored) when it is not storable.
    #[allow(clippy::too_many_arguments)] // the parts of one entry
    fn store(
        &mut self,
        set: usize,
        index: usize,
        hash: u64,
        generation: u64,
        key: usize,
        token: &[u8],
        now: UnixTime,
        scratch: &Scratch,
    ) -> bool {
        if scratch.header_tape.len() + scratch.claims_tape.len() > TokenCache::MAX_NODES {
            return false;
        }
        let Ok(raw) = RawToken::split(token) else {
            return false;
        };
        // Room is made before anything is copied, so that a cache at its
        // budget does not allocate and free per request; each turn gives
        // back one other slot's heap, so the loop ends within the set.
        loop {
            let growth = self
                .slots
                .get(index)
                .map_or(0, |slot| slot.growth(token, scratch));
            if self.set_bytes(set) + growth <= self.set_budget {
                break;
            }
            if !self.reclaim(set, index) {
                return false;
            }
        }
        let payload_start = raw.header.len() + 1;
        let payload_end = payload_start + raw.payload.len();
        let evicting = self
            .slots
            .get(index)
            .is_some_and(|slot| slot.occupied && !slot.holds(hash, generation, token));
        self.evictions += u64::from(evicting);
        self.remove(index);
        let Some(slot) = self.slots.get_mut(index) else {
            return false;
        };
        let before = slot.heap_bytes();
        slot.token.clear();
        slot.token.reserve_exact(token.len());
        slot.token.extend_from_slice(token);
        let copied = slot
            .header
            .copy_from(&scratch.header, &scratch.header_tape)
            .and_then(|()| {
                slot.claims
                    .copy_from(&scratch.payload, &scratch.claims_tape)
            });
        let after = slot.heap_bytes();
        if copied.is_none() {
            *slot = Slot::default();
            self.account(set, before, 0);
            return false;
        }
        self.account(set, before, after);
        let Some(slot) = self.slots.get_mut(index) else {
            return false;
        };
        *slot = Slot {
            occupied: true,
            referenced: false,
            hash,
            generation,
            stored_at: now.0,
            expires: None,
            key,
            payload_start,
            payload_end,
            token: std::mem::take(&mut slot.token),
            header: std::mem::take(&mut slot.header),
            claims: std::mem::take(&mut slot.claims),
            memo: Cell::new(0),
        };
        slot.expires = Claims::parse(slot.claims.value())
            .ok()
            .and_then(|claims| claims.exp)
            .map(|exp| exp.as_f64());
        self.entries += 1;
        true
    }

    fn remove(&mut self, index: usize) {
        if let Some(slot) = self.slots.get_mut(index)
            && slot.occupied
        {
            slot.clear();
            self.entries -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use ring::hmac;

    use super::*;
    use crate::jose::alg::{Algorithm, AlgorithmSet};
    use crate::jose::base64url;
    use crate::keys::KeySet;
    use crate::verify::Validation;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: i64 = 1_700_000_000;

    fn token(claims: &str) -> Vec<u8> {
        let mut token = base64url::encode(br#"{"alg":"HS256","kid":"k"}"#);
        token.push('.');
        base64url::encode_into(claims.as_bytes(), &mut token);
        let signature = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, SECRET), token.as_bytes());
        token.push('.');
        base64url::encode_into(signature.as_ref(), &mut token);
        token.into_bytes()
    }

    fn verifier(validation: impl FnOnce(Validation) -> Validation) -> Verifier {
        let keys = KeySet::from_hmac_secret(SECRET, Some("k"));
        let validation = validation(Validation::new(AlgorithmSet::only(Algorithm::Hs256)));
        match keys.map(|keys| Verifier::new(keys, validation)) {
            Ok(Ok(verifier)) => verifier,
            other => unreachable!("test verifier: {other:?}"),
        }
    }

    /// What a verification says, as comparable text: the outcome, or the
    /// identity and payload segment a decision reads.
    fn said(result: Result<Verified<'_>, Rejection>) -> String {
        match result {
            Ok(verified) => format!(
                "valid sub={:?} iss={:?} kid={:?} payload={}",
                verified.claims.sub.map(|s| s.to_string()),
                verified.claims.iss.map(|s| s.to_string()),
                verified.header.kid.map(|s| s.to_string()),
                String::from_utf8_lossy(verified.payload_b64),
            ),
            Err(rejection) => rejection.outcome().name().to_owned(),
        }
    }

    fn uncached(verifier: &Verifier, token: &[u8], now: i64) -> String {
        let mut scratch = verifier.scratch();
        said(verifier.verify(token, UnixTime(now), &mut scratch))
    }

    fn cached(
        cache: &mut TokenCache,
        verifier: &Verifier,
        generation: u64,
        token: &[u8],
        now: i64,
    ) -> (String, Lookup) {
        let mut scratch = verifier.scratch();
        let (result, lookup) =
            cache.verify(verifier, generation, token, UnixTime(now), &mut scratch);
        (said(result), lookup)
    }

    #[test]
    fn a_hit_says_what_a_fresh_verification_says() {
        let verifier = verifier(|v| v.issuer("https://idp"));
        let mut cache = TokenCache::new(CacheSettings::DEFAULT);
        let token = token(r#"{"iss":"https://idp","sub":"alice","exp":1700000600}"#);
        let first = cached(&mut cache, &verifier, 1, &token, NOW);
        let second = cached(&mut cache, &verifier, 1, &token, NOW);
        assert_eq!(first.1, Lookup::Miss);
        assert_eq!(second.1, Lookup::Hit);
        assert_eq!(first.0, uncached(&verifier, &token, NOW));
        assert_eq!(second.0, first.0);
        assert_eq!(cache.len(), 1);
    }

    /// The caller's word stays with the entry, and only with it: 0 when
    /// stored, kept across hits, gone when the slot holds another token or
    /// the same token under another generation; an uncached verification
    /// has none.
    #[test]
    fn a_memo_belongs_to_one_cached_verification() {
        let verifier = verifier(|v| v);
        let mut cache = TokenCache::new(CacheSettings {
            entries: TokenCache::WAYS,
            max_age: Duration::from_secs(60),
        });
        let memo = |cache: &mut TokenCache, generation: u64, token: &[u8], set: Option<u64>| {
            let mut scratch = verifier.scratch();
            let (result, _) =
                cache.verify(&verifier, generation, token, UnixTime(NOW), &mut scratch);
            let memo = result.ok().and_then(|verified| verified.memo);
            let before = memo.map(Cell::get);
            if let (Some(memo), Some(value)) = (memo, set) {
                memo.set(value);
            }
            before
        };
        let alice = token(r#"{"sub":"alice","exp":1700000600}"#);
        assert_eq!(memo(&mut cache, 1, &alice, Some(7)), Some(0));
        assert_eq!(memo(&mut cache, 1, &alice, None), Some(7));
        assert_eq!(
            memo(&mut cache, 2, &alice, None),
            Some(0),
            "another generation"
        );
        // Every slot of the one set taken by other tokens: alice's is reused.
        for n in 0..4 * TokenCache::WAYS {
            let other = token(&format!(r#"{{"sub":"u{n}","exp":1700000600}}"#));
            memo(&mut cache, 2, &other, Some(9));
            memo(&mut cache, 2, &other, Some(9));
        }
        assert_ne!(memo(&mut cache, 2, &alice, None), Some(7));
        let mut scratch = verifier.scratch();
        let uncached = verifier.verify(&alice, UnixTime(NOW), &mut scratch);
        assert!(uncached.is_ok_and(|verified| verified.memo.is_none()));
    }

    #[test]
    fn a_cached_token_stops_passing_at_the_second_an_uncached_one_does() {
        // exp 1700000600 with the default 60 s leeway: valid up to 1700000659.
        let verifier = verifier(|v| v);
        let mut cache = TokenCache::new(CacheSettings::DEFAULT);
        let token = token(r#"{"sub":"alice","exp":1700000600}"#);
        assert_eq!(
            cached(&mut cache, &verifier, 1, &token, NOW).1,
            Lookup::Miss
        );
        for now in 1_700_000_655..1_700_000_665 {
            let (answer, _) = cached(&mut cache, &verifier, 1, &token, now);
            assert_eq!(answer, uncached(&verifier, &token, now), "at {now}");
        }
        assert_eq!(
            uncached(&verifier, &token, 1_700_000_659).get(..5),
            Some("valid")
        );
        assert_eq!(uncached(&verifier, &token, 1_700_000_660), "expired");
        assert!(cache.is_empty(), "an expired entry leaves");
    }

    #[test]
    fn time_checks_run_on_every_hit_for_nbf_iat_and_lifetime() {
        let verifier = verifier(|v| v.max_lifetime(Duration::from_secs(3600)));
        let mut cache = TokenCache::new(CacheSettings::DEFAULT);
        // Stored while valid; the clock then steps back before nbf and iat.
        let token = token(r#"{"sub":"a","nbf":1700000000,"iat":1700000000,"exp":1700001000}"#);
        assert_eq!(
            cached(&mut cache, &verifier, 1, &token, NOW + 10).1,
            Lookup::Miss
        );
        for now in [
            NOW - 100,
            NOW - 61,
            NOW - 60,
            NOW,
            NOW + 10,
            NOW + 1059,
            NOW + 1060,
        ] {
            assert_eq!(
                cached(&mut cache, &verifier, 1, &token, now).0,
                uncached(&verifier, &token, now),
                "at {now}"
            );
        }
    }

    #[test]
    fn another_generation_or_another_token_never_shares_an_entry() {
        let verifier = verifier(|v| v);
        let mut cache = TokenCache::new(CacheSettings::DEFAULT);
        let token = token(r#"{"sub":"alice","exp":1700000600}"#);
        assert_eq!(
            cached(&mut cache, &verifier, 1, &token, NOW).1,
            Lookup::Miss
        );
        assert_eq!(
            cached(&mut cache, &verifier, 2, &token, NOW).1,
            Lookup::Miss
        );
        assert_eq!(cached(&mut cache, &verifier, 2, &token, NOW).1, Lookup::Hit);
        // A forgery differing in the last signature character is refused,
        // and never stored.
        let mut forged = token.clone();
        if let Some(last) = forged.last_mut() {
            *last = if *last == b'A' { b'B' } else { b'A' };
        }
        for _ in 0..2 {
            let (answer, lookup) = cached(&mut cache, &verifier, 2, &forged, NOW);
            assert_eq!((answer.as_str(), lookup), ("bad_signature", Lookup::Miss));
        }
        assert_eq!(cache.len(), 2);
        // Generation 0 and the cache off bypass it.
        assert_eq!(
            cached(&mut cache, &verifier, 0, &token, NOW).1,
            Lookup::Bypassed
        );
        let mut off = TokenCache::off();
        assert_eq!(
            cached(&mut off, &verifier, 1, &token, NOW).1,
            Lookup::Bypassed
        );
    }

    #[test]
    fn an_entry_is_used_for_max_age_and_not_after_the_clock_goes_back() {
        let verifier = verifier(|v| v);
        let mut cache = TokenCache::new(CacheSettings {
            entries: 16,
            max_age: Duration::from_secs(30),
        });
        let token = token(r#"{"sub":"alice","exp":1700009999}"#);
        let lookup = |cache: &mut TokenCache, now| cached(cache, &verifier, 1, &token, now).1;
        assert_eq!(lookup(&mut cache, NOW), Lookup::Miss);
        assert_eq!(lookup(&mut cache, NOW + 29), Lookup::Hit);
        assert_eq!(lookup(&mut cache, NOW + 30), Lookup::Miss);
        assert_eq!(lookup(&mut cache, NOW + 31), Lookup::Hit);
        assert_eq!(lookup(&mut cache, NOW + 29), Lookup::Miss);
        assert_eq!(cache.len(), 1, "refreshed in place");
    }

    #[test]
    fn a_full_cache_evicts_within_its_bounds() {
        let verifier = verifier(|v| v);
        let mut cache = TokenCache::new(CacheSettings {
            entries: 20,
            max_age: Duration::from_secs(300),
        });
        assert_eq!(cache.capacity(), 24, "rounded up to whole sets");
        let tokens: Vec<Vec<u8>> = (0..200)
            .map(|n| token(&format!(r#"{{"sub":"user{n}","exp":1700009999}}"#)))
            .collect();
        // Each sent twice in a row: a full set admits a token the second time.
        for token in tokens.iter().flat_map(|token| [token, token]) {
            let (answer, _) = cached(&mut cache, &verifier, 1, token, NOW);
            assert_eq!(answer, uncached(&verifier, token, NOW));
        }
        assert!(cache.len() <= cache.capacity());
        assert!(cache.evictions() >= 200 - 24, "{}", cache.evictions());
        assert!(cache.heap_bytes() <= cache.capacity() * TokenCache::BYTES_PER_ENTRY);
        // Recently used entries survive a pass of new ones in their set: the
        // last token stored is still there.
        let last = tokens.last().map_or(&[][..], Vec::as_slice);
        assert_eq!(cached(&mut cache, &verifier, 1, last, NOW).1, Lookup::Hit);
    }

    #[test]
    fn the_entries_never_hold_more_than_their_byte_budget() {
        let verifier = verifier(|v| v);
        let settings = CacheSettings {
            entries: TokenCache::WAYS,
            max_age: Duration::from_secs(300),
        };
        let mut cache = TokenCache::new(settings);
        // Each about 3 KiB long with 200 values: more than the 4 KiB an
        // entry gets on average, so the budget, not the slots, runs out.
        let big: Vec<Vec<u8>> = (0..3 * TokenCache::WAYS)
            .map(|n| {
                let values = (0..200).map(|v| (v * n).to_string()).collect::<Vec<_>>();
                token(&format!(
                    r#"{{"sub":"user{n}","exp":1700009999,"v":[{}],"pad":"{}"}}"#,
                    values.join(","),
                    "y".repeat(1200)
                ))
            })
            .collect();
        for token in big.iter().chain(&big) {
            let (answer, _) = cached(&mut cache, &verifier, 1, token, NOW);
            assert_eq!(answer, uncached(&verifier, token, NOW));
            assert!(cache.heap_bytes() <= settings.max_heap_bytes());
        }
        assert!(!cache.is_empty(), "some fit");
        assert!(cache.len() < TokenCache::WAYS, "not all: {}", cache.len());
    }

    /// Entries nobody asks for again (cold, or of a key state no longer in
    /// force) must not hold the budget against new ones.
    #[test]
    fn new_tokens_take_the_room_of_entries_nobody_asks_for() {
        let verifier = verifier(|v| v);
        let mut cache = TokenCache::new(CacheSettings {
            entries: TokenCache::WAYS,
            max_age: Duration::from_secs(300),
        });
        let big = |n: usize| {
            let values = (0..150).map(|v| (v * n).to_string()).collect::<Vec<_>>();
            token(&format!(
                r#"{{"sub":"user{n}","exp":1700009999,"v":[{}],"pad":"{}"}}"#,
                values.join(","),
                "y".repeat(900)
            ))
        };
        for n in 0..TokenCache::WAYS {
            cached(&mut cache, &verifier, 1, &big(n), NOW);
        }
        let held = cache.len();
        assert!(
            (3..TokenCache::WAYS).contains(&held),
            "budget-bound: {held}"
        );
        // A key refresh (generation 2) and three new tokens (fewer than the
        // budget holds), each sent five times: all but the first are hits.
        let mut hits = 0;
        for _ in 0..5 {
            for n in 100..103 {
                let (answer, lookup) = cached(&mut cache, &verifier, 2, &big(n), NOW);
                assert_eq!(answer, uncached(&verifier, &big(n), NOW));
                hits += usize::from(lookup == Lookup::Hit);
            }
        }
        assert_eq!(hits, 4 * 3, "the old entries kept the room");
        assert!(
            cache.heap_bytes()
                <= CacheSettings {
                    entries: TokenCache::WAYS,
                    ..CacheSettings::DEFAULT
                }
                .max_heap_bytes()
        );
    }

    #[test]
    fn a_full_set_admits_a_token_on_its_second_verification() {
        let verifier = verifier(|v| v);
        let mut cache = TokenCache::new(CacheSettings {
            entries: TokenCache::WAYS,
            max_age: Duration::from_secs(300),
        });
        let user = |n: usize| token(&format!(r#"{{"sub":"user{n}","exp":1700009999}}"#));
        for n in 0..TokenCache::WAYS {
            cached(&mut cache, &verifier, 1, &user(n), NOW);
        }
        // A stream of tokens that never come back pushes nothing out.
        for n in 100..300 {
            let (answer, lookup) = cached(&mut cache, &verifier, 1, &user(n), NOW);
            assert_eq!(
                (answer, lookup),
                (uncached(&verifier, &user(n), NOW), Lookup::Miss)
            );
        }
        assert_eq!(cache.evictions(), 0);
        for n in 0..TokenCache::WAYS {
            assert_eq!(
                cached(&mut cache, &verifier, 1, &user(n), NOW).1,
                Lookup::Hit
            );
        }
        // A token that comes back is stored the second time, and hits after.
        let lookups: Vec<Lookup> = (0..3)
            .map(|_| cached(&mut cache, &verifier, 1, &user(999), NOW).1)
            .collect();
        assert_eq!(lookups, [Lookup::Miss, Lookup::Miss, Lookup::Hit]);
        assert_eq!(cache.evictions(), 1);
    }

    #[test]
    fn holds_says_whether_the_next_verification_is_a_hit() {
        // exp 1700000600 with the default 60 s leeway: valid up to 1700000659.
        let verifier = verifier(|v| v);
        let mut cache = TokenCache::new(CacheSettings::DEFAULT);
        let other = token(r#"{"sub":"bob","exp":1700000600}"#);
        let token = token(r#"{"sub":"alice","exp":1700000600}"#);
        // Past max_age (5 min), before the entry was stored, past exp, and
        // each time the entry is stored again by the miss before.
        let times = [
            NOW,
            NOW,
            NOW + 299,
            NOW + 300,
            NOW + 300,
            NOW - 1,
            NOW + 300,
        ];
        let times = times
            .into_iter()
            .chain([1_700_000_659, 1_700_000_660, 1_700_000_659]);
        let mut hits = 0;
        for now in times {
            let holds = cache.holds(&verifier, 1, &token, UnixTime(now));
            // A look changes nothing: asked twice, the same answer.
            assert_eq!(holds, cache.holds(&verifier, 1, &token, UnixTime(now)));
            let (_, lookup) = cached(&mut cache, &verifier, 1, &token, now);
            assert_eq!(holds, lookup == Lookup::Hit, "at {now}");
            hits += usize::from(holds);
        }
        assert!(hits >= 3, "the sequence has hits to compare: {hits}");
        assert!(
            !cache.holds(&verifier, 2, &token, UnixTime(NOW)),
            "another generation"
        );
        assert!(
            !cache.holds(&verifier, 0, &token, UnixTime(NOW)),
            "generation 0 bypasses"
        );
        assert!(
            !cache.holds(&verifier, 1, &other, UnixTime(NOW)),
            "another token"
        );
        assert!(
            !TokenCache::new(CacheSettings {
                entries: 0,
                ..CacheSettings::DEFAULT
            })
            .holds(&verifier, 1, &token, UnixTime(NOW))
        );
    }

    #[test]
    fn any_clock_reading_is_answered_as_uncached() {
        let verifier = verifier(|v| v);
        let mut cache = TokenCache::new(CacheSettings::DEFAULT);
        let token = token(r#"{"sub":"alice"}"#);
        for now in [i64::MIN, -10, 0, NOW, i64::MAX, -10, i64::MAX, i64::MIN] {
            let (answer, _) = cached(&mut cache, &verifier, 1, &token, now);
            assert_eq!(answer, uncached(&verifier, &token, now), "at {now}");
        }
    }

    #[test]
    fn long_or_sprawling_tokens_are_verified_but_not_stored() {
        let verifier = verifier(|v| v);
        let mut cache = TokenCache::new(CacheSettings::DEFAULT);
        let long = token(&format!(
            r#"{{"sub":"alice","exp":1700009999,"pad":"{}"}}"#,
            "x".repeat(TokenCache::MAX_TOKEN_LEN)
        ));
        assert_eq!(
            cached(&mut cache, &verifier, 1, &long, NOW).1,
            Lookup::Bypassed
        );
        let many = (0..TokenCache::MAX_NODES)
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let sprawling = token(&format!(
            r#"{{"sub":"alice","exp":1700009999,"n":[{many}]}}"#
        ));
        assert!(sprawling.len() <= TokenCache::MAX_TOKEN_LEN);
        for _ in 0..2 {
            let (answer, lookup) = cached(&mut cache, &verifier, 1, &sprawling, NOW);
            assert_eq!(lookup, Lookup::Miss);
            assert_eq!(answer, uncached(&verifier, &sprawling, NOW));
        }
        assert!(cache.is_empty());
    }
}
