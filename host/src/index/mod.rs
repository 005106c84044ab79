//! The in-memory candidate index: what answers a policy's `find-candidates`
//! in a long-running process (`prereg serve`, `prereg bench`, an embedding CA),
//! in constant time whatever the number of registrations.
//!
//! # What it holds
//!
//! For every registration, what a policy may see of it (pattern, IP address,
//! serial number, state, validity, use counts, whether a password is set) and
//! its domain, filed under the hash of its domain and [`IndexKey`]. A lookup
//! probes the handful of keys [`IndexKey::probes`] lists for a name, exactly
//! as the storage index does, and keeps only entries whose pattern is filed
//! under the probed key (so a hash collision can never add a candidate).
//! Passwords, hashes and officer data stay in the store.
//!
//! # How it stays true
//!
//! The store is the only source of truth, and any process may write it (the
//! CLI beside a running service). Every insert, update and delete of a
//! registration is logged in the writer's own transaction
//! (`registration_changes`, schema migration 6): triggers log updates and
//! deletes, and the store logs each transaction's inserts as one range of ids
//! when it commits ([`crate::store::Registrations::registration_changes`]). Before a decision
//! reads the index, [`MemoryIndex::catch_up`] reads the newest change number
//! *in the decision's transaction* and applies what it has not seen, reading
//! the changed rows in that same transaction. So a decision never sees an
//! index older than its own snapshot of the store; an enrollment, which holds
//! the write lock, sees exactly the store. The index may be newer than a dry
//! run's snapshot (another thread caught up first); that only means the dry
//! run sees a later committed state.
//!
//! When the log no longer holds what the index missed (it was pruned, see
//! [`MemoryIndex::prune_if_long`]) or the gap is large, the index is rebuilt from a
//! scan, off to the side, and swapped in.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

use foldhash::quality::RandomState;
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, TryLockError};
use std::time::{Duration, Instant};

use prereg_core::{Fqdn, IndexKeyRef, Registration};

use crate::store::{RegistrationFilter, RegistrationRecord, Storage, StoreError, Tx, TxKind};

mod entry;

use entry::{END, Entry, NewEntry};

/// Changes read from the log per round while catching up.
const CHANGE_BATCH: u32 = 10_000;
/// Rows read per page while building.
const BUILD_PAGE: u32 = 20_000;
/// Past this many changed registrations (and a quarter of the index), a
/// rebuild is cheaper than applying the changes.
const REBUILD_AFTER: u64 = 200_000;
/// Past this many changed registrations, a decision reads its candidates
/// from the store instead of applying them under its transaction (see
/// [`MemoryIndex::catch_up_quickly`]).
pub const DECISION_CATCH_UP_LIMIT: u64 = 2_000;
/// Changes the log keeps when pruned: a process that falls further behind
/// rebuilds its index.
pub const CHANGES_KEPT: u64 = 100_000;
/// The keys of the chain map are already hashes.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type HashKeyed<V> = HashMap<u64, V, BuildHasherDefault<PassThrough>>;

/// The index itself, behind [`MemoryIndex`]'s lock.
struct State {
    /// The newest change of the log this state includes.
    version: u64,
    /// Keyed per process (foldhash, seeded at random), so that nobody can
    /// aim names at one chain. Where it was SipHash, hashing was a seventh
    /// of a decision.
    hasher: RandomState,
    domains: Vec<Box<str>>,
    domain_ids: HashMap<Box<str>, u32, RandomState>,
    /// Key hash → first entry of its chain.
    chains: HashKeyed<u32>,
    entries: Vec<Option<Entry>>,
    free: Vec<u32>,
    /// Registration id → its entry.
    slots: HashKeyed<u32>,
}

impl State {
    fn new(hasher: RandomState) -> Self {
        State {
            version: 0,
            hasher,
            domains: Vec::new(),
            domain_ids: HashMap::default(),
            chains: HashKeyed::default(),
            entries: Vec::new(),
            free: Vec::new(),
            slots: HashKeyed::default(),
        }
    }

    /// The chain of `key` in the domain numbered `domain`.
    fn key_hash(&self, domain: u32, key: IndexKeyRef<'_>) -> u64 {
        self.hasher.hash_one((domain, key))
    }

