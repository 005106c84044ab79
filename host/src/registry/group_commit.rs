//! Group commit: enrollment decisions that arrive together share one write
//! transaction and one fsync.
//!
//! # How a batch forms
//!
//! There is no thread of its own and no timer. A decision that finds no
//! batch being written *leads*: it takes everything queued (itself first),
//! decides it in one write transaction, commits, answers each decision of
//! the batch, and hands the lead to the first decision that queued
//! meanwhile, which takes all those as the next batch. So a lone decision
//! waits for nothing, and under load a batch is what arrived while the last
//! one was being made durable: the busier the store, the fewer fsyncs per
//! decision.
//!
//! # Why it keeps the rules
//!
//! - **In order, each seeing those before it.** The decisions of a batch run
//!   one after another, in the order they queued, in the batch's transaction.
//!   The memory index is caught up once, before the first; a registration
//!   that an earlier decision of the batch changed (counted, used up, locked)
//!   is read again from the transaction ([`crate::evaluation::StoreHost::with_rereads`]).
//!   A one-time registration raced by sixteen clients in one batch is
//!   allowed once.
//! - **Alone in failure.** Each decision runs after a savepoint
//!   ([`crate::store::Tx::savepoint`]): one that fails (its certificate could
//!   not be issued, an Idempotency-Key answered another request, a store
//!   error) takes back its own writes only, and gets its own error.
//! - **Durable before answered.** Nobody is answered before the commit
//!   returned. A commit that fails answers every decision of the batch with
//!   the failure: none of them was acknowledged, and nothing of them is kept.
//! - **One hash chain.** The audit records are appended in order, in the one
//!   transaction, each linking to the one before.
//! - **The memory index sees only what is committed.** It is caught up at the
//!   start of a batch, never from the batch's own uncommitted writes.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use crate::host_calls::{HostCall, HostCalls};
use crate::store::{CertificateRecord, StoreError, TxKind};

use super::decisions::{DecisionReport, EnrollmentInput, Grant};
use super::{Registry, RegistryError};

/// At most this many decisions share a transaction; more wait for the next.
pub const MAX_BATCH: usize = 256;

/// The issuing front's part of an enrollment ([`Registry::enroll_issuing`]):
/// called once, inside the decision's transaction and only if it allows, it
/// returns the certificate to record. An error takes the decision back
/// (nothing is counted). Owned, because the decision may be written by
/// another thread's batch.
pub type Issuer = Box<dyn FnMut(&Grant<'_>) -> Result<CertificateRecord, String> + Send>;

/// One enrollment decision waiting for its batch.
pub(super) struct Job {
    pub input: EnrollmentInput,
    pub now: u64,
    pub calls: HostCalls,
    pub issuer: Option<Issuer>,
}

/// What a decision of a batch answers: the report, the certificate issued
/// with it, and the host calls recorded ([`HostCalls::Record`]).
pub(super) type Answer = Result<(DecisionReport, Option<CertificateRecord>, Vec<HostCall>), RegistryError>;

/// The queue of a registry (and its clones) and what it has done.
#[derive(Default)]
pub(super) struct GroupCommit {
    queue: Mutex<Queue>,
    batches: AtomicU64,
    decisions: AtomicU64,
    largest: AtomicU64,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Arc<Ticket>>,
    /// A decision is leading a batch (or being handed the lead).
    leading: bool,
}

/// A queued decision: its job, and where its answer (or the lead) arrives.
struct Ticket {
    job: Mutex<Option<Job>>,
    state: Mutex<TicketState>,
    ready: Condvar,
}

enum TicketState {
    Waiting,
    /// This decision leads the next batch.
    Lead,
    Done(Box<Answer>),
}

/// How many batches were written, how many decisions they carried, and the
/// largest (`/metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupCommitStats {
    /// Write transactions that carried enrollment decisions.
    pub batches: u64,
    /// Enrollment decisions they carried.
    pub decisions: u64,
    /// The most decisions one of them carried.
    pub largest: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Ticket {
    fn finish(&self, answer: Answer) {
        *lock(&self.state) = TicketState::Done(Box::new(answer));
        self.ready.notify_one();
    }

    fn lead(&self) {
        *lock(&self.state) = TicketState::Lead;
        self.ready.notify_one();
    }
}

/// The lead, while a batch is written. Dropped (also by a panic): answers
/// what the batch left unanswered, then hands the lead on.
struct Leading<'a> {
    group: &'a GroupCommit,
    batch: Vec<Arc<Ticket>>,
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        for ticket in &self.batch {
            let mut state = lock(&ticket.state);
            if !matches!(*state, TicketState::Done(_)) {
                *state = TicketState::Done(Box::new(Err(RegistryError::Store(StoreError::Missing(
                    "the batch carrying this enrollment decision failed before it was decided; nothing was counted"
                        .into(),
                )))));
                ticket.ready.notify_one();
            }
        }
        let mut queue = lock(&self.group.queue);
        match queue.waiting.front() {
            Some(next) => next.lead(),
            None => queue.leading = false,
        }
    }
}

