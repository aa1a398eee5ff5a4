//! The revocations in force, as a shard reads them after a token verifies:
//! at most three hash lookups (the token's `(iss, jti)`, its `(iss, sub)`,
//! its configuration's `kid`), each skipped while no revocation of its kind
//! exists, with no allocation and no lock.
//!
//! The set is immutable once published. A change makes a new set that
//! shares every bucket the change does not touch ([`RevocationSet::with`]):
//! the entries are spread over [`BUCKETS`] buckets by their hash, so a
//! revocation arriving while a million are in force copies one bucket's
//! pointers (a few thousand), not the million entries.
//!
//! An entry stops counting at its `expires` instant without being removed
//! (a lookup compares it with the request's clock), so a token is refused
//! exactly while its revocation is in force; [`RevocationSet::without_expired`]
//! drops the dead entries on the store's schedule.
//!
//! Neighbours: [`super::record`] (what a revocation is, and its text forms),
//! [`super::state`] (the set with the store's health, as published).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hashbrown::HashTable;
use jwtgate_engine::json::JsonStr;

use super::record::{Kind, Revocation};
use crate::{Claims, Outcome, Rejection, Stage, UnixTime};

/// How many buckets the entries are spread over.
pub const BUCKETS: usize = 256;

const TOKEN_REVOKED: Rejection = Rejection::new(
    Outcome::Revoked,
    "the token (its issuer and jti) is revoked",
)
.at(Stage::Revocation);
const SUBJECT_REVOKED: Rejection = Rejection::new(
    Outcome::Revoked,
    "the subject's tokens issued before a revocation are revoked",
)
.at(Stage::Revocation);
const KEY_REVOKED: Rejection = Rejection::new(
    Outcome::Revoked,
    "the key that signed the token (its kid) is revoked",
)
.at(Stage::Revocation);

type Bucket = HashTable<Arc<Revocation>>;

/// Scopes beyond this many distinct ones are not shared (each entry keeps
/// its own copy): the table of shared scopes is copied when a new scope
/// arrives, which must stay cheap.
const MAX_SHARED_SCOPES: usize = 4096;

/// Unescaped claim text, for claims whose JSON string has escapes (rare): a
/// shard keeps one and reuses it, so a lookup allocates only while these
/// buffers grow to the longest claim seen.
#[derive(Debug, Default)]
pub struct LookupScratch {
    scope: String,
    name: String,
}

/// A change to a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Put this revocation in force (merged with one of the same kind, scope
    /// and name).
    Add(Revocation),
    /// Lift the revocation of this kind, scope and name.
    Remove {
        /// Its kind.
        kind: Kind,
        /// Its issuer or token configuration.
        scope: Box<str>,
        /// Its jti, subject or kid.
        name: Box<str>,
    },
}

/// Every revocation in force; see the module documentation.
#[derive(Clone)]
pub struct RevocationSet {
    hasher: ahash::RandomState,
    buckets: Box<[Arc<Bucket>]>,
    /// Entries of each kind (expired ones included until dropped).
    counts: [usize; Kind::COUNT],
    /// No entry expires before this (a bound: an entry replaced or removed
    /// may have set it; [`RevocationSet::without_expired`] makes it exact).
    next_expiry: Option<UnixTime>,
    /// The issuers and configuration names the entries share: a million
    /// revocations of one issuer hold its name once.
    scopes: Arc<HashTable<Arc<str>>>,
    /// Names these contents: every set made is a new version (a copy for
    /// republishing keeps it), never 0.
    version: u64,
}

/// The version the next set made gets.
static NEXT_VERSION: AtomicU64 = AtomicU64::new(1);

fn new_version() -> u64 {
    NEXT_VERSION.fetch_add(1, Ordering::Relaxed)
}

impl std::fmt::Debug for RevocationSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationSet")
            .field("tokens", &self.count(Kind::Token))
            .field("subjects", &self.count(Kind::Subject))
            .field("keys", &self.count(Kind::Key))
            .finish()
    }
}

