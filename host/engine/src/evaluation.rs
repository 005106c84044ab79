//! One evaluation of a policy: the host facts it may ask for, from the
//! embedder's [`PolicyHost`], with the budgets that keep host imports bounded.
//!
//! [`Evaluation`] is the single implementation of [`prereg_core::PolicyHost`]
//! (the facts as a policy sees them): the WebAssembly imports call into it,
//! and the native baseline hands it to the default policy directly. It also
//! records what it handed out, so that [`crate::guard`] can check a policy's
//! answer against it.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use prereg_core::{Fqdn, LogLevel, LookupError, PasswordCheck, Procedure, Registration};

use crate::host::{HostError, PolicyHost};
use crate::host_calls::{self, HostCall, HostCalls};

/// Most candidates one lookup returns.
pub const MAX_CANDIDATES: usize = 4096;
/// Most candidate lookups in one evaluation.
pub const MAX_LOOKUPS: u32 = 16;
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
    pub registration_domain: Arc<str>,
    /// Domain of the lookup (shared by the candidates of one lookup).
    pub domain: Arc<str>,
    /// Canonical name of the lookup (shared likewise).
    pub fqdn: Arc<str>,
}

/// A map keyed by registration id: foldhash, seeded per process.
pub type ById<V> = HashMap<u64, V, foldhash::fast::RandomState>;

/// What happened during an evaluation.
#[derive(Debug, Default)]
pub struct Trace {
    /// Registrations offered, by id.
    pub offered: ById<Offer>,
    /// Candidate lookups made.
    pub lookups: u32,
    /// Password checks made, by registration id.
    pub password_checks: ById<PasswordCheck>,
    /// The first question the embedder could not answer
    /// ([`HostError::Unavailable`] or [`HostError::Busy`]): the outcome is
    /// then no decision.
    pub host_error: Option<HostError>,
    /// A budget the policy overran, or an import it misused.
    pub violation: Option<String>,
    /// Log lines written.
    pub log_lines: u32,
    /// Host-import calls made.
    pub import_calls: u32,
    /// The calls and their answers, when recording ([`HostCalls::Record`]).
    pub recorded: Vec<HostCall>,
}

/// The context of one evaluation.
pub struct Evaluation {
    host: RefCell<Box<dyn PolicyHost>>,
    now: u64,
    policy_name: String,
    trace: RefCell<Trace>,
    calls: HostCalls,
    /// Time spent in slow host work (password checks) not yet given back to
    /// the guest's deadline ([`Evaluation::take_host_time`]).
    host_time: Cell<Duration>,
}

impl Evaluation {
    /// An evaluation of the policy called `policy_name` (for its log lines)
    /// over the embedder's facts, at the time `host` gives.
    pub fn new(host: Box<dyn PolicyHost>, policy_name: &str) -> Self {
        Evaluation {
            now: host.now(),
            host: RefCell::new(host),
            policy_name: policy_name.to_owned(),
            trace: RefCell::new(Trace::default()),
            calls: HostCalls::Live,
            host_time: Cell::new(Duration::ZERO),
        }
    }

    /// Records the host calls, or answers them from a recording only.
    pub fn with_host_calls(mut self, calls: HostCalls) -> Self {
        self.calls = calls;
        self
    }

    /// The time spent in slow host work since the last call: the guest's
    /// deadline counts only its own time, so this is given back to it.
    pub fn take_host_time(&self) -> Duration {
        self.host_time.take()
    }

    /// Ends the evaluation: the embedder's host back, and what happened.
    pub fn finish(self) -> (Box<dyn PolicyHost>, Trace) {
        (self.host.into_inner(), self.trace.into_inner())
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

    /// In replay: the recorded answer to the `question` made, or a
    /// violation. The question is made only in replay.
    fn replayed(&self, question: impl FnOnce() -> HostCall) -> Option<Option<HostCall>> {
        let HostCalls::Replay(recording) = &self.calls else {
            return None;
        };
        let question = question();
        let found = recording.iter().find(|c| c.same_question(&question)).cloned();
        if found.is_none() {
            self.violate(format!("replay: the recording has no answer to {}", question.question()));
        }
        Some(found)
    }

    /// Records the `call` made, when recording; it is made only then.
    fn record(&self, call: impl FnOnce() -> HostCall) {
        if matches!(self.calls, HostCalls::Record) {
            self.trace.borrow_mut().recorded.push(call());
        }
    }

    fn violate(&self, what: String) {
        let mut trace = self.trace.borrow_mut();
        if trace.violation.is_none() {
            trace.violation = Some(what);
        }
    }

    /// Keeps the embedder's first failure (not [`HostError::TooMany`], which
    /// is an answer).
    fn host_failed(&self, e: HostError) {
        if e == HostError::TooMany {
            return;
        }
        if let HostError::Unavailable(why) = &e {
            tracing::error!(error = %why, "the host failed during a policy evaluation");
        }
        let mut trace = self.trace.borrow_mut();
        if trace.host_error.is_none() {
            trace.host_error = Some(e);
        }
    }
}

/// The answers from the embedder, bounded and traced.
impl Evaluation {
    fn procedure_from_host(&self, name: &str) -> Option<Procedure> {
        let answer = self.host.borrow_mut().procedure(name);
        answer.unwrap_or_else(|e| {
            self.host_failed(e);
            None
        })
    }

