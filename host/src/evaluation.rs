//! One evaluation of a policy: the host facts it may ask for, over one storage
//! transaction, with the budgets that keep host imports bounded.
//!
//! [`Evaluation`] is the single native implementation of
//! [`prereg_core::PolicyHost`]: the WebAssembly imports call into it, and the
//! native baseline hands it to the default policy directly. It also records what
//! it handed out, so the host can check a policy's answer against it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use prereg_core::{Fqdn, IndexKey, LogLevel, LookupError, PasswordCheck, PolicyHost, Procedure, Registration};
use zeroize::Zeroizing;

use crate::host_calls::{self, HostCall, HostCalls};
use crate::index::{MemoryIndex, TooMany};
use crate::password;
use crate::public_suffix;
use crate::store::Tx;

/// Most candidates one lookup returns.
pub const MAX_CANDIDATES: usize = 4096;
/// Most candidate lookups in one evaluation.
pub const MAX_LOOKUPS: u32 = 16;
/// How long a password check waits for a place in the pool of checks.
pub const PASSWORD_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Most distinct password checks in one evaluation (each is a slow hash).
pub const MAX_PASSWORD_CHECKS: usize = 2;
/// Most log lines kept from one evaluation.
pub const MAX_LOG_LINES: u32 = 32;
/// Longest log line kept, in bytes.
pub const MAX_LOG_BYTES: usize = 1024;

/// A registration the host offered during an evaluation, and for what lookup.
#[derive(Debug, Clone)]
pub struct Offer {
    /// The registration as it was when offered (what the policy saw).
    pub registration: Registration,
    /// The registration's domain.
    pub registration_domain: String,
    /// Domain of the lookup.
    pub domain: String,
    /// Canonical name of the lookup.
    pub fqdn: String,
}

/// What happened during an evaluation.
#[derive(Debug, Default)]
pub struct Trace {
    /// Registrations offered, by id.
    pub offered: HashMap<u64, Offer>,
    /// Candidate lookups made.
    pub lookups: u32,
    /// Password checks made, by registration id.
    pub password_checks: HashMap<u64, PasswordCheck>,
    /// A storage failure during the evaluation (the first), as the store
    /// gave it: an unavailable store stays unavailable to the caller.
    pub storage_error: Option<crate::store::StoreError>,
    /// A budget the policy overran, or an import it misused.
    pub violation: Option<String>,
    /// Log lines written.
    pub log_lines: u32,
    /// Host-import calls made.
    pub import_calls: u32,
    /// The password-check pool stayed full: the evaluation could not be
    /// finished now, and its outcome must not count ([`crate::password::Busy`]).
    pub busy: bool,
    /// The calls and their answers, when recording ([`HostCalls::Record`]).
    pub recorded: Vec<HostCall>,
}

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

/// The context of one evaluation.
pub struct Evaluation {
    tx: RefCell<Box<dyn Tx>>,
    now: u64,
    password: Option<Zeroizing<String>>,
    mac: Option<MacProof>,
    policy_name: String,
    trace: RefCell<Trace>,
    calls: HostCalls,
    index: Option<Arc<MemoryIndex>>,
    /// Procedures already read in this evaluation's transaction.
    procedures: RefCell<HashMap<String, Option<Procedure>>>,
    /// Time spent in slow host work (password checks) not yet given back to
    /// the guest's deadline ([`Evaluation::take_host_time`]).
    host_time: std::cell::Cell<std::time::Duration>,
}

impl Evaluation {
    /// An evaluation over `tx` at time `now`, for a request carrying `password`.
    pub fn new(tx: Box<dyn Tx>, now: u64, password: Option<Zeroizing<String>>, policy_name: &str) -> Self {
        Evaluation {
            tx: RefCell::new(tx),
            now,
            password,
            mac: None,
            policy_name: policy_name.to_owned(),
            trace: RefCell::new(Trace::default()),
            calls: HostCalls::Live,
            index: None,
            procedures: RefCell::new(HashMap::new()),
            host_time: std::cell::Cell::new(std::time::Duration::ZERO),
        }
    }

    /// The time spent in slow host work since the last call: the guest's
    /// deadline counts only its own time, so this is given back to it.
    pub fn take_host_time(&self) -> std::time::Duration {
        self.host_time.take()
    }

    /// The request proved (or failed to prove) a registration's password by a
    /// MAC: the password check answers from `proof`, for that registration
    /// only.
    pub fn with_mac_proof(mut self, proof: Option<MacProof>) -> Self {
        self.mac = proof;
        self
    }

    /// Answers candidate lookups from `index` (caught up in this evaluation's
    /// transaction) instead of the storage index.
    pub fn with_index(mut self, index: Option<Arc<MemoryIndex>>) -> Self {
        self.index = index;
        self
    }

    /// Records the host calls, or answers them from a recording only.
    pub fn with_host_calls(mut self, calls: HostCalls) -> Self {
        self.calls = calls;
        self
    }