impl Default for RevocationSet {
    fn default() -> RevocationSet {
        RevocationSet::empty()
    }
}

impl RevocationSet {
    /// No revocations.
    pub fn empty() -> RevocationSet {
        RevocationSet {
            hasher: ahash::RandomState::new(),
            buckets: (0..BUCKETS).map(|_| Arc::new(Bucket::new())).collect(),
            counts: [0; Kind::COUNT],
            next_expiry: None,
            scopes: Arc::default(),
            version: new_version(),
        }
    }

    /// A set holding `revocations` (two of the same kind, scope and name
    /// merge: the later cut-off and the later end stand).
    pub fn from_revocations(revocations: impl IntoIterator<Item = Revocation>) -> RevocationSet {
        RevocationSet::empty().with(revocations.into_iter().map(Change::Add))
    }

    /// The set `revocations` (a whole store, read again) make, sharing with
    /// this set every entry that is unchanged; see [`Rebuild`].
    pub fn reread(&self, revocations: impl IntoIterator<Item = Revocation>) -> RevocationSet {
        let mut rebuild = self.rebuild();
        for revocation in revocations {
            rebuild.add(revocation);
        }
        rebuild.finish()
    }

    /// An empty set to fill with a whole store read again, sharing with this
    /// set every entry that is unchanged.
    pub fn rebuild(&self) -> Rebuild<'_> {
        Rebuild {
            previous: self,
            // Scopes start afresh, so that those of entries gone are
            // dropped: each entry added brings its own.
            next: RevocationSet {
                hasher: self.hasher.clone(),
                ..RevocationSet::empty()
            },
        }
    }

    /// Entries in the set, of every kind.
    pub fn len(&self) -> usize {
        self.counts.iter().sum()
    }

    /// Whether the set holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries of `kind`.
    pub fn count(&self, kind: Kind) -> usize {
        self.counts.get(kind.index()).copied().unwrap_or(0)
    }

    /// What names these contents (see [`Verified::memo`](crate::Verified)):
    /// any change makes a set of another version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// No entry expires before this instant; `None` for an empty set. The
    /// store's follower drops expired entries once it has passed.
    pub fn next_expiry(&self) -> Option<UnixTime> {
        self.next_expiry
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Revocation> + '_ {
        self.buckets
            .iter()
            .flat_map(|bucket| bucket.iter().map(|entry| &**entry))
    }

    /// This set with `changes` applied, in order. Buckets no change touches
    /// are shared with this set.
    pub fn with(&self, changes: impl IntoIterator<Item = Change>) -> RevocationSet {
        let mut next = self.clone();
        next.version = new_version();
        for change in changes {
            match change {
                Change::Add(revocation) => next.insert(revocation),
                Change::Remove { kind, scope, name } => next.remove(kind, &scope, &name),
            }
        }
        next
    }

    /// This set without the entries whose `expires` is not after `now`.
    pub fn without_expired(&self, now: UnixTime) -> RevocationSet {
        let mut next = self.clone();
        next.version = new_version();
        for (index, bucket) in self.buckets.iter().enumerate() {
            let expired = bucket.iter().filter(|entry| entry.expires <= now).count();
            if expired == 0 {
                continue;
            }
            let Some(slot) = next.buckets.get_mut(index) else {
                continue;
            };
            let table = Arc::make_mut(slot);
            for entry in bucket.iter().filter(|entry| entry.expires <= now) {
                if let Some(count) = next.counts.get_mut(entry.kind.index()) {
                    *count -= 1;
                }
            }
            table.retain(|entry| entry.expires > now);
        }
        next.next_expiry = next.iter().map(|entry| entry.expires).min();
        // The scopes of the entries that remain, and no others.
        let mut scopes = HashTable::new();
        for entry in next.iter() {
            let hash = next.hasher.hash_one(&*entry.scope);
            if scopes.len() < MAX_SHARED_SCOPES
                && scopes
                    .find(hash, |shared: &Arc<str>| **shared == *entry.scope)
                    .is_none()
            {
                scopes.insert_unique(hash, Arc::clone(&entry.scope), |shared| {
                    next.hasher.hash_one(&**shared)
                });
            }
        }
        next.scopes = Arc::new(scopes);
        next
    }

    /// Why a token that verified under the configuration `config` is refused
    /// at `now`, if a revocation in force covers it: its `(iss, jti)`, its
    /// subject's tokens issued before a cut-off (a token without `iat` is
    /// taken as issued before any), or the `kid` of the key that verified
    /// its signature, under `config` (the key's, not the header's: a token
    /// signed with a revoked key and no `kid` in its header is still the
    /// key's).
    pub fn check(
        &self,
        config: &str,
        claims: &Claims<'_>,
        kid: Option<&str>,
        now: UnixTime,
        scratch: &mut LookupScratch,
    ) -> Option<Rejection> {
        if self.counts == [0; Kind::COUNT] {
            return None;
        }
        if self.count(Kind::Token) > 0
            && let (Some(issuer), Some(jti)) = (claims.iss, claims.jti)
        {
            let issuer = text(issuer, &mut scratch.scope);
            let jti = text(jti, &mut scratch.name);
            if self.find(Kind::Token, issuer, jti, now).is_some() {
                return Some(TOKEN_REVOKED);
            }
        }
        if self.count(Kind::Subject) > 0
            && let (Some(issuer), Some(subject)) = (claims.iss, claims.sub)
        {
            let issuer = text(issuer, &mut scratch.scope);
            let subject = text(subject, &mut scratch.name);
            if let Some(entry) = self.find(Kind::Subject, issuer, subject, now) {
                let before = entry.before.map_or(i64::MAX, |before| before.0);
                // `before` is whole seconds; a fractional iat just under it
                // is before it.
                let issued_before = claims.iat.is_none_or(|iat| iat.as_f64() < before as f64);
                if issued_before {
                    return Some(SUBJECT_REVOKED);
                }
            }
        }
        if self.count(Kind::Key) > 0
            && let Some(kid) = kid
            && self.find(Kind::Key, config, kid, now).is_some()
        {
            return Some(KEY_REVOKED);
        }
        None
    }

    /// The entry in force at `now` for this kind, scope and name.
    pub fn find(&self, kind: Kind, scope: &str, name: &str, now: UnixTime) -> Option<&Revocation> {
        let hash = self.hash(kind, scope, name);
        self.bucket(hash)?
            .find(hash, |entry| entry.matches(kind, scope, name))
            .map(|entry| &**entry)
            .filter(|entry| entry.expires > now)
    }

    fn hash(&self, kind: Kind, scope: &str, name: &str) -> u64 {
        self.hasher.hash_one((kind.index(), scope, name))
    }

    fn bucket_index(hash: u64) -> usize {
        // Bits 48..56: hashbrown takes its slot from the low bits and its
        // one-byte tag from the top seven, which must still tell a bucket's
        // entries apart.
        usize::from((hash >> 48) as u8) % BUCKETS
    }

    fn bucket(&self, hash: u64) -> Option<&Bucket> {
        self.buckets
            .get(RevocationSet::bucket_index(hash))
            .map(|bucket| &**bucket)
    }

    fn insert(&mut self, mut revocation: Revocation) {
        revocation.scope = self.shared_scope(revocation.scope);
        let hash = self.hash(revocation.kind, &revocation.scope, &revocation.name);
        self.insert_entry(hash, Arc::new(revocation));
    }

    /// The set's copy of `scope`, if it shares one (adding it if there is
    /// room).
    fn shared_scope(&mut self, scope: Arc<str>) -> Arc<str> {
        let hash = self.hasher.hash_one(&*scope);
        if let Some(shared) = self.scopes.find(hash, |shared| **shared == *scope) {
            return Arc::clone(shared);
        }
        self.add_scope(hash, &scope);
        scope
    }

    /// Shares `scope` (an entry's own) from now on, if it is not yet and
    /// there is room.
    fn keep_scope(&mut self, scope: &Arc<str>) {
        let hash = self.hasher.hash_one(&**scope);
        if self
            .scopes
            .find(hash, |shared| **shared == **scope)
            .is_none()
        {
            self.add_scope(hash, scope);
        }
    }

    fn add_scope(&mut self, hash: u64, scope: &Arc<str>) {
        if self.scopes.len() < MAX_SHARED_SCOPES {
            let hasher = &self.hasher;
            Arc::make_mut(&mut self.scopes)
                .insert_unique(hash, Arc::clone(scope), |shared| hasher.hash_one(&**shared));
        }
    }

    fn insert_entry(&mut self, hash: u64, revocation: Arc<Revocation>) {
        let hasher = &self.hasher;
        let Some(slot) = self.buckets.get_mut(RevocationSet::bucket_index(hash)) else {
            return;
        };
        let table = Arc::make_mut(slot);
        let rehash = |entry: &Arc<Revocation>| {
            hasher.hash_one((entry.kind.index(), &*entry.scope, &*entry.name))
        };
        let kind = revocation.kind;
        self.next_expiry = Some(
            self.next_expiry
                .map_or(revocation.expires, |next| next.min(revocation.expires)),
        );
        match table.entry(
            hash,
            |entry| entry.matches(kind, &revocation.scope, &revocation.name),
            rehash,
        ) {
            // Two revocations of one token, subject or key: the stronger
            // of each (the later cut-off, the later end) stands, so that
            // no revocation, from an operator or from anyone who can write
            // to the store, can weaken one in force. Lifting one means
            // taking it out of the store.
            hashbrown::hash_table::Entry::Occupied(mut occupied) => {
                let existing = occupied.get_mut();
                if **existing != *revocation {
                    let mut merged = Revocation::clone(existing);
                    merged.before = merged.before.max(revocation.before);
                    merged.expires = merged.expires.max(revocation.expires);
                    *existing = Arc::new(merged);
                }
            }
            hashbrown::hash_table::Entry::Vacant(vacant) => {
                vacant.insert(revocation);
                if let Some(count) = self.counts.get_mut(kind.index()) {
                    *count += 1;
                }
            }
        }
    }

    fn remove(&mut self, kind: Kind, scope: &str, name: &str) {
        let hash = self.hash(kind, scope, name);
        let Some(slot) = self.buckets.get_mut(RevocationSet::bucket_index(hash)) else {
            return;
        };
        if slot
            .find(hash, |entry| entry.matches(kind, scope, name))
            .is_none()
        {
            return;
        }
        let table = Arc::make_mut(slot);
        if let Ok(found) = table.find_entry(hash, |entry| entry.matches(kind, scope, name)) {
            found.remove();
            if let Some(count) = self.counts.get_mut(kind.index()) {
                *count -= 1;
            }
        }
    }
}

