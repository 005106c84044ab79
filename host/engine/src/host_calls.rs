//! Recording and replaying the host calls a policy makes (`prereg policy test
//! --record FILE` / `--replay FILE`, as kwctl records a policy's host
//! capabilities): a recording holds every fact the host handed out, so a
//! policy can be tested again without the store that produced it.
//!
//! [`HostCall`] is one import call with its answer, in a stable JSON form.
//! [`HostCalls`] tells an [`crate::evaluation::Evaluation`] whether to answer
//! from the store (and maybe record), or only from a recording.

use std::sync::Arc;

use prereg_core::{Fqdn, PasswordCheck, Procedure, Protocol, Registration, RegistrationState};
use serde::{Deserialize, Serialize};

use crate::host::{Candidate, HostError, PolicyHost};

/// What an evaluation does with host calls.
#[derive(Debug, Clone, Default)]
pub enum HostCalls {
    /// Answer from the store.
    #[default]
    Live,
    /// Answer from the store and record each call with its answer.
    Record,
    /// Answer only from these recorded calls; a call not recorded is a
    /// violation (the policy asked something the recording cannot answer).
    Replay(Arc<[HostCall]>),
}

/// A token procedure as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcedureFacts {
    /// Name.
    pub name: String,
    /// Domain.
    pub domain: String,
    /// `scep`, `cmp`, `est`, `acme` or `other`.
    pub protocol: String,
    /// Whether preregistration is required.
    pub require_preregistration: bool,
    /// Allowed DNS names.
    pub allowed_domains: Vec<String>,
}

/// A candidate registration as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationFacts {
    /// Id.
    pub id: u64,
    /// Canonical pattern.
    pub pattern: String,
    /// IP address.
    pub ip: Option<String>,
    /// Serial number.
    pub serial: Option<String>,
    /// Whether a password is set.
    pub has_password: bool,
    /// `open`, `used`, `disabled` or `locked`.
    pub state: String,
    /// End of validity (Unix seconds).
    pub expires_at: Option<u64>,
    /// Enrollment limit.
    pub max_enrollments: Option<u32>,
    /// Enrollments so far.
    pub enrollments: u32,
}

/// One host call and its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "kebab-case", deny_unknown_fields)]
pub enum HostCall {
    /// `get-procedure`.
    GetProcedure {
        /// The name asked for.
        name: String,
        /// The answer.
        answer: Option<ProcedureFacts>,
    },
    /// `find-candidates`.
    FindCandidates {
        /// The domain asked for.
        domain: String,
        /// The canonical name asked for.
        fqdn: String,
        /// The candidates, or `too-many` / `unavailable`.
        answer: Result<Vec<RegistrationFacts>, String>,
    },
    /// `check-password`.
    CheckPassword {
        /// The registration.
        registration: u64,
        /// `match`, `mismatch`, `not-provided` or `not-set`.
        answer: String,
    },
    /// `is-public-suffix`.
    IsPublicSuffix {
        /// The name asked for.
        name: String,
        /// The answer.
        answer: bool,
    },
}

impl HostCall {
    /// Whether `self` is a recorded answer to the same question as `other`.
    pub fn same_question(&self, other: &HostCall) -> bool {
        match (self, other) {
            (HostCall::GetProcedure { name: a, .. }, HostCall::GetProcedure { name: b, .. }) => a == b,
            (
                HostCall::FindCandidates { domain: a, fqdn: x, .. },
                HostCall::FindCandidates { domain: b, fqdn: y, .. },
            ) => a == b && x == y,
            (HostCall::CheckPassword { registration: a, .. }, HostCall::CheckPassword { registration: b, .. }) => {
                a == b
            }
            (HostCall::IsPublicSuffix { name: a, .. }, HostCall::IsPublicSuffix { name: b, .. }) => a == b,
            _ => false,
        }
    }