    fn domain_id(&mut self, domain: &str) -> u32 {
        if let Some(id) = self.domain_ids.get(domain) {
            return *id;
        }
        let id = self.domains.len() as u32;
        self.domains.push(domain.into());
        self.domain_ids.insert(domain.into(), id);
        id
    }

    fn upsert(&mut self, r: &RegistrationRecord) {
        let domain = self.domain_id(&r.domain);
        let entry = |key: u64, next: u32| {
            Entry::new(NewEntry {
                id: r.id,
                key,
                domain,
                next,
                pattern: &r.pattern,
                ip: r.ip.as_deref(),
                serial: r.serial.as_deref(),
                state: r.state,
                has_password: r.has_password,
                expires_at: r.expires_at,
                max_enrollments: r.max_enrollments,
                enrollments: r.enrollments,
            })
        };
        // Most changes keep the registration's domain and pattern (an
        // enrollment counted, a state or validity changed): the entry is
        // rewritten where it is, in its chain. Removing and inserting it
        // again cost two inserts into maps of a million keys, and their
        // tombstones an occasional rehash of the whole map, on the group
        // commit's writer thread after every batch.
        if let Some(&slot) = self.slots.get(&r.id)
            && let Some(Some(old)) = self.entries.get_mut(slot as usize)
            && old.domain == domain
            && old.pattern_bytes() == r.pattern.as_bytes()
        {
            *old = entry(old.key, old.next);
            return;
        }
        self.remove(r.id);
        let key = self.key_hash(domain, IndexKeyRef::of_canonical(&r.pattern));
        let next = self.chains.get(&key).copied().unwrap_or(END);
        let entry = entry(key, next);
        let slot = match self.free.pop() {
            Some(slot) => {
                self.entries[slot as usize] = Some(entry);
                slot
            }
            None => {
                self.entries.push(Some(entry));
                (self.entries.len() - 1) as u32
            }
        };
        self.chains.insert(key, slot);
        self.slots.insert(r.id, slot);
    }

    fn remove(&mut self, id: u64) {
        let Some(slot) = self.slots.remove(&id) else { return };
        let Some(entry) = self.entries.get_mut(slot as usize).and_then(Option::take) else { return };
        // Unlink from its chain.
        let head = self.chains.get(&entry.key).copied().unwrap_or(END);
        if head == slot {
            if entry.next == END {
                self.chains.remove(&entry.key);
            } else {
                self.chains.insert(entry.key, entry.next);
            }
        } else {
            let mut at = head;
            while at != END {
                let Some(Some(e)) = self.entries.get_mut(at as usize) else { break };
                if e.next == slot {
                    e.next = entry.next;
                    break;
                }
                at = e.next;
            }
        }
        self.free.push(slot);
    }

    fn lookup(&self, domain: &str, fqdn: &Fqdn, limit: usize) -> Result<Vec<Registration>, TooMany> {
        let Some(&domain_id) = self.domain_ids.get(domain) else { return Ok(Vec::new()) };
        let mut found = Vec::new();
        for probe in IndexKeyRef::probes(fqdn) {
            let mut at = self.chains.get(&self.key_hash(domain_id, probe)).copied().unwrap_or(END);
            while at != END {
                let Some(Some(entry)) = self.entries.get(at as usize) else { break };
                if entry.domain == domain_id && probe.files_bytes(entry.pattern_bytes()) {
                    if found.len() == limit {
                        return Err(TooMany);
                    }
                    found.push(entry.view());
                }
                at = entry.next;
            }
        }
        found.sort_unstable_by_key(|r| r.id);
        Ok(found)
    }

    /// Heap bytes held, from the capacities (what the allocator hands out,
    /// without its own per-block overhead).
    fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        // hashbrown: one control byte per bucket beside each (key, value).
        let map = |cap: usize, item: usize| cap * (item + 1);
        let beside: usize = self.entries.iter().flatten().map(Entry::heap_bytes).sum();
        self.entries.capacity() * size_of::<Option<Entry>>()
            + beside
            + map(self.chains.capacity(), size_of::<(u64, u32)>())
            + map(self.slots.capacity(), size_of::<(u64, u32)>())
            + self.free.capacity() * size_of::<u32>()
            + self.domains.iter().map(|d| 2 * d.len() + size_of::<Box<str>>() * 2 + 4).sum::<usize>()
    }
}

/// More candidates than the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooMany;

