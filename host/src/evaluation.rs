//! The registry's facts for a policy evaluation: [`StoreHost`], the
//! [`prereg_engine::PolicyHost`] over one storage transaction (procedures,
//! candidates from the in-memory index or the store, the password check with
//! its pool of slow hashes, or a protocol's MAC proof).
//!
//! The engine bounds and traces every question ([`Evaluation`]); this module
//! only answers them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use prereg_core::{Fqdn, IndexKey, PasswordCheck, Procedure};
use prereg_engine::{Candidate, HostError, PolicyHost};
use zeroize::Zeroizing;

pub use prereg_engine::evaluation::{
    Evaluation, MAX_CANDIDATES, MAX_LOG_BYTES, MAX_LOG_LINES, MAX_LOOKUPS, MAX_PASSWORD_CHECKS, Offer, Trace,
};

use crate::index::{MemoryIndex, TooMany};
use crate::password;
use crate::store::{StoreError, Tx};

/// How long a password check waits for a place in the pool of checks.
pub const PASSWORD_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The outcome of a protocol's own check of a registration's password: CMP
/// protects a request with a MAC keyed by it, so the password itself never
/// travels, and the protocol front has checked the MAC before deciding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacProof {
    /// The registration whose password keyed the check.
    pub registration: u64,
    /// Whether the MAC verified.
    pub valid: bool,
}

/// The facts of one evaluation, from one storage transaction.
pub struct StoreHost {
    tx: Box<dyn Tx>,
    now: u64,
    password: Option<Zeroizing<String>>,
    mac: Option<MacProof>,
    index: Option<Arc<MemoryIndex>>,
    /// Registrations the index may hold older copies of: read from the
    /// transaction instead ([`StoreHost::with_rereads`]).
    rereads: HashSet<u64>,
    /// Procedures already read in this transaction.
    procedures: HashMap<String, Option<Procedure>>,
    /// The first storage failure, as the store gave it: an unavailable store
    /// stays unavailable to the caller.
    storage_error: Option<StoreError>,
}

impl StoreHost {
    /// The facts of `tx` at time `now`, for a request with no password.
    pub fn new(tx: Box<dyn Tx>, now: u64) -> Self {
        StoreHost {
            tx,
            now,
            password: None,
            mac: None,
            index: None,
            rereads: HashSet::new(),
            procedures: HashMap::new(),
            storage_error: None,
        }
    }

    /// The request carries `password`.
    pub fn with_password(mut self, password: Option<Zeroizing<String>>) -> Self {
        self.password = password;
        self
    }

    /// The request proved (or failed to prove) a registration's password by a
    /// MAC: the password check answers from `proof`, for that registration
    /// only.
    pub fn with_mac_proof(mut self, proof: Option<MacProof>) -> Self {
        self.mac = proof;
        self
    }

    /// Answers candidate lookups from `index` (caught up in this
    /// transaction) instead of the storage index.
    pub fn with_index(mut self, index: Option<Arc<MemoryIndex>>) -> Self {
        self.index = index;
        self
    }

    /// Registrations that this transaction itself changed since `index` was
    /// caught up (earlier decisions of a group commit's batch): the index's
    /// copies are older, so these are read from the transaction. Such a
    /// change touches only a registration's state and counts, never its
    /// pattern or domain, so the index still finds them.
    pub fn with_rereads(mut self, ids: HashSet<u64>) -> Self {
        self.rereads = ids;
        self
    }

    /// Procedures already read in this same transaction (earlier
    /// decisions of a group commit's batch, which change no procedure):
    /// answered without reading them again. Give them back to the next
    /// decision with [`StoreHost::take_procedures`].
    pub fn with_procedures(mut self, procedures: HashMap<String, Option<Procedure>>) -> Self {
        self.procedures = procedures;
        self
    }

    /// An evaluation of `policy_name` over these facts.
    pub fn evaluation(self, policy_name: &str) -> Evaluation {
        Evaluation::new(Box::new(self), policy_name)
    }

