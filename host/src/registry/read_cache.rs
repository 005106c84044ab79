//! Dry runs answered from memory, without a storage transaction.
//!
//! A dry-run decision of a long-running process (`prereg serve`) reads two
//! things from the store: the token procedure, and the candidates, which
//! the in-memory index answers once it is current. Opening a read
//! transaction only to learn that nothing changed cost most of a decision.
//! Instead, the store's change token ([`crate::store::Storage::change_token`],
//! SQLite's `data_version`) is read before a decision's transaction; when
//! that transaction finds the index current, the token is remembered with
//! the procedures the decision read. A later dry run that reads the same
//! token knows nothing was committed since, by any process: it answers from
//! the index and the remembered procedures ([`CachedHost`]). Any commit
//! changes the token, and the next dry run takes the transaction again.
//! A procedure not remembered, a password to check or a MAC proof: the
//! transaction too.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use prereg_core::{Fqdn, PasswordCheck, Procedure};
use prereg_engine::{Candidate, HostError, PolicyHost};

use crate::index::{MemoryIndex, TooMany};

/// Values read from the store, remembered with the change token read
/// before the transaction that read them: valid for as long as the store's
/// token is still that one (nothing committed since, by any process). A
/// value read at another token replaces everything remembered. The one
/// mechanism behind dry runs answered from memory ([`ReadCache`]) and the
/// service's resolved CA callers.
#[derive(Debug)]
pub struct TokenMemo<K, V> {
    state: Mutex<Option<Remembered<K, V>>>,
}

/// The token, and what was read at it.
type Remembered<K, V> = (u64, Arc<HashMap<K, V>>);

impl<K, V> Default for TokenMemo<K, V> {
    fn default() -> Self {
        TokenMemo { state: Mutex::new(None) }
    }
}

impl<K: std::hash::Hash + Eq + Clone, V: Clone> TokenMemo<K, V> {
    /// Everything remembered at `token`, if that is the token remembered.
    pub fn at(&self, token: u64) -> Option<Arc<HashMap<K, V>>> {
        match &*self.state.lock().unwrap_or_else(PoisonError::into_inner) {
            Some((remembered, values)) if *remembered == token => Some(values.clone()),
            _ => None,
        }
    }

    /// The value of `key` remembered at `token`.
    pub fn get(&self, token: u64, key: &K) -> Option<V> {
        match &*self.state.lock().unwrap_or_else(PoisonError::into_inner) {
            Some((remembered, values)) if *remembered == token => values.get(key).cloned(),
            _ => None,
        }
    }

    /// Remembers `read`, read in a transaction that began after `token`
    /// was read.
    pub fn remember(&self, token: u64, read: HashMap<K, V>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match &mut *state {
            Some((remembered, values)) if *remembered == token => {
                if read.keys().any(|key| !values.contains_key(key)) {
                    Arc::make_mut(values).extend(read);
                }
            }
            _ => *state = Some((token, Arc::new(read))),
        }
    }
}

/// What the store's change token did across one of this process's
/// enrollment batches: it moved from `from` (read under the batch's write
/// lock, before its first write) to `to` (read after its commit), and
/// nothing but the batch was committed in between. A batch writes
/// registrations' counts and states, audit records, answers kept for
/// Idempotency-Keys, certificates and protocol transaction ids, and nothing
/// else: a memo of anything else read at `from` is still true at `to`.
pub trait OwnBatches: Send + Sync {
    /// The store went from `from` to `to` by one of this process's batches.
    fn carried(&self, from: u64, to: u64);
}

/// What was remembered at `from` is still true at `to`.
impl<K: Send + Sync, V: Send + Sync> OwnBatches for TokenMemo<K, V> {
    fn carried(&self, from: u64, to: u64) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((remembered, _)) = &mut *state
            && *remembered == from
        {
            *remembered = to;
        }
    }
}

/// Procedures as the store had them at one change token.
type Procedures = Arc<HashMap<String, Option<Procedure>>>;

/// What a dry run may answer from memory: the procedures read at the change
/// token at which the memory index was last found current.
#[derive(Debug, Default)]
pub(super) struct ReadCache {
    procedures: TokenMemo<String, Option<Procedure>>,
    /// Dry runs answered from memory so far.
    answered: AtomicU64,
}

impl ReadCache {
    /// Counts a dry run answered from memory.
    pub(super) fn answered(&self) {
        self.answered.fetch_add(1, Ordering::Relaxed);
    }

    /// Dry runs answered from memory so far.
    pub(super) fn answered_count(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    /// The procedures remembered at `token`, if that is the token
    /// remembered (the store is as it was then).
    pub(super) fn at(&self, token: u64) -> Option<Procedures> {
        self.procedures.at(token)
    }

    /// Remembers that at `token` (read before the transaction that found
    /// it so) the index was current and these were the procedures.
    pub(super) fn remember(&self, token: u64, read: HashMap<String, Option<Procedure>>) {
        self.procedures.remember(token, read);
    }
}

/// The facts of a dry run answered from memory: the remembered procedures
/// and the memory index. No password is checked (a dry run carries none):
/// a registration offered with one answers `not-provided`.
pub(super) struct CachedHost {
    procedures: Procedures,
    index: Arc<MemoryIndex>,
    now: u64,
    /// Whether each registration offered has a password (a handful: a
    /// list is cheaper than a map).
    offered: Vec<(u64, bool)>,
    /// The policy asked what is not remembered: decide in a transaction.
    pub(super) missed: bool,
}

impl CachedHost {
    pub(super) fn new(procedures: Procedures, index: Arc<MemoryIndex>, now: u64) -> Self {
        CachedHost { procedures, index, now, offered: Vec::new(), missed: false }
    }

    fn miss(&mut self, what: &str) -> HostError {
        self.missed = true;
        HostError::Unavailable(format!("{what} is not in the read cache"))
    }
}

impl PolicyHost for CachedHost {
    fn procedure(&mut self, name: &str) -> Result<Option<Procedure>, HostError> {
        match self.procedures.get(name) {
            Some(known) => Ok(known.clone()),
            None => Err(self.miss("the procedure")),
        }
    }

    fn candidates(&mut self, domain: &str, fqdn: &Fqdn, limit: usize) -> Result<Vec<Candidate>, HostError> {
        let found = self.index.candidates(domain, fqdn, limit).map_err(|TooMany| HostError::TooMany)?;
        if found.is_empty() {
            return Ok(Vec::new());
        }
        let shared: Arc<str> = domain.into();
        self.offered.extend(found.iter().map(|registration| (registration.id, registration.has_password)));
        Ok(found.into_iter().map(|registration| Candidate { registration, domain: shared.clone() }).collect())
    }

    fn check_password(&mut self, registration: u64) -> Result<PasswordCheck, HostError> {
        match self.offered.iter().rev().find(|(id, _)| *id == registration).map(|(_, has_password)| has_password) {
            Some(true) => Ok(PasswordCheck::NotProvided),
            Some(false) => Ok(PasswordCheck::NotSet),
            None => Err(self.miss("the registration")),
        }
    }

    fn now(&self) -> u64 {
        self.now
    }
}