    /// In replay: the recorded answer to `question`, or a violation.
    fn replayed(&self, question: &HostCall) -> Option<Option<HostCall>> {
        let HostCalls::Replay(recording) = &self.calls else {
            return None;
        };
        let found = recording.iter().find(|c| c.same_question(question)).cloned();
        if found.is_none() {
            self.violate(format!("replay: the recording has no answer to {}", question.question()));
        }
        Some(found)
    }

    fn record(&self, call: HostCall) {
        if matches!(self.calls, HostCalls::Record) {
            self.trace.borrow_mut().recorded.push(call);
        }
    }

    /// Ends the evaluation: the transaction back, and what happened.
    pub fn finish(self) -> (Box<dyn Tx>, Trace) {
        (self.tx.into_inner(), self.trace.into_inner())
    }

    /// Whether the policy overran a budget or misused an import (the decision
    /// is then a `policy-error`).
    pub fn violation(&self) -> Option<String> {
        self.trace.borrow().violation.clone()
    }

    /// Counts one host-import call; false (and a violation) past `limit`
    /// calls ([`crate::Limits::max_import_calls`]).
    pub fn count_import_call(&self, limit: u32) -> bool {
        let over = {
            let mut trace = self.trace.borrow_mut();
            trace.import_calls = trace.import_calls.saturating_add(1);
            trace.import_calls > limit
        };
        if over {
            self.violate(format!("more than {limit} host-import calls in one evaluation"));
        }
        !over
    }

    /// Starts one more call of a policy in this evaluation (a batch of
    /// validations): the import budget and any violation of the previous
    /// call are for that call alone.
    pub fn start_call(&mut self) {
        let trace = self.trace.get_mut();
        trace.import_calls = 0;
        trace.violation = None;
    }

    fn violate(&self, what: String) {
        let mut trace = self.trace.borrow_mut();
        if trace.violation.is_none() {
            trace.violation = Some(what);
        }
    }

    fn storage_failed(&self, e: crate::store::StoreError) {
        tracing::error!(error = %e, "storage failure during a policy evaluation");
        let mut trace = self.trace.borrow_mut();
        if trace.storage_error.is_none() {
            trace.storage_error = Some(e);
        }
    }
}

/// The answers from the store.
impl Evaluation {
    fn procedure_from_store(&self, name: &str) -> Option<Procedure> {
        // One transaction sees one state: a batch of validations asks for the
        // same procedure hundreds of times, and the store answers once.
        if let Some(known) = self.procedures.borrow().get(name) {
            return known.clone();
        }
        let answer = self.procedure_from_tx(name);
        if self.trace.borrow().storage_error.is_none() {
            self.procedures.borrow_mut().insert(name.to_owned(), answer.clone());
        }
        answer
    }

    fn procedure_from_tx(&self, name: &str) -> Option<Procedure> {
        match self.tx.borrow_mut().procedure(name) {
            Ok(p) => p.map(|p| Procedure {
                name: p.name,
                domain: p.domain,
                protocol: p.protocol,
                require_preregistration: p.require_preregistration,
                allowed_domains: p.allowed_domains,
            }),
            Err(e) => {
                self.storage_failed(e);
                None
            }
        }
    }

    fn candidates_from_store(&self, domain: &str, fqdn: &Fqdn) -> Result<Vec<Registration>, LookupError> {
        let found: Vec<(Registration, String)> = match &self.index {
            Some(index) => index
                .candidates(domain, fqdn, MAX_CANDIDATES)
                .map_err(|TooMany| LookupError::TooMany)?
                .into_iter()
                .map(|r| (r, domain.to_owned()))
                .collect(),
            None => {
                let keys: Vec<String> = IndexKey::probes(fqdn).iter().map(IndexKey::encode).collect();
                let rows = match self.tx.borrow_mut().candidates(domain, &keys, MAX_CANDIDATES) {
                    Ok(rows) => rows,
                    Err(e) => {
                        self.storage_failed(e);
                        return Err(LookupError::Unavailable);
                    }
                };
                if rows.len() > MAX_CANDIDATES {
                    return Err(LookupError::TooMany);
                }
                rows.into_iter().map(|record| (record.to_policy_view(), record.domain)).collect()
            }
        };
        let mut trace = self.trace.borrow_mut();
        Ok(found
            .into_iter()
            .map(|(registration, registration_domain)| {
                let view = registration.clone();
                trace.offered.insert(
                    registration.id,
                    Offer {
                        registration,
                        registration_domain,
                        domain: domain.to_owned(),
                        fqdn: fqdn.as_str().to_owned(),
                    },
                );
                view
            })
            .collect())
    }

