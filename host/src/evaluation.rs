//! One evaluation of a policy: the host facts it may ask for, over one storage
//! transaction, with the budgets that keep host imports bounded.
//!
//! [`Evaluation`] is the single native implementation of
//! [`prereg_core::PolicyHost`]: the WebAssembly imports call into it, and the
//! native baseline hands it to the default policy directly. It also records what
//! it handed out, so the host can check a policy's answer against it.

use std::cell::RefCell;
use std::collections::HashMap;

use prereg_core::{Fqdn, IndexKey, LogLevel, LookupError, PasswordCheck, PolicyHost, Procedure, Registration};
use zeroize::Zeroizing;

use crate::password;
use crate::public_suffix;
use crate::store::{RegistrationRecord, Tx};

/// Most candidates one lookup returns.
pub const MAX_CANDIDATES: usize = 4096;
/// Most candidate lookups in one evaluation.
pub const MAX_LOOKUPS: u32 = 16;
/// Most distinct password checks in one evaluation (each is a slow hash).
pub const MAX_PASSWORD_CHECKS: usize = 2;
/// Most log lines kept from one evaluation.
pub const MAX_LOG_LINES: u32 = 32;
/// Host-import calls one evaluation may make, all imports together (an
/// import storm is stopped here, not only by the deadline).
pub const MAX_IMPORT_CALLS: u32 = 10_000;
/// Longest log line kept, in bytes.
pub const MAX_LOG_BYTES: usize = 1024;

/// A registration the host offered during an evaluation, and for what lookup.
#[derive(Debug, Clone)]
pub struct Offer {
    /// The registration as it was when offered.
    pub record: RegistrationRecord,
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
    /// A storage failure during the evaluation.
    pub storage_error: Option<String>,
    /// A budget the policy overran, or an import it misused.
    pub violation: Option<String>,
    /// Log lines written.
    pub log_lines: u32,
    /// Host-import calls made.
    pub import_calls: u32,
}

/// The context of one evaluation.
pub struct Evaluation {
    tx: RefCell<Box<dyn Tx>>,
    now: u64,
    password: Option<Zeroizing<String>>,
    policy_name: String,
    trace: RefCell<Trace>,
}

impl Evaluation {
    /// An evaluation over `tx` at time `now`, for a request carrying `password`.
    pub fn new(tx: Box<dyn Tx>, now: u64, password: Option<Zeroizing<String>>, policy_name: &str) -> Self {
        Evaluation {
            tx: RefCell::new(tx),
            now,
            password,
            policy_name: policy_name.to_owned(),
            trace: RefCell::new(Trace::default()),
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

    /// Counts one host-import call; false (and a violation) past
    /// [`MAX_IMPORT_CALLS`].
    pub fn count_import_call(&self) -> bool {
        let over = {
            let mut trace = self.trace.borrow_mut();
            trace.import_calls = trace.import_calls.saturating_add(1);
            trace.import_calls > MAX_IMPORT_CALLS
        };
        if over {
            self.violate(format!("more than {MAX_IMPORT_CALLS} host-import calls in one evaluation"));
        }
        !over
    }

    fn violate(&self, what: String) {
        let mut trace = self.trace.borrow_mut();
        if trace.violation.is_none() {
            trace.violation = Some(what);
        }
    }

    fn storage_failed(&self, e: impl std::fmt::Display) {
        tracing::error!(error = %e, "storage failure during a policy evaluation");
        let mut trace = self.trace.borrow_mut();
        if trace.storage_error.is_none() {
            trace.storage_error = Some(e.to_string());
        }
    }
}

impl PolicyHost for Evaluation {
    fn procedure(&self, name: &str) -> Option<Procedure> {
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

    fn candidates(&self, domain: &str, fqdn: &Fqdn) -> Result<Vec<Registration>, LookupError> {
        {
            let mut trace = self.trace.borrow_mut();
            trace.lookups += 1;
            if trace.lookups > MAX_LOOKUPS {
                drop(trace);
                self.violate(format!("more than {MAX_LOOKUPS} candidate lookups in one evaluation"));
                return Err(LookupError::TooMany);
            }
        }
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
        let mut trace = self.trace.borrow_mut();
        Ok(rows
            .into_iter()
            .map(|record| {
                let view = record.to_policy_view();
                trace
                    .offered
                    .insert(record.id, Offer { record, domain: domain.to_owned(), fqdn: fqdn.as_str().to_owned() });
                view
            })
            .collect())
    }

    fn check_password(&self, registration: u64) -> PasswordCheck {
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
            Ok(Some(hash)) => match &self.password {
                None => PasswordCheck::NotProvided,
                Some(given) if password::verify(given, &hash) => PasswordCheck::Match,
                Some(_) => PasswordCheck::Mismatch,
            },
        };
        self.trace.borrow_mut().password_checks.insert(registration, result);
        result
    }

    fn is_public_suffix(&self, name: &str) -> bool {
        public_suffix::is_public_suffix(name)
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