    /// The question, for messages: `find-candidates("corp", "a.example.com")`.
    pub fn question(&self) -> String {
        match self {
            HostCall::GetProcedure { name, .. } => format!("get-procedure({name:?})"),
            HostCall::FindCandidates { domain, fqdn, .. } => format!("find-candidates({domain:?}, {fqdn:?})"),
            HostCall::CheckPassword { registration, .. } => format!("check-password({registration})"),
            HostCall::IsPublicSuffix { name, .. } => format!("is-public-suffix({name:?})"),
        }
    }
}

impl From<&Procedure> for ProcedureFacts {
    fn from(p: &Procedure) -> Self {
        ProcedureFacts {
            name: p.name.clone(),
            domain: p.domain.clone(),
            protocol: p.protocol.as_str().into(),
            require_preregistration: p.require_preregistration,
            allowed_domains: p.allowed_domains.clone(),
        }
    }
}

impl ProcedureFacts {
    /// Back to the policy's type; `None` if the protocol is unknown.
    pub fn to_procedure(&self) -> Option<Procedure> {
        Some(Procedure {
            name: self.name.clone(),
            domain: self.domain.clone(),
            protocol: Protocol::parse(&self.protocol)?,
            require_preregistration: self.require_preregistration,
            allowed_domains: self.allowed_domains.clone(),
        })
    }
}

impl From<&Registration> for RegistrationFacts {
    fn from(r: &Registration) -> Self {
        RegistrationFacts {
            id: r.id,
            pattern: r.pattern.clone(),
            ip: r.ip.clone(),
            serial: r.serial.clone(),
            has_password: r.has_password,
            state: r.state.as_str().into(),
            expires_at: r.expires_at,
            max_enrollments: r.max_enrollments,
            enrollments: r.enrollments,
        }
    }
}

impl RegistrationFacts {
    /// Back to the policy's type; `None` if the state is unknown.
    pub fn to_registration(&self) -> Option<Registration> {
        Some(Registration {
            id: self.id,
            pattern: self.pattern.clone(),
            ip: self.ip.clone(),
            serial: self.serial.clone(),
            has_password: self.has_password,
            state: RegistrationState::parse(&self.state)?,
            expires_at: self.expires_at,
            max_enrollments: self.max_enrollments,
            enrollments: self.enrollments,
        })
    }
}

/// The text form of a password check.
pub fn password_check_name(check: PasswordCheck) -> &'static str {
    match check {
        PasswordCheck::Match => "match",
        PasswordCheck::Mismatch => "mismatch",
        PasswordCheck::NotProvided => "not-provided",
        PasswordCheck::NotSet => "not-set",
    }
}

/// Parses [`password_check_name`] output.
pub fn parse_password_check(name: &str) -> Option<PasswordCheck> {
    [PasswordCheck::Match, PasswordCheck::Mismatch, PasswordCheck::NotProvided, PasswordCheck::NotSet]
        .into_iter()
        .find(|c| password_check_name(*c) == name)
}

/// The host of a replayed evaluation ([`HostCalls::Replay`]): it knows only
/// the recorded time. Every fact comes from the recording, and the engine
/// never asks this host; were it asked, it would answer that it has nothing.
#[derive(Debug, Clone, Copy)]
pub struct RecordedHost {
    /// The time of the recorded evaluation.
    pub now: u64,
}

impl PolicyHost for RecordedHost {
    fn procedure(&mut self, _: &str) -> Result<Option<Procedure>, HostError> {
        Err(HostError::Unavailable("a replay answers from its recording only".into()))
    }

    fn candidates(&mut self, _: &str, _: &Fqdn, _: usize) -> Result<Vec<Candidate>, HostError> {
        Err(HostError::Unavailable("a replay answers from its recording only".into()))
    }

    fn check_password(&mut self, _: u64) -> Result<PasswordCheck, HostError> {
        Err(HostError::Unavailable("a replay answers from its recording only".into()))
    }

    fn now(&self) -> u64 {
        self.now
    }
}
