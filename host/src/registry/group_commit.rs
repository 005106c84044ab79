//! Group commit: enrollment decisions that arrive together share one write
//! transaction and one fsync.
//!
//! # How a batch forms
//!
//! A decision is queued, and the registry's writer thread takes everything
//! queued (up to [`MAX_BATCH`]) as one batch, decides it in one write
//! transaction, commits, and answers each decision of the batch. While it
//! commits, the next decisions queue: a batch is what arrived while the last
//! one was being made durable, so a lone decision waits for no timer and a
//! busy store writes many decisions per fsync.
//!
//! The thread starts with the first decision and ends after [`IDLE`] with
//! nothing queued (a one-shot command keeps no thread). It holds the
//! registry only while it writes a batch (each decision brings its own
//! clone), so a registry dropped by its owner closes its store at once.
//! A caller waits on its answer ([`Registry::decide`]) or is called back
//! with it ([`Registry::enroll_then`]: the service's async handlers, which
//! so hold no thread while a batch is written).
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
use std::time::Duration;

use crate::host_calls::{HostCall, HostCalls};
use crate::store::{CertificateRecord, StoreError, TxKind};

use super::decisions::{DecisionReport, EnrollmentInput, Grant};
use super::read_cache::OwnBatches;
use super::{Registry, RegistryError};

/// At most this many decisions share a transaction; more wait for the next.
pub const MAX_BATCH: usize = 256;

/// The writer thread ends after this long with nothing queued.
pub const IDLE: Duration = Duration::from_secs(1);