    fn candidates_from_host(&self, domain: &str, fqdn: &Fqdn) -> Result<Vec<Registration>, LookupError> {
        let answer = self.host.borrow_mut().candidates(domain, fqdn, MAX_CANDIDATES);
        let found = match answer {
            Ok(found) if found.len() > MAX_CANDIDATES => return Err(LookupError::TooMany),
            Ok(found) => found,
            Err(HostError::TooMany) => return Err(LookupError::TooMany),
            Err(e) => {
                self.host_failed(e);
                return Err(LookupError::Unavailable);
            }
        };
        if found.is_empty() {
            return Ok(Vec::new());
        }
        let mut trace = self.trace.borrow_mut();
        // One allocation for the whole answer, not one per doubling.
        trace.offered.reserve(found.len());
        let (domain, fqdn): (Arc<str>, Arc<str>) = (domain.into(), fqdn.as_str().into());
        Ok(found
            .into_iter()
            .map(|candidate| {
                let view = candidate.registration.clone();
                trace.offered.insert(
                    candidate.registration.id,
                    Offer {
                        registration: candidate.registration,
                        registration_domain: candidate.domain,
                        domain: domain.clone(),
                        fqdn: fqdn.clone(),
                    },
                );
                view
            })
            .collect())
    }

    fn check_password_with_host(&self, registration: u64) -> PasswordCheck {
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
        let started = std::time::Instant::now();
        let answer = self.host.borrow_mut().check_password(registration);
        self.host_time.set(self.host_time.get() + started.elapsed());
        let result = match answer {
            Ok(result) => result,
            Err(e) => {
                // Not a failed check: the decision is abandoned.
                self.host_failed(e);
                return PasswordCheck::Mismatch;
            }
        };
        self.trace.borrow_mut().password_checks.insert(registration, result);
        result
    }
}

impl prereg_core::PolicyHost for Evaluation {
    fn procedure(&self, name: &str) -> Option<Procedure> {
        let question = || HostCall::GetProcedure { name: name.to_owned(), answer: None };
        if let Some(answer) = self.replayed(question) {
            return match answer {
                Some(HostCall::GetProcedure { answer, .. }) => answer.as_ref().and_then(|p| p.to_procedure()),
                _ => None,
            };
        }
        let answer = self.procedure_from_host(name);
        self.record(|| HostCall::GetProcedure { name: name.to_owned(), answer: answer.as_ref().map(Into::into) });
        answer
    }

    fn candidates(&self, domain: &str, fqdn: &Fqdn) -> Result<Vec<Registration>, LookupError> {
        let question =
            || HostCall::FindCandidates { domain: domain.to_owned(), fqdn: fqdn.to_string(), answer: Ok(vec![]) };
        {
            let mut trace = self.trace.borrow_mut();
            trace.lookups += 1;
            if trace.lookups > MAX_LOOKUPS {
                drop(trace);
                self.violate(format!("more than {MAX_LOOKUPS} candidate lookups in one evaluation"));
                return Err(LookupError::TooMany);
            }
        }
        if let Some(answer) = self.replayed(question) {
            return match answer {
                Some(HostCall::FindCandidates { answer: Ok(list), .. }) => {
                    Ok(list.iter().filter_map(|r| r.to_registration()).collect())
                }
                Some(HostCall::FindCandidates { answer: Err(e), .. }) if e == "too-many" => Err(LookupError::TooMany),
                _ => Err(LookupError::Unavailable),
            };
        }
        let answer = self.candidates_from_host(domain, fqdn);
        self.record(|| HostCall::FindCandidates {
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
        let question = || HostCall::CheckPassword { registration, answer: String::new() };
        if let Some(answer) = self.replayed(question) {
            return match answer {
                Some(HostCall::CheckPassword { answer, .. }) => {
                    host_calls::parse_password_check(&answer).unwrap_or(PasswordCheck::Mismatch)
                }
                _ => PasswordCheck::Mismatch,
            };
        }
        let answer = self.check_password_with_host(registration);
        self.record(|| HostCall::CheckPassword {
            registration,
            answer: host_calls::password_check_name(answer).into(),
        });
        answer
    }

    fn is_public_suffix(&self, name: &str) -> bool {
        let question = || HostCall::IsPublicSuffix { name: name.to_owned(), answer: false };
        if let Some(answer) = self.replayed(question) {
            return matches!(answer, Some(HostCall::IsPublicSuffix { answer: true, .. }));
        }
        let answer = self.host.borrow_mut().is_public_suffix(name);
        self.record(|| HostCall::IsPublicSuffix { name: name.to_owned(), answer });
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
        self.host.borrow_mut().log(&self.policy_name, level, &message[..end]);
    }
}