    fn check_password_in_store(&self, registration: u64) -> PasswordCheck {
        if let Some(done) = self.trace.borrow().password_checks.get(&registration) {
            return *done;
        }
        if !self.trace.borrow().offered.contains_key(&registration) {
            self.violate(format!("password check for registration {registration}, which was not offered"));
            return PasswordCheck::Mismatch;
        }
        if self.trace.borrow().password_checks.len() >= MAX_PASSWORD_CHECKS {
            self.violate(format!("more than {MAX_PASSWORD_CHECKS} password checks in one evaluation"));
            return PasswordCheck::Mismatch;
        }
        let result = match self.tx.borrow_mut().password_hash(registration) {
            Err(e) => {
                self.storage_failed(e);
                PasswordCheck::Mismatch
            }
            Ok(None) => PasswordCheck::NotSet,
            Ok(Some(_)) if let Some(proof) = self.mac => {
                if proof.valid && proof.registration == registration {
                    PasswordCheck::Match
                } else {
                    PasswordCheck::Mismatch
                }
            }
            Ok(Some(hash)) => match &self.password {
                None => PasswordCheck::NotProvided,
                Some(given) => {
                    let started = std::time::Instant::now();
                    let outcome = password::verify_bounded(given, &hash, PASSWORD_WAIT);
                    self.host_time.set(self.host_time.get() + started.elapsed());
                    match outcome {
                        Ok(true) => PasswordCheck::Match,
                        Ok(false) => PasswordCheck::Mismatch,
                        Err(password::Busy) => {
                            // Not a failed check: the decision is abandoned.
                            self.trace.borrow_mut().busy = true;
                            return PasswordCheck::Mismatch;
                        }
                    }
                }
            },
        };
        self.trace.borrow_mut().password_checks.insert(registration, result);
        result
    }
}

impl PolicyHost for Evaluation {
    fn procedure(&self, name: &str) -> Option<Procedure> {
        let question = HostCall::GetProcedure { name: name.to_owned(), answer: None };
        if let Some(answer) = self.replayed(&question) {
            return match answer {
                Some(HostCall::GetProcedure { answer, .. }) => answer.as_ref().and_then(|p| p.to_procedure()),
                _ => None,
            };
        }
        let answer = self.procedure_from_store(name);
        self.record(HostCall::GetProcedure { name: name.to_owned(), answer: answer.as_ref().map(Into::into) });
        answer
    }

    fn candidates(&self, domain: &str, fqdn: &Fqdn) -> Result<Vec<Registration>, LookupError> {
        let question =
            HostCall::FindCandidates { domain: domain.to_owned(), fqdn: fqdn.to_string(), answer: Ok(vec![]) };
        {
            let mut trace = self.trace.borrow_mut();
            trace.lookups += 1;
            if trace.lookups > MAX_LOOKUPS {
                drop(trace);
                self.violate(format!("more than {MAX_LOOKUPS} candidate lookups in one evaluation"));
                return Err(LookupError::TooMany);
            }
        }
        if let Some(answer) = self.replayed(&question) {
            return match answer {
                Some(HostCall::FindCandidates { answer: Ok(list), .. }) => {
                    Ok(list.iter().filter_map(|r| r.to_registration()).collect())
                }
                Some(HostCall::FindCandidates { answer: Err(e), .. }) if e == "too-many" => Err(LookupError::TooMany),
                _ => Err(LookupError::Unavailable),
            };
        }
        let answer = self.candidates_from_store(domain, fqdn);
        self.record(HostCall::FindCandidates {
            domain: domain.to_owned(),
            fqdn: fqdn.to_string(),
            answer: match &answer {
                Ok(list) => Ok(list.iter().map(Into::into).collect()),
                Err(LookupError::TooMany) => Err("too-many".into()),
                Err(LookupError::Unavailable) => Err("unavailable".into()),
            },
        });
        answer
    }

    fn check_password(&self, registration: u64) -> PasswordCheck {
        let question = HostCall::CheckPassword { registration, answer: String::new() };
        if let Some(answer) = self.replayed(&question) {
            return match answer {
                Some(HostCall::CheckPassword { answer, .. }) => {
                    host_calls::parse_password_check(&answer).unwrap_or(PasswordCheck::Mismatch)
                }
                _ => PasswordCheck::Mismatch,
            };
        }
        let answer = self.check_password_in_store(registration);
        self.record(HostCall::CheckPassword { registration, answer: host_calls::password_check_name(answer).into() });
        answer
    }

    fn is_public_suffix(&self, name: &str) -> bool {
        let question = HostCall::IsPublicSuffix { name: name.to_owned(), answer: false };
        if let Some(answer) = self.replayed(&question) {
            return matches!(answer, Some(HostCall::IsPublicSuffix { answer: true, .. }));
        }
        let answer = public_suffix::is_public_suffix(name);
        self.record(HostCall::IsPublicSuffix { name: name.to_owned(), answer });
        answer
    }

    fn now(&self) -> u64 {
        self.now
    }

    fn log(&self, level: LogLevel, message: &str) {
        {
            let mut trace = self.trace.borrow_mut();
            trace.log_lines += 1;
            if trace.log_lines > MAX_LOG_LINES {
                return;
            }
        }
        let mut end = message.len().min(MAX_LOG_BYTES);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let (policy, message) = (self.policy_name.as_str(), &message[..end]);
        match level {
            LogLevel::Debug => tracing::debug!(policy, "{message}"),
            LogLevel::Info => tracing::info!(policy, "{message}"),
            LogLevel::Warn => tracing::warn!(policy, "{message}"),
        }
    }
}