    /// The store's host back from the engine, which was given one
    /// ([`StoreHost::evaluation`], or [`prereg_engine::decide`] with a boxed
    /// `StoreHost`).
    pub fn back(host: Box<dyn PolicyHost>) -> StoreHost {
        match prereg_engine::downcast_host::<StoreHost>(host) {
            Some(host) => *host,
            None => unreachable!("the registry hands the engine StoreHosts only"),
        }
    }

    /// The procedures read in this transaction, by name.
    pub fn take_procedures(&mut self) -> HashMap<String, Option<Procedure>> {
        std::mem::take(&mut self.procedures)
    }

    /// The transaction, and the first storage failure of the evaluation.
    pub fn into_parts(self) -> (Box<dyn Tx>, Option<StoreError>) {
        (self.tx, self.storage_error)
    }

    fn failed(&mut self, e: StoreError) -> HostError {
        let message = e.to_string();
        if self.storage_error.is_none() {
            self.storage_error = Some(e);
        }
        HostError::Unavailable(message)
    }
}

impl PolicyHost for StoreHost {
    fn procedure(&mut self, name: &str) -> Result<Option<Procedure>, HostError> {
        // One transaction sees one state: a batch of validations asks for the
        // same procedure hundreds of times, and the store answers once.
        if let Some(known) = self.procedures.get(name) {
            return Ok(known.clone());
        }
        let answer = match self.tx.procedure(name) {
            Ok(p) => p.map(|p| Procedure {
                name: p.name,
                domain: p.domain,
                protocol: p.protocol,
                require_preregistration: p.require_preregistration,
                allowed_domains: p.allowed_domains,
            }),
            Err(e) => return Err(self.failed(e)),
        };
        self.procedures.insert(name.to_owned(), answer.clone());
        Ok(answer)
    }

    fn candidates(&mut self, domain: &str, fqdn: &Fqdn, limit: usize) -> Result<Vec<Candidate>, HostError> {
        if let Some(index) = &self.index {
            let found = index.candidates(domain, fqdn, limit).map_err(|TooMany| HostError::TooMany)?;
            let mut candidates = Vec::with_capacity(found.len());
            let shared: std::sync::Arc<str> = domain.into();
            for registration in found {
                let registration = if self.rereads.contains(&registration.id) {
                    match self.tx.registration(registration.id) {
                        Ok(Some(record)) => record.to_policy_view(),
                        Ok(None) => continue,
                        Err(e) => return Err(self.failed(e)),
                    }
                } else {
                    registration
                };
                candidates.push(Candidate { registration, domain: shared.clone() });
            }
            return Ok(candidates);
        }
        let keys: Vec<String> = IndexKey::probes(fqdn).iter().map(IndexKey::encode).collect();
        let rows = match self.tx.candidates(domain, &keys, limit) {
            Ok(rows) => rows,
            Err(e) => return Err(self.failed(e)),
        };
        Ok(rows
            .into_iter()
            .map(|record| Candidate { registration: record.to_policy_view(), domain: record.domain.into() })
            .collect())
    }

    fn check_password(&mut self, registration: u64) -> Result<PasswordCheck, HostError> {
        let hash = match self.tx.password_hash(registration) {
            Ok(hash) => hash,
            Err(e) => return Err(self.failed(e)),
        };
        Ok(match hash {
            None => PasswordCheck::NotSet,
            Some(_) if let Some(proof) = self.mac => {
                if proof.valid && proof.registration == registration {
                    PasswordCheck::Match
                } else {
                    PasswordCheck::Mismatch
                }
            }
            Some(hash) => match &self.password {
                None => PasswordCheck::NotProvided,
                Some(given) => match password::verify_bounded(given, &hash, PASSWORD_WAIT) {
                    Ok(true) => PasswordCheck::Match,
                    Ok(false) => PasswordCheck::Mismatch,
                    Err(password::Busy) => return Err(HostError::Busy),
                },
            },
        })
    }

    fn now(&self) -> u64 {
        self.now
    }
}