/// The issuing front's part of an enrollment ([`Registry::enroll_issuing`]):
/// called once, inside the decision's transaction and only if it allows, it
/// returns the certificate to record. An error takes the decision back
/// (nothing is counted). Owned, because the decision is written by the
/// registry's writer thread.
pub type Issuer = Box<dyn FnMut(&Grant<'_>) -> Result<CertificateRecord, String> + Send>;

/// One enrollment decision waiting for its batch.
pub(super) struct Job {
    pub input: EnrollmentInput,
    pub now: u64,
    pub calls: HostCalls,
    pub issuer: Option<Issuer>,
}

impl Work {
    /// An enrollment to queue; a name longer than DNS allows is refused
    /// here, before anything is decided or audited.
    pub(super) fn enroll(
        input: EnrollmentInput,
        now: u64,
        calls: HostCalls,
        issuer: Option<Issuer>,
    ) -> Result<Work, RegistryError> {
        super::decisions::check_name_length(&input.fqdn)?;
        Ok(Work::Enroll(Job { input, now, calls, issuer }))
    }
}

/// What a decision of a batch answers: the report, the certificate issued
/// with it, and the host calls recorded ([`HostCalls::Record`]).
pub(super) type Answer = Result<(DecisionReport, Option<CertificateRecord>, Vec<HostCall>), RegistryError>;

/// What a batch carries: enrollment decisions, and the claims of protocol
/// transaction ids that enrollment fronts make before them (CMP), which
/// would otherwise each pay a commit of their own.
#[allow(clippy::large_enum_variant, reason = "most work is enrollments: boxing them would cost each an allocation")]
pub(super) enum Work {
    /// An enrollment decision.
    Enroll(Job),
    /// [`Registry::claim_transaction`].
    Claim { transaction: String, now: u64 },
}

/// What a piece of [`Work`] answers.
#[allow(clippy::large_enum_variant, reason = "most answers are decisions: boxing them would cost each an allocation")]
pub(super) enum Done {
    /// The decision: report, certificate, recorded host calls.
    Decided(DecisionReport, Option<CertificateRecord>, Vec<HostCall>),
    /// Whether the transaction id was claimed (false: in use).
    Claimed(bool),
}

/// The answer to a piece of [`Work`].
pub(super) type Outcome = Result<Done, RegistryError>;

impl Done {
    /// The decision, of an enrollment's answer.
    pub(super) fn decided(outcome: Outcome) -> Answer {
        match outcome? {
            Done::Decided(report, certificate, calls) => Ok((report, certificate, calls)),
            Done::Claimed(_) => Err(RegistryError::Store(StoreError::Missing("an enrollment was not decided".into()))),
        }
    }
}

/// Where a decision's answer goes once its batch is durable.
pub(super) enum Reply {
    /// A thread waiting in [`GroupCommit::submit`].
    Waiting(Arc<Slot>),
    /// A callback ([`Registry::enroll_then`]).
    Call(Box<dyn FnOnce(Outcome) + Send>),
}

impl Reply {
    fn send(self, answer: Outcome) {
        match self {
            Reply::Waiting(slot) => {
                *lock(&slot.answer) = Some(answer);
                slot.ready.notify_one();
            }
            Reply::Call(call) => call(answer),
        }
    }
}

/// Where a waiting thread's answer arrives.
#[derive(Default)]
pub(super) struct Slot {
    answer: Mutex<Option<Outcome>>,
    ready: Condvar,
}

/// A queued decision, with the registry to decide it with.
struct Queued {
    registry: Registry,
    work: Work,
    reply: Reply,
}

/// The queue of a registry (and its clones) and what it has done.
#[derive(Default)]
pub(super) struct GroupCommit {
    queue: Mutex<Queue>,
    /// Something was queued (the writer thread waits on it).
    queued: Condvar,
    batches: AtomicU64,
    decisions: AtomicU64,
    largest: AtomicU64,
    /// Memos told how the store's change token moved across each batch
    /// ([`Registry::carry_over_own_batches`]).
    carried: Mutex<Vec<Arc<dyn OwnBatches>>>,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Queued>,
    /// The writer thread is running.
    writer: bool,
}

/// How many batches were written, how many decisions they carried, and the
/// largest (`/metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupCommitStats {
    /// Write transactions of the group commit (enrollment decisions and
    /// claims of transaction ids).
    pub batches: u64,
    /// Enrollment decisions they carried.
    pub decisions: u64,
    /// The most decisions one of them carried.
    pub largest: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl GroupCommit {
    /// Decides `job` in the next batch, and returns once that batch is
    /// durable (or failed).
    pub(super) fn submit(self: &Arc<Self>, registry: &Registry, work: Work) -> Outcome {
        let slot = Arc::new(Slot::default());
        self.enqueue(registry, work, Reply::Waiting(slot.clone()));
        let mut answer = lock(&slot.answer);
        loop {
            match answer.take() {
                Some(answer) => return answer,
                None => answer = slot.ready.wait(answer).unwrap_or_else(PoisonError::into_inner),
            }
        }
    }

    /// Queues `job`; `reply` gets its answer once its batch is durable.
    pub(super) fn enqueue(self: &Arc<Self>, registry: &Registry, work: Work, reply: Reply) {
        let mut queue = lock(&self.queue);
        queue.waiting.push_back(Queued { registry: registry.clone(), work, reply });
        if queue.writer {
            drop(queue);
            self.queued.notify_one();
            return;
        }
        queue.writer = true;
        drop(queue);
        let group = self.clone();
        let started = std::thread::Builder::new().name("prereg-commit".into()).spawn(move || group.write_batches());
        if let Err(e) = started {
            // No thread: nothing queued can be decided now.
            let mut queue = lock(&self.queue);
            queue.writer = false;
            let stranded: Vec<Queued> = queue.waiting.drain(..).collect();
            drop(queue);
            for q in stranded {
                q.reply.send(Err(RegistryError::Store(StoreError::Unavailable {
                    database: q.registry.storage.describe(),
                    message: format!("the enrollment writer thread could not start: {e}"),
                })));
            }
        }
    }

    /// The writer thread: batches until nothing was queued for [`IDLE`].
    fn write_batches(&self) {
        loop {
            let batch: Vec<Queued> = {
                let mut queue = lock(&self.queue);
                while queue.waiting.is_empty() {
                    let (next, waited) = self.queued.wait_timeout(queue, IDLE).unwrap_or_else(PoisonError::into_inner);
                    queue = next;
                    if waited.timed_out() && queue.waiting.is_empty() {
                        queue.writer = false;
                        return;
                    }
                }
                let n = queue.waiting.len().min(MAX_BATCH);
                queue.waiting.drain(..n).collect()
            };
            self.write(batch);
        }
    }

    /// Writes one batch and answers it. The registry clones are dropped
    /// before anyone is answered: a caller that drops its registry after
    /// its last answer closes the store.
    fn write(&self, batch: Vec<Queued>) {
        let Some(registry) = batch.first().map(|q| q.registry.clone()) else { return };
        let mut jobs = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        for Queued { registry: _, work, reply } in batch {
            jobs.push(work);
            replies.push(reply);
        }
        let n = jobs.len();
        let answers = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| registry.write_batch(jobs)))
            .unwrap_or_else(|_| {
                tracing::error!("an enrollment batch panicked; its decisions were taken back");
                (0..n)
                    .map(|_| {
                        Err(RegistryError::Store(StoreError::Missing(
                            "the batch carrying this enrollment decision failed; nothing of it was kept".into(),
                        )))
                    })
                    .collect()
            });
        drop(registry);
        for (reply, answer) in replies.into_iter().zip(answers) {
            reply.send(answer);
        }
    }

    /// Tells the memos that a batch took the store from `from` to `to`.
    fn carried(&self, from: u64, to: u64) {
        for memo in lock(&self.carried).iter() {
            memo.carried(from, to);
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
/// failed.
fn again(e: &RegistryError) -> RegistryError {
    RegistryError::Store(match e {
        RegistryError::Store(store) => store.again(),
        other => StoreError::Missing(other.to_string()),
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
            match Work::enroll(input, now, HostCalls::Live, None) {
                Ok(job) => {
                    jobs.push(job);
                    answers.push(None);
                }
                Err(e) => answers.push(Some(Err(e))),
            }
        }
        let mut decided = self.write_batch(jobs).into_iter();
        answers
            .into_iter()
            .map(|slot| match slot {
                Some(refused) => refused,
                None => match decided.next() {
                    Some(answer) => Done::decided(answer).map(|(report, _, _)| report),
                    None => Err(RegistryError::Store(StoreError::Missing("an enrollment was not decided".into()))),
                },
            })
            .collect()
    }

    /// Decides `input` for real, as [`Registry::decide`] does, without
    /// waiting: `reply` is called with the answer once the decision's batch
    /// is durable (on the registry's writer thread: it must be quick, such
    /// as sending on a channel). An async server awaits the answer without
    /// holding a thread.
    pub fn enroll_then(
        &self,
        input: EnrollmentInput,
        now: u64,
        reply: impl FnOnce(Result<DecisionReport, RegistryError>) + Send + 'static,
    ) {
        let job = match Work::enroll(input, now, HostCalls::Live, None) {
            Ok(job) => job,
            Err(e) => return reply(Err(e)),
        };
        let reply =
            Reply::Call(Box::new(move |answer: Outcome| reply(Done::decided(answer).map(|(report, _, _)| report))));
        self.group.enqueue(self, job, reply);
    }

    /// Keeps `memo` (values read at one change token of the store, such as
    /// the service's resolved CA callers) valid across this process's own
    /// enrollment batches, which change none of it: under an enrollment
    /// load every batch's commit moves the token, and a memo that only any
    /// commit invalidates would be read again on nearly every request.
    /// A commit by anyone else, or by any other write of this process,
    /// still invalidates it.
    pub fn carry_over_own_batches(&self, memo: Arc<dyn OwnBatches>) {
        lock(&self.group.carried).push(memo);
    }

    /// How many enrollment batches were written, and how many decisions
    /// they carried.
    pub fn group_commit_stats(&self) -> GroupCommitStats {
        self.group.stats()
    }

    /// Claims a protocol transaction id (`cmp:…`) for a transaction that
    /// starts now, durably, in the next batch. False if it was claimed
    /// before, within [`super::TRANSACTION_SECONDS`]: the id is in use.
    pub fn claim_transaction(&self, transaction: &str, now: u64) -> Result<bool, RegistryError> {
        match self.group.submit(self, Work::Claim { transaction: transaction.to_owned(), now })? {
            Done::Claimed(claimed) => Ok(claimed),
            Done::Decided(..) => Err(RegistryError::Store(StoreError::Missing("the claim was not made".into()))),
        }
    }

    /// Writes one batch: one transaction, a savepoint per piece of work,
    /// one commit. One answer per piece, in order.
    pub(super) fn write_batch(&self, work: Vec<Work>) -> Vec<Outcome> {
        if work.is_empty() {
            return Vec::new();
        }
        let n = work.len();
        self.group.counted(work.iter().filter(|piece| matches!(piece, Work::Enroll(_))).count() as u64);
        let fail_all = |e: RegistryError| -> Vec<Outcome> {
            let mut answers: Vec<Outcome> = (1..n).map(|_| Err(again(&e))).collect();
            answers.insert(0, Err(e));
            answers
        };
        let mut tx = match self.storage.begin(TxKind::Write) {
            Ok(tx) => tx,
            Err(e) => return fail_all(e.into()),
        };
        // Read under the write lock (`BEGIN IMMEDIATE`), before any write:
        // from here to the commit, only this batch changes the store.
        let before = self.storage.counted_change_token();
        // Caught up once, from what is committed; what this batch changes is
        // read again from the transaction.
        let index = match self.current_index(tx.as_mut()) {
            Ok(index) => index,
            Err(e) => return fail_all(e),
        };
        let mut changed: HashSet<u64> = HashSet::new();
        // Read once per batch: its decisions change no procedure.
        let mut procedures = super::decisions::ProceduresRead::new();
        let mut answers = Vec::with_capacity(n);
        for piece in work {
            if let Err(e) = tx.savepoint() {
                return fail_all(e.into());
            }
            let answer = match piece {
                Work::Enroll(job) => {
                    let (back, answer) = self.enroll_in(tx, index.clone(), &changed, &mut procedures, job);
                    tx = back;
                    answer.map(|(report, certificate, calls)| Done::Decided(report, certificate, calls))
                }
                Work::Claim { transaction, now } => {
                    let until = now + super::TRANSACTION_SECONDS;
                    match tx.consume_request_id(&transaction, "transaction", until, now, 0) {
                        Ok(()) => Ok(Done::Claimed(true)),
                        Err(StoreError::Replayed { .. }) => Ok(Done::Claimed(false)),
                        Err(e) => Err(e.into()),
                    }
                }
            };
            let kept = match &answer {
                Ok(Done::Decided(report, _, _)) => {
                    changed.extend(report.registration);
                    tx.release_savepoint()
                }
                Ok(Done::Claimed(true)) => tx.release_savepoint(),
                // A claim refused (the failed insert is taken back: on
                // PostgreSQL it would abort the transaction), or a failure.
                Ok(Done::Claimed(false)) | Err(_) => tx.rollback_to_savepoint(),
            };
            if let Err(e) = kept {
                return fail_all(e.into());
            }
            answers.push(answer);
        }
        match tx.commit() {
            Ok(()) => {
                // The token after this commit, if nobody committed since:
                // one commit more than under the lock is this batch's.
                if let Some((from, commits)) = before
                    && let Some((to, now)) = self.storage.counted_change_token()
                    && now == commits.wrapping_add(1)
                {
                    self.group.carried(from, to);
                }
                answers
            }
            Err(e) => fail_all(e.into()),
        }
    }
}