/// Size and freshness of an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexStats {
    /// Registrations held.
    pub registrations: usize,
    /// Heap bytes, from the capacities of its tables and strings.
    pub heap_bytes: usize,
    /// The newest change of the store's log it includes.
    pub version: u64,
    /// Full builds so far (the first one included).
    pub builds: u64,
    /// How long the last full build took.
    pub last_build: Duration,
}

/// The in-memory candidate index of one process; see the module docs.
pub struct MemoryIndex {
    state: RwLock<State>,
    /// Held while catching up or rebuilding, so that one thread does it.
    updating: Mutex<Builds>,
}

#[derive(Debug, Default)]
struct Builds {
    count: u64,
    last: Duration,
}

impl std::fmt::Debug for MemoryIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryIndex").field("stats", &self.stats()).finish()
    }
}

impl MemoryIndex {
    /// Builds the index from the store, in `tx` (a read transaction will do).
    pub fn build(tx: &mut dyn Tx) -> Result<Self, StoreError> {
        let started = Instant::now();
        let state = build_state(tx, RandomState::default())?;
        let builds = Builds { count: 1, last: started.elapsed() };
        tracing::info!(
            registrations = state.slots.len(),
            ms = builds.last.as_millis() as u64,
            "in-memory candidate index built"
        );
        Ok(MemoryIndex { state: RwLock::new(state), updating: Mutex::new(builds) })
    }

    /// Brings the index up to the store as `tx` sees it. Call it in the
    /// transaction whose decisions will read the index. Returns the ends of
    /// the change log, `(oldest, newest)`, as `tx` saw them.
    pub fn catch_up(&self, tx: &mut dyn Tx) -> Result<(u64, u64), StoreError> {
        let ends = tx.registration_change_range()?;
        let builds = self.updating.lock().unwrap_or_else(PoisonError::into_inner);
        self.catch_up_to(tx, ends, builds, u64::MAX)?;
        Ok(ends)
    }

    /// [`MemoryIndex::catch_up`] if it is quick: at most
    /// [`DECISION_CATCH_UP_LIMIT`] changed registrations, and no other thread
    /// updating the index. Returns whether the index is now up to `tx`; if
    /// not, the caller reads candidates from the store for this decision
    /// (an enrollment holds the write lock: it must not apply an import of a
    /// million rows meanwhile), and the follower thread catches up.
    pub fn catch_up_quickly(&self, tx: &mut dyn Tx) -> Result<bool, StoreError> {
        let ends = tx.registration_change_range()?;
        if ends.1 <= self.version() {
            return Ok(true);
        }
        let builds = match self.updating.try_lock() {
            Ok(builds) => builds,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return Ok(false),
        };
        self.catch_up_to(tx, ends, builds, DECISION_CATCH_UP_LIMIT)
    }

    /// Applies the changes up to `newest`, unless more than `limit`
    /// registrations changed (then returns false, changing nothing).
    fn catch_up_to(
        &self,
        tx: &mut dyn Tx,
        (oldest, newest): (u64, u64),
        mut builds: MutexGuard<'_, Builds>,
        limit: u64,
    ) -> Result<bool, StoreError> {
        let version = self.version();
        if newest <= version {
            return Ok(true); // another thread did it meanwhile
        }
        // What changed: entries of the log, each a range of ids.
        let threshold = REBUILD_AFTER.max(self.len() as u64 / 4);
        let mut changes = Vec::new();
        let (mut from, mut ids) = (version, 0u64);
        let mut rebuild = oldest > version + 1; // the log lost entries we need
        while !rebuild && from < newest {
            let batch = tx.registration_changes(from, CHANGE_BATCH)?;
            let Some(last) = batch.last() else { break };
            from = last.seq;
            ids += batch.iter().map(|c| c.last_id.saturating_sub(c.first_id) + 1).sum::<u64>();
            changes.extend(batch);
            if ids > limit {
                return Ok(false);
            }
            rebuild = ids > threshold;
        }
        if rebuild {
            if limit != u64::MAX {
                return Ok(false);
            }
            let started = Instant::now();
            let hasher = self.read().hasher.clone();
            let fresh = build_state(tx, hasher)?;
            *self.state.write().unwrap_or_else(PoisonError::into_inner) = fresh;
            builds.count += 1;
            builds.last = started.elapsed();
            tracing::info!(behind = newest - version, ms = builds.last.as_millis() as u64, "candidate index rebuilt");
            return Ok(true);
        }
        for change in &changes {
            self.apply(tx, change.first_id, change.last_id)?;
        }
        self.state.write().unwrap_or_else(PoisonError::into_inner).version = from;
        Ok(true)
    }