impl GroupCommit {
    /// Decides `job` in the next batch, and returns once that batch is
    /// durable (or failed).
    pub(super) fn submit(&self, registry: &Registry, job: Job) -> Answer {
        let ticket = Arc::new(Ticket {
            job: Mutex::new(Some(job)),
            state: Mutex::new(TicketState::Waiting),
            ready: Condvar::new(),
        });
        let leads = {
            let mut queue = lock(&self.queue);
            queue.waiting.push_back(ticket.clone());
            !std::mem::replace(&mut queue.leading, true)
        };
        if !leads {
            let mut state = lock(&ticket.state);
            loop {
                match std::mem::replace(&mut *state, TicketState::Waiting) {
                    TicketState::Waiting => state = ticket.ready.wait(state).unwrap_or_else(PoisonError::into_inner),
                    TicketState::Lead => break,
                    TicketState::Done(answer) => return *answer,
                }
            }
        }
        // Leading: this ticket heads the queue.
        let batch: Vec<Arc<Ticket>> = {
            let mut queue = lock(&self.queue);
            let n = queue.waiting.len().min(MAX_BATCH);
            queue.waiting.drain(..n).collect()
        };
        let leading = Leading { group: self, batch };
        let jobs: Vec<Job> = leading.batch.iter().filter_map(|t| lock(&t.job).take()).collect();
        let answers = registry.enroll_batch(jobs);
        for (ticket, answer) in leading.batch.iter().zip(answers) {
            ticket.finish(answer);
        }
        drop(leading);
        match std::mem::replace(&mut *lock(&ticket.state), TicketState::Waiting) {
            TicketState::Done(answer) => *answer,
            // Unreachable: the batch began with this ticket and answered it.
            _ => Err(RegistryError::Store(StoreError::Missing("the enrollment decision was not answered".into()))),
        }
    }

    /// Counts a batch of `decisions`.
    fn counted(&self, decisions: u64) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.decisions.fetch_add(decisions, Ordering::Relaxed);
        self.largest.fetch_max(decisions, Ordering::Relaxed);
    }

    pub(super) fn stats(&self) -> GroupCommitStats {
        GroupCommitStats {
            batches: self.batches.load(Ordering::Relaxed),
            decisions: self.decisions.load(Ordering::Relaxed),
            largest: self.largest.load(Ordering::Relaxed),
        }
    }
}