/// A set being filled with a whole store read again: an entry equal to one
/// of the previous set is that entry, shared, so that memory grows by the
/// new tables and the changed entries while the store is read, not by a
/// second copy of it (a resync of a million entries).
#[derive(Debug)]
pub struct Rebuild<'a> {
    previous: &'a RevocationSet,
    next: RevocationSet,
}

impl Rebuild<'_> {
    /// Adds `revocation` (merged with one of the same kind, scope and name:
    /// the later cut-off and the later end stand).
    pub fn add(&mut self, revocation: Revocation) {
        // The same hasher: a hash in one set is the hash in the other.
        let hash = self
            .previous
            .hash(revocation.kind, &revocation.scope, &revocation.name);
        match self
            .previous
            .bucket(hash)
            .and_then(|bucket| bucket.find(hash, |entry| **entry == revocation))
        {
            Some(unchanged) => {
                self.next.keep_scope(&unchanged.scope);
                self.next.insert_entry(hash, Arc::clone(unchanged));
            }
            None => self.next.insert(revocation),
        }
    }

    /// The set read.
    pub fn finish(self) -> RevocationSet {
        self.next
    }
}

/// The unescaped text of a claim: borrowed from the token when it has no
/// escapes, else written into `buffer`.
fn text<'a>(value: JsonStr<'a>, buffer: &'a mut String) -> &'a str {
    match value.as_plain() {
        Some(plain) => plain,
        None => {
            buffer.clear();
            buffer.extend(value.chars());
            buffer
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;
    use jwtgate_engine::internals::json::Tape;
    use proptest::prelude::*;

    fn token(issuer: &str, jti: &str, expires: i64) -> Revocation {
        Revocation {
            kind: Kind::Token,
            scope: issuer.into(),
            name: jti.into(),
            before: None,
            expires: UnixTime(expires),
        }
    }

    fn subject(issuer: &str, sub: &str, before: i64, expires: i64) -> Revocation {
        Revocation {
            kind: Kind::Subject,
            scope: issuer.into(),
            name: sub.into(),
            before: Some(UnixTime(before)),
            expires: UnixTime(expires),
        }
    }

    fn key(config: &str, kid: &str, expires: i64) -> Revocation {
        Revocation {
            kind: Kind::Key,
            scope: config.into(),
            name: kid.into(),
            before: None,
            expires: UnixTime(expires),
        }
    }

    /// What `set` says of a token with these claims, verified by a key with
    /// this kid, under `config`.
    fn verdict(
        set: &RevocationSet,
        config: &str,
        claims: &str,
        kid: Option<&str>,
        now: i64,
    ) -> Option<Rejection> {
        let mut tape = Tape::new();
        let value = tape.parse(claims.as_bytes(), 8).unwrap();
        let claims = Claims::parse(value).unwrap();
        set.check(
            config,
            &claims,
            kid,
            UnixTime(now),
            &mut LookupScratch::default(),
        )
    }

    #[test]
    fn each_kind_revokes_what_it_names_and_nothing_else() {
        let set = RevocationSet::from_revocations([
            token("https://idp/", "t-1", 1_000),
            subject("https://idp/", "alice", 500, 1_000),
            key("users", "k-old", 1_000),
        ]);
        let revoked = |claims: &str, kid, config| verdict(&set, config, claims, kid, 100);
        assert_eq!(
            revoked(r#"{"iss":"https://idp/","jti":"t-1"}"#, None, "users"),
            Some(TOKEN_REVOKED)
        );
        // Another issuer's jti of the same text is another token.
        assert_eq!(
            revoked(r#"{"iss":"https://other/","jti":"t-1"}"#, None, "users"),
            None
        );
        // A subject's tokens issued before the cut-off, and one without iat.
        assert_eq!(
            revoked(
                r#"{"iss":"https://idp/","sub":"alice","iat":499}"#,
                None,
                "users"
            ),
            Some(SUBJECT_REVOKED)
        );
        assert_eq!(
            revoked(
                r#"{"iss":"https://idp/","sub":"alice","iat":499.5}"#,
                None,
                "users"
            ),
            Some(SUBJECT_REVOKED)
        );
        assert_eq!(
            revoked(r#"{"iss":"https://idp/","sub":"alice"}"#, None, "users"),
            Some(SUBJECT_REVOKED)
        );
        // ... not those issued at or after it.
        assert_eq!(
            revoked(
                r#"{"iss":"https://idp/","sub":"alice","iat":500}"#,
                None,
                "users"
            ),
            None
        );
        assert_eq!(
            revoked(
                r#"{"iss":"https://idp/","sub":"bob","iat":1}"#,
                None,
                "users"
            ),
            None
        );
        // A key, under its configuration only.
        assert_eq!(
            revoked(r#"{"iss":"https://idp/"}"#, Some("k-old"), "users"),
            Some(KEY_REVOKED)
        );
        assert_eq!(
            revoked(r#"{"iss":"https://idp/"}"#, Some("k-old"), "partners"),
            None
        );
        assert_eq!(
            revoked(r#"{"iss":"https://idp/"}"#, Some("k-new"), "users"),
            None
        );
        // Escaped claims are the same text.
        assert_eq!(
            revoked(
                r#"{"iss":"https:\/\/idp\/","jti":"t\u002d1"}"#,
                None,
                "users"
            ),
            Some(TOKEN_REVOKED)
        );
    }

    #[test]
    fn an_entry_counts_until_its_expiry_exactly() {
        let set = RevocationSet::from_revocations([token("i", "t", 1_000)]);
        let claims = r#"{"iss":"i","jti":"t"}"#;
        assert!(verdict(&set, "c", claims, None, 999).is_some());
        assert!(verdict(&set, "c", claims, None, 1_000).is_none());
        let swept = set.without_expired(UnixTime(1_000));
        assert_eq!(swept.len(), 0);
        assert_eq!(set.len(), 1, "the published set is untouched");
    }

    #[test]
    fn a_store_read_again_shares_what_did_not_change() {
        let entries: Vec<Revocation> = (0..1_000)
            .map(|n| token("https://idp/", &format!("t-{n}"), 1_000))
            .collect();
        let first = RevocationSet::from_revocations(entries.clone());
        // One issuer, held once.
        let scopes: Vec<&Arc<str>> = first.iter().map(|entry| &entry.scope).collect();
        assert!(scopes.windows(2).all(|pair| Arc::ptr_eq(pair[0], pair[1])));

        let mut again = entries;
        again[7].expires = UnixTime(2_000);
        again.push(token("https://idp/", "new", 1_000));
        let second = first.reread(again.clone());
        assert_eq!(second.len(), 1_001);
        let find = |set: &RevocationSet, name: &str| {
            let hash = set.hash(Kind::Token, "https://idp/", name);
            Arc::clone(
                set.bucket(hash)
                    .unwrap()
                    .find(hash, |entry| {
                        entry.matches(Kind::Token, "https://idp/", name)
                    })
                    .unwrap(),
            )
        };
        assert!(Arc::ptr_eq(&find(&first, "t-1"), &find(&second, "t-1")));
        assert!(!Arc::ptr_eq(&find(&first, "t-7"), &find(&second, "t-7")));
        assert_eq!(find(&second, "t-7").expires, UnixTime(2_000));
        assert!(Arc::ptr_eq(
            &find(&second, "new").scope,
            &find(&first, "t-1").scope
        ));
        // Scopes no entry has any more are not kept.
        let third = second.reread([token("https://other/", "x", 1_000)]);
        assert_eq!(third.scopes.len(), 1);
        let swept = second
            .with([Change::Add(token("https://other/", "y", 10))])
            .without_expired(UnixTime(500));
        assert_eq!(swept.scopes.len(), 1);
        // Read again from scratch, the same entries.
        let mut listed: Vec<String> = second.iter().map(Revocation::to_line).collect();
        let mut wanted: Vec<String> = RevocationSet::from_revocations(again)
            .iter()
            .map(Revocation::to_line)
            .collect();
        listed.sort();
        wanted.sort();
        assert_eq!(listed, wanted);
    }

    #[test]
    fn a_change_copies_only_the_bucket_it_touches() {
        let set = RevocationSet::from_revocations(
            (0..10_000).map(|n| token("i", &format!("t-{n}"), 1_000)),
        );
        let next = set.with([Change::Add(token("i", "new", 1_000))]);
        let shared = set
            .buckets
            .iter()
            .zip(next.buckets.iter())
            .filter(|(a, b)| Arc::ptr_eq(a, b))
            .count();
        assert_eq!(shared, BUCKETS - 1);
        assert_eq!(next.len(), 10_001);
        let removed = next.with([Change::Remove {
            kind: Kind::Token,
            scope: "i".into(),
            name: "t-7".into(),
        }]);
        assert_eq!(removed.len(), 10_000);
        assert!(removed.find(Kind::Token, "i", "t-7", UnixTime(0)).is_none());
        // Replacing an entry keeps one of it.
        let replaced = removed.with([Change::Add(token("i", "new", 2_000))]);
        assert_eq!(replaced.len(), 10_000);
        assert_eq!(
            replaced
                .find(Kind::Token, "i", "new", UnixTime(0))
                .unwrap()
                .expires,
            UnixTime(2_000)
        );
    }

    fn revocation() -> impl Strategy<Value = Revocation> {
        (0..3usize, "[ab]{1,2}", "[ab]{1,2}", 0..20i64, 0..20i64).prop_map(
            |(kind, scope, name, before, expires)| match kind {
                0 => token(&scope, &name, expires),
                1 => subject(&scope, &name, before, expires),
                _ => key(&scope, &name, expires),
            },
        )
    }

    proptest! {
        /// Against a list searched from the end (the last write of a key
        /// wins): the same entry in force, at every instant.
        #[test]
        fn the_set_finds_what_a_list_finds(
            adds in proptest::collection::vec(revocation(), 0..40),
            removes in proptest::collection::vec((0..3usize, "[ab]{1,2}", "[ab]{1,2}"), 0..10),
            now in 0..22i64,
        ) {
            let mut reference: Vec<Revocation> = Vec::new();
            let mut set = RevocationSet::empty();
            for revocation in &adds {
                // Two of one target: the later cut-off and the later end stand.
                let mut merged = revocation.clone();
                if let Some(old) = reference.iter().find(|r| r.matches(revocation.kind, &revocation.scope, &revocation.name)) {
                    merged.before = merged.before.max(old.before);
                    merged.expires = merged.expires.max(old.expires);
                }
                reference.retain(|r| !r.matches(revocation.kind, &revocation.scope, &revocation.name));
                reference.push(merged);
                set = set.with([Change::Add(revocation.clone())]);
            }
            for (kind, scope, name) in &removes {
                let kind = Kind::ALL[*kind];
                reference.retain(|r| !r.matches(kind, scope, name));
                set = set.with([Change::Remove { kind, scope: scope.as_str().into(), name: name.as_str().into() }]);
            }
            prop_assert_eq!(set.len(), reference.len());
            // The bound holds, and dropping what expired keeps what the list
            // still has in force, with an exact bound.
            let earliest = reference.iter().map(|r| r.expires).min();
            prop_assert!(earliest.is_none() || set.next_expiry().is_some_and(|next| Some(next) <= earliest));
            let swept = set.without_expired(UnixTime(now));
            let live: Vec<&Revocation> = reference.iter().filter(|r| r.expires > UnixTime(now)).collect();
            prop_assert_eq!(swept.len(), live.len());
            prop_assert_eq!(swept.next_expiry(), live.iter().map(|r| r.expires).min());
            for kind in Kind::ALL {
                prop_assert_eq!(swept.count(kind), live.iter().filter(|r| r.kind == kind).count());
            }
            for kind in Kind::ALL {
                for scope in ["a", "b", "aa", "ab", "ba", "bb"] {
                    for name in ["a", "b", "aa", "ab", "ba", "bb"] {
                        let wanted = reference
                            .iter()
                            .find(|r| r.matches(kind, scope, name) && r.expires > UnixTime(now));
                        prop_assert_eq!(set.find(kind, scope, name, UnixTime(now)), wanted);
                    }
                }
            }
        }
    }
}