    /// Re-reads the registrations `first` to `last` and files them anew
    /// (those gone are dropped).
    fn apply(&self, tx: &mut dyn Tx, first: u64, last: u64) -> Result<(), StoreError> {
        if first == last {
            let row = tx.registration(first)?;
            let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
            match row {
                Some(record) => state.upsert(&record),
                None => state.remove(first),
            }
            return Ok(());
        }
        let mut next = first;
        while next <= last {
            let page = tx.registrations(&RegistrationFilter {
                after_id: Some(next.saturating_sub(1)),
                limit: Some(BUILD_PAGE),
                ..RegistrationFilter::default()
            })?;
            let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
            let mut seen = next;
            for record in page.iter().take_while(|r| r.id <= last) {
                for gone in seen..record.id {
                    state.remove(gone);
                }
                state.upsert(record);
                seen = record.id + 1;
            }
            let end = match page.last() {
                Some(r) if r.id < last && page.len() == BUILD_PAGE as usize => r.id + 1,
                _ => last + 1,
            };
            for gone in seen..end {
                state.remove(gone);
            }
            next = end;
        }
        Ok(())
    }

    /// The candidates of `domain` for `fqdn`, by ascending id, as the storage
    /// index would return them; [`TooMany`] past `limit`.
    pub fn candidates(&self, domain: &str, fqdn: &Fqdn, limit: usize) -> Result<Vec<Registration>, TooMany> {
        self.read().lookup(domain, fqdn, limit)
    }

    /// Registrations held.
    pub fn len(&self) -> usize {
        self.read().slots.len()
    }

    /// Whether it holds no registration.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The newest change of the store's log it includes.
    pub fn version(&self) -> u64 {
        self.read().version
    }

    /// Size, freshness and builds.
    pub fn stats(&self) -> IndexStats {
        let (registrations, heap_bytes, version) = {
            let state = self.read();
            (state.slots.len(), state.heap_bytes(), state.version)
        };
        let builds = self.updating.lock().unwrap_or_else(PoisonError::into_inner);
        IndexStats { registrations, heap_bytes, version, builds: builds.count, last_build: builds.last }
    }