/// The same failure again, for every decision of a batch whose transaction
/// failed (a store error is not `Clone`: the SQLite error becomes its text).
fn again(e: &RegistryError) -> RegistryError {
    let store = match e {
        RegistryError::Store(s) => s,
        other => return RegistryError::Store(StoreError::Missing(other.to_string())),
    };
    RegistryError::Store(match store {
        StoreError::Open { path, message } => StoreError::Open { path: path.clone(), message: message.clone() },
        StoreError::Damaged { path, message } => StoreError::Damaged { path: path.clone(), message: message.clone() },
        StoreError::ReadOnly { path, message } => StoreError::ReadOnly { path: path.clone(), message: message.clone() },
        StoreError::Full { path, message } => StoreError::Full { path: path.clone(), message: message.clone() },
        StoreError::Unavailable { database, message } => {
            StoreError::Unavailable { database: database.clone(), message: message.clone() }
        }
        StoreError::Postgres(m) => StoreError::Postgres(m.clone()),
        other => StoreError::Unavailable { database: "the store".into(), message: other.to_string() },
    })
}

impl Registry {
    /// Decides `inputs` for real, in this order, in one write transaction
    /// with one commit: each is counted and audited as
    /// [`Registry::decide`] would, and sees the effects of those before it.
    /// Returns once the batch is durable, one answer per input. A CA host
    /// holding several requests at once may call it; [`Registry::decide`]
    /// batches concurrent callers by itself.
    pub fn enroll_together(
        &self,
        inputs: Vec<EnrollmentInput>,
        now: u64,
    ) -> Vec<Result<DecisionReport, RegistryError>> {
        let mut answers = Vec::with_capacity(inputs.len());
        let mut jobs = Vec::new();
        // Refused before deciding, as one at a time; the rest keep their places.
        for input in inputs {
            match super::decisions::check_name_length(&input.fqdn) {
                Ok(()) => {
                    jobs.push(Job { input, now, calls: HostCalls::Live, issuer: None });
                    answers.push(None);
                }
                Err(e) => answers.push(Some(Err(e))),
            }
        }
        let mut decided = self.enroll_batch(jobs).into_iter();
        answers
            .into_iter()
            .map(|slot| match slot {
                Some(refused) => refused,
                None => match decided.next() {
                    Some(answer) => answer.map(|(report, _, _)| report),
                    None => Err(RegistryError::Store(StoreError::Missing("an enrollment was not decided".into()))),
                },
            })
            .collect()
    }

    /// How many enrollment batches were written, and how many decisions
    /// they carried.
    pub fn group_commit_stats(&self) -> GroupCommitStats {
        self.group.stats()
    }

    /// Writes one batch: one transaction, a savepoint per decision, one
    /// commit. One answer per job, in order.
    pub(super) fn enroll_batch(&self, jobs: Vec<Job>) -> Vec<Answer> {
        if jobs.is_empty() {
            return Vec::new();
        }
        let n = jobs.len();
        self.group.counted(n as u64);
        let fail_all = |e: RegistryError| -> Vec<Answer> {
            let mut answers: Vec<Answer> = (1..n).map(|_| Err(again(&e))).collect();
            answers.insert(0, Err(e));
            answers
        };
        let mut tx = match self.storage.begin(TxKind::Write) {
            Ok(tx) => tx,
            Err(e) => return fail_all(e.into()),
        };
        // Caught up once, from what is committed; what this batch changes is
        // read again from the transaction.
        let index = match self.current_index(tx.as_mut()) {
            Ok(index) => index,
            Err(e) => return fail_all(e),
        };
        let mut changed: HashSet<u64> = HashSet::new();
        let mut answers = Vec::with_capacity(n);
        for job in jobs {
            if let Err(e) = tx.savepoint() {
                return fail_all(e.into());
            }
            let (back, answer) = self.enroll_in(tx, index.clone(), &changed, job);
            tx = back;
            let kept = match &answer {
                Ok((report, _, _)) => {
                    changed.extend(report.registration);
                    tx.release_savepoint()
                }
                Err(_) => tx.rollback_to_savepoint(),
            };
            if let Err(e) = kept {
                return fail_all(e.into());
            }
            answers.push(answer);
        }
        match tx.commit() {
            Ok(()) => answers,
            Err(e) => fail_all(e.into()),
        }
    }
}