    /// Trims the store's change log to the newest [`CHANGES_KEPT`] entries
    /// when it holds more than twice that, in a write transaction. A process
    /// whose index is further behind rebuilds it when it next catches up.
    /// `(oldest, newest)` are the log's ends as last read.
    pub fn prune_if_long(storage: &dyn Storage, (oldest, newest): (u64, u64)) -> Result<u64, StoreError> {
        if newest.saturating_sub(oldest) <= 2 * CHANGES_KEPT {
            return Ok(0);
        }
        let mut tx = storage.begin(TxKind::Write)?;
        let pruned = tx.prune_registration_changes(CHANGES_KEPT)?;
        tx.commit()?;
        Ok(pruned)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A full build from the store: the change number first, then every row, in
/// one transaction, so that the two agree.
fn build_state(tx: &mut dyn Tx, hasher: RandomState) -> Result<State, StoreError> {
    let mut state = State::new(hasher);
    state.version = tx.registration_change_range()?.1;
    let mut after = 0;
    loop {
        let page = tx.registrations(&RegistrationFilter {
            after_id: Some(after),
            limit: Some(BUILD_PAGE),
            ..RegistrationFilter::default()
        })?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for record in &page {
            state.upsert(record);
        }
    }
    state.entries.shrink_to_fit();
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{self, SplitMix64};
    use crate::signing::{Algorithm, SigningKey};
    use crate::store::{SqliteStorage, Storage, TxKind};
    use prereg_core::{IndexKey, RegistrationState};

    const N: u64 = 3_000;

    fn store() -> SqliteStorage {
        let storage = SqliteStorage::in_memory().unwrap();
        let key = SigningKey::generate(Algorithm::EdDsa);
        crate::registry::initialise(&storage, "t", &key, 1).unwrap();
        let mut tx = storage.begin(TxKind::Write).unwrap();
        dataset::populate(tx.as_mut(), N, &key.public_key().kid(), 1).unwrap();
        tx.commit().unwrap();
        storage
    }

    /// The index answers every query of the benchmark mix (and some names
    /// outside the domain) exactly as the storage index does.
    fn agrees_with_the_store(storage: &SqliteStorage, index: &MemoryIndex) {
        let mut rng = SplitMix64::new(7);
        let names: Vec<String> = (0..2_000).map(|_| dataset::request(&mut rng, N).0).collect();
        agree_on(storage, index, &names.iter().map(String::as_str).collect::<Vec<_>>());
    }

    #[test]
    fn the_index_answers_as_the_store_does_through_inserts_updates_deletes_and_a_pruned_log() {
        let storage = store();
        let index = {
            let mut tx = storage.begin(TxKind::Read).unwrap();
            MemoryIndex::build(tx.as_mut()).unwrap()
        };
        assert_eq!(index.len(), N as usize);
        agrees_with_the_store(&storage, &index);

        // Changes by another writer: deletes, state and counter updates, and
        // a new wildcard that many queries now find.
        let mut tx = storage.begin(TxKind::Write).unwrap();
        for id in (2..N).step_by(7) {
            tx.delete_registration(id).unwrap();
        }
        for id in (3..N).step_by(11).filter(|id| (id - 2) % 7 != 0) {
            tx.update_registration(id, RegistrationState::Disabled, 3, 1).unwrap();
        }
        let new = crate::store::NewRegistration {
            password_sealed: None,
            domain: dataset::PROCEDURE.into(),
            procedure: dataset::PROCEDURE.into(),
            pattern: "*.z1.bench.example".into(),
            index_key: IndexKey::of_canonical("*.z1.bench.example").encode(),
            ip: Some("10.0.0.1".into()),
            serial: None,
            password_hash: None,
            expires_at: Some(99),
            max_enrollments: Some(2),
            created_by: tx.officers().unwrap()[0].kid.clone(),
            created_at: 1,
            import: None,
            staged: false,
        };
        tx.insert_registration(&new).unwrap();
        tx.commit().unwrap();
        let before = index.version();
        agrees_with_the_store(&storage, &index);
        assert!(index.version() > before, "the changes were applied");
        assert_eq!(index.stats().builds, 1, "applied one by one, not rebuilt");

        // The log is pruned past what the index has seen: it rebuilds.
        let mut tx = storage.begin(TxKind::Write).unwrap();
        tx.delete_registration(1).unwrap();
        tx.update_registration(4, RegistrationState::Locked, 0, 5).unwrap();
        tx.prune_registration_changes(1).unwrap();
        tx.commit().unwrap();
        agrees_with_the_store(&storage, &index);
        assert_eq!(index.stats().builds, 2, "a gap in the log means a rebuild");
    }

    #[test]
    fn a_decision_does_not_apply_a_large_change_but_the_follower_does() {
        let storage = store();
        let index = {
            let mut tx = storage.begin(TxKind::Read).unwrap();
            MemoryIndex::build(tx.as_mut()).unwrap()
        };
        // A change of more than DECISION_CATCH_UP_LIMIT registrations (a
        // published import) and a small one.
        let mut tx = storage.begin(TxKind::Write).unwrap();
        for id in 1..=DECISION_CATCH_UP_LIMIT + 1 {
            tx.update_registration(id, RegistrationState::Disabled, 0, 0).unwrap();
        }
        tx.commit().unwrap();
        let before = index.version();
        let mut tx = storage.begin(TxKind::Read).unwrap();
        assert!(!index.catch_up_quickly(tx.as_mut()).unwrap(), "too large for a decision");
        assert_eq!(index.version(), before, "nothing half applied");
        index.catch_up(tx.as_mut()).unwrap();
        drop(tx);
        agrees_with_the_store(&storage, &index);
        let mut tx = storage.begin(TxKind::Write).unwrap();
        tx.update_registration(N - 1, RegistrationState::Disabled, 0, 0).unwrap();
        tx.commit().unwrap();
        let mut tx = storage.begin(TxKind::Read).unwrap();
        assert!(index.catch_up_quickly(tx.as_mut()).unwrap(), "a small change is applied at once");
        drop(tx);
        agrees_with_the_store(&storage, &index);
    }

    /// The index and the store agree on `names`, in the benchmark's domain
    /// and another; how many candidates each name has in the benchmark's.
    fn agree_on(storage: &SqliteStorage, index: &MemoryIndex, names: &[&str]) -> Vec<usize> {
        let mut tx = storage.begin(TxKind::Read).unwrap();
        index.catch_up(tx.as_mut()).unwrap();
        let mut found = Vec::new();
        for name in names {
            let fqdn = Fqdn::parse(name).unwrap();
            for domain in [dataset::PROCEDURE, "elsewhere"] {
                let keys: Vec<String> = IndexKey::probes(&fqdn).iter().map(IndexKey::encode).collect();
                let mut want: Vec<Registration> =
                    tx.candidates(domain, &keys, 100).unwrap().iter().map(RegistrationRecord::to_policy_view).collect();
                want.sort_by_key(|r| r.id);
                let got = index.candidates(domain, &fqdn, 100).unwrap();
                assert_eq!(got, want, "{domain} {name}");
                if domain == dataset::PROCEDURE {
                    found.push(got.len());
                }
            }
        }
        found
    }

    #[test]
    fn a_registration_whose_pattern_is_rewritten_in_the_database_moves_to_its_new_chain() {
        // Someone with write access to the database changes patterns in
        // place, which no API does: the index must not keep the entry where
        // it was (an update that keeps the pattern rewrites it in place).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.sqlite3");
        let storage = SqliteStorage::open(&path).unwrap();
        let key = SigningKey::generate(Algorithm::EdDsa);
        crate::registry::initialise(&storage, "t", &key, 1).unwrap();
        let mut tx = storage.begin(TxKind::Write).unwrap();
        dataset::populate(tx.as_mut(), N, &key.public_key().kid(), 1).unwrap();
        tx.commit().unwrap();
        let index = {
            let mut tx = storage.begin(TxKind::Read).unwrap();
            MemoryIndex::build(tx.as_mut()).unwrap()
        };
        let raw = rusqlite::Connection::open(&path).unwrap();
        let moves = [(2, "moved.z1.bench.example"), (15, "*.moved.bench.example"), (16, "elsewhere.z1.bench.example")];
        // A name for each pattern, old and new.
        let name_of = |pattern: &str| pattern.replace('*', "x");
        let mut names: Vec<String> = moves.iter().map(|(_, pattern)| name_of(pattern)).collect();
        for (id, _) in moves {
            let old: String =
                raw.query_row("SELECT pattern FROM registrations WHERE id = ?1", [id], |row| row.get(0)).unwrap();
            names.push(name_of(&old));
        }
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let before = agree_on(&storage, &index, &names);
        for (id, pattern) in moves {
            let changed = raw
                .execute(
                    "UPDATE registrations SET pattern = ?1, index_key = ?2 WHERE id = ?3",
                    rusqlite::params![pattern, IndexKey::of_canonical(pattern).encode(), id],
                )
                .unwrap();
            assert_eq!(changed, 1);
        }
        // And one whose counters only change, in place.
        raw.execute("UPDATE registrations SET enrollments = enrollments + 1 WHERE id = 1", []).unwrap();
        let after = agree_on(&storage, &index, &names);
        assert_ne!(before, after, "the rewritten patterns are found where they now are: {before:?} {after:?}");
    }

    #[test]
    fn too_many_candidates_is_an_error_not_a_truncated_answer() {
        let storage = store();
        let mut tx = storage.begin(TxKind::Read).unwrap();
        let index = MemoryIndex::build(tx.as_mut()).unwrap();
        // The in-label patterns of zone 18 (rows 18, 78, 138, ...) share one key.
        let fqdn = Fqdn::parse("dev18-x.z18.bench.example").unwrap();
        let all = index.candidates(dataset::PROCEDURE, &fqdn, 4096).unwrap();
        assert!(all.len() > 1, "{all:?}");
        assert_eq!(index.candidates(dataset::PROCEDURE, &fqdn, all.len() - 1), Err(TooMany));
    }

    #[test]
    fn entries_stay_small_and_hold_their_patterns() {
        let storage = store();
        let mut tx = storage.begin(TxKind::Read).unwrap();
        let stats = MemoryIndex::build(tx.as_mut()).unwrap().stats();
        assert_eq!(stats.registrations, N as usize);
        // Two cache lines an entry (entry.rs), patterns inline.
        assert_eq!(std::mem::size_of::<Option<Entry>>(), 128);
        assert!(stats.heap_bytes / stats.registrations < 300, "{stats:?}");
    }
}
